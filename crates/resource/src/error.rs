//! Why a request was refused, and the RFC 6750 response that says so.

use http::header::{CACHE_CONTROL, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

/// Why a request was refused. Each kind renders itself as the RFC 6750 §3 response
/// ([`AuthError::to_response`]); the details stay in the server's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The request carries no bearer token (no `Authorization` header, or one of
    /// another scheme): 401 with a plain `WWW-Authenticate: Bearer` challenge, as
    /// RFC 6750 §3.1 asks for a request without authentication information.
    #[error("the request carries no bearer token")]
    MissingToken,
    /// The request is malformed, such as a repeated `Authorization` header
    /// (RFC 6750 §3.1 `invalid_request`): 400.
    #[error("malformed request: {0}")]
    InvalidRequest(&'static str),
    /// "The access token provided is expired, revoked, malformed, or invalid for
    /// other reasons" (RFC 6750 §3.1 `invalid_token`): 401.
    #[error("the access token is not valid: {0}")]
    InvalidToken(Rejection),
    /// "The request requires higher privileges than provided by the access token"
    /// (RFC 6750 §3.1 `insufficient_scope`): 403, naming the scope that would grant
    /// them.
    #[error("the access token lacks the scope {scope}")]
    InsufficientScope {
        /// The scope the route requires (for a role, the scope that asks for it).
        scope: String,
    },
    /// The issuer cannot be reached (or refused this resource server's
    /// credentials), and nothing held can decide: 503 with `Retry-After`.
    #[error("the issuer cannot be reached")]
    Unavailable,
}

/// Why an access token was found invalid. It goes to the log and to the
/// application (through [`AuthError::InvalidToken`]), never to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Not a bearer token in the RFC 6750 syntax, or a JWT that does not parse.
    #[error("malformed")]
    Malformed,
    /// Longer than the configured limit.
    #[error("too long")]
    TooLong,
    /// A JWT signed with an algorithm outside the allow-list (`none`, HMAC, …), or
    /// one its key is not for.
    #[error("algorithm not allowed")]
    Algorithm,
    /// A JWT whose `typ` header is not `at+jwt` or `JWT`.
    #[error("wrong type")]
    Type,
    /// A JWT whose key id the issuer does not publish, or without a key id.
    #[error("unknown key")]
    UnknownKey,
    /// A JWT whose signature does not verify, or an ES256 signature in its high-`s`
    /// form.
    #[error("bad signature")]
    Signature,
    /// Expired (`exp`).
    #[error("expired")]
    Expired,
    /// Not valid yet (`nbf`).
    #[error("not yet valid")]
    NotYetValid,
    /// Issued by another issuer (`iss`).
    #[error("wrong issuer")]
    Issuer,
    /// Not for this resource server (`aud`).
    #[error("wrong audience")]
    Audience,
    /// A claim the token must carry (`sub`, `client_id`, `exp` of a JWT) is missing
    /// or has the wrong type.
    #[error("missing claim")]
    MissingClaim,
    /// The issuer's introspection endpoint answered that the token is not active
    /// (unknown, expired, revoked, or not for this API).
    #[error("inactive")]
    Inactive,
    /// An opaque token, while no introspection credentials are configured.
    #[error("opaque tokens are not accepted")]
    OpaqueNotAccepted,
}

impl AuthError {
    /// The HTTP status of the response.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::MissingToken | AuthError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            AuthError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AuthError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3), if the response carries one.
    pub fn challenge(&self) -> Option<HeaderValue> {
        Some(match self {
            AuthError::MissingToken => HeaderValue::from_static("Bearer"),
            AuthError::InvalidRequest(_) => {
                HeaderValue::from_static("Bearer error=\"invalid_request\"")
            }
            AuthError::InvalidToken(_) => {
                HeaderValue::from_static("Bearer error=\"invalid_token\"")
            }
            AuthError::InsufficientScope { scope } => {
                let plain = HeaderValue::from_static("Bearer error=\"insufficient_scope\"");
                if !is_quotable(scope) {
                    return Some(plain);
                }
                HeaderValue::from_str(&format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
                ))
                .unwrap_or(plain)
            }
            AuthError::Unavailable => return None,
        })
    }

    /// The response to answer with: the status, the challenge, `Cache-Control:
    /// no-store`, `Retry-After: 1` for 503, and an empty body (`B::default()`), so
    /// that it fits any service's body type (hyper's `Full` and `Empty`, axum's and
    /// tonic's `Body`).
    pub fn to_response<B: Default>(&self) -> Response<B> {
        let mut response = Response::new(B::default());
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        if let Some(challenge) = self.challenge() {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if matches!(self, AuthError::Unavailable) {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<Rejection> for AuthError {
    fn from(rejection: Rejection) -> Self {
        AuthError::InvalidToken(rejection)
    }
}

/// Whether `value` may stand inside a quoted `scope` attribute: the characters of
/// RFC 6749 §3.3 scope tokens and the spaces between them.
fn is_quotable(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b == b' ' || (b'\x21'..=b'\x7e').contains(&b) && b != b'"' && b != b'\\')
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for AuthError {
    fn into_response(self) -> axum_core::response::Response {
        self.to_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(error: &AuthError) -> Option<String> {
        let response: Response<String> = error.to_response();
        response.headers().get(WWW_AUTHENTICATE).map(|v| v.to_str().unwrap_or_default().to_owned())
    }

    #[test]
    fn each_error_renders_its_rfc_6750_response() {
        let cases = [
            (AuthError::MissingToken, 401, Some("Bearer")),
            (AuthError::InvalidRequest("x"), 400, Some("Bearer error=\"invalid_request\"")),
            (
                AuthError::InvalidToken(Rejection::Expired),
                401,
                Some("Bearer error=\"invalid_token\""),
            ),
            (
                AuthError::InsufficientScope { scope: "orders:read".into() },
                403,
                Some("Bearer error=\"insufficient_scope\", scope=\"orders:read\""),
            ),
            (AuthError::Unavailable, 503, None),
        ];
        for (error, status, challenge) in cases {
            let response: Response<String> = error.to_response();
            assert_eq!(response.status().as_u16(), status, "{error:?}");
            assert_eq!(header(&error).as_deref(), challenge, "{error:?}");
            assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
            assert!(response.body().is_empty());
        }
        let response: Response<String> = AuthError::Unavailable.to_response();
        assert_eq!(response.headers()[RETRY_AFTER], "1");
    }

    #[test]
    fn a_scope_that_cannot_be_quoted_is_left_out_of_the_challenge() {
        for scope in ["a\"b", "a\\b", "", "caf\u{e9}", "a\nb"] {
            let error = AuthError::InsufficientScope { scope: scope.into() };
            assert_eq!(header(&error).as_deref(), Some("Bearer error=\"insufficient_scope\""));
        }
    }
}
