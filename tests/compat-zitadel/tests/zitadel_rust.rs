//! The real `tessera-server` driven by ZITADEL's Rust client, the `zitadel` crate
//! (pinned to 5.7.7), exactly as a ZITADEL user would use it: OIDC discovery,
//! service-account key files and the JWT bearer grant, introspection with Basic and
//! JWT-profile authentication, the axum `IntrospectedUser` extractor, and local
//! validation of JWT access tokens against the published key set.
//!
//! The crate signs its assertions without `jti` and with a whole-second `iat`, so two
//! calls within one second send byte-identical assertions; several tests make their
//! calls within one second on purpose, and the server must accept every one.

mod common;

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::routing::get;
use common::{
    ApiApp, Server, ServiceUser, app_key, assert_key_file_basics, create_api_app, create_project,
    create_user, field, grant, jwt_header, temp_db, user_key, within_one_second,
};
use openidconnect::{IssuerUrl, TokenIntrospectionResponse as _};
use serde_json::{Value, json};
use zitadel::axum::introspection::{IntrospectedUser, IntrospectionStateBuilder};
use zitadel::credentials::{Application, AuthenticationOptions, ServiceAccount};
use zitadel::oidc::discovery::{ZitadelProviderMetadata, discover};
use zitadel::oidc::introspection::{
    AuthorityAuthentication, ZitadelIntrospectionResponse, fetch_jwks, introspect,
    local_jwt_validation,
};

/// Why discovery of `issuer` fails, with the whole error chain: `zitadel` reports
/// only "could not discover OIDC document", while the openidconnect error it wraps
/// names the field. Empty when discovery succeeds.
async fn discovery_detail(issuer: &str) -> String {
    let issuer = IssuerUrl::new(issuer.to_owned()).expect("issuer URL");
    match ZitadelProviderMetadata::discover_async(issuer, &reqwest::Client::new()).await {
        Ok(_) => String::new(),
        Err(e) => {
            let mut text = format!("discovery fails: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(inner) = source {
                text.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            text
        }
    }
}

/// The role granted in the tests' project.
const ROLE: &str = "reader";
/// The name of the tests' project.
const PROJECT_NAME: &str = "Orders";
/// The scope that names the user's organization in introspection.
const RESOURCE_OWNER_SCOPE: &str = "urn:zitadel:iam:user:resourceowner";
/// The audience the `api_access` option asks for: the server's own API.
const ZITADEL_PROJECT: &str = "zitadel";

/// A server with a project, an API app of it, and a service user holding a key and
/// the role [`ROLE`] in the project.
struct World {
    // Dropped after the server: the database lives in it.
    server: Server,
    db: common::TempDb,
    user: ServiceUser,
    account: ServiceAccount,
    project: String,
    app: ApiApp,
}

impl World {
    /// Starts a server with `serve_args` and provisions it with the CLI; the service
    /// user is created with `user_args`.
    fn new(serve_args: &[&str], user_args: &[&str]) -> World {
        let db = temp_db();
        let server = Server::start(&db.url, serve_args);
        let user = create_user(&db.url, "zitadel-sa", user_args);
        let file = user_key(&db.url, &user.username);
        assert_key_file_basics(&file, "serviceaccount");
        assert_eq!(field(&file, "userId"), user.user_id, "userId of the key file: {file}");
        let account = ServiceAccount::load_from_json(&file.to_string())
            .unwrap_or_else(|e| panic!("ServiceAccount::load_from_json: {e}"));
        let project = create_project(&db.url, PROJECT_NAME);
        grant(&db.url, &user.username, &project, ROLE);
        let app = create_api_app(&db.url, &project, "orders-api");
        assert_eq!(app.project_id, project);
        World { server, db, user, account, project, app }
    }

    fn issuer(&self) -> &str {
        &self.server.base
    }

    /// The value of `result`, or a panic naming `what` failed, why discovery fails
    /// (if it does), and the server's log.
    async fn ok<T, E: std::fmt::Display>(&self, what: &str, result: Result<T, E>) -> T {
        match result {
            Ok(value) => value,
            Err(e) => panic!(
                "{what}: {e}\n{}\nserver log:\n{}",
                discovery_detail(self.issuer()).await,
                self.server.logs()
            ),
        }
    }

    /// A token from the service account's key (the JWT bearer grant), as the crate
    /// gets it; panics with the server's logs if that fails.
    async fn token(&self, options: &AuthenticationOptions) -> String {
        let result = self.account.authenticate_with_options(self.issuer(), options).await;
        self.ok("authenticate_with_options", result).await
    }

    /// Options asking for the project in the audience, the role, and the resource owner.
    fn project_options(&self) -> AuthenticationOptions {
        AuthenticationOptions {
            project_audiences: vec![self.project.clone()],
            roles: vec![ROLE.to_owned()],
            scopes: vec![RESOURCE_OWNER_SCOPE.to_owned()],
            ..Default::default()
        }
    }

    /// The API app's client ID and secret.
    fn basic(&self) -> AuthorityAuthentication {
        AuthorityAuthentication::Basic {
            client_id: self.app.client_id.clone(),
            client_secret: self.app.client_secret.clone(),
        }
    }

    /// The introspection endpoint, as discovery names it.
    async fn introspection_url(&self) -> String {
        let metadata = self.ok("discover", discover(self.issuer()).await).await;
        metadata
            .additional_metadata()
            .introspection_endpoint
            .as_ref()
            .expect("discovery names an introspection endpoint")
            .to_string()
    }

    /// GETs userinfo with `token`; returns the status and the JSON body.
    async fn userinfo(&self, token: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(self.server.url("/oidc/v1/userinfo"))
            .bearer_auth(token)
            .send()
            .await
            .expect("userinfo request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Asserts that `response` is active for the world's user and project and carries
/// the organization as ZITADEL does: the roles claim maps the role to the
/// organization's id and primary domain, and the resource owner fields name it.
fn assert_active_with_org(world: &World, response: &ZitadelIntrospectionResponse) {
    assert!(response.active(), "inactive: {response:?}");
    assert_eq!(response.sub(), Some(world.user.user_id.as_str()), "{response:?}");
    assert!(
        response.aud().is_some_and(|aud| aud.contains(&world.project)),
        "the audience does not hold the project {}: {response:?}",
        world.project
    );
    let extra = response.extra_fields();
    let nonempty = |value: &Option<String>, name: &str| -> String {
        match value.as_deref() {
            Some(value) if !value.is_empty() => value.to_owned(),
            _ => panic!("{name} is not set (scope {RESOURCE_OWNER_SCOPE}): {response:?}"),
        }
    };
    let org_id = nonempty(&extra.resource_owner_id, "resource_owner_id");
    nonempty(&extra.resource_owner_name, "resource_owner_name");
    let domain = nonempty(&extra.resource_owner_primary_domain, "resource_owner_primary_domain");
    let roles = extra.project_roles.as_ref().unwrap_or_else(|| panic!("no roles: {response:?}"));
    let expected =
        HashMap::from([(ROLE.to_owned(), HashMap::from([(org_id.clone(), domain.clone())]))]);
    assert_eq!(
        roles, &expected,
        "urn:zitadel:iam:org:project:roles must map the role to {{organization id: primary domain}}"
    );
    // Not the project id and name (what a role claim of another shape would hold).
    assert_ne!(org_id, world.project, "the organization id is the project id");
    assert_ne!(domain, PROJECT_NAME, "the primary domain is the project name");
}

/// `discover` parses the discovery document (as openidconnect's provider metadata,
/// which requires every field OpenID Connect Discovery requires) and names the
/// server's endpoints.
#[tokio::test]
async fn discovery_names_the_endpoints() {
    let db = temp_db();
    let server = Server::start(&db.url, &[]);
    let metadata = match discover(&server.base).await {
        Ok(metadata) => metadata,
        Err(e) => panic!(
            "discover({}): {e}\n{}\nserver log:\n{}",
            server.base,
            discovery_detail(&server.base).await,
            server.logs()
        ),
    };
    assert_eq!(metadata.issuer().as_str(), server.base);
    assert_eq!(
        metadata.token_endpoint().map(|url| url.as_str()),
        Some(server.url("/oauth/v2/token").as_str())
    );
    let extra = metadata.additional_metadata();
    assert_eq!(
        extra.introspection_endpoint.as_ref().map(|url| url.as_str()),
        Some(server.url("/oauth/v2/introspect").as_str())
    );
    assert_eq!(
        extra.revocation_endpoint.as_ref().map(|url| url.as_str()),
        Some(server.url("/oauth/v2/revoke").as_str())
    );
    assert_eq!(metadata.jwks_uri().as_str(), server.url("/oauth/v2/keys"));
}

/// A key file from `service-user key add` loads as a `ServiceAccount`, and two
/// `authenticate_with_options` calls within one second, whose assertions are
/// byte-identical, both get a working token.
#[tokio::test]
async fn service_account_authenticates_twice_within_one_second() {
    let world = World::new(&[], &[]);
    let options = AuthenticationOptions::default();
    let (first, second) = within_one_second(async || {
        let first = world.account.authenticate_with_options(world.issuer(), &options).await;
        let second = world.account.authenticate_with_options(world.issuer(), &options).await;
        (first.map_err(|e| e.to_string()), second.map_err(|e| e.to_string()))
    })
    .await;
    let first = world.ok("first call", first).await;
    let second = world.ok("second call within the same second", second).await;
    assert!(!first.is_empty() && !second.is_empty());
    assert_ne!(first, second, "two grants gave the same token");
    for token in [&first, &second] {
        let (status, body) = world.userinfo(token).await;
        assert_eq!(status, 200, "userinfo: {body}");
        assert_eq!(body["sub"], world.user.user_id, "userinfo: {body}");
    }
}

/// With `api_access`, a project audience and a role, two calls within one second both
/// get a token whose audience holds the project and the server's API and which
/// carries the role.
#[tokio::test]
async fn service_account_with_api_access_project_and_role() {
    let world = World::new(&[], &[]);
    let options = AuthenticationOptions {
        api_access: true,
        project_audiences: vec![world.project.clone()],
        roles: vec![ROLE.to_owned()],
        ..Default::default()
    };
    let (first, second) = within_one_second(async || {
        let first = world.account.authenticate_with_options(world.issuer(), &options).await;
        let second = world.account.authenticate_with_options(world.issuer(), &options).await;
        (first.map_err(|e| e.to_string()), second.map_err(|e| e.to_string()))
    })
    .await;
    let first = world.ok("first call", first).await;
    let second = world.ok("second call within the same second", second).await;
    assert_ne!(first, second, "two grants gave the same token");

    let url = world.introspection_url().await;
    for token in [&first, &second] {
        let result = introspect(&url, world.issuer(), &world.basic(), token).await;
        let response = world.ok("introspect", result).await;
        assert!(response.active(), "inactive: {response:?}");
        assert_eq!(response.sub(), Some(world.user.user_id.as_str()));
        let aud = response.aud().cloned().unwrap_or_default();
        assert!(aud.contains(&world.project), "audience {aud:?} lacks the project");
        assert!(aud.iter().any(|a| a == ZITADEL_PROJECT), "audience {aud:?} lacks the API");
        let scopes: Vec<String> =
            response.scopes().into_iter().flatten().map(|s| s.to_string()).collect();
        for wanted in [
            format!("urn:zitadel:iam:org:project:role:{ROLE}"),
            format!("urn:zitadel:iam:org:project:id:{}:aud", world.project),
            format!("urn:zitadel:iam:org:project:id:{ZITADEL_PROJECT}:aud"),
        ] {
            assert!(scopes.contains(&wanted), "scope {wanted} not granted: {scopes:?}");
        }
        let roles = response.extra_fields().project_roles.clone().unwrap_or_default();
        assert!(
            roles.get(ROLE).is_some_and(|owners| !owners.is_empty()),
            "role {ROLE} missing from the roles claim: {roles:?}"
        );
    }
}

/// `introspect` with Basic and with JWT-profile authentication (an application key
/// file from `api-app key add`): three calls in a row within one second each way
/// (byte-identical client assertions), all active with the roles claim and the
/// resource owner; a bogus token and a token for another audience are inactive.
#[tokio::test]
async fn introspection_with_basic_and_jwt_profile() {
    let world = World::new(&[], &[]);
    let db = &world.db.url;
    let file = app_key(db, &world.app.client_id);
    assert_key_file_basics(&file, "application");
    assert_eq!(field(&file, "clientId"), world.app.client_id, "clientId of the key file: {file}");
    let app_id = field(&file, "appId");
    assert!(!app_id.is_empty(), "empty appId: {file}");
    assert_ne!(app_id, world.app.client_id, "appId must be the app's own id, not its client ID");
    let application = Application::load_from_json(&file.to_string())
        .unwrap_or_else(|e| panic!("Application::load_from_json: {e}"));

    let token = world.token(&world.project_options()).await;
    let foreign = world.token(&AuthenticationOptions::default()).await;
    let url = world.introspection_url().await;
    for (name, auth) in [
        ("Basic", world.basic()),
        ("JWT profile", AuthorityAuthentication::JWTProfile { application }),
    ] {
        let results = within_one_second(async || {
            let mut results = Vec::new();
            for _ in 0..3 {
                results.push(introspect(&url, world.issuer(), &auth, &token).await);
            }
            results
        })
        .await;
        for (i, result) in results.into_iter().enumerate() {
            let response = world.ok(&format!("{name}, call {}", i + 1), result).await;
            assert_active_with_org(&world, &response);
        }
        let bogus = introspect(&url, world.issuer(), &auth, "bogus-token").await;
        let bogus = world.ok(&format!("{name}, bogus token"), bogus).await;
        assert!(!bogus.active(), "{name}: a bogus token is active: {bogus:?}");
        let other = introspect(&url, world.issuer(), &auth, &foreign).await;
        let other = world.ok(&format!("{name}, token of another audience"), other).await;
        assert!(!other.active(), "{name}: a token not for the project is active: {other:?}");
    }
}

/// The axum `IntrospectedUser` extractor, with Basic and with JWT-profile
/// authentication: a valid token gets 200 with the user, a bogus token is refused.
#[tokio::test]
async fn axum_extractor_accepts_valid_and_refuses_bogus_tokens() {
    async fn me(user: IntrospectedUser) -> Json<Value> {
        Json(json!({ "user_id": user.user_id, "roles": user.project_roles }))
    }

    let world = World::new(&[], &[]);
    let file = app_key(&world.db.url, &world.app.client_id);
    let application = Application::load_from_json(&file.to_string())
        .unwrap_or_else(|e| panic!("Application::load_from_json: {e}"));
    let token = world.token(&world.project_options()).await;
    let client = reqwest::Client::new();

    for name in ["Basic", "JWT profile"] {
        let mut builder = IntrospectionStateBuilder::new(world.issuer());
        if name == "Basic" {
            builder.with_basic_auth(&world.app.client_id, &world.app.client_secret);
        } else {
            builder.with_jwt_profile(application.clone());
        }
        let state = builder.build().await;
        let state = world.ok(&format!("{name}: IntrospectionStateBuilder::build"), state).await;
        let router = Router::new().route("/me", get(me)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let serving = tokio::spawn(async move { axum::serve(listener, router).await });
        let url = format!("http://{addr}/me");

        // Twice within one second: with JWT profile, identical client assertions.
        let statuses = within_one_second(async || {
            let mut answers = Vec::new();
            for _ in 0..2 {
                let response = client.get(&url).bearer_auth(&token).send().await.expect("GET /me");
                let status = response.status().as_u16();
                answers.push((status, response.text().await.unwrap_or_default()));
            }
            answers
        })
        .await;
        for (status, body) in statuses {
            assert_eq!(status, 200, "{name}: a valid token: {body}\n{}", world.server.logs());
            let body: Value = serde_json::from_str(&body).expect("JSON body");
            assert_eq!(body["user_id"], world.user.user_id, "{name}: {body}");
            assert!(body["roles"][ROLE].is_object(), "{name}: no role {ROLE}: {body}");
        }

        let response = client.get(&url).bearer_auth("bogus-token").send().await.expect("GET /me");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        assert!(
            status == 401 || status == 403,
            "{name}: a bogus token got {status} (expected 401 or 403): {body}"
        );
        serving.abort();
    }
}

/// With `serve --compat zitadel`, JWT access tokens are RS256 with header typ "JWT",
/// and the crate's local validation (`fetch_jwks` + `local_jwt_validation`) accepts
/// them with their claims; the roles claim names the organization that introspection
/// names.
#[tokio::test]
async fn jwt_access_token_validates_locally_in_compat_mode() {
    let world = World::new(&["--compat", "zitadel"], &["--access-token-type", "jwt"]);
    let token = world.token(&world.project_options()).await;
    let header = jwt_header(&token);
    assert_eq!(header["alg"], "RS256", "header: {header}");
    assert_eq!(header["typ"], "JWT", "header: {header}");
    let kid = header["kid"].as_str().unwrap_or_else(|| panic!("no kid: {header}")).to_owned();

    let jwks = world.ok("fetch_jwks", fetch_jwks(world.issuer()).await).await;
    assert!(jwks.find(&kid).is_some(), "the key set lacks the token's key {kid}");
    let claims: Value =
        local_jwt_validation(&[world.issuer()], &[&world.project], jwks.clone(), &token)
            .await
            .unwrap_or_else(|e| {
                panic!("local_jwt_validation: {e}\nclaims: {}", common::jwt_claims(&token))
            });
    assert_eq!(claims["iss"], world.issuer(), "{claims}");
    assert_eq!(claims["sub"], world.user.user_id, "{claims}");
    let aud = match &claims["aud"] {
        Value::Array(aud) => aud.clone(),
        single => vec![single.clone()],
    };
    assert!(aud.contains(&json!(world.project)), "audience lacks the project: {claims}");
    let now = i64::try_from(common::unix_second()).expect("unix time fits i64");
    let exp = claims["exp"].as_i64().unwrap_or_else(|| panic!("no exp: {claims}"));
    let iat = claims["iat"].as_i64().unwrap_or_else(|| panic!("no iat: {claims}"));
    assert!(exp > now && iat <= now + 1, "exp {exp} / iat {iat} around {now}");

    // The same organization as introspection names.
    let url = world.introspection_url().await;
    let response = introspect(&url, world.issuer(), &world.basic(), &token).await;
    let response = world.ok("introspect", response).await;
    assert_active_with_org(&world, &response);
    let extra = response.extra_fields();
    let org_id = extra.resource_owner_id.clone().unwrap_or_default();
    let domain = extra.resource_owner_primary_domain.clone().unwrap_or_default();
    assert_eq!(
        claims["urn:zitadel:iam:org:project:roles"],
        json!({ ROLE: { org_id: domain } }),
        "roles claim of the JWT: {claims}"
    );

    // The validation is real: another audience is refused.
    let refused =
        local_jwt_validation::<Value>(&[world.issuer()], &["another-api"], jwks, &token).await;
    assert!(refused.is_err(), "validated for an audience it lacks: {refused:?}");
}
