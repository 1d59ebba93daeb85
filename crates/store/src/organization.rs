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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Organization {
    /// Its id, generated once.
    pub id: OrgId,
    /// Its name.
    pub name: DisplayName,
    /// Its primary domain.
    pub primary_domain: Domain,
    /// When it was created (whole seconds).
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
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

    /// The organization a store gets when none was configured: a generated id, the name
    /// `Tessera`, and the host of `issuer` as its primary domain (`localhost` when the
    /// host is not a domain name, such as an IPv6 address).
    pub fn for_issuer(issuer: &str, now: OffsetDateTime) -> Result<Self, RandomError> {
        let host = issuer.split_once("://").map_or(issuer, |(_, rest)| rest);
        let host = host.split(['/', '?', '#']).next().unwrap_or_default();
        let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
        let host = host.split(':').next().unwrap_or_default();
        let domain = Domain::new(host).unwrap_or_else(|_| Domain::localhost());
        Self::generate(DisplayName::from_trusted("Tessera"), domain, now)
    }
}

/// Storage of the organization, for role claims: one record per store. A backend
/// that issues no role claims (and no `urn:zitadel:iam:user:resourceowner` scope)
/// needs none of it; [`OrganizationAdmin`](crate::OrganizationAdmin) changes it.
///
/// Contract, checked by the conformance suite:
///
/// - [`organization`](Self::organization) is `None` in a fresh store.
/// - [`init_organization`](Self::init_organization) stores its argument (times in
///   whole seconds) only when the store holds no organization yet, and returns the
///   one stored either way: calls that race (from several processes on one
///   database) all return the same one, one of the candidates.
#[async_trait]
pub trait OrganizationStore: Send + Sync {
    /// The organization, or `None` before it was first stored.
    async fn organization(&self) -> Result<Option<Organization>, StoreError>;

    /// Stores `candidate` unless an organization exists, and returns the stored one.
    async fn init_organization(&self, candidate: &Organization)
    -> Result<Organization, StoreError>;
}
