//! Property tests of the scope grammar.

use proptest::prelude::*;
use tessera_scope::{Scope, ScopeSet};

/// Characters allowed in a scope token: `%x21 / %x23-5B / %x5D-7E`.
fn scope_token() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![Just(0x21u8), 0x23u8..=0x5B, 0x5Du8..=0x7E], 1..24)
        .prop_map(|bytes| bytes.into_iter().map(char::from).collect())
}

proptest! {
    #[test]
    fn valid_tokens_parse_and_display_unchanged(token in scope_token()) {
        let scope = Scope::new(token.clone()).expect("valid token");
        prop_assert_eq!(scope.to_string(), token.clone());
        prop_assert_eq!(token.parse::<Scope>().expect("valid token"), scope);
    }

    #[test]
    fn lists_round_trip_with_duplicates_removed(tokens in proptest::collection::vec(scope_token(), 0..20)) {
        let joined = tokens.join(" ");
        let set = ScopeSet::parse(&joined).expect("valid list");
        let mut expected: Vec<&str> = Vec::new();
        for token in &tokens {
            if !expected.contains(&token.as_str()) {
                expected.push(token);
            }
        }
        prop_assert_eq!(set.to_string(), expected.join(" "));
        // Display output parses back to the same set.
        prop_assert_eq!(ScopeSet::parse(&set.to_string()).expect("display parses"), set);
    }

    #[test]
    fn any_disallowed_byte_is_rejected(prefix in scope_token(), bad in prop_oneof![0u8..=0x20, Just(0x22u8), Just(0x5Cu8), 0x7Fu8..=0xFF], suffix in scope_token()) {
        let mut bytes = prefix.clone().into_bytes();
        bytes.push(bad);
        bytes.extend(suffix.bytes());
        let text = String::from_utf8_lossy(&bytes).into_owned();
        prop_assert!(Scope::new(text).is_err());
    }

    #[test]
    fn arbitrary_strings_never_panic(text in ".{0,200}") {
        let _ = ScopeSet::parse(&text);
        if let Ok(set) = ScopeSet::parse(&text) {
            prop_assert_eq!(set.to_string().parse::<ScopeSet>().expect("display parses"), set);
        }
    }
}
