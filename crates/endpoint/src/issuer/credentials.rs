//! Client credentials as presented: a client ID and secret (`client_secret_basic`,
//! `client_secret_post`, RFC 6749 §2.3.1) or a client assertion (`private_key_jwt`,
//! RFC 7523 §2.2). Reading them from a request is the HTTP layer's job.

use std::fmt;

use zeroize::Zeroizing;

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let creds = ClientCredentials::post("id", "hunter2-very-secret");
        assert!(!format!("{creds:?}").contains("hunter2"));
    }
}
