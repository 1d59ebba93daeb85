//! JWT access tokens and key rotation, checked the way a resource server checks
//! them: with the published JWK Set and jsonwebtoken.

use std::sync::Arc;

use base64ct::{Base64UrlUnpadded, Encoding};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use tessera_mint::{
    AccessTokenClaims, Grant, JwtHeaderType, KeyError, KeyManager, MasterKey, RotationPolicy,
    SigningKey, TokenMinter, VerifyError, ecdsa, key_file_pem,
};
use tessera_store::{
    AccessTokenType, DisplayName, Domain, MemoryStore, Organization, SigningAlgorithm,
    SigningKeyStore, UserId, Username,
};
use time::{Duration, OffsetDateTime};

const ISSUER: &str = "https://auth.example.com";

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn t0() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_800_000_000)
}

fn policy(algorithm: SigningAlgorithm) -> RotationPolicy {
    RotationPolicy { algorithm, ..RotationPolicy::default() }
}

fn grant(at: OffsetDateTime, lifetime: Duration) -> Result<Grant, Box<dyn std::error::Error>> {
    Ok(Grant {
        token_type: AccessTokenType::Jwt,
        user_id: UserId::generate()?,
        client_id: Username::new("billing-job")?,
        scopes: "openid profile".parse()?,
        audience: vec!["zitadel".into()],
        roles: Default::default(),
        resource_owner: None,
        issued_at: at,
        expires_at: at + lifetime,
    })
}

fn jws_alg(alg: SigningAlgorithm) -> Algorithm {
    match alg {
        SigningAlgorithm::Rs256 => Algorithm::RS256,
        SigningAlgorithm::EdDsa => Algorithm::EdDSA,
        _ => Algorithm::ES256,
    }
}

/// Verifies `token` as an outside resource server would: key chosen by `kid` from
/// the published set, signature, `typ`, issuer, expiry against the real clock
/// disabled (the tests run on a fixed clock) and checked by hand.
fn verify_like_a_resource_server(
    jwks: &[u8],
    token: &str,
    alg: SigningAlgorithm,
) -> Result<AccessTokenClaims, Box<dyn std::error::Error>> {
    let set: JwkSet = serde_json::from_slice(jwks)?;
    let header = jsonwebtoken::decode_header(token)?;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, jws_alg(alg));
    let kid = header.kid.ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or("kid not published")?;
    let mut validation = Validation::new(jws_alg(alg));
    validation.set_issuer(&[ISSUER]);
    validation.validate_exp = false;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<AccessTokenClaims>(
        token,
        &DecodingKey::from_jwk(jwk)?,
        &validation,
    )?;
    Ok(data.claims)
}

#[tokio::test]
async fn jwts_verify_with_the_published_key_set_for_every_algorithm() -> TestResult {
    for alg in SigningAlgorithm::ALL {
        let store = Arc::new(MemoryStore::new());
        let manager = KeyManager::new(store.clone(), MasterKey::generate()?, policy(alg));
        let report = manager.refresh(t0()).await?;
        assert_eq!(report.created.len(), 1, "{alg}: first refresh creates a key");
        let minter = TokenMinter::new(ISSUER).with_keys(manager.ring());
        let g = grant(t0(), Duration::hours(12))?;
        let minted = minter.mint(&g)?;
        assert!(minted.record.is_none(), "{alg}: a JWT needs no record");
        let set = manager.ring().key_set();
        let claims = verify_like_a_resource_server(set.jwks(), minted.token.expose(), alg)?;
        assert_eq!(claims.sub, g.user_id.to_string());
        assert_eq!(claims.client_id, "billing-job");
        assert_eq!(claims.aud, ["zitadel"]);
        assert_eq!(claims.scope, "openid profile");
        assert_eq!(claims.iat, t0().unix_timestamp());
        assert_eq!(claims.nbf, claims.iat);
        assert_eq!(claims.exp, t0().unix_timestamp() + 43_200);
        assert_eq!(claims.jti, minted.jti.to_string());
        assert_eq!(set.verify(minted.token.expose(), ISSUER, t0())?, claims);

        let jwks: serde_json::Value = serde_json::from_slice(set.jwks())?;
        let key = &jwks["keys"][0];
        assert_eq!(key["use"], "sig");
        assert_eq!(key["alg"], alg.as_str());
        assert!(key.get("d").is_none(), "{alg}: no private part published");
    }
    Ok(())
}

#[tokio::test]
async fn verifiers_reject_tampering_wrong_type_and_expiry() -> TestResult {
    let store = Arc::new(MemoryStore::new());
    let manager = KeyManager::new(store, MasterKey::generate()?, policy(SigningAlgorithm::Es256));
    manager.refresh(t0()).await?;
    let minter = TokenMinter::new(ISSUER).with_keys(manager.ring());
    let token = minter.mint(&grant(t0(), Duration::minutes(5))?)?.token.expose().to_owned();
    let set = manager.ring().key_set();

    // Tampered payload: another subject, the original signature.
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&Base64UrlUnpadded::decode_vec(parts[1])?)?;
    claims["sub"] = "someone-else".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        Base64UrlUnpadded::encode_string(claims.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(set.verify(&forged, ISSUER, t0()), Err(VerifyError::BadSignature));
    assert!(verify_like_a_resource_server(set.jwks(), &forged, SigningAlgorithm::Es256).is_err());

    // A validly signed JWT whose typ is neither at+jwt nor JWT (a security event
    // token, say), or that has none, is refused.
    let kid = set.kids()[0].to_owned();
    let records = manager_key(&manager, &kid);
    for header in [
        serde_json::json!({"alg": "ES256", "typ": "secevent+jwt", "kid": kid}),
        serde_json::json!({"alg": "ES256", "kid": kid}),
    ] {
        let input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
            parts[1]
        );
        let signature = records.sign(input.as_bytes())?;
        let wrong_typ = format!("{input}.{}", Base64UrlUnpadded::encode_string(&signature));
        assert_eq!(set.verify(&wrong_typ, ISSUER, t0()), Err(VerifyError::WrongType));
    }

    // Expired: at exp and after.
    assert!(set.verify(&token, ISSUER, t0() + Duration::minutes(5) - Duration::seconds(1)).is_ok());
    assert_eq!(set.verify(&token, ISSUER, t0() + Duration::minutes(5)), Err(VerifyError::Expired));
    assert_eq!(
        set.verify(&token, "https://other.example.com", t0()),
        Err(VerifyError::WrongIssuer)
    );
    assert_eq!(set.verify("not.a.jwt", ISSUER, t0()), Err(VerifyError::Malformed));
    Ok(())
}

/// The ring's current signing key (the only way to sign arbitrary bytes in a test).
fn manager_key(manager: &KeyManager, kid: &str) -> Arc<SigningKey> {
    let set = manager.ring().key_set();
    let key = set.signing_key(t0()).expect("a signing key");
    assert_eq!(key.kid(), kid);
    key.clone()
}

#[tokio::test]
async fn rotation_keeps_old_tokens_verifiable_until_they_expire() -> TestResult {
    let store = Arc::new(MemoryStore::new());
    let p = policy(SigningAlgorithm::EdDsa);
    let manager = KeyManager::new(store.clone(), MasterKey::generate()?, p);
    let minter = TokenMinter::new(ISSUER).with_keys(manager.ring());
    let first = manager.refresh(t0()).await?.created;

    // Just before the next key is due, nothing changes.
    let almost = t0() + p.period - p.prepublish - Duration::seconds(1);
    assert!(manager.refresh(almost).await?.created.is_empty());

    // The next key is published ahead of time, but the first still signs.
    let publish = t0() + p.period - p.prepublish;
    let second = manager.refresh(publish).await?.created;
    assert_eq!(second.len(), 1);
    assert_eq!(manager.ring().key_set().kids(), [first[0].as_str(), second[0].as_str()]);
    let old = minter.mint(&grant(t0() + p.period - Duration::seconds(1), Duration::hours(12))?)?;
    let header = jsonwebtoken::decode_header(old.token.expose())?;
    assert_eq!(
        header.kid.as_deref(),
        Some(first[0].as_str()),
        "the old key signs until the period ends"
    );

    // From the activation time the new key signs.
    let switch = t0() + p.period;
    let new = minter.mint(&grant(switch, Duration::hours(12))?)?;
    assert_eq!(
        jsonwebtoken::decode_header(new.token.expose())?.kid.as_deref(),
        Some(second[0].as_str())
    );

    // The old token keeps verifying against the published set until it expires...
    let late = switch + Duration::hours(11);
    manager.refresh(late).await?;
    let set = manager.ring().key_set();
    assert!(set.kids().contains(&first[0].as_str()), "the retired key is still published");
    assert!(set.verify(old.token.expose(), ISSUER, late).is_ok());

    // ...and once no token it signed can be valid, the old key leaves the set.
    let gone = switch + p.max_token_lifetime;
    let report = manager.refresh(gone).await?;
    assert_eq!(report.deleted, first);
    let set = manager.ring().key_set();
    assert!(!set.kids().contains(&first[0].as_str()));
    assert_eq!(set.verify(old.token.expose(), ISSUER, gone), Err(VerifyError::UnknownKey));
    assert_eq!(store.signing_keys().await?.len(), set.kids().len(), "the store dropped it too");
    Ok(())
}

#[tokio::test]
async fn two_instances_on_one_store_agree_and_create_one_key_per_rotation() -> TestResult {
    let store = Arc::new(MemoryStore::new());
    let master = MasterKey::generate()?;
    let p = policy(SigningAlgorithm::Es256);
    let a = KeyManager::new(store.clone(), MasterKey::from_base64(&master.to_base64())?, p);
    let b = KeyManager::new(store.clone(), MasterKey::from_base64(&master.to_base64())?, p);
    let (ra, rb) = tokio::join!(a.refresh(t0()), b.refresh(t0()));
    assert_eq!(ra?.created.len() + rb?.created.len(), 1, "one first key, not two");
    let boundary = t0() + p.period - p.prepublish;
    let (ra, rb) = tokio::join!(a.refresh(boundary), b.refresh(boundary));
    assert_eq!(ra?.created.len() + rb?.created.len(), 1, "one new key at the boundary");
    assert_eq!(a.ring().key_set().kids(), b.ring().key_set().kids());
    assert_eq!(a.ring().key_set().jwks(), b.ring().key_set().jwks(), "the same key set");

    // A token minted by A verifies on B.
    let token =
        TokenMinter::new(ISSUER).with_keys(a.ring()).mint(&grant(t0(), Duration::hours(1))?)?;
    assert!(b.ring().key_set().verify(token.token.expose(), ISSUER, t0()).is_ok());
    Ok(())
}

#[tokio::test]
async fn a_wrong_master_key_is_a_clear_error_and_keeps_the_ring() -> TestResult {
    let store = Arc::new(MemoryStore::new());
    let good = KeyManager::new(store.clone(), MasterKey::generate()?, RotationPolicy::default());
    good.refresh(t0()).await?;
    let wrong = KeyManager::new(store.clone(), MasterKey::generate()?, RotationPolicy::default());
    let err = wrong.refresh(t0()).await.expect_err("a wrong master key must fail");
    assert!(matches!(err, KeyError::Unseal { .. }), "{err:?}");
    assert!(err.to_string().contains("master key"), "{err}");
    assert!(wrong.ring().key_set().kids().is_empty(), "nothing loaded");
    assert!(good.refresh(t0()).await.is_ok());
    Ok(())
}

#[tokio::test]
async fn jwts_are_capped_to_the_longest_lifetime_and_need_keys() -> TestResult {
    let store = Arc::new(MemoryStore::new());
    let p = RotationPolicy { max_token_lifetime: Duration::hours(2), ..RotationPolicy::default() };
    let manager = KeyManager::new(store, MasterKey::generate()?, p);
    manager.refresh(t0()).await?;
    let minted = TokenMinter::new(ISSUER)
        .with_keys(manager.ring())
        .mint(&grant(t0(), Duration::days(3))?)?;
    assert_eq!(minted.expires_at, t0() + Duration::hours(2));
    assert!(TokenMinter::new(ISSUER).mint(&grant(t0(), Duration::hours(1))?).is_err());
    Ok(())
}

#[tokio::test]
async fn changing_the_algorithm_rotates_to_a_key_of_the_new_algorithm() -> TestResult {
    let store = Arc::new(MemoryStore::new());
    let master = MasterKey::generate()?;
    let es = KeyManager::new(
        store.clone(),
        MasterKey::from_base64(&master.to_base64())?,
        policy(SigningAlgorithm::Es256),
    );
    es.refresh(t0()).await?;
    let rs = KeyManager::new(store.clone(), master, policy(SigningAlgorithm::Rs256));
    let report = rs.refresh(t0() + Duration::minutes(1)).await?;
    assert_eq!(report.created.len(), 1);
    let records = store.signing_keys().await?;
    assert_eq!(records.last().map(|r| r.algorithm), Some(SigningAlgorithm::Rs256));
    assert!(rs.refresh(t0() + Duration::minutes(2)).await?.created.is_empty(), "only once");
    Ok(())
}

#[tokio::test]
async fn the_jwt_type_setting_writes_jwt_and_both_types_verify() -> TestResult {
    let store = Arc::new(MemoryStore::new());
    let manager =
        KeyManager::new(store.clone(), MasterKey::generate()?, policy(SigningAlgorithm::Rs256));
    manager.refresh(t0()).await?;
    let ring = manager.ring();
    let mut grant = grant(t0(), Duration::hours(1))?;
    let org =
        Organization::generate(DisplayName::new("Acme")?, Domain::new("Acme.Example.com")?, t0())?;
    grant.resource_owner = Some(org.clone());
    for (typ, header) in [(JwtHeaderType::AtJwt, "at+jwt"), (JwtHeaderType::Jwt, "JWT")] {
        let minter = TokenMinter::new(ISSUER).with_keys(ring.clone()).with_jwt_type(typ);
        let token = minter.mint(&grant)?.token;
        assert_eq!(jsonwebtoken::decode_header(token.expose())?.typ.as_deref(), Some(header));
        let claims = ring.key_set().verify(token.expose(), ISSUER, t0())?;
        assert_eq!(claims.resource_owner_id.as_deref(), Some(org.id.as_str()));
        assert_eq!(claims.resource_owner_name.as_deref(), Some("Acme"));
        assert_eq!(claims.resource_owner_primary_domain.as_deref(), Some("acme.example.com"));
    }
    // Another type is refused.
    let token = TokenMinter::new(ISSUER).with_keys(ring.clone()).mint(&grant)?.token;
    let mut parts = token.expose().split('.');
    let header = Base64UrlUnpadded::decode_vec(parts.next().ok_or("header")?)?;
    let header = String::from_utf8(header)?.replace("at+jwt", "id+jwt");
    let forged = format!(
        "{}.{}.{}",
        Base64UrlUnpadded::encode_string(header.as_bytes()),
        parts.next().ok_or("claims")?,
        parts.next().ok_or("signature")?
    );
    assert_eq!(ring.key_set().verify(&forged, ISSUER, t0()), Err(VerifyError::WrongType));
    Ok(())
}

#[test]
fn es256_signatures_are_canonical() -> TestResult {
    let (key, _) = SigningKey::generate(SigningAlgorithm::Es256)?;
    for i in 0..64 {
        let signature = key.sign(format!("message {i}").as_bytes())?;
        assert!(ecdsa::is_low_s(&signature), "signature {i} has a high s");
    }
    Ok(())
}

#[test]
fn a_high_s_twin_verifies_and_canonical_jws_restores_the_low_one() -> TestResult {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
    let (key, _) = SigningKey::generate(SigningAlgorithm::Es256)?;
    let jwk = key.public_jwk();
    let coordinate = |name: &str| -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        Ok(Base64UrlUnpadded::decode_vec(jwk[name].as_str().ok_or("coordinate")?)?)
    };
    let mut point = vec![4u8];
    point.extend(coordinate("x")?);
    point.extend(coordinate("y")?);
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point);
    let message = b"header.claims";
    let low = key.sign(message)?;
    let mut high = low.clone();
    ecdsa::negate_s(&mut high);
    assert!(public.verify(message, &low).is_ok());
    assert_ne!(low, high);
    assert!(public.verify(message, &high).is_ok(), "the malleated signature verifies");
    assert!(!ecdsa::is_low_s(&high));
    let token = format!("header.claims.{}", Base64UrlUnpadded::encode_string(&high));
    let canonical = ecdsa::canonical_jws(&token).ok_or("not a JWS")?;
    assert_eq!(canonical, format!("header.claims.{}", Base64UrlUnpadded::encode_string(&low)));
    Ok(())
}

#[test]
fn key_files_carry_rsa_keys_as_pkcs1_that_jose_libraries_load() -> TestResult {
    let (key, pkcs8) = SigningKey::generate(SigningAlgorithm::Rs256)?;
    let pem = key_file_pem(SigningAlgorithm::Rs256, &pkcs8).ok_or("no PEM")?;
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"), "{}", &pem[..40]);
    assert!(pem.ends_with("-----END RSA PRIVATE KEY-----\n"));
    // A client loads it as PKCS#1 and signs with it; the registered public key verifies.
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64ct::Base64::decode_vec(&body)?;
    let pair = aws_lc_rs::signature::RsaKeyPair::from_der(&der).map_err(|e| e.to_string())?;
    let input = format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(br#"{"alg":"RS256"}"#),
        Base64UrlUnpadded::encode_string(br#"{"sub":"me"}"#)
    );
    let mut signature = vec![0; pair.public_modulus_len()];
    let rng = aws_lc_rs::rand::SystemRandom::new();
    pair.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature)
        .map_err(|e| e.to_string())?;
    let token = format!("{input}.{}", Base64UrlUnpadded::encode_string(&signature));
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_jwk().clone())?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Value>(&token, &DecodingKey::from_jwk(&jwk)?, &validation)?;
    // Other keys stay PKCS#8.
    for alg in [SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
        let (_, pkcs8) = SigningKey::generate(alg)?;
        let pem = key_file_pem(alg, &pkcs8).ok_or("no PEM")?;
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    }
    // A document that is not PKCS#8 gives no RSA key file.
    assert!(key_file_pem(SigningAlgorithm::Rs256, b"\x30\x03\x02\x01").is_none());
    Ok(())
}

#[tokio::test]
async fn an_access_token_with_the_high_s_twin_of_its_signature_is_refused() -> TestResult {
    let store = Arc::new(MemoryStore::new());
    let manager =
        KeyManager::new(store.clone(), MasterKey::generate()?, policy(SigningAlgorithm::Es256));
    manager.refresh(t0()).await?;
    let ring = manager.ring();
    let minter = TokenMinter::new(ISSUER).with_keys(ring.clone());
    let token = minter.mint(&grant(t0(), Duration::hours(1))?)?.token;
    assert!(ecdsa::jws_has_low_s(token.expose()));
    assert!(ring.key_set().verify(token.expose(), ISSUER, t0()).is_ok());
    let (input, signature) = token.expose().rsplit_once('.').ok_or("JWS")?;
    let mut twin = Base64UrlUnpadded::decode_vec(signature)?;
    ecdsa::negate_s(&mut twin);
    let twin = format!("{input}.{}", Base64UrlUnpadded::encode_string(&twin));
    // The twin verifies as a signature (a resource server with a plain JOSE library
    // accepts it), but not here.
    assert!(
        verify_like_a_resource_server(ring.key_set().jwks(), &twin, SigningAlgorithm::Es256)
            .is_ok()
    );
    assert_eq!(ring.key_set().verify(&twin, ISSUER, t0()), Err(VerifyError::BadSignature));
    Ok(())
}
