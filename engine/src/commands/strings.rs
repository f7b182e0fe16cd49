//! String commands (Redis's `t_string.c`): GET, SET and its variants,
//! counters, ranges and LCS.

use super::Lookup;
use crate::db::{Entry, Str, Value, SHARED_INTEGERS};
use crate::node::Ctx;
use crate::notify::{GENERIC, STRING};
use crate::numeric::LongDouble;
use bytes::Bytes;

/// Options shared by SET and GETEX (Redis's `parseExtendedStringArgumentsOrReply`).
#[derive(Default)]
struct SetOpts {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    /// Which expiry option was given, and its argument index.
    expire: Option<(ExpireKind, usize)>,
}

#[derive(Clone, Copy, PartialEq)]
enum ExpireKind {
    Ex,
    Px,
    ExAt,
    PxAt,
}

#[derive(PartialEq)]
enum SetCmd {
    Set,
    GetEx,
}

fn parse_set_opts(cx: &mut Ctx, from: usize, kind: SetCmd) -> Option<SetOpts> {
    let mut o = SetOpts::default();
    let mut j = from;
    let argc = cx.argv.len();
    while j < argc {
        let opt = cx.argv[j].to_ascii_lowercase();
        let has_next = j + 1 < argc;
        let no_expire = o.expire.is_none();
        let set = kind == SetCmd::Set;
        match opt.as_slice() {
            b"nx" if !o.xx && set => o.nx = true,
            b"xx" if !o.nx && set => o.xx = true,
            b"get" if set => o.get = true,
            b"keepttl" if !o.persist && no_expire && set => o.keepttl = true,
            b"persist" if !set && no_expire && !o.keepttl => o.persist = true,
            b"ex" | b"px" | b"exat" | b"pxat" => {
                let k = match opt.as_slice() {
                    b"ex" => ExpireKind::Ex,
                    b"px" => ExpireKind::Px,
                    b"exat" => ExpireKind::ExAt,
                    _ => ExpireKind::PxAt,
                };
                // The same option may repeat (last wins); different ones clash.
                let compatible = o.expire.is_none_or(|(prev, _)| prev == k);
                if o.keepttl || o.persist || !compatible || !has_next {
                    cx.syntax_error();
                    return None;
                }
                o.expire = Some((k, j + 1));
                j += 1;
            }
            _ => {
                cx.syntax_error();
                return None;
            }
        }
        j += 1;
    }
    Some(o)
}

/// Redis's `getExpireMillisecondsOrReply`: absolute unix ms, or an error reply.
fn expire_at_ms(cx: &mut Ctx, kind: ExpireKind, arg: usize) -> Option<i64> {
    let n = cx.parse_int(arg)?;
    let seconds = matches!(kind, ExpireKind::Ex | ExpireKind::ExAt);
    if n <= 0 || (seconds && n > i64::MAX / 1000) {
        expire_time_error(cx);
        return None;
    }
    let mut ms = if seconds { n * 1000 } else { n };
    if matches!(kind, ExpireKind::Ex | ExpireKind::Px) {
        ms = ms.wrapping_add(cx.now_ms());
    }
    if ms <= 0 {
        expire_time_error(cx);
        return None;
    }
    Some(ms)
}

pub(crate) fn expire_time_error(cx: &mut Ctx) {
    let msg = format!("ERR invalid expire time in '{}' command", cx.cmd.name);
    cx.error(&msg);
}

/// Replies with a string value (GET's reply), or WRONGTYPE. Returns false
/// after a WRONGTYPE error.
fn reply_get(cx: &mut Ctx, key: &[u8]) -> bool {
    let mut scratch = itoa::Buffer::new();
    match cx.node.read_str(cx.client.db, key) {
        Lookup::Found(s) => {
            let b = s.as_bytes(&mut scratch);
            cx.client.reply.bulk(b);
            true
        }
        Lookup::Missing => {
            cx.client.reply.null();
            true
        }
        Lookup::WrongType => {
            cx.wrongtype();
            false
        }
    }
}

/// GET key
pub fn get(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    reply_get(cx, &key);
}

/// The common core of SET, SETNX, SETEX and PSETEX (`setGenericCommand`).
fn set_generic(cx: &mut Ctx, o: &SetOpts, key: &Bytes, val: &Bytes, ok: Reply, abort: Reply) {
    let mut expire_ms = None;
    if let Some((kind, arg)) = o.expire {
        match expire_at_ms(cx, kind, arg) {
            Some(ms) => expire_ms = Some(ms),
            None => return,
        }
    }
    if o.get && !reply_get(cx, key) {
        return;
    }
    let found = cx.lookup_write(key).is_some();
    if (o.nx && found) || (o.xx && !found) {
        if !o.get {
            abort.write(cx);
        }
        return;
    }
    let lru = cx.lru_now();
    let value = Value::Str(Str::from_arg(val.clone()));
    let db = cx.db();
    if o.keepttl {
        db.set_keep_ttl(key.clone(), value, lru);
    } else {
        db.set(key.clone(), value, lru);
    }
    if let Some(ms) = expire_ms {
        db.set_expire(key, ms);
    }
    cx.dirty(1);
    cx.notify(STRING, "set", key);
    if expire_ms.is_some() {
        cx.notify(GENERIC, "expire", key);
    }
    if !o.get {
        ok.write(cx);
    }
}

/// The fixed replies SET-like commands choose between.
#[derive(Clone, Copy)]
enum Reply {
    Ok,
    Null,
    One,
    Zero,
}

impl Reply {
    fn write(self, cx: &mut Ctx) {
        match self {
            Reply::Ok => cx.out().ok(),
            Reply::Null => cx.out().null(),
            Reply::One => cx.out().int(1),
            Reply::Zero => cx.out().int(0),
        }
    }
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ts|KEEPTTL]
pub fn set(cx: &mut Ctx) {
    let Some(o) = parse_set_opts(cx, 3, SetCmd::Set) else {
        return;
    };
    let (key, val) = (cx.argv[1].clone(), cx.argv[2].clone());
    set_generic(cx, &o, &key, &val, Reply::Ok, Reply::Null);
}

/// SETNX key value
pub fn setnx(cx: &mut Ctx) {
    let o = SetOpts {
        nx: true,
        ..Default::default()
    };
    let (key, val) = (cx.argv[1].clone(), cx.argv[2].clone());
    set_generic(cx, &o, &key, &val, Reply::One, Reply::Zero);
}

/// SETEX key seconds value
pub fn setex(cx: &mut Ctx) {
    set_with_expire(cx, ExpireKind::Ex);
}

/// PSETEX key milliseconds value
pub fn psetex(cx: &mut Ctx) {
    set_with_expire(cx, ExpireKind::Px);
}

fn set_with_expire(cx: &mut Ctx, kind: ExpireKind) {
    let o = SetOpts {
        expire: Some((kind, 2)),
        ..Default::default()
    };
    let (key, val) = (cx.argv[1].clone(), cx.argv[3].clone());
    set_generic(cx, &o, &key, &val, Reply::Ok, Reply::Null);
}

/// GETEX key [EX s|PX ms|EXAT ts|PXAT ts|PERSIST]
pub fn getex(cx: &mut Ctx) {
    let Some(o) = parse_set_opts(cx, 2, SetCmd::GetEx) else {
        return;
    };
    // Redis 7.0 looks the key up before it validates the expire value.
    let key = cx.argv[1].clone();
    let mut scratch = itoa::Buffer::new();
    let value = match cx.read_str(&key) {
        Lookup::Missing => return cx.out().null(),
        Lookup::WrongType => return cx.wrongtype(),
        Lookup::Found(s) => s.as_bytes(&mut scratch).to_vec(),
    };
    let mut expire_ms = None;
    if let Some((kind, arg)) = o.expire {
        match expire_at_ms(cx, kind, arg) {
            Some(ms) => expire_ms = Some(ms),
            None => return,
        }
    }
    cx.out().bulk(&value);
    let now = cx.now_ms();
    if let Some(ms) = expire_ms {
        if ms <= now && !cx.node.aof.replaying {
            cx.delete_key(&key);
            cx.notify(GENERIC, "del", &key);
        } else {
            cx.db().set_expire(&key, ms);
            cx.notify(GENERIC, "expire", &key);
        }
        cx.dirty(1);
    } else if o.persist && cx.db().persist(&key) {
        cx.notify(GENERIC, "persist", &key);
        cx.dirty(1);
    }
}

/// GETDEL key
pub fn getdel(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    let mut scratch = itoa::Buffer::new();
    match cx.read_str(&key) {
        Lookup::Missing => cx.out().null(),
        Lookup::WrongType => cx.wrongtype(),
        Lookup::Found(s) => {
            let b = s.as_bytes(&mut scratch).to_vec();
            cx.out().bulk(&b);
            cx.delete_key(&key);
            cx.notify(GENERIC, "del", &key);
            cx.dirty(1);
        }
    }
}

/// GETSET key value
pub fn getset(cx: &mut Ctx) {
    let (key, val) = (cx.argv[1].clone(), cx.argv[2].clone());
    if !reply_get(cx, &key) {
        return;
    }
    let lru = cx.lru_now();
    cx.db()
        .set(key.clone(), Value::Str(Str::from_arg(val)), lru);
    cx.notify(STRING, "set", &key);
    cx.dirty(1);
}

/// MGET key [key ...]: nil for missing keys and for non-strings.
pub fn mget(cx: &mut Ctx) {
    let n = cx.argv.len() - 1;
    cx.out().array(n);
    let mut scratch = itoa::Buffer::new();
    for i in 1..=n {
        let key = cx.argv[i].clone();
        match cx.lookup_read(&key) {
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => {
                let b = s.as_bytes(&mut scratch).to_vec();
                cx.out().bulk(&b);
            }
            _ => cx.out().null(),
        }
    }
}

/// MSET key value [key value ...]
pub fn mset(cx: &mut Ctx) {
    mset_generic(cx, false);
}

/// MSETNX key value [key value ...]: all or nothing.
pub fn msetnx(cx: &mut Ctx) {
    mset_generic(cx, true);
}

fn mset_generic(cx: &mut Ctx, nx: bool) {
    if cx.argv.len().is_multiple_of(2) {
        let msg = format!(
            "ERR wrong number of arguments for '{}' command",
            cx.cmd.name
        );
        return cx.error(&msg);
    }
    if nx {
        for i in (1..cx.argv.len()).step_by(2) {
            let key = cx.argv[i].clone();
            if cx.lookup_write(&key).is_some() {
                return cx.out().int(0);
            }
        }
    }
    let lru = cx.lru_now();
    for i in (1..cx.argv.len()).step_by(2) {
        let (key, val) = (cx.argv[i].clone(), cx.argv[i + 1].clone());
        cx.db()
            .set(key.clone(), Value::Str(Str::from_arg(val)), lru);
        cx.notify(STRING, "set", &key);
    }
    cx.dirty(((cx.argv.len() - 1) / 2) as u64);
    if nx {
        cx.out().int(1);
    } else {
        cx.out().ok();
    }
}

/// Redis's `checkStringLength`: a string may not outgrow proto-max-bulk-len.
fn check_string_length(cx: &mut Ctx, size: u64, append: u64) -> bool {
    let total = size.saturating_add(append);
    if total > cx.node.config.proto_max_bulk_len as u64 {
        cx.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        false
    } else {
        true
    }
}

/// APPEND key value
pub fn append(cx: &mut Ctx) {
    let (key, val) = (cx.argv[1].clone(), cx.argv[2].clone());
    let existing_len = match cx.lookup_write(&key) {
        None => None,
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => Some(s.len()),
        Some(_) => return cx.wrongtype(),
    };
    let total = match existing_len {
        None => {
            let lru = cx.lru_now();
            let len = val.len();
            cx.db()
                .set(key.clone(), Value::Str(Str::from_arg(val)), lru);
            len
        }
        Some(len) => {
            if !check_string_length(cx, len as u64, val.len() as u64) {
                return;
            }
            let Some(Entry {
                value: Value::Str(s),
                ..
            }) = cx.db().keys.get_mut(&key)
            else {
                return;
            };
            let raw = s.make_raw();
            raw.extend_from_slice(&val);
            raw.len()
        }
    };
    cx.dirty(1);
    cx.notify(STRING, "append", &key);
    cx.out().int(total as i64);
}

/// STRLEN key
pub fn strlen(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    match cx.read_str(&key) {
        Lookup::Found(s) => {
            let n = s.len() as i64;
            cx.out().int(n)
        }
        Lookup::Missing => cx.out().int(0),
        Lookup::WrongType => cx.wrongtype(),
    }
}

pub fn incr(cx: &mut Ctx) {
    incr_decr(cx, 1);
}

pub fn decr(cx: &mut Ctx) {
    incr_decr(cx, -1);
}

/// INCRBY key increment
pub fn incrby(cx: &mut Ctx) {
    if let Some(n) = cx.parse_int(2) {
        incr_decr(cx, n);
    }
}

/// DECRBY key decrement
pub fn decrby(cx: &mut Ctx) {
    let Some(n) = cx.parse_int(2) else { return };
    if n == i64::MIN {
        return cx.error("ERR decrement would overflow");
    }
    incr_decr(cx, -n);
}

/// `incrDecrCommand`: the value must be a 64-bit integer in decimal; the TTL
/// is kept.
fn incr_decr(cx: &mut Ctx, by: i64) {
    let key = cx.argv[1].clone();
    let current = match cx.lookup_write(&key) {
        None => None,
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => Some(match s {
            Str::Int(n) | Str::IntOwned(n) => *n,
            Str::Emb(b) => match crate::resp::parse_i64(b) {
                Some(n) => n,
                None => return cx.error("ERR value is not an integer or out of range"),
            },
            Str::Raw(v) => match crate::resp::parse_i64(v) {
                Some(n) => n,
                None => return cx.error("ERR value is not an integer or out of range"),
            },
        }),
        Some(_) => return cx.wrongtype(),
    };
    let Some(new) = current.unwrap_or(0).checked_add(by) else {
        return cx.error("ERR increment or decrement would overflow");
    };
    let lru = cx.lru_now();
    let value = Value::Str(Str::Int(new));
    if current.is_some() {
        cx.db().set_keep_ttl(key.clone(), value, lru);
    } else {
        cx.db().set(key.clone(), value, lru);
    }
    cx.dirty(1);
    cx.notify(STRING, "incrby", &key);
    cx.out().int(new);
}

/// INCRBYFLOAT key increment: x87 long double arithmetic and formatting, as
/// Redis (so `0.1` plus `0.2` is `0.3`).
pub fn incrbyfloat(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    let current = match cx.lookup_write(&key) {
        None => None,
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => Some(match s {
            Str::Int(n) | Str::IntOwned(n) => Some(LongDouble::from_i64(*n)),
            other => LongDouble::parse(&other.to_vec()),
        }),
        Some(_) => return cx.wrongtype(),
    };
    let value = match current {
        None => LongDouble::from_i64(0),
        Some(Some(v)) => v,
        Some(None) => return cx.error("ERR value is not a valid float"),
    };
    let Some(incr) = LongDouble::parse(&cx.argv[2]) else {
        return cx.error("ERR value is not a valid float");
    };
    let sum = value.add(incr);
    if !sum.is_finite() {
        return cx.error("ERR increment would produce NaN or Infinity");
    }
    let text = sum.to_redis_string().into_bytes();
    let reply = text.clone();
    let lru = cx.lru_now();
    let v = Value::Str(Str::from_vec(text));
    if current.is_some() {
        cx.db().set_keep_ttl(key.clone(), v, lru);
    } else {
        cx.db().set(key.clone(), v, lru);
    }
    cx.dirty(1);
    cx.notify(STRING, "incrbyfloat", &key);
    cx.out().bulk(&reply);
}

/// GETRANGE key start end (and its old name SUBSTR)
pub fn getrange(cx: &mut Ctx) {
    let Some(mut start) = cx.parse_int(2) else {
        return;
    };
    let Some(mut end) = cx.parse_int(3) else {
        return;
    };
    let key = cx.argv[1].clone();
    let mut scratch = itoa::Buffer::new();
    let s = match cx.read_str(&key) {
        Lookup::Found(s) => s.as_bytes(&mut scratch).to_vec(),
        Lookup::Missing => return cx.out().bulk(b""),
        Lookup::WrongType => return cx.wrongtype(),
    };
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        return cx.out().bulk(b"");
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        cx.out().bulk(b"");
    } else {
        cx.out().bulk(&s[start as usize..=end as usize]);
    }
}

/// SETRANGE key offset value
pub fn setrange(cx: &mut Ctx) {
    let Some(offset) = cx.parse_int(2) else {
        return;
    };
    if offset < 0 {
        return cx.error("ERR offset is out of range");
    }
    let (key, val) = (cx.argv[1].clone(), cx.argv[3].clone());
    let offset = offset as u64;
    let existing = match cx.lookup_write(&key) {
        None => None,
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => Some(s.len()),
        Some(_) => return cx.wrongtype(),
    };
    match existing {
        None if val.is_empty() => return cx.out().int(0),
        Some(len) if val.is_empty() => return cx.out().int(len as i64),
        _ => {}
    }
    if !check_string_length(cx, offset, val.len() as u64) {
        return;
    }
    let offset = offset as usize;
    let lru = cx.lru_now();
    if existing.is_none() {
        cx.db()
            .set(key.clone(), Value::Str(Str::Raw(Vec::new())), lru);
    }
    let Some(Entry {
        value: Value::Str(s),
        ..
    }) = cx.db().keys.get_mut(&key)
    else {
        return;
    };
    let raw = s.make_raw();
    if raw.len() < offset + val.len() {
        raw.resize(offset + val.len(), 0);
    }
    raw[offset..offset + val.len()].copy_from_slice(&val);
    let n = raw.len() as i64;
    cx.dirty(1);
    cx.notify(STRING, "setrange", &key);
    cx.out().int(n);
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
///
/// The classic O(n*m) dynamic programme, walked back from the end exactly
/// as Redis does so IDX ranges come out in the same order.
pub fn lcs(cx: &mut Ctx) {
    let mut scratch = itoa::Buffer::new();
    let mut values: [Vec<u8>; 2] = [vec![], vec![]];
    for (i, v) in values.iter_mut().enumerate() {
        let key = cx.argv[1 + i].clone();
        match cx.read_str(&key) {
            Lookup::Found(s) => *v = s.as_bytes(&mut scratch).to_vec(),
            Lookup::Missing => {}
            Lookup::WrongType => {
                return cx.error("ERR The specified keys must contain string values")
            }
        }
    }
    let (mut getlen, mut getidx, mut withmatchlen, mut minmatchlen) = (false, false, false, 0i64);
    let mut j = 3;
    while j < cx.argv.len() {
        let more = cx.argv.len() - 1 - j;
        if cx.arg_is(j, "IDX") {
            getidx = true;
        } else if cx.arg_is(j, "LEN") {
            getlen = true;
        } else if cx.arg_is(j, "WITHMATCHLEN") {
            withmatchlen = true;
        } else if cx.arg_is(j, "MINMATCHLEN") && more > 0 {
            let Some(n) = cx.parse_int(j + 1) else { return };
            minmatchlen = n.max(0);
            j += 1;
        } else {
            return cx.syntax_error();
        }
        j += 1;
    }
    if getidx && getlen {
        return cx.error("ERR If you want both the length and indexes, please just use IDX.");
    }
    let [a, b] = values;
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1).saturating_mul(blen as u64 + 1);
    if cells.saturating_mul(4) > cx.node.config.proto_max_bulk_len as u64 {
        return cx
            .error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
    }
    let w = blen + 1;
    let mut dp = vec![0u32; (alen + 1) * w];
    for i in 1..=alen {
        for j in 1..=blen {
            dp[i * w + j] = if a[i - 1] == b[j - 1] {
                dp[(i - 1) * w + j - 1] + 1
            } else {
                dp[(i - 1) * w + j].max(dp[i * w + j - 1])
            };
        }
    }
    let total = dp[alen * w + blen];
    if getlen {
        return cx.out().int(total as i64);
    }
    let mut result = vec![0u8; total as usize];
    let mut idx = total as usize;
    let mut matches: Vec<(usize, usize, usize, usize)> = vec![];
    let (mut i, mut j) = (alen, blen);
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen, 0, 0, 0);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            if a_start == alen {
                a_start = i - 1;
                a_end = i - 1;
                b_start = j - 1;
                b_end = j - 1;
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if dp[(i - 1) * w + j] > dp[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != alen {
                emit = true;
            }
        }
        if emit {
            let len = a_end - a_start + 1;
            if minmatchlen == 0 || len as i64 >= minmatchlen {
                matches.push((a_start, a_end, b_start, b_end));
            }
            a_start = alen;
        }
    }
    if !getidx {
        return cx.out().bulk(&result);
    }
    let out = cx.out();
    out.map(2);
    out.bulk(b"matches");
    out.array(matches.len());
    for (as_, ae, bs, be) in matches {
        out.array(2 + withmatchlen as usize);
        out.array(2);
        out.int(as_ as i64);
        out.int(ae as i64);
        out.array(2);
        out.int(bs as i64);
        out.int(be as i64);
        if withmatchlen {
            out.int((ae - as_ + 1) as i64);
        }
    }
    out.bulk(b"len");
    out.int(total as i64);
}

/// OBJECT REFCOUNT for strings: small integers are shared objects in Redis.
pub fn refcount(s: &Str) -> i64 {
    match s {
        Str::Int(n) if (0..SHARED_INTEGERS).contains(n) => i32::MAX as i64,
        _ => 1,
    }
}
