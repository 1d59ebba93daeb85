//! Reading a request: its form body, its client credentials, its bearer token.

use std::pin::pin;

use base64ct::{Base64, Base64Unpadded, Encoding};
use bytes::{Buf, Bytes};
use http::HeaderMap;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use zeroize::Zeroizing;

use http::Method;

use crate::error::{ErrorCode, OAuthError};
use crate::http::form::{Form, decode};
use crate::issuer::ClientCredentials;

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest `Authorization` header value examined; longer ones fail authentication.
pub const MAX_AUTHORIZATION_LEN: usize = 4096;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl ClientCredentials {
    /// Reads the credentials of a request from its `Authorization` header and its form.
    ///
    /// - A malformed Basic header, or another scheme, is `invalid_client`.
    /// - Credentials in the header and a `client_secret` in the body, or a body
    ///   `client_id` that differs from the header's, is `invalid_request` (RFC 6749
    ///   §2.3: one authentication method per request).
    /// - `client_assertion_type` of RFC 7523 with a `client_assertion` is
    ///   `private_key_jwt`; with any other credentials it is `invalid_request`, and
    ///   another assertion type is `invalid_client`.
    /// - No credentials at all is `invalid_client`.
    pub fn from_request(headers: &HeaderMap, form: &Form) -> Result<Self, OAuthError> {
        let form_err = |e: crate::http::form::FormError| OAuthError::invalid_request(e.to_string());
        let body_id = form.get("client_id").map_err(form_err)?;
        let body_secret = form.get("client_secret").map_err(form_err)?;
        let assertion_type = form.get("client_assertion_type").map_err(form_err)?;
        let assertion = form.get("client_assertion").map_err(form_err)?;
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let header = values.next();
        if values.next().is_some() {
            return Err(OAuthError::invalid_request("the Authorization header is repeated"));
        }
        if assertion_type.is_some() || assertion.is_some() {
            if header.is_some() || body_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "a client assertion cannot be combined with other client credentials",
                ));
            }
            if assertion_type != Some(CLIENT_ASSERTION_TYPE) {
                return Err(OAuthError::invalid_client());
            }
            let assertion = assertion
                .ok_or_else(|| OAuthError::invalid_request("missing parameter client_assertion"))?;
            return Ok(Self::assertion(body_id, assertion));
        }
        match header {
            Some(value) => {
                let creds = parse_basic(value.as_bytes())?;
                if body_secret.is_some() || body_id.is_some_and(|id| id != creds.client_id) {
                    return Err(OAuthError::invalid_request(
                        "client credentials were sent in both the Authorization header and the body",
                    ));
                }
                Ok(creds)
            }
            None => match (body_id, body_secret) {
                (Some(id), Some(secret)) => Ok(Self::post(id, secret)),
                _ => Err(OAuthError::invalid_client()),
            },
        }
    }
}

/// Parses an `Authorization: Basic` value: base64 of `id:secret`, where id and
/// secret are each form-encoded (RFC 6749 §2.3.1). Any flaw is `invalid_client`.
#[cfg_attr(not(feature = "internals"), allow(unreachable_pub))] // for `internals`
pub fn parse_basic(value: &[u8]) -> Result<ClientCredentials, OAuthError> {
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(OAuthError::invalid_client());
    }
    let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
        Some(i) => (&value[..i], &value[i..]),
        None => return Err(OAuthError::invalid_client()),
    };
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(OAuthError::invalid_client());
    }
    let encoded = std::str::from_utf8(rest).map_err(|_| OAuthError::invalid_client())?;
    let encoded = encoded.trim_matches(' ');
    let decoded = Zeroizing::new(
        Base64::decode_vec(encoded)
            .or_else(|_| Base64Unpadded::decode_vec(encoded))
            .map_err(|_| OAuthError::invalid_client())?,
    );
    let colon = decoded.iter().position(|b| *b == b':').ok_or_else(OAuthError::invalid_client)?;
    let id = decode(&decoded[..colon]).map_err(|_| OAuthError::invalid_client())?;
    let secret = decode(&decoded[colon + 1..]).map_err(|_| OAuthError::invalid_client())?;
    if id.is_empty() {
        return Err(OAuthError::invalid_client());
    }
    Ok(ClientCredentials::basic(id.into_owned(), secret.into_owned()))
}

/// The client credentials of a request (checked later, under the throttle), and the
/// client ID it claims (see [`claimed_client`]), reading the header once.
pub(crate) fn read_credentials(
    headers: &HeaderMap,
    form: &Form,
) -> (Result<ClientCredentials, OAuthError>, String) {
    let credentials = ClientCredentials::from_request(headers, form);
    let claimed = match &credentials {
        Ok(credentials) => credentials.client_id.clone(),
        Err(_) => claimed_client(headers, form),
    };
    (credentials, claimed)
}

/// Whether a request carries client credentials of any kind: an `Authorization`
/// header, a `client_secret`, or a client assertion. A `client_id` alone identifies
/// a client without authenticating it (RFC 6749 §3.2.1).
pub(crate) fn carries_client_credentials(headers: &HeaderMap, form: &Form) -> bool {
    headers.contains_key(AUTHORIZATION)
        || ["client_secret", "client_assertion", "client_assertion_type"]
            .iter()
            .any(|name| !matches!(form.get(name), Ok(None)))
}

/// The client ID a request claims, before it is checked: the Basic user name, or the
/// body's `client_id`; empty when neither says (the throttle then counts the address).
fn claimed_client(headers: &HeaderMap, form: &Form) -> String {
    if let Some(value) = headers.get(AUTHORIZATION)
        && let Ok(creds) = parse_basic(value.as_bytes())
    {
        return creds.client_id;
    }
    form.get("client_id").ok().flatten().unwrap_or_default().to_owned()
}

/// A form parameter; repeated is `invalid_request`.
pub(crate) fn form_param<'a>(form: &'a Form, name: &str) -> Result<Option<&'a str>, OAuthError> {
    form.get(name).map_err(|e| OAuthError::invalid_request(e.to_string()))
}

/// The token of an `Authorization: Bearer` header (RFC 6750 §2.1): for an
/// application's own routes, to hand to [`Issuer::validate_token`]. A missing or
/// malformed header is `invalid_token` (answer 401 with a `Bearer` challenge);
/// a repeated header `invalid_request`.
///
/// [`Issuer::validate_token`]: crate::Issuer::validate_token
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, OAuthError> {
    let invalid = || OAuthError::new(ErrorCode::InvalidToken, "a bearer token is required");
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or_else(invalid)?;
    if values.next().is_some() {
        return Err(OAuthError::invalid_request("the Authorization header is repeated"));
    }
    let value = value.to_str().map_err(|_| invalid())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(invalid)?;
    let token = token.trim_start_matches(' ');
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(invalid());
    }
    Ok(token)
}

pub(crate) fn require_method(
    method: &Method,
    allowed: &[Method],
    allow: &'static str,
) -> Result<(), OAuthError> {
    if allowed.contains(method) { Ok(()) } else { Err(OAuthError::method_not_allowed(allow)) }
}

/// Reads a form body: checks the content type, enforces the size limit (413) and
/// parses strictly (400 `invalid_request`).
pub(crate) async fn read_form<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Form, OAuthError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim());
    if !media_type.is_some_and(|t| t.eq_ignore_ascii_case("application/x-www-form-urlencoded")) {
        return Err(OAuthError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(OAuthError::payload_too_large(limit));
    }
    let bytes = match whole_body(Limited::new(body, limit)).await {
        Ok(bytes) => bytes,
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(OAuthError::payload_too_large(limit));
        }
        Err(_) => {
            return Err(OAuthError::invalid_request("the request body could not be read"));
        }
    };
    Form::parse(&bytes).map_err(|e| OAuthError::invalid_request(e.to_string()))
}

/// The body's data: the one frame a small body arrives in, as it came, or the
/// frames joined. Trailers are left out.
async fn whole_body<B: Body>(body: B) -> Result<Bytes, B::Error> {
    let mut body = pin!(body);
    let mut first = Bytes::new();
    let mut joined = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(mut data) = frame?.into_data() else { continue };
        // `Bytes` (hyper's data) hands itself over without a copy.
        let data = data.copy_to_bytes(data.remaining());
        if first.is_empty() && joined.is_empty() {
            first = data;
        } else {
            joined.extend_from_slice(&std::mem::take(&mut first));
            joined.extend_from_slice(&data);
        }
    }
    Ok(if joined.is_empty() { first } else { joined.into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::issuer::AuthMethod;
    use http::HeaderValue;

    fn basic(raw: &str) -> Vec<u8> {
        format!("Basic {}", Base64::encode_string(raw.as_bytes())).into_bytes()
    }

    /// A body that arrives in the given frames.
    struct Frames(std::collections::VecDeque<http_body::Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    fn frames(parts: &[&str], trailers: bool) -> Frames {
        let mut frames: std::collections::VecDeque<_> = parts
            .iter()
            .map(|p| http_body::Frame::data(Bytes::copy_from_slice(p.as_bytes())))
            .collect();
        if trailers {
            frames.push_back(http_body::Frame::trailers(HeaderMap::new()));
        }
        Frames(frames)
    }

    fn form_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        headers
    }

    #[tokio::test]
    async fn a_body_in_any_number_of_frames_reads_as_one() -> Result<(), OAuthError> {
        let whole = "grant_type=client_credentials&scope=openid+profile";
        let splits: [&[&str]; 6] = [
            &[whole],
            &["", whole],
            &["grant_type=client_cre", "dentials&scope=openid+profile"],
            &["grant_type=client_cre", "", "dentials&scope=", "openid+profile", ""],
            &["g", "r", "ant_type=client_credentials&scope=openid+profile"],
            &["", "grant_type=client_credentials", "&scope=openid+profile"],
        ];
        for parts in splits {
            for trailers in [false, true] {
                let body = whole_body(frames(parts, trailers)).await.unwrap_or_default();
                assert_eq!(body, whole.as_bytes(), "{parts:?}");
                let form = read_form(&form_headers(), frames(parts, trailers), 1024).await?;
                assert_eq!(form.get("scope").ok().flatten(), Some("openid profile"));
            }
        }
        let empty = whole_body(frames(&[], true)).await.unwrap_or_default();
        assert!(empty.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn a_body_over_the_limit_in_several_frames_is_refused() {
        let parts = ["grant_type=client_credentials", "&scope=", "openid+profile"];
        let refused = read_form(&form_headers(), frames(&parts, false), 40).await;
        assert_eq!(
            refused.map(|_| ()).map_err(|e| e.status()),
            Err(http::StatusCode::PAYLOAD_TOO_LARGE)
        );
        assert!(read_form(&form_headers(), frames(&parts, false), 64).await.is_ok());
    }

    #[test]
    fn decodes_form_encoded_basic_credentials() -> Result<(), OAuthError> {
        let creds = parse_basic(&basic("my%20client:s%3Acr%2Bt+x"))?;
        assert_eq!(creds.client_id, "my client");
        assert_eq!(creds.secret.expose(), "s:cr+t x");
        assert_eq!(creds.method, AuthMethod::ClientSecretBasic);
        // Scheme is case-insensitive; padding may be left out.
        let creds = parse_basic(b"bAsIc YTpi")?;
        assert_eq!((creds.client_id.as_str(), creds.secret.expose()), ("a", "b"));
        let creds = parse_basic(b"Basic YTpiYw")?;
        assert_eq!(creds.secret.expose(), "bc");
        Ok(())
    }

    #[test]
    fn malformed_basic_is_invalid_client() {
        let cases: Vec<Vec<u8>> = vec![
            b"Basic".to_vec(),
            b"Basic !!!!".to_vec(),
            basic("no-colon"),
            basic(":secret"),
            basic("bad%zz:secret"),
            basic("id:bad%"),
            format!("Basic {}", Base64::encode_string(b"id:\xff\xfe")).into_bytes(),
            b"Bearer abc".to_vec(),
            b"Basic \xff".to_vec(),
            vec![b'a'; MAX_AUTHORIZATION_LEN + 1],
        ];
        for case in cases {
            let err = parse_basic(&case).expect_err("must fail");
            assert_eq!(
                err.code(),
                ErrorCode::InvalidClient,
                "{:?}",
                String::from_utf8_lossy(&case)
            );
        }
    }

    #[test]
    fn one_method_per_request() -> Result<(), Box<dyn std::error::Error>> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_bytes(&basic("a:b"))?);
        let both = Form::parse(b"client_id=a&client_secret=b")?;
        let err = ClientCredentials::from_request(&headers, &both).expect_err("both");
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        let other_id = Form::parse(b"client_id=c")?;
        let err = ClientCredentials::from_request(&headers, &other_id).expect_err("differs");
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        let same_id = Form::parse(b"client_id=a")?;
        assert!(ClientCredentials::from_request(&headers, &same_id).is_ok());

        let post = Form::parse(b"client_id=a&client_secret=b")?;
        let creds = ClientCredentials::from_request(&HeaderMap::new(), &post)?;
        assert_eq!(creds.method, AuthMethod::ClientSecretPost);
        let none = ClientCredentials::from_request(&HeaderMap::new(), &Form::default());
        assert_eq!(none.map_err(|e| e.code()), Err(ErrorCode::InvalidClient));
        let id_only = Form::parse(b"client_id=a")?;
        let err = ClientCredentials::from_request(&HeaderMap::new(), &id_only);
        assert_eq!(err.map_err(|e| e.code()), Err(ErrorCode::InvalidClient));
        Ok(())
    }
}
