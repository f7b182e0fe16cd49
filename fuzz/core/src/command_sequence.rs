//! `command_sequence`: arbitrary sequences of commands on a node, read from
//! the input with [`arbitrary::Unstructured`].
//!
//! Each step is one of: a command from the command table (any command or
//! `container|subcommand`, with an argument count around its arity and
//! arguments biased to a small key space, option tokens and edge values),
//! raw bytes (inline commands, broken frames), a clock jump with a tick,
//! or a client disconnecting. Commands go out on one of three client
//! connections, so a blocked or subscribed client does not stall the rest.
//!
//! Checks, after every step:
//! - never a panic, and every byte the node sends parses as RESP with no
//!   partial reply left behind;
//! - the keyspace invariants ([`check_keyspace`]): a full SCAN finds exactly
//!   DBSIZE keys, each exists, and the keys with a TTL are INFO's
//!   `expires`.
//!
//! What is kept out, and why:
//! - Lua bodies come from a list (including endless and long loops, which
//!   the harness's operator stops with SCRIPT KILL or SHUTDOWN NOSAVE) or
//!   are arbitrary bytes, which rarely compile; a grammar would reach
//!   further;
//! - counts and offsets of commands whose work Redis scales with the
//!   number itself (SETRANGE/SETBIT/BITFIELD offsets, negative
//!   SRANDMEMBER/HRANDFIELD/ZRANDMEMBER counts) are clamped to 1000: Redis
//!   would allocate gigabytes or loop for hours too;
//! - `CONFIG SET requirepass` becomes `CONFIG SET hz`, so the checker's
//!   connection stays usable;
//! - PFSELFTEST becomes PFCOUNT: it is a deliberately long self test.

use crate::harness::{check_keyspace, Harness};
use arbitrary::{Result, Unstructured};
use cinnabar_engine::command::Table;
use cinnabar_engine::resp::parse_i64;
use cinnabar_engine::Config;
use std::collections::BTreeMap;
use std::sync::OnceLock;

const STEPS_MAX: usize = 48;

const KEYS: &[&str] = &["k0", "k1", "k2", "{t}k3", "k4", ""];

const TOKENS: &[&str] = &[
    "NX",
    "XX",
    "GT",
    "LT",
    "CH",
    "INCR",
    "EX",
    "PX",
    "EXAT",
    "PXAT",
    "KEEPTTL",
    "GET",
    "PERSIST",
    "WITHSCORES",
    "WITHSCORE",
    "LIMIT",
    "BYSCORE",
    "BYLEX",
    "REV",
    "MATCH",
    "COUNT",
    "TYPE",
    "STORE",
    "BY",
    "ASC",
    "DESC",
    "ALPHA",
    "LEFT",
    "RIGHT",
    "BEFORE",
    "AFTER",
    "RANK",
    "MAXLEN",
    "IDLETIME",
    "FREQ",
    "ABSTTL",
    "REPLACE",
    "COPY",
    "KEYS",
    "DB",
    "AGGREGATE",
    "SUM",
    "MIN",
    "MAX",
    "WEIGHTS",
    "WITHVALUES",
    "LEN",
    "IDX",
    "MINMATCHLEN",
    "WITHMATCHLEN",
    "ENCODING",
    "REFCOUNT",
    "USAGE",
    "SAMPLES",
    "string",
    "list",
    "hash",
    "set",
    "zset",
    "ASYNC",
    "SYNC",
    "OVERFLOW",
    "WRAP",
    "SAT",
    "FAIL",
    "i8",
    "u8",
    "i64",
    "u63",
    "#1",
    "m",
    "km",
    "WITHCOORD",
    "WITHDIST",
    "WITHHASH",
    "FROMMEMBER",
    "FROMLONLAT",
    "BYRADIUS",
    "BYBOX",
    "ANY",
    "ID",
    "KILL",
    "LIST",
    "SETNAME",
    "SKIPME",
    "ON",
    "OFF",
    "YES",
    "NO",
    "*",
    "?",
    "[a-z]*",
    "k*",
    "hz",
    "maxmemory",
    "maxmemory-policy",
    "list-max-listpack-size",
    "list-compress-depth",
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    "set-max-intset-entries",
    "zset-max-listpack-entries",
    "zset-max-listpack-value",
    "appendonly",
    "appendfsync",
    "always",
    "everysec",
    "save",
    "allkeys-lru",
    "allkeys-random",
    "volatile-ttl",
    "active-expire-effort",
    "lfu-log-factor",
    "SET",
    "GET",
    "LPUSH",
    "INCR",
    "FLUSHALL",
    "SAVE",
    "RELOAD",
    "SLEEP",
    "SET-ACTIVE-EXPIRE",
    "PING",
    "EXEC",
    "MULTI",
];

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "-2",
    "3",
    "5",
    "10",
    "100",
    "1000",
    "-100",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "4294967296",
    "2147483647",
    "-2147483648",
    "0.5",
    "-0.5",
    "1.5",
    "1e308",
    "-1e308",
    "inf",
    "-inf",
    "+inf",
    "nan",
    "1e-320",
    "3.0",
    "0x10",
    "01",
    "-0",
    "(1",
    "(-1",
    "[a",
    "(a",
    "-",
    "+",
    "1.7976931348623157e308",
    "18446744073709551615",
    "0.001",
    "17179869184",
];

/// The script bodies EVAL and friends may run: they terminate.
const SCRIPTS: &[&str] = &[
    "return redis.call('get', KEYS[1])",
    "return redis.call('incr', KEYS[1])",
    "redis.call('set', KEYS[1], ARGV[1]); return redis.call('pexpire', KEYS[1], 10)",
    "return redis.pcall('lpush', KEYS[1], ARGV[1])",
    "return {1, 'a', {2}, redis.status_reply('x'), redis.error_reply('e')}",
    "return redis.call('del', KEYS[1])",
    "return redis.call('zadd', KEYS[1], 1, 'm')",
    "return 3.99",
    "error('boom')",
    // Long and endless scripts: suspended between slices, -BUSY to others,
    // killed (or, once they wrote, ended by SHUTDOWN NOSAVE).
    "while true do end",
    "redis.call('incr', KEYS[1] or 'k0') while true do end",
    "local n = 0 while true do pcall(function() while true do n = n + 1 end end) end",
    "local n = 0 for i = 1, 3000000 do n = n + 1 end return n",
    "local co = coroutine.wrap(function() while true do end end) return co()",
];

const LIBRARY: &str = "#!lua name=fz\nredis.register_function('f', function(keys, args) return redis.call('incr', keys[1]) end)\nredis.register_function{function_name='g', callback=function(keys, args) return 1 end, flags={'no-writes'}}";

/// Commands (argv prefix) with their arity as Redis states it.
fn commands() -> &'static Vec<(Vec<String>, i32)> {
    static ALL: OnceLock<Vec<(Vec<String>, i32)>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut out = Vec::new();
        for c in &Table::get().commands {
            if c.is_container() {
                for s in &c.subcommands {
                    let (container, sub) = s.name.split_once('|').expect("container|sub");
                    out.push((vec![container.to_string(), sub.to_string()], s.arity));
                }
            } else {
                out.push((vec![c.name.clone()], c.arity));
            }
        }
        out
    })
}

fn arg(u: &mut Unstructured) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0u8..=15)? {
        0..=5 => u.choose(KEYS)?.as_bytes().to_vec(),
        6..=8 => u.choose(TOKENS)?.as_bytes().to_vec(),
        9..=10 => u.choose(NUMBERS)?.as_bytes().to_vec(),
        11..=12 => u.int_in_range(-20i64..=20)?.to_string().into_bytes(),
        13 => {
            let n = *u.choose(&[44usize, 45, 64, 65, 300])?;
            vec![b'x'; n]
        }
        _ => {
            let n = u.int_in_range(0..=12)?;
            u.bytes(n)?.to_vec()
        }
    })
}

/// Clamps numbers that make Redis itself do unbounded work (see the module
/// comment).
fn tame(argv: &mut [Vec<u8>]) {
    let name = argv[0].to_ascii_lowercase();
    let heavy = matches!(
        &name[..],
        b"setrange"
            | b"setbit"
            | b"bitfield"
            | b"bitfield_ro"
            | b"srandmember"
            | b"hrandfield"
            | b"zrandmember"
    );
    for a in argv.iter_mut().skip(1) {
        if heavy {
            if let Some(n) = parse_i64(a) {
                if n.unsigned_abs() > 1000 && n.unsigned_abs() < 1 << 40 {
                    *a = if n < 0 {
                        b"-1000".to_vec()
                    } else {
                        b"1000".to_vec()
                    };
                }
            }
        }
    }
    if name == b"config" && argv.len() > 2 {
        for a in argv.iter_mut().skip(2) {
            if a.eq_ignore_ascii_case(b"requirepass") || a.eq_ignore_ascii_case(b"masterauth") {
                *a = b"hz".to_vec();
            }
        }
    }
}

fn command(u: &mut Unstructured) -> Result<Vec<Vec<u8>>> {
    let all = commands();
    let (prefix, arity) = &all[u.choose_index(all.len())?];
    let mut argv: Vec<Vec<u8>> = prefix
        .iter()
        .map(|p| {
            if p.len() % 2 == 0 {
                p.to_ascii_uppercase().into_bytes()
            } else {
                p.clone().into_bytes()
            }
        })
        .collect();
    let name = prefix.join("|");
    match &name[..] {
        "eval" | "eval_ro" | "evalsha" | "evalsha_ro" => {
            let script: Vec<u8> = if u.ratio(1, 8)? {
                let n = u.int_in_range(0..=60)?;
                u.bytes(n)?.to_vec()
            } else {
                u.choose(SCRIPTS)?.as_bytes().to_vec()
            };
            argv.push(if name.starts_with("evalsha") {
                sha1_hex_bytes(&script).into_bytes()
            } else {
                script
            });
            let numkeys = u.int_in_range(0..=2)?;
            argv.push(numkeys.to_string().into_bytes());
            for _ in 0..numkeys {
                argv.push(u.choose(KEYS)?.as_bytes().to_vec());
            }
            argv.push(arg(u)?);
            return Ok(argv);
        }
        "script|load" => {
            argv.push(u.choose(SCRIPTS)?.as_bytes().to_vec());
            return Ok(argv);
        }
        "function|load" => {
            if u.arbitrary()? {
                argv.push(b"REPLACE".to_vec());
            }
            argv.push(LIBRARY.as_bytes().to_vec());
            return Ok(argv);
        }
        "function|restore" => {
            argv.push(arg(u)?);
            return Ok(argv);
        }
        "pfselftest" => {
            // Redis's HyperLogLog self test: ~150 ms of work by design
            // (hundreds of thousands of PFADDs), too slow to repeat.
            return Ok(vec![b"PFCOUNT".to_vec(), b"k0".to_vec()]);
        }
        "fcall" | "fcall_ro" => {
            argv.push(u.choose(&["f", "g", "nope"])?.as_bytes().to_vec());
            argv.push(b"1".to_vec());
            argv.push(u.choose(KEYS)?.as_bytes().to_vec());
            return Ok(argv);
        }
        _ => {}
    }
    let min = arity.unsigned_abs() as usize;
    let mut argc = if *arity >= 0 {
        min
    } else {
        min + u.int_in_range(0..=5)?
    };
    if u.ratio(1u8, 16)? {
        // Arity errors.
        argc = if u.arbitrary()? {
            argc + 1
        } else {
            argc.saturating_sub(1)
        };
    }
    while argv.len() < argc.max(1) {
        argv.push(arg(u)?);
    }
    argv.truncate(argc.max(1));
    Ok(argv)
}

fn sha1_hex_bytes(s: &[u8]) -> String {
    sha1_smol::Sha1::from(s).digest().to_string()
}

/// `CINNABAR_FUZZ_TRACE=1` prints each command as it is sent.
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("CINNABAR_FUZZ_TRACE").is_some())
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let config = Config {
        enable_debug_command: "yes".into(),
        // Small thresholds make encoding conversions common.
        hash_max_listpack_entries: 4,
        set_max_intset_entries: 4,
        zset_max_listpack_entries: 4,
        list_max_listpack_size: 2,
        // Long scripts: other clients get -BUSY (and the harness's operator
        // is heard) after a few slices.
        busy_reply_threshold: 5,
        ..Config::default()
    };
    let mut h = Harness::start(config, 1, BTreeMap::new());
    let mut clients = [h.connect(), h.connect(), h.connect()];
    let mut checker = h.connect();
    for _ in 0..STEPS_MAX {
        if u.is_empty() || h.fatal.is_some() || h.shutdown {
            break;
        }
        let Ok(kind) = u.int_in_range(0u8..=19) else {
            break;
        };
        let Ok(which) = u.choose_index(clients.len()) else {
            break;
        };
        if !h.is_open(clients[which]) {
            clients[which] = h.connect();
        }
        let conn = clients[which];
        match kind {
            0 => {
                let Ok(n) = u.int_in_range(0..=40) else { break };
                let Ok(raw) = u.bytes(n) else { break };
                h.send_raw(conn, raw);
            }
            1 => {
                let Ok(ms) = u.choose(&[1u64, 10, 100, 1_000, 10_000, 1_000_000]) else {
                    break;
                };
                h.advance_us(ms * 1000);
            }
            2 => {
                // The client goes away: unblocks, unwatches, unsubscribes.
                h.disconnect(conn);
                clients[which] = h.connect();
            }
            _ => {
                let Ok(mut argv) = command(&mut u) else { break };
                tame(&mut argv);
                if trace() {
                    let words: Vec<String> = argv
                        .iter()
                        .map(|a| format!("{:?}", String::from_utf8_lossy(a)))
                        .collect();
                    eprintln!("c{which}: {}", words.join(" "));
                }
                let wire = cinnabar_sim::resp::encode_request(&argv);
                h.send_raw(conn, &wire);
            }
        }
        let _ = h.take_replies(conn);
        assert!(
            h.fatal.is_none() || h.fatal.as_deref().is_some_and(|m| !m.is_empty()),
            "empty fatal message"
        );
        if h.fatal.is_some() || h.shutdown {
            break;
        }
        if !h.is_open(checker) {
            checker = h.connect();
        }
        check_keyspace(&mut h, checker);
    }
}
