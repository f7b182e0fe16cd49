//! Client-side caching (Redis's `tracking.c`): CLIENT TRACKING, CLIENT
//! CACHING, CLIENT GETREDIR, CLIENT TRACKINGINFO and invalidation messages.
//!
//! Two tables, as in Redis:
//! - default mode: `table` maps each key a tracking client read (after a
//!   read-only command) to the ids of those clients. A write to the key
//!   sends each of them `invalidate [key]` once and forgets the entry, so
//!   the key is reported again only after it is read again. Key names of
//!   every db share the table, like Redis's single radix tree.
//! - BCAST mode: `prefixes` maps each registered prefix to its clients and
//!   the keys written since the last broadcast; [`broadcast`] (Redis's
//!   `beforeSleep` step) sends every client of the prefix one message with
//!   all of them, at the end of each input.
//!
//! A message goes to the client itself as a RESP3 push
//! `>2 invalidate [keys]`, or to its REDIRECT client: as a push if that one
//! speaks RESP3, else as a pub/sub message on `__redis__:invalidate` if it
//! has subscriptions (RESP2), else nowhere. FLUSHDB/FLUSHALL send a null
//! instead of keys. Messages for the client running a command wait until
//! the command has replied (Redis's `tracking_pending_keys`), so they never
//! land in the middle of a reply.
//!
//! Per-client state lives here, keyed by client id, so the hot path of a
//! node without tracking only checks that these maps are empty.

use crate::command::{flags, key_flags, Command};
use crate::node::{Client, Ctx, Node};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

/// A tracking client's options (Redis's CLIENT_TRACKING_* flags).
#[derive(Debug, Default, Clone)]
pub struct ClientTracking {
    /// REDIRECT client id; 0 for none.
    pub redirect: u64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    /// CLIENT CACHING yes (OPTIN) / no (OPTOUT) was given for the next
    /// command.
    pub caching: bool,
    pub noloop: bool,
    /// The REDIRECT client disconnected.
    pub broken_redirect: bool,
    /// BCAST prefixes, in byte order (as Redis's radix tree lists them).
    pub prefixes: BTreeSet<Bytes>,
}

/// One BCAST prefix: its clients and the keys changed since the last
/// broadcast, each with the id of the client that changed it last (for
/// NOLOOP; 0 when no client did, e.g. expiry).
#[derive(Debug, Default)]
struct Prefix {
    clients: BTreeSet<u64>,
    keys: BTreeMap<Bytes, u64>,
}

/// What an invalidation message carries.
#[derive(Debug, Clone)]
enum Payload {
    Keys(Vec<Bytes>),
    /// FLUSHDB/FLUSHALL: a null, in the tracking client's protocol.
    Flush {
        resp3: bool,
    },
}

/// The node's tracking state.
#[derive(Debug, Default)]
pub struct Tracking {
    /// Clients with tracking on, by client id.
    pub clients: BTreeMap<u64, ClientTracking>,
    /// Default mode: key -> ids of clients that may have cached it.
    table: BTreeMap<Bytes, BTreeSet<u64>>,
    /// Sum of the id sets' sizes (INFO `tracking_total_items`).
    items: u64,
    prefixes: BTreeMap<Bytes, Prefix>,
    /// Messages for the client running a command, sent after its reply:
    /// (tracking client id, payload).
    pending: Vec<(u64, Payload)>,
    /// Id of the client whose command is running (0: none): NOLOOP skips
    /// its own writes, and its messages wait in `pending`.
    pub current: u64,
}

impl Tracking {
    /// True when a write may have to send something: the hot path of a
    /// node without tracking is this check.
    #[inline]
    pub fn watches_writes(&self) -> bool {
        !self.table.is_empty() || !self.prefixes.is_empty()
    }

    /// INFO: tracking_clients, tracking_total_keys, tracking_total_items,
    /// tracking_total_prefixes.
    pub fn info(&self) -> (usize, usize, u64, usize) {
        (
            self.clients.len(),
            self.table.len(),
            self.items,
            self.prefixes.len(),
        )
    }
}

/// Redis's `stringCheckPrefix`: one is a prefix of the other.
fn overlap(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p]... [BCAST] [OPTIN]
/// [OPTOUT] [NOLOOP], with Redis's checks in Redis's order.
pub fn client_tracking(cx: &mut Ctx) {
    let mut redirect: i64 = 0;
    let (mut bcast, mut optin, mut optout, mut noloop) = (false, false, false, false);
    let mut prefixes: Vec<Bytes> = Vec::new();
    let argc = cx.argv.len();
    let mut j = 3;
    while j < argc {
        let more = argc - 1 - j;
        if cx.arg_is(j, "redirect") && more > 0 {
            j += 1;
            if redirect != 0 {
                cx.error("ERR A client can only redirect to a single other client");
                return;
            }
            let Some(id) = cx.parse_int(j) else { return };
            redirect = id;
            let exists = id > 0
                && (cx.client.id == id as u64 || cx.node.conn_of_client_id(id as u64).is_some());
            if !exists {
                cx.error("ERR The client ID you want redirect to does not exist");
                return;
            }
        } else if cx.arg_is(j, "bcast") {
            bcast = true;
        } else if cx.arg_is(j, "optin") {
            optin = true;
        } else if cx.arg_is(j, "optout") {
            optout = true;
        } else if cx.arg_is(j, "noloop") {
            noloop = true;
        } else if cx.arg_is(j, "prefix") && more > 0 {
            j += 1;
            prefixes.push(cx.argv[j].clone());
        } else {
            cx.syntax_error();
            return;
        }
        j += 1;
    }
    let id = cx.client.id;
    if cx.arg_is(2, "on") {
        if !bcast && !prefixes.is_empty() {
            cx.error("ERR PREFIX option requires BCAST mode to be enabled");
            return;
        }
        let old = cx.node.tracking.clients.get(&id).cloned();
        if let Some(old) = &old {
            if old.bcast != bcast {
                cx.error("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.");
                return;
            }
        }
        if bcast && (optin || optout) {
            cx.error("ERR OPTIN and OPTOUT are not compatible with BCAST");
            return;
        }
        if optin && optout {
            cx.error("ERR You can't specify both OPTIN mode and OPTOUT mode");
            return;
        }
        if let Some(old) = &old {
            if (optin && old.optout) || (optout && old.optin) {
                cx.error("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.");
                return;
            }
        }
        if bcast && !check_prefix_collisions(cx, old.as_ref(), &prefixes) {
            return;
        }
        enable(
            cx.node,
            id,
            redirect as u64,
            bcast,
            optin,
            optout,
            noloop,
            &prefixes,
        );
    } else if cx.arg_is(2, "off") {
        disable(cx.node, id);
    } else {
        cx.syntax_error();
        return;
    }
    cx.out().ok();
}

/// Redis's `checkPrefixCollisionsOrReply`, including its quirk: a clash
/// between two new prefixes after the first one replies the error and
/// still goes on (it returns the index, nonzero, as success), so the
/// client then also gets +OK.
fn check_prefix_collisions(cx: &mut Ctx, old: Option<&ClientTracking>, new: &[Bytes]) -> bool {
    for (i, p) in new.iter().enumerate() {
        if let Some(old) = old {
            if let Some(existing) = old.prefixes.iter().find(|e| overlap(e, p)) {
                let msg = format!(
                    "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(crate::resp::c_str(p)),
                    String::from_utf8_lossy(crate::resp::c_str(existing))
                );
                cx.error(&msg);
                return false;
            }
        }
        if let Some(q) = new[i + 1..].iter().find(|q| overlap(p, q)) {
            let msg = format!(
                "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                String::from_utf8_lossy(crate::resp::c_str(p)),
                String::from_utf8_lossy(crate::resp::c_str(q))
            );
            cx.error(&msg);
            return i != 0;
        }
    }
    true
}

/// Redis's `enableTracking`.
#[allow(clippy::too_many_arguments)]
fn enable(
    node: &mut Node,
    id: u64,
    redirect: u64,
    bcast: bool,
    optin: bool,
    optout: bool,
    noloop: bool,
    prefixes: &[Bytes],
) {
    let t = node.tracking.clients.entry(id).or_default();
    // Re-enabling keeps the prefixes and CACHING; the mode flags are
    // replaced.
    t.redirect = redirect;
    t.broken_redirect = false;
    t.bcast = bcast;
    t.optin = optin;
    t.optout = optout;
    t.noloop = noloop;
    if bcast {
        let empty = [Bytes::new()];
        let list = if prefixes.is_empty() {
            &empty[..]
        } else {
            prefixes
        };
        for p in list {
            t.prefixes.insert(p.clone());
            node.tracking
                .prefixes
                .entry(p.clone())
                .or_default()
                .clients
                .insert(id);
        }
    }
}

/// Redis's `disableTracking` (CLIENT TRACKING off, RESET, disconnect). The
/// default-mode table keeps the client's entries: they are skipped when a
/// key is invalidated, as in Redis.
pub fn disable(node: &mut Node, id: u64) {
    if node.tracking.clients.is_empty() {
        return;
    }
    let Some(t) = node.tracking.clients.remove(&id) else {
        return;
    };
    for p in t.prefixes {
        if let Some(state) = node.tracking.prefixes.get_mut(&p) {
            state.clients.remove(&id);
            if state.clients.is_empty() {
                node.tracking.prefixes.remove(&p);
            }
        }
    }
}

/// CLIENT CACHING YES|NO
pub fn client_caching(cx: &mut Ctx) {
    let id = cx.client.id;
    let Some(t) = cx.node.tracking.clients.get(&id) else {
        cx.error("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
        return;
    };
    let (optin, optout) = (t.optin, t.optout);
    if cx.arg_is(2, "yes") {
        if !optin {
            cx.error(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            );
            return;
        }
    } else if cx.arg_is(2, "no") {
        if !optout {
            cx.error(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            );
            return;
        }
    } else {
        cx.syntax_error();
        return;
    }
    if let Some(t) = cx.node.tracking.clients.get_mut(&id) {
        t.caching = true;
    }
    cx.out().ok();
}

/// CLIENT GETREDIR: the REDIRECT id, 0 without one, -1 when not tracking.
pub fn client_getredir(cx: &mut Ctx) {
    let r = cx
        .node
        .tracking
        .clients
        .get(&cx.client.id)
        .map_or(-1, |t| t.redirect as i64);
    cx.out().int(r);
}

/// CLIENT TRACKINGINFO: flags (a set), redirect, prefixes.
pub fn client_trackinginfo(cx: &mut Ctx) {
    let t = cx.node.tracking.clients.get(&cx.client.id).cloned();
    let mut names: Vec<&str> = Vec::new();
    match &t {
        None => names.push("off"),
        Some(t) => {
            names.push("on");
            if t.bcast {
                names.push("bcast");
            }
            if t.optin {
                names.push("optin");
                if t.caching {
                    names.push("caching-yes");
                }
            }
            if t.optout {
                names.push("optout");
                if t.caching {
                    names.push("caching-no");
                }
            }
            if t.noloop {
                names.push("noloop");
            }
            if t.broken_redirect {
                names.push("broken_redirect");
            }
        }
    }
    let out = cx.out();
    out.map(3);
    out.bulk(b"flags");
    out.set(names.len());
    for n in names {
        out.bulk(n.as_bytes());
    }
    out.bulk(b"redirect");
    out.int(t.as_ref().map_or(-1, |t| t.redirect as i64));
    out.bulk(b"prefixes");
    let prefixes: Vec<Bytes> = t
        .map(|t| t.prefixes.into_iter().collect())
        .unwrap_or_default();
    out.array(prefixes.len());
    for p in prefixes {
        out.bulk(&p);
    }
}

/// After a read-only command of a tracking client (default mode): remember
/// the keys it read (Redis's `trackingRememberKeys`). `c` may be a script's
/// client: it carries its caller's id.
pub fn remember_keys(node: &mut Node, c: &Client, cmd: &Command, argv: &[Bytes]) {
    if !cmd.has(flags::READONLY)
        || cmd.has(flags::PUBSUB)
        || matches!(cmd.name.as_str(), "eval_ro" | "evalsha_ro" | "fcall_ro")
    {
        return;
    }
    let Some(t) = node.tracking.clients.get(&c.id) else {
        return;
    };
    if t.bcast || (t.optin && !t.caching) || (t.optout && t.caching) {
        return;
    }
    for spec in cmd
        .key_specs
        .iter()
        .filter(|s| s.flags & key_flags::NOT_KEY == 0)
    {
        for i in spec.positions(argv) {
            let Some(k) = argv.get(i) else { continue };
            let ids = node.tracking.table.entry(k.clone()).or_default();
            if ids.insert(c.id) {
                node.tracking.items += 1;
            }
        }
    }
    limit_table(node);
}

/// `tracking-table-max-keys`: past the limit, keys are invalidated (their
/// clients told, as if the keys had changed) until the table fits, as
/// Redis's `trackingLimitUsedSlots` does. Redis picks random keys from its
/// cron; here the smallest keys go, at once, so the bound always holds and
/// the choice depends on nothing but the table.
fn limit_table(node: &mut Node) {
    let max = node.config.tracking_table_max_keys;
    if max <= 0 {
        return;
    }
    while node.tracking.table.len() as u64 > max as u64 {
        let Some(key) = node.tracking.table.keys().next().cloned() else {
            return;
        };
        invalidate_slow(node, &key, false);
    }
}

/// A key was modified (Redis's `trackingInvalidateKey`, called by
/// `signalModifiedKey` with bcast on). Cheap when nothing tracks.
#[inline]
pub fn invalidate_key(node: &mut Node, key: &[u8]) {
    if node.tracking.watches_writes() {
        invalidate_slow(node, key, true);
    }
}

/// `written`: the key changed (BCAST clients hear of it, NOLOOP applies);
/// otherwise it is only dropped from the table (tracking-table-max-keys).
#[cold]
fn invalidate_slow(node: &mut Node, key: &[u8], written: bool) {
    let current = node.tracking.current;
    if written {
        for (p, state) in node.tracking.prefixes.iter_mut() {
            if key.starts_with(p) {
                state.keys.insert(Bytes::copy_from_slice(key), current);
            }
        }
    }
    let Some(ids) = node.tracking.table.remove(key) else {
        return;
    };
    node.tracking.items = node.tracking.items.saturating_sub(ids.len() as u64);
    for id in ids {
        let Some(t) = node.tracking.clients.get(&id) else {
            continue;
        };
        if t.bcast || (written && t.noloop && id == current) {
            continue;
        }
        let payload = Payload::Keys(vec![Bytes::copy_from_slice(key)]);
        queue_or_send(node, id, payload);
    }
}

/// FLUSHDB/FLUSHALL: every tracking client gets a null (Redis's
/// `trackingInvalidateKeysOnFlush`); the table is emptied.
pub fn invalidate_all(node: &mut Node, current: &Client) {
    if !node.tracking.clients.is_empty() {
        let ids: Vec<u64> = node.tracking.clients.keys().copied().collect();
        for id in ids {
            let resp3 = if id == current.id {
                current.reply.resp3
            } else {
                find_client(node, id).is_some_and(|c| c.reply.resp3)
            };
            queue_or_send(node, id, Payload::Flush { resp3 });
        }
    }
    node.tracking.table.clear();
    node.tracking.items = 0;
}

/// Sends now, or after the command when the running client is involved.
fn queue_or_send(node: &mut Node, id: u64, payload: Payload) {
    let current = node.tracking.current;
    let redirect = node.tracking.clients.get(&id).map_or(0, |t| t.redirect);
    if current != 0 && (id == current || redirect == current) {
        node.tracking.pending.push((id, payload));
    } else {
        send(node, None, id, payload);
    }
}

fn find_client(node: &mut Node, id: u64) -> Option<&mut Client> {
    node.clients
        .values_mut()
        .map(|b| &mut **b)
        .find(|c| c.id == id)
}

/// Redis's `sendTrackingMessage`. `cur` is the client out of the table
/// (the one whose command just ended), if any.
fn send(node: &mut Node, mut cur: Option<&mut Client>, id: u64, payload: Payload) {
    let Some(t) = node.tracking.clients.get(&id) else {
        return;
    };
    let redirect = t.redirect;
    let target_id = if redirect != 0 { redirect } else { id };
    let target_exists = cur.as_ref().is_some_and(|c| c.id == target_id)
        || node.clients.values().any(|c| c.id == target_id);
    if redirect != 0 && !target_exists {
        if let Some(t) = node.tracking.clients.get_mut(&id) {
            t.broken_redirect = true;
        }
        // The tracking client learns about it if it speaks RESP3.
        write_to(node, cur.as_deref_mut(), id, |c| {
            if c.reply.resp3 {
                c.reply.push(2);
                c.reply.bulk(b"tracking-redir-broken");
                c.reply.int(redirect as i64);
            }
        });
        return;
    }
    let using_redirect = redirect != 0;
    write_to(node, cur, target_id, |c| {
        if c.reply.resp3 {
            c.reply.push(2);
            c.reply.bulk(b"invalidate");
        } else if using_redirect && c.subscription_count() + c.shard_channels.len() > 0 {
            c.reply.push(3);
            c.reply.bulk(b"message");
            c.reply.bulk(b"__redis__:invalidate");
        } else {
            // RESP2 without redirection cannot carry pushes.
            return;
        }
        match &payload {
            Payload::Keys(keys) => {
                c.reply.array(keys.len());
                for k in keys {
                    c.reply.bulk(k);
                }
            }
            Payload::Flush { resp3 } => {
                c.reply
                    .buf
                    .extend_from_slice(if *resp3 { b"_\r\n" } else { b"$-1\r\n" });
            }
        }
    });
}

/// Runs `f` on the client with this id: `cur` if it is that one, else the
/// one in the table (marked for flushing).
fn write_to(node: &mut Node, cur: Option<&mut Client>, id: u64, f: impl FnOnce(&mut Client)) {
    if let Some(c) = cur {
        if c.id == id {
            f(c);
            return;
        }
    }
    if let Some(c) = find_client(node, id) {
        let conn = c.conn;
        f(c);
        node.mark_for_flush(conn);
    }
}

/// After a top-level command: messages kept for the client that ran it
/// are sent, and CLIENT CACHING's one-command flag is dropped (kept inside
/// MULTI and for CLIENT subcommands, as Redis's `resetClient` does).
pub fn after_command(node: &mut Node, c: &mut Client, cmd: &Command) {
    node.tracking.current = 0;
    if node.tracking.clients.is_empty() {
        // Nobody tracks: nothing can be pending for anyone (one branch per
        // command on the common path).
        node.tracking.pending.clear();
        return;
    }
    if !node.tracking.pending.is_empty() {
        for (id, payload) in std::mem::take(&mut node.tracking.pending) {
            send(node, Some(c), id, payload);
        }
    }
    if c.multi.is_none() && !cmd.name.starts_with("client|") {
        if let Some(t) = node.tracking.clients.get_mut(&c.id) {
            t.caching = false;
        }
    }
}

/// Redis's `trackingBroadcastInvalidationMessages`, run once per input
/// (Redis runs it before sleeping): each prefix with changed keys sends
/// them, in key order, to its clients, in id order; a NOLOOP client does
/// not hear about its own changes.
pub fn broadcast(node: &mut Node) {
    if node.tracking.prefixes.values().all(|p| p.keys.is_empty()) {
        return;
    }
    let mut sends: Vec<(u64, Vec<Bytes>)> = Vec::new();
    for state in node.tracking.prefixes.values_mut() {
        if state.keys.is_empty() {
            continue;
        }
        let keys = std::mem::take(&mut state.keys);
        for &id in &state.clients {
            let noloop = node.tracking.clients.get(&id).is_some_and(|t| t.noloop);
            let list: Vec<Bytes> = keys
                .iter()
                .filter(|(_, &writer)| !(noloop && writer == id))
                .map(|(k, _)| k.clone())
                .collect();
            if !list.is_empty() {
                sends.push((id, list));
            }
        }
    }
    for (id, keys) in sends {
        send(node, None, id, Payload::Keys(keys));
    }
}

/// Whether anything is waiting for [`broadcast`].
#[inline]
pub fn broadcast_pending(node: &Node) -> bool {
    !node.tracking.prefixes.is_empty()
        && node.tracking.prefixes.values().any(|p| !p.keys.is_empty())
}

#[cfg(test)]
mod tests {
    use crate::disk::DiskError;
    use crate::{Config, ConnId, Input, Node, Output, Time};
    use std::collections::BTreeMap;

    const T0: u64 = 1_700_000_000_000_000;

    /// A node driven with a virtual clock; what each connection received.
    struct Sim {
        node: Node,
        now: u64,
        received: BTreeMap<u64, String>,
    }

    impl Sim {
        fn new() -> Sim {
            let mut node = Node::new(Config::default(), 7);
            node.start(Time(T0));
            let mut s = Sim {
                node,
                now: T0,
                received: BTreeMap::new(),
            };
            s.drain();
            s
        }

        fn drain(&mut self) {
            while let Some(o) = self.node.poll_output() {
                match o {
                    Output::Send { conn, data } => self
                        .received
                        .entry(conn.0)
                        .or_default()
                        .push_str(&String::from_utf8_lossy(&data)),
                    // No data file: the node starts empty.
                    Output::Disk { id, .. } => self.node.handle(
                        Time(self.now),
                        Input::DiskDone {
                            id,
                            result: Err(DiskError::NotFound),
                        },
                    ),
                    _ => {}
                }
            }
        }

        fn connect(&mut self, conn: u64) {
            self.node.handle(
                Time(self.now),
                Input::Accepted {
                    conn: ConnId(conn),
                    peer: format!("127.0.0.1:{conn}"),
                    local: "127.0.0.1:6379".into(),
                },
            );
            self.drain();
        }

        /// Sends an inline command; returns everything the connection got.
        fn cmd(&mut self, conn: u64, line: &str) -> String {
            let data = format!("{line}\r\n");
            self.node.handle(
                Time(self.now),
                Input::Received {
                    conn: ConnId(conn),
                    data: data.as_bytes(),
                },
            );
            self.drain();
            self.received.remove(&conn).unwrap_or_default()
        }

        fn tick_after_ms(&mut self, ms: u64) {
            self.now += ms * 1000;
            self.node.handle(Time(self.now), Input::Tick);
            self.drain();
        }
    }

    #[test]
    fn active_expiry_invalidates_between_commands() {
        let mut s = Sim::new();
        s.connect(1);
        s.connect(2);
        s.cmd(1, "HELLO 3");
        assert_eq!(s.cmd(1, "CLIENT TRACKING ON"), "+OK\r\n");
        s.cmd(2, "SET k v PX 10");
        assert_eq!(s.cmd(1, "GET k"), "$1\r\nv\r\n");
        // No command runs: the tick's expiry sends the push by itself.
        for _ in 0..20 {
            s.tick_after_ms(100);
        }
        assert_eq!(
            s.received.remove(&1).unwrap_or_default(),
            ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"
        );
        assert_eq!(s.node.tracking.info(), (1, 0, 0, 0));
    }

    #[test]
    fn bcast_batches_one_input_and_skips_noloop_writers() {
        let mut s = Sim::new();
        s.connect(1);
        s.connect(2);
        s.cmd(1, "HELLO 3");
        s.cmd(2, "HELLO 3");
        s.cmd(1, "CLIENT TRACKING ON BCAST PREFIX p");
        s.cmd(2, "CLIENT TRACKING ON BCAST PREFIX p NOLOOP");
        // One input with two commands: one message with both keys.
        let data = b"SET p2 x\r\nSET p1 y\r\nSET q z\r\n";
        s.node.handle(
            Time(s.now),
            Input::Received {
                conn: ConnId(2),
                data,
            },
        );
        s.drain();
        assert_eq!(
            s.received.remove(&1).unwrap_or_default(),
            ">2\r\n$10\r\ninvalidate\r\n*2\r\n$2\r\np1\r\n$2\r\np2\r\n"
        );
        // The NOLOOP writer hears nothing about its own writes.
        assert_eq!(
            s.received.remove(&2).unwrap_or_default(),
            "+OK\r\n+OK\r\n+OK\r\n"
        );
        assert_eq!(s.node.tracking.info().3, 1);
    }

    #[test]
    fn the_table_is_bounded_by_tracking_table_max_keys() {
        let mut s = Sim::new();
        s.connect(1);
        s.cmd(1, "HELLO 3");
        s.cmd(1, "CONFIG SET tracking-table-max-keys 2");
        s.cmd(1, "CLIENT TRACKING ON NOLOOP");
        s.cmd(1, "GET b");
        s.cmd(1, "GET c");
        // A third key pushes the smallest out, with an invalidation after
        // the reply (even under NOLOOP: nothing was written).
        assert_eq!(
            s.cmd(1, "GET a"),
            "_\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n"
        );
        assert_eq!(s.node.tracking.info().1, 2);
    }

    #[test]
    fn disconnect_ends_tracking_and_a_redirect_breaks() {
        let mut s = Sim::new();
        s.connect(1);
        s.connect(2);
        s.connect(3);
        s.cmd(1, "HELLO 3");
        let id2 = s.cmd(2, "CLIENT ID");
        let id2 = id2.trim_start_matches(':').trim_end();
        assert_eq!(
            s.cmd(1, &format!("CLIENT TRACKING ON REDIRECT {id2}")),
            "+OK\r\n"
        );
        s.cmd(1, "GET k");
        s.node
            .handle(Time(s.now), Input::Closed { conn: ConnId(2) });
        s.drain();
        s.cmd(3, "SET k 1");
        assert_eq!(
            s.received.remove(&1).unwrap_or_default(),
            format!(">2\r\n$21\r\ntracking-redir-broken\r\n:{id2}\r\n")
        );
        s.node
            .handle(Time(s.now), Input::Closed { conn: ConnId(1) });
        s.drain();
        assert_eq!(s.node.tracking.info().0, 0);
    }
}
