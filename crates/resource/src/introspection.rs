//! Token introspection (RFC 7662) as an API app: with its client secret (HTTP
//! Basic) or its key file (`private_key_jwt`, RFC 7523 §2.2).

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64ct::{Base64, Encoding};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::builder::BuildError;
use crate::issuer::{CallError, Issuer, read_json, transport};
use crate::principal::Claims;

/// The largest introspection answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// How long a client assertion is valid; the issuer accepts at most an hour.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// A held assertion is replaced this long before it expires.
const ASSERTION_MARGIN: Duration = Duration::from_secs(60);
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How this resource server authenticates to the issuer's introspection endpoint:
/// as an API app of the project the API belongs to (`tessera-server api-app create`,
/// or an API application in ZITADEL).
#[derive(Clone)]
pub struct Credentials(Auth);

#[derive(Clone)]
enum Auth {
    Basic { header: String },
    KeyFile { client_id: String, key_id: String, key: EncodingKey, alg: Algorithm },
}

impl Credentials {
    /// The app's client ID and secret, sent with HTTP Basic (each form-urlencoded
    /// first, RFC 6749 §2.3.1).
    pub fn client_secret(client_id: impl AsRef<str>, client_secret: impl AsRef<str>) -> Self {
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", encode(client_id.as_ref()), encode(client_secret.as_ref()));
        Credentials(Auth::Basic {
            header: format!("Basic {}", Base64::encode_string(pair.as_bytes())),
        })
    }

    /// The app's key file, as `tessera-server api-app key add --json` and ZITADEL
    /// print it: `{"type": "application", "keyId", "key", "appId", "clientId"}`.
    /// Each introspection sends a client assertion (`iss` = `sub` = the client ID,
    /// `aud` = the issuer, `kid` = the key id; RS256 for ZITADEL's RSA keys, ES256
    /// or EdDSA for the other kinds), one assertion reused for most of its 30-minute
    /// lifetime, without `jti`, as ZITADEL's own libraries send it.
    pub fn key_file(json: &str) -> Result<Self, BuildError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct KeyFile {
            #[serde(rename = "type")]
            kind: String,
            key_id: String,
            key: String,
            client_id: String,
        }
        let file: KeyFile = serde_json::from_str(json)
            .map_err(|e| BuildError::KeyFile(format!("not an application key file: {e}")))?;
        if file.kind != "application" {
            return Err(BuildError::KeyFile(format!(
                "the key file is of type {:?}, not \"application\"",
                file.kind
            )));
        }
        let pem = file.key.as_bytes();
        let (key, alg) = EncodingKey::from_rsa_pem(pem)
            .map(|k| (k, Algorithm::RS256))
            .or_else(|_| EncodingKey::from_ec_pem(pem).map(|k| (k, Algorithm::ES256)))
            .or_else(|_| EncodingKey::from_ed_pem(pem).map(|k| (k, Algorithm::EdDSA)))
            .map_err(|_| {
                BuildError::KeyFile("the key is not an RSA, P-256 or Ed25519 private key".into())
            })?;
        Ok(Credentials(Auth::KeyFile { client_id: file.client_id, key_id: file.key_id, key, alg }))
    }

    /// [`key_file`](Self::key_file) read from `path`.
    pub fn key_file_path(path: impl AsRef<Path>) -> Result<Self, BuildError> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path)
            .map_err(|e| BuildError::KeyFile(format!("cannot read {}: {e}", path.display())))?;
        Self::key_file(&json)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Auth::Basic { .. } => f.write_str("Credentials::ClientSecret([redacted])"),
            Auth::KeyFile { client_id, key_id, .. } => f
                .debug_struct("Credentials::KeyFile")
                .field("client_id", client_id)
                .field("key_id", key_id)
                .finish_non_exhaustive(),
        }
    }
}

/// Calls the introspection endpoint.
pub(crate) struct Introspector {
    credentials: Credentials,
    assertion: Mutex<Option<(String, Instant)>>,
    failed_at: Mutex<Option<Instant>>,
    pub(crate) calls: AtomicU64,
}

impl Introspector {
    pub(crate) fn new(credentials: Credentials) -> Self {
        Introspector {
            credentials,
            assertion: Mutex::new(None),
            failed_at: Mutex::new(None),
            calls: AtomicU64::new(0),
        }
    }

    /// The issuer's answer about `token`. After a failed call, calls within the
    /// issuer's retry interval fail at once.
    pub(crate) async fn introspect(
        &self,
        issuer: &Issuer,
        token: &str,
    ) -> Result<Claims, CallError> {
        if self
            .failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < issuer.retry_interval)
        {
            return Err(CallError::Backoff);
        }
        let result = self.call(issuer, token).await;
        let mut failed_at = self.failed_at.lock().unwrap_or_else(PoisonError::into_inner);
        match &result {
            Ok(_) => {
                *failed_at = None;
                issuer.record_success();
            }
            Err(error) => {
                *failed_at = Some(Instant::now());
                issuer.record_failure(error, "introspection");
            }
        }
        result
    }

    async fn call(&self, issuer: &Issuer, token: &str) -> Result<Claims, CallError> {
        let endpoints = issuer.endpoints().await?;
        let url = endpoints.introspection_endpoint.as_deref().ok_or_else(|| {
            CallError::Body("the discovery document names no introspection_endpoint".into())
        })?;
        let mut request = issuer
            .http
            .post(url)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token);
            match &self.credentials.0 {
                Auth::Basic { header } => {
                    request = request.header(http::header::AUTHORIZATION, header);
                }
                Auth::KeyFile { .. } => {
                    form.append_pair("client_assertion_type", ASSERTION_TYPE);
                    form.append_pair("client_assertion", &self.assertion(&issuer.issuer)?);
                }
            }
            form.finish()
        };
        self.calls.fetch_add(1, Ordering::Relaxed);
        let response = request.body(body).send().await.map_err(transport)?;
        read_json(response, MAX_ANSWER_BYTES).await
    }

    /// The client assertion to send: the one held while it has more than a minute
    /// left, otherwise a new one.
    fn assertion(&self, audience: &str) -> Result<String, CallError> {
        let Auth::KeyFile { client_id, key_id, key, alg } = &self.credentials.0 else {
            return Err(CallError::Body("no key file".into()));
        };
        let mut held = self.assertion.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((assertion, expires)) = held.as_ref()
            && expires.saturating_duration_since(Instant::now()) > ASSERTION_MARGIN
        {
            return Ok(assertion.clone());
        }
        #[derive(Serialize)]
        struct AssertionClaims<'a> {
            iss: &'a str,
            sub: &'a str,
            aud: &'a str,
            iat: u64,
            exp: u64,
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut header = Header::new(*alg);
        header.kid = Some(key_id.clone());
        let claims = AssertionClaims {
            iss: client_id,
            sub: client_id,
            aud: audience,
            iat: now,
            exp: now + ASSERTION_LIFETIME.as_secs(),
        };
        let mut assertion = jsonwebtoken::encode(&header, &claims, key)
            .map_err(|e| CallError::Body(format!("cannot sign the client assertion: {e}")))?;
        if *alg == Algorithm::ES256 {
            crate::jwt::normalize_s(&mut assertion);
        }
        *held = Some((assertion.clone(), Instant::now() + ASSERTION_LIFETIME));
        Ok(assertion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_then_base64() {
        let Credentials(Auth::Basic { header }) = Credentials::client_secret("1@orders", "s+/=")
        else {
            panic!("basic credentials");
        };
        let decoded = Base64::decode_vec(header.trim_start_matches("Basic ")).expect("base64");
        assert_eq!(decoded, b"1%40orders:s%2B%2F%3D");
        assert_eq!(
            format!("{:?}", Credentials::client_secret("a", "b")),
            "Credentials::ClientSecret([redacted])"
        );
    }

    #[test]
    fn key_files_of_other_kinds_are_refused() {
        let user = r#"{"type":"serviceaccount","keyId":"1","key":"x","userId":"2","clientId":"c"}"#;
        assert!(matches!(Credentials::key_file(user), Err(BuildError::KeyFile(_))));
        let garbage = r#"{"type":"application","keyId":"1","key":"x","appId":"2","clientId":"c"}"#;
        assert!(matches!(Credentials::key_file(garbage), Err(BuildError::KeyFile(_))));
        assert!(matches!(Credentials::key_file("{}"), Err(BuildError::KeyFile(_))));
    }
}
