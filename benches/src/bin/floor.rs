//! The floor server: the essential work of a client credentials token server, done
//! as directly as possible on hyper, with none of Tessera's abstractions. The load
//! harness measures it beside `tessera-server`, in the same run and the same mode,
//! and reports Tessera's throughput as a ratio to it.
//!
//! ```text
//! cargo run --release -p tessera-benches --bin floor -- --listen 127.0.0.1:0 --mode opaque
//! ```
//!
//! It knows one service user ([`CLIENT_ID`] with [`CLIENT_SECRET`]) and, in the
//! `opaque` and `introspect` modes, one API app ([`API_CLIENT_ID`] with
//! [`API_CLIENT_SECRET`]). `POST /oauth/v2/token` in every mode does:
//!
//! 1. collect the body (up to 64 KiB), check the content type, parse the form
//!    (percent-decoding, repeated parameters refused), check `grant_type`;
//! 2. decode `Authorization: Basic` (base64, split at the colon, percent-decoding),
//!    SHA-256 the secret and compare it in constant time with the client's digest,
//!    computed once at start;
//! 3. per mode:
//!    - `opaque` and `introspect`: 48 random bytes (a 256-bit token, base64url, and
//!      a 128-bit token id), SHA-256 of the token, and an insert of the digest with
//!      its record (times, id, scope) into a map sharded 256 ways and sized at
//!      start for `--capacity` records (65,536 by default; beyond them a shard
//!      grows alone, so no insert waits for more than a 256th of the map to move);
//!    - `jwt-es256`, `jwt-eddsa`, `jwt-rs256`: a random 128-bit token id, claims
//!      shaped like Tessera's (`iss sub aud exp iat nbf jti client_id scope`) as
//!      JSON, base64url, and one signature with a key generated and parsed once at
//!      start (aws-lc-rs; RSA 2048 bits); nothing is stored, as Tessera stores
//!      nothing for a JWT;
//! 4. answer `{"access_token", "token_type", "expires_in", "scope"}` with
//!    `Cache-Control: no-store` and `Pragma: no-cache`.
//!
//! `POST /oauth/v2/introspect` (in the `opaque` and `introspect` modes)
//! authenticates the API app the same way, SHA-256s the `token` parameter, looks
//! the digest up, checks the expiry and answers the RFC 7662 JSON Tessera answers.
//! The `introspect` mode fills the map with `--prefill` records at start.
//!
//! It prints `listening on http://ADDR` to standard error when it accepts
//! connections, and listens on loopback addresses only. With `--watch-stdin` it
//! exits when its standard input closes, so it never outlives the harness.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SystemRandom, fill};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tessera_benches::load::{
    API_CLIENT_ID, API_CLIENT_SECRET, CLIENT_ID, CLIENT_SECRET, FLOOR_USER_ID, LOAD_SCOPE,
    PROJECT_ID,
};
use tokio::net::TcpListener;

/// The token endpoint's path, as Tessera's.
const TOKEN_PATH: &str = "/oauth/v2/token";
/// The introspection endpoint's path, as Tessera's.
const INTROSPECT_PATH: &str = "/oauth/v2/introspect";
/// The largest body read.
const MAX_BODY: usize = 64 * 1024;
/// Token lifetime: 12 hours, Tessera's default.
const LIFETIME_SECS: i64 = 12 * 3600;
/// Shards of the token map.
const SHARDS: usize = 256;

/// The floor server's command line.
#[derive(Debug, Parser)]
#[command(about = "The floor server: the essential work of a token request, directly on hyper")]
struct Args {
    /// The loopback address to listen on; port 0 picks a free port.
    #[arg(long)]
    listen: SocketAddr,
    /// What each request does.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Records put into the token map at start in the `introspect` mode.
    #[arg(long, default_value_t = 100_000)]
    prefill: usize,
    /// Records the token map is sized for at start. Beyond them each shard grows on
    /// its own, moving at most a 256th of the records at a time. A capacity far
    /// above what a run stores costs resident memory: inserts touch pages of the
    /// whole table, uniformly.
    #[arg(long, default_value_t = 1 << 16)]
    capacity: usize,
    /// Exit when standard input closes.
    #[arg(long)]
    watch_stdin: bool,
}

/// What each request does; see the crate documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Opaque tokens, recorded in the map.
    Opaque,
    /// ES256 JWTs.
    JwtEs256,
    /// EdDSA (Ed25519) JWTs.
    JwtEddsa,
    /// RS256 (RSA 2048) JWTs.
    JwtRs256,
    /// Introspection of opaque tokens, with the map pre-filled.
    Introspect,
}

impl Mode {
    fn stores_tokens(self) -> bool {
        matches!(self, Mode::Opaque | Mode::Introspect)
    }
}

/// What the map keeps of a token.
#[derive(Debug, Clone)]
struct Record {
    iat: i64,
    exp: i64,
    jti: [u8; 16],
    scope: Arc<str>,
}

/// One shard of the token map: records by SHA-256 digest.
type Shard = HashMap<[u8; 32], Record>;

/// Token records by SHA-256 digest, in shards sized once.
#[derive(Debug)]
struct Tokens {
    shards: Box<[Mutex<Shard>]>,
}

impl Tokens {
    fn with_capacity(records: usize) -> Self {
        let per_shard = records.div_ceil(SHARDS);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::with_capacity(per_shard))).collect(),
        }
    }

    fn shard(&self, digest: &[u8; 32]) -> std::sync::MutexGuard<'_, Shard> {
        // The digest is uniformly distributed: its first byte picks the shard.
        self.shards[usize::from(digest[0]) % SHARDS].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, digest: [u8; 32], record: Record) {
        self.shard(&digest).insert(digest, record);
    }
}

/// A signing key parsed once, and the encoded JWS header that goes with it.
struct Signer {
    key: Key,
    header_b64: String,
    rng: SystemRandom,
}

enum Key {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(RsaKeyPair),
}

impl Signer {
    /// Generates a key for `mode` as PKCS#8, and parses it (once), as Tessera
    /// parses its stored keys.
    fn generate(mode: Mode) -> Result<Option<Self>, String> {
        let failed = |what: &str| format!("cannot {what} the signing key");
        let (key, alg) = match mode {
            Mode::Opaque | Mode::Introspect => return Ok(None),
            Mode::JwtEs256 => {
                let pkcs8 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .and_then(|k| k.to_pkcs8v1())
                    .map_err(|_| failed("generate"))?;
                let key =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                        .map_err(|_| failed("parse"))?;
                (Key::Es256(key), "ES256")
            }
            Mode::JwtEddsa => {
                let pkcs8 = Ed25519KeyPair::generate()
                    .and_then(|k| k.to_pkcs8())
                    .map_err(|_| failed("generate"))?;
                let key =
                    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| failed("parse"))?;
                (Key::EdDsa(key), "EdDSA")
            }
            Mode::JwtRs256 => {
                let pkcs8 = RsaKeyPair::generate(KeySize::Rsa2048)
                    .and_then(|k| k.as_der())
                    .map_err(|_| failed("generate"))?;
                let key = RsaKeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| failed("parse"))?;
                (Key::Rs256(key), "RS256")
            }
        };
        let mut kid = [0u8; 16];
        fill(&mut kid).map_err(|_| "the random generator failed".to_owned())?;
        let header = serde_json::json!({
            "alg": alg,
            "typ": "at+jwt",
            "kid": Base64UrlUnpadded::encode_string(&kid),
        });
        let header_b64 = Base64UrlUnpadded::encode_string(header.to_string().as_bytes());
        Ok(Some(Self { key, header_b64, rng: SystemRandom::new() }))
    }

    /// The compact JWS of `claims`.
    fn sign(&self, claims: &Claims<'_>) -> Result<String, Failure> {
        let claims = serde_json::to_vec(claims).map_err(|_| Failure::Internal)?;
        let mut token = String::with_capacity(self.header_b64.len() + claims.len() * 2 + 360);
        token.push_str(&self.header_b64);
        token.push('.');
        token.push_str(&Base64UrlUnpadded::encode_string(&claims));
        let signature = match &self.key {
            Key::Es256(key) => key
                .sign(&self.rng, token.as_bytes())
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Failure::Internal)?,
            Key::EdDsa(key) => key.sign(token.as_bytes()).as_ref().to_vec(),
            Key::Rs256(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &self.rng, token.as_bytes(), &mut signature)
                    .map_err(|_| Failure::Internal)?;
                signature
            }
        };
        token.push('.');
        token.push_str(&Base64UrlUnpadded::encode_string(&signature));
        Ok(token)
    }
}

/// JWT access token claims, shaped like Tessera's.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: [&'a str; 1],
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: &'a str,
    client_id: &'a str,
    scope: &'a str,
}

/// The server's state.
struct Floor {
    mode: Mode,
    issuer: String,
    client_digest: [u8; 32],
    api_digest: [u8; 32],
    tokens: Tokens,
    signer: Option<Signer>,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    BadRequest(&'static str),
    UnsupportedGrantType,
    InvalidClient,
    NotFound,
    MethodNotAllowed,
    TooLarge,
    Internal,
}

impl Failure {
    fn response(self) -> Response<Full<Bytes>> {
        #[derive(Serialize)]
        struct Body {
            error: &'static str,
            error_description: &'static str,
        }
        let (status, error, error_description) = match self {
            Failure::BadRequest(why) => (StatusCode::BAD_REQUEST, "invalid_request", why),
            Failure::UnsupportedGrantType => (
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be client_credentials",
            ),
            Failure::InvalidClient => {
                (StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed")
            }
            Failure::NotFound => (StatusCode::NOT_FOUND, "invalid_request", "no such endpoint"),
            Failure::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "use POST")
            }
            Failure::TooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", "body too large")
            }
            Failure::Internal => {
                (StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error")
            }
        };
        let mut response = json(status, &Body { error, error_description });
        if self == Failure::InvalidClient {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"floor\""));
        }
        response
    }
}

/// A JSON response that no cache may keep.
fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    let Ok(bytes) = serde_json::to_vec(body) else {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return response;
    };
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// The parameters the floor reads from a form body.
#[derive(Debug, Default)]
struct Form<'a> {
    grant_type: Option<Cow<'a, str>>,
    scope: Option<Cow<'a, str>>,
    token: Option<Cow<'a, str>>,
}

impl<'a> Form<'a> {
    /// Parses `application/x-www-form-urlencoded`; a repeated parameter it reads
    /// is refused, others are skipped.
    fn parse(body: &'a [u8]) -> Result<Self, Failure> {
        let mut form = Form::default();
        for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            let slot = match name {
                b"grant_type" => &mut form.grant_type,
                b"scope" => &mut form.scope,
                b"token" => &mut form.token,
                _ => continue,
            };
            if slot.is_some() {
                return Err(Failure::BadRequest("a parameter is repeated"));
            }
            *slot = Some(percent_decode(value)?);
        }
        Ok(form)
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Form-decoding: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn percent_decode(s: &[u8]) -> Result<Cow<'_, str>, Failure> {
    const MALFORMED: Failure = Failure::BadRequest("malformed form encoding");
    if !s.iter().any(|b| *b == b'%' || *b == b'+') {
        return std::str::from_utf8(s).map(Cow::Borrowed).map_err(|_| MALFORMED);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = s.get(i + 1).copied().and_then(hex).ok_or(MALFORMED)?;
                let lo = s.get(i + 2).copied().and_then(hex).ok_or(MALFORMED)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| MALFORMED)
}

/// Checks `Authorization: Basic` against one client: the ID must match and the
/// secret's SHA-256 must equal `digest` (compared in constant time; the secret is
/// hashed whatever the ID).
fn authenticate(
    header: Option<&HeaderValue>,
    client_id: &str,
    digest: &[u8; 32],
) -> Result<(), Failure> {
    let value = header.ok_or(Failure::InvalidClient)?.as_bytes();
    if value.len() < 6 || !value[..6].eq_ignore_ascii_case(b"basic ") {
        return Err(Failure::InvalidClient);
    }
    let encoded = std::str::from_utf8(&value[6..]).map_err(|_| Failure::InvalidClient)?;
    let decoded = Base64::decode_vec(encoded.trim()).map_err(|_| Failure::InvalidClient)?;
    let colon = decoded.iter().position(|b| *b == b':').ok_or(Failure::InvalidClient)?;
    let id = percent_decode(&decoded[..colon]).map_err(|_| Failure::InvalidClient)?;
    let secret = percent_decode(&decoded[colon + 1..]).map_err(|_| Failure::InvalidClient)?;
    let secret_ok: bool = sha256(secret.as_bytes()).ct_eq(digest).into();
    if secret_ok && id == client_id { Ok(()) } else { Err(Failure::InvalidClient) }
}

/// Seconds since the epoch, and whether a second has begun but not ended.
fn now() -> (i64, bool) {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    (since.as_secs() as i64, since.subsec_nanos() > 0)
}

impl Floor {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        match self.route(request).await {
            Ok(response) => response,
            Err(failure) => failure.response(),
        }
    }

    async fn route(&self, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Failure> {
        let introspect = match request.uri().path() {
            TOKEN_PATH => false,
            INTROSPECT_PATH if self.mode.stores_tokens() => true,
            _ => return Err(Failure::NotFound),
        };
        if request.method() != Method::POST {
            return Err(Failure::MethodNotAllowed);
        }
        let form_type = request
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/x-www-form-urlencoded"));
        if !form_type {
            return Err(Failure::BadRequest("Content-Type must be a form"));
        }
        let (parts, body) = request.into_parts();
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return Err(Failure::TooLarge),
        };
        let form = Form::parse(&body)?;
        let authorization = parts.headers.get(AUTHORIZATION);
        if introspect {
            authenticate(authorization, API_CLIENT_ID, &self.api_digest)?;
            self.introspect(&form)
        } else {
            if form.grant_type.as_deref() != Some("client_credentials") {
                return Err(if form.grant_type.is_none() {
                    Failure::BadRequest("missing parameter grant_type")
                } else {
                    Failure::UnsupportedGrantType
                });
            }
            authenticate(authorization, CLIENT_ID, &self.client_digest)?;
            self.issue(form.scope.as_deref().unwrap_or("openid"))
        }
    }

    /// Mints, records (opaque) or signs (JWT), and answers.
    fn issue(&self, scope: &str) -> Result<Response<Full<Bytes>>, Failure> {
        #[derive(Serialize)]
        struct Body<'a> {
            access_token: &'a str,
            token_type: &'static str,
            expires_in: i64,
            scope: &'a str,
        }
        let (iat, mid_second) = now();
        let exp = iat + LIFETIME_SECS;
        let access_token = match &self.signer {
            None => {
                let mut random = [0u8; 48];
                fill(&mut random).map_err(|_| Failure::Internal)?;
                let token = Base64UrlUnpadded::encode_string(&random[..32]);
                let mut jti = [0u8; 16];
                jti.copy_from_slice(&random[32..]);
                let record = Record { iat, exp, jti, scope: Arc::from(scope) };
                self.tokens.insert(sha256(token.as_bytes()), record);
                token
            }
            Some(signer) => {
                let mut jti = [0u8; 16];
                fill(&mut jti).map_err(|_| Failure::Internal)?;
                let jti = Base64UrlUnpadded::encode_string(&jti);
                signer.sign(&Claims {
                    iss: &self.issuer,
                    sub: FLOOR_USER_ID,
                    aud: [PROJECT_ID],
                    exp,
                    iat,
                    nbf: iat,
                    jti: &jti,
                    client_id: CLIENT_ID,
                    scope,
                })?
            }
        };
        let expires_in = LIFETIME_SECS - i64::from(mid_second);
        Ok(json(
            StatusCode::OK,
            &Body { access_token: &access_token, token_type: "Bearer", expires_in, scope },
        ))
    }

    /// Looks the token up and answers as RFC 7662 (and Tessera) do.
    fn introspect(&self, form: &Form<'_>) -> Result<Response<Full<Bytes>>, Failure> {
        #[derive(Serialize)]
        struct Active<'a> {
            active: bool,
            scope: &'a str,
            client_id: &'a str,
            username: &'a str,
            token_type: &'static str,
            exp: i64,
            iat: i64,
            nbf: i64,
            sub: &'a str,
            aud: [&'a str; 1],
            iss: &'a str,
            jti: &'a str,
        }
        #[derive(Serialize)]
        struct Inactive {
            active: bool,
        }
        let token = form.token.as_deref().ok_or(Failure::BadRequest("missing parameter token"))?;
        let digest = sha256(token.as_bytes());
        let (now, _) = now();
        let record = self.tokens.shard(&digest).get(&digest).filter(|r| r.exp > now).cloned();
        Ok(match record {
            Some(record) => json(
                StatusCode::OK,
                &Active {
                    active: true,
                    scope: &record.scope,
                    client_id: CLIENT_ID,
                    username: CLIENT_ID,
                    token_type: "Bearer",
                    exp: record.exp,
                    iat: record.iat,
                    nbf: record.iat,
                    sub: FLOOR_USER_ID,
                    aud: [PROJECT_ID],
                    iss: &self.issuer,
                    jti: &Base64UrlUnpadded::encode_string(&record.jti),
                },
            ),
            None => json(StatusCode::OK, &Inactive { active: false }),
        })
    }
}

/// Fills the map with `count` records of random digests.
fn prefill(tokens: &Tokens, count: usize) -> Result<(), String> {
    let scope: Arc<str> = Arc::from(LOAD_SCOPE);
    let (iat, _) = now();
    let mut random = [0u8; 48];
    for _ in 0..count {
        fill(&mut random).map_err(|_| "the random generator failed")?;
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&random[..32]);
        let mut jti = [0u8; 16];
        jti.copy_from_slice(&random[32..]);
        tokens.insert(digest, Record { iat, exp: iat + LIFETIME_SECS, jti, scope: scope.clone() });
    }
    Ok(())
}

async fn serve(listener: TcpListener, floor: Arc<Floor>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors and the like: back off briefly.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let floor = floor.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let floor = floor.clone();
                async move { Ok::<_, Infallible>(floor.handle(request).await) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn run(args: Args) -> Result<(), String> {
    if !args.listen.ip().is_loopback() {
        return Err(format!(
            "{} is not a loopback address; the floor listens on loopback only",
            args.listen
        ));
    }
    if args.watch_stdin {
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
    }
    let signer = Signer::generate(args.mode)?;
    let tokens = Tokens::with_capacity(args.capacity);
    if args.mode == Mode::Introspect {
        prefill(&tokens, args.prefill)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let listener = TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let floor = Arc::new(Floor {
            mode: args.mode,
            issuer: format!("http://{local}"),
            client_digest: sha256(CLIENT_SECRET.as_bytes()),
            api_digest: sha256(API_CLIENT_SECRET.as_bytes()),
            tokens,
            signer,
        });
        eprintln!("floor: mode {:?}", args.mode);
        eprintln!("listening on http://{local}");
        serve(listener, floor).await;
        Ok(())
    })
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_benches::load::{LOAD_TOKEN_BODY, basic_authorization};

    #[test]
    fn forms_decode() -> Result<(), Failure> {
        let form = Form::parse(LOAD_TOKEN_BODY.as_bytes())?;
        assert_eq!(form.grant_type.as_deref(), Some("client_credentials"));
        assert_eq!(form.scope.as_deref(), Some(LOAD_SCOPE));
        assert_eq!(form.token, None);
        assert!(Form::parse(b"scope=a&scope=b").is_err());
        assert!(Form::parse(b"scope=%zz").is_err());
        assert_eq!(Form::parse(b"token=abc&other=1")?.token.as_deref(), Some("abc"));
        Ok(())
    }

    #[test]
    fn basic_authentication() {
        let digest = sha256(CLIENT_SECRET.as_bytes());
        let good = HeaderValue::from_str(&basic_authorization(CLIENT_ID, CLIENT_SECRET)).unwrap();
        assert_eq!(authenticate(Some(&good), CLIENT_ID, &digest), Ok(()));
        let wrong = HeaderValue::from_str(&basic_authorization(CLIENT_ID, "x")).unwrap();
        assert_eq!(authenticate(Some(&wrong), CLIENT_ID, &digest), Err(Failure::InvalidClient));
        let other = HeaderValue::from_str(&basic_authorization("other", CLIENT_SECRET)).unwrap();
        assert_eq!(authenticate(Some(&other), CLIENT_ID, &digest), Err(Failure::InvalidClient));
        assert_eq!(authenticate(None, CLIENT_ID, &digest), Err(Failure::InvalidClient));
    }

    #[test]
    fn every_mode_issues() -> Result<(), String> {
        for mode in [Mode::Opaque, Mode::JwtEs256, Mode::JwtEddsa, Mode::JwtRs256, Mode::Introspect]
        {
            let floor = Floor {
                mode,
                issuer: "http://127.0.0.1:1".into(),
                client_digest: sha256(CLIENT_SECRET.as_bytes()),
                api_digest: sha256(API_CLIENT_SECRET.as_bytes()),
                tokens: Tokens::with_capacity(1024),
                signer: Signer::generate(mode)?,
            };
            let response = floor.issue(LOAD_SCOPE).map_err(|e| format!("{e:?}"))?;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
            let stored: usize = floor.tokens.shards.iter().map(|s| s.lock().unwrap().len()).sum();
            assert_eq!(stored, usize::from(mode.stores_tokens()), "{mode:?}");
        }
        Ok(())
    }

    fn body(response: Response<Full<Bytes>>) -> serde_json::Value {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
        let bytes = runtime.block_on(response.into_body().collect()).expect("a body").to_bytes();
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[test]
    fn issued_opaque_tokens_introspect() -> Result<(), String> {
        let floor = Floor {
            mode: Mode::Introspect,
            issuer: "http://127.0.0.1:1".into(),
            client_digest: sha256(CLIENT_SECRET.as_bytes()),
            api_digest: sha256(API_CLIENT_SECRET.as_bytes()),
            tokens: Tokens::with_capacity(1024),
            signer: None,
        };
        prefill(&floor.tokens, 100)?;
        let issued = body(floor.issue(LOAD_SCOPE).map_err(|e| format!("{e:?}"))?);
        assert_eq!(issued["scope"], LOAD_SCOPE);
        assert!(issued["expires_in"].as_i64().is_some_and(|s| s >= LIFETIME_SECS - 1));
        let token = issued["access_token"].as_str().ok_or("a token")?;
        assert_eq!(token.len(), 43);
        let form = Form { token: Some(Cow::Borrowed(token)), ..Form::default() };
        let answer = body(floor.introspect(&form).map_err(|e| format!("{e:?}"))?);
        assert_eq!(answer["active"], true);
        assert_eq!(answer["scope"], LOAD_SCOPE);
        assert_eq!(answer["aud"][0], PROJECT_ID);
        let form = Form { token: Some(Cow::Borrowed("unknown")), ..Form::default() };
        let answer = body(floor.introspect(&form).map_err(|e| format!("{e:?}"))?);
        assert_eq!(answer, serde_json::json!({ "active": false }));
        Ok(())
    }
}
