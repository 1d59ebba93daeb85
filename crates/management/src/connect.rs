//! The Connect protocol's unary calls with JSON: error codes, their HTTP statuses,
//! error bodies, and the JSON codec of messages.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_endpoint::ResponseBody;

/// A Connect error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The call was cancelled.
    Canceled,
    /// An error with no better code.
    Unknown,
    /// The request is malformed or a field is invalid.
    InvalidArgument,
    /// The deadline passed.
    DeadlineExceeded,
    /// The resource does not exist.
    NotFound,
    /// The resource exists already.
    AlreadyExists,
    /// The caller may not do this.
    PermissionDenied,
    /// A limit was reached (a body too large).
    ResourceExhausted,
    /// The system is not in a state the call needs.
    FailedPrecondition,
    /// The call was aborted (a concurrent change).
    Aborted,
    /// A value is out of range.
    OutOfRange,
    /// The service or method does not exist.
    Unimplemented,
    /// An internal error.
    Internal,
    /// The service is unavailable now; retrying may succeed.
    Unavailable,
    /// Data was lost.
    DataLoss,
    /// The caller did not authenticate.
    Unauthenticated,
}

impl Code {
    /// The code's name on the wire: `not_found`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::Canceled => "canceled",
            Code::Unknown => "unknown",
            Code::InvalidArgument => "invalid_argument",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::PermissionDenied => "permission_denied",
            Code::ResourceExhausted => "resource_exhausted",
            Code::FailedPrecondition => "failed_precondition",
            Code::Aborted => "aborted",
            Code::OutOfRange => "out_of_range",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
            Code::DataLoss => "data_loss",
            Code::Unauthenticated => "unauthenticated",
        }
    }

    /// The HTTP status the Connect protocol answers the code with.
    pub const fn status(self) -> StatusCode {
        match self {
            // 499: "client closed request", as Connect answers a cancelled call.
            Code::Canceled => match StatusCode::from_u16(499) {
                Ok(status) => status,
                Err(_) => StatusCode::REQUEST_TIMEOUT,
            },
            Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
                StatusCode::BAD_REQUEST
            }
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        }
    }
}

/// A failed call: a code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The code.
    pub code: Code,
    /// What went wrong.
    pub message: String,
}

impl Status {
    /// A failure with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// `invalid_argument`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// `permission_denied`.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(Code::PermissionDenied, message)
    }

    /// `unimplemented`.
    pub fn unimplemented(message: impl Into<String>) -> Self {
        Self::new(Code::Unimplemented, message)
    }

    /// The error response: Connect's status for the code, `{"code": ..., "message":
    /// ...}`, and `WWW-Authenticate: Bearer` for `unauthenticated` (RFC 6750 §3).
    pub fn into_response(self) -> Response<ResponseBody> {
        #[derive(Serialize)]
        struct Body<'a> {
            code: &'a str,
            message: &'a str,
        }
        let body = Body { code: self.code.as_str(), message: &self.message };
        let mut response = json_response(self.code.status(), &body);
        if self.code == Code::Unauthenticated {
            let challenge = if self.message.contains("missing") {
                HeaderValue::from_static("Bearer")
            } else {
                HeaderValue::from_static("Bearer error=\"invalid_token\"")
            };
            response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// A JSON response with `status`; `Cache-Control: no-store` (answers may hold
/// secrets).
pub(crate) fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| {
        br#"{"code":"internal","message":"the answer could not be encoded"}"#.to_vec()
    });
    let mut response = Response::new(ResponseBody::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Decodes a request message: an empty body is the empty message `{}`, and a field
/// set to `null` is unset (proto3 JSON); unknown fields, wrong types and malformed
/// JSON are `invalid_argument`, naming the fault.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Status> {
    let invalid = |e: serde_json::Error| Status::invalid(format!("invalid request: {e}"));
    if body.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_slice(b"{}").map_err(invalid);
    }
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
    if !value.is_object() {
        return Err(Status::invalid("invalid request: the body must be a JSON object"));
    }
    drop_nulls(&mut value);
    serde_json::from_value(value).map_err(invalid)
}

/// Removes the members set to `null`, at every depth.
fn drop_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(members) => {
            members.retain(|_, v| !v.is_null());
            members.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_answer_with_connect_statuses() {
        assert_eq!(Code::NotFound.status(), 404);
        assert_eq!(Code::InvalidArgument.status(), 400);
        assert_eq!(Code::AlreadyExists.status(), 409);
        assert_eq!(Code::PermissionDenied.status(), 403);
        assert_eq!(Code::Unauthenticated.status(), 401);
        assert_eq!(Code::Unimplemented.status(), 501);
        assert_eq!(Code::Unavailable.status(), 503);
        assert_eq!(Code::ResourceExhausted.status(), 429);
        assert_eq!(Code::Internal.status(), 500);
    }

    #[test]
    fn an_empty_body_is_the_empty_message() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Empty {}
        assert_eq!(decode::<Empty>(b""), Ok(Empty {}));
        assert_eq!(decode::<Empty>(b"  \n"), Ok(Empty {}));
        assert!(decode::<Empty>(br#"{"x":1}"#).is_err_and(|s| s.code == Code::InvalidArgument));
        assert!(decode::<Empty>(b"{").is_err());
        assert!(decode::<Empty>(b"[]").is_err());
        #[derive(serde::Deserialize, Debug, PartialEq)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        struct Named {
            #[serde(default)]
            user_id: String,
        }
        assert_eq!(decode::<Named>(br#"{"userId": null}"#), Ok(Named { user_id: String::new() }));
        assert!(decode::<Named>(br#"{"userId": 5}"#).is_err());
    }

    #[test]
    fn unauthenticated_answers_carry_a_bearer_challenge() {
        let response = Status::new(Code::Unauthenticated, "missing bearer token").into_response();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
        let response =
            Status::new(Code::Unauthenticated, "the token is not active").into_response();
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer error=\"invalid_token\"");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }
}
