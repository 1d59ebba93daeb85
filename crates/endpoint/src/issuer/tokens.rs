//! What happens to a token after it is issued: callers that ask about it
//! (introspection, RFC 7662), revoke it (RFC 7009), or present it (userinfo).

use tessera_mint::AccessTokenClaims;
use tessera_scope::{RESOURCE_OWNER_SCOPE, ScopeSet, StandardScope};
use tessera_store::{
    AccessTokenType, ApiApp, ClientId, Organization, PAT_LEN, PatId, ProjectId, RoleClaims,
    ServiceUser, TokenDigest, TokenId, UserId,
};

use crate::audit::AuditEvent;
use crate::error::{ErrorCode, OAuthError};

use super::assertion::AssertionUse;
use super::credentials::{AuthMethod, ClientCredentials};
use super::{Issuer, store_error};

/// The longest token examined; anything longer is not a token this server issued.
pub const MAX_TOKEN_LEN: usize = 8192;

/// Who is asking about a token: an API app of a project, or a service user.
#[derive(Debug, Clone)]
pub enum Caller {
    /// An API app: it sees tokens whose audience holds its project.
    ApiApp(ApiApp),
    /// A service user: it sees its own tokens.
    ServiceUser(ServiceUser),
}

impl Caller {
    /// The caller's client ID.
    pub fn client_id(&self) -> &str {
        match self {
            Caller::ApiApp(app) => app.client_id.as_str(),
            Caller::ServiceUser(user) => user.username.as_str(),
        }
    }

    /// Whether the caller may learn about, and revoke, `token`.
    pub fn may_see(&self, token: &ActiveToken) -> bool {
        match self {
            Caller::ApiApp(app) => token.audience.iter().any(|a| a == app.project_id.as_str()),
            Caller::ServiceUser(user) => user.id == token.user.id,
        }
    }
}

/// A token that is valid now: issued here, not expired, not revoked, and held by a
/// service user that still exists and is enabled.
#[derive(Debug, Clone)]
pub struct ActiveToken {
    /// Opaque or JWT.
    pub format: AccessTokenType,
    /// The token's unique id.
    pub jti: TokenId,
    /// The digest of an opaque token (its store key).
    pub digest: Option<TokenDigest>,
    /// The service user it was issued to.
    pub user: ServiceUser,
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// Audience.
    pub audience: Vec<String>,
    /// Granted roles.
    pub roles: RoleClaims,
    /// The organization owning the user, when the token holds the resource owner
    /// scope (`urn:zitadel:iam:user:resourceowner`).
    pub resource_owner: Option<Organization>,
    /// Issue time (unix seconds).
    pub iat: i64,
    /// Not before (unix seconds).
    pub nbf: i64,
    /// Expiry (unix seconds); [`PAT_NEVER_EXPIRES`] for a personal access token
    /// without expiry.
    pub exp: i64,
    /// The id of a personal access token; `None` for a token from a grant.
    pub personal_access_token: Option<PatId>,
}

/// The expiry shown for a personal access token that never expires (unix seconds
/// of [`NEVER_EXPIRES`](tessera_store::NEVER_EXPIRES), as ZITADEL writes "no expiry").
pub const PAT_NEVER_EXPIRES: i64 = tessera_store::NEVER_EXPIRES.unix_timestamp();

/// The scopes of a personal access token: the user's identity at userinfo, and the
/// server's own API (the management API) in its audience.
pub const PAT_SCOPE: &str = "openid profile urn:zitadel:iam:org:project:id:zitadel:aud";

/// The answer to an introspection request.
#[derive(Debug, Clone)]
pub enum Introspection {
    /// `{"active": false}`: unknown, expired, revoked, malformed, or not the caller's to see.
    Inactive,
    /// An active token and its details.
    Active(Box<ActiveToken>),
}

/// The claims of the service user behind a bearer token (OpenID Connect Core §5.3).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserInfo {
    /// The service user's id.
    pub sub: String,
    /// Display name (with `profile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Username (with `profile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// Last change (with `profile`), unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    /// The id of the organization owning the user (with the resource owner scope).
    #[serde(
        rename = "urn:zitadel:iam:user:resourceowner:id",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_owner_id: Option<String>,
    /// The organization's name (with the resource owner scope).
    #[serde(
        rename = "urn:zitadel:iam:user:resourceowner:name",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_owner_name: Option<String>,
    /// The organization's primary domain (with the resource owner scope).
    #[serde(
        rename = "urn:zitadel:iam:user:resourceowner:primary_domain",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_owner_primary_domain: Option<String>,
}

impl Issuer {
    /// Authenticates a caller of introspection or revocation: an API app or a service
    /// user, by client ID and secret. Every failure is the same `invalid_client`.
    pub async fn authenticate_caller(
        &self,
        creds: &ClientCredentials,
    ) -> Result<Caller, OAuthError> {
        if creds.method == AuthMethod::PrivateKeyJwt {
            let expected = Some(creds.client_id.as_str()).filter(|c| !c.is_empty());
            return self
                .verify_assertion(creds.secret.expose(), expected, AssertionUse::ClientAuth)
                .await;
        }
        let app = match ClientId::new(&creds.client_id) {
            Ok(id) => self.store().api_app_by_client_id(&id).await.map_err(store_error)?,
            Err(_) => None,
        };
        match app {
            Some(app) => {
                self.check_credentials(creds, Some(app), self.clock.now()).map(Caller::ApiApp)
            }
            None => self.authenticate(creds).await.map(Caller::ServiceUser),
        }
    }

    /// Resolves a presented access token: `None` unless it is active now.
    ///
    /// A JWT is checked by signature (against the published keys), `typ`, issuer
    /// and expiry, then against the revoked ids; an opaque token by the record of its
    /// digest. Either way its service user must still exist and be enabled, and the
    /// token must have been issued after the user's revocation cut-off, if any.
    pub async fn validate_token(&self, token: &str) -> Result<Option<ActiveToken>, OAuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        let now = self.clock().now();
        let candidate = if token.bytes().filter(|b| *b == b'.').count() == 2 {
            let Some(claims) = self.verify_jwt(token, now) else { return Ok(None) };
            let Ok(jti) = TokenId::new(&claims.jti) else { return Ok(None) };
            if self.store().is_jti_revoked(&jti).await.map_err(store_error)? {
                return Ok(None);
            }
            let Ok(user_id) = UserId::new(&claims.sub) else { return Ok(None) };
            let Ok(scopes) = ScopeSet::parse(&claims.scope) else { return Ok(None) };
            Candidate {
                format: AccessTokenType::Jwt,
                jti,
                digest: None,
                user_id,
                scopes,
                audience: claims.aud,
                roles: claims.roles,
                iat: claims.iat,
                nbf: claims.nbf,
                exp: claims.exp,
                personal_access_token: None,
            }
        } else if token.len() == PAT_LEN {
            let digest = TokenDigest::of(token);
            let found =
                self.store().personal_access_token_by_digest(&digest).await.map_err(store_error)?;
            let Some(pat) = found.filter(|p| p.is_active(now)) else { return Ok(None) };
            let Ok(jti) = TokenId::new(pat.id.as_str()) else { return Ok(None) };
            let Ok(scopes) = ScopeSet::parse(PAT_SCOPE) else { return Ok(None) };
            Candidate {
                format: AccessTokenType::Opaque,
                jti,
                digest: Some(digest),
                user_id: pat.user_id,
                scopes,
                audience: vec![ProjectId::reserved().to_string()],
                roles: RoleClaims::default(),
                iat: pat.created_at.unix_timestamp(),
                nbf: pat.created_at.unix_timestamp(),
                exp: pat.expires_at.map_or(PAT_NEVER_EXPIRES, |at| at.unix_timestamp()),
                personal_access_token: Some(pat.id),
            }
        } else {
            let digest = TokenDigest::of(token);
            let record = self.store().token_by_digest(&digest).await.map_err(store_error)?;
            let Some(record) = record.filter(|r| r.is_active(now)) else { return Ok(None) };
            Candidate {
                format: AccessTokenType::Opaque,
                jti: record.jti,
                digest: Some(digest),
                user_id: record.user_id,
                scopes: record.scopes,
                audience: record.audience,
                roles: record.roles,
                iat: record.issued_at.unix_timestamp(),
                nbf: record.issued_at.unix_timestamp(),
                exp: record.expires_at.unix_timestamp(),
                personal_access_token: None,
            }
        };
        let user =
            self.store().service_user_by_id(&candidate.user_id).await.map_err(store_error)?;
        // A user's tokens stop when it is disabled, and those issued before its
        // revocation cut-off stop for good.
        let revoked = |u: &ServiceUser| {
            u.tokens_revoked_before.is_some_and(|before| candidate.iat < before.unix_timestamp())
        };
        let Some(user) = user.filter(|u| u.enabled && !revoked(u)) else { return Ok(None) };
        let resource_owner = if candidate.scopes.contains_str(RESOURCE_OWNER_SCOPE) {
            Some(self.organization().await?)
        } else {
            None
        };
        Ok(Some(candidate.with_user(user, resource_owner)))
    }

    fn verify_jwt(&self, token: &str, now: time::OffsetDateTime) -> Option<AccessTokenClaims> {
        let ring = self.minter().keys()?;
        ring.key_set().verify(token, self.minter().issuer(), now).ok()
    }

    /// Token introspection (RFC 7662): authenticates the caller, then answers whether
    /// the token is active *for this caller*.
    pub async fn introspect(
        &self,
        credentials: &ClientCredentials,
        token: &str,
    ) -> Result<Introspection, OAuthError> {
        let caller = self.authenticate_caller(credentials).await?;
        Ok(match self.validate_token(token).await? {
            Some(active) if caller.may_see(&active) => Introspection::Active(Box::new(active)),
            _ => Introspection::Inactive,
        })
    }

    /// Token revocation (RFC 7009): authenticates the caller and revokes the token if
    /// it is the caller's (its own, or one whose audience holds the caller's project).
    /// An unknown, expired or already revoked token is not an error; a token the
    /// caller may not revoke is `unauthorized_client`.
    pub async fn revoke(
        &self,
        credentials: &ClientCredentials,
        token: &str,
    ) -> Result<(), OAuthError> {
        let caller = self.authenticate_caller(credentials).await?;
        let Some(active) = self.validate_token(token).await? else { return Ok(()) };
        if !caller.may_see(&active) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "the token was not issued to this client or its project",
            ));
        }
        if active.personal_access_token.is_some() {
            // RFC 7009 §2.2.1: a server that does not revoke a kind of token says so.
            return Err(OAuthError::new(
                ErrorCode::UnsupportedTokenType,
                "personal access tokens are removed through the management API or the CLI",
            ));
        }
        let now = self.clock().now();
        match active.digest {
            Some(digest) => {
                self.store().revoke_token(&digest, now).await.map_err(store_error)?;
            }
            None => {
                let expires_at = time::OffsetDateTime::from_unix_timestamp(active.exp)
                    .map_err(|_| OAuthError::server_error())?;
                self.store().revoke_jti(&active.jti, expires_at).await.map_err(store_error)?;
            }
        }
        self.audit(&AuditEvent::TokenRevoked {
            jti: active.jti.as_str(),
            client_id: active.user.username.as_str(),
            by: caller.client_id(),
        });
        Ok(())
    }

    /// The userinfo of the service user behind a bearer token: `invalid_token` unless
    /// the token is active, `insufficient_scope` without `openid`.
    pub async fn userinfo(&self, token: &str) -> Result<UserInfo, OAuthError> {
        let active = self.validate_token(token).await?.ok_or_else(|| {
            OAuthError::new(ErrorCode::InvalidToken, "the access token is not active")
        })?;
        let has = |s: StandardScope| active.scopes.contains_str(s.name());
        if !has(StandardScope::OpenId) {
            return Err(OAuthError::new(
                ErrorCode::InsufficientScope,
                "the access token lacks the openid scope",
            ));
        }
        let profile = has(StandardScope::Profile);
        let user = &active.user;
        let owner = active.resource_owner.as_ref();
        Ok(UserInfo {
            sub: user.id.to_string(),
            name: profile.then(|| user.display_name.to_string()),
            preferred_username: profile.then(|| user.username.to_string()),
            updated_at: profile.then(|| user.updated_at.unix_timestamp()),
            resource_owner_id: owner.map(|o| o.id.to_string()),
            resource_owner_name: owner.map(|o| o.name.to_string()),
            resource_owner_primary_domain: owner.map(|o| o.primary_domain.to_string()),
        })
    }

    /// Deletes expired token records and revoked ids; returns how many.
    pub async fn purge_expired(&self) -> Result<u64, OAuthError> {
        self.store().purge_expired_tokens(self.clock().now()).await.map_err(store_error)
    }
}

/// An active token before its user is loaded.
struct Candidate {
    format: AccessTokenType,
    jti: TokenId,
    digest: Option<TokenDigest>,
    user_id: UserId,
    scopes: ScopeSet,
    audience: Vec<String>,
    roles: RoleClaims,
    iat: i64,
    nbf: i64,
    exp: i64,
    personal_access_token: Option<PatId>,
}

impl Candidate {
    fn with_user(self, user: ServiceUser, resource_owner: Option<Organization>) -> ActiveToken {
        ActiveToken {
            format: self.format,
            jti: self.jti,
            digest: self.digest,
            user,
            scopes: self.scopes,
            audience: self.audience,
            roles: self.roles,
            resource_owner,
            iat: self.iat,
            nbf: self.nbf,
            exp: self.exp,
            personal_access_token: self.personal_access_token,
        }
    }
}
