//! The HTTP-free issuer: grant logic as plain async functions. Nothing here knows
//! HTTP; the [`http`](crate::http) layer reads requests into these calls.

mod assertion;
mod credentials;
mod tokens;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use tessera_mint::{AccessToken, Grant, MintError, TokenMinter};
use tessera_scope::{Scope, ScopeKind, ScopePolicy, ScopeSet};
use tessera_store::{
    ApiApp, Clock, Credentials, Organization, Project, ProjectId, RoleClaims, ServiceUser, Store,
    StoreError, SystemClock, TokenId, Username,
};
use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditSink, TracingAudit, loggable_id};
use crate::context::{client_address, current_client_address};
use crate::error::{ErrorCode, OAuthError, StorageErrorKind};
use crate::memo::{Last, remembered};

pub(crate) use assertion::AssertionUse;
pub use assertion::{
    ASSERTION_ALGORITHMS, CLOCK_SKEW_SECS, JWT_BEARER_GRANT_TYPE, MAX_ASSERTION_LIFETIME_SECS,
};
pub use credentials::{AuthMethod, ClientCredentials, PresentedSecret};
pub use tokens::{
    ActiveToken, Caller, Introspection, MAX_TOKEN_LEN, PAT_NEVER_EXPIRES, PAT_SCOPE, UserInfo,
};

/// A client credentials token request (RFC 6749 §4.4.2), already parsed.
#[derive(Debug, Clone)]
pub struct ClientCredentialsRequest {
    /// The client's credentials.
    pub credentials: ClientCredentials,
    /// The requested scopes; `None` when the request named none.
    pub scope: Option<ScopeSet>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: AccessToken,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Whole seconds until the token expires.
    pub expires_in: u64,
    /// The scopes granted.
    pub scope: ScopeSet,
    /// The token's unique id.
    pub jti: TokenId,
    /// When the token expires.
    pub expires_at: OffsetDateTime,
}

/// The scopes, audience, roles and resource owner a token request resolves to.
struct Resolved {
    scopes: ScopeSet,
    audience: Vec<String>,
    roles: RoleClaims,
    resource_owner: Option<Organization>,
}

/// How client assertions (RFC 7523) are checked beyond their signature and claims.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssertionPolicy {
    /// Refuse assertions without a `jti`. Without this, such an assertion is accepted
    /// until its `exp` (at most an hour ahead), as ZITADEL accepts them; with a `jti`
    /// an assertion is single use either way.
    pub require_jti: bool,
}

/// Issues tokens: authenticates clients, negotiates scopes, mints and records tokens.
///
/// ```
/// use std::sync::Arc;
/// use tessera_endpoint::{ClientCredentials, ClientCredentialsRequest, Issuer};
/// use tessera_mint::TokenMinter;
/// use tessera_store::prelude::*;
/// use tessera_store::{ClientSecret, Credentials, MemoryStore, SecretDigest, ServiceUser, Username};
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let store = Arc::new(MemoryStore::new());
/// let secret = ClientSecret::generate()?;
/// let mut user = ServiceUser::new(Username::new("billing-job")?, time::OffsetDateTime::now_utc())?;
/// user.credentials = Credentials::new(SecretDigest::of(&secret)?);
/// store.create_service_user(&user).await?;
///
/// let issuer = Issuer::new(store, TokenMinter::new("https://auth.example.com"));
/// let response = issuer.client_credentials(ClientCredentialsRequest {
///     credentials: ClientCredentials::basic("billing-job", secret.expose()),
///     scope: Some("openid profile".parse()?),
/// }).await?;
/// assert_eq!(response.token_type, "Bearer");
/// assert_eq!(response.expires_in, 43199);
/// assert_eq!(response.scope.to_string(), "openid profile");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Issuer {
    store: Arc<dyn Store>,
    minter: TokenMinter,
    clock: Arc<dyn Clock>,
    scopes: ScopePolicy,
    known_projects: Arc<KnownProjects>,
    assertions: AssertionPolicy,
    organization: Arc<OnceLock<Organization>>,
    audit: Arc<dyn AuditSink>,
}

/// At most this many project ids are remembered as existing.
const MAX_KNOWN_PROJECTS: usize = 4096;

/// How long a project found in the store is taken to exist without another lookup.
const KNOWN_PROJECT_TTL: time::Duration = time::Duration::SECOND;

/// Ids of projects found in the store, each with the time it was found, so that the
/// audience of a token needs no lookup of a project seen a moment ago.
///
/// Projects can be deleted (through any process sharing the store), so a project
/// found once may be gone later, and this memo can only be short-lived: an id is
/// taken to exist for [`KNOWN_PROJECT_TTL`] after its lookup, then looked up again.
/// A project deleted is thus dropped from the audiences of tokens issued at most a
/// second after the deletion returns, on every server alike, while the hot path (a
/// token request whose audience names an existing project) still costs one lookup
/// per project and second instead of one per request. Dropping the memo instead
/// would cost a store round trip per request (a network round trip with PostgreSQL);
/// keeping entries for good, as before projects could be deleted, would keep a
/// deleted project in new tokens' audiences until the process restarts.
///
/// The reserved project `zitadel` exists in every store and can never be deleted,
/// so it is never looked up for the audience. Only ids are kept; roles read their
/// project afresh, since its name goes into the claim. A missing project is not
/// remembered: it is looked up every time, so one created later is found at once.
///
/// Each thread also remembers the last project it found here, with the same time:
/// a client asking for the same audience again is answered without the shared
/// lock, whose every read would move its cache line between cores.
struct KnownProjects {
    /// Tells this memo's entries apart from another issuer's in a thread's memo.
    id: u64,
    found: RwLock<HashMap<ProjectId, OffsetDateTime>>,
}

/// The numbers that tell [`KnownProjects`] apart.
static KNOWN_PROJECTS_IDS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The last project this thread found in a [`KnownProjects`]: the memo's id,
    /// the project's, and when it was found.
    static LAST_KNOWN: RefCell<Option<(u64, ProjectId, OffsetDateTime)>> =
        const { RefCell::new(None) };
}

impl Default for KnownProjects {
    fn default() -> Self {
        Self { id: KNOWN_PROJECTS_IDS.fetch_add(1, Ordering::Relaxed), found: RwLock::default() }
    }
}

/// A client that authenticates with a client secret: a service user, or an API app
/// (introspection and revocation). [`Issuer::check_credentials`] checks both alike.
pub(crate) trait SecretClient {
    /// Its secrets.
    fn credentials(&self) -> &Credentials;
    /// Whether it may authenticate.
    fn enabled(&self) -> bool;
}

impl SecretClient for ServiceUser {
    fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    fn enabled(&self) -> bool {
        self.enabled
    }
}

impl SecretClient for ApiApp {
    fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    fn enabled(&self) -> bool {
        self.enabled
    }
}

thread_local! {
    /// The last client ID this thread checked as a username, and the username.
    static LAST_USERNAME: Last<Username> = const { RefCell::new(None) };
}

/// `client_id` as a username, or `None` if it cannot be one. A client authenticates
/// again and again with the same ID, so each thread keeps the last one it checked and
/// shares it while the ID stays the same.
fn username(client_id: &str) -> Option<Username> {
    remembered(&LAST_USERNAME, client_id, Username::new).ok()
}

impl KnownProjects {
    /// Whether a lookup at `found_at` still vouches for the project at `now`. A
    /// clock that went back makes it look up again rather than trust it longer.
    fn fresh(found_at: OffsetDateTime, now: OffsetDateTime) -> bool {
        found_at <= now && now - found_at < KNOWN_PROJECT_TTL
    }

    /// Whether the project with the id `id` is known to exist at `now`. Only ids
    /// that were valid when inserted are known, so a known id needs no check.
    fn contains(&self, id: &str, now: OffsetDateTime) -> bool {
        if id == ProjectId::RESERVED {
            return true;
        }
        let remembered = LAST_KNOWN.with_borrow(|last| {
            last.as_ref().is_some_and(|(memo, project, found_at)| {
                *memo == self.id && project.as_str() == id && Self::fresh(*found_at, now)
            })
        });
        if remembered {
            return true;
        }
        let found = self
            .found
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get_key_value(id)
            .map(|(project, found_at)| (project.clone(), *found_at));
        match found {
            Some((project, found_at)) if Self::fresh(found_at, now) => {
                LAST_KNOWN.set(Some((self.id, project, found_at)));
                true
            }
            _ => false,
        }
    }

    /// Remembers that the project `id` was found at `now`.
    fn insert(&self, id: &ProjectId, now: OffsetDateTime) {
        if id.is_reserved() {
            return;
        }
        let mut known = self.found.write().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= MAX_KNOWN_PROJECTS && !known.contains_key(id) {
            known.retain(|_, found_at| Self::fresh(*found_at, now));
        }
        if known.len() < MAX_KNOWN_PROJECTS || known.contains_key(id) {
            known.insert(id.clone(), now);
        }
    }
}

impl Issuer {
    /// An issuer on `store` minting with `minter`, on the system clock, with the
    /// default scope policy (default scope `openid`).
    pub fn new(store: Arc<dyn Store>, minter: TokenMinter) -> Self {
        Self {
            store,
            minter,
            clock: Arc::new(SystemClock),
            scopes: ScopePolicy::default(),
            known_projects: Arc::default(),
            assertions: AssertionPolicy::default(),
            organization: Arc::default(),
            audit: Arc::new(TracingAudit),
        }
    }

    /// Hands every [`AuditEvent`] to `sink` instead of [`TracingAudit`], the default.
    pub fn with_audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = sink;
        self
    }

    /// Records `event` of the request being answered with the audit sink.
    pub(crate) fn audit(&self, event: &AuditEvent<'_>) {
        self.audit.record(event, current_client_address());
    }

    /// Checks client assertions with `policy`.
    pub fn with_assertion_policy(mut self, policy: AssertionPolicy) -> Self {
        self.assertions = policy;
        self
    }

    /// The policy for client assertions.
    pub fn assertion_policy(&self) -> AssertionPolicy {
        self.assertions
    }

    /// Uses `organization` as the owner of every resource (in role claims and the
    /// resource owner claims) instead of reading it from the store when first needed.
    /// A server reads or creates it at start-up with
    /// [`init_organization`](tessera_store::OrganizationStore::init_organization).
    pub fn with_organization(mut self, organization: Organization) -> Self {
        self.organization = Arc::new(OnceLock::from(organization));
        self
    }

    /// The organization that owns every resource: the one given with
    /// [`with_organization`](Self::with_organization), or else the store's, created on
    /// first use (named after the issuer's host) when the store has none. Read once,
    /// then kept.
    pub async fn organization(&self) -> Result<Organization, OAuthError> {
        if let Some(organization) = self.organization.get() {
            return Ok(organization.clone());
        }
        let candidate = Organization::for_issuer(self.minter.issuer(), self.clock.now())
            .map_err(|_| OAuthError::server_error())?;
        let stored = self.store.init_organization(&candidate).await.map_err(store_error)?;
        Ok(self.organization.get_or_init(|| stored).clone())
    }

    /// Uses `clock` for every time the issuer reads.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `policy` to negotiate scopes.
    pub fn with_scope_policy(mut self, policy: ScopePolicy) -> Self {
        self.scopes = policy;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The minter.
    pub fn minter(&self) -> &TokenMinter {
        &self.minter
    }

    /// The scope policy.
    pub fn scope_policy(&self) -> &ScopePolicy {
        &self.scopes
    }

    /// Authenticates a client by ID and secret: its current secret, or its previous
    /// secret until that one's grace period ends (on the issuer's clock). Every
    /// failure (unknown client, malformed ID, no secret set, wrong or expired secret,
    /// disabled user) is the same `invalid_client`, and costs the same work.
    pub async fn authenticate(&self, creds: &ClientCredentials) -> Result<ServiceUser, OAuthError> {
        self.authenticate_at(creds, self.clock.now()).await
    }

    /// [`Self::authenticate`] with the clock read at `now`.
    async fn authenticate_at(
        &self,
        creds: &ClientCredentials,
        now: OffsetDateTime,
    ) -> Result<ServiceUser, OAuthError> {
        if creds.method == AuthMethod::PrivateKeyJwt {
            let expected = Some(creds.client_id.as_str()).filter(|c| !c.is_empty());
            // Boxed: checking an assertion takes a future of over a kilobyte, which
            // every request authenticating with a secret would otherwise carry.
            let verified = Box::pin(self.verify_assertion(
                creds.secret.expose(),
                expected,
                AssertionUse::ClientAuth,
            ));
            return match verified.await? {
                Caller::ServiceUser(user) => Ok(user),
                Caller::ApiApp(_) => Err(OAuthError::invalid_client()),
            };
        }
        let user = match username(&creds.client_id) {
            Some(name) => self.store.service_user_by_username(&name).await.map_err(store_error)?,
            None => None,
        };
        self.check_credentials(creds, user, now)
    }

    /// Verifies a presented secret against the client that was found (if any), a
    /// service user or an API app alike: its [`Credentials`] (the current secret, or
    /// the previous secret while that is unexpired at `now`), and that it is enabled.
    /// The work is the same whether or not the client was found (one that was not is
    /// checked against [`Credentials::NONE`]) and whichever secret matches. Logs the
    /// outcome.
    pub(crate) fn check_credentials<T: SecretClient>(
        &self,
        creds: &ClientCredentials,
        found: Option<T>,
        now: OffsetDateTime,
    ) -> Result<T, OAuthError> {
        let (credentials, enabled) =
            found.as_ref().map_or((&Credentials::NONE, false), |c| (c.credentials(), c.enabled()));
        let verified = credentials.matches(creds.secret.expose(), now);
        match found {
            Some(client) if verified && enabled => {
                self.audit(&AuditEvent::ClientAuthenticated {
                    client_id: &creds.client_id,
                    method: creds.method,
                });
                Ok(client)
            }
            _ => {
                self.audit(&AuditEvent::ClientAuthenticationFailed {
                    client_id: loggable_id(&creds.client_id),
                    method: creds.method,
                });
                Err(OAuthError::invalid_client())
            }
        }
    }

    /// The client credentials grant (RFC 6749 §4.4): authenticate, negotiate scopes,
    /// mint, and persist the token's record before answering.
    pub async fn client_credentials(
        &self,
        request: ClientCredentialsRequest,
    ) -> Result<TokenResponse, OAuthError> {
        // One reading of the clock for all: the secret's check, the lookups' and the
        // token's time.
        let now = self.clock.now();
        let user = self.authenticate_at(&request.credentials, now).await?;
        let negotiated = self
            .scopes
            .negotiate(request.scope.as_ref())
            .map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
        let resolved = self.resolve_projects(negotiated, &user, now).await?;
        self.issue(&user, resolved, now).await
    }

    /// The JWT bearer grant (RFC 7523 §2.1): the assertion, signed with a registered
    /// key of a service user, stands in for its credentials; the token issued is the
    /// same as for client credentials. A bad assertion is `invalid_grant`.
    ///
    /// Client authentication is optional with this grant (RFC 7523 §3.1); when the
    /// request carries client credentials (`client`), they must be valid, or the
    /// answer is `invalid_client` (RFC 6749 §3.2.1), whoever the assertion names.
    pub async fn jwt_bearer(
        &self,
        client: Option<&ClientCredentials>,
        assertion: &str,
        scope: Option<ScopeSet>,
    ) -> Result<TokenResponse, OAuthError> {
        if let Some(client) = client {
            self.authenticate_caller(client).await?;
        }
        let Caller::ServiceUser(user) =
            self.verify_assertion(assertion, None, AssertionUse::Grant).await?
        else {
            return Err(OAuthError::new(
                ErrorCode::InvalidGrant,
                "the assertion names no service user",
            ));
        };
        let negotiated = self
            .scopes
            .negotiate(scope.as_ref())
            .map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
        // One reading of the clock for both: the lookups' and the token's time.
        let now = self.clock.now();
        let resolved = self.resolve_projects(negotiated, &user, now).await?;
        self.issue(&user, resolved, now).await
    }

    /// Turns project scopes into the token's audience and roles.
    ///
    /// `urn:zitadel:iam:org:project:id:{id}:aud` adds project `id` to the audience when
    /// the project exists (`zitadel`, the server's own API, always does) and is dropped
    /// otherwise. `urn:zitadel:iam:org:project:role:{role}` is kept when the user holds
    /// `role` in at least one project of the audience, and adds the role for each such
    /// project. With no project in the audience, the audience is the client ID. The
    /// scopes that remain are the ones granted, in the order requested.
    ///
    /// A project id found is remembered for a second and not looked up again for
    /// the audience meanwhile ([`KnownProjects`]); a missing one is looked up every
    /// time, and role scopes always read their projects afresh.
    async fn resolve_projects(
        &self,
        scopes: ScopeSet,
        user: &ServiceUser,
        now: OffsetDateTime,
    ) -> Result<Resolved, OAuthError> {
        // One pass over the scopes for what needs more than the audience.
        let (mut with_roles, mut resource_owner) = (false, false);
        for scope in &scopes {
            match scope.kind() {
                ScopeKind::ProjectRole(_) => with_roles = true,
                ScopeKind::ResourceOwner => resource_owner = true,
                _ => {}
            }
        }
        // The audience's project ids; with role scopes, the projects themselves.
        let mut audience: Vec<String> = Vec::new();
        let mut projects: Vec<Project> = Vec::new();
        let mut dropped: Vec<Scope> = Vec::new();
        // `now` is taken before the lookups: what they find is remembered from then on.
        for scope in &scopes {
            let ScopeKind::ProjectAudience(project) = scope.kind() else { continue };
            let project_id = project.id();
            if audience.iter().any(|known| known == project_id) {
                continue;
            }
            if !with_roles && self.known_projects.contains(project_id, now) {
                audience.push(project_id.to_owned());
                continue;
            }
            let Ok(id) = ProjectId::new(project_id) else {
                dropped.push(scope.clone());
                continue;
            };
            match self.store.project_by_id(&id).await.map_err(store_error)? {
                Some(project) => {
                    self.known_projects.insert(&id, now);
                    audience.push(project_id.to_owned());
                    projects.push(project);
                }
                None => dropped.push(scope.clone()),
            }
        }
        let mut roles = RoleClaims::default();
        let organization =
            if with_roles || resource_owner { Some(self.organization().await?) } else { None };
        if let (true, Some(organization)) = (with_roles, &organization) {
            let grants = self.store.grants_of_user(&user.id).await.map_err(store_error)?;
            for scope in &scopes {
                let ScopeKind::ProjectRole(role) = scope.kind() else { continue };
                let mut granted = false;
                for project in &projects {
                    if let Some(grant) = grants
                        .iter()
                        .find(|g| g.project_id == project.id && g.role.as_str() == role)
                    {
                        roles.insert(&grant.role, organization);
                        granted = true;
                    }
                }
                if !granted {
                    dropped.push(scope.clone());
                }
            }
        }
        let mut scopes = scopes;
        scopes.retain(|s| !dropped.contains(s));
        if audience.is_empty() {
            audience.push(user.username.as_str().to_owned());
        }
        let resource_owner = if resource_owner { organization } else { None };
        Ok(Resolved { scopes, audience, roles, resource_owner })
    }

    /// Mints and records the token issued at `now`: the exact time, which the minter
    /// truncates to whole seconds for the token's times and leads an opaque token
    /// with the milliseconds of, so that records issued close together sort close
    /// together (see `TokenDigest`).
    async fn issue(
        &self,
        user: &ServiceUser,
        resolved: Resolved,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, OAuthError> {
        let Resolved { scopes: scope, audience, roles, resource_owner } = resolved;
        let grant = Grant {
            token_type: user.access_token_type,
            user_id: user.id.clone(),
            client_id: user.username.clone(),
            scopes: scope,
            audience,
            roles,
            resource_owner,
            issued_at: now,
            expires_at: now + user.token_lifetime.duration(),
        };
        let minted = self.minter.mint(&grant).map_err(mint_error)?;
        if let Some(record) = &minted.record {
            self.store.insert_token(record).await.map_err(store_error)?;
        }
        self.audit(&AuditEvent::TokenIssued {
            client_id: user.username.as_str(),
            jti: minted.jti.as_str(),
            token_type: user.access_token_type,
            scope: &grant.scopes,
            audience: &grant.audience,
            expires_at: minted.expires_at,
        });
        Ok(TokenResponse {
            access_token: minted.token,
            token_type: "Bearer",
            expires_in: seconds_until(minted.expires_at, now),
            scope: grant.scopes,
            jti: minted.jti,
            expires_at: minted.expires_at,
        })
    }
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.minter.issuer())
            .field("clock", &self.clock)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Whole seconds from `now` until `expires_at`, never negative. With the expiry
/// truncated to whole seconds, a 12 hour lifetime gives 43199 unless the request
/// arrived exactly on a second boundary.
#[cfg_attr(not(feature = "internals"), allow(unreachable_pub))] // for `internals`
pub fn seconds_until(expires_at: OffsetDateTime, now: OffsetDateTime) -> u64 {
    let remaining = (expires_at - now).whole_seconds();
    u64::try_from(remaining).unwrap_or(0)
}

/// The one mapping from storage failures to OAuth errors.
pub(crate) fn store_error(err: StoreError) -> OAuthError {
    // The whole chain: "storage backend unavailable: database or disk is full".
    let cause = tessera_store::error_chain(&err);
    let kind = StorageErrorKind::of(&err);
    if err.is_transient() {
        tracing::warn!(error = %cause, client_address = client_address(), "storage unavailable");
        OAuthError::unavailable().with_storage(kind)
    } else {
        tracing::error!(error = %cause, client_address = client_address(), "storage failed");
        OAuthError::server_error().with_storage(kind)
    }
}

fn mint_error(err: MintError) -> OAuthError {
    tracing::error!(error = %err, client_address = client_address(), "minting failed");
    OAuthError::server_error()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_store::{
        ClientSecret, ManualClock, MemoryStore, OrganizationStore, SecretDigest, ServiceUserPatch,
        TokenDigest,
    };
    use time::Duration;

    use crate::error::ErrorCode;

    #[test]
    fn a_client_id_is_a_username_alike_whether_or_not_it_was_the_last() {
        let long = "a".repeat(200);
        let ids = ["svc", "svc", "other", "bad id", "svc", "", "svc", long.as_str(), "é", "svc"];
        for id in ids {
            for _ in 0..2 {
                assert_eq!(username(id), Username::new(id).ok(), "{id}");
            }
        }
    }

    struct Fixture {
        issuer: Issuer,
        store: Arc<MemoryStore>,
        clock: Arc<ManualClock>,
        secret: ClientSecret,
    }

    fn at(secs: i64, millis: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(secs) + Duration::milliseconds(millis)
    }

    async fn fixture() -> Result<Fixture, Box<dyn std::error::Error>> {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(at(1_700_000_000, 250)));
        let secret = ClientSecret::generate()?;
        let mut user = ServiceUser::new(Username::new("svc")?, clock.now())?;
        user.credentials = Credentials::new(SecretDigest::of(&secret)?);
        tessera_store::ServiceUserAdmin::create_service_user(&*store, &user).await?;
        let issuer =
            Issuer::new(store.clone(), TokenMinter::new("http://issuer")).with_clock(clock.clone());
        Ok(Fixture { issuer, store, clock, secret })
    }

    fn request(id: &str, secret: &str, scope: Option<&str>) -> ClientCredentialsRequest {
        ClientCredentialsRequest {
            credentials: ClientCredentials::basic(id, secret),
            scope: scope.map(|s| ScopeSet::parse(s).unwrap_or_else(|e| panic!("{e}"))),
        }
    }

    #[tokio::test]
    async fn issues_and_records_an_opaque_token() -> Result<(), Box<dyn std::error::Error>> {
        let f = fixture().await?;
        let response = f.issuer.client_credentials(request("svc", f.secret.expose(), None)).await?;
        assert_eq!(response.expires_in, 43_199);
        assert_eq!(response.scope.to_string(), "openid");
        let digest = TokenDigest::of(response.access_token.expose());
        let record = tessera_store::IssuingStore::token_by_digest(&*f.store, &digest).await?;
        let record = record.ok_or("no record stored")?;
        assert_eq!(record.expires_at.unix_timestamp(), 1_700_000_000 + 43_200);
        assert_eq!(record.audience, ["svc"]);
        assert_eq!(record.jti, response.jti);
        Ok(())
    }

    #[tokio::test]
    async fn records_of_one_second_sort_by_the_millisecond()
    -> Result<(), Box<dyn std::error::Error>> {
        let f = fixture().await?;
        let mut digests = Vec::new();
        for _ in 0..3 {
            let response =
                f.issuer.client_credentials(request("svc", f.secret.expose(), None)).await?;
            let digest = TokenDigest::of(response.access_token.expose());
            let record = tessera_store::IssuingStore::token_by_digest(&*f.store, &digest).await?;
            let record = record.ok_or("no record stored")?;
            // Times in the record and the answer stay whole seconds.
            assert_eq!(record.issued_at, at(1_700_000_000, 0));
            assert_eq!(record.expires_at.unix_timestamp(), 1_700_000_000 + 43_200);
            assert_eq!(response.expires_in, 43_199);
            digests.push(digest);
            f.clock.advance(Duration::milliseconds(300));
        }
        // The key leads with the issue time in milliseconds: 250, 550 and 850 ms.
        for (digest, millis) in digests.iter().zip([250, 550, 850]) {
            assert_eq!(digest.as_bytes()[..6], TokenDigest::prefix_at(1_700_000_000_000 + millis));
        }
        assert!(digests.is_sorted_by_key(|d| *d.as_bytes()), "later tokens sort later");
        Ok(())
    }

    #[tokio::test]
    async fn expiry_follows_the_injected_clock() -> Result<(), Box<dyn std::error::Error>> {
        let f = fixture().await?;
        let mut patch = ServiceUserPatch::at(f.clock.now());
        patch.token_lifetime = Some(tessera_store::TokenLifetime::from_secs(60)?);
        tessera_store::ServiceUserAdmin::update_service_user(
            &*f.store,
            &Username::new("svc")?,
            &patch,
        )
        .await?;
        let response = f.issuer.client_credentials(request("svc", f.secret.expose(), None)).await?;
        assert_eq!(response.expires_in, 59);
        let digest = TokenDigest::of(response.access_token.expose());
        let record = tessera_store::IssuingStore::token_by_digest(&*f.store, &digest)
            .await?
            .ok_or("no record")?;
        f.clock.advance(Duration::seconds(59));
        assert!(record.is_active(f.clock.now()), "active until its expiry");
        f.clock.advance(Duration::milliseconds(750));
        assert!(!record.is_active(f.clock.now()), "expired at 60 s");
        assert_eq!(seconds_until(record.expires_at, f.clock.now()), 0);
        Ok(())
    }

    #[tokio::test]
    async fn every_authentication_failure_is_the_same() -> Result<(), Box<dyn std::error::Error>> {
        let f = fixture().await?;
        let mut disabled = ServiceUserPatch::at(f.clock.now());
        disabled.enabled = Some(false);
        let cases = [
            request("nobody", f.secret.expose(), None),
            request("svc", "wrong", None),
            request("not a valid:id", f.secret.expose(), None),
        ];
        let mut errors = Vec::new();
        for case in cases {
            errors.push(f.issuer.client_credentials(case).await.map(|_| ()));
        }
        tessera_store::ServiceUserAdmin::update_service_user(
            &*f.store,
            &Username::new("svc")?,
            &disabled,
        )
        .await?;
        errors.push(
            f.issuer.client_credentials(request("svc", f.secret.expose(), None)).await.map(|_| ()),
        );
        for error in errors {
            assert_eq!(error, Err(OAuthError::invalid_client()));
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_previous_secret_works_until_its_grace_period_ends()
    -> Result<(), Box<dyn std::error::Error>> {
        let f = fixture().await?;
        let svc = Username::new("svc")?;
        let new = ClientSecret::generate()?;
        let mut patch = ServiceUserPatch::at(f.clock.now());
        patch.secret = Some(SecretDigest::of(&new)?);
        patch.keep_previous_until = Some(f.clock.now() + Duration::seconds(30));
        tessera_store::ServiceUserAdmin::update_service_user(&*f.store, &svc, &patch).await?;
        // The clock shows 1_700_000_000.250; the grace period ends at 1_700_000_030.
        let token = |secret: &ClientSecret| {
            f.issuer.client_credentials(request("svc", secret.expose(), None))
        };
        assert!(token(&f.secret).await.is_ok(), "the old secret works at once");
        assert!(token(&new).await.is_ok(), "the new secret works at once");
        f.clock.advance(Duration::seconds(29) + Duration::milliseconds(749));
        assert!(token(&f.secret).await.is_ok(), "the old secret works until the expiry");
        assert!(token(&new).await.is_ok());
        f.clock.advance(Duration::milliseconds(1));
        assert_eq!(
            token(&f.secret).await.map(|_| ()),
            Err(OAuthError::invalid_client()),
            "the old secret fails from the expiry on"
        );
        assert!(token(&new).await.is_ok(), "the new secret keeps working");
        f.clock.advance(Duration::days(400));
        assert_eq!(token(&f.secret).await.map(|_| ()), Err(OAuthError::invalid_client()));
        assert!(token(&new).await.is_ok(), "the current secret never expires");
        Ok(())
    }

    #[tokio::test]
    async fn project_scopes_shape_the_audience() -> Result<(), Box<dyn std::error::Error>> {
        let f = fixture().await?;
        let scope = "openid urn:zitadel:iam:org:project:id:zitadel:aud \
                     urn:zitadel:iam:org:project:id:123:aud urn:zitadel:iam:org:project:role:r";
        let response =
            f.issuer.client_credentials(request("svc", f.secret.expose(), Some(scope))).await?;
        assert_eq!(response.scope.to_string(), "openid urn:zitadel:iam:org:project:id:zitadel:aud");
        let digest = TokenDigest::of(response.access_token.expose());
        let record = tessera_store::IssuingStore::token_by_digest(&*f.store, &digest)
            .await?
            .ok_or("no record")?;
        assert_eq!(record.audience, ["zitadel"]);
        Ok(())
    }

    #[tokio::test]
    async fn a_project_created_later_joins_the_audience_and_its_roles_name_the_organization()
    -> Result<(), Box<dyn std::error::Error>> {
        use tessera_store::{DisplayName, IssuingStore, ProjectAdmin, RoleGrant, RoleKey};
        let f = fixture().await?;
        let aud = "urn:zitadel:iam:org:project:id:late:aud";
        let with_role = format!("{aud} urn:zitadel:iam:org:project:role:reader");
        let issue = |scope: String| {
            let request = request("svc", f.secret.expose(), Some(&scope));
            async {
                let response = f.issuer.client_credentials(request).await?;
                let digest = TokenDigest::of(response.access_token.expose());
                let record = f.store.token_by_digest(&digest).await?.ok_or("no record")?;
                Ok::<_, Box<dyn std::error::Error>>((response.scope.to_string(), record))
            }
        };
        let (granted, record) = issue(aud.to_owned()).await?;
        assert_eq!(
            (granted.as_str(), record.audience.as_slice()),
            ("", ["svc".to_owned()].as_slice())
        );

        let id = ProjectId::new("late")?;
        f.store
            .create_project(&Project::new(id.clone(), DisplayName::new("Late")?, f.clock.now()))
            .await?;
        let user = tessera_store::IssuingStore::service_user_by_username(
            &*f.store,
            &Username::new("svc")?,
        )
        .await?
        .ok_or("no user")?;
        f.store
            .add_grant(&RoleGrant {
                user_id: user.id,
                project_id: id.clone(),
                role: RoleKey::new("reader")?,
            })
            .await?;
        let (granted, record) = issue(aud.to_owned()).await?;
        assert_eq!(granted, aud, "a project missing before is found once it exists");
        assert_eq!(record.audience, ["late"]);
        let (_, record) = issue(with_role.clone()).await?;
        // As ZITADEL writes the claim: role → organization id → primary domain.
        let org = f.issuer.organization().await?;
        assert_eq!(org.primary_domain.as_str(), "issuer", "named after the issuer's host");
        let mut expected = std::collections::BTreeMap::new();
        expected.insert(org.id.to_string(), org.primary_domain.to_string());
        assert_eq!(record.roles.0["reader"], expected);
        assert_eq!(f.store.organization().await?, Some(org.clone()), "created in the store");

        f.store.rename_project(&id, &DisplayName::new("Renamed")?).await?;
        let (granted, record) = issue(aud.to_owned()).await?;
        assert_eq!(
            (granted.as_str(), record.audience.as_slice()),
            (aud, ["late".to_owned()].as_slice())
        );
        let (_, record) = issue(with_role).await?;
        assert_eq!(record.roles.0["reader"], expected, "the project's name is not in the claim");
        Ok(())
    }

    #[tokio::test]
    async fn a_deleted_project_leaves_the_audience_within_a_second()
    -> Result<(), Box<dyn std::error::Error>> {
        use tessera_store::{DisplayName, IssuingStore, ProjectAdmin};
        let f = fixture().await?;
        let aud = "urn:zitadel:iam:org:project:id:brief:aud";
        let audience = || async {
            let request = request("svc", f.secret.expose(), Some(aud));
            let response = f.issuer.client_credentials(request).await?;
            let digest = TokenDigest::of(response.access_token.expose());
            let record = f.store.token_by_digest(&digest).await?.ok_or("no record")?;
            Ok::<_, Box<dyn std::error::Error>>(record.audience)
        };
        let id = ProjectId::new("brief")?;
        f.store
            .create_project(&Project::new(id.clone(), DisplayName::new("Brief")?, f.clock.now()))
            .await?;
        assert_eq!(audience().await?, ["brief"], "found, and remembered");
        f.store.delete_project(&id).await?;
        f.clock.advance(Duration::milliseconds(999));
        assert_eq!(audience().await?, ["brief"], "remembered for a second");
        f.clock.advance(Duration::milliseconds(1));
        assert_eq!(audience().await?, ["svc"], "then looked up again: gone");
        assert_eq!(audience().await?, ["svc"], "and a missing project is not remembered");

        // A clock that went back does not stretch the memo.
        f.store
            .create_project(&Project::new(id.clone(), DisplayName::new("Brief")?, f.clock.now()))
            .await?;
        assert_eq!(audience().await?, ["brief"]);
        f.store.delete_project(&id).await?;
        f.clock.set(f.clock.now() - Duration::minutes(5));
        assert_eq!(audience().await?, ["svc"]);
        Ok(())
    }

    #[tokio::test]
    async fn disallowed_scope_is_invalid_scope_and_writes_nothing()
    -> Result<(), Box<dyn std::error::Error>> {
        let f = fixture().await?;
        let err = f
            .issuer
            .client_credentials(request("svc", f.secret.expose(), Some("openid offline_access")))
            .await
            .expect_err("offline_access is not allowed");
        assert_eq!(err.code(), ErrorCode::InvalidScope);
        let purged = tessera_store::IssuingStore::purge_expired_tokens(
            &*f.store,
            f.clock.now() + Duration::days(400),
        )
        .await?;
        assert_eq!(purged, 0, "no token record may be written");
        Ok(())
    }
}
