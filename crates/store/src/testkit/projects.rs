//! The checks of project roles and of deleting projects ([`ProjectAdmin`]).
//! [`conformance_suite!`](crate::conformance_suite) and
//! [`conformance_suite_shared!`](crate::conformance_suite_shared) run them.
//!
//! [`ProjectAdmin`]: crate::ProjectAdmin

use time::Duration;

use super::{
    SharedStore, at, create, create_app, role, sample_app, sample_client_key, sample_project, t0,
};
use crate::{
    AdminRole, Administrator, DisplayName, KeyOwner, Project, ProjectId, ProjectRole, RoleGrant,
    ServiceUser, StoreError,
};

/// The role `key` of `project`, named `name`, in `group` when given, created
/// `offset_secs` after `t0()`, not yet stored (panics on an invalid key or name).
pub fn sample_project_role(
    project: &ProjectId,
    key: &str,
    name: &str,
    group: Option<&str>,
    offset_secs: i64,
) -> ProjectRole {
    let display = |name: &str| {
        DisplayName::new(name).unwrap_or_else(|e| panic!("test role name {name:?}: {e}"))
    };
    ProjectRole::new(project.clone(), role(key), display(name), group.map(display), at(offset_secs))
}

fn name(value: &str) -> DisplayName {
    DisplayName::new(value).unwrap_or_else(|e| panic!("test name {value:?}: {e}"))
}

fn grant(user: &ServiceUser, project: &ProjectId, key: &str) -> RoleGrant {
    RoleGrant { user_id: user.id.clone(), project_id: project.clone(), role: role(key) }
}

/// Roles read back exactly (whole seconds), listed per project by key (byte order);
/// keys are unique within a project (`Conflict`), a role of a missing project is
/// `NotFound`, and a refused role stores nothing.
pub async fn project_roles_are_unique_and_listed_in_order(store: SharedStore) {
    let orders = sample_project("orders");
    store.create_project(&orders).await.expect("create project");
    assert!(store.project_roles(&orders.id).await.expect("list").is_empty(), "none at first");
    let writer = sample_project_role(&orders.id, "writer", "Writer", Some("Editors"), 0);
    let reader = sample_project_role(&orders.id, "reader", "Reader", None, 1);
    // Upper case sorts before lower case in byte order.
    let admin = sample_project_role(&orders.id, "Admin", "Administrator", Some("Staff"), 2);
    let mut fraction = sample_project_role(&orders.id, "audit.log", "Auditor", None, 3);
    fraction.created_at += Duration::milliseconds(600);
    fraction.updated_at += Duration::milliseconds(900);
    for added in [&writer, &reader, &admin, &fraction] {
        store.add_project_role(added).await.expect("add role");
    }
    let audit = ProjectRole { created_at: at(3), updated_at: at(3), ..fraction.clone() };
    assert_eq!(
        store.project_roles(&orders.id).await.expect("list"),
        [admin.clone(), audit.clone(), reader.clone(), writer.clone()],
        "roles read back in whole seconds, ordered by key (byte order)"
    );

    let same_key = sample_project_role(&orders.id, "reader", "Another reader", None, 9);
    let result = store.add_project_role(&same_key).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "a taken key: {result:?}");
    let elsewhere = sample_project_role(&ProjectId::reserved(), "reader", "Reader", None, 9);
    store.add_project_role(&elsewhere).await.expect("the same key in another project");
    let missing = ProjectId::new("missing").expect("project id");
    let orphan = sample_project_role(&missing, "reader", "Reader", None, 9);
    let result = store.add_project_role(&orphan).await;
    assert!(matches!(result, Err(StoreError::NotFound(_))), "a missing project: {result:?}");
    assert!(store.project_roles(&missing).await.expect("list").is_empty(), "nothing stored");
    assert_eq!(
        store.project_roles(&orders.id).await.expect("list"),
        [admin, audit, reader, writer],
        "a refused role changes nothing"
    );
    assert_eq!(store.project_roles(&ProjectId::reserved()).await.expect("list"), [elsewhere]);
}

/// An update sets the display name and the group (clearing it with `None`) and the
/// update time (whole seconds), keeps the creation time, and returns the role as
/// stored; a missing role is `NotFound`.
pub async fn project_roles_are_updated_in_place(store: SharedStore) {
    let orders = sample_project("orders");
    store.create_project(&orders).await.expect("create project");
    let reader = sample_project_role(&orders.id, "reader", "Reader", Some("Readers"), 0);
    let writer = sample_project_role(&orders.id, "writer", "Writer", None, 0);
    for added in [&reader, &writer] {
        store.add_project_role(added).await.expect("add role");
    }
    let renamed = name("Reads everything");
    let group = name("Auditors");
    let later = at(10) + Duration::milliseconds(700);
    let updated = store
        .update_project_role(&orders.id, &reader.key, &renamed, Some(&group), later)
        .await
        .expect("update");
    let expected = ProjectRole {
        display_name: renamed.clone(),
        group: Some(group),
        updated_at: at(10),
        ..reader.clone()
    };
    assert_eq!(updated, expected, "the update returns the role as stored, in whole seconds");
    let ungrouped = store
        .update_project_role(&orders.id, &reader.key, &renamed, None, at(20))
        .await
        .expect("update");
    let expected = ProjectRole { group: None, updated_at: at(20), ..expected };
    assert_eq!(ungrouped, expected, "no group clears it");
    assert_eq!(
        store.project_roles(&orders.id).await.expect("list"),
        [expected, writer],
        "the update is stored, the other role unchanged"
    );

    let missing =
        store.update_project_role(&orders.id, &role("nobody"), &renamed, None, at(30)).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "a missing role: {missing:?}");
    let elsewhere = store
        .update_project_role(&ProjectId::reserved(), &reader.key, &renamed, None, at(30))
        .await;
    assert!(
        matches!(elsewhere, Err(StoreError::NotFound(_))),
        "the key of another project: {elsewhere:?}"
    );
}

/// Removing a role removes the grants of it in its project, and no others: not the
/// grants of another role, nor those of the same key in another project; removing
/// a missing role changes nothing and returns `false`.
pub async fn project_roles_are_removed_with_their_grants(store: SharedStore) {
    let orders = sample_project("orders");
    store.create_project(&orders).await.expect("create project");
    let reserved = ProjectId::reserved();
    let (first, _) = create(&store, "first-holder").await;
    let (second, _) = create(&store, "second-holder").await;
    for added in [
        sample_project_role(&orders.id, "reader", "Reader", None, 0),
        sample_project_role(&orders.id, "writer", "Writer", None, 0),
        sample_project_role(&reserved, "reader", "Reader", None, 0),
    ] {
        store.add_project_role(&added).await.expect("add role");
    }
    for granted in [
        grant(&first, &orders.id, "reader"),
        grant(&first, &orders.id, "writer"),
        grant(&first, &reserved, "reader"),
        grant(&second, &orders.id, "reader"),
    ] {
        assert!(store.add_grant(&granted).await.expect("grant"));
    }

    let removed = store.remove_project_role(&orders.id, &role("reader")).await.expect("remove");
    assert!(removed, "the role existed");
    assert_eq!(
        store.grants_of_user(&first.id).await.expect("list"),
        [grant(&first, &orders.id, "writer"), grant(&first, &reserved, "reader")],
        "the grants of the role go with it, no others"
    );
    assert!(store.grants_of_user(&second.id).await.expect("list").is_empty());
    let left: Vec<String> = store
        .project_roles(&orders.id)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.key.to_string())
        .collect();
    assert_eq!(left, ["writer"]);
    assert_eq!(store.project_roles(&reserved).await.expect("list").len(), 1, "another project's");

    // A missing role: nothing changes, not even a grant of its key.
    let ungranted = grant(&second, &orders.id, "reader");
    assert!(store.add_grant(&ungranted).await.expect("a grant needs no defined role"));
    let again = store.remove_project_role(&orders.id, &role("reader")).await.expect("remove");
    assert!(!again, "the role is gone already");
    assert_eq!(store.grants_of_user(&second.id).await.expect("list"), [ungranted]);
    let ghost = ProjectId::new("ghost").expect("project id");
    assert!(!store.remove_project_role(&ghost, &role("reader")).await.expect("remove"));

    // The key is free again.
    let again = sample_project_role(&orders.id, "reader", "Reader again", None, 5);
    store.add_project_role(&again).await.expect("add the key again");
}

/// What `project` holds, set up by [`fill_project`].
struct Filled {
    user: ServiceUser,
    app: crate::ApiApp,
    key_id: String,
    admin: Administrator,
    roles: Vec<ProjectRole>,
    grants: Vec<RoleGrant>,
}

/// Gives `project` (stored) an API app with a client key, two roles, two grants to
/// a user `{prefix}-user` (one of a defined role, one of a key without a role) and
/// a project owner; the user also holds an organization role.
async fn fill_project(store: &SharedStore, project: &Project, prefix: &str) -> Filled {
    let (user, _) = create(store, &format!("{prefix}-user")).await;
    let (app, _) = sample_app(project, &format!("{prefix}-api"));
    store.create_api_app(&app).await.expect("create app");
    let key_id = format!("{prefix}-key");
    let key = sample_client_key(KeyOwner::ApiApp(app.client_id.clone()), &key_id, 0);
    store.add_client_key(&key).await.expect("add key");
    let roles = vec![
        sample_project_role(&project.id, "reader", "Reader", None, 0),
        sample_project_role(&project.id, "writer", "Writer", Some("Editors"), 0),
    ];
    for added in &roles {
        store.add_project_role(added).await.expect("add role");
    }
    let grants = vec![grant(&user, &project.id, "reader"), grant(&user, &project.id, "undefined")];
    for granted in &grants {
        assert!(store.add_grant(granted).await.expect("grant"));
    }
    let admin = Administrator::new(
        user.id.clone(),
        AdminRole::ProjectOwner,
        Some(project.id.clone()),
        t0(),
    );
    assert!(store.add_administrator(&admin).await.expect("add administrator"));
    let org_admin = Administrator::new(user.id.clone(), AdminRole::OrgOwner, None, t0());
    assert!(store.add_administrator(&org_admin).await.expect("add administrator"));
    Filled { user, app, key_id, admin, roles, grants }
}

/// Checks through `store` that nothing of `filled` (of the deleted `project`)
/// remains, but its user and the user's organization role.
async fn assert_emptied(store: &SharedStore, project: &ProjectId, filled: &Filled, what: &str) {
    assert_eq!(store.project_by_id(project).await.expect("lookup"), None, "{what}: the project");
    assert!(
        !store.list_projects().await.expect("list").iter().any(|p| &p.id == project),
        "{what}: the project is listed"
    );
    let app = store.api_app_by_client_id(&filled.app.client_id).await.expect("lookup");
    assert_eq!(app, None, "{what}: its API app outlived it");
    assert!(
        !store.list_api_apps().await.expect("list").iter().any(|a| &a.project_id == project),
        "{what}: an API app of it is listed"
    );
    assert_eq!(
        store.client_key(&filled.key_id).await.expect("lookup"),
        None,
        "{what}: its app's key outlived it"
    );
    let owner = KeyOwner::ApiApp(filled.app.client_id.clone());
    assert!(store.client_keys_of(&owner).await.expect("list").is_empty(), "{what}: keys");
    assert!(store.project_roles(project).await.expect("list").is_empty(), "{what}: roles");
    let grants = store.grants_of_user(&filled.user.id).await.expect("list");
    assert!(!grants.iter().any(|g| &g.project_id == project), "{what}: grants: {grants:?}");
    let admins = store.administrators().await.expect("list");
    assert!(
        !admins.iter().any(|a| a.project_id.as_ref() == Some(project)),
        "{what}: a role held on it: {admins:?}"
    );
    let user = store.service_user_by_id(&filled.user.id).await.expect("lookup");
    assert_eq!(user.as_ref(), Some(&filled.user), "{what}: its users are not its own");
    assert!(
        admins.iter().any(|a| a.user_id == filled.user.id && a.project_id.is_none()),
        "{what}: an organization role is not the project's: {admins:?}"
    );
}

/// Deleting a project deletes it with its API apps and their keys, its roles, the
/// grants in it and the roles held on it, and nothing of another project; the
/// reserved project is refused (`Conflict`), a missing one is `NotFound`, and the
/// id is free again afterwards.
pub async fn projects_are_deleted_with_what_they_hold(store: SharedStore) {
    let result = store.delete_project(&ProjectId::reserved()).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "the reserved project: {result:?}");
    assert_eq!(
        store.project_by_id(&ProjectId::reserved()).await.expect("lookup"),
        Some(Project::reserved()),
        "the reserved project stays"
    );
    let missing = ProjectId::new("missing").expect("project id");
    let result = store.delete_project(&missing).await;
    assert!(matches!(result, Err(StoreError::NotFound(_))), "a missing project: {result:?}");

    let orders = sample_project("orders");
    let billing = sample_project("billing");
    for project in [&orders, &billing] {
        store.create_project(project).await.expect("create project");
    }
    let gone = fill_project(&store, &orders, "orders").await;
    let kept = fill_project(&store, &billing, "billing").await;
    // The user of the deleted project holds roles of the other one too.
    let across = grant(&gone.user, &billing.id, "reader");
    assert!(store.add_grant(&across).await.expect("grant"));
    let record = super::sample_token(&gone.user, "audience-token", 60);
    store.insert_token(&record).await.expect("insert token");

    store.delete_project(&orders.id).await.expect("delete");
    assert_emptied(&store, &orders.id, &gone, "after the delete").await;
    assert_eq!(store.grants_of_user(&gone.user.id).await.expect("list"), [across]);
    assert_eq!(
        store.token_by_digest(&record.digest).await.expect("lookup"),
        Some(record),
        "token records are kept"
    );

    // The other project keeps everything.
    assert_eq!(store.project_by_id(&billing.id).await.expect("lookup"), Some(billing.clone()));
    let app = store.api_app_by_client_id(&kept.app.client_id).await.expect("lookup");
    assert_eq!(app.as_ref(), Some(&kept.app));
    assert!(store.client_key(&kept.key_id).await.expect("lookup").is_some());
    assert_eq!(store.project_roles(&billing.id).await.expect("list"), kept.roles);
    assert_eq!(store.grants_of_user(&kept.user.id).await.expect("list"), kept.grants);
    assert!(store.administrators().await.expect("list").contains(&kept.admin));

    let again = store.delete_project(&orders.id).await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "deleted already: {again:?}");
    let late_role = sample_project_role(&orders.id, "late", "Late", None, 0);
    let late = store.add_project_role(&late_role).await;
    assert!(matches!(late, Err(StoreError::NotFound(_))), "a role of it: {late:?}");
    let late = store.add_grant(&grant(&gone.user, &orders.id, "late")).await;
    assert!(matches!(late, Err(StoreError::NotFound(_))), "a grant in it: {late:?}");
    let (app, _) = sample_app(&orders, "late-api");
    let late = store.create_api_app(&app).await;
    assert!(matches!(late, Err(StoreError::NotFound(_))), "an app of it: {late:?}");

    // Its id is free again, and the project created again holds nothing of the old.
    store.create_project(&orders).await.expect("create the project again");
    assert!(store.project_roles(&orders.id).await.expect("list").is_empty());
    store.create_api_app(&gone.app).await.expect("the client ID and app id are free again");
    assert_eq!(store.client_key(&gone.key_id).await.expect("lookup"), None);
    store.add_project_role(&gone.roles[0]).await.expect("the role key is free again");
}

/// API apps, client keys, roles, grants and project owners added while their
/// project is deleted are refused or deleted with it.
pub async fn project_additions_racing_its_delete_do_not_outlive_it(store: SharedStore) {
    additions_racing_a_project_delete(&[store.clone(), store]).await;
}

/// Roles added and projects deleted through one store are seen through the other
/// at once.
pub async fn shared_project_changes_are_seen_through_the_other([a, b]: [SharedStore; 2]) {
    let (app, _) = create_app(&a).await;
    let orders = app.project_id.clone();
    let reader = sample_project_role(&orders, "reader", "Reader", None, 0);
    a.add_project_role(&reader).await.expect("add role");
    assert_eq!(b.project_roles(&orders).await.expect("list"), std::slice::from_ref(&reader));
    let taken = b.add_project_role(&reader).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "added through the other: {taken:?}");
    let renamed = name("Renamed");
    let updated =
        b.update_project_role(&orders, &reader.key, &renamed, None, at(5)).await.expect("update");
    assert_eq!(a.project_roles(&orders).await.expect("list"), [updated]);
    let (user, _) = create(&b, "shared-holder").await;
    assert!(a.add_grant(&grant(&user, &orders, "reader")).await.expect("grant"));
    assert!(b.remove_project_role(&orders, &reader.key).await.expect("remove"));
    assert!(a.grants_of_user(&user.id).await.expect("list").is_empty(), "its grants, too");
    assert!(!a.remove_project_role(&orders, &reader.key).await.expect("remove again"));

    let billing = sample_project("billing");
    b.create_project(&billing).await.expect("create project");
    let filled = fill_project(&a, &billing, "billing").await;
    b.delete_project(&billing.id).await.expect("delete");
    assert_emptied(&a, &billing.id, &filled, "deleted through the other").await;
    let again = a.delete_project(&billing.id).await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "deleted through the other: {again:?}");
    let late = a.add_project_role(&filled.roles[0]).await;
    assert!(matches!(late, Err(StoreError::NotFound(_))), "deleted through the other: {late:?}");
}

/// API apps, keys, roles, grants and project owners added through one store while
/// the other deletes their project do not outlive it.
pub async fn shared_project_additions_racing_its_delete_do_not_outlive_it(
    [a, b]: [SharedStore; 2],
) {
    additions_racing_a_project_delete(&[a, b]).await;
}

/// An API app, a client key of an existing app, a role, a grant and a project
/// owner added through `adder` while `deleter` deletes their project: each
/// addition succeeds or finds the project (or the app) gone, and none outlives it.
async fn additions_racing_a_project_delete([adder, deleter]: &[SharedStore; 2]) {
    let (user, _) = create(adder, "racing-holder").await;
    for i in 0..10 {
        let project = sample_project(&format!("doomed-{i}"));
        adder.create_project(&project).await.expect("create project");
        let (existing, _) = sample_app(&project, &format!("doomed-{i}-api"));
        adder.create_api_app(&existing).await.expect("create app");
        let (late_app, _) = sample_app(&project, &format!("doomed-{i}-late-api"));
        let key_id = format!("doomed-{i}-key");
        let key = sample_client_key(KeyOwner::ApiApp(existing.client_id.clone()), &key_id, 0);
        let new_role = sample_project_role(&project.id, "reader", "Reader", None, 0);
        let granted = grant(&user, &project.id, "reader");
        let owner = Administrator::new(
            user.id.clone(),
            AdminRole::ProjectOwner,
            Some(project.id.clone()),
            t0(),
        );
        let (app_added, key_added, role_added, grant_added, owner_added, deleted) = tokio::join!(
            adder.create_api_app(&late_app),
            adder.add_client_key(&key),
            adder.add_project_role(&new_role),
            adder.add_grant(&granted),
            adder.add_administrator(&owner),
            deleter.delete_project(&project.id),
        );
        deleted.expect("delete project");
        for added in [app_added, key_added, role_added] {
            assert!(matches!(added, Ok(()) | Err(StoreError::NotFound(_))), "{i}: {added:?}");
        }
        for added in [grant_added, owner_added] {
            assert!(matches!(added, Ok(true) | Err(StoreError::NotFound(_))), "{i}: {added:?}");
        }
        for store in [adder, deleter] {
            let what = format!("{i}: racing the delete");
            assert_eq!(store.project_by_id(&project.id).await.expect("lookup"), None, "{what}");
            for client_id in [&existing.client_id, &late_app.client_id] {
                let app = store.api_app_by_client_id(client_id).await.expect("lookup");
                assert_eq!(app, None, "{what}: an app outlived its project");
            }
            let key = store.client_key(&key_id).await.expect("lookup");
            assert_eq!(key, None, "{what}: a key outlived its app's project");
            let roles = store.project_roles(&project.id).await.expect("list");
            assert!(roles.is_empty(), "{what}: a role outlived its project");
            let grants = store.grants_of_user(&user.id).await.expect("list");
            assert!(grants.is_empty(), "{what}: a grant outlived its project: {grants:?}");
            let admins = store.administrator_roles_of(&user.id).await.expect("list");
            assert!(admins.is_empty(), "{what}: a project owner outlived it: {admins:?}");
        }
    }
}
