//! The axum extractor.

use axum_core::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use crate::{AuthError, Authorizer, Principal};

/// The principal of the request: the one [`AuthLayer`](crate::AuthLayer) put into
/// the request's extensions, or else the request's bearer token checked with the
/// state's [`Authorizer`] (so a handler is protected by taking a `Principal`).
/// A refusal answers with the [`AuthError`]'s response.
impl<S> FromRequestParts<S> for Principal
where
    Authorizer: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let principal = Authorizer::from_ref(state).authorize(&parts.headers).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// `Option<Principal>`: `None` for a request without a bearer token (a route
/// open to everyone that says more to callers who present one); a token that is
/// present but not valid is still refused.
impl<S> OptionalFromRequestParts<S> for Principal
where
    Authorizer: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match <Principal as FromRequestParts<S>>::from_request_parts(parts, state).await {
            Ok(principal) => Ok(Some(principal)),
            Err(AuthError::MissingToken) => Ok(None),
            Err(error) => Err(error),
        }
    }
}
