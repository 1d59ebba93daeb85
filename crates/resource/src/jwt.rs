//! Local verification of JWT access tokens: header checks, the algorithm
//! allow-list, the canonical ES256 form, the signature and the registered claims.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    VerificationAlgorithm,
};
use base64ct::{Base64UrlUnpadded, Encoding};
use serde::Deserialize;

use crate::error::Rejection;
use crate::principal::Claims;

/// A signature algorithm this crate verifies. `none` and the HMAC algorithms are
/// never accepted: a resource server holds no shared secret with the issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// ECDSA with P-256 and SHA-256 (Tessera's default), in the low-`s` form only.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (ZITADEL's, and Tessera's with `--compat zitadel`).
    Rs256,
    /// Ed25519.
    EdDsa,
}

impl JwtAlgorithm {
    /// Every algorithm: the default allow-list.
    pub const ALL: [JwtAlgorithm; 3] =
        [JwtAlgorithm::Es256, JwtAlgorithm::Rs256, JwtAlgorithm::EdDsa];

    /// The `alg` header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::Es256 => "ES256",
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::EdDsa => "EdDSA",
        }
    }

    /// The algorithm an `alg` header value names, if it is one of these.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    fn index(self) -> usize {
        match self {
            JwtAlgorithm::Es256 => 0,
            JwtAlgorithm::Rs256 => 1,
            JwtAlgorithm::EdDsa => 2,
        }
    }
}

/// The JOSE header members this crate reads.
#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    /// Extensions that must be understood (RFC 7515 §4.1.11); none is.
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// The JOSE header of `token` when it is a JWT: three dot-separated parts whose
/// first is base64url of a JSON object. `Ok(None)` for anything else (an opaque
/// token); an error for a JWT whose header is unusable.
pub(crate) fn header(token: &str) -> Result<Option<Header>, Rejection> {
    let mut parts = token.split('.');
    let (Some(first), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(None);
    };
    let Ok(json) = Base64UrlUnpadded::decode_vec(first) else { return Ok(None) };
    if json.first() != Some(&b'{') {
        return Ok(None);
    }
    serde_json::from_slice(&json).map(Some).map_err(|_| Rejection::Malformed)
}

/// What verification needs besides the key: the allow-list, the issuer, the
/// accepted audiences and the clock skew allowed.
pub(crate) struct Verifier {
    allowed: [bool; 3],
    issuer: String,
    audiences: Vec<String>,
    leeway_secs: i64,
}

impl Verifier {
    pub(crate) fn new(
        issuer: &str,
        audiences: &[String],
        algorithms: &[JwtAlgorithm],
        leeway_secs: i64,
    ) -> Self {
        let mut allowed = [false; 3];
        for alg in algorithms {
            allowed[alg.index()] = true;
        }
        Verifier { allowed, issuer: issuer.to_owned(), audiences: audiences.to_vec(), leeway_secs }
    }

    /// The allowed algorithm `header` names, after the checks that need no key:
    /// the algorithm, the type and no critical extensions.
    pub(crate) fn check_header(&self, header: &Header) -> Result<JwtAlgorithm, Rejection> {
        let alg = JwtAlgorithm::from_name(&header.alg)
            .filter(|a| self.allowed[a.index()])
            .ok_or(Rejection::Algorithm)?;
        if header.crit.is_some() {
            return Err(Rejection::Malformed);
        }
        let typ = header.typ.as_deref().ok_or(Rejection::Type)?;
        if !["at+jwt", "application/at+jwt", "JWT"].iter().any(|t| typ.eq_ignore_ascii_case(t)) {
            return Err(Rejection::Type);
        }
        Ok(alg)
    }

    /// Verifies `token`, whose header named `alg`, with `key` at `now` (unix
    /// seconds): the key's algorithm, the canonical ES256 form, the signature, then
    /// `iss`, `sub`, `aud`, `exp` and `nbf`.
    pub(crate) fn verify(
        &self,
        token: &str,
        alg: JwtAlgorithm,
        key: &PublicKey,
        now: i64,
    ) -> Result<Claims, Rejection> {
        if key.alg != alg {
            return Err(Rejection::Algorithm);
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(Rejection::Malformed)?;
        let (_, payload) = signing_input.split_once('.').ok_or(Rejection::Malformed)?;
        // RSA signatures of keys up to 8192 bits, the largest verified.
        let mut buffer = [0u8; 1024];
        let signature =
            Base64UrlUnpadded::decode(signature, &mut buffer).map_err(|_| Rejection::Malformed)?;
        if alg == JwtAlgorithm::Es256 && !is_low_s(signature) {
            return Err(Rejection::Signature);
        }
        key.key
            .verify_sig(signing_input.as_bytes(), signature)
            .map_err(|_| Rejection::Signature)?;
        let payload = Base64UrlUnpadded::decode_vec(payload).map_err(|_| Rejection::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| Rejection::Malformed)?;
        self.check_claims(&claims, now)?;
        Ok(claims)
    }

    /// RFC 9068 §4 and RFC 7519 §4.1: `iss` is the issuer, `sub` and `exp` are
    /// present, `exp` has not passed and `nbf` has come (each with the leeway), and
    /// `aud` holds an accepted audience.
    fn check_claims(&self, claims: &Claims, now: i64) -> Result<(), Rejection> {
        if claims.iss.as_deref() != Some(self.issuer.as_str()) {
            return Err(if claims.iss.is_none() {
                Rejection::MissingClaim
            } else {
                Rejection::Issuer
            });
        }
        let exp = claims.exp.ok_or(Rejection::MissingClaim)?;
        if claims.sub.is_none() {
            return Err(Rejection::MissingClaim);
        }
        if exp.saturating_add(self.leeway_secs) < now {
            return Err(Rejection::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf.saturating_sub(self.leeway_secs) > now) {
            return Err(Rejection::NotYetValid);
        }
        if !self.audiences.is_empty() && !claims.aud.iter().any(|a| self.audiences.contains(a)) {
            return Err(if claims.has_aud { Rejection::Audience } else { Rejection::MissingClaim });
        }
        Ok(())
    }
}

/// A published verification key, parsed once, and the one algorithm it verifies.
pub(crate) struct PublicKey {
    pub(crate) alg: JwtAlgorithm,
    key: ParsedPublicKey,
}

impl PublicKey {
    /// The key of a JWK: its `alg` when it states one (it must fit the key type),
    /// otherwise the algorithm its type implies (EC P-256 → ES256, RSA of at least
    /// 2048 bits → RS256, OKP Ed25519 → EdDSA). `None` for a key that is not for
    /// signatures, of another type, or unreadable.
    pub(crate) fn from_jwk(jwk: &serde_json::Value) -> Option<(String, PublicKey)> {
        let member = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
        let bytes = |name: &str| Base64UrlUnpadded::decode_vec(member(name)?).ok();
        let kid = member("kid")?.to_owned();
        if member("use").is_some_and(|u| u != "sig") {
            return None;
        }
        let (alg, algorithm, der): (_, &'static dyn VerificationAlgorithm, _) =
            match (member("kty")?, member("crv")) {
                ("EC", Some("P-256")) => {
                    let (x, y) = (bytes("x")?, bytes("y")?);
                    if x.len() != 32 || y.len() != 32 {
                        return None;
                    }
                    let point = [&[0x04][..], &x, &y].concat();
                    (JwtAlgorithm::Es256, &ECDSA_P256_SHA256_FIXED, point)
                }
                ("RSA", _) => {
                    let der = rsa_public_key_der(&bytes("n")?, &bytes("e")?);
                    (JwtAlgorithm::Rs256, &RSA_PKCS1_2048_8192_SHA256, der)
                }
                ("OKP", Some("Ed25519")) => (JwtAlgorithm::EdDsa, &ED25519, bytes("x")?),
                _ => return None,
            };
        if let Some(stated) = member("alg")
            && JwtAlgorithm::from_name(stated) != Some(alg)
        {
            return None;
        }
        let key = ParsedPublicKey::new(algorithm, der).ok()?;
        Some((kid, PublicKey { alg, key }))
    }
}

/// The DER of a PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER,
/// publicExponent INTEGER }` from the big-endian `n` and `e` of a JWK.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn length(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }
    fn integer(out: &mut Vec<u8>, value: &[u8]) {
        let value = &value[value.iter().take_while(|&&b| b == 0).count()..];
        let pad = value.first().is_none_or(|&b| b & 0x80 != 0);
        out.push(0x02);
        length(out, value.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(value);
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    integer(&mut body, n);
    integer(&mut body, e);
    let mut der = Vec::with_capacity(body.len() + 4);
    der.push(0x30);
    length(&mut der, body.len());
    der.extend_from_slice(&body);
    der
}

/// The order `n` of the P-256 group, big-endian.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `⌊n / 2⌋` of the P-256 group, big-endian: the largest canonical `s`.
const HALF_N: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

/// Whether an ES256 signature (`r ‖ s`, 64 bytes) has `s ≤ n/2`. An ECDSA
/// signature `(r, s)` verifies as well as `(r, n − s)`; the issuer signs with the
/// low half only, so the other is a token altered without the key, and is refused.
pub(crate) fn is_low_s(signature: &[u8]) -> bool {
    signature.len() == 64 && signature[32..] <= HALF_N[..]
}

/// [`is_low_s`] of the signature of the compact JWS `token`.
#[cfg(test)]
fn has_low_s(token: &str) -> bool {
    token
        .rsplit_once('.')
        .and_then(|(_, signature)| Base64UrlUnpadded::decode_vec(signature).ok())
        .is_some_and(|signature| is_low_s(&signature))
}

/// Rewrites the ES256 signature of the compact JWS `token` to its low-`s` form
/// (`s` → `n − s` when `s > n/2`), which verifies for the same message and key: the
/// issuer refuses client assertions with a high `s`, and signing libraries produce
/// either. A token without a 64-byte signature is left as it is.
pub(crate) fn normalize_s(token: &mut String) {
    let Some((signing_input, signature)) = token.rsplit_once('.') else { return };
    let mut bytes = [0u8; 64];
    if !matches!(Base64UrlUnpadded::decode(signature, &mut bytes), Ok(d) if d.len() == 64)
        || bytes[32..] <= HALF_N[..]
    {
        return;
    }
    let mut borrow = 0u16;
    for i in (0..32).rev() {
        let difference =
            u16::from(N[i]).wrapping_sub(u16::from(bytes[32 + i])).wrapping_sub(borrow);
        bytes[32 + i] = (difference & 0xff) as u8;
        borrow = (difference >> 8) & 1;
    }
    *token = format!("{signing_input}.{}", Base64UrlUnpadded::encode_string(&bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        Base64UrlUnpadded::encode_string(json.as_bytes())
    }

    fn token_with_s(s: [u8; 32]) -> String {
        let mut signature = [1u8; 64];
        signature[32..].copy_from_slice(&s);
        format!("e30.e30.{}", Base64UrlUnpadded::encode_string(&signature))
    }

    #[test]
    fn half_n_is_the_largest_low_s() {
        assert!(has_low_s(&token_with_s(HALF_N)));
        let mut above = HALF_N;
        above[31] += 1;
        assert!(!has_low_s(&token_with_s(above)));
        assert!(!has_low_s(&token_with_s([0xff; 32])));
        assert!(has_low_s(&token_with_s([0; 32])));
        assert!(!has_low_s("e30.e30.AAAA"), "a short signature is not canonical");
        assert!(!has_low_s("e30.e30.!!"));
    }

    #[test]
    fn a_high_s_becomes_its_low_twin() {
        let mut n_minus_one = N;
        n_minus_one[31] -= 1;
        let mut token = token_with_s(n_minus_one);
        assert!(!has_low_s(&token));
        normalize_s(&mut token);
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(token, token_with_s(one));
        let mut low = token_with_s(HALF_N);
        normalize_s(&mut low);
        assert_eq!(low, token_with_s(HALF_N), "a low s is kept");
    }

    #[test]
    fn jwts_are_told_from_opaque_tokens() {
        assert!(matches!(header("zs5yP0NPS-jGbR1LC4cbmbovGaGJWM9-1utMwFxSiFM"), Ok(None)));
        assert!(matches!(header("a.b"), Ok(None)));
        assert!(matches!(header("a.b.c.d"), Ok(None)));
        assert!(matches!(header("!!.b.c"), Ok(None)));
        let jwt = format!("{}.e30.sig", encode(r#"{"alg":"ES256","typ":"at+jwt","kid":"k"}"#));
        let parsed = header(&jwt).expect("a header").expect("a JWT");
        assert_eq!(parsed.kid.as_deref(), Some("k"));
        let broken = format!("{}.e30.sig", encode(r#"{"typ":"JWT"}"#));
        assert_eq!(header(&broken).err(), Some(Rejection::Malformed));
        let repeated = format!("{}.e30.sig", encode(r#"{"alg":"ES256","alg":"none"}"#));
        assert_eq!(header(&repeated).err(), Some(Rejection::Malformed));
    }

    #[test]
    fn the_header_checks_refuse_other_algorithms_types_and_extensions() {
        let verifier = Verifier::new("http://i", &[], &JwtAlgorithm::ALL, 60);
        let check = |json: &str| {
            let jwt = format!("{}.e30.sig", encode(json));
            verifier.check_header(&header(&jwt).expect("parses").expect("a JWT"))
        };
        assert_eq!(check(r#"{"alg":"ES256","typ":"at+jwt"}"#), Ok(JwtAlgorithm::Es256));
        assert_eq!(check(r#"{"alg":"RS256","typ":"JWT"}"#), Ok(JwtAlgorithm::Rs256));
        assert_eq!(check(r#"{"alg":"EdDSA","typ":"application/at+jwt"}"#), Ok(JwtAlgorithm::EdDsa));
        for alg in ["none", "HS256", "HS512", "ES384", "PS256", "es256"] {
            let json = format!(r#"{{"alg":"{alg}","typ":"at+jwt"}}"#);
            assert_eq!(check(&json), Err(Rejection::Algorithm), "{alg}");
        }
        assert_eq!(check(r#"{"alg":"ES256"}"#), Err(Rejection::Type));
        assert_eq!(check(r#"{"alg":"ES256","typ":"id_token+jwt"}"#), Err(Rejection::Type));
        assert_eq!(
            check(r#"{"alg":"ES256","typ":"JWT","crit":["b64"]}"#),
            Err(Rejection::Malformed)
        );
        let only_rsa = Verifier::new("http://i", &[], &[JwtAlgorithm::Rs256], 60);
        let jwt = format!("{}.e30.sig", encode(r#"{"alg":"ES256","typ":"JWT"}"#));
        let parsed = header(&jwt).expect("parses").expect("a JWT");
        assert_eq!(only_rsa.check_header(&parsed), Err(Rejection::Algorithm));
    }

    #[test]
    fn registered_claims_are_checked_with_the_leeway() {
        let verifier = Verifier::new("http://i", &["orders".into()], &JwtAlgorithm::ALL, 60);
        let check = |json: &str| {
            let claims: Claims = serde_json::from_str(json).expect("claims");
            verifier.check_claims(&claims, 1_000)
        };
        let ok = r#"{"iss":"http://i","sub":"s","aud":"orders","exp":1000,"nbf":1000}"#;
        assert_eq!(check(ok), Ok(()));
        assert_eq!(check(r#"{"iss":"http://i","sub":"s","aud":["x","orders"],"exp":940}"#), Ok(()));
        assert_eq!(
            check(r#"{"iss":"http://i","sub":"s","aud":"orders","exp":939}"#),
            Err(Rejection::Expired)
        );
        assert_eq!(
            check(r#"{"iss":"http://i","sub":"s","aud":"orders","exp":2000,"nbf":1061}"#),
            Err(Rejection::NotYetValid)
        );
        assert_eq!(
            check(r#"{"iss":"http://j","sub":"s","aud":"orders","exp":2000}"#),
            Err(Rejection::Issuer)
        );
        assert_eq!(
            check(r#"{"iss":"http://i","sub":"s","aud":"billing","exp":2000}"#),
            Err(Rejection::Audience)
        );
        for missing in [
            r#"{"sub":"s","aud":"orders","exp":2000}"#,
            r#"{"iss":"http://i","aud":"orders","exp":2000}"#,
            r#"{"iss":"http://i","sub":"s","aud":"orders"}"#,
            r#"{"iss":"http://i","sub":"s","exp":2000}"#,
        ] {
            assert_eq!(check(missing), Err(Rejection::MissingClaim), "{missing}");
        }
    }

    #[test]
    fn rsa_public_keys_are_encoded_as_pkcs1_der() {
        // n = 0x80 01 (a leading bit set: a zero byte is prepended), e = 65537.
        assert_eq!(
            rsa_public_key_der(&[0x80, 0x01], &[0x01, 0x00, 0x01]),
            [0x30, 0x0a, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x03, 0x01, 0x00, 0x01]
        );
        let long = rsa_public_key_der(&[0x7f; 256], &[0x03]);
        assert_eq!(long[..4], [0x30, 0x82, 0x01, 0x07]);
        assert_eq!(long[4..8], [0x02, 0x82, 0x01, 0x00]);
    }

    #[test]
    fn jwks_keys_need_a_kid_a_signing_use_and_a_fitting_alg() {
        let ec = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "k", "use": "sig", "alg": "ES256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let (kid, key) = PublicKey::from_jwk(&ec).expect("an EC key");
        assert_eq!((kid.as_str(), key.alg), ("k", JwtAlgorithm::Es256));
        let mut mismatched = ec.clone();
        mismatched["alg"] = "RS256".into();
        assert!(PublicKey::from_jwk(&mismatched).is_none());
        let mut hmac = ec.clone();
        hmac["kty"] = "oct".into();
        assert!(PublicKey::from_jwk(&hmac).is_none());
        let mut encryption = ec.clone();
        encryption["use"] = "enc".into();
        assert!(PublicKey::from_jwk(&encryption).is_none());
        let mut anonymous = ec;
        anonymous.as_object_mut().map(|o| o.remove("kid"));
        assert!(PublicKey::from_jwk(&anonymous).is_none());
    }
}
