//! Projects, API apps, grants, the organization and revocation, on the in-memory
//! store and on SQLite.

mod common;

use common::{TestResult, World, on_each_backend, start};
use tessera_admin::{
    AdminError, ApiAppUpdate, Grace, NewApiApp, NewProject, NewServiceUser, OrganizationUpdate,
    ServiceUserUpdate,
};
use tessera_store::{ClientId, Clock, DisplayName, Domain, ProjectId, RoleKey, Username};
use time::Duration;

fn project(id: &str, name: &str) -> Result<NewProject, tessera_store::IdError> {
    Ok(NewProject { id: Some(ProjectId::new(id)?), name: DisplayName::new(name)? })
}

fn app(project: &str, client_id: Option<&str>) -> Result<NewApiApp, tessera_store::IdError> {
    Ok(NewApiApp {
        project: ProjectId::new(project)?,
        name: DisplayName::new("Orders API")?,
        client_id: client_id.map(ClientId::new).transpose()?,
    })
}

#[tokio::test]
async fn projects_have_unique_ids_and_zitadel_is_reserved() -> TestResult {
    on_each_backend(|World { admin, store, .. }| async move {
        let created = admin.create_project(project("orders", "Orders")?).await?;
        assert_eq!((created.id.as_str(), created.created_at), ("orders", start()));
        assert_eq!(store.project_by_id(&created.id).await?, Some(created.clone()));
        let generated = admin
            .create_project(NewProject { id: None, name: DisplayName::new("Billing")? })
            .await?;
        assert!(generated.id.as_str().len() == 18, "{}", generated.id);

        for id in ["orders", "zitadel"] {
            let err = admin.create_project(project(id, "Again")?).await.err().ok_or("dup")?;
            assert_eq!(err.to_string(), format!("project {id} already exists"));
            assert!(matches!(err, AdminError::AlreadyExists { what: "project", .. }));
        }
        assert_eq!(admin.project(&created.id).await?.name.as_str(), "Orders", "unchanged");
        let ids: Vec<String> = admin.projects().await?.iter().map(|p| p.id.to_string()).collect();
        assert!(ids.contains(&"zitadel".to_owned()) && ids.contains(&"orders".to_owned()));
        assert_eq!(ids.len(), 3);

        admin.rename_project(&created.id, &DisplayName::new("Orders v2")?).await?;
        assert_eq!(admin.project(&created.id).await?.name.as_str(), "Orders v2");
        let ghost = ProjectId::new("ghost")?;
        let err = admin.project(&ghost).await.err().ok_or("missing")?;
        assert_eq!(err.to_string(), "project ghost not found");
        let err = admin.rename_project(&ghost, &DisplayName::new("x")?).await.err().ok_or("x")?;
        assert!(matches!(err, AdminError::NotFound { what: "project", .. }));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn api_apps_are_created_rotated_changed_and_deleted() -> TestResult {
    on_each_backend(|World { admin, store, clock, .. }| async move {
        let err = admin.create_api_app(app("orders", None)?).await.err().ok_or("no project")?;
        assert_eq!(err.to_string(), "project orders not found");
        admin.create_project(project("orders", "Orders")?).await?;
        let (created, first) = admin.create_api_app(app("orders", None)?).await?;
        assert!(created.client_id.as_str().ends_with("@orders"), "{}", created.client_id);
        let stored = store.api_app_by_client_id(&created.client_id).await?.ok_or("stored")?;
        assert_eq!(stored, created);
        assert!(stored.credentials.matches(first.expose(), clock.now()));

        let (named, named_first) = admin.create_api_app(app("orders", Some("orders-api"))?).await?;
        let id = named.client_id.clone();
        let err = admin.create_api_app(app("orders", Some("orders-api"))?).await.err().ok_or("x")?;
        assert!(matches!(&err, AdminError::AlreadyExists { what: "client ID", id } if id == "orders-api"));
        admin.create_service_user(NewServiceUser::new(Username::new("a-user")?)).await?;
        let err = admin.create_api_app(app("orders", Some("a-user"))?).await.err().ok_or("x")?;
        assert!(matches!(err, AdminError::AlreadyExists { what: "client ID", .. }), "{err:?}");
        assert_eq!(admin.api_apps().await?.len(), 2);

        let (rotated, second) = admin.regenerate_app_secret(&id, Some(Grace::from_secs(30)?)).await?;
        assert_eq!(rotated.credentials.previous.map(|p| p.expires_at), Some(start() + Duration::seconds(30)));
        let (_, third) = admin.regenerate_app_secret(&created.client_id, None).await?;
        let stored = store.api_app_by_client_id(&created.client_id).await?.ok_or("stored")?;
        assert!(!stored.credentials.matches(first.expose(), clock.now()), "no grace: stops at once");
        assert!(stored.credentials.matches(third.expose(), clock.now()));
        clock.advance(Duration::seconds(29));
        let during = admin.api_app(&id).await?;
        assert!(during.credentials.matches(named_first.expose(), clock.now()), "kept for 30 s");
        assert!(during.credentials.matches(second.expose(), clock.now()));
        clock.advance(Duration::seconds(1));
        let after = admin.api_app(&id).await?;
        assert!(!after.credentials.matches(named_first.expose(), clock.now()), "stops at its expiry");
        assert!(after.credentials.matches(second.expose(), clock.now()));

        let update = ApiAppUpdate { enabled: Some(false), name: Some(DisplayName::new("Old")?) };
        let changed = admin.update_api_app(&id, update).await?;
        assert!(!changed.enabled);
        assert_eq!(store.api_app_by_client_id(&id).await?, Some(changed));

        admin.delete_api_app(&id).await?;
        assert_eq!(store.api_app_by_client_id(&id).await?, None);
        let not_found = |e: AdminError| e.to_string() == "API app orders-api not found";
        assert!(admin.delete_api_app(&id).await.is_err_and(not_found));
        assert!(admin.regenerate_app_secret(&id, None).await.is_err_and(not_found));
        assert!(admin.api_app(&id).await.is_err_and(not_found));
        assert!(admin.update_api_app(&id, ApiAppUpdate::default()).await.is_err_and(not_found));
        assert!(admin.revoke_all_tokens_of_app(&id).await.is_err_and(not_found));
        // API apps are issued no tokens: nothing to revoke, and nothing changes.
        let before = admin.api_app(&created.client_id).await?;
        admin.revoke_all_tokens_of_app(&created.client_id).await?;
        assert_eq!(admin.api_app(&created.client_id).await?, before);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn grants_are_added_once_listed_and_removed() -> TestResult {
    on_each_backend(|World { admin, store, .. }| async move {
        let (user, _) =
            admin.create_service_user(NewServiceUser::new(Username::new("granted")?)).await?;
        admin.create_project(project("orders", "Orders")?).await?;
        let (name, orders, reader) =
            (Username::new("granted")?, ProjectId::new("orders")?, RoleKey::new("reader")?);
        assert!(admin.add_grant(&name, &orders, &reader).await?, "new");
        assert!(!admin.add_grant(&name, &orders, &reader).await?, "granted already");
        let grants = admin.grants_of(&name).await?;
        assert_eq!(grants.len(), 1);
        assert_eq!((&grants[0].user_id, &grants[0].project_id), (&user.id, &orders));
        assert_eq!(store.grants_of_user(&user.id).await?, grants);

        let ghost = ProjectId::new("ghost")?;
        let err = admin.add_grant(&name, &ghost, &reader).await.err().ok_or("no project")?;
        assert_eq!(err.to_string(), "project ghost not found");
        let nobody = Username::new("nobody")?;
        let err = admin.add_grant(&nobody, &orders, &reader).await.err().ok_or("no user")?;
        assert_eq!(err.to_string(), "service user nobody not found");

        assert!(admin.remove_grant(&name, &orders, &reader).await?, "it was granted");
        assert!(!admin.remove_grant(&name, &orders, &reader).await?, "not any more");
        assert!(admin.grants_of(&name).await?.is_empty());
        assert!(store.grants_of_user(&user.id).await?.is_empty());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_organization_is_created_once_and_updated_in_place() -> TestResult {
    let logs = common::logs();
    on_each_backend(|World { admin, store, .. }| async move {
        assert_eq!(admin.organization().await?, None);
        let update = OrganizationUpdate {
            primary_domain: Some(Domain::new("acme.test")?),
            ..OrganizationUpdate::default()
        };
        let created = admin.update_organization(update).await?;
        assert_eq!(
            (created.name.as_str(), created.primary_domain.as_str()),
            ("Tessera", "acme.test")
        );
        assert_eq!(created.created_at, start());
        let init = admin
            .init_organization(DisplayName::new("Ignored")?, Domain::new("ignored.test")?)
            .await?;
        assert_eq!(init, created, "an existing organization is kept");
        let renamed = admin
            .update_organization(OrganizationUpdate {
                name: Some(DisplayName::new("Acme")?),
                ..OrganizationUpdate::default()
            })
            .await?;
        assert_eq!(renamed.id, created.id, "the id never changes");
        assert_eq!((renamed.name.as_str(), renamed.primary_domain.as_str()), ("Acme", "acme.test"));
        assert_eq!(store.organization().await?, Some(renamed));
        Ok(())
    })
    .await?;
    let text = logs.text();
    assert_eq!(text.lines().filter(|l| l.contains("organization_updated")).count(), 4, "{text}");
    Ok(())
}

#[tokio::test]
async fn a_new_store_gets_the_organization_it_is_started_with() -> TestResult {
    on_each_backend(|World { admin, .. }| async move {
        let org = admin
            .init_organization(DisplayName::new("Acme")?, Domain::new("acme.example.com")?)
            .await?;
        assert_eq!(org.id.as_str().len(), 18);
        assert_eq!(admin.organization().await?, Some(org));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn revoking_every_token_of_a_user_sets_its_cut_off() -> TestResult {
    on_each_backend(|World { admin, clock, .. }| async move {
        let name = Username::new("holder")?;
        admin.create_service_user(NewServiceUser::new(name.clone())).await?;
        assert_eq!(admin.service_user(&name).await?.tokens_revoked_before, None);
        // Half a second into a second: every token issued until the next one is revoked.
        clock.advance(Duration::milliseconds(500));
        let user = admin.revoke_all_tokens_of_user(&name).await?;
        let cutoff = tessera_store::whole_seconds(start()) + Duration::SECOND;
        assert_eq!(user.tokens_revoked_before, Some(cutoff));
        assert_eq!(admin.service_user(&name).await?.tokens_revoked_before, Some(cutoff));
        assert!(user.enabled, "the user itself is untouched");
        // Later, again: the cut-off moves on.
        clock.advance(Duration::seconds(10));
        let user = admin.revoke_all_tokens_of_user(&name).await?;
        assert_eq!(user.tokens_revoked_before, Some(cutoff + Duration::seconds(10)));
        // With a secret regeneration or a disabling, in the same change.
        clock.advance(Duration::seconds(10));
        let (user, _) = admin.regenerate_user_secret_revoking_tokens(&name, None).await?;
        assert_eq!(user.tokens_revoked_before, Some(cutoff + Duration::seconds(20)));
        let update = ServiceUserUpdate {
            enabled: Some(false),
            revoke_tokens: true,
            ..ServiceUserUpdate::default()
        };
        clock.advance(Duration::seconds(10));
        let user = admin.update_service_user(&name, update).await?;
        assert!(!user.enabled);
        assert_eq!(user.tokens_revoked_before, Some(cutoff + Duration::seconds(30)));
        // Unknown users and apps are not found; an app holds no tokens.
        let ghost = Username::new("ghost")?;
        let err = admin.revoke_all_tokens_of_user(&ghost).await.err().ok_or("found")?;
        assert!(matches!(err, AdminError::NotFound { .. }), "{err:?}");
        Ok(())
    })
    .await
}
