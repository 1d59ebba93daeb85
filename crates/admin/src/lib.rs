//! Administration of a Tessera store as a library: every management operation —
//! service users and their secrets (with grace rotation), client keys and
//! ZITADEL-shaped key files, projects, API apps, role grants, the organization, and
//! bootstrap documents applied whole or not at all — as typed async methods of
//! [`Admin`], failing with a typed [`AdminError`].
//!
//! ```
//! use std::sync::Arc;
//!
//! use tessera_admin::{Admin, NewServiceUser};
//! use tessera_store::{MemoryStore, Username};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let admin = Admin::new(Arc::new(MemoryStore::new()));
//! let (user, secret) =
//!     admin.create_service_user(NewServiceUser::new(Username::new("billing-job")?)).await?;
//! // The secret is shown once; the store keeps only its digest.
//! assert!(user.credentials.secret.is_some_and(|digest| digest.verify(secret.expose())));
//! # Ok(())
//! # }
//! ```
//!
//! The reference server's command line and its `--bootstrap` file are thin callers of
//! this crate, and so is any other management surface: an embedder gets the same
//! operations, the same checks and the same audit events.
//!
//! # Guarantees
//!
//! - **Nothing half-done.** Each operation checks its whole input before its first
//!   write; [`Admin::apply_bootstrap`] checks every entry of a document before it writes
//!   any, so a bad document changes nothing.
//! - **Secrets are shown once.** Generated secrets and private keys are returned to the
//!   caller and never logged or stored in clear: the store keeps digests and public keys.
//! - **Audit events.** Changes of credentials, of administrators, of project roles,
//!   deletions of projects and changes of the organization are logged with
//!   [`tracing`] under the target `tessera::audit` (`event = "secret_regenerated"`,
//!   `"client_key_added"`, `"project_role_added"`, `"project_deleted"`,
//!   `"organization_updated"`, …).
//! - **Injectable time.** Every timestamp comes from the [`Clock`] given to
//!   [`Admin::with_clock`] (the system clock by default).
#![forbid(unsafe_code)]

mod access;
mod bootstrap;
mod error;
mod keys;
mod organization;
mod projects;
mod revoke;
mod users;

use std::fmt;
use std::sync::Arc;

use tessera_store::prelude::*;
use tessera_store::{Clock, SystemClock};
use time::OffsetDateTime;

pub use access::{NamedAdministrator, NewPersonalAccessToken};
pub use bootstrap::{
    Applied, BootstrapAdministrator, BootstrapApiApp, BootstrapDocument, BootstrapGrant,
    BootstrapProject, BootstrapServiceUser, ProvidedSecret,
};
pub use error::AdminError;
pub use keys::{KeyFile, KeyFileKind, KeyType};
pub use organization::OrganizationUpdate;
pub use projects::{ApiAppUpdate, NewApiApp, NewProject};
pub use users::{Grace, NewServiceUser, ServiceUserUpdate};

/// The administration handle: every management operation on one store.
///
/// Cheap to clone (two reference-counted pointers); every method takes `&self` and
/// may run concurrently with others and with servers answering requests on the same
/// store. The methods are grouped by what they manage: service users and their
/// secrets, client keys, projects with their API apps and grants, the organization,
/// bootstrap documents, and revocation.
#[derive(Clone)]
pub struct Admin {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl Admin {
    /// Administration of `store`, on the system clock.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, clock: Arc::new(SystemClock) }
    }

    /// The same administration with time taken from `clock` (such as a
    /// [`ManualClock`](tessera_store::ManualClock) in tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The store this handle manages.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The current time of this handle's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin").field("clock", &self.clock).finish_non_exhaustive()
    }
}
