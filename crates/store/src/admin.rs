//! The administration traits: creating, changing, listing and deleting what the
//! issuing core reads.
//!
//! Each is separate from [`IssuingStore`](crate::IssuingStore), so that a backend
//! for issuing alone needs none of them; a complete backend ([`Store`](crate::Store))
//! implements them all. Lookups of single records (a user by name, an API app by
//! client ID, a project by id, a client key by id, the organization) belong to the
//! issuing side and are not repeated here.
//!
//! Common to all of them, checked by the conformance suite:
//!
//! - Every change is atomic and visible to every reader, in every process sharing
//!   the backend, once the method returns.
//! - A patch ([`ServiceUserPatch`], [`ApiAppPatch`]) is applied to the record as
//!   stored when the change runs, never to a copy read earlier: of concurrent
//!   patches of one record (through one instance or several), none is lost, as if
//!   they ran one after the other. The record after a patch is what
//!   [`ServiceUser::apply`] or [`ApiApp::apply`] makes of the record before it.
//! - Changing or deleting a record that does not exist is [`StoreError::NotFound`];
//!   creating one whose unique key is taken is [`StoreError::Conflict`] and changes
//!   nothing.
//! - Stored times are whole seconds (a fraction is dropped).

use async_trait::async_trait;

use crate::client_keys::{ClientKey, KeyOwner};
use crate::error::StoreError;
use crate::ids::{ClientId, Domain, ProjectId, Username};
use crate::organization::Organization;
use crate::projects::{ApiApp, ApiAppPatch, Project, RoleGrant};
use crate::records::{DisplayName, ServiceUser, ServiceUserPatch};

/// Administration of service users.
///
/// Contract, checked by the conformance suite (besides the common one of the
/// [module](crate::admin)):
///
/// - Usernames are unique, and a username may not be an API app's client ID:
///   either is [`StoreError::Conflict`], also when two instances race to claim one
///   name as a user and as an app.
/// - Once [`update_service_user`](Self::update_service_user) with a new secret
///   returns, no later lookup returns the old digest as the current one: a
///   regenerated secret stops working at once. With
///   [`keep_previous_until`](ServiceUserPatch::keep_previous_until) the old digest
///   becomes the user's [`previous`](crate::Credentials::previous) secret with that
///   expiry (whole seconds), replacing any older previous secret (as
///   [`Credentials::rotate`](crate::Credentials::rotate) does).
/// - A patch with [`tokens_revoked_before`](ServiceUserPatch::tokens_revoked_before)
///   sets the user's revocation cut-off to that time (whole seconds), replacing the
///   stored one whether earlier or later; a patch without it keeps it. Like a new
///   secret, every lookup started after the update returns sees it.
/// - Deleting a user also deletes its token records, role grants and client keys,
///   also those added concurrently: none outlives the user.
#[async_trait]
pub trait ServiceUserAdmin: Send + Sync {
    /// Stores a new user.
    async fn create_service_user(&self, user: &ServiceUser) -> Result<(), StoreError>;

    /// Every user, ordered by username (byte order).
    async fn list_service_users(&self) -> Result<Vec<ServiceUser>, StoreError>;

    /// Applies `patch` atomically to the user as stored and returns the user as
    /// stored afterwards.
    async fn update_service_user(
        &self,
        username: &Username,
        patch: &ServiceUserPatch,
    ) -> Result<ServiceUser, StoreError>;

    /// Deletes the user with its token records, role grants and client keys.
    async fn delete_service_user(&self, username: &Username) -> Result<(), StoreError>;
}

/// Administration of projects, their API apps and the roles granted in them.
///
/// Contract, checked by the conformance suite (besides the common one of the
/// [module](crate::admin)):
///
/// - The reserved project `zitadel` exists in every store and cannot be created
///   again; project ids are unique. Projects are never deleted.
/// - An API app's client ID is unique among API apps *and* service users, and its
///   app id among API apps ([`StoreError::Conflict`]); an API app of a missing
///   project is [`StoreError::NotFound`].
/// - Updating an API app follows the rules of service users: a replaced secret
///   stops working at once, unless the patch keeps it as the previous secret until
///   a given time (at most one previous secret, its expiry in whole seconds).
///   Deleting an API app deletes its client keys.
/// - Adding a grant that exists already changes nothing and returns `false`; a
///   grant for a missing user or project is [`StoreError::NotFound`]. Concurrent
///   grants to one user are all kept.
#[async_trait]
pub trait ProjectAdmin: Send + Sync {
    /// Stores a new project.
    async fn create_project(&self, project: &Project) -> Result<(), StoreError>;

    /// Renames a project; [`StoreError::NotFound`] when it does not exist.
    async fn rename_project(&self, id: &ProjectId, name: &DisplayName) -> Result<(), StoreError>;

    /// Every project, the reserved one included, ordered by id (byte order).
    async fn list_projects(&self) -> Result<Vec<Project>, StoreError>;

    /// Stores a new API app.
    async fn create_api_app(&self, app: &ApiApp) -> Result<(), StoreError>;

    /// Every API app, ordered by client ID (byte order).
    async fn list_api_apps(&self) -> Result<Vec<ApiApp>, StoreError>;

    /// Applies `patch` atomically to the app as stored and returns the app as
    /// stored afterwards.
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
}

/// Administration of the public keys that clients sign assertions with (RFC 7523).
///
/// Contract, checked by the conformance suite (besides the common one of the
/// [module](crate::admin)):
///
/// - Key ids are unique ([`StoreError::Conflict`]); adding a key for a missing
///   owner is [`StoreError::NotFound`], and a key added while its owner is deleted
///   does not outlive the owner.
/// - Removing is scoped to the owner: removing another owner's key id changes
///   nothing and returns `false`.
/// - Concurrent additions for one owner are all kept.
#[async_trait]
pub trait ClientKeyAdmin: Send + Sync {
    /// Stores a new key.
    async fn add_client_key(&self, key: &ClientKey) -> Result<(), StoreError>;

    /// The keys of `owner`, ordered by creation time, then key id (byte order).
    async fn client_keys_of(&self, owner: &KeyOwner) -> Result<Vec<ClientKey>, StoreError>;

    /// Removes `owner`'s key `key_id`; returns whether it existed.
    async fn remove_client_key(&self, owner: &KeyOwner, key_id: &str) -> Result<bool, StoreError>;
}

/// Administration of the organization.
///
/// Contract, checked by the conformance suite: the update changes the name and
/// the primary domain, never the id or the creation time, atomically; before the
/// first [`init_organization`](crate::OrganizationStore::init_organization) it is
/// [`StoreError::NotFound`] and stores nothing.
#[async_trait]
pub trait OrganizationAdmin: Send + Sync {
    /// Renames the organization and sets its primary domain; returns it as stored.
    async fn update_organization(
        &self,
        name: &DisplayName,
        primary_domain: &Domain,
    ) -> Result<Organization, StoreError>;
}
