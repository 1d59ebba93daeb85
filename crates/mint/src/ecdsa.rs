//! Canonical (low-`s`) ECDSA P-256 signatures.
//!
//! An ECDSA signature `(r, s)` verifies as well as `(r, n − s)`, so a signature can
//! be altered without the key. Tessera signs with the low half (`s ≤ n/2`) and
//! refuses the high half on client assertions, so that each signed message has one
//! accepted encoding.

use base64ct::{Base64UrlUnpadded, Encoding};

/// The order `n` of the P-256 group, big-endian.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `⌊n / 2⌋`, big-endian: the largest canonical `s`.
const HALF_N: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

/// Whether a JWS ES256 signature (`r ‖ s`, 32 bytes each) has `s ≤ n/2`. Anything
/// that is not 64 bytes long is not canonical.
pub fn is_low_s(signature: &[u8]) -> bool {
    match signature.get(32..) {
        Some(s) if signature.len() == 64 => s <= &HALF_N[..],
        _ => false,
    }
}

/// Replaces a high `s` of a JWS ES256 signature (`r ‖ s`) by `n − s`, which
/// verifies for the same message and key; a low `s`, or a signature that is not 64
/// bytes long, is left as it is.
pub fn normalize_s(signature: &mut [u8]) {
    if signature.len() == 64 && !is_low_s(signature) {
        negate_s(signature);
    }
}

/// Replaces `s` of a JWS ES256 signature (`r ‖ s`) by `n − s` whatever its half: the
/// other signature of the same message under the same key. A signature that is not
/// 64 bytes long is left as it is.
pub fn negate_s(signature: &mut [u8]) {
    let Some(s) = signature.get_mut(32..64) else { return };
    let mut borrow = 0u16;
    for (i, byte) in s.iter_mut().enumerate().rev() {
        let difference = u16::from(N[i]).wrapping_sub(u16::from(*byte)).wrapping_sub(borrow);
        *byte = (difference & 0xff) as u8;
        borrow = (difference >> 8) & 1;
    }
}

/// Whether the signature of the compact ES256 JWS `token` is canonical (low `s`);
/// `false` when it is not a compact JWS with a 64-byte base64url signature.
pub fn jws_has_low_s(token: &str) -> bool {
    token
        .rsplit_once('.')
        .and_then(|(_, signature)| Base64UrlUnpadded::decode_vec(signature).ok())
        .is_some_and(|signature| is_low_s(&signature))
}

/// The compact ES256 JWS `token` with its signature made canonical (see
/// [`normalize_s`]); `None` when `token` is not a compact JWS with a base64url
/// signature. For clients whose JOSE library signs with either half: their
/// assertions are refused with a high `s`.
///
/// ```
/// # let token = "e30.e30.AAAA";
/// let canonical = tessera_mint::ecdsa::canonical_jws(token);
/// # let _ = canonical;
/// ```
pub fn canonical_jws(token: &str) -> Option<String> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let mut bytes = Base64UrlUnpadded::decode_vec(signature).ok()?;
    normalize_s(&mut bytes);
    Some(format!("{signing_input}.{}", Base64UrlUnpadded::encode_string(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n − (n − s) = s` for a few values of `s` above and at the boundary.
    #[test]
    fn high_s_becomes_its_low_twin() {
        for s in [N, HALF_N, [0xff; 32]] {
            let mut signature = [0u8; 64];
            signature[32..].copy_from_slice(&s);
            let was_low = is_low_s(&signature);
            normalize_s(&mut signature);
            assert!(is_low_s(&signature) || s > N, "{s:x?}");
            if was_low {
                assert_eq!(&signature[32..], &s[..], "a low s is kept");
            }
        }
        // s = n − 1 becomes 1.
        let mut signature = [0u8; 64];
        signature[32..].copy_from_slice(&N);
        signature[63] -= 1;
        normalize_s(&mut signature);
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(&signature[32..], &one[..]);
    }

    #[test]
    fn half_n_is_the_largest_low_s() {
        let mut signature = [0u8; 64];
        signature[32..].copy_from_slice(&HALF_N);
        assert!(is_low_s(&signature));
        signature[63] += 1;
        assert!(!is_low_s(&signature));
        assert!(!is_low_s(&signature[..63]), "a short signature is not canonical");
    }
}
