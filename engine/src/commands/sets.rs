//! Set commands (Redis 7.0's `t_set.c`): SADD, SREM, SPOP, SRANDMEMBER,
//! SMOVE, the SINTER/SUNION/SDIFF families, SINTERCARD and SSCAN.
//!
//! # Representation
//!
//! Redis 7.0 has two set encodings (no listpack sets yet) and this follows
//! it, switching at the same points so OBJECT ENCODING and reply order
//! match:
//!
//! - [`IntSet`] ("intset") while every member is the canonical decimal form
//!   of an i64 (Redis's `string2ll`) and there are at most
//!   `set-max-intset-entries` members. Like Redis's intset it is a sorted
//!   array of the narrowest integer width that holds every member (16, 32
//!   or 64 bits, upgraded as needed, never downgraded), boxed to its exact
//!   length: a set of ten small integers is one 20-byte allocation.
//!   Members are iterated in ascending numeric order.
//! - [`SetTable`] ("hashtable") otherwise: the engine's seeded [`Dict`],
//!   whose order is, as in Redis, unspecified. A set never converts back.
//!
//! Algorithms follow Redis's structure (SPOP's and SRANDMEMBER's cases,
//! SDIFF's two algorithms, the temporary intset that collects results) since
//! they decide the encoding of stored results and the order of replies.

use super::hashes::{parse_scan_options, reply_empty_scan, scan_dict};
use super::keys::parse_cursor;
use super::Lookup;
use crate::command::Handler;
use crate::db::{Entry, Value};
use crate::dict::{Dict, Key};
use crate::node::{Ctx, Node};
use crate::notify::{GENERIC, SET};
use crate::resp::{parse_i64, ReplyBuf};
use bytes::Bytes;
use rand_core::RngCore;

/// SPOP's CASE 3 threshold (`SPOP_MOVE_STRATEGY_MUL`).
const SPOP_MOVE_STRATEGY_MUL: u64 = 5;
/// SRANDMEMBER's CASE 3 threshold (`SRANDMEMBER_SUB_STRATEGY_MUL`).
const SRANDMEMBER_SUB_STRATEGY_MUL: u64 = 3;

// ---------------------------------------------------------------------------
// IntSet
// ---------------------------------------------------------------------------

/// Redis's intset width (`INTSET_ENC_INT16/32/64`): the narrowest integer
/// type that held every member so far. It only grows, as in Redis, and it
/// is what DUMP and RDB files show; the members are not stored in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Width {
    W16 = 2,
    W32 = 4,
    W64 = 8,
}

impl Width {
    /// `_intsetValueEncoding`.
    pub fn of(v: i64) -> Width {
        if i16::try_from(v).is_ok() {
            Width::W16
        } else if i32::try_from(v).is_ok() {
            Width::W32
        } else {
            Width::W64
        }
    }

    /// Bytes per member in Redis's blob (2, 4 or 8).
    pub fn bytes(self) -> usize {
        self as usize
    }
}

/// Bytes per stored offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum OffWidth {
    B1 = 1,
    B2 = 2,
    B4 = 4,
    B8 = 8,
}

impl OffWidth {
    fn of(d: u64) -> OffWidth {
        if d <= u8::MAX as u64 {
            OffWidth::B1
        } else if d <= u16::MAX as u64 {
            OffWidth::B2
        } else if d <= u32::MAX as u64 {
            OffWidth::B4
        } else {
            OffWidth::B8
        }
    }
}

/// A sorted set of distinct integers (Redis's `intset`).
///
/// Stored as the smallest member (`base`) plus each member's distance from
/// it, in the narrowest of 1, 2, 4 or 8 bytes that holds the largest
/// distance, rather than in Redis's width: members that lie close together
/// (ids, counters) then cost one or two bytes each. A set of ten integers
/// below ten million is one 16-byte allocation instead of Redis's 48.
/// Widely spread members cost what Redis's intset costs. Redis's width is
/// kept beside it for DUMP and RDB.
///
/// The two widths live in a header byte at the start of `offs`, not in
/// fields: 24 bytes instead of 32 keeps `Value` at 32 bytes and so the
/// keyspace node in jemalloc's 64-byte class (db.rs).
#[derive(Clone)]
pub struct IntSet {
    base: i64,
    /// Empty (the default: width 16, no members), or a header byte
    /// ([`IntSet::meta`]) followed by the little-endian distances from
    /// `base`, ascending, of the offset width each.
    offs: Box<[u8]>,
}

impl Default for IntSet {
    fn default() -> IntSet {
        IntSet {
            base: 0,
            offs: Box::new([]),
        }
    }
}

impl std::fmt::Debug for IntSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntSet")
            .field("width", &self.width())
            .field("members", &self.iter().collect::<Vec<_>>())
            .finish()
    }
}

impl IntSet {
    /// The header byte: Redis's width in the low nibble, the offset width
    /// in the high one (both as byte counts).
    fn header(width: Width, off: OffWidth) -> u8 {
        width as u8 | (off as u8) << 4
    }

    /// Redis's width and the offset width.
    fn meta(&self) -> (Width, OffWidth) {
        let Some(&h) = self.offs.first() else {
            return (Width::W16, OffWidth::B1);
        };
        let width = match h & 0x0f {
            2 => Width::W16,
            4 => Width::W32,
            _ => Width::W64,
        };
        let off = match h >> 4 {
            1 => OffWidth::B1,
            2 => OffWidth::B2,
            4 => OffWidth::B4,
            _ => OffWidth::B8,
        };
        (width, off)
    }

    /// The distances, after the header byte.
    #[inline]
    fn data(&self) -> &[u8] {
        self.offs.get(1..).unwrap_or(&[])
    }

    #[inline]
    fn off(&self) -> OffWidth {
        self.meta().1
    }

    /// An intset of `members` (sorted ascending, distinct) with Redis width
    /// at least `width` (RDB and DUMP keep the width they find).
    pub fn from_sorted(width: Width, members: &[i64]) -> IntSet {
        let width = members
            .iter()
            .map(|&v| Width::of(v))
            .fold(width, Width::max);
        let (Some(&lo), Some(&hi)) = (members.first(), members.last()) else {
            let offs: Box<[u8]> = if width == Width::W16 {
                Box::new([])
            } else {
                Box::new([IntSet::header(width, OffWidth::B1)])
            };
            return IntSet { base: 0, offs };
        };
        let off = OffWidth::of(hi.wrapping_sub(lo) as u64);
        let n = off as usize;
        let mut offs = Vec::with_capacity(1 + members.len() * n);
        offs.push(IntSet::header(width, off));
        for &v in members {
            offs.extend_from_slice(&(v.wrapping_sub(lo) as u64).to_le_bytes()[..n]);
        }
        IntSet {
            base: lo,
            offs: offs.into_boxed_slice(),
        }
    }

    /// Redis's width for this set.
    pub fn width(&self) -> Width {
        self.meta().0
    }

    pub fn len(&self) -> usize {
        self.data().len() / self.off() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.data().is_empty()
    }

    #[inline]
    fn off_at(&self, i: usize) -> u64 {
        let n = self.off() as usize;
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&self.data()[i * n..(i + 1) * n]);
        u64::from_le_bytes(b)
    }

    /// The `i`th smallest member.
    pub fn get(&self, i: usize) -> Option<i64> {
        (i < self.len()).then(|| self.base.wrapping_add(self.off_at(i) as i64))
    }

    /// Position of `v`, or where it would go.
    fn search(&self, v: i64) -> Result<usize, usize> {
        if v < self.base {
            return Err(0);
        }
        let d = v.wrapping_sub(self.base) as u64;
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.off_at(mid).cmp(&d) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    pub fn contains(&self, v: i64) -> bool {
        !self.is_empty() && self.search(v).is_ok()
    }

    /// Adds `v`; false if it was already there.
    pub fn insert(&mut self, v: i64) -> bool {
        if self.is_empty() {
            *self = IntSet::from_sorted(self.width(), &[v]);
            return true;
        }
        let Err(pos) = self.search(v) else {
            return false;
        };
        let (width, off) = self.meta();
        let width = width.max(Width::of(v));
        let last = self.get(self.len() - 1).unwrap_or(v).max(v);
        if v < self.base || OffWidth::of(last.wrapping_sub(self.base) as u64) > off {
            // A new smallest member or a wider distance: re-encode.
            let mut all: Vec<i64> = self.iter().collect();
            all.insert(pos, v);
            *self = IntSet::from_sorted(width, &all);
            return true;
        }
        let n = off as usize;
        let data = self.data();
        let mut offs = Vec::with_capacity(self.offs.len() + n);
        offs.push(IntSet::header(width, off));
        offs.extend_from_slice(&data[..pos * n]);
        offs.extend_from_slice(&(v.wrapping_sub(self.base) as u64).to_le_bytes()[..n]);
        offs.extend_from_slice(&data[pos * n..]);
        self.offs = offs.into_boxed_slice();
        true
    }

    /// Removes `v`; false if it was not there. The width stays, as Redis's.
    pub fn remove(&mut self, v: i64) -> bool {
        if self.is_empty() {
            return false;
        }
        let Ok(pos) = self.search(v) else {
            return false;
        };
        let n = self.off() as usize;
        let data = self.data();
        let mut offs = Vec::with_capacity(self.offs.len() - n);
        offs.push(self.offs[0]);
        offs.extend_from_slice(&data[..pos * n]);
        offs.extend_from_slice(&data[(pos + 1) * n..]);
        self.offs = offs.into_boxed_slice();
        true
    }

    /// Members in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        let (n, base) = (self.off() as usize, self.base);
        self.data().chunks_exact(n).map(move |c| {
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(c);
            base.wrapping_add(u64::from_le_bytes(b) as i64)
        })
    }
}

// ---------------------------------------------------------------------------
// Set
// ---------------------------------------------------------------------------

/// The "hashtable" encoding: a seeded [`Dict`] (boxed so a [`Set`] stays
/// small). The seed is kept so a copy (COPY) needs no fresh randomness.
pub struct SetTable {
    dict: Dict<()>,
    seed: [u64; 2],
}

impl SetTable {
    fn new(rng: &mut impl RngCore) -> SetTable {
        let seed = [rng.next_u64(), rng.next_u64()];
        SetTable {
            dict: Dict::new(seed),
            seed,
        }
    }

    fn insert(&mut self, m: &[u8]) -> bool {
        if self.dict.contains_key(m) {
            return false;
        }
        self.dict.insert(Key::from(m), ());
        true
    }
}

impl Clone for SetTable {
    fn clone(&self) -> SetTable {
        let mut dict = Dict::new(self.seed);
        for (k, _) in self.dict.iter() {
            dict.insert(Key::from(k), ());
        }
        SetTable {
            dict,
            seed: self.seed,
        }
    }
}

impl std::fmt::Debug for SetTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetTable")
            .field("len", &self.dict.len())
            .finish()
    }
}

/// A set value in one of Redis 7.0's two encodings (see the module docs).
#[derive(Debug, Clone)]
pub enum Set {
    Int(IntSet),
    Table(Box<SetTable>),
}

impl Default for Set {
    fn default() -> Set {
        Set::Int(IntSet::default())
    }
}

/// A member as a set yields it: an intset integer or table bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl Member<'_> {
    fn reply(&self, out: &mut ReplyBuf) {
        match self {
            Member::Int(n) => out.bulk_int(*n),
            Member::Bytes(b) => out.bulk(b),
        }
    }

    fn to_owned(self) -> Owned {
        match self {
            Member::Int(n) => Owned::Int(n),
            Member::Bytes(b) => Owned::Bytes(Bytes::copy_from_slice(b)),
        }
    }

    fn to_bytes(self) -> Bytes {
        match self {
            Member::Int(n) => Bytes::copy_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            Member::Bytes(b) => Bytes::copy_from_slice(b),
        }
    }
}

/// An owned [`Member`], for members kept while their set changes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owned {
    Int(i64),
    Bytes(Bytes),
}

impl Owned {
    fn as_member(&self) -> Member<'_> {
        match self {
            Owned::Int(n) => Member::Int(*n),
            Owned::Bytes(b) => Member::Bytes(b),
        }
    }
}

/// Iterator over the members of either encoding.
pub enum SetIter<'a> {
    Int(&'a IntSet, usize),
    Table(crate::dict::Iter<'a, ()>),
}

impl<'a> Iterator for SetIter<'a> {
    type Item = Member<'a>;
    fn next(&mut self) -> Option<Member<'a>> {
        match self {
            SetIter::Int(s, i) => {
                let v = s.get(*i)?;
                *i += 1;
                Some(Member::Int(v))
            }
            SetIter::Table(it) => it.next().map(|(k, _)| Member::Bytes(k)),
        }
    }
}

/// set-max-intset-entries, capped as Redis caps it (intset internals).
pub fn max_intset_entries(c: &crate::config::Config) -> u64 {
    (c.set_max_intset_entries.max(0) as u64).min(1 << 30)
}

impl Set {
    /// OBJECT ENCODING's name for the current representation.
    pub fn encoding_name(&self) -> &'static str {
        match self {
            Set::Int(_) => "intset",
            Set::Table(_) => "hashtable",
        }
    }

    /// Redis's `setTypeCreate`: an empty set that can hold `first`.
    pub fn for_member(first: &[u8], rng: &mut impl RngCore) -> Set {
        if parse_i64(first).is_some() {
            Set::Int(IntSet::default())
        } else {
            Set::Table(Box::new(SetTable::new(rng)))
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Set::Int(s) => s.len(),
            Set::Table(t) => t.dict.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> SetIter<'_> {
        match self {
            Set::Int(s) => SetIter::Int(s, 0),
            Set::Table(t) => SetIter::Table(t.dict.iter()),
        }
    }

    /// Converts an intset to a hash table (`setTypeConvert`).
    pub fn convert(&mut self, rng: &mut impl RngCore) {
        if let Set::Int(s) = self {
            let mut t = SetTable::new(rng);
            let mut buf = itoa::Buffer::new();
            for v in s.iter() {
                t.dict.insert(Key::from(buf.format(v).as_bytes()), ());
            }
            *self = Set::Table(Box::new(t));
        }
    }

    /// Redis's `setTypeAdd`: true if the member is new. `max_intset` is
    /// [`max_intset_entries`].
    pub fn add(&mut self, m: &[u8], max_intset: u64, rng: &mut impl RngCore) -> bool {
        match self {
            Set::Int(_) => match parse_i64(m) {
                Some(n) => self.add_int(n, max_intset, rng),
                None => {
                    self.convert(rng);
                    self.add(m, max_intset, rng)
                }
            },
            Set::Table(t) => t.insert(m),
        }
    }

    fn add_int(&mut self, n: i64, max_intset: u64, rng: &mut impl RngCore) -> bool {
        match self {
            Set::Int(s) => {
                if !s.insert(n) {
                    return false;
                }
                if s.len() as u64 > max_intset {
                    self.convert(rng);
                }
                true
            }
            Set::Table(t) => t.insert(itoa::Buffer::new().format(n).as_bytes()),
        }
    }

    /// Adds a member taken from another set.
    fn add_member(&mut self, m: Member<'_>, max_intset: u64, rng: &mut impl RngCore) -> bool {
        match m {
            Member::Int(n) => self.add_int(n, max_intset, rng),
            Member::Bytes(b) => self.add(b, max_intset, rng),
        }
    }

    /// Redis's `setTypeRemove`: true if it was a member.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            Set::Int(s) => parse_i64(m).is_some_and(|n| s.remove(n)),
            Set::Table(t) => t.dict.remove(m).is_some(),
        }
    }

    fn remove_member(&mut self, m: Member<'_>) -> bool {
        match (self, m) {
            (Set::Int(s), Member::Int(n)) => s.remove(n),
            (this, Member::Int(n)) => this.remove(itoa::Buffer::new().format(n).as_bytes()),
            (this, Member::Bytes(b)) => this.remove(b),
        }
    }

    /// Redis's `setTypeIsMember`.
    pub fn contains(&self, m: &[u8]) -> bool {
        match self {
            Set::Int(s) => parse_i64(m).is_some_and(|n| s.contains(n)),
            Set::Table(t) => t.dict.contains_key(m),
        }
    }

    fn contains_member(&self, m: Member<'_>) -> bool {
        match (self, m) {
            (Set::Int(s), Member::Int(n)) => s.contains(n),
            (Set::Table(t), Member::Int(n)) => t
                .dict
                .contains_key(itoa::Buffer::new().format(n).as_bytes()),
            (this, Member::Bytes(b)) => this.contains(b),
        }
    }

    /// A random member (Redis's `setTypeRandomElement`), None if empty.
    pub fn random(&self, rng: &mut impl RngCore) -> Option<Member<'_>> {
        match self {
            Set::Int(s) => {
                if s.is_empty() {
                    return None;
                }
                s.get((rng.next_u64() % s.len() as u64) as usize)
                    .map(Member::Int)
            }
            Set::Table(t) => t.dict.random_entry(rng).map(|(k, _)| Member::Bytes(k)),
        }
    }
}

// ---------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

/// This module's commands, by lowercase name.
pub fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "sadd" => sadd,
        "srem" => srem,
        "smembers" => sinter,
        "sismember" => sismember,
        "smismember" => smismember,
        "scard" => scard,
        "spop" => spop,
        "srandmember" => srandmember,
        "smove" => smove,
        "sinter" => sinter,
        "sintercard" => sintercard,
        "sinterstore" => sinterstore,
        "sunion" => sunion,
        "sunionstore" => sunionstore,
        "sdiff" => sdiff,
        "sdiffstore" => sdiffstore,
        "sscan" => sscan,
        _ => return None,
    })
}

/// SADD key member [member ...]: the number added.
pub fn sadd(cx: &mut Ctx) {
    let db = cx.client.db;
    let argv = cx.argv;
    let key = &argv[1];
    let max = max_intset_entries(&cx.node.config);
    let exists = match cx.node.write_typed::<Set>(db, key) {
        Lookup::WrongType => return cx.wrongtype(),
        Lookup::Missing => false,
        Lookup::Found(_) => true,
    };
    let mut added = 0;
    if exists {
        let Some((s, rng)) = cx.node.typed_and_rng::<Set>(db, key) else {
            return;
        };
        for m in &argv[2..] {
            if s.add(m, max, rng) {
                added += 1;
            }
        }
    } else {
        let rng = &mut cx.node.rng;
        let mut s = Set::for_member(&argv[2], rng);
        for m in &argv[2..] {
            if s.add(m, max, rng) {
                added += 1;
            }
        }
        let lru = cx.lru_now();
        cx.db().set(Bytes::copy_from_slice(key), Value::Set(s), lru);
    }
    if added > 0 {
        cx.notify(SET, "sadd", key);
    }
    cx.dirty(added as u64);
    cx.out().int(added);
}

/// SREM key member [member ...]: the number removed; an emptied set is
/// deleted.
pub fn srem(cx: &mut Ctx) {
    let db = cx.client.db;
    let argv = cx.argv;
    let key = &argv[1];
    let s = match cx.node.write_typed::<Set>(db, key) {
        Lookup::Missing => return cx.out().int(0),
        Lookup::WrongType => return cx.wrongtype(),
        Lookup::Found(s) => s,
    };
    let mut deleted = 0;
    let mut emptied = false;
    for m in &argv[2..] {
        if s.remove(m) {
            deleted += 1;
            if s.is_empty() {
                emptied = true;
                break;
            }
        }
    }
    if deleted > 0 {
        cx.notify(SET, "srem", key);
    }
    if emptied {
        cx.delete_key(key);
        cx.notify(GENERIC, "del", key);
    }
    cx.dirty(deleted as u64);
    cx.out().int(deleted);
}

/// SMOVE source destination member
pub fn smove(cx: &mut Ctx) {
    let db = cx.client.db;
    let argv = cx.argv;
    let (src, dst, ele) = (&argv[1], &argv[2], &argv[3]);
    let src_state = match cx.node.write_typed::<Set>(db, src) {
        Lookup::Missing => None,
        Lookup::WrongType => Some(false),
        Lookup::Found(_) => Some(true),
    };
    let dst_state = match cx.node.write_typed::<Set>(db, dst) {
        Lookup::Missing => None,
        Lookup::WrongType => Some(false),
        Lookup::Found(_) => Some(true),
    };
    let Some(src_ok) = src_state else {
        return cx.out().int(0);
    };
    if !src_ok || dst_state == Some(false) {
        return cx.wrongtype();
    }
    let max = max_intset_entries(&cx.node.config);
    let Some((s, _)) = cx.node.typed_and_rng::<Set>(db, src) else {
        return;
    };
    if src == dst {
        let n = s.contains(ele) as i64;
        return cx.out().int(n);
    }
    if !s.remove(ele) {
        return cx.out().int(0);
    }
    let emptied = s.is_empty();
    cx.notify(SET, "srem", src);
    if emptied {
        cx.delete_key(src);
        cx.notify(GENERIC, "del", src);
    }
    let mut dirty = 1;
    match cx.node.typed_and_rng::<Set>(db, dst) {
        Some((d, rng)) => {
            if d.add(ele, max, rng) {
                dirty += 1;
            }
        }
        None => {
            let rng = &mut cx.node.rng;
            let mut d = Set::for_member(ele, rng);
            d.add(ele, max, rng);
            dirty += 1;
            let lru = cx.lru_now();
            cx.db().set(Bytes::copy_from_slice(dst), Value::Set(d), lru);
        }
    }
    if dirty > 1 {
        cx.notify(SET, "sadd", dst);
    }
    cx.dirty(dirty);
    cx.out().int(1);
}

/// SISMEMBER key member
pub fn sismember(cx: &mut Ctx) {
    let db = cx.client.db;
    let argv = cx.argv;
    let (key, m) = (&argv[1], &argv[2]);
    match cx.node.read_typed::<Set>(db, key) {
        Lookup::Missing => cx.client.reply.int(0),
        Lookup::Found(s) => {
            let n = s.contains(m) as i64;
            cx.client.reply.int(n)
        }
        Lookup::WrongType => cx.wrongtype(),
    }
}

/// SMISMEMBER key member [member ...]: 1 or 0 for each; a missing key is
/// an empty set.
pub fn smismember(cx: &mut Ctx) {
    let db = cx.client.db;
    let argv = cx.argv;
    let set = match cx.node.read_typed::<Set>(db, &argv[1]) {
        Lookup::Missing => None,
        Lookup::Found(s) => Some(s),
        Lookup::WrongType => return cx.wrongtype(),
    };
    let out = &mut cx.client.reply;
    out.array(argv.len() - 2);
    for m in &argv[2..] {
        out.int(set.as_ref().is_some_and(|s| s.contains(m)) as i64);
    }
}

/// SCARD key
pub fn scard(cx: &mut Ctx) {
    let db = cx.client.db;
    match cx.node.read_typed::<Set>(db, &cx.argv[1]) {
        Lookup::Missing => cx.client.reply.int(0),
        Lookup::Found(s) => {
            let n = s.len() as i64;
            cx.client.reply.int(n)
        }
        Lookup::WrongType => cx.wrongtype(),
    }
}

/// SPOP key [count]
pub fn spop(cx: &mut Ctx) {
    let argc = cx.argv.len();
    if argc == 3 {
        return spop_with_count(cx);
    } else if argc > 3 {
        return cx.syntax_error();
    }
    let db = cx.client.db;
    let argv = cx.argv;
    let key = &argv[1];
    match cx.node.write_typed::<Set>(db, key) {
        Lookup::Missing => return cx.client.reply.null(),
        Lookup::WrongType => return cx.wrongtype(),
        Lookup::Found(_) => {}
    }
    let Some((s, rng)) = cx.node.typed_and_rng::<Set>(db, key) else {
        return;
    };
    let Some(m) = s.random(rng).map(Member::to_owned) else {
        return cx.client.reply.null();
    };
    s.remove_member(m.as_member());
    let emptied = s.is_empty();
    cx.notify(SET, "spop", key);
    m.as_member().reply(&mut cx.client.reply);
    if emptied {
        cx.delete_key(key);
        cx.notify(GENERIC, "del", key);
    }
    cx.dirty(1);
    // The AOF logs which member went, not a random pop.
    if cx.node.aof.enabled {
        let srem = vec![
            Bytes::from_static(b"SREM"),
            key.clone(),
            m.as_member().to_bytes(),
        ];
        cx.node.propagate(db, srem);
    }
}

/// SPOP key count: Redis's `spopWithCountCommand`, case by case.
fn spop_with_count(cx: &mut Ctx) {
    let count = match parse_i64(&cx.argv[2]) {
        Some(n) if n >= 0 => n as u64,
        _ => return cx.error("ERR value is out of range, must be positive"),
    };
    let db = cx.client.db;
    let argv = cx.argv;
    let key = &argv[1];
    match cx.node.write_typed::<Set>(db, key) {
        Lookup::Missing => return cx.client.reply.set(0),
        Lookup::WrongType => return cx.wrongtype(),
        Lookup::Found(_) => {}
    }
    if count == 0 {
        return cx.client.reply.set(0);
    }
    let max = max_intset_entries(&cx.node.config);
    cx.notify(SET, "spop", key);
    // For the AOF: the members popped, logged as one SREM.
    let log = cx.node.aof.enabled;
    let Some((s, rng)) = cx.node.typed_and_rng::<Set>(db, key) else {
        return;
    };
    let size = s.len() as u64;
    let out = &mut cx.client.reply;
    let mut srem = vec![Bytes::from_static(b"SREM"), key.clone()];

    // CASE 1: the whole set, replied as SUNION would, then deleted.
    if count >= size {
        let mut all = Set::default();
        for m in s.iter() {
            all.add_member(m, max, rng);
        }
        reply_set(out, &all);
        cx.delete_key(key);
        cx.notify(GENERIC, "del", key);
        cx.dirty(size);
        if log {
            cx.node
                .propagate(db, vec![Bytes::from_static(b"DEL"), key.clone()]);
        }
        return;
    }

    out.set(count as usize);
    let remaining = size - count;
    if remaining * SPOP_MOVE_STRATEGY_MUL > count {
        // CASE 2: pop `count` random members one by one.
        for _ in 0..count {
            let Some(m) = s.random(rng).map(Member::to_owned) else {
                break;
            };
            m.as_member().reply(out);
            s.remove_member(m.as_member());
            if log {
                srem.push(m.as_member().to_bytes());
            }
        }
    } else {
        // CASE 3: move the `remaining` survivors to a new set, reply with
        // what is left in the old one, and keep the new one.
        let mut survivors: Option<Set> = None;
        for _ in 0..remaining {
            let Some(m) = s.random(rng).map(Member::to_bytes) else {
                break;
            };
            let n = survivors.get_or_insert_with(|| Set::for_member(&m, rng));
            n.add(&m, max, rng);
            s.remove(&m);
        }
        for m in s.iter() {
            m.reply(out);
            if log {
                srem.push(m.to_bytes());
            }
        }
        if let Some(n) = survivors {
            *s = n;
        }
    }
    cx.dirty(count);
    if log {
        cx.node.propagate(db, srem);
    }
}

/// Replies with a whole set (`~` in RESP3) in its iteration order.
fn reply_set(out: &mut ReplyBuf, s: &Set) {
    out.set(s.len());
    for m in s.iter() {
        m.reply(out);
    }
}

/// SRANDMEMBER key [count]
pub fn srandmember(cx: &mut Ctx) {
    let argc = cx.argv.len();
    if argc == 3 {
        return srandmember_with_count(cx);
    } else if argc > 3 {
        return cx.syntax_error();
    }
    let db = cx.client.db;
    let argv = cx.argv;
    let key = &argv[1];
    match cx.node.read_typed::<Set>(db, key) {
        Lookup::Missing => return cx.client.reply.null(),
        Lookup::WrongType => return cx.wrongtype(),
        Lookup::Found(_) => {}
    }
    let Some((s, rng)) = cx.node.typed_and_rng::<Set>(db, key) else {
        return;
    };
    match s.random(rng) {
        Some(m) => m.reply(&mut cx.client.reply),
        None => cx.client.reply.null(),
    }
}

/// SRANDMEMBER key count: Redis's `srandmemberWithCountCommand`.
fn srandmember_with_count(cx: &mut Ctx) {
    let l = match parse_i64(&cx.argv[2]) {
        None => return cx.error("ERR value is not an integer or out of range"),
        Some(i64::MIN) => {
            return cx.error(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            )
        }
        Some(n) => n,
    };
    let (count, uniq) = if l >= 0 {
        (l as u64, true)
    } else {
        (l.unsigned_abs(), false)
    };
    let db = cx.client.db;
    let argv = cx.argv;
    let key = &argv[1];
    match cx.node.read_typed::<Set>(db, key) {
        Lookup::Missing => return cx.client.reply.array(0),
        Lookup::WrongType => return cx.wrongtype(),
        Lookup::Found(_) => {}
    }
    if count == 0 {
        return cx.client.reply.array(0);
    }
    let Some((s, rng)) = cx.node.typed_and_rng::<Set>(db, key) else {
        return;
    };
    let size = s.len() as u64;
    let out = &mut cx.client.reply;
    if size == 0 {
        // Never stored (emptied sets are deleted); reply as if missing.
        return out.array(0);
    }

    // CASE 1: negative count (repeats allowed) or a single member.
    if !uniq || count == 1 {
        out.array(count as usize);
        for _ in 0..count {
            let Some(m) = s.random(rng) else {
                return;
            };
            m.reply(out);
        }
        return;
    }

    // CASE 2: the whole set, in its order.
    if count >= size {
        out.array(size as usize);
        for m in s.iter() {
            m.reply(out);
        }
        return;
    }

    let mut d: Dict<()> = Dict::new([rng.next_u64(), rng.next_u64()]);
    if count * SRANDMEMBER_SUB_STRATEGY_MUL > size {
        // CASE 3: copy everything, then remove random members down to count.
        for m in s.iter() {
            d.insert(m.to_bytes().to_vec(), ());
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
    } else {
        // CASE 4: collect distinct random members until there are count.
        let mut added = 0;
        while added < count {
            let Some(m) = s.random(rng) else {
                break;
            };
            let b = m.to_bytes();
            if !d.contains_key(&b) {
                d.insert(b.to_vec(), ());
                added += 1;
            }
        }
    }
    out.array(d.len());
    for (k, _) in d.iter() {
        out.bulk(k);
    }
}

/// The sets named by `keys`, looked up for reading (stats, expiry). Missing
/// keys are None. Replies WRONGTYPE and returns None if any key holds
/// another type.
fn check_sets(cx: &mut Ctx, keys: &[Bytes]) -> Option<Vec<bool>> {
    let db = cx.client.db;
    let mut present = Vec::with_capacity(keys.len());
    for k in keys {
        match cx.node.read_typed::<Set>(db, k) {
            Lookup::Missing => present.push(false),
            Lookup::Found(_) => present.push(true),
            Lookup::WrongType => {
                cx.wrongtype();
                return None;
            }
        }
    }
    Some(present)
}

/// Stores `result` at `dst` (replacing any value and TTL) and replies with
/// its size; an empty result deletes `dst` and replies 0.
fn store_result(cx: &mut Ctx, dst: &Bytes, result: Set) {
    if result.is_empty() {
        cx.out().int(0);
        if cx.delete_key(dst) {
            cx.dirty(1);
            cx.notify(GENERIC, "del", dst);
        }
    } else {
        let n = result.len() as i64;
        // setKey's lookupKeyWrite: an expired destination counts as expired.
        let _ = cx.lookup_write(dst);
        let lru = cx.lru_now();
        cx.db()
            .set(Bytes::copy_from_slice(dst), Value::Set(result), lru);
        cx.out().int(n);
        // The command's name is the event: sinterstore, sunionstore, sdiffstore.
        let event = cx.cmd.name.as_str();
        cx.notify(SET, event, dst);
        cx.dirty(1);
    }
}

/// What SINTER and friends do with the intersection.
#[derive(Clone, Copy, PartialEq)]
enum InterMode {
    Reply,
    Store,
    /// SINTERCARD, with its LIMIT (0: none).
    Card(u64),
}

/// Redis's `sinterGenericCommand`: SINTER, SMEMBERS, SINTERSTORE and
/// SINTERCARD.
fn sinter_generic(cx: &mut Ctx, keys: &[Bytes], dst: Option<&Bytes>, mode: InterMode) {
    let Some(present) = check_sets(cx, keys) else {
        return;
    };
    if present.contains(&false) {
        match (mode, dst) {
            (InterMode::Store, Some(d)) => store_result(cx, d, Set::default()),
            (InterMode::Card(_), _) => cx.out().int(0),
            _ => cx.out().set(0),
        }
        return;
    }
    let max = max_intset_entries(&cx.node.config);
    let db = cx.client.db;
    let Node { dbs, rng, .. } = &mut *cx.node;
    let d = &dbs[db];
    let mut sets: Vec<&Set> = keys
        .iter()
        .filter_map(|k| match d.keys.get(k) {
            Some(Entry {
                value: Value::Set(s),
                ..
            }) => Some(s),
            _ => None,
        })
        .collect();
    if sets.len() != keys.len() {
        // Unreachable: every key was just found to hold a set.
        sets.clear();
    }
    // Smallest first; stable, as glibc's merge sort is for Redis's qsort.
    sets.sort_by_key(|s| s.len());
    let mut found: Vec<Member<'_>> = Vec::new();
    let mut stored = Set::default();
    let mut cardinality: u64 = 0;
    let empty = Set::default();
    let first = sets.first().copied().unwrap_or(&empty);
    for m in first.iter() {
        let in_all = sets
            .iter()
            .skip(1)
            .all(|s| std::ptr::eq(*s, first) || s.contains_member(m));
        if !in_all {
            continue;
        }
        match mode {
            InterMode::Card(limit) => {
                cardinality += 1;
                if limit != 0 && cardinality >= limit {
                    break;
                }
            }
            InterMode::Reply => found.push(m),
            InterMode::Store => {
                stored.add_member(m, max, rng);
            }
        }
    }
    match (mode, dst) {
        (InterMode::Card(_), _) => cx.client.reply.int(cardinality as i64),
        (InterMode::Reply, _) => {
            let out = &mut cx.client.reply;
            out.set(found.len());
            for m in found {
                m.reply(out);
            }
        }
        (InterMode::Store, Some(d)) => store_result(cx, d, stored),
        (InterMode::Store, None) => {}
    }
}

/// SINTER key [key ...] and SMEMBERS key
pub fn sinter(cx: &mut Ctx) {
    let argv = cx.argv;
    sinter_generic(cx, &argv[1..], None, InterMode::Reply);
}

/// SINTERSTORE destination key [key ...]
pub fn sinterstore(cx: &mut Ctx) {
    let argv = cx.argv;
    sinter_generic(cx, &argv[2..], Some(&argv[1]), InterMode::Store);
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
pub fn sintercard(cx: &mut Ctx) {
    let argv = cx.argv;
    let numkeys = match parse_i64(&argv[1]) {
        Some(n) if n >= 1 => n as u64,
        _ => return cx.error("ERR numkeys should be greater than 0"),
    };
    if numkeys > (argv.len() - 2) as u64 {
        return cx.error("ERR Number of keys can't be greater than number of args");
    }
    let numkeys = numkeys as usize;
    let mut limit = 0;
    let mut j = 2 + numkeys;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if cx.arg_is(j, "limit") && more > 0 {
            j += 1;
            match parse_i64(&argv[j]) {
                Some(n) if n >= 0 => limit = n as u64,
                _ => return cx.error("ERR LIMIT can't be negative"),
            }
        } else {
            return cx.syntax_error();
        }
        j += 1;
    }
    sinter_generic(cx, &argv[2..2 + numkeys], None, InterMode::Card(limit));
}

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Diff,
}

/// Redis's `sunionDiffGenericCommand`: SUNION, SDIFF and their STORE forms.
/// The result is collected in a set that starts as an intset, which decides
/// its encoding (when stored) and its order (when replied).
fn sunion_diff_generic(cx: &mut Ctx, keys: &[Bytes], dst: Option<&Bytes>, op: SetOp) {
    if check_sets(cx, keys).is_none() {
        return;
    }
    let max = max_intset_entries(&cx.node.config);
    let db = cx.client.db;
    let Node { dbs, rng, .. } = &mut *cx.node;
    let d = &dbs[db];
    let sets: Vec<Option<&Set>> = keys
        .iter()
        .map(|k| match d.keys.get(k) {
            Some(Entry {
                value: Value::Set(s),
                ..
            }) => Some(s),
            _ => None,
        })
        .collect();
    let same = |a: Option<&Set>, b: Option<&Set>| match (a, b) {
        (Some(a), Some(b)) => std::ptr::eq(a, b),
        _ => false,
    };
    let first_set = sets.first().copied().flatten();
    let sameset = sets.iter().skip(1).any(|s| same(first_set, *s));
    let mut result = Set::default();
    match op {
        SetOp::Union => {
            for s in sets.iter().flatten() {
                for m in s.iter() {
                    result.add_member(m, max, rng);
                }
            }
        }
        // A set minus itself is empty.
        SetOp::Diff if sameset => {}
        SetOp::Diff => {
            if let Some(first) = first_set {
                // Redis picks the cheaper of two algorithms; they differ in
                // what passes through the result set, hence its encoding.
                let mut algo_one: u64 = 0;
                let mut algo_two: u64 = 0;
                for s in sets.iter().flatten() {
                    algo_one += first.len() as u64;
                    algo_two += s.len() as u64;
                }
                algo_one /= 2;
                if algo_one <= algo_two {
                    for m in first.iter() {
                        if !sets.iter().skip(1).flatten().any(|s| s.contains_member(m)) {
                            result.add_member(m, max, rng);
                        }
                    }
                } else {
                    for m in first.iter() {
                        result.add_member(m, max, rng);
                    }
                    for s in sets.iter().skip(1).flatten() {
                        if result.is_empty() {
                            break;
                        }
                        for m in s.iter() {
                            result.remove_member(m);
                        }
                    }
                }
            }
        }
    }
    match dst {
        None => reply_set(&mut cx.client.reply, &result),
        Some(d) => store_result(cx, d, result),
    }
}

/// SUNION key [key ...]
pub fn sunion(cx: &mut Ctx) {
    let argv = cx.argv;
    sunion_diff_generic(cx, &argv[1..], None, SetOp::Union);
}

/// SUNIONSTORE destination key [key ...]
pub fn sunionstore(cx: &mut Ctx) {
    let argv = cx.argv;
    sunion_diff_generic(cx, &argv[2..], Some(&argv[1]), SetOp::Union);
}

/// SDIFF key [key ...]
pub fn sdiff(cx: &mut Ctx) {
    let argv = cx.argv;
    sunion_diff_generic(cx, &argv[1..], None, SetOp::Diff);
}

/// SDIFFSTORE destination key [key ...]
pub fn sdiffstore(cx: &mut Ctx) {
    let argv = cx.argv;
    sunion_diff_generic(cx, &argv[2..], Some(&argv[1]), SetOp::Diff);
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]: an intset is returned
/// whole with cursor 0, a table bucket by bucket.
pub fn sscan(cx: &mut Ctx) {
    let Some(cursor) = parse_cursor(&cx.argv[2]) else {
        return cx.error("ERR invalid cursor");
    };
    let db = cx.client.db;
    match cx.node.read_typed::<Set>(db, &cx.argv[1]) {
        Lookup::Missing => return reply_empty_scan(cx),
        Lookup::WrongType => return cx.wrongtype(),
        Lookup::Found(_) => {}
    }
    let Some((count, pattern)) = parse_scan_options(cx, 3) else {
        return;
    };
    let Some((s, _)) = cx.node.typed_and_rng::<Set>(db, &cx.argv[1]) else {
        return;
    };
    let mut items: Vec<Bytes> = Vec::new();
    let next = match &*s {
        Set::Int(_) => {
            items.extend(s.iter().map(Member::to_bytes));
            0
        }
        Set::Table(t) => scan_dict(&t.dict, cursor, count, 1, |k, _| {
            items.push(Bytes::copy_from_slice(k))
        }),
    };
    if let Some(p) = &pattern {
        items.retain(|m| crate::glob::matches(p, m, false));
    }
    let out = &mut cx.client.reply;
    out.array(2);
    out.bulk(itoa::Buffer::new().format(next).as_bytes());
    out.array(items.len());
    for m in items {
        out.bulk(&m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    fn members(s: &Set) -> Vec<Vec<u8>> {
        s.iter().map(|m| m.to_bytes().to_vec()).collect()
    }

    #[test]
    fn intset_sorted_and_upgrades_width() {
        let mut s = IntSet::default();
        for v in [5, -3, 100, 5, 0] {
            s.insert(v);
        }
        assert_eq!(s.width(), Width::W16);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![-3, 0, 5, 100]);
        assert!(s.insert(70000));
        assert_eq!(s.width(), Width::W32);
        assert!(s.insert(i64::MIN));
        assert_eq!(s.width(), Width::W64);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![i64::MIN, -3, 0, 5, 100, 70000]
        );
        assert!(s.contains(70000));
        assert!(!s.contains(70001));
        assert!(s.remove(i64::MIN));
        assert!(!s.remove(i64::MIN));
        // Never downgraded, like Redis.
        assert_eq!(s.width(), Width::W64);
        let mut w16 = IntSet::default();
        w16.insert(1);
        assert!(!w16.contains(1 << 40));
        assert!(!w16.remove(1 << 40));
    }

    #[test]
    fn encoding_follows_members_and_threshold() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut s = Set::for_member(b"1", &mut rng);
        assert_eq!(s.encoding_name(), "intset");
        for m in ["3", "1", "2"] {
            s.add(m.as_bytes(), 3, &mut rng);
        }
        assert_eq!(s.encoding_name(), "intset");
        assert_eq!(
            members(&s),
            vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]
        );
        // Non-canonical integers are strings.
        let mut t = s.clone();
        t.add(b"01", 3, &mut rng);
        assert_eq!(t.encoding_name(), "hashtable");
        assert!(t.contains(b"01") && t.contains(b"1") && !t.contains(b"4"));
        // Over the threshold.
        s.add(b"4", 3, &mut rng);
        assert_eq!(s.encoding_name(), "hashtable");
        s.remove(b"4");
        assert_eq!(s.encoding_name(), "hashtable");
        assert!(s.contains_member(Member::Int(3)));
        assert_eq!(Set::for_member(b"a", &mut rng).encoding_name(), "hashtable");
        let mut z = Set::default();
        z.add(b"7", 0, &mut rng);
        assert_eq!(z.encoding_name(), "hashtable");
    }

    #[test]
    fn randomness_is_deterministic_for_a_seed() {
        let run = || {
            let mut rng = ChaCha8Rng::seed_from_u64(42);
            let mut s = Set::default();
            for i in 0..50 {
                s.add(format!("m{i}").as_bytes(), 512, &mut rng);
            }
            let picks: Vec<Vec<u8>> = (0..20)
                .filter_map(|_| s.random(&mut rng).map(|m| m.to_bytes().to_vec()))
                .collect();
            (picks, members(&s))
        };
        assert_eq!(run(), run());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut s = Set::default();
        for i in 0..10 {
            s.add(i.to_string().as_bytes(), 512, &mut rng);
        }
        let a: Vec<i64> = (0..10)
            .filter_map(|_| match s.random(&mut rng) {
                Some(Member::Int(n)) => Some(n),
                _ => None,
            })
            .collect();
        assert_eq!(a.len(), 10);
        assert!(a.iter().all(|n| (0..10).contains(n)));
    }

    #[test]
    fn copies_keep_members() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut s = Set::default();
        for i in 0..100 {
            s.add(format!("x{i}").as_bytes(), 512, &mut rng);
        }
        let mut a = members(&s);
        let mut b = members(&s.clone());
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }

    #[test]
    fn values_stay_small() {
        // A set fits in 24 bytes, so Value stays 32 bytes and the keyspace
        // node in jemalloc's 64-byte class (db.rs Entry).
        assert!(
            std::mem::size_of::<Set>() <= 24,
            "{}",
            std::mem::size_of::<Set>()
        );
        assert!(std::mem::size_of::<crate::db::Value>() <= 32);
    }

    #[test]
    fn intset_matches_a_btreeset() {
        // Random inserts and removals around the distance widths' edges and
        // i64's ends, checked against a BTreeSet after every step.
        use rand_core::RngCore;
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let pool: Vec<i64> = [
            0,
            1,
            -1,
            255,
            256,
            -256,
            65535,
            65536,
            i16::MAX as i64,
            i16::MIN as i64,
            i32::MAX as i64,
            i32::MIN as i64,
            u32::MAX as i64,
            1 << 40,
            i64::MAX,
            i64::MIN,
            i64::MAX - 1,
            i64::MIN + 1,
        ]
        .into_iter()
        .chain((0..40).map(|i| 1_000_000 + i * 37))
        .collect();
        for _ in 0..200 {
            let mut s = IntSet::default();
            let mut model = std::collections::BTreeSet::new();
            let mut width = Width::W16;
            for _ in 0..60 {
                let v = pool[(rng.next_u32() as usize) % pool.len()];
                if rng.next_u32() % 3 == 0 {
                    assert_eq!(s.remove(v), model.remove(&v));
                } else {
                    let new = model.insert(v);
                    assert_eq!(s.insert(v), new);
                    if new {
                        width = width.max(Width::of(v));
                    }
                }
                assert_eq!(
                    s.iter().collect::<Vec<_>>(),
                    model.iter().copied().collect::<Vec<_>>()
                );
                assert_eq!(s.len(), model.len());
                assert_eq!(s.width(), width);
                for &p in &pool {
                    assert_eq!(s.contains(p), model.contains(&p), "{p}");
                }
            }
        }
    }

    #[test]
    fn close_members_take_one_byte_each() {
        let members: Vec<i64> = (0..10).map(|i| 9_999_990 + i).collect();
        let s = IntSet::from_sorted(Width::W16, &members);
        assert_eq!(s.width(), Width::W32);
        // The header byte, then one byte per member.
        assert_eq!(s.offs.len(), 1 + 10);
        assert_eq!(s.iter().collect::<Vec<_>>(), members);
    }
}
