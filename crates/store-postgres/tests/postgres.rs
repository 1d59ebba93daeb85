//! Behaviour specific to the PostgreSQL backend: migrations, schemas, recovery from
//! broken connections, bad rows, what the schema holds, and the batching of group
//! commits and lookups (also through two stores on one schema). The contracts of
//! the storage traits, for one store and for several stores (instances) on one
//! schema, are checked by the conformance suites (`tests/conformance.rs`).
//!
//! The tests that need a server read `TESSERA_TEST_POSTGRES_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/test`); without it they print that they were
//! skipped and pass. Each runs on fresh schemas of its own.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tessera_scope::ScopeSet;
use tessera_store::prelude::*;
use tessera_store::{
    ApiApp, ApiAppPatch, AppId, ClientId, ClientKey, ClientSecret, Credentials, DisplayName,
    Domain, KeyOwner, MemoryStore, Organization, Project, ProjectId, RoleClaims, SecretDigest,
    ServiceUser, ServiceUserPatch, SigningAlgorithm, SigningKeyRecord, StoreError, TokenDigest,
    TokenId, TokenRecord, UserId, Username,
};
use tessera_store_postgres::testkit::{TestSchema, url_or_skip};
use tessera_store_postgres::{PoolOptions, PostgresStore, SCHEMA_VERSION};
use time::OffsetDateTime;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The URL of the test server, or return from the test after saying it was skipped.
macro_rules! url_or_return {
    ($test:literal) => {
        match url_or_skip($test) {
            Some(url) => url,
            None => return Ok(()),
        }
    };
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1_700_000_000)
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
        expires_at: t0() + time::Duration::hours(1),
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

fn signing_key(kid: &str, offset_secs: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_owned(),
        algorithm: SigningAlgorithm::Es256,
        public_jwk: format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
        sealed_private_key: vec![1, 2, 3],
        created_at: t0(),
        activates_at: t0() + time::Duration::seconds(offset_secs),
    }
}

/// Another session holding this schema's signing-key lock (class "tes" + 2, see
/// lib.rs), and an `insert_signing_key` of the store that waits for it, occupying one
/// of the store's connections until [`release`](Self::release).
struct KeyLockHeld {
    blocker: tokio_postgres::Client,
    waiting: tokio::task::JoinHandle<Result<bool, StoreError>>,
}

impl KeyLockHeld {
    /// Takes the lock, starts the waiting insert of key `kid`, and gives it time to
    /// reach the lock.
    async fn take(
        schema: &TestSchema,
        store: &PostgresStore,
        kid: &str,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let blocker = schema.client().await?;
        blocker.batch_execute("BEGIN").await?;
        blocker
            .execute(
                "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
                &[&0x7465_7302_i32],
            )
            .await?;
        let waiting = {
            let (store, key) = (store.clone(), signing_key(kid, 0));
            tokio::spawn(async move { store.insert_signing_key(&key, None).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Self { blocker, waiting })
    }

    /// Frees the lock; the waiting insert then goes on.
    async fn release(
        self,
    ) -> Result<tokio::task::JoinHandle<Result<bool, StoreError>>, Box<dyn std::error::Error>> {
        self.blocker.batch_execute("ROLLBACK").await?;
        Ok(self.waiting)
    }
}

fn client_key(owner: &KeyOwner, key_id: &str, offset_secs: i64) -> ClientKey {
    ClientKey {
        key_id: key_id.to_owned(),
        owner: owner.clone(),
        algorithm: SigningAlgorithm::Es256,
        public_jwk: format!(r#"{{"kty":"EC","crv":"P-256","kid":"{key_id}"}}"#),
        created_at: t0() + time::Duration::seconds(offset_secs),
        expires_at: Some(t0() + time::Duration::days(90)),
    }
}

/// The service user `name` of `store`, as a key owner.
async fn owner_named(
    store: &dyn Store,
    name: &str,
) -> Result<KeyOwner, Box<dyn std::error::Error>> {
    let user = store.service_user_by_username(&Username::new(name)?).await?.ok_or("no user")?;
    Ok(KeyOwner::ServiceUser(user.id))
}

async fn migration_rows(schema: &TestSchema) -> Result<i64, Box<dyn std::error::Error>> {
    let client = schema.client().await?;
    Ok(client.query_one("SELECT count(*) FROM schema_migrations", &[]).await?.try_get(0)?)
}

/// `url` with `application_name` set, so a test can find its store's connections.
fn with_application_name(url: &str, name: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}application_name={name}")
    } else {
        format!("{url} application_name={name}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent() -> TestResult {
    let url = url_or_return!("migrations_are_idempotent");
    let schema = TestSchema::create(&url).await?;
    let (user, _) = user_with_secret("kept")?;
    schema.store().await?.create_service_user(&user).await?;
    assert_eq!(migration_rows(&schema).await?, i64::try_from(SCHEMA_VERSION)?);
    let store = schema.store().await?;
    assert_eq!(
        migration_rows(&schema).await?,
        i64::try_from(SCHEMA_VERSION)?,
        "connecting again must apply nothing"
    );
    assert_eq!(store.list_service_users().await?, vec![user]);
    assert_eq!(store.list_projects().await?, vec![Project::reserved()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_to_a_fresh_schema_are_safe() -> TestResult {
    let url = url_or_return!("concurrent_connects_to_a_fresh_schema_are_safe");
    for round in 0..4 {
        // Even rounds: an empty schema; odd rounds: no schema at all yet.
        let schema = if round % 2 == 0 {
            TestSchema::create(&url).await?
        } else {
            TestSchema::reserve(&url)?
        };
        let mut connects = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let (url, options) = (url.clone(), schema.options());
            connects.spawn(async move { PostgresStore::connect_with(&url, options).await });
        }
        let mut stores = Vec::new();
        while let Some(joined) = connects.join_next().await {
            stores.push(joined?.map_err(|e| format!("round {round}: {e:?}"))?);
        }
        assert_eq!(
            migration_rows(&schema).await?,
            i64::try_from(SCHEMA_VERSION)?,
            "round {round}: each migration once"
        );
        let (user, _) = user_with_secret("after-race")?;
        stores[0].create_service_user(&user).await?;
        for store in &stores {
            assert_eq!(store.service_user_by_id(&user.id).await?, Some(user.clone()));
            assert_eq!(store.list_projects().await?, vec![Project::reserved()]);
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() -> TestResult {
    let url = url_or_return!("a_newer_schema_is_refused");
    let schema = TestSchema::create(&url).await?;
    schema.store().await?;
    schema
        .client()
        .await?
        .execute("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)", &[])
        .await?;
    let result = schema.store().await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_unavailable() -> TestResult {
    // Needs no server: nothing listens on port 1.
    let options = PoolOptions::default().with_connect_timeout(Duration::from_secs(2));
    let connect = PostgresStore::connect_with("postgres://postgres@127.0.0.1:1/test", options);
    let result = tokio::time::timeout(Duration::from_secs(20), connect)
        .await
        .map_err(|_| "connecting to an unreachable database must not hang")?;
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    assert!(result.as_ref().err().is_some_and(StoreError::is_transient));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_options_are_refused_before_connecting() -> TestResult {
    // Needs no server: the options are checked first.
    for schema in ["Tessera", "a-b", "x; DROP TABLE y", "pg_catalog", ""] {
        let options = PoolOptions::default().with_schema(schema);
        let result =
            PostgresStore::connect_with("postgres://postgres@127.0.0.1:1/test", options).await;
        assert!(matches!(result, Err(StoreError::Backend(_))), "{schema:?}: {result:?}");
    }
    let options = PoolOptions::default().with_max_size(0);
    let result = PostgresStore::connect_with("postgres://postgres@127.0.0.1:1/test", options).await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "an empty pool: {result:?}");
    let result = PostgresStore::connect("not a url = =").await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
    Ok(())
}

/// Looks `user` up until it is found: each of the (at most 2) pooled connections
/// that the server ended may fail one operation, with Unavailable, before the pool
/// replaces it.
async fn recovers(store: &PostgresStore, user: &ServiceUser, round: usize) -> TestResult {
    let mut failures = 0;
    loop {
        match store.service_user_by_username(&user.username).await {
            Ok(found) => {
                assert_eq!(found.as_ref(), Some(user));
                return Ok(());
            }
            // A connection the server ended is noticed by its driver task a moment
            // after the failing query returns, so a broken connection can be handed
            // out once more; a few failures, then none, is recovery.
            Err(StoreError::Unavailable(_)) if failures < 5 => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(format!("round {round}, after {failures} failures: {e:?}").into()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_recovers_when_its_connections_are_killed() -> TestResult {
    let url = url_or_return!("the_store_recovers_when_its_connections_are_killed");
    let schema = TestSchema::create(&url).await?;
    let app_name = schema.name().to_owned();
    let options = schema.options().with_max_size(2);
    let store =
        PostgresStore::connect_with(&with_application_name(&url, &app_name), options).await?;
    let (user, _) = user_with_secret("survivor")?;
    store.create_service_user(&user).await?;
    let admin = schema.client().await?;
    let kill = || async {
        let killed: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&app_name],
            )
            .await?
            .try_get(0)?;
        Ok::<i64, Box<dyn std::error::Error>>(killed)
    };
    for round in 0..3 {
        // An operation in flight when the server ends its connection (as a restart
        // or a failover would) fails with Unavailable: it waits for the signing-key
        // lock of this schema, held by another session (class "tes" + 2, see lib.rs).
        let mut held = KeyLockHeld::take(&schema, &store, &format!("k{round}")).await?;
        assert!(kill().await? >= 1, "round {round}: no connection of the store was found");
        let result = tokio::time::timeout(Duration::from_secs(10), &mut held.waiting).await??;
        assert!(matches!(result, Err(StoreError::Unavailable(_))), "round {round}: {result:?}");
        held.release().await?;
        recovers(&store, &user, round).await?;

        // Idle connections ended by the server are not handed out for long either.
        // (Open two: one of the old ones may still fail once here.)
        let list = async { store.list_service_users().await.map(drop) };
        let (a, b) = tokio::join!(store.ping(), list);
        for result in [a, b] {
            assert!(matches!(result, Ok(()) | Err(StoreError::Unavailable(_))), "{result:?}");
        }
        assert!(kill().await? >= 1, "round {round}: no connection of the store was found");
        recovers(&store, &user, round).await?;
        // The pool's other connection recovers the same way.
        recovers(&store, &user, round).await?;
        recovers(&store, &user, round).await?;
        store.ping().await?;
        assert_eq!(store.list_service_users().await?, vec![user.clone()]);
        assert!(store.signing_keys().await?.is_empty(), "the broken insert stored nothing");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_is_unavailable_after_the_wait_timeout() -> TestResult {
    let url = url_or_return!("a_full_pool_is_unavailable_after_the_wait_timeout");
    let schema = TestSchema::create(&url).await?;
    let options = schema.options().with_max_size(1).with_wait_timeout(Duration::from_millis(300));
    let store = PostgresStore::connect_with(&url, options).await?;
    // The store's only connection waits in insert_signing_key.
    let held = KeyLockHeld::take(&schema, &store, "k1").await?;
    assert!(!held.waiting.is_finished(), "the insert must wait for the lock");
    let result = store.ping().await;
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    assert!(held.release().await?.await??, "the insert goes through once the lock is free");
    store.ping().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_on_different_schemas_are_isolated() -> TestResult {
    let url = url_or_return!("stores_on_different_schemas_are_isolated");
    let (first, second) = (TestSchema::create(&url).await?, TestSchema::create(&url).await?);
    let (a, b) = (first.store().await?, second.store().await?);
    assert_eq!(a.schema(), Some(first.name()));
    let (user_a, _) = user_with_secret("same-name")?;
    let (user_b, _) = user_with_secret("same-name")?;
    a.create_service_user(&user_a).await?;
    assert_eq!(b.service_user_by_username(&user_a.username).await?, None);
    b.create_service_user(&user_b).await?;
    assert_eq!(a.service_user_by_username(&user_a.username).await?, Some(user_a));
    assert_eq!(b.service_user_by_username(&user_b.username).await?, Some(user_b));
    assert!(a.insert_signing_key(&signing_key("k1", 0), None).await?);
    assert!(b.insert_signing_key(&signing_key("k1", 0), None).await?, "keys are per schema");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_ordered_by_bytes_like_the_memory_store() -> TestResult {
    let url = url_or_return!("lists_are_ordered_by_bytes_like_the_memory_store");
    let schema = TestSchema::create(&url).await?;
    let postgres = schema.store().await?;
    let memory = MemoryStore::new();
    let stores: [&dyn Store; 2] = [&postgres, &memory];
    let names = ["bravo", "Zulu", "alpha", "_under", "Alpha", "9lives", "a.b", "a-b", "a@b"];
    for store in stores {
        for name in names {
            store.create_service_user(&user_with_secret(name)?.0).await?;
        }
        for id in ["b", "Z", "a_b", "a-b", "A"] {
            store.create_project(&project(id)?).await?;
            store.create_api_app(&app_with_secret(&project(id)?, &format!("app.{id}"))?.0).await?;
        }
        let mut latest: Option<String> = None;
        for kid in ["b", "B", "a", "_"] {
            assert!(store.insert_signing_key(&signing_key(kid, 0), latest.as_deref()).await?);
            latest = store.signing_keys().await?.last().map(|k| k.kid.clone());
        }
        // Client keys created at the same second are ordered by key id.
        let owner = owner_named(store, "bravo").await?;
        for kid in ["b", "B", "a", "_", "a.b", "a-b"] {
            store.add_client_key(&client_key(&owner, kid, 0)).await?;
        }
    }
    let users = |s: Vec<ServiceUser>| s.into_iter().map(|u| u.username.to_string()).collect();
    let projects = |s: Vec<Project>| s.into_iter().map(|p| p.id.to_string()).collect();
    let apps = |s: Vec<ApiApp>| s.into_iter().map(|a| a.client_id.to_string()).collect();
    let keys = |s: Vec<SigningKeyRecord>| s.into_iter().map(|k| k.kid).collect();
    let expected: Vec<String> = users(memory.list_service_users().await?);
    assert_eq!(users(postgres.list_service_users().await?), expected);
    let expected: Vec<String> = projects(memory.list_projects().await?);
    assert_eq!(projects(postgres.list_projects().await?), expected);
    let expected: Vec<String> = apps(memory.list_api_apps().await?);
    assert_eq!(apps(postgres.list_api_apps().await?), expected);
    let expected: Vec<String> = keys(memory.signing_keys().await?);
    assert_eq!(keys(postgres.signing_keys().await?), expected);
    let client_keys = |s: Vec<ClientKey>| s.into_iter().map(|k| k.key_id).collect();
    let owner = owner_named(&memory, "bravo").await?;
    let expected: Vec<String> = client_keys(memory.client_keys_of(&owner).await?);
    let owner = owner_named(&postgres, "bravo").await?;
    assert_eq!(client_keys(postgres.client_keys_of(&owner).await?), expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_do_not_parse_are_corrupt() -> TestResult {
    let url = url_or_return!("rows_that_do_not_parse_are_corrupt");
    let schema = TestSchema::create(&url).await?;
    let store = schema.store().await?;
    let (user, _) = user_with_secret("fine")?;
    store.create_service_user(&user).await?;
    let token = token_for(&user, "t")?;
    store.insert_token(&token).await?;
    let jwt = token_for(&user, "u")?;
    store.insert_token(&jwt).await?;
    let client = schema.client().await?;
    let roles: String =
        client.query_one("SELECT roles FROM tokens LIMIT 1", &[]).await?.try_get(0)?;
    assert_eq!(roles, "{}", "no roles are stored as an empty JSON object");
    client.execute("UPDATE service_users SET access_token_type = 'paper'", &[]).await?;
    client
        .execute("UPDATE tokens SET scopes = 'two  spaces' WHERE jti = $1", &[&token.jti.as_str()])
        .await?;
    client
        .execute(
            "UPDATE tokens SET roles = '[\"not\", \"a map\"]' WHERE jti = $1",
            &[&jwt.jti.as_str()],
        )
        .await?;
    let result = store.service_user_by_username(&user.username).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    let result = store.list_service_users().await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    let result = store.token_by_digest(&token.digest).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    let result = store.token_by_digest(&jwt.digest).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    client
        .execute("UPDATE service_users SET access_token_type = 'jwt', secret_digest = '\\x00'", &[])
        .await?;
    let result = store.service_user_by_id(&user.id).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "a short digest: {result:?}");
    store.ping().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_unknown_users_are_refused() -> TestResult {
    let url = url_or_return!("tokens_of_unknown_users_are_refused");
    let schema = TestSchema::create(&url).await?;
    let store = schema.store().await?;
    let (ghost, _) = user_with_secret("ghost")?;
    let result = store.insert_token(&token_for(&ghost, "orphan")?).await;
    assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_has_an_index_for_every_lookup() -> TestResult {
    let url = url_or_return!("the_schema_has_an_index_for_every_lookup");
    let schema = TestSchema::create(&url).await?;
    let store = schema.store().await?;
    let client = schema.client().await?;
    let definitions: Vec<String> = client
        .query("SELECT indexdef FROM pg_indexes WHERE schemaname = $1", &[&schema.name()])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let name = schema.name();
    for (unique, table, columns) in [
        (true, "service_users", "id"),
        (true, "service_users", "username"),
        (true, "tokens", "digest"),
        (false, "tokens", "expires_at"),
        (false, "tokens", "user_id"),
        (true, "revoked_jtis", "jti"),
        (false, "revoked_jtis", "expires_at"),
        (true, "signing_keys", "kid"),
        (false, "signing_keys", "activates_at, kid"),
        (true, "projects", "id"),
        (true, "api_apps", "client_id"),
        (true, "api_apps", "app_id"),
        (false, "api_apps", "project_id"),
        (true, "role_grants", "user_id, project_id, role"),
        (false, "role_grants", "project_id"),
        (true, "client_keys", "key_id"),
        (false, "client_keys", "owner"),
        (true, "used_assertions", "issuer, jti"),
        (false, "used_assertions", "expires_at"),
        (true, "schema_migrations", "version"),
        (true, "organization", "singleton"),
        (true, "project_roles", "project_id, key"),
        (false, "service_users", "created_at, id"),
    ] {
        let kind = if unique { "CREATE UNIQUE INDEX" } else { "CREATE INDEX" };
        let suffix = format!(" ON {name}.{table} USING btree ({columns})");
        assert!(
            definitions.iter().any(|d| d.starts_with(kind) && d.ends_with(&suffix)),
            "no {kind} on {table} ({columns}) in {definitions:#?}"
        );
    }
    // Token records are not looked up by id in any request: no index on `jti`.
    let on_jti = format!(" ON {name}.tokens USING btree (jti)");
    assert!(
        !definitions.iter().any(|d| d.ends_with(&on_jti)),
        "an index on tokens (jti) in {definitions:#?}"
    );
    // The reserved project is there from the start, as in every store.
    assert_eq!(store.project_by_id(&ProjectId::reserved()).await?, Some(Project::reserved()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_from_version_3_keeps_tokens_and_drops_the_jti_constraint() -> TestResult {
    let url = url_or_return!("upgrading_from_version_3_keeps_tokens_and_drops_the_jti_constraint");
    let schema = TestSchema::create_at_version(&url, 3).await?;
    assert_eq!(migration_rows(&schema).await?, 3);
    let client = schema.client().await?;
    let jti_constraints = || async {
        let count: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_constraint \
                 WHERE conrelid = 'tokens'::regclass AND conname = 'tokens_jti_key'",
                &[],
            )
            .await?
            .try_get(0)?;
        Ok::<i64, Box<dyn std::error::Error>>(count)
    };
    assert_eq!(jti_constraints().await?, 1, "version 3 has the constraint");
    client
        .batch_execute(
            "INSERT INTO service_users (id, username, display_name, access_token_type, \
             token_lifetime_secs, secret_digest, enabled, created_at, updated_at) \
             VALUES ('100000000000000001', 'old', 'old', 'opaque', 60, NULL, true, 0, 0);
             INSERT INTO tokens VALUES (decode(repeat('01', 32), 'hex'), \
             '00000000000000000000000000000001', '100000000000000001', 'old', 'openid', \
             '[\"old\"]', 0, 60, 30, '{}');",
        )
        .await?;

    let store = schema.store().await?;
    assert_eq!(migration_rows(&schema).await?, i64::try_from(SCHEMA_VERSION)?);
    assert_eq!(jti_constraints().await?, 0, "the constraint is dropped");
    let kept = store.token_by_digest(&TokenDigest::from_bytes([1; 32])).await?.ok_or("token")?;
    assert_eq!(kept.jti.as_str(), "00000000000000000000000000000001");
    assert_eq!(kept.audience, ["old"]);
    assert_eq!((kept.expires_at.unix_timestamp(), kept.revoked_at), (60, Some(time_at(30))));
    // Ids are no longer unique in the table (they are random, so never repeated in
    // practice); the digest still is.
    let mut same_id = kept.clone();
    same_id.digest = TokenDigest::of("another token");
    store.insert_token(&same_id).await?;
    let result = store.insert_token(&kept).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    // The foreign key still holds: deleting the user deletes its tokens.
    store.delete_service_user(&kept.client_id).await?;
    let left: i64 = client.query_one("SELECT count(*) FROM tokens", &[]).await?.try_get(0)?;
    assert_eq!(left, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_from_version_4_gives_api_apps_app_ids() -> TestResult {
    let url = url_or_return!("upgrading_from_version_4_gives_api_apps_app_ids");
    let schema = TestSchema::create_at_version(&url, 4).await?;
    assert_eq!(migration_rows(&schema).await?, 4);
    let client = schema.client().await?;
    client
        .batch_execute(
            "INSERT INTO projects (id, name, created_at) VALUES ('orders', 'Orders', 0);
             INSERT INTO api_apps (client_id, project_id, name, secret_digest, enabled, \
             created_at, updated_at, previous_secret_digest, previous_secret_expires_at) \
             VALUES ('orders-api', 'orders', 'Orders API', decode(repeat('ab', 32), 'hex'), \
             true, 10, 20, NULL, NULL), \
             ('other-api', 'zitadel', 'Other API', NULL, false, 30, 40, \
             decode(repeat('cd', 32), 'hex'), 50);",
        )
        .await?;

    let store = schema.store().await?;
    assert_eq!(migration_rows(&schema).await?, i64::try_from(SCHEMA_VERSION)?);
    let apps = store.list_api_apps().await?;
    assert_eq!(apps.len(), 2, "the upgrade keeps the apps");
    for app in &apps {
        let id = app.app_id.as_str();
        assert!(id.len() == 18 && id.bytes().all(|b| b.is_ascii_digit()), "{id}");
        // The batched lookup reads the app id too.
        assert_eq!(store.api_app_by_client_id(&app.client_id).await?.as_ref(), Some(app));
    }
    assert_ne!(apps[0].app_id, apps[1].app_id, "each app has an app id of its own");
    let orders = &apps[0];
    assert_eq!((orders.client_id.as_str(), orders.name.as_str()), ("orders-api", "Orders API"));
    // The unsalted digest of version 4, salted by migration 7 (it verifies the same
    // secret).
    let stored = orders.credentials.secret.ok_or("a secret")?;
    assert_eq!(stored, SecretDigest::from_unsalted_with_salt(*stored.salt(), &[0xab; 32]));
    assert_eq!(apps[1].credentials.previous.map(|p| p.expires_at), Some(time_at(50)));

    // The column is NOT NULL, and another app may not take a stored app id.
    let nullable: String = client
        .query_one(
            "SELECT is_nullable FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = 'api_apps' AND column_name = 'app_id'",
            &[&schema.name()],
        )
        .await?
        .try_get(0)?;
    assert_eq!(nullable, "NO");
    let clash = ApiApp { client_id: ClientId::new("clash-api")?, ..orders.clone() };
    let result = store.create_api_app(&clash).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");

    // The organization can be stored now.
    assert_eq!(store.organization().await?, None);
    let org = organization("Acme", "acme.example")?;
    assert_eq!(store.init_organization(&org).await?, org);
    assert_eq!(schema.store().await?.organization().await?, Some(org));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_from_version_5_gives_users_no_revocation_cut_off() -> TestResult {
    let url = url_or_return!("upgrading_from_version_5_gives_users_no_revocation_cut_off");
    let schema = TestSchema::create_at_version(&url, 5).await?;
    assert_eq!(migration_rows(&schema).await?, 5);
    let client = schema.client().await?;
    client
        .batch_execute(
            "INSERT INTO service_users (id, username, display_name, access_token_type, \
             token_lifetime_secs, secret_digest, enabled, created_at, updated_at, \
             previous_secret_digest, previous_secret_expires_at) \
             VALUES ('100000000000000001', 'old', 'Old', 'jwt', 60, NULL, true, 10, 20, \
             NULL, NULL), \
             ('100000000000000002', 'older', 'Older', 'opaque', 600, \
             decode(repeat('ab', 32), 'hex'), false, 30, 40, \
             decode(repeat('cd', 32), 'hex'), 50);",
        )
        .await?;

    let store = schema.store().await?;
    assert_eq!(migration_rows(&schema).await?, i64::try_from(SCHEMA_VERSION)?);
    let cut_offs: Vec<(String, Option<i64>)> = client
        .query("SELECT username, tokens_revoked_before FROM service_users ORDER BY username", &[])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    assert_eq!(
        cut_offs,
        [("old".to_owned(), None), ("older".to_owned(), None)],
        "existing users have no cut-off"
    );
    let column = client
        .query_one(
            "SELECT is_nullable, column_default, data_type FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = 'service_users' \
             AND column_name = 'tokens_revoked_before'",
            &[&schema.name()],
        )
        .await?;
    let column: (&str, Option<&str>, &str) =
        (column.try_get(0)?, column.try_get(1)?, column.try_get(2)?);
    assert_eq!(column, ("YES", None, "bigint"), "a nullable column without a default");

    // They read back without one, through the list and the batched lookups, their
    // other columns kept.
    let users = store.list_service_users().await?;
    assert_eq!(users.len(), 2, "the upgrade keeps the users");
    assert!(users.iter().all(|u| u.tokens_revoked_before.is_none()), "{users:#?}");
    assert_eq!(users[1].credentials.previous.map(|p| p.expires_at), Some(time_at(50)));
    assert_eq!((users[0].display_name.as_str(), users[0].updated_at), ("Old", time_at(20)));
    let names: Vec<Username> = users.iter().map(|u| u.username.clone()).collect();
    for result in at_once(&store, &[names.clone(), names].concat(), user_by_username).await? {
        let user = result?.ok_or("a user went missing")?;
        assert!(users.contains(&user), "{user:?}");
    }
    for user in &users {
        assert_eq!(store.service_user_by_id(&user.id).await?.as_ref(), Some(user));
    }

    // A cut-off can be set now, and is stored in unix seconds.
    let mut patch = ServiceUserPatch::at(t0());
    patch.tokens_revoked_before = Some(t0() + time::Duration::seconds(1));
    let updated = store.update_service_user(&users[0].username, &patch).await?;
    assert_eq!(updated.tokens_revoked_before, patch.tokens_revoked_before);
    let stored: Option<i64> = client
        .query_one("SELECT tokens_revoked_before FROM service_users WHERE username = 'old'", &[])
        .await?
        .try_get(0)?;
    assert_eq!(stored, Some(1_700_000_001));
    assert_eq!(schema.store().await?.service_user_by_id(&users[0].id).await?, Some(updated));
    Ok(())
}

fn time_at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(secs)
}

/// Starts every insert at once, so that most of them wait for a group commit
/// together, and returns each result in the order of `records`.
async fn insert_at_once(
    store: &PostgresStore,
    records: &[TokenRecord],
) -> Result<Vec<Result<(), StoreError>>, Box<dyn std::error::Error>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, record) in records.iter().enumerate() {
        let (store, record) = (store.clone(), record.clone());
        tasks.spawn(async move { (i, store.insert_token(&record).await) });
    }
    let mut results: Vec<Option<Result<(), StoreError>>> = records.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined?;
        results[i] = Some(result);
    }
    Ok(results
        .into_iter()
        .map(|r| r.ok_or("a task returned no result"))
        .collect::<Result<_, _>>()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_inserts_are_all_committed() -> TestResult {
    let url = url_or_return!("many_concurrent_inserts_are_all_committed");
    let schema = TestSchema::create(&url).await?;
    let (server, other) = (schema.store().await?, schema.store().await?);
    let (user, _) = user_with_secret("busy")?;
    server.create_service_user(&user).await?;
    let records: Vec<TokenRecord> =
        (0..200).map(|i| token_for(&user, &format!("busy-{i}"))).collect::<Result<_, _>>()?;
    // Two stores (instances) at once, each with its own group commits.
    let (a, b) = records.split_at(100);
    let (from_server, from_other) =
        tokio::join!(insert_at_once(&server, a), insert_at_once(&other, b));
    for result in from_server?.into_iter().chain(from_other?) {
        result?;
    }
    for record in &records {
        assert_eq!(other.token_by_digest(&record.digest).await?.as_ref(), Some(record));
        assert_eq!(server.token_by_digest(&record.digest).await?.as_ref(), Some(record));
    }
    let client = schema.client().await?;
    let count: i64 = client.query_one("SELECT count(*) FROM tokens", &[]).await?.try_get(0)?;
    assert_eq!(count, 200);
    // More than one group's worth of records at once (groups hold at most 512).
    let records: Vec<TokenRecord> =
        (0..1200).map(|i| token_for(&user, &format!("burst-{i}"))).collect::<Result<_, _>>()?;
    for result in insert_at_once(&server, &records).await? {
        result?;
    }
    let count: i64 = client.query_one("SELECT count(*) FROM tokens", &[]).await?.try_get(0)?;
    assert_eq!(count, 1400);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_in_a_group_commit_fails_alone() -> TestResult {
    let url = url_or_return!("a_conflict_in_a_group_commit_fails_alone");
    let schema = TestSchema::create(&url).await?;
    let store = schema.store().await?;
    let (user, _) = user_with_secret("grouped")?;
    store.create_service_user(&user).await?;
    let taken = token_for(&user, "taken")?;
    store.insert_token(&taken).await?;
    for round in 0..5 {
        let mut records: Vec<TokenRecord> = (0..40)
            .map(|i| token_for(&user, &format!("grouped-{round}-{i}")))
            .collect::<Result<_, _>>()?;
        // The stored digest again, and one digest twice in the same group.
        records[20] = token_for(&user, "taken")?;
        records[30] = token_for(&user, &format!("grouped-{round}-10"))?;
        let results = insert_at_once(&store, &records).await?;
        for (i, result) in results.iter().enumerate() {
            match i {
                20 => assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}"),
                10 | 30 => {}
                _ => assert!(result.is_ok(), "round {round}, record {i}: {result:?}"),
            }
        }
        // Of the two records of one digest, exactly one is stored, and it is the one
        // whose insert succeeded.
        let twice = [&results[10], &results[30]];
        assert_eq!(twice.iter().filter(|r| r.is_ok()).count(), 1, "round {round}: {twice:?}");
        assert!(twice.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict(_)))));
        let winner = if results[10].is_ok() { &records[10] } else { &records[30] };
        for (i, record) in records.iter().enumerate() {
            let stored = store.token_by_digest(&record.digest).await?;
            match i {
                20 => assert_eq!(stored.as_ref(), Some(&taken), "the first record is kept"),
                10 | 30 => assert_eq!(stored.as_ref(), Some(winner)),
                _ => assert_eq!(stored.as_ref(), Some(record), "round {round}: record {i}"),
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_a_missing_user_in_a_group_commit_fails_alone() -> TestResult {
    let url = url_or_return!("a_token_of_a_missing_user_in_a_group_commit_fails_alone");
    let schema = TestSchema::create(&url).await?;
    let store = schema.store().await?;
    let (user, _) = user_with_secret("present")?;
    store.create_service_user(&user).await?;
    let (ghost, _) = user_with_secret("ghost")?;
    for round in 0..5 {
        let mut records: Vec<TokenRecord> = (0..40)
            .map(|i| token_for(&user, &format!("kept-{round}-{i}")))
            .collect::<Result<_, _>>()?;
        records[7] = token_for(&ghost, &format!("orphan-{round}-7"))?;
        records[33] = token_for(&ghost, &format!("orphan-{round}-33"))?;
        let results = insert_at_once(&store, &records).await?;
        for (i, (record, result)) in records.iter().zip(&results).enumerate() {
            let stored = store.token_by_digest(&record.digest).await?;
            if i == 7 || i == 33 {
                assert!(matches!(result, Err(StoreError::NotFound(_))), "{i}: {result:?}");
                assert_eq!(stored, None, "round {round}: orphan {i} was stored");
            } else {
                assert!(result.is_ok(), "round {round}, record {i}: {result:?}");
                assert_eq!(stored.as_ref(), Some(record), "round {round}: record {i} was lost");
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_a_user_deleted_meanwhile_fail_and_the_others_commit() -> TestResult {
    let url = url_or_return!("tokens_of_a_user_deleted_meanwhile_fail_and_the_others_commit");
    let schema = TestSchema::create(&url).await?;
    let (server, cli) = (schema.store().await?, schema.store().await?);
    let (kept, _) = user_with_secret("kept")?;
    server.create_service_user(&kept).await?;
    for round in 0..5 {
        let (doomed, _) = user_with_secret(&format!("doomed-{round}"))?;
        server.create_service_user(&doomed).await?;
        let records: Vec<TokenRecord> = (0..40)
            .map(|i| {
                let user = if i % 4 == 0 { &doomed } else { &kept };
                token_for(user, &format!("r{round}-{i}"))
            })
            .collect::<Result<_, _>>()?;
        let (inserted, deleted) = tokio::join!(
            insert_at_once(&server, &records),
            cli.delete_service_user(&doomed.username)
        );
        deleted?;
        for (i, (record, result)) in records.iter().zip(inserted?).enumerate() {
            let stored = server.token_by_digest(&record.digest).await?;
            if i % 4 == 0 {
                // Before the delete: stored, then deleted with the user; after it:
                // refused. Never stored for a user that is gone.
                assert!(matches!(result, Ok(()) | Err(StoreError::NotFound(_))), "{result:?}");
                assert_eq!(stored, None, "round {round}: a token outlived its user");
            } else {
                result.map_err(|e| format!("round {round}, record {i}: {e:?}"))?;
                assert_eq!(stored.as_ref(), Some(record), "round {round}: record {i} was lost");
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_fail_with_unavailable_when_the_database_is_gone_and_recover() -> TestResult {
    let url = url_or_return!("inserts_fail_with_unavailable_when_the_database_is_gone_and_recover");
    let schema = TestSchema::create(&url).await?;
    let options = schema.options().with_max_size(1).with_wait_timeout(Duration::from_millis(300));
    let store = PostgresStore::connect_with(&url, options).await?;
    let (user, _) = user_with_secret("waiting")?;
    store.create_service_user(&user).await?;
    // The store's only connection waits in insert_signing_key, and the group commit
    // finds no free connection in time.
    let held = KeyLockHeld::take(&schema, &store, "k1").await?;
    let records: Vec<TokenRecord> =
        (0..10).map(|i| token_for(&user, &format!("starved-{i}"))).collect::<Result<_, _>>()?;
    for result in insert_at_once(&store, &records).await? {
        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    }
    assert!(held.release().await?.await??);
    // The flusher is not stuck: the same records go through now.
    for result in insert_at_once(&store, &records).await? {
        result?;
    }
    for record in &records {
        assert_eq!(store.token_by_digest(&record.digest).await?.as_ref(), Some(record));
    }
    Ok(())
}

/// Starts `look_up` of every key at once on `store`, so that most of them wait for a
/// batch together, and returns each result in the order of `keys`.
async fn at_once<K, T, F, Fut>(
    store: &PostgresStore,
    keys: &[K],
    look_up: F,
) -> Result<Vec<Result<T, StoreError>>, Box<dyn std::error::Error>>
where
    K: Clone + Send + 'static,
    T: Send + 'static,
    F: Fn(PostgresStore, K) -> Fut,
    Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for (i, key) in keys.iter().enumerate() {
        let lookup = look_up(store.clone(), key.clone());
        tasks.spawn(async move { (i, lookup.await) });
    }
    let mut results: Vec<Option<Result<T, StoreError>>> = keys.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined?;
        results[i] = Some(result);
    }
    Ok(results
        .into_iter()
        .map(|r| r.ok_or("a task returned no result"))
        .collect::<Result<_, _>>()?)
}

/// Looks up service users by username.
async fn user_by_username(
    store: PostgresStore,
    username: Username,
) -> Result<Option<ServiceUser>, StoreError> {
    store.service_user_by_username(&username).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_lookups_each_get_their_own_user() -> TestResult {
    let url = url_or_return!("many_concurrent_lookups_each_get_their_own_user");
    let schema = TestSchema::create(&url).await?;
    let (server, other) = (schema.store().await?, schema.store().await?);
    let mut users = Vec::new();
    for (i, name) in ["alpha", "bravo", "charlie", "delta"].into_iter().enumerate() {
        let (mut user, _) = user_with_secret(name)?;
        // Half of them with a revocation cut-off, which the batched lookups read too.
        if i % 2 == 1 {
            user.tokens_revoked_before =
                Some(t0() + time::Duration::seconds(60 * i64::try_from(i)?));
        }
        server.create_service_user(&user).await?;
        users.push(user);
    }
    let by_name: Vec<_> = users.iter().map(|u| (u.username.clone(), u.clone())).collect();
    let missing = [Username::new("ghost")?, Username::new("phantom")?];
    each_lookup_gets_its_own([&server, &other], &by_name, &missing, user_by_username).await?;
    // By id; users never stored have ids that are nobody's.
    let by_id: Vec<_> = users.iter().map(|u| (u.id.clone(), u.clone())).collect();
    let missing = [user_with_secret("ghost")?.0.id, user_with_secret("phantom")?.0.id];
    each_lookup_gets_its_own([&server, &other], &by_id, &missing, user_by_id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_started_after_a_secret_changed_see_the_new_secret() -> TestResult {
    let url = url_or_return!("lookups_started_after_a_secret_changed_see_the_new_secret");
    let schema = TestSchema::create(&url).await?;
    let (server, other) = (schema.store().await?, schema.store().await?);
    let (rotated, _) = user_with_secret("rotated")?;
    server.create_service_user(&rotated).await?;
    let (steady, _) = user_with_secret("steady")?;
    server.create_service_user(&steady).await?;
    let replace = async |round: usize| {
        let mut patch = ServiceUserPatch::at(t0() + time::Duration::seconds(i64::try_from(round)?));
        patch.secret = Some(SecretDigest::of(&ClientSecret::generate()?)?);
        let updated = server.update_service_user(&rotated.username, &patch).await?;
        assert_eq!(updated.credentials.secret, patch.secret);
        Ok(updated.credentials.secret)
    };
    let seen = |user: &ServiceUser| user.credentials.secret;
    let changed = vec![rotated.username.clone(); 30];
    lookups_see_every_change(
        [&server, &other],
        &changed,
        &steady.username,
        user_by_username,
        replace,
        seen,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_user_in_a_batch_of_lookups_fails_alone() -> TestResult {
    let url = url_or_return!("a_corrupt_user_in_a_batch_of_lookups_fails_alone");
    let schema = TestSchema::create(&url).await?;
    let store = schema.store().await?;
    let mut users = Vec::new();
    for name in ["good-1", "good-2", "good-3"] {
        let (user, _) = user_with_secret(name)?;
        store.create_service_user(&user).await?;
        users.push(user);
    }
    let (broken, _) = user_with_secret("broken")?;
    store.create_service_user(&broken).await?;
    let by_name: Vec<_> = users.iter().map(|u| (u.username.clone(), u.clone())).collect();
    let by_id: Vec<_> = users.iter().map(|u| (u.id.clone(), u.clone())).collect();
    let (missing_name, missing_id) = (Username::new("nobody")?, user_with_secret("nobody")?.0.id);
    let client = schema.client().await?;
    // An unknown token type, then a short secret digest: corrupt, and only for their
    // user, whether looked up by username or by id.
    for corruption in [
        "UPDATE service_users SET access_token_type = 'paper' WHERE username = 'broken'",
        "UPDATE service_users SET access_token_type = 'jwt', secret_digest = '\\x00' \
         WHERE username = 'broken'",
    ] {
        client.execute(corruption, &[]).await?;
        a_corrupt_row_fails_alone(
            &store,
            &by_name,
            &broken.username,
            &missing_name,
            user_by_username,
        )
        .await?;
        a_corrupt_row_fails_alone(&store, &by_id, &broken.id, &missing_id, user_by_id).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_fail_with_unavailable_when_the_database_is_gone_and_recover() -> TestResult {
    let url = url_or_return!("lookups_fail_with_unavailable_when_the_database_is_gone_and_recover");
    let schema = TestSchema::create(&url).await?;
    let options = schema.options().with_max_size(1).with_wait_timeout(Duration::from_millis(300));
    let store = PostgresStore::connect_with(&url, options).await?;
    let (user, _) = user_with_secret("patient")?;
    store.create_service_user(&user).await?;
    let token = token_for(&user, "patient")?;
    store.insert_token(&token).await?;
    let orders = project("orders")?;
    store.create_project(&orders).await?;
    let (app, _) = app_with_secret(&orders, "patient-api")?;
    store.create_api_app(&app).await?;
    // As in the insert test above: the store's only connection waits for the
    // signing-key lock held by another session.
    let held = KeyLockHeld::take(&schema, &store, "k1").await?;
    let usernames = vec![user.username.clone(); 10];
    let (ids, digests, client_ids) =
        (vec![user.id.clone(); 10], vec![token.digest; 10], vec![app.client_id.clone(); 10]);
    let (by_name, by_id, tokens, apps) = tokio::join!(
        at_once(&store, &usernames, user_by_username),
        at_once(&store, &ids, user_by_id),
        at_once(&store, &digests, token_by_digest),
        at_once(&store, &client_ids, app_by_client_id),
    );
    fn all_unavailable<T: Debug>(results: &[Result<T, StoreError>]) {
        for result in results {
            assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
        }
    }
    all_unavailable(&by_name?);
    all_unavailable(&by_id?);
    all_unavailable(&tokens?);
    all_unavailable(&apps?);
    assert!(held.release().await?.await??);
    // The batchers are not stuck.
    for result in at_once(&store, &usernames, user_by_username).await? {
        assert_eq!(result?.as_ref(), Some(&user));
    }
    for result in at_once(&store, &ids, user_by_id).await? {
        assert_eq!(result?.as_ref(), Some(&user));
    }
    for result in at_once(&store, &digests, token_by_digest).await? {
        assert_eq!(result?.as_ref(), Some(&token));
    }
    for result in at_once(&store, &client_ids, app_by_client_id).await? {
        assert_eq!(result?.as_ref(), Some(&app));
    }
    Ok(())
}

/// Looks up token records by digest.
async fn token_by_digest(
    store: PostgresStore,
    digest: TokenDigest,
) -> Result<Option<TokenRecord>, StoreError> {
    store.token_by_digest(&digest).await
}

/// Looks up service users by id.
async fn user_by_id(store: PostgresStore, id: UserId) -> Result<Option<ServiceUser>, StoreError> {
    store.service_user_by_id(&id).await
}

/// Looks up API apps by client ID.
async fn app_by_client_id(
    store: PostgresStore,
    client_id: ClientId,
) -> Result<Option<ApiApp>, StoreError> {
    store.api_app_by_client_id(&client_id).await
}

/// Looks up every record of `found` and every key of `missing`, mixed, many at once
/// through each of two stores, in rounds of up to more than one batch's worth (a
/// batch answers at most 512 lookups): each lookup gets exactly its own record, or
/// `None`.
async fn each_lookup_gets_its_own<K, T, F, Fut>(
    [server, other]: [&PostgresStore; 2],
    found: &[(K, T)],
    missing: &[K],
    look_up: F,
) -> TestResult
where
    K: Clone + PartialEq + Debug + Send + 'static,
    T: PartialEq + Debug + Send + 'static,
    F: Fn(PostgresStore, K) -> Fut + Copy,
    Fut: Future<Output = Result<Option<T>, StoreError>> + Send + 'static,
{
    let kinds = found.len() + missing.len();
    for (round, count) in [200, 200, 1200].into_iter().enumerate() {
        let keys: Vec<K> = (0..count)
            .map(|i| match found.get(i % kinds) {
                Some((key, _)) => key.clone(),
                None => missing[i % kinds - found.len()].clone(),
            })
            .collect();
        let (half_a, half_b) = keys.split_at(count / 2);
        let (a, b) =
            tokio::join!(at_once(server, half_a, look_up), at_once(other, half_b, look_up));
        for (i, (key, result)) in keys.iter().zip(a?.into_iter().chain(b?)).enumerate() {
            let expected = found.iter().find(|(k, _)| k == key).map(|(_, record)| record);
            assert_eq!(result?.as_ref(), expected, "round {round}, lookup {i} of {key:?}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_token_lookups_each_get_their_own_record() -> TestResult {
    let url = url_or_return!("many_concurrent_token_lookups_each_get_their_own_record");
    let schema = TestSchema::create(&url).await?;
    let (server, other) = (schema.store().await?, schema.store().await?);
    let mut found = Vec::new();
    for name in ["alpha", "bravo"] {
        let (user, _) = user_with_secret(name)?;
        server.create_service_user(&user).await?;
        for i in 0..3 {
            let mut record = token_for(&user, &format!("{name}-{i}"))?;
            if i == 2 {
                record.revoked_at = Some(t0());
            }
            server.insert_token(&record).await?;
            found.push((record.digest, record));
        }
    }
    let missing = [TokenDigest::of("ghost"), TokenDigest::of("phantom")];
    each_lookup_gets_its_own([&server, &other], &found, &missing, token_by_digest).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_app_lookups_each_get_their_own_app() -> TestResult {
    let url = url_or_return!("many_concurrent_app_lookups_each_get_their_own_app");
    let schema = TestSchema::create(&url).await?;
    let (server, other) = (schema.store().await?, schema.store().await?);
    let orders = project("orders")?;
    server.create_project(&orders).await?;
    let mut found = Vec::new();
    for name in ["orders-api", "billing-api", "search-api", "audit-api"] {
        let (app, _) = app_with_secret(&orders, name)?;
        server.create_api_app(&app).await?;
        found.push((app.client_id.clone(), app));
    }
    // A service user's name is a client ID too, but of no app.
    let (user, _) = user_with_secret("not-an-app")?;
    server.create_service_user(&user).await?;
    let missing = [ClientId::new("ghost-api")?, ClientId::new("not-an-app")?];
    each_lookup_gets_its_own([&server, &other], &found, &missing, app_by_client_id).await
}

/// Changes a record through `server` once per key of `changed` (`change(round)`
/// returns what lookups must see from then on, `seen` reads it from a record),
/// while lookups of `changed[round]` and of `steady` run in a loop on `server` and
/// `other`, so that batches are in flight (and hold lookups of the changed record)
/// whenever it changes. Every lookup started after a change returned, through
/// either store, alone or 16 at once, must see it.
async fn lookups_see_every_change<K, T, E, F, Fut>(
    [server, other]: [&PostgresStore; 2],
    changed: &[K],
    steady: &K,
    look_up: F,
    mut change: impl AsyncFnMut(usize) -> Result<E, Box<dyn std::error::Error>>,
    seen: impl Fn(&T) -> E,
) -> TestResult
where
    K: Clone + Send + Sync + 'static,
    T: Send + 'static,
    E: PartialEq + Debug,
    F: Fn(PostgresStore, K) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = Result<Option<T>, StoreError>> + Send + 'static,
{
    let current = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let keys = Arc::new(changed.to_vec());
    let mut load = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { server.clone() } else { other.clone() };
        let steady = (i % 4 >= 2).then(|| steady.clone());
        let (current, stop, keys) = (Arc::clone(&current), Arc::clone(&stop), Arc::clone(&keys));
        load.spawn(async move {
            let mut lookups = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let key = match &steady {
                    Some(steady) => steady.clone(),
                    None => keys[current.load(Ordering::Relaxed)].clone(),
                };
                look_up(store.clone(), key).await?.ok_or("a record went missing")?;
                lookups += 1;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(lookups)
        });
    }
    for (round, key) in changed.iter().enumerate() {
        current.store(round, Ordering::Relaxed);
        // Let the load pick up the key before it changes.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let expected = change(round).await?;
        for store in [server, other] {
            let record = look_up(store.clone(), key.clone()).await?.ok_or("gone")?;
            assert_eq!(seen(&record), expected, "round {round}: a stale record");
            for result in at_once(store, &vec![key.clone(); 16], look_up).await? {
                let record = result?.ok_or("gone")?;
                assert_eq!(seen(&record), expected, "round {round}: a stale record");
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut lookups = 0;
    while let Some(joined) = load.join_next().await {
        lookups += joined?.map_err(|e| e.to_string())?;
    }
    assert!(lookups > 0, "the concurrent lookups never ran");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_started_after_a_revocation_see_the_token_revoked() -> TestResult {
    let url = url_or_return!("lookups_started_after_a_revocation_see_the_token_revoked");
    let schema = TestSchema::create(&url).await?;
    let (server, other) = (schema.store().await?, schema.store().await?);
    let (user, _) = user_with_secret("holder")?;
    server.create_service_user(&user).await?;
    let mut digests = Vec::new();
    for i in 0..30 {
        let record = token_for(&user, &format!("revoked-{i}"))?;
        server.insert_token(&record).await?;
        digests.push(record.digest);
    }
    let steady = token_for(&user, "steady")?;
    server.insert_token(&steady).await?;
    // Not revoked yet, through either store.
    for store in [&server, &other] {
        for result in at_once(store, &digests, token_by_digest).await? {
            assert_eq!(result?.ok_or("gone")?.revoked_at, None);
        }
    }
    let revoke = async |round: usize| {
        let at = t0() + time::Duration::seconds(i64::try_from(round)? + 1);
        assert!(server.revoke_token(&digests[round], at).await?, "round {round}: not found");
        Ok(Some(at))
    };
    let seen = |record: &TokenRecord| record.revoked_at;
    lookups_see_every_change(
        [&server, &other],
        &digests,
        &steady.digest,
        token_by_digest,
        revoke,
        seen,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_by_id_started_after_an_update_see_it() -> TestResult {
    let url = url_or_return!("lookups_by_id_started_after_an_update_see_it");
    let schema = TestSchema::create(&url).await?;
    let (server, other) = (schema.store().await?, schema.store().await?);
    let (toggled, _) = user_with_secret("toggled")?;
    server.create_service_user(&toggled).await?;
    let (steady, _) = user_with_secret("steady")?;
    server.create_service_user(&steady).await?;
    // Disabled in even rounds, enabled again in odd ones.
    let toggle = async |round: usize| {
        let mut patch = ServiceUserPatch::at(t0() + time::Duration::seconds(i64::try_from(round)?));
        patch.enabled = Some(round % 2 == 1);
        let updated = server.update_service_user(&toggled.username, &patch).await?;
        assert_eq!(Some(updated.enabled), patch.enabled);
        Ok(updated.enabled)
    };
    let seen = |user: &ServiceUser| user.enabled;
    let changed = vec![toggled.id.clone(); 30];
    lookups_see_every_change([&server, &other], &changed, &steady.id, user_by_id, toggle, seen)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_by_id_started_after_a_revocation_cut_off_see_it() -> TestResult {
    let url = url_or_return!("lookups_by_id_started_after_a_revocation_cut_off_see_it");
    let schema = TestSchema::create(&url).await?;
    let (server, other) = (schema.store().await?, schema.store().await?);
    let (revoked, _) = user_with_secret("revoked")?;
    server.create_service_user(&revoked).await?;
    let (steady, _) = user_with_secret("steady")?;
    server.create_service_user(&steady).await?;
    // The owner of an introspected token is looked up by id: a cut-off set (and
    // moved) must be seen by every lookup started afterwards.
    let cut_off = async |round: usize| {
        let at = t0() + time::Duration::seconds(i64::try_from(round)?);
        let mut patch = ServiceUserPatch::at(at);
        patch.tokens_revoked_before = Some(at + time::Duration::SECOND);
        let updated = server.update_service_user(&revoked.username, &patch).await?;
        assert_eq!(updated.tokens_revoked_before, patch.tokens_revoked_before);
        Ok(updated.tokens_revoked_before)
    };
    let seen = |user: &ServiceUser| user.tokens_revoked_before;
    let changed = vec![revoked.id.clone(); 30];
    lookups_see_every_change([&server, &other], &changed, &steady.id, user_by_id, cut_off, seen)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_lookups_started_after_a_secret_changed_see_the_new_secret() -> TestResult {
    let url = url_or_return!("app_lookups_started_after_a_secret_changed_see_the_new_secret");
    let schema = TestSchema::create(&url).await?;
    let (server, other) = (schema.store().await?, schema.store().await?);
    let orders = project("orders")?;
    server.create_project(&orders).await?;
    let (rotated, _) = app_with_secret(&orders, "rotated-api")?;
    server.create_api_app(&rotated).await?;
    let (steady, _) = app_with_secret(&orders, "steady-api")?;
    server.create_api_app(&steady).await?;
    let replace = async |round: usize| {
        let mut patch = ApiAppPatch::at(t0() + time::Duration::seconds(i64::try_from(round)?));
        patch.secret = Some(SecretDigest::of(&ClientSecret::generate()?)?);
        let updated = server.update_api_app(&rotated.client_id, &patch).await?;
        assert_eq!(updated.credentials.secret, patch.secret);
        Ok(updated.credentials.secret)
    };
    let seen = |app: &ApiApp| app.credentials.secret;
    let changed = vec![rotated.client_id.clone(); 30];
    lookups_see_every_change(
        [&server, &other],
        &changed,
        &steady.client_id,
        app_by_client_id,
        replace,
        seen,
    )
    .await
}

/// Looks up the records of `found`, the corrupt row of `broken` and the missing key
/// `missing`, 100 at once, in a few rounds: the corrupt row is
/// [`StoreError::Corrupt`] for its lookups only, every other lookup gets its own
/// record (or `None`).
async fn a_corrupt_row_fails_alone<K, T, F, Fut>(
    store: &PostgresStore,
    found: &[(K, T)],
    broken: &K,
    missing: &K,
    look_up: F,
) -> TestResult
where
    K: Clone + PartialEq + Debug + Send + 'static,
    T: PartialEq + Debug + Send + 'static,
    F: Fn(PostgresStore, K) -> Fut + Copy,
    Fut: Future<Output = Result<Option<T>, StoreError>> + Send + 'static,
{
    let kinds = found.len() + 2;
    for round in 0..5 {
        let keys: Vec<K> = (0..100)
            .map(|i| match found.get(i % kinds) {
                Some((key, _)) => key.clone(),
                None if i % kinds == found.len() => broken.clone(),
                None => missing.clone(),
            })
            .collect();
        for (i, (key, result)) in keys.iter().zip(at_once(store, &keys, look_up).await?).enumerate()
        {
            if key == broken {
                assert!(matches!(result, Err(StoreError::Corrupt(_))), "{i}: {result:?}");
            } else {
                let expected = found.iter().find(|(k, _)| k == key).map(|(_, record)| record);
                let record = result.map_err(|e| format!("round {round}, lookup {i}: {e:?}"))?;
                assert_eq!(record.as_ref(), expected, "round {round}, lookup {i} of {key:?}");
            }
        }
    }
    // Alone, the corrupt row is the single-row query's error.
    let result = look_up(store.clone(), broken.clone()).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_token_in_a_batch_of_lookups_fails_alone() -> TestResult {
    let url = url_or_return!("a_corrupt_token_in_a_batch_of_lookups_fails_alone");
    let schema = TestSchema::create(&url).await?;
    let store = schema.store().await?;
    let (user, _) = user_with_secret("holder")?;
    store.create_service_user(&user).await?;
    let mut found = Vec::new();
    for name in ["good-1", "good-2", "good-3"] {
        let record = token_for(&user, name)?;
        store.insert_token(&record).await?;
        found.push((record.digest, record));
    }
    let broken = token_for(&user, "broken")?;
    store.insert_token(&broken).await?;
    let client = schema.client().await?;
    let digest: &[u8] = broken.digest.as_bytes();
    client
        .execute("UPDATE tokens SET scopes = 'two  spaces' WHERE digest = $1", &[&digest])
        .await?;
    let missing = TokenDigest::of("nobody");
    a_corrupt_row_fails_alone(&store, &found, &broken.digest, &missing, token_by_digest).await?;
    // Roles that are not a map are corrupt too, and only for their token.
    client
        .execute(
            "UPDATE tokens SET scopes = 'openid', roles = '[\"not\", \"a map\"]' WHERE digest = $1",
            &[&digest],
        )
        .await?;
    a_corrupt_row_fails_alone(&store, &found, &broken.digest, &missing, token_by_digest).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_app_in_a_batch_of_lookups_fails_alone() -> TestResult {
    let url = url_or_return!("a_corrupt_app_in_a_batch_of_lookups_fails_alone");
    let schema = TestSchema::create(&url).await?;
    let store = schema.store().await?;
    let orders = project("orders")?;
    store.create_project(&orders).await?;
    let mut found = Vec::new();
    for name in ["good-1", "good-2", "good-3"] {
        let (app, _) = app_with_secret(&orders, name)?;
        store.create_api_app(&app).await?;
        found.push((app.client_id.clone(), app));
    }
    let (broken, _) = app_with_secret(&orders, "broken")?;
    store.create_api_app(&broken).await?;
    let client = schema.client().await?;
    // A short secret digest.
    client
        .execute(
            "UPDATE api_apps SET secret_digest = '\\x00' WHERE client_id = $1",
            &[&broken.client_id.as_str()],
        )
        .await?;
    let missing = ClientId::new("nobody")?;
    a_corrupt_row_fails_alone(&store, &found, &broken.client_id, &missing, app_by_client_id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_keys_and_used_assertions_survive_reconnecting() -> TestResult {
    let url = url_or_return!("client_keys_and_used_assertions_survive_reconnecting");
    let schema = TestSchema::create(&url).await?;
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
    let expiry = t0() + time::Duration::minutes(5);
    {
        let store = schema.store().await?;
        store.create_project(&orders).await?;
        store.create_api_app(&app).await?;
        store.create_service_user(&user).await?;
        for key in [&late, &early, &app_key] {
            store.add_client_key(key).await?;
        }
        assert!(store.use_assertion(&user_owner.to_key(), "jti-1", expiry).await?);
    }

    let store = schema.store().await?;
    assert_eq!(store.client_key("z-early").await?, Some(early.clone()));
    assert_eq!(store.client_keys_of(&user_owner).await?, vec![early, late]);
    assert_eq!(store.client_keys_of(&app_owner).await?, vec![app_key]);
    assert!(!store.use_assertion(&user_owner.to_key(), "jti-1", expiry).await?, "a replay");
    assert_eq!(store.purge_expired_tokens(expiry).await?, 1);
    assert!(store.use_assertion(&user_owner.to_key(), "jti-1", expiry).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_from_version_6_salts_every_secret_digest() -> TestResult {
    use sha2::{Digest, Sha256};
    const SECRET: &str = "the-readme-example-secret-of-32-chars";
    const PREVIOUS: &str = "a-previous-secret-still-in-its-grace";
    const APP_SECRET: &str = "the-api-app-secret-of-at-least-32-ch";
    let url = url_or_return!("upgrading_from_version_6_salts_every_secret_digest");
    let schema = TestSchema::create_at_version(&url, 6).await?;
    assert_eq!(migration_rows(&schema).await?, 6);
    let unsalted = |secret: &str| -> Vec<u8> { Sha256::digest(secret.as_bytes()).to_vec() };
    let client = schema.client().await?;
    client
        .execute(
            "INSERT INTO service_users (id, username, display_name, access_token_type, \
             token_lifetime_secs, secret_digest, enabled, created_at, updated_at, \
             previous_secret_digest, previous_secret_expires_at, tokens_revoked_before) \
             VALUES ('100000000000000001', 'first', 'First', 'jwt', 60, $1, true, 10, 20, $2, \
             2000000000, NULL), \
             ('100000000000000002', 'second', 'Second', 'opaque', 60, $1, true, 10, 20, NULL, \
             NULL, 30), \
             ('100000000000000003', 'none', 'None', 'opaque', 60, NULL, true, 10, 20, NULL, \
             NULL, NULL)",
            &[&unsalted(SECRET), &unsalted(PREVIOUS)],
        )
        .await?;
    client
        .execute(
            "INSERT INTO api_apps (client_id, project_id, name, secret_digest, enabled, \
             created_at, updated_at, previous_secret_digest, previous_secret_expires_at, \
             app_id) VALUES ('orders-api', 'zitadel', 'Orders API', $1, true, 0, 0, $2, \
             2000000000, '200000000000000001')",
            &[&unsalted(APP_SECRET), &unsalted(SECRET)],
        )
        .await?;

    let store = schema.store().await?;
    assert_eq!(migration_rows(&schema).await?, i64::try_from(SCHEMA_VERSION)?);
    let now = time_at(1_900_000_000);
    let first = store.service_user_by_username(&Username::new("first")?).await?.ok_or("first")?;
    let second = store.service_user_by_username(&Username::new("second")?).await?.ok_or("2nd")?;
    let app = store.api_app_by_client_id(&ClientId::new("orders-api")?).await?.ok_or("app")?;
    // The same secrets authenticate after the upgrade.
    assert!(first.credentials.matches(SECRET, now));
    assert!(first.credentials.matches(PREVIOUS, now), "the previous secret too");
    assert!(!first.credentials.matches(PREVIOUS, time_at(2_000_000_000)), "until its expiry");
    assert!(second.credentials.matches(SECRET, now));
    assert!(app.credentials.matches(APP_SECRET, now));
    assert!(app.credentials.matches(SECRET, now), "the app's previous secret");
    for wrong in ["", "wrong", APP_SECRET] {
        assert!(!first.credentials.matches(wrong, now) && !second.credentials.matches(wrong, now));
    }
    let none = store.service_user_by_username(&Username::new("none")?).await?.ok_or("none")?;
    assert_eq!(none.credentials, Credentials::NONE, "no secret stays no secret");
    assert_eq!(second.tokens_revoked_before, Some(time_at(30)), "the other columns are kept");
    // The list and the batched lookups read the same.
    let listed = store.list_service_users().await?;
    assert_eq!(listed, [first.clone(), none, second.clone()]);
    assert_eq!(store.service_user_by_id(&first.id).await?.as_ref(), Some(&first));

    // The stored bytes are salted: 48 bytes, not the unsalted digest, and the same
    // secret is stored differently for each user (and each column).
    let mut stored: Vec<Vec<u8>> = Vec::new();
    for sql in [
        "SELECT secret_digest FROM service_users WHERE username = 'first'",
        "SELECT secret_digest FROM service_users WHERE username = 'second'",
        "SELECT previous_secret_digest FROM api_apps",
        "SELECT previous_secret_digest FROM service_users WHERE username = 'first'",
        "SELECT secret_digest FROM api_apps",
    ] {
        stored.push(client.query_one(sql, &[]).await?.try_get(0)?);
    }
    for (i, bytes) in stored.iter().enumerate() {
        assert_eq!(bytes.len(), SecretDigest::LEN, "{i}");
        for secret in [SECRET, PREVIOUS, APP_SECRET] {
            let old = unsalted(secret);
            assert!(!bytes.windows(32).any(|w| w == old), "{i}: the unsalted digest is gone");
        }
    }
    assert_ne!(stored[0], stored[1], "two users with one secret store different digests");
    assert_ne!(stored[0], stored[2], "and so does an app");
    assert_ne!(stored[0][..16], stored[1][..16], "each with a salt of its own");
    let digest = first.credentials.secret.ok_or("a secret")?;
    let old: [u8; 32] = Sha256::digest(SECRET.as_bytes()).into();
    assert_eq!(
        digest,
        SecretDigest::from_unsalted_with_salt(*digest.salt(), &old),
        "SHA-256(salt ‖ the old digest)"
    );
    // Another store connecting later migrates nothing again.
    let again = schema.store().await?;
    assert_eq!(again.service_user_by_id(&first.id).await?, Some(first));
    Ok(())
}
