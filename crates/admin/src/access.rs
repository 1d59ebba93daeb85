//! Administrators (who may use the management API) and personal access tokens.

use time::OffsetDateTime;
use zeroize::Zeroizing;

use tessera_store::{
    AdminRole, Administrator, PatId, PersonalAccessToken, ProjectId, ServiceUser, TokenDigest,
    UserId, Username, generate_pat,
};

use crate::{Admin, AdminError};

/// A role held by a service user, with the user's name, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedAdministrator {
    /// The role as stored.
    pub administrator: Administrator,
    /// The user's name (its client ID).
    pub username: Username,
}

/// A personal access token just created: the record, and the token in clear, shown
/// only here.
pub struct NewPersonalAccessToken {
    /// The record as stored (its digest, never the token).
    pub record: PersonalAccessToken,
    /// The token, to hand to the user once.
    pub token: Zeroizing<String>,
}

impl std::fmt::Debug for NewPersonalAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPersonalAccessToken")
            .field("record", &self.record)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Administrators and personal access tokens.
impl Admin {
    /// Grants `role` to the service user `username`: on `project` for a project role
    /// (none: every project), never with a project for other roles. Returns the role
    /// as stored and whether the user did not hold it yet. Logs `administrator_added`.
    pub async fn add_administrator(
        &self,
        username: &Username,
        role: AdminRole,
        project: Option<&ProjectId>,
    ) -> Result<(Administrator, bool), AdminError> {
        check_project(role, project)?;
        let user = self.service_user(username).await?;
        if let Some(project) = project {
            self.project(project).await?;
        }
        let admin = Administrator::new(user.id.clone(), role, project.cloned(), self.now());
        let added = self
            .store
            .add_administrator(&admin)
            .await
            .map_err(AdminError::not_found("service user", username))?;
        if added {
            tracing::info!(
                target: "tessera::audit",
                event = "administrator_added",
                client_id = %username,
                role = role.as_str(),
                project_id = project.map(ProjectId::as_str),
            );
        }
        Ok((admin, added))
    }

    /// Takes roles from `username`: `role` (on `project`, for a project role), or
    /// every role the user holds when `role` is `None`. Returns how many were taken;
    /// [`AdminError::NotFound`] when the user held none of them. Logs
    /// `administrator_removed` for each.
    pub async fn remove_administrator(
        &self,
        username: &Username,
        role: Option<AdminRole>,
        project: Option<&ProjectId>,
    ) -> Result<usize, AdminError> {
        let user = self.service_user(username).await?;
        let held = self.store.administrator_roles_of(&user.id).await?;
        let mut removed = 0;
        for admin in held.iter().filter(|a| {
            role.is_none_or(|r| a.role == r)
                && (project.is_none() || a.project_id.as_ref() == project)
        }) {
            if self
                .store
                .remove_administrator(&user.id, admin.role, admin.project_id.as_ref())
                .await?
            {
                removed += 1;
                tracing::info!(
                    target: "tessera::audit",
                    event = "administrator_removed",
                    client_id = %username,
                    role = admin.role.as_str(),
                    project_id = admin.project_id.as_ref().map(ProjectId::as_str),
                );
            }
        }
        if removed == 0 {
            let what = role.map_or_else(|| "any role".to_owned(), |r| r.as_str().to_owned());
            return Err(AdminError::NotFound {
                what: "administrator role",
                id: format!("{what} of {username}"),
            });
        }
        Ok(removed)
    }

    /// Every role held, with the holder's name, ordered by username, role, project.
    pub async fn administrators(&self) -> Result<Vec<NamedAdministrator>, AdminError> {
        let users = self.store.list_service_users().await?;
        let names: std::collections::HashMap<&UserId, &Username> =
            users.iter().map(|u| (&u.id, &u.username)).collect();
        let mut list: Vec<NamedAdministrator> = self
            .store
            .administrators()
            .await?
            .into_iter()
            .filter_map(|administrator| {
                let username = (*names.get(&administrator.user_id)?).clone();
                Some(NamedAdministrator { administrator, username })
            })
            .collect();
        list.sort_by(|a, b| {
            (a.username.as_str(), a.administrator.role.as_str())
                .cmp(&(b.username.as_str(), b.administrator.role.as_str()))
        });
        Ok(list)
    }

    /// The roles the user with id `user_id` holds (none for a missing user).
    pub async fn administrator_roles(
        &self,
        user_id: &UserId,
    ) -> Result<Vec<Administrator>, AdminError> {
        Ok(self.store.administrator_roles_of(user_id).await?)
    }

    /// Creates a personal access token for `user`, expiring at `expires_at` (none:
    /// never); the token is returned once and only its digest is stored. Logs
    /// `personal_access_token_added`.
    pub async fn add_personal_access_token(
        &self,
        user: &ServiceUser,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<NewPersonalAccessToken, AdminError> {
        let now = self.now();
        if let Some(at) = expires_at
            && at <= now
        {
            return Err(AdminError::Invalid {
                field: "expiration",
                reason: "must be in the future".into(),
            });
        }
        let token = generate_pat()?;
        let record = PersonalAccessToken {
            id: PatId::generate()?,
            user_id: user.id.clone(),
            digest: TokenDigest::of(&token),
            created_at: tessera_store::whole_seconds(now),
            expires_at: expires_at.map(tessera_store::whole_seconds),
        };
        self.store
            .add_personal_access_token(&record)
            .await
            .map_err(AdminError::not_found("service user", &user.username))?;
        tracing::info!(
            target: "tessera::audit",
            event = "personal_access_token_added",
            client_id = %user.username,
            token_id = %record.id,
            expires_at = record.expires_at.map(OffsetDateTime::unix_timestamp),
        );
        Ok(NewPersonalAccessToken { record, token })
    }

    /// The personal access tokens of `user`, by creation time (never the tokens).
    pub async fn personal_access_tokens(
        &self,
        user: &ServiceUser,
    ) -> Result<Vec<PersonalAccessToken>, AdminError> {
        Ok(self.store.personal_access_tokens_of(&user.id).await?)
    }

    /// Removes `user`'s token `id`: it stops working at once on every server sharing
    /// the store. [`AdminError::NotFound`] when the user has no such token. Logs
    /// `personal_access_token_removed`.
    pub async fn remove_personal_access_token(
        &self,
        user: &ServiceUser,
        id: &PatId,
    ) -> Result<(), AdminError> {
        if !self.store.remove_personal_access_token(&user.id, id).await? {
            return Err(AdminError::NotFound { what: "personal access token", id: id.to_string() });
        }
        tracing::info!(
            target: "tessera::audit",
            event = "personal_access_token_removed",
            client_id = %user.username,
            token_id = %id,
        );
        Ok(())
    }
}

/// A project role may name a project; other roles may not.
fn check_project(role: AdminRole, project: Option<&ProjectId>) -> Result<(), AdminError> {
    if project.is_some() && !role.is_project_role() {
        return Err(AdminError::Invalid {
            field: "project",
            reason: format!("{role} is not held on a project"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tessera_store::{MemoryStore, Store};

    use super::*;
    use crate::{NewProject, NewServiceUser};

    fn admin() -> Admin {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        Admin::new(store)
    }

    fn name(value: &str) -> Username {
        Username::new(value).expect("a valid username")
    }

    #[tokio::test]
    async fn roles_are_granted_listed_and_taken() -> Result<(), AdminError> {
        let admin = admin();
        let (ops, _) = admin.create_service_user(NewServiceUser::new(name("ops"))).await?;
        let project = admin
            .create_project(NewProject {
                name: tessera_store::DisplayName::new("billing").expect("name"),
                id: None,
            })
            .await?;
        let (_, added) = admin.add_administrator(&ops.username, AdminRole::IamOwner, None).await?;
        assert!(added);
        let (_, again) = admin.add_administrator(&ops.username, AdminRole::IamOwner, None).await?;
        assert!(!again, "held already");
        admin.add_administrator(&ops.username, AdminRole::ProjectOwner, Some(&project.id)).await?;
        let refused =
            admin.add_administrator(&ops.username, AdminRole::OrgOwner, Some(&project.id)).await;
        assert!(matches!(refused, Err(AdminError::Invalid { field: "project", .. })));
        let missing = admin.add_administrator(&name("nobody"), AdminRole::IamOwner, None).await;
        assert!(matches!(missing, Err(AdminError::NotFound { what: "service user", .. })));

        let listed = admin.administrators().await?;
        let roles: Vec<_> = listed.iter().map(|a| a.administrator.role).collect();
        assert_eq!(roles, [AdminRole::IamOwner, AdminRole::ProjectOwner]);
        assert!(listed.iter().all(|a| a.username == ops.username));

        assert_eq!(
            admin.remove_administrator(&ops.username, Some(AdminRole::IamOwner), None).await?,
            1
        );
        assert!(
            admin
                .remove_administrator(&ops.username, Some(AdminRole::IamOwner), None)
                .await
                .is_err()
        );
        assert_eq!(admin.remove_administrator(&ops.username, None, None).await?, 1);
        assert!(admin.administrator_roles(&ops.id).await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn personal_access_tokens_are_shown_once_and_stored_as_digests() -> Result<(), AdminError>
    {
        let admin = admin();
        let (user, _) = admin.create_service_user(NewServiceUser::new(name("robot"))).await?;
        let created = admin.add_personal_access_token(&user, None).await?;
        assert_eq!(created.token.len(), tessera_store::PAT_LEN);
        assert_eq!(created.record.digest, TokenDigest::of(&created.token));
        assert!(!format!("{created:?}").contains(created.token.as_str()));
        let found = admin.store().personal_access_token_by_digest(&created.record.digest).await?;
        assert_eq!(found.as_ref(), Some(&created.record));

        let past = admin.now() - time::Duration::seconds(1);
        assert!(matches!(
            admin.add_personal_access_token(&user, Some(past)).await,
            Err(AdminError::Invalid { field: "expiration", .. })
        ));
        assert_eq!(admin.personal_access_tokens(&user).await?, vec![created.record.clone()]);

        admin.remove_personal_access_token(&user, &created.record.id).await?;
        assert!(admin.personal_access_tokens(&user).await?.is_empty());
        assert!(
            admin.store().personal_access_token_by_digest(&created.record.digest).await?.is_none()
        );
        assert!(matches!(
            admin.remove_personal_access_token(&user, &created.record.id).await,
            Err(AdminError::NotFound { what: "personal access token", .. })
        ));
        Ok(())
    }
}
