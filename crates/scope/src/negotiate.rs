use std::collections::BTreeSet;

use crate::scope::{Scope, ScopeKind, StandardScope};
use crate::set::ScopeSet;

/// Which scopes a client may be granted, and what it gets when it asks for none.
///
/// Negotiation is the first of two steps. It decides by the scope's kind:
///
/// - standard OpenID Connect scopes are granted when the policy allows them
///   (by default all but `offline_access`, since the client credentials grant
///   issues no refresh token);
/// - project audience and role scopes pass through, to be resolved by the
///   issuer against the store (an unknown project is dropped, a role needs a
///   grant), and so does the resource owner scope;
/// - custom scopes are granted only when listed in the policy.
///
/// A requested scope that the policy does not allow makes the whole request
/// fail with `invalid_scope` (RFC 6749 section 5.2: "exceeds the scope granted
/// by the resource owner"), rather than being silently dropped.
///
/// ```
/// use tessera_scope::{ScopePolicy, ScopeSet};
///
/// let policy = ScopePolicy::default();
/// let granted = policy.negotiate(Some(&"openid profile".parse()?))?;
/// assert_eq!(granted.to_string(), "openid profile");
/// // No scope requested: the policy's default.
/// assert_eq!(policy.negotiate(None)?.to_string(), "openid");
/// assert!(policy.negotiate(Some(&"billing:write".parse()?)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePolicy {
    default: ScopeSet,
    standard: BTreeSet<StandardScope>,
    custom: BTreeSet<Scope>,
    project_scopes: bool,
}

/// Why negotiation refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// The client asked for a scope it may not have.
    #[error("scope {0} is not allowed for this client")]
    NotAllowed(Scope),
}

impl Default for ScopePolicy {
    /// Default scope `openid`; every standard scope except `offline_access`;
    /// project scopes allowed; no custom scopes.
    fn default() -> Self {
        Self {
            default: ScopeSet::from_iter([Scope::openid()]),
            standard: StandardScope::ALL
                .into_iter()
                .filter(|s| *s != StandardScope::OfflineAccess)
                .collect(),
            custom: BTreeSet::new(),
            project_scopes: true,
        }
    }
}

impl ScopePolicy {
    /// Sets the scopes granted when a request names none.
    pub fn with_default(mut self, default: ScopeSet) -> Self {
        self.default = default;
        self
    }

    /// Sets which standard scopes may be granted.
    pub fn with_standard(mut self, standard: impl IntoIterator<Item = StandardScope>) -> Self {
        self.standard = standard.into_iter().collect();
        self
    }

    /// Allows a custom scope.
    pub fn allow_custom(mut self, scope: Scope) -> Self {
        self.custom.insert(scope);
        self
    }

    /// Sets whether project audience and role scopes may be requested.
    pub fn with_project_scopes(mut self, allowed: bool) -> Self {
        self.project_scopes = allowed;
        self
    }

    /// The scopes granted when a request names none.
    pub fn default_scopes(&self) -> &ScopeSet {
        &self.default
    }

    /// Whether the policy allows `scope`.
    pub fn allows(&self, scope: &Scope) -> bool {
        match scope.kind() {
            ScopeKind::Standard(standard) => self.standard.contains(&standard),
            ScopeKind::ProjectAudience(_)
            | ScopeKind::ProjectRole(_)
            | ScopeKind::ResourceOwner => self.project_scopes,
            ScopeKind::Custom(_) => self.custom.contains(scope),
        }
    }

    /// Turns the requested scopes into the scopes granted at this step.
    ///
    /// `None` (and an empty set, which RFC 6749 section 3.1 treats as an
    /// omitted parameter) yields the default scopes.
    pub fn negotiate(&self, requested: Option<&ScopeSet>) -> Result<ScopeSet, NegotiationError> {
        let requested = match requested {
            Some(set) if !set.is_empty() => set,
            _ => &self.default,
        };
        match requested.iter().find(|s| !self.allows(s)) {
            Some(refused) => Err(NegotiationError::NotAllowed(refused.clone())),
            None => Ok(requested.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> ScopeSet {
        ScopeSet::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn default_policy() {
        let policy = ScopePolicy::default();
        assert_eq!(policy.negotiate(None), Ok(set("openid")));
        assert_eq!(policy.negotiate(Some(&ScopeSet::new())), Ok(set("openid")));
        let project = set(
            "openid urn:zitadel:iam:org:project:id:zitadel:aud urn:zitadel:iam:org:project:role:r",
        );
        assert_eq!(policy.negotiate(Some(&project)), Ok(project.clone()));
        assert_eq!(
            policy.negotiate(Some(&set("openid offline_access"))),
            Err(NegotiationError::NotAllowed(Scope::from(StandardScope::OfflineAccess)))
        );
        assert!(policy.negotiate(Some(&set("custom"))).is_err());
    }

    #[test]
    fn configured_policy() {
        let policy = ScopePolicy::default()
            .with_default(set("profile"))
            .with_standard([StandardScope::Profile])
            .allow_custom(Scope::new("billing:read").unwrap_or_else(|e| panic!("{e}")))
            .with_project_scopes(false);
        assert_eq!(policy.default_scopes(), &set("profile"));
        assert_eq!(policy.negotiate(None), Ok(set("profile")));
        assert_eq!(policy.negotiate(Some(&set("billing:read"))), Ok(set("billing:read")));
        assert!(policy.negotiate(Some(&set("openid"))).is_err());
        assert!(policy.negotiate(Some(&set("urn:zitadel:iam:org:project:id:x:aud"))).is_err());
    }
}
