//! The real `tessera-server`'s management API driven by ZITADEL's Python SDK,
//! `zitadel-client` (pinned to 4.1.9), through the script
//! `python/management_lifecycle.py`: an administrator signs in with client
//! credentials and takes a service user through its whole life (secret, key file,
//! personal access token, project, role, API app, authorization, deactivation,
//! deletion).
//!
//! The SDK's virtual environment is created on first run under the target directory
//! (see `common::python`); the test fails loudly when it cannot be.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::python::venv_python;
use common::{Server, cli_json, create_user, temp_db};
use serde_json::Value;

#[test]
fn python_sdk_manages_a_service_user_through_its_whole_life() {
    let python = venv_python();
    let db = temp_db();
    let admin = create_user(&db.url, "py-admin", &[]);
    cli_json(&db.url, &["admin", "add", "--username", "py-admin", "--role", "IAM_OWNER"]);
    let server = Server::start(&db.url, &[]);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/management_lifecycle.py");
    let output = Command::new(python)
        .arg(&script)
        .arg(format!("--host={}", server.base))
        // `=`: a secret may start with `-`, which argparse would take for an option.
        .arg(format!("--client-id={}", admin.username))
        .arg(format!("--client-secret={}", admin.client_secret))
        .arg(format!("--admin-user-id={}", admin.user_id))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the Python script");
    assert!(
        output.status.success(),
        "{} failed ({}):\n--- stdout\n{}\n--- stderr\n{}\n--- server log\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.logs()
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("no JSON from the script ({e}):\n{}", String::from_utf8_lossy(&output.stdout))
    });
    let user_id = result["user_id"].as_str().expect("user_id").to_owned();
    assert_eq!(result["secret_token"], true, "{result}");
    assert_eq!(result["key_token"], true, "{result}");
    assert_eq!(result["pat_userinfo"], user_id.as_str(), "{result}");
    assert_eq!(result["introspected_roles"], serde_json::json!(["reader"]), "{result}");
    assert_eq!(result["active_after_deactivation"], false, "{result}");
    assert_eq!(result["deleted"], true, "{result}");

    // The store agrees: the user is gone, the administrator remains.
    let users = cli_json(&db.url, &["service-user", "list"]);
    let names: Vec<&str> = users["service_users"]
        .as_array()
        .map(|list| list.iter().filter_map(|u| u["username"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["py-admin"], "{users}");
    // Every change was audited with the acting user; no secret was logged.
    let logs = server.logs();
    for method in ["CreateUser", "AddSecret", "AddKey", "AddPersonalAccessToken", "DeleteUser"] {
        assert!(
            logs.lines().any(|l| l.contains("management_change")
                && l.contains(method)
                && l.contains("actor=py-admin")),
            "{method} not audited:\n{logs}"
        );
    }
    assert!(!logs.contains(&admin.client_secret));
}
