//! Behaviour specific to the SQLite backend: persistence, migrations, several
//! stores (processes) on one file, bad files, and what the file holds.

use std::path::{Path, PathBuf};

use tempfile::TempDir;
use tessera_scope::ScopeSet;
use tessera_store::{
    ApiApp, ApiAppPatch, AppId, ClientId, ClientKey, ClientKeyStore, ClientSecret, DisplayName,
    Domain, KeyOwner, Organization, OrganizationStore, Project, ProjectId, ProjectStore,
    RoleClaims, RoleGrant, RoleKey, SecretDigest, ServiceUser, ServiceUserPatch, ServiceUserStore,
    SigningAlgorithm, Store, StoreError, TokenDigest, TokenId, TokenRecord, TokenStore, Username,
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
    user.secret = Some(SecretDigest::of(&secret));
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
        secret: Some(SecretDigest::of(&secret)),
        previous_secret: None,
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
async fn two_stores_on_one_file_see_each_other_at_once() -> TestResult {
    let (_dir, path) = db_file()?;
    let server = SqliteStore::open(&path).await?;
    let cli = SqliteStore::open(&path).await?;

    // The CLI creates a user; the server sees it without restarting.
    let (user, old) = user_with_secret("shared")?;
    cli.create_service_user(&user).await?;
    let seen = server.service_user_by_username(&user.username).await?;
    assert_eq!(seen.as_ref(), Some(&user));
    let seen_digest = seen.and_then(|u| u.secret).ok_or("secret")?;
    assert!(seen_digest.verify(old.expose()));

    // The CLI regenerates the secret; the server rejects the old one at once.
    let new = ClientSecret::generate()?;
    let mut patch = ServiceUserPatch::at(t0() + Duration::seconds(1));
    patch.secret = Some(SecretDigest::of(&new));
    cli.update_service_user(&user.username, &patch).await?;
    for _ in 0..20 {
        let digest = server
            .service_user_by_username(&user.username)
            .await?
            .and_then(|u| u.secret)
            .ok_or("secret")?;
        assert!(!digest.verify(old.expose()), "old secret accepted after regeneration");
        assert!(digest.verify(new.expose()));
    }

    // Both write at once: nothing is lost, nothing fails.
    let mut writers = tokio::task::JoinSet::new();
    for (n, store) in [server.clone(), cli.clone()].into_iter().enumerate() {
        let user = user.clone();
        writers.spawn(async move {
            for i in 0..20 {
                let record = token_for(&user, &format!("w{n}-{i}")).map_err(|e| e.to_string())?;
                store.insert_token(&record).await.map_err(|e| format!("{e:?}"))?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(joined) = writers.join_next().await {
        joined??;
    }
    for n in 0..2 {
        for i in 0..20 {
            let digest = TokenDigest::of(&format!("w{n}-{i}"));
            assert!(server.token_by_digest(&digest).await?.is_some());
            assert!(cli.token_by_digest(&digest).await?.is_some());
        }
    }

    // The CLI deletes the user; the server no longer finds it or its tokens.
    cli.delete_service_user(&user.username).await?;
    assert_eq!(server.service_user_by_username(&user.username).await?, None);
    assert_eq!(server.token_by_digest(&TokenDigest::of("w0-0")).await?, None);
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
    patch.secret = Some(SecretDigest::of(&second));
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
    disabled.secret = None;
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
async fn two_stores_on_one_file_see_an_api_app_secret_replaced_at_once() -> TestResult {
    let (_dir, path) = db_file()?;
    let server = SqliteStore::open(&path).await?;
    let cli = SqliteStore::open(&path).await?;

    // The CLI creates a project and its app; the server sees both without restarting.
    let orders = project("orders")?;
    cli.create_project(&orders).await?;
    let (app, old) = app_with_secret(&orders, "orders-api")?;
    cli.create_api_app(&app).await?;
    assert_eq!(server.project_by_id(&orders.id).await?, Some(orders.clone()));
    let seen = server.api_app_by_client_id(&app.client_id).await?;
    assert_eq!(seen.as_ref(), Some(&app));

    // The CLI replaces the secret; the server rejects the old one at once.
    let new = ClientSecret::generate()?;
    let mut patch = ApiAppPatch::at(t0() + Duration::seconds(1));
    patch.secret = Some(SecretDigest::of(&new));
    let updated = cli.update_api_app(&app.client_id, &patch).await?;
    for _ in 0..20 {
        let stored = server.api_app_by_client_id(&app.client_id).await?.ok_or("app")?;
        assert_eq!(stored, updated);
        let digest = stored.secret.ok_or("secret")?;
        assert!(!digest.verify(old.expose()), "old app secret accepted after replacement");
        assert!(digest.verify(new.expose()));
    }

    // The client namespace is shared across stores: a username taken through one is
    // refused as a client ID through the other, and the other way round.
    let (user, _) = user_with_secret("billing-job")?;
    server.create_service_user(&user).await?;
    let clash = cli.create_api_app(&app_with_secret(&orders, "billing-job")?.0).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    let clash = server.create_service_user(&user_with_secret("orders-api")?.0).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");

    // A grant made through one store is seen through the other, and goes with its
    // user when the other store deletes it.
    let grant = RoleGrant {
        user_id: user.id.clone(),
        project_id: orders.id.clone(),
        role: RoleKey::new("writer")?,
    };
    assert!(cli.add_grant(&grant).await?);
    assert_eq!(server.grants_of_user(&user.id).await?, vec![grant]);
    server.delete_service_user(&user.username).await?;
    assert!(cli.grants_of_user(&user.id).await?.is_empty());

    // A JWT id revoked through one store is revoked for the other at once.
    let jti = TokenId::generate()?;
    server.revoke_jti(&jti, t0() + Duration::hours(1)).await?;
    assert!(cli.is_jti_revoked(&jti).await?);

    // The CLI deletes the app; the server no longer finds it.
    cli.delete_api_app(&app.client_id).await?;
    assert_eq!(server.api_app_by_client_id(&app.client_id).await?, None);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_keys_and_used_assertions_survive_reopening_and_are_shared() -> TestResult {
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

    // Reopened, and a second store on the same file (another process).
    let server = SqliteStore::open(&path).await?;
    let cli = SqliteStore::open(&path).await?;
    for store in [&server, &cli] {
        assert_eq!(store.client_key("z-early").await?, Some(early.clone()));
        assert_eq!(store.client_keys_of(&user_owner).await?, vec![early.clone(), late.clone()]);
        assert_eq!(store.client_keys_of(&app_owner).await?, vec![app_key.clone()]);
        assert!(!store.use_assertion(&user_owner.to_key(), "jti-1", expiry).await?, "a replay");
    }
    let clash = cli.add_client_key(&client_key(&app_owner, "a-late", 0)).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");

    // Both stores race to use one assertion id: exactly one is first.
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { server.clone() } else { cli.clone() };
        racers.spawn(async move { store.use_assertion("racer", "jti-2", expiry).await });
    }
    let mut firsts = 0;
    while let Some(joined) = racers.join_next().await {
        firsts += usize::from(joined??);
    }
    assert_eq!(firsts, 1, "exactly one use of a raced assertion id is first");

    // Changes through one store are seen through the other at once.
    let added = client_key(&app_owner, "app-key-2", 30);
    cli.add_client_key(&added).await?;
    assert_eq!(server.client_key("app-key-2").await?, Some(added));
    assert!(server.remove_client_key(&user_owner, "a-late").await?);
    assert_eq!(cli.client_keys_of(&user_owner).await?, vec![early]);
    cli.delete_api_app(&app.client_id).await?;
    assert!(server.client_keys_of(&app_owner).await?.is_empty());
    assert_eq!(server.client_key("app-key").await?, None);
    let orphan = server.add_client_key(&client_key(&app_owner, "too-late", 0)).await;
    assert!(matches!(orphan, Err(StoreError::NotFound(_))), "{orphan:?}");
    server.delete_service_user(&user.username).await?;
    assert_eq!(cli.client_key("z-early").await?, None);

    // Purging through one store frees the ids for both, and counts them.
    assert_eq!(cli.purge_expired_tokens(expiry).await?, 2);
    assert!(server.use_assertion(&user_owner.to_key(), "jti-1", expiry).await?);
    assert!(!cli.use_assertion(&user_owner.to_key(), "jti-1", expiry).await?);
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
async fn the_organization_is_stored_once_for_every_store_on_the_file() -> TestResult {
    let (_dir, path) = db_file()?;
    let server = SqliteStore::open(&path).await?;
    let cli = SqliteStore::open(&path).await?;
    assert_eq!(server.organization().await?, None);

    // Both stores race to store their own candidate: all get the same one.
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { server.clone() } else { cli.clone() };
        let candidate = organization(&format!("Racer {i}"), &format!("racer-{i}.example"))?;
        racers.spawn(async move { store.init_organization(&candidate).await });
    }
    let mut stored = Vec::new();
    while let Some(joined) = racers.join_next().await {
        stored.push(joined??);
    }
    let first = stored[0].clone();
    assert!(stored.iter().all(|org| *org == first), "racing inits disagree: {stored:#?}");
    assert_eq!(cli.organization().await?, Some(first.clone()));

    // An update through one store is seen through the other at once, and kept.
    let name = DisplayName::new("Renamed")?;
    let domain = Domain::new("renamed.example")?;
    let updated = cli.update_organization(&name, &domain).await?;
    assert_eq!(updated, Organization { name, primary_domain: domain, ..first });
    assert_eq!(server.organization().await?, Some(updated.clone()));
    drop((server, cli));
    let reopened = SqliteStore::open(&path).await?;
    assert_eq!(reopened.organization().await?, Some(updated.clone()));
    let again = reopened.init_organization(&organization("Late", "late.example")?).await?;
    assert_eq!(again, updated, "a later init returns the stored organization");
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
