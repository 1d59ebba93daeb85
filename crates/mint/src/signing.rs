//! Signing keys: generation, parsing (once), signing, and their public JWKs.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair, RsaPublicKeyComponents,
};
use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::json;
use tessera_store::{RandomError, SigningAlgorithm, random_bytes};
use zeroize::Zeroizing;

use crate::KeyError;

/// A private signing key, parsed once and kept in memory for the life of the
/// process; the PKCS#8 document it came from is zeroed on drop.
pub struct SigningKey {
    kid: String,
    algorithm: SigningAlgorithm,
    pair: Pair,
    public_jwk: serde_json::Value,
    rng: SystemRandom,
}

enum Pair {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

impl SigningKey {
    /// A new key pair for `algorithm` with a random key id. RSA keys are 2048 bits.
    pub fn generate(algorithm: SigningAlgorithm) -> Result<(Self, Zeroizing<Vec<u8>>), KeyError> {
        let pkcs8 = Zeroizing::new(
            match algorithm {
                SigningAlgorithm::Rs256 => RsaKeyPair::generate(KeySize::Rsa2048)
                    .and_then(|k| k.as_der())
                    .map(|d| d.as_ref().to_vec()),
                SigningAlgorithm::EdDsa => Ed25519KeyPair::generate()
                    .and_then(|k| k.to_pkcs8())
                    .map(|d| d.as_ref().to_vec()),
                _ => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .and_then(|k| k.to_pkcs8v1())
                    .map(|d| d.as_ref().to_vec()),
            }
            .map_err(|_| KeyError::Crypto("key generation failed"))?,
        );
        let kid = new_kid()?;
        let key = Self::from_pkcs8(kid, algorithm, &pkcs8)?;
        Ok((key, pkcs8))
    }

    /// Parses a PKCS#8 private key.
    pub fn from_pkcs8(
        kid: String,
        algorithm: SigningAlgorithm,
        pkcs8: &[u8],
    ) -> Result<Self, KeyError> {
        let invalid = |_| KeyError::InvalidKey { kid: kid.clone() };
        let pair = match algorithm {
            SigningAlgorithm::Rs256 => Pair::Rs256(RsaKeyPair::from_pkcs8(pkcs8).map_err(invalid)?),
            SigningAlgorithm::EdDsa => {
                Pair::EdDsa(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(invalid)?)
            }
            _ => Pair::Es256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(invalid)?,
            ),
        };
        let public_jwk = public_jwk(&kid, algorithm, &pair);
        Ok(Self { kid, algorithm, pair, public_jwk, rng: SystemRandom::new() })
    }

    /// The key id (`kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The public key as a JWK (RFC 7517) with `kid`, `alg` and `use: sig`.
    pub fn public_jwk(&self) -> &serde_json::Value {
        &self.public_jwk
    }

    /// Signs `message` (the JWS signing input) and returns the JWS signature bytes.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let failed = |_| KeyError::Crypto("signing failed");
        match &self.pair {
            Pair::Es256(pair) => {
                let mut signature =
                    pair.sign(&self.rng, message).map(|s| s.as_ref().to_vec()).map_err(failed)?;
                crate::ecdsa::normalize_s(&mut signature);
                Ok(signature)
            }
            Pair::EdDsa(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Pair::Rs256(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature).map_err(failed)?;
                Ok(signature)
            }
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A PKCS#8 private key in PEM form (`-----BEGIN PRIVATE KEY-----`), as key files
/// carry it. The text holds the key in clear and is zeroed on drop.
pub fn pkcs8_pem(der: &[u8]) -> Zeroizing<String> {
    pem("PRIVATE KEY", der)
}

/// The private key of a key file in the PEM form ZITADEL's key files use: an RSA key
/// as PKCS#1 (`-----BEGIN RSA PRIVATE KEY-----`), which every ZITADEL client loads;
/// other keys as PKCS#8 ([`pkcs8_pem`]). `None` when an RSA key's PKCS#8 document
/// does not parse. The text holds the key in clear and is zeroed on drop.
pub fn key_file_pem(algorithm: SigningAlgorithm, pkcs8: &[u8]) -> Option<Zeroizing<String>> {
    match algorithm {
        SigningAlgorithm::Rs256 => pkcs1_of_pkcs8(pkcs8).map(|der| pem("RSA PRIVATE KEY", der)),
        _ => Some(pkcs8_pem(pkcs8)),
    }
}

/// The `privateKey` of a PKCS#8 `PrivateKeyInfo` (RFC 5208 §5): for an RSA key, its
/// PKCS#1 `RSAPrivateKey` (RFC 8017 §A.1.2).
fn pkcs1_of_pkcs8(der: &[u8]) -> Option<&[u8]> {
    // PrivateKeyInfo ::= SEQUENCE { version INTEGER, privateKeyAlgorithm
    //   AlgorithmIdentifier, privateKey OCTET STRING, ... }
    let (info, _) = der_element(der, 0x30)?;
    let (_, rest) = der_element(info, 0x02)?;
    let (_, rest) = der_element(rest, 0x30)?;
    let (private_key, _) = der_element(rest, 0x04)?;
    Some(private_key)
}

/// Splits a DER element with `tag` off the front of `input`: its contents and what
/// follows it.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let (len, rest) = if len < 0x80 {
        (usize::from(len), rest)
    } else {
        let count = usize::from(len & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(count)?;
        (bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b)), rest)
    };
    rest.split_at_checked(len)
}

fn pem(label: &str, der: &[u8]) -> Zeroizing<String> {
    let encoded = Zeroizing::new(base64ct::Base64::encode_string(der));
    let mut pem = Zeroizing::new(String::with_capacity(encoded.len() + encoded.len() / 64 + 80));
    pem.push_str("-----BEGIN ");
    pem.push_str(label);
    pem.push_str("-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END ");
    pem.push_str(label);
    pem.push_str("-----\n");
    pem
}

/// A random key id: 128 bits, base64url, never starting with `-` (a command line
/// would take such an id for an option: `--key-id -q…`). One draw in 64 starts with
/// it and is drawn again.
fn new_kid() -> Result<String, RandomError> {
    loop {
        let kid = Base64UrlUnpadded::encode_string(&random_bytes::<16>()?);
        if !kid.starts_with('-') {
            return Ok(kid);
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

fn public_jwk(kid: &str, algorithm: SigningAlgorithm, pair: &Pair) -> serde_json::Value {
    let alg = algorithm.as_str();
    match pair {
        Pair::Es256(pair) => {
            // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
            let point = pair.public_key().as_ref();
            let (x, y) =
                point.get(1..).unwrap_or_default().split_at(32.min(point.len().saturating_sub(1)));
            json!({"kty": "EC", "use": "sig", "alg": alg, "kid": kid, "crv": "P-256", "x": b64(x), "y": b64(y)})
        }
        Pair::EdDsa(pair) => {
            json!({"kty": "OKP", "use": "sig", "alg": alg, "kid": kid, "crv": "Ed25519", "x": b64(pair.public_key().as_ref())})
        }
        Pair::Rs256(pair) => {
            let components = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
            json!({"kty": "RSA", "use": "sig", "alg": alg, "kid": kid, "n": b64(&components.n), "e": b64(&components.e)})
        }
    }
}

#[cfg(test)]
mod kid_tests {
    use super::new_kid;

    #[test]
    fn key_ids_never_start_with_a_dash() -> Result<(), tessera_store::RandomError> {
        for _ in 0..2_000 {
            let kid = new_kid()?;
            assert_eq!(kid.len(), 22);
            assert!(!kid.starts_with('-'), "{kid}");
        }
        Ok(())
    }
}
