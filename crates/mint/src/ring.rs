//! Key rotation: the keys every instance signs with and publishes, shared through
//! the store and rotated on a schedule.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use tessera_store::{SigningAlgorithm, SigningKeyRecord, SigningKeyStore, whole_seconds};
use time::{Duration, OffsetDateTime};

use crate::KeyError;
use crate::jwt::{AccessTokenClaims, JwtHeaderType, Verifier, VerifyError, check_time};
use crate::master::MasterKey;
use crate::signing::SigningKey;

/// How long verifiers may cache the key set (`Cache-Control: max-age`), in seconds.
/// It is far shorter than the time a new key is published before it signs, and than
/// the time a retired key stays published.
pub const JWKS_MAX_AGE_SECS: u64 = 300;

/// When keys are created, start signing, and are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// The algorithm of new keys.
    pub algorithm: SigningAlgorithm,
    /// How long each key signs before the next one takes over (default 6 hours).
    pub period: Duration,
    /// How long before it starts signing a new key is published (default 10 minutes,
    /// twice the key set's cache lifetime), so verifiers know it in time.
    pub prepublish: Duration,
    /// The longest lifetime of a JWT access token (default 24 hours). A retired key
    /// stays published this long after it stopped signing, so every token it signed
    /// verifies until it expires; JWTs are capped to this lifetime.
    pub max_token_lifetime: Duration,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            algorithm: SigningAlgorithm::default(),
            period: Duration::hours(6),
            prepublish: Duration::seconds(2 * JWKS_MAX_AGE_SECS as i64),
            max_token_lifetime: Duration::hours(24),
        }
    }
}

/// The keys in force: the ones published, and which signs at a given time.
pub struct KeySet {
    entries: Vec<Entry>,
    jwks: Bytes,
}

struct Entry {
    key: Arc<SigningKey>,
    activates_at: OffsetDateTime,
    verifier: Arc<Verifier>,
}

impl KeySet {
    fn new(entries: Vec<Entry>) -> Self {
        let keys: Vec<&serde_json::Value> = entries.iter().map(|e| e.key.public_jwk()).collect();
        let jwks = serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap_or_default();
        Self { entries, jwks: Bytes::from(jwks) }
    }

    fn empty() -> Self {
        Self::new(Vec::new())
    }

    /// The key that signs at `now`: the newest whose activation time has come.
    pub fn signing_key(&self, now: OffsetDateTime) -> Option<&Arc<SigningKey>> {
        self.entries.iter().rev().find(|e| e.activates_at <= now).map(|e| &e.key)
    }

    /// The published key set as JSON (`{"keys": [...]}`, RFC 7517 §5).
    pub fn jwks(&self) -> &Bytes {
        &self.jwks
    }

    /// The distinct algorithms of the published keys, newest key first.
    pub fn algorithms(&self) -> Vec<SigningAlgorithm> {
        let mut algorithms: Vec<SigningAlgorithm> = Vec::new();
        for entry in self.entries.iter().rev() {
            if !algorithms.contains(&entry.key.algorithm()) {
                algorithms.push(entry.key.algorithm());
            }
        }
        algorithms
    }

    /// The ids of the published keys, oldest activation first.
    pub fn kids(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.key.kid()).collect()
    }

    /// Verifies a JWT access token signed by one of these keys: signature, `typ`
    /// (`at+jwt` or `JWT`), issuer, and the time claims at `now`.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        now: OffsetDateTime,
    ) -> Result<AccessTokenClaims, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        // Both types this server writes (the setting may have changed while tokens
        // of the other are still valid); only access tokens are signed with these keys.
        if header.typ.as_deref().and_then(JwtHeaderType::from_header).is_none() {
            return Err(VerifyError::WrongType);
        }
        let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
        let entry =
            self.entries.iter().find(|e| e.key.kid() == kid).ok_or(VerifyError::UnknownKey)?;
        if !entry.verifier.validation.algorithms.contains(&header.alg) {
            return Err(VerifyError::UnknownKey);
        }
        let data = jsonwebtoken::decode::<AccessTokenClaims>(
            token,
            &entry.verifier.decoding,
            &entry.verifier.validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => VerifyError::BadSignature,
            _ => VerifyError::Malformed,
        })?;
        // The minter signs ES256 with a low s; the other form of the same signature
        // is refused, so each token has one accepted encoding.
        if header.alg == jsonwebtoken::Algorithm::ES256 && !crate::ecdsa::jws_has_low_s(token) {
            return Err(VerifyError::BadSignature);
        }
        if data.claims.iss != issuer {
            return Err(VerifyError::WrongIssuer);
        }
        check_time(&data.claims, now)?;
        Ok(data.claims)
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet").field("kids", &self.kids()).finish()
    }
}

/// The current [`KeySet`], swapped atomically when keys rotate; shared by the
/// minter and the key set endpoint.
pub struct KeyRing {
    current: RwLock<Arc<KeySet>>,
    max_token_lifetime: Duration,
}

impl KeyRing {
    /// The keys in force now.
    pub fn key_set(&self) -> Arc<KeySet> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The longest lifetime of a JWT access token signed with these keys.
    pub fn max_token_lifetime(&self) -> Duration {
        self.max_token_lifetime
    }

    fn replace(&self, set: KeySet) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing").field("keys", &self.key_set()).finish_non_exhaustive()
    }
}

/// A stored key decrypted and parsed, kept so that each key is parsed once.
type Parsed = (Arc<SigningKey>, Arc<Verifier>);

/// What one [`KeyManager::refresh`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshReport {
    /// Key ids this instance created.
    pub created: Vec<String>,
    /// Key ids this instance deleted (retired long enough).
    pub deleted: Vec<String>,
    /// Key ids in force after the refresh.
    pub published: Vec<String>,
}

/// Keeps a [`KeyRing`] in step with the store: creates keys when rotation is due,
/// drops keys no token can need any more, and loads what other instances created.
pub struct KeyManager {
    store: Arc<dyn SigningKeyStore>,
    master: MasterKey,
    policy: RotationPolicy,
    ring: Arc<KeyRing>,
    parsed: Mutex<HashMap<String, Parsed>>,
}

impl KeyManager {
    /// A manager of the keys in `store`, sealed with `master`. Call
    /// [`refresh`](Self::refresh) before the ring is used, and then periodically
    /// (every minute suits the default policy).
    pub fn new(store: Arc<dyn SigningKeyStore>, master: MasterKey, policy: RotationPolicy) -> Self {
        let ring = Arc::new(KeyRing {
            current: RwLock::new(Arc::new(KeySet::empty())),
            max_token_lifetime: policy.max_token_lifetime,
        });
        Self { store, master, policy, ring, parsed: Mutex::default() }
    }

    /// The ring this manager keeps current.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.clone()
    }

    /// The policy.
    pub fn policy(&self) -> &RotationPolicy {
        &self.policy
    }

    /// Brings the ring up to date at `now`: creates a key if none exists or rotation
    /// is due (one instance wins a race; the others load its key), deletes retired
    /// keys whose tokens have all expired, and loads every stored key.
    ///
    /// A key that cannot be decrypted (a wrong master key) is an error, and the ring
    /// keeps the keys it had.
    pub async fn refresh(&self, now: OffsetDateTime) -> Result<RefreshReport, KeyError> {
        let now = whole_seconds(now);
        let mut report = RefreshReport::default();
        let mut records = self.store.signing_keys().await?;
        for _ in 0..4 {
            let Some(activates_at) = self.due(&records, now) else {
                break;
            };
            let expected = records.last().map(|r| r.kid.clone());
            let (key, pkcs8) = SigningKey::generate(self.policy.algorithm)?;
            let record = SigningKeyRecord {
                kid: key.kid().to_owned(),
                algorithm: key.algorithm(),
                public_jwk: key.public_jwk().to_string(),
                sealed_private_key: self.master.seal(key.kid(), &pkcs8)?,
                created_at: now,
                activates_at,
            };
            if self.store.insert_signing_key(&record, expected.as_deref()).await? {
                report.created.push(record.kid.clone());
            }
            records = self.store.signing_keys().await?;
        }
        for retired in self.expired(&records, now) {
            if self.store.delete_signing_key(&retired).await? {
                report.deleted.push(retired.clone());
            }
            records.retain(|r| r.kid != retired);
        }
        let set = self.load(&records)?;
        report.published = set.kids().into_iter().map(str::to_owned).collect();
        self.ring.replace(set);
        Ok(report)
    }

    /// When a new key should activate, if one is due now.
    fn due(&self, records: &[SigningKeyRecord], now: OffsetDateTime) -> Option<OffsetDateTime> {
        let Some(latest) = records.last() else {
            return Some(now);
        };
        let next = latest.activates_at + self.policy.period;
        if now >= next - self.policy.prepublish {
            Some(next.max(now + self.policy.prepublish))
        } else if latest.algorithm != self.policy.algorithm {
            Some(now + self.policy.prepublish)
        } else {
            None
        }
    }

    /// Keys whose successor activated more than the longest token lifetime ago.
    fn expired(&self, records: &[SigningKeyRecord], now: OffsetDateTime) -> Vec<String> {
        records
            .windows(2)
            .filter(|pair| pair[1].activates_at + self.policy.max_token_lifetime <= now)
            .map(|pair| pair[0].kid.clone())
            .collect()
    }

    fn load(&self, records: &[SigningKeyRecord]) -> Result<KeySet, KeyError> {
        let mut parsed = self.parsed.lock().unwrap_or_else(PoisonError::into_inner);
        let mut entries = Vec::with_capacity(records.len());
        for record in records {
            let (key, verifier) = match parsed.get(&record.kid) {
                Some(found) => found.clone(),
                None => {
                    let pkcs8 = self.master.open(&record.kid, &record.sealed_private_key)?;
                    let key = Arc::new(SigningKey::from_pkcs8(
                        record.kid.clone(),
                        record.algorithm,
                        &pkcs8,
                    )?);
                    let verifier = Arc::new(Verifier::new(&key)?);
                    parsed.insert(record.kid.clone(), (key.clone(), verifier.clone()));
                    (key, verifier)
                }
            };
            entries.push(Entry { key, activates_at: record.activates_at, verifier });
        }
        parsed.retain(|kid, _| records.iter().any(|r| &r.kid == kid));
        Ok(KeySet::new(entries))
    }
}

impl fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyManager")
            .field("policy", &self.policy)
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}
