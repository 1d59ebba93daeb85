use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use base64ct::{Base64UrlUnpadded, Encoding};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tessera_scope::ScopeSet;
use time::{Duration, OffsetDateTime};

use crate::clock::whole_seconds;
use crate::credentials::Credentials;
use crate::ids::{IdError, TokenId, UserId, Username};
use crate::projects::RoleClaims;
use crate::secret::{RandomError, SecretDigest};

/// A machine-to-machine client: it authenticates with its username (the client ID)
/// and a secret, and receives access tokens with the client credentials grant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServiceUser {
    /// Stable id, the `sub` of its tokens.
    pub id: UserId,
    /// Unique name, also the OAuth client ID.
    pub username: Username,
    /// Human-readable name.
    pub display_name: DisplayName,
    /// What the user is for, in free text; empty when none was given (and for users
    /// stored before descriptions existed). The store keeps it as given: the
    /// administration checks it ([`ServiceUser::check_description`]).
    #[cfg_attr(feature = "serde", serde(default))]
    pub description: String,
    /// Which kind of access token the user receives.
    pub access_token_type: AccessTokenType,
    /// How long its access tokens live.
    pub token_lifetime: TokenLifetime,
    /// Its client secret (the digest; none until one is generated) and the
    /// previous one, kept for a grace period after a rotation. Serialized flat, as
    /// the record's own fields `secret` and `previous_secret`.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub credentials: Credentials,
    /// A disabled user cannot authenticate.
    pub enabled: bool,
    /// When the user was created (whole seconds).
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub created_at: OffsetDateTime,
    /// When the user last changed (whole seconds).
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub updated_at: OffsetDateTime,
    /// Tokens of this user issued before this time (whole seconds) are revoked:
    /// introspection, userinfo and revocation treat them as inactive, opaque and JWT
    /// alike; `None`: no cut-off.
    ///
    /// Token issue times are whole seconds too, so a token issued during the second
    /// of the cut-off has an `issued_at` equal to it: not before it.
    /// A patch sets it ([`ServiceUserPatch::tokens_revoked_before`]); none clears it.
    #[cfg_attr(feature = "serde", serde(default, with = "time::serde::rfc3339::option"))]
    pub tokens_revoked_before: Option<OffsetDateTime>,
}

impl ServiceUser {
    /// The longest description, in characters.
    pub const MAX_DESCRIPTION_CHARS: usize = 500;

    /// A new enabled user with a fresh id, opaque tokens, the default lifetime, no
    /// description, no secret and no revocation cut-off.
    pub fn new(username: Username, now: OffsetDateTime) -> Result<Self, RandomError> {
        let now = whole_seconds(now);
        Ok(Self {
            id: UserId::generate()?,
            display_name: DisplayName::from_username(&username),
            description: String::new(),
            username,
            access_token_type: AccessTokenType::default(),
            token_lifetime: TokenLifetime::default(),
            credentials: Credentials::NONE,
            enabled: true,
            created_at: now,
            updated_at: now,
            tokens_revoked_before: None,
        })
    }

    /// Checks a description: at most [`MAX_DESCRIPTION_CHARS`](Self::MAX_DESCRIPTION_CHARS)
    /// characters, with no control character (line breaks and tabs included) and no
    /// invisible formatting character, the rules of [`DisplayName::new`]. Unlike a
    /// display name it may be empty (no description).
    pub fn check_description(value: &str) -> Result<(), IdError> {
        const WHAT: &str = "description";
        if value.chars().count() > Self::MAX_DESCRIPTION_CHARS {
            return Err(IdError::Length { what: WHAT, max: Self::MAX_DESCRIPTION_CHARS });
        }
        if value.chars().any(char::is_control) {
            return Err(IdError::Character { what: WHAT, allowed: "printable characters" });
        }
        if value.chars().any(is_formatting) {
            return Err(IdError::Character {
                what: WHAT,
                allowed: "visible characters (no bidirectional or zero-width formatting)",
            });
        }
        Ok(())
    }

    /// Applies a patch in place (as a backend does when it stores one).
    pub fn apply(&mut self, patch: &ServiceUserPatch) {
        if let Some(v) = &patch.display_name {
            self.display_name = v.clone();
        }
        if let Some(v) = &patch.description {
            self.description.clone_from(v);
        }
        if let Some(v) = patch.access_token_type {
            self.access_token_type = v;
        }
        if let Some(v) = patch.token_lifetime {
            self.token_lifetime = v;
        }
        if let Some(v) = patch.enabled {
            self.enabled = v;
        }
        if let Some(v) = patch.secret {
            self.credentials.rotate(v, patch.keep_previous_until);
        } else if patch.clear_secret {
            self.credentials = Credentials::NONE;
        }
        if let Some(v) = patch.tokens_revoked_before {
            self.tokens_revoked_before = Some(whole_seconds(v));
        }
        self.updated_at = whole_seconds(patch.updated_at);
    }
}

/// A change to some fields of a service user; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServiceUserPatch {
    /// New display name.
    #[cfg_attr(feature = "serde", serde(default))]
    pub display_name: Option<DisplayName>,
    /// New description (`Some("")` removes it). The store keeps it as given.
    #[cfg_attr(feature = "serde", serde(default))]
    pub description: Option<String>,
    /// New access token type.
    #[cfg_attr(feature = "serde", serde(default))]
    pub access_token_type: Option<AccessTokenType>,
    /// New token lifetime.
    #[cfg_attr(feature = "serde", serde(default))]
    pub token_lifetime: Option<TokenLifetime>,
    /// Enable or disable.
    #[cfg_attr(feature = "serde", serde(default))]
    pub enabled: Option<bool>,
    /// Replace the secret ([`Credentials::rotate`]). Any previous secret is
    /// dropped, and the one replaced stops working at once unless
    /// [`keep_previous_until`](Self::keep_previous_until) is set.
    #[cfg_attr(feature = "serde", serde(default))]
    pub secret: Option<SecretDigest>,
    /// With [`secret`](Self::secret): keep the secret being replaced as the
    /// [`previous`](Credentials::previous) secret, accepted until this time
    /// (whole seconds), so that clients can move to the new one without downtime.
    /// At most one previous secret is kept: an older one is dropped. Ignored without
    /// `secret`.
    #[cfg_attr(feature = "serde", serde(default, with = "time::serde::rfc3339::option"))]
    pub keep_previous_until: Option<OffsetDateTime>,
    /// Remove the user's secrets: when `true`, the current and the previous secret
    /// are dropped ([`Credentials::NONE`]) and stop working at once; the user then
    /// authenticates only with a key or a personal access token until a later patch
    /// sets a [`secret`](Self::secret). `false` (the default) leaves them as they are.
    /// When [`secret`](Self::secret) is set too, `secret` wins: the secret is
    /// replaced as usual and this field is ignored.
    #[cfg_attr(feature = "serde", serde(default))]
    pub clear_secret: bool,
    /// Set the user's [`tokens_revoked_before`](ServiceUser::tokens_revoked_before)
    /// to this time (truncated to whole seconds): its tokens issued before it are
    /// revoked. A patch can only set the cut-off, never clear it; the value of a
    /// later patch replaces the stored one, whether it is earlier or later (the
    /// last patch wins, as for every field). `None` leaves it unchanged.
    #[cfg_attr(feature = "serde", serde(default, with = "time::serde::rfc3339::option"))]
    pub tokens_revoked_before: Option<OffsetDateTime>,
    /// The time of the change.
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub updated_at: OffsetDateTime,
}

impl ServiceUserPatch {
    /// A patch that changes nothing but the update time.
    pub fn at(updated_at: OffsetDateTime) -> Self {
        Self {
            display_name: None,
            description: None,
            access_token_type: None,
            token_lifetime: None,
            enabled: None,
            secret: None,
            keep_previous_until: None,
            clear_secret: false,
            tokens_revoked_before: None,
            updated_at,
        }
    }
}

/// The kind of access token a service user receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessTokenType {
    /// A random reference, looked up in the store on introspection (the default).
    #[default]
    Opaque,
    /// A self-contained RFC 9068 JWT.
    Jwt,
}

impl AccessTokenType {
    /// `opaque` or `jwt`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AccessTokenType::Opaque => "opaque",
            AccessTokenType::Jwt => "jwt",
        }
    }
}

impl fmt::Display for AccessTokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccessTokenType {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "opaque" => Ok(AccessTokenType::Opaque),
            "jwt" => Ok(AccessTokenType::Jwt),
            _ => Err(IdError::Character { what: "access token type", allowed: "opaque or jwt" }),
        }
    }
}

/// How long a service user's access tokens live: 1 second to 366 days; 12 hours by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenLifetime(u32);

impl TokenLifetime {
    /// The default: 12 hours.
    pub const DEFAULT: TokenLifetime = TokenLifetime(12 * 60 * 60);
    /// The longest lifetime: 366 days.
    pub const MAX_SECS: u32 = 366 * 24 * 60 * 60;

    /// A lifetime of `secs` seconds.
    pub fn from_secs(secs: u64) -> Result<Self, IdError> {
        match u32::try_from(secs) {
            Ok(s) if (1..=Self::MAX_SECS).contains(&s) => Ok(Self(s)),
            _ => Err(IdError::Length {
                what: "token lifetime (seconds)",
                max: Self::MAX_SECS as usize,
            }),
        }
    }

    /// The lifetime in seconds.
    pub const fn as_secs(self) -> u32 {
        self.0
    }

    /// The lifetime as a duration.
    pub fn duration(self) -> Duration {
        Duration::seconds(i64::from(self.0))
    }
}

impl Default for TokenLifetime {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A human-readable name: 1 to 200 characters, no control characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(Arc<str>);

/// Invisible characters that change how text around them displays (Unicode format
/// characters): bidirectional embeddings, overrides and isolates, zero-width spaces and
/// joiners, invisible operators, the byte order mark and the soft hyphen.
fn is_formatting(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

impl DisplayName {
    /// The longest display name, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Checks `value` and wraps it: 1 to [`MAX_CHARS`](Self::MAX_CHARS) characters,
    /// not only spaces, with no control character and no invisible formatting
    /// character (bidirectional overrides and isolates, zero-width characters, the
    /// byte order mark), which would make a name display as another.
    pub fn new(value: &str) -> Result<Self, IdError> {
        let name = Self::from_stored(value)?;
        if value.chars().any(is_formatting) {
            return Err(IdError::Character {
                what: "display name",
                allowed: "visible characters (no bidirectional or zero-width formatting)",
            });
        }
        Ok(name)
    }

    /// Checks a name read back from a store: the rules of [`new`](Self::new) but for
    /// formatting characters, which names stored by earlier versions may hold.
    pub fn from_stored(value: &str) -> Result<Self, IdError> {
        const WHAT: &str = "display name";
        let chars = value.chars().count();
        if value.trim().is_empty() || chars > Self::MAX_CHARS {
            return Err(IdError::Length { what: WHAT, max: Self::MAX_CHARS });
        }
        if value.chars().any(char::is_control) {
            return Err(IdError::Character { what: WHAT, allowed: "printable characters" });
        }
        Ok(Self(value.into()))
    }

    /// Wraps a name known to be valid (a literal of this crate).
    pub(crate) fn from_trusted(value: &str) -> Self {
        Self(value.into())
    }

    /// The display name a user gets when none is given: its username.
    pub fn from_username(username: &Username) -> Self {
        Self(username.as_str().into())
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// Length of an opaque token minted here: base64url (unpadded) of 38 bytes, a 6-byte
/// issue-time prefix followed by 32 random bytes.
pub const OPAQUE_TOKEN_LEN: usize = 51;

/// Bytes of an opaque token's issue-time prefix: its issue time in milliseconds since
/// the Unix epoch, 48 bits big-endian. It carries no secret (the 256 random bits after
/// it do); it only makes the keys of tokens issued close together sort together.
pub const TOKEN_PREFIX_LEN: usize = 6;

/// The base64url characters that encode [`TOKEN_PREFIX_LEN`] bytes.
const TOKEN_PREFIX_CHARS: usize = TOKEN_PREFIX_LEN / 3 * 4;

/// The key under which an opaque access token's record is stored, derived from the
/// token by a one-way function, so a leaked database holds no usable token.
///
/// For a token minted here ([`OPAQUE_TOKEN_LEN`] characters), the key is the token's
/// issue-time prefix ([`TOKEN_PREFIX_LEN`] bytes) followed by the first 26 bytes
/// (208 bits) of the SHA-256 digest of the whole token. Keys of tokens issued in the
/// same millisecond are neighbours in an ordered index, so the records a storage
/// backend writes together land on the same few index pages instead of one random
/// page each. For any other string (tokens of another shape, such as those minted by
/// earlier releases as 43 characters) the key is the whole SHA-256 digest, so their
/// records are found as before.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The key of a token as presented on the wire.
    pub fn of(token: &str) -> Self {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let Some(prefix) = Self::issue_prefix(token) else {
            return Self(hash);
        };
        let mut key = [0u8; 32];
        key[..TOKEN_PREFIX_LEN].copy_from_slice(&prefix);
        key[TOKEN_PREFIX_LEN..].copy_from_slice(&hash[..32 - TOKEN_PREFIX_LEN]);
        Self(key)
    }

    /// The issue-time prefix of a token of the minted shape.
    fn issue_prefix(token: &str) -> Option<[u8; TOKEN_PREFIX_LEN]> {
        if token.len() != OPAQUE_TOKEN_LEN {
            return None;
        }
        let mut prefix = [0u8; TOKEN_PREFIX_LEN];
        let encoded = token.as_bytes().get(..TOKEN_PREFIX_CHARS)?;
        Base64UrlUnpadded::decode(encoded, &mut prefix).ok()?;
        Some(prefix)
    }

    /// The issue-time prefix that leads a token issued at `unix_millis`.
    pub fn prefix_at(unix_millis: u64) -> [u8; TOKEN_PREFIX_LEN] {
        let mut prefix = [0u8; TOKEN_PREFIX_LEN];
        prefix.copy_from_slice(&unix_millis.to_be_bytes()[8 - TOKEN_PREFIX_LEN..]);
        prefix
    }

    /// Wraps a stored digest.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The last bytes are digest bytes whatever the token's shape.
        write!(f, "TokenDigest(…")?;
        for b in &self.0[26..] {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// What the store keeps of an issued opaque token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TokenRecord {
    /// Digest of the token.
    pub digest: TokenDigest,
    /// Unique id of the token.
    pub jti: TokenId,
    /// The service user it was issued to.
    pub user_id: UserId,
    /// The client ID it was issued to.
    pub client_id: Username,
    /// The scopes granted.
    pub scopes: ScopeSet,
    /// The audience (project ids and the client ID).
    pub audience: Vec<String>,
    /// The roles granted with the token.
    pub roles: RoleClaims,
    /// When it was issued (whole seconds).
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub issued_at: OffsetDateTime,
    /// When it expires (whole seconds).
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub expires_at: OffsetDateTime,
    /// When it was revoked, if it was.
    #[cfg_attr(feature = "serde", serde(default, with = "time::serde::rfc3339::option"))]
    pub revoked_at: Option<OffsetDateTime>,
}

impl TokenRecord {
    /// Whether the token may still be used at `now`: not revoked and not expired.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::PreviousSecret;

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn lifetimes() {
        assert_eq!(TokenLifetime::default().as_secs(), 43_200);
        assert!(TokenLifetime::from_secs(0).is_err());
        assert!(TokenLifetime::from_secs(u64::from(TokenLifetime::MAX_SECS) + 1).is_err());
        assert_eq!(TokenLifetime::from_secs(60).map(|l| l.duration()), Ok(Duration::minutes(1)));
    }

    #[test]
    fn token_keys_lead_with_the_issue_time_of_minted_tokens() {
        let at = 1_700_000_000_123u64;
        let mut raw = [7u8; 38];
        raw[..TOKEN_PREFIX_LEN].copy_from_slice(&TokenDigest::prefix_at(at));
        let token = Base64UrlUnpadded::encode_string(&raw);
        assert_eq!(token.len(), OPAQUE_TOKEN_LEN);
        let key = TokenDigest::of(&token);
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        assert_eq!(&key.as_bytes()[..TOKEN_PREFIX_LEN], &at.to_be_bytes()[2..]);
        assert_eq!(&key.as_bytes()[TOKEN_PREFIX_LEN..], &hash[..26]);
        // Later tokens sort after earlier ones, whatever their random part.
        let mut later = [0u8; 38];
        later[..TOKEN_PREFIX_LEN].copy_from_slice(&TokenDigest::prefix_at(at + 1));
        assert!(TokenDigest::of(&Base64UrlUnpadded::encode_string(&later)) > key);
        // One character changed in the random part: another key.
        let mut other = token.clone().into_bytes();
        other[20] = if other[20] == b'A' { b'B' } else { b'A' };
        let other = String::from_utf8(other).unwrap_or_default();
        assert_ne!(TokenDigest::of(&other), key);
        assert_eq!(&TokenDigest::of(&other).as_bytes()[..TOKEN_PREFIX_LEN], &at.to_be_bytes()[2..]);
    }

    #[test]
    fn other_token_shapes_are_keyed_by_their_whole_digest() {
        // A 43-character token of an earlier release, a JWT, a 51-character string
        // whose first characters are not base64url: the whole SHA-256.
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
        let odd = format!("{}{}", "!".repeat(8), "A".repeat(OPAQUE_TOKEN_LEN - 8));
        for token in ["Ln-PJQ7jSASVXN7F9Go4u2bOP9yu6M0cu7usc7xAnTk", jwt, odd.as_str(), ""] {
            let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            assert_eq!(TokenDigest::of(token).as_bytes(), &hash, "{token}");
        }
        assert!(!format!("{:?}", TokenDigest::of(jwt)).contains("eyJ"));
    }

    #[test]
    fn display_names() {
        assert!(DisplayName::new("Billing job").is_ok());
        assert!(DisplayName::new("  ").is_err());
        assert!(DisplayName::new("a\nb").is_err());
        assert!(DisplayName::new(&"é".repeat(200)).is_ok());
        assert!(DisplayName::new(&"é".repeat(201)).is_err());
        // Invisible formatting: refused as input, still read back from a store.
        for hostile in [
            "admin\u{202E}boj-gnillib",
            "pay\u{200B}roll",
            "\u{FEFF}name",
            "a\u{2066}b\u{2069}",
            "soft\u{00AD}hyphen",
        ] {
            assert!(DisplayName::new(hostile).is_err(), "{hostile:?}");
            assert!(DisplayName::from_stored(hostile).is_ok(), "{hostile:?}");
        }
        assert!(DisplayName::from_stored("a\nb").is_err());
        assert!(DisplayName::new("Zürich ✓ 東京").is_ok());
    }

    #[test]
    fn token_types_parse() {
        assert_eq!("jwt".parse::<AccessTokenType>(), Ok(AccessTokenType::Jwt));
        assert_eq!("opaque".parse::<AccessTokenType>(), Ok(AccessTokenType::Opaque));
        assert!("JWT".parse::<AccessTokenType>().is_err());
    }

    #[test]
    fn patches_apply_only_what_they_name() -> Result<(), Box<dyn std::error::Error>> {
        let mut user = ServiceUser::new(Username::new("u")?, t(100))?;
        let before = user.clone();
        let mut patch = ServiceUserPatch::at(t(200));
        patch.access_token_type = Some(AccessTokenType::Jwt);
        user.apply(&patch);
        assert_eq!(user.access_token_type, AccessTokenType::Jwt);
        assert_eq!(user.token_lifetime, before.token_lifetime);
        assert_eq!(user.display_name.as_str(), "u");
        assert_eq!(user.updated_at, t(200));
        assert_eq!(user.created_at, t(100));
        Ok(())
    }

    #[test]
    fn revocation_cut_offs_are_set_in_whole_seconds_and_replaced()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut user = ServiceUser::new(Username::new("u")?, t(100))?;
        assert_eq!(user.tokens_revoked_before, None, "a new user has no cut-off");
        let mut patch = ServiceUserPatch::at(t(200));
        patch.tokens_revoked_before = Some(t(150) + Duration::milliseconds(900));
        user.apply(&patch);
        assert_eq!(user.tokens_revoked_before, Some(t(150)), "whole seconds");

        let mut unrelated = ServiceUserPatch::at(t(210));
        unrelated.enabled = Some(false);
        user.apply(&unrelated);
        assert_eq!(user.tokens_revoked_before, Some(t(150)), "a patch without it keeps it");

        patch.tokens_revoked_before = Some(t(300));
        user.apply(&patch);
        assert_eq!(user.tokens_revoked_before, Some(t(300)), "a later patch replaces it");
        patch.tokens_revoked_before = Some(t(120));
        user.apply(&patch);
        assert_eq!(user.tokens_revoked_before, Some(t(120)), "even with an earlier time");
        Ok(())
    }

    #[test]
    fn rotation_keeps_at_most_one_previous_secret() -> Result<(), Box<dyn std::error::Error>> {
        let (a, b, c) = (
            SecretDigest::from_bytes([1; 48]),
            SecretDigest::from_bytes([2; 48]),
            SecretDigest::from_bytes([3; 48]),
        );
        let mut user = ServiceUser::new(Username::new("u")?, t(100))?;
        user.credentials.secret = Some(a);
        let mut patch = ServiceUserPatch::at(t(200));
        patch.secret = Some(b);
        patch.keep_previous_until = Some(t(260) + Duration::milliseconds(700));
        user.apply(&patch);
        assert_eq!(user.credentials.secret, Some(b));
        assert_eq!(
            user.credentials.previous,
            Some(PreviousSecret { digest: a, expires_at: t(260) })
        );

        let mut unrelated = ServiceUserPatch::at(t(210));
        unrelated.enabled = Some(false);
        unrelated.keep_previous_until = Some(t(999));
        user.apply(&unrelated);
        assert_eq!(
            user.credentials.previous.map(|p| p.expires_at),
            Some(t(260)),
            "no secret, no change"
        );

        patch.secret = Some(c);
        patch.keep_previous_until = Some(t(300));
        user.apply(&patch);
        assert_eq!(
            user.credentials.previous,
            Some(PreviousSecret { digest: b, expires_at: t(300) })
        );

        patch.keep_previous_until = None;
        user.apply(&patch);
        assert_eq!(user.credentials.previous, None, "without a grace period the old secret goes");

        let mut fresh = ServiceUser::new(Username::new("v")?, t(100))?;
        patch.keep_previous_until = Some(t(300));
        fresh.apply(&patch);
        assert_eq!(fresh.credentials.previous, None, "no secret before, nothing to keep");
        Ok(())
    }

    #[test]
    fn descriptions_are_set_by_patches_and_checked_like_display_names()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut user = ServiceUser::new(Username::new("u")?, t(100))?;
        assert_eq!(user.description, "", "none at first");
        let mut patch = ServiceUserPatch::at(t(200));
        patch.description = Some("Nightly billing export".to_owned());
        user.apply(&patch);
        assert_eq!(user.description, "Nightly billing export");
        user.apply(&ServiceUserPatch::at(t(300)));
        assert_eq!(user.description, "Nightly billing export", "a patch without it keeps it");
        patch.description = Some(String::new());
        user.apply(&patch);
        assert_eq!(user.description, "", "an empty one removes it");

        for good in ["", "Exports invoices — nightly", "Ünïcödé ✓", &"x".repeat(500)] {
            assert!(ServiceUser::check_description(good).is_ok(), "{good:?}");
        }
        for bad in [
            "x".repeat(501),
            "two\nlines".to_owned(),
            "tab\there".to_owned(),
            "right-to-left \u{202E}override".to_owned(),
            "zero\u{200B}width".to_owned(),
        ] {
            assert!(ServiceUser::check_description(&bad).is_err(), "{bad:?}");
        }
        assert!(ServiceUser::check_description(&"é".repeat(500)).is_ok(), "characters, not bytes");
        Ok(())
    }

    #[test]
    fn clearing_drops_both_secrets_unless_a_new_one_is_set()
    -> Result<(), Box<dyn std::error::Error>> {
        let (a, b) = (SecretDigest::from_bytes([1; 48]), SecretDigest::from_bytes([2; 48]));
        let mut user = ServiceUser::new(Username::new("u")?, t(100))?;
        user.credentials = Credentials::new(a);
        user.credentials.previous = Some(PreviousSecret::new(b, t(300)));
        let mut both = ServiceUserPatch::at(t(200));
        both.clear_secret = true;
        both.secret = Some(b);
        let mut rotated = user.clone();
        rotated.apply(&both);
        assert_eq!(rotated.credentials, Credentials::new(b), "a new secret wins");

        let mut clear = ServiceUserPatch::at(t(210));
        clear.clear_secret = true;
        clear.keep_previous_until = Some(t(999));
        user.apply(&clear);
        assert_eq!(user.credentials, Credentials::NONE, "current and previous are gone");
        assert!(!user.credentials.matches("anything", t(250)));
        assert_eq!(user.updated_at, t(210));
        user.apply(&clear);
        assert_eq!(user.credentials, Credentials::NONE, "clearing nothing changes nothing");
        Ok(())
    }

    #[test]
    fn secret_matches_current_and_unexpired_previous() -> Result<(), Box<dyn std::error::Error>> {
        let mut user = ServiceUser::new(Username::new("u")?, t(100))?;
        assert!(!user.credentials.matches("", t(100)), "no secret matches nothing");
        user.credentials.secret =
            Some(SecretDigest::of(&crate::ClientSecret::provided(&"n".repeat(32))?)?);
        user.credentials.previous = Some(PreviousSecret::new(
            SecretDigest::of(&crate::ClientSecret::provided(&"o".repeat(32))?)?,
            t(200),
        ));
        assert!(user.credentials.matches(&"n".repeat(32), t(300)));
        assert!(user.credentials.matches(&"o".repeat(32), t(199)));
        assert!(!user.credentials.matches(&"o".repeat(32), t(200)), "expired at its expiry");
        assert!(!user.credentials.matches("wrong", t(150)));
        Ok(())
    }

    #[test]
    fn token_activity() -> Result<(), Box<dyn std::error::Error>> {
        let mut record = TokenRecord {
            digest: TokenDigest::of("token"),
            jti: TokenId::generate()?,
            user_id: UserId::generate()?,
            client_id: Username::new("u")?,
            scopes: ScopeSet::new(),
            audience: vec![],
            roles: RoleClaims::default(),
            issued_at: t(100),
            expires_at: t(200),
            revoked_at: None,
        };
        assert!(record.is_active(t(199)));
        assert!(!record.is_active(t(200)));
        record.revoked_at = Some(t(150));
        assert!(!record.is_active(t(160)));
        assert_eq!(format!("{:?}", record.digest).len(), "TokenDigest(…)".len() + 12);
        Ok(())
    }
}
