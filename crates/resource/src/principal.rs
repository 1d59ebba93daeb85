//! The caller an access token stands for, and the claims it is read from.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::error::Rejection;

/// The claim that holds a token's roles, as ZITADEL writes it.
pub const ROLES_CLAIM: &str = "urn:zitadel:iam:org:project:roles";

/// The caller a valid access token stands for: what the handler of a protected
/// route receives (a request extension from [`AuthLayer`](crate::AuthLayer), or the
/// axum extractor). Cloning it is cheap.
#[derive(Clone)]
pub struct Principal(Arc<Inner>);

struct Inner {
    subject: String,
    client_id: String,
    scopes: Vec<String>,
    audience: Vec<String>,
    roles: Roles,
    project_roles: BTreeMap<String, Roles>,
    expires_at: Option<i64>,
    issued_at: Option<i64>,
    token_id: Option<String>,
    username: Option<String>,
    kind: TokenKind,
}

/// Which kind of access token a [`Principal`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenKind {
    /// A JWT, verified with the issuer's published keys (and, when configured,
    /// introspected).
    Jwt,
    /// An opaque token, introspected at the issuer.
    Opaque,
}

impl Principal {
    /// The subject (`sub`): the service user's id.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The client the token was issued to (`client_id`, or `azp` when a token has
    /// only that).
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// The granted scopes, in the token's order.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.0.scopes.iter().map(String::as_str)
    }

    /// Whether the token was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.iter().any(|s| s == scope)
    }

    /// The audience (`aud`): project ids, or the client ID for a token that names
    /// no project.
    pub fn audience(&self) -> &[String] {
        &self.0.audience
    }

    /// Whether the audience holds `audience`.
    pub fn has_audience(&self, audience: &str) -> bool {
        self.0.audience.iter().any(|a| a == audience)
    }

    /// The roles (the `urn:zitadel:iam:org:project:roles` claim).
    pub fn roles(&self) -> &Roles {
        &self.0.roles
    }

    /// Whether the token holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.0.roles.contains(role)
    }

    /// Whether the token holds `role` in the project `project`: from the claim
    /// `urn:zitadel:iam:org:project:{project}:roles` when the token carries it (as
    /// ZITADEL's do), otherwise from the roles claim for a token whose audience
    /// names the project (Tessera grants a role only when its project is in the
    /// token's audience).
    pub fn has_role_in(&self, role: &str, project: &str) -> bool {
        match self.0.project_roles.get(project) {
            Some(roles) => roles.contains(role),
            None => self.has_audience(project) && self.0.roles.contains(role),
        }
    }

    /// Expiry (`exp`, unix seconds), when the token states one.
    pub fn expires_at(&self) -> Option<i64> {
        self.0.expires_at
    }

    /// Issue time (`iat`, unix seconds), when the token states one.
    pub fn issued_at(&self) -> Option<i64> {
        self.0.issued_at
    }

    /// The token's unique id (`jti`), when it states one.
    pub fn token_id(&self) -> Option<&str> {
        self.0.token_id.as_deref()
    }

    /// The service user's username, when introspection names it.
    pub fn username(&self) -> Option<&str> {
        self.0.username.as_deref()
    }

    /// Whether the token was a JWT or opaque.
    pub fn kind(&self) -> TokenKind {
        self.0.kind
    }

    /// The principal of verified `claims`; a token without `sub` or a client id is
    /// refused.
    pub(crate) fn from_claims(claims: Claims, kind: TokenKind) -> Result<Self, Rejection> {
        let subject = claims.sub.ok_or(Rejection::MissingClaim)?;
        let client_id = claims.client_id.or(claims.azp).ok_or(Rejection::MissingClaim)?;
        let scopes = claims
            .scope
            .as_deref()
            .unwrap_or_default()
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect();
        Ok(Principal(Arc::new(Inner {
            subject,
            client_id,
            scopes,
            audience: claims.aud,
            roles: claims.roles,
            project_roles: claims.project_roles,
            expires_at: claims.exp,
            issued_at: claims.iat,
            token_id: claims.jti,
            username: claims.username,
            kind,
        })))
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.0.subject)
            .field("client_id", &self.0.client_id)
            .field("scopes", &self.0.scopes)
            .field("audience", &self.0.audience)
            .field("roles", &self.0.roles)
            .field("expires_at", &self.0.expires_at)
            .field("kind", &self.0.kind)
            .finish_non_exhaustive()
    }
}

/// Roles as ZITADEL writes them: role → organization id → the organization's
/// primary domain (`{"reader": {"177277230701233111": "acme.example.com"}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Roles(BTreeMap<String, BTreeMap<String, String>>);

impl Roles {
    /// Whether `role` is held (in any organization).
    pub fn contains(&self, role: &str) -> bool {
        self.0.contains_key(role)
    }

    /// The organizations `role` is held in: organization id → primary domain.
    pub fn organizations(&self, role: &str) -> Option<&BTreeMap<String, String>> {
        self.0.get(role)
    }

    /// The roles held, in name order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Whether no role is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The claims of a JWT or an introspection answer (RFC 7662 §2.2) that this crate
/// reads. Each known member may appear once; others are skipped unread.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    pub(crate) active: Option<bool>,
    pub(crate) iss: Option<String>,
    pub(crate) sub: Option<String>,
    pub(crate) aud: Vec<String>,
    pub(crate) has_aud: bool,
    pub(crate) exp: Option<i64>,
    pub(crate) nbf: Option<i64>,
    pub(crate) iat: Option<i64>,
    pub(crate) jti: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) azp: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) roles: Roles,
    pub(crate) project_roles: BTreeMap<String, Roles>,
}

/// Projects whose roles claim a token may carry at most; more is refused as
/// malformed, so that a token cannot make a cached entry arbitrarily large.
const MAX_PROJECT_ROLE_CLAIMS: usize = 64;

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ClaimsVisitor)
    }
}

struct ClaimsVisitor;

/// Sets `slot` once; a repeated member is an error, so that no two parsers can
/// read different values from one token.
fn once<'de, T, A>(slot: &mut Option<T>, map: &mut A, name: &'static str) -> Result<(), A::Error>
where
    T: Deserialize<'de>,
    A: MapAccess<'de>,
{
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

/// A NumericDate (RFC 7519 §2): seconds, possibly with a fraction (dropped).
#[derive(Deserialize)]
#[serde(untagged)]
enum NumericDate {
    Int(i64),
    Float(f64),
}

impl NumericDate {
    fn seconds(self) -> i64 {
        match self {
            NumericDate::Int(s) => s,
            // Saturating float-to-int conversion; a NaN becomes 0, a date long past.
            NumericDate::Float(s) => s as i64,
        }
    }
}

fn date<'de, A: MapAccess<'de>>(
    slot: &mut Option<i64>,
    map: &mut A,
    name: &'static str,
) -> Result<(), A::Error> {
    let mut value: Option<NumericDate> = None;
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    once(&mut value, map, name)?;
    *slot = value.map(NumericDate::seconds);
    Ok(())
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = Claims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
        let mut claims = Claims::default();
        let mut roles: Option<Roles> = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.as_str() {
                "active" => once(&mut claims.active, &mut map, "active")?,
                "iss" => once(&mut claims.iss, &mut map, "iss")?,
                "sub" => once(&mut claims.sub, &mut map, "sub")?,
                "aud" => {
                    if claims.has_aud {
                        return Err(de::Error::duplicate_field("aud"));
                    }
                    claims.has_aud = true;
                    claims.aud = match map.next_value::<Audience>()? {
                        Audience::One(one) => vec![one],
                        Audience::Many(many) => many,
                    };
                }
                "exp" => date(&mut claims.exp, &mut map, "exp")?,
                "nbf" => date(&mut claims.nbf, &mut map, "nbf")?,
                "iat" => date(&mut claims.iat, &mut map, "iat")?,
                "jti" => once(&mut claims.jti, &mut map, "jti")?,
                "client_id" => once(&mut claims.client_id, &mut map, "client_id")?,
                "azp" => once(&mut claims.azp, &mut map, "azp")?,
                "scope" => once(&mut claims.scope, &mut map, "scope")?,
                "username" => once(&mut claims.username, &mut map, "username")?,
                ROLES_CLAIM => once(&mut roles, &mut map, ROLES_CLAIM)?,
                other => match project_of_roles_claim(other) {
                    Some(project) => {
                        if claims.project_roles.len() >= MAX_PROJECT_ROLE_CLAIMS {
                            return Err(de::Error::custom("too many project roles claims"));
                        }
                        let project = project.to_owned();
                        if claims.project_roles.contains_key(&project) {
                            return Err(de::Error::custom("repeated project roles claim"));
                        }
                        claims.project_roles.insert(project, map.next_value()?);
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                },
            }
        }
        claims.roles = roles.unwrap_or_default();
        Ok(claims)
    }
}

/// A member name, borrowed from the input when it has no escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_owned()))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The project id of a claim `urn:zitadel:iam:org:project:{id}:roles`.
fn project_of_roles_claim(name: &str) -> Option<&str> {
    let id = name.strip_prefix("urn:zitadel:iam:org:project:")?.strip_suffix(":roles")?;
    (!id.is_empty() && !id.contains(':')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Claims, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn claims_of_a_tessera_token_become_a_principal() {
        let claims = parse(
            r#"{"iss":"http://i","sub":"177","aud":["p1","p2"],"exp":1800000000,"iat":1700000000.5,
                "nbf":1700000000,"jti":"j","client_id":"billing-job","scope":"openid orders:read",
                "urn:zitadel:iam:org:project:roles":{"reader":{"1":"acme.example.com"}},
                "urn:zitadel:iam:org:project:p1:roles":{"writer":{"1":"acme.example.com"}},
                "other":{"nested":[1,2,3]}}"#,
        )
        .expect("claims");
        assert_eq!(claims.iat, Some(1_700_000_000));
        let principal = Principal::from_claims(claims, TokenKind::Jwt).expect("principal");
        assert_eq!(principal.subject(), "177");
        assert_eq!(principal.client_id(), "billing-job");
        assert_eq!(principal.scopes().collect::<Vec<_>>(), ["openid", "orders:read"]);
        assert!(principal.has_scope("orders:read") && !principal.has_scope("orders"));
        assert_eq!(principal.audience(), ["p1", "p2"]);
        assert!(principal.has_role("reader"));
        assert_eq!(
            principal.roles().organizations("reader").and_then(|o| o.get("1")).map(String::as_str),
            Some("acme.example.com")
        );
        // The project's own claim decides for p1; the audience and roles claim for p2.
        assert!(principal.has_role_in("writer", "p1") && !principal.has_role_in("reader", "p1"));
        assert!(principal.has_role_in("reader", "p2") && !principal.has_role_in("reader", "p3"));
        assert_eq!(principal.expires_at(), Some(1_800_000_000));
        assert_eq!(principal.kind(), TokenKind::Jwt);
    }

    #[test]
    fn a_single_audience_string_and_azp_are_read() {
        let claims = parse(r#"{"sub":"1","aud":"orders","azp":"app","exp":5}"#).expect("claims");
        let principal = Principal::from_claims(claims, TokenKind::Opaque).expect("principal");
        assert_eq!(principal.audience(), ["orders"]);
        assert_eq!(principal.client_id(), "app");
        assert_eq!(principal.scopes().count(), 0);
    }

    #[test]
    fn repeated_or_mistyped_members_are_refused() {
        for json in [
            r#"{"sub":"1","sub":"2"}"#,
            r#"{"aud":"a","aud":"b"}"#,
            r#"{"exp":1,"exp":2}"#,
            r#"{"sub":1}"#,
            r#"{"exp":"soon"}"#,
            r#"{"urn:zitadel:iam:org:project:roles":["reader"]}"#,
            r#"{"urn:zitadel:iam:org:project:p:roles":{},"urn:zitadel:iam:org:project:p:roles":{}}"#,
            r#"[1]"#,
        ] {
            assert!(parse(json).is_err(), "{json}");
        }
    }

    #[test]
    fn a_token_without_subject_or_client_is_refused() {
        for json in [r#"{"client_id":"c"}"#, r#"{"sub":"s"}"#] {
            let claims = parse(json).expect("claims");
            assert_eq!(
                Principal::from_claims(claims, TokenKind::Jwt).err(),
                Some(Rejection::MissingClaim)
            );
        }
    }

    #[test]
    fn project_roles_claims_are_recognized_exactly() {
        assert_eq!(project_of_roles_claim("urn:zitadel:iam:org:project:123:roles"), Some("123"));
        assert_eq!(project_of_roles_claim("urn:zitadel:iam:org:project:roles"), None);
        assert_eq!(project_of_roles_claim("urn:zitadel:iam:org:project::roles"), None);
        assert_eq!(project_of_roles_claim("urn:zitadel:iam:org:project:a:b:roles"), None);
    }
}
