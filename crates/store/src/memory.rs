mod tokens;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hash};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::access::{
    AccessAdmin, AdminRole, Administrator, PersonalAccessToken, sort_administrators,
};
use crate::admin::{
    ClientKeyAdmin, OrganizationAdmin, ProjectAdmin, ServiceUserAdmin, UserFilter, UserPage,
    UserPageQuery,
};
use crate::client_keys::{ClientKey, KeyOwner};
use crate::clock::whole_seconds;
use crate::error::StoreError;
use crate::ids::{ClientId, Domain, PatId, ProjectId, RoleKey, TokenId, UserId, Username};
use crate::issuing::IssuingStore;
use crate::keys::{SigningKeyRecord, SigningKeyStore};
use crate::organization::{Organization, OrganizationStore};
use crate::projects::{ApiApp, ApiAppPatch, Project, ProjectRole, RoleGrant};
use crate::records::DisplayName;
use crate::records::{ServiceUser, ServiceUserPatch, TokenDigest, TokenRecord};

use tokens::{Entry, Jti, Shapes, Tokens, shard_of, unix};

/// Number of independently locked shards of the token map. Sharding keeps a
/// growing map from stalling every request while one shard rehashes.
const TOKEN_SHARDS: usize = 64;

/// An in-memory backend: fast, and gone when the process ends. For tests, demos
/// and single-process deployments that can afford to lose tokens on restart.
///
/// A live opaque token costs about a hundred bytes: its record is kept compactly
/// (fixed-size, times in whole seconds, a generated jti as its 16 bytes), and what
/// the tokens of one grant share (user, client, scopes, audience, roles) is
/// interned once for all of them.
#[derive(Debug)]
pub struct MemoryStore {
    users: RwLock<Users>,
    tokens: Box<[RwLock<Tokens>]>,
    /// Mixed into every digest's hash, so that where a token lands differs from one
    /// store to the next.
    hash_key: u64,
    shapes: Shapes,
    /// Keeps only these bits of each digest's hash fragment, to force collisions.
    #[cfg(test)]
    fragment_mask: u32,
    keys: RwLock<Vec<SigningKeyRecord>>,
    revoked_jtis: RwLock<HashMap<TokenId, OffsetDateTime>>,
    used_assertions: RwLock<HashMap<(String, String), OffsetDateTime>>,
    organization: RwLock<Option<Organization>>,
}

/// Everything keyed by client ID lives under one lock, so that usernames and API app
/// client IDs stay one namespace.
#[derive(Debug)]
struct Users {
    by_name: HashMap<Username, ServiceUser>,
    name_by_id: HashMap<UserId, Username>,
    projects: BTreeMap<ProjectId, Project>,
    apps: BTreeMap<ClientId, ApiApp>,
    grants: BTreeSet<RoleGrant>,
    /// Roles by project, then key: a project's roles are one range, in key order.
    roles: BTreeMap<(ProjectId, RoleKey), ProjectRole>,
    client_keys: BTreeMap<String, ClientKey>,
    administrators: Vec<Administrator>,
    pats: HashMap<PatId, PersonalAccessToken>,
    pat_by_digest: HashMap<TokenDigest, PatId>,
}

impl Users {
    fn owner_exists(&self, owner: &KeyOwner) -> bool {
        match owner {
            KeyOwner::ServiceUser(id) => self.name_by_id.contains_key(id),
            KeyOwner::ApiApp(id) => self.apps.contains_key(id),
        }
    }
}

impl Default for Users {
    fn default() -> Self {
        let reserved = Project::reserved();
        Self {
            by_name: HashMap::new(),
            name_by_id: HashMap::new(),
            projects: BTreeMap::from([(reserved.id.clone(), reserved)]),
            apps: BTreeMap::new(),
            grants: BTreeSet::new(),
            roles: BTreeMap::new(),
            client_keys: BTreeMap::new(),
            administrators: Vec::new(),
            pats: HashMap::new(),
            pat_by_digest: HashMap::new(),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            users: RwLock::default(),
            tokens: (0..TOKEN_SHARDS).map(|_| RwLock::default()).collect(),
            hash_key: std::collections::hash_map::RandomState::new().hash_one(0u64),
            shapes: Shapes::new(),
            #[cfg(test)]
            fragment_mask: u32::MAX,
            keys: RwLock::default(),
            revoked_jtis: RwLock::default(),
            used_assertions: RwLock::default(),
            organization: RwLock::default(),
        }
    }

    fn users(&self) -> RwLockReadGuard<'_, Users> {
        self.users.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn users_mut(&self) -> RwLockWriteGuard<'_, Users> {
        self.users.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The hash of `digest`: its last eight bytes, which are SHA-256 output for every
    /// digest (see `TokenDigest`) and so already uniform, mixed with the store's key.
    /// No client chooses the digests stored: they are those of tokens minted here.
    fn hash(&self, digest: &TokenDigest) -> u64 {
        let (_, tail) = digest.as_bytes().split_last_chunk::<8>().unwrap_or((&[], &[0; 8]));
        u64::from_le_bytes(*tail) ^ self.hash_key
    }

    /// The shard of `digest`, and the fragment of its hash that the shard indexes.
    fn shard(&self, digest: &TokenDigest) -> (&RwLock<Tokens>, u32) {
        let hash = self.hash(digest);
        (&self.tokens[shard_of(hash, self.tokens.len())], self.fragment_of(hash))
    }

    /// The fragment of `digest`'s hash that its shard indexes.
    fn fragment(&self, digest: &TokenDigest) -> u32 {
        self.fragment_of(self.hash(digest))
    }

    fn fragment_of(&self, hash: u64) -> u32 {
        let fragment = hash as u32;
        #[cfg(test)]
        let fragment = fragment & self.fragment_mask;
        fragment
    }

    /// Removes the token entries for which `pred` holds, then the shapes no token
    /// holds any more; returns how many entries were removed.
    fn remove_tokens_where(&self, pred: impl Fn(&Entry) -> bool) -> u64 {
        let removed = self
            .tokens
            .iter()
            .map(|shard| write(shard).remove_where(&pred, |d| self.fragment(d)))
            .sum();
        self.shapes.sweep();
        removed
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn remove_where<K: Eq + Hash, V>(map: &mut HashMap<K, V>, pred: impl Fn(&V) -> bool) -> u64 {
    let before = map.len();
    map.retain(|_, v| !pred(v));
    (before - map.len()) as u64
}

#[async_trait]
impl IssuingStore for MemoryStore {
    async fn service_user_by_username(
        &self,
        username: &Username,
    ) -> Result<Option<ServiceUser>, StoreError> {
        Ok(self.users().by_name.get(username).cloned())
    }

    async fn service_user_by_id(&self, id: &UserId) -> Result<Option<ServiceUser>, StoreError> {
        let users = self.users();
        Ok(users.name_by_id.get(id).and_then(|name| users.by_name.get(name)).cloned())
    }

    async fn api_app_by_client_id(
        &self,
        client_id: &ClientId,
    ) -> Result<Option<ApiApp>, StoreError> {
        Ok(self.users().apps.get(client_id).cloned())
    }

    async fn project_by_id(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        Ok(self.users().projects.get(id).cloned())
    }

    async fn grants_of_user(&self, user_id: &UserId) -> Result<Vec<RoleGrant>, StoreError> {
        Ok(self.users().grants.iter().filter(|g| &g.user_id == user_id).cloned().collect())
    }

    async fn insert_token(&self, record: &TokenRecord) -> Result<(), StoreError> {
        let (shard, fragment) = self.shard(&record.digest);
        let jti = Jti::of(&record.jti);
        let mut shard = write(shard);
        shard.insert_new(fragment, record, jti, &self.shapes)
    }

    async fn token_by_digest(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let (shard, fragment) = self.shard(digest);
        read(shard).get(fragment, digest).map(Entry::record).transpose()
    }

    async fn revoke_token(
        &self,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (shard, fragment) = self.shard(digest);
        match write(shard).get_mut(fragment, digest) {
            Some(entry) => {
                entry.revoke(now);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn revoke_jti(
        &self,
        jti: &TokenId,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let expires_at = whole_seconds(expires_at);
        let mut revoked = write(&self.revoked_jtis);
        let entry = revoked.entry(jti.clone()).or_insert(expires_at);
        *entry = (*entry).max(expires_at);
        Ok(())
    }

    async fn is_jti_revoked(&self, jti: &TokenId) -> Result<bool, StoreError> {
        Ok(read(&self.revoked_jtis).contains_key(jti))
    }

    async fn client_key(&self, key_id: &str) -> Result<Option<ClientKey>, StoreError> {
        Ok(self.users().client_keys.get(key_id).cloned())
    }

    async fn personal_access_token_by_digest(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<PersonalAccessToken>, StoreError> {
        let users = self.users();
        Ok(users.pat_by_digest.get(digest).and_then(|id| users.pats.get(id)).cloned())
    }

    async fn use_assertion(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut used = write(&self.used_assertions);
        let key = (issuer.to_owned(), jti.to_owned());
        if used.contains_key(&key) {
            return Ok(false);
        }
        used.insert(key, whole_seconds(expires_at));
        Ok(true)
    }

    async fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        // Stored times are whole seconds: `expires_at <= now` as the records compare.
        let now_secs = unix(now);
        let records = self.remove_tokens_where(|e| e.expires_at <= now_secs);
        let jtis = remove_where(&mut write(&self.revoked_jtis), |expires_at| *expires_at <= now);
        let used = remove_where(&mut write(&self.used_assertions), |expires_at| *expires_at <= now);
        Ok(records + jtis + used)
    }
}

#[async_trait]
impl ServiceUserAdmin for MemoryStore {
    async fn create_service_user(&self, user: &ServiceUser) -> Result<(), StoreError> {
        let mut users = self.users_mut();
        let taken_by_app =
            ClientId::new(user.username.as_str()).is_ok_and(|id| users.apps.contains_key(&id));
        if users.by_name.contains_key(&user.username)
            || users.name_by_id.contains_key(&user.id)
            || taken_by_app
        {
            return Err(StoreError::Conflict("service user"));
        }
        users.name_by_id.insert(user.id.clone(), user.username.clone());
        users.by_name.insert(user.username.clone(), user.clone());
        Ok(())
    }

    async fn list_service_users(&self) -> Result<Vec<ServiceUser>, StoreError> {
        let mut all: Vec<ServiceUser> = self.users().by_name.values().cloned().collect();
        all.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(all)
    }

    async fn service_users_page(&self, query: &UserPageQuery) -> Result<UserPage, StoreError> {
        // Only the users the filter matches are copied out of the lock; the order and
        // the page are the shared ones.
        let matched: Vec<ServiceUser> = self
            .users()
            .by_name
            .values()
            .filter(|user| query.filter.matches(user))
            .cloned()
            .collect();
        let UserPageQuery { order, descending, offset, limit, .. } = *query;
        let rest = UserPageQuery { filter: UserFilter::All, order, descending, offset, limit };
        Ok(rest.page_of(matched))
    }

    async fn update_service_user(
        &self,
        username: &Username,
        patch: &ServiceUserPatch,
    ) -> Result<ServiceUser, StoreError> {
        let mut users = self.users_mut();
        let user = users.by_name.get_mut(username).ok_or(StoreError::NotFound("service user"))?;
        user.apply(patch);
        Ok(user.clone())
    }

    async fn delete_service_user(&self, username: &Username) -> Result<(), StoreError> {
        let removed = {
            let mut users = self.users_mut();
            let user =
                users.by_name.remove(username).ok_or(StoreError::NotFound("service user"))?;
            users.name_by_id.remove(&user.id);
            users.grants.retain(|g| g.user_id != user.id);
            let owner = KeyOwner::ServiceUser(user.id.clone());
            users.client_keys.retain(|_, k| k.owner != owner);
            users.administrators.retain(|a| a.user_id != user.id);
            let Users { pats, pat_by_digest, .. } = &mut *users;
            pats.retain(|_, t| {
                let keep = t.user_id != user.id;
                if !keep {
                    pat_by_digest.remove(&t.digest);
                }
                keep
            });
            user
        };
        self.remove_tokens_where(|e| e.shape.user_id == removed.id);
        Ok(())
    }
}

#[async_trait]
impl ProjectAdmin for MemoryStore {
    async fn create_project(&self, project: &Project) -> Result<(), StoreError> {
        let mut users = self.users_mut();
        if users.projects.contains_key(&project.id) {
            return Err(StoreError::Conflict("project"));
        }
        users.projects.insert(project.id.clone(), project.clone());
        Ok(())
    }

    async fn rename_project(&self, id: &ProjectId, name: &DisplayName) -> Result<(), StoreError> {
        let mut users = self.users_mut();
        let project = users.projects.get_mut(id).ok_or(StoreError::NotFound("project"))?;
        project.name = name.clone();
        Ok(())
    }

    async fn list_projects(&self) -> Result<Vec<Project>, StoreError> {
        Ok(self.users().projects.values().cloned().collect())
    }

    async fn create_api_app(&self, app: &ApiApp) -> Result<(), StoreError> {
        let mut users = self.users_mut();
        if !users.projects.contains_key(&app.project_id) {
            return Err(StoreError::NotFound("project"));
        }
        let taken_by_user = Username::new(app.client_id.as_str())
            .is_ok_and(|name| users.by_name.contains_key(&name));
        if users.apps.contains_key(&app.client_id) || taken_by_user {
            return Err(StoreError::Conflict("client ID"));
        }
        // API apps are few: a scan is cheaper than an index kept up to date.
        if users.apps.values().any(|other| other.app_id == app.app_id) {
            return Err(StoreError::Conflict("app id"));
        }
        users.apps.insert(app.client_id.clone(), app.clone());
        Ok(())
    }

    async fn list_api_apps(&self) -> Result<Vec<ApiApp>, StoreError> {
        Ok(self.users().apps.values().cloned().collect())
    }

    async fn update_api_app(
        &self,
        client_id: &ClientId,
        patch: &ApiAppPatch,
    ) -> Result<ApiApp, StoreError> {
        let mut users = self.users_mut();
        let app = users.apps.get_mut(client_id).ok_or(StoreError::NotFound("API app"))?;
        app.apply(patch);
        Ok(app.clone())
    }

    async fn delete_api_app(&self, client_id: &ClientId) -> Result<(), StoreError> {
        let mut users = self.users_mut();
        users.apps.remove(client_id).ok_or(StoreError::NotFound("API app"))?;
        let owner = KeyOwner::ApiApp(client_id.clone());
        users.client_keys.retain(|_, k| k.owner != owner);
        Ok(())
    }

    async fn add_grant(&self, grant: &RoleGrant) -> Result<bool, StoreError> {
        let mut users = self.users_mut();
        if !users.name_by_id.contains_key(&grant.user_id) {
            return Err(StoreError::NotFound("service user"));
        }
        if !users.projects.contains_key(&grant.project_id) {
            return Err(StoreError::NotFound("project"));
        }
        Ok(users.grants.insert(grant.clone()))
    }

    async fn remove_grant(&self, grant: &RoleGrant) -> Result<bool, StoreError> {
        Ok(self.users_mut().grants.remove(grant))
    }

    async fn add_project_role(&self, role: &ProjectRole) -> Result<(), StoreError> {
        let mut users = self.users_mut();
        if !users.projects.contains_key(&role.project_id) {
            return Err(StoreError::NotFound("project"));
        }
        let key = (role.project_id.clone(), role.key.clone());
        if users.roles.contains_key(&key) {
            return Err(StoreError::Conflict("project role"));
        }
        // Times are stored in whole seconds, as the other backends store them.
        let stored = ProjectRole {
            created_at: whole_seconds(role.created_at),
            updated_at: whole_seconds(role.updated_at),
            ..role.clone()
        };
        users.roles.insert(key, stored);
        Ok(())
    }

    async fn update_project_role(
        &self,
        project: &ProjectId,
        key: &RoleKey,
        display_name: &DisplayName,
        group: Option<&DisplayName>,
        now: OffsetDateTime,
    ) -> Result<ProjectRole, StoreError> {
        let mut users = self.users_mut();
        let role = users
            .roles
            .get_mut(&(project.clone(), key.clone()))
            .ok_or(StoreError::NotFound("project role"))?;
        role.display_name = display_name.clone();
        role.group = group.cloned();
        role.updated_at = whole_seconds(now);
        Ok(role.clone())
    }

    async fn remove_project_role(
        &self,
        project: &ProjectId,
        key: &RoleKey,
    ) -> Result<bool, StoreError> {
        let mut users = self.users_mut();
        if users.roles.remove(&(project.clone(), key.clone())).is_none() {
            return Ok(false);
        }
        users.grants.retain(|g| !(&g.project_id == project && &g.role == key));
        Ok(true)
    }

    async fn project_roles(&self, project: &ProjectId) -> Result<Vec<ProjectRole>, StoreError> {
        Ok(self.users().roles.values().filter(|r| &r.project_id == project).cloned().collect())
    }

    async fn delete_project(&self, id: &ProjectId) -> Result<(), StoreError> {
        if id.is_reserved() {
            return Err(StoreError::Conflict("reserved project"));
        }
        let mut users = self.users_mut();
        users.projects.remove(id).ok_or(StoreError::NotFound("project"))?;
        let Users { apps, client_keys, grants, roles, administrators, .. } = &mut *users;
        apps.retain(|client_id, app| {
            let keep = &app.project_id != id;
            if !keep {
                let owner = KeyOwner::ApiApp(client_id.clone());
                client_keys.retain(|_, k| k.owner != owner);
            }
            keep
        });
        grants.retain(|g| &g.project_id != id);
        roles.retain(|(project, _), _| project != id);
        administrators.retain(|a| a.project_id.as_ref() != Some(id));
        Ok(())
    }
}

#[async_trait]
impl ClientKeyAdmin for MemoryStore {
    async fn add_client_key(&self, key: &ClientKey) -> Result<(), StoreError> {
        let mut users = self.users_mut();
        if !users.owner_exists(&key.owner) {
            return Err(StoreError::NotFound("key owner"));
        }
        if users.client_keys.contains_key(&key.key_id) {
            return Err(StoreError::Conflict("client key"));
        }
        users.client_keys.insert(key.key_id.clone(), key.clone());
        Ok(())
    }

    async fn client_keys_of(&self, owner: &KeyOwner) -> Result<Vec<ClientKey>, StoreError> {
        let mut keys: Vec<ClientKey> =
            self.users().client_keys.values().filter(|k| &k.owner == owner).cloned().collect();
        keys.sort_by(|a, b| (a.created_at, &a.key_id).cmp(&(b.created_at, &b.key_id)));
        Ok(keys)
    }

    async fn remove_client_key(&self, owner: &KeyOwner, key_id: &str) -> Result<bool, StoreError> {
        let mut users = self.users_mut();
        if users.client_keys.get(key_id).is_some_and(|k| &k.owner == owner) {
            users.client_keys.remove(key_id);
            return Ok(true);
        }
        Ok(false)
    }
}

#[async_trait]
impl AccessAdmin for MemoryStore {
    async fn add_administrator(&self, admin: &Administrator) -> Result<bool, StoreError> {
        let mut users = self.users_mut();
        if !users.name_by_id.contains_key(&admin.user_id) {
            return Err(StoreError::NotFound("service user"));
        }
        if let Some(project) = &admin.project_id
            && !users.projects.contains_key(project)
        {
            return Err(StoreError::NotFound("project"));
        }
        if users
            .administrators
            .iter()
            .any(|a| a.is(&admin.user_id, admin.role, admin.project_id.as_ref()))
        {
            return Ok(false);
        }
        users.administrators.push(admin.clone());
        sort_administrators(&mut users.administrators);
        Ok(true)
    }

    async fn remove_administrator(
        &self,
        user_id: &UserId,
        role: AdminRole,
        project_id: Option<&ProjectId>,
    ) -> Result<bool, StoreError> {
        let mut users = self.users_mut();
        let before = users.administrators.len();
        users.administrators.retain(|a| !a.is(user_id, role, project_id));
        Ok(users.administrators.len() < before)
    }

    async fn administrators(&self) -> Result<Vec<Administrator>, StoreError> {
        Ok(self.users().administrators.clone())
    }

    async fn administrator_roles_of(
        &self,
        user_id: &UserId,
    ) -> Result<Vec<Administrator>, StoreError> {
        Ok(self.users().administrators.iter().filter(|a| &a.user_id == user_id).cloned().collect())
    }

    async fn add_personal_access_token(
        &self,
        token: &PersonalAccessToken,
    ) -> Result<(), StoreError> {
        let mut users = self.users_mut();
        if !users.name_by_id.contains_key(&token.user_id) {
            return Err(StoreError::NotFound("service user"));
        }
        if users.pats.contains_key(&token.id) || users.pat_by_digest.contains_key(&token.digest) {
            return Err(StoreError::Conflict("personal access token"));
        }
        users.pat_by_digest.insert(token.digest, token.id.clone());
        users.pats.insert(token.id.clone(), token.clone());
        Ok(())
    }

    async fn personal_access_tokens_of(
        &self,
        user_id: &UserId,
    ) -> Result<Vec<PersonalAccessToken>, StoreError> {
        let mut tokens: Vec<PersonalAccessToken> =
            self.users().pats.values().filter(|t| &t.user_id == user_id).cloned().collect();
        tokens.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(tokens)
    }

    async fn remove_personal_access_token(
        &self,
        user_id: &UserId,
        id: &PatId,
    ) -> Result<bool, StoreError> {
        let mut users = self.users_mut();
        match users.pats.get(id) {
            Some(token) if &token.user_id == user_id => {
                let digest = token.digest;
                users.pats.remove(id);
                users.pat_by_digest.remove(&digest);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl SigningKeyStore for MemoryStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        Ok(read(&self.keys).clone())
    }

    async fn insert_signing_key(
        &self,
        key: &SigningKeyRecord,
        expected_latest: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut keys = write(&self.keys);
        if keys.last().map(|k| k.kid.as_str()) != expected_latest {
            return Ok(false);
        }
        if keys.iter().any(|k| k.kid == key.kid) {
            return Err(StoreError::Conflict("signing key"));
        }
        keys.push(key.clone());
        keys.sort_by(|a, b| (a.activates_at, &a.kid).cmp(&(b.activates_at, &b.kid)));
        Ok(true)
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        let mut keys = write(&self.keys);
        let before = keys.len();
        keys.retain(|k| k.kid != kid);
        Ok(keys.len() != before)
    }
}

#[async_trait]
impl OrganizationStore for MemoryStore {
    async fn organization(&self) -> Result<Option<Organization>, StoreError> {
        Ok(read(&self.organization).clone())
    }

    async fn init_organization(
        &self,
        candidate: &Organization,
    ) -> Result<Organization, StoreError> {
        let mut stored = write(&self.organization);
        // Times are stored in whole seconds, as the other backends store them.
        let org = stored.get_or_insert_with(|| Organization {
            created_at: whole_seconds(candidate.created_at),
            ..candidate.clone()
        });
        Ok(org.clone())
    }
}

#[async_trait]
impl OrganizationAdmin for MemoryStore {
    async fn update_organization(
        &self,
        name: &DisplayName,
        primary_domain: &Domain,
    ) -> Result<Organization, StoreError> {
        let mut stored = write(&self.organization);
        let org = stored.as_mut().ok_or(StoreError::NotFound("organization"))?;
        org.name = name.clone();
        org.primary_domain = primary_domain.clone();
        Ok(org.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tessera_scope::ScopeSet;
    use time::Duration;

    use super::*;
    use crate::ids::RoleKey;
    use crate::projects::RoleClaims;
    use crate::testkit::{self, sample_token, t0};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// A user without a secret, as the tests here need it.
    fn sample_user(name: &str) -> ServiceUser {
        testkit::sample_user(name).0
    }

    impl MemoryStore {
        fn interned_shapes(&self) -> usize {
            self.shapes.len()
        }

        fn shape_of(&self, digest: &TokenDigest) -> Option<Arc<tokens::Shape>> {
            let (shard, fragment) = self.shard(digest);
            read(shard).get(fragment, digest).map(|e| e.shape.clone())
        }

        fn check_shards(&self) {
            for shard in self.tokens.iter() {
                read(shard).check(|d| self.fragment(d));
            }
        }
    }

    async fn round_trips(store: &MemoryStore, record: &TokenRecord) -> TestResult {
        store.insert_token(record).await?;
        assert_eq!(store.token_by_digest(&record.digest).await?.as_ref(), Some(record));
        Ok(())
    }

    #[tokio::test]
    async fn records_round_trip_with_any_jti() -> TestResult {
        let store = MemoryStore::new();
        let user = sample_user("round-trip");
        let generated = sample_token(&user, "generated", 60);
        round_trips(&store, &generated).await?;

        let mut roles = sample_token(&user, "roles", 60);
        let org = testkit::sample_organization("Acme", "acme.example");
        let other = testkit::sample_organization("Other", "other.example");
        roles.roles.insert(&RoleKey::new("reader")?, &org);
        roles.roles.insert(&RoleKey::new("reader")?, &other);
        roles.roles.insert(&RoleKey::new("writer")?, &org);
        roles.revoked_at = Some(t0() + Duration::seconds(5));
        round_trips(&store, &roles).await?;

        for (i, jti) in ["custom.jti-1", "AAAAAAAAAAAAAAAAAAAAAB", "x", &"_".repeat(128)]
            .into_iter()
            .enumerate()
        {
            let mut record = sample_token(&user, &format!("other-{i}"), 60);
            record.jti = TokenId::new(jti)?;
            record.scopes = ScopeSet::new();
            record.audience = vec![];
            record.roles = RoleClaims::default();
            round_trips(&store, &record).await?;
        }
        Ok(())
    }

    #[tokio::test]
    async fn tokens_of_one_grant_share_one_shape() -> TestResult {
        let store = MemoryStore::new();
        let user = sample_user("shared");
        let other = sample_user("other");
        let tokens: Vec<TokenRecord> =
            (0..200).map(|i| sample_token(&user, &format!("shared-{i}"), 60 + i)).collect();
        for record in &tokens {
            store.insert_token(record).await?;
        }
        assert_eq!(store.interned_shapes(), 1);
        let first = store.shape_of(&tokens[0].digest).ok_or("missing")?;
        for record in &tokens {
            let shape = store.shape_of(&record.digest).ok_or("missing")?;
            assert!(Arc::ptr_eq(&first, &shape), "tokens of one grant must share their shape");
        }

        let mut narrower = sample_token(&user, "narrower", 60);
        narrower.scopes = ScopeSet::parse("openid")?;
        store.insert_token(&narrower).await?;
        store.insert_token(&sample_token(&other, "other", 60)).await?;
        // The first grant again, after others: found in the interner.
        store.insert_token(&sample_token(&user, "again", 60)).await?;
        assert_eq!(store.interned_shapes(), 3);
        let again = store.shape_of(&TokenDigest::of("again")).ok_or("missing")?;
        assert!(Arc::ptr_eq(&first, &again));
        Ok(())
    }

    #[tokio::test]
    async fn purge_drops_shapes_no_token_holds() -> TestResult {
        let store = MemoryStore::new();
        let user = sample_user("purged");
        let kept = sample_user("kept");
        for i in 0..100 {
            store.insert_token(&sample_token(&user, &format!("short-{i}"), 10)).await?;
        }
        store.insert_token(&sample_token(&kept, "long", 100)).await?;
        assert_eq!(store.interned_shapes(), 2);

        assert_eq!(store.purge_expired_tokens(t0() + Duration::seconds(9)).await?, 0);
        assert_eq!(store.interned_shapes(), 2);
        assert_eq!(store.purge_expired_tokens(t0() + Duration::seconds(10)).await?, 100);
        assert_eq!(store.interned_shapes(), 1, "the expired grant's shape must go");
        store.check_shards();
        assert!(store.token_by_digest(&TokenDigest::of("long")).await?.is_some());

        assert_eq!(store.purge_expired_tokens(t0() + Duration::seconds(100)).await?, 1);
        assert_eq!(store.interned_shapes(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn deleting_a_user_drops_its_shapes() -> TestResult {
        let store = MemoryStore::new();
        let gone = sample_user("gone");
        let kept = sample_user("kept");
        store.create_service_user(&gone).await?;
        store.create_service_user(&kept).await?;
        for i in 0..50 {
            store.insert_token(&sample_token(&gone, &format!("gone-{i}"), 60)).await?;
            let mut narrower = sample_token(&gone, &format!("gone-narrow-{i}"), 60);
            narrower.scopes = ScopeSet::parse("openid")?;
            store.insert_token(&narrower).await?;
            store.insert_token(&sample_token(&kept, &format!("kept-{i}"), 60)).await?;
        }
        assert_eq!(store.interned_shapes(), 3);
        store.delete_service_user(&gone.username).await?;
        assert_eq!(store.interned_shapes(), 1);
        store.check_shards();
        assert_eq!(store.token_by_digest(&TokenDigest::of("gone-7")).await?, None);
        assert!(store.token_by_digest(&TokenDigest::of("kept-7")).await?.is_some());
        Ok(())
    }

    /// With two bits of hash fragment, most digests share their fragment with
    /// another: the overflow map and the moves of purges are exercised.
    #[tokio::test]
    async fn colliding_fragments_lose_nothing() -> TestResult {
        let mut store = MemoryStore::new();
        store.fragment_mask = 0b11;
        let user = sample_user("collide");
        let records: Vec<TokenRecord> =
            (0..3000).map(|i| sample_token(&user, &format!("c-{i}"), 1 + i % 7)).collect();
        for record in &records {
            store.insert_token(record).await?;
        }
        let overflowed: usize = store.tokens.iter().map(|s| read(s).overflowed()).sum();
        assert!(overflowed > 2000, "{overflowed}");
        store.check_shards();
        for record in records.iter().step_by(3) {
            assert!(matches!(store.insert_token(record).await, Err(StoreError::Conflict(_))));
            assert!(store.revoke_token(&record.digest, t0()).await?);
        }
        for secs in 1..=7 {
            let purged = store.purge_expired_tokens(t0() + Duration::seconds(secs)).await?;
            assert!(purged > 400, "{purged}");
            store.check_shards();
            for (i, record) in records.iter().enumerate() {
                let found = store.token_by_digest(&record.digest).await?;
                if record.expires_at <= t0() + Duration::seconds(secs) {
                    assert_eq!(found, None);
                } else {
                    let mut expected = record.clone();
                    if i % 3 == 0 {
                        expected.revoked_at = Some(t0());
                    }
                    assert_eq!(found, Some(expected));
                    // Still there, wherever the purges moved it: a second insert
                    // is refused.
                    let again = store.insert_token(record).await;
                    assert!(matches!(again, Err(StoreError::Conflict(_))), "{i} {again:?}");
                }
            }
        }
        assert_eq!(store.interned_shapes(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn times_are_whole_seconds() -> TestResult {
        let store = MemoryStore::new();
        let user = sample_user("times");
        let mut record = sample_token(&user, "fraction", 10);
        record.expires_at += Duration::milliseconds(700);
        store.insert_token(&record).await?;
        let found = store.token_by_digest(&record.digest).await?.ok_or("missing")?;
        assert_eq!(found.expires_at, t0() + Duration::seconds(10));
        assert!(store.revoke_token(&record.digest, t0() + Duration::milliseconds(1500)).await?);
        let found = store.token_by_digest(&record.digest).await?.ok_or("missing")?;
        assert_eq!(found.revoked_at, Some(t0() + Duration::seconds(1)));
        let purged = store.purge_expired_tokens(t0() + Duration::milliseconds(10_200)).await?;
        assert_eq!(purged, 1);
        Ok(())
    }
}
