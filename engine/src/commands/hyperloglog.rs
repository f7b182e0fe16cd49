//! HyperLogLog commands (Redis's `hyperloglog.c`): PFADD, PFCOUNT, PFMERGE,
//! PFDEBUG and PFSELFTEST.
//!
//! As in Redis, an HLL is a plain string: a 16-byte header (`HYLL`, the
//! encoding byte, three unused bytes, the cached cardinality in little
//! endian with its top bit meaning "stale") followed by either the dense
//! registers (16384 registers of 6 bits, packed from the least significant
//! bit) or the sparse run-length opcodes (ZERO `00xxxxxx`, XZERO
//! `01xxxxxx yyyyyyyy`, VAL `1vvvvvxx`). Every edit is the byte-for-byte
//! port of Redis 7.0's, so `GET` returns the same bytes as Redis after any
//! sequence of commands, and the cached cardinality is refreshed and
//! invalidated where Redis does it.
//!
//! Strings that are not HLLs, or corrupted ones, are rejected with Redis's
//! errors. Where Redis would read one byte past the end of a corrupted value
//! it reads its sds NUL terminator; [`Sds`] keeps that byte (and the room
//! `sdsMakeRoomFor` reserves) so edits behave the same without reading out
//! of bounds. Where Redis's C arithmetic would overflow on absurdly long
//! corrupted values (the integer overflows behind CVE-2025-32023), the
//! port computes in 64 bits and reports the object as corrupted.
//!
//! Sparse HLLs are promoted to dense beyond `hll-sparse-max-bytes` (CONFIG;
//! [`SPARSE_MAX_BYTES`] is its default).

use crate::command::Handler;
use crate::db::{Str, Value};
use crate::node::Ctx;
use crate::notify::STRING;
use bytes::Bytes;
use rand_core::RngCore;

/// The greater P, the smaller the error.
const HLL_P: u32 = 14;
/// Bits of the hash used for the run of zeroes.
const HLL_Q: u32 = 64 - HLL_P;
const HLL_REGISTERS: usize = 1 << HLL_P;
const HLL_P_MASK: u64 = (HLL_REGISTERS - 1) as u64;
const HLL_BITS: usize = 6;
const HLL_REGISTER_MAX: u8 = (1 << HLL_BITS) - 1;
const HLL_HDR_SIZE: usize = 16;
const HLL_DENSE_SIZE: usize = HLL_HDR_SIZE + (HLL_REGISTERS * HLL_BITS).div_ceil(8);
const HLL_DENSE: u8 = 0;
const HLL_SPARSE: u8 = 1;
const HLL_MAX_ENCODING: u8 = 1;
/// Offset of the encoding byte in the header.
const ENC: usize = 4;
/// Offset of the most significant byte of the cached cardinality.
const CARD_MSB: usize = 15;

const SPARSE_XZERO_BIT: u8 = 0x40;
const SPARSE_VAL_BIT: u8 = 0x80;
const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;

/// Redis's `hll-sparse-max-bytes` default: sparse HLLs longer than this
/// (header included) are promoted to dense.
pub const SPARSE_MAX_BYTES: usize = 3000;

/// 0.5/ln(2) (Redis writes 0.721347520444481703680, the same double).
const HLL_ALPHA_INF: f64 = 0.721_347_520_444_481_7;

const WRONGTYPE_HLL_ERR: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const INVALID_HLL_ERR: &str = "INVALIDOBJ Corrupted HLL object detected";

/// This module's commands, by lowercase name.
pub fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "pfadd" => pfadd,
        "pfcount" => pfcount,
        "pfmerge" => pfmerge,
        "pfdebug" => pfdebug,
        "pfselftest" => pfselftest,
        _ => return None,
    })
}

// ============================ Hashing ====================================

/// MurmurHash2, 64-bit version, endian neutral (Redis's `MurmurHash64A`).
pub fn murmurhash64a(key: &[u8], seed: u32) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    // C computes `seed ^ (len * m)` with an `int` length.
    let len = key.len() as i32 as i64 as u64;
    let mut h: u64 = (seed as u64) ^ len.wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let mut k = u64::from_le_bytes(w);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// Redis's `hllPatLen`: the register an element hashes to, and the length
/// of the `000..1` pattern of the remaining hash bits (1 to Q+1).
fn pat_len(ele: &[u8]) -> (usize, u8) {
    let hash = murmurhash64a(ele, 0xadc8_3b19);
    let index = (hash & HLL_P_MASK) as usize;
    let rest = (hash >> HLL_P) | (1u64 << HLL_Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

// ============================ Dense registers ============================

/// `HLL_DENSE_GET_REGISTER`. `regs` starts at the first register; the byte
/// after the last one reads as 0 (the sds terminator).
fn dense_get(regs: &[u8], regnum: usize) -> u8 {
    let byte = regnum * HLL_BITS / 8;
    let fb = (regnum * HLL_BITS) & 7;
    let fb8 = 8 - fb;
    let b0 = regs.get(byte).copied().unwrap_or(0) as u32;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u32;
    (((b0 >> fb) | (b1 << fb8)) & HLL_REGISTER_MAX as u32) as u8
}

/// `HLL_DENSE_SET_REGISTER`: `val` must be at most 63.
fn dense_set_raw(regs: &mut [u8], regnum: usize, val: u8) {
    let byte = regnum * HLL_BITS / 8;
    let fb = (regnum * HLL_BITS) & 7;
    let fb8 = 8 - fb;
    let v = val as u32;
    let max = HLL_REGISTER_MAX as u32;
    if let Some(b) = regs.get_mut(byte) {
        *b &= !((max << fb) as u8);
        *b |= (v << fb) as u8;
    }
    if let Some(b) = regs.get_mut(byte + 1) {
        *b &= !((max >> fb8) as u8);
        *b |= (v >> fb8) as u8;
    }
}

/// `hllDenseSet`: raises register `index` to `count`; true if it changed.
fn dense_set(regs: &mut [u8], index: usize, count: u8) -> bool {
    if count > dense_get(regs, index) {
        dense_set_raw(regs, index, count);
        true
    } else {
        false
    }
}

/// `hllDenseAdd`.
fn dense_add(regs: &mut [u8], ele: &[u8]) -> bool {
    let (index, count) = pat_len(ele);
    dense_set(regs, index, count)
}

/// `hllDenseRegHisto`.
fn dense_histo(regs: &[u8], histo: &mut [i64; 64]) {
    for group in regs.chunks_exact(3).take(HLL_REGISTERS / 4) {
        let (r0, r1, r2) = (group[0], group[1], group[2]);
        histo[(r0 & 63) as usize] += 1;
        histo[((r0 >> 6 | r1 << 2) & 63) as usize] += 1;
        histo[((r1 >> 4 | r2 << 4) & 63) as usize] += 1;
        histo[((r2 >> 2) & 63) as usize] += 1;
    }
}

// ============================ Sparse opcodes =============================

fn is_zero(b: u8) -> bool {
    b & 0xc0 == 0
}
fn is_xzero(b: u8) -> bool {
    b & 0xc0 == SPARSE_XZERO_BIT
}
fn is_val(b: u8) -> bool {
    b & SPARSE_VAL_BIT != 0
}
fn zero_len(b: u8) -> usize {
    (b & 0x3f) as usize + 1
}
fn xzero_len(b: u8, next: u8) -> usize {
    ((((b & 0x3f) as usize) << 8) | next as usize) + 1
}
fn val_value(b: u8) -> u8 {
    ((b >> 2) & 0x1f) + 1
}
fn val_len(b: u8) -> usize {
    (b & 0x3) as usize + 1
}
/// `HLL_SPARSE_VAL_SET`: `val` in 1..=32, `len` in 1..=4.
fn val_op(val: u8, len: usize) -> u8 {
    ((val.wrapping_sub(1) << 2) | (len.wrapping_sub(1) as u8 & 3)) | SPARSE_VAL_BIT
}
/// `HLL_SPARSE_ZERO_SET`: `len` in 1..=64.
fn zero_op(len: usize) -> u8 {
    len.wrapping_sub(1) as u8
}
/// `HLL_SPARSE_XZERO_SET`: `len` in 1..=16384.
fn xzero_op(len: usize) -> [u8; 2] {
    let l = len.wrapping_sub(1);
    [((l >> 8) as u8) | SPARSE_XZERO_BIT, (l & 0xff) as u8]
}

/// A string value being edited, laid out like a C sds: `buf[..len]` is the
/// value, `buf[len]` its NUL terminator, and any further bytes the room
/// reserved by `sdsMakeRoomFor`. Dropping it truncates the buffer back to
/// the value.
struct Sds<'a> {
    buf: &'a mut Vec<u8>,
    len: usize,
}

impl<'a> Sds<'a> {
    fn open(buf: &'a mut Vec<u8>) -> Sds<'a> {
        let len = buf.len();
        buf.push(0);
        Sds { buf, len }
    }

    /// `sdsMakeRoomFor(s, n)`: at least `n` bytes after the terminator.
    fn make_room(&mut self, n: usize) {
        let need = self.len + n + 1;
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
    }

    /// `sdsIncrLen`: moves the end and writes the terminator. The room must
    /// have been made.
    fn incr_len(&mut self, delta: isize) {
        self.len = self.len.wrapping_add_signed(delta);
        if let Some(b) = self.buf.get_mut(self.len) {
            *b = 0;
        }
    }

    /// The byte at `i`, 0 past the buffer (never reached: callers stay
    /// within the terminator).
    fn at(&self, i: usize) -> u8 {
        self.buf.get(i).copied().unwrap_or(0)
    }

    fn encoding(&self) -> u8 {
        self.at(ENC)
    }

    fn invalidate_cache(&mut self) {
        if let Some(b) = self.buf.get_mut(CARD_MSB) {
            *b |= 0x80;
        }
    }

    fn registers_mut(&mut self) -> &mut [u8] {
        let end = self.buf.len();
        &mut self.buf[HLL_HDR_SIZE.min(end)..]
    }
}

impl Drop for Sds<'_> {
    fn drop(&mut self) {
        self.buf.truncate(self.len);
    }
}

/// `createHLLObject`: an empty sparse HLL (one XZERO opcode), cache valid
/// at 0.
fn create_hll() -> Vec<u8> {
    let mut v = Vec::with_capacity(HLL_HDR_SIZE + 2);
    v.extend_from_slice(b"HYLL");
    v.push(HLL_SPARSE);
    v.extend_from_slice(&[0u8; 11]);
    let mut aux = HLL_REGISTERS;
    while aux > 0 {
        let xzero = SPARSE_XZERO_MAX_LEN.min(aux);
        v.extend_from_slice(&xzero_op(xzero));
        aux -= xzero;
    }
    v
}

/// `hllSparseToDense`: converts in place; `Err` (and nothing changed) if
/// the sparse representation is corrupted. Dense HLLs are left alone.
fn sparse_to_dense(s: &mut Sds) -> Result<(), ()> {
    if s.encoding() == HLL_DENSE {
        return Ok(());
    }
    let mut dense = vec![0u8; HLL_DENSE_SIZE + 1];
    // The header is copied whole: magic, unused bytes and cached card.
    dense[..HLL_HDR_SIZE].copy_from_slice(&s.buf[..HLL_HDR_SIZE]);
    dense[ENC] = HLL_DENSE;
    let mut idx: usize = 0;
    let mut p = HLL_HDR_SIZE;
    let end = s.len;
    while p < end {
        let b = s.at(p);
        if is_zero(b) {
            idx += zero_len(b);
            p += 1;
        } else if is_xzero(b) {
            idx += xzero_len(b, s.at(p + 1));
            p += 2;
        } else {
            let runlen = val_len(b);
            let regval = val_value(b);
            if runlen + idx > HLL_REGISTERS {
                return Err(()); // Overflow.
            }
            for i in idx..idx + runlen {
                dense_set_raw(&mut dense[HLL_HDR_SIZE..], i, regval);
            }
            idx += runlen;
            p += 1;
        }
    }
    if idx != HLL_REGISTERS {
        return Err(());
    }
    dense.truncate(HLL_DENSE_SIZE);
    *s.buf = dense;
    s.len = HLL_DENSE_SIZE;
    s.buf.push(0);
    Ok(())
}

/// What the in-place part of `hllSparseSet` decided.
enum SparseSet {
    Done(i32),
    Promote,
}

/// `hllSparseSet`: raises register `index` to `count` in a sparse HLL,
/// promoting it to dense when the value does not fit a VAL opcode or the
/// string would outgrow `max_bytes`. Returns 1 if the register changed, 0
/// if not, -1 if the HLL is corrupted.
fn sparse_set(s: &mut Sds, index: usize, count: u8, max_bytes: usize) -> i32 {
    if count <= SPARSE_VAL_MAX_VALUE {
        if let SparseSet::Done(r) = sparse_set_in_place(s, index, count, max_bytes) {
            return r;
        }
    }
    // Promote to the dense representation.
    if sparse_to_dense(s).is_err() {
        return -1;
    }
    // Redis asserts this returns 1: a promotion only happens when the
    // register must grow.
    dense_set(s.registers_mut(), index, count) as i32
}

fn sparse_set_in_place(s: &mut Sds, index: usize, count: u8, max_bytes: usize) -> SparseSet {
    // Worst case the update grows the string by 3 bytes (XZERO split into
    // XZERO-VAL-XZERO).
    s.make_room(3);

    // Step 1: locate the opcode covering the register.
    let sparse = HLL_HDR_SIZE;
    let mut p = sparse;
    let mut end = s.len;
    let mut first: usize = 0;
    let mut prev: Option<usize> = None;
    let mut span: usize = 0;
    while p < end {
        let b = s.at(p);
        let mut oplen = 1;
        if is_zero(b) {
            span = zero_len(b);
        } else if is_val(b) {
            span = val_len(b);
        } else {
            span = xzero_len(b, s.at(p + 1));
            oplen = 2;
        }
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= end {
        return SparseSet::Done(-1); // Invalid format.
    }

    let b = s.at(p);
    let next = if is_xzero(b) { p + 2 } else { p + 1 };
    let next = (next < end).then_some(next);
    let (zero, xzero) = (is_zero(b), is_xzero(b));
    let runlen = if zero {
        zero_len(b)
    } else if xzero {
        xzero_len(b, s.at(p + 1))
    } else {
        val_len(b)
    };

    // Step 2: trivial in-place cases.
    let mut trivial = false;
    if !zero && !xzero {
        // A) a VAL already at least as large: nothing to do.
        if val_value(b) >= count {
            return SparseSet::Done(0);
        }
        // B) a VAL covering only our register.
        if runlen == 1 {
            s.buf[p] = val_op(count, 1);
            trivial = true;
        }
    }
    // C) a ZERO of length 1.
    if !trivial && zero && runlen == 1 {
        s.buf[p] = val_op(count, 1);
        trivial = true;
    }

    if !trivial {
        // D) General case: split the opcode into up to three.
        let mut seq = [0u8; 5];
        let mut n = 0;
        let last = first + span - 1;
        if zero || xzero {
            if index != first {
                let len = index - first;
                if len > SPARSE_ZERO_MAX_LEN {
                    seq[n..n + 2].copy_from_slice(&xzero_op(len));
                    n += 2;
                } else {
                    seq[n] = zero_op(len);
                    n += 1;
                }
            }
            seq[n] = val_op(count, 1);
            n += 1;
            if index != last {
                let len = last - index;
                if len > SPARSE_ZERO_MAX_LEN {
                    seq[n..n + 2].copy_from_slice(&xzero_op(len));
                    n += 2;
                } else {
                    seq[n] = zero_op(len);
                    n += 1;
                }
            }
        } else {
            let curval = val_value(b);
            if index != first {
                seq[n] = val_op(curval, index - first);
                n += 1;
            }
            seq[n] = val_op(count, 1);
            n += 1;
            if index != last {
                seq[n] = val_op(curval, last - index);
                n += 1;
            }
        }

        // Step 3: substitute the new sequence for the old opcode.
        let seqlen = n;
        let oldlen = if xzero { 2 } else { 1 };
        let deltalen = seqlen as isize - oldlen as isize;
        if deltalen > 0 && s.len + deltalen as usize > max_bytes {
            return SparseSet::Promote;
        }
        if deltalen != 0 {
            if let Some(next) = next {
                let to = next.wrapping_add_signed(deltalen);
                s.buf.copy_within(next..end, to);
            }
        }
        s.incr_len(deltalen);
        s.buf[p..p + seqlen].copy_from_slice(&seq[..seqlen]);
        end = end.wrapping_add_signed(deltalen);
    }

    // Step 4: merge adjacent VAL opcodes with the same value, scanning up
    // to 5 opcodes from the previous one.
    let mut p = prev.unwrap_or(sparse);
    let mut scanlen = 5;
    while p < end {
        if scanlen == 0 {
            break;
        }
        scanlen -= 1;
        let b = s.at(p);
        if is_xzero(b) {
            p += 2;
            continue;
        } else if is_zero(b) {
            p += 1;
            continue;
        }
        if p + 1 < end && is_val(s.at(p + 1)) {
            let v1 = val_value(b);
            let v2 = val_value(s.at(p + 1));
            if v1 == v2 {
                let len = val_len(b) + val_len(s.at(p + 1));
                if len <= SPARSE_VAL_MAX_LEN {
                    s.buf[p + 1] = val_op(v1, len);
                    // memmove(p, p+1, end-p): the terminator moves too.
                    s.buf.copy_within(p + 1..end + 1, p);
                    s.incr_len(-1);
                    end -= 1;
                    // Try again to merge the merged value with the next.
                    continue;
                }
            }
        }
        p += 1;
    }

    s.invalidate_cache();
    SparseSet::Done(1)
}

/// `hllSparseRegHisto`: sets `invalid` if the opcodes do not cover exactly
/// 16384 registers. The byte after the value reads as 0.
fn sparse_histo(sparse: &[u8], histo: &mut [i64; 64], invalid: &mut bool) {
    let at = |i: usize| sparse.get(i).copied().unwrap_or(0);
    let mut idx: i64 = 0;
    let mut p = 0;
    while p < sparse.len() {
        let b = sparse[p];
        if is_zero(b) {
            let runlen = zero_len(b) as i64;
            idx += runlen;
            histo[0] += runlen;
            p += 1;
        } else if is_xzero(b) {
            let runlen = xzero_len(b, at(p + 1)) as i64;
            idx += runlen;
            histo[0] += runlen;
            p += 2;
        } else {
            let runlen = val_len(b) as i64;
            idx += runlen;
            histo[val_value(b) as usize] += runlen;
            p += 1;
        }
    }
    if idx != HLL_REGISTERS as i64 {
        *invalid = true;
    }
}

// ============================ Cardinality ================================

/// The registers `hllCount` estimates from.
enum Regs<'a> {
    /// Packed 6-bit registers (after the header).
    Dense(&'a [u8]),
    /// Sparse opcodes (after the header).
    Sparse(&'a [u8]),
    /// One byte per register (Redis's internal HLL_RAW, for multi-key
    /// PFCOUNT).
    Raw(&'a [u8]),
}

/// Helper sigma of Ertl's "New cardinality estimation algorithms for
/// HyperLogLog sketches".
fn hll_sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let z_prime = z;
        z += x * y;
        y += y;
        if z_prime == z {
            return z;
        }
    }
}

/// Helper tau of the same paper. (GCC compiles Redis's `pow(1 - x, 2)` to
/// a multiplication.)
fn hll_tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let z_prime = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if z_prime == z {
            return z / 3.0;
        }
    }
}

/// x86-64's truncating double to int64 conversion: out of range gives
/// the "integer indefinite" `i64::MIN`.
fn cvttsd2si(x: f64) -> i64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if x.is_nan() || !(-TWO63..TWO63).contains(&x) {
        i64::MIN
    } else {
        x as i64
    }
}

/// `E = llroundl(e); return (uint64_t) E;` as Redis compiles on x86-64:
/// round half away from zero, out of range gives `LLONG_MIN`, and the
/// double to uint64 conversion goes through the signed one.
fn round_estimate(e: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    let r = if e.is_nan() || !(-TWO63..TWO63).contains(&e) {
        i64::MIN
    } else {
        e.round() as i64
    };
    let d = r as f64;
    if d < TWO63 {
        cvttsd2si(d) as u64
    } else {
        (cvttsd2si(d - TWO63) as u64) ^ (1 << 63)
    }
}

/// `hllCount`: the estimated cardinality, with Ertl's improved estimator.
/// Sets `invalid` if sparse registers are corrupted.
fn hll_count(regs: Regs, invalid: &mut bool) -> u64 {
    let m = HLL_REGISTERS as f64;
    let mut histo = [0i64; 64];
    match regs {
        Regs::Dense(r) => dense_histo(r, &mut histo),
        Regs::Sparse(s) => sparse_histo(s, &mut histo, invalid),
        Regs::Raw(r) => {
            for &b in r.iter().take(HLL_REGISTERS) {
                histo[(b & 63) as usize] += 1;
            }
        }
    }
    let q = HLL_Q as usize;
    let mut z = m * hll_tau((m - histo[q + 1] as f64) / m);
    for j in (1..=q).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * hll_sigma(histo[0] as f64 / m);
    round_estimate(HLL_ALPHA_INF * m * m / z)
}

/// `hllCount` of a whole validated HLL string.
fn count_hll(v: &[u8], invalid: &mut bool) -> u64 {
    let body = &v[HLL_HDR_SIZE.min(v.len())..];
    if v.get(ENC) == Some(&HLL_DENSE) {
        hll_count(Regs::Dense(body), invalid)
    } else {
        hll_count(Regs::Sparse(body), invalid)
    }
}

/// `hllAdd`: 1 if a register changed, 0 if not, -1 if corrupted.
fn hll_add(s: &mut Sds, ele: &[u8], max_bytes: usize) -> i32 {
    match s.encoding() {
        HLL_DENSE => dense_add(s.registers_mut(), ele) as i32,
        HLL_SPARSE => {
            let (index, count) = pat_len(ele);
            sparse_set(s, index, count, max_bytes)
        }
        _ => -1,
    }
}

/// `hllMerge`: `max[i] = MAX(max[i], hll[i])` for a validated HLL string;
/// `Err` if its sparse registers are corrupted.
fn hll_merge(max: &mut [u8; HLL_REGISTERS], v: &[u8]) -> Result<(), ()> {
    let body = &v[HLL_HDR_SIZE.min(v.len())..];
    if v.get(ENC) == Some(&HLL_DENSE) {
        for (i, m) in max.iter_mut().enumerate() {
            let val = dense_get(body, i);
            if val > *m {
                *m = val;
            }
        }
        return Ok(());
    }
    let at = |i: usize| body.get(i).copied().unwrap_or(0);
    let mut i: usize = 0;
    let mut p = 0;
    while p < body.len() {
        let b = body[p];
        if is_zero(b) {
            i += zero_len(b);
            p += 1;
        } else if is_xzero(b) {
            i += xzero_len(b, at(p + 1));
            p += 2;
        } else {
            let runlen = val_len(b);
            let regval = val_value(b);
            if runlen + i > HLL_REGISTERS {
                return Err(()); // Overflow.
            }
            for m in &mut max[i..i + runlen] {
                if regval > *m {
                    *m = regval;
                }
            }
            i += runlen;
            p += 1;
        }
    }
    if i != HLL_REGISTERS {
        return Err(());
    }
    Ok(())
}

// ============================ Key access =================================

/// Why a value is not usable as an HLL.
enum Bad {
    /// Not a string: the usual WRONGTYPE error.
    WrongType,
    /// A string that is not an HLL.
    NotHll,
}

/// Redis's `isHLLObjectOrReply` checks, without the reply: a string with
/// the magic, a known encoding, and the exact length if dense.
fn check_hll(v: &Value) -> Result<(), Bad> {
    let Value::Str(s) = v else {
        return Err(Bad::WrongType);
    };
    let b: &[u8] = match s {
        Str::Int(_) | Str::IntOwned(_) => return Err(Bad::NotHll),
        Str::Emb(b) => b,
        Str::Raw(v) => v,
    };
    if b.len() < HLL_HDR_SIZE
        || &b[..4] != b"HYLL"
        || b[ENC] > HLL_MAX_ENCODING
        || (b[ENC] == HLL_DENSE && b.len() != HLL_DENSE_SIZE)
    {
        return Err(Bad::NotHll);
    }
    Ok(())
}

fn reply_bad(cx: &mut Ctx, bad: Bad) {
    match bad {
        Bad::WrongType => cx.wrongtype(),
        Bad::NotHll => cx.error(WRONGTYPE_HLL_ERR),
    }
}

/// The bytes of a string value, for validated HLLs (never ints).
fn str_slice(v: &Value) -> &[u8] {
    match v {
        Value::Str(Str::Emb(b)) => b,
        Value::Str(Str::Raw(v)) => v,
        _ => &[],
    }
}

/// `dbUnshareStringValue` then takes the buffer out of the entry, leaving
/// an empty raw string until [`put_back`].
fn take_raw(v: &mut Value) -> Vec<u8> {
    match v {
        Value::Str(s) => std::mem::take(s.make_raw()),
        _ => Vec::new(),
    }
}

/// Stores an edited HLL: in place (keeping the TTL) if the key existed,
/// else as a new key.
fn put_back(cx: &mut Ctx, key: &Bytes, v: Vec<u8>, existed: bool) {
    if existed {
        if let Some(e) = cx.db().keys.get_mut(key) {
            e.value = Value::Str(Str::Raw(v));
        }
    } else {
        let lru = cx.lru_now();
        cx.db().set(key.clone(), Value::Str(Str::Raw(v)), lru);
    }
}

/// Looks up a source HLL for reading and merges it into `max`. Returns
/// whether it was dense; `None` after replying an error.
fn merge_source(cx: &mut Ctx, key: &[u8], max: &mut [u8; HLL_REGISTERS]) -> Option<bool> {
    let res = match cx.lookup_read(key) {
        None => return Some(false),
        Some(e) => match check_hll(&e.value) {
            Err(bad) => Err(Some(bad)),
            Ok(()) => {
                let v = str_slice(&e.value);
                let dense = v.get(ENC) == Some(&HLL_DENSE);
                hll_merge(max, v).map(|()| dense).map_err(|()| None)
            }
        },
    };
    match res {
        Ok(dense) => Some(dense),
        Err(Some(bad)) => {
            reply_bad(cx, bad);
            None
        }
        Err(None) => {
            cx.error(INVALID_HLL_ERR);
            None
        }
    }
}

// ============================ Commands ===================================

/// PFADD key [element ...]: 1 if a register changed or the key was created.
pub fn pfadd(cx: &mut Ctx) {
    let sparse_max = cx.node.config.hll_sparse_max_bytes.max(0) as usize;
    let key = cx.argv[1].clone();
    let (mut v, existed) = match cx.lookup_write(&key) {
        None => (create_hll(), false),
        Some(e) => match check_hll(&e.value) {
            Ok(()) => (take_raw(&mut e.value), true),
            Err(bad) => return reply_bad(cx, bad),
        },
    };
    let mut updated: u64 = u64::from(!existed);
    let mut corrupted = false;
    {
        let mut s = Sds::open(&mut v);
        for ele in &cx.argv[2..] {
            match hll_add(&mut s, ele, sparse_max) {
                1 => updated += 1,
                -1 => {
                    corrupted = true;
                    break;
                }
                _ => {}
            }
        }
        if !corrupted && updated > 0 {
            s.invalidate_cache();
        }
    }
    put_back(cx, &key, v, existed);
    if corrupted {
        return cx.error(INVALID_HLL_ERR);
    }
    if updated > 0 {
        cx.notify(STRING, "pfadd", &key);
        cx.dirty(updated);
    }
    cx.out().int(i64::from(updated > 0));
}

/// What single-key PFCOUNT found.
enum Card {
    Missing,
    Bad(Bad),
    Corrupted,
    Cached(u64),
    Computed(u64),
}

/// PFCOUNT key [key ...]: the cardinality of one HLL (using and refreshing
/// its cache), or of the union of several.
pub fn pfcount(cx: &mut Ctx) {
    if cx.argv.len() > 2 {
        let mut max = [0u8; HLL_REGISTERS];
        for j in 1..cx.argv.len() {
            let key = cx.argv[j].clone();
            if merge_source(cx, &key, &mut max).is_none() {
                return;
            }
        }
        let card = hll_count(Regs::Raw(&max), &mut false);
        return cx.out().int(card as i64);
    }
    let key = cx.argv[1].clone();
    let card = match cx.lookup_read(&key) {
        None => Card::Missing,
        Some(e) => match check_hll(&e.value) {
            Err(bad) => Card::Bad(bad),
            Ok(()) => match &mut e.value {
                Value::Str(s) => {
                    let v = s.make_raw();
                    let mut c = [0u8; 8];
                    c.copy_from_slice(&v[8..HLL_HDR_SIZE]);
                    if c[7] & 0x80 == 0 {
                        Card::Cached(u64::from_le_bytes(c))
                    } else {
                        let mut invalid = false;
                        let card = count_hll(v, &mut invalid);
                        if invalid {
                            Card::Corrupted
                        } else {
                            v[8..HLL_HDR_SIZE].copy_from_slice(&card.to_le_bytes());
                            Card::Computed(card)
                        }
                    }
                }
                _ => Card::Bad(Bad::WrongType),
            },
        },
    };
    match card {
        Card::Missing => cx.out().int(0),
        Card::Bad(bad) => reply_bad(cx, bad),
        Card::Corrupted => cx.error(INVALID_HLL_ERR),
        Card::Cached(c) => cx.out().int(c as i64),
        Card::Computed(c) => {
            cx.dirty(1);
            cx.out().int(c as i64);
        }
    }
}

/// PFMERGE destkey [sourcekey ...]: the destination (itself one of the
/// sources) becomes the union.
pub fn pfmerge(cx: &mut Ctx) {
    let sparse_max = cx.node.config.hll_sparse_max_bytes.max(0) as usize;
    let mut max = [0u8; HLL_REGISTERS];
    let mut use_dense = false;
    for j in 1..cx.argv.len() {
        let key = cx.argv[j].clone();
        match merge_source(cx, &key, &mut max) {
            None => return,
            Some(dense) => use_dense |= dense,
        }
    }
    let key = cx.argv[1].clone();
    let (mut v, existed) = match cx.lookup_write(&key) {
        None => (create_hll(), false),
        // Already validated as a source.
        Some(e) => (take_raw(&mut e.value), true),
    };
    let mut corrupted = false;
    {
        let mut s = Sds::open(&mut v);
        if use_dense && sparse_to_dense(&mut s).is_err() {
            corrupted = true;
        } else {
            for (j, &m) in max.iter().enumerate() {
                if m == 0 {
                    continue;
                }
                match s.encoding() {
                    HLL_DENSE => {
                        dense_set(s.registers_mut(), j, m);
                    }
                    HLL_SPARSE => {
                        sparse_set(&mut s, j, m, sparse_max);
                    }
                    _ => {}
                }
            }
            s.invalidate_cache();
        }
    }
    put_back(cx, &key, v, existed);
    if corrupted {
        return cx.error(INVALID_HLL_ERR);
    }
    // PFMERGE's event is "pfadd", as in Redis.
    cx.notify(STRING, "pfadd", &key);
    cx.dirty(1);
    cx.out().ok();
}

/// The bytes of an argument up to its first NUL, as C's string functions
/// see them.
fn cstr(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(n) => &b[..n],
        None => b,
    }
}

/// What a PFDEBUG subcommand replies.
enum Debug {
    Registers(Vec<u8>),
    Decoded(Vec<u8>),
    Status(&'static str),
    Int(i64),
    Error(Vec<u8>),
}

/// PFDEBUG GETREG|DECODE|ENCODING|TODENSE key
pub fn pfdebug(cx: &mut Ctx) {
    let key = cx.argv[2].clone();
    let v = match cx.lookup_write(&key) {
        None => return cx.error("ERR The specified key does not exist"),
        Some(e) => match check_hll(&e.value) {
            Ok(()) => take_raw(&mut e.value),
            Err(bad) => return reply_bad(cx, bad),
        },
    };
    let mut v = v;
    let cmd = cstr(&cx.argv[1]).to_vec();
    let argc = cx.argv.len();
    let mut dirty = false;
    let reply = {
        let mut s = Sds::open(&mut v);
        let arity_err = || {
            let mut m = b"ERR Wrong number of arguments for the '".to_vec();
            m.extend_from_slice(&cmd);
            m.extend_from_slice(b"' subcommand");
            Debug::Error(m)
        };
        if cmd.eq_ignore_ascii_case(b"getreg") {
            let was_sparse = s.encoding() == HLL_SPARSE;
            if argc != 3 {
                arity_err()
            } else if was_sparse && sparse_to_dense(&mut s).is_err() {
                Debug::Error(INVALID_HLL_ERR.as_bytes().to_vec())
            } else {
                // Forces propagation of the encoding change in Redis.
                dirty = was_sparse;
                let regs = &s.buf[HLL_HDR_SIZE..];
                Debug::Registers((0..HLL_REGISTERS).map(|j| dense_get(regs, j)).collect())
            }
        } else if cmd.eq_ignore_ascii_case(b"decode") {
            if argc != 3 {
                arity_err()
            } else if s.encoding() != HLL_SPARSE {
                Debug::Error(b"ERR HLL encoding is not sparse".to_vec())
            } else {
                Debug::Decoded(decode_sparse(&s.buf[HLL_HDR_SIZE..s.len]))
            }
        } else if cmd.eq_ignore_ascii_case(b"encoding") {
            if argc != 3 {
                arity_err()
            } else if s.encoding() == HLL_DENSE {
                Debug::Status("dense")
            } else {
                Debug::Status("sparse")
            }
        } else if cmd.eq_ignore_ascii_case(b"todense") {
            if argc != 3 {
                arity_err()
            } else if s.encoding() == HLL_SPARSE {
                if sparse_to_dense(&mut s).is_err() {
                    Debug::Error(INVALID_HLL_ERR.as_bytes().to_vec())
                } else {
                    dirty = true;
                    Debug::Int(1)
                }
            } else {
                Debug::Int(0)
            }
        } else {
            let mut m = b"ERR Unknown PFDEBUG subcommand '".to_vec();
            m.extend_from_slice(&cmd);
            m.push(b'\'');
            Debug::Error(m)
        }
    };
    put_back(cx, &key, v, true);
    if dirty {
        cx.dirty(1);
    }
    match reply {
        Debug::Registers(regs) => {
            let out = cx.out();
            out.array(regs.len());
            for r in regs {
                out.int(r as i64);
            }
        }
        Debug::Decoded(d) => cx.out().bulk(&d),
        Debug::Status(st) => cx.out().simple(st),
        Debug::Int(n) => cx.out().int(n),
        Debug::Error(m) => {
            let code = if m.starts_with(b"INVALIDOBJ") {
                "INVALIDOBJ"
            } else {
                "ERR"
            };
            cx.node.count_error(code);
            cx.out().error_bytes(&m);
        }
    }
}

/// PFDEBUG DECODE's text: `z:N`, `Z:N` and `v:VAL,N` separated by spaces.
fn decode_sparse(sparse: &[u8]) -> Vec<u8> {
    let at = |i: usize| sparse.get(i).copied().unwrap_or(0);
    let mut out = Vec::new();
    let mut p = 0;
    while p < sparse.len() {
        let b = sparse[p];
        if is_zero(b) {
            out.extend_from_slice(format!("z:{} ", zero_len(b)).as_bytes());
            p += 1;
        } else if is_xzero(b) {
            out.extend_from_slice(format!("Z:{} ", xzero_len(b, at(p + 1))).as_bytes());
            p += 2;
        } else {
            out.extend_from_slice(format!("v:{},{} ", val_value(b), val_len(b)).as_bytes());
            p += 1;
        }
    }
    // sdstrim(decoded, " ")
    while out.last() == Some(&b' ') {
        out.pop();
    }
    out
}

/// PFSELFTEST: checks the dense register packing and that the sparse and
/// dense representations agree on 10 million elements, as Redis does.
pub fn pfselftest(cx: &mut Ctx) {
    let result = selftest(&mut cx.node.rng, SPARSE_MAX_BYTES);
    match result {
        Ok(()) => cx.out().ok(),
        Err(msg) => cx.error(&msg),
    }
}

fn selftest(rng: &mut impl RngCore, max_bytes: usize) -> Result<(), String> {
    // C's rand(): 31 random bits.
    let mut rand = || rng.next_u32() & 0x7fff_ffff;
    let mut bitcounters = vec![0u8; HLL_DENSE_SIZE + 1];
    let mut bytecounters = vec![0u8; HLL_REGISTERS];

    // Test 1: registers keep their values and do not disturb neighbours.
    for _ in 0..1000 {
        for (i, b) in bytecounters.iter_mut().enumerate() {
            let r = (rand() & HLL_REGISTER_MAX as u32) as u8;
            *b = r;
            dense_set_raw(&mut bitcounters[HLL_HDR_SIZE..], i, r);
        }
        for (i, &b) in bytecounters.iter().enumerate() {
            let val = dense_get(&bitcounters[HLL_HDR_SIZE..], i);
            if val != b {
                return Err(format!(
                    "ERR TESTFAILED Register {i} should be {b} but is {val}"
                ));
            }
        }
    }

    // Test 2: approximation error, dense and sparse side by side.
    bitcounters[HLL_HDR_SIZE..].fill(0);
    let mut o = create_hll();
    let mut sparse = Sds::open(&mut o);
    let relerr = 1.04 / (HLL_REGISTERS as f64).sqrt();
    let mut checkpoint: i64 = 1;
    let seed = rand() as u64 | (rand() as u64) << 32;
    for j in 1..=10_000_000u64 {
        let ele = (j ^ seed).to_ne_bytes();
        dense_add(&mut bitcounters[HLL_HDR_SIZE..], &ele);
        hll_add(&mut sparse, &ele, max_bytes);
        if j as i64 != checkpoint {
            continue;
        }
        if (j as usize) < max_bytes / 2 && sparse.encoding() != HLL_SPARSE {
            return Err("ERR TESTFAILED sparse encoding not used".into());
        }
        let dense_card = count_hll(&bitcounters[..HLL_DENSE_SIZE], &mut false);
        let sparse_card = count_hll(&sparse.buf[..sparse.len], &mut false);
        if dense_card != sparse_card {
            return Err("ERR TESTFAILED dense/sparse disagree".into());
        }
        let abserr = (checkpoint - dense_card as i64).unsigned_abs();
        let mut maxerr = (relerr * 6.0 * checkpoint as f64).ceil() as u64;
        if j == 10 {
            maxerr = 1;
        }
        if abserr > maxerr {
            return Err(format!(
                "ERR TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}"
            ));
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(7)
    }

    /// The registers of a whole HLL string, decoded through the dense form.
    fn registers(v: &[u8]) -> Vec<u8> {
        let mut v = v.to_vec();
        let mut s = Sds::open(&mut v);
        sparse_to_dense(&mut s).expect("valid HLL");
        let regs = s.buf[HLL_HDR_SIZE..s.len].to_vec();
        (0..HLL_REGISTERS).map(|j| dense_get(&regs, j)).collect()
    }

    #[test]
    fn pattern_length_and_index() {
        // "a" hashes to register 12711 with pattern "01" (as PFDEBUG shows).
        assert_eq!(pat_len(b"a"), (12711, 2));
        for ele in [&b""[..], b"x", b"hello"] {
            let (index, count) = pat_len(ele);
            assert!(index < HLL_REGISTERS);
            assert!((1..=HLL_Q as u8 + 1).contains(&count));
        }
    }

    #[test]
    fn empty_hll_layout() {
        let v = create_hll();
        assert_eq!(&v[..], b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0\x7f\xff");
        assert_eq!(count_hll(&v, &mut false), 0);
        assert!(registers(&v).iter().all(|&r| r == 0));
    }

    #[test]
    fn dense_register_packing_round_trip() {
        let mut r = rng();
        let mut regs = vec![0u8; HLL_DENSE_SIZE - HLL_HDR_SIZE + 1];
        let mut expect = vec![0u8; HLL_REGISTERS];
        for _ in 0..20 {
            for (i, e) in expect.iter_mut().enumerate() {
                *e = (r.next_u32() & 63) as u8;
                dense_set_raw(&mut regs, i, *e);
            }
            for (i, &e) in expect.iter().enumerate() {
                assert_eq!(dense_get(&regs, i), e, "register {i}");
            }
            // The terminator after the last register is never touched.
            assert_eq!(regs[HLL_DENSE_SIZE - HLL_HDR_SIZE], 0);
        }
        // Layout from hyperloglog.c: register 0 in the low 6 bits of byte
        // 0, register 1 in its top 2 bits and the low 4 bits of byte 1.
        let mut regs = vec![0u8; 4];
        dense_set_raw(&mut regs, 0, 0x3f);
        assert_eq!(regs, [0x3f, 0, 0, 0]);
        dense_set_raw(&mut regs, 1, 0x3f);
        assert_eq!(regs, [0xff, 0x0f, 0, 0]);
        dense_set_raw(&mut regs, 3, 0x21);
        assert_eq!(regs, [0xff, 0x0f, 0x84, 0]);
    }

    #[test]
    fn sparse_and_dense_agree() {
        let mut r = rng();
        for n in [1usize, 10, 100, 1000, 3000] {
            let mut sparse = create_hll();
            let mut dense = create_hll();
            {
                let mut d = Sds::open(&mut dense);
                sparse_to_dense(&mut d).expect("empty HLL converts");
            }
            let mut promoted = create_hll();
            for _ in 0..n {
                let ele = r.next_u64().to_le_bytes();
                let mut s = Sds::open(&mut sparse);
                let a = hll_add(&mut s, &ele, usize::MAX);
                drop(s);
                let mut d = Sds::open(&mut dense);
                let b = hll_add(&mut d, &ele, usize::MAX);
                drop(d);
                assert_eq!(a, b);
                let mut p = Sds::open(&mut promoted);
                hll_add(&mut p, &ele, SPARSE_MAX_BYTES);
            }
            assert_eq!(sparse[ENC], HLL_SPARSE);
            assert_eq!(dense[ENC], HLL_DENSE);
            assert_eq!(dense.len(), HLL_DENSE_SIZE);
            assert_eq!(registers(&sparse), registers(&dense));
            assert_eq!(registers(&promoted), registers(&dense));
            assert!(promoted.len() <= SPARSE_MAX_BYTES || promoted[ENC] == HLL_DENSE);
            let c = count_hll(&dense, &mut false);
            let mut invalid = false;
            assert_eq!(count_hll(&sparse, &mut invalid), c);
            assert!(!invalid);
            let mut max = [0u8; HLL_REGISTERS];
            hll_merge(&mut max, &sparse).expect("valid");
            assert_eq!(hll_count(Regs::Raw(&max), &mut false), c);
            assert_eq!(max.to_vec(), registers(&dense));
            // The estimate is within a few standard errors.
            let err = (c as f64 - n as f64).abs() / n as f64;
            assert!(err < 0.05 || n < 100, "n={n} card={c}");
        }
    }

    #[test]
    fn sparse_opcodes_merge() {
        // Two adjacent registers with the same value share one VAL opcode.
        let mut v = create_hll();
        let mut s = Sds::open(&mut v);
        assert_eq!(sparse_set(&mut s, 100, 3, SPARSE_MAX_BYTES), 1);
        assert_eq!(sparse_set(&mut s, 101, 3, SPARSE_MAX_BYTES), 1);
        assert_eq!(sparse_set(&mut s, 101, 2, SPARSE_MAX_BYTES), 0);
        drop(s);
        // XZERO:100 VAL:3,2 XZERO:16282
        assert_eq!(
            decode_sparse(&v[HLL_HDR_SIZE..]),
            b"Z:100 v:3,2 Z:16282".to_vec()
        );
        assert_eq!(v[CARD_MSB] & 0x80, 0x80);
        // A count above 32 promotes.
        let mut s = Sds::open(&mut v);
        assert_eq!(sparse_set(&mut s, 5, 40, SPARSE_MAX_BYTES), 1);
        drop(s);
        assert_eq!(v[ENC], HLL_DENSE);
        let regs = registers(&v);
        assert_eq!((regs[5], regs[100], regs[101], regs[102]), (40, 3, 3, 0));
    }

    #[test]
    fn corrupted_sparse_never_panics() {
        let mut r = rng();
        for round in 0..3000 {
            let len = (r.next_u32() % 40) as usize;
            let mut v = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80".to_vec();
            for _ in 0..len {
                v.push(r.next_u32() as u8);
            }
            if round % 3 == 0 {
                v.extend_from_slice(&[0x7f, 0xff]);
            }
            let _ = count_hll(&v, &mut false);
            let mut max = [0u8; HLL_REGISTERS];
            let _ = hll_merge(&mut max, &v);
            let _ = decode_sparse(&v[HLL_HDR_SIZE..]);
            let mut w = v.clone();
            let mut s = Sds::open(&mut w);
            for _ in 0..20 {
                let ele = r.next_u64().to_le_bytes();
                let _ = hll_add(&mut s, &ele, SPARSE_MAX_BYTES);
            }
            drop(s);
            let mut s = Sds::open(&mut w);
            let _ = sparse_to_dense(&mut s);
        }
    }

    #[test]
    fn estimator_edges() {
        // All registers at 63 (only in a corrupted dense HLL): z is 0 and
        // Redis's llroundl(inf) gives LLONG_MIN, read back as 2^63.
        let regs = vec![0xffu8; HLL_DENSE_SIZE - HLL_HDR_SIZE];
        assert_eq!(hll_count(Regs::Dense(&regs), &mut false), 1 << 63);
        assert_eq!(round_estimate(f64::INFINITY), 1 << 63);
        assert_eq!(round_estimate(2.5), 3);
        assert_eq!(round_estimate(0.0), 0);
        assert_eq!(hll_sigma(1.0), f64::INFINITY);
        assert_eq!(hll_tau(1.0), 0.0);
    }

    #[test]
    fn selftest_passes() {
        assert_eq!(selftest(&mut rng(), SPARSE_MAX_BYTES), Ok(()));
    }

    #[test]
    fn murmurhash64a_known_values() {
        // Computed with Redis's C implementation and seed 0xadc83b19.
        let cases: [(&[u8], u64); 6] = [
            (b"", 0xd8dfea6585bc9732),
            (b"a", 0x53d2470a9b43b1a7),
            (b"foo", 0xe64609b8b0141cb4),
            (b"hello world", 0xa919bc3051f624b7),
            (b"0123456789abcdef", 0x9f8565428eaa573d),
            (
                b"The quick brown fox jumps over the lazy dog",
                0x51606c5c5b561ace,
            ),
        ];
        for (s, h) in cases {
            assert_eq!(murmurhash64a(s, 0xadc83b19), h, "{:?}", s);
        }
    }
}
