//! The checks of the issuing core ([`IssuingStore`]), written against an
//! [`IssuingBackend`]: the store under test and the [`Seed`] that fills it with the
//! records the checks need. [`issuing_conformance_suite!`](crate::issuing_conformance_suite)
//! runs them for a backend that implements the issuing core alone, and
//! [`conformance_suite!`](crate::conformance_suite) runs them for a complete backend,
//! seeded through its administration traits ([`StoreSeed`]).

use std::sync::Arc;

use async_trait::async_trait;
use time::Duration;

use super::{
    SharedStore, at, at_once, fresh_secret, role, sample_app, sample_client_key,
    sample_organization, sample_project, sample_token, sample_user, t0, username,
};
use crate::{
    AccessTokenType, ApiApp, ClientId, ClientKey, ClientSecret, DisplayName, IssuingStore,
    KeyOwner, Project, ProjectId, RoleGrant, ServiceUser, SigningAlgorithm, StoreError,
    TokenDigest, TokenId, TokenLifetime, UserId,
};

/// The issuing store under test, shared by the tasks of the concurrency checks.
pub type SharedIssuingStore = Arc<dyn IssuingStore>;

/// The [`Seed`] of the store under test.
pub type SharedSeed = Arc<dyn Seed>;

/// How the issuing checks put the records they need into the store under test.
///
/// A backend for issuing alone reads users (and maybe API apps, projects, grants and
/// client keys) that are provisioned elsewhere: a directory, a fixed list, tables
/// another service writes. Its [`IssuingStore`] creates none of them, so the suite
/// asks the backend's author for this seam: each method stores one record where the
/// backend reads it from (in a test database, a fixture file, the backend's map),
/// so that the lookups that follow find it.
///
/// Only users are required. Each of the other methods returns whether the backend
/// keeps that kind of record; left out, it answers `false`, and the suite then
/// checks that the lookups of that group answer "nothing stored" (the defaults of
/// [`IssuingStore`]): no API app, only the reserved project, no grant, no client
/// key. A seeding that fails is an error of the test set-up: the check panics.
///
/// A complete backend is seeded through its administration traits by [`StoreSeed`].
#[async_trait]
pub trait Seed: Send + Sync {
    /// Stores a service user, exactly as given (every field).
    async fn seed_user(&self, user: &ServiceUser) -> Result<(), StoreError>;

    /// Stores an API app, exactly as given, of a project that exists (the reserved
    /// one, or one seeded before); returns whether the backend keeps API apps.
    ///
    /// Left out: `false`, and [`IssuingStore::api_app_by_client_id`] must find none.
    async fn seed_app(&self, app: &ApiApp) -> Result<bool, StoreError> {
        let _ = app;
        Ok(false)
    }

    /// Stores a project; returns whether the backend keeps projects.
    ///
    /// Left out: `false`, and [`IssuingStore::project_by_id`] must find the
    /// reserved project alone.
    async fn seed_project(&self, project: &Project) -> Result<bool, StoreError> {
        let _ = project;
        Ok(false)
    }

    /// Stores a role grant of a user and a project that exist (a project seeded
    /// before, or the reserved one); returns whether the backend keeps grants. The
    /// suite seeds each grant once.
    ///
    /// Left out: `false`, and [`IssuingStore::grants_of_user`] must find none.
    async fn seed_grant(&self, grant: &RoleGrant) -> Result<bool, StoreError> {
        let _ = grant;
        Ok(false)
    }

    /// Stores a client key, exactly as given, of an owner that exists; returns
    /// whether the backend keeps client keys (and so checks assertions, with
    /// [`IssuingStore::use_assertion`]).
    ///
    /// Left out: `false`, and [`IssuingStore::client_key`] must find none.
    async fn seed_client_key(&self, key: &ClientKey) -> Result<bool, StoreError> {
        let _ = key;
        Ok(false)
    }
}

/// The [`Seed`] of a complete backend: each record is created through the
/// administration traits ([`create_service_user`](crate::ServiceUserAdmin::create_service_user),
/// [`create_api_app`](crate::ProjectAdmin::create_api_app),
/// [`create_project`](crate::ProjectAdmin::create_project),
/// [`add_grant`](crate::ProjectAdmin::add_grant),
/// [`add_client_key`](crate::ClientKeyAdmin::add_client_key)), and every kind is kept.
#[derive(Clone)]
pub struct StoreSeed(pub SharedStore);

#[async_trait]
impl Seed for StoreSeed {
    async fn seed_user(&self, user: &ServiceUser) -> Result<(), StoreError> {
        self.0.create_service_user(user).await
    }

    async fn seed_app(&self, app: &ApiApp) -> Result<bool, StoreError> {
        self.0.create_api_app(app).await.map(|()| true)
    }

    async fn seed_project(&self, project: &Project) -> Result<bool, StoreError> {
        self.0.create_project(project).await.map(|()| true)
    }

    async fn seed_grant(&self, grant: &RoleGrant) -> Result<bool, StoreError> {
        self.0.add_grant(grant).await.map(|_| true)
    }

    async fn seed_client_key(&self, key: &ClientKey) -> Result<bool, StoreError> {
        self.0.add_client_key(key).await.map(|()| true)
    }
}

/// The backend under test of the issuing checks: its issuing store, and the seed
/// that puts the records the checks need where the store reads them.
#[derive(Clone)]
pub struct IssuingBackend {
    /// The store under test.
    pub store: SharedIssuingStore,
    /// Its fixtures' way in.
    pub seed: SharedSeed,
}

impl IssuingBackend {
    /// `store`, seeded by `seed`. Either may be a value of any type implementing its
    /// trait, or already shared ([`SharedIssuingStore`], [`SharedSeed`]); one backend
    /// value that is both passes two `Arc`s of itself.
    pub fn new(store: impl IntoSharedIssuingStore, seed: impl IntoSharedSeed) -> Self {
        Self { store: store.into_shared_issuing_store(), seed: seed.into_shared_seed() }
    }

    /// A complete backend, seeded through its administration traits ([`StoreSeed`]).
    pub fn of_store(store: SharedStore) -> Self {
        Self { store: store.clone(), seed: Arc::new(StoreSeed(store)) }
    }
}

/// A store value [`IssuingBackend::new`] accepts: any [`IssuingStore`], or one shared
/// already ([`SharedIssuingStore`], or a complete [`SharedStore`]).
pub trait IntoSharedIssuingStore {
    /// The store, shared.
    fn into_shared_issuing_store(self) -> SharedIssuingStore;
}

impl<T: IssuingStore + 'static> IntoSharedIssuingStore for T {
    fn into_shared_issuing_store(self) -> SharedIssuingStore {
        Arc::new(self)
    }
}

impl IntoSharedIssuingStore for SharedIssuingStore {
    fn into_shared_issuing_store(self) -> SharedIssuingStore {
        self
    }
}

impl IntoSharedIssuingStore for SharedStore {
    fn into_shared_issuing_store(self) -> SharedIssuingStore {
        self
    }
}

/// A seed value [`IssuingBackend::new`] accepts: any [`Seed`], or a [`SharedSeed`].
pub trait IntoSharedSeed {
    /// The seed, shared.
    fn into_shared_seed(self) -> SharedSeed;
}

impl<T: Seed + 'static> IntoSharedSeed for T {
    fn into_shared_seed(self) -> SharedSeed {
        Arc::new(self)
    }
}

impl IntoSharedSeed for SharedSeed {
    fn into_shared_seed(self) -> SharedSeed {
        self
    }
}

/// The answer of a seeding call: whether the backend keeps the records of `what`.
/// Panics when the seeding failed.
fn seeded(result: Result<bool, StoreError>, what: &str) -> bool {
    result.unwrap_or_else(|e| panic!("seeding {what} failed: {e}"))
}

/// A new user `name` with a secret, seeded; returns the secret too.
async fn seeded_user(backend: &IssuingBackend, name: &str) -> (ServiceUser, ClientSecret) {
    let (user, secret) = sample_user(name);
    seed_user(backend, &user).await;
    (user, secret)
}

/// Seeds `user`; panics when that fails.
async fn seed_user(backend: &IssuingBackend, user: &ServiceUser) {
    let seeded = backend.seed.seed_user(user).await;
    seeded.unwrap_or_else(|e| panic!("seeding the user {}: {e}", user.username));
}

/// The project `id`, seeded when the backend keeps projects; the reserved project
/// (which every store has) otherwise.
async fn seeded_project(backend: &IssuingBackend, id: &str) -> Project {
    let project = sample_project(id);
    if seeded(backend.seed.seed_project(&project).await, "a project") {
        project
    } else {
        Project::reserved()
    }
}

/// Seeded users read back exactly as seeded, every field (secret and previous
/// secret, revocation cut-off, disabled or not), by username and by id; unknown
/// names and ids are not found.
pub async fn service_users_are_looked_up_by_username_and_id(backend: IssuingBackend) {
    let store = &backend.store;
    let (plain, _) = seeded_user(&backend, "plain").await;
    let (mut full, _) = sample_user("every-field");
    full.display_name = DisplayName::new("Every field").expect("name");
    full.access_token_type = AccessTokenType::Jwt;
    full.token_lifetime = TokenLifetime::from_secs(600).expect("lifetime");
    full.enabled = false;
    full.credentials.rotate(super::digest_of(&fresh_secret()), Some(at(60)));
    full.tokens_revoked_before = Some(at(30));
    full.updated_at = at(5);
    seed_user(&backend, &full).await;
    for user in [&plain, &full] {
        let by_name = store.service_user_by_username(&user.username).await.expect("lookup");
        assert_eq!(by_name.as_ref(), Some(user), "a user must read back as seeded (by name)");
        let by_id = store.service_user_by_id(&user.id).await.expect("lookup");
        assert_eq!(by_id.as_ref(), Some(user), "a user must read back as seeded (by id)");
    }
    let missing = store.service_user_by_username(&username("nobody")).await.expect("lookup");
    assert_eq!(missing, None, "an unknown username must not be found");
    let missing = store.service_user_by_id(&UserId::generate().expect("id")).await.expect("lookup");
    assert_eq!(missing, None, "an unknown id must not be found");
}

/// Seeded API apps, enabled or not, read back by client ID exactly as seeded; an
/// unknown client ID (a user's username among them) finds none. Without API apps,
/// none is found.
pub async fn api_apps_are_looked_up_by_client_id(backend: IssuingBackend) {
    let store = &backend.store;
    let project = seeded_project(&backend, "orders").await;
    let (user, _) = seeded_user(&backend, "billing-job").await;
    let (app, _) = sample_app(&project, "orders-api");
    if !seeded(backend.seed.seed_app(&app).await, "an API app") {
        let found = store.api_app_by_client_id(&app.client_id).await.expect("lookup");
        assert_eq!(found, None, "a backend that keeps no API apps finds none");
        return;
    }
    let (mut disabled, _) = sample_app(&project, "disabled-api");
    disabled.enabled = false;
    disabled.credentials.rotate(super::digest_of(&fresh_secret()), Some(at(60)));
    disabled.updated_at = at(5);
    assert!(seeded(backend.seed.seed_app(&disabled).await, "an API app"), "apps are kept");
    for app in [&app, &disabled] {
        let found = store.api_app_by_client_id(&app.client_id).await.expect("lookup");
        assert_eq!(found.as_ref(), Some(app), "an API app must read back as seeded");
    }
    for unknown in ["nobody-api", user.username.as_str()] {
        let id = ClientId::new(unknown).expect("client ID");
        let found = store.api_app_by_client_id(&id).await.expect("lookup");
        assert_eq!(found, None, "{unknown} is no API app");
    }
}

/// The reserved project exists in every store; a seeded project reads back by id;
/// unknown ids are not found. Without projects, the reserved one alone exists.
pub async fn projects_are_looked_up_by_id(backend: IssuingBackend) {
    let store = &backend.store;
    let reserved = store.project_by_id(&ProjectId::reserved()).await.expect("lookup");
    assert_eq!(reserved, Some(Project::reserved()), "the reserved project exists in every store");
    let orders = sample_project("orders");
    let kept = seeded(backend.seed.seed_project(&orders).await, "a project");
    let found = store.project_by_id(&orders.id).await.expect("lookup");
    assert_eq!(found, kept.then_some(orders), "a seeded project reads back (if projects are kept)");
    let missing = store.project_by_id(&ProjectId::new("nope").expect("id")).await.expect("lookup");
    assert_eq!(missing, None, "an unknown project must not be found");
}

/// A user's grants read back ordered by project, then role, each once, and only its
/// own. Without grants, a user has none.
pub async fn grants_of_a_user_are_ordered(backend: IssuingBackend) {
    let store = &backend.store;
    let project = seeded_project(&backend, "orders").await;
    let (user, _) = seeded_user(&backend, "granted").await;
    let (other, _) = seeded_user(&backend, "bystander").await;
    let mut grants: Vec<RoleGrant> = Vec::new();
    for (project_id, key) in [
        (ProjectId::reserved(), "writer"),
        (project.id.clone(), "reader"),
        (ProjectId::reserved(), "admin"),
        (project.id.clone(), "auditor"),
        (project.id.clone(), "Zeta"),
    ] {
        let grant = RoleGrant { user_id: user.id.clone(), project_id, role: role(key) };
        if !grants.contains(&grant) {
            grants.push(grant);
        }
    }
    if !seeded(backend.seed.seed_grant(&grants[0]).await, "a grant") {
        let found = store.grants_of_user(&user.id).await.expect("list");
        assert!(found.is_empty(), "a backend that keeps no grants finds none: {found:?}");
        return;
    }
    for grant in &grants[1..] {
        assert!(seeded(backend.seed.seed_grant(grant).await, "a grant"), "grants are kept");
    }
    let others =
        RoleGrant { user_id: other.id.clone(), project_id: project.id.clone(), role: role("r") };
    assert!(seeded(backend.seed.seed_grant(&others).await, "a grant"), "grants are kept");
    let mut expected = grants.clone();
    expected.sort_by(|a, b| (&a.project_id, &a.role).cmp(&(&b.project_id, &b.role)));
    let found = store.grants_of_user(&user.id).await.expect("list");
    assert_eq!(found, expected, "a user's grants, ordered by project, then role");
    assert_eq!(store.grants_of_user(&other.id).await.expect("list"), vec![others]);
    let none = store.grants_of_user(&UserId::generate().expect("id")).await.expect("list");
    assert!(none.is_empty(), "an unknown user has no grants");
}

/// Seeded client keys of users and API apps read back by key id exactly as seeded,
/// valid or not (an expired key too); unknown key ids are not found. Without client
/// keys, none is found.
pub async fn client_keys_are_looked_up_by_key_id(backend: IssuingBackend) {
    let store = &backend.store;
    let (user, _) = seeded_user(&backend, "key-holder").await;
    let owner = KeyOwner::ServiceUser(user.id.clone());
    let first = sample_client_key(owner.clone(), "user-key", 0);
    if !seeded(backend.seed.seed_client_key(&first).await, "a client key") {
        let found = store.client_key(&first.key_id).await.expect("lookup");
        assert_eq!(found, None, "a backend that keeps no client keys finds none");
        return;
    }
    let mut expired = sample_client_key(owner.clone(), "expired-key", 5);
    expired.expires_at = Some(t0() - Duration::days(1));
    let mut lasting = sample_client_key(owner, "lasting-key", 10);
    lasting.algorithm = SigningAlgorithm::Es256;
    lasting.expires_at = None;
    let mut keys = vec![first, expired, lasting];
    for key in &keys[1..] {
        assert!(seeded(backend.seed.seed_client_key(key).await, "a client key"), "keys are kept");
    }
    let project = seeded_project(&backend, "orders").await;
    let (app, _) = sample_app(&project, "orders-api");
    if seeded(backend.seed.seed_app(&app).await, "an API app") {
        let app_key = sample_client_key(KeyOwner::ApiApp(app.client_id.clone()), "app-key", 0);
        assert!(seeded(backend.seed.seed_client_key(&app_key).await, "a client key"));
        keys.push(app_key);
    }
    for key in &keys {
        let found = store.client_key(&key.key_id).await.expect("lookup");
        assert_eq!(found.as_ref(), Some(key), "a client key must read back as seeded");
    }
    assert_eq!(store.client_key("nope").await.expect("lookup"), None, "an unknown key id");
}

/// An inserted token record reads back equal.
pub async fn token_insert_and_lookup(backend: IssuingBackend) {
    let store = &backend.store;
    let (user, _) = seeded_user(&backend, "tokens").await;
    let record = sample_token(&user, "opaque-1", 3600);
    store.insert_token(&record).await.expect("insert");
    let found = store.token_by_digest(&record.digest).await.expect("lookup");
    assert_eq!(found.as_ref(), Some(&record), "a token record must read back unchanged");
    let missing = store.token_by_digest(&TokenDigest::of("unknown")).await.expect("lookup");
    assert_eq!(missing, None);
}

/// A second record with the same digest is a conflict and changes nothing.
pub async fn token_duplicate_digest_conflicts(backend: IssuingBackend) {
    let store = &backend.store;
    let (user, _) = seeded_user(&backend, "tokens").await;
    let first = sample_token(&user, "same", 3600);
    store.insert_token(&first).await.expect("insert");
    let second = sample_token(&user, "same", 60);
    let err = store.insert_token(&second).await.expect_err("duplicate digest must fail");
    assert!(matches!(err, StoreError::Conflict(_)), "duplicate digest must be Conflict: {err:?}");
    assert_eq!(store.token_by_digest(&first.digest).await.expect("lookup"), Some(first));
}

/// Revocation marks the record, keeps the first time, and reports unknown tokens.
pub async fn token_revoke_is_idempotent(backend: IssuingBackend) {
    let store = &backend.store;
    let (user, _) = seeded_user(&backend, "tokens").await;
    let record = sample_token(&user, "revoke-me", 3600);
    store.insert_token(&record).await.expect("insert");
    let first = t0() + Duration::seconds(5);
    assert!(store.revoke_token(&record.digest, first).await.expect("revoke"));
    assert!(
        store.revoke_token(&record.digest, first + Duration::seconds(5)).await.expect("revoke")
    );
    let stored = store.token_by_digest(&record.digest).await.expect("lookup").expect("exists");
    assert_eq!(stored.revoked_at, Some(first), "the first revocation time must be kept");
    assert!(!stored.is_active(first), "a revoked token must be inactive");
    let unknown = store.revoke_token(&TokenDigest::of("nope"), first).await.expect("revoke");
    assert!(!unknown, "revoking an unknown token must report that nothing was found");
}

/// Purging removes exactly the records expired at `now`.
pub async fn token_purge_removes_only_expired(backend: IssuingBackend) {
    let store = &backend.store;
    let (user, _) = seeded_user(&backend, "tokens").await;
    let short = sample_token(&user, "short", 10);
    let exact = sample_token(&user, "exact", 20);
    let long = sample_token(&user, "long", 30);
    for r in [&short, &exact, &long] {
        store.insert_token(r).await.expect("insert");
    }
    let purged = store.purge_expired_tokens(t0() + Duration::seconds(20)).await.expect("purge");
    assert_eq!(purged, 2, "records expiring at or before now must be purged");
    assert_eq!(store.token_by_digest(&short.digest).await.expect("lookup"), None);
    assert_eq!(store.token_by_digest(&exact.digest).await.expect("lookup"), None);
    assert_eq!(store.token_by_digest(&long.digest).await.expect("lookup"), Some(long));
}

/// Many concurrent inserts all land.
pub async fn token_concurrent_inserts_lose_nothing(backend: IssuingBackend) {
    let store = &backend.store;
    let (user, _) = seeded_user(&backend, "tokens").await;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..8 {
        let store = store.clone();
        let user = user.clone();
        tasks.spawn(async move {
            for i in 0..25 {
                let record = sample_token(&user, &format!("concurrent-{task}-{i}"), 3600);
                store.insert_token(&record).await.expect("concurrent insert");
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("insert task panicked");
    }
    for task in 0..8 {
        for i in 0..25 {
            let digest = TokenDigest::of(&format!("concurrent-{task}-{i}"));
            let found = store.token_by_digest(&digest).await.expect("lookup");
            assert!(found.is_some(), "token {task}-{i} was lost");
        }
    }
}

/// `ping` succeeds on a reachable backend.
pub async fn ping_answers(backend: IssuingBackend) {
    backend.store.ping().await.expect("ping on a reachable backend");
}

/// A revoked JWT id is reported until purged after its expiry.
pub async fn revoked_jtis_are_seen_until_purged(backend: IssuingBackend) {
    let store = &backend.store;
    let jti = TokenId::generate().expect("jti");
    let other = TokenId::generate().expect("jti");
    assert!(!store.is_jti_revoked(&jti).await.expect("lookup"));
    store.revoke_jti(&jti, t0() + Duration::seconds(100)).await.expect("revoke");
    store.revoke_jti(&jti, t0() + Duration::seconds(50)).await.expect("revoke again");
    assert!(store.is_jti_revoked(&jti).await.expect("lookup"));
    assert!(!store.is_jti_revoked(&other).await.expect("lookup"));
    store.purge_expired_tokens(t0() + Duration::seconds(99)).await.expect("purge");
    assert!(store.is_jti_revoked(&jti).await.expect("lookup"), "not purged before its expiry");
    let purged = store.purge_expired_tokens(t0() + Duration::seconds(100)).await.expect("purge");
    assert_eq!(purged, 1);
    assert!(!store.is_jti_revoked(&jti).await.expect("lookup"));
}

/// Roles carried by a token record read back unchanged.
pub async fn token_roles_read_back(backend: IssuingBackend) {
    let store = &backend.store;
    let (user, _) = seeded_user(&backend, "roles").await;
    let mut record = sample_token(&user, "with-roles", 60);
    let acme = sample_organization("Acme", "acme.example");
    let other = sample_organization("Other", "other.example");
    record.roles.insert(&role("reader"), &acme);
    record.roles.insert(&role("reader"), &other);
    record.roles.insert(&role("writer"), &acme);
    store.insert_token(&record).await.expect("insert");
    let found = store.token_by_digest(&record.digest).await.expect("lookup");
    assert_eq!(found, Some(record));
}

/// An assertion id is accepted once per issuer, even under concurrency, until purged.
///
/// A backend that keeps no client keys ([`Seed::seed_client_key`] answers `false`)
/// refuses every assertion anyway; for it the check is only that no assertion id is
/// accepted twice (the default of [`use_assertion`](IssuingStore::use_assertion)
/// accepts none).
pub async fn assertion_ids_are_used_once_until_purged(backend: IssuingBackend) {
    let store = &backend.store;
    let expiry = t0() + Duration::seconds(60);
    let (user, _) = seeded_user(&backend, "asserter").await;
    let key = sample_client_key(KeyOwner::ServiceUser(user.id), "asserter-key", 0);
    if !seeded(backend.seed.seed_client_key(&key).await, "a client key") {
        let firsts = at_once((0..8).map(|_| {
            let store = store.clone();
            async move { store.use_assertion("svc", "jti-1", expiry).await.expect("use") }
        }))
        .await;
        assert!(firsts.iter().filter(|f| **f).count() <= 1, "an assertion id accepted twice");
        assert!(!store.use_assertion("svc", "jti-1", expiry).await.expect("use"), "a replay");
        return;
    }
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        racers
            .spawn(async move { store.use_assertion("svc", "jti-1", expiry).await.expect("use") });
    }
    let mut firsts = 0;
    while let Some(joined) = racers.join_next().await {
        if joined.expect("racer") {
            firsts += 1;
        }
    }
    assert_eq!(firsts, 1, "exactly one of the concurrent uses is first");
    assert!(!store.use_assertion("svc", "jti-1", expiry).await.expect("use"), "a replay");
    assert!(store.use_assertion("other", "jti-1", expiry).await.expect("use"), "per issuer");
    store.purge_expired_tokens(expiry - Duration::seconds(1)).await.expect("purge");
    assert!(!store.use_assertion("svc", "jti-1", expiry).await.expect("use"), "kept until expiry");
    store.purge_expired_tokens(expiry).await.expect("purge");
    assert!(store.use_assertion("svc", "jti-1", expiry).await.expect("use"), "free after purge");
}

/// Concurrent revocations of one token all find it, and one time is kept: the
/// record is revoked at one of them, and a later revocation changes nothing.
pub async fn token_concurrent_revocations_keep_one_time(backend: IssuingBackend) {
    let store = &backend.store;
    let (user, _) = seeded_user(&backend, "tokens").await;
    let record = sample_token(&user, "raced", 3600);
    store.insert_token(&record).await.expect("insert");
    let found = at_once((1..=8).map(|i| {
        let (store, digest) = (store.clone(), record.digest);
        async move { store.revoke_token(&digest, at(i)).await.expect("revoke") }
    }))
    .await;
    assert!(found.iter().all(|f| *f), "every revocation finds the record");
    let stored = store.token_by_digest(&record.digest).await.expect("lookup").expect("exists");
    let revoked = stored.revoked_at.expect("the record is revoked");
    assert!((at(1)..=at(8)).contains(&revoked), "revoked at one of the times: {revoked}");
    assert!(store.revoke_token(&record.digest, at(100)).await.expect("revoke"));
    let again = store.token_by_digest(&record.digest).await.expect("lookup").expect("exists");
    assert_eq!(again.revoked_at, Some(revoked), "the first revocation time is kept");
}

/// Concurrent revocations of one JWT id keep the latest expiry.
pub async fn revoked_jti_concurrent_revocations_keep_the_latest_expiry(backend: IssuingBackend) {
    let store = &backend.store;
    let jti = TokenId::generate().expect("jti");
    at_once((1..=8).map(|i| {
        let (store, jti) = (store.clone(), jti.clone());
        async move { store.revoke_jti(&jti, at(10 * i)).await.expect("revoke") }
    }))
    .await;
    store.purge_expired_tokens(at(79)).await.expect("purge");
    assert!(
        store.is_jti_revoked(&jti).await.expect("lookup"),
        "the latest expiry of concurrent revocations is kept"
    );
    assert_eq!(store.purge_expired_tokens(at(80)).await.expect("purge"), 1);
    assert!(!store.is_jti_revoked(&jti).await.expect("lookup"));
}
