//! The checks of pages of service users
//! ([`ServiceUserAdmin::service_users_page`](crate::ServiceUserAdmin::service_users_page)).
//! [`conformance_suite!`](crate::conformance_suite) and
//! [`conformance_suite_shared!`](crate::conformance_suite_shared) run them.
//!
//! Every backend answers each query as [`UserPageQuery::page_of`] answers it from the
//! whole list of users (what the trait's default does), and as written out here.

use super::{SharedStore, at, sample_user};
use crate::{
    DisplayName, ServiceUser, TextMatch, TextMethod, UserFilter, UserId, UserOrder, UserPage,
    UserPageQuery,
};

/// The users of the checks: `(username, display name, id, seconds after t0() of
/// its creation, enabled)`. Ids sort otherwise than usernames; creation times and
/// display names tie; usernames and display names hold the wildcards of `LIKE`
/// (`%`, `_`, `\`) and `GLOB` (`*`, `?`, `[`), both cases of ASCII letters and of
/// non-ASCII ones.
const USERS: [(&str, &str, &str, i64, bool); 12] = [
    ("judy", r"x\%y", "id-06", 60, true),
    ("alice", "Alice Smith", "id-07", 10, true),
    ("dave", "Dave*?[x]", "id-09", 30, false),
    ("Alice.B", "alice b", "id-03", 10, true),
    ("bob_x", "Bob_X", "id-12", 20, false),
    ("frank", "ärger ÄPFEL", "id-11", 40, true),
    ("bobyx", "Bob%X 50%", "id-01", 20, true),
    ("carol", r"Carol \ Back", "id-05", 30, true),
    ("eve", "Ärger äpfel", "id-02", 40, true),
    ("grace", "Grace", "id-04", 10, false),
    ("heidi", "Grace", "id-10", 50, true),
    ("ivan", "100% sure_thing", "id-08", 60, true),
];

/// Every username, in username order (byte order: upper case first).
const BY_USERNAME: [&str; 12] = [
    "Alice.B", "alice", "bob_x", "bobyx", "carol", "dave", "eve", "frank", "grace", "heidi",
    "ivan", "judy",
];

/// Stores [`USERS`] through `store`; returns them.
async fn create_users(store: &SharedStore) -> Vec<ServiceUser> {
    let mut created = Vec::new();
    for (name, display, id, created_secs, enabled) in USERS {
        let (mut user, _) = sample_user(name);
        user.id = UserId::new(id).unwrap_or_else(|e| panic!("test user id {id:?}: {e}"));
        user.display_name =
            DisplayName::new(display).unwrap_or_else(|e| panic!("test name {display:?}: {e}"));
        user.created_at = at(created_secs);
        user.updated_at = at(created_secs);
        user.enabled = enabled;
        store.create_service_user(&user).await.unwrap_or_else(|e| panic!("create {name}: {e}"));
        created.push(user);
    }
    created
}

/// A query of the first 100 users `filter` matches, in username order.
fn filtered(filter: UserFilter) -> UserPageQuery {
    UserPageQuery { filter, ..UserPageQuery::first(100) }
}

fn text(value: &str, method: TextMethod) -> TextMatch {
    TextMatch::new(value, method)
}

fn id(value: &str) -> UserId {
    UserId::new(value).unwrap_or_else(|e| panic!("test user id {value:?}: {e}"))
}

/// The page `query` selects through `store`, checked against the page the default
/// takes from the whole list; `what` names the query in failures.
async fn page(store: &SharedStore, query: &UserPageQuery, what: &str) -> UserPage {
    let page = store.service_users_page(query).await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let all = store.list_service_users().await.expect("list");
    assert_eq!(page, query.page_of(all), "{what}: not the page of the whole list");
    page
}

/// The usernames of a page's users.
fn names(page: &UserPage) -> Vec<&str> {
    page.users.iter().map(|u| u.username.as_str()).collect()
}

/// Checks that `query` selects the users named `expected` (in this order) through
/// `store`, of `total` users in all.
async fn expect(store: &SharedStore, query: UserPageQuery, expected: &[&str], total: u64) {
    let what = format!("{:?}", query.filter);
    let page = page(store, &query, &what).await;
    assert_eq!(names(&page), expected, "{what}");
    assert_eq!(page.total, total, "{what}: the total");
}

/// Checks that `filter` matches exactly the users named `expected` (in username
/// order) through `store`.
async fn expect_filter(store: &SharedStore, filter: UserFilter, expected: &[&str]) {
    let total = expected.len() as u64;
    expect(store, filtered(filter), expected, total).await;
}

/// Every kind of filter selects what it says, with text matched literally (`%`, `_`,
/// `\`, `*`, `?` and `[` are no wildcards) and case ignored for ASCII letters only;
/// the users read back whole.
pub async fn user_pages_filter_by_every_kind(store: SharedStore) {
    use TextMethod::*;
    let created = create_users(&store).await;
    let all = page(&store, &UserPageQuery::first(100), "all").await;
    assert_eq!(names(&all), BY_USERNAME);
    assert_eq!(all.total, 12);
    for user in &created {
        assert!(all.users.contains(user), "{} reads back whole", user.username);
    }
    let u = |value: &str, method| UserFilter::Username(text(value, method));
    let d = |value: &str, method| UserFilter::DisplayName(text(value, method));

    expect_filter(&store, u("alice", Equals), &["alice"]).await;
    expect_filter(&store, u("ALICE", Equals), &[]).await;
    expect_filter(&store, u("ALICE", EqualsIgnoreCase), &["alice"]).await;
    expect_filter(&store, u("alice.b", EqualsIgnoreCase), &["Alice.B"]).await;
    expect_filter(&store, u("Alice", StartsWith), &["Alice.B"]).await;
    expect_filter(&store, u("alice", StartsWithIgnoreCase), &["Alice.B", "alice"]).await;
    expect_filter(&store, u("bob_", StartsWith), &["bob_x"]).await;
    expect_filter(&store, u("bob_x", EqualsIgnoreCase), &["bob_x"]).await;
    expect_filter(&store, u("_", Contains), &["bob_x"]).await;
    expect_filter(&store, u(".", Contains), &["Alice.B"]).await;
    expect_filter(&store, u("x", EndsWith), &["bob_x", "bobyx"]).await;
    expect_filter(&store, u("B", EndsWith), &["Alice.B"]).await;
    expect_filter(&store, u("b", EndsWith), &[]).await;
    expect_filter(&store, u("B", EndsWithIgnoreCase), &["Alice.B"]).await;
    expect_filter(
        &store,
        u("E", ContainsIgnoreCase),
        &["Alice.B", "alice", "dave", "eve", "grace", "heidi"],
    )
    .await;
    expect_filter(&store, u("", StartsWith), &BY_USERNAME).await;
    expect_filter(&store, u("", Contains), &BY_USERNAME).await;
    expect_filter(&store, u("", EndsWithIgnoreCase), &BY_USERNAME).await;
    expect_filter(&store, u("", Equals), &[]).await;
    expect_filter(&store, u("%", Contains), &[]).await;
    expect_filter(&store, u("*", ContainsIgnoreCase), &[]).await;

    expect_filter(&store, d("%", Contains), &["bobyx", "ivan", "judy"]).await;
    expect_filter(&store, d("50%", EndsWith), &["bobyx"]).await;
    expect_filter(&store, d("100%", StartsWith), &["ivan"]).await;
    expect_filter(&store, d("100%_", StartsWith), &[]).await;
    expect_filter(&store, d("_", Contains), &["bob_x", "ivan"]).await;
    expect_filter(&store, d("bob_x", EqualsIgnoreCase), &["bob_x"]).await;
    expect_filter(&store, d("BOB%", StartsWithIgnoreCase), &["bobyx"]).await;
    expect_filter(&store, d("\\", Contains), &["carol", "judy"]).await;
    expect_filter(&store, d("\\%", Contains), &["judy"]).await;
    expect_filter(&store, d("x\\%y", Equals), &["judy"]).await;
    expect_filter(&store, d("\\ b", ContainsIgnoreCase), &["carol"]).await;
    expect_filter(&store, d("*", Contains), &["dave"]).await;
    expect_filter(&store, d("?", Contains), &["dave"]).await;
    expect_filter(&store, d("*?[", Contains), &["dave"]).await;
    expect_filter(&store, d("[x]", EndsWith), &["dave"]).await;
    expect_filter(&store, d("[X]", EndsWithIgnoreCase), &["dave"]).await;
    expect_filter(&store, d("]", EndsWith), &["dave"]).await;
    expect_filter(&store, d("dave*?", StartsWithIgnoreCase), &["dave"]).await;
    expect_filter(&store, d("grace", Equals), &[]).await;
    expect_filter(&store, d("grace", EqualsIgnoreCase), &["grace", "heidi"]).await;
    expect_filter(&store, d("Grace", Equals), &["grace", "heidi"]).await;
    // ASCII letters only are folded: Ä and ä differ, with or without case.
    expect_filter(&store, d("ärger", Contains), &["frank"]).await;
    expect_filter(&store, d("ärger", ContainsIgnoreCase), &["frank"]).await;
    expect_filter(&store, d("ÄRGER", ContainsIgnoreCase), &["eve"]).await;
    expect_filter(&store, d("äpfel", EndsWithIgnoreCase), &["eve"]).await;
    expect_filter(&store, d("ÄPFEL", EndsWithIgnoreCase), &["frank"]).await;
    expect_filter(&store, d("ä", Contains), &["eve", "frank"]).await;
    // A text with NUL matches nothing (and nothing is refused).
    expect_filter(&store, d("a\0", Contains), &[]).await;
    expect_filter(&store, UserFilter::Not(Box::new(u("e\0", Equals))), &BY_USERNAME).await;

    expect_filter(
        &store,
        UserFilter::IdIn(vec![id("id-12"), id("id-99"), id("id-03"), id("id-12")]),
        &["Alice.B", "bob_x"],
    )
    .await;
    expect_filter(&store, UserFilter::IdIn(vec![]), &[]).await;
    expect_filter(&store, UserFilter::Not(Box::new(UserFilter::IdIn(vec![]))), &BY_USERNAME).await;
    expect_filter(&store, UserFilter::Enabled(false), &["bob_x", "dave", "grace"]).await;
    expect_filter(
        &store,
        UserFilter::Enabled(true),
        &["Alice.B", "alice", "bobyx", "carol", "eve", "frank", "heidi", "ivan", "judy"],
    )
    .await;
    expect_filter(&store, UserFilter::All, &BY_USERNAME).await;
    expect_filter(&store, UserFilter::And(vec![]), &BY_USERNAME).await;
    expect_filter(&store, UserFilter::Or(vec![]), &[]).await;
    expect_filter(&store, UserFilter::Not(Box::new(UserFilter::All)), &[]).await;
}

/// Filters nest: `And`, `Or` and `Not` of any filters, at any depth.
pub async fn user_pages_filter_with_nested_filters(store: SharedStore) {
    use TextMethod::*;
    create_users(&store).await;
    let u = |value: &str, method| UserFilter::Username(text(value, method));
    let d = |value: &str, method| UserFilter::DisplayName(text(value, method));
    let not = |filter| UserFilter::Not(Box::new(filter));

    let nested = UserFilter::And(vec![
        UserFilter::Enabled(true),
        UserFilter::Or(vec![u("b", StartsWith), d("grace", ContainsIgnoreCase)]),
        not(UserFilter::IdIn(vec![id("id-10")])),
    ]);
    expect_filter(&store, nested, &["bobyx"]).await;
    expect_filter(&store, not(not(u("eve", Equals))), &["eve"]).await;
    expect_filter(&store, UserFilter::Or(vec![u("eve", Equals), u("eve", Equals)]), &["eve"]).await;
    expect_filter(&store, UserFilter::And(vec![u("eve", Equals), not(u("eve", Equals))]), &[])
        .await;
    let deep = UserFilter::Or(vec![
        UserFilter::And(vec![
            d("%", Contains),
            not(UserFilter::Or(vec![d("\\", Contains), UserFilter::Enabled(false)])),
        ]),
        UserFilter::And(vec![
            UserFilter::Enabled(false),
            not(d("*", Contains)),
            UserFilter::Or(vec![u("_", Contains), UserFilter::IdIn(vec![id("id-04")])]),
        ]),
        UserFilter::And(vec![UserFilter::And(vec![UserFilter::And(vec![u("Alice.B", Equals)])])]),
    ]);
    expect_filter(&store, deep, &["Alice.B", "bob_x", "bobyx", "grace", "ivan"]).await;
    expect_filter(
        &store,
        not(UserFilter::Or(vec![
            UserFilter::Enabled(false),
            d("ä", ContainsIgnoreCase),
            u("a", StartsWithIgnoreCase),
        ])),
        &["bobyx", "carol", "heidi", "ivan", "judy"],
    )
    .await;
}

/// Every order, both ways: ties (of creation time, display name, the enabled flag)
/// broken by user id (byte order), reversed with the rest in a descending order.
pub async fn user_pages_are_ordered_both_ways(store: SharedStore) {
    create_users(&store).await;
    let by_created = [
        "Alice.B", "grace", "alice", "bobyx", "bob_x", "carol", "dave", "eve", "frank", "heidi",
        "judy", "ivan",
    ];
    let by_display_name = [
        "ivan", "alice", "bobyx", "bob_x", "carol", "dave", "grace", "heidi", "Alice.B", "judy",
        "eve", "frank",
    ];
    let by_enabled = [
        "grace", "dave", "bob_x", "bobyx", "eve", "Alice.B", "carol", "judy", "alice", "ivan",
        "heidi", "frank",
    ];
    for (order, ascending) in [
        (UserOrder::Username, &BY_USERNAME),
        (UserOrder::CreatedAt, &by_created),
        (UserOrder::DisplayName, &by_display_name),
        (UserOrder::Enabled, &by_enabled),
    ] {
        let mut query = UserPageQuery { order, ..UserPageQuery::first(100) };
        expect(&store, query.clone(), ascending, 12).await;
        query.descending = true;
        let descending: Vec<&str> = ascending.iter().rev().copied().collect();
        expect(&store, query, &descending, 12).await;
    }
}

/// Offsets and limits take a part of the order, the total counts every matching user
/// whatever the part, and an offset at or beyond the end gives no user.
pub async fn user_pages_are_taken_by_offset_and_limit(store: SharedStore) {
    create_users(&store).await;
    let part = |order, descending, offset, limit| UserPageQuery {
        filter: UserFilter::All,
        order,
        descending,
        offset,
        limit,
    };
    expect(&store, part(UserOrder::CreatedAt, false, 2, 3), &["alice", "bobyx", "bob_x"], 12).await;
    expect(&store, part(UserOrder::CreatedAt, true, 0, 2), &["ivan", "judy"], 12).await;
    expect(&store, part(UserOrder::Username, false, 11, 5), &["judy"], 12).await;
    expect(&store, part(UserOrder::Username, false, 12, 5), &[], 12).await;
    expect(&store, part(UserOrder::Username, true, 13, 5), &[], 12).await;
    expect(&store, part(UserOrder::Username, false, u64::MAX, u32::MAX), &[], 12).await;
    expect(&store, part(UserOrder::DisplayName, false, 0, 0), &[], 12).await;
    expect(
        &store,
        part(UserOrder::Enabled, false, 0, u32::MAX),
        &[
            "grace", "dave", "bob_x", "bobyx", "eve", "Alice.B", "carol", "judy", "alice", "ivan",
            "heidi", "frank",
        ],
        12,
    )
    .await;

    let enabled = UserPageQuery {
        filter: UserFilter::Enabled(true),
        order: UserOrder::Username,
        descending: true,
        offset: 1,
        limit: 2,
    };
    expect(&store, enabled.clone(), &["ivan", "heidi"], 9).await;
    let beyond = UserPageQuery { offset: 9, ..enabled.clone() };
    expect(&store, beyond, &[], 9).await;
    let none = UserPageQuery { filter: UserFilter::Or(vec![]), ..enabled };
    expect(&store, none, &[], 0).await;

    // Pages of five, both ways, make up the whole order.
    for order in [UserOrder::CreatedAt, UserOrder::DisplayName, UserOrder::Enabled] {
        for descending in [false, true] {
            let whole = part(order, descending, 0, 100);
            let whole = page(&store, &whole, "the whole order").await;
            let mut pages = Vec::new();
            for offset in (0..15).step_by(5) {
                let query = part(order, descending, offset, 5);
                let page = page(&store, &query, "a page of five").await;
                assert_eq!(page.total, 12, "{order:?} from {offset}: the total");
                pages.extend(page.users);
            }
            assert_eq!(pages, whole.users, "{order:?} descending {descending}: pages of five");
        }
    }
}

/// Pages read through one store show the users created, changed and deleted through
/// the other at once, and both stores answer alike.
pub async fn shared_user_pages_agree_across_stores([a, b]: [SharedStore; 2]) {
    create_users(&a).await;
    let query = UserPageQuery {
        filter: UserFilter::DisplayName(text("%", TextMethod::Contains)),
        order: UserOrder::CreatedAt,
        descending: true,
        offset: 0,
        limit: 2,
    };
    let through_a = page(&a, &query, "through a").await;
    let through_b = page(&b, &query, "through b").await;
    assert_eq!(through_a, through_b, "both stores answer alike");
    assert_eq!((names(&through_b), through_b.total), (vec!["ivan", "judy"], 3));

    let judy = crate::Username::new("judy").expect("username");
    a.delete_service_user(&judy).await.expect("delete");
    let mut patch = crate::ServiceUserPatch::at(at(100));
    patch.display_name = Some(DisplayName::new("Fifty-fifty").expect("name"));
    let bobyx = crate::Username::new("bobyx").expect("username");
    a.update_service_user(&bobyx, &patch).await.expect("update");
    let seen = page(&b, &query, "after the changes").await;
    assert_eq!((names(&seen), seen.total), (vec!["ivan"], 1), "seen through the other at once");
}
