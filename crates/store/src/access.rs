//! Who may manage the server (administrators and their roles) and the personal access
//! tokens of service users.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use base64ct::{Base64UrlUnpadded, Encoding};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::clock::whole_seconds;
use crate::error::StoreError;
use crate::ids::{IdError, PatId, ProjectId, UserId};
use crate::records::TokenDigest;
use crate::secret::{RandomError, random_bytes};

/// An administrator role, named as ZITADEL names it. What each allows is the
/// management API's table (docs/management-api.md); the store only keeps who holds
/// which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AdminRole {
    /// Everything, on the whole server.
    #[cfg_attr(feature = "serde", serde(rename = "IAM_OWNER"))]
    IamOwner,
    /// Reads everything, changes nothing.
    #[cfg_attr(feature = "serde", serde(rename = "IAM_OWNER_VIEWER"))]
    IamOwnerViewer,
    /// Everything in the organization (Tessera has one): users, projects, apps,
    /// authorizations and administrators of the organization and its projects.
    #[cfg_attr(feature = "serde", serde(rename = "ORG_OWNER"))]
    OrgOwner,
    /// Service users of the organization: create, change, delete, their secrets,
    /// keys and personal access tokens; reads projects and authorizations.
    #[cfg_attr(feature = "serde", serde(rename = "ORG_USER_MANAGER"))]
    OrgUserManager,
    /// One project (or every project, when held without one): the project, its
    /// roles, apps and authorizations.
    #[cfg_attr(feature = "serde", serde(rename = "PROJECT_OWNER"))]
    ProjectOwner,
}

impl AdminRole {
    /// Every role.
    pub const ALL: [AdminRole; 5] = [
        Self::IamOwner,
        Self::IamOwnerViewer,
        Self::OrgOwner,
        Self::OrgUserManager,
        Self::ProjectOwner,
    ];

    /// The role's name: `IAM_OWNER`, `ORG_OWNER`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::IamOwner => "IAM_OWNER",
            Self::IamOwnerViewer => "IAM_OWNER_VIEWER",
            Self::OrgOwner => "ORG_OWNER",
            Self::OrgUserManager => "ORG_USER_MANAGER",
            Self::ProjectOwner => "PROJECT_OWNER",
        }
    }

    /// Whether the role is held on a project (and may name one).
    pub const fn is_project_role(self) -> bool {
        matches!(self, Self::ProjectOwner)
    }
}

impl fmt::Display for AdminRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AdminRole {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or(IdError::Character {
            what: "administrator role",
            allowed: "IAM_OWNER, IAM_OWNER_VIEWER, ORG_OWNER, ORG_USER_MANAGER, PROJECT_OWNER",
        })
    }
}

/// A role held by a service user: on the server or organization, or, for a project
/// role, on one project (`project_id`) or on every project (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Administrator {
    /// The service user.
    pub user_id: UserId,
    /// The role.
    pub role: AdminRole,
    /// The project of a project role; `None` for other roles, or a project role on
    /// every project.
    #[cfg_attr(feature = "serde", serde(default))]
    pub project_id: Option<ProjectId>,
    /// When the role was granted (whole seconds).
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub created_at: OffsetDateTime,
}

impl Administrator {
    /// `user_id` holds `role` (on `project_id`), from `now`.
    pub fn new(
        user_id: UserId,
        role: AdminRole,
        project_id: Option<ProjectId>,
        now: OffsetDateTime,
    ) -> Self {
        Self { user_id, role, project_id, created_at: whole_seconds(now) }
    }

    /// Whether this is the grant of `role` on `project_id` to `user_id`.
    pub fn is(&self, user_id: &UserId, role: AdminRole, project_id: Option<&ProjectId>) -> bool {
        &self.user_id == user_id && self.role == role && self.project_id.as_ref() == project_id
    }
}

/// A personal access token of a service user: an opaque bearer token that does not
/// come from a grant, stored as the digest of the token only.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PersonalAccessToken {
    /// Its id, unique.
    pub id: PatId,
    /// The service user it authenticates.
    pub user_id: UserId,
    /// The digest of the token; unique.
    pub digest: TokenDigest,
    /// When it was created (whole seconds).
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub created_at: OffsetDateTime,
    /// When it stops being accepted (whole seconds); `None`: never.
    #[cfg_attr(feature = "serde", serde(default, with = "time::serde::rfc3339::option"))]
    pub expires_at: Option<OffsetDateTime>,
}

/// The expiry ZITADEL writes for a key or token that never expires, and Tessera
/// shows for one: 9999-12-31T23:59:59Z.
pub const NEVER_EXPIRES: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59 UTC);

/// The length of a personal access token: 48 random bytes in base64url, 64
/// characters, a length no access token from a grant has (opaque tokens have
/// [`OPAQUE_TOKEN_LEN`](crate::OPAQUE_TOKEN_LEN)), so a presented token is looked
/// up where it can be.
pub const PAT_LEN: usize = 64;

/// A new personal access token in clear, to show once: [`PAT_LEN`] characters.
pub fn generate_pat() -> Result<Zeroizing<String>, RandomError> {
    let bytes = Zeroizing::new(random_bytes::<48>()?);
    Ok(Zeroizing::new(Base64UrlUnpadded::encode_string(&bytes[..])))
}

impl PersonalAccessToken {
    /// Whether the token is accepted at `now`.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// Administrators and personal access tokens.
///
/// Contract, checked by the conformance suite:
///
/// - Granting a role to a missing user, or a project role on a missing project, is
///   [`StoreError::NotFound`]; granting a role held already changes nothing and
///   returns `false`. Deleting the user removes its roles and tokens.
/// - Personal access token ids and digests are unique ([`StoreError::Conflict`]);
///   adding one for a missing user is [`StoreError::NotFound`]. Removal is scoped to
///   the user: another user's token id changes nothing and returns `false`.
/// - Lists are ordered: roles by user id, role name, then project id (none first);
///   tokens by creation time, then id.
#[async_trait]
pub trait AccessAdmin: Send + Sync {
    /// Grants `admin.role`; returns whether the user did not hold it yet.
    async fn add_administrator(&self, admin: &Administrator) -> Result<bool, StoreError>;

    /// Takes `role` (on `project_id`) from `user_id`; returns whether it was held.
    async fn remove_administrator(
        &self,
        user_id: &UserId,
        role: AdminRole,
        project_id: Option<&ProjectId>,
    ) -> Result<bool, StoreError>;

    /// Every role held, by every user.
    async fn administrators(&self) -> Result<Vec<Administrator>, StoreError>;

    /// The roles `user_id` holds.
    async fn administrator_roles_of(
        &self,
        user_id: &UserId,
    ) -> Result<Vec<Administrator>, StoreError>;

    /// Stores a new personal access token.
    async fn add_personal_access_token(
        &self,
        token: &PersonalAccessToken,
    ) -> Result<(), StoreError>;

    /// The personal access tokens of `user_id`.
    async fn personal_access_tokens_of(
        &self,
        user_id: &UserId,
    ) -> Result<Vec<PersonalAccessToken>, StoreError>;

    /// Removes `user_id`'s token `id`; returns whether it existed.
    async fn remove_personal_access_token(
        &self,
        user_id: &UserId,
        id: &PatId,
    ) -> Result<bool, StoreError>;
}

/// Sorts roles in the order the contract gives.
pub fn sort_administrators(list: &mut [Administrator]) {
    list.sort_by(|a, b| {
        (a.user_id.as_str(), a.role.as_str(), a.project_id.as_ref().map(|p| p.as_str())).cmp(&(
            b.user_id.as_str(),
            b.role.as_str(),
            b.project_id.as_ref().map(|p| p.as_str()),
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in AdminRole::ALL {
            assert_eq!(role.as_str().parse::<AdminRole>().ok(), Some(role));
        }
        assert!("iam_owner".parse::<AdminRole>().is_err());
        assert!("".parse::<AdminRole>().is_err());
    }

    #[test]
    fn generated_tokens_have_their_own_length() -> Result<(), RandomError> {
        let token = generate_pat()?;
        assert_eq!(token.len(), PAT_LEN);
        assert_ne!(PAT_LEN, crate::OPAQUE_TOKEN_LEN);
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(*token, *generate_pat()?);
        Ok(())
    }

    #[test]
    fn a_token_without_expiry_never_expires() -> Result<(), Box<dyn std::error::Error>> {
        let now = OffsetDateTime::from_unix_timestamp(1_000)?;
        let mut token = PersonalAccessToken {
            id: PatId::new("1")?,
            user_id: UserId::new("2")?,
            digest: TokenDigest::of("token"),
            created_at: now,
            expires_at: None,
        };
        assert!(token.is_active(now + time::Duration::days(100_000)));
        token.expires_at = Some(now + time::Duration::seconds(10));
        assert!(token.is_active(now + time::Duration::seconds(9)));
        assert!(!token.is_active(now + time::Duration::seconds(10)));
        Ok(())
    }
}
