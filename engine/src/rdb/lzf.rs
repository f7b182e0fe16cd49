//! LZF, bit for bit as Redis 7.0's `lzf_c.c` / `lzf_d.c` (liblzf 3.6 with
//! `HLOG 16`, `VERY_FAST`; unlike older liblzf, a match may start in the
//! last four bytes, which DUMP comparisons with Redis confirm).
//!
//! Why not the `lzf` crate: its compressor sizes the output buffer to the
//! input, while Redis gives `len - 4` and gives up as soon as a write would
//! pass that bound, and the point where it gives up decides whether Redis
//! stores a string compressed or raw. Byte-identical RDB and DUMP output
//! needs the same bound and the same match search, so both are here (and
//! the crate is deprecated).

/// log2 of the hash table size: part of the format's determinism, since
/// collisions decide which matches are found.
const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// Largest expansion of LZF data: a 3-byte back-reference yields 264 bytes.
/// A claimed decompressed length beyond `compressed * MAX_RATIO` is a lie,
/// refused before allocating.
pub const MAX_RATIO: usize = 88;

/// The compressor's hash table, reused across calls. Redis keeps it on the
/// stack uninitialised; we stamp each slot with the call it was written in
/// so a fresh call sees only its own entries, without clearing 64K slots
/// for every 21-byte string.
#[derive(Default)]
pub struct Compressor {
    /// `(epoch << 32) | position`.
    table: Vec<u64>,
    epoch: u32,
    /// The output, reused: a save compresses most of its strings, and an
    /// allocation for each was a measurable part of SAVE.
    out: Vec<u8>,
}

/// An output buffer past this size is not kept for the next call.
const KEEP_OUT: usize = 1 << 20;

thread_local! {
    /// The table of the last compressor dropped on this thread, with its
    /// epoch (so its old entries stay stale): every RDB writer has its own
    /// compressor, and a fresh 512 KiB table per save (zeroed pages from
    /// the OS) cost more than a small save itself.
    static SPARE_TABLE: std::cell::Cell<Option<(Vec<u64>, u32)>> =
        const { std::cell::Cell::new(None) };
}

impl Drop for Compressor {
    fn drop(&mut self) {
        if !self.table.is_empty() {
            let table = std::mem::take(&mut self.table);
            let epoch = self.epoch;
            // Thread exit: the table is simply freed.
            let _ = SPARE_TABLE.try_with(|s| s.set(Some((table, epoch))));
        }
    }
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor").finish_non_exhaustive()
    }
}

#[inline]
fn idx(h: u32) -> usize {
    ((h >> (3 * 8 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

impl Compressor {
    /// `lzf_compress(input, len, out, out_len)`: the compressed bytes, or
    /// None if they would not fit in `out_len` bytes (Redis then stores the
    /// data uncompressed). Inputs of 4 GiB or more are not compressed. The
    /// bytes live in the compressor until its next call.
    pub fn compress(&mut self, input: &[u8], out_len: usize) -> Option<&[u8]> {
        let in_len = input.len();
        if in_len == 0 || out_len == 0 || u32::try_from(in_len).is_err() {
            return None;
        }
        if self.table.is_empty() {
            match SPARE_TABLE.with(|s| s.take()) {
                Some((table, epoch)) => {
                    self.table = table;
                    self.epoch = epoch;
                }
                None => self.table = vec![0; HSIZE],
            }
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.table.iter_mut().for_each(|s| *s = 0);
            self.epoch = 1;
        }
        let stamp = (self.epoch as u64) << 32;
        let epoch = self.epoch;
        let table = &mut self.table;
        let get = |table: &Vec<u64>, slot: usize| -> Option<usize> {
            let v = table[slot];
            ((v >> 32) as u32 == epoch).then_some((v & 0xffff_ffff) as usize)
        };

        // Slack past `out_len`: the C code may store one byte at out_end
        // (its buffer is out_len + 1) before it notices.
        if self.out.capacity() > KEEP_OUT && out_len < KEEP_OUT {
            self.out = Vec::new();
        }
        let out = &mut self.out;
        out.clear();
        out.resize(out_len + 8, 0);
        let mut ip = 0usize;
        let mut op = 1usize; // start run
        let mut lit = 0usize;
        let mut hval: u32 = if in_len >= 2 {
            ((input[0] as u32) << 8) | input[1] as u32
        } else {
            0
        };

        while ip + 2 < in_len {
            hval = (hval << 8) | input[ip + 2] as u32;
            let slot = idx(hval);
            let reference = get(table, slot);
            table[slot] = stamp | ip as u64;

            let found = reference.filter(|&r| {
                let off = ip - r - 1;
                off < MAX_OFF
                    && r > 0
                    && input[r] == input[ip]
                    && input[r + 1] == input[ip + 1]
                    && input[r + 2] == input[ip + 2]
            });
            if let Some(r) = found {
                let off = ip - r - 1;
                let mut len = 2usize;
                let maxlen = (in_len - ip - len).min(MAX_REF);

                out[op - lit - 1] = (lit as u8).wrapping_sub(1); // stop run
                if lit == 0 {
                    op -= 1; // undo run if length is zero
                }
                if op + 3 + 1 >= out_len {
                    return None;
                }

                // The C code unrolls 16 compares when maxlen > 16, without
                // checking maxlen between them; then runs a do/while. Both
                // halves are kept so the match length is the same.
                let mut mismatch = false;
                if maxlen > 16 {
                    for _ in 0..16 {
                        len += 1;
                        if input[r + len] != input[ip + len] {
                            mismatch = true;
                            break;
                        }
                    }
                }
                if !mismatch {
                    loop {
                        len += 1;
                        if !(len < maxlen && input[r + len] == input[ip + len]) {
                            break;
                        }
                    }
                }

                len -= 2; // len is now #octets - 1
                ip += 1;
                if len < 7 {
                    out[op] = ((off >> 8) + (len << 5)) as u8;
                    op += 1;
                } else {
                    out[op] = ((off >> 8) + (7 << 5)) as u8;
                    out[op + 1] = (len - 7) as u8;
                    op += 2;
                }
                out[op] = off as u8;
                op += 1;
                lit = 0;
                op += 1; // start run

                ip += len + 1;
                if ip + 2 >= in_len {
                    break;
                }
                // VERY_FAST: rehash the last two positions of the match.
                ip -= 2;
                hval = ((input[ip] as u32) << 8) | input[ip + 1] as u32;
                hval = (hval << 8) | input[ip + 2] as u32;
                table[idx(hval)] = stamp | ip as u64;
                ip += 1;
                hval = (hval << 8) | input[ip + 2] as u32;
                table[idx(hval)] = stamp | ip as u64;
                ip += 1;
            } else {
                // One more literal byte.
                if op >= out_len {
                    return None;
                }
                lit += 1;
                out[op] = input[ip];
                op += 1;
                ip += 1;
                if lit == MAX_LIT {
                    out[op - lit - 1] = (lit - 1) as u8; // stop run
                    lit = 0;
                    op += 1; // start run
                }
            }
        }

        if op + 3 > out_len {
            return None; // at most 3 bytes can be missing here
        }
        while ip < in_len {
            lit += 1;
            out[op] = input[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                out[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
        }
        out[op - lit - 1] = (lit as u8).wrapping_sub(1); // end run
        if lit == 0 {
            op -= 1;
        }
        Some(&out[..op])
    }
}

/// Decompresses `input`, which must expand to exactly `out_len` bytes.
/// Every reference is bounds-checked; `out_len` must already have been
/// checked against [`MAX_RATIO`] by the caller.
pub fn decompress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(out_len);
    let mut ip = 0usize;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < (1 << 5) {
            // Literal run of ctrl + 1 bytes.
            let len = ctrl + 1;
            let lits = input.get(ip..ip + len)?;
            if out.len() + len > out_len {
                return None;
            }
            out.extend_from_slice(lits);
            ip += len;
        } else {
            // Back-reference.
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(ip)? as usize;
                ip += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + *input.get(ip)? as usize;
            ip += 1;
            let len = len + 2;
            if out.len() + len > out_len {
                return None;
            }
            let start = out.len().checked_sub(back + 1)?;
            // Byte by byte: the reference may overlap what it produces.
            for i in 0..len {
                let b = out[start + i];
                out.push(b);
            }
        }
    }
    (out.len() == out_len).then_some(out)
}
