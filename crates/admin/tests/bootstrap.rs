//! Bootstrap documents, applied whole or not at all, on the in-memory store and on SQLite.

mod common;

use common::{TestResult, World, on_each_backend};
use tessera_admin::{AdminError, BootstrapDocument, Grace, NewProject};
use tessera_store::{AccessTokenType, ClientId, Clock, DisplayName, ProjectId, Username};
use time::Duration;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn document(json: &str) -> Result<BootstrapDocument, serde_json::Error> {
    serde_json::from_str(json)
}

/// The documented example, with `secret` for both clients.
fn full(secret: &str) -> Result<BootstrapDocument, serde_json::Error> {
    document(&format!(
        r#"{{
          "service_users": [{{"username": "billing-job", "client_secret": "{secret}",
                              "display_name": "Billing job", "access_token_type": "jwt", "token_lifetime_secs": 3600}}],
          "projects": [{{"id": "orders", "name": "Orders"}}],
          "api_apps": [{{"project": "orders", "client_id": "orders-api", "client_secret": "{secret}"}}],
          "grants": [{{"username": "billing-job", "project": "orders", "role": "reader"}}]
        }}"#
    ))
}

#[tokio::test]
async fn the_documented_example_is_applied_once() -> TestResult {
    on_each_backend(|World { admin, store, clock, .. }| async move {
        let applied = admin.apply_bootstrap(&full(SECRET)?).await?;
        assert_eq!((applied.created, applied.updated), (4, 0));
        let again = admin.apply_bootstrap(&full(SECRET)?).await?;
        assert_eq!((again.created, again.updated), (0, 0), "idempotent");

        let user = admin.service_user(&Username::new("billing-job")?).await?;
        assert_eq!(user.access_token_type, AccessTokenType::Jwt);
        assert_eq!(user.token_lifetime.as_secs(), 3600);
        assert_eq!(user.display_name.as_str(), "Billing job");
        assert!(user.credentials.matches(SECRET, clock.now()));
        let project = store.project_by_id(&ProjectId::new("orders")?).await?.ok_or("project")?;
        assert_eq!(project.name.as_str(), "Orders");
        let app = store.api_app_by_client_id(&ClientId::new("orders-api")?).await?.ok_or("app")?;
        assert_eq!((app.project_id.as_str(), app.name.as_str()), ("orders", "orders-api"));
        assert!(app.enabled && app.credentials.matches(SECRET, clock.now()));
        let grants = store.grants_of_user(&user.id).await?;
        assert_eq!(grants.len(), 1);
        assert_eq!((grants[0].project_id.as_str(), grants[0].role.as_str()), ("orders", "reader"));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn existing_users_are_updated_and_omitted_fields_return_to_defaults() -> TestResult {
    on_each_backend(|World { admin, clock, .. }| async move {
        let first = document(&format!(
            r#"{{"service_users": [{{"username": "billing-job", "client_secret": "{SECRET}",
                "display_name": "Billing job", "access_token_type": "jwt", "token_lifetime_secs": 3600}}]}}"#
        ))?;
        let applied = admin.apply_bootstrap(&first).await?;
        assert_eq!((applied.created, applied.updated), (1, 0));
        let before = admin.service_user(&Username::new("billing-job")?).await?;

        let changed = document(&format!(
            r#"{{"service_users": [{{"username": "billing-job", "client_secret": "{SECRET}x", "enabled": false}}]}}"#
        ))?;
        let applied = admin.apply_bootstrap(&changed).await?;
        assert_eq!((applied.created, applied.updated), (0, 1));
        let after = admin.service_user(&Username::new("billing-job")?).await?;
        assert_eq!(after.id, before.id, "updated, not recreated");
        assert_eq!(after.access_token_type, AccessTokenType::Opaque, "back to the default");
        assert_eq!(after.display_name.as_str(), "billing-job");
        assert!(!after.enabled);
        assert!(after.credentials.matches(&format!("{SECRET}x"), clock.now()));
        assert!(!after.credentials.matches(SECRET, clock.now()), "the old secret stops at once");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn previous_secrets_are_left_alone_unless_the_secret_changes() -> TestResult {
    on_each_backend(|World { admin, clock, .. }| async move {
        let with = |secret: &str| {
            document(&format!(
                r#"{{"service_users": [{{"username": "u", "client_secret": "{secret}"}}],
                    "api_apps": [{{"project": "zitadel", "client_id": "app", "client_secret": "{secret}"}}]}}"#
            ))
        };
        admin.apply_bootstrap(&with(SECRET)?).await?;
        // An operator rotates both with a grace period, then puts the new secret in the file.
        let (name, app) = (Username::new("u")?, ClientId::new("app")?);
        let hour = Some(Grace::from_secs(3600)?);
        let (_, new_user_secret) = admin.regenerate_user_secret(&name, hour).await?;
        let (_, new_app_secret) = admin.regenerate_app_secret(&app, hour).await?;
        // The file can name one secret only; give both clients the user's.
        let new = new_user_secret.expose().to_owned();
        let applied = admin.apply_bootstrap(&with(&new)?).await?;
        assert_eq!((applied.created, applied.updated), (0, 1), "only the app's secret differs");
        let now = clock.now();
        let user = admin.service_user(&name).await?;
        assert!(user.credentials.matches(SECRET, now) && user.credentials.matches(&new, now), "kept");
        let stored_app = admin.api_app(&app).await?;
        assert!(stored_app.credentials.matches(&new, now));
        assert_eq!(stored_app.credentials.previous, None, "a changed secret drops the kept one");
        assert!(!stored_app.credentials.matches(new_app_secret.expose(), now));
        assert!(!stored_app.credentials.matches(SECRET, now));

        let other = format!("{SECRET}-other");
        let applied = admin.apply_bootstrap(&with(&other)?).await?;
        assert_eq!((applied.created, applied.updated), (0, 2));
        let user = admin.service_user(&name).await?;
        assert_eq!(user.credentials.previous, None);
        assert!(!user.credentials.matches(SECRET, now) && !user.credentials.matches(&new, now));
        assert!(user.credentials.matches(&other, now));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_bad_entry_is_named_and_nothing_is_written() -> TestResult {
    let user = |name: &str, secret: &str| {
        format!(r#"{{"username": "{name}", "client_secret": "{secret}"}}"#)
    };
    let ok = user("ok", SECRET);
    let cases: Vec<(String, &str)> = vec![
        (
            format!(r#"{{"service_users": [{ok}, {}]}}"#, user("short", "tooshort")),
            "bootstrap: service_users[1] (short): client_secret: a client secret must be at least 32 characters long",
        ),
        (
            format!(r#"{{"service_users": [{}]}}"#, user("bad name", SECRET)),
            "bootstrap: service_users[0] (bad name): invalid username \"bad name\"",
        ),
        (
            format!(
                r#"{{"service_users": [{ok}], "projects": [{{"id": "p", "name": "P"}}, {{"id": "p", "name": "Q"}}]}}"#
            ),
            "bootstrap: projects[1] (p): listed twice",
        ),
        (
            format!(
                r#"{{"service_users": [{ok}], "projects": [{{"id": "zitadel", "name": "Mine"}}]}}"#
            ),
            "bootstrap: projects[0] (zitadel): the id zitadel is reserved for the server's own API",
        ),
        (
            format!(
                r#"{{"service_users": [{ok}], "api_apps": [{{"project": "ghost", "client_id": "a", "client_secret": "{SECRET}"}}]}}"#
            ),
            "bootstrap: api_apps[0] (a): project ghost does not exist",
        ),
        (
            format!(
                r#"{{"service_users": [{ok}], "api_apps": [{{"project": "zitadel", "client_id": "ok", "client_secret": "{SECRET}"}}]}}"#
            ),
            "bootstrap: api_apps[0] (ok): a service user has this client ID",
        ),
        (
            format!(
                r#"{{"service_users": [{ok}], "api_apps": [{{"project": "other", "client_id": "existing-app", "client_secret": "{SECRET}"}}]}}"#
            ),
            "bootstrap: api_apps[0] (existing-app): the app exists in project zitadel, not other",
        ),
        (
            format!(
                r#"{{"service_users": [{ok}], "projects": [{{"id": "p", "name": "P"}}], "grants": [{{"username": "ok", "project": "ghost", "role": "r"}}]}}"#
            ),
            "bootstrap: grants[0] (ok ghost r): project ghost does not exist",
        ),
        (
            format!(
                r#"{{"service_users": [{ok}], "grants": [{{"username": "nobody", "project": "zitadel", "role": "r"}}]}}"#
            ),
            "bootstrap: grants[0] (nobody zitadel r): service user nobody does not exist",
        ),
        (
            format!(
                r#"{{"service_users": [{ok}], "grants": [{{"username": "ok", "project": "zitadel", "role": "no role"}}]}}"#
            ),
            "bootstrap: grants[0] (ok zitadel no role): invalid role \"no role\"",
        ),
        (
            format!(
                r#"{{"service_users": [{{"username": "x", "client_secret": "{SECRET}", "token_lifetime_secs": 0}}]}}"#
            ),
            "bootstrap: service_users[0] (x): invalid token lifetime",
        ),
    ];
    on_each_backend(|World { admin, store, .. }| {
        let cases = cases.clone();
        async move {
            // One app stored beforehand, in the reserved project.
            let existing = document(&format!(
                r#"{{"api_apps": [{{"project": "zitadel", "client_id": "existing-app", "client_secret": "{SECRET}"}}],
                    "projects": [{{"id": "other", "name": "Other"}}]}}"#
            ))?;
            admin.apply_bootstrap(&existing).await?;
            let projects = store.list_projects().await?;
            let apps = store.list_api_apps().await?;
            for (json, expected) in cases {
                let err = admin.apply_bootstrap(&document(&json)?).await.err().ok_or(json.clone())?;
                assert!(matches!(err, AdminError::Bootstrap { .. }), "{err:?}");
                let message = err.to_string();
                assert!(message.starts_with(expected), "{message:?} should start with {expected:?}");
                assert!(!message.contains(SECRET), "a secret in an error: {message}");
                assert!(store.list_service_users().await?.is_empty(), "{json} wrote a user");
                assert_eq!(store.list_projects().await?, projects, "{json} wrote a project");
                assert_eq!(store.list_api_apps().await?, apps, "{json} wrote an app");
            }
            Ok(())
        }
    })
    .await
}

#[tokio::test]
async fn references_may_name_stored_records() -> TestResult {
    on_each_backend(|World { admin, store, clock, .. }| async move {
        admin
            .create_project(NewProject {
                id: Some(ProjectId::new("stored")?),
                name: DisplayName::new("Stored")?,
            })
            .await?;
        admin.apply_bootstrap(&document(&format!(
            r#"{{"service_users": [{{"username": "earlier", "client_secret": "{SECRET}"}}]}}"#
        ))?).await?;
        clock.advance(Duration::seconds(1));
        let later = document(&format!(
            r#"{{"api_apps": [{{"project": "stored", "client_id": "stored-api", "client_secret": "{SECRET}", "name": "Stored API", "enabled": false}}],
                "grants": [{{"username": "earlier", "project": "stored", "role": "writer"}}]}}"#
        ))?;
        let applied = admin.apply_bootstrap(&later).await?;
        assert_eq!((applied.created, applied.updated), (2, 0));
        let app = store.api_app_by_client_id(&ClientId::new("stored-api")?).await?.ok_or("app")?;
        assert_eq!((app.name.as_str(), app.enabled), ("Stored API", false));
        let grants = admin.grants_of(&Username::new("earlier")?).await?;
        assert_eq!(grants.len(), 1);
        Ok(())
    })
    .await
}

#[test]
fn documents_refuse_unknown_and_missing_fields_and_hide_secrets() -> TestResult {
    let unknown = document(&format!(
        r#"{{"service_users": [{{"username": "ok", "client_secret": "{SECRET}", "colour": "red"}}]}}"#
    ));
    assert!(unknown.is_err_and(|e| e.to_string().contains("unknown field `colour`")));
    let top = document(r#"{"users": []}"#);
    assert!(top.is_err_and(|e| e.to_string().contains("unknown field `users`")));
    let missing = document(r#"{"projects": [{"id": "p"}]}"#);
    assert!(missing.is_err_and(|e| e.to_string().contains("missing field `name`")));
    assert_eq!(document("{}")?, BootstrapDocument::default());

    let parsed = full(SECRET)?;
    assert!(!format!("{parsed:?}").contains(SECRET), "Debug shows no secret");
    let written = serde_json::to_string(&parsed)?;
    assert_eq!(document(&written)?, parsed, "a document round-trips");
    Ok(())
}

#[tokio::test]
async fn administrators_are_granted_once_and_bad_ones_are_named() -> TestResult {
    on_each_backend(|World { admin, .. }| async move {
        let doc = document(&format!(
            r#"{{
              "service_users": [{{"username": "ops", "client_secret": "{SECRET}"}}],
              "projects": [{{"id": "orders", "name": "Orders"}}],
              "administrators": [
                {{"username": "ops", "role": "IAM_OWNER"}},
                {{"username": "ops", "role": "PROJECT_OWNER", "project": "orders"}}
              ]
            }}"#
        ))?;
        let applied = admin.apply_bootstrap(&doc).await?;
        assert_eq!(applied.created, 4, "a user, a project, two roles");
        assert_eq!(admin.apply_bootstrap(&doc).await?.created, 0, "idempotent");
        let roles: Vec<(String, Option<String>)> = admin
            .administrators()
            .await?
            .into_iter()
            .map(|a| {
                let admin = a.administrator;
                (admin.role.to_string(), admin.project_id.map(|p| p.to_string()))
            })
            .collect();
        assert_eq!(
            roles,
            [("IAM_OWNER".to_owned(), None), ("PROJECT_OWNER".to_owned(), Some("orders".to_owned()))]
        );

        for (bad, message) in [
            (
                r#"{"administrators": [{"username": "ops", "role": "ROOT"}]}"#,
                "bootstrap: administrators[0] (ops ROOT): unknown administrator role",
            ),
            (
                r#"{"administrators": [{"username": "ghost", "role": "IAM_OWNER"}]}"#,
                "bootstrap: administrators[0] (ghost IAM_OWNER): service user ghost does not exist",
            ),
            (
                r#"{"administrators": [{"username": "ops", "role": "ORG_OWNER", "project": "orders"}]}"#,
                "bootstrap: administrators[0] (ops ORG_OWNER): ORG_OWNER is not held on a project",
            ),
            (
                r#"{"administrators": [{"username": "ops", "role": "PROJECT_OWNER", "project": "ghost"}]}"#,
                "bootstrap: administrators[0] (ops PROJECT_OWNER): project ghost does not exist",
            ),
        ] {
            let error = admin.apply_bootstrap(&document(bad)?).await.err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.starts_with(message)),
                "{bad}: {error:?}"
            );
        }
        assert_eq!(admin.administrators().await?.len(), 2, "nothing written");
        Ok(())
    })
    .await
}
