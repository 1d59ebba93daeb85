use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::whole_seconds;
use crate::credentials::Credentials;
use crate::ids::{AppId, ClientId, ProjectId, RoleKey, UserId};
use crate::organization::Organization;
use crate::records::DisplayName;
use crate::secret::SecretDigest;

/// A project: an API (or a group of them) that tokens can name in their audience.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Project {
    /// Unique id; `zitadel` is the server's own API and always exists.
    pub id: ProjectId,
    /// Human-readable name.
    pub name: DisplayName,
    /// When the project was created (whole seconds).
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
    /// Its client secret (the digest) and the previous one, kept for a grace
    /// period after a rotation. Serialized flat, as the record's own fields `secret`
    /// and `previous_secret`.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub credentials: Credentials,
    /// A disabled app cannot authenticate.
    pub enabled: bool,
    /// When it was created (whole seconds).
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub created_at: OffsetDateTime,
    /// When it last changed (whole seconds).
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub updated_at: OffsetDateTime,
}

/// A change to an API app; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ApiAppPatch {
    /// New name.
    #[cfg_attr(feature = "serde", serde(default))]
    pub name: Option<DisplayName>,
    /// Enable or disable.
    #[cfg_attr(feature = "serde", serde(default))]
    pub enabled: Option<bool>,
    /// Replace the secret ([`Credentials::rotate`]). Any previous secret is
    /// dropped, and the one replaced stops working at once unless
    /// [`keep_previous_until`](Self::keep_previous_until) is set.
    #[cfg_attr(feature = "serde", serde(default))]
    pub secret: Option<SecretDigest>,
    /// With [`secret`](Self::secret): keep the secret being replaced as the
    /// [`previous`](Credentials::previous) secret, accepted until this time (whole
    /// seconds). At most one previous secret is kept: an older one is dropped.
    /// Ignored without `secret`.
    #[cfg_attr(feature = "serde", serde(default, with = "time::serde::rfc3339::option"))]
    pub keep_previous_until: Option<OffsetDateTime>,
    /// The time of the change.
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
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
            self.credentials.rotate(v, patch.keep_previous_until);
        }
        self.updated_at = whole_seconds(patch.updated_at);
    }
}

/// A role defined in a project: the key that grants ([`RoleGrant`]) and role
/// scopes name, with a human-readable name and an optional group to show it under.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ProjectRole {
    /// The project it belongs to.
    pub project_id: ProjectId,
    /// Its key, unique within the project.
    pub key: RoleKey,
    /// Human-readable name.
    pub display_name: DisplayName,
    /// The group it is shown under, if any.
    #[cfg_attr(feature = "serde", serde(default))]
    pub group: Option<DisplayName>,
    /// When it was created (whole seconds).
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub created_at: OffsetDateTime,
    /// When it last changed (whole seconds).
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub updated_at: OffsetDateTime,
}

impl ProjectRole {
    /// The role `key` of `project_id`, created (and last changed) at `now`.
    pub fn new(
        project_id: ProjectId,
        key: RoleKey,
        display_name: DisplayName,
        group: Option<DisplayName>,
        now: OffsetDateTime,
    ) -> Self {
        let now = whole_seconds(now);
        Self { project_id, key, display_name, group, created_at: now, updated_at: now }
    }
}

/// A role of a project granted to a service user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
