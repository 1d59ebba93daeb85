//! Getting a token with a service-user key file, as a client of Tessera does.
//!
//! Run with: `cargo run -p tessera-example-jwt-profile -- KEY_FILE ISSUER`
//!
//! `KEY_FILE` is what `tessera-server service-user key add --username NAME --json`
//! printed; `ISSUER` is the server's issuer URL (for example `http://127.0.0.1:8080`).
//! The example gets a token twice: with the jwt-bearer grant (RFC 7523 §2.1), and
//! with the client credentials grant authenticated by `private_key_jwt` (§2.2),
//! through the `oauth2` crate.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // an example that shows what it got

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, TokenResponse, TokenUrl};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let (Some(key_path), Some(issuer)) = (args.next(), args.next()) else {
        return Err("usage: jwt-profile KEY_FILE ISSUER".into());
    };
    let key_file: Value = serde_json::from_str(&std::fs::read_to_string(key_path)?)?;
    let field = |name: &str| {
        key_file[name].as_str().map(str::to_owned).ok_or(format!("no {name} in the key file"))
    };
    let (key_id, pem, user_id) = (field("keyId")?, field("key")?, field("userId")?);
    let token_url = format!("{}/oauth/v2/token", issuer.trim_end_matches('/'));
    let http = oauth2::reqwest::Client::new();

    // 1. The jwt-bearer grant: the assertion is the grant.
    let assertion = sign(&key_id, &pem, &user_id, &issuer)?;
    let response = http
        .post(&token_url)
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
            ("scope", "openid profile"),
        ])
        .send()
        .await?;
    let body: Value = serde_json::from_slice(&response.bytes().await?)?;
    println!("jwt-bearer grant: {body}");

    // 2. Client credentials with private_key_jwt, through the oauth2 crate: the
    //    assertion replaces the client secret. Each request needs a fresh assertion.
    let client = BasicClient::new(ClientId::new(user_id.clone()))
        .set_token_uri(TokenUrl::new(token_url.clone())?)
        .set_auth_type(AuthType::RequestBody);
    let assertion = sign(&key_id, &pem, &user_id, &token_url)?;
    let token = client
        .exchange_client_credentials()
        .add_extra_param(
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        )
        .add_extra_param("client_assertion", assertion)
        .request_async(&http)
        .await?;
    println!(
        "private_key_jwt: token of {} characters, expires in {:?}",
        token.access_token().secret().len(),
        token.expires_in()
    );
    Ok(())
}

/// A five-minute assertion naming the service user, for `audience`, signed with the
/// key file's private key (RS256 for RSA keys, ES256 for EC keys).
fn sign(key_id: &str, pem: &str, user_id: &str, audience: &str) -> Result<String, BoxError> {
    let (algorithm, key) = match EncodingKey::from_rsa_pem(pem.as_bytes()) {
        Ok(key) => (Algorithm::RS256, key),
        Err(_) => (Algorithm::ES256, EncodingKey::from_ec_pem(pem.as_bytes())?),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = json!({
        "iss": user_id,
        "sub": user_id,
        "aud": audience,
        "iat": now,
        "exp": now + 300,
        "jti": format!("{user_id}-{}", SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos()),
    });
    let mut header = Header::new(algorithm);
    header.kid = Some(key_id.to_owned());
    let assertion = jsonwebtoken::encode(&header, &claims, &key)?;
    // The server accepts ES256 signatures only with a low s (one encoding per
    // signature); jsonwebtoken may sign with either half.
    Ok(tessera_mint::ecdsa::canonical_jws(&assertion).ok_or("not a compact JWS")?)
}
