//! Keyspace notifications (Redis's `notify.c`): `notify-keyspace-events`
//! and the events commands publish through pub/sub.
//!
//! An event of class `class` on `key` in `db` is published, when the class
//! and at least one of K/E are enabled, as
//! `__keyspace@<db>__:<key>` with the event name as message (K) and
//! `__keyevent@<db>__:<event>` with the key as message (E), in that order.
//! Commands call [`Ctx::notify`] where Redis calls `notifyKeyspaceEvent`,
//! with the same names and in the same order; expiry and eviction, which
//! happen outside any handler, call [`notify`].
//!
//! Every write calls this, so the common case (notifications off) costs one
//! load and one branch: [`notify`] is `#[inline]` and tests the class mask
//! before anything else.
//!
//! The client running a command is out of the client table while it runs
//! (see `node.rs`): a message for it is kept in [`Notifier::stash`] and
//! written into its reply buffer by the next [`Ctx::notify`] or when the
//! command ends, so a RESP3 client subscribed to its own events sees them in
//! the order Redis sends them.

use crate::node::{ConnId, Ctx, Node};
use bytes::Bytes;

/// `K`: `__keyspace@<db>__:<key>` messages.
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: `__keyevent@<db>__:<event>` messages.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME...).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted set commands.
pub const ZSET: u32 = 1 << 7;
/// `x`: a key expired.
pub const EXPIRED: u32 = 1 << 8;
/// `e`: a key was evicted for maxmemory.
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands.
pub const STREAM: u32 = 1 << 10;
/// `m`: a read found no key (not part of `A`).
pub const KEY_MISS: u32 = 1 << 11;
/// `d`: module events (no modules here, but the flag is kept).
pub const MODULE: u32 = 1 << 13;
/// `n`: a key was created (not part of `A`).
pub const NEW: u32 = 1 << 14;
/// `A`: every class but `m` and `n` (Redis's NOTIFY_ALL).
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The error CONFIG SET gives for a character outside the classes.
pub const INVALID_CLASS: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// Parses a `notify-keyspace-events` value (Redis's
/// `keyspaceEventsStringToFlags`); `None` on an unknown character.
pub fn parse_flags(s: &[u8]) -> Option<u32> {
    let mut flags = 0;
    for &ch in s {
        flags |= match ch {
            b'A' => ALL,
            b'g' => GENERIC,
            b'$' => STRING,
            b'l' => LIST,
            b's' => SET,
            b'h' => HASH,
            b'z' => ZSET,
            b'x' => EXPIRED,
            b'e' => EVICTED,
            b'K' => KEYSPACE,
            b'E' => KEYEVENT,
            b't' => STREAM,
            b'm' => KEY_MISS,
            b'd' => MODULE,
            b'n' => NEW,
            _ => return None,
        };
    }
    Some(flags)
}

/// The canonical text CONFIG GET shows (Redis's
/// `keyspaceEventsFlagsToString`). As in Redis, `n` is only written when
/// `A` is not: "KEAn" reads back as "AKE" although `n` stays enabled.
pub fn flags_to_string(flags: u32) -> String {
    let mut s = String::new();
    if flags & ALL == ALL {
        s.push('A');
    } else {
        for (bit, ch) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if flags & bit != 0 {
                s.push(ch);
            }
        }
    }
    for (bit, ch) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & bit != 0 {
            s.push(ch);
        }
    }
    s
}

/// CONFIG SET's check: the value to store (as given: its canonical text
/// may drop `n`, see [`flags_to_string`]), or Redis's error text.
pub fn config_value(value: &str) -> Result<String, String> {
    match parse_flags(value.as_bytes()) {
        Some(_) => Ok(value.to_string()),
        None => Err(INVALID_CLASS.to_string()),
    }
}

/// Messages for clients out of the table, and the keys a command may create.
#[derive(Default)]
pub struct Notifier {
    /// Messages (encoded for their receiver) for the client running a
    /// command, in order; stale entries of clients gone are dropped.
    stash: Vec<(ConnId, Vec<Vec<u8>>)>,
    /// With the `n` class on: the keys the running command names that did
    /// not exist before it ran; `true` until their `new` event fired.
    new_keys: Vec<(Bytes, bool)>,
    /// The db of `new_keys`.
    new_db: usize,
}

/// Publishes `event` on `key` (Redis's `notifyKeyspaceEvent`) if `class` is
/// enabled. One branch when notifications are off.
#[inline]
pub fn notify(node: &mut Node, class: u32, event: &str, key: &[u8], db: usize) {
    if node.config.notify_keyspace_events & class == 0 {
        return;
    }
    publish_event(node, event, key, db);
}

#[cold]
fn publish_event(node: &mut Node, event: &str, key: &[u8], db: usize) {
    let flags = node.config.notify_keyspace_events;
    if node.pubsub_channels.is_empty() && node.pubsub_patterns.is_empty() {
        return;
    }
    let mut dbbuf = itoa::Buffer::new();
    let dbs = dbbuf.format(db).as_bytes();
    if flags & KEYSPACE != 0 {
        let mut ch = Vec::with_capacity(16 + key.len());
        ch.extend_from_slice(b"__keyspace@");
        ch.extend_from_slice(dbs);
        ch.extend_from_slice(b"__:");
        ch.extend_from_slice(key);
        publish(node, &ch, event.as_bytes());
    }
    if flags & KEYEVENT != 0 {
        let mut ch = Vec::with_capacity(16 + event.len());
        ch.extend_from_slice(b"__keyevent@");
        ch.extend_from_slice(dbs);
        ch.extend_from_slice(b"__:");
        ch.extend_from_slice(event.as_bytes());
        publish(node, &ch, key);
    }
}

/// Redis's `pubsubPublishMessage`: channel subscribers first, then pattern
/// subscribers (patterns in the node's order, as PUBLISH does).
pub fn publish(node: &mut Node, channel: &[u8], msg: &[u8]) {
    if let Some(conns) = node.pubsub_channels.get(channel) {
        for conn in conns.clone() {
            deliver(node, conn, &[b"message", channel, msg]);
        }
    }
    if node.pubsub_patterns.is_empty() {
        return;
    }
    let matching: Vec<(Bytes, Vec<ConnId>)> = node
        .pubsub_patterns
        .iter()
        .filter(|(p, _)| crate::glob::matches(p, channel, false))
        .map(|(p, v)| (p.clone(), v.clone()))
        .collect();
    for (pattern, conns) in matching {
        for conn in conns {
            deliver(node, conn, &[b"pmessage", &pattern, channel, msg]);
        }
    }
}

/// Writes one pub/sub message into a subscriber's buffer, or into the
/// stash when the subscriber is the client running a command.
fn deliver(node: &mut Node, conn: ConnId, parts: &[&[u8]]) {
    if let Some(c) = node.clients.get_mut(&conn) {
        c.reply.push(parts.len());
        for p in parts {
            c.reply.bulk(p);
        }
        node.mark_for_flush(conn);
        return;
    }
    // Out of the table: the running client (encoded when drained, in
    // the protocol it speaks).
    let parts = parts.iter().map(|p| p.to_vec()).collect();
    node.notifier.stash.push((conn, parts));
}

impl Notifier {
    /// Moves what was kept for `c` into its reply buffer. Entries of other
    /// clients stay: a client whose command served a blocked one is out of
    /// the table meanwhile, and gets its messages when its input ends.
    pub fn drain_into(&mut self, c: &mut crate::node::Client) {
        let conn = c.conn;
        self.stash.retain(|(to, parts)| {
            if *to != conn {
                return true;
            }
            c.reply.push(parts.len());
            for p in parts {
                c.reply.bulk(p);
            }
            false
        });
    }

    /// Drops what was kept for a client that is going away.
    pub fn forget(&mut self, conn: ConnId) {
        if !self.stash.is_empty() {
            self.stash.retain(|(to, _)| *to != conn);
        }
    }

    pub fn has_stash(&self) -> bool {
        !self.stash.is_empty()
    }
}

/// A key was deleted because its TTL passed (lazily or by the active
/// cycle): Redis's `deleteExpiredKeyAndPropagate` notifies and signals it.
pub fn key_expired(node: &mut Node, db: usize, key: &[u8]) {
    notify(node, EXPIRED, "expired", key, db);
    crate::tracking::invalidate_key(node, key);
}

/// A key was evicted for maxmemory (Redis's `performEvictions`).
pub fn key_evicted(node: &mut Node, db: usize, key: &[u8]) {
    notify(node, EVICTED, "evicted", key, db);
    crate::tracking::invalidate_key(node, key);
}

/// Before a command runs (called by `Node::execute` only when the `n`
/// class is on): remembers which of its keys do not exist yet, so that its
/// first event on such a key is preceded by `new`, as Redis's `dbAdd`
/// fires it when it creates the key.
pub fn before_command(node: &mut Node, db: usize, keys: Vec<Bytes>) {
    let now_ms = node.now.as_millis();
    let d = &node.dbs[db];
    let mut missing: Vec<(Bytes, bool)> = Vec::new();
    for k in keys {
        // An expired key is deleted by the command's lookup and created
        // again; a key named twice (MSET k v k v) is created once.
        let absent = !d.keys.contains_key(&k) || d.is_expired(&k, now_ms);
        if absent && !missing.iter().any(|(m, _)| *m == k) {
            missing.push((k, true));
        }
    }
    node.notifier.new_keys = missing;
    node.notifier.new_db = db;
}

impl Ctx<'_> {
    /// Publishes `event` on `key` of the client's db, as Redis's
    /// `notifyKeyspaceEvent(class, event, key, c->db->id)`.
    /// The `new` event of a key the command created comes first, even
    /// when `class` itself is off.
    #[inline]
    pub fn notify(&mut self, class: u32, event: &str, key: &[u8]) {
        let flags = self.node.config.notify_keyspace_events;
        if flags & (class | NEW) == 0 {
            return;
        }
        self.notify_slow(class, event, key);
    }

    /// [`Ctx::notify`] for a key of another db (COPY ... DB, MOVE).
    pub fn notify_in_db(&mut self, class: u32, event: &str, key: &[u8], db: usize) {
        if self.node.config.notify_keyspace_events & class == 0 {
            return;
        }
        publish_event(self.node, event, key, db);
        self.drain_stash();
    }

    #[cold]
    fn notify_slow(&mut self, class: u32, event: &str, key: &[u8]) {
        let db = self.client.db;
        let flags = self.node.config.notify_keyspace_events;
        if flags & NEW != 0 {
            self.fire_new_if_created(key, db);
        }
        if flags & class != 0 {
            publish_event(self.node, event, key, db);
        }
        self.drain_stash();
    }

    /// Fires `new` for `key` if the command created it (Redis's `dbAdd`).
    fn fire_new_if_created(&mut self, key: &[u8], db: usize) {
        if db != self.node.notifier.new_db || !self.node.dbs[db].keys.contains_key(key) {
            return;
        }
        let pending = self
            .node
            .notifier
            .new_keys
            .iter_mut()
            .find(|(k, p)| *p && k.as_ref() == key);
        if let Some(slot) = pending {
            slot.1 = false;
            publish_event(self.node, "new", key, db);
        }
    }

    /// Fires `new` for a key created in another db or replacing a deleted
    /// one (RENAME, COPY, MOVE, RESTORE call `dbAdd` after `dbDelete`).
    pub fn notify_new(&mut self, key: &[u8], db: usize) {
        if self.node.config.notify_keyspace_events & NEW == 0 {
            return;
        }
        for slot in self.node.notifier.new_keys.iter_mut() {
            if db == self.node.notifier.new_db && slot.0.as_ref() == key {
                slot.1 = false;
            }
        }
        publish_event(self.node, "new", key, db);
        self.drain_stash();
    }

    /// Writes what was kept for this client into its reply, unless this is
    /// a script's client (the caller's messages must not become the
    /// `redis.call` reply).
    fn drain_stash(&mut self) {
        if self.node.notifier.has_stash() && !self.client.is_script {
            self.node.notifier.drain_into(self.client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_like_redis() {
        assert_eq!(flags_to_string(parse_flags(b"KEA").unwrap()), "AKE");
        assert_eq!(flags_to_string(parse_flags(b"KEAn").unwrap()), "AKE");
        assert_eq!(flags_to_string(parse_flags(b"Elg$").unwrap()), "g$lE");
        assert_eq!(flags_to_string(parse_flags(b"mnK").unwrap()), "nKm");
        assert_eq!(flags_to_string(parse_flags(b"").unwrap()), "");
        assert_eq!(parse_flags(b"Kq"), None);
        assert_eq!(config_value("w"), Err(INVALID_CLASS.to_string()));
        // A covers every class but m and n.
        assert_eq!(parse_flags(b"A").unwrap() & (KEY_MISS | NEW), 0);
        assert_eq!(flags_to_string(parse_flags(b"g$lshzxetd").unwrap()), "A");
    }
}
