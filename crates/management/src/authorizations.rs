//! `zitadel.authorization.v2.AuthorizationService`: the roles of a project granted
//! to a service user.
//!
//! Tessera stores grants as (user, project, role); an authorization is a user's
//! grants in one project, and its id is `{userId}.{projectId}` (neither id can hold
//! a dot), so it needs no storage of its own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tessera_store::{Organization, Project, ProjectId, ProjectRole, RoleKey, ServiceUser, UserId};

use crate::auth::Permission;
use crate::connect::{Code, Status};
use crate::json::{
    DisplayNameFilter, Handler, IdFilter, IdsFilter, ListQuery, OrganizationRef, Pagination,
    Timestamp, text_matches, unary,
};
use crate::users::{check_organization, organization, user_by_id};
use crate::{Context, admin_status};

/// The service's name.
pub const SERVICE: &str = "zitadel.authorization.v2.AuthorizationService";

pub(crate) fn find(service: &str, method: &str) -> Option<Handler> {
    if service != SERVICE {
        return None;
    }
    Some(match method {
        "CreateAuthorization" => unary!(create_authorization),
        "ListAuthorizations" => unary!(list_authorizations),
        "UpdateAuthorization" => unary!(update_authorization),
        "DeleteAuthorization" => unary!(delete_authorization),
        _ => return None,
    })
}

/// The id of the authorization of `user` in `project`.
fn authorization_id(user: &UserId, project: &ProjectId) -> String {
    format!("{user}.{project}")
}

/// The user and project of an authorization id.
fn parse_id(id: &str) -> Result<(UserId, ProjectId), Status> {
    if id.is_empty() {
        return Err(Status::invalid("id is required"));
    }
    let missing = || Status::not_found(format!("authorization {id} not found"));
    let (user, project) = id.split_once('.').ok_or_else(missing)?;
    Ok((UserId::new(user).map_err(|_| missing())?, ProjectId::new(project).map_err(|_| missing())?))
}

async fn project(cx: Context<'_>, id: &str) -> Result<Project, Status> {
    if id.is_empty() {
        return Err(Status::invalid("projectId is required"));
    }
    let project_id =
        ProjectId::new(id).map_err(|_| Status::not_found(format!("project {id} not found")))?;
    cx.admin.project(&project_id).await.map_err(admin_status)
}

/// `role_keys`, checked against the roles the project defines.
async fn checked_roles(
    cx: Context<'_>,
    project: &Project,
    role_keys: &[String],
) -> Result<Vec<RoleKey>, Status> {
    let defined = cx.admin.project_roles(&project.id).await.map_err(admin_status)?;
    let mut keys = Vec::with_capacity(role_keys.len());
    for key in role_keys {
        if !defined.iter().any(|r| r.key.as_str() == key) {
            return Err(Status::new(
                Code::FailedPrecondition,
                format!("role {key:?} is not a role of project {}", project.id),
            ));
        }
        let key = RoleKey::new(key).map_err(|e| Status::invalid(format!("roleKeys: {e}")))?;
        if keys.contains(&key) {
            return Err(Status::invalid(format!("roleKeys: {key} is listed twice")));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// The roles `user` holds in `project`.
async fn held(
    cx: Context<'_>,
    user: &ServiceUser,
    project: &ProjectId,
) -> Result<Vec<RoleKey>, Status> {
    Ok(cx
        .admin
        .grants_of(&user.username)
        .await
        .map_err(admin_status)?
        .into_iter()
        .filter(|g| &g.project_id == project)
        .map(|g| g.role)
        .collect())
}

/// `CreateAuthorizationRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAuthorizationRequest {
    /// The service user.
    #[serde(default)]
    pub user_id: String,
    /// The project.
    #[serde(default)]
    pub project_id: String,
    /// The organization: Tessera's own, or left out.
    #[serde(default)]
    pub organization_id: Option<String>,
    /// The roles to grant.
    #[serde(default)]
    pub role_keys: Vec<String>,
}

/// `CreateAuthorizationResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAuthorizationResponse {
    /// The authorization's id.
    pub id: String,
    /// When it was made.
    pub creation_date: Timestamp,
}

/// `CreateAuthorization`: grants roles of a project to a service user;
/// `already_exists` when the user holds roles of the project already.
pub async fn create_authorization(
    cx: Context<'_>,
    request: CreateAuthorizationRequest,
) -> Result<CreateAuthorizationResponse, Status> {
    let organization = organization(cx).await?;
    check_organization(request.organization_id.as_deref(), &organization)?;
    let project = project(cx, &request.project_id).await?;
    cx.principal.require(&Permission::AuthorizationWrite(project.id.clone()))?;
    let user = user_by_id(cx, &request.user_id).await?;
    let keys = checked_roles(cx, &project, &request.role_keys).await?;
    if !held(cx, &user, &project.id).await?.is_empty() {
        return Err(Status::new(
            Code::AlreadyExists,
            format!("{} holds roles of project {} already", user.id, project.id),
        ));
    }
    for key in &keys {
        cx.admin.add_grant(&user.username, &project.id, key).await.map_err(admin_status)?;
    }
    let id = authorization_id(&user.id, &project.id);
    cx.audit("CreateAuthorization", &id);
    Ok(CreateAuthorizationResponse { id, creation_date: Timestamp(cx.admin.now()) })
}

/// `UpdateAuthorizationRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateAuthorizationRequest {
    /// The authorization.
    #[serde(default)]
    pub id: String,
    /// The roles it grants from now on.
    #[serde(default)]
    pub role_keys: Vec<String>,
}

/// `UpdateAuthorizationResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAuthorizationResponse {
    /// When it changed.
    pub change_date: Timestamp,
}

/// `UpdateAuthorization`: replaces the roles granted.
pub async fn update_authorization(
    cx: Context<'_>,
    request: UpdateAuthorizationRequest,
) -> Result<UpdateAuthorizationResponse, Status> {
    let (user_id, project_id) = parse_id(&request.id)?;
    let project = project(cx, project_id.as_str()).await?;
    cx.principal.require(&Permission::AuthorizationWrite(project.id.clone()))?;
    let user = user_by_id(cx, user_id.as_str()).await?;
    let keys = checked_roles(cx, &project, &request.role_keys).await?;
    let held = held(cx, &user, &project.id).await?;
    if held.is_empty() {
        return Err(Status::not_found(format!("authorization {} not found", request.id)));
    }
    for key in keys.iter().filter(|k| !held.contains(k)) {
        cx.admin.add_grant(&user.username, &project.id, key).await.map_err(admin_status)?;
    }
    for key in held.iter().filter(|k| !keys.contains(k)) {
        cx.admin.remove_grant(&user.username, &project.id, key).await.map_err(admin_status)?;
    }
    cx.audit("UpdateAuthorization", &request.id);
    Ok(UpdateAuthorizationResponse { change_date: Timestamp(cx.admin.now()) })
}

/// `DeleteAuthorizationRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteAuthorizationRequest {
    /// The authorization.
    #[serde(default)]
    pub id: String,
}

/// `DeleteAuthorizationResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteAuthorizationResponse {
    /// When it was removed.
    pub deletion_date: Timestamp,
}

/// `DeleteAuthorization`: takes every role of the project from the user; one that
/// does not exist is not an error, as in ZITADEL.
pub async fn delete_authorization(
    cx: Context<'_>,
    request: DeleteAuthorizationRequest,
) -> Result<DeleteAuthorizationResponse, Status> {
    let done = DeleteAuthorizationResponse { deletion_date: Timestamp(cx.admin.now()) };
    let (user_id, project_id) = parse_id(&request.id)?;
    cx.principal.require(&Permission::AuthorizationWrite(project_id.clone()))?;
    let Ok(user) = cx.admin.service_user_by_id(&user_id).await else { return Ok(done) };
    let held = held(cx, &user, &project_id).await?;
    for key in &held {
        cx.admin.remove_grant(&user.username, &project_id, key).await.map_err(admin_status)?;
    }
    if !held.is_empty() {
        cx.audit("DeleteAuthorization", &request.id);
    }
    Ok(done)
}

/// `ListAuthorizationsRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListAuthorizationsRequest {
    /// Paging.
    #[serde(default)]
    pub pagination: ListQuery,
    /// `AUTHORIZATION_FIELD_NAME_*`.
    #[serde(default)]
    pub sorting_column: Option<String>,
    /// Filters, all of which must match.
    #[serde(default)]
    pub filters: Vec<AuthorizationFilter>,
}

/// `AuthorizationsSearchFilter` (exactly one member set).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationFilter {
    /// By authorization id.
    #[serde(default)]
    pub authorization_ids: Option<IdsFilter>,
    /// By user id.
    #[serde(default)]
    pub in_user_ids: Option<IdsFilter>,
    /// By organization.
    #[serde(default)]
    pub organization_id: Option<IdFilter>,
    /// By project.
    #[serde(default)]
    pub project_id: Option<IdFilter>,
    /// By project grant: never matches (Tessera has none).
    #[serde(default)]
    pub project_grant_id: Option<IdFilter>,
    /// By the user's organization.
    #[serde(default)]
    pub user_organization_id: Option<IdFilter>,
    /// By project name.
    #[serde(default)]
    pub project_name: Option<NameFilter>,
    /// By role.
    #[serde(default)]
    pub role_key: Option<RoleKeyFilter>,
    /// By state.
    #[serde(default)]
    pub state: Option<StateFilter>,
    /// By the user's display name.
    #[serde(default)]
    pub user_display_name: Option<DisplayNameFilter>,
    /// By the user's login name.
    #[serde(default)]
    pub user_preferred_login_name: Option<LoginNameFilter>,
}

/// `ProjectNameQuery`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameFilter {
    /// The name.
    #[serde(default)]
    pub name: String,
    /// `TEXT_FILTER_METHOD_*`.
    #[serde(default)]
    pub method: Option<String>,
}

/// `RoleKeyQuery`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleKeyFilter {
    /// The role.
    #[serde(default)]
    pub key: String,
    /// `TEXT_FILTER_METHOD_*`.
    #[serde(default)]
    pub method: Option<String>,
}

/// `StateQuery`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateFilter {
    /// `STATE_*`.
    #[serde(default)]
    pub state: String,
}

/// `UserPreferredLoginNameQuery`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginNameFilter {
    /// The login name.
    #[serde(default)]
    pub login_name: String,
    /// `TEXT_FILTER_METHOD_*`.
    #[serde(default)]
    pub method: Option<String>,
}

/// One authorization, assembled.
struct Entry {
    user: ServiceUser,
    project: Project,
    roles: Vec<ProjectRoleView>,
}

impl AuthorizationFilter {
    fn matches(&self, entry: &Entry, organization: &Organization) -> Result<bool, Status> {
        let login = format!("{}@{}", entry.user.username, organization.primary_domain);
        let id = authorization_id(&entry.user.id, &entry.project.id);
        let checks: [Option<Result<bool, Status>>; 11] = [
            self.authorization_ids.as_ref().map(|f| Ok(f.ids.contains(&id))),
            self.in_user_ids
                .as_ref()
                .map(|f| Ok(f.ids.iter().any(|i| i == entry.user.id.as_str()))),
            self.organization_id.as_ref().map(|f| Ok(f.id == organization.id.as_str())),
            self.project_id.as_ref().map(|f| Ok(f.id == entry.project.id.as_str())),
            self.project_grant_id.as_ref().map(|_| Ok(false)),
            self.user_organization_id.as_ref().map(|f| Ok(f.id == organization.id.as_str())),
            self.project_name
                .as_ref()
                .map(|f| text_matches(entry.project.name.as_str(), &f.name, f.method.as_deref())),
            self.role_key.as_ref().map(|f| {
                let mut any = false;
                for role in &entry.roles {
                    any |= text_matches(&role.key, &f.key, f.method.as_deref())?;
                }
                Ok(any)
            }),
            self.state.as_ref().map(|f| match f.state.as_str() {
                "STATE_ACTIVE" => Ok(entry.user.enabled),
                "STATE_INACTIVE" => Ok(!entry.user.enabled),
                "STATE_UNSPECIFIED" => Ok(false),
                other => Err(Status::invalid(format!("unknown state {other:?}"))),
            }),
            self.user_display_name.as_ref().map(|f| {
                text_matches(entry.user.display_name.as_str(), &f.display_name, f.method.as_deref())
            }),
            self.user_preferred_login_name
                .as_ref()
                .map(|f| text_matches(&login, &f.login_name, f.method.as_deref())),
        ];
        let mut set = checks.into_iter().flatten();
        match (set.next(), set.next()) {
            (Some(result), None) => result,
            _ => Err(Status::invalid("each filter sets exactly one member")),
        }
    }
}

/// ZITADEL's `Authorization`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationView {
    /// `{userId}.{projectId}`.
    pub id: String,
    /// When it was made: Tessera keeps no date per grant, so the later of the user's
    /// and the project's creation.
    pub creation_date: Timestamp,
    /// As the creation date.
    pub change_date: Timestamp,
    /// The project.
    pub project: ProjectRef,
    /// The organization.
    pub organization: OrganizationRef,
    /// The user.
    pub user: UserRef,
    /// `STATE_ACTIVE`, or `STATE_INACTIVE` while the user is deactivated.
    pub state: &'static str,
    /// The roles granted.
    pub roles: Vec<ProjectRoleView>,
}

/// A project named in an authorization.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRef {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The organization owning it.
    pub organization_id: String,
}

/// The user of an authorization.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRef {
    /// Its id.
    pub id: String,
    /// `username@primary-domain`.
    pub preferred_login_name: String,
    /// Its display name.
    pub display_name: String,
    /// Its organization.
    pub organization_id: String,
}

/// A role granted.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRoleView {
    /// The role.
    pub key: String,
    /// Its display name (the key, for a role the project does not define).
    pub display_name: String,
    /// Its group.
    pub group: String,
}

fn role_view(key: &RoleKey, defined: &[ProjectRole]) -> ProjectRoleView {
    let role = defined.iter().find(|r| &r.key == key);
    ProjectRoleView {
        key: key.to_string(),
        display_name: role.map_or_else(|| key.to_string(), |r| r.display_name.to_string()),
        group: role.and_then(|r| r.group.as_ref()).map(ToString::to_string).unwrap_or_default(),
    }
}

/// `ListAuthorizationsResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAuthorizationsResponse {
    /// Paging.
    pub pagination: Pagination,
    /// The page.
    pub authorizations: Vec<AuthorizationView>,
}

/// `ListAuthorizations`: the authorizations of the projects the caller may read.
pub async fn list_authorizations(
    cx: Context<'_>,
    request: ListAuthorizationsRequest,
) -> Result<ListAuthorizationsResponse, Status> {
    cx.principal.require(&Permission::AuthorizationRead(None))?;
    let organization = organization(cx).await?;
    let projects: BTreeMap<ProjectId, Project> = cx
        .admin
        .projects()
        .await
        .map_err(admin_status)?
        .into_iter()
        .filter(|p| cx.principal.may_read_authorizations(&p.id))
        .map(|p| (p.id.clone(), p))
        .collect();
    let mut roles_of: BTreeMap<ProjectId, Vec<ProjectRole>> = BTreeMap::new();
    let mut entries = Vec::new();
    for user in cx.admin.service_users().await.map_err(admin_status)? {
        let mut by_project: BTreeMap<ProjectId, Vec<RoleKey>> = BTreeMap::new();
        for grant in cx.admin.grants_of(&user.username).await.map_err(admin_status)? {
            if projects.contains_key(&grant.project_id) {
                by_project.entry(grant.project_id).or_default().push(grant.role);
            }
        }
        for (project_id, keys) in by_project {
            let Some(project) = projects.get(&project_id) else { continue };
            if !roles_of.contains_key(&project_id) {
                let defined = cx.admin.project_roles(&project_id).await.map_err(admin_status)?;
                roles_of.insert(project_id.clone(), defined);
            }
            let defined = roles_of.get(&project_id).map(Vec::as_slice).unwrap_or_default();
            let roles = keys.iter().map(|k| role_view(k, defined)).collect();
            let entry = Entry { user: user.clone(), project: project.clone(), roles };
            let mut keep = true;
            for filter in &request.filters {
                keep &= filter.matches(&entry, &organization)?;
            }
            if keep {
                entries.push(entry);
            }
        }
    }
    let created = |e: &Entry| e.user.created_at.max(e.project.created_at);
    match request.sorting_column.as_deref().unwrap_or("AUTHORIZATION_FIELD_NAME_UNSPECIFIED") {
        "AUTHORIZATION_FIELD_NAME_UNSPECIFIED"
        | "AUTHORIZATION_FIELD_NAME_CREATED_DATE"
        | "AUTHORIZATION_FIELD_NAME_CHANGED_DATE" => entries.sort_by_key(created),
        "AUTHORIZATION_FIELD_NAME_ID" | "AUTHORIZATION_FIELD_NAME_USER_ID" => {
            entries.sort_by(|a, b| (&a.user.id, &a.project.id).cmp(&(&b.user.id, &b.project.id)));
        }
        "AUTHORIZATION_FIELD_NAME_PROJECT_ID" => {
            entries.sort_by(|a, b| (&a.project.id, &a.user.id).cmp(&(&b.project.id, &b.user.id)));
        }
        "AUTHORIZATION_FIELD_NAME_ORGANIZATION_ID"
        | "AUTHORIZATION_FIELD_NAME_USER_ORGANIZATION_ID" => {}
        other => return Err(Status::invalid(format!("unknown sorting column {other}"))),
    }
    let (pagination, page) = request.pagination.paginate(entries)?;
    let authorizations = page
        .into_iter()
        .map(|e| {
            let at = Timestamp(created(&e));
            AuthorizationView {
                id: authorization_id(&e.user.id, &e.project.id),
                creation_date: at,
                change_date: at,
                project: ProjectRef {
                    id: e.project.id.to_string(),
                    name: e.project.name.to_string(),
                    organization_id: organization.id.to_string(),
                },
                organization: OrganizationRef {
                    id: organization.id.to_string(),
                    name: organization.name.to_string(),
                },
                user: UserRef {
                    id: e.user.id.to_string(),
                    preferred_login_name: format!(
                        "{}@{}",
                        e.user.username, organization.primary_domain
                    ),
                    display_name: e.user.display_name.to_string(),
                    organization_id: organization.id.to_string(),
                },
                state: if e.user.enabled { "STATE_ACTIVE" } else { "STATE_INACTIVE" },
                roles: e.roles,
            }
        })
        .collect();
    Ok(ListAuthorizationsResponse { pagination, authorizations })
}
