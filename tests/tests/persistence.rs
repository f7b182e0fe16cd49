//! Persistence over real processes and real files, against genuine Redis 7.0:
//!
//! - RDB files saved by one server load in the other (every type and
//!   encoding, TTLs, several databases, function libraries);
//! - AOF directories (manifest, base, incr files) written by one server load
//!   in the other, before and after BGREWRITEAOF;
//! - `appendfsync always`: over many `kill -9` moments, every write a client
//!   saw acknowledged is there after the restart, and nothing that was never
//!   sent appears;
//! - shutdown saves (SHUTDOWN, SIGTERM), DEBUG RELOAD, and refusing to start
//!   on a corrupt file with a message, never serving a partial dataset.

use cinnabar_tests::{cinnabar_bin, redis_available, show, Conn, Reply, Server};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn skip() -> bool {
    if !redis_available() {
        eprintln!("redis-server not installed: skipping");
        return true;
    }
    false
}

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "cinnabar-persist-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn ok(c: &mut Conn, line: &str) -> Vec<u8> {
    let args = cinnabar_tests::split_line(line);
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    let r = c.cmd(&refs);
    assert!(!r.starts_with(b"-"), "{line}: {}", show(&r));
    r
}

/// Every type and encoding, TTLs, two databases and a function library.
const DATASET: &[&str] = &[
    "SET int 12345",
    "SET emb hello",
    "SET raw \"this string is longer than forty-four bytes, so it is raw\"",
    "SET compressible aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "SET volatile v EX 1000",
    "RPUSH list a b c 1 2 3",
    "HSET smallhash f1 v1 f2 2",
    "SADD intset 1 2 3 -7 100000",
    "SADD strset a b c",
    "ZADD smallz 1 a 2.5 b -3 c",
    "PFADD hll a b c d",
    "EXPIRE list 5000",
    "SELECT 3",
    "SET indb3 yes",
    "SELECT 0",
    "FUNCTION LOAD \"#!lua name=persistlib\nredis.register_function('pf', function() return 7 end)\"",
];

/// Big collections (hashtable and skiplist encodings, multi-node lists).
fn big_values(c: &mut Conn) {
    let mut h = vec!["HSET".to_string(), "bighash".into()];
    let mut s = vec!["SADD".to_string(), "bigset".into()];
    let mut z = vec!["ZADD".to_string(), "bigz".into()];
    let mut l = vec!["RPUSH".to_string(), "biglist".into()];
    for i in 0..600 {
        h.push(format!("field{i}"));
        h.push(format!("value{i}"));
        s.push(format!("member{i}"));
        z.push(format!("{}", i as f64 / 3.0));
        z.push(format!("m{i}"));
        l.push(format!("element-number-{i}-with-some-padding"));
    }
    for cmd in [h, s, z, l] {
        let refs: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
        let r = c.cmd(&refs);
        assert!(!r.starts_with(b"-"), "{}", show(&r));
    }
}

fn reply_text(r: &[u8]) -> String {
    format!("{:?}", Reply::parse(r).map(Reply::sorted))
}

/// A canonical picture of a server's dataset: per (db, key), the type,
/// encoding, absolute expiry time and the contents with unordered
/// collections sorted.
fn picture(c: &mut Conn) -> BTreeMap<(usize, Vec<u8>), String> {
    let mut out = BTreeMap::new();
    for db in [0usize, 3] {
        c.cmd_str(&["SELECT", &db.to_string()]);
        let keys = c.cmd_str(&["KEYS", "*"]);
        // An error (-LOADING above all) must fail here, not read as "no keys".
        assert!(keys.starts_with(b"*"), "KEYS: {}", show(&keys));
        let keys = Reply::parse(&keys).expect("KEYS");
        for k in keys.items() {
            let Reply::Blob(_, key) = k else { continue };
            let kt: &[u8] = key;
            let ty = String::from_utf8_lossy(&c.cmd(&[b"TYPE", kt])).into_owned();
            // A string's encoding may change on load in Redis too (an HLL
            // built raw loads as embstr); collections keep theirs.
            let enc = if ty.contains("string") {
                String::new()
            } else {
                reply_text(&c.cmd(&[b"OBJECT", b"ENCODING", kt]))
            };
            // The absolute expiry time: both formats store it, so it must
            // match to the millisecond (a relative TTL drifts while the test
            // runs, and any rounding of it has boundaries to cross).
            let expire_at = reply_text(&c.cmd(&[b"PEXPIRETIME", kt]));
            let content = if ty.contains("string") {
                reply_text(&c.cmd(&[b"GET", kt]))
            } else if ty.contains("list") {
                reply_text(&c.cmd(&[b"LRANGE", kt, b"0", b"-1"]))
            } else if ty.contains("hash") {
                reply_text(&c.cmd(&[b"HGETALL", kt]))
            } else if ty.contains("zset") {
                reply_text(&c.cmd(&[b"ZRANGE", kt, b"0", b"-1", b"WITHSCORES"]))
            } else {
                reply_text(&c.cmd(&[b"SMEMBERS", kt]))
            };
            out.insert(
                (db, key.clone()),
                format!("{ty} {enc} expire_at={expire_at} {content}"),
            );
        }
    }
    c.cmd_str(&["SELECT", "0"]);
    let f = c.cmd_str(&["FCALL", "pf", "0"]);
    out.insert((99, b"function".to_vec()), show(&f));
    out
}

/// Waits until the server has loaded its dataset. Redis listens before it
/// loads and, replaying an AOF, serves events every 1,024 commands
/// (`loadSingleAppendOnlyFile`), answering -LOADING meanwhile: a test that
/// reads at once may see an empty keyspace. INFO is served while loading.
fn wait_loaded(c: &mut Conn) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = String::from_utf8_lossy(&c.cmd_str(&["INFO", "persistence"])).into_owned();
        // The line itself: Redis also reports `async_loading:0`.
        if info.lines().any(|l| l.trim() == "loading:0") {
            return;
        }
        assert!(Instant::now() < deadline, "still loading: {info}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A connection to a server that has finished loading.
fn loaded(s: &Server) -> Conn {
    let mut c = s.connect();
    wait_loaded(&mut c);
    c
}

fn build(c: &mut Conn) {
    for line in DATASET {
        ok(c, line);
    }
    big_values(c);
}

fn assert_same(a: &BTreeMap<(usize, Vec<u8>), String>, b: &BTreeMap<(usize, Vec<u8>), String>) {
    assert_eq!(a.len(), b.len(), "key counts differ");
    for (k, v) in a {
        assert_eq!(Some(v), b.get(k), "key {:?}", String::from_utf8_lossy(&k.1));
    }
}

fn dir_arg(dir: &Path) -> String {
    dir.display().to_string()
}

#[test]
fn rdb_files_load_both_ways() {
    if skip() {
        return;
    }
    // Cinnabar saves, Redis loads.
    let dir = temp_dir("rdb-c2r");
    let d = dir_arg(&dir);
    let want = {
        let ours = Server::cinnabar(&["--dir", &d]);
        let mut c = ours.connect();
        build(&mut c);
        assert_eq!(c.cmd_str(&["SAVE"]), b"+OK\r\n");
        picture(&mut c)
    };
    let redis = Server::redis(&["--dir", &d, "--dbfilename", "dump.rdb"]);
    assert_same(&want, &picture(&mut loaded(&redis)));
    drop(redis);

    // Redis saves, Cinnabar loads at start-up.
    let dir = temp_dir("rdb-r2c");
    let d = dir_arg(&dir);
    let want = {
        let redis = Server::redis(&["--dir", &d]);
        let mut c = redis.connect();
        build(&mut c);
        assert_eq!(c.cmd_str(&["SAVE"]), b"+OK\r\n");
        picture(&mut c)
    };
    let ours = Server::cinnabar(&["--dir", &d]);
    let mut c = loaded(&ours);
    assert_same(&want, &picture(&mut c));
    let info = String::from_utf8_lossy(&c.cmd_str(&["INFO", "persistence"])).into_owned();
    assert!(info.contains("rdb_last_load_keys_loaded:"), "{info}");
}

/// Writes whose AOF form differs from the command (TTLs, random pops,
/// scripts, transactions, float increments, blocking pops), and a function
/// library (FUNCTION LOAD in an incr file, a FUNCTION2 record in a base).
const AOF_WORKLOAD: &[&str] = &[
    "FUNCTION LOAD \"#!lua name=persistlib\nredis.register_function('pf', function() return 7 end)\"",
    "SET a 1",
    "SET e v EX 1000",
    "SETEX s2 1000 v",
    "INCRBYFLOAT f 1.5",
    "HINCRBYFLOAT hf x 2.25",
    "RPUSH l 1 2 3 4",
    "BLPOP l 0",
    "LMPOP 1 l RIGHT COUNT 2",
    "SADD s a b c d e f g",
    "SPOP s 2",
    "SPOP s",
    "MULTI",
    "SET m 1",
    "INCR m",
    "EXEC",
    "EVAL \"redis.call('set','x','1') redis.call('incr','x')\" 0",
    "ZADD z 1 a 2 b 3 c",
    "BZPOPMIN z 0",
    "EXPIRE a 5000",
    "SELECT 3",
    "SET indb3 yes",
    "SELECT 0",
];

fn run_workload(c: &mut Conn) {
    for line in AOF_WORKLOAD {
        ok(c, line);
    }
}

fn aof_args(d: &str) -> Vec<String> {
    ["--dir", d, "--appendonly", "yes", "--appendfsync", "always"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

/// A picture of the AOF workload's dataset, its function library included.
fn aof_picture(c: &mut Conn) -> BTreeMap<(usize, Vec<u8>), String> {
    let p = picture(c);
    assert_eq!(
        p.get(&(99, b"function".to_vec())).map(String::as_str),
        Some(":7\\r\\n"),
        "the library is loaded"
    );
    p
}

#[test]
fn aof_directories_load_both_ways() {
    if skip() {
        return;
    }
    for rewrite in [false, true] {
        // Redis writes, Cinnabar replays.
        let dir = temp_dir("aof-r2c");
        let d = dir_arg(&dir);
        let want = {
            let mut redis = Server::redis(&strs(&aof_args(&d)));
            let mut c = redis.connect();
            run_workload(&mut c);
            if rewrite {
                ok(&mut c, "BGREWRITEAOF");
                wait_for(&mut c, "aof_rewrite_in_progress:0");
                ok(&mut c, "SET after-rewrite 1");
            }
            let p = aof_picture(&mut c);
            c.send_raw(&cinnabar_tests::encode(&[b"SHUTDOWN", b"NOSAVE"]));
            redis.wait_exit(Duration::from_secs(10));
            p
        };
        let mut ours = Server::cinnabar(&strs(&aof_args(&d)));
        let mut c = loaded(&ours);
        assert_same(&want, &aof_picture(&mut c));

        // Cinnabar writes more on top, Redis replays the whole directory.
        ok(&mut c, "SET from-cinnabar 1");
        ok(&mut c, "SPOP s");
        if rewrite {
            ok(&mut c, "BGREWRITEAOF");
            wait_for(&mut c, "aof_rewrite_in_progress:0");
            ok(&mut c, "SET after-our-rewrite 1");
        }
        let want = aof_picture(&mut c);
        c.send_raw(&cinnabar_tests::encode(&[b"SHUTDOWN", b"NOSAVE"]));
        assert!(ours.wait_exit(Duration::from_secs(10)).is_some());
        let redis = Server::redis(&strs(&aof_args(&d)));
        assert_same(&want, &aof_picture(&mut loaded(&redis)));
    }
}

/// Shuts a server down without saving and waits for it to exit.
fn stop_nosave(s: &mut Server, c: &mut Conn) {
    c.send_raw(&cinnabar_tests::encode(&[b"SHUTDOWN", b"NOSAVE"]));
    assert!(
        s.wait_exit(Duration::from_secs(10)).is_some(),
        "{} kept running",
        s.name
    );
}

/// The names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Old-style single-file AOFs, as Redis before 7.0 wrote them, built from
/// what Redis 7.0 writes: its first incr file is a plain command log, and
/// a rewrite's RDB base followed by the next incr file is exactly an
/// `aof-use-rdb-preamble yes` file with its command tail.
///
/// The third case is a crash inside an upgrade: the manifest naming the
/// old file is in place, the file has not moved yet. Redis finishes the
/// upgrade on the next start.
fn old_style_aofs() -> Vec<(&'static str, Vec<u8>, bool)> {
    let dir = temp_dir("aof-old-src");
    let d = dir_arg(&dir);
    let mut redis = Server::redis(&strs(&aof_args(&d)));
    let mut c = loaded(&redis);
    run_workload(&mut c);
    let aofdir = dir.join("appendonlydir");
    let plain = std::fs::read(aofdir.join("appendonly.aof.1.incr.aof")).expect("incr file");
    ok(&mut c, "BGREWRITEAOF");
    wait_for(&mut c, "aof_rewrite_in_progress:0");
    ok(&mut c, "SET after-rewrite 1");
    ok(&mut c, "SPOP s");
    ok(&mut c, "RPUSH l tail");
    stop_nosave(&mut redis, &mut c);
    let manifest =
        std::fs::read_to_string(aofdir.join("appendonly.aof.manifest")).expect("manifest");
    assert!(
        manifest.contains("file appendonly.aof.2.base.rdb seq 2 type b")
            && manifest.contains("file appendonly.aof.2.incr.aof seq 2 type i"),
        "{manifest}"
    );
    let mut preamble = std::fs::read(aofdir.join("appendonly.aof.2.base.rdb")).expect("base");
    assert!(preamble.starts_with(b"REDIS"));
    let tail = std::fs::read(aofdir.join("appendonly.aof.2.incr.aof")).expect("incr");
    assert!(!tail.is_empty(), "the preamble file needs a command tail");
    preamble.extend_from_slice(&tail);
    vec![
        ("plain", plain.clone(), false),
        ("rdb-preamble", preamble, false),
        ("half-upgraded", plain, true),
    ]
}

/// Redis 7.0 started with `appendonly yes` on a `dir` holding an old-style
/// `appendonly.aof` and no AOF directory upgrades it (`aofUpgradePrepare`):
/// the file moves into `appenddirname` unchanged as the base (seq 1), a
/// manifest names it, and a new incr file is opened. Both servers upgrade
/// the same file: the directories must end alike (names, manifest, the
/// moved base byte for byte) with the same dataset, and each server must
/// load the directory the other upgraded.
#[test]
fn old_single_file_aof_is_upgraded_as_redis_does() {
    if skip() {
        return;
    }
    for (tag, old, half) in old_style_aofs() {
        let mut upgraded = Vec::new();
        for kind in ["redis", "cinnabar"] {
            let dir = temp_dir(&format!("aof-upgrade-{tag}-{kind}"));
            std::fs::write(dir.join("appendonly.aof"), &old).expect("write old AOF");
            if half {
                let aofdir = dir.join("appendonlydir");
                std::fs::create_dir(&aofdir).expect("mkdir");
                std::fs::write(
                    aofdir.join("appendonly.aof.manifest"),
                    "file appendonly.aof seq 1 type b\n",
                )
                .expect("write manifest");
            }
            let d = dir_arg(&dir);
            let args = aof_args(&d);
            let mut s = if kind == "redis" {
                Server::redis(&strs(&args))
            } else {
                Server::cinnabar(&strs(&args))
            };
            let mut c = loaded(&s);
            let before = aof_picture(&mut c);
            assert!(before.len() > 5, "{tag}/{kind}: {before:?}");
            // A write after the upgrade goes to the new incr file.
            ok(&mut c, "SET after-upgrade 1");
            let after = aof_picture(&mut c);
            stop_nosave(&mut s, &mut c);
            let aofdir = dir.join("appendonlydir");
            let manifest =
                std::fs::read_to_string(aofdir.join("appendonly.aof.manifest")).unwrap_or_default();
            let base = std::fs::read(aofdir.join("appendonly.aof")).unwrap_or_default();
            upgraded.push((
                kind,
                dir.clone(),
                names(&dir),
                names(&aofdir),
                manifest,
                base,
                before,
                after,
            ));
        }
        let (r, c) = (&upgraded[0], &upgraded[1]);
        assert_eq!(r.2, vec!["appendonlydir".to_string()], "{tag}: Redis's dir");
        assert_eq!(c.2, r.2, "{tag}: top-level names");
        assert_eq!(c.3, r.3, "{tag}: AOF directory names");
        assert_eq!(
            r.4, "file appendonly.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
            "{tag}: Redis's manifest"
        );
        assert_eq!(c.4, r.4, "{tag}: manifests");
        assert!(
            r.5 == old && c.5 == old,
            "{tag}: the base is the old file, unchanged"
        );
        assert_same(&r.6, &c.6);
        assert_same(&r.7, &c.7);
        // Each loads the directory the other upgraded (base + incr).
        for (dir, want, kind) in [(&c.1, &c.7, "redis"), (&r.1, &r.7, "cinnabar")] {
            let d = dir_arg(dir);
            let args = aof_args(&d);
            let s = if kind == "redis" {
                Server::redis(&strs(&args))
            } else {
                Server::cinnabar(&strs(&args))
            };
            assert_same(want, &aof_picture(&mut loaded(&s)));
        }
    }
}

fn wait_for(c: &mut Conn, info_line: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let info = String::from_utf8_lossy(&c.cmd_str(&["INFO", "persistence"])).into_owned();
        if info.contains(info_line) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("never saw {info_line}");
}

/// With appendfsync always, a reply means the write is on disk: kill -9 at
/// random moments while a client writes, restart, and check.
#[test]
fn always_keeps_every_acknowledged_write_across_kill_9() {
    acknowledged_writes_survive_kill_9("always");
}

/// With appendfsync everysec a reply waits for the write(2), not the fsync,
/// so a killed process (the OS survives) still loses nothing acknowledged;
/// only a power loss can take the unsynced second (bench/persistence.py
/// measures that window).
#[test]
fn everysec_keeps_every_acknowledged_write_across_kill_9() {
    acknowledged_writes_survive_kill_9("everysec");
}

fn acknowledged_writes_survive_kill_9(fsync: &str) {
    let dir = temp_dir(&format!("kill9-{fsync}"));
    let d = dir_arg(&dir);
    let mut args = aof_args(&d);
    args.extend(["--appendfsync".to_string(), fsync.to_string()]);
    let mut acked: u64 = 0;
    let mut sent: u64 = 0;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..12 {
        let mut server = Server::cinnabar(&strs(&args));
        let mut c = server.connect();
        // Everything acknowledged before is there, nothing more than sent.
        let n = c.cmd_str(&["GET", "counter"]);
        let have: u64 = Reply::parse(&n)
            .and_then(|r| match r {
                Reply::Blob(_, b) => String::from_utf8(b).ok()?.parse().ok(),
                _ => Some(0),
            })
            .unwrap_or(0);
        assert!(
            have >= acked && have <= sent,
            "{fsync} round {round}: counter {have}, acknowledged {acked}, sent {sent}"
        );
        let last_key = format!("k{have}");
        if have > 0 {
            assert_eq!(
                c.cmd_str(&["EXISTS", &last_key]),
                b":1\r\n",
                "round {round}"
            );
        }
        acked = have;
        sent = have;
        // Write for a pseudo-random time, pipelining a little, then kill.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let stop = Instant::now() + Duration::from_millis(20 + seed % 150);
        let mut w = server.connect();
        // Each write: the key k<n> and the counter n, atomically.
        let tx = |w: &mut Conn, n: u64| {
            w.send_raw(&cinnabar_tests::encode(&[b"MULTI"]));
            w.send_raw(&cinnabar_tests::encode(&[
                b"SET",
                format!("k{n}").as_bytes(),
                b"v",
            ]));
            w.send_raw(&cinnabar_tests::encode(&[b"INCR", b"counter"]));
            w.send_raw(&cinnabar_tests::encode(&[b"EXEC"]));
        };
        while Instant::now() < stop {
            let next = sent + 1;
            tx(&mut w, next);
            sent = next;
            for _ in 0..4 {
                if w.read_reply().is_none() {
                    panic!("connection lost before the kill");
                }
            }
            acked = next;
        }
        // One more transaction in flight, possibly never acknowledged.
        tx(&mut w, sent + 1);
        sent += 1;
        server.kill9();
    }
    assert!(acked > 50, "too few writes to mean anything: {acked}");
}

#[test]
fn shutdown_and_sigterm_save_when_save_points_are_set() {
    let dir = temp_dir("shutdown");
    let d = dir_arg(&dir);
    {
        let mut s = Server::cinnabar(&["--dir", &d, "--save", "3600 1"]);
        let mut c = s.connect();
        ok(&mut c, "SET saved-by-shutdown 1");
        c.send_raw(&cinnabar_tests::encode(&[b"SHUTDOWN"]));
        assert!(s.wait_exit(Duration::from_secs(10)).is_some());
    }
    {
        let mut s = Server::cinnabar(&["--dir", &d, "--save", "3600 1"]);
        let mut c = s.connect();
        assert_eq!(c.cmd_str(&["GET", "saved-by-shutdown"]), b"$1\r\n1\r\n");
        ok(&mut c, "SET saved-by-sigterm 1");
        s.terminate();
        assert!(s.wait_exit(Duration::from_secs(10)).is_some());
    }
    {
        let mut s = Server::cinnabar(&["--dir", &d, "--save", ""]);
        let mut c = s.connect();
        assert_eq!(c.cmd_str(&["GET", "saved-by-sigterm"]), b"$1\r\n1\r\n");
        ok(&mut c, "SET lost 1");
        c.send_raw(&cinnabar_tests::encode(&[b"SHUTDOWN"]));
        assert!(s.wait_exit(Duration::from_secs(10)).is_some());
    }
    let s = Server::cinnabar(&["--dir", &d]);
    assert_eq!(s.connect().cmd_str(&["EXISTS", "lost"]), b":0\r\n");
}

#[test]
fn save_commands_reply_as_redis() {
    if skip() {
        return;
    }
    let redis = Server::redis(&["--dir", &dir_arg(&temp_dir("cmds-r"))]);
    let ours = Server::cinnabar(&["--dir", &dir_arg(&temp_dir("cmds-c"))]);
    for s in [&redis, &ours] {
        let mut c = s.connect();
        build(&mut c);
    }
    let (mut r, mut o) = (redis.connect(), ours.connect());
    for line in [
        "SAVE",
        "BGSAVE SCHEDULE NOW",
        "BGSAVE NOW",
        "SAVE extra",
        "DEBUG RELOAD",
        "DBSIZE",
        "HLEN bighash",
        "OBJECT ENCODING bigz",
        "TYPE hll",
        "FCALL pf 0",
    ] {
        let args = cinnabar_tests::split_line(line);
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        assert_eq!(show(&r.cmd(&refs)), show(&o.cmd(&refs)), "{line}");
    }
    // BGSAVE completes and is reported like Redis's.
    assert_eq!(o.cmd_str(&["BGSAVE"]), b"+Background saving started\r\n");
    wait_for(&mut o, "rdb_bgsave_in_progress:0");
    let info = String::from_utf8_lossy(&o.cmd_str(&["INFO", "persistence"])).into_owned();
    assert!(info.contains("rdb_last_bgsave_status:ok"), "{info}");
    assert!(info.contains("rdb_changes_since_last_save:0"), "{info}");
    let l = o.cmd_str(&["LASTSAVE"]);
    assert!(
        l.starts_with(b":17") || l.starts_with(b":18"),
        "{}",
        show(&l)
    );
}

/// Starts our server expecting it to refuse; returns its exit status and
/// output.
fn refuses_to_start(args: &[&str]) -> (i32, String) {
    let log = std::env::temp_dir().join(format!(
        "cinnabar-refusal-{}-{}.log",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let file = std::fs::File::create(&log).expect("log file");
    let mut child = Command::new(cinnabar_bin())
        .args(args)
        .args(["--port", "0", "--bind", "127.0.0.1"])
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .expect("run cinnabar-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server kept running on a corrupt file");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    (status.code().unwrap_or(-1), text)
}

#[test]
fn corrupt_files_are_refused_with_a_message() {
    // A valid file with one flipped bit: the checksum catches it.
    let dir = temp_dir("corrupt");
    let d = dir_arg(&dir);
    {
        let s = Server::cinnabar(&["--dir", &d]);
        let mut c = s.connect();
        build(&mut c);
        assert_eq!(c.cmd_str(&["SAVE"]), b"+OK\r\n");
    }
    let path = dir.join("dump.rdb");
    let good = std::fs::read(&path).expect("dump.rdb");
    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x10;
    std::fs::write(&path, &bad).expect("write");
    let (code, text) = refuses_to_start(&["--dir", &d]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("dump.rdb"), "{text}");
    // A truncated file.
    std::fs::write(&path, &good[..good.len() - 100]).expect("write");
    let (code, text) = refuses_to_start(&["--dir", &d]);
    assert_eq!(code, 1, "{text}");
    // Garbage in the middle of an AOF incr file (not a torn tail).
    let dir = temp_dir("corrupt-aof");
    let d = dir_arg(&dir);
    {
        let mut s = Server::cinnabar(&strs(&aof_args(&d)));
        let mut c = s.connect();
        ok(&mut c, "SET a 1");
        ok(&mut c, "SET b 2");
        c.send_raw(&cinnabar_tests::encode(&[b"SHUTDOWN", b"NOSAVE"]));
        s.wait_exit(Duration::from_secs(10));
    }
    let incr = dir.join("appendonlydir/appendonly.aof.1.incr.aof");
    let mut data = std::fs::read(&incr).expect("incr file");
    let valid_len = data.len();
    data.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n");
    data.splice(10..10, b"garbage".iter().copied());
    std::fs::write(&incr, &data).expect("write");
    let (code, text) = refuses_to_start(&strs(&aof_args(&d)));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("Bad file format"), "{text}");
    // A torn tail is cut off and the rest served (aof-load-truncated yes).
    data.drain(10..17);
    data.truncate(data.len() - 5);
    std::fs::write(&incr, &data).expect("write");
    let s = Server::cinnabar(&strs(&aof_args(&d)));
    let mut c = s.connect();
    assert_eq!(c.cmd_str(&["GET", "b"]), b"$1\r\n2\r\n");
    drop(s);
    let after = std::fs::read(&incr).expect("incr file");
    assert_eq!(after.len(), valid_len, "the torn tail is truncated away");
}

#[test]
fn check_tools_verify_and_fix_files() {
    let dir = temp_dir("check");
    let d = dir_arg(&dir);
    {
        let mut s = Server::cinnabar(&strs(&aof_args(&d)));
        let mut c = s.connect();
        ok(&mut c, "SET a 1");
        ok(&mut c, "SAVE");
        c.send_raw(&cinnabar_tests::encode(&[b"SHUTDOWN", b"NOSAVE"]));
        s.wait_exit(Duration::from_secs(10));
    }
    let run = |args: &[&str]| {
        let out = Command::new(cinnabar_bin())
            .args(args)
            .output()
            .expect("run checker");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let rdb = dir.join("dump.rdb").display().to_string();
    let (code, text) = run(&["--check-rdb", &rdb]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("RDB looks OK") && text.contains("1 keys read"),
        "{text}"
    );
    let aofdir = dir.join("appendonlydir").display().to_string();
    let (code, text) = run(&["--check-aof", &aofdir]);
    assert_eq!(code, 0, "{text}");
    // A torn tail: reported, then fixed with --fix, then valid.
    let incr = dir.join("appendonlydir/appendonly.aof.1.incr.aof");
    let mut data = std::fs::read(&incr).expect("incr");
    let len = data.len() as u64;
    data.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nb");
    std::fs::write(&incr, &data).expect("write");
    let (code, text) = run(&["--check-aof", &aofdir]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("truncated tail"), "{text}");
    let (code, text) = run(&["--check-aof", "--fix", &aofdir]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(std::fs::metadata(&incr).expect("incr").len(), len);
    assert_eq!(run(&["--check-aof", &aofdir]).0, 0);
}

/// Sets `key` to a fresh string with the given access information, through
/// RESTORE's IDLETIME / FREQ (the same on both servers).
fn restore_with(c: &mut Conn, key: &str, opt: &str, n: u64) {
    ok(c, "SET restore-src v");
    let payload = Reply::parse(&c.cmd_str(&["DUMP", "restore-src"])).expect("DUMP");
    let Reply::Blob(_, payload) = payload else {
        panic!("DUMP gave no payload")
    };
    ok(c, "DEL restore-src");
    let n = n.to_string();
    let r = c.cmd(&[
        b"RESTORE",
        key.as_bytes(),
        b"0",
        &payload,
        opt.as_bytes(),
        n.as_bytes(),
    ]);
    assert_eq!(r, b"+OK\r\n", "RESTORE {key} {opt} {n}");
}

/// OBJECT IDLETIME / FREQ of each key, without touching it.
fn access_info(c: &mut Conn, sub: &str, keys: &[String]) -> Vec<i64> {
    keys.iter()
        .map(|k| match Reply::parse(&c.cmd_str(&["OBJECT", sub, k])) {
            Some(Reply::Line(b':', n)) => String::from_utf8_lossy(&n).parse().expect("integer"),
            other => panic!("OBJECT {sub} {k}: {other:?}"),
        })
        .collect()
}

/// Redis saves each key's idle time (RDB_OPCODE_IDLE) under an LRU policy
/// and its LFU counter (RDB_OPCODE_FREQ) under an LFU one, and restores
/// them on load: a file written by either server gives the other (and
/// DEBUG RELOAD gives each) the same OBJECT FREQ, and OBJECT IDLETIME
/// within the seconds the test takes. `lfu-decay-time 0` stops counters
/// decaying while the test runs, so FREQ compares exactly.
#[test]
fn lru_and_lfu_info_survive_save_and_load() {
    if skip() {
        return;
    }
    let cases: [(&str, &str, &str, &[u64]); 2] = [
        ("allkeys-lfu", "FREQ", "FREQ", &[0, 1, 5, 100, 255]),
        (
            "allkeys-lru",
            "IDLETIME",
            "IDLETIME",
            &[0, 10, 1000, 100_000],
        ),
    ];
    for (policy, restore_opt, sub, values) in cases {
        let keys: Vec<String> = (0..values.len()).map(|i| format!("k{i}")).collect();
        for redis_writes in [true, false] {
            let dir = temp_dir("access-info");
            let d = dir_arg(&dir);
            let args = [
                "--dir",
                &d,
                "--maxmemory-policy",
                policy,
                "--lfu-decay-time",
                "0",
            ];
            let start = |redis: bool| {
                if redis {
                    Server::redis(&args)
                } else {
                    Server::cinnabar(&args)
                }
            };
            let written = {
                let w = start(redis_writes);
                let mut c = w.connect();
                for (k, v) in keys.iter().zip(values) {
                    restore_with(&mut c, k, restore_opt, *v);
                }
                let got = access_info(&mut c, sub, &keys);
                assert_eq!(c.cmd_str(&["SAVE"]), b"+OK\r\n");
                got
            };
            let reader = start(!redis_writes);
            let mut c = loaded(&reader);
            let what = format!(
                "{policy}, written by {}",
                if redis_writes { "redis" } else { "cinnabar" }
            );
            let check = |got: Vec<i64>, after: &str| {
                for ((k, w), g) in keys.iter().zip(&written).zip(&got) {
                    if sub == "FREQ" {
                        assert_eq!(w, g, "{what}, {after}: OBJECT FREQ {k}");
                    } else {
                        // Whole seconds, and seconds pass between the reads.
                        assert!(
                            (g - w).abs() <= 3,
                            "{what}, {after}: OBJECT IDLETIME {k}: {w} then {g}"
                        );
                    }
                }
            };
            check(access_info(&mut c, sub, &keys), "loaded by the other");
            assert_eq!(c.cmd_str(&["DEBUG", "RELOAD"]), b"+OK\r\n");
            check(access_info(&mut c, sub, &keys), "after DEBUG RELOAD");
            // The restored values really were kept (not all new keys).
            assert_eq!(written.len(), values.len());
            for (w, v) in written.iter().zip(values) {
                assert!((*w - *v as i64).abs() <= 1, "{what}: {sub} {w} for {v}");
            }
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The incr file's bytes with its `#TS:` lines taken out, and their
/// seconds, in order.
fn split_timestamps(data: &[u8]) -> (Vec<u8>, Vec<u64>) {
    let (mut rest, mut ts) = (Vec::new(), Vec::new());
    let mut pos = 0;
    while pos < data.len() {
        if data[pos..].starts_with(b"#TS:") {
            let end = pos
                + data[pos..]
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .expect("annotation line ends");
            let n = std::str::from_utf8(&data[pos + 4..end]).expect("ascii");
            ts.push(n.parse().expect("#TS seconds"));
            pos = end + 2;
            continue;
        }
        // A command: skip to the next annotation or the end, line by line.
        let end = data[pos..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(data.len(), |n| pos + n + 2);
        rest.extend_from_slice(&data[pos..end]);
        pos = end;
    }
    (rest, ts)
}

/// `aof-timestamp-enabled yes`: before appending a command, Redis writes
/// `#TS:<unix seconds>\r\n` when the second has advanced since the last
/// one (before the SELECT that command may need). Both servers write the
/// same commands, with annotations in the same places up to where second
/// boundaries fall, and each replays the other's directory.
#[test]
fn aof_timestamp_annotations() {
    if skip() {
        return;
    }
    let mut files = Vec::new();
    let mut wants = Vec::new();
    for redis_writes in [true, false] {
        let dir = temp_dir("aof-ts");
        let d = dir_arg(&dir);
        let mut args = aof_args(&d);
        args.extend(["--aof-timestamp-enabled".into(), "yes".into()]);
        let t0 = unix_now();
        let mut s = if redis_writes {
            Server::redis(&strs(&args))
        } else {
            Server::cinnabar(&strs(&args))
        };
        let mut c = loaded(&s);
        ok(&mut c, "SET a 1");
        ok(
            &mut c,
            "EVAL \"redis.call('set','x','1') redis.call('incr','x')\" 0",
        );
        // The next second: a new annotation before the next command.
        std::thread::sleep(Duration::from_millis(1100));
        ok(&mut c, "SELECT 3");
        ok(&mut c, "SET b 2");
        let want = picture(&mut c);
        stop_nosave(&mut s, &mut c);
        let t1 = unix_now();
        let adir = dir.join("appendonlydir");
        let incr = names(&adir)
            .into_iter()
            .find(|n| n.ends_with(".incr.aof"))
            .expect("an incr file");
        let data = std::fs::read(adir.join(&incr)).expect("read incr");
        let who = if redis_writes { "redis" } else { "cinnabar" };
        assert!(data.starts_with(b"#TS:"), "{who}: {}", show(&data));
        let (commands, ts) = split_timestamps(&data);
        assert!(ts.len() >= 2, "{who}: {ts:?}");
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "{who}: {ts:?}");
        assert!(ts.iter().all(|t| (t0..=t1).contains(t)), "{who}: {ts:?}");
        // The last annotation comes after the sleep: right before the
        // SELECT 3 that `SET b 2` needs.
        let last = data
            .windows(4)
            .rposition(|w| w == b"#TS:")
            .expect("annotation");
        let after = &data[last..];
        let line_end = after.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        assert!(
            after[line_end..].starts_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"),
            "{who}: {}",
            show(after)
        );
        files.push(commands);
        wants.push((dir, args, want));
    }
    assert_eq!(show(&files[0]), show(&files[1]), "the commands logged");
    // Each server replays the other's directory.
    for (i, (_, args, want)) in wants.iter().enumerate() {
        let s = if i == 0 {
            Server::cinnabar(&strs(args))
        } else {
            Server::redis(&strs(args))
        };
        assert_same(want, &picture(&mut loaded(&s)));
    }
}

/// BGREWRITEAOF with appendonly off is allowed in Redis 7.0: it writes a
/// base file and a manifest naming only it (no incr file is opened), and a
/// second one replaces the first. Both servers leave the same directory,
/// and each starts from the other's with appendonly yes.
#[test]
fn bgrewriteaof_with_appendonly_off() {
    if skip() {
        return;
    }
    let mut runs = Vec::new();
    for redis_writes in [true, false] {
        let dir = temp_dir("aof-off");
        let d = dir_arg(&dir);
        let args = ["--dir", d.as_str(), "--appendonly", "no"];
        let mut s = if redis_writes {
            Server::redis(&args)
        } else {
            Server::cinnabar(&args)
        };
        let mut c = loaded(&s);
        build(&mut c);
        let mut replies = Vec::new();
        for round in 0..2 {
            if round == 1 {
                // In the second base only.
                ok(&mut c, "SET after-first-rewrite 1");
            }
            replies.push(c.cmd_str(&["BGREWRITEAOF"]));
            wait_for(&mut c, "aof_rewrite_in_progress:0");
        }
        let want = picture(&mut c);
        // Not logged anywhere: appendonly is off.
        ok(&mut c, "SET after-last-rewrite 1");
        let info = String::from_utf8_lossy(&c.cmd_str(&["INFO", "persistence"])).into_owned();
        assert!(info.contains("aof_rewrites:2\r\n"), "{info}");
        assert!(info.contains("aof_enabled:0\r\n"), "{info}");
        stop_nosave(&mut s, &mut c);
        let adir = dir.join("appendonlydir");
        let manifest = std::fs::read(adir.join("appendonly.aof.manifest")).expect("manifest");
        runs.push((dir, replies, names(&adir), manifest, want));
    }
    let (r, o) = (&runs[0], &runs[1]);
    for (a, b) in r.1.iter().zip(&o.1) {
        assert_eq!(show(a), show(b), "BGREWRITEAOF reply");
    }
    assert_eq!(
        r.2,
        vec!["appendonly.aof.2.base.rdb", "appendonly.aof.manifest"],
        "redis's directory"
    );
    assert_eq!(r.2, o.2, "the files left");
    assert_eq!(show(&r.3), show(&o.3), "the manifests");
    for (i, (dir, _, _, _, want)) in runs.iter().enumerate() {
        let d = dir_arg(dir);
        let args = ["--dir", d.as_str(), "--appendonly", "yes"];
        let s = if i == 0 {
            Server::cinnabar(&args)
        } else {
            Server::redis(&args)
        };
        assert_same(want, &picture(&mut loaded(&s)));
    }
}

/// The commands of an AOF file (annotations skipped).
fn aof_commands(data: &[u8]) -> Vec<Vec<Vec<u8>>> {
    fn line(data: &[u8], pos: &mut usize) -> Vec<u8> {
        let end = *pos
            + data[*pos..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("line end");
        let l = data[*pos..end].to_vec();
        *pos = end + 2;
        l
    }
    let num = |l: &[u8]| -> usize { String::from_utf8_lossy(&l[1..]).parse().expect("count") };
    let (mut out, mut pos) = (Vec::new(), 0);
    while pos < data.len() {
        let head = line(data, &mut pos);
        if head.starts_with(b"#") {
            continue;
        }
        assert!(head.starts_with(b"*"), "{}", show(&head));
        let mut argv = Vec::new();
        for _ in 0..num(&head) {
            let n = num(&line(data, &mut pos));
            argv.push(data[pos..pos + n].to_vec());
            pos += n + 2;
        }
        out.push(argv);
    }
    out
}

/// A stream key's entries, groups and pending summary.
fn stream_picture(c: &mut Conn) -> String {
    let mut s = String::new();
    for cmd in [
        &["XRANGE", "st", "-", "+"][..],
        &["XINFO", "GROUPS", "st"],
        &["XPENDING", "st", "g"],
    ] {
        s.push_str(&show(&c.cmd_str(cmd)));
    }
    s
}

/// `aof-use-rdb-preamble no`: the rewritten base is `*.base.aof`, the
/// dataset as commands (rewriteAppendOnlyFileRio). Both servers write the
/// same commands (set, hash and skiplist batches hold members in table
/// order, so those compare by batch size; XCLAIM's TIME is a delivery
/// time; PEXPIREAT's is absolute, from each run's clock), and
/// each loads the other's directory to the same dataset.
#[test]
fn rewrite_without_rdb_preamble() {
    if skip() {
        return;
    }
    let mut runs = Vec::new();
    for redis_writes in [true, false] {
        let dir = temp_dir("aof-nopreamble");
        let d = dir_arg(&dir);
        let mut args = aof_args(&d);
        args.extend(["--aof-use-rdb-preamble".into(), "no".into()]);
        let mut s = if redis_writes {
            Server::redis(&strs(&args))
        } else {
            Server::cinnabar(&strs(&args))
        };
        let mut c = loaded(&s);
        build(&mut c);
        for line in [
            "XADD st 1-1 f v",
            "XADD st 2-1 f2 v2 f3 v3",
            "XADD st 3-1 x y",
            "XDEL st 3-1",
            "XGROUP CREATE st g 0",
            "XREADGROUP GROUP g c COUNT 1 STREAMS st >",
            "XGROUP CREATECONSUMER st g c2",
            "ZADD z -inf lo inf hi 0.1 tenth",
            "XADD empty MAXLEN 0 5-5 a b",
        ] {
            ok(&mut c, line);
        }
        ok(&mut c, "BGREWRITEAOF");
        wait_for(&mut c, "aof_rewrite_in_progress:0");
        ok(&mut c, "SET after-rewrite 1");
        let want = (picture(&mut c), stream_picture(&mut c));
        stop_nosave(&mut s, &mut c);
        let adir = dir.join("appendonlydir");
        let base = names(&adir)
            .into_iter()
            .find(|n| n.contains(".base."))
            .expect("a base file");
        assert_eq!(base, "appendonly.aof.2.base.aof");
        let data = std::fs::read(adir.join(&base)).expect("read base");
        // Canonical commands: see the doc comment.
        let mut canon: Vec<String> = aof_commands(&data)
            .into_iter()
            .map(|argv| {
                let name = String::from_utf8_lossy(&argv[0]).to_uppercase();
                match name.as_str() {
                    "SADD" | "HMSET" => format!("{name} {} x{}", show(&argv[1]), argv.len()),
                    // A skiplist's members come from its dict in Redis.
                    "ZADD" if argv[1] == b"bigz" => format!("ZADD bigz x{}", argv.len()),
                    // Expiry times are absolute, from each run's clock.
                    "PEXPIREAT" => format!("PEXPIREAT {}", show(&argv[1])),
                    "XCLAIM" => {
                        let mut a = argv.clone();
                        a[7] = b"<time>".to_vec();
                        a.iter().map(|x| show(x)).collect::<Vec<_>>().join(" ")
                    }
                    _ => argv.iter().map(|x| show(x)).collect::<Vec<_>>().join(" "),
                }
            })
            .collect();
        assert!(canon[0].starts_with("FUNCTION LOAD"), "{}", canon[0]);
        canon.sort();
        runs.push((dir, args, canon, want));
    }
    let only = |a: &Vec<String>, b: &Vec<String>| -> Vec<String> {
        a.iter().filter(|x| !b.contains(x)).cloned().collect()
    };
    assert_eq!(
        (only(&runs[0].2, &runs[1].2), only(&runs[1].2, &runs[0].2)),
        (vec![], vec![]),
        "commands only redis wrote, only cinnabar wrote"
    );
    assert_eq!(runs[0].2, runs[1].2, "the base's commands");
    for (i, (_, args, _, want)) in runs.iter().enumerate() {
        let s = if i == 0 {
            Server::cinnabar(&strs(args))
        } else {
            Server::redis(&strs(args))
        };
        let mut c = loaded(&s);
        assert_same(&want.0, &picture(&mut c));
        assert_eq!(want.1, stream_picture(&mut c));
    }
}
