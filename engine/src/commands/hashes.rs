//! Hash commands (Redis 7.0's `t_hash.c`): HSET, HGET, HDEL, HINCRBY,
//! HRANDFIELD, HSCAN and the rest.
//!
//! # Representation
//!
//! A hash has Redis's two encodings and switches between them at the same
//! thresholds, so OBJECT ENCODING and reply order match Redis:
//!
//! - [`Listpack`] ("listpack") while it has at most
//!   `hash-max-listpack-entries` fields and no field or value is longer than
//!   `hash-max-listpack-value`. It is one boxed byte buffer of
//!   `varint(len) bytes` entries, field then value, in insertion order (an
//!   update keeps the field's place), plus the pair count. Small hashes are
//!   the common case and memory is the point: a 5-field hash of short
//!   strings costs one allocation of about 2 + len bytes per entry, less
//!   than Redis's listpack (which spends an encoding byte and a back-length
//!   byte per entry), and the enum stays three words. Every change
//!   reallocates the buffer exactly, as Redis's listpack does; the buffer is
//!   bounded by the thresholds, so that stays cheap.
//! - [`HashTable`] ("hashtable") otherwise: the engine's seeded
//!   [`Dict`], whose order and SCAN cursors are Redis-like but, as in Redis,
//!   unspecified. A hash never converts back.

use super::keys::parse_cursor;
use super::Lookup;
use crate::command::Handler;
use crate::db::Value;
use crate::dict::{Dict, Key};
use crate::node::Ctx;
use crate::notify::{GENERIC, HASH};
use crate::numeric::LongDouble;
use crate::resp::parse_i64;
use bytes::Bytes;
use rand_core::RngCore;

/// Redis's `LISTPACK_MAX_SAFETY_SIZE`: a listpack is never grown past 1 GiB.
const LISTPACK_MAX_SAFETY_SIZE: usize = 1 << 30;

/// HRANDFIELD's CASE 3 threshold (`HRANDFIELD_SUB_STRATEGY_MUL`).
const HRANDFIELD_SUB_STRATEGY_MUL: u64 = 3;

// ---------------------------------------------------------------------------
// Listpack
// ---------------------------------------------------------------------------

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// Decodes a varint at `pos`: the value and the position after it.
fn get_varint(buf: &[u8], mut pos: usize) -> Option<(usize, usize)> {
    let mut n: usize = 0;
    let mut shift = 0u32;
    loop {
        let b = *buf.get(pos)?;
        pos += 1;
        if shift >= usize::BITS {
            return None;
        }
        n |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return Some((n, pos));
        }
        shift += 7;
    }
}

/// Where one field/value pair lives in a listpack buffer.
#[derive(Debug, Clone, Copy)]
struct PairPos {
    /// First byte of the pair (the field's length prefix).
    start: usize,
    field: (usize, usize),
    /// First byte of the value's length prefix.
    value_prefix: usize,
    value: (usize, usize),
    /// One past the value's last byte.
    end: usize,
}

/// Iterates the pairs of a listpack buffer by position.
struct PairPositions<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Iterator for PairPositions<'_> {
    type Item = PairPos;
    fn next(&mut self) -> Option<PairPos> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        let (flen, fstart) = get_varint(self.buf, start)?;
        let fend = fstart.checked_add(flen)?;
        let (vlen, vstart) = get_varint(self.buf, fend)?;
        let vend = vstart.checked_add(vlen)?;
        if vend > self.buf.len() {
            return None;
        }
        self.pos = vend;
        Some(PairPos {
            start,
            field: (fstart, fend),
            value_prefix: fend,
            value: (vstart, vend),
            end: vend,
        })
    }
}

/// A compact hash: field/value pairs in insertion order in one buffer (see
/// the module docs).
#[derive(Debug, Clone, Default)]
pub struct Listpack {
    buf: Box<[u8]>,
    len: usize,
}

impl Listpack {
    fn positions(&self) -> PairPositions<'_> {
        PairPositions {
            buf: &self.buf,
            pos: 0,
        }
    }

    /// The pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.positions().map(|p| {
            (
                &self.buf[p.field.0..p.field.1],
                &self.buf[p.value.0..p.value.1],
            )
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Size of the buffer in bytes (Redis's `lpBytes`, near enough).
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    fn find(&self, field: &[u8]) -> Option<PairPos> {
        self.positions()
            .find(|p| &self.buf[p.field.0..p.field.1] == field)
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.find(field).map(|p| &self.buf[p.value.0..p.value.1])
    }

    /// Sets a field; true if it was added, false if an existing value was
    /// replaced (in place, keeping the field's position).
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        match self.find(field) {
            Some(p) if p.value.1 - p.value.0 == value.len() => {
                // Same length, same length prefix: overwrite in place.
                self.buf[p.value.0..p.value.1].copy_from_slice(value);
                false
            }
            Some(p) => {
                let tail = &self.buf[p.end..];
                let mut out = Vec::with_capacity(
                    p.value_prefix + varint_len(value.len()) + value.len() + tail.len(),
                );
                out.extend_from_slice(&self.buf[..p.value_prefix]);
                put_varint(&mut out, value.len());
                out.extend_from_slice(value);
                out.extend_from_slice(tail);
                self.buf = out.into_boxed_slice();
                false
            }
            None => {
                let mut out = Vec::with_capacity(
                    self.buf.len()
                        + varint_len(field.len())
                        + field.len()
                        + varint_len(value.len())
                        + value.len(),
                );
                out.extend_from_slice(&self.buf);
                put_varint(&mut out, field.len());
                out.extend_from_slice(field);
                put_varint(&mut out, value.len());
                out.extend_from_slice(value);
                self.buf = out.into_boxed_slice();
                self.len += 1;
                true
            }
        }
    }

    /// Removes a field; true if it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        let Some(p) = self.find(field) else {
            return false;
        };
        let mut out = Vec::with_capacity(self.buf.len() - (p.end - p.start));
        out.extend_from_slice(&self.buf[..p.start]);
        out.extend_from_slice(&self.buf[p.end..]);
        self.buf = out.into_boxed_slice();
        self.len -= 1;
        true
    }
}

// ---------------------------------------------------------------------------
// Hash
// ---------------------------------------------------------------------------

/// The "hashtable" encoding: a seeded [`Dict`] (boxed so a [`Hash`] stays
/// small). The seed is kept so a copy (COPY) needs no fresh randomness.
pub struct HashTable {
    dict: Dict<Key>,
    seed: [u64; 2],
}

impl HashTable {
    fn new(rng: &mut impl RngCore) -> HashTable {
        let seed = [rng.next_u64(), rng.next_u64()];
        HashTable {
            dict: Dict::new(seed),
            seed,
        }
    }
}

impl Clone for HashTable {
    fn clone(&self) -> HashTable {
        let mut dict = Dict::new(self.seed);
        for (k, v) in self.dict.iter() {
            dict.insert(Key::from(k), v.clone());
        }
        HashTable {
            dict,
            seed: self.seed,
        }
    }
}

impl std::fmt::Debug for HashTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashTable")
            .field("len", &self.dict.len())
            .finish()
    }
}

/// A hash value in one of Redis's two encodings (see the module docs).
#[derive(Debug, Clone)]
pub enum Hash {
    Listpack(Listpack),
    Table(Box<HashTable>),
}

impl Default for Hash {
    fn default() -> Hash {
        Hash::Listpack(Listpack::default())
    }
}

/// The conversion thresholds, read from the config once per command.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// hash-max-listpack-entries
    pub entries: u64,
    /// hash-max-listpack-value
    pub value: u64,
}

impl Limits {
    pub fn from_config(c: &crate::config::Config) -> Limits {
        Limits {
            entries: c.hash_max_listpack_entries.max(0) as u64,
            value: c.hash_max_listpack_value.max(0) as u64,
        }
    }
}

/// Iterator over the pairs of either encoding.
pub struct HashIter<'a>(IterInner<'a>);

enum IterInner<'a> {
    Listpack(PairPositions<'a>),
    Table(crate::dict::Iter<'a, Key>),
}

impl<'a> Iterator for HashIter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterInner::Listpack(it) => {
                let buf = it.buf;
                it.next()
                    .map(|p| (&buf[p.field.0..p.field.1], &buf[p.value.0..p.value.1]))
            }
            IterInner::Table(it) => it.next().map(|(k, v)| (k, v.as_ref())),
        }
    }
}

impl Hash {
    /// OBJECT ENCODING's name for the current representation.
    pub fn encoding_name(&self) -> &'static str {
        match self {
            Hash::Listpack(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Hash::Listpack(lp) => lp.len(),
            Hash::Table(t) => t.dict.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            Hash::Listpack(lp) => lp.get(field),
            Hash::Table(t) => t.dict.get(field).map(|v| v.as_ref()),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// All pairs: insertion order for a listpack, table order otherwise.
    pub fn iter(&self) -> HashIter<'_> {
        match self {
            Hash::Listpack(lp) => HashIter(IterInner::Listpack(lp.positions())),
            Hash::Table(t) => HashIter(IterInner::Table(t.dict.iter())),
        }
    }

    /// Converts a listpack to a hash table (`hashTypeConvert`), keeping the
    /// pairs; a no-op for a table.
    pub fn convert(&mut self, rng: &mut impl RngCore) {
        if let Hash::Listpack(lp) = self {
            let mut t = HashTable::new(rng);
            for (f, v) in lp.iter() {
                t.dict.insert(Key::from(f), v.into());
            }
            *self = Hash::Table(Box::new(t));
        }
    }

    /// Redis's `hashTypeTryConversion`: converts a listpack up front if any
    /// of the arguments about to be stored is too long, or if they would
    /// grow it past the listpack safety limit.
    pub fn try_conversion(&mut self, args: &[Bytes], limits: Limits, rng: &mut impl RngCore) {
        let Hash::Listpack(lp) = self else {
            return;
        };
        let mut sum: usize = 0;
        for a in args {
            if a.len() as u64 > limits.value {
                return self.convert(rng);
            }
            sum = sum.saturating_add(a.len());
        }
        if lp.bytes().saturating_add(sum) > LISTPACK_MAX_SAFETY_SIZE {
            self.convert(rng);
        }
    }

    /// Redis's `hashTypeSet`: sets a field, converting the encoding when a
    /// threshold is crossed. Returns true if the field is new.
    pub fn set(
        &mut self,
        field: &[u8],
        value: &[u8],
        limits: Limits,
        rng: &mut impl RngCore,
    ) -> bool {
        if matches!(self, Hash::Listpack(_))
            && (field.len() as u64 > limits.value || value.len() as u64 > limits.value)
        {
            self.convert(rng);
        }
        match self {
            Hash::Listpack(lp) => {
                let added = lp.insert(field, value);
                if lp.len() as u64 > limits.entries {
                    self.convert(rng);
                }
                added
            }
            Hash::Table(t) => {
                if let Some(slot) = t.dict.get_mut(field) {
                    *slot = value.into();
                    false
                } else {
                    t.dict.insert(Key::from(field), value.into());
                    true
                }
            }
        }
    }

    /// Removes a field; true if it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Listpack(lp) => lp.remove(field),
            Hash::Table(t) => t.dict.remove(field).is_some(),
        }
    }

    /// A uniformly chosen pair (Redis's `hashTypeRandomElement`), or None
    /// if empty.
    pub fn random_pair(&self, rng: &mut impl RngCore) -> Option<(&[u8], &[u8])> {
        match self {
            Hash::Listpack(lp) => {
                if lp.is_empty() {
                    return None;
                }
                let i = (rng.next_u64() % lp.len() as u64) as usize;
                lp.iter().nth(i)
            }
            Hash::Table(t) => t.dict.random_entry(rng).map(|(k, v)| (k, v.as_ref())),
        }
    }
}

// ---------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------

/// Redis's `hashTypeLookupWriteOrCreate`: replies WRONGTYPE and returns
/// false for another type; creates an empty hash if the key is missing.
fn lookup_write_or_create(cx: &mut Ctx, key: &Bytes) -> bool {
    let db = cx.client.db;
    match cx.node.write_typed::<Hash>(db, key) {
        Lookup::Found(_) => true,
        Lookup::WrongType => {
            cx.wrongtype();
            false
        }
        Lookup::Missing => {
            let lru = cx.lru_now();
            cx.db().set(
                Bytes::copy_from_slice(key),
                Value::Hash(Hash::default()),
                lru,
            );
            true
        }
    }
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

/// This module's commands, by lowercase name.
pub fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "hset" => hset,
        "hmset" => hset,
        "hsetnx" => hsetnx,
        "hget" => hget,
        "hmget" => hmget,
        "hdel" => hdel,
        "hlen" => hlen,
        "hstrlen" => hstrlen,
        "hexists" => hexists,
        "hkeys" => hkeys,
        "hvals" => hvals,
        "hgetall" => hgetall,
        "hincrby" => hincrby,
        "hincrbyfloat" => hincrbyfloat,
        "hrandfield" => hrandfield,
        "hscan" => hscan,
        _ => return None,
    })
}

fn arity_error(cx: &mut Ctx) {
    let msg = format!(
        "ERR wrong number of arguments for '{}' command",
        cx.cmd.name
    );
    cx.error(&msg);
}

/// HSET key field value [field value ...] (reply: fields added) and
/// HMSET (reply: OK).
pub fn hset(cx: &mut Ctx) {
    if cx.argv.len() % 2 == 1 {
        return arity_error(cx);
    }
    let limits = Limits::from_config(&cx.node.config);
    let db = cx.client.db;
    let argv = cx.argv;
    let key = &argv[1];
    let set_all = |h: &mut Hash, rng: &mut rand_chacha::ChaCha8Rng| {
        h.try_conversion(&argv[2..], limits, rng);
        let mut created = 0;
        for pair in argv[2..].chunks_exact(2) {
            if h.set(&pair[0], &pair[1], limits, rng) {
                created += 1;
            }
        }
        created
    };
    // One lookup: the writes and the memory estimate happen on the entry
    // found (or the new hash is estimated as it enters the db).
    let created = match cx.node.write_typed_with::<Hash, _>(db, key, set_all) {
        Lookup::WrongType => return cx.wrongtype(),
        Lookup::Found(n) => n,
        Lookup::Missing => {
            let mut h = Hash::default();
            let n = set_all(&mut h, &mut cx.node.rng);
            let lru = cx.lru_now();
            cx.db()
                .set(Bytes::copy_from_slice(key), Value::Hash(h), lru);
            n
        }
    };
    cx.node.accounted = true;
    if cx.cmd.name == "hset" {
        cx.out().int(created);
    } else {
        cx.out().ok();
    }
    cx.notify(HASH, "hset", key);
    cx.dirty(((argv.len() - 2) / 2) as u64);
}

/// HSETNX key field value
pub fn hsetnx(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    if !lookup_write_or_create(cx, &key) {
        return;
    }
    let limits = Limits::from_config(&cx.node.config);
    let db = cx.client.db;
    let argv = cx.argv;
    let Some((h, rng)) = cx.node.typed_and_rng::<Hash>(db, &key) else {
        return;
    };
    if h.contains(&argv[2]) {
        return cx.out().int(0);
    }
    h.try_conversion(&argv[2..4], limits, rng);
    h.set(&argv[2], &argv[3], limits, rng);
    cx.out().int(1);
    cx.notify(HASH, "hset", &key);
    cx.dirty(1);
}

/// HGET key field
pub fn hget(cx: &mut Ctx) {
    let db = cx.client.db;
    let argv = cx.argv;
    let (key, field) = (&argv[1], &argv[2]);
    match cx.node.read_typed::<Hash>(db, key) {
        Lookup::Missing => cx.client.reply.null(),
        Lookup::Found(h) => match h.get(field) {
            Some(v) => cx.client.reply.bulk(v),
            None => cx.client.reply.null(),
        },
        Lookup::WrongType => cx.wrongtype(),
    }
}

/// HMGET key field [field ...]: nil for each missing field.
pub fn hmget(cx: &mut Ctx) {
    let db = cx.client.db;
    let argv = cx.argv;
    let hash = match cx.node.read_typed::<Hash>(db, &argv[1]) {
        Lookup::Missing => None,
        Lookup::Found(h) => Some(h),
        Lookup::WrongType => return cx.wrongtype(),
    };
    let out = &mut cx.client.reply;
    out.array(argv.len() - 2);
    for f in &argv[2..] {
        match hash.as_ref().and_then(|h| h.get(f)) {
            Some(v) => out.bulk(v),
            None => out.null(),
        }
    }
}

/// HDEL key field [field ...]: the number removed; an emptied hash is
/// deleted.
pub fn hdel(cx: &mut Ctx) {
    let db = cx.client.db;
    let argv = cx.argv;
    let key = &argv[1];
    let h = match cx.node.write_typed::<Hash>(db, key) {
        Lookup::Missing => return cx.out().int(0),
        Lookup::WrongType => return cx.wrongtype(),
        Lookup::Found(h) => h,
    };
    let mut deleted = 0;
    let mut emptied = false;
    for f in &argv[2..] {
        if h.remove(f) {
            deleted += 1;
            if h.is_empty() {
                emptied = true;
                break;
            }
        }
    }
    if deleted > 0 {
        cx.notify(HASH, "hdel", key);
    }
    if emptied {
        cx.delete_key(key);
        cx.notify(GENERIC, "del", key);
    }
    cx.dirty(deleted as u64);
    cx.out().int(deleted);
}

/// HLEN key
pub fn hlen(cx: &mut Ctx) {
    let db = cx.client.db;
    match cx.node.read_typed::<Hash>(db, &cx.argv[1]) {
        Lookup::Missing => cx.client.reply.int(0),
        Lookup::Found(h) => {
            let n = h.len() as i64;
            cx.client.reply.int(n)
        }
        Lookup::WrongType => cx.wrongtype(),
    }
}

/// HSTRLEN key field: 0 for a missing field.
pub fn hstrlen(cx: &mut Ctx) {
    let db = cx.client.db;
    let argv = cx.argv;
    let (key, field) = (&argv[1], &argv[2]);
    match cx.node.read_typed::<Hash>(db, key) {
        Lookup::Missing => cx.client.reply.int(0),
        Lookup::Found(h) => {
            let n = h.get(field).map_or(0, |v| v.len()) as i64;
            cx.client.reply.int(n)
        }
        Lookup::WrongType => cx.wrongtype(),
    }
}

/// HEXISTS key field
pub fn hexists(cx: &mut Ctx) {
    let db = cx.client.db;
    let argv = cx.argv;
    let (key, field) = (&argv[1], &argv[2]);
    match cx.node.read_typed::<Hash>(db, key) {
        Lookup::Missing => cx.client.reply.int(0),
        Lookup::Found(h) => {
            let n = h.contains(field) as i64;
            cx.client.reply.int(n)
        }
        Lookup::WrongType => cx.wrongtype(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum GetAll {
    Keys,
    Values,
    Both,
}

/// Redis's `genericHgetallCommand`: HKEYS and HVALS reply arrays, HGETALL
/// a map.
fn hgetall_generic(cx: &mut Ctx, what: GetAll) {
    let db = cx.client.db;
    match cx.node.read_typed::<Hash>(db, &cx.argv[1]) {
        Lookup::Missing => {
            if what == GetAll::Both {
                cx.client.reply.map(0)
            } else {
                cx.client.reply.array(0)
            }
        }
        Lookup::Found(h) => {
            let out = &mut cx.client.reply;
            if what == GetAll::Both {
                out.map(h.len());
            } else {
                out.array(h.len());
            }
            for (f, v) in h.iter() {
                if what != GetAll::Values {
                    out.bulk(f);
                }
                if what != GetAll::Keys {
                    out.bulk(v);
                }
            }
        }
        Lookup::WrongType => cx.wrongtype(),
    }
}

/// HKEYS key
pub fn hkeys(cx: &mut Ctx) {
    hgetall_generic(cx, GetAll::Keys);
}

/// HVALS key
pub fn hvals(cx: &mut Ctx) {
    hgetall_generic(cx, GetAll::Values);
}

/// HGETALL key
pub fn hgetall(cx: &mut Ctx) {
    hgetall_generic(cx, GetAll::Both);
}

/// HINCRBY key field increment
pub fn hincrby(cx: &mut Ctx) {
    let Some(incr) = cx.parse_int(3) else {
        return;
    };
    let key = cx.argv[1].clone();
    if !lookup_write_or_create(cx, &key) {
        return;
    }
    let limits = Limits::from_config(&cx.node.config);
    let db = cx.client.db;
    let argv = cx.argv;
    let field = &argv[2];
    let Some((h, rng)) = cx.node.typed_and_rng::<Hash>(db, &key) else {
        return;
    };
    let old = match h.get(field) {
        None => 0,
        Some(v) => match parse_i64(v) {
            Some(n) => n,
            None => return cx.error("ERR hash value is not an integer"),
        },
    };
    let Some(new) = old.checked_add(incr) else {
        return cx.error("ERR increment or decrement would overflow");
    };
    let mut buf = itoa::Buffer::new();
    h.set(field, buf.format(new).as_bytes(), limits, rng);
    cx.out().int(new);
    cx.notify(HASH, "hincrby", &key);
    cx.dirty(1);
}

/// HINCRBYFLOAT key field increment: long-double arithmetic, formatted as
/// INCRBYFLOAT does.
pub fn hincrbyfloat(cx: &mut Ctx) {
    let Some(incr) = LongDouble::parse(&cx.argv[3]) else {
        return cx.error("ERR value is not a valid float");
    };
    if !incr.is_finite() {
        return cx.error("ERR value is NaN or Infinity");
    }
    let key = cx.argv[1].clone();
    if !lookup_write_or_create(cx, &key) {
        return;
    }
    let limits = Limits::from_config(&cx.node.config);
    let db = cx.client.db;
    let argv = cx.argv;
    let field = &argv[2];
    let Some((h, rng)) = cx.node.typed_and_rng::<Hash>(db, &key) else {
        return;
    };
    let old = match h.get(field) {
        None => LongDouble::from_i64(0),
        // A listpack keeps integers as integers; reading one back is exact.
        Some(v) => match parse_i64(v) {
            Some(n) => LongDouble::from_i64(n),
            None => match LongDouble::parse(v) {
                Some(d) => d,
                None => return cx.error("ERR hash value is not a float"),
            },
        },
    };
    let sum = old.add(incr);
    if !sum.is_finite() {
        return cx.error("ERR increment would produce NaN or Infinity");
    }
    let text = sum.to_redis_string();
    h.set(field, text.as_bytes(), limits, rng);
    cx.out().bulk(text.as_bytes());
    cx.notify(HASH, "hincrbyfloat", &key);
    cx.dirty(1);
}

/// HRANDFIELD key [count [WITHVALUES]]
pub fn hrandfield(cx: &mut Ctx) {
    let argc = cx.argv.len();
    if argc >= 3 {
        let l = match parse_i64(&cx.argv[2]) {
            None => return cx.error("ERR value is not an integer or out of range"),
            Some(i64::MIN) => {
                return cx.error(
                    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                )
            }
            Some(n) => n,
        };
        let mut withvalues = false;
        if argc > 4 || (argc == 4 && !cx.arg_is(3, "withvalues")) {
            return cx.syntax_error();
        } else if argc == 4 {
            withvalues = true;
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
                return cx.error("ERR value is out of range");
            }
        }
        return hrandfield_with_count(cx, l, withvalues);
    }
    let db = cx.client.db;
    let argv = cx.argv;
    let key = &argv[1];
    match cx.node.read_typed::<Hash>(db, key) {
        Lookup::Missing => return cx.client.reply.null(),
        Lookup::WrongType => return cx.wrongtype(),
        Lookup::Found(_) => {}
    }
    let Some((h, rng)) = cx.node.typed_and_rng::<Hash>(db, key) else {
        return;
    };
    match h.random_pair(rng) {
        Some((f, _)) => cx.client.reply.bulk(f),
        None => cx.client.reply.null(),
    }
}

/// Redis's `hrandfieldWithCountCommand`, case by case.
fn hrandfield_with_count(cx: &mut Ctx, l: i64, withvalues: bool) {
    let db = cx.client.db;
    let argv = cx.argv;
    let key = &argv[1];
    match cx.node.read_typed::<Hash>(db, key) {
        Lookup::Missing => return cx.client.reply.array(0),
        Lookup::WrongType => return cx.wrongtype(),
        Lookup::Found(_) => {}
    }
    let (count, uniq) = if l >= 0 {
        (l as u64, true)
    } else {
        (l.unsigned_abs(), false)
    };
    if count == 0 {
        return cx.client.reply.array(0);
    }
    let out = &mut cx.client.reply;
    let resp3 = out.resp3;
    let Some((h, rng)) = cx.node.typed_and_rng::<Hash>(db, key) else {
        return;
    };
    let size = h.len() as u64;
    if size == 0 {
        // Never stored (emptied hashes are deleted); reply as if missing.
        return out.array(0);
    }
    let pairs_header = |out: &mut crate::resp::ReplyBuf, n: u64| {
        if withvalues && !resp3 {
            out.array((n as usize).saturating_mul(2));
        } else {
            out.array(n as usize);
        }
    };
    let emit = |out: &mut crate::resp::ReplyBuf, f: &[u8], v: &[u8]| {
        if withvalues && resp3 {
            out.array(2);
        }
        out.bulk(f);
        if withvalues {
            out.bulk(v);
        }
    };

    // CASE 1: negative count (repeats allowed) or a single field.
    if !uniq || count == 1 {
        pairs_header(out, count);
        match &*h {
            Hash::Listpack(lp) => {
                let pairs: Vec<(&[u8], &[u8])> = lp.iter().collect();
                if pairs.is_empty() {
                    return;
                }
                for _ in 0..count {
                    let i = (rng.next_u64() % pairs.len() as u64) as usize;
                    let (f, v) = pairs[i];
                    emit(out, f, v);
                }
            }
            Hash::Table(t) => {
                for _ in 0..count {
                    let Some((f, v)) = t.dict.random_entry(rng) else {
                        return;
                    };
                    emit(out, f, v);
                }
            }
        }
        return;
    }

    pairs_header(out, count.min(size));

    // CASE 2: the whole hash.
    if count >= size {
        for (f, v) in h.iter() {
            emit(out, f, v);
        }
        return;
    }

    // CASE 3: copy everything, then remove random fields down to count.
    if count * HRANDFIELD_SUB_STRATEGY_MUL > size {
        let mut d: Dict<Key> = Dict::new([rng.next_u64(), rng.next_u64()]);
        for (f, v) in h.iter() {
            d.insert(Key::from(f), v.into());
        }
        let mut left = size;
        while left > count {
            let Some((k, _)) = d.random_entry(rng) else {
                break;
            };
            let k = k.to_vec();
            d.remove(&k);
            left -= 1;
        }
        for (f, v) in d.iter() {
            emit(out, f, v);
        }
        return;
    }

    // CASE 4: pick random fields until `count` distinct ones were replied.
    let mut seen: Dict<()> = Dict::new([rng.next_u64(), rng.next_u64()]);
    let pairs: Vec<(&[u8], &[u8])> = match &*h {
        Hash::Listpack(lp) => lp.iter().collect(),
        Hash::Table(_) => Vec::new(),
    };
    let mut added = 0;
    while added < count {
        let pick = match &*h {
            Hash::Listpack(_) => {
                if pairs.is_empty() {
                    return;
                }
                Some(pairs[(rng.next_u64() % pairs.len() as u64) as usize])
            }
            Hash::Table(t) => t.dict.random_entry(rng).map(|(k, v)| (k, v.as_ref())),
        };
        let Some((f, v)) = pick else {
            return;
        };
        if seen.contains_key(f) {
            continue;
        }
        seen.insert(Key::from(f), ());
        added += 1;
        emit(out, f, v);
    }
}

/// Parses SCAN-style options from argument `from`: COUNT and MATCH (the
/// TYPE option is only for SCAN). Returns (count, pattern) or replies with
/// Redis's error.
pub(crate) fn parse_scan_options(cx: &mut Ctx, from: usize) -> Option<(u64, Option<Bytes>)> {
    let mut count: u64 = 10;
    let mut pattern = None;
    let mut i = from;
    while i < cx.argv.len() {
        let left = cx.argv.len() - i;
        if cx.arg_is(i, "count") && left >= 2 {
            let n = cx.parse_int(i + 1)?;
            if n < 1 {
                cx.syntax_error();
                return None;
            }
            count = n as u64;
        } else if cx.arg_is(i, "match") && left >= 2 {
            let p = cx.argv[i + 1].clone();
            pattern = if p.as_ref() == b"*" { None } else { Some(p) };
        } else {
            cx.syntax_error();
            return None;
        }
        i += 2;
    }
    Some((count, pattern))
}

/// Scans a [`Dict`] as Redis's `scanGenericCommand` does: buckets until
/// `count` items were gathered (each entry adding `per_entry` items), at
/// most `10 * count` buckets, or the end. Returns the next cursor.
pub(crate) fn scan_dict<V>(
    dict: &Dict<V>,
    mut cursor: u64,
    count: u64,
    per_entry: u64,
    mut f: impl FnMut(&[u8], &V),
) -> u64 {
    let count = count.saturating_mul(per_entry);
    let mut max_iterations = count.saturating_mul(10);
    let mut found: u64 = 0;
    loop {
        cursor = dict.scan(cursor, |k, v| {
            found += per_entry;
            f(k, v);
        });
        if cursor == 0 || max_iterations == 0 || found >= count {
            break;
        }
        max_iterations -= 1;
    }
    cursor
}

/// The reply of a scan over a missing key.
pub(crate) fn reply_empty_scan(cx: &mut Ctx) {
    let out = cx.out();
    out.array(2);
    out.bulk(b"0");
    out.array(0);
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]: a listpack is returned
/// whole with cursor 0, a table bucket by bucket.
pub fn hscan(cx: &mut Ctx) {
    let Some(cursor) = parse_cursor(&cx.argv[2]) else {
        return cx.error("ERR invalid cursor");
    };
    let db = cx.client.db;
    match cx.node.read_typed::<Hash>(db, &cx.argv[1]) {
        Lookup::Missing => return reply_empty_scan(cx),
        Lookup::WrongType => return cx.wrongtype(),
        Lookup::Found(_) => {}
    }
    let Some((count, pattern)) = parse_scan_options(cx, 3) else {
        return;
    };
    let Some((h, _)) = cx.node.typed_and_rng::<Hash>(db, &cx.argv[1]) else {
        return;
    };
    let mut items: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let next = match &*h {
        Hash::Listpack(lp) => {
            items.extend(lp.iter().map(|(f, v)| (f.to_vec(), v.to_vec())));
            0
        }
        Hash::Table(t) => scan_dict(&t.dict, cursor, count, 2, |k, v| {
            items.push((k.to_vec(), v.to_vec()))
        }),
    };
    if let Some(p) = &pattern {
        items.retain(|(f, _)| crate::glob::matches(p, f, false));
    }
    let out = &mut cx.client.reply;
    out.array(2);
    out.bulk(itoa::Buffer::new().format(next).as_bytes());
    out.array(items.len() * 2);
    for (f, v) in items {
        out.bulk(&f);
        out.bulk(&v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    fn limits(entries: u64, value: u64) -> Limits {
        Limits { entries, value }
    }

    #[test]
    fn varints_round_trip() {
        for n in [0usize, 1, 127, 128, 255, 16383, 16384, 1 << 30, usize::MAX] {
            let mut v = Vec::new();
            put_varint(&mut v, n);
            assert_eq!(v.len(), varint_len(n));
            assert_eq!(get_varint(&v, 0), Some((n, v.len())));
        }
        assert_eq!(get_varint(&[0x80, 0x80], 0), None);
        assert_eq!(get_varint(&[0xff; 20], 0), None);
    }

    #[test]
    fn listpack_keeps_insertion_order_and_updates_in_place() {
        let mut lp = Listpack::default();
        assert!(lp.insert(b"b", b"1"));
        assert!(lp.insert(b"a", b"2"));
        assert!(lp.insert(b"c", b""));
        assert!(!lp.insert(b"a", &[b'x'; 300]));
        assert_eq!(lp.len(), 3);
        let got: Vec<(Vec<u8>, Vec<u8>)> =
            lp.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
        assert_eq!(
            got,
            vec![
                (b"b".to_vec(), b"1".to_vec()),
                (b"a".to_vec(), vec![b'x'; 300]),
                (b"c".to_vec(), b"".to_vec()),
            ]
        );
        // A value of the same length is overwritten in place.
        assert!(!lp.insert(b"b", b"9"));
        assert_eq!(lp.get(b"b"), Some(&b"9"[..]));
        assert!(!lp.insert(b"a", &[b'y'; 300]));
        assert_eq!(lp.get(b"a"), Some(&[b'y'; 300][..]));
        assert_eq!(lp.get(b"c"), Some(&b""[..]));
        assert!(lp.remove(b"a"));
        assert!(!lp.remove(b"a"));
        assert_eq!(lp.get(b"c"), Some(&b""[..]));
        assert_eq!(lp.get(b"a"), None);
        assert_eq!(lp.len(), 2);
        // Exactly sized: 2 pairs of 1-byte prefix + data.
        assert_eq!(lp.bytes(), (1 + 1 + 1 + 1) + (1 + 1 + 1));
    }

    #[test]
    fn converts_at_the_thresholds_and_never_back() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let lim = limits(3, 5);
        let mut h = Hash::default();
        for f in ["a", "b", "c"] {
            assert!(h.set(f.as_bytes(), b"v", lim, &mut rng));
        }
        assert_eq!(h.encoding_name(), "listpack");
        assert!(!h.set(b"a", b"12345", lim, &mut rng));
        assert_eq!(h.encoding_name(), "listpack");
        assert!(h.set(b"d", b"v", lim, &mut rng));
        assert_eq!(h.encoding_name(), "hashtable");
        assert_eq!(h.len(), 4);
        assert_eq!(h.get(b"a"), Some(&b"12345"[..]));
        h.remove(b"d");
        h.remove(b"c");
        assert_eq!(h.encoding_name(), "hashtable");

        let mut h = Hash::default();
        h.set(b"f", b"123456", lim, &mut rng);
        assert_eq!(h.encoding_name(), "hashtable");
        let mut h = Hash::default();
        h.set(b"field6", b"1", lim, &mut rng);
        assert_eq!(h.encoding_name(), "hashtable");

        let mut h = Hash::default();
        h.try_conversion(&[Bytes::from("f"), Bytes::from("123456")], lim, &mut rng);
        assert_eq!(h.encoding_name(), "hashtable");
    }

    #[test]
    fn zero_entries_limit_converts_on_first_field() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut h = Hash::default();
        h.set(b"a", b"1", limits(0, 64), &mut rng);
        assert_eq!(h.encoding_name(), "hashtable");
    }

    #[test]
    fn random_picks_are_deterministic_for_a_seed() {
        let build = || {
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let mut h = Hash::default();
            for i in 0..100 {
                h.set(format!("f{i}").as_bytes(), b"v", limits(10, 64), &mut rng);
            }
            (h, rng)
        };
        let picks = |(h, mut rng): (Hash, ChaCha8Rng)| -> Vec<Vec<u8>> {
            (0..20)
                .map(|_| {
                    h.random_pair(&mut rng)
                        .map(|p| p.0.to_vec())
                        .unwrap_or_default()
                })
                .collect()
        };
        assert_eq!(picks(build()), picks(build()));
        let (h, _) = build();
        let c = h.clone();
        let mut a: Vec<&[u8]> = h.iter().map(|p| p.0).collect();
        let mut b: Vec<&[u8]> = c.iter().map(|p| p.0).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "a copy has the same fields");
    }

    #[test]
    fn value_stays_small() {
        assert!(
            std::mem::size_of::<Hash>() <= 24,
            "{}",
            std::mem::size_of::<Hash>()
        );
    }
}
