//! Parsing: whole files ([`load`]) and single values (RESTORE), following
//! Redis 7.0's `rdbLoadRio` / `rdbLoadObject`, including the encodings of
//! older versions, which are converted as 7.0 converts them.
//!
//! Every length read from the input is checked against the bytes left
//! before it sizes an allocation, and every loop consumes input, so hostile
//! input ends in an [`RdbError`] in time proportional to its size.

use super::listpack::{self, Entry};
use super::{err, intset, lzf, ziplist, LoadOptions, Loaded, RdbError};
use super::{
    QUICKLIST_NODE_CONTAINER_PACKED, QUICKLIST_NODE_CONTAINER_PLAIN, RDB_OPCODE_AUX,
    RDB_OPCODE_EOF, RDB_OPCODE_EXPIRETIME, RDB_OPCODE_EXPIRETIME_MS, RDB_OPCODE_FREQ,
    RDB_OPCODE_FUNCTION, RDB_OPCODE_FUNCTION2, RDB_OPCODE_IDLE, RDB_OPCODE_MODULE_AUX,
    RDB_OPCODE_RESIZEDB, RDB_OPCODE_SELECTDB, RDB_TYPE_HASH, RDB_TYPE_HASH_LISTPACK,
    RDB_TYPE_HASH_ZIPLIST, RDB_TYPE_HASH_ZIPMAP, RDB_TYPE_LIST, RDB_TYPE_LIST_QUICKLIST,
    RDB_TYPE_LIST_QUICKLIST_2, RDB_TYPE_LIST_ZIPLIST, RDB_TYPE_MODULE, RDB_TYPE_MODULE_2,
    RDB_TYPE_SET, RDB_TYPE_SET_INTSET, RDB_TYPE_STREAM_LISTPACKS, RDB_TYPE_STREAM_LISTPACKS_2,
    RDB_TYPE_STREAM_LISTPACKS_3, RDB_TYPE_STRING, RDB_TYPE_ZSET, RDB_TYPE_ZSET_2,
    RDB_TYPE_ZSET_LISTPACK, RDB_TYPE_ZSET_ZIPLIST, RDB_VERSION,
};
use crate::commands::hashes::{self, Hash};
use crate::commands::lists::List;
use crate::commands::sets::{self, Set};
use crate::commands::zsets::{self, ZSet};
use crate::db::{Str, Value};
use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::borrow::Cow;

/// The RNG [`load`] and `restore_payload` seed hash tables from when the
/// caller gives none.
pub(crate) fn fixed_rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(0x7264_625f_6c6f_6164)
}

fn eof() -> RdbError {
    RdbError("Unexpected EOF reading RDB file".into())
}

/// A cursor over the input.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn u8(&mut self) -> Result<u8, RdbError> {
        let b = *self.data.get(self.pos).ok_or_else(eof)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RdbError> {
        if n > self.remaining() {
            return Err(eof());
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// `rdbLoadLenByRef`: a length, or (with `true`) a special encoding
    /// number from a `11xxxxxx` byte.
    fn len_or_enc(&mut self) -> Result<(u64, bool), RdbError> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => ((b & 0x3F) as u64, false),
            1 => ((((b & 0x3F) as u64) << 8) | self.u8()? as u64, false),
            2 => match b {
                0x80 => (u32::from_be_bytes(self.array()?) as u64, false),
                0x81 => (u64::from_be_bytes(self.array()?), false),
                _ => return err(format!("Unknown length encoding {b} in rdbLoadLen()")),
            },
            _ => ((b & 0x3F) as u64, true),
        })
    }

    /// A plain length.
    fn len(&mut self) -> Result<u64, RdbError> {
        match self.len_or_enc()? {
            (n, false) => Ok(n),
            (_, true) => err("Unexpected encoded length"),
        }
    }

    /// A count of items each taking at least one byte: bounded by the input
    /// left, so it can size an allocation.
    fn count(&mut self) -> Result<usize, RdbError> {
        let n = self.len()?;
        if n > self.remaining() as u64 {
            return Err(eof());
        }
        Ok(n as usize)
    }

    /// `rdbGenericLoadStringObject`: a string, int-encoded or LZF.
    fn string(&mut self) -> Result<Cow<'a, [u8]>, RdbError> {
        let (len, encoded) = self.len_or_enc()?;
        if !encoded {
            if len > self.remaining() as u64 {
                return Err(eof());
            }
            return Ok(Cow::Borrowed(self.take(len as usize)?));
        }
        let int = |v: i64| Cow::Owned(itoa::Buffer::new().format(v).as_bytes().to_vec());
        match len {
            0 => Ok(int(self.u8()? as i8 as i64)),
            1 => Ok(int(i16::from_le_bytes(self.array()?) as i64)),
            2 => Ok(int(i32::from_le_bytes(self.array()?) as i64)),
            3 => {
                let clen = self.len()?;
                let len = self.len()?;
                if clen > self.remaining() as u64 {
                    return Err(eof());
                }
                let compressed = self.take(clen as usize)?;
                if len > clen.saturating_mul(lzf::MAX_RATIO as u64) {
                    return err("Invalid LZF compressed string");
                }
                lzf::decompress(compressed, len as usize)
                    .map(Cow::Owned)
                    .ok_or_else(|| RdbError("Invalid LZF compressed string".into()))
            }
            n => err(format!("Unknown RDB string encoding type {n}")),
        }
    }

    /// `rdbLoadBinaryDoubleValue`.
    fn binary_double(&mut self) -> Result<f64, RdbError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// `rdbLoadDoubleValue`: the old text form (length byte, 253 = NaN,
    /// 254 = +inf, 255 = -inf).
    fn text_double(&mut self) -> Result<f64, RdbError> {
        match self.u8()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let s = self.take(n as usize)?;
                // sscanf("%lg"): the longest numeric prefix.
                let (v, used) = zsets::strtod(s);
                if used == 0 {
                    return err("bad double value");
                }
                Ok(v)
            }
        }
    }
}

fn is_object_type(t: u8) -> bool {
    t <= 7 || (9..=19).contains(&t) || t == RDB_TYPE_STREAM_LISTPACKS_3
}

/// [`load`] with hash tables seeded from a fixed RNG; see [`load_with_rng`].
pub fn load(
    data: &[u8],
    opts: &LoadOptions,
    sink: &mut dyn FnMut(Loaded) -> Result<(), RdbError>,
) -> Result<usize, RdbError> {
    load_with_rng(data, opts, &mut fixed_rng(), sink)
}

/// Parses an RDB image, handing each item to `sink` in file order; an
/// error from the sink stops the load and is returned. Hash tables of the
/// loaded values are seeded from `rng` (the node's, so their order follows
/// the engine seed). Returns the bytes the image took (through its
/// checksum): what follows is not read, as Redis reads an old-style AOF's
/// command tail after its RDB preamble.
pub fn load_with_rng(
    data: &[u8],
    opts: &LoadOptions,
    rng: &mut impl RngCore,
    sink: &mut dyn FnMut(Loaded) -> Result<(), RdbError>,
) -> Result<usize, RdbError> {
    let mut r = Reader { data, pos: 0 };
    let magic = r
        .take(9)
        .map_err(|_| RdbError("Wrong signature trying to load DB from file".into()))?;
    if &magic[..5] != b"REDIS" {
        return err("Wrong signature trying to load DB from file");
    }
    // atoi(): leading digits, else 0.
    let version = magic[5..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u32, |v, d| v * 10 + (d - b'0') as u32);
    if !(1..=RDB_VERSION).contains(&version) {
        return err(format!("Can't handle RDB format version {version}"));
    }

    let mut db = 0usize;
    let mut expire_ms: Option<i64> = None;
    let mut idle_s: Option<u64> = None;
    let mut freq: Option<u8> = None;
    loop {
        let t = r.u8()?;
        match t {
            RDB_OPCODE_EXPIRETIME => {
                // Seconds, as a 32-bit int (RDB versions before 3).
                let s = i32::from_le_bytes(r.array()?);
                expire_ms = Some(s as i64 * 1000);
            }
            RDB_OPCODE_EXPIRETIME_MS => expire_ms = Some(i64::from_le_bytes(r.array()?)),
            RDB_OPCODE_FREQ => freq = Some(r.u8()?),
            RDB_OPCODE_IDLE => idle_s = Some(r.len()?),
            RDB_OPCODE_EOF => break,
            RDB_OPCODE_SELECTDB => {
                let id = r.len()?;
                if id >= opts.config.databases as u64 {
                    return err(format!(
                        "FATAL: Data file was created with a Redis server configured to handle more than {} databases. Exiting",
                        opts.config.databases
                    ));
                }
                db = id as usize;
            }
            RDB_OPCODE_RESIZEDB => {
                r.len()?;
                r.len()?;
            }
            RDB_OPCODE_AUX => {
                let key = r.string()?.into_owned();
                let value = r.string()?.into_owned();
                sink(Loaded::Aux { key, value })?;
            }
            RDB_OPCODE_MODULE_AUX => {
                return err(
                    "The RDB file contains AUX module data I can't load: no matching module",
                )
            }
            RDB_OPCODE_FUNCTION => return err("Pre-release function format not supported."),
            RDB_OPCODE_FUNCTION2 => {
                let code = r.string()?.into_owned();
                sink(Loaded::Function { code })?;
            }
            t if is_object_type(t) => {
                let key = Bytes::from(r.string()?.into_owned());
                let value = read_object(&mut r, t, opts, rng)?;
                let (e, i, f) = (expire_ms.take(), idle_s.take(), freq.take());
                // Redis skips empty collections in files (and logs them).
                if let Some(value) = value {
                    sink(Loaded::Key {
                        db,
                        key,
                        value,
                        expire_ms: e,
                        idle_s: i,
                        freq: f,
                    })?;
                }
            }
            t => return err(format!("Unknown RDB encoding type {t}")),
        }
    }

    if version >= 5 {
        let computed = super::Crc64::checksum(&data[..r.pos]);
        let stored = u64::from_le_bytes(r.array()?);
        if opts.check_checksum && stored != 0 && stored != computed {
            return err("Wrong RDB checksum");
        }
    }
    Ok(r.pos)
}

/// RESTORE's value: a type byte and the object (bytes after it are
/// ignored, as Redis ignores them).
pub(crate) fn read_payload_value(
    body: &[u8],
    opts: &LoadOptions,
    rng: &mut impl RngCore,
) -> Result<Value, RdbError> {
    let mut r = Reader { data: body, pos: 0 };
    let t = r.u8()?;
    if !is_object_type(t) {
        return err(format!("Unknown RDB encoding type {t}"));
    }
    read_object(&mut r, t, opts, rng)?.ok_or_else(|| RdbError("Empty keys are not allowed".into()))
}

/// `rdbLoadObject`: a value of type `t`, or None for an empty collection
/// (which a file load skips and RESTORE refuses).
fn read_object(
    r: &mut Reader,
    t: u8,
    opts: &LoadOptions,
    rng: &mut impl RngCore,
) -> Result<Option<Value>, RdbError> {
    let config = opts.config;
    let value = match t {
        RDB_TYPE_STRING => {
            // tryObjectEncoding: int, embstr or raw as for a new argument.
            let s = r.string()?.into_owned();
            Value::Str(Str::from_arg(Bytes::from(s)))
        }
        RDB_TYPE_LIST => {
            let n = r.count()?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(r.string()?);
            }
            list_from(items.iter().map(|c| &c[..]), config)
        }
        RDB_TYPE_SET => {
            let n = r.count()?;
            let max = sets::max_intset_entries(config);
            let mut set = Set::default();
            if n as u64 > max {
                set.convert(rng);
            }
            for _ in 0..n {
                let m = r.string()?;
                if !set.add(&m, max, rng) {
                    return err("Duplicate set members detected");
                }
            }
            Value::Set(set)
        }
        RDB_TYPE_ZSET | RDB_TYPE_ZSET_2 => {
            let n = r.count()?;
            let mut items: Vec<(f64, Cow<[u8]>)> = Vec::with_capacity(n);
            for _ in 0..n {
                let m = r.string()?;
                let score = if t == RDB_TYPE_ZSET_2 {
                    r.binary_double()?
                } else {
                    r.text_double()?
                };
                if score.is_nan() {
                    return err("Zset with NAN score detected");
                }
                items.push((score, m));
            }
            let mut items: Vec<(f64, &[u8])> = items.iter().map(|(s, m)| (*s, &m[..])).collect();
            // The zset order: by score (-0 equals 0, no NaN here), then
            // member.
            items.sort_by(|a, b| {
                a.0.partial_cmp(&b.0)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.1.cmp(b.1))
            });
            check_distinct(items.iter().map(|x| x.1), "Duplicate zset fields detected")?;
            zset_from_sorted(&items, config, false)
        }
        RDB_TYPE_HASH => {
            let n = r.count()?;
            let limits = hashes::Limits::from_config(config);
            let mut h = Hash::default();
            if n as u64 > limits.entries {
                h.convert(rng);
            }
            for _ in 0..n {
                let f = r.string()?;
                let v = r.string()?;
                if !h.set(&f, &v, limits, rng) {
                    return err("Duplicate hash fields detected");
                }
            }
            Value::Hash(h)
        }
        RDB_TYPE_LIST_QUICKLIST | RDB_TYPE_LIST_QUICKLIST_2 => {
            let nodes = r.count()?;
            let mut blobs: Vec<(u64, Cow<[u8]>)> = Vec::with_capacity(nodes);
            for _ in 0..nodes {
                let container = if t == RDB_TYPE_LIST_QUICKLIST_2 {
                    r.len()?
                } else {
                    QUICKLIST_NODE_CONTAINER_PACKED
                };
                blobs.push((container, r.string()?));
            }
            // The nodes are kept as read, as Redis keeps them.
            let mut list_nodes: Vec<Vec<Vec<u8>>> = Vec::new();
            for (container, blob) in &blobs {
                match *container {
                    QUICKLIST_NODE_CONTAINER_PLAIN => list_nodes.push(vec![blob.to_vec()]),
                    QUICKLIST_NODE_CONTAINER_PACKED => {
                        let entries = if t == RDB_TYPE_LIST_QUICKLIST_2 {
                            listpack::decode(blob)?
                        } else {
                            ziplist::decode(blob)?
                        };
                        // Empty nodes are skipped silently, as in Redis.
                        list_nodes.push(entries.into_iter().map(Entry::to_vec).collect());
                    }
                    c => return err(format!("Quicklist integrity check failed: container {c}")),
                }
            }
            Value::List(List::from_nodes(list_nodes))
        }
        RDB_TYPE_LIST_ZIPLIST => {
            let blob = r.string()?;
            let entries: Vec<Vec<u8>> = ziplist::decode(&blob)?
                .into_iter()
                .map(Entry::to_vec)
                .collect();
            list_from(entries.iter().map(|e| &e[..]), config)
        }
        RDB_TYPE_SET_INTSET => {
            let blob = r.string()?;
            let is = intset::decode(&blob)?;
            if is.is_empty() {
                return Ok(None);
            }
            let mut set = Set::Int(is);
            if set.len() as u64 > sets::max_intset_entries(config) {
                set.convert(rng);
            }
            Value::Set(set)
        }
        RDB_TYPE_HASH_ZIPMAP => {
            let blob = r.string()?;
            let pairs = ziplist::decode_zipmap(&blob)?;
            // A zipmap converts like a loaded hash table: by count and by
            // the longest field or value.
            let limits = hashes::Limits::from_config(config);
            let mut h = Hash::default();
            for (f, v) in pairs {
                if !h.set(f, v, limits, rng) {
                    return err("Hash zipmap with dup elements");
                }
            }
            Value::Hash(h)
        }
        RDB_TYPE_HASH_ZIPLIST | RDB_TYPE_HASH_LISTPACK => {
            let blob = r.string()?;
            let entries = if t == RDB_TYPE_HASH_LISTPACK {
                listpack::decode(&blob)?
            } else {
                ziplist::decode(&blob)?
            };
            hash_from_pairs(&entries, config, rng)?
        }
        RDB_TYPE_ZSET_ZIPLIST | RDB_TYPE_ZSET_LISTPACK => {
            let blob = r.string()?;
            let entries = if t == RDB_TYPE_ZSET_LISTPACK {
                listpack::decode(&blob)?
            } else {
                ziplist::decode(&blob)?
            };
            zset_from_pairs(&entries, config)?
        }
        RDB_TYPE_STREAM_LISTPACKS | RDB_TYPE_STREAM_LISTPACKS_2 | RDB_TYPE_STREAM_LISTPACKS_3 => {
            return read_stream(r, t).map(Some)
        }
        RDB_TYPE_MODULE | RDB_TYPE_MODULE_2 => {
            return err("The RDB file contains module data I can't load: no matching module")
        }
        t => return err(format!("Unknown RDB encoding type {t}")),
    };
    Ok(Some(value).filter(non_empty))
}

fn non_empty(v: &Value) -> bool {
    match v {
        Value::Str(_) => true,
        Value::List(l) => !l.is_empty(),
        Value::Hash(h) => !h.is_empty(),
        Value::Set(s) => !s.is_empty(),
        Value::ZSet(z) => !z.is_empty(),
        // Redis keeps empty streams (XGROUP CREATE MKSTREAM, XDEL of all).
        Value::Stream(_) => true,
    }
}

/// `rdbLoadObject` for streams: nodes as stored (each validated as Redis's
/// `streamValidateListpackIntegrity` does), the stream's counters, then
/// the groups with their PELs and consumers. Types 15 and 19 lack some
/// counters, which are derived as Redis derives them.
fn read_stream(r: &mut Reader, t: u8) -> Result<Value, RdbError> {
    use crate::stream::{Consumer, Group, Pending, Stream, StreamId};
    let mut s = Stream::new();
    let nodes = r.count()?;
    for _ in 0..nodes {
        let key = r.string()?;
        let Some(master) = StreamId::decode(&key) else {
            return err("Stream node key entry is not the size of a stream ID");
        };
        let lp = r.string()?.into_owned();
        if listpack::decode(&lp)?.is_empty() {
            return err("Empty listpack inside stream");
        }
        if s.raw_nodes().any(|(k, _)| *k >= master) {
            return err("Stream node keys out of order");
        }
        s.insert_raw_node(master, lp);
    }
    s.length = r.len()?;
    s.last_id = StreamId::new(r.len()?, r.len()?);
    if t >= RDB_TYPE_STREAM_LISTPACKS_2 {
        s.first_id = StreamId::new(r.len()?, r.len()?);
        s.max_deleted_id = StreamId::new(r.len()?, r.len()?);
        s.entries_added = r.len()?;
    } else {
        s.first_id = if s.length == 0 {
            StreamId::MIN
        } else {
            s.edge_id(true, true)
        };
        s.entries_added = s.length;
    }
    if !s.validate() {
        return err("Stream integrity check failed");
    }
    let ngroups = r.count()?;
    for _ in 0..ngroups {
        let name = Bytes::from(r.string()?.into_owned());
        let last_id = StreamId::new(r.len()?, r.len()?);
        let entries_read = if t >= RDB_TYPE_STREAM_LISTPACKS_2 {
            r.len()? as i64
        } else {
            s.estimate_distance(last_id)
        };
        let mut g = Group::new(last_id, entries_read);
        let npel = r.count()?;
        for _ in 0..npel {
            let id = StreamId::decode(&r.array::<16>()?).unwrap_or_default();
            let delivery_time = i64::from_le_bytes(r.array()?);
            let delivery_count = r.len()?;
            let p = Pending {
                delivery_time,
                delivery_count,
                consumer: Bytes::new(),
            };
            if g.pel.insert(id, p).is_some() {
                return err("Duplicated global PEL entry loading stream consumer group");
            }
        }
        let nconsumers = r.count()?;
        let mut assigned = std::collections::BTreeSet::new();
        for _ in 0..nconsumers {
            let cname = Bytes::from(r.string()?.into_owned());
            let seen_time = i64::from_le_bytes(r.array()?);
            if t == RDB_TYPE_STREAM_LISTPACKS_3 {
                // Redis 7.2's active time, which 7.0 does not keep.
                let _active_time: [u8; 8] = r.array()?;
            }
            let mut c = Consumer {
                seen_time,
                pel: Default::default(),
            };
            let n = r.count()?;
            for _ in 0..n {
                let id = StreamId::decode(&r.array::<16>()?).unwrap_or_default();
                let Some(p) = g.pel.get_mut(&id) else {
                    return err("Consumer entry not found in group global PEL");
                };
                if !assigned.insert(id) || !c.pel.insert(id) {
                    return err("Duplicated consumer PEL entry loading a stream consumer group");
                }
                p.consumer = cname.clone();
            }
            if g.consumers.insert(cname, c).is_some() {
                return err("Duplicate stream consumer detected.");
            }
        }
        // Every pending entry must belong to a consumer (deep sanitization
        // in Redis; cheap here).
        if assigned.len() != g.pel.len() {
            return err("Stream CG PELs entry without consumer");
        }
        if s.groups.insert(name, g).is_some() {
            return err("Duplicated consumer group name");
        }
    }
    Ok(Value::Stream(Box::new(s)))
}

fn list_from<'a>(items: impl Iterator<Item = &'a [u8]>, config: &crate::config::Config) -> Value {
    Value::List(List::from_elements(items, config.list_max_listpack_size))
}

fn check_distinct<'a>(items: impl Iterator<Item = &'a [u8]>, msg: &str) -> Result<(), RdbError> {
    let mut v: Vec<&[u8]> = items.collect();
    v.sort_unstable();
    if v.windows(2).any(|w| w[0] == w[1]) {
        return err(msg);
    }
    Ok(())
}

/// A listpack or ziplist of field/value pairs, as Redis 7.0 loads
/// RDB_TYPE_HASH_LISTPACK / _ZIPLIST: kept compact unless it has more than
/// `hash-max-listpack-entries` pairs (long values do not convert it).
fn hash_from_pairs(
    entries: &[Entry],
    config: &crate::config::Config,
    rng: &mut impl RngCore,
) -> Result<Value, RdbError> {
    if entries.len() & 1 != 0 {
        return err("Hash listpack with odd number of elements");
    }
    let limits = hashes::Limits::from_config(config);
    let pairs = entries.len() / 2;
    let mut h = if pairs as u64 > limits.entries {
        let mut h = Hash::default();
        h.convert(rng);
        h
    } else {
        Hash::Listpack(hashes::Listpack::default())
    };
    for pair in entries.chunks_exact(2) {
        let (f, v) = (pair[0].to_vec(), pair[1].to_vec());
        let added = match &mut h {
            Hash::Listpack(lp) => lp.insert(&f, &v),
            Hash::Table(_) => h.set(&f, &v, limits, rng),
        };
        if !added {
            return err("Duplicate hash fields detected");
        }
    }
    Ok(Value::Hash(h))
}

/// A listpack or ziplist of member/score pairs, which must be in order, as
/// Redis 7.0 loads RDB_TYPE_ZSET_LISTPACK / _ZIPLIST: compact unless it has
/// more than `zset-max-listpack-entries` members.
fn zset_from_pairs(entries: &[Entry], config: &crate::config::Config) -> Result<Value, RdbError> {
    if entries.len() & 1 != 0 {
        return err("Zset listpack with odd number of elements");
    }
    let mut members: Vec<Vec<u8>> = Vec::with_capacity(entries.len() / 2);
    let mut scores: Vec<f64> = Vec::with_capacity(entries.len() / 2);
    for pair in entries.chunks_exact(2) {
        members.push(pair[0].to_vec());
        let score = match pair[1] {
            Entry::Int(v) => v as f64,
            Entry::Str(s) => {
                let (v, used) = zsets::strtod(s);
                if used != s.len() || s.is_empty() || v.is_nan() {
                    return err("Zset listpack with a bad score");
                }
                v
            }
        };
        scores.push(score);
    }
    let items: Vec<(f64, &[u8])> = scores
        .iter()
        .copied()
        .zip(members.iter().map(|m| &m[..]))
        .collect();
    let ordered = items
        .windows(2)
        .all(|w| w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1));
    if !ordered {
        return err("Zset listpack out of order");
    }
    check_distinct(items.iter().map(|x| x.1), "Duplicate zset fields detected")?;
    Ok(zset_from_sorted(&items, config, true))
}

/// `keep_long` (listpack-encoded input): Redis converts those by count
/// only; sets loaded as skiplists convert by count and longest member.
fn zset_from_sorted(
    items: &[(f64, &[u8])],
    config: &crate::config::Config,
    keep_long: bool,
) -> Value {
    let mut limits = zsets::Limits {
        entries: config.zset_max_listpack_entries.max(0) as usize,
        value: config.zset_max_listpack_value.max(0) as usize,
    };
    if keep_long {
        limits.value = usize::MAX;
    }
    Value::ZSet(ZSet::from_sorted(items, limits))
}

/// FUNCTION RESTORE's records (Redis's `functionRestoreCommand` loop): each
/// an `RDB_OPCODE_FUNCTION2` opcode and a library's code, read while more
/// than the 10-byte footer remains. `data` is the whole payload, footer
/// included: like Redis, a string may run into the footer. Errors are
/// Redis's texts (without the `ERR ` the command adds).
pub(crate) fn function_records(data: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    let mut r = Reader { data, pos: 0 };
    let mut codes = Vec::new();
    while r.remaining() > 10 {
        match r.u8().map_err(|_| "can not read data type")? {
            RDB_OPCODE_FUNCTION => codes.push(pre_ga_function(&mut r)?),
            RDB_OPCODE_FUNCTION2 => {
                let code = r.string().map_err(|_| "Failed loading library payload")?;
                codes.push(code.into_owned());
            }
            _ => return Err("given type is not a function"),
        }
    }
    Ok(codes)
}

/// A library in 7.0-rc1/rc2's format (`RDB_OPCODE_FUNCTION`: name, engine,
/// optional description, code), turned into the code with its metadata
/// line as Redis 7.0's `rdbFunctionLoad` does.
fn pre_ga_function(r: &mut Reader<'_>) -> Result<Vec<u8>, &'static str> {
    let name = r.string().map_err(|_| "Failed loading library name")?;
    let engine = r.string().map_err(|_| "Failed loading engine name")?;
    let has_desc = r
        .len()
        .map_err(|_| "Failed loading library description indicator")?;
    if has_desc != 0 {
        r.string()
            .map_err(|_| "Failed loading library description")?;
    }
    let code = r.string().map_err(|_| "Failed loading library code")?;
    let mut out = b"#!".to_vec();
    out.extend_from_slice(&engine);
    out.extend_from_slice(b" name=");
    out.extend_from_slice(&name);
    out.push(b'\n');
    out.extend_from_slice(&code);
    Ok(out)
}
