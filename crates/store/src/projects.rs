use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::whole_seconds;
use crate::error::StoreError;
use crate::ids::{AppId, ClientId, ProjectId, RoleKey, UserId};
use crate::organization::Organization;
use crate::records::{DisplayName, PreviousSecret};
use crate::secret::{SecretDigest, verify_secrets};

/// A project: an API (or a group of them) that tokens can name in their audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Unique id; `zitadel` is the server's own API and always exists.
    pub id: ProjectId,
    /// Human-readable name.
    pub name: DisplayName,
    /// When the project was created (whole seconds).
    pub created_at: OffsetDateTime,
}

impl Project {
    /// A project with `id` and `name`, created at `now`.
    pub fn new(id: ProjectId, name: DisplayName, now: OffsetDateTime) -> Self {
        Self { id, name, created_at: whole_seconds(now) }
    }

    /// The reserved project of the server's own API, present in every store.
    pub fn reserved() -> Self {
        Self {
            id: ProjectId::reserved(),
            name: DisplayName::from_trusted("Tessera API"),
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }
}

/// An API of a project that introspects and revokes tokens with its own client ID
/// and secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiApp {
    /// Its OAuth client ID, unique among API apps and service users.
    pub client_id: ClientId,
    /// Its app id, distinct from the client ID (ZITADEL's `appId`), unique among API
    /// apps; generated when the app is created.
    pub app_id: AppId,
    /// The project it belongs to: tokens whose audience holds it are active for it.
    pub project_id: ProjectId,
    /// Human-readable name.
    pub name: DisplayName,
    /// Digest of its client secret.
    pub secret: Option<SecretDigest>,
    /// The secret it had before the current one, still accepted until its expiry
    /// (a rotation with a grace period); `None` when the old secret stopped at once.
    pub previous_secret: Option<PreviousSecret>,
    /// A disabled app cannot authenticate.
    pub enabled: bool,
    /// When it was created (whole seconds).
    pub created_at: OffsetDateTime,
    /// When it last changed (whole seconds).
    pub updated_at: OffsetDateTime,
}

/// A change to an API app; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiAppPatch {
    /// New name.
    pub name: Option<DisplayName>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// Replace the secret. Any previous secret is dropped, and the one replaced
    /// stops working at once unless [`keep_previous_until`](Self::keep_previous_until)
    /// is set.
    pub secret: Option<SecretDigest>,
    /// With [`secret`](Self::secret): keep the secret being replaced as the
    /// [`previous_secret`](ApiApp::previous_secret), accepted until this time (whole
    /// seconds). At most one previous secret is kept: an older one is dropped.
    /// Ignored without `secret`.
    pub keep_previous_until: Option<OffsetDateTime>,
    /// The time of the change.
    pub updated_at: OffsetDateTime,
}

impl ApiAppPatch {
    /// A patch that changes nothing but the update time.
    pub fn at(updated_at: OffsetDateTime) -> Self {
        Self { name: None, enabled: None, secret: None, keep_previous_until: None, updated_at }
    }
}

impl ApiApp {
    /// Applies a patch in place (as a backend does when it stores one).
    pub fn apply(&mut self, patch: &ApiAppPatch) {
        if let Some(v) = &patch.name {
            self.name = v.clone();
        }
        if let Some(v) = patch.enabled {
            self.enabled = v;
        }
        if let Some(v) = patch.secret {
            self.previous_secret =
                PreviousSecret::after_rotation(self.secret.replace(v), patch.keep_previous_until);
        }
        self.updated_at = whole_seconds(patch.updated_at);
    }

    /// Whether `presented` is the app's current secret, or its previous secret and
    /// `now` is before that one's expiry; the work is the same whichever matches
    /// (see [`verify_secrets`]). Whether the app is enabled is not checked here.
    pub fn secret_matches(&self, presented: &str, now: OffsetDateTime) -> bool {
        verify_secrets(self.secret.as_ref(), self.previous_secret.as_ref(), presented, now)
    }
}

/// A role of a project granted to a service user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleGrant {
    /// The service user.
    pub user_id: UserId,
    /// The project.
    pub project_id: ProjectId,
    /// The role.
    pub role: RoleKey,
}

/// The roles a token carries, as the `urn:zitadel:iam:org:project:roles` claim:
/// role → organization id → organization primary domain, as ZITADEL writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoleClaims(pub BTreeMap<String, BTreeMap<String, String>>);

impl RoleClaims {
    /// Whether the token carries no role.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `role`, held in the organization `org`: as ZITADEL writes the claim,
    /// role → organization id → the organization's primary domain.
    pub fn insert(&mut self, role: &RoleKey, org: &Organization) {
        self.0
            .entry(role.to_string())
            .or_default()
            .insert(org.id.to_string(), org.primary_domain.to_string());
    }
}

/// Storage of projects, API apps and role grants.
///
/// Contract, checked by the conformance suite:
///
/// - The reserved project `zitadel` exists in every store and cannot be created again.
/// - Project ids are unique ([`StoreError::Conflict`]).
/// - An API app's client ID is unique among API apps *and* service users: creating
///   one that collides is [`StoreError::Conflict`], and so is creating a service user
///   whose username is an API app's client ID. An API app of a missing project is
///   [`StoreError::NotFound`].
/// - Updating an API app is atomic and visible at once (a replaced secret stops
///   working at once, unless the patch keeps it as the previous secret until a
///   given time; at most one previous secret is kept, with its expiry in whole
///   seconds).
/// - Adding a grant that exists already changes nothing; a grant for a missing user or
///   project is [`StoreError::NotFound`]. Deleting a user deletes its grants.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// Stores a new project.
    async fn create_project(&self, project: &Project) -> Result<(), StoreError>;

    /// Renames a project; [`StoreError::NotFound`] when it does not exist.
    async fn rename_project(&self, id: &ProjectId, name: &DisplayName) -> Result<(), StoreError>;

    /// The project with this id.
    async fn project_by_id(&self, id: &ProjectId) -> Result<Option<Project>, StoreError>;

    /// Every project, ordered by id.
    async fn list_projects(&self) -> Result<Vec<Project>, StoreError>;

    /// Stores a new API app.
    async fn create_api_app(&self, app: &ApiApp) -> Result<(), StoreError>;

    /// The API app with this client ID.
    async fn api_app_by_client_id(
        &self,
        client_id: &ClientId,
    ) -> Result<Option<ApiApp>, StoreError>;

    /// Every API app, ordered by client ID.
    async fn list_api_apps(&self) -> Result<Vec<ApiApp>, StoreError>;

    /// Applies `patch` atomically and returns the app as stored afterwards.
    async fn update_api_app(
        &self,
        client_id: &ClientId,
        patch: &ApiAppPatch,
    ) -> Result<ApiApp, StoreError>;

    /// Deletes an API app and its client keys.
    async fn delete_api_app(&self, client_id: &ClientId) -> Result<(), StoreError>;

    /// Grants a role; returns whether the grant is new.
    async fn add_grant(&self, grant: &RoleGrant) -> Result<bool, StoreError>;

    /// Removes a grant; returns whether it existed.
    async fn remove_grant(&self, grant: &RoleGrant) -> Result<bool, StoreError>;

    /// The grants of a service user, ordered by project, then role.
    async fn grants_of_user(&self, user_id: &UserId) -> Result<Vec<RoleGrant>, StoreError>;
}
