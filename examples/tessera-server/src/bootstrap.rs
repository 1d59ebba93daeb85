//! Declarative provisioning: a JSON file applied idempotently at start-up.

use std::path::Path;

use serde::Deserialize;
use tessera_store::{
    AccessTokenType, ClientSecret, DisplayName, SecretDigest, ServiceUser, ServiceUserPatch, Store,
    TokenLifetime,
};
use time::OffsetDateTime;

use crate::commands::{CliError, Result, parse_display_name, parse_lifetime, parse_username};
use crate::database::chain;

/// The bootstrap file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bootstrap {
    #[serde(default)]
    service_users: Vec<BootstrapUser>,
    #[serde(default)]
    projects: Vec<serde_json::Value>,
    #[serde(default)]
    api_apps: Vec<serde_json::Value>,
    #[serde(default)]
    grants: Vec<serde_json::Value>,
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
    for (what, entries) in [
        ("projects", &file.projects),
        ("api_apps", &file.api_apps),
        ("grants", &file.grants),
    ] {
        if !entries.is_empty() {
            return Err(CliError(format!(
                "bootstrap file {}: {what} are not supported by this version",
                path.display()
            )));
        }
    }
    let now = OffsetDateTime::now_utc();
    let mut desired = Vec::with_capacity(file.service_users.len());
    for (i, entry) in file.service_users.iter().enumerate() {
        let name = || format!("bootstrap: service_users[{i}] ({})", entry.username);
        desired.push(desired_user(entry, now).map_err(|e| CliError(format!("{}: {e}", name())))?);
    }
    let mut applied = Applied::default();
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
                    secret: Some(secret),
                    updated_at: now,
                };
                let mut expected = existing.clone();
                expected.apply(&patch);
                expected.updated_at = existing.updated_at;
                if expected != existing {
                    store
                        .update_service_user(&existing.username, &patch)
                        .await?;
                    applied.updated += 1;
                }
            }
        }
    }
    Ok(applied)
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
    Ok(Desired {
        user,
        secret: SecretDigest::of(&secret),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tessera_store::{MemoryStore, ServiceUserStore, Username};

    fn file(contents: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        f.write_all(contents.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
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
            Applied {
                created: 1,
                updated: 0
            }
        );
        assert_eq!(
            apply(&store, f.path()).await.map_err(|e| e.0)?,
            Applied::default()
        );
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
            Applied {
                created: 0,
                updated: 1
            }
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
        assert!(
            user.secret
                .is_some_and(|d| d.verify(&format!("{SECRET}x")) && !d.verify(SECRET))
        );
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
            (
                r#"{"service_users": [], "projects": [{"id": "p"}]}"#.to_owned(),
                "projects",
            ),
            ("not json".to_owned(), "bootstrap file"),
        ];
        for (contents, expected) in cases {
            let err = apply(&store, file(&contents).path())
                .await
                .expect_err("must fail");
            assert!(
                err.0.contains(expected),
                "{:?} should mention {expected:?}",
                err.0
            );
        }
        assert!(store.list_service_users().await?.is_empty());
        Ok(())
    }
}
