//! The serialized forms of the record types (feature `serde`).
//!
//! Records derive `Serialize` and `Deserialize` where they are declared; their
//! field names are the Rust field names (snake_case) and are part of the stable
//! format. One exception: the [`Credentials`](crate::Credentials) of a service user
//! or an API app are flattened into the record as its two fields `secret` and
//! `previous_secret` (the form the records had before the credentials were one
//! type), so there is no `credentials` object. The values that are not plain strings, numbers or booleans have these
//! forms, written here once:
//!
//! | type | form | example |
//! |---|---|---|
//! | times (`OffsetDateTime`) | RFC 3339 string ([`time::serde::rfc3339`]) | `"2023-11-14T22:13:20Z"` |
//! | [`SecretDigest`] | 96 lowercase hex digits: the 16-byte salt, then the 32-byte hash (uppercase accepted; 64 digits, an unsalted digest of an earlier release, read as that digest salted) | `"5be0…c4d1"` |
//! | [`TokenDigest`] | 64 lowercase hex digits (uppercase accepted) | `"9f86d08…0a08"` |
//! | `SigningKeyRecord::sealed_private_key` | base64url without padding | `"AQIDBA"` |
//! | [`DisplayName`] | string, checked as [`DisplayName::new`] does | `"Billing job"` |
//! | [`TokenLifetime`] | whole seconds, 1 to 31 622 400 | `43200` |
//! | [`SigningAlgorithm`] | the JWA name | `"ES256"`, `"RS256"`, `"EdDSA"` |
//! | [`KeyOwner`] | [`KeyOwner::to_key`]'s string | `"user:100000000000000001"`, `"app:1@orders"` |
//! | [`AccessTokenType`](crate::AccessTokenType) | `"opaque"` or `"jwt"` | |
//! | [`RoleClaims`](crate::RoleClaims) | role → organization id → primary domain | `{"reader": {"1": "acme.example"}}` |
//! | [`ScopeSet`](tessera_scope::ScopeSet) | the space-separated scope list | `"openid profile"` |
//! | ids, [`Domain`](crate::Domain) | the string, checked as its `new` does | |
//!
//! An optional field (`Option`) is written as `null` when absent, and may be left
//! out when read. Unknown fields are ignored when read. A value that does not pass
//! its type's checks (a display name with a control character, a digest of 31
//! bytes) fails to deserialize: a record that exists is valid.
//!
//! No record holds a secret in clear: [`ClientSecret`](crate::ClientSecret) has no
//! serialized form, and only digests of secrets and tokens, and private keys sealed
//! with the master key, are written.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::client_keys::KeyOwner;
use crate::keys::SigningAlgorithm;
use crate::records::{DisplayName, TokenDigest, TokenLifetime};
use crate::secret::SecretDigest;

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// `N` bytes from `2 * N` hex digits of either case.
fn unhex<const N: usize>(value: &str) -> Option<[u8; N]> {
    let digits = value.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |d: u8| char::from(d).to_digit(16).and_then(|n| u8::try_from(n).ok());
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// Deserializes a string with `parse`, reporting `expected` when it fails.
fn parsed<'de, D, T, E>(
    deserializer: D,
    expected: &'static str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    E: fmt::Display,
{
    struct Str<'a>(&'a str);
    impl<'de> Visitor<'de> for Str<'_> {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
    }
    let value = deserializer.deserialize_str(Str(expected))?;
    parse(&value).map_err(|e| de::Error::custom(format_args!("invalid {expected}: {e}")))
}

impl Serialize for SecretDigest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex(self.as_bytes()))
    }
}

/// Reads 96 hex digits (the salt, then the hash). 64 hex digits are the unsalted
/// SHA-256 that releases before salting wrote: read as that digest salted with a
/// fresh salt ([`SecretDigest::from_unsalted`]), so that a document written then
/// still verifies the same secret (and is written in the salted form from then on).
impl<'de> Deserialize<'de> for SecretDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parsed(deserializer, "secret digest (96 hex digits)", |s| {
            if let Some(bytes) = unhex::<{ SecretDigest::LEN }>(s) {
                return Ok(Self::from_bytes(bytes));
            }
            let unsalted = unhex::<32>(s).ok_or(SecretFormError::NotHex)?;
            Self::from_unsalted(&unsalted).map_err(|_| SecretFormError::NoSalt)
        })
    }
}

/// Why a serialized secret digest was refused.
#[derive(Debug, thiserror::Error)]
enum SecretFormError {
    #[error("not 96 hex digits (nor the 64 of an unsalted digest)")]
    NotHex,
    #[error("no salt for an unsalted digest: the random number generator failed")]
    NoSalt,
}

impl Serialize for TokenDigest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex(self.as_bytes()))
    }
}

impl<'de> Deserialize<'de> for TokenDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parsed(deserializer, "token digest (64 hex digits)", |s| {
            unhex(s).map(Self::from_bytes).ok_or("not 64 hex digits")
        })
    }
}

impl Serialize for DisplayName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DisplayName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parsed(deserializer, "display name", DisplayName::new)
    }
}

impl Serialize for TokenLifetime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.as_secs())
    }
}

impl<'de> Deserialize<'de> for TokenLifetime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let secs = u64::deserialize(deserializer)?;
        TokenLifetime::from_secs(secs).map_err(de::Error::custom)
    }
}

impl Serialize for SigningAlgorithm {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SigningAlgorithm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parsed(deserializer, "signing algorithm", str::parse::<SigningAlgorithm>)
    }
}

impl Serialize for KeyOwner {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_key())
    }
}

impl<'de> Deserialize<'de> for KeyOwner {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parsed(deserializer, "key owner (user:… or app:…)", |s| {
            KeyOwner::from_key(s).ok_or("neither user:{id} nor app:{client_id}")
        })
    }
}

/// Bytes as base64url without padding, for `#[serde(with = "…")]`.
pub(crate) mod base64url {
    use base64ct::{Base64UrlUnpadded, Encoding};
    use serde::{Deserializer, Serializer};

    /// Writes `bytes` as base64url without padding.
    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&Base64UrlUnpadded::encode_string(bytes))
    }

    /// Reads base64url without padding.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        super::parsed(deserializer, "base64url bytes", Base64UrlUnpadded::decode_vec)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};
    use tessera_scope::ScopeSet;
    use time::{Duration, OffsetDateTime};

    use crate::{
        AccessTokenType, ApiApp, ApiAppPatch, AppId, ClientId, ClientKey, Credentials, DisplayName,
        Domain, KeyOwner, OrgId, Organization, PreviousSecret, Project, ProjectId, ProjectRole,
        RoleClaims, RoleGrant, RoleKey, SecretDigest, ServiceUser, ServiceUserPatch,
        SigningAlgorithm, SigningKeyRecord, TokenDigest, TokenId, TokenLifetime, TokenRecord,
        UserId, Username,
    };

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(secs)
    }

    /// `value` serializes to exactly `expected` and reads back equal.
    fn round_trips<T>(value: &T, expected: Value) -> TestResult
    where
        T: serde::Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let written = serde_json::to_value(value)?;
        assert_eq!(written, expected, "the serialized form is stable");
        let read: T = serde_json::from_value(written)?;
        assert_eq!(&read, value, "it reads back unchanged");
        let text: T = serde_json::from_str(&serde_json::to_string(value)?)?;
        assert_eq!(&text, value, "through text too");
        Ok(())
    }

    const HEX_AB: &str = "abababababababababababababababababababababababababababababababab";
    /// A secret digest of 48 bytes 0xab: 96 hex digits.
    const SALTED_AB: &str = "abababababababababababababababababababababababababababababababab\
                             abababababababababababababababab";
    /// A secret digest of 48 bytes 0xcd.
    const SALTED_CD: &str = "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd\
                             cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd";
    const T1: &str = "2023-11-14T22:13:20Z";
    const T2: &str = "2023-11-14T22:14:20Z";

    fn previous() -> PreviousSecret {
        PreviousSecret::new(SecretDigest::from_bytes([0xcd; 48]), t(1_700_000_060))
    }

    #[test]
    fn service_user() -> TestResult {
        let user = ServiceUser {
            id: UserId::new("100000000000000001")?,
            username: Username::new("billing-job")?,
            display_name: DisplayName::new("Billing job")?,
            description: "Exports invoices".to_owned(),
            access_token_type: AccessTokenType::Jwt,
            token_lifetime: TokenLifetime::from_secs(600)?,
            credentials: Credentials {
                secret: Some(SecretDigest::from_bytes([0xab; 48])),
                previous: Some(previous()),
            },
            enabled: true,
            created_at: t(1_700_000_000),
            updated_at: t(1_700_000_060),
            tokens_revoked_before: Some(t(1_700_000_060)),
        };
        round_trips(
            &user,
            json!({
                "id": "100000000000000001",
                "username": "billing-job",
                "display_name": "Billing job",
                "description": "Exports invoices",
                "access_token_type": "jwt",
                "token_lifetime": 600,
                "secret": SALTED_AB,
                "previous_secret": {"digest": SALTED_CD, "expires_at": T2},
                "enabled": true,
                "created_at": T1,
                "updated_at": T2,
                "tokens_revoked_before": T2,
            }),
        )?;
        let fresh = ServiceUser {
            description: String::new(),
            credentials: Credentials::NONE,
            tokens_revoked_before: None,
            ..user
        };
        let mut written = serde_json::to_value(&fresh)?;
        assert_eq!(written["secret"], Value::Null);
        assert_eq!(written["tokens_revoked_before"], Value::Null, "no cut-off is null");
        assert_eq!(written["description"], "", "no description is empty");
        round_trips(&fresh, written.clone())?;
        // Absent optional fields read as `None`, an absent description as empty (a
        // user written before the cut-off or the description existed reads back
        // without one).
        if let Some(fields) = written.as_object_mut() {
            fields.remove("secret");
            fields.remove("previous_secret");
            fields.remove("tokens_revoked_before");
            fields.remove("description");
        }
        assert_eq!(serde_json::from_value::<ServiceUser>(written)?, fresh);
        Ok(())
    }

    #[test]
    fn service_user_patch() -> TestResult {
        let mut patch = ServiceUserPatch::at(t(1_700_000_000));
        round_trips(
            &patch,
            json!({
                "display_name": null,
                "description": null,
                "access_token_type": null,
                "token_lifetime": null,
                "enabled": null,
                "secret": null,
                "keep_previous_until": null,
                "clear_secret": false,
                "tokens_revoked_before": null,
                "updated_at": T1,
            }),
        )?;
        let sparse: ServiceUserPatch = serde_json::from_value(json!({"updated_at": T1}))?;
        assert_eq!(sparse, patch, "fields left out change nothing");
        patch.display_name = Some(DisplayName::new("Renamed")?);
        patch.description = Some("New purpose".to_owned());
        patch.access_token_type = Some(AccessTokenType::Opaque);
        patch.token_lifetime = Some(TokenLifetime::from_secs(60)?);
        patch.enabled = Some(false);
        patch.secret = Some(SecretDigest::from_bytes([0xab; 48]));
        patch.keep_previous_until = Some(t(1_700_000_060));
        patch.tokens_revoked_before = Some(t(1_700_000_000));
        patch.clear_secret = true;
        round_trips(
            &patch,
            json!({
                "display_name": "Renamed",
                "description": "New purpose",
                "access_token_type": "opaque",
                "token_lifetime": 60,
                "enabled": false,
                "secret": SALTED_AB,
                "keep_previous_until": T2,
                "clear_secret": true,
                "tokens_revoked_before": T1,
                "updated_at": T1,
            }),
        )
    }

    #[test]
    fn previous_secret() -> TestResult {
        round_trips(&previous(), json!({"digest": SALTED_CD, "expires_at": T2}))
    }

    #[test]
    fn credentials_are_two_fields_flattened_into_their_record() -> TestResult {
        let credentials = Credentials {
            secret: Some(SecretDigest::from_bytes([0xab; 48])),
            previous: Some(previous()),
        };
        let form = json!({
            "secret": SALTED_AB,
            "previous_secret": {"digest": SALTED_CD, "expires_at": T2},
        });
        round_trips(&credentials, form.clone())?;
        round_trips(&Credentials::NONE, json!({"secret": null, "previous_secret": null}))?;
        assert_eq!(serde_json::from_value::<Credentials>(json!({}))?, Credentials::NONE);
        // In a record, the two fields sit beside the record's own, not in an object.
        let mut user = ServiceUser::new(Username::new("billing-job")?, t(1_700_000_000))?;
        user.credentials = credentials;
        let written = serde_json::to_value(&user)?;
        assert_eq!(written.get("credentials"), None, "no nested object");
        assert_eq!(
            (&written["secret"], &written["previous_secret"]),
            (&form["secret"], &form["previous_secret"])
        );
        // A digest that fails its checks fails the record, flattened or not.
        let mut bad = written.clone();
        bad["secret"] = json!("abab");
        assert!(serde_json::from_value::<ServiceUser>(bad).is_err());
        let mut bad = written;
        bad["previous_secret"] = json!({"digest": SALTED_CD});
        assert!(serde_json::from_value::<ServiceUser>(bad).is_err());
        Ok(())
    }

    #[test]
    fn token_record() -> TestResult {
        let org = Organization {
            id: OrgId::new("300000000000000003")?,
            name: DisplayName::new("Acme")?,
            primary_domain: Domain::new("acme.example")?,
            created_at: t(0),
        };
        let mut roles = RoleClaims::default();
        roles.insert(&RoleKey::new("reader")?, &org);
        let record = TokenRecord {
            digest: TokenDigest::from_bytes([0xab; 32]),
            jti: TokenId::new("AAAAAAAAAAAAAAAAAAAAAA")?,
            user_id: UserId::new("100000000000000001")?,
            client_id: Username::new("billing-job")?,
            scopes: ScopeSet::parse("openid profile")?,
            audience: vec!["zitadel".to_owned(), "billing-job".to_owned()],
            roles,
            issued_at: t(1_700_000_000),
            expires_at: t(1_700_000_060),
            revoked_at: Some(t(1_700_000_000)),
        };
        round_trips(
            &record,
            json!({
                "digest": HEX_AB,
                "jti": "AAAAAAAAAAAAAAAAAAAAAA",
                "user_id": "100000000000000001",
                "client_id": "billing-job",
                "scopes": "openid profile",
                "audience": ["zitadel", "billing-job"],
                "roles": {"reader": {"300000000000000003": "acme.example"}},
                "issued_at": T1,
                "expires_at": T2,
                "revoked_at": T1,
            }),
        )?;
        let active = TokenRecord { revoked_at: None, roles: RoleClaims::default(), ..record };
        let written = serde_json::to_value(&active)?;
        assert_eq!((&written["revoked_at"], &written["roles"]), (&Value::Null, &json!({})));
        round_trips(&active, written)
    }

    #[test]
    fn project_app_patch_and_grant() -> TestResult {
        let project = Project {
            id: ProjectId::new("orders")?,
            name: DisplayName::new("Orders")?,
            created_at: t(1_700_000_000),
        };
        round_trips(&project, json!({"id": "orders", "name": "Orders", "created_at": T1}))?;
        round_trips(
            &Project::reserved(),
            json!({"id": "zitadel", "name": "Tessera API", "created_at": "1970-01-01T00:00:00Z"}),
        )?;

        let app = ApiApp {
            client_id: ClientId::new("200000000000000002@orders")?,
            app_id: AppId::new("200000000000000009")?,
            project_id: project.id.clone(),
            name: DisplayName::new("Orders API")?,
            credentials: Credentials {
                secret: Some(SecretDigest::from_bytes([0xab; 48])),
                previous: Some(previous()),
            },
            enabled: false,
            created_at: t(1_700_000_000),
            updated_at: t(1_700_000_060),
        };
        round_trips(
            &app,
            json!({
                "client_id": "200000000000000002@orders",
                "app_id": "200000000000000009",
                "project_id": "orders",
                "name": "Orders API",
                "secret": SALTED_AB,
                "previous_secret": {"digest": SALTED_CD, "expires_at": T2},
                "enabled": false,
                "created_at": T1,
                "updated_at": T2,
            }),
        )?;

        let mut patch = ApiAppPatch::at(t(1_700_000_060));
        patch.name = Some(DisplayName::new("Renamed")?);
        patch.enabled = Some(true);
        patch.secret = Some(SecretDigest::from_bytes([0xcd; 48]));
        patch.keep_previous_until = Some(t(1_700_000_000));
        round_trips(
            &patch,
            json!({
                "name": "Renamed",
                "enabled": true,
                "secret": SALTED_CD,
                "keep_previous_until": T1,
                "updated_at": T2,
            }),
        )?;
        let sparse: ApiAppPatch = serde_json::from_value(json!({"updated_at": T2}))?;
        assert_eq!(sparse, ApiAppPatch::at(t(1_700_000_060)));

        let grant = RoleGrant {
            user_id: UserId::new("100000000000000001")?,
            project_id: project.id,
            role: RoleKey::new("reader")?,
        };
        round_trips(
            &grant,
            json!({"user_id": "100000000000000001", "project_id": "orders", "role": "reader"}),
        )
    }

    #[test]
    fn project_role() -> TestResult {
        let mut role = ProjectRole::new(
            ProjectId::new("orders")?,
            RoleKey::new("reader")?,
            DisplayName::new("Reader")?,
            Some(DisplayName::new("Readers")?),
            t(1_700_000_000),
        );
        role.updated_at = t(1_700_000_060);
        let written = json!({
            "project_id": "orders",
            "key": "reader",
            "display_name": "Reader",
            "group": "Readers",
            "created_at": T1,
            "updated_at": T2,
        });
        round_trips(&role, written.clone())?;
        role.group = None;
        let mut ungrouped = written;
        ungrouped["group"] = Value::Null;
        round_trips(&role, ungrouped.clone())?;
        if let Some(fields) = ungrouped.as_object_mut() {
            fields.remove("group");
        }
        assert_eq!(serde_json::from_value::<ProjectRole>(ungrouped)?, role, "no group: none");
        Ok(())
    }

    #[test]
    fn role_claims() -> TestResult {
        let claims = RoleClaims(BTreeMap::from([(
            "reader".to_owned(),
            BTreeMap::from([("1".to_owned(), "acme.example".to_owned())]),
        )]));
        round_trips(&claims, json!({"reader": {"1": "acme.example"}}))
    }

    #[test]
    fn client_key_and_owner() -> TestResult {
        let user = KeyOwner::ServiceUser(UserId::new("100000000000000001")?);
        let app = KeyOwner::ApiApp(ClientId::new("1@orders")?);
        round_trips(&user, json!("user:100000000000000001"))?;
        round_trips(&app, json!("app:1@orders"))?;
        let key = ClientKey {
            key_id: "key-1".to_owned(),
            owner: app,
            algorithm: SigningAlgorithm::EdDsa,
            public_jwk: r#"{"kty":"OKP"}"#.to_owned(),
            created_at: t(1_700_000_000),
            expires_at: Some(t(1_700_000_060)),
        };
        round_trips(
            &key,
            json!({
                "key_id": "key-1",
                "owner": "app:1@orders",
                "algorithm": "EdDSA",
                "public_jwk": "{\"kty\":\"OKP\"}",
                "created_at": T1,
                "expires_at": T2,
            }),
        )?;
        let forever = ClientKey { expires_at: None, owner: user, ..key };
        let written = serde_json::to_value(&forever)?;
        assert_eq!(written["expires_at"], Value::Null);
        round_trips(&forever, written)
    }

    #[test]
    fn signing_key() -> TestResult {
        let key = SigningKeyRecord {
            kid: "k1".to_owned(),
            algorithm: SigningAlgorithm::Rs256,
            public_jwk: r#"{"kty":"RSA"}"#.to_owned(),
            sealed_private_key: vec![1, 2, 3, 4, 0xff],
            created_at: t(1_700_000_000),
            activates_at: t(1_700_000_060),
        };
        round_trips(
            &key,
            json!({
                "kid": "k1",
                "algorithm": "RS256",
                "public_jwk": "{\"kty\":\"RSA\"}",
                "sealed_private_key": "AQIDBP8",
                "created_at": T1,
                "activates_at": T2,
            }),
        )
    }

    #[test]
    fn organization() -> TestResult {
        let org = Organization {
            id: OrgId::new("300000000000000003")?,
            name: DisplayName::new("Acme")?,
            primary_domain: Domain::new("acme.example")?,
            created_at: t(1_700_000_000),
        };
        round_trips(
            &org,
            json!({
                "id": "300000000000000003",
                "name": "Acme",
                "primary_domain": "acme.example",
                "created_at": T1,
            }),
        )
    }

    #[test]
    fn invalid_values_do_not_deserialize() {
        let bad = [json!("ab"), json!("zz".repeat(32)), json!(HEX_AB.to_owned() + "ab"), json!(42)];
        for value in &bad {
            assert!(serde_json::from_value::<SecretDigest>(value.clone()).is_err(), "{value}");
            assert!(serde_json::from_value::<TokenDigest>(value.clone()).is_err(), "{value}");
        }
        for value in
            [json!("zz".repeat(48)), json!(SALTED_AB.to_owned() + "ab"), json!(&SALTED_AB[2..])]
        {
            assert!(serde_json::from_value::<SecretDigest>(value.clone()).is_err(), "{value}");
        }
        let upper = serde_json::from_value::<SecretDigest>(json!(SALTED_AB.to_uppercase()));
        assert_eq!(upper.ok(), Some(SecretDigest::from_bytes([0xab; 48])), "either case reads");
        let upper = serde_json::from_value::<TokenDigest>(json!(HEX_AB.to_uppercase()));
        assert_eq!(upper.ok(), Some(TokenDigest::from_bytes([0xab; 32])), "either case reads");
        assert!(serde_json::from_value::<DisplayName>(json!("a\nb")).is_err());
        assert!(serde_json::from_value::<TokenLifetime>(json!(0)).is_err());
        assert!(serde_json::from_value::<TokenLifetime>(json!(-1)).is_err());
        assert!(serde_json::from_value::<SigningAlgorithm>(json!("HS256")).is_err());
        assert!(serde_json::from_value::<KeyOwner>(json!("nobody:1")).is_err());
        assert!(
            serde_json::from_value::<Project>(json!({"id": "a b", "name": "x", "created_at": T1}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<Project>(json!({"id": "a", "name": "x", "created_at": 0}))
                .is_err(),
            "times are RFC 3339 strings"
        );
    }

    #[test]
    fn secret_digests_are_the_salt_then_the_hash() -> TestResult {
        let secret = crate::ClientSecret::provided(&"s".repeat(32))?;
        let digest = SecretDigest::of(&secret)?;
        let written = serde_json::to_value(digest)?;
        let text = written.as_str().unwrap_or_default();
        assert_eq!(text.len(), 96);
        assert!(text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{text}");
        assert_eq!(text[..32], super::hex(digest.salt()), "the salt first");
        let read: SecretDigest = serde_json::from_value(written)?;
        assert_eq!(read, digest, "it reads back unchanged");
        assert!(read.verify(secret.expose()));
        // Two digests of one secret are written differently.
        assert_ne!(
            serde_json::to_value(SecretDigest::of(&secret)?)?,
            serde_json::to_value(digest)?
        );
        Ok(())
    }

    #[test]
    fn unsalted_digests_of_earlier_releases_read_as_salted() -> TestResult {
        use sha2::Digest as _;
        let secret = crate::ClientSecret::provided(&"s".repeat(32))?;
        let unsalted: [u8; 32] = sha2::Sha256::digest(secret.expose().as_bytes()).into();
        let form = json!(super::hex(&unsalted));
        let (a, b): (SecretDigest, SecretDigest) =
            (serde_json::from_value(form.clone())?, serde_json::from_value(form.clone())?);
        assert!(a.verify(secret.expose()) && b.verify(secret.expose()), "the same secret works");
        assert!(!a.verify(&"t".repeat(32)));
        assert_ne!(a, b, "each read draws a salt of its own");
        assert_eq!(a, SecretDigest::from_unsalted_with_salt(*a.salt(), &unsalted));
        let written = serde_json::to_value(a)?;
        assert_eq!(written.as_str().map(str::len), Some(96), "written salted from then on");
        // In a record too.
        let user: ServiceUser = serde_json::from_value(json!({
            "id": "100000000000000001",
            "username": "billing-job",
            "display_name": "Billing job",
            "access_token_type": "jwt",
            "token_lifetime": 600,
            "secret": form,
            "previous_secret": {"digest": form, "expires_at": T2},
            "enabled": true,
            "created_at": T1,
            "updated_at": T1,
        }))?;
        assert!(user.credentials.matches(secret.expose(), t(1_700_000_000)));
        Ok(())
    }

    #[test]
    fn digests_are_lowercase_hex() {
        let digest = TokenDigest::of("token");
        let written = serde_json::to_value(digest).ok();
        let text = written.as_ref().and_then(Value::as_str).unwrap_or_default();
        assert_eq!(text.len(), 64);
        assert!(text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{text}");
    }
}
