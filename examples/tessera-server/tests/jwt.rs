//! JWT access tokens from the running server, verified as a resource server
//! verifies them: discovery, then the key set over HTTP, then the key by `kid`.

mod common;

use std::process::{Command, Stdio};

use common::{BIN, Server, create_user, temp_db};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use tessera_mint::{AccessTokenClaims, MasterKey};
use tessera_store::SigningKeyStore;
use tessera_store_sqlite::SqliteStore;

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::new()
}

async fn get_json(url: &str) -> (oauth2::reqwest::header::HeaderMap, serde_json::Value) {
    let response = http().get(url).send().await.expect("GET");
    assert_eq!(response.status().as_u16(), 200, "{url}");
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    (headers, serde_json::from_slice(&bytes).expect("JSON"))
}

async fn token(server: &Server, id: &str, secret: &str, scope: &str) -> serde_json::Value {
    let response = http()
        .post(server.url("/oauth/v2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON")
}

/// What a resource server does with a bearer token it receives.
async fn verify_as_resource_server(
    base: &str,
    access_token: &str,
    alg: Algorithm,
) -> AccessTokenClaims {
    let (_, discovery) = get_json(&format!("{base}/.well-known/openid-configuration")).await;
    let issuer = discovery["issuer"].as_str().expect("issuer").to_owned();
    let jwks_uri = discovery["jwks_uri"].as_str().expect("jwks_uri").to_owned();
    let (_, jwks) = get_json(&jwks_uri).await;
    verify_with(jwks, &issuer, access_token, alg)
}

/// Verifies a token with a fetched key set: key by `kid`, signature, `typ`, issuer, expiry.
fn verify_with(
    jwks: serde_json::Value,
    issuer: &str,
    access_token: &str,
    alg: Algorithm,
) -> AccessTokenClaims {
    let set: JwkSet = serde_json::from_value(jwks).expect("a JWK Set");
    let header = jsonwebtoken::decode_header(access_token).expect("a JWT");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 type");
    assert_eq!(header.alg, alg);
    let jwk = set.find(header.kid.as_deref().expect("kid")).expect("kid is published");
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.validate_aud = false;
    jsonwebtoken::decode::<AccessTokenClaims>(
        access_token,
        &DecodingKey::from_jwk(jwk).expect("key"),
        &validation,
    )
    .expect("signature and claims verify")
    .claims
}

#[tokio::test]
async fn each_algorithm_issues_jwts_that_verify_with_the_published_keys() {
    for (name, alg) in
        [("ES256", Algorithm::ES256), ("RS256", Algorithm::RS256), ("EdDSA", Algorithm::EdDSA)]
    {
        let db = temp_db();
        let creds = create_user(&db.url, "jwt-user", &["--access-token-type", "jwt"]);
        let server = Server::start(&db.url, &["--signing-alg", name]);
        let response = token(
            &server,
            "jwt-user",
            &creds.client_secret,
            "openid profile urn:zitadel:iam:org:project:id:zitadel:aud",
        )
        .await;
        assert_eq!(response["token_type"], "Bearer");
        let access_token = response["access_token"].as_str().expect("token");
        let claims = verify_as_resource_server(&server.base, access_token, alg).await;
        assert_eq!(claims.iss, server.base, "{name}: default issuer is the listen address");
        assert_eq!(claims.sub, creds.user_id, "{name}: sub is the user id");
        assert_eq!(claims.client_id, "jwt-user");
        assert_eq!(claims.aud, ["zitadel"], "{name}: audience from the audience scope");
        assert_eq!(claims.scope, "openid profile urn:zitadel:iam:org:project:id:zitadel:aud");
        assert_eq!(claims.exp - claims.iat, 43_200);
        let expires_in = response["expires_in"].as_i64().expect("expires_in");
        assert!((43_199..=43_200).contains(&expires_in));

        // Without an audience scope the audience is the client itself.
        let response = token(&server, "jwt-user", &creds.client_secret, "openid").await;
        let claims = verify_as_resource_server(
            &server.base,
            response["access_token"].as_str().expect("token"),
            alg,
        )
        .await;
        assert_eq!(claims.aud, ["jwt-user"]);
        assert!(!server.logs().contains(response["access_token"].as_str().expect("token")));
    }
}

#[tokio::test]
async fn key_set_and_discovery_documents() {
    let server = Server::start("memory:", &[]);
    let (headers, jwks) = get_json(&server.url("/oauth/v2/keys")).await;
    assert_eq!(headers["cache-control"], "public, max-age=300");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "one key on a fresh database");
    assert_eq!(keys[0]["alg"], "ES256", "ES256 is the default");
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["use"], "sig");
    assert!(keys[0]["kid"].is_string());
    assert!(keys[0].get("d").is_none(), "no private key material");

    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
        let (headers, doc) = get_json(&server.url(path)).await;
        assert!(headers["cache-control"].to_str().is_ok_and(|v| v.starts_with("public")));
        assert_eq!(doc["issuer"], server.base.as_str());
        assert_eq!(doc["token_endpoint"], server.url("/oauth/v2/token"));
        assert_eq!(doc["jwks_uri"], server.url("/oauth/v2/keys"));
        assert_eq!(
            doc["grant_types_supported"],
            serde_json::json!([
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:jwt-bearer"
            ])
        );
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post", "private_key_jwt"])
        );
        assert_eq!(
            doc["scopes_supported"],
            serde_json::json!(["openid", "profile", "email", "phone", "address"])
        );
        assert_eq!(doc["access_token_signing_alg_values_supported"], serde_json::json!(["ES256"]));
    }
    let response = http().post(server.url("/oauth/v2/keys")).send().await.expect("POST");
    assert_eq!(response.status().as_u16(), 405);
}

#[tokio::test]
async fn the_issuer_flag_names_the_issuer_everywhere() {
    let db = temp_db();
    let creds = create_user(&db.url, "iss", &["--access-token-type", "jwt"]);
    let server = Server::start(&db.url, &["--issuer", "https://auth.example.com/"]);
    let (_, doc) = get_json(&server.url("/.well-known/openid-configuration")).await;
    assert_eq!(doc["issuer"], "https://auth.example.com/");
    assert_eq!(doc["token_endpoint"], "https://auth.example.com/oauth/v2/token");
    let response = token(&server, "iss", &creds.client_secret, "openid").await;
    let payload = response["access_token"]
        .as_str()
        .expect("token")
        .split('.')
        .nth(1)
        .expect("payload")
        .to_owned();
    let claims: serde_json::Value = serde_json::from_slice(
        &<base64ct::Base64UrlUnpadded as base64ct::Encoding>::decode_vec(&payload).expect("b64"),
    )
    .expect("claims");
    assert_eq!(claims["iss"], "https://auth.example.com/");
}

#[tokio::test]
async fn on_sqlite_the_master_key_file_is_created_once_and_keys_are_sealed() {
    let db = temp_db();
    let creds = create_user(&db.url, "sealed", &["--access-token-type", "jwt"]);
    let key_file = db.dir.path().join("tessera.db.master.key");
    // A fixed issuer: the port changes across the restart.
    let issuer = "http://tessera.test";
    let server = Server::start(&db.url, &["--issuer", issuer]);
    assert!(key_file.exists(), "key file beside the database");
    assert!(server.logs().contains("master key"), "the server says where the key is");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only permissions");
    }
    let before = std::fs::read(&key_file).expect("key file");
    let first = token(&server, "sealed", &creds.client_secret, "openid").await;
    let (_, jwks_before) = get_json(&server.url("/oauth/v2/keys")).await;
    assert!(server.terminate().success());

    let server = Server::start(&db.url, &["--issuer", issuer]);
    assert_eq!(std::fs::read(&key_file).expect("key file"), before, "reused, not replaced");
    let (_, jwks_after) = get_json(&server.url("/oauth/v2/keys")).await;
    assert_eq!(jwks_before, jwks_after, "the same keys after a restart");
    verify_with(
        jwks_after,
        issuer,
        first["access_token"].as_str().expect("token"),
        Algorithm::ES256,
    );
    drop(server);

    // The database holds the private key only sealed: decrypt it with the key file,
    // then look for the plaintext in the raw file and its write-ahead log.
    let master =
        MasterKey::from_base64(&String::from_utf8(before).expect("utf-8")).expect("master key");
    let store = SqliteStore::open(&db.path).await.expect("open");
    let records = store.signing_keys().await.expect("keys");
    assert_eq!(records.len(), 1);
    let pkcs8 = master.open(&records[0].kid, &records[0].sealed_private_key).expect("unseal");
    drop(store);
    let mut raw = std::fs::read(&db.path).expect("db");
    raw.extend(std::fs::read(db.path.with_extension("db-wal")).unwrap_or_default());
    let tail = &pkcs8[pkcs8.len() - 32..];
    assert!(
        !raw.windows(tail.len()).any(|w| w == tail),
        "private key bytes in clear in the database"
    );
}

#[test]
fn a_wrong_master_key_stops_the_server_with_a_clear_error() {
    let db = temp_db();
    drop(Server::start(&db.url, &[]));
    let wrong = MasterKey::generate().expect("key");
    for (value, expected) in [
        (wrong.to_base64().to_string(), "master key"),
        ("not-a-key".to_owned(), "TESSERA_MASTER_KEY"),
    ] {
        let output = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", &db.url])
            .env("TESSERA_MASTER_KEY", &value)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "must refuse to start");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stderr.contains(&value), "the key is never echoed");
    }
}
