//! Records, storage traits and secrets of Tessera: what a storage backend implements,
//! and the in-memory backend.
//!
//! ```
//! use std::sync::Arc;
//!
//! use tessera_store::prelude::*;
//! use tessera_store::{MemoryStore, ServiceUser, Username};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
//! let user = ServiceUser::new(Username::new("billing-job")?, time::OffsetDateTime::now_utc())?;
//! store.create_service_user(&user).await?;
//! assert_eq!(store.service_user_by_username(&user.username).await?, Some(user));
//! # Ok(())
//! # })
//! # }
//! ```
//!
//! A storage backend depends on this crate alone. It implements
//! [`IssuingStore`], the issuing core (eight required methods), and as much more as
//! it offers: [`SigningKeyStore`] for self-contained (JWT) tokens,
//! [`OrganizationStore`] for role claims, and the administration traits
//! [`ServiceUserAdmin`], [`ProjectAdmin`], [`ClientKeyAdmin`] and
//! [`OrganizationAdmin`]. A type that implements them all is a [`Store`], a
//! complete backend. [`MemoryStore`] is the in-memory backend; the `testkit`
//! feature holds the conformance suite every backend must pass (the `testkit`
//! module and its `conformance_suite!` and `conformance_suite_shared!` macros, and
//! `issuing_conformance_suite!` for a backend that implements the issuing core
//! alone).
//! Bring the traits' methods into scope with `use tessera_store::prelude::*;`.
//! `docs/storage.md` states every method's contract.
//!
//! Features (none is on by default, and none changes what the default build does):
//!
//! - `serde`: `Serialize` and `Deserialize` for every record type, with stable field
//!   names (see `docs/storage.md`);
//! - `testkit`: the conformance suite;
//! - `sql`: the `sql` module, the row conversions and the group-commit queue that
//!   the SQL backends share.
//!
//! Secrets are generated here: [`ClientSecret::generate`] draws 256 bits from the
//! operating system's random number generator, and only the [`SecretDigest`] is
//! ever stored: a random salt of its own and `SHA-256(salt ‖ SHA-256(secret))`.
//! Verification compares digests in constant time.
//! Service users and API apps hold their secrets alike, as [`Credentials`]: the
//! current digest and a [`PreviousSecret`] accepted until its grace period ends.
//! [`Credentials::matches`] checks a presented secret against both with the same
//! work whichever matches (see [`verify_secrets`]), and [`Credentials::rotate`]
//! replaces the secret as every patch does.
//!
//! ```
//! use tessera_store::{ClientSecret, SecretDigest};
//!
//! let secret = ClientSecret::generate()?;
//! let digest = SecretDigest::of(&secret)?;
//! assert!(digest.verify(secret.expose()));
//! assert!(!digest.verify("wrong"));
//! assert_eq!(format!("{secret:?}"), "ClientSecret([redacted])");
//! # Ok::<(), tessera_store::RandomError>(())
//! ```
#![forbid(unsafe_code)]

mod access;
pub mod admin;
mod client_keys;
mod clock;
mod credentials;
mod error;
mod ids;
mod issuing;
mod keys;
mod memory;
mod organization;
mod projects;
mod records;
mod secret;
#[cfg(feature = "serde")]
mod serde_forms;
#[cfg(feature = "sql")]
pub mod sql;
mod store;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use access::{
    AccessAdmin, AdminRole, Administrator, NEVER_EXPIRES, PAT_LEN, PersonalAccessToken,
    generate_pat, sort_administrators,
};
pub use admin::{
    ClientKeyAdmin, OrganizationAdmin, ProjectAdmin, ServiceUserAdmin, TextMatch, TextMethod,
    UserFilter, UserOrder, UserPage, UserPageQuery,
};
pub use client_keys::{ClientKey, KeyOwner};
pub use clock::{Clock, ManualClock, SystemClock, whole_seconds};
pub use credentials::{Credentials, PreviousSecret};
pub use error::{BoxError, StoreError, error_chain};
pub use ids::{
    AppId, ClientId, Domain, IdError, OrgId, PatId, ProjectId, RoleKey, TokenId, UserId, Username,
};
pub use issuing::{IssuingStore, PoolStats};
pub use keys::{SigningAlgorithm, SigningKeyRecord, SigningKeyStore};
pub use memory::MemoryStore;
pub use organization::{Organization, OrganizationStore};
pub use projects::{ApiApp, ApiAppPatch, Project, ProjectRole, RoleClaims, RoleGrant};
pub use records::{
    AccessTokenType, DisplayName, OPAQUE_TOKEN_LEN, ServiceUser, ServiceUserPatch,
    TOKEN_PREFIX_LEN, TokenDigest, TokenLifetime, TokenRecord,
};
pub use secret::{
    ClientSecret, RandomError, SecretDigest, SecretError, random_bytes, verify_secrets,
};
pub use store::Store;

/// Every storage trait, to bring their methods into scope at once:
/// `use tessera_store::prelude::*;`.
pub mod prelude {
    pub use crate::access::AccessAdmin;
    pub use crate::admin::{ClientKeyAdmin, OrganizationAdmin, ProjectAdmin, ServiceUserAdmin};
    pub use crate::issuing::IssuingStore;
    pub use crate::keys::SigningKeyStore;
    pub use crate::organization::OrganizationStore;
    pub use crate::store::Store;
}
