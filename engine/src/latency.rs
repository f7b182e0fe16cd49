//! Command durations and what is built from them: INFO commandstats
//! (`usec`, `usec_per_call`), INFO latencystats and LATENCY HISTOGRAM
//! (per-command histograms), the LATENCY monitor (`latency-monitor-
//! threshold`, events `command` and `fast-command`) and the SLOWLOG.
//!
//! # Where durations come from
//!
//! The engine reads no clock. The host may install a stopwatch
//! ([`Node::set_stopwatch`](crate::node::Node::set_stopwatch)): a function
//! returning monotonic nanoseconds, read before and after each command (a
//! pipelined command starts at the previous one's end reading, see
//! [`Observability::command_start_ns`]). The
//! shim implements it with `Instant`; without one (the simulator) every
//! duration is 0, which keeps runs reproducible. Durations feed statistics
//! only: nothing a command does or replies depends on them.

use crate::node::Node;
use std::collections::{BTreeMap, VecDeque};

/// Samples kept per latency event (LATENCY_TS_LEN).
pub const HISTORY_LEN: usize = 160;

/// A log-linear histogram of nanoseconds: each power of two split into 16
/// linear sub-buckets (about 6% precision, Redis's hdr_histogram keeps 2
/// significant digits). Power-of-two boundaries are exact, which LATENCY
/// HISTOGRAM's buckets use.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Counts per bucket, grown on demand (64 powers * 16 at most).
    counts: Vec<u64>,
    pub total: u64,
}

const SUB: u64 = 16;

impl Histogram {
    fn index(ns: u64) -> usize {
        if ns < SUB {
            return ns as usize;
        }
        let pow = 63 - ns.leading_zeros() as u64; // ns in [2^pow, 2^(pow+1))
        let sub = (ns >> (pow - 4)) & (SUB - 1);
        ((pow - 3) * SUB + sub) as usize
    }

    /// The largest value that falls into bucket `i`.
    fn upper(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let pow = i / SUB + 3;
        let sub = i % SUB;
        ((SUB + sub + 1) << (pow - 4)) - 1
    }

    pub fn record(&mut self, ns: u64) {
        let i = Self::index(ns);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.total += 1;
    }

    /// The value at percentile `p` (0..=100): the upper bound of the bucket
    /// holding it.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let want = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Self::upper(i);
            }
        }
        Self::upper(self.counts.len().saturating_sub(1))
    }

    /// Values at most `ns`.
    pub fn count_at_most(&self, ns: u64) -> u64 {
        let last = Self::index(ns);
        self.counts.iter().take(last + 1).sum()
    }

    /// The largest recorded value's bucket bound.
    pub fn max(&self) -> u64 {
        self.counts
            .iter()
            .rposition(|&c| c > 0)
            .map_or(0, Self::upper)
    }
}

/// Per-command duration statistics.
#[derive(Debug, Clone, Default)]
pub struct CommandTiming {
    pub usec: u64,
    pub histogram: Histogram,
}

/// One latency event's history (`latencyTimeSeries`).
#[derive(Debug, Clone, Default)]
pub struct EventHistory {
    /// (unix seconds, milliseconds), oldest first, one sample per second.
    pub samples: VecDeque<(u64, u64)>,
    /// The largest latency ever seen for the event.
    pub max_ms: u64,
}

/// Everything measured from command durations.
#[derive(Default)]
pub struct Observability {
    /// The host's monotonic clock in ns; `None` means durations are 0.
    pub stopwatch: Option<fn() -> u64>,
    pub commands: BTreeMap<String, CommandTiming>,
    pub events: BTreeMap<String, EventHistory>,
    pub slowlog: crate::slowlog::SlowLog,
    /// Time the current command will block the host after it returns
    /// (DEBUG SLEEP's Output::Sleep), added to its measured duration.
    pub extra_ns: u64,
    /// The reading that ended the previous top-level command of the
    /// current input, if nothing slow ran since (see
    /// [`Observability::command_start_ns`]).
    pub chained_ns: Option<u64>,
}

impl std::fmt::Debug for Observability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observability")
            .field("commands", &self.commands.len())
            .field("events", &self.events.len())
            .finish()
    }
}

impl Observability {
    /// The stopwatch's reading (0 without one).
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.stopwatch.map_or(0, |f| f())
    }

    /// A command's start reading. A top-level command that follows another
    /// within one input starts at that one's end reading: one clock read
    /// per pipelined command instead of two (the clock was about 5% of a
    /// pipelined command's cost). What runs in between (parsing this
    /// command, the previous one's bookkeeping) is engine work done for
    /// this command; the node breaks the chain at each input and before
    /// evicting. Nested commands (EXEC's, scripts') always read the clock.
    pub fn command_start_ns(&mut self, top_level: bool) -> u64 {
        match self.chained_ns.take() {
            Some(t) if top_level => t,
            _ => self.now_ns(),
        }
    }

    /// Adds a sample to an event if it passes the threshold
    /// (`latencyAddSampleIfNeeded`): samples in the same second merge,
    /// keeping the larger.
    pub fn add_event_sample(&mut self, threshold_ms: i64, event: &str, now_s: u64, ms: u64) {
        if threshold_ms <= 0 || ms < threshold_ms as u64 {
            return;
        }
        let h = self.events.entry(event.to_string()).or_default();
        h.max_ms = h.max_ms.max(ms);
        match h.samples.back_mut() {
            Some((t, v)) if *t == now_s => *v = (*v).max(ms),
            _ => {
                h.samples.push_back((now_s, ms));
                if h.samples.len() > HISTORY_LEN {
                    h.samples.pop_front();
                }
            }
        }
    }

    /// CONFIG RESETSTAT: per-command timings (the latency monitor and the
    /// slowlog have their own RESET).
    pub fn reset_command_stats(&mut self) {
        self.commands.clear();
    }
}

impl Node {
    /// Installs the host's stopwatch (monotonic nanoseconds), used only for
    /// statistics (see the module docs).
    pub fn set_stopwatch(&mut self, f: fn() -> u64) {
        self.observe.stopwatch = Some(f);
    }

    /// Records one command's duration: commandstats, its histogram, the
    /// latency monitor and the slowlog (Redis's `call` after the command).
    pub(crate) fn record_duration(
        &mut self,
        c: &crate::node::Client,
        cmd: &crate::command::Command,
        argv: &[bytes::Bytes],
        started_ns: u64,
    ) {
        let ended_ns = self.observe.now_ns();
        if self.call_depth() == 1 {
            self.observe.chained_ns = Some(ended_ns);
        }
        let ns = ended_ns.saturating_sub(started_ns) + std::mem::take(&mut self.observe.extra_ns);
        let us = ns / 1000;
        if self.config.latency_tracking {
            let t = match self.observe.commands.get_mut(cmd.name.as_str()) {
                Some(t) => t,
                None => self.observe.commands.entry(cmd.name.clone()).or_default(),
            };
            t.usec += us;
            t.histogram.record(ns);
        } else if let Some(t) = self.observe.commands.get_mut(cmd.name.as_str()) {
            t.usec += us;
        } else {
            self.observe
                .commands
                .entry(cmd.name.clone())
                .or_default()
                .usec += us;
        }
        let now_s = self.now.as_secs();
        let event = if cmd.has(crate::command::flags::FAST) {
            "fast-command"
        } else {
            "command"
        };
        self.observe.add_event_sample(
            self.config.latency_monitor_threshold,
            event,
            now_s,
            us / 1000,
        );
        if !cmd.has(crate::command::flags::SKIP_SLOWLOG) {
            let name = cmd.name.as_str();
            let redact = |i: usize| {
                (name == "auth" && i > 0)
                    || (name == "hello"
                        && i > 1
                        && (argv[i - 1].eq_ignore_ascii_case(b"auth")
                            || (i > 2 && argv[i - 2].eq_ignore_ascii_case(b"auth"))))
                    || (name == "migrate" && i > 0 && argv[i - 1].eq_ignore_ascii_case(b"auth"))
                    // ACL SETUSER hides the user and its rules (passwords);
                    // CONFIG SET hides sensitive values, as Redis does.
                    || (name == "acl|setuser" && i > 1)
                    || (name == "config|set"
                        && i % 2 == 1
                        && i > 2
                        && (argv[i - 1].eq_ignore_ascii_case(b"requirepass")
                            || argv[i - 1].eq_ignore_ascii_case(b"masterauth")))
            };
            let peer = if c.peer.is_empty() { "lua" } else { &c.peer };
            self.observe.slowlog.push_if_needed(
                self.config.slowlog_log_slower_than,
                self.config.slowlog_max_len,
                now_s,
                us,
                argv,
                peer,
                c.name.as_ref(),
                redact,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// A stopwatch that advances 1000 ns per reading and counts readings.
    fn counting_stopwatch() -> u64 {
        READS.with(|r| {
            r.set(r.get() + 1);
            r.get() * 1000
        })
    }

    #[test]
    fn pipelined_commands_share_clock_readings_within_one_input() {
        use crate::node::{ConnId, Input, Time};
        let mut node = Node::new(crate::config::Config::default(), 1);
        node.set_stopwatch(counting_stopwatch);
        let conn = ConnId(1);
        let t = Time::from_micros(1_000_000);
        // Start-up loading finds no files.
        node.start(t);
        while let Some(out) = node.poll_output() {
            if let crate::node::Output::Disk { id, .. } = out {
                let result = Err(crate::disk::DiskError::NotFound);
                node.handle(t, Input::DiskDone { id, result });
            }
        }
        node.handle(
            t,
            Input::Accepted {
                conn,
                peer: "127.0.0.1:5000".into(),
                local: "127.0.0.1:6379".into(),
            },
        );
        let reads = |node: &mut Node, data: &[u8]| {
            let before = READS.with(|r| r.get());
            node.handle(t, Input::Received { conn, data });
            while node.poll_output().is_some() {}
            READS.with(|r| r.get()) - before
        };
        // Three commands in one input: one reading each plus the first start.
        assert_eq!(reads(&mut node, b"PING\r\nPING\r\nPING\r\n"), 4);
        // A new input starts afresh (idle time is nobody's duration)...
        assert_eq!(reads(&mut node, b"PING\r\n"), 2);
        // ...and so do EXEC's queued commands (MULTI 2 + EXEC 2 + SET 2 +
        // INCR 2, with MULTI's end starting EXEC).
        let multi = b"MULTI\r\nSET a 1\r\nINCR a\r\nEXEC\r\n";
        assert_eq!(reads(&mut node, multi), 7);
        // Each command still accounts only its own readings: every duration
        // is one tick of the fake clock (1 us), EXEC's spans its two.
        let usec = |name: &str| node.observe.commands.get(name).map(|t| t.usec);
        assert_eq!(usec("ping"), Some(4));
        assert_eq!(usec("set"), Some(1));
        assert_eq!(usec("exec"), Some(5));
    }

    #[test]
    fn histogram_buckets_and_percentiles() {
        for v in [0u64, 1, 15, 16, 17, 1000, 1024, 1025, 65_535, 1 << 40] {
            let i = Histogram::index(v);
            assert!(Histogram::upper(i) >= v, "{v}");
            if i > 0 {
                assert!(Histogram::upper(i - 1) < v, "{v}");
            }
        }
        // Powers of two end a bucket exactly, so "at most 1024 ns" is exact.
        assert_eq!(Histogram::upper(Histogram::index(1023)), 1023);
        let mut h = Histogram::default();
        for v in 1..=100u64 {
            h.record(v * 1000);
        }
        let p50 = h.percentile(50.0);
        assert!((48_000..=53_000).contains(&p50), "{p50}");
        assert!(h.percentile(100.0) >= 100_000);
        assert_eq!(h.count_at_most(511), 0);
        assert_eq!(h.count_at_most(1023), 1);
        assert_eq!(h.count_at_most(2047), 2);
    }

    #[test]
    fn events_merge_per_second_and_keep_max() {
        let mut o = Observability::default();
        o.add_event_sample(10, "command", 5, 9);
        assert!(o.events.is_empty());
        o.add_event_sample(10, "command", 5, 20);
        o.add_event_sample(10, "command", 5, 15);
        o.add_event_sample(10, "command", 6, 11);
        let h = &o.events["command"];
        assert_eq!(h.samples, VecDeque::from(vec![(5, 20), (6, 11)]));
        assert_eq!(h.max_ms, 20);
        // Threshold 0 disables the monitor.
        o.add_event_sample(0, "x", 5, 1000);
        assert!(!o.events.contains_key("x"));
    }
}
