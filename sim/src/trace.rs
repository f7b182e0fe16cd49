//! The run's trace: one text line per event, hashed as it is written (FNV-1a,
//! 64 bits), and printed only when asked for. Two runs of one seed must give
//! the same hash; a difference means something nondeterministic crept in.
//! Without `--trace` no text is built: the formatted pieces go straight into
//! the hash.

use std::fmt::Write as _;

pub struct Trace {
    hash: u64,
    lines: u64,
    verbose: bool,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Trace {
    pub fn new(verbose: bool) -> Trace {
        Trace {
            hash: FNV_OFFSET,
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
        for &b in data {
            self.hash ^= b as u64;
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    pub fn hash(&self) -> u64 {
        self.hash
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
