//! Administration of projects, API apps and role grants ([`ProjectAdmin`]).
//!
//! API app client IDs share one namespace with service-user usernames. Creating
//! either runs in a transaction that first takes the namespace advisory lock and
//! then checks the other table, so no two instances can claim the same name at once.
//! Under the same lock, creating an API app checks that no other app has its app id
//! (a unique constraint holds that too).
//! A patch of an API app reads its row `FOR UPDATE`, applies it and writes it back.
//! Deleting an API app deletes its client keys in the same transaction.
//!
//! Adding a project role reads its project `FOR KEY SHARE` before the insert, as
//! adding an API app, a grant or a project owner does; removing a role deletes its
//! grants in the transaction that deletes it. Deleting a project first locks its row
//! `FOR UPDATE`: that waits for every such addition holding the row to commit, and
//! makes every later one wait for the delete and then find no project. It then
//! deletes, in later statements of the same transaction (each of which sees what
//! those additions committed), the API apps with their client keys, the grants, the
//! roles and the administrator roles held on the project, and the project last.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use std::sync::LazyLock;

use tessera_store::sql::rows::{
    AdministratorRow, ApiAppRow, ClientKeyRow, GrantRow, ProjectRoleRow, ProjectRow, corrupt, unix,
};
use tessera_store::{
    ApiApp, ApiAppPatch, ClientId, DisplayName, KeyOwner, Project, ProjectAdmin, ProjectId,
    ProjectRole, RoleGrant, RoleKey, StoreError,
};
use time::OffsetDateTime;

use crate::client_keys::delete_keys_of;
use crate::error::{is_foreign_key_violation, map};
use crate::rows::{app_values, insert_sql, project_role_values};
use crate::{NAMESPACE_LOCK, PostgresStore, USER, exec, lock, query, query_bool, query_opt, rows};

const PROJECT: &str = ProjectRow::WHAT;
/// What a failure on `project_roles` is about.
const PROJECT_ROLE: &str = ProjectRoleRow::WHAT;
/// What a failure on `api_apps` is about.
pub(crate) const API_APP: &str = ApiAppRow::WHAT;
const CLIENT_ID: &str = "client ID";
const APP_ID: &str = "app id";
const GRANT: &str = GrantRow::WHAT;

/// `INSERT INTO api_apps ...`, made once.
static INSERT_APP: LazyLock<String> =
    LazyLock::new(|| insert_sql("api_apps", ApiAppRow::COLUMNS, 10));

/// Whether an API app has the client ID `name`.
pub(crate) async fn client_id_is_app<C: GenericClient>(
    client: &C,
    name: &str,
) -> Result<bool, StoreError> {
    query_bool(
        client,
        "SELECT EXISTS (SELECT 1 FROM api_apps WHERE client_id = $1)",
        &[&name],
        API_APP,
    )
    .await
}

/// Whether a service user has the username `name`.
async fn name_is_user<C: GenericClient>(client: &C, name: &str) -> Result<bool, StoreError> {
    query_bool(
        client,
        "SELECT EXISTS (SELECT 1 FROM service_users WHERE username = $1)",
        &[&name],
        USER,
    )
    .await
}

/// Whether an API app has the app id `app_id`.
async fn app_id_is_taken<C: GenericClient>(client: &C, app_id: &str) -> Result<bool, StoreError> {
    query_bool(
        client,
        "SELECT EXISTS (SELECT 1 FROM api_apps WHERE app_id = $1)",
        &[&app_id],
        API_APP,
    )
    .await
}

/// Whether the row that `sql` selects exists; `sql` locks it `FOR KEY SHARE`, so it
/// cannot be deleted (or its key changed) before the transaction ends.
async fn exists_locked<C: GenericClient>(
    client: &C,
    sql: &str,
    id: &str,
    what: &'static str,
) -> Result<bool, StoreError> {
    Ok(query_opt(client, sql, &[&id]).await.map_err(|e| map(e, what))?.is_some())
}

async fn project_exists<C: GenericClient>(client: &C, id: &str) -> Result<bool, StoreError> {
    exists_locked(client, "SELECT 1 FROM projects WHERE id = $1 FOR KEY SHARE", id, PROJECT).await
}

/// Whether a service user has the id `id`, locking its row `FOR KEY SHARE`.
pub(crate) async fn user_exists<C: GenericClient>(
    client: &C,
    id: &str,
) -> Result<bool, StoreError> {
    exists_locked(client, "SELECT 1 FROM service_users WHERE id = $1 FOR KEY SHARE", id, USER).await
}

/// Whether an API app has the client ID `client_id`, locking its row `FOR KEY SHARE`.
pub(crate) async fn app_exists<C: GenericClient>(
    client: &C,
    client_id: &str,
) -> Result<bool, StoreError> {
    exists_locked(
        client,
        "SELECT 1 FROM api_apps WHERE client_id = $1 FOR KEY SHARE",
        client_id,
        API_APP,
    )
    .await
}

async fn app_where<C: GenericClient>(
    client: &C,
    condition: &str,
    client_id: &str,
) -> Result<Option<ApiApp>, StoreError> {
    let sql = format!("SELECT {} FROM api_apps WHERE {condition}", ApiAppRow::COLUMNS);
    query_opt(client, &sql, &[&client_id])
        .await
        .map_err(|e| map(e, API_APP))?
        .map(|row| rows::app(&row))
        .transpose()
}

#[async_trait]
impl ProjectAdmin for PostgresStore {
    async fn create_project(&self, project: &Project) -> Result<(), StoreError> {
        let row = ProjectRow::of(project);
        exec(
            &self.client().await?,
            &insert_sql("projects", ProjectRow::COLUMNS, 3),
            &[&row.id, &row.name, &row.created_at],
        )
        .await
        .map_err(|e| map(e, PROJECT))?;
        Ok(())
    }

    async fn rename_project(&self, id: &ProjectId, name: &DisplayName) -> Result<(), StoreError> {
        let changed = exec(
            &self.client().await?,
            "UPDATE projects SET name = $2 WHERE id = $1",
            &[&id.as_str(), &name.as_str()],
        )
        .await
        .map_err(|e| map(e, PROJECT))?;
        if changed == 0 { Err(StoreError::NotFound(PROJECT)) } else { Ok(()) }
    }

    async fn list_projects(&self) -> Result<Vec<Project>, StoreError> {
        let sql = format!("SELECT {} FROM projects ORDER BY id", ProjectRow::COLUMNS);
        let rows = query(&self.client().await?, &sql, &[]).await.map_err(|e| map(e, PROJECT))?;
        rows::all(&rows, rows::project)
    }

    async fn create_api_app(&self, app: &ApiApp) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| map(e, API_APP))?;
        lock(&tx, NAMESPACE_LOCK, API_APP).await?;
        if !project_exists(&tx, app.project_id.as_str()).await? {
            return Err(StoreError::NotFound(PROJECT));
        }
        if name_is_user(&tx, app.client_id.as_str()).await? {
            return Err(StoreError::Conflict(CLIENT_ID));
        }
        if app_id_is_taken(&tx, app.app_id.as_str()).await? {
            return Err(StoreError::Conflict(APP_ID));
        }
        let row = ApiAppRow::of(app);
        exec(&tx, &INSERT_APP, &app_values(&row)).await.map_err(|e| {
            if is_foreign_key_violation(&e) {
                StoreError::NotFound(PROJECT)
            } else {
                map(e, CLIENT_ID)
            }
        })?;
        tx.commit().await.map_err(|e| map(e, API_APP))
    }

    async fn list_api_apps(&self) -> Result<Vec<ApiApp>, StoreError> {
        let sql = format!("SELECT {} FROM api_apps ORDER BY client_id", ApiAppRow::COLUMNS);
        let rows = query(&self.client().await?, &sql, &[]).await.map_err(|e| map(e, API_APP))?;
        rows::all(&rows, rows::app)
    }

    async fn update_api_app(
        &self,
        client_id: &ClientId,
        patch: &ApiAppPatch,
    ) -> Result<ApiApp, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| map(e, API_APP))?;
        let mut app = app_where(&tx, "client_id = $1 FOR UPDATE", client_id.as_str())
            .await?
            .ok_or(StoreError::NotFound(API_APP))?;
        app.apply(patch);
        let row = ApiAppRow::of(&app);
        exec(
            &tx,
            "UPDATE api_apps SET name = $2, secret_digest = $3, enabled = $4, updated_at = $5, \
             previous_secret_digest = $6, previous_secret_expires_at = $7 \
             WHERE client_id = $1",
            &[
                &row.client_id,
                &row.name,
                &row.secret_digest,
                &row.enabled,
                &row.updated_at,
                &row.previous_secret_digest,
                &row.previous_secret_expires_at,
            ],
        )
        .await
        .map_err(|e| map(e, API_APP))?;
        tx.commit().await.map_err(|e| map(e, API_APP))?;
        Ok(app)
    }

    async fn delete_api_app(&self, client_id: &ClientId) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| map(e, API_APP))?;
        // The app first: this waits for a client key being added for it to commit
        // (it holds the row FOR KEY SHARE), so that the next statement deletes that
        // key too.
        let deleted =
            exec(&tx, "DELETE FROM api_apps WHERE client_id = $1", &[&client_id.as_str()])
                .await
                .map_err(|e| map(e, API_APP))?;
        if deleted == 0 {
            // Dropping the transaction rolls it back (nothing was deleted anyway).
            return Err(StoreError::NotFound(API_APP));
        }
        delete_keys_of(&tx, &KeyOwner::ApiApp(client_id.clone()).to_key()).await?;
        tx.commit().await.map_err(|e| map(e, API_APP))
    }

    async fn add_grant(&self, grant: &RoleGrant) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        // The foreign keys would refuse a missing user or project too, but without
        // saying which; check both first, in the same transaction, locking the rows
        // found so that neither can go away before the insert commits.
        let tx = client.transaction().await.map_err(|e| map(e, GRANT))?;
        if !user_exists(&tx, grant.user_id.as_str()).await? {
            return Err(StoreError::NotFound(USER));
        }
        if !project_exists(&tx, grant.project_id.as_str()).await? {
            return Err(StoreError::NotFound(PROJECT));
        }
        let sql = format!(
            "INSERT INTO role_grants ({}) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            GrantRow::COLUMNS
        );
        let row = GrantRow::of(grant);
        let inserted = exec(&tx, &sql, &[&row.user_id, &row.project_id, &row.role])
            .await
            .map_err(|e| map(e, GRANT))?;
        tx.commit().await.map_err(|e| map(e, GRANT))?;
        Ok(inserted > 0)
    }

    async fn remove_grant(&self, grant: &RoleGrant) -> Result<bool, StoreError> {
        let deleted = exec(
            &self.client().await?,
            "DELETE FROM role_grants WHERE user_id = $1 AND project_id = $2 AND role = $3",
            &[&grant.user_id.as_str(), &grant.project_id.as_str(), &grant.role.as_str()],
        )
        .await
        .map_err(|e| map(e, GRANT))?;
        Ok(deleted > 0)
    }

    async fn add_project_role(&self, role: &ProjectRole) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        // The foreign key would refuse a missing project too, but without saying so;
        // check it first, locking the row so that it cannot go away before the insert
        // commits.
        let tx = client.transaction().await.map_err(|e| map(e, PROJECT_ROLE))?;
        if !project_exists(&tx, role.project_id.as_str()).await? {
            return Err(StoreError::NotFound(PROJECT));
        }
        let row = ProjectRoleRow::of(role);
        exec(
            &tx,
            &insert_sql("project_roles", ProjectRoleRow::COLUMNS, 6),
            &project_role_values(&row),
        )
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                StoreError::NotFound(PROJECT)
            } else {
                map(e, PROJECT_ROLE)
            }
        })?;
        tx.commit().await.map_err(|e| map(e, PROJECT_ROLE))
    }

    async fn update_project_role(
        &self,
        project: &ProjectId,
        key: &RoleKey,
        display_name: &DisplayName,
        group: Option<&DisplayName>,
        now: OffsetDateTime,
    ) -> Result<ProjectRole, StoreError> {
        let sql = format!(
            "UPDATE project_roles SET display_name = $3, group_name = $4, updated_at = $5 \
             WHERE project_id = $1 AND key = $2 RETURNING {}",
            ProjectRoleRow::COLUMNS
        );
        let group = group.map(DisplayName::as_str);
        query_opt(
            &self.client().await?,
            &sql,
            &[&project.as_str(), &key.as_str(), &display_name.as_str(), &group, &unix(now)],
        )
        .await
        .map_err(|e| map(e, PROJECT_ROLE))?
        .map(|row| rows::project_role(&row))
        .transpose()?
        .ok_or(StoreError::NotFound(PROJECT_ROLE))
    }

    async fn remove_project_role(
        &self,
        project: &ProjectId,
        key: &RoleKey,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| map(e, PROJECT_ROLE))?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
            [&project.as_str(), &key.as_str()];
        let deleted =
            exec(&tx, "DELETE FROM project_roles WHERE project_id = $1 AND key = $2", &params)
                .await
                .map_err(|e| map(e, PROJECT_ROLE))?;
        if deleted == 0 {
            // Dropping the transaction rolls it back (nothing was deleted anyway).
            return Ok(false);
        }
        exec(&tx, "DELETE FROM role_grants WHERE project_id = $1 AND role = $2", &params)
            .await
            .map_err(|e| map(e, GRANT))?;
        tx.commit().await.map_err(|e| map(e, PROJECT_ROLE))?;
        Ok(true)
    }

    async fn project_roles(&self, project: &ProjectId) -> Result<Vec<ProjectRole>, StoreError> {
        // `key` has the "C" collation: keys in byte order.
        let sql = format!(
            "SELECT {} FROM project_roles WHERE project_id = $1 ORDER BY key",
            ProjectRoleRow::COLUMNS
        );
        let rows = query(&self.client().await?, &sql, &[&project.as_str()])
            .await
            .map_err(|e| map(e, PROJECT_ROLE))?;
        rows::all(&rows, rows::project_role)
    }

    async fn delete_project(&self, id: &ProjectId) -> Result<(), StoreError> {
        if id.is_reserved() {
            return Err(StoreError::Conflict("reserved project"));
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| map(e, PROJECT))?;
        // FOR UPDATE waits for the additions holding the row FOR KEY SHARE (an app,
        // a grant, a role, a project owner being added) to commit, and holds off new
        // ones until this transaction ends; they then find no project.
        let found =
            query_opt(&tx, "SELECT 1 FROM projects WHERE id = $1 FOR UPDATE", &[&id.as_str()])
                .await
                .map_err(|e| map(e, PROJECT))?;
        if found.is_none() {
            return Err(StoreError::NotFound(PROJECT));
        }
        // The apps first: this waits for a client key being added for one of them to
        // commit (it holds the app's row FOR KEY SHARE), so that the next statement
        // deletes that key too. The owner of an app's keys is `KeyOwner::to_key`'s
        // form, `app:{client_id}`.
        let owners: Vec<String> = query(
            &tx,
            "DELETE FROM api_apps WHERE project_id = $1 RETURNING 'app:' || client_id",
            &[&id.as_str()],
        )
        .await
        .map_err(|e| map(e, API_APP))?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(|e| corrupt("API app client ID", e))?;
        if !owners.is_empty() {
            exec(&tx, "DELETE FROM client_keys WHERE owner = ANY($1)", &[&owners])
                .await
                .map_err(|e| map(e, ClientKeyRow::WHAT))?;
        }
        for (sql, what) in [
            ("DELETE FROM role_grants WHERE project_id = $1", GRANT),
            ("DELETE FROM project_roles WHERE project_id = $1", PROJECT_ROLE),
            ("DELETE FROM administrators WHERE project_id = $1", AdministratorRow::WHAT),
            ("DELETE FROM projects WHERE id = $1", PROJECT),
        ] {
            exec(&tx, sql, &[&id.as_str()]).await.map_err(|e| map(e, what))?;
        }
        tx.commit().await.map_err(|e| map(e, PROJECT))
    }
}
