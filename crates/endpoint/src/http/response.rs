//! Rendering answers: token, introspection, discovery, key set and health responses.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use tessera_mint::JWKS_MAX_AGE_SECS;
use tessera_scope::{Scope, StandardScope};
use tessera_store::RoleClaims;

use crate::error::{json_bytes_response, json_response};
use crate::issuer::{
    ASSERTION_ALGORITHMS, Introspection, Issuer, JWT_BEARER_GRANT_TYPE, TokenResponse,
};
use crate::paths::{
    AUTHORIZE_PATH, INTROSPECT_PATH, KEYS_PATH, REVOKE_PATH, TOKEN_PATH, USERINFO_PATH,
};

use super::ResponseBody;

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

/// The JWK Set: every published key, including the next key before it signs and
/// retired keys until their tokens have expired.
pub(crate) fn keys(issuer: &Issuer) -> Response<ResponseBody> {
    let jwks = match issuer.minter().keys() {
        Some(ring) => ring.key_set().jwks().clone(),
        None => Bytes::from_static(br#"{"keys":[]}"#),
    };
    let mut response = Response::new(Full::new(jwks));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    public_json(response)
}

/// The discovery document (OpenID Connect Discovery 1.0, RFC 8414), naming every
/// endpoint under the issuer URL.
pub(crate) fn discovery(issuer: &Issuer) -> Response<ResponseBody> {
    let url = issuer.minter().issuer();
    let base = url.trim_end_matches('/');
    let algorithms: Vec<&str> = match issuer.minter().keys() {
        Some(ring) => ring.key_set().algorithms().into_iter().map(|a| a.as_str()).collect(),
        None => Vec::new(),
    };
    let scopes: Vec<&str> = StandardScope::ALL
        .into_iter()
        .filter(|s| issuer.scope_policy().allows(&Scope::from(*s)))
        .map(StandardScope::name)
        .collect();
    let document = serde_json::json!({
        "issuer": url,
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
    });
    public_json(json_response(StatusCode::OK, &document))
}

/// The readiness check's answer: 200 `{"status":"ready","checks":{...}}` when every
/// check passed, else 503 with `Retry-After` and the checks that failed.
pub(crate) fn ready(
    store_read: bool,
    store_write: bool,
    signing_key: bool,
) -> Response<ResponseBody> {
    #[derive(Serialize)]
    struct Checks {
        store_read: &'static str,
        store_write: &'static str,
        signing_key: &'static str,
    }
    #[derive(Serialize)]
    struct Ready {
        status: &'static str,
        checks: Checks,
    }
    let word = |ok: bool| if ok { "ok" } else { "failed" };
    let all = store_read && store_write && signing_key;
    let body = Ready {
        status: if all { "ready" } else { "not_ready" },
        checks: Checks {
            store_read: word(store_read),
            store_write: word(store_write),
            signing_key: word(signing_key),
        },
    };
    if all {
        return json_response(StatusCode::OK, &body);
    }
    let mut response = json_response(StatusCode::SERVICE_UNAVAILABLE, &body);
    response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The health check's answer: 200 `{"status":"ok"}`, or 503 when storage is unreachable.
pub(crate) fn health(reachable: bool) -> Response<ResponseBody> {
    #[derive(Serialize)]
    struct Health {
        status: &'static str,
    }
    if reachable {
        json_response(StatusCode::OK, &Health { status: "ok" })
    } else {
        json_response(StatusCode::SERVICE_UNAVAILABLE, &Health { status: "unavailable" })
    }
}

/// The metrics, encoded: see [`Metrics::encode`](super::metrics::Metrics::encode).
pub(crate) fn metrics(text: String) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(super::metrics::METRICS_CONTENT_TYPE));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `200 OK` with an empty body, as revocation answers (RFC 7009 §2.2).
pub(crate) fn empty_ok() -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::new()));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Renders an introspection response (RFC 7662 §2.2).
pub(crate) fn introspection_response(
    answer: &Introspection,
    issuer: &str,
) -> Response<ResponseBody> {
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
pub(crate) fn token_response(response: &TokenResponse) -> Response<ResponseBody> {
    json_bytes_response(StatusCode::OK, super::json::token_response_json(response))
}

/// Marks a response cacheable by anyone for [`JWKS_MAX_AGE_SECS`] seconds.
pub(crate) fn public_json(mut response: Response<ResponseBody>) -> Response<ResponseBody> {
    let headers = response.headers_mut();
    headers.remove(PRAGMA);
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={JWKS_MAX_AGE_SECS}"))
            .unwrap_or(HeaderValue::from_static("no-cache")),
    );
    response
}
