//! The token endpoint on a real TCP socket, served by hyper-util's auto connection
//! builder over a [`MemoryStore`].
//!
//! A table of bad requests checks that each is answered with the exact status, OAuth
//! `error` code and headers, and that none of them writes a token record. Further
//! tests check the success response, oversized headers, and the `oauth2` crate as a
//! client with credentials that RFC 6749 §2.3.1 form-encoding changes.

use std::net::SocketAddr;
use std::sync::Arc;

use base64ct::{Base64, Encoding};
use bytes::Bytes;
use http::header::{
    ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use oauth2::basic::BasicClient;
use oauth2::reqwest;
use oauth2::{AuthType, ClientId, Scope, TokenResponse as _, TokenUrl};
use serde_json::{Value, json};
use tessera_endpoint::{
    DEFAULT_MAX_BODY, HEALTH_PATH, Issuer, MAX_AUTHORIZATION_LEN, TOKEN_PATH, TokenEndpoint,
};
use tessera_mint::TokenMinter;
use tessera_store::prelude::*;
use tessera_store::{
    ClientSecret, Credentials, MemoryStore, SecretDigest, ServiceUser, TokenDigest, Username,
};
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The form content type.
const FORM: &str = "application/x-www-form-urlencoded";
/// The grant parameter of every client credentials request.
const CC: &str = "grant_type=client_credentials";

// ---------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------

/// A `TokenEndpoint` accepting connections on 127.0.0.1; the accept loop stops on drop.
struct Server {
    addr: SocketAddr,
    store: Arc<MemoryStore>,
    accept: JoinHandle<()>,
}

impl Server {
    async fn start(store: Arc<MemoryStore>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let minter = TokenMinter::new(format!("http://{addr}"));
        let endpoint = TokenEndpoint::new(Issuer::new(store.clone(), minter));
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let endpoint = endpoint.clone();
                tokio::spawn(async move {
                    // Connection-level errors (a client hanging up, a head too large)
                    // end that connection only.
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), endpoint)
                        .await;
                });
            }
        });
        Ok(Self { addr, store, accept })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Deletes every token record and returns how many there were.
    async fn purge_all_tokens(&self) -> Result<u64, tessera_store::StoreError> {
        let far_future = OffsetDateTime::now_utc() + Duration::days(2 * 366);
        self.store.purge_expired_tokens(far_future).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A server whose store holds `svc` (enabled) and `svc-disabled` (disabled), each
/// with a generated secret.
struct Fixture {
    server: Server,
    secret: ClientSecret,
    disabled_secret: ClientSecret,
}

async fn add_user(
    store: &MemoryStore,
    name: &str,
    secret: &ClientSecret,
    enabled: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut user = ServiceUser::new(Username::new(name)?, OffsetDateTime::now_utc())?;
    user.credentials = Credentials::new(SecretDigest::of(secret)?);
    user.enabled = enabled;
    store.create_service_user(&user).await?;
    Ok(())
}

async fn fixture() -> Result<Fixture, Box<dyn std::error::Error>> {
    let store = Arc::new(MemoryStore::new());
    let secret = ClientSecret::generate()?;
    let disabled_secret = ClientSecret::generate()?;
    add_user(&store, "svc", &secret, true).await?;
    add_user(&store, "svc-disabled", &disabled_secret, false).await?;
    Ok(Fixture { server: Server::start(store).await?, secret, disabled_secret })
}

// ---------------------------------------------------------------------------
// Requests and replies
// ---------------------------------------------------------------------------

/// One HTTP request, described by what goes on the wire.
#[derive(Clone)]
struct Req {
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    /// Each entry is one `Authorization` header, as raw bytes.
    authorization: Vec<Vec<u8>>,
    body: Vec<u8>,
    /// Send the body with `Transfer-Encoding: chunked` and no `Content-Length`.
    chunked: bool,
}

/// A form POST to the token endpoint.
fn post(body: impl Into<Vec<u8>>) -> Req {
    Req {
        method: Method::POST,
        path: TOKEN_PATH,
        content_type: Some(FORM),
        authorization: Vec::new(),
        body: body.into(),
        chunked: false,
    }
}

/// A request without a body or content type.
fn bare(method: Method, path: &'static str) -> Req {
    Req {
        method,
        path,
        content_type: None,
        authorization: Vec::new(),
        body: Vec::new(),
        chunked: false,
    }
}

impl Req {
    /// Adds a well-formed `Authorization: Basic` header with form-encoded id and secret.
    fn basic(self, id: &str, secret: &str) -> Self {
        let raw = format!("{}:{}", form_encode(id), form_encode(secret));
        self.basic_of(raw.as_bytes())
    }

    /// Adds `Authorization: Basic base64(raw)`, whatever `raw` holds.
    fn basic_of(self, raw: &[u8]) -> Self {
        self.authorization(format!("Basic {}", Base64::encode_string(raw)))
    }

    /// Adds an `Authorization` header with exactly these bytes.
    fn authorization(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.authorization.push(value.into());
        self
    }

    fn content_type(mut self, content_type: Option<&'static str>) -> Self {
        self.content_type = content_type;
        self
    }

    fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }

    fn with_method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    fn at(mut self, path: &'static str) -> Self {
        self.path = path;
        self
    }
}

/// Form-encodes one value as RFC 6749 §2.3.1 asks for Basic credentials
/// (`application/x-www-form-urlencoded`, as the `url` crate does).
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                char::from(b).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A response as received.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// An HTTP/1.1 client that opens a new connection per request, so that a connection
/// the server closed (after a 413, say) is never reused.
fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
}

async fn send(
    client: &reqwest::Client,
    server: &Server,
    req: &Req,
) -> Result<Reply, Box<dyn std::error::Error>> {
    if req.chunked {
        return send_chunked(server.addr, req).await;
    }
    let mut builder = client.request(req.method.clone(), server.url(req.path));
    for value in &req.authorization {
        builder = builder.header(AUTHORIZATION, HeaderValue::from_bytes(value)?);
    }
    if let Some(content_type) = req.content_type {
        builder = builder.header(CONTENT_TYPE, content_type);
    }
    let response = builder.body(req.body.clone()).send().await?;
    Ok(Reply {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.bytes().await?,
    })
}

/// Sends `req` over a raw HTTP/1.1 connection with a chunked body (reqwest cannot
/// stream a body without its `stream` feature). The body is written concurrently
/// with reading the reply, since the server may answer before reading it all.
async fn send_chunked(addr: SocketAddr, req: &Req) -> Result<Reply, Box<dyn std::error::Error>> {
    let mut wire = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n",
        req.method, req.path
    )
    .into_bytes();
    if let Some(content_type) = req.content_type {
        wire.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
    }
    for value in &req.authorization {
        wire.extend_from_slice(b"Authorization: ");
        wire.extend_from_slice(value);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    for chunk in req.body.chunks(8192) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");

    let (mut reader, mut writer) = TcpStream::connect(addr).await?.into_split();
    let write = tokio::spawn(async move {
        // The server may stop reading once it has answered; a failed write is fine.
        let _ = writer.write_all(&wire).await;
        writer
    });
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    let reply = loop {
        if let Some(reply) = parse_reply(&received)? {
            break reply;
        }
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Err(format!("connection closed after {} bytes of reply", received.len()).into());
        }
        received.extend_from_slice(&buf[..n]);
    };
    write.abort();
    Ok(reply)
}

/// Parses a complete HTTP/1.1 reply with a `Content-Length` body; `None` while
/// `raw` holds only part of one.
fn parse_reply(raw: &[u8]) -> Result<Option<Reply>, Box<dyn std::error::Error>> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&raw[..end])?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty reply")?;
    let status = status_line.split(' ').nth(1).ok_or("no status code")?.parse::<u16>()?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or("malformed header line")?;
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes())?,
            HeaderValue::from_str(value.trim())?,
        );
    }
    let length: usize = match headers.get(CONTENT_LENGTH) {
        Some(v) => v.to_str()?.parse()?,
        None => return Err("reply without Content-Length".into()),
    };
    let body = &raw[end + 4..];
    if body.len() < length {
        return Ok(None);
    }
    Ok(Some(Reply {
        status: StatusCode::from_u16(status)?,
        headers,
        body: Bytes::copy_from_slice(&body[..length]),
    }))
}

// ---------------------------------------------------------------------------
// The bad-input battery
// ---------------------------------------------------------------------------

/// The answer a bad request must get.
#[derive(Debug, Clone, Copy)]
struct Expect {
    status: u16,
    error: &'static str,
    allow: Option<&'static str>,
}

const fn expect(status: u16, error: &'static str) -> Expect {
    Expect { status, error, allow: None }
}

const INVALID_CLIENT: Expect = expect(401, "invalid_client");
const INVALID_REQUEST: Expect = expect(400, "invalid_request");
const UNSUPPORTED_GRANT_TYPE: Expect = expect(400, "unsupported_grant_type");
const INVALID_SCOPE: Expect = expect(400, "invalid_scope");
const TOO_LARGE: Expect = expect(413, "invalid_request");
const NOT_FOUND: Expect = expect(404, "invalid_request");
const POST_ONLY: Expect = Expect { allow: Some("POST"), ..expect(405, "invalid_request") };
const GET_HEAD_ONLY: Expect = Expect { allow: Some("GET, HEAD"), ..expect(405, "invalid_request") };

struct Case {
    name: &'static str,
    req: Req,
    expect: Expect,
}

fn case(name: &'static str, req: Req, expect: Expect) -> Case {
    Case { name, req, expect }
}

#[rustfmt::skip]
fn battery(fx: &Fixture) -> Vec<Case> {
    let s = fx.secret.expose();
    let off = fx.disabled_secret.expose();
    let in_body = |id: &str, secret: &str| format!("{CC}&client_id={id}&client_secret={secret}");
    let with = |params: &str| format!("{CC}&{params}");
    let scope = |encoded: &str| format!("{CC}&scope={encoded}");
    let over_limit = format!("{CC}&pad={}", "a".repeat(DEFAULT_MAX_BODY));
    let many_params = format!("{CC}{}", "&x=1".repeat(64));

    vec![
        // Every authentication failure looks the same: 401 invalid_client with a Basic challenge.
        case("unknown client, Basic",          post(CC).basic("nobody", s),                        INVALID_CLIENT),
        case("unknown client, body",           post(in_body("nobody", s)),                         INVALID_CLIENT),
        case("wrong secret, Basic",            post(CC).basic("svc", "wrong"),                     INVALID_CLIENT),
        case("wrong secret, body",             post(in_body("svc", "wrong")),                      INVALID_CLIENT),
        case("other user's secret, Basic",     post(CC).basic("svc", off),                         INVALID_CLIENT),
        case("disabled user, Basic",           post(CC).basic("svc-disabled", off),                INVALID_CLIENT),
        case("disabled user, body",            post(in_body("svc-disabled", off)),                 INVALID_CLIENT),
        case("empty secret, Basic",            post(CC).basic("svc", ""),                          INVALID_CLIENT),
        case("malformed client id, Basic",     post(CC).basic("not a user!", s),                   INVALID_CLIENT),
        case("no credentials at all",          post(CC),                                           INVALID_CLIENT),
        case("client_id without secret",       post(with("client_id=svc")),                        INVALID_CLIENT),
        case("empty client_secret in body",    post(in_body("svc", "")),                           INVALID_CLIENT),

        // A malformed Authorization header is invalid_client too.
        case("Basic: not base64",              post(CC).authorization("Basic !!not*base64!!"),     INVALID_CLIENT),
        case("Basic: no colon",                post(CC).basic_of(format!("svc{s}").as_bytes()),    INVALID_CLIENT),
        case("Basic: empty client id",         post(CC).basic_of(format!(":{s}").as_bytes()),      INVALID_CLIENT),
        case("Basic: bad %-encoding in id",    post(CC).basic_of(format!("svc%zz:{s}").as_bytes()), INVALID_CLIENT),
        case("Basic: truncated % in secret",   post(CC).basic_of(format!("svc:{s}%").as_bytes()),  INVALID_CLIENT),
        case("Basic: decodes to non-UTF-8",    post(CC).basic_of(b"svc:\xff\xfe"),                 INVALID_CLIENT),
        case("Basic: %-decodes to non-UTF-8",  post(CC).basic_of(b"svc:%FF%FE"),                   INVALID_CLIENT),
        case("Basic: header is not UTF-8",     post(CC).authorization(b"Basic \xff\xfe".to_vec()), INVALID_CLIENT),
        case("Basic: scheme only",             post(CC).authorization("Basic"),                    INVALID_CLIENT),
        case("Bearer scheme",                  post(CC).authorization(format!("Bearer {s}")),      INVALID_CLIENT),
        case("Basic: over the length limit",   post(CC).authorization(format!("Basic {}", "A".repeat(MAX_AUTHORIZATION_LEN))), INVALID_CLIENT),

        // One authentication method per request, and no parameter twice (RFC 6749 §2.3, §3.2).
        case("credentials in header and body", post(in_body("svc", s)).basic("svc", s),            INVALID_REQUEST),
        case("header and body client_secret",  post(with(&format!("client_secret={s}"))).basic("svc", s), INVALID_REQUEST),
        case("header and other body client_id", post(with("client_id=nobody")).basic("svc", s),    INVALID_REQUEST),
        case("two Authorization headers",      post(CC).basic("svc", s).basic("svc", s),           INVALID_REQUEST),
        case("missing grant_type",             post("scope=openid").basic("svc", s),               INVALID_REQUEST),
        case("empty grant_type",               post("grant_type=").basic("svc", s),                INVALID_REQUEST),
        case("repeated grant_type",            post(with(CC)).basic("svc", s),                     INVALID_REQUEST),
        case("repeated scope",                 post(with("scope=openid&scope=openid")).basic("svc", s), INVALID_REQUEST),
        case("repeated client_id",             post(with(&format!("client_id=svc&client_id=svc&client_secret={s}"))), INVALID_REQUEST),
        case("repeated client_secret",         post(with(&format!("client_id=svc&client_secret={s}&client_secret={s}"))), INVALID_REQUEST),
        case("more than 64 parameters",        post(many_params).basic("svc", s),                  INVALID_REQUEST),

        // Only the client credentials grant exists.
        case("grant_type=password",            post("grant_type=password&username=u&password=p").basic("svc", s), UNSUPPORTED_GRANT_TYPE),
        case("grant_type=authorization_code",  post("grant_type=authorization_code&code=x").basic("svc", s), UNSUPPORTED_GRANT_TYPE),
        case("grant_type=refresh_token",       post("grant_type=refresh_token&refresh_token=x").basic("svc", s), UNSUPPORTED_GRANT_TYPE),
        case("grant_type in other case",       post("grant_type=Client_Credentials").basic("svc", s), UNSUPPORTED_GRANT_TYPE),

        // Scope syntax (RFC 6749 §3.3) and policy.
        case("scope with a quote",             post(scope("a%22b")).basic("svc", s),               INVALID_SCOPE),
        case("scope with a backslash",         post(scope("a%5Cb")).basic("svc", s),               INVALID_SCOPE),
        case("scope with a double space",      post(scope("openid%20%20profile")).basic("svc", s), INVALID_SCOPE),
        case("scope with a leading space",     post(scope("+openid")).basic("svc", s),             INVALID_SCOPE),
        case("scope with a tab",               post(scope("openid%09profile")).basic("svc", s),    INVALID_SCOPE),
        case("non-ASCII scope",                post(scope("%C3%A9t%C3%A9")).basic("svc", s),       INVALID_SCOPE),
        case("scope of 60000 characters",      post(scope(&"a".repeat(60_000))).basic("svc", s),   INVALID_SCOPE),
        case("offline_access",                 post(scope("offline_access")).basic("svc", s),      INVALID_SCOPE),
        case("openid offline_access",          post(scope("openid+offline_access")).basic("svc", s), INVALID_SCOPE),
        case("custom scope",                   post(scope("billing.read")).basic("svc", s),        INVALID_SCOPE),
        // 100000 characters do not fit in the 64 KiB body limit, which comes first.
        case("scope of 100000 characters",     post(scope(&"a".repeat(100_000))).basic("svc", s),  TOO_LARGE),

        // The body must be a form.
        case("application/json",               post(r#"{"grant_type":"client_credentials"}"#).basic("svc", s).content_type(Some("application/json")), INVALID_REQUEST),
        case("text/plain",                     post(CC).basic("svc", s).content_type(Some("text/plain")), INVALID_REQUEST),
        case("no content type",                post(CC).basic("svc", s).content_type(None),        INVALID_REQUEST),
        case("form type with a suffix",        post(CC).basic("svc", s).content_type(Some("application/x-www-form-urlencodedx")), INVALID_REQUEST),
        case("bad %-encoding in the body",     post(scope("%zz")).basic("svc", s),                 INVALID_REQUEST),
        case("truncated % in the body",        post(with("x=%4")).basic("svc", s),                 INVALID_REQUEST),
        case("body %-decodes to non-UTF-8",    post(with("x=%FF")).basic("svc", s),                INVALID_REQUEST),
        case("raw non-UTF-8 body",             post([CC.as_bytes(), b"&x=\xff"].concat()).basic("svc", s), INVALID_REQUEST),

        // Bodies over 64 KiB: 413, whether announced or not.
        case("body over 64 KiB, Content-Length", post(over_limit.clone()).basic("svc", s),         TOO_LARGE),
        case("body over 64 KiB, chunked",      post(over_limit).basic("svc", s).chunked(),         TOO_LARGE),

        // Routing.
        case("GET token endpoint",             bare(Method::GET, TOKEN_PATH),                      POST_ONLY),
        case("PUT token endpoint",             post(CC).basic("svc", s).with_method(Method::PUT),  POST_ONLY),
        case("DELETE token endpoint",          bare(Method::DELETE, TOKEN_PATH),                   POST_ONLY),
        case("PATCH token endpoint",           bare(Method::PATCH, TOKEN_PATH),                    POST_ONLY),
        case("POST health check",              post(CC).at(HEALTH_PATH),                             GET_HEAD_ONLY),
        case("unknown path",                   bare(Method::GET, "/oauth/v2/userinfo"),            NOT_FOUND),
        case("token path with trailing slash", post(CC).basic("svc", s).at("/oauth/v2/token/"), NOT_FOUND),
        case("root",                           bare(Method::GET, "/"),                             NOT_FOUND),
    ]
}

/// Everything wrong with `reply` as the answer to `case`.
fn mismatches(case: &Case, reply: &Reply) -> Vec<String> {
    let expect = case.expect;
    let mut wrong = Vec::new();
    let mut check = |what: &str, got: Option<&str>, want: Option<&str>| {
        if got != want {
            wrong.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    };
    let status = reply.status.as_u16().to_string();
    check("status", Some(&status), Some(&expect.status.to_string()));
    let body = reply.json().ok();
    let error = body.as_ref().and_then(|b| b["error"].as_str());
    check("error", error, Some(expect.error));
    let described =
        body.as_ref().and_then(|b| b["error_description"].as_str()).is_some_and(|d| !d.is_empty());
    check("has error_description", Some(&described.to_string()), Some("true"));
    check("content-type", reply.header(CONTENT_TYPE), Some("application/json"));
    check("cache-control", reply.header(CACHE_CONTROL), Some("no-store"));
    check("pragma", reply.header(PRAGMA), Some("no-cache"));
    let challenge = (expect.status == 401).then_some("Basic realm=\"tessera\"");
    check("www-authenticate", reply.header(WWW_AUTHENTICATE), challenge);
    check("allow", reply.header(ALLOW), expect.allow);
    wrong
}

#[tokio::test]
async fn bad_requests_get_exact_errors_and_write_nothing() -> TestResult {
    let fx = fixture().await?;
    let client = http_client()?;
    let cases = battery(&fx);
    let mut failures = Vec::new();
    for case in &cases {
        match send(&client, &fx.server, &case.req).await {
            Ok(reply) => {
                let wrong = mismatches(case, &reply);
                if !wrong.is_empty() {
                    failures.push(format!(
                        "{}: {} (body {:?})",
                        case.name,
                        wrong.join("; "),
                        String::from_utf8_lossy(&reply.body)
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: no reply: {e}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // The server still serves, with both authentication methods.
    let s = fx.secret.expose();
    let mut tokens = Vec::new();
    for req in [post(CC).basic("svc", s), post(format!("{CC}&client_id=svc&client_secret={s}"))] {
        let reply = send(&client, &fx.server, &req).await?;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let body = reply.json()?;
        let token = body["access_token"].as_str().ok_or("no access_token")?;
        tokens.push(token.to_owned());
    }

    // Exactly one record per successful request: no failed request wrote one.
    for token in &tokens {
        let record = fx.server.store.token_by_digest(&TokenDigest::of(token)).await?;
        assert!(record.is_some(), "the issued token has a record");
    }
    assert_eq!(fx.server.purge_all_tokens().await?, tokens.len() as u64);
    Ok(())
}

// ---------------------------------------------------------------------------
// Success, health, oversized headers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn success_response_has_the_rfc_6749_shape() -> TestResult {
    let fx = fixture().await?;
    let client = http_client()?;
    let s = fx.secret.expose();
    let scope = "openid profile urn:zitadel:iam:org:project:id:zitadel:aud";
    let req = post(format!("{CC}&scope={}", form_encode(scope))).basic("svc", s);
    let reply = send(&client, &fx.server, &req).await?;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header(CONTENT_TYPE), Some("application/json"));
    assert_eq!(reply.header(CACHE_CONTROL), Some("no-store"));
    assert_eq!(reply.header(PRAGMA), Some("no-cache"));
    assert_eq!(reply.header(WWW_AUTHENTICATE), None);
    let body = reply.json()?;
    let fields = body.as_object().ok_or("not an object")?;
    let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["access_token", "expires_in", "scope", "token_type"]);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], scope);
    let expires_in = body["expires_in"].as_u64().ok_or("expires_in")?;
    assert!((43_199..=43_200).contains(&expires_in), "expires_in {expires_in}");
    let token = body["access_token"].as_str().ok_or("access_token")?;
    assert_eq!(token.len(), 51, "issue time and 256 random bits, base64url");

    let record = fx
        .server
        .store
        .token_by_digest(&TokenDigest::of(token))
        .await?
        .ok_or("no record for the issued token")?;
    assert_eq!(record.client_id.as_str(), "svc");
    assert_eq!(record.scopes.to_string(), scope);
    assert_eq!(record.audience, ["zitadel"]);
    assert_eq!(fx.server.purge_all_tokens().await?, 1);
    Ok(())
}

#[tokio::test]
async fn accepted_request_variants() -> TestResult {
    let fx = fixture().await?;
    let client = http_client()?;
    let s = fx.secret.expose();
    // A body of exactly the limit is read in full.
    let pad = DEFAULT_MAX_BODY - CC.len() - "&pad=".len();
    let exactly_the_limit = format!("{CC}&pad={}", "a".repeat(pad));
    assert_eq!(exactly_the_limit.len(), DEFAULT_MAX_BODY);

    let variants = [
        ("client_secret_basic", post(CC).basic("svc", s)),
        ("client_secret_post", post(format!("{CC}&client_id=svc&client_secret={s}"))),
        (
            "Basic plus the same client_id in the body",
            post(format!("{CC}&client_id=svc")).basic("svc", s),
        ),
        (
            "form type with a charset",
            post(CC)
                .basic("svc", s)
                .content_type(Some("application/x-www-form-urlencoded; charset=UTF-8")),
        ),
        (
            "lower-case basic scheme",
            post(CC).authorization(format!(
                "basic {}",
                Base64::encode_string(format!("svc:{s}").as_bytes())
            )),
        ),
        ("empty scope means the default", post(format!("{CC}&scope=")).basic("svc", s)),
        ("body of exactly 64 KiB", post(exactly_the_limit).basic("svc", s)),
        ("chunked body", post(CC).basic("svc", s).chunked()),
    ];
    for (name, req) in &variants {
        let reply = send(&client, &fx.server, req).await?;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{name}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.json()?["token_type"], "Bearer", "{name}");
    }
    assert_eq!(fx.server.purge_all_tokens().await?, variants.len() as u64);
    Ok(())
}

#[tokio::test]
async fn health_check_answers_ok() -> TestResult {
    let fx = fixture().await?;
    let client = http_client()?;
    let reply = send(&client, &fx.server, &bare(Method::GET, HEALTH_PATH)).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header(CONTENT_TYPE), Some("application/json"));
    assert_eq!(reply.json()?, json!({"status": "ok"}));
    let head = send(&client, &fx.server, &bare(Method::HEAD, HEALTH_PATH)).await?;
    assert_eq!(head.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_one_mebibyte_authorization_header_is_refused_without_harm() -> TestResult {
    let fx = fixture().await?;
    let client = http_client()?;
    let s = fx.secret.expose();
    let huge = format!("Basic {}", "A".repeat(1024 * 1024));
    let outcome = send(&client, &fx.server, &post(CC).authorization(huge)).await;
    match &outcome {
        // hyper refuses a request head over its buffer limit (about 400 KiB) before
        // the service sees it.
        Ok(reply) => assert_eq!(
            reply.status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{:?}",
            reply.body
        ),
        // The server may close the connection while the client is still writing.
        Err(e) => eprintln!("1 MiB header: connection error {e}"),
    }

    // The server is unharmed and wrote nothing.
    let health = send(&client, &fx.server, &bare(Method::GET, HEALTH_PATH)).await?;
    assert_eq!(health.status, StatusCode::OK);
    let reply = send(&client, &fx.server, &post(CC).basic("svc", s)).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(fx.server.purge_all_tokens().await?, 1);
    Ok(())
}

// ---------------------------------------------------------------------------
// The oauth2 crate as the client
// ---------------------------------------------------------------------------

#[tokio::test]
async fn oauth2_client_with_form_encoded_credentials() -> TestResult {
    let store = Arc::new(MemoryStore::new());
    // `+` and `@` in the client ID, and `+ / : % & = ?`, a space and non-ASCII in
    // the secret, all of which form-encoding changes.
    let client_id = "svc+a.b@x";
    let secret = ClientSecret::provided("p+ss/w:rd %41 & =?é-0123456789abcdefghij")?;
    assert_ne!(form_encode(client_id), client_id);
    assert_ne!(form_encode(secret.expose()), secret.expose());
    add_user(&store, client_id, &secret, true).await?;
    let server = Server::start(store).await?;

    let oauth = BasicClient::new(ClientId::new(client_id.to_owned()))
        .set_client_secret(oauth2::ClientSecret::new(secret.expose().to_owned()))
        .set_token_uri(TokenUrl::new(server.url(TOKEN_PATH))?)
        .set_auth_type(AuthType::BasicAuth);
    let response = oauth
        .exchange_client_credentials()
        .add_scope(Scope::new("openid".to_owned()))
        .add_scope(Scope::new("profile".to_owned()))
        .request_async(&http_client()?)
        .await?;

    assert_eq!(*response.token_type(), oauth2::basic::BasicTokenType::Bearer);
    let scopes: Vec<&str> =
        response.scopes().ok_or("no scope in the response")?.iter().map(|s| s.as_str()).collect();
    assert_eq!(scopes, ["openid", "profile"]);
    let expires_in = response.expires_in().ok_or("no expires_in")?.as_secs();
    assert!((43_199..=43_200).contains(&expires_in));
    let digest = TokenDigest::of(response.access_token().secret());
    let record =
        server.store.token_by_digest(&digest).await?.ok_or("no record for the issued token")?;
    assert_eq!(record.client_id.as_str(), client_id);

    // The same credentials without form-encoding are a different client ID.
    let raw = format!("{client_id}:{}", secret.expose());
    let reply = send(&http_client()?, &server, &post(CC).basic_of(raw.as_bytes())).await?;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.purge_all_tokens().await?, 1);
    Ok(())
}
