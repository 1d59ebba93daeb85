//! The checks of administrators and personal access tokens ([`AccessAdmin`]), with
//! the lookup of personal access tokens by digest
//! ([`IssuingStore::personal_access_token_by_digest`]).
//! [`conformance_suite!`](crate::conformance_suite) and
//! [`conformance_suite_shared!`](crate::conformance_suite_shared) run them.
//!
//! [`AccessAdmin`]: crate::AccessAdmin
//! [`IssuingStore::personal_access_token_by_digest`]: crate::IssuingStore::personal_access_token_by_digest

use time::Duration;

use super::{SharedStore, at, at_once, create, nth, sample_project, sample_user, t0};
use crate::{
    AdminRole, Administrator, PatId, PersonalAccessToken, ProjectId, ServiceUser, StoreError,
    TokenDigest, UserId, sort_administrators,
};

/// A personal access token `id` of `user` whose bearer token is `token`, created
/// `offset_secs` after `t0()` and expiring 30 days after `t0()`, not yet stored
/// (panics on an invalid id).
pub fn sample_personal_access_token(
    user: &ServiceUser,
    id: &str,
    token: &str,
    offset_secs: i64,
) -> PersonalAccessToken {
    PersonalAccessToken {
        id: PatId::new(id).unwrap_or_else(|e| panic!("test token id {id:?}: {e}")),
        user_id: user.id.clone(),
        digest: TokenDigest::of(token),
        created_at: at(offset_secs),
        expires_at: Some(t0() + Duration::days(30)),
    }
}

/// `role` (on `project`) held by `user` from `offset_secs` after `t0()`.
fn role_of(
    user: &ServiceUser,
    role: AdminRole,
    project: Option<&ProjectId>,
    offset_secs: i64,
) -> Administrator {
    Administrator::new(user.id.clone(), role, project.cloned(), at(offset_secs))
}

/// A new user `name` with the id `id`, stored.
async fn create_with_id(store: &SharedStore, name: &str, id: &str) -> ServiceUser {
    let (mut user, _) = sample_user(name);
    user.id = UserId::new(id).unwrap_or_else(|e| panic!("test user id {id:?}: {e}"));
    store.create_service_user(&user).await.unwrap_or_else(|e| panic!("create {name}: {e}"));
    user
}

/// The personal access token stored with `digest`.
async fn pat_by_digest(store: &SharedStore, digest: &TokenDigest) -> Option<PersonalAccessToken> {
    store.personal_access_token_by_digest(digest).await.expect("lookup by digest")
}

/// Roles read back exactly, listed by user id, role name, then project id (none
/// first), by every user and by one; granting a role held already returns `false`
/// and changes nothing, not even its creation time.
pub async fn administrators_are_granted_once_and_listed_in_order(store: SharedStore) {
    assert!(store.administrators().await.expect("list").is_empty(), "a fresh store has none");
    // The usernames sort the other way round: the list follows the user ids.
    let first = create_with_id(&store, "zulu-admin", "100000000000000001").await;
    let second = create_with_id(&store, "alpha-admin", "100000000000000002").await;
    let orders = sample_project("orders");
    store.create_project(&orders).await.expect("create project");
    let reserved = ProjectId::reserved();
    let first_roles = vec![
        role_of(&first, AdminRole::IamOwner, None, 0),
        role_of(&first, AdminRole::IamOwnerViewer, None, 1),
        role_of(&first, AdminRole::ProjectOwner, None, 2),
        role_of(&first, AdminRole::ProjectOwner, Some(&orders.id), 3),
        role_of(&first, AdminRole::ProjectOwner, Some(&reserved), 4),
    ];
    let second_roles = vec![
        role_of(&second, AdminRole::OrgOwner, None, 5),
        role_of(&second, AdminRole::OrgUserManager, None, 6),
    ];
    for admin in second_roles.iter().rev().chain(first_roles.iter().rev()) {
        assert!(store.add_administrator(admin).await.expect("add"), "{admin:?} is new");
    }
    let expected: Vec<Administrator> = first_roles.iter().chain(&second_roles).cloned().collect();
    assert_eq!(
        store.administrators().await.expect("list"),
        expected,
        "roles read back, ordered by user id, role name, then project id (none first)"
    );
    assert_eq!(store.administrator_roles_of(&first.id).await.expect("list"), first_roles);
    assert_eq!(store.administrator_roles_of(&second.id).await.expect("list"), second_roles);
    let nobody = UserId::generate().expect("id");
    assert!(store.administrator_roles_of(&nobody).await.expect("list").is_empty());

    let again = Administrator { created_at: at(100), ..first_roles[3].clone() };
    assert!(!store.add_administrator(&again).await.expect("add again"), "a held role is not new");
    assert_eq!(
        store.administrators().await.expect("list"),
        expected,
        "granting a held role again changes nothing"
    );
}

/// A role of a missing user, or a project role on a missing project, is
/// `NotFound` and stores nothing; a project role on every project needs no project.
pub async fn administrators_need_their_user_and_project(store: SharedStore) {
    let (user, _) = create(&store, "admin").await;
    let held = role_of(&user, AdminRole::OrgOwner, None, 0);
    assert!(store.add_administrator(&held).await.expect("add"));
    let (ghost, _) = sample_user("ghost");
    let missing = ProjectId::new("missing").expect("project id");
    let reserved = ProjectId::reserved();
    for (admin, what) in [
        (role_of(&ghost, AdminRole::OrgOwner, None, 1), "a role of a missing user"),
        (role_of(&ghost, AdminRole::ProjectOwner, Some(&reserved), 1), "of a missing user"),
        (role_of(&user, AdminRole::ProjectOwner, Some(&missing), 1), "on a missing project"),
        (role_of(&ghost, AdminRole::ProjectOwner, Some(&missing), 1), "both missing"),
    ] {
        let result = store.add_administrator(&admin).await;
        assert!(matches!(result, Err(StoreError::NotFound(_))), "{what}: {result:?}");
    }
    assert_eq!(
        store.administrators().await.expect("list"),
        vec![held.clone()],
        "a refused role is not stored"
    );
    assert!(store.administrator_roles_of(&ghost.id).await.expect("list").is_empty());

    let later = sample_project("later");
    store.create_project(&later).await.expect("create project");
    let on_later = role_of(&user, AdminRole::ProjectOwner, Some(&later.id), 2);
    assert!(store.add_administrator(&on_later).await.expect("add"), "once the project exists");
    let on_every = role_of(&user, AdminRole::ProjectOwner, None, 3);
    assert!(store.add_administrator(&on_every).await.expect("add"), "on every project");
    assert_eq!(
        store.administrator_roles_of(&user.id).await.expect("list"),
        [held, on_every, on_later]
    );
}

/// Removing a role takes exactly that role, on exactly that project (or none), and
/// returns whether it was held; removing one not held changes nothing.
pub async fn administrators_are_removed_only_when_held(store: SharedStore) {
    let user = create_with_id(&store, "admin", "100000000000000001").await;
    let other = create_with_id(&store, "other-admin", "100000000000000002").await;
    let orders = sample_project("orders");
    store.create_project(&orders).await.expect("create project");
    let on_orders = role_of(&user, AdminRole::ProjectOwner, Some(&orders.id), 0);
    let on_every = role_of(&user, AdminRole::ProjectOwner, None, 1);
    let owner = role_of(&user, AdminRole::OrgOwner, None, 2);
    let others = role_of(&other, AdminRole::OrgOwner, None, 3);
    for admin in [&on_orders, &on_every, &owner, &others] {
        assert!(store.add_administrator(admin).await.expect("add"));
    }
    let reserved = ProjectId::reserved();
    let nobody = UserId::generate().expect("id");
    for (user_id, role, project, what) in [
        (&user.id, AdminRole::IamOwner, None, "a role never granted"),
        (&user.id, AdminRole::ProjectOwner, Some(&reserved), "held on another project"),
        (&user.id, AdminRole::OrgOwner, Some(&orders.id), "held without a project"),
        (&nobody, AdminRole::OrgOwner, None, "of an unknown user"),
    ] {
        let removed = store.remove_administrator(user_id, role, project).await.expect("remove");
        assert!(!removed, "{what}: not held");
    }
    let all = vec![owner.clone(), on_every.clone(), on_orders.clone(), others.clone()];
    assert_eq!(store.administrators().await.expect("list"), all, "and nothing changed");

    let removed = store.remove_administrator(&user.id, AdminRole::ProjectOwner, None).await;
    assert!(removed.expect("remove"), "the role on every project was held");
    let again = store.remove_administrator(&user.id, AdminRole::ProjectOwner, None).await;
    assert!(!again.expect("remove again"), "and is not any more");
    assert_eq!(
        store.administrator_roles_of(&user.id).await.expect("list"),
        [owner.clone(), on_orders.clone()],
        "the role on one project stays"
    );
    let removed = store.remove_administrator(&user.id, AdminRole::OrgOwner, None).await;
    assert!(removed.expect("remove"));
    assert_eq!(
        store.administrators().await.expect("list"),
        [on_orders, others.clone()],
        "another user's role of the same name stays"
    );
    assert!(store.add_administrator(&owner).await.expect("add"), "a removed role is new again");
}

/// Tokens read back exactly, by digest (active or not) and listed per user by
/// creation time, then id (byte order); a token is no token record.
pub async fn personal_access_tokens_read_back_in_order(store: SharedStore) {
    let (user, _) = create(&store, "pat-holder").await;
    let (other, _) = create(&store, "other-holder").await;
    assert!(store.personal_access_tokens_of(&user.id).await.expect("list").is_empty());
    let late = sample_personal_access_token(&user, "100000000000000003", "late", 20);
    let mut nine = sample_personal_access_token(&user, "9", "nine", 10);
    nine.expires_at = None;
    let ten = sample_personal_access_token(&user, "10", "ten", 10);
    let others = sample_personal_access_token(&other, "100000000000000004", "others", 0);
    let mut expired = sample_personal_access_token(&other, "5", "expired", 0);
    expired.expires_at = Some(at(1));
    for token in [&late, &nine, &ten, &others, &expired] {
        store.add_personal_access_token(token).await.expect("add");
    }
    assert_eq!(
        store.personal_access_tokens_of(&user.id).await.expect("list"),
        [ten.clone(), nine.clone(), late.clone()],
        "ordered by creation time, then id (byte order)"
    );
    assert_eq!(
        store.personal_access_tokens_of(&other.id).await.expect("list"),
        [others.clone(), expired.clone()]
    );
    let nobody = UserId::generate().expect("id");
    assert!(store.personal_access_tokens_of(&nobody).await.expect("list").is_empty());
    for token in [&late, &nine, &ten, &others, &expired] {
        assert_eq!(pat_by_digest(&store, &token.digest).await.as_ref(), Some(token), "by digest");
    }
    assert_eq!(pat_by_digest(&store, &TokenDigest::of("unknown")).await, None);
    let record = store.token_by_digest(&late.digest).await.expect("lookup");
    assert_eq!(record, None, "a personal access token is no token record");
}

/// Token ids and digests are unique (`Conflict`), a token of a missing user is
/// `NotFound`, and a refused token stores nothing.
pub async fn personal_access_tokens_are_unique_and_need_their_user(store: SharedStore) {
    let (user, _) = create(&store, "pat-holder").await;
    let (other, _) = create(&store, "other-holder").await;
    let first = sample_personal_access_token(&user, "1", "first", 0);
    store.add_personal_access_token(&first).await.expect("add");
    let same_id = sample_personal_access_token(&other, "1", "second", 1);
    let same_digest = sample_personal_access_token(&other, "2", "first", 1);
    for (token, what) in
        [(&same_id, "a taken id"), (&same_digest, "a taken digest"), (&first, "the same token")]
    {
        let result = store.add_personal_access_token(token).await;
        assert!(matches!(result, Err(StoreError::Conflict(_))), "{what}: {result:?}");
    }
    assert_eq!(pat_by_digest(&store, &same_id.digest).await, None, "a refused token is not stored");
    assert!(store.personal_access_tokens_of(&other.id).await.expect("list").is_empty());

    let (ghost, _) = sample_user("ghost");
    let orphan = sample_personal_access_token(&ghost, "3", "orphan", 0);
    let result = store.add_personal_access_token(&orphan).await;
    assert!(matches!(result, Err(StoreError::NotFound(_))), "a missing user: {result:?}");
    assert_eq!(pat_by_digest(&store, &orphan.digest).await, None);
    assert!(store.personal_access_tokens_of(&ghost.id).await.expect("list").is_empty());

    assert_eq!(store.personal_access_tokens_of(&user.id).await.expect("list"), vec![first.clone()]);
    assert_eq!(pat_by_digest(&store, &first.digest).await, Some(first), "the first is unchanged");
}

/// Removing a token is scoped to its user: another user's token id changes nothing
/// and returns `false`; a removed token is found no more, and its id and digest are
/// free again.
pub async fn personal_access_tokens_are_removed_only_by_their_user(store: SharedStore) {
    let (user, _) = create(&store, "pat-holder").await;
    let (other, _) = create(&store, "other-holder").await;
    let first = sample_personal_access_token(&user, "1", "first", 0);
    let second = sample_personal_access_token(&user, "2", "second", 1);
    let others = sample_personal_access_token(&other, "3", "others", 2);
    for token in [&first, &second, &others] {
        store.add_personal_access_token(token).await.expect("add");
    }
    let removed = store.remove_personal_access_token(&other.id, &first.id).await.expect("remove");
    assert!(!removed, "another user's token id");
    assert_eq!(pat_by_digest(&store, &first.digest).await.as_ref(), Some(&first), "is kept");
    let unknown = PatId::new("999").expect("id");
    assert!(!store.remove_personal_access_token(&user.id, &unknown).await.expect("remove"));

    assert!(store.remove_personal_access_token(&user.id, &first.id).await.expect("remove"));
    assert_eq!(pat_by_digest(&store, &first.digest).await, None, "a removed token is gone");
    assert!(!store.remove_personal_access_token(&user.id, &first.id).await.expect("again"));
    assert_eq!(store.personal_access_tokens_of(&user.id).await.expect("list"), [second]);
    assert_eq!(
        store.personal_access_tokens_of(&other.id).await.expect("list"),
        vec![others.clone()]
    );

    let reused = PersonalAccessToken { user_id: other.id.clone(), ..first };
    store.add_personal_access_token(&reused).await.expect("the id and digest are free again");
    assert_eq!(store.personal_access_tokens_of(&other.id).await.expect("list"), [reused, others]);
}

/// Deleting a user removes its roles and tokens, and no other user's; a user
/// created again with the same id holds none of them.
pub async fn access_goes_with_its_user(store: SharedStore) {
    let orders = sample_project("orders");
    store.create_project(&orders).await.expect("create project");
    let (gone, _) = create(&store, "gone").await;
    let (kept, _) = create(&store, "kept").await;
    let roles = |user: &ServiceUser| {
        vec![
            role_of(user, AdminRole::OrgOwner, None, 0),
            role_of(user, AdminRole::ProjectOwner, Some(&orders.id), 1),
        ]
    };
    let kept_roles = roles(&kept);
    for admin in roles(&gone).iter().chain(&kept_roles) {
        assert!(store.add_administrator(admin).await.expect("add"));
    }
    let gone_pat = sample_personal_access_token(&gone, "1", "gone-token", 0);
    let kept_pat = sample_personal_access_token(&kept, "2", "kept-token", 0);
    for token in [&gone_pat, &kept_pat] {
        store.add_personal_access_token(token).await.expect("add");
    }

    store.delete_service_user(&gone.username).await.expect("delete");
    assert!(store.administrator_roles_of(&gone.id).await.expect("list").is_empty(), "roles go");
    assert_eq!(store.administrators().await.expect("list"), kept_roles, "others' roles stay");
    assert!(store.personal_access_tokens_of(&gone.id).await.expect("list").is_empty());
    assert_eq!(pat_by_digest(&store, &gone_pat.digest).await, None, "its tokens go with it");
    assert_eq!(pat_by_digest(&store, &kept_pat.digest).await, Some(kept_pat.clone()));
    assert_eq!(store.personal_access_tokens_of(&kept.id).await.expect("list"), [kept_pat]);

    let (mut again, _) = sample_user("gone");
    again.id = gone.id.clone();
    store.create_service_user(&again).await.expect("create again");
    assert!(store.administrator_roles_of(&again.id).await.expect("list").is_empty());
    assert!(store.personal_access_tokens_of(&again.id).await.expect("list").is_empty());
    assert_eq!(pat_by_digest(&store, &gone_pat.digest).await, None);
    store.add_personal_access_token(&gone_pat).await.expect("the id and digest are free again");
}

/// Roles and tokens added concurrently are all kept; of concurrent grants of one
/// role exactly one reports it new, and of concurrent tokens with one digest
/// exactly one is stored.
pub async fn access_added_concurrently_is_all_kept(store: SharedStore) {
    access_is_all_kept(&[store]).await;
}

/// Roles and tokens added while their user is deleted are refused or deleted with
/// it.
pub async fn access_added_while_its_user_is_deleted_does_not_outlive_it(store: SharedStore) {
    access_racing_a_delete(&[store.clone(), store]).await;
}

/// Roles granted and tokens added through one store are seen through the other at
/// once (a token found by its digest), unique keys hold across both, removals
/// through either are seen by both, and deleting the user through one removes its
/// roles and tokens for both.
pub async fn shared_access_is_seen_through_the_other([a, b]: [SharedStore; 2]) {
    let (user, _) = create(&a, "shared-admin").await;
    let admin = role_of(&user, AdminRole::IamOwner, None, 0);
    assert!(a.add_administrator(&admin).await.expect("add"));
    assert_eq!(b.administrators().await.expect("list"), vec![admin.clone()]);
    assert_eq!(b.administrator_roles_of(&user.id).await.expect("list"), vec![admin.clone()]);
    assert!(!b.add_administrator(&admin).await.expect("add"), "granted through the other store");
    assert!(b.remove_administrator(&user.id, admin.role, None).await.expect("remove"));
    assert!(a.administrators().await.expect("list").is_empty(), "removed through the other");
    assert!(!a.remove_administrator(&user.id, admin.role, None).await.expect("remove"));

    let token = sample_personal_access_token(&user, "1", "shared-token", 0);
    a.add_personal_access_token(&token).await.expect("add");
    for _ in 0..20 {
        let seen = pat_by_digest(&b, &token.digest).await;
        assert_eq!(seen.as_ref(), Some(&token), "added through one, found through the other");
    }
    assert_eq!(b.personal_access_tokens_of(&user.id).await.expect("list"), vec![token.clone()]);
    for clash in [
        sample_personal_access_token(&user, "1", "another-token", 1),
        sample_personal_access_token(&user, "2", "shared-token", 1),
    ] {
        let result = b.add_personal_access_token(&clash).await;
        assert!(
            matches!(result, Err(StoreError::Conflict(_))),
            "taken through the other: {result:?}"
        );
    }
    assert!(b.remove_personal_access_token(&user.id, &token.id).await.expect("remove"));
    assert_eq!(pat_by_digest(&a, &token.digest).await, None, "removed through the other");

    let second = sample_personal_access_token(&user, "3", "second-token", 1);
    b.add_personal_access_token(&second).await.expect("add");
    assert!(b.add_administrator(&admin).await.expect("add"));
    assert_eq!(pat_by_digest(&a, &second.digest).await, Some(second.clone()));
    a.delete_service_user(&user.username).await.expect("delete");
    assert_eq!(pat_by_digest(&b, &second.digest).await, None, "gone with the user");
    assert!(b.personal_access_tokens_of(&user.id).await.expect("list").is_empty());
    assert!(b.administrators().await.expect("list").is_empty(), "its roles go with it");
    let late = sample_personal_access_token(&user, "4", "late-token", 2);
    let result = b.add_personal_access_token(&late).await;
    assert!(
        matches!(result, Err(StoreError::NotFound(_))),
        "deleted through the other: {result:?}"
    );
    let result = b.add_administrator(&admin).await;
    assert!(
        matches!(result, Err(StoreError::NotFound(_))),
        "deleted through the other: {result:?}"
    );
}

/// Roles and tokens added through both stores at once are all kept and seen by
/// both.
pub async fn shared_access_added_through_both_is_all_kept([a, b]: [SharedStore; 2]) {
    access_is_all_kept(&[a, b]).await;
}

/// Roles and tokens added through one store while the other deletes their user do
/// not outlive it.
pub async fn shared_access_racing_a_delete_does_not_outlive_it([a, b]: [SharedStore; 2]) {
    access_racing_a_delete(&[a, b]).await;
}

/// Fifteen roles and sixteen tokens of one user added at once through `stores` in
/// turn are all kept; then eight grants of one role and eight tokens with one digest
/// at once: one is new, one is stored.
async fn access_is_all_kept(stores: &[SharedStore]) {
    let orders = sample_project("orders");
    stores[0].create_project(&orders).await.expect("create project");
    let (user, _) = create(&stores[0], "busy-admin").await;
    let projects = [None, Some(orders.id.clone()), Some(ProjectId::reserved())];
    let roles: Vec<Administrator> = AdminRole::ALL
        .into_iter()
        .flat_map(|role| projects.iter().map(move |project| (role, project)))
        .enumerate()
        .map(|(i, (role, project))| role_of(&user, role, project.as_ref(), i as i64))
        .collect();
    let added = at_once(roles.iter().enumerate().map(|(i, admin)| {
        let (store, admin) = (nth(stores, i), admin.clone());
        async move { store.add_administrator(&admin).await.expect("add") }
    }))
    .await;
    assert!(added.iter().all(|new| *new), "each role is new");
    let mut expected = roles.clone();
    sort_administrators(&mut expected);
    for store in stores {
        let stored = store.administrator_roles_of(&user.id).await.expect("list");
        assert_eq!(stored, expected, "a role granted concurrently was lost");
        assert_eq!(store.administrators().await.expect("list"), expected);
    }
    let (other, _) = create(&stores[0], "contested-admin").await;
    let contested = role_of(&other, AdminRole::OrgOwner, None, 0);
    let added = at_once((0..8).map(|i| {
        let (store, admin) = (nth(stores, i), contested.clone());
        async move { store.add_administrator(&admin).await.expect("add") }
    }))
    .await;
    assert_eq!(added.iter().filter(|new| **new).count(), 1, "one role, new once");

    let tokens: Vec<PersonalAccessToken> = (0..16)
        .map(|i| {
            sample_personal_access_token(&user, &format!("pat-{i:02}"), &format!("t{i}"), i % 4)
        })
        .collect();
    at_once(tokens.iter().enumerate().map(|(i, token)| {
        let (store, token) = (nth(stores, i), token.clone());
        async move { store.add_personal_access_token(&token).await.expect("add") }
    }))
    .await;
    let mut expected = tokens.clone();
    expected.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    for store in stores {
        let stored = store.personal_access_tokens_of(&user.id).await.expect("list");
        assert_eq!(stored, expected, "a token added concurrently was lost");
        for token in &tokens {
            assert_eq!(pat_by_digest(store, &token.digest).await.as_ref(), Some(token));
        }
    }
    let results = at_once((0..8).map(|i| {
        let store = nth(stores, i);
        let token = sample_personal_access_token(&other, &format!("same-{i}"), "same", 0);
        async move { store.add_personal_access_token(&token).await }
    }))
    .await;
    for result in &results {
        assert!(matches!(result, Ok(()) | Err(StoreError::Conflict(_))), "{result:?}");
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "one digest, stored once");
    let stored = stores[stores.len() - 1].personal_access_tokens_of(&other.id).await.expect("list");
    assert_eq!(stored.len(), 1, "{stored:?}");
}

/// A role and a token added through `adder` while `deleter` deletes their user:
/// each addition succeeds or finds the user gone, and neither outlives it.
async fn access_racing_a_delete([adder, deleter]: &[SharedStore; 2]) {
    for i in 0..10 {
        let (user, _) = create(adder, &format!("doomed-admin-{i}")).await;
        let admin = role_of(&user, AdminRole::OrgOwner, None, 0);
        let token =
            sample_personal_access_token(&user, &format!("doomed-{i}"), &format!("d{i}"), 0);
        let (granted, added, deleted) = tokio::join!(
            adder.add_administrator(&admin),
            adder.add_personal_access_token(&token),
            deleter.delete_service_user(&user.username),
        );
        deleted.expect("delete user");
        assert!(matches!(granted, Ok(true) | Err(StoreError::NotFound(_))), "{i}: {granted:?}");
        assert!(matches!(added, Ok(()) | Err(StoreError::NotFound(_))), "{i}: {added:?}");
        for store in [adder, deleter] {
            assert!(
                store.administrator_roles_of(&user.id).await.expect("list").is_empty(),
                "{i}: a role outlived its user"
            );
            assert!(
                !store.administrators().await.expect("list").iter().any(|a| a.user_id == user.id),
                "{i}: a role outlived its user"
            );
            assert_eq!(
                pat_by_digest(store, &token.digest).await,
                None,
                "{i}: a token outlived its user"
            );
            assert!(store.personal_access_tokens_of(&user.id).await.expect("list").is_empty());
        }
    }
}
