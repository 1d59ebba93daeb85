//! The rows of the SQL backends' tables, and their conversions from and to records.
//!
//! Each table has a row type holding its column values as a driver reads and binds
//! them (`&str`, `i64`, `bool`, `Option<&[u8]>`…), borrowed from the driver's row
//! when reading and from the record when writing, and the list of its columns
//! (`COLUMNS`) in the order of the fields. [`UserRow::of`] (and the others) turns a
//! record into a row to insert; [`UserRow::into_record`] checks a row read back
//! into its record, each value with the checks of its type, so that a value that no
//! longer parses is [`StoreError::Corrupt`] naming what was wrong.
//!
//! The encodings, the same in every SQL backend:
//!
//! - times are unix seconds ([`unix`]); an optional time (a service user's
//!   revocation cut-off, a token's revocation, a client key's expiry) is NULL when
//!   absent;
//! - token digests are their 32 bytes; secret digests their 48 bytes
//!   ([`SecretDigest::as_bytes`]: the salt, then the salted hash); a client's
//!   [`Credentials`] (a service user's, an API app's) are three columns,
//!   `secret_digest` and the previous secret's `previous_secret_digest` and
//!   `previous_secret_expires_at`, these two both NULL or both set;
//! - a token's scopes are the space-separated list, its audience a JSON array of
//!   strings, its roles a JSON object (role → organization id → primary domain);
//! - a client key's owner is [`KeyOwner::to_key`]'s string;
//! - a project role's group is NULL when it has none, a service user's description
//!   `''` (the column is never NULL);
//! - algorithms, token types and administrator roles are their names (`ES256`,
//!   `opaque`, `IAM_OWNER`);
//! - an administrator role held on no project has the project id `''`
//!   ([`AdministratorRow::NO_PROJECT`]), which no project id can be, so that the
//!   column can be part of the primary key and sorts before every project.

use std::borrow::Cow;
use std::fmt;

use tessera_scope::ScopeSet;
use time::OffsetDateTime;

use crate::access::{Administrator, PersonalAccessToken};
use crate::client_keys::{ClientKey, KeyOwner};
use crate::credentials::{Credentials, PreviousSecret};
use crate::error::StoreError;
use crate::ids::{
    AppId, ClientId, Domain, OrgId, PatId, ProjectId, RoleKey, TokenId, UserId, Username,
};
use crate::keys::SigningKeyRecord;
use crate::organization::Organization;
use crate::projects::{ApiApp, Project, ProjectRole, RoleClaims, RoleGrant};
use crate::records::{
    AccessTokenType, DisplayName, ServiceUser, TokenDigest, TokenLifetime, TokenRecord,
};
use crate::secret::SecretDigest;

/// A time as stored: unix seconds (records hold whole seconds; a fraction is dropped).
pub fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// The time of unix seconds `secs` read from a column about `what`.
pub fn timestamp(what: &str, secs: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| corrupt(what, e))
}

/// A stored value about `what` that does not read back into its type.
pub fn corrupt(what: &str, e: impl fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("stored {what}: {e}"))
}

/// The 32 bytes of a digest column about `what`.
fn digest_bytes(what: &str, bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| corrupt(what, format_args!("{} bytes instead of 32", bytes.len())))
}

/// The 48 bytes of a secret digest column about `what` (the salt, then the hash).
fn secret_digest(what: &str, bytes: Option<&[u8]>) -> Result<Option<SecretDigest>, StoreError> {
    bytes
        .map(|b| {
            <[u8; SecretDigest::LEN]>::try_from(b).map(SecretDigest::from_bytes).map_err(|_| {
                corrupt(what, format_args!("{} bytes instead of {}", b.len(), SecretDigest::LEN))
            })
        })
        .transpose()
}

/// A previous secret from its two columns, which are both NULL or both set.
fn previous_secret(
    what: &str,
    digest: Option<&[u8]>,
    expires_at: Option<i64>,
) -> Result<Option<PreviousSecret>, StoreError> {
    match (secret_digest(what, digest)?, expires_at) {
        (None, None) => Ok(None),
        (Some(digest), Some(secs)) => Ok(Some(PreviousSecret::new(digest, timestamp(what, secs)?))),
        _ => Err(corrupt(what, "a digest without an expiry, or an expiry without a digest")),
    }
}

/// A client's credentials from their three columns (the same in `service_users` and
/// `api_apps`): the secret digest, and the previous secret's digest and expiry.
/// `what` names the two in errors.
fn credentials(
    [secret_what, previous_what]: [&str; 2],
    secret: Option<&[u8]>,
    previous_digest: Option<&[u8]>,
    previous_expires_at: Option<i64>,
) -> Result<Credentials, StoreError> {
    Ok(Credentials {
        secret: secret_digest(secret_what, secret)?,
        previous: previous_secret(previous_what, previous_digest, previous_expires_at)?,
    })
}

/// The three columns of a client's credentials: the secret digest, the previous
/// secret's digest and its expiry (two NULLs without a previous secret).
fn credentials_columns(credentials: &Credentials) -> (Option<&[u8]>, Option<&[u8]>, Option<i64>) {
    let previous = credentials.previous.as_ref();
    (
        credentials.secret.as_ref().map(|d| &d.as_bytes()[..]),
        previous.map(|p| &p.digest.as_bytes()[..]),
        previous.map(|p| unix(p.expires_at)),
    )
}

/// Checks an identifier column with its type's constructor.
fn checked<T, E: fmt::Display>(
    what: &str,
    value: &str,
    new: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, StoreError> {
    new(value).map_err(|e| corrupt(what, e))
}

/// A row of `service_users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow<'a> {
    /// `id`.
    pub id: &'a str,
    /// `username`.
    pub username: &'a str,
    /// `display_name`.
    pub display_name: &'a str,
    /// `access_token_type`: `opaque` or `jwt`.
    pub access_token_type: &'a str,
    /// `token_lifetime_secs`.
    pub token_lifetime_secs: i64,
    /// `secret_digest`.
    pub secret_digest: Option<&'a [u8]>,
    /// `enabled`.
    pub enabled: bool,
    /// `created_at`, unix seconds.
    pub created_at: i64,
    /// `updated_at`, unix seconds.
    pub updated_at: i64,
    /// `previous_secret_digest`.
    pub previous_secret_digest: Option<&'a [u8]>,
    /// `previous_secret_expires_at`, unix seconds.
    pub previous_secret_expires_at: Option<i64>,
    /// `tokens_revoked_before`, unix seconds: the revocation cut-off, NULL for none.
    pub tokens_revoked_before: Option<i64>,
    /// `description`: `''` for none.
    pub description: &'a str,
}

impl<'a> UserRow<'a> {
    /// The columns, in the order of the fields.
    pub const COLUMNS: &'static str = "id, username, display_name, access_token_type, \
         token_lifetime_secs, secret_digest, enabled, created_at, updated_at, \
         previous_secret_digest, previous_secret_expires_at, tokens_revoked_before, description";
    /// What a row is, for errors.
    pub const WHAT: &'static str = "service user";

    /// The row of `user`.
    pub fn of(user: &'a ServiceUser) -> Self {
        let (secret_digest, previous_secret_digest, previous_secret_expires_at) =
            credentials_columns(&user.credentials);
        Self {
            id: user.id.as_str(),
            username: user.username.as_str(),
            display_name: user.display_name.as_str(),
            access_token_type: user.access_token_type.as_str(),
            token_lifetime_secs: i64::from(user.token_lifetime.as_secs()),
            secret_digest,
            enabled: user.enabled,
            created_at: unix(user.created_at),
            updated_at: unix(user.updated_at),
            previous_secret_digest,
            previous_secret_expires_at,
            tokens_revoked_before: user.tokens_revoked_before.map(unix),
            description: &user.description,
        }
    }

    /// Checks the columns into a record.
    pub fn into_record(self) -> Result<ServiceUser, StoreError> {
        let lifetime = u64::try_from(self.token_lifetime_secs)
            .map_err(|e| corrupt("token lifetime", e))
            .and_then(|secs| {
                TokenLifetime::from_secs(secs).map_err(|e| corrupt("token lifetime", e))
            })?;
        Ok(ServiceUser {
            id: checked("user id", self.id, UserId::new)?,
            username: checked("username", self.username, Username::new)?,
            display_name: checked("display name", self.display_name, DisplayName::from_stored)?,
            description: self.description.to_owned(),
            access_token_type: checked(
                "access token type",
                self.access_token_type,
                str::parse::<AccessTokenType>,
            )?,
            token_lifetime: lifetime,
            credentials: credentials(
                ["secret digest", "previous secret"],
                self.secret_digest,
                self.previous_secret_digest,
                self.previous_secret_expires_at,
            )?,
            enabled: self.enabled,
            created_at: timestamp("creation time", self.created_at)?,
            updated_at: timestamp("update time", self.updated_at)?,
            tokens_revoked_before: self
                .tokens_revoked_before
                .map(|secs| timestamp("token revocation cut-off", secs))
                .transpose()?,
        })
    }
}

/// Spends the work of checking a found user's row into a record, and finds no user:
/// what a lookup by username does when no row matched, so that an unknown username
/// costs what a known one does (the client ID is not a secret, but whether it exists
/// should not show in the time an authentication takes). The row it checks has the
/// shape of a generated user's: an 18-digit id, a salted secret digest.
pub fn no_user_found() -> Option<ServiceUser> {
    const DIGEST: [u8; SecretDigest::LEN] = [0x5a; SecretDigest::LEN];
    let row = UserRow {
        id: "100000000000000000",
        username: "no-such-service-user",
        display_name: "no-such-service-user",
        access_token_type: "opaque",
        token_lifetime_secs: 43_200,
        secret_digest: Some(&DIGEST),
        enabled: true,
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
        previous_secret_digest: None,
        previous_secret_expires_at: None,
        tokens_revoked_before: None,
        description: "",
    };
    drop(std::hint::black_box(std::hint::black_box(row).into_record()));
    None
}

/// A row of `tokens`. Its values may be borrowed or owned, so that a row can wait
/// for a group commit on another thread ([`into_owned`](Self::into_owned)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow<'a> {
    /// `digest`: the [`TokenDigest`]'s 32 bytes.
    pub digest: Cow<'a, [u8]>,
    /// `jti`.
    pub jti: Cow<'a, str>,
    /// `user_id`.
    pub user_id: Cow<'a, str>,
    /// `client_id`.
    pub client_id: Cow<'a, str>,
    /// `scopes`: the space-separated list.
    pub scopes: Cow<'a, str>,
    /// `audience`: a JSON array of strings.
    pub audience: Cow<'a, str>,
    /// `issued_at`, unix seconds.
    pub issued_at: i64,
    /// `expires_at`, unix seconds.
    pub expires_at: i64,
    /// `revoked_at`, unix seconds.
    pub revoked_at: Option<i64>,
    /// `roles`: a JSON object, role → organization id → primary domain.
    pub roles: Cow<'a, str>,
}

impl<'a> TokenRow<'a> {
    /// The columns, in the order of the fields.
    pub const COLUMNS: &'static str = "digest, jti, user_id, client_id, scopes, audience, issued_at, expires_at, revoked_at, roles";
    /// What a row is, for errors.
    pub const WHAT: &'static str = "token";

    /// The row of `record`; fails only if its audience or roles cannot be written
    /// as JSON ([`StoreError::Backend`]).
    pub fn of(record: &'a TokenRecord) -> Result<Self, StoreError> {
        let json = |e| StoreError::Backend(Box::new(e));
        Ok(Self {
            digest: Cow::Borrowed(&record.digest.as_bytes()[..]),
            jti: Cow::Borrowed(record.jti.as_str()),
            user_id: Cow::Borrowed(record.user_id.as_str()),
            client_id: Cow::Borrowed(record.client_id.as_str()),
            scopes: Cow::Owned(record.scopes.to_string()),
            audience: Cow::Owned(serde_json::to_string(&record.audience).map_err(json)?),
            issued_at: unix(record.issued_at),
            expires_at: unix(record.expires_at),
            revoked_at: record.revoked_at.map(unix),
            roles: Cow::Owned(serde_json::to_string(&record.roles).map_err(json)?),
        })
    }

    /// The row with every value owned.
    pub fn into_owned(self) -> TokenRow<'static> {
        TokenRow {
            digest: Cow::Owned(self.digest.into_owned()),
            jti: Cow::Owned(self.jti.into_owned()),
            user_id: Cow::Owned(self.user_id.into_owned()),
            client_id: Cow::Owned(self.client_id.into_owned()),
            scopes: Cow::Owned(self.scopes.into_owned()),
            audience: Cow::Owned(self.audience.into_owned()),
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            roles: Cow::Owned(self.roles.into_owned()),
        }
    }

    /// Checks the columns into a record.
    pub fn into_record(self) -> Result<TokenRecord, StoreError> {
        Ok(TokenRecord {
            digest: TokenDigest::from_bytes(digest_bytes("token digest", &self.digest)?),
            jti: checked("token id", &self.jti, TokenId::new)?,
            user_id: checked("user id", &self.user_id, UserId::new)?,
            client_id: checked("client id", &self.client_id, Username::new)?,
            scopes: checked("scopes", &self.scopes, ScopeSet::parse)?,
            audience: serde_json::from_str(&self.audience).map_err(|e| corrupt("audience", e))?,
            roles: serde_json::from_str::<RoleClaims>(&self.roles)
                .map_err(|e| corrupt("token roles", e))?,
            issued_at: timestamp("issue time", self.issued_at)?,
            expires_at: timestamp("expiry time", self.expires_at)?,
            revoked_at: self
                .revoked_at
                .map(|secs| timestamp("revocation time", secs))
                .transpose()?,
        })
    }
}

/// A row of `signing_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRow<'a> {
    /// `kid`.
    pub kid: &'a str,
    /// `algorithm`: the JWA name.
    pub algorithm: &'a str,
    /// `public_jwk`.
    pub public_jwk: &'a str,
    /// `sealed_private_key`.
    pub sealed_private_key: &'a [u8],
    /// `created_at`, unix seconds.
    pub created_at: i64,
    /// `activates_at`, unix seconds.
    pub activates_at: i64,
}

impl<'a> SigningKeyRow<'a> {
    /// The columns, in the order of the fields.
    pub const COLUMNS: &'static str =
        "kid, algorithm, public_jwk, sealed_private_key, created_at, activates_at";
    /// What a row is, for errors.
    pub const WHAT: &'static str = "signing key";

    /// The row of `key`.
    pub fn of(key: &'a SigningKeyRecord) -> Self {
        Self {
            kid: &key.kid,
            algorithm: key.algorithm.as_str(),
            public_jwk: &key.public_jwk,
            sealed_private_key: &key.sealed_private_key,
            created_at: unix(key.created_at),
            activates_at: unix(key.activates_at),
        }
    }

    /// Checks the columns into a record.
    pub fn into_record(self) -> Result<SigningKeyRecord, StoreError> {
        Ok(SigningKeyRecord {
            kid: self.kid.to_owned(),
            algorithm: checked("signing key algorithm", self.algorithm, str::parse)?,
            public_jwk: self.public_jwk.to_owned(),
            sealed_private_key: self.sealed_private_key.to_vec(),
            created_at: timestamp("signing key creation time", self.created_at)?,
            activates_at: timestamp("signing key activation time", self.activates_at)?,
        })
    }
}

/// A row of `projects`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRow<'a> {
    /// `id`.
    pub id: &'a str,
    /// `name`.
    pub name: &'a str,
    /// `created_at`, unix seconds.
    pub created_at: i64,
}

impl<'a> ProjectRow<'a> {
    /// The columns, in the order of the fields.
    pub const COLUMNS: &'static str = "id, name, created_at";
    /// What a row is, for errors.
    pub const WHAT: &'static str = "project";

    /// The row of `project`.
    pub fn of(project: &'a Project) -> Self {
        Self {
            id: project.id.as_str(),
            name: project.name.as_str(),
            created_at: unix(project.created_at),
        }
    }

    /// Checks the columns into a record.
    pub fn into_record(self) -> Result<Project, StoreError> {
        Ok(Project {
            id: checked("project id", self.id, ProjectId::new)?,
            name: checked("project name", self.name, DisplayName::from_stored)?,
            created_at: timestamp("project creation time", self.created_at)?,
        })
    }
}

/// A row of `api_apps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiAppRow<'a> {
    /// `client_id`.
    pub client_id: &'a str,
    /// `project_id`.
    pub project_id: &'a str,
    /// `name`.
    pub name: &'a str,
    /// `secret_digest`.
    pub secret_digest: Option<&'a [u8]>,
    /// `enabled`.
    pub enabled: bool,
    /// `created_at`, unix seconds.
    pub created_at: i64,
    /// `updated_at`, unix seconds.
    pub updated_at: i64,
    /// `previous_secret_digest`.
    pub previous_secret_digest: Option<&'a [u8]>,
    /// `previous_secret_expires_at`, unix seconds.
    pub previous_secret_expires_at: Option<i64>,
    /// `app_id`.
    pub app_id: &'a str,
}

impl<'a> ApiAppRow<'a> {
    /// The columns, in the order of the fields.
    pub const COLUMNS: &'static str = "client_id, project_id, name, secret_digest, enabled, \
         created_at, updated_at, previous_secret_digest, previous_secret_expires_at, app_id";
    /// What a row is, for errors.
    pub const WHAT: &'static str = "API app";

    /// The row of `app`.
    pub fn of(app: &'a ApiApp) -> Self {
        let (secret_digest, previous_secret_digest, previous_secret_expires_at) =
            credentials_columns(&app.credentials);
        Self {
            client_id: app.client_id.as_str(),
            project_id: app.project_id.as_str(),
            name: app.name.as_str(),
            secret_digest,
            enabled: app.enabled,
            created_at: unix(app.created_at),
            updated_at: unix(app.updated_at),
            previous_secret_digest,
            previous_secret_expires_at,
            app_id: app.app_id.as_str(),
        }
    }

    /// Checks the columns into a record.
    pub fn into_record(self) -> Result<ApiApp, StoreError> {
        Ok(ApiApp {
            client_id: checked("API app client ID", self.client_id, ClientId::new)?,
            app_id: checked("API app id", self.app_id, AppId::new)?,
            project_id: checked("project id", self.project_id, ProjectId::new)?,
            name: checked("API app name", self.name, DisplayName::from_stored)?,
            credentials: credentials(
                ["API app secret digest", "API app previous secret"],
                self.secret_digest,
                self.previous_secret_digest,
                self.previous_secret_expires_at,
            )?,
            enabled: self.enabled,
            created_at: timestamp("API app creation time", self.created_at)?,
            updated_at: timestamp("API app update time", self.updated_at)?,
        })
    }
}

/// A row of `role_grants`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow<'a> {
    /// `user_id`.
    pub user_id: &'a str,
    /// `project_id`.
    pub project_id: &'a str,
    /// `role`.
    pub role: &'a str,
}

impl<'a> GrantRow<'a> {
    /// The columns, in the order of the fields.
    pub const COLUMNS: &'static str = "user_id, project_id, role";
    /// What a row is, for errors.
    pub const WHAT: &'static str = "role grant";

    /// The row of `grant`.
    pub fn of(grant: &'a RoleGrant) -> Self {
        Self {
            user_id: grant.user_id.as_str(),
            project_id: grant.project_id.as_str(),
            role: grant.role.as_str(),
        }
    }

    /// Checks the columns into a record.
    pub fn into_record(self) -> Result<RoleGrant, StoreError> {
        Ok(RoleGrant {
            user_id: checked("user id", self.user_id, UserId::new)?,
            project_id: checked("project id", self.project_id, ProjectId::new)?,
            role: checked("role", self.role, RoleKey::new)?,
        })
    }
}

/// A row of `project_roles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRoleRow<'a> {
    /// `project_id`.
    pub project_id: &'a str,
    /// `key`.
    pub key: &'a str,
    /// `display_name`.
    pub display_name: &'a str,
    /// `group_name`: the group, NULL for none.
    pub group_name: Option<&'a str>,
    /// `created_at`, unix seconds.
    pub created_at: i64,
    /// `updated_at`, unix seconds.
    pub updated_at: i64,
}

impl<'a> ProjectRoleRow<'a> {
    /// The columns, in the order of the fields.
    pub const COLUMNS: &'static str =
        "project_id, key, display_name, group_name, created_at, updated_at";
    /// What a row is, for errors.
    pub const WHAT: &'static str = "project role";

    /// The row of `role`.
    pub fn of(role: &'a ProjectRole) -> Self {
        Self {
            project_id: role.project_id.as_str(),
            key: role.key.as_str(),
            display_name: role.display_name.as_str(),
            group_name: role.group.as_ref().map(DisplayName::as_str),
            created_at: unix(role.created_at),
            updated_at: unix(role.updated_at),
        }
    }

    /// Checks the columns into a record.
    pub fn into_record(self) -> Result<ProjectRole, StoreError> {
        Ok(ProjectRole {
            project_id: checked("project id", self.project_id, ProjectId::new)?,
            key: checked("project role key", self.key, RoleKey::new)?,
            display_name: checked(
                "project role name",
                self.display_name,
                DisplayName::from_stored,
            )?,
            group: self
                .group_name
                .map(|group| checked("project role group", group, DisplayName::from_stored))
                .transpose()?,
            created_at: timestamp("project role creation time", self.created_at)?,
            updated_at: timestamp("project role update time", self.updated_at)?,
        })
    }
}

/// A row of `client_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKeyRow<'a> {
    /// `key_id`.
    pub key_id: &'a str,
    /// `owner`: [`KeyOwner::to_key`]'s string.
    pub owner: Cow<'a, str>,
    /// `algorithm`: the JWA name.
    pub algorithm: &'a str,
    /// `public_jwk`.
    pub public_jwk: &'a str,
    /// `created_at`, unix seconds.
    pub created_at: i64,
    /// `expires_at`, unix seconds.
    pub expires_at: Option<i64>,
}

impl<'a> ClientKeyRow<'a> {
    /// The columns, in the order of the fields.
    pub const COLUMNS: &'static str =
        "key_id, owner, algorithm, public_jwk, created_at, expires_at";
    /// What a row is, for errors.
    pub const WHAT: &'static str = "client key";

    /// The row of `key`.
    pub fn of(key: &'a ClientKey) -> Self {
        Self {
            key_id: &key.key_id,
            owner: Cow::Owned(key.owner.to_key()),
            algorithm: key.algorithm.as_str(),
            public_jwk: &key.public_jwk,
            created_at: unix(key.created_at),
            expires_at: key.expires_at.map(unix),
        }
    }

    /// Checks the columns into a record.
    pub fn into_record(self) -> Result<ClientKey, StoreError> {
        let owner = KeyOwner::from_key(&self.owner).ok_or_else(|| {
            corrupt("client key owner", format_args!("{:?} is not user:… or app:…", self.owner))
        })?;
        Ok(ClientKey {
            key_id: self.key_id.to_owned(),
            owner,
            algorithm: checked("client key algorithm", self.algorithm, str::parse)?,
            public_jwk: self.public_jwk.to_owned(),
            created_at: timestamp("client key creation time", self.created_at)?,
            expires_at: self
                .expires_at
                .map(|secs| timestamp("client key expiry time", secs))
                .transpose()?,
        })
    }
}

/// A row of `administrators`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdministratorRow<'a> {
    /// `user_id`.
    pub user_id: &'a str,
    /// `role`: the role's name ([`AdminRole::as_str`](crate::AdminRole::as_str)).
    pub role: &'a str,
    /// `project_id`: the project of a project role, [`NO_PROJECT`](Self::NO_PROJECT)
    /// for none.
    pub project_id: &'a str,
    /// `created_at`, unix seconds.
    pub created_at: i64,
}

impl<'a> AdministratorRow<'a> {
    /// The columns, in the order of the fields.
    pub const COLUMNS: &'static str = "user_id, role, project_id, created_at";
    /// What a row is, for errors.
    pub const WHAT: &'static str = "administrator";
    /// The `project_id` of a role held on no project.
    pub const NO_PROJECT: &'static str = "";

    /// The row of `admin`.
    pub fn of(admin: &'a Administrator) -> Self {
        Self {
            user_id: admin.user_id.as_str(),
            role: admin.role.as_str(),
            project_id: Self::project_column(admin.project_id.as_ref()),
            created_at: unix(admin.created_at),
        }
    }

    /// The `project_id` column of `project`.
    pub fn project_column(project: Option<&'a ProjectId>) -> &'a str {
        project.map_or(Self::NO_PROJECT, ProjectId::as_str)
    }

    /// Checks the columns into a record.
    pub fn into_record(self) -> Result<Administrator, StoreError> {
        let project_id = if self.project_id == Self::NO_PROJECT {
            None
        } else {
            Some(checked("administrator project id", self.project_id, ProjectId::new)?)
        };
        Ok(Administrator {
            user_id: checked("user id", self.user_id, UserId::new)?,
            role: checked("administrator role", self.role, str::parse)?,
            project_id,
            created_at: timestamp("administrator creation time", self.created_at)?,
        })
    }
}

/// A row of `personal_access_tokens`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalAccessTokenRow<'a> {
    /// `id`.
    pub id: &'a str,
    /// `user_id`.
    pub user_id: &'a str,
    /// `digest`: the [`TokenDigest`]'s 32 bytes.
    pub digest: &'a [u8],
    /// `created_at`, unix seconds.
    pub created_at: i64,
    /// `expires_at`, unix seconds; NULL: never.
    pub expires_at: Option<i64>,
}

impl<'a> PersonalAccessTokenRow<'a> {
    /// The columns, in the order of the fields.
    pub const COLUMNS: &'static str = "id, user_id, digest, created_at, expires_at";
    /// What a row is, for errors.
    pub const WHAT: &'static str = "personal access token";

    /// The row of `token`.
    pub fn of(token: &'a PersonalAccessToken) -> Self {
        Self {
            id: token.id.as_str(),
            user_id: token.user_id.as_str(),
            digest: token.digest.as_bytes(),
            created_at: unix(token.created_at),
            expires_at: token.expires_at.map(unix),
        }
    }

    /// Checks the columns into a record.
    pub fn into_record(self) -> Result<PersonalAccessToken, StoreError> {
        Ok(PersonalAccessToken {
            id: checked("personal access token id", self.id, PatId::new)?,
            user_id: checked("user id", self.user_id, UserId::new)?,
            digest: TokenDigest::from_bytes(digest_bytes(
                "personal access token digest",
                self.digest,
            )?),
            created_at: timestamp("personal access token creation time", self.created_at)?,
            expires_at: self
                .expires_at
                .map(|secs| timestamp("personal access token expiry time", secs))
                .transpose()?,
        })
    }
}

/// The row of `organization` (besides its `singleton` key, always 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationRow<'a> {
    /// `id`.
    pub id: &'a str,
    /// `name`.
    pub name: &'a str,
    /// `primary_domain`.
    pub primary_domain: &'a str,
    /// `created_at`, unix seconds.
    pub created_at: i64,
}

impl<'a> OrganizationRow<'a> {
    /// The columns, in the order of the fields.
    pub const COLUMNS: &'static str = "id, name, primary_domain, created_at";
    /// What a row is, for errors.
    pub const WHAT: &'static str = "organization";

    /// The row of `org`.
    pub fn of(org: &'a Organization) -> Self {
        Self {
            id: org.id.as_str(),
            name: org.name.as_str(),
            primary_domain: org.primary_domain.as_str(),
            created_at: unix(org.created_at),
        }
    }

    /// Checks the columns into a record.
    pub fn into_record(self) -> Result<Organization, StoreError> {
        Ok(Organization {
            id: checked("organization id", self.id, OrgId::new)?,
            name: checked("organization name", self.name, DisplayName::from_stored)?,
            primary_domain: checked(
                "organization primary domain",
                self.primary_domain,
                Domain::new,
            )?,
            created_at: timestamp("organization creation time", self.created_at)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;
    use crate::testkit;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn records_round_trip_through_their_rows() -> TestResult {
        let (mut user, _) = testkit::sample_user("rows");
        assert_eq!(UserRow::of(&user).into_record()?, user, "without a cut-off");
        assert_eq!(UserRow::of(&user).tokens_revoked_before, None, "no cut-off is NULL");
        user.credentials.previous =
            Some(PreviousSecret::new(SecretDigest::from_bytes([7; 48]), testkit::t0()));
        user.tokens_revoked_before = Some(testkit::t0() + Duration::seconds(30));
        assert_eq!(UserRow::of(&user).tokens_revoked_before, Some(1_700_000_030));
        assert_eq!(UserRow::of(&user).into_record()?, user);
        user.description = "Exports invoices".to_owned();
        assert_eq!(UserRow::of(&user).description, "Exports invoices");
        assert_eq!(UserRow::of(&user).into_record()?, user);

        let mut token = testkit::sample_token(&user, "token", 60);
        token.roles.insert(&RoleKey::new("reader")?, &testkit::sample_organization("A", "a.b"));
        token.revoked_at = Some(testkit::t0() + Duration::seconds(5));
        assert_eq!(TokenRow::of(&token)?.into_owned().into_record()?, token);

        let key = testkit::sample_signing_key("k1", 60);
        assert_eq!(SigningKeyRow::of(&key).into_record()?, key);
        let project = testkit::sample_project("orders");
        assert_eq!(ProjectRow::of(&project).into_record()?, project);
        let (app, _) = testkit::sample_app(&project, "orders-api");
        assert_eq!(ApiAppRow::of(&app).into_record()?, app);
        let grant = RoleGrant {
            user_id: user.id.clone(),
            project_id: project.id.clone(),
            role: RoleKey::new("reader")?,
        };
        assert_eq!(GrantRow::of(&grant).into_record()?, grant);
        let mut role = ProjectRole::new(
            project.id.clone(),
            RoleKey::new("reader")?,
            DisplayName::new("Reader")?,
            None,
            testkit::t0(),
        );
        assert_eq!(ProjectRoleRow::of(&role).group_name, None, "no group is NULL");
        assert_eq!(ProjectRoleRow::of(&role).into_record()?, role);
        role.group = Some(DisplayName::new("Readers")?);
        role.updated_at += Duration::seconds(5);
        assert_eq!(ProjectRoleRow::of(&role).into_record()?, role);
        let client_key =
            testkit::sample_client_key(KeyOwner::ApiApp(app.client_id.clone()), "key-1", 0);
        assert_eq!(ClientKeyRow::of(&client_key).into_record()?, client_key);
        let org = testkit::sample_organization("Acme", "acme.example");
        assert_eq!(OrganizationRow::of(&org).into_record()?, org);

        let mut admin =
            Administrator::new(user.id.clone(), crate::AdminRole::OrgOwner, None, testkit::t0());
        assert_eq!(AdministratorRow::of(&admin).project_id, "", "no project is ''");
        assert_eq!(AdministratorRow::of(&admin).into_record()?, admin);
        admin.role = crate::AdminRole::ProjectOwner;
        admin.project_id = Some(project.id.clone());
        assert_eq!(AdministratorRow::of(&admin).role, "PROJECT_OWNER");
        assert_eq!(AdministratorRow::of(&admin).into_record()?, admin);
        let mut pat = testkit::sample_personal_access_token(&user, "100000000000000001", "pat", 5);
        assert_eq!(PersonalAccessTokenRow::of(&pat).into_record()?, pat);
        pat.expires_at = None;
        assert_eq!(PersonalAccessTokenRow::of(&pat).expires_at, None, "no expiry is NULL");
        assert_eq!(PersonalAccessTokenRow::of(&pat).into_record()?, pat);
        Ok(())
    }

    #[test]
    fn rows_that_do_not_parse_are_corrupt() {
        let (user, _) = testkit::sample_user("rows");
        let row = UserRow::of(&user);
        let short = [0u8; 31];
        let unsalted = [0u8; 32];
        for bad in [
            UserRow { access_token_type: "paper", ..row.clone() },
            UserRow { username: "a b", ..row.clone() },
            UserRow { token_lifetime_secs: -1, ..row.clone() },
            UserRow { secret_digest: Some(&short), ..row.clone() },
            UserRow { secret_digest: Some(&unsalted), ..row.clone() },
            UserRow {
                previous_secret_digest: Some(&unsalted),
                previous_secret_expires_at: Some(5),
                ..row.clone()
            },
            UserRow { previous_secret_expires_at: Some(5), ..row.clone() },
            UserRow { created_at: i64::MAX, ..row.clone() },
            UserRow { tokens_revoked_before: Some(i64::MAX), ..row.clone() },
        ] {
            let result = bad.clone().into_record();
            assert!(matches!(result, Err(StoreError::Corrupt(_))), "{bad:?}: {result:?}");
        }
        let token = testkit::sample_token(&user, "token", 60);
        let row = TokenRow::of(&token).unwrap_or_else(|e| panic!("{e}"));
        for bad in [
            TokenRow { scopes: "two  spaces".into(), ..row.clone() },
            TokenRow { roles: r#"["not", "a map"]"#.into(), ..row.clone() },
            TokenRow { audience: "{}".into(), ..row.clone() },
            TokenRow { digest: Cow::Borrowed(&short[..]), ..row.clone() },
        ] {
            let result = bad.clone().into_record();
            assert!(matches!(result, Err(StoreError::Corrupt(_))), "{bad:?}: {result:?}");
        }
        let key = testkit::sample_client_key(KeyOwner::ServiceUser(user.id.clone()), "k", 0);
        let bad = ClientKeyRow { owner: "nobody:1".into(), ..ClientKeyRow::of(&key) };
        assert!(matches!(bad.into_record(), Err(StoreError::Corrupt(_))));
        let role = ProjectRole::new(
            ProjectId::reserved(),
            RoleKey::new("reader").unwrap_or_else(|e| panic!("{e}")),
            DisplayName::new("Reader").unwrap_or_else(|e| panic!("{e}")),
            None,
            testkit::t0(),
        );
        let row = ProjectRoleRow::of(&role);
        for bad in [
            ProjectRoleRow { key: "a b", ..row.clone() },
            ProjectRoleRow { display_name: "", ..row.clone() },
            ProjectRoleRow { group_name: Some("tab\t"), ..row.clone() },
            ProjectRoleRow { updated_at: i64::MAX, ..row.clone() },
        ] {
            let result = bad.clone().into_record();
            assert!(matches!(result, Err(StoreError::Corrupt(_))), "{bad:?}: {result:?}");
        }
        let org = testkit::sample_organization("Acme", "acme.example");
        let bad = OrganizationRow { primary_domain: "not a domain", ..OrganizationRow::of(&org) };
        assert!(matches!(bad.into_record(), Err(StoreError::Corrupt(_))));
        let admin =
            Administrator::new(user.id.clone(), crate::AdminRole::IamOwner, None, testkit::t0());
        let row = AdministratorRow::of(&admin);
        for bad in [
            AdministratorRow { role: "iam_owner", ..row.clone() },
            AdministratorRow { role: "", ..row.clone() },
            AdministratorRow { project_id: "a b", ..row.clone() },
            AdministratorRow { user_id: "", ..row.clone() },
        ] {
            let result = bad.clone().into_record();
            assert!(matches!(result, Err(StoreError::Corrupt(_))), "{bad:?}: {result:?}");
        }
        let pat = testkit::sample_personal_access_token(&user, "1", "pat", 0);
        let row = PersonalAccessTokenRow::of(&pat);
        for bad in [
            PersonalAccessTokenRow { digest: &short, ..row.clone() },
            PersonalAccessTokenRow { id: "a/b", ..row.clone() },
            PersonalAccessTokenRow { expires_at: Some(i64::MAX), ..row.clone() },
        ] {
            let result = bad.clone().into_record();
            assert!(matches!(result, Err(StoreError::Corrupt(_))), "{bad:?}: {result:?}");
        }
    }
}
