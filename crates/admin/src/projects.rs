//! Projects, their API apps, and the roles granted to service users.

use tessera_store::{
    ApiApp, ApiAppPatch, AppId, ClientId, ClientSecret, Credentials, DisplayName, Project,
    ProjectId, ProjectRole, RoleGrant, RoleKey, SecretDigest, StoreError, Username,
};

use crate::{Admin, AdminError, Grace};

/// What a new project is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProject {
    /// Its id; a generated one (18 digits) when `None`.
    pub id: Option<ProjectId>,
    /// Its human-readable name.
    pub name: DisplayName,
}

/// What a new API app is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiApp {
    /// The project it belongs to: tokens whose audience names it are active for it.
    pub project: ProjectId,
    /// Its human-readable name.
    pub name: DisplayName,
    /// Its client ID; a generated one (`{18 digits}@{project}`) when `None`.
    pub client_id: Option<ClientId>,
}

/// A change to an API app; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiAppUpdate {
    /// New human-readable name.
    pub name: Option<DisplayName>,
    /// Enable (`true`) or disable (`false`): a disabled app cannot authenticate.
    pub enabled: Option<bool>,
}

/// Projects, API apps and grants.
impl Admin {
    /// Creates a project; [`AdminError::AlreadyExists`] when its id is taken (`zitadel`,
    /// the server's own API, always is).
    pub async fn create_project(&self, new: NewProject) -> Result<Project, AdminError> {
        let id = match new.id {
            Some(id) => id,
            None => ProjectId::generate()?,
        };
        let project = Project::new(id, new.name, self.now());
        self.store
            .create_project(&project)
            .await
            .map_err(AdminError::exists("project", &project.id))?;
        Ok(project)
    }

    /// Renames a project.
    pub async fn rename_project(
        &self,
        id: &ProjectId,
        name: &DisplayName,
    ) -> Result<(), AdminError> {
        self.store.rename_project(id, name).await.map_err(AdminError::not_found("project", id))
    }

    /// The project with id `id`; [`AdminError::NotFound`] when there is none.
    pub async fn project(&self, id: &ProjectId) -> Result<Project, AdminError> {
        self.store
            .project_by_id(id)
            .await?
            .ok_or_else(|| AdminError::NotFound { what: "project", id: id.to_string() })
    }

    /// Every project, ordered by id (the reserved `zitadel` among them).
    pub async fn projects(&self) -> Result<Vec<Project>, AdminError> {
        Ok(self.store.list_projects().await?)
    }

    /// Deletes a project with its API apps and their client keys, its roles, the
    /// grants of its roles and the administrator roles held on it, in one atomic
    /// change. Tokens issued with the project in their audience stay valid until they
    /// expire or are revoked; new tokens name it no more. Logs the audit event
    /// `project_deleted`.
    ///
    /// [`AdminError::NotFound`] when it does not exist; [`AdminError::Invalid`] (of
    /// `project`) for the reserved project `zitadel`, the server's own API, which is
    /// never deleted.
    pub async fn delete_project(&self, id: &ProjectId) -> Result<(), AdminError> {
        if id.is_reserved() {
            return Err(reserved_project());
        }
        self.store.delete_project(id).await.map_err(|e| match e {
            StoreError::NotFound(_) => AdminError::NotFound { what: "project", id: id.to_string() },
            StoreError::Conflict("reserved project") => reserved_project(),
            other => other.into(),
        })?;
        tracing::info!(target: "tessera::audit", event = "project_deleted", project_id = %id);
        Ok(())
    }

    /// Defines the role `key` in `project` and returns it as stored. Logs the audit
    /// event `project_role_added`.
    ///
    /// [`AdminError::NotFound`] when the project does not exist;
    /// [`AdminError::AlreadyExists`] when it has a role of this key.
    pub async fn add_project_role(
        &self,
        project: &ProjectId,
        key: RoleKey,
        display_name: DisplayName,
        group: Option<DisplayName>,
    ) -> Result<ProjectRole, AdminError> {
        let role = ProjectRole::new(project.clone(), key, display_name, group, self.now());
        self.store.add_project_role(&role).await.map_err(|e| match e {
            StoreError::NotFound(_) => {
                AdminError::NotFound { what: "project", id: project.to_string() }
            }
            StoreError::Conflict(_) => {
                AdminError::AlreadyExists { what: "project role", id: role_id(project, &role.key) }
            }
            other => other.into(),
        })?;
        tracing::info!(
            target: "tessera::audit",
            event = "project_role_added",
            project_id = %project,
            role = %role.key,
        );
        Ok(role)
    }

    /// Sets the display name and the group (`None`: none) of the role `key` of
    /// `project`, and returns it as stored afterwards. Logs the audit event
    /// `project_role_updated`.
    ///
    /// [`AdminError::NotFound`] when the project has no such role.
    pub async fn update_project_role(
        &self,
        project: &ProjectId,
        key: &RoleKey,
        display_name: DisplayName,
        group: Option<DisplayName>,
    ) -> Result<ProjectRole, AdminError> {
        let role = self
            .store
            .update_project_role(project, key, &display_name, group.as_ref(), self.now())
            .await
            .map_err(AdminError::not_found("project role", &role_id(project, key)))?;
        tracing::info!(
            target: "tessera::audit",
            event = "project_role_updated",
            project_id = %project,
            role = %key,
        );
        Ok(role)
    }

    /// Removes the role `key` of `project` with every grant of it in that project,
    /// in one atomic change; returns whether the role existed (when it did not,
    /// nothing changes). Logs the audit event `project_role_removed` when it did.
    pub async fn remove_project_role(
        &self,
        project: &ProjectId,
        key: &RoleKey,
    ) -> Result<bool, AdminError> {
        let removed = self.store.remove_project_role(project, key).await?;
        if removed {
            tracing::info!(
                target: "tessera::audit",
                event = "project_role_removed",
                project_id = %project,
                role = %key,
            );
        }
        Ok(removed)
    }

    /// The roles of `project`, ordered by key; [`AdminError::NotFound`] when the
    /// project does not exist.
    pub async fn project_roles(&self, project: &ProjectId) -> Result<Vec<ProjectRole>, AdminError> {
        self.project(project).await?;
        Ok(self.store.project_roles(project).await?)
    }

    /// Creates an API app of a project with a newly generated client secret, and
    /// returns both; the secret is shown only here.
    ///
    /// [`AdminError::NotFound`] when the project does not exist;
    /// [`AdminError::AlreadyExists`] (of a `client ID`) when an API app or a service
    /// user has the client ID.
    pub async fn create_api_app(
        &self,
        new: NewApiApp,
    ) -> Result<(ApiApp, ClientSecret), AdminError> {
        let secret = ClientSecret::generate()?;
        let app = self.create_app(new, Credentials::new(SecretDigest::of(&secret)?)).await?;
        Ok((app, secret))
    }

    /// Creates an API app without a client secret: it authenticates with its keys
    /// (`private_key_jwt`) only, until
    /// [`regenerate_app_secret`](Self::regenerate_app_secret) gives it one. Errors as
    /// [`create_api_app`](Self::create_api_app).
    pub async fn create_api_app_without_secret(
        &self,
        new: NewApiApp,
    ) -> Result<ApiApp, AdminError> {
        self.create_app(new, Credentials::NONE).await
    }

    async fn create_app(
        &self,
        new: NewApiApp,
        credentials: Credentials,
    ) -> Result<ApiApp, AdminError> {
        let now = self.now();
        let client_id = match new.client_id {
            Some(id) => id,
            None => ClientId::generate(&new.project)?,
        };
        let app = ApiApp {
            client_id,
            app_id: AppId::generate()?,
            project_id: new.project,
            name: new.name,
            credentials,
            enabled: true,
            created_at: now,
            updated_at: now,
        };
        self.store.create_api_app(&app).await.map_err(|e| match e {
            StoreError::NotFound(_) => {
                AdminError::NotFound { what: "project", id: app.project_id.to_string() }
            }
            StoreError::Conflict(_) => {
                AdminError::AlreadyExists { what: "client ID", id: app.client_id.to_string() }
            }
            other => other.into(),
        })?;
        Ok(app)
    }

    /// Generates a new client secret for the API app; as
    /// [`regenerate_user_secret`](Self::regenerate_user_secret) does for a service
    /// user, with the same grace period and the same audit event.
    pub async fn regenerate_app_secret(
        &self,
        client_id: &ClientId,
        grace: Option<Grace>,
    ) -> Result<(ApiApp, ClientSecret), AdminError> {
        let now = self.now();
        let secret = ClientSecret::generate()?;
        let mut patch = ApiAppPatch::at(now);
        patch.secret = Some(SecretDigest::of(&secret)?);
        patch.keep_previous_until = grace.map(|g| g.until(now));
        let app = self
            .store
            .update_api_app(client_id, &patch)
            .await
            .map_err(AdminError::not_found("API app", client_id))?;
        let previous = app.credentials.previous.filter(|_| grace.is_some());
        tracing::info!(
            target: "tessera::audit",
            event = "secret_regenerated",
            client_id = %app.client_id,
            previous_secret_expires_at = previous.map(|p| p.expires_at.unix_timestamp()),
        );
        Ok((app, secret))
    }

    /// Renames, enables or disables an API app; returns it as stored afterwards.
    pub async fn update_api_app(
        &self,
        client_id: &ClientId,
        update: ApiAppUpdate,
    ) -> Result<ApiApp, AdminError> {
        let mut patch = ApiAppPatch::at(self.now());
        patch.name = update.name;
        patch.enabled = update.enabled;
        self.store
            .update_api_app(client_id, &patch)
            .await
            .map_err(AdminError::not_found("API app", client_id))
    }

    /// The API app with this client ID; [`AdminError::NotFound`] when there is none.
    pub async fn api_app(&self, client_id: &ClientId) -> Result<ApiApp, AdminError> {
        self.store
            .api_app_by_client_id(client_id)
            .await?
            .ok_or_else(|| AdminError::NotFound { what: "API app", id: client_id.to_string() })
    }

    /// Every API app, ordered by client ID.
    pub async fn api_apps(&self) -> Result<Vec<ApiApp>, AdminError> {
        Ok(self.store.list_api_apps().await?)
    }

    /// Deletes an API app and its client keys.
    pub async fn delete_api_app(&self, client_id: &ClientId) -> Result<(), AdminError> {
        self.store
            .delete_api_app(client_id)
            .await
            .map_err(AdminError::not_found("API app", client_id))
    }

    /// Grants `role` of `project` to the service user; returns whether the grant is
    /// new (granting it again changes nothing). [`AdminError::NotFound`] when the user
    /// or the project does not exist.
    pub async fn add_grant(
        &self,
        username: &Username,
        project: &ProjectId,
        role: &RoleKey,
    ) -> Result<bool, AdminError> {
        let grant = self.grant(username, project, role).await?;
        self.store.add_grant(&grant).await.map_err(|e| match e {
            StoreError::NotFound("service user") => {
                AdminError::NotFound { what: "service user", id: username.to_string() }
            }
            StoreError::NotFound(_) => {
                AdminError::NotFound { what: "project", id: project.to_string() }
            }
            other => other.into(),
        })
    }

    /// Takes `role` of `project` back from the service user; returns whether it was
    /// granted. [`AdminError::NotFound`] when the user does not exist.
    pub async fn remove_grant(
        &self,
        username: &Username,
        project: &ProjectId,
        role: &RoleKey,
    ) -> Result<bool, AdminError> {
        let grant = self.grant(username, project, role).await?;
        Ok(self.store.remove_grant(&grant).await?)
    }

    /// The roles granted to the service user, ordered by project, then role.
    pub async fn grants_of(&self, username: &Username) -> Result<Vec<RoleGrant>, AdminError> {
        let user = self.service_user(username).await?;
        Ok(self.store.grants_of_user(&user.id).await?)
    }

    /// The grant of `role` of `project` to the user named `username`.
    async fn grant(
        &self,
        username: &Username,
        project: &ProjectId,
        role: &RoleKey,
    ) -> Result<RoleGrant, AdminError> {
        let user = self.service_user(username).await?;
        Ok(RoleGrant { user_id: user.id, project_id: project.clone(), role: role.clone() })
    }
}

/// The identifier of the role `key` of `project` in errors: `orders/reader`.
fn role_id(project: &ProjectId, key: &RoleKey) -> String {
    format!("{project}/{key}")
}

/// The refusal to delete the reserved project.
fn reserved_project() -> AdminError {
    AdminError::Invalid {
        field: "project",
        reason: format!("{} is the server's own API and cannot be deleted", ProjectId::RESERVED),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tessera_store::{AdminRole, MemoryStore, Store};

    use super::*;
    use crate::NewServiceUser;

    fn admin() -> Admin {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        Admin::new(store)
    }

    fn display(value: &str) -> DisplayName {
        DisplayName::new(value).expect("a valid name")
    }

    fn key(value: &str) -> RoleKey {
        RoleKey::new(value).expect("a valid role key")
    }

    #[tokio::test]
    async fn project_roles_are_added_updated_listed_and_removed()
    -> Result<(), Box<dyn std::error::Error>> {
        let admin = admin();
        let project = admin
            .create_project(NewProject { id: Some(ProjectId::new("orders")?), name: display("O") })
            .await?;
        let reader =
            admin.add_project_role(&project.id, key("reader"), display("Reader"), None).await?;
        assert_eq!(reader.created_at, tessera_store::whole_seconds(reader.created_at));
        let taken = admin.add_project_role(&project.id, key("reader"), display("R"), None).await;
        assert!(
            matches!(taken, Err(AdminError::AlreadyExists { what: "project role", ref id }) if id == "orders/reader"),
            "{taken:?}"
        );
        let ghost = ProjectId::new("ghost")?;
        let missing = admin.add_project_role(&ghost, key("reader"), display("R"), None).await;
        assert!(
            matches!(missing, Err(AdminError::NotFound { what: "project", .. })),
            "{missing:?}"
        );
        assert!(matches!(
            admin.project_roles(&ghost).await,
            Err(AdminError::NotFound { what: "project", .. })
        ));

        let updated = admin
            .update_project_role(&project.id, &key("reader"), display("Reads"), Some(display("G")))
            .await?;
        assert_eq!(updated.group, Some(display("G")));
        assert_eq!(admin.project_roles(&project.id).await?, [updated]);
        let missing =
            admin.update_project_role(&project.id, &key("writer"), display("W"), None).await;
        assert!(matches!(missing, Err(AdminError::NotFound { what: "project role", .. })));

        let (user, _) = admin.create_service_user(NewServiceUser::new(Username::new("u")?)).await?;
        assert!(admin.add_grant(&user.username, &project.id, &key("reader")).await?);
        assert!(admin.remove_project_role(&project.id, &key("reader")).await?);
        assert!(admin.grants_of(&user.username).await?.is_empty(), "its grants go with it");
        assert!(!admin.remove_project_role(&project.id, &key("reader")).await?);
        assert!(admin.project_roles(&project.id).await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn projects_are_deleted_but_the_reserved_one() -> Result<(), Box<dyn std::error::Error>> {
        let admin = admin();
        let reserved = admin.delete_project(&ProjectId::reserved()).await;
        assert!(matches!(reserved, Err(AdminError::Invalid { field: "project", .. })));
        let project = admin.create_project(NewProject { id: None, name: display("Gone") }).await?;
        let (app, _) = admin
            .create_api_app(NewApiApp {
                project: project.id.clone(),
                name: display("Gone API"),
                client_id: None,
            })
            .await?;
        let (user, _) = admin.create_service_user(NewServiceUser::new(Username::new("u")?)).await?;
        admin.add_project_role(&project.id, key("reader"), display("Reader"), None).await?;
        admin.add_grant(&user.username, &project.id, &key("reader")).await?;
        admin.add_administrator(&user.username, AdminRole::ProjectOwner, Some(&project.id)).await?;

        admin.delete_project(&project.id).await?;
        assert!(matches!(
            admin.project(&project.id).await,
            Err(AdminError::NotFound { what: "project", .. })
        ));
        assert!(matches!(
            admin.api_app(&app.client_id).await,
            Err(AdminError::NotFound { what: "API app", .. })
        ));
        assert!(admin.grants_of(&user.username).await?.is_empty());
        assert!(admin.administrator_roles(&user.id).await?.is_empty());
        let again = admin.delete_project(&project.id).await;
        assert!(matches!(again, Err(AdminError::NotFound { what: "project", .. })), "{again:?}");
        Ok(())
    }
}
