//! Tessera's management API: ZITADEL's v2 services, as the official ZITADEL SDKs call
//! them (the Connect protocol's unary calls with JSON), for the service users,
//! personal access tokens and administrators of a Tessera store.
//!
//! `POST /zitadel.user.v2.UserService/GetUserByID` with `Content-Type:
//! application/json`, a proto3-JSON body (camelCase fields) and `Authorization:
//! Bearer <token>`, where the token is one this server issued (opaque, JWT or a
//! personal access token), active, with the server's own API (the `zitadel` project)
//! in its audience, of a service user holding an administrator role. Errors are
//! Connect error bodies, `{"code": "not_found", "message": "..."}`, with Connect's
//! HTTP status for each code.
//!
//! [`ManagementApi`] is an [`RpcService`]: mount it beside the OAuth endpoints with
//! [`TokenEndpoint::with_rpc`](tessera_endpoint::TokenEndpoint::with_rpc). The
//! methods are plain async functions of typed messages ([`users`]), independent of
//! the wire format.
//!
//! The methods, their ZITADEL references and every deviation are listed in
//! docs/management-api.md.
#![forbid(unsafe_code)]

pub mod administrators;
pub mod applications;
mod auth;
pub mod authorizations;
pub mod connect;
pub mod json;
pub mod projects;
pub mod users;

use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response};
use tessera_admin::{Admin, AdminError};
use tessera_endpoint::{Issuer, ResponseBody, RpcBody, RpcRequest, RpcService};
use tessera_store::StoreError;

pub use auth::{Permission, Principal};
pub use connect::{Code, Status};

/// The path prefix of ZITADEL's services.
pub const SERVICE_PREFIX: &str = "/zitadel.";

/// The management API of one store, authorizing calls with the tokens of one issuer.
#[derive(Clone)]
pub struct ManagementApi {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: Issuer,
    admin: Admin,
}

impl std::fmt::Debug for ManagementApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementApi").finish_non_exhaustive()
    }
}

impl ManagementApi {
    /// The API of `admin`'s store, for callers holding tokens of `issuer` (which must
    /// use the same store).
    pub fn new(issuer: Issuer, admin: Admin) -> Self {
        Self { inner: Arc::new(Inner { issuer, admin }) }
    }

    /// The administration operations the methods call.
    pub fn admin(&self) -> &Admin {
        &self.inner.admin
    }

    /// Answers one call of `method` (`zitadel.user.v2.UserService/GetUserByID`) with
    /// the JSON `body`, for the caller whose request carried `headers`.
    pub async fn call_json(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<serde_json::Value, Status> {
        let (service, method) = split_path(path)?;
        let found = users::find(service, method)
            .or_else(|| projects::find(service, method))
            .or_else(|| applications::find(service, method))
            .or_else(|| authorizations::find(service, method))
            .or_else(|| administrators::find(service, method));
        let Some(call) = found else {
            return Err(unknown(service, method));
        };
        let principal = auth::authenticate(&self.inner.issuer, &self.inner.admin, headers).await?;
        let context = Context { admin: &self.inner.admin, principal: &principal };
        let answer = call(context, body).await?;
        Ok(answer)
    }
}

/// What a method runs with: the operations and the authenticated caller.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The administration operations.
    pub admin: &'a Admin,
    /// The caller.
    pub principal: &'a Principal,
}

impl Context<'_> {
    /// Logs the audit event of a change, naming the caller and the resource.
    pub(crate) fn audit(&self, method: &str, resource: &str) {
        tracing::info!(
            target: "tessera::audit",
            event = "management_change",
            method,
            resource,
            actor = %self.principal.user.username,
            actor_id = %self.principal.user.id,
        );
    }
}

/// `/{service}/{Method}` split in two.
fn split_path(path: &str) -> Result<(&str, &str), Status> {
    let rest = path.trim_start_matches('/');
    match rest.split_once('/') {
        Some((service, method)) if !method.is_empty() && !method.contains('/') => {
            Ok((service, method))
        }
        _ => Err(Status::unimplemented(format!("no method at {path}"))),
    }
}

fn unknown(service: &str, method: &str) -> Status {
    Status::unimplemented(format!("{service}/{method} is not implemented"))
}

#[async_trait]
impl RpcService for ManagementApi {
    fn handles(&self, path: &str) -> bool {
        // A client configured with a trailing `/` on its host sends `//zitadel...`.
        path.trim_start_matches('/').starts_with(&SERVICE_PREFIX[1..])
    }

    async fn call(&self, request: RpcRequest) -> Response<ResponseBody> {
        if request.method != Method::POST {
            let mut response =
                Status::new(Code::Unimplemented, "Connect unary calls are POST requests")
                    .into_response();
            *response.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
            response
                .headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
            return response;
        }
        let body = match request.body {
            RpcBody::Complete(bytes) => bytes,
            RpcBody::TooLarge { limit } => {
                return Status::new(
                    Code::ResourceExhausted,
                    format!("the request body is larger than {limit} bytes"),
                )
                .into_response();
            }
            RpcBody::Unreadable => {
                return Status::invalid("the request body could not be read").into_response();
            }
        };
        if !body.is_empty() && !is_json(&request.headers) {
            // The Connect protocol answers a codec it does not serve with 415.
            let mut response =
                Status::invalid("only JSON is served: send Content-Type: application/json")
                    .into_response();
            *response.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
            return response;
        }
        match self.call_json(&request.path, &request.headers, &body).await {
            Ok(answer) => connect::json_response(http::StatusCode::OK, &answer),
            Err(status) => status.into_response(),
        }
    }
}

/// Whether the request says its body is JSON (`application/json`, with or without
/// parameters), or says nothing.
fn is_json(headers: &http::HeaderMap) -> bool {
    match headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(value) => {
            let media = value.split(';').next().unwrap_or_default().trim();
            media.eq_ignore_ascii_case("application/json")
        }
    }
}

/// The Connect status of a store failure.
pub(crate) fn store_status(error: &StoreError) -> Status {
    match error {
        StoreError::NotFound(what) => Status::not_found(format!("{what} not found")),
        StoreError::Conflict(what) => {
            Status::new(Code::AlreadyExists, format!("{what} already exists"))
        }
        e if e.is_transient() => {
            tracing::warn!(error = %tessera_store::error_chain(e), "management: storage unavailable");
            Status::new(Code::Unavailable, "storage is unavailable; retry later")
        }
        e => {
            tracing::error!(error = %tessera_store::error_chain(e), "management: storage failed");
            Status::new(Code::Internal, "the server could not complete the call")
        }
    }
}

/// The Connect status of an administration failure.
pub(crate) fn admin_status(error: AdminError) -> Status {
    match error {
        AdminError::NotFound { what, id } => Status::not_found(format!("{what} {id} not found")),
        AdminError::AlreadyExists { what, id } => {
            Status::new(Code::AlreadyExists, format!("{what} {id} already exists"))
        }
        AdminError::Invalid { field, reason } => Status::invalid(format!("{field}: {reason}")),
        AdminError::Store(e) => store_status(&e),
        other => {
            tracing::error!(error = %tessera_store::error_chain(&other), "management: failed");
            Status::new(Code::Internal, "the server could not complete the call")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/zitadel.user.v2.UserService/GetUserByID"),
            Ok(("zitadel.user.v2.UserService", "GetUserByID"))
        );
        assert!(split_path("/zitadel.user.v2.UserService").is_err());
        assert!(split_path("/zitadel.user.v2.UserService/").is_err());
        assert!(split_path("/zitadel.a/b/c").is_err());
    }

    #[test]
    fn json_is_recognised_with_parameters() {
        let mut headers = http::HeaderMap::new();
        assert!(is_json(&headers));
        headers.insert(
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().expect("v"),
        );
        assert!(is_json(&headers));
        headers.insert(http::header::CONTENT_TYPE, "application/proto".parse().expect("v"));
        assert!(!is_json(&headers));
    }
}
