//! Pub/sub across connections, against genuine Redis 7.0: who receives
//! which message, in which shape (RESP2 arrays, RESP3 pushes), and the
//! receiver counts PUBLISH returns.

use cinnabar_tests::{show, Conn, Server};
use std::time::Duration;

fn both(check: impl Fn(&Server) -> Vec<String>) {
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    assert_eq!(check(&redis), check(&ours));
}

/// Everything a connection has received until it has been quiet for a
/// while (generous, so a loaded machine does not cut a transcript short).
fn drain(c: &mut Conn) -> String {
    let mut out = String::new();
    while let Some(r) = c.try_reply(Duration::from_millis(250)) {
        out.push_str(&show(&r));
    }
    out
}

#[test]
fn messages_reach_channel_and_pattern_subscribers() {
    both(|s| {
        let mut sub = s.connect();
        let mut psub = s.connect();
        let mut sub3 = s.connect();
        let mut publisher = s.connect();
        sub.send(&[b"SUBSCRIBE", b"news", b"other"]);
        psub.send(&[b"PSUBSCRIBE", b"n*"]);
        sub3.cmd_str(&["HELLO", "3"]);
        sub3.send(&[b"SUBSCRIBE", b"news"]);
        let mut out = vec![drain(&mut sub), drain(&mut psub), drain(&mut sub3)];
        out.push(show(&publisher.cmd_str(&["PUBLISH", "news", "hello"])));
        out.push(show(&publisher.cmd_str(&["PUBLISH", "nothing", "x"])));
        out.push(show(&publisher.cmd_str(&["PUBLISH", "other", "y"])));
        out.push(show(
            &publisher.cmd_str(&["PUBSUB", "NUMSUB", "news", "other", "none"]),
        ));
        out.push(show(&publisher.cmd_str(&["PUBSUB", "NUMPAT"])));
        out.extend([drain(&mut sub), drain(&mut psub), drain(&mut sub3)]);
        // A RESP3 subscriber can still run ordinary commands.
        out.push(show(&sub3.cmd_str(&["SET", "k", "v"])));
        let sub_id = {
            let mut probe = s.connect();
            let list = String::from_utf8_lossy(&probe.cmd_str(&["CLIENT", "LIST"])).into_owned();
            list.lines()
                .find(|l| l.contains(" sub=2 "))
                .and_then(|l| l.split(' ').next())
                .map(|f| f.trim_start_matches("id=").to_string())
                .unwrap_or_default()
        };
        drop(sub);
        s.wait_gone(&sub_id);
        out.push(show(&publisher.cmd_str(&["PUBLISH", "news", "again"])));
        out.extend([drain(&mut psub), drain(&mut sub3)]);
        out
    });
}

#[test]
fn a_client_receives_its_own_messages_and_shard_channels_are_separate() {
    both(|s| {
        let mut c = s.connect();
        let mut other = s.connect();
        c.cmd_str(&["HELLO", "3"]);
        c.send(&[b"SSUBSCRIBE", b"sh"]);
        c.send(&[b"SUBSCRIBE", b"sh"]);
        let mut out = vec![drain(&mut c)];
        out.push(show(&c.cmd_str(&["SPUBLISH", "sh", "1"])));
        out.push(drain(&mut c));
        out.push(show(&other.cmd_str(&["PUBLISH", "sh", "2"])));
        out.push(show(&other.cmd_str(&["PUBSUB", "SHARDNUMSUB", "sh"])));
        out.push(drain(&mut c));
        out
    });
}
