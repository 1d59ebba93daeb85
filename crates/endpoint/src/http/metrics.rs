//! Prometheus (OpenMetrics) metrics of the endpoint: what it answered, how fast,
//! what it issued, and what failed.
//!
//! Every counter and histogram is a set of atomics. The label sets a request can
//! produce are few and known (route × status, token type × algorithm, method), so
//! each one's handle is created once, on first use, and kept in a fixed table: the
//! request path indexes the table and increments an atomic, without hashing labels
//! or taking a lock. The request and token counters and the latency histogram are
//! this module's own, striped by thread so that cores do not contend for them
//! ([`prometheus_client`]'s histogram takes a mutex per observation, and its
//! counter is one atomic).

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::error::StorageErrorKind;
use crate::issuer::AuthMethod;

/// The path at which the endpoint answers with its metrics, when it serves them
/// (relative to the issuer URL, like the other paths).
pub const METRICS_PATH: &str = "/metrics";

/// The content type of the metrics, as [`Metrics::encode`] writes them: the
/// OpenMetrics text format, which Prometheus reads.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `endpoint` label of each route, in [`RouteLabel`] order.
const ROUTE_NAMES: [&str; ROUTES] = [
    "token",
    "introspect",
    "revoke",
    "userinfo",
    "health",
    "ready",
    "keys",
    "discovery",
    "authorize",
    "metrics",
    "management",
    "unknown",
];
const ROUTES: usize = 12;

/// The statuses the endpoint answers with, each with a slot of its own; any other
/// status shares the last slot's path through the family (never hit today).
const STATUSES: [u16; 14] = [200, 204, 400, 401, 403, 404, 405, 408, 413, 415, 429, 500, 503, 0];

/// Upper bounds of the latency histogram's buckets, in seconds.
const LATENCY_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// The same bounds in nanoseconds, for the request path's comparisons.
const LATENCY_BUCKETS_NANOS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// The `method` label of authentication failures, in this order.
const AUTH_METHODS: [&str; 5] =
    ["client_secret_basic", "client_secret_post", "private_key_jwt", "jwt_bearer", "unknown"];

/// The `token_type`/`algorithm` labels of issued tokens, in this order.
const TOKEN_KINDS: [(&str, &str); 4] =
    [("opaque", "none"), ("jwt", "ES256"), ("jwt", "RS256"), ("jwt", "EdDSA")];

/// The route label of a request (the `endpoint` label of its metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteLabel {
    Token = 0,
    Introspect,
    Revoke,
    Userinfo,
    Health,
    Ready,
    Keys,
    Discovery,
    Authorize,
    Metrics,
    Management,
    Unknown,
}

/// Who failed to authenticate, as the `method` label says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthLabel {
    /// A client authentication method.
    Method(AuthMethod),
    /// The assertion of the JWT bearer grant, without client authentication.
    JwtBearer,
    /// Credentials that could not be read (missing, malformed, or two methods).
    Unknown,
}

impl AuthLabel {
    fn index(self) -> usize {
        match self {
            AuthLabel::Method(AuthMethod::ClientSecretBasic) => 0,
            AuthLabel::Method(AuthMethod::ClientSecretPost) => 1,
            AuthLabel::Method(AuthMethod::PrivateKeyJwt) => 2,
            AuthLabel::JwtBearer => 3,
            AuthLabel::Unknown => 4,
        }
    }
}

type Labels = Vec<(&'static str, &'static str)>;
type StatusLabels = (Labels, [(&'static str, u16); 1]);

/// The metrics of a [`TokenEndpoint`](crate::TokenEndpoint) and of the key
/// maintenance around it, in a Prometheus registry of their own.
///
/// Clones share the same counters. Give one to
/// [`TokenEndpoint::with_metrics`](crate::TokenEndpoint::with_metrics); read them
/// with [`encode`](Self::encode) (the OpenMetrics text that `GET /metrics`
/// answers), or add them to the application's own registry with
/// [`register`](Self::register).
///
/// | metric | type | labels |
/// |---|---|---|
/// | `tessera_http_requests_total` | counter | `endpoint`, `status` |
/// | `tessera_http_request_duration_seconds` | histogram | `endpoint` |
/// | `tessera_tokens_issued_total` | counter | `token_type`, `algorithm` |
/// | `tessera_client_auth_failures_total` | counter | `method` |
/// | `tessera_throttled_requests_total` | counter | |
/// | `tessera_storage_errors_total` | counter | `kind` |
/// | `tessera_signing_key_age_seconds` | gauge | |
/// | `tessera_signing_key_rotations_total` | counter | `event` |
/// | `tessera_store_pool_connections` | gauge | `state` (`busy`, `idle`) |
/// | `tessera_store_pool_max_connections` | gauge | |
/// | `tessera_store_pool_waiting` | gauge | |
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    families: Families,
    /// Route × status slot: the counter of that label set, once it was used.
    requests: Box<[[OnceLock<StripedCounter>; STATUSES.len()]; ROUTES]>,
    latency: [OnceLock<LatencyHistogram>; ROUTES],
    tokens: [OnceLock<StripedCounter>; TOKEN_KINDS.len()],
    auth_failures: [OnceLock<Counter>; AUTH_METHODS.len()],
    throttled: Counter,
    storage_errors: [Counter; StorageErrorKind::ALL.len()],
    key_created: Counter,
    key_retired: Counter,
    key: Arc<KeyAge>,
    pool: Arc<PoolWatch>,
}

/// The families, shared by the endpoint's registry and any registry the
/// application adds them to.
#[derive(Clone)]
struct Families {
    requests: Family<StatusLabels, StripedCounter>,
    latency: Family<Labels, LatencyHistogram>,
    tokens: Family<Labels, StripedCounter>,
    auth_failures: Family<Labels, Counter>,
    storage_errors: Family<Labels, Counter>,
    rotations: Family<Labels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics at zero, in a registry of their own.
    pub fn new() -> Self {
        let families = Families {
            requests: Family::default(),
            latency: Family::default(),
            tokens: Family::default(),
            auth_failures: Family::default(),
            storage_errors: Family::default(),
            rotations: Family::default(),
        };
        let throttled = Counter::default();
        // The series alerts watch exist from the start, at zero.
        let storage_errors = StorageErrorKind::ALL
            .map(|kind| families.storage_errors.get_or_create_owned(&vec![("kind", kind.label())]));
        let key_created = families.rotations.get_or_create_owned(&vec![("event", "created")]);
        let key_retired = families.rotations.get_or_create_owned(&vec![("event", "retired")]);
        let key = Arc::new(KeyAge { activated_at: AtomicI64::new(i64::MIN) });
        let pool = Arc::new(PoolWatch::default());
        let mut registry = Registry::default();
        register(&mut registry, &families, &throttled, &key, &pool);
        Self {
            inner: Arc::new(Inner {
                registry,
                families,
                requests: Box::new(std::array::from_fn(|_| {
                    std::array::from_fn(|_| OnceLock::new())
                })),
                latency: std::array::from_fn(|_| OnceLock::new()),
                tokens: std::array::from_fn(|_| OnceLock::new()),
                auth_failures: std::array::from_fn(|_| OnceLock::new()),
                throttled,
                storage_errors,
                key_created,
                key_retired,
                key,
                pool,
            }),
        }
    }

    /// Adds these metrics to `registry` (the application's own, with its prefix
    /// and labels if it has any), so that one scrape reads them beside the
    /// application's. The metrics stay shared: the endpoint keeps counting into them.
    pub fn register(&self, registry: &mut Registry) {
        let inner = &self.inner;
        register(registry, &inner.families, &inner.throttled, &inner.key, &inner.pool);
    }

    /// Writes the metrics in the OpenMetrics text format
    /// ([`METRICS_CONTENT_TYPE`]), ending with `# EOF`.
    pub fn encode(&self, out: &mut String) -> fmt::Result {
        prometheus_client::encoding::text::encode(out, &self.inner.registry)
    }

    /// Counts the key refresh's created and retired signing keys
    /// (`tessera_signing_key_rotations_total`).
    pub fn record_key_rotations(&self, created: usize, retired: usize) {
        self.inner.key_created.inc_by(created as u64);
        self.inner.key_retired.inc_by(retired as u64);
    }

    /// Notes when the key that signs now started signing (its activation time, unix
    /// seconds), from which `tessera_signing_key_age_seconds` is reported; `None`
    /// when no key signs (the gauge is then absent).
    pub fn set_signing_key_activated_at(&self, unix_seconds: Option<i64>) {
        self.inner.key.activated_at.store(unix_seconds.unwrap_or(i64::MIN), Ordering::Relaxed);
    }

    /// Counts one answered request and its duration.
    pub(crate) fn record_request(&self, route: RouteLabel, status: StatusCode, elapsed: Duration) {
        let inner = &*self.inner;
        let r = route as usize;
        let code = status.as_u16();
        let s = STATUSES.iter().position(|&known| known == code).unwrap_or(STATUSES.len() - 1);
        let labels = || (vec![("endpoint", ROUTE_NAMES[r])], [("status", code)]);
        if s == STATUSES.len() - 1 {
            // A status without a slot of its own: through the family.
            inner.families.requests.get_or_create(&labels()).inc();
        } else {
            inner.requests[r][s]
                .get_or_init(|| inner.families.requests.get_or_create_owned(&labels()))
                .inc();
        }
        inner.latency[r]
            .get_or_init(|| {
                inner.families.latency.get_or_create_owned(&vec![("endpoint", ROUTE_NAMES[r])])
            })
            .observe(elapsed);
    }

    /// Counts an issued token, of the type and algorithm its wire form shows.
    pub(crate) fn record_token(&self, token: &str) {
        let kind = token_kind(token);
        let inner = &*self.inner;
        inner.tokens[kind]
            .get_or_init(|| {
                let (token_type, algorithm) = TOKEN_KINDS[kind];
                inner.families.tokens.get_or_create_owned(&vec![
                    ("token_type", token_type),
                    ("algorithm", algorithm),
                ])
            })
            .inc();
    }

    /// Counts a failed client authentication.
    pub(crate) fn record_auth_failure(&self, method: AuthLabel) {
        let inner = &*self.inner;
        let i = method.index();
        inner.auth_failures[i]
            .get_or_init(|| {
                inner.families.auth_failures.get_or_create_owned(&vec![("method", AUTH_METHODS[i])])
            })
            .inc();
    }

    /// Counts a request refused by the throttle (429).
    pub(crate) fn record_throttled(&self) {
        self.inner.throttled.inc();
    }

    /// Reports the use of `store`'s connection pool (PostgreSQL's) as
    /// `tessera_store_pool_connections{state="busy"|"idle"}`,
    /// `tessera_store_pool_max_connections` and `tessera_store_pool_waiting`, read
    /// when the metrics are encoded. A store without a pool reports nothing; the
    /// first store watched stays.
    pub fn watch_pool(&self, store: Arc<dyn tessera_store::IssuingStore>) {
        let _ = self.inner.pool.source.set(store);
    }

    /// Counts a storage failure.
    pub(crate) fn record_storage_error(&self, kind: StorageErrorKind) {
        self.inner.storage_errors[kind.index()].inc();
    }
}

fn register(
    registry: &mut Registry,
    families: &Families,
    throttled: &Counter,
    key: &Arc<KeyAge>,
    pool: &Arc<PoolWatch>,
) {
    registry.register(
        "tessera_http_requests",
        "HTTP requests answered, by endpoint and status code",
        families.requests.clone(),
    );
    registry.register(
        "tessera_http_request_duration_seconds",
        "Time to answer a request, by endpoint (from its head to its answer)",
        families.latency.clone(),
    );
    registry.register(
        "tessera_tokens_issued",
        "Access tokens issued, by token type and signing algorithm (none for opaque tokens)",
        families.tokens.clone(),
    );
    registry.register(
        "tessera_client_auth_failures",
        "Failed client authentications (invalid_client, or invalid_grant for an assertion), \
         by method",
        families.auth_failures.clone(),
    );
    registry.register(
        "tessera_throttled_requests",
        "Requests refused with 429 after too many failed authentications",
        throttled.clone(),
    );
    registry.register(
        "tessera_storage_errors",
        "Storage failures while answering: transient (503, retried later) or other (500)",
        families.storage_errors.clone(),
    );
    registry.register(
        "tessera_signing_key_rotations",
        "Signing keys this instance created, and retired keys it deleted",
        families.rotations.clone(),
    );
    registry.register_collector(Box::new(key.clone()));
    registry.register_collector(Box::new(pool.clone()));
}

/// Which of [`TOKEN_KINDS`] a token on the wire is: an opaque token has no `.`; a
/// JWT's header names its algorithm.
fn token_kind(token: &str) -> usize {
    let Some((header, _)) = token.split_once('.') else { return 0 };
    let mut buf = [0u8; 192];
    let Ok(json) = base64ct::Base64UrlUnpadded::decode(header, &mut buf) else { return 1 };
    let alg =
        json.windows(7).position(|w| w == b"\"alg\":\"").map_or(&[][..], |at| &json[at + 7..]);
    if alg.starts_with(b"RS256\"") {
        2
    } else if alg.starts_with(b"EdDSA\"") {
        3
    } else {
        1
    }
}

use base64ct::Encoding as _;

/// When the key that signs now was activated, for the age gauge computed at scrape.
#[derive(Debug)]
struct KeyAge {
    /// Unix seconds, or `i64::MIN` when unknown.
    activated_at: AtomicI64,
}

impl Collector for KeyAge {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let activated = self.activated_at.load(Ordering::Relaxed);
        if activated == i64::MIN {
            return Ok(());
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let gauge = ConstGauge::new(now.saturating_sub(activated).max(0));
        let metric = encoder.encode_descriptor(
            "tessera_signing_key_age_seconds",
            "Seconds since the signing key in use started signing",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}

/// Where the connection pool's use is read from when the metrics are encoded: the
/// store's [`pool_stats`](tessera_store::IssuingStore::pool_stats), once a store
/// with a pool is watched.
#[derive(Default)]
struct PoolWatch {
    source: OnceLock<Arc<dyn tessera_store::IssuingStore>>,
}

impl fmt::Debug for PoolWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolWatch").field("watching", &self.source.get().is_some()).finish()
    }
}

impl Collector for PoolWatch {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let Some(stats) = self.source.get().and_then(|store| store.pool_stats()) else {
            return Ok(());
        };
        let busy = stats.size.saturating_sub(stats.idle);
        for (state, value) in [("busy", busy), ("idle", stats.idle)] {
            let gauge = ConstGauge::new(i64::from(value));
            let labels = [("state", state)];
            let mut family = encoder.encode_descriptor(
                "tessera_store_pool_connections",
                "Open connections of the store's pool, in use (busy) or not (idle)",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(family.encode_family(&labels)?)?;
        }
        for (name, help, value) in [
            (
                "tessera_store_pool_max_connections",
                "The most connections the store's pool opens",
                stats.max_size,
            ),
            (
                "tessera_store_pool_waiting",
                "Store operations waiting for a connection of the pool",
                stats.waiting,
            ),
        ] {
            let gauge = ConstGauge::new(i64::from(value));
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// Stripes of each counter and histogram that every request updates: a thread
/// adds to a stripe of its own (by the order threads first counted), on a cache
/// line of its own, so that threads on different cores do not take the same line
/// from each other on every request; the encoder sums the stripes.
const STRIPES: usize = 8;

/// The stripe of the current thread.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

/// One stripe: aligned to two cache lines, as adjacent lines are fetched in pairs.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe<T>(T);

/// A counter in [`STRIPES`] stripes.
#[derive(Debug, Clone, Default)]
pub(crate) struct StripedCounter {
    stripes: Arc<[Stripe<AtomicU64>; STRIPES]>,
}

impl StripedCounter {
    fn inc(&self) {
        self.stripes[stripe()].0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.stripes.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

impl TypedMetric for StripedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for StripedCounter {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A latency histogram of atomics, in [`STRIPES`] stripes: per stripe one counter
/// per bucket (not cumulative; summed when encoded) and the sum in nanoseconds; the
/// count is the buckets' sum.
#[derive(Debug, Clone, Default)]
pub(crate) struct LatencyHistogram {
    stripes: Arc<[Stripe<HistogramStripe>; STRIPES]>,
}

#[derive(Debug, Default)]
struct HistogramStripe {
    /// Per bucket, then the `+Inf` one.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_NANOS.partition_point(|&bound| bound < nanos);
        let stripe = &self.stripes[stripe()].0;
        stripe.buckets[i].fetch_add(1, Ordering::Relaxed);
        stripe.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        // Per bucket (the encoder sums them), and the count as their sum, so that
        // it agrees with them whatever is observed meanwhile.
        let mut count = 0;
        let mut buckets = [(0.0, 0); LATENCY_BUCKETS.len() + 1];
        for (i, slot) in buckets.iter_mut().enumerate() {
            let n: u64 = self.stripes.iter().map(|s| s.0.buckets[i].load(Ordering::Relaxed)).sum();
            count += n;
            let bound = LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
            *slot = (bound, n);
        }
        let sum_nanos: u64 =
            self.stripes.iter().map(|s| s.0.sum_nanos.load(Ordering::Relaxed)).sum();
        let sum = sum_nanos as f64 / 1e9;
        encoder
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(metrics: &Metrics) -> String {
        let mut out = String::new();
        metrics.encode(&mut out).expect("encode");
        out
    }

    #[test]
    fn requests_are_counted_by_endpoint_and_status() {
        let metrics = Metrics::new();
        metrics.record_request(RouteLabel::Token, StatusCode::OK, Duration::from_micros(300));
        metrics.record_request(RouteLabel::Token, StatusCode::OK, Duration::from_millis(2));
        metrics.record_request(RouteLabel::Token, StatusCode::UNAUTHORIZED, Duration::ZERO);
        metrics.record_request(RouteLabel::Keys, StatusCode::IM_A_TEAPOT, Duration::ZERO);
        let text = encoded(&metrics);
        assert!(
            text.contains("tessera_http_requests_total{endpoint=\"token\",status=\"200\"} 2\n")
        );
        assert!(
            text.contains("tessera_http_requests_total{endpoint=\"token\",status=\"401\"} 1\n")
        );
        assert!(text.contains("tessera_http_requests_total{endpoint=\"keys\",status=\"418\"} 1\n"));
        assert!(text.contains(
            "tessera_http_request_duration_seconds_bucket{le=\"0.0005\",endpoint=\"token\"} 2\n"
        ));
        assert!(text.contains(
            "tessera_http_request_duration_seconds_bucket{le=\"+Inf\",endpoint=\"token\"} 3\n"
        ));
        assert!(
            text.contains("tessera_http_request_duration_seconds_count{endpoint=\"token\"} 3\n")
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn the_histogram_puts_a_bound_in_its_own_bucket() {
        let histogram = LatencyHistogram::default();
        histogram.observe(Duration::from_micros(100));
        histogram.observe(Duration::from_micros(101));
        histogram.observe(Duration::from_secs(60));
        let bucket = |i: usize| -> u64 {
            histogram.stripes.iter().map(|s| s.0.buckets[i].load(Ordering::Relaxed)).sum()
        };
        assert_eq!(bucket(0), 1);
        assert_eq!(bucket(1), 1);
        assert_eq!(bucket(LATENCY_BUCKETS.len()), 1);
    }

    #[test]
    fn counts_from_more_threads_than_stripes_all_add_up() {
        let metrics = Metrics::new();
        std::thread::scope(|scope| {
            for _ in 0..STRIPES * 2 + 1 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        metrics.record_request(
                            RouteLabel::Token,
                            StatusCode::OK,
                            Duration::from_micros(300),
                        );
                        metrics.record_token("AAAAsomeopaquetoken");
                    }
                });
            }
        });
        let total = (STRIPES * 2 + 1) * 100;
        let text = encoded(&metrics);
        assert!(text.contains(&format!(
            "tessera_http_requests_total{{endpoint=\"token\",status=\"200\"}} {total}\n"
        )));
        assert!(text.contains(&format!(
            "tessera_http_request_duration_seconds_count{{endpoint=\"token\"}} {total}\n"
        )));
        assert!(text.contains(&format!(
            "tessera_http_request_duration_seconds_bucket{{le=\"0.0005\",endpoint=\"token\"}} {total}\n"
        )));
        assert!(
            text.contains(&format!(
                "tessera_tokens_issued_total{{token_type=\"opaque\",algorithm=\"none\"}} {total}\n"
            )),
            "{text}"
        );
    }

    #[test]
    fn token_kinds_come_from_the_wire_form() {
        use base64ct::Base64UrlUnpadded;
        let jwt = |header: &str| {
            format!("{}.e30.sig", Base64UrlUnpadded::encode_string(header.as_bytes()))
        };
        assert_eq!(token_kind("AAAAsomeopaquetoken"), 0);
        assert_eq!(token_kind(&jwt(r#"{"typ":"at+jwt","alg":"ES256","kid":"k"}"#)), 1);
        assert_eq!(token_kind(&jwt(r#"{"alg":"RS256","typ":"JWT"}"#)), 2);
        assert_eq!(token_kind(&jwt(r#"{"alg":"EdDSA"}"#)), 3);
    }

    #[test]
    fn storage_errors_and_rotations_start_at_zero_and_key_age_appears_once_known() {
        let metrics = Metrics::new();
        let text = encoded(&metrics);
        for kind in ["unavailable", "corrupt", "backend", "other"] {
            assert!(text.contains(&format!("tessera_storage_errors_total{{kind=\"{kind}\"}} 0\n")));
        }
        assert!(text.contains("tessera_signing_key_rotations_total{event=\"created\"} 0\n"));
        assert!(!text.contains("tessera_signing_key_age_seconds"));
        metrics.record_storage_error(StorageErrorKind::Corrupt);
        metrics.record_key_rotations(1, 2);
        metrics.record_auth_failure(AuthLabel::Method(AuthMethod::ClientSecretPost));
        metrics.record_throttled();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        metrics.set_signing_key_activated_at(Some(now - 100));
        let text = encoded(&metrics);
        assert!(text.contains("tessera_storage_errors_total{kind=\"corrupt\"} 1\n"));
        assert!(text.contains("tessera_storage_errors_total{kind=\"backend\"} 0\n"));
        assert!(text.contains("tessera_signing_key_rotations_total{event=\"created\"} 1\n"));
        assert!(text.contains("tessera_signing_key_rotations_total{event=\"retired\"} 2\n"));
        assert!(
            text.contains("tessera_client_auth_failures_total{method=\"client_secret_post\"} 1\n")
        );
        assert!(text.contains("tessera_throttled_requests_total 1\n"));
        assert!(text.contains("# TYPE tessera_signing_key_age_seconds gauge\n"));
        let age = text
            .lines()
            .find_map(|l| l.strip_prefix("tessera_signing_key_age_seconds "))
            .and_then(|v| v.parse::<i64>().ok())
            .expect("age");
        assert!((100..110).contains(&age), "{age}");
    }

    #[test]
    fn metrics_register_into_another_registry() {
        let metrics = Metrics::new();
        metrics.record_throttled();
        let mut registry = Registry::with_prefix("app");
        metrics.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        assert!(out.contains("app_tessera_throttled_requests_total 1\n"), "{out}");
    }
}
