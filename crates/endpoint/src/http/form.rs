//! Strict parsing of `application/x-www-form-urlencoded` bodies and of the
//! form-encoded parts of HTTP Basic credentials (RFC 6749 §2.3.1, appendix B).

// Public for the fuzz targets and benchmarks, through `internals`.
#![cfg_attr(not(feature = "internals"), allow(unreachable_pub))]

use std::borrow::Cow;
use std::ops::Range;

/// Why a form could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormError {
    /// A `%` not followed by two hexadecimal digits.
    #[error("malformed percent-encoding")]
    BadPercentEncoding,
    /// The decoded bytes are not UTF-8.
    #[error("form data is not valid UTF-8")]
    NotUtf8,
    /// A parameter that may appear only once appeared again (RFC 6749 §3.2).
    #[error("parameter {0} is repeated")]
    Repeated(String),
    /// More parameters than a request may carry.
    #[error("too many parameters")]
    TooMany,
}

/// The most parameters one form may hold.
pub const MAX_PARAMS: usize = 64;

/// A parsed form: name-value pairs in order.
///
/// Every decoded name and value lives in one text, the pairs are ranges of it: a form
/// costs two allocations, and one more per name or value that has escapes to decode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    text: String,
    pairs: Vec<(Range<usize>, Range<usize>)>,
}

impl Form {
    /// Parses a form body. Every name and value is percent-decoded strictly (`+` is a
    /// space) and must be UTF-8.
    pub fn parse(body: &[u8]) -> Result<Self, FormError> {
        let mut text = String::with_capacity(body.len());
        let mut pairs = Vec::new();
        for part in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            if pairs.len() == MAX_PARAMS {
                return Err(FormError::TooMany);
            }
            let (name, value) = match part.iter().position(|b| *b == b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &[][..]),
            };
            let mut push = |piece: &[u8]| {
                let start = text.len();
                text.push_str(&decode(piece)?);
                Ok::<_, FormError>(start..text.len())
            };
            let name = push(name)?;
            let value = push(value)?;
            pairs.push((name, value));
        }
        Ok(Self { text, pairs })
    }

    /// The value of parameter `name`. A parameter sent without a value counts as
    /// omitted (RFC 6749 §3.1); one sent twice is an error (RFC 6749 §3.2).
    pub fn get(&self, name: &str) -> Result<Option<&str>, FormError> {
        let mut found = None;
        for (n, v) in &self.pairs {
            if self.piece(n) == name {
                if found.is_some() {
                    return Err(FormError::Repeated(name.to_owned()));
                }
                found = Some(self.piece(v));
            }
        }
        Ok(found.filter(|v| !v.is_empty()))
    }

    /// Whether parameter `name` appears at all, even empty.
    pub fn contains(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| self.piece(n) == name)
    }

    fn piece(&self, range: &Range<usize>) -> &str {
        self.text.get(range.clone()).unwrap_or_default()
    }
}

/// Decodes one form-encoded component: `+` becomes a space and `%XX` its byte; the
/// result must be UTF-8. Runs of plain bytes are copied whole; a component with
/// nothing to decode is borrowed.
pub fn decode(input: &[u8]) -> Result<Cow<'_, str>, FormError> {
    let Some(first) = next_special(input) else {
        return std::str::from_utf8(input).map(Cow::Borrowed).map_err(|_| FormError::NotUtf8);
    };
    let mut out = Vec::with_capacity(input.len());
    out.extend_from_slice(&input[..first]);
    let mut rest = &input[first..];
    while let Some((&special, tail)) = rest.split_first() {
        rest = if special == b'+' {
            out.push(b' ');
            tail
        } else {
            match (tail.first().copied().and_then(hex), tail.get(1).copied().and_then(hex)) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(FormError::BadPercentEncoding),
            }
            tail.get(2..).unwrap_or_default()
        };
        let run = next_special(rest).unwrap_or(rest.len());
        out.extend_from_slice(&rest[..run]);
        rest = &rest[run..];
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| FormError::NotUtf8)
}

/// The position of the next `%` or `+`.
fn next_special(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| matches!(b, b'%' | b'+'))
}

const fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes() -> Result<(), FormError> {
        let form = Form::parse(b"grant_type=client_credentials&scope=openid+profile%20email&x")?;
        assert_eq!(form.get("grant_type")?, Some("client_credentials"));
        assert_eq!(form.get("scope")?, Some("openid profile email"));
        assert_eq!(form.get("x")?, None);
        assert!(form.contains("x"));
        assert_eq!(form.get("missing")?, None);
        Ok(())
    }

    #[test]
    fn empty_values_count_as_omitted() -> Result<(), FormError> {
        let form = Form::parse(b"scope=&&grant_type=a")?;
        assert_eq!(form.get("scope")?, None);
        assert_eq!(form.get("grant_type")?, Some("a"));
        Ok(())
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(Form::parse(b"a=%4"), Err(FormError::BadPercentEncoding));
        assert_eq!(Form::parse(b"a=%zz"), Err(FormError::BadPercentEncoding));
        assert_eq!(Form::parse(b"a=%"), Err(FormError::BadPercentEncoding));
        assert_eq!(Form::parse(b"a=%ff"), Err(FormError::NotUtf8));
        assert_eq!(Form::parse(b"a=\xff"), Err(FormError::NotUtf8));
        let many = vec!["a=b"; MAX_PARAMS + 1].join("&");
        assert_eq!(Form::parse(many.as_bytes()), Err(FormError::TooMany));
    }

    #[test]
    fn repeated_parameters_are_errors_when_read() -> Result<(), FormError> {
        let form = Form::parse(b"a=1&b=2&a=3")?;
        assert_eq!(form.get("a"), Err(FormError::Repeated("a".into())));
        assert_eq!(form.get("b")?, Some("2"));
        Ok(())
    }

    #[test]
    fn decodes_multibyte_utf8() -> Result<(), FormError> {
        assert_eq!(decode(b"%C3%A9t%C3%A9")?, "été");
        assert_eq!(decode(b"a%3Ab%25")?, "a:b%");
        Ok(())
    }

    #[test]
    fn decodes_runs_and_escapes_anywhere() -> Result<(), FormError> {
        assert_eq!(decode(b"+")?, " ");
        assert_eq!(decode(b"%41")?, "A");
        assert_eq!(decode(b"++a++")?, "  a  ");
        assert_eq!(decode(b"%41%42c%44+e")?, "ABcD e");
        assert_eq!(
            decode(b"openid%20profile%20urn%3Azitadel%3Aiam%3Aorg%3Aproject%3Aid%3Ap%3Aaud")?,
            "openid profile urn:zitadel:iam:org:project:id:p:aud"
        );
        assert_eq!(decode(b"ab%4"), Err(FormError::BadPercentEncoding));
        assert_eq!(decode(b"ab%%41"), Err(FormError::BadPercentEncoding));
        assert_eq!(decode(b"+%C3"), Err(FormError::NotUtf8));
        Ok(())
    }

    /// Byte by byte, as the form rules state it: the reference for `decode`.
    fn decode_bytewise(input: &[u8]) -> Result<String, FormError> {
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            match b {
                b'+' => out.push(b' '),
                b'%' => match (
                    input.get(i + 1).and_then(|b| hex(*b)),
                    input.get(i + 2).and_then(|b| hex(*b)),
                ) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 2;
                    }
                    _ => return Err(FormError::BadPercentEncoding),
                },
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).map_err(|_| FormError::NotUtf8)
    }

    proptest::proptest! {
        #[test]
        fn decode_agrees_with_the_bytewise_rules(
            input in proptest::collection::vec(proptest::sample::select(
                b"ab%+4Ff0Z\xc3\xa9=".to_vec()), 0..24)
        ) {
            let ours = decode(&input).map(Cow::into_owned);
            proptest::prop_assert_eq!(ours, decode_bytewise(&input));
        }
    }
}
