//! JWT profile authentication (RFC 7523): a client signs assertions with the key file
//! the CLI printed, as a user would with jsonwebtoken, for the jwt-bearer grant and
//! for `private_key_jwt` client authentication; then every rejection.

mod common;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair;
use common::assertions::{
    CLIENT_ASSERTION, JWT_BEARER, KeyFile, b64, claims, grant, key_add, now, post, rand_suffix,
    sign,
};
use common::{Server, cli, cli_json, create_user, temp_db};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tessera_store::prelude::*;
use tessera_store_sqlite::SqliteStore;

#[tokio::test]
async fn the_jwt_bearer_grant_with_the_cli_key_file_and_every_rejection() {
    let db = temp_db();
    create_user(&db.url, "profile-job", &[]);
    create_user(&db.url, "other-job", &[]);
    let server = Server::start(&db.url, &[]);
    let rsa = key_add(&db.url, "profile-job", &[]);
    let ec = key_add(&db.url, "profile-job", &["--type", "ec", "--expires", "30"]);
    let other = key_add(&db.url, "other-job", &[]);
    let aud = server.base.clone();

    // Accepted: RS256 and ES256, iss/sub as user id or as client ID, aud as the
    // issuer or the token endpoint URL.
    let mut issued = Vec::new();
    for (key, mut c) in
        [(&rsa, claims(&rsa, &aud)), (&ec, claims(&ec, &format!("{aud}/oauth/v2/token")))]
    {
        let (status, body) = grant(&server, &sign(key, &c)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["scope"], "openid");
        issued.push(body["access_token"].as_str().expect("token").to_owned());
        c["iss"] = json!("profile-job");
        c["sub"] = json!("profile-job");
        c["jti"] = json!(rand_suffix());
        let (status, body) = grant(&server, &sign(key, &c)).await;
        assert_eq!(status, 200, "client ID as iss and sub: {body}");
        issued.push(body["access_token"].as_str().expect("token").to_owned());
    }

    // Every rejection: invalid_grant, and no token.
    let replayed = sign(&rsa, &claims(&rsa, &aud));
    assert_eq!(grant(&server, &replayed).await.0, 200);
    let mut rejections: Vec<(&str, String)> = vec![("replayed jti", replayed)];
    let variant = |f: &dyn Fn(&mut Value)| {
        let mut c = claims(&rsa, &aud);
        f(&mut c);
        sign(&rsa, &c)
    };
    rejections.push((
        "expired",
        variant(&|c| {
            c["exp"] = json!(now() - 10);
            c["iat"] = json!(now() - 100);
        }),
    ));
    rejections.push(("exp too far ahead", variant(&|c| c["exp"] = json!(now() + 7200))));
    rejections.push((
        "no exp",
        variant(&|c| {
            c.as_object_mut().map(|o| o.remove("exp"));
        }),
    ));
    rejections.push(("iat in the future", variant(&|c| c["iat"] = json!(now() + 600))));
    rejections.push(("nbf in the future", variant(&|c| c["nbf"] = json!(now() + 600))));
    rejections.push(("wrong aud", variant(&|c| c["aud"] = json!("https://elsewhere.example.com"))));
    rejections.push(("wrong iss", variant(&|c| c["iss"] = json!("other-job"))));
    rejections.push(("wrong sub", variant(&|c| c["sub"] = json!("someone"))));
    let mut unknown = KeyFile {
        key_id: "no-such-key".into(),
        pem: rsa.pem.clone(),
        user_id: rsa.user_id.clone(),
        algorithm: Algorithm::RS256,
    };
    rejections.push(("unknown kid", sign(&unknown, &claims(&rsa, &aud))));
    unknown.key_id = other.key_id.clone();
    rejections.push(("a key of another user", sign(&unknown, &claims(&rsa, &aud))));
    rejections
        .push(("another user's key file, naming this user", sign(&other, &claims(&rsa, &aud))));
    let mismatched = KeyFile {
        key_id: rsa.key_id.clone(),
        pem: ec.pem.clone(),
        user_id: rsa.user_id.clone(),
        algorithm: Algorithm::ES256,
    };
    rejections.push(("ES256 under an RSA key's kid", sign(&mismatched, &claims(&rsa, &aud))));
    let none_header =
        b64(json!({"alg": "none", "typ": "JWT", "kid": rsa.key_id}).to_string().as_bytes());
    let payload = b64(claims(&rsa, &aud).to_string().as_bytes());
    rejections.push(("alg none", format!("{none_header}.{payload}.")));
    // HS256 with the RSA public key (as PEM) as the HMAC secret.
    let private = aws_lc_rs::rsa::KeyPair::from_der(&pem_der(&rsa.pem)).expect("PKCS#1");
    let public_der = private.public_key().as_der().expect("spki");
    let public_pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        <base64ct::Base64 as base64ct::Encoding>::encode_string(public_der.as_ref())
    );
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(rsa.key_id.clone());
    let forged = jsonwebtoken::encode(
        &hs,
        &claims(&rsa, &aud),
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .expect("hmac");
    rejections.push(("HS256 with the public key as secret", forged));
    rejections.push(("garbage", "not-a-jwt".into()));

    for (what, assertion) in &rejections {
        let (status, body) = grant(&server, assertion).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{what}: {body}"
        );
        assert!(body.get("access_token").is_none(), "{what}");
        assert!(!server.logs().contains(assertion.as_str()), "{what}: the assertion was logged");
    }

    // A removed key stops working at once.
    let removed = cli(
        &db.url,
        &["service-user", "key", "remove", "--username", "profile-job", "--key-id", &ec.key_id],
    );
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    let (status, body) = grant(&server, &sign(&ec, &claims(&ec, &aud))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "removed key: {body}"
    );
    let listed = cli_json(&db.url, &["service-user", "key", "list", "--username", "profile-job"]);
    let ids: Vec<&str> = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["key_id"].as_str())
        .collect();
    assert_eq!(ids, [rsa.key_id.as_str()]);
    drop(server);

    // Only the accepted requests left token records.
    let store = SqliteStore::open(&db.path).await.expect("open");
    let far = time::OffsetDateTime::now_utc() + time::Duration::days(400);
    // Five tokens were issued (four above and the first use of the replayed
    // assertion), and each recorded its assertion id; no rejection wrote anything.
    assert_eq!(issued.len(), 4);
    assert_eq!(store.purge_expired_tokens(far).await.expect("purge"), 5 + 5);
}

/// The DER inside a PEM block.
fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    <base64ct::Base64 as base64ct::Encoding>::decode_vec(&body).expect("base64")
}

/// Extra form fields, expected status and error code.
type FormCase<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);

#[tokio::test]
async fn private_key_jwt_authenticates_at_token_introspection_and_revocation() {
    let db = temp_db();
    create_user(&db.url, "pkj-job", &[]);
    let server = Server::start(&db.url, &[]);
    let key = key_add(&db.url, "pkj-job", &[]);
    let client_auth = |audience: &str| {
        let mut c = claims(&key, audience);
        c["iss"] = json!("pkj-job");
        c["sub"] = json!("pkj-job");
        sign(&key, &c)
    };
    let assertion = client_auth(&server.url("/oauth/v2/token"));
    let (status, body) = post(
        &server,
        "/oauth/v2/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", CLIENT_ASSERTION),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("token").to_owned();

    // The same assertion again is a replay: invalid_client, 401.
    let (status, body) = post(
        &server,
        "/oauth/v2/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", CLIENT_ASSERTION),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));

    let introspection = client_auth(&server.url("/oauth/v2/introspect"));
    let (status, body) = post(
        &server,
        "/oauth/v2/introspect",
        &[
            ("token", &token),
            ("client_id", "pkj-job"),
            ("client_assertion_type", CLIENT_ASSERTION),
            ("client_assertion", &introspection),
        ],
    )
    .await;
    assert_eq!((status, &body["active"]), (200, &json!(true)), "{body}");

    let revocation = client_auth(&server.base);
    let (status, _) = post(
        &server,
        "/oauth/v2/revoke",
        &[
            ("token", &token),
            ("client_assertion_type", CLIENT_ASSERTION),
            ("client_assertion", &revocation),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let again = client_auth(&server.base);
    let (_, body) = post(
        &server,
        "/oauth/v2/introspect",
        &[
            ("token", &token),
            ("client_assertion_type", CLIENT_ASSERTION),
            ("client_assertion", &again),
        ],
    )
    .await;
    assert_eq!(body, json!({"active": false}));

    // Malformed combinations.
    let foreign = client_auth(&server.base);
    let cases: Vec<FormCase<'_>> = vec![
        (
            vec![("client_assertion_type", "urn:other"), ("client_assertion", "x")],
            401,
            "invalid_client",
        ),
        (vec![("client_assertion_type", CLIENT_ASSERTION)], 400, "invalid_request"),
        (
            vec![
                ("client_assertion_type", CLIENT_ASSERTION),
                ("client_assertion", "x"),
                ("client_secret", "s"),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![("client_assertion_type", CLIENT_ASSERTION), ("client_assertion", "garbage")],
            401,
            "invalid_client",
        ),
        (
            vec![
                ("client_id", "someone-else"),
                ("client_assertion_type", CLIENT_ASSERTION),
                ("client_assertion", &foreign),
            ],
            401,
            "invalid_client",
        ),
    ];
    for (extra, status, code) in cases {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(extra.iter().copied());
        let (got, body) = post(&server, "/oauth/v2/token", &form).await;
        assert_eq!((got, body["error"].as_str()), (status, Some(code)), "{extra:?}");
    }
}

#[tokio::test]
async fn discovery_lists_the_jwt_profile() {
    let server = Server::start("memory:", &[]);
    let bytes = oauth2::reqwest::Client::new()
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("body");
    let doc: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert!(
        doc["grant_types_supported"].as_array().is_some_and(|g| g.contains(&json!(JWT_BEARER)))
    );
    assert!(
        doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .is_some_and(|m| m.contains(&json!("private_key_jwt")))
    );
    assert_eq!(
        doc["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS256", "ES256", "EdDSA"])
    );
}
