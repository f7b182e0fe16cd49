//! The run's trace: one text line per event, hashed as it is written, and
//! printed only when asked for. Two runs of one seed must give the same
//! hash; a difference means something nondeterministic crept in. Without
//! `--trace` no text is built: the formatted pieces go straight into the
//! hash.
//!
//! The hash takes the stream eight bytes at a time (FNV-1a's xor-multiply
//! on words, with a rotation): byte-wise FNV-1a, one dependent multiply per
//! byte of every request and reply, was a few percent of a run. Bytes are
//! carried over between calls, so the hash depends only on the byte stream,
//! not on how it was cut into pieces (a line hashed whole with `--trace`
//! and in formatted pieces without it hash the same). Each step is a
//! bijection of the state, so any single changed word changes the hash.

use std::fmt::Write as _;

pub struct Trace {
    hash: u64,
    /// Bytes not yet mixed in (fewer than 8), little-endian in `pending`.
    pending: u64,
    pending_len: u32,
    lines: u64,
    verbose: bool,
}

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// Odd, so multiplying by it is a bijection.
const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

impl Trace {
    pub fn new(verbose: bool) -> Trace {
        Trace {
            hash: OFFSET,
            pending: 0,
            pending_len: 0,
            lines: 0,
            verbose,
        }
    }

    pub fn line(&mut self, line: &str) {
        self.hash_line(line);
        if self.verbose {
            tracing::info!(target: "sim", "{line}");
        }
    }

    /// Hashes a line without printing it.
    pub fn hash_line(&mut self, line: &str) {
        self.bytes(line.as_bytes());
        self.bytes(b"\n");
        self.lines += 1;
    }

    /// Hashes `<time> <args>` as a line (printing it if verbose).
    pub fn line_fmt(&mut self, time: u64, args: std::fmt::Arguments<'_>) {
        if self.verbose {
            let line = format!("{time} {args}");
            self.line(&line);
            return;
        }
        let _ = writeln!(HashWriter(self), "{time} {args}");
        self.lines += 1;
    }

    /// An event of the hot path (a request sent, bytes delivered, a disk
    /// operation): its tag, numbers and raw bytes are hashed as they are,
    /// without formatting (formatting was the simulator's largest cost),
    /// and `text` is built and printed only with `--trace`. The hash is
    /// therefore the same with and without `--trace`.
    pub fn event(
        &mut self,
        time: u64,
        tag: &str,
        nums: &[u64],
        raw: &[u8],
        text: impl FnOnce() -> String,
    ) {
        self.bytes(&time.to_le_bytes());
        self.bytes(tag.as_bytes());
        for n in nums {
            self.bytes(&n.to_le_bytes());
        }
        self.bytes(raw);
        self.lines += 1;
        if self.verbose {
            tracing::info!(target: "sim", "{time} {}", text());
        }
    }

    /// Hashes raw bytes (a request or reply as sent): cheaper than a
    /// readable rendering, and as exact.
    pub fn bytes(&mut self, data: &[u8]) {
        let mut words = data.chunks_exact(8);
        if self.pending_len == 0 {
            for w in &mut words {
                self.mix(u64::from_le_bytes(w.try_into().expect("8 bytes")));
            }
        } else {
            // Whole words through the carried bytes: the carry keeps its
            // length, and takes the top of each word.
            let shift = 8 * self.pending_len;
            for w in &mut words {
                let x = u64::from_le_bytes(w.try_into().expect("8 bytes"));
                let full = self.pending | (x << shift);
                self.pending = x >> (64 - shift);
                self.mix(full);
            }
        }
        for &b in words.remainder() {
            self.push_byte(b);
        }
    }

    #[inline]
    fn push_byte(&mut self, b: u8) {
        self.pending |= (b as u64) << (8 * self.pending_len);
        self.pending_len += 1;
        if self.pending_len == 8 {
            let w = self.pending;
            self.pending = 0;
            self.pending_len = 0;
            self.mix(w);
        }
    }

    #[inline]
    fn mix(&mut self, w: u64) {
        self.hash = (self.hash ^ w).wrapping_mul(MUL).rotate_left(29);
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    pub fn hash(&self) -> u64 {
        // The carried bytes and their count (so trailing zeros count).
        let tail = self.pending ^ ((self.pending_len as u64) << 60);
        let h = (self.hash ^ tail).wrapping_mul(MUL);
        h ^ (h >> 32)
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }
}

/// Feeds formatted text to the trace's hash.
struct HashWriter<'a>(&'a mut Trace);

impl std::fmt::Write for HashWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.bytes(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Trace;

    fn hash_of(pieces: &[&[u8]]) -> u64 {
        let mut t = Trace::new(false);
        for p in pieces {
            t.bytes(p);
        }
        t.hash()
    }

    #[test]
    fn hash_depends_on_the_bytes_not_on_the_cuts() {
        let whole: &[u8] = b"1234 c5 send #4270 SET k3 v917 PX 4\n";
        let h = hash_of(&[whole]);
        for cut in 0..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(hash_of(&[a, b]), h, "cut at {cut}");
            let singles: Vec<&[u8]> = whole.chunks(1).collect();
            assert_eq!(hash_of(&singles), h);
        }
    }

    #[test]
    fn any_changed_or_added_byte_changes_the_hash() {
        let base = b"0123456789abcdefghij".to_vec();
        let h = hash_of(&[&base]);
        for i in 0..base.len() {
            let mut v = base.clone();
            v[i] ^= 1;
            assert_ne!(hash_of(&[&v]), h, "byte {i}");
        }
        let mut longer = base.clone();
        longer.push(0);
        assert_ne!(hash_of(&[&longer]), h);
        assert_ne!(hash_of(&[b""]), hash_of(&[b"\0"]));
    }
}
