//! OAuth 2.0 access tokens for service users, embedded in a Rust service: one
//! builder assembles the store, the signing keys, the issuer and its HTTP service.
//!
//! From a [`Config`] and a store (or a database URL), [`Tessera::builder`] gives a
//! [`Tessera`] with everything an embedding needs:
//!
//! - [`Tessera::service`]: the hyper/tower `Service` of the OAuth endpoints, to mount
//!   under the issuer URL's path (at the root, under a prefix, or with axum's
//!   `nest_service`; with the `axum` feature, [`Tessera::router`]);
//! - [`Tessera::maintenance`]: the future that rotates signing keys and purges
//!   expired records, for the host to spawn;
//! - [`Tessera::authorize`]: bearer token checks for the host's own routes;
//! - [`Tessera::admin`]: the administration operations (service users, secrets,
//!   keys, projects, API apps, grants, bootstrap documents);
//! - [`Tessera::issuer`]: the HTTP-free grant logic;
//! - [`Tessera::metrics`]: Prometheus metrics of the endpoints and the signing keys,
//!   to encode on a route of the host's or to add to the host's own registry (see
//!   [Metrics](#metrics)).
//!
//! ```
//! use std::sync::Arc;
//! use tessera::{Config, MasterKey, Tessera};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let tessera = Tessera::builder(Config::new("https://app.example.com/auth"))
//!     .store(Arc::new(tessera::store::MemoryStore::new()))
//!     .master_key(MasterKey::generate()?)
//!     .build()
//!     .await?;
//! tokio::spawn(tessera.maintenance());
//! let service = tessera.service(); // mount it at /auth
//! assert!(service.handles("/auth/oauth/v2/token"));
//!
//! let new_user = tessera::admin::NewServiceUser::new("billing-job".parse()?);
//! let (user, secret) = tessera.admin().create_service_user(new_user).await?;
//! # let _ = (user, secret);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Metrics
//!
//! The service counts what it answers in a [`Metrics`] (atomics, a few nanoseconds
//! a request): requests by endpoint and status, latency histograms, tokens issued by
//! type and algorithm, client authentication failures by method, throttled requests,
//! storage errors by kind, and, from [`Tessera::maintenance`], the signing key's age
//! and rotations. The service does not answer `GET /metrics` unless built with
//! [`Builder::serve_metrics`]; an application that has a metrics endpoint of its own
//! adds them to its registry instead:
//!
//! ```
//! # use std::sync::Arc;
//! # use tessera::{Config, MasterKey, Tessera};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! # let tessera = Tessera::builder(Config::new("https://app.example.com/auth"))
//! #     .store(Arc::new(tessera::store::MemoryStore::new()))
//! #     .master_key(MasterKey::generate()?)
//! #     .build()
//! #     .await?;
//! let mut registry = tessera::prometheus_client::registry::Registry::default();
//! tessera.metrics().register(&mut registry);
//! // Or the OpenMetrics text, for a route of the application's own:
//! let mut text = String::new();
//! tessera.metrics().encode(&mut text)?;
//! assert!(text.contains("tessera_storage_errors_total{kind=\"unavailable\"} 0"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The crate re-exports the crates it is built from ([`store`], [`mint`],
//! [`endpoint`], [`admin`], [`scope`]), so that one dependency line suffices.
#![forbid(unsafe_code)]

mod config;
mod database;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use tessera_endpoint::{
    ActiveToken, AssertionPolicy, AuditSink, ErrorCode, Issuer, OAuthError, TokenEndpoint,
    bearer_token,
};
use tessera_mint::{KeyManager, RefreshReport, TokenMinter};
use tessera_store::{DisplayName, Domain, Organization, Store};
use time::OffsetDateTime;

pub use config::{
    AssertionsConfig, ClientAddressConfig, Config, HttpConfig, OrganizationConfig, ScopesConfig,
    SigningConfig, ThrottleSettings,
};
pub use database::{Database, DatabaseKind, chain};
/// The Prometheus client library the metrics are written with, for
/// [`Metrics::register`] into a registry of the application's.
pub use prometheus_client;
pub use tessera_admin as admin;
pub use tessera_admin::Admin;
pub use tessera_endpoint as endpoint;
pub use tessera_endpoint::{
    ClientAddr, ClientAddressSource, METRICS_CONTENT_TYPE, Metrics, ROUTES,
};
pub use tessera_management as management;
pub use tessera_management::ManagementApi;
pub use tessera_mint as mint;
pub use tessera_mint::MasterKey;
pub use tessera_scope as scope;
pub use tessera_store as store;

/// How often the signing keys are reloaded (and rotated when due).
pub const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// How often expired token records and revoked ids are deleted.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(300);

/// Why Tessera could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of bounds or malformed.
    #[error("configuration: {0}")]
    Config(String),
    /// The database URL is not supported or cannot be opened.
    #[error("{0}")]
    Database(String),
    /// The master key is missing or cannot be read.
    #[error("master key: {0}")]
    MasterKey(String),
    /// The signing keys cannot be loaded or created.
    #[error("signing keys: {0}")]
    Keys(#[source] tessera_mint::KeyError),
    /// The store failed.
    #[error("storage: {0}")]
    Store(#[from] tessera_store::StoreError),
}

/// Assembles a [`Tessera`]: see [`Tessera::builder`].
#[must_use]
pub struct Builder {
    config: Config,
    store: Option<Arc<dyn Store>>,
    kind: Option<DatabaseKind>,
    master_key: Option<MasterKey>,
    master_key_file: Option<PathBuf>,
    serve_metrics: bool,
    audit: Option<Arc<dyn AuditSink>>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Uses `store`, such as a backend of the application's own.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self.kind = None;
        self
    }

    /// Uses an opened [`Database`].
    pub fn database(mut self, database: Database) -> Self {
        self.store = Some(database.store);
        self.kind = Some(database.kind);
        self
    }

    /// Encrypts the private signing keys at rest with `key`; every instance sharing
    /// a database needs the same one.
    pub fn master_key(mut self, key: MasterKey) -> Self {
        self.master_key = Some(key);
        self
    }

    /// Keeps the master key in the file at `path` (created on first use with mode
    /// 0600; a file others may read is refused).
    pub fn master_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.master_key_file = Some(path.into());
        self
    }

    /// Whether the service answers `GET /metrics` (relative to the issuer URL) with
    /// [`Tessera::metrics`] in the OpenMetrics text format; off by default, as
    /// metrics are for the operator, not for every client of the endpoint.
    pub fn serve_metrics(mut self, serve: bool) -> Self {
        self.serve_metrics = serve;
        self
    }

    /// Hands the issuer's audit events (`token_issued` and the others of
    /// docs/audit.md) to `sink` instead of logging them through `tracing`: to keep
    /// the audit trail elsewhere, or to write the lines in a format of the
    /// application's own. Events of key rotation and administration are still
    /// logged through `tracing`.
    pub fn audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// Builds: checks the configuration, loads (or creates) the signing keys and the
    /// organization, and assembles the issuer and its service.
    ///
    /// Without [`master_key`](Self::master_key) or
    /// [`master_key_file`](Self::master_key_file), a SQLite database keeps its master
    /// key in a file beside it and a `memory:` one in memory; any other store needs
    /// one given.
    pub async fn build(self) -> Result<Tessera, Error> {
        self.config.validate()?;
        let store = self
            .store
            .ok_or_else(|| Error::Config("no store: call store() or database()".into()))?;
        let master = master_key(self.master_key, self.master_key_file, self.kind.as_ref())?;
        let keys = Arc::new(KeyManager::new(store.clone(), master, self.config.rotation_policy()));
        let report = keys.refresh(OffsetDateTime::now_utc()).await.map_err(Error::Keys)?;
        log_report(&report);
        let metrics = Metrics::new();
        let key_watch = KeyWatch::default();
        key_watch.update(store.as_ref(), &keys, &metrics).await;
        let organization = init_organization(store.as_ref(), &self.config).await?;
        let minter = TokenMinter::new(self.config.issuer.clone())
            .with_keys(keys.ring())
            .with_jwt_type(self.config.signing.jwt_type);
        let issuer = Issuer::new(store, minter)
            .with_scope_policy(self.config.scope_policy()?)
            .with_organization(organization)
            .with_assertion_policy(AssertionPolicy {
                require_jti: self.config.assertions.require_jti,
            });
        let issuer = match self.audit {
            Some(sink) => issuer.with_audit_sink(sink),
            None => issuer,
        };
        let endpoint = TokenEndpoint::new(issuer)
            .with_max_body(self.config.http.max_body_bytes)
            .with_throttle(self.config.throttle_config())
            .with_client_address(self.config.client_address_source()?)
            .with_metrics(metrics.clone())
            .serve_metrics(self.serve_metrics);
        let admin = Admin::new(endpoint.issuer().store().clone());
        let endpoint = if self.config.management_api {
            let api = ManagementApi::new(endpoint.issuer().clone(), admin.clone());
            endpoint.with_rpc(Arc::new(api))
        } else {
            endpoint
        };
        Ok(Tessera {
            endpoint,
            keys,
            admin,
            config: Arc::new(self.config),
            metrics,
            key_watch: Arc::new(key_watch),
        })
    }
}

/// OAuth 2.0 token issuance, assembled: see the [crate documentation](crate).
#[derive(Debug, Clone)]
pub struct Tessera {
    endpoint: TokenEndpoint,
    keys: Arc<KeyManager>,
    admin: Admin,
    config: Arc<Config>,
    metrics: Metrics,
    key_watch: Arc<KeyWatch>,
}

impl Tessera {
    /// Starts assembling a Tessera configured by `config`.
    pub fn builder(config: Config) -> Builder {
        Builder {
            config,
            store: None,
            kind: None,
            master_key: None,
            master_key_file: None,
            serve_metrics: false,
            audit: None,
        }
    }

    /// The OAuth endpoints as a hyper and tower `Service`. For each connection,
    /// [`TokenEndpoint::for_peer`] gives it the client's address (axum's
    /// `ConnectInfo` serves too, with the `axum` feature).
    pub fn service(&self) -> TokenEndpoint {
        self.endpoint.clone()
    }

    /// The HTTP-free issuer.
    pub fn issuer(&self) -> &Issuer {
        self.endpoint.issuer()
    }

    /// The administration operations (service users, secrets, keys, projects, API
    /// apps, grants, the organization, bootstrap documents) on the same store.
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.issuer().store()
    }

    /// The metrics of the service and of the signing keys: encode them
    /// ([`Metrics::encode`]) on a route of the application's, or add them to its
    /// registry ([`Metrics::register`]). See [Metrics](crate#metrics).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The background work, forever: reloads the signing keys every
    /// [`KEY_REFRESH_INTERVAL`] (rotating them when due, so that every instance on
    /// one database publishes the same set), and deletes expired token records and
    /// revoked ids every [`PURGE_INTERVAL`]. Spawn it on the host's runtime; failures
    /// are logged and retried on the next round.
    pub fn maintenance(&self) -> impl Future<Output = ()> + Send + 'static {
        let keys = self.keys.clone();
        let issuer = self.issuer().clone();
        let metrics = self.metrics.clone();
        let key_watch = self.key_watch.clone();
        async move {
            let mut refresh = tokio::time::interval(KEY_REFRESH_INTERVAL);
            let mut purge = tokio::time::interval(PURGE_INTERVAL);
            refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first ticks are immediate: keys were loaded by the builder, and a
            // purge at start clears what expired while the process was down.
            refresh.tick().await;
            loop {
                tokio::select! {
                    _ = refresh.tick() => match keys.refresh(OffsetDateTime::now_utc()).await {
                        Ok(report) => {
                            log_report(&report);
                            metrics.record_key_rotations(report.created.len(), report.deleted.len());
                            key_watch.update(issuer.store().as_ref(), &keys, &metrics).await;
                        }
                        Err(e) => tracing::error!(
                            error = %chain(&e),
                            "signing key refresh failed; keeping the current keys"
                        ),
                    },
                    _ = purge.tick() => match issuer.purge_expired().await {
                        Ok(0) => {}
                        Ok(purged) => tracing::info!(purged, "purged expired token records"),
                        Err(e) => tracing::warn!(error = %e, "purging expired token records failed"),
                    },
                }
            }
        }
    }

    /// Checks the bearer token of a request to the host's own route: the active token,
    /// or an error to answer with ([`OAuthError::into_response`] gives the RFC 6750
    /// response): `invalid_token` (401) for a missing, malformed, unknown, expired or
    /// revoked token, `insufficient_scope` (403) when `scope` is given and the token
    /// lacks it.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        scope: Option<&str>,
    ) -> Result<ActiveToken, OAuthError> {
        let token = bearer_token(headers)?;
        let active = self.issuer().validate_token(token).await?.ok_or_else(|| {
            OAuthError::new(ErrorCode::InvalidToken, "the access token is not active")
        })?;
        if let Some(scope) = scope
            && !active.scopes.contains_str(scope)
        {
            return Err(OAuthError::new(
                ErrorCode::InsufficientScope,
                format!("the access token lacks the scope {scope}"),
            ));
        }
        Ok(active)
    }

    /// An axum router of exactly the OAuth endpoints' paths (relative to the issuer
    /// URL), so the application's other paths keep their own answers: merge it at the
    /// root when the issuer URL has no path, or nest it under the issuer URL's path
    /// (`app.nest("/auth", tessera.router())`).
    #[cfg(feature = "axum")]
    pub fn router<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        ROUTES
            .iter()
            .fold(axum::Router::new(), |router, path| router.route_service(path, self.service()))
    }
}

/// The master key as configured, or the default for the kind of database.
fn master_key(
    key: Option<MasterKey>,
    file: Option<PathBuf>,
    kind: Option<&DatabaseKind>,
) -> Result<MasterKey, Error> {
    if let Some(key) = key {
        return Ok(key);
    }
    let file = file.or_else(|| kind.and_then(DatabaseKind::master_key_file));
    if let Some(path) = file {
        let (key, created) =
            MasterKey::from_file(&path).map_err(|e| Error::MasterKey(e.to_string()))?;
        if created {
            tracing::warn!(
                file = %path.display(),
                "created a master key file for the signing keys; back it up with the database"
            );
        } else {
            tracing::info!(file = %path.display(), "master key from file");
        }
        return Ok(key);
    }
    match kind {
        Some(DatabaseKind::Memory) => {
            tracing::info!("master key kept in memory (memory: database)");
            MasterKey::generate().map_err(|e| Error::MasterKey(e.to_string()))
        }
        Some(DatabaseKind::Postgres) => Err(Error::MasterKey(
            "a PostgreSQL database needs a master key: every instance must decrypt the same \
             signing keys (generate one with: openssl rand -base64 32)"
                .into(),
        )),
        _ => Err(Error::MasterKey(
            "this store needs a master key: give one with master_key() or master_key_file()".into(),
        )),
    }
}

/// The stored organization, or (when the store has none) one named as configured.
async fn init_organization(store: &dyn Store, config: &Config) -> Result<Organization, Error> {
    let mut candidate = Organization::for_issuer(&config.issuer, OffsetDateTime::now_utc())
        .map_err(|e| Error::Config(e.to_string()))?;
    if let Some(name) = &config.organization.name {
        candidate.name =
            DisplayName::new(name).map_err(|e| Error::Config(format!("organization.name: {e}")))?;
    }
    if let Some(domain) = &config.organization.domain {
        candidate.primary_domain =
            Domain::new(domain).map_err(|e| Error::Config(format!("organization.domain: {e}")))?;
    }
    let organization = store.init_organization(&candidate).await?;
    if organization.id == candidate.id {
        tracing::info!(
            organization_id = %organization.id,
            name = %organization.name,
            primary_domain = %organization.primary_domain,
            "organization created"
        );
    }
    Ok(organization)
}

/// The key that signed at the last look, so that the store is read for its
/// activation time only when it changes.
#[derive(Debug, Default)]
struct KeyWatch {
    kid: std::sync::Mutex<Option<String>>,
}

impl KeyWatch {
    /// Sets the signing key's activation time in `metrics`, reading the key records
    /// when the key that signs now is another than at the last look.
    async fn update(&self, store: &dyn Store, keys: &KeyManager, metrics: &Metrics) {
        let now = OffsetDateTime::now_utc();
        let set = keys.ring().key_set();
        let current = set.signing_key(now).map(|key| key.kid().to_owned());
        let seen = self.kid.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if current == seen {
            return;
        }
        let Some(kid) = current else {
            metrics.set_signing_key_activated_at(None);
            *self.kid.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            return;
        };
        match store.signing_keys().await {
            Ok(records) => {
                let activated = records
                    .iter()
                    .find(|record| record.kid == kid)
                    .map(|record| record.activates_at.unix_timestamp());
                metrics.set_signing_key_activated_at(activated);
                *self.kid.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(kid);
            }
            Err(e) => tracing::warn!(error = %e, "reading the signing keys for their age failed"),
        }
    }
}

fn log_report(report: &RefreshReport) {
    for kid in &report.created {
        tracing::info!(target: "tessera::audit", event = "key_rotated", kid = %kid, "created a signing key");
    }
    for kid in &report.deleted {
        tracing::info!(target: "tessera::audit", event = "key_retired", kid = %kid, "dropped a retired signing key");
    }
}
