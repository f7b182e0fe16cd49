//! Redis's intset blob (`intset.c`): `<encoding u32 LE: 2, 4 or 8>
//! <length u32 LE> <values LE, sorted ascending, distinct>`.
//!
//! The width is kept as found: Redis never narrows an intset, so a set that
//! once held a large number keeps 64-bit slots, and DUMP shows it.

use super::RdbError;
use crate::commands::sets::{IntSet, Width};

fn bad() -> RdbError {
    RdbError("bad intset".into())
}

/// Serialises an intset in its current width.
pub fn encode(s: &IntSet, out: &mut Vec<u8>) {
    let width = s.width().bytes();
    out.reserve(8 + width * s.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    for v in s.iter() {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
}

/// Size of the serialised intset (`intsetBlobLen`).
pub fn encoded_len(s: &IntSet) -> usize {
    8 + s.width().bytes() * s.len()
}

/// Decodes and validates (`intsetValidateIntegrity`, deep): a known width,
/// a length matching the blob, values strictly ascending.
pub fn decode(b: &[u8]) -> Result<IntSet, RdbError> {
    if b.len() < 8 {
        return Err(bad());
    }
    let width = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) || len.checked_mul(width) != Some(b.len() - 8) {
        return Err(bad());
    }
    // Little-endian, sign-extended from `width` bytes.
    let values: Vec<i64> = b[8..]
        .chunks_exact(width)
        .map(|c| {
            let mut a = [if c[width - 1] & 0x80 != 0 { 0xff } else { 0 }; 8];
            a[..width].copy_from_slice(c);
            i64::from_le_bytes(a)
        })
        .collect();
    if !values.windows(2).all(|w| w[0] < w[1]) {
        return Err(bad());
    }
    let w = match width {
        2 => Width::W16,
        4 => Width::W32,
        _ => Width::W64,
    };
    Ok(IntSet::from_sorted(w, &values))
}
