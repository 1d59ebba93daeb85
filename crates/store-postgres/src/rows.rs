//! Reading rows: the columns of each table, as PostgreSQL returns them, into the
//! shared row types of [`tessera_store::sql::rows`], which check them into records.
//!
//! Every column is read with `try_get`, borrowing from the row, and then checked, so
//! a row that no longer parses (edited by hand, written by another version) is
//! [`StoreError::Corrupt`], never a panic.

use tessera_store::sql::rows::{
    AdministratorRow, ApiAppRow, ClientKeyRow, GrantRow, OrganizationRow, PersonalAccessTokenRow,
    ProjectRoleRow, ProjectRow, SigningKeyRow, TokenRow, UserRow, corrupt,
};
use tessera_store::{
    Administrator, ApiApp, ClientKey, Organization, PersonalAccessToken, Project, ProjectRole,
    RoleGrant, ServiceUser, SigningKeyRecord, StoreError, TokenRecord,
};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

/// A parameter of a statement.
pub(crate) type Param<'a> = &'a (dyn ToSql + Sync);

/// Column `idx` of `row`; a value of the wrong type or NULL where none is allowed
/// is corrupt data about `what`.
fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize, what: &str) -> Result<T, StoreError> {
    row.try_get(idx).map_err(|e| corrupt(what, e))
}

/// Reads a service user from the columns listed in [`UserRow::COLUMNS`].
pub(crate) fn user(row: &Row) -> Result<ServiceUser, StoreError> {
    UserRow {
        id: get(row, 0, "user id")?,
        username: get(row, 1, "username")?,
        display_name: get(row, 2, "display name")?,
        access_token_type: get(row, 3, "access token type")?,
        token_lifetime_secs: get(row, 4, "token lifetime")?,
        secret_digest: get(row, 5, "secret digest")?,
        enabled: get(row, 6, "enabled flag")?,
        created_at: get(row, 7, "creation time")?,
        updated_at: get(row, 8, "update time")?,
        previous_secret_digest: get(row, 9, "previous secret")?,
        previous_secret_expires_at: get(row, 10, "previous secret")?,
        tokens_revoked_before: get(row, 11, "token revocation cut-off")?,
        description: get(row, 12, "description")?,
    }
    .into_record()
}

/// The values of `row`, in the order of [`UserRow::COLUMNS`].
pub(crate) fn user_values<'a>(row: &'a UserRow<'_>) -> [Param<'a>; 13] {
    [
        &row.id,
        &row.username,
        &row.display_name,
        &row.access_token_type,
        &row.token_lifetime_secs,
        &row.secret_digest,
        &row.enabled,
        &row.created_at,
        &row.updated_at,
        &row.previous_secret_digest,
        &row.previous_secret_expires_at,
        &row.tokens_revoked_before,
        &row.description,
    ]
}

/// Reads a token record from the columns listed in [`TokenRow::COLUMNS`].
pub(crate) fn token(row: &Row) -> Result<TokenRecord, StoreError> {
    TokenRow {
        digest: get::<&[u8]>(row, 0, "token digest")?.into(),
        jti: get::<&str>(row, 1, "token id")?.into(),
        user_id: get::<&str>(row, 2, "user id")?.into(),
        client_id: get::<&str>(row, 3, "client id")?.into(),
        scopes: get::<&str>(row, 4, "scopes")?.into(),
        audience: get::<&str>(row, 5, "audience")?.into(),
        issued_at: get(row, 6, "issue time")?,
        expires_at: get(row, 7, "expiry time")?,
        revoked_at: get(row, 8, "revocation time")?,
        roles: get::<&str>(row, 9, "token roles")?.into(),
    }
    .into_record()
}

/// The values of `row`, in the order of [`TokenRow::COLUMNS`].
pub(crate) fn token_values<'a>(row: &'a TokenRow<'_>) -> [Param<'a>; 10] {
    [
        &row.digest,
        &row.jti,
        &row.user_id,
        &row.client_id,
        &row.scopes,
        &row.audience,
        &row.issued_at,
        &row.expires_at,
        &row.revoked_at,
        &row.roles,
    ]
}

/// Reads a signing key from the columns listed in [`SigningKeyRow::COLUMNS`].
pub(crate) fn signing_key(row: &Row) -> Result<SigningKeyRecord, StoreError> {
    SigningKeyRow {
        kid: get(row, 0, "signing key id")?,
        algorithm: get(row, 1, "signing key algorithm")?,
        public_jwk: get(row, 2, "signing key public JWK")?,
        sealed_private_key: get(row, 3, "sealed private key")?,
        created_at: get(row, 4, "signing key creation time")?,
        activates_at: get(row, 5, "signing key activation time")?,
    }
    .into_record()
}

/// Reads a project from the columns listed in [`ProjectRow::COLUMNS`].
pub(crate) fn project(row: &Row) -> Result<Project, StoreError> {
    ProjectRow {
        id: get(row, 0, "project id")?,
        name: get(row, 1, "project name")?,
        created_at: get(row, 2, "project creation time")?,
    }
    .into_record()
}

/// Reads an API app from the columns listed in [`ApiAppRow::COLUMNS`].
pub(crate) fn app(row: &Row) -> Result<ApiApp, StoreError> {
    ApiAppRow {
        client_id: get(row, 0, "API app client ID")?,
        project_id: get(row, 1, "project id")?,
        name: get(row, 2, "API app name")?,
        secret_digest: get(row, 3, "API app secret digest")?,
        enabled: get(row, 4, "API app enabled flag")?,
        created_at: get(row, 5, "API app creation time")?,
        updated_at: get(row, 6, "API app update time")?,
        previous_secret_digest: get(row, 7, "API app previous secret")?,
        previous_secret_expires_at: get(row, 8, "API app previous secret")?,
        app_id: get(row, 9, "API app id")?,
    }
    .into_record()
}

/// The values of `row`, in the order of [`ApiAppRow::COLUMNS`].
pub(crate) fn app_values<'a>(row: &'a ApiAppRow<'_>) -> [Param<'a>; 10] {
    [
        &row.client_id,
        &row.project_id,
        &row.name,
        &row.secret_digest,
        &row.enabled,
        &row.created_at,
        &row.updated_at,
        &row.previous_secret_digest,
        &row.previous_secret_expires_at,
        &row.app_id,
    ]
}

/// Reads a role grant from the columns listed in [`GrantRow::COLUMNS`].
pub(crate) fn grant(row: &Row) -> Result<RoleGrant, StoreError> {
    GrantRow {
        user_id: get(row, 0, "user id")?,
        project_id: get(row, 1, "project id")?,
        role: get(row, 2, "role")?,
    }
    .into_record()
}

/// Reads a project role from the columns listed in [`ProjectRoleRow::COLUMNS`].
pub(crate) fn project_role(row: &Row) -> Result<ProjectRole, StoreError> {
    ProjectRoleRow {
        project_id: get(row, 0, "project id")?,
        key: get(row, 1, "project role key")?,
        display_name: get(row, 2, "project role name")?,
        group_name: get(row, 3, "project role group")?,
        created_at: get(row, 4, "project role creation time")?,
        updated_at: get(row, 5, "project role update time")?,
    }
    .into_record()
}

/// The values of `row`, in the order of [`ProjectRoleRow::COLUMNS`].
pub(crate) fn project_role_values<'a>(row: &'a ProjectRoleRow<'_>) -> [Param<'a>; 6] {
    [
        &row.project_id,
        &row.key,
        &row.display_name,
        &row.group_name,
        &row.created_at,
        &row.updated_at,
    ]
}

/// Reads a client key from the columns listed in [`ClientKeyRow::COLUMNS`].
pub(crate) fn client_key(row: &Row) -> Result<ClientKey, StoreError> {
    ClientKeyRow {
        key_id: get(row, 0, "client key id")?,
        owner: get::<&str>(row, 1, "client key owner")?.into(),
        algorithm: get(row, 2, "client key algorithm")?,
        public_jwk: get(row, 3, "client key public JWK")?,
        created_at: get(row, 4, "client key creation time")?,
        expires_at: get(row, 5, "client key expiry time")?,
    }
    .into_record()
}

/// Reads the organization from the columns listed in [`OrganizationRow::COLUMNS`].
pub(crate) fn organization(row: &Row) -> Result<Organization, StoreError> {
    OrganizationRow {
        id: get(row, 0, "organization id")?,
        name: get(row, 1, "organization name")?,
        primary_domain: get(row, 2, "organization primary domain")?,
        created_at: get(row, 3, "organization creation time")?,
    }
    .into_record()
}

/// Reads an administrator role from the columns listed in [`AdministratorRow::COLUMNS`].
pub(crate) fn administrator(row: &Row) -> Result<Administrator, StoreError> {
    AdministratorRow {
        user_id: get(row, 0, "user id")?,
        role: get(row, 1, "administrator role")?,
        project_id: get(row, 2, "administrator project id")?,
        created_at: get(row, 3, "administrator creation time")?,
    }
    .into_record()
}

/// Reads a personal access token from the columns listed in
/// [`PersonalAccessTokenRow::COLUMNS`].
pub(crate) fn personal_access_token(row: &Row) -> Result<PersonalAccessToken, StoreError> {
    PersonalAccessTokenRow {
        id: get(row, 0, "personal access token id")?,
        user_id: get(row, 1, "user id")?,
        digest: get(row, 2, "personal access token digest")?,
        created_at: get(row, 3, "personal access token creation time")?,
        expires_at: get(row, 4, "personal access token expiry time")?,
    }
    .into_record()
}

/// Reads every row with `read`.
pub(crate) fn all<T>(
    rows: &[Row],
    read: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(read).collect()
}

/// `INSERT INTO <table> (<columns>) VALUES ($1, …, $n)` for `n` columns.
pub(crate) fn insert_sql(table: &str, columns: &str, n: usize) -> String {
    let placeholders: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    format!("INSERT INTO {table} ({columns}) VALUES ({})", placeholders.join(", "))
}
