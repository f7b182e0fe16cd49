//! The stream data type (Redis's `t_stream.c` data half): entries in compact
//! nodes under an ordered index, plus consumer groups.
//!
//! # Layout
//!
//! A stream is a `BTreeMap` from a node's *master ID* to the node, and each
//! node is a listpack laid out byte for byte as Redis lays out the values of
//! its radix tree (`streamAppendItem`):
//!
//! ```text
//! master entry: count | deleted | num-fields | field_1 ... field_N | 0
//! each entry:   flags | ms-diff | seq-diff | [num-fields | field_1 | value_1 ... ] | lp-count
//!               (with SAMEFIELDS, only the values: flags | ms-diff | seq-diff | value_1 ... | lp-count)
//! ```
//!
//! IDs are stored as differences from the master ID and field names that
//! repeat the master entry's are left out, so an entry of three small fields
//! costs about twenty bytes. Keeping Redis's exact bytes has two more
//! payoffs: RDB type 21 writes and reads a node as it is, and approximate
//! trimming (`MAXLEN ~`), which removes whole nodes only, cuts where Redis
//! cuts, so replies compare exactly.
//!
//! Deleting an entry only flags it (`flags |= DELETED`) and adjusts the
//! master counters; a node whose live count reaches zero is dropped. A node
//! is closed (and shrunk to fit) when the next entry would reach
//! `stream-node-max-bytes` or it holds `stream-node-max-entries` entries.
//!
//! # Consumer groups
//!
//! A group keeps its last delivered ID, the count of entries read (for
//! `lag`), a pending entries list (PEL) ordered by ID, and its consumers,
//! each with its own PEL of IDs. Delivery and seen times are engine-clock
//! milliseconds passed in by the caller (`now`), never read from the OS.

use crate::rdb::listpack::{self, decode_entry, encode_int, encode_str, Entry, HEADER_SIZE};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

/// The entry was deleted (XDEL, XTRIM) but is still in its node.
pub const FLAG_DELETED: i64 = 1;
/// The entry has the master entry's fields; only values are stored.
pub const FLAG_SAMEFIELDS: i64 = 2;
/// A node never grows past this many bytes (`STREAM_LISTPACK_MAX_SIZE`).
pub const LISTPACK_MAX_SIZE: u64 = 1 << 30;
/// Bytes reserved for a fresh node (`STREAM_LISTPACK_MAX_PRE_ALLOCATE`).
const PREALLOC_MAX: usize = 4096;

/// A stream entry ID: milliseconds and a sequence number, ordered as a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID (`streamIncrID`), or `None` after the last possible one.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The previous ID (`streamDecrID`), or `None` before 0-0.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    /// `<ms>-<seq>` as replies show it.
    pub fn to_bytes(self) -> Bytes {
        Bytes::from(format!("{}-{}", self.ms, self.seq))
    }

    /// The 16-byte big-endian key Redis uses in its radix tree and RDB.
    pub fn encode(self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.ms.to_be_bytes());
        k[8..].copy_from_slice(&self.seq.to_be_bytes());
        k
    }

    pub fn decode(k: &[u8]) -> Option<StreamId> {
        if k.len() != 16 {
            return None;
        }
        let mut a = [0u8; 8];
        a.copy_from_slice(&k[..8]);
        let ms = u64::from_be_bytes(a);
        a.copy_from_slice(&k[8..]);
        Some(StreamId::new(ms, u64::from_be_bytes(a)))
    }
}

/// One entry read out of a node: its ID and its fields and values,
/// interleaved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: StreamId,
    pub fields: Vec<Vec<u8>>,
}

/// A consumer group (`streamCG`).
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// The last ID delivered to a consumer with `>`.
    pub last_id: StreamId,
    /// How many entries the group has read, if known (`entries_read`,
    /// `SCG_INVALID_ENTRIES_READ` = -1 when it is not).
    pub entries_read: i64,
    /// Delivered and not yet acknowledged entries, by ID.
    pub pel: BTreeMap<StreamId, Pending>,
    /// Consumers by name; Redis keeps them in a radix tree, so they are
    /// listed in byte order.
    pub consumers: BTreeMap<Bytes, Consumer>,
}

/// A pending entry (`streamNACK`).
#[derive(Debug, Clone)]
pub struct Pending {
    /// When it was last delivered, engine-clock unix ms.
    pub delivery_time: i64,
    pub delivery_count: u64,
    /// The consumer that owns it; its name is a key of `Group::consumers`.
    pub consumer: Bytes,
}

/// A consumer (`streamConsumer`).
#[derive(Debug, Clone, Default)]
pub struct Consumer {
    /// Last time it read or claimed, engine-clock unix ms.
    pub seen_time: i64,
    /// The IDs of its pending entries (their data lives in the group PEL).
    pub pel: BTreeSet<StreamId>,
}

/// The invalid `entries_read` value (`SCG_INVALID_ENTRIES_READ`).
pub const ENTRIES_READ_INVALID: i64 = -1;

/// How XADD/XTRIM trim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    None,
    MaxLen(u64),
    MinId(StreamId),
}

/// A stream value (`stream`).
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// Nodes by master ID: each a listpack in Redis's stream node layout.
    nodes: BTreeMap<StreamId, Vec<u8>>,
    /// Live entries.
    pub length: u64,
    /// The last ID ever added (or set by XSETID).
    pub last_id: StreamId,
    /// The first live ID (Redis's `first_id`, recorded-first-entry-id).
    pub first_id: StreamId,
    /// The greatest ID ever deleted.
    pub max_deleted_id: StreamId,
    /// Entries ever added.
    pub entries_added: u64,
    /// Consumer groups by name, listed in byte order as Redis's rax does.
    pub groups: BTreeMap<Bytes, Group>,
}

/// Reads the listpack element at `pos`: the element and the position of the
/// next one. `None` at the end or on a malformed element; nodes are
/// validated when loaded, so the latter means a bug, not bad input.
fn lp_at(lp: &[u8], pos: usize) -> Option<(Entry<'_>, usize)> {
    let end = lp.len().checked_sub(1)?;
    if pos >= end {
        return None;
    }
    let (e, size) = decode_entry(&lp[pos..end]).ok()?;
    Some((e, pos + size + listpack::backlen_size(size)))
}

fn lp_int(lp: &[u8], pos: usize) -> Option<(i64, usize)> {
    match lp_at(lp, pos)? {
        (Entry::Int(v), next) => Some((v, next)),
        (Entry::Str(s), next) => Some((crate::resp::parse_i64(s)?, next)),
    }
}

/// Replaces the integer element at `pos` (`lpReplaceInteger`), fixing the
/// header's byte count when its size changes.
fn lp_replace_int(lp: &mut Vec<u8>, pos: usize, v: i64) {
    let Some((_, next)) = lp_at(lp, pos) else {
        return;
    };
    let mut enc = Vec::with_capacity(16);
    encode_int(&mut enc, v);
    if enc.len() == next - pos {
        // The common case (a counter that keeps its width): no shifting.
        lp[pos..next].copy_from_slice(&enc);
        return;
    }
    lp.splice(pos..next, enc);
    let total = lp.len() as u32;
    lp[0..4].copy_from_slice(&total.to_le_bytes());
}

/// Appends elements written by `f` to a finished listpack: the terminator
/// moves to the end and the header counts follow.
fn lp_append(lp: &mut Vec<u8>, added: usize, f: impl FnOnce(&mut Vec<u8>)) {
    lp.pop();
    f(lp);
    lp.push(0xFF);
    let total = lp.len() as u32;
    lp[0..4].copy_from_slice(&total.to_le_bytes());
    let n = u16::from_le_bytes([lp[4], lp[5]]) as usize;
    if n != 65535 {
        let n = (n + added).min(65535) as u16;
        lp[4..6].copy_from_slice(&n.to_le_bytes());
    }
}

fn entry_bytes(e: Entry<'_>) -> Vec<u8> {
    e.to_vec()
}

fn entry_eq(e: Entry<'_>, b: &[u8]) -> bool {
    match e {
        Entry::Str(s) => s == b,
        Entry::Int(v) => itoa::Buffer::new().format(v).as_bytes() == b,
    }
}

/// One entry inside a node, as positions into its listpack: scanning a
/// node allocates nothing per entry; fields are decoded only for entries
/// that are returned ([`NodeView::entry`]).
struct Item {
    id: StreamId,
    flags: i64,
    /// Where the flags element is, to flag the entry deleted in place.
    flags_pos: usize,
    /// The first field (or, with SAMEFIELDS, value) element.
    body: usize,
    /// Number of field-value pairs.
    nfields: usize,
}

/// The master entry and the entries of one node (`lp`, with master ID
/// `master`). Stops early on a malformed node rather than panicking.
struct NodeView<'a> {
    lp: &'a [u8],
    count: i64,
    deleted: i64,
    master_fields: Vec<Entry<'a>>,
    items: Vec<Item>,
}

/// The start of the element that ends just before `p` (its backlen is the
/// last bytes before `p`, read right to left: `lpPrev`). `None` at the
/// header or on a malformed backlen.
fn lp_prev(lp: &[u8], p: usize) -> Option<usize> {
    if p <= HEADER_SIZE {
        return None;
    }
    let mut q = p - 1;
    let (mut v, mut shift) = (0usize, 0u32);
    loop {
        let b = *lp.get(q)?;
        v |= ((b & 127) as usize).checked_shl(shift)?;
        shift += 7;
        if b & 128 == 0 || shift > 28 {
            break;
        }
        q = q.checked_sub(1)?;
    }
    let start = p.checked_sub(v + listpack::backlen_size(v))?;
    (start >= HEADER_SIZE).then_some(start)
}

/// Skips `n` elements from `p`; `None` past the end.
fn lp_skip(lp: &[u8], mut p: usize, n: usize) -> Option<usize> {
    for _ in 0..n {
        p = lp_at(lp, p)?.1;
    }
    Some(p)
}

/// The master entry of node `lp`: counters, master fields, and where the
/// first entry starts. `None` if malformed.
fn head(lp: &[u8]) -> Option<(i64, i64, Vec<Entry<'_>>, usize)> {
    let (count, p) = lp_int(lp, HEADER_SIZE)?;
    let (deleted, p) = lp_int(lp, p)?;
    let (nmaster, mut p) = lp_int(lp, p)?;
    let nmaster = nmaster.max(0) as usize;
    let mut master_fields = Vec::with_capacity(nmaster.min(64));
    for _ in 0..nmaster {
        let (e, n) = lp_at(lp, p)?;
        master_fields.push(e);
        p = n;
    }
    // The master entry's zero terminator.
    let (_, p) = lp_at(lp, p)?;
    Some((count, deleted, master_fields, p))
}

/// The entry starting at `p` in node `lp` and where the next one starts.
fn item_at(lp: &[u8], master: StreamId, nmaster: usize, p: usize) -> Option<(Item, usize)> {
    let flags_pos = p;
    let (flags, p) = lp_int(lp, p)?;
    let (ms_diff, p) = lp_int(lp, p)?;
    let (seq_diff, mut p) = lp_int(lp, p)?;
    let id = StreamId::new(
        master.ms.wrapping_add(ms_diff as u64),
        master.seq.wrapping_add(seq_diff as u64),
    );
    let same = flags & FLAG_SAMEFIELDS != 0;
    let nfields = if same {
        nmaster
    } else {
        let (nf, n) = lp_int(lp, p)?;
        p = n;
        nf.max(0) as usize
    };
    let body = p;
    let elements = if same {
        nfields
    } else {
        nfields.saturating_mul(2)
    };
    // The fields, then lp-count.
    let next = lp_skip(lp, p, elements.saturating_add(1))?;
    Some((
        Item {
            id,
            flags,
            flags_pos,
            body,
            nfields,
        },
        next,
    ))
}

fn view(master: StreamId, lp: &[u8]) -> NodeView<'_> {
    let mut v = NodeView {
        lp,
        count: 0,
        deleted: 0,
        master_fields: Vec::new(),
        items: Vec::new(),
    };
    let Some((count, deleted, master_fields, mut p)) = head(lp) else {
        return v;
    };
    v.count = count;
    v.deleted = deleted;
    v.master_fields = master_fields;
    // About one entry per 20 bytes: one allocation per node.
    v.items.reserve(lp.len() / 20);
    while let Some((it, n)) = item_at(lp, master, v.master_fields.len(), p) {
        v.items.push(it);
        p = n;
    }
    v
}

impl NodeView<'_> {
    /// The entry `it` with its fields decoded.
    fn entry(&self, it: &Item) -> StreamEntry {
        let same = it.flags & FLAG_SAMEFIELDS != 0;
        let mut fields = Vec::with_capacity(it.nfields * 2);
        let mut p = it.body;
        for i in 0..it.nfields {
            let name = if same {
                self.master_fields.get(i).copied()
            } else {
                lp_at(self.lp, p).map(|(e, n)| {
                    p = n;
                    e
                })
            };
            let value = lp_at(self.lp, p).map(|(e, n)| {
                p = n;
                e
            });
            let (Some(name), Some(value)) = (name, value) else {
                break;
            };
            fields.push(entry_bytes(name));
            fields.push(entry_bytes(value));
        }
        StreamEntry { id: it.id, fields }
    }
}

/// The size of the stream's radix tree in Redis (`rax->numnodes`) for a
/// set of 16-byte keys: Redis reports it in XINFO STREAM, so we count the
/// nodes of the canonical compressed trie the rax would hold. An empty rax
/// is its root alone.
fn rax_nodes(keys: &[[u8; 16]]) -> u64 {
    fn count(keys: &[[u8; 16]], depth: usize) -> u64 {
        if keys.len() == 1 {
            // A compressed node with the rest of the key, then the leaf.
            return if depth < 16 { 2 } else { 1 };
        }
        let (first, last) = (&keys[0], &keys[keys.len() - 1]);
        let mut p = depth;
        while p < 16 && first[p] == last[p] {
            p += 1;
        }
        // A shared run becomes one compressed node before the branch.
        let mut n = u64::from(p > depth) + 1;
        let mut i = 0;
        while i < keys.len() {
            let mut j = i + 1;
            while j < keys.len() && keys[j][p] == keys[i][p] {
                j += 1;
            }
            n += count(&keys[i..j], p + 1);
            i = j;
        }
        n
    }
    if keys.is_empty() {
        1
    } else {
        count(keys, 0)
    }
}

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Number of nodes (XINFO STREAM `radix-tree-keys`).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// XINFO STREAM `radix-tree-nodes`.
    pub fn rax_node_count(&self) -> u64 {
        let keys: Vec<[u8; 16]> = self.nodes.keys().map(|k| k.encode()).collect();
        rax_nodes(&keys)
    }

    /// The nodes, for RDB: master ID and listpack bytes.
    pub fn raw_nodes(&self) -> impl Iterator<Item = (&StreamId, &Vec<u8>)> {
        self.nodes.iter()
    }

    /// Adds a node read from an RDB file, already validated.
    pub fn insert_raw_node(&mut self, master: StreamId, lp: Vec<u8>) {
        self.nodes.insert(master, lp);
    }

    /// Live entries in nodes, counted (for validating a loaded stream).
    pub fn count_live(&self) -> u64 {
        self.nodes
            .iter()
            .map(|(m, lp)| view(*m, lp).count.max(0) as u64)
            .sum()
    }

    /// Appends an entry with ID `id`, which the caller checked is greater
    /// than `last_id` (`streamAppendItem`). `fv` holds fields and values,
    /// interleaved. Returns false (adding nothing) if the entry is too
    /// large for a listpack.
    pub fn append(&mut self, id: StreamId, fv: &[Bytes], max_bytes: i64, max_entries: i64) -> bool {
        let numfields = fv.len() / 2;
        let totelelen: u64 = fv.iter().map(|f| f.len() as u64).sum();
        if totelelen > LISTPACK_MAX_SIZE {
            return false;
        }
        let node_max_bytes = if max_bytes <= 0 || max_bytes as u64 > LISTPACK_MAX_SIZE {
            LISTPACK_MAX_SIZE
        } else {
            max_bytes as u64
        };
        let mut target = self.nodes.iter().next_back().map(|(k, _)| *k);
        if let Some(master) = target {
            let lp = &self.nodes[&master];
            let mut new_node = false;
            if lp.len() as u64 + totelelen >= node_max_bytes {
                new_node = true;
            } else if max_entries > 0 {
                // Live and deleted entries both count.
                let count = match lp_int(lp, HEADER_SIZE) {
                    Some((c, n)) => c + lp_int(lp, n).map_or(0, |d| d.0),
                    None => 0,
                };
                if count >= max_entries {
                    new_node = true;
                }
            }
            if new_node {
                if let Some(lp) = self.nodes.get_mut(&master) {
                    lp.shrink_to_fit();
                }
                target = None;
            }
        }
        let mut flags = 0;
        match target {
            None => {
                let prealloc = if max_bytes > 0 && (max_bytes as usize) < PREALLOC_MAX {
                    max_bytes as usize
                } else {
                    PREALLOC_MAX
                };
                let mut lp = Vec::with_capacity(prealloc);
                lp.extend_from_slice(&[0; HEADER_SIZE]);
                lp.push(0xFF);
                lp_append(&mut lp, 3 + numfields + 1, |b| {
                    encode_int(b, 1);
                    encode_int(b, 0);
                    encode_int(b, numfields as i64);
                    for i in 0..numfields {
                        encode_str(b, &fv[i * 2]);
                    }
                    encode_int(b, 0);
                });
                flags |= FLAG_SAMEFIELDS;
                self.push_item(id, id, lp, flags, fv);
            }
            Some(master) => {
                let Some(mut lp) = self.nodes.remove(&master) else {
                    return false;
                };
                let Some((count, _)) = lp_int(&lp, HEADER_SIZE) else {
                    return false;
                };
                lp_replace_int(&mut lp, HEADER_SIZE, count + 1);
                // Skip count and deleted, then compare the master fields.
                let mut p = HEADER_SIZE;
                for _ in 0..2 {
                    p = lp_at(&lp, p).map_or(p, |x| x.1);
                }
                if let Some((nmaster, mut q)) = lp_int(&lp, p) {
                    if nmaster == numfields as i64 {
                        let mut same = true;
                        for i in 0..numfields {
                            match lp_at(&lp, q) {
                                Some((e, n)) if entry_eq(e, &fv[i * 2]) => q = n,
                                _ => {
                                    same = false;
                                    break;
                                }
                            }
                        }
                        if same {
                            flags |= FLAG_SAMEFIELDS;
                        }
                    }
                }
                self.push_item(master, id, lp, flags, fv);
            }
        }
        self.length += 1;
        self.entries_added += 1;
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
        true
    }

    /// Writes one entry at the end of node `lp` (master ID `master`) and
    /// puts the node back.
    fn push_item(
        &mut self,
        master: StreamId,
        id: StreamId,
        mut lp: Vec<u8>,
        flags: i64,
        fv: &[Bytes],
    ) {
        let numfields = fv.len() / 2;
        let same = flags & FLAG_SAMEFIELDS != 0;
        let elements = 3 + if same { numfields } else { 1 + numfields * 2 } + 1;
        lp_append(&mut lp, elements, |b| {
            encode_int(b, flags);
            encode_int(b, id.ms.wrapping_sub(master.ms) as i64);
            encode_int(b, id.seq.wrapping_sub(master.seq) as i64);
            if !same {
                encode_int(b, numfields as i64);
            }
            for i in 0..numfields {
                if !same {
                    encode_str(b, &fv[i * 2]);
                }
                encode_str(b, &fv[i * 2 + 1]);
            }
            let mut lp_count = numfields as i64 + 3;
            if !same {
                lp_count += numfields as i64 + 1;
            }
            encode_int(b, lp_count);
        });
        self.nodes.insert(master, lp);
    }

    /// Live entries with `start <= id <= end`, ascending (or descending when
    /// `rev`), at most `count` of them (0: no limit).
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        count: usize,
        rev: bool,
    ) -> Vec<StreamEntry> {
        let mut out = Vec::new();
        if start > end {
            return out;
        }
        let full = |out: &Vec<StreamEntry>| count != 0 && out.len() >= count;
        if !rev {
            // The node holding `start` begins at or before it.
            let from = self
                .nodes
                .range(..=start)
                .next_back()
                .map_or(start, |(k, _)| *k);
            // Entry by entry, stopping at `end` or `count` (a node is not
            // scanned past what is returned).
            for (master, lp) in self.nodes.range(from..=end) {
                let Some((_, _, master_fields, mut p)) = head(lp) else {
                    continue;
                };
                let v = NodeView {
                    lp,
                    count: 0,
                    deleted: 0,
                    master_fields,
                    items: Vec::new(),
                };
                while let Some((it, n)) = item_at(lp, *master, v.master_fields.len(), p) {
                    p = n;
                    if it.id > end {
                        return out;
                    }
                    if it.id >= start && it.flags & FLAG_DELETED == 0 {
                        out.push(v.entry(&it));
                        if full(&out) {
                            return out;
                        }
                    }
                }
            }
        } else {
            // From each node's end, entry by entry: an entry's last
            // element (lp-count) says how many elements to go back.
            for (master, lp) in self.nodes.range(..=end).rev() {
                let Some((_, _, master_fields, first)) = head(lp) else {
                    continue;
                };
                let v = NodeView {
                    lp,
                    count: 0,
                    deleted: 0,
                    master_fields,
                    items: Vec::new(),
                };
                let mut p = lp.len().saturating_sub(1);
                while p > first {
                    let Some(lpc_pos) = lp_prev(lp, p) else { break };
                    let Some((lpc, _)) = lp_int(lp, lpc_pos) else {
                        break;
                    };
                    let mut q = lpc_pos;
                    for _ in 0..lpc.clamp(0, u16::MAX as i64) {
                        match lp_prev(lp, q) {
                            Some(x) => q = x,
                            None => break,
                        }
                    }
                    if q < first {
                        break;
                    }
                    let Some((it, _)) = item_at(lp, *master, v.master_fields.len(), q) else {
                        break;
                    };
                    p = q;
                    if it.id < start {
                        return out;
                    }
                    if it.id <= end && it.flags & FLAG_DELETED == 0 {
                        out.push(v.entry(&it));
                        if full(&out) {
                            return out;
                        }
                    }
                }
            }
        }
        out
    }

    /// The live entry with this ID, if any.
    pub fn get(&self, id: StreamId) -> Option<StreamEntry> {
        self.range(id, id, 1, false).pop()
    }

    /// First (or last) ID in the stream, deleted entries included or not
    /// (`streamGetEdgeID`). An empty stream answers MAX for the first and
    /// MIN for the last.
    pub fn edge_id(&self, first: bool, skip_deleted: bool) -> StreamId {
        let found = if first {
            self.nodes.iter().find_map(|(m, lp)| {
                view(*m, lp)
                    .items
                    .iter()
                    .find(|it| !skip_deleted || it.flags & FLAG_DELETED == 0)
                    .map(|it| it.id)
            })
        } else {
            self.nodes.iter().rev().find_map(|(m, lp)| {
                view(*m, lp)
                    .items
                    .iter()
                    .rev()
                    .find(|it| !skip_deleted || it.flags & FLAG_DELETED == 0)
                    .map(|it| it.id)
            })
        };
        found.unwrap_or(if first { StreamId::MAX } else { StreamId::MIN })
    }

    /// Flags the live entry `id` deleted (`streamDeleteItem`); a node left
    /// without live entries is dropped. True if it existed.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&master, _)) = self.nodes.range(..=id).next_back() else {
            return false;
        };
        let Some(lp) = self.nodes.get_mut(&master) else {
            return false;
        };
        let (flags_pos, flags, count, deleted) = {
            let v = view(master, lp);
            match v
                .items
                .iter()
                .find(|it| it.id == id && it.flags & FLAG_DELETED == 0)
            {
                Some(it) => (it.flags_pos, it.flags, v.count, v.deleted),
                None => return false,
            }
        };
        if count <= 1 {
            self.nodes.remove(&master);
        } else {
            // Flags come after the master entry, so replacing the counters
            // (which may change size) would move them: flag first.
            lp_replace_int(lp, flags_pos, flags | FLAG_DELETED);
            lp_replace_int(lp, HEADER_SIZE, count - 1);
            if let Some((_, p)) = lp_at(lp, HEADER_SIZE) {
                lp_replace_int(lp, p, deleted + 1);
            }
        }
        self.length -= 1;
        true
    }

    /// XDEL's bookkeeping after deletions: the tombstone high-water mark
    /// and the first ID.
    pub fn after_delete(&mut self, deleted_ids: &[StreamId]) {
        let mut first_entry = false;
        for id in deleted_ids {
            if *id == self.first_id {
                first_entry = true;
            }
            if *id > self.max_deleted_id {
                self.max_deleted_id = *id;
            }
        }
        if !deleted_ids.is_empty() {
            if self.length == 0 {
                self.first_id = StreamId::MIN;
            } else if first_entry {
                self.first_id = self.edge_id(true, true);
            }
        }
    }

    /// Trims the stream (`streamTrim`): whole nodes first, then (unless
    /// `approx`) entries inside the first remaining node. `limit` caps the
    /// entries removed (0: no cap). Returns how many were removed.
    pub fn trim(&mut self, trim: Trim, approx: bool, limit: u64) -> u64 {
        if trim == Trim::None {
            return 0;
        }
        let mut deleted: u64 = 0;
        let masters: Vec<StreamId> = self.nodes.keys().copied().collect();
        for master in masters {
            if let Trim::MaxLen(maxlen) = trim {
                if self.length <= maxlen {
                    break;
                }
            }
            let Some(lp) = self.nodes.get(&master) else {
                continue;
            };
            let v = view(master, lp);
            let entries = v.count.max(0) as u64;
            if limit != 0 && deleted + entries > limit {
                break;
            }
            let remove_node = match trim {
                Trim::MaxLen(maxlen) => self.length - entries >= maxlen,
                Trim::MinId(min) => {
                    let last = v.items.last().map_or(master, |it| it.id);
                    last < min
                }
                Trim::None => false,
            };
            if remove_node {
                self.nodes.remove(&master);
                self.length -= entries;
                deleted += entries;
                continue;
            }
            if approx {
                break;
            }
            let mut to_flag = Vec::new();
            let mut length = self.length;
            for it in &v.items {
                let stop = match trim {
                    Trim::MaxLen(maxlen) => length <= maxlen,
                    Trim::MinId(min) => it.id >= min,
                    Trim::None => true,
                };
                if stop {
                    break;
                }
                if it.flags & FLAG_DELETED == 0 {
                    to_flag.push((it.flags_pos, it.flags));
                    length -= 1;
                }
            }
            let (count, marked) = (v.count, v.deleted);
            let n = to_flag.len() as i64;
            let Some(lp) = self.nodes.get_mut(&master) else {
                break;
            };
            // Flags one byte each (0..=3), so positions do not move.
            for (pos, flags) in to_flag {
                lp_replace_int(lp, pos, flags | FLAG_DELETED);
            }
            lp_replace_int(lp, HEADER_SIZE, count - n);
            if let Some((_, p)) = lp_at(lp, HEADER_SIZE) {
                lp_replace_int(lp, p, marked + n);
            }
            self.length -= n as u64;
            deleted += n as u64;
            break;
        }
        if deleted > 0 {
            self.first_id = if self.length == 0 {
                StreamId::MIN
            } else {
                self.edge_id(true, true)
            };
        }
        deleted
    }

    /// True if a deleted entry may lie in `[start, end]` (`streamRangeHasTombstones`).
    pub fn range_has_tombstones(&self, start: Option<StreamId>, end: Option<StreamId>) -> bool {
        if self.length == 0 || self.max_deleted_id == StreamId::MIN {
            return false;
        }
        let start = start.unwrap_or(StreamId::MIN);
        let end = end.unwrap_or(StreamId::MAX);
        start <= self.max_deleted_id && self.max_deleted_id <= end && {
            // Redis compares against first_id too: tombstones before the
            // first live entry are not "in" the stream.
            self.max_deleted_id >= self.first_id
        }
    }

    /// `streamEstimateDistanceFromFirstEverEntry`: the number of entries
    /// added up to `id`, when that can be known; `ENTRIES_READ_INVALID`
    /// otherwise.
    pub fn estimate_distance(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        if self.length == 0 && id < self.last_id {
            return self.entries_added as i64;
        }
        if id == self.last_id {
            return self.entries_added as i64;
        }
        if id > self.last_id {
            return ENTRIES_READ_INVALID;
        }
        if self.max_deleted_id == StreamId::MIN || self.max_deleted_id < self.first_id {
            // No fragmentation ahead means that the group's logical reads
            // counter is valid for performing the lag calculation.
            // Wrapping as in C: counters from a file are not trusted to
            // be consistent.
            if id < self.first_id {
                return self.entries_added.wrapping_sub(self.length) as i64;
            }
            if id == self.first_id {
                return self.entries_added.wrapping_sub(self.length).wrapping_add(1) as i64;
            }
        }
        ENTRIES_READ_INVALID
    }

    /// A group's `lag` (XINFO GROUPS), or `None` (a null reply) when it
    /// cannot be known (`streamReplyWithCGLag`).
    pub fn group_lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != ENTRIES_READ_INVALID
            && !self.range_has_tombstones(Some(g.last_id), None)
        {
            return Some((self.entries_added as i64).wrapping_sub(g.entries_read));
        }
        let entries_read = self.estimate_distance(g.last_id);
        if entries_read != ENTRIES_READ_INVALID {
            Some((self.entries_added as i64).wrapping_sub(entries_read))
        } else {
            None
        }
    }

    /// Checks a stream read from a file: nodes in order, each node's master
    /// entry and entries well formed, IDs increasing and within the node's
    /// key range, counters consistent (`streamValidateListpackIntegrity`).
    pub fn validate(&self) -> bool {
        let mut prev: Option<StreamId> = None;
        let mut live = 0u64;
        for (master, lp) in &self.nodes {
            let Ok(elems) = listpack::decode(lp) else {
                return false;
            };
            let ints = |i: usize| -> Option<i64> {
                match elems.get(i)? {
                    Entry::Int(v) => Some(*v),
                    Entry::Str(_) => None,
                }
            };
            let (Some(count), Some(deleted), Some(nmaster)) = (ints(0), ints(1), ints(2)) else {
                return false;
            };
            if count < 0 || deleted < 0 || nmaster < 0 || nmaster as usize + 4 > elems.len() {
                return false;
            }
            let mut i = 3 + nmaster as usize;
            if ints(i) != Some(0) {
                return false;
            }
            i += 1;
            let (mut seen_live, mut seen_deleted) = (0i64, 0i64);
            while i < elems.len() {
                let start = i;
                let (Some(flags), Some(msd), Some(seqd)) = (ints(i), ints(i + 1), ints(i + 2))
                else {
                    return false;
                };
                if !(0..=3).contains(&flags) {
                    return false;
                }
                i += 3;
                if flags & FLAG_SAMEFIELDS != 0 {
                    i += nmaster as usize;
                } else {
                    let Some(nf) = ints(i) else { return false };
                    if nf < 0 || nf as usize > elems.len() {
                        return false;
                    }
                    i += 1 + 2 * nf as usize;
                }
                let Some(lpc) = ints(i) else { return false };
                if lpc < 0 || lpc as usize != i - start {
                    return false;
                }
                i += 1;
                let id = StreamId::new(
                    master.ms.wrapping_add(msd as u64),
                    master.seq.wrapping_add(seqd as u64),
                );
                if id < *master || prev.is_some_and(|p| id <= p) {
                    return false;
                }
                prev = Some(id);
                if flags & FLAG_DELETED != 0 {
                    seen_deleted += 1;
                } else {
                    seen_live += 1;
                }
            }
            if seen_live != count || seen_deleted != deleted || count + deleted == 0 {
                return false;
            }
            live += count as u64;
        }
        live == self.length
    }

    /// Approximate heap bytes (MEMORY USAGE, INFO, maxmemory), in O(1) for
    /// the nodes: it is recomputed after every write to the key, so the
    /// first few nodes are measured and extrapolated (closed nodes are all
    /// alike), plus the open last node (which holds preallocated room) and
    /// per-node, per-group and per-pending-entry bookkeeping.
    pub fn heap_bytes(&self) -> usize {
        /// BTreeMap slot and key per node (Redis's rax node is similar).
        const PER_NODE: usize = 48;
        const SAMPLES: usize = 8;
        let n = self.nodes.len();
        let last = self
            .nodes
            .values()
            .next_back()
            .map_or(0, |lp| lp.capacity());
        let closed = n.saturating_sub(1);
        let sampled: Vec<usize> = self
            .nodes
            .values()
            .take(SAMPLES.min(closed))
            .map(|lp| lp.capacity())
            .collect();
        let per = if sampled.is_empty() {
            0
        } else {
            sampled.iter().sum::<usize>() / sampled.len()
        };
        let nodes = per * closed + last + n * PER_NODE;
        let groups: usize = self
            .groups
            .iter()
            .map(|(n, g)| n.len() + 64 + g.pel.len() * 96 + g.consumers.len() * 64)
            .sum();
        nodes + groups
    }
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// The consumer called `name`, created if missing (`streamCreateConsumer`
    /// via `streamLookupConsumer`). The bool says whether it was created.
    pub fn consumer_mut(&mut self, name: &Bytes, now: i64) -> (&mut Consumer, bool) {
        let created = !self.consumers.contains_key(name);
        let c = self
            .consumers
            .entry(name.clone())
            .or_insert_with(|| Consumer {
                seen_time: now,
                pel: BTreeSet::new(),
            });
        (c, created)
    }

    /// Removes a pending entry from the group and its consumer.
    pub fn ack(&mut self, id: StreamId) -> bool {
        match self.pel.remove(&id) {
            Some(p) => {
                if let Some(c) = self.consumers.get_mut(&p.consumer) {
                    c.pel.remove(&id);
                }
                true
            }
            None => false,
        }
    }

    /// Gives pending entry `id` to consumer `to` (creating the NACK if
    /// missing), moving it out of its previous owner's PEL.
    pub fn assign(&mut self, id: StreamId, to: &Bytes, delivery_time: i64, count: u64) {
        let prev = self.pel.insert(
            id,
            Pending {
                delivery_time,
                delivery_count: count,
                consumer: to.clone(),
            },
        );
        if let Some(p) = prev {
            if p.consumer != *to {
                if let Some(c) = self.consumers.get_mut(&p.consumer) {
                    c.pel.remove(&id);
                }
            }
        }
        if let Some(c) = self.consumers.get_mut(to) {
            c.pel.insert(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn append_range_delete_trim() {
        let mut s = Stream::new();
        for i in 1..=250u64 {
            let fv = if i % 7 == 0 {
                vec![b("x"), b(&i.to_string())]
            } else {
                vec![b("a"), b(&i.to_string()), b("b"), b("v")]
            };
            assert!(s.append(StreamId::new(i, 0), &fv, 4096, 100));
        }
        assert_eq!(s.len(), 250);
        assert_eq!(s.node_count(), 3);
        assert!(s.validate());
        let r = s.range(StreamId::new(99, 0), StreamId::new(102, 0), 0, false);
        assert_eq!(
            r.iter().map(|e| e.id.ms).collect::<Vec<_>>(),
            [99, 100, 101, 102]
        );
        assert_eq!(
            r[0].fields,
            [b"a".to_vec(), b"99".to_vec(), b"b".to_vec(), b"v".to_vec()]
        );
        let r = s.range(StreamId::MIN, StreamId::MAX, 3, true);
        assert_eq!(
            r.iter().map(|e| e.id.ms).collect::<Vec<_>>(),
            [250, 249, 248]
        );
        assert!(s.delete(StreamId::new(100, 0)));
        assert!(!s.delete(StreamId::new(100, 0)));
        assert_eq!(s.len(), 249);
        assert!(s.validate());
        assert!(s.get(StreamId::new(100, 0)).is_none());
        assert_eq!(s.trim(Trim::MaxLen(200), false, 0), 49);
        assert_eq!(s.len(), 200);
        assert!(s.validate());
        // 1..=49 flagged: 100 was already deleted and does not count.
        assert_eq!(s.range(StreamId::MIN, StreamId::MAX, 1, false)[0].id.ms, 50);
        // Both older nodes end before 201: whole nodes go, 50 + 100 live.
        assert_eq!(s.trim(Trim::MinId(StreamId::new(201, 0)), true, 0), 150);
        assert_eq!(s.node_count(), 1);
        assert_eq!(s.first_id, StreamId::new(201, 0));
        assert!(s.validate());
    }

    /// A stream with groups survives DUMP/RESTORE; every single-bit flip of
    /// its payload (CRC zeroed, which RESTORE accepts as "no checksum")
    /// is either refused or yields a stream that passes validation and can
    /// be read: corrupt input never panics.
    #[test]
    fn corrupt_payloads_are_refused_or_valid() {
        use crate::config::Config;
        use crate::db::Value;
        use crate::rdb::{dump_payload, restore_payload, LoadOptions};
        let mut s = Stream::new();
        for i in 1..=12u64 {
            let fv = [
                b("name"),
                b(&format!("v{i}")),
                b("n"),
                b(&(i * 1000).to_string()),
            ];
            assert!(s.append(StreamId::new(i, i % 3), &fv, 4096, 5));
        }
        assert!(s.delete(StreamId::new(4, 1)));
        s.after_delete(&[StreamId::new(4, 1)]);
        let mut g = Group::new(StreamId::new(6, 0), 6);
        g.consumer_mut(&b("alice"), 1000);
        g.consumer_mut(&b("bob"), 2000);
        g.assign(StreamId::new(2, 2), &b("alice"), 5, 1);
        g.assign(StreamId::new(5, 2), &b("bob"), 7, 3);
        s.groups.insert(b("g"), g);
        let config = Config::default();
        let opts = LoadOptions {
            config: &config,
            check_checksum: true,
            sanitize: false,
        };
        let payload = dump_payload(&Value::Stream(Box::new(s.clone())), &config);
        match restore_payload(&payload, &opts) {
            Ok(Value::Stream(back)) => {
                assert!(back.validate());
                assert_eq!(
                    back.range(StreamId::MIN, StreamId::MAX, 0, false),
                    s.range(StreamId::MIN, StreamId::MAX, 0, false)
                );
                assert_eq!(back.groups[&b("g")].pel.len(), 2);
            }
            other => panic!("round trip failed: {other:?}"),
        }
        let body = payload.len() - 8;
        for i in 0..body - 2 {
            for bit in 0..8 {
                let mut p = payload.clone();
                p[i] ^= 1 << bit;
                p[body..].fill(0);
                if let Ok(Value::Stream(v)) = restore_payload(&p, &opts) {
                    assert!(v.validate(), "byte {i} bit {bit}");
                    let all = v.range(StreamId::MIN, StreamId::MAX, 0, false);
                    assert_eq!(all.len() as u64, v.len());
                    let _ = v.range(StreamId::MIN, StreamId::MAX, 3, true);
                    let _ = v.rax_node_count();
                    for g in v.groups.values() {
                        let _ = v.group_lag(g);
                    }
                }
            }
        }
    }

    /// Forward and backward ranges, with deletions, trims, mixed field
    /// sets and values whose backlens take 1 to 3 bytes, agree with a
    /// plain ordered map for random bounds and counts.
    #[test]
    fn ranges_match_a_model() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..40 {
            let mut s = Stream::new();
            let mut model: BTreeMap<StreamId, Vec<Vec<u8>>> = BTreeMap::new();
            let max_entries = [0, 1, 3, 100][round % 4];
            let mut id = StreamId::new(1, 0);
            for _ in 0..(50 + rnd(200)) {
                id = StreamId::new(id.ms + rnd(3), id.seq + 1 + rnd(2));
                let vlen = [1, 70, 200, 20000][rnd(4) as usize];
                let fv: Vec<Bytes> = if rnd(3) == 0 {
                    vec![b("x"), b(&"v".repeat(vlen))]
                } else {
                    vec![b("a"), b(&rnd(100000).to_string()), b("b"), b("-17")]
                };
                assert!(s.append(id, &fv, 4096, max_entries));
                model.insert(id, fv.iter().map(|f| f.to_vec()).collect());
                if rnd(5) == 0 {
                    let victim = *model.keys().nth(rnd(model.len() as u64) as usize).unwrap();
                    assert!(s.delete(victim));
                    model.remove(&victim);
                }
            }
            if rnd(2) == 0 {
                let keep = rnd(model.len() as u64 + 1);
                s.trim(Trim::MaxLen(keep), false, 0);
                while model.len() as u64 > keep {
                    let first = *model.keys().next().unwrap();
                    model.remove(&first);
                }
            }
            assert!(s.validate());
            let ids: Vec<StreamId> = model.keys().copied().collect();
            for _ in 0..30 {
                let pick = |r: u64| ids.get(r as usize).copied().unwrap_or(StreamId::MAX);
                let (a, z) = (
                    pick(rnd(ids.len() as u64 + 1)),
                    pick(rnd(ids.len() as u64 + 1)),
                );
                let (lo, hi) = (a.min(z), a.max(z));
                let count = rnd(6) as usize;
                let want: Vec<StreamEntry> = model
                    .range(lo..=hi)
                    .map(|(id, f)| StreamEntry {
                        id: *id,
                        fields: f.clone(),
                    })
                    .collect();
                let take = |v: Vec<StreamEntry>| -> Vec<StreamEntry> {
                    if count == 0 {
                        v
                    } else {
                        v.into_iter().take(count).collect()
                    }
                };
                assert_eq!(s.range(lo, hi, count, false), take(want.clone()));
                let mut rev = want;
                rev.reverse();
                assert_eq!(s.range(lo, hi, count, true), take(rev));
            }
        }
    }

    #[test]
    fn rax_node_counts_like_redis() {
        // One key: a compressed node and the leaf (XINFO shows 2).
        assert_eq!(rax_nodes(&[StreamId::new(1, 1).encode()]), 2);
        assert_eq!(rax_nodes(&[]), 1);
    }
}
