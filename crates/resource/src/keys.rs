//! The issuer's published keys: fetched through discovery, refreshed on an
//! interval in the background, refetched (rate limited) when a token names a key
//! id the set lacks, and kept serving while the issuer cannot be reached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::issuer::{CallError, Issuer, MAX_DOCUMENT_BYTES, read_json, transport};
use crate::jwt::PublicKey;

/// How the key store refreshes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyPolicy {
    /// A set older than this is refreshed in the background.
    pub(crate) refresh_interval: Duration,
    /// The shortest time between two fetches for unknown key ids.
    pub(crate) refetch_interval: Duration,
    /// A set not refreshed for this long is no longer used.
    pub(crate) max_age: Duration,
    /// The most keys kept from one set.
    pub(crate) max_keys: usize,
}

/// Why no key was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// The issuer's current set has no key of that id.
    Unknown,
    /// No current set could be had from the issuer.
    Unavailable,
}

pub(crate) struct KeyStore {
    issuer: Arc<Issuer>,
    policy: KeyPolicy,
    current: RwLock<Option<Arc<KeySet>>>,
    fetch: tokio::sync::Mutex<FetchState>,
    refreshing: AtomicBool,
    pub(crate) fetches: AtomicU64,
}

struct KeySet {
    keys: HashMap<String, Arc<PublicKey>>,
    fetched_at: Instant,
    generation: u64,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_ok: bool,
    generation: u64,
}

impl KeyStore {
    pub(crate) fn new(issuer: Arc<Issuer>, policy: KeyPolicy) -> Self {
        KeyStore {
            issuer,
            policy,
            current: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            refreshing: AtomicBool::new(false),
            fetches: AtomicU64::new(0),
        }
    }

    /// The key `kid` of the issuer's set.
    pub(crate) async fn key(self: &Arc<Self>, kid: &str) -> Result<Arc<PublicKey>, KeyError> {
        let snapshot = self.snapshot();
        if let Some(set) = snapshot.as_ref().filter(|s| self.is_usable(s))
            && let Some(key) = set.keys.get(kid)
        {
            if set.fetched_at.elapsed() >= self.policy.refresh_interval {
                self.refresh_in_background();
            }
            return Ok(key.clone());
        }
        let ok = self.refetch(snapshot.map(|s| s.generation)).await;
        match self.snapshot().filter(|s| self.is_usable(s)) {
            Some(set) => match set.keys.get(kid) {
                Some(key) => Ok(key.clone()),
                None if ok => Err(KeyError::Unknown),
                None => Err(KeyError::Unavailable),
            },
            None => Err(KeyError::Unavailable),
        }
    }

    /// Fetches the set unless a usable one is held; whether one is held now.
    pub(crate) async fn warm_up(&self) -> bool {
        let snapshot = self.snapshot();
        if snapshot.as_ref().is_some_and(|s| self.is_usable(s)) {
            return true;
        }
        self.refetch(snapshot.map(|s| s.generation)).await
    }

    /// How many keys the current set holds.
    pub(crate) fn len(&self) -> usize {
        self.snapshot().filter(|s| self.is_usable(s)).map_or(0, |s| s.keys.len())
    }

    fn snapshot(&self) -> Option<Arc<KeySet>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether `set` is recent enough to use: refreshed within the policy's `max_age`.
    fn is_usable(&self, set: &KeySet) -> bool {
        set.fetched_at.elapsed() <= self.policy.max_age
    }

    /// Fetches the set unless another caller did since the set `seen` was read, or
    /// the last attempt is too recent (after a success: `refetch_interval`; after a
    /// failure: the issuer's retry interval). Whether the issuer's current set is
    /// held (the last attempt succeeded).
    async fn refetch(&self, seen: Option<u64>) -> bool {
        let mut state = self.fetch.lock().await;
        if state.generation != seen.unwrap_or(0) {
            return state.last_ok;
        }
        if let Some(at) = state.last_attempt {
            let wait = if state.last_ok {
                self.policy.refetch_interval
            } else {
                self.issuer.retry_interval
            };
            if at.elapsed() < wait {
                return state.last_ok;
            }
        }
        state.last_attempt = Some(Instant::now());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.fetch_set().await {
            Ok(keys) => {
                self.issuer.record_success();
                state.generation += 1;
                state.last_ok = true;
                tracing::debug!(keys = keys.len(), "fetched the issuer's key set");
                let set = KeySet { keys, fetched_at: Instant::now(), generation: state.generation };
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(set));
                true
            }
            Err(error) => {
                self.issuer.record_failure(&error, "key set");
                state.last_ok = false;
                false
            }
        }
    }

    /// Starts a refresh on the current tokio runtime unless one is running; the
    /// request that noticed the set's age goes on with the keys it has.
    fn refresh_in_background(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.refreshing.store(false, Ordering::Release);
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            let seen = this.snapshot().map(|s| s.generation);
            this.refetch(seen).await;
            this.refreshing.store(false, Ordering::Release);
        });
    }

    async fn fetch_set(&self) -> Result<HashMap<String, Arc<PublicKey>>, CallError> {
        #[derive(Deserialize)]
        struct Jwks {
            keys: Vec<serde_json::Value>,
        }
        let endpoints = self.issuer.endpoints().await?;
        let response = self.issuer.http.get(&endpoints.jwks_uri).send().await.map_err(transport)?;
        let jwks: Jwks = read_json(response, MAX_DOCUMENT_BYTES).await?;
        Ok(jwks
            .keys
            .iter()
            .filter_map(PublicKey::from_jwk)
            .take(self.policy.max_keys)
            .map(|(kid, key)| (kid, Arc::new(key)))
            .collect())
    }
}
