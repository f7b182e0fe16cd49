//! The keyspace: numbered databases of keys, values and expiry times.
//!
//! As in Redis, each database keeps two tables: `keys` (key -> value) and
//! `expires` (key -> absolute expiry in unix milliseconds) holding only keys
//! with a TTL, so the active expiry cycle samples among volatile keys only.
//! Expiry is lazy on access ([`Db::expire_if_needed`]) and active on ticks
//! (`expire.rs`).

use crate::dict::{Dict, ShortKey};
use bytes::Bytes;

/// A string value in one of Redis's three encodings, which `OBJECT
/// ENCODING` reports and which change as Redis's do (e.g. APPEND makes a
/// string raw, INCR makes it an int).
#[derive(Debug, Clone)]
pub enum Str {
    /// A string that is the canonical decimal form of an i64. One in
    /// [0, [`SHARED_INTEGERS`]) is one of Redis's shared integer objects
    /// (OBJECT REFCOUNT 2147483647).
    Int(i64),
    /// The same encoding as an object of its own, not shared: COPY
    /// duplicates a shared integer (`dupStringObject`), so the copy's
    /// OBJECT REFCOUNT is 1.
    IntOwned(i64),
    /// A short string (at most 44 bytes when created). A boxed slice, not
    /// `Bytes`: 16 bytes instead of 32 keeps every key's entry one jemalloc
    /// size class smaller.
    Emb(Box<[u8]>),
    /// A string modified in place (APPEND, SETRANGE, SETBIT) or longer than 44.
    Raw(Vec<u8>),
}

/// Strings this long or shorter are embstr when created (OBJ_ENCODING_EMBSTR_SIZE_LIMIT).
pub const EMBSTR_MAX: usize = 44;
/// Integers in [0, 10000) are shared objects in Redis (OBJ_SHARED_INTEGERS).
pub const SHARED_INTEGERS: i64 = 10000;

impl Str {
    /// Redis's `tryObjectEncoding` for a freshly received argument.
    pub fn from_arg(b: Bytes) -> Str {
        if b.len() <= 20 {
            if let Some(n) = crate::resp::parse_i64(&b) {
                return Str::Int(n);
            }
        }
        if b.len() <= EMBSTR_MAX {
            Str::Emb(Vec::from(b).into_boxed_slice())
        } else {
            Str::Raw(Vec::from(b))
        }
    }

    /// `createStringObject`: embstr if short, else raw (no int conversion).
    pub fn from_vec(v: Vec<u8>) -> Str {
        if v.len() <= EMBSTR_MAX {
            Str::Emb(v.into_boxed_slice())
        } else {
            Str::Raw(v)
        }
    }

    /// The bytes of the value; ints are formatted into `scratch`.
    pub fn as_bytes<'a>(&'a self, scratch: &'a mut itoa::Buffer) -> &'a [u8] {
        match self {
            Str::Int(n) | Str::IntOwned(n) => scratch.format(*n).as_bytes(),
            Str::Emb(b) => b,
            Str::Raw(v) => v,
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut s = itoa::Buffer::new();
        self.as_bytes(&mut s).to_vec()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        match self {
            Str::Int(n) | Str::IntOwned(n) => itoa::Buffer::new().format(*n).len(),
            Str::Emb(b) => b.len(),
            Str::Raw(v) => v.len(),
        }
    }

    /// Converts to the raw encoding in place and returns the buffer, as
    /// Redis's `dbUnshareStringValue` does before in-place edits.
    pub fn make_raw(&mut self) -> &mut Vec<u8> {
        if !matches!(self, Str::Raw(_)) {
            *self = Str::Raw(self.to_vec());
        }
        match self {
            Str::Raw(v) => v,
            _ => unreachable!("just converted to raw"),
        }
    }

    pub fn encoding_name(&self) -> &'static str {
        match self {
            Str::Int(_) | Str::IntOwned(_) => "int",
            Str::Emb(_) => "embstr",
            Str::Raw(_) => "raw",
        }
    }
}

/// A value of any type. Each collection type lives in its command module
/// (`commands/lists.rs` holds `List`), as Redis keeps `t_list.c` together.
#[derive(Debug, Clone)]
pub enum Value {
    Str(Str),
    List(crate::commands::lists::List),
    Hash(crate::commands::hashes::Hash),
    Set(crate::commands::sets::Set),
    ZSet(crate::commands::zsets::ZSet),
    /// Boxed: a stream's header (counters, IDs, groups) is larger than
    /// the other variants, and every key pays for the largest.
    Stream(Box<crate::stream::Stream>),
}

impl Value {
    /// The name TYPE replies with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// The name OBJECT ENCODING replies with.
    pub fn encoding_name(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding_name(),
            Value::List(v) => v.encoding_name(),
            Value::Hash(v) => v.encoding_name(),
            Value::Set(v) => v.encoding_name(),
            Value::ZSet(v) => v.encoding_name(),
            Value::Stream(_) => "stream",
        }
    }
}

/// A key's value plus the metadata Redis keeps in the object header.
/// 40 bytes (a 32-byte `Value`), so the keyspace dict node (16-byte key,
/// entry, next pointer) fills jemalloc's 64-byte class exactly: a larger
/// variant would move every key up to the 80 class (dict.rs `short_keys`
/// test).
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    /// Redis's 24-bit `lru` field: the LRU clock (seconds) of the last
    /// access, or under an LFU policy minutes (16 bits) and a logarithmic
    /// access counter (8 bits). See `evict.rs`.
    pub lru: u32,
    /// The value's estimated size as last added to [`Db::used_bytes`]
    /// (see `memory.rs`).
    pub mem: u32,
}

impl Entry {
    /// A new entry; its `mem` is filled in when it enters a [`Db`].
    pub fn new(value: Value, lru: u32) -> Entry {
        Entry { value, lru, mem: 0 }
    }
}

/// One numbered database.
pub struct Db {
    pub keys: Dict<Entry, ShortKey>,
    /// Absolute expiry time in unix milliseconds, for keys that have one.
    /// Change it through the methods below, which keep `expires_heap`.
    pub expires: Dict<i64, ShortKey>,
    /// Heap bytes of the expires table's own copies of keys too long to
    /// store inline (Redis shares the key's sds; we copy long keys).
    pub expires_heap: u64,
    /// What [`Db::memory_bytes`] may reach before the whole estimate is
    /// over `maxmemory` (u64::MAX: no limit), set by eviction before each
    /// command (`evict::set_growth_limits`). Inserting a key does not grow
    /// a bucket array past it (Redis's `dictExpandAllowed`).
    pub mem_limit: u64,
    /// Running estimate of the TTL of volatile keys, in ms (INFO keyspace
    /// `avg_ttl`), updated from the active expiry cycle's samples as Redis
    /// does.
    pub avg_ttl_ms: i64,
    /// When set (the AOF is on), keys deleted by lazy expiry are listed in
    /// `expired` so the node can log their DEL.
    pub log_expired: bool,
    pub expired: Vec<Bytes>,
    /// Set while the AOF is replayed: no key expires (Redis's
    /// `keyIsExpired` is false while loading), so the log replays exactly.
    pub loading: bool,
    /// Estimated bytes of the keys and values (memory.rs), kept
    /// incrementally: entries add their `mem` and key cost on insertion and
    /// take them away on removal.
    pub used_bytes: u64,
    /// Large values that left the keyspace by expiry or by being
    /// overwritten, which the node frees after the command: in the
    /// background under `lazyfree-lazy-expire` / `lazyfree-lazy-server-del`,
    /// else inline (`lazyfree::free_deferred`). Small values are dropped at
    /// once.
    pub deferred_free: Vec<(Value, crate::lazyfree::Cause)>,
}

impl Db {
    pub fn new(seed: [u64; 2]) -> Db {
        Db {
            keys: Dict::new(seed),
            expires: Dict::new([seed[0] ^ 0x5851_f42d_4c95_7f2d, seed[1]]),
            expires_heap: 0,
            mem_limit: u64::MAX,
            avg_ttl_ms: 0,
            log_expired: false,
            expired: Vec::new(),
            loading: false,
            used_bytes: 0,
            deferred_free: Vec::new(),
        }
    }

    /// Estimated bytes of this db: entries, expires, bucket arrays.
    pub fn memory_bytes(&self) -> u64 {
        self.used_bytes
            + self.expires.len() as u64 * crate::memory::EXPIRE_ENTRY_BYTES
            + self.expires_heap
            + (self.keys.bucket_count() + self.expires.bucket_count()) as u64 * 8
    }

    /// Inserts (or replaces) an entry, accounting its size.
    /// Inserts or replaces; true if the key is new.
    fn insert_entry(&mut self, key: &[u8], mut entry: Entry) -> bool {
        let key_len = key.len();
        entry.mem = crate::memory::clamp(crate::memory::value_bytes(&entry.value));
        self.used_bytes += entry.mem as u64;
        let budget = self.growth_budget(crate::memory::key_bytes(key_len));
        match self
            .keys
            .insert_with_within(key, || ShortKey::from(key), entry, budget)
        {
            Some(old) => {
                self.used_bytes = self.used_bytes.saturating_sub(old.mem as u64);
                self.defer_free(old.value, crate::lazyfree::Cause::Overwrite);
                false
            }
            None => {
                self.used_bytes += crate::memory::key_bytes(key_len);
                true
            }
        }
    }

    /// Removes an entry keeping its TTL alone, accounting its size (RENAME
    /// and MOVE carry the entry to another name or db with [`Db::put`]).
    pub fn take(&mut self, key: &[u8]) -> Option<Entry> {
        let e = self.keys.remove(key)?;
        self.used_bytes = self
            .used_bytes
            .saturating_sub(e.mem as u64 + crate::memory::key_bytes(key.len()));
        Some(e)
    }

    /// Adds an entry taken with [`Db::take`] (or loaded): false if the key
    /// already existed (its value is replaced).
    pub fn put(&mut self, key: &[u8], entry: Entry) -> bool {
        // One lookup (the insertion's), not a second one before it: loading
        // puts every key of a file.
        self.insert_entry(key, entry)
    }

    /// Re-estimates a value changed in place (after a write command), so
    /// the db total follows in-place growth and shrinkage.
    pub fn reaccount(&mut self, key: &[u8]) {
        if let Some(e) = self.keys.get_mut(key) {
            let now = crate::memory::clamp(crate::memory::value_bytes(&e.value));
            if now != e.mem {
                self.used_bytes = (self.used_bytes + now as u64).saturating_sub(e.mem as u64);
                e.mem = now;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The expiry of `key` in unix ms, if it has one.
    #[inline]
    pub fn expire_of(&self, key: &[u8]) -> Option<i64> {
        if self.expires.is_empty() {
            return None;
        }
        self.expires.get(key).copied()
    }

    /// True if `key` has a TTL that has passed at `now_ms`: as in Redis, a
    /// key is still alive during its last millisecond (`now > when`).
    #[inline]
    pub fn is_expired(&self, key: &[u8], now_ms: i64) -> bool {
        #[cfg(feature = "planted-bugs")]
        let now_ms = now_ms + crate::aof::planted::on(crate::aof::planted::Bug::ExpireEarly) as i64;
        !self.loading && matches!(self.expire_of(key), Some(at) if at < now_ms)
    }

    /// Lazy expiry: deletes `key` if its TTL has passed. Returns true if it
    /// was deleted.
    pub fn expire_if_needed(&mut self, key: &[u8], now_ms: i64) -> bool {
        if self.is_expired(key, now_ms) {
            self.delete_expired(key);
            if self.log_expired {
                self.expired.push(Bytes::copy_from_slice(key));
            }
            true
        } else {
            false
        }
    }

    /// Removes a key whose TTL has passed (lazy or active expiry); a large
    /// value waits in `deferred_free` (lazyfree-lazy-expire).
    pub fn delete_expired(&mut self, key: &[u8]) {
        if let Some(e) = self.take(key) {
            self.remove_expire(key);
            self.defer_free(e.value, crate::lazyfree::Cause::Expire);
        }
    }

    fn defer_free(&mut self, value: Value, cause: crate::lazyfree::Cause) {
        if crate::lazyfree::effort(&value) > crate::lazyfree::LAZYFREE_THRESHOLD {
            self.deferred_free.push((value, cause));
        }
    }

    /// Removes a key and its TTL. Returns true if the key existed.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        if self.take(key).is_some() {
            self.remove_expire(key);
            true
        } else {
            false
        }
    }

    /// Sets a key's value, dropping any TTL (Redis's `setKey` without
    /// KEEPTTL).
    /// `lru` is the new object's LRU/LFU field (`Ctx::lru_now`).
    pub fn set(&mut self, key: Bytes, value: Value, lru: u32) {
        self.remove_expire(&key);
        self.insert_entry(&key, Entry::new(value, lru));
    }

    /// Replaces the value of an existing key or adds it, keeping its TTL.
    pub fn set_keep_ttl(&mut self, key: Bytes, value: Value, lru: u32) {
        match self.keys.get_mut(&key) {
            Some(e) => {
                let mem = crate::memory::clamp(crate::memory::value_bytes(&value));
                self.used_bytes = (self.used_bytes + mem as u64).saturating_sub(e.mem as u64);
                e.value = value;
                e.lru = lru;
                e.mem = mem;
            }
            None => {
                self.insert_entry(&key, Entry::new(value, lru));
            }
        }
    }

    /// Sets the TTL of an existing key.
    pub fn set_expire(&mut self, key: &[u8], at_ms: i64) {
        if self.keys.contains_key(key) {
            match self.expires.get_mut(key) {
                Some(at) => *at = at_ms,
                None => self.add_expire(key, at_ms),
            }
        }
    }

    /// Adds a TTL for a key not yet in the expires table (loading inserts
    /// it before the key itself).
    pub fn add_expire(&mut self, key: &[u8], at_ms: i64) {
        let heap = crate::memory::short_key_heap(key.len()) as u64;
        let budget = self.growth_budget(crate::memory::EXPIRE_ENTRY_BYTES + heap);
        if self
            .expires
            .insert_within(ShortKey::from(key), at_ms, budget)
            .is_none()
        {
            self.expires_heap += heap;
        }
    }

    /// Bytes a table of this db may take for a larger bucket array once an
    /// entry costing `adding` is in, staying within `mem_limit`.
    fn growth_budget(&self, adding: u64) -> u64 {
        if self.mem_limit == u64::MAX {
            return u64::MAX;
        }
        self.mem_limit
            .saturating_sub(self.memory_bytes().saturating_add(adding))
    }

    /// Removes a TTL; its time if there was one.
    fn remove_expire(&mut self, key: &[u8]) -> Option<i64> {
        if self.expires.is_empty() {
            return None;
        }
        let at = self.expires.remove(key)?;
        self.expires_heap = self
            .expires_heap
            .saturating_sub(crate::memory::short_key_heap(key.len()) as u64);
        Some(at)
    }

    /// Removes a TTL; true if there was one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        self.remove_expire(key).is_some()
    }

    pub fn clear(&mut self) {
        self.keys.clear();
        self.expires.clear();
        self.expires_heap = 0;
        self.avg_ttl_ms = 0;
        self.used_bytes = 0;
    }
}
