//! maxmemory and eviction against genuine Redis 7.0: OOM refusals per
//! policy and per command flag (plain, MULTI/EXEC, scripts), what each
//! policy evicts, OBJECT FREQ/IDLETIME, the eviction config parameters,
//! and that a filled server stays under its limit.
//!
//! A `maxmemory` of 1 byte puts either server over the limit whatever it
//! holds, so the replies do not depend on how each counts memory.

use cinnabar_tests::{show, Conn, Server};

/// Runs the same commands on both servers and collects the differences.
struct Pair {
    redis: Conn,
    ours: Conn,
    failures: Vec<String>,
}

impl Pair {
    fn new(redis: &Server, ours: &Server) -> Pair {
        Pair {
            redis: redis.connect(),
            ours: ours.connect(),
            failures: vec![],
        }
    }

    /// Sends to both; the replies must be byte-identical. Returns ours.
    fn same(&mut self, args: &[&str]) -> Vec<u8> {
        let r = self.redis.cmd_str(args);
        let c = self.ours.cmd_str(args);
        if r != c {
            self.failures.push(format!(
                "{}\n    redis:    {}\n    cinnabar: {}",
                args.join(" "),
                show(&r),
                show(&c)
            ));
        }
        c
    }

    /// Sends to both without comparing (set-up whose replies may differ).
    fn both(&mut self, args: &[&str]) {
        self.redis.cmd_str(args);
        self.ours.cmd_str(args);
    }

    fn check(self) {
        assert!(
            self.failures.is_empty(),
            "{} replies differ from Redis 7.0:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn servers() -> (Server, Server) {
    (Server::redis(&[]), Server::cinnabar(&[]))
}

/// An INFO field's value.
fn info_field(c: &mut Conn, section: &str, name: &str) -> Option<String> {
    let r = c.cmd_str(&["INFO", section]);
    let text = String::from_utf8_lossy(&r).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.to_string()))
}

const POLICIES: &[&str] = &[
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
];

/// Over the limit, each policy evicts what it may (all keys, only volatile
/// ones, or nothing), then refuses the deny-oom command with Redis's OOM
/// error; `evicted_keys` counts the same.
#[test]
fn each_policy_evicts_what_redis_evicts_then_refuses() {
    let (redis, ours) = servers();
    let mut p = Pair::new(&redis, &ours);
    for policy in POLICIES {
        p.both(&["FLUSHALL"]);
        p.both(&["CONFIG", "SET", "maxmemory", "0"]);
        p.both(&["CONFIG", "RESETSTAT"]);
        for i in 0..20 {
            p.both(&["SET", &format!("plain:{i}"), "v"]);
        }
        for i in 0..10 {
            p.both(&[
                "SET",
                &format!("vol:{i}"),
                "v",
                "EX",
                &(100 + i).to_string(),
            ]);
        }
        p.same(&["CONFIG", "SET", "maxmemory-policy", policy]);
        p.same(&["CONFIG", "SET", "maxmemory", "1"]);
        p.same(&["SET", "x", "y"]);
        p.same(&["DBSIZE"]);
        p.same(&["EXISTS", "plain:0", "vol:0"]);
        let (r, c) = (
            info_field(&mut p.redis, "stats", "evicted_keys"),
            info_field(&mut p.ours, "stats", "evicted_keys"),
        );
        if r != c {
            p.failures
                .push(format!("{policy}: evicted_keys redis {r:?} cinnabar {c:?}"));
        }
        p.same(&["CONFIG", "GET", "maxmemory-policy"]);
    }
    p.both(&["CONFIG", "SET", "maxmemory", "0"]);
    p.check();
}

/// Which commands an out-of-memory server refuses: deny-oom ones (SET,
/// LPUSH, APPEND, SETRANGE...), not reads or deletions; in MULTI every
/// queued command but EXEC/DISCARD; EXEC holding a deny-oom command aborts;
/// a script's deny-oom call fails inside the script.
#[test]
fn oom_refusals_follow_command_flags() {
    let (redis, ours) = servers();
    let mut p = Pair::new(&redis, &ours);
    p.both(&["FLUSHALL"]);
    p.both(&["SET", "s", "hello"]);
    p.both(&["RPUSH", "l", "a", "b"]);
    p.same(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    p.same(&["CONFIG", "SET", "maxmemory", "1"]);
    for cmd in [
        &["SET", "s", "x"][..],
        &["APPEND", "s", "x"],
        &["SETRANGE", "s", "0", "x"],
        &["INCR", "n"],
        &["LPUSH", "l", "x"],
        &["SADD", "set", "m"],
        &["HSET", "h", "f", "v"],
        &["ZADD", "z", "1", "m"],
        &["PFADD", "hll", "a"],
        &["GET", "s"],
        &["LRANGE", "l", "0", "-1"],
        &["STRLEN", "s"],
        &["EXPIRE", "s", "100"],
        &["PERSIST", "s"],
        &["LPOP", "l"],
        &["PING"],
        &["DEL", "l"],
        &["DBSIZE"],
    ] {
        p.same(cmd);
    }
    // MULTI: anything queued is refused while out of memory.
    p.same(&["MULTI"]);
    p.same(&["GET", "s"]);
    p.same(&["SET", "s", "y"]);
    p.same(&["EXEC"]);
    p.same(&["MULTI"]);
    p.same(&["DISCARD"]);
    // A transaction queued before the limit: EXEC aborts if it holds a
    // deny-oom command, runs otherwise.
    p.same(&["CONFIG", "SET", "maxmemory", "0"]);
    p.same(&["MULTI"]);
    p.same(&["SET", "s", "z"]);
    p.both(&["CONFIG", "SET", "maxmemory", "1"]);
    p.same(&["EXEC"]);
    p.same(&["CONFIG", "SET", "maxmemory", "0"]);
    p.same(&["MULTI"]);
    p.same(&["GET", "s"]);
    p.both(&["CONFIG", "SET", "maxmemory", "1"]);
    p.same(&["EXEC"]);
    // Scripts: reads run, deny-oom calls raise the OOM error, pcall sees it.
    p.same(&["EVAL", "return redis.call('get','s')", "0"]);
    p.same(&[
        "EVAL",
        "local ok = redis.pcall('set','s','w') return ok['err']",
        "0",
    ]);
    p.same(&["EVAL", "return redis.call('del','nothing')", "0"]);
    p.same(&["GET", "s"]);
    p.both(&["CONFIG", "SET", "maxmemory", "0"]);
    p.check();
}

/// OBJECT FREQ and IDLETIME: their errors under the other policy family,
/// a new key's LFU counter (5), the first access's certain increment, and
/// RESTORE's FREQ/IDLETIME.
#[test]
fn object_freq_and_idletime_match_redis() {
    let (redis, ours) = servers();
    let mut p = Pair::new(&redis, &ours);
    p.both(&["FLUSHALL"]);
    p.same(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    p.same(&["SET", "k", "v"]);
    p.same(&["OBJECT", "FREQ", "k"]);
    p.same(&["OBJECT", "IDLETIME", "k"]);
    p.same(&["OBJECT", "FREQ", "missing"]);
    p.same(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]);
    p.same(&["SET", "f", "v"]);
    p.same(&["OBJECT", "FREQ", "f"]);
    p.same(&["GET", "f"]);
    p.same(&["OBJECT", "FREQ", "f"]);
    p.same(&["OBJECT", "IDLETIME", "f"]);
    p.same(&["OBJECT", "IDLETIME", "missing"]);
    let dump = p.redis.cmd_str(&["DUMP", "f"]);
    // The payload is the bulk's body.
    let text = dump.splitn(2, |&b| b == b'\n').nth(1).unwrap_or_default();
    let payload = &text[..text.len().saturating_sub(2)];
    let restore = |c: &mut Conn, extra: &[&[u8]]| {
        let mut args: Vec<&[u8]> = vec![b"RESTORE", b"r", b"0", payload, b"REPLACE"];
        args.extend_from_slice(extra);
        c.cmd(&args)
    };
    for extra in [&[&b"FREQ"[..], b"100"][..], &[b"FREQ", b"256"]] {
        let (r, c) = (restore(&mut p.redis, extra), restore(&mut p.ours, extra));
        assert_eq!(show(&r), show(&c), "RESTORE {extra:?}");
        p.same(&["OBJECT", "FREQ", "r"]);
    }
    p.same(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    let (r, c) = (
        restore(&mut p.redis, &[b"IDLETIME", b"1000"]),
        restore(&mut p.ours, &[b"IDLETIME", b"1000"]),
    );
    assert_eq!(show(&r), show(&c));
    p.same(&["OBJECT", "IDLETIME", "r"]);
    p.both(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    p.check();
}

/// The eviction parameters: names, defaults, bounds and error texts.
#[test]
fn eviction_config_round_trips() {
    let (redis, ours) = servers();
    let mut p = Pair::new(&redis, &ours);
    for name in [
        "maxmemory",
        "maxmemory-policy",
        "maxmemory-samples",
        "maxmemory-eviction-tenacity",
        "lfu-log-factor",
        "lfu-decay-time",
        "lazyfree-lazy-eviction",
        "lazyfree-lazy-expire",
        "lazyfree-lazy-server-del",
        "lazyfree-lazy-user-del",
        "lazyfree-lazy-user-flush",
        "replica-lazy-flush",
    ] {
        p.same(&["CONFIG", "GET", name]);
    }
    for (name, value) in [
        ("maxmemory", "100mb"),
        ("maxmemory", "1gb"),
        ("maxmemory", "-1"),
        ("maxmemory", "abc"),
        ("maxmemory-policy", "allkeys-lfu"),
        ("maxmemory-policy", "VOLATILE-TTL"),
        ("maxmemory-policy", "lru"),
        ("maxmemory-samples", "10"),
        ("maxmemory-samples", "0"),
        ("maxmemory-samples", "65"),
        ("maxmemory-eviction-tenacity", "100"),
        ("maxmemory-eviction-tenacity", "101"),
        ("lfu-log-factor", "-1"),
        ("lfu-decay-time", "5"),
        ("lazyfree-lazy-eviction", "maybe"),
    ] {
        p.same(&["CONFIG", "SET", name, value]);
        p.same(&["CONFIG", "GET", name]);
    }
    // Several at once: all or nothing.
    p.same(&[
        "CONFIG",
        "SET",
        "maxmemory-samples",
        "7",
        "maxmemory-policy",
        "bogus",
    ]);
    p.same(&["CONFIG", "GET", "maxmemory-samples"]);
    p.both(&["CONFIG", "SET", "maxmemory", "0"]);
    p.check();
}

/// Filling a server far beyond its limit under allkeys-lru keeps it under
/// the limit by evicting (both servers: the property, not the numbers).
#[test]
fn filled_server_stays_under_maxmemory() {
    for server in [Server::redis(&[]), Server::cinnabar(&[])] {
        let mut c = server.connect();
        c.cmd_str(&["CONFIG", "SET", "maxmemory", "4mb"]);
        c.cmd_str(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
        let value = "x".repeat(100);
        for chunk in 0..200 {
            let mut batch = Vec::new();
            for i in 0..100 {
                let k = format!("key:{}", chunk * 100 + i);
                batch.extend(cinnabar_tests::encode(&[
                    b"SET",
                    k.as_bytes(),
                    value.as_bytes(),
                ]));
            }
            c.send_raw(&batch);
            for _ in 0..100 {
                let r = c.read_reply().expect("reply");
                assert_eq!(r, b"+OK\r\n", "{}: {}", server.name, show(&r));
            }
        }
        let used: u64 = info_field(&mut c, "memory", "used_memory")
            .and_then(|v| v.parse().ok())
            .expect("used_memory");
        let evicted: u64 = info_field(&mut c, "stats", "evicted_keys")
            .and_then(|v| v.parse().ok())
            .expect("evicted_keys");
        let dbsize = c.cmd_str(&["DBSIZE"]);
        // Eviction runs before each command, so the last write may leave
        // the server a little over (Redis too).
        assert!(
            used <= (4 << 20) + (64 << 10),
            "{}: used_memory {used}",
            server.name
        );
        assert!(evicted > 0, "{}: nothing evicted", server.name);
        assert_ne!(dbsize, b":20000\r\n".to_vec(), "{}", server.name);
    }
}

/// Lazy freeing: UNLINK, DEL under lazyfree-lazy-user-del, FLUSHDB/FLUSHALL
/// ASYNC and lazyfree-lazy-user-flush reply as Redis does, the data is gone
/// at once, and large values count in `lazyfreed_objects` (small ones are
/// freed inline, in both).
#[test]
fn lazy_free_matches_redis() {
    let (redis, ours) = servers();
    let mut p = Pair::new(&redis, &ours);
    let members: Vec<String> = (0..5000).map(|i| format!("m{i}")).collect();
    let fill = |p: &mut Pair, key: &str| {
        for chunk in members.chunks(500) {
            let mut args = vec!["SADD", key];
            args.extend(chunk.iter().map(|s| s.as_str()));
            p.same(&args);
        }
    };
    let lazyfreed = |c: &mut Conn| -> u64 {
        // Redis counts when its background thread is done: wait a little.
        let mut last = 0;
        for _ in 0..50 {
            last = info_field(c, "memory", "lazyfreed_objects")
                .and_then(|v| v.parse().ok())
                .unwrap_or(u64::MAX);
            if last > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        last
    };
    fill(&mut p, "big");
    p.same(&["SET", "small", "v"]);
    p.same(&["UNLINK", "big", "small", "missing"]);
    p.same(&["EXISTS", "big", "small"]);
    let (r, c) = (lazyfreed(&mut p.redis), lazyfreed(&mut p.ours));
    assert_eq!((r, c), (1, 1), "lazyfreed_objects after UNLINK");
    p.same(&["CONFIG", "SET", "lazyfree-lazy-user-del", "yes"]);
    fill(&mut p, "big2");
    p.same(&["DEL", "big2"]);
    p.same(&["CONFIG", "SET", "lazyfree-lazy-user-del", "no"]);
    for flush in [
        &["FLUSHDB", "ASYNC"][..],
        &["FLUSHALL", "ASYNC"],
        &["FLUSHALL"],
    ] {
        fill(&mut p, "big3");
        p.same(flush);
        p.same(&["DBSIZE"]);
    }
    p.same(&["CONFIG", "SET", "lazyfree-lazy-user-flush", "yes"]);
    fill(&mut p, "big4");
    p.same(&["FLUSHDB"]);
    p.same(&["FLUSHALL", "SYNC"]);
    p.same(&["FLUSHALL", "LAZY"]);
    p.same(&["DBSIZE"]);
    p.both(&["CONFIG", "SET", "lazyfree-lazy-user-flush", "no"]);
    p.check();
}

/// `maxmemory-clients` as CONFIG SET/GET see it: byte counts, percentages
/// of maxmemory, and Redis's errors for everything else.
#[test]
fn maxmemory_clients_config_matches_redis() {
    let (redis, ours) = servers();
    let mut p = Pair::new(&redis, &ours);
    p.same(&["CONFIG", "GET", "maxmemory-clients"]);
    for value in [
        "10%",
        "100%",
        "101%",
        "0%",
        "-1",
        "1mb",
        "1kb",
        "1K",
        "abc",
        "50",
        "5 %",
        "1.5%",
        "-5%",
        "%",
        "007%",
        "+5%",
        "1gb%",
        "9223372036854775807",
        "9223372036854775808",
        "0",
    ] {
        p.same(&["CONFIG", "SET", "maxmemory-clients", value]);
        p.same(&["CONFIG", "GET", "maxmemory-clients"]);
    }
    // CLIENT NO-EVICT shows as flag `e`; the rest of the line differs
    // (addresses, memory figures), so only the flags are compared.
    let flags = |c: &mut Conn| -> String {
        let r = c.cmd_str(&["CLIENT", "INFO"]);
        let text = String::from_utf8_lossy(&r).into_owned();
        text.split(' ')
            .find_map(|f| f.strip_prefix("flags="))
            .unwrap_or("?")
            .to_string()
    };
    p.same(&["CLIENT", "NO-EVICT", "maybe"]);
    p.same(&["CLIENT", "NO-EVICT", "on"]);
    assert_eq!(flags(&mut p.redis), flags(&mut p.ours));
    assert_eq!(flags(&mut p.ours), "e");
    p.same(&["CLIENT", "NO-EVICT", "OFF"]);
    assert_eq!(flags(&mut p.redis), flags(&mut p.ours));
    p.check();
}

/// Client eviction, checked on both servers with the same expectations:
/// a client whose query buffer or pending replies pass `maxmemory-clients`
/// is disconnected and counted in `evicted_clients`; a percentage follows
/// maxmemory (and is off without it); CLIENT NO-EVICT exempts a client,
/// whose memory still counts, so other clients go instead.
#[test]
fn client_eviction_matches_redis() {
    use std::time::{Duration, Instant};
    for server in [Server::redis(&[]), Server::cinnabar(&[])] {
        let name = server.name;
        // The observer is exempt, or it could be evicted itself.
        let mut ctl = server.connect();
        assert_eq!(ctl.cmd_str(&["CLIENT", "NO-EVICT", "on"]), b"+OK\r\n");
        let evicted = |ctl: &mut Conn| -> u64 {
            info_field(ctl, "stats", "evicted_clients")
                .and_then(|v| v.parse().ok())
                .expect("evicted_clients")
        };
        let wait_evicted = |ctl: &mut Conn, n: u64| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while evicted(ctl) < n {
                assert!(
                    Instant::now() < deadline,
                    "{name}: evicted_clients never reached {n}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(evicted(ctl), n, "{name}: evicted too many");
        };
        // A request of 2 MB of which 1.5 MB has arrived: it sits in the
        // query buffer.
        let big_partial = |c: &mut Conn| {
            let mut req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2097152\r\n".to_vec();
            req.extend(std::iter::repeat_n(b'x', 1536 * 1024));
            // The server may close the connection before it has all of it.
            let _ = std::io::Write::write_all(&mut c.stream, &req);
        };
        assert_eq!(evicted(&mut ctl), 0);
        assert_eq!(
            ctl.cmd_str(&["CONFIG", "SET", "maxmemory-clients", "1mb"]),
            b"+OK\r\n"
        );

        // 1. Query buffer.
        let mut victim = server.connect();
        assert_eq!(victim.cmd_str(&["PING"]), b"+PONG\r\n");
        big_partial(&mut victim);
        wait_evicted(&mut ctl, 1);
        assert!(victim.is_closed(), "{name}: the client stayed connected");

        // 2. Replies the client does not read: 4 MB values fetched 20 times.
        ctl.cmd(&[b"SET", b"big", &vec![b'v'; 4 << 20]]);
        let mut reader = server.connect();
        let mut gets = Vec::new();
        for _ in 0..20 {
            gets.extend(cinnabar_tests::encode(&[b"GET", b"big"]));
        }
        let _ = std::io::Write::write_all(&mut reader.stream, &gets);
        wait_evicted(&mut ctl, 2);
        assert!(reader.is_closed(), "{name}: the reader stayed connected");
        ctl.cmd_str(&["DEL", "big"]);

        // 3. A percentage of maxmemory: 5% of 20mb is 1mb. Without
        //    maxmemory a percentage means no limit.
        ctl.cmd_str(&[
            "CONFIG",
            "SET",
            "maxmemory",
            "20mb",
            "maxmemory-clients",
            "5%",
        ]);
        let mut victim = server.connect();
        big_partial(&mut victim);
        wait_evicted(&mut ctl, 3);
        assert!(victim.is_closed(), "{name}: not evicted under 5%");
        ctl.cmd_str(&["CONFIG", "SET", "maxmemory", "0"]);
        let mut spared = server.connect();
        let spared_id = spared.id();
        big_partial(&mut spared);
        std::thread::sleep(Duration::from_millis(300));
        let list = ctl.cmd_str(&["CLIENT", "LIST", "ID", &spared_id]);
        assert!(
            String::from_utf8_lossy(&list).contains(&format!("id={spared_id} ")),
            "{name}: evicted with a percentage and no maxmemory"
        );
        assert_eq!(evicted(&mut ctl), 3, "{name}");
        drop(spared);

        // 4. NO-EVICT: the exempt client is kept although it alone is over
        //    the limit; any other client is evicted instead.
        ctl.cmd_str(&["CONFIG", "SET", "maxmemory-clients", "1mb"]);
        let mut exempt = server.connect();
        let exempt_id = exempt.id();
        assert_eq!(exempt.cmd_str(&["CLIENT", "NO-EVICT", "on"]), b"+OK\r\n");
        big_partial(&mut exempt);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(evicted(&mut ctl), 3, "{name}: an exempt client was evicted");
        let mut bystander = server.connect();
        bystander.send_raw(&cinnabar_tests::encode(&[b"PING"]));
        wait_evicted(&mut ctl, 4);
        assert!(bystander.is_closed(), "{name}: the bystander stayed");
        let list = ctl.cmd_str(&["CLIENT", "LIST", "ID", &exempt_id]);
        assert!(
            String::from_utf8_lossy(&list).contains(&format!("id={exempt_id} ")),
            "{name}: the exempt client was closed"
        );
        // Turning the limit off stops eviction.
        ctl.cmd_str(&["CONFIG", "SET", "maxmemory-clients", "0"]);
        let mut late = server.connect();
        assert_eq!(late.cmd_str(&["PING"]), b"+PONG\r\n", "{name}");
        assert_eq!(evicted(&mut ctl), 4, "{name}");
        // CONFIG RESETSTAT clears the counter.
        ctl.cmd_str(&["CONFIG", "RESETSTAT"]);
        assert_eq!(evicted(&mut ctl), 0, "{name}");
    }
}

/// The lazyfree settings for deletions no command asked for: a large value
/// that expires (on access or by the active cycle) or is overwritten is
/// freed in the background, and counted in `lazyfreed_objects`, only under
/// `lazyfree-lazy-expire` / `lazyfree-lazy-server-del`, as in Redis. CONFIG
/// RESETSTAT clears the counter.
#[test]
fn lazy_expire_and_overwrite_match_redis() {
    use std::time::Duration;
    let (redis, ours) = servers();
    let mut p = Pair::new(&redis, &ours);
    let members: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    let big = |p: &mut Pair, key: &str| {
        let mut args = vec!["SADD", key];
        args.extend(members.iter().map(|s| s.as_str()));
        p.same(&args);
    };
    // Redis counts when its background thread is done: poll until the
    // expected count shows (or give up and report what is there).
    let expect = |p: &mut Pair, want: u64, what: &str| {
        for (name, c) in [("redis", &mut p.redis), ("cinnabar", &mut p.ours)] {
            let mut got = 0;
            for _ in 0..100 {
                got = info_field(c, "memory", "lazyfreed_objects")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(u64::MAX);
                if got >= want {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(got, want, "{name}: lazyfreed_objects after {what}");
        }
    };
    p.same(&["CONFIG", "RESETSTAT"]);
    for name in [
        "lazyfree-lazy-eviction",
        "lazyfree-lazy-expire",
        "lazyfree-lazy-server-del",
        "lazyfree-lazy-user-del",
        "lazyfree-lazy-user-flush",
        "replica-lazy-flush",
    ] {
        p.same(&["CONFIG", "SET", name, "yes"]);
        p.same(&["CONFIG", "GET", name]);
        p.same(&["CONFIG", "SET", name, "no"]);
        p.same(&["CONFIG", "GET", name]);
    }
    // Overwrite, setting off then on.
    big(&mut p, "a");
    p.same(&["SET", "a", "x"]);
    expect(&mut p, 0, "an overwrite without lazyfree-lazy-server-del");
    p.same(&["CONFIG", "SET", "lazyfree-lazy-server-del", "yes"]);
    big(&mut p, "b");
    p.same(&["SET", "b", "x"]);
    p.same(&["SET", "b", "y"]); // a small old value is freed inline
    expect(&mut p, 1, "an overwrite under lazyfree-lazy-server-del");
    p.same(&["CONFIG", "SET", "lazyfree-lazy-server-del", "no"]);
    // Expiry on access, setting off then on.
    big(&mut p, "c");
    p.same(&["PEXPIRE", "c", "1"]);
    std::thread::sleep(Duration::from_millis(20));
    p.same(&["EXISTS", "c"]);
    expect(&mut p, 1, "an expiry without lazyfree-lazy-expire");
    p.same(&["CONFIG", "SET", "lazyfree-lazy-expire", "yes"]);
    big(&mut p, "d");
    p.same(&["PEXPIRE", "d", "1"]);
    std::thread::sleep(Duration::from_millis(20));
    p.same(&["EXISTS", "d"]);
    expect(&mut p, 2, "an expiry on access under lazyfree-lazy-expire");
    // Expiry by the active cycle: nobody touches the key.
    big(&mut p, "e");
    p.same(&["PEXPIRE", "e", "1"]);
    expect(&mut p, 3, "an active expiry under lazyfree-lazy-expire");
    // A TTL in the past deletes at once, under the same setting.
    big(&mut p, "f");
    p.same(&["EXPIRE", "f", "-1"]);
    expect(&mut p, 4, "EXPIRE in the past under lazyfree-lazy-expire");
    // RENAME's overwritten target is a server-side deletion.
    big(&mut p, "g");
    p.same(&["SET", "h", "x"]);
    p.same(&["RENAME", "h", "g"]);
    expect(&mut p, 4, "RENAME without lazyfree-lazy-server-del");
    p.same(&["CONFIG", "SET", "lazyfree-lazy-server-del", "yes"]);
    p.same(&["DEL", "g"]); // a string now: small, freed inline
    big(&mut p, "g");
    p.same(&["SET", "h", "x"]);
    p.same(&["RENAME", "h", "g"]);
    expect(&mut p, 5, "RENAME under lazyfree-lazy-server-del");
    p.same(&["CONFIG", "SET", "lazyfree-lazy-server-del", "no"]);
    p.same(&["DBSIZE"]);
    p.same(&["CONFIG", "SET", "lazyfree-lazy-expire", "no"]);
    // Eviction under lazyfree-lazy-eviction: a limit of one byte evicts
    // everything; only the big set is freed in the background.
    p.same(&["FLUSHALL"]);
    expect(&mut p, 5, "FLUSHALL without lazyfree-lazy-user-flush");
    big(&mut p, "ev");
    p.same(&["SET", "small", "x"]);
    p.same(&[
        "CONFIG",
        "SET",
        "lazyfree-lazy-eviction",
        "yes",
        "maxmemory-policy",
        "allkeys-random",
        "maxmemory",
        "1",
    ]);
    p.same(&["DBSIZE"]);
    expect(&mut p, 6, "eviction under lazyfree-lazy-eviction");
    p.same(&[
        "CONFIG",
        "SET",
        "maxmemory",
        "0",
        "lazyfree-lazy-eviction",
        "no",
        "maxmemory-policy",
        "noeviction",
    ]);
    p.same(&["CONFIG", "RESETSTAT"]);
    expect(&mut p, 0, "CONFIG RESETSTAT");
    p.check();
}
