//! The master key: AES-256-GCM encryption of private signing keys at rest.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64ct::{Base64, Encoding};
use tessera_store::random_bytes;
use zeroize::Zeroizing;

use crate::KeyError;

/// Format byte of a sealed key: version 1 is `0x01 || nonce (12) || ciphertext || tag (16)`.
const SEALED_V1: u8 = 1;

/// The 256-bit key that encrypts private signing keys before they reach the store.
/// Every server instance sharing a database must use the same master key.
/// `Debug` prints `[redacted]`; the key bytes are zeroed on drop.
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
    key: RandomizedNonceKey,
}

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> Result<Self, KeyError> {
        Self::from_bytes(Zeroizing::new(random_bytes::<32>()?))
    }

    /// A master key from its base64 form (32 bytes; standard alphabet, padded).
    pub fn from_base64(encoded: &str) -> Result<Self, KeyError> {
        let decoded =
            Zeroizing::new(Base64::decode_vec(encoded.trim()).map_err(|_| KeyError::BadMasterKey)?);
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| KeyError::BadMasterKey)?;
        Self::from_bytes(Zeroizing::new(bytes))
    }

    fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Result<Self, KeyError> {
        let key = RandomizedNonceKey::new(&AES_256_GCM, &bytes[..])
            .map_err(|_| KeyError::Crypto("AES-256-GCM key setup failed"))?;
        Ok(Self { bytes, key })
    }

    /// The key in base64, to write it to a key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(Base64::encode_string(&self.bytes[..]))
    }

    /// Encrypts `plaintext`, bound to `context` (the key id) as associated data.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| KeyError::Crypto("encryption failed"))?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(SEALED_V1);
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Decrypts what [`seal`](Self::seal) produced with the same `context`. A wrong
    /// master key, a different context or altered bytes all fail with
    /// [`KeyError::Unseal`].
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let unseal = || KeyError::Unseal { kid: context.to_owned() };
        let (version, rest) = sealed.split_first().ok_or_else(unseal)?;
        if *version != SEALED_V1 || rest.len() < NONCE_LEN {
            return Err(unseal());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unseal())?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| unseal())?
            .len();
        in_out.truncate(plaintext);
        Ok(in_out)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip() -> Result<(), KeyError> {
        let key = MasterKey::generate()?;
        let sealed = key.seal("kid-1", b"private key bytes")?;
        assert!(!sealed.windows(7).any(|w| w == b"private"), "plaintext visible");
        assert_eq!(key.open("kid-1", &sealed)?.as_slice(), b"private key bytes");
        Ok(())
    }

    #[test]
    fn wrong_key_context_or_tampering_fail_cleanly() -> Result<(), KeyError> {
        let key = MasterKey::generate()?;
        let other = MasterKey::generate()?;
        let sealed = key.seal("kid-1", b"secret")?;
        assert!(matches!(other.open("kid-1", &sealed), Err(KeyError::Unseal { .. })));
        assert!(matches!(key.open("kid-2", &sealed), Err(KeyError::Unseal { .. })));
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert!(matches!(key.open("kid-1", &tampered), Err(KeyError::Unseal { .. })));
        assert!(matches!(key.open("kid-1", &[]), Err(KeyError::Unseal { .. })));
        assert!(matches!(key.open("kid-1", &[1, 2, 3]), Err(KeyError::Unseal { .. })));
        Ok(())
    }

    #[test]
    fn base64_form() -> Result<(), KeyError> {
        let key = MasterKey::generate()?;
        let again = MasterKey::from_base64(&key.to_base64())?;
        assert_eq!(again.open("k", &key.seal("k", b"x")?)?.as_slice(), b"x");
        assert!(matches!(MasterKey::from_base64("c2hvcnQ="), Err(KeyError::BadMasterKey)));
        assert!(matches!(MasterKey::from_base64("not base64!"), Err(KeyError::BadMasterKey)));
        assert_eq!(format!("{key:?}"), "MasterKey([redacted])");
        Ok(())
    }
}
