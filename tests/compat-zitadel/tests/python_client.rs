//! The real `tessera-server` driven by ZITADEL's Python SDK, `zitadel-client`
//! (pinned to 4.1.9), through the script `python/zitadel_compat.py`: a token with
//! `ClientCredentialsAuthenticator`, and tokens from two `WebTokenAuthenticator`s
//! built from one key file within one second (byte-identical assertions).
//!
//! On first run the test creates a virtual environment in `<target>/compat-venv`
//! and installs the package there with pip (PyPI must be reachable); a marker file
//! records the finished install, and later runs reuse it. It fails with pip's output
//! when it cannot. `TESSERA_TEST_PYTHON` names the interpreter that creates the
//! environment (`python3` by default).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::python::venv_python;
use common::{Server, create_api_app, create_user, field, temp_db, user_key};
use openidconnect::TokenIntrospectionResponse as _;
use serde_json::Value;
use zitadel::oidc::introspection::{AuthorityAuthentication, introspect};

/// The package, exactly as pip installs it.
/// The scope the SDK's authenticators ask for by default besides `openid`.
const API_SCOPE: &str = "urn:zitadel:iam:org:project:id:zitadel:aud";

/// A client-credentials token and two key-file tokens obtained within one second
/// by the Python SDK are all accepted and active for an API app of the audience
/// they asked for.
#[tokio::test]
async fn python_sdk_client_credentials_and_web_tokens() {
    let python = venv_python();
    let db = temp_db();
    let server = Server::start(&db.url, &[]);
    let user = create_user(&db.url, "python-sa", &[]);
    let key_file = user_key(&db.url, &user.username);
    assert_eq!(field(&key_file, "userId"), user.user_id);
    let key_path = db.dir.path().join("key.json");
    std::fs::write(&key_path, key_file.to_string()).expect("write the key file");
    // The SDK asks for the server's own API in the audience: introspect as an app of it.
    let app = create_api_app(&db.url, "zitadel", "zitadel-api");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/zitadel_compat.py");
    let output = Command::new(python)
        .arg(&script)
        .args(["--host", &server.base])
        // `=`: a secret may start with `-`, which argparse would take for an option.
        .arg(format!("--client-id={}", user.username))
        .arg(format!("--client-secret={}", user.client_secret))
        .arg("--key-file")
        .arg(&key_path)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the Python script");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed ({}):\n--- stdout\n{}\n--- stderr\n{stderr}\n--- server log\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        server.logs()
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("no JSON from the script ({e}):\n{}", String::from_utf8_lossy(&output.stdout))
    });
    assert_eq!(result["host"], server.base, "{result}");

    let cc_token = result["client_credentials"]["token"].as_str().unwrap_or_default().to_owned();
    let web_tokens: Vec<String> = result["web_token"]["tokens"]
        .as_array()
        .unwrap_or_else(|| panic!("no web tokens: {result}"))
        .iter()
        .map(|t| t.as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(web_tokens.len(), 2, "{result}");
    assert_ne!(web_tokens[0], web_tokens[1], "two grants gave the same token");

    let metadata = zitadel::oidc::discovery::discover(&server.base)
        .await
        .unwrap_or_else(|e| panic!("discover: {e}\n{}", server.logs()));
    let url = metadata
        .additional_metadata()
        .introspection_endpoint
        .as_ref()
        .expect("discovery names an introspection endpoint")
        .to_string();
    let auth = AuthorityAuthentication::Basic {
        client_id: app.client_id.clone(),
        client_secret: app.client_secret.clone(),
    };
    for (name, token) in [
        ("client credentials", &cc_token),
        ("first web token", &web_tokens[0]),
        ("second web token", &web_tokens[1]),
    ] {
        assert!(!token.is_empty(), "{name}: empty token: {result}");
        let response = introspect(&url, &server.base, &auth, token)
            .await
            .unwrap_or_else(|e| panic!("introspect the {name}: {e}\n{}", server.logs()));
        assert!(response.active(), "{name} is inactive: {response:?}");
        assert_eq!(response.sub(), Some(user.user_id.as_str()), "{name}: {response:?}");
        let scopes: Vec<String> =
            response.scopes().into_iter().flatten().map(|s| s.to_string()).collect();
        for wanted in ["openid", API_SCOPE] {
            assert!(
                scopes.iter().any(|s| s == wanted),
                "{name}: scope {wanted} missing: {scopes:?}"
            );
        }
    }
}
