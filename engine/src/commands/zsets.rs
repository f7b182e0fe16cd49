//! Sorted sets (Redis's `t_zset.c`): ZADD and friends, ranges by rank, score
//! and lex, set algebra (ZUNION/ZINTER/ZDIFF and their STORE forms), pops
//! (blocking ones too), ZRANDMEMBER and ZSCAN. The GEO commands, which store
//! their points in sorted sets, live in the `geo` submodule.
//!
//! # Representation
//!
//! As in Redis, a sorted set has two encodings, which OBJECT ENCODING names:
//!
//! - `listpack` ([`Pack`]): one packed byte buffer holding the entries in
//!   order, each `varint(len << 1 | int) member score`, the score being a
//!   zigzag varint when it is a small integer and 8 raw bytes otherwise. Every
//!   operation is a linear scan, as on Redis's listpack; the thresholds keep
//!   it small (128 entries of at most 64 bytes by default).
//! - `skiplist` ([`Tree`]): the same role as Redis's skiplist + dict, but as
//!   two AVL trees threaded through one node arena. The first orders nodes by
//!   (score, member) and keeps subtree sizes, so rank, select and range
//!   bounds are O(log N); the second orders them by (hash(member), member) and
//!   serves member lookups in O(log N) and ZSCAN's cursor (the cursor is the
//!   hash where the next call resumes, which keeps SCAN's guarantee under
//!   inserts and deletes, and cannot be degraded by colliding members).
//!
//! Conversions follow Redis: a set becomes a skiplist when an insertion would
//! exceed `zset-max-listpack-entries` or add a member longer than
//! `zset-max-listpack-value`, and never converts back, except that the
//! destinations of the STORE commands are built in the encoding their final
//! size calls for.

use super::sets::{Member, Set};
use crate::command::Handler;
use crate::db::{Entry, Value};
use crate::node::{Ctx, Node, TimeoutReply};
use crate::notify::{GENERIC, ZSET};
use crate::resp::ReplyBuf;
use bytes::Bytes;
use rand_core::RngCore;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

#[path = "geo.rs"]
pub mod geo;

// ---------------------------------------------------------------------------
// Encoding thresholds
// ---------------------------------------------------------------------------

/// The listpack thresholds in force (`zset-max-listpack-*`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub entries: usize,
    pub value: usize,
}

impl Limits {
    pub fn of(node: &Node) -> Limits {
        Limits {
            entries: node.config.zset_max_listpack_entries.max(0) as usize,
            value: node.config.zset_max_listpack_value.max(0) as usize,
        }
    }
}

// ---------------------------------------------------------------------------
// The listpack encoding
// ---------------------------------------------------------------------------

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], mut pos: usize) -> (u64, usize) {
    let mut v = 0u64;
    let mut shift = 0u32;
    while let Some(&b) = buf.get(pos) {
        pos += 1;
        if shift < 64 {
            v |= ((b & 0x7f) as u64) << shift;
        }
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    (v, pos)
}

/// The score as an integer when Redis's listpack stores it as one
/// (`double2ll`: integral and within ±LLONG_MAX/2). Note that -0 becomes 0,
/// as in Redis.
fn int_score(s: f64) -> Option<i64> {
    const HALF: f64 = (i64::MAX / 2) as f64;
    if s.fract() == 0.0 && (-HALF..=HALF).contains(&s) {
        Some(s as i64)
    } else {
        None
    }
}

/// How an entry's score is stored (the low two bits of its header).
const SCORE_F64: u64 = 0;
/// A zigzag varint ([`int_score`]).
const SCORE_INT: u64 = 1;
/// A score that an f32 holds exactly (1.5, 0.25, inf): 4 bytes, not 8.
const SCORE_F32: u64 = 2;

fn encode_entry(out: &mut Vec<u8>, score: f64, m: &[u8]) {
    let int = int_score(score);
    let kind = match int {
        Some(_) => SCORE_INT,
        None if (score as f32) as f64 == score => SCORE_F32,
        None => SCORE_F64,
    };
    put_varint(out, ((m.len() as u64) << 2) | kind);
    out.extend_from_slice(m);
    match int {
        Some(i) => put_varint(out, ((i << 1) ^ (i >> 63)) as u64),
        None if kind == SCORE_F32 => out.extend_from_slice(&(score as f32).to_le_bytes()),
        None => out.extend_from_slice(&score.to_bits().to_le_bytes()),
    }
}

/// Decodes the entry at `pos`: (score, member, offset of the next entry).
fn decode_entry(buf: &[u8], pos: usize) -> (f64, &[u8], usize) {
    let (h, p) = get_varint(buf, pos);
    let end = p.saturating_add((h >> 2) as usize).min(buf.len());
    let m = &buf[p..end];
    match h & 3 {
        SCORE_INT => {
            let (z, q) = get_varint(buf, end);
            let i = ((z >> 1) as i64) ^ -((z & 1) as i64);
            (i as f64, m, q)
        }
        SCORE_F32 => {
            let mut b = [0u8; 4];
            if let Some(s) = buf.get(end..end + 4) {
                b.copy_from_slice(s);
            }
            (f32::from_le_bytes(b) as f64, m, end + 4)
        }
        _ => {
            let mut b = [0u8; 8];
            if let Some(s) = buf.get(end..end + 8) {
                b.copy_from_slice(s);
            }
            (f64::from_bits(u64::from_le_bytes(b)), m, end + 8)
        }
    }
}

/// Entries packed in order into one buffer (Redis's listpack encoding).
/// A boxed slice, not a `Vec`: 24 bytes with the count instead of 32
/// keeps `Value` at 32 bytes and the keyspace node in jemalloc's 64-byte
/// class (db.rs); writes resize it exactly, which jemalloc does in place
/// within a size class.
#[derive(Debug, Clone, Default)]
struct Pack {
    buf: Box<[u8]>,
    len: u32,
}

impl Pack {
    fn iter(&self) -> ZIter<'_> {
        ZIter(IterInner::Fwd {
            buf: &self.buf,
            pos: 0,
        })
    }

    /// (start offset, end offset, score) of `m`'s entry.
    fn find(&self, m: &[u8]) -> Option<(usize, usize, f64)> {
        let mut pos = 0;
        while pos < self.buf.len() {
            let (s, em, next) = decode_entry(&self.buf, pos);
            if em == m {
                return Some((pos, next, s));
            }
            pos = next;
        }
        None
    }

    /// Start offsets of the entries of rank 0..=last.
    fn offsets(&self, last: usize) -> Vec<usize> {
        let mut offs = Vec::with_capacity(last.min(self.len as usize) + 1);
        let mut pos = 0;
        while pos < self.buf.len() && offs.len() <= last {
            offs.push(pos);
            pos = decode_entry(&self.buf, pos).2;
        }
        offs
    }

    /// Offset of the entry of rank `k` (or the end of the buffer).
    fn offset_of(&self, k: usize) -> usize {
        let mut pos = 0;
        for _ in 0..k {
            if pos >= self.buf.len() {
                break;
            }
            pos = decode_entry(&self.buf, pos).2;
        }
        pos
    }

    /// Inserts a member known to be absent, at its place in the order.
    fn insert(&mut self, score: f64, m: &[u8]) {
        let mut pos = 0;
        while pos < self.buf.len() {
            let (s, em, next) = decode_entry(&self.buf, pos);
            if s > score || (s == score && em > m) {
                break;
            }
            pos = next;
        }
        let mut e = Vec::with_capacity(m.len() + 10);
        encode_entry(&mut e, score, m);
        let mut buf = std::mem::take(&mut self.buf).into_vec();
        buf.reserve_exact(e.len());
        buf.splice(pos..pos, e).for_each(drop);
        self.buf = buf.into_boxed_slice();
        self.len += 1;
    }

    /// A pack of `items` (sorted, distinct), built in one buffer.
    fn from_sorted(items: &[(f64, &[u8])]) -> Pack {
        let total: usize = items.iter().map(|x| x.1.len() + 12).sum();
        let mut buf = Vec::with_capacity(total);
        for (s, m) in items {
            encode_entry(&mut buf, *s, m);
        }
        Pack {
            buf: buf.into_boxed_slice(),
            len: items.len() as u32,
        }
    }

    fn remove_bytes(&mut self, start: usize, end: usize, n: u32) {
        let mut buf = std::mem::take(&mut self.buf).into_vec();
        buf.drain(start..end);
        self.buf = buf.into_boxed_slice();
        self.len -= n;
    }
}

// ---------------------------------------------------------------------------
// The skiplist encoding: two AVL trees over one node arena
// ---------------------------------------------------------------------------

const NIL: u32 = u32::MAX;
/// The tree ordered by (score, member), with subtree sizes.
const BY_SCORE: usize = 0;
/// The tree ordered by (hash(member), member).
const BY_MEMBER: usize = 1;

#[derive(Debug, Clone, Copy)]
struct Links {
    l: u32,
    r: u32,
    size: u32,
    height: u32,
}

const LEAF: Links = Links {
    l: NIL,
    r: NIL,
    size: 1,
    height: 1,
};

#[derive(Debug, Clone)]
struct TNode {
    member: Box<[u8]>,
    score: f64,
    hash: u64,
    lk: [Links; 2],
}

/// The member hash that orders the second tree and drives ZSCAN. Never 0,
/// so that cursor 0 only ever means "start" or "done".
fn member_hash(m: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h =
        siphasher::sip::SipHasher13::new_with_keys(0x5a53_6574_436e_6e62, 0x7a73_6574_7363_616e);
    h.write(m);
    h.finish().max(1)
}

#[derive(Debug, Clone)]
struct Tree {
    nodes: Vec<TNode>,
    /// Head of the free-node list (linked through `lk[0].l`).
    free: u32,
    root: [u32; 2],
    len: usize,
}

impl Tree {
    fn new() -> Tree {
        Tree {
            nodes: Vec::new(),
            free: NIL,
            root: [NIL; 2],
            len: 0,
        }
    }

    #[inline]
    fn lk(&self, n: u32, t: usize) -> Links {
        self.nodes[n as usize].lk[t]
    }

    #[inline]
    fn lk_mut(&mut self, n: u32, t: usize) -> &mut Links {
        &mut self.nodes[n as usize].lk[t]
    }

    #[inline]
    fn height(&self, n: u32, t: usize) -> u32 {
        if n == NIL {
            0
        } else {
            self.lk(n, t).height
        }
    }

    #[inline]
    fn size(&self, n: u32) -> usize {
        if n == NIL {
            0
        } else {
            self.lk(n, BY_SCORE).size as usize
        }
    }

    fn fix(&mut self, n: u32, t: usize) {
        let Links { l, r, .. } = self.lk(n, t);
        let h = 1 + self.height(l, t).max(self.height(r, t));
        let s = |x: u32| if x == NIL { 0 } else { self.lk(x, t).size };
        let size = 1 + s(l) + s(r);
        let x = self.lk_mut(n, t);
        x.height = h;
        x.size = size;
    }

    fn rot_right(&mut self, n: u32, t: usize) -> u32 {
        let l = self.lk(n, t).l;
        let lr = self.lk(l, t).r;
        self.lk_mut(n, t).l = lr;
        self.fix(n, t);
        self.lk_mut(l, t).r = n;
        self.fix(l, t);
        l
    }

    fn rot_left(&mut self, n: u32, t: usize) -> u32 {
        let r = self.lk(n, t).r;
        let rl = self.lk(r, t).l;
        self.lk_mut(n, t).r = rl;
        self.fix(n, t);
        self.lk_mut(r, t).l = n;
        self.fix(r, t);
        r
    }

    fn rebalance(&mut self, n: u32, t: usize) -> u32 {
        self.fix(n, t);
        let Links { l, r, .. } = self.lk(n, t);
        let (hl, hr) = (self.height(l, t), self.height(r, t));
        if hl > hr + 1 {
            let Links { l: ll, r: lr, .. } = self.lk(l, t);
            if self.height(ll, t) < self.height(lr, t) {
                let nl = self.rot_left(l, t);
                self.lk_mut(n, t).l = nl;
            }
            return self.rot_right(n, t);
        }
        if hr > hl + 1 {
            let Links { l: rl, r: rr, .. } = self.lk(r, t);
            if self.height(rr, t) < self.height(rl, t) {
                let nr = self.rot_right(r, t);
                self.lk_mut(n, t).r = nr;
            }
            return self.rot_left(n, t);
        }
        n
    }

    fn cmp(&self, a: u32, b: u32, t: usize) -> Ordering {
        let (x, y) = (&self.nodes[a as usize], &self.nodes[b as usize]);
        if t == BY_SCORE {
            x.score
                .partial_cmp(&y.score)
                .unwrap_or(Ordering::Equal)
                .then_with(|| x.member.cmp(&y.member))
        } else {
            x.hash.cmp(&y.hash).then_with(|| x.member.cmp(&y.member))
        }
    }

    fn ins(&mut self, root: u32, x: u32, t: usize) -> u32 {
        if root == NIL {
            *self.lk_mut(x, t) = LEAF;
            return x;
        }
        if self.cmp(x, root, t) == Ordering::Less {
            let l = self.lk(root, t).l;
            let nl = self.ins(l, x, t);
            self.lk_mut(root, t).l = nl;
        } else {
            let r = self.lk(root, t).r;
            let nr = self.ins(r, x, t);
            self.lk_mut(root, t).r = nr;
        }
        self.rebalance(root, t)
    }

    fn del(&mut self, root: u32, x: u32, t: usize) -> u32 {
        if root == NIL {
            return NIL;
        }
        if root == x {
            let Links { l, r, .. } = self.lk(x, t);
            if l == NIL {
                return r;
            }
            if r == NIL {
                return l;
            }
            let (nr, m) = self.del_min(r, t);
            let lm = self.lk_mut(m, t);
            lm.l = l;
            lm.r = nr;
            return self.rebalance(m, t);
        }
        if self.cmp(x, root, t) == Ordering::Less {
            let l = self.lk(root, t).l;
            let nl = self.del(l, x, t);
            self.lk_mut(root, t).l = nl;
        } else {
            let r = self.lk(root, t).r;
            let nr = self.del(r, x, t);
            self.lk_mut(root, t).r = nr;
        }
        self.rebalance(root, t)
    }

    fn del_min(&mut self, root: u32, t: usize) -> (u32, u32) {
        let Links { l, r, .. } = self.lk(root, t);
        if l == NIL {
            return (r, root);
        }
        let (nl, m) = self.del_min(l, t);
        self.lk_mut(root, t).l = nl;
        (self.rebalance(root, t), m)
    }

    fn find(&self, m: &[u8]) -> Option<u32> {
        let h = member_hash(m);
        let mut n = self.root[BY_MEMBER];
        while n != NIL {
            let node = &self.nodes[n as usize];
            match h.cmp(&node.hash).then_with(|| m.cmp(&node.member)) {
                Ordering::Less => n = node.lk[BY_MEMBER].l,
                Ordering::Greater => n = node.lk[BY_MEMBER].r,
                Ordering::Equal => return Some(n),
            }
        }
        None
    }

    fn insert(&mut self, score: f64, m: &[u8]) {
        let node = TNode {
            member: m.into(),
            score,
            hash: member_hash(m),
            lk: [LEAF; 2],
        };
        let x = if self.free != NIL {
            let i = self.free;
            self.free = self.nodes[i as usize].lk[0].l;
            self.nodes[i as usize] = node;
            i
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        };
        for t in [BY_SCORE, BY_MEMBER] {
            self.root[t] = self.ins(self.root[t], x, t);
        }
        self.len += 1;
    }

    fn remove_node(&mut self, x: u32) {
        for t in [BY_SCORE, BY_MEMBER] {
            self.root[t] = self.del(self.root[t], x, t);
        }
        let free = self.free;
        let n = &mut self.nodes[x as usize];
        n.member = Box::default();
        n.lk[0].l = free;
        self.free = x;
        self.len -= 1;
        if self.nodes.len() > 64 && self.len * 4 < self.nodes.len() {
            self.compact();
        }
    }

    /// Rebuilds the arena without its free slots.
    fn compact(&mut self) {
        let mut t = Tree::new();
        t.nodes.reserve_exact(self.len);
        let order: Vec<u32> = TreeIter::at_rank(self, 0, false).collect();
        for n in order {
            let node = &mut self.nodes[n as usize];
            let m = std::mem::take(&mut node.member);
            t.insert(node.score, &m);
        }
        *self = t;
    }

    fn set_score(&mut self, x: u32, score: f64) {
        self.root[BY_SCORE] = self.del(self.root[BY_SCORE], x, BY_SCORE);
        self.nodes[x as usize].score = score;
        self.root[BY_SCORE] = self.ins(self.root[BY_SCORE], x, BY_SCORE);
    }

    fn rank_of(&self, x: u32) -> usize {
        let mut n = self.root[BY_SCORE];
        let mut acc = 0;
        while n != NIL {
            let Links { l, r, .. } = self.lk(n, BY_SCORE);
            match self.cmp(x, n, BY_SCORE) {
                Ordering::Less => n = l,
                Ordering::Equal => return acc + self.size(l),
                Ordering::Greater => {
                    acc += self.size(l) + 1;
                    n = r;
                }
            }
        }
        acc
    }

    fn select(&self, mut k: usize) -> Option<u32> {
        let mut n = self.root[BY_SCORE];
        while n != NIL {
            let Links { l, r, .. } = self.lk(n, BY_SCORE);
            let ls = self.size(l);
            match k.cmp(&ls) {
                Ordering::Less => n = l,
                Ordering::Equal => return Some(n),
                Ordering::Greater => {
                    k -= ls + 1;
                    n = r;
                }
            }
        }
        None
    }

    /// How many leading elements satisfy `pred`, which must hold for a
    /// prefix of the order and fail for the rest.
    fn count_before(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut n = self.root[BY_SCORE];
        let mut acc = 0;
        while n != NIL {
            let node = &self.nodes[n as usize];
            let Links { l, r, .. } = node.lk[BY_SCORE];
            if pred(node.score, &node.member) {
                acc += self.size(l) + 1;
                n = r;
            } else {
                n = l;
            }
        }
        acc
    }
}

/// In-order traversal of one of the trees with an explicit stack.
struct TreeIter<'a> {
    tree: &'a Tree,
    stack: Vec<u32>,
    rev: bool,
    t: usize,
}

impl<'a> TreeIter<'a> {
    /// From rank `k` of the score order, ascending or descending.
    fn at_rank(tree: &'a Tree, mut k: usize, rev: bool) -> TreeIter<'a> {
        let mut stack = Vec::new();
        if k < tree.len {
            let mut n = tree.root[BY_SCORE];
            while n != NIL {
                let Links { l, r, .. } = tree.lk(n, BY_SCORE);
                let ls = tree.size(l);
                match k.cmp(&ls) {
                    Ordering::Less => {
                        if !rev {
                            stack.push(n);
                        }
                        n = l;
                    }
                    Ordering::Equal => {
                        stack.push(n);
                        break;
                    }
                    Ordering::Greater => {
                        if rev {
                            stack.push(n);
                        }
                        k -= ls + 1;
                        n = r;
                    }
                }
            }
        }
        TreeIter {
            tree,
            stack,
            rev,
            t: BY_SCORE,
        }
    }

    /// From the first member whose hash is at least `h`, in hash order.
    fn at_hash(tree: &'a Tree, h: u64) -> TreeIter<'a> {
        let mut stack = Vec::new();
        let mut n = tree.root[BY_MEMBER];
        while n != NIL {
            let node = &tree.nodes[n as usize];
            if node.hash >= h {
                stack.push(n);
                n = node.lk[BY_MEMBER].l;
            } else {
                n = node.lk[BY_MEMBER].r;
            }
        }
        TreeIter {
            tree,
            stack,
            rev: false,
            t: BY_MEMBER,
        }
    }
}

impl Iterator for TreeIter<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let n = self.stack.pop()?;
        let t = self.t;
        let Links { l, r, .. } = self.tree.lk(n, t);
        let mut c = if self.rev { l } else { r };
        while c != NIL {
            self.stack.push(c);
            let lk = self.tree.lk(c, t);
            c = if self.rev { lk.r } else { lk.l };
        }
        Some(n)
    }
}

// ---------------------------------------------------------------------------
// The value type
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Repr {
    Pack(Pack),
    Tree(Box<Tree>),
}

/// A zset value.
#[derive(Debug, Clone)]
pub struct ZSet {
    repr: Repr,
}

impl Default for ZSet {
    fn default() -> ZSet {
        ZSet {
            repr: Repr::Pack(Pack::default()),
        }
    }
}

/// ZADD's input flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct AddFlags {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
    pub incr: bool,
}

/// What [`ZSet::add`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AddOutcome {
    /// The score (or the resulting score with INCR) is NaN: nothing done.
    Nan,
    /// Nothing done because of NX, XX, GT or LT.
    Nop,
    Added(f64),
    Updated(f64),
    /// Processed, but the score was already this.
    Same(f64),
}

/// An iterator over (score, member) in the order (or reverse order) of the
/// set.
pub struct ZIter<'a>(IterInner<'a>);

enum IterInner<'a> {
    Fwd { buf: &'a [u8], pos: usize },
    Rev { buf: &'a [u8], offs: Vec<usize> },
    Tree(TreeIter<'a>),
}

impl<'a> Iterator for ZIter<'a> {
    type Item = (f64, &'a [u8]);

    fn next(&mut self) -> Option<(f64, &'a [u8])> {
        match &mut self.0 {
            IterInner::Fwd { buf, pos } => {
                let b: &'a [u8] = buf;
                if *pos >= b.len() {
                    return None;
                }
                let (s, m, next) = decode_entry(b, *pos);
                *pos = next;
                Some((s, m))
            }
            IterInner::Rev { buf, offs } => {
                let b: &'a [u8] = buf;
                let p = offs.pop()?;
                let (s, m, _) = decode_entry(b, p);
                Some((s, m))
            }
            IterInner::Tree(it) => {
                let n = it.next()?;
                let tree: &'a Tree = it.tree;
                let node = &tree.nodes[n as usize];
                Some((node.score, &node.member))
            }
        }
    }
}

impl ZSet {
    /// An empty set in the encoding ZADD creates for a first member of
    /// `first_len` bytes.
    pub fn new_for(first_len: usize, lim: Limits) -> ZSet {
        if lim.entries == 0 || lim.value < first_len {
            ZSet {
                repr: Repr::Tree(Box::new(Tree::new())),
            }
        } else {
            ZSet::default()
        }
    }

    /// A set holding `items`, which must be sorted and distinct, in the
    /// encoding its size calls for (Redis's `zsetConvertToListpackIfNeeded`
    /// on a freshly built skiplist).
    pub fn from_sorted(items: &[(f64, &[u8])], lim: Limits) -> ZSet {
        let maxlen = items.iter().map(|x| x.1.len()).max().unwrap_or(0);
        if items.len() <= lim.entries && maxlen <= lim.value {
            ZSet {
                repr: Repr::Pack(Pack::from_sorted(items)),
            }
        } else {
            let mut t = Tree::new();
            t.nodes.reserve_exact(items.len());
            for (s, m) in items {
                t.insert(*s, m);
            }
            ZSet {
                repr: Repr::Tree(Box::new(t)),
            }
        }
    }

    /// OBJECT ENCODING's name for the current representation.
    pub fn encoding_name(&self) -> &'static str {
        match self.repr {
            Repr::Pack(_) => "listpack",
            Repr::Tree(_) => "skiplist",
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.len as usize,
            Repr::Tree(t) => t.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn score(&self, m: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Pack(p) => p.find(m).map(|x| x.2),
            Repr::Tree(t) => t.find(m).map(|n| t.nodes[n as usize].score),
        }
    }

    /// The 0-based ascending rank of `m`.
    pub fn rank(&self, m: &[u8]) -> Option<usize> {
        match &self.repr {
            Repr::Pack(p) => p.iter().position(|(_, em)| em == m),
            Repr::Tree(t) => t.find(m).map(|n| t.rank_of(n)),
        }
    }

    /// The element of rank `k`.
    pub fn get(&self, k: usize) -> Option<(f64, &[u8])> {
        match &self.repr {
            Repr::Pack(_) => self.iter_from(k, false).next(),
            Repr::Tree(t) => t.select(k).map(|n| {
                let node = &t.nodes[n as usize];
                (node.score, &node.member[..])
            }),
        }
    }

    /// Ascending iteration over the whole set.
    pub fn iter(&self) -> ZIter<'_> {
        self.iter_from(0, false)
    }

    /// Iteration from rank `k` (in ascending order), upwards or, with
    /// `rev`, downwards.
    pub fn iter_from(&self, k: usize, rev: bool) -> ZIter<'_> {
        match &self.repr {
            Repr::Pack(p) => {
                if rev {
                    let offs = if k < p.len as usize {
                        p.offsets(k)
                    } else {
                        Vec::new()
                    };
                    ZIter(IterInner::Rev { buf: &p.buf, offs })
                } else {
                    ZIter(IterInner::Fwd {
                        buf: &p.buf,
                        pos: p.offset_of(k),
                    })
                }
            }
            Repr::Tree(t) => ZIter(IterInner::Tree(TreeIter::at_rank(t, k, rev))),
        }
    }

    /// How many leading elements satisfy `pred` (a prefix-closed predicate).
    pub fn count_before(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.iter().take_while(|(s, m)| pred(*s, m)).count(),
            Repr::Tree(t) => t.count_before(pred),
        }
    }

    fn convert_to_tree(&mut self) {
        if let Repr::Pack(p) = &self.repr {
            let mut t = Tree::new();
            t.nodes.reserve_exact(p.len as usize + 1);
            for (s, m) in p.iter() {
                t.insert(s, m);
            }
            self.repr = Repr::Tree(Box::new(t));
        }
    }

    /// Inserts a member known to be absent, converting the encoding first
    /// if the listpack would grow past the thresholds.
    fn insert_new(&mut self, score: f64, m: &[u8], lim: Limits) {
        if let Repr::Pack(p) = &self.repr {
            if p.len as usize + 1 > lim.entries || m.len() > lim.value {
                self.convert_to_tree();
            }
        }
        match &mut self.repr {
            Repr::Pack(p) => p.insert(score, m),
            Repr::Tree(t) => t.insert(score, m),
        }
    }

    /// Changes the score of a present member.
    fn set_score(&mut self, m: &[u8], score: f64) {
        match &mut self.repr {
            Repr::Pack(p) => {
                if let Some((start, end, _)) = p.find(m) {
                    p.remove_bytes(start, end, 1);
                    p.insert(score, m);
                }
            }
            Repr::Tree(t) => {
                if let Some(n) = t.find(m) {
                    t.set_score(n, score);
                }
            }
        }
    }

    /// Redis's `zsetAdd`.
    pub fn add(&mut self, score: f64, m: &[u8], f: AddFlags, lim: Limits) -> AddOutcome {
        if score.is_nan() {
            return AddOutcome::Nan;
        }
        if let Some(cur) = self.score(m) {
            if f.nx {
                return AddOutcome::Nop;
            }
            let mut s = score;
            if f.incr {
                s += cur;
                if s.is_nan() {
                    return AddOutcome::Nan;
                }
            }
            if (f.lt && s >= cur) || (f.gt && s <= cur) {
                return AddOutcome::Nop;
            }
            if s != cur {
                self.set_score(m, s);
                AddOutcome::Updated(s)
            } else {
                AddOutcome::Same(s)
            }
        } else if !f.xx {
            self.insert_new(score, m, lim);
            AddOutcome::Added(score)
        } else {
            AddOutcome::Nop
        }
    }

    /// Removes `m`; true if it was present.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Pack(p) => match p.find(m) {
                Some((start, end, _)) => {
                    p.remove_bytes(start, end, 1);
                    true
                }
                None => false,
            },
            Repr::Tree(t) => match t.find(m) {
                Some(n) => {
                    t.remove_node(n);
                    true
                }
                None => false,
            },
        }
    }

    /// Removes the elements of ranks `start..=end` (clamped); returns how
    /// many were removed.
    pub fn remove_range(&mut self, start: usize, end: usize) -> usize {
        let len = self.len();
        if start >= len || start > end {
            return 0;
        }
        let end = end.min(len - 1);
        let n = end - start + 1;
        match &mut self.repr {
            Repr::Pack(p) => {
                let a = p.offset_of(start);
                let mut b = a;
                for _ in 0..n {
                    b = decode_entry(&p.buf, b).2;
                }
                p.remove_bytes(a, b.min(p.buf.len()), n as u32);
            }
            Repr::Tree(t) => {
                let victims: Vec<u32> = TreeIter::at_rank(t, start, false).take(n).collect();
                for x in victims {
                    t.remove_node(x);
                }
            }
        }
        n
    }

    /// Rank of the first element in the score range (`zslFirstInRange`).
    pub fn first_in_range(&self, r: &ScoreRange) -> Option<usize> {
        let len = self.len();
        if r.is_empty() || len == 0 {
            return None;
        }
        let k = self.count_before(|s, _| !r.gte_min(s));
        match self.get(k) {
            Some((s, _)) if r.lte_max(s) => Some(k),
            _ => None,
        }
    }

    /// Rank of the last element in the score range (`zslLastInRange`).
    pub fn last_in_range(&self, r: &ScoreRange) -> Option<usize> {
        if r.is_empty() || self.is_empty() {
            return None;
        }
        let k = self.count_before(|s, _| r.lte_max(s));
        if k == 0 {
            return None;
        }
        match self.get(k - 1) {
            Some((s, _)) if r.gte_min(s) => Some(k - 1),
            _ => None,
        }
    }

    /// Rank of the first element in the lex range. On a listpack this is
    /// Redis's linear `zzlFirstInLexRange`, so sets whose scores differ give
    /// Redis's answers too.
    pub fn first_in_lex(&self, r: &LexRange) -> Option<usize> {
        let len = self.len();
        if r.is_empty() || len == 0 {
            return None;
        }
        let (_, last) = self.get(len - 1)?;
        let (_, first) = self.get(0)?;
        if !r.gte_min(last) || !r.lte_max(first) {
            return None;
        }
        match &self.repr {
            Repr::Pack(p) => {
                for (i, (_, m)) in p.iter().enumerate() {
                    if r.gte_min(m) {
                        return r.lte_max(m).then_some(i);
                    }
                }
                None
            }
            Repr::Tree(t) => {
                let k = t.count_before(|_, m| !r.gte_min(m));
                match self.get(k) {
                    Some((_, m)) if r.lte_max(m) => Some(k),
                    _ => None,
                }
            }
        }
    }

    /// Rank of the last element in the lex range (`zzlLastInLexRange`).
    pub fn last_in_lex(&self, r: &LexRange) -> Option<usize> {
        let len = self.len();
        if r.is_empty() || len == 0 {
            return None;
        }
        let (_, last) = self.get(len - 1)?;
        let (_, first) = self.get(0)?;
        if !r.gte_min(last) || !r.lte_max(first) {
            return None;
        }
        match &self.repr {
            Repr::Pack(_) => {
                for (i, (_, m)) in self.iter_from(len - 1, true).enumerate() {
                    if r.lte_max(m) {
                        return r.gte_min(m).then_some(len - 1 - i);
                    }
                }
                None
            }
            Repr::Tree(t) => {
                let k = t.count_before(|_, m| r.lte_max(m));
                if k == 0 {
                    return None;
                }
                match self.get(k - 1) {
                    Some((_, m)) if r.gte_min(m) => Some(k - 1),
                    _ => None,
                }
            }
        }
    }

    /// One ZSCAN step from `cursor`: visits (member, score) pairs until
    /// `count` list items (two per element, as Redis counts them) are
    /// collected; returns the next cursor. A listpack is returned whole.
    fn scan<'a>(&'a self, cursor: u64, count: usize, mut f: impl FnMut(&'a [u8], f64)) -> u64 {
        match &self.repr {
            Repr::Pack(_) => {
                for (s, m) in self.iter() {
                    f(m, s);
                }
                0
            }
            Repr::Tree(t) => {
                let mut it = TreeIter::at_hash(t, cursor).peekable();
                let mut items = 0usize;
                let mut iterations = count.saturating_mul(10);
                while let Some(n) = it.next() {
                    let node = &t.nodes[n as usize];
                    f(&node.member, node.score);
                    items += 2;
                    // Elements sharing a hash are one "bucket": never split.
                    let same = |x: &u32| t.nodes[*x as usize].hash == node.hash;
                    if it.peek().is_some_and(same) {
                        continue;
                    }
                    iterations = iterations.saturating_sub(1);
                    if items >= count || iterations == 0 {
                        break;
                    }
                }
                it.next().map_or(0, |n| t.nodes[n as usize].hash)
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Ranges
// ---------------------------------------------------------------------------

/// A score interval (Redis's `zrangespec`).
#[derive(Debug, Clone, Copy)]
pub struct ScoreRange {
    pub min: f64,
    pub max: f64,
    pub minex: bool,
    pub maxex: bool,
}

impl ScoreRange {
    pub fn gte_min(&self, v: f64) -> bool {
        if self.minex {
            v > self.min
        } else {
            v >= self.min
        }
    }

    pub fn lte_max(&self, v: f64) -> bool {
        if self.maxex {
            v < self.max
        } else {
            v <= self.max
        }
    }

    fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.minex || self.maxex))
    }
}

/// C's `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// glibc's `strtod`: the value of the longest prefix of `s` that is a
/// number, and how many bytes it used (0 when no conversion was done).
pub fn strtod(s: &[u8]) -> (f64, usize) {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let neg = s.get(i) == Some(&b'-');
    if matches!(s.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let sign = if neg { -1.0 } else { 1.0 };
    let rest = &s[i..];
    let starts = |p: &[u8]| rest.len() >= p.len() && rest[..p.len()].eq_ignore_ascii_case(p);
    if starts(b"infinity") {
        return (sign * f64::INFINITY, i + 8);
    }
    if starts(b"inf") {
        return (sign * f64::INFINITY, i + 3);
    }
    if starts(b"nan") {
        let mut j = i + 3;
        if s.get(j) == Some(&b'(') {
            let mut k = j + 1;
            while k < s.len() && (s[k].is_ascii_alphanumeric() || s[k] == b'_') {
                k += 1;
            }
            if s.get(k) == Some(&b')') {
                j = k + 1;
            }
        }
        return (f64::NAN, j);
    }
    let is_hex = rest.len() >= 2
        && rest[0] == b'0'
        && (rest[1] | 0x20) == b'x'
        && (rest.get(2).is_some_and(|c| c.is_ascii_hexdigit())
            || (rest.get(2) == Some(&b'.') && rest.get(3).is_some_and(|c| c.is_ascii_hexdigit())));
    if is_hex {
        let (v, used) = parse_hex_float(&rest[2..]);
        return (sign * v, i + 2 + used);
    }
    // Decimal: digits [. digits] [e [sign] digits]
    let mut j = i;
    let mut digits = 0;
    while j < s.len() && s[j].is_ascii_digit() {
        j += 1;
        digits += 1;
    }
    if s.get(j) == Some(&b'.') {
        j += 1;
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return (0.0, 0);
    }
    if matches!(s.get(j), Some(b'e' | b'E')) {
        let mut k = j + 1;
        if matches!(s.get(k), Some(b'-' | b'+')) {
            k += 1;
        }
        if s.get(k).is_some_and(|c| c.is_ascii_digit()) {
            while k < s.len() && s[k].is_ascii_digit() {
                k += 1;
            }
            j = k;
        }
    }
    let text = std::str::from_utf8(&s[i..j]).unwrap_or("0");
    let v: f64 = text.parse().unwrap_or(0.0);
    (sign * v, j)
}

/// A hexadecimal float body after "0x": hex digits, optional fraction,
/// optional binary exponent `p[sign]digits`.
fn parse_hex_float(s: &[u8]) -> (f64, usize) {
    let mut mant: u64 = 0;
    let mut exp: i64 = 0;
    let mut sticky = false;
    let mut j = 0;
    let mut seen_point = false;
    while j < s.len() {
        let c = s[j];
        if c == b'.' && !seen_point {
            seen_point = true;
            j += 1;
            continue;
        }
        let Some(d) = (c as char).to_digit(16) else {
            break;
        };
        if mant >> 56 == 0 {
            mant = mant * 16 + d as u64;
            if seen_point {
                exp -= 4;
            }
        } else {
            sticky |= d != 0;
            if !seen_point {
                exp += 4;
            }
        }
        j += 1;
    }
    if matches!(s.get(j), Some(b'p' | b'P')) {
        let mut k = j + 1;
        let neg = s.get(k) == Some(&b'-');
        if matches!(s.get(k), Some(b'-' | b'+')) {
            k += 1;
        }
        if s.get(k).is_some_and(|c| c.is_ascii_digit()) {
            let mut e: i64 = 0;
            while k < s.len() && s[k].is_ascii_digit() {
                e = (e * 10 + (s[k] - b'0') as i64).min(1 << 20);
                k += 1;
            }
            exp += if neg { -e } else { e };
            j = k;
        }
    }
    if sticky {
        mant |= 1;
    }
    // mant * 2^exp, rounded once: scale in two steps to stay in range.
    let v = mant as f64;
    let e = exp.clamp(-2200, 2200) as i32;
    let half = e / 2;
    (v * 2f64.powi(half) * 2f64.powi(e - half), j)
}

/// Parses one end of a score range (Redis's `zslParseRange`): `(` makes it
/// exclusive; the rest must be all strtod (up to a NUL, as C sees it).
fn parse_range_item(arg: &[u8]) -> Option<(f64, bool)> {
    let s = match arg.iter().position(|&b| b == 0) {
        Some(p) => &arg[..p],
        None => arg,
    };
    let (ex, body) = match s.first() {
        Some(b'(') => (true, &s[1..]),
        _ => (false, s),
    };
    let (v, used) = strtod(body);
    if used != body.len() || v.is_nan() {
        return None;
    }
    Some((v, ex))
}

pub fn parse_score_range(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
    let (min, minex) = parse_range_item(min)?;
    let (max, maxex) = parse_range_item(max)?;
    Some(ScoreRange {
        min,
        max,
        minex,
        maxex,
    })
}

/// One end of a lex range.
#[derive(Debug, Clone)]
pub enum LexItem {
    /// `-`
    Neg,
    /// `+`
    Pos,
    Str(Vec<u8>),
}

/// A lex interval (Redis's `zlexrangespec`).
#[derive(Debug, Clone)]
pub struct LexRange {
    pub min: LexItem,
    pub max: LexItem,
    pub minex: bool,
    pub maxex: bool,
}

fn cmplex_value(v: &[u8], b: &LexItem) -> Ordering {
    match b {
        LexItem::Pos => Ordering::Less,
        LexItem::Neg => Ordering::Greater,
        LexItem::Str(s) => v.cmp(s),
    }
}

impl LexRange {
    pub fn gte_min(&self, v: &[u8]) -> bool {
        let c = cmplex_value(v, &self.min);
        if self.minex {
            c == Ordering::Greater
        } else {
            c != Ordering::Less
        }
    }

    pub fn lte_max(&self, v: &[u8]) -> bool {
        let c = cmplex_value(v, &self.max);
        if self.maxex {
            c == Ordering::Less
        } else {
            c != Ordering::Greater
        }
    }

    fn is_empty(&self) -> bool {
        use LexItem::*;
        let c = match (&self.min, &self.max) {
            (Neg, Neg) | (Pos, Pos) => Ordering::Equal,
            (Neg, _) | (_, Pos) => Ordering::Less,
            (Pos, _) | (_, Neg) => Ordering::Greater,
            (Str(a), Str(b)) => a.cmp(b),
        };
        c == Ordering::Greater || (c == Ordering::Equal && (self.minex || self.maxex))
    }
}

fn parse_lex_item(arg: &[u8]) -> Option<(LexItem, bool)> {
    let single = arg.len() == 1 || arg.get(1) == Some(&0);
    match arg.first() {
        Some(b'+') if single => Some((LexItem::Pos, true)),
        Some(b'-') if single => Some((LexItem::Neg, true)),
        Some(b'(') => Some((LexItem::Str(arg[1..].to_vec()), true)),
        Some(b'[') => Some((LexItem::Str(arg[1..].to_vec()), false)),
        _ => None,
    }
}

pub fn parse_lex_range(min: &[u8], max: &[u8]) -> Option<LexRange> {
    let (min, minex) = parse_lex_item(min)?;
    let (max, maxex) = parse_lex_item(max)?;
    Some(LexRange {
        min,
        max,
        minex,
        maxex,
    })
}

// ---------------------------------------------------------------------------
// Command helpers
// ---------------------------------------------------------------------------

/// A zset for a read command (lookupKeyRead); `Err` on a wrong type.
#[allow(clippy::result_unit_err)]
pub fn zread<'a>(node: &'a mut Node, db: usize, key: &[u8]) -> Result<Option<&'a mut ZSet>, ()> {
    match node.lookup_read(db, key) {
        None => Ok(None),
        Some(Entry {
            value: Value::ZSet(z),
            ..
        }) => Ok(Some(z)),
        Some(_) => Err(()),
    }
}

/// A zset for a write command (lookupKeyWrite); `Err` on a wrong type.
#[allow(clippy::result_unit_err)]
pub fn zwrite<'a>(node: &'a mut Node, db: usize, key: &[u8]) -> Result<Option<&'a mut ZSet>, ()> {
    let clock = node.access_clock();
    match node.lookup_quiet(db, key) {
        None => Ok(None),
        Some(e) => {
            clock.touch(&mut e.lru);
            match &mut e.value {
                Value::ZSet(z) => Ok(Some(z)),
                _ => Err(()),
            }
        }
    }
}

/// Parses a score like `getDoubleFromObjectOrReply`.
fn parse_score(cx: &mut Ctx, i: usize, msg: &str) -> Option<f64> {
    match crate::numeric::parse_f64(&cx.argv[i]) {
        Some(v) if !v.is_nan() => Some(v),
        _ => {
            cx.error(msg);
            None
        }
    }
}

const NOT_FLOAT: &str = "ERR value is not a valid float";
const RANGE_NOT_FLOAT: &str = "ERR min or max is not a float";
const LEX_NOT_VALID: &str = "ERR min or max not valid string range item";

/// `getRangeLongFromObjectOrReply` with a message for both failures.
fn parse_long_in(cx: &mut Ctx, i: usize, min: i64, msg: &str) -> Option<i64> {
    match crate::resp::parse_i64(&cx.argv[i]) {
        Some(n) if n >= min => Some(n),
        _ => {
            cx.error(msg);
            None
        }
    }
}

/// Replies with (member, score) pairs: flat in RESP2, nested pairs in RESP3.
fn reply_items(out: &mut ReplyBuf, items: &[(f64, &[u8])], withscores: bool) {
    if withscores && !out.resp3 {
        out.array(items.len() * 2);
    } else {
        out.array(items.len());
    }
    for (s, m) in items {
        if withscores && out.resp3 {
            out.array(2);
        }
        out.bulk(m);
        if withscores {
            out.double(*s);
        }
    }
}

/// A score formatted as Redis stores it in replies of strings (ZSCAN):
/// `%.17g`, with inf spelled out.
pub fn score_string(s: f64) -> String {
    if s.is_infinite() {
        if s > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        crate::numeric::fmt_double_17g(s)
    }
}

fn cmp_items(a: &(f64, &[u8]), b: &(f64, &[u8])) -> Ordering {
    a.0.partial_cmp(&b.0)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.1.cmp(b.1))
}

/// Stores `items` (sorted) at `dst` as Redis's STORE commands do: replaces
/// the key (dropping its TTL) or deletes it when empty. Replies with the
/// size.
fn store_result(cx: &mut Ctx, dst: &Bytes, items: &[(f64, &[u8])], lim: Limits) {
    if items.is_empty() {
        cx.out().int(0);
        if cx.delete_key(dst) {
            cx.dirty(1);
            cx.notify(GENERIC, "del", dst);
        }
        return;
    }
    let z = ZSet::from_sorted(items, lim);
    store_zset(cx, dst, z);
}

/// Sets `dst` to a non-empty zset and replies with its size.
fn store_zset(cx: &mut Ctx, dst: &Bytes, z: ZSet) {
    let n = z.len();
    let lru = cx.lru_now();
    let _ = cx.lookup_write(dst);
    cx.db().set(dst.clone(), Value::ZSet(z), lru);
    cx.signal_ready(dst);
    cx.dirty(1);
    cx.out().int(n as i64);
    // The command's name is the event (zunionstore, zrangestore...).
    let event = cx.cmd.name.as_str();
    cx.notify(ZSET, event, dst);
}

// ---------------------------------------------------------------------------
// ZADD, ZINCRBY, ZREM, ZCARD, ZSCORE, ZMSCORE, ZRANK
// ---------------------------------------------------------------------------

pub fn zadd(cx: &mut Ctx) {
    zadd_generic(cx, false);
}

pub fn zincrby(cx: &mut Ctx) {
    zadd_generic(cx, true);
}

fn zadd_generic(cx: &mut Ctx, incr: bool) {
    let argv = cx.argv;
    let mut f = AddFlags {
        incr,
        ..AddFlags::default()
    };
    let mut ch = false;
    let mut idx = 2;
    while idx < argv.len() {
        let a = &argv[idx];
        if a.eq_ignore_ascii_case(b"nx") {
            f.nx = true;
        } else if a.eq_ignore_ascii_case(b"xx") {
            f.xx = true;
        } else if a.eq_ignore_ascii_case(b"ch") {
            ch = true;
        } else if a.eq_ignore_ascii_case(b"incr") {
            f.incr = true;
        } else if a.eq_ignore_ascii_case(b"gt") {
            f.gt = true;
        } else if a.eq_ignore_ascii_case(b"lt") {
            f.lt = true;
        } else {
            break;
        }
        idx += 1;
    }
    let elements = argv.len() - idx;
    if elements % 2 == 1 || elements == 0 {
        return cx.syntax_error();
    }
    let elements = elements / 2;
    if f.nx && f.xx {
        return cx.error("ERR XX and NX options at the same time are not compatible");
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return cx.error("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if f.incr && elements > 1 {
        return cx.error("ERR INCR option supports a single increment-element pair");
    }
    let mut scores = Vec::with_capacity(elements);
    for j in 0..elements {
        let Some(s) = parse_score(cx, idx + 2 * j, NOT_FLOAT) else {
            return;
        };
        scores.push(s);
    }
    let key = &argv[1];
    let lim = Limits::of(cx.node);
    let db = cx.client.db;
    let exists = match zwrite(cx.node, db, key) {
        Err(()) => return cx.wrongtype(),
        Ok(z) => z.is_some(),
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last = 0.0;
    let mut nan = false;
    if exists || !f.xx {
        if !exists {
            let z = ZSet::new_for(argv[idx + 1].len(), lim);
            let lru = cx.lru_now();
            cx.db().set(key.clone(), Value::ZSet(z), lru);
        }
        let Ok(Some(z)) = zwrite(cx.node, db, key) else {
            return;
        };
        for (j, &score) in scores.iter().enumerate() {
            match z.add(score, &argv[idx + 1 + 2 * j], f, lim) {
                AddOutcome::Nan => {
                    nan = true;
                    break;
                }
                AddOutcome::Nop => {}
                AddOutcome::Added(s) => {
                    added += 1;
                    processed += 1;
                    last = s;
                }
                AddOutcome::Updated(s) => {
                    updated += 1;
                    processed += 1;
                    last = s;
                }
                AddOutcome::Same(s) => {
                    processed += 1;
                    last = s;
                }
            }
        }
        if added > 0 {
            cx.signal_ready(key);
        }
    }
    let event = if f.incr { "zincr" } else { "zadd" };
    if nan {
        cx.error("ERR resulting score is not a number (NaN)");
        if added + updated > 0 {
            cx.notify(ZSET, event, key);
        }
        return;
    }
    cx.dirty((added + updated) as u64);
    if f.incr {
        if processed > 0 {
            cx.out().double(last);
        } else {
            cx.out().null();
        }
    } else {
        cx.out().int(if ch { added + updated } else { added });
    }
    if added + updated > 0 {
        cx.notify(ZSET, event, key);
    }
}

pub fn zrem(cx: &mut Ctx) {
    let argv = cx.argv;
    let db = cx.client.db;
    let mut deleted = 0;
    let mut emptied = false;
    match zwrite(cx.node, db, &argv[1]) {
        Err(()) => return cx.wrongtype(),
        Ok(None) => {}
        Ok(Some(z)) => {
            for m in &argv[2..] {
                if z.remove(m) {
                    deleted += 1;
                }
                if z.is_empty() {
                    emptied = true;
                    break;
                }
            }
        }
    }
    if deleted > 0 {
        cx.notify(ZSET, "zrem", &argv[1]);
    }
    if emptied {
        cx.delete_key(&argv[1]);
        cx.notify(GENERIC, "del", &argv[1]);
    }
    cx.dirty(deleted as u64);
    cx.out().int(deleted);
}

pub fn zcard(cx: &mut Ctx) {
    let db = cx.client.db;
    match zread(cx.node, db, &cx.argv[1]) {
        Err(()) => cx.wrongtype(),
        Ok(z) => {
            let n = z.map_or(0, |z| z.len());
            cx.client.reply.int(n as i64)
        }
    }
}

pub fn zscore(cx: &mut Ctx) {
    let db = cx.client.db;
    match zread(cx.node, db, &cx.argv[1]) {
        Err(()) => cx.wrongtype(),
        Ok(z) => match z.and_then(|z| z.score(&cx.argv[2])) {
            Some(s) => cx.client.reply.double(s),
            None => cx.client.reply.null(),
        },
    }
}

pub fn zmscore(cx: &mut Ctx) {
    let db = cx.client.db;
    let argv = cx.argv;
    match zread(cx.node, db, &argv[1]) {
        Err(()) => cx.wrongtype(),
        Ok(z) => {
            let out = &mut cx.client.reply;
            out.array(argv.len() - 2);
            for m in &argv[2..] {
                match z.as_ref().and_then(|z| z.score(m)) {
                    Some(s) => out.double(s),
                    None => out.null(),
                }
            }
        }
    }
}

pub fn zrank(cx: &mut Ctx) {
    zrank_generic(cx, false);
}

pub fn zrevrank(cx: &mut Ctx) {
    zrank_generic(cx, true);
}

fn zrank_generic(cx: &mut Ctx, rev: bool) {
    let db = cx.client.db;
    match zread(cx.node, db, &cx.argv[1]) {
        Err(()) => cx.wrongtype(),
        Ok(None) => cx.client.reply.null(),
        Ok(Some(z)) => match z.rank(&cx.argv[2]) {
            Some(r) => {
                let r = if rev { z.len() - 1 - r } else { r };
                cx.client.reply.int(r as i64)
            }
            None => cx.client.reply.null(),
        },
    }
}

// ---------------------------------------------------------------------------
// ZCOUNT, ZLEXCOUNT
// ---------------------------------------------------------------------------

pub fn zcount(cx: &mut Ctx) {
    let Some(r) = parse_score_range(&cx.argv[2], &cx.argv[3]) else {
        return cx.error(RANGE_NOT_FLOAT);
    };
    let db = cx.client.db;
    match zread(cx.node, db, &cx.argv[1]) {
        Err(()) => cx.wrongtype(),
        Ok(z) => {
            let n = match z {
                None => 0,
                Some(z) => match (z.first_in_range(&r), z.last_in_range(&r)) {
                    (Some(a), Some(b)) if b >= a => b - a + 1,
                    _ => 0,
                },
            };
            cx.client.reply.int(n as i64);
        }
    }
}

pub fn zlexcount(cx: &mut Ctx) {
    let Some(r) = parse_lex_range(&cx.argv[2], &cx.argv[3]) else {
        return cx.error(LEX_NOT_VALID);
    };
    let db = cx.client.db;
    match zread(cx.node, db, &cx.argv[1]) {
        Err(()) => cx.wrongtype(),
        Ok(z) => {
            let n = match z {
                None => 0,
                Some(z) => match z.first_in_lex(&r) {
                    None => 0,
                    Some(a) => match &z.repr {
                        Repr::Pack(_) => {
                            z.iter_from(a, false).take_while(|x| r.lte_max(x.1)).count()
                        }
                        Repr::Tree(_) => match z.last_in_lex(&r) {
                            Some(b) if b >= a => b - a + 1,
                            _ => 0,
                        },
                    },
                },
            };
            cx.client.reply.int(n as i64);
        }
    }
}

// ---------------------------------------------------------------------------
// ZRANGE and friends
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Auto,
    Forward,
    Reverse,
}

enum ParsedRange {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// Rank range resolution (Redis's index sanitizing): `start..=end`.
fn rank_bounds(len: usize, start: i64, end: i64) -> Option<(usize, usize)> {
    let llen = len as i64;
    let mut start = if start < 0 { llen + start } else { start };
    let mut end = if end < 0 { llen + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= llen {
        return None;
    }
    if end >= llen {
        end = llen - 1;
    }
    Some((start as usize, end as usize))
}

/// Walks a score or lex range as Redis does: from the first (or last)
/// element in range, skip `offset` elements, then take up to `limit`
/// (negative: all) while `in_range` holds.
fn walk_range(
    z: &ZSet,
    start: Option<usize>,
    rev: bool,
    offset: i64,
    limit: i64,
    in_range: impl Fn(f64, &[u8]) -> bool,
) -> Vec<(f64, &[u8])> {
    let Some(start) = start else {
        return Vec::new();
    };
    if offset < 0 {
        return Vec::new();
    }
    let mut it = z.iter_from(start, rev);
    for _ in 0..offset {
        if it.next().is_none() {
            return Vec::new();
        }
    }
    let mut out = Vec::new();
    let mut left = limit;
    while left != 0 {
        let Some((s, m)) = it.next() else { break };
        if !in_range(s, m) {
            break;
        }
        out.push((s, m));
        left -= 1;
    }
    out
}

/// The elements a parsed range selects, in reply order.
fn select_range<'a>(
    z: &'a ZSet,
    range: &ParsedRange,
    rev: bool,
    offset: i64,
    limit: i64,
) -> Vec<(f64, &'a [u8])> {
    match range {
        ParsedRange::Rank(start, end) => match rank_bounds(z.len(), *start, *end) {
            None => Vec::new(),
            Some((a, b)) => {
                let n = b - a + 1;
                let from = if rev { z.len() - 1 - a } else { a };
                z.iter_from(from, rev).take(n).collect()
            }
        },
        ParsedRange::Score(r) => {
            if rev {
                walk_range(z, z.last_in_range(r), true, offset, limit, |s, _| {
                    r.gte_min(s)
                })
            } else {
                walk_range(z, z.first_in_range(r), false, offset, limit, |s, _| {
                    r.lte_max(s)
                })
            }
        }
        ParsedRange::Lex(r) => {
            if rev {
                walk_range(z, z.last_in_lex(r), true, offset, limit, |_, m| {
                    r.gte_min(m)
                })
            } else {
                walk_range(z, z.first_in_lex(r), false, offset, limit, |_, m| {
                    r.lte_max(m)
                })
            }
        }
    }
}

/// Redis's `zrangeGenericCommand`: ZRANGE, ZRANGESTORE and the older
/// Z[REV]RANGE[BYSCORE|BYLEX] forms. `argc_start` is the source key's index.
fn zrange_generic(
    cx: &mut Ctx,
    argc_start: usize,
    store: bool,
    mut rt: RangeType,
    mut dir: Direction,
) {
    let argv = cx.argv;
    let key = &argv[argc_start];
    let mut minidx = argc_start + 1;
    let mut maxidx = argc_start + 2;
    let mut withscores = false;
    let mut offset = 0i64;
    let mut limit = -1i64;
    let mut j = argc_start + 3;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        if !store && cx.arg_is(j, "withscores") {
            withscores = true;
        } else if cx.arg_is(j, "limit") && left >= 2 {
            let Some(o) = cx.parse_int(j + 1) else { return };
            let Some(l) = cx.parse_int(j + 2) else { return };
            offset = o;
            limit = l;
            j += 2;
        } else if dir == Direction::Auto && cx.arg_is(j, "rev") {
            dir = Direction::Reverse;
        } else if rt == RangeType::Auto && cx.arg_is(j, "bylex") {
            rt = RangeType::Lex;
        } else if rt == RangeType::Auto && cx.arg_is(j, "byscore") {
            rt = RangeType::Score;
        } else {
            return cx.syntax_error();
        }
        j += 1;
    }
    if dir == Direction::Auto {
        dir = Direction::Forward;
    }
    if rt == RangeType::Auto {
        rt = RangeType::Rank;
    }
    if limit != -1 && rt == RangeType::Rank {
        return cx.error(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
    }
    if withscores && rt == RangeType::Lex {
        return cx.error("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    let rev = dir == Direction::Reverse;
    if rev && rt != RangeType::Rank {
        std::mem::swap(&mut minidx, &mut maxidx);
    }
    let range = match rt {
        RangeType::Score => match parse_score_range(&argv[minidx], &argv[maxidx]) {
            Some(r) => ParsedRange::Score(r),
            None => return cx.error(RANGE_NOT_FLOAT),
        },
        RangeType::Lex => match parse_lex_range(&argv[minidx], &argv[maxidx]) {
            Some(r) => ParsedRange::Lex(r),
            None => return cx.error(LEX_NOT_VALID),
        },
        _ => {
            let Some(a) = cx.parse_int(minidx) else {
                return;
            };
            let Some(b) = cx.parse_int(maxidx) else {
                return;
            };
            ParsedRange::Rank(a, b)
        }
    };
    let db = cx.client.db;
    let lim = Limits::of(cx.node);
    if store {
        let dst = &argv[1];
        let mut items: Vec<(f64, Bytes)> = match zread(cx.node, db, key) {
            Err(()) => return cx.wrongtype(),
            Ok(None) => Vec::new(),
            Ok(Some(z)) => select_range(z, &range, rev, offset, limit)
                .into_iter()
                .map(|(s, m)| (s, Bytes::copy_from_slice(m)))
                .collect(),
        };
        if rev {
            items.reverse();
        }
        let refs: Vec<(f64, &[u8])> = items.iter().map(|(s, m)| (*s, &m[..])).collect();
        store_result(cx, dst, &refs, lim);
        return;
    }
    match zread(cx.node, db, key) {
        Err(()) => cx.wrongtype(),
        Ok(None) => cx.client.reply.array(0),
        Ok(Some(z)) => {
            let items = select_range(z, &range, rev, offset, limit);
            reply_items(&mut cx.client.reply, &items, withscores);
        }
    }
}

pub fn zrange(cx: &mut Ctx) {
    zrange_generic(cx, 1, false, RangeType::Auto, Direction::Auto);
}

pub fn zrangestore(cx: &mut Ctx) {
    zrange_generic(cx, 2, true, RangeType::Auto, Direction::Auto);
}

pub fn zrevrange(cx: &mut Ctx) {
    zrange_generic(cx, 1, false, RangeType::Rank, Direction::Reverse);
}

pub fn zrangebyscore(cx: &mut Ctx) {
    zrange_generic(cx, 1, false, RangeType::Score, Direction::Forward);
}

pub fn zrevrangebyscore(cx: &mut Ctx) {
    zrange_generic(cx, 1, false, RangeType::Score, Direction::Reverse);
}

pub fn zrangebylex(cx: &mut Ctx) {
    zrange_generic(cx, 1, false, RangeType::Lex, Direction::Forward);
}

pub fn zrevrangebylex(cx: &mut Ctx) {
    zrange_generic(cx, 1, false, RangeType::Lex, Direction::Reverse);
}

// ---------------------------------------------------------------------------
// ZREMRANGEBY*
// ---------------------------------------------------------------------------

fn zremrange_generic(cx: &mut Ctx, rt: RangeType) {
    let argv = cx.argv;
    let range = match rt {
        RangeType::Score => match parse_score_range(&argv[2], &argv[3]) {
            Some(r) => ParsedRange::Score(r),
            None => return cx.error(RANGE_NOT_FLOAT),
        },
        RangeType::Lex => match parse_lex_range(&argv[2], &argv[3]) {
            Some(r) => ParsedRange::Lex(r),
            None => return cx.error(LEX_NOT_VALID),
        },
        _ => {
            let Some(a) = cx.parse_int(2) else { return };
            let Some(b) = cx.parse_int(3) else { return };
            ParsedRange::Rank(a, b)
        }
    };
    let db = cx.client.db;
    let (deleted, emptied) = match zwrite(cx.node, db, &argv[1]) {
        Err(()) => return cx.wrongtype(),
        Ok(None) => (0, false),
        Ok(Some(z)) => {
            let span = match &range {
                ParsedRange::Rank(a, b) => rank_bounds(z.len(), *a, *b),
                ParsedRange::Score(r) => match (z.first_in_range(r), z.last_in_range(r)) {
                    (Some(a), Some(b)) if b >= a => Some((a, b)),
                    _ => None,
                },
                ParsedRange::Lex(r) => z.first_in_lex(r).map(|a| {
                    let n = z.iter_from(a, false).take_while(|x| r.lte_max(x.1)).count();
                    (a, a + n.max(1) - 1)
                }),
            };
            let n = span.map_or(0, |(a, b)| z.remove_range(a, b));
            (n, z.is_empty())
        }
    };
    if deleted > 0 {
        let event = match rt {
            RangeType::Score => "zremrangebyscore",
            RangeType::Lex => "zremrangebylex",
            _ => "zremrangebyrank",
        };
        cx.notify(ZSET, event, &argv[1]);
    }
    if emptied {
        cx.delete_key(&argv[1]);
        cx.notify(GENERIC, "del", &argv[1]);
    }
    cx.dirty(deleted as u64);
    cx.out().int(deleted as i64);
}

pub fn zremrangebyrank(cx: &mut Ctx) {
    zremrange_generic(cx, RangeType::Rank);
}

pub fn zremrangebyscore(cx: &mut Ctx) {
    zremrange_generic(cx, RangeType::Score);
}

pub fn zremrangebylex(cx: &mut Ctx) {
    zremrange_generic(cx, RangeType::Lex);
}

// ---------------------------------------------------------------------------
// ZUNION, ZINTER, ZDIFF, their STORE forms, ZINTERCARD
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(target: &mut f64, val: f64, agg: Aggregate) {
    match agg {
        Aggregate::Sum => {
            *target += val;
            // inf + -inf: Redis keeps the convention that the result is 0.
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            *target = if val < *target { val } else { *target };
        }
        Aggregate::Max => {
            *target = if val > *target { val } else { *target };
        }
    }
}

/// One input of a set operation. Sets count as zsets whose scores are all
/// 1; intset members are formatted up front (intsets are small).
enum Source<'a> {
    Missing,
    Zset(&'a ZSet),
    Set(&'a Set, Vec<Bytes>),
}

impl<'a> Source<'a> {
    fn new(v: Option<&'a Value>) -> Source<'a> {
        match v {
            Some(Value::ZSet(z)) => Source::Zset(z),
            Some(Value::Set(s)) => {
                let ints = match s {
                    Set::Int(_) => s
                        .iter()
                        .filter_map(|m| match m {
                            Member::Int(n) => Some(Bytes::copy_from_slice(
                                itoa::Buffer::new().format(n).as_bytes(),
                            )),
                            Member::Bytes(_) => None,
                        })
                        .collect(),
                    Set::Table(_) => Vec::new(),
                };
                Source::Set(s, ints)
            }
            _ => Source::Missing,
        }
    }

    fn len(&self) -> usize {
        match self {
            Source::Missing => 0,
            Source::Zset(z) => z.len(),
            Source::Set(s, _) => s.len(),
        }
    }

    fn find(&self, m: &[u8]) -> Option<f64> {
        match self {
            Source::Missing => None,
            Source::Zset(z) => z.score(m),
            Source::Set(s, _) => s.contains(m).then_some(1.0),
        }
    }

    /// Every (score, member), in no particular order.
    fn members(&self) -> Box<dyn Iterator<Item = (f64, &[u8])> + '_> {
        match self {
            Source::Missing => Box::new(std::iter::empty()),
            // Redis walks zsets from the tail.
            Source::Zset(z) => Box::new(z.iter_from(z.len().saturating_sub(1), true)),
            Source::Set(Set::Int(_), ints) => Box::new(ints.iter().map(|b| (1.0, &b[..]))),
            Source::Set(s, _) => Box::new(s.iter().filter_map(|m| match m {
                Member::Bytes(b) => Some((1.0, b)),
                Member::Int(_) => None,
            })),
        }
    }
}

/// Redis's `zunionInterDiffGenericCommand`.
fn zsetop_generic(
    cx: &mut Ctx,
    dst: Option<&Bytes>,
    numkeys_idx: usize,
    op: SetOp,
    card_only: bool,
) {
    let argv = cx.argv;
    let argc = argv.len();
    let Some(setnum) = cx.parse_int(numkeys_idx) else {
        return;
    };
    if setnum < 1 {
        let msg = format!(
            "ERR at least 1 input key is needed for '{}' command",
            cx.cmd.name
        );
        return cx.error(&msg);
    }
    if setnum > (argc - (numkeys_idx + 1)) as i64 {
        return cx.syntax_error();
    }
    let setnum = setnum as usize;
    let keys = &argv[numkeys_idx + 1..numkeys_idx + 1 + setnum];
    let db = cx.client.db;
    for k in keys {
        match cx.node.lookup_read(db, k) {
            None => {}
            Some(Entry {
                value: Value::ZSet(_) | Value::Set(_),
                ..
            }) => {}
            Some(_) => return cx.wrongtype(),
        }
    }
    let mut weights = vec![1.0f64; setnum];
    let mut agg = Aggregate::Sum;
    let mut withscores = false;
    let mut limit: i64 = 0;
    let mut j = numkeys_idx + 1 + setnum;
    while j < argc {
        let remaining = argc - j;
        if op != SetOp::Diff && !card_only && remaining > setnum && cx.arg_is(j, "weights") {
            j += 1;
            for w in weights.iter_mut() {
                let Some(v) = parse_score(cx, j, "ERR weight value is not a float") else {
                    return;
                };
                *w = v;
                j += 1;
            }
        } else if op != SetOp::Diff && !card_only && remaining >= 2 && cx.arg_is(j, "aggregate") {
            j += 1;
            agg = if cx.arg_is(j, "sum") {
                Aggregate::Sum
            } else if cx.arg_is(j, "min") {
                Aggregate::Min
            } else if cx.arg_is(j, "max") {
                Aggregate::Max
            } else {
                return cx.syntax_error();
            };
            j += 1;
        } else if dst.is_none() && !card_only && cx.arg_is(j, "withscores") {
            j += 1;
            withscores = true;
        } else if card_only && remaining >= 2 && cx.arg_is(j, "limit") {
            j += 1;
            let Some(l) = parse_long_in(cx, j, 0, "ERR LIMIT can't be negative") else {
                return;
            };
            limit = l;
            j += 1;
        } else {
            return cx.syntax_error();
        }
    }
    let lim = Limits::of(cx.node);
    let d = &cx.node.dbs[db];
    let srcs: Vec<Source> = keys
        .iter()
        .map(|k| Source::new(d.keys.get(k).map(|e| &e.value)))
        .collect();
    let mut order: Vec<usize> = (0..setnum).collect();
    if op != SetOp::Diff {
        order.sort_by_key(|&i| srcs[i].len());
    }
    let mut result: Vec<(f64, &[u8])> = Vec::new();
    let mut cardinality = 0usize;
    match op {
        SetOp::Inter => {
            let first = order[0];
            if srcs[first].len() > 0 {
                for (s, m) in srcs[first].members() {
                    let mut score = weights[first] * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    let mut all = true;
                    for &o in &order[1..] {
                        match srcs[o].find(m) {
                            Some(v) => aggregate(&mut score, v * weights[o], agg),
                            None => {
                                all = false;
                                break;
                            }
                        }
                    }
                    if !all {
                        continue;
                    }
                    if card_only {
                        cardinality += 1;
                        if limit > 0 && cardinality as i64 >= limit {
                            break;
                        }
                    } else {
                        result.push((score, m));
                    }
                }
            }
        }
        SetOp::Union => {
            let mut acc: BTreeMap<&[u8], f64> = BTreeMap::new();
            for &o in &order {
                for (s, m) in srcs[o].members() {
                    let mut score = weights[o] * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    match acc.get_mut(m) {
                        Some(t) => aggregate(t, score, agg),
                        None => {
                            acc.insert(m, score);
                        }
                    }
                }
            }
            result = acc.into_iter().map(|(m, s)| (s, m)).collect();
        }
        SetOp::Diff => {
            if srcs[0].len() > 0 {
                // A later input that is the first key itself removes everything.
                if !keys[1..].iter().any(|k| *k == keys[0]) {
                    for (s, m) in srcs[0].members() {
                        if srcs[1..].iter().all(|src| src.find(m).is_none()) {
                            result.push((s, m));
                        }
                    }
                }
            }
        }
    }
    if card_only {
        cx.client.reply.int(cardinality as i64);
        return;
    }
    result.sort_by(cmp_items);
    match dst {
        Some(dst) => {
            if result.is_empty() {
                store_result(cx, dst, &[], lim);
            } else {
                let z = ZSet::from_sorted(&result, lim);
                store_zset(cx, dst, z);
            }
        }
        None => reply_items(&mut cx.client.reply, &result, withscores),
    }
}

pub fn zunionstore(cx: &mut Ctx) {
    let dst = cx.argv[1].clone();
    zsetop_generic(cx, Some(&dst), 2, SetOp::Union, false);
}

pub fn zinterstore(cx: &mut Ctx) {
    let dst = cx.argv[1].clone();
    zsetop_generic(cx, Some(&dst), 2, SetOp::Inter, false);
}

pub fn zdiffstore(cx: &mut Ctx) {
    let dst = cx.argv[1].clone();
    zsetop_generic(cx, Some(&dst), 2, SetOp::Diff, false);
}

pub fn zunion(cx: &mut Ctx) {
    zsetop_generic(cx, None, 1, SetOp::Union, false);
}

pub fn zinter(cx: &mut Ctx) {
    zsetop_generic(cx, None, 1, SetOp::Inter, false);
}

pub fn zdiff(cx: &mut Ctx) {
    zsetop_generic(cx, None, 1, SetOp::Diff, false);
}

pub fn zintercard(cx: &mut Ctx) {
    zsetop_generic(cx, None, 1, SetOp::Inter, true);
}

// ---------------------------------------------------------------------------
// Pops
// ---------------------------------------------------------------------------

/// How a pop replies.
#[derive(Clone, Copy)]
struct PopShape {
    max: bool,
    /// Emit the key (BZPOP*, ZMPOP, BZMPOP).
    emitkey: bool,
    /// Pairs as nested arrays (RESP3 ZPOP* with a count, [B]ZMPOP).
    nested: bool,
    /// Reply a null array when no key has data (ZMPOP).
    nil_when_empty: bool,
}

/// Redis's `genericZpopCommand`. `count` -1 is the plain single pop.
fn zpop_generic(cx: &mut Ctx, keys: &[Bytes], count: i64, shape: PopShape) {
    let db = cx.client.db;
    let mut found = None;
    for k in keys {
        match zwrite(cx.node, db, k) {
            Err(()) => return cx.wrongtype(),
            Ok(None) => continue,
            Ok(Some(_)) => {
                found = Some(k);
                break;
            }
        }
    }
    let Some(key) = found else {
        if shape.nil_when_empty {
            cx.out().null_array();
        } else {
            cx.out().array(0);
        }
        return;
    };
    if count == 0 {
        return cx.out().array(0);
    }
    let count = if count == -1 { 1 } else { count as usize };
    let Ok(Some(z)) = zwrite(cx.node, db, key) else {
        return;
    };
    let len = z.len();
    let n = count.min(len);
    let out = &mut cx.client.reply;
    match (shape.nested, shape.emitkey) {
        (false, false) => out.array(n * 2),
        (true, false) => out.array(n),
        (false, true) => {
            out.array(n * 2 + 1);
            out.bulk(key);
        }
        (true, true) => {
            out.array(2);
            out.bulk(key);
            out.array(n);
        }
    }
    let start = if shape.max { len - 1 } else { 0 };
    for (s, m) in z.iter_from(start, shape.max).take(n) {
        if shape.nested {
            out.array(2);
        }
        out.bulk(m);
        out.double(s);
    }
    if shape.max {
        z.remove_range(len - n, len - 1);
    } else {
        z.remove_range(0, n - 1);
    }
    let emptied = z.is_empty();
    cx.notify(ZSET, if shape.max { "zpopmax" } else { "zpopmin" }, key);
    if emptied {
        cx.delete_key(key);
        cx.notify(GENERIC, "del", key);
    }
    cx.dirty(n as u64);
    // WATCH: of several keys, only the one popped from is modified (the
    // node leaves the multi-key pops to their handlers).
    cx.node.touch_key(cx.client, db, key);
}

fn zpop_minmax(cx: &mut Ctx, max: bool) {
    if cx.argv.len() > 3 {
        return cx.syntax_error();
    }
    let mut count = -1;
    if cx.argv.len() == 3 {
        let Some(c) = parse_long_in(cx, 2, 0, "ERR value is out of range, must be positive") else {
            return;
        };
        count = c;
    }
    let nested = cx.client.reply.resp3 && count != -1;
    let keys = [cx.argv[1].clone()];
    let shape = PopShape {
        max,
        emitkey: false,
        nested,
        nil_when_empty: false,
    };
    zpop_generic(cx, &keys, count, shape);
}

pub fn zpopmin(cx: &mut Ctx) {
    zpop_minmax(cx, false);
}

pub fn zpopmax(cx: &mut Ctx) {
    zpop_minmax(cx, true);
}

/// Redis's `blockingGenericZpopCommand`: pops from the first non-empty key
/// or blocks on all of them.
fn blocking_zpop(cx: &mut Ctx, keys: &[Bytes], timeout_idx: usize, count: i64, shape: PopShape) {
    let Some(deadline) = cx.parse_timeout(timeout_idx) else {
        return;
    };
    // Run again after a key became ready: a key that meanwhile holds
    // another type does not serve this client, which keeps waiting.
    let rerun = cx.client.blocked.is_some();
    let db = cx.client.db;
    for k in keys {
        match zwrite(cx.node, db, k) {
            Ok(None) => continue,
            Err(()) if rerun => continue,
            Err(()) => return cx.wrongtype(),
            Ok(Some(z)) if z.is_empty() => continue,
            Ok(Some(_)) => {
                return zpop_generic(cx, std::slice::from_ref(k), count, shape);
            }
        }
    }
    cx.block(keys.to_vec(), deadline, TimeoutReply::NullArray);
}

fn bzpop_minmax(cx: &mut Ctx, max: bool) {
    let argc = cx.argv.len();
    let keys = &cx.argv[1..argc - 1];
    let shape = PopShape {
        max,
        emitkey: true,
        nested: false,
        nil_when_empty: false,
    };
    blocking_zpop(cx, keys, argc - 1, -1, shape);
}

pub fn bzpopmin(cx: &mut Ctx) {
    bzpop_minmax(cx, false);
}

pub fn bzpopmax(cx: &mut Ctx) {
    bzpop_minmax(cx, true);
}

/// ZMPOP / BZMPOP: `numkeys_idx` is where numkeys is.
fn zmpop_generic(cx: &mut Ctx, numkeys_idx: usize, block: bool) {
    let argv = cx.argv;
    let Some(numkeys) = parse_long_in(cx, numkeys_idx, 1, "ERR numkeys should be greater than 0")
    else {
        return;
    };
    let where_idx = (numkeys_idx as i64)
        .saturating_add(numkeys)
        .saturating_add(1);
    if where_idx >= argv.len() as i64 {
        return cx.syntax_error();
    }
    let where_idx = where_idx as usize;
    let max = if cx.arg_is(where_idx, "min") {
        false
    } else if cx.arg_is(where_idx, "max") {
        true
    } else {
        return cx.syntax_error();
    };
    let mut count = -1i64;
    let mut j = where_idx + 1;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if count == -1 && cx.arg_is(j, "count") && more > 0 {
            j += 1;
            let Some(c) = parse_long_in(cx, j, 1, "ERR count should be greater than 0") else {
                return;
            };
            count = c;
        } else {
            return cx.syntax_error();
        }
        j += 1;
    }
    if count == -1 {
        count = 1;
    }
    let keys = &argv[numkeys_idx + 1..where_idx];
    let shape = PopShape {
        max,
        emitkey: true,
        nested: true,
        nil_when_empty: true,
    };
    if block {
        blocking_zpop(cx, keys, 1, count, shape);
    } else {
        zpop_generic(cx, keys, count, shape);
    }
}

pub fn zmpop(cx: &mut Ctx) {
    zmpop_generic(cx, 1, false);
}

pub fn bzmpop(cx: &mut Ctx) {
    zmpop_generic(cx, 2, true);
}

// ---------------------------------------------------------------------------
// ZRANDMEMBER
// ---------------------------------------------------------------------------

/// A uniform index below `n` (n > 0).
fn rand_below(rng: &mut impl RngCore, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// Negative counts above this are refused: Redis 7.0 tries to build the
/// reply and dies; an error is kinder.
const RANDMEMBER_MAX_REPEAT: u64 = i32::MAX as u64;

pub fn zrandmember(cx: &mut Ctx) {
    let argv = cx.argv;
    let db = cx.client.db;
    if argv.len() < 3 {
        match zread(cx.node, db, &argv[1]) {
            Err(()) => return cx.wrongtype(),
            Ok(None) => return cx.client.reply.null(),
            Ok(Some(_)) => {}
        }
        let node = &mut *cx.node;
        let Some(Entry {
            value: Value::ZSet(z),
            ..
        }) = node.dbs[db].keys.get(&argv[1])
        else {
            return;
        };
        let k = rand_below(&mut node.rng, z.len().max(1));
        match z.get(k) {
            Some((_, m)) => cx.client.reply.bulk(m),
            None => cx.client.reply.null(),
        }
        return;
    }
    let l = match crate::resp::parse_i64(&argv[2]) {
        None => return cx.error("ERR value is not an integer or out of range"),
        Some(i64::MIN) => {
            return cx.error(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            )
        }
        Some(l) => l,
    };
    if argv.len() > 4 || (argv.len() == 4 && !cx.arg_is(3, "withscores")) {
        return cx.syntax_error();
    }
    let withscores = argv.len() == 4;
    // Redis refuses counts whose doubled reply length would overflow,
    // before it looks at the key.
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return cx.error("ERR value is out of range");
    }
    let (count, uniq) = if l >= 0 {
        (l as u64, true)
    } else {
        (l.unsigned_abs(), false)
    };
    if !uniq && count > RANDMEMBER_MAX_REPEAT {
        return cx.error("ERR value is out of range");
    }
    match zread(cx.node, db, &argv[1]) {
        Err(()) => return cx.wrongtype(),
        Ok(None) => return cx.client.reply.array(0),
        Ok(Some(_)) => {}
    }
    let node = &mut *cx.node;
    let Some(Entry {
        value: Value::ZSet(z),
        ..
    }) = node.dbs[db].keys.get(&argv[1])
    else {
        return;
    };
    let rng = &mut node.rng;
    let out = &mut cx.client.reply;
    let size = z.len();
    if count == 0 {
        return out.array(0);
    }
    let resp3 = out.resp3;
    let emit = |out: &mut ReplyBuf, s: f64, m: &[u8]| {
        if withscores && resp3 {
            out.array(2);
        }
        out.bulk(m);
        if withscores {
            out.double(s);
        }
    };
    let header = |out: &mut ReplyBuf, n: usize| {
        if withscores && !resp3 {
            out.array(n * 2);
        } else {
            out.array(n);
        }
    };
    let count = count as usize;
    // CASE 1: repeats allowed (or a single element): independent draws.
    if !uniq || count == 1 {
        header(out, count);
        let items: Vec<(f64, &[u8])> = if matches!(z.repr, Repr::Pack(_)) {
            z.iter().collect()
        } else {
            Vec::new()
        };
        for _ in 0..count {
            let k = rand_below(rng, size);
            let item = if items.is_empty() {
                z.get(k)
            } else {
                items.get(k).copied()
            };
            if let Some((s, m)) = item {
                emit(out, s, m);
            }
        }
        return;
    }
    // CASE 2: the whole set, in Redis's iteration order (highest first).
    if count >= size {
        header(out, size);
        for (s, m) in z.iter_from(size - 1, true) {
            emit(out, s, m);
        }
        return;
    }
    header(out, count);
    // CASE 3: close to the whole set: drop random elements.
    if count * 3 > size {
        let mut items: Vec<(f64, &[u8])> = z.iter().collect();
        while items.len() > count {
            let k = rand_below(rng, items.len());
            items.swap_remove(k);
        }
        for (s, m) in items {
            emit(out, s, m);
        }
        return;
    }
    // CASE 4: few of many.
    match &z.repr {
        Repr::Pack(_) => {
            // Selection sampling, in order (Redis's lpRandomPairsUnique).
            let mut remaining = count;
            for (i, (s, m)) in z.iter().enumerate() {
                if remaining == 0 {
                    break;
                }
                let r = rng.next_u32() as f64 / u32::MAX as f64;
                if r <= remaining as f64 / (size - i) as f64 {
                    emit(out, s, m);
                    remaining -= 1;
                }
            }
        }
        Repr::Tree(_) => {
            let mut seen = BTreeSet::new();
            while seen.len() < count {
                let k = rand_below(rng, size);
                if seen.insert(k) {
                    if let Some((s, m)) = z.get(k) {
                        emit(out, s, m);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// ZSCAN
// ---------------------------------------------------------------------------

pub fn zscan(cx: &mut Ctx) {
    let argv = cx.argv;
    let Some(cursor) = super::keys::parse_cursor(&argv[2]) else {
        return cx.error("ERR invalid cursor");
    };
    let db = cx.client.db;
    match zread(cx.node, db, &argv[1]) {
        Err(()) => return cx.wrongtype(),
        Ok(None) => {
            let out = &mut cx.client.reply;
            out.array(2);
            out.bulk(b"0");
            out.array(0);
            return;
        }
        Ok(Some(_)) => {}
    }
    let mut count = 10usize;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 3;
    while i < argv.len() {
        let left = argv.len() - i;
        if cx.arg_is(i, "count") && left >= 2 {
            let Some(n) = cx.parse_int(i + 1) else { return };
            if n < 1 {
                return cx.syntax_error();
            }
            count = n.min(i64::MAX / 20) as usize;
        } else if cx.arg_is(i, "match") && left >= 2 {
            let p = &argv[i + 1][..];
            pattern = if p == b"*" { None } else { Some(p) };
        } else {
            return cx.syntax_error();
        }
        i += 2;
    }
    let Some(Entry {
        value: Value::ZSet(z),
        ..
    }) = cx.node.dbs[db].keys.get(&argv[1])
    else {
        return;
    };
    let mut found: Vec<(&[u8], f64)> = Vec::new();
    let next = z.scan(cursor, count, |m, s| found.push((m, s)));
    // A listpack hands out its stored score strings, where integral scores
    // are integers; the skiplist's dict formats with %.17Lg.
    let packed = matches!(z.repr, Repr::Pack(_));
    let out = &mut cx.client.reply;
    found.retain(|(m, _)| pattern.is_none_or(|p| crate::glob::matches(p, m, false)));
    out.array(2);
    out.bulk(itoa::Buffer::new().format(next).as_bytes());
    out.array(found.len() * 2);
    for (m, s) in found {
        out.bulk(m);
        match int_score(s).filter(|_| packed) {
            Some(i) => out.bulk_int(i),
            None => out.bulk(score_string(s).as_bytes()),
        }
    }
}

// ---------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------

/// This module's commands, by lowercase name.
pub fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "zadd" => zadd,
        "zincrby" => zincrby,
        "zrem" => zrem,
        "zcard" => zcard,
        "zcount" => zcount,
        "zlexcount" => zlexcount,
        "zscore" => zscore,
        "zmscore" => zmscore,
        "zrank" => zrank,
        "zrevrank" => zrevrank,
        "zrange" => zrange,
        "zrangestore" => zrangestore,
        "zrevrange" => zrevrange,
        "zrangebyscore" => zrangebyscore,
        "zrevrangebyscore" => zrevrangebyscore,
        "zrangebylex" => zrangebylex,
        "zrevrangebylex" => zrevrangebylex,
        "zremrangebyrank" => zremrangebyrank,
        "zremrangebyscore" => zremrangebyscore,
        "zremrangebylex" => zremrangebylex,
        "zunion" => zunion,
        "zinter" => zinter,
        "zdiff" => zdiff,
        "zunionstore" => zunionstore,
        "zinterstore" => zinterstore,
        "zdiffstore" => zdiffstore,
        "zintercard" => zintercard,
        "zpopmin" => zpopmin,
        "zpopmax" => zpopmax,
        "bzpopmin" => bzpopmin,
        "bzpopmax" => bzpopmax,
        "zmpop" => zmpop,
        "bzmpop" => bzmpop,
        "zrandmember" => zrandmember,
        "zscan" => zscan,
        _ => return geo::handler(name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    /// The naive model: a sorted vector.
    #[derive(Default)]
    struct Model(Vec<(f64, Vec<u8>)>);

    impl Model {
        fn sort(&mut self) {
            self.0
                .sort_by(|a, b| cmp_items(&(a.0, &a.1[..]), &(b.0, &b.1[..])));
        }
        fn pos(&self, m: &[u8]) -> Option<usize> {
            self.0.iter().position(|x| x.1 == m)
        }
    }

    fn check_avl(t: &Tree, n: u32, tr: usize) -> (u32, u32) {
        if n == NIL {
            return (0, 0);
        }
        let lk = t.lk(n, tr);
        let (hl, sl) = check_avl(t, lk.l, tr);
        let (hr, sr) = check_avl(t, lk.r, tr);
        assert!(hl.abs_diff(hr) <= 1, "unbalanced");
        assert_eq!(lk.height, 1 + hl.max(hr));
        assert_eq!(lk.size, 1 + sl + sr);
        if lk.l != NIL {
            assert_eq!(t.cmp(lk.l, n, tr), Ordering::Less);
        }
        if lk.r != NIL {
            assert_eq!(t.cmp(lk.r, n, tr), Ordering::Greater);
        }
        (lk.height, lk.size)
    }

    fn check(z: &ZSet, model: &Model, rng: &mut ChaCha8Rng) {
        assert_eq!(z.len(), model.0.len());
        let all: Vec<(f64, Vec<u8>)> = z.iter().map(|(s, m)| (s, m.to_vec())).collect();
        assert_eq!(all, model.0);
        if let Repr::Tree(t) = &z.repr {
            for tr in [BY_SCORE, BY_MEMBER] {
                let (_, size) = check_avl(t, t.root[tr], tr);
                assert_eq!(size as usize, t.len);
            }
        }
        if model.0.is_empty() {
            return;
        }
        for _ in 0..5 {
            let k = (rng.next_u32() as usize) % model.0.len();
            let (s, m) = &model.0[k];
            assert_eq!(z.rank(m), Some(k));
            assert_eq!(z.score(m), Some(*s));
            assert_eq!(z.get(k), Some((*s, &m[..])));
            let fwd: Vec<_> = z.iter_from(k, false).map(|x| x.1.to_vec()).collect();
            let want: Vec<_> = model.0[k..].iter().map(|x| x.1.clone()).collect();
            assert_eq!(fwd, want);
            let rev: Vec<_> = z.iter_from(k, true).map(|x| x.1.to_vec()).collect();
            let want: Vec<_> = model.0[..=k].iter().rev().map(|x| x.1.clone()).collect();
            assert_eq!(rev, want);
            let r = ScoreRange {
                min: *s - 3.0,
                max: *s + 2.0,
                minex: rng.next_u32().is_multiple_of(2),
                maxex: rng.next_u32().is_multiple_of(2),
            };
            let inr: Vec<usize> = (0..model.0.len())
                .filter(|&i| r.gte_min(model.0[i].0) && r.lte_max(model.0[i].0))
                .collect();
            assert_eq!(z.first_in_range(&r), inr.first().copied());
            assert_eq!(z.last_in_range(&r), inr.last().copied());
        }
        assert_eq!(z.rank(b"absent-member"), None);
        assert_eq!(z.get(model.0.len()), None);
    }

    fn random_ops(lim: Limits, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut z = ZSet::new_for(1, lim);
        let mut model = Model::default();
        for step in 0..3000 {
            let m = format!("m{}", rng.next_u32() % 400).into_bytes();
            let score = (rng.next_u32() % 50) as f64 / 2.0 - 10.0;
            match rng.next_u32() % 10 {
                0..=4 => {
                    let out = z.add(score, &m, AddFlags::default(), lim);
                    match model.pos(&m) {
                        Some(p) if model.0[p].0 == score => {
                            assert_eq!(out, AddOutcome::Same(score))
                        }
                        Some(p) => {
                            assert_eq!(out, AddOutcome::Updated(score));
                            model.0[p].0 = score;
                        }
                        None => {
                            assert_eq!(out, AddOutcome::Added(score));
                            model.0.push((score, m));
                        }
                    }
                    model.sort();
                }
                5 => {
                    let f = AddFlags {
                        incr: true,
                        ..AddFlags::default()
                    };
                    let out = z.add(score, &m, f, lim);
                    match model.pos(&m) {
                        Some(p) => {
                            let s = model.0[p].0 + score;
                            if s != model.0[p].0 {
                                assert_eq!(out, AddOutcome::Updated(s));
                            }
                            model.0[p].0 = s;
                        }
                        None => model.0.push((score, m)),
                    }
                    model.sort();
                }
                6 | 7 => {
                    let had = model.pos(&m);
                    assert_eq!(z.remove(&m), had.is_some());
                    if let Some(p) = had {
                        model.0.remove(p);
                    }
                }
                8 if !model.0.is_empty() => {
                    let a = (rng.next_u32() as usize) % model.0.len();
                    let b = a + (rng.next_u32() as usize) % 4;
                    let n = z.remove_range(a, b);
                    let b = b.min(model.0.len() - 1);
                    assert_eq!(n, b - a + 1);
                    model.0.drain(a..=b);
                }
                _ => {}
            }
            if step % 50 == 0 {
                check(&z, &model, &mut rng);
            }
        }
        check(&z, &model, &mut rng);
    }

    #[test]
    fn tree_matches_naive_model() {
        random_ops(
            Limits {
                entries: 0,
                value: 64,
            },
            1,
        );
    }

    #[test]
    fn listpack_matches_naive_model() {
        random_ops(
            Limits {
                entries: 100_000,
                value: 64,
            },
            2,
        );
    }

    #[test]
    fn converting_set_matches_naive_model() {
        random_ops(
            Limits {
                entries: 64,
                value: 64,
            },
            3,
        );
    }

    #[test]
    fn lex_ranges_and_counts() {
        let lim = Limits {
            entries: 0,
            value: 64,
        };
        for lim in [
            lim,
            Limits {
                entries: 128,
                value: 64,
            },
        ] {
            let mut z = ZSet::new_for(1, lim);
            for w in ["a", "b", "bb", "c", "d", "e"] {
                z.add(0.0, w.as_bytes(), AddFlags::default(), lim);
            }
            let r = parse_lex_range(b"[b", b"(d").unwrap_or_else(|| unreachable!());
            assert_eq!(z.first_in_lex(&r), Some(1));
            assert_eq!(z.last_in_lex(&r), Some(3));
            let r = parse_lex_range(b"-", b"+").unwrap_or_else(|| unreachable!());
            assert_eq!((z.first_in_lex(&r), z.last_in_lex(&r)), (Some(0), Some(5)));
            let r = parse_lex_range(b"+", b"-").unwrap_or_else(|| unreachable!());
            assert_eq!(z.first_in_lex(&r), None);
            assert!(parse_lex_range(b"b", b"+").is_none());
            assert!(parse_lex_range(b"", b"+").is_none());
        }
    }

    #[test]
    fn scan_visits_every_member_once() {
        let lim = Limits {
            entries: 0,
            value: 64,
        };
        let mut z = ZSet::new_for(1, lim);
        for i in 0..1000 {
            z.add(
                i as f64,
                format!("x{i}").as_bytes(),
                AddFlags::default(),
                lim,
            );
        }
        let mut seen = BTreeSet::new();
        let mut cursor = 0;
        loop {
            cursor = z.scan(cursor, 10, |m, _| assert!(seen.insert(m.to_vec())));
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn strtod_prefixes() {
        assert_eq!(strtod(b"1.5abc"), (1.5, 3));
        assert_eq!(strtod(b"  -2e3"), (-2000.0, 6));
        assert_eq!(strtod(b"1e"), (1.0, 1));
        assert_eq!(strtod(b"0x10"), (16.0, 4));
        assert_eq!(strtod(b"0x1p4"), (16.0, 5));
        assert_eq!(strtod(b"-Infinity"), (f64::NEG_INFINITY, 9));
        assert_eq!(strtod(b"."), (0.0, 0));
        assert_eq!(strtod(b""), (0.0, 0));
        assert!(strtod(b"nan").0.is_nan());
        assert_eq!(strtod(b"1e400").0, f64::INFINITY);
        assert!(parse_score_range(b"(1", b"+inf").is_some());
        assert!(parse_score_range(b"nan", b"1").is_none());
        assert!(parse_score_range(b"1 ", b"1").is_none());
        assert!(parse_score_range(b"", b"(").is_some());
    }

    #[test]
    fn packed_entries_round_trip() {
        let mut p = Pack::default();
        // Integers, f32-exact values (1.5, inf, 2^-20, 2^30+0.5 is not),
        // and full doubles.
        let scores = [
            0.0,
            -0.0,
            1.5,
            -7.0,
            1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            4.5e18,
            -1e-300,
            0.1,
            9.5367431640625e-7,
            1073741824.5,
            -3.25,
            f32::MAX as f64,
            f32::MIN_POSITIVE as f64 / 2.0,
        ];
        for (i, s) in scores.iter().enumerate() {
            p.insert(*s, format!("k{i}").as_bytes());
        }
        for (i, s) in scores.iter().enumerate() {
            let got = p.find(format!("k{i}").as_bytes()).map(|x| x.2);
            assert_eq!(got, Some(*s));
        }
    }
}
