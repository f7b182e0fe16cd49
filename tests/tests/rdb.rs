//! RDB interchange with genuine Redis 7.0:
//!
//! - DUMP payloads of the same datasets, built by the same commands, are
//!   byte-identical (hash-table encodings: same length and contents, since
//!   Redis orders them by a per-process hash seed);
//! - payloads DUMPed by one server RESTORE in the other;
//! - RESTORE's options and errors reply as Redis replies;
//! - RDB files saved by Redis load through `cinnabar_engine::rdb::load`, and
//!   files written by `RdbWriter` load in a fresh Redis with the same
//!   contents and encodings;
//! - hand-made files in pre-7.0 encodings load the same in Redis and in our
//!   loader.

use cinnabar_engine::commands::sets::Member;
use cinnabar_engine::db::Value;
use cinnabar_engine::rdb::{self, AuxValue, LoadOptions, Loaded, RdbWriter};
use cinnabar_engine::Config;
use cinnabar_tests::{redis_available, show, Conn, Reply, Server};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn skip() -> bool {
    if !redis_available() {
        eprintln!("redis-server not installed: skipping");
        return true;
    }
    false
}

fn cmd(c: &mut Conn, args: &[&[u8]]) -> Vec<u8> {
    c.cmd(args)
}

fn cmds(c: &mut Conn, args: &[&str]) -> Vec<u8> {
    c.cmd_str(args)
}

/// The payload of a bulk reply (panics on anything else).
fn bulk(reply: &[u8]) -> Vec<u8> {
    match Reply::parse(reply) {
        Some(Reply::Blob(b'$', b)) => b,
        _ => panic!("expected a bulk reply, got {}", show(reply)),
    }
}

fn text(reply: &[u8]) -> String {
    match Reply::parse(reply) {
        Some(Reply::Blob(_, b)) => String::from_utf8_lossy(&b).into_owned(),
        Some(Reply::Line(_, l)) => String::from_utf8_lossy(&l).into_owned(),
        _ => show(reply),
    }
}

/// A fresh directory under the system temp dir.
fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let d = std::env::temp_dir().join(format!("cinnabar-rdb-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// A key's observable state, from either side: type, encoding, contents
/// (sorted where the order is unspecified), whether it has a TTL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct KeyState {
    kind: String,
    encoding: String,
    contents: Vec<String>,
    expire_ms: Option<i64>,
}

fn show_bytes(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn score_text(s: f64) -> String {
    format!("{s:?}")
}

/// Reads a key through commands.
fn key_state(c: &mut Conn, key: &[u8]) -> KeyState {
    let kind = text(&cmd(c, &[b"TYPE", key]));
    let encoding = text(&cmd(c, &[b"OBJECT", b"ENCODING", key]));
    let items = |r: Vec<u8>| -> Vec<String> {
        Reply::parse(&r)
            .expect("reply")
            .items()
            .iter()
            .map(|i| match i {
                Reply::Blob(_, b) => show_bytes(b),
                other => format!("{other:?}"),
            })
            .collect()
    };
    let mut contents = match kind.as_str() {
        "string" => vec![show_bytes(&bulk(&cmd(c, &[b"GET", key])))],
        "list" => items(cmd(c, &[b"LRANGE", key, b"0", b"-1"])),
        "hash" => {
            let flat = items(cmd(c, &[b"HGETALL", key]));
            flat.chunks(2)
                .map(|p| format!("{}={}", p[0], p[1]))
                .collect()
        }
        "set" => items(cmd(c, &[b"SMEMBERS", key])),
        "zset" => {
            let flat = items(cmd(c, &[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"]));
            flat.chunks(2)
                .map(|p| {
                    let s: f64 = p[1].parse().expect("score");
                    format!("{}@{}", p[0], score_text(s))
                })
                .collect()
        }
        other => panic!("unexpected type {other}"),
    };
    if kind == "hash" || kind == "set" {
        contents.sort();
    }
    let pexp = text(&cmd(c, &[b"PEXPIRETIME", key]));
    let expire_ms = pexp.parse::<i64>().ok().filter(|&t| t >= 0);
    KeyState {
        kind,
        encoding,
        contents,
        expire_ms,
    }
}

/// The same description of a loaded value.
fn value_state(v: &Value, expire_ms: Option<i64>) -> KeyState {
    use cinnabar_engine::stream::StreamId;
    let s = |b: &[u8]| show_bytes(b);
    let mut contents: Vec<String> = match v {
        Value::Str(x) => vec![s(&x.to_vec())],
        Value::List(l) => l.iter().map(s).collect(),
        Value::Hash(h) => h
            .iter()
            .map(|(f, v)| format!("{}={}", s(f), s(v)))
            .collect(),
        Value::Set(st) => st
            .iter()
            .map(|m| match m {
                Member::Int(i) => i.to_string(),
                Member::Bytes(b) => s(b),
            })
            .collect(),
        Value::ZSet(z) => z
            .iter()
            .map(|(sc, m)| format!("{}@{}", s(m), score_text(sc)))
            .collect(),
        // Streams are compared in tests/tests/streams.rs, with their groups.
        Value::Stream(st) => st
            .range(StreamId::MIN, StreamId::MAX, 0, false)
            .iter()
            .map(|e| format!("{}-{} {:?}", e.id.ms, e.id.seq, e.fields))
            .collect(),
    };
    if matches!(v, Value::Hash(_) | Value::Set(_)) {
        contents.sort();
    }
    KeyState {
        kind: v.type_name().into(),
        encoding: v.encoding_name().into(),
        contents,
        expire_ms,
    }
}

/// Every key of databases 0..16, through commands.
fn snapshot(c: &mut Conn) -> BTreeMap<(usize, Vec<u8>), KeyState> {
    let mut out = BTreeMap::new();
    for db in 0..16usize {
        cmds(c, &["SELECT", &db.to_string()]);
        let keys = Reply::parse(&cmds(c, &["KEYS", "*"])).expect("keys");
        for k in keys.items() {
            if let Reply::Blob(_, k) = k {
                out.insert((db, k.clone()), key_state(c, k));
            }
        }
    }
    cmds(c, &["SELECT", "0"]);
    out
}

/// One command per line, arguments separated by spaces; `{N*S}` expands to
/// S repeated N times, `{seq:A:B:P}` to arguments P<A>..P<B-1>,
/// `{zpairs:N}` to N score/member pairs.
fn expand(line: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for word in line.split(' ') {
        if let Some(n) = word
            .strip_prefix("{zpairs:")
            .and_then(|w| w.strip_suffix('}'))
        {
            for i in 0..n.parse::<usize>().unwrap() {
                out.push(format!("{}.25", i % 37).into_bytes());
                out.push(format!("m{i}").into_bytes());
            }
        } else if let Some(spec) = word.strip_prefix("{seq:").and_then(|w| w.strip_suffix('}')) {
            let p: Vec<&str> = spec.split(':').collect();
            let (a, b): (usize, usize) = (p[0].parse().unwrap(), p[1].parse().unwrap());
            for i in a..b {
                out.push(format!("{}{}", p[2], i).into_bytes());
            }
        } else if let Some(spec) = word.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
            let (n, s) = spec.split_once('*').expect("{N*S}");
            out.push(s.repeat(n.parse().unwrap()).into_bytes());
        } else {
            out.push(word.as_bytes().to_vec());
        }
    }
    out
}

fn run(c: &mut Conn, line: &str) -> Vec<u8> {
    let args = expand(line);
    let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
    c.cmd(&refs)
}

/// Datasets: (key, commands that build it, encoding both must report,
/// whether DUMP is byte-identical — false for hash tables).
fn datasets() -> Vec<(&'static str, Vec<&'static str>, &'static str, bool)> {
    vec![
        ("s_int", vec!["SET s_int 12345"], "int", true),
        (
            "s_bigint",
            vec!["SET s_bigint -9223372036854775808"],
            "int",
            true,
        ),
        ("s_emb", vec!["SET s_emb hello"], "embstr", true),
        ("s_raw", vec!["SET s_raw {100*a}"], "raw", true),
        (
            "s_raw2",
            vec!["SET s_raw2 {12*abcdefghijklmnopqrstuvwxyz0123456789}"],
            "raw",
            true,
        ),
        (
            "s_app",
            vec!["SET s_app 12", "APPEND s_app 34"],
            "raw",
            true,
        ),
        (
            "s_nocomp",
            vec!["SET s_nocomp qwertyuiopasdfghjklzxcvbnm1234567890QWERTYUIOPASDFGH"],
            "raw",
            true,
        ),
        (
            "l_small",
            vec!["RPUSH l_small a b 1 100 -5000 {70*x}"],
            "quicklist",
            true,
        ),
        (
            "l_multi",
            vec![
                "RPUSH l_multi {seq:0:1500:element-}",
                "RPUSH l_multi {seq:0:700:}",
            ],
            "quicklist",
            true,
        ),
        (
            "l_big",
            vec!["RPUSH l_big {9000*y} small {20000*z} {seq:0:10:n}"],
            "quicklist",
            true,
        ),
        (
            "h_lp",
            vec!["HSET h_lp f1 v1 f2 123 f3 -1 {40*k} {60*v}"],
            "listpack",
            true,
        ),
        (
            "h_ht",
            vec!["HSET h_ht {seq:0:1200:field}"],
            "hashtable",
            false,
        ),
        ("h_long", vec!["HSET h_long f {65*v}"], "hashtable", false),
        ("i_set", vec!["SADD i_set 1 2 3 -70000"], "intset", true),
        (
            "i_wide",
            vec!["SADD i_wide 5 100000000000 7", "SREM i_wide 100000000000"],
            "intset",
            true,
        ),
        ("t_set", vec!["SADD t_set a b c {30*d}"], "hashtable", false),
        (
            "z_lp",
            vec!["ZADD z_lp 1 a 1.5 b -0 c 1e17 d inf e -inf f 5e18 g 0.1 h"],
            "listpack",
            true,
        ),
        ("z_sl", vec!["ZADD z_sl {zpairs:200}"], "skiplist", true),
        ("z_long", vec!["ZADD z_long 3 {70*m} 2 x"], "skiplist", true),
    ]
}

fn build_all(c: &mut Conn) {
    for (_, lines, _, _) in datasets() {
        for l in lines {
            let r = run(c, l);
            assert!(!r.starts_with(b"-"), "{l}: {}", show(&r));
        }
    }
}

/// Byte equality, reported as the first differing offset.
fn assert_same_bytes(redis: &[u8], ours: &[u8], what: &str) {
    if redis != ours {
        let at = redis
            .iter()
            .zip(ours)
            .position(|(a, b)| a != b)
            .unwrap_or(redis.len().min(ours.len()));
        let window = |b: &[u8]| show(&b[at.saturating_sub(8)..(at + 16).min(b.len())]);
        panic!(
            "DUMP {what}: redis {} bytes, cinnabar {} bytes, first difference at {at}: redis {:?} cinnabar {:?}",
            redis.len(),
            ours.len(),
            window(redis),
            window(ours)
        );
    }
}

#[test]
fn dump_is_byte_identical_to_redis() {
    if skip() {
        return;
    }
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let (mut r, mut o) = (redis.connect(), ours.connect());
    build_all(&mut r);
    build_all(&mut o);
    for (key, _, encoding, identical) in datasets() {
        let kb = key.as_bytes();
        for (name, c) in [("redis", &mut r), ("cinnabar", &mut o)] {
            let e = text(&cmd(c, &[b"OBJECT", b"ENCODING", kb]));
            assert_eq!(e, encoding, "{name}: encoding of {key}");
        }
        let dr = bulk(&cmd(&mut r, &[b"DUMP", kb]));
        let dc = bulk(&cmd(&mut o, &[b"DUMP", kb]));
        if identical {
            assert_same_bytes(&dr, &dc, key);
        } else {
            assert_eq!(dr.len(), dc.len(), "DUMP {key} length");
            let c = Config::default();
            let opts = LoadOptions {
                config: &c,
                check_checksum: true,
                sanitize: false,
            };
            let vr = rdb::restore_payload(&dr, &opts).expect("redis payload decodes");
            let vc = rdb::restore_payload(&dc, &opts).expect("our payload decodes");
            assert_eq!(value_state(&vr, None), value_state(&vc, None), "{key}");
        }
    }
    // A missing key is nil in both.
    assert_eq!(
        cmds(&mut r, &["DUMP", "nope"]),
        cmds(&mut o, &["DUMP", "nope"])
    );
}

#[test]
fn dump_with_other_list_layouts_is_byte_identical() {
    if skip() {
        return;
    }
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let (mut r, mut o) = (redis.connect(), ours.connect());
    for (fill, depth) in [("5", "0"), ("-1", "0"), ("-2", "1"), ("-3", "2")] {
        for c in [&mut r, &mut o] {
            cmds(c, &["CONFIG", "SET", "list-max-listpack-size", fill]);
            cmds(c, &["CONFIG", "SET", "list-compress-depth", depth]);
            cmds(c, &["DEL", "l"]);
            run(c, "RPUSH l {seq:0:3000:some-longer-element-text-}");
            run(c, "RPUSH l {300*q} {seq:0:50:}");
        }
        let dr = bulk(&cmds(&mut r, &["DUMP", "l"]));
        let dc = bulk(&cmds(&mut o, &["DUMP", "l"]));
        assert_same_bytes(&dr, &dc, &format!("list with fill {fill} depth {depth}"));
    }
}

/// Payloads cross over: Redis's restore in Cinnabar and ours in Redis. The
/// reference is Redis restoring its own payload (a restored value may take
/// another encoding than the original: "1234" made by APPEND is raw, and
/// int once restored).
#[test]
fn payloads_restore_across_servers() {
    if skip() {
        return;
    }
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let (mut r, mut o) = (redis.connect(), ours.connect());
    build_all(&mut r);
    build_all(&mut o);
    for (key, _, _, _) in datasets() {
        let kb = key.as_bytes();
        let dr = bulk(&cmd(&mut r, &[b"DUMP", kb]));
        let dc = bulk(&cmd(&mut o, &[b"DUMP", kb]));
        for (on_redis, name, p) in [
            (true, &b"rr"[..], &dr),
            (true, b"ro", &dc),
            (false, b"or", &dr),
            (false, b"oo", &dc),
        ] {
            let c = if on_redis { &mut r } else { &mut o };
            assert_eq!(cmd(c, &[b"RESTORE", name, b"0", p]), b"+OK\r\n", "{key}");
        }
        let want = key_state(&mut r, b"rr");
        assert_eq!(
            key_state(&mut r, b"ro"),
            want,
            "{key}: our payload in redis"
        );
        assert_eq!(
            key_state(&mut o, b"or"),
            want,
            "{key}: redis payload in cinnabar"
        );
        assert_eq!(
            key_state(&mut o, b"oo"),
            want,
            "{key}: our payload in cinnabar"
        );
        cmds(&mut r, &["DEL", "rr", "ro"]);
        cmds(&mut o, &["DEL", "or", "oo"]);
    }
}

/// RESTORE's options and errors, command by command against Redis.
#[test]
fn restore_options_and_errors_match_redis() {
    if skip() {
        return;
    }
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let (mut r, mut o) = (redis.connect(), ours.connect());
    for c in [&mut r, &mut o] {
        cmds(c, &["SET", "src", "hello"]);
        cmds(c, &["RPUSH", "lst", "a", "b"]);
    }
    let p = bulk(&cmds(&mut r, &["DUMP", "src"]));
    let pl = bulk(&cmds(&mut r, &["DUMP", "lst"]));
    // A payload whose body is bad but whose footer is right: type byte 8
    // (not a type), then a valid version and CRC.
    let bad_body = {
        let mut b = vec![8u8, 1, 2, 3];
        b.extend_from_slice(&10u16.to_le_bytes());
        let crc = rdb::Crc64::checksum(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    };
    let v11 = {
        let mut b = p[..p.len() - 10].to_vec();
        b.extend_from_slice(&11u16.to_le_bytes());
        let crc = rdb::Crc64::checksum(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    };
    let mut flipped = p.clone();
    flipped[2] ^= 1;
    let far = b"99999999999999".to_vec();
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"RESTORE", b"k1", b"0", &p],
        vec![b"GET", b"k1"],
        vec![b"PTTL", b"k1"],
        vec![b"RESTORE", b"k1", b"0", &p],
        vec![b"RESTORE", b"k1", b"0", &pl, b"REPLACE"],
        vec![b"TYPE", b"k1"],
        vec![b"RESTORE", b"k2", b"-1", &p],
        vec![b"RESTORE", b"k2", b"abc", &p],
        vec![b"RESTORE", b"k2", b"0", b"garbage"],
        vec![b"RESTORE", b"k2", b"0", &flipped],
        vec![b"RESTORE", b"k2", b"0", &v11],
        vec![b"RESTORE", b"k2", b"0", &bad_body],
        vec![b"RESTORE", b"src", b"0", b"garbage"],
        vec![
            b"RESTORE",
            b"k2",
            b"0",
            &p,
            b"IDLETIME",
            b"1",
            b"FREQ",
            b"1",
        ],
        vec![
            b"RESTORE",
            b"k2",
            b"0",
            &p,
            b"FREQ",
            b"1",
            b"IDLETIME",
            b"1",
        ],
        vec![b"RESTORE", b"k2", b"0", &p, b"FREQ", b"256"],
        vec![b"RESTORE", b"k2", b"0", &p, b"FREQ", b"-1"],
        vec![b"RESTORE", b"k2", b"0", &p, b"IDLETIME", b"-1"],
        vec![b"RESTORE", b"k2", b"0", &p, b"IDLETIME", b"x"],
        vec![b"RESTORE", b"k2", b"0", &p, b"IDLETIME"],
        vec![b"RESTORE", b"k2", b"0", &p, b"BOGUS"],
        vec![b"EXISTS", b"k2"],
        vec![b"RESTORE", b"k3", b"0", &p, b"IDLETIME", b"1000"],
        vec![b"OBJECT", b"IDLETIME", b"k3"],
        vec![b"RESTORE", b"k4", b"0", &p, b"IDLETIME", b"33554437"],
        vec![b"OBJECT", b"IDLETIME", b"k4"],
        vec![b"RESTORE", b"k5", b"0", &p, b"FREQ", b"7"],
        vec![b"EXISTS", b"k5"],
        // A TTL already in the past: OK, and no key (deleted if replaced).
        vec![b"RESTORE", b"k6", b"1", &p, b"ABSTTL"],
        vec![b"EXISTS", b"k6"],
        vec![b"RESTORE", b"k1", b"1", &p, b"ABSTTL", b"REPLACE"],
        vec![b"EXISTS", b"k1"],
        vec![b"RESTORE", b"k7", b"4000000000000", &p, b"ABSTTL"],
        vec![b"PEXPIRETIME", b"k7"],
        vec![b"RESTORE", b"k8", &far, &p, b"absttl"],
        vec![b"PEXPIRETIME", b"k8"],
        vec![b"RESTORE", b"k9", b"9223372036854775807", &p],
        vec![b"EXISTS", b"k9"],
        vec![b"RESTORE"],
        vec![b"RESTORE", b"k"],
        vec![b"DUMP"],
        vec![b"DUMP", b"a", b"b"],
    ];
    for c in &cases {
        let a = r.cmd(c);
        let b = o.cmd(c);
        let label: Vec<String> = c.iter().take(3).map(|x| show(x)).collect();
        assert_eq!(
            show(&a),
            show(&b),
            "{label:?} {:?}",
            c.get(4).map(|x| show(x))
        );
    }
    // A relative TTL lands near now + ttl.
    for c in [&mut r, &mut o] {
        assert_eq!(cmd(c, &[b"RESTORE", b"t", b"50000", &p]), b"+OK\r\n");
        let pttl: i64 = text(&cmds(c, &["PTTL", "t"])).parse().expect("pttl");
        assert!((49000..=50000).contains(&pttl), "{pttl}");
    }
}

/// RESTORE of a list wakes a client blocked on its key, as in Redis.
#[test]
fn restore_wakes_blocked_clients() {
    if skip() {
        return;
    }
    let ours = Server::cinnabar(&[]);
    let mut c = ours.connect();
    cmds(&mut c, &["RPUSH", "src", "x", "y"]);
    let p = bulk(&cmds(&mut c, &["DUMP", "src"]));
    let mut blocked = ours.connect();
    let id = text(&cmds(&mut blocked, &["CLIENT", "ID"]));
    blocked.send(&[b"BLPOP", b"dst", b"10"]);
    ours.wait_blocked(&id);
    assert_eq!(cmd(&mut c, &[b"RESTORE", b"dst", b"0", &p]), b"+OK\r\n");
    let reply = blocked.read_reply().expect("BLPOP reply");
    assert_eq!(show(&reply), "*2\\r\\n$3\\r\\ndst\\r\\n$1\\r\\nx\\r\\n");
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

/// What a file holds: aux fields, function libraries, keys.
type FileContents = (
    Vec<(Vec<u8>, Vec<u8>)>,
    Vec<Vec<u8>>,
    Vec<(usize, Vec<u8>, Value, Option<i64>)>,
);

fn load_file(data: &[u8], config: &Config) -> FileContents {
    let (mut aux, mut funcs, mut keys) = (vec![], vec![], vec![]);
    let opts = LoadOptions {
        config,
        check_checksum: true,
        sanitize: false,
    };
    rdb::load(data, &opts, &mut |item| {
        match item {
            Loaded::Aux { key, value } => aux.push((key, value)),
            Loaded::Function { code } => funcs.push(code),
            Loaded::Key {
                db,
                key,
                value,
                expire_ms,
                ..
            } => keys.push((db, key.to_vec(), value, expire_ms)),
        }
        Ok(())
    })
    .unwrap_or_else(|e| panic!("load failed: {e}"));
    (aux, funcs, keys)
}

fn wait_for_file(path: &std::path::Path) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(d) = std::fs::read(path) {
            if !d.is_empty() {
                return d;
            }
        }
        assert!(Instant::now() < deadline, "no file at {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

const LIBRARY: &str =
    "#!lua name=rdblib\nredis.register_function('rdbf', function(keys, args) return 1 end)";

/// Redis saves a dataset of every type and encoding (with and without
/// compression); our loader reads the same keys, values, encodings, TTLs,
/// functions and aux fields. Then our writer writes them back and a fresh
/// Redis loads that file to the same dataset.
#[test]
fn redis_files_load_and_our_files_load_in_redis() {
    if skip() {
        return;
    }
    for compression in ["yes", "no"] {
        let dir = temp_dir(&format!("save-{compression}"));
        let d = dir.display().to_string();
        let redis = Server::redis(&[
            "--dir",
            &d,
            "--dbfilename",
            "dump.rdb",
            "--rdbcompression",
            compression,
        ]);
        let mut r = redis.connect();
        build_all(&mut r);
        cmds(&mut r, &["PEXPIREAT", "s_emb", "4102444800000"]);
        cmds(&mut r, &["PEXPIREAT", "h_ht", "4102444800123"]);
        cmds(&mut r, &["SELECT", "3"]);
        run(&mut r, "HSET other {seq:0:10:x}");
        run(&mut r, "SET 42 {50*w}");
        cmds(&mut r, &["SELECT", "0"]);
        assert_eq!(
            text(&cmds(&mut r, &["FUNCTION", "LOAD", LIBRARY])),
            "rdblib"
        );
        assert_eq!(cmds(&mut r, &["SAVE"]), b"+OK\r\n");
        let file = wait_for_file(&dir.join("dump.rdb"));
        drop(r);
        drop(redis);
        // The reference: Redis loading its own file.
        let reloaded_redis = Server::redis(&["--dir", &d, "--dbfilename", "dump.rdb"]);
        let want = snapshot(&mut reloaded_redis.connect());
        drop(reloaded_redis);

        let config = Config::default();
        let (aux, funcs, keys) = load_file(&file, &config);
        let aux: BTreeMap<_, _> = aux.into_iter().collect();
        assert_eq!(
            aux.get(&b"redis-ver"[..]).map(|v| &v[..]),
            Some(&b"7.0.15"[..])
        );
        assert_eq!(
            aux.get(&b"redis-bits"[..]).map(|v| &v[..]),
            Some(&b"64"[..])
        );
        assert_eq!(funcs, vec![LIBRARY.as_bytes().to_vec()]);
        let got: BTreeMap<_, _> = keys
            .iter()
            .map(|(db, k, v, e)| ((*db, k.clone()), value_state(v, *e)))
            .collect();
        assert_eq!(got.len(), want.len());
        for (k, w) in &want {
            assert_eq!(got.get(k), Some(w), "{compression}: key {:?}", show(&k.1));
        }

        // Our writer, read back by a fresh Redis.
        let dir2 = temp_dir(&format!("write-{compression}"));
        let mut w = RdbWriter::with_config(&config, compression == "yes");
        w.header(&[
            ("redis-ver", AuxValue::Str(b"7.0.15")),
            ("redis-bits", AuxValue::Int(64)),
            ("ctime", AuxValue::Int(1_700_000_000)),
            ("used-mem", AuxValue::Int(1_000_000)),
            ("aof-base", AuxValue::Int(0)),
        ]);
        for f in &funcs {
            w.function_library(f);
        }
        let mut file2 = w.take_chunk();
        for db in [0usize, 3] {
            let in_db: Vec<_> = keys.iter().filter(|k| k.0 == db).collect();
            let expires = in_db.iter().filter(|k| k.3.is_some()).count();
            w.select_db(db as u32, in_db.len() as u64, expires as u64);
            for (_, k, v, e) in in_db {
                w.key(k, v, *e);
                if w.pending_len() > 4096 {
                    file2.extend(w.take_chunk());
                }
            }
        }
        w.finish(true);
        file2.extend(w.take_chunk());
        std::fs::write(dir2.join("dump.rdb"), &file2).expect("write rdb");
        let d2 = dir2.display().to_string();
        let fresh = Server::redis(&["--dir", &d2, "--dbfilename", "dump.rdb"]);
        let mut f = fresh.connect();
        let reloaded = snapshot(&mut f);
        assert_eq!(reloaded, want, "{compression}: Redis loading our file");
        assert_eq!(
            text(&cmds(&mut f, &["FCALL", "rdbf", "0"])),
            "1",
            "function library restored"
        );
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&dir2);
    }
}

// ---------------------------------------------------------------------------
// Pre-7.0 encodings, crafted from the format description
// ---------------------------------------------------------------------------

fn len_enc(out: &mut Vec<u8>, n: usize) {
    if n < 64 {
        out.push(n as u8);
    } else if n < 16384 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn rdb_str(out: &mut Vec<u8>, s: &[u8]) {
    len_enc(out, s.len());
    out.extend_from_slice(s);
}

/// A ziplist (Redis 6's encoding of small lists, hashes and zsets).
fn ziplist(items: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut prev = 0usize;
    let mut last = 10usize;
    for it in items {
        let start = body.len();
        last = 10 + start;
        if prev < 254 {
            body.push(prev as u8);
        } else {
            body.push(0xFE);
            body.extend_from_slice(&(prev as u32).to_le_bytes());
        }
        let int = std::str::from_utf8(it)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|v| v.to_string().as_bytes() == *it);
        match int {
            Some(v) if (0..=12).contains(&v) => body.push(0xF1 + v as u8),
            Some(v) if i8::try_from(v).is_ok() => body.extend_from_slice(&[0xFE, v as i8 as u8]),
            Some(v) if i16::try_from(v).is_ok() => {
                body.push(0xC0);
                body.extend_from_slice(&(v as i16).to_le_bytes());
            }
            Some(v) if i32::try_from(v).is_ok() => {
                body.push(0xD0);
                body.extend_from_slice(&(v as i32).to_le_bytes());
            }
            Some(v) => {
                body.push(0xE0);
                body.extend_from_slice(&v.to_le_bytes());
            }
            None => {
                let l = it.len();
                if l < 64 {
                    body.push(l as u8);
                } else {
                    body.push(0x40 | (l >> 8) as u8);
                    body.push(l as u8);
                }
                body.extend_from_slice(it);
            }
        }
        prev = body.len() - start;
    }
    let mut zl = Vec::new();
    zl.extend_from_slice(&((11 + body.len()) as u32).to_le_bytes());
    zl.extend_from_slice(&(last as u32).to_le_bytes());
    zl.extend_from_slice(&(items.len() as u16).to_le_bytes());
    zl.extend_from_slice(&body);
    zl.push(0xFF);
    zl
}

/// A zipmap (Redis 2.4's small hashes).
fn zipmap(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut zm = vec![pairs.len() as u8];
    for (k, v) in pairs {
        zm.push(k.len() as u8);
        zm.extend_from_slice(k);
        zm.push(v.len() as u8);
        zm.push(1); // one free byte after the value
        zm.extend_from_slice(v);
        zm.push(0);
    }
    zm.push(0xFF);
    zm
}

/// An RDB version 9 file with ziplist, zipmap, quicklist-v1, intset and
/// text-score encodings: Redis 7.0 and our loader read the same dataset.
#[test]
fn crafted_version_9_file_loads_like_redis() {
    if skip() {
        return;
    }
    let mut f = b"REDIS0009".to_vec();
    let key = |f: &mut Vec<u8>, t: u8, k: &str| {
        f.push(t);
        rdb_str(f, k.as_bytes());
    };
    f.push(0xFE); // SELECTDB 0
    f.push(0);
    key(&mut f, 13, "h_zl");
    rdb_str(
        &mut f,
        &ziplist(&[b"f1", b"v1", b"n", b"42", b"neg", b"-100000"]),
    );
    key(&mut f, 12, "z_zl");
    rdb_str(&mut f, &ziplist(&[b"a", b"1", b"b", b"2.5", b"c", b"300"]));
    key(&mut f, 14, "l_ql");
    f.push(2);
    rdb_str(&mut f, &ziplist(&[b"x", b"-7", &[b'q'; 100]]));
    rdb_str(&mut f, &ziplist(&[b"y", b"5000000000"]));
    key(&mut f, 10, "l_zl");
    rdb_str(&mut f, &ziplist(&[b"p", b"q"]));
    key(&mut f, 9, "h_zm");
    rdb_str(&mut f, &zipmap(&[(b"k1", b"v1"), (b"k2", b"12")]));
    // An expiry in seconds (opcode 253), then a plain set.
    f.push(0xFD);
    f.extend_from_slice(&2_000_000_000i32.to_le_bytes());
    key(&mut f, 2, "set_plain");
    f.push(2);
    rdb_str(&mut f, b"m1");
    rdb_str(&mut f, b"m2");
    // Type 3: sorted set with text scores (253 NaN is refused, so 254 +inf).
    key(&mut f, 3, "z_old");
    f.push(2);
    rdb_str(&mut f, b"m1");
    rdb_str(&mut f, b"3.25");
    rdb_str(&mut f, b"m2");
    f.push(254);
    f.push(0xFF);
    let crc = rdb::Crc64::checksum(&f);
    f.extend_from_slice(&crc.to_le_bytes());

    let config = Config::default();
    let (_, _, keys) = load_file(&f, &config);
    let ours: BTreeMap<_, _> = keys
        .iter()
        .map(|(db, k, v, e)| ((*db, k.clone()), value_state(v, *e)))
        .collect();

    let dir = temp_dir("v9");
    std::fs::write(dir.join("dump.rdb"), &f).expect("write");
    let d = dir.display().to_string();
    let redis = Server::redis(&["--dir", &d, "--dbfilename", "dump.rdb"]);
    let mut r = redis.connect();
    let theirs = snapshot(&mut r);
    assert_eq!(theirs.len(), 7, "Redis loaded the crafted file: {theirs:?}");
    assert_eq!(ours, theirs);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stream in a Redis file loads and its DUMP payload restores (the full
/// round trips, groups included, are in tests/tests/streams.rs).
#[test]
fn redis_stream_in_file_loads() {
    if skip() {
        return;
    }
    let dir = temp_dir("stream");
    let d = dir.display().to_string();
    let redis = Server::redis(&["--dir", &d, "--dbfilename", "dump.rdb"]);
    let mut r = redis.connect();
    cmds(&mut r, &["XADD", "st", "*", "f", "v"]);
    cmds(&mut r, &["SAVE"]);
    let file = wait_for_file(&dir.join("dump.rdb"));
    let c = Config::default();
    let opts = LoadOptions {
        config: &c,
        check_checksum: true,
        sanitize: false,
    };
    let (_, _, keys) = load_file(&file, &c);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].2.type_name(), "stream");
    let p = bulk(&cmds(&mut r, &["DUMP", "st"]));
    let v = rdb::restore_payload(&p, &opts).expect("a stream payload restores");
    assert_eq!(v.type_name(), "stream");
    let _ = std::fs::remove_dir_all(&dir);
}

/// LZF edge cases (literal runs of 32, long back-references, matches in
/// the last bytes, the output bound) through DUMP of many strings: the
/// compressed bytes must be Redis's own.
#[test]
fn compressed_strings_are_byte_identical() {
    if skip() {
        return;
    }
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let (mut r, mut o) = (redis.connect(), ours.connect());
    // A small deterministic generator: strings mixing random bytes from a
    // small alphabet, repeats and runs, of lengths around the thresholds.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..400 {
        let len = match i % 4 {
            0 => 21 + (next() % 20) as usize,
            1 => 40 + (next() % 300) as usize,
            2 => 250 + (next() % 40) as usize,
            _ => 1000 + (next() % 9000) as usize,
        };
        let alphabet = 1 + (next() % 40) as u8;
        let mut s = Vec::with_capacity(len);
        while s.len() < len {
            match next() % 4 {
                0 if s.len() > 8 => {
                    // Repeat an earlier stretch.
                    let from = (next() as usize) % s.len();
                    let n = 1 + (next() % 300) as usize;
                    for k in 0..n {
                        let b = s[from + k % (s.len() - from)];
                        s.push(b);
                    }
                }
                1 => {
                    let b = b'a' + (next() % alphabet as u64) as u8;
                    let n = 1 + (next() % 70) as usize;
                    s.extend(std::iter::repeat_n(b, n));
                }
                _ => s.push(b'a' + (next() % alphabet as u64) as u8),
            }
        }
        s.truncate(len);
        let key = format!("s{i}");
        for c in [&mut r, &mut o] {
            assert_eq!(cmd(c, &[b"SET", key.as_bytes(), &s]), b"+OK\r\n");
        }
        let dr = bulk(&cmd(&mut r, &[b"DUMP", key.as_bytes()]));
        let dc = bulk(&cmd(&mut o, &[b"DUMP", key.as_bytes()]));
        assert_same_bytes(&dr, &dc, &format!("string {i} of {len} bytes"));
    }
}
