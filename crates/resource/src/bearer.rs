//! The bearer token of a request (RFC 6750 §2.1).

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::error::{AuthError, Rejection};

/// The token of the request's `Authorization: Bearer` header. The scheme is
/// matched without regard to case (RFC 7235 §2.1); a header of another scheme counts
/// as no token; a repeated header is `invalid_request`; an empty or non-ASCII token
/// is `invalid_token`.
pub(crate) fn token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::MissingToken)?;
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest("the Authorization header is repeated"));
    }
    let value = value.to_str().map_err(|_| Rejection::Malformed)?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingToken);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Err(Rejection::Malformed.into());
    }
    Ok(token)
}

/// Whether `token` has the syntax of RFC 6750 §2.1's `b64token`:
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub(crate) fn is_b64token(token: &str) -> bool {
    let bytes = token.as_bytes();
    let body = bytes.iter().rposition(|&b| b != b'=').map_or(0, |last| last + 1);
    body > 0 && bytes[..body].iter().all(|&b| B64TOKEN[usize::from(b)])
}

/// The characters of a `b64token` before its `=` padding.
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(value).expect("header value"));
        }
        headers
    }

    #[test]
    fn the_bearer_token_is_read_whatever_the_scheme_case() {
        for value in ["Bearer abc", "bearer abc", "BEARER   abc", "Bearer abc "] {
            assert_eq!(token(&headers(&[value])), Ok("abc"), "{value}");
        }
    }

    #[test]
    fn missing_repeated_and_empty_tokens_are_told_apart() {
        assert_eq!(token(&headers(&[])), Err(AuthError::MissingToken));
        assert_eq!(token(&headers(&["Basic YTpi"])), Err(AuthError::MissingToken));
        assert_eq!(token(&headers(&["Bearerabc"])), Err(AuthError::MissingToken));
        assert!(matches!(
            token(&headers(&["Bearer a", "Bearer b"])),
            Err(AuthError::InvalidRequest(_))
        ));
        for empty in ["Bearer", "Bearer ", "bearer    "] {
            assert_eq!(
                token(&headers(&[empty])),
                Err(AuthError::InvalidToken(Rejection::Malformed)),
                "{empty:?}"
            );
        }
        let mut opaque = HeaderMap::new();
        opaque.insert(AUTHORIZATION, HeaderValue::from_bytes(b"Bearer \xff").expect("bytes"));
        assert_eq!(token(&opaque), Err(AuthError::InvalidToken(Rejection::Malformed)));
    }

    #[test]
    fn b64token_syntax() {
        for good in ["abc", "a.b.c", "A-_~+/9", "abc==", "x="] {
            assert!(is_b64token(good), "{good}");
        }
        for bad in ["", "=", "a b", "a=b", "a\"b", "a,b", "é"] {
            assert!(!is_b64token(bad), "{bad}");
        }
    }
}
