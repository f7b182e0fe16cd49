//! The run's trace: one text line per event, hashed as it is written (FNV-1a,
//! 64 bits), and printed only when asked for. Two runs of one seed must give
//! the same hash; a difference means something nondeterministic crept in.

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
        for &b in line.as_bytes().iter().chain(b"\n") {
            self.hash ^= b as u64;
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
        self.lines += 1;
        if self.verbose {
            tracing::info!(target: "sim", "{line}");
        }
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }
}
