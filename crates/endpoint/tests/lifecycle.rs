//! A token's life on an injected clock: active, then expired for introspection and
//! userinfo, then purged — never before its expiry.

use std::sync::Arc;

use tessera_endpoint::{
    ClientCredentials, ClientCredentialsRequest, ErrorCode, Introspection, Issuer,
};
use tessera_mint::{KeyManager, MasterKey, RotationPolicy, TokenMinter};
use tessera_store::prelude::*;
use tessera_store::{
    AccessTokenType, ClientSecret, Credentials, ManualClock, MemoryStore, SecretDigest,
    ServiceUser, TokenDigest, TokenLifetime, Username,
};
use time::{Duration, OffsetDateTime};

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn setup(
    kind: AccessTokenType,
) -> Result<(Issuer, Arc<MemoryStore>, Arc<ManualClock>, ClientSecret), Box<dyn std::error::Error>>
{
    let start =
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_800_000_000) + Duration::milliseconds(500);
    let clock = Arc::new(ManualClock::new(start));
    let store = Arc::new(MemoryStore::new());
    let secret = ClientSecret::generate()?;
    let mut user = ServiceUser::new(Username::new("svc")?, start)?;
    user.credentials = Credentials::new(SecretDigest::of(&secret)?);
    user.access_token_type = kind;
    user.token_lifetime = TokenLifetime::from_secs(600)?;
    store.create_service_user(&user).await?;
    let keys = KeyManager::new(store.clone(), MasterKey::generate()?, RotationPolicy::default());
    keys.refresh(start).await?;
    let minter = TokenMinter::new("https://issuer.test").with_keys(keys.ring());
    let issuer = Issuer::new(store.clone(), minter).with_clock(clock.clone());
    Ok((issuer, store, clock, secret))
}

#[tokio::test]
async fn tokens_expire_for_introspection_and_userinfo_without_sleeping() -> TestResult {
    for kind in [AccessTokenType::Opaque, AccessTokenType::Jwt] {
        let (issuer, store, clock, secret) = setup(kind).await?;
        let creds = ClientCredentials::basic("svc", secret.expose());
        let issued = issuer
            .client_credentials(ClientCredentialsRequest {
                credentials: creds.clone(),
                scope: Some("openid profile".parse()?),
            })
            .await?;
        assert_eq!(issued.expires_in, 599);
        let token = issued.access_token.expose().to_owned();

        clock.advance(Duration::seconds(599));
        assert!(
            matches!(issuer.introspect(&creds, &token).await?, Introspection::Active(_)),
            "{kind}"
        );
        assert_eq!(issuer.userinfo(&token).await?.preferred_username.as_deref(), Some("svc"));
        // Not purged while valid.
        assert_eq!(issuer.purge_expired().await?, 0, "{kind}: nothing expired yet");

        clock.advance(Duration::milliseconds(500));
        assert!(
            matches!(issuer.introspect(&creds, &token).await?, Introspection::Inactive),
            "{kind}: expired"
        );
        let err = issuer.userinfo(&token).await.expect_err("expired");
        assert_eq!(err.code(), ErrorCode::InvalidToken);

        let purged = issuer.purge_expired().await?;
        match kind {
            AccessTokenType::Jwt => assert_eq!(purged, 0, "a JWT leaves no record"),
            _ => {
                assert_eq!(purged, 1, "the expired record is purged");
                assert!(store.token_by_digest(&TokenDigest::of(&token)).await?.is_none());
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_revoked_jwt_id_is_kept_until_the_token_expires() -> TestResult {
    let (issuer, store, clock, secret) = setup(AccessTokenType::Jwt).await?;
    let creds = ClientCredentials::basic("svc", secret.expose());
    let issued = issuer
        .client_credentials(ClientCredentialsRequest { credentials: creds.clone(), scope: None })
        .await?;
    let token = issued.access_token.expose().to_owned();
    issuer.revoke(&creds, &token).await?;
    assert!(store.is_jti_revoked(&issued.jti).await?);
    assert!(matches!(issuer.introspect(&creds, &token).await?, Introspection::Inactive));
    clock.advance(Duration::seconds(300));
    assert_eq!(issuer.purge_expired().await?, 0, "kept while the token could still verify");
    assert!(store.is_jti_revoked(&issued.jti).await?);
    clock.advance(Duration::seconds(300));
    assert_eq!(issuer.purge_expired().await?, 1, "dropped once the token expired");
    Ok(())
}
