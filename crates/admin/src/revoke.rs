//! Revoking every token of a client.

use tessera_store::{ClientId, Username};

use crate::{Admin, AdminError};

/// What revoking every token of a client did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevokedTokens {
    /// Opaque token records marked revoked.
    pub opaque: u64,
}

/// Revocation.
impl Admin {
    /// Revokes every access token issued to the service user, opaque and JWT, on every
    /// server sharing the store.
    ///
    /// **Not supported by the storage traits yet**: they can revoke one token by its
    /// digest or `jti`, but cannot find a user's tokens. After checking that the user
    /// exists ([`AdminError::NotFound`] otherwise), this answers
    /// [`AdminError::Unsupported`] and changes nothing. Until the store gains the
    /// support, [`set_user_enabled`](Self::set_user_enabled) with `false` makes every
    /// token of the user inactive while the user stays disabled, and a new secret
    /// ([`regenerate_user_secret`](Self::regenerate_user_secret)) stops new tokens.
    pub async fn revoke_all_tokens_of_user(
        &self,
        username: &Username,
    ) -> Result<RevokedTokens, AdminError> {
        self.service_user(username).await?;
        Err(AdminError::Unsupported {
            operation: "revoking every token of a service user",
            reason: "the store cannot list or revoke a user's token records, nor reject \
                     the user's JWTs issued before a given time",
        })
    }

    /// Revokes every access token issued to the API app. API apps introspect and revoke
    /// tokens but are never issued any (the token endpoint refuses them), so once the
    /// app is known to exist ([`AdminError::NotFound`] otherwise) there is nothing to
    /// revoke: the count is zero.
    pub async fn revoke_all_tokens_of_app(
        &self,
        client_id: &ClientId,
    ) -> Result<RevokedTokens, AdminError> {
        self.api_app(client_id).await?;
        Ok(RevokedTokens::default())
    }
}
