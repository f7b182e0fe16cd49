//! Property tests of the AOF over an in-memory disk:
//!
//! - any cut of the incr file (a torn write at any byte) loads exactly the
//!   dataset the node had when the longest whole prefix was written;
//! - after BGREWRITEAOF, a restart loads the same dataset as before;
//! - random damage to any file of the AOF directory (bit flips, garbage,
//!   lengths claiming gigabytes) either loads or stops the node with a
//!   message: never a panic, a hang or a huge allocation.

use cinnabar_engine::disk::{DiskError, DiskOp, DiskReply, DiskResult};
use cinnabar_engine::{Config, ConnId, Input, Node, Output, Time};
use proptest::prelude::*;
use std::collections::BTreeMap;

const T0: u64 = 1_700_000_000_000_000;
const INCR: &str = "appendonlydir/appendonly.aof.1.incr.aof";

struct H {
    node: Node,
    files: BTreeMap<String, Vec<u8>>,
    now: u64,
    /// The node stopped with `Output::Fatal` while starting.
    fatal: bool,
}

impl H {
    fn start(files: BTreeMap<String, Vec<u8>>, seed: u64) -> H {
        let config = Config {
            appendonly: true,
            appendfsync: "always".into(),
            ..Config::default()
        };
        let mut node = Node::new(config, seed);
        node.start(Time(T0));
        let mut h = H {
            node,
            files,
            now: T0,
            fatal: false,
        };
        h.fatal = h.drain().1;
        h.node.handle(
            Time(T0),
            Input::Accepted {
                conn: ConnId(1),
                peer: "127.0.0.1:1".into(),
                local: "127.0.0.1:6379".into(),
            },
        );
        h
    }

    fn perform(&mut self, op: DiskOp) -> DiskResult {
        match op {
            DiskOp::Read { path } => self
                .files
                .get(&path)
                .map(|d| DiskReply::Data(d.clone().into()))
                .ok_or(DiskError::NotFound),
            DiskOp::Write { path, data } => {
                self.files.insert(path, data.to_vec());
                Ok(DiskReply::Written(data.len() as u64))
            }
            DiskOp::Append { path, data } => {
                self.files.entry(path).or_default().extend_from_slice(&data);
                Ok(DiskReply::Written(data.len() as u64))
            }
            DiskOp::Truncate { path, len } => {
                if let Some(f) = self.files.get_mut(&path) {
                    f.truncate(len as usize);
                }
                Ok(DiskReply::Done)
            }
            DiskOp::Rename { from, to } => {
                let d = self.files.remove(&from).ok_or(DiskError::NotFound)?;
                self.files.insert(to, d);
                Ok(DiskReply::Done)
            }
            DiskOp::Remove { path } => {
                self.files.remove(&path);
                Ok(DiskReply::Done)
            }
            _ => Ok(DiskReply::Done),
        }
    }

    /// Runs the node's outputs, performing disk operations; returns the
    /// bytes sent and whether it stopped fatally.
    fn drain(&mut self) -> (Vec<u8>, bool) {
        let mut sent = Vec::new();
        let mut fatal = false;
        while let Some(o) = self.node.poll_output() {
            match o {
                Output::Disk { id, op } => {
                    let result = self.perform(op);
                    self.node
                        .handle(Time(self.now), Input::DiskDone { id, result });
                }
                Output::Send { data, .. } => sent.extend_from_slice(&data),
                Output::Fatal { .. } => fatal = true,
                _ => {}
            }
        }
        (sent, fatal)
    }

    fn cmd(&mut self, args: &[String]) -> Vec<u8> {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.node.handle(
            Time(self.now),
            Input::Received {
                conn: ConnId(1),
                data: &req,
            },
        );
        self.drain().0
    }

    fn line(&mut self, s: &str) -> Vec<u8> {
        let args: Vec<String> = s.split(' ').map(String::from).collect();
        self.cmd(&args)
    }

    /// The whole dataset, canonically: sorted keys with type, TTL and
    /// contents (unordered collections sorted).
    fn picture(&mut self) -> Vec<String> {
        let keys = String::from_utf8_lossy(&self.line("KEYS *")).into_owned();
        let mut names: Vec<String> = keys
            .split("\r\n")
            .skip(1)
            .filter(|l| !l.starts_with('$') && !l.is_empty())
            .map(String::from)
            .collect();
        names.sort();
        let mut out = Vec::new();
        for k in names {
            let ty = String::from_utf8_lossy(&self.line(&format!("TYPE {k}"))).into_owned();
            let content = match ty.trim() {
                "+string" => self.line(&format!("GET {k}")),
                "+list" => self.line(&format!("LRANGE {k} 0 -1")),
                "+hash" => self.line(&format!("HGETALL {k}")),
                "+zset" => self.line(&format!("ZRANGE {k} 0 -1 WITHSCORES")),
                _ => self.line(&format!("SMEMBERS {k}")),
            };
            let mut parts: Vec<String> = String::from_utf8_lossy(&content)
                .split("\r\n")
                .map(String::from)
                .collect();
            parts.sort();
            let ttl = String::from_utf8_lossy(&self.line(&format!("PEXPIRETIME {k}"))).into_owned();
            out.push(format!("{k} {} {ttl} {parts:?}", ty.trim()));
        }
        out
    }
}

/// Commands over a few keys of each type, including the ones the AOF logs
/// differently (TTLs, SPOP, INCRBYFLOAT, transactions, scripts).
fn op() -> impl Strategy<Value = Vec<String>> {
    let key = prop::sample::select(vec!["a", "b", "c"]);
    let val = prop::sample::select(vec!["1", "2", "x", "-5", "3.5"]);
    (0..14usize, key, val, 1..4u32).prop_map(|(k, key, v, n)| {
        let s = |x: &str| x.to_string();
        match k {
            0 => vec![s("SET"), format!("s{key}"), s(v)],
            1 => vec![
                s("SET"),
                format!("s{key}"),
                s(v),
                s("EX"),
                format!("{}", n * 100),
            ],
            2 => vec![s("INCRBYFLOAT"), format!("f{key}"), s("1.5")],
            3 => vec![s("RPUSH"), format!("l{key}"), s(v), s(v)],
            4 => vec![s("LPOP"), format!("l{key}")],
            5 => vec![s("SADD"), format!("t{key}"), s(v), format!("{n}"), s("m")],
            6 => vec![s("SPOP"), format!("t{key}"), format!("{n}")],
            7 => vec![s("HSET"), format!("h{key}"), s(v), format!("{n}")],
            8 => vec![s("ZADD"), format!("z{key}"), format!("{n}"), s(v)],
            9 => vec![s("DEL"), format!("s{key}")],
            10 => vec![s("EXPIRE"), format!("l{key}"), format!("{}", n * 50)],
            11 => vec![
                s("EVAL"),
                s("redis.call('incr', KEYS[1]) return redis.call('rpush', KEYS[2], 'e')"),
                s("2"),
                format!("n{key}"),
                format!("l{key}"),
            ],
            12 => vec![s("PERSIST"), format!("l{key}")],
            _ => vec![s("SPOP"), format!("t{key}")],
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_cut_of_the_aof_loads_the_longest_whole_prefix(
        ops in prop::collection::vec(op(), 1..30),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 1..6),
        seed in any::<u64>(),
    ) {
        let mut h = H::start(BTreeMap::new(), seed);
        // (AOF length, dataset) after every command, the empty start included.
        let mut states = vec![(h.files.get(INCR).map_or(0, |f| f.len()), h.picture())];
        for (i, o) in ops.iter().enumerate() {
            h.cmd(o);
            let len = h.files.get(INCR).map_or(0, |f| f.len());
            states.push((len, h.picture()));
            if i % 5 == 4 {
                // A MULTI/EXEC block, logged as one unit.
                h.line("MULTI");
                h.line("INCR ctr");
                h.line("RPUSH lm q");
                h.line("EXEC");
            }
            let len = h.files.get(INCR).map_or(0, |f| f.len());
            states.push((len, h.picture()));
        }
        let full = h.files.get(INCR).cloned().unwrap_or_default();
        for cut in cuts {
            let at = cut.index(full.len() + 1);
            let mut files = h.files.clone();
            files.insert(INCR.to_string(), full[..at].to_vec());
            let mut r = H::start(files, seed ^ 1);
            let (whole, expected) = states
                .iter()
                .rev()
                .find(|(len, _)| *len <= at)
                .cloned()
                .unwrap_or_default();
            prop_assert_eq!(r.picture(), expected, "cut at {} of {}", at, full.len());
            // The torn tail is cut off: what is kept is whole commands, at
            // least the last whole state (a lone SELECT may follow it).
            let kept = r.files.get(INCR).map_or(0, |f| f.len());
            prop_assert!(kept >= whole && kept <= at, "kept {} of {} (whole {})", kept, at, whole);
        }
    }

    #[test]
    fn damaged_aof_files_load_or_are_refused_cleanly(
        ops in prop::collection::vec(op(), 1..30),
        rewrite in any::<bool>(),
        file in any::<prop::sample::Index>(),
        damage in prop::collection::vec((any::<prop::sample::Index>(), 0..4u8, any::<u8>()), 1..4),
        seed in any::<u64>(),
    ) {
        let mut h = H::start(BTreeMap::new(), seed);
        for o in &ops {
            h.cmd(o);
        }
        if rewrite {
            // A base file in RDB format, then more commands after it.
            h.line("BGREWRITEAOF");
            for _ in 0..20 {
                h.node.handle(Time(h.now), Input::Tick);
                h.drain();
            }
            for o in &ops {
                h.cmd(o);
            }
        }
        let names: Vec<String> = h.files.keys().filter(|k| k.starts_with("appendonlydir/")).cloned().collect();
        let name = file.get(&names).clone();
        let mut files = h.files.clone();
        let data = files.get_mut(&name).expect("file");
        for (at, kind, byte) in &damage {
            let i = at.index(data.len() + 1);
            match kind {
                0 if !data.is_empty() => {
                    let j = i.min(data.len() - 1);
                    data[j] ^= byte | 1;
                }
                1 => data.splice(i..i, [*byte, b'\r', b'\n']).for_each(drop),
                // A bulk or array length, or an RDB 64-bit length, claiming
                // gigabytes.
                2 => data.splice(i..i, b"$9999999999\r\n*2147483647\r\n".iter().copied()).for_each(drop),
                _ => data.splice(i..i, [0x81, 0, 0, 0, 9, 0, 0, 0, 0]).for_each(drop),
            }
        }
        let mut r = H::start(files, seed ^ 3);
        if !r.fatal {
            prop_assert_eq!(&r.line("PING")[..], &b"+PONG\r\n"[..], "damaged {}", name);
        }
    }

    #[test]
    fn a_rewrite_keeps_the_dataset(
        ops in prop::collection::vec(op(), 1..40),
        seed in any::<u64>(),
    ) {
        let mut h = H::start(BTreeMap::new(), seed);
        for o in &ops {
            h.cmd(o);
        }
        let reply = h.line("BGREWRITEAOF");
        prop_assert_eq!(&reply[..], &b"+Background append only file rewriting started\r\n"[..]);
        for _ in 0..20 {
            h.node.handle(Time(h.now), Input::Tick);
            h.drain();
        }
        let before = h.picture();
        let mut r = H::start(h.files.clone(), seed ^ 2);
        prop_assert_eq!(r.picture(), before);
    }
}
