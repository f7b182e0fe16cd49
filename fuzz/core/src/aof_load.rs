//! `aof_load`: arbitrary AOF directories through a node's start-up with
//! `appendonly yes`.
//!
//! Input format (the "container"): the manifest's bytes, then each file,
//! separated by [`FILE_SEP`]. The k-th file gets the name of the k-th
//! `file <name> ... type b|i` line of the manifest (so Redis-made AOF
//! directories, packed by `fuzz/tools/make_corpus.py`, are seeds); files
//! without a name are dropped.
//!
//! Checks:
//! - never a panic or hang: the node either stops with `Fatal` or serves;
//! - when it serves, the keyspace invariants hold, and BGREWRITEAOF followed
//!   by a restart from the rewritten directory gives the same dataset;
//! - a torn tail that `aof-load-truncated yes` cut off is fatal with
//!   `aof-load-truncated no`.
//!
//! Lua in an AOF runs as it would at start-up: a script that runs past
//! the loading limit fails the load (finding F-1 in docs/fuzzing.md, fixed).

use crate::harness::{check_keyspace, text, Harness};
use cinnabar_engine::Config;
use cinnabar_sim::resp::Value;
use std::collections::BTreeMap;

/// Separates the manifest and the files in the container.
pub const FILE_SEP: &[u8] = b"\x00\x00FILE\x00\x00";

const DIR: &str = "appendonlydir";

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(FILE_SEP.len()).position(|w| w == FILE_SEP) {
        parts.push(&rest[..i]);
        rest = &rest[i + FILE_SEP.len()..];
    }
    parts.push(rest);
    parts
}

/// The files named by the manifest's base and incr lines, in order.
fn names(manifest: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(manifest);
    let mut out = Vec::new();
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        let name = t.windows(2).find(|w| w[0] == "file").map(|w| w[1]);
        let kind = t.windows(2).find(|w| w[0] == "type").map(|w| w[1]);
        if let (Some(n), Some("b" | "i")) = (name, kind) {
            if !n.contains('/') {
                out.push(n.to_string());
            }
        }
    }
    out
}

/// The directory the container describes, as the node's disk.
pub fn unpack(data: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let parts = split(data);
    let mut files = BTreeMap::new();
    let manifest = parts[0];
    files.insert(format!("{DIR}/appendonly.aof.manifest"), manifest.to_vec());
    for (name, content) in names(manifest).into_iter().zip(&parts[1..]) {
        files.insert(format!("{DIR}/{name}"), content.to_vec());
    }
    files
}

pub fn config(truncated_ok: bool) -> Config {
    Config {
        appendonly: true,
        aof_load_truncated: truncated_ok,
        enable_debug_command: "yes".into(),
        ..Config::default()
    }
}

/// (db, key) -> [type, PEXPIRETIME, elements...].
pub type Snapshot = BTreeMap<(usize, Vec<u8>), Vec<Vec<u8>>>;

/// Every key of every database with its type, expiry and content (sorted
/// where the type has no order), read through commands.
pub fn snapshot(h: &mut Harness, conn: u64) -> Option<Snapshot> {
    let summary = check_keyspace(h, conn)?;
    let mut out = BTreeMap::new();
    for (db, _, _) in summary.dbs {
        h.call(conn, &[b"SELECT", db.to_string().as_bytes()])?;
        let Value::Array(keys) = h.call(conn, &[b"KEYS", b"*"])? else {
            return None;
        };
        for k in keys {
            let k = text(&k)?.to_vec();
            let t = text(&h.call(conn, &[b"TYPE", &k])?)?.to_vec();
            let read: &[&[u8]] = match &t[..] {
                b"string" => &[b"GET"],
                b"list" => &[b"LRANGE", b"0", b"-1"],
                b"hash" => &[b"HGETALL"],
                b"set" => &[b"SMEMBERS"],
                b"zset" => &[b"ZRANGE", b"0", b"-1", b"WITHSCORES"],
                b"stream" => &[b"XRANGE", b"-", b"+"],
                _ => panic!("unknown type {t:?}"),
            };
            let mut argv: Vec<&[u8]> = vec![read[0], &k];
            argv.extend_from_slice(&read[1..]);
            let mut content = match h.call(conn, &argv)? {
                Value::Array(items) => items
                    .chunks(if &t[..] == b"hash" { 2 } else { 1 })
                    .map(|c| c.iter().flat_map(flatten).collect::<Vec<_>>().concat())
                    .collect(),
                v => vec![text(&v)?.to_vec()],
            };
            if &t[..] == b"hash" || &t[..] == b"set" {
                content.sort();
            }
            let Value::Int(expire) = h.call(conn, &[b"PEXPIRETIME", &k])? else {
                return None;
            };
            content.insert(0, t);
            content.insert(1, expire.to_string().into_bytes());
            out.insert((db, k), content);
        }
    }
    Some(out)
}

pub fn run(data: &[u8]) {
    let files = unpack(data);
    let mut h = Harness::start(config(true), 1, files.clone());
    if h.truncated {
        let strict = Harness::start(config(false), 1, files);
        assert!(
            strict.fatal.is_some(),
            "a tail cut off under aof-load-truncated yes loads under no"
        );
    }
    if h.fatal.is_some() || h.shutdown {
        return;
    }
    let c = h.connect();
    let Some(before) = snapshot(&mut h, c) else {
        return;
    };
    let aof_on = h
        .call(c, &[b"INFO", b"persistence"])
        .and_then(|v| text(&v).map(|t| t.windows(13).any(|w| w == b"aof_enabled:1")));
    if aof_on != Some(true) {
        return;
    }
    h.call(c, &[b"BGREWRITEAOF"]);
    h.settle();
    assert!(h.fatal.is_none(), "BGREWRITEAOF: {:?}", h.fatal);
    let mut r = Harness::start(config(false), 2, h.files.clone());
    r.now = h.now;
    assert!(
        r.fatal.is_none(),
        "the rewritten AOF does not load: {:?}",
        r.fatal
    );
    let c = r.connect();
    let after = snapshot(&mut r, c).expect("the restarted node answers");
    assert_eq!(before, after, "rewrite + restart changed the dataset");
}

/// The strings of a reply, nested arrays (a stream's entries) included, in
/// order.
fn flatten(v: &Value) -> Vec<Vec<u8>> {
    match v {
        Value::Array(items) => items.iter().flat_map(flatten).collect(),
        v => text(v).map(|t| vec![t.to_vec()]).unwrap_or_default(),
    }
}
