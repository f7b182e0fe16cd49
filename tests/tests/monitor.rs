//! MONITOR's feed against genuine Redis 7.0: which commands appear, in which
//! order, how arguments are quoted and secrets redacted. Timestamps and
//! client ports differ between servers, so each line's `+<time> [<db>
//! <addr>]` prefix is reduced to the db before comparing.

use cinnabar_tests::Server;
use std::time::Duration;

fn feed(server: &Server) -> Vec<String> {
    let mut monitor = server.connect();
    assert_eq!(monitor.cmd_str(&["MONITOR"]), b"+OK\r\n");
    let mut c = server.connect();
    let cmds: Vec<Vec<&[u8]>> = vec![
        vec![b"SET", b"a b", b"x\"y\n\x01\\"],
        vec![b"AUTH", b"foo", b"bar"],
        vec![b"EVAL", b"return redis.call('get','k')", b"0"],
        vec![b"CONFIG", b"GET", b"hz"],
        vec![b"SELECT", b"3"],
        vec![b"MULTI"],
        vec![b"INCR", b"c"],
        vec![b"EXEC"],
        vec![b"HELLO", b"2", b"AUTH", b"default", b"pw"],
        vec![b"NOSUCH"],
        vec![b"GET"],
    ];
    for cmd in &cmds {
        c.cmd(cmd);
    }
    c.cmd_str(&["PING"]);
    let mut lines = vec![];
    while let Some(r) = monitor.try_reply(Duration::from_millis(250)) {
        lines.push(canonical(&r));
        if lines.last().is_some_and(|l| l.contains("\"PING\"")) {
            break;
        }
    }
    lines
}

/// `+1700000000.123456 [0 127.0.0.1:5555] "GET" "k"` -> `[0] "GET" "k"`.
fn canonical(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line).into_owned();
    let Some(open) = s.find('[') else { return s };
    let Some(space) = s[open..].find(' ') else {
        return s;
    };
    let Some(close) = s.find(']') else { return s };
    format!("{}]{}", &s[open..open + space], &s[close + 1..])
}

#[test]
fn monitor_feed_matches_redis() {
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let (r, c) = (feed(&redis), feed(&ours));
    assert!(!r.is_empty());
    assert_eq!(r, c);
}
