//! Redis's listpack (`listpack.c`), the compact encoding of small hashes,
//! sorted sets and quicklist nodes in RDB version 10.
//!
//! ```text
//! <total-bytes u32 LE> <num-elements u16 LE> <entry>* <0xFF>
//! entry = <encoding+data> <backlen>
//! ```
//!
//! Encodings: `0xxxxxxx` 7-bit uint; `10xxxxxx` string of up to 63 bytes;
//! `110xxxxx yyyyyyyy` 13-bit int; `1110xxxx yyyyyyyy` string of up to 4095
//! bytes; `0xF0` + u32 length string; `0xF1`..`0xF4` 16/24/32/64-bit int.
//! `backlen` is the size of encoding+data, written so that it can be read
//! right to left. num-elements 65535 means "count them". A string that is
//! the canonical form of an i64 is stored as an integer (`lpStringToInt64`).

use super::RdbError;
use crate::resp::parse_i64;

pub const HEADER_SIZE: usize = 6;
const EOF: u8 = 0xFF;
/// num-elements value meaning "unknown" (`LP_HDR_NUMELE_UNKNOWN`).
const NUMELE_UNKNOWN: usize = 65535;

/// An element as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Entry<'_> {
    /// The element as bytes (integers in decimal).
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Entry::Int(v) => itoa::Buffer::new().format(v).as_bytes().to_vec(),
            Entry::Str(s) => s.to_vec(),
        }
    }
}

/// `lpEncodeBacklen`: `l` in 1 to 5 bytes, most significant group first,
/// every byte but the first flagged with 0x80.
fn encode_backlen(out: &mut Vec<u8>, l: usize) {
    let l = l as u64;
    if l <= 127 {
        out.push(l as u8);
    } else if l < 16383 {
        out.extend_from_slice(&[(l >> 7) as u8, (l & 127) as u8 | 128]);
    } else if l < 2097151 {
        out.extend_from_slice(&[
            (l >> 14) as u8,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]);
    } else if l < 268435455 {
        out.extend_from_slice(&[
            (l >> 21) as u8,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]);
    } else {
        out.extend_from_slice(&[
            (l >> 28) as u8,
            ((l >> 21) & 127) as u8 | 128,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]);
    }
}

/// `lpStringToInt64`: the string is stored as an integer when it is the
/// canonical decimal form of an i64 (the same rule as `string2ll`).
fn as_int(s: &[u8]) -> Option<i64> {
    parse_i64(s)
}

/// Appends one string element, encoding and backlen, to `out` (`lpAppend`:
/// a string that is an integer is stored as one). Streams append to their
/// live listpacks with this.
pub(crate) fn encode_str(out: &mut Vec<u8>, s: &[u8]) {
    if let Some(v) = as_int(s) {
        return encode_int(out, v);
    }
    let start = out.len();
    let len = s.len();
    if len < 64 {
        out.push(0x80 | len as u8);
    } else if len < 4096 {
        out.push(0xE0 | (len >> 8) as u8);
        out.push(len as u8);
    } else {
        out.push(0xF0);
        out.extend_from_slice(&(len as u32).to_le_bytes());
    }
    out.extend_from_slice(s);
    let l = out.len() - start;
    encode_backlen(out, l);
}

/// Appends one integer element, encoding and backlen, to `out`
/// (`lpAppendInteger`).
pub(crate) fn encode_int(out: &mut Vec<u8>, v: i64) {
    let start = out.len();
    if (0..=127).contains(&v) {
        out.push(v as u8);
    } else if (-4096..=4095).contains(&v) {
        let u = if v < 0 { (1 << 13) + v } else { v } as u64;
        out.push(0xC0 | (u >> 8) as u8);
        out.push(u as u8);
    } else if (-32768..=32767).contains(&v) {
        out.push(0xF1);
        out.extend_from_slice(&(v as i16).to_le_bytes());
    } else if (-8388608..=8388607).contains(&v) {
        out.push(0xF2);
        out.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
    } else if let Ok(v32) = i32::try_from(v) {
        out.push(0xF3);
        out.extend_from_slice(&v32.to_le_bytes());
    } else {
        out.push(0xF4);
        out.extend_from_slice(&v.to_le_bytes());
    }
    let l = out.len() - start;
    encode_backlen(out, l);
}

/// The size of the backlen that follows an entry of `l` bytes.
pub(crate) fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

/// Builds a listpack by appending, as `lpNew` + `lpAppend`.
#[derive(Debug, Clone)]
pub struct Builder {
    buf: Vec<u8>,
    count: usize,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    pub fn new() -> Builder {
        Builder {
            buf: vec![0; HEADER_SIZE],
            count: 0,
        }
    }

    /// Appends a string element (stored as an integer if it is one).
    pub fn push_str(&mut self, s: &[u8]) {
        encode_str(&mut self.buf, s);
        self.count += 1;
    }

    /// Appends an integer element (`lpAppendInteger`).
    pub fn push_int(&mut self, v: i64) {
        encode_int(&mut self.buf, v);
        self.count += 1;
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// The finished listpack: header filled in, terminator appended.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(EOF);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let n = self.count.min(NUMELE_UNKNOWN) as u16;
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

fn bad() -> RdbError {
    RdbError("bad listpack".into())
}

/// Decodes and validates a whole listpack (`lpValidateIntegrity` with deep
/// checks): header size and count, every entry inside the buffer, every
/// backlen exact, the terminator last.
pub fn decode(lp: &[u8]) -> Result<Vec<Entry<'_>>, RdbError> {
    if lp.len() < HEADER_SIZE + 1 {
        return Err(bad());
    }
    let total = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize;
    let numele = u16::from_le_bytes([lp[4], lp[5]]) as usize;
    if total != lp.len() || lp[lp.len() - 1] != EOF {
        return Err(bad());
    }
    let end = lp.len() - 1;
    // Each entry takes at least 2 bytes: no more than this many.
    let mut out = Vec::with_capacity(numele.min((end - HEADER_SIZE) / 2));
    let mut p = HEADER_SIZE;
    while p < end {
        let (entry, size) = decode_entry(&lp[p..end])?;
        let mut expect = Vec::with_capacity(5);
        encode_backlen(&mut expect, size);
        let back = lp.get(p + size..p + size + expect.len()).ok_or_else(bad)?;
        if back != expect.as_slice() || p + size + expect.len() > end {
            return Err(bad());
        }
        out.push(entry);
        p += size + expect.len();
    }
    if numele != NUMELE_UNKNOWN && numele != out.len() {
        return Err(bad());
    }
    Ok(out)
}

/// One entry at the start of `b` (which excludes the terminator): the
/// element and the size of its encoding+data.
pub(crate) fn decode_entry(b: &[u8]) -> Result<(Entry<'_>, usize), RdbError> {
    let first = *b.first().ok_or_else(bad)?;
    let take = |from: usize, n: usize| b.get(from..from + n).ok_or_else(bad);
    Ok(match first {
        0x00..=0x7F => (Entry::Int(first as i64), 1),
        0x80..=0xBF => {
            let len = (first & 0x3F) as usize;
            (Entry::Str(take(1, len)?), 1 + len)
        }
        0xC0..=0xDF => {
            let lo = take(1, 1)?[0];
            let u = (((first & 0x1F) as i64) << 8) | lo as i64;
            let v = if u >= 1 << 12 { u - (1 << 13) } else { u };
            (Entry::Int(v), 2)
        }
        0xE0..=0xEF => {
            let lo = take(1, 1)?[0];
            let len = (((first & 0x0F) as usize) << 8) | lo as usize;
            (Entry::Str(take(2, len)?), 2 + len)
        }
        0xF0 => {
            let l = take(1, 4)?;
            let len = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
            (Entry::Str(take(5, len)?), 5 + len)
        }
        0xF1 => {
            let d = take(1, 2)?;
            (Entry::Int(i16::from_le_bytes([d[0], d[1]]) as i64), 3)
        }
        0xF2 => {
            let d = take(1, 3)?;
            // Sign-extend 24 bits.
            let v = i32::from_le_bytes([0, d[0], d[1], d[2]]) >> 8;
            (Entry::Int(v as i64), 4)
        }
        0xF3 => {
            let d = take(1, 4)?;
            (
                Entry::Int(i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64),
                5,
            )
        }
        0xF4 => {
            let d = take(1, 8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(d);
            (Entry::Int(i64::from_le_bytes(a)), 9)
        }
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_encoding() {
        let big = vec![b'x'; 5000];
        let mid = vec![b'y'; 100];
        let items: Vec<&[u8]> = vec![
            b"0",
            b"127",
            b"128",
            b"-1",
            b"-4096",
            b"4095",
            b"4096",
            b"-32768",
            b"32767",
            b"-8388608",
            b"8388607",
            b"8388608",
            b"2147483647",
            b"-2147483648",
            b"2147483648",
            b"-9223372036854775808",
            b"9223372036854775807",
            b"",
            b"abc",
            b"007",
            b"-0",
            &mid,
            &big,
        ];
        let mut b = Builder::new();
        for i in &items {
            b.push_str(i);
        }
        let lp = b.finish();
        let got: Vec<Vec<u8>> = decode(&lp)
            .unwrap()
            .into_iter()
            .map(|e| e.to_vec())
            .collect();
        let want: Vec<Vec<u8>> = items.iter().map(|i| i.to_vec()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn matches_redis_bytes() {
        // RPUSH l a b 1 100 -5000 in Redis 7.0: the listpack inside DUMP.
        let mut b = Builder::new();
        for s in [&b"a"[..], b"b", b"1", b"100", b"-5000"] {
            b.push_str(s);
        }
        assert_eq!(
            b.finish(),
            b"\x15\x00\x00\x00\x05\x00\x81a\x02\x81b\x02\x01\x01d\x01\xf1x\xec\x03\xff"
        );
    }

    #[test]
    fn rejects_corruption() {
        let mut b = Builder::new();
        b.push_str(b"hello");
        b.push_str(b"12");
        let lp = b.finish();
        assert!(decode(&lp).is_ok());
        for i in 0..lp.len() {
            for bit in 0..8 {
                let mut c = lp.clone();
                c[i] ^= 1 << bit;
                // Must not panic; most flips must be caught.
                let _ = decode(&c);
            }
        }
        assert!(decode(&lp[..lp.len() - 1]).is_err());
        let mut wrong_count = lp.clone();
        wrong_count[4] = 3;
        assert!(decode(&wrong_count).is_err());
    }
}
