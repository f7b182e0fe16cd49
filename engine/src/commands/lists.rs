//! List commands (Redis's `t_list.c`): pushes and pops at both ends, ranges,
//! LPOS, LMOVE, LMPOP, and the blocking forms BLPOP, BRPOP, BLMOVE,
//! BRPOPLPUSH and BLMPOP.
//!
//! A list is a sequence of packed chunks, like Redis's quicklist of listpacks:
//! each chunk is one byte buffer of entries `[len][bytes][backlen]` (both
//! lengths as varints), so a small element costs its bytes plus two, not a
//! heap allocation and a 32-byte handle. Chunks are capped by
//! `list-max-listpack-size` (negative: bytes, -2 = 8 KiB; positive:
//! entries), so pushes and pops at either end touch one small buffer. Redis
//! 7.0 reports every list as `quicklist`, whatever its size, and so do we.

use super::{Lookup, Typed};
use crate::command::Handler;
use crate::db::{Entry, Value};
use crate::node::{Ctx, TimeoutReply};
use crate::notify::{GENERIC, LIST};
use bytes::Bytes;

/// A list value.
#[derive(Debug, Clone, Default)]
pub struct List {
    /// Chunks head first. A Vec, not a VecDeque: lists are usually one
    /// chunk, and a Vec reserved exactly costs one small allocation.
    chunks: Vec<Chunk>,
    len: usize,
}

/// Packed entries: `[len: LEB128][payload][backlen: reverse LEB128 of the
/// size of len+payload]`. The backlen lets a pop at the tail find the last
/// entry without scanning the chunk.
#[derive(Debug, Clone, Default)]
struct Chunk {
    data: Vec<u8>,
    count: usize,
    /// The bytes of this chunk as a Redis listpack (`node->sz`), which
    /// decides where Redis's quicklist starts a new node.
    lp: usize,
}

// Redis 7.0.15's quicklist limits (quicklist.c), so chunks split and merge
// where Redis's nodes do: DUMP and RDB files write one node per chunk.

/// `optimization_level`: node byte limits for fill -1..-5.
const OPTIMIZATION_LEVEL: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// `SIZE_SAFETY_LIMIT`: no node grows past this under a count-based fill.
const SIZE_SAFETY_LIMIT: usize = 8192;
/// `SIZE_ESTIMATE_OVERHEAD`: what an insert is assumed to add beyond the
/// element's bytes.
const SIZE_ESTIMATE_OVERHEAD: usize = 8;
/// `packed_threshold`: elements this large get a (plain) node of their own.
pub const PACKED_THRESHOLD: usize = 1 << 30;
/// An empty listpack: 6-byte header and the end byte.
const LP_EMPTY: usize = 7;

/// `quicklistNodeExceedsLimit`, with `quicklistSetFill`'s bounds.
fn exceeds_limit(fill: i64, new_sz: usize, new_count: usize) -> bool {
    let fill = fill.clamp(-5, (1 << 15) - 1);
    if fill < 0 {
        new_sz > OPTIMIZATION_LEVEL[(-fill - 1) as usize]
    } else {
        new_sz > SIZE_SAFETY_LIMIT || new_count > fill.max(1) as usize
    }
}

/// `_quicklistNodeAllowInsert`: may an element of `sz` bytes join `c`?
fn allows_insert(c: Option<&Chunk>, fill: i64, sz: usize) -> bool {
    match c {
        Some(c) if !c.is_plain() && sz < PACKED_THRESHOLD => {
            !exceeds_limit(fill, c.lp + sz + SIZE_ESTIMATE_OVERHEAD, c.count + 1)
        }
        _ => false,
    }
}

/// `_quicklistNodeAllowMerge`.
fn allows_merge(a: &Chunk, b: &Chunk, fill: i64) -> bool {
    !a.is_plain()
        && !b.is_plain()
        && !exceeds_limit(
            fill,
            (a.lp + b.lp).saturating_sub(LP_EMPTY),
            a.count + b.count,
        )
}

/// The bytes `v` takes as a listpack entry (listpack.c's string and
/// integer encodings plus the back-length).
fn lp_entry_size(v: &[u8]) -> usize {
    let enc = match crate::resp::parse_i64(v) {
        Some(n) if (0..=127).contains(&n) => 1,
        Some(n) if (-4096..=4095).contains(&n) => 2,
        Some(n) if i16::try_from(n).is_ok() => 3,
        Some(n) if (-(1 << 23)..(1 << 23)).contains(&n) => 4,
        Some(n) if i32::try_from(n).is_ok() => 5,
        Some(_) => 9,
        None if v.len() < 64 => 1 + v.len(),
        None if v.len() < 4096 => 2 + v.len(),
        None => 5 + v.len(),
    };
    enc + match enc {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

fn leb_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_leb(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a LEB128 at `pos`: (value, bytes used).
fn get_leb(data: &[u8], pos: usize) -> (usize, usize) {
    let (mut v, mut shift, mut i) = (0usize, 0, pos);
    loop {
        let b = data[i];
        v |= ((b & 0x7f) as usize) << shift;
        i += 1;
        if b & 0x80 == 0 {
            return (v, i - pos);
        }
        shift += 7;
    }
}

/// Writes `v` so that it can be read backwards from its last byte.
fn put_backlen(out: &mut Vec<u8>, v: usize) {
    let mut groups = [0u8; 10];
    let mut n = 0;
    let mut x = v;
    loop {
        groups[n] = (x & 0x7f) as u8;
        n += 1;
        x >>= 7;
        if x == 0 {
            break;
        }
    }
    // Highest group first; every byte but the leftmost says "more to the
    // left", so a reader walking backwards knows when to stop.
    for i in (0..n).rev() {
        out.push(groups[i] | if i + 1 < n { 0x80 } else { 0 });
    }
}

/// Reads a backlen ending just before `end`: (value, bytes used).
fn get_backlen(data: &[u8], end: usize) -> (usize, usize) {
    let (mut v, mut shift, mut i) = (0usize, 0, end);
    loop {
        i -= 1;
        let b = data[i];
        v |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 || i == 0 {
            return (v, end - i);
        }
        shift += 7;
    }
}

/// Makes room for `extra` bytes with at most 1/8 headroom: Vec's doubling
/// would waste up to half of every chunk, and chunks are most of a list's
/// memory.
fn grow(data: &mut Vec<u8>, extra: usize) {
    if data.capacity() - data.len() < extra {
        data.reserve_exact(extra.max(data.len() / 8));
    }
}

impl Chunk {
    /// A chunk of `items` (one Redis node).
    fn of<'a>(items: impl Iterator<Item = &'a [u8]>) -> Chunk {
        let mut c = Chunk {
            data: Vec::new(),
            count: 0,
            lp: LP_EMPTY,
        };
        for v in items {
            c.data.extend_from_slice(&Chunk::encode(v));
            c.count += 1;
            c.lp += lp_entry_size(v);
        }
        c
    }

    /// Redis keeps an element of [`PACKED_THRESHOLD`] bytes or more alone
    /// in a plain node, which never takes other elements.
    fn is_plain(&self) -> bool {
        self.count == 1 && self.data.len() > PACKED_THRESHOLD
    }

    fn encode(v: &[u8]) -> Vec<u8> {
        let mut e = Vec::with_capacity(v.len() + 4);
        Chunk::encode_into(&mut e, v);
        e
    }

    /// Appends `v`'s entry to `out`.
    fn encode_into(out: &mut Vec<u8>, v: &[u8]) {
        put_leb(out, v.len());
        out.extend_from_slice(v);
        put_backlen(out, leb_len(v.len()) + v.len());
    }

    /// The bytes of `v`'s entry.
    fn entry_len(v: &[u8]) -> usize {
        let n = leb_len(v.len()) + v.len();
        n + leb_len(n)
    }

    /// Puts `v`'s entry in front of the others: the entries move up in
    /// place (one memmove, as listpack's lpInsert) and the new one is
    /// written into the gap, with no intermediate buffer.
    fn push_front(&mut self, v: &[u8]) {
        let n = Chunk::entry_len(v);
        grow(&mut self.data, n);
        let old = self.data.len();
        // Encode at the end, then rotate it to the front.
        Chunk::encode_into(&mut self.data, v);
        debug_assert_eq!(self.data.len(), old + n);
        self.data.rotate_right(n);
    }

    /// Entry at byte offset `pos`: (payload range, offset of the next entry).
    /// The backlen encodes `n + len` in as many bytes as a LEB128 would.
    fn entry_at(&self, pos: usize) -> (std::ops::Range<usize>, usize) {
        let (len, n) = get_leb(&self.data, pos);
        let start = pos + n;
        (start..start + len, start + len + leb_len(n + len))
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut pos = 0;
        std::iter::from_fn(move || {
            if pos >= self.data.len() {
                return None;
            }
            let (r, next) = self.entry_at(pos);
            pos = next;
            Some(&self.data[r])
        })
    }
}

impl List {
    /// OBJECT ENCODING's name: Redis 7.0 lists are always quicklists.
    pub fn encoding_name(&self) -> &'static str {
        "quicklist"
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements, head first.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// The element at `i` (0 = head).
    pub fn get(&self, mut i: usize) -> Option<&[u8]> {
        for c in &self.chunks {
            if i < c.count {
                return c.iter().nth(i);
            }
            i -= c.count;
        }
        None
    }

    /// A list of `items`, head first, packed for `fill`
    /// (`list-max-listpack-size`): how RDB loading and RESTORE build lists.
    pub fn from_elements<'a>(items: impl Iterator<Item = &'a [u8]>, fill: i64) -> List {
        List::from_items(items, fill)
    }

    /// Builds a list from elements, packing chunks to the fill limit.
    fn from_items<'a>(items: impl Iterator<Item = &'a [u8]>, fill: i64) -> List {
        let mut l = List::default();
        for v in items {
            l.push(End::Right, v, fill);
        }
        l
    }

    /// Copies the elements out (for the rare O(N) edits: LSET, LINSERT, LREM).
    fn to_vec(&self) -> Vec<Vec<u8>> {
        self.iter().map(|v| v.to_vec()).collect()
    }

    /// `quicklistPush`: into the end chunk if Redis's node would take the
    /// element, else into a new chunk.
    fn push(&mut self, end: End, v: &[u8], fill: i64) {
        let lp = lp_entry_size(v);
        match end {
            End::Left => match self.chunks.first_mut() {
                Some(c) if allows_insert(Some(c), fill, v.len()) => {
                    c.push_front(v);
                    c.count += 1;
                    c.lp += lp;
                }
                _ => {
                    self.chunks.reserve_exact(1);
                    self.chunks.insert(
                        0,
                        Chunk {
                            data: Chunk::encode(v),
                            count: 1,
                            lp: LP_EMPTY + lp,
                        },
                    )
                }
            },
            End::Right => match self.chunks.last_mut() {
                Some(c) if allows_insert(Some(c), fill, v.len()) => {
                    grow(&mut c.data, Chunk::entry_len(v));
                    Chunk::encode_into(&mut c.data, v);
                    c.count += 1;
                    c.lp += lp;
                }
                _ => {
                    self.chunks.reserve_exact(1);
                    self.chunks.push(Chunk {
                        data: Chunk::encode(v),
                        count: 1,
                        lp: LP_EMPTY + lp,
                    })
                }
            },
        }
        self.len += 1;
    }

    /// The chunks' elements, head first: Redis's quicklist nodes.
    pub fn nodes(&self) -> impl Iterator<Item = impl Iterator<Item = &[u8]>> {
        self.chunks.iter().map(|c| c.iter())
    }

    /// A list with exactly these nodes (RDB loading keeps the nodes it
    /// reads, as Redis does); empty nodes are dropped.
    pub fn from_nodes(nodes: Vec<Vec<Vec<u8>>>) -> List {
        let chunks: Vec<Chunk> = nodes
            .iter()
            .filter(|n| !n.is_empty())
            .map(|n| Chunk::of(n.iter().map(|v| v.as_slice())))
            .collect();
        let len = chunks.iter().map(|c| c.count).sum();
        List { chunks, len }
    }

    /// The elements by node (for the rare O(N) edits that Redis makes
    /// inside nodes: LSET, LINSERT, LREM).
    fn to_nodes(&self) -> Vec<Vec<Vec<u8>>> {
        self.chunks
            .iter()
            .map(|c| c.iter().map(|v| v.to_vec()).collect())
            .collect()
    }

    /// `_quicklistInsert` after or before the element at `offset` of node
    /// `ni`: into that node if it has room, else into the neighbour at that
    /// end, else a new node or a split followed by `_quicklistMergeNodes`.
    fn insert_at(&mut self, ni: usize, offset: usize, after: bool, v: &[u8], fill: i64) {
        let sz = v.len();
        let full = !allows_insert(self.chunks.get(ni), fill, sz);
        let count = self.chunks[ni].count;
        let at_tail = after && offset + 1 == count;
        let at_head = !after && offset == 0;
        let avail_next = at_tail && allows_insert(self.chunks.get(ni + 1), fill, sz);
        let avail_prev =
            at_head && ni > 0 && allows_insert(self.chunks.get(ni.wrapping_sub(1)), fill, sz);
        let mut nodes = self.to_nodes();
        if sz >= PACKED_THRESHOLD {
            // A plain node of its own beside this one (split if inside).
            let at = if after { offset + 1 } else { offset };
            let rest = nodes[ni].split_off(at);
            let pos = if at == 0 {
                ni
            } else if rest.is_empty() {
                ni + 1
            } else {
                nodes.insert(ni + 1, rest);
                ni + 1
            };
            nodes.insert(pos, vec![v.to_vec()]);
        } else if !full {
            nodes[ni].insert(if after { offset + 1 } else { offset }, v.to_vec());
        } else if at_tail && avail_next {
            nodes[ni + 1].insert(0, v.to_vec());
        } else if at_head && avail_prev {
            nodes[ni - 1].push(v.to_vec());
        } else if at_tail || at_head {
            // Full, at an end of the node, and the neighbour there (if
            // any) full too: a new node between them.
            nodes.insert(if after { ni + 1 } else { ni }, vec![v.to_vec()]);
        } else {
            // _quicklistSplitNode: `after` keeps [0..=offset] and the new
            // node takes the rest with the element in front; otherwise the
            // new node takes [0..offset) with the element at its end.
            let center = if after {
                let mut rest = nodes[ni].split_off(offset + 1);
                rest.insert(0, v.to_vec());
                nodes.insert(ni + 1, rest);
                ni
            } else {
                let rest = nodes[ni].split_off(offset);
                let mut head = std::mem::replace(&mut nodes[ni], rest);
                head.push(v.to_vec());
                nodes.insert(ni, head);
                ni + 1
            };
            *self = List::from_nodes(nodes);
            self.merge_around(center, fill);
            return;
        }
        *self = List::from_nodes(nodes);
    }

    /// Merges chunks `a` and `a + 1` (`_quicklistListpackMerge`).
    fn merge_pair(&mut self, a: usize) {
        let b = self.chunks.remove(a + 1);
        let c = &mut self.chunks[a];
        c.data.extend_from_slice(&b.data);
        c.count += b.count;
        c.lp = c.lp + b.lp - LP_EMPTY;
    }

    /// `_quicklistMergeNodes` around chunk `center`.
    fn merge_around(&mut self, mut center: usize, fill: i64) {
        let ok = |l: &List, a: usize| {
            a + 1 < l.chunks.len() && allows_merge(&l.chunks[a], &l.chunks[a + 1], fill)
        };
        // prev_prev + prev.
        if center >= 2 && ok(self, center - 2) {
            self.merge_pair(center - 2);
            center -= 1;
        }
        // next + next_next.
        if ok(self, center + 1) {
            self.merge_pair(center + 1);
        }
        // prev + center, then the result with next.
        let mut target = center;
        if center >= 1 && ok(self, center - 1) {
            self.merge_pair(center - 1);
            target = center - 1;
        }
        if ok(self, target) {
            self.merge_pair(target);
        }
    }

    fn pop(&mut self, end: End) -> Option<Bytes> {
        let mut v = None;
        self.pop_with(end, |e| v = Some(Bytes::copy_from_slice(e)));
        v
    }

    /// Removes the element at `end`, showing it to `f` first (a reply can
    /// take it without a copy of its own). False if the list is empty.
    fn pop_with(&mut self, end: End, f: impl FnOnce(&[u8])) -> bool {
        match end {
            End::Left => {
                let Some(c) = self.chunks.first_mut() else {
                    return false;
                };
                let (r, next) = c.entry_at(0);
                let v = &c.data[r];
                c.lp -= lp_entry_size(v);
                f(v);
                c.data.drain(..next);
                c.count -= 1;
                if c.count == 0 {
                    self.chunks.remove(0);
                }
            }
            End::Right => {
                let Some(c) = self.chunks.last_mut() else {
                    return false;
                };
                let end_pos = c.data.len();
                let (size, b) = get_backlen(&c.data, end_pos);
                let start = end_pos - b - size;
                let (r, _) = c.entry_at(start);
                let v = &c.data[r];
                c.lp -= lp_entry_size(v);
                f(v);
                c.data.truncate(start);
                c.count -= 1;
                if c.count == 0 {
                    self.chunks.pop();
                }
            }
        }
        self.len -= 1;
        true
    }
}

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Left,
    Right,
}

/// This module's commands, by lowercase name.
pub fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "lpush" => lpush,
        "rpush" => rpush,
        "lpushx" => lpushx,
        "rpushx" => rpushx,
        "lpop" => lpop,
        "rpop" => rpop,
        "llen" => llen,
        "lrange" => lrange,
        "lindex" => lindex,
        "lset" => lset,
        "linsert" => linsert,
        "lrem" => lrem,
        "ltrim" => ltrim,
        "lpos" => lpos,
        "lmove" => lmove,
        "rpoplpush" => rpoplpush,
        "lmpop" => lmpop,
        "blpop" => blpop,
        "brpop" => brpop,
        "blmove" => blmove,
        "brpoplpush" => brpoplpush,
        "blmpop" => blmpop,
        _ => return None,
    })
}

/// Finds the list at `key` for a write command. `Err` after a WRONGTYPE
/// reply.
fn list_for_write<'a>(cx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut List>, ()> {
    let db = cx.client.db;
    if matches!(cx.node.write_typed::<List>(db, key), Lookup::WrongType) {
        cx.wrongtype();
        return Err(());
    }
    Ok(existing(cx, key))
}

/// Finds the list at `key` for a read command (hit/miss statistics).
/// `Err` after a WRONGTYPE reply.
fn list_for_read<'a>(cx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut List>, ()> {
    let db = cx.client.db;
    if matches!(cx.node.read_typed::<List>(db, key), Lookup::WrongType) {
        cx.wrongtype();
        return Err(());
    }
    Ok(existing(cx, key))
}

/// The list at `key` after a lookup already applied expiry and checked the
/// type.
fn existing<'a>(cx: &'a mut Ctx, key: &[u8]) -> Option<&'a mut List> {
    let e = cx.node.dbs[cx.client.db].keys.get_mut(key)?;
    List::from_value(&mut e.value)
}

/// Deletes `key` if its list became empty (Redis never keeps empty lists).
fn delete_if_empty(cx: &mut Ctx, key: &[u8]) {
    let empty = matches!(
        cx.db().keys.get(key),
        Some(Entry { value: Value::List(l), .. }) if l.is_empty()
    );
    if empty {
        cx.delete_key(key);
        cx.notify(GENERIC, "del", key);
    }
}

/// The event of a pop from `end`.
fn pop_event(end: End) -> &'static str {
    match end {
        End::Left => "lpop",
        End::Right => "rpop",
    }
}

/// The event of a push to `end`.
fn push_event(end: End) -> &'static str {
    match end {
        End::Left => "lpush",
        End::Right => "rpush",
    }
}

/// Parses LEFT|RIGHT (Redis's `getListPositionFromObjectOrReply`).
fn parse_end(cx: &mut Ctx, i: usize) -> Option<End> {
    if cx.arg_is(i, "left") {
        Some(End::Left)
    } else if cx.arg_is(i, "right") {
        Some(End::Right)
    } else {
        cx.syntax_error();
        None
    }
}

/// Parses a count in [min, i64::MAX] with Redis's custom message.
fn parse_ranged(cx: &mut Ctx, i: usize, min: i64, msg: &str) -> Option<i64> {
    match crate::resp::parse_i64(&cx.argv[i]) {
        Some(n) if n >= min => Some(n),
        _ => {
            cx.error(msg);
            None
        }
    }
}

pub fn lpush(cx: &mut Ctx) {
    push_generic(cx, End::Left, false);
}

pub fn rpush(cx: &mut Ctx) {
    push_generic(cx, End::Right, false);
}

pub fn lpushx(cx: &mut Ctx) {
    push_generic(cx, End::Left, true);
}

pub fn rpushx(cx: &mut Ctx) {
    push_generic(cx, End::Right, true);
}

/// LPUSH/RPUSH key element [element ...]; the X forms only push to an
/// existing list.
fn push_generic(cx: &mut Ctx, end: End, only_existing: bool) {
    let argv = cx.argv;
    let key = &argv[1];
    let db = cx.client.db;
    let fill = cx.node.config.list_max_listpack_size;
    let push_all = |l: &mut List, _: &mut _| {
        for e in &argv[2..] {
            l.push(end, e, fill);
        }
        l.len()
    };
    // One lookup: the push and the memory estimate happen on the entry
    // found (or the new list is estimated as it enters the db).
    let len = match cx.node.write_typed_with::<List, _>(db, key, push_all) {
        Lookup::WrongType => return cx.wrongtype(),
        Lookup::Found(len) => len,
        Lookup::Missing if only_existing => return cx.out().int(0),
        Lookup::Missing => {
            let mut l = List::default();
            let len = push_all(&mut l, &mut cx.node.rng);
            let lru = cx.lru_now();
            cx.db().set(key.clone(), Value::List(l), lru);
            len
        }
    };
    cx.node.accounted = true;
    cx.dirty((argv.len() - 2) as u64);
    cx.signal_ready(key);
    // Redis replies first, then notifies.
    cx.out().int(len as i64);
    cx.notify(LIST, push_event(end), key);
}

pub fn lpop(cx: &mut Ctx) {
    pop_generic(cx, End::Left);
}

pub fn rpop(cx: &mut Ctx) {
    pop_generic(cx, End::Right);
}

/// LPOP/RPOP key [count]
fn pop_generic(cx: &mut Ctx, end: End) {
    if cx.argv.len() > 3 {
        let msg = format!(
            "ERR wrong number of arguments for '{}' command",
            cx.cmd.name
        );
        return cx.error(&msg);
    }
    let count = if cx.argv.len() == 3 {
        match parse_ranged(cx, 2, 0, "ERR value is out of range, must be positive") {
            Some(n) => Some(n as usize),
            None => return,
        }
    } else {
        None
    };
    let argv = cx.argv;
    let key = &argv[1];
    let db = cx.client.db;
    // The reply is written from the list as elements come off it, and the
    // memory estimate is redone on the same lookup (write_typed_with).
    let out = &mut cx.client.reply;
    let pop_all = |l: &mut List, _: &mut _| {
        let n = count.unwrap_or(1).min(l.len());
        if count.is_some() {
            out.array(n);
        }
        for _ in 0..n {
            l.pop_with(end, |v| out.bulk(v));
        }
        (n, l.is_empty())
    };
    let (n, emptied) = match cx.node.write_typed_with::<List, _>(db, key, pop_all) {
        Lookup::WrongType => return cx.wrongtype(),
        Lookup::Missing => {
            return match count {
                Some(_) => cx.out().null_array(),
                None => cx.out().null(),
            }
        }
        Lookup::Found(r) => r,
    };
    if n == 0 {
        if count.is_none() {
            // Not reached: a list in the keyspace is never empty.
            cx.out().null();
        }
        return;
    }
    cx.node.accounted = true;
    cx.dirty(n as u64);
    cx.notify(LIST, pop_event(end), key);
    if emptied {
        cx.delete_key(key);
        cx.notify(GENERIC, "del", key);
    }
}

/// LLEN key
pub fn llen(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    match list_for_read(cx, &key) {
        Err(()) => {}
        Ok(l) => {
            let n = l.map_or(0, |l| l.len()) as i64;
            cx.out().int(n);
        }
    }
}

/// Normalises LRANGE/LTRIM-style indexes; `None` means an empty range.
fn clamp_range(start: i64, end: i64, len: i64) -> Option<(usize, usize)> {
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= len {
        return None;
    }
    if end >= len {
        end = len - 1;
    }
    Some((start as usize, end as usize))
}

/// LRANGE key start stop
pub fn lrange(cx: &mut Ctx) {
    let Some(start) = cx.parse_int(2) else { return };
    let Some(end) = cx.parse_int(3) else { return };
    let key = cx.argv[1].clone();
    let db = cx.client.db;
    let list = match cx.node.lookup_read(db, &key) {
        None => return cx.out().array(0),
        Some(Entry {
            value: Value::List(l),
            ..
        }) => l,
        Some(_) => return cx.wrongtype(),
    };
    let out = &mut cx.client.reply;
    match clamp_range(start, end, list.len() as i64) {
        None => out.array(0),
        Some((s, e)) => {
            out.array(e - s + 1);
            for v in list.iter().skip(s).take(e - s + 1) {
                out.bulk(v);
            }
        }
    }
}

/// LINDEX key index (the key is looked up before the index is parsed).
pub fn lindex(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    let len = match list_for_read(cx, &key) {
        Err(()) => return,
        Ok(None) => return cx.out().null(),
        Ok(Some(l)) => l.len() as i64,
    };
    let Some(index) = cx.parse_int(2) else { return };
    let i = if index < 0 { len + index } else { index };
    let db = cx.client.db;
    let value = match cx.node.dbs[db].keys.get(&key) {
        Some(Entry {
            value: Value::List(l),
            ..
        }) if (0..len).contains(&i) => l.get(i as usize).map(Bytes::copy_from_slice),
        _ => None,
    };
    match value {
        Some(v) => cx.out().bulk(&v),
        None => cx.out().null(),
    }
}

/// LSET key index element
pub fn lset(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    match list_for_write(cx, &key) {
        Err(()) => return,
        Ok(None) => return cx.error("ERR no such key"),
        Ok(Some(_)) => {}
    }
    let Some(index) = cx.parse_int(2) else { return };
    let value = cx.argv[3].clone();
    let ok = match list_for_write(cx, &key) {
        Ok(Some(l)) => {
            let len = l.len() as i64;
            let i = if index < 0 { len + index } else { index };
            if (0..len).contains(&i) {
                // quicklistReplaceEntry: in place, whatever the node's size.
                let mut nodes = l.to_nodes();
                let mut i = i as usize;
                for n in nodes.iter_mut() {
                    if i < n.len() {
                        n[i] = value.to_vec();
                        break;
                    }
                    i -= n.len();
                }
                *l = List::from_nodes(nodes);
                true
            } else {
                false
            }
        }
        _ => return,
    };
    if ok {
        cx.dirty(1);
        cx.out().ok();
        cx.notify(LIST, "lset", &key);
    } else {
        cx.error("ERR index out of range");
    }
}

/// LINSERT key BEFORE|AFTER pivot element
pub fn linsert(cx: &mut Ctx) {
    let after = if cx.arg_is(2, "after") {
        true
    } else if cx.arg_is(2, "before") {
        false
    } else {
        return cx.syntax_error();
    };
    let (key, pivot, value) = (cx.argv[1].clone(), cx.argv[3].clone(), cx.argv[4].clone());
    let fill = cx.node.config.list_max_listpack_size;
    let len = match list_for_write(cx, &key) {
        Err(()) => return,
        Ok(None) => return cx.out().int(0),
        Ok(Some(l)) => {
            let found = l
                .nodes()
                .enumerate()
                .find_map(|(ni, mut n)| n.position(|x| x == pivot.as_ref()).map(|o| (ni, o)));
            match found {
                None => None,
                Some((ni, offset)) => {
                    l.insert_at(ni, offset, after, &value, fill);
                    Some(l.len())
                }
            }
        }
    };
    let Some(len) = len else {
        return cx.out().int(-1);
    };
    cx.dirty(1);
    cx.notify(LIST, "linsert", &key);
    cx.out().int(len as i64);
}

/// LREM key count element: count > 0 from the head, < 0 from the tail, 0 all.
pub fn lrem(cx: &mut Ctx) {
    let Some(count) = cx.parse_int(2) else { return };
    let (key, target) = (cx.argv[1].clone(), cx.argv[3].clone());
    let removed = match list_for_write(cx, &key) {
        Err(()) => return,
        Ok(None) => return cx.out().int(0),
        Ok(Some(l)) => {
            let limit = if count == 0 {
                usize::MAX
            } else {
                count.unsigned_abs() as usize
            };
            // Removed inside their nodes; a node left empty goes, and no
            // nodes merge (quicklistDelIndex).
            let mut nodes = l.to_nodes();
            let mut removed = 0;
            if count >= 0 {
                for n in nodes.iter_mut() {
                    let mut i = 0;
                    while i < n.len() && removed < limit {
                        if n[i] == target.as_ref() {
                            n.remove(i);
                            removed += 1;
                        } else {
                            i += 1;
                        }
                    }
                }
            } else {
                for n in nodes.iter_mut().rev() {
                    let mut i = n.len();
                    while i > 0 && removed < limit {
                        i -= 1;
                        if n[i] == target.as_ref() {
                            n.remove(i);
                            removed += 1;
                        }
                    }
                }
            }
            if removed > 0 {
                *l = List::from_nodes(nodes);
            }
            removed
        }
    };
    if removed > 0 {
        cx.dirty(removed as u64);
        cx.notify(LIST, "lrem", &key);
        delete_if_empty(cx, &key);
    }
    cx.out().int(removed as i64);
}

/// LTRIM key start stop
pub fn ltrim(cx: &mut Ctx) {
    let Some(start) = cx.parse_int(2) else { return };
    let Some(end) = cx.parse_int(3) else { return };
    let key = cx.argv[1].clone();
    let removed = match list_for_write(cx, &key) {
        Err(()) => return,
        Ok(None) => return cx.out().ok(),
        Ok(Some(l)) => {
            let before = l.len();
            let (front, back) = match clamp_range(start, end, before as i64) {
                None => (before, 0),
                Some((s, e)) => (s, before - 1 - e),
            };
            for _ in 0..back {
                l.pop(End::Right);
            }
            for _ in 0..front {
                l.pop(End::Left);
            }
            before - l.len()
        }
    };
    cx.dirty(removed as u64);
    if removed == 0 {
        // Redis signals the key as modified even when nothing was trimmed
        // (WATCH and client tracking see it); with a change, execute does.
        let db = cx.client.db;
        cx.node.touch_key(cx.client, db, &key);
    }
    cx.notify(LIST, "ltrim", &key);
    delete_if_empty(cx, &key);
    cx.out().ok();
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
pub fn lpos(cx: &mut Ctx) {
    let mut rank: i64 = 1;
    let mut count: i64 = -1;
    let mut maxlen: i64 = 0;
    let mut j = 3;
    while j < cx.argv.len() {
        let more = j + 1 < cx.argv.len();
        if cx.arg_is(j, "RANK") && more {
            j += 1;
            let Some(r) = cx.parse_int(j) else { return };
            if r == 0 {
                return cx.error("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list");
            }
            rank = r;
        } else if cx.arg_is(j, "COUNT") && more {
            j += 1;
            let Some(n) = parse_ranged(cx, j, 0, "ERR COUNT can't be negative") else {
                return;
            };
            count = n;
        } else if cx.arg_is(j, "MAXLEN") && more {
            j += 1;
            let Some(n) = parse_ranged(cx, j, 0, "ERR MAXLEN can't be negative") else {
                return;
            };
            maxlen = n;
        } else {
            return cx.syntax_error();
        }
        j += 1;
    }
    let from_tail = rank < 0;
    // Redis negates the rank in a long long: RANK -2^63 stays negative, so
    // every match qualifies and COUNT never stops the scan (its
    // `matches - rank + 1` wraps negative).
    let rank_overflow = rank == i64::MIN;
    let rank = if rank_overflow {
        1
    } else {
        rank.unsigned_abs()
    };
    let (key, target) = (cx.argv[1].clone(), cx.argv[2].clone());
    let list = match list_for_read(cx, &key) {
        Err(()) => return,
        Ok(None) => {
            return if count != -1 {
                cx.out().array(0)
            } else {
                cx.out().null()
            }
        }
        Ok(Some(l)) => l.to_vec(),
    };
    let len = list.len();
    let mut found: Vec<i64> = vec![];
    let mut matches: u64 = 0;
    for idx in 0..len {
        if maxlen != 0 && idx as i64 >= maxlen {
            break;
        }
        let pos = if from_tail { len - 1 - idx } else { idx };
        if list[pos] == target.as_ref() {
            matches += 1;
            if matches >= rank {
                found.push(pos as i64);
                if count == -1
                    || (count != 0 && !rank_overflow && matches - rank + 1 >= count as u64)
                {
                    break;
                }
            }
        }
    }
    let out = cx.out();
    if count != -1 {
        out.array(found.len());
        for p in found {
            out.int(p);
        }
    } else {
        match found.first() {
            Some(&p) => out.int(p),
            None => out.null(),
        }
    }
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT
pub fn lmove(cx: &mut Ctx) {
    let Some(from) = parse_end(cx, 3) else { return };
    let Some(to) = parse_end(cx, 4) else { return };
    lmove_generic(cx, from, to);
}

/// RPOPLPUSH source destination
pub fn rpoplpush(cx: &mut Ctx) {
    lmove_generic(cx, End::Right, End::Left);
}

/// Pops from argv[1] and pushes to argv[2] (`lmoveGenericCommand`).
fn lmove_generic(cx: &mut Ctx, from: End, to: End) {
    let (src, dst) = (cx.argv[1].clone(), cx.argv[2].clone());
    match list_for_write(cx, &src) {
        Err(()) => return,
        Ok(None) => return cx.out().null(),
        Ok(Some(l)) if l.is_empty() => return cx.out().null(),
        Ok(Some(_)) => {}
    }
    let dst_exists = match list_for_write(cx, &dst) {
        Err(()) => return,
        Ok(l) => l.is_some(),
    };
    let Ok(Some(l)) = list_for_write(cx, &src) else {
        return;
    };
    let Some(value) = l.pop(from) else { return };
    if !dst_exists {
        let lru = cx.lru_now();
        cx.db().set(dst.clone(), Value::List(List::default()), lru);
    }
    let fill = cx.node.config.list_max_listpack_size;
    if let Ok(Some(d)) = list_for_write(cx, &dst) {
        d.push(to, &value, fill);
    }
    cx.signal_ready(&dst);
    // Redis pushes (and notifies) first, then notifies the pop.
    cx.notify(LIST, push_event(to), &dst);
    cx.out().bulk(&value);
    cx.dirty(1);
    cx.notify(LIST, pop_event(from), &src);
    delete_if_empty(cx, &src);
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub fn lmpop(cx: &mut Ctx) {
    mpop_generic(cx, 1, false);
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub fn blmpop(cx: &mut Ctx) {
    mpop_generic(cx, 2, true);
}

/// `lmpopGenericCommand`: parses numkeys, the end and COUNT, then pops a
/// range from the first non-empty list.
fn mpop_generic(cx: &mut Ctx, numkeys_idx: usize, blocking: bool) {
    let Some(numkeys) = parse_ranged(cx, numkeys_idx, 1, "ERR numkeys should be greater than 0")
    else {
        return;
    };
    let where_idx = (numkeys_idx as u64)
        .saturating_add(numkeys as u64)
        .saturating_add(1);
    if where_idx >= cx.argv.len() as u64 {
        return cx.syntax_error();
    }
    let where_idx = where_idx as usize;
    let Some(end) = parse_end(cx, where_idx) else {
        return;
    };
    let mut count: i64 = -1;
    let mut j = where_idx + 1;
    while j < cx.argv.len() {
        let more = j + 1 < cx.argv.len();
        if count == -1 && cx.arg_is(j, "COUNT") && more {
            j += 1;
            let Some(n) = parse_ranged(cx, j, 1, "ERR count should be greater than 0") else {
                return;
            };
            count = n;
        } else {
            return cx.syntax_error();
        }
        j += 1;
    }
    let count = if count == -1 { 1 } else { count as usize };
    let keys: Vec<Bytes> = cx.argv[numkeys_idx + 1..where_idx].to_vec();
    if blocking {
        let Some(deadline) = cx.parse_timeout(1) else {
            return;
        };
        blocking_pop(cx, &keys, end, Some(count), deadline);
    } else {
        for key in &keys {
            match list_for_write(cx, key) {
                Err(()) => return,
                Ok(Some(l)) if !l.is_empty() => return pop_range_with_key(cx, key, end, count),
                Ok(_) => {}
            }
        }
        cx.out().null_array();
    }
}

/// Pops up to `count` elements and replies `[key, [elements...]]`.
fn pop_range_with_key(cx: &mut Ctx, key: &Bytes, end: End, count: usize) {
    let popped: Vec<Bytes> = match list_for_write(cx, key) {
        Ok(Some(l)) => {
            let n = count.min(l.len());
            (0..n).filter_map(|_| l.pop(end)).collect()
        }
        _ => return,
    };
    let out = &mut cx.client.reply;
    out.array(2);
    out.bulk(key);
    out.array(popped.len());
    for v in &popped {
        out.bulk(v);
    }
    cx.dirty(popped.len() as u64);
    cx.notify(LIST, pop_event(end), key);
    delete_if_empty(cx, key);
    // WATCH: of several keys, only the one popped from is modified (the
    // node leaves the multi-key pops to their handlers).
    let db = cx.client.db;
    cx.node.touch_key(cx.client, db, key);
}

/// BLPOP key [key ...] timeout
pub fn blpop(cx: &mut Ctx) {
    bpop(cx, End::Left);
}

/// BRPOP key [key ...] timeout
pub fn brpop(cx: &mut Ctx) {
    bpop(cx, End::Right);
}

fn bpop(cx: &mut Ctx, end: End) {
    let last = cx.argv.len() - 1;
    let Some(deadline) = cx.parse_timeout(last) else {
        return;
    };
    let keys: Vec<Bytes> = cx.argv[1..last].to_vec();
    blocking_pop(cx, &keys, end, None, deadline);
}

/// `blockingPopGenericCommand`: serve from the first non-empty list, or
/// block on all of them. `count` is `Some` for BLMPOP's nested reply.
fn blocking_pop(
    cx: &mut Ctx,
    keys: &[Bytes],
    end: End,
    count: Option<usize>,
    deadline: Option<crate::node::Time>,
) {
    // Woken by a key that got data, Redis 7.0 serves from that key only,
    // and only if it holds a list: another type created there (a ZADD, a
    // SET after a push in one EXEC) leaves the client waiting.
    let serving = cx.node.serving_key.clone().filter(|s| keys.contains(s));
    let keys = match &serving {
        Some(s) if woken_by_another_type(cx, s) => {
            return cx.block(keys.to_vec(), deadline, TimeoutReply::NullArray)
        }
        Some(s) => std::slice::from_ref(s),
        None => keys,
    };
    for key in keys {
        match list_for_write(cx, key) {
            Err(()) => return,
            Ok(Some(l)) if !l.is_empty() => {
                // Logged as the plain pop of the key it popped: replayed,
                // the blocking form would pop the first non-empty key named,
                // which need not be the key that woke it (Redis 7.0 too).
                let mut effect = vec![
                    Bytes::from_static(match end {
                        End::Left => b"LPOP",
                        End::Right => b"RPOP",
                    }),
                    key.clone(),
                ];
                if let Some(n) = count {
                    effect.push(Bytes::from(n.to_string()));
                    let db = cx.client.db;
                    cx.node.propagate(db, effect);
                    return pop_range_with_key(cx, key, end, n);
                }
                let db = cx.client.db;
                cx.node.propagate(db, effect);
                let Some(l) = existing(cx, key) else { return };
                let Some(v) = l.pop(end) else { return };
                let out = &mut cx.client.reply;
                out.array(2);
                out.bulk(key);
                out.bulk(&v);
                cx.dirty(1);
                cx.notify(LIST, pop_event(end), key);
                delete_if_empty(cx, key);
                let db = cx.client.db;
                cx.node.touch_key(cx.client, db, key);
                return;
            }
            Ok(_) => {}
        }
    }
    cx.block(keys.to_vec(), deadline, TimeoutReply::NullArray);
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout
pub fn blmove(cx: &mut Ctx) {
    let Some(from) = parse_end(cx, 3) else { return };
    let Some(to) = parse_end(cx, 4) else { return };
    let Some(deadline) = cx.parse_timeout(5) else {
        return;
    };
    blmove_generic(cx, from, to, deadline);
}

/// BRPOPLPUSH source destination timeout
pub fn brpoplpush(cx: &mut Ctx) {
    let Some(deadline) = cx.parse_timeout(3) else {
        return;
    };
    blmove_generic(cx, End::Right, End::Left, deadline);
}

/// A blocked list command was woken by `key`, which holds another type.
fn woken_by_another_type(cx: &mut Ctx, key: &Bytes) -> bool {
    let db = cx.client.db;
    matches!(cx.node.write_typed::<List>(db, key), Lookup::WrongType)
}

fn blmove_generic(cx: &mut Ctx, from: End, to: End, deadline: Option<crate::node::Time>) {
    let src = cx.argv[1].clone();
    let in_exec = cx.client.in_exec;
    if cx.node.serving_key.as_ref() == Some(&src) && woken_by_another_type(cx, &src) {
        // As in `blocking_pop`: it keeps waiting.
        return cx.block(vec![src], deadline, TimeoutReply::NullArray);
    }
    match list_for_write(cx, &src) {
        Err(()) => {}
        Ok(Some(l)) if !l.is_empty() => lmove_generic(cx, from, to),
        // Inside MULTI (or a script) BLMOVE can't block: a nil bulk, while a
        // real timeout replies a nil array.
        Ok(_) if in_exec => cx.out().null(),
        Ok(_) => cx.block(vec![src], deadline, TimeoutReply::NullArray),
    }
}

#[cfg(test)]
mod tests {
    use super::{clamp_range, End, List};

    /// The packed list behaves like a VecDeque under random pushes and pops
    /// at both ends, for every fill setting.
    #[test]
    fn packed_list_matches_a_deque() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for fill in [-5i64, -2, -1, 1, 3, 128] {
            let mut l = List::default();
            let mut model = std::collections::VecDeque::new();
            for step in 0..5000 {
                let r = rnd();
                let end = if r & 1 == 0 { End::Left } else { End::Right };
                if r % 5 < 3 {
                    // Sizes around the varint boundaries and large values.
                    let len = [0, 1, 5, 127, 128, 300, 20000][(r >> 8) as usize % 7];
                    let v: Vec<u8> = (0..len).map(|i| (i + step) as u8).collect();
                    l.push(end, &v, fill);
                    match end {
                        End::Left => model.push_front(v),
                        End::Right => model.push_back(v),
                    }
                } else {
                    let got = l.pop(end).map(|b| b.to_vec());
                    let want = match end {
                        End::Left => model.pop_front(),
                        End::Right => model.pop_back(),
                    };
                    assert_eq!(got, want, "fill {fill} step {step}");
                }
                assert_eq!(l.len(), model.len());
            }
            assert!(l.iter().eq(model.iter().map(|v| v.as_slice())));
            for (i, v) in model.iter().enumerate().step_by(7) {
                assert_eq!(l.get(i), Some(v.as_slice()));
            }
        }
    }

    /// Every chunk's listpack size is what Redis's listpack of the same
    /// elements measures (`lpBytes`).
    #[test]
    fn chunk_sizes_are_listpack_sizes() {
        let samples: Vec<Vec<u8>> = [
            "0",
            "127",
            "128",
            "-1",
            "-4096",
            "4095",
            "4096",
            "32767",
            "-32769",
            "8388607",
            "8388608",
            "2147483647",
            "2147483648",
            "-9223372036854775808",
            "01",
            "+1",
            "-0",
            "",
            "x",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain([63usize, 64, 126, 127, 4095, 4096, 16383, 20000].map(|n| vec![b'a'; n]))
        .collect();
        for fill in [-5i64, -1, 2] {
            let mut l = List::default();
            for (i, v) in samples.iter().cycle().take(200).enumerate() {
                l.push(if i % 3 == 0 { End::Left } else { End::Right }, v, fill);
            }
            for c in &l.chunks {
                let mut lp = Vec::new();
                for v in c.iter() {
                    crate::rdb::listpack::encode_str(&mut lp, v);
                }
                assert_eq!(c.lp, lp.len() + super::LP_EMPTY);
            }
        }
    }

    /// Pushes, pops and HSETs account for their memory in their own lookup
    /// (`write_typed_with`, bypassing `account_written_keys`): every
    /// entry's estimate must still be what a fresh estimate says, and the
    /// db total their sum, as after `Db::reaccount`.
    #[test]
    fn self_accounted_writes_keep_the_estimate_exact() {
        use crate::node::{ConnId, Input, Node, Time};
        let mut node = Node::new(crate::Config::default(), 7);
        let now = Time(1_700_000_000_000_000);
        node.start(now);
        // Start-up loading: an empty in-memory disk.
        let mut files = crate::disk::MemFiles::default();
        while let Some(o) = node.poll_output() {
            if let crate::node::Output::Disk { id, op } = o {
                let result = files.perform(op);
                node.handle(now, Input::DiskDone { id, result });
            }
        }
        let conn = ConnId(1);
        node.handle(
            now,
            Input::Accepted {
                conn,
                peer: "127.0.0.1:40001".into(),
                local: "127.0.0.1:6379".into(),
            },
        );
        let mut script = String::new();
        for i in 0..3000 {
            let k = i % 7;
            let v = "v".repeat(i % 40);
            script.push_str(&match i % 9 {
                0 | 1 => format!("LPUSH l{k} {v}{i} {i}\r\n"),
                2 | 3 => format!("RPUSH l{k} {i} {v}\r\n"),
                4 => format!("LPOP l{k}\r\n"),
                5 => format!("RPOP l{k} {}\r\n", i % 4),
                6 => format!("HSET h{k} f{} {v}{i}\r\n", i % 150),
                7 => format!("HMSET h{k} a {i} b{} {v}\r\n", i % 60),
                _ => format!("LPUSHX l{} {v}\r\n", (k + 1) % 7),
            });
        }
        node.handle(
            now,
            Input::Received {
                conn,
                data: script.as_bytes(),
            },
        );
        let db = &node.dbs[0];
        assert!(db.len() > 5, "keys left: {}", db.len());
        let mut total = 0u64;
        for (key, e) in db.keys.iter() {
            let fresh = crate::memory::clamp(crate::memory::value_bytes(&e.value));
            assert_eq!(
                e.mem,
                fresh,
                "estimate of {:?}",
                String::from_utf8_lossy(key)
            );
            total += e.mem as u64 + crate::memory::key_bytes(key.len());
        }
        assert_eq!(db.used_bytes, total);
    }

    #[test]
    fn ranges_like_redis() {
        assert_eq!(clamp_range(0, -1, 3), Some((0, 2)));
        assert_eq!(clamp_range(-100, 100, 3), Some((0, 2)));
        assert_eq!(clamp_range(2, 1, 3), None);
        assert_eq!(clamp_range(3, 5, 3), None);
        assert_eq!(clamp_range(-1, -1, 3), Some((2, 2)));
        assert_eq!(clamp_range(0, 0, 0), None);
    }
}
