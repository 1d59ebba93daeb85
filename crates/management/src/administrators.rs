//! `zitadel.internal_permission.v2.InternalPermissionService`: administrators.
//!
//! ZITADEL grants roles on a resource: the instance (`IAM_*` roles), an organization
//! (`ORG_*`), a project (`PROJECT_OWNER`) or a project grant. Tessera has one
//! organization and no project grants; a `PROJECT_OWNER` held without a project (from
//! the CLI or a bootstrap file) is listed on the organization.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tessera_store::{AdminRole, Administrator, Organization, ProjectId, ServiceUser};
use time::OffsetDateTime;

use crate::auth::Permission;
use crate::connect::{Code, Status};
use crate::json::{
    DisplayNameFilter, Handler, IdFilter, IdsFilter, ListQuery, OrganizationRef, Pagination,
    Timestamp, text_matches, unary,
};
use crate::users::{check_organization, organization, user_by_id};
use crate::{Context, admin_status};

/// The service's name.
pub const SERVICE: &str = "zitadel.internal_permission.v2.InternalPermissionService";

pub(crate) fn find(service: &str, method: &str) -> Option<Handler> {
    if service != SERVICE {
        return None;
    }
    Some(match method {
        "CreateAdministrator" => unary!(create_administrator),
        "ListAdministrators" => unary!(list_administrators),
        "UpdateAdministrator" => unary!(update_administrator),
        "DeleteAdministrator" => unary!(delete_administrator),
        _ => return None,
    })
}

/// `ResourceType`: exactly one member set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceType {
    /// The whole instance (must be `true` when set).
    #[serde(default)]
    pub instance: Option<bool>,
    /// An organization.
    #[serde(default)]
    pub organization_id: Option<String>,
    /// A project.
    #[serde(default)]
    pub project_id: Option<String>,
    /// A project grant: Tessera has none.
    #[serde(default)]
    pub project_grant: Option<ProjectGrantRef>,
}

/// `ProjectGrant` of a resource.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectGrantRef {
    /// The project.
    #[serde(default)]
    pub project_id: String,
    /// The organization it is granted to.
    #[serde(default)]
    pub organization_id: String,
}

/// A resource, resolved.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Resource {
    Instance,
    Organization,
    Project(ProjectId),
}

impl Resource {
    /// Whether `role` is held on this kind of resource.
    fn fits(&self, role: AdminRole) -> bool {
        match self {
            Resource::Instance => matches!(role, AdminRole::IamOwner | AdminRole::IamOwnerViewer),
            Resource::Organization => {
                matches!(role, AdminRole::OrgOwner | AdminRole::OrgUserManager)
            }
            Resource::Project(_) => role == AdminRole::ProjectOwner,
        }
    }

    fn project(&self) -> Option<&ProjectId> {
        match self {
            Resource::Project(id) => Some(id),
            _ => None,
        }
    }

    /// Where a stored role is held.
    fn of(admin: &Administrator) -> Resource {
        match (&admin.project_id, admin.role) {
            (Some(project), _) => Resource::Project(project.clone()),
            (None, AdminRole::IamOwner | AdminRole::IamOwnerViewer) => Resource::Instance,
            (None, _) => Resource::Organization,
        }
    }
}

async fn resolve(
    cx: Context<'_>,
    resource: Option<ResourceType>,
    organization: &Organization,
) -> Result<Resource, Status> {
    let resource = resource.ok_or_else(|| Status::invalid("resource is required"))?;
    let set = [
        resource.instance.is_some(),
        resource.organization_id.is_some(),
        resource.project_id.is_some(),
        resource.project_grant.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        return Err(Status::invalid(
            "resource: set exactly one of instance, organizationId, projectId, projectGrant",
        ));
    }
    if let Some(instance) = resource.instance {
        return if instance {
            Ok(Resource::Instance)
        } else {
            Err(Status::invalid("resource.instance must be true"))
        };
    }
    if let Some(id) = resource.organization_id {
        check_organization(Some(id.as_str()), organization)?;
        if id.is_empty() {
            return Err(Status::invalid("resource.organizationId is required"));
        }
        return Ok(Resource::Organization);
    }
    if let Some(id) = resource.project_id {
        let project = ProjectId::new(&id)
            .map_err(|_| Status::not_found(format!("project {id} not found")))?;
        cx.admin.project(&project).await.map_err(admin_status)?;
        return Ok(Resource::Project(project));
    }
    Err(Status::not_found("project grant not found: Tessera has no project grants"))
}

fn parse_roles(roles: &[String], resource: &Resource) -> Result<Vec<AdminRole>, Status> {
    if roles.is_empty() {
        return Err(Status::invalid("roles: at least one role is required"));
    }
    let mut parsed = Vec::with_capacity(roles.len());
    for name in roles {
        let role: AdminRole =
            name.parse().map_err(|_| Status::invalid(format!("roles: unknown role {name:?}")))?;
        if !resource.fits(role) {
            return Err(Status::invalid(format!("roles: {role} is not held on this resource")));
        }
        if parsed.contains(&role) {
            return Err(Status::invalid(format!("roles: {role} is listed twice")));
        }
        parsed.push(role);
    }
    Ok(parsed)
}

fn require_write(cx: Context<'_>, roles: &[AdminRole], resource: &Resource) -> Result<(), Status> {
    for role in roles {
        cx.principal.require(&Permission::AdminWrite(*role, resource.project().cloned()))?;
    }
    Ok(())
}

/// `CreateAdministratorRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAdministratorRequest {
    /// The service user.
    #[serde(default)]
    pub user_id: String,
    /// Where the roles are held.
    #[serde(default)]
    pub resource: Option<ResourceType>,
    /// The roles.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `CreateAdministratorResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAdministratorResponse {
    /// When the roles were granted.
    pub creation_date: Timestamp,
}

/// `CreateAdministrator`: grants roles on a resource; `already_exists` when the user
/// holds a role there already.
pub async fn create_administrator(
    cx: Context<'_>,
    request: CreateAdministratorRequest,
) -> Result<CreateAdministratorResponse, Status> {
    let organization = organization(cx).await?;
    let resource = resolve(cx, request.resource, &organization).await?;
    let roles = parse_roles(&request.roles, &resource)?;
    require_write(cx, &roles, &resource)?;
    let user = user_by_id(cx, &request.user_id).await?;
    let held = cx.admin.administrator_roles(&user.id).await.map_err(admin_status)?;
    if held.iter().any(|a| Resource::of(a) == resource) {
        return Err(Status::new(
            Code::AlreadyExists,
            format!("{} is an administrator of this resource already", user.id),
        ));
    }
    for role in &roles {
        cx.admin
            .add_administrator(&user.username, *role, resource.project())
            .await
            .map_err(admin_status)?;
    }
    cx.audit("CreateAdministrator", user.id.as_str());
    Ok(CreateAdministratorResponse { creation_date: Timestamp(cx.admin.now()) })
}

/// `UpdateAdministratorRequest`.
pub type UpdateAdministratorRequest = CreateAdministratorRequest;

/// `UpdateAdministratorResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAdministratorResponse {
    /// When the roles changed.
    pub change_date: Timestamp,
}

/// `UpdateAdministrator`: replaces the user's roles on the resource.
pub async fn update_administrator(
    cx: Context<'_>,
    request: UpdateAdministratorRequest,
) -> Result<UpdateAdministratorResponse, Status> {
    let organization = organization(cx).await?;
    let resource = resolve(cx, request.resource, &organization).await?;
    let roles = parse_roles(&request.roles, &resource)?;
    let user = user_by_id(cx, &request.user_id).await?;
    let held: Vec<AdminRole> = cx
        .admin
        .administrator_roles(&user.id)
        .await
        .map_err(admin_status)?
        .iter()
        .filter(|a| Resource::of(a) == resource)
        .map(|a| a.role)
        .collect();
    if held.is_empty() {
        return Err(Status::not_found(format!(
            "{} is not an administrator of this resource",
            user.id
        )));
    }
    let removed: Vec<AdminRole> = held.iter().copied().filter(|r| !roles.contains(r)).collect();
    require_write(cx, &roles, &resource)?;
    require_write(cx, &removed, &resource)?;
    // Grant first, then take: a failure in between leaves the user with more
    // roles, never locked out of the ones it keeps.
    for role in roles.iter().filter(|r| !held.contains(r)) {
        cx.admin
            .add_administrator(&user.username, *role, resource.project())
            .await
            .map_err(admin_status)?;
    }
    for role in removed {
        cx.admin
            .remove_administrator(&user.username, Some(role), resource.project())
            .await
            .map_err(admin_status)?;
    }
    cx.audit("UpdateAdministrator", user.id.as_str());
    Ok(UpdateAdministratorResponse { change_date: Timestamp(cx.admin.now()) })
}

/// `DeleteAdministratorRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteAdministratorRequest {
    /// The service user.
    #[serde(default)]
    pub user_id: String,
    /// Where its roles are taken.
    #[serde(default)]
    pub resource: Option<ResourceType>,
}

/// `DeleteAdministratorResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteAdministratorResponse {
    /// When the roles were taken.
    pub deletion_date: Timestamp,
}

/// `DeleteAdministrator`: takes every role the user holds on the resource (none held
/// is not an error, as in ZITADEL).
pub async fn delete_administrator(
    cx: Context<'_>,
    request: DeleteAdministratorRequest,
) -> Result<DeleteAdministratorResponse, Status> {
    let organization = organization(cx).await?;
    let resource = resolve(cx, request.resource, &organization).await?;
    let user = user_by_id(cx, &request.user_id).await?;
    let held: Vec<AdminRole> = cx
        .admin
        .administrator_roles(&user.id)
        .await
        .map_err(admin_status)?
        .iter()
        .filter(|a| Resource::of(a) == resource)
        .map(|a| a.role)
        .collect();
    require_write(cx, &held, &resource)?;
    for role in &held {
        cx.admin
            .remove_administrator(&user.username, Some(*role), resource.project())
            .await
            .map_err(admin_status)?;
    }
    if !held.is_empty() {
        cx.audit("DeleteAdministrator", user.id.as_str());
    }
    Ok(DeleteAdministratorResponse { deletion_date: Timestamp(cx.admin.now()) })
}

/// `ListAdministratorsRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListAdministratorsRequest {
    /// Paging.
    #[serde(default)]
    pub pagination: ListQuery,
    /// `ADMINISTRATOR_FIELD_NAME_*`.
    #[serde(default)]
    pub sorting_column: Option<String>,
    /// Filters, all of which must match.
    #[serde(default)]
    pub filters: Vec<AdministratorFilter>,
}

/// `AdministratorSearchFilter` (exactly one member set).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdministratorFilter {
    /// By user id.
    #[serde(default)]
    pub in_user_ids_filter: Option<IdsFilter>,
    /// By the user's organization.
    #[serde(default)]
    pub user_organization_id: Option<IdFilter>,
    /// By login name.
    #[serde(default)]
    pub user_preferred_login_name: Option<LoginNameFilter>,
    /// By display name.
    #[serde(default)]
    pub user_display_name: Option<DisplayNameFilter>,
    /// By resource.
    #[serde(default)]
    pub resource: Option<ResourceType>,
    /// By role.
    #[serde(default)]
    pub role: Option<RoleFilter>,
    /// All of these.
    #[serde(default)]
    pub and: Option<FilterList>,
    /// Any of these.
    #[serde(default)]
    pub or: Option<FilterList>,
    /// Not this.
    #[serde(default)]
    pub not: Option<NotFilter>,
    /// By creation date: accepted, not applied (Tessera keeps one date per role).
    #[serde(default)]
    pub creation_date: Option<serde_json::Value>,
    /// By change date: accepted, not applied.
    #[serde(default)]
    pub change_date: Option<serde_json::Value>,
}

/// `UserPreferredLoginNameFilter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginNameFilter {
    /// The login name.
    #[serde(default)]
    pub preferred_login_name: String,
    /// `TEXT_FILTER_METHOD_*`.
    #[serde(default)]
    pub method: Option<String>,
}

/// `RoleFilter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleFilter {
    /// The role.
    #[serde(default)]
    pub role_key: String,
}

/// `AndFilter` / `OrFilter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterList {
    /// The filters.
    #[serde(default)]
    pub queries: Vec<AdministratorFilter>,
}

/// `NotFilter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotFilter {
    /// The filter.
    #[serde(default)]
    pub query: Option<Box<AdministratorFilter>>,
}

/// One administrator entry: a user's roles on one resource.
struct Entry {
    user: ServiceUser,
    resource: Resource,
    roles: Vec<AdminRole>,
    created_at: OffsetDateTime,
}

impl AdministratorFilter {
    fn matches(
        &self,
        entry: &Entry,
        login: &str,
        organization: &Organization,
    ) -> Result<bool, Status> {
        let mut set = 0;
        let mut all = true;
        if let Some(f) = &self.in_user_ids_filter {
            set += 1;
            all &= f.ids.iter().any(|id| id == entry.user.id.as_str());
        }
        if let Some(f) = &self.user_organization_id {
            set += 1;
            all &= f.id == organization.id.as_str();
        }
        if let Some(f) = &self.user_preferred_login_name {
            set += 1;
            all &= text_matches(login, &f.preferred_login_name, f.method.as_deref())?;
        }
        if let Some(f) = &self.user_display_name {
            set += 1;
            all &= text_matches(
                entry.user.display_name.as_str(),
                &f.display_name,
                f.method.as_deref(),
            )?;
        }
        if let Some(f) = &self.resource {
            set += 1;
            all &= match (&entry.resource, f) {
                (Resource::Instance, r) => r.instance == Some(true),
                (Resource::Organization, r) => {
                    r.organization_id.as_deref() == Some(organization.id.as_str())
                }
                (Resource::Project(id), r) => r.project_id.as_deref() == Some(id.as_str()),
            };
        }
        if let Some(f) = &self.role {
            set += 1;
            all &= entry.roles.iter().any(|r| r.as_str() == f.role_key);
        }
        if let Some(f) = &self.and {
            set += 1;
            for q in &f.queries {
                all &= q.matches(entry, login, organization)?;
            }
        }
        if let Some(f) = &self.or {
            set += 1;
            let mut any = false;
            for q in &f.queries {
                any |= q.matches(entry, login, organization)?;
            }
            all &= any;
        }
        if let Some(f) = &self.not {
            set += 1;
            let inner = f.query.as_ref().ok_or_else(|| Status::invalid("not.query is required"))?;
            all &= !inner.matches(entry, login, organization)?;
        }
        if self.creation_date.is_some() || self.change_date.is_some() {
            set += 1;
        }
        if set != 1 {
            return Err(Status::invalid("each filter sets exactly one member"));
        }
        Ok(all)
    }
}

/// `Administrator` as listed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdministratorView {
    /// When the first of the roles was granted.
    pub creation_date: Timestamp,
    /// When the roles last changed.
    pub change_date: Timestamp,
    /// The user.
    pub user: AdministratorUser,
    /// The roles.
    pub roles: Vec<&'static str>,
    /// Held on the instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<bool>,
    /// Held on the organization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<OrganizationRef>,
    /// Held on a project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<ProjectRef>,
}

/// The user of an administrator entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdministratorUser {
    /// Its id.
    pub id: String,
    /// `username@primary-domain`.
    pub preferred_login_name: String,
    /// Its display name.
    pub display_name: String,
    /// Its organization.
    pub organization_id: String,
}

/// A project named in an answer.
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

/// `ListAdministratorsResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAdministratorsResponse {
    /// Paging.
    pub pagination: Pagination,
    /// The page.
    pub administrators: Vec<AdministratorView>,
}

/// `ListAdministrators`: each user's roles per resource.
pub async fn list_administrators(
    cx: Context<'_>,
    request: ListAdministratorsRequest,
) -> Result<ListAdministratorsResponse, Status> {
    cx.principal.require(&Permission::AdminRead)?;
    let organization = organization(cx).await?;
    let mut grouped: BTreeMap<(String, Resource), Entry> = BTreeMap::new();
    for named in cx.admin.administrators().await.map_err(admin_status)? {
        let admin = named.administrator;
        let resource = Resource::of(&admin);
        let key = (admin.user_id.to_string(), resource.clone());
        if let Some(entry) = grouped.get_mut(&key) {
            entry.roles.push(admin.role);
            entry.created_at = entry.created_at.min(admin.created_at);
            continue;
        }
        let user = cx.admin.service_user_by_id(&admin.user_id).await.map_err(admin_status)?;
        grouped.insert(
            key,
            Entry { user, resource, roles: vec![admin.role], created_at: admin.created_at },
        );
    }
    let mut entries = Vec::new();
    for entry in grouped.into_values() {
        let login = format!("{}@{}", entry.user.username, organization.primary_domain);
        let mut keep = true;
        for filter in &request.filters {
            keep &= filter.matches(&entry, &login, &organization)?;
        }
        if keep {
            entries.push(entry);
        }
    }
    match request.sorting_column.as_deref().unwrap_or("ADMINISTRATOR_FIELD_NAME_UNSPECIFIED") {
        "ADMINISTRATOR_FIELD_NAME_UNSPECIFIED" | "ADMINISTRATOR_FIELD_NAME_USER_ID" => {}
        "ADMINISTRATOR_FIELD_NAME_CREATION_DATE" | "ADMINISTRATOR_FIELD_NAME_CHANGE_DATE" => {
            entries.sort_by_key(|e| e.created_at);
        }
        other => return Err(Status::invalid(format!("unknown sorting column {other}"))),
    }
    let (pagination, page) = request.pagination.paginate(entries)?;
    let mut administrators = Vec::with_capacity(page.len());
    for entry in page {
        let (instance, org, project) = match &entry.resource {
            Resource::Instance => (Some(true), None, None),
            Resource::Organization => (
                None,
                Some(OrganizationRef {
                    id: organization.id.to_string(),
                    name: organization.name.to_string(),
                }),
                None,
            ),
            Resource::Project(id) => {
                let name =
                    cx.admin.project(id).await.map(|p| p.name.to_string()).unwrap_or_default();
                (
                    None,
                    None,
                    Some(ProjectRef {
                        id: id.to_string(),
                        name,
                        organization_id: organization.id.to_string(),
                    }),
                )
            }
        };
        administrators.push(AdministratorView {
            creation_date: Timestamp(entry.created_at),
            change_date: Timestamp(entry.created_at),
            user: AdministratorUser {
                id: entry.user.id.to_string(),
                preferred_login_name: format!(
                    "{}@{}",
                    entry.user.username, organization.primary_domain
                ),
                display_name: entry.user.display_name.to_string(),
                organization_id: organization.id.to_string(),
            },
            roles: entry.roles.iter().map(|r| r.as_str()).collect(),
            instance,
            organization: org,
            project,
        });
    }
    Ok(ListAdministratorsResponse { pagination, administrators })
}
