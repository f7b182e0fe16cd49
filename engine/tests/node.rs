//! Drives `Node` directly, with no sockets and a virtual clock: the sans-IO
//! contract in action.

use cinnabar_engine::{Config, ConnId, Input, Node, Output, Time};

const T0: u64 = 1_700_000_000_000_000; // a fixed "now" in unix microseconds

struct Harness {
    node: Node,
    now: u64,
}

impl Harness {
    fn new(config: Config, seed: u64) -> Harness {
        let mut node = Node::new(config, seed);
        node.start(Time(T0));
        Harness { node, now: T0 }
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
    }

    /// Feeds bytes and returns everything the node wants to do.
    fn feed(&mut self, conn: u64, data: &[u8]) -> Vec<Output> {
        self.node.handle(
            Time(self.now),
            Input::Received {
                conn: ConnId(conn),
                data,
            },
        );
        self.drain()
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.node.poll_output()).collect()
    }

    /// Sends an inline command and returns the bytes sent back.
    fn cmd(&mut self, conn: u64, line: &str) -> String {
        let out = self.feed(conn, format!("{line}\r\n").as_bytes());
        sent(&out)
    }

    fn advance_ms(&mut self, ms: u64) {
        self.now += ms * 1000;
    }

    fn tick(&mut self) {
        self.node.handle(Time(self.now), Input::Tick);
        self.drain();
    }
}

fn sent(out: &[Output]) -> String {
    let mut s = Vec::new();
    for o in out {
        if let Output::Send { data, .. } = o {
            s.extend_from_slice(data);
        }
    }
    String::from_utf8_lossy(&s).into_owned()
}

#[test]
fn any_split_of_the_input_gives_the_same_replies() {
    let input: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nGET k\r\n*2\r\n$6\r\nAPPEND\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
    let mut whole = Harness::new(Config::default(), 1);
    whole.connect(1);
    let expected = sent(&whole.feed(1, input));
    assert_eq!(
        expected,
        "+OK\r\n$5\r\nhello\r\n-ERR wrong number of arguments for 'append' command\r\n+PONG\r\n"
    );
    for a in 0..input.len() {
        for b in a..input.len() {
            let mut h = Harness::new(Config::default(), 1);
            h.connect(1);
            let mut got = sent(&h.feed(1, &input[..a]));
            got += &sent(&h.feed(1, &input[a..b]));
            got += &sent(&h.feed(1, &input[b..]));
            assert_eq!(got, expected, "split at {a},{b}");
        }
    }
}

#[test]
fn pipelined_replies_of_one_read_are_one_send() {
    let mut h = Harness::new(Config::default(), 1);
    h.connect(1);
    let out = h.feed(1, &b"PING\r\n".repeat(100));
    assert_eq!(out.len(), 1, "one batched send");
    assert_eq!(sent(&out), "+PONG\r\n".repeat(100));
}

#[test]
fn same_seed_same_trace() {
    let run = |seed: u64| {
        let mut h = Harness::new(Config::default(), seed);
        h.connect(1);
        let mut trace = String::new();
        for i in 0..200 {
            trace += &h.cmd(1, &format!("SET key:{i} {i} PX {}", 1000 + i * 7));
        }
        for _ in 0..20 {
            trace += &h.cmd(1, "RANDOMKEY");
        }
        trace += &h.cmd(1, "SCAN 0 COUNT 50");
        trace += &h.cmd(1, "KEYS key:1*");
        h.advance_ms(1100);
        h.tick();
        trace += &h.cmd(1, "DBSIZE");
        trace += &h.cmd(1, "INFO keyspace");
        trace
    };
    assert_eq!(run(42), run(42));
    assert_ne!(
        run(42),
        run(43),
        "the seed drives random choices and orders"
    );
}

#[test]
fn time_comes_only_from_inputs() {
    let mut h = Harness::new(Config::default(), 7);
    h.connect(1);
    assert_eq!(h.cmd(1, "SET k v PX 100"), "+OK\r\n");
    h.advance_ms(50);
    assert_eq!(h.cmd(1, "GET k"), "$1\r\nv\r\n");
    assert_eq!(h.cmd(1, "PTTL k"), ":50\r\n");
    h.advance_ms(50);
    assert_eq!(h.cmd(1, "GET k"), "$-1\r\n");
    // EXPIREAT is absolute wall time: the input clock, not the host's.
    let at = T0 / 1_000_000 + 3600;
    assert_eq!(h.cmd(1, "SET j v"), "+OK\r\n");
    assert_eq!(h.cmd(1, &format!("EXPIREAT j {at}")), ":1\r\n");
    assert_eq!(h.cmd(1, "EXPIRETIME j"), format!(":{at}\r\n"));
    let t = h.cmd(1, "TIME");
    assert!(t.contains(&format!("{}\r\n", h.now / 1_000_000)), "{t}");
}

#[test]
fn active_expiry_runs_on_ticks_only() {
    let config = Config {
        enable_debug_command: "yes".into(),
        ..Config::default()
    };
    let mut h = Harness::new(config, 3);
    h.connect(1);
    for i in 0..500 {
        h.cmd(1, &format!("SET k{i} v PX 10"));
    }
    h.cmd(1, "SET keep v");
    h.advance_ms(20);
    // No tick yet: nothing was deleted (DBSIZE does not expire keys).
    assert_eq!(h.cmd(1, "DBSIZE"), ":501\r\n");
    for _ in 0..50 {
        h.advance_ms(100);
        h.tick();
    }
    assert_eq!(h.cmd(1, "DBSIZE"), ":1\r\n");
    let stats = h.cmd(1, "INFO stats");
    assert!(stats.contains("expired_keys:500\r\n"), "{stats}");

    // With active expiry off, only access expires keys.
    assert_eq!(h.cmd(1, "DEBUG SET-ACTIVE-EXPIRE 0"), "+OK\r\n");
    for i in 0..10 {
        h.cmd(1, &format!("SET x{i} v PX 10"));
    }
    for _ in 0..10 {
        h.advance_ms(100);
        h.tick();
    }
    assert_eq!(h.cmd(1, "DBSIZE"), ":11\r\n");
}

#[test]
fn poll_timeout_follows_hz() {
    let mut h = Harness::new(Config::default(), 1);
    assert_eq!(h.node.poll_timeout(), Some(Time(T0 + 100_000)));
    h.advance_ms(100);
    h.tick();
    assert_eq!(h.node.poll_timeout(), Some(Time(h.now + 100_000)));
}

#[test]
fn quit_and_protocol_errors_close_after_the_reply() {
    let mut h = Harness::new(Config::default(), 1);
    h.connect(1);
    let out = h.feed(1, b"QUIT\r\nPING\r\n");
    assert_eq!(
        out,
        vec![
            Output::Send {
                conn: ConnId(1),
                data: "+OK\r\n".into()
            },
            Output::Close { conn: ConnId(1) }
        ]
    );
    h.connect(2);
    let out = h.feed(2, b"PING\r\n*1\r\n$-5\r\nPING\r\n");
    assert_eq!(
        sent(&out),
        "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    );
    assert_eq!(out.last(), Some(&Output::Close { conn: ConnId(2) }));
    // Nothing more is read from a closed connection.
    assert!(h.feed(2, b"PING\r\n").is_empty());
}

#[test]
fn maxclients_rejects_with_redis_error() {
    let config = Config {
        maxclients: 2,
        ..Config::default()
    };
    let mut h = Harness::new(config, 1);
    h.connect(1);
    h.connect(2);
    assert!(h.drain().is_empty());
    h.connect(3);
    let out = h.drain();
    assert_eq!(sent(&out), "-ERR max number of clients reached\r\n");
    assert_eq!(out.last(), Some(&Output::Close { conn: ConnId(3) }));
}

#[test]
fn client_kill_closes_the_other_connection() {
    let mut h = Harness::new(Config::default(), 1);
    h.connect(1);
    h.connect(2);
    let id2 = h.cmd(2, "CLIENT ID");
    let id2 = id2.trim_start_matches(':').trim();
    let out = h.feed(1, format!("CLIENT KILL ID {id2}\r\n").as_bytes());
    assert!(out.contains(&Output::Close { conn: ConnId(2) }), "{out:?}");
    assert_eq!(sent(&out), ":1\r\n");
}

#[test]
fn shutdown_and_debug_sleep_are_outputs() {
    let mut h = Harness::new(Config::default(), 1);
    h.connect(1);
    let out = h.feed(1, b"DEBUG SLEEP 0.5\r\n");
    assert_eq!(sent(&out), "-ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.\r\n");
    let config = Config {
        enable_debug_command: "local".into(),
        ..Config::default()
    };
    let mut h = Harness::new(config, 1);
    h.connect(1);
    let out = h.feed(1, b"DEBUG SLEEP 0.5\r\nSHUTDOWN NOSAVE\r\n");
    assert!(out.contains(&Output::Sleep { micros: 500_000 }), "{out:?}");
    assert!(out.contains(&Output::Shutdown), "{out:?}");
}
