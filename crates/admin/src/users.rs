//! Service users and their secrets.

use tessera_store::{
    AccessTokenType, ClientSecret, Credentials, DisplayName, SecretDigest, ServiceUser,
    ServiceUserPatch, TokenLifetime, UserId, Username,
};
use time::{Duration, OffsetDateTime};

use crate::{Admin, AdminError};

/// What a new service user is created with; [`NewServiceUser::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewServiceUser {
    /// Its username, also its client ID.
    pub username: Username,
    /// Its human-readable name; the username when `None`.
    pub display_name: Option<DisplayName>,
    /// What it is for, in free text: at most 500 characters, no control or invisible
    /// formatting characters ([`ServiceUser::check_description`]); none when `None`.
    pub description: Option<String>,
    /// The kind of access token it receives (opaque by default).
    pub access_token_type: AccessTokenType,
    /// How long its access tokens live (12 hours by default).
    pub token_lifetime: TokenLifetime,
}

impl NewServiceUser {
    /// A user named `username` with the defaults: named after its username, opaque
    /// access tokens living 12 hours.
    pub fn new(username: Username) -> Self {
        Self {
            username,
            display_name: None,
            description: None,
            access_token_type: AccessTokenType::default(),
            token_lifetime: TokenLifetime::default(),
        }
    }
}

/// A change to a service user's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceUserUpdate {
    /// New human-readable name.
    pub display_name: Option<DisplayName>,
    /// New description, checked as [`NewServiceUser::description`] is; `Some("")`
    /// removes it.
    pub description: Option<String>,
    /// New kind of access token.
    pub access_token_type: Option<AccessTokenType>,
    /// New access token lifetime.
    pub token_lifetime: Option<TokenLifetime>,
    /// Enable (`true`) or disable (`false`): a disabled user cannot authenticate, and
    /// its tokens are inactive while it stays disabled.
    pub enabled: Option<bool>,
    /// Also revoke every token issued to the user so far, in the same change: with
    /// `enabled: Some(false)`, enabling the user again later does not bring its old
    /// tokens back.
    pub revoke_tokens: bool,
}

/// How long a replaced secret keeps working after a regeneration, so that clients can
/// move to the new one without downtime: 1 second to 30 days.
///
/// ```
/// use tessera_admin::Grace;
///
/// assert_eq!(Grace::from_secs(3600).map(Grace::as_secs).ok(), Some(3600));
/// assert!(Grace::from_secs(0).is_err());
/// assert!(Grace::from_secs(Grace::MAX_SECS + 1).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grace(u32);

impl Grace {
    /// The longest grace period: 30 days.
    pub const MAX_SECS: u32 = 30 * 24 * 60 * 60;

    /// A grace period of `secs` seconds; [`AdminError::Invalid`] outside 1 to
    /// [`Grace::MAX_SECS`].
    pub fn from_secs(secs: u32) -> Result<Self, AdminError> {
        if (1..=Self::MAX_SECS).contains(&secs) {
            Ok(Self(secs))
        } else {
            Err(AdminError::Invalid {
                field: "keep_old_for",
                reason: format!("must be 1 to {} seconds", Self::MAX_SECS),
            })
        }
    }

    /// The grace period in seconds.
    pub const fn as_secs(self) -> u32 {
        self.0
    }

    /// When a secret replaced at `now` stops working.
    pub(crate) fn until(self, now: OffsetDateTime) -> OffsetDateTime {
        now + Duration::seconds(i64::from(self.0))
    }
}

/// Service users and their secrets.
impl Admin {
    /// Creates a service user with a newly generated client secret, and returns both;
    /// the secret is shown only here (the store keeps its digest).
    ///
    /// [`AdminError::AlreadyExists`] when the username is taken, by a service user or
    /// as an API app's client ID; [`AdminError::Invalid`] (of `description`) when the
    /// description is too long or holds a control or invisible formatting character.
    pub async fn create_service_user(
        &self,
        new: NewServiceUser,
    ) -> Result<(ServiceUser, ClientSecret), AdminError> {
        let secret = ClientSecret::generate()?;
        let user = self.create(new, Credentials::new(SecretDigest::of(&secret)?)).await?;
        Ok((user, secret))
    }

    /// Creates a service user without a client secret: it authenticates only with a
    /// key or a personal access token until
    /// [`regenerate_user_secret`](Self::regenerate_user_secret) gives it one (as
    /// ZITADEL's machine users are created).
    ///
    /// [`AdminError::AlreadyExists`] when the username is taken.
    pub async fn create_service_user_without_secret(
        &self,
        new: NewServiceUser,
    ) -> Result<ServiceUser, AdminError> {
        self.create(new, Credentials::NONE).await
    }

    async fn create(
        &self,
        new: NewServiceUser,
        credentials: Credentials,
    ) -> Result<ServiceUser, AdminError> {
        if let Some(description) = &new.description {
            check_description(description)?;
        }
        let mut user = ServiceUser::new(new.username, self.now())?;
        if let Some(name) = new.display_name {
            user.display_name = name;
        }
        if let Some(description) = new.description {
            user.description = description;
        }
        user.access_token_type = new.access_token_type;
        user.token_lifetime = new.token_lifetime;
        user.credentials = credentials;
        self.store
            .create_service_user(&user)
            .await
            .map_err(AdminError::exists("service user", &user.username))?;
        Ok(user)
    }

    /// Generates a new client secret for the user and returns the user as stored
    /// afterwards with the secret, shown only here.
    ///
    /// Without `grace` the old secret stops working at once, on every server sharing
    /// the store; with it, the old secret keeps working until the grace period ends,
    /// as the returned user's [`previous`](tessera_store::Credentials::previous) secret
    /// says.
    /// At most two secrets work at a time: a secret kept by an earlier regeneration is
    /// dropped. Logs the audit event `secret_regenerated`.
    pub async fn regenerate_user_secret(
        &self,
        username: &Username,
        grace: Option<Grace>,
    ) -> Result<(ServiceUser, ClientSecret), AdminError> {
        self.regenerate(username, grace, false).await
    }

    /// As [`regenerate_user_secret`](Self::regenerate_user_secret), and in the same
    /// atomic change revokes every token issued to the user so far (see
    /// [`revoke_all_tokens_of_user`](Self::revoke_all_tokens_of_user)): for a secret
    /// that leaked, whose holder may have tokens too.
    pub async fn regenerate_user_secret_revoking_tokens(
        &self,
        username: &Username,
        grace: Option<Grace>,
    ) -> Result<(ServiceUser, ClientSecret), AdminError> {
        self.regenerate(username, grace, true).await
    }

    async fn regenerate(
        &self,
        username: &Username,
        grace: Option<Grace>,
        revoke_tokens: bool,
    ) -> Result<(ServiceUser, ClientSecret), AdminError> {
        let now = self.now();
        let secret = ClientSecret::generate()?;
        let mut patch = ServiceUserPatch::at(now);
        patch.secret = Some(SecretDigest::of(&secret)?);
        patch.keep_previous_until = grace.map(|g| g.until(now));
        if revoke_tokens {
            patch.tokens_revoked_before = Some(revocation_cutoff(now));
        }
        let user = self
            .store
            .update_service_user(username, &patch)
            .await
            .map_err(AdminError::not_found("service user", username))?;
        let previous = user.credentials.previous.filter(|_| grace.is_some());
        tracing::info!(
            target: "tessera::audit",
            event = "secret_regenerated",
            client_id = %user.username,
            previous_secret_expires_at = previous.map(|p| p.expires_at.unix_timestamp()),
            tokens_revoked = revoke_tokens,
        );
        Ok((user, secret))
    }

    /// Removes the user's client secret, and the previous one kept by a regeneration
    /// with a grace period, and returns the user as stored afterwards. Both stop
    /// working at once, on every server sharing the store; the user authenticates
    /// only with a key or a personal access token until
    /// [`regenerate_user_secret`](Self::regenerate_user_secret) gives it a secret
    /// again. Removing the secret of a user without one changes nothing but its
    /// update time. Logs the audit event `secret_removed`.
    pub async fn remove_user_secret(&self, username: &Username) -> Result<ServiceUser, AdminError> {
        let mut patch = ServiceUserPatch::at(self.now());
        patch.clear_secret = true;
        let user = self
            .store
            .update_service_user(username, &patch)
            .await
            .map_err(AdminError::not_found("service user", username))?;
        tracing::info!(target: "tessera::audit", event = "secret_removed", client_id = %user.username);
        Ok(user)
    }

    /// Changes the user's settings and returns it as stored afterwards;
    /// [`AdminError::Invalid`] (of `description`) when the new description is too
    /// long or holds a control or invisible formatting character.
    pub async fn update_service_user(
        &self,
        username: &Username,
        update: ServiceUserUpdate,
    ) -> Result<ServiceUser, AdminError> {
        if let Some(description) = &update.description {
            check_description(description)?;
        }
        let mut patch = ServiceUserPatch::at(self.now());
        patch.display_name = update.display_name;
        patch.description = update.description;
        patch.access_token_type = update.access_token_type;
        patch.token_lifetime = update.token_lifetime;
        patch.enabled = update.enabled;
        if update.revoke_tokens {
            patch.tokens_revoked_before = Some(revocation_cutoff(patch.updated_at));
        }
        let user = self
            .store
            .update_service_user(username, &patch)
            .await
            .map_err(AdminError::not_found("service user", username))?;
        if update.revoke_tokens {
            log_revoked(&user);
        }
        Ok(user)
    }

    /// Enables or disables the user; returns it as stored afterwards.
    pub async fn set_user_enabled(
        &self,
        username: &Username,
        enabled: bool,
    ) -> Result<ServiceUser, AdminError> {
        let update = ServiceUserUpdate { enabled: Some(enabled), ..ServiceUserUpdate::default() };
        self.update_service_user(username, update).await
    }

    /// Deletes the user with its token records, grants and client keys.
    pub async fn delete_service_user(&self, username: &Username) -> Result<(), AdminError> {
        self.store
            .delete_service_user(username)
            .await
            .map_err(AdminError::not_found("service user", username))
    }

    /// The user named `username`; [`AdminError::NotFound`] when there is none.
    pub async fn service_user(&self, username: &Username) -> Result<ServiceUser, AdminError> {
        self.store
            .service_user_by_username(username)
            .await?
            .ok_or_else(|| AdminError::NotFound { what: "service user", id: username.to_string() })
    }

    /// The user with id `id`; [`AdminError::NotFound`] when there is none.
    pub async fn service_user_by_id(&self, id: &UserId) -> Result<ServiceUser, AdminError> {
        self.store
            .service_user_by_id(id)
            .await?
            .ok_or_else(|| AdminError::NotFound { what: "service user", id: id.to_string() })
    }

    /// Every service user, ordered by username.
    pub async fn service_users(&self) -> Result<Vec<ServiceUser>, AdminError> {
        Ok(self.store.list_service_users().await?)
    }
}

/// Checks a description ([`ServiceUser::check_description`]); an invalid one is
/// [`AdminError::Invalid`] of `description`.
fn check_description(description: &str) -> Result<(), AdminError> {
    ServiceUser::check_description(description)
        .map_err(|e| AdminError::Invalid { field: "description", reason: e.to_string() })
}

/// The cut-off that revokes every token issued until `now`: tokens carry their issue
/// time in whole seconds, so the cut-off is the start of the next second (tokens issued
/// in the rest of this second are revoked too).
pub(crate) fn revocation_cutoff(now: OffsetDateTime) -> OffsetDateTime {
    tessera_store::whole_seconds(now) + time::Duration::SECOND
}

/// Logs that every token of `user` issued before its cut-off was revoked.
pub(crate) fn log_revoked(user: &ServiceUser) {
    tracing::info!(
        target: "tessera::audit",
        event = "tokens_revoked",
        client_id = %user.username,
        issued_before = user.tokens_revoked_before.map(|t| t.unix_timestamp()),
    );
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tessera_store::{MemoryStore, Store};

    use super::*;

    #[tokio::test]
    async fn a_removed_secret_and_its_predecessor_stop_working()
    -> Result<(), Box<dyn std::error::Error>> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let admin = Admin::new(store);
        let name = Username::new("robot")?;
        let (_, first) = admin.create_service_user(NewServiceUser::new(name.clone())).await?;
        let (_, second) = admin.regenerate_user_secret(&name, Some(Grace::from_secs(60)?)).await?;
        let user = admin.remove_user_secret(&name).await?;
        assert_eq!(user.credentials, Credentials::NONE);
        let stored = admin.service_user(&name).await?;
        assert_eq!(stored, user);
        for secret in [&first, &second] {
            assert!(!stored.credentials.matches(secret.expose(), admin.now()));
        }
        let missing = admin.remove_user_secret(&Username::new("ghost")?).await;
        assert!(matches!(missing, Err(AdminError::NotFound { what: "service user", .. })));
        let (again, third) = admin.regenerate_user_secret(&name, None).await?;
        assert!(again.credentials.matches(third.expose(), admin.now()), "a secret again");
        Ok(())
    }

    #[tokio::test]
    async fn descriptions_are_checked_before_anything_is_written()
    -> Result<(), Box<dyn std::error::Error>> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let admin = Admin::new(store);
        let name = Username::new("described")?;
        let mut new = NewServiceUser::new(name.clone());
        for bad in ["x".repeat(501), "two\nlines".to_owned(), "hidden\u{2066}text".to_owned()] {
            new.description = Some(bad.clone());
            let refused = admin.create_service_user(new.clone()).await;
            assert!(
                matches!(refused, Err(AdminError::Invalid { field: "description", .. })),
                "{bad:?}: {refused:?}"
            );
        }
        assert!(admin.service_users().await?.is_empty(), "nothing was created");

        new.description = Some("Exports invoices".to_owned());
        let (user, _) = admin.create_service_user(new).await?;
        assert_eq!(user.description, "Exports invoices");
        assert_eq!(admin.service_user(&name).await?.description, "Exports invoices");

        let refused = admin
            .update_service_user(
                &name,
                ServiceUserUpdate {
                    description: Some("\u{202E}".to_owned()),
                    enabled: Some(false),
                    ..ServiceUserUpdate::default()
                },
            )
            .await;
        assert!(matches!(refused, Err(AdminError::Invalid { field: "description", .. })));
        assert_eq!(admin.service_user(&name).await?, user, "a refused update writes nothing");
        let update =
            ServiceUserUpdate { description: Some(String::new()), ..ServiceUserUpdate::default() };
        assert_eq!(admin.update_service_user(&name, update).await?.description, "");
        Ok(())
    }
}
