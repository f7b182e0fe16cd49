//! Bitmap commands (Redis's `bitops.c`): SETBIT, GETBIT, BITCOUNT, BITPOS,
//! BITOP, BITFIELD, BITFIELD_RO.
//!
//! Bits are numbered from the most significant bit of the first byte, as in
//! Redis. Writes grow the string with zero bytes (at most to
//! `proto-max-bulk-len` plus the width of one BITFIELD integer) and convert
//! it to the raw encoding, as Redis's `lookupStringForBitCommand` does.
//! Argument parsing follows Redis 7.0.15 check for check, including the
//! places where it looks the key up before validating the range arguments
//! (BITCOUNT, BITPOS).

use super::Lookup;
use crate::db::{Entry, Str, Value};
use crate::node::Ctx;
use crate::notify::{GENERIC, STRING};
use bytes::Bytes;
use std::borrow::Cow;

const BIT_OFFSET_ERR: &str = "ERR bit offset is not an integer or out of range";
const BIT_VALUE_ERR: &str = "ERR bit is not an integer or out of range";
const BITFIELD_TYPE_ERR: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
/// Redis aborts the process when an allocation fails; we refuse the command.
const OOM_ERR: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// The bytes of an argument up to its first NUL, as C's `strcasecmp` and
/// `strlen` see them.
fn cstr(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(n) => &b[..n],
        None => b,
    }
}

/// `strcasecmp(arg, name) == 0`.
fn arg_eq(arg: &[u8], name: &str) -> bool {
    cstr(arg).eq_ignore_ascii_case(name.as_bytes())
}

/// Redis's `getBitOffsetFromArgument`: a non-negative bit offset whose byte
/// is below `proto-max-bulk-len`. With `hash` and `bits > 0`, `#N` means
/// `N * bits`.
fn bit_offset(cx: &mut Ctx, i: usize, hash: bool, bits: u32) -> Option<u64> {
    let arg = &cx.argv[i];
    let usehash = hash && bits > 0 && arg.first() == Some(&b'#');
    let digits = if usehash { &arg[1..] } else { &arg[..] };
    let parsed = crate::resp::parse_i64(digits);
    let max = cx.node.config.proto_max_bulk_len;
    match parsed {
        Some(mut off) => {
            if usehash {
                // C multiplies without an overflow check; wrap like it does.
                off = off.wrapping_mul(bits as i64);
            }
            if off < 0 || (off >> 3) >= max {
                cx.error(BIT_OFFSET_ERR);
                None
            } else {
                Some(off as u64)
            }
        }
        None => {
            cx.error(BIT_OFFSET_ERR);
            None
        }
    }
}

/// Redis's `getBitfieldTypeFromArgument`: `i1`..`i64` or `u1`..`u63`.
/// Returns (signed, bits).
fn bitfield_type(cx: &mut Ctx, i: usize) -> Option<(bool, u32)> {
    let arg = &cx.argv[i];
    let sign = match arg.first() {
        Some(b'i') => Some(true),
        Some(b'u') => Some(false),
        _ => None,
    };
    let parsed = sign.and_then(|sign| {
        let bits = crate::resp::parse_i64(cstr(&arg[1..]))?;
        let max = if sign { 64 } else { 63 };
        (1..=max).contains(&bits).then_some((sign, bits as u32))
    });
    if parsed.is_none() {
        cx.error(BITFIELD_TYPE_ERR);
    }
    parsed
}

/// Grows `v` with zero bytes to `newlen`, reserving like Redis's
/// `sdsMakeRoomFor` (double below 1MB, else 1MB more) but never beyond
/// `max` unless `newlen` itself is larger. False if the allocation failed.
fn grow_zero(v: &mut Vec<u8>, newlen: usize, max: usize) -> bool {
    if v.len() >= newlen {
        return true;
    }
    if v.capacity() < newlen {
        const MB: usize = 1024 * 1024;
        let greedy = if newlen < MB {
            newlen.saturating_mul(2)
        } else {
            newlen.saturating_add(MB)
        };
        let target = greedy.min(max.max(newlen));
        if v.try_reserve_exact(target - v.len()).is_err()
            && v.try_reserve_exact(newlen - v.len()).is_err()
        {
            return false;
        }
    }
    v.resize(newlen, 0);
    true
}

/// The raw buffer of an existing string key, converted to the raw encoding.
fn raw_mut<'a>(cx: &'a mut Ctx, key: &[u8]) -> Option<&'a mut Vec<u8>> {
    match cx.db().keys.get_mut(key) {
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => Some(s.make_raw()),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Redis's `lookupStringForBitCommand`: looks `key` up for writing, creates
/// it or pads it with zeroes so that bit `maxbit` exists, and makes it raw.
/// Returns whether the string was created or grew; `None` after replying
/// an error (WRONGTYPE, or an allocation failure).
fn string_for_bit(cx: &mut Ctx, key: &Bytes, maxbit: u64) -> Option<bool> {
    let exists = match cx.lookup_write(key) {
        None => false,
        Some(Entry {
            value: Value::Str(_),
            ..
        }) => true,
        #[allow(unreachable_patterns)]
        Some(_) => {
            cx.wrongtype();
            return None;
        }
    };
    let max = usize::try_from(cx.node.config.proto_max_bulk_len.max(0)).unwrap_or(usize::MAX);
    let Ok(newlen) = usize::try_from((maxbit >> 3) + 1) else {
        cx.error(OOM_ERR);
        return None;
    };
    if !exists {
        let mut v = Vec::new();
        if v.try_reserve_exact(newlen).is_err() {
            cx.error(OOM_ERR);
            return None;
        }
        v.resize(newlen, 0);
        let lru = cx.lru_now();
        cx.db().set(key.clone(), Value::Str(Str::Raw(v)), lru);
        return Some(true);
    }
    let grown = {
        let raw = raw_mut(cx, key)?;
        let old = raw.len();
        if grow_zero(raw, newlen, max) {
            Some(raw.len() != old)
        } else {
            None
        }
    };
    if grown.is_none() {
        cx.error(OOM_ERR);
    }
    grown
}

/// The bytes of a string value (ints in decimal), read without touching
/// statistics: callers have already done the counted lookup.
fn str_bytes<'a>(cx: &'a Ctx, key: &[u8]) -> Cow<'a, [u8]> {
    match cx.node.dbs[cx.client.db].keys.get(key) {
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => match s {
            Str::Int(n) | Str::IntOwned(n) => {
                Cow::Owned(itoa::Buffer::new().format(*n).as_bytes().to_vec())
            }
            Str::Emb(b) => Cow::Borrowed(&b[..]),
            Str::Raw(v) => Cow::Borrowed(&v[..]),
        },
        #[allow(unreachable_patterns)]
        _ => Cow::Borrowed(&[]),
    }
}

/// What a counted read lookup found.
enum Found {
    Missing,
    Str,
}

/// `lookupKeyRead` + `checkType(OBJ_STRING)`; `None` after WRONGTYPE.
fn lookup_str(cx: &mut Ctx, key: &[u8]) -> Option<Found> {
    match cx.read_str(key) {
        Lookup::Missing => Some(Found::Missing),
        Lookup::Found(_) => Some(Found::Str),
        Lookup::WrongType => {
            cx.wrongtype();
            None
        }
    }
}

/// SETBIT key offset value: replies with the bit's previous value.
pub fn setbit(cx: &mut Ctx) {
    let Some(offset) = bit_offset(cx, 2, false, 0) else {
        return;
    };
    let on = match crate::resp::parse_i64(&cx.argv[3]) {
        Some(v) if v & !1 == 0 => v as u8,
        _ => return cx.error(BIT_VALUE_ERR),
    };
    let key = cx.argv[1].clone();
    let Some(grown) = string_for_bit(cx, &key, offset) else {
        return;
    };
    let Some(raw) = raw_mut(cx, &key) else {
        return;
    };
    let byte = (offset >> 3) as usize;
    let bit = 7 - (offset & 7) as u32;
    let Some(b) = raw.get_mut(byte) else {
        return;
    };
    let old = (*b >> bit) & 1;
    let changed = grown || old != on;
    if changed {
        *b = (*b & !(1 << bit)) | (on << bit);
        cx.dirty(1);
        cx.notify(STRING, "setbit", &key);
    }
    cx.out().int(old as i64);
}

/// GETBIT key offset
pub fn getbit(cx: &mut Ctx) {
    let Some(offset) = bit_offset(cx, 2, false, 0) else {
        return;
    };
    let key = cx.argv[1].clone();
    match lookup_str(cx, &key) {
        None => {}
        Some(Found::Missing) => cx.out().int(0),
        Some(Found::Str) => {
            let s = str_bytes(cx, &key);
            let byte = (offset >> 3) as usize;
            let bit = 7 - (offset & 7) as u32;
            let v = s.get(byte).map_or(0, |b| (b >> bit) & 1);
            cx.out().int(v as i64);
        }
    }
}

/// Number of set bits.
fn popcount(p: &[u8]) -> i64 {
    let mut chunks = p.chunks_exact(8);
    let mut n: u64 = 0;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        n += u64::from_ne_bytes(w).count_ones() as u64;
    }
    for &b in chunks.remainder() {
        n += b.count_ones() as u64;
    }
    n as i64
}

/// Parses BIT|BYTE; true for BIT. Replies a syntax error otherwise.
fn parse_unit(cx: &mut Ctx, i: usize) -> Option<bool> {
    if arg_eq(&cx.argv[i], "bit") {
        Some(true)
    } else if arg_eq(&cx.argv[i], "byte") {
        Some(false)
    } else {
        cx.syntax_error();
        None
    }
}

/// A range normalized as Redis does: byte indexes plus, for BIT ranges, the
/// masks of the out-of-range bits in the first and last byte.
struct Range {
    start: i64,
    end: i64,
    first_neg_mask: u8,
    last_neg_mask: u8,
}

/// Converts negative indexes, clamps to the string, and for bit ranges
/// turns bit indexes into byte indexes plus edge masks.
fn normalize(mut start: i64, mut end: i64, strlen: i64, isbit: bool) -> Range {
    let totlen = if isbit { strlen << 3 } else { strlen };
    if start < 0 {
        start += totlen;
    }
    if end < 0 {
        end += totlen;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= totlen {
        end = totlen - 1;
    }
    let (mut first_neg_mask, mut last_neg_mask) = (0u8, 0u8);
    if isbit && start <= end {
        first_neg_mask = !((1u32 << (8 - (start & 7))) - 1) as u8;
        last_neg_mask = ((1u32 << (7 - (end & 7))) - 1) as u8;
        start >>= 3;
        end >>= 3;
    }
    Range {
        start,
        end,
        first_neg_mask,
        last_neg_mask,
    }
}

/// BITCOUNT key [start end [BYTE|BIT]]
pub fn bitcount(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    // Redis 7.0 looks the key up (and answers 0 if missing) before it
    // validates the range arguments.
    match lookup_str(cx, &key) {
        None => return,
        Some(Found::Missing) => return cx.out().int(0),
        Some(Found::Str) => {}
    }
    let strlen = str_bytes(cx, &key).len() as i64;
    let argc = cx.argv.len();
    let r = if argc == 4 || argc == 5 {
        let Some(start) = cx.parse_int(2) else { return };
        let Some(end) = cx.parse_int(3) else { return };
        if start < 0 && end < 0 && start > end {
            return cx.out().int(0);
        }
        let isbit = if argc == 5 {
            let Some(b) = parse_unit(cx, 4) else { return };
            b
        } else {
            false
        };
        normalize(start, end, strlen, isbit)
    } else if argc == 2 {
        Range {
            start: 0,
            end: strlen - 1,
            first_neg_mask: 0,
            last_neg_mask: 0,
        }
    } else {
        return cx.syntax_error();
    };
    if r.start > r.end {
        return cx.out().int(0);
    }
    let count = {
        let s = str_bytes(cx, &key);
        let (start, end) = (r.start as usize, r.end as usize);
        let Some(p) = s.get(start..=end) else {
            drop(s);
            return cx.out().int(0);
        };
        let mut count = popcount(p);
        if r.first_neg_mask != 0 {
            count -= (s[start] & r.first_neg_mask).count_ones() as i64;
        }
        if r.last_neg_mask != 0 {
            count -= (s[end] & r.last_neg_mask).count_ones() as i64;
        }
        count
    };
    cx.out().int(count);
}

/// Redis's `redisBitpos`: the position of the first bit equal to `bit` in
/// `s`. Not found: -1 when looking for a 1, else `s.len() * 8` (the string
/// is taken as zero padded on the right).
fn first_bit(s: &[u8], bit: bool) -> i64 {
    let skip: u8 = if bit { 0 } else { 0xff };
    let mut chunks = s.chunks_exact(8);
    let mut base = 0usize;
    for c in &mut chunks {
        if c.iter().any(|&b| b != skip) {
            break;
        }
        base += 8;
    }
    for (i, &b) in s[base..].iter().enumerate() {
        if b != skip {
            let within = if bit {
                b.leading_zeros()
            } else {
                b.leading_ones()
            };
            return ((base + i) as i64) * 8 + within as i64;
        }
    }
    if bit {
        -1
    } else {
        (s.len() as i64) * 8
    }
}

/// BITPOS key bit [start [end [BYTE|BIT]]]
pub fn bitpos(cx: &mut Ctx) {
    let Some(bit) = cx.parse_int(2) else { return };
    if bit != 0 && bit != 1 {
        return cx.error("ERR The bit argument must be 1 or 0.");
    }
    let bit = bit == 1;
    let key = cx.argv[1].clone();
    // As in Redis 7.0, a missing key answers before the range is parsed.
    match lookup_str(cx, &key) {
        None => return,
        Some(Found::Missing) => return cx.out().int(if bit { -1 } else { 0 }),
        Some(Found::Str) => {}
    }
    let strlen = str_bytes(cx, &key).len() as i64;
    let argc = cx.argv.len();
    let mut end_given = false;
    let r = if (4..=6).contains(&argc) {
        let Some(start) = cx.parse_int(3) else { return };
        let isbit = if argc == 6 {
            let Some(b) = parse_unit(cx, 5) else { return };
            b
        } else {
            false
        };
        let end = if argc >= 5 {
            let Some(end) = cx.parse_int(4) else { return };
            end_given = true;
            end
        } else if isbit {
            (strlen << 3) + 7
        } else {
            strlen - 1
        };
        normalize(start, end, strlen, isbit)
    } else if argc == 3 {
        Range {
            start: 0,
            end: strlen - 1,
            first_neg_mask: 0,
            last_neg_mask: 0,
        }
    } else {
        return cx.syntax_error();
    };
    if r.start > r.end {
        return cx.out().int(-1);
    }
    let pos = {
        let p = str_bytes(cx, &key);
        if p.len() as i64 <= r.end {
            // Cannot happen: end is clamped to the string.
            -1
        } else {
            bitpos_range(&p, &r, bit, end_given)
        }
    };
    cx.out().int(pos);
}

/// The search part of `bitposCommand`, for a non-empty normalized range
/// inside `p`.
fn bitpos_range(p: &[u8], r: &Range, bit: bool, end_given: bool) -> i64 {
    let mut start = r.start as usize;
    let end = r.end as usize;
    let mut bytes = end - start + 1;
    let (first, last) = (r.first_neg_mask, r.last_neg_mask);
    let pos = 'found: {
        if first != 0 {
            let mut tmp = if bit {
                p[start] & !first
            } else {
                p[start] | first
            };
            if last != 0 && bytes == 1 {
                tmp = if bit { tmp & !last } else { tmp | last };
            }
            let pos = first_bit(&[tmp], bit);
            if bytes == 1 || (pos != -1 && pos != 8) {
                break 'found pos;
            }
            start += 1;
            bytes -= 1;
        }
        let curbytes = bytes - (last != 0) as usize;
        if curbytes > 0 {
            let pos = first_bit(&p[start..start + curbytes], bit);
            if bytes == curbytes || (pos != -1 && pos != (curbytes as i64) << 3) {
                break 'found pos;
            }
            start += curbytes;
            bytes -= curbytes;
        }
        let tmp = if bit { p[end] & !last } else { p[end] | last };
        first_bit(&[tmp], bit)
    };
    // With an explicit end, looking for a 0, the right of the range is not
    // zero padded: "not found" is -1.
    if end_given && !bit && pos == (bytes as i64) << 3 {
        return -1;
    }
    if pos != -1 {
        pos + ((start as i64) << 3)
    } else {
        pos
    }
}

#[derive(Clone, Copy, PartialEq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// BITOP AND|OR|XOR|NOT destkey key [key ...]: stores the result (raw
/// encoding, TTL dropped) or deletes destkey when every source is empty.
pub fn bitop(cx: &mut Ctx) {
    let opname = &cx.argv[1];
    let op = if arg_eq(opname, "and") {
        BitOp::And
    } else if arg_eq(opname, "or") {
        BitOp::Or
    } else if arg_eq(opname, "xor") {
        BitOp::Xor
    } else if arg_eq(opname, "not") {
        BitOp::Not
    } else {
        return cx.syntax_error();
    };
    if op == BitOp::Not && cx.argv.len() != 4 {
        return cx.error("ERR BITOP NOT must be called with a single source key.");
    }
    // Counted lookups first, in order, stopping at the first wrong type.
    let nkeys = cx.argv.len() - 3;
    let mut present = Vec::with_capacity(nkeys);
    for j in 0..nkeys {
        let key = cx.argv[j + 3].clone();
        match lookup_str(cx, &key) {
            None => return,
            Some(Found::Missing) => present.push(false),
            Some(Found::Str) => present.push(true),
        }
    }
    let res = {
        let cx_ref: &Ctx = cx;
        let srcs: Vec<Cow<[u8]>> = (0..nkeys)
            .map(|j| {
                if present[j] {
                    str_bytes(cx_ref, &cx_ref.argv[j + 3])
                } else {
                    Cow::Borrowed(&[][..])
                }
            })
            .collect();
        let maxlen = srcs.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut res: Vec<u8> = Vec::new();
        if res.try_reserve_exact(maxlen).is_err() {
            None
        } else {
            res.extend_from_slice(&srcs[0]);
            res.resize(maxlen, 0);
            match op {
                BitOp::Not => res.iter_mut().for_each(|b| *b = !*b),
                BitOp::And => {
                    for s in &srcs[1..] {
                        let n = s.len();
                        res[..n].iter_mut().zip(s.iter()).for_each(|(r, b)| *r &= b);
                        res[n..].iter_mut().for_each(|r| *r = 0);
                    }
                }
                BitOp::Or => {
                    for s in &srcs[1..] {
                        res.iter_mut().zip(s.iter()).for_each(|(r, b)| *r |= b);
                    }
                }
                BitOp::Xor => {
                    for s in &srcs[1..] {
                        res.iter_mut().zip(s.iter()).for_each(|(r, b)| *r ^= b);
                    }
                }
            }
            Some(res)
        }
    };
    let Some(res) = res else {
        return cx.error(OOM_ERR);
    };
    let dest = cx.argv[2].clone();
    let maxlen = res.len();
    if maxlen > 0 {
        // setKey: lookupKeyWrite (lazy expiry) then overwrite, dropping TTL.
        let _ = cx.lookup_write(&dest);
        let lru = cx.lru_now();
        cx.db().set(dest.clone(), Value::Str(Str::Raw(res)), lru);
        cx.dirty(1);
        cx.notify(STRING, "set", &dest);
    } else if cx.delete_key(&dest) {
        cx.dirty(1);
        cx.notify(GENERIC, "del", &dest);
    }
    cx.out().int(maxlen as i64);
}

const BFOVERFLOW_WRAP: u8 = 0;
const BFOVERFLOW_SAT: u8 = 1;
const BFOVERFLOW_FAIL: u8 = 2;

#[derive(Clone, Copy, PartialEq)]
enum FieldOp {
    Get,
    Set,
    Incrby,
}

struct BitfieldOp {
    offset: u64,
    i64: i64,
    op: FieldOp,
    owtype: u8,
    bits: u32,
    sign: bool,
}

fn set_unsigned_bitfield(p: &mut [u8], mut offset: u64, bits: u32, value: u64) {
    for j in 0..bits {
        let bitval = ((value >> (bits - 1 - j)) & 1) as u8;
        let byte = (offset >> 3) as usize;
        let bit = 7 - (offset & 7) as u32;
        if let Some(b) = p.get_mut(byte) {
            *b = (*b & !(1 << bit)) | (bitval << bit);
        }
        offset += 1;
    }
}

fn get_unsigned_bitfield(p: &[u8], mut offset: u64, bits: u32) -> u64 {
    let mut value = 0u64;
    for _ in 0..bits {
        let byte = (offset >> 3) as usize;
        let bit = 7 - (offset & 7) as u32;
        let bitval = p.get(byte).map_or(0, |b| (b >> bit) & 1);
        value = (value << 1) | bitval as u64;
        offset += 1;
    }
    value
}

fn get_signed_bitfield(p: &[u8], offset: u64, bits: u32) -> i64 {
    let mut value = get_unsigned_bitfield(p, offset, bits) as i64;
    if bits < 64 && (value as u64) & (1u64 << (bits - 1)) != 0 {
        value |= (u64::MAX << bits) as i64;
    }
    value
}

/// `checkUnsignedBitfieldOverflow`: 0, 1 (overflow) or -1 (underflow), and
/// the value to store for WRAP and SAT.
fn check_unsigned_overflow(value: u64, incr: i64, bits: u32, owtype: u8) -> (i32, u64) {
    let max = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = 0u64.wrapping_sub(value) as i64;
    let wrap = || {
        let mask = if bits >= 64 { 0 } else { u64::MAX << bits };
        value.wrapping_add(incr as u64) & !mask
    };
    if value > max || (incr > 0 && incr > maxincr) {
        let limit = match owtype {
            BFOVERFLOW_WRAP => wrap(),
            BFOVERFLOW_SAT => max,
            _ => 0,
        };
        (1, limit)
    } else if incr < 0 && incr < minincr {
        let limit = match owtype {
            BFOVERFLOW_WRAP => wrap(),
            _ => 0,
        };
        (-1, limit)
    } else {
        (0, 0)
    }
}

/// `checkSignedBitfieldOverflow`, with C's wrapping arithmetic.
fn check_signed_overflow(value: i64, incr: i64, bits: u32, owtype: u8) -> (i32, i64) {
    let max = if bits >= 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let msb = 1u64 << (bits - 1);
            let mask = u64::MAX << bits;
            if c & msb != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        let limit = match owtype {
            BFOVERFLOW_WRAP => wrap(),
            BFOVERFLOW_SAT => max,
            _ => 0,
        };
        (1, limit)
    } else if value < min
        || (bits != 64 && incr < minincr)
        || (value < 0 && incr < 0 && incr < minincr)
    {
        let limit = match owtype {
            BFOVERFLOW_WRAP => wrap(),
            BFOVERFLOW_SAT => min,
            _ => 0,
        };
        (-1, limit)
    } else {
        (0, 0)
    }
}

/// BITFIELD key [GET type offset] [SET type offset value]
/// [INCRBY type offset increment] [OVERFLOW WRAP|SAT|FAIL] ...
pub fn bitfield(cx: &mut Ctx) {
    bitfield_generic(cx, false);
}

/// BITFIELD_RO key [GET type offset ...]
pub fn bitfield_ro(cx: &mut Ctx) {
    bitfield_generic(cx, true);
}

fn bitfield_generic(cx: &mut Ctx, ro: bool) {
    let argc = cx.argv.len();
    let mut ops: Vec<BitfieldOp> = Vec::new();
    let mut owtype = BFOVERFLOW_WRAP;
    let mut readonly = true;
    let mut highest_write_offset = 0u64;
    let mut j = 2;
    while j < argc {
        let remargs = argc - j - 1;
        let sub = &cx.argv[j];
        let op = if arg_eq(sub, "get") && remargs >= 2 {
            FieldOp::Get
        } else if arg_eq(sub, "set") && remargs >= 3 {
            FieldOp::Set
        } else if arg_eq(sub, "incrby") && remargs >= 3 {
            FieldOp::Incrby
        } else if arg_eq(sub, "overflow") && remargs >= 1 {
            let name = &cx.argv[j + 1];
            j += 1;
            if arg_eq(name, "wrap") {
                owtype = BFOVERFLOW_WRAP;
            } else if arg_eq(name, "sat") {
                owtype = BFOVERFLOW_SAT;
            } else if arg_eq(name, "fail") {
                owtype = BFOVERFLOW_FAIL;
            } else {
                return cx.error("ERR Invalid OVERFLOW type specified");
            }
            j += 1;
            continue;
        } else {
            return cx.syntax_error();
        };
        let Some((sign, bits)) = bitfield_type(cx, j + 1) else {
            return;
        };
        let Some(offset) = bit_offset(cx, j + 2, true, bits) else {
            return;
        };
        let mut value = 0;
        if op != FieldOp::Get {
            readonly = false;
            highest_write_offset = highest_write_offset.max(offset + bits as u64 - 1);
            let Some(v) = cx.parse_int(j + 3) else { return };
            value = v;
        }
        ops.push(BitfieldOp {
            offset,
            i64: value,
            op,
            owtype,
            bits,
            sign,
        });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }

    let key = cx.argv[1].clone();
    let mut grown = false;
    let exists = if readonly {
        match lookup_str(cx, &key) {
            None => return,
            Some(Found::Missing) => false,
            Some(Found::Str) => true,
        }
    } else {
        if ro {
            return cx.error("ERR BITFIELD_RO only supports the GET subcommand");
        }
        match string_for_bit(cx, &key, highest_write_offset) {
            None => return,
            Some(g) => grown = g,
        }
        true
    };

    cx.out().array(ops.len());
    let mut changes = 0u64;
    if readonly {
        // GET only: read from the value as it is (ints as decimal).
        let replies: Vec<i64> = {
            let s: Cow<[u8]> = if exists {
                str_bytes(cx, &key)
            } else {
                Cow::Borrowed(&[])
            };
            ops.iter().map(|o| bitfield_get(&s, o)).collect()
        };
        let out = cx.out();
        for v in replies {
            out.int(v);
        }
        return;
    }
    // Replies are buffered because the value is borrowed while we work.
    let mut replies: Vec<Option<i64>> = Vec::with_capacity(ops.len());
    {
        let Some(p) = raw_mut(cx, &key) else {
            return;
        };
        for o in &ops {
            match o.op {
                FieldOp::Get => replies.push(Some(bitfield_get(p, o))),
                _ if o.sign => {
                    let oldval = get_signed_bitfield(p, o.offset, o.bits);
                    let (overflow, newval, retval) = if o.op == FieldOp::Incrby {
                        let (ov, wrapped) = check_signed_overflow(oldval, o.i64, o.bits, o.owtype);
                        let newval = if ov != 0 {
                            wrapped
                        } else {
                            oldval.wrapping_add(o.i64)
                        };
                        (ov, newval, newval)
                    } else {
                        let (ov, wrapped) = check_signed_overflow(o.i64, 0, o.bits, o.owtype);
                        (ov, if ov != 0 { wrapped } else { o.i64 }, oldval)
                    };
                    if overflow != 0 && o.owtype == BFOVERFLOW_FAIL {
                        replies.push(None);
                    } else {
                        replies.push(Some(retval));
                        set_unsigned_bitfield(p, o.offset, o.bits, newval as u64);
                        if grown || oldval != newval {
                            changes += 1;
                        }
                    }
                }
                _ => {
                    let oldval = get_unsigned_bitfield(p, o.offset, o.bits);
                    let (overflow, newval, retval) = if o.op == FieldOp::Incrby {
                        let (ov, wrapped) =
                            check_unsigned_overflow(oldval, o.i64, o.bits, o.owtype);
                        let newval = if ov != 0 {
                            wrapped
                        } else {
                            oldval.wrapping_add(o.i64 as u64)
                        };
                        (ov, newval, newval)
                    } else {
                        let v = o.i64 as u64;
                        let (ov, wrapped) = check_unsigned_overflow(v, 0, o.bits, o.owtype);
                        (ov, if ov != 0 { wrapped } else { v }, oldval)
                    };
                    if overflow != 0 && o.owtype == BFOVERFLOW_FAIL {
                        replies.push(None);
                    } else {
                        replies.push(Some(retval as i64));
                        set_unsigned_bitfield(p, o.offset, o.bits, newval);
                        if grown || oldval != newval {
                            changes += 1;
                        }
                    }
                }
            }
        }
    }
    let out = cx.out();
    for r in replies {
        match r {
            Some(v) => out.int(v),
            None => out.null(),
        }
    }
    if changes > 0 {
        cx.dirty(changes);
        let key = cx.argv[1].clone();
        cx.notify(STRING, "setbit", &key);
    }
}

/// A BITFIELD GET: reads past the end of the string as zeroes.
fn bitfield_get(s: &[u8], o: &BitfieldOp) -> i64 {
    let byte = o.offset >> 3;
    let mut buf = [0u8; 9];
    if let Ok(b) = usize::try_from(byte) {
        if b < s.len() {
            let n = (s.len() - b).min(9);
            buf[..n].copy_from_slice(&s[b..b + n]);
        }
    }
    let off = o.offset - byte * 8;
    if o.sign {
        get_signed_bitfield(&buf, off, o.bits)
    } else {
        get_unsigned_bitfield(&buf, off, o.bits) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bit_matches_redis_bitpos() {
        assert_eq!(first_bit(&[0, 0, 0], true), -1);
        assert_eq!(first_bit(&[0xff, 0xff], false), 16);
        assert_eq!(first_bit(&[0xff, 0xf0], false), 12);
        assert_eq!(first_bit(&[0; 20], true), -1);
        let mut v = vec![0u8; 20];
        v[17] = 0x10;
        assert_eq!(first_bit(&v, true), 17 * 8 + 3);
    }

    #[test]
    fn overflow_checks() {
        assert_eq!(check_unsigned_overflow(255, 1, 8, BFOVERFLOW_WRAP), (1, 0));
        assert_eq!(check_unsigned_overflow(255, 1, 8, BFOVERFLOW_SAT), (1, 255));
        assert_eq!(check_unsigned_overflow(0, -1, 8, BFOVERFLOW_SAT), (-1, 0));
        assert_eq!(
            check_unsigned_overflow(0, -1, 8, BFOVERFLOW_WRAP),
            (-1, 255)
        );
        assert_eq!(check_signed_overflow(127, 1, 8, BFOVERFLOW_WRAP), (1, -128));
        assert_eq!(
            check_signed_overflow(-128, -1, 8, BFOVERFLOW_SAT),
            (-1, -128)
        );
        assert_eq!(
            check_signed_overflow(i64::MAX, 1, 64, BFOVERFLOW_WRAP),
            (1, i64::MIN)
        );
        assert_eq!(check_signed_overflow(5, -3, 64, BFOVERFLOW_WRAP), (0, 0));
    }

    #[test]
    fn bitfield_roundtrip() {
        let mut p = vec![0u8; 2];
        set_unsigned_bitfield(&mut p, 7, 5, 23);
        assert_eq!(p, vec![0b0000_0001, 0b0111_0000]);
        assert_eq!(get_unsigned_bitfield(&p, 7, 5), 23);
        set_unsigned_bitfield(&mut p, 0, 8, 0xff);
        assert_eq!(get_signed_bitfield(&p, 0, 8), -1);
    }

    /// Replies captured from Redis 7.0.15, driven through a whole node.
    #[test]
    fn replies_match_redis() {
        use crate::node::{ConnId, Input, Node, Output, Time};
        use crate::Config;
        const CASES: &[(&[&str], &[u8])] = &[
            (&["SETBIT", "k", "7", "1"], b":0\x0d\x0a"),
            (&["SETBIT", "k", "7", "0"], b":1\x0d\x0a"),
            (&["SETBIT", "k", "100", "1"], b":0\x0d\x0a"),
            (&["GET", "k"], b"$13\x0d\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08\x0d\x0a"),
            (&["SETBIT", "k", "-1", "1"], b"-ERR bit offset is not an integer or out of range\x0d\x0a"),
            (&["SETBIT", "k", "4294967296", "1"], b"-ERR bit offset is not an integer or out of range\x0d\x0a"),
            (&["SETBIT", "k", "1", "2"], b"-ERR bit is not an integer or out of range\x0d\x0a"),
            (&["GETBIT", "k", "100"], b":1\x0d\x0a"),
            (&["GETBIT", "k", "99"], b":0\x0d\x0a"),
            (&["GETBIT", "nokey", "5"], b":0\x0d\x0a"),
            (&["GETBIT", "k", "x"], b"-ERR bit offset is not an integer or out of range\x0d\x0a"),
            (&["SET", "s", "foobar"], b"+OK\x0d\x0a"),
            (&["BITCOUNT", "s"], b":26\x0d\x0a"),
            (&["BITCOUNT", "s", "1", "1"], b":6\x0d\x0a"),
            (&["BITCOUNT", "s", "5", "30", "BIT"], b":17\x0d\x0a"),
            (&["BITCOUNT", "s", "-1", "-2", "foo"], b":0\x0d\x0a"),
            (&["BITCOUNT", "s", "0", "-1", "foo"], b"-ERR syntax error\x0d\x0a"),
            (&["BITCOUNT", "nokey", "a", "b"], b":0\x0d\x0a"),
            (&["BITCOUNT", "s", "1"], b"-ERR syntax error\x0d\x0a"),
            (&["BITPOS", "s", "0"], b":0\x0d\x0a"),
            (&["BITPOS", "s", "1", "2"], b":17\x0d\x0a"),
            (&["BITPOS", "s", "1", "7", "15", "BIT"], b":9\x0d\x0a"),
            (&["BITPOS", "s", "2"], b"-ERR The bit argument must be 1 or 0.\x0d\x0a"),
            (&["BITPOS", "nokey", "0", "x"], b":0\x0d\x0a"),
            (&["BITFIELD", "f", "SET", "u16", "0", "65535"], b"*1\x0d\x0a:0\x0d\x0a"),
            (&["BITPOS", "f", "0"], b":16\x0d\x0a"),
            (&["BITPOS", "f", "0", "0", "-1"], b":-1\x0d\x0a"),
            (&["BITPOS", "f", "0", "0", "-1", "BIT"], b":-1\x0d\x0a"),
            (&["BITOP", "AND", "d", "s", "f"], b":6\x0d\x0a"),
            (&["GET", "d"], b"$6\x0d\x0afo\x00\x00\x00\x00\x0d\x0a"),
            (&["OBJECT", "ENCODING", "d"], b"$3\x0d\x0araw\x0d\x0a"),
            (&["BITOP", "NOT", "d", "s", "f"], b"-ERR BITOP NOT must be called with a single source key.\x0d\x0a"),
            (&["BITOP", "NOT", "d", "s"], b":6\x0d\x0a"),
            (&["GET", "d"], b"$6\x0d\x0a\x99\x90\x90\x9d\x9e\x8d\x0d\x0a"),
            (&["BITOP", "XOR", "d", "nokey"], b":0\x0d\x0a"),
            (&["EXISTS", "d"], b":0\x0d\x0a"),
            (&["BITOP", "NAND", "d", "s"], b"-ERR syntax error\x0d\x0a"),
            (&["BITFIELD", "b", "SET", "i8", "0", "-100", "INCRBY", "i8", "0", "-100", "OVERFLOW", "SAT", "INCRBY", "i8", "0", "-100", "OVERFLOW", "FAIL", "INCRBY", "i8", "0", "-1", "GET", "u8", "#0"], b"*5\x0d\x0a:0\x0d\x0a:56\x0d\x0a:-44\x0d\x0a:-45\x0d\x0a:211\x0d\x0a"),
            (&["BITFIELD", "b", "GET", "u64", "0"], b"-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\x0d\x0a"),
            (&["BITFIELD", "b", "GET", "i8", "-1"], b"-ERR bit offset is not an integer or out of range\x0d\x0a"),
            (&["BITFIELD", "b", "OVERFLOW", "x"], b"-ERR Invalid OVERFLOW type specified\x0d\x0a"),
            (&["BITFIELD", "b", "SET", "u8", "0"], b"-ERR syntax error\x0d\x0a"),
            (&["BITFIELD", "b", "GET", "i64", "3", "GET", "u63", "#1"], b"*2\x0d\x0a:-7493989779944505344\x0d\x0a:0\x0d\x0a"),
            (&["BITFIELD_RO", "b", "GET", "u8", "0", "SET", "u8", "0", "1"], b"-ERR BITFIELD_RO only supports the GET subcommand\x0d\x0a"),
            (&["BITFIELD_RO", "b", "GET", "u4", "4"], b"*1\x0d\x0a:3\x0d\x0a"),
            (&["OBJECT", "ENCODING", "b"], b"$3\x0d\x0araw\x0d\x0a"),
            (&["SET", "n", "12"], b"+OK\x0d\x0a"),
            (&["BITFIELD_RO", "n", "GET", "u16", "0"], b"*1\x0d\x0a:12594\x0d\x0a"),
            (&["OBJECT", "ENCODING", "n"], b"$3\x0d\x0aint\x0d\x0a"),
        ];
        let mut n = Node::new(Config::default(), 1);
        n.start(Time(1_000_000));
        // No data file: the start-up read finds nothing.
        while let Some(o) = n.poll_output() {
            if let Output::Disk { id, .. } = o {
                let result = Err(crate::disk::DiskError::NotFound);
                n.handle(Time(1_000_000), Input::DiskDone { id, result });
            }
        }
        let conn = ConnId(1);
        n.handle(
            Time(1_000_000),
            Input::Accepted {
                conn,
                peer: "127.0.0.1:1".into(),
                local: "127.0.0.1:6379".into(),
            },
        );
        for (args, want) in CASES {
            let mut req = format!("*{}\r\n", args.len()).into_bytes();
            for a in args.iter() {
                req.extend_from_slice(format!("${}\r\n{}\r\n", a.len(), a).as_bytes());
            }
            n.handle(Time(1_000_000), Input::Received { conn, data: &req });
            let mut got = Vec::new();
            while let Some(o) = n.poll_output() {
                if let Output::Send { data, .. } = o {
                    got.extend_from_slice(&data);
                }
            }
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(want),
                "{args:?}"
            );
            assert_eq!(&got[..], *want, "{args:?}");
        }
    }
}
