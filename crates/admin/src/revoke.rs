//! Revoking every token of a client.

use tessera_store::{ClientId, ServiceUser, ServiceUserPatch, Username};

use crate::users::{log_revoked, revocation_cutoff};
use crate::{Admin, AdminError};

/// Revocation.
impl Admin {
    /// Revokes every access token issued to the service user so far, opaque and JWT,
    /// at once on every server sharing the store: the user's cut-off
    /// ([`ServiceUser::tokens_revoked_before`](tessera_store::ServiceUser::tokens_revoked_before))
    /// moves to the start of the next second, and introspection, userinfo and
    /// revocation treat every token issued before it as inactive. Tokens issued later
    /// (with the same secret, unless it is regenerated too) are active as usual.
    pub async fn revoke_all_tokens_of_user(
        &self,
        username: &Username,
    ) -> Result<ServiceUser, AdminError> {
        let now = self.now();
        let mut patch = ServiceUserPatch::at(now);
        patch.tokens_revoked_before = Some(revocation_cutoff(now));
        let user = self
            .store
            .update_service_user(username, &patch)
            .await
            .map_err(AdminError::not_found("service user", username))?;
        log_revoked(&user);
        Ok(user)
    }

    /// Revokes every access token issued to the API app. API apps introspect and revoke
    /// tokens but are never issued any (the token endpoint refuses them), so once the
    /// app is known to exist ([`AdminError::NotFound`] otherwise) there is nothing to
    /// revoke, and this changes nothing.
    pub async fn revoke_all_tokens_of_app(&self, client_id: &ClientId) -> Result<(), AdminError> {
        self.api_app(client_id).await.map(drop)
    }
}
