//! Streams driven through `Node` with a virtual clock: blocking wake-ups,
//! and the consumer-group property (no entry lost, none acknowledged
//! twice) under random interleavings of consumers reading, acknowledging,
//! claiming and crashing.

use cinnabar_engine::disk::{DiskError, DiskOp, DiskReply};
use cinnabar_engine::{Config, ConnId, Input, Node, Output, Time};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const T0: u64 = 1_700_000_000_000_000; // unix microseconds

struct Harness {
    node: Node,
    now: u64,
}

impl Harness {
    fn new() -> Harness {
        let mut node = Node::new(Config::default(), 7);
        node.start(Time(T0));
        let mut h = Harness { node, now: T0 };
        h.drain();
        h
    }

    fn connect(&mut self, conn: u64) {
        self.node.handle(
            Time(self.now),
            Input::Accepted {
                conn: ConnId(conn),
                peer: format!("127.0.0.1:{}", 40000 + conn),
                local: "127.0.0.1:6379".into(),
            },
        );
        self.drain();
    }

    fn drain(&mut self) -> BTreeMap<u64, Vec<u8>> {
        let mut out: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        while let Some(o) = self.node.poll_output() {
            match o {
                Output::Send { conn, data } => {
                    out.entry(conn.0).or_default().extend_from_slice(&data)
                }
                // No files: the start-up load finds nothing, writes succeed.
                Output::Disk { id, op } => {
                    let result = match op {
                        DiskOp::Read { .. } => Err(DiskError::NotFound),
                        DiskOp::Write { data, .. } | DiskOp::Append { data, .. } => {
                            Ok(DiskReply::Written(data.len() as u64))
                        }
                        DiskOp::ListDir { .. } => Ok(DiskReply::Names(Vec::new())),
                        _ => Ok(DiskReply::Done),
                    };
                    self.node
                        .handle(Time(self.now), Input::DiskDone { id, result });
                }
                _ => {}
            }
        }
        out
    }

    /// Sends a command (arguments as given, RESP-encoded) from `conn`;
    /// returns what every connection received.
    fn send(&mut self, conn: u64, args: &[&str]) -> BTreeMap<u64, Vec<u8>> {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n{}\r\n", a.len(), a).as_bytes());
        }
        self.node.handle(
            Time(self.now),
            Input::Received {
                conn: ConnId(conn),
                data: &req,
            },
        );
        self.drain()
    }

    /// A command's reply to its own connection, as text.
    fn cmd(&mut self, conn: u64, args: &[&str]) -> String {
        let out = self.send(conn, args);
        String::from_utf8_lossy(out.get(&conn).map_or(&[][..], |v| v)).into_owned()
    }

    fn advance_ms(&mut self, ms: u64) {
        self.now += ms * 1000;
        self.node.handle(Time(self.now), Input::Tick);
        self.drain();
    }
}

fn text(b: Option<&Vec<u8>>) -> String {
    String::from_utf8_lossy(b.map_or(&[][..], |v| v)).into_owned()
}

#[test]
fn blocked_xreadgroup_is_woken_with_errors_when_its_stream_or_group_goes() {
    let mut h = Harness::new();
    for c in 1..=4 {
        h.connect(c);
    }
    h.cmd(1, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    h.cmd(1, &["XGROUP", "CREATE", "s2", "g", "$", "MKSTREAM"]);
    assert_eq!(
        h.cmd(
            2,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "a",
                "BLOCK",
                "0",
                "STREAMS",
                "s2",
                ">"
            ]
        ),
        ""
    );
    assert_eq!(
        h.cmd(
            3,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "b",
                "BLOCK",
                "0",
                "STREAMS",
                "s",
                ">"
            ]
        ),
        ""
    );
    let out = h.send(1, &["DEL", "s2"]);
    assert_eq!(
        text(out.get(&2)),
        "-UNBLOCKED the stream key no longer exists\r\n"
    );
    let out = h.send(1, &["XGROUP", "DESTROY", "s", "g"]);
    assert_eq!(
        text(out.get(&3)),
        "-NOGROUP the consumer group this client was blocked on no longer exists\r\n"
    );
}

#[test]
fn blocked_xread_on_dollar_waits_for_entries_after_the_block() {
    let mut h = Harness::new();
    h.connect(1);
    h.connect(2);
    h.cmd(1, &["XADD", "s", "1-1", "a", "1"]);
    assert_eq!(h.cmd(2, &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]), "");
    // Another key's write must not wake it with old entries.
    h.cmd(1, &["SET", "x", "1"]);
    let out = h.send(1, &["XADD", "s", "2-1", "b", "2"]);
    assert_eq!(
        text(out.get(&2)),
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n"
    );
}

#[test]
fn blocked_xread_times_out_with_a_null_array() {
    let mut h = Harness::new();
    h.connect(1);
    assert_eq!(
        h.cmd(1, &["XREAD", "BLOCK", "100", "STREAMS", "s", "0"]),
        ""
    );
    h.advance_ms(150);
    // The timeout reply went out on the tick.
    assert_eq!(h.cmd(1, &["PING"]), "+PONG\r\n");
}

/// One step of the consumer-group workload.
#[derive(Debug, Clone)]
enum Op {
    /// The producer adds an entry.
    Add,
    /// Consumer `c` reads up to `n` new entries.
    Read { c: u8, n: u8 },
    /// Consumer `c` acknowledges its `i`-th pending entry (if any).
    Ack { c: u8, i: u8 },
    /// An entry acknowledged before is acknowledged again (a duplicate
    /// ack must count 0).
    AckAgain,
    /// Consumer `c` claims entries idle at least `idle` ms with XAUTOCLAIM.
    AutoClaim { c: u8, idle: u8 },
    /// Consumer `c` claims another consumer's entry with XCLAIM.
    Claim { c: u8, i: u8 },
    /// Consumer `c` crashes: it forgets what it held (its entries stay
    /// pending in the group and must be claimable).
    Crash { c: u8 },
    /// Time passes.
    Sleep { ms: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Add),
        3 => (0..3u8, 1..4u8).prop_map(|(c, n)| Op::Read { c, n }),
        3 => (0..3u8, 0..4u8).prop_map(|(c, i)| Op::Ack { c, i }),
        1 => Just(Op::AckAgain),
        1 => (0..3u8, 0..50u8).prop_map(|(c, idle)| Op::AutoClaim { c, idle }),
        1 => (0..3u8, 0..8u8).prop_map(|(c, i)| Op::Claim { c, i }),
        1 => (0..3u8).prop_map(|c| Op::Crash { c }),
        1 => (0..100u8).prop_map(|ms| Op::Sleep { ms }),
    ]
}

/// Pulls the entry IDs out of an XREADGROUP reply (RESP2 text).
fn ids_in(reply: &str) -> Vec<String> {
    reply
        .split("\r\n")
        .filter(|l| {
            let b = l.as_bytes();
            !b.is_empty() && b[0].is_ascii_digit() && l.contains('-') && l.split('-').count() == 2
        })
        .map(String::from)
        .collect()
}

fn int_of(reply: &str) -> i64 {
    reply
        .trim_end()
        .strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or(-1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every added entry is delivered to some consumer, stays pending
    /// until acknowledged exactly once, and the group PEL is exactly what
    /// was delivered and not yet acknowledged, whatever the interleaving.
    #[test]
    fn consumer_groups_never_lose_or_double_ack(ops in proptest::collection::vec(op(), 1..80)) {
        let mut h = Harness::new();
        for c in 0..4 {
            h.connect(c);
        }
        h.cmd(0, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
        let names = ["alice", "bob", "carol"];
        let mut added: Vec<String> = Vec::new();
        // What each consumer believes it holds (lost on a crash).
        let mut held: Vec<Vec<String>> = vec![Vec::new(); 3];
        // The model: delivered and not acknowledged.
        let mut pending: BTreeSet<String> = BTreeSet::new();
        let mut acked: BTreeSet<String> = BTreeSet::new();
        let mut next = 1u64;
        for op in ops {
            match op {
                Op::Add => {
                    let id = format!("{next}-0");
                    next += 1;
                    let r = h.cmd(0, &["XADD", "s", &id, "f", "v"]);
                    prop_assert_eq!(r, format!("${}\r\n{}\r\n", id.len(), id));
                    added.push(id);
                }
                Op::Read { c, n } => {
                    let r = h.cmd(1 + c as u64, &["XREADGROUP", "GROUP", "g", names[c as usize], "COUNT", &n.to_string(), "STREAMS", "s", ">"]);
                    for id in ids_in(&r) {
                        // A new entry is never delivered twice with `>`.
                        prop_assert!(pending.insert(id.clone()), "delivered twice: {}", id);
                        prop_assert!(!acked.contains(&id));
                        held[c as usize].push(id);
                    }
                }
                Op::Ack { c, i } => {
                    let mine = &mut held[c as usize];
                    if mine.is_empty() { continue; }
                    let id = mine.remove(i as usize % mine.len());
                    let n = int_of(&h.cmd(0, &["XACK", "s", "g", &id]));
                    // Acknowledged by exactly one consumer, exactly once.
                    prop_assert_eq!(n, 1, "ack of {}", id);
                    prop_assert!(pending.remove(&id));
                    prop_assert!(acked.insert(id));
                }
                Op::AckAgain => {
                    if let Some(id) = acked.iter().next().cloned() {
                        prop_assert_eq!(int_of(&h.cmd(0, &["XACK", "s", "g", &id])), 0);
                    }
                }
                Op::AutoClaim { c, idle } => {
                    let r = h.cmd(1 + c as u64, &["XAUTOCLAIM", "s", "g", names[c as usize], &idle.to_string(), "0", "COUNT", "100", "JUSTID"]);
                    let claimed = ids_in(&r);
                    for id in claimed.iter().filter(|id| pending.contains(*id)) {
                        for hh in held.iter_mut() {
                            hh.retain(|x| x != id);
                        }
                        held[c as usize].push(id.clone());
                    }
                    for id in &claimed {
                        if *id != "0-0" {
                            prop_assert!(!acked.contains(id), "claimed an acked entry {}", id);
                        }
                    }
                }
                Op::Claim { c, i } => {
                    let all: Vec<String> = pending.iter().cloned().collect();
                    if all.is_empty() { continue; }
                    let id = all[i as usize % all.len()].clone();
                    let r = h.cmd(1 + c as u64, &["XCLAIM", "s", "g", names[c as usize], "0", &id, "JUSTID"]);
                    prop_assert_eq!(ids_in(&r), vec![id.clone()]);
                    for hh in held.iter_mut() {
                        hh.retain(|x| *x != id);
                    }
                    held[c as usize].push(id);
                }
                Op::Crash { c } => held[c as usize].clear(),
                Op::Sleep { ms } => h.advance_ms(ms as u64),
            }
            // The group PEL is exactly the model's pending set.
            let r = h.cmd(0, &["XPENDING", "s", "g", "-", "+", "1000"]);
            let in_pel: BTreeSet<String> = ids_in(&r).into_iter().collect();
            prop_assert_eq!(&in_pel, &pending);
        }
        // Liveness: a survivor claims everything still pending, then
        // acknowledges it all; every entry ever added is then delivered.
        let r = h.cmd(1, &["XAUTOCLAIM", "s", "g", "alice", "0", "0", "COUNT", "1000", "JUSTID"]);
        let claimed: BTreeSet<String> = ids_in(&r).into_iter().filter(|i| i != "0-0").collect();
        prop_assert_eq!(&claimed, &pending);
        let r = h.cmd(1, &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"]);
        for id in ids_in(&r) {
            prop_assert!(pending.insert(id));
        }
        for id in pending.clone() {
            prop_assert_eq!(int_of(&h.cmd(0, &["XACK", "s", "g", &id])), 1);
            acked.insert(id);
        }
        let all: BTreeSet<String> = added.into_iter().collect();
        prop_assert_eq!(acked, all);
        prop_assert_eq!(h.cmd(0, &["XPENDING", "s", "g"]), "*4\r\n:0\r\n$-1\r\n$-1\r\n*-1\r\n");
    }
}
