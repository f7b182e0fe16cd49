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
