//! Abuse over real TCP: while one kind of misbehaving client presses on the
//! server, a well-behaved client runs a PING loop; its p99 latency is
//! printed (run with `--nocapture` to see it) and must stay low, and the
//! server's resident memory must stay bounded.
//!
//! Bounds are generous (CI machines are slow and shared); what they catch is
//! a server that stalls (seconds, not milliseconds) or buffers without limit
//! (hundreds of megabytes).

use cinnabar_tests::{Conn, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A PING loop is slow if its p99 exceeds this.
const P99_MAX: Duration = Duration::from_millis(100);

/// Resident memory of a process, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit; returns it.
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur as u64
}

/// Latency figures of a PING loop.
struct Latency {
    n: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} PINGs: p50 {:?} p99 {:?} max {:?}",
            self.n, self.p50, self.p99, self.max
        )
    }
}

/// Runs PINGs on a fresh connection until `stop` is set (at least `min`).
fn ping_loop(port: u16, stop: Arc<AtomicBool>, min: usize) -> thread::JoinHandle<Latency> {
    thread::spawn(move || {
        let mut c = Conn::connect(port);
        let mut lat = Vec::new();
        while !stop.load(Ordering::Relaxed) || lat.len() < min {
            let t = Instant::now();
            let r = c.cmd_str(&["PING"]);
            lat.push(t.elapsed());
            assert_eq!(r, b"+PONG\r\n", "the PING client must always be served");
            thread::sleep(Duration::from_millis(1));
        }
        lat.sort();
        let at = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
        Latency {
            n: lat.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: *lat.last().unwrap_or(&Duration::ZERO),
        }
    })
}

fn report(name: &str, lat: &Latency, rss_before: u64, rss_peak: u64) {
    println!(
        "[abuse] {name}: {lat}; server RSS {} MB before, {} MB peak",
        rss_before >> 20,
        rss_peak >> 20
    );
    assert!(lat.p99 < P99_MAX, "{name}: PING p99 {:?} too slow", lat.p99);
}

fn info_field(c: &mut Conn, section: &str, field: &str) -> String {
    let r = String::from_utf8_lossy(&c.cmd_str(&["INFO", section])).into_owned();
    r.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or("")
        .trim()
        .to_string()
}

#[test]
fn many_idle_connections() {
    let fds = raise_fd_limit();
    // Leave room for the test's other descriptors.
    let want = 10_000usize.min(fds.saturating_sub(200) as usize);
    let s = Server::cinnabar(&["--maxclients", "20000"]);
    let rss_before = rss_bytes(s.pid());
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = ping_loop(s.port, stop.clone(), 200);
    let t = Instant::now();
    let mut idle = Vec::with_capacity(want);
    for _ in 0..want {
        match TcpStream::connect(("127.0.0.1", s.port)) {
            Ok(c) => idle.push(c),
            Err(e) => panic!("connection {} failed: {e}", idle.len()),
        }
    }
    let opened_in = t.elapsed();
    // Let the server register them all, then measure with all of them open.
    let mut admin = s.connect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut connected = 0;
    while Instant::now() < deadline {
        connected = info_field(&mut admin, "clients", "connected_clients")
            .parse::<usize>()
            .unwrap_or(0);
        if connected >= want {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        connected >= want,
        "server sees {connected} of {want} clients"
    );
    thread::sleep(Duration::from_millis(500));
    let rss_peak = rss_bytes(s.pid());
    stop.store(true, Ordering::Relaxed);
    let lat = pinger.join().expect("ping loop");
    println!(
        "[abuse] {want} idle connections opened in {opened_in:?} (fd limit {fds}); {} bytes RSS per connection",
        rss_peak.saturating_sub(rss_before) / want.max(1) as u64
    );
    report("idle connections", &lat, rss_before, rss_peak);
    // Bounded: well under 64 KB per idle connection.
    assert!(
        rss_peak.saturating_sub(rss_before) < want as u64 * 64 * 1024,
        "idle connections cost too much memory"
    );
    // Closing them all leaves the admin connection alone.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if info_field(&mut admin, "clients", "connected_clients") == "1" {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(info_field(&mut admin, "clients", "connected_clients"), "1");
}

#[test]
fn connections_beyond_maxclients() {
    let s = Server::cinnabar(&["--maxclients", "50"]);
    let rss_before = rss_bytes(s.pid());
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = ping_loop(s.port, stop.clone(), 200);
    thread::sleep(Duration::from_millis(50));
    // 48 more fit (the PING client and this admin take two); the rest are
    // told and closed, as Redis does.
    let mut admin = s.connect();
    let mut kept = Vec::new();
    let mut refused = 0;
    let t = Instant::now();
    for _ in 0..500 {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("TCP accept still works");
        c.set_read_timeout(Some(Duration::from_millis(300))).ok();
        let _ = c.write_all(b"PING\r\n");
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).unwrap_or(0);
        let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
        if reply == "+PONG\r\n" {
            kept.push(c);
        } else {
            assert_eq!(reply, "-ERR max number of clients reached\r\n");
            let mut rest = Vec::new();
            assert_eq!(c.read_to_end(&mut rest).unwrap_or(1), 0, "then closed");
            refused += 1;
        }
    }
    let rss_peak = rss_bytes(s.pid());
    stop.store(true, Ordering::Relaxed);
    let lat = pinger.join().expect("ping loop");
    println!(
        "[abuse] maxclients 50: {} kept, {refused} refused in {:?}",
        kept.len(),
        t.elapsed()
    );
    assert_eq!(kept.len(), 48);
    assert_eq!(refused, 452);
    let rejected = info_field(&mut admin, "stats", "rejected_connections");
    assert_eq!(rejected, "452");
    report("beyond maxclients", &lat, rss_before, rss_peak);
    // A freed slot is usable again.
    drop(kept.pop());
    thread::sleep(Duration::from_millis(100));
    assert_eq!(Conn::connect(s.port).cmd_str(&["PING"]), b"+PONG\r\n");
}

#[test]
fn subscriber_that_never_reads() {
    let s = Server::cinnabar(&["--client-output-buffer-limit", "pubsub 4mb 1mb 1"]);
    let rss_before = rss_bytes(s.pid());
    // A subscriber with a small receive buffer that never reads.
    let mut sub = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    sub.write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nnews\r\n")
        .expect("subscribe");
    let mut publisher = s.connect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while publisher.cmd_str(&["PUBSUB", "NUMSUB", "news"]) != b"*2\r\n$4\r\nnews\r\n:1\r\n" {
        assert!(Instant::now() < deadline, "subscription never registered");
        thread::sleep(Duration::from_millis(10));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = ping_loop(s.port, stop.clone(), 200);
    let msg = "x".repeat(16 * 1024);
    let mut published = 0u64;
    let mut rss_peak = rss_before;
    let t = Instant::now();
    // Publish until the server drops the subscriber (PUBLISH returns 0).
    loop {
        let r = publisher.cmd_str(&["PUBLISH", "news", &msg]);
        published += msg.len() as u64;
        if r == b":0\r\n" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the subscriber was never dropped"
        );
        if published % (4 << 20) < msg.len() as u64 {
            rss_peak = rss_peak.max(rss_bytes(s.pid()));
        }
    }
    rss_peak = rss_peak.max(rss_bytes(s.pid()));
    stop.store(true, Ordering::Relaxed);
    let lat = pinger.join().expect("ping loop");
    println!(
        "[abuse] non-reading subscriber dropped after {} MB published in {:?}",
        published >> 20,
        t.elapsed()
    );
    report("subscriber that never reads", &lat, rss_before, rss_peak);
    assert!(
        rss_peak < rss_before + (64 << 20),
        "the server buffered too much for a non-reading subscriber"
    );
    // Its connection is closed once the kernel buffers drain.
    sub.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut sink = vec![0u8; 1 << 20];
    let closed = loop {
        match sub.read(&mut sink) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    assert!(closed, "the subscriber's connection is closed");
}

#[test]
fn huge_bulk_sent_slowly() {
    // Redis's default proto-max-bulk-len (512mb) refuses a 1 GB bulk at once.
    let s = Server::cinnabar(&[]);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1073741824\r\n")
        .expect("write header");
    let mut out = Vec::new();
    c.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let _ = c.read_to_end(&mut out);
    assert_eq!(out, b"-ERR Protocol error: invalid bulk length\r\n");
    drop(s);

    // Allowed by configuration: the bulk trickles in; memory follows what
    // has arrived, not what was announced, and others are served meanwhile.
    let s = Server::cinnabar(&[
        "--proto-max-bulk-len",
        "2gb",
        "--client-query-buffer-limit",
        "2gb",
    ]);
    let rss_before = rss_bytes(s.pid());
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = ping_loop(s.port, stop.clone(), 200);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1073741824\r\n")
        .expect("write header");
    let chunk = vec![b'a'; 256 * 1024];
    let mut sent = 0u64;
    let mut rss_peak = rss_before;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        c.write_all(&chunk).expect("the server keeps reading");
        sent += chunk.len() as u64;
        rss_peak = rss_peak.max(rss_bytes(s.pid()));
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let lat = pinger.join().expect("ping loop");
    println!(
        "[abuse] 1 GB bulk: {} MB sent slowly in {:?}",
        sent >> 20,
        t.elapsed()
    );
    report("huge bulk sent slowly", &lat, rss_before, rss_peak);
    assert!(
        rss_peak < rss_before + 3 * sent + (64 << 20),
        "memory must follow the bytes received ({} MB), not the 1 GB announced",
        sent >> 20
    );
    // Nothing was stored: the command never completed.
    drop(c);
    assert_eq!(Conn::connect(s.port).cmd_str(&["EXISTS", "k"]), b":0\r\n");
}

#[test]
fn flood_of_auth_failures() {
    let s = Server::cinnabar(&["--requirepass", "secret"]);
    let rss_before = rss_bytes(s.pid());
    let stop = Arc::new(AtomicBool::new(false));
    // The PING client authenticates first.
    let port = s.port;
    let pinger = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut c = Conn::connect(port);
            assert_eq!(c.cmd_str(&["AUTH", "secret"]), b"+OK\r\n");
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) || lat.len() < 200 {
                let t = Instant::now();
                assert_eq!(c.cmd_str(&["PING"]), b"+PONG\r\n");
                lat.push(t.elapsed());
                thread::sleep(Duration::from_millis(1));
            }
            lat.sort();
            let at = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
            Latency {
                n: lat.len(),
                p50: at(0.5),
                p99: at(0.99),
                max: *lat.last().unwrap_or(&Duration::ZERO),
            }
        })
    };
    // Four attackers, each pipelining AUTH attempts with changing
    // usernames (so the ACL LOG cannot just merge them).
    let attackers: Vec<_> = (0..4)
        .map(|a| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut c = Conn::connect(port);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut batch = Vec::new();
                    for i in 0..100 {
                        let user = format!("u{a}-{}", n + i);
                        batch.extend_from_slice(&cinnabar_tests::encode(&[
                            b"AUTH",
                            user.as_bytes(),
                            b"wrong",
                        ]));
                    }
                    c.send_raw(&batch);
                    for _ in 0..100 {
                        let r = c.read_reply().expect("reply");
                        assert!(
                            r.starts_with(b"-WRONGPASS"),
                            "{:?}",
                            String::from_utf8_lossy(&r)
                        );
                    }
                    n += 100;
                }
                n
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(3));
    let rss_peak = rss_bytes(s.pid());
    stop.store(true, Ordering::Relaxed);
    let attempts: u64 = attackers
        .into_iter()
        .map(|h| h.join().expect("attacker"))
        .sum();
    let lat = pinger.join().expect("ping loop");
    println!("[abuse] {attempts} failed AUTHs in 3 s");
    report("flood of AUTH failures", &lat, rss_before, rss_peak);
    assert!(
        attempts > 10_000,
        "the flood was too small to mean anything"
    );
    // The ACL LOG is bounded by acllog-max-len (128).
    let mut admin = s.connect();
    assert_eq!(admin.cmd_str(&["AUTH", "secret"]), b"+OK\r\n");
    let log = admin.cmd_str(&["ACL", "LOG", "1000"]);
    assert!(
        log.starts_with(b"*128\r\n"),
        "{}",
        String::from_utf8_lossy(&log[..20.min(log.len())])
    );
    assert!(
        rss_peak < rss_before + (64 << 20),
        "memory grew with failed AUTHs"
    );
}

// ---- Client limits and controls, against genuine Redis 7.0 ----

fn both(args: &[&str], check: impl Fn(&Server) -> Vec<String>) {
    let redis = Server::redis(args);
    let ours = Server::cinnabar(args);
    assert_eq!(check(&redis), check(&ours), "left: redis, right: cinnabar");
}

fn timed(c: &mut Conn, args: &[&str]) -> (String, Duration) {
    let t = Instant::now();
    let r = c.cmd_str(args);
    (String::from_utf8_lossy(&r).into_owned(), t.elapsed())
}

#[test]
fn client_pause_unpause_and_no_evict() {
    both(&[], |s| {
        let mut a = s.connect();
        let mut b = s.connect();
        let mut out = vec![];
        for args in [
            &["CLIENT", "PAUSE"][..],
            &["CLIENT", "PAUSE", "abc"],
            &["CLIENT", "PAUSE", "-1"],
            &["CLIENT", "PAUSE", "10", "foo"],
            &["CLIENT", "PAUSE", "10", "WRITE", "x"],
            &["CLIENT", "NO-EVICT"],
            &["CLIENT", "NO-EVICT", "maybe"],
            &["CLIENT", "NO-EVICT", "on"],
            &["CLIENT", "NO-EVICT", "OFF"],
            &["CLIENT", "UNPAUSE", "x"],
            &["CLIENT", "UNPAUSE"],
        ] {
            out.push(String::from_utf8_lossy(&a.cmd_str(args)).into_owned());
        }
        // WRITE: reads go on, writes wait for the end of the pause.
        out.push(
            String::from_utf8_lossy(&a.cmd_str(&["CLIENT", "PAUSE", "400", "WRITE"])).into_owned(),
        );
        let (r, t) = timed(&mut b, &["GET", "k"]);
        out.push(format!("GET {r} fast={}", t < Duration::from_millis(200)));
        let (r, t) = timed(&mut b, &["SET", "k", "v"]);
        out.push(format!(
            "SET {r} waited={}",
            t >= Duration::from_millis(200)
        ));
        // UNPAUSE releases waiting writers at once.
        out.push(
            String::from_utf8_lossy(&a.cmd_str(&["CLIENT", "PAUSE", "5000", "WRITE"])).into_owned(),
        );
        b.send(&[b"INCR", b"n"]);
        thread::sleep(Duration::from_millis(100));
        let (r, _) = timed(&mut a, &["CLIENT", "UNPAUSE"]);
        out.push(r);
        let t = Instant::now();
        let r = b.read_reply().unwrap_or_default();
        out.push(format!(
            "INCR {} soon={}",
            String::from_utf8_lossy(&r),
            t.elapsed() < Duration::from_millis(1000)
        ));
        // ALL: even CLIENT UNPAUSE waits.
        out.push(
            String::from_utf8_lossy(&a.cmd_str(&["CLIENT", "PAUSE", "400", "ALL"])).into_owned(),
        );
        let (r, t) = timed(&mut b, &["CLIENT", "UNPAUSE"]);
        out.push(format!(
            "UNPAUSE {r} waited={}",
            t >= Duration::from_millis(200)
        ));
        out
    });
}

#[test]
fn client_kill_filters() {
    both(&[], |s| {
        let mut admin = s.connect();
        let mut out = vec![];
        admin.cmd_str(&["ACL", "SETUSER", "bob", "on", "nopass", "+@all", "~*", "&*"]);
        let mut bob = s.connect();
        bob.cmd_str(&["AUTH", "bob", "x"]);
        let mut sub = s.connect();
        sub.send(&[b"SUBSCRIBE", b"ch"]);
        sub.read_reply();
        let _plain = s.connect();
        for args in [
            &["CLIENT", "KILL", "USER", "nosuch"][..],
            &["CLIENT", "KILL", "TYPE", "nosuch"],
            &["CLIENT", "KILL", "ID", "0"],
            &["CLIENT", "KILL", "ID"],
            &["CLIENT", "KILL", "SKIPME", "maybe"],
            &["CLIENT", "KILL", "ADDR", "1.2.3.4:5"],
            &["CLIENT", "KILL", "1.2.3.4:5"],
            &["CLIENT", "KILL", "LADDR", "1.2.3.4:5"],
            &["CLIENT", "KILL", "USER", "bob"],
            &["CLIENT", "KILL", "TYPE", "pubsub"],
            &["CLIENT", "KILL", "TYPE", "master"],
            &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
        ] {
            out.push(String::from_utf8_lossy(&admin.cmd_str(args)).into_owned());
        }
        thread::sleep(Duration::from_millis(100));
        out.push(format!("bob closed {}", bob.is_closed()));
        out.push(format!("sub closed {}", sub.is_closed()));
        out.push(
            String::from_utf8_lossy(
                &admin.cmd_str(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no"]),
            )
            .into_owned(),
        );
        out
    });
}

#[test]
fn idle_timeout_closes_clients_but_not_subscribers() {
    both(&["--timeout", "1"], |s| {
        let mut idle = s.connect();
        let mut sub = s.connect();
        sub.send(&[b"SUBSCRIBE", b"ch"]);
        sub.read_reply();
        let mut busy = s.connect();
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(3500) {
            busy.cmd_str(&["PING"]);
            thread::sleep(Duration::from_millis(200));
        }
        // The busy client first: is_closed() waits on open connections.
        vec![
            String::from_utf8_lossy(&busy.cmd_str(&["PING"])).into_owned(),
            String::from_utf8_lossy(&busy.cmd_str(&["CONFIG", "GET", "timeout"])).into_owned(),
            // A subscriber is exempt: still there, answering PING.
            String::from_utf8_lossy(&sub.cmd_str(&["PING"])).into_owned(),
            format!("idle closed {}", idle.is_closed()),
        ]
    });
}

#[test]
fn rename_command_in_config() {
    let args = [
        "--rename-command",
        "CONFIG",
        "",
        "--rename-command",
        "get",
        "fetch",
    ];
    both(&args, |s| {
        let mut c = s.connect();
        let mut out = vec![];
        for a in [
            &["SET", "k", "v"][..],
            &["FETCH", "k"],
            &["fetch", "k"],
            &["GET", "k"],
            &["CONFIG", "GET", "port"],
            &["EVAL", "return redis.call('fetch', 'k')", "0"],
            &["MULTI"],
            &["FETCH", "k"],
            &["EXEC"],
        ] {
            out.push(String::from_utf8_lossy(&c.cmd_str(a)).into_owned());
        }
        out
    });
    // Renaming a command that does not exist stops the server.
    let out = std::process::Command::new(cinnabar_tests::cinnabar_bin())
        .args(["--port", "0", "--rename-command", "nosuchcmd", "x"])
        .output()
        .expect("run cinnabar-server");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("No such command in rename-command"),
        "{text}"
    );
}
