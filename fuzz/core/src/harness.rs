//! Drives a [`Node`] with an ideal in-memory disk and a virtual clock, as
//! `engine/tests/node.rs` does: every disk operation completes at once, in
//! order, and every reply is decoded with the simulator's client decoder
//! (so the engine's output is checked to be well-formed RESP as a side
//! effect).

use cinnabar_engine::disk::{DiskError, DiskOp, DiskReply, DiskResult};
use cinnabar_engine::{Config, ConnId, Input, Node, Output, Time};
use cinnabar_sim::resp::{encode_request, Decoder, Value};
use std::collections::BTreeMap;

/// A fixed "now" in unix microseconds.
pub const T0: u64 = 1_700_000_000_000_000;

/// Persistence ticks one `settle` may take before it calls the node stuck:
/// a BGSAVE of the small datasets the targets build needs a handful.
const SETTLE_TICKS_MAX: usize = 100_000;

/// Bytes one file of the in-memory disk may grow to: the targets' datasets
/// are tiny, so anything near this is a runaway write.
const FILE_LEN_MAX: usize = 256 << 20;

/// Slices of a long script between two operator actions (see
/// `Harness::script_slice`); targets set `busy-reply-threshold` below this
/// many milliseconds so SCRIPT KILL is heard.
const OPERATOR_EVERY: u64 = 20;

pub struct Harness {
    pub node: Node,
    pub now: u64,
    pub files: BTreeMap<String, Vec<u8>>,
    /// The node said `Fatal` (it does nothing more afterwards).
    pub fatal: Option<String>,
    pub shutdown: bool,
    /// A `Truncate` was issued (a torn AOF tail was cut off).
    pub truncated: bool,
    conns: BTreeMap<u64, Decoder>,
    /// Decoded replies per connection, not yet taken.
    replies: BTreeMap<u64, Vec<Value>>,
    next_conn: u64,
    /// Slices of long scripts run so far, and the operator's connection
    /// (see `script_slice`).
    slices: u64,
    operator: Option<u64>,
}

impl Harness {
    /// A node started with `files` on its disk, loading finished.
    pub fn start(config: Config, seed: u64, files: BTreeMap<String, Vec<u8>>) -> Harness {
        let mut node = Node::new(config, seed);
        node.start(Time(T0));
        let mut h = Harness {
            node,
            now: T0,
            files,
            fatal: None,
            shutdown: false,
            truncated: false,
            conns: BTreeMap::new(),
            replies: BTreeMap::new(),
            next_conn: 1,
            slices: 0,
            operator: None,
        };
        h.drain();
        h.settle();
        h
    }

    fn perform(&mut self, op: DiskOp) -> DiskResult {
        match op {
            DiskOp::Read { path } => match self.files.get(&path) {
                Some(d) => Ok(DiskReply::Data(d.clone().into())),
                None => Err(DiskError::NotFound),
            },
            DiskOp::Write { path, data } => {
                let n = data.len() as u64;
                assert!(data.len() <= FILE_LEN_MAX, "runaway write to {path}");
                self.files.insert(path, data.to_vec());
                Ok(DiskReply::Written(n))
            }
            DiskOp::Append { path, data } => {
                let f = self.files.entry(path.clone()).or_default();
                f.extend_from_slice(&data);
                assert!(f.len() <= FILE_LEN_MAX, "runaway appends to {path}");
                Ok(DiskReply::Written(data.len() as u64))
            }
            DiskOp::Truncate { path, len } => {
                self.truncated = true;
                let f = self.files.get_mut(&path).ok_or(DiskError::NotFound)?;
                f.truncate(len as usize);
                Ok(DiskReply::Done)
            }
            DiskOp::Rename { from, to } => {
                let d = self.files.remove(&from).ok_or(DiskError::NotFound)?;
                self.files.insert(to, d);
                Ok(DiskReply::Done)
            }
            DiskOp::Remove { path } => self
                .files
                .remove(&path)
                .map(|_| DiskReply::Done)
                .ok_or(DiskError::NotFound),
            DiskOp::ListDir { path } => {
                let prefix = format!("{path}/");
                Ok(DiskReply::Names(
                    self.files
                        .keys()
                        .filter_map(|k| k.strip_prefix(&prefix))
                        .filter(|k| !k.contains('/'))
                        .map(String::from)
                        .collect(),
                ))
            }
            DiskOp::Fsync { .. } | DiskOp::FsyncDir { .. } | DiskOp::CreateDir { .. } => {
                Ok(DiskReply::Done)
            }
        }
    }

    /// Performs everything the node asked for, feeding disk completions
    /// back, and decodes what it sent.
    pub fn drain(&mut self) {
        while let Some(o) = self.node.poll_output() {
            match o {
                Output::Disk { id, op } => {
                    let result = self.perform(op);
                    self.node
                        .handle(Time(self.now), Input::DiskDone { id, result });
                }
                Output::Send { conn, data } => {
                    let Some(d) = self.conns.get_mut(&conn.0) else {
                        panic!("sent {} bytes to unknown connection {}", data.len(), conn.0);
                    };
                    d.feed(&data);
                    let out = self.replies.entry(conn.0).or_default();
                    loop {
                        match d.next_value() {
                            Ok(Some(v)) => out.push(v),
                            Ok(None) => break,
                            Err(e) => panic!("the engine sent malformed RESP: {e}"),
                        }
                    }
                }
                Output::Close { conn } => {
                    // Replies sent before the close were decoded already.
                    self.conns.remove(&conn.0);
                    self.node.handle(Time(self.now), Input::Closed { conn });
                }
                Output::Fatal { message } => self.fatal = Some(message),
                Output::Shutdown => self.shutdown = true,
                Output::Sleep { .. } => {}
                Output::Free(_) => {}
            }
        }
    }

    /// Ticks until the node wants no tick at the current time (background
    /// saves and rewrites finish: the in-memory disk is instant).
    pub fn settle(&mut self) {
        for _ in 0..SETTLE_TICKS_MAX {
            if self.shutdown {
                // The host exits on Output::Shutdown: no more ticks.
                return;
            }
            if self.node.running_script.is_some() && self.fatal.is_none() {
                self.script_slice();
                continue;
            }
            match self.node.poll_timeout() {
                Some(t) if t.0 <= self.now && self.fatal.is_none() => {
                    self.node.handle(Time(self.now), Input::Tick);
                    self.drain();
                }
                _ => return,
            }
        }
        panic!("the node still wants ticks after {SETTLE_TICKS_MAX} at one instant");
    }

    /// One slice of a long script, which takes a millisecond of virtual
    /// time. Every [`OPERATOR_EVERY`] slices an operator does what a
    /// person would: SCRIPT KILL, and SHUTDOWN NOSAVE if the script is
    /// unkillable, so an endless script ends the run instead of hanging it.
    fn script_slice(&mut self) {
        self.now += 1_000;
        self.node.handle(Time(self.now), Input::Tick);
        self.drain();
        self.slices += 1;
        if self.slices % OPERATOR_EVERY != 0 || self.node.running_script.is_none() {
            return;
        }
        let op = match self.operator {
            Some(c) if self.is_open(c) => c,
            _ => {
                let c = self.connect();
                self.operator = Some(c);
                c
            }
        };
        // The threshold is in the node's time: slices move it on.
        let argv: &[&[u8]] = if self.slices >= OPERATOR_EVERY * 3 {
            &[b"SHUTDOWN", b"NOSAVE"]
        } else {
            &[b"SCRIPT", b"KILL"]
        };
        let wire = encode_request(&argv.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
        self.node.handle(
            Time(self.now),
            Input::Received {
                conn: ConnId(op),
                data: &wire,
            },
        );
        self.drain();
        let _ = self.take_replies(op);
    }

    /// Moves the clock on and delivers the ticks that came due.
    pub fn advance_us(&mut self, us: u64) {
        self.now += us;
        self.node.handle(Time(self.now), Input::Tick);
        self.drain();
        self.settle();
    }

    /// A new connection; returns its id.
    pub fn connect(&mut self) -> u64 {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(conn, Decoder::new());
        self.node.handle(
            Time(self.now),
            Input::Accepted {
                conn: ConnId(conn),
                peer: format!("127.0.0.1:{}", 40000 + conn),
                local: "127.0.0.1:6379".into(),
            },
        );
        self.drain();
        conn
    }

    /// The client goes away (the driver saw the socket close).
    pub fn disconnect(&mut self, conn: u64) {
        if self.conns.remove(&conn).is_some() {
            self.node
                .handle(Time(self.now), Input::Closed { conn: ConnId(conn) });
            self.drain();
            self.settle();
        }
    }

    pub fn is_open(&self, conn: u64) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Sends raw bytes on `conn`.
    pub fn send_raw(&mut self, conn: u64, data: &[u8]) {
        if !self.is_open(conn) {
            return;
        }
        self.node.handle(
            Time(self.now),
            Input::Received {
                conn: ConnId(conn),
                data,
            },
        );
        self.drain();
        self.settle();
        if let Some(d) = self.conns.get(&conn) {
            assert_eq!(d.pending(), 0, "a partial reply was left unsent");
        }
    }

    /// Replies received on `conn` since the last call.
    pub fn take_replies(&mut self, conn: u64) -> Vec<Value> {
        self.replies.remove(&conn).unwrap_or_default()
    }

    /// Sends one command and returns its reply, if one came at once (a
    /// blocked, paused or waiting client gets none).
    pub fn call(&mut self, conn: u64, argv: &[&[u8]]) -> Option<Value> {
        let _ = self.take_replies(conn);
        let argv: Vec<Vec<u8>> = argv.iter().map(|a| a.to_vec()).collect();
        self.send_raw(conn, &encode_request(&argv));
        let mut r = self.take_replies(conn);
        if r.is_empty() {
            None
        } else {
            Some(r.remove(0))
        }
    }
}

/// A reply's bytes if it is a bulk or simple string.
pub fn text(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Bulk(b) | Value::Simple(b) => Some(b),
        _ => None,
    }
}

pub fn is_error(v: &Value) -> bool {
    matches!(v, Value::Error(_))
}

/// What [`check_keyspace`] looked at.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeyspaceSummary {
    /// (db, keys, keys with a TTL), for non-empty databases.
    pub dbs: Vec<(usize, u64, u64)>,
}

/// Parses `INFO keyspace`: `dbN:keys=K,expires=E,avg_ttl=T` lines.
fn info_keyspace(v: &Value) -> Option<Vec<(usize, u64, u64)>> {
    let text = std::str::from_utf8(text(v)?).ok()?;
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("db") else {
            continue;
        };
        let (db, fields) = rest.split_once(':')?;
        let mut keys = None;
        let mut expires = None;
        for kv in fields.split(',') {
            match kv.split_once('=')? {
                ("keys", n) => keys = n.parse().ok(),
                ("expires", n) => expires = n.parse().ok(),
                _ => {}
            }
        }
        out.push((db.parse().ok()?, keys?, expires?));
    }
    Some(out)
}

/// The keyspace invariants, checked from a client's point of view on
/// `conn`: for every non-empty database, a full SCAN finds exactly DBSIZE
/// distinct keys, every key it finds exists (TYPE is not `none`, PTTL is
/// not -2), and the keys with a TTL are exactly the ones INFO counts as
/// `expires`. Returns `None` when the node would not answer (paused,
/// loading, authentication required...), which checks nothing.
pub fn check_keyspace(h: &mut Harness, conn: u64) -> Option<KeyspaceSummary> {
    let info = h.call(conn, &[b"INFO", b"keyspace"])?;
    let dbs = info_keyspace(&info)?;
    let mut summary = KeyspaceSummary::default();
    for (db, _, _) in dbs {
        let db_arg = db.to_string();
        let r = h.call(conn, &[b"SELECT", db_arg.as_bytes()])?;
        if is_error(&r) {
            return None;
        }
        let mut cursor = b"0".to_vec();
        let mut keys = std::collections::BTreeSet::new();
        for round in 0.. {
            assert!(round < 100_000, "SCAN never returned cursor 0");
            let r = h.call(conn, &[b"SCAN", &cursor, b"COUNT", b"7"])?;
            let Value::Array(parts) = r else {
                return None;
            };
            let [c, Value::Array(found)] = &parts[..] else {
                panic!("SCAN reply shape: {parts:?}");
            };
            for k in found {
                keys.insert(text(k).expect("SCAN returns keys as bulk strings").to_vec());
            }
            cursor = text(c).expect("SCAN cursor").to_vec();
            if cursor == b"0" {
                break;
            }
        }
        let dbsize = match h.call(conn, &[b"DBSIZE"])? {
            Value::Int(n) => n as u64,
            _ => return None,
        };
        assert_eq!(
            dbsize,
            keys.len() as u64,
            "db {db}: DBSIZE differs from the keys a full SCAN found: {keys:?}"
        );
        let mut with_ttl = 0;
        for k in &keys {
            let t = h.call(conn, &[b"TYPE", k])?;
            assert_ne!(
                text(&t),
                Some(&b"none"[..]),
                "db {db}: SCAN found {k:?}, TYPE says none"
            );
            match h.call(conn, &[b"PTTL", k])? {
                Value::Int(-2) => panic!("db {db}: SCAN found {k:?}, PTTL says it does not exist"),
                Value::Int(-1) => {}
                Value::Int(n) if n >= 0 => with_ttl += 1,
                other => panic!("PTTL reply {other:?}"),
            }
        }
        summary.dbs.push((db, dbsize, with_ttl));
    }
    // After the scans every logically expired key is gone: INFO's counts are
    // exact now.
    let info = h.call(conn, &[b"INFO", b"keyspace"])?;
    let after = info_keyspace(&info)?;
    summary.dbs.retain(|d| d.1 > 0);
    assert_eq!(
        after, summary.dbs,
        "INFO keyspace (keys, expires) differs from what SCAN, PTTL found"
    );
    Some(summary)
}
