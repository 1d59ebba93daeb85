//! The backend conformance suite: one check per contract of the storage traits.
//!
//! A backend proves itself by running the whole suite with [`conformance_suite!`]
//! in its own tests, with a fresh, empty store for each test, and the checks of
//! several instances on one database with [`conformance_suite_shared!`], with two
//! stores on one fresh database for each test. The suite needs no other dependency
//! than `tessera-store` with the `testkit` feature: each generated test is a plain
//! `#[test]` that runs its check on a Tokio runtime of its own (multi-threaded, two
//! workers).
//!
//! ```
//! // tests/conformance.rs of a backend crate, whose dev-dependencies hold
//! // tessera-store = { version = "…", features = ["testkit"] }
//! use std::sync::Arc;
//!
//! use tessera_store::MemoryStore;
//! use tessera_store::testkit::SharedStore;
//!
//! // A fresh, empty store for each check.
//! tessera_store::conformance_suite!(async { MemoryStore::new() });
//!
//! // Two stores on one fresh database for each check. A backend on a database
//! // opens it twice (two SQLite stores on one file, two PostgreSQL stores on one
//! // schema); the memory store, whose data lives in the process, is shared.
//! tessera_store::conformance_suite_shared!(async {
//!     let store: SharedStore = Arc::new(MemoryStore::new());
//!     (store.clone(), store)
//! });
//! # fn main() {}
//! ```
//!
//! `crates/store-sqlite/tests/conformance.rs` and
//! `crates/store-postgres/tests/conformance.rs` are worked examples with a guard
//! (a temporary directory, a schema to drop) kept alive beside the stores.
//!
//! A backend for issuing alone, which implements [`IssuingStore`](crate::IssuingStore)
//! (and maybe [`SigningKeyStore`](crate::SigningKeyStore) or
//! [`OrganizationStore`](crate::OrganizationStore)) but no administration trait,
//! cannot create the users the checks need; it runs the checks of the issuing core
//! with [`issuing_conformance_suite!`], giving the suite a [`Seed`] that stores each
//! record the checks need where the backend reads it:
//!
//! ```
//! use std::sync::Arc;
//!
//! use async_trait::async_trait;
//! use tessera_store::prelude::*;
//! use tessera_store::testkit::{Seed, SharedIssuingStore};
//! use tessera_store::{MemoryStore, ServiceUser, StoreError};
//!
//! // Users provisioned elsewhere: here, written into a memory store, which the
//! // backend under test (the same store, seen only as an `IssuingStore`) reads.
//! struct Users(Arc<MemoryStore>);
//!
//! #[async_trait]
//! impl Seed for Users {
//!     async fn seed_user(&self, user: &ServiceUser) -> Result<(), StoreError> {
//!         self.0.create_service_user(user).await
//!     }
//!     // API apps, projects, grants and client keys are left out (not kept): the
//!     // suite checks that their lookups answer "nothing stored".
//! }
//!
//! tessera_store::issuing_conformance_suite!(async {
//!     let data = Arc::new(MemoryStore::new());
//!     let store: SharedIssuingStore = data.clone();
//!     (store, Users(data))
//! });
//! # fn main() {}
//! ```
//!
//! `crates/store/tests/issuing_conformance.rs` holds two such backends: one that
//! implements the eight required methods alone over a map, and one that overrides
//! every optional method too.
//!
//! Each check panics with a message naming the contract when the backend breaks it.
//! The checks are public functions too, for a backend that wants to run some of them
//! in tests of its own.
//!
//! [`conformance_suite!`]: crate::conformance_suite
//! [`conformance_suite_shared!`]: crate::conformance_suite_shared
//! [`issuing_conformance_suite!`]: crate::issuing_conformance_suite

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tessera_scope::ScopeSet;
use time::{Duration, OffsetDateTime};

use crate::{
    AccessTokenType, ApiApp, ApiAppPatch, AppId, ClientId, ClientKey, ClientSecret, Credentials,
    DisplayName, Domain, KeyOwner, Organization, PreviousSecret, Project, ProjectId, RoleClaims,
    RoleGrant, RoleKey, SecretDigest, ServiceUser, ServiceUserPatch, SigningAlgorithm,
    SigningKeyRecord, Store, StoreError, TokenDigest, TokenId, TokenLifetime, TokenRecord, UserId,
    Username,
};

mod access;
mod issuing;
mod projects;
mod users;

pub use access::{
    access_added_concurrently_is_all_kept,
    access_added_while_its_user_is_deleted_does_not_outlive_it, access_goes_with_its_user,
    administrators_are_granted_once_and_listed_in_order, administrators_are_removed_only_when_held,
    administrators_need_their_user_and_project,
    personal_access_tokens_are_removed_only_by_their_user,
    personal_access_tokens_are_unique_and_need_their_user,
    personal_access_tokens_read_back_in_order, sample_personal_access_token,
    shared_access_added_through_both_is_all_kept, shared_access_is_seen_through_the_other,
    shared_access_racing_a_delete_does_not_outlive_it,
};
pub use issuing::{
    IntoSharedIssuingStore, IntoSharedSeed, IssuingBackend, Seed, SharedIssuingStore, SharedSeed,
    StoreSeed, api_apps_are_looked_up_by_client_id, assertion_ids_are_used_once_until_purged,
    client_keys_are_looked_up_by_key_id, grants_of_a_user_are_ordered, ping_answers,
    projects_are_looked_up_by_id, revoked_jti_concurrent_revocations_keep_the_latest_expiry,
    revoked_jtis_are_seen_until_purged, service_users_are_looked_up_by_username_and_id,
    token_concurrent_inserts_lose_nothing, token_concurrent_revocations_keep_one_time,
    token_duplicate_digest_conflicts, token_insert_and_lookup, token_purge_removes_only_expired,
    token_revoke_is_idempotent, token_roles_read_back,
};
pub use projects::{
    project_additions_racing_its_delete_do_not_outlive_it,
    project_roles_are_removed_with_their_grants, project_roles_are_unique_and_listed_in_order,
    project_roles_are_updated_in_place, projects_are_deleted_with_what_they_hold,
    sample_project_role, shared_project_additions_racing_its_delete_do_not_outlive_it,
    shared_project_changes_are_seen_through_the_other,
};
pub use users::{
    shared_user_pages_agree_across_stores, user_pages_are_ordered_both_ways,
    user_pages_are_taken_by_offset_and_limit, user_pages_filter_by_every_kind,
    user_pages_filter_with_nested_filters,
};

/// The store under test, shared by the tasks of the concurrency checks.
pub type SharedStore = Arc<dyn Store>;

/// Runs every check of the suite as one `#[test]` each. `$make` is an expression
/// evaluating to a future of a fresh, empty store; it is evaluated once per test,
/// inside the test's runtime (so it may `return` early to skip the test).
///
/// With `guarded:` before it, the future yields `(store, guard)` instead, and the
/// guard (a temporary directory, a database to drop) lives until the test ends.
///
/// The store may be any [`Store`](crate::Store) value, or a [`SharedStore`].
///
/// Besides the checks of the administration traits (administrators and personal
/// access tokens among them), signing keys and the organization, it runs every
/// check of
/// [`issuing_conformance_suite!`](crate::issuing_conformance_suite), seeding the
/// store through its administration traits ([`StoreSeed`]).
#[macro_export]
macro_rules! conformance_suite {
    (guarded: $make:expr) => {
        $crate::conformance_suite!(@guarded $make);
    };
    ($make:expr) => {
        $crate::conformance_suite!(@guarded async { ($make.await, ()) });
    };
    (@guarded $make:expr) => {
        $crate::conformance_suite!(@tests $make;
            service_user_create_and_lookup,
            same_secret_is_stored_with_different_salts,
            service_user_duplicate_username_conflicts,
            service_user_update_applies_patch,
            service_user_new_secret_replaces_old_at_once,
            service_user_previous_secret_reads_back_with_its_expiry,
            service_user_regenerating_again_replaces_the_previous_secret,
            service_user_regenerating_without_grace_clears_the_previous_secret,
            service_user_missing_is_not_found,
            service_user_delete_removes_user_and_tokens,
            service_user_list_is_ordered,
            service_user_concurrent_patches_lose_nothing,
            service_user_concurrent_rotations_form_one_chain,
            service_user_revocation_cut_off_is_stored_and_replaced,
            service_user_secret_is_cleared_at_once,
            secret_regenerated_during_authentication_never_lets_old_through,
            signing_keys_are_ordered_and_read_back,
            signing_key_insert_is_compare_and_insert,
            signing_key_rotation_race_creates_one_key,
            signing_key_delete_is_idempotent,
            projects_create_lookup_and_reserved,
            api_apps_share_the_client_namespace_with_users,
            api_app_update_replaces_secret_at_once,
            api_app_previous_secret_reads_back_with_its_expiry,
            api_app_regenerating_again_replaces_the_previous_secret,
            api_app_regenerating_without_grace_clears_the_previous_secret,
            api_app_ids_are_unique_and_read_back,
            api_app_concurrent_patches_lose_nothing,
            api_app_concurrent_rotations_form_one_chain,
            grants_are_idempotent_and_follow_their_user,
            grants_added_concurrently_are_all_kept,
            grants_added_while_their_user_is_deleted_do_not_outlive_it,
            client_keys_belong_to_their_owner,
            client_keys_go_with_their_owner,
            client_keys_added_concurrently_are_all_kept,
            client_keys_added_while_their_owner_is_deleted_do_not_outlive_it,
            organization_is_stored_once,
            organization_racing_inits_agree,
            organization_update_keeps_the_id,
            organization_concurrent_updates_are_atomic,
            administrators_are_granted_once_and_listed_in_order,
            administrators_need_their_user_and_project,
            administrators_are_removed_only_when_held,
            personal_access_tokens_read_back_in_order,
            personal_access_tokens_are_unique_and_need_their_user,
            personal_access_tokens_are_removed_only_by_their_user,
            access_goes_with_its_user,
            access_added_concurrently_is_all_kept,
            access_added_while_its_user_is_deleted_does_not_outlive_it,
            project_roles_are_unique_and_listed_in_order,
            project_roles_are_updated_in_place,
            project_roles_are_removed_with_their_grants,
            projects_are_deleted_with_what_they_hold,
            project_additions_racing_its_delete_do_not_outlive_it,
            user_pages_filter_by_every_kind,
            user_pages_filter_with_nested_filters,
            user_pages_are_ordered_both_ways,
            user_pages_are_taken_by_offset_and_limit,
        );
        $crate::issuing_conformance_suite!(@checks complete $make);
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::testkit::run(async {
                    let (store, _guard) = $make.await;
                    let store = $crate::testkit::IntoSharedStore::into_shared_store(store);
                    $crate::testkit::$name(store).await;
                });
            }
        )*
    };
}

/// Runs every check of the issuing core ([`IssuingStore`](crate::IssuingStore)) as one
/// `#[test]` each, for a backend that implements the issuing core alone (with or
/// without the optional groups of its methods). `$make` is an expression evaluating
/// to a future of `(store, seed)`: a fresh, empty store, and the [`Seed`] that puts
/// the users (and API apps, projects, grants, client keys, when the backend keeps
/// them) that the checks need where the store reads them. It is evaluated once per
/// test, inside the test's runtime (so it may `return` early to skip the test).
///
/// With `guarded:` before it, the future yields `(store, seed, guard)`, and the
/// guard lives until the test ends.
///
/// The store may be any [`IssuingStore`](crate::IssuingStore) value, or a
/// [`SharedIssuingStore`]; the seed any [`Seed`] value, or a [`SharedSeed`]. When
/// one value is both, pass two `Arc`s of it, one as a [`SharedIssuingStore`] and
/// one as a [`SharedSeed`].
///
/// [`conformance_suite!`](crate::conformance_suite) runs these checks too, for a
/// complete backend seeded through its administration traits ([`StoreSeed`]).
#[macro_export]
macro_rules! issuing_conformance_suite {
    (guarded: $make:expr) => {
        $crate::issuing_conformance_suite!(@checks seeded $make);
    };
    ($make:expr) => {
        $crate::issuing_conformance_suite!(@checks seeded async {
            let (store, seed) = $make.await;
            (store, seed, ())
        });
    };
    (@checks $how:ident $make:expr) => {
        $crate::issuing_conformance_suite!(@tests $how $make;
            service_users_are_looked_up_by_username_and_id,
            api_apps_are_looked_up_by_client_id,
            projects_are_looked_up_by_id,
            grants_of_a_user_are_ordered,
            client_keys_are_looked_up_by_key_id,
            token_insert_and_lookup,
            token_duplicate_digest_conflicts,
            token_revoke_is_idempotent,
            token_concurrent_revocations_keep_one_time,
            token_purge_removes_only_expired,
            token_concurrent_inserts_lose_nothing,
            token_roles_read_back,
            revoked_jtis_are_seen_until_purged,
            revoked_jti_concurrent_revocations_keep_the_latest_expiry,
            assertion_ids_are_used_once_until_purged,
            ping_answers,
        );
    };
    (@tests seeded $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::testkit::run(async {
                    let (store, seed, _guard) = $make.await;
                    let backend = $crate::testkit::IssuingBackend::new(store, seed);
                    $crate::testkit::$name(backend).await;
                });
            }
        )*
    };
    (@tests complete $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::testkit::run(async {
                    let (store, _guard) = $make.await;
                    let store = $crate::testkit::IntoSharedStore::into_shared_store(store);
                    let backend = $crate::testkit::IssuingBackend::of_store(store);
                    $crate::testkit::$name(backend).await;
                });
            }
        )*
    };
}

/// Runs every check of several instances on one database as one `#[test]` each.
/// `$make` is an expression evaluating to a future of two stores on one fresh,
/// empty database (two handles that share nothing but the database, as two server
/// processes would); it is evaluated once per test, inside the test's runtime.
///
/// With `guarded:` before it, the future yields `(store_a, store_b, guard)`, and
/// the guard lives until the test ends.
///
/// A backend whose data lives in its process (such as [`MemoryStore`]) passes two
/// [`SharedStore`] clones of one store.
///
/// [`MemoryStore`]: crate::MemoryStore
#[macro_export]
macro_rules! conformance_suite_shared {
    (guarded: $make:expr) => {
        $crate::conformance_suite_shared!(@guarded $make);
    };
    ($make:expr) => {
        $crate::conformance_suite_shared!(@guarded async {
            let (a, b) = $make.await;
            (a, b, ())
        });
    };
    (@guarded $make:expr) => {
        $crate::conformance_suite_shared!(@tests $make;
            shared_secret_regenerated_through_one_stops_at_once_through_the_other,
            shared_secret_cleared_through_one_stops_at_once_through_the_other,
            shared_revocation_cut_off_set_through_one_is_seen_through_the_other,
            shared_token_revoked_through_one_is_revoked_through_the_other,
            shared_replayed_assertion_through_the_other_is_refused,
            shared_organization_init_races_agree,
            shared_signing_key_inserts_race,
            shared_concurrent_patches_lose_nothing,
            shared_client_namespace_is_claimed_once,
            shared_inserts_through_both_lose_nothing,
            shared_changes_are_seen_through_the_other,
            shared_deletes_are_seen_through_the_other,
            shared_additions_racing_a_delete_do_not_outlive_it,
            shared_access_is_seen_through_the_other,
            shared_access_added_through_both_is_all_kept,
            shared_access_racing_a_delete_does_not_outlive_it,
            shared_project_changes_are_seen_through_the_other,
            shared_project_additions_racing_its_delete_do_not_outlive_it,
            shared_user_pages_agree_across_stores,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::testkit::run(async {
                    let (a, b, _guard) = $make.await;
                    let stores = [
                        $crate::testkit::IntoSharedStore::into_shared_store(a),
                        $crate::testkit::IntoSharedStore::into_shared_store(b),
                    ];
                    $crate::testkit::$name(stores).await;
                });
            }
        )*
    };
}

/// A store value the suites accept: any [`Store`], or a [`SharedStore`] already.
pub trait IntoSharedStore {
    /// The store, shared.
    fn into_shared_store(self) -> SharedStore;
}

impl<T: Store + 'static> IntoSharedStore for T {
    fn into_shared_store(self) -> SharedStore {
        Arc::new(self)
    }
}

impl IntoSharedStore for SharedStore {
    fn into_shared_store(self) -> SharedStore {
        self
    }
}

/// Runs one test on a Tokio runtime of its own (multi-threaded, two workers), for
/// the tests that the suites' macros generate.
///
/// Panics when the runtime cannot be built, or when `test` panics.
pub fn run(test: impl Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a Tokio runtime for the conformance test: {e}"));
    runtime.block_on(test);
}

/// A fixed point in time for the checks.
pub fn t0() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_700_000_000)
}

/// A valid username (panics on an invalid literal).
pub fn username(name: &str) -> Username {
    Username::new(name).unwrap_or_else(|e| panic!("test username {name:?}: {e}"))
}

/// A digest of `secret`, with a fresh salt (panics when no salt can be drawn).
pub fn digest_of(secret: &ClientSecret) -> SecretDigest {
    SecretDigest::of(secret).unwrap_or_else(|e| panic!("{e}"))
}

/// A new user with a secret, not yet stored; returns the secret too.
pub fn sample_user(name: &str) -> (ServiceUser, ClientSecret) {
    let mut user = ServiceUser::new(username(name), t0()).unwrap_or_else(|e| panic!("{e}"));
    let secret = ClientSecret::generate().unwrap_or_else(|e| panic!("{e}"));
    user.credentials = Credentials::new(digest_of(&secret));
    (user, secret)
}

/// A token record for `user`, issued at `t0()` and expiring after `ttl_secs`.
pub fn sample_token(user: &ServiceUser, token: &str, ttl_secs: i64) -> TokenRecord {
    TokenRecord {
        digest: TokenDigest::of(token),
        jti: TokenId::generate().unwrap_or_else(|e| panic!("{e}")),
        user_id: user.id.clone(),
        client_id: user.username.clone(),
        scopes: ScopeSet::parse("openid profile urn:zitadel:iam:org:project:id:zitadel:aud")
            .unwrap_or_else(|e| panic!("{e}")),
        audience: vec!["zitadel".to_owned(), user.username.to_string()],
        roles: RoleClaims::default(),
        issued_at: t0(),
        expires_at: t0() + Duration::seconds(ttl_secs),
        revoked_at: None,
    }
}

async fn create(store: &SharedStore, name: &str) -> (ServiceUser, ClientSecret) {
    let (user, secret) = sample_user(name);
    store.create_service_user(&user).await.unwrap_or_else(|e| panic!("create {name}: {e}"));
    (user, secret)
}

/// Two users (and an API app) given the same operator-chosen secret store
/// different digests (each has a salt of its own), and the secret authenticates
/// each of them.
pub async fn same_secret_is_stored_with_different_salts(store: SharedStore) {
    let shared = ClientSecret::provided("the-same-operator-chosen-secret-for-both")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut users = Vec::new();
    for name in ["twin-a", "twin-b"] {
        let (mut user, _) = sample_user(name);
        user.credentials = Credentials::new(digest_of(&shared));
        store.create_service_user(&user).await.expect("create");
        users.push(store.service_user_by_username(&user.username).await.expect("lookup"));
    }
    let [Some(a), Some(b)] = &users[..] else { panic!("the users read back: {users:?}") };
    let (da, db) =
        (a.credentials.secret.expect("a secret"), b.credentials.secret.expect("a secret"));
    assert_ne!(da.as_bytes(), db.as_bytes(), "one secret, two users: two stored digests");
    assert_ne!(da.salt(), db.salt());
    for user in [a, b] {
        assert!(user.credentials.matches(shared.expose(), t0()), "{}", user.username);
        assert!(!user.credentials.matches(&"x".repeat(40), t0()), "{}", user.username);
    }
    let listed = store.list_service_users().await.expect("list");
    assert_eq!(listed, [a.clone(), b.clone()], "listed as stored");

    let orders = sample_project("orders");
    store.create_project(&orders).await.expect("create project");
    let (mut app, _) = sample_app(&orders, "twin-api");
    app.credentials = Credentials::new(digest_of(&shared));
    store.create_api_app(&app).await.expect("create app");
    let app = store.api_app_by_client_id(&app.client_id).await.expect("lookup").expect("app");
    let dc = app.credentials.secret.expect("a secret");
    assert!(dc.as_bytes() != da.as_bytes() && dc.as_bytes() != db.as_bytes(), "an app too");
    assert!(app.credentials.matches(shared.expose(), t0()));
}

/// A created user reads back equal, by username and by id.
pub async fn service_user_create_and_lookup(store: SharedStore) {
    let (user, _) = create(&store, "alpha").await;
    let by_name = store.service_user_by_username(&user.username).await.expect("lookup by name");
    assert_eq!(by_name.as_ref(), Some(&user), "a created user must read back unchanged");
    let by_id = store.service_user_by_id(&user.id).await.expect("lookup by id");
    assert_eq!(by_id.as_ref(), Some(&user), "lookup by id must find the user");
    let missing = store.service_user_by_username(&username("nobody")).await.expect("lookup");
    assert_eq!(missing, None, "an unknown username must not be found");
    let missing = store.service_user_by_id(&UserId::generate().expect("id")).await.expect("lookup");
    assert_eq!(missing, None, "an unknown id must not be found");

    let (mut described, _) = sample_user("described");
    described.description = "Exports invoices — nightly, 'quoted' \"too\"".to_owned();
    store.create_service_user(&described).await.expect("create");
    let by_name = store.service_user_by_username(&described.username).await.expect("lookup");
    assert_eq!(by_name.as_ref(), Some(&described), "a description must read back unchanged");
    let by_id = store.service_user_by_id(&described.id).await.expect("lookup");
    assert_eq!(by_id.as_ref(), Some(&described), "a description must read back by id");
    let listed = store.list_service_users().await.expect("list");
    assert_eq!(listed, [user, described], "and listed");
}

/// A second user with a taken username is a conflict and changes nothing.
pub async fn service_user_duplicate_username_conflicts(store: SharedStore) {
    let (first, _) = create(&store, "dup").await;
    let (second, _) = sample_user("dup");
    let err = store.create_service_user(&second).await.expect_err("duplicate must fail");
    assert!(
        matches!(err, StoreError::Conflict(_)),
        "duplicate username must be Conflict, got {err:?}"
    );
    let stored = store.service_user_by_username(&first.username).await.expect("lookup");
    assert_eq!(stored, Some(first), "a failed create must leave the first user unchanged");
    assert_eq!(store.list_service_users().await.expect("list").len(), 1);
}

/// A patch changes exactly the fields it names.
pub async fn service_user_update_applies_patch(store: SharedStore) {
    let (user, _) = create(&store, "patchme").await;
    let mut patch = ServiceUserPatch::at(t0() + Duration::seconds(10));
    patch.access_token_type = Some(AccessTokenType::Jwt);
    patch.token_lifetime = Some(TokenLifetime::from_secs(600).expect("lifetime"));
    patch.display_name = Some(DisplayName::new("Patched name").expect("name"));
    patch.description = Some("Patched purpose".to_owned());
    patch.enabled = Some(false);
    let updated = store.update_service_user(&user.username, &patch).await.expect("update");
    let mut expected = user.clone();
    expected.apply(&patch);
    assert_eq!(updated, expected, "update must return the patched user");
    assert_eq!(updated.description, "Patched purpose");
    let stored = store.service_user_by_username(&user.username).await.expect("lookup");
    assert_eq!(stored, Some(expected.clone()), "the patch must be stored");

    let mut unrelated = ServiceUserPatch::at(t0() + Duration::seconds(20));
    unrelated.enabled = Some(true);
    let updated = store.update_service_user(&user.username, &unrelated).await.expect("update");
    assert_eq!(updated.description, "Patched purpose", "a patch without it keeps it");
    let mut removed = ServiceUserPatch::at(t0() + Duration::seconds(30));
    removed.description = Some(String::new());
    let updated = store.update_service_user(&user.username, &removed).await.expect("update");
    assert_eq!(updated.description, "", "an empty description removes it");
    let stored = store.service_user_by_id(&user.id).await.expect("lookup");
    assert_eq!(stored, Some(updated), "the removal must be stored");
}

/// Once a new secret is stored, the old digest is gone.
pub async fn service_user_new_secret_replaces_old_at_once(store: SharedStore) {
    let (user, old) = create(&store, "rotate").await;
    let new = ClientSecret::generate().expect("secret");
    let mut patch = ServiceUserPatch::at(t0());
    patch.secret = Some(digest_of(&new));
    store.update_service_user(&user.username, &patch).await.expect("update");
    let stored =
        store.service_user_by_username(&user.username).await.expect("lookup").expect("user exists");
    let digest = stored.credentials.secret.expect("a secret is set");
    assert!(digest.verify(new.expose()), "the new secret must verify");
    assert!(!digest.verify(old.expose()), "the old secret must stop working at once");
    assert_eq!(
        stored.credentials.previous, None,
        "without a grace period no previous secret is kept"
    );
    assert!(
        !stored.credentials.matches(old.expose(), t0()),
        "the old secret must stop working at once"
    );
}

/// The secret `current` is replaced by (from `rotate_user` and `rotate_app`).
fn fresh_secret() -> ClientSecret {
    ClientSecret::generate().unwrap_or_else(|e| panic!("{e}"))
}

/// Gives the user `name` a new secret, keeping the current one until `keep_until`
/// when given; returns the user as stored afterwards (checked against the returned
/// record and `apply`) and the new secret.
async fn rotate_user(
    store: &SharedStore,
    name: &Username,
    keep_until: Option<OffsetDateTime>,
    at: OffsetDateTime,
) -> (ServiceUser, ClientSecret) {
    let before = store.service_user_by_username(name).await.expect("lookup").expect("user exists");
    let new = fresh_secret();
    let mut patch = ServiceUserPatch::at(at);
    patch.secret = Some(digest_of(&new));
    patch.keep_previous_until = keep_until;
    let updated = store.update_service_user(name, &patch).await.expect("update");
    let mut expected = before;
    expected.apply(&patch);
    assert_eq!(updated, expected, "update must return the patched user");
    let stored = store.service_user_by_username(name).await.expect("lookup");
    assert_eq!(stored.as_ref(), Some(&expected), "the rotation must be stored as applied");
    (expected, new)
}

/// A secret replaced with a grace period is kept as the previous secret with its
/// expiry in whole seconds, accepted until then; other patches leave it alone.
pub async fn service_user_previous_secret_reads_back_with_its_expiry(store: SharedStore) {
    let (user, old) = create(&store, "graceful").await;
    let until = t0() + Duration::seconds(60) + Duration::milliseconds(750);
    let (stored, new) = rotate_user(&store, &user.username, Some(until), t0()).await;
    let old_digest = user.credentials.secret.expect("a secret");
    let expected = PreviousSecret { digest: old_digest, expires_at: t0() + Duration::seconds(60) };
    assert_eq!(
        stored.credentials.previous,
        Some(expected),
        "the old secret is kept, to the second"
    );
    assert!(stored.credentials.matches(new.expose(), t0()), "the new secret works");
    assert!(
        stored.credentials.matches(old.expose(), t0() + Duration::seconds(59)),
        "the old one too"
    );
    assert!(
        !stored.credentials.matches(old.expose(), t0() + Duration::seconds(60)),
        "the old secret stops at its expiry"
    );
    let listed = store.list_service_users().await.expect("list");
    assert_eq!(listed, vec![stored.clone()], "a listed user carries its previous secret");
    let by_id = store.service_user_by_id(&user.id).await.expect("lookup");
    assert_eq!(by_id.as_ref(), Some(&stored));

    let mut unrelated = ServiceUserPatch::at(t0() + Duration::seconds(5));
    unrelated.enabled = Some(false);
    let updated = store.update_service_user(&user.username, &unrelated).await.expect("update");
    assert_eq!(updated.credentials.previous, Some(expected), "a patch without a secret keeps it");

    let (mut created, _) = sample_user("created-mid-rotation");
    created.credentials.previous = Some(PreviousSecret::new(digest_of(&old), t0()));
    store.create_service_user(&created).await.expect("create");
    let read = store.service_user_by_username(&created.username).await.expect("lookup");
    assert_eq!(read, Some(created), "a created user's previous secret reads back");
}

/// Regenerating during a grace period makes the current secret the previous one and
/// drops the older one: at most two secrets are valid.
pub async fn service_user_regenerating_again_replaces_the_previous_secret(store: SharedStore) {
    let (user, first) = create(&store, "twice").await;
    let (after_second, second) =
        rotate_user(&store, &user.username, Some(t0() + Duration::seconds(60)), t0()).await;
    let (stored, third) = rotate_user(
        &store,
        &user.username,
        Some(t0() + Duration::seconds(90)),
        t0() + Duration::seconds(10),
    )
    .await;
    assert_replaced_again(
        stored.credentials.previous,
        after_second.credentials.secret,
        |p, t| stored.credentials.matches(p, t),
        [&first, &second, &third],
    );
}

/// Regenerating without a grace period clears the previous secret: only the new
/// secret works.
pub async fn service_user_regenerating_without_grace_clears_the_previous_secret(
    store: SharedStore,
) {
    let (user, first) = create(&store, "abrupt").await;
    let (_, second) =
        rotate_user(&store, &user.username, Some(t0() + Duration::seconds(60)), t0()).await;
    let (stored, third) =
        rotate_user(&store, &user.username, None, t0() + Duration::seconds(10)).await;
    assert_cleared(
        stored.credentials.previous,
        |p, t| stored.credentials.matches(p, t),
        [&first, &second, &third],
    );
}

/// Patches the user `name` with `clear_secret` (and `secret`, when given) at `at`;
/// returns the user as stored afterwards, checked against the returned record and
/// `apply`, by username, by id and in the list.
async fn clear_user_secret(
    store: &SharedStore,
    name: &Username,
    secret: Option<SecretDigest>,
    at: OffsetDateTime,
) -> ServiceUser {
    let before = store.service_user_by_username(name).await.expect("lookup").expect("user");
    let mut patch = ServiceUserPatch::at(at);
    patch.clear_secret = true;
    patch.secret = secret;
    let updated = store.update_service_user(name, &patch).await.expect("update");
    let mut expected = before;
    expected.apply(&patch);
    assert_eq!(updated, expected, "update must return the patched user");
    let by_name = store.service_user_by_username(name).await.expect("lookup");
    assert_eq!(by_name.as_ref(), Some(&expected), "the patch must be stored (by username)");
    let by_id = store.service_user_by_id(&expected.id).await.expect("lookup");
    assert_eq!(by_id.as_ref(), Some(&expected), "the patch must be stored (by id)");
    let listed = store.list_service_users().await.expect("list");
    assert!(listed.contains(&expected), "the patch must be stored (listed): {listed:?}");
    expected
}

/// A patch with `clear_secret` removes the current and the previous secret at
/// once, and changes nothing else; with a new `secret` too, the new secret wins;
/// a later patch with a secret gives the user one again.
pub async fn service_user_secret_is_cleared_at_once(store: SharedStore) {
    let (user, first) = create(&store, "cleared").await;
    let (_, second) = rotate_user(&store, &user.username, Some(at(60)), at(1)).await;
    let cleared = clear_user_secret(&store, &user.username, None, at(2)).await;
    assert_eq!(cleared.credentials, Credentials::NONE, "no secret, no previous secret");
    for secret in [&first, &second] {
        assert!(!cleared.credentials.matches(secret.expose(), at(3)), "no secret works");
    }
    let untouched = ServiceUser {
        credentials: Credentials::NONE,
        updated_at: at(2),
        ..store.service_user_by_id(&user.id).await.expect("lookup").expect("user")
    };
    assert_eq!(cleared, untouched, "nothing else changes");
    let again = clear_user_secret(&store, &user.username, None, at(3)).await;
    assert_eq!(again.credentials, Credentials::NONE, "clearing no secret is no error");

    let third = fresh_secret();
    let winner = clear_user_secret(&store, &user.username, Some(digest_of(&third)), at(4)).await;
    assert!(winner.credentials.matches(third.expose(), at(5)), "a new secret wins");
    assert_eq!(winner.credentials.previous, None);
    let (after, fourth) = rotate_user(&store, &user.username, Some(at(90)), at(6)).await;
    assert!(after.credentials.matches(fourth.expose(), at(7)));
    assert!(after.credentials.matches(third.expose(), at(7)), "rotations work as before");
}

/// The checks after a second rotation within a grace period (60 s, then 90 s at
/// `t0() + 10 s`), for users and API apps alike: the second secret is the previous
/// one with the new expiry, and the first stops at once. `secrets` are the first,
/// second and third secrets, `second_digest` the digest the second rotation stored;
/// `matches` is the record's `secret_matches`.
fn assert_replaced_again(
    previous: Option<PreviousSecret>,
    second_digest: Option<SecretDigest>,
    matches: impl Fn(&str, OffsetDateTime) -> bool,
    [first, second, third]: [&ClientSecret; 3],
) {
    let second_digest = second_digest.expect("the second rotation stored a secret");
    assert!(second_digest.verify(second.expose()));
    assert_eq!(
        previous,
        Some(PreviousSecret { digest: second_digest, expires_at: t0() + Duration::seconds(90) }),
        "the secret replaced last is the previous one, with the new expiry"
    );
    let now = t0() + Duration::seconds(11);
    assert!(matches(third.expose(), now));
    assert!(matches(second.expose(), now));
    assert!(!matches(first.expose(), now), "the oldest secret stops at once");
}

/// The checks after a rotation without a grace period that followed one with it:
/// no previous secret, and only the newest secret works.
fn assert_cleared(
    previous: Option<PreviousSecret>,
    matches: impl Fn(&str, OffsetDateTime) -> bool,
    [first, second, third]: [&ClientSecret; 3],
) {
    assert_eq!(previous, None, "no grace period, no previous secret");
    let now = t0() + Duration::seconds(11);
    assert!(matches(third.expose(), now));
    assert!(!matches(second.expose(), now), "the replaced secret stops at once");
    assert!(!matches(first.expose(), now));
}

/// Changing or deleting a missing user is NotFound.
pub async fn service_user_missing_is_not_found(store: SharedStore) {
    let ghost = username("ghost");
    let err = store.update_service_user(&ghost, &ServiceUserPatch::at(t0())).await;
    assert!(matches!(err, Err(StoreError::NotFound(_))), "update of a missing user: {err:?}");
    let err = store.delete_service_user(&ghost).await;
    assert!(matches!(err, Err(StoreError::NotFound(_))), "delete of a missing user: {err:?}");
}

/// Deleting a user removes it and its token records, and nobody else's.
pub async fn service_user_delete_removes_user_and_tokens(store: SharedStore) {
    let (gone, _) = create(&store, "gone").await;
    let (kept, _) = create(&store, "kept").await;
    store.insert_token(&sample_token(&gone, "gone-token", 60)).await.expect("insert");
    store.insert_token(&sample_token(&kept, "kept-token", 60)).await.expect("insert");
    store.delete_service_user(&gone.username).await.expect("delete");
    assert_eq!(store.service_user_by_username(&gone.username).await.expect("lookup"), None);
    assert_eq!(store.service_user_by_id(&gone.id).await.expect("lookup"), None);
    let token = store.token_by_digest(&TokenDigest::of("gone-token")).await.expect("lookup");
    assert_eq!(token, None, "a deleted user's tokens must be deleted");
    let token = store.token_by_digest(&TokenDigest::of("kept-token")).await.expect("lookup");
    assert!(token.is_some(), "other users' tokens must stay");
    // The username is free again.
    create(&store, "gone").await;
}

/// `list_service_users` returns every user ordered by username.
pub async fn service_user_list_is_ordered(store: SharedStore) {
    for name in ["charlie", "alpha", "bravo"] {
        create(&store, name).await;
    }
    let names: Vec<String> = store
        .list_service_users()
        .await
        .expect("list")
        .into_iter()
        .map(|u| u.username.to_string())
        .collect();
    assert_eq!(names, ["alpha", "bravo", "charlie"]);
}

/// Sets the revocation cut-off of the user `name` to `before` with a patch at
/// `at`; returns the user as stored afterwards, checked against the returned record
/// and `apply`, by username and by id.
async fn set_cut_off(
    store: &SharedStore,
    name: &Username,
    before: OffsetDateTime,
    at: OffsetDateTime,
) -> ServiceUser {
    let stored_before = store.service_user_by_username(name).await.expect("lookup").expect("user");
    let mut patch = ServiceUserPatch::at(at);
    patch.tokens_revoked_before = Some(before);
    let updated = store.update_service_user(name, &patch).await.expect("update");
    let mut expected = stored_before;
    expected.apply(&patch);
    assert_eq!(updated, expected, "update must return the user with its cut-off");
    let by_name = store.service_user_by_username(name).await.expect("lookup");
    assert_eq!(by_name.as_ref(), Some(&expected), "the cut-off must be stored (by username)");
    let by_id = store.service_user_by_id(&expected.id).await.expect("lookup");
    assert_eq!(by_id.as_ref(), Some(&expected), "the cut-off must be stored (by id)");
    expected
}

/// A patch sets a user's revocation cut-off, in whole seconds, read back by username
/// and by id; a later patch with another value replaces it (the last patch wins,
/// earlier or later); a patch without it leaves it unchanged; a user created with
/// one reads it back.
pub async fn service_user_revocation_cut_off_is_stored_and_replaced(store: SharedStore) {
    let (user, _) = create(&store, "revoked").await;
    let (other, _) = create(&store, "bystander").await;
    assert_eq!(user.tokens_revoked_before, None, "a new user has no cut-off");

    let stored =
        set_cut_off(&store, &user.username, at(100) + Duration::milliseconds(700), at(10)).await;
    assert_eq!(stored.tokens_revoked_before, Some(at(100)), "the cut-off, to the second");
    let listed = store.list_service_users().await.expect("list");
    assert!(listed.contains(&stored), "a listed user carries its cut-off: {listed:?}");

    let stored = set_cut_off(&store, &user.username, at(50), at(20)).await;
    assert_eq!(stored.tokens_revoked_before, Some(at(50)), "a later patch replaces the cut-off");
    let stored = set_cut_off(&store, &user.username, at(200), at(30)).await;
    assert_eq!(stored.tokens_revoked_before, Some(at(200)), "a later patch replaces the cut-off");

    let mut unrelated = ServiceUserPatch::at(at(40));
    unrelated.enabled = Some(false);
    unrelated.display_name = Some(DisplayName::new("Still revoked").expect("name"));
    let updated = store.update_service_user(&user.username, &unrelated).await.expect("update");
    assert_eq!(updated.tokens_revoked_before, Some(at(200)), "a patch without it keeps it");
    let by_id = store.service_user_by_id(&user.id).await.expect("lookup").expect("user");
    assert_eq!(by_id.tokens_revoked_before, Some(at(200)), "a patch without it keeps it");
    rotate_user(&store, &user.username, Some(at(90)), at(50)).await;
    let by_name =
        store.service_user_by_username(&user.username).await.expect("lookup").expect("user");
    assert_eq!(by_name.tokens_revoked_before, Some(at(200)), "a rotation keeps it");

    let untouched = store.service_user_by_id(&other.id).await.expect("lookup");
    assert_eq!(untouched, Some(other), "another user's cut-off is its own");

    let (mut created, _) = sample_user("created-revoked");
    created.tokens_revoked_before = Some(at(5));
    store.create_service_user(&created).await.expect("create");
    let read = store.service_user_by_username(&created.username).await.expect("lookup");
    assert_eq!(read.as_ref(), Some(&created), "a created user's cut-off reads back");
    let read = store.service_user_by_id(&created.id).await.expect("lookup");
    assert_eq!(read, Some(created), "a created user's cut-off reads back by id");
}

/// While readers authenticate, a regenerated secret replaces the old one; after the
/// update returns, no lookup may still accept the old secret.
pub async fn secret_regenerated_during_authentication_never_lets_old_through(store: SharedStore) {
    let (user, old) = create(&store, "racer").await;
    let old = Arc::new(old);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let store = store.clone();
        let name = user.username.clone();
        let stop = stop.clone();
        readers.spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.service_user_by_username(&name).await.expect("lookup").expect("exists");
                tokio::task::yield_now().await;
            }
        });
    }
    let new = ClientSecret::generate().expect("secret");
    let mut patch = ServiceUserPatch::at(t0());
    patch.secret = Some(digest_of(&new));
    store.update_service_user(&user.username, &patch).await.expect("update");
    for _ in 0..50 {
        let digest = store
            .service_user_by_username(&user.username)
            .await
            .expect("lookup")
            .and_then(|u| u.credentials.secret)
            .expect("secret");
        assert!(!digest.verify(old.expose()), "the old secret was accepted after regeneration");
        assert!(digest.verify(new.expose()), "the new secret must verify");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    while let Some(joined) = readers.join_next().await {
        joined.expect("reader panicked");
    }
}

/// A signing key record activating `offset_secs` after `t0()`.
pub fn sample_signing_key(kid: &str, offset_secs: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_owned(),
        algorithm: SigningAlgorithm::Es256,
        public_jwk: format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
        sealed_private_key: vec![1, 2, 3, kid.len() as u8],
        created_at: t0(),
        activates_at: t0() + Duration::seconds(offset_secs),
    }
}

/// Keys read back equal, ordered by activation time.
pub async fn signing_keys_are_ordered_and_read_back(store: SharedStore) {
    assert!(store.signing_keys().await.expect("list").is_empty(), "a fresh store has no keys");
    let first = sample_signing_key("k1", 0);
    let mut second = sample_signing_key("k2", 3600);
    second.algorithm = SigningAlgorithm::Rs256;
    assert!(store.insert_signing_key(&first, None).await.expect("insert first"));
    assert!(store.insert_signing_key(&second, Some("k1")).await.expect("insert second"));
    let keys = store.signing_keys().await.expect("list");
    assert_eq!(keys, vec![first, second], "keys must read back unchanged, in activation order");
}

/// An insert whose expectation of the newest key is stale stores nothing.
pub async fn signing_key_insert_is_compare_and_insert(store: SharedStore) {
    assert!(store.insert_signing_key(&sample_signing_key("k1", 0), None).await.expect("insert"));
    let stale =
        store.insert_signing_key(&sample_signing_key("k2", 10), None).await.expect("insert");
    assert!(!stale, "expecting an empty store when it holds k1 must fail");
    let wrong = store
        .insert_signing_key(&sample_signing_key("k2", 10), Some("nope"))
        .await
        .expect("insert");
    assert!(!wrong, "expecting the wrong newest key must fail");
    let kids: Vec<String> =
        store.signing_keys().await.expect("list").into_iter().map(|k| k.kid).collect();
    assert_eq!(kids, ["k1"], "failed inserts store nothing");
    let dup = store.insert_signing_key(&sample_signing_key("k1", 20), Some("k1")).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "a duplicate kid is a conflict: {dup:?}");
}

/// Instances racing to rotate from the same newest key create exactly one key.
pub async fn signing_key_rotation_race_creates_one_key(store: SharedStore) {
    assert!(store.insert_signing_key(&sample_signing_key("base", 0), None).await.expect("insert"));
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = store.clone();
        racers.spawn(async move {
            let key = sample_signing_key(&format!("next-{i}"), 3600);
            store.insert_signing_key(&key, Some("base")).await.expect("racing insert")
        });
    }
    let mut winners = 0;
    while let Some(joined) = racers.join_next().await {
        if joined.expect("racer panicked") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one racer may create the next key");
    assert_eq!(store.signing_keys().await.expect("list").len(), 2);
}

/// Deleting removes the key once and reports whether it existed.
pub async fn signing_key_delete_is_idempotent(store: SharedStore) {
    assert!(store.insert_signing_key(&sample_signing_key("k1", 0), None).await.expect("insert"));
    assert!(
        store.insert_signing_key(&sample_signing_key("k2", 5), Some("k1")).await.expect("insert")
    );
    assert!(store.delete_signing_key("k1").await.expect("delete"));
    assert!(!store.delete_signing_key("k1").await.expect("delete again"));
    let kids: Vec<String> =
        store.signing_keys().await.expect("list").into_iter().map(|k| k.kid).collect();
    assert_eq!(kids, ["k2"]);
}

/// A project with id `id`, not yet stored.
pub fn sample_project(id: &str) -> Project {
    let id = ProjectId::new(id).unwrap_or_else(|e| panic!("test project id {id:?}: {e}"));
    Project::new(id, DisplayName::new("Orders").unwrap_or_else(|e| panic!("{e}")), t0())
}

/// An API app of `project` with client ID `client_id`, a generated app id and a
/// secret, not yet stored.
pub fn sample_app(project: &Project, client_id: &str) -> (ApiApp, ClientSecret) {
    let secret = ClientSecret::generate().unwrap_or_else(|e| panic!("{e}"));
    let app = ApiApp {
        client_id: ClientId::new(client_id).unwrap_or_else(|e| panic!("{e}")),
        app_id: AppId::generate().unwrap_or_else(|e| panic!("{e}")),
        project_id: project.id.clone(),
        name: DisplayName::new("Orders API").unwrap_or_else(|e| panic!("{e}")),
        credentials: Credentials::new(digest_of(&secret)),
        enabled: true,
        created_at: t0(),
        updated_at: t0(),
    };
    (app, secret)
}

fn role(key: &str) -> RoleKey {
    RoleKey::new(key).unwrap_or_else(|e| panic!("{e}"))
}

/// Projects read back; the reserved project exists and cannot be created again.
pub async fn projects_create_lookup_and_reserved(store: SharedStore) {
    let reserved = store.project_by_id(&ProjectId::reserved()).await.expect("lookup");
    assert_eq!(reserved, Some(Project::reserved()), "the reserved project exists in every store");
    let err = store.create_project(&Project::reserved()).await;
    assert!(matches!(err, Err(StoreError::Conflict(_))), "the reserved id is taken: {err:?}");
    let orders = sample_project("orders");
    store.create_project(&orders).await.expect("create");
    assert_eq!(store.project_by_id(&orders.id).await.expect("lookup"), Some(orders.clone()));
    let dup = store.create_project(&sample_project("orders")).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "duplicate project id: {dup:?}");
    let ids: Vec<String> =
        store.list_projects().await.expect("list").into_iter().map(|p| p.id.to_string()).collect();
    assert_eq!(ids, ["orders", "zitadel"]);
    let missing = store.project_by_id(&ProjectId::new("nope").expect("id")).await.expect("lookup");
    assert_eq!(missing, None);
    let renamed = DisplayName::new("Orders v2").expect("name");
    store.rename_project(&orders.id, &renamed).await.expect("rename");
    let stored = store.project_by_id(&orders.id).await.expect("lookup").expect("exists");
    assert_eq!(stored.name, renamed);
    let err = store.rename_project(&ProjectId::new("nope").expect("id"), &renamed).await;
    assert!(matches!(err, Err(StoreError::NotFound(_))), "rename of a missing project: {err:?}");
}

/// API app client IDs and usernames are one namespace; apps need their project.
pub async fn api_apps_share_the_client_namespace_with_users(store: SharedStore) {
    let orders = sample_project("orders");
    store.create_project(&orders).await.expect("create project");
    let (app, _) = sample_app(&orders, "orders-api");
    store.create_api_app(&app).await.expect("create app");
    assert_eq!(
        store.api_app_by_client_id(&app.client_id).await.expect("lookup"),
        Some(app.clone())
    );

    let (user, _) = sample_user("orders-api");
    let clash = store.create_service_user(&user).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "username taken by an app: {clash:?}");
    create(&store, "billing-job").await;
    let (clash_app, _) = sample_app(&orders, "billing-job");
    let clash = store.create_api_app(&clash_app).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "client ID taken by a user: {clash:?}");
    let (dup, _) = sample_app(&orders, "orders-api");
    assert!(matches!(store.create_api_app(&dup).await, Err(StoreError::Conflict(_))));

    let (orphan, _) = sample_app(&sample_project("ghost"), "ghost-api");
    let err = store.create_api_app(&orphan).await;
    assert!(matches!(err, Err(StoreError::NotFound(_))), "app of a missing project: {err:?}");
    let ids: Vec<String> = store
        .list_api_apps()
        .await
        .expect("list")
        .into_iter()
        .map(|a| a.client_id.to_string())
        .collect();
    assert_eq!(ids, ["orders-api"]);
    store.delete_api_app(&app.client_id).await.expect("delete");
    assert_eq!(store.api_app_by_client_id(&app.client_id).await.expect("lookup"), None);
    let err = store.delete_api_app(&app.client_id).await;
    assert!(matches!(err, Err(StoreError::NotFound(_))), "second delete: {err:?}");
}

/// A replaced API app secret stops working at once; patches apply what they name.
pub async fn api_app_update_replaces_secret_at_once(store: SharedStore) {
    let orders = sample_project("orders");
    store.create_project(&orders).await.expect("create project");
    let (app, old) = sample_app(&orders, "orders-api");
    store.create_api_app(&app).await.expect("create app");
    let new = ClientSecret::generate().expect("secret");
    let mut patch = ApiAppPatch::at(t0() + Duration::seconds(3));
    patch.secret = Some(digest_of(&new));
    patch.enabled = Some(false);
    let updated = store.update_api_app(&app.client_id, &patch).await.expect("update");
    let mut expected = app.clone();
    expected.apply(&patch);
    assert_eq!(updated, expected);
    let stored = store.api_app_by_client_id(&app.client_id).await.expect("lookup").expect("exists");
    let digest = stored.credentials.secret.expect("secret");
    assert!(digest.verify(new.expose()) && !digest.verify(old.expose()));
    assert_eq!(
        stored.credentials.previous, None,
        "without a grace period no previous secret is kept"
    );
    assert!(!stored.enabled);
    let missing = ClientId::new("missing").expect("id");
    let err = store.update_api_app(&missing, &ApiAppPatch::at(t0())).await;
    assert!(matches!(err, Err(StoreError::NotFound(_))), "{err:?}");
}

/// Gives the app `client_id` a new secret, keeping the current one until
/// `keep_until` when given; returns the app as stored afterwards (checked against
/// the returned record and `apply`) and the new secret.
async fn rotate_app(
    store: &SharedStore,
    client_id: &ClientId,
    keep_until: Option<OffsetDateTime>,
    at: OffsetDateTime,
) -> (ApiApp, ClientSecret) {
    let before = store.api_app_by_client_id(client_id).await.expect("lookup").expect("app exists");
    let new = fresh_secret();
    let mut patch = ApiAppPatch::at(at);
    patch.secret = Some(digest_of(&new));
    patch.keep_previous_until = keep_until;
    let updated = store.update_api_app(client_id, &patch).await.expect("update");
    let mut expected = before;
    expected.apply(&patch);
    assert_eq!(updated, expected, "update must return the patched app");
    let stored = store.api_app_by_client_id(client_id).await.expect("lookup");
    assert_eq!(stored.as_ref(), Some(&expected), "the rotation must be stored as applied");
    (expected, new)
}

/// A project `orders` with the app `orders-api`, stored.
async fn create_app(store: &SharedStore) -> (ApiApp, ClientSecret) {
    let orders = sample_project("orders");
    store.create_project(&orders).await.expect("create project");
    let (app, secret) = sample_app(&orders, "orders-api");
    store.create_api_app(&app).await.expect("create app");
    (app, secret)
}

/// An API app secret replaced with a grace period is kept as the previous secret
/// with its expiry in whole seconds, accepted until then; other patches leave it alone.
pub async fn api_app_previous_secret_reads_back_with_its_expiry(store: SharedStore) {
    let (app, old) = create_app(&store).await;
    let until = t0() + Duration::seconds(60) + Duration::milliseconds(250);
    let (stored, new) = rotate_app(&store, &app.client_id, Some(until), t0()).await;
    let old_digest = app.credentials.secret.expect("a secret");
    let expected = PreviousSecret { digest: old_digest, expires_at: t0() + Duration::seconds(60) };
    assert_eq!(
        stored.credentials.previous,
        Some(expected),
        "the old secret is kept, to the second"
    );
    assert!(stored.credentials.matches(new.expose(), t0()), "the new secret works");
    assert!(
        stored.credentials.matches(old.expose(), t0() + Duration::seconds(59)),
        "the old one too"
    );
    assert!(
        !stored.credentials.matches(old.expose(), t0() + Duration::seconds(60)),
        "the old secret stops at its expiry"
    );
    let listed = store.list_api_apps().await.expect("list");
    assert_eq!(listed, vec![stored.clone()], "a listed app carries its previous secret");

    let mut unrelated = ApiAppPatch::at(t0() + Duration::seconds(5));
    unrelated.name = Some(DisplayName::new("Renamed").expect("name"));
    let updated = store.update_api_app(&app.client_id, &unrelated).await.expect("update");
    assert_eq!(updated.credentials.previous, Some(expected), "a patch without a secret keeps it");

    let (mut created, _) = sample_app(&sample_project("orders"), "created-mid-rotation");
    created.credentials.previous = Some(PreviousSecret::new(digest_of(&old), t0()));
    store.create_api_app(&created).await.expect("create");
    let read = store.api_app_by_client_id(&created.client_id).await.expect("lookup");
    assert_eq!(read, Some(created), "a created app's previous secret reads back");
}

/// Regenerating an API app secret during a grace period makes the current secret the
/// previous one and drops the older one: at most two secrets are valid.
pub async fn api_app_regenerating_again_replaces_the_previous_secret(store: SharedStore) {
    let (app, first) = create_app(&store).await;
    let (after_second, second) =
        rotate_app(&store, &app.client_id, Some(t0() + Duration::seconds(60)), t0()).await;
    let (stored, third) = rotate_app(
        &store,
        &app.client_id,
        Some(t0() + Duration::seconds(90)),
        t0() + Duration::seconds(10),
    )
    .await;
    assert_replaced_again(
        stored.credentials.previous,
        after_second.credentials.secret,
        |p, t| stored.credentials.matches(p, t),
        [&first, &second, &third],
    );
}

/// Regenerating an API app secret without a grace period clears the previous secret.
pub async fn api_app_regenerating_without_grace_clears_the_previous_secret(store: SharedStore) {
    let (app, first) = create_app(&store).await;
    let (_, second) =
        rotate_app(&store, &app.client_id, Some(t0() + Duration::seconds(60)), t0()).await;
    let (stored, third) =
        rotate_app(&store, &app.client_id, None, t0() + Duration::seconds(10)).await;
    assert_cleared(
        stored.credentials.previous,
        |p, t| stored.credentials.matches(p, t),
        [&first, &second, &third],
    );
}

/// Grants are idempotent, need their user and project, and go with their user.
pub async fn grants_are_idempotent_and_follow_their_user(store: SharedStore) {
    let orders = sample_project("orders");
    store.create_project(&orders).await.expect("create project");
    let (user, _) = create(&store, "granted").await;
    let reader =
        RoleGrant { user_id: user.id.clone(), project_id: orders.id.clone(), role: role("reader") };
    let admin = RoleGrant {
        user_id: user.id.clone(),
        project_id: ProjectId::reserved(),
        role: role("admin"),
    };
    assert!(store.add_grant(&reader).await.expect("grant"));
    assert!(!store.add_grant(&reader).await.expect("grant again"), "a second add changes nothing");
    assert!(store.add_grant(&admin).await.expect("grant"));
    let grants = store.grants_of_user(&user.id).await.expect("list");
    assert_eq!(grants, vec![reader.clone(), admin.clone()], "ordered by project, then role");

    let ghost_user = RoleGrant { user_id: UserId::generate().expect("id"), ..reader.clone() };
    assert!(matches!(store.add_grant(&ghost_user).await, Err(StoreError::NotFound(_))));
    let ghost_project =
        RoleGrant { project_id: ProjectId::new("ghost").expect("id"), ..reader.clone() };
    assert!(matches!(store.add_grant(&ghost_project).await, Err(StoreError::NotFound(_))));

    assert!(store.remove_grant(&admin).await.expect("remove"));
    assert!(!store.remove_grant(&admin).await.expect("remove again"));
    assert_eq!(store.grants_of_user(&user.id).await.expect("list"), vec![reader]);
    store.delete_service_user(&user.username).await.expect("delete user");
    assert!(
        store.grants_of_user(&user.id).await.expect("list").is_empty(),
        "grants go with the user"
    );
}

/// A client key `key_id` of `owner`, not yet stored.
pub fn sample_client_key(owner: KeyOwner, key_id: &str, offset_secs: i64) -> ClientKey {
    ClientKey {
        key_id: key_id.to_owned(),
        owner,
        algorithm: SigningAlgorithm::Rs256,
        public_jwk: format!(r#"{{"kty":"RSA","kid":"{key_id}","n":"AQAB","e":"AQAB"}}"#),
        created_at: t0() + Duration::seconds(offset_secs),
        expires_at: Some(t0() + Duration::days(30)),
    }
}

/// Keys read back, are listed per owner, need their owner, and are removed only by it.
pub async fn client_keys_belong_to_their_owner(store: SharedStore) {
    let (user, _) = create(&store, "key-holder").await;
    let (other, _) = create(&store, "other-holder").await;
    let owner = KeyOwner::ServiceUser(user.id.clone());
    let stranger = KeyOwner::ServiceUser(other.id.clone());
    let first = sample_client_key(owner.clone(), "key-1", 0);
    let mut second = sample_client_key(owner.clone(), "key-2", 10);
    second.algorithm = SigningAlgorithm::Es256;
    second.expires_at = None;
    store.add_client_key(&first).await.expect("add");
    store.add_client_key(&second).await.expect("add");
    assert_eq!(store.client_key("key-1").await.expect("lookup"), Some(first.clone()));
    assert_eq!(
        store.client_keys_of(&owner).await.expect("list"),
        vec![first.clone(), second.clone()]
    );
    assert!(store.client_keys_of(&stranger).await.expect("list").is_empty());
    assert_eq!(store.client_key("nope").await.expect("lookup"), None);

    let dup = store.add_client_key(&sample_client_key(stranger.clone(), "key-1", 0)).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "a taken key id: {dup:?}");
    let ghost = KeyOwner::ServiceUser(UserId::generate().expect("id"));
    let orphan = store.add_client_key(&sample_client_key(ghost, "key-3", 0)).await;
    assert!(matches!(orphan, Err(StoreError::NotFound(_))), "a key of a missing owner: {orphan:?}");

    assert!(!store.remove_client_key(&stranger, "key-1").await.expect("remove"), "not its key");
    assert!(store.client_key("key-1").await.expect("lookup").is_some());
    assert!(store.remove_client_key(&owner, "key-1").await.expect("remove"));
    assert!(!store.remove_client_key(&owner, "key-1").await.expect("remove again"));
    assert_eq!(store.client_keys_of(&owner).await.expect("list"), vec![second]);
}

/// Deleting a user or an API app deletes its keys.
pub async fn client_keys_go_with_their_owner(store: SharedStore) {
    let (user, _) = create(&store, "short-lived").await;
    let orders = sample_project("orders");
    store.create_project(&orders).await.expect("project");
    let (app, _) = sample_app(&orders, "orders-api");
    store.create_api_app(&app).await.expect("app");
    let user_owner = KeyOwner::ServiceUser(user.id.clone());
    let app_owner = KeyOwner::ApiApp(app.client_id.clone());
    store.add_client_key(&sample_client_key(user_owner.clone(), "user-key", 0)).await.expect("add");
    store.add_client_key(&sample_client_key(app_owner.clone(), "app-key", 0)).await.expect("add");
    store.delete_service_user(&user.username).await.expect("delete user");
    assert_eq!(store.client_key("user-key").await.expect("lookup"), None);
    store.delete_api_app(&app.client_id).await.expect("delete app");
    assert_eq!(store.client_key("app-key").await.expect("lookup"), None);
}

/// An organization named `name` with the primary domain `domain` and a generated id,
/// created at `t0()`, not yet stored (panics on an invalid name or domain).
pub fn sample_organization(name: &str, domain: &str) -> Organization {
    let name = DisplayName::new(name).unwrap_or_else(|e| panic!("test name {name:?}: {e}"));
    let domain = Domain::new(domain).unwrap_or_else(|e| panic!("test domain {domain:?}: {e}"));
    Organization::generate(name, domain, t0()).unwrap_or_else(|e| panic!("{e}"))
}

/// The organization is absent at first; the first init stores its candidate and
/// returns it, a later init with another candidate returns the first.
pub async fn organization_is_stored_once(store: SharedStore) {
    assert_eq!(store.organization().await.expect("read"), None, "a fresh store has none");
    let first = sample_organization("Acme", "acme.example");
    let stored = store.init_organization(&first).await.expect("init");
    assert_eq!(stored, first, "the first init stores its candidate unchanged");
    assert_eq!(store.organization().await.expect("read"), Some(first.clone()));
    let second = sample_organization("Other", "other.example");
    let again = store.init_organization(&second).await.expect("second init");
    assert_eq!(again, first, "a second init returns the organization stored first");
    assert_eq!(store.organization().await.expect("read"), Some(first), "and changes nothing");
}

/// Inits that race, each with its own candidate, all return the same organization,
/// one of the candidates, and it is the one stored.
pub async fn organization_racing_inits_agree(store: SharedStore) {
    let candidates: Vec<Organization> = (0..8)
        .map(|i| sample_organization(&format!("Racer {i}"), &format!("racer-{i}.example")))
        .collect();
    let mut racers = tokio::task::JoinSet::new();
    for candidate in candidates.clone() {
        let store = store.clone();
        racers.spawn(async move { store.init_organization(&candidate).await.expect("init") });
    }
    let mut returned = Vec::new();
    while let Some(joined) = racers.join_next().await {
        returned.push(joined.expect("racer panicked"));
    }
    let first = returned[0].clone();
    assert!(returned.iter().all(|org| *org == first), "racing inits disagree: {returned:#?}");
    assert!(candidates.contains(&first), "the organization is one of the candidates");
    assert_eq!(store.organization().await.expect("read"), Some(first), "and it is stored");
}

/// An update changes the name and the primary domain, never the id or creation
/// time; before the first init there is nothing to update.
pub async fn organization_update_keeps_the_id(store: SharedStore) {
    let name = DisplayName::new("Renamed").expect("name");
    let domain = Domain::new("Renamed.Example").expect("domain");
    let err = store.update_organization(&name, &domain).await;
    assert!(matches!(err, Err(StoreError::NotFound(_))), "update before init: {err:?}");
    assert_eq!(store.organization().await.expect("read"), None, "a failed update stores nothing");

    let org = sample_organization("Acme", "acme.example");
    store.init_organization(&org).await.expect("init");
    let updated = store.update_organization(&name, &domain).await.expect("update");
    let expected = Organization { name, primary_domain: domain, ..org.clone() };
    assert_eq!(updated, expected, "the update returns the organization as stored");
    assert_eq!(updated.primary_domain.as_str(), "renamed.example");
    assert_eq!(store.organization().await.expect("read"), Some(expected.clone()));
    let again = store.init_organization(&org).await.expect("init after update");
    assert_eq!(again, expected, "a later init returns the updated organization");
}

/// An API app's app id reads back by client ID and in the list; a second app with a
/// taken app id is a conflict and is not stored.
pub async fn api_app_ids_are_unique_and_read_back(store: SharedStore) {
    let orders = sample_project("orders");
    store.create_project(&orders).await.expect("create project");
    let (first, _) = sample_app(&orders, "orders-api");
    store.create_api_app(&first).await.expect("create app");
    let found = store.api_app_by_client_id(&first.client_id).await.expect("lookup");
    assert_eq!(found.map(|a| a.app_id), Some(first.app_id.clone()), "the app id reads back");

    let (mut clash, _) = sample_app(&orders, "billing-api");
    clash.app_id = first.app_id.clone();
    let err = store.create_api_app(&clash).await;
    assert!(matches!(err, Err(StoreError::Conflict(_))), "a taken app id: {err:?}");
    let missing = store.api_app_by_client_id(&clash.client_id).await.expect("lookup");
    assert_eq!(missing, None, "an app refused for its app id is not stored");

    let (mut second, _) = sample_app(&Project::reserved(), "console-api");
    second.app_id = AppId::new("custom_app-id").expect("app id");
    store.create_api_app(&second).await.expect("create a second app");
    let listed = store.list_api_apps().await.expect("list");
    assert_eq!(listed, vec![second.clone(), first.clone()], "listed with their app ids");
    let found = store.api_app_by_client_id(&second.client_id).await.expect("lookup");
    assert_eq!(found, Some(second.clone()));

    // An update changes no app id; a deleted app's app id is free again.
    let mut patch = ApiAppPatch::at(t0() + Duration::seconds(1));
    patch.name = Some(DisplayName::new("Renamed").expect("name"));
    let updated = store.update_api_app(&first.client_id, &patch).await.expect("update");
    assert_eq!(updated.app_id, first.app_id);
    store.delete_api_app(&first.client_id).await.expect("delete");
    store.create_api_app(&clash).await.expect("the app id is free after the delete");
    let found = store.api_app_by_client_id(&clash.client_id).await.expect("lookup");
    assert_eq!(found, Some(clash));
}

// Concurrent changes of one record: none may be lost.

/// Runs every future at once, each as a task of its own, and returns their outputs
/// in the order given. Panics when one panics.
async fn at_once<T, F>(futures: impl IntoIterator<Item = F>) -> Vec<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    let mut count = 0;
    for (i, future) in futures.into_iter().enumerate() {
        tasks.spawn(async move { (i, future.await) });
        count += 1;
    }
    let mut outputs: Vec<Option<T>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, output) = joined.unwrap_or_else(|e| panic!("a concurrent task failed: {e}"));
        outputs[i] = Some(output);
    }
    outputs.into_iter().map(|o| o.unwrap_or_else(|| panic!("a task gave no output"))).collect()
}

/// The store of the `i`-th concurrent call: the stores take turns.
fn nth(stores: &[SharedStore], i: usize) -> SharedStore {
    stores[i % stores.len()].clone()
}

/// `t0()` plus `secs` seconds.
fn at(secs: i64) -> OffsetDateTime {
    t0() + Duration::seconds(secs)
}

/// Seven patches of one user, each of another field (one a rotation with a grace
/// period, one a revocation cut-off, one a description), run at once through `stores` in turn: the
/// user as stored afterwards holds every one of them, and is what the patch that
/// ran last returned.
async fn user_patches_lose_nothing(stores: &[SharedStore], rounds: usize) {
    for round in 0..rounds {
        let (user, old) = create(&stores[0], &format!("patched-{round}")).await;
        let new = fresh_secret();
        let mut patches: Vec<ServiceUserPatch> =
            (1..=7).map(|i| ServiceUserPatch::at(at(i))).collect();
        patches[0].display_name = Some(DisplayName::new("Renamed").expect("name"));
        patches[1].access_token_type = Some(AccessTokenType::Jwt);
        patches[2].token_lifetime = Some(TokenLifetime::from_secs(600).expect("lifetime"));
        patches[3].enabled = Some(false);
        let new_digest = digest_of(&new);
        patches[4].secret = Some(new_digest);
        patches[4].keep_previous_until = Some(at(60));
        patches[5].tokens_revoked_before = Some(at(30));
        patches[6].description = Some("Described".to_owned());
        let returned = at_once(patches.iter().enumerate().map(|(i, patch)| {
            let (store, name, patch) = (nth(stores, i), user.username.clone(), patch.clone());
            async move { store.update_service_user(&name, &patch).await.expect("update") }
        }))
        .await;
        let stored = stores[stores.len() - 1]
            .service_user_by_username(&user.username)
            .await
            .expect("lookup")
            .expect("the user exists");
        let lost = "a concurrent patch of the user was lost";
        assert_eq!(stored.display_name.as_str(), "Renamed", "{lost}: {stored:?}");
        assert_eq!(stored.access_token_type, AccessTokenType::Jwt, "{lost}: {stored:?}");
        assert_eq!(stored.token_lifetime.as_secs(), 600, "{lost}: {stored:?}");
        assert!(!stored.enabled, "{lost}: {stored:?}");
        assert_eq!(stored.credentials.secret, Some(new_digest), "{lost}: {stored:?}");
        assert_eq!(
            stored.credentials.previous,
            Some(PreviousSecret::new(user.credentials.secret.expect("a secret"), at(60))),
            "{lost}: the rotation must keep the secret it replaced"
        );
        assert!(stored.credentials.matches(old.expose(), at(59)), "{lost}: {stored:?}");
        assert_eq!(stored.tokens_revoked_before, Some(at(30)), "{lost}: {stored:?}");
        assert_eq!(stored.description, "Described", "{lost}: {stored:?}");
        assert!(returned.contains(&stored), "the last patch returns the user as stored");
        // Each patch returns the user with its own change (and maybe others).
        let own = [
            returned[0].display_name.as_str() == "Renamed",
            returned[1].access_token_type == AccessTokenType::Jwt,
            returned[2].token_lifetime.as_secs() == 600,
            !returned[3].enabled,
            returned[4].credentials.secret == Some(new_digest),
            returned[5].tokens_revoked_before == Some(at(30)),
            returned[6].description == "Described",
        ];
        assert_eq!(own, [true; 7], "a patch returned a user without its change");
    }
}

/// Eight rotations with a grace period of one user's secret, run at once through
/// `stores` in turn: as if they ran one after the other, each keeps the secret the
/// one before it set as the previous secret, so they form one chain from the first
/// secret to the one stored. Two rotations that kept the same secret read the user
/// before the other wrote it: one of them was lost.
async fn user_rotations_form_one_chain(stores: &[SharedStore], name: &str) {
    let (user, first) = create(&stores[0], name).await;
    let secrets: Vec<ClientSecret> = (0..8).map(|_| fresh_secret()).collect();
    let returned = at_once(secrets.iter().enumerate().map(|(i, secret)| {
        let (store, name) = (nth(stores, i), user.username.clone());
        let mut patch = ServiceUserPatch::at(at(i as i64));
        patch.secret = Some(digest_of(secret));
        patch.keep_previous_until = Some(at(600 + i as i64));
        async move { store.update_service_user(&name, &patch).await.expect("rotate") }
    }))
    .await;
    let stored = stores[stores.len() - 1]
        .service_user_by_username(&user.username)
        .await
        .expect("lookup")
        .expect("the user exists");
    let steps: Vec<(Option<PreviousSecret>, Option<SecretDigest>)> =
        returned.iter().map(|u| (u.credentials.previous, u.credentials.secret)).collect();
    let first = user.credentials.secret.filter(|d| d.verify(first.expose())).expect("a secret");
    let last = follow_chain(first, &steps, 600);
    assert_eq!(returned[last], stored, "the rotation that ran last returns the user as stored");
}

/// Follows rotations from the secret `first`: `steps` are, for each rotation
/// `i` (which kept the secret until `at(grace + i)`), the previous and the current
/// secret it returned. Returns the index of the last rotation of the chain.
fn follow_chain(
    first: SecretDigest,
    steps: &[(Option<PreviousSecret>, Option<SecretDigest>)],
    grace: i64,
) -> usize {
    let mut by_replaced: HashMap<[u8; SecretDigest::LEN], Vec<usize>> = HashMap::new();
    for (i, (previous, _)) in steps.iter().enumerate() {
        let previous = previous.unwrap_or_else(|| panic!("rotation {i} kept no previous secret"));
        assert_eq!(previous.expires_at, at(grace + i as i64), "rotation {i} kept its own expiry");
        by_replaced.entry(*previous.digest.as_bytes()).or_default().push(i);
    }
    let mut current = first;
    let mut last = None;
    for step in 0..steps.len() {
        let next = by_replaced.get(current.as_bytes()).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            next.len(),
            1,
            "step {step}: {} rotations replaced the same secret; concurrent rotations \
             must not lose one another",
            next.len()
        );
        let i = next[0];
        current = steps[i].1.unwrap_or_else(|| panic!("rotation {i} set no secret"));
        last = Some(i);
    }
    last.unwrap_or_else(|| panic!("no rotation"))
}

/// Three patches of one API app, each of another field (one a rotation with a
/// grace period), run at once through `stores` in turn: the app holds all three.
async fn app_patches_lose_nothing(stores: &[SharedStore], rounds: usize) {
    let orders = sample_project("orders");
    stores[0].create_project(&orders).await.expect("create project");
    for round in 0..rounds {
        let (app, old) = sample_app(&orders, &format!("patched-{round}-api"));
        stores[0].create_api_app(&app).await.expect("create app");
        let new = fresh_secret();
        let mut patches: Vec<ApiAppPatch> = (1..=3).map(|i| ApiAppPatch::at(at(i))).collect();
        patches[0].name = Some(DisplayName::new("Renamed").expect("name"));
        patches[1].enabled = Some(false);
        let new_digest = digest_of(&new);
        patches[2].secret = Some(new_digest);
        patches[2].keep_previous_until = Some(at(60));
        let returned = at_once(patches.iter().enumerate().map(|(i, patch)| {
            let (store, id, patch) = (nth(stores, i), app.client_id.clone(), patch.clone());
            async move { store.update_api_app(&id, &patch).await.expect("update") }
        }))
        .await;
        let stored = stores[stores.len() - 1]
            .api_app_by_client_id(&app.client_id)
            .await
            .expect("lookup")
            .expect("the app exists");
        let lost = "a concurrent patch of the API app was lost";
        assert_eq!(stored.name.as_str(), "Renamed", "{lost}: {stored:?}");
        assert!(!stored.enabled, "{lost}: {stored:?}");
        assert_eq!(stored.credentials.secret, Some(new_digest), "{lost}: {stored:?}");
        assert_eq!(
            stored.credentials.previous,
            Some(PreviousSecret::new(app.credentials.secret.expect("a secret"), at(60))),
            "{lost}: the rotation must keep the secret it replaced"
        );
        assert!(stored.credentials.matches(old.expose(), at(59)), "{lost}: {stored:?}");
        assert_eq!(stored.app_id, app.app_id, "a patch changes no app id");
        assert!(returned.contains(&stored), "the last patch returns the app as stored");
    }
}

/// Eight rotations with a grace period of one API app's secret, run at once
/// through `stores` in turn, form one chain (see [`user_rotations_form_one_chain`]).
async fn app_rotations_form_one_chain(stores: &[SharedStore], client_id: &str) {
    let project = sample_project(&format!("p-{client_id}"));
    stores[0].create_project(&project).await.expect("create project");
    let (app, first) = sample_app(&project, client_id);
    stores[0].create_api_app(&app).await.expect("create app");
    let secrets: Vec<ClientSecret> = (0..8).map(|_| fresh_secret()).collect();
    let returned = at_once(secrets.iter().enumerate().map(|(i, secret)| {
        let (store, id) = (nth(stores, i), app.client_id.clone());
        let mut patch = ApiAppPatch::at(at(i as i64));
        patch.secret = Some(digest_of(secret));
        patch.keep_previous_until = Some(at(600 + i as i64));
        async move { store.update_api_app(&id, &patch).await.expect("rotate") }
    }))
    .await;
    let stored = stores[stores.len() - 1]
        .api_app_by_client_id(&app.client_id)
        .await
        .expect("lookup")
        .expect("the app exists");
    let steps: Vec<(Option<PreviousSecret>, Option<SecretDigest>)> =
        returned.iter().map(|a| (a.credentials.previous, a.credentials.secret)).collect();
    let first = app.credentials.secret.filter(|d| d.verify(first.expose())).expect("a secret");
    let last = follow_chain(first, &steps, 600);
    assert_eq!(returned[last], stored, "the rotation that ran last returns the app as stored");
}

/// Concurrent patches of one user, each of another field, are all applied.
pub async fn service_user_concurrent_patches_lose_nothing(store: SharedStore) {
    user_patches_lose_nothing(&[store], 8).await;
}

/// Concurrent rotations with a grace period of one user's secret form one chain:
/// none read the user before another one wrote it.
pub async fn service_user_concurrent_rotations_form_one_chain(store: SharedStore) {
    for round in 0..4 {
        user_rotations_form_one_chain(std::slice::from_ref(&store), &format!("chain-{round}"))
            .await;
    }
}

/// Concurrent patches of one API app, each of another field, are all applied.
pub async fn api_app_concurrent_patches_lose_nothing(store: SharedStore) {
    app_patches_lose_nothing(&[store], 8).await;
}

/// Concurrent rotations with a grace period of one API app's secret form one chain.
pub async fn api_app_concurrent_rotations_form_one_chain(store: SharedStore) {
    for round in 0..4 {
        app_rotations_form_one_chain(std::slice::from_ref(&store), &format!("app-chain-{round}"))
            .await;
    }
}

/// Grants added concurrently to one user are all kept; of concurrent adds of one
/// grant, exactly one reports it new.
pub async fn grants_added_concurrently_are_all_kept(store: SharedStore) {
    grants_are_all_kept(&[store]).await;
}

async fn grants_are_all_kept(stores: &[SharedStore]) {
    let orders = sample_project("orders");
    stores[0].create_project(&orders).await.expect("create project");
    let (user, _) = create(&stores[0], "granted").await;
    let grants: Vec<RoleGrant> = (0..16)
        .map(|i| RoleGrant {
            user_id: user.id.clone(),
            project_id: if i % 2 == 0 { orders.id.clone() } else { ProjectId::reserved() },
            role: role(&format!("role-{i:02}")),
        })
        .collect();
    let added = at_once(grants.iter().enumerate().map(|(i, grant)| {
        let (store, grant) = (nth(stores, i), grant.clone());
        async move { store.add_grant(&grant).await.expect("grant") }
    }))
    .await;
    assert!(added.iter().all(|new| *new), "each grant is new");
    let mut expected = grants.clone();
    expected.sort_by(|a, b| (&a.project_id, &a.role).cmp(&(&b.project_id, &b.role)));
    for store in stores {
        let stored = store.grants_of_user(&user.id).await.expect("list");
        assert_eq!(stored, expected, "a grant added concurrently was lost");
    }
    let same = RoleGrant { role: role("same"), ..grants[0].clone() };
    let added = at_once((0..8).map(|i| {
        let (store, grant) = (nth(stores, i), same.clone());
        async move { store.add_grant(&grant).await.expect("grant") }
    }))
    .await;
    assert_eq!(added.iter().filter(|new| **new).count(), 1, "one grant, new once");
}

/// Grants added while their user is deleted are refused or deleted with it.
pub async fn grants_added_while_their_user_is_deleted_do_not_outlive_it(store: SharedStore) {
    additions_racing_a_delete(&[store.clone(), store]).await;
}

/// Client keys added concurrently for one owner are all kept.
pub async fn client_keys_added_concurrently_are_all_kept(store: SharedStore) {
    client_keys_are_all_kept(&[store]).await;
}

async fn client_keys_are_all_kept(stores: &[SharedStore]) {
    let (user, _) = create(&stores[0], "key-holder").await;
    let owner = KeyOwner::ServiceUser(user.id.clone());
    let keys: Vec<ClientKey> =
        (0..16).map(|i| sample_client_key(owner.clone(), &format!("key-{i:02}"), i % 4)).collect();
    at_once(keys.iter().enumerate().map(|(i, key)| {
        let (store, key) = (nth(stores, i), key.clone());
        async move { store.add_client_key(&key).await.expect("add") }
    }))
    .await;
    let mut expected = keys.clone();
    expected.sort_by(|a, b| (a.created_at, &a.key_id).cmp(&(b.created_at, &b.key_id)));
    for store in stores {
        let stored = store.client_keys_of(&owner).await.expect("list");
        assert_eq!(stored, expected, "a key added concurrently was lost");
    }
}

/// Client keys added while their owner (a user, an app) is deleted are refused or
/// deleted with it.
pub async fn client_keys_added_while_their_owner_is_deleted_do_not_outlive_it(store: SharedStore) {
    additions_racing_a_delete(&[store.clone(), store]).await;
}

/// Grants and client keys added through `adder` while `deleter` deletes their user
/// or app: each addition succeeds or finds its owner gone, and none outlives it.
async fn additions_racing_a_delete([adder, deleter]: &[SharedStore; 2]) {
    let orders = sample_project("orders");
    adder.create_project(&orders).await.expect("create project");
    for i in 0..10 {
        let (user, _) = create(adder, &format!("doomed-{i}")).await;
        let (app, _) = sample_app(&orders, &format!("doomed-app-{i}"));
        adder.create_api_app(&app).await.expect("create app");
        let user_key =
            sample_client_key(KeyOwner::ServiceUser(user.id.clone()), &format!("u{i}"), 0);
        let app_key =
            sample_client_key(KeyOwner::ApiApp(app.client_id.clone()), &format!("a{i}"), 0);
        let grant =
            RoleGrant { user_id: user.id.clone(), project_id: orders.id.clone(), role: role("r") };
        let (added_user_key, added_app_key, granted, deleted_user, deleted_app) = tokio::join!(
            adder.add_client_key(&user_key),
            adder.add_client_key(&app_key),
            adder.add_grant(&grant),
            deleter.delete_service_user(&user.username),
            deleter.delete_api_app(&app.client_id),
        );
        deleted_user.expect("delete user");
        deleted_app.expect("delete app");
        for added in [added_user_key, added_app_key] {
            assert!(matches!(added, Ok(()) | Err(StoreError::NotFound(_))), "{i}: {added:?}");
        }
        assert!(matches!(granted, Ok(true) | Err(StoreError::NotFound(_))), "{i}: {granted:?}");
        for store in [adder, deleter] {
            assert_eq!(
                store.client_key(&user_key.key_id).await.expect("lookup"),
                None,
                "{i}: a user's key outlived it"
            );
            assert_eq!(
                store.client_key(&app_key.key_id).await.expect("lookup"),
                None,
                "{i}: an app's key outlived it"
            );
            assert!(
                store.grants_of_user(&user.id).await.expect("list").is_empty(),
                "{i}: a grant outlived its user"
            );
        }
    }
}

/// Concurrent updates of the organization each store their name and domain
/// together: the organization ends with the pair of one of them.
pub async fn organization_concurrent_updates_are_atomic(store: SharedStore) {
    organization_updates_are_atomic(&[store]).await;
}

async fn organization_updates_are_atomic(stores: &[SharedStore]) {
    let org = stores[0]
        .init_organization(&sample_organization("Acme", "acme.example"))
        .await
        .expect("init");
    let pairs: Vec<(DisplayName, Domain)> = (0..8)
        .map(|i| {
            let name = DisplayName::new(&format!("Name {i}")).expect("name");
            (name, Domain::new(&format!("domain-{i}.example")).expect("domain"))
        })
        .collect();
    let returned = at_once(pairs.iter().enumerate().map(|(i, (name, domain))| {
        let (store, name, domain) = (nth(stores, i), name.clone(), domain.clone());
        async move { store.update_organization(&name, &domain).await.expect("update") }
    }))
    .await;
    for (updated, (name, domain)) in returned.iter().zip(&pairs) {
        assert_eq!(
            (&updated.name, &updated.primary_domain),
            (name, domain),
            "an update returns its own change"
        );
        assert_eq!((&updated.id, updated.created_at), (&org.id, org.created_at));
    }
    for store in stores {
        let stored = store.organization().await.expect("read").expect("stored");
        assert!(
            pairs.iter().any(|(n, d)| (n, d) == (&stored.name, &stored.primary_domain)),
            "the name of one update and the domain of another: {stored:?}"
        );
        assert!(returned.contains(&stored));
    }
}

// Several instances on one database: the checks of `conformance_suite_shared!`.

/// A secret regenerated through one store stops working at once through the other,
/// for users and API apps, with and without a grace period.
pub async fn shared_secret_regenerated_through_one_stops_at_once_through_the_other(
    [a, b]: [SharedStore; 2],
) {
    let (user, first) = create(&a, "shared").await;
    let seen = b.service_user_by_username(&user.username).await.expect("lookup");
    assert_eq!(
        seen.as_ref(),
        Some(&user),
        "a user created through one store is seen through the other"
    );
    let (after_second, second) = rotate_user(&a, &user.username, None, at(1)).await;
    for _ in 0..20 {
        let seen = b.service_user_by_username(&user.username).await.expect("lookup").expect("user");
        assert!(
            !seen.credentials.matches(first.expose(), at(2)),
            "the old secret was accepted through the other store"
        );
        assert!(seen.credentials.matches(second.expose(), at(2)));
    }
    let (_, third) = rotate_user(&b, &user.username, Some(at(60)), at(2)).await;
    let seen = a.service_user_by_id(&user.id).await.expect("lookup").expect("user");
    assert_eq!(
        seen.credentials.previous,
        Some(PreviousSecret::new(after_second.credentials.secret.expect("a secret"), at(60)))
    );
    assert!(
        seen.credentials.matches(second.expose(), at(59))
            && seen.credentials.matches(third.expose(), at(59))
    );
    rotate_user(&a, &user.username, None, at(3)).await;
    let seen = b.service_user_by_username(&user.username).await.expect("lookup").expect("user");
    assert!(
        !seen.credentials.matches(second.expose(), at(4))
            && !seen.credentials.matches(third.expose(), at(4))
    );

    let (app, first) = create_app(&a).await;
    assert_eq!(b.api_app_by_client_id(&app.client_id).await.expect("lookup"), Some(app.clone()));
    let (_, second) = rotate_app(&a, &app.client_id, None, at(1)).await;
    for _ in 0..20 {
        let seen = b.api_app_by_client_id(&app.client_id).await.expect("lookup").expect("app");
        assert!(
            !seen.credentials.matches(first.expose(), at(2)),
            "the old app secret was accepted through the other store"
        );
        assert!(seen.credentials.matches(second.expose(), at(2)));
    }
    let (updated, _) = rotate_app(&b, &app.client_id, Some(at(60)), at(2)).await;
    assert_eq!(a.api_app_by_client_id(&app.client_id).await.expect("lookup"), Some(updated));
}

/// A secret removed through one store stops working at once through the other, with
/// the previous secret.
pub async fn shared_secret_cleared_through_one_stops_at_once_through_the_other(
    [a, b]: [SharedStore; 2],
) {
    let (user, first) = create(&a, "shared-cleared").await;
    let (_, second) = rotate_user(&a, &user.username, Some(at(60)), at(1)).await;
    let cleared = clear_user_secret(&b, &user.username, None, at(2)).await;
    for _ in 0..20 {
        let seen = a.service_user_by_username(&user.username).await.expect("lookup").expect("user");
        assert_eq!(seen, cleared, "cleared through the other store");
        for secret in [&first, &second] {
            assert!(!seen.credentials.matches(secret.expose(), at(3)), "a removed secret worked");
        }
    }
}

/// A revocation cut-off set through one store is seen through the other at once, by
/// username and by id; one set later through the other replaces it for both, and a
/// patch without it through either keeps it.
pub async fn shared_revocation_cut_off_set_through_one_is_seen_through_the_other(
    [a, b]: [SharedStore; 2],
) {
    let (user, _) = create(&a, "cut-off").await;
    let seen = b.service_user_by_id(&user.id).await.expect("lookup").expect("user");
    assert_eq!(seen.tokens_revoked_before, None, "no cut-off through the other store");
    let set = set_cut_off(&a, &user.username, at(100), at(1)).await;
    for _ in 0..20 {
        let by_name =
            b.service_user_by_username(&user.username).await.expect("lookup").expect("user");
        assert_eq!(by_name, set, "the cut-off set through one store, through the other");
        let by_id = b.service_user_by_id(&user.id).await.expect("lookup").expect("user");
        assert_eq!(by_id, set, "the cut-off set through one store, through the other (by id)");
    }
    let replaced = set_cut_off(&b, &user.username, at(150), at(2)).await;
    let seen = a.service_user_by_id(&user.id).await.expect("lookup").expect("user");
    assert_eq!(seen, replaced, "a cut-off replaced through the other store");
    assert_eq!(seen.tokens_revoked_before, Some(at(150)));
    let mut unrelated = ServiceUserPatch::at(at(3));
    unrelated.token_lifetime = Some(TokenLifetime::from_secs(60).expect("lifetime"));
    a.update_service_user(&user.username, &unrelated).await.expect("update");
    let seen = b.service_user_by_username(&user.username).await.expect("lookup").expect("user");
    assert_eq!(seen.tokens_revoked_before, Some(at(150)), "a patch without it keeps it");
    assert_eq!(b.list_service_users().await.expect("list"), vec![seen]);
}

/// A token revoked through one store is revoked through the other at once, and so
/// is a JWT id; purging through one purges for both.
pub async fn shared_token_revoked_through_one_is_revoked_through_the_other(
    [a, b]: [SharedStore; 2],
) {
    let (user, _) = create(&a, "tokens").await;
    let record = sample_token(&user, "shared-token", 200);
    a.insert_token(&record).await.expect("insert");
    assert_eq!(b.token_by_digest(&record.digest).await.expect("lookup"), Some(record.clone()));
    assert!(b.revoke_token(&record.digest, at(5)).await.expect("revoke"));
    let seen = a.token_by_digest(&record.digest).await.expect("lookup").expect("exists");
    assert_eq!(seen.revoked_at, Some(at(5)), "revoked through the other store at once");
    assert!(a.revoke_token(&record.digest, at(9)).await.expect("revoke"));
    let seen = b.token_by_digest(&record.digest).await.expect("lookup").expect("exists");
    assert_eq!(seen.revoked_at, Some(at(5)), "the first revocation time is kept across stores");

    let jti = TokenId::generate().expect("jti");
    a.revoke_jti(&jti, at(100)).await.expect("revoke");
    assert!(
        b.is_jti_revoked(&jti).await.expect("lookup"),
        "a JWT id revoked through the other store"
    );
    b.revoke_jti(&jti, at(50)).await.expect("revoke again");
    a.purge_expired_tokens(at(99)).await.expect("purge");
    assert!(b.is_jti_revoked(&jti).await.expect("lookup"), "the later expiry is kept");
    assert_eq!(b.purge_expired_tokens(at(200)).await.expect("purge"), 2, "the token and the id");
    assert!(!a.is_jti_revoked(&jti).await.expect("lookup"));
    assert_eq!(a.token_by_digest(&record.digest).await.expect("lookup"), None);
}

/// An assertion id used through one store is a replay through the other; of racers
/// through both, exactly one is first; purging through one frees it for both.
pub async fn shared_replayed_assertion_through_the_other_is_refused([a, b]: [SharedStore; 2]) {
    let expiry = at(60);
    assert!(a.use_assertion("svc", "jti-1", expiry).await.expect("use"));
    assert!(
        !b.use_assertion("svc", "jti-1", expiry).await.expect("use"),
        "a replay through the other store"
    );
    let stores = [a.clone(), b.clone()];
    for round in 0..5 {
        let jti = format!("raced-{round}");
        let firsts = at_once((0..8).map(|i| {
            let (store, jti) = (nth(&stores, i), jti.clone());
            async move { store.use_assertion("racer", &jti, expiry).await.expect("use") }
        }))
        .await;
        assert_eq!(firsts.iter().filter(|f| **f).count(), 1, "round {round}: exactly one is first");
    }
    b.purge_expired_tokens(expiry).await.expect("purge");
    assert!(
        a.use_assertion("svc", "jti-1", expiry).await.expect("use"),
        "free after a purge through the other"
    );
    assert!(!b.use_assertion("svc", "jti-1", expiry).await.expect("use"));
}

/// Inits of the organization racing through both stores all return the same one;
/// an update through one is seen through the other, and later inits return it.
pub async fn shared_organization_init_races_agree([a, b]: [SharedStore; 2]) {
    let stores = [a.clone(), b.clone()];
    let candidates: Vec<Organization> = (0..8)
        .map(|i| sample_organization(&format!("Racer {i}"), &format!("racer-{i}.example")))
        .collect();
    let returned = at_once(candidates.iter().enumerate().map(|(i, candidate)| {
        let (store, candidate) = (nth(&stores, i), candidate.clone());
        async move { store.init_organization(&candidate).await.expect("init") }
    }))
    .await;
    let first = returned[0].clone();
    assert!(returned.iter().all(|org| *org == first), "racing inits disagree: {returned:#?}");
    assert!(candidates.contains(&first), "the organization is one of the candidates");
    assert_eq!(b.organization().await.expect("read"), Some(first.clone()));
    let name = DisplayName::new("Renamed").expect("name");
    let domain = Domain::new("renamed.example").expect("domain");
    let updated = b.update_organization(&name, &domain).await.expect("update");
    assert_eq!(updated, Organization { name, primary_domain: domain, ..first });
    assert_eq!(a.organization().await.expect("read"), Some(updated.clone()));
    let late = sample_organization("Late", "late.example");
    assert_eq!(
        a.init_organization(&late).await.expect("init"),
        updated,
        "a later init returns the stored one"
    );
    organization_updates_are_atomic(&stores).await;
}

/// Signing-key inserts racing through both stores, round after round: exactly one
/// racer of each round wins, and both stores read the same keys.
pub async fn shared_signing_key_inserts_race([a, b]: [SharedStore; 2]) {
    let stores = [a.clone(), b.clone()];
    assert!(a.insert_signing_key(&sample_signing_key("k0", 0), None).await.expect("insert"));
    let mut latest = "k0".to_owned();
    for round in 1..=4 {
        let won = at_once((0..8).map(|i| {
            let (store, previous) = (nth(&stores, i), latest.clone());
            let key = sample_signing_key(&format!("k{round}-{i}"), round * 3600);
            async move {
                let won = store.insert_signing_key(&key, Some(&previous)).await.expect("insert");
                (won, key.kid)
            }
        }))
        .await;
        let winners: Vec<String> = won.into_iter().filter(|(w, _)| *w).map(|(_, k)| k).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one racer may win: {winners:?}");
        latest = winners[0].clone();
        for store in &stores {
            let keys = store.signing_keys().await.expect("list");
            assert_eq!(keys.len(), round as usize + 1, "round {round}");
            assert_eq!(keys.last().map(|k| k.kid.as_str()), Some(latest.as_str()));
        }
    }
    assert!(b.delete_signing_key("k0").await.expect("delete"));
    assert!(!a.delete_signing_key("k0").await.expect("delete"), "deleted through the other store");
    assert_eq!(a.signing_keys().await.expect("list").len(), 4);
}

/// Patches and rotations of one user or app through both stores at once lose
/// nothing.
pub async fn shared_concurrent_patches_lose_nothing([a, b]: [SharedStore; 2]) {
    let stores = [a, b];
    user_patches_lose_nothing(&stores, 4).await;
    app_patches_lose_nothing(&stores, 4).await;
    for round in 0..2 {
        user_rotations_form_one_chain(&stores, &format!("chain-{round}")).await;
        app_rotations_form_one_chain(&stores, &format!("app-chain-{round}")).await;
    }
}

/// One name claimed at once as a user through one store and as an API app through
/// the other is claimed once.
pub async fn shared_client_namespace_is_claimed_once([a, b]: [SharedStore; 2]) {
    let orders = sample_project("orders");
    b.create_project(&orders).await.expect("create project");
    for i in 0..20 {
        let name = format!("contested-{i}");
        let (user, _) = sample_user(&name);
        let (app, _) = sample_app(&orders, &name);
        let (as_user, as_app) = tokio::join!(a.create_service_user(&user), b.create_api_app(&app));
        assert_eq!(
            usize::from(as_user.is_ok()) + usize::from(as_app.is_ok()),
            1,
            "{name}: {as_user:?} {as_app:?}"
        );
        for result in [as_user, as_app] {
            assert!(matches!(result, Ok(()) | Err(StoreError::Conflict(_))), "{result:?}");
        }
    }
}

/// Token records inserted through both stores at once are all stored and seen
/// through both; so are grants and client keys added at once.
pub async fn shared_inserts_through_both_lose_nothing([a, b]: [SharedStore; 2]) {
    let (user, _) = create(&a, "busy").await;
    let stores = [a.clone(), b.clone()];
    at_once((0..100).map(|i| {
        let (store, record) = (nth(&stores, i), sample_token(&user, &format!("both-{i}"), 3600));
        async move { store.insert_token(&record).await.expect("insert") }
    }))
    .await;
    for i in 0..100 {
        let digest = TokenDigest::of(&format!("both-{i}"));
        for store in &stores {
            assert!(
                store.token_by_digest(&digest).await.expect("lookup").is_some(),
                "token {i} was lost"
            );
        }
    }
    grants_are_all_kept(&stores).await;
    client_keys_are_all_kept(&stores).await;
}

/// Projects, API apps, grants and client keys created through one store are seen
/// through the other, and unique keys hold across both.
pub async fn shared_changes_are_seen_through_the_other([a, b]: [SharedStore; 2]) {
    let orders = sample_project("orders");
    a.create_project(&orders).await.expect("create project");
    assert_eq!(b.project_by_id(&orders.id).await.expect("lookup"), Some(orders.clone()));
    let dup = b.create_project(&orders).await;
    assert!(
        matches!(dup, Err(StoreError::Conflict(_))),
        "a project id taken through the other: {dup:?}"
    );
    let renamed = DisplayName::new("Orders v2").expect("name");
    b.rename_project(&orders.id, &renamed).await.expect("rename");
    let seen = a.project_by_id(&orders.id).await.expect("lookup").expect("exists");
    assert_eq!(seen.name, renamed);

    let (app, _) = sample_app(&orders, "orders-api");
    b.create_api_app(&app).await.expect("create app");
    assert_eq!(a.list_api_apps().await.expect("list"), vec![app.clone()]);
    let (mut clash, _) = sample_app(&orders, "other-api");
    clash.app_id = app.app_id.clone();
    let clash = a.create_api_app(&clash).await;
    assert!(
        matches!(clash, Err(StoreError::Conflict(_))),
        "an app id taken through the other: {clash:?}"
    );

    let (user, _) = create(&b, "granted").await;
    assert_eq!(a.list_service_users().await.expect("list"), vec![user.clone()]);
    let taken = a.create_service_user(&sample_user("granted").0).await;
    assert!(
        matches!(taken, Err(StoreError::Conflict(_))),
        "a username taken through the other: {taken:?}"
    );
    let grant =
        RoleGrant { user_id: user.id.clone(), project_id: orders.id.clone(), role: role("writer") };
    assert!(a.add_grant(&grant).await.expect("grant"));
    assert!(!b.add_grant(&grant).await.expect("grant again"), "granted through the other store");
    assert_eq!(b.grants_of_user(&user.id).await.expect("list"), vec![grant.clone()]);
    assert!(b.remove_grant(&grant).await.expect("remove"));
    assert!(a.grants_of_user(&user.id).await.expect("list").is_empty());

    let owner = KeyOwner::ApiApp(app.client_id.clone());
    let key = sample_client_key(owner.clone(), "app-key", 0);
    a.add_client_key(&key).await.expect("add");
    assert_eq!(b.client_key("app-key").await.expect("lookup"), Some(key.clone()));
    assert_eq!(b.client_keys_of(&owner).await.expect("list"), vec![key.clone()]);
    let dup = b
        .add_client_key(&sample_client_key(KeyOwner::ServiceUser(user.id.clone()), "app-key", 0))
        .await;
    assert!(
        matches!(dup, Err(StoreError::Conflict(_))),
        "a key id taken through the other: {dup:?}"
    );
    assert!(b.remove_client_key(&owner, "app-key").await.expect("remove"));
    assert_eq!(a.client_key("app-key").await.expect("lookup"), None);
}

/// A user or an app deleted through one store is gone through the other at once,
/// with its tokens, grants and client keys.
pub async fn shared_deletes_are_seen_through_the_other([a, b]: [SharedStore; 2]) {
    let orders = sample_project("orders");
    a.create_project(&orders).await.expect("create project");
    let (user, _) = create(&a, "doomed").await;
    let record = sample_token(&user, "doomed-token", 60);
    a.insert_token(&record).await.expect("insert");
    let grant =
        RoleGrant { user_id: user.id.clone(), project_id: orders.id.clone(), role: role("r") };
    a.add_grant(&grant).await.expect("grant");
    let user_key = sample_client_key(KeyOwner::ServiceUser(user.id.clone()), "user-key", 0);
    a.add_client_key(&user_key).await.expect("add");
    let (app, _) = sample_app(&orders, "doomed-api");
    a.create_api_app(&app).await.expect("create app");
    let app_key = sample_client_key(KeyOwner::ApiApp(app.client_id.clone()), "app-key", 0);
    a.add_client_key(&app_key).await.expect("add");

    b.delete_service_user(&user.username).await.expect("delete user");
    assert_eq!(a.service_user_by_username(&user.username).await.expect("lookup"), None);
    assert_eq!(a.service_user_by_id(&user.id).await.expect("lookup"), None);
    assert_eq!(
        a.token_by_digest(&record.digest).await.expect("lookup"),
        None,
        "its tokens go with it"
    );
    assert!(a.grants_of_user(&user.id).await.expect("list").is_empty(), "its grants go with it");
    assert_eq!(a.client_key("user-key").await.expect("lookup"), None, "its keys go with it");
    let again = a.delete_service_user(&user.username).await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "deleted through the other: {again:?}");

    a.delete_api_app(&app.client_id).await.expect("delete app");
    assert_eq!(b.api_app_by_client_id(&app.client_id).await.expect("lookup"), None);
    assert_eq!(b.client_key("app-key").await.expect("lookup"), None, "its keys go with it");
    let orphan = b
        .add_client_key(&sample_client_key(KeyOwner::ApiApp(app.client_id.clone()), "late", 0))
        .await;
    assert!(
        matches!(orphan, Err(StoreError::NotFound(_))),
        "a key of an app deleted through the other: {orphan:?}"
    );
}

/// Grants and client keys added through one store while the other deletes their
/// owner do not outlive it.
pub async fn shared_additions_racing_a_delete_do_not_outlive_it([a, b]: [SharedStore; 2]) {
    additions_racing_a_delete(&[a, b]).await;
}
