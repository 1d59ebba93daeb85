//! Conversion between records and rows.
//!
//! Rows are read into plain column values first ([`UserRow`], [`TokenRow`],
//! [`KeyRow`], [`ProjectRow`], [`AppRow`], [`GrantRow`], [`ClientKeyRow`],
//! [`OrganizationRow`]) and then
//! checked into records, so a row that no longer parses (edited by hand, written by
//! another version) is reported as [`StoreError::Corrupt`].

use rusqlite::{Connection, OptionalExtension, Params, Row};
use tessera_scope::ScopeSet;
use tessera_store::{
    AccessTokenType, ApiApp, AppId, ClientId, ClientKey, DisplayName, Domain, KeyOwner, OrgId,
    Organization, PreviousSecret, Project, ProjectId, RoleClaims, RoleGrant, RoleKey, SecretDigest,
    ServiceUser, SigningKeyRecord, StoreError, TokenDigest, TokenId, TokenLifetime, TokenRecord,
    UserId, Username,
};
use time::OffsetDateTime;

use crate::error::{corrupt, map};

/// The columns of `service_users`, in the order [`UserRow::from_row`] reads them.
pub(crate) const USER_COLUMNS: &str = "id, username, display_name, access_token_type, \
     token_lifetime_secs, secret_digest, enabled, created_at, updated_at, \
     previous_secret_digest, previous_secret_expires_at";

/// The columns of `tokens`, in the order [`TokenRow::from_row`] reads them.
pub(crate) const TOKEN_COLUMNS: &str =
    "digest, jti, user_id, client_id, scopes, audience, issued_at, expires_at, revoked_at, roles";

/// A timestamp as stored: unix seconds (any fraction is dropped; records hold whole seconds).
pub(crate) fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn timestamp(what: &str, secs: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| corrupt(what, e))
}

fn digest_bytes(what: &str, bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| corrupt(what, format_args!("{} bytes instead of 32", bytes.len())))
}

/// A previous secret from its two columns, which are both NULL or both set.
fn previous_secret(
    what: &str,
    digest: Option<Vec<u8>>,
    expires_at: Option<i64>,
) -> Result<Option<PreviousSecret>, StoreError> {
    match (digest, expires_at) {
        (None, None) => Ok(None),
        (Some(bytes), Some(secs)) => Ok(Some(PreviousSecret::new(
            SecretDigest::from_bytes(digest_bytes(what, &bytes)?),
            timestamp(what, secs)?,
        ))),
        _ => Err(corrupt(what, "a digest without an expiry, or an expiry without a digest")),
    }
}

/// The previous secret as stored: its digest and its expiry (unix seconds), or two NULLs.
pub(crate) fn previous_secret_columns(
    previous: Option<&PreviousSecret>,
) -> (Option<&[u8]>, Option<i64>) {
    (previous.map(|p| &p.digest.as_bytes()[..]), previous.map(|p| unix(p.expires_at)))
}

/// The raw columns of a `service_users` row.
pub(crate) struct UserRow {
    id: String,
    username: String,
    display_name: String,
    access_token_type: String,
    token_lifetime_secs: i64,
    secret_digest: Option<Vec<u8>>,
    enabled: bool,
    created_at: i64,
    updated_at: i64,
    previous_secret_digest: Option<Vec<u8>>,
    previous_secret_expires_at: Option<i64>,
}

impl UserRow {
    /// Reads the columns listed in [`USER_COLUMNS`].
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            username: row.get(1)?,
            display_name: row.get(2)?,
            access_token_type: row.get(3)?,
            token_lifetime_secs: row.get(4)?,
            secret_digest: row.get(5)?,
            enabled: row.get(6)?,
            created_at: row.get(7)?,
            updated_at: row.get(8)?,
            previous_secret_digest: row.get(9)?,
            previous_secret_expires_at: row.get(10)?,
        })
    }

    /// Checks the columns into a record.
    pub(crate) fn into_user(self) -> Result<ServiceUser, StoreError> {
        let lifetime = u64::try_from(self.token_lifetime_secs)
            .map_err(|e| corrupt("token lifetime", e))
            .and_then(|secs| {
                TokenLifetime::from_secs(secs).map_err(|e| corrupt("token lifetime", e))
            })?;
        Ok(ServiceUser {
            id: UserId::new(&self.id).map_err(|e| corrupt("user id", e))?,
            username: Username::new(&self.username).map_err(|e| corrupt("username", e))?,
            display_name: DisplayName::new(&self.display_name)
                .map_err(|e| corrupt("display name", e))?,
            access_token_type: self
                .access_token_type
                .parse::<AccessTokenType>()
                .map_err(|e| corrupt("access token type", e))?,
            token_lifetime: lifetime,
            secret: self
                .secret_digest
                .map(|bytes| digest_bytes("secret digest", &bytes).map(SecretDigest::from_bytes))
                .transpose()?,
            previous_secret: previous_secret(
                "previous secret",
                self.previous_secret_digest,
                self.previous_secret_expires_at,
            )?,
            enabled: self.enabled,
            created_at: timestamp("creation time", self.created_at)?,
            updated_at: timestamp("update time", self.updated_at)?,
        })
    }
}

/// The raw columns of a `tokens` row.
pub(crate) struct TokenRow {
    digest: Vec<u8>,
    jti: String,
    user_id: String,
    client_id: String,
    scopes: String,
    audience: String,
    issued_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    roles: String,
}

impl TokenRow {
    /// Reads the columns listed in [`TOKEN_COLUMNS`].
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            digest: row.get(0)?,
            jti: row.get(1)?,
            user_id: row.get(2)?,
            client_id: row.get(3)?,
            scopes: row.get(4)?,
            audience: row.get(5)?,
            issued_at: row.get(6)?,
            expires_at: row.get(7)?,
            revoked_at: row.get(8)?,
            roles: row.get(9)?,
        })
    }

    /// Checks the columns into a record.
    pub(crate) fn into_record(self) -> Result<TokenRecord, StoreError> {
        Ok(TokenRecord {
            digest: TokenDigest::from_bytes(digest_bytes("token digest", &self.digest)?),
            jti: TokenId::new(&self.jti).map_err(|e| corrupt("token id", e))?,
            user_id: UserId::new(&self.user_id).map_err(|e| corrupt("user id", e))?,
            client_id: Username::new(&self.client_id).map_err(|e| corrupt("client id", e))?,
            scopes: ScopeSet::parse(&self.scopes).map_err(|e| corrupt("scopes", e))?,
            audience: serde_json::from_str(&self.audience).map_err(|e| corrupt("audience", e))?,
            roles: serde_json::from_str(&self.roles).map_err(|e| corrupt("token roles", e))?,
            issued_at: timestamp("issue time", self.issued_at)?,
            expires_at: timestamp("expiry time", self.expires_at)?,
            revoked_at: self
                .revoked_at
                .map(|secs| timestamp("revocation time", secs))
                .transpose()?,
        })
    }
}

/// The audience as stored: a JSON array of strings.
pub(crate) fn audience_json(audience: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(audience).map_err(|e| StoreError::Backend(Box::new(e)))
}

/// The roles of a token as stored: a JSON object, role → organization id →
/// organization primary domain.
pub(crate) fn roles_json(roles: &RoleClaims) -> Result<String, StoreError> {
    serde_json::to_string(roles).map_err(|e| StoreError::Backend(Box::new(e)))
}

/// The columns of `signing_keys`, in the order [`KeyRow::from_row`] reads them.
pub(crate) const KEY_COLUMNS: &str =
    "kid, algorithm, public_jwk, sealed_private_key, created_at, activates_at";

/// The raw columns of a `signing_keys` row.
pub(crate) struct KeyRow {
    kid: String,
    algorithm: String,
    public_jwk: String,
    sealed_private_key: Vec<u8>,
    created_at: i64,
    activates_at: i64,
}

impl KeyRow {
    /// Reads the columns listed in [`KEY_COLUMNS`].
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            kid: row.get(0)?,
            algorithm: row.get(1)?,
            public_jwk: row.get(2)?,
            sealed_private_key: row.get(3)?,
            created_at: row.get(4)?,
            activates_at: row.get(5)?,
        })
    }

    /// Checks the columns into a record.
    pub(crate) fn into_record(self) -> Result<SigningKeyRecord, StoreError> {
        Ok(SigningKeyRecord {
            algorithm: self.algorithm.parse().map_err(|e| corrupt("signing key algorithm", e))?,
            kid: self.kid,
            public_jwk: self.public_jwk,
            sealed_private_key: self.sealed_private_key,
            created_at: timestamp("signing key created_at", self.created_at)?,
            activates_at: timestamp("signing key activates_at", self.activates_at)?,
        })
    }
}

/// The columns of `projects`, in the order [`ProjectRow::from_row`] reads them.
pub(crate) const PROJECT_COLUMNS: &str = "id, name, created_at";

/// The raw columns of a `projects` row.
pub(crate) struct ProjectRow {
    id: String,
    name: String,
    created_at: i64,
}

impl ProjectRow {
    /// Reads the columns listed in [`PROJECT_COLUMNS`].
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self { id: row.get(0)?, name: row.get(1)?, created_at: row.get(2)? })
    }

    /// Checks the columns into a record.
    pub(crate) fn into_project(self) -> Result<Project, StoreError> {
        Ok(Project {
            id: ProjectId::new(&self.id).map_err(|e| corrupt("project id", e))?,
            name: DisplayName::new(&self.name).map_err(|e| corrupt("project name", e))?,
            created_at: timestamp("project creation time", self.created_at)?,
        })
    }
}

/// The columns of `api_apps`, in the order [`AppRow::from_row`] reads them.
pub(crate) const APP_COLUMNS: &str = "client_id, project_id, name, secret_digest, enabled, \
     created_at, updated_at, previous_secret_digest, previous_secret_expires_at, app_id";

/// The raw columns of an `api_apps` row.
pub(crate) struct AppRow {
    client_id: String,
    project_id: String,
    name: String,
    secret_digest: Option<Vec<u8>>,
    enabled: bool,
    created_at: i64,
    updated_at: i64,
    previous_secret_digest: Option<Vec<u8>>,
    previous_secret_expires_at: Option<i64>,
    app_id: String,
}

impl AppRow {
    /// Reads the columns listed in [`APP_COLUMNS`].
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            client_id: row.get(0)?,
            project_id: row.get(1)?,
            name: row.get(2)?,
            secret_digest: row.get(3)?,
            enabled: row.get(4)?,
            created_at: row.get(5)?,
            updated_at: row.get(6)?,
            previous_secret_digest: row.get(7)?,
            previous_secret_expires_at: row.get(8)?,
            app_id: row.get(9)?,
        })
    }

    /// Checks the columns into a record.
    pub(crate) fn into_app(self) -> Result<ApiApp, StoreError> {
        Ok(ApiApp {
            client_id: ClientId::new(&self.client_id)
                .map_err(|e| corrupt("API app client ID", e))?,
            app_id: AppId::new(&self.app_id).map_err(|e| corrupt("API app id", e))?,
            project_id: ProjectId::new(&self.project_id).map_err(|e| corrupt("project id", e))?,
            name: DisplayName::new(&self.name).map_err(|e| corrupt("API app name", e))?,
            secret: self
                .secret_digest
                .map(|bytes| {
                    digest_bytes("API app secret digest", &bytes).map(SecretDigest::from_bytes)
                })
                .transpose()?,
            previous_secret: previous_secret(
                "API app previous secret",
                self.previous_secret_digest,
                self.previous_secret_expires_at,
            )?,
            enabled: self.enabled,
            created_at: timestamp("API app creation time", self.created_at)?,
            updated_at: timestamp("API app update time", self.updated_at)?,
        })
    }
}

/// The columns of `role_grants`, in the order [`GrantRow::from_row`] reads them.
pub(crate) const GRANT_COLUMNS: &str = "user_id, project_id, role";

/// The raw columns of a `role_grants` row.
pub(crate) struct GrantRow {
    user_id: String,
    project_id: String,
    role: String,
}

impl GrantRow {
    /// Reads the columns listed in [`GRANT_COLUMNS`].
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self { user_id: row.get(0)?, project_id: row.get(1)?, role: row.get(2)? })
    }

    /// Checks the columns into a record.
    pub(crate) fn into_grant(self) -> Result<RoleGrant, StoreError> {
        Ok(RoleGrant {
            user_id: UserId::new(&self.user_id).map_err(|e| corrupt("user id", e))?,
            project_id: ProjectId::new(&self.project_id).map_err(|e| corrupt("project id", e))?,
            role: RoleKey::new(&self.role).map_err(|e| corrupt("role", e))?,
        })
    }
}

/// The columns of `client_keys`, in the order [`ClientKeyRow::from_row`] reads them.
pub(crate) const CLIENT_KEY_COLUMNS: &str =
    "key_id, owner, algorithm, public_jwk, created_at, expires_at";

/// The raw columns of a `client_keys` row.
pub(crate) struct ClientKeyRow {
    key_id: String,
    owner: String,
    algorithm: String,
    public_jwk: String,
    created_at: i64,
    expires_at: Option<i64>,
}

impl ClientKeyRow {
    /// Reads the columns listed in [`CLIENT_KEY_COLUMNS`].
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            key_id: row.get(0)?,
            owner: row.get(1)?,
            algorithm: row.get(2)?,
            public_jwk: row.get(3)?,
            created_at: row.get(4)?,
            expires_at: row.get(5)?,
        })
    }

    /// Checks the columns into a record.
    pub(crate) fn into_key(self) -> Result<ClientKey, StoreError> {
        let owner = KeyOwner::from_key(&self.owner).ok_or_else(|| {
            corrupt("client key owner", format_args!("{:?} is not user:… or app:…", self.owner))
        })?;
        Ok(ClientKey {
            algorithm: self.algorithm.parse().map_err(|e| corrupt("client key algorithm", e))?,
            key_id: self.key_id,
            owner,
            public_jwk: self.public_jwk,
            created_at: timestamp("client key creation time", self.created_at)?,
            expires_at: self
                .expires_at
                .map(|secs| timestamp("client key expiry time", secs))
                .transpose()?,
        })
    }
}

/// The columns of `organization`, in the order [`OrganizationRow::from_row`] reads them.
pub(crate) const ORGANIZATION_COLUMNS: &str = "id, name, primary_domain, created_at";

/// The raw columns of the `organization` row.
pub(crate) struct OrganizationRow {
    id: String,
    name: String,
    primary_domain: String,
    created_at: i64,
}

impl OrganizationRow {
    /// Reads the columns listed in [`ORGANIZATION_COLUMNS`].
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            name: row.get(1)?,
            primary_domain: row.get(2)?,
            created_at: row.get(3)?,
        })
    }

    /// Checks the columns into a record.
    pub(crate) fn into_organization(self) -> Result<Organization, StoreError> {
        Ok(Organization {
            id: OrgId::new(&self.id).map_err(|e| corrupt("organization id", e))?,
            name: DisplayName::new(&self.name).map_err(|e| corrupt("organization name", e))?,
            primary_domain: Domain::new(&self.primary_domain)
                .map_err(|e| corrupt("organization primary domain", e))?,
            created_at: timestamp("organization creation time", self.created_at)?,
        })
    }
}

/// A row type read from one table and checked into a record.
pub(crate) trait StoredRow: Sized {
    /// The record the row becomes.
    type Record;
    /// The columns [`StoredRow::read`] reads, in order.
    const COLUMNS: &'static str;
    /// What a row is, for errors ("service user", "token", ...).
    const WHAT: &'static str;
    /// Reads the columns.
    fn read(row: &Row<'_>) -> rusqlite::Result<Self>;
    /// Checks the columns into a record.
    fn check(self) -> Result<Self::Record, StoreError>;
}

macro_rules! stored_row {
    ($row:ty, $record:ty, $columns:expr, $what:expr, $check:path) => {
        impl StoredRow for $row {
            type Record = $record;
            const COLUMNS: &'static str = $columns;
            const WHAT: &'static str = $what;
            fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
                <$row>::from_row(row)
            }
            fn check(self) -> Result<Self::Record, StoreError> {
                $check(self)
            }
        }
    };
}

stored_row!(UserRow, ServiceUser, USER_COLUMNS, "service user", UserRow::into_user);
stored_row!(TokenRow, TokenRecord, TOKEN_COLUMNS, "token", TokenRow::into_record);
stored_row!(KeyRow, SigningKeyRecord, KEY_COLUMNS, "signing key", KeyRow::into_record);
stored_row!(ProjectRow, Project, PROJECT_COLUMNS, "project", ProjectRow::into_project);
stored_row!(AppRow, ApiApp, APP_COLUMNS, "API app", AppRow::into_app);
stored_row!(GrantRow, RoleGrant, GRANT_COLUMNS, "role grant", GrantRow::into_grant);
stored_row!(ClientKeyRow, ClientKey, CLIENT_KEY_COLUMNS, "client key", ClientKeyRow::into_key);
stored_row!(
    OrganizationRow,
    Organization,
    ORGANIZATION_COLUMNS,
    "organization",
    OrganizationRow::into_organization
);

/// `SELECT <columns of R> <from>`: the one matching record, if any.
pub(crate) fn select_one<R: StoredRow>(
    conn: &Connection,
    from: &str,
    params: impl Params,
) -> Result<Option<R::Record>, StoreError> {
    let sql = format!("SELECT {} {from}", R::COLUMNS);
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row(params, R::read).optional())
        .map_err(|e| map(e, R::WHAT))?
        .map(R::check)
        .transpose()
}

/// `SELECT <columns of R> <from>`: every matching record, in the query's order.
pub(crate) fn select_all<R: StoredRow>(
    conn: &Connection,
    from: &str,
    params: impl Params,
) -> Result<Vec<R::Record>, StoreError> {
    let sql = format!("SELECT {} {from}", R::COLUMNS);
    let rows = conn
        .prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_map(params, R::read)?.collect::<Result<Vec<_>, _>>())
        .map_err(|e| map(e, R::WHAT))?;
    rows.into_iter().map(R::check).collect()
}
