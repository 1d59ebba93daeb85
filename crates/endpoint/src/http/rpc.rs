//! Unary RPC services answered beside the OAuth endpoints, on the same listener, with
//! the same limits, client address, log context and metrics: the management API is
//! one ([`TokenEndpoint::with_rpc`](crate::TokenEndpoint::with_rpc)).
//!
//! The endpoint reads the request body (up to [`MAX_RPC_BODY`]) and hands the
//! service the method, path, headers and body; the service renders every answer,
//! errors included, in its own protocol.

use std::net::IpAddr;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method, Response};
use http_body::Body;
use http_body_util::{BodyExt, Limited};

use super::ResponseBody;
use super::request::BoxError;

/// The largest RPC request body read: 64 KiB.
pub const MAX_RPC_BODY: usize = 64 * 1024;

/// A service of unary calls on paths of its own.
#[async_trait]
pub trait RpcService: std::fmt::Debug + Send + Sync + 'static {
    /// Whether the service answers `path` (relative to the issuer URL).
    fn handles(&self, path: &str) -> bool;

    /// Answers one call.
    async fn call(&self, request: RpcRequest) -> Response<ResponseBody>;
}

/// One call, as the endpoint read it.
#[derive(Debug)]
pub struct RpcRequest {
    /// The HTTP method.
    pub method: Method,
    /// The path, relative to the issuer URL.
    pub path: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: RpcBody,
    /// The client's address, when the endpoint knows it.
    pub client_address: Option<IpAddr>,
}

/// The body of a call.
#[derive(Debug)]
pub enum RpcBody {
    /// The whole body (empty when there was none).
    Complete(Bytes),
    /// The body is longer than the limit; it was not read.
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body could not be read (the client went away or sent a broken body).
    Unreadable,
}

/// Reads `body`, up to `limit` bytes.
pub(crate) async fn read_body<B>(headers: &HeaderMap, body: B, limit: usize) -> RpcBody
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return RpcBody::TooLarge { limit };
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => RpcBody::Complete(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => RpcBody::TooLarge { limit },
        Err(_) => RpcBody::Unreadable,
    }
}
