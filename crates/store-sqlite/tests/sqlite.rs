//! Behaviour specific to the SQLite backend: persistence, migrations, bad files,
//! group commits, and what the file holds. The contracts of the storage traits,
//! for one store and for several stores (processes) on one file, are checked by the
//! conformance suites (`tests/conformance.rs`).

use std::path::{Path, PathBuf};

use tempfile::TempDir;
use tessera_scope::ScopeSet;
use tessera_store::prelude::*;
use tessera_store::{
    ApiApp, AppId, ClientId, ClientKey, ClientSecret, Credentials, DisplayName, Domain, KeyOwner,
    Organization, Project, ProjectId, RoleClaims, RoleGrant, RoleKey, SecretDigest, ServiceUser,
    ServiceUserPatch, SigningAlgorithm, StoreError, TokenDigest, TokenId, TokenRecord, Username,
};
use tessera_store_sqlite::SqliteStore;
use time::{Duration, OffsetDateTime};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn t0() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_700_000_000)
}

fn db_file() -> Result<(TempDir, PathBuf), std::io::Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tessera.db");
    Ok((dir, path))
}

fn user_with_secret(name: &str) -> Result<(ServiceUser, ClientSecret), Box<dyn std::error::Error>> {
    let mut user = ServiceUser::new(Username::new(name)?, t0())?;
    let secret = ClientSecret::generate()?;
    user.credentials.secret = Some(SecretDigest::of(&secret)?);
    Ok((user, secret))
}

fn token_for(user: &ServiceUser, token: &str) -> Result<TokenRecord, Box<dyn std::error::Error>> {
    Ok(TokenRecord {
        digest: TokenDigest::of(token),
        jti: TokenId::generate()?,
        user_id: user.id.clone(),
        client_id: user.username.clone(),
        scopes: ScopeSet::parse("openid urn:zitadel:iam:org:project:id:zitadel:aud")?,
        audience: vec!["zitadel".to_owned(), user.username.to_string()],
        roles: RoleClaims::default(),
        issued_at: t0(),
        expires_at: t0() + Duration::hours(1),
        revoked_at: None,
    })
}

fn project(id: &str) -> Result<Project, Box<dyn std::error::Error>> {
    Ok(Project::new(ProjectId::new(id)?, DisplayName::new("Orders")?, t0()))
}

fn app_with_secret(
    project: &Project,
    client_id: &str,
) -> Result<(ApiApp, ClientSecret), Box<dyn std::error::Error>> {
    let secret = ClientSecret::generate()?;
    let app = ApiApp {
        client_id: ClientId::new(client_id)?,
        app_id: AppId::generate()?,
        project_id: project.id.clone(),
        name: DisplayName::new("Orders API")?,
        credentials: Credentials::new(SecretDigest::of(&secret)?),
        enabled: true,
        created_at: t0(),
        updated_at: t0(),
    };
    Ok((app, secret))
}

fn organization(name: &str, domain: &str) -> Result<Organization, Box<dyn std::error::Error>> {
    Ok(Organization::generate(DisplayName::new(name)?, Domain::new(domain)?, t0())?)
}

fn client_key(owner: &KeyOwner, key_id: &str, offset_secs: i64) -> ClientKey {
    ClientKey {
        key_id: key_id.to_owned(),
        owner: owner.clone(),
        algorithm: SigningAlgorithm::Es256,
        public_jwk: format!(r#"{{"kty":"EC","crv":"P-256","kid":"{key_id}"}}"#),
        created_at: t0() + Duration::seconds(offset_secs),
        expires_at: Some(t0() + Duration::days(90)),
    }
}

fn migration_rows(path: &Path) -> Result<i64, rusqlite::Error> {
    let conn = rusqlite::Connection::open(path)?;
    conn.query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopening() -> TestResult {
    let (_dir, path) = db_file()?;
    let (user, _) = user_with_secret("survivor")?;
    let mut token = token_for(&user, "opaque-token")?;
    {
        let store = SqliteStore::open(&path).await?;
        store.create_service_user(&user).await?;
        store.insert_token(&token).await?;
        assert!(store.revoke_token(&token.digest, t0() + Duration::seconds(3)).await?);
    }
    token.revoked_at = Some(t0() + Duration::seconds(3));

    let store = SqliteStore::open(&path).await?;
    assert_eq!(store.service_user_by_username(&user.username).await?, Some(user.clone()));
    assert_eq!(store.service_user_by_id(&user.id).await?, Some(user));
    assert_eq!(store.token_by_digest(&token.digest).await?, Some(token));
    store.ping().await?;

    let conn = rusqlite::Connection::open(&path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    assert_eq!(mode, "wal", "the file must stay in WAL mode");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent() -> TestResult {
    let (_dir, path) = db_file()?;
    let (user, _) = user_with_secret("kept")?;
    SqliteStore::open(&path).await?.create_service_user(&user).await?;
    let first = migration_rows(&path)?;
    assert!(first >= 1);
    let store = SqliteStore::open(&path).await?;
    assert_eq!(migration_rows(&path)?, first, "reopening must apply nothing");
    assert_eq!(store.list_service_users().await?, vec![user]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_of_a_fresh_file_are_safe() -> TestResult {
    for round in 0..5 {
        let (_dir, path) = db_file()?;
        let mut opens = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let path = path.clone();
            opens.spawn(async move { SqliteStore::open(path).await });
        }
        let mut stores = Vec::new();
        while let Some(joined) = opens.join_next().await {
            stores.push(joined?.map_err(|e| format!("round {round}: {e:?}"))?);
        }
        assert_eq!(
            migration_rows(&path)?,
            i64::try_from(tessera_store_sqlite::SCHEMA_VERSION)?,
            "round {round}: each migration once"
        );
        let (user, _) = user_with_secret("after-race")?;
        stores[0].create_service_user(&user).await?;
        for store in &stores {
            assert_eq!(store.service_user_by_id(&user.id).await?, Some(user.clone()));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_database_is_an_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    for (name, contents) in [
        ("short.db", b"not a database".to_vec()),
        ("long.db", b"definitely not SQLite\n".repeat(500)),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &contents)?;
        let result = SqliteStore::open(&path).await;
        assert!(matches!(result, Err(StoreError::Corrupt(_))), "{name}: {result:?}");
        assert_eq!(std::fs::read(&path)?, contents, "{name} must be left alone");
    }
    let missing_dir = dir.path().join("no-such-dir").join("tessera.db");
    let result = SqliteStore::open(&missing_dir).await;
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_does_not_parse_is_corrupt() -> TestResult {
    let (_dir, path) = db_file()?;
    let store = SqliteStore::open(&path).await?;
    let (user, _) = user_with_secret("fine")?;
    store.create_service_user(&user).await?;
    let token = token_for(&user, "t")?;
    store.insert_token(&token).await?;
    {
        let conn = rusqlite::Connection::open(&path)?;
        conn.execute("UPDATE service_users SET access_token_type = 'paper'", [])?;
        conn.execute("UPDATE tokens SET scopes = 'two  spaces'", [])?;
    }
    let result = store.service_user_by_username(&user.username).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    let result = store.list_service_users().await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    let result = store.token_by_digest(&token.digest).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    store.ping().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_holds_no_plaintext_secret() -> TestResult {
    let (_dir, path) = db_file()?;
    let store = SqliteStore::open(&path).await?;
    let (user, first) = user_with_secret("secretive")?;
    store.create_service_user(&user).await?;
    let second = ClientSecret::generate()?;
    let mut patch = ServiceUserPatch::at(t0());
    patch.secret = Some(SecretDigest::of(&second)?);
    store.update_service_user(&user.username, &patch).await?;

    let read_all = || -> Result<Vec<u8>, std::io::Error> {
        let mut bytes = std::fs::read(&path)?;
        let wal = path.with_file_name("tessera.db-wal");
        if wal.exists() {
            bytes.extend(std::fs::read(wal)?);
        }
        Ok(bytes)
    };
    let contains = |haystack: &[u8], needle: &str| {
        haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
    };

    let bytes = read_all()?;
    assert!(contains(&bytes, "secretive"), "the check must read the stored data");
    assert!(!contains(&bytes, first.expose()), "first secret stored in clear");
    assert!(!contains(&bytes, second.expose()), "second secret stored in clear");

    drop(store); // the last connection checkpoints the WAL into the file
    let bytes = read_all()?;
    assert!(contains(&bytes, "secretive"));
    assert!(!contains(&bytes, first.expose()));
    assert!(!contains(&bytes, second.expose()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_unknown_users_are_refused() -> TestResult {
    let (_dir, path) = db_file()?;
    let store = SqliteStore::open(&path).await?;
    let (ghost, _) = user_with_secret("ghost")?;
    let result = store.insert_token(&token_for(&ghost, "orphan")?).await;
    assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_apps_grants_and_revoked_jtis_survive_reopening() -> TestResult {
    let (_dir, path) = db_file()?;
    let orders = project("orders")?;
    let (app, _) = app_with_secret(&orders, "orders-api")?;
    let (mut disabled, _) = app_with_secret(&Project::reserved(), "console")?;
    disabled.credentials.secret = None;
    disabled.enabled = false;
    let (user, _) = user_with_secret("granted")?;
    let grants = vec![
        RoleGrant {
            user_id: user.id.clone(),
            project_id: orders.id.clone(),
            role: RoleKey::new("reader")?,
        },
        RoleGrant {
            user_id: user.id.clone(),
            project_id: ProjectId::reserved(),
            role: RoleKey::new("admin")?,
        },
    ];
    let mut token = token_for(&user, "with-roles")?;
    let acme = organization("Acme", "acme.example")?;
    token.roles.insert(&RoleKey::new("reader")?, &acme);
    token.roles.insert(&RoleKey::new("admin")?, &acme);
    let revoked = TokenId::generate()?;
    let expired = TokenId::generate()?;
    let renamed = Project { name: DisplayName::new("Orders v2")?, ..orders.clone() };
    {
        let store = SqliteStore::open(&path).await?;
        store.create_project(&orders).await?;
        store.rename_project(&orders.id, &renamed.name).await?;
        store.create_api_app(&app).await?;
        store.create_api_app(&disabled).await?;
        store.create_service_user(&user).await?;
        for grant in &grants {
            assert!(store.add_grant(grant).await?);
        }
        store.insert_token(&token).await?;
        store.revoke_jti(&revoked, t0() + Duration::hours(1)).await?;
        store.revoke_jti(&expired, t0()).await?;
    }

    let store = SqliteStore::open(&path).await?;
    assert_eq!(store.list_projects().await?, vec![renamed, Project::reserved()]);
    assert_eq!(store.list_api_apps().await?, vec![disabled.clone(), app.clone()]);
    assert_eq!(store.api_app_by_client_id(&app.client_id).await?, Some(app.clone()));
    assert_eq!(store.grants_of_user(&user.id).await?, grants);
    assert!(!store.add_grant(&grants[0]).await?, "the grant is still there");
    assert_eq!(store.token_by_digest(&token.digest).await?, Some(token));
    assert!(store.is_jti_revoked(&revoked).await?);
    assert!(store.is_jti_revoked(&expired).await?);
    // Namespaces and constraints hold across reopening too.
    let clash = store.create_service_user(&user_with_secret("orders-api")?.0).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    let clash = store.create_api_app(&app_with_secret(&orders, "granted")?.0).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    // Purging at the token's expiry removes the token and both revoked ids.
    assert_eq!(store.purge_expired_tokens(t0() + Duration::hours(1)).await?, 3);
    assert!(!store.is_jti_revoked(&revoked).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_roles_that_do_not_parse_are_corrupt() -> TestResult {
    let (_dir, path) = db_file()?;
    let store = SqliteStore::open(&path).await?;
    let (user, _) = user_with_secret("fine")?;
    store.create_service_user(&user).await?;
    let token = token_for(&user, "t")?;
    store.insert_token(&token).await?;
    {
        let conn = rusqlite::Connection::open(&path)?;
        let roles: String = conn.query_row("SELECT roles FROM tokens", [], |r| r.get(0))?;
        assert_eq!(roles, "{}", "no roles are stored as an empty JSON object");
        conn.execute("UPDATE tokens SET roles = '[\"not\", \"a map\"]'", [])?;
    }
    let result = store.token_by_digest(&token.digest).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    Ok(())
}

/// Records committed together in one group still succeed or fail one by one: a
/// duplicate among many concurrent inserts is the only one refused, and every other
/// record is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_in_a_group_commit_fails_alone() -> TestResult {
    let (_dir, path) = db_file()?;
    let store = SqliteStore::open(&path).await?;
    let (user, _) = user_with_secret("grouped")?;
    store.create_service_user(&user).await?;
    store.insert_token(&token_for(&user, "taken")?).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = store.clone();
        let name = if i == 20 { "taken".to_owned() } else { format!("grouped-{i}") };
        let record = token_for(&user, &name)?;
        tasks.spawn(async move { store.insert_token(&record).await });
    }
    let mut conflicts = 0;
    while let Some(result) = tasks.join_next().await {
        match result? {
            Ok(()) => {}
            Err(tessera_store::StoreError::Conflict(_)) => conflicts += 1,
            Err(other) => return Err(other.into()),
        }
    }
    assert_eq!(conflicts, 1, "only the duplicate is refused");
    for i in (0..40).filter(|i| *i != 20) {
        let digest = tessera_store::TokenDigest::of(&format!("grouped-{i}"));
        assert!(store.token_by_digest(&digest).await?.is_some(), "record {i} was lost");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_row_that_does_not_parse_is_corrupt() -> TestResult {
    let (_dir, path) = db_file()?;
    let store = SqliteStore::open(&path).await?;
    store.init_organization(&organization("Acme", "acme.example")?).await?;
    {
        let conn = rusqlite::Connection::open(&path)?;
        conn.execute("UPDATE organization SET primary_domain = 'not a domain'", [])?;
        let refused =
            conn.execute("INSERT INTO organization VALUES (2, 'x', 'x', 'x.example', 0)", []);
        assert!(refused.is_err(), "the table holds one row only");
    }
    let result = store.organization().await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_keys_and_used_assertions_survive_reopening() -> TestResult {
    let (_dir, path) = db_file()?;
    let orders = project("orders")?;
    let (app, _) = app_with_secret(&orders, "orders-api")?;
    let (user, _) = user_with_secret("signer")?;
    let user_owner = KeyOwner::ServiceUser(user.id.clone());
    let app_owner = KeyOwner::ApiApp(app.client_id.clone());
    // Created out of key id order, and one without expiry.
    let late = client_key(&user_owner, "a-late", 20);
    let mut early = client_key(&user_owner, "z-early", 10);
    early.algorithm = SigningAlgorithm::Rs256;
    early.expires_at = None;
    let app_key = client_key(&app_owner, "app-key", 0);
    let expiry = t0() + Duration::minutes(5);
    {
        let store = SqliteStore::open(&path).await?;
        store.create_project(&orders).await?;
        store.create_api_app(&app).await?;
        store.create_service_user(&user).await?;
        for key in [&late, &early, &app_key] {
            store.add_client_key(key).await?;
        }
        assert!(store.use_assertion(&user_owner.to_key(), "jti-1", expiry).await?);
    }

    let store = SqliteStore::open(&path).await?;
    assert_eq!(store.client_key("z-early").await?, Some(early.clone()));
    assert_eq!(store.client_keys_of(&user_owner).await?, vec![early, late]);
    assert_eq!(store.client_keys_of(&app_owner).await?, vec![app_key]);
    assert!(!store.use_assertion(&user_owner.to_key(), "jti-1", expiry).await?, "a replay");
    assert_eq!(store.purge_expired_tokens(expiry).await?, 1);
    assert!(store.use_assertion(&user_owner.to_key(), "jti-1", expiry).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_organization_survives_reopening() -> TestResult {
    let (_dir, path) = db_file()?;
    let first = organization("Acme", "acme.example")?;
    let updated = {
        let store = SqliteStore::open(&path).await?;
        assert_eq!(store.init_organization(&first).await?, first);
        let name = DisplayName::new("Renamed")?;
        let domain = Domain::new("renamed.example")?;
        store.update_organization(&name, &domain).await?
    };
    let reopened = SqliteStore::open(&path).await?;
    assert_eq!(reopened.organization().await?, Some(updated.clone()));
    let again = reopened.init_organization(&organization("Late", "late.example")?).await?;
    assert_eq!(again, updated, "a later init returns the stored organization");
    Ok(())
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_and_its_wal_files_are_the_owners_alone() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = db_file()?;
    let store = SqliteStore::open(&path).await?;
    let (user, _) = user_with_secret("private")?;
    store.create_service_user(&user).await?;
    store.insert_token(&token_for(&user, "private-token")?).await?;
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", file.display());
    }
    Ok(())
}
