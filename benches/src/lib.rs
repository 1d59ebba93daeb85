//! Criterion benchmarks of Tessera's hot paths, and the fixtures they share.
//!
//! The benchmarks live in `benches/hot_paths.rs` and measure, each on its own, the
//! steps of a client credentials request:
//!
//! - `scope/parse`: [`tessera_scope::ScopeSet::parse`] of a three-scope list;
//! - `basic/parse`: `tessera_endpoint::internals::parse_basic` of an `Authorization: Basic` value;
//! - `authenticate/*`: [`tessera_endpoint::Issuer::authenticate`] against a
//!   [`MemoryStore`], with the right and with a wrong secret;
//! - `mint/opaque`: [`tessera_mint::TokenMinter::mint`] of an opaque token;
//! - `mint/jwt/{ES256,RS256,EdDSA}`: minting and signing a JWT access token with a
//!   key parsed once;
//! - `endpoint/token_request/{opaque,ES256,RS256,EdDSA}`: a whole request through
//!   [`TokenEndpoint::handle`], in process, from `http::Request` to `http::Response`;
//! - `endpoint/introspect/{opaque,ES256}`: a whole introspection request by the
//!   token's own service user.
//!
//! Run them all with
//!
//! ```text
//! cargo bench -p tessera-benches
//! ```
//!
//! or check that each runs once, without measuring, with
//! `cargo bench -p tessera-benches -- --test`. Criterion's usual arguments apply, for
//! example `-- --measurement-time 2 --warm-up-time 1` for a quicker run, or a name
//! filter such as `-- authenticate`.
//!
//! The crate also holds the load harness: `src/bin/harness.rs` drives
//! `tessera-server` and the floor server (`src/bin/floor.rs`, the essential work of
//! each request done directly on hyper) over loopback sockets with `wrk`, and
//! reports each configuration as a ratio to the floor; its parts are in [`load`].
//! Run it with `cargo run --release -p tessera-benches --bin harness`.
#![forbid(unsafe_code)]

pub mod load;

use std::sync::Arc;

use base64ct::{Base64, Encoding};
use bytes::Bytes;
use http::Request;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http_body_util::Full;
use tessera_endpoint::{Issuer, TOKEN_PATH, TokenEndpoint};
use tessera_mint::{Grant, KeyManager, MasterKey, RotationPolicy, TokenMinter};
use tessera_store::prelude::*;
use tessera_store::{
    AccessTokenType, ClientSecret, Credentials, MemoryStore, SecretDigest, ServiceUser,
    SigningAlgorithm, UserId, Username,
};
use time::{Duration, OffsetDateTime};

/// The error type of fixture setup.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The scope list the benchmarks parse and request: two standard scopes and the
/// project audience scope of the server's own API.
pub const SCOPE: &str = "openid profile urn:zitadel:iam:org:project:id:zitadel:aud";

/// The client ID of the benchmarks' service user.
pub const CLIENT_ID: &str = "bench-client";

/// The body of the benchmarked token request (`client_secret_basic`, scopes
/// form-encoded).
pub const TOKEN_REQUEST_BODY: &str = "grant_type=client_credentials&scope=openid+profile+urn%3Azitadel%3Aiam%3Aorg%3Aproject%3Aid%3Azitadel%3Aaud";

/// A [`MemoryStore`] holding one enabled service user, [`CLIENT_ID`], with a
/// generated secret, and a [`TokenEndpoint`] issuing tokens from it.
#[derive(Debug)]
pub struct Fixture {
    /// The store, to inspect or purge the token records written.
    pub store: Arc<MemoryStore>,
    /// The endpoint; its issuer is [`TokenEndpoint::issuer`].
    pub endpoint: TokenEndpoint,
    /// The secret of [`CLIENT_ID`], in clear.
    pub secret: ClientSecret,
}

impl Fixture {
    /// Creates the store, the service user (opaque tokens) and the endpoint.
    pub async fn new() -> Result<Self, BoxError> {
        Self::with_format(AccessTokenType::Opaque, SigningAlgorithm::Es256).await
    }

    /// As [`Fixture::new`], with the user's token type set to `format`, and signing
    /// keys of `algorithm` loaded (used for JWTs).
    pub async fn with_format(
        format: AccessTokenType,
        algorithm: SigningAlgorithm,
    ) -> Result<Self, BoxError> {
        let store = Arc::new(MemoryStore::new());
        let secret = ClientSecret::generate()?;
        let now = OffsetDateTime::now_utc();
        let mut user = ServiceUser::new(Username::new(CLIENT_ID)?, now)?;
        user.credentials = Credentials::new(SecretDigest::of(&secret)?);
        user.access_token_type = format;
        store.create_service_user(&user).await?;
        let keys = KeyManager::new(
            store.clone(),
            MasterKey::generate()?,
            RotationPolicy { algorithm, ..RotationPolicy::default() },
        );
        keys.refresh(now).await?;
        let minter = TokenMinter::new("https://auth.example.com").with_keys(keys.ring());
        let issuer = Issuer::new(store.clone(), minter);
        Ok(Self { store, endpoint: TokenEndpoint::new(issuer), secret })
    }

    /// The issuer behind the endpoint.
    pub fn issuer(&self) -> &Issuer {
        self.endpoint.issuer()
    }

    /// The `Authorization` value with this fixture's credentials.
    pub fn basic_header(&self) -> String {
        basic_header(CLIENT_ID, self.secret.expose())
    }

    /// A complete token request: `POST` [`TOKEN_PATH`], form content type, Basic
    /// credentials and [`TOKEN_REQUEST_BODY`].
    pub fn token_request(&self) -> Result<Request<Full<Bytes>>, http::Error> {
        Request::post(TOKEN_PATH)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(AUTHORIZATION, self.basic_header())
            .body(Full::new(Bytes::from_static(TOKEN_REQUEST_BODY.as_bytes())))
    }

    /// An introspection request for `token` by the fixture's own service user.
    pub fn introspection_request(&self, token: &str) -> Result<Request<Full<Bytes>>, http::Error> {
        Request::post(tessera_endpoint::INTROSPECT_PATH)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(AUTHORIZATION, self.basic_header())
            .body(Full::new(Bytes::from(format!("token={token}"))))
    }

    /// Deletes every token record the endpoint has written; returns how many.
    pub async fn purge_tokens(&self) -> Result<u64, tessera_store::StoreError> {
        let far_future = OffsetDateTime::now_utc() + Duration::days(2 * 366);
        self.store.purge_expired_tokens(far_future).await
    }
}

/// `Basic base64(id:secret)`. The id and secret must need no form-encoding (as
/// generated secrets and [`CLIENT_ID`] do not).
pub fn basic_header(id: &str, secret: &str) -> String {
    format!("Basic {}", Base64::encode_string(format!("{id}:{secret}").as_bytes()))
}

/// A grant for an opaque token, as the issuer builds it for [`CLIENT_ID`] with
/// [`SCOPE`] and a 12 hour lifetime.
pub fn opaque_grant() -> Result<Grant, BoxError> {
    let issued_at = OffsetDateTime::now_utc();
    Ok(Grant {
        token_type: AccessTokenType::Opaque,
        user_id: UserId::generate()?,
        client_id: Username::new(CLIENT_ID)?,
        scopes: SCOPE.parse()?,
        audience: vec!["zitadel".to_owned()],
        roles: Default::default(),
        resource_owner: None,
        issued_at,
        expires_at: issued_at + Duration::hours(12),
    })
}
