//! The hyper `Service`: routing, request parsing and response rendering.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, PRAGMA};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use serde::Serialize;
use tessera_mint::JWKS_MAX_AGE_SECS;
use tessera_scope::{Scope, ScopeSet, StandardScope};
use tessera_store::RoleClaims;

use crate::assertion::{ASSERTION_ALGORITHMS, JWT_BEARER_GRANT_TYPE};
use crate::auth::ClientCredentials;
use crate::context::{client_address, with_client_address};
use crate::error::{ErrorCode, OAuthError, json_bytes_response, json_response};
use crate::form::Form;
use crate::issuer::{ClientCredentialsRequest, Issuer, TokenResponse};
use crate::throttle::{ClientAddr, Throttle, ThrottleConfig};
use crate::tokens::Introspection;

/// Path of the authorization endpoint. It exists so that discovery documents name it
/// (OpenID Connect clients require one); it answers every request with an error,
/// since service users have no interactive login.
pub const AUTHORIZE_PATH: &str = "/oauth/v2/authorize";
/// Path of the token endpoint.
pub const TOKEN_PATH: &str = "/oauth/v2/token";
/// Path of token introspection (RFC 7662).
pub const INTROSPECT_PATH: &str = "/oauth/v2/introspect";
/// Path of token revocation (RFC 7009).
pub const REVOKE_PATH: &str = "/oauth/v2/revoke";
/// Path of the userinfo endpoint.
pub const USERINFO_PATH: &str = "/oidc/v1/userinfo";
/// Path of the health check.
pub const HEALTH_PATH: &str = "/healthz";
/// Path of the JWK Set of the token signing keys.
pub const KEYS_PATH: &str = "/oauth/v2/keys";
/// Path of the OpenID Connect discovery document.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// Path of the RFC 8414 authorization server metadata (the same document).
pub const OAUTH_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// The default limit on request bodies: 64 KiB.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// The client authentication methods every authenticating endpoint accepts.
const AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "private_key_jwt"];

/// The claims that tokens, introspection and userinfo may carry.
const CLAIMS_SUPPORTED: [&str; 17] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
    "name",
    "preferred_username",
    "updated_at",
    "urn:zitadel:iam:org:project:roles",
    "urn:zitadel:iam:user:resourceowner:id",
    "urn:zitadel:iam:user:resourceowner:name",
    "urn:zitadel:iam:user:resourceowner:primary_domain",
    "username",
];

/// The response body type of the endpoint.
pub type ResponseBody = Full<Bytes>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The OAuth endpoints as one hyper (and tower) `Service`.
///
/// It is a service, not a server: mount it in an existing router, or hand it to
/// hyper's connection builder. Every request gets an answer; errors are OAuth JSON
/// bodies with RFC-mandated statuses, never a panic.
///
/// ```
/// use std::sync::Arc;
/// use tessera_endpoint::{Issuer, TokenEndpoint};
/// use tessera_mint::TokenMinter;
/// use tessera_store::MemoryStore;
///
/// let issuer = Issuer::new(Arc::new(MemoryStore::new()), TokenMinter::new("https://auth.example.com"));
/// let endpoint = TokenEndpoint::new(issuer);
/// // hyper::server::conn::http1::Builder::new().serve_connection(io, endpoint.clone())
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
}

impl TokenEndpoint {
    /// The endpoints of `issuer`, with the default body limit.
    /// The endpoints of `issuer`, with the default body limit and throttling of failed
    /// client authentication with the default thresholds.
    pub fn new(issuer: Issuer) -> Self {
        Self {
            inner: Arc::new(Inner {
                issuer,
                max_body: DEFAULT_MAX_BODY,
                throttle: Some(Throttle::new(ThrottleConfig::default())),
            }),
        }
    }

    /// Sets the largest request body accepted; larger ones are answered with 413.
    pub fn with_max_body(self, max_body: usize) -> Self {
        self.rebuild(|inner| inner.max_body = max_body)
    }

    /// Throttles failed client authentication with `config`, or (with `None`) not at
    /// all. The endpoint learns a request's address from a [`ClientAddr`] in its
    /// extensions, which the server that accepted the connection puts there.
    pub fn with_throttle(self, config: Option<ThrottleConfig>) -> Self {
        self.rebuild(|inner| inner.throttle = config.map(Throttle::new))
    }

    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            issuer: self.inner.issuer.clone(),
            max_body: self.inner.max_body,
            throttle: self.inner.throttle.as_ref().map(|t| Throttle::new(*t.config())),
        };
        change(&mut inner);
        Self { inner: Arc::new(inner) }
    }

    /// The issuer behind the endpoint.
    pub fn issuer(&self) -> &Issuer {
        &self.inner.issuer
    }

    /// Answers one request. When its extensions hold a [`ClientAddr`], every event
    /// logged while answering it carries that address as `client_address`.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let addr = request.extensions().get::<ClientAddr>().map(|a| a.0);
        match with_client_address(addr, self.route(request)).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        }
    }

    async fn route<B>(&self, request: Request<B>) -> Result<Response<ResponseBody>, OAuthError>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        match request.uri().path() {
            TOKEN_PATH => {
                require_method(request.method(), &[Method::POST], "POST")?;
                let (parts, body) = request.into_parts();
                let addr = parts.extensions.get::<ClientAddr>().map(|a| a.0);
                let form = read_form(&parts.headers, body, self.inner.max_body).await?;
                self.token(&parts.headers, &form, addr).await
            }
            INTROSPECT_PATH | REVOKE_PATH => {
                require_method(request.method(), &[Method::POST], "POST")?;
                let path = request.uri().path().to_owned();
                let (parts, body) = request.into_parts();
                let addr = parts.extensions.get::<ClientAddr>().map(|a| a.0);
                let form = read_form(&parts.headers, body, self.inner.max_body).await?;
                let token = form_param(&form, "token")?
                    .ok_or_else(|| OAuthError::invalid_request("missing parameter token"))?;
                // token_type_hint: only access tokens are issued here, so every search
                // covers them whatever the hint says (RFC 7009 §2.1).
                form_param(&form, "token_type_hint")?;
                let (credentials, claimed) = read_credentials(&parts.headers, &form);
                self.guarded(&claimed, addr, async {
                    let credentials = credentials?;
                    if path == INTROSPECT_PATH {
                        let answer = self.inner.issuer.introspect(&credentials, token).await?;
                        Ok(introspection_response(&answer, self.inner.issuer.minter().issuer()))
                    } else {
                        self.inner.issuer.revoke(&credentials, token).await?;
                        Ok(empty_ok())
                    }
                })
                .await
            }
            USERINFO_PATH => {
                require_method(request.method(), &[Method::GET, Method::POST], "GET, POST")?;
                let token = bearer_token(request.headers())?;
                let info = self.inner.issuer.userinfo(token).await?;
                Ok(json_response(StatusCode::OK, &info))
            }
            HEALTH_PATH => {
                require_method(request.method(), &[Method::GET, Method::HEAD], "GET, HEAD")?;
                Ok(self.health().await)
            }
            KEYS_PATH => {
                require_method(request.method(), &[Method::GET, Method::HEAD], "GET, HEAD")?;
                Ok(self.keys())
            }
            OPENID_CONFIGURATION_PATH | OAUTH_METADATA_PATH => {
                require_method(request.method(), &[Method::GET, Method::HEAD], "GET, HEAD")?;
                Ok(public_json(json_response(StatusCode::OK, &self.discovery())))
            }
            AUTHORIZE_PATH => {
                require_method(request.method(), &[Method::GET, Method::POST], "GET, POST")?;
                Err(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    "this server issues tokens to service users only, with the client \
                     credentials and JWT bearer grants at the token endpoint; there is no \
                     interactive login",
                ))
            }
            _ => Err(OAuthError::not_found()),
        }
    }

    async fn token(
        &self,
        headers: &HeaderMap,
        form: &Form,
        addr: Option<IpAddr>,
    ) -> Result<Response<ResponseBody>, OAuthError> {
        let param = |name| form.get(name).map_err(|e| OAuthError::invalid_request(e.to_string()));
        let grant_type = param("grant_type")?
            .ok_or_else(|| OAuthError::invalid_request("missing parameter grant_type"))?;
        let scope = param("scope")?
            .map(|s| ScopeSet::parse(s).map_err(|e| OAuthError::invalid_scope(e.to_string())))
            .transpose()?;
        match grant_type {
            "client_credentials" => {
                let (credentials, claimed) = read_credentials(headers, form);
                self.guarded(&claimed, addr, async {
                    let credentials = credentials?;
                    let request = ClientCredentialsRequest { credentials, scope };
                    let response = self.inner.issuer.client_credentials(request).await?;
                    Ok(token_response(&response))
                })
                .await
            }
            JWT_BEARER_GRANT_TYPE => {
                let assertion = param("assertion")?
                    .ok_or_else(|| OAuthError::invalid_request("missing parameter assertion"))?;
                let (credentials, claimed) = if carries_client_credentials(headers, form) {
                    let (credentials, claimed) = read_credentials(headers, form);
                    (Some(credentials), claimed)
                } else {
                    (None, String::new())
                };
                self.guarded(&claimed, addr, async {
                    let credentials = credentials.transpose()?;
                    let issuer = &self.inner.issuer;
                    let response =
                        issuer.jwt_bearer(credentials.as_ref(), assertion, scope).await?;
                    Ok(token_response(&response))
                })
                .await
            }
            _ => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type must be client_credentials or urn:ietf:params:oauth:grant-type:jwt-bearer",
            )),
        }
    }

    /// Runs an attempt to authenticate as `client_id` from `addr` under the throttle:
    /// refused with 429 while over a limit, counted when it fails authentication
    /// (`invalid_client`, or `invalid_grant` for an assertion grant), and clearing the
    /// pair's failures when it succeeds.
    async fn guarded<T>(
        &self,
        client_id: &str,
        addr: Option<IpAddr>,
        attempt: impl Future<Output = Result<T, OAuthError>>,
    ) -> Result<T, OAuthError> {
        let Some(throttle) = &self.inner.throttle else { return attempt.await };
        if let Err(retry_after) = throttle.check(client_id, addr, Instant::now()) {
            tracing::warn!(
                target: "tessera::audit",
                event = "client_throttled",
                client_id = %client_id.chars().take(64).collect::<String>(),
                address = ?addr,
                retry_after,
                client_address = client_address(),
            );
            return Err(OAuthError::too_many_attempts(retry_after));
        }
        let result = attempt.await;
        match &result {
            Err(e) if matches!(e.code(), ErrorCode::InvalidClient | ErrorCode::InvalidGrant) => {
                throttle.failure(client_id, addr, Instant::now());
            }
            Ok(_) => throttle.success(client_id, addr),
            Err(_) => {}
        }
        result
    }

    /// The JWK Set: every published key, including the next key before it signs
    /// and retired keys until their tokens have expired.
    fn keys(&self) -> Response<ResponseBody> {
        let jwks = match self.inner.issuer.minter().keys() {
            Some(ring) => ring.key_set().jwks().clone(),
            None => Bytes::from_static(br#"{"keys":[]}"#),
        };
        let mut response = Response::new(Full::new(jwks));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        public_json(response)
    }

    /// The discovery document (OpenID Connect Discovery 1.0, RFC 8414), naming
    /// every endpoint this server has.
    fn discovery(&self) -> serde_json::Value {
        let issuer = self.inner.issuer.minter().issuer();
        let base = issuer.trim_end_matches('/');
        let algorithms: Vec<&str> = match self.inner.issuer.minter().keys() {
            Some(ring) => ring.key_set().algorithms().into_iter().map(|a| a.as_str()).collect(),
            None => Vec::new(),
        };
        let scopes: Vec<&str> = StandardScope::ALL
            .into_iter()
            .filter(|s| self.inner.issuer.scope_policy().allows(&Scope::from(*s)))
            .map(StandardScope::name)
            .collect();
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}{AUTHORIZE_PATH}"),
            "token_endpoint": format!("{base}{TOKEN_PATH}"),
            "jwks_uri": format!("{base}{KEYS_PATH}"),
            "grant_types_supported": ["client_credentials", JWT_BEARER_GRANT_TYPE],
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "introspection_endpoint": format!("{base}{INTROSPECT_PATH}"),
            "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
            "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "revocation_endpoint": format!("{base}{REVOKE_PATH}"),
            "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
            "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "userinfo_endpoint": format!("{base}{USERINFO_PATH}"),
            "scopes_supported": scopes,
            // No response type is served (the authorization endpoint refuses every
            // request); "none" (OAuth 2.0 Multiple Response Type Encoding Practices §4)
            // is the registered value that promises no credential from it.
            "response_types_supported": ["none"],
            "response_modes_supported": ["query"],
            "subject_types_supported": ["public"],
            "claims_supported": CLAIMS_SUPPORTED,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "id_token_signing_alg_values_supported": algorithms,
            "access_token_signing_alg_values_supported": algorithms,
        })
    }

    async fn health(&self) -> Response<ResponseBody> {
        #[derive(Serialize)]
        struct Health {
            status: &'static str,
        }
        match self.inner.issuer.store().ping().await {
            Ok(()) => json_response(StatusCode::OK, &Health { status: "ok" }),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    client_address = client_address(),
                    "health check: storage unreachable"
                );
                json_response(StatusCode::SERVICE_UNAVAILABLE, &Health { status: "unavailable" })
            }
        }
    }
}

/// The client credentials of a request (checked later, under the throttle), and the
/// client ID it claims (see [`claimed_client`]), reading the header once.
fn read_credentials(
    headers: &HeaderMap,
    form: &Form,
) -> (Result<ClientCredentials, OAuthError>, String) {
    let credentials = ClientCredentials::from_request(headers, form);
    let claimed = match &credentials {
        Ok(credentials) => credentials.client_id.clone(),
        Err(_) => claimed_client(headers, form),
    };
    (credentials, claimed)
}

/// Whether a request carries client credentials of any kind: an `Authorization`
/// header, a `client_secret`, or a client assertion. A `client_id` alone identifies
/// a client without authenticating it (RFC 6749 §3.2.1).
fn carries_client_credentials(headers: &HeaderMap, form: &Form) -> bool {
    headers.contains_key(AUTHORIZATION)
        || ["client_secret", "client_assertion", "client_assertion_type"]
            .iter()
            .any(|name| !matches!(form.get(name), Ok(None)))
}

/// The client ID a request claims, before it is checked: the Basic user name, or the
/// body's `client_id`; empty when neither says (the throttle then counts the address).
fn claimed_client(headers: &HeaderMap, form: &Form) -> String {
    if let Some(value) = headers.get(AUTHORIZATION)
        && let Ok(creds) = crate::auth::parse_basic(value.as_bytes())
    {
        return creds.client_id;
    }
    form.get("client_id").ok().flatten().unwrap_or_default().to_owned()
}

/// A form parameter; repeated is `invalid_request`.
fn form_param<'a>(form: &'a Form, name: &str) -> Result<Option<&'a str>, OAuthError> {
    form.get(name).map_err(|e| OAuthError::invalid_request(e.to_string()))
}

/// The token of an `Authorization: Bearer` header (RFC 6750 §2.1).
fn bearer_token(headers: &HeaderMap) -> Result<&str, OAuthError> {
    let invalid = || OAuthError::new(ErrorCode::InvalidToken, "a bearer token is required");
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or_else(invalid)?;
    if values.next().is_some() {
        return Err(OAuthError::invalid_request("the Authorization header is repeated"));
    }
    let value = value.to_str().map_err(|_| invalid())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(invalid)?;
    let token = token.trim_start_matches(' ');
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(invalid());
    }
    Ok(token)
}

/// `200 OK` with an empty body, as revocation answers (RFC 7009 §2.2).
fn empty_ok() -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::new()));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Renders an introspection response (RFC 7662 §2.2).
fn introspection_response(answer: &Introspection, issuer: &str) -> Response<ResponseBody> {
    /// The members of an active token's answer, in the (alphabetical) order they
    /// are written.
    #[derive(Serialize)]
    struct Active<'a> {
        active: bool,
        aud: &'a [String],
        client_id: &'a str,
        exp: i64,
        iat: i64,
        iss: &'a str,
        jti: &'a str,
        nbf: i64,
        scope: String,
        sub: &'a str,
        token_type: &'a str,
        #[serde(
            rename = "urn:zitadel:iam:org:project:roles",
            skip_serializing_if = "RoleClaims::is_empty"
        )]
        roles: &'a RoleClaims,
        #[serde(
            rename = "urn:zitadel:iam:user:resourceowner:id",
            skip_serializing_if = "Option::is_none"
        )]
        resource_owner_id: Option<&'a str>,
        #[serde(
            rename = "urn:zitadel:iam:user:resourceowner:name",
            skip_serializing_if = "Option::is_none"
        )]
        resource_owner_name: Option<&'a str>,
        #[serde(
            rename = "urn:zitadel:iam:user:resourceowner:primary_domain",
            skip_serializing_if = "Option::is_none"
        )]
        resource_owner_primary_domain: Option<&'a str>,
        username: &'a str,
    }
    #[derive(Serialize)]
    struct Inactive {
        active: bool,
    }
    let Introspection::Active(token) = answer else {
        return json_response(StatusCode::OK, &Inactive { active: false });
    };
    json_response(
        StatusCode::OK,
        &Active {
            active: true,
            aud: &token.audience,
            client_id: token.user.username.as_str(),
            exp: token.exp,
            iat: token.iat,
            iss: issuer,
            jti: token.jti.as_str(),
            nbf: token.nbf,
            scope: token.scopes.to_string(),
            sub: token.user.id.as_str(),
            token_type: "Bearer",
            roles: &token.roles,
            resource_owner_id: token.resource_owner.as_ref().map(|o| o.id.as_str()),
            resource_owner_name: token.resource_owner.as_ref().map(|o| o.name.as_str()),
            resource_owner_primary_domain: token
                .resource_owner
                .as_ref()
                .map(|o| o.primary_domain.as_str()),
            username: token.user.username.as_str(),
        },
    )
}

/// Renders a token response (RFC 6749 §5.1).
fn token_response(response: &TokenResponse) -> Response<ResponseBody> {
    json_bytes_response(StatusCode::OK, token_response_json(response))
}

/// The body of a token response (RFC 6749 §5.1), written directly: `scope` is
/// omitted when empty, and the output is the same as serde_json's for the same
/// fields, in this order.
fn token_response_json(response: &TokenResponse) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(br#"{"access_token":"#);
    push_json_str(&mut out, response.access_token.expose());
    out.extend_from_slice(br#","token_type":"#);
    push_json_str(&mut out, response.token_type);
    out.extend_from_slice(br#","expires_in":"#);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{}", response.expires_in);
    if !response.scope.is_empty() {
        out.extend_from_slice(br#","scope":""#);
        for (i, scope) in response.scope.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            push_json_str_content(&mut out, scope.as_str());
        }
        out.push(b'"');
    }
    out.push(b'}');
    out
}

/// Whether `bytes` hold a `"`, a `\` or a control character, eight at a time.
fn needs_json_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Whether any byte of `v` is below `n` (exact for `n` up to 0x80).
    let any_below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH != 0;
    let any_equal = |v: u64, b: u8| any_below(v ^ (ONES * u64::from(b)), 1);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else { return true };
        let v = u64::from_ne_bytes(chunk);
        if any_below(v, 0x20) || any_equal(v, b'"') || any_equal(v, b'\\') {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Appends `s` as a JSON string.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_json_str_content(out, s);
    out.push(b'"');
}

/// Appends `s` escaped for the inside of a JSON string. Tokens and scopes never
/// need escaping (base64url, and RFC 6749 scope characters exclude `"`, `\` and
/// controls), so they are copied as they are; anything else is escaped by
/// serde_json.
fn push_json_str_content(out: &mut Vec<u8>, s: &str) {
    if !needs_json_escape(s.as_bytes()) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    let mut quoted = Vec::with_capacity(s.len() + 8);
    // Serializing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut quoted, s);
    out.extend_from_slice(quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default());
}

/// Marks a response cacheable by anyone for [`JWKS_MAX_AGE_SECS`] seconds.
fn public_json(mut response: Response<ResponseBody>) -> Response<ResponseBody> {
    let headers = response.headers_mut();
    headers.remove(PRAGMA);
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={JWKS_MAX_AGE_SECS}"))
            .unwrap_or(HeaderValue::from_static("no-cache")),
    );
    response
}

fn require_method(
    method: &Method,
    allowed: &[Method],
    allow: &'static str,
) -> Result<(), OAuthError> {
    if allowed.contains(method) { Ok(()) } else { Err(OAuthError::method_not_allowed(allow)) }
}

/// Reads a form body: checks the content type, enforces the size limit (413) and
/// parses strictly (400 `invalid_request`).
async fn read_form<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Form, OAuthError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim());
    if !media_type.is_some_and(|t| t.eq_ignore_ascii_case("application/x-www-form-urlencoded")) {
        return Err(OAuthError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(OAuthError::payload_too_large(limit));
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(OAuthError::payload_too_large(limit));
        }
        Err(_) => {
            return Err(OAuthError::invalid_request("the request body could not be read"));
        }
    };
    Form::parse(&bytes).map_err(|e| OAuthError::invalid_request(e.to_string()))
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

impl<B> tower_service::Service<Request<B>> for TokenEndpoint
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

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_mint::{Grant, TokenMinter};
    use tessera_store::{AccessTokenType, UserId, Username};
    use time::OffsetDateTime;

    #[derive(Serialize)]
    struct Expected<'a> {
        access_token: &'a str,
        token_type: &'a str,
        expires_in: u64,
        #[serde(skip_serializing_if = "str::is_empty")]
        scope: &'a str,
    }

    fn response(scope: &str) -> Result<TokenResponse, Box<dyn std::error::Error>> {
        let now = OffsetDateTime::now_utc();
        let grant = Grant {
            token_type: AccessTokenType::Opaque,
            user_id: UserId::generate()?,
            client_id: Username::new("svc")?,
            scopes: if scope.is_empty() { ScopeSet::default() } else { ScopeSet::parse(scope)? },
            audience: vec!["svc".into()],
            roles: RoleClaims::default(),
            resource_owner: None,
            issued_at: now,
            expires_at: now + time::Duration::hours(12),
        };
        let minted = TokenMinter::new("http://issuer").mint(&grant)?;
        Ok(TokenResponse {
            access_token: minted.token,
            token_type: "Bearer",
            expires_in: 43_199,
            scope: grant.scopes,
            jti: minted.jti,
            expires_at: minted.expires_at,
        })
    }

    #[test]
    fn token_responses_are_what_serde_json_writes() -> Result<(), Box<dyn std::error::Error>> {
        for scope in ["openid profile urn:zitadel:iam:org:project:id:p1:aud", "a", "", "x!#[]~"] {
            let response = response(scope)?;
            let scope = response.scope.to_string();
            let expected = serde_json::to_vec(&Expected {
                access_token: response.access_token.expose(),
                token_type: response.token_type,
                expires_in: response.expires_in,
                scope: &scope,
            })?;
            assert_eq!(
                String::from_utf8(token_response_json(&response))?,
                String::from_utf8(expected)?
            );
        }
        Ok(())
    }

    #[test]
    fn every_byte_at_every_position_is_checked() {
        for b in 0..=u8::MAX {
            let naive = b < 0x20 || b == b'"' || b == b'\\';
            for len in [1, 7, 8, 9, 16, 17] {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    assert_eq!(needs_json_escape(&bytes), naive, "byte {b:#x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn strings_that_need_escaping_are_escaped() -> Result<(), Box<dyn std::error::Error>> {
        for s in [
            "plain",
            "",
            "quote\"d",
            "back\\slash",
            "tab\tnew\nline\u{1}",
            "été ✓",
            "\u{7f}",
            "0123456789abcdef\u{1f}",
            "0123456789abcdef\"",
            "01234567\\",
            "\u{ff}\u{80}ÿÿÿÿÿÿÿÿ!#$",
        ] {
            let mut out = Vec::new();
            push_json_str(&mut out, s);
            assert_eq!(String::from_utf8(out)?, serde_json::to_string(s)?);
        }
        Ok(())
    }
}
