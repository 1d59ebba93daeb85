//! The administration traits: creating, changing, listing and deleting what the
//! issuing core reads.
//!
//! Each is separate from [`IssuingStore`](crate::IssuingStore), so that a backend
//! for issuing alone needs none of them; a complete backend ([`Store`](crate::Store))
//! implements them all. Lookups of single records (a user by name, an API app by
//! client ID, a project by id, a client key by id, the organization) belong to the
//! issuing side and are not repeated here.
//!
//! Common to all of them, checked by the conformance suite:
//!
//! - Every change is atomic and visible to every reader, in every process sharing
//!   the backend, once the method returns.
//! - A patch ([`ServiceUserPatch`], [`ApiAppPatch`]) is applied to the record as
//!   stored when the change runs, never to a copy read earlier: of concurrent
//!   patches of one record (through one instance or several), none is lost, as if
//!   they ran one after the other. The record after a patch is what
//!   [`ServiceUser::apply`] or [`ApiApp::apply`] makes of the record before it.
//! - Changing or deleting a record that does not exist is [`StoreError::NotFound`];
//!   creating one whose unique key is taken is [`StoreError::Conflict`] and changes
//!   nothing.
//! - Stored times are whole seconds (a fraction is dropped).

use std::cmp::Ordering;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::client_keys::{ClientKey, KeyOwner};
use crate::error::StoreError;
use crate::ids::{ClientId, Domain, ProjectId, RoleKey, UserId, Username};
use crate::organization::Organization;
use crate::projects::{ApiApp, ApiAppPatch, Project, ProjectRole, RoleGrant};
use crate::records::{DisplayName, ServiceUser, ServiceUserPatch};

/// Administration of service users.
///
/// Contract, checked by the conformance suite (besides the common one of the
/// [module](crate::admin)):
///
/// - Usernames are unique, and a username may not be an API app's client ID:
///   either is [`StoreError::Conflict`], also when two instances race to claim one
///   name as a user and as an app.
/// - Once [`update_service_user`](Self::update_service_user) with a new secret
///   returns, no later lookup returns the old digest as the current one: a
///   regenerated secret stops working at once. With
///   [`keep_previous_until`](ServiceUserPatch::keep_previous_until) the old digest
///   becomes the user's [`previous`](crate::Credentials::previous) secret with that
///   expiry (whole seconds), replacing any older previous secret (as
///   [`Credentials::rotate`](crate::Credentials::rotate) does).
/// - A patch with [`tokens_revoked_before`](ServiceUserPatch::tokens_revoked_before)
///   sets the user's revocation cut-off to that time (whole seconds), replacing the
///   stored one whether earlier or later; a patch without it keeps it. Like a new
///   secret, every lookup started after the update returns sees it.
/// - Deleting a user also deletes its token records, role grants and client keys,
///   also those added concurrently: none outlives the user.
/// - A page of users ([`service_users_page`](Self::service_users_page)) holds the
///   users [`UserPageQuery::page_of`] takes from the whole list: the same filter,
///   order and part, and the same total, in every backend; the page and the total
///   are read from one state of the store.
#[async_trait]
pub trait ServiceUserAdmin: Send + Sync {
    /// Stores a new user.
    async fn create_service_user(&self, user: &ServiceUser) -> Result<(), StoreError>;

    /// Every user, ordered by username (byte order).
    async fn list_service_users(&self) -> Result<Vec<ServiceUser>, StoreError>;

    /// The users that `query` selects: those its filter matches, in its order, from
    /// its offset, at most its limit of them, and how many match in all.
    ///
    /// The default reads every user ([`list_service_users`](Self::list_service_users))
    /// and takes the page in memory ([`UserPageQuery::page_of`]); a backend that can
    /// filter, sort and count where the users are stored overrides it, so that a page
    /// of 100 users does not read 10,000.
    async fn service_users_page(&self, query: &UserPageQuery) -> Result<UserPage, StoreError> {
        Ok(query.page_of(self.list_service_users().await?))
    }

    /// Applies `patch` atomically to the user as stored and returns the user as
    /// stored afterwards.
    async fn update_service_user(
        &self,
        username: &Username,
        patch: &ServiceUserPatch,
    ) -> Result<ServiceUser, StoreError>;

    /// Deletes the user with its token records, role grants and client keys.
    async fn delete_service_user(&self, username: &Username) -> Result<(), StoreError>;
}

/// Which service users to list, in which order, and which part of them
/// ([`ServiceUserAdmin::service_users_page`]).
///
/// ```
/// use tessera_store::admin::{TextMatch, TextMethod, UserFilter, UserOrder, UserPageQuery};
///
/// // The second page of 50 enabled users whose username starts with "billing-",
/// // newest first.
/// let query = UserPageQuery {
///     filter: UserFilter::And(vec![
///         UserFilter::Enabled(true),
///         UserFilter::Username(TextMatch::new("billing-", TextMethod::StartsWith)),
///     ]),
///     order: UserOrder::CreatedAt,
///     descending: true,
///     offset: 50,
///     limit: 50,
/// };
/// # let _ = query;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPageQuery {
    /// Which users: those the filter matches.
    pub filter: UserFilter,
    /// The order of the users, ties broken by user id.
    pub order: UserOrder,
    /// Whether the order is reversed, ties included: the users of a descending
    /// query are those of the ascending one, last first.
    pub descending: bool,
    /// How many users of that order to skip.
    pub offset: u64,
    /// The most users on the page (0: none, only the total).
    pub limit: u32,
}

impl UserPageQuery {
    /// The first `limit` users, in username order.
    pub fn first(limit: u32) -> Self {
        Self {
            filter: UserFilter::All,
            order: UserOrder::Username,
            descending: false,
            offset: 0,
            limit,
        }
    }

    /// How `a` and `b` compare in this query's order: [`UserOrder::compare`],
    /// reversed when [`descending`](Self::descending).
    pub fn compare(&self, a: &ServiceUser, b: &ServiceUser) -> Ordering {
        let ordering = self.order.compare(a, b);
        if self.descending { ordering.reverse() } else { ordering }
    }

    /// The page this query selects from `users` (any number of users, in any
    /// order): those the filter matches, sorted, from the offset, at most the limit
    /// of them, and how many match in all. What every backend's
    /// [`service_users_page`](ServiceUserAdmin::service_users_page) answers, given
    /// every stored user.
    pub fn page_of(&self, users: impl IntoIterator<Item = ServiceUser>) -> UserPage {
        let mut matched: Vec<ServiceUser> =
            users.into_iter().filter(|user| self.filter.matches(user)).collect();
        let total = matched.len() as u64;
        matched.sort_by(|a, b| self.compare(a, b));
        let offset = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let users = matched.into_iter().skip(offset).take(limit).collect();
        UserPage { users, total }
    }
}

/// A page of service users and how many match the query in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPage {
    /// The users of the page, in the query's order.
    pub users: Vec<ServiceUser>,
    /// How many users match the query's filter, whatever its offset and limit.
    pub total: u64,
}

/// Which service users a [`UserPageQuery`] selects.
///
/// `And` of no filter matches every user, `Or` of none no user. Text is matched by
/// [`TextMatch::matches`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum UserFilter {
    /// Every user.
    #[default]
    All,
    /// The users every filter matches.
    And(Vec<UserFilter>),
    /// The users at least one filter matches.
    Or(Vec<UserFilter>),
    /// The users the filter does not match.
    Not(Box<UserFilter>),
    /// The users whose username matches.
    Username(TextMatch),
    /// The users whose display name matches.
    DisplayName(TextMatch),
    /// The users with one of these ids (none: no user).
    IdIn(Vec<UserId>),
    /// The enabled users (`true`) or the disabled ones (`false`).
    Enabled(bool),
}

impl UserFilter {
    /// Whether the filter matches `user`.
    pub fn matches(&self, user: &ServiceUser) -> bool {
        match self {
            UserFilter::All => true,
            UserFilter::And(filters) => filters.iter().all(|f| f.matches(user)),
            UserFilter::Or(filters) => filters.iter().any(|f| f.matches(user)),
            UserFilter::Not(filter) => !filter.matches(user),
            UserFilter::Username(text) => text.matches(user.username.as_str()),
            UserFilter::DisplayName(text) => text.matches(user.display_name.as_str()),
            UserFilter::IdIn(ids) => ids.contains(&user.id),
            UserFilter::Enabled(enabled) => user.enabled == *enabled,
        }
    }
}

/// A text to match a username or display name against, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMatch {
    /// The text. Every character stands for itself: `%`, `_`, `*`, `\` and the
    /// like are no wildcards.
    pub text: String,
    /// How it is matched.
    pub method: TextMethod,
}

impl TextMatch {
    /// `text`, matched with `method`.
    pub fn new(text: impl Into<String>, method: TextMethod) -> Self {
        Self { text: text.into(), method }
    }

    /// Whether `value` matches. The `…IgnoreCase` methods compare with ASCII
    /// letters folded to lower case (`A`–`Z` as `a`–`z`); every other character,
    /// `Ä` and `ä` among them, must match exactly, as SQL's `lower()` folds in
    /// every backend here.
    pub fn matches(&self, value: &str) -> bool {
        let text = self.text.as_str();
        match self.method {
            TextMethod::Equals => value == text,
            TextMethod::StartsWith => value.starts_with(text),
            TextMethod::Contains => value.contains(text),
            TextMethod::EndsWith => value.ends_with(text),
            TextMethod::EqualsIgnoreCase => value.eq_ignore_ascii_case(text),
            TextMethod::StartsWithIgnoreCase => {
                value.to_ascii_lowercase().starts_with(&text.to_ascii_lowercase())
            }
            TextMethod::ContainsIgnoreCase => {
                value.to_ascii_lowercase().contains(&text.to_ascii_lowercase())
            }
            TextMethod::EndsWithIgnoreCase => {
                value.to_ascii_lowercase().ends_with(&text.to_ascii_lowercase())
            }
        }
    }
}

/// How a [`TextMatch`] compares. An empty text starts, ends and is contained in every
/// value, and equals none (no username or display name is empty).
///
/// The `…IgnoreCase` methods fold ASCII letters only (`A`–`Z` to `a`–`z`): other
/// letters, such as `Ä` and `ä`, differ. Every backend folds alike (the SQL
/// backends with `lower()` on ASCII: SQLite's built-in function, and PostgreSQL's
/// under the `"C"` collation), whatever the database's locale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextMethod {
    /// The value is the text.
    Equals,
    /// The value is the text, ASCII case ignored.
    EqualsIgnoreCase,
    /// The value starts with the text.
    StartsWith,
    /// The value starts with the text, ASCII case ignored.
    StartsWithIgnoreCase,
    /// The value contains the text.
    Contains,
    /// The value contains the text, ASCII case ignored.
    ContainsIgnoreCase,
    /// The value ends with the text.
    EndsWith,
    /// The value ends with the text, ASCII case ignored.
    EndsWithIgnoreCase,
}

impl TextMethod {
    /// Whether the method ignores ASCII case.
    pub const fn ignores_case(self) -> bool {
        matches!(
            self,
            TextMethod::EqualsIgnoreCase
                | TextMethod::StartsWithIgnoreCase
                | TextMethod::ContainsIgnoreCase
                | TextMethod::EndsWithIgnoreCase
        )
    }
}

/// The order of a [`UserPageQuery`], ascending; ties are broken by user id (byte
/// order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum UserOrder {
    /// By creation time (whole seconds), oldest first.
    CreatedAt,
    /// By username (byte order); usernames are unique, so there are no ties.
    #[default]
    Username,
    /// By display name (byte order).
    DisplayName,
    /// Disabled users first, then enabled ones.
    Enabled,
}

impl UserOrder {
    /// How `a` and `b` compare in this order, ascending, ties broken by user id.
    pub fn compare(self, a: &ServiceUser, b: &ServiceUser) -> Ordering {
        let first = match self {
            UserOrder::CreatedAt => {
                a.created_at.unix_timestamp().cmp(&b.created_at.unix_timestamp())
            }
            UserOrder::Username => a.username.as_str().cmp(b.username.as_str()),
            UserOrder::DisplayName => a.display_name.as_str().cmp(b.display_name.as_str()),
            UserOrder::Enabled => a.enabled.cmp(&b.enabled),
        };
        first.then_with(|| a.id.as_str().cmp(b.id.as_str()))
    }
}

/// Administration of projects, their roles, their API apps and the roles granted in
/// them.
///
/// Contract, checked by the conformance suite (besides the common one of the
/// [module](crate::admin)):
///
/// - The reserved project `zitadel` exists in every store and can be neither
///   created again nor deleted (both [`StoreError::Conflict`]); project ids are
///   unique.
/// - Deleting a project deletes, in one atomic change, the project with its API
///   apps and their client keys, the grants of its roles, its roles and the
///   administrator roles held on it
///   ([`Administrator::project_id`](crate::Administrator::project_id)), also those
///   added concurrently: none outlives the project, and its id is free again
///   afterwards. Token records that name it in their audience are kept.
/// - Role keys are unique within a project (else [`StoreError::Conflict`]); a role
///   of a missing project is [`StoreError::NotFound`]. Removing a role removes
///   every grant of it in its project in the same atomic change; removing a missing
///   role changes nothing and returns `false`. Grants do not need a defined role
///   (a [`RoleGrant`] names its [`RoleKey`] itself), so a grant added after its role
///   was removed is kept.
/// - An API app's client ID is unique among API apps *and* service users, and its
///   app id among API apps ([`StoreError::Conflict`]); an API app of a missing
///   project is [`StoreError::NotFound`].
/// - Updating an API app follows the rules of service users: a replaced secret
///   stops working at once, unless the patch keeps it as the previous secret until
///   a given time (at most one previous secret, its expiry in whole seconds).
///   Deleting an API app deletes its client keys.
/// - Adding a grant that exists already changes nothing and returns `false`; a
///   grant for a missing user or project is [`StoreError::NotFound`]. Concurrent
///   grants to one user are all kept.
#[async_trait]
pub trait ProjectAdmin: Send + Sync {
    /// Stores a new project.
    async fn create_project(&self, project: &Project) -> Result<(), StoreError>;

    /// Renames a project; [`StoreError::NotFound`] when it does not exist.
    async fn rename_project(&self, id: &ProjectId, name: &DisplayName) -> Result<(), StoreError>;

    /// Every project, the reserved one included, ordered by id (byte order).
    async fn list_projects(&self) -> Result<Vec<Project>, StoreError>;

    /// Stores a new API app.
    async fn create_api_app(&self, app: &ApiApp) -> Result<(), StoreError>;

    /// Every API app, ordered by client ID (byte order).
    async fn list_api_apps(&self) -> Result<Vec<ApiApp>, StoreError>;

    /// Applies `patch` atomically to the app as stored and returns the app as
    /// stored afterwards.
    async fn update_api_app(
        &self,
        client_id: &ClientId,
        patch: &ApiAppPatch,
    ) -> Result<ApiApp, StoreError>;

    /// Deletes an API app and its client keys.
    async fn delete_api_app(&self, client_id: &ClientId) -> Result<(), StoreError>;

    /// Grants a role; returns whether the grant is new.
    async fn add_grant(&self, grant: &RoleGrant) -> Result<bool, StoreError>;

    /// Removes a grant; returns whether it existed.
    async fn remove_grant(&self, grant: &RoleGrant) -> Result<bool, StoreError>;

    /// Stores a new role of a project (its times in whole seconds);
    /// [`StoreError::NotFound`]`("project")` when the project does not exist,
    /// [`StoreError::Conflict`]`("project role")` when it has a role of this key.
    async fn add_project_role(&self, role: &ProjectRole) -> Result<(), StoreError>;

    /// Sets the display name and the group (`None`: none) of the role `key` of
    /// `project`, and its update time to `now` (whole seconds); returns the role as
    /// stored afterwards. [`StoreError::NotFound`]`("project role")` when there is no
    /// such role.
    async fn update_project_role(
        &self,
        project: &ProjectId,
        key: &RoleKey,
        display_name: &DisplayName,
        group: Option<&DisplayName>,
        now: OffsetDateTime,
    ) -> Result<ProjectRole, StoreError>;

    /// Removes the role `key` of `project` and every grant of it in that project, in
    /// one atomic change; returns whether the role existed (when it did not,
    /// nothing changes).
    async fn remove_project_role(
        &self,
        project: &ProjectId,
        key: &RoleKey,
    ) -> Result<bool, StoreError>;

    /// The roles of `project`, ordered by key (byte order); none for a missing
    /// project.
    async fn project_roles(&self, project: &ProjectId) -> Result<Vec<ProjectRole>, StoreError>;

    /// Deletes a project with its API apps and their client keys, its grants, its
    /// roles and the administrator roles held on it, in one atomic change.
    /// [`StoreError::NotFound`]`("project")` when it does not exist;
    /// [`StoreError::Conflict`]`("reserved project")` for the reserved project,
    /// which is never deleted.
    async fn delete_project(&self, id: &ProjectId) -> Result<(), StoreError>;
}

/// Administration of the public keys that clients sign assertions with (RFC 7523).
///
/// Contract, checked by the conformance suite (besides the common one of the
/// [module](crate::admin)):
///
/// - Key ids are unique ([`StoreError::Conflict`]); adding a key for a missing
///   owner is [`StoreError::NotFound`], and a key added while its owner is deleted
///   does not outlive the owner.
/// - Removing is scoped to the owner: removing another owner's key id changes
///   nothing and returns `false`.
/// - Concurrent additions for one owner are all kept.
#[async_trait]
pub trait ClientKeyAdmin: Send + Sync {
    /// Stores a new key.
    async fn add_client_key(&self, key: &ClientKey) -> Result<(), StoreError>;

    /// The keys of `owner`, ordered by creation time, then key id (byte order).
    async fn client_keys_of(&self, owner: &KeyOwner) -> Result<Vec<ClientKey>, StoreError>;

    /// Removes `owner`'s key `key_id`; returns whether it existed.
    async fn remove_client_key(&self, owner: &KeyOwner, key_id: &str) -> Result<bool, StoreError>;
}

/// Administration of the organization.
///
/// Contract, checked by the conformance suite: the update changes the name and
/// the primary domain, never the id or the creation time, atomically; before the
/// first [`init_organization`](crate::OrganizationStore::init_organization) it is
/// [`StoreError::NotFound`] and stores nothing.
#[async_trait]
pub trait OrganizationAdmin: Send + Sync {
    /// Renames the organization and sets its primary domain; returns it as stored.
    async fn update_organization(
        &self,
        name: &DisplayName,
        primary_domain: &Domain,
    ) -> Result<Organization, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_matches_literally_and_folds_ascii_case_only() {
        use TextMethod::*;
        let cases = [
            ("Bob_X", "bob_x", EqualsIgnoreCase, true),
            ("Bob_X", "bob_x", Equals, false),
            ("Bobyx", "bob_", StartsWithIgnoreCase, false),
            ("50%", "%", EndsWith, true),
            ("50", "%", EndsWith, false),
            (r"a\b", r"\", Contains, true),
            ("Ärger", "ärger", EqualsIgnoreCase, false),
            ("ÄRGER", "Ärger", EqualsIgnoreCase, true),
            ("anything", "", StartsWith, true),
            ("anything", "", Equals, false),
            ("x*y", "*", Contains, true),
            ("xay", "*", Contains, false),
        ];
        for (value, text, method, expected) in cases {
            let matched = TextMatch::new(text, method).matches(value);
            assert_eq!(matched, expected, "{value:?} {method:?} {text:?}");
        }
        assert!(ContainsIgnoreCase.ignores_case() && !Contains.ignores_case());
    }

    #[test]
    fn pages_are_filtered_sorted_counted_and_cut() -> Result<(), Box<dyn std::error::Error>> {
        let now = OffsetDateTime::UNIX_EPOCH;
        let user = |name: &str,
                    id: &str,
                    enabled: bool|
         -> Result<ServiceUser, Box<dyn std::error::Error>> {
            let mut user = ServiceUser::new(Username::new(name)?, now)?;
            user.id = UserId::new(id)?;
            user.enabled = enabled;
            Ok(user)
        };
        let users = vec![user("c", "2", true)?, user("a", "3", false)?, user("b", "1", true)?];
        let names = |page: &UserPage| -> Vec<String> {
            page.users.iter().map(|u| u.username.to_string()).collect()
        };
        let mut query = UserPageQuery::first(2);
        let page = query.page_of(users.clone());
        assert_eq!((names(&page), page.total), (vec!["a".into(), "b".into()], 3));
        query.order = UserOrder::CreatedAt;
        query.descending = true;
        let page = query.page_of(users.clone());
        assert_eq!(names(&page), ["a", "c"], "equal times: by id, reversed");
        query.filter = UserFilter::Enabled(true);
        query.offset = 1;
        let page = query.page_of(users.clone());
        assert_eq!((names(&page), page.total), (vec!["b".into()], 2));
        query.offset = u64::MAX;
        assert_eq!(query.page_of(users).users, [], "beyond the end");
        Ok(())
    }
}
