//! The organization: the one resource owner of every user, project and app.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::clock::whole_seconds;
use crate::error::StoreError;
use crate::ids::{Domain, OrgId};
use crate::records::DisplayName;
use crate::secret::RandomError;

/// The organization that owns every resource of a server, as ZITADEL's resource
/// owner: role claims map each role to its id and primary domain, and the
/// `urn:zitadel:iam:user:resourceowner` scope names it in tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// Its id, generated once.
    pub id: OrgId,
    /// Its name.
    pub name: DisplayName,
    /// Its primary domain.
    pub primary_domain: Domain,
    /// When it was created (whole seconds).
    pub created_at: OffsetDateTime,
}

impl Organization {
    /// A new organization with a generated id.
    pub fn generate(
        name: DisplayName,
        primary_domain: Domain,
        now: OffsetDateTime,
    ) -> Result<Self, RandomError> {
        Ok(Self { id: OrgId::generate()?, name, primary_domain, created_at: whole_seconds(now) })
    }
}

/// Storage of the organization: one record per store.
///
/// Contract, checked by the conformance suite:
///
/// - [`init_organization`](Self::init_organization) stores its argument only when the
///   store holds no organization yet, and returns the one stored either way: calls
///   that race (from several processes on one database) all return the same one.
/// - [`update_organization`](Self::update_organization) changes the name and primary
///   domain, never the id, atomically; [`StoreError::NotFound`] before the first
///   `init_organization`.
#[async_trait]
pub trait OrganizationStore: Send + Sync {
    /// The organization, or `None` before it was first stored.
    async fn organization(&self) -> Result<Option<Organization>, StoreError>;

    /// Stores `candidate` unless an organization exists, and returns the stored one.
    async fn init_organization(&self, candidate: &Organization)
    -> Result<Organization, StoreError>;

    /// Renames the organization and sets its primary domain; returns it as stored.
    async fn update_organization(
        &self,
        name: &DisplayName,
        primary_domain: &Domain,
    ) -> Result<Organization, StoreError>;
}
