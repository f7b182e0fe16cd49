//! Pub/sub (Redis's `pubsub.c`): SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their
//! UNSUBSCRIBE forms, PUBLISH, SPUBLISH and PUBSUB introspection.
//!
//! Subscriptions live twice: in the node (channel -> subscribers, in
//! subscription order, for PUBLISH) and in each client (for counts and
//! UNSUBSCRIBE without arguments). A published message is written into each
//! subscriber's output buffer; the node flushes those buffers after the
//! publisher's input is processed. RESP3 clients get messages as pushes
//! (`>`); RESP2 clients as arrays, and while subscribed they may only run
//! pub/sub commands, PING, QUIT and RESET (enforced by the dispatcher).

use crate::command::Handler;
use crate::node::{Client, ConnId, Ctx, Node};
use bytes::Bytes;
use std::collections::BTreeMap;

/// This module's commands, by lowercase name.
pub fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "subscribe" => subscribe,
        "psubscribe" => psubscribe,
        "ssubscribe" => ssubscribe,
        "unsubscribe" => unsubscribe,
        "punsubscribe" => punsubscribe,
        "sunsubscribe" => sunsubscribe,
        "publish" => publish,
        "spublish" => spublish,
        "pubsub|channels" => pubsub_channels,
        "pubsub|numsub" => pubsub_numsub,
        "pubsub|numpat" => pubsub_numpat,
        "pubsub|shardchannels" => pubsub_shardchannels,
        "pubsub|shardnumsub" => pubsub_shardnumsub,
        "pubsub|help" => pubsub_help,
        _ => return None,
    })
}

/// The three kinds of subscription.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn names(self) -> (&'static [u8], &'static [u8]) {
        match self {
            Kind::Channel => (b"subscribe", b"unsubscribe"),
            Kind::Pattern => (b"psubscribe", b"punsubscribe"),
            Kind::Shard => (b"ssubscribe", b"sunsubscribe"),
        }
    }

    fn client_list(self, c: &mut Client) -> &mut Vec<Bytes> {
        match self {
            Kind::Channel => &mut c.channels,
            Kind::Pattern => &mut c.patterns,
            Kind::Shard => &mut c.shard_channels,
        }
    }

    fn node_map(self, n: &mut Node) -> &mut BTreeMap<Bytes, Vec<ConnId>> {
        match self {
            Kind::Channel => &mut n.pubsub_channels,
            Kind::Pattern => &mut n.pubsub_patterns,
            Kind::Shard => &mut n.pubsub_shard_channels,
        }
    }

    /// The count a (un)subscribe reply carries.
    fn count(self, c: &Client) -> usize {
        match self {
            Kind::Shard => c.shard_channels.len(),
            _ => c.subscription_count(),
        }
    }
}

fn reply_subscription(c: &mut Client, verb: &[u8], channel: Option<&[u8]>, count: usize) {
    let out = &mut c.reply;
    out.push(3);
    out.bulk(verb);
    match channel {
        Some(ch) => out.bulk(ch),
        None => out.null(),
    }
    out.int(count as i64);
}

fn subscribe_generic(cx: &mut Ctx, kind: Kind) {
    for i in 1..cx.argv.len() {
        let ch = cx.argv[i].clone();
        if !kind.client_list(cx.client).contains(&ch) {
            kind.client_list(cx.client).push(ch.clone());
            let conn = cx.client.conn;
            kind.node_map(cx.node)
                .entry(ch.clone())
                .or_default()
                .push(conn);
        }
        let count = kind.count(cx.client);
        reply_subscription(cx.client, kind.names().0, Some(&ch), count);
    }
}

fn remove_subscription(node: &mut Node, c: &mut Client, kind: Kind, ch: &[u8]) -> bool {
    let list = kind.client_list(c);
    let Some(pos) = list.iter().position(|x| x.as_ref() == ch) else {
        return false;
    };
    list.remove(pos);
    let map = kind.node_map(node);
    if let Some(subs) = map.get_mut(ch) {
        subs.retain(|&x| x != c.conn);
        if subs.is_empty() {
            map.remove(ch);
        }
    }
    true
}

fn unsubscribe_generic(cx: &mut Ctx, kind: Kind) {
    let verb = kind.names().1;
    if cx.argv.len() == 1 {
        let all: Vec<Bytes> = kind.client_list(cx.client).clone();
        if all.is_empty() {
            let count = kind.count(cx.client);
            return reply_subscription(cx.client, verb, None, count);
        }
        for ch in all {
            remove_subscription(cx.node, cx.client, kind, &ch);
            let count = kind.count(cx.client);
            reply_subscription(cx.client, verb, Some(&ch), count);
        }
        return;
    }
    for i in 1..cx.argv.len() {
        let ch = cx.argv[i].clone();
        remove_subscription(cx.node, cx.client, kind, &ch);
        let count = kind.count(cx.client);
        reply_subscription(cx.client, verb, Some(&ch), count);
    }
}

/// Drops every subscription of a client (disconnect, RESET), silently.
pub fn unsubscribe_everything(node: &mut Node, c: &mut Client) {
    // Tracking ends with the connection and with RESET, like these; so do
    // keyspace messages kept for it.
    crate::tracking::disable(node, c.id);
    node.notifier.forget(c.conn);
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        for ch in kind.client_list(c).clone() {
            remove_subscription(node, c, kind, &ch);
        }
    }
}

pub fn subscribe(cx: &mut Ctx) {
    subscribe_generic(cx, Kind::Channel);
}

pub fn psubscribe(cx: &mut Ctx) {
    subscribe_generic(cx, Kind::Pattern);
}

pub fn ssubscribe(cx: &mut Ctx) {
    subscribe_generic(cx, Kind::Shard);
}

pub fn unsubscribe(cx: &mut Ctx) {
    unsubscribe_generic(cx, Kind::Channel);
}

pub fn punsubscribe(cx: &mut Ctx) {
    unsubscribe_generic(cx, Kind::Pattern);
}

pub fn sunsubscribe(cx: &mut Ctx) {
    unsubscribe_generic(cx, Kind::Shard);
}

/// One message, framed once per protocol (RESP2 array, RESP3 push) and
/// copied into each receiver's buffer: framing it anew per receiver was most
/// of PUBLISH's cost with many subscribers.
struct Message<'a> {
    parts: &'a [&'a [u8]],
    framed: [Option<bytes::BytesMut>; 2],
}

impl<'a> Message<'a> {
    fn new(parts: &'a [&'a [u8]]) -> Self {
        Message {
            parts,
            framed: [None, None],
        }
    }

    fn framed(&mut self, resp3: bool) -> &[u8] {
        let parts = self.parts;
        self.framed[resp3 as usize].get_or_insert_with(|| {
            // Each part costs at most its bytes plus `$<len>\r\n` and `\r\n`.
            let size = parts.iter().map(|p| p.len() + 24).sum::<usize>() + 8;
            let mut r = crate::resp::ReplyBuf {
                buf: bytes::BytesMut::with_capacity(size),
                resp3,
            };
            r.push(parts.len());
            for p in parts {
                r.bulk(p);
            }
            r.buf
        })
    }
}

/// Writes one message into a subscriber's buffer: the publisher itself is
/// out of the client table while it runs, so it is passed separately.
fn deliver(cx: &mut Ctx, conn: ConnId, msg: &mut Message) {
    let write = |c: &mut Client, msg: &mut Message| {
        let framed = msg.framed(c.reply.resp3);
        c.reply.buf.extend_from_slice(framed);
    };
    if conn == cx.client.conn {
        write(cx.client, msg);
    } else if let Some(c) = cx.node.clients.get_mut(&conn) {
        write(c, msg);
        cx.node.mark_for_flush(conn);
    }
}

/// PUBLISH channel message: channel subscribers first, then pattern ones.
pub fn publish(cx: &mut Ctx) {
    let (ch, msg) = (cx.argv[1].clone(), cx.argv[2].clone());
    let mut receivers = 0;
    let direct = cx
        .node
        .pubsub_channels
        .get(&ch)
        .cloned()
        .unwrap_or_default();
    let parts: [&[u8]; 3] = [b"message", &ch, &msg];
    let mut message = Message::new(&parts);
    for conn in direct {
        deliver(cx, conn, &mut message);
        receivers += 1;
    }
    let patterns: Vec<(Bytes, Vec<ConnId>)> = cx
        .node
        .pubsub_patterns
        .iter()
        .filter(|(p, _)| crate::glob::matches(p, &ch, false))
        .map(|(p, v)| (p.clone(), v.clone()))
        .collect();
    for (pattern, conns) in patterns {
        let parts: [&[u8]; 4] = [b"pmessage", &pattern, &ch, &msg];
        let mut message = Message::new(&parts);
        for conn in conns {
            deliver(cx, conn, &mut message);
            receivers += 1;
        }
    }
    cx.out().int(receivers);
}

/// SPUBLISH shardchannel message
pub fn spublish(cx: &mut Ctx) {
    let (ch, msg) = (cx.argv[1].clone(), cx.argv[2].clone());
    let subs = cx
        .node
        .pubsub_shard_channels
        .get(&ch)
        .cloned()
        .unwrap_or_default();
    let parts: [&[u8]; 3] = [b"smessage", &ch, &msg];
    let mut message = Message::new(&parts);
    for &conn in &subs {
        deliver(cx, conn, &mut message);
    }
    cx.out().int(subs.len() as i64);
}

fn channels_reply(cx: &mut Ctx, shard: bool) {
    let pattern = cx.argv.get(2).cloned();
    let map = if shard {
        &cx.node.pubsub_shard_channels
    } else {
        &cx.node.pubsub_channels
    };
    let names: Vec<Bytes> = map
        .keys()
        .filter(|ch| {
            pattern
                .as_ref()
                .is_none_or(|p| crate::glob::matches(p, ch, false))
        })
        .cloned()
        .collect();
    let out = &mut cx.client.reply;
    out.array(names.len());
    for n in names {
        out.bulk(&n);
    }
}

fn numsub_reply(cx: &mut Ctx, shard: bool) {
    let n = cx.argv.len() - 2;
    let counts: Vec<(Bytes, usize)> = cx.argv[2..]
        .iter()
        .map(|ch| {
            let map = if shard {
                &cx.node.pubsub_shard_channels
            } else {
                &cx.node.pubsub_channels
            };
            (ch.clone(), map.get(ch).map_or(0, |v| v.len()))
        })
        .collect();
    let out = &mut cx.client.reply;
    out.array(n * 2);
    for (ch, count) in counts {
        out.bulk(&ch);
        out.int(count as i64);
    }
}

/// PUBSUB CHANNELS [pattern]
pub fn pubsub_channels(cx: &mut Ctx) {
    channels_reply(cx, false);
}

/// PUBSUB SHARDCHANNELS [pattern]
pub fn pubsub_shardchannels(cx: &mut Ctx) {
    channels_reply(cx, true);
}

/// PUBSUB NUMSUB [channel ...]
pub fn pubsub_numsub(cx: &mut Ctx) {
    numsub_reply(cx, false);
}

/// PUBSUB SHARDNUMSUB [channel ...]
pub fn pubsub_shardnumsub(cx: &mut Ctx) {
    numsub_reply(cx, true);
}

/// PUBSUB NUMPAT: distinct patterns with subscribers.
pub fn pubsub_numpat(cx: &mut Ctx) {
    let n = cx.node.pubsub_patterns.len() as i64;
    cx.out().int(n);
}

pub fn pubsub_help(cx: &mut Ctx) {
    cx.reply_help("pubsub");
}
