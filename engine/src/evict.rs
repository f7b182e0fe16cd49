//! `maxmemory` eviction: Redis's `evict.c`, with the same approximations.
//!
//! - Each entry keeps Redis's 24-bit `lru` field ([`crate::db::Entry::lru`]):
//!   under LRU (and random/TTL) policies the LRU clock in seconds, under LFU
//!   policies 16 bits of minutes and an 8-bit logarithmic counter.
//! - Candidates are sampled (`maxmemory-samples` per db) and merged into a
//!   pool of the 16 best ([`POOL_SIZE`]); the best still-existing key is
//!   evicted, and the pool survives between evictions, which is what makes
//!   the approximation good.
//! - `maxmemory-eviction-tenacity` bounds the work per call. Redis bounds it
//!   in microseconds; the engine reads no clock, so the bound is a number of
//!   keys (one key standing for one microsecond of Redis's budget). Over
//!   budget, eviction is "running": commands are not refused, and the rest
//!   is done on the next command or tick (Redis's eviction time proc).
//!
//! All sampling draws from the node's seeded RNG, so a seed replays the same
//! evictions.

use crate::node::{Client, Node};
use bytes::Bytes;

/// Redis's LRU clock is 24 bits of seconds (LRU_CLOCK_MAX).
pub const LRU_CLOCK_MAX: u32 = (1 << 24) - 1;
/// A new key's LFU counter (LFU_INIT_VAL): new keys are not evicted first.
pub const LFU_INIT_VAL: u32 = 5;
/// Eviction pool size (EVPOOL_SIZE).
pub const POOL_SIZE: usize = 16;
/// The reply for a deny-oom command over the limit (shared.oomerr).
pub const OOM_ERROR: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// The `maxmemory-policy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    NoEviction,
    AllKeysLru,
    AllKeysLfu,
    AllKeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

impl Policy {
    /// From the config word (already validated by CONFIG SET).
    pub fn parse(s: &str) -> Policy {
        match s {
            "allkeys-lru" => Policy::AllKeysLru,
            "allkeys-lfu" => Policy::AllKeysLfu,
            "allkeys-random" => Policy::AllKeysRandom,
            "volatile-lru" => Policy::VolatileLru,
            "volatile-lfu" => Policy::VolatileLfu,
            "volatile-random" => Policy::VolatileRandom,
            "volatile-ttl" => Policy::VolatileTtl,
            _ => Policy::NoEviction,
        }
    }

    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::AllKeysLfu | Policy::VolatileLfu)
    }

    fn is_volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }

    fn is_random(self) -> bool {
        matches!(self, Policy::AllKeysRandom | Policy::VolatileRandom)
    }
}

/// What a key access needs to update an entry's `lru` field, computed
/// before the entry is borrowed (it is `Copy`).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now_s: u64,
    pub lfu: Option<LfuParams>,
}

#[derive(Debug, Clone, Copy)]
pub struct LfuParams {
    pub log_factor: u32,
    pub decay_time_min: u32,
    /// A uniform draw for the probabilistic increment.
    pub draw: u32,
}

/// The LRU clock at `now_s` (LRU_CLOCK with a 1000 ms resolution).
pub fn lru_clock(now_s: u64) -> u32 {
    (now_s & LRU_CLOCK_MAX as u64) as u32
}

/// LFUGetTimeInMinutes: 16 bits of minutes.
fn lfu_minutes(now_s: u64) -> u32 {
    ((now_s / 60) & 0xffff) as u32
}

impl Clock {
    /// The `lru` field of a new object (Redis's `createObject`).
    pub fn initial(&self) -> u32 {
        initial_stamp(self.now_s, self.lfu.is_some())
    }

    /// Records an access: the LRU clock, or LFU decay then increment
    /// (`updateLFU`).
    #[inline]
    pub fn touch(&self, stamp: &mut u32) {
        match self.lfu {
            None => *stamp = lru_clock(self.now_s),
            Some(p) => {
                let counter = lfu_decr(*stamp, self.now_s, p.decay_time_min);
                let counter = lfu_log_incr(counter, p.log_factor, p.draw);
                *stamp = (lfu_minutes(self.now_s) << 8) | counter;
            }
        }
    }
}

/// A new object's `lru` field under the given mode.
pub fn initial_stamp(now_s: u64, lfu: bool) -> u32 {
    if lfu {
        (lfu_minutes(now_s) << 8) | LFU_INIT_VAL
    } else {
        lru_clock(now_s)
    }
}

/// Idle time in ms of an LRU stamp (`estimateObjectIdleTime`): the clock
/// wraps every 194 days.
pub fn idle_ms(stamp: u32, now_s: u64) -> u64 {
    let clock = lru_clock(now_s) as u64;
    let lru = (stamp & LRU_CLOCK_MAX) as u64;
    if clock >= lru {
        (clock - lru) * 1000
    } else {
        (clock + (LRU_CLOCK_MAX as u64 - lru)) * 1000
    }
}

/// The LFU counter after decay (`LFUDecrAndReturn`): one step per
/// `lfu-decay-time` minutes since the last access.
pub fn lfu_decr(stamp: u32, now_s: u64, decay_time_min: u32) -> u32 {
    let ldt = stamp >> 8;
    let counter = stamp & 255;
    let now = lfu_minutes(now_s);
    let elapsed = if now >= ldt {
        now - ldt
    } else {
        65535 - ldt + now
    };
    let periods = elapsed.checked_div(decay_time_min).unwrap_or(0);
    counter.saturating_sub(periods)
}

/// `LFULogIncr`: increments with probability 1/((counter-5)*factor+1).
fn lfu_log_incr(counter: u32, log_factor: u32, draw: u32) -> u32 {
    if counter >= 255 {
        return 255;
    }
    let r = draw as f64 / u32::MAX as f64;
    let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
    let p = 1.0 / (base * log_factor as f64 + 1.0);
    if r < p {
        counter + 1
    } else {
        counter
    }
}

/// One pool slot (Redis's `evictionPoolEntry`).
#[derive(Debug, Clone)]
struct Candidate {
    /// Higher is a better candidate.
    idle: u64,
    db: usize,
    key: Bytes,
}

/// Eviction state kept between calls.
#[derive(Debug, Default)]
pub struct Evictor {
    /// Best candidates, ascending by `idle` (the best is last).
    pool: Vec<Candidate>,
    /// The db the random policies start from next (round robin).
    next_db: usize,
    /// Eviction stopped at its budget with memory still over the limit.
    pub running: bool,
    /// xorshift state for LFU increments: separate from the node's RNG so
    /// that reads do not shift the sequence SPOP and friends see.
    lfu_rng: u64,
    /// Whether the memory was over the limit when the current top-level
    /// command started (`server.pre_command_oom_state`): scripts refuse
    /// deny-oom calls on that, not on memory their own stack uses.
    pub pre_command_oom: bool,
    /// The cached policy (parsed on CONFIG SET).
    pub policy: Option<Policy>,
    /// Clients' memory as last counted (see [`evict_clients`]).
    pub clients_total: u64,
}

impl Evictor {
    pub fn seed(&mut self, seed: u64) {
        self.lfu_rng = seed | 1;
    }

    pub(crate) fn draw(&mut self) -> u32 {
        let mut x = self.lfu_rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.lfu_rng = x;
        (x >> 32) as u32
    }
}

/// What [`perform_evictions`] achieved (EVICT_OK / RUNNING / FAIL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Under the limit (or no limit).
    Ok,
    /// Still over, but working on it: commands go ahead.
    Running,
    /// Over the limit and nothing (more) can be evicted.
    Fail,
}

/// Keys evicted per call before yielding, for a tenacity (Redis's
/// `evictionTimeLimitUs`, read as one key per microsecond).
fn key_budget(tenacity: i64) -> u64 {
    if tenacity <= 10 {
        50 * tenacity.max(0) as u64
    } else if tenacity < 100 {
        (500.0 * 1.15f64.powf(tenacity as f64 - 10.0)) as u64
    } else {
        u64::MAX
    }
}

impl Node {
    /// Bytes over `maxmemory` (0 when under it or unlimited).
    pub fn memory_to_free(&self) -> u64 {
        if self.config.maxmemory <= 0 {
            return 0;
        }
        self.used_memory_estimate()
            .saturating_sub(self.config.maxmemory as u64)
    }

    /// The clock a key access uses to update `lru` (draws for LFU).
    #[inline]
    pub fn access_clock(&mut self) -> Clock {
        let now_s = self.now.as_secs();
        let lfu = if self.policy().is_lfu() {
            Some(LfuParams {
                log_factor: self.config.lfu_log_factor.clamp(0, u32::MAX as i64) as u32,
                decay_time_min: self.config.lfu_decay_time.clamp(0, u32::MAX as i64) as u32,
                draw: self.evictor.draw(),
            })
        } else {
            None
        };
        Clock { now_s, lfu }
    }

    /// The `lru` field for a new key.
    pub fn initial_stamp(&self) -> u32 {
        initial_stamp(self.now.as_secs(), self.policy().is_lfu())
    }

    /// The configured policy.
    #[inline]
    pub fn policy(&self) -> Policy {
        self.evictor
            .policy
            .unwrap_or_else(|| Policy::parse(&self.config.maxmemory_policy))
    }
}

/// Evicts keys until memory is under `maxmemory` (Redis's
/// `performEvictions`). `current` is the client whose command is about to
/// run (out of the client table), for WATCH.
pub fn perform_evictions(node: &mut Node, current: Option<&mut Client>) -> Outcome {
    let outcome = evict_to_limit(node, current);
    set_growth_limits(node);
    outcome
}

/// Gives each db the memory it may reach before the whole estimate is over
/// `maxmemory` (`Db::mem_limit`), so that the command about to run does not
/// grow a keyspace bucket array past the limit (Redis's
/// `dictExpandAllowed` with `overMaxmemoryAfterAlloc`). Without it, a
/// dataset whose key count crosses a power of two near the limit doubles
/// its tables and evicts keys to pay for buckets, which Redis does not.
fn set_growth_limits(node: &mut Node) {
    if node.config.maxmemory <= 0 || node.persist.loading || node.aof.replaying {
        if node.dbs.iter().any(|d| d.mem_limit != u64::MAX) {
            for d in &mut node.dbs {
                d.mem_limit = u64::MAX;
            }
        }
        return;
    }
    let max = node.config.maxmemory as u64;
    let total = node.used_memory_estimate();
    for d in &mut node.dbs {
        let others = total.saturating_sub(d.memory_bytes());
        d.mem_limit = max.saturating_sub(others);
    }
}

/// [`perform_evictions`]'s eviction loop.
fn evict_to_limit(node: &mut Node, current: Option<&mut Client>) -> Outcome {
    if node.config.maxmemory <= 0 || node.persist.loading || node.aof.replaying {
        node.evictor.running = false;
        return Outcome::Ok;
    }
    let mut to_free = node.memory_to_free();
    if to_free == 0 {
        node.evictor.running = false;
        return Outcome::Ok;
    }
    let policy = node.policy();
    if policy == Policy::NoEviction {
        node.evictor.running = false;
        return Outcome::Fail;
    }
    let mut placeholder;
    let current: &mut Client = match current {
        Some(c) => c,
        None => {
            placeholder = Client::loader();
            &mut placeholder
        }
    };
    let budget = key_budget(node.config.maxmemory_eviction_tenacity);
    let mut evicted = 0u64;
    while to_free > 0 {
        let Some((db, key)) = pick(node, policy) else {
            node.evictor.running = false;
            return Outcome::Fail;
        };
        let before = node.used_memory_estimate();
        evict_key(node, current, db, key);
        evicted += 1;
        let after = node.used_memory_estimate();
        to_free = to_free.saturating_sub(before.saturating_sub(after).max(1));
        // Redis checks its time limit every 16 keys.
        if evicted.is_multiple_of(16) && evicted >= budget {
            if node.memory_to_free() > 0 {
                node.evictor.running = true;
                return Outcome::Running;
            }
            break;
        }
    }
    node.evictor.running = false;
    Outcome::Ok
}

/// Deletes one chosen key as an eviction: stats, WATCH, AOF.
fn evict_key(node: &mut Node, current: &mut Client, db: usize, key: Bytes) {
    if node.config.lazyfree_lazy_eviction {
        crate::lazyfree::delete(node, db, &key);
    } else {
        node.dbs[db].delete(&key);
    }
    node.stats.evicted_keys += 1;
    node.touch_key(current, db, &key);
    // Keyspace event "evicted" (notifyKeyspaceEvent(NOTIFY_EVICTED, ...)):
    // the notification module is the lead's; this is where it is sent.
    notify_evicted(node, db, &key);
    if node.aof.enabled {
        crate::aof::propagate(node, db, vec![Bytes::from_static(b"DEL"), key]);
        crate::aof::end_of_command(node);
    }
}

/// The "evicted" keyspace event and the client-tracking invalidation.
fn notify_evicted(node: &mut Node, db: usize, key: &[u8]) {
    crate::notify::key_evicted(node, db, key);
}

/// Chooses the next victim per policy, or None if nothing is evictable.
fn pick(node: &mut Node, policy: Policy) -> Option<(usize, Bytes)> {
    if policy.is_random() {
        // Round robin over dbs so one db is not emptied first.
        let n = node.dbs.len();
        for _ in 0..n {
            let db = node.evictor.next_db % n;
            node.evictor.next_db = node.evictor.next_db.wrapping_add(1);
            let d = &node.dbs[db];
            let found = if policy.is_volatile() {
                d.expires.random_entry(&mut node.rng).map(|(k, _)| k)
            } else {
                d.keys.random_entry(&mut node.rng).map(|(k, _)| k)
            };
            if let Some(k) = found {
                return Some((db, Bytes::copy_from_slice(k)));
            }
        }
        return None;
    }
    loop {
        let mut total = 0;
        for db in 0..node.dbs.len() {
            let d = &node.dbs[db];
            let size = if policy.is_volatile() {
                d.expires.len()
            } else {
                d.keys.len()
            };
            if size > 0 {
                populate(node, policy, db);
                total += size;
            }
        }
        if total == 0 {
            return None;
        }
        // The best candidate that still exists (a pool entry may be stale:
        // deleted or, for volatile policies, persisted since).
        while let Some(c) = node.evictor.pool.pop() {
            let d = &node.dbs[c.db];
            let exists = if policy.is_volatile() {
                d.expires.contains_key(&c.key)
            } else {
                d.keys.contains_key(&c.key)
            };
            if exists {
                return Some((c.db, c.key));
            }
        }
        // Every pool entry was stale: sample again.
    }
}

/// Samples `maxmemory-samples` keys of one db into the pool
/// (`evictionPoolPopulate`).
fn populate(node: &mut Node, policy: Policy, db: usize) {
    let samples = node.config.maxmemory_samples.clamp(1, i32::MAX as i64) as usize;
    let now_s = node.now.as_secs();
    let decay = node.config.lfu_decay_time.clamp(0, u32::MAX as i64) as u32;
    let Node {
        dbs, rng, evictor, ..
    } = node;
    let d = &dbs[db];
    let mut found: Vec<(u64, Bytes)> = Vec::with_capacity(samples.min(64));
    let score = |e: &crate::db::Entry| -> u64 {
        if policy.is_lfu() {
            255 - lfu_decr(e.lru, now_s, decay) as u64
        } else {
            idle_ms(e.lru, now_s)
        }
    };
    if policy.is_volatile() {
        d.expires.sample(rng, samples, |k, &at| {
            let s = if policy == Policy::VolatileTtl {
                // Sooner expiry is better.
                Some(u64::MAX - at.max(0) as u64)
            } else {
                d.keys.get(k).map(score)
            };
            if let Some(s) = s {
                found.push((s, Bytes::copy_from_slice(k)));
            }
        });
    } else {
        // The sampled entry itself: no second lookup by key (a hash and a
        // bucket read per sample).
        d.keys.sample(rng, samples, |k, e| {
            found.push((score(e), Bytes::copy_from_slice(k)));
        });
    }
    for (idle, key) in found {
        insert_candidate(&mut evictor.pool, idle, db, &key);
    }
}

/// Inserts into the ascending pool, keeping at most [`POOL_SIZE`]: a
/// candidate worse than every entry of a full pool is dropped.
fn insert_candidate(pool: &mut Vec<Candidate>, idle: u64, db: usize, key: &[u8]) {
    if pool.iter().any(|c| c.db == db && c.key == key) {
        // Already pooled: refresh its score.
        pool.retain(|c| !(c.db == db && c.key == key));
    }
    let pos = pool.partition_point(|c| c.idle < idle);
    if pool.len() >= POOL_SIZE {
        if pos == 0 {
            return;
        }
        // Drop the worst to make room; the insert position shifts down.
        pool.remove(0);
        pool.insert(pos - 1, candidate(idle, db, key));
    } else {
        pool.insert(pos, candidate(idle, db, key));
    }
}

fn candidate(idle: u64, db: usize, key: &[u8]) -> Candidate {
    Candidate {
        idle,
        db,
        key: Bytes::copy_from_slice(key),
    }
}

/// Runs from the node's tick: finishes an eviction that hit its budget.
pub fn tick(node: &mut Node) {
    if node.evictor.running {
        perform_evictions(node, None);
    }
}

// Client eviction (`maxmemory-clients`, Redis 7.0's `evictClients`).
//
// Every client's memory ([`crate::memory::client_bytes`]) is added to a
// running total when the client has been served, when the driver reports its
// output backlog, and recounted exactly on every tick. When the total
// reaches the limit, clients are closed, largest first, until it is below.
// As in Redis, clients with CLIENT NO-EVICT on count in the total but are
// never closed. Redis sorts clients into power-of-two memory buckets and
// walks them from the top; taking the largest exactly is the same order up
// to ties inside a bucket.

/// Redis's floor for the limit: a smaller setting would leave no room to
/// talk to the server at all.
const MIN_CLIENT_LIMIT: u64 = 128 * 1024;

/// CONFIG SET's check for `maxmemory-clients`: a byte count (memory units) or
/// a percentage of `maxmemory` written `N%` (0 to 100). Returns the text
/// CONFIG GET shows, or Redis's error.
pub fn canonical_maxmemory_clients(v: &str) -> Result<String, String> {
    const FORMAT: &str = "argument must be a memory or percent value";
    if let Some(num) = v.strip_suffix('%').filter(|n| !n.is_empty()) {
        // string2ll: no sign, no leading zeros (but "0").
        let strict =
            num.bytes().all(|b| b.is_ascii_digit()) && (num == "0" || !num.starts_with('0'));
        let pct: u64 = match num.parse() {
            Ok(p) if strict => p,
            _ => return Err(FORMAT.into()),
        };
        if pct > 100 {
            return Err("percentage argument must be less or equal to 100".into());
        }
        return Ok(if pct == 0 {
            "0".into()
        } else {
            format!("{pct}%")
        });
    }
    if v.starts_with('-') {
        return Err(FORMAT.into());
    }
    match crate::config::parse_memory(v) {
        Some(n) if n >= 0 => Ok(n.to_string()),
        // Redis reads an unsigned count into a signed field: past i64::MAX
        // it looks like a percentage above 100.
        None if v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty() => {
            Err("percentage argument must be less or equal to 100".into())
        }
        _ => Err(FORMAT.into()),
    }
}

/// The limit in bytes (0: client eviction off), as Redis's
/// `getClientEvictionLimit`: a percentage needs `maxmemory` set.
pub fn client_eviction_limit(config: &crate::Config) -> u64 {
    let text = config.maxmemory_clients.as_str();
    if text == "0" {
        return 0;
    }
    let limit = match text.strip_suffix('%') {
        Some(pct) => {
            let pct: u64 = pct.parse().unwrap_or(0);
            if config.maxmemory <= 0 {
                return 0;
            }
            (config.maxmemory as f64 * pct as f64 / 100.0) as u64
        }
        None => text.parse().unwrap_or(0),
    };
    if limit == 0 {
        return 0;
    }
    limit.max(MIN_CLIENT_LIMIT)
}

/// A client's memory may have changed (it was served): updates the total.
/// Skipped while client eviction is off (the tick recounts anyway), so the
/// default configuration pays nothing per input.
pub fn client_memory_changed(node: &mut Node, c: &mut Client) {
    if node.config.maxmemory_clients == "0" {
        return;
    }
    let now = crate::memory::client_bytes(c);
    node.evictor.clients_total = (node.evictor.clients_total + now).saturating_sub(c.mem_counted);
    c.mem_counted = now;
}

/// The driver's backlog for a client changed.
pub fn client_backlog_changed(node: &mut Node, conn: crate::node::ConnId) {
    if node.config.maxmemory_clients == "0" {
        return;
    }
    let Node {
        clients, evictor, ..
    } = node;
    if let Some(c) = clients.get_mut(&conn) {
        let now = crate::memory::client_bytes(c);
        evictor.clients_total = (evictor.clients_total + now).saturating_sub(c.mem_counted);
        c.mem_counted = now;
    }
}

/// A client left the table for good.
pub fn client_gone(node: &mut Node, c: &Client) {
    node.evictor.clients_total = node.evictor.clients_total.saturating_sub(c.mem_counted);
}

/// The tick's client pass (Redis's `clientsCron`): lets idle oversized
/// reply buffers go, then counts every client's memory afresh (the running
/// total only approximates between ticks).
pub fn recount_clients(node: &mut Node) -> u64 {
    for c in node.clients.values_mut() {
        // An idle reply buffer that grew for a large reply (a pipelined
        // batch) is let go, as Redis frees its reply list once written and
        // shrinks its 16 KB buffer in clientsCron: kept, it held 60-90 KB
        // per client (BytesMut reallocates at its largest size after a
        // split), memory that maxmemory then took from the keys. Only at
        // the tick: a buffer that grew during the input just handled still
        // stands for replies the shim is writing, which client eviction
        // must see (`evict_clients`).
        if c.reply.buf.is_empty() && c.reply.buf.capacity() > IDLE_REPLY_BUFFER {
            c.reply.buf = bytes::BytesMut::new();
        }
    }
    count_clients(node)
}

/// Counts every client's memory afresh.
fn count_clients(node: &mut Node) -> u64 {
    let mut total = 0;
    for c in node.clients.values_mut() {
        c.mem_counted = crate::memory::client_bytes(c);
        total += c.mem_counted;
    }
    node.evictor.clients_total = total;
    total
}

/// Largest reply buffer a client keeps between replies (Redis's
/// PROTO_REPLY_CHUNK_BYTES).
const IDLE_REPLY_BUFFER: usize = 16 * 1024;

/// Closes clients, largest first, while their memory is at or above
/// `maxmemory-clients` (called where Redis's `beforeSleep` calls
/// `evictClients`: after each input is handled).
pub fn evict_clients(node: &mut Node) {
    let limit = client_eviction_limit(&node.config);
    if limit == 0 || node.evictor.clients_total < limit {
        return;
    }
    let mut total = count_clients(node);
    if total < limit {
        return;
    }
    let mut candidates: Vec<(u64, u64, crate::node::ConnId)> = node
        .clients
        .values()
        .filter(|c| !c.no_evict)
        .map(|c| (c.mem_counted, c.id, c.conn))
        .collect();
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (mem, id, conn) in candidates {
        if total < limit {
            break;
        }
        tracing::info!(client = id, memory = mem, "Evicting client");
        node.kill_client(conn);
        node.stats.evicted_clients += 1;
        total = total.saturating_sub(mem);
    }
}

/// Draws `n` uniform values; used by tests to check the LFU increment.
#[cfg(test)]
fn draws(rng: &mut impl rand_core::RngCore, n: usize) -> Vec<u32> {
    (0..n).map(|_| rng.next_u32()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn lru_idle_wraps() {
        assert_eq!(idle_ms(lru_clock(100), 105), 5000);
        // The clock wrapped between the access and now: Redis's formula
        // adds LRU_CLOCK_MAX - lru (not + 1), so 3 s read as 2 s there too.
        let t = LRU_CLOCK_MAX as u64 - 1;
        assert_eq!(idle_ms(lru_clock(t), t + 3), 2000);
    }

    #[test]
    fn lfu_counter_is_logarithmic_and_decays() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let clock = |draw| Clock {
            now_s: 0,
            lfu: Some(LfuParams {
                log_factor: 10,
                decay_time_min: 1,
                draw,
            }),
        };
        let mut stamp = clock(0).initial();
        assert_eq!(stamp & 255, LFU_INIT_VAL);
        for d in draws(&mut rng, 100) {
            clock(d).touch(&mut stamp);
        }
        // 100 hits with factor 10 reach roughly 10 (Redis's table: 100
        // hits -> 10 at factor 10); allow the randomness some room.
        let c = stamp & 255;
        assert!((8..=18).contains(&c), "counter {c}");
        // Three minutes later, with decay 1, it is three lower.
        assert_eq!(lfu_decr(stamp, 180, 1), c - 3);
        assert_eq!(lfu_decr(stamp, 180, 0), c);
        // Never below zero.
        assert_eq!(lfu_decr(stamp, 60 * 1000, 1), 0);
    }

    #[test]
    fn pool_keeps_best_sixteen_in_order() {
        let mut pool = Vec::new();
        for i in 0..40u64 {
            let idle = (i * 7919) % 101;
            insert_candidate(&mut pool, idle, 0, format!("k{i}").as_bytes());
        }
        assert_eq!(pool.len(), POOL_SIZE);
        assert!(pool.windows(2).all(|w| w[0].idle <= w[1].idle));
        let mut all: Vec<u64> = (0..40u64).map(|i| (i * 7919) % 101).collect();
        all.sort();
        assert_eq!(pool.last().map(|c| c.idle), all.last().copied());
        assert_eq!(pool[0].idle, all[40 - POOL_SIZE]);
    }

    /// Drives a node through SETs under `maxmemory` and returns the keys
    /// left and the eviction count. `hot` keys are read every round, one
    /// second apart, so LRU must keep them.
    fn run_cache(seed: u64, policy: &str, hot: &[usize]) -> (Vec<Vec<u8>>, u64, u64) {
        use crate::node::{ConnId, Input, Time};
        let config = crate::Config {
            maxmemory: 2 << 20,
            maxmemory_policy: policy.into(),
            ..Default::default()
        };
        let mut node = Node::new(config, seed);
        let mut now = 1_700_000_000_000_000u64;
        node.handle(
            Time(now),
            Input::Accepted {
                conn: ConnId(1),
                peer: "127.0.0.1:1".into(),
                local: "127.0.0.1:6379".into(),
            },
        );
        // No data file: start-up loading finds nothing.
        fn drain(node: &mut Node, now: u64) {
            while let Some(out) = node.poll_output() {
                if let crate::node::Output::Disk { id, .. } = out {
                    let result = Err(crate::disk::DiskError::NotFound);
                    node.handle(Time(now), Input::DiskDone { id, result });
                }
            }
        }
        drain(&mut node, now);
        let value = "v".repeat(100);
        for round in 0..40 {
            now += 1_000_000;
            let mut batch = String::new();
            for i in 0..500 {
                batch.push_str(&format!("SET key:{} {value}\r\n", round * 500 + i));
            }
            for &h in hot {
                batch.push_str(&format!("GET key:{h}\r\n"));
            }
            node.handle(
                Time(now),
                Input::Received {
                    conn: ConnId(1),
                    data: batch.as_bytes(),
                },
            );
            drain(&mut node, now);
        }
        let mut keys: Vec<Vec<u8>> = node.dbs[0].keys.iter().map(|(k, _)| k.to_vec()).collect();
        keys.sort();
        (keys, node.stats.evicted_keys, node.used_memory_estimate())
    }

    #[test]
    fn eviction_is_deterministic_and_keeps_memory_under_the_limit() {
        for policy in ["allkeys-lru", "allkeys-lfu", "allkeys-random"] {
            let a = run_cache(7, policy, &[]);
            let b = run_cache(7, policy, &[]);
            assert_eq!(a, b, "{policy}: same seed, same evictions");
            assert!(a.1 > 0, "{policy}: nothing evicted");
            // Checked before each command: at most one command's worth over.
            assert!(a.2 <= (2 << 20) + 4096, "{policy}: {} bytes", a.2);
        }
        assert_ne!(
            run_cache(7, "allkeys-random", &[]).0,
            run_cache(8, "allkeys-random", &[]).0,
            "the seed drives the sampling"
        );
    }

    #[test]
    fn lru_and_lfu_keep_the_hot_keys() {
        let hot: Vec<usize> = (0..200).map(|i| i * 7).collect();
        for policy in ["allkeys-lru", "allkeys-lfu"] {
            let (keys, evicted, _) = run_cache(3, policy, &hot);
            assert!(evicted > 5000, "{policy}: {evicted}");
            let kept = hot
                .iter()
                .filter(|h| keys.binary_search(&format!("key:{h}").into_bytes()).is_ok())
                .count();
            assert!(kept >= 190, "{policy}: kept {kept} of {}", hot.len());
        }
    }

    #[test]
    fn maxmemory_clients_limit() {
        let ok = |v: &str| canonical_maxmemory_clients(v);
        assert_eq!(ok("10%").as_deref(), Ok("10%"));
        assert_eq!(ok("0%").as_deref(), Ok("0"));
        assert_eq!(ok("1mb").as_deref(), Ok("1048576"));
        assert!(ok("101%").unwrap_err().contains("less or equal to 100"));
        assert!(ok("9223372036854775808").unwrap_err().contains("100"));
        for bad in ["-1", "abc", "007%", "+5%", "%", "1.5%", "-5%", "1gb%"] {
            assert!(ok(bad).unwrap_err().contains("memory or percent"), "{bad}");
        }
        let limit = |clients: &str, maxmemory: i64| {
            let config = crate::Config {
                maxmemory_clients: clients.into(),
                maxmemory,
                ..Default::default()
            };
            client_eviction_limit(&config)
        };
        assert_eq!(limit("0", 1 << 30), 0);
        assert_eq!(limit("10%", 0), 0, "a percentage needs maxmemory");
        assert_eq!(limit("10%", 100 << 20), 10 << 20);
        assert_eq!(limit("1000", 0), 128 * 1024, "Redis's floor");
        assert_eq!(limit("1048576", 0), 1 << 20);
    }

    #[test]
    fn budget_matches_redis_time_limits() {
        assert_eq!(key_budget(0), 0);
        assert_eq!(key_budget(10), 500);
        assert!(key_budget(50) > 500);
        assert_eq!(key_budget(100), u64::MAX);
    }
}
