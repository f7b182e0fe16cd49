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

/// The messages a subscriber received, grouped by the publish they came
/// from (payloads are `<i>`): inside a group Redis sends the channel's
/// message first, then one per matching pattern in its pattern dict's
/// order (a per-process hash seed), so pattern messages of one publish
/// are compared sorted. Groups must arrive in publish order.
fn grouped(raw: &[Vec<u8>]) -> Vec<(usize, Vec<String>)> {
    let mut groups: Vec<(usize, Vec<String>, Vec<String>)> = vec![];
    for r in raw {
        let text = show(r);
        let i: usize = text
            .rsplit('<')
            .next()
            .and_then(|t| t.split('>').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX);
        if groups.last().is_none_or(|g| g.0 != i) {
            assert!(
                groups.last().is_none_or(|g| g.0 < i),
                "messages out of publish order: {text}"
            );
            groups.push((i, vec![], vec![]));
        }
        let g = groups.last_mut().expect("a group");
        if text.contains("pmessage") {
            g.2.push(text);
        } else {
            assert!(
                g.2.is_empty(),
                "a channel message after a pattern's: {text}"
            );
            g.1.push(text);
        }
    }
    groups
        .into_iter()
        .map(|(i, mut direct, mut pats)| {
            pats.sort();
            direct.append(&mut pats);
            (i, direct)
        })
        .collect()
}

/// Message order across channels and overlapping patterns (glob classes,
/// ranges, escapes), to RESP2 and RESP3 subscribers, for a seeded stream
/// of publishes: every subscriber's stream matches Redis's.
#[test]
fn message_order_across_channels_and_patterns_in_both_protocols() {
    let channels = ["news", "nows", "n*ws", "a.b", "abc", "x"];
    let patterns = ["n?ws", "n[ao]ws", "n\\*ws", "*", "a.*", "[a-b]*", "[^n]*"];
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let run = |s: &Server| -> Vec<Vec<(usize, Vec<String>)>> {
        let mut subs = vec![];
        for resp3 in [false, true] {
            for k in 0..3usize {
                let mut c = s.connect();
                if resp3 {
                    c.cmd_str(&["HELLO", "3"]);
                }
                // Each subscriber a different mix (and order) of channels
                // and patterns.
                let mut chans: Vec<&[u8]> = vec![b"SUBSCRIBE"];
                chans.extend(channels.iter().skip(k).step_by(2).map(|c| c.as_bytes()));
                let mut pats: Vec<&[u8]> = vec![b"PSUBSCRIBE"];
                pats.extend(
                    patterns
                        .iter()
                        .rev()
                        .skip(k)
                        .step_by(2)
                        .map(|p| p.as_bytes()),
                );
                c.send(&chans);
                c.send(&pats);
                for _ in 1..chans.len() + pats.len() - 1 {
                    c.read_reply().expect("subscribe reply");
                }
                subs.push(c);
            }
        }
        let mut publisher = s.connect();
        let mut counts = vec![];
        let mut x: u64 = 0x9e37_79b9;
        for i in 0..120 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ch = channels[(x % channels.len() as u64) as usize];
            let payload = format!("<{i}>");
            counts.push(show(&publisher.cmd_str(&["PUBLISH", ch, &payload])));
        }
        let mut out = vec![vec![(0, counts)]];
        for mut c in subs {
            let mut raw = vec![];
            while let Some(r) = c.try_reply(Duration::from_millis(250)) {
                raw.push(r);
            }
            out.push(grouped(&raw));
        }
        out
    };
    let (want, got) = (run(&redis), run(&ours));
    assert!(
        want.iter().skip(1).all(|s| !s.is_empty()),
        "every subscriber heard something"
    );
    assert_eq!(want, got);
}
