//! Scope lists: `ScopeSet::parse` on UTF-8 input, then `Display`, `kind()`,
//! serde and `ScopePolicy::default().negotiate`.
//!
//! Checks beyond "never panics":
//! - `parse(set.to_string()) == set`, and `to_string()` gives the input back when
//!   the input named no scope twice;
//! - every scope re-validates with `Scope::new`, and its kind is consistent with
//!   the prefixes (a project id is non-empty and has no `:`, a role is non-empty);
//! - the JSON form round-trips;
//! - negotiation grants the request unchanged, or refuses one of its scopes that
//!   the default policy does not allow; an empty request gets the default.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_scope::{
    MAX_SCOPE_STRING_LEN, MAX_SCOPES, NegotiationError, ProjectRef, Scope, ScopeError, ScopeKind,
    ScopePolicy, ScopeSet, StandardScope, ZITADEL_PROJECT,
};

fn check_kind(scope: &Scope) {
    match scope.kind() {
        ScopeKind::Standard(standard) => assert_eq!(standard.name(), scope.as_str()),
        ScopeKind::ProjectAudience(ProjectRef::Zitadel) => {
            assert_eq!(Scope::project_audience(ZITADEL_PROJECT).as_ref(), Ok(scope));
        }
        ScopeKind::ProjectAudience(ProjectRef::Id(id)) => {
            assert!(!id.is_empty() && !id.contains(':') && id != ZITADEL_PROJECT);
            assert_eq!(Scope::project_audience(id).as_ref(), Ok(scope));
        }
        ScopeKind::ProjectRole(role) => {
            assert!(!role.is_empty());
            assert_eq!(Scope::project_role(role).as_ref(), Ok(scope));
        }
        ScopeKind::ResourceOwner => assert_eq!(scope.as_str(), "urn:zitadel:iam:user:resourceowner"),
        ScopeKind::Custom(custom) => assert_eq!(custom, scope.as_str()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };

    // A single token, as `Scope::new` sees it.
    if let Ok(scope) = Scope::new(input) {
        check_kind(&scope);
        assert_eq!(scope.to_string(), input);
    }

    let set = match ScopeSet::parse(input) {
        Ok(set) => set,
        Err(ScopeError::TooLong { max }) => {
            assert_eq!(max, MAX_SCOPE_STRING_LEN);
            assert!(input.len() > MAX_SCOPE_STRING_LEN);
            return;
        }
        Err(ScopeError::InvalidCharacter { position }) => {
            assert!(position < input.len());
            let b = input.as_bytes()[position];
            assert!(!matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E) && b != b' ');
            return;
        }
        Err(ScopeError::TooMany { max }) => {
            assert_eq!(max, MAX_SCOPES);
            return;
        }
        Err(_) => return,
    };
    assert!(input.len() <= MAX_SCOPE_STRING_LEN);
    assert!(set.len() <= MAX_SCOPES);
    assert_eq!(set.is_empty(), input.is_empty());

    let shown = set.to_string();
    assert_eq!(ScopeSet::parse(&shown).as_ref(), Ok(&set), "display of {input:?}");
    if !input.is_empty() && input.split(' ').count() == set.len() {
        assert_eq!(shown, input);
    }

    for scope in &set {
        assert_eq!(Scope::new(scope.as_str()).as_ref(), Ok(scope));
        check_kind(scope);
    }

    let json = serde_json::to_string(&set).expect("a scope set serializes");
    let back: ScopeSet = serde_json::from_str(&json).expect("a serialized scope set parses");
    assert_eq!(back, set);

    let policy = ScopePolicy::default();
    match policy.negotiate(Some(&set)) {
        Ok(granted) if set.is_empty() => assert_eq!(&granted, policy.default_scopes()),
        Ok(granted) => {
            assert_eq!(granted, set);
            assert!(set.iter().all(|s| policy.allows(s)));
        }
        Err(NegotiationError::NotAllowed(refused)) => {
            assert!(set.contains(&refused));
            assert!(!policy.allows(&refused));
            assert!(matches!(
                refused.kind(),
                ScopeKind::Custom(_) | ScopeKind::Standard(StandardScope::OfflineAccess)
            ));
        }
        Err(other) => panic!("negotiation failed with {other:?}"),
    }
});
