//! Serialisation: [`RdbWriter`] for whole files and the value encodings
//! shared with DUMP, each following Redis 7.0's `rdb.c` function named in
//! its doc comment.

use super::listpack;
use super::lzf::Compressor;
use super::{
    intset, AuxValue, Crc64, WriteOpts, QUICKLIST_NODE_CONTAINER_PACKED,
    QUICKLIST_NODE_CONTAINER_PLAIN, RDB_OPCODE_AUX, RDB_OPCODE_EOF, RDB_OPCODE_EXPIRETIME_MS,
    RDB_OPCODE_FREQ, RDB_OPCODE_FUNCTION2, RDB_OPCODE_IDLE, RDB_OPCODE_RESIZEDB,
    RDB_OPCODE_SELECTDB, RDB_TYPE_HASH, RDB_TYPE_HASH_LISTPACK, RDB_TYPE_LIST_QUICKLIST_2,
    RDB_TYPE_SET, RDB_TYPE_SET_INTSET, RDB_TYPE_STREAM_LISTPACKS_2, RDB_TYPE_STRING,
    RDB_TYPE_ZSET_2, RDB_TYPE_ZSET_LISTPACK, RDB_VERSION,
};
use crate::commands::hashes::Hash;
use crate::commands::lists::List;
use crate::commands::sets::{Member, Set};
use crate::commands::zsets::ZSet;
use crate::db::{Str, Value};

/// Redis's encoding of a length (`rdbSaveLen`): 6 bits, 14 bits (big
/// endian), 0x80 + u32 BE, or 0x81 + u64 BE.
pub(crate) fn write_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// `rdbEncodeInteger`: values that fit 8, 16 or 32 bits as `0xC0..0xC2` +
/// little-endian bytes; None for wider ones.
fn encode_integer(v: i64, out: &mut Vec<u8>) -> bool {
    if let Ok(b) = i8::try_from(v) {
        out.extend_from_slice(&[0xC0, b as u8]);
    } else if let Ok(h) = i16::try_from(v) {
        out.push(0xC1);
        out.extend_from_slice(&h.to_le_bytes());
    } else if let Ok(w) = i32::try_from(v) {
        out.push(0xC2);
        out.extend_from_slice(&w.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// `rdbSaveLzfBlob`: `0xC3 <compressed len> <original len> <data>`.
fn write_lzf_blob(out: &mut Vec<u8>, compressed: &[u8], original_len: usize) {
    out.push(0xC3);
    write_len(out, compressed.len() as u64);
    write_len(out, original_len as u64);
    out.extend_from_slice(compressed);
}

/// `rdbSaveRawString`: integer-encoded if at most 11 bytes and an integer
/// that fits 32 bits; else LZF if compression is on, the string is longer
/// than 20 bytes and compresses by at least 4; else length + bytes.
pub(crate) fn write_string(out: &mut Vec<u8>, s: &[u8], compress: bool, lzf: &mut Compressor) {
    if s.len() <= 11 {
        if let Some(v) = crate::resp::parse_i64(s) {
            if encode_integer(v, out) {
                return;
            }
        }
    }
    if compress && s.len() > 20 {
        // rdbSaveLzfStringObject: at least four bytes must be saved.
        if let Some(c) = lzf.compress(s, s.len() - 4) {
            write_lzf_blob(out, c, s.len());
            return;
        }
    }
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// `rdbSaveLongLongAsStringObject`: an int-encoded string object.
fn write_int_string(out: &mut Vec<u8>, v: i64) {
    if !encode_integer(v, out) {
        let mut b = itoa::Buffer::new();
        let s = b.format(v).as_bytes();
        write_len(out, s.len() as u64);
        out.extend_from_slice(s);
    }
}

/// `rdbSaveObjectType`.
pub(crate) fn object_type(value: &Value) -> u8 {
    match value {
        Value::Str(_) => RDB_TYPE_STRING,
        Value::List(_) => RDB_TYPE_LIST_QUICKLIST_2,
        Value::Hash(Hash::Listpack(_)) => RDB_TYPE_HASH_LISTPACK,
        Value::Hash(Hash::Table(_)) => RDB_TYPE_HASH,
        Value::Set(Set::Int(_)) => RDB_TYPE_SET_INTSET,
        Value::Set(Set::Table(_)) => RDB_TYPE_SET,
        Value::ZSet(z) if z.encoding_name() == "listpack" => RDB_TYPE_ZSET_LISTPACK,
        Value::ZSet(_) => RDB_TYPE_ZSET_2,
        Value::Stream(_) => RDB_TYPE_STREAM_LISTPACKS_2,
    }
}

pub(crate) fn write_object_type(out: &mut Vec<u8>, value: &Value) {
    out.push(object_type(value));
}

/// `rdbSaveObject`: the value's serialisation in the encoding
/// [`object_type`] names.
pub(crate) fn write_object(out: &mut Vec<u8>, value: &Value, o: &WriteOpts, lzf: &mut Compressor) {
    match value {
        Value::Str(Str::Int(v) | Str::IntOwned(v)) => write_int_string(out, *v),
        Value::Str(Str::Emb(b)) => write_string(out, b, o.compress, lzf),
        Value::Str(Str::Raw(b)) => write_string(out, b, o.compress, lzf),
        Value::List(l) => write_list(out, l, o, lzf),
        Value::Hash(Hash::Listpack(_)) | Value::Hash(Hash::Table(_)) => {
            write_hash(out, value, o, lzf)
        }
        Value::Set(s) => write_set(out, s, o, lzf),
        Value::ZSet(z) => write_zset(out, z, o, lzf),
        Value::Stream(s) => write_stream(out, s, o, lzf),
    }
}

/// `rdbSaveObject` for streams (type 19, as Redis 7.0 writes them): each node's 16-byte master ID
/// and listpack as stored, the counters, then every group with its PEL
/// (ID, delivery time, delivery count) and consumers (name, seen time,
/// PEL IDs).
fn write_stream(out: &mut Vec<u8>, s: &crate::stream::Stream, o: &WriteOpts, lzf: &mut Compressor) {
    write_len(out, s.node_count() as u64);
    for (master, lp) in s.raw_nodes() {
        write_string(out, &master.encode(), o.compress, lzf);
        write_string(out, lp, o.compress, lzf);
    }
    write_len(out, s.length);
    for id in [s.last_id, s.first_id, s.max_deleted_id] {
        write_len(out, id.ms);
        write_len(out, id.seq);
    }
    write_len(out, s.entries_added);
    write_len(out, s.groups.len() as u64);
    for (name, g) in &s.groups {
        write_string(out, name, o.compress, lzf);
        write_len(out, g.last_id.ms);
        write_len(out, g.last_id.seq);
        write_len(out, g.entries_read as u64);
        write_len(out, g.pel.len() as u64);
        for (id, p) in &g.pel {
            out.extend_from_slice(&id.encode());
            out.extend_from_slice(&p.delivery_time.to_le_bytes());
            write_len(out, p.delivery_count);
        }
        write_len(out, g.consumers.len() as u64);
        for (cname, c) in &g.consumers {
            write_string(out, cname, o.compress, lzf);
            out.extend_from_slice(&c.seen_time.to_le_bytes());
            write_len(out, c.pel.len() as u64);
            for id in &c.pel {
                out.extend_from_slice(&id.encode());
            }
        }
    }
}

fn write_hash(out: &mut Vec<u8>, value: &Value, o: &WriteOpts, lzf: &mut Compressor) {
    let Value::Hash(h) = value else { return };
    match h {
        Hash::Listpack(_) => {
            let mut lp = listpack::Builder::new();
            for (f, v) in h.iter() {
                lp.push_str(f);
                lp.push_str(v);
            }
            write_string(out, &lp.finish(), o.compress, lzf);
        }
        Hash::Table(_) => {
            write_len(out, h.len() as u64);
            for (f, v) in h.iter() {
                write_string(out, f, o.compress, lzf);
                write_string(out, v, o.compress, lzf);
            }
        }
    }
}

fn write_set(out: &mut Vec<u8>, s: &Set, o: &WriteOpts, lzf: &mut Compressor) {
    match s {
        Set::Int(is) => {
            let mut blob = Vec::with_capacity(intset::encoded_len(is));
            intset::encode(is, &mut blob);
            write_string(out, &blob, o.compress, lzf);
        }
        Set::Table(_) => {
            write_len(out, s.len() as u64);
            let mut b = itoa::Buffer::new();
            for m in s.iter() {
                match m {
                    Member::Int(v) => write_string(out, b.format(v).as_bytes(), o.compress, lzf),
                    Member::Bytes(m) => write_string(out, m, o.compress, lzf),
                }
            }
        }
    }
}

/// The score as a zset listpack stores it (`zzlInsertAt` in 7.0): an
/// integer when `double2ll` accepts it (integral, within ±LLONG_MAX/2; -0
/// becomes 0), else `d2string`'s text.
fn push_score(lp: &mut listpack::Builder, score: f64) {
    const HALF: f64 = (i64::MAX / 2) as f64;
    if score.fract() == 0.0 && (-HALF..=HALF).contains(&score) {
        lp.push_int(score as i64);
    } else {
        lp.push_str(d2string(score).as_bytes());
    }
}

/// Redis's `d2string` for the values that reach it (non-integral or huge):
/// `inf`, `-inf`, else `%.17g`.
fn d2string(score: f64) -> String {
    if score.is_infinite() {
        if score > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        crate::numeric::fmt_double_17g(score)
    }
}

fn write_zset(out: &mut Vec<u8>, z: &ZSet, o: &WriteOpts, lzf: &mut Compressor) {
    if z.encoding_name() == "listpack" {
        let mut lp = listpack::Builder::new();
        for (score, m) in z.iter() {
            lp.push_str(m);
            push_score(&mut lp, score);
        }
        write_string(out, &lp.finish(), o.compress, lzf);
    } else {
        // Skiplist: from the greatest to the smallest, so loading inserts
        // at the head of the skiplist (Redis's own reason); scores as
        // binary doubles (RDB_TYPE_ZSET_2).
        write_len(out, z.len() as u64);
        if z.is_empty() {
            return;
        }
        for (score, m) in z.iter_from(z.len() - 1, true) {
            write_string(out, m, o.compress, lzf);
            out.extend_from_slice(&score.to_le_bytes());
        }
    }
}

// ---------------------------------------------------------------------------
// Lists: Redis's quicklist layout
// ---------------------------------------------------------------------------

use crate::commands::lists::PACKED_THRESHOLD;
/// `MIN_COMPRESS_BYTES` / `MIN_COMPRESS_IMPROVE` of quicklist compression.
const MIN_COMPRESS_BYTES: usize = 48;
const MIN_COMPRESS_IMPROVE: usize = 8;

/// One quicklist node as Redis would hold it.
enum Node {
    Packed(listpack::Builder),
    Plain(Vec<u8>),
}

/// The list's nodes: its chunks split and merge where Redis's quicklist
/// nodes do (commands/lists.rs), so they are written one for one.
fn quicklist_nodes(l: &List) -> Vec<Node> {
    l.nodes()
        .map(|node| {
            let mut b = listpack::Builder::new();
            let mut big = None;
            for e in node {
                if e.len() >= PACKED_THRESHOLD {
                    big = Some(e.to_vec());
                }
                b.push_str(e);
            }
            match big {
                Some(e) if b.count() == 1 => Node::Plain(e),
                _ => Node::Packed(b),
            }
        })
        .collect()
}

/// RDB_TYPE_LIST_QUICKLIST_2: node count, then per node its container and
/// its listpack (or plain element), LZF-compressed as Redis keeps it when
/// `list-compress-depth` puts the node in the compressed middle.
fn write_list(out: &mut Vec<u8>, l: &List, o: &WriteOpts, lzf: &mut Compressor) {
    let nodes = quicklist_nodes(l);
    write_len(out, nodes.len() as u64);
    let depth = o.list_compress_depth.max(0) as usize;
    let n = nodes.len();
    for (i, node) in nodes.into_iter().enumerate() {
        let (container, data) = match node {
            Node::Packed(b) => (QUICKLIST_NODE_CONTAINER_PACKED, b.finish()),
            Node::Plain(v) => (QUICKLIST_NODE_CONTAINER_PLAIN, v),
        };
        write_len(out, container);
        let middle = depth > 0 && n > 2 * depth && i >= depth && i < n - depth;
        if middle && data.len() >= MIN_COMPRESS_BYTES {
            // __quicklistCompressNode: output bound = node size, and it
            // must save more than MIN_COMPRESS_IMPROVE bytes.
            if let Some(c) = lzf.compress(&data, data.len()) {
                if c.len() + MIN_COMPRESS_IMPROVE < data.len() {
                    write_lzf_blob(out, c, data.len());
                    continue;
                }
            }
        }
        write_string(out, &data, o.compress, lzf);
    }
}

// ---------------------------------------------------------------------------
// The file writer
// ---------------------------------------------------------------------------

/// A drained buffer's capacity is kept for the next chunk up to this size
/// (a save drains at 1 MiB; a whole image taken at once is not re-reserved).
const KEEP_CAPACITY: usize = 4 << 20;

/// The access information saved before each key, as
/// `rdbSaveKeyValuePair` chooses it from `maxmemory-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessInfo {
    /// No LRU/LFU policy: nothing.
    None,
    /// An LRU policy: `RDB_OPCODE_IDLE` with the idle seconds at `now_s`.
    Idle { now_s: u64 },
    /// An LFU policy: `RDB_OPCODE_FREQ` with the counter decayed to `now_s`.
    Freq { now_s: u64, decay_min: u32 },
}

/// Incremental RDB writer.
///
/// Call order: [`header`](Self::header), then any number of
/// [`function_library`](Self::function_library), then for each non-empty
/// database [`select_db`](Self::select_db) followed by its
/// [`key`](Self::key)s, then [`finish`](Self::finish). Bytes accumulate in
/// an internal buffer; drain them with [`take_chunk`](Self::take_chunk) at
/// any point (e.g. when [`pending_len`](Self::pending_len) passes a write
/// size). The CRC-64 covers every byte written before the checksum.
#[derive(Debug)]
pub struct RdbWriter {
    buf: Vec<u8>,
    access: AccessInfo,
    /// Bytes of `buf` already fed to the CRC.
    digested: usize,
    crc: Crc64,
    opts: WriteOpts,
    lzf: Compressor,
    finished: bool,
}

impl RdbWriter {
    /// A writer; `compress` is `rdbcompression`. Lists are laid out for the
    /// default `list-max-listpack-size -2` and no compression depth; see
    /// [`set_list_layout`](Self::set_list_layout).
    pub fn new(compress: bool) -> RdbWriter {
        RdbWriter {
            buf: Vec::new(),
            access: AccessInfo::None,
            digested: 0,
            crc: Crc64::new(),
            opts: WriteOpts {
                compress,
                list_fill: -2,
                list_compress_depth: 0,
            },
            lzf: Compressor::default(),
            finished: false,
        }
    }

    /// A writer taking the list layout from `config`
    /// (`list-max-listpack-size`, `list-compress-depth`).
    pub fn with_config(config: &crate::config::Config, compress: bool) -> RdbWriter {
        let mut w = RdbWriter::new(compress);
        w.set_list_layout(config.list_max_listpack_size, config.list_compress_depth);
        w
    }

    /// Quicklist node size (`list-max-listpack-size`) and compressed depth
    /// (`list-compress-depth`) the saved lists are laid out with.
    pub fn set_list_layout(&mut self, fill: i64, compress_depth: i64) {
        self.opts.list_fill = fill;
        self.opts.list_compress_depth = compress_depth;
    }

    /// What [`key_stamped`](Self::key_stamped) saves before each key.
    pub fn set_access_info(&mut self, access: AccessInfo) {
        self.access = access;
    }

    /// `REDIS0010` and the AUX fields, in the order given.
    pub fn header(&mut self, aux: &[(&str, AuxValue)]) {
        self.buf
            .extend_from_slice(format!("REDIS{RDB_VERSION:04}").as_bytes());
        for (k, v) in aux {
            self.buf.push(RDB_OPCODE_AUX);
            write_string(
                &mut self.buf,
                k.as_bytes(),
                self.opts.compress,
                &mut self.lzf,
            );
            match v {
                AuxValue::Str(s) => {
                    write_string(&mut self.buf, s, self.opts.compress, &mut self.lzf)
                }
                AuxValue::Int(i) => {
                    let mut b = itoa::Buffer::new();
                    let s = b.format(*i).as_bytes();
                    write_string(&mut self.buf, s, self.opts.compress, &mut self.lzf)
                }
            }
        }
        self.digest();
    }

    /// One function library (`RDB_OPCODE_FUNCTION2` + its source).
    pub fn function_library(&mut self, code: &[u8]) {
        self.buf.push(RDB_OPCODE_FUNCTION2);
        write_string(&mut self.buf, code, self.opts.compress, &mut self.lzf);
        self.digest();
    }

    /// `SELECTDB db` and `RESIZEDB keys expires`.
    pub fn select_db(&mut self, db: u32, keys: u64, expires: u64) {
        self.buf.push(RDB_OPCODE_SELECTDB);
        write_len(&mut self.buf, db as u64);
        self.buf.push(RDB_OPCODE_RESIZEDB);
        write_len(&mut self.buf, keys);
        write_len(&mut self.buf, expires);
        self.digest();
    }

    /// One key (`rdbSaveKeyValuePair`): its expiry if any, then type, key
    /// and value.
    pub fn key(&mut self, key: &[u8], value: &Value, expire_ms: Option<i64>) {
        self.key_inner(key, value, expire_ms, None);
    }

    /// [`key`](Self::key) with the key's LRU/LFU stamp (`Entry::lru`),
    /// saved as the writer's [`AccessInfo`] says: after the expiry and
    /// before the type, as Redis orders them.
    pub fn key_stamped(&mut self, key: &[u8], value: &Value, expire_ms: Option<i64>, stamp: u32) {
        self.key_inner(key, value, expire_ms, Some(stamp));
    }

    fn key_inner(&mut self, key: &[u8], value: &Value, expire_ms: Option<i64>, stamp: Option<u32>) {
        if let Some(at) = expire_ms {
            self.buf.push(RDB_OPCODE_EXPIRETIME_MS);
            self.buf.extend_from_slice(&at.to_le_bytes());
        }
        if let Some(stamp) = stamp {
            match self.access {
                AccessInfo::None => {}
                AccessInfo::Idle { now_s } => {
                    // Whole seconds: "enough and requires less space".
                    self.buf.push(RDB_OPCODE_IDLE);
                    write_len(&mut self.buf, crate::evict::idle_ms(stamp, now_s) / 1000);
                }
                AccessInfo::Freq { now_s, decay_min } => {
                    self.buf.push(RDB_OPCODE_FREQ);
                    let f = crate::evict::lfu_decr(stamp, now_s, decay_min);
                    self.buf.push(f.min(255) as u8);
                }
            }
        }
        write_object_type(&mut self.buf, value);
        write_string(&mut self.buf, key, self.opts.compress, &mut self.lzf);
        write_object(&mut self.buf, value, &self.opts, &mut self.lzf);
        // Not digested per key: the CRC runs over whole chunks when they
        // are taken (much faster than tens of bytes at a time).
    }

    /// The EOF opcode and the CRC-64 (8 bytes LE; zeros when `checksum` is
    /// off, which readers take as "not checked").
    pub fn finish(&mut self, checksum: bool) {
        assert!(!self.finished, "RdbWriter::finish called twice");
        self.buf.push(RDB_OPCODE_EOF);
        self.digest();
        let crc = if checksum { self.crc.value() } else { 0 };
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.digested = self.buf.len();
        self.finished = true;
    }

    /// Drains the bytes written so far. The next chunk starts with the
    /// same capacity, so a writer drained at a fixed size never regrows
    /// (and copies) its buffer.
    pub fn take_chunk(&mut self) -> Vec<u8> {
        self.digest();
        self.digested = 0;
        let cap = self.buf.capacity();
        let next = if cap <= KEEP_CAPACITY {
            Vec::with_capacity(cap)
        } else {
            Vec::new()
        };
        std::mem::replace(&mut self.buf, next)
    }

    /// Bytes written and not yet taken.
    pub fn pending_len(&self) -> usize {
        self.buf.len()
    }

    /// Splices in records serialised by another writer (a snapshot's
    /// copy-on-write keys for a database it had not reached yet).
    pub fn raw(&mut self, records: &[u8]) {
        self.buf.extend_from_slice(records);
        self.digest();
    }

    fn digest(&mut self) {
        if !self.finished {
            self.crc.update(&self.buf[self.digested..]);
        }
        self.digested = self.buf.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        let cases: [(u64, &[u8]); 6] = [
            (0, b"\x00"),
            (63, b"\x3f"),
            (64, b"\x40\x40"),
            (16383, b"\x7f\xff"),
            (16384, b"\x80\x00\x00\x40\x00"),
            (1 << 32, b"\x81\x00\x00\x00\x01\x00\x00\x00\x00"),
        ];
        for (n, want) in cases {
            let mut v = vec![];
            write_len(&mut v, n);
            assert_eq!(v, want, "{n}");
        }
    }

    #[test]
    fn strings() {
        let mut lzf = Compressor::default();
        let mut v = vec![];
        write_string(&mut v, b"12345", true, &mut lzf);
        assert_eq!(v, b"\xc1\x39\x30");
        v.clear();
        write_string(&mut v, b"-129", true, &mut lzf);
        assert_eq!(v, b"\xc1\x7f\xff");
        v.clear();
        write_string(&mut v, b"012", true, &mut lzf);
        assert_eq!(v, b"\x03012");
        v.clear();
        write_string(&mut v, b"12345678901", true, &mut lzf);
        assert_eq!(v, b"\x0b12345678901");
        v.clear();
        write_int_string(&mut v, 12345678901);
        assert_eq!(v, b"\x0b12345678901");
    }
}
