//! MULTI/EXEC/WATCH with several clients, against genuine Redis 7.0.

use cinnabar_tests::{show, Server};

fn both(check: impl Fn(&Server) -> Vec<String>) {
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    assert_eq!(check(&redis), check(&ours));
}

#[test]
fn watch_sees_other_clients_writes() {
    both(|s| {
        let mut a = s.connect();
        let mut b = s.connect();
        let mut out = vec![];
        for (watch_key, write) in [
            ("k", &["SET", "k", "1"][..]),
            ("k", &["SET", "other", "1"][..]),
        ] {
            out.push(show(&a.cmd_str(&["WATCH", watch_key])));
            out.push(show(&b.cmd_str(write)));
            out.push(show(&a.cmd_str(&["MULTI"])));
            out.push(show(&a.cmd_str(&["INCR", "k"])));
            out.push(show(&a.cmd_str(&["EXEC"])));
        }
        // A write inside another client's transaction counts at its EXEC.
        out.push(show(&a.cmd_str(&["WATCH", "k"])));
        out.push(show(&b.cmd_str(&["MULTI"])));
        out.push(show(&b.cmd_str(&["DEL", "k"])));
        out.push(show(&a.cmd_str(&["MULTI"])));
        out.push(show(&a.cmd_str(&["GET", "k"])));
        out.push(show(&b.cmd_str(&["EXEC"])));
        out.push(show(&a.cmd_str(&["EXEC"])));
        out
    });
}

#[test]
fn blocked_clients_are_served_after_exec() {
    both(|s| {
        let mut a = s.connect();
        let mut b = s.connect();
        let id = a.id();
        a.send(&[b"BLPOP", b"q", b"0"]);
        s.wait_blocked(&id);
        vec![
            show(&b.cmd_str(&["MULTI"])),
            show(&b.cmd_str(&["RPUSH", "q", "x", "y"])),
            show(&b.cmd_str(&["LPOP", "q"])),
            show(&b.cmd_str(&["EXEC"])),
            show(&a.read_reply().unwrap_or_default()),
            show(&b.cmd_str(&["LRANGE", "q", "0", "-1"])),
        ]
    });
}

/// SWAPDB and WATCH, for every state of the watched key in the two
/// databases: missing, live, or expired but not yet reclaimed (active
/// expiry off). Redis 7.0 does not fail a transaction whose key was
/// expired when watched and is still gone after the swap.
#[test]
fn swapdb_touches_watched_keys_by_their_state_in_both_dbs() {
    both(|s| {
        let mut a = s.connect();
        let mut b = s.connect();
        let mut out = vec![];
        let states = ["missing", "live", "expired"];
        for db0 in states {
            for db1 in states {
                b.cmd_str(&["FLUSHALL"]);
                b.cmd_str(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
                for (db, state) in [("0", db0), ("1", db1)] {
                    b.cmd_str(&["SELECT", db]);
                    match state {
                        "live" => b.cmd_str(&["SET", "k", "v"]),
                        "expired" => b.cmd_str(&["SET", "k", "v", "PX", "1"]),
                        _ => vec![],
                    };
                }
                b.cmd_str(&["SELECT", "0"]);
                std::thread::sleep(std::time::Duration::from_millis(5));
                a.cmd_str(&["WATCH", "k"]);
                b.cmd_str(&["SWAPDB", "0", "1"]);
                a.cmd_str(&["MULTI"]);
                a.cmd_str(&["PING"]);
                out.push(format!("{db0}/{db1}: {}", show(&a.cmd_str(&["EXEC"]))));
            }
        }
        b.cmd_str(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
        out
    });
}

/// A small seeded generator (xorshift64*): the same seed gives the same
/// case list on every machine.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

/// One random command for a client: transaction control, reads and
/// writes over three keys (some that fail at queue time, some at EXEC
/// time), and now and then a FLUSHDB or SWAPDB that touches watched keys.
fn random_command(rng: &mut Rng) -> Vec<String> {
    let keys = ["k1", "k2", "k3"];
    let k = keys[rng.below(3)].to_string();
    let k2 = keys[rng.below(3)].to_string();
    let v = rng.below(5).to_string();
    let words: Vec<&str> = match rng.below(24) {
        0..=2 => vec!["WATCH", &k],
        3 => vec!["WATCH", &k, &k2],
        4 => vec!["UNWATCH"],
        5..=6 => vec!["MULTI"],
        7..=8 => vec!["EXEC"],
        9 => vec!["DISCARD"],
        10 => vec!["SET", &k, &v],
        11 => vec!["INCR", &k],
        12 => vec!["DEL", &k],
        13 => vec!["GET", &k],
        14 => vec!["LPUSH", &k, &v],
        15 => vec!["APPEND", &k, &v],
        16 => vec!["EXPIRE", &k, "0"],
        17 => vec!["RENAME", &k, &k2],
        18 => vec!["NOSUCHCOMMAND", &k],
        19 => vec!["SET", &k],
        20 => vec!["SETNX", &k, &v],
        21 => vec!["FLUSHDB"],
        22 => vec!["SWAPDB", "0", "1"],
        _ => vec!["MGET", &k, &k2],
    };
    words.into_iter().map(String::from).collect()
}

/// Random interleavings of two clients' MULTI/EXEC/WATCH traffic give
/// Redis's replies byte for byte: EXECABORT after queueing errors,
/// runtime errors inside EXEC, nested MULTI, WATCH inside MULTI, EXEC
/// without MULTI, and watched keys touched by the other client's writes,
/// its transactions, FLUSHDB and SWAPDB. `TXN_SEED` picks the cases,
/// `TXN_CASES` how many (default 60 cases of 40 commands).
#[test]
fn random_interleavings_of_two_clients_match_redis() {
    let seed: u64 = std::env::var("TXN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_7a11);
    let cases: usize = std::env::var("TXN_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let mut rng = Rng(seed | 1);
    for case in 0..cases {
        let script: Vec<(usize, Vec<String>)> = (0..40)
            .map(|_| (rng.below(2), random_command(&mut rng)))
            .collect();
        let run = |s: &Server| -> Vec<String> {
            let mut conns = [s.connect(), s.connect()];
            conns[0].cmd_str(&["FLUSHALL"]);
            script
                .iter()
                .map(|(who, cmd)| {
                    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                    format!("{who} {args:?} -> {}", show(&conns[*who].cmd_str(&args)))
                })
                .collect()
        };
        let (want, got) = (run(&redis), run(&ours));
        if let Some(i) = want.iter().zip(&got).position(|(a, b)| a != b) {
            panic!(
                "TXN_SEED={seed} case {case}, command {i}:\nredis:\n{}\ncinnabar:\n{}",
                want[..=i].join("\n"),
                got[i]
            );
        }
    }
}

/// A watcher's own writes reach its WATCH even when they happen away from
/// its command: inside its EVAL (the script runs as another client), and
/// in blocked clients its push wakes (a BLMOVE chain ending on the watched
/// key, found by the simulator: crash-disk 70303).
#[test]
fn own_writes_through_scripts_and_woken_clients_touch_watched_keys() {
    both(|s| {
        let mut w = s.connect();
        let mut b1 = s.connect();
        let mut b2 = s.connect();
        let mut out = vec![];
        let exec_after = |w: &mut cinnabar_tests::Conn, out: &mut Vec<String>| {
            w.cmd_str(&["MULTI"]);
            w.cmd_str(&["INCR", "x"]);
            out.push(show(&w.cmd_str(&["EXEC"])));
        };
        w.cmd_str(&["WATCH", "k"]);
        w.cmd_str(&["EVAL", "redis.call('set','k','1')", "0"]);
        exec_after(&mut w, &mut out);
        b1.send(&[b"BLMOVE", b"k0", b"k1", b"RIGHT", b"RIGHT", b"0"]);
        b2.send(&[b"BLMOVE", b"k1", b"k2", b"RIGHT", b"RIGHT", b"0"]);
        std::thread::sleep(std::time::Duration::from_millis(50));
        w.cmd_str(&["WATCH", "k2"]);
        w.cmd_str(&["LPUSH", "k0", "a"]);
        out.push(show(&b1.read_reply().expect("BLMOVE k0 k1 served")));
        out.push(show(&b2.read_reply().expect("BLMOVE k1 k2 served")));
        exec_after(&mut w, &mut out);
        out
    });
}
