//! Declarative provisioning: a JSON file applied idempotently at start-up.

use std::path::Path;

use serde::Deserialize;
use tessera_store::{
    AccessTokenType, ApiApp, ApiAppPatch, AppId, ClientSecret, DisplayName, Project, ProjectId,
    RoleGrant, RoleKey, SecretDigest, ServiceUser, ServiceUserPatch, Store, TokenLifetime,
    Username,
};
use time::OffsetDateTime;

use crate::commands::{
    CliError, Result, parse_client_id, parse_display_name, parse_lifetime, parse_project_id,
    parse_role, parse_username,
};
use crate::database::chain;

/// The bootstrap file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bootstrap {
    #[serde(default)]
    service_users: Vec<BootstrapUser>,
    #[serde(default)]
    projects: Vec<BootstrapProject>,
    #[serde(default)]
    api_apps: Vec<BootstrapApp>,
    #[serde(default)]
    grants: Vec<BootstrapGrant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BootstrapProject {
    id: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BootstrapApp {
    project: String,
    client_id: String,
    client_secret: String,
    name: Option<String>,
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BootstrapGrant {
    username: String,
    project: String,
    role: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BootstrapUser {
    username: String,
    client_secret: String,
    display_name: Option<String>,
    access_token_type: Option<AccessTokenType>,
    token_lifetime_secs: Option<u64>,
    enabled: Option<bool>,
}

/// A service user as the file wants it.
struct Desired {
    user: ServiceUser,
    secret: SecretDigest,
}

/// What applying the file did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) created: usize,
    pub(crate) updated: usize,
}

/// Reads `path` and applies it to `store`. Every entry is checked before anything
/// is written, so a bad file changes nothing.
pub(crate) async fn apply(store: &dyn Store, path: &Path) -> Result<Applied> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError(format!("bootstrap file {}: {e}", path.display())))?;
    let file: Bootstrap = serde_json::from_str(&text)
        .map_err(|e| CliError(format!("bootstrap file {}: {e}", path.display())))?;
    let now = OffsetDateTime::now_utc();
    let mut desired = Vec::with_capacity(file.service_users.len());
    for (i, entry) in file.service_users.iter().enumerate() {
        let name = || format!("bootstrap: service_users[{i}] ({})", entry.username);
        desired.push(desired_user(entry, now).map_err(|e| CliError(format!("{}: {e}", name())))?);
    }
    let projects = checked_projects(&file, now)?;
    let apps = checked_apps(store, &file, &projects, now).await?;
    let grants = checked_grants(store, &file, &desired, &projects).await?;

    let mut applied = Applied::default();
    for project in &projects {
        match store.project_by_id(&project.id).await? {
            None => {
                store.create_project(project).await?;
                applied.created += 1;
            }
            Some(existing) if existing.name != project.name => {
                store.rename_project(&project.id, &project.name).await?;
                applied.updated += 1;
            }
            Some(_) => {}
        }
    }
    for Desired { user, secret } in desired {
        match store.service_user_by_username(&user.username).await? {
            None => {
                let mut user = user;
                user.secret = Some(secret);
                store.create_service_user(&user).await?;
                applied.created += 1;
            }
            Some(existing) => {
                let patch = ServiceUserPatch {
                    display_name: Some(user.display_name),
                    access_token_type: Some(user.access_token_type),
                    token_lifetime: Some(user.token_lifetime),
                    enabled: Some(user.enabled),
                    secret: changed_secret(existing.secret, secret),
                    keep_previous_until: None,
                    updated_at: now,
                };
                let mut expected = existing.clone();
                expected.apply(&patch);
                expected.updated_at = existing.updated_at;
                if expected != existing {
                    store.update_service_user(&existing.username, &patch).await?;
                    applied.updated += 1;
                }
            }
        }
    }
    for (app, existing) in apps {
        match existing {
            None => {
                store.create_api_app(&app).await?;
                applied.created += 1;
            }
            Some(existing) => {
                let patch = ApiAppPatch {
                    name: Some(app.name.clone()),
                    enabled: Some(app.enabled),
                    secret: app.secret.and_then(|s| changed_secret(existing.secret, s)),
                    keep_previous_until: None,
                    updated_at: now,
                };
                let mut expected = existing.clone();
                expected.apply(&patch);
                expected.updated_at = existing.updated_at;
                if expected != existing {
                    store.update_api_app(&app.client_id, &patch).await?;
                    applied.updated += 1;
                }
            }
        }
    }
    for (username, project, role) in grants {
        let user = store
            .service_user_by_username(&username)
            .await?
            .ok_or_else(|| CliError(format!("bootstrap: service user {username} vanished")))?;
        if store.add_grant(&RoleGrant { user_id: user.id, project_id: project, role }).await? {
            applied.created += 1;
        }
    }
    Ok(applied)
}

/// The secret a bootstrap patch sets: the file's, when it differs from the stored one.
/// A secret that differs replaces the stored one at once, dropping any previous
/// secret; one that matches is left out of the patch, so that a previous secret kept
/// by `secret --keep-old-for` is left alone.
fn changed_secret(stored: Option<SecretDigest>, file: SecretDigest) -> Option<SecretDigest> {
    (stored != Some(file)).then_some(file)
}

fn checked_projects(file: &Bootstrap, now: OffsetDateTime) -> Result<Vec<Project>> {
    let mut projects: Vec<Project> = Vec::new();
    for (i, entry) in file.projects.iter().enumerate() {
        let name = || format!("bootstrap: projects[{i}] ({})", entry.id);
        let id = parse_project_id(&entry.id).map_err(|e| CliError(format!("{}: {e}", name())))?;
        if id.is_reserved() {
            return Err(CliError(format!(
                "{}: the id zitadel is reserved for the server's own API",
                name()
            )));
        }
        if projects.iter().any(|p| p.id == id) {
            return Err(CliError(format!("{}: listed twice", name())));
        }
        let display =
            parse_display_name(&entry.name).map_err(|e| CliError(format!("{}: {e}", name())))?;
        projects.push(Project::new(id, display, now));
    }
    Ok(projects)
}

/// Whether project `id` exists in the file or the store.
async fn project_known(store: &dyn Store, projects: &[Project], id: &ProjectId) -> Result<bool> {
    Ok(projects.iter().any(|p| &p.id == id) || store.project_by_id(id).await?.is_some())
}

async fn checked_apps(
    store: &dyn Store,
    file: &Bootstrap,
    projects: &[Project],
    now: OffsetDateTime,
) -> Result<Vec<(ApiApp, Option<ApiApp>)>> {
    let mut apps: Vec<(ApiApp, Option<ApiApp>)> = Vec::new();
    for (i, entry) in file.api_apps.iter().enumerate() {
        let name = || format!("bootstrap: api_apps[{i}] ({})", entry.client_id);
        let fail = |e: CliError| CliError(format!("{}: {e}", name()));
        let client_id = parse_client_id(&entry.client_id).map_err(fail)?;
        let project_id = parse_project_id(&entry.project).map_err(fail)?;
        if !project_known(store, projects, &project_id).await? {
            return Err(CliError(format!("{}: project {project_id} does not exist", name())));
        }
        let secret = ClientSecret::provided(&entry.client_secret)
            .map_err(|e| CliError(format!("{}: client_secret: {e}", name())))?;
        let display = match &entry.name {
            Some(n) => parse_display_name(n).map_err(fail)?,
            None => parse_display_name(client_id.as_str()).map_err(fail)?,
        };
        let existing = store.api_app_by_client_id(&client_id).await?;
        if let Some(existing) = &existing
            && existing.project_id != project_id
        {
            return Err(CliError(format!(
                "{}: the app exists in project {}, not {project_id}",
                name(),
                existing.project_id
            )));
        }
        let user_clash = match Username::new(client_id.as_str()) {
            Ok(u) => {
                file.service_users.iter().any(|s| s.username == u.as_str())
                    || store.service_user_by_username(&u).await?.is_some()
            }
            Err(_) => false,
        };
        if user_clash {
            return Err(CliError(format!("{}: a service user has this client ID", name())));
        }
        let app_id = match &existing {
            Some(existing) => existing.app_id.clone(),
            None => AppId::generate().map_err(|e| CliError(e.to_string()))?,
        };
        let app = ApiApp {
            client_id,
            app_id,
            project_id,
            name: display,
            secret: Some(SecretDigest::of(&secret)),
            previous_secret: None,
            enabled: entry.enabled.unwrap_or(true),
            created_at: now,
            updated_at: now,
        };
        apps.push((app, existing));
    }
    Ok(apps)
}

async fn checked_grants(
    store: &dyn Store,
    file: &Bootstrap,
    users: &[Desired],
    projects: &[Project],
) -> Result<Vec<(Username, ProjectId, RoleKey)>> {
    let mut grants = Vec::new();
    for (i, entry) in file.grants.iter().enumerate() {
        let name = || {
            format!("bootstrap: grants[{i}] ({} {} {})", entry.username, entry.project, entry.role)
        };
        let fail = |e: CliError| CliError(format!("{}: {e}", name()));
        let username = parse_username(&entry.username).map_err(fail)?;
        let project = parse_project_id(&entry.project).map_err(fail)?;
        let role = parse_role(&entry.role).map_err(fail)?;
        let user_known = users.iter().any(|d| d.user.username == username)
            || store.service_user_by_username(&username).await?.is_some();
        if !user_known {
            return Err(CliError(format!("{}: service user {username} does not exist", name())));
        }
        if !project_known(store, projects, &project).await? {
            return Err(CliError(format!("{}: project {project} does not exist", name())));
        }
        grants.push((username, project, role));
    }
    Ok(grants)
}

fn desired_user(entry: &BootstrapUser, now: OffsetDateTime) -> Result<Desired> {
    let username = parse_username(&entry.username)?;
    let secret = ClientSecret::provided(&entry.client_secret)
        .map_err(|e| CliError(format!("client_secret: {e}")))?;
    let mut user = ServiceUser::new(username, now).map_err(|e| CliError(chain(&e)))?;
    user.display_name = match &entry.display_name {
        Some(name) => parse_display_name(name)?,
        None => DisplayName::from_username(&user.username),
    };
    user.access_token_type = entry.access_token_type.unwrap_or_default();
    user.token_lifetime = match entry.token_lifetime_secs {
        Some(secs) => parse_lifetime(secs)?,
        None => TokenLifetime::default(),
    };
    user.enabled = entry.enabled.unwrap_or(true);
    Ok(Desired { user, secret: SecretDigest::of(&secret) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tessera_store::{MemoryStore, ServiceUserStore, Username};

    fn file(contents: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        f.write_all(contents.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        f
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[tokio::test]
    async fn creates_then_updates_idempotently() -> Result<(), Box<dyn std::error::Error>> {
        let store = MemoryStore::new();
        let f = file(&format!(
            r#"{{"service_users": [{{"username": "billing-job", "client_secret": "{SECRET}",
                "display_name": "Billing job", "access_token_type": "jwt", "token_lifetime_secs": 3600}}]}}"#
        ));
        assert_eq!(
            apply(&store, f.path()).await.map_err(|e| e.0)?,
            Applied { created: 1, updated: 0 }
        );
        assert_eq!(apply(&store, f.path()).await.map_err(|e| e.0)?, Applied::default());
        let user = store
            .service_user_by_username(&Username::new("billing-job")?)
            .await?
            .ok_or("missing")?;
        assert_eq!(user.access_token_type, AccessTokenType::Jwt);
        assert_eq!(user.token_lifetime.as_secs(), 3600);
        assert_eq!(user.display_name.as_str(), "Billing job");
        assert!(user.secret.is_some_and(|d| d.verify(SECRET)));

        let changed = file(&format!(
            r#"{{"service_users": [{{"username": "billing-job", "client_secret": "{SECRET}x"}}]}}"#
        ));
        assert_eq!(
            apply(&store, changed.path()).await.map_err(|e| e.0)?,
            Applied { created: 0, updated: 1 }
        );
        let user = store
            .service_user_by_username(&Username::new("billing-job")?)
            .await?
            .ok_or("missing")?;
        assert_eq!(
            user.access_token_type,
            AccessTokenType::Opaque,
            "omitted fields return to defaults"
        );
        assert!(user.secret.is_some_and(|d| d.verify(&format!("{SECRET}x")) && !d.verify(SECRET)));
        Ok(())
    }

    #[tokio::test]
    async fn previous_secrets_are_left_alone_unless_the_secret_changes()
    -> Result<(), Box<dyn std::error::Error>> {
        use tessera_store::{ClientId, ProjectStore};
        let store = MemoryStore::new();
        let with = |secret: &str| {
            file(&format!(
                r#"{{"service_users": [{{"username": "u", "client_secret": "{secret}"}}],
                    "api_apps": [{{"project": "zitadel", "client_id": "app", "client_secret": "{secret}"}}]}}"#
            ))
        };
        apply(&store, with(SECRET).path()).await.map_err(|e| e.0)?;
        // An operator rotates both with a grace period, then puts the new secret in the file.
        let (name, app) = (Username::new("u")?, ClientId::new("app")?);
        let new = format!("{SECRET}-new");
        let now = OffsetDateTime::now_utc();
        let mut user_patch = ServiceUserPatch::at(now);
        user_patch.secret = Some(SecretDigest::of(&ClientSecret::provided(&new)?));
        user_patch.keep_previous_until = Some(now + time::Duration::hours(1));
        store.update_service_user(&name, &user_patch).await?;
        let mut app_patch = ApiAppPatch::at(now);
        app_patch.secret = user_patch.secret;
        app_patch.keep_previous_until = user_patch.keep_previous_until;
        store.update_api_app(&app, &app_patch).await?;

        let applied = apply(&store, with(&new).path()).await.map_err(|e| e.0)?;
        assert_eq!(applied, Applied::default(), "the file matches: nothing changes");
        let user = store.service_user_by_username(&name).await?.ok_or("missing")?;
        let stored_app = store.api_app_by_client_id(&app).await?.ok_or("missing")?;
        assert!(user.secret_matches(SECRET, now) && user.secret_matches(&new, now));
        assert!(stored_app.secret_matches(SECRET, now) && stored_app.secret_matches(&new, now));

        let other = format!("{SECRET}-other");
        let applied = apply(&store, with(&other).path()).await.map_err(|e| e.0)?;
        assert_eq!(applied, Applied { created: 0, updated: 2 });
        let user = store.service_user_by_username(&name).await?.ok_or("missing")?;
        let stored_app = store.api_app_by_client_id(&app).await?.ok_or("missing")?;
        assert_eq!((user.previous_secret, stored_app.previous_secret), (None, None));
        for secret in [SECRET, new.as_str()] {
            assert!(!user.secret_matches(secret, now), "a new file secret replaces at once");
            assert!(!stored_app.secret_matches(secret, now));
        }
        assert!(user.secret_matches(&other, now) && stored_app.secret_matches(&other, now));
        Ok(())
    }

    #[tokio::test]
    async fn bad_entries_are_named_and_nothing_is_written() -> Result<(), Box<dyn std::error::Error>>
    {
        let store = MemoryStore::new();
        let cases = [
            (
                format!(
                    r#"{{"service_users": [{{"username": "ok", "client_secret": "{SECRET}"}}, {{"username": "short", "client_secret": "tooshort"}}]}}"#
                ),
                "service_users[1] (short): client_secret",
            ),
            (
                format!(
                    r#"{{"service_users": [{{"username": "ok", "client_secret": "{SECRET}", "colour": "red"}}]}}"#
                ),
                "unknown field `colour`",
            ),
            (
                format!(
                    r#"{{"service_users": [{{"username": "bad name", "client_secret": "{SECRET}"}}]}}"#
                ),
                "service_users[0] (bad name)",
            ),
            (r#"{"projects": [{"id": "p"}]}"#.to_owned(), "missing field `name`"),
            (r#"{"api_apps": [{"project": "ghost", "client_id": "a", "client_secret": "0123456789abcdef0123456789abcdef"}]}"#.to_owned(), "api_apps[0] (a): project ghost does not exist"),
            (format!(r#"{{"service_users": [{{"username": "u", "client_secret": "{SECRET}"}}], "grants": [{{"username": "u", "project": "ghost", "role": "r"}}]}}"#), "grants[0] (u ghost r): project ghost does not exist"),
            (r#"{"grants": [{"username": "nobody", "project": "zitadel", "role": "r"}]}"#.to_owned(), "service user nobody does not exist"),
            (r#"{"projects": [{"id": "zitadel", "name": "Mine"}]}"#.to_owned(), "reserved"),
            ("not json".to_owned(), "bootstrap file"),
        ];
        for (contents, expected) in cases {
            let err = apply(&store, file(&contents).path()).await.expect_err("must fail");
            assert!(err.0.contains(expected), "{:?} should mention {expected:?}", err.0);
        }
        assert!(store.list_service_users().await?.is_empty());
        Ok(())
    }
}
