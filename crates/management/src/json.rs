//! proto3-JSON pieces shared by the services: timestamps, 64-bit integers, details,
//! paging, and the table of methods.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use tessera_store::{TextMatch, TextMethod};

use crate::Context;
use crate::connect::{Code, Status};

/// A method: decodes its request from JSON, runs, encodes its answer.
pub(crate) type Handler =
    for<'a> fn(
        Context<'a>,
        &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Result<Value, Status>> + Send + 'a>>;

/// A [`Handler`] of an async function of a typed request and answer.
macro_rules! unary {
    ($f:path) => {
        (|cx, body| {
            Box::pin(async move {
                let request = $crate::connect::decode(body)?;
                let answer = $f(cx, request).await?;
                $crate::json::encode(&answer)
            })
        }) as $crate::json::Handler
    };
}
pub(crate) use unary;

/// Encodes an answer.
pub(crate) fn encode<T: Serialize>(answer: &T) -> Result<Value, Status> {
    serde_json::to_value(answer)
        .map_err(|_| Status::new(Code::Internal, "the answer could not be encoded"))
}

/// A proto3 timestamp: RFC 3339 in UTC on the wire (`2026-12-06T05:00:00Z`); read
/// with any offset (`+00:00`, `+02:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub OffsetDateTime);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let utc = self.0.to_offset(time::UtcOffset::UTC);
        let text = utc.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if let Ok(at) = OffsetDateTime::parse(&text, &Rfc3339) {
            return Ok(Timestamp(at));
        }
        // Python's isoformat() of a naive datetime: no offset; read as UTC.
        let naive = time::format_description::well_known::Iso8601::DEFAULT;
        time::PrimitiveDateTime::parse(&text, &naive)
            .map(|at| Timestamp(at.assume_utc()))
            .map_err(|e| serde::de::Error::custom(format!("invalid timestamp {text:?}: {e}")))
    }
}

/// A 64-bit unsigned integer: a decimal string on the wire, as proto3 JSON writes it;
/// read from a string or a number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct U64(pub u64);

impl Serialize for U64 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for U64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Number(u64),
            Text(String),
        }
        match Wire::deserialize(deserializer)? {
            Wire::Number(n) => Ok(U64(n)),
            Wire::Text(text) => text
                .parse()
                .map(U64)
                .map_err(|_| serde::de::Error::custom(format!("invalid integer {text:?}"))),
        }
    }
}

/// ZITADEL's `Details` of a resource or a change.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Details {
    /// The change's sequence number: Tessera keeps none, so 0.
    pub sequence: U64,
    /// When the resource last changed.
    pub change_date: Timestamp,
    /// The organization owning the resource.
    pub resource_owner: String,
    /// When the resource was created.
    pub creation_date: Timestamp,
}

/// ZITADEL's `ListDetails` of a listing.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListDetails {
    /// How many resources match, on every page.
    pub total_result: U64,
    /// The sequence the listing reflects: 0.
    pub processed_sequence: U64,
    /// When the listing was made.
    pub timestamp: Timestamp,
}

/// ZITADEL's `ListQuery`: offset, limit and direction of a listing.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    /// Resources to skip.
    #[serde(default)]
    pub offset: U64,
    /// Resources to return; 0 means the default, [`DEFAULT_LIMIT`].
    #[serde(default)]
    pub limit: u32,
    /// Ascending order (the default is descending, as ZITADEL's).
    #[serde(default)]
    pub asc: bool,
}

/// The page size of a listing that names none.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest page.
pub const MAX_LIMIT: u32 = 1000;

impl ListQuery {
    /// The page of `items` (sorted ascending) the query asks for.
    pub(crate) fn page<T>(&self, mut items: Vec<T>) -> Result<Vec<T>, Status> {
        if self.limit > MAX_LIMIT {
            return Err(Status::invalid(format!("limit: at most {MAX_LIMIT}")));
        }
        if !self.asc {
            items.reverse();
        }
        let limit = if self.limit == 0 { DEFAULT_LIMIT } else { self.limit };
        let offset = usize::try_from(self.offset.0).unwrap_or(usize::MAX);
        Ok(items.into_iter().skip(offset).take(limit as usize).collect())
    }
}

/// The prefixes of ZITADEL's text methods: the older queries' and the filters'.
pub(crate) const TEXT_QUERY_METHOD: &str = "TEXT_QUERY_METHOD_";
/// See [`TEXT_QUERY_METHOD`].
pub(crate) const TEXT_FILTER_METHOD: &str = "TEXT_FILTER_METHOD_";

/// The store's text method for ZITADEL's name of it, `{prefix}EQUALS` and so on
/// with one of `prefixes` (none: equals).
pub(crate) fn text_method(name: Option<&str>, prefixes: &[&str]) -> Result<TextMethod, Status> {
    let Some(name) = name else { return Ok(TextMethod::Equals) };
    let unknown = || Status::invalid(format!("unknown text method {name}"));
    let kind = prefixes.iter().find_map(|p| name.strip_prefix(p)).ok_or_else(unknown)?;
    Ok(match kind {
        "EQUALS" => TextMethod::Equals,
        "EQUALS_IGNORE_CASE" => TextMethod::EqualsIgnoreCase,
        "STARTS_WITH" => TextMethod::StartsWith,
        "STARTS_WITH_IGNORE_CASE" => TextMethod::StartsWithIgnoreCase,
        "CONTAINS" => TextMethod::Contains,
        "CONTAINS_IGNORE_CASE" => TextMethod::ContainsIgnoreCase,
        "ENDS_WITH" => TextMethod::EndsWith,
        "ENDS_WITH_IGNORE_CASE" => TextMethod::EndsWithIgnoreCase,
        _ => return Err(unknown()),
    })
}

/// Whether `text` matches `wanted` with ZITADEL's text method (`TEXT_QUERY_METHOD_*`
/// or `TEXT_FILTER_METHOD_*`; none: equals), as the store matches it
/// ([`TextMatch::matches`]: the `…_IGNORE_CASE` methods ignore ASCII case), so that
/// every listing agrees.
pub(crate) fn text_matches(text: &str, wanted: &str, method: Option<&str>) -> Result<bool, Status> {
    let method = text_method(method, &[TEXT_QUERY_METHOD, TEXT_FILTER_METHOD])?;
    Ok(TextMatch::new(wanted, method).matches(text))
}

/// `PaginationResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// How many match.
    pub total_result: U64,
    /// The page size applied.
    pub applied_limit: U64,
}

impl ListQuery {
    /// The page of `items` (sorted ascending) and the `PaginationResponse`.
    pub(crate) fn paginate<T>(&self, items: Vec<T>) -> Result<(Pagination, Vec<T>), Status> {
        let total = items.len() as u64;
        let limit = if self.limit == 0 { DEFAULT_LIMIT } else { self.limit };
        let page = self.page(items)?;
        Ok((Pagination { total_result: U64(total), applied_limit: U64(u64::from(limit)) }, page))
    }
}

/// `IDFilter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdFilter {
    /// The id.
    #[serde(default)]
    pub id: String,
}

/// `InIDsFilter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdsFilter {
    /// The ids.
    #[serde(default)]
    pub ids: Vec<String>,
}

/// A filter by display name (`UserDisplayNameFilter`, `ProjectRoleDisplayNameFilter`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisplayNameFilter {
    /// The display name.
    #[serde(default)]
    pub display_name: String,
    /// `TEXT_FILTER_METHOD_*`.
    #[serde(default)]
    pub method: Option<String>,
}

/// A response with the time of a deletion.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionResponse {
    /// When the resource was removed.
    pub deletion_date: Timestamp,
}

/// A response with the time of a change.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeResponse {
    /// When the resource changed.
    pub change_date: Timestamp,
}

/// An organization named in an answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationRef {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_in_utc_and_read_with_any_offset() {
        let parsed: Timestamp =
            serde_json::from_str(r#""2026-12-06T07:00:00+02:00""#).expect("a timestamp");
        assert_eq!(serde_json::to_string(&parsed).expect("json"), r#""2026-12-06T05:00:00Z""#);
        assert!(serde_json::from_str::<Timestamp>(r#""yesterday""#).is_err());
        let naive: Timestamp =
            serde_json::from_str(r#""2026-12-06T05:00:00.250000""#).expect("a naive timestamp");
        assert_eq!(
            naive.0.unix_timestamp(),
            Timestamp(time::macros::datetime!(2026-12-06 05:00 UTC)).0.unix_timestamp()
        );
    }

    #[test]
    fn int64_values_are_strings_on_the_wire() {
        assert_eq!(serde_json::to_string(&U64(7)).expect("json"), r#""7""#);
        assert_eq!(serde_json::from_str::<U64>(r#""12""#).expect("u64"), U64(12));
        assert_eq!(serde_json::from_str::<U64>("12").expect("u64"), U64(12));
        assert!(serde_json::from_str::<U64>(r#""-1""#).is_err());
    }

    #[test]
    fn pages_follow_offset_limit_and_direction() {
        let query = |offset, limit, asc| ListQuery { offset: U64(offset), limit, asc };
        let items: Vec<u32> = (1..=5).collect();
        assert_eq!(query(1, 2, true).page(items.clone()).ok(), Some(vec![2, 3]));
        assert_eq!(query(0, 2, false).page(items.clone()).ok(), Some(vec![5, 4]));
        assert_eq!(query(9, 0, true).page(items.clone()).ok(), Some(vec![]));
        assert!(query(0, MAX_LIMIT + 1, true).page(items).is_err());
    }
}
