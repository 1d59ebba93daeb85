//! OAuth 2.0 scopes for Tessera.
//!
//! This crate holds the scope grammar of RFC 6749 section 3.3, the typed
//! meaning Tessera gives to scopes, and the negotiation step that turns the
//! scopes a client asks for into the scopes it is granted. It does no I/O.
//!
//! ```
//! use tessera_scope::{ProjectRef, ScopeKind, ScopeSet};
//!
//! let set: ScopeSet = "openid profile urn:zitadel:iam:org:project:id:zitadel:aud".parse()?;
//! assert_eq!(set.len(), 3);
//! let audience: Vec<_> = set.iter().filter_map(|s| match s.kind() {
//!     ScopeKind::ProjectAudience(project) => Some(project),
//!     _ => None,
//! }).collect();
//! assert_eq!(audience, [ProjectRef::Zitadel]);
//! assert_eq!(set.to_string(), "openid profile urn:zitadel:iam:org:project:id:zitadel:aud");
//! # Ok::<(), tessera_scope::ScopeError>(())
//! ```
#![forbid(unsafe_code)]

mod negotiate;
mod scope;
mod set;

pub use negotiate::{NegotiationError, ScopePolicy};
pub use scope::{
    PROJECT_AUDIENCE_PREFIX, PROJECT_AUDIENCE_SUFFIX, PROJECT_ROLE_PREFIX, ProjectRef,
    RESOURCE_OWNER_SCOPE, Scope, ScopeError, ScopeKind, StandardScope, ZITADEL_PROJECT,
};
pub use set::{MAX_SCOPE_STRING_LEN, MAX_SCOPES, ScopeSet};
