//! Client-side caching against genuine Redis 7.0: CLIENT TRACKING in its
//! modes, CLIENT CACHING / GETREDIR / TRACKINGINFO, and the raw
//! invalidation messages tracking clients (RESP3 pushes) and redirect
//! targets (RESP2 `__redis__:invalidate` messages) receive for the same
//! command sequences.

use cinnabar_tests::{show, Conn, Server};

/// Compares two transcripts, showing the first difference in context.
fn assert_same(redis: &[String], ours: &[String], what: &str) {
    if redis == ours {
        return;
    }
    let i = redis
        .iter()
        .zip(ours)
        .position(|(a, b)| a != b)
        .unwrap_or(redis.len().min(ours.len()));
    let from = i.saturating_sub(4);
    panic!(
        "{what}: first difference at line {i}\nredis:\n{}\ncinnabar:\n{}",
        redis[from..redis.len().min(i + 4)].join("\n"),
        ours[from..ours.len().min(i + 4)].join("\n")
    );
}

/// Runs `scenario` on both servers and compares what it recorded.
fn both(what: &str, scenario: impl Fn(&Server) -> Vec<String>) {
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    assert_same(&scenario(&redis), &scenario(&ours), what);
}

/// Everything `c` has received so far: it sends PING and records every
/// reply up to and including PING's (pushes queued before it come first).
fn pending(c: &mut Conn) -> String {
    c.send(&[b"PING"]);
    let mut out = String::new();
    loop {
        let r = show(&c.read_reply().expect("a reply"));
        let done = r == "+PONG\\r\\n" || r.starts_with("*2\\r\\n$4\\r\\npong");
        out.push_str(&r);
        out.push('|');
        if done {
            return out;
        }
    }
}

/// Runs a command and records its reply.
fn run(c: &mut Conn, args: &[&str]) -> String {
    format!("{:?} -> {}", args, show(&c.cmd_str(args)))
}

/// [`run`] with `<id>` in the arguments standing for client `id`, and the
/// id masked in the reply (ids differ between the servers: Redis counts
/// its own internal connections).
fn run_id(c: &mut Conn, args: &[&str], id: &str) -> String {
    let real: Vec<&str> = args
        .iter()
        .map(|a| if *a == "<id>" { id } else { a })
        .collect();
    let reply = show(&c.cmd_str(&real));
    format!("{:?} -> {}", args, mask(&reply, id))
}

/// Replaces integer replies equal to `id` with `<id>`.
fn mask(s: &str, id: &str) -> String {
    s.replace(&format!(":{id}\\r\\n"), ":<id>\\r\\n")
}

fn client_id(c: &mut Conn) -> String {
    let r = c.cmd_str(&["CLIENT", "ID"]);
    String::from_utf8_lossy(&r[1..r.len() - 2]).into_owned()
}

#[test]
fn default_mode_resp3_invalidates_keys_read() {
    both("default mode", |s| {
        let mut t = s.connect();
        let mut w = s.connect();
        t.cmd_str(&["HELLO", "3"]);
        let mut out = vec![run(&mut t, &["CLIENT", "TRACKING", "ON"])];
        out.push(run(&mut w, &["SET", "a", "1"]));
        out.push(run(&mut w, &["SET", "b", "1"]));
        out.push(run(&mut w, &["HSET", "h", "f", "v"]));
        out.push(run(&mut t, &["GET", "a"]));
        out.push(run(&mut t, &["MGET", "b", "nothere"]));
        out.push(run(&mut t, &["HGETALL", "h"]));
        out.push(run(&mut t, &["EXISTS", "x"]));
        out.push(pending(&mut t));
        out.push(run(&mut w, &["SET", "a", "2"]));
        out.push(pending(&mut t));
        // Reported once: a is not tracked until read again.
        out.push(run(&mut w, &["SET", "a", "3"]));
        out.push(pending(&mut t));
        out.push(run(&mut w, &["DEL", "b", "nothere"]));
        out.push(run(&mut w, &["HDEL", "h", "f"]));
        out.push(run(&mut w, &["SET", "x", "1"]));
        out.push(pending(&mut t));
        // Writes of keys never read send nothing.
        out.push(run(&mut w, &["SET", "zz", "1"]));
        out.push(pending(&mut t));
        // Its own writes: after the reply.
        out.push(run(&mut t, &["GET", "a"]));
        out.push(run(&mut t, &["SET", "a", "mine"]));
        out.push(pending(&mut t));
        // Inside MULTI the messages follow EXEC's reply.
        out.push(run(&mut t, &["GET", "a"]));
        out.push(run(&mut t, &["GET", "b"]));
        out.push(run(&mut t, &["MULTI"]));
        out.push(run(&mut t, &["SET", "a", "m"]));
        out.push(run(&mut t, &["SET", "b", "m"]));
        out.push(run(&mut t, &["EXEC"]));
        out.push(pending(&mut t));
        // Expiry invalidates too.
        out.push(run(&mut t, &["GET", "a"]));
        out.push(run(&mut w, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]));
        out.push(run(&mut w, &["PEXPIRE", "a", "1"]));
        out.push(pending(&mut t));
        out.push(run(&mut t, &["GET", "a"]));
        std::thread::sleep(std::time::Duration::from_millis(20));
        out.push(run(&mut w, &["GET", "a"]));
        out.push(pending(&mut t));
        // FLUSHALL: a null.
        out.push(run(&mut w, &["FLUSHALL"]));
        out.push(pending(&mut t));
        out.push(run(&mut w, &["DEBUG", "SET-ACTIVE-EXPIRE", "1"]));
        out
    });
}

#[test]
fn noloop_optin_optout() {
    both("noloop optin optout", |s| {
        let mut t = s.connect();
        let mut w = s.connect();
        t.cmd_str(&["HELLO", "3"]);
        let mut out = vec![run(&mut t, &["CLIENT", "TRACKING", "ON", "NOLOOP"])];
        out.push(run(&mut t, &["GET", "a"]));
        out.push(run(&mut t, &["SET", "a", "1"]));
        out.push(pending(&mut t));
        out.push(run(&mut t, &["GET", "a"]));
        out.push(run(&mut w, &["SET", "a", "2"]));
        out.push(pending(&mut t));
        out.push(run(&mut t, &["CLIENT", "TRACKING", "OFF"]));
        out.push(run(&mut t, &["CLIENT", "TRACKING", "ON", "OPTIN"]));
        out.push(run(&mut t, &["GET", "a"]));
        out.push(run(&mut t, &["CLIENT", "CACHING", "YES"]));
        out.push(run(&mut t, &["CLIENT", "TRACKINGINFO"]));
        out.push(run(&mut t, &["GET", "b"]));
        out.push(run(&mut t, &["CLIENT", "TRACKINGINFO"]));
        out.push(run(&mut t, &["GET", "c"]));
        out.push(run(&mut w, &["MSET", "a", "1", "b", "1", "c", "1"]));
        out.push(pending(&mut t));
        out.push(run(&mut t, &["CLIENT", "TRACKING", "OFF"]));
        out.push(run(&mut t, &["CLIENT", "TRACKING", "ON", "OPTOUT"]));
        out.push(run(&mut t, &["GET", "a"]));
        out.push(run(&mut t, &["CLIENT", "CACHING", "NO"]));
        out.push(run(&mut t, &["GET", "b"]));
        out.push(run(&mut t, &["GET", "c"]));
        out.push(run(&mut w, &["MSET", "a", "2", "b", "2", "c", "2"]));
        out.push(pending(&mut t));
        // CACHING survives into MULTI and covers the queued reads.
        out.push(run(&mut t, &["CLIENT", "TRACKING", "OFF"]));
        out.push(run(&mut t, &["CLIENT", "TRACKING", "ON", "OPTIN"]));
        out.push(run(&mut t, &["CLIENT", "CACHING", "YES"]));
        out.push(run(&mut t, &["MULTI"]));
        out.push(run(&mut t, &["GET", "a"]));
        out.push(run(&mut t, &["GET", "b"]));
        out.push(run(&mut t, &["EXEC"]));
        out.push(run(&mut t, &["GET", "c"]));
        out.push(run(&mut w, &["MSET", "a", "3", "b", "3", "c", "3"]));
        out.push(pending(&mut t));
        out
    });
}

#[test]
fn redirect_to_a_resp2_subscriber_and_broken_redirect() {
    both("redirect", |s| {
        let mut t = s.connect();
        let mut r = s.connect();
        let mut w = s.connect();
        let rid = client_id(&mut r);
        let mut out = vec![show(&r.cmd_str(&["SUBSCRIBE", "__redis__:invalidate"]))];
        out.push(run_id(
            &mut t,
            &["CLIENT", "TRACKING", "ON", "REDIRECT", "<id>"],
            &rid,
        ));
        out.push(run_id(&mut t, &["CLIENT", "GETREDIR"], &rid));
        out.push(run(&mut t, &["GET", "k"]));
        out.push(run(&mut t, &["GET", "j"]));
        out.push(run(&mut w, &["SET", "k", "1"]));
        out.push(run(&mut t, &["SET", "j", "1"]));
        out.push(pending(&mut r));
        out.push(run(&mut w, &["FLUSHDB"]));
        out.push(pending(&mut r));
        // A RESP3 tracking client whose redirect target goes away.
        let mut t3 = s.connect();
        t3.cmd_str(&["HELLO", "3"]);
        let mut gone = s.connect();
        let gid = client_id(&mut gone);
        out.push(run_id(
            &mut t3,
            &["CLIENT", "TRACKING", "ON", "REDIRECT", "<id>"],
            &gid,
        ));
        out.push(run(&mut t3, &["GET", "k"]));
        drop(gone);
        s.wait_gone(&gid);
        out.push(run(&mut w, &["SET", "k", "2"]));
        out.push(mask(&pending(&mut t3), &gid));
        out.push(run_id(&mut t3, &["CLIENT", "TRACKINGINFO"], &gid));
        // A RESP2 client without redirection gets nothing (no pushes).
        let mut t2 = s.connect();
        out.push(run(&mut t2, &["CLIENT", "TRACKING", "ON"]));
        out.push(run(&mut t2, &["GET", "k"]));
        out.push(run(&mut w, &["SET", "k", "3"]));
        out.push(pending(&mut t2));
        out
    });
}

#[test]
fn bcast_prefixes() {
    both("bcast", |s| {
        let mut t = s.connect();
        let mut n = s.connect();
        let mut w = s.connect();
        t.cmd_str(&["HELLO", "3"]);
        n.cmd_str(&["HELLO", "3"]);
        let mut out = vec![run(
            &mut t,
            &[
                "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a:", "PREFIX", "b:",
            ],
        )];
        out.push(run(
            &mut n,
            &["CLIENT", "TRACKING", "ON", "BCAST", "NOLOOP"],
        ));
        out.push(run(&mut t, &["CLIENT", "TRACKINGINFO"]));
        out.push(run(&mut n, &["CLIENT", "TRACKINGINFO"]));
        out.push(run(&mut w, &["SET", "a:1", "x"]));
        out.push(pending(&mut t));
        out.push(pending(&mut n));
        out.push(run(
            &mut w,
            &["MSET", "b:2", "x", "c", "y", "a:3", "z", "a:0", "q"],
        ));
        out.push(pending(&mut t));
        out.push(pending(&mut n));
        // NOLOOP: n does not hear about its own writes.
        out.push(run(&mut n, &["MSET", "a:9", "1", "zz", "2"]));
        out.push(pending(&mut t));
        out.push(pending(&mut n));
        out.push(run(&mut w, &["DEL", "a:1", "a:3", "c"]));
        out.push(pending(&mut t));
        out.push(pending(&mut n));
        // Reads are not tracked in BCAST mode.
        out.push(run(&mut t, &["GET", "zz"]));
        out.push(run(&mut w, &["SET", "zz", "3"]));
        out.push(pending(&mut t));
        // Adding a prefix keeps the others.
        out.push(run(
            &mut t,
            &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "c"],
        ));
        out.push(run(&mut t, &["CLIENT", "TRACKINGINFO"]));
        out.push(run(&mut w, &["SET", "c", "1"]));
        out.push(pending(&mut t));
        out.push(run(&mut t, &["CLIENT", "TRACKING", "OFF"]));
        out.push(run(&mut w, &["SET", "a:1", "1"]));
        out.push(pending(&mut t));
        out.push(pending(&mut n));
        out
    });
}

#[test]
fn errors_and_introspection() {
    both("errors", |s| {
        let mut c = s.connect();
        let mut out = Vec::new();
        for args in [
            &["CLIENT", "GETREDIR"][..],
            &["CLIENT", "TRACKINGINFO"],
            &["CLIENT", "CACHING", "YES"],
            &["CLIENT", "TRACKING"],
            &["CLIENT", "TRACKING", "maybe"],
            &["CLIENT", "TRACKING", "ON", "PREFIX", "a"],
            &["CLIENT", "TRACKING", "ON", "BOGUS"],
            &["CLIENT", "TRACKING", "ON", "REDIRECT"],
            &["CLIENT", "TRACKING", "ON", "REDIRECT", "999999"],
            &["CLIENT", "TRACKING", "ON", "REDIRECT", "abc"],
            &["CLIENT", "TRACKING", "ON", "REDIRECT", "0"],
            &["CLIENT", "TRACKING", "ON", "BCAST", "OPTIN"],
            &["CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT"],
            &[
                "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "ab", "PREFIX", "a",
            ],
            &[
                "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "x", "PREFIX", "ab", "PREFIX", "a",
            ],
            &["CLIENT", "TRACKINGINFO"],
            &["CLIENT", "TRACKING", "OFF"],
            &["CLIENT", "TRACKING", "ON", "OPTIN"],
            &["CLIENT", "TRACKING", "ON", "OPTOUT"],
            &["CLIENT", "TRACKING", "ON", "BCAST"],
            &["CLIENT", "CACHING", "NO"],
            &["CLIENT", "CACHING", "maybe"],
            &["CLIENT", "CACHING", "YES"],
            &["CLIENT", "TRACKINGINFO"],
            &["CLIENT", "GETREDIR"],
            &["CLIENT", "TRACKING", "OFF"],
            &[
                "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a", "PREFIX", "b",
            ],
            &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "bc"],
            &[
                "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "c", "PREFIX", "a",
            ],
            &["CLIENT", "TRACKING", "ON"],
            &["CLIENT", "TRACKINGINFO"],
            &["CLIENT", "TRACKING", "OFF"],
            &["CLIENT", "TRACKINGINFO"],
            &["CLIENT", "CACHING", "YES"],
        ] {
            out.push(run(&mut c, args));
            // A reply the error path may add (Redis's overlap quirk).
            if let Some(extra) = c.try_reply(std::time::Duration::from_millis(50)) {
                out.push(format!("extra: {}", show(&extra)));
            }
        }
        c.cmd_str(&["HELLO", "3"]);
        out.push(run(&mut c, &["CLIENT", "TRACKINGINFO"]));
        out.push(run(
            &mut c,
            &["CLIENT", "TRACKING", "ON", "OPTOUT", "NOLOOP"],
        ));
        out.push(run(&mut c, &["CLIENT", "CACHING", "NO"]));
        out.push(run(&mut c, &["CLIENT", "TRACKINGINFO"]));
        out.push(run(&mut c, &["RESET"]));
        out.push(run(&mut c, &["CONFIG", "GET", "tracking-table-max-keys"]));
        out.push(run(&mut c, &["CLIENT", "TRACKINGINFO"]));
        out
    });
}

/// Reads by the tracking client and writes by it and by another client,
/// at random over three keys; after every step the tracking client's
/// pending messages are recorded. Default mode, NOLOOP, BCAST (all keys,
/// or prefix `a` with NOLOOP) and OPTIN.
#[test]
fn random_reads_and_writes_give_the_same_invalidations() {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    const READS: &[&[&str]] = &[
        &["GET", "K"],
        &["MGET", "K", "L"],
        &["HGET", "K", "f"],
        &["LRANGE", "K", "0", "-1"],
        &["EXISTS", "K"],
        &["TYPE", "K"],
        &["STRLEN", "K"],
    ];
    const WRITES: &[&[&str]] = &[
        &["SET", "K", "v"],
        &["DEL", "K", "L"],
        &["LPUSH", "K", "v"],
        &["HSET", "K", "f", "v"],
        &["INCR", "K"],
        &["EXPIRE", "K", "100"],
        &["RENAME", "K", "L"],
        &["MSET", "K", "1", "L", "2"],
        &["APPEND", "K", "x"],
        &["SADD", "K", "v"],
        &["ZADD", "K", "1", "v"],
        &["LPOP", "K"],
        &["FLUSHDB"],
    ];
    let keys = ["a", "b", "c"];
    // (writer: 0 other, 1 the tracking client, 2 a read; template; keys)
    let step = (0..3usize, 0..WRITES.len(), 0..keys.len(), 0..keys.len());
    let cases: u32 = std::env::var("TRACKING_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (proptest::collection::vec(step, 1..20), 0..5usize);
    // Invalidations seen, so the test cannot pass by comparing silences.
    let seen = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&strategy, |(steps, mode)| {
            let play = |s: &Server| -> Vec<String> {
                let mut t = s.connect();
                let mut w = s.connect();
                t.cmd_str(&["HELLO", "3"]);
                let on: &[&str] = match mode {
                    0 => &["CLIENT", "TRACKING", "ON"],
                    1 => &["CLIENT", "TRACKING", "ON", "NOLOOP"],
                    2 => &["CLIENT", "TRACKING", "ON", "BCAST"],
                    3 => &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a", "NOLOOP"],
                    _ => &["CLIENT", "TRACKING", "ON", "OPTIN"],
                };
                let mut out = vec![run(&mut t, on)];
                for &(who, tpl, k, l) in &steps {
                    let template = if who == 2 {
                        READS[tpl % READS.len()]
                    } else {
                        WRITES[tpl]
                    };
                    let args: Vec<&str> = template
                        .iter()
                        .map(|a| match *a {
                            "K" => keys[k],
                            "L" => keys[l],
                            other => other,
                        })
                        .collect();
                    let c = if who == 0 { &mut w } else { &mut t };
                    if mode == 4 && who == 2 && k == 0 {
                        // OPTIN: only reads after CLIENT CACHING yes count.
                        out.push(run(c, &["CLIENT", "CACHING", "YES"]));
                    }
                    out.push(format!("{who} {}", run(c, &args)));
                    out.push(pending(&mut t));
                }
                w.cmd_str(&["FLUSHALL"]);
                out
            };
            let (a, b) = (play(&redis), play(&ours));
            let pushes = a.iter().filter(|l| l.contains("invalidate")).count();
            seen.fetch_add(pushes, std::sync::atomic::Ordering::Relaxed);
            if a == b {
                Ok(())
            } else {
                let i = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(0);
                Err(TestCaseError::fail(format!(
                    "mode {mode} steps {steps:?}\nfirst difference at {i}\nredis:\n{}\ncinnabar:\n{}",
                    a[i.saturating_sub(6)..a.len().min(i + 3)].join("\n"),
                    b[i.saturating_sub(6)..b.len().min(i + 3)].join("\n")
                )))
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = seen.into_inner();
    assert!(
        seen > cases as usize,
        "only {seen} invalidations in {cases} cases"
    );
}

/// The `flags=` and `redir=` fields of a client's CLIENT LIST line, the
/// redirect id masked as `<id>` when it is `target`'s.
fn flags_of(observer: &mut Conn, id: &str, target: &str) -> String {
    let raw = observer.cmd_str(&["CLIENT", "LIST", "ID", id]);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let field = |name: &str| -> String {
        text.split([' ', '\n', '\r'])
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or("<missing>")
            .to_string()
    };
    let redir = field("redir=");
    let redir = if redir == target {
        "<id>".to_string()
    } else {
        redir
    };
    format!("flags={} redir={}", field("flags="), redir)
}

/// CLIENT LIST / CLIENT INFO show tracking as Redis 7.0's
/// `getClientInfoString` does: t (tracking), R (its redirect client is
/// gone), B (BCAST), with the REDIRECT id (0 for none), next to the other
/// flags (O for MONITOR, x in MULTI, P subscribed, N none).
#[test]
fn client_list_shows_tracking_flags() {
    both("client flags", |s| {
        let mut o = s.connect();
        let mut out = vec![];
        let mut plain = s.connect();
        let pid = client_id(&mut plain);
        out.push(flags_of(&mut o, &pid, ""));
        plain.cmd_str(&["CLIENT", "TRACKING", "ON"]);
        out.push(flags_of(&mut o, &pid, ""));
        plain.cmd_str(&["MULTI"]);
        out.push(flags_of(&mut o, &pid, ""));
        plain.cmd_str(&["DISCARD"]);
        plain.cmd_str(&["CLIENT", "TRACKING", "OFF"]);
        out.push(flags_of(&mut o, &pid, ""));
        // BCAST with a prefix, from CLIENT INFO as well.
        let mut b = s.connect();
        let bid = client_id(&mut b);
        b.cmd_str(&["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:"]);
        out.push(flags_of(&mut o, &bid, ""));
        let info = String::from_utf8_lossy(&b.cmd_str(&["CLIENT", "INFO"])).into_owned();
        out.push(
            info.split(' ')
                .filter(|w| w.starts_with("flags=") || w.starts_with("redir="))
                .collect::<Vec<_>>()
                .join(" "),
        );
        // A redirect to a subscriber, then to a client that goes away.
        let mut sub = s.connect();
        let sid = client_id(&mut sub);
        sub.cmd_str(&["SUBSCRIBE", "__redis__:invalidate"]);
        out.push(flags_of(&mut o, &sid, ""));
        let mut t = s.connect();
        let tid = client_id(&mut t);
        t.cmd_str(&["CLIENT", "TRACKING", "ON", "REDIRECT", &sid]);
        out.push(flags_of(&mut o, &tid, &sid));
        let mut gone = s.connect();
        let gid = client_id(&mut gone);
        let mut t2 = s.connect();
        let t2id = client_id(&mut t2);
        t2.cmd_str(&["CLIENT", "TRACKING", "ON", "REDIRECT", &gid, "BCAST"]);
        out.push(flags_of(&mut o, &t2id, &gid));
        drop(gone);
        s.wait_gone(&gid);
        out.push(flags_of(&mut o, &t2id, &gid));
        o.cmd_str(&["SET", "k", "1"]);
        // The broadcast reaches the missing client at the next cycle.
        pending(&mut t2);
        out.push(flags_of(&mut o, &t2id, &gid));
        // MONITOR.
        let mut m = s.connect();
        let mid = client_id(&mut m);
        m.cmd_str(&["MONITOR"]);
        out.push(flags_of(&mut o, &mid, ""));
        out
    });
}
