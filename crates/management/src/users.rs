//! `zitadel.user.v2.UserService`, for machine users (Tessera's service users).

use base64ct::{Base64, Encoding};
use serde::{Deserialize, Serialize};
use tessera_admin::{AdminError, KeyFile, KeyType, NewServiceUser, ServiceUserUpdate};
use tessera_store::{
    AccessTokenType, DisplayName, KeyOwner, Organization, PatId, PersonalAccessToken, ServiceUser,
    TextMatch, UserFilter, UserId, UserOrder, UserPageQuery, Username,
};

use crate::auth::Permission;
use crate::connect::{Code, Status};
use crate::json::{
    DEFAULT_LIMIT, DeletionResponse, Details, Handler, IdFilter, ListDetails, ListQuery, MAX_LIMIT,
    Pagination, TEXT_QUERY_METHOD, Timestamp, U64, text_method, unary,
};
use crate::{Context, admin_status, store_status};

/// The service's name.
pub const SERVICE: &str = "zitadel.user.v2.UserService";

/// The method of `service`/`method`, if it is one of this service's.
pub(crate) fn find(service: &str, method: &str) -> Option<Handler> {
    if service != SERVICE {
        return None;
    }
    Some(match method {
        "CreateUser" => unary!(create_user),
        "GetUserByID" => unary!(get_user_by_id),
        "ListUsers" => unary!(list_users),
        "UpdateUser" => unary!(update_user),
        "DeactivateUser" => unary!(deactivate_user),
        "ReactivateUser" => unary!(reactivate_user),
        "DeleteUser" => unary!(delete_user),
        "AddSecret" => unary!(add_secret),
        "RemoveSecret" => unary!(remove_secret),
        "AddPersonalAccessToken" => unary!(add_personal_access_token),
        "RemovePersonalAccessToken" => unary!(remove_personal_access_token),
        "ListPersonalAccessTokens" => unary!(list_personal_access_tokens),
        "AddKey" => unary!(add_key),
        "RemoveKey" => unary!(remove_key),
        "ListKeys" => unary!(list_keys),
        _ => return None,
    })
}

/// `Machine` of a create or update request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MachineInput {
    /// The display name.
    #[serde(default)]
    pub name: Option<String>,
    /// A description: at most 500 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// `ACCESS_TOKEN_TYPE_BEARER` (opaque) or `ACCESS_TOKEN_TYPE_JWT`.
    #[serde(default)]
    pub access_token_type: Option<TokenTypeName>,
}

/// ZITADEL's access token types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenTypeName {
    /// An opaque token.
    #[serde(rename = "ACCESS_TOKEN_TYPE_BEARER")]
    Bearer,
    /// A JWT.
    #[serde(rename = "ACCESS_TOKEN_TYPE_JWT")]
    Jwt,
}

impl From<AccessTokenType> for TokenTypeName {
    fn from(value: AccessTokenType) -> Self {
        match value {
            AccessTokenType::Jwt => Self::Jwt,
            _ => Self::Bearer,
        }
    }
}

impl From<TokenTypeName> for AccessTokenType {
    fn from(value: TokenTypeName) -> Self {
        match value {
            TokenTypeName::Jwt => AccessTokenType::Jwt,
            TokenTypeName::Bearer => AccessTokenType::Opaque,
        }
    }
}

/// `CreateUserRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserRequest {
    /// The organization: Tessera's own, or left out.
    #[serde(default)]
    pub organization_id: Option<String>,
    /// A user id to use; generated when left out.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The username, also the client ID.
    #[serde(default)]
    pub username: Option<String>,
    /// A human user: refused.
    #[serde(default)]
    pub human: Option<serde_json::Value>,
    /// The machine user.
    #[serde(default)]
    pub machine: Option<MachineInput>,
}

/// `CreateUserResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateUserResponse {
    /// The new user's id.
    pub id: String,
    /// When it was created.
    pub creation_date: Timestamp,
}

/// A request naming one user.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserIdRequest {
    /// The user's id.
    #[serde(default)]
    pub user_id: String,
}

/// `GetUserByIDResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetUserResponse {
    /// The user's details.
    pub details: Details,
    /// The user.
    pub user: User,
}

/// ZITADEL's `User`, of a machine user.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Its id.
    pub user_id: String,
    /// Its details.
    pub details: Details,
    /// `USER_STATE_ACTIVE` or `USER_STATE_INACTIVE`.
    pub state: &'static str,
    /// Its username.
    pub username: String,
    /// `username@primary-domain`.
    pub login_names: Vec<String>,
    /// `username@primary-domain`.
    pub preferred_login_name: String,
    /// The machine user's settings.
    pub machine: MachineUser,
}

/// ZITADEL's `MachineUser`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineUser {
    /// The display name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Whether a client secret is set.
    pub has_secret: bool,
    /// The kind of access token it receives.
    pub access_token_type: TokenTypeName,
}

/// `Details` of a service user.
fn details(user: &ServiceUser, organization: &Organization) -> Details {
    Details {
        sequence: U64(0),
        change_date: Timestamp(user.updated_at),
        resource_owner: organization.id.to_string(),
        creation_date: Timestamp(user.created_at),
    }
}

/// Details of a change made now.
fn changed(cx: Context<'_>, organization: &Organization) -> Details {
    let now = Timestamp(cx.admin.now());
    Details {
        sequence: U64(0),
        change_date: now,
        resource_owner: organization.id.to_string(),
        creation_date: now,
    }
}

fn user_view(user: &ServiceUser, organization: &Organization) -> User {
    let login = format!("{}@{}", user.username, organization.primary_domain);
    User {
        user_id: user.id.to_string(),
        details: details(user, organization),
        state: if user.enabled { "USER_STATE_ACTIVE" } else { "USER_STATE_INACTIVE" },
        username: user.username.to_string(),
        login_names: vec![login.clone()],
        preferred_login_name: login,
        machine: MachineUser {
            name: user.display_name.to_string(),
            description: user.description.clone(),
            has_secret: user.credentials.secret.is_some(),
            access_token_type: user.access_token_type.into(),
        },
    }
}

pub(crate) async fn organization(cx: Context<'_>) -> Result<Organization, Status> {
    cx.admin
        .organization()
        .await
        .map_err(admin_status)?
        .ok_or_else(|| Status::new(Code::FailedPrecondition, "the organization is not set up"))
}

/// Checks a request's organization id: Tessera's own, or none.
pub(crate) fn check_organization(
    given: Option<&str>,
    organization: &Organization,
) -> Result<(), Status> {
    match given {
        Some(id) if !id.is_empty() && id != organization.id.as_str() => {
            Err(Status::not_found(format!("organization {id} not found")))
        }
        _ => Ok(()),
    }
}

fn parse_user_id(value: &str) -> Result<UserId, Status> {
    if value.is_empty() {
        return Err(Status::invalid("userId is required"));
    }
    // An id that cannot be stored names no user.
    UserId::new(value).map_err(|_| Status::not_found(format!("service user {value} not found")))
}

pub(crate) async fn user_by_id(cx: Context<'_>, id: &str) -> Result<ServiceUser, Status> {
    let id = parse_user_id(id)?;
    cx.admin.service_user_by_id(&id).await.map_err(admin_status)
}

/// `CreateUser`: a machine user, with no secret until `AddSecret`.
pub async fn create_user(
    cx: Context<'_>,
    request: CreateUserRequest,
) -> Result<CreateUserResponse, Status> {
    cx.principal.require(&Permission::UserWrite)?;
    if request.human.is_some() {
        return Err(Status::invalid(
            "human users are not supported: Tessera serves machine users (service users) only",
        ));
    }
    let Some(machine) = request.machine else {
        return Err(Status::invalid("machine is required"));
    };
    let organization = organization(cx).await?;
    check_organization(request.organization_id.as_deref(), &organization)?;
    if request.user_id.as_deref().is_some_and(|id| !id.is_empty()) {
        return Err(Status::invalid("userId: ids are generated by Tessera; leave it out"));
    }
    let username = request
        .username
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Status::invalid("username is required"))?;
    let username =
        Username::new(&username).map_err(|e| Status::invalid(format!("username: {e}")))?;
    let mut new = NewServiceUser::new(username.clone());
    if let Some(name) = machine.name.as_deref().filter(|n| !n.is_empty()) {
        new.display_name =
            Some(DisplayName::new(name).map_err(|e| Status::invalid(format!("name: {e}")))?);
    }
    if let Some(kind) = machine.access_token_type {
        new.access_token_type = kind.into();
    }
    new.description = machine.description.filter(|d| !d.is_empty());
    // No secret until AddSecret, as ZITADEL creates machine users.
    let user = cx.admin.create_service_user_without_secret(new).await.map_err(admin_status)?;
    cx.audit("CreateUser", user.id.as_str());
    Ok(CreateUserResponse { id: user.id.to_string(), creation_date: Timestamp(user.created_at) })
}

/// `GetUserByID`.
pub async fn get_user_by_id(
    cx: Context<'_>,
    request: UserIdRequest,
) -> Result<GetUserResponse, Status> {
    cx.principal.require(&Permission::UserRead)?;
    let user = user_by_id(cx, &request.user_id).await?;
    let organization = organization(cx).await?;
    Ok(GetUserResponse {
        details: details(&user, &organization),
        user: user_view(&user, &organization),
    })
}

/// `ListUsersRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListUsersRequest {
    /// Paging.
    #[serde(default)]
    pub query: ListQuery,
    /// `USER_FIELD_NAME_*`.
    #[serde(default)]
    pub sorting_column: Option<String>,
    /// Filters, all of which must match.
    #[serde(default)]
    pub queries: Vec<SearchQuery>,
}

/// `SearchQuery`: one filter (exactly one field set).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchQuery {
    /// By username.
    #[serde(default)]
    pub user_name_query: Option<TextQuery>,
    /// By display name.
    #[serde(default)]
    pub display_name_query: Option<DisplayNameQuery>,
    /// By id.
    #[serde(default)]
    pub in_user_ids_query: Option<InUserIds>,
    /// By type.
    #[serde(default)]
    pub type_query: Option<TypeQuery>,
    /// By state.
    #[serde(default)]
    pub state_query: Option<StateQuery>,
    /// By organization.
    #[serde(default)]
    pub organization_id_query: Option<OrganizationIdQuery>,
    /// All of these.
    #[serde(default)]
    pub and_query: Option<Queries>,
    /// Any of these.
    #[serde(default)]
    pub or_query: Option<Queries>,
    /// Not this.
    #[serde(default)]
    pub not_query: Option<NotQuery>,
}

/// `UserNameQuery`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TextQuery {
    /// The text.
    #[serde(default)]
    pub user_name: String,
    /// `TEXT_QUERY_METHOD_*` (default: equals).
    #[serde(default)]
    pub method: Option<String>,
}

/// `DisplayNameQuery`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisplayNameQuery {
    /// The text.
    #[serde(default)]
    pub display_name: String,
    /// `TEXT_QUERY_METHOD_*` (default: equals).
    #[serde(default)]
    pub method: Option<String>,
}

/// `InUserIDQuery`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InUserIds {
    /// The ids.
    #[serde(default)]
    pub user_ids: Vec<String>,
}

/// `TypeQuery`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TypeQuery {
    /// `TYPE_MACHINE` or `TYPE_HUMAN`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// `StateQuery`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateQuery {
    /// `USER_STATE_*`.
    #[serde(default)]
    pub state: String,
}

/// `OrganizationIdQuery`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationIdQuery {
    /// The organization.
    #[serde(default)]
    pub organization_id: String,
}

/// `AndQuery` or `OrQuery`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Queries {
    /// The filters.
    #[serde(default)]
    pub queries: Vec<SearchQuery>,
}

/// `NotQuery`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotQuery {
    /// The filter.
    #[serde(default)]
    pub query: Option<Box<SearchQuery>>,
}

impl SearchQuery {
    /// The store's filter for this query; `invalid_argument` for a malformed one.
    fn filter(&self, organization: &Organization) -> Result<UserFilter, Status> {
        let nothing = || UserFilter::IdIn(Vec::new());
        let mut set = Vec::new();
        if let Some(q) = &self.user_name_query {
            set.push(UserFilter::Username(text_match(&q.user_name, q.method.as_deref())?));
        }
        if let Some(q) = &self.display_name_query {
            set.push(UserFilter::DisplayName(text_match(&q.display_name, q.method.as_deref())?));
        }
        if let Some(q) = &self.in_user_ids_query {
            // An id that cannot be stored names no user.
            set.push(UserFilter::IdIn(
                q.user_ids.iter().filter_map(|id| UserId::new(id).ok()).collect(),
            ));
        }
        if let Some(q) = &self.type_query {
            set.push(match q.kind.as_str() {
                "TYPE_MACHINE" => UserFilter::All,
                "TYPE_HUMAN" => nothing(),
                other => return Err(Status::invalid(format!("unknown user type {other:?}"))),
            });
        }
        if let Some(q) = &self.state_query {
            set.push(match q.state.as_str() {
                "USER_STATE_ACTIVE" => UserFilter::Enabled(true),
                "USER_STATE_INACTIVE" => UserFilter::Enabled(false),
                "USER_STATE_DELETED" | "USER_STATE_LOCKED" | "USER_STATE_INITIAL" => nothing(),
                other => return Err(Status::invalid(format!("unknown user state {other:?}"))),
            });
        }
        if let Some(q) = &self.organization_id_query {
            set.push(if q.organization_id == organization.id.as_str() {
                UserFilter::All
            } else {
                nothing()
            });
        }
        if let Some(q) = &self.and_query {
            let all = q.queries.iter().map(|q| q.filter(organization));
            set.push(UserFilter::And(all.collect::<Result<_, _>>()?));
        }
        if let Some(q) = &self.or_query {
            let any = q.queries.iter().map(|q| q.filter(organization));
            set.push(UserFilter::Or(any.collect::<Result<_, _>>()?));
        }
        if let Some(q) = &self.not_query {
            let inner =
                q.query.as_ref().ok_or_else(|| Status::invalid("notQuery.query is required"))?;
            set.push(UserFilter::Not(Box::new(inner.filter(organization)?)));
        }
        match (set.pop(), set.is_empty()) {
            (Some(filter), true) => Ok(filter),
            _ => Err(Status::invalid("each query sets exactly one filter")),
        }
    }
}

/// The store's text match for ZITADEL's text query (`TEXT_QUERY_METHOD_*`).
fn text_match(text: &str, method: Option<&str>) -> Result<TextMatch, Status> {
    Ok(TextMatch::new(text, text_method(method, &[TEXT_QUERY_METHOD])?))
}

/// `ListUsersResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListUsersResponse {
    /// The listing's details.
    pub details: ListDetails,
    /// The sorting column used.
    pub sorting_column: String,
    /// The page.
    pub result: Vec<User>,
}

/// `ListUsers`: filters, sorting, offset and limit, all in the store: a page of
/// 100 reads 100 users, however many there are.
pub async fn list_users(
    cx: Context<'_>,
    request: ListUsersRequest,
) -> Result<ListUsersResponse, Status> {
    cx.principal.require(&Permission::UserRead)?;
    let organization = organization(cx).await?;
    let filters = request.queries.iter().map(|q| q.filter(&organization));
    let filter = UserFilter::And(filters.collect::<Result<_, _>>()?);
    let column = request.sorting_column.as_deref().unwrap_or("USER_FIELD_NAME_UNSPECIFIED");
    let order = match column {
        "USER_FIELD_NAME_UNSPECIFIED" | "USER_FIELD_NAME_CREATION_DATE" => UserOrder::CreatedAt,
        "USER_FIELD_NAME_USER_NAME" => UserOrder::Username,
        "USER_FIELD_NAME_DISPLAY_NAME" => UserOrder::DisplayName,
        "USER_FIELD_NAME_STATE" => UserOrder::Enabled,
        // Every user is a machine; machines have no first, last or nick name or email.
        "USER_FIELD_NAME_TYPE"
        | "USER_FIELD_NAME_FIRST_NAME"
        | "USER_FIELD_NAME_LAST_NAME"
        | "USER_FIELD_NAME_NICK_NAME"
        | "USER_FIELD_NAME_EMAIL" => UserOrder::CreatedAt,
        other => return Err(Status::invalid(format!("unknown sorting column {other}"))),
    };
    let query = request.query;
    if query.limit > MAX_LIMIT {
        return Err(Status::invalid(format!("query.limit: at most {MAX_LIMIT}")));
    }
    let page = UserPageQuery {
        filter,
        order,
        descending: !query.asc,
        offset: query.offset.0,
        limit: if query.limit == 0 { DEFAULT_LIMIT } else { query.limit },
    };
    let found = cx.admin.store().service_users_page(&page).await.map_err(|e| store_status(&e))?;
    Ok(ListUsersResponse {
        details: ListDetails {
            total_result: U64(found.total),
            processed_sequence: U64(0),
            timestamp: Timestamp(cx.admin.now()),
        },
        sorting_column: column.to_owned(),
        result: found.users.iter().map(|u| user_view(u, &organization)).collect(),
    })
}

/// `UpdateUserRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// The user.
    #[serde(default)]
    pub user_id: String,
    /// A new username: refused (the username is the client ID).
    #[serde(default)]
    pub username: Option<String>,
    /// Human fields: refused.
    #[serde(default)]
    pub human: Option<serde_json::Value>,
    /// Machine fields.
    #[serde(default)]
    pub machine: Option<MachineInput>,
}

/// `UpdateUserResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateUserResponse {
    /// When the change was made.
    pub change_date: Timestamp,
}

/// `UpdateUser`: the machine user's name, description and access token type.
pub async fn update_user(
    cx: Context<'_>,
    request: UpdateUserRequest,
) -> Result<UpdateUserResponse, Status> {
    cx.principal.require(&Permission::UserWrite)?;
    if request.human.is_some() {
        return Err(Status::invalid("human fields are not supported: this is a machine user"));
    }
    let user = user_by_id(cx, &request.user_id).await?;
    if let Some(username) = request.username.as_deref().filter(|u| *u != user.username.as_str()) {
        return Err(Status::invalid(format!(
            "username: {username:?}: the username is the client ID and cannot change"
        )));
    }
    let machine = request.machine.unwrap_or_default();
    let mut update = ServiceUserUpdate::default();
    if let Some(name) = machine.name.as_deref() {
        update.display_name =
            Some(DisplayName::new(name).map_err(|e| Status::invalid(format!("name: {e}")))?);
    }
    update.access_token_type = machine.access_token_type.map(Into::into);
    update.description = machine.description;
    let updated =
        cx.admin.update_service_user(&user.username, update).await.map_err(admin_status)?;
    cx.audit("UpdateUser", updated.id.as_str());
    Ok(UpdateUserResponse { change_date: Timestamp(updated.updated_at) })
}

/// A response with the details of a change.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DetailsResponse {
    /// The change.
    pub details: Details,
}

async fn set_enabled(
    cx: Context<'_>,
    request: UserIdRequest,
    enabled: bool,
) -> Result<DetailsResponse, Status> {
    cx.principal.require(&Permission::UserWrite)?;
    let user = user_by_id(cx, &request.user_id).await?;
    if user.enabled == enabled {
        let state = if enabled { "active" } else { "inactive" };
        return Err(Status::new(
            Code::FailedPrecondition,
            format!("user {} is {state} already", user.id),
        ));
    }
    let user = cx.admin.set_user_enabled(&user.username, enabled).await.map_err(admin_status)?;
    let organization = organization(cx).await?;
    cx.audit(if enabled { "ReactivateUser" } else { "DeactivateUser" }, user.id.as_str());
    Ok(DetailsResponse { details: details(&user, &organization) })
}

/// `DeactivateUser`: the user cannot authenticate and its tokens are inactive.
pub async fn deactivate_user(
    cx: Context<'_>,
    request: UserIdRequest,
) -> Result<DetailsResponse, Status> {
    set_enabled(cx, request, false).await
}

/// `ReactivateUser`.
pub async fn reactivate_user(
    cx: Context<'_>,
    request: UserIdRequest,
) -> Result<DetailsResponse, Status> {
    set_enabled(cx, request, true).await
}

/// `DeleteUser`: the user with its tokens, grants, keys, roles and personal access
/// tokens.
pub async fn delete_user(
    cx: Context<'_>,
    request: UserIdRequest,
) -> Result<DetailsResponse, Status> {
    cx.principal.require(&Permission::UserWrite)?;
    let user = user_by_id(cx, &request.user_id).await?;
    if user.id == cx.principal.user.id {
        return Err(Status::new(Code::FailedPrecondition, "a user cannot delete itself"));
    }
    cx.admin.delete_service_user(&user.username).await.map_err(admin_status)?;
    let organization = organization(cx).await?;
    cx.audit("DeleteUser", user.id.as_str());
    Ok(DetailsResponse { details: changed(cx, &organization) })
}

/// `AddSecretResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddSecretResponse {
    /// When the secret was made.
    pub creation_date: Timestamp,
    /// The secret, shown only here.
    pub client_secret: String,
}

/// `AddSecret`: a new client secret; the old one stops working at once.
pub async fn add_secret(
    cx: Context<'_>,
    request: UserIdRequest,
) -> Result<AddSecretResponse, Status> {
    cx.principal.require(&Permission::UserWrite)?;
    let user = user_by_id(cx, &request.user_id).await?;
    let (user, secret) =
        cx.admin.regenerate_user_secret(&user.username, None).await.map_err(admin_status)?;
    cx.audit("AddSecret", user.id.as_str());
    Ok(AddSecretResponse {
        creation_date: Timestamp(user.updated_at),
        client_secret: secret.expose().to_owned(),
    })
}

/// `RemoveSecret`: the user authenticates with keys or tokens only; a user without a
/// secret is not an error, as in ZITADEL.
pub async fn remove_secret(
    cx: Context<'_>,
    request: UserIdRequest,
) -> Result<DeletionResponse, Status> {
    cx.principal.require(&Permission::UserWrite)?;
    let user = user_by_id(cx, &request.user_id).await?;
    if user.credentials.secret.is_some() || user.credentials.previous.is_some() {
        cx.admin.remove_user_secret(&user.username).await.map_err(admin_status)?;
        cx.audit("RemoveSecret", user.id.as_str());
    }
    Ok(DeletionResponse { deletion_date: Timestamp(cx.admin.now()) })
}

/// `AddPersonalAccessTokenRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddPatRequest {
    /// The user.
    #[serde(default)]
    pub user_id: String,
    /// When the token stops working; none: never.
    #[serde(default)]
    pub expiration_date: Option<Timestamp>,
}

/// `AddPersonalAccessTokenResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddPatResponse {
    /// When it was made.
    pub creation_date: Timestamp,
    /// Its id.
    pub token_id: String,
    /// The token, shown only here.
    pub token: String,
}

/// `AddPersonalAccessToken`.
pub async fn add_personal_access_token(
    cx: Context<'_>,
    request: AddPatRequest,
) -> Result<AddPatResponse, Status> {
    cx.principal.require(&Permission::UserWrite)?;
    let user = user_by_id(cx, &request.user_id).await?;
    let created = cx
        .admin
        .add_personal_access_token(&user, request.expiration_date.map(|t| t.0))
        .await
        .map_err(admin_status)?;
    cx.audit("AddPersonalAccessToken", created.record.id.as_str());
    Ok(AddPatResponse {
        creation_date: Timestamp(created.record.created_at),
        token_id: created.record.id.to_string(),
        token: created.token.as_str().to_owned(),
    })
}

/// `RemovePersonalAccessTokenRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemovePatRequest {
    /// The user.
    #[serde(default)]
    pub user_id: String,
    /// The token.
    #[serde(default)]
    pub token_id: String,
}

/// `RemovePersonalAccessToken`: the token stops working at once.
pub async fn remove_personal_access_token(
    cx: Context<'_>,
    request: RemovePatRequest,
) -> Result<DeletionResponse, Status> {
    cx.principal.require(&Permission::UserWrite)?;
    let user = user_by_id(cx, &request.user_id).await?;
    let id = PatId::new(&request.token_id).map_err(|_| {
        Status::not_found(format!("personal access token {} not found", request.token_id))
    })?;
    match cx.admin.remove_personal_access_token(&user, &id).await {
        Ok(()) => cx.audit("RemovePersonalAccessToken", id.as_str()),
        // As in ZITADEL: removing a token that is not there is not an error.
        Err(AdminError::NotFound { .. }) => {}
        Err(e) => return Err(admin_status(e)),
    }
    Ok(DeletionResponse { deletion_date: Timestamp(cx.admin.now()) })
}

/// `ListPersonalAccessTokensRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListPatsRequest {
    /// Paging.
    #[serde(default)]
    pub pagination: ListQuery,
    /// `PERSONAL_ACCESS_TOKEN_FIELD_NAME_*` (creation date is the only order kept).
    #[serde(default)]
    pub sorting_column: Option<String>,
    /// Filters; a user id filter is required (Tessera lists one user's tokens).
    #[serde(default)]
    pub filters: Vec<PatFilter>,
}

/// `PersonalAccessTokensSearchFilter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatFilter {
    /// By user.
    #[serde(default)]
    pub user_id_filter: Option<IdFilter>,
    /// By token.
    #[serde(default)]
    pub token_id_filter: Option<IdFilter>,
    /// By organization.
    #[serde(default)]
    pub organization_id_filter: Option<IdFilter>,
}

/// A key or a personal access token as listed (ZITADEL's `Key` and
/// `PersonalAccessToken` have the same fields; never the key or the token).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialView {
    /// When it was made.
    pub creation_date: Timestamp,
    /// Same as its creation: keys and tokens do not change.
    pub change_date: Timestamp,
    /// Its id.
    pub id: String,
    /// Its user.
    pub user_id: String,
    /// The organization.
    pub organization_id: String,
    /// When it stops working; 9999-12-31T23:59:59Z when never.
    pub expiration_date: Timestamp,
}

/// `ListPersonalAccessTokensResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPatsResponse {
    /// Paging.
    pub pagination: Pagination,
    /// The page.
    pub result: Vec<CredentialView>,
}

/// `ListPersonalAccessTokens` of one user (a `userIdFilter` names it).
pub async fn list_personal_access_tokens(
    cx: Context<'_>,
    request: ListPatsRequest,
) -> Result<ListPatsResponse, Status> {
    cx.principal.require(&Permission::UserRead)?;
    let organization = organization(cx).await?;
    let user_id = request
        .filters
        .iter()
        .find_map(|f| f.user_id_filter.as_ref())
        .ok_or_else(|| Status::invalid("filters: a userIdFilter is required"))?;
    let user = user_by_id(cx, &user_id.id).await?;
    let mut tokens: Vec<PersonalAccessToken> =
        cx.admin.personal_access_tokens(&user).await.map_err(admin_status)?;
    for filter in &request.filters {
        if let Some(f) = &filter.token_id_filter {
            tokens.retain(|t| t.id.as_str() == f.id);
        }
        if let Some(f) = &filter.organization_id_filter {
            tokens.retain(|_| f.id == organization.id.as_str());
        }
    }
    let (pagination, page) = request.pagination.paginate(tokens)?;
    Ok(ListPatsResponse {
        pagination,
        result: page
            .iter()
            .map(|t| CredentialView {
                creation_date: Timestamp(t.created_at),
                change_date: Timestamp(t.created_at),
                id: t.id.to_string(),
                user_id: t.user_id.to_string(),
                organization_id: organization.id.to_string(),
                expiration_date: Timestamp(t.expires_at.unwrap_or(KeyFile::NEVER)),
            })
            .collect(),
    })
}

/// `AddKeyRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddKeyRequest {
    /// The user.
    #[serde(default)]
    pub user_id: String,
    /// When the key stops working; none: never.
    #[serde(default)]
    pub expiration_date: Option<Timestamp>,
    /// A public key to register: refused (Tessera generates the key pair).
    #[serde(default)]
    pub public_key: Option<String>,
}

/// `AddKeyResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddKeyResponse {
    /// When it was made.
    pub creation_date: Timestamp,
    /// Its id.
    pub key_id: String,
    /// The key file (with the private key), base64: shown only here.
    pub key_content: String,
}

/// `AddKey`: an RSA key pair for the JWT profile; the key file is returned once.
pub async fn add_key(cx: Context<'_>, request: AddKeyRequest) -> Result<AddKeyResponse, Status> {
    cx.principal.require(&Permission::UserWrite)?;
    if request.public_key.as_deref().is_some_and(|k| !k.is_empty()) {
        return Err(Status::invalid(
            "publicKey: registering a public key is not supported; leave it out and a key \
             pair is generated",
        ));
    }
    let user = user_by_id(cx, &request.user_id).await?;
    let owner = KeyOwner::ServiceUser(user.id.clone());
    let (key, file) = cx
        .admin
        .add_client_key(&owner, KeyType::Rsa, request.expiration_date.map(|t| t.0))
        .await
        .map_err(admin_status)?;
    let json = serde_json::to_vec(&file)
        .map_err(|_| Status::new(Code::Internal, "the key file could not be encoded"))?;
    cx.audit("AddKey", &key.key_id);
    Ok(AddKeyResponse {
        creation_date: Timestamp(key.created_at),
        key_id: key.key_id,
        key_content: Base64::encode_string(&json),
    })
}

/// `RemoveKeyRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoveKeyRequest {
    /// The user.
    #[serde(default)]
    pub user_id: String,
    /// The key.
    #[serde(default)]
    pub key_id: String,
}

/// `RemoveKey`: assertions signed with it stop working at once; a key the user does
/// not have is not an error, as in ZITADEL.
pub async fn remove_key(
    cx: Context<'_>,
    request: RemoveKeyRequest,
) -> Result<DeletionResponse, Status> {
    cx.principal.require(&Permission::UserWrite)?;
    let user = user_by_id(cx, &request.user_id).await?;
    if request.key_id.is_empty() {
        return Err(Status::invalid("keyId is required"));
    }
    let owner = KeyOwner::ServiceUser(user.id.clone());
    match cx.admin.remove_client_key(&owner, &request.key_id).await {
        Ok(()) => cx.audit("RemoveKey", &request.key_id),
        Err(AdminError::NotFound { .. }) => {}
        Err(e) => return Err(admin_status(e)),
    }
    Ok(DeletionResponse { deletion_date: Timestamp(cx.admin.now()) })
}

/// `ListKeysRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListKeysRequest {
    /// Paging.
    #[serde(default)]
    pub pagination: ListQuery,
    /// `KEY_FIELD_NAME_*`.
    #[serde(default)]
    pub sorting_column: Option<String>,
    /// Filters; a user id filter is required (Tessera lists one user's keys).
    #[serde(default)]
    pub filters: Vec<KeyFilter>,
}

/// `KeysSearchFilter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyFilter {
    /// By key.
    #[serde(default)]
    pub key_id_filter: Option<IdFilter>,
    /// By user.
    #[serde(default)]
    pub user_id_filter: Option<IdFilter>,
    /// By organization.
    #[serde(default)]
    pub organization_id_filter: Option<IdFilter>,
    /// By creation date: accepted, not applied.
    #[serde(default)]
    pub created_date_filter: Option<serde_json::Value>,
    /// By expiration date: accepted, not applied.
    #[serde(default)]
    pub expiration_date_filter: Option<serde_json::Value>,
}

/// `ListKeysResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListKeysResponse {
    /// Paging.
    pub pagination: Pagination,
    /// The page.
    pub result: Vec<CredentialView>,
}

/// `ListKeys` of one user (a `userIdFilter` names it).
pub async fn list_keys(
    cx: Context<'_>,
    request: ListKeysRequest,
) -> Result<ListKeysResponse, Status> {
    cx.principal.require(&Permission::UserRead)?;
    let organization = organization(cx).await?;
    let user_id = request
        .filters
        .iter()
        .find_map(|f| f.user_id_filter.as_ref())
        .ok_or_else(|| Status::invalid("filters: a userIdFilter is required"))?;
    let user = user_by_id(cx, &user_id.id).await?;
    let owner = KeyOwner::ServiceUser(user.id.clone());
    let mut keys = cx.admin.client_keys(&owner).await.map_err(admin_status)?;
    for filter in &request.filters {
        if let Some(f) = &filter.key_id_filter {
            keys.retain(|k| k.key_id == f.id);
        }
        if let Some(f) = &filter.organization_id_filter {
            keys.retain(|_| f.id == organization.id.as_str());
        }
    }
    match request.sorting_column.as_deref().unwrap_or("KEY_FIELD_NAME_CREATED_DATE") {
        "KEY_FIELD_NAME_UNSPECIFIED" | "KEY_FIELD_NAME_CREATED_DATE" => {}
        "KEY_FIELD_NAME_ID" => keys.sort_by(|a, b| a.key_id.cmp(&b.key_id)),
        "KEY_FIELD_NAME_KEY_EXPIRATION_DATE" => {
            keys.sort_by_key(|k| k.expires_at.unwrap_or(KeyFile::NEVER));
        }
        "KEY_FIELD_NAME_USER_ID" | "KEY_FIELD_NAME_ORGANIZATION_ID" => {}
        other => return Err(Status::invalid(format!("unknown sorting column {other}"))),
    }
    let (pagination, page) = request.pagination.paginate(keys)?;
    Ok(ListKeysResponse {
        pagination,
        result: page
            .iter()
            .map(|k| CredentialView {
                creation_date: Timestamp(k.created_at),
                change_date: Timestamp(k.created_at),
                id: k.key_id.clone(),
                user_id: user.id.to_string(),
                organization_id: organization.id.to_string(),
                expiration_date: Timestamp(k.expires_at.unwrap_or(KeyFile::NEVER)),
            })
            .collect(),
    })
}
