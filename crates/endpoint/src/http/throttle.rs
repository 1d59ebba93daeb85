//! Throttling of failed client authentication (RFC 6749 §2.3.1 asks for protection
//! against brute force on password-based client authentication).
//!
//! Failures are counted in fixed windows in three tables, checked in this order:
//!
//! 1. per (client ID, address): a client that keeps failing from one address is
//!    stopped there first, without affecting the same client elsewhere;
//! 2. per address: one address trying many client IDs (credential stuffing);
//! 3. per client ID: a client ID attacked from many addresses, a last resort with a
//!    much higher threshold, so an attacker on a few addresses cannot lock a
//!    legitimate client out. An address that authenticated the client successfully
//!    within the last [`KNOWN_ADDRESS_TTL`] is exempt from this limit (not from the
//!    other two): client IDs are no secret, and failures from strangers must not lock
//!    the client out of the address it works from.
//!
//! While a window is over its limit, every attempt it covers is answered 429 with
//! `Retry-After`, whether or not its credentials are right, so guessing stops.
//! Memory is bounded: each table holds at most a fixed number of entries, keyed by a
//! keyed hash, and makes room by dropping expired windows, then the oldest.

// Public for the fuzz targets and benchmarks, through `internals`.
#![cfg_attr(not(feature = "internals"), allow(unreachable_pub))]

use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// At most `failures` failed attempts per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Failures allowed in a window; the next attempt is refused.
    pub failures: u32,
    /// The length of a window.
    pub window: Duration,
}

/// Thresholds of the three tables, and their size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Per client ID and address (default 10 failures a minute).
    pub per_client_address: Limit,
    /// Per address, across client IDs (default 100 a minute).
    pub per_address: Limit,
    /// Per client ID, across addresses (default 1000 a minute).
    pub per_client: Limit,
    /// Entries each table may hold (default 65 536).
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        Self {
            per_client_address: Limit { failures: 10, window: minute },
            per_address: Limit { failures: 100, window: minute },
            per_client: Limit { failures: 1000, window: minute },
            max_entries: 65_536,
        }
    }
}

/// How long an address that authenticated a client stays exempt from that client's
/// per-client limit: a day.
pub const KNOWN_ADDRESS_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Counts failed authentications and refuses attempts over the limits.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    pair: Table,
    address: Table,
    client: Table,
    known: KnownAddresses,
    hasher: RandomState,
    /// Tells this throttle's keys apart from another's in a thread's [`LAST_PAIR`].
    id: u64,
}

/// The numbers that tell throttles apart.
static THROTTLE_IDS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The last pair key this thread computed: the throttle's id, the client ID and
    /// address (cut to its /64 prefix) it is of, and the key. A client that keeps
    /// authenticating from one address needs the keyed hash once, not per success.
    static LAST_PAIR: RefCell<Option<(u64, String, IpAddr, u64)>> = const { RefCell::new(None) };
}

/// The (client, address) pairs that authenticated recently: a fixed array of slots,
/// each a pair's tag (the high half of its keyed hash) and the minute of its last
/// success, written without locks. A pair whose slot another pair took is merely
/// forgotten (it meets the per-client limit again); a stranger's pair matches a slot
/// only by guessing 32 bits of a keyed hash.
#[derive(Debug)]
struct KnownAddresses {
    slots: Box<[AtomicU64]>,
    epoch: Instant,
}

const KNOWN_SLOTS: usize = 16_384;
const TAG: u64 = 0xFFFF_FFFF_0000_0000;

impl KnownAddresses {
    fn new() -> Self {
        Self { slots: (0..KNOWN_SLOTS).map(|_| AtomicU64::new(0)).collect(), epoch: Instant::now() }
    }

    /// Minutes since the epoch, plus one so that an empty slot (0) matches nothing.
    fn minute(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() / 60 + 1
    }

    fn slot(&self, key: u64) -> &AtomicU64 {
        &self.slots[(key as usize) % KNOWN_SLOTS]
    }

    fn remember(&self, key: u64, now: Instant) {
        let slot = self.slot(key);
        let value = (key & TAG) | self.minute(now);
        // Written only when it changes (once a minute for a busy client): a store on
        // every success would move the slot's cache line between cores each time.
        if slot.load(Ordering::Relaxed) != value {
            slot.store(value, Ordering::Relaxed);
        }
    }

    fn contains(&self, key: u64, now: Instant) -> bool {
        let value = self.slot(key).load(Ordering::Relaxed);
        let (tag, minute) = (value & TAG, value & !TAG);
        minute != 0
            && tag == key & TAG
            && self.minute(now).saturating_sub(minute) <= KNOWN_ADDRESS_TTL.as_secs() / 60
    }
}

const SHARDS: usize = 16;

#[derive(Debug)]
struct Table {
    limit: Limit,
    per_shard: usize,
    shards: Box<[Mutex<HashMap<u64, Window>>]>,
    /// Entries in all shards, kept with every change under a shard's lock: while it
    /// is zero, which is the case unless clients have recently failed, a request
    /// needs neither keyed hashes nor locks.
    entries: AtomicUsize,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl Throttle {
    /// A throttle with `config`.
    pub fn new(config: ThrottleConfig) -> Self {
        let table = |limit| Table {
            limit,
            per_shard: config.max_entries.div_ceil(SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            entries: AtomicUsize::new(0),
        };
        Self {
            pair: table(config.per_client_address),
            address: table(config.per_address),
            client: table(config.per_client),
            known: KnownAddresses::new(),
            config,
            hasher: RandomState::new(),
            id: THROTTLE_IDS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// `Err(seconds)` when an attempt by `client_id` from `addr` must wait that long.
    pub fn check(&self, client_id: &str, addr: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        if self.is_clear() {
            return Ok(());
        }
        let keys = self.keys(client_id, addr);
        for (table, key) in [(&self.pair, keys.0), (&self.address, keys.1)] {
            if let Some(key) = key {
                table.check(key, now)?;
            }
        }
        if let Some(key) = keys.2 {
            let known = keys.0.is_some_and(|pair| self.known.contains(pair, now));
            if !known {
                self.client.check(key, now)?;
            }
        }
        Ok(())
    }

    /// Whether no failure is counted at all (the usual case), so that every attempt
    /// passes [`check`](Self::check) without hashing, locking or reading the clock.
    pub fn is_clear(&self) -> bool {
        [&self.pair, &self.address, &self.client].iter().all(|t| t.is_empty())
    }

    /// Counts a failed attempt.
    pub fn failure(&self, client_id: &str, addr: Option<IpAddr>, now: Instant) {
        let keys = self.keys(client_id, addr);
        for (table, key) in [(&self.pair, keys.0), (&self.address, keys.1), (&self.client, keys.2)]
        {
            if let Some(key) = key {
                table.fail(key, now);
            }
        }
    }

    /// A successful attempt clears the failures of its client ID and address, and
    /// exempts the address from the client's per-client limit for
    /// [`KNOWN_ADDRESS_TTL`].
    pub fn success(&self, client_id: &str, addr: Option<IpAddr>, now: Instant) {
        let Some(key) = self.pair_key(client_id, addr) else { return };
        self.known.remember(key, now);
        if !self.pair.is_empty() {
            self.pair.clear(key);
        }
    }

    /// The key of the (client, address) pair alone: one keyed hash, not three.
    fn pair_key(&self, client_id: &str, addr: Option<IpAddr>) -> Option<u64> {
        let addr = addr.filter(|_| !client_id.is_empty()).map(prefix_64)?;
        let last = LAST_PAIR.with_borrow(|last| match last {
            Some((id, client, address, key))
                if *id == self.id && *address == addr && client == client_id =>
            {
                Some(*key)
            }
            _ => None,
        });
        if last.is_some() {
            return last;
        }
        let mut hasher = self.hasher.build_hasher();
        ("pair", client_id, addr).hash(&mut hasher);
        let key = std::hash::Hasher::finish(&hasher);
        LAST_PAIR.with_borrow_mut(|last| match last {
            Some((id, client, address, held)) => {
                (*id, *address, *held) = (self.id, addr, key);
                client.clear();
                client.push_str(client_id);
            }
            None => *last = Some((self.id, client_id.to_owned(), addr, key)),
        });
        Some(key)
    }

    /// The keys of the three tables; an IPv6 address counts by its /64 prefix, which
    /// one host usually controls whole.
    fn keys(
        &self,
        client_id: &str,
        addr: Option<IpAddr>,
    ) -> (Option<u64>, Option<u64>, Option<u64>) {
        let addr = addr.map(prefix_64);
        let hash = |value: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
            let mut hasher = self.hasher.build_hasher();
            value(&mut hasher);
            std::hash::Hasher::finish(&hasher)
        };
        let client = (!client_id.is_empty()).then(|| hash(&|h| ("client", client_id).hash(h)));
        let address = addr.map(|a| hash(&|h| ("address", a).hash(h)));
        let pair = match (client.is_some(), addr) {
            (true, Some(a)) => Some(hash(&|h| ("pair", client_id, a).hash(h))),
            _ => None,
        };
        (pair, address, client)
    }
}

/// An IPv6 address cut to its /64 prefix, which one host usually controls whole; an
/// IPv4 address as it is.
fn prefix_64(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
        v4 => v4,
    }
}

impl Table {
    fn shard(&self, key: u64) -> MutexGuard<'_, HashMap<u64, Window>> {
        self.shards[(key as usize) % SHARDS].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_empty(&self) -> bool {
        self.entries.load(Ordering::Acquire) == 0
    }

    /// Runs `change` on the shard of `key`, keeping the count of entries.
    fn change<T>(&self, key: u64, change: impl FnOnce(&mut HashMap<u64, Window>) -> T) -> T {
        let mut shard = self.shard(key);
        let before = shard.len();
        let result = change(&mut shard);
        let after = shard.len();
        if after > before {
            self.entries.fetch_add(after - before, Ordering::AcqRel);
        } else if before > after {
            self.entries.fetch_sub(before - after, Ordering::AcqRel);
        }
        result
    }

    fn check(&self, key: u64, now: Instant) -> Result<(), u64> {
        match self.shard(key).get(&key) {
            Some(w) if w.failures >= self.limit.failures => {
                let elapsed = now.saturating_duration_since(w.started);
                match self.limit.window.checked_sub(elapsed) {
                    Some(left) if !left.is_zero() => Err(left.as_secs().max(1)),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    fn fail(&self, key: u64, now: Instant) {
        self.change(key, |shard| self.fail_in(shard, key, now));
    }

    fn fail_in(&self, shard: &mut HashMap<u64, Window>, key: u64, now: Instant) {
        if !shard.contains_key(&key) && shard.len() >= self.per_shard {
            let window = self.limit.window;
            shard.retain(|_, w| now.saturating_duration_since(w.started) < window);
            if shard.len() >= self.per_shard
                && let Some(oldest) = shard.iter().min_by_key(|(_, w)| w.started).map(|(k, _)| *k)
            {
                shard.remove(&oldest);
            }
        }
        let window = shard.entry(key).or_insert(Window { started: now, failures: 0 });
        if now.saturating_duration_since(window.started) >= self.limit.window {
            *window = Window { started: now, failures: 0 };
        }
        window.failures = window.failures.saturating_add(1);
    }

    fn clear(&self, key: u64) {
        self.change(key, |shard| shard.remove(&key));
    }

    #[cfg(any(test, feature = "internals"))]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len()).sum()
    }
}

#[cfg(any(test, feature = "internals"))]
impl Throttle {
    /// Entries held in each table (per client and address, per address, per client).
    pub fn entries(&self) -> (usize, usize, usize) {
        (self.pair.len(), self.address.len(), self.client.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    fn small() -> Throttle {
        let second = Duration::from_secs(10);
        Throttle::new(ThrottleConfig {
            per_client_address: Limit { failures: 3, window: second },
            per_address: Limit { failures: 5, window: second },
            per_client: Limit { failures: 8, window: second },
            max_entries: 64,
        })
    }

    #[test]
    fn a_pair_is_stopped_without_stopping_the_client_elsewhere() {
        let t = small();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.check("svc", addr("10.0.0.1"), now), Ok(()));
            t.failure("svc", addr("10.0.0.1"), now);
        }
        assert_eq!(t.check("svc", addr("10.0.0.1"), now), Err(10));
        assert_eq!(t.check("svc", addr("10.0.0.2"), now), Ok(()), "another address is free");
        assert_eq!(t.check("svc", addr("10.0.0.1"), now + Duration::from_secs(9)), Err(1));
        assert_eq!(
            t.check("svc", addr("10.0.0.1"), now + Duration::from_secs(10)),
            Ok(()),
            "window over"
        );
    }

    #[test]
    fn one_address_trying_many_clients_is_stopped() {
        let t = small();
        let now = Instant::now();
        for i in 0..5 {
            t.failure(&format!("client-{i}"), addr("10.0.0.9"), now);
        }
        assert!(t.check("client-new", addr("10.0.0.9"), now).is_err());
        assert!(t.check("client-new", addr("10.0.0.8"), now).is_ok());
    }

    #[test]
    fn a_client_attacked_from_many_addresses_hits_the_global_limit_last() {
        let t = small();
        let now = Instant::now();
        for i in 0..7 {
            t.failure("svc", addr(&format!("10.1.0.{i}")), now);
        }
        assert!(t.check("svc", addr("10.9.9.9"), now).is_ok(), "under the global limit");
        t.failure("svc", addr("10.1.0.8"), now);
        assert!(t.check("svc", addr("10.9.9.9"), now).is_err(), "over it");
    }

    #[test]
    fn strangers_failing_from_many_addresses_do_not_lock_out_a_known_address() {
        let t = small();
        let now = Instant::now();
        t.success("svc", addr("10.0.0.1"), now);
        // Eight failures from eight other addresses trip the per-client limit…
        for i in 0..8 {
            t.failure("svc", addr(&format!("10.2.0.{i}")), now);
        }
        assert!(t.check("svc", addr("10.9.9.9"), now).is_err(), "a stranger is refused");
        // …but not for the address the client authenticated from.
        assert_eq!(t.check("svc", addr("10.0.0.1"), now), Ok(()));
        // Another client's known address is no exemption for this one.
        t.success("other", addr("10.3.0.1"), now);
        assert!(t.check("svc", addr("10.3.0.1"), now).is_err());
        // The exemption lasts a day, and covers only the per-client limit: the known
        // address failing itself is stopped by the pair limit.
        let later = now + KNOWN_ADDRESS_TTL + Duration::from_secs(120);
        for i in 0..8 {
            t.failure("svc", addr(&format!("10.2.1.{i}")), later);
        }
        assert!(t.check("svc", addr("10.0.0.1"), later).is_err(), "forgotten after a day");
        for _ in 0..3 {
            t.failure("svc", addr("10.0.0.1"), now);
        }
        assert!(t.check("svc", addr("10.0.0.1"), now).is_err(), "the pair limit still holds");
    }

    #[test]
    fn the_remembered_pair_key_is_the_key_of_its_own_throttle_and_pair() {
        let (one, two) = (small(), small());
        let pairs = [
            ("svc", addr("10.0.0.1")),
            ("svc", addr("10.0.0.1")),
            ("svc", addr("10.0.0.2")),
            ("other", addr("10.0.0.2")),
            ("svc", addr("2001:db8::1")),
            ("svc", addr("2001:db8::2")),
            ("svc", addr("2001:db9::2")),
            ("", addr("10.0.0.1")),
            ("svc", None),
        ];
        for _ in 0..2 {
            for throttle in [&one, &two, &one] {
                for (client, address) in pairs {
                    let expected = throttle.keys(client, address).0;
                    assert_eq!(
                        throttle.pair_key(client, address),
                        expected,
                        "{client} {address:?}"
                    );
                    assert_eq!(
                        throttle.pair_key(client, address),
                        expected,
                        "{client} {address:?}"
                    );
                }
            }
        }
        assert_ne!(one.pair_key("svc", addr("10.0.0.1")), two.pair_key("svc", addr("10.0.0.1")));
    }

    #[test]
    fn success_clears_the_pair_and_ipv6_counts_by_prefix() {
        let t = small();
        let now = Instant::now();
        t.failure("svc", addr("2001:db8::1"), now);
        t.failure("svc", addr("2001:db8::2"), now);
        t.failure("svc", addr("2001:db8::3"), now);
        assert!(t.check("svc", addr("2001:db8::ffff"), now).is_err(), "one /64");
        t.success("svc", addr("2001:db8::9"), now);
        assert!(t.check("svc", addr("2001:db8::1"), now).is_ok());
    }

    #[test]
    fn memory_is_bounded_whatever_the_attacker_sends() {
        let t = small();
        let now = Instant::now();
        for i in 0..10_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            t.failure(&format!("random-{i}"), Some(ip), now);
        }
        let (pair, address, client) = t.entries();
        let cap = 64usize.div_ceil(SHARDS) * SHARDS;
        assert!(pair <= cap && address <= cap && client <= cap, "{pair} {address} {client}");
        assert_counts_match(&t);
    }

    fn assert_counts_match(t: &Throttle) {
        for table in [&t.pair, &t.address, &t.client] {
            assert_eq!(table.entries.load(Ordering::Acquire), table.len());
        }
    }

    #[test]
    fn the_entry_counts_follow_failures_evictions_and_successes() {
        let t = small();
        let now = Instant::now();
        assert!(t.pair.is_empty() && t.address.is_empty() && t.client.is_empty());
        t.failure("svc", addr("10.0.0.1"), now);
        assert_eq!(t.entries(), (1, 1, 1));
        assert_counts_match(&t);
        // A failure without a client ID counts the address only.
        t.failure("", addr("10.0.0.2"), now);
        assert_eq!(t.entries(), (1, 2, 1));
        assert_counts_match(&t);
        // Success clears the pair; the address and client windows run out on their own.
        t.success("svc", addr("10.0.0.1"), now);
        assert_eq!(t.entries(), (0, 2, 1));
        assert_counts_match(&t);
        assert!(t.pair.is_empty());
        // With failures elsewhere, a check still finds an address over its limit.
        for _ in 0..5 {
            t.failure("other", addr("10.0.0.3"), now);
        }
        assert!(t.check("svc", addr("10.0.0.3"), now).is_err());
        assert!(t.check("svc", addr("10.0.0.4"), now).is_ok());
        // Expired windows are dropped when a full shard makes room: counts follow.
        let later = now + Duration::from_secs(60);
        for i in 0..200u32 {
            t.failure(&format!("c{i}"), Some(IpAddr::from((i + 1000).to_be_bytes())), later);
        }
        assert_counts_match(&t);
    }
}
