//! [`Credentials`]: the secrets a client authenticates with, shared by service
//! users and API apps.

use time::OffsetDateTime;

use crate::clock::whole_seconds;
use crate::secret::{SecretDigest, verify_secrets};

/// The secrets a client (a [`ServiceUser`](crate::ServiceUser) or an
/// [`ApiApp`](crate::ApiApp)) authenticates with: the digest of its current
/// secret, and the secret it had before, kept for a grace period after a rotation.
///
/// Both records hold one as their `credentials` field; verification
/// ([`matches`](Self::matches)) and rotation ([`rotate`](Self::rotate), which the
/// patches of both records go through) are written once, here. At most two secrets
/// work at a time: the current one, and the previous one until its expiry.
///
/// With the `serde` feature it is written as two fields, `secret` (the current
/// digest or `null`) and `previous_secret` (a [`PreviousSecret`] or `null`); both
/// records flatten it, so that these are fields of the record itself.
///
/// ```
/// use tessera_store::{ClientSecret, Credentials, SecretDigest};
/// use time::{Duration, OffsetDateTime};
///
/// let (old, new) = (ClientSecret::generate()?, ClientSecret::generate()?);
/// let now = OffsetDateTime::now_utc();
/// let mut credentials = Credentials::new(SecretDigest::of(&old)?);
/// assert!(credentials.matches(old.expose(), now));
///
/// // A rotation with a grace period: the old secret works for five more minutes.
/// credentials.rotate(SecretDigest::of(&new)?, Some(now + Duration::minutes(5)));
/// assert!(credentials.matches(new.expose(), now));
/// assert!(credentials.matches(old.expose(), now));
/// assert!(!credentials.matches(old.expose(), now + Duration::minutes(6)));
/// assert!(!Credentials::NONE.matches(new.expose(), now));
/// # Ok::<(), tessera_store::RandomError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Credentials {
    /// Digest of the current client secret; `None` until one is set.
    #[cfg_attr(feature = "serde", serde(default))]
    pub secret: Option<SecretDigest>,
    /// The secret the client had before the current one, still accepted until its
    /// expiry (a rotation with a grace period); `None` when the old secret stopped
    /// at once. Serialized as `previous_secret`.
    #[cfg_attr(feature = "serde", serde(default, rename = "previous_secret"))]
    pub previous: Option<PreviousSecret>,
}

impl Credentials {
    /// No secret at all: nothing matches. What a new service user has, and what a
    /// client that was not found is checked against (with the same work).
    pub const NONE: Self = Self { secret: None, previous: None };

    /// `secret` as the current secret, and no previous one.
    pub const fn new(secret: SecretDigest) -> Self {
        Self { secret: Some(secret), previous: None }
    }

    /// Whether `presented` is the current secret, or the previous secret and `now`
    /// is before that one's expiry.
    ///
    /// The work does not depend on the outcome, nor on which secrets exist (see
    /// [`verify_secrets`]): checking a client that was not found against
    /// [`Credentials::NONE`] costs what a wrong secret costs. Whether the client is
    /// enabled is not checked here.
    pub fn matches(&self, presented: &str, now: OffsetDateTime) -> bool {
        verify_secrets(self.secret.as_ref(), self.previous.as_ref(), presented, now)
    }

    /// Replaces the current secret with `new`.
    ///
    /// With `keep_previous_until`, the secret replaced becomes the previous secret,
    /// accepted until that time (truncated to whole seconds); a previous secret kept
    /// by an earlier rotation is dropped, whether or not it expired, so at most two
    /// secrets work at a time. Without it, or when there was no current secret, no
    /// previous secret is kept: the replaced secret stops working at once, and so
    /// does any older one.
    ///
    /// The rules do not depend on the time of the rotation: an expiry that has
    /// passed already is stored as given, and [`matches`](Self::matches) refuses
    /// the previous secret from then on.
    pub fn rotate(&mut self, new: SecretDigest, keep_previous_until: Option<OffsetDateTime>) {
        let replaced = self.secret.replace(new);
        self.previous = replaced
            .zip(keep_previous_until)
            .map(|(digest, expires_at)| PreviousSecret::new(digest, expires_at));
    }
}

/// A client's previous secret, still accepted until its grace period ends: what a
/// rotation with a grace period keeps of the secret it replaced
/// ([`Credentials::previous`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PreviousSecret {
    /// Digest of the previous secret.
    pub digest: SecretDigest,
    /// When it stops working (whole seconds): it is accepted strictly before this time.
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub expires_at: OffsetDateTime,
}

impl PreviousSecret {
    /// `digest`, accepted until `expires_at` (truncated to whole seconds).
    pub fn new(digest: SecretDigest, expires_at: OffsetDateTime) -> Self {
        Self { digest, expires_at: whole_seconds(expires_at) }
    }

    /// Whether it is still accepted at `now`: `now` is before its expiry.
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        now < self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;
    use crate::secret::ClientSecret;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(secs)
    }

    fn digest(byte: u8) -> SecretDigest {
        SecretDigest::from_bytes([byte; 48])
    }

    #[test]
    fn rotation_keeps_at_most_one_previous_secret() {
        let (a, b, c, d) = (digest(1), digest(2), digest(3), digest(4));
        let mut credentials = Credentials::new(a);
        credentials.rotate(b, Some(t(260) + Duration::milliseconds(700)));
        assert_eq!(credentials.secret, Some(b));
        assert_eq!(credentials.previous, Some(PreviousSecret { digest: a, expires_at: t(260) }));

        credentials.rotate(c, Some(t(300)));
        assert_eq!(
            credentials,
            Credentials {
                secret: Some(c),
                previous: Some(PreviousSecret { digest: b, expires_at: t(300) })
            },
            "a grace rotation replaces the older kept secret"
        );

        credentials.rotate(d, None);
        assert_eq!(credentials, Credentials::new(d), "without a grace period the old one goes");

        let mut fresh = Credentials::NONE;
        fresh.rotate(a, Some(t(300)));
        assert_eq!(fresh, Credentials::new(a), "no secret before, nothing to keep");

        let mut expired = Credentials::new(a);
        expired.rotate(b, Some(t(10)));
        assert_eq!(
            expired.previous,
            Some(PreviousSecret { digest: a, expires_at: t(10) }),
            "an expiry in the past is stored as given"
        );
        assert_eq!(Credentials::default(), Credentials::NONE);
    }

    #[test]
    fn matches_the_current_and_the_unexpired_previous_secret() -> TestResult {
        let (new, old) =
            (ClientSecret::provided(&"n".repeat(32))?, ClientSecret::provided(&"o".repeat(32))?);
        assert!(!Credentials::NONE.matches("", t(100)), "no secret matches nothing");
        assert!(!Credentials::NONE.matches(new.expose(), t(100)));
        let mut credentials = Credentials::new(SecretDigest::of(&old)?);
        credentials.rotate(SecretDigest::of(&new)?, Some(t(200)));
        assert!(credentials.matches(new.expose(), t(300)), "the current secret does not expire");
        assert!(credentials.matches(old.expose(), t(199)));
        assert!(!credentials.matches(old.expose(), t(200)), "expired at its expiry");
        assert!(!credentials.matches("wrong", t(150)));
        let previous_only = Credentials { secret: None, ..credentials };
        assert!(previous_only.matches(old.expose(), t(150)), "a previous secret alone");
        assert!(!previous_only.matches(new.expose(), t(150)));
        Ok(())
    }
}
