use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::scope::{Scope, ScopeError, validate_token};

/// The longest scope list accepted, in bytes. Longer lists are rejected
/// before any token is examined, so a hostile request costs little.
pub const MAX_SCOPE_STRING_LEN: usize = 4096;

/// The most distinct scopes one list may hold.
pub const MAX_SCOPES: usize = 64;

/// An ordered set of scopes: the order of first appearance is kept and
/// duplicates are removed.
///
/// Parsing follows RFC 6749 section 3.3 strictly: `scope-token *( SP scope-token )`,
/// so two spaces in a row or a leading or trailing space are errors. The empty
/// string is the empty set.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    /// The empty set.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Parses a space-delimited scope list.
    pub fn parse(value: &str) -> Result<Self, ScopeError> {
        if value.len() > MAX_SCOPE_STRING_LEN {
            return Err(ScopeError::TooLong { max: MAX_SCOPE_STRING_LEN });
        }
        let mut set = Self::new();
        if value.is_empty() {
            return Ok(set);
        }
        let mut offset = 0;
        for token in value.split(' ') {
            validate_token(token).map_err(|e| match e {
                ScopeError::InvalidCharacter { position } => {
                    ScopeError::InvalidCharacter { position: offset + position }
                }
                other => other,
            })?;
            offset += token.len() + 1;
            if !set.contains_str(token) {
                if set.0.len() == MAX_SCOPES {
                    return Err(ScopeError::TooMany { max: MAX_SCOPES });
                }
                set.0.push(Scope::from_validated(token));
            }
        }
        Ok(set)
    }

    /// Adds a scope at the end unless it is already present; returns whether it was added.
    pub fn insert(&mut self, scope: Scope) -> bool {
        if self.contains(&scope) {
            false
        } else {
            self.0.push(scope);
            true
        }
    }

    /// Whether the set holds `scope`.
    pub fn contains(&self, scope: &Scope) -> bool {
        self.contains_str(scope.as_str())
    }

    /// Whether the set holds a scope spelled `scope`.
    pub fn contains_str(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == scope)
    }

    /// The scopes in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Scope> {
        self.0.iter()
    }

    /// How many scopes the set holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps only the scopes for which `keep` returns true, in order.
    pub fn retain(&mut self, keep: impl FnMut(&Scope) -> bool) {
        self.0.retain(keep);
    }
}

impl FromStr for ScopeSet {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<T: IntoIterator<Item = Scope>>(iter: T) -> Self {
        let mut set = Self::new();
        set.extend(iter);
        set
    }
}

impl Extend<Scope> for ScopeSet {
    fn extend<T: IntoIterator<Item = Scope>>(&mut self, iter: T) {
        for scope in iter {
            self.insert(scope);
        }
    }
}

impl IntoIterator for ScopeSet {
    type Item = Scope;
    type IntoIter = std::vec::IntoIter<Scope>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ScopeSet {
    type Item = &'a Scope;
    type IntoIter = std::slice::Iter<'a, Scope>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A usual list is joined on the stack and written at once: each write to a
        // formatter is a dynamic call, and a list of n scopes takes 2n - 1 of them.
        let mut joined = [0u8; 256];
        let mut len = 0;
        for (i, scope) in self.0.iter().enumerate() {
            let scope = scope.as_str().as_bytes();
            let start = len + usize::from(i > 0);
            let Some(end) = start.checked_add(scope.len()).filter(|&end| end <= joined.len())
            else {
                return self.write_each(f);
            };
            if i > 0 {
                joined[len] = b' ';
            }
            joined[start..end].copy_from_slice(scope);
            len = end;
        }
        f.write_str(std::str::from_utf8(&joined[..len]).map_err(|_| fmt::Error)?)
    }
}

impl ScopeSet {
    /// Writes the scopes one by one, for lists too long to join on the stack.
    fn write_each(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        ScopeSet::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_removes_duplicates() -> Result<(), ScopeError> {
        let set = ScopeSet::parse("profile openid profile email openid")?;
        assert_eq!(set.to_string(), "profile openid email");
        assert_eq!(set.len(), 3);
        Ok(())
    }

    #[test]
    fn lists_display_joined_whatever_their_length() -> Result<(), ScopeError> {
        // Around the length joined on the stack (256 bytes) and well past it.
        for count in [0, 1, 2, 27, 28, 29, 30, 64] {
            let scopes: Vec<String> = (0..count).map(|i| format!("scope-{i:02}")).collect();
            let text = scopes.join(" ");
            let set = ScopeSet::parse(&text)?;
            assert_eq!(set.to_string(), text, "{count} scopes");
            // Through a formatter with a width, as a log line might use it.
            assert_eq!(format!("{set}"), text);
        }
        let long = "x".repeat(300);
        assert_eq!(
            ScopeSet::parse(&format!("openid {long}"))?.to_string(),
            format!("openid {long}")
        );
        assert_eq!(ScopeSet::parse(&long)?.to_string(), long);
        Ok(())
    }

    #[test]
    fn strict_delimiters() {
        assert_eq!(ScopeSet::parse("a  b"), Err(ScopeError::Empty));
        assert_eq!(ScopeSet::parse(" a"), Err(ScopeError::Empty));
        assert_eq!(ScopeSet::parse("a "), Err(ScopeError::Empty));
        assert_eq!(ScopeSet::parse("a\tb"), Err(ScopeError::InvalidCharacter { position: 1 }));
        assert_eq!(ScopeSet::parse("ab c\"d"), Err(ScopeError::InvalidCharacter { position: 4 }));
        assert_eq!(ScopeSet::parse(""), Ok(ScopeSet::new()));
    }

    #[test]
    fn limits() {
        let long = "a".repeat(MAX_SCOPE_STRING_LEN + 1);
        assert_eq!(ScopeSet::parse(&long), Err(ScopeError::TooLong { max: MAX_SCOPE_STRING_LEN }));
        let many: Vec<String> = (0..=MAX_SCOPES).map(|i| format!("s{i}")).collect();
        assert_eq!(ScopeSet::parse(&many.join(" ")), Err(ScopeError::TooMany { max: MAX_SCOPES }));
        // Duplicates do not count against the limit.
        let repeated = vec!["x"; MAX_SCOPES * 2].join(" ");
        assert_eq!(ScopeSet::parse(&repeated).map(|s| s.len()), Ok(1));
    }

    #[test]
    fn serde_round_trip() -> Result<(), serde_json::Error> {
        let set: ScopeSet = serde_json::from_str("\"openid profile\"")?;
        assert_eq!(set.len(), 2);
        assert_eq!(serde_json::to_string(&set)?, "\"openid profile\"");
        assert!(serde_json::from_str::<ScopeSet>("\"openid  profile\"").is_err());
        Ok(())
    }
}
