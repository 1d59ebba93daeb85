//! Who calls (a service user with an active token for the server's own API) and what
//! its administrator roles allow.

use http::HeaderMap;
use tessera_admin::Admin;
use tessera_endpoint::{ErrorCode, Issuer, bearer_token};
use tessera_store::{AdminRole, Administrator, ProjectId, ServiceUser};

use crate::connect::{Code, Status};

/// What a call needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    /// Read service users, their keys and tokens.
    UserRead,
    /// Create, change and delete service users, their secrets, keys and tokens.
    UserWrite,
    /// Read a project (`None`: projects in general, such as a listing).
    ProjectRead(Option<ProjectId>),
    /// Change a project, its roles, apps and authorizations (`None`: create one).
    ProjectWrite(Option<ProjectId>),
    /// Read the role grants (authorizations) of a project (`None`: a listing).
    AuthorizationRead(Option<ProjectId>),
    /// Grant or take a project's roles.
    AuthorizationWrite(ProjectId),
    /// Read the administrators.
    AdminRead,
    /// Grant or take a role (a project role: on this project).
    AdminWrite(AdminRole, Option<ProjectId>),
}

/// The caller of a management call.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The service user behind the token.
    pub user: ServiceUser,
    /// Its administrator roles.
    pub roles: Vec<Administrator>,
}

impl Principal {
    /// Whether the caller's roles allow `permission`.
    pub fn may(&self, permission: &Permission) -> bool {
        self.roles.iter().any(|held| allows(held, permission))
    }

    /// `permission_denied` unless the caller's roles allow `permission`.
    pub fn require(&self, permission: &Permission) -> Result<(), Status> {
        if self.may(permission) {
            Ok(())
        } else {
            Err(Status::denied(format!(
                "{} holds no administrator role that allows this",
                self.user.username
            )))
        }
    }

    /// Whether the caller may see project `id` (for filtering listings).
    pub fn may_read_project(&self, id: &ProjectId) -> bool {
        self.may(&Permission::ProjectRead(Some(id.clone())))
    }

    /// Whether the caller may see the role grants of project `id`.
    pub fn may_read_authorizations(&self, id: &ProjectId) -> bool {
        self.may(&Permission::AuthorizationRead(Some(id.clone())))
    }
}

/// The permission table (docs/management-api.md).
fn allows(held: &Administrator, permission: &Permission) -> bool {
    use Permission as P;
    let on_project = |project: &Option<ProjectId>| match (&held.project_id, project) {
        (None, _) => true,
        (Some(mine), Some(theirs)) => mine == theirs,
        (Some(_), None) => false,
    };
    match held.role {
        AdminRole::IamOwner => true,
        AdminRole::IamOwnerViewer => matches!(
            permission,
            P::UserRead | P::ProjectRead(_) | P::AuthorizationRead(_) | P::AdminRead
        ),
        AdminRole::OrgOwner => match permission {
            P::AdminWrite(role, _) => {
                !matches!(role, AdminRole::IamOwner | AdminRole::IamOwnerViewer)
            }
            _ => true,
        },
        AdminRole::OrgUserManager => matches!(
            permission,
            P::UserRead
                | P::UserWrite
                | P::ProjectRead(_)
                | P::AuthorizationRead(_)
                | P::AuthorizationWrite(_)
        ),
        AdminRole::ProjectOwner => match permission {
            P::UserRead => true,
            // A listing: each project in it is checked on its own.
            P::ProjectRead(None) => true,
            P::ProjectRead(project @ Some(_))
            | P::ProjectWrite(project @ Some(_))
            | P::AuthorizationRead(project @ Some(_)) => on_project(project),
            P::AuthorizationRead(None) => true,
            P::AuthorizationWrite(project) => on_project(&Some(project.clone())),
            // Creating a project is the organization's business.
            P::ProjectWrite(None) => held.project_id.is_none(),
            // The owners of a project manage its owners.
            P::AdminWrite(AdminRole::ProjectOwner, project @ Some(_)) => on_project(project),
            P::UserWrite | P::AdminRead | P::AdminWrite(..) => false,
        },
    }
}

/// Authenticates the caller: a bearer token of this server, active, whose audience
/// holds the server's own API (the `zitadel` project), of an enabled service user
/// that holds an administrator role.
pub(crate) async fn authenticate(
    issuer: &Issuer,
    admin: &Admin,
    headers: &HeaderMap,
) -> Result<Principal, Status> {
    let token = bearer_token(headers)
        .map_err(|_| Status::new(Code::Unauthenticated, "missing or malformed bearer token"))?;
    let active = issuer
        .validate_token(token)
        .await
        .map_err(|e| match e.code() {
            // The store could not be read: retrying may succeed.
            ErrorCode::TemporarilyUnavailable => Status::new(Code::Unavailable, e.description()),
            _ => Status::new(Code::Internal, "the server could not complete the call"),
        })?
        .ok_or_else(|| Status::new(Code::Unauthenticated, "the token is not active"))?;
    let reserved = ProjectId::reserved();
    if !active.audience.iter().any(|a| a == reserved.as_str()) {
        return Err(Status::new(
            Code::Unauthenticated,
            "the token's audience lacks the management API: request the scope \
             urn:zitadel:iam:org:project:id:zitadel:aud",
        ));
    }
    let roles = admin.administrator_roles(&active.user.id).await.map_err(crate::admin_status)?;
    if roles.is_empty() {
        return Err(Status::denied(format!("{} is not an administrator", active.user.username)));
    }
    Ok(Principal { user: active.user, roles })
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use tessera_store::{UserId, Username};

    use super::*;

    fn principal(roles: &[(AdminRole, Option<&str>)]) -> Principal {
        let now = OffsetDateTime::UNIX_EPOCH;
        let user = ServiceUser::new(Username::new("ops").expect("name"), now).expect("user");
        let id = UserId::new("1").expect("id");
        let roles = roles
            .iter()
            .map(|(role, project)| {
                let project = project.map(|p| ProjectId::new(p).expect("project id"));
                Administrator::new(id.clone(), *role, project, now)
            })
            .collect();
        Principal { user, roles }
    }

    fn project(id: &str) -> Option<ProjectId> {
        Some(ProjectId::new(id).expect("project id"))
    }

    #[test]
    fn the_permission_table_holds() {
        use Permission as P;
        let iam = principal(&[(AdminRole::IamOwner, None)]);
        let viewer = principal(&[(AdminRole::IamOwnerViewer, None)]);
        let org = principal(&[(AdminRole::OrgOwner, None)]);
        let users = principal(&[(AdminRole::OrgUserManager, None)]);
        let billing = principal(&[(AdminRole::ProjectOwner, Some("billing"))]);
        let projects = principal(&[(AdminRole::ProjectOwner, None)]);

        assert!(iam.may(&P::AdminWrite(AdminRole::IamOwner, None)));
        assert!(viewer.may(&P::UserRead) && viewer.may(&P::AdminRead));
        assert!(!viewer.may(&P::UserWrite) && !viewer.may(&P::ProjectWrite(None)));
        assert!(org.may(&P::UserWrite) && org.may(&P::AdminWrite(AdminRole::ProjectOwner, None)));
        assert!(!org.may(&P::AdminWrite(AdminRole::IamOwner, None)));
        assert!(billing.may(&P::AdminWrite(AdminRole::ProjectOwner, project("billing"))));
        assert!(!billing.may(&P::AdminWrite(AdminRole::ProjectOwner, project("orders"))));
        assert!(!billing.may(&P::AdminWrite(AdminRole::OrgOwner, None)));
        assert!(users.may(&P::UserWrite) && users.may(&P::ProjectRead(project("billing"))));
        assert!(!users.may(&P::ProjectWrite(project("billing"))) && !users.may(&P::AdminRead));
        let billing_id = ProjectId::new("billing").expect("project id");
        assert!(users.may(&P::AuthorizationWrite(billing_id.clone())));
        assert!(billing.may(&P::AuthorizationWrite(billing_id.clone())));
        assert!(!billing.may(&P::AuthorizationWrite(ProjectId::new("orders").expect("id"))));
        assert!(!viewer.may(&P::AuthorizationWrite(billing_id)));
        assert!(billing.may(&P::ProjectWrite(project("billing"))));
        assert!(!billing.may(&P::ProjectWrite(project("orders"))));
        assert!(!billing.may(&P::ProjectRead(project("orders"))));
        assert!(!billing.may(&P::ProjectWrite(None)) && !billing.may(&P::UserWrite));
        assert!(
            projects.may(&P::ProjectWrite(None)) && projects.may(&P::ProjectWrite(project("x")))
        );
        assert!(
            principal(&[]).require(&P::UserRead).is_err_and(|s| s.code == Code::PermissionDenied)
        );
    }
}
