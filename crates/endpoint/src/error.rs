use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// The realm named in `WWW-Authenticate` challenges.
pub const REALM: &str = "tessera";

/// The error codes of RFC 6749 section 5.2, with those of RFC 6750 section 3.1,
/// RFC 7009 section 2.2.1 and RFC 6749 section 4.1.2.1 that apply to this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// "The request is missing a required parameter, includes an unsupported parameter
    /// value (other than grant type), repeats a parameter, includes multiple
    /// credentials, utilizes more than one mechanism for authenticating the client, or
    /// is otherwise malformed." (RFC 6749 §5.2)
    InvalidRequest,
    /// "Client authentication failed (e.g., unknown client, no client authentication
    /// included, or unsupported authentication method)." (RFC 6749 §5.2)
    InvalidClient,
    /// "The provided authorization grant (e.g., authorization code, resource owner
    /// credentials) or refresh token is invalid, expired, revoked, ..." (RFC 6749 §5.2)
    InvalidGrant,
    /// "The authenticated client is not authorized to use this authorization grant
    /// type." (RFC 6749 §5.2)
    UnauthorizedClient,
    /// "The authorization server does not support obtaining an authorization code
    /// using this method." (RFC 6749 §4.1.2.1): the answer of the authorization
    /// endpoint, since no response type is served.
    UnsupportedResponseType,
    /// "The authorization grant type is not supported by the authorization server."
    /// (RFC 6749 §5.2)
    UnsupportedGrantType,
    /// "The requested scope is invalid, unknown, malformed, or exceeds the scope
    /// granted by the resource owner." (RFC 6749 §5.2)
    InvalidScope,
    /// "The access token provided is expired, revoked, malformed, or invalid for other
    /// reasons." (RFC 6750 §3.1)
    InvalidToken,
    /// "The request requires higher privileges than provided by the access token."
    /// (RFC 6750 §3.1)
    InsufficientScope,
    /// "The authorization server does not support the revocation of the presented
    /// token type." (RFC 7009 §2.2.1)
    UnsupportedTokenType,
    /// "The authorization server is currently unable to handle the request due to a
    /// temporary overloading or maintenance of the server." (RFC 6749 §4.1.2.1)
    TemporarilyUnavailable,
    /// "The authorization server encountered an unexpected condition that prevented it
    /// from fulfilling the request." (RFC 6749 §4.1.2.1)
    ServerError,
}

impl ErrorCode {
    /// The code as it appears in the `error` member.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::ServerError => "server_error",
        }
    }

    /// The HTTP status this code is answered with, unless the error overrides it.
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error: a code, a human-readable description, and (for errors of the
/// HTTP layer such as 404, 405 and 413) the status and headers to answer with.
///
/// Every error the endpoint answers is an `OAuthError`, rendered to a response in
/// exactly one place, [`OAuthError::into_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    code: ErrorCode,
    description: Cow<'static, str>,
    status: Option<StatusCode>,
    allow: Option<&'static str>,
    retry_after: Option<u64>,
    /// The storage failure this error answers, for the metrics.
    storage: Option<StorageErrorKind>,
}

/// The kind of a storage failure, as `tessera_storage_errors_total` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StorageErrorKind {
    /// Unreachable, busy, or a fault of the machine (full disk, read-only file):
    /// answered 503.
    Unavailable,
    /// Stored data this version cannot read.
    Corrupt,
    /// Any other failure of the backend.
    Backend,
    /// A failure that is not the backend's (a conflict or a missing record where
    /// none was expected).
    Other,
}

impl StorageErrorKind {
    /// Every kind, in the order of [`StorageErrorKind::index`].
    pub(crate) const ALL: [StorageErrorKind; 4] =
        [Self::Unavailable, Self::Corrupt, Self::Backend, Self::Other];

    pub(crate) fn of(error: &tessera_store::StoreError) -> Self {
        use tessera_store::StoreError;
        match error {
            StoreError::Unavailable(_) => Self::Unavailable,
            StoreError::Corrupt(_) => Self::Corrupt,
            StoreError::Backend(_) => Self::Backend,
            _ => Self::Other,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Corrupt => "corrupt",
            Self::Backend => "backend",
            Self::Other => "other",
        }
    }
}

impl OAuthError {
    /// An error with `code` and `description`, answered with the code's status.
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
            status: None,
            allow: None,
            retry_after: None,
            storage: None,
        }
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_client`, with the one description every authentication failure shares.
    pub fn invalid_client() -> Self {
        Self::new(ErrorCode::InvalidClient, "client authentication failed")
    }

    /// `invalid_scope`.
    pub fn invalid_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }

    /// `server_error`, for failures that are the server's fault.
    pub fn server_error() -> Self {
        Self::new(ErrorCode::ServerError, "the server could not complete the request")
    }

    /// `temporarily_unavailable` (503), when storage cannot be reached.
    pub fn unavailable() -> Self {
        Self::new(ErrorCode::TemporarilyUnavailable, "the server is temporarily unavailable")
            .with_retry_after(1)
    }

    /// 429 with `Retry-After`: too many failed authentication attempts.
    pub fn too_many_attempts(retry_after: u64) -> Self {
        Self::new(
            ErrorCode::TemporarilyUnavailable,
            format!("too many failed authentication attempts; retry in {retry_after} seconds"),
        )
        .with_status(StatusCode::TOO_MANY_REQUESTS)
        .with_retry_after(retry_after)
    }

    /// 404 for a path this endpoint does not serve.
    pub fn not_found() -> Self {
        Self::invalid_request("no such endpoint").with_status(StatusCode::NOT_FOUND)
    }

    /// 405 with `Allow: allow`.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut e = Self::invalid_request(format!("method not allowed; use {allow}"))
            .with_status(StatusCode::METHOD_NOT_ALLOWED);
        e.allow = Some(allow);
        e
    }

    /// 413 for a body over `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::invalid_request(format!("request body is larger than {limit} bytes"))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    }

    /// Answers with `status` instead of the code's own.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// Adds `Retry-After: secs`.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Marks the error as the answer to a storage failure of `kind`.
    pub(crate) fn with_storage(mut self, kind: StorageErrorKind) -> Self {
        self.storage = Some(kind);
        self
    }

    /// The kind of storage failure this error answers, if it answers one.
    pub(crate) fn storage(&self) -> Option<StorageErrorKind> {
        self.storage
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The HTTP status of the response.
    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or(self.code.status())
    }

    /// Renders the error: the RFC 6749 §5.2 JSON body, `Cache-Control: no-store`,
    /// and the challenge RFC 6749 §5.2 and RFC 6750 §3 require for 401 and 403.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
            error_description: &'a str,
        }
        let body = Body { error: self.code.as_str(), error_description: &self.description };
        let mut response = json_response(self.status(), &body);
        let headers = response.headers_mut();
        let challenge = match self.code {
            ErrorCode::InvalidClient => Some(format!("Basic realm=\"{REALM}\"")),
            ErrorCode::InvalidToken | ErrorCode::InsufficientScope => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"{}\", error_description=\"{}\"",
                self.code.as_str(),
                self.description.replace(['"', '\\'], "'")
            )),
            _ => None,
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        if let Some(allow) = self.allow {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl std::error::Error for OAuthError {}

/// A JSON response with the no-store headers every OAuth response carries
/// (RFC 6749 §5.1).
pub(crate) fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    // Room for a token response or an introspection answer without regrowing.
    let mut bytes = Vec::with_capacity(512);
    let bytes = match serde_json::to_writer(&mut bytes, body) {
        Ok(()) => bytes,
        // Serializing plain structs of strings and numbers cannot fail; answer 500
        // rather than panic if it ever does.
        Err(_) => br#"{"error":"server_error"}"#.to_vec(),
    };
    json_bytes_response(status, bytes)
}

/// A JSON response of `bytes`, already serialized, with the headers of
/// [`json_response`].
pub(crate) fn json_bytes_response(status: StatusCode, bytes: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(r: &Response<Full<Bytes>>, name: http::header::HeaderName) -> Option<&str> {
        r.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn statuses_follow_the_rfcs() {
        assert_eq!(OAuthError::invalid_request("x").status(), StatusCode::BAD_REQUEST);
        assert_eq!(OAuthError::invalid_client().status(), StatusCode::UNAUTHORIZED);
        assert_eq!(OAuthError::invalid_scope("x").status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            OAuthError::new(ErrorCode::InsufficientScope, "x").status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(OAuthError::unavailable().status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(OAuthError::not_found().status(), StatusCode::NOT_FOUND);
        assert_eq!(OAuthError::payload_too_large(1).status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn invalid_client_carries_a_basic_challenge() {
        let r = OAuthError::invalid_client().into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(header(&r, WWW_AUTHENTICATE), Some("Basic realm=\"tessera\""));
        assert_eq!(header(&r, CACHE_CONTROL), Some("no-store"));
        assert_eq!(header(&r, CONTENT_TYPE), Some("application/json"));
    }

    #[test]
    fn invalid_token_carries_a_bearer_challenge() {
        let r = OAuthError::new(ErrorCode::InvalidToken, "token \"x\" expired").into_response();
        assert_eq!(
            header(&r, WWW_AUTHENTICATE),
            Some(
                "Bearer realm=\"tessera\", error=\"invalid_token\", error_description=\"token 'x' expired\""
            )
        );
    }

    #[test]
    fn method_not_allowed_names_the_allowed_methods() {
        let r = OAuthError::method_not_allowed("POST").into_response();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(header(&r, ALLOW), Some("POST"));
        assert_eq!(header(&OAuthError::unavailable().into_response(), RETRY_AFTER), Some("1"));
    }
}
