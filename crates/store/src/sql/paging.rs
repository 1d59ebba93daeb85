//! The SQL of a page of service users ([`UserPageQuery`]): the condition of its
//! filter with bound parameters, its `ORDER BY`, `LIMIT` and `OFFSET`, and the count
//! of every matching user, for SQLite and PostgreSQL alike.
//!
//! Both backends answer exactly what [`UserPageQuery::page_of`] answers:
//!
//! - Text is always a bound parameter, never part of the SQL. A pattern escapes the
//!   wildcards of its operator, so every character of the text stands for itself:
//!   `LIKE` with `%`, `_` and the escape character `\` escaped and an `ESCAPE '\'`
//!   clause; in SQLite, whose `LIKE` ignores ASCII case, a case-sensitive pattern is
//!   a `GLOB` instead, with `*`, `?` and `[` escaped as `[*]`, `[?]` and `[[]`.
//! - Ignoring case is `lower()` of the column compared with the text lowered in
//!   ASCII: SQLite's built-in `lower()` folds ASCII only, and so does PostgreSQL's
//!   under the `"C"` collation, whatever the database's locale.
//! - Text compares in byte order: SQLite's default `BINARY` collation, and the `"C"`
//!   collation in PostgreSQL (the schema gives it to ids and usernames; the display
//!   name is given it in the query).
//! - A text holding NUL matches no username or display name (neither can hold a
//!   control character), and PostgreSQL refuses NUL in text: the condition is false
//!   without a parameter.

use crate::admin::{TextMatch, TextMethod, UserFilter, UserOrder, UserPageQuery};
use crate::sql::rows::UserRow;

/// The database a statement is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: parameters `?1`, `?2`…; a boolean is an integer, true unless 0.
    Sqlite,
    /// PostgreSQL: parameters `$1`, `$2`…
    Postgres,
}

/// A parameter of the statements, in the order of its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// A text.
    Text(String),
    /// A list of texts: a PostgreSQL `text[]`; SQLite, which has no lists, binds
    /// it as the text of a JSON array ([`json_array`]), which the statement reads
    /// with `json_each`.
    Texts(Vec<String>),
    /// An integer: the limit and the offset of the page.
    Int(i64),
}

/// The statements of a page of service users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPageSql {
    /// `SELECT <`[`UserRow::COLUMNS`]`> FROM service_users WHERE … ORDER BY … LIMIT …
    /// OFFSET …`: the users of the page.
    pub page: String,
    /// `SELECT count(*) FROM service_users WHERE …`: how many match in all.
    pub count: String,
    /// The parameters of [`count`](Self::count), numbered from 1.
    pub count_params: Vec<Param>,
    /// The parameters of [`page`](Self::page): those of the count, then the limit and
    /// the offset.
    pub page_params: Vec<Param>,
}

impl UserPageSql {
    /// The statements of `query` in `dialect`.
    pub fn new(query: &UserPageQuery, dialect: Dialect) -> Self {
        let mut writer = Writer { dialect, params: Vec::new() };
        let condition = writer.filter(&query.filter);
        let count = format!("SELECT count(*) FROM service_users WHERE {condition}");
        let count_params = writer.params.clone();
        let limit = writer.bind(Param::Int(i64::from(query.limit)));
        let offset = writer.bind(Param::Int(i64::try_from(query.offset).unwrap_or(i64::MAX)));
        let page = format!(
            "SELECT {} FROM service_users WHERE {condition} ORDER BY {} LIMIT {limit} \
             OFFSET {offset}",
            UserRow::COLUMNS,
            order_by(query.order, query.descending, dialect),
        );
        Self { page, count, count_params, page_params: writer.params }
    }
}

/// Always true and always false, in both dialects.
const TRUE: &str = "1 = 1";
const FALSE: &str = "1 = 0";

/// Writes a condition, collecting its parameters.
struct Writer {
    dialect: Dialect,
    params: Vec<Param>,
}

impl Writer {
    /// Adds a parameter and returns its placeholder.
    fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        let n = self.params.len();
        match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    fn filter(&mut self, filter: &UserFilter) -> String {
        match filter {
            UserFilter::All => TRUE.to_owned(),
            UserFilter::And(filters) => self.all_of(filters, " AND ", TRUE),
            UserFilter::Or(filters) => self.all_of(filters, " OR ", FALSE),
            UserFilter::Not(filter) => format!("NOT ({})", self.filter(filter)),
            UserFilter::Username(text) => self.text("username", text),
            UserFilter::DisplayName(text) => {
                let column = match self.dialect {
                    Dialect::Sqlite => "display_name",
                    Dialect::Postgres => "display_name COLLATE \"C\"",
                };
                self.text(column, text)
            }
            UserFilter::IdIn(ids) if ids.is_empty() => FALSE.to_owned(),
            UserFilter::IdIn(ids) => {
                let ids: Vec<String> = ids.iter().map(|id| id.as_str().to_owned()).collect();
                // One parameter whatever the number of ids.
                let list = self.bind(Param::Texts(ids));
                match self.dialect {
                    Dialect::Sqlite => format!("id IN (SELECT value FROM json_each({list}))"),
                    Dialect::Postgres => format!("id = ANY({list})"),
                }
            }
            UserFilter::Enabled(enabled) => match (self.dialect, enabled) {
                (Dialect::Sqlite, true) => "enabled <> 0".to_owned(),
                (Dialect::Sqlite, false) => "enabled = 0".to_owned(),
                (Dialect::Postgres, true) => "enabled".to_owned(),
                (Dialect::Postgres, false) => "NOT enabled".to_owned(),
            },
        }
    }

    /// The filters joined with `joiner`, in parentheses; `empty` for none.
    fn all_of(&mut self, filters: &[UserFilter], joiner: &str, empty: &str) -> String {
        if filters.is_empty() {
            return empty.to_owned();
        }
        let parts: Vec<String> = filters.iter().map(|f| self.filter(f)).collect();
        format!("({})", parts.join(joiner))
    }

    /// The condition that `column` matches `text`.
    fn text(&mut self, column: &str, text: &TextMatch) -> String {
        if text.text.contains('\0') {
            return FALSE.to_owned();
        }
        let method = text.method;
        let (column, value) = if method.ignores_case() {
            (format!("lower({column})"), text.text.to_ascii_lowercase())
        } else {
            (column.to_owned(), text.text.clone())
        };
        let (prefix, suffix) = match method {
            TextMethod::Equals | TextMethod::EqualsIgnoreCase => {
                return format!("{column} = {}", self.bind(Param::Text(value)));
            }
            TextMethod::StartsWith | TextMethod::StartsWithIgnoreCase => (false, true),
            TextMethod::Contains | TextMethod::ContainsIgnoreCase => (true, true),
            TextMethod::EndsWith | TextMethod::EndsWithIgnoreCase => (true, false),
        };
        if self.dialect == Dialect::Sqlite && !method.ignores_case() {
            // SQLite's LIKE ignores ASCII case; GLOB does not.
            let pattern = wrap(&glob_escape(&value), "*", prefix, suffix);
            return format!("{column} GLOB {}", self.bind(Param::Text(pattern)));
        }
        let pattern = wrap(&like_escape(&value), "%", prefix, suffix);
        let escape = match self.dialect {
            Dialect::Sqlite => "'\\'",
            // An escape string: one backslash whatever `standard_conforming_strings`.
            Dialect::Postgres => "E'\\\\'",
        };
        format!("{column} LIKE {} ESCAPE {escape}", self.bind(Param::Text(pattern)))
    }
}

/// `texts` as the text of a JSON array of strings, as SQLite binds a
/// [`Param::Texts`].
pub fn json_array(texts: &[String]) -> String {
    serde_json::Value::from(texts).to_string()
}

/// `text` with `wildcard` before it (`prefix`) and after it (`suffix`).
fn wrap(text: &str, wildcard: &str, prefix: bool, suffix: bool) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    if prefix {
        pattern.push_str(wildcard);
    }
    pattern.push_str(text);
    if suffix {
        pattern.push_str(wildcard);
    }
    pattern
}

/// `text` as a `LIKE` pattern matching it alone, with `\` as the escape character.
pub fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `text` as an SQLite `GLOB` pattern matching it alone: each wildcard (`*`, `?`)
/// and `[` in a bracket expression of its own.
pub fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' | '?' | '[' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

/// The `ORDER BY` list of `order`, ties broken by id, all reversed when
/// `descending`.
fn order_by(order: UserOrder, descending: bool, dialect: Dialect) -> String {
    let direction = if descending { "DESC" } else { "ASC" };
    let first = match (order, dialect) {
        // Usernames are unique: no tie to break, and the unique index gives the order.
        (UserOrder::Username, _) => return format!("username {direction}"),
        (UserOrder::CreatedAt, _) => "created_at",
        (UserOrder::DisplayName, Dialect::Sqlite) => "display_name",
        (UserOrder::DisplayName, Dialect::Postgres) => "display_name COLLATE \"C\"",
        // As the flag is read: true unless 0.
        (UserOrder::Enabled, Dialect::Sqlite) => "(enabled <> 0)",
        (UserOrder::Enabled, Dialect::Postgres) => "enabled",
    };
    format!("{first} {direction}, id {direction}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UserId;

    fn query(filter: UserFilter) -> UserPageQuery {
        UserPageQuery { filter, ..UserPageQuery::first(10) }
    }

    #[test]
    fn lists_are_json_arrays_for_sqlite() {
        let texts = vec!["a\"b".to_owned(), "ü\\".to_owned()];
        assert_eq!(json_array(&texts), r#"["a\"b","ü\\"]"#);
        assert_eq!(json_array(&[]), "[]");
    }

    #[test]
    fn patterns_escape_their_wildcards() {
        assert_eq!(like_escape(r"50%_off\now"), r"50\%\_off\\now");
        assert_eq!(glob_escape("a*b?c[d]e"), "a[*]b[?]c[[]d]e");
        assert_eq!(like_escape("plain"), "plain");
    }

    #[test]
    fn text_is_bound_never_written() {
        let filter = UserFilter::Or(vec![
            UserFilter::Username(TextMatch::new("x' OR 1=1 --", TextMethod::Equals)),
            UserFilter::DisplayName(TextMatch::new("Ab%", TextMethod::StartsWithIgnoreCase)),
            UserFilter::Not(Box::new(UserFilter::Username(TextMatch::new(
                "a*",
                TextMethod::Contains,
            )))),
        ]);
        let sqlite = UserPageSql::new(&query(filter.clone()), Dialect::Sqlite);
        assert_eq!(
            sqlite.count,
            "SELECT count(*) FROM service_users WHERE (username = ?1 OR \
             lower(display_name) LIKE ?2 ESCAPE '\\' OR NOT (username GLOB ?3))"
        );
        assert_eq!(
            sqlite.count_params,
            [
                Param::Text("x' OR 1=1 --".to_owned()),
                Param::Text(r"ab\%%".to_owned()),
                Param::Text("*a[*]*".to_owned()),
            ]
        );
        assert!(
            sqlite.page.ends_with("ORDER BY username ASC LIMIT ?4 OFFSET ?5"),
            "{}",
            sqlite.page
        );
        assert_eq!(sqlite.page_params[3..], [Param::Int(10), Param::Int(0)]);

        let postgres = UserPageSql::new(&query(filter), Dialect::Postgres);
        assert_eq!(
            postgres.count,
            "SELECT count(*) FROM service_users WHERE (username = $1 OR \
             lower(display_name COLLATE \"C\") LIKE $2 ESCAPE E'\\\\' OR \
             NOT (username LIKE $3 ESCAPE E'\\\\'))"
        );
        assert_eq!(postgres.count_params[2], Param::Text("%a*%".to_owned()));
    }

    #[test]
    fn constants_need_no_parameters() {
        let ids = vec![UserId::new("100000000000000001").unwrap_or_else(|e| panic!("{e}"))];
        for (filter, sqlite, postgres) in [
            (UserFilter::All, "1 = 1", "1 = 1"),
            (UserFilter::And(vec![]), "1 = 1", "1 = 1"),
            (UserFilter::Or(vec![]), "1 = 0", "1 = 0"),
            (UserFilter::IdIn(vec![]), "1 = 0", "1 = 0"),
            (UserFilter::Enabled(false), "enabled = 0", "NOT enabled"),
            (UserFilter::Username(TextMatch::new("a\0b", TextMethod::Contains)), "1 = 0", "1 = 0"),
            (UserFilter::IdIn(ids), "id IN (SELECT value FROM json_each(?1))", "id = ANY($1)"),
        ] {
            let s = UserPageSql::new(&query(filter.clone()), Dialect::Sqlite);
            assert_eq!(s.count, format!("SELECT count(*) FROM service_users WHERE {sqlite}"));
            let p = UserPageSql::new(&query(filter), Dialect::Postgres);
            assert_eq!(p.count, format!("SELECT count(*) FROM service_users WHERE {postgres}"));
        }
    }

    #[test]
    fn orders_break_ties_by_id_in_the_same_direction() {
        let mut q = query(UserFilter::All);
        q.order = UserOrder::CreatedAt;
        q.descending = true;
        q.offset = u64::MAX;
        let sql = UserPageSql::new(&q, Dialect::Postgres);
        assert!(sql.page.contains("ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"));
        assert_eq!(sql.page_params, [Param::Int(10), Param::Int(i64::MAX)]);
        q.order = UserOrder::DisplayName;
        q.descending = false;
        let sql = UserPageSql::new(&q, Dialect::Postgres);
        assert!(sql.page.contains("ORDER BY display_name COLLATE \"C\" ASC, id ASC"));
        q.order = UserOrder::Enabled;
        let sql = UserPageSql::new(&q, Dialect::Sqlite);
        assert!(sql.page.contains("ORDER BY (enabled <> 0) ASC, id ASC"));
    }
}
