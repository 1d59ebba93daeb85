//! [`Store`]: a complete backend, every storage trait at once.

use crate::access::AccessAdmin;
use crate::admin::{ClientKeyAdmin, OrganizationAdmin, ProjectAdmin, ServiceUserAdmin};
use crate::issuing::IssuingStore;
use crate::keys::SigningKeyStore;
use crate::organization::OrganizationStore;

/// A complete backend: the issuing core, signing keys, the organization and every
/// administration trait. It has no methods of its own, and every type that
/// implements the others is a `Store`.
///
/// The server and the administration take an `Arc<dyn Store>`; a part that needs
/// less takes less, and an `Arc<dyn Store>` converts into it:
///
/// ```
/// use std::sync::Arc;
///
/// use tessera_store::prelude::*;
/// use tessera_store::MemoryStore;
///
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// let issuing: Arc<dyn IssuingStore> = store.clone();
/// let keys: Arc<dyn SigningKeyStore> = store;
/// # let _ = (issuing, keys);
/// ```
pub trait Store:
    IssuingStore
    + SigningKeyStore
    + OrganizationStore
    + ServiceUserAdmin
    + ProjectAdmin
    + ClientKeyAdmin
    + OrganizationAdmin
    + AccessAdmin
{
}

impl<T> Store for T where
    T: IssuingStore
        + SigningKeyStore
        + OrganizationStore
        + ServiceUserAdmin
        + ProjectAdmin
        + ClientKeyAdmin
        + OrganizationAdmin
        + AccessAdmin
{
}
