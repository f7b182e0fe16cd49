//! SLOWLOG: the commands that ran longer than `slowlog-log-slower-than`
//! microseconds, newest first, at most `slowlog-max-len` of them (Redis's
//! `slowlog.c`).
//!
//! Durations come from the host's stopwatch (see [`crate::latency`]); the
//! log is statistics only and never changes what a command does.

use bytes::Bytes;
use std::collections::VecDeque;

/// Arguments kept per entry (SLOWLOG_ENTRY_MAX_ARGC).
pub const MAX_ARGC: usize = 32;
/// Bytes kept per argument (SLOWLOG_ENTRY_MAX_STRING).
pub const MAX_STRING: usize = 128;

/// One logged command.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: u64,
    /// Unix seconds when it was logged.
    pub time_s: u64,
    pub duration_us: u64,
    /// The arguments, trimmed as Redis trims them.
    pub argv: Vec<Bytes>,
    pub peer: String,
    pub name: Bytes,
}

/// The log, newest entry first.
#[derive(Debug, Default)]
pub struct SlowLog {
    pub entries: VecDeque<Entry>,
    next_id: u64,
}

impl SlowLog {
    /// Logs a command if it was slow enough (`slowlogPushEntryIfNeeded`).
    #[allow(clippy::too_many_arguments)]
    pub fn push_if_needed(
        &mut self,
        slower_than_us: i64,
        max_len: i64,
        now_s: u64,
        duration_us: u64,
        argv: &[Bytes],
        peer: &str,
        name: Option<&Bytes>,
        redact: impl Fn(usize) -> bool,
    ) {
        if slower_than_us < 0 || duration_us < slower_than_us as u64 {
            return;
        }
        let argv = trim_args(argv, redact);
        self.entries.push_front(Entry {
            id: self.next_id,
            time_s: now_s,
            duration_us,
            argv,
            peer: peer.to_string(),
            name: name.cloned().unwrap_or_default(),
        });
        self.next_id += 1;
        self.trim(max_len);
    }

    /// Drops the oldest entries beyond `max_len` (also after CONFIG SET).
    pub fn trim(&mut self, max_len: i64) {
        let max = max_len.max(0) as usize;
        self.entries.truncate(max);
    }

    pub fn reset(&mut self) {
        self.entries.clear();
    }
}

/// Redis's `slowlogCreateEntry` argument trimming: at most 32 arguments,
/// the last saying how many more there were; at most 128 bytes each, with
/// how many more bytes there were; secrets replaced.
fn trim_args(argv: &[Bytes], redact: impl Fn(usize) -> bool) -> Vec<Bytes> {
    let n = argv.len().min(MAX_ARGC);
    let mut out = Vec::with_capacity(n);
    for (i, a) in argv.iter().take(n).enumerate() {
        if n != argv.len() && i == n - 1 {
            out.push(Bytes::from(format!(
                "... ({} more arguments)",
                argv.len() - n + 1
            )));
        } else if redact(i) {
            out.push(Bytes::from_static(b"(redacted)"));
        } else if a.len() > MAX_STRING {
            let mut s = a[..MAX_STRING].to_vec();
            s.extend_from_slice(format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes());
            out.push(Bytes::from(s));
        } else {
            out.push(a.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(n: usize, len: usize) -> Vec<Bytes> {
        (0..n).map(|_| Bytes::from(vec![b'a'; len])).collect()
    }

    #[test]
    fn logs_only_slow_commands_and_keeps_the_newest() {
        let mut log = SlowLog::default();
        for d in [5u64, 50, 500, 5000] {
            log.push_if_needed(100, 2, 7, d, &args(1, 3), "1.2.3.4:5", None, |_| false);
        }
        let ds: Vec<u64> = log.entries.iter().map(|e| e.duration_us).collect();
        assert_eq!(ds, vec![5000, 500]);
        assert_eq!(log.entries[0].id, 1);
        // -1 disables; 0 logs everything.
        log.push_if_needed(-1, 10, 7, 1 << 40, &args(1, 3), "", None, |_| false);
        assert_eq!(log.entries.len(), 2);
        log.push_if_needed(0, 10, 7, 0, &args(1, 3), "", None, |_| false);
        assert_eq!(log.entries.len(), 3);
    }

    #[test]
    fn trims_arguments_like_redis() {
        let t = trim_args(&args(40, 3), |_| false);
        assert_eq!(t.len(), 32);
        assert_eq!(&t[31][..], b"... (9 more arguments)");
        let t = trim_args(&args(1, 130), |_| false);
        assert_eq!(t[0].len(), 128 + "... (2 more bytes)".len());
        let t = trim_args(&args(2, 3), |i| i == 1);
        assert_eq!(&t[1][..], b"(redacted)");
    }
}
