//! Bounded caches of decisions, keyed by the SHA-256 digest of the token (never the
//! token itself): accepted tokens until they expire or for the configured TTL,
//! whichever comes first; refused tokens briefly.

use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use sha2::{Digest as _, Sha256};

use crate::error::Rejection;
use crate::principal::Principal;

/// The cache key: SHA-256 of the token.
pub(crate) type Digest = [u8; 32];

pub(crate) fn digest(token: &str) -> Digest {
    Sha256::digest(token.as_bytes()).into()
}

/// An accepted token's principal, and the instant the entry stops being used.
#[derive(Clone)]
pub(crate) struct Accepted {
    pub(crate) principal: Principal,
    until: Instant,
}

impl Accepted {
    pub(crate) fn new(principal: Principal, until: Instant) -> Self {
        Accepted { principal, until }
    }
}

/// Each accepted entry lives until its own `until`.
struct UntilExpiry;

impl Expiry<Digest, Accepted> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &Digest,
        value: &Accepted,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.until.saturating_duration_since(created_at))
    }
}

/// The two caches.
pub(crate) struct Caches {
    pub(crate) accepted: Cache<Digest, Accepted>,
    pub(crate) refused: Cache<Digest, Rejection>,
}

impl Caches {
    /// Caches of at most `accepted` and `refused` entries; refused entries live for
    /// `refused_ttl`.
    pub(crate) fn new(accepted: u64, refused: u64, refused_ttl: Duration) -> Self {
        Caches {
            accepted: Cache::builder().max_capacity(accepted).expire_after(UntilExpiry).build(),
            refused: Cache::builder().max_capacity(refused).time_to_live(refused_ttl).build(),
        }
    }

    /// The entry counts, after the caches' pending maintenance.
    pub(crate) async fn sizes(&self) -> (u64, u64) {
        self.accepted.run_pending_tasks().await;
        self.refused.run_pending_tasks().await;
        (self.accepted.entry_count(), self.refused.entry_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::{Claims, TokenKind};

    fn principal(sub: &str) -> Principal {
        let claims: Claims =
            serde_json::from_str(&format!(r#"{{"sub":"{sub}","client_id":"c"}}"#)).expect("claims");
        Principal::from_claims(claims, TokenKind::Opaque).expect("principal")
    }

    #[tokio::test]
    async fn both_caches_stay_within_their_capacity() {
        let caches = Caches::new(50, 20, Duration::from_secs(60));
        let until = Instant::now() + Duration::from_secs(60);
        for i in 0..2_000 {
            let key = digest(&format!("token-{i}"));
            caches.accepted.insert(key, Accepted::new(principal("s"), until)).await;
            caches.refused.insert(key, Rejection::Inactive).await;
        }
        let (accepted, refused) = caches.sizes().await;
        assert!(accepted <= 50, "{accepted} accepted entries");
        assert!(refused <= 20, "{refused} refused entries");
        assert!(accepted > 0 && refused > 0);
    }

    #[tokio::test]
    async fn an_accepted_entry_lives_until_its_own_instant() {
        let caches = Caches::new(10, 10, Duration::from_secs(60));
        let short = digest("short");
        let long = digest("long");
        let now = Instant::now();
        caches.accepted.insert(short, Accepted::new(principal("a"), now)).await;
        caches
            .accepted
            .insert(long, Accepted::new(principal("b"), now + Duration::from_secs(60)))
            .await;
        assert!(caches.accepted.get(&short).await.is_none(), "expired at once");
        let kept = caches.accepted.get(&long).await.map(|a| a.principal.subject().to_owned());
        assert_eq!(kept.as_deref(), Some("b"));
    }

    #[test]
    fn the_key_is_the_sha256_of_the_token() {
        assert_eq!(digest("abc")[..4], [0xba, 0x78, 0x16, 0xbf], "SHA-256(\"abc\") = ba7816bf…");
    }
}
