//! Talking to the issuer: discovery (OpenID Connect Discovery 1.0 / RFC 8414) and
//! bounded reads of its JSON answers.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The endpoints discovery names.
#[derive(Debug)]
pub(crate) struct Endpoints {
    pub(crate) jwks_uri: String,
    pub(crate) introspection_endpoint: Option<String>,
}

/// Why a call to the issuer gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("{0}")]
    Transport(String),
    #[error("the issuer answered {0}")]
    Status(u16),
    #[error("the issuer's answer is not the expected JSON: {0}")]
    Body(String),
    #[error("the discovery document names the issuer {0:?}, not the configured one")]
    WrongIssuer(String),
    #[error("waiting before the next call to the issuer after a failure")]
    Backoff,
}

/// The issuer: its identifier, the HTTP client, and the discovered endpoints once
/// known (discovery is retried, at most once per `retry_interval`, until it works).
pub(crate) struct Issuer {
    pub(crate) issuer: String,
    pub(crate) http: reqwest::Client,
    discovery_url: String,
    endpoints: RwLock<Option<Arc<Endpoints>>>,
    discovery: tokio::sync::Mutex<Option<Instant>>,
    pub(crate) retry_interval: Duration,
    down: Mutex<Option<Instant>>,
}

/// The largest discovery document or key set read.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

impl Issuer {
    pub(crate) fn new(issuer: String, http: reqwest::Client, retry_interval: Duration) -> Self {
        let discovery_url =
            format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        Issuer {
            issuer,
            http,
            discovery_url,
            endpoints: RwLock::new(None),
            discovery: tokio::sync::Mutex::new(None),
            retry_interval,
            down: Mutex::new(None),
        }
    }

    /// The discovered endpoints: fetched on first use; after a failed attempt, the
    /// next is made no sooner than `retry_interval` later, and calls in between fail
    /// at once. Concurrent callers share one attempt.
    pub(crate) async fn endpoints(&self) -> Result<Arc<Endpoints>, CallError> {
        if let Some(found) = self.known_endpoints() {
            return Ok(found);
        }
        let mut last_failure = self.discovery.lock().await;
        if let Some(found) = self.known_endpoints() {
            return Ok(found);
        }
        if last_failure.is_some_and(|at| at.elapsed() < self.retry_interval) {
            return Err(CallError::Backoff);
        }
        match self.discover().await {
            Ok(endpoints) => {
                let endpoints = Arc::new(endpoints);
                *self.endpoints.write().unwrap_or_else(PoisonError::into_inner) =
                    Some(endpoints.clone());
                *last_failure = None;
                Ok(endpoints)
            }
            Err(error) => {
                *last_failure = Some(Instant::now());
                self.record_failure(&error, "discovery");
                Err(error)
            }
        }
    }

    fn known_endpoints(&self) -> Option<Arc<Endpoints>> {
        self.endpoints.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    async fn discover(&self) -> Result<Endpoints, CallError> {
        #[derive(Deserialize)]
        struct Document {
            issuer: String,
            jwks_uri: String,
            #[serde(default)]
            introspection_endpoint: Option<String>,
        }
        let response = self.http.get(&self.discovery_url).send().await.map_err(transport)?;
        let document: Document = read_json(response, MAX_DOCUMENT_BYTES).await?;
        // OpenID Connect Discovery §4.3: the document must name the issuer it was
        // fetched for, or an attacker's document could name its own keys.
        if document.issuer != self.issuer {
            return Err(CallError::WrongIssuer(document.issuer));
        }
        Ok(Endpoints {
            jwks_uri: document.jwks_uri,
            introspection_endpoint: document.introspection_endpoint,
        })
    }

    /// Notes a failed call: logged once when the issuer becomes unreachable, not on
    /// every request while it stays so.
    pub(crate) fn record_failure(&self, error: &CallError, what: &'static str) {
        if matches!(error, CallError::Backoff) {
            return;
        }
        let mut down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        if down.is_none() {
            tracing::warn!(issuer = %self.issuer, call = what, %error, "calls to the issuer fail");
        }
        *down = Some(Instant::now());
    }

    /// Notes a successful call; logs the recovery after a failure.
    pub(crate) fn record_success(&self) {
        let mut down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(since) = down.take() {
            tracing::info!(issuer = %self.issuer, after = ?since.elapsed(), "the issuer answers again");
        }
    }
}

pub(crate) fn transport(error: reqwest::Error) -> CallError {
    CallError::Transport(error.without_url().to_string())
}

/// Reads a 200 answer's JSON body of at most `limit` bytes.
pub(crate) async fn read_json<T: for<'de> Deserialize<'de>>(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<T, CallError> {
    if response.status() != reqwest::StatusCode::OK {
        return Err(CallError::Status(response.status().as_u16()));
    }
    if response.content_length().is_some_and(|len| len > limit as u64) {
        return Err(CallError::Body(format!("longer than {limit} bytes")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > limit {
            return Err(CallError::Body(format!("longer than {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| CallError::Body(e.to_string()))
}
