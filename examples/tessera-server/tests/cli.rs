//! The management commands of INTERFACE.md, run as a user runs them.

mod common;

use common::{cli, cli_json, create_user, temp_db};

#[test]
fn service_user_lifecycle_with_json_output() {
    let db = temp_db();
    let created = cli_json(
        &db.url,
        &[
            "service-user",
            "create",
            "--username",
            "reporting",
            "--display-name",
            "Reporting job",
            "--token-lifetime",
            "3600",
        ],
    );
    assert_eq!(created["username"], "reporting");
    assert_eq!(created["client_id"], "reporting");
    let secret = created["client_secret"].as_str().expect("secret");
    assert!(secret.len() >= 43, "at least 256 bits");
    let user_id = created["user_id"].as_str().expect("user id").to_owned();
    assert_eq!(created.as_object().map(|o| o.len()), Some(4), "exactly the documented fields");

    let shown = cli_json(&db.url, &["service-user", "show", "--username", "reporting"]);
    assert_eq!(shown["user_id"], user_id.as_str());
    assert_eq!(shown["display_name"], "Reporting job");
    assert_eq!(shown["access_token_type"], "opaque");
    assert_eq!(shown["token_lifetime_secs"], 3600);
    assert_eq!(shown["enabled"], true);
    assert!(!shown.to_string().contains(secret), "show must not print the secret");

    let set = cli_json(
        &db.url,
        &[
            "service-user",
            "set",
            "--username",
            "reporting",
            "--access-token-type",
            "jwt",
            "--token-lifetime",
            "120",
        ],
    );
    assert_eq!(set["access_token_type"], "jwt");
    assert_eq!(set["token_lifetime_secs"], 120);
    assert_eq!(set["display_name"], "Reporting job", "unnamed fields stay");

    create_user(&db.url, "another", &[]);
    let list = cli_json(&db.url, &["service-user", "list"]);
    let names: Vec<&str> = list["service_users"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["another", "reporting"]);

    let rotated = cli_json(&db.url, &["service-user", "secret", "--username", "reporting"]);
    assert_eq!(rotated["user_id"], user_id.as_str());
    assert_ne!(rotated["client_secret"], secret);

    let deleted = cli_json(&db.url, &["service-user", "delete", "--username", "reporting"]);
    assert_eq!(deleted["deleted"], "reporting");
    let output = cli(&db.url, &["service-user", "show", "--username", "reporting"]);
    assert!(!output.status.success());
}

#[test]
fn text_output_shows_the_secret_once() {
    let db = temp_db();
    let output = cli(&db.url, &["service-user", "create", "--username", "texty"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("client_id:     texty"), "{text}");
    assert!(text.contains("client_secret: "), "{text}");
    let listed = cli(&db.url, &["service-user", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).starts_with("texty\t"));
}

#[test]
fn failures_exit_non_zero_with_one_line_on_stderr() {
    let db = temp_db();
    create_user(&db.url, "taken", &[]);
    let cases: Vec<(Vec<&str>, String, &str)> = vec![
        (vec!["service-user", "create", "--username", "taken"], db.url.clone(), "already exists"),
        (vec!["service-user", "secret", "--username", "ghost"], db.url.clone(), "not found"),
        (vec!["service-user", "show", "--username", "ghost"], db.url.clone(), "not found"),
        (vec!["service-user", "delete", "--username", "ghost"], db.url.clone(), "not found"),
        (
            vec!["service-user", "set", "--username", "ghost", "--token-lifetime", "60"],
            db.url.clone(),
            "not found",
        ),
        (
            vec!["service-user", "create", "--username", "bad name"],
            db.url.clone(),
            "invalid username",
        ),
        (
            vec!["service-user", "create", "--username", "x", "--token-lifetime", "0"],
            db.url.clone(),
            "invalid token lifetime",
        ),
        (
            vec!["service-user", "list"],
            "mysql://u:hunter2@host/db".to_owned(),
            "unsupported database URL",
        ),
        (
            vec!["service-user", "list"],
            format!("sqlite://{}/missing-dir/x.db", db.dir.path().display()),
            "cannot open",
        ),
    ];
    for (args, database, expected) in cases {
        let output = cli(&database, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} should fail");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: one line, got {stderr:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr:?} should mention {expected:?}");
        assert!(!stderr.contains("hunter2"), "passwords are never echoed");
    }
    // A bad flag is refused by the parser, also with a non-zero status.
    let output = cli(
        &db.url,
        &["service-user", "create", "--username", "y", "--access-token-type", "paseto"],
    );
    assert!(!output.status.success());
    // Nothing was written by the failures.
    let list = cli_json(&db.url, &["service-user", "list"]);
    assert_eq!(list["service_users"].as_array().map(Vec::len), Some(1));
}

#[test]
fn memory_database_works_for_one_command() {
    let created = cli_json("memory:", &["service-user", "create", "--username", "ephemeral"]);
    assert_eq!(created["client_id"], "ephemeral");
    let list = cli_json("memory:", &["service-user", "list"]);
    assert_eq!(list["service_users"].as_array().map(Vec::len), Some(0), "memory: keeps nothing");
}

#[test]
fn the_default_database_is_a_file_in_the_working_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new(common::BIN)
        .args(["service-user", "create", "--username", "local", "--json"])
        .env_remove("TESSERA_DATABASE_URL")
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(dir.path().join("tessera.db").exists(), "tessera.db created in the working directory");
}

#[test]
fn administrators_and_personal_access_tokens_from_the_cli() {
    let db = temp_db();
    let ops = create_user(&db.url, "ops", &[]);
    let added = cli_json(&db.url, &["admin", "add", "--username", "ops", "--role", "IAM_OWNER"]);
    assert_eq!(added["role"], "IAM_OWNER");
    assert_eq!(added["added"], true);
    assert_eq!(added["user_id"], ops.user_id.as_str());
    let again = cli_json(&db.url, &["admin", "add", "--username", "ops", "--role", "IAM_OWNER"]);
    assert_eq!(again["added"], false, "held already: nothing changes");
    cli_json(&db.url, &["project", "create", "--name", "Orders", "--id", "orders"]);
    cli_json(
        &db.url,
        &["admin", "add", "--username", "ops", "--role", "PROJECT_OWNER", "--project", "orders"],
    );
    let listed = cli_json(&db.url, &["admin", "list"]);
    let roles: Vec<(&str, &str)> = listed["administrators"]
        .as_array()
        .expect("administrators")
        .iter()
        .map(|a| (a["role"].as_str().unwrap_or(""), a["project_id"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(roles, [("IAM_OWNER", ""), ("PROJECT_OWNER", "orders")]);
    let text = cli(&db.url, &["admin", "list"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("ops\tIAM_OWNER"));

    for (args, expected) in [
        (vec!["admin", "add", "--username", "ops", "--role", "ROOT"], "--role"),
        (vec!["admin", "add", "--username", "ghost", "--role", "IAM_OWNER"], "not found"),
        (
            vec!["admin", "add", "--username", "ops", "--role", "ORG_OWNER", "--project", "orders"],
            "not held on a project",
        ),
        (vec!["admin", "remove", "--username", "ops", "--role", "ORG_OWNER"], "not found"),
        (vec!["service-user", "pat", "add", "--username", "ghost"], "not found"),
        (
            vec!["service-user", "pat", "remove", "--username", "ops", "--token-id", "1"],
            "not found",
        ),
    ] {
        let output = cli(&db.url, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(
            stderr.lines().any(|l| l.starts_with("error:") && l.contains(expected)),
            "{args:?}: {stderr}"
        );
    }
    let removed = cli_json(&db.url, &["admin", "remove", "--username", "ops"]);
    assert_eq!(removed["removed"], 2, "every role, without --role");
    assert_eq!(cli_json(&db.url, &["admin", "list"])["administrators"], serde_json::json!([]));

    // Personal access tokens: shown once, listed without the token, removed.
    let pat =
        cli_json(&db.url, &["service-user", "pat", "add", "--username", "ops", "--expires", "30"]);
    let token = pat["token"].as_str().expect("token").to_owned();
    assert_eq!(token.len(), 64);
    let token_id = pat["token_id"].as_str().expect("token_id").to_owned();
    assert!(pat["expires_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let listed = cli_json(&db.url, &["service-user", "pat", "list", "--username", "ops"]);
    assert_eq!(listed["tokens"][0]["token_id"], token_id.as_str());
    assert!(!listed.to_string().contains(&token), "never listed");
    let text = cli(&db.url, &["service-user", "pat", "list", "--username", "ops"]);
    assert!(!String::from_utf8_lossy(&text.stdout).contains(&token));
    cli_json(
        &db.url,
        &["service-user", "pat", "remove", "--username", "ops", "--token-id", &token_id],
    );
    let listed = cli_json(&db.url, &["service-user", "pat", "list", "--username", "ops"]);
    assert_eq!(listed["tokens"], serde_json::json!([]));
    // The database (and its log) never held the token in clear.
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", db.path.display());
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()), "{path}");
    }
}
