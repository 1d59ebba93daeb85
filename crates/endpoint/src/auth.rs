//! Client credentials as presented in a request: HTTP Basic (`client_secret_basic`)
//! or form parameters (`client_secret_post`), RFC 6749 §2.3.1.

use std::fmt;

use base64ct::{Base64, Base64Unpadded, Encoding};
use http::HeaderMap;
use http::header::AUTHORIZATION;
use zeroize::Zeroizing;

use crate::error::OAuthError;
use crate::form::{Form, decode};

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest `Authorization` header value examined; longer ones fail authentication.
pub const MAX_AUTHORIZATION_LEN: usize = 4096;

/// How a client authenticated (the names of RFC 7591 §2 and the discovery document).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// HTTP Basic with the form-encoded client ID and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the request body.
    ClientSecretPost,
    /// A JWT assertion signed with the client's key (RFC 7523 §2.2).
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The method's registered name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// A secret as presented by a client: never printed, zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedSecret(Zeroizing<String>);

impl PresentedSecret {
    /// Wraps a presented secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Zeroizing::new(secret.into()))
    }

    /// The secret in clear, to verify it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PresentedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresentedSecret([redacted])")
    }
}

/// A client's credentials, and how they were sent: a client ID and secret, or (with
/// [`AuthMethod::PrivateKeyJwt`]) a signed assertion in place of the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// How the client sent them.
    pub method: AuthMethod,
    /// The client ID as presented (not yet known to be valid); empty for an assertion
    /// sent without `client_id`, whose issuer then names the client.
    pub client_id: String,
    /// The secret, or the client assertion, as presented.
    pub secret: PresentedSecret,
}

impl ClientCredentials {
    /// Credentials sent with HTTP Basic.
    pub fn basic(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            method: AuthMethod::ClientSecretBasic,
            client_id: client_id.into(),
            secret: PresentedSecret::new(secret),
        }
    }

    /// Credentials sent in the request body.
    pub fn post(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            method: AuthMethod::ClientSecretPost,
            client_id: client_id.into(),
            secret: PresentedSecret::new(secret),
        }
    }

    /// A client assertion (`private_key_jwt`), with the `client_id` sent beside it, if any.
    pub fn assertion(client_id: Option<&str>, assertion: impl Into<String>) -> Self {
        Self {
            method: AuthMethod::PrivateKeyJwt,
            client_id: client_id.unwrap_or_default().to_owned(),
            secret: PresentedSecret::new(assertion),
        }
    }

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
        let form_err = |e: crate::form::FormError| OAuthError::invalid_request(e.to_string());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use http::HeaderValue;

    fn basic(raw: &str) -> Vec<u8> {
        format!("Basic {}", Base64::encode_string(raw.as_bytes())).into_bytes()
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

    #[test]
    fn debug_hides_the_secret() {
        let creds = ClientCredentials::post("id", "hunter2-very-secret");
        assert!(!format!("{creds:?}").contains("hunter2"));
    }
}
