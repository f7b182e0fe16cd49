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
