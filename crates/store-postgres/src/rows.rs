//! Conversion between records and rows.
//!
//! Every column is read with `try_get` and then checked into its record type, so a
//! row that no longer parses (edited by hand, written by another version) is
//! reported as [`StoreError::Corrupt`], never a panic.

use tessera_scope::ScopeSet;
use tessera_store::{
    AccessTokenType, ApiApp, AppId, ClientId, ClientKey, DisplayName, Domain, KeyOwner, OrgId,
    Organization, PreviousSecret, Project, ProjectId, RoleClaims, RoleGrant, RoleKey, SecretDigest,
    ServiceUser, SigningKeyRecord, StoreError, TokenDigest, TokenId, TokenLifetime, TokenRecord,
    UserId, Username,
};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::error::corrupt;

/// The columns of `service_users`, in the order [`user`] reads them.
pub(crate) const USER_COLUMNS: &str = "id, username, display_name, access_token_type, \
     token_lifetime_secs, secret_digest, enabled, created_at, updated_at, \
     previous_secret_digest, previous_secret_expires_at";

/// The columns of `tokens`, in the order [`token`] reads them.
pub(crate) const TOKEN_COLUMNS: &str =
    "digest, jti, user_id, client_id, scopes, audience, issued_at, expires_at, revoked_at, roles";

/// The columns of `signing_keys`, in the order [`signing_key`] reads them.
pub(crate) const KEY_COLUMNS: &str =
    "kid, algorithm, public_jwk, sealed_private_key, created_at, activates_at";

/// The columns of `projects`, in the order [`project`] reads them.
pub(crate) const PROJECT_COLUMNS: &str = "id, name, created_at";

/// The columns of `api_apps`, in the order [`app`] reads them.
pub(crate) const APP_COLUMNS: &str = "client_id, project_id, name, secret_digest, enabled, \
     created_at, updated_at, previous_secret_digest, previous_secret_expires_at, app_id";

/// The columns of `role_grants`, in the order [`grant`] reads them.
pub(crate) const GRANT_COLUMNS: &str = "user_id, project_id, role";

/// The columns of `client_keys`, in the order [`client_key`] reads them.
pub(crate) const CLIENT_KEY_COLUMNS: &str =
    "key_id, owner, algorithm, public_jwk, created_at, expires_at";

/// The columns of `organization`, in the order [`organization`] reads them.
pub(crate) const ORGANIZATION_COLUMNS: &str = "id, name, primary_domain, created_at";

/// A timestamp as stored: unix seconds (records hold whole seconds).
pub(crate) fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
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

/// Column `idx` of `row`; a value of the wrong type or NULL where none is allowed
/// is corrupt data about `what`.
fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize, what: &str) -> Result<T, StoreError> {
    row.try_get(idx).map_err(|e| corrupt(what, e))
}

fn timestamp(what: &str, secs: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| corrupt(what, e))
}

fn digest_bytes(what: &str, bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| corrupt(what, format_args!("{} bytes instead of 32", bytes.len())))
}

fn secret_digest(what: &str, bytes: Option<&[u8]>) -> Result<Option<SecretDigest>, StoreError> {
    bytes.map(|b| digest_bytes(what, b).map(SecretDigest::from_bytes)).transpose()
}

/// The previous secret from columns `idx` (digest) and `idx + 1` (expiry), which are
/// both NULL or both set.
fn previous_secret(
    row: &Row,
    idx: usize,
    what: &str,
) -> Result<Option<PreviousSecret>, StoreError> {
    let digest = secret_digest(what, get(row, idx, what)?)?;
    let expires_at: Option<i64> = get(row, idx + 1, what)?;
    match (digest, expires_at) {
        (None, None) => Ok(None),
        (Some(digest), Some(secs)) => Ok(Some(PreviousSecret::new(digest, timestamp(what, secs)?))),
        _ => Err(corrupt(what, "a digest without an expiry, or an expiry without a digest")),
    }
}

/// The previous secret as stored: its digest and its expiry (unix seconds), or two NULLs.
pub(crate) fn previous_secret_columns(
    previous: Option<&PreviousSecret>,
) -> (Option<&[u8]>, Option<i64>) {
    (previous.map(|p| &p.digest.as_bytes()[..]), previous.map(|p| unix(p.expires_at)))
}

/// Reads a service user from the columns listed in [`USER_COLUMNS`].
pub(crate) fn user(row: &Row) -> Result<ServiceUser, StoreError> {
    let lifetime: i64 = get(row, 4, "token lifetime")?;
    let lifetime =
        u64::try_from(lifetime).map_err(|e| corrupt("token lifetime", e)).and_then(|secs| {
            TokenLifetime::from_secs(secs).map_err(|e| corrupt("token lifetime", e))
        })?;
    Ok(ServiceUser {
        id: UserId::new(get(row, 0, "user id")?).map_err(|e| corrupt("user id", e))?,
        username: Username::new(get(row, 1, "username")?).map_err(|e| corrupt("username", e))?,
        display_name: DisplayName::new(get(row, 2, "display name")?)
            .map_err(|e| corrupt("display name", e))?,
        access_token_type: get::<&str>(row, 3, "access token type")?
            .parse::<AccessTokenType>()
            .map_err(|e| corrupt("access token type", e))?,
        token_lifetime: lifetime,
        secret: secret_digest("secret digest", get(row, 5, "secret digest")?)?,
        previous_secret: previous_secret(row, 9, "previous secret")?,
        enabled: get(row, 6, "enabled flag")?,
        created_at: timestamp("creation time", get(row, 7, "creation time")?)?,
        updated_at: timestamp("update time", get(row, 8, "update time")?)?,
    })
}

/// Reads a token record from the columns listed in [`TOKEN_COLUMNS`].
pub(crate) fn token(row: &Row) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        digest: TokenDigest::from_bytes(digest_bytes(
            "token digest",
            get(row, 0, "token digest")?,
        )?),
        jti: TokenId::new(get(row, 1, "token id")?).map_err(|e| corrupt("token id", e))?,
        user_id: UserId::new(get(row, 2, "user id")?).map_err(|e| corrupt("user id", e))?,
        client_id: Username::new(get(row, 3, "client id")?).map_err(|e| corrupt("client id", e))?,
        scopes: ScopeSet::parse(get(row, 4, "scopes")?).map_err(|e| corrupt("scopes", e))?,
        audience: serde_json::from_str(get(row, 5, "audience")?)
            .map_err(|e| corrupt("audience", e))?,
        issued_at: timestamp("issue time", get(row, 6, "issue time")?)?,
        expires_at: timestamp("expiry time", get(row, 7, "expiry time")?)?,
        revoked_at: get::<Option<i64>>(row, 8, "revocation time")?
            .map(|secs| timestamp("revocation time", secs))
            .transpose()?,
        roles: serde_json::from_str(get(row, 9, "token roles")?)
            .map_err(|e| corrupt("token roles", e))?,
    })
}

/// Reads a signing key from the columns listed in [`KEY_COLUMNS`].
pub(crate) fn signing_key(row: &Row) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        kid: get(row, 0, "signing key id")?,
        algorithm: get::<&str>(row, 1, "signing key algorithm")?
            .parse()
            .map_err(|e| corrupt("signing key algorithm", e))?,
        public_jwk: get(row, 2, "signing key public JWK")?,
        sealed_private_key: get(row, 3, "sealed private key")?,
        created_at: timestamp("signing key created_at", get(row, 4, "signing key created_at")?)?,
        activates_at: timestamp(
            "signing key activates_at",
            get(row, 5, "signing key activates_at")?,
        )?,
    })
}

/// Reads a project from the columns listed in [`PROJECT_COLUMNS`].
pub(crate) fn project(row: &Row) -> Result<Project, StoreError> {
    Ok(Project {
        id: ProjectId::new(get(row, 0, "project id")?).map_err(|e| corrupt("project id", e))?,
        name: DisplayName::new(get(row, 1, "project name")?)
            .map_err(|e| corrupt("project name", e))?,
        created_at: timestamp("project creation time", get(row, 2, "project creation time")?)?,
    })
}

/// Reads an API app from the columns listed in [`APP_COLUMNS`].
pub(crate) fn app(row: &Row) -> Result<ApiApp, StoreError> {
    Ok(ApiApp {
        client_id: ClientId::new(get(row, 0, "API app client ID")?)
            .map_err(|e| corrupt("API app client ID", e))?,
        app_id: AppId::new(get(row, 9, "API app id")?).map_err(|e| corrupt("API app id", e))?,
        project_id: ProjectId::new(get(row, 1, "project id")?)
            .map_err(|e| corrupt("project id", e))?,
        name: DisplayName::new(get(row, 2, "API app name")?)
            .map_err(|e| corrupt("API app name", e))?,
        secret: secret_digest("API app secret digest", get(row, 3, "API app secret digest")?)?,
        previous_secret: previous_secret(row, 7, "API app previous secret")?,
        enabled: get(row, 4, "API app enabled flag")?,
        created_at: timestamp("API app creation time", get(row, 5, "API app creation time")?)?,
        updated_at: timestamp("API app update time", get(row, 6, "API app update time")?)?,
    })
}

/// Reads a role grant from the columns listed in [`GRANT_COLUMNS`].
pub(crate) fn grant(row: &Row) -> Result<RoleGrant, StoreError> {
    Ok(RoleGrant {
        user_id: UserId::new(get(row, 0, "user id")?).map_err(|e| corrupt("user id", e))?,
        project_id: ProjectId::new(get(row, 1, "project id")?)
            .map_err(|e| corrupt("project id", e))?,
        role: RoleKey::new(get(row, 2, "role")?).map_err(|e| corrupt("role", e))?,
    })
}

/// Reads a client key from the columns listed in [`CLIENT_KEY_COLUMNS`].
pub(crate) fn client_key(row: &Row) -> Result<ClientKey, StoreError> {
    let owner: &str = get(row, 1, "client key owner")?;
    Ok(ClientKey {
        key_id: get(row, 0, "client key id")?,
        owner: KeyOwner::from_key(owner).ok_or_else(|| {
            corrupt("client key owner", format_args!("{owner:?} is not user:… or app:…"))
        })?,
        algorithm: get::<&str>(row, 2, "client key algorithm")?
            .parse()
            .map_err(|e| corrupt("client key algorithm", e))?,
        public_jwk: get(row, 3, "client key public JWK")?,
        created_at: timestamp(
            "client key creation time",
            get(row, 4, "client key creation time")?,
        )?,
        expires_at: get::<Option<i64>>(row, 5, "client key expiry time")?
            .map(|secs| timestamp("client key expiry time", secs))
            .transpose()?,
    })
}

/// Reads the organization from the columns listed in [`ORGANIZATION_COLUMNS`].
pub(crate) fn organization(row: &Row) -> Result<Organization, StoreError> {
    Ok(Organization {
        id: OrgId::new(get(row, 0, "organization id")?)
            .map_err(|e| corrupt("organization id", e))?,
        name: DisplayName::new(get(row, 1, "organization name")?)
            .map_err(|e| corrupt("organization name", e))?,
        primary_domain: Domain::new(get(row, 2, "organization primary domain")?)
            .map_err(|e| corrupt("organization primary domain", e))?,
        created_at: timestamp(
            "organization creation time",
            get(row, 3, "organization creation time")?,
        )?,
    })
}

/// Reads every row with `read`.
pub(crate) fn all<T>(
    rows: &[Row],
    read: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(read).collect()
}
