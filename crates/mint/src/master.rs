//! The master key: AES-256-GCM encryption of private signing keys at rest.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64ct::{Base64, Encoding};
use tessera_store::random_bytes;
use zeroize::Zeroizing;

use crate::KeyError;

/// Refuses a key file that anyone but its owner may read or write.
fn check_permissions(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(|e| e.to_string())?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "its permissions {:o} let others read or change it; allow its owner only (chmod 600)",
                mode & 0o777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

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

    /// The master key kept in the file at `path`: read when the file exists, else
    /// generated and written there (mode 0600, created exclusively; when another
    /// process creates it at the same moment, its key is read instead). The second
    /// value says whether the file was created. A file that group or others may read
    /// is refused, as ssh refuses such private keys.
    pub fn from_file(path: &Path) -> Result<(Self, bool), KeyError> {
        let failed = |reason: String| KeyError::MasterKeyFile { path: path.to_owned(), reason };
        let read = || -> Result<Self, KeyError> {
            check_permissions(path).map_err(failed)?;
            let text =
                Zeroizing::new(std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?);
            Self::from_base64(&text).map_err(|e| failed(e.to_string()))
        };
        if path.exists() {
            return read().map(|key| (key, false));
        }
        let key = Self::generate()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(mut file) => {
                file.write_all(key.to_base64().as_bytes())
                    .and_then(|()| file.write_all(b"\n"))
                    .and_then(|()| file.sync_all())
                    .map_err(|e| failed(e.to_string()))?;
                Ok((key, true))
            }
            // Another process created it first: use its key once it is written.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let mut last = read();
                for _ in 0..50 {
                    if last.is_ok() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    last = read();
                }
                last.map(|key| (key, false))
            }
            Err(e) => Err(failed(e.to_string())),
        }
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
    fn the_key_file_is_created_once_with_owner_only_permissions()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("x.master.key");
        let (first, created) = MasterKey::from_file(&path)?;
        assert!(created);
        let (second, created) = MasterKey::from_file(&path)?;
        assert!(!created);
        assert_eq!(first.to_base64(), second.to_base64(), "reused, not replaced");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
            // Readable by the group or others: refused, and the error says how to fix it.
            for mode in [0o640, 0o604, 0o660] {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
                let error = MasterKey::from_file(&path).err().map(|e| e.to_string());
                assert!(error.as_deref().is_some_and(|e| e.contains("chmod 600")), "{mode:o}");
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400))?;
            assert!(MasterKey::from_file(&path).is_ok(), "owner read-only is fine");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        std::fs::write(&path, "garbage")?;
        let error = MasterKey::from_file(&path).err().map(|e| e.to_string());
        assert!(error.as_deref().is_some_and(|e| e.contains("32 bytes")), "{error:?}");
        Ok(())
    }

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
