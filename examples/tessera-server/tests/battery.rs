//! A battery of malformed requests against every endpoint of the real server, sent as
//! raw bytes over a TCP socket so that nothing between the test and the server tidies
//! them up: truncated and oversized bodies, broken encodings, repeated and empty
//! parameters, wrong methods, absurd headers, garbage credentials and tokens.
//!
//! Every case is checked for its exact status, its OAuth `error` code and the headers
//! its status requires (`Allow` on 405, `WWW-Authenticate` on 401 and 403). Requests
//! that hyper refuses before the endpoint sees them (a malformed head, an absurd
//! `Content-Length`, a head over 16 KiB) get hyper's bare 400 or 431 with an empty
//! body, and the battery pins that as well. Afterwards the server must still serve,
//! the tokens issued before must still be active, and the SQLite file must hold
//! exactly what it held before: a bad request writes nothing.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use common::{Credentials, Server, cli_json, create_user, temp_db};
use serde_json::Value;

const TOKEN: &str = "/oauth/v2/token";
const INTROSPECT: &str = "/oauth/v2/introspect";
const REVOKE: &str = "/oauth/v2/revoke";
const USERINFO: &str = "/oidc/v1/userinfo";
const KEYS: &str = "/oauth/v2/keys";
const OPENID: &str = "/.well-known/openid-configuration";
const OAUTH_METADATA: &str = "/.well-known/oauth-authorization-server";
const HEALTH: &str = "/healthz";

const FORM: &str = "application/x-www-form-urlencoded";
/// `client_assertion_type` of RFC 7523, form-encoded.
const ASSERTION_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
/// The jwt-bearer `grant_type` of RFC 7523, form-encoded.
const JWT_BEARER: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";
/// The server's body limit (64 KiB).
const MAX_BODY: usize = 64 * 1024;

// ---------------------------------------------------------------------------------
// Raw HTTP/1.1 requests
// ---------------------------------------------------------------------------------

/// How a request announces its body.
#[derive(Clone)]
enum Length {
    /// `Content-Length` with the body's real length (left out when the body is empty
    /// and the method is not POST).
    Auto,
    /// No `Content-Length` and no `Transfer-Encoding`.
    Omit,
    /// `Content-Length` with this value, whatever the body's length.
    Declared(String),
    /// `Transfer-Encoding: chunked`, the body in chunks of 8 KiB.
    Chunked,
}

/// A raw HTTP/1.1 request, built field by field or given as bytes.
#[derive(Clone)]
struct Req {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    length: Length,
    /// Bytes sent as they are instead of the fields above.
    raw: Option<Vec<u8>>,
    /// Half-close the socket (send FIN) after the request.
    half_close: bool,
}

impl Req {
    fn new(method: &str, target: &str) -> Self {
        Self {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            length: Length::Auto,
            raw: None,
            half_close: false,
        }
    }

    fn get(target: &str) -> Self {
        Self::new("GET", target)
    }

    /// A POST with a form content type and `body`.
    fn form(target: &str, body: impl AsRef<[u8]>) -> Self {
        Self::new("POST", target).header("Content-Type", FORM).body(body)
    }

    /// Bytes sent exactly as given.
    fn raw(bytes: impl AsRef<[u8]>) -> Self {
        let mut req = Self::new("", "");
        req.raw = Some(bytes.as_ref().to_vec());
        req
    }

    fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    fn auth(self, value: impl AsRef<[u8]>) -> Self {
        self.header("Authorization", value)
    }

    fn basic(self, id: &str, secret: &str) -> Self {
        self.auth(basic(id, secret))
    }

    fn bearer(self, token: &str) -> Self {
        self.auth(format!("Bearer {token}"))
    }

    fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = body.as_ref().to_vec();
        self
    }

    fn length(mut self, value: &str) -> Self {
        self.length = Length::Declared(value.to_owned());
        self
    }

    fn no_length(mut self) -> Self {
        self.length = Length::Omit;
        self
    }

    fn chunked(mut self) -> Self {
        self.length = Length::Chunked;
        self
    }

    fn half_close(mut self) -> Self {
        self.half_close = true;
        self
    }

    fn is_head(&self) -> bool {
        match &self.raw {
            Some(raw) => raw.starts_with(b"HEAD "),
            None => self.method == "HEAD",
        }
    }

    fn bytes(&self) -> Vec<u8> {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let mut out = format!("{} {} HTTP/1.1\r\nHost: tessera.test\r\n", self.method, self.target)
            .into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        match &self.length {
            Length::Auto if !self.body.is_empty() || self.method == "POST" => {
                out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes())
            }
            Length::Auto | Length::Omit => {}
            Length::Declared(value) => {
                out.extend_from_slice(format!("Content-Length: {value}\r\n").as_bytes())
            }
            Length::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        match &self.length {
            Length::Chunked => {
                for chunk in self.body.chunks(8192) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            _ => out.extend_from_slice(&self.body),
        }
        out
    }
}

/// The value of an `Authorization: Basic` header: ID and secret form-encoded, then
/// base64 (RFC 6749 §2.3.1).
fn basic(id: &str, secret: &str) -> String {
    basic_raw(format!("{}:{}", pct(id.as_bytes()), pct(secret.as_bytes())).as_bytes())
}

fn basic_raw(decoded: &[u8]) -> String {
    format!("Basic {}", Base64::encode_string(decoded))
}

/// Percent-encodes every byte outside the unreserved set.
fn pct(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(*b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A small deterministic generator (xorshift64*), so that a failing case of random
/// bytes can be reproduced.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next() >> 56) as u8).collect()
    }

    /// Random characters from all of Unicode (valid UTF-8 of any width).
    fn unicode(&mut self, len: usize) -> String {
        let mut out = String::new();
        while out.chars().count() < len {
            if let Some(c) = char::from_u32((self.next() % 0x11_0000) as u32) {
                out.push(c);
            }
        }
        out
    }

    /// Random printable ASCII (always valid UTF-8).
    fn printable(&mut self, len: usize) -> String {
        (0..len).map(|_| char::from(b'!' + (self.next() % 94) as u8)).collect()
    }
}

// ---------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------

/// An HTTP response as read off the socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Bytes after the (first) response: there must be none on a `Connection: close`.
    trailing: usize,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn error(&self) -> Option<String> {
        self.json().and_then(|v| v["error"].as_str().map(str::to_owned))
    }

    fn summary(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(200).collect();
        let headers: Vec<String> = self
            .headers
            .iter()
            .filter(|(n, _)| {
                ["allow", "www-authenticate", "content-type", "content-length", "retry-after"]
                    .contains(&n.to_ascii_lowercase().as_str())
            })
            .map(|(n, v)| format!("{n}: {v:.120}"))
            .collect();
        format!("{} [{}] {body}", self.status, headers.join("; "))
    }
}

/// What came back on the socket.
#[derive(Debug)]
enum Outcome {
    Answer(Answer),
    /// The connection closed (or was reset) without a byte of answer.
    Closed,
    /// Something came back that is not an HTTP/1.1 response.
    Garbage(String),
}

impl Outcome {
    fn summary(&self) -> String {
        match self {
            Outcome::Answer(a) => a.summary(),
            Outcome::Closed => "connection closed without an answer".to_owned(),
            Outcome::Garbage(g) => format!("unparseable answer: {g:.200}"),
        }
    }
}

/// Sends `req` on a fresh connection and reads until the server closes it.
fn exchange(addr: &str, req: &Req) -> Outcome {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("read timeout");
    let mut writer = stream.try_clone().expect("clone the stream");
    writer.set_write_timeout(Some(Duration::from_secs(20))).expect("write timeout");
    let (bytes, half_close) = (req.bytes(), req.half_close);
    // The server may answer and close before reading everything (413, 431), so the
    // request is written on its own thread while this one reads the answer; a failed
    // write is part of the exchange.
    let writing = std::thread::spawn(move || {
        let _ = writer.write_all(&bytes);
        if half_close {
            let _ = writer.shutdown(Shutdown::Write);
        }
    });
    let mut raw = Vec::new();
    // A reset after the answer leaves what was read in `raw`.
    let _ = stream.read_to_end(&mut raw);
    let _ = writing.join();
    parse(&raw, req.is_head())
}

fn parse(mut raw: &[u8], head: bool) -> Outcome {
    if raw.is_empty() {
        return Outcome::Closed;
    }
    // Interim answers (`100 Continue`) come before the final one.
    while raw.starts_with(b"HTTP/1.1 1") {
        match raw.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(end) => raw = &raw[end + 4..],
            None => break,
        }
    }
    let garbage = || Outcome::Garbage(String::from_utf8_lossy(raw).into_owned());
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { return garbage() };
    let Ok(head_text) = std::str::from_utf8(&raw[..end]) else { return garbage() };
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    if !matches!(parts.next(), Some("HTTP/1.1" | "HTTP/1.0")) {
        return garbage();
    }
    let Some(status) = parts.next().and_then(|s| s.parse::<u16>().ok()) else {
        return garbage();
    };
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { return garbage() };
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let rest = &raw[end + 4..];
    let mut answer = Answer { status, headers, body: Vec::new(), trailing: 0 };
    if head {
        answer.trailing = rest.len();
        return Outcome::Answer(answer);
    }
    let chunked = answer.header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    if chunked {
        let mut at = 0;
        loop {
            let Some(eol) = rest[at..].windows(2).position(|w| w == b"\r\n") else {
                return garbage();
            };
            let size = std::str::from_utf8(&rest[at..at + eol]).ok().and_then(|s| {
                usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok()
            });
            let Some(size) = size else { return garbage() };
            at += eol + 2;
            if size == 0 {
                // Trailers end with an empty line.
                let Some(end) = rest[at..].windows(2).position(|w| w == b"\r\n") else {
                    return garbage();
                };
                at += end + 2;
                break;
            }
            if rest.len() < at + size + 2 {
                return garbage();
            }
            answer.body.extend_from_slice(&rest[at..at + size]);
            at += size + 2;
        }
        answer.trailing = rest.len() - at;
    } else if let Some(len) = answer.header("content-length") {
        let Ok(len) = len.parse::<usize>() else { return garbage() };
        if rest.len() < len {
            return garbage();
        }
        answer.body = rest[..len].to_vec();
        answer.trailing = rest.len() - len;
    } else {
        answer.body = rest.to_vec();
    }
    Outcome::Answer(answer)
}

// ---------------------------------------------------------------------------------
// Expectations
// ---------------------------------------------------------------------------------

/// What a 200 body must be.
#[derive(Clone, Copy, Debug)]
enum Body {
    /// `{"status":"ok"}`.
    Health,
    /// A JWK Set with at least one key.
    Keys,
    /// The discovery document of this server.
    Discovery,
    /// Exactly `{"active":false}`.
    Inactive,
    /// Userinfo of the JWT user, with `sub` only.
    UserInfo,
    /// A token response with a JWT (which writes nothing to the store).
    JwtToken,
}

/// The expected answer of a case.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// An OAuth error: status and `error`, a JSON body with `Cache-Control: no-store`;
    /// 401 and 403 with the matching `WWW-Authenticate` challenge.
    Error(u16, &'static str),
    /// 405 with `Allow` and an `invalid_request` body (no body for HEAD).
    Method(&'static str),
    /// 200 with a body of this kind (none for HEAD).
    Ok(Body),
    /// 200 with an empty body (revocation).
    Empty,
    /// Refused by hyper before the endpoint sees it: this status, and no body.
    Hyper(u16),
    /// A request head over the limit: 431 from hyper, or the connection closed.
    TooLarge,
    /// The connection closed without an answer.
    Closed,
}

struct Case {
    name: String,
    req: Req,
    want: Want,
}

fn case(name: impl Into<String>, req: Req, want: Want) -> Case {
    Case { name: name.into(), req, want }
}

/// The facts the checks need.
struct Ctx {
    issuer: String,
    jwt_user_id: String,
}

/// Checks one outcome; returns what is wrong with it, if anything.
fn check(ctx: &Ctx, want: Want, head: bool, outcome: &Outcome) -> Option<String> {
    let answer = match (want, outcome) {
        (Want::Closed, Outcome::Closed) | (Want::TooLarge, Outcome::Closed) => return None,
        (_, Outcome::Answer(answer)) => answer,
        _ => return Some("no HTTP answer".to_owned()),
    };
    let mut problems = Vec::new();
    if answer.status >= 500 {
        problems.push("a 5xx answer".to_owned());
    }
    if answer.trailing != 0 {
        problems.push(format!("{} bytes after the answer", answer.trailing));
    }
    let status = |expected: u16, problems: &mut Vec<String>| {
        if answer.status != expected {
            problems.push(format!("status {} instead of {expected}", answer.status));
        }
    };
    match want {
        Want::Error(code, error) => {
            status(code, &mut problems);
            oauth_error(answer, error, head, &mut problems);
            // The challenge a 401 or 403 must carry: Basic for client authentication,
            // Bearer with the error for a presented token (RFC 6749 §5.2, RFC 6750 §3).
            let expected = match (code, error) {
                (401, "invalid_client") => Some("Basic realm=\"tessera\"".to_owned()),
                (401 | 403, _) => Some(format!("Bearer realm=\"tessera\", error=\"{error}\"")),
                _ => None,
            };
            let challenge = answer.header("www-authenticate");
            if let Some(expected) = expected
                && !challenge.is_some_and(|c| c.starts_with(&expected))
            {
                problems.push(format!("WWW-Authenticate {challenge:?} instead of {expected:?}"));
            }
        }
        Want::Method(allow) => {
            status(405, &mut problems);
            if answer.header("allow") != Some(allow) {
                problems.push(format!("Allow {:?} instead of {allow:?}", answer.header("allow")));
            }
            oauth_error(answer, "invalid_request", head, &mut problems);
        }
        Want::Ok(kind) => {
            status(200, &mut problems);
            if head {
                if !answer.body.is_empty() {
                    problems.push("a body on HEAD".to_owned());
                }
            } else if let Some(problem) = check_body(ctx, kind, answer) {
                problems.push(problem);
            }
        }
        Want::Empty => {
            status(200, &mut problems);
            if !answer.body.is_empty() {
                problems.push("a body".to_owned());
            }
        }
        Want::Hyper(code) => {
            status(code, &mut problems);
            if !answer.body.is_empty() {
                problems.push("a body".to_owned());
            }
        }
        Want::TooLarge => status(431, &mut problems),
        Want::Closed => problems.push("an answer instead of a closed connection".to_owned()),
    }
    (!problems.is_empty()).then(|| problems.join(", "))
}

fn oauth_error(answer: &Answer, error: &str, head: bool, problems: &mut Vec<String>) {
    if head {
        if !answer.body.is_empty() {
            problems.push("a body on HEAD".to_owned());
        }
        return;
    }
    if answer.error().as_deref() != Some(error) {
        problems.push(format!("error {:?} instead of {error:?}", answer.error()));
    }
    if answer.json().is_some_and(|v| !v["error_description"].is_string()) {
        problems.push("no error_description".to_owned());
    }
    if answer.header("content-type") != Some("application/json") {
        problems.push(format!("Content-Type {:?}", answer.header("content-type")));
    }
    if answer.header("cache-control") != Some("no-store") {
        problems.push(format!("Cache-Control {:?}", answer.header("cache-control")));
    }
}

fn check_body(ctx: &Ctx, kind: Body, answer: &Answer) -> Option<String> {
    let Some(json) = answer.json() else { return Some("a body that is not JSON".to_owned()) };
    let ok = match kind {
        Body::Health => json == serde_json::json!({"status": "ok"}),
        Body::Keys => json["keys"].as_array().is_some_and(|k| !k.is_empty()),
        Body::Discovery => {
            json["issuer"] == ctx.issuer.as_str()
                && json["token_endpoint"] == format!("{}{TOKEN}", ctx.issuer)
        }
        Body::Inactive => json == serde_json::json!({"active": false}),
        Body::UserInfo => json == serde_json::json!({"sub": ctx.jwt_user_id}),
        Body::JwtToken => {
            json["token_type"] == "Bearer"
                && json["access_token"].as_str().is_some_and(|t| t.split('.').count() == 3)
        }
    };
    (!ok).then(|| format!("unexpected body {json}"))
}

// ---------------------------------------------------------------------------------
// The world and the tables
// ---------------------------------------------------------------------------------

/// What the battery is run against.
struct World {
    opaque: Credentials,
    jwt: Credentials,
    app: Credentials,
    /// An opaque token of `opaque` (audience `orders`, scopes `openid profile`).
    opaque_token: String,
    /// A JWT of `jwt` (audience `orders`, scope `openid`).
    jwt_token: String,
    /// A JWT of `jwt` without `openid`.
    no_openid_token: String,
}

/// Answers from a socket for the setup's own valid requests.
fn send(addr: &str, req: Req) -> Answer {
    match exchange(addr, &req) {
        Outcome::Answer(answer) => answer,
        other => panic!(
            "{}: {}",
            String::from_utf8_lossy(&req.bytes()).lines().next().unwrap_or_default(),
            other.summary()
        ),
    }
}

fn issue(addr: &str, creds: &Credentials, scope: &str) -> String {
    let answer = send(
        addr,
        Req::form(TOKEN, format!("grant_type=client_credentials&scope={}", pct(scope.as_bytes())))
            .basic(&creds.client_id, &creds.client_secret),
    );
    assert_eq!(answer.status, 200, "{}", answer.summary());
    answer.json().and_then(|v| v["access_token"].as_str().map(str::to_owned)).expect("a token")
}

fn introspect_active(addr: &str, caller: &Credentials, token: &str) -> bool {
    let answer = send(
        addr,
        Req::form(INTROSPECT, format!("token={}", pct(token.as_bytes())))
            .basic(&caller.client_id, &caller.client_secret),
    );
    assert_eq!(answer.status, 200, "{}", answer.summary());
    answer.json().is_some_and(|v| v["active"] == true)
}

/// The methods an endpoint does not allow, standard and not (methods are case-sensitive,
/// so `get` is not GET). hyper hands each of them to the endpoint, which answers 405.
fn wrong_methods(allowed: &[&str]) -> Vec<&'static str> {
    [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT", "FOO",
        "get", "post",
    ]
    .into_iter()
    .filter(|m| !allowed.contains(m))
    .collect()
}

/// Cases every endpoint shares: wrong methods, paths next to the endpoint's, and
/// request heads that hyper refuses before the endpoint sees them. `base` is a
/// request the endpoint would otherwise answer with `base_want`.
fn http_cases(
    path: &str,
    allowed: &[&str],
    allow: &'static str,
    base: &Req,
    base_want: Want,
) -> Vec<Case> {
    let mut cases = Vec::new();
    for method in wrong_methods(allowed) {
        let mut req = base.clone();
        req.method = method.to_owned();
        cases.push(case(format!("method {method}"), req, Want::Method(allow)));
    }
    // A form body does not make a wrong method right.
    cases.push(case(
        "wrong method with a form body",
        Req::new(if allowed.contains(&"PUT") { "DELETE" } else { "PUT" }, path)
            .header("Content-Type", FORM)
            .body("grant_type=client_credentials&token=x"),
        Want::Method(allow),
    ));
    let not_found = Want::Error(404, "invalid_request");
    for (name, target) in [
        ("trailing slash", format!("{path}/")),
        ("upper case path", path.to_uppercase()),
        ("double slash", format!("/{path}")),
        ("dot segment", format!("{path}/../{}", path.rsplit('/').next().unwrap_or_default())),
        ("percent-encoded first letter", format!("/%{:02X}{}", path.as_bytes()[1], &path[2..])),
        ("NUL in path", format!("{path}%00")),
        ("suffix", format!("{path}x")),
    ] {
        let mut req = base.clone();
        req.target = target;
        cases.push(case(format!("path: {name}"), req, not_found));
    }
    let mut with_query = base.clone();
    with_query.target = format!("{path}?%ZZ&&==&token=&grant_type=password");
    cases.push(case("query string of garbage (ignored)", with_query, base_want));
    let mut absolute = base.clone();
    absolute.target = format!("http://tessera.test{path}");
    cases.push(case("absolute-form target", absolute, base_want));

    // Absurd Content-Length values: hyper refuses the head with a bare 400.
    for value in [
        "99999999999999999999",
        "18446744073709551616",
        "-1",
        "abc",
        "1e3",
        "+5",
        "0x10",
        "5, 6",
        "",
    ] {
        cases.push(case(
            format!("Content-Length {value:?}"),
            base.clone().length(value),
            Want::Hyper(400),
        ));
    }
    cases.push(case(
        "two different Content-Length headers",
        base.clone().header("Content-Length", "1").header("Content-Length", "2"),
        Want::Hyper(400),
    ));
    cases.push(case(
        "Transfer-Encoding other than chunked",
        base.clone().no_length().header("Transfer-Encoding", "gzip"),
        Want::Hyper(400),
    ));
    let line = |raw: &str| {
        Req::raw(format!(
            "{} {path} HTTP/1.1\r\nHost: tessera.test\r\n{raw}\r\nConnection: close\r\n\r\n",
            allowed[0]
        ))
    };
    cases.push(case("header name with a space", line("Bad Header: x"), Want::Hyper(400)));
    cases.push(case("header line without a colon", line("no-colon-here"), Want::Hyper(400)));
    cases.push(case("obsolete line folding", line("X-A: a\r\n  folded"), Want::Hyper(400)));
    cases.push(case(
        "NUL in a header value",
        Req::raw(format!(
            "{} {path} HTTP/1.1\r\nHost: tessera.test\r\nX-A: a\0b\r\nConnection: close\r\n\r\n",
            allowed[0]
        )),
        Want::Hyper(400),
    ));
    cases.push(case(
        "garbage request line",
        Req::raw(format!("{path} GARBAGE\r\nConnection: close\r\n\r\n")),
        Want::Hyper(400),
    ));
    cases.push(case(
        "unknown HTTP version",
        Req::raw(format!("{} {path} HTTP/9.9\r\nConnection: close\r\n\r\n", allowed[0])),
        Want::Hyper(400),
    ));
    cases.push(case(
        "request head cut short, then half-closed",
        Req::raw(format!("{} {path} HTTP/1.1\r\nHost: tessera.test\r\nContent-Ty", allowed[0]))
            .half_close(),
        Want::Closed,
    ));
    cases.push(case(
        "a 1 MiB Authorization header",
        base.clone().auth(format!("Bearer {}", "A".repeat(1 << 20))),
        Want::TooLarge,
    ));
    let mut many_headers = base.clone();
    for i in 0..150 {
        many_headers = many_headers.header(&format!("X-H{i}"), "v");
    }
    cases.push(case("150 headers", many_headers, Want::TooLarge));
    cases.push(case(
        "a 20 KiB header of another name",
        base.clone().header("X-Padding", "p".repeat(20 * 1024)),
        Want::TooLarge,
    ));
    let mut long_target = base.clone();
    long_target.target = format!("{path}?q={}", "q".repeat(20 * 1024));
    cases.push(case("a 20 KiB request target", long_target, Want::TooLarge));
    cases
}

/// Bad bodies of a form endpoint (token, introspection, revocation): `valid` is a
/// body the endpoint would accept apart from the credentials in `auth`.
fn form_body_cases(path: &str, auth: &str, valid: &str, valid_want: Want) -> Vec<Case> {
    let post = |body: &[u8]| Req::form(path, body).auth(auth);
    let invalid = Want::Error(400, "invalid_request");
    let too_large = Want::Error(413, "invalid_request");
    let big = format!("{valid}&pad={}", "x".repeat(MAX_BODY + 1));
    vec![
        // Truncated bodies: Content-Length promises more than arrives, then FIN.
        case(
            "body shorter than Content-Length, half-closed",
            post(&valid.as_bytes()[..valid.len() / 2])
                .length(&(valid.len() + 50).to_string())
                .half_close(),
            invalid,
        ),
        case(
            "Content-Length 100, nothing sent, half-closed",
            post(b"").length("100").half_close(),
            invalid,
        ),
        case(
            "chunked body cut off mid-chunk, half-closed",
            Req::raw(format!(
                "POST {path} HTTP/1.1\r\nHost: tessera.test\r\nAuthorization: {auth}\r\n\
                 Content-Type: {FORM}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                 40\r\n{}",
                &valid[..valid.len().min(20)]
            ))
            .half_close(),
            invalid,
        ),
        case(
            "malformed chunk size",
            Req::raw(format!(
                "POST {path} HTTP/1.1\r\nHost: tessera.test\r\nAuthorization: {auth}\r\n\
                 Content-Type: {FORM}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                 zz\r\n{valid}\r\n0\r\n\r\n"
            )),
            invalid,
        ),
        case(
            "chunk size that overflows 64 bits",
            Req::raw(format!(
                "POST {path} HTTP/1.1\r\nHost: tessera.test\r\nAuthorization: {auth}\r\n\
                 Content-Type: {FORM}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                 fffffffffffffffffff\r\n{valid}\r\n0\r\n\r\n"
            )),
            invalid,
        ),
        case(
            "chunked and Content-Length together",
            Req::raw(format!(
                "POST {path} HTTP/1.1\r\nHost: tessera.test\r\nAuthorization: {auth}\r\n\
                 Content-Type: {FORM}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\
                 Connection: close\r\n\r\n{:x}\r\n{valid}\r\n0\r\n\r\n",
                valid.len()
            )),
            valid_want,
        ),
        case(
            "chunked twice",
            Req::raw(format!(
                "POST {path} HTTP/1.1\r\nHost: tessera.test\r\nAuthorization: {auth}\r\n\
                 Content-Type: {FORM}\r\nTransfer-Encoding: chunked, chunked\r\n\
                 Connection: close\r\n\r\n{:x}\r\n{valid}\r\n0\r\n\r\n",
                valid.len()
            )),
            valid_want,
        ),
        case(
            "Expect: 100-continue with a bad body",
            post(b"%ZZ").header("Expect", "100-continue"),
            invalid,
        ),
        case(
            "Expect: 100-continue with Content-Length over 64 KiB, nothing sent",
            post(b"").header("Expect", "100-continue").length("70000").half_close(),
            too_large,
        ),
        // Oversized bodies.
        case("body over 64 KiB with Content-Length", post(big.as_bytes()), too_large),
        case("body over 64 KiB, chunked", post(big.as_bytes()).chunked(), too_large),
        case(
            "Content-Length over 64 KiB, little sent, half-closed",
            post(valid.as_bytes()).length(&(MAX_BODY + 1).to_string()).half_close(),
            too_large,
        ),
        case(
            "Content-Length of 10 GB, little sent, half-closed",
            post(valid.as_bytes()).length("10000000000").half_close(),
            too_large,
        ),
        case(
            "body of exactly 64 KiB + 1 byte",
            post(format!("{valid}&{}", "p".repeat(MAX_BODY - valid.len())).as_bytes()),
            too_large,
        ),
        // Without Content-Length or chunking a request has no body (RFC 9112 §6.3): the
        // bytes sent after the head are not read as its form.
        case("form sent without Content-Length", post(valid.as_bytes()).no_length(), invalid),
        case("over 64 KiB sent without Content-Length", post(big.as_bytes()).no_length(), invalid),
        // Encodings.
        case(
            "raw NUL byte in an unrelated parameter",
            post(format!("{valid}&x=\u{0}").as_bytes()),
            valid_want,
        ),
        case(
            "raw invalid UTF-8 in a value",
            post(&[valid.as_bytes(), b"&x=\xff\xfe"].concat()),
            invalid,
        ),
        case(
            "raw invalid UTF-8 in a name",
            post(&[valid.as_bytes(), b"&\xc3\x28=1"].concat()),
            invalid,
        ),
        case(
            "percent-encoded invalid UTF-8",
            post(format!("{valid}&x=%C3%28").as_bytes()),
            invalid,
        ),
        case(
            "percent-encoded lone surrogate",
            post(format!("{valid}&x=%ED%A0%80").as_bytes()),
            invalid,
        ),
        case("lone %", post(format!("{valid}&x=%").as_bytes()), invalid),
        case("% with one hex digit", post(format!("{valid}&x=%4").as_bytes()), invalid),
        case("% with non-hex digits", post(format!("{valid}&x=%ZZ").as_bytes()), invalid),
        case("% in a name", post(format!("{valid}&%G0=1").as_bytes()), invalid),
        case("65 parameters", post(format!("{valid}{}", "&a=b".repeat(65)).as_bytes()), invalid),
        // Content types.
        case("no Content-Type", Req::new("POST", path).auth(auth).body(valid), invalid),
        case(
            "JSON Content-Type and body",
            Req::new("POST", path)
                .auth(auth)
                .header("Content-Type", "application/json")
                .body(r#"{"grant_type":"client_credentials","token":"x"}"#),
            invalid,
        ),
        case(
            "text/plain",
            Req::new("POST", path).auth(auth).header("Content-Type", "text/plain").body(valid),
            invalid,
        ),
        case(
            "multipart/form-data",
            Req::new("POST", path)
                .auth(auth)
                .header("Content-Type", "multipart/form-data; boundary=x")
                .body(valid),
            invalid,
        ),
        case(
            "garbage Content-Type",
            Req::new("POST", path).auth(auth).header("Content-Type", ";;;==;").body(valid),
            invalid,
        ),
        case(
            "non-ASCII Content-Type",
            Req::new("POST", path)
                .auth(auth)
                .header("Content-Type", b"application/x-www-form-urlencoded\xff")
                .body(valid),
            invalid,
        ),
        case(
            "form type as a prefix of another",
            Req::new("POST", path)
                .auth(auth)
                .header("Content-Type", "application/x-www-form-urlencodedx")
                .body(valid),
            invalid,
        ),
        case(
            "two Content-Type headers, the first wrong",
            Req::new("POST", path)
                .auth(auth)
                .header("Content-Type", "text/plain")
                .header("Content-Type", FORM)
                .body(valid),
            invalid,
        ),
        case(
            "form type with parameters and odd case",
            Req::new("POST", path)
                .auth(auth)
                .header("Content-Type", "Application/X-WWW-Form-Urlencoded ; charset=UTF-8")
                .body(valid),
            valid_want,
        ),
    ]
}

/// Client authentication failures, for a form endpoint whose other parameters are
/// `params` (valid apart from the credentials).
fn client_auth_cases(path: &str, params: &str, world: &World) -> Vec<Case> {
    let unauthorized = Want::Error(401, "invalid_client");
    let invalid = Want::Error(400, "invalid_request");
    let form = |body: String| Req::form(path, body);
    let user = &world.opaque;
    vec![
        case("no credentials", form(params.to_owned()), unauthorized),
        case(
            "wrong secret",
            form(params.to_owned()).basic(&user.client_id, "wrong-secret"),
            unauthorized,
        ),
        case(
            "unknown client",
            form(params.to_owned()).basic("no-such-client", &user.client_secret),
            unauthorized,
        ),
        case(
            "another client's secret",
            form(params.to_owned()).basic(&user.client_id, &world.jwt.client_secret),
            unauthorized,
        ),
        case(
            "empty secret",
            form(params.to_owned()).auth(basic_raw(format!("{}:", user.client_id).as_bytes())),
            unauthorized,
        ),
        case(
            "empty client ID",
            form(params.to_owned()).auth(basic_raw(format!(":{}", user.client_secret).as_bytes())),
            unauthorized,
        ),
        case(
            "Basic without a colon",
            form(params.to_owned()).auth(basic_raw(b"nocolon")),
            unauthorized,
        ),
        case("Basic of non-base64", form(params.to_owned()).auth("Basic !!!!****"), unauthorized),
        case("Basic with nothing after it", form(params.to_owned()).auth("Basic"), unauthorized),
        case(
            "Basic with bad percent-encoding",
            form(params.to_owned()).auth(basic_raw(
                format!("{}%zz:{}", user.client_id, user.client_secret).as_bytes(),
            )),
            unauthorized,
        ),
        case(
            "Basic with invalid UTF-8",
            form(params.to_owned()).auth(basic_raw(b"svc-opaque:\xff\xfe")),
            unauthorized,
        ),
        case(
            "Basic header of 5000 bytes",
            form(params.to_owned()).auth(basic_raw(&[b'a'; 3700])),
            unauthorized,
        ),
        case("Bearer scheme", form(params.to_owned()).bearer(&world.opaque_token), unauthorized),
        case(
            "Digest scheme",
            form(params.to_owned()).auth(r#"Digest username="svc-opaque", realm="x""#),
            unauthorized,
        ),
        case("unknown scheme", form(params.to_owned()).auth("Negotiate YIIB"), unauthorized),
        case(
            "non-ASCII Authorization",
            form(params.to_owned()).auth(b"Basic \xff\xfe\xfd"),
            unauthorized,
        ),
        case(
            "two Authorization headers",
            form(params.to_owned())
                .basic(&user.client_id, &user.client_secret)
                .basic(&user.client_id, &user.client_secret),
            invalid,
        ),
        case(
            "Basic and client_secret in the body",
            form(format!("{params}&client_secret={}", user.client_secret))
                .basic(&user.client_id, &user.client_secret),
            invalid,
        ),
        case(
            "Basic and a different client_id in the body",
            form(format!("{params}&client_id=someone-else"))
                .basic(&user.client_id, &user.client_secret),
            invalid,
        ),
        case(
            "client_secret_post with a wrong secret",
            form(format!("{params}&client_id={}&client_secret=wrong", user.client_id)),
            unauthorized,
        ),
        case(
            "client_secret_post with a client_id of 10 000 characters",
            form(format!("{params}&client_id={}&client_secret=x", "c".repeat(10_000))),
            unauthorized,
        ),
        case(
            "client_secret_post with a NUL in the client_id",
            form(format!(
                "{params}&client_id={}%00&client_secret={}",
                user.client_id, user.client_secret
            )),
            unauthorized,
        ),
        case(
            "client_secret_post with invalid UTF-8 in the secret",
            form(format!("{params}&client_id={}&client_secret=%FF", user.client_id)),
            invalid,
        ),
        case(
            "client_id without a secret",
            form(format!("{params}&client_id={}", user.client_id)),
            unauthorized,
        ),
        case(
            "empty client_id and client_secret",
            form(format!("{params}&client_id=&client_secret=")),
            unauthorized,
        ),
        case(
            "client_id repeated",
            form(format!(
                "{params}&client_id={0}&client_id={0}&client_secret={1}",
                user.client_id, user.client_secret
            )),
            invalid,
        ),
        case(
            "client_secret repeated",
            form(format!(
                "{params}&client_id={0}&client_secret={1}&client_secret={1}",
                user.client_id, user.client_secret
            )),
            invalid,
        ),
        case(
            "unknown client_assertion_type",
            form(format!("{params}&client_assertion_type=urn%3Ax&client_assertion=a.b.c")),
            unauthorized,
        ),
        case(
            "client_assertion_type without client_assertion",
            form(format!("{params}&client_assertion_type={ASSERTION_TYPE}")),
            invalid,
        ),
        case(
            "garbage client_assertion",
            form(format!(
                "{params}&client_assertion_type={ASSERTION_TYPE}&client_assertion=not.a.jwt"
            )),
            unauthorized,
        ),
        case(
            "client_assertion and Basic",
            form(format!("{params}&client_assertion_type={ASSERTION_TYPE}&client_assertion=a.b.c"))
                .basic(&user.client_id, &user.client_secret),
            invalid,
        ),
    ]
}

/// Token-parameter cases of introspection and revocation, authenticated as `caller`.
/// `unknown` is the answer to an unknown but well-formed token.
fn token_param_cases(path: &str, caller: &Credentials, world: &World, unknown: Want) -> Vec<Case> {
    let invalid = Want::Error(400, "invalid_request");
    let form = |body: String| Req::form(path, body).basic(&caller.client_id, &caller.client_secret);
    let mut cases = vec![
        case("no token", form(String::new()), invalid),
        case("empty token", form("token=".to_owned()), invalid),
        case("token without =", form("token".to_owned()), invalid),
        case("only ampersands", form("&&&&".to_owned()), invalid),
        case("token repeated", form(format!("token={0}&token={0}", world.opaque_token)), invalid),
        case(
            "token repeated, once empty",
            form(format!("token={}&token=", world.opaque_token)),
            invalid,
        ),
        case(
            "token_type_hint repeated",
            form("token=x&token_type_hint=a&token_type_hint=b".to_owned()),
            invalid,
        ),
        case("TOKEN in upper case", form("TOKEN=abc".to_owned()), invalid),
        case("unknown token", form("token=unknown-token".to_owned()), unknown),
        case("empty token_type_hint", form("token=abc&token_type_hint=".to_owned()), unknown),
        case(
            "unknown token_type_hint",
            form("token=abc&token_type_hint=id_token".to_owned()),
            unknown,
        ),
        case("token with spaces", form("token=a+b+c".to_owned()), unknown),
        case("token with NUL", form("token=%00".to_owned()), unknown),
        case("JWT-shaped garbage", form("token=a.b.c".to_owned()), unknown),
        case("token of dots", form("token=..".to_owned()), unknown),
        case(
            "JWT with alg none",
            form(format!(
                "token={}.{}.",
                Base64::encode_string(br#"{"alg":"none","typ":"at+jwt"}"#).trim_end_matches('='),
                Base64::encode_string(br#"{"sub":"1","exp":9999999999}"#).trim_end_matches('=')
            )),
            unknown,
        ),
        case(
            "a JWT with its signature cut off",
            form(format!("token={}", world.jwt_token.rsplit_once('.').map_or("", |p| p.0))),
            unknown,
        ),
        case(
            "a JWT with another signature",
            form(format!(
                "token={}.{}",
                world.jwt_token.rsplit_once('.').map_or("", |p| p.0),
                "A".repeat(86)
            )),
            unknown,
        ),
        case(
            "an opaque token with one character changed",
            form(format!("token={}", flip_last(&world.opaque_token))),
            unknown,
        ),
        case("token of 8193 characters", form(format!("token={}", "t".repeat(8193))), unknown),
        case(
            "token of 100 000 characters",
            form(format!("token={}", "t".repeat(100_000))),
            Want::Error(413, "invalid_request"),
        ),
    ];
    let mut rng = Rng(0x5EED_0000_0000_0001 ^ path.len() as u64);
    for len in [1, 2, 16, 32, 43, 51, 64, 256, 1024, 8192] {
        let bytes = rng.bytes(len);
        let want = if std::str::from_utf8(&bytes).is_ok() { unknown } else { invalid };
        cases.push(case(
            format!("{len} random bytes, percent-encoded"),
            form(format!("token={}", pct(&bytes))),
            want,
        ));
    }
    for len in [4, 43, 300] {
        let text = rng.unicode(len);
        cases.push(case(
            format!("{len} random Unicode characters, percent-encoded"),
            form(format!("token={}", pct(text.as_bytes()))),
            unknown,
        ));
    }
    for len in [8, 43, 51, 500] {
        let text = rng.printable(len);
        cases.push(case(
            format!("{len} random printable characters"),
            form(format!("token={}", pct(text.as_bytes()))),
            unknown,
        ));
    }
    cases
}

/// The token with its last character changed.
fn flip_last(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    if let Some(last) = chars.last_mut() {
        *last = if *last == 'A' { 'B' } else { 'A' };
    }
    chars.into_iter().collect()
}

fn token_table(w: &World) -> Vec<Case> {
    let auth = basic(&w.opaque.client_id, &w.opaque.client_secret);
    let jwt_auth = basic(&w.jwt.client_id, &w.jwt.client_secret);
    let valid = "grant_type=client_credentials&scope=openid";
    // Requests that would succeed are sent as the JWT user: issuing a JWT writes
    // nothing, so the store stays as it was.
    let base = Req::form(TOKEN, valid).auth(&jwt_auth);
    let mut cases = http_cases(TOKEN, &["POST"], "POST", &base, Want::Ok(Body::JwtToken));
    cases.extend(form_body_cases(TOKEN, &jwt_auth, valid, Want::Ok(Body::JwtToken)));
    cases.extend(client_auth_cases(TOKEN, "grant_type=client_credentials", w));
    let invalid = Want::Error(400, "invalid_request");
    let unsupported = Want::Error(400, "unsupported_grant_type");
    let bad_scope = Want::Error(400, "invalid_scope");
    let post = |body: &str| Req::form(TOKEN, body).auth(&auth);
    let many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
    cases.extend([
        case("empty body", post(""), invalid),
        case("empty grant_type", post("grant_type="), invalid),
        case("grant_type without =", post("grant_type"), invalid),
        case(
            "grant_type repeated",
            post("grant_type=client_credentials&grant_type=client_credentials"),
            invalid,
        ),
        case(
            "grant_type repeated, once empty",
            post("grant_type=client_credentials&grant_type="),
            invalid,
        ),
        case("grant_type password", post("grant_type=password&username=a&password=b"), unsupported),
        case(
            "grant_type authorization_code",
            post("grant_type=authorization_code&code=x"),
            unsupported,
        ),
        case(
            "grant_type refresh_token",
            post("grant_type=refresh_token&refresh_token=x"),
            unsupported,
        ),
        case("grant_type implicit", post("grant_type=implicit"), unsupported),
        case(
            "grant_type device_code",
            post("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"),
            unsupported,
        ),
        case(
            "grant_type token-exchange",
            post("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"),
            unsupported,
        ),
        case("grant_type in upper case", post("grant_type=CLIENT_CREDENTIALS"), unsupported),
        case("grant_type with a NUL", post("grant_type=client_credentials%00"), unsupported),
        case("grant_type with a space", post("grant_type=client_credentials+"), unsupported),
        case(
            "grant_type of 10 000 characters",
            post(&format!("grant_type={}", "g".repeat(10_000))),
            unsupported,
        ),
        case("jwt-bearer without assertion", post(&format!("grant_type={JWT_BEARER}")), invalid),
        case(
            "jwt-bearer with a garbage assertion",
            post(&format!("grant_type={JWT_BEARER}&assertion=a.b.c")),
            Want::Error(400, "invalid_grant"),
        ),
        case(
            "jwt-bearer with an access token as the assertion",
            post(&format!("grant_type={JWT_BEARER}&assertion={}", w.jwt_token)),
            Want::Error(400, "invalid_grant"),
        ),
        case(
            "jwt-bearer with assertion repeated",
            post(&format!("grant_type={JWT_BEARER}&assertion=a&assertion=b")),
            invalid,
        ),
        case(
            "scope repeated",
            post("grant_type=client_credentials&scope=openid&scope=profile"),
            invalid,
        ),
        case(
            "scope with a quote",
            post("grant_type=client_credentials&scope=open%22id"),
            bad_scope,
        ),
        case(
            "scope with a backslash",
            post("grant_type=client_credentials&scope=open%5Cid"),
            bad_scope,
        ),
        case(
            "scope with a tab",
            post("grant_type=client_credentials&scope=openid%09profile"),
            bad_scope,
        ),
        case(
            "scope with two spaces",
            post("grant_type=client_credentials&scope=openid++profile"),
            bad_scope,
        ),
        case(
            "scope with a leading space",
            post("grant_type=client_credentials&scope=+openid"),
            bad_scope,
        ),
        case(
            "scope of non-ASCII",
            post("grant_type=client_credentials&scope=%C3%A9t%C3%A9"),
            bad_scope,
        ),
        case(
            "scope offline_access",
            post("grant_type=client_credentials&scope=openid+offline_access"),
            bad_scope,
        ),
        case("unknown scope", post("grant_type=client_credentials&scope=admin"), bad_scope),
        case(
            "scope of 5000 characters",
            post(&format!("grant_type=client_credentials&scope={}", "s".repeat(5000))),
            bad_scope,
        ),
        case(
            "65 distinct scopes",
            post(&format!("grant_type=client_credentials&scope={}", many.join("+"))),
            bad_scope,
        ),
        // The scope's syntax is checked before the credentials, what it asks for after.
        case(
            "malformed scope from an unknown client",
            Req::form(TOKEN, "grant_type=client_credentials&scope=open%22id").basic("nobody", "x"),
            bad_scope,
        ),
        case(
            "disallowed scope from an unknown client",
            Req::form(TOKEN, "grant_type=client_credentials&scope=admin").basic("nobody", "x"),
            Want::Error(401, "invalid_client"),
        ),
        case(
            "scope of 100 000 characters",
            post(&format!("grant_type=client_credentials&scope={}", "s".repeat(100_000))),
            Want::Error(413, "invalid_request"),
        ),
        case(
            "empty scope counts as omitted",
            Req::form(TOKEN, "grant_type=client_credentials&scope=").auth(&jwt_auth),
            Want::Ok(Body::JwtToken),
        ),
        case(
            "empty unknown parameters are ignored",
            Req::form(TOKEN, "grant_type=client_credentials&&=&x=&=y").auth(&jwt_auth),
            Want::Ok(Body::JwtToken),
        ),
        case(
            "client_id in the body matching Basic is allowed",
            Req::form(
                TOKEN,
                format!("grant_type=client_credentials&client_id={}", w.jwt.client_id),
            )
            .auth(&jwt_auth),
            Want::Ok(Body::JwtToken),
        ),
        case(
            "an API app cannot get tokens",
            Req::form(TOKEN, "grant_type=client_credentials")
                .basic(&w.app.client_id, &w.app.client_secret),
            Want::Error(401, "invalid_client"),
        ),
    ]);
    cases
}

fn introspect_or_revoke_table(path: &str, w: &World) -> Vec<Case> {
    let auth = basic(&w.app.client_id, &w.app.client_secret);
    let (unknown, foreign) = if path == INTROSPECT {
        (Want::Ok(Body::Inactive), Want::Ok(Body::Inactive))
    } else {
        (Want::Empty, Want::Error(400, "unauthorized_client"))
    };
    let valid = "token=unknown-token";
    let base = Req::form(path, valid).auth(&auth);
    let mut cases = http_cases(path, &["POST"], "POST", &base, unknown);
    cases.extend(form_body_cases(path, &auth, valid, unknown));
    cases.extend(client_auth_cases(path, valid, w));
    cases.extend(token_param_cases(path, &w.app, w, unknown));
    cases.extend(token_param_cases(path, &w.opaque, w, unknown).into_iter().take(3).map(
        |mut c| {
            c.name = format!("as a service user: {}", c.name);
            c
        },
    ));
    // The token parameter is checked before the caller: a missing token is
    // invalid_request even without credentials.
    cases.push(case(
        "no token and no credentials",
        Req::form(path, ""),
        Want::Error(400, "invalid_request"),
    ));
    cases.push(case(
        "unknown token and no credentials",
        Req::form(path, valid),
        Want::Error(401, "invalid_client"),
    ));
    // Someone else's live token: inactive for introspection, refused for revocation,
    // and in both cases left alone.
    cases.push(case(
        "another user's token",
        Req::form(path, format!("token={}", w.jwt_token))
            .basic(&w.opaque.client_id, &w.opaque.client_secret),
        foreign,
    ));
    cases.push(case(
        "another user's opaque token",
        Req::form(path, format!("token={}", w.opaque_token))
            .basic(&w.jwt.client_id, &w.jwt.client_secret),
        foreign,
    ));
    cases.push(case(
        "a token whose audience is not the app's project",
        Req::form(path, format!("token={}", w.no_openid_token))
            .basic(&w.app.client_id, &w.app.client_secret),
        foreign,
    ));
    cases.push(case(
        "a live token with a wrong caller secret",
        Req::form(path, format!("token={}", w.opaque_token)).basic(&w.app.client_id, "wrong"),
        Want::Error(401, "invalid_client"),
    ));
    cases
}

fn userinfo_table(w: &World) -> Vec<Case> {
    let invalid_token = Want::Error(401, "invalid_token");
    let base = Req::get(USERINFO).bearer(&w.jwt_token);
    let mut cases =
        http_cases(USERINFO, &["GET", "POST"], "GET, POST", &base, Want::Ok(Body::UserInfo));
    let mut rng = Rng(0x0005_EED0_0000_0077);
    for method in ["GET", "POST"] {
        let req = || Req::new(method, USERINFO);
        let m = |name: &str| format!("{method}: {name}");
        cases.extend([
            case(m("no Authorization"), req(), invalid_token),
            case(m("Bearer alone"), req().auth("Bearer"), invalid_token),
            case(m("Bearer and spaces"), req().auth("Bearer     "), invalid_token),
            case(
                m("Bearer with spaces inside the token"),
                req().auth("Bearer a b c"),
                invalid_token,
            ),
            case(
                m("Bearer with a live token and trailing garbage"),
                req().auth(format!("Bearer {} garbage", w.jwt_token)),
                invalid_token,
            ),
            case(
                m("Bearer with a tab"),
                req().auth(format!("Bearer\t{}", w.jwt_token)),
                invalid_token,
            ),
            case(m("Bearer garbage"), req().bearer("garbage"), invalid_token),
            case(m("Bearer of dots"), req().bearer("a.b.c"), invalid_token),
            case(
                m("Bearer JWT without signature"),
                req().bearer(w.jwt_token.rsplit_once('.').map_or("", |p| p.0)),
                invalid_token,
            ),
            case(
                m("Bearer opaque token with one character changed"),
                req().bearer(&flip_last(&w.opaque_token)),
                invalid_token,
            ),
            case(m("Bearer of 8193 characters"), req().bearer(&"t".repeat(8193)), invalid_token),
            case(m("Bearer of non-ASCII bytes"), req().auth(b"Bearer \xff\xfe\xfd"), invalid_token),
            case(
                m("Basic credentials"),
                req().basic(&w.opaque.client_id, &w.opaque.client_secret),
                invalid_token,
            ),
            case(m("Digest scheme"), req().auth(r#"Digest username="x""#), invalid_token),
            case(m("token scheme"), req().auth(format!("Token {}", w.jwt_token)), invalid_token),
            case(
                m("scheme only, no space"),
                req().auth(format!("Bearer{}", w.jwt_token)),
                invalid_token,
            ),
            case(
                m("two Authorization headers"),
                req().bearer(&w.jwt_token).bearer(&w.jwt_token),
                Want::Error(400, "invalid_request"),
            ),
            case(
                m("access_token in the query (not supported)"),
                Req::new(method, &format!("{USERINFO}?access_token={}", w.jwt_token)),
                invalid_token,
            ),
            case(
                m("a token without openid"),
                req().bearer(&w.no_openid_token),
                Want::Error(403, "insufficient_scope"),
            ),
            case(
                m("lower-case scheme works"),
                req().auth(format!("bearer {}", w.jwt_token)),
                Want::Ok(Body::UserInfo),
            ),
        ]);
        for len in [16, 43, 512] {
            let token = pct(&rng.bytes(len));
            cases.push(case(
                m(&format!("Bearer of {len} random bytes, percent-encoded")),
                req().bearer(&token),
                invalid_token,
            ));
        }
    }
    // The body of a POST is not read: bad bodies change nothing.
    let post = || Req::new("POST", USERINFO);
    cases.extend([
        case(
            "POST: access_token in a form body (not supported)",
            post().header("Content-Type", FORM).body(format!("access_token={}", w.jwt_token)),
            invalid_token,
        ),
        case(
            "POST: truncated body, half-closed",
            post()
                .bearer(&w.jwt_token)
                .header("Content-Type", FORM)
                .body("abc")
                .length("100")
                .half_close(),
            Want::Ok(Body::UserInfo),
        ),
        case(
            "POST: body over 64 KiB, chunked",
            post()
                .bearer(&w.jwt_token)
                .header("Content-Type", FORM)
                .body("x".repeat(MAX_BODY + 10))
                .chunked(),
            Want::Ok(Body::UserInfo),
        ),
        case(
            "POST: body over 64 KiB with Content-Length",
            post().bearer("garbage").body("x".repeat(MAX_BODY + 10)),
            invalid_token,
        ),
        case(
            "POST: invalid UTF-8 body and a garbage Content-Type",
            post().bearer(&w.jwt_token).header("Content-Type", "%%;;").body(b"\xff\xfe%%"),
            Want::Ok(Body::UserInfo),
        ),
    ]);
    cases
}

/// Tables of the GET endpoints: wrong methods, hyper-level refusals, and requests
/// whose oddities the endpoint ignores.
fn get_table(path: &str, body: Body, w: &World) -> Vec<Case> {
    let ok = Want::Ok(body);
    let base = Req::get(path);
    let mut cases = http_cases(path, &["GET", "HEAD"], "GET, HEAD", &base, ok);
    let get = || Req::get(path);
    cases.extend([
        case("HEAD", Req::new("HEAD", path), ok),
        case("garbage Authorization", get().auth("Garbage ~~~ !!"), ok),
        case("bad Basic credentials", get().basic("nobody", "x"), ok),
        case("garbage Bearer token", get().bearer("garbage"), ok),
        case("a live token", get().bearer(&w.opaque_token), ok),
        case("garbage Content-Type", get().header("Content-Type", ";;;"), ok),
        case("a body with GET", get().header("Content-Type", FORM).body("grant_type=x"), ok),
        case("a truncated body, half-closed", get().body("abc").length("100").half_close(), ok),
        case("a chunked body over 64 KiB", get().body("x".repeat(MAX_BODY + 10)).chunked(), ok),
        case("invalid UTF-8 in a header value", get().header("X-Odd", b"\xff\xfe"), ok),
        case("Accept of garbage", get().header("Accept", "%%%/;;"), ok),
        case("Range header", get().header("Range", "bytes=0-1"), ok),
        case("If-None-Match", get().header("If-None-Match", "*"), ok),
        case("Expect 100-continue", get().header("Expect", "100-continue"), ok),
        case("Upgrade to websocket", get().header("Upgrade", "websocket"), ok),
        case("HTTP/1.0 without Host", Req::raw(format!("GET {path} HTTP/1.0\r\n\r\n")), ok),
        // RFC 9112 §3.2: an HTTP/1.1 request without a Host header, or with two, is
        // answered 400.
        case(
            "HTTP/1.1 without Host",
            Req::raw(format!("GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n")),
            Want::Error(400, "invalid_request"),
        ),
        case(
            "two Host headers",
            get().header("Host", "other.test"),
            Want::Error(400, "invalid_request"),
        ),
        case(
            "a 5000-byte query",
            {
                let mut r = get();
                r.target = format!("{path}?{}", "a=b&".repeat(1250));
                r
            },
            ok,
        ),
    ]);
    cases
}

// ---------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------

/// Every row of every table, as text, sorted.
fn snapshot(path: &Path) -> BTreeMap<String, Vec<Vec<String>>> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the database read-only");
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("list tables")
        .query_map([], |row| row.get(0))
        .expect("list tables")
        .collect::<Result<_, _>>()
        .expect("table names");
    tables.sort();
    let mut out = BTreeMap::new();
    for table in tables {
        let mut stmt =
            conn.prepare(&format!("SELECT * FROM \"{table}\" ORDER BY 1")).expect("select");
        let columns = stmt.column_count();
        let mut rows: Vec<Vec<String>> = stmt
            .query_map([], |row| {
                (0..columns)
                    .map(|i| row.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}")))
                    .collect()
            })
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("row values");
        rows.sort();
        out.insert(table, rows);
    }
    out
}

// ---------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------

#[test]
fn every_endpoint_survives_a_battery_of_malformed_requests_and_nothing_is_written() {
    let started = Instant::now();
    let db = temp_db();
    let project = cli_json(&db.url, &["project", "create", "--name", "Orders", "--id", "orders"]);
    assert_eq!(project["project_id"], "orders");
    let app =
        cli_json(&db.url, &["api-app", "create", "--project", "orders", "--name", "Orders API"]);
    let app = Credentials {
        client_id: app["client_id"].as_str().expect("client_id").to_owned(),
        client_secret: app["client_secret"].as_str().expect("client_secret").to_owned(),
        user_id: String::new(),
    };
    let opaque = create_user(&db.url, "svc-opaque", &["--display-name", "Opaque job"]);
    let jwt = create_user(&db.url, "svc-jwt", &["--access-token-type", "jwt"]);
    let server = Server::start(&db.url, &["--no-throttle"]);
    let addr = server.base.trim_start_matches("http://").to_owned();

    let aud = "urn:zitadel:iam:org:project:id:orders:aud";
    let opaque_token = issue(&addr, &opaque, &format!("openid profile {aud}"));
    let jwt_token = issue(&addr, &jwt, &format!("openid {aud}"));
    let no_openid_token = issue(&addr, &jwt, "profile");
    let world = World { opaque, jwt, app, opaque_token, jwt_token, no_openid_token };
    let ctx = Ctx { issuer: server.base.clone(), jwt_user_id: world.jwt.user_id.clone() };

    let before = snapshot(&db.path);
    assert_eq!(before["tokens"].len(), 1, "one opaque token record before the battery");

    let tables: Vec<(String, Vec<Case>)> = vec![
        (format!("POST {TOKEN}"), token_table(&world)),
        (format!("POST {INTROSPECT}"), introspect_or_revoke_table(INTROSPECT, &world)),
        (format!("POST {REVOKE}"), introspect_or_revoke_table(REVOKE, &world)),
        (format!("GET|POST {USERINFO}"), userinfo_table(&world)),
        (format!("GET {KEYS}"), get_table(KEYS, Body::Keys, &world)),
        (format!("GET {OPENID}"), get_table(OPENID, Body::Discovery, &world)),
        (format!("GET {OAUTH_METADATA}"), get_table(OAUTH_METADATA, Body::Discovery, &world)),
        (format!("GET {HEALTH}"), get_table(HEALTH, Body::Health, &world)),
    ];
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    // BATTERY_VERBOSE=1 prints every case's answer.
    let verbose = std::env::var_os("BATTERY_VERBOSE").is_some();
    let battery_started = Instant::now();
    for (endpoint, cases) in &tables {
        counts.push(format!("{endpoint}: {} cases", cases.len()));
        assert!(cases.len() >= 40, "{endpoint} has only {} cases", cases.len());
        for case in cases {
            let outcome = exchange(&addr, &case.req);
            if verbose {
                eprintln!("{endpoint} — {}: {}", case.name, outcome.summary());
            }
            if let Some(problem) = check(&ctx, case.want, case.req.is_head(), &outcome) {
                failures.push(format!(
                    "{endpoint} — {}: expected {:?}; got {} ({problem})",
                    case.name,
                    case.want,
                    outcome.summary()
                ));
            }
        }
    }
    let battery_time = battery_started.elapsed();
    let total: usize = tables.iter().map(|(_, c)| c.len()).sum();
    eprintln!("battery: {total} cases in {battery_time:?}\n  {}", counts.join("\n  "));

    // The store holds exactly what it held before.
    let after = snapshot(&db.path);
    let mut changed = Vec::new();
    for (table, rows) in &before {
        if after.get(table) != Some(rows) {
            changed.push(format!(
                "table {table}: {} rows before, {} after",
                rows.len(),
                after.get(table).map_or(0, Vec::len)
            ));
        }
    }
    for table in after.keys().filter(|t| !before.contains_key(*t)) {
        changed.push(format!("table {table} appeared"));
    }

    // The server still serves, and the tokens issued before are still active.
    let health = send(&addr, Req::get(HEALTH));
    assert_eq!(health.status, 200, "{}", health.summary());
    let fresh = issue(&addr, &world.opaque, "openid");
    // The snapshot sees writes: the valid request just now added one token record.
    assert_eq!(snapshot(&db.path)["tokens"].len(), before["tokens"].len() + 1);
    assert!(introspect_active(&addr, &world.opaque, &fresh), "a new token is active");
    assert!(
        introspect_active(&addr, &world.opaque, &world.opaque_token),
        "the opaque token issued before the battery is still active"
    );
    assert!(
        introspect_active(&addr, &world.jwt, &world.jwt_token),
        "the JWT issued before the battery is still active"
    );
    assert!(introspect_active(&addr, &world.app, &world.opaque_token));
    assert!(introspect_active(&addr, &world.app, &world.jwt_token));
    let logs = server.logs();
    for bad in ["panicked", "storage failed", "minting failed"] {
        assert!(!logs.contains(bad), "the server logged {bad:?}");
    }
    assert!(!logs.contains(&world.opaque.client_secret), "no secret in the logs");
    assert!(!logs.contains(&world.opaque_token), "no token in the logs");

    assert!(
        failures.is_empty() && changed.is_empty(),
        "{} of {total} cases failed:\n{}\nstore changes: {changed:?}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("battery test took {:?}", started.elapsed());
}

/// With throttling on (the default), failed authentications from one address for one
/// client are answered 401 ten times, then 429 with `Retry-After`, also for the right
/// secret.
#[test]
fn with_throttling_bad_credentials_are_401_then_429() {
    let db = temp_db();
    let user = create_user(&db.url, "svc", &[]);
    let server = Server::start(&db.url, &[]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let attempt = |secret: &str| {
        send(&addr, Req::form(TOKEN, "grant_type=client_credentials").basic("svc", secret))
    };
    for i in 0..10 {
        let answer = attempt("wrong");
        assert_eq!(
            (answer.status, answer.error().as_deref()),
            (401, Some("invalid_client")),
            "attempt {i}: {}",
            answer.summary()
        );
    }
    for secret in ["wrong", user.client_secret.as_str()] {
        let answer = attempt(secret);
        assert_eq!(answer.status, 429, "{}", answer.summary());
        assert_eq!(answer.error().as_deref(), Some("temporarily_unavailable"));
        assert!(answer.header("retry-after").and_then(|r| r.parse::<u64>().ok()).is_some());
    }
}
