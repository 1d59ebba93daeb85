//! Introspection (RFC 7662), revocation (RFC 7009) and userinfo against the real
//! server, with the `oauth2` crate's own requests where it has them.

mod common;

use common::{Credentials, Server, cli_json, create_user, temp_db};
use oauth2::basic::BasicClient;
use oauth2::{
    AccessToken, ClientId, ClientSecret, IntrospectionUrl, RevocationUrl, StandardRevocableToken,
    TokenIntrospectionResponse,
};
use serde_json::{Value, json};

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A server with project `orders` and its API app, and a service user of each
/// token type with the role `reader` in `orders`.
struct World {
    server: Server,
    app: Credentials,
    opaque: Credentials,
    jwt: Credentials,
    /// The roles claim's value for `reader`: organization id → primary domain.
    reader: Value,
    _db: common::TempDb,
}

fn world() -> World {
    let db = temp_db();
    let project = cli_json(&db.url, &["project", "create", "--name", "Orders", "--id", "orders"]);
    assert_eq!(project["project_id"], "orders");
    let app =
        cli_json(&db.url, &["api-app", "create", "--project", "orders", "--name", "Orders API"]);
    assert_eq!(app["project_id"], "orders");
    let app = Credentials {
        client_id: app["client_id"].as_str().expect("client_id").to_owned(),
        client_secret: app["client_secret"].as_str().expect("secret").to_owned(),
        user_id: String::new(),
    };
    let opaque = create_user(&db.url, "opaque-job", &["--display-name", "Opaque job"]);
    let jwt = create_user(&db.url, "jwt-job", &["--access-token-type", "jwt"]);
    for user in ["opaque-job", "jwt-job"] {
        cli_json(
            &db.url,
            &["grant", "add", "--username", user, "--project", "orders", "--role", "reader"],
        );
    }
    let server = Server::start(&db.url, &["--organization-domain", "acme.example.com"]);
    // The server created the organization at start-up, with the configured domain.
    let org = cli_json(&db.url, &["organization", "show"]);
    assert_eq!(org["primary_domain"], "acme.example.com");
    assert_eq!(org["name"], "Tessera");
    let org_id = org["organization_id"].as_str().expect("organization_id").to_owned();
    assert_eq!(org_id.len(), 18, "{org}");
    let reader = json!({"reader": {org_id: "acme.example.com"}});
    World { server, app, opaque, jwt, reader, _db: db }
}

/// Sends an oauth2 request over plain HTTP on loopback, whatever scheme its URL names.
async fn plain_http(
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, oauth2::reqwest::Error> {
    let (parts, body) = request.into_parts();
    let url = parts.uri.to_string().replacen("https://", "http://", 1);
    let response =
        http().request(parts.method, url).headers(parts.headers).body(body).send().await?;
    let mut answer = oauth2::http::Response::new(Vec::new());
    *answer.status_mut() = response.status();
    *answer.headers_mut() = response.headers().clone();
    *answer.body_mut() = response.bytes().await?.to_vec();
    Ok(answer)
}

async fn token(server: &Server, creds: &Credentials, scope: &str) -> Value {
    let response = http()
        .post(server.url("/oauth/v2/token"))
        .basic_auth(&creds.client_id, Some(&creds.client_secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let body: Value = serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON");
    assert_eq!(status, 200, "{body}");
    body
}

async fn access_token(server: &Server, creds: &Credentials, scope: &str) -> String {
    token(server, creds, scope).await["access_token"].as_str().expect("token").to_owned()
}

/// POSTs a form with Basic credentials; returns status, headers and JSON (or Null).
async fn post(
    server: &Server,
    path: &str,
    creds: Option<&Credentials>,
    form: &[(&str, &str)],
) -> (u16, oauth2::reqwest::header::HeaderMap, Value) {
    let mut request = http().post(server.url(path)).form(form);
    if let Some(creds) = creds {
        request = request.basic_auth(&creds.client_id, Some(&creds.client_secret));
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn introspect(server: &Server, caller: &Credentials, token: &str) -> Value {
    let (status, _, body) =
        post(server, "/oauth/v2/introspect", Some(caller), &[("token", token)]).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn userinfo(server: &Server, token: &str) -> (u16, String, Value) {
    let response =
        http().get(server.url("/oidc/v1/userinfo")).bearer_auth(token).send().await.expect("GET");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response.bytes().await.expect("body");
    (status, challenge, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn oauth2_client_introspects_then_revokes_then_sees_inactive() {
    let w = world();
    let client = BasicClient::new(ClientId::new(w.app.client_id.clone()))
        .set_client_secret(ClientSecret::new(w.app.client_secret.clone()))
        .set_introspection_url(
            IntrospectionUrl::new(w.server.url("/oauth/v2/introspect")).expect("url"),
        )
        // The oauth2 crate refuses a revocation URL that is not https (RFC 7009 §2:
        // clients must verify it). TLS belongs in front of the server, so the URL says
        // https and `plain_http` carries the crate's own request over the loopback socket.
        .set_revocation_url(
            RevocationUrl::new(w.server.url("/oauth/v2/revoke").replacen("http://", "https://", 1))
                .expect("url"),
        );
    for (creds, username) in [(&w.opaque, "opaque-job"), (&w.jwt, "jwt-job")] {
        let issued =
            token(&w.server, creds, "openid profile urn:zitadel:iam:org:project:id:orders:aud")
                .await;
        let raw = issued["access_token"].as_str().expect("token").to_owned();
        let access = AccessToken::new(raw.clone());

        let answer =
            client.introspect(&access).request_async(&http()).await.expect("introspection");
        assert!(answer.active(), "{username}: active");
        let scopes: Vec<String> =
            answer.scopes().expect("scope").iter().map(|s| s.to_string()).collect();
        assert_eq!(scopes, ["openid", "profile", "urn:zitadel:iam:org:project:id:orders:aud"]);
        assert_eq!(answer.client_id().map(|c| c.as_str()), Some(username));
        assert_eq!(answer.username(), Some(username));
        assert_eq!(answer.sub(), Some(creds.user_id.as_str()));
        assert_eq!(answer.aud().map(|a| a.as_slice()), Some(&["orders".to_owned()][..]));
        assert_eq!(answer.iss(), Some(w.server.base.as_str()));
        assert!(answer.jti().is_some_and(|j| !j.is_empty()));
        assert_eq!(answer.token_type(), Some(&oauth2::basic::BasicTokenType::Bearer));
        let (exp, iat, nbf) =
            (answer.exp().expect("exp"), answer.iat().expect("iat"), answer.nbf().expect("nbf"));
        assert_eq!((exp - iat).num_seconds(), 43_200, "{username}");
        assert_eq!(nbf, iat);

        client
            .revoke_token(StandardRevocableToken::AccessToken(access.clone()))
            .expect("revocation URL set")
            .request_async(&plain_http)
            .await
            .expect("revocation");
        let answer =
            client.introspect(&access).request_async(&http()).await.expect("introspection");
        assert!(!answer.active(), "{username}: revoked");
        assert_eq!(
            introspect(&w.server, &w.app, &raw).await,
            json!({"active": false}),
            "exactly inactive"
        );
        let (status, challenge, _) = userinfo(&w.server, &raw).await;
        assert_eq!(status, 401, "{username}: userinfo after revocation");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
}

#[tokio::test]
async fn audience_decides_which_api_app_sees_a_token() {
    let w = world();
    let with_orders =
        access_token(&w.server, &w.opaque, "openid urn:zitadel:iam:org:project:id:orders:aud")
            .await;
    let zitadel_only =
        access_token(&w.server, &w.opaque, "openid urn:zitadel:iam:org:project:id:zitadel:aud")
            .await;
    let no_audience = access_token(&w.server, &w.jwt, "openid").await;
    assert_eq!(introspect(&w.server, &w.app, &with_orders).await["active"], true);
    assert_eq!(introspect(&w.server, &w.app, &zitadel_only).await, json!({"active": false}));
    assert_eq!(introspect(&w.server, &w.app, &no_audience).await, json!({"active": false}));

    // A service user sees its own tokens, not another user's.
    assert_eq!(introspect(&w.server, &w.jwt, &no_audience).await["active"], true);
    assert_eq!(introspect(&w.server, &w.opaque, &no_audience).await, json!({"active": false}));
    // And may revoke its own; another user's is refused and stays active.
    let (status, _, body) =
        post(&w.server, "/oauth/v2/revoke", Some(&w.opaque), &[("token", &no_audience)]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));
    assert_eq!(introspect(&w.server, &w.jwt, &no_audience).await["active"], true);
    let (status, _, _) = post(
        &w.server,
        "/oauth/v2/revoke",
        Some(&w.jwt),
        &[("token", &no_audience), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(introspect(&w.server, &w.jwt, &no_audience).await, json!({"active": false}));
}

#[tokio::test]
async fn roles_are_granted_only_where_a_grant_exists() {
    let w = world();
    for creds in [&w.opaque, &w.jwt] {
        let scope = "openid urn:zitadel:iam:org:project:id:orders:aud urn:zitadel:iam:org:project:id:404:aud \
                     urn:zitadel:iam:org:project:role:reader urn:zitadel:iam:org:project:role:writer";
        let issued = token(&w.server, creds, scope).await;
        assert_eq!(
            issued["scope"],
            "openid urn:zitadel:iam:org:project:id:orders:aud urn:zitadel:iam:org:project:role:reader",
            "unknown project and ungranted role dropped, and the scope says so"
        );
        let raw = issued["access_token"].as_str().expect("token");
        let answer = introspect(&w.server, &w.app, raw).await;
        assert_eq!(answer["urn:zitadel:iam:org:project:roles"], w.reader);
        assert_eq!(answer["aud"], json!(["orders"]));

        // A role without its project in the audience is not granted.
        let issued =
            token(&w.server, creds, "openid urn:zitadel:iam:org:project:role:reader").await;
        assert_eq!(issued["scope"], "openid");
    }
    // JWT access tokens carry the roles claim themselves.
    let raw = access_token(
        &w.server,
        &w.jwt,
        "urn:zitadel:iam:org:project:id:orders:aud urn:zitadel:iam:org:project:role:reader",
    )
    .await;
    let payload = raw.split('.').nth(1).expect("payload");
    let claims: Value = serde_json::from_slice(
        &<base64ct::Base64UrlUnpadded as base64ct::Encoding>::decode_vec(payload)
            .expect("base64url"),
    )
    .expect("claims");
    assert_eq!(claims["urn:zitadel:iam:org:project:roles"], w.reader);
}

#[tokio::test]
async fn userinfo_follows_the_scopes_of_the_token() {
    let w = world();
    let profile = access_token(&w.server, &w.opaque, "openid profile").await;
    let (status, _, body) = userinfo(&w.server, &profile).await;
    assert_eq!(status, 200);
    assert_eq!(body["sub"], w.opaque.user_id.as_str());
    assert_eq!(body["name"], "Opaque job");
    assert_eq!(body["preferred_username"], "opaque-job");
    assert!(body["updated_at"].is_i64());

    let openid = access_token(&w.server, &w.jwt, "openid").await;
    let (status, _, body) = userinfo(&w.server, &openid).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"sub": w.jwt.user_id}), "only sub without profile");

    let no_openid = access_token(&w.server, &w.jwt, "profile").await;
    let (status, challenge, body) = userinfo(&w.server, &no_openid).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("insufficient_scope")));
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");

    // POST works too; missing and garbage tokens are invalid_token.
    let response = http()
        .post(w.server.url("/oidc/v1/userinfo"))
        .bearer_auth(&profile)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    for bad in ["garbage", "a.b.c", &"x".repeat(10_000)] {
        let (status, challenge, _) = userinfo(&w.server, bad).await;
        assert_eq!(status, 401, "{bad:.20}");
        assert!(challenge.starts_with("Bearer "), "{challenge}");
    }
    let response = http().get(w.server.url("/oidc/v1/userinfo")).send().await.expect("GET");
    assert_eq!(response.status().as_u16(), 401);
    assert!(
        response.headers()["www-authenticate"].to_str().is_ok_and(|v| v.contains("invalid_token"))
    );
}

#[tokio::test]
async fn disabled_or_deleted_users_tokens_are_inactive_at_once() {
    let w = world();
    let db = &w._db.url;
    let opaque =
        access_token(&w.server, &w.opaque, "openid urn:zitadel:iam:org:project:id:orders:aud")
            .await;
    let jwt =
        access_token(&w.server, &w.jwt, "openid urn:zitadel:iam:org:project:id:orders:aud").await;
    cli_json(db, &["service-user", "set", "--username", "jwt-job", "--enabled", "false"]);
    assert_eq!(introspect(&w.server, &w.app, &jwt).await, json!({"active": false}), "disabled");
    cli_json(db, &["service-user", "set", "--username", "jwt-job", "--enabled", "true"]);
    assert_eq!(introspect(&w.server, &w.app, &jwt).await["active"], true, "enabled again");
    cli_json(db, &["service-user", "delete", "--username", "jwt-job"]);
    assert_eq!(introspect(&w.server, &w.app, &jwt).await, json!({"active": false}), "deleted");
    cli_json(db, &["service-user", "delete", "--username", "opaque-job"]);
    assert_eq!(introspect(&w.server, &w.app, &opaque).await, json!({"active": false}), "deleted");
}

/// Sleeps until just after the next whole second: revocation cut-offs are whole
/// seconds, and a token issued in the second of a revocation is revoked with it.
async fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_millis())
        .unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_millis(1020 - u64::from(now))).await;
}

#[tokio::test]
async fn revoking_every_token_of_a_user_stops_old_tokens_for_good() {
    let w = world();
    let db = &w._db.url;
    let scope = "openid urn:zitadel:iam:org:project:id:orders:aud";
    for (user, creds) in [("opaque-job", &w.opaque), ("jwt-job", &w.jwt)] {
        // `revoke-tokens`: every token issued so far is inactive, at introspection and
        // userinfo; one issued afterwards is active.
        let old = access_token(&w.server, creds, scope).await;
        let shown = cli_json(db, &["service-user", "revoke-tokens", "--username", user]);
        assert!(shown["tokens_revoked_before"].is_string(), "{shown}");
        assert_eq!(introspect(&w.server, &w.app, &old).await, json!({"active": false}), "{user}");
        assert_eq!(userinfo(&w.server, &old).await.0, 401, "{user}");
        next_second().await;
        let new = access_token(&w.server, creds, scope).await;
        assert_eq!(introspect(&w.server, &w.app, &new).await["active"], true, "{user}");

        // Disabling with --revoke-tokens: enabling again does not bring them back.
        let set = |enabled: &str, revoke: bool| {
            let mut args = vec!["service-user", "set", "--username", user, "--enabled", enabled];
            if revoke {
                args.push("--revoke-tokens");
            }
            cli_json(db, &args);
        };
        set("false", true);
        set("true", false);
        assert_eq!(introspect(&w.server, &w.app, &new).await, json!({"active": false}), "{user}");

        // A new secret with --revoke-tokens: the old secret and its tokens stop.
        next_second().await;
        let before = access_token(&w.server, creds, scope).await;
        let renewed =
            cli_json(db, &["service-user", "secret", "--username", user, "--revoke-tokens"]);
        assert_eq!(introspect(&w.server, &w.app, &before).await, json!({"active": false}));
        let creds = Credentials {
            client_id: user.to_owned(),
            client_secret: renewed["client_secret"].as_str().expect("secret").to_owned(),
            user_id: String::new(),
        };
        next_second().await;
        let fresh = access_token(&w.server, &creds, scope).await;
        assert_eq!(introspect(&w.server, &w.app, &fresh).await["active"], true, "{user}");
    }
    let unknown = common::cli(db, &["service-user", "revoke-tokens", "--username", "ghost"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not found"));
}

/// Caller, form, expected status and error code.
type BadCase<'a> = (Option<&'a Credentials>, Vec<(&'a str, &'a str)>, u16, &'a str);

#[tokio::test]
async fn bad_requests_get_rfc_errors_and_change_nothing() {
    let w = world();
    let live =
        access_token(&w.server, &w.opaque, "openid urn:zitadel:iam:org:project:id:orders:aud")
            .await;
    let wrong = Credentials {
        client_id: w.app.client_id.clone(),
        client_secret: "wrong".into(),
        user_id: String::new(),
    };
    let big = "x".repeat(70 * 1024);
    for path in ["/oauth/v2/introspect", "/oauth/v2/revoke"] {
        let cases: Vec<BadCase<'_>> = vec![
            (Some(&w.app), vec![], 400, "invalid_request"),
            (Some(&w.app), vec![("token", "")], 400, "invalid_request"),
            (Some(&w.app), vec![("token", &live), ("token", &live)], 400, "invalid_request"),
            (Some(&wrong), vec![("token", &live)], 401, "invalid_client"),
            (None, vec![("token", &live)], 401, "invalid_client"),
            (Some(&w.app), vec![("token", &big)], 413, "invalid_request"),
        ];
        for (creds, form, status, code) in cases {
            let (got, headers, body) = post(&w.server, path, creds, &form).await;
            assert_eq!(
                (got, body["error"].as_str()),
                (status, Some(code)),
                "{path} {:?}",
                form.iter().map(|(k, _)| k).collect::<Vec<_>>()
            );
            if status == 401 {
                assert!(headers.contains_key("www-authenticate"));
            }
        }
        let response = http().get(w.server.url(path)).send().await.expect("GET");
        assert_eq!(response.status().as_u16(), 405);
        assert_eq!(response.headers()["allow"], "POST");
    }
    // Unknown tokens: introspection says inactive, revocation says 200.
    assert_eq!(introspect(&w.server, &w.app, "unknown-token").await, json!({"active": false}));
    let (status, _, _) =
        post(&w.server, "/oauth/v2/revoke", Some(&w.app), &[("token", "unknown-token")]).await;
    assert_eq!(status, 200);
    let response = http().put(w.server.url("/oidc/v1/userinfo")).send().await.expect("PUT");
    assert_eq!(response.status().as_u16(), 405);
    // After all that, the live token is untouched.
    assert_eq!(introspect(&w.server, &w.app, &live).await["active"], true);
}

#[tokio::test]
async fn discovery_lists_the_new_endpoints() {
    let server = Server::start("memory:", &[]);
    let doc: Value = serde_json::from_slice(
        &http()
            .get(server.url("/.well-known/openid-configuration"))
            .send()
            .await
            .expect("GET")
            .bytes()
            .await
            .expect("body"),
    )
    .expect("JSON");
    assert_eq!(doc["introspection_endpoint"], server.url("/oauth/v2/introspect"));
    assert_eq!(doc["revocation_endpoint"], server.url("/oauth/v2/revoke"));
    assert_eq!(doc["userinfo_endpoint"], server.url("/oidc/v1/userinfo"));
    assert_eq!(
        doc["introspection_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "private_key_jwt"])
    );
    assert_eq!(
        doc["revocation_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "private_key_jwt"])
    );
}
