//! The token response written directly instead of through serde: a measured fast
//! path (about a third of the response's instructions; criterion `response/token`).

use std::io::Write as _;

use crate::issuer::TokenResponse;

/// The body of a token response (RFC 6749 §5.1), written directly: `scope` is
/// omitted when empty, and the output is the same as serde_json's for the same
/// fields, in this order.
pub(crate) fn token_response_json(response: &TokenResponse) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(br#"{"access_token":"#);
    push_json_str(&mut out, response.access_token.expose());
    out.extend_from_slice(br#","token_type":"#);
    push_json_str(&mut out, response.token_type);
    out.extend_from_slice(br#","expires_in":"#);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{}", response.expires_in);
    if !response.scope.is_empty() {
        out.extend_from_slice(br#","scope":""#);
        for (i, scope) in response.scope.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            push_json_str_content(&mut out, scope.as_str());
        }
        out.push(b'"');
    }
    out.push(b'}');
    out
}

/// Whether `bytes` hold a `"`, a `\` or a control character, eight at a time.
fn needs_json_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Whether any byte of `v` is below `n` (exact for `n` up to 0x80).
    let any_below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH != 0;
    let any_equal = |v: u64, b: u8| any_below(v ^ (ONES * u64::from(b)), 1);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else { return true };
        let v = u64::from_ne_bytes(chunk);
        if any_below(v, 0x20) || any_equal(v, b'"') || any_equal(v, b'\\') {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Appends `s` as a JSON string.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_json_str_content(out, s);
    out.push(b'"');
}

/// Appends `s` escaped for the inside of a JSON string. Tokens and scopes never
/// need escaping (base64url, and RFC 6749 scope characters exclude `"`, `\` and
/// controls), so they are copied as they are; anything else is escaped by
/// serde_json.
fn push_json_str_content(out: &mut Vec<u8>, s: &str) {
    if !needs_json_escape(s.as_bytes()) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    let mut quoted = Vec::with_capacity(s.len() + 8);
    // Serializing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut quoted, s);
    out.extend_from_slice(quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use tessera_mint::{Grant, TokenMinter};
    use tessera_scope::ScopeSet;
    use tessera_store::RoleClaims;
    use tessera_store::{AccessTokenType, UserId, Username};
    use time::OffsetDateTime;

    #[derive(Serialize)]
    struct Expected<'a> {
        access_token: &'a str,
        token_type: &'a str,
        expires_in: u64,
        #[serde(skip_serializing_if = "str::is_empty")]
        scope: &'a str,
    }

    fn response(scope: &str) -> Result<TokenResponse, Box<dyn std::error::Error>> {
        let now = OffsetDateTime::now_utc();
        let grant = Grant {
            token_type: AccessTokenType::Opaque,
            user_id: UserId::generate()?,
            client_id: Username::new("svc")?,
            scopes: if scope.is_empty() { ScopeSet::default() } else { ScopeSet::parse(scope)? },
            audience: vec!["svc".into()],
            roles: RoleClaims::default(),
            resource_owner: None,
            issued_at: now,
            expires_at: now + time::Duration::hours(12),
        };
        let minted = TokenMinter::new("http://issuer").mint(&grant)?;
        Ok(TokenResponse {
            access_token: minted.token,
            token_type: "Bearer",
            expires_in: 43_199,
            scope: grant.scopes,
            jti: minted.jti,
            expires_at: minted.expires_at,
        })
    }

    #[test]
    fn token_responses_are_what_serde_json_writes() -> Result<(), Box<dyn std::error::Error>> {
        for scope in ["openid profile urn:zitadel:iam:org:project:id:p1:aud", "a", "", "x!#[]~"] {
            let response = response(scope)?;
            let scope = response.scope.to_string();
            let expected = serde_json::to_vec(&Expected {
                access_token: response.access_token.expose(),
                token_type: response.token_type,
                expires_in: response.expires_in,
                scope: &scope,
            })?;
            assert_eq!(
                String::from_utf8(token_response_json(&response))?,
                String::from_utf8(expected)?
            );
        }
        Ok(())
    }

    #[test]
    fn every_byte_at_every_position_is_checked() {
        for b in 0..=u8::MAX {
            let naive = b < 0x20 || b == b'"' || b == b'\\';
            for len in [1, 7, 8, 9, 16, 17] {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    assert_eq!(needs_json_escape(&bytes), naive, "byte {b:#x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn strings_that_need_escaping_are_escaped() -> Result<(), Box<dyn std::error::Error>> {
        for s in [
            "plain",
            "",
            "quote\"d",
            "back\\slash",
            "tab\tnew\nline\u{1}",
            "été ✓",
            "\u{7f}",
            "0123456789abcdef\u{1f}",
            "0123456789abcdef\"",
            "01234567\\",
            "\u{ff}\u{80}ÿÿÿÿÿÿÿÿ!#$",
        ] {
            let mut out = Vec::new();
            push_json_str(&mut out, s);
            assert_eq!(String::from_utf8(out)?, serde_json::to_string(s)?);
        }
        Ok(())
    }
}
