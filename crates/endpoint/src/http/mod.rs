//! The hyper (and tower) `Service`: routing a request to the issuer and its answer
//! back. Reading requests is in [`request`], rendering answers in [`response`].

pub(crate) mod address;
pub(crate) mod form;
mod json;
pub(crate) mod metrics;
pub(crate) mod request;
mod response;
pub(crate) mod rpc;
pub(crate) mod throttle;

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use tessera_scope::ScopeSet;

use crate::audit::{AuditEvent, loggable_id};
use crate::context::{client_address, with_client_address};
use crate::error::{ErrorCode, OAuthError, StorageErrorKind, json_response};
use crate::issuer::{ClientCredentialsRequest, Issuer, JWT_BEARER_GRANT_TYPE};
use crate::paths::{
    AUTHORIZE_PATH, HEALTH_PATH, INTROSPECT_PATH, KEYS_PATH, OAUTH_METADATA_PATH,
    OPENID_CONFIGURATION_PATH, READY_PATH, REVOKE_PATH, TOKEN_PATH, USERINFO_PATH,
};
use address::ClientAddressSource;
use form::Form;
use metrics::{AuthLabel, METRICS_PATH, Metrics, RouteLabel};
use request::{
    BoxError, bearer_token, carries_client_credentials, form_param, read_credentials, read_form,
    require_method,
};
use throttle::{Throttle, ThrottleConfig};

use crate::memo::{Last, remembered};

/// The default limit on request bodies: 64 KiB.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// The response body type of the endpoint.
pub type ResponseBody = Full<Bytes>;

/// The OAuth endpoints as one hyper (and tower) `Service`.
///
/// It is a service, not a server: mount it in an existing router, or hand it to
/// hyper's connection builder. Every request gets an answer; errors are OAuth JSON
/// bodies with RFC-mandated statuses, never a panic.
///
/// The endpoints answer at the paths of [`ROUTES`](crate::ROUTES) relative to the
/// issuer URL, so the endpoint mounts anywhere: at the root (issuer
/// `https://auth.example.com`), under a prefix of the application's (issuer
/// `https://app.example.com/auth`, requests arriving with or without `/auth`, as
/// axum's `nest_service` passes them), and the discovery document names the URLs
/// where they answer.
///
/// ```
/// use std::sync::Arc;
/// use tessera_endpoint::{Issuer, TokenEndpoint};
/// use tessera_mint::TokenMinter;
/// use tessera_store::MemoryStore;
///
/// let issuer = Issuer::new(Arc::new(MemoryStore::new()), TokenMinter::new("https://auth.example.com"));
/// let endpoint = TokenEndpoint::new(issuer);
/// // For each accepted connection, a service that knows the peer's address:
/// // hyper::server::conn::http1::Builder::new().serve_connection(io, endpoint.for_peer(peer))
/// # let _ = endpoint;
/// ```
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    issuer: Issuer,
    max_body: usize,
    throttle: Option<Throttle>,
    client_address: ClientAddressSource,
    /// The path of the issuer URL (`/auth` for `https://app.example.com/auth/`), or
    /// empty.
    prefix: String,
    /// Whether the warning about requests without a client address was logged.
    warned_no_address: AtomicBool,
    /// Where requests are counted, if anywhere.
    metrics: Option<Metrics>,
    /// Whether `GET /metrics` answers with them.
    serve_metrics: bool,
    /// The RPC service answered beside the endpoints, if any.
    rpc: Option<Arc<dyn rpc::RpcService>>,
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Token,
    Introspect,
    Revoke,
    Userinfo,
    Health,
    Ready,
    Keys,
    Discovery,
    Authorize,
    Metrics,
    Rpc,
}

impl Route {
    /// The route of a path relative to the issuer URL.
    fn of(path: &str) -> Option<Self> {
        Some(match path {
            TOKEN_PATH => Route::Token,
            INTROSPECT_PATH => Route::Introspect,
            REVOKE_PATH => Route::Revoke,
            USERINFO_PATH => Route::Userinfo,
            HEALTH_PATH => Route::Health,
            READY_PATH => Route::Ready,
            KEYS_PATH => Route::Keys,
            OPENID_CONFIGURATION_PATH | OAUTH_METADATA_PATH => Route::Discovery,
            AUTHORIZE_PATH => Route::Authorize,
            METRICS_PATH => Route::Metrics,
            _ => return None,
        })
    }

    fn label(self) -> RouteLabel {
        match self {
            Route::Token => RouteLabel::Token,
            Route::Introspect => RouteLabel::Introspect,
            Route::Revoke => RouteLabel::Revoke,
            Route::Userinfo => RouteLabel::Userinfo,
            Route::Health => RouteLabel::Health,
            Route::Ready => RouteLabel::Ready,
            Route::Keys => RouteLabel::Keys,
            Route::Discovery => RouteLabel::Discovery,
            Route::Authorize => RouteLabel::Authorize,
            Route::Metrics => RouteLabel::Metrics,
            Route::Rpc => RouteLabel::Management,
        }
    }
}

impl TokenEndpoint {
    /// The endpoints of `issuer`, with the default body limit and throttling of failed
    /// client authentication with the default thresholds.
    pub fn new(issuer: Issuer) -> Self {
        let prefix = issuer_path(issuer.minter().issuer());
        Self {
            inner: Arc::new(Inner {
                issuer,
                max_body: DEFAULT_MAX_BODY,
                throttle: Some(Throttle::new(ThrottleConfig::default())),
                client_address: ClientAddressSource::default(),
                prefix,
                warned_no_address: AtomicBool::new(false),
                metrics: None,
                serve_metrics: false,
                rpc: None,
            }),
        }
    }

    /// Sets the largest request body accepted; larger ones are answered with 413.
    pub fn with_max_body(self, max_body: usize) -> Self {
        self.rebuild(|inner| inner.max_body = max_body)
    }

    /// Throttles failed client authentication with `config`, or (with `None`) not at
    /// all. Throttling counts failures per client address as well as per client ID:
    /// see [`ClientAddressSource`] for where the address comes from.
    pub fn with_throttle(self, config: Option<ThrottleConfig>) -> Self {
        self.rebuild(|inner| inner.throttle = config.map(Throttle::new))
    }

    /// Reads client addresses as `source` says (the peer by default).
    pub fn with_client_address(self, source: ClientAddressSource) -> Self {
        self.rebuild(|inner| inner.client_address = source)
    }

    /// Counts requests, issued tokens and failures in `metrics`, and answers
    /// `GET /metrics` (relative to the issuer URL, like the other paths) with them in
    /// the OpenMetrics text format, unless [`serve_metrics`](Self::serve_metrics)
    /// turns that off. Without metrics (the default) nothing is counted and
    /// `/metrics` is not found.
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        let store: Arc<dyn tessera_store::IssuingStore> = self.inner.issuer.store().clone();
        metrics.watch_pool(store);
        self.rebuild(|inner| {
            inner.metrics = Some(metrics);
            inner.serve_metrics = true;
        })
    }

    /// Answers the calls of `service` beside the endpoints, on the paths it
    /// [handles](rpc::RpcService::handles) that are not the endpoints' own: with the
    /// same client address, log context and metrics (`endpoint="management"`). The
    /// body is read up to [`MAX_RPC_BODY`](rpc::MAX_RPC_BODY).
    pub fn with_rpc(self, service: Arc<dyn rpc::RpcService>) -> Self {
        self.rebuild(|inner| inner.rpc = Some(service))
    }

    /// Whether `GET /metrics` answers with the metrics of
    /// [`with_metrics`](Self::with_metrics) (`false`: they are counted, and served
    /// elsewhere, such as on a listener of their own with [`Metrics::encode`]).
    pub fn serve_metrics(self, serve: bool) -> Self {
        self.rebuild(|inner| inner.serve_metrics = serve && inner.metrics.is_some())
    }

    /// The metrics the endpoint counts in, if any.
    pub fn metrics(&self) -> Option<&Metrics> {
        self.inner.metrics.as_ref()
    }

    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            issuer: self.inner.issuer.clone(),
            max_body: self.inner.max_body,
            throttle: self.inner.throttle.as_ref().map(|t| Throttle::new(*t.config())),
            client_address: self.inner.client_address.clone(),
            prefix: self.inner.prefix.clone(),
            warned_no_address: AtomicBool::new(false),
            metrics: self.inner.metrics.clone(),
            serve_metrics: self.inner.serve_metrics,
            rpc: self.inner.rpc.clone(),
        };
        change(&mut inner);
        Self { inner: Arc::new(inner) }
    }

    /// The issuer behind the endpoint.
    pub fn issuer(&self) -> &Issuer {
        &self.inner.issuer
    }

    /// Whether a request for `path` is one of the endpoints' (relative to the issuer
    /// URL, or with the issuer URL's path before it): route exactly these to the
    /// endpoint, and the application's own paths keep their own answers.
    pub fn handles(&self, path: &str) -> bool {
        self.route_of(path).is_some()
    }

    /// The endpoint for requests of one connection from `peer`: each request is
    /// answered as coming from the peer (unless it carries a
    /// [`ClientAddr`](crate::ClientAddr) of its own), so that throttling and the log
    /// know where it came from. Use it as the service of a hyper connection.
    pub fn for_peer(&self, peer: SocketAddr) -> PeerEndpoint {
        PeerEndpoint { endpoint: self.clone(), peer: peer.ip() }
    }

    fn route_of(&self, path: &str) -> Option<Route> {
        let route = Route::of(path).or_else(|| Route::of(self.relative(path)));
        route.filter(|&r| r != Route::Metrics || self.inner.serve_metrics).or_else(|| {
            let rpc = self.inner.rpc.as_ref()?;
            rpc.handles(self.relative(path)).then_some(Route::Rpc)
        })
    }

    /// `path` without the issuer URL's path before it, if it has it.
    fn relative<'a>(&self, path: &'a str) -> &'a str {
        let prefix = self.inner.prefix.as_str();
        match path.strip_prefix(prefix) {
            Some(rest) if !prefix.is_empty() && rest.starts_with('/') => rest,
            _ => path,
        }
    }

    /// Answers one request. Every event logged while answering it carries its client
    /// address as `client_address`, when the endpoint knows it.
    pub fn handle<B>(&self, request: Request<B>) -> impl Future<Output = Response<ResponseBody>>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        // The answer's own future, not one more layer around it to move.
        self.answer(request, None)
    }

    /// Answers one request that arrived on a connection from `peer`: as [`handle`]
    /// with a [`ClientAddr`](crate::ClientAddr) of `peer` in the request (one it
    /// carries already wins), without adding one to its extensions.
    ///
    /// [`handle`]: Self::handle
    pub fn handle_from<B>(
        &self,
        request: Request<B>,
        peer: IpAddr,
    ) -> impl Future<Output = Response<ResponseBody>>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        self.answer(request, Some(peer))
    }

    async fn answer<B>(&self, request: Request<B>, peer: Option<IpAddr>) -> Response<ResponseBody>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let addr = self.inner.client_address.resolve_from(&request, peer);
        if addr.is_none()
            && self.inner.throttle.is_some()
            && !self.inner.warned_no_address.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "a request arrived without a client address: failed authentications are \
                 throttled per client ID only, not per address; serve connections with \
                 TokenEndpoint::for_peer, axum's ConnectInfo, or a ClientAddr extension"
            );
        }
        let metrics = self.inner.metrics.as_ref();
        let started = metrics.map(|_| Instant::now());
        let route = self.route_of(request.uri().path());
        // The route's future is boxed: the request's future stays a few hundred bytes,
        // which hyper and servers move by value several times per request, instead of
        // the route's 2.4 KiB.
        let routed = Box::pin(self.route(route, request, addr));
        let response = match with_client_address(addr, routed).await {
            Ok(response) => response,
            Err(error) => {
                if let (Some(metrics), Some(kind)) = (metrics, error.storage()) {
                    metrics.record_storage_error(kind);
                }
                error.into_response()
            }
        };
        if let (Some(metrics), Some(started)) = (metrics, started) {
            let label = route.map_or(RouteLabel::Unknown, Route::label);
            metrics.record_request(label, response.status(), started.elapsed());
        }
        response
    }

    async fn route<B>(
        &self,
        route: Option<Route>,
        request: Request<B>,
        addr: Option<IpAddr>,
    ) -> Result<Response<ResponseBody>, OAuthError>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let Some(route) = route else {
            return Err(OAuthError::not_found());
        };
        let issuer = &self.inner.issuer;
        match route {
            Route::Token => {
                require_method(request.method(), &[Method::POST], "POST")?;
                let (parts, body) = request.into_parts();
                let form = read_form(&parts.headers, body, self.inner.max_body).await?;
                // The token route's work is part of this future (boxed whole by
                // `answer`); the other routes' work is boxed, so that a token request
                // allocates for no route but its own.
                self.token(&parts.headers, &form, addr).await
            }
            Route::Introspect | Route::Revoke => {
                require_method(request.method(), &[Method::POST], "POST")?;
                let (parts, body) = request.into_parts();
                let form = read_form(&parts.headers, body, self.inner.max_body).await?;
                let token = form_param(&form, "token")?
                    .ok_or_else(|| OAuthError::invalid_request("missing parameter token"))?;
                // token_type_hint: only access tokens are issued here, so every search
                // covers them whatever the hint says (RFC 7009 §2.1).
                form_param(&form, "token_type_hint")?;
                let (credentials, claimed) = read_credentials(&parts.headers, &form);
                let method = auth_label(&credentials);
                self.admit(&claimed, addr)?;
                let result = Box::pin(async {
                    let credentials = credentials?;
                    if route == Route::Introspect {
                        let answer = issuer.introspect(&credentials, token).await?;
                        Ok(response::introspection_response(&answer, issuer.minter().issuer()))
                    } else {
                        issuer.revoke(&credentials, token).await?;
                        Ok(response::empty_ok())
                    }
                })
                .await;
                self.settle(&claimed, addr, method, &result);
                result
            }
            Route::Userinfo => {
                require_method(request.method(), &[Method::GET, Method::POST], "GET, POST")?;
                let token = bearer_token(request.headers())?;
                let info = Box::pin(issuer.userinfo(token)).await?;
                Ok(json_response(StatusCode::OK, &info))
            }
            Route::Health => {
                require_method(request.method(), &[Method::GET, Method::HEAD], "GET, HEAD")?;
                Ok(Box::pin(self.health()).await)
            }
            Route::Ready => {
                require_method(request.method(), &[Method::GET, Method::HEAD], "GET, HEAD")?;
                Ok(Box::pin(self.ready()).await)
            }
            Route::Keys => {
                require_method(request.method(), &[Method::GET, Method::HEAD], "GET, HEAD")?;
                Ok(response::keys(issuer))
            }
            Route::Discovery => {
                require_method(request.method(), &[Method::GET, Method::HEAD], "GET, HEAD")?;
                Ok(response::discovery(issuer))
            }
            Route::Metrics => {
                require_method(request.method(), &[Method::GET, Method::HEAD], "GET, HEAD")?;
                Ok(self.metrics_response())
            }
            Route::Rpc => {
                let Some(service) = self.inner.rpc.as_ref() else {
                    return Err(OAuthError::not_found());
                };
                let (parts, body) = request.into_parts();
                // Boxed, as the other routes' work but the token route's.
                Ok(Box::pin(async move {
                    let body = rpc::read_body(&parts.headers, body, rpc::MAX_RPC_BODY).await;
                    let call = rpc::RpcRequest {
                        method: parts.method,
                        path: self.relative(parts.uri.path()).to_owned(),
                        headers: parts.headers,
                        body,
                        client_address: addr,
                    };
                    service.call(call).await
                })
                .await)
            }
            Route::Authorize => {
                require_method(request.method(), &[Method::GET, Method::POST], "GET, POST")?;
                Err(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    "this server issues tokens to service users only, with the client \
                     credentials and JWT bearer grants at the token endpoint; there is no \
                     interactive login",
                ))
            }
        }
    }

    async fn token(
        &self,
        headers: &HeaderMap,
        form: &Form,
        addr: Option<IpAddr>,
    ) -> Result<Response<ResponseBody>, OAuthError> {
        let grant_type = form_param(form, "grant_type")?
            .ok_or_else(|| OAuthError::invalid_request("missing parameter grant_type"))?;
        let scope = form_param(form, "scope")?.map(parse_scope).transpose()?;
        let issuer = &self.inner.issuer;
        match grant_type {
            "client_credentials" => {
                let (credentials, claimed) = read_credentials(headers, form);
                let method = auth_label(&credentials);
                self.admit(&claimed, addr)?;
                // The attempt's code in this function's own body rather than a future
                // handed to another, which would be moved, whole, once more.
                let result = match credentials {
                    Ok(credentials) => {
                        let request = ClientCredentialsRequest { credentials, scope };
                        issuer.client_credentials(request).await
                    }
                    Err(e) => Err(e),
                };
                self.token_answer(&claimed, addr, method, result)
            }
            JWT_BEARER_GRANT_TYPE => {
                let assertion = form_param(form, "assertion")?
                    .ok_or_else(|| OAuthError::invalid_request("missing parameter assertion"))?;
                let (credentials, claimed) = if carries_client_credentials(headers, form) {
                    let (credentials, claimed) = read_credentials(headers, form);
                    (Some(credentials), claimed)
                } else {
                    (None, String::new())
                };
                let method = credentials.as_ref().map_or(AuthLabel::JwtBearer, auth_label);
                self.admit(&claimed, addr)?;
                // Boxed: verifying an assertion takes a large future, which a client
                // credentials request should not carry.
                let result = match credentials.transpose() {
                    Ok(credentials) => {
                        Box::pin(issuer.jwt_bearer(credentials.as_ref(), assertion, scope)).await
                    }
                    Err(e) => Err(e),
                };
                self.token_answer(&claimed, addr, method, result)
            }
            _ => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type must be client_credentials or urn:ietf:params:oauth:grant-type:jwt-bearer",
            )),
        }
    }

    /// Admits an attempt to authenticate as `client_id` from `addr`, or refuses it
    /// with 429 while the throttle holds them over a limit. The attempt's outcome then
    /// goes to [`settle`](Self::settle).
    fn admit(&self, client_id: &str, addr: Option<IpAddr>) -> Result<(), OAuthError> {
        let Some(throttle) = self.inner.throttle.as_ref().filter(|t| !t.is_clear()) else {
            return Ok(());
        };
        let Err(retry_after) = throttle.check(client_id, addr, Instant::now()) else {
            return Ok(());
        };
        if let Some(metrics) = &self.inner.metrics {
            metrics.record_throttled();
        }
        self.inner.issuer.audit(&AuditEvent::ClientThrottled {
            client_id: loggable_id(client_id),
            address: addr,
            retry_after,
        });
        Err(OAuthError::too_many_attempts(retry_after))
    }

    /// Records the outcome of an admitted attempt: a failed authentication
    /// (`invalid_client`, or `invalid_grant` for an assertion grant) counts against
    /// the pair, a success clears the pair's failures.
    fn settle<T>(
        &self,
        client_id: &str,
        addr: Option<IpAddr>,
        method: AuthLabel,
        result: &Result<T, OAuthError>,
    ) {
        let failed = matches!(result, Err(e) if is_auth_failure(e));
        if let (true, Some(metrics)) = (failed, &self.inner.metrics) {
            metrics.record_auth_failure(method);
        }
        let Some(throttle) = &self.inner.throttle else { return };
        if failed {
            throttle.failure(client_id, addr, Instant::now());
        } else if result.is_ok() {
            throttle.success(client_id, addr, Instant::now());
        }
    }

    /// Settles a token grant's attempt (see [`settle`](Self::settle)) and answers the
    /// token it issued, counted in the metrics.
    fn token_answer(
        &self,
        client_id: &str,
        addr: Option<IpAddr>,
        method: AuthLabel,
        result: Result<crate::issuer::TokenResponse, OAuthError>,
    ) -> Result<Response<ResponseBody>, OAuthError> {
        self.settle(client_id, addr, method, &result);
        let response = result?;
        self.count_token(&response);
        Ok(response::token_response(&response))
    }

    /// Counts an issued token in the metrics, if any.
    fn count_token(&self, response: &crate::issuer::TokenResponse) {
        if let Some(metrics) = &self.inner.metrics {
            metrics.record_token(response.access_token.expose());
        }
    }

    /// Counts a storage failure of a health or readiness check.
    fn count_storage_error(&self, error: &tessera_store::StoreError) {
        if let Some(metrics) = &self.inner.metrics {
            metrics.record_storage_error(StorageErrorKind::of(error));
        }
    }

    /// The metrics in the OpenMetrics text format.
    fn metrics_response(&self) -> Response<ResponseBody> {
        let mut text = String::with_capacity(8 * 1024);
        let encoded = self.inner.metrics.as_ref().map(|m| m.encode(&mut text));
        match encoded {
            Some(Ok(())) => response::metrics(text),
            _ => OAuthError::server_error().into_response(),
        }
    }

    /// Readiness: the store answers a read and a write, and a key signs JWTs now.
    /// The write revokes a random token id that expires at once, which the purge
    /// removes like any other.
    async fn ready(&self) -> Response<ResponseBody> {
        let issuer = &self.inner.issuer;
        let store = issuer.store();
        let read = store.ping().await;
        let now = issuer.clock().now();
        let write = match tessera_store::TokenId::generate() {
            Ok(jti) => store.revoke_jti(&jti, now + time::Duration::seconds(1)).await,
            Err(e) => Err(tessera_store::StoreError::Unavailable(Box::new(e))),
        };
        let signing =
            issuer.minter().keys().is_some_and(|ring| ring.key_set().signing_key(now).is_some());
        for (check, result) in [("store read", &read), ("store write", &write)] {
            if let Err(e) = result {
                self.count_storage_error(e);
                tracing::warn!(
                    error = %tessera_store::error_chain(e),
                    check,
                    "readiness: storage failed"
                );
            }
        }
        response::ready(read.is_ok(), write.is_ok(), signing)
    }

    async fn health(&self) -> Response<ResponseBody> {
        match self.inner.issuer.store().ping().await {
            Ok(()) => response::health(true),
            Err(e) => {
                self.count_storage_error(&e);
                tracing::warn!(
                    error = %tessera_store::error_chain(&e),
                    client_address = client_address(),
                    "health check: storage unreachable"
                );
                response::health(false)
            }
        }
    }
}

/// Whether an error is a failed authentication, as the throttle counts them:
/// `invalid_client`, or `invalid_grant` for an assertion grant.
fn is_auth_failure(error: &OAuthError) -> bool {
    matches!(error.code(), ErrorCode::InvalidClient | ErrorCode::InvalidGrant)
}

/// The `method` label of credentials as read.
fn auth_label(credentials: &Result<crate::ClientCredentials, OAuthError>) -> AuthLabel {
    credentials.as_ref().map_or(AuthLabel::Unknown, |c| AuthLabel::Method(c.method))
}

/// The path of an issuer URL without its trailing `/`: `/auth` for
/// `https://app.example.com/auth/`, empty for `https://auth.example.com`.
fn issuer_path(issuer: &str) -> String {
    let rest = issuer.split_once("://").map_or(issuer, |(_, rest)| rest);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.trim_end_matches('/').to_owned()
}

/// The endpoint serving one connection: see [`TokenEndpoint::for_peer`].
#[derive(Debug, Clone)]
pub struct PeerEndpoint {
    endpoint: TokenEndpoint,
    peer: IpAddr,
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

impl<B> hyper::service::Service<Request<B>> for TokenEndpoint
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(request).await) })
    }
}

impl<B> hyper::service::Service<Request<B>> for PeerEndpoint
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<B>) -> Self::Future {
        let (this, peer) = (self.endpoint.clone(), self.peer);
        Box::pin(async move { Ok(this.handle_from(request, peer).await) })
    }
}

/// The tower `Service` of a type whose hyper `Service` answers every request: ready
/// at once, the same call.
macro_rules! tower_service_from_hyper {
    ($service:ty) => {
        impl<B> tower_service::Service<Request<B>> for $service
        where
            B: Body + Send + 'static,
            B::Data: Send,
            B::Error: Into<BoxError>,
        {
            type Response = Response<ResponseBody>;
            type Error = Infallible;
            type Future = ResponseFuture;

            fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, request: Request<B>) -> Self::Future {
                hyper::service::Service::call(&*self, request)
            }
        }
    };
}

tower_service_from_hyper!(TokenEndpoint);
tower_service_from_hyper!(PeerEndpoint);

thread_local! {
    /// The last `scope` parameter this thread parsed, and its scopes.
    static LAST_SCOPE: Last<ScopeSet> = const { RefCell::new(None) };
}

/// The scopes of a `scope` parameter. A client sends the same scope list with every
/// request, so each thread keeps the last list it parsed and hands out its scopes
/// again (shared, not copied) while the parameter stays the same.
fn parse_scope(value: &str) -> Result<ScopeSet, OAuthError> {
    remembered(&LAST_SCOPE, value, |value| {
        ScopeSet::parse(value).map_err(|e| OAuthError::invalid_scope(e.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_path_is_the_prefix() {
        assert_eq!(issuer_path("https://auth.example.com"), "");
        assert_eq!(issuer_path("https://auth.example.com/"), "");
        assert_eq!(issuer_path("https://app.example.com/auth"), "/auth");
        assert_eq!(issuer_path("https://app.example.com/a/b/"), "/a/b");
        assert_eq!(issuer_path("http://127.0.0.1:8080/x?y#z"), "/x");
    }

    #[test]
    fn a_scope_parameter_parses_alike_whether_or_not_it_was_the_last() {
        let values = [
            "openid profile",
            "openid profile",
            "openid",
            "openid profile urn:zitadel:iam:org:project:id:bench:aud",
            "openid  profile",
            "openid",
            "bad\u{7f}",
            "openid",
            "openid profile",
            "openid openid",
            &"x".repeat(5000),
            "openid",
        ];
        for _ in 0..2 {
            for value in values {
                let expected = ScopeSet::parse(value).map_err(|e| e.to_string());
                for _ in 0..2 {
                    let got = parse_scope(value);
                    match (&got, &expected) {
                        (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{value}"),
                        (Err(got), Err(expected)) => {
                            assert_eq!(got.code(), ErrorCode::InvalidScope, "{value}");
                            assert_eq!(got.description(), expected, "{value}");
                        }
                        _ => panic!("{value}: {got:?} against {expected:?}"),
                    }
                }
            }
        }
    }
}
