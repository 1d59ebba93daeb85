//! JWTs as the server meets them without HTTP: `jsonwebtoken::decode_header`,
//! `KeySet::verify` and `Issuer::validate_token` of access tokens, and client
//! assertions (RFC 7523) through `Issuer::client_credentials` (`private_key_jwt`)
//! and `Issuer::jwt_bearer`.
//!
//! The fixture, built once: a `MemoryStore` with a service user `fuzz-svc`, client
//! keys registered under fixed ids (`fuzz-es256`, `fuzz-eddsa`, `fuzz-rs256`, an
//! expired `fuzz-expired`, `fuzz-badjwk` whose stored JWK does not parse and
//! `fuzz-badpoint` whose point is not on the curve), a `KeyManager` refreshed on
//! that store, and an `Issuer` on a clock stopped at `NOW`. The fixed key ids let
//! raw inputs reach the signature check.
//!
//! The first byte picks a mode (low two bits) and a client key (next two bits);
//! the rest is:
//! - mode 0: the token itself (UTF-8, lossily);
//! - mode 1: `header JSON \0 claims JSON \0 signature bytes`, base64url-encoded
//!   into a compact JWS that is not signed by any known key;
//! - mode 2: `header JSON \0 claims JSON`, signed with the chosen client key, so
//!   that the claim checks of the assertion path are reached;
//! - mode 3: `header JSON \0 claims JSON`, signed with the key ring's signing key,
//!   so that `KeySet::verify` and `validate_token` reach their claim checks. The
//!   ring's key id and the user's id are random: `$KID` in the header and `$SUB` in
//!   the claims stand for them.
//!
//! Every token goes through every path. None may panic; a token not signed by a
//! known key must be refused (`invalid_client` for client authentication,
//! `invalid_grant` for the grant, an error from `KeySet::verify`, no active token
//! from `validate_token`); a signed one may be accepted (and must then be refused
//! when replayed if it has a `jti`, and accepted again if it has none), and is
//! otherwise refused with the same codes.
#![no_main]

use std::sync::{Arc, OnceLock};

use base64ct::{Base64UrlUnpadded, Encoding};
use libfuzzer_sys::fuzz_target;
use tessera_endpoint::{ClientCredentials, ClientCredentialsRequest, ErrorCode, Issuer};
use tessera_mint::{KeyManager, KeyRing, MasterKey, RotationPolicy, SigningKey, TokenMinter};
use tessera_store::prelude::*;
use tessera_store::{
    ClientKey, KeyOwner, ManualClock, MemoryStore, ServiceUser, SigningAlgorithm, Username,
};
use time::{Duration, OffsetDateTime};

const ISSUER: &str = "https://issuer.test";
/// The fixture's clock: 2023-11-14T22:13:20Z.
const NOW: i64 = 1_700_000_000;
const USERNAME: &str = "fuzz-svc";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    store: Arc<MemoryStore>,
    ring: Arc<KeyRing>,
    issuer: Issuer,
    /// Private halves of the registered client keys that mode 2 signs with.
    client_keys: Vec<SigningKey>,
    /// The service user's id, for `$SUB`.
    user_id: String,
    now: OffsetDateTime,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
        let now = OffsetDateTime::from_unix_timestamp(NOW).expect("NOW is a valid time");
        let store = Arc::new(MemoryStore::new());
        let (ring, client_keys, user_id) = runtime.block_on(async {
            let manager = KeyManager::new(
                store.clone(),
                MasterKey::generate().expect("a master key"),
                RotationPolicy::default(),
            );
            manager.refresh(now).await.expect("the key ring refreshes");

            let user = ServiceUser::new(Username::new(USERNAME).expect("a username"), now)
                .expect("a service user");
            store.create_service_user(&user).await.expect("the user is stored");
            let owner = KeyOwner::ServiceUser(user.id.clone());
            let mut keys = Vec::new();
            for (kid, algorithm, expires_at) in [
                ("fuzz-es256", SigningAlgorithm::Es256, None),
                ("fuzz-eddsa", SigningAlgorithm::EdDsa, None),
                ("fuzz-rs256", SigningAlgorithm::Rs256, None),
                ("fuzz-expired", SigningAlgorithm::Es256, Some(now - Duration::seconds(1))),
            ] {
                let (key, _pkcs8) = SigningKey::generate(algorithm).expect("a client key");
                let record = ClientKey {
                    key_id: kid.to_owned(),
                    owner: owner.clone(),
                    algorithm,
                    public_jwk: key.public_jwk().to_string(),
                    created_at: now - Duration::days(1),
                    expires_at,
                };
                store.add_client_key(&record).await.expect("the client key is stored");
                keys.push(key);
            }
            for (kid, public_jwk) in [
                ("fuzz-badjwk", "not a JWK"),
                ("fuzz-badpoint", r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}"#),
            ] {
                let unusable = ClientKey {
                    key_id: kid.to_owned(),
                    owner: owner.clone(),
                    algorithm: SigningAlgorithm::Es256,
                    public_jwk: public_jwk.to_owned(),
                    created_at: now - Duration::days(1),
                    expires_at: None,
                };
                store.add_client_key(&unusable).await.expect("the client key is stored");
            }
            (manager.ring(), keys, user.id.to_string())
        });
        let issuer = Issuer::new(store.clone(), TokenMinter::new(ISSUER).with_keys(ring.clone()))
            .with_clock(Arc::new(ManualClock::new(now)));
        Fixture { runtime, store, ring, issuer, client_keys, user_id, now }
    })
}

/// `b64(header).b64(claims)`.
fn signing_input(header: &[u8], claims: &[u8]) -> String {
    let mut token = Base64UrlUnpadded::encode_string(header);
    token.push('.');
    token.push_str(&Base64UrlUnpadded::encode_string(claims));
    token
}

/// `input` with every `placeholder` replaced by `value`.
fn replace(input: &[u8], placeholder: &[u8], value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + value.len());
    let mut rest = input;
    while !rest.is_empty() {
        if rest.starts_with(placeholder) {
            out.extend_from_slice(value.as_bytes());
            rest = &rest[placeholder.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

fn signed(key: &SigningKey, header: &[u8], claims: &[u8]) -> String {
    let mut token = signing_input(header, claims);
    let signature = key.sign(token.as_bytes()).expect("signing succeeds");
    token.push('.');
    token.push_str(&Base64UrlUnpadded::encode_string(&signature));
    token
}

/// Whether the claims of a compact JWS hold a non-empty string `jti`.
fn has_jti(token: &str) -> bool {
    let claims = token.split('.').nth(1).and_then(|c| Base64UrlUnpadded::decode_vec(c).ok());
    let claims = claims.and_then(|c| serde_json::from_slice::<serde_json::Value>(&c).ok());
    claims.is_some_and(|c| c["jti"].as_str().is_some_and(|jti| !jti.is_empty()))
}

/// Forgets used assertion ids and issued tokens, so that every input behaves the
/// same however often it runs (and the store does not grow).
async fn forget_used_assertions(f: &Fixture) {
    let later = f.now + Duration::days(400);
    f.store.purge_expired_tokens(later).await.expect("purge succeeds");
}

/// Runs `token` through every path. `client_signed`: signed with a registered client
/// key; `ring_signed`: signed with the key ring's key.
fn check(f: &Fixture, token: &str, client_signed: bool, ring_signed: bool) {
    let _ = jsonwebtoken::decode_header(token);

    match f.ring.key_set().verify(token, ISSUER, f.now) {
        Ok(claims) => {
            assert!(ring_signed, "KeySet::verify accepted a token it did not sign");
            assert_eq!(claims.iss, ISSUER);
            assert!(claims.nbf <= NOW && NOW < claims.exp, "accepted outside its validity");
        }
        Err(_) => {}
    }

    f.runtime.block_on(async {
        match f.issuer.validate_token(token).await {
            Ok(Some(active)) => {
                assert!(ring_signed, "validate_token accepted a token the ring did not sign");
                assert!(active.exp > NOW, "an expired token is active");
            }
            Ok(None) => {}
            Err(error) => panic!("validate_token failed on a memory store: {error}"),
        }
        for client_id in [None, Some(USERNAME)] {
            let request = || ClientCredentialsRequest {
                credentials: ClientCredentials::assertion(client_id, token),
                scope: None,
            };
            match f.issuer.client_credentials(request()).await {
                Ok(response) => {
                    assert!(client_signed, "a forged client assertion was accepted");
                    assert_eq!(response.token_type, "Bearer");
                    let replay = f.issuer.client_credentials(request()).await;
                    let replay = replay.map(|_| ()).map_err(|e| e.code());
                    let expected = if has_jti(token) { Err(ErrorCode::InvalidClient) } else { Ok(()) };
                    assert_eq!(replay, expected, "replay of an assertion (jti: {})", has_jti(token));
                    forget_used_assertions(f).await;
                }
                Err(error) => assert_eq!(error.code(), ErrorCode::InvalidClient, "{error}"),
            }
        }
        match f.issuer.jwt_bearer(None, token, None).await {
            Ok(_) => {
                assert!(client_signed, "a forged grant assertion was accepted");
                let replay = f.issuer.jwt_bearer(None, token, None).await.map(|_| ());
                let expected = if has_jti(token) { Err(ErrorCode::InvalidGrant) } else { Ok(()) };
                assert_eq!(replay.map_err(|e| e.code()), expected);
                forget_used_assertions(f).await;
            }
            Err(error) => assert_eq!(error.code(), ErrorCode::InvalidGrant, "{error}"),
        }
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let mut parts = rest.splitn(3, |b| *b == 0);
    let header = parts.next().unwrap_or_default();
    let claims = parts.next().unwrap_or_default();
    let signature = parts.next().unwrap_or_default();
    match selector & 3 {
        0 => check(f, &String::from_utf8_lossy(rest), false, false),
        1 => {
            let mut token = signing_input(header, claims);
            token.push('.');
            token.push_str(&Base64UrlUnpadded::encode_string(signature));
            check(f, &token, false, false);
        }
        2 => {
            let key = &f.client_keys[usize::from((selector >> 2) & 3)];
            check(f, &signed(key, header, claims), true, false);
        }
        _ => {
            let set = f.ring.key_set();
            let key = set.signing_key(f.now).expect("the ring has a signing key");
            let header = replace(header, b"$KID", key.kid());
            let claims = replace(claims, b"$SUB", &f.user_id);
            check(f, &signed(key, &header, &claims), false, true);
        }
    }
});
