//! Client assertions (RFC 7523) as a client makes them: key files from the CLI,
//! assertions signed with jsonwebtoken, posted with reqwest.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{Server, cli_json};

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const CLIENT_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A key file as `service-user key add --json` prints it.
pub struct KeyFile {
    pub key_id: String,
    pub pem: String,
    pub user_id: String,
    pub algorithm: Algorithm,
}

pub fn key_add(db: &str, username: &str, extra: &[&str]) -> KeyFile {
    let mut args = vec!["service-user", "key", "add", "--username", username];
    args.extend_from_slice(extra);
    let file = cli_json(db, &args);
    assert_eq!(file["type"], "serviceaccount");
    let algorithm = if extra.contains(&"ec") { Algorithm::ES256 } else { Algorithm::RS256 };
    // RSA keys as PKCS#1, as in ZITADEL's key files; other keys as PKCS#8.
    let pem_start = match algorithm {
        Algorithm::RS256 => "-----BEGIN RSA PRIVATE KEY-----",
        _ => "-----BEGIN PRIVATE KEY-----",
    };
    assert!(file["key"].as_str().is_some_and(|k| k.starts_with(pem_start)), "{file}");
    let expiration = file["expirationDate"].as_str().expect("expirationDate");
    if !extra.contains(&"--expires") {
        assert_eq!(expiration, "9999-12-31T23:59:59Z", "a key without expiry");
    }
    KeyFile {
        key_id: file["keyId"].as_str().expect("keyId").to_owned(),
        pem: file["key"].as_str().expect("key").to_owned(),
        user_id: file["userId"].as_str().expect("userId").to_owned(),
        algorithm,
    }
}

/// Signs `claims` with the key file's private key, with its `kid`.
pub fn sign(key: &KeyFile, claims: &Value) -> String {
    let mut header = Header::new(key.algorithm);
    header.kid = Some(key.key_id.clone());
    let encoding = match key.algorithm {
        Algorithm::ES256 => EncodingKey::from_ec_pem(key.pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(key.pem.as_bytes()),
    }
    .expect("the key file's PEM");
    let token = jsonwebtoken::encode(&header, claims, &encoding).expect("sign");
    // ES256 assertions must carry a low s; a JOSE library may sign with either half.
    tessera_mint::ecdsa::canonical_jws(&token).expect("a compact JWS")
}

/// The claims a well-behaved client sends.
pub fn claims(key: &KeyFile, audience: &str) -> Value {
    let jti = format!("{}-{}", now(), rand_suffix());
    json!({"iss": key.user_id, "sub": key.user_id, "aud": audience, "iat": now(), "exp": now() + 300, "jti": jti})
}

pub fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub async fn post(server: &Server, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = oauth2::reqwest::Client::new()
        .post(server.url(path))
        .form(form)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

pub async fn grant(server: &Server, assertion: &str) -> (u16, Value) {
    post(
        server,
        "/oauth/v2/token",
        &[("grant_type", JWT_BEARER), ("assertion", assertion), ("scope", "openid")],
    )
    .await
}

pub fn b64(bytes: &[u8]) -> String {
    <base64ct::Base64UrlUnpadded as base64ct::Encoding>::encode_string(bytes)
}
