use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hash};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::client_keys::{ClientKey, ClientKeyStore, KeyOwner};
use crate::clock::whole_seconds;
use crate::error::StoreError;
use crate::ids::{ClientId, ProjectId, TokenId, UserId, Username};
use crate::keys::{SigningKeyRecord, SigningKeyStore};
use crate::projects::{ApiApp, ApiAppPatch, Project, ProjectStore, RoleGrant};
use crate::records::DisplayName;
use crate::records::{ServiceUser, ServiceUserPatch, TokenDigest, TokenRecord};
use crate::traits::{ServiceUserStore, Store, TokenStore};

/// Number of independently locked shards of the token map. Sharding keeps a
/// growing map from stalling every request while one shard rehashes.
const TOKEN_SHARDS: usize = 64;

/// An in-memory backend: fast, and gone when the process ends. For tests, demos
/// and single-process deployments that can afford to lose tokens on restart.
#[derive(Debug)]
pub struct MemoryStore {
    users: RwLock<Users>,
    tokens: Box<[RwLock<Tokens>]>,
    hasher: std::collections::hash_map::RandomState,
    keys: RwLock<Vec<SigningKeyRecord>>,
    revoked_jtis: RwLock<HashMap<TokenId, OffsetDateTime>>,
    used_assertions: RwLock<HashMap<(String, String), OffsetDateTime>>,
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
    client_keys: BTreeMap<String, ClientKey>,
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
            client_keys: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Tokens {
    by_digest: HashMap<TokenDigest, TokenRecord>,
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
            hasher: Default::default(),
            keys: RwLock::default(),
            revoked_jtis: RwLock::default(),
            used_assertions: RwLock::default(),
        }
    }

    fn users(&self) -> RwLockReadGuard<'_, Users> {
        self.users.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn users_mut(&self) -> RwLockWriteGuard<'_, Users> {
        self.users.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn shard(&self, digest: &TokenDigest) -> &RwLock<Tokens> {
        let index = self.hasher.hash_one(digest) as usize % self.tokens.len();
        &self.tokens[index]
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
impl ServiceUserStore for MemoryStore {
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

    async fn list_service_users(&self) -> Result<Vec<ServiceUser>, StoreError> {
        let mut all: Vec<ServiceUser> = self.users().by_name.values().cloned().collect();
        all.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(all)
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
            user
        };
        for shard in self.tokens.iter() {
            remove_where(&mut write(shard).by_digest, |r| r.user_id == removed.id);
        }
        Ok(())
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn insert_token(&self, record: &TokenRecord) -> Result<(), StoreError> {
        let mut shard = write(self.shard(&record.digest));
        if shard.by_digest.contains_key(&record.digest) {
            return Err(StoreError::Conflict("token"));
        }
        shard.by_digest.insert(record.digest, record.clone());
        Ok(())
    }

    async fn token_by_digest(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        Ok(read(self.shard(digest)).by_digest.get(digest).cloned())
    }

    /// Scans every shard: lookups by id are not on the request path, and an index
    /// would cost every insert.
    async fn token_by_jti(&self, jti: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self
            .tokens
            .iter()
            .find_map(|shard| read(shard).by_digest.values().find(|r| &r.jti == jti).cloned()))
    }

    async fn revoke_token(
        &self,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut shard = write(self.shard(digest));
        match shard.by_digest.get_mut(digest) {
            Some(record) => {
                record.revoked_at.get_or_insert(whole_seconds(now));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let records: u64 = self
            .tokens
            .iter()
            .map(|shard| remove_where(&mut write(shard).by_digest, |r| r.expires_at <= now))
            .sum();
        let jtis = remove_where(&mut write(&self.revoked_jtis), |expires_at| *expires_at <= now);
        let used = remove_where(&mut write(&self.used_assertions), |expires_at| *expires_at <= now);
        Ok(records + jtis + used)
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
}

#[async_trait]
impl ProjectStore for MemoryStore {
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

    async fn project_by_id(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        Ok(self.users().projects.get(id).cloned())
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
        users.apps.insert(app.client_id.clone(), app.clone());
        Ok(())
    }

    async fn api_app_by_client_id(
        &self,
        client_id: &ClientId,
    ) -> Result<Option<ApiApp>, StoreError> {
        Ok(self.users().apps.get(client_id).cloned())
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

    async fn grants_of_user(&self, user_id: &UserId) -> Result<Vec<RoleGrant>, StoreError> {
        Ok(self.users().grants.iter().filter(|g| &g.user_id == user_id).cloned().collect())
    }
}

#[async_trait]
impl ClientKeyStore for MemoryStore {
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

    async fn client_key(&self, key_id: &str) -> Result<Option<ClientKey>, StoreError> {
        Ok(self.users().client_keys.get(key_id).cloned())
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
impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
