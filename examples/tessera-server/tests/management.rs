//! The management API of the real server over a real socket: every method, every
//! error code, authorization by Tessera's own tokens (opaque, JWT and personal access
//! tokens), on SQLite and on PostgreSQL.

mod common;

use std::process::{Command, Stdio};

use base64ct::Encoding as _;
use common::assertions::{KeyFile, claims, grant, sign};
use common::{BIN, Server, temp_db};
use serde_json::{Value, json};
use tessera_mint::MasterKey;
use tessera_store_postgres::testkit::{TestSchema, url_or_skip};

const API_SCOPE: &str = "openid urn:zitadel:iam:org:project:id:zitadel:aud";
const USERS: &str = "zitadel.user.v2.UserService";
const PROJECTS: &str = "zitadel.project.v2.ProjectService";
const APPS: &str = "zitadel.application.v2.ApplicationService";
const AUTHZ: &str = "zitadel.authorization.v2.AuthorizationService";
const ADMINS: &str = "zitadel.internal_permission.v2.InternalPermissionService";

/// A database the CLI and the server share, with the environment both need.
struct Db {
    url: String,
    env: Vec<(&'static str, String)>,
}

impl Db {
    fn cli(&self, args: &[&str]) -> Value {
        let output = Command::new(BIN)
            .args(args)
            .args(["--database", &self.url, "--json"])
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .output()
            .expect("run the CLI");
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).expect("JSON output")
    }

    fn serve(&self) -> Server {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Server::start_with(&self.url, &["--no-throttle"], None, &env)
    }
}

/// A client of the management API and the OAuth endpoints of one server.
struct Api<'a> {
    server: &'a Server,
    http: oauth2::reqwest::Client,
}

impl<'a> Api<'a> {
    fn new(server: &'a Server) -> Self {
        Self { server, http: oauth2::reqwest::Client::new() }
    }

    /// `POST /{service}/{method}` with a JSON body and a bearer token.
    async fn call(&self, token: &str, service: &str, method: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.server.url(&format!("/{service}/{method}")))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("management call");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("body");
        assert_eq!(content_type, "application/json", "{service}/{method}: {status} {text}");
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")))
    }

    /// A call that must succeed; its answer.
    async fn ok(&self, token: &str, service: &str, method: &str, body: Value) -> Value {
        let (status, answer) = self.call(token, service, method, body.clone()).await;
        assert_eq!(status, 200, "{service}/{method} {body}: {answer}");
        answer
    }

    /// A call that must fail with `code` (and its HTTP status).
    async fn fails(&self, token: &str, service: &str, method: &str, body: Value, code: &str) {
        let (status, answer) = self.call(token, service, method, body.clone()).await;
        assert_eq!(answer["code"], code, "{service}/{method} {body}: {status} {answer}");
        let expected = match code {
            "invalid_argument" | "failed_precondition" => 400,
            "unauthenticated" => 401,
            "permission_denied" => 403,
            "not_found" => 404,
            "already_exists" => 409,
            "resource_exhausted" => 429,
            "unimplemented" => 501,
            other => panic!("no status known for {other}"),
        };
        assert_eq!(status, expected, "{service}/{method}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
    }

    /// A token from the client credentials grant.
    async fn token(&self, client_id: &str, secret: &str, scope: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.server.url("/oauth/v2/token"))
            .basic_auth(client_id, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
            .await
            .expect("token request");
        let status = response.status().as_u16();
        (status, serde_json::from_str(&response.text().await.expect("body")).expect("JSON"))
    }

    async fn access_token(&self, client_id: &str, secret: &str, scope: &str) -> String {
        let (status, body) = self.token(client_id, secret, scope).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().expect("access_token").to_owned()
    }

    async fn userinfo(&self, token: &str) -> u16 {
        self.http
            .get(self.server.url("/oidc/v1/userinfo"))
            .bearer_auth(token)
            .send()
            .await
            .expect("userinfo")
            .status()
            .as_u16()
    }

    async fn introspect(&self, client_id: &str, secret: &str, token: &str) -> Value {
        let response = self
            .http
            .post(self.server.url("/oauth/v2/introspect"))
            .basic_auth(client_id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .expect("introspection");
        serde_json::from_str(&response.text().await.expect("body")).expect("JSON")
    }
}

/// An administrator: a service user holding `role`, with a token for the API.
async fn administrator(db: &Db, api: &Api<'_>, name: &str, role: &str) -> String {
    let created = db.cli(&["service-user", "create", "--username", name]);
    db.cli(&["admin", "add", "--username", name, "--role", role]);
    let secret = created["client_secret"].as_str().expect("secret");
    api.access_token(name, secret, API_SCOPE).await
}

fn sqlite() -> (common::TempDb, Db) {
    let temp = temp_db();
    let db = Db { url: temp.url.clone(), env: Vec::new() };
    (temp, db)
}

async fn postgres(test: &str) -> Option<(TestSchema, Db)> {
    let url = url_or_skip(test)?;
    let schema = TestSchema::create(&url).await.expect("schema");
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}options=-csearch_path%3D{}", schema.name());
    let master = MasterKey::generate().expect("key").to_base64().to_string();
    Some((schema, Db { url, env: vec![("TESSERA_MASTER_KEY", master)] }))
}

#[tokio::test]
async fn callers_without_a_valid_administrator_token_are_refused() {
    let (_temp, db) = sqlite();
    // The user exists before the server starts: its first start creates the
    // organization and keys.
    let plain = db.cli(&["service-user", "create", "--username", "plain"]);
    let server = db.serve();
    let api = Api::new(&server);
    let root = administrator(&db, &api, "root", "IAM_OWNER").await;

    // No token: unauthenticated, with the challenge of RFC 6750.
    let response = api
        .http
        .post(server.url("/zitadel.user.v2.UserService/ListUsers"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body: Value = serde_json::from_str(&response.text().await.expect("body")).expect("JSON");
    assert_eq!(body["code"], "unauthenticated");

    api.fails("not-a-token", USERS, "ListUsers", json!({}), "unauthenticated").await;
    // A token without the API in its audience.
    let secret = plain["client_secret"].as_str().expect("secret");
    let narrow = api.access_token("plain", secret, "openid").await;
    api.fails(&narrow, USERS, "ListUsers", json!({}), "unauthenticated").await;
    // The right audience, but no administrator role.
    let wide = api.access_token("plain", secret, API_SCOPE).await;
    api.fails(&wide, USERS, "ListUsers", json!({}), "permission_denied").await;

    // Unknown services and methods.
    api.fails(&root, USERS, "CreateHuman", json!({}), "unimplemented").await;
    api.fails(
        &root,
        "zitadel.session.v2.SessionService",
        "ListSessions",
        json!({}),
        "unimplemented",
    )
    .await;
    // Only POST; only JSON.
    let get = api.http.get(server.url("/zitadel.user.v2.UserService/ListUsers")).send().await;
    assert_eq!(get.expect("GET").status(), 405);
    let proto = api
        .http
        .post(server.url("/zitadel.user.v2.UserService/ListUsers"))
        .bearer_auth(&root)
        .header("content-type", "application/proto")
        .body(vec![0u8; 4])
        .send()
        .await
        .expect("call");
    assert_eq!(proto.status(), 415);

    // An empty body is the empty message; a host with a trailing slash still works.
    let empty = api
        .http
        .post(server.url("//zitadel.user.v2.UserService/ListUsers"))
        .bearer_auth(&root)
        .send()
        .await
        .expect("call");
    assert_eq!(empty.status(), 200);
}

#[tokio::test]
async fn bad_input_gets_a_connect_error_and_changes_nothing() {
    let (_temp, db) = sqlite();
    let server = db.serve();
    let api = Api::new(&server);
    let root = administrator(&db, &api, "root", "IAM_OWNER").await;
    let count = || async {
        let listed = api.ok(&root, USERS, "ListUsers", json!({})).await;
        listed["details"]["totalResult"].as_str().expect("total").to_owned()
    };
    let before = count().await;

    let malformed = api
        .http
        .post(server.url("/zitadel.user.v2.UserService/CreateUser"))
        .bearer_auth(&root)
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .expect("call");
    assert_eq!(malformed.status(), 400);
    for body in [
        json!({"username": 5, "machine": {"name": "x"}}),
        json!({"username": "x", "machine": {"name": "x"}, "nickname": "y"}),
        json!({"username": "x", "machine": "x"}),
        json!({"username": "x"}),
        json!({"username": "x", "human": {"profile": {}}}),
        json!({"username": "bad name", "machine": {"name": "x"}}),
        json!({"username": "x".repeat(300), "machine": {"name": "x"}}),
        json!({"username": "x", "machine": {"name": "\u{202e}evil"}}),
        // A body for another method.
        json!({"projectId": "p", "name": "x"}),
        json!([]),
    ] {
        api.fails(&root, USERS, "CreateUser", body, "invalid_argument").await;
    }
    // On a connection of its own: the server answers a body over the limit without
    // reading it, and then closes the connection.
    let oversized = json!({"username": "x", "machine": {"name": "x".repeat(70 * 1024)}});
    Api::new(&server).fails(&root, USERS, "CreateUser", oversized, "resource_exhausted").await;
    api.fails(&root, USERS, "GetUserByID", json!({"userId": "123"}), "not_found").await;
    api.fails(&root, USERS, "GetUserByID", json!({"userId": "no/such"}), "not_found").await;
    api.fails(&root, USERS, "GetUserByID", json!({}), "invalid_argument").await;
    api.fails(&root, USERS, "DeleteUser", json!({"userId": "123"}), "not_found").await;
    api.fails(&root, USERS, "AddSecret", json!({"userId": "123"}), "not_found").await;
    api.fails(
        &root,
        USERS,
        "ListUsers",
        json!({"queries": [{"stateQuery": {"state": "USER_STATE_SLEEPY"}}]}),
        "invalid_argument",
    )
    .await;
    api.fails(&root, USERS, "ListUsers", json!({"query": {"limit": 5000}}), "invalid_argument")
        .await;
    api.fails(&root, PROJECTS, "GetProject", json!({"projectId": "nope"}), "not_found").await;
    api.fails(
        &root,
        APPS,
        "CreateApplication",
        json!({"projectId": "nope", "name": "a", "apiConfiguration": {}}),
        "not_found",
    )
    .await;
    api.fails(
        &root,
        APPS,
        "CreateApplication",
        json!({"projectId": "zitadel", "name": "a", "oidcConfiguration": {}}),
        "invalid_argument",
    )
    .await;
    api.fails(&root, APPS, "GetApplication", json!({"applicationId": "1"}), "not_found").await;
    api.fails(
        &root,
        AUTHZ,
        "UpdateAuthorization",
        json!({"id": "1.x", "roleKeys": []}),
        "not_found",
    )
    .await;
    api.fails(
        &root,
        ADMINS,
        "CreateAdministrator",
        json!({"userId": "1", "resource": {"instance": true, "projectId": "x"}, "roles": ["IAM_OWNER"]}),
        "invalid_argument",
    )
    .await;
    assert_eq!(count().await, before, "nothing was created");
}

/// The whole lifecycle, on one database.
async fn lifecycle(db: &Db) {
    let server = db.serve();
    let api = Api::new(&server);
    let root = administrator(db, &api, "root", "IAM_OWNER").await;

    // Users: create, read, list, update.
    let created = api
        .ok(
            &root,
            USERS,
            "CreateUser",
            json!({"username": "billing", "machine": {"name": "Billing"}}),
        )
        .await;
    let user_id = created["id"].as_str().expect("id").to_owned();
    assert!(created["creationDate"].as_str().is_some_and(|d| d.ends_with('Z')));
    api.fails(
        &root,
        USERS,
        "CreateUser",
        json!({"username": "billing", "machine": {"name": "Again"}}),
        "already_exists",
    )
    .await;
    let got = api.ok(&root, USERS, "GetUserByID", json!({"userId": user_id})).await;
    assert_eq!(got["user"]["username"], "billing");
    assert_eq!(got["user"]["state"], "USER_STATE_ACTIVE");
    assert_eq!(got["user"]["machine"]["hasSecret"], false);
    assert_eq!(got["user"]["machine"]["accessTokenType"], "ACCESS_TOKEN_TYPE_BEARER");
    let organization_id = got["details"]["resourceOwner"].as_str().expect("owner").to_owned();
    for name in ["ci-a", "ci-b", "ci-c"] {
        api.ok(&root, USERS, "CreateUser", json!({"username": name, "machine": {"name": name}}))
            .await;
    }
    let page = api
        .ok(
            &root,
            USERS,
            "ListUsers",
            json!({
                "query": {"offset": "1", "limit": 1, "asc": true},
                "sortingColumn": "USER_FIELD_NAME_USER_NAME",
                "queries": [{"userNameQuery": {"userName": "ci-", "method": "TEXT_QUERY_METHOD_STARTS_WITH"}}]
            }),
        )
        .await;
    assert_eq!(page["details"]["totalResult"], "3", "{page}");
    assert_eq!(page["result"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["result"][0]["username"], "ci-b");
    let by_id = api
        .ok(
            &root,
            USERS,
            "ListUsers",
            json!({"queries": [{"inUserIdsQuery": {"userIds": [user_id]}}]}),
        )
        .await;
    assert_eq!(by_id["details"]["totalResult"], "1");
    let machines = api
        .ok(&root, USERS, "ListUsers", json!({"queries": [{"typeQuery": {"type": "TYPE_HUMAN"}}]}))
        .await;
    assert_eq!(machines["details"]["totalResult"], "0");
    let others = api
        .ok(
            &root,
            USERS,
            "ListUsers",
            json!({
                "sortingColumn": "USER_FIELD_NAME_USER_NAME",
                "queries": [
                    {"stateQuery": {"state": "USER_STATE_ACTIVE"}},
                    {"notQuery": {"query": {"orQuery": {"queries": [
                        {"userNameQuery": {"userName": "ROOT", "method": "TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE"}},
                        {"userNameQuery": {"userName": "-b", "method": "TEXT_QUERY_METHOD_ENDS_WITH"}}
                    ]}}}}
                ]
            }),
        )
        .await;
    let names: Vec<&str> = others["result"]
        .as_array()
        .expect("result")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["ci-c", "ci-a", "billing"], "descending by default, as in ZITADEL");
    api.ok(
        &root,
        USERS,
        "UpdateUser",
        json!({"userId": user_id, "machine": {"name": "Billing job", "description": "Bills"}}),
    )
    .await;
    let got = api.ok(&root, USERS, "GetUserByID", json!({"userId": user_id})).await;
    assert_eq!(got["user"]["machine"]["name"], "Billing job");
    assert_eq!(got["user"]["machine"]["description"], "Bills");
    api.fails(
        &root,
        USERS,
        "UpdateUser",
        json!({"userId": user_id, "machine": {"description": "x".repeat(501)}}),
        "invalid_argument",
    )
    .await;
    api.fails(
        &root,
        USERS,
        "UpdateUser",
        json!({"userId": user_id, "username": "renamed"}),
        "invalid_argument",
    )
    .await;

    // A secret, then a token with it.
    let secret = api.ok(&root, USERS, "AddSecret", json!({"userId": user_id})).await;
    let secret = secret["clientSecret"].as_str().expect("secret").to_owned();
    let token = api.access_token("billing", &secret, "openid").await;
    assert_eq!(api.userinfo(&token).await, 200);
    let got = api.ok(&root, USERS, "GetUserByID", json!({"userId": user_id})).await;
    assert_eq!(got["user"]["machine"]["hasSecret"], true);
    // Removed, the secret stops working; a new one works again.
    api.ok(&root, USERS, "RemoveSecret", json!({"userId": user_id})).await;
    let (status, _) = api.token("billing", &secret, "openid").await;
    assert_eq!(status, 401);
    let got = api.ok(&root, USERS, "GetUserByID", json!({"userId": user_id})).await;
    assert_eq!(got["user"]["machine"]["hasSecret"], false);
    let secret = api.ok(&root, USERS, "AddSecret", json!({"userId": user_id})).await;
    let secret = secret["clientSecret"].as_str().expect("secret").to_owned();

    // A key, then a token with the JWT bearer grant.
    let key = api.ok(&root, USERS, "AddKey", json!({"userId": user_id})).await;
    let content = base64ct::Base64::decode_vec(key["keyContent"].as_str().expect("keyContent"))
        .expect("base64");
    let key_file: Value = serde_json::from_slice(&content).expect("key file");
    assert_eq!(key_file["type"], "serviceaccount");
    assert_eq!(key_file["userId"], user_id.as_str());
    let file = KeyFile {
        key_id: key_file["keyId"].as_str().expect("keyId").to_owned(),
        pem: key_file["key"].as_str().expect("key").to_owned(),
        user_id: user_id.clone(),
        algorithm: jsonwebtoken::Algorithm::RS256,
    };
    let (status, granted) = grant(&server, &sign(&file, &claims(&file, &server.base))).await;
    assert_eq!(status, 200, "{granted}");
    let keys = api
        .ok(&root, USERS, "ListKeys", json!({"filters": [{"userIdFilter": {"id": user_id}}]}))
        .await;
    assert_eq!(keys["pagination"]["totalResult"], "1");
    assert_eq!(keys["result"][0]["id"], key["keyId"]);

    // A personal access token works at userinfo, then stops when removed.
    let pat = api.ok(&root, USERS, "AddPersonalAccessToken", json!({"userId": user_id})).await;
    let pat_token = pat["token"].as_str().expect("token").to_owned();
    assert_eq!(api.userinfo(&pat_token).await, 200);
    let pats = api
        .ok(
            &root,
            USERS,
            "ListPersonalAccessTokens",
            json!({"filters": [{"userIdFilter": {"id": user_id}}]}),
        )
        .await;
    assert_eq!(pats["pagination"]["totalResult"], "1");
    assert!(!pats.to_string().contains(&pat_token), "the token is never listed");
    api.ok(
        &root,
        USERS,
        "RemovePersonalAccessToken",
        json!({"userId": user_id, "tokenId": pat["tokenId"]}),
    )
    .await;
    assert_eq!(api.userinfo(&pat_token).await, 401);

    // Projects, roles, apps and authorizations.
    let project = api.ok(&root, PROJECTS, "CreateProject", json!({"name": "Orders"})).await;
    let project_id = project["projectId"].as_str().expect("projectId").to_owned();
    api.ok(
        &root,
        PROJECTS,
        "AddProjectRole",
        json!({"projectId": project_id, "roleKey": "reader", "displayName": "Reader"}),
    )
    .await;
    api.ok(
        &root,
        PROJECTS,
        "AddProjectRole",
        json!({"projectId": project_id, "roleKey": "writer", "displayName": "Writer", "group": "rw"}),
    )
    .await;
    api.fails(
        &root,
        PROJECTS,
        "AddProjectRole",
        json!({"projectId": project_id, "roleKey": "reader", "displayName": "Again"}),
        "already_exists",
    )
    .await;
    api.ok(
        &root,
        PROJECTS,
        "UpdateProjectRole",
        json!({"projectId": project_id, "roleKey": "writer", "displayName": "Editor"}),
    )
    .await;
    let roles = api
        .ok(
            &root,
            PROJECTS,
            "ListProjectRoles",
            json!({"projectId": project_id, "pagination": {"asc": true}}),
        )
        .await;
    assert_eq!(roles["pagination"]["totalResult"], "2");
    assert_eq!(roles["projectRoles"][1]["displayName"], "Editor");
    assert_eq!(roles["projectRoles"][1]["group"], "rw");
    api.ok(
        &root,
        PROJECTS,
        "UpdateProject",
        json!({"projectId": project_id, "name": "Orders API"}),
    )
    .await;
    let got = api.ok(&root, PROJECTS, "GetProject", json!({"projectId": project_id})).await;
    assert_eq!(got["project"]["name"], "Orders API");
    assert_eq!(got["project"]["organizationId"], organization_id.as_str());
    let listed = api
        .ok(
            &root,
            PROJECTS,
            "ListProjects",
            json!({"filters": [{"projectNameFilter": {"projectName": "orders", "method": "TEXT_FILTER_METHOD_STARTS_WITH_IGNORE_CASE"}}]}),
        )
        .await;
    assert_eq!(listed["pagination"]["totalResult"], "1");

    let app = api
        .ok(
            &root,
            APPS,
            "CreateApplication",
            json!({"projectId": project_id, "name": "orders-api", "apiConfiguration": {"authMethodType": "API_AUTH_METHOD_TYPE_BASIC"}}),
        )
        .await;
    let app_id = app["applicationId"].as_str().expect("applicationId").to_owned();
    let app_client = app["apiConfiguration"]["clientId"].as_str().expect("clientId").to_owned();
    let app_secret =
        app["apiConfiguration"]["clientSecret"].as_str().expect("clientSecret").to_owned();
    let got = api.ok(&root, APPS, "GetApplication", json!({"applicationId": app_id})).await;
    assert_eq!(
        got["application"]["apiConfiguration"]["authMethodType"],
        "API_AUTH_METHOD_TYPE_BASIC"
    );
    assert_eq!(got["application"]["state"], "APPLICATION_STATE_ACTIVE");
    let keyed = api
        .ok(
            &root,
            APPS,
            "CreateApplication",
            json!({"projectId": project_id, "name": "keyed", "apiConfiguration": {"authMethodType": "API_AUTH_METHOD_TYPE_PRIVATE_KEY_JWT"}}),
        )
        .await;
    assert!(keyed["apiConfiguration"].get("clientSecret").is_none(), "{keyed}");
    let keyed_id = keyed["applicationId"].as_str().expect("id").to_owned();
    api.fails(
        &root,
        APPS,
        "GenerateClientSecret",
        json!({"applicationId": keyed_id, "projectId": project_id}),
        "failed_precondition",
    )
    .await;
    let app_key = api
        .ok(
            &root,
            APPS,
            "CreateApplicationKey",
            json!({"applicationId": keyed_id, "projectId": project_id}),
        )
        .await;
    let details = base64ct::Base64::decode_vec(app_key["keyDetails"].as_str().expect("keyDetails"))
        .expect("b64");
    let details: Value = serde_json::from_slice(&details).expect("key file");
    assert_eq!(details["type"], "application");
    assert_eq!(details["appId"], keyed_id.as_str());
    let app_keys = api
        .ok(
            &root,
            APPS,
            "ListApplicationKeys",
            json!({"filters": [{"applicationIdFilter": {"applicationId": keyed_id}}]}),
        )
        .await;
    assert_eq!(app_keys["pagination"]["totalResult"], "1");
    api.ok(
        &root,
        APPS,
        "DeleteApplicationKey",
        json!({"keyId": app_key["keyId"], "applicationId": keyed_id, "projectId": project_id}),
    )
    .await;
    let apps = api
        .ok(
            &root,
            APPS,
            "ListApplications",
            json!({"filters": [{"projectIdFilter": {"projectId": project_id}}]}),
        )
        .await;
    assert_eq!(apps["pagination"]["totalResult"], "2");

    api.fails(
        &root,
        AUTHZ,
        "CreateAuthorization",
        json!({"userId": user_id, "projectId": project_id, "roleKeys": ["owner"]}),
        "failed_precondition",
    )
    .await;
    let authorization = api
        .ok(
            &root,
            AUTHZ,
            "CreateAuthorization",
            json!({"userId": user_id, "projectId": project_id, "organizationId": organization_id, "roleKeys": ["reader"]}),
        )
        .await;
    let authorization_id = authorization["id"].as_str().expect("id").to_owned();
    let scope = format!(
        "openid urn:zitadel:iam:org:project:id:{project_id}:aud urn:zitadel:iam:org:project:role:reader"
    );
    let token = api.access_token("billing", &secret, &scope).await;
    let seen = api.introspect(&app_client, &app_secret, &token).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert!(seen["urn:zitadel:iam:org:project:roles"]["reader"].is_object(), "{seen}");
    api.ok(
        &root,
        AUTHZ,
        "UpdateAuthorization",
        json!({"id": authorization_id, "roleKeys": ["reader", "writer"]}),
    )
    .await;
    let listed = api
        .ok(
            &root,
            AUTHZ,
            "ListAuthorizations",
            json!({"filters": [{"projectId": {"id": project_id}}]}),
        )
        .await;
    assert_eq!(listed["pagination"]["totalResult"], "1");
    let roles: Vec<&str> = listed["authorizations"][0]["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(|r| r["key"].as_str())
        .collect();
    assert_eq!(roles, ["reader", "writer"]);
    assert_eq!(listed["authorizations"][0]["state"], "STATE_ACTIVE");

    // A deactivated user's tokens are inactive; reactivated, new ones work.
    api.ok(&root, USERS, "DeactivateUser", json!({"userId": user_id})).await;
    assert_eq!(api.introspect(&app_client, &app_secret, &token).await["active"], false);
    api.fails(&root, USERS, "DeactivateUser", json!({"userId": user_id}), "failed_precondition")
        .await;
    api.ok(&root, USERS, "ReactivateUser", json!({"userId": user_id})).await;

    // Tear down: authorization, role, app secret, app, project, user.
    api.ok(&root, AUTHZ, "DeleteAuthorization", json!({"id": authorization_id})).await;
    api.ok(
        &root,
        PROJECTS,
        "RemoveProjectRole",
        json!({"projectId": project_id, "roleKey": "writer"}),
    )
    .await;
    let regenerated = api
        .ok(
            &root,
            APPS,
            "GenerateClientSecret",
            json!({"applicationId": app_id, "projectId": project_id}),
        )
        .await;
    assert_ne!(regenerated["clientSecret"], app_secret.as_str());
    api.ok(
        &root,
        APPS,
        "DeleteApplication",
        json!({"applicationId": app_id, "projectId": project_id}),
    )
    .await;
    api.fails(&root, APPS, "GetApplication", json!({"applicationId": app_id}), "not_found").await;
    api.ok(&root, PROJECTS, "DeleteProject", json!({"projectId": project_id})).await;
    api.fails(&root, PROJECTS, "GetProject", json!({"projectId": project_id}), "not_found").await;
    api.fails(&root, APPS, "GetApplication", json!({"applicationId": keyed_id}), "not_found").await;
    api.ok(&root, USERS, "DeleteUser", json!({"userId": user_id})).await;
    api.fails(&root, USERS, "GetUserByID", json!({"userId": user_id}), "not_found").await;
    assert_eq!(api.userinfo(&token).await, 401);

    // Every change was audited with its actor; no secret, token or key was logged.
    let logs = server.logs();
    let changes = logs.lines().filter(|l| l.contains("management_change")).count();
    assert!(changes >= 25, "{changes} audited changes:\n{logs}");
    assert!(
        logs.lines().filter(|l| l.contains("management_change")).all(|l| l.contains("actor=root"))
    );
    for secret in [&secret, &pat_token, &app_secret] {
        assert!(!logs.contains(secret.as_str()), "a secret in the log");
    }
    assert!(!logs.contains("PRIVATE KEY"), "a private key in the log");
}

#[tokio::test]
async fn every_method_works_on_sqlite() {
    let (_temp, db) = sqlite();
    lifecycle(&db).await;
}

#[tokio::test]
async fn every_method_works_on_postgres() {
    let Some((_schema, db)) = postgres("every_method_works_on_postgres").await else { return };
    lifecycle(&db).await;
}

#[tokio::test]
async fn administrators_are_managed_and_their_roles_limit_them() {
    let (_temp, db) = sqlite();
    let server = db.serve();
    let api = Api::new(&server);
    let root = administrator(&db, &api, "root", "IAM_OWNER").await;
    let created = db.cli(&["service-user", "create", "--username", "helpdesk"]);
    let helpdesk_id = created["user_id"].as_str().expect("user_id").to_owned();
    let secret = created["client_secret"].as_str().expect("secret").to_owned();

    let org = api.ok(&root, USERS, "GetUserByID", json!({"userId": helpdesk_id})).await;
    let organization_id = org["details"]["resourceOwner"].as_str().expect("owner").to_owned();
    api.fails(
        &root,
        ADMINS,
        "CreateAdministrator",
        json!({"userId": helpdesk_id, "resource": {"organizationId": organization_id}, "roles": ["IAM_OWNER"]}),
        "invalid_argument",
    )
    .await;
    api.ok(
        &root,
        ADMINS,
        "CreateAdministrator",
        json!({"userId": helpdesk_id, "resource": {"organizationId": organization_id}, "roles": ["ORG_USER_MANAGER"]}),
    )
    .await;
    api.fails(
        &root,
        ADMINS,
        "CreateAdministrator",
        json!({"userId": helpdesk_id, "resource": {"organizationId": organization_id}, "roles": ["ORG_OWNER"]}),
        "already_exists",
    )
    .await;
    let listed = api
        .ok(
            &root,
            ADMINS,
            "ListAdministrators",
            json!({"filters": [{"inUserIdsFilter": {"ids": [helpdesk_id]}}]}),
        )
        .await;
    assert_eq!(listed["pagination"]["totalResult"], "1", "{listed}");
    assert_eq!(listed["administrators"][0]["roles"], json!(["ORG_USER_MANAGER"]));
    assert_eq!(listed["administrators"][0]["organization"]["id"], organization_id.as_str());

    // A user manager manages users, not projects or administrators.
    let helpdesk = api.access_token("helpdesk", &secret, API_SCOPE).await;
    api.ok(
        &helpdesk,
        USERS,
        "CreateUser",
        json!({"username": "made-by-helpdesk", "machine": {"name": "m"}}),
    )
    .await;
    api.fails(&helpdesk, PROJECTS, "CreateProject", json!({"name": "No"}), "permission_denied")
        .await;
    api.fails(&helpdesk, ADMINS, "ListAdministrators", json!({}), "permission_denied").await;

    // Promoted to organization owner: projects too, but not instance roles.
    api.ok(
        &root,
        ADMINS,
        "UpdateAdministrator",
        json!({"userId": helpdesk_id, "resource": {"organizationId": organization_id}, "roles": ["ORG_OWNER"]}),
    )
    .await;
    api.ok(&helpdesk, PROJECTS, "CreateProject", json!({"name": "Yes"})).await;
    api.fails(
        &helpdesk,
        ADMINS,
        "CreateAdministrator",
        json!({"userId": helpdesk_id, "resource": {"instance": true}, "roles": ["IAM_OWNER"]}),
        "permission_denied",
    )
    .await;

    // Removed: refused at once, with the token it already holds.
    api.ok(
        &root,
        ADMINS,
        "DeleteAdministrator",
        json!({"userId": helpdesk_id, "resource": {"organizationId": organization_id}}),
    )
    .await;
    api.fails(&helpdesk, USERS, "ListUsers", json!({}), "permission_denied").await;
    let audit = server.logs();
    assert!(
        audit.lines().any(|l| l.contains("management_change")
            && l.contains("DeleteAdministrator")
            && l.contains("actor=root")),
        "{audit}"
    );
    assert!(!audit.contains(&secret), "no secret in the log");
}

#[tokio::test]
async fn tokens_of_every_kind_authorize_and_jwts_too() {
    let (_temp, db) = sqlite();
    let server = db.serve();
    let api = Api::new(&server);
    db.cli(&["service-user", "create", "--username", "robot", "--access-token-type", "jwt"]);
    db.cli(&["admin", "add", "--username", "robot", "--role", "IAM_OWNER_VIEWER"]);
    let pat = db.cli(&["service-user", "pat", "add", "--username", "robot"]);
    let pat = pat["token"].as_str().expect("token").to_owned();
    api.ok(&pat, USERS, "ListUsers", json!({})).await;
    api.fails(
        &pat,
        USERS,
        "CreateUser",
        json!({"username": "x", "machine": {"name": "x"}}),
        "permission_denied",
    )
    .await;
    let secret = api.ok(&pat, USERS, "ListUsers", json!({})).await;
    assert_eq!(secret["details"]["totalResult"], "1");
    // A JWT access token of the same user.
    let regenerated = db.cli(&["service-user", "secret", "--username", "robot"]);
    let jwt = api
        .access_token("robot", regenerated["client_secret"].as_str().expect("secret"), API_SCOPE)
        .await;
    assert_eq!(jwt.matches('.').count(), 2, "a JWT");
    api.ok(&jwt, USERS, "ListUsers", json!({})).await;

    // A PAT introspects as active for the API apps of its audience (the server's own
    // API) only, as any token does; the revocation endpoint does not remove it.
    let own = db.cli(&["api-app", "create", "--project", "zitadel", "--name", "console"]);
    db.cli(&["project", "create", "--name", "Other", "--id", "other"]);
    let other = db.cli(&["api-app", "create", "--project", "other", "--name", "other-api"]);
    let creds = |app: &Value| {
        (
            app["client_id"].as_str().expect("client_id").to_owned(),
            app["client_secret"].as_str().expect("client_secret").to_owned(),
        )
    };
    let (own_id, own_secret) = creds(&own);
    let (other_id, other_secret) = creds(&other);
    let seen = api.introspect(&own_id, &own_secret, &pat).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["username"], "robot", "{seen}");
    assert_eq!(api.introspect(&other_id, &other_secret, &pat).await["active"], false);
    let revoked = api
        .http
        .post(server.url("/oauth/v2/revoke"))
        .basic_auth("robot", Some(regenerated["client_secret"].as_str().expect("secret")))
        .form(&[("token", pat.as_str())])
        .send()
        .await
        .expect("revocation");
    assert_eq!(revoked.status(), 400);
    let body: Value = serde_json::from_str(&revoked.text().await.expect("body")).expect("JSON");
    assert_eq!(body["error"], "unsupported_token_type");
    api.ok(&pat, USERS, "ListUsers", json!({})).await;
    // Deleting its user stops it at once.
    db.cli(&["service-user", "delete", "--username", "robot"]);
    assert_eq!(api.userinfo(&pat).await, 401);
    assert_eq!(api.introspect(&own_id, &own_secret, &pat).await["active"], false);
}

/// Every method: `(service, method, a field of type string, a body naming things
/// that do not exist, the code ZITADEL answers that body with)`. Removals of
/// something absent succeed, as in ZITADEL.
const METHODS: &[(&str, &str, &str, &str, &str)] = &[
    (
        USERS,
        "CreateUser",
        "username",
        r#"{"organizationId": "1", "username": "u", "machine": {"name": "n"}}"#,
        "not_found",
    ),
    (USERS, "GetUserByID", "userId", r#"{"userId": "999999999999999999"}"#, "not_found"),
    (
        USERS,
        "ListUsers",
        "sortingColumn",
        r#"{"queries": [{"inUserIdsQuery": {"userIds": ["1"]}}]}"#,
        "ok",
    ),
    (
        USERS,
        "UpdateUser",
        "userId",
        r#"{"userId": "999999999999999999", "machine": {"name": "n"}}"#,
        "not_found",
    ),
    (USERS, "DeactivateUser", "userId", r#"{"userId": "999999999999999999"}"#, "not_found"),
    (USERS, "ReactivateUser", "userId", r#"{"userId": "999999999999999999"}"#, "not_found"),
    (USERS, "DeleteUser", "userId", r#"{"userId": "999999999999999999"}"#, "not_found"),
    (USERS, "AddSecret", "userId", r#"{"userId": "999999999999999999"}"#, "not_found"),
    (USERS, "RemoveSecret", "userId", r#"{"userId": "999999999999999999"}"#, "not_found"),
    (USERS, "AddKey", "userId", r#"{"userId": "999999999999999999"}"#, "not_found"),
    (USERS, "RemoveKey", "keyId", r#"{"userId": "999999999999999999", "keyId": "1"}"#, "not_found"),
    (
        USERS,
        "ListKeys",
        "sortingColumn",
        r#"{"filters": [{"userIdFilter": {"id": "999999999999999999"}}]}"#,
        "not_found",
    ),
    (USERS, "AddPersonalAccessToken", "userId", r#"{"userId": "999999999999999999"}"#, "not_found"),
    (
        USERS,
        "RemovePersonalAccessToken",
        "tokenId",
        r#"{"userId": "999999999999999999", "tokenId": "1"}"#,
        "not_found",
    ),
    (
        USERS,
        "ListPersonalAccessTokens",
        "sortingColumn",
        r#"{"filters": [{"userIdFilter": {"id": "999999999999999999"}}]}"#,
        "not_found",
    ),
    (PROJECTS, "CreateProject", "name", r#"{"organizationId": "1", "name": "n"}"#, "not_found"),
    (PROJECTS, "GetProject", "projectId", r#"{"projectId": "nope"}"#, "not_found"),
    (
        PROJECTS,
        "ListProjects",
        "sortingColumn",
        r#"{"filters": [{"inProjectIdsFilter": {"ids": ["nope"]}}]}"#,
        "ok",
    ),
    (PROJECTS, "UpdateProject", "projectId", r#"{"projectId": "nope", "name": "n"}"#, "not_found"),
    (PROJECTS, "DeleteProject", "projectId", r#"{"projectId": "nope"}"#, "ok"),
    (
        PROJECTS,
        "AddProjectRole",
        "roleKey",
        r#"{"projectId": "nope", "roleKey": "r", "displayName": "R"}"#,
        "not_found",
    ),
    (
        PROJECTS,
        "UpdateProjectRole",
        "roleKey",
        r#"{"projectId": "nope", "roleKey": "r", "displayName": "R"}"#,
        "not_found",
    ),
    (PROJECTS, "RemoveProjectRole", "roleKey", r#"{"projectId": "nope", "roleKey": "r"}"#, "ok"),
    (PROJECTS, "ListProjectRoles", "projectId", r#"{"projectId": "nope"}"#, "not_found"),
    (
        APPS,
        "CreateApplication",
        "name",
        r#"{"projectId": "nope", "name": "a", "apiConfiguration": {}}"#,
        "not_found",
    ),
    (APPS, "GetApplication", "applicationId", r#"{"applicationId": "1"}"#, "not_found"),
    (
        APPS,
        "ListApplications",
        "sortingColumn",
        r#"{"filters": [{"projectIdFilter": {"projectId": "nope"}}]}"#,
        "ok",
    ),
    (
        APPS,
        "DeleteApplication",
        "applicationId",
        r#"{"applicationId": "1", "projectId": "nope"}"#,
        "not_found",
    ),
    (
        APPS,
        "GenerateClientSecret",
        "applicationId",
        r#"{"applicationId": "1", "projectId": "nope"}"#,
        "not_found",
    ),
    (
        APPS,
        "CreateApplicationKey",
        "applicationId",
        r#"{"applicationId": "1", "projectId": "nope"}"#,
        "not_found",
    ),
    (
        APPS,
        "DeleteApplicationKey",
        "keyId",
        r#"{"keyId": "1", "applicationId": "1", "projectId": "nope"}"#,
        "not_found",
    ),
    (
        APPS,
        "ListApplicationKeys",
        "sortingColumn",
        r#"{"filters": [{"applicationIdFilter": {"applicationId": "1"}}]}"#,
        "ok",
    ),
    (
        AUTHZ,
        "CreateAuthorization",
        "userId",
        r#"{"userId": "999999999999999999", "projectId": "nope", "roleKeys": ["r"]}"#,
        "not_found",
    ),
    (
        AUTHZ,
        "ListAuthorizations",
        "sortingColumn",
        r#"{"filters": [{"projectId": {"id": "nope"}}]}"#,
        "ok",
    ),
    (
        AUTHZ,
        "UpdateAuthorization",
        "id",
        r#"{"id": "999999999999999999.nope", "roleKeys": ["r"]}"#,
        "not_found",
    ),
    (AUTHZ, "DeleteAuthorization", "id", r#"{"id": "999999999999999999.nope"}"#, "ok"),
    (
        ADMINS,
        "CreateAdministrator",
        "userId",
        r#"{"userId": "999999999999999999", "resource": {"instance": true}, "roles": ["IAM_OWNER"]}"#,
        "not_found",
    ),
    (
        ADMINS,
        "ListAdministrators",
        "sortingColumn",
        r#"{"filters": [{"inUserIdsFilter": {"ids": ["1"]}}]}"#,
        "ok",
    ),
    (
        ADMINS,
        "UpdateAdministrator",
        "userId",
        r#"{"userId": "999999999999999999", "resource": {"instance": true}, "roles": ["IAM_OWNER"]}"#,
        "not_found",
    ),
    (
        ADMINS,
        "DeleteAdministrator",
        "userId",
        r#"{"userId": "999999999999999999", "resource": {"instance": true}}"#,
        "not_found",
    ),
];

/// Everything the store holds, as the CLI lists it.
fn snapshot(db: &Db) -> Vec<Value> {
    let users = db.cli(&["service-user", "list"]);
    let mut all = vec![
        users.clone(),
        db.cli(&["project", "list"]),
        db.cli(&["api-app", "list"]),
        db.cli(&["admin", "list"]),
    ];
    for user in users["service_users"].as_array().into_iter().flatten() {
        let name = user["username"].as_str().expect("username");
        all.push(db.cli(&["service-user", "key", "list", "--username", name]));
        all.push(db.cli(&["service-user", "pat", "list", "--username", name]));
        all.push(db.cli(&["grant", "list", "--username", name]));
    }
    all
}

#[tokio::test]
async fn every_method_refuses_bad_input_and_changes_nothing() {
    let (_temp, db) = sqlite();
    let server = db.serve();
    let api = Api::new(&server);
    let root = administrator(&db, &api, "root", "IAM_OWNER").await;
    // Something of every kind, for the snapshot to cover.
    db.cli(&["service-user", "create", "--username", "keeper"]);
    db.cli(&["service-user", "key", "add", "--username", "keeper"]);
    db.cli(&["service-user", "pat", "add", "--username", "keeper"]);
    db.cli(&["project", "create", "--name", "Kept", "--id", "kept"]);
    db.cli(&["api-app", "create", "--project", "kept", "--name", "kept-api"]);
    db.cli(&["grant", "add", "--username", "keeper", "--project", "kept", "--role", "reader"]);
    let before = snapshot(&db);

    for &(service, method, field, unknown, code) in METHODS {
        let post = |body: Vec<u8>| {
            // A fresh connection for each call: the server answers a body over the
            // limit without reading it and then closes the connection.
            oauth2::reqwest::Client::new()
                .post(server.url(&format!("/{service}/{method}")))
                .bearer_auth(&root)
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        let answer = |response: oauth2::reqwest::Response| async move {
            let status = response.status().as_u16();
            let text = response.text().await.expect("body");
            (status, serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{e}: {text}")))
        };
        let cases: [(&str, Vec<u8>, &str, u16); 7] = [
            ("malformed JSON", br#"{"userId": "#.to_vec(), "invalid_argument", 400),
            ("not an object", b"[1, 2]".to_vec(), "invalid_argument", 400),
            ("an unknown field", br#"{"userIdentifier": "1"}"#.to_vec(), "invalid_argument", 400),
            ("a wrong type", format!(r#"{{"{field}": 12345}}"#).into_bytes(), "invalid_argument", 400),
            ("an oversized string", format!(r#"{{"{field}": "{}"}}"#, "x".repeat(20_000)).into_bytes(), "invalid_argument", 400),
            ("an oversized body", vec![b' '; 70 * 1024], "resource_exhausted", 429),
            ("a body for another method", br#"{"roleKeys": ["r"], "machine": {"name": "n"}, "resource": {"instance": true}, "apiConfiguration": {}}"#.to_vec(), "invalid_argument", 400),
        ];
        for (what, body, expected, status) in cases {
            let (got_status, got) = answer(post(body).await.expect("call")).await;
            // An oversized string in a field that is not checked before a lookup
            // names nothing there is: not_found is the right answer for those.
            if what == "an oversized string" && got["code"] == "not_found" {
                assert_eq!(got_status, 404, "{method}: {got}");
                continue;
            }
            // A list method's sorting column is read as text: a string it does not
            // know is invalid, a number a wrong type; both are invalid_argument.
            assert_eq!(got["code"], expected, "{method} with {what}: {got_status} {got}");
            assert_eq!(got_status, status, "{method} with {what}: {got}");
        }
        let (got_status, got) =
            answer(post(unknown.as_bytes().to_vec()).await.expect("call")).await;
        if code == "ok" {
            assert_eq!(got_status, 200, "{method} {unknown}: {got}");
        } else {
            assert_eq!(got["code"], code, "{method} {unknown}: {got_status} {got}");
        }
    }
    assert_eq!(snapshot(&db), before, "a refused call changes nothing");
}
