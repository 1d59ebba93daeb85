//! The tower layer: a request goes through only with a valid token that meets the
//! route's requirements; its [`Principal`] rides along in the request extensions.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::requirement::Requirement;
use crate::{Authorizer, Principal};

/// A tower [`Layer`] that refuses requests without a valid access token (answering
/// with [`AuthError::to_response`](crate::AuthError::to_response)) and hands the
/// [`Principal`] to the inner service as a request extension. Made by
/// [`Authorizer::layer`].
///
/// It wraps any `Service<http::Request<B>, Response = http::Response<R>>` whose
/// response body `R` has a `Default` (the empty body of a refusal): axum routers
/// and handlers, hyper services through `hyper_util::service::TowerToHyperService`,
/// tonic servers (`Server::builder().layer(...)`).
#[derive(Debug, Clone)]
pub struct AuthLayer {
    authorizer: Authorizer,
    requirements: Arc<[Requirement]>,
}

impl AuthLayer {
    pub(crate) fn new(authorizer: Authorizer) -> Self {
        AuthLayer { authorizer, requirements: Arc::new([]) }
    }

    /// Also requires `requirement` (every requirement must be met).
    #[must_use]
    pub fn require(self, requirement: Requirement) -> Self {
        let mut requirements = self.requirements.to_vec();
        requirements.push(requirement);
        AuthLayer { authorizer: self.authorizer, requirements: requirements.into() }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            authorizer: self.authorizer.clone(),
            requirements: self.requirements.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around an inner service.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    authorizer: Authorizer,
    requirements: Arc<[Requirement]>,
}

/// The future of [`AuthService`]'s responses.
pub type ResponseFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B, R> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = ResponseFuture<Response<R>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone is not driven to readiness; the service that was is taken
        // (tower's guidance for services that call their inner one later).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authorizer = self.authorizer.clone();
        let requirements = self.requirements.clone();
        Box::pin(async move {
            let decided = authorizer.authorize_with(request.headers(), &requirements).await;
            match decided {
                Ok(principal) => {
                    request.extensions_mut().insert::<Principal>(principal);
                    inner.call(request).await
                }
                Err(error) => Ok(error.to_response()),
            }
        })
    }
}
