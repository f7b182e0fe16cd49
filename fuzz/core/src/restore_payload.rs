//! `restore_payload`: RESTORE with arbitrary payloads against a live node,
//! with `sanitize-dump-payload` yes and no.
//!
//! The input is a DUMP payload, so Redis's DUMP output is a seed as it is.
//! A mutated payload would nearly always fail the CRC-64 check, so the
//! target also restores a *fixed* copy: everything but the 10-byte footer,
//! followed by a valid version and CRC.
//!
//! Checks:
//! - never a panic, at RESTORE or on any later command on the key: every
//!   type's read and write commands, SCAN variants, random picks, OBJECT,
//!   DUMP + RESTORE into another key, COPY, RENAME, SORT, and DEBUG RELOAD
//!   (a save and load of the whole dataset), then the keyspace invariants;
//! - `rdb::restore_payload` accepts exactly when the node's RESTORE says OK,
//!   gives a well-formed value, and that value survives DUMP/RESTORE;
//! - the sanitize setting does not change what is accepted (the loader
//!   always validates in full).

use crate::canon::{check_dump_roundtrip, check_value};
use crate::harness::{check_keyspace, is_error, Harness};
use cinnabar_engine::config::Config;
use cinnabar_engine::rdb::{self, Crc64, LoadOptions, RDB_VERSION};
use std::collections::BTreeMap;

/// `payload` with its footer replaced by a valid one.
pub fn fix_footer(payload: &[u8]) -> Vec<u8> {
    let body = &payload[..payload.len().saturating_sub(10)];
    let mut out = body.to_vec();
    out.extend_from_slice(&(RDB_VERSION as u16).to_le_bytes());
    let crc = Crc64::checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Commands run on the restored key `k` (with `k2`, `k3` as other keys).
const PROBES: &[&[&str]] = &[
    &["TYPE", "k"],
    &["OBJECT", "ENCODING", "k"],
    &["OBJECT", "FREQ", "k"],
    &["MEMORY", "USAGE", "k"],
    &["STRLEN", "k"],
    &["GETRANGE", "k", "0", "-1"],
    &["APPEND", "k", "tail"],
    &["INCR", "k"],
    &["SETRANGE", "k", "3", "xyz"],
    &["GETBIT", "k", "7"],
    &["BITCOUNT", "k"],
    &["LRANGE", "k", "0", "-1"],
    &["LINDEX", "k", "-1"],
    &["LPOS", "k", "a"],
    &["LINSERT", "k", "BEFORE", "a", "b"],
    &["LSET", "k", "0", "x"],
    &[
        "RPUSH",
        "k",
        "1",
        "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy",
    ],
    &["LPOP", "k"],
    &["LREM", "k", "0", "1"],
    &["LTRIM", "k", "1", "-2"],
    &["HGETALL", "k"],
    &["HGET", "k", "a"],
    &[
        "HSET",
        "k",
        "a",
        "1",
        "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        "v",
    ],
    &["HINCRBY", "k", "a", "1"],
    &["HRANDFIELD", "k", "-5", "WITHVALUES"],
    &["HSCAN", "k", "0"],
    &["HDEL", "k", "a", "f1"],
    &["SMEMBERS", "k"],
    &["SISMEMBER", "k", "1"],
    &["SADD", "k", "1", "x"],
    &["SRANDMEMBER", "k", "-5"],
    &["SSCAN", "k", "0"],
    &["SINTER", "k", "k"],
    &["SPOP", "k"],
    &["SREM", "k", "1"],
    &["ZRANGE", "k", "0", "-1", "WITHSCORES"],
    &["ZRANGEBYSCORE", "k", "-inf", "+inf"],
    &["ZRANGEBYLEX", "k", "-", "+"],
    &["ZRANK", "k", "a"],
    &["ZADD", "k", "1.5", "a"],
    &["ZINCRBY", "k", "1", "b"],
    &["ZRANDMEMBER", "k", "-5", "WITHSCORES"],
    &["ZSCAN", "k", "0"],
    &["ZPOPMIN", "k"],
    &["ZREM", "k", "a"],
    &["SORT", "k", "ALPHA"],
    &["COPY", "k", "k3"],
    &["RENAME", "k3", "k2"],
];

fn argv<'a>(p: &[&'a str]) -> Vec<&'a [u8]> {
    p.iter().map(|a| a.as_bytes()).collect()
}

/// Restores `payload` into a fresh node; returns whether it was accepted.
fn restore_on_node(payload: &[u8], sanitize: &str) -> bool {
    let config = Config {
        sanitize_dump_payload: sanitize.into(),
        enable_debug_command: "yes".into(),
        ..Config::default()
    };
    let mut h = Harness::start(config, 1, BTreeMap::new());
    let c = h.connect();
    let r = h
        .call(c, &[b"RESTORE", b"k", b"0", payload])
        .expect("RESTORE replies at once");
    if is_error(&r) {
        return false;
    }
    // A second copy through the node's own DUMP.
    if let Some(cinnabar_sim::resp::Value::Bulk(dump)) = h.call(c, &[b"DUMP", b"k"]) {
        let r = h.call(c, &[b"RESTORE", b"k2", b"0", &dump, b"REPLACE"]);
        assert!(
            r.as_ref().is_some_and(|r| !is_error(r)),
            "the node's own DUMP does not RESTORE: {r:?}"
        );
    }
    for p in PROBES {
        h.call(c, &argv(p));
    }
    h.call(c, &[b"DEBUG", b"RELOAD"]);
    assert!(h.fatal.is_none(), "DEBUG RELOAD: {:?}", h.fatal);
    for p in PROBES.iter().take(12) {
        h.call(c, &argv(p));
    }
    check_keyspace(&mut h, c);
    true
}

pub fn run(data: &[u8]) {
    let config = Config::default();
    let fixed = fix_footer(data);
    let payloads: &[&[u8]] = if fixed == data {
        &[data]
    } else {
        &[data, &fixed]
    };
    for &payload in payloads {
        let results: Vec<bool> = [true, false]
            .into_iter()
            .map(|sanitize| {
                let opts = LoadOptions {
                    config: &config,
                    check_checksum: true,
                    sanitize,
                };
                match rdb::restore_payload(payload, &opts) {
                    Ok(v) => {
                        check_value(&v);
                        check_dump_roundtrip(&v, &config);
                        true
                    }
                    Err(e) => {
                        assert!(!e.0.is_empty());
                        false
                    }
                }
            })
            .collect();
        assert_eq!(results[0], results[1], "sanitize changed the verdict");
        for (sanitize, expected) in [("yes", results[0]), ("no", results[1])] {
            // A payload with a bad footer goes through the node once.
            if sanitize == "no" && rdb::verify_payload(payload).is_err() {
                continue;
            }
            assert_eq!(
                restore_on_node(payload, sanitize),
                expected,
                "the node's RESTORE and rdb::restore_payload disagree"
            );
        }
    }
}
