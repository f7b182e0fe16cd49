//! Stream commands (Redis's `t_stream.c` command half): XADD, XLEN, XRANGE,
//! XREVRANGE, XDEL, XTRIM, XSETID, XREAD, XREADGROUP, XGROUP, XACK,
//! XPENDING, XCLAIM, XAUTOCLAIM and XINFO. The data structure is in
//! [`crate::stream`].
//!
//! Replication and the AOF see effects, as in Redis: XADD with `*` (or
//! `ms-*`) is logged with the ID it generated and an approximate trim with
//! the exact threshold it reached; XREADGROUP, XCLAIM and XAUTOCLAIM are
//! logged as one idempotent `XCLAIM ... FORCE JUSTID LASTID` per entry
//! whose ownership changed, plus `XGROUP SETID` when only the group's last
//! ID moved.
//!
//! Blocking XREAD/XREADGROUP use the node's re-execution model: the command
//! runs again when a key is signalled. An XREAD blocked on `$` has its
//! `$` replaced by the ID it resolved to, so the re-run waits for entries
//! after that ID, as Redis does. While re-running, a blocked XREADGROUP
//! whose stream was deleted (or replaced) or whose group was destroyed is
//! answered with Redis's UNBLOCKED/NOGROUP errors.

use super::{Lookup, Typed};
use crate::command::Handler;
use crate::db::Value;
use crate::node::{Ctx, TimeoutReply};
use crate::notify::STREAM;
use crate::resp::ReplyBuf;
use crate::stream::{
    Group, Stream, StreamEntry, StreamId, Trim, ENTRIES_READ_INVALID, LISTPACK_MAX_SIZE,
};
use bytes::Bytes;

/// Entries a blocked XREAD without COUNT receives at most when woken
/// (`XREAD_BLOCKED_DEFAULT_COUNT`).
const BLOCKED_DEFAULT_COUNT: usize = 1000;

pub fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "xadd" => xadd,
        "xlen" => xlen,
        "xrange" => xrange,
        "xrevrange" => xrevrange,
        "xdel" => xdel,
        "xtrim" => xtrim,
        "xsetid" => xsetid,
        "xread" => xread,
        "xreadgroup" => xread,
        "xack" => xack,
        "xpending" => xpending,
        "xclaim" => xclaim,
        "xautoclaim" => xautoclaim,
        "xgroup|create" => xgroup_create,
        "xgroup|setid" => xgroup_setid,
        "xgroup|destroy" => xgroup_destroy,
        "xgroup|createconsumer" => xgroup_createconsumer,
        "xgroup|delconsumer" => xgroup_delconsumer,
        "xgroup|help" => xgroup_help,
        "xinfo|stream" => xinfo_stream,
        "xinfo|groups" => xinfo_groups,
        "xinfo|consumers" => xinfo_consumers,
        "xinfo|help" => xinfo_help,
        _ => return None,
    })
}

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// C's `strtoull` as `string2ull` falls back to it: optional leading
/// whitespace, an optional sign (a minus negates, modulo 2^64), decimal
/// digits to the end. `None` on overflow or trailing bytes.
fn strtoull(s: &[u8]) -> Option<u64> {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    if i >= s.len() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in &s[i..] {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Redis's `string2ull`: an i64 in canonical form (negative ones are
/// rejected), else whatever `strtoull` accepts.
fn string2ull(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    if let Some(v) = crate::resp::parse_i64(s) {
        return u64::try_from(v).ok();
    }
    strtoull(s)
}

/// A parsed ID argument and whether its sequence was given (false for
/// `<ms>-*`).
struct ParsedId {
    id: StreamId,
    seq_given: bool,
}

/// `streamGenericParseIDOrReply`: `-`, `+`, `<ms>`, `<ms>-<seq>`, and with
/// `allow_star_seq` `<ms>-*`. `strict` rejects `-` and `+`.
fn parse_id_raw(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
    allow_star_seq: bool,
) -> Option<ParsedId> {
    // Redis copies the argument into a 128-byte C buffer.
    if arg.len() > 127 {
        return None;
    }
    let buf = crate::resp::c_str(arg);
    if strict && (buf == b"-" || buf == b"+") {
        return None;
    }
    if buf == b"-" {
        return Some(ParsedId {
            id: StreamId::MIN,
            seq_given: true,
        });
    }
    if buf == b"+" {
        return Some(ParsedId {
            id: StreamId::MAX,
            seq_given: true,
        });
    }
    let (ms_part, seq_part) = match buf.iter().position(|&c| c == b'-') {
        Some(p) => (&buf[..p], Some(&buf[p + 1..])),
        None => (buf, None),
    };
    let ms = string2ull(ms_part)?;
    let (seq, seq_given) = match seq_part {
        Some(b"*") if allow_star_seq => (0, false),
        Some(s) => (string2ull(s)?, true),
        None => (missing_seq, true),
    };
    Some(ParsedId {
        id: StreamId::new(ms, seq),
        seq_given,
    })
}

/// `streamParseStrictIDOrReply` (no `-`/`+`) or `streamParseIDOrReply`.
fn parse_id(cx: &mut Ctx, i: usize, missing_seq: u64, strict: bool) -> Option<StreamId> {
    match parse_id_raw(&cx.argv[i], missing_seq, strict, false) {
        Some(p) => Some(p.id),
        None => {
            cx.error(INVALID_ID);
            None
        }
    }
}

/// `streamParseIntervalIDOrReply`: an ID, or `(ID` for an exclusive bound.
/// Returns the ID and whether it is exclusive.
fn parse_interval(cx: &mut Ctx, i: usize, missing_seq: u64) -> Option<(StreamId, bool)> {
    let a = cx.argv[i].clone();
    if a.len() > 1 && a[0] == b'(' {
        match parse_id_raw(&a[1..], missing_seq, true, false) {
            Some(p) => Some((p.id, true)),
            None => {
                cx.error(INVALID_ID);
                None
            }
        }
    } else {
        parse_id(cx, i, missing_seq, false).map(|id| (id, false))
    }
}

/// A start bound for a range: exclusive ones move up by one.
fn range_start(cx: &mut Ctx, i: usize) -> Option<StreamId> {
    let (id, ex) = parse_interval(cx, i, 0)?;
    if !ex {
        return Some(id);
    }
    match id.incr() {
        Some(n) => Some(n),
        None => {
            cx.error("ERR invalid start ID for the interval");
            None
        }
    }
}

/// An end bound for a range: exclusive ones move down by one.
fn range_end(cx: &mut Ctx, i: usize) -> Option<StreamId> {
    let (id, ex) = parse_interval(cx, i, u64::MAX)?;
    if !ex {
        return Some(id);
    }
    match id.decr() {
        Some(n) => Some(n),
        None => {
            cx.error("ERR invalid end ID for the interval");
            None
        }
    }
}

/// Parses a long long with Redis's generic message, or a custom one.
fn parse_ll(cx: &mut Ctx, i: usize, msg: Option<&str>) -> Option<i64> {
    match crate::resp::parse_i64(&cx.argv[i]) {
        Some(v) => Some(v),
        None => {
            cx.error(msg.unwrap_or("ERR value is not an integer or out of range"));
            None
        }
    }
}

/// An error that quotes client bytes, e.g. `NOGROUP No such key 'k' ...`.
/// Redis formats them with `%s`, so each piece stops at a NUL byte.
fn error_quoting(cx: &mut Ctx, parts: &[&[u8]]) {
    let mut msg = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        // Even pieces are our text; odd pieces are client bytes.
        if i % 2 == 1 {
            msg.extend_from_slice(crate::resp::c_str(p));
        } else {
            msg.extend_from_slice(p);
        }
    }
    let code =
        String::from_utf8_lossy(msg.split(|&c| c == b' ').next().unwrap_or(b"ERR")).into_owned();
    cx.node.count_error(&code);
    cx.client.reply.error_bytes(&msg);
}

/// `addReplySubcommandSyntaxError`.
fn subcommand_syntax_error(cx: &mut Ctx) {
    let cmd = String::from_utf8_lossy(&cx.argv[0]).to_uppercase();
    let sub = cx.argv[1].clone();
    let sub = crate::resp::c_str(&sub);
    let head = "ERR unknown subcommand or wrong number of arguments for '";
    let tail = format!("'. Try {cmd} HELP.");
    error_quoting(
        cx,
        &[head.as_bytes(), &sub[..sub.len().min(128)], tail.as_bytes()],
    );
}

// ---------------------------------------------------------------------------
// Lookups and replies
// ---------------------------------------------------------------------------

/// The stream at `key` after a typed lookup (`write`: no hit/miss stats).
/// `Err` after a WRONGTYPE reply.
fn lookup<'a>(cx: &'a mut Ctx, key: &[u8], write: bool) -> Result<Option<&'a mut Stream>, ()> {
    let db = cx.client.db;
    let found = if write {
        cx.node.write_typed::<Stream>(db, key)
    } else {
        cx.node.read_typed::<Stream>(db, key)
    };
    match found {
        Lookup::WrongType => {
            cx.wrongtype();
            Err(())
        }
        Lookup::Missing => Ok(None),
        Lookup::Found(_) => Ok(existing(cx, key)),
    }
}

/// The stream at `key` once a lookup has applied expiry; no stats, no
/// type error (`None` for a missing key or another type).
fn existing<'a>(cx: &'a mut Ctx, key: &[u8]) -> Option<&'a mut Stream> {
    let e = cx.node.dbs[cx.client.db].keys.get_mut(key)?;
    Stream::from_value(&mut e.value)
}

fn reply_id(cx: &mut Ctx, id: StreamId) {
    cx.client.reply.bulk(&id.to_bytes());
}

/// One entry: `[id, [field, value, ...]]`, or `[id, nil]` for a pending
/// entry no longer in the stream.
fn reply_entry(cx: &mut Ctx, e: &StreamEntry) {
    let out = &mut cx.client.reply;
    out.array(2);
    out.bulk(&e.id.to_bytes());
    if e.fields.len() == 1 && e.fields[0] == DELETED_MARK {
        return out.null_array();
    }
    out.array(e.fields.len());
    for f in &e.fields {
        out.bulk(f);
    }
}

fn reply_entries(cx: &mut Ctx, entries: &[StreamEntry]) {
    cx.client.reply.array(entries.len());
    for e in entries {
        reply_entry(cx, e);
    }
}

fn id_arg(id: StreamId) -> Bytes {
    id.to_bytes()
}

/// Logs an effect for the AOF in the client's db.
fn propagate(cx: &mut Ctx, argv: Vec<Bytes>) {
    let db = cx.client.db;
    cx.node.propagate(db, argv);
}

/// A pending entry as it is to be logged.
struct Nack<'a> {
    id: StreamId,
    consumer: &'a Bytes,
    delivery_time: i64,
    count: u64,
}

/// `streamPropagateXCLAIM`: an idempotent XCLAIM that recreates the PEL
/// entry `id` exactly as it is now, or deletes it if it is gone.
fn propagate_xclaim(cx: &mut Ctx, key: &Bytes, group: &Bytes, nack: Nack<'_>, last_id: StreamId) {
    let Nack {
        id,
        consumer,
        delivery_time,
        count,
    } = nack;
    let s = |v: &str| Bytes::copy_from_slice(v.as_bytes());
    propagate(
        cx,
        vec![
            s("XCLAIM"),
            key.clone(),
            group.clone(),
            consumer.clone(),
            s("0"),
            id_arg(id),
            s("TIME"),
            s(&delivery_time.to_string()),
            s("RETRYCOUNT"),
            s(&count.to_string()),
            s("FORCE"),
            s("JUSTID"),
            s("LASTID"),
            id_arg(last_id),
        ],
    );
}

/// `streamPropagateGroupID`: `XGROUP SETID key group last-id ENTRIESREAD n`.
fn propagate_group_id(
    cx: &mut Ctx,
    key: &Bytes,
    group: &Bytes,
    last_id: StreamId,
    entries_read: i64,
) {
    let s = |v: &str| Bytes::copy_from_slice(v.as_bytes());
    propagate(
        cx,
        vec![
            s("XGROUP"),
            s("SETID"),
            key.clone(),
            group.clone(),
            id_arg(last_id),
            s("ENTRIESREAD"),
            s(&entries_read.to_string()),
        ],
    );
}

// ---------------------------------------------------------------------------
// XADD, XTRIM
// ---------------------------------------------------------------------------

/// Options shared by XADD and XTRIM (`streamAddTrimArgs`).
struct AddTrimArgs {
    trim: Trim,
    approx: bool,
    limit: u64,
    /// Index of the threshold argument (for rewriting an approximate trim).
    threshold_idx: usize,
    no_mkstream: bool,
    id: Option<ParsedId>,
    /// Index of the ID argument (XADD).
    id_idx: usize,
}

/// `streamParseAddOrTrimArgsOrReply`.
fn parse_add_trim(cx: &mut Ctx, xadd: bool) -> Option<AddTrimArgs> {
    let mut a = AddTrimArgs {
        trim: Trim::None,
        approx: false,
        limit: 0,
        threshold_idx: 0,
        no_mkstream: false,
        id: None,
        id_idx: 0,
    };
    let argc = cx.argv.len();
    let mut limit_given = false;
    let mut limit: i64 = 0;
    let mut i = 2;
    while i < argc {
        let moreargs = argc - 1 - i;
        let opt = cx.argv[i].clone();
        if xadd && opt.as_ref() == b"*" {
            break;
        } else if (opt.eq_ignore_ascii_case(b"maxlen") || opt.eq_ignore_ascii_case(b"minid"))
            && moreargs > 0
        {
            let maxlen = opt.eq_ignore_ascii_case(b"maxlen");
            if a.trim != Trim::None {
                cx.error("ERR syntax error, MAXLEN and MINID options at the same time are not compatible");
                return None;
            }
            a.approx = false;
            let next = cx.argv[i + 1].as_ref();
            if moreargs >= 2 && next == b"~" {
                a.approx = true;
                i += 1;
            } else if moreargs >= 2 && next == b"=" {
                i += 1;
            }
            if maxlen {
                let n = parse_ll(cx, i + 1, None)?;
                if n < 0 {
                    cx.error("ERR The MAXLEN argument must be >= 0.");
                    return None;
                }
                a.trim = Trim::MaxLen(n as u64);
            } else {
                let id = parse_id(cx, i + 1, 0, true)?;
                a.trim = Trim::MinId(id);
            }
            i += 1;
            a.threshold_idx = i;
        } else if opt.eq_ignore_ascii_case(b"limit") && moreargs > 0 {
            let n = parse_ll(cx, i + 1, None)?;
            if n < 0 {
                cx.error("ERR The LIMIT argument must be >= 0.");
                return None;
            }
            limit = n;
            limit_given = true;
            i += 1;
        } else if xadd && opt.eq_ignore_ascii_case(b"nomkstream") {
            a.no_mkstream = true;
        } else if xadd {
            match parse_id_raw(&opt, 0, true, true) {
                Some(p) => a.id = Some(p),
                None => {
                    cx.error(INVALID_ID);
                    return None;
                }
            }
            break;
        } else {
            cx.syntax_error();
            return None;
        }
        i += 1;
    }
    a.id_idx = i;
    if limit != 0 && a.trim == Trim::None {
        cx.error("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy");
        return None;
    }
    if !xadd && a.trim == Trim::None {
        cx.error("ERR syntax error, XTRIM must be called with a trimming strategy");
        return None;
    }
    if cx.node.aof.replaying {
        // The log holds the exact threshold the trim reached (see
        // `rewrite_trim`): never cap it (`mustObeyClient`).
        a.limit = 0;
    } else if limit_given {
        if !a.approx {
            cx.error("ERR syntax error, LIMIT cannot be used without the special ~ option");
            return None;
        }
        a.limit = limit as u64;
    } else if a.approx {
        let n = 100i64.saturating_mul(cx.node.config.stream_node_max_entries);
        a.limit = if n <= 0 || n as u64 > LISTPACK_MAX_SIZE {
            10000
        } else {
            n as u64
        };
    }
    Some(a)
}

/// After an approximate trim, the logged command says `=` and the
/// threshold actually reached (`streamRewriteApproxSpecifier` and
/// `streamRewriteTrimArgument`), so replaying it trims exactly as much.
fn rewrite_trim(argv: &mut [Bytes], a: &AddTrimArgs, s: &Stream) {
    if !a.approx || a.threshold_idx == 0 {
        return;
    }
    argv[a.threshold_idx - 1] = Bytes::from_static(b"=");
    argv[a.threshold_idx] = match a.trim {
        Trim::MaxLen(_) => Bytes::from(s.length.to_string()),
        Trim::MinId(_) => s.first_id.to_bytes(),
        Trim::None => return,
    };
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value [field value ...]
pub fn xadd(cx: &mut Ctx) {
    let Some(a) = parse_add_trim(cx, true) else {
        return;
    };
    let field_pos = a.id_idx + 1;
    let argc = cx.argv.len();
    if argc < field_pos + 2 || (argc - field_pos) % 2 == 1 {
        return cx.error("ERR wrong number of arguments for 'xadd' command");
    }
    if let Some(p) = &a.id {
        if p.seq_given && p.id == StreamId::MIN {
            return cx.error("ERR The ID specified in XADD must be greater than 0-0");
        }
    }
    let key = cx.argv[1].clone();
    let exists = match lookup(cx, &key, true) {
        Err(()) => return,
        Ok(s) => s.is_some(),
    };
    if !exists {
        if a.no_mkstream {
            return cx.out().null();
        }
        let lru = cx.lru_now();
        cx.db().set(key.clone(), Value::Stream(Box::default()), lru);
    }
    let now = cx.now_ms().max(0) as u64;
    let (max_bytes, max_entries) = (
        cx.node.config.stream_node_max_bytes,
        cx.node.config.stream_node_max_entries,
    );
    let argv = cx.argv;
    let Some(s) = existing(cx, &key) else { return };
    if s.last_id == StreamId::MAX {
        return cx
            .error("ERR The stream has exhausted the last possible ID, unable to add more items");
    }
    // streamAppendItem's ID choice.
    let id = match &a.id {
        Some(p) if p.seq_given => p.id,
        Some(p) => {
            if s.last_id.ms == p.id.ms {
                match s.last_id.seq.checked_add(1) {
                    Some(seq) => StreamId::new(p.id.ms, seq),
                    None => {
                        return cx.error("ERR The ID specified in XADD is equal or smaller than the target stream top item")
                    }
                }
            } else {
                p.id
            }
        }
        None => {
            if now > s.last_id.ms {
                StreamId::new(now, 0)
            } else {
                // `incr` fails only at MAX, excluded above.
                s.last_id.incr().unwrap_or(StreamId::MAX)
            }
        }
    };
    if id <= s.last_id {
        return cx.error(
            "ERR The ID specified in XADD is equal or smaller than the target stream top item",
        );
    }
    if !s.append(id, &argv[field_pos..], max_bytes, max_entries) {
        return cx.error("ERR Elements are too large to be stored");
    }
    cx.client.reply.bulk(&id.to_bytes());
    cx.dirty(1);
    cx.notify(STREAM, "xadd", &key);
    let mut logged = argv.to_vec();
    let mut trimmed = 0;
    if a.trim != Trim::None {
        if let Some(s) = existing(cx, &key) {
            trimmed = s.trim(a.trim, a.approx, a.limit);
            rewrite_trim(&mut logged, &a, s);
        }
    }
    if trimmed > 0 {
        cx.notify(STREAM, "xtrim", &key);
    }
    if a.id.as_ref().is_none_or(|p| !p.seq_given) {
        logged[a.id_idx] = id.to_bytes();
    }
    propagate(cx, logged);
    cx.signal_ready(&key);
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
pub fn xtrim(cx: &mut Ctx) {
    let Some(a) = parse_add_trim(cx, false) else {
        return;
    };
    let key = cx.argv[1].clone();
    let mut logged = cx.argv.to_vec();
    let deleted = match lookup(cx, &key, true) {
        Err(()) => return,
        Ok(None) => 0,
        Ok(Some(s)) => {
            let n = s.trim(a.trim, a.approx, a.limit);
            if n > 0 {
                rewrite_trim(&mut logged, &a, s);
            }
            n
        }
    };
    if deleted > 0 {
        cx.notify(STREAM, "xtrim", &key);
        cx.dirty(deleted);
        propagate(cx, logged);
    }
    cx.out().int(deleted as i64);
}

/// XLEN key
pub fn xlen(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    match lookup(cx, &key, false) {
        Err(()) => {}
        Ok(s) => {
            let n = s.map_or(0, |s| s.length);
            cx.out().int(n as i64);
        }
    }
}

/// XRANGE key start end [COUNT count]
pub fn xrange(cx: &mut Ctx) {
    range_generic(cx, false);
}

/// XREVRANGE key end start [COUNT count]
pub fn xrevrange(cx: &mut Ctx) {
    range_generic(cx, true);
}

/// `xrangeGenericCommand`.
fn range_generic(cx: &mut Ctx, rev: bool) {
    let (si, ei) = if rev { (3, 2) } else { (2, 3) };
    let Some(start) = range_start(cx, si) else {
        return;
    };
    let Some(end) = range_end(cx, ei) else { return };
    let mut count: i64 = -1;
    let mut j = 4;
    while j < cx.argv.len() {
        if cx.arg_is(j, "COUNT") && j + 1 < cx.argv.len() {
            let Some(n) = parse_ll(cx, j + 1, None) else {
                return;
            };
            count = n.max(0);
            j += 2;
        } else {
            return cx.syntax_error();
        }
    }
    let key = cx.argv[1].clone();
    let entries = match lookup(cx, &key, false) {
        Err(()) => return,
        Ok(None) => return cx.out().array(0),
        Ok(Some(_)) if count == 0 => return cx.out().null_array(),
        Ok(Some(s)) => s.range(start, end, count.max(0) as usize, rev),
    };
    reply_entries(cx, &entries);
}

/// XDEL key id [id ...]
pub fn xdel(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    match lookup(cx, &key, true) {
        Err(()) => return,
        Ok(None) => return cx.out().int(0),
        Ok(Some(_)) => {}
    }
    let mut ids = Vec::with_capacity(cx.argv.len() - 2);
    for j in 2..cx.argv.len() {
        let Some(id) = parse_id(cx, j, 0, true) else {
            return;
        };
        ids.push(id);
    }
    let Some(s) = existing(cx, &key) else { return };
    let deleted: Vec<StreamId> = ids.into_iter().filter(|id| s.delete(*id)).collect();
    s.after_delete(&deleted);
    let n = deleted.len();
    if n > 0 {
        cx.notify(STREAM, "xdel", &key);
        cx.dirty(n as u64);
    }
    cx.out().int(n as i64);
}

/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]
pub fn xsetid(cx: &mut Ctx) {
    let Some(id) = parse_id(cx, 2, 0, true) else {
        return;
    };
    let mut entries_added: i64 = -1;
    let mut max_xdel = StreamId::MIN;
    let mut i = 3;
    while i < cx.argv.len() {
        let more = i + 1 < cx.argv.len();
        if cx.arg_is(i, "ENTRIESADDED") && more {
            let Some(n) = parse_ll(cx, i + 1, None) else {
                return;
            };
            if n < 0 {
                return cx.error("ERR entries_added must be positive");
            }
            entries_added = n;
        } else if cx.arg_is(i, "MAXDELETEDID") && more {
            let Some(m) = parse_id(cx, i + 1, 0, true) else {
                return;
            };
            if id < m {
                return cx.error("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id");
            }
            max_xdel = m;
        } else {
            return cx.syntax_error();
        }
        i += 2;
    }
    let key = cx.argv[1].clone();
    let s = match lookup(cx, &key, true) {
        Err(()) => return,
        Ok(None) => return cx.error("ERR no such key"),
        Ok(Some(s)) => s,
    };
    if s.length > 0 {
        let maxid = s.edge_id(false, true);
        if id < maxid {
            return cx.error(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            );
        }
        if entries_added != -1 && s.length > entries_added as u64 {
            return cx.error("ERR The entries_added specified in XSETID is smaller than the target stream length");
        }
    }
    s.last_id = id;
    if entries_added != -1 {
        s.entries_added = entries_added as u64;
    }
    if max_xdel != StreamId::MIN {
        s.max_deleted_id = max_xdel;
    }
    cx.dirty(1);
    cx.out().ok();
    cx.notify(STREAM, "xsetid", &key);
}

// ---------------------------------------------------------------------------
// XREAD, XREADGROUP
// ---------------------------------------------------------------------------

/// The ID a stream is read after.
#[derive(Clone, Copy)]
enum ReadFrom {
    /// Entries strictly after this ID.
    After(StreamId),
    /// XREADGROUP `>`: entries never delivered to the group.
    New,
    /// XREADGROUP with an ID: the consumer's own pending history from it.
    History(StreamId),
}

/// XREAD [COUNT count] [BLOCK milliseconds] STREAMS key [key ...] id [id ...]
/// XREADGROUP GROUP group consumer [COUNT count] [BLOCK milliseconds] [NOACK] STREAMS key [key ...] id [id ...]
pub fn xread(cx: &mut Ctx) {
    let xreadgroup = cx.argv[0].len() == 10;
    let argc = cx.argv.len();
    let mut timeout: Option<Option<crate::node::Time>> = None;
    let mut count: i64 = 0;
    let mut streams_arg = 0;
    let mut streams_count = 0;
    let mut noack = false;
    let mut group_consumer: Option<(Bytes, Bytes)> = None;
    let mut i = 1;
    while i < argc {
        let moreargs = argc - i - 1;
        if cx.arg_is(i, "BLOCK") && moreargs > 0 {
            // The script client has no address (MONITOR shows "lua"); the
            // AOF loader's connection id is the largest.
            if cx.client.peer.is_empty() && cx.client.conn.0 != u64::MAX {
                let msg = format!(
                    "ERR {} command is not allowed with BLOCK option from scripts",
                    String::from_utf8_lossy(&cx.argv[0])
                );
                return cx.error(&msg);
            }
            i += 1;
            let Some(t) = parse_block_ms(cx, i) else {
                return;
            };
            timeout = Some(t);
        } else if cx.arg_is(i, "COUNT") && moreargs > 0 {
            i += 1;
            let Some(n) = parse_ll(cx, i, None) else {
                return;
            };
            count = n.max(0);
        } else if cx.arg_is(i, "STREAMS") && moreargs > 0 {
            streams_arg = i + 1;
            let n = argc - streams_arg;
            if !n.is_multiple_of(2) {
                // Redis 7.0 says XREAD and `$` for XREADGROUP too.
                return cx.error("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.");
            }
            streams_count = n / 2;
            break;
        } else if cx.arg_is(i, "GROUP") && moreargs >= 2 {
            if !xreadgroup {
                return cx.error("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.");
            }
            group_consumer = Some((cx.argv[i + 1].clone(), cx.argv[i + 2].clone()));
            i += 2;
        } else if cx.arg_is(i, "NOACK") {
            if !xreadgroup {
                return cx.error("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.");
            }
            noack = true;
        } else {
            return cx.syntax_error();
        }
        i += 1;
    }
    if streams_arg == 0 {
        return cx.syntax_error();
    }
    if xreadgroup && group_consumer.is_none() {
        return cx.error("ERR Missing GROUP option for XREADGROUP");
    }
    // Re-run because a key this client blocks on was signalled.
    let woken = cx.client.blocked.is_some();
    let keys: Vec<Bytes> = cx.argv[streams_arg..streams_arg + streams_count].to_vec();
    let mut from = Vec::with_capacity(streams_count);
    let mut resolved_dollar = false;
    for (k, key) in keys.iter().enumerate() {
        let idx = streams_arg + streams_count + k;
        let db = cx.client.db;
        let is_stream = match cx.node.read_typed::<Stream>(db, key) {
            Lookup::WrongType if woken => {
                if group_consumer.is_some() {
                    return cx.error("UNBLOCKED the stream key no longer exists");
                }
                // A blocked XREAD waits on through a type change.
                false
            }
            Lookup::WrongType => return cx.wrongtype(),
            Lookup::Missing => false,
            Lookup::Found(_) => true,
        };
        if let Some((g, _)) = &group_consumer {
            let has_group =
                is_stream && existing(cx, key).is_some_and(|s| s.groups.contains_key(g));
            if !has_group {
                let g = g.clone();
                if woken && !is_stream {
                    return cx.error("UNBLOCKED the stream key no longer exists");
                }
                if woken {
                    return cx.error(
                        "NOGROUP the consumer group this client was blocked on no longer exists",
                    );
                }
                return error_quoting(
                    cx,
                    &[
                        b"NOGROUP No such key '",
                        key,
                        b"' or consumer group '",
                        &g,
                        b"' in XREADGROUP with GROUP option",
                    ],
                );
            }
        }
        let arg = cx.argv[idx].clone();
        if arg.as_ref() == b"$" {
            if xreadgroup {
                return cx.error("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.");
            }
            let last = if is_stream {
                existing(cx, key).map_or(StreamId::MIN, |s| s.last_id)
            } else {
                StreamId::MIN
            };
            resolved_dollar = true;
            from.push(ReadFrom::After(last));
            continue;
        }
        if arg.as_ref() == b">" {
            if !xreadgroup {
                return cx.error("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.");
            }
            from.push(ReadFrom::New);
            continue;
        }
        let Some(id) = parse_id(cx, idx, 0, true) else {
            return;
        };
        // Redis marks `>` with the largest ID, so that ID means `>` too.
        from.push(if !xreadgroup {
            ReadFrom::After(id)
        } else if id == StreamId::MAX {
            ReadFrom::New
        } else {
            ReadFrom::History(id)
        });
    }
    let count = if count == 0 && woken {
        BLOCKED_DEFAULT_COUNT
    } else {
        count as usize
    };
    // Serve synchronously what can be served. Woken by a key's signal,
    // Redis serves that key alone (`serveClientsBlockedOnStreamKey`).
    let serving = if woken {
        cx.node.serving_key.clone()
    } else {
        None
    };
    let mut served: Vec<(Bytes, Vec<StreamEntry>)> = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        if serving.as_ref().is_some_and(|sk| sk != key) {
            continue;
        }
        let Some(s) = existing(cx, key) else { continue };
        let start = match from[k] {
            ReadFrom::History(id) => Some(ReadFrom::History(id)),
            ReadFrom::New => {
                let last = group_consumer
                    .as_ref()
                    .and_then(|(g, _)| s.groups.get(g))
                    .map_or(StreamId::MAX, |g| g.last_id);
                (s.length > 0 && s.edge_id(false, true) > last).then_some(ReadFrom::After(last))
            }
            ReadFrom::After(id) => {
                (s.length > 0 && s.edge_id(false, true) > id).then_some(ReadFrom::After(id))
            }
        };
        let Some(start) = start else { continue };
        let entries = match &group_consumer {
            None => match start {
                ReadFrom::After(id) => match id.incr() {
                    Some(first) => s.range(first, StreamId::MAX, count, false),
                    None => Vec::new(),
                },
                _ => Vec::new(),
            },
            Some((g, c)) => {
                let (g, c) = (g.clone(), c.clone());
                read_group(cx, key, &g, &c, start, count, noack)
            }
        };
        served.push((key.clone(), entries));
    }
    if !served.is_empty() {
        let out = &mut cx.client.reply;
        if out.resp3 {
            out.map(served.len());
        } else {
            out.array(served.len());
        }
        for (key, entries) in &served {
            if !cx.client.reply.resp3 {
                cx.client.reply.array(2);
            }
            cx.client.reply.bulk(key);
            reply_entries(cx, entries);
        }
        return;
    }
    let Some(deadline) = timeout else {
        return cx.out().null_array();
    };
    if resolved_dollar && !woken {
        // Wait for entries after the IDs `$` meant now, not when re-run.
        let mut argv = cx.argv.to_vec();
        for (k, f) in from.iter().enumerate() {
            let idx = streams_arg + streams_count + k;
            if let ReadFrom::After(id) = f {
                if argv[idx].as_ref() == b"$" {
                    argv[idx] = id.to_bytes();
                }
            }
        }
        cx.block_with_argv(keys, deadline, TimeoutReply::NullArray, argv);
    } else {
        cx.block(keys, deadline, TimeoutReply::NullArray);
    }
}

/// BLOCK's argument: milliseconds (`getTimeoutFromObjectOrReply` with
/// UNIT_MILLISECONDS); 0 waits forever.
fn parse_block_ms(cx: &mut Ctx, i: usize) -> Option<Option<crate::node::Time>> {
    let Some(ms) = crate::resp::parse_i64(&cx.argv[i]) else {
        cx.error("ERR timeout is not an integer or out of range");
        return None;
    };
    if ms < 0 {
        cx.error("ERR timeout is negative");
        return None;
    }
    if ms == 0 {
        return Some(None);
    }
    if ms > i64::MAX - cx.now_ms() {
        cx.error("ERR timeout is out of range");
        return None;
    }
    Some(Some(
        cx.node.now.plus_micros((ms as u64).saturating_mul(1000)),
    ))
}

/// XREADGROUP's read of one stream (`streamReplyWithRange` with a group,
/// or `streamReplyWithRangeFromConsumerPEL` for history): creates the
/// consumer, delivers, records deliveries in the PELs, and logs them.
fn read_group(
    cx: &mut Ctx,
    key: &Bytes,
    gname: &Bytes,
    cname: &Bytes,
    start: ReadFrom,
    count: usize,
    noack: bool,
) -> Vec<StreamEntry> {
    let now = cx.now_ms();
    let Some(s) = existing(cx, key) else {
        return Vec::new();
    };
    let mut s_taken = std::mem::take(&mut s.groups);
    let Some(g) = s_taken.get_mut(gname) else {
        s.groups = s_taken;
        return Vec::new();
    };
    let (c, created) = g.consumer_mut(cname, now);
    c.seen_time = now;
    let mut props: Vec<(StreamId, i64, u64)> = Vec::new();
    let mut setid: Option<(StreamId, i64)> = None;
    let entries = match start {
        ReadFrom::History(from) => {
            // The consumer's pending entries after `from` (Redis starts at
            // the next ID; after the largest it wraps to 0-0). Entries
            // deleted from the stream come back as `[id, nil]`; the others
            // count as delivered again. History reads are not logged.
            let first = from.incr().unwrap_or(StreamId::MIN);
            let ids: Vec<StreamId> = c
                .pel
                .range(first..)
                .take(if count == 0 { usize::MAX } else { count })
                .copied()
                .collect();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                match s.get(id) {
                    Some(e) => {
                        if let Some(p) = g.pel.get_mut(&id) {
                            p.delivery_time = now;
                            p.delivery_count += 1;
                        }
                        out.push(e);
                    }
                    None => out.push(StreamEntry {
                        id,
                        fields: vec![DELETED_MARK.to_vec()],
                    }),
                }
            }
            out
        }
        ReadFrom::After(last) => {
            let entries = match last.incr() {
                Some(first) => s.range(first, StreamId::MAX, count, false),
                None => Vec::new(),
            };
            for e in &entries {
                if e.id > g.last_id {
                    if g.entries_read != ENTRIES_READ_INVALID
                        && !s.range_has_tombstones(Some(e.id), None)
                    {
                        g.entries_read = g.entries_read.wrapping_add(1);
                    } else if s.entries_added > 0 {
                        g.entries_read = s.estimate_distance(e.id);
                    }
                    g.last_id = e.id;
                    setid = Some((g.last_id, g.entries_read));
                }
                if !noack {
                    // A new NACK, or a reassigned one (after XGROUP SETID):
                    // either way delivered once, now, to this consumer.
                    g.assign(e.id, cname, now, 1);
                    props.push((e.id, now, 1));
                }
            }
            entries
        }
        ReadFrom::New => Vec::new(),
    };
    let last_id = g.last_id;
    s.groups = s_taken;
    cx.dirty(1);
    if created {
        cx.notify(STREAM, "xgroup-createconsumer", key);
    }
    if created && noack {
        let s = |v: &str| Bytes::copy_from_slice(v.as_bytes());
        propagate(
            cx,
            vec![
                s("XGROUP"),
                s("CREATECONSUMER"),
                key.clone(),
                gname.clone(),
                cname.clone(),
            ],
        );
    }
    for (id, t, n) in props {
        let nack = Nack {
            id,
            consumer: cname,
            delivery_time: t,
            count: n,
        };
        propagate_xclaim(cx, key, gname, nack, last_id);
    }
    if let Some((id, er)) = setid {
        propagate_group_id(cx, key, gname, id, er);
    }
    entries
}

/// Marks a history entry that no longer exists in the stream: replied as
/// `[id, nil]`. No real field list is a single element, so this cannot be
/// confused with one.
const DELETED_MARK: &[u8] = b"\x00deleted";

// ---------------------------------------------------------------------------
// XGROUP
// ---------------------------------------------------------------------------

/// The checks every XGROUP subcommand but HELP makes: the key must hold a
/// stream (or be missing with CREATE MKSTREAM) and, but for CREATE and
/// DESTROY, the group must exist. `Err` after replying.
fn xgroup_prelude(cx: &mut Ctx, mkstream: bool, needs_group: bool) -> Result<bool, ()> {
    let key = cx.argv[2].clone();
    let group = cx.argv[3].clone();
    let exists = lookup(cx, &key, true)?.is_some();
    if !exists && !mkstream {
        cx.error("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.");
        return Err(());
    }
    let has_group = existing(cx, &key).is_some_and(|s| s.groups.contains_key(&group));
    if needs_group && !has_group {
        error_quoting(
            cx,
            &[
                b"NOGROUP No such consumer group '",
                &group,
                b"' for key name '",
                &key,
                b"'",
            ],
        );
        return Err(());
    }
    Ok(exists)
}

/// XGROUP CREATE key group id|$ [MKSTREAM] [ENTRIESREAD entries-read]
pub fn xgroup_create(cx: &mut Ctx) {
    let mut mkstream = false;
    let mut entries_read = ENTRIES_READ_INVALID;
    let mut i = 5;
    while i < cx.argv.len() {
        if cx.arg_is(i, "MKSTREAM") {
            mkstream = true;
            i += 1;
        } else if cx.arg_is(i, "ENTRIESREAD") && i + 1 < cx.argv.len() {
            let Some(n) = parse_ll(cx, i + 1, None) else {
                return;
            };
            if n < 0 && n != ENTRIES_READ_INVALID {
                return cx.error("ERR value for ENTRIESREAD must be positive or -1");
            }
            entries_read = n;
            i += 2;
        } else {
            return subcommand_syntax_error(cx);
        }
    }
    let Ok(exists) = xgroup_prelude(cx, mkstream, false) else {
        return;
    };
    let key = cx.argv[2].clone();
    let gname = cx.argv[3].clone();
    let id = if cx.argv[4].as_ref() == b"$" {
        existing(cx, &key).map_or(StreamId::MIN, |s| s.last_id)
    } else {
        match parse_id(cx, 4, 0, true) {
            Some(id) => id,
            None => return,
        }
    };
    if !exists {
        let lru = cx.lru_now();
        cx.db().set(key.clone(), Value::Stream(Box::default()), lru);
    }
    let Some(s) = existing(cx, &key) else { return };
    if s.groups.contains_key(&gname) {
        return cx.error("BUSYGROUP Consumer Group name already exists");
    }
    s.groups.insert(gname, Group::new(id, entries_read));
    cx.dirty(1);
    cx.out().ok();
    cx.notify(STREAM, "xgroup-create", &key);
}

/// XGROUP SETID key group id|$ [ENTRIESREAD entries-read]
pub fn xgroup_setid(cx: &mut Ctx) {
    let argc = cx.argv.len();
    if argc != 5 && argc != 7 {
        return subcommand_syntax_error(cx);
    }
    if xgroup_prelude(cx, false, true).is_err() {
        return;
    }
    let key = cx.argv[2].clone();
    let gname = cx.argv[3].clone();
    let id = if cx.argv[4].as_ref() == b"$" {
        existing(cx, &key).map_or(StreamId::MIN, |s| s.last_id)
    } else {
        match parse_id(cx, 4, 0, false) {
            Some(id) => id,
            None => return,
        }
    };
    let mut entries_read = ENTRIES_READ_INVALID;
    if argc == 7 {
        if !cx.arg_is(5, "ENTRIESREAD") {
            return subcommand_syntax_error(cx);
        }
        let Some(n) = parse_ll(cx, 6, None) else {
            return;
        };
        if n < 0 && n != ENTRIES_READ_INVALID {
            return cx.error("ERR value for ENTRIESREAD must be positive or -1");
        }
        entries_read = n;
    }
    if let Some(g) = existing(cx, &key).and_then(|s| s.groups.get_mut(&gname)) {
        g.last_id = id;
        g.entries_read = entries_read;
    }
    cx.dirty(1);
    cx.out().ok();
    cx.notify(STREAM, "xgroup-setid", &key);
}

/// XGROUP DESTROY key group
pub fn xgroup_destroy(cx: &mut Ctx) {
    if xgroup_prelude(cx, false, false).is_err() {
        return;
    }
    let key = cx.argv[2].clone();
    let gname = cx.argv[3].clone();
    let removed = existing(cx, &key).is_some_and(|s| s.groups.remove(&gname).is_some());
    if removed {
        cx.dirty(1);
        // Consumers blocked on the group get their NOGROUP error.
        cx.signal_ready(&key);
    }
    cx.out().int(removed as i64);
    if removed {
        cx.notify(STREAM, "xgroup-destroy", &key);
    }
}

/// XGROUP CREATECONSUMER key group consumer
pub fn xgroup_createconsumer(cx: &mut Ctx) {
    if xgroup_prelude(cx, false, true).is_err() {
        return;
    }
    let key = cx.argv[2].clone();
    let gname = cx.argv[3].clone();
    let cname = cx.argv[4].clone();
    let now = cx.now_ms();
    let created = existing(cx, &key)
        .and_then(|s| s.groups.get_mut(&gname))
        .is_some_and(|g| g.consumer_mut(&cname, now).1);
    if created {
        cx.dirty(1);
        cx.notify(STREAM, "xgroup-createconsumer", &key);
    }
    cx.out().int(created as i64);
}

/// XGROUP DELCONSUMER key group consumer
pub fn xgroup_delconsumer(cx: &mut Ctx) {
    if xgroup_prelude(cx, false, true).is_err() {
        return;
    }
    let key = cx.argv[2].clone();
    let gname = cx.argv[3].clone();
    let cname = cx.argv[4].clone();
    let mut pending = 0;
    if let Some(g) = existing(cx, &key).and_then(|s| s.groups.get_mut(&gname)) {
        if let Some(c) = g.consumers.remove(&cname) {
            pending = c.pel.len();
            for id in c.pel {
                g.pel.remove(&id);
            }
        }
    }
    cx.dirty(1);
    cx.out().int(pending as i64);
    cx.notify(STREAM, "xgroup-delconsumer", &key);
}

/// XGROUP HELP
pub fn xgroup_help(cx: &mut Ctx) {
    cx.reply_help("xgroup");
}

// ---------------------------------------------------------------------------
// XACK, XPENDING, XCLAIM, XAUTOCLAIM
// ---------------------------------------------------------------------------

/// XACK key group id [id ...]
pub fn xack(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    let gname = cx.argv[2].clone();
    let has_group = match lookup(cx, &key, false) {
        Err(()) => return,
        Ok(s) => s.is_some_and(|s| s.groups.contains_key(&gname)),
    };
    if !has_group {
        return cx.out().int(0);
    }
    let mut ids = Vec::with_capacity(cx.argv.len() - 3);
    for j in 3..cx.argv.len() {
        let Some(id) = parse_id(cx, j, 0, true) else {
            return;
        };
        ids.push(id);
    }
    let mut acked = 0;
    if let Some(g) = existing(cx, &key).and_then(|s| s.groups.get_mut(&gname)) {
        for id in ids {
            if g.ack(id) {
                acked += 1;
            }
        }
    }
    if acked > 0 {
        cx.dirty(acked);
    }
    cx.out().int(acked as i64);
}

/// The group `gname` of the stream at `key` for XPENDING, XCLAIM and
/// XAUTOCLAIM, or their shared NOGROUP error. `Err` after replying.
fn group_or_nogroup(cx: &mut Ctx, key: &Bytes, gname: &Bytes) -> Result<(), ()> {
    let found = lookup(cx, key, false)?.is_some_and(|s| s.groups.contains_key(gname));
    if found {
        Ok(())
    } else {
        error_quoting(
            cx,
            &[
                b"NOGROUP No such key '",
                key,
                b"' or consumer group '",
                gname,
                b"'",
            ],
        );
        Err(())
    }
}

/// XPENDING key group [[IDLE min-idle-time] start end count [consumer]]
pub fn xpending(cx: &mut Ctx) {
    let argc = cx.argv.len();
    let justinfo = argc == 3;
    if argc != 3 && !(6..=9).contains(&argc) {
        return cx.syntax_error();
    }
    let (mut start, mut end, mut count, mut minidle) = (StreamId::MIN, StreamId::MAX, 0i64, 0i64);
    let mut consumer: Option<Bytes> = None;
    if argc >= 6 {
        let mut startidx = 3;
        if cx.arg_is(3, "IDLE") {
            let Some(n) = parse_ll(cx, 4, None) else {
                return;
            };
            minidle = n;
            if argc < 8 {
                return cx.syntax_error();
            }
            startidx += 2;
        }
        let Some(n) = parse_ll(cx, startidx + 2, None) else {
            return;
        };
        count = n.max(0);
        let Some(s) = range_start(cx, startidx) else {
            return;
        };
        let Some(e) = range_end(cx, startidx + 1) else {
            return;
        };
        start = s;
        end = e;
        if startidx + 3 < argc {
            consumer = Some(cx.argv[startidx + 3].clone());
        }
    }
    let key = cx.argv[1].clone();
    let gname = cx.argv[2].clone();
    if group_or_nogroup(cx, &key, &gname).is_err() {
        return;
    }
    let now = cx.now_ms();
    let Some(g) = existing(cx, &key).and_then(|s| s.groups.get(&gname)) else {
        return;
    };
    if justinfo {
        let n = g.pel.len();
        let first = g.pel.keys().next().copied();
        let last = g.pel.keys().next_back().copied();
        let owners: Vec<(Bytes, usize)> = g
            .consumers
            .iter()
            .filter(|(_, c)| !c.pel.is_empty())
            .map(|(n, c)| (n.clone(), c.pel.len()))
            .collect();
        let out = &mut cx.client.reply;
        out.array(4);
        out.int(n as i64);
        match (first, last) {
            (Some(f), Some(l)) => {
                out.bulk(&f.to_bytes());
                out.bulk(&l.to_bytes());
                out.array(owners.len());
                for (name, n) in owners {
                    out.array(2);
                    out.bulk(&name);
                    out.bulk_int(n as i64);
                }
            }
            _ => {
                out.null();
                out.null();
                out.null_array();
            }
        }
        return;
    }
    let ids: Vec<StreamId> = match &consumer {
        Some(c) => match g.consumers.get(c) {
            Some(c) => c.pel.range(start..).copied().collect(),
            None => return cx.out().array(0),
        },
        None => g.pel.range(start..).map(|(k, _)| *k).collect(),
    };
    let mut rows = Vec::new();
    let mut left = count;
    for id in ids {
        if left == 0 || id > end {
            break;
        }
        let Some(p) = g.pel.get(&id) else { continue };
        if minidle != 0 && now.saturating_sub(p.delivery_time) < minidle {
            continue;
        }
        left -= 1;
        rows.push((
            id,
            p.consumer.clone(),
            now.saturating_sub(p.delivery_time).max(0),
            p.delivery_count,
        ));
    }
    let out = &mut cx.client.reply;
    out.array(rows.len());
    for (id, c, idle, n) in rows {
        out.array(4);
        out.bulk(&id.to_bytes());
        out.bulk(&c);
        out.int(idle);
        out.int(n as i64);
    }
}

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-ms] [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID lastid]
pub fn xclaim(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    let gname = cx.argv[2].clone();
    let cname = cx.argv[3].clone();
    let found = match lookup(cx, &key, false) {
        Err(()) => return,
        Ok(s) => s.is_some_and(|s| s.groups.contains_key(&gname)),
    };
    if !found {
        return error_quoting(
            cx,
            &[
                b"NOGROUP No such key '",
                &key,
                b"' or consumer group '",
                &gname,
                b"'",
            ],
        );
    }
    let Some(minidle) = parse_ll(cx, 4, Some("ERR Invalid min-idle-time argument for XCLAIM"))
    else {
        return;
    };
    let minidle = minidle.max(0);
    let argc = cx.argv.len();
    let mut ids = Vec::new();
    let mut j = 5;
    while j < argc {
        match parse_id_raw(&cx.argv[j], 0, true, false) {
            Some(p) => ids.push(p.id),
            None => break,
        }
        j += 1;
    }
    let now = cx.now_ms();
    let (mut force, mut justid) = (false, false);
    let mut retrycount: i64 = -1;
    let mut deliverytime: i64 = -1;
    let mut last_id = StreamId::MIN;
    while j < argc {
        let moreargs = argc - 1 - j;
        if cx.arg_is(j, "FORCE") {
            force = true;
        } else if cx.arg_is(j, "JUSTID") {
            justid = true;
        } else if cx.arg_is(j, "IDLE") && moreargs > 0 {
            j += 1;
            let Some(v) = parse_ll(cx, j, Some("ERR Invalid IDLE option argument for XCLAIM"))
            else {
                return;
            };
            deliverytime = now.wrapping_sub(v);
        } else if cx.arg_is(j, "TIME") && moreargs > 0 {
            j += 1;
            let Some(v) = parse_ll(cx, j, Some("ERR Invalid TIME option argument for XCLAIM"))
            else {
                return;
            };
            deliverytime = v;
        } else if cx.arg_is(j, "RETRYCOUNT") && moreargs > 0 {
            j += 1;
            let Some(v) = parse_ll(
                cx,
                j,
                Some("ERR Invalid RETRYCOUNT option argument for XCLAIM"),
            ) else {
                return;
            };
            retrycount = v;
        } else if cx.arg_is(j, "LASTID") && moreargs > 0 {
            j += 1;
            let Some(id) = parse_id(cx, j, 0, true) else {
                return;
            };
            last_id = id;
        } else {
            let opt = cx.argv[j].clone();
            return error_quoting(cx, &[b"ERR Unrecognized XCLAIM option '", &opt, b"'"]);
        }
        j += 1;
    }
    let Some(s) = existing(cx, &key) else { return };
    let mut groups = std::mem::take(&mut s.groups);
    let Some(g) = groups.get_mut(&gname) else {
        s.groups = groups;
        return;
    };
    let mut propagate_last_id = false;
    if last_id > g.last_id {
        g.last_id = last_id;
        propagate_last_id = true;
    }
    if deliverytime == -1 || deliverytime < 0 || deliverytime > now {
        deliverytime = now;
    }
    let mut claimed: Vec<StreamEntry> = Vec::new();
    // (id, owner, time, count): XCLAIMs to log. An owner of None logs the
    // removal of a PEL entry whose stream entry was deleted.
    let mut props: Vec<(StreamId, Bytes, i64, u64)> = Vec::new();
    let mut consumer_ready = false;
    let mut consumer_created = false;
    for id in ids {
        let entry = s.get(id);
        let Some(entry) = entry else {
            if let Some(p) = g.pel.get(&id).cloned() {
                props.push((id, p.consumer.clone(), p.delivery_time, p.delivery_count));
                propagate_last_id = false;
                g.ack(id);
            }
            continue;
        };
        let (prev_count, prev_owner) = match g.pel.get(&id) {
            Some(p) => (p.delivery_count, Some(p.consumer.clone())),
            None if force => (1, None),
            None => continue,
        };
        if prev_owner.is_some() && minidle != 0 {
            let idle = now.saturating_sub(g.pel.get(&id).map_or(now, |p| p.delivery_time));
            if idle < minidle {
                continue;
            }
        }
        if !consumer_ready {
            let (c, new) = g.consumer_mut(&cname, now);
            c.seen_time = now;
            consumer_ready = true;
            consumer_created = new;
        }
        let count = if retrycount >= 0 {
            retrycount as u64
        } else if !justid {
            prev_count + 1
        } else {
            prev_count
        };
        g.assign(id, &cname, deliverytime, count);
        claimed.push(if justid {
            StreamEntry {
                id,
                fields: Vec::new(),
            }
        } else {
            entry
        });
        props.push((id, cname.clone(), deliverytime, count));
        propagate_last_id = false;
    }
    let group_last = g.last_id;
    let entries_read = g.entries_read;
    s.groups = groups;
    if consumer_created {
        cx.notify(STREAM, "xgroup-createconsumer", &key);
    }
    let dirty = props.len() as u64 + propagate_last_id as u64;
    for (id, owner, t, n) in props {
        let nack = Nack {
            id,
            consumer: &owner,
            delivery_time: t,
            count: n,
        };
        propagate_xclaim(cx, &key, &gname, nack, group_last);
    }
    if propagate_last_id {
        propagate_group_id(cx, &key, &gname, group_last, entries_read);
    }
    if dirty > 0 {
        cx.dirty(dirty);
    }
    if justid {
        cx.client.reply.array(claimed.len());
        for e in &claimed {
            reply_id(cx, e.id);
        }
    } else {
        reply_entries(cx, &claimed);
    }
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]
pub fn xautoclaim(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    let gname = cx.argv[2].clone();
    let cname = cx.argv[3].clone();
    let Some(minidle) = parse_ll(
        cx,
        4,
        Some("ERR Invalid min-idle-time argument for XAUTOCLAIM"),
    ) else {
        return;
    };
    let minidle = minidle.max(0);
    let Some(start) = range_start(cx, 5) else {
        return;
    };
    let mut count: i64 = 100;
    let mut justid = false;
    let argc = cx.argv.len();
    let mut j = 6;
    while j < argc {
        let moreargs = argc - 1 - j;
        if cx.arg_is(j, "COUNT") && moreargs > 0 {
            // LONG_MAX / max(sizeof(streamID), attempts factor 10)
            let max_count = i64::MAX / 16;
            match crate::resp::parse_i64(&cx.argv[j + 1]) {
                Some(n) if (1..=max_count).contains(&n) => count = n,
                _ => return cx.error("ERR COUNT must be > 0"),
            }
            j += 1;
        } else if cx.arg_is(j, "JUSTID") {
            justid = true;
        } else {
            return cx.syntax_error();
        }
        j += 1;
    }
    if group_or_nogroup(cx, &key, &gname).is_err() {
        return;
    }
    let now = cx.now_ms();
    let Some(s) = existing(cx, &key) else { return };
    let mut groups = std::mem::take(&mut s.groups);
    let Some(g) = groups.get_mut(&gname) else {
        s.groups = groups;
        return;
    };
    let mut attempts = count * 10;
    let mut left = count;
    let mut claimed: Vec<StreamEntry> = Vec::new();
    let mut deleted: Vec<StreamId> = Vec::new();
    let mut props: Vec<(StreamId, Bytes, i64, u64)> = Vec::new();
    let mut consumer_ready = false;
    let mut consumer_created = false;
    let mut cursor = start;
    let next_id = loop {
        let next = g.pel.range(cursor..).next().map(|(k, _)| *k);
        if attempts == 0 || left == 0 {
            break next;
        }
        attempts -= 1;
        let Some(id) = next else { break None };
        cursor = match id.incr() {
            Some(n) => n,
            None => StreamId::MAX,
        };
        let Some(entry) = s.get(id) else {
            if let Some(p) = g.pel.get(&id).cloned() {
                props.push((id, p.consumer, p.delivery_time, p.delivery_count));
            }
            g.ack(id);
            deleted.push(id);
            left -= 1;
            if id == StreamId::MAX {
                break None;
            }
            continue;
        };
        let Some(p) = g.pel.get(&id) else { continue };
        if minidle != 0 && now.saturating_sub(p.delivery_time) < minidle {
            if id == StreamId::MAX {
                break None;
            }
            continue;
        }
        let n = if justid {
            p.delivery_count
        } else {
            p.delivery_count + 1
        };
        if !consumer_ready {
            let (c, new) = g.consumer_mut(&cname, now);
            c.seen_time = now;
            consumer_ready = true;
            consumer_created = new;
        }
        g.assign(id, &cname, now, n);
        claimed.push(if justid {
            StreamEntry {
                id,
                fields: Vec::new(),
            }
        } else {
            entry
        });
        props.push((id, cname.clone(), now, n));
        left -= 1;
        if id == StreamId::MAX {
            break None;
        }
    };
    let group_last = g.last_id;
    s.groups = groups;
    if consumer_created {
        cx.notify(STREAM, "xgroup-createconsumer", &key);
    }
    let dirty = props.len() as u64;
    for (id, owner, t, n) in props {
        let nack = Nack {
            id,
            consumer: &owner,
            delivery_time: t,
            count: n,
        };
        propagate_xclaim(cx, &key, &gname, nack, group_last);
    }
    if dirty > 0 {
        cx.dirty(dirty);
    }
    cx.client.reply.array(3);
    reply_id(cx, next_id.unwrap_or(StreamId::MIN));
    if justid {
        cx.client.reply.array(claimed.len());
        for e in &claimed {
            reply_id(cx, e.id);
        }
    } else {
        reply_entries(cx, &claimed);
    }
    cx.client.reply.array(deleted.len());
    for id in deleted {
        reply_id(cx, id);
    }
}

// ---------------------------------------------------------------------------
// XINFO
// ---------------------------------------------------------------------------

/// The stream for an XINFO subcommand, or `ERR no such key`.
fn xinfo_stream_of<'a>(cx: &'a mut Ctx) -> Option<&'a mut Stream> {
    let key = cx.argv[2].clone();
    match lookup(cx, &key, false) {
        Err(()) => None,
        Ok(None) => {
            cx.error("ERR no such key");
            None
        }
        Ok(Some(_)) => existing(cx, &key),
    }
}

/// XINFO STREAM key [FULL [COUNT count]]
pub fn xinfo_stream(cx: &mut Ctx) {
    let optc = cx.argv.len() - 3;
    let mut full = false;
    let mut count: i64 = 10;
    if xinfo_stream_of(cx).is_none() {
        return;
    }
    if optc > 0 {
        if (optc != 1 && optc != 3) || !cx.arg_is(3, "FULL") {
            return subcommand_syntax_error(cx);
        }
        full = true;
        if optc == 3 {
            if !cx.arg_is(4, "COUNT") {
                return subcommand_syntax_error(cx);
            }
            let Some(n) = parse_ll(cx, 5, None) else {
                return;
            };
            count = if n < 0 { 10 } else { n };
        }
    }
    let key = cx.argv[2].clone();
    let Some(s) = existing(cx, &key) else { return };
    let s = s.clone_meta_for_info(full, count);
    let out = &mut cx.client.reply;
    out.map(if full { 9 } else { 10 });
    out.bulk(b"length");
    out.int(s.length as i64);
    out.bulk(b"radix-tree-keys");
    out.int(s.rax_keys as i64);
    out.bulk(b"radix-tree-nodes");
    out.int(s.rax_nodes as i64);
    out.bulk(b"last-generated-id");
    out.bulk(&s.last_id.to_bytes());
    out.bulk(b"max-deleted-entry-id");
    out.bulk(&s.max_deleted_id.to_bytes());
    out.bulk(b"entries-added");
    out.int(s.entries_added as i64);
    out.bulk(b"recorded-first-entry-id");
    out.bulk(&s.first_id.to_bytes());
    if !full {
        out.bulk(b"groups");
        out.int(s.groups.len() as i64);
        for (name, e) in [("first-entry", &s.first), ("last-entry", &s.last)] {
            cx.client.reply.bulk(name.as_bytes());
            match e {
                Some(e) => reply_entry(cx, e),
                None => cx.client.reply.null(),
            }
        }
        return;
    }
    out.bulk(b"entries");
    reply_entries(cx, &s.entries);
    let out = &mut cx.client.reply;
    out.bulk(b"groups");
    out.array(s.groups.len());
    for g in &s.groups {
        out.map(7);
        out.bulk(b"name");
        out.bulk(&g.name);
        out.bulk(b"last-delivered-id");
        out.bulk(&g.last_id.to_bytes());
        reply_read_and_lag(out, g.entries_read, g.lag);
        out.bulk(b"pel-count");
        out.int(g.pel_count as i64);
        out.bulk(b"pending");
        out.array(g.pending.len());
        for (id, c, t, n) in &g.pending {
            out.array(4);
            out.bulk(&id.to_bytes());
            out.bulk(c);
            out.int(*t);
            out.int(*n as i64);
        }
        out.bulk(b"consumers");
        out.array(g.consumers.len());
        for c in &g.consumers {
            out.map(4);
            out.bulk(b"name");
            out.bulk(&c.name);
            out.bulk(b"seen-time");
            out.int(c.seen_time);
            out.bulk(b"pel-count");
            out.int(c.pel_count as i64);
            out.bulk(b"pending");
            out.array(c.pending.len());
            for (id, t, n) in &c.pending {
                out.array(3);
                out.bulk(&id.to_bytes());
                out.int(*t);
                out.int(*n as i64);
            }
        }
    }
}

/// A snapshot of what XINFO STREAM shows, taken before replying.
struct InfoSnapshot {
    length: u64,
    rax_keys: usize,
    rax_nodes: u64,
    last_id: StreamId,
    max_deleted_id: StreamId,
    entries_added: u64,
    first_id: StreamId,
    groups: Vec<GroupInfo>,
    first: Option<StreamEntry>,
    last: Option<StreamEntry>,
    entries: Vec<StreamEntry>,
}

struct GroupInfo {
    name: Bytes,
    last_id: StreamId,
    entries_read: Option<i64>,
    lag: Option<i64>,
    pel_count: usize,
    pending: Vec<(StreamId, Bytes, i64, u64)>,
    consumers: Vec<ConsumerInfo>,
}

struct ConsumerInfo {
    name: Bytes,
    seen_time: i64,
    pel_count: usize,
    pending: Vec<(StreamId, i64, u64)>,
}

impl Stream {
    /// What XINFO STREAM (FULL, with at most `count` entries and PEL rows
    /// per list; 0: all) reports.
    fn clone_meta_for_info(&self, full: bool, count: i64) -> InfoSnapshot {
        let limit = if count == 0 {
            usize::MAX
        } else {
            count as usize
        };
        let groups = self
            .groups
            .iter()
            .map(|(name, g)| GroupInfo {
                name: name.clone(),
                last_id: g.last_id,
                entries_read: (g.entries_read != ENTRIES_READ_INVALID).then_some(g.entries_read),
                lag: self.group_lag(g),
                pel_count: g.pel.len(),
                pending: if full {
                    g.pel
                        .iter()
                        .take(limit)
                        .map(|(id, p)| (*id, p.consumer.clone(), p.delivery_time, p.delivery_count))
                        .collect()
                } else {
                    Vec::new()
                },
                consumers: g
                    .consumers
                    .iter()
                    .map(|(n, c)| ConsumerInfo {
                        name: n.clone(),
                        seen_time: c.seen_time,
                        pel_count: c.pel.len(),
                        pending: if full {
                            c.pel
                                .iter()
                                .take(limit)
                                .filter_map(|id| {
                                    g.pel
                                        .get(id)
                                        .map(|p| (*id, p.delivery_time, p.delivery_count))
                                })
                                .collect()
                        } else {
                            Vec::new()
                        },
                    })
                    .collect(),
            })
            .collect();
        InfoSnapshot {
            length: self.length,
            rax_keys: self.node_count(),
            rax_nodes: self.rax_node_count(),
            last_id: self.last_id,
            max_deleted_id: self.max_deleted_id,
            entries_added: self.entries_added,
            first_id: self.first_id,
            groups,
            first: if full {
                None
            } else {
                self.range(StreamId::MIN, StreamId::MAX, 1, false).pop()
            },
            last: if full {
                None
            } else {
                self.range(StreamId::MIN, StreamId::MAX, 1, true).pop()
            },
            entries: if full {
                self.range(
                    StreamId::MIN,
                    StreamId::MAX,
                    if count == 0 { 0 } else { count as usize },
                    false,
                )
            } else {
                Vec::new()
            },
        }
    }
}

/// XINFO GROUPS key
pub fn xinfo_groups(cx: &mut Ctx) {
    let Some(s) = xinfo_stream_of(cx) else { return };
    let info = s.clone_meta_for_info(false, 0);
    let counts: Vec<(usize, usize)> = s
        .groups
        .values()
        .map(|g| (g.consumers.len(), g.pel.len()))
        .collect();
    let out = &mut cx.client.reply;
    out.array(info.groups.len());
    for (g, (nc, np)) in info.groups.iter().zip(counts) {
        out.map(6);
        out.bulk(b"name");
        out.bulk(&g.name);
        out.bulk(b"consumers");
        out.int(nc as i64);
        out.bulk(b"pending");
        out.int(np as i64);
        out.bulk(b"last-delivered-id");
        out.bulk(&g.last_id.to_bytes());
        reply_read_and_lag(out, g.entries_read, g.lag);
    }
}

/// The `entries-read` and `lag` fields of XINFO STREAM FULL and XINFO
/// GROUPS: each null when it cannot be told (see `group_lag`).
fn reply_read_and_lag(out: &mut ReplyBuf, entries_read: Option<i64>, lag: Option<i64>) {
    for (name, v) in [(&b"entries-read"[..], entries_read), (b"lag", lag)] {
        out.bulk(name);
        match v {
            Some(n) => out.int(n),
            None => out.null(),
        }
    }
}

/// XINFO CONSUMERS key group
pub fn xinfo_consumers(cx: &mut Ctx) {
    let now = cx.now_ms();
    let key = cx.argv[2].clone();
    let gname = cx.argv[3].clone();
    let Some(s) = xinfo_stream_of(cx) else { return };
    let rows: Option<Vec<(Bytes, usize, i64)>> = s.groups.get(&gname).map(|g| {
        g.consumers
            .iter()
            .map(|(n, c)| {
                (
                    n.clone(),
                    c.pel.len(),
                    now.saturating_sub(c.seen_time).max(0),
                )
            })
            .collect()
    });
    let Some(rows) = rows else {
        return error_quoting(
            cx,
            &[
                b"NOGROUP No such consumer group '",
                &gname,
                b"' for key name '",
                &key,
                b"'",
            ],
        );
    };
    let out = &mut cx.client.reply;
    out.array(rows.len());
    for (n, p, idle) in rows {
        out.map(3);
        out.bulk(b"name");
        out.bulk(&n);
        out.bulk(b"pending");
        out.int(p as i64);
        out.bulk(b"idle");
        out.int(idle);
    }
}

/// XINFO HELP
pub fn xinfo_help(cx: &mut Ctx) {
    cx.reply_help("xinfo");
}
