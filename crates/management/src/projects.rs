//! `zitadel.project.v2.ProjectService`: projects (the APIs tokens name in their
//! audience) and their roles.

use serde::{Deserialize, Serialize};
use tessera_admin::{AdminError, NewProject};
use tessera_store::{DisplayName, Organization, Project, ProjectId, ProjectRole, RoleKey};

use crate::auth::Permission;
use crate::connect::{Code, Status};
use crate::json::{
    ChangeResponse, DeletionResponse, DisplayNameFilter, Handler, IdsFilter, ListQuery, Pagination,
    Timestamp, text_matches, unary,
};
use crate::users::{check_organization, organization};
use crate::{Context, admin_status};

/// The service's name.
pub const SERVICE: &str = "zitadel.project.v2.ProjectService";

pub(crate) fn find(service: &str, method: &str) -> Option<Handler> {
    if service != SERVICE {
        return None;
    }
    Some(match method {
        "CreateProject" => unary!(create_project),
        "GetProject" => unary!(get_project),
        "ListProjects" => unary!(list_projects),
        "UpdateProject" => unary!(update_project),
        "DeleteProject" => unary!(delete_project),
        "AddProjectRole" => unary!(add_project_role),
        "UpdateProjectRole" => unary!(update_project_role),
        "RemoveProjectRole" => unary!(remove_project_role),
        "ListProjectRoles" => unary!(list_project_roles),
        _ => return None,
    })
}

/// ZITADEL's `Project`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectView {
    /// Its id.
    pub project_id: String,
    /// The organization owning it.
    pub organization_id: String,
    /// When it was created.
    pub creation_date: Timestamp,
    /// When it last changed: Tessera keeps the creation date only.
    pub change_date: Timestamp,
    /// Its name.
    pub name: String,
    /// Always `PROJECT_STATE_ACTIVE`.
    pub state: &'static str,
    /// Tokens carry the roles their scopes ask for: `false`.
    pub project_role_assertion: bool,
    /// `false`: Tessera issues tokens without checking authorizations.
    pub authorization_required: bool,
    /// `false`.
    pub project_access_required: bool,
    /// Always `PRIVATE_LABELING_SETTING_UNSPECIFIED`.
    pub private_labeling_setting: &'static str,
}

fn view(project: &Project, organization: &Organization) -> ProjectView {
    ProjectView {
        project_id: project.id.to_string(),
        organization_id: organization.id.to_string(),
        creation_date: Timestamp(project.created_at),
        change_date: Timestamp(project.created_at),
        name: project.name.to_string(),
        state: "PROJECT_STATE_ACTIVE",
        project_role_assertion: false,
        authorization_required: false,
        project_access_required: false,
        private_labeling_setting: "PRIVATE_LABELING_SETTING_UNSPECIFIED",
    }
}

fn project_id(value: &str) -> Result<ProjectId, Status> {
    if value.is_empty() {
        return Err(Status::invalid("projectId is required"));
    }
    ProjectId::new(value).map_err(|_| Status::not_found(format!("project {value} not found")))
}

fn name(value: &str, field: &str) -> Result<DisplayName, Status> {
    DisplayName::new(value).map_err(|e| Status::invalid(format!("{field}: {e}")))
}

/// Refuses a change to the server's own API project.
fn not_reserved(id: &ProjectId) -> Result<(), Status> {
    if *id == ProjectId::reserved() {
        return Err(Status::denied(
            "the zitadel project is the server's own API and cannot change",
        ));
    }
    Ok(())
}

/// `CreateProjectRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateProjectRequest {
    /// The organization: Tessera's own, or left out.
    #[serde(default)]
    pub organization_id: Option<String>,
    /// An id to use; generated when left out.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Accepted, without effect.
    #[serde(default)]
    pub project_role_assertion: Option<bool>,
    /// Accepted, without effect.
    #[serde(default)]
    pub authorization_required: Option<bool>,
    /// Accepted, without effect.
    #[serde(default)]
    pub project_access_required: Option<bool>,
    /// Accepted, without effect.
    #[serde(default)]
    pub private_labeling_setting: Option<String>,
}

/// `CreateProjectResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateProjectResponse {
    /// Its id.
    pub project_id: String,
    /// When it was created.
    pub creation_date: Timestamp,
}

/// `CreateProject`.
pub async fn create_project(
    cx: Context<'_>,
    request: CreateProjectRequest,
) -> Result<CreateProjectResponse, Status> {
    cx.principal.require(&Permission::ProjectWrite(None))?;
    let organization = organization(cx).await?;
    check_organization(request.organization_id.as_deref(), &organization)?;
    let id = match request.project_id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => {
            Some(ProjectId::new(id).map_err(|e| Status::invalid(format!("projectId: {e}")))?)
        }
        None => None,
    };
    let new = NewProject { id, name: name(&request.name, "name")? };
    let project = cx.admin.create_project(new).await.map_err(admin_status)?;
    cx.audit("CreateProject", project.id.as_str());
    Ok(CreateProjectResponse {
        project_id: project.id.to_string(),
        creation_date: Timestamp(project.created_at),
    })
}

/// A request naming one project.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectIdRequest {
    /// The project.
    #[serde(default)]
    pub project_id: String,
}

/// `GetProjectResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetProjectResponse {
    /// The project.
    pub project: ProjectView,
}

/// `GetProject`.
pub async fn get_project(
    cx: Context<'_>,
    request: ProjectIdRequest,
) -> Result<GetProjectResponse, Status> {
    let id = project_id(&request.project_id)?;
    cx.principal.require(&Permission::ProjectRead(Some(id.clone())))?;
    let project = cx.admin.project(&id).await.map_err(admin_status)?;
    let organization = organization(cx).await?;
    Ok(GetProjectResponse { project: view(&project, &organization) })
}

/// `ListProjectsRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListProjectsRequest {
    /// Paging.
    #[serde(default)]
    pub pagination: ListQuery,
    /// `PROJECT_FIELD_NAME_*`.
    #[serde(default)]
    pub sorting_column: Option<String>,
    /// Filters, all of which must match.
    #[serde(default)]
    pub filters: Vec<ProjectFilter>,
}

/// `ProjectSearchFilter` (exactly one member set).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectFilter {
    /// By id.
    #[serde(default)]
    pub in_project_ids_filter: Option<IdsFilter>,
    /// By organization.
    #[serde(default)]
    pub organization_id_filter: Option<OrganizationFilter>,
    /// By name.
    #[serde(default)]
    pub project_name_filter: Option<ProjectNameFilter>,
}

/// `ProjectOrganizationIDFilter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationFilter {
    /// The organization.
    #[serde(default)]
    pub organization_id: String,
    /// `TYPE_*`: owned, granted or either.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

/// `ProjectNameFilter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectNameFilter {
    /// The name.
    #[serde(default)]
    pub project_name: String,
    /// `TEXT_FILTER_METHOD_*`.
    #[serde(default)]
    pub method: Option<String>,
}

impl ProjectFilter {
    fn matches(&self, project: &Project, organization: &Organization) -> Result<bool, Status> {
        let set = [
            self.in_project_ids_filter.is_some(),
            self.organization_id_filter.is_some(),
            self.project_name_filter.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err(Status::invalid("each filter sets exactly one member"));
        }
        if let Some(f) = &self.in_project_ids_filter {
            return Ok(f.ids.iter().any(|id| id == project.id.as_str()));
        }
        if let Some(f) = &self.organization_id_filter {
            let owned = f.organization_id == organization.id.as_str();
            return match f.kind.as_deref().unwrap_or("TYPE_UNSPECIFIED") {
                "TYPE_UNSPECIFIED" | "TYPE_OWNED" | "TYPE_OWNED_OR_GRANTED" => Ok(owned),
                "TYPE_GRANTED" => Ok(false),
                other => Err(Status::invalid(format!("unknown type {other:?}"))),
            };
        }
        if let Some(f) = &self.project_name_filter {
            return text_matches(project.name.as_str(), &f.project_name, f.method.as_deref());
        }
        Ok(false)
    }
}

/// `ListProjectsResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListProjectsResponse {
    /// Paging.
    pub pagination: Pagination,
    /// The page.
    pub projects: Vec<ProjectView>,
}

/// `ListProjects`: the projects the caller may read.
pub async fn list_projects(
    cx: Context<'_>,
    request: ListProjectsRequest,
) -> Result<ListProjectsResponse, Status> {
    cx.principal.require(&Permission::ProjectRead(None))?;
    let organization = organization(cx).await?;
    let mut projects = Vec::new();
    for project in cx.admin.projects().await.map_err(admin_status)? {
        if !cx.principal.may_read_project(&project.id) {
            continue;
        }
        let mut keep = true;
        for filter in &request.filters {
            keep &= filter.matches(&project, &organization)?;
        }
        if keep {
            projects.push(project);
        }
    }
    match request.sorting_column.as_deref().unwrap_or("PROJECT_FIELD_NAME_UNSPECIFIED") {
        "PROJECT_FIELD_NAME_UNSPECIFIED"
        | "PROJECT_FIELD_NAME_CREATION_DATE"
        | "PROJECT_FIELD_NAME_CHANGE_DATE" => {
            projects.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        }
        "PROJECT_FIELD_NAME_ID" => projects.sort_by(|a, b| a.id.cmp(&b.id)),
        "PROJECT_FIELD_NAME_NAME" => projects.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str())),
        other => return Err(Status::invalid(format!("unknown sorting column {other}"))),
    }
    let (pagination, page) = request.pagination.paginate(projects)?;
    Ok(ListProjectsResponse {
        pagination,
        projects: page.iter().map(|p| view(p, &organization)).collect(),
    })
}

/// `UpdateProjectRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateProjectRequest {
    /// The project.
    #[serde(default)]
    pub project_id: String,
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// Accepted, without effect.
    #[serde(default)]
    pub project_role_assertion: Option<bool>,
    /// Accepted, without effect.
    #[serde(default)]
    pub authorization_required: Option<bool>,
    /// Accepted, without effect.
    #[serde(default)]
    pub project_access_required: Option<bool>,
    /// Accepted, without effect.
    #[serde(default)]
    pub private_labeling_setting: Option<String>,
}

/// `UpdateProject`: renames it.
pub async fn update_project(
    cx: Context<'_>,
    request: UpdateProjectRequest,
) -> Result<ChangeResponse, Status> {
    let id = project_id(&request.project_id)?;
    cx.principal.require(&Permission::ProjectWrite(Some(id.clone())))?;
    not_reserved(&id)?;
    let project = cx.admin.project(&id).await.map_err(admin_status)?;
    if let Some(new_name) = request.name.as_deref() {
        let new_name = name(new_name, "name")?;
        if new_name != project.name {
            cx.admin.rename_project(&id, &new_name).await.map_err(admin_status)?;
            cx.audit("UpdateProject", id.as_str());
        }
    }
    Ok(ChangeResponse { change_date: Timestamp(cx.admin.now()) })
}

/// `DeleteProject`: the project with its apps, roles, grants and the administrator
/// roles held on it; one that does not exist is not an error, as in ZITADEL.
pub async fn delete_project(
    cx: Context<'_>,
    request: ProjectIdRequest,
) -> Result<DeletionResponse, Status> {
    let id = project_id(&request.project_id)?;
    cx.principal.require(&Permission::ProjectWrite(Some(id.clone())))?;
    not_reserved(&id)?;
    match cx.admin.delete_project(&id).await {
        Ok(()) => cx.audit("DeleteProject", id.as_str()),
        Err(AdminError::NotFound { .. }) => {}
        Err(e) => return Err(admin_status(e)),
    }
    Ok(DeletionResponse { deletion_date: Timestamp(cx.admin.now()) })
}

/// `AddProjectRoleRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddProjectRoleRequest {
    /// The project.
    #[serde(default)]
    pub project_id: String,
    /// The role's key.
    #[serde(default)]
    pub role_key: String,
    /// Its display name.
    #[serde(default)]
    pub display_name: String,
    /// Its group.
    #[serde(default)]
    pub group: Option<String>,
}

/// `AddProjectRoleResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddProjectRoleResponse {
    /// When it was made.
    pub creation_date: Timestamp,
}

fn role_key(value: &str) -> Result<RoleKey, Status> {
    if value.is_empty() {
        return Err(Status::invalid("roleKey is required"));
    }
    RoleKey::new(value).map_err(|e| Status::invalid(format!("roleKey: {e}")))
}

fn group(value: Option<&str>) -> Result<Option<DisplayName>, Status> {
    value.filter(|g| !g.is_empty()).map(|g| name(g, "group")).transpose()
}

/// `AddProjectRole`: `already_exists` when the project has the key.
pub async fn add_project_role(
    cx: Context<'_>,
    request: AddProjectRoleRequest,
) -> Result<AddProjectRoleResponse, Status> {
    let id = project_id(&request.project_id)?;
    cx.principal.require(&Permission::ProjectWrite(Some(id.clone())))?;
    not_reserved(&id)?;
    let key = role_key(&request.role_key)?;
    let display = name(&request.display_name, "displayName")?;
    let role = cx
        .admin
        .add_project_role(&id, key, display, group(request.group.as_deref())?)
        .await
        .map_err(admin_status)?;
    cx.audit("AddProjectRole", &format!("{id}/{}", role.key));
    Ok(AddProjectRoleResponse { creation_date: Timestamp(role.created_at) })
}

/// `UpdateProjectRoleRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateProjectRoleRequest {
    /// The project.
    #[serde(default)]
    pub project_id: String,
    /// The role's key.
    #[serde(default)]
    pub role_key: String,
    /// A new display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// A new group.
    #[serde(default)]
    pub group: Option<String>,
}

/// `UpdateProjectRole`: its display name and group; the key cannot change.
pub async fn update_project_role(
    cx: Context<'_>,
    request: UpdateProjectRoleRequest,
) -> Result<ChangeResponse, Status> {
    let id = project_id(&request.project_id)?;
    cx.principal.require(&Permission::ProjectWrite(Some(id.clone())))?;
    let key = role_key(&request.role_key)?;
    let current = cx
        .admin
        .project_roles(&id)
        .await
        .map_err(admin_status)?
        .into_iter()
        .find(|r| r.key == key)
        .ok_or_else(|| Status::not_found(format!("role {key} of project {id} not found")))?;
    let display = match request.display_name.as_deref() {
        Some(value) => name(value, "displayName")?,
        None => current.display_name.clone(),
    };
    let group = match request.group.as_deref() {
        Some(value) => group(Some(value))?,
        None => current.group.clone(),
    };
    let role =
        cx.admin.update_project_role(&id, &key, display, group).await.map_err(admin_status)?;
    cx.audit("UpdateProjectRole", &format!("{id}/{key}"));
    Ok(ChangeResponse { change_date: Timestamp(role.updated_at) })
}

/// `RemoveProjectRoleRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoveProjectRoleRequest {
    /// The project.
    #[serde(default)]
    pub project_id: String,
    /// The role's key.
    #[serde(default)]
    pub role_key: String,
}

/// `RemoveProjectRoleResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveProjectRoleResponse {
    /// When it was removed.
    pub removal_date: Timestamp,
}

/// `RemoveProjectRole`: also takes the role from every user holding it; a role that
/// does not exist is not an error, as in ZITADEL.
pub async fn remove_project_role(
    cx: Context<'_>,
    request: RemoveProjectRoleRequest,
) -> Result<RemoveProjectRoleResponse, Status> {
    let id = project_id(&request.project_id)?;
    cx.principal.require(&Permission::ProjectWrite(Some(id.clone())))?;
    let key = role_key(&request.role_key)?;
    if cx.admin.remove_project_role(&id, &key).await.map_err(admin_status)? {
        cx.audit("RemoveProjectRole", &format!("{id}/{key}"));
    }
    Ok(RemoveProjectRoleResponse { removal_date: Timestamp(cx.admin.now()) })
}

/// `ListProjectRolesRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListProjectRolesRequest {
    /// The project.
    #[serde(default)]
    pub project_id: String,
    /// Paging.
    #[serde(default)]
    pub pagination: ListQuery,
    /// `PROJECT_ROLE_FIELD_NAME_*`.
    #[serde(default)]
    pub sorting_column: Option<String>,
    /// Filters, all of which must match.
    #[serde(default)]
    pub filters: Vec<RoleFilter>,
}

/// `ProjectRoleSearchFilter` (exactly one member set).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleFilter {
    /// By key.
    #[serde(default)]
    pub role_key_filter: Option<RoleKeyFilter>,
    /// By display name.
    #[serde(default)]
    pub display_name_filter: Option<DisplayNameFilter>,
}

/// `ProjectRoleKeyFilter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleKeyFilter {
    /// The key.
    #[serde(default)]
    pub key: String,
    /// `TEXT_FILTER_METHOD_*`.
    #[serde(default)]
    pub method: Option<String>,
}

/// ZITADEL's `ProjectRole`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRoleView {
    /// The project.
    pub project_id: String,
    /// The key.
    pub key: String,
    /// When it was made.
    pub creation_date: Timestamp,
    /// When it last changed.
    pub change_date: Timestamp,
    /// Its display name.
    pub display_name: String,
    /// Its group.
    pub group: String,
}

/// `ListProjectRolesResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListProjectRolesResponse {
    /// Paging.
    pub pagination: Pagination,
    /// The page.
    pub project_roles: Vec<ProjectRoleView>,
}

/// `ListProjectRoles` of one project.
pub async fn list_project_roles(
    cx: Context<'_>,
    request: ListProjectRolesRequest,
) -> Result<ListProjectRolesResponse, Status> {
    let id = project_id(&request.project_id)?;
    cx.principal.require(&Permission::ProjectRead(Some(id.clone())))?;
    cx.admin.project(&id).await.map_err(admin_status)?;
    let mut roles: Vec<ProjectRole> = Vec::new();
    for role in cx.admin.project_roles(&id).await.map_err(admin_status)? {
        let mut keep = true;
        for filter in &request.filters {
            keep &= match (&filter.role_key_filter, &filter.display_name_filter) {
                (Some(f), None) => text_matches(role.key.as_str(), &f.key, f.method.as_deref())?,
                (None, Some(f)) => {
                    text_matches(role.display_name.as_str(), &f.display_name, f.method.as_deref())?
                }
                _ => return Err(Status::invalid("each filter sets exactly one member")),
            };
        }
        if keep {
            roles.push(role);
        }
    }
    match request.sorting_column.as_deref().unwrap_or("PROJECT_ROLE_FIELD_NAME_UNSPECIFIED") {
        "PROJECT_ROLE_FIELD_NAME_UNSPECIFIED" | "PROJECT_ROLE_FIELD_NAME_KEY" => {}
        "PROJECT_ROLE_FIELD_NAME_CREATION_DATE" => roles.sort_by_key(|r| r.created_at),
        "PROJECT_ROLE_FIELD_NAME_CHANGE_DATE" => roles.sort_by_key(|r| r.updated_at),
        other => {
            return Err(Status::new(
                Code::InvalidArgument,
                format!("unknown sorting column {other}"),
            ));
        }
    }
    let (pagination, page) = request.pagination.paginate(roles)?;
    Ok(ListProjectRolesResponse {
        pagination,
        project_roles: page
            .iter()
            .map(|r| ProjectRoleView {
                project_id: r.project_id.to_string(),
                key: r.key.to_string(),
                creation_date: Timestamp(r.created_at),
                change_date: Timestamp(r.updated_at),
                display_name: r.display_name.to_string(),
                group: r.group.as_ref().map(ToString::to_string).unwrap_or_default(),
            })
            .collect(),
    })
}
