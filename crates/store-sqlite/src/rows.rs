//! Reading rows: the columns of each table, as SQLite holds them, into the shared
//! row types of [`tessera_store::sql::rows`], which check them into records.
//!
//! Values are borrowed from the row, not copied, and each is checked: a value of
//! the wrong type (or NULL where none is allowed) is [`StoreError::Corrupt`], like a
//! value that does not parse.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Params, Row, ToSql};
use tessera_store::sql::rows::{
    AdministratorRow, ApiAppRow, ClientKeyRow, GrantRow, OrganizationRow, PersonalAccessTokenRow,
    ProjectRoleRow, ProjectRow, SigningKeyRow, TokenRow, UserRow, corrupt,
};
use tessera_store::{
    Administrator, ApiApp, ClientKey, Organization, PersonalAccessToken, Project, ProjectRole,
    RoleGrant, ServiceUser, SigningKeyRecord, StoreError, TokenRecord,
};

use crate::error::map;

/// A table whose rows read into records.
pub(crate) trait Table {
    /// The record a row becomes.
    type Record;
    /// The columns [`read`](Self::read) reads, in order.
    const COLUMNS: &'static str;
    /// What a row is, for errors.
    const WHAT: &'static str;
    /// Reads and checks the columns listed in [`COLUMNS`](Self::COLUMNS).
    fn read(row: &Row<'_>) -> Result<Self::Record, StoreError>;
}

/// Column `idx` of `row`, about `what`.
fn value<'r>(row: &'r Row<'_>, idx: usize, what: &str) -> Result<ValueRef<'r>, StoreError> {
    row.get_ref(idx).map_err(|e| corrupt(what, e))
}

fn text<'r>(row: &'r Row<'_>, idx: usize, what: &str) -> Result<&'r str, StoreError> {
    value(row, idx, what)?.as_str().map_err(|e| corrupt(what, e))
}

fn text_or_null<'r>(
    row: &'r Row<'_>,
    idx: usize,
    what: &str,
) -> Result<Option<&'r str>, StoreError> {
    value(row, idx, what)?.as_str_or_null().map_err(|e| corrupt(what, e))
}

fn blob<'r>(row: &'r Row<'_>, idx: usize, what: &str) -> Result<&'r [u8], StoreError> {
    value(row, idx, what)?.as_blob().map_err(|e| corrupt(what, e))
}

fn blob_or_null<'r>(
    row: &'r Row<'_>,
    idx: usize,
    what: &str,
) -> Result<Option<&'r [u8]>, StoreError> {
    value(row, idx, what)?.as_blob_or_null().map_err(|e| corrupt(what, e))
}

fn int(row: &Row<'_>, idx: usize, what: &str) -> Result<i64, StoreError> {
    value(row, idx, what)?.as_i64().map_err(|e| corrupt(what, e))
}

fn int_or_null(row: &Row<'_>, idx: usize, what: &str) -> Result<Option<i64>, StoreError> {
    value(row, idx, what)?.as_i64_or_null().map_err(|e| corrupt(what, e))
}

/// A boolean as SQLite stores it: an integer, true unless 0 (as rusqlite reads it).
fn flag(row: &Row<'_>, idx: usize, what: &str) -> Result<bool, StoreError> {
    int(row, idx, what).map(|n| n != 0)
}

/// Service users: `service_users`.
pub(crate) struct Users;

impl Table for Users {
    type Record = ServiceUser;
    const COLUMNS: &'static str = UserRow::COLUMNS;
    const WHAT: &'static str = UserRow::WHAT;

    fn read(row: &Row<'_>) -> Result<ServiceUser, StoreError> {
        UserRow {
            id: text(row, 0, "user id")?,
            username: text(row, 1, "username")?,
            display_name: text(row, 2, "display name")?,
            access_token_type: text(row, 3, "access token type")?,
            token_lifetime_secs: int(row, 4, "token lifetime")?,
            secret_digest: blob_or_null(row, 5, "secret digest")?,
            enabled: flag(row, 6, "enabled flag")?,
            created_at: int(row, 7, "creation time")?,
            updated_at: int(row, 8, "update time")?,
            previous_secret_digest: blob_or_null(row, 9, "previous secret")?,
            previous_secret_expires_at: int_or_null(row, 10, "previous secret")?,
            tokens_revoked_before: int_or_null(row, 11, "token revocation cut-off")?,
            description: text(row, 12, "description")?,
        }
        .into_record()
    }
}

/// The values of `row`, in the order of [`UserRow::COLUMNS`].
pub(crate) fn user_values<'a>(row: &'a UserRow<'_>) -> [&'a dyn ToSql; 13] {
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

/// Opaque token records: `tokens`.
pub(crate) struct Tokens;

impl Table for Tokens {
    type Record = TokenRecord;
    const COLUMNS: &'static str = TokenRow::COLUMNS;
    const WHAT: &'static str = TokenRow::WHAT;

    fn read(row: &Row<'_>) -> Result<TokenRecord, StoreError> {
        TokenRow {
            digest: blob(row, 0, "token digest")?.into(),
            jti: text(row, 1, "token id")?.into(),
            user_id: text(row, 2, "user id")?.into(),
            client_id: text(row, 3, "client id")?.into(),
            scopes: text(row, 4, "scopes")?.into(),
            audience: text(row, 5, "audience")?.into(),
            issued_at: int(row, 6, "issue time")?,
            expires_at: int(row, 7, "expiry time")?,
            revoked_at: int_or_null(row, 8, "revocation time")?,
            roles: text(row, 9, "token roles")?.into(),
        }
        .into_record()
    }
}

/// The values of `row`, in the order of [`TokenRow::COLUMNS`].
pub(crate) fn token_values<'a>(row: &'a TokenRow<'_>) -> [&'a dyn ToSql; 10] {
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

/// Token signing keys: `signing_keys`.
pub(crate) struct SigningKeys;

impl Table for SigningKeys {
    type Record = SigningKeyRecord;
    const COLUMNS: &'static str = SigningKeyRow::COLUMNS;
    const WHAT: &'static str = SigningKeyRow::WHAT;

    fn read(row: &Row<'_>) -> Result<SigningKeyRecord, StoreError> {
        SigningKeyRow {
            kid: text(row, 0, "signing key id")?,
            algorithm: text(row, 1, "signing key algorithm")?,
            public_jwk: text(row, 2, "signing key public JWK")?,
            sealed_private_key: blob(row, 3, "sealed private key")?,
            created_at: int(row, 4, "signing key creation time")?,
            activates_at: int(row, 5, "signing key activation time")?,
        }
        .into_record()
    }
}

/// Projects: `projects`.
pub(crate) struct Projects;

impl Table for Projects {
    type Record = Project;
    const COLUMNS: &'static str = ProjectRow::COLUMNS;
    const WHAT: &'static str = ProjectRow::WHAT;

    fn read(row: &Row<'_>) -> Result<Project, StoreError> {
        ProjectRow {
            id: text(row, 0, "project id")?,
            name: text(row, 1, "project name")?,
            created_at: int(row, 2, "project creation time")?,
        }
        .into_record()
    }
}

/// API apps: `api_apps`.
pub(crate) struct Apps;

impl Table for Apps {
    type Record = ApiApp;
    const COLUMNS: &'static str = ApiAppRow::COLUMNS;
    const WHAT: &'static str = ApiAppRow::WHAT;

    fn read(row: &Row<'_>) -> Result<ApiApp, StoreError> {
        ApiAppRow {
            client_id: text(row, 0, "API app client ID")?,
            project_id: text(row, 1, "project id")?,
            name: text(row, 2, "API app name")?,
            secret_digest: blob_or_null(row, 3, "API app secret digest")?,
            enabled: flag(row, 4, "API app enabled flag")?,
            created_at: int(row, 5, "API app creation time")?,
            updated_at: int(row, 6, "API app update time")?,
            previous_secret_digest: blob_or_null(row, 7, "API app previous secret")?,
            previous_secret_expires_at: int_or_null(row, 8, "API app previous secret")?,
            app_id: text(row, 9, "API app id")?,
        }
        .into_record()
    }
}

/// The values of `row`, in the order of [`ApiAppRow::COLUMNS`].
pub(crate) fn app_values<'a>(row: &'a ApiAppRow<'_>) -> [&'a dyn ToSql; 10] {
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

/// Role grants: `role_grants`.
pub(crate) struct Grants;

impl Table for Grants {
    type Record = RoleGrant;
    const COLUMNS: &'static str = GrantRow::COLUMNS;
    const WHAT: &'static str = GrantRow::WHAT;

    fn read(row: &Row<'_>) -> Result<RoleGrant, StoreError> {
        GrantRow {
            user_id: text(row, 0, "user id")?,
            project_id: text(row, 1, "project id")?,
            role: text(row, 2, "role")?,
        }
        .into_record()
    }
}

/// Roles of projects: `project_roles`.
pub(crate) struct ProjectRoles;

impl Table for ProjectRoles {
    type Record = ProjectRole;
    const COLUMNS: &'static str = ProjectRoleRow::COLUMNS;
    const WHAT: &'static str = ProjectRoleRow::WHAT;

    fn read(row: &Row<'_>) -> Result<ProjectRole, StoreError> {
        ProjectRoleRow {
            project_id: text(row, 0, "project id")?,
            key: text(row, 1, "project role key")?,
            display_name: text(row, 2, "project role name")?,
            group_name: text_or_null(row, 3, "project role group")?,
            created_at: int(row, 4, "project role creation time")?,
            updated_at: int(row, 5, "project role update time")?,
        }
        .into_record()
    }
}

/// The values of `row`, in the order of [`ProjectRoleRow::COLUMNS`].
pub(crate) fn project_role_values<'a>(row: &'a ProjectRoleRow<'_>) -> [&'a dyn ToSql; 6] {
    [
        &row.project_id,
        &row.key,
        &row.display_name,
        &row.group_name,
        &row.created_at,
        &row.updated_at,
    ]
}

/// Client keys: `client_keys`.
pub(crate) struct ClientKeys;

impl Table for ClientKeys {
    type Record = ClientKey;
    const COLUMNS: &'static str = ClientKeyRow::COLUMNS;
    const WHAT: &'static str = ClientKeyRow::WHAT;

    fn read(row: &Row<'_>) -> Result<ClientKey, StoreError> {
        ClientKeyRow {
            key_id: text(row, 0, "client key id")?,
            owner: text(row, 1, "client key owner")?.into(),
            algorithm: text(row, 2, "client key algorithm")?,
            public_jwk: text(row, 3, "client key public JWK")?,
            created_at: int(row, 4, "client key creation time")?,
            expires_at: int_or_null(row, 5, "client key expiry time")?,
        }
        .into_record()
    }
}

/// The organization: the one row of `organization`.
pub(crate) struct Organizations;

impl Table for Organizations {
    type Record = Organization;
    const COLUMNS: &'static str = OrganizationRow::COLUMNS;
    const WHAT: &'static str = OrganizationRow::WHAT;

    fn read(row: &Row<'_>) -> Result<Organization, StoreError> {
        OrganizationRow {
            id: text(row, 0, "organization id")?,
            name: text(row, 1, "organization name")?,
            primary_domain: text(row, 2, "organization primary domain")?,
            created_at: int(row, 3, "organization creation time")?,
        }
        .into_record()
    }
}

/// Administrator roles: `administrators`.
pub(crate) struct Administrators;

impl Table for Administrators {
    type Record = Administrator;
    const COLUMNS: &'static str = AdministratorRow::COLUMNS;
    const WHAT: &'static str = AdministratorRow::WHAT;

    fn read(row: &Row<'_>) -> Result<Administrator, StoreError> {
        AdministratorRow {
            user_id: text(row, 0, "user id")?,
            role: text(row, 1, "administrator role")?,
            project_id: text(row, 2, "administrator project id")?,
            created_at: int(row, 3, "administrator creation time")?,
        }
        .into_record()
    }
}

/// Personal access tokens: `personal_access_tokens`.
pub(crate) struct PersonalAccessTokens;

impl Table for PersonalAccessTokens {
    type Record = PersonalAccessToken;
    const COLUMNS: &'static str = PersonalAccessTokenRow::COLUMNS;
    const WHAT: &'static str = PersonalAccessTokenRow::WHAT;

    fn read(row: &Row<'_>) -> Result<PersonalAccessToken, StoreError> {
        PersonalAccessTokenRow {
            id: text(row, 0, "personal access token id")?,
            user_id: text(row, 1, "user id")?,
            digest: blob(row, 2, "personal access token digest")?,
            created_at: int(row, 3, "personal access token creation time")?,
            expires_at: int_or_null(row, 4, "personal access token expiry time")?,
        }
        .into_record()
    }
}

/// `SELECT <columns of T> <from>`: the one matching record, if any.
pub(crate) fn select_one<T: Table>(
    conn: &Connection,
    from: &str,
    params: impl Params,
) -> Result<Option<T::Record>, StoreError> {
    let sql = format!("SELECT {} {from}", T::COLUMNS);
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row(params, |row| Ok(T::read(row))).optional())
        .map_err(|e| map(e, T::WHAT))?
        .transpose()
}

/// `SELECT <columns of T> <from>`: every matching record, in the query's order.
pub(crate) fn select_all<T: Table>(
    conn: &Connection,
    from: &str,
    params: impl Params,
) -> Result<Vec<T::Record>, StoreError> {
    let sql = format!("SELECT {} {from}", T::COLUMNS);
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(params, |row| Ok(T::read(row)))?.collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| map(e, T::WHAT))?
        .into_iter()
        .collect()
}

/// `INSERT INTO <table> (<columns>) VALUES (?1, …, ?n)` for `n` columns.
pub(crate) fn insert_sql(table: &str, columns: &str, n: usize) -> String {
    let placeholders: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
    format!("INSERT INTO {table} ({columns}) VALUES ({})", placeholders.join(", "))
}
