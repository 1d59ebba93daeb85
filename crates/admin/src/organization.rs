//! The organization: the one resource owner of every user, project and app.

use tessera_store::{DisplayName, Domain, Organization};

use crate::{Admin, AdminError};

/// A change to the organization; `None` leaves a field as it is. Its id never changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrganizationUpdate {
    /// New name.
    pub name: Option<DisplayName>,
    /// New primary domain (the value of the role claims' organization entries).
    pub primary_domain: Option<Domain>,
}

/// The organization.
impl Admin {
    /// The organization, or `None` before it was first stored (a server stores it when
    /// it first starts: [`init_organization`](Self::init_organization)).
    pub async fn organization(&self) -> Result<Option<Organization>, AdminError> {
        Ok(self.store.organization().await?)
    }

    /// Stores an organization named `name` with primary domain `primary_domain` and a
    /// generated id, unless the store holds one already; returns the stored one either
    /// way (servers racing to start on one database all get the same).
    pub async fn init_organization(
        &self,
        name: DisplayName,
        primary_domain: Domain,
    ) -> Result<Organization, AdminError> {
        let candidate = Organization::generate(name, primary_domain, self.now())?;
        let org = self.store.init_organization(&candidate).await?;
        if org.id == candidate.id {
            tracing::info!(
                organization_id = %org.id,
                name = %org.name,
                primary_domain = %org.primary_domain,
                "organization created"
            );
        }
        Ok(org)
    }

    /// Renames the organization or changes its primary domain, and returns it as
    /// stored afterwards; when the store holds none yet, it is first created as
    /// `Tessera` at `localhost`. Running servers see the change when they restart.
    /// Logs the audit event `organization_updated`.
    pub async fn update_organization(
        &self,
        update: OrganizationUpdate,
    ) -> Result<Organization, AdminError> {
        let current = match self.store.organization().await? {
            Some(org) => org,
            None => {
                let candidate = Organization::for_issuer("http://localhost", self.now())?;
                self.store.init_organization(&candidate).await?
            }
        };
        let name = update.name.unwrap_or(current.name);
        let domain = update.primary_domain.unwrap_or(current.primary_domain);
        let org = self.store.update_organization(&name, &domain).await?;
        tracing::info!(
            target: "tessera::audit",
            event = "organization_updated",
            organization_id = %org.id,
            name = %org.name,
            primary_domain = %org.primary_domain,
        );
        Ok(org)
    }
}
