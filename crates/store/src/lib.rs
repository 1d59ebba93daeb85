//! Records, storage traits and secrets of Tessera.
//!
//! A storage backend implements [`ServiceUserStore`], [`TokenStore`],
//! [`ProjectStore`], [`SigningKeyStore`], [`ClientKeyStore`] and
//! [`OrganizationStore`] (together: [`Store`])
//! and depends on this crate alone. [`MemoryStore`] is the in-memory backend; the
//! `testkit` feature holds the conformance suite every backend must pass
//! (the `testkit` module and its `conformance_suite!` macro).
//!
//! Secrets are generated here: [`ClientSecret::generate`] draws 256 bits from the
//! operating system's random number generator, and only the [`SecretDigest`]
//! (SHA-256) is ever stored. Verification compares digests in constant time.
//! A client may hold a [`PreviousSecret`] besides its current one, accepted until
//! its grace period ends; [`verify_secrets`] checks a presented secret against both
//! with the same work whichever matches.
//!
//! ```
//! use tessera_store::{ClientSecret, SecretDigest};
//!
//! let secret = ClientSecret::generate()?;
//! let digest = SecretDigest::of(&secret);
//! assert!(digest.verify(secret.expose()));
//! assert!(!digest.verify("wrong"));
//! assert_eq!(format!("{secret:?}"), "ClientSecret([redacted])");
//! # Ok::<(), tessera_store::RandomError>(())
//! ```
#![forbid(unsafe_code)]

mod client_keys;
mod clock;
mod error;
mod ids;
mod keys;
mod memory;
mod organization;
mod projects;
mod records;
mod secret;
mod traits;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use client_keys::{ClientKey, ClientKeyStore, KeyOwner};
pub use clock::{Clock, ManualClock, SystemClock, whole_seconds};
pub use error::{BoxError, StoreError};
pub use ids::{
    AppId, ClientId, Domain, IdError, OrgId, ProjectId, RoleKey, TokenId, UserId, Username,
};
pub use keys::{SigningAlgorithm, SigningKeyRecord, SigningKeyStore};
pub use memory::MemoryStore;
pub use organization::{Organization, OrganizationStore};
pub use projects::{ApiApp, ApiAppPatch, Project, ProjectStore, RoleClaims, RoleGrant};
pub use records::{
    AccessTokenType, DisplayName, OPAQUE_TOKEN_LEN, PreviousSecret, ServiceUser, ServiceUserPatch,
    TOKEN_PREFIX_LEN, TokenDigest, TokenLifetime, TokenRecord,
};
pub use secret::{
    ClientSecret, RandomError, SecretDigest, SecretError, random_bytes, verify_secrets,
};
pub use traits::{ServiceUserStore, Store, TokenStore};
