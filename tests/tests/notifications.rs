//! Keyspace notifications against genuine Redis 7.0: the same command
//! sequences run on both servers while a subscriber (RESP2 or RESP3)
//! listens on `__key*__:*`; the raw messages it receives, in order, and the
//! writer's replies must be identical.

use cinnabar_tests::{show, Conn, Server};
use std::time::Duration;

/// Runs `script` (commands; `["SLEEP", ms]` pauses) on a writer after
/// `CONFIG SET notify-keyspace-events flags`, with a subscriber on every
/// keyspace and keyevent channel. Returns the writer's replies and, in
/// order, every message the subscriber received.
fn transcript(s: &Server, flags: &str, resp3: bool, script: &[&[&str]]) -> Vec<String> {
    let mut w = s.connect();
    let mut sub = s.connect();
    let mut out = Vec::new();
    out.push(show(&w.cmd_str(&[
        "CONFIG",
        "SET",
        "notify-keyspace-events",
        flags,
    ])));
    out.push(show(&w.cmd_str(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"])));
    if resp3 {
        sub.cmd_str(&["HELLO", "3"]);
    }
    sub.send(&[b"PSUBSCRIBE", b"__key*__:*"]);
    sub.send(&[b"SUBSCRIBE", b"end-of-test"]);
    // The two subscription confirmations.
    for _ in 0..2 {
        out.push(show(&sub.read_reply().expect("subscribed")));
    }
    for cmd in script {
        if cmd[0] == "SLEEP" {
            let ms: u64 = cmd[1].parse().expect("SLEEP ms");
            std::thread::sleep(Duration::from_millis(ms));
            continue;
        }
        let mut reply = show(&w.cmd_str(cmd));
        if matches!(cmd[0], "SPOP" | "SMEMBERS") {
            // A hashtable set's order depends on Redis's hash seed: only
            // the reply's length line is compared.
            reply.truncate(reply.find("\\r\\n").unwrap_or(reply.len()));
        }
        out.push(format!("{:?} -> {}", cmd, reply));
    }
    w.cmd_str(&["PUBLISH", "end-of-test", "."]);
    loop {
        let m = show(&sub.read_reply().expect("a message"));
        let end = m.contains("end-of-test");
        out.push(m);
        if end {
            break;
        }
    }
    out
}

/// Compares two transcripts, showing the first difference in context.
fn assert_same(redis: &[String], ours: &[String], what: &str) {
    if let Some(d) = first_difference(redis, ours) {
        panic!("{what}: {d}");
    }
}

/// The first line where two transcripts differ, with context.
fn first_difference(redis: &[String], ours: &[String]) -> Option<String> {
    if redis == ours {
        return None;
    }
    let i = redis
        .iter()
        .zip(ours)
        .position(|(a, b)| a != b)
        .unwrap_or(redis.len().min(ours.len()));
    let from = i.saturating_sub(6);
    Some(format!(
        "first difference at line {i}\nredis:\n{}\ncinnabar:\n{}",
        redis[from..redis.len().min(i + 4)].join("\n"),
        ours[from..ours.len().min(i + 4)].join("\n")
    ))
}

/// Runs `script` on both servers with both protocols and compares.
fn check(flags: &str, script: &[&[&str]]) {
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    for resp3 in [false, true] {
        let a = transcript(&redis, flags, resp3, script);
        let b = transcript(&ours, flags, resp3, script);
        assert_same(&a, &b, &format!("flags {flags:?} resp3 {resp3}"));
        // Each run starts from an empty keyspace.
        let mut c = redis.connect();
        c.cmd_str(&["FLUSHALL"]);
        let mut c = ours.connect();
        c.cmd_str(&["FLUSHALL"]);
    }
}

#[test]
fn config_is_parsed_and_formatted_like_redis() {
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let run = |s: &Server| -> Vec<String> {
        let mut c = s.connect();
        let mut out = vec![show(&c.cmd_str(&[
            "CONFIG",
            "GET",
            "notify-keyspace-events",
        ]))];
        for v in [
            "KEA",
            "KEAn",
            "AKEmn",
            "Elg$",
            "mnK",
            "",
            "x",
            "Kgx",
            "Ag$lshzxetd",
            "g$lshzxetdKE",
            "EA",
            "Kq",
            "KEA ",
            "d",
            "tm",
            "ee",
        ] {
            out.push(show(&c.cmd_str(&[
                "CONFIG",
                "SET",
                "notify-keyspace-events",
                v,
            ])));
            out.push(show(&c.cmd_str(&[
                "CONFIG",
                "GET",
                "notify-keyspace-events",
            ])));
        }
        out
    };
    assert_eq!(run(&redis), run(&ours));
}

#[test]
fn string_commands() {
    check(
        "KEA",
        &[
            &["SET", "s", "1"],
            &["SET", "s", "2", "EX", "100"],
            &["SET", "s", "3", "NX"],
            &["SET", "s", "4", "XX", "KEEPTTL"],
            &["SET", "s", "5", "GET", "PX", "100000"],
            &["SETNX", "s2", "a"],
            &["SETNX", "s2", "b"],
            &["SETEX", "s3", "100", "v"],
            &["PSETEX", "s4", "100000", "v"],
            &["GETSET", "s", "x"],
            &["MSET", "m1", "a", "m2", "b"],
            &["MSETNX", "m3", "a", "m1", "b"],
            &["MSETNX", "m3", "a", "m4", "b"],
            &["APPEND", "ap", "x"],
            &["APPEND", "ap", "y"],
            &["INCR", "n"],
            &["DECR", "n"],
            &["INCRBY", "n", "5"],
            &["DECRBY", "n", "2"],
            &["INCRBYFLOAT", "f", "1.5"],
            &["INCR", "ap"],
            &["SETRANGE", "sr", "3", "abc"],
            &["SETRANGE", "sr", "0", ""],
            &["SETRANGE", "nosr", "0", ""],
            &["GETEX", "s", "EX", "100"],
            &["GETEX", "s", "PERSIST"],
            &["GETEX", "s", "PERSIST"],
            &["GETEX", "s", "PXAT", "1"],
            &["GETDEL", "m1"],
            &["GETDEL", "m1"],
            &["GET", "m2"],
            &["STRLEN", "m2"],
        ],
    );
}

#[test]
fn generic_commands() {
    check(
        "KEA",
        &[
            &["SET", "a", "1"],
            &["SET", "b", "2"],
            &["DEL", "a", "nokey", "b"],
            &["SET", "a", "1"],
            &["UNLINK", "a"],
            &["SET", "k", "v"],
            &["EXPIRE", "k", "100"],
            &["PEXPIRE", "k", "100000"],
            &["EXPIREAT", "k", "99999999999"],
            &["EXPIRE", "k", "100", "NX"],
            &["PERSIST", "k"],
            &["PERSIST", "k"],
            &["RENAME", "k", "k2"],
            &["SET", "k3", "x"],
            &["RENAME", "k2", "k3"],
            &["RENAMENX", "k3", "k4"],
            &["SET", "k5", "y"],
            &["RENAMENX", "k4", "k5"],
            &["RENAME", "k4", "k4"],
            &["COPY", "k4", "c1"],
            &["COPY", "k4", "c1"],
            &["COPY", "k4", "c1", "REPLACE"],
            &["COPY", "k4", "c2", "DB", "1"],
            &["MOVE", "c1", "2"],
            &["MOVE", "k4", "1"],
            &["SET", "e", "v"],
            &["EXPIRE", "e", "-1"],
            &["SET", "e", "v"],
            &["PEXPIREAT", "e", "1"],
            &["SET", "t", "v"],
            &["TOUCH", "t"],
            &["EXISTS", "t"],
            &["TYPE", "t"],
        ],
    );
}

#[test]
fn dump_and_restore() {
    // The payload is produced on each server by DUMP and fed back.
    let run = |s: &Server, resp3: bool| -> Vec<String> {
        let mut w = s.connect();
        let mut sub = s.connect();
        w.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", "KEAn"]);
        if resp3 {
            sub.cmd_str(&["HELLO", "3"]);
        }
        sub.send(&[b"PSUBSCRIBE", b"__key*__:*"]);
        sub.send(&[b"SUBSCRIBE", b"end-of-test"]);
        let mut out = vec![
            show(&sub.read_reply().expect("subscribed")),
            show(&sub.read_reply().expect("subscribed")),
        ];
        w.cmd_str(&["RPUSH", "l", "a", "b"]);
        let dump = w.cmd_str(&["DUMP", "l"]);
        // The payload is the bulk string's content.
        let start = dump.iter().position(|&b| b == b'\n').expect("bulk header") + 1;
        let payload = dump[start..dump.len() - 2].to_vec();
        out.push(show(&w.cmd(&[b"RESTORE", b"r", b"0", &payload])));
        out.push(show(&w.cmd(&[b"RESTORE", b"r", b"0", &payload])));
        out.push(show(
            &w.cmd(&[b"RESTORE", b"r", b"0", &payload, b"REPLACE"]),
        ));
        out.push(show(
            &w.cmd(&[b"RESTORE", b"r", b"1", &payload, b"REPLACE", b"ABSTTL"]),
        ));
        out.push(show(&w.cmd(&[b"RESTORE", b"r2", b"100000", &payload])));
        w.cmd_str(&["PUBLISH", "end-of-test", "."]);
        loop {
            let m = show(&sub.read_reply().expect("a message"));
            let end = m.contains("end-of-test");
            out.push(m);
            if end {
                break;
            }
        }
        w.cmd_str(&["FLUSHALL"]);
        out
    };
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    for resp3 in [false, true] {
        assert_same(&run(&redis, resp3), &run(&ours, resp3), "restore");
    }
}

#[test]
fn list_commands() {
    check(
        "KEA",
        &[
            &["LPUSH", "l", "a", "b"],
            &["RPUSH", "l", "c"],
            &["LPUSHX", "l", "d"],
            &["RPUSHX", "l", "e"],
            &["LPUSHX", "nol", "d"],
            &["LINSERT", "l", "BEFORE", "a", "z"],
            &["LINSERT", "l", "BEFORE", "nothere", "z"],
            &["LSET", "l", "0", "q"],
            &["LREM", "l", "0", "nothere"],
            &["LREM", "l", "1", "q"],
            &["LPOP", "l"],
            &["RPOP", "l", "2"],
            &["LPOP", "l", "0"],
            &["LTRIM", "l", "0", "0"],
            &["LTRIM", "l", "5", "10"],
            &["RPUSH", "src", "1", "2", "3"],
            &["LMOVE", "src", "dst", "LEFT", "RIGHT"],
            &["RPOPLPUSH", "src", "dst"],
            &["LMOVE", "src", "src", "LEFT", "LEFT"],
            &["LMOVE", "src", "dst", "RIGHT", "LEFT"],
            &["LMPOP", "2", "nol", "dst", "LEFT", "COUNT", "2"],
            &["LMPOP", "1", "dst", "RIGHT"],
            &["RPUSH", "b", "x"],
            &["BLPOP", "b", "0"],
            &["RPUSH", "b", "x", "y"],
            &["BRPOP", "b", "0"],
            &["BLMOVE", "b", "b2", "LEFT", "LEFT", "0"],
            &["BRPOPLPUSH", "b2", "b3", "0"],
            &["BLMPOP", "0", "1", "b3", "LEFT", "COUNT", "5"],
            &["LRANGE", "b3", "0", "-1"],
            &["RPUSH", "r", "1", "2", "3"],
            &["LREM", "r", "0", "2"],
            &["LREM", "r", "0", "1"],
            &["LREM", "r", "0", "3"],
        ],
    );
}

#[test]
fn hash_commands() {
    check(
        "KEA",
        &[
            &["HSET", "h", "a", "1", "b", "2"],
            &["HSET", "h", "a", "1"],
            &["HMSET", "h", "c", "3"],
            &["HSETNX", "h", "c", "4"],
            &["HSETNX", "h", "d", "4"],
            &["HINCRBY", "h", "n", "5"],
            &["HINCRBYFLOAT", "h", "f", "1.5"],
            &["HDEL", "h", "nothere"],
            &["HDEL", "h", "a", "b"],
            &["HDEL", "h", "c", "d", "n", "f"],
            &["HGET", "h", "a"],
            &["HINCRBY", "h2", "x", "1"],
        ],
    );
}

#[test]
fn set_commands() {
    check(
        "KEA",
        &[
            &["SADD", "s", "a", "b", "c"],
            &["SADD", "s", "a"],
            &["SREM", "s", "nothere"],
            &["SREM", "s", "a"],
            &["SMOVE", "s", "t", "b"],
            &["SMOVE", "s", "t", "nothere"],
            &["SMOVE", "s", "t", "c"],
            // Pops whose result does not depend on the random choice.
            &["SADD", "u", "1"],
            &["SPOP", "u"],
            &["SADD", "u", "1", "2", "3", "4"],
            &["SPOP", "u", "0"],
            &["SPOP", "u", "5"],
            &["SADD", "x", "1", "2"],
            &["SADD", "y", "2", "3"],
            &["SINTERSTORE", "d", "x", "y"],
            &["SINTERSTORE", "d", "x", "nothere"],
            &["SINTERSTORE", "d", "x", "nothere"],
            &["SUNIONSTORE", "d", "x", "y"],
            &["SDIFFSTORE", "d", "x", "y"],
            &["SDIFFSTORE", "d", "x", "x"],
            &["SREM", "t", "b", "c"],
            &["SMEMBERS", "x"],
        ],
    );
}

#[test]
fn zset_and_geo_commands() {
    check(
        "KEA",
        &[
            &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
            &["ZADD", "z", "1", "a"],
            &["ZADD", "z", "INCR", "1", "a"],
            &["ZINCRBY", "z", "1", "b"],
            &["ZADD", "z", "NX", "5", "a"],
            &["ZREM", "z", "nothere"],
            &["ZREM", "z", "a"],
            &["ZPOPMIN", "z"],
            &["ZPOPMAX", "z", "1"],
            &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
            &["ZREMRANGEBYSCORE", "z", "1", "1"],
            &["ZREMRANGEBYRANK", "z", "0", "0"],
            &["ZREMRANGEBYLEX", "z", "-", "+"],
            &["ZREMRANGEBYLEX", "z", "-", "+"],
            &["ZADD", "p", "1", "a", "2", "b"],
            &["ZADD", "q", "2", "b", "3", "c"],
            &["ZUNIONSTORE", "o", "2", "p", "q"],
            &["ZINTERSTORE", "o", "2", "p", "q"],
            &["ZDIFFSTORE", "o", "2", "p", "q"],
            &["ZDIFFSTORE", "o", "2", "p", "p"],
            &["ZRANGESTORE", "o", "p", "0", "-1"],
            &["ZRANGESTORE", "o", "p", "5", "6"],
            &["ZMPOP", "2", "nothere", "p", "MIN", "COUNT", "5"],
            &["BZPOPMIN", "q", "0"],
            &["BZPOPMAX", "q", "0"],
            &["ZADD", "q", "1", "x"],
            &["BZMPOP", "0", "1", "q", "MAX"],
            &[
                "GEOADD",
                "g",
                "13.361389",
                "38.115556",
                "Palermo",
                "15.087269",
                "37.502669",
                "Catania",
            ],
            &["GEOADD", "g", "13.361389", "38.115556", "Palermo"],
            &["GEORADIUS", "g", "15", "37", "200", "km", "STORE", "gs"],
            &["GEORADIUS", "g", "15", "37", "1", "km", "STORE", "gs"],
            &[
                "GEOSEARCHSTORE",
                "gs2",
                "g",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
            ],
            &[
                "GEOSEARCHSTORE",
                "gs2",
                "nothere",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
            ],
            &[
                "GEORADIUSBYMEMBER",
                "g",
                "Palermo",
                "300",
                "km",
                "STOREDIST",
                "gs3",
            ],
        ],
    );
}

#[test]
fn bitmap_and_hyperloglog_commands() {
    check(
        "KEA",
        &[
            &["SETBIT", "b", "7", "1"],
            &["SETBIT", "b", "7", "1"],
            &["SETBIT", "b", "100", "0"],
            &["SET", "x", "abc"],
            &["BITOP", "AND", "d", "b", "x"],
            &["BITOP", "OR", "d", "nothere"],
            &["BITOP", "OR", "d", "nothere"],
            &["BITFIELD", "bf", "SET", "u8", "0", "255", "GET", "u8", "0"],
            &["BITFIELD", "bf", "GET", "u8", "0"],
            &["BITFIELD", "bf", "INCRBY", "u8", "0", "1"],
            &[
                "BITFIELD", "bf", "OVERFLOW", "FAIL", "INCRBY", "u8", "0", "300",
            ],
            &["PFADD", "h", "a", "b"],
            &["PFADD", "h", "a"],
            &["PFADD", "h2"],
            &["PFADD", "h2"],
            &["PFMERGE", "h3", "h", "h2"],
            &["PFCOUNT", "h"],
            &["GETBIT", "b", "7"],
        ],
    );
}

#[test]
fn expired_events_lazy_and_active() {
    check(
        "KEA",
        &[
            &["SET", "a", "1", "PX", "1"],
            &["SET", "b", "1", "PX", "1"],
            &["SET", "c", "1", "PX", "1"],
            &["RPUSH", "l", "x"],
            &["PEXPIRE", "l", "1"],
            &["SLEEP", "20"],
            // Lazily, by a read, a write and a DEL.
            &["GET", "a"],
            &["SET", "b", "2"],
            &["DEL", "c"],
            &["LPUSH", "l", "y"],
            &["SET", "d", "1", "PX", "1"],
            &["DEBUG", "SET-ACTIVE-EXPIRE", "1"],
            // The active cycle (hz 10) finds d within a few ticks.
            &["SLEEP", "600"],
            &["DEBUG", "SET-ACTIVE-EXPIRE", "0"],
        ],
    );
}

#[test]
fn evicted_event() {
    // The only volatile key goes first; then the write is refused.
    check(
        "KEA",
        &[
            &["SET", "keep", "1"],
            &["SET", "v", "1", "EX", "100"],
            &["CONFIG", "SET", "maxmemory-policy", "volatile-lru"],
            &["CONFIG", "SET", "maxmemory", "1"],
            &["SLEEP", "100"],
            &["SET", "new", "2"],
            &["CONFIG", "SET", "maxmemory", "0"],
            &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
        ],
    );
}

#[test]
fn class_filters_and_new_and_keymiss() {
    let script: &[&[&str]] = &[
        &["SET", "s", "1"],
        &["SET", "s", "2"],
        &["RPUSH", "l", "a"],
        &["SADD", "st", "a"],
        &["HSET", "h", "f", "v"],
        &["ZADD", "z", "1", "a"],
        &["DEL", "s"],
        &["EXPIRE", "l", "100"],
        &["GET", "nothere"],
        &["LRANGE", "nolist", "0", "-1"],
        &["HGET", "h", "f"],
        &["EXISTS", "missing"],
        &["RENAME", "l", "l2"],
        &["RPUSH", "l3", "x"],
        &["RENAME", "l2", "l3"],
        &["LMOVE", "l3", "fresh", "LEFT", "LEFT"],
        &["SMOVE", "st", "st2", "a"],
        &["SUNIONSTORE", "su", "st2"],
        &["COPY", "su", "su2"],
        &["INCR", "ctr"],
        &["APPEND", "ap", "x"],
        &["SETRANGE", "sr", "2", "x"],
        &["PFADD", "hll", "a"],
        &["SETBIT", "bits", "3", "1"],
        &["GEOADD", "geo", "13.361389", "38.115556", "P"],
    ];
    for flags in [
        "KEA", "Kg", "E$", "Kl", "Es", "Kh", "Ez", "KEn", "KEAn", "Em", "KAm", "AE", "K", "A", "",
    ] {
        check(flags, script);
    }
}

#[test]
fn a_resp3_client_receives_its_own_events() {
    let run = |s: &Server| -> Vec<String> {
        let mut c: Conn = s.connect();
        c.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
        c.cmd_str(&["HELLO", "3"]);
        let mut out = vec![show(&c.cmd_str(&["PSUBSCRIBE", "__keyevent*"]))];
        out.push(show(&c.cmd_str(&["SET", "k", "v"])));
        out.push(show(&c.cmd_str(&["RPUSH", "l", "a", "b"])));
        out.push(show(&c.cmd_str(&["LPOP", "l", "2"])));
        while let Some(r) = c.try_reply(Duration::from_millis(200)) {
            out.push(show(&r));
        }
        out
    };
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    assert_same(&run(&redis), &run(&ours), "own events");
}

#[test]
fn multi_exec_and_scripts_notify_per_command() {
    check(
        "KEA",
        &[
            &["MULTI"],
            &["SET", "a", "1"],
            &["INCR", "a"],
            &["DEL", "a"],
            &["EXEC"],
            &[
                "EVAL",
                "redis.call('SET', KEYS[1], 'x'); redis.call('RPUSH', KEYS[2], 'y'); return 1",
                "2",
                "k",
                "l",
            ],
            &["EVAL", "return redis.call('LPOP', KEYS[1])", "1", "l"],
        ],
    );
}

/// Commands whose replies and events do not depend on randomness or the
/// clock, over keys `a`, `b`, `c` of every type (so WRONGTYPE paths and
/// deletions by emptying are in play). `K`/`L` are keys, `V` a value.
const TEMPLATES: &[&[&str]] = &[
    &["SET", "K", "V"],
    &["SET", "K", "V", "EX", "100"],
    &["SET", "K", "V", "NX", "GET"],
    &["GETSET", "K", "V"],
    &["APPEND", "K", "V"],
    &["INCR", "K"],
    &["INCRBYFLOAT", "K", "1.5"],
    &["SETRANGE", "K", "1", "V"],
    &["GETDEL", "K"],
    &["GETEX", "K", "PERSIST"],
    &["MSET", "K", "V", "L", "V"],
    &["DEL", "K", "L"],
    &["EXPIRE", "K", "100"],
    &["EXPIRE", "K", "-1"],
    &["PERSIST", "K"],
    &["RENAME", "K", "L"],
    &["RENAMENX", "K", "L"],
    &["COPY", "K", "L", "REPLACE"],
    &["MOVE", "K", "1"],
    &["LPUSH", "K", "V"],
    &["RPUSH", "K", "V", "V"],
    &["RPOP", "K"],
    &["LPOP", "K", "2"],
    &["LMOVE", "K", "L", "LEFT", "RIGHT"],
    &["LREM", "K", "0", "V"],
    &["LTRIM", "K", "1", "-1"],
    &["LINSERT", "K", "BEFORE", "V", "V"],
    &["HSET", "K", "f", "V"],
    &["HDEL", "K", "f"],
    &["HINCRBY", "K", "g", "1"],
    &["SADD", "K", "V"],
    &["SREM", "K", "V"],
    &["SMOVE", "K", "L", "V"],
    &["SINTERSTORE", "K", "L", "K"],
    &["SUNIONSTORE", "K", "L", "K"],
    &["SDIFFSTORE", "K", "L", "K"],
    &["ZADD", "K", "1", "V"],
    &["ZINCRBY", "K", "1", "V"],
    &["ZREM", "K", "V"],
    &["ZPOPMIN", "K"],
    &["ZREMRANGEBYSCORE", "K", "0", "1"],
    &["ZUNIONSTORE", "K", "2", "L", "K"],
    &["ZINTERSTORE", "K", "2", "L", "K"],
    &["SETBIT", "K", "3", "1"],
    &["PFADD", "K", "V"],
    &["GET", "K"],
    &["LRANGE", "K", "0", "-1"],
    &["SETEX", "K", "100", "V"],
    &["SET", "K", "V", "KEEPTTL", "XX"],
    &["GETEX", "K", "EX", "100"],
    &["GETEX", "K", "PXAT", "1"],
    &["MSETNX", "K", "V", "L", "V"],
    &["DECRBY", "K", "2"],
    &["PEXPIRE", "K", "100000", "NX"],
    &["EXPIREAT", "K", "1"],
    &["COPY", "K", "L"],
    &["COPY", "K", "L", "DB", "1", "REPLACE"],
    &["LSET", "K", "0", "V"],
    &["LPUSHX", "K", "V"],
    &["RPOPLPUSH", "K", "L"],
    &["LMPOP", "2", "K", "L", "RIGHT", "COUNT", "2"],
    &["BLPOP", "K", "L", "0.01"],
    &["BLMOVE", "K", "L", "RIGHT", "LEFT", "0.01"],
    &["HSETNX", "K", "f", "V"],
    &["HINCRBYFLOAT", "K", "g", "0.5"],
    &["HMSET", "K", "f", "V", "g", "1"],
    &["HGET", "K", "f"],
    &["SADD", "K", "V", "y", "z"],
    &["SPOP", "K", "10"],
    &["SMEMBERS", "K"],
    &["SISMEMBER", "K", "V"],
    &["ZADD", "K", "INCR", "2", "V"],
    &["ZADD", "K", "GT", "CH", "5", "V", "1", "w"],
    &["ZPOPMAX", "K", "2"],
    &["ZMPOP", "2", "K", "L", "MIN"],
    &["BZPOPMIN", "K", "L", "0.01"],
    &["ZRANGESTORE", "L", "K", "0", "-1"],
    &["ZDIFFSTORE", "K", "2", "L", "K"],
    &["ZREMRANGEBYRANK", "K", "0", "0"],
    &["ZREMRANGEBYLEX", "K", "-", "+"],
    &["ZSCORE", "K", "V"],
    &["GEOADD", "K", "13.361389", "38.115556", "V"],
    &[
        "GEOSEARCHSTORE",
        "L",
        "K",
        "FROMLONLAT",
        "13",
        "38",
        "BYRADIUS",
        "200",
        "km",
    ],
    &["BITOP", "OR", "K", "L", "K"],
    &["BITFIELD", "K", "INCRBY", "u4", "0", "1"],
    &["GETBIT", "K", "3"],
    &["PFMERGE", "K", "L"],
    &["PFCOUNT", "K"],
    &["TYPE", "K"],
    &["EXISTS", "K", "L"],
    &["TTL", "K"],
    &["STRLEN", "K"],
    &["HLEN", "K"],
    &["LLEN", "K"],
    &["SCARD", "K"],
    &["ZCARD", "K"],
    &["TOUCH", "K"],
    &["UNLINK", "K"],
];

/// A random sequence of commands from [`TEMPLATES`], compared event for
/// event with `notify-keyspace-events KEA` (and `KEAnm` for half of them).
#[test]
fn random_sequences_give_the_same_event_stream() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let keys = ["a", "b", "c"];
    let values = ["x", "1"];
    let step = (
        0..TEMPLATES.len(),
        0..keys.len(),
        0..keys.len(),
        0..values.len(),
    );
    let cases: u32 = std::env::var("NOTIFY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (proptest::collection::vec(step, 1..25), any::<bool>());
    // Events seen, so the test cannot pass by comparing silences.
    let seen = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&strategy, |(steps, extra_classes)| {
            let script: Vec<Vec<&str>> = steps
                .iter()
                .map(|&(t, k, l, v)| {
                    TEMPLATES[t]
                        .iter()
                        .map(|a| match *a {
                            "K" => keys[k],
                            "L" => keys[l],
                            "V" => values[v],
                            other => other,
                        })
                        .collect()
                })
                .collect();
            let script: Vec<&[&str]> = script.iter().map(|c| c.as_slice()).collect();
            let flags = if extra_classes { "KEAnm" } else { "KEA" };
            let a = transcript(&redis, flags, false, &script);
            let b = transcript(&ours, flags, false, &script);
            for s in [&redis, &ours] {
                s.connect().cmd_str(&["FLUSHALL"]);
            }
            let events = a.iter().filter(|l| l.contains("pmessage")).count();
            seen.fetch_add(events, std::sync::atomic::Ordering::Relaxed);
            match first_difference(&a, &b) {
                None => Ok(()),
                Some(d) => Err(TestCaseError::fail(format!(
                    "flags {flags} script {script:?}\n{d}"
                ))),
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = seen.into_inner();
    assert!(seen > cases as usize, "only {seen} events in {cases} cases");
}

/// Blocked pops served by another client's push: the pusher's events, then
/// the served pop's (and `del` when it empties the key).
#[test]
fn blocked_clients_served_later() {
    let run = |s: &Server| -> Vec<String> {
        let mut w = s.connect();
        let mut b1 = s.connect();
        let mut b2 = s.connect();
        let mut sub = s.connect();
        w.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", "KEAn"]);
        sub.send(&[b"PSUBSCRIBE", b"__key*__:*"]);
        sub.send(&[b"SUBSCRIBE", b"end-of-test"]);
        let mut out = vec![
            show(&sub.read_reply().expect("subscribed")),
            show(&sub.read_reply().expect("subscribed")),
        ];
        let b1_id = b1.id();
        b1.send(&[b"BLMOVE", b"src", b"dst", b"LEFT", b"RIGHT", b"0"]);
        s.wait_blocked(&b1_id);
        let b2_id = b2.id();
        b2.send(&[b"BZPOPMIN", b"z", b"0"]);
        s.wait_blocked(&b2_id);
        out.push(show(&w.cmd_str(&["RPUSH", "src", "a"])));
        out.push(show(&b1.read_reply().expect("served")));
        out.push(show(&w.cmd_str(&["ZADD", "z", "1", "m", "2", "n"])));
        out.push(show(&b2.read_reply().expect("served")));
        w.cmd_str(&["PUBLISH", "end-of-test", "."]);
        loop {
            let m = show(&sub.read_reply().expect("a message"));
            let end = m.contains("end-of-test");
            out.push(m);
            if end {
                break;
            }
        }
        out
    };
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    assert_same(&run(&redis), &run(&ours), "blocked");
}

/// A RESP3 client subscribed to its own events whose push serves a blocked
/// client also hears the served pop's events.
#[test]
fn own_events_include_the_blocked_client_it_served() {
    let run = |s: &Server| -> Vec<String> {
        let mut w = s.connect();
        let mut b = s.connect();
        w.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
        w.cmd_str(&["HELLO", "3"]);
        let mut out = vec![show(&w.cmd_str(&["PSUBSCRIBE", "__keyevent*"]))];
        let b_id = b.id();
        b.send(&[b"BLPOP", b"src", b"0"]);
        s.wait_blocked(&b_id);
        out.push(show(&w.cmd_str(&["RPUSH", "src", "a"])));
        out.push(show(&b.read_reply().expect("served")));
        out.push(show(&w.cmd_str(&["SET", "k", "v"])));
        while let Some(r) = w.try_reply(std::time::Duration::from_millis(200)) {
            out.push(show(&r));
        }
        out
    };
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    assert_same(&run(&redis), &run(&ours), "served");
}

/// A script's events reach its RESP3 caller, subscribed to them, before the
/// script's reply.
#[test]
fn a_scripts_events_precede_its_reply_to_a_subscribed_caller() {
    let run = |s: &Server| -> Vec<String> {
        let mut c = s.connect();
        c.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
        c.cmd_str(&["HELLO", "3"]);
        let mut out = vec![show(&c.cmd_str(&["PSUBSCRIBE", "__keyevent*"]))];
        c.send(&[
            b"EVAL",
            b"redis.call('SET', 'k', 'v'); redis.call('DEL', 'k'); return 7",
            b"0",
        ]);
        for _ in 0..3 {
            out.push(show(&c.read_reply().expect("a reply")));
        }
        out
    };
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    assert_same(&run(&redis), &run(&ours), "script");
}

#[test]
fn stream_commands() {
    check(
        "KEAn",
        &[
            &["XADD", "s", "1-1", "f", "v"],
            &["XADD", "s", "2-1", "f", "v"],
            &["XADD", "s", "MAXLEN", "1", "3-1", "f", "v"],
            &["XADD", "nos", "NOMKSTREAM", "1-1", "f", "v"],
            &["XTRIM", "s", "MAXLEN", "0"],
            &["XTRIM", "s", "MAXLEN", "0"],
            &["XADD", "s", "4-1", "f", "v"],
            &["XDEL", "s", "4-1", "9-9"],
            &["XDEL", "s", "9-9"],
            &["XSETID", "s", "10-1"],
            &["XGROUP", "CREATE", "s", "g", "$"],
            &["XGROUP", "CREATE", "s2", "g", "$", "MKSTREAM"],
            &["XGROUP", "SETID", "s", "g", "0"],
            &["XGROUP", "CREATECONSUMER", "s", "g", "c1"],
            &["XGROUP", "CREATECONSUMER", "s", "g", "c1"],
            &["XADD", "s", "11-1", "f", "v"],
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c2",
                "COUNT",
                "1",
                "STREAMS",
                "s",
                ">",
            ],
            &["XCLAIM", "s", "g", "c3", "0", "11-1"],
            &["XAUTOCLAIM", "s", "g", "c4", "0", "0"],
            &["XACK", "s", "g", "11-1"],
            &["XGROUP", "DELCONSUMER", "s", "g", "c1"],
            &["XGROUP", "DESTROY", "s", "g"],
            &["XGROUP", "DESTROY", "s", "g"],
            &["DEL", "s", "s2"],
        ],
    );
}

#[test]
fn a_key_written_after_it_expired_is_new_again() {
    check(
        "KEAn",
        &[
            &["SET", "a", "1", "PX", "1"],
            &["RPUSH", "l", "x"],
            &["PEXPIRE", "l", "1"],
            &["SLEEP", "20"],
            &["SET", "a", "2"],
            &["RPUSH", "l", "y"],
        ],
    );
}
