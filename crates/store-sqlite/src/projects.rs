//! Administration of projects, API apps and role grants ([`ProjectAdmin`]).
//!
//! API app client IDs share one namespace with service-user usernames. Creating
//! either runs in a `BEGIN IMMEDIATE` transaction that first checks the other
//! table, so no two connections (or processes) can claim the same name at once.
//! The same transaction checks that no other API app has the new app's app id (a
//! unique index holds that too). A patch is read, applied and written back in one
//! such transaction. Deleting an API app deletes its client keys in the same
//! transaction.
//!
//! Adding a project role checks its project in the `BEGIN IMMEDIATE` transaction of
//! the insert, as adding an API app or a grant does; removing a role deletes its
//! grants in the transaction that deletes it. Deleting a project deletes, in one
//! such transaction, the client keys of its API apps, its apps, grants, roles and
//! the administrator roles held on it, then the project: write transactions are
//! serialized across connections and processes, so nothing added for the project
//! by another one outlives it.

use std::sync::LazyLock;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tessera_store::sql::rows::{
    AdministratorRow, ApiAppRow, ClientKeyRow, GrantRow, ProjectRoleRow, ProjectRow, unix,
};
use tessera_store::{
    ApiApp, ApiAppPatch, ClientId, DisplayName, KeyOwner, Project, ProjectAdmin, ProjectId,
    ProjectRole, RoleGrant, RoleKey, StoreError,
};
use time::OffsetDateTime;

use crate::client_keys::delete_keys_of;
use crate::error::{is_foreign_key_violation, map};
use crate::issuing::app_by_client_id;
use crate::rows::{
    Apps, ProjectRoles, Projects, Table, app_values, insert_sql, project_role_values, select_all,
};
use crate::{SqliteStore, USER};

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

/// Whether `sql` (a `SELECT EXISTS ...` with one parameter) finds `value`.
fn exists(
    conn: &Connection,
    sql: &str,
    value: &str,
    what: &'static str,
) -> Result<bool, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row([value], |row| row.get(0)))
        .map_err(|e| map(e, what))
}

/// Whether an API app has the client ID `name`.
pub(crate) fn client_id_is_app(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    exists(conn, "SELECT EXISTS (SELECT 1 FROM api_apps WHERE client_id = ?1)", name, API_APP)
}

/// Whether a service user has the username `name`.
fn name_is_user(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    exists(conn, "SELECT EXISTS (SELECT 1 FROM service_users WHERE username = ?1)", name, USER)
}

/// Whether a service user has the id `id`.
pub(crate) fn user_exists(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    exists(conn, "SELECT EXISTS (SELECT 1 FROM service_users WHERE id = ?1)", id, USER)
}

/// Whether an API app has the app id `app_id`.
fn app_id_is_taken(conn: &Connection, app_id: &str) -> Result<bool, StoreError> {
    exists(conn, "SELECT EXISTS (SELECT 1 FROM api_apps WHERE app_id = ?1)", app_id, API_APP)
}

fn project_exists(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    exists(conn, "SELECT EXISTS (SELECT 1 FROM projects WHERE id = ?1)", id, PROJECT)
}

#[async_trait]
impl ProjectAdmin for SqliteStore {
    async fn create_project(&self, project: &Project) -> Result<(), StoreError> {
        let project = project.clone();
        self.write(move |conn| {
            let row = ProjectRow::of(&project);
            let sql = insert_sql("projects", ProjectRow::COLUMNS, 3);
            conn.prepare_cached(&sql)
                .and_then(|mut stmt| stmt.execute(params![row.id, row.name, row.created_at]))
                .map_err(|e| map(e, PROJECT))?;
            Ok(())
        })
        .await
    }

    async fn rename_project(&self, id: &ProjectId, name: &DisplayName) -> Result<(), StoreError> {
        let id = id.clone();
        let name = name.clone();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached("UPDATE projects SET name = ?2 WHERE id = ?1")
                .and_then(|mut stmt| stmt.execute([id.as_str(), name.as_str()]))
                .map_err(|e| map(e, PROJECT))?;
            if changed == 0 { Err(StoreError::NotFound(PROJECT)) } else { Ok(()) }
        })
        .await
    }

    async fn list_projects(&self) -> Result<Vec<Project>, StoreError> {
        self.read(|conn| select_all::<Projects>(conn, "FROM projects ORDER BY id", [])).await
    }

    async fn create_api_app(&self, app: &ApiApp) -> Result<(), StoreError> {
        let app = app.clone();
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, API_APP))?;
            if !project_exists(&tx, app.project_id.as_str())? {
                return Err(StoreError::NotFound(PROJECT));
            }
            if name_is_user(&tx, app.client_id.as_str())? {
                return Err(StoreError::Conflict(CLIENT_ID));
            }
            if app_id_is_taken(&tx, app.app_id.as_str())? {
                return Err(StoreError::Conflict(APP_ID));
            }
            let row = ApiAppRow::of(&app);
            tx.prepare_cached(&INSERT_APP)
                .and_then(|mut stmt| stmt.execute(&app_values(&row)[..]))
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        StoreError::NotFound(PROJECT)
                    } else {
                        map(e, CLIENT_ID)
                    }
                })?;
            tx.commit().map_err(|e| map(e, API_APP))
        })
        .await
    }

    async fn list_api_apps(&self) -> Result<Vec<ApiApp>, StoreError> {
        self.read(|conn| select_all::<Apps>(conn, "FROM api_apps ORDER BY client_id", [])).await
    }

    async fn update_api_app(
        &self,
        client_id: &ClientId,
        patch: &ApiAppPatch,
    ) -> Result<ApiApp, StoreError> {
        let client_id = client_id.clone();
        let patch = patch.clone();
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, API_APP))?;
            let mut app =
                app_by_client_id(&tx, client_id.as_str())?.ok_or(StoreError::NotFound(API_APP))?;
            app.apply(&patch);
            let row = ApiAppRow::of(&app);
            tx.prepare_cached(
                "UPDATE api_apps SET name = ?2, secret_digest = ?3, enabled = ?4, \
                 updated_at = ?5, previous_secret_digest = ?6, previous_secret_expires_at = ?7 \
                 WHERE client_id = ?1",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    row.client_id,
                    row.name,
                    row.secret_digest,
                    row.enabled,
                    row.updated_at,
                    row.previous_secret_digest,
                    row.previous_secret_expires_at,
                ])
            })
            .map_err(|e| map(e, API_APP))?;
            tx.commit().map_err(|e| map(e, API_APP))?;
            Ok(app)
        })
        .await
    }

    async fn delete_api_app(&self, client_id: &ClientId) -> Result<(), StoreError> {
        let client_id = client_id.clone();
        self.write(move |conn| {
            // The app and its client keys go in one immediate transaction, so that no
            // key can be added for the app in between.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, API_APP))?;
            let deleted = tx
                .prepare_cached("DELETE FROM api_apps WHERE client_id = ?1")
                .and_then(|mut stmt| stmt.execute([client_id.as_str()]))
                .map_err(|e| map(e, API_APP))?;
            if deleted == 0 {
                // Dropping the transaction rolls it back (nothing was deleted anyway).
                return Err(StoreError::NotFound(API_APP));
            }
            delete_keys_of(&tx, &KeyOwner::ApiApp(client_id))?;
            tx.commit().map_err(|e| map(e, API_APP))
        })
        .await
    }

    async fn add_grant(&self, grant: &RoleGrant) -> Result<bool, StoreError> {
        let grant = grant.clone();
        self.write(move |conn| {
            // The foreign keys would refuse a missing user or project too, but
            // without saying which; check both first, in the same transaction.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, GRANT))?;
            if !user_exists(&tx, grant.user_id.as_str())? {
                return Err(StoreError::NotFound(USER));
            }
            if !project_exists(&tx, grant.project_id.as_str())? {
                return Err(StoreError::NotFound(PROJECT));
            }
            let row = GrantRow::of(&grant);
            let sql = format!(
                "INSERT OR IGNORE INTO role_grants ({}) VALUES (?1, ?2, ?3)",
                GrantRow::COLUMNS
            );
            let inserted = tx
                .prepare_cached(&sql)
                .and_then(|mut stmt| stmt.execute(params![row.user_id, row.project_id, row.role]))
                .map_err(|e| map(e, GRANT))?;
            tx.commit().map_err(|e| map(e, GRANT))?;
            Ok(inserted > 0)
        })
        .await
    }

    async fn remove_grant(&self, grant: &RoleGrant) -> Result<bool, StoreError> {
        let grant = grant.clone();
        self.write(move |conn| {
            let row = GrantRow::of(&grant);
            let deleted = conn
                .prepare_cached(
                    "DELETE FROM role_grants WHERE user_id = ?1 AND project_id = ?2 AND role = ?3",
                )
                .and_then(|mut stmt| stmt.execute(params![row.user_id, row.project_id, row.role]))
                .map_err(|e| map(e, GRANT))?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn add_project_role(&self, role: &ProjectRole) -> Result<(), StoreError> {
        let role = role.clone();
        self.write(move |conn| {
            // The foreign key would refuse a missing project too, but only with the
            // pragma on and without saying so; check it in the same transaction.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, PROJECT_ROLE))?;
            if !project_exists(&tx, role.project_id.as_str())? {
                return Err(StoreError::NotFound(PROJECT));
            }
            let row = ProjectRoleRow::of(&role);
            tx.prepare_cached(&insert_sql("project_roles", ProjectRoleRow::COLUMNS, 6))
                .and_then(|mut stmt| stmt.execute(&project_role_values(&row)[..]))
                .map_err(|e| map(e, PROJECT_ROLE))?;
            tx.commit().map_err(|e| map(e, PROJECT_ROLE))
        })
        .await
    }

    async fn update_project_role(
        &self,
        project: &ProjectId,
        key: &RoleKey,
        display_name: &DisplayName,
        group: Option<&DisplayName>,
        now: OffsetDateTime,
    ) -> Result<ProjectRole, StoreError> {
        let (project, key) = (project.clone(), key.clone());
        let (display_name, group) = (display_name.clone(), group.cloned());
        self.write(move |conn| {
            let sql = format!(
                "UPDATE project_roles SET display_name = ?3, group_name = ?4, updated_at = ?5 \
                 WHERE project_id = ?1 AND key = ?2 RETURNING {}",
                ProjectRoleRow::COLUMNS
            );
            conn.prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.query_row(
                        params![
                            project.as_str(),
                            key.as_str(),
                            display_name.as_str(),
                            group.as_ref().map(DisplayName::as_str),
                            unix(now),
                        ],
                        |row| Ok(ProjectRoles::read(row)),
                    )
                    .optional()
                })
                .map_err(|e| map(e, PROJECT_ROLE))?
                .ok_or(StoreError::NotFound(PROJECT_ROLE))?
        })
        .await
    }

    async fn remove_project_role(
        &self,
        project: &ProjectId,
        key: &RoleKey,
    ) -> Result<bool, StoreError> {
        let (project, key) = (project.clone(), key.clone());
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, PROJECT_ROLE))?;
            let deleted = tx
                .prepare_cached("DELETE FROM project_roles WHERE project_id = ?1 AND key = ?2")
                .and_then(|mut stmt| stmt.execute([project.as_str(), key.as_str()]))
                .map_err(|e| map(e, PROJECT_ROLE))?;
            if deleted == 0 {
                // Dropping the transaction rolls it back (nothing was deleted anyway).
                return Ok(false);
            }
            tx.prepare_cached("DELETE FROM role_grants WHERE project_id = ?1 AND role = ?2")
                .and_then(|mut stmt| stmt.execute([project.as_str(), key.as_str()]))
                .map_err(|e| map(e, GRANT))?;
            tx.commit().map_err(|e| map(e, PROJECT_ROLE))?;
            Ok(true)
        })
        .await
    }

    async fn project_roles(&self, project: &ProjectId) -> Result<Vec<ProjectRole>, StoreError> {
        let project = project.clone();
        self.read(move |conn| {
            // TEXT compares with the BINARY collation: keys in byte order.
            select_all::<ProjectRoles>(
                conn,
                "FROM project_roles WHERE project_id = ?1 ORDER BY key",
                [project.as_str()],
            )
        })
        .await
    }

    async fn delete_project(&self, id: &ProjectId) -> Result<(), StoreError> {
        if id.is_reserved() {
            return Err(StoreError::Conflict("reserved project"));
        }
        let id = id.clone();
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, PROJECT))?;
            if !project_exists(&tx, id.as_str())? {
                return Err(StoreError::NotFound(PROJECT));
            }
            // What refers to the project first, the project last (the foreign keys of
            // `api_apps`, `role_grants` and `project_roles` do not cascade). The owner
            // of an app's keys is `KeyOwner::to_key`'s form, `app:{client_id}`.
            for (sql, what) in [
                (
                    "DELETE FROM client_keys WHERE owner IN \
                     (SELECT 'app:' || client_id FROM api_apps WHERE project_id = ?1)",
                    ClientKeyRow::WHAT,
                ),
                ("DELETE FROM api_apps WHERE project_id = ?1", API_APP),
                ("DELETE FROM role_grants WHERE project_id = ?1", GRANT),
                ("DELETE FROM project_roles WHERE project_id = ?1", PROJECT_ROLE),
                ("DELETE FROM administrators WHERE project_id = ?1", AdministratorRow::WHAT),
                ("DELETE FROM projects WHERE id = ?1", PROJECT),
            ] {
                tx.prepare_cached(sql)
                    .and_then(|mut stmt| stmt.execute([id.as_str()]))
                    .map_err(|e| map(e, what))?;
            }
            tx.commit().map_err(|e| map(e, PROJECT))
        })
        .await
    }
}
