//! Decoders for the compact encodings of RDB versions before 10: the
//! ziplist (`ziplist.c`: lists, hashes and sorted sets up to Redis 6.2) and
//! the zipmap (`zipmap.c`: hashes before Redis 2.6). Only reading is
//! needed: Redis 7.0 converts both on load and never writes them.
//!
//! ```text
//! ziplist = <zlbytes u32 LE> <zltail u32 LE> <zllen u16 LE> <entry>* <0xFF>
//! entry   = <prevlen: 1 byte < 254, or 0xFE + u32 LE> <encoding> <data>
//! zipmap  = <zmlen u8> (<len> key <len> <free u8> value <free bytes>)* <0xFF>
//!           len: 1 byte < 254, or 0xFE + u32 LE
//! ```

use super::listpack::Entry;
use super::RdbError;

const ZIP_END: u8 = 0xFF;
const ZIP_BIG_PREVLEN: u8 = 0xFE;
const ZIPLIST_HEADER_SIZE: usize = 10;

fn bad_ziplist() -> RdbError {
    RdbError("bad ziplist".into())
}

/// Decodes and validates a whole ziplist (`ziplistValidateIntegrity`, deep):
/// header sizes, every entry inside the buffer, every prevlen equal to the
/// previous entry's size, the tail offset, the count unless it is 65535.
pub fn decode(zl: &[u8]) -> Result<Vec<Entry<'_>>, RdbError> {
    if zl.len() < ZIPLIST_HEADER_SIZE + 1 {
        return Err(bad_ziplist());
    }
    let bytes = u32::from_le_bytes([zl[0], zl[1], zl[2], zl[3]]) as usize;
    let tail = u32::from_le_bytes([zl[4], zl[5], zl[6], zl[7]]) as usize;
    let count = u16::from_le_bytes([zl[8], zl[9]]) as usize;
    if bytes != zl.len() || zl[zl.len() - 1] != ZIP_END {
        return Err(bad_ziplist());
    }
    let end = zl.len() - 1;
    let mut out = Vec::with_capacity(count.min((end - ZIPLIST_HEADER_SIZE) / 2));
    let mut p = ZIPLIST_HEADER_SIZE;
    let mut prev_size = 0usize;
    let mut last_start = ZIPLIST_HEADER_SIZE;
    while p < end {
        let b = &zl[p..end];
        // prevlen
        let (prevlen, plen) = if b[0] < ZIP_BIG_PREVLEN {
            (b[0] as usize, 1)
        } else if b[0] == ZIP_BIG_PREVLEN {
            let d = b.get(1..5).ok_or_else(bad_ziplist)?;
            (u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize, 5)
        } else {
            return Err(bad_ziplist());
        };
        if prevlen != prev_size {
            return Err(bad_ziplist());
        }
        let (entry, size) = decode_entry(b, plen)?;
        out.push(entry);
        last_start = p;
        prev_size = size;
        p += size;
    }
    let expected_tail = if out.is_empty() {
        ZIPLIST_HEADER_SIZE
    } else {
        last_start
    };
    if tail != expected_tail || (count != u16::MAX as usize && count != out.len()) {
        return Err(bad_ziplist());
    }
    Ok(out)
}

/// The entry whose encoding starts at `b[plen]`: the element and the whole
/// entry's size (prevlen included).
fn decode_entry(b: &[u8], plen: usize) -> Result<(Entry<'_>, usize), RdbError> {
    let enc = *b.get(plen).ok_or_else(bad_ziplist)?;
    let take = |from: usize, n: usize| b.get(from..from + n).ok_or_else(bad_ziplist);
    let h = plen + 1; // first byte after the encoding's first byte
    Ok(match enc >> 6 {
        0 => {
            let len = (enc & 0x3F) as usize;
            (Entry::Str(take(h, len)?), h + len)
        }
        1 => {
            let lo = take(h, 1)?[0] as usize;
            let len = (((enc & 0x3F) as usize) << 8) | lo;
            (Entry::Str(take(h + 1, len)?), h + 1 + len)
        }
        2 => {
            if enc != 0x80 {
                return Err(bad_ziplist());
            }
            let l = take(h, 4)?;
            let len = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
            (Entry::Str(take(h + 4, len)?), h + 4 + len)
        }
        _ => match enc {
            0xC0 => {
                let d = take(h, 2)?;
                (Entry::Int(i16::from_le_bytes([d[0], d[1]]) as i64), h + 2)
            }
            0xD0 => {
                let d = take(h, 4)?;
                (
                    Entry::Int(i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64),
                    h + 4,
                )
            }
            0xE0 => {
                let d = take(h, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(d);
                (Entry::Int(i64::from_le_bytes(a)), h + 8)
            }
            0xF0 => {
                let d = take(h, 3)?;
                let v = i32::from_le_bytes([0, d[0], d[1], d[2]]) >> 8;
                (Entry::Int(v as i64), h + 3)
            }
            0xFE => {
                let d = take(h, 1)?;
                (Entry::Int(d[0] as i8 as i64), h + 1)
            }
            // 1111xxxx with xxxx in 0001..1101: the value xxxx - 1.
            0xF1..=0xFD => (Entry::Int((enc & 0x0F) as i64 - 1), h),
            _ => return Err(bad_ziplist()),
        },
    })
}

/// A zipmap field and its value.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

fn bad_zipmap() -> RdbError {
    RdbError("bad zipmap".into())
}

/// Reads a zipmap length at `p`: (length, bytes used).
fn zipmap_len(zm: &[u8], p: usize) -> Result<(usize, usize), RdbError> {
    let first = *zm.get(p).ok_or_else(bad_zipmap)?;
    match first {
        0..=253 => Ok((first as usize, 1)),
        254 => {
            let d = zm.get(p + 1..p + 5).ok_or_else(bad_zipmap)?;
            Ok((u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize, 5))
        }
        _ => Err(bad_zipmap()),
    }
}

/// Decodes and validates a whole zipmap (`zipmapValidateIntegrity`, deep):
/// field/value pairs in order.
pub fn decode_zipmap(zm: &[u8]) -> Result<Vec<Pair<'_>>, RdbError> {
    if zm.len() < 2 || zm[zm.len() - 1] != ZIP_END {
        return Err(bad_zipmap());
    }
    let claimed = zm[0] as usize;
    let end = zm.len() - 1;
    let mut out = Vec::new();
    let mut p = 1;
    while p < end {
        let (klen, n) = zipmap_len(zm, p)?;
        p += n;
        let key = zm.get(p..p + klen).ok_or_else(bad_zipmap)?;
        p += klen;
        let (vlen, n) = zipmap_len(zm, p)?;
        p += n;
        let free = *zm.get(p).ok_or_else(bad_zipmap)? as usize;
        p += 1;
        let value = zm.get(p..p + vlen).ok_or_else(bad_zipmap)?;
        p += vlen + free;
        if p > end {
            return Err(bad_zipmap());
        }
        out.push((key, value));
    }
    if p != end || (claimed < 254 && claimed != out.len()) {
        return Err(bad_zipmap());
    }
    Ok(out)
}

/// Builders used by tests to craft pre-7.0 files (Redis 7.0 cannot write
/// them any more).
#[cfg(test)]
pub mod craft {
    /// A ziplist of `items`, integers encoded as Redis 6 would.
    pub fn ziplist(items: &[&[u8]]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut prev = 0usize;
        let mut last = 10usize;
        for it in items {
            let start = body.len();
            last = 10 + start;
            if prev < 254 {
                body.push(prev as u8);
            } else {
                body.push(0xFE);
                body.extend_from_slice(&(prev as u32).to_le_bytes());
            }
            match crate::resp::parse_i64(it) {
                Some(v) if (0..=12).contains(&v) => body.push(0xF1 + v as u8),
                Some(v) if i8::try_from(v).is_ok() => {
                    body.push(0xFE);
                    body.push(v as i8 as u8);
                }
                Some(v) if i16::try_from(v).is_ok() => {
                    body.push(0xC0);
                    body.extend_from_slice(&(v as i16).to_le_bytes());
                }
                Some(v) if (-8388608..=8388607).contains(&v) => {
                    body.push(0xF0);
                    body.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
                }
                Some(v) if i32::try_from(v).is_ok() => {
                    body.push(0xD0);
                    body.extend_from_slice(&(v as i32).to_le_bytes());
                }
                Some(v) => {
                    body.push(0xE0);
                    body.extend_from_slice(&v.to_le_bytes());
                }
                None => {
                    let l = it.len();
                    if l < 64 {
                        body.push(l as u8);
                    } else if l < 16384 {
                        body.push(0x40 | (l >> 8) as u8);
                        body.push(l as u8);
                    } else {
                        body.push(0x80);
                        body.extend_from_slice(&(l as u32).to_be_bytes());
                    }
                    body.extend_from_slice(it);
                }
            }
            prev = body.len() - start;
        }
        let mut zl = Vec::new();
        zl.extend_from_slice(&((11 + body.len()) as u32).to_le_bytes());
        zl.extend_from_slice(&(last as u32).to_le_bytes());
        zl.extend_from_slice(&(items.len().min(65535) as u16).to_le_bytes());
        zl.extend_from_slice(&body);
        zl.push(0xFF);
        zl
    }

    /// A zipmap of `pairs`, with `free` spare bytes after each value.
    pub fn zipmap(pairs: &[(&[u8], &[u8])], free: u8) -> Vec<u8> {
        let mut zm = vec![pairs.len().min(254) as u8];
        let len = |zm: &mut Vec<u8>, l: usize| {
            if l < 254 {
                zm.push(l as u8);
            } else {
                zm.push(254);
                zm.extend_from_slice(&(l as u32).to_le_bytes());
            }
        };
        for (k, v) in pairs {
            len(&mut zm, k.len());
            zm.extend_from_slice(k);
            len(&mut zm, v.len());
            zm.push(free);
            zm.extend_from_slice(v);
            zm.extend(std::iter::repeat_n(0u8, free as usize));
        }
        zm.push(0xFF);
        zm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ziplist_round_trip() {
        let long = vec![b'z'; 300];
        let items: Vec<&[u8]> = vec![
            b"0",
            b"12",
            b"13",
            b"-1",
            b"127",
            b"-128",
            b"1000",
            b"-30000",
            b"100000",
            b"-8388608",
            b"2000000000",
            b"-9223372036854775808",
            b"a",
            b"",
            &long,
            b"tail",
        ];
        let zl = craft::ziplist(&items);
        let got: Vec<Vec<u8>> = decode(&zl)
            .unwrap()
            .into_iter()
            .map(|e| e.to_vec())
            .collect();
        let want: Vec<Vec<u8>> = items.iter().map(|i| i.to_vec()).collect();
        assert_eq!(got, want);
        for i in 0..zl.len() {
            let mut c = zl.clone();
            c[i] ^= 0x55;
            let _ = decode(&c);
        }
        assert!(decode(&zl[..zl.len() - 2]).is_err());
    }

    #[test]
    fn zipmap_round_trip() {
        let long = vec![b'v'; 400];
        let pairs: Vec<(&[u8], &[u8])> = vec![(b"f1", b"v1"), (b"f2", &long), (b"", b"")];
        let zm = craft::zipmap(&pairs, 3);
        assert_eq!(decode_zipmap(&zm).unwrap(), pairs);
        for i in 0..zm.len() {
            let mut c = zm.clone();
            c[i] ^= 0x21;
            let _ = decode_zipmap(&c);
        }
    }
}
