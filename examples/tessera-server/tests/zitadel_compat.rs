//! What ZITADEL's client libraries rely on, checked over HTTP against the real
//! server: discovery with an authorization endpoint, the replay rule for assertions
//! with and without `jti`, client authentication on the jwt-bearer grant, the
//! `--compat zitadel` token shape, key files, and the organization in role and
//! resource owner claims. (The libraries themselves run in `tests/compat-zitadel`.)

mod common;

use base64ct::{Base64UrlUnpadded, Encoding};
use common::assertions::{JWT_BEARER, KeyFile, claims, key_add, now, post, sign};
use common::{Server, TempDb, cli, cli_json, create_user, temp_db};
use serde_json::{Value, json};

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn get_json(url: &str) -> Value {
    let response = http().get(url).send().await.expect("GET");
    assert_eq!(response.status().as_u16(), 200, "{url}");
    serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON")
}

/// A ZITADEL client's assertion: no `jti`, whole-second `iat`, an hour of validity.
fn zitadel_claims(key: &KeyFile, audience: &str) -> Value {
    json!({"iss": key.user_id, "sub": key.user_id, "aud": audience, "iat": now(), "exp": now() + 3600})
}

/// The claims of a JWT, unverified.
fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&Base64UrlUnpadded::decode_vec(payload).expect("base64url"))
        .expect("claims")
}

fn jwt_header(token: &str) -> Value {
    let header = token.split('.').next().expect("a JWT");
    serde_json::from_slice(&Base64UrlUnpadded::decode_vec(header).expect("base64url"))
        .expect("header")
}

async fn bearer_grant(server: &Server, assertion: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![("grant_type", JWT_BEARER), ("assertion", assertion), ("scope", "openid")];
    form.extend_from_slice(extra);
    post(server, "/oauth/v2/token", &form).await
}

#[tokio::test]
async fn discovery_names_an_authorization_endpoint_that_refuses_without_redirecting() {
    let server = Server::start("memory:", &[]);
    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
        let doc = get_json(&server.url(path)).await;
        assert_eq!(doc["authorization_endpoint"], server.url("/oauth/v2/authorize"), "{path}");
        let types = doc["response_types_supported"].as_array().expect("response types");
        assert!(!types.is_empty(), "{path}: a non-empty list");
        assert_eq!(doc["subject_types_supported"], json!(["public"]));
        assert!(doc["claims_supported"].as_array().is_some_and(|c| c.contains(&json!("sub"))));
        assert!(doc["id_token_signing_alg_values_supported"].is_array());
    }
    let authorize = server.url(
        "/oauth/v2/authorize?response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&state=s",
    );
    for request in
        [http().get(&authorize), http().post(&authorize).form(&[("response_type", "code")])]
    {
        let response = request.send().await.expect("authorize");
        assert_eq!(response.status().as_u16(), 400);
        assert!(response.headers().get("location").is_none(), "never redirects");
        let body: Value =
            serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON");
        assert_eq!(body["error"], "unsupported_response_type");
        assert!(
            body["error_description"].as_str().is_some_and(|d| d.contains("service users")),
            "{body}"
        );
    }
    let response = http().put(&authorize).send().await.expect("PUT");
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "GET, POST");
}

#[tokio::test]
async fn assertions_without_jti_are_accepted_until_they_expire_and_with_a_jti_once() {
    let db = temp_db();
    create_user(&db.url, "zitadel-job", &[]);
    let server = Server::start(&db.url, &[]);
    let key = key_add(&db.url, "zitadel-job", &[]);
    let aud = server.base.clone();

    // The same bytes three times, as a client that caches its assertion sends them.
    let cached = sign(&key, &zitadel_claims(&key, &aud));
    for attempt in 0..3 {
        let (status, body) = bearer_grant(&server, &cached, &[]).await;
        assert_eq!(status, 200, "attempt {attempt}: {body}");
    }
    // And as a client assertion at introspection (as the zitadel crate's
    // introspection with an application key file does), three calls in a row.
    let (_, issued) = bearer_grant(&server, &cached, &[]).await;
    let token = issued["access_token"].as_str().expect("token");
    let mut as_client = zitadel_claims(&key, &aud);
    as_client["iss"] = json!("zitadel-job");
    as_client["sub"] = json!("zitadel-job");
    let client_assertion = sign(&key, &as_client);
    for attempt in 0..3 {
        let (status, body) = post(
            &server,
            "/oauth/v2/introspect",
            &[
                ("token", token),
                ("client_assertion_type", common::assertions::CLIENT_ASSERTION),
                ("client_assertion", &client_assertion),
            ],
        )
        .await;
        assert_eq!((status, &body["active"]), (200, &json!(true)), "attempt {attempt}: {body}");
    }

    // With a jti: once.
    let once = sign(&key, &claims(&key, &aud));
    assert_eq!(bearer_grant(&server, &once, &[]).await.0, 200);
    let (status, body) = bearer_grant(&server, &once, &[]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(body["error_description"], "the assertion was used before");

    // An expired assertion without jti is refused like any other.
    let mut expired = zitadel_claims(&key, &aud);
    expired["iat"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let (status, body) = bearer_grant(&server, &sign(&key, &expired), &[]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    // More than an hour of validity is refused too.
    let mut long = zitadel_claims(&key, &aud);
    long["exp"] = json!(now() + 3 * 3600);
    let (status, body) = bearer_grant(&server, &sign(&key, &long), &[]).await;
    assert_eq!(body["error_description"], "the assertion is valid for too long", "{status}");
    drop(server);

    // The operator's strict mode refuses assertions without jti.
    let strict = Server::start(&db.url, &["--require-assertion-jti"]);
    let aud = strict.base.clone();
    let (status, body) = bearer_grant(&strict, &sign(&key, &zitadel_claims(&key, &aud)), &[]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(body["error_description"], "the assertion has no jti");
    let (status, body) = bearer_grant(&strict, &sign(&key, &claims(&key, &aud)), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(strict.logs().contains("event=\"assertion_rejected\""), "logged");
}

#[tokio::test]
async fn es256_assertions_with_a_high_s_are_refused() {
    let db = temp_db();
    create_user(&db.url, "ec-job", &[]);
    let server = Server::start(&db.url, &[]);
    let key = key_add(&db.url, "ec-job", &["--type", "ec"]);
    let aud = server.base.clone();
    for claims in [zitadel_claims(&key, &aud), claims(&key, &aud)] {
        let low = sign(&key, &claims);
        let (input, signature) = low.rsplit_once('.').expect("JWS");
        let mut high = Base64UrlUnpadded::decode_vec(signature).expect("base64url");
        tessera_mint::ecdsa::negate_s(&mut high);
        let high = format!("{input}.{}", Base64UrlUnpadded::encode_string(&high));
        let (status, body) = bearer_grant(&server, &high, &[]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        assert_eq!(
            body["error_description"],
            "the assertion's ECDSA signature is not canonical (high s)"
        );
        assert_eq!(bearer_grant(&server, &low, &[]).await.0, 200, "the low twin is accepted");
    }
}

/// What a case is, its `Authorization` header, and its extra form fields.
type Case<'a> = (&'a str, Option<String>, Vec<(&'a str, String)>);

#[tokio::test]
async fn the_jwt_bearer_grant_checks_client_credentials_when_they_are_sent() {
    let db = temp_db();
    let job = create_user(&db.url, "grant-job", &[]);
    let other = create_user(&db.url, "other-job", &[]);
    let server = Server::start(&db.url, &[]);
    let key = key_add(&db.url, "grant-job", &[]);
    let other_key = key_add(&db.url, "other-job", &[]);
    let aud = server.base.clone();
    let assertion = sign(&key, &zitadel_claims(&key, &aud));

    let basic = |id: &str, secret: &str| {
        format!(
            "Basic {}",
            <base64ct::Base64 as Encoding>::encode_string(format!("{id}:{secret}").as_bytes())
        )
    };
    let send = |authorization: Option<String>, extra: Vec<(&'static str, String)>| {
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", JWT_BEARER.to_owned()),
            ("assertion", assertion.clone()),
            ("scope", "openid".to_owned()),
        ];
        form.extend(extra);
        let mut request = http().post(server.url("/oauth/v2/token")).form(&form);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        async move {
            let response = request.send().await.expect("POST");
            let status = response.status().as_u16();
            let challenge = response.headers().get("www-authenticate").is_some();
            let body: Value =
                serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON");
            (status, challenge, body)
        }
    };

    // Wrong: a wrong secret, an unknown client, a malformed header, a forged client
    // assertion, a wrong secret in the body.
    let mut forged = zitadel_claims(&other_key, &aud);
    forged["iss"] = json!("other-job");
    forged["sub"] = json!("other-job");
    let forged = sign(&key, &forged);
    let client_assertion = |assertion: String| {
        vec![
            ("client_assertion_type", common::assertions::CLIENT_ASSERTION.to_owned()),
            ("client_assertion", assertion),
        ]
    };
    let wrong: Vec<Case<'_>> = vec![
        ("wrong secret", Some(basic("grant-job", "not-the-secret")), vec![]),
        ("unknown client", Some(basic("nobody", &job.client_secret)), vec![]),
        ("malformed header", Some("Basic !!!".to_owned()), vec![]),
        ("forged client assertion", None, client_assertion(forged)),
        (
            "wrong secret in the body",
            None,
            vec![("client_id", "grant-job".to_owned()), ("client_secret", "nope".to_owned())],
        ),
    ];
    for (what, authorization, extra) in wrong {
        let (status, challenge, body) = send(authorization.clone(), extra).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{what}");
        assert!(body.get("access_token").is_none(), "{what}");
        assert!(challenge, "{what}: WWW-Authenticate");
    }

    // Right: no credentials, a client_id alone, valid Basic (its own or another
    // client's), valid body credentials, a valid client assertion of another user.
    let mut other_assertion = zitadel_claims(&other_key, &aud);
    other_assertion["iss"] = json!("other-job");
    other_assertion["sub"] = json!("other-job");
    let other_assertion = sign(&other_key, &other_assertion);
    let right: Vec<Case<'_>> = vec![
        ("no credentials", None, vec![]),
        ("client_id alone", None, vec![("client_id", "grant-job".to_owned())]),
        ("own Basic", Some(basic("grant-job", &job.client_secret)), vec![]),
        ("another client's Basic", Some(basic("other-job", &other.client_secret)), vec![]),
        (
            "body credentials",
            None,
            vec![
                ("client_id", "grant-job".to_owned()),
                ("client_secret", job.client_secret.clone()),
            ],
        ),
        ("another user's client assertion", None, client_assertion(other_assertion)),
    ];
    for (what, authorization, extra) in right {
        let (status, _, body) = send(authorization, extra).await;
        assert_eq!(status, 200, "{what}: {body}");
        // The token is the assertion's user's, whoever authenticated.
        let token = body["access_token"].as_str().expect("token");
        let (status, info) = post(
            &server,
            "/oauth/v2/introspect",
            &[("token", token), ("client_id", "grant-job"), ("client_secret", &job.client_secret)],
        )
        .await;
        assert_eq!((status, &info["username"]), (200, &json!("grant-job")), "{what}: {info}");
    }
}

/// Issues a token with client credentials.
async fn token(server: &Server, id: &str, secret: &str, scope: &str) -> Value {
    let response = http()
        .post(server.url("/oauth/v2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let body: Value = serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON");
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn compat_zitadel_signs_rs256_with_typ_jwt() {
    for (flags, alg, typ) in [
        (vec!["--compat", "zitadel"], "RS256", "JWT"),
        (vec!["--compat", "zitadel", "--access-token-typ", "at+jwt"], "RS256", "at+jwt"),
        (vec!["--access-token-typ", "JWT"], "ES256", "JWT"),
        (vec![], "ES256", "at+jwt"),
    ] {
        // A database of its own: keys of another algorithm would sign until rotated.
        let db = temp_db();
        let job = create_user(&db.url, "jwt-job", &["--access-token-type", "jwt"]);
        let server = Server::start(&db.url, &flags);
        let issued = token(&server, &job.client_id, &job.client_secret, "openid").await;
        let raw = issued["access_token"].as_str().expect("token");
        let header = jwt_header(raw);
        assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some(alg), Some(typ)));
        // The key set names the key's use and algorithm.
        let keys = get_json(&server.url("/oauth/v2/keys")).await;
        let key = keys["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["kid"] == header["kid"])
            .cloned()
            .expect("the signing key is published");
        assert_eq!((key["use"].as_str(), key["alg"].as_str()), (Some("sig"), Some(alg)));
        // The server itself accepts its token, whatever the type.
        let (status, body) = post(
            &server,
            "/oauth/v2/introspect",
            &[("token", raw), ("client_id", "jwt-job"), ("client_secret", &job.client_secret)],
        )
        .await;
        assert_eq!((status, &body["active"]), (200, &json!(true)), "{flags:?}: {body}");
    }
    let bad = cli("memory:", &["serve", "--compat", "keycloak"]);
    assert!(!bad.status.success(), "an unknown compatibility setting is refused");
}

#[tokio::test]
async fn key_files_have_an_expiration_date_and_apps_a_distinct_app_id() {
    let db = temp_db();
    cli_json(&db.url, &["project", "create", "--name", "Orders", "--id", "orders"]);
    let app = cli_json(&db.url, &["api-app", "create", "--project", "orders", "--name", "API"]);
    let client_id = app["client_id"].as_str().expect("client_id");
    let file = cli_json(&db.url, &["api-app", "key", "add", "--client-id", client_id]);
    assert_eq!(file["type"], "application");
    assert_eq!(file["clientId"], client_id);
    let app_id = file["appId"].as_str().expect("appId");
    assert_ne!(app_id, client_id);
    assert!(app_id.len() == 18 && app_id.bytes().all(|b| b.is_ascii_digit()), "{app_id}");
    assert!(file["key"].as_str().is_some_and(|k| k.starts_with("-----BEGIN RSA PRIVATE KEY-----")));
    assert_eq!(file["expirationDate"], "9999-12-31T23:59:59Z");
    // The app id is the app's own, stable: listed, and the same in a second key file.
    let listed = cli_json(&db.url, &["api-app", "list"]);
    assert_eq!(listed["api_apps"][0]["app_id"], app_id);
    let again =
        cli_json(&db.url, &["api-app", "key", "add", "--client-id", client_id, "--expires", "30"]);
    assert_eq!(again["appId"], app_id);
    let expires = again["expirationDate"].as_str().expect("expirationDate");
    let expires =
        time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339");
    let days = (expires - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((29 * 24..=30 * 24).contains(&days), "expires in 30 days: {days} hours");
    // The CLI's help says which clients load which keys.
    let help = cli(&db.url, &["service-user", "key", "add", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("ZITADEL"), "{help}");
}

/// A database with project `orders`, an API app of it, and a user of each token
/// type holding `reader` in it.
struct Org {
    db: TempDb,
    app: (String, String),
    users: Vec<common::Credentials>,
}

fn org_world() -> Org {
    let db = temp_db();
    cli_json(&db.url, &["project", "create", "--name", "Orders", "--id", "orders"]);
    let app = cli_json(&db.url, &["api-app", "create", "--project", "orders", "--name", "API"]);
    let app = (
        app["client_id"].as_str().expect("client_id").to_owned(),
        app["client_secret"].as_str().expect("secret").to_owned(),
    );
    let mut users = Vec::new();
    for (name, kind) in [("opaque-job", "opaque"), ("jwt-job", "jwt")] {
        users.push(create_user(&db.url, name, &["--access-token-type", kind]));
        cli_json(
            &db.url,
            &["grant", "add", "--username", name, "--project", "orders", "--role", "reader"],
        );
    }
    Org { db, app, users }
}

#[tokio::test]
async fn the_organization_names_roles_and_the_resource_owner() {
    let w = org_world();
    let set = cli(&w.db.url, &["organization", "show"]);
    assert!(!set.status.success(), "no organization before the first start");
    let server = Server::start(
        &w.db.url,
        &["--organization-name", "Acme", "--organization-domain", "Acme.Example.com"],
    );
    let org = cli_json(&w.db.url, &["organization", "show"]);
    assert_eq!(
        (org["name"].as_str(), org["primary_domain"].as_str()),
        (Some("Acme"), Some("acme.example.com"))
    );
    let org_id = org["organization_id"].as_str().expect("id").to_owned();
    let owner_claims = |domain: &str| {
        json!({
            "urn:zitadel:iam:user:resourceowner:id": org_id,
            "urn:zitadel:iam:user:resourceowner:name": "Acme",
            "urn:zitadel:iam:user:resourceowner:primary_domain": domain,
        })
    };
    let scope = "openid profile urn:zitadel:iam:user:resourceowner \
                 urn:zitadel:iam:org:project:id:orders:aud urn:zitadel:iam:org:project:role:reader";
    for user in &w.users {
        let issued = token(&server, &user.client_id, &user.client_secret, scope).await;
        assert_eq!(issued["scope"], scope.split_whitespace().collect::<Vec<_>>().join(" "));
        let raw = issued["access_token"].as_str().expect("token");
        let (status, answer) = post(
            &server,
            "/oauth/v2/introspect",
            &[("token", raw), ("client_id", &w.app.0), ("client_secret", &w.app.1)],
        )
        .await;
        assert_eq!((status, &answer["active"]), (200, &json!(true)), "{answer}");
        assert_eq!(
            answer["urn:zitadel:iam:org:project:roles"],
            json!({"reader": {&org_id: "acme.example.com"}}),
            "{}",
            user.client_id
        );
        for (claim, value) in owner_claims("acme.example.com").as_object().expect("claims") {
            assert_eq!(&answer[claim], value, "introspection {claim}");
        }
        let response = http()
            .get(server.url("/oidc/v1/userinfo"))
            .bearer_auth(raw)
            .send()
            .await
            .expect("userinfo");
        let info: Value =
            serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON");
        for (claim, value) in owner_claims("acme.example.com").as_object().expect("claims") {
            assert_eq!(&info[claim], value, "userinfo {claim}: {info}");
        }
        if raw.split('.').count() == 3 {
            let claims = jwt_claims(raw);
            for (claim, value) in owner_claims("acme.example.com").as_object().expect("claims") {
                assert_eq!(&claims[claim], value, "JWT {claim}");
            }
            assert_eq!(
                claims["urn:zitadel:iam:org:project:roles"],
                json!({"reader": {&org_id: "acme.example.com"}})
            );
        }
        // Without the scope, no resource owner claims.
        let issued = token(&server, &user.client_id, &user.client_secret, "openid").await;
        let raw = issued["access_token"].as_str().expect("token");
        let response =
            http().get(server.url("/oidc/v1/userinfo")).bearer_auth(raw).send().await.expect("GET");
        let info: Value =
            serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON");
        assert!(info.get("urn:zitadel:iam:user:resourceowner:id").is_none(), "{info}");
        if raw.split('.').count() == 3 {
            assert!(jwt_claims(raw).get("urn:zitadel:iam:user:resourceowner:id").is_none());
        }
    }
    drop(server);

    // The organization is stored: the flags only name it on the first start, and
    // `organization set` changes it (seen after a restart); the id stays.
    let changed = cli_json(&w.db.url, &["organization", "set", "--domain", "acme.test"]);
    assert_eq!(changed["organization_id"], org_id.as_str());
    assert_eq!(
        (changed["name"].as_str(), changed["primary_domain"].as_str()),
        (Some("Acme"), Some("acme.test"))
    );
    let bad = cli(&w.db.url, &["organization", "set", "--domain", "not a domain"]);
    assert!(!bad.status.success());
    assert_eq!(cli_json(&w.db.url, &["organization", "show"])["primary_domain"], "acme.test");
    let server = Server::start(&w.db.url, &["--organization-domain", "ignored.example"]);
    let user = &w.users[0];
    let issued = token(&server, &user.client_id, &user.client_secret, scope).await;
    let raw = issued["access_token"].as_str().expect("token");
    let (_, answer) = post(
        &server,
        "/oauth/v2/introspect",
        &[("token", raw), ("client_id", &w.app.0), ("client_secret", &w.app.1)],
    )
    .await;
    for (claim, value) in owner_claims("acme.test").as_object().expect("claims") {
        assert_eq!(&answer[claim], value, "after the change: {claim}");
    }
}
