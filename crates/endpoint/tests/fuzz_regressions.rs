//! Adversarial inputs for the parsers the fuzz targets `form`, `basic` and `assertion`
//! exercise (see `fuzz/README.md`): each goes through the same public API as its
//! target and must give the documented error, never a panic. Inputs that a fuzz run
//! finds crashing belong here too.

use std::sync::Arc;

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use tessera_endpoint::internals::{Form, FormError, MAX_PARAMS, decode, parse_basic};
use tessera_endpoint::{
    AssertionPolicy, AuthMethod, ClientCredentials, ClientCredentialsRequest, ErrorCode, Issuer,
    MAX_AUTHORIZATION_LEN, MAX_TOKEN_LEN, OAuthError,
};
use tessera_mint::{KeyManager, KeyRing, MasterKey, RotationPolicy, SigningKey, TokenMinter};
use tessera_store::prelude::*;
use tessera_store::{
    ClientKey, KeyOwner, ManualClock, MemoryStore, ServiceUser, SigningAlgorithm, Username,
};
use time::{Duration, OffsetDateTime};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const MEGABYTE: usize = 1 << 20;

// ---- form -------------------------------------------------------------------

#[test]
fn deep_percent_encoding_is_decoded_once() -> Result<(), FormError> {
    assert_eq!(decode(b"%252541")?, "%2541");
    let deep = "%25".repeat(100_000);
    assert_eq!(decode(deep.as_bytes())?, "%".repeat(100_000));
    let form = Form::parse(format!("scope={}", "%2B".repeat(MEGABYTE / 3)).as_bytes())?;
    assert_eq!(form.get("scope")?.map(str::len), Some(MEGABYTE / 3));
    Ok(())
}

#[test]
fn truncated_percent_escapes_are_bad_percent_encoding() {
    let cases: [&[u8]; 7] =
        [b"%", b"a=%", b"a=%4", b"a=%%41", b"a=%4\xc3\xa9", b"a=%\xc3\xa9", b"a=%+1"];
    for case in cases {
        assert_eq!(Form::parse(case), Err(FormError::BadPercentEncoding), "{case:?}");
    }
    assert_eq!(decode(&b"%".repeat(MEGABYTE)), Err(FormError::BadPercentEncoding));
}

#[test]
fn invalid_utf8_is_not_utf8() {
    let cases: [&[u8]; 8] = [
        b"a=\xff",
        b"\xff=a",
        b"a=%ff",
        b"a=%C3",          // truncated two-byte sequence
        b"a=%C0%AF",       // overlong '/'
        b"a=%ED%A0%80",    // UTF-16 surrogate
        b"a=%F4%90%80%80", // above U+10FFFF
        b"a=%E2%82+",      // a '+' inside a sequence
    ];
    for case in cases {
        assert_eq!(Form::parse(case), Err(FormError::NotUtf8), "{case:?}");
    }
    assert_eq!(Form::parse(&vec![0xff; MEGABYTE]), Err(FormError::NotUtf8));
    assert_eq!(decode(&vec![0xff; MEGABYTE]), Err(FormError::NotUtf8));
}

#[test]
fn huge_runs_of_separators() -> Result<(), FormError> {
    // Empty parts are skipped, however many.
    assert_eq!(Form::parse(&vec![b'&'; MEGABYTE])?, Form::default());
    // One part: an empty name whose value is the other '='s.
    let equals = Form::parse(&vec![b'='; MEGABYTE])?;
    assert_eq!(equals.get("")?.map(str::len), Some(MEGABYTE - 1));
    // '+' is a space.
    assert_eq!(decode(&vec![b'+'; MEGABYTE])?, " ".repeat(MEGABYTE));
    // The parameter limit is reached before the rest is looked at.
    let mut many = "a=1&".repeat(MAX_PARAMS).into_bytes();
    many.extend_from_slice(b"b=%zz");
    assert_eq!(Form::parse(&many), Err(FormError::TooMany));
    assert_eq!(Form::parse("x&".repeat(MEGABYTE / 2).as_bytes()), Err(FormError::TooMany));
    assert!(Form::parse("x&".repeat(MAX_PARAMS).as_bytes()).is_ok());
    Ok(())
}

#[test]
fn repetition_is_found_through_encodings() -> Result<(), FormError> {
    let form = Form::parse(b"client_id=a&%63lient_id=b&client%5Fid=c")?;
    assert_eq!(form.get("client_id"), Err(FormError::Repeated("client_id".into())));
    let form = Form::parse(b"scope&scope=openid")?;
    assert_eq!(form.get("scope"), Err(FormError::Repeated("scope".into())));
    let form = Form::parse(b"a=%00&b=%00%00")?;
    assert_eq!(form.get("a")?, Some("\0"));
    assert_eq!(form.get("b")?, Some("\0\0"));
    Ok(())
}

// ---- basic ------------------------------------------------------------------

fn basic(raw: &[u8]) -> Vec<u8> {
    format!("Basic {}", Base64::encode_string(raw)).into_bytes()
}

fn assert_invalid_client(value: &[u8]) {
    match parse_basic(value) {
        Ok(creds) => panic!("accepted {:?}", creds.client_id),
        Err(error) => assert_eq!(error, OAuthError::invalid_client()),
    }
}

#[test]
fn a_megabyte_of_basic_is_refused() {
    let mut header = b"Basic ".to_vec();
    header.extend(std::iter::repeat_n(b'A', MEGABYTE));
    assert_invalid_client(&header);
    assert_invalid_client(&basic(&[b'a'; MEGABYTE]));
    assert_invalid_client(&vec![b' '; MEGABYTE]);
}

#[test]
fn basic_at_the_length_limit() -> Result<(), OAuthError> {
    // "Basic ", base64 of id:secret and trailing spaces (which are trimmed), exactly
    // MAX_AUTHORIZATION_LEN bytes long.
    let raw_len = (MAX_AUTHORIZATION_LEN - "Basic ".len()) / 4 * 3;
    let mut raw = b"id:".to_vec();
    raw.resize(raw_len, b's');
    let mut header = basic(&raw);
    header.resize(MAX_AUTHORIZATION_LEN, b' ');
    let creds = parse_basic(&header)?;
    assert_eq!((creds.client_id.as_str(), creds.secret.expose().len()), ("id", raw_len - 3));
    let mut over = header;
    over.push(b' ');
    assert_invalid_client(&over);
    Ok(())
}

#[test]
fn malformed_basic_values_are_invalid_client() {
    let cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        b" ".to_vec(),
        b"Basic ".to_vec(),
        b"Basic      ".to_vec(),
        b"Basic\tYTpi".to_vec(),
        b"Basic\xff YTpi".to_vec(),
        b"Basic YTpi\xff".to_vec(),
        vec![0xff; 4096],
        b"Basic ====".to_vec(),
        b"Basic YTpi=".to_vec(),
        b"Basic YT pi".to_vec(),
        b"Basic YTpi\0".to_vec(),
        b"Digest YTpi".to_vec(),
        basic(b""),
        basic(b":"),
        basic(b":secret"),
        basic(b"%:secret"),
        basic(b"id:%2"),
        basic(b"\xff\xff:\xff"),
        basic(b"id:%ff"),
        basic(b"%C0%AF:x"),
        basic(&[0xff; 3000]),
    ];
    for case in cases {
        assert_invalid_client(&case);
    }
}

#[test]
fn basic_splits_at_the_first_colon_and_decodes_both_halves() -> Result<(), OAuthError> {
    let creds = parse_basic(&basic(b"a:b:c"))?;
    assert_eq!((creds.client_id.as_str(), creds.secret.expose()), ("a", "b:c"));
    assert_eq!(creds.method, AuthMethod::ClientSecretBasic);
    let creds = parse_basic(&basic(b"%3A%00:+%25"))?;
    assert_eq!((creds.client_id.as_str(), creds.secret.expose()), (":\0", " %"));
    Ok(())
}

// ---- assertions and access tokens --------------------------------------------

const ISSUER: &str = "https://issuer.test";
const NOW: i64 = 1_700_000_000;
const USERNAME: &str = "fuzz-svc";

/// Like the fuzz target's fixture: a service user with an ES256 client key
/// `fuzz-es256`, an expired one, one whose stored JWK does not parse and one whose
/// point is not on the curve; a key ring; a stopped clock.
struct Fixture {
    issuer: Issuer,
    ring: Arc<KeyRing>,
    key: SigningKey,
    expired: SigningKey,
    now: OffsetDateTime,
    clock: Arc<ManualClock>,
}

async fn fixture() -> Result<Fixture, Box<dyn std::error::Error>> {
    let now = OffsetDateTime::from_unix_timestamp(NOW)?;
    let store = Arc::new(MemoryStore::new());
    let manager = KeyManager::new(store.clone(), MasterKey::generate()?, RotationPolicy::default());
    manager.refresh(now).await?;
    let user = ServiceUser::new(Username::new(USERNAME)?, now)?;
    store.create_service_user(&user).await?;
    let owner = KeyOwner::ServiceUser(user.id.clone());
    let (key, _) = SigningKey::generate(SigningAlgorithm::Es256)?;
    let (expired, _) = SigningKey::generate(SigningAlgorithm::Es256)?;
    for (kid, public_jwk, expires_at) in [
        ("fuzz-es256", key.public_jwk().to_string(), None),
        ("fuzz-expired", expired.public_jwk().to_string(), Some(now - Duration::seconds(1))),
        ("fuzz-badjwk", "not a JWK".to_owned(), None),
        ("fuzz-badpoint", r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}"#.to_owned(), None),
    ] {
        let record = ClientKey {
            key_id: kid.to_owned(),
            owner: owner.clone(),
            algorithm: SigningAlgorithm::Es256,
            public_jwk,
            created_at: now - Duration::days(1),
            expires_at,
        };
        store.add_client_key(&record).await?;
    }
    let ring = manager.ring();
    let clock = Arc::new(ManualClock::new(now));
    let issuer = Issuer::new(store, TokenMinter::new(ISSUER).with_keys(ring.clone()))
        .with_clock(clock.clone());
    Ok(Fixture { issuer, ring, key, expired, now, clock })
}

fn b64(data: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(data)
}

fn signed(
    key: &SigningKey,
    header: &str,
    claims: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let signature = key.sign(input.as_bytes())?;
    Ok(format!("{input}.{}", b64(&signature)))
}

fn claims(exp: &str) -> String {
    format!(r#"{{"iss":"{USERNAME}","sub":"{USERNAME}","aud":"{ISSUER}","exp":{exp},"iat":{NOW}}}"#)
}

const ES256_HEADER: &str = r#"{"alg":"ES256","kid":"fuzz-es256"}"#;

impl Fixture {
    /// Runs `token` through every path the `assertion` target covers, expecting it
    /// refused, and returns the grant's description of why.
    async fn refused(&self, token: &str) -> Result<String, Box<dyn std::error::Error>> {
        assert!(self.ring.key_set().verify(token, ISSUER, self.now).is_err());
        assert!(self.issuer.validate_token(token).await?.is_none());
        for client_id in [None, Some(USERNAME)] {
            let request = ClientCredentialsRequest {
                credentials: ClientCredentials::assertion(client_id, token),
                scope: None,
            };
            let error = self.issuer.client_credentials(request).await.expect_err("refused");
            assert_eq!(error, OAuthError::invalid_client());
        }
        let error = self.issuer.jwt_bearer(None, token, None).await.expect_err("refused");
        assert_eq!(error.code(), ErrorCode::InvalidGrant);
        Ok(error.description().to_owned())
    }
}

const MALFORMED: &str = "the assertion is malformed";
const ALGORITHM: &str = "the assertion's algorithm is not accepted";
const KEY: &str = "the assertion's key is unknown, removed or expired";
const SIGNATURE: &str = "the assertion's signature does not verify";
const TIME: &str = "the assertion has expired or is not yet valid";
const TOO_LONG: &str = "the assertion is valid for too long";
const REPLAY: &str = "the assertion was used before";

const HIGH_S: &str = "the assertion's ECDSA signature is not canonical (high s)";
const NO_JTI: &str = "the assertion has no jti";

/// `claims(exp)` with a `jti`.
fn claims_with_jti(exp: &str, jti: &str) -> String {
    claims(exp).replace('}', &format!(r#","jti":"{jti}"}}"#))
}

/// Authenticates with `token` as a client assertion.
async fn accepted(f: &Fixture, token: &str) -> TestResult {
    let request = ClientCredentialsRequest {
        credentials: ClientCredentials::assertion(Some(USERNAME), token),
        scope: None,
    };
    assert_eq!(f.issuer.client_credentials(request).await?.token_type, "Bearer");
    Ok(())
}

/// Authenticates with `token` as a client assertion, then uses it as a grant.
async fn accepted_both_ways(f: &Fixture, token: &str) -> TestResult {
    accepted(f, token).await?;
    assert_eq!(f.issuer.jwt_bearer(None, token, None).await?.token_type, "Bearer");
    Ok(())
}

#[tokio::test]
async fn a_signed_assertion_with_a_jti_is_accepted_once() -> TestResult {
    // The control for the refusals below: the fixture does accept a good assertion.
    let f = fixture().await?;
    let token = signed(&f.key, ES256_HEADER, &claims_with_jti(&(NOW + 600).to_string(), "a1"))?;
    let request = ClientCredentialsRequest {
        credentials: ClientCredentials::assertion(Some(USERNAME), &token),
        scope: None,
    };
    assert_eq!(f.issuer.client_credentials(request).await?.token_type, "Bearer");
    assert_eq!(f.refused(&token).await?, REPLAY);
    // Another encoding of the same claims (a re-signed assertion, a reordered
    // header) is the same jti: still a replay.
    let again = signed(
        &f.key,
        r#"{"kid":"fuzz-es256","alg":"ES256"}"#,
        &claims_with_jti(&(NOW + 600).to_string(), "a1"),
    )?;
    assert_ne!(again, token);
    assert_eq!(f.refused(&again).await?, REPLAY);
    Ok(())
}

#[tokio::test]
async fn a_signed_assertion_without_jti_is_accepted_until_it_expires() -> TestResult {
    let f = fixture().await?;
    let token = signed(&f.key, ES256_HEADER, &claims(&(NOW + 600).to_string()))?;
    // The same bytes, as ZITADEL's clients send them: every use is accepted.
    accepted_both_ways(&f, &token).await?;
    accepted_both_ways(&f, &token).await?;
    // At its expiry it is refused like any expired assertion.
    f.clock.advance(Duration::seconds(600));
    let error = f.issuer.jwt_bearer(None, &token, None).await.expect_err("expired");
    assert_eq!(error.description(), TIME);
    Ok(())
}

#[tokio::test]
async fn a_policy_requiring_jti_refuses_assertions_without_one() -> TestResult {
    let mut f = fixture().await?;
    f.issuer = f.issuer.clone().with_assertion_policy(AssertionPolicy { require_jti: true });
    let token = signed(&f.key, ES256_HEADER, &claims(&(NOW + 600).to_string()))?;
    assert_eq!(f.refused(&token).await?, NO_JTI);
    let token = signed(&f.key, ES256_HEADER, &claims_with_jti(&(NOW + 600).to_string(), ""))?;
    assert_eq!(f.refused(&token).await?, NO_JTI, "an empty jti is none");
    let token = signed(&f.key, ES256_HEADER, &claims_with_jti(&(NOW + 600).to_string(), "b"))?;
    accepted(&f, &token).await?;
    assert_eq!(f.refused(&token).await?, REPLAY);
    Ok(())
}

#[tokio::test]
async fn a_high_s_es256_assertion_is_refused() -> TestResult {
    let f = fixture().await?;
    for jti in ["", "c1"] {
        let claims = if jti.is_empty() {
            claims(&(NOW + 600).to_string())
        } else {
            claims_with_jti(&(NOW + 600).to_string(), jti)
        };
        let token = signed(&f.key, ES256_HEADER, &claims)?;
        let (input, signature) = token.rsplit_once('.').ok_or("not a JWS")?;
        let mut twin = Base64UrlUnpadded::decode_vec(signature)?;
        assert!(tessera_mint::ecdsa::is_low_s(&twin), "the minter signs with a low s");
        tessera_mint::ecdsa::negate_s(&mut twin);
        let twin = format!("{input}.{}", b64(&twin));
        // The twin's signature verifies, but it is refused before any replay record.
        assert_eq!(f.refused(&twin).await?, HIGH_S);
        accepted(&f, &token).await?;
        if !jti.is_empty() {
            assert_eq!(f.refused(&twin).await?, HIGH_S);
            assert_eq!(f.refused(&token).await?, REPLAY);
        }
    }
    Ok(())
}

#[tokio::test]
async fn jwt_with_a_huge_header_is_malformed() -> TestResult {
    let f = fixture().await?;
    let kid = "k".repeat(MEGABYTE);
    let header = format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{kid}"}}"#);
    let token =
        format!("{}.{}.{}", b64(header.as_bytes()), b64(claims("0").as_bytes()), b64(&[0; 64]));
    assert!(token.len() > MAX_TOKEN_LEN);
    assert_eq!(f.refused(&token).await?, MALFORMED);
    // Under the length limit, an unknown kid of any size is an unknown key.
    let header = format!(r#"{{"alg":"ES256","kid":"{}"}}"#, "k".repeat(4000));
    let token = format!("{}.{}.{}", b64(header.as_bytes()), b64(b"{}"), b64(&[0; 64]));
    assert!(token.len() <= MAX_TOKEN_LEN);
    assert_eq!(f.refused(&token).await?, KEY);
    Ok(())
}

#[tokio::test]
async fn deeply_nested_json_is_malformed() -> TestResult {
    let f = fixture().await?;
    let header = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let token = format!("{}.{}.{}", b64(header.as_bytes()), b64(b"{}"), b64(&[0; 64]));
    assert!(jsonwebtoken::decode_header(&token).is_err());
    assert_eq!(f.refused(&token).await?, MALFORMED);
    let nested = format!(
        r#"{{"alg":"ES256","kid":"fuzz-es256","x":{}1{}}}"#,
        "[".repeat(2000),
        "]".repeat(2000)
    );
    let token = format!("{}.{}.{}", b64(nested.as_bytes()), b64(b"{}"), b64(&[0; 64]));
    assert_eq!(f.refused(&token).await?, MALFORMED);
    Ok(())
}

#[tokio::test]
async fn malformed_compact_serializations() -> TestResult {
    let f = fixture().await?;
    let header = b64(ES256_HEADER.as_bytes());
    let cases = [
        String::new(),
        ".".to_owned(),
        "..".to_owned(),
        "...".to_owned(),
        header.clone(),
        format!("{header}."),
        format!("{header}.e30.AAAA.AAAA"),
        format!("{header}=.e30.AAAA"),
        format!("{header}.e30.!!!!"),
        format!("{}.e30.AAAA", "\u{ff}".repeat(100)),
        format!("{}.e30.AAAA", b64(&[0xff; 40])),
        format!("{}.e30.AAAA", b64(b"null")),
        format!("{}.e30.AAAA", b64(br#"{"alg":"ES256","kid":"fuzz-es256","kid":"x"}"#)),
        ".".repeat(MAX_TOKEN_LEN),
        "\0".repeat(MEGABYTE),
    ];
    for token in cases {
        let shown = &token[..token.len().min(80)];
        assert_eq!(f.refused(&token).await?, MALFORMED, "{shown:?}");
    }
    // A well-formed header and key reach the signature check, which then fails.
    for token in [format!("{header}.."), format!("{header}.e30.AAAA"), format!("{header}.e30.")] {
        assert_eq!(f.refused(&token).await?, SIGNATURE, "{token:?}");
    }
    Ok(())
}

#[tokio::test]
async fn algorithm_confusion_is_refused() -> TestResult {
    let f = fixture().await?;
    let body = b64(claims(&(NOW + 600).to_string()).as_bytes());
    for alg in ["none", "HS256", "RS256", "EdDSA", "PS256", "ES384", "es256"] {
        let header = format!(r#"{{"alg":"{alg}","kid":"fuzz-es256"}}"#);
        let token = format!("{}.{body}.{}", b64(header.as_bytes()), b64(b"secret"));
        let description = f.refused(&token).await?;
        assert!(description == ALGORITHM || description == MALFORMED, "{alg}: {description}");
    }
    Ok(())
}

#[tokio::test]
async fn keys_that_cannot_verify_are_refused() -> TestResult {
    let f = fixture().await?;
    let exp = (NOW + 600).to_string();
    let no_kid = signed(&f.key, r#"{"alg":"ES256"}"#, &claims(&exp))?;
    assert_eq!(f.refused(&no_kid).await?, KEY);
    let expired = signed(&f.expired, r#"{"alg":"ES256","kid":"fuzz-expired"}"#, &claims(&exp))?;
    assert_eq!(f.refused(&expired).await?, KEY);
    let bad_jwk = signed(&f.key, r#"{"alg":"ES256","kid":"fuzz-badjwk"}"#, &claims(&exp))?;
    assert_eq!(f.refused(&bad_jwk).await?, KEY);
    // A JWK that parses but holds no usable point verifies nothing.
    let bad_point = signed(&f.key, r#"{"alg":"ES256","kid":"fuzz-badpoint"}"#, &claims(&exp))?;
    assert_eq!(f.refused(&bad_point).await?, SIGNATURE);
    let wrong_key = signed(&f.expired, ES256_HEADER, &claims(&exp))?;
    assert_eq!(f.refused(&wrong_key).await?, SIGNATURE);
    Ok(())
}

#[tokio::test]
async fn extreme_time_claims_are_refused() -> TestResult {
    let f = fixture().await?;
    for (exp, expected) in [
        (i64::MAX.to_string(), TOO_LONG),
        (i64::MIN.to_string(), TIME),
        ("0".to_owned(), TIME),
        (NOW.to_string(), TIME),
        ((NOW + 3600 + 61).to_string(), TOO_LONG),
        ("null".to_owned(), TIME),
        ("1e308".to_owned(), MALFORMED),
        ("99999999999999999999999".to_owned(), MALFORMED),
        ("\"1700000600\"".to_owned(), MALFORMED),
    ] {
        let token = signed(&f.key, ES256_HEADER, &claims(&exp))?;
        assert_eq!(f.refused(&token).await?, expected, "exp {exp}");
    }
    let future_iat = format!(
        r#"{{"iss":"{USERNAME}","sub":"{USERNAME}","aud":"{ISSUER}","exp":{},"iat":{}}}"#,
        NOW + 600,
        i64::MAX
    );
    assert_eq!(f.refused(&signed(&f.key, ES256_HEADER, &future_iat)?).await?, TIME);
    Ok(())
}

#[tokio::test]
async fn ring_signed_tokens_with_hostile_claims_are_not_active() -> TestResult {
    let f = fixture().await?;
    let set = f.ring.key_set();
    let key = set.signing_key(f.now).ok_or("the ring has no signing key")?;
    let header = format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{}"}}"#, key.kid());
    for claims in [
        "{}".to_owned(),
        "[]".to_owned(),
        format!(
            r#"{{"iss":"{ISSUER}","sub":"1","aud":[],"exp":{},"iat":0,"nbf":{},"jti":"j","client_id":"c","scope":"openid"}}"#,
            i64::MIN,
            i64::MAX
        ),
        format!(
            r#"{{"iss":"{ISSUER}","sub":"{}","aud":[],"exp":{},"iat":0,"nbf":0,"jti":"j","client_id":"c","scope":"openid"}}"#,
            "x".repeat(5000),
            i64::MAX
        ),
        format!(
            r#"{{"iss":"{ISSUER}","sub":"1","aud":[],"exp":{},"iat":0,"nbf":0,"jti":"{}","client_id":"c","scope":"  "}}"#,
            i64::MAX,
            "\u{ff}"
        ),
    ] {
        let token = signed(key, &header, &claims)?;
        assert!(f.issuer.validate_token(&token).await?.is_none(), "{claims}");
    }
    Ok(())
}
