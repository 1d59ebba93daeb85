//! Adversarial inputs for the scope grammar, as the fuzz target `scope` feeds them
//! (see `fuzz/README.md`): `ScopeSet::parse`, then `Display`, `kind()` and the
//! default policy. Each must give the documented result, never a panic. Inputs that
//! a fuzz run finds crashing belong here too.

use tessera_scope::{
    MAX_SCOPE_STRING_LEN, MAX_SCOPES, NegotiationError, ProjectRef, Scope, ScopeError, ScopeKind,
    ScopePolicy, ScopeSet, StandardScope,
};

const MEGABYTE: usize = 1 << 20;

#[test]
fn length_limit_is_checked_first() {
    let too_long = Err(ScopeError::TooLong { max: MAX_SCOPE_STRING_LEN });
    assert_eq!(ScopeSet::parse(&"a".repeat(MEGABYTE)), too_long);
    assert_eq!(ScopeSet::parse(&" ".repeat(MEGABYTE)), too_long);
    assert_eq!(ScopeSet::parse(&"\u{ff}".repeat(MEGABYTE)), too_long);
    assert_eq!(ScopeSet::parse(&"\"".repeat(MAX_SCOPE_STRING_LEN + 1)), too_long);
    let at_limit = "a".repeat(MAX_SCOPE_STRING_LEN);
    assert_eq!(ScopeSet::parse(&at_limit).map(|s| s.to_string()), Ok(at_limit));
}

#[test]
fn runs_of_separators_are_empty_tokens() {
    for input in [" ", "  ", "a  b", " a", "a ", &" ".repeat(MAX_SCOPE_STRING_LEN)] {
        assert_eq!(ScopeSet::parse(input), Err(ScopeError::Empty), "{input:?}");
    }
    assert_eq!(Scope::new(""), Err(ScopeError::Empty));
}

#[test]
fn invalid_characters_are_reported_at_their_byte_offset() {
    let cases: [(&str, usize); 10] = [
        ("\0", 0),
        ("\u{7f}", 0),
        ("\"", 0),
        ("\\", 0),
        ("a\tb", 1),
        ("openid \u{ff}", 7),
        ("openid profile \u{1f511}", 15),
        ("a a a\r", 5),
        ("x\u{a0}y", 1),
        ("urn:zitadel:iam:org:project:id:\u{e9}:aud", 31),
    ];
    for (input, position) in cases {
        assert_eq!(
            ScopeSet::parse(input),
            Err(ScopeError::InvalidCharacter { position }),
            "{input:?}"
        );
    }
    // The first offending token is reported, even after many valid ones.
    let mut input = "s ".repeat(1000);
    input.push('\u{ff}');
    assert_eq!(ScopeSet::parse(&input), Err(ScopeError::InvalidCharacter { position: 2000 }));
}

#[test]
fn the_scope_limit_counts_distinct_scopes() {
    let distinct: Vec<String> = (0..=MAX_SCOPES).map(|i| format!("s{i}")).collect();
    assert_eq!(ScopeSet::parse(&distinct.join(" ")), Err(ScopeError::TooMany { max: MAX_SCOPES }));
    assert_eq!(ScopeSet::parse(&distinct[..MAX_SCOPES].join(" ")).map(|s| s.len()), Ok(MAX_SCOPES));
    let repeated = vec!["openid"; MAX_SCOPE_STRING_LEN / 7].join(" ");
    assert_eq!(ScopeSet::parse(&repeated).map(|s| s.to_string()), Ok("openid".to_owned()));
}

#[test]
fn display_round_trips_with_duplicates_removed() -> Result<(), ScopeError> {
    for input in [
        "b a b a",
        "!#$%&'()*+,-./:;<=>?@[]^_`{|}~ ~",
        "urn:zitadel:iam:org:project:id::aud urn:zitadel:iam:org:project:id::aud",
    ] {
        let set = ScopeSet::parse(input)?;
        assert_eq!(ScopeSet::parse(&set.to_string())?, set);
    }
    Ok(())
}

#[test]
fn malformed_project_urns_are_custom_scopes() -> Result<(), ScopeError> {
    for input in [
        "urn:zitadel:iam:org:project:id::aud",
        "urn:zitadel:iam:org:project:id:a:b:aud",
        "urn:zitadel:iam:org:project:id:aud",
        "urn:zitadel:iam:org:project:id:x:aud:aud",
        "urn:zitadel:iam:org:project:role:",
        "URN:zitadel:iam:org:project:id:x:aud",
        "openid:",
    ] {
        let scope = Scope::new(input)?;
        assert_eq!(scope.kind(), ScopeKind::Custom(input), "{input:?}");
    }
    // A one-character id between prefix and suffix, and the shortest role.
    let aud = Scope::new("urn:zitadel:iam:org:project:id::::aud")?;
    assert!(matches!(aud.kind(), ScopeKind::Custom(_)));
    let aud = Scope::new("urn:zitadel:iam:org:project:id:x:aud")?;
    assert_eq!(aud.kind(), ScopeKind::ProjectAudience(ProjectRef::Id("x")));
    let role = Scope::new("urn:zitadel:iam:org:project:role::")?;
    assert_eq!(role.kind(), ScopeKind::ProjectRole(":"));
    Ok(())
}

#[test]
fn the_default_policy_refuses_the_first_disallowed_scope() -> Result<(), ScopeError> {
    let policy = ScopePolicy::default();
    let set = ScopeSet::parse("openid profile email phone address offline_access custom")?;
    assert_eq!(
        policy.negotiate(Some(&set)),
        Err(NegotiationError::NotAllowed(Scope::from(StandardScope::OfflineAccess)))
    );
    let many: Vec<String> =
        (0..MAX_SCOPES).map(|i| format!("urn:zitadel:iam:org:project:role:r{i}")).collect();
    let set = ScopeSet::parse(&many.join(" "))?;
    assert_eq!(policy.negotiate(Some(&set)), Ok(set));
    assert_eq!(policy.negotiate(Some(&ScopeSet::parse("")?)), Ok(ScopeSet::parse("openid")?));
    Ok(())
}

#[test]
fn json_with_invalid_utf8_or_grammar_is_rejected() {
    assert!(serde_json::from_slice::<ScopeSet>(b"\"openid \xff\"").is_err());
    assert!(serde_json::from_slice::<ScopeSet>(b"\"openid\\u0000\"").is_err());
    assert!(serde_json::from_slice::<ScopeSet>(b"\"openid\\ud800\"").is_err());
    let long = format!("\"{}\"", "a".repeat(MEGABYTE));
    assert!(serde_json::from_str::<ScopeSet>(&long).is_err());
    assert!(serde_json::from_str::<Scope>("\"\"").is_err());
}
