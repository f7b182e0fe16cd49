//! Connection commands: PING, ECHO, QUIT, HELLO, AUTH, SELECT, RESET and
//! CLIENT.

use crate::node::{Client, Ctx};

/// PING [message]
pub fn ping(cx: &mut Ctx) {
    if cx.argv.len() > 2 {
        let msg = format!(
            "ERR wrong number of arguments for '{}' command",
            cx.cmd.name
        );
        return cx.error(&msg);
    }
    // A RESP2 client in subscribe mode gets PING's reply as a message.
    if cx.client.in_pubsub_mode() {
        let m = cx.argv.get(1).cloned().unwrap_or_default();
        let out = cx.out();
        out.array(2);
        out.bulk(b"pong");
        return out.bulk(&m);
    }
    match cx.argv.get(1).cloned() {
        Some(m) => cx.out().bulk(&m),
        None => cx.out().simple("PONG"),
    }
}

/// ECHO message
pub fn echo(cx: &mut Ctx) {
    let m = cx.argv[1].clone();
    cx.out().bulk(&m);
}

/// QUIT: reply OK, then close once the reply is written.
pub fn quit(cx: &mut Ctx) {
    cx.out().ok();
    cx.client.close_after_reply = true;
}

/// Authenticates the client as `user` (Redis's `ACLAuthenticateUser`); a
/// failure is recorded in the ACL LOG.
fn check_password(cx: &mut Ctx, user: &[u8], pass: &[u8]) -> bool {
    let ok = cx
        .node
        .acl
        .users
        .get(user)
        .is_some_and(|u| u.check_password(pass));
    if ok {
        cx.client.authenticated = true;
        cx.client.user = Some(bytes::Bytes::copy_from_slice(user));
    } else {
        let object = cx.argv[0].clone();
        crate::acl::log_auth_failure(cx.node, cx.client, object, user);
    }
    ok
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// AUTH [username] password
pub fn auth(cx: &mut Ctx) {
    if cx.argv.len() > 3 {
        return cx.syntax_error();
    }
    if cx.argv.len() == 2 && cx.node.acl.default_user().is_none_or(|d| d.nopass) {
        return cx.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
    }
    let (user, pass) = if cx.argv.len() == 3 {
        (cx.argv[1].clone(), cx.argv[2].clone())
    } else {
        (bytes::Bytes::from_static(b"default"), cx.argv[1].clone())
    };
    if check_password(cx, &user, &pass) {
        cx.client.authenticated = true;
        cx.out().ok();
    } else {
        cx.error(WRONGPASS);
    }
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
pub fn hello(cx: &mut Ctx) {
    let mut ver = None;
    let mut next = 1;
    if cx.argv.len() >= 2 {
        match crate::resp::parse_i64(&cx.argv[1]) {
            Some(v) if (i32::MIN as i64..=i32::MAX as i64).contains(&v) => ver = Some(v),
            _ => return cx.error("ERR Protocol version is not an integer or out of range"),
        }
        next = 2;
        if !(2..=3).contains(&ver.unwrap_or(2)) {
            return cx.error("NOPROTO unsupported protocol version");
        }
    }
    let mut setname = None;
    let mut j = next;
    while j < cx.argv.len() {
        let more = cx.argv.len() - j - 1;
        if cx.arg_is(j, "AUTH") && more >= 2 {
            let (user, pass) = (cx.argv[j + 1].clone(), cx.argv[j + 2].clone());
            if !check_password(cx, &user, &pass) {
                return cx.error(WRONGPASS);
            }
            cx.client.authenticated = true;
            j += 3;
        } else if cx.arg_is(j, "SETNAME") && more >= 1 {
            let name = cx.argv[j + 1].clone();
            if !valid_client_name(&name) {
                return cx.error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            setname = Some(name);
            j += 2;
        } else {
            let msg = format!(
                "ERR Syntax error in HELLO option '{}'",
                crate::resp::c_str_lossy(&cx.argv[j])
            );
            return cx.error(&msg);
        }
    }
    if !cx.client.authenticated {
        return cx.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    if let Some(name) = setname {
        cx.client.name = if name.is_empty() { None } else { Some(name) };
    }
    if let Some(v) = ver {
        cx.client.reply.resp3 = v == 3;
    }
    let id = cx.client.id as i64;
    let proto = cx.client.resp() as i64;
    let out = cx.out();
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(crate::REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(proto);
    out.bulk(b"id");
    out.int(id);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
}

/// SELECT index
pub fn select(cx: &mut Ctx) {
    let Some(id) = cx.parse_i32(1) else { return };
    if id < 0 || id as usize >= cx.node.dbs.len() {
        return cx.error("ERR DB index is out of range");
    }
    cx.client.db = id as usize;
    cx.out().ok();
}

/// RESET: back to a fresh connection's state (db 0, RESP2, no name, and
/// unauthenticated if a password is required).
pub fn reset(cx: &mut Ctx) {
    crate::commands::pubsub::unsubscribe_everything(cx.node, cx.client);
    cx.client.multi = None;
    cx.client.multi_error = false;
    cx.node.unwatch_all(cx.client);
    let c = &mut cx.client;
    c.db = 0;
    c.reply.resp3 = false;
    c.name = None;
    c.authenticated = cx
        .node
        .acl
        .default_user()
        .is_some_and(|d| d.nopass && d.enabled);
    c.user = Some(bytes::Bytes::from_static(b"default"));
    cx.out().simple("RESET");
}

/// CLIENT ID
pub fn client_id(cx: &mut Ctx) {
    let id = cx.client.id as i64;
    cx.out().int(id);
}

/// Redis allows only printable ASCII without spaces in client names.
fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

/// CLIENT SETNAME name (empty clears it)
pub fn client_setname(cx: &mut Ctx) {
    let name = cx.argv[2].clone();
    if !valid_client_name(&name) {
        return cx.error("ERR Client names cannot contain spaces, newlines or special characters.");
    }
    cx.client.name = if name.is_empty() { None } else { Some(name) };
    cx.out().ok();
}

/// CLIENT GETNAME
pub fn client_getname(cx: &mut Ctx) {
    match cx.client.name.clone() {
        Some(n) => cx.out().bulk(&n),
        None => cx.out().null(),
    }
}

/// One CLIENT LIST line, with Redis 7.0's fields in Redis's order. Memory
/// fields are what the engine holds for the client.
pub(crate) fn client_line(node: &crate::Node, c: &Client, out: &mut String) {
    use std::fmt::Write;
    let now_s = node.now.as_secs();
    let tracking = node.tracking.clients.get(&c.id);
    // Redis shows the REDIRECT id (0 for none) of a tracking client.
    let redir = tracking.map_or(-1, |t| t.redirect as i64);
    let _ = writeln!(
        out,
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem=0 rbs={} rbp={} obl={} oll=0 omem={} tot-mem={} events=r cmd={} user={} redir={} resp={}",
        c.id,
        c.peer,
        c.local,
        c.conn.0,
        c.name.as_ref().map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default(),
        now_s.saturating_sub(c.created.as_secs()),
        now_s.saturating_sub(c.last_interaction.as_secs()),
        client_flags(node, c, tracking),
        c.db,
        c.channels.len(),
        c.patterns.len(),
        c.shard_channels.len(),
        c.multi.as_ref().map_or(-1, |q| q.len() as i64),
        c.querybuf.len(),
        c.querybuf.capacity() - c.querybuf.len(),
        c.argv.iter().map(|a| a.len()).sum::<usize>(),
        c.reply.buf.capacity(),
        c.reply.buf.len(),
        c.reply.buf.len(),
        c.output_backlog,
        crate::memory::client_bytes(c),
        c.last_cmd,
        c.user
            .as_ref()
            .map(|u| String::from_utf8_lossy(u).into_owned())
            .unwrap_or_default(),
        redir,
        c.resp(),
    );
}

/// CLIENT LIST's flags in Redis's order (`getClientInfoString`): O
/// (MONITOR), P (pub/sub), x (in MULTI), b (blocked), t (tracking), R
/// (tracking's REDIRECT client is gone), B (BCAST tracking), d (watched
/// key modified), e (no-evict); N when none.
fn client_flags(
    node: &crate::Node,
    c: &Client,
    tracking: Option<&crate::tracking::ClientTracking>,
) -> String {
    let mut f = String::new();
    if node.monitors.contains(&c.conn) {
        f.push('O');
    }
    if c.subscription_count() > 0 || !c.shard_channels.is_empty() {
        f.push('P');
    }
    if c.multi.is_some() {
        f.push('x');
    }
    if c.blocked.is_some() {
        f.push('b');
    }
    if let Some(t) = tracking {
        f.push('t');
        if t.broken_redirect {
            f.push('R');
        }
        if t.bcast {
            f.push('B');
        }
    }
    if c.dirty_cas {
        f.push('d');
    }
    if c.no_evict {
        f.push('e');
    }
    if f.is_empty() {
        f.push('N');
    }
    f
}

/// CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id [id ...]]
pub fn client_list(cx: &mut Ctx) {
    let mut ids: Option<Vec<u64>> = None;
    let mut j = 2;
    while j < cx.argv.len() {
        if cx.arg_is(j, "TYPE") && j + 1 < cx.argv.len() {
            let t = cx.argv[j + 1].to_ascii_lowercase();
            if !matches!(
                t.as_slice(),
                b"normal" | b"master" | b"replica" | b"slave" | b"pubsub"
            ) {
                let msg = format!(
                    "ERR Unknown client type '{}'",
                    crate::resp::c_str_lossy(&cx.argv[j + 1])
                );
                return cx.error(&msg);
            }
            if t != b"normal" {
                ids = Some(vec![]);
            }
            j += 2;
        } else if cx.arg_is(j, "ID") && j + 1 < cx.argv.len() {
            let mut v = vec![];
            for k in j + 1..cx.argv.len() {
                match crate::resp::parse_i64(&cx.argv[k]) {
                    Some(n) if n > 0 => v.push(n as u64),
                    _ => return cx.error("ERR Invalid client ID"),
                }
            }
            ids = Some(v);
            j = cx.argv.len();
        } else {
            return cx.syntax_error();
        }
    }
    let mut text = String::new();
    for c in cx.node.all_clients(cx.client) {
        if ids.as_ref().is_none_or(|v| v.contains(&c.id)) {
            client_line(cx.node, c, &mut text);
        }
    }
    cx.client.reply.verbatim(text.as_bytes(), "txt");
}

/// CLIENT INFO
pub fn client_info(cx: &mut Ctx) {
    let mut text = String::new();
    client_line(cx.node, cx.client, &mut text);
    cx.client.reply.verbatim(text.as_bytes(), "txt");
}

/// CLIENT KILL ip:port | CLIENT KILL [ID id] [ADDR ip:port] [LADDR ip:port]
/// [SKIPME yes|no] [USER name] [TYPE type] [MAXAGE secs]
pub fn client_kill(cx: &mut Ctx) {
    let mut id: Option<u64> = None;
    let mut addr: Option<Vec<u8>> = None;
    let mut laddr: Option<Vec<u8>> = None;
    let mut skipme = true;
    let mut maxage: Option<u64> = None;
    let mut user: Option<bytes::Bytes> = None;
    let mut pubsub_type: Option<bool> = None;
    let old_style = cx.argv.len() == 3;
    if old_style {
        addr = Some(cx.argv[2].to_vec());
        skipme = false;
    } else {
        let mut j = 2;
        while j < cx.argv.len() {
            if j + 1 >= cx.argv.len() {
                return cx.syntax_error();
            }
            let val = cx.argv[j + 1].clone();
            if cx.arg_is(j, "ID") {
                match crate::resp::parse_i64(&val) {
                    Some(n) if n > 0 => id = Some(n as u64),
                    _ => return cx.error("ERR client-id should be greater than 0"),
                }
            } else if cx.arg_is(j, "ADDR") {
                addr = Some(val.to_vec());
            } else if cx.arg_is(j, "LADDR") {
                laddr = Some(val.to_vec());
            } else if cx.arg_is(j, "SKIPME") {
                if val.eq_ignore_ascii_case(b"yes") {
                    skipme = true;
                } else if val.eq_ignore_ascii_case(b"no") {
                    skipme = false;
                } else {
                    return cx.syntax_error();
                }
            } else if cx.arg_is(j, "MAXAGE") {
                // Redis answers a bad MAXAGE with a plain syntax error.
                match crate::resp::parse_i64(&val) {
                    Some(n) => maxage = Some(n.max(0) as u64),
                    None => return cx.syntax_error(),
                }
            } else if cx.arg_is(j, "USER") {
                if !cx.node.acl.users.contains_key(&val) {
                    let msg = format!("ERR No such user '{}'", crate::resp::c_str_lossy(&val));
                    return cx.error(&msg);
                }
                user = Some(val.clone());
            } else if cx.arg_is(j, "TYPE") {
                let t = val.to_ascii_lowercase();
                if !matches!(
                    t.as_slice(),
                    b"normal" | b"master" | b"replica" | b"slave" | b"pubsub"
                ) {
                    let msg = format!(
                        "ERR Unknown client type '{}'",
                        crate::resp::c_str_lossy(&val)
                    );
                    return cx.error(&msg);
                }
                match t.as_slice() {
                    b"normal" => pubsub_type = Some(false),
                    b"pubsub" => pubsub_type = Some(true),
                    // No replica or master clients exist yet.
                    _ => id = Some(0),
                }
            } else {
                return cx.syntax_error();
            }
            j += 2;
        }
    }
    let now_s = cx.node.now.as_secs();
    let matches = |c: &Client| {
        id.is_none_or(|i| c.id == i)
            && addr
                .as_ref()
                .is_none_or(|a| c.peer.as_bytes() == a.as_slice())
            && laddr
                .as_ref()
                .is_none_or(|a| c.local.as_bytes() == a.as_slice())
            && maxage.is_none_or(|m| now_s.saturating_sub(c.created.as_secs()) >= m)
            && user.as_ref().is_none_or(|u| c.user.as_ref() == Some(u))
            && pubsub_type
                .is_none_or(|p| p == (c.subscription_count() > 0 || !c.shard_channels.is_empty()))
    };
    let mut killed = 0;
    let victims: Vec<_> = cx
        .node
        .clients
        .values()
        .filter(|c| matches(c))
        .map(|c| c.conn)
        .collect();
    for conn in victims {
        if let Some(c) = cx.node.clients.get_mut(&conn) {
            c.close_after_reply = true;
            killed += 1;
        }
        cx.node.kill_client(conn);
    }
    if matches(cx.client) && !skipme {
        cx.client.close_after_reply = true;
        killed += 1;
    }
    if old_style {
        if killed == 0 {
            cx.error("ERR No such client");
        } else {
            cx.out().ok();
        }
    } else {
        cx.out().int(killed);
    }
}

pub fn client_help(cx: &mut Ctx) {
    cx.reply_help("client");
}

/// CLIENT UNBLOCK client-id [TIMEOUT|ERROR]: ends another client's blocking
/// command as if it timed out, or with an error.
pub fn client_unblock(cx: &mut Ctx) {
    let error = if cx.argv.len() == 4 {
        if cx.arg_is(3, "timeout") {
            false
        } else if cx.arg_is(3, "error") {
            true
        } else {
            return cx.error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
        }
    } else {
        false
    };
    let Some(id) = cx.parse_int(2) else { return };
    let unblocked = match cx.node.conn_of_client_id(id as u64) {
        Some(conn) => {
            let msg = error.then_some("UNBLOCKED client unblocked via CLIENT UNBLOCK");
            cx.node.finish_blocked(conn, msg)
        }
        None => false,
    };
    cx.out().int(unblocked as i64);
}
