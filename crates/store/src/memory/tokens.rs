//! The compact token map of [`MemoryStore`](super::MemoryStore).
//!
//! A live opaque token costs a fixed-size [`Entry`] (88 bytes) and one slot of a
//! small index, instead of a whole [`TokenRecord`] with its strings and vectors:
//!
//! - what the tokens of one grant share (user, client, scopes, audience, roles) is
//!   a [`Shape`], interned by [`Shapes`] so that every token of the grant points to
//!   one `Arc<Shape>`;
//! - the jti of a generated id (22 characters of base64url for 128 bits) is kept as
//!   its 16 bytes ([`Jti`]);
//! - times are whole seconds since the Unix epoch, as the SQL backends store them.
//!
//! Each shard keeps its entries densely in fixed-size chunks, and maps a 32-bit
//! fragment of each digest's keyed hash to the entry's position; the rare digest
//! whose fragment is already taken goes to a small overflow map keyed by the whole
//! digest. A hash table of 8-byte slots wastes little when it has just doubled, and
//! the chunks waste at most one chunk per shard.

use std::collections::HashMap;
use std::collections::hash_map::{Entry as MapEntry, RandomState};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use base64ct::{Base64UrlUnpadded, Encoding};
use tessera_scope::ScopeSet;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::ids::{TokenId, UserId, Username};
use crate::projects::RoleClaims;
use crate::records::{TokenDigest, TokenRecord};

/// Entries per chunk of a shard's entry list (about 44 KiB).
const CHUNK: usize = 512;

/// Shards of the shape interner.
const SHAPE_SHARDS: usize = 16;

/// The `revoked_at` of an entry that is not revoked.
const NOT_REVOKED: i64 = i64::MIN;

/// The shard of a keyed 64-bit hash among `shards`: bits 32 and up, which the
/// shard's own hash table does not use to place or tag the entry (it uses the low
/// bits and the top seven).
pub(super) fn shard_of(hash: u64, shards: usize) -> usize {
    (hash >> 32) as usize % shards
}

/// A hasher for keys that are already keyed hashes (or fragments of one): it only
/// spreads a 32-bit fragment over 64 bits, and passes a 64-bit hash through.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Prehashed(u64);

/// An odd constant with well-mixed bits (2^64 / golden ratio).
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by the keys of this module (u32 and u64); kept correct anyway.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(SPREAD);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(SPREAD);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type PrehashedMap<K, V> = HashMap<K, V, BuildHasherDefault<Prehashed>>;

/// What the tokens of one grant share.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Shape {
    pub(super) user_id: UserId,
    client_id: Username,
    scopes: ScopeSet,
    audience: Vec<String>,
    roles: RoleClaims,
}

impl Shape {
    fn of(record: &TokenRecord) -> Self {
        Self {
            user_id: record.user_id.clone(),
            client_id: record.client_id.clone(),
            scopes: record.scopes.clone(),
            audience: record.audience.clone(),
            roles: record.roles.clone(),
        }
    }

    /// Whether `record` has this shape.
    fn matches(&self, record: &TokenRecord) -> bool {
        self.user_id == record.user_id
            && self.client_id == record.client_id
            && self.scopes == record.scopes
            && self.audience == record.audience
            && self.roles == record.roles
    }
}

/// Keyed hash of a shape → the shape.
type ShapeShard = PrehashedMap<u64, Arc<Shape>>;

/// The interned shapes, sharded by a keyed hash of the shape. A shape no token
/// holds any more is dropped by [`Shapes::sweep`].
pub(super) struct Shapes {
    shards: Box<[Mutex<ShapeShard>]>,
    hasher: RandomState,
}

impl Shapes {
    pub(super) fn new() -> Self {
        Self {
            shards: (0..SHAPE_SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    fn hash(&self, record: &TokenRecord) -> u64 {
        let mut h = self.hasher.build_hasher();
        record.user_id.hash(&mut h);
        record.client_id.hash(&mut h);
        record.scopes.hash(&mut h);
        record.audience.hash(&mut h);
        record.roles.0.hash(&mut h);
        h.finish()
    }

    /// The shared shape of `record`.
    pub(super) fn intern(&self, record: &TokenRecord) -> Arc<Shape> {
        let hash = self.hash(record);
        let mut shard = lock(&self.shards[shard_of(hash, self.shards.len())]);
        match shard.entry(hash) {
            MapEntry::Occupied(e) if e.get().matches(record) => e.get().clone(),
            // Another shape with the same 64-bit keyed hash: correct, merely unshared.
            MapEntry::Occupied(_) => Arc::new(Shape::of(record)),
            MapEntry::Vacant(e) => e.insert(Arc::new(Shape::of(record))).clone(),
        }
    }

    /// Drops the shapes that only the interner holds.
    pub(super) fn sweep(&self) {
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            shard.retain(|_, shape| Arc::strong_count(shape) > 1);
            let len = shard.len();
            if shard.capacity() > 4 * len + 64 {
                shard.shrink_to(2 * len);
            }
        }
    }

    /// How many shapes are interned.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

impl fmt::Debug for Shapes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shapes").finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A token id: the 16 bytes of a generated one, or the id itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Jti {
    /// 22 characters of unpadded base64url that decode to 16 bytes and encode back
    /// to the same characters.
    Random([u8; 16]),
    /// Any other id.
    Other(TokenId),
}

impl Jti {
    pub(super) fn of(id: &TokenId) -> Self {
        match decode_random_id(id.as_str().as_bytes()) {
            Some(bytes) => Jti::Random(bytes),
            None => Jti::Other(id.clone()),
        }
    }

    fn to_token_id(&self) -> Result<TokenId, StoreError> {
        match self {
            Jti::Random(bytes) => {
                let mut text = [0u8; 22];
                let text = Base64UrlUnpadded::encode(bytes, &mut text)
                    .map_err(|e| StoreError::Corrupt(format!("token id: {e}")))?;
                TokenId::new(text).map_err(|e| StoreError::Corrupt(format!("token id: {e}")))
            }
            Jti::Other(id) => Ok(id.clone()),
        }
    }
}

/// The 16 bytes of a generated id: 22 characters of unpadded base64url in the
/// canonical form (the last character's four unused bits zero), so that encoding
/// the bytes gives the same text back; `None` for any other text. Ids are not
/// secret, so this decodes with plain table lookups rather than in constant time.
fn decode_random_id(text: &[u8]) -> Option<[u8; 16]> {
    let text: &[u8; 22] = text.try_into().ok()?;
    // Every character through the table, and one test at the end: random ids give a
    // branch per character nothing to predict.
    let mut invalid = 0u8;
    let mut sextet = |c: u8| {
        let value = SEXTETS[usize::from(c)];
        invalid |= value;
        u32::from(value & 0x3F)
    };
    let mut bytes = [0u8; 16];
    for (group, chunk) in text[..20].chunks_exact(4).enumerate() {
        let n = chunk.iter().fold(0u32, |n, &c| n << 6 | sextet(c));
        bytes[group * 3..group * 3 + 3].copy_from_slice(&n.to_be_bytes()[1..]);
    }
    let last = sextet(text[20]) << 6 | sextet(text[21]);
    if invalid & INVALID != 0 || last & 0xF != 0 {
        return None;
    }
    bytes[15] = (last >> 4) as u8;
    Some(bytes)
}

/// Marks a byte that is no character of base64url in [`SEXTETS`].
const INVALID: u8 = 0x80;

/// The value of each base64url character, [`INVALID`] for every other byte.
const SEXTETS: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        let c = match i {
            0..=25 => b'A' + i,
            26..=51 => b'a' + i - 26,
            52..=61 => b'0' + i - 52,
            62 => b'-',
            _ => b'_',
        };
        table[c as usize] = i;
        i += 1;
    }
    table
};

/// Whole seconds since the Unix epoch (the fraction of a second is dropped, as the
/// SQL backends drop it).
pub(super) fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn time(secs: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| StoreError::Corrupt(format!("token time: {e}")))
}

/// A token record, compactly.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) digest: TokenDigest,
    pub(super) jti: Jti,
    pub(super) shape: Arc<Shape>,
    issued_at: i64,
    pub(super) expires_at: i64,
    /// [`NOT_REVOKED`] unless revoked.
    revoked_at: i64,
}

impl Entry {
    /// The entry of `record`, with `shape` (the record's, interned) and `jti`
    /// (`Jti::of(&record.jti)`).
    pub(super) fn new(record: &TokenRecord, jti: Jti, shape: Arc<Shape>) -> Self {
        Self {
            digest: record.digest,
            jti,
            shape,
            issued_at: unix(record.issued_at),
            expires_at: unix(record.expires_at),
            revoked_at: record.revoked_at.map_or(NOT_REVOKED, unix),
        }
    }

    /// The record again, equal to the one stored.
    pub(super) fn record(&self) -> Result<TokenRecord, StoreError> {
        let shape = &*self.shape;
        Ok(TokenRecord {
            digest: self.digest,
            jti: self.jti.to_token_id()?,
            user_id: shape.user_id.clone(),
            client_id: shape.client_id.clone(),
            scopes: shape.scopes.clone(),
            audience: shape.audience.clone(),
            roles: shape.roles.clone(),
            issued_at: time(self.issued_at)?,
            expires_at: time(self.expires_at)?,
            revoked_at: match self.revoked_at {
                NOT_REVOKED => None,
                secs => Some(time(secs)?),
            },
        })
    }

    /// Marks the entry revoked at `now` unless it was already.
    pub(super) fn revoke(&mut self, now: OffsetDateTime) {
        if self.revoked_at == NOT_REVOKED {
            self.revoked_at = unix(now);
        }
    }
}

/// Entries kept densely in chunks of [`CHUNK`]; a position is a `u32`.
#[derive(Default)]
struct Entries {
    chunks: Vec<Vec<Entry>>,
    len: usize,
}

impl Entries {
    fn get(&self, slot: u32) -> &Entry {
        let slot = slot as usize;
        &self.chunks[slot / CHUNK][slot % CHUNK]
    }

    fn get_mut(&mut self, slot: u32) -> &mut Entry {
        let slot = slot as usize;
        &mut self.chunks[slot / CHUNK][slot % CHUNK]
    }

    /// Appends `entry`; returns its position, or gives it back when the positions
    /// are exhausted.
    fn push(&mut self, entry: Entry) -> Result<u32, Entry> {
        let Ok(slot) = u32::try_from(self.len) else {
            return Err(entry);
        };
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(entry),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(entry);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
        Ok(slot)
    }

    /// Removes the entry at `slot` and moves the last entry into its place.
    fn swap_remove(&mut self, slot: u32) -> Entry {
        let last = self.chunks.last_mut().and_then(Vec::pop);
        let Some(last) = last else { unreachable_empty() };
        if self.chunks.last().is_some_and(Vec::is_empty) {
            self.chunks.pop();
        }
        self.len -= 1;
        if slot as usize == self.len { last } else { std::mem::replace(self.get_mut(slot), last) }
    }

    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.chunks.iter().flatten()
    }
}

#[cold]
fn unreachable_empty() -> ! {
    panic!("memory store: removing from an empty token shard")
}

/// One shard of the token map.
#[derive(Default)]
pub(super) struct Tokens {
    /// Digest hash fragment → position in `entries`, for the first digest with it.
    index: PrehashedMap<u32, u32>,
    /// Position of each digest whose fragment another digest held in `index` when
    /// it was inserted.
    overflow: HashMap<TokenDigest, u32>,
    entries: Entries,
    /// The shape of the last insert: the next token of the same grant needs no
    /// trip to the interner.
    last_shape: Option<Arc<Shape>>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens").field("len", &self.entries.len).finish_non_exhaustive()
    }
}

impl Tokens {
    fn find(&self, fragment: u32, digest: &TokenDigest) -> Option<u32> {
        if let Some(&slot) = self.index.get(&fragment)
            && self.entries.get(slot).digest == *digest
        {
            return Some(slot);
        }
        if self.overflow.is_empty() { None } else { self.overflow.get(digest).copied() }
    }

    pub(super) fn get(&self, fragment: u32, digest: &TokenDigest) -> Option<&Entry> {
        self.find(fragment, digest).map(|slot| self.entries.get(slot))
    }

    pub(super) fn get_mut(&mut self, fragment: u32, digest: &TokenDigest) -> Option<&mut Entry> {
        self.find(fragment, digest).map(|slot| self.entries.get_mut(slot))
    }

    /// Inserts `record` (with `jti`, `Jti::of` its id), its shape interned in
    /// `shapes` unless it is the last insert's; a conflict if its digest is in the
    /// shard already. The index is searched once for both.
    pub(super) fn insert_new(
        &mut self,
        fragment: u32,
        record: &TokenRecord,
        jti: Jti,
        shapes: &Shapes,
    ) -> Result<(), StoreError> {
        let digest = record.digest;
        let Self { index, overflow, entries, last_shape } = self;
        let vacant = match index.entry(fragment) {
            MapEntry::Occupied(held) if entries.get(*held.get()).digest == digest => {
                return Err(StoreError::Conflict("token"));
            }
            MapEntry::Occupied(_) => None,
            MapEntry::Vacant(vacant) => Some(vacant),
        };
        // A digest whose fragment another held when it was inserted is in `overflow`,
        // whether or not that other one is still here.
        if !overflow.is_empty() && overflow.contains_key(&digest) {
            return Err(StoreError::Conflict("token"));
        }
        let shape = match last_shape {
            Some(shape) if shape.matches(record) => shape.clone(),
            _ => {
                let shape = shapes.intern(record);
                *last_shape = Some(shape.clone());
                shape
            }
        };
        let slot = entries
            .push(Entry::new(record, jti, shape))
            .map_err(|_| StoreError::Backend("memory store: token shard is full".into()))?;
        match vacant {
            Some(vacant) => {
                vacant.insert(slot);
            }
            None => {
                overflow.insert(digest, slot);
            }
        }
        Ok(())
    }

    /// Removes every entry for which `pred` holds; `fragment` gives the hash
    /// fragment of a digest. Returns how many were removed. Forgets the last shape.
    pub(super) fn remove_where(
        &mut self,
        pred: impl Fn(&Entry) -> bool,
        fragment: impl Fn(&TokenDigest) -> u32,
    ) -> u64 {
        self.last_shape = None;
        let mut removed = 0;
        let mut slot = 0u32;
        while (slot as usize) < self.entries.len {
            if !pred(self.entries.get(slot)) {
                slot += 1;
                continue;
            }
            let digest = self.entries.get(slot).digest;
            self.unlink(fragment(&digest), &digest, slot);
            drop(self.entries.swap_remove(slot));
            removed += 1;
            // The last entry, if it was not the one removed, now sits at `slot`.
            if (slot as usize) < self.entries.len {
                let moved = self.entries.get(slot).digest;
                // Its old position: the length before the removal, less one.
                let from = self.entries.len as u32;
                self.relink(fragment(&moved), &moved, from, slot);
            }
        }
        if removed > 0 {
            let len = self.entries.len;
            if self.index.capacity() > 4 * len + 64 {
                self.index.shrink_to(2 * len);
            }
            if self.overflow.capacity() > 4 * self.overflow.len() + 64 {
                self.overflow.shrink_to(2 * self.overflow.len());
            }
        }
        removed
    }

    fn unlink(&mut self, fragment: u32, digest: &TokenDigest, slot: u32) {
        if self.index.get(&fragment) == Some(&slot) {
            self.index.remove(&fragment);
        } else {
            self.overflow.remove(digest);
        }
    }

    fn relink(&mut self, fragment: u32, digest: &TokenDigest, from: u32, to: u32) {
        match self.index.get_mut(&fragment) {
            Some(slot) if *slot == from => *slot = to,
            _ => {
                if let Some(slot) = self.overflow.get_mut(digest) {
                    *slot = to;
                }
            }
        }
    }

    /// Checks that every entry is found at its own position; for tests.
    #[cfg(test)]
    pub(super) fn check(&self, fragment: impl Fn(&TokenDigest) -> u32) {
        for (slot, entry) in self.entries.iter().enumerate() {
            let found = self.find(fragment(&entry.digest), &entry.digest);
            assert_eq!(found.map(|s| s as usize), Some(slot));
        }
        assert_eq!(self.index.len() + self.overflow.len(), self.entries.len);
    }

    #[cfg(test)]
    pub(super) fn overflowed(&self) -> usize {
        self.overflow.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn entries_are_compact() {
        assert_eq!(std::mem::size_of::<Entry>(), 88);
    }

    #[test]
    fn ids_decode_as_base64ct_decodes_canonical_text() {
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut texts: Vec<String> = Vec::new();
        for _ in 0..2000 {
            let mut bytes = [0u8; 16];
            for b in &mut bytes {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            let text = Base64UrlUnpadded::encode_string(&bytes);
            assert_eq!(decode_random_id(text.as_bytes()), Some(bytes), "{text}");
            texts.push(text);
        }
        // Non-canonical last characters, other alphabets, other lengths.
        let base = &texts[0][..21];
        for last in (b'A'..=b'Z').chain(b'a'..=b'z').chain(b'0'..=b'9').chain(*b"-_+/=") {
            let text = format!("{base}{}", last as char);
            let mut bytes = [0u8; 16];
            let strict = matches!(Base64UrlUnpadded::decode(&text, &mut bytes), Ok(d) if d.len() == 16)
                && Base64UrlUnpadded::encode_string(&bytes) == text;
            assert_eq!(decode_random_id(text.as_bytes()).is_some(), strict, "{text}");
        }
        // Every byte at every position.
        for at in 0..22 {
            for byte in 0..=255u8 {
                let mut text = texts[3].clone().into_bytes();
                text[at] = byte;
                let mut bytes = [0u8; 16];
                let strict = std::str::from_utf8(&text).is_ok_and(|t| {
                    matches!(Base64UrlUnpadded::decode(t, &mut bytes), Ok(d) if d.len() == 16)
                        && Base64UrlUnpadded::encode_string(&bytes) == t
                });
                let decoded = decode_random_id(&text);
                assert_eq!(decoded.is_some(), strict, "{at} {byte}");
                if strict {
                    assert_eq!(decoded, Some(bytes), "{at} {byte}");
                }
            }
        }
        for text in
            ["", "short", &texts[1][..21], &format!("{}A", texts[2]), "AAAAAAAAAAAAAAAAAAAA+A"]
        {
            assert_eq!(decode_random_id(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn generated_jtis_are_kept_as_bytes() -> Result<(), Box<dyn std::error::Error>> {
        for _ in 0..64 {
            let id = TokenId::generate()?;
            let jti = Jti::of(&id);
            assert!(matches!(jti, Jti::Random(_)), "{id:?}");
            assert_eq!(jti.to_token_id()?, id);
        }
        // 22 characters, but not the canonical encoding of 16 bytes (trailing bits
        // set), or not base64url at all, or another length.
        for s in ["AAAAAAAAAAAAAAAAAAAAAB", "AAAAAAAAAAAAAAAAAAAA.A", "short", &"a".repeat(128)] {
            let id = TokenId::new(s)?;
            let jti = Jti::of(&id);
            assert!(matches!(jti, Jti::Other(_)), "{s}");
            assert_eq!(jti.to_token_id()?, id);
        }
        Ok(())
    }
}
