//! Redis's intset blob (`intset.c`): `<encoding u32 LE: 2, 4 or 8>
//! <length u32 LE> <values LE, sorted ascending, distinct>`.
//!
//! The width is kept as found: Redis never narrows an intset, so a set that
//! once held a large number keeps 64-bit slots, and DUMP shows it.

use super::RdbError;
use crate::commands::sets::IntSet;

fn bad() -> RdbError {
    RdbError("bad intset".into())
}

/// Serialises an intset in its current width.
pub fn encode(s: &IntSet, out: &mut Vec<u8>) {
    let (width, len) = match s {
        IntSet::W16(v) => (2u32, v.len()),
        IntSet::W32(v) => (4, v.len()),
        IntSet::W64(v) => (8, v.len()),
    };
    out.reserve(8 + width as usize * len);
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
    match s {
        IntSet::W16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        IntSet::W32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        IntSet::W64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
}

/// Size of the serialised intset (`intsetBlobLen`).
pub fn encoded_len(s: &IntSet) -> usize {
    8 + match s {
        IntSet::W16(v) => 2 * v.len(),
        IntSet::W32(v) => 4 * v.len(),
        IntSet::W64(v) => 8 * v.len(),
    }
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
    let body = &b[8..];
    fn ascending<T: PartialOrd>(v: &[T]) -> bool {
        v.windows(2).all(|w| w[0] < w[1])
    }
    let set = match width {
        2 => {
            let v: Box<[i16]> = body
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            if !ascending(&v) {
                return Err(bad());
            }
            IntSet::W16(v)
        }
        4 => {
            let v: Box<[i32]> = body
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if !ascending(&v) {
                return Err(bad());
            }
            IntSet::W32(v)
        }
        _ => {
            let v: Box<[i64]> = body
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    i64::from_le_bytes(a)
                })
                .collect();
            if !ascending(&v) {
                return Err(bad());
            }
            IntSet::W64(v)
        }
    };
    Ok(set)
}
