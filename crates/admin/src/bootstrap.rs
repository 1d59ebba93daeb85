//! Bootstrap documents: the service users, projects, API apps, grants and
//! administrators a store should hold, applied idempotently, whole or not at all.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tessera_store::{
    AccessTokenType, AdminRole, Administrator, ApiApp, ApiAppPatch, AppId, ClientId, ClientSecret,
    Credentials, DisplayName, Project, ProjectId, RandomError, RoleGrant, RoleKey, SecretDigest,
    ServiceUser, ServiceUserPatch, TokenLifetime, Username,
};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::{Admin, AdminError};

/// A bootstrap document, as the reference server reads it from `--bootstrap FILE`:
///
/// ```json
/// {
///   "service_users": [
///     {"username": "billing-job", "client_secret": "<at least 32 characters>",
///      "display_name": "Billing job", "access_token_type": "jwt", "token_lifetime_secs": 3600}
///   ],
///   "projects": [{"id": "orders", "name": "Orders"}],
///   "api_apps": [{"project": "orders", "client_id": "orders-api", "client_secret": "<at least 32 characters>"}],
///   "grants": [{"username": "billing-job", "project": "orders", "role": "reader"}],
///   "administrators": [{"username": "billing-job", "role": "PROJECT_OWNER", "project": "orders"}]
/// }
/// ```
///
/// Every list may be left out; an unknown field anywhere is a deserialization error.
/// The values are checked by [`Admin::apply_bootstrap`], which names the entry at
/// fault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapDocument {
    /// Service users, by username.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_users: Vec<BootstrapServiceUser>,
    /// Projects, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<BootstrapProject>,
    /// API apps, by client ID.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_apps: Vec<BootstrapApiApp>,
    /// Role grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<BootstrapGrant>,
    /// Administrator roles: who may use the management API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub administrators: Vec<BootstrapAdministrator>,
}

/// A service user of a [`BootstrapDocument`]. A field left out takes its default
/// value, also for a user that exists with another value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapServiceUser {
    /// The username, also the client ID.
    pub username: String,
    /// The client secret: at least 32 characters.
    pub client_secret: ProvidedSecret,
    /// Human-readable name (default: the username).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `opaque` (default) or `jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_type: Option<AccessTokenType>,
    /// Access token lifetime in seconds (default 43200, 12 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_lifetime_secs: Option<u64>,
    /// Whether the user may authenticate (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A project of a [`BootstrapDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapProject {
    /// The project id (not `zitadel`, which is reserved).
    pub id: String,
    /// Human-readable name.
    pub name: String,
}

/// An API app of a [`BootstrapDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapApiApp {
    /// The project it belongs to: in the document, or stored already.
    pub project: String,
    /// Its client ID.
    pub client_id: String,
    /// Its client secret: at least 32 characters.
    pub client_secret: ProvidedSecret,
    /// Human-readable name (default: the client ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether the app may authenticate (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A role grant of a [`BootstrapDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapGrant {
    /// The service user: in the document, or stored already.
    pub username: String,
    /// The project: in the document, or stored already.
    pub project: String,
    /// The role.
    pub role: String,
}

/// An administrator role of a [`BootstrapDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapAdministrator {
    /// The service user: in the document, or stored already.
    pub username: String,
    /// `IAM_OWNER`, `IAM_OWNER_VIEWER`, `ORG_OWNER`, `ORG_USER_MANAGER` or
    /// `PROJECT_OWNER`.
    pub role: String,
    /// The project of a `PROJECT_OWNER` (left out: every project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// A client secret chosen by an operator, as written in a bootstrap document; checked
/// when the document is applied. `Debug` does not print it, and its memory is zeroed
/// on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct ProvidedSecret(Zeroizing<String>);

impl ProvidedSecret {
    /// Wraps `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Zeroizing::new(secret.into()))
    }

    /// The secret in clear.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ProvidedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProvidedSecret([redacted])")
    }
}

impl Serialize for ProvidedSecret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ProvidedSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// What applying a [`BootstrapDocument`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Applied {
    /// Records created: service users, projects, API apps, grants and
    /// administrator roles.
    pub created: usize,
    /// Records changed to match the document.
    pub updated: usize,
}

/// Bootstrap documents.
impl Admin {
    /// Makes the store hold what `document` lists: creates what is missing and changes
    /// what differs; records the document does not list are left alone. Applying the
    /// same document again changes nothing.
    ///
    /// Every entry is checked before anything is written, so a document with a bad
    /// entry changes nothing: [`AdminError::Bootstrap`] names the entry (a secret
    /// shorter than 32 characters, an invalid name, a reference to a project or user
    /// that is neither in the document nor stored, an API app whose client ID is a
    /// service user's, or that exists in another project).
    ///
    /// A secret that differs from the stored one replaces it at once, dropping any
    /// secret kept for a grace period; one that matches leaves the stored secrets alone.
    pub async fn apply_bootstrap(
        &self,
        document: &BootstrapDocument,
    ) -> Result<Applied, AdminError> {
        let now = self.now();
        let mut desired = Vec::with_capacity(document.service_users.len());
        for (i, entry) in document.service_users.iter().enumerate() {
            let label = format!("service_users[{i}] ({})", entry.username);
            desired.push(desired_user(entry, now).map_err(at(label))?);
        }
        let projects = checked_projects(document, now)?;
        let apps = self.checked_apps(document, &projects, now).await?;
        let grants = self.checked_grants(document, &desired, &projects).await?;
        let administrators = self.checked_administrators(document, &desired, &projects).await?;

        let store = self.store.as_ref();
        let mut applied = Applied::default();
        for project in &projects {
            match store.project_by_id(&project.id).await? {
                None => {
                    store.create_project(project).await?;
                    applied.created += 1;
                }
                Some(existing) if existing.name != project.name => {
                    store.rename_project(&project.id, &project.name).await?;
                    applied.updated += 1;
                }
                Some(_) => {}
            }
        }
        for Desired { user, secret } in desired {
            match store.service_user_by_username(&user.username).await? {
                None => {
                    let mut user = user;
                    user.credentials = Credentials::new(SecretDigest::of(&secret)?);
                    store.create_service_user(&user).await?;
                    applied.created += 1;
                }
                Some(existing) => {
                    let patch = ServiceUserPatch {
                        display_name: Some(user.display_name),
                        access_token_type: Some(user.access_token_type),
                        token_lifetime: Some(user.token_lifetime),
                        enabled: Some(user.enabled),
                        secret: changed_secret(existing.credentials.secret, &secret)?,
                        keep_previous_until: None,
                        ..ServiceUserPatch::at(now)
                    };
                    let mut expected = existing.clone();
                    expected.apply(&patch);
                    expected.updated_at = existing.updated_at;
                    if expected != existing {
                        store.update_service_user(&existing.username, &patch).await?;
                        applied.updated += 1;
                    }
                }
            }
        }
        for (app, existing, secret) in apps {
            match existing {
                None => {
                    store.create_api_app(&app).await?;
                    applied.created += 1;
                }
                Some(existing) => {
                    let patch = ApiAppPatch {
                        name: Some(app.name.clone()),
                        enabled: Some(app.enabled),
                        secret: changed_secret(existing.credentials.secret, &secret)?,
                        keep_previous_until: None,
                        updated_at: now,
                    };
                    let mut expected = existing.clone();
                    expected.apply(&patch);
                    expected.updated_at = existing.updated_at;
                    if expected != existing {
                        store.update_api_app(&app.client_id, &patch).await?;
                        applied.updated += 1;
                    }
                }
            }
        }
        for (username, project, role) in grants {
            let user = self.service_user(&username).await?;
            if store.add_grant(&RoleGrant { user_id: user.id, project_id: project, role }).await? {
                applied.created += 1;
            }
        }
        for (username, role, project) in administrators {
            let user = self.service_user(&username).await?;
            let admin = Administrator::new(user.id, role, project, now);
            if store.add_administrator(&admin).await? {
                applied.created += 1;
            }
        }
        Ok(applied)
    }

    /// The administrator roles of `document`, checked.
    async fn checked_administrators(
        &self,
        document: &BootstrapDocument,
        users: &[Desired],
        projects: &[Project],
    ) -> Result<Vec<(Username, AdminRole, Option<ProjectId>)>, AdminError> {
        let mut list = Vec::with_capacity(document.administrators.len());
        for (i, entry) in document.administrators.iter().enumerate() {
            let fail = at(format!("administrators[{i}] ({} {})", entry.username, entry.role));
            let username = parse_username(&entry.username).map_err(&fail)?;
            let role: AdminRole = entry.role.parse().map_err(|_| {
                fail(format!(
                    "unknown administrator role {:?} (roles: IAM_OWNER, IAM_OWNER_VIEWER, \
                     ORG_OWNER, ORG_USER_MANAGER, PROJECT_OWNER)",
                    entry.role
                ))
            })?;
            let project =
                entry.project.as_deref().map(parse_project_id).transpose().map_err(&fail)?;
            if project.is_some() && !role.is_project_role() {
                return Err(fail(format!("{role} is not held on a project")));
            }
            let user_known = users.iter().any(|d| d.user.username == username)
                || self.store.service_user_by_username(&username).await?.is_some();
            if !user_known {
                return Err(fail(format!("service user {username} does not exist")));
            }
            if let Some(project) = &project
                && !self.project_known(projects, project).await?
            {
                return Err(fail(format!("project {project} does not exist")));
            }
            list.push((username, role, project));
        }
        Ok(list)
    }

    /// The API apps of `document`, checked, each with the stored app of its client ID
    /// and the document's secret.
    async fn checked_apps(
        &self,
        document: &BootstrapDocument,
        projects: &[Project],
        now: OffsetDateTime,
    ) -> Result<Vec<(ApiApp, Option<ApiApp>, ClientSecret)>, AdminError> {
        let mut apps = Vec::with_capacity(document.api_apps.len());
        for (i, entry) in document.api_apps.iter().enumerate() {
            let fail = at(format!("api_apps[{i}] ({})", entry.client_id));
            let client_id = parse_client_id(&entry.client_id).map_err(&fail)?;
            let project_id = parse_project_id(&entry.project).map_err(&fail)?;
            if !self.project_known(projects, &project_id).await? {
                return Err(fail(format!("project {project_id} does not exist")));
            }
            let secret = provided(&entry.client_secret).map_err(&fail)?;
            let display = parse_display_name(entry.name.as_deref().unwrap_or(client_id.as_str()))
                .map_err(&fail)?;
            let existing = self.store.api_app_by_client_id(&client_id).await?;
            if let Some(existing) = &existing
                && existing.project_id != project_id
            {
                return Err(fail(format!(
                    "the app exists in project {}, not {project_id}",
                    existing.project_id
                )));
            }
            let user_clash = match Username::new(client_id.as_str()) {
                Ok(u) => {
                    document.service_users.iter().any(|s| s.username == u.as_str())
                        || self.store.service_user_by_username(&u).await?.is_some()
                }
                Err(_) => false,
            };
            if user_clash {
                return Err(fail("a service user has this client ID".to_owned()));
            }
            let app_id = match &existing {
                Some(existing) => existing.app_id.clone(),
                None => AppId::generate()?,
            };
            let app = ApiApp {
                client_id,
                app_id,
                project_id,
                name: display,
                credentials: Credentials::new(SecretDigest::of(&secret)?),
                enabled: entry.enabled.unwrap_or(true),
                created_at: now,
                updated_at: now,
            };
            apps.push((app, existing, secret));
        }
        Ok(apps)
    }

    /// The grants of `document`, checked.
    async fn checked_grants(
        &self,
        document: &BootstrapDocument,
        users: &[Desired],
        projects: &[Project],
    ) -> Result<Vec<(Username, ProjectId, RoleKey)>, AdminError> {
        let mut grants = Vec::with_capacity(document.grants.len());
        for (i, entry) in document.grants.iter().enumerate() {
            let fail =
                at(format!("grants[{i}] ({} {} {})", entry.username, entry.project, entry.role));
            let username = parse_username(&entry.username).map_err(&fail)?;
            let project = parse_project_id(&entry.project).map_err(&fail)?;
            let role = RoleKey::new(&entry.role)
                .map_err(|e| fail(format!("invalid role {:?}: {e}", entry.role)))?;
            let user_known = users.iter().any(|d| d.user.username == username)
                || self.store.service_user_by_username(&username).await?.is_some();
            if !user_known {
                return Err(fail(format!("service user {username} does not exist")));
            }
            if !self.project_known(projects, &project).await? {
                return Err(fail(format!("project {project} does not exist")));
            }
            grants.push((username, project, role));
        }
        Ok(grants)
    }

    /// Whether project `id` is in `projects` (of the document) or stored.
    async fn project_known(
        &self,
        projects: &[Project],
        id: &ProjectId,
    ) -> Result<bool, AdminError> {
        Ok(projects.iter().any(|p| &p.id == id) || self.store.project_by_id(id).await?.is_some())
    }
}

/// A service user as the document wants it, and its secret.
struct Desired {
    user: ServiceUser,
    secret: ClientSecret,
}

/// The secret a bootstrap patch sets: a digest of the document's, when it is not the
/// stored one. A secret that differs replaces the stored one at once, dropping any
/// previous secret; one that matches is left out of the patch, so that a previous
/// secret kept by a regeneration with a grace period is left alone. (Digests are
/// salted, so the stored digest is checked against the secret, not compared with a
/// new digest.)
fn changed_secret(
    stored: Option<SecretDigest>,
    file: &ClientSecret,
) -> Result<Option<SecretDigest>, RandomError> {
    if stored.is_some_and(|digest| digest.verify(file.expose())) {
        return Ok(None);
    }
    SecretDigest::of(file).map(Some)
}

/// The projects of `document`, checked.
fn checked_projects(
    document: &BootstrapDocument,
    now: OffsetDateTime,
) -> Result<Vec<Project>, AdminError> {
    let mut projects: Vec<Project> = Vec::with_capacity(document.projects.len());
    for (i, entry) in document.projects.iter().enumerate() {
        let fail = at(format!("projects[{i}] ({})", entry.id));
        let id = parse_project_id(&entry.id).map_err(&fail)?;
        if id.is_reserved() {
            return Err(fail("the id zitadel is reserved for the server's own API".to_owned()));
        }
        if projects.iter().any(|p| p.id == id) {
            return Err(fail("listed twice".to_owned()));
        }
        let name = parse_display_name(&entry.name).map_err(&fail)?;
        projects.push(Project::new(id, name, now));
    }
    Ok(projects)
}

/// The user `entry` describes, checked.
fn desired_user(entry: &BootstrapServiceUser, now: OffsetDateTime) -> Result<Desired, String> {
    let username = parse_username(&entry.username)?;
    let secret = provided(&entry.client_secret)?;
    let mut user = ServiceUser::new(username, now).map_err(|e| e.to_string())?;
    user.display_name = match &entry.display_name {
        Some(name) => parse_display_name(name)?,
        None => DisplayName::from_username(&user.username),
    };
    user.access_token_type = entry.access_token_type.unwrap_or_default();
    user.token_lifetime = match entry.token_lifetime_secs {
        Some(secs) => {
            TokenLifetime::from_secs(secs).map_err(|e| format!("invalid token lifetime: {e}"))?
        }
        None => TokenLifetime::default(),
    };
    user.enabled = entry.enabled.unwrap_or(true);
    Ok(Desired { user, secret })
}

/// Turns a reason into the [`AdminError::Bootstrap`] of the entry `label`.
fn at(label: String) -> impl Fn(String) -> AdminError {
    move |reason| AdminError::Bootstrap { entry: label.clone(), reason }
}

fn provided(secret: &ProvidedSecret) -> Result<ClientSecret, String> {
    ClientSecret::provided(secret.expose()).map_err(|e| format!("client_secret: {e}"))
}

fn parse_username(value: &str) -> Result<Username, String> {
    Username::new(value).map_err(|e| format!("invalid username {value:?}: {e}"))
}

fn parse_display_name(value: &str) -> Result<DisplayName, String> {
    DisplayName::new(value).map_err(|e| format!("invalid display name: {e}"))
}

fn parse_project_id(value: &str) -> Result<ProjectId, String> {
    ProjectId::new(value).map_err(|e| format!("invalid project id {value:?}: {e}"))
}

fn parse_client_id(value: &str) -> Result<ClientId, String> {
    ClientId::new(value).map_err(|e| format!("invalid client ID {value:?}: {e}"))
}
