//! Keyspace commands (Redis's `db.c` and `expire.c`): DEL, EXISTS, TYPE,
//! RENAME, KEYS, SCAN, RANDOMKEY, the EXPIRE family, TTL, COPY, MOVE, OBJECT.

use super::strings::expire_time_error;
use crate::command::Table;
use crate::db::{Str, Value};
use crate::glob;
use crate::node::{Client, Ctx, Node};
use crate::notify::GENERIC;
use bytes::Bytes;

/// DEL key [key ...] / UNLINK key [key ...]: the number of keys removed.
pub fn del(cx: &mut Ctx) {
    let mut n = 0;
    for i in 1..cx.argv.len() {
        let key = cx.argv[i].clone();
        // Lazy expiry first, so an expired key does not count.
        let _ = cx.lookup_quiet(&key);
        if cx.delete_key(&key) {
            cx.notify(GENERIC, "del", &key);
            n += 1;
        }
    }
    cx.dirty(n as u64);
    cx.out().int(n);
}

/// EXISTS key [key ...]: counts repeats.
pub fn exists(cx: &mut Ctx) {
    let mut n = 0;
    for i in 1..cx.argv.len() {
        let key = cx.argv[i].clone();
        if cx.lookup_read_notouch(&key).is_some() {
            n += 1;
        }
    }
    cx.out().int(n);
}

/// TYPE key
pub fn type_(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    let t = cx
        .lookup_read_notouch(&key)
        .map_or("none", |e| e.value.type_name());
    cx.out().simple(t);
}

pub fn rename(cx: &mut Ctx) {
    rename_generic(cx, false);
}

pub fn renamenx(cx: &mut Ctx) {
    rename_generic(cx, true);
}

/// RENAME / RENAMENX: moves the value and its TTL.
fn rename_generic(cx: &mut Ctx, nx: bool) {
    let (src, dst) = (cx.argv[1].clone(), cx.argv[2].clone());
    if cx.lookup_write(&src).is_none() {
        return cx.error("ERR no such key");
    }
    if src == dst {
        return if nx { cx.out().int(0) } else { cx.out().ok() };
    }
    if cx.lookup_write(&dst).is_some() {
        if nx {
            return cx.out().int(0);
        }
        cx.delete_key(&dst);
    }
    let db = cx.db();
    let expire = db.expire_of(&src);
    let Some(entry) = db.take(&src) else {
        return;
    };
    db.persist(&src);
    db.put(&dst, entry);
    if let Some(at) = expire {
        db.set_expire(&dst, at);
    }
    // A list or zset appearing under a new name can serve blocked clients.
    cx.signal_ready(&dst);
    cx.dirty(1);
    // Redis's dbAdd fires `new` even when it replaced a deleted key.
    let dbi = cx.client.db;
    cx.notify_new(&dst, dbi);
    cx.notify(GENERIC, "rename_from", &src);
    cx.notify(GENERIC, "rename_to", &dst);
    if nx {
        cx.out().int(1);
    } else {
        cx.out().ok();
    }
}

/// KEYS pattern: every live key matching; expired keys are skipped, not
/// deleted (Redis does the same to keep KEYS read-only).
pub fn keys(cx: &mut Ctx) {
    let pattern = cx.argv[1].clone();
    let all = pattern.as_ref() == b"*";
    let now = cx.now_ms();
    let db = &cx.node.dbs[cx.client.db];
    let found: Vec<Bytes> = db
        .keys
        .iter()
        .filter(|(k, _)| all || glob::matches(&pattern, k, false))
        .filter(|(k, _)| !db.is_expired(k, now))
        .map(|(k, _)| Bytes::copy_from_slice(k))
        .collect();
    let out = cx.out();
    out.array(found.len());
    for k in found {
        out.bulk(&k);
    }
}

/// Parses a SCAN cursor like Redis's `strtoul`-based parser: optional sign,
/// decimal digits, no surrounding space; "-1" wraps around.
pub fn parse_cursor(b: &[u8]) -> Option<u64> {
    if b.first().is_some_and(|c| c.is_ascii_whitespace()) {
        return None;
    }
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        // strtoul parses nothing and leaves the end pointer at the start:
        // Redis accepts only the empty string this way.
        return if b.is_empty() { Some(0) } else { None };
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
pub fn scan(cx: &mut Ctx) {
    let Some(mut cursor) = parse_cursor(&cx.argv[1]) else {
        return cx.error("ERR invalid cursor");
    };
    let mut count: i64 = 10;
    let mut pattern: Option<Bytes> = None;
    let mut type_filter: Option<Bytes> = None;
    let mut i = 2;
    while i < cx.argv.len() {
        let left = cx.argv.len() - i;
        if cx.arg_is(i, "count") && left >= 2 {
            let Some(n) = cx.parse_int(i + 1) else { return };
            if n < 1 {
                return cx.syntax_error();
            }
            count = n;
        } else if cx.arg_is(i, "match") && left >= 2 {
            let p = cx.argv[i + 1].clone();
            pattern = if p.as_ref() == b"*" { None } else { Some(p) };
        } else if cx.arg_is(i, "type") && left >= 2 {
            type_filter = Some(cx.argv[i + 1].clone());
        } else {
            return cx.syntax_error();
        }
        i += 2;
    }
    let mut found: Vec<Bytes> = vec![];
    {
        let db = &cx.node.dbs[cx.client.db];
        let mut max_iterations = count.saturating_mul(10);
        loop {
            cursor = db
                .keys
                .scan(cursor, |k, _| found.push(Bytes::copy_from_slice(k)));
            let keep_going = cursor != 0 && max_iterations > 0 && (found.len() as i64) < count;
            max_iterations -= 1;
            if !keep_going {
                break;
            }
        }
    }
    let mut keys = Vec::with_capacity(found.len());
    for k in found {
        if let Some(p) = &pattern {
            if !glob::matches(p, &k, false) {
                continue;
            }
        }
        if let Some(t) = &type_filter {
            // As Redis 7.0's scanGenericCommand: the type lookup deletes an
            // expired key and calls it "none", so TYPE none lists it (the
            // expiry check that follows no longer finds a TTL).
            let name = cx
                .lookup_read_notouch(&k)
                .map_or("none", |e| e.value.type_name());
            if !t.eq_ignore_ascii_case(name.as_bytes()) {
                continue;
            }
            if name == "none" {
                keys.push(k);
                continue;
            }
        }
        if cx.lookup_quiet(&k).is_none() {
            continue;
        }
        keys.push(k);
    }
    let out = cx.out();
    out.array(2);
    out.bulk(itoa::Buffer::new().format(cursor).as_bytes());
    out.array(keys.len());
    for k in keys {
        out.bulk(&k);
    }
}

/// RANDOMKEY: a random live key, or nil.
pub fn randomkey(cx: &mut Ctx) {
    loop {
        let db = &cx.node.dbs[cx.client.db];
        let Some((k, _)) = db.keys.random_entry(&mut cx.node.rng) else {
            return cx.out().null();
        };
        let k = Bytes::copy_from_slice(k);
        if cx.lookup_quiet(&k).is_some() {
            return cx.out().bulk(&k);
        }
    }
}

pub fn expire(cx: &mut Ctx) {
    let now = cx.now_ms();
    expire_generic(cx, now, true);
}

pub fn pexpire(cx: &mut Ctx) {
    let now = cx.now_ms();
    expire_generic(cx, now, false);
}

pub fn expireat(cx: &mut Ctx) {
    expire_generic(cx, 0, true);
}

pub fn pexpireat(cx: &mut Ctx) {
    expire_generic(cx, 0, false);
}

/// `expireGenericCommand`: EXPIRE and friends with NX/XX/GT/LT.
fn expire_generic(cx: &mut Ctx, base_ms: i64, seconds: bool) {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for j in 3..cx.argv.len() {
        let opt = cx.argv[j].to_ascii_lowercase();
        match opt.as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => {
                let msg = format!(
                    "ERR Unsupported option {}",
                    crate::resp::c_str_lossy(&cx.argv[j])
                );
                return cx.error(&msg);
            }
        }
    }
    if nx && (xx || gt || lt) {
        return cx.error("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return cx.error("ERR GT and LT options at the same time are not compatible");
    }
    let Some(mut when) = cx.parse_int(2) else {
        return;
    };
    if seconds {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return expire_time_error(cx);
        }
        when *= 1000;
    }
    if when > i64::MAX - base_ms {
        return expire_time_error(cx);
    }
    when += base_ms;
    let key = cx.argv[1].clone();
    if cx.lookup_write(&key).is_none() {
        return cx.out().int(0);
    }
    let current = cx.db().expire_of(&key);
    let refuse = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| when <= c))
        || (lt && current.is_some_and(|c| when >= c));
    if refuse {
        return cx.out().int(0);
    }
    // Replaying the AOF, a past time is kept as a TTL (checkAlreadyExpired
    // is false while loading).
    if when <= cx.now_ms() && !cx.node.aof.replaying {
        cx.delete_key(&key);
        cx.notify(GENERIC, "del", &key);
    } else {
        cx.db().set_expire(&key, when);
        cx.notify(GENERIC, "expire", &key);
    }
    cx.dirty(1);
    cx.out().int(1);
}

pub fn ttl(cx: &mut Ctx) {
    ttl_generic(cx, false, false);
}

pub fn pttl(cx: &mut Ctx) {
    ttl_generic(cx, true, false);
}

pub fn expiretime(cx: &mut Ctx) {
    ttl_generic(cx, false, true);
}

pub fn pexpiretime(cx: &mut Ctx) {
    ttl_generic(cx, true, true);
}

/// TTL, PTTL, EXPIRETIME, PEXPIRETIME: -2 if no key, -1 if no TTL; seconds
/// are rounded to nearest as Redis does.
fn ttl_generic(cx: &mut Ctx, ms: bool, absolute: bool) {
    let key = cx.argv[1].clone();
    if cx.lookup_read_notouch(&key).is_none() {
        return cx.out().int(-2);
    }
    let Some(at) = cx.db().expire_of(&key) else {
        return cx.out().int(-1);
    };
    let t = if absolute {
        at
    } else {
        (at - cx.now_ms()).max(0)
    };
    // Rounded in 128 bits: Redis's result for expiries near i64::MAX.
    let v = if ms {
        t
    } else {
        ((t as i128 + 500) / 1000) as i64
    };
    cx.out().int(v);
}

/// PERSIST key
pub fn persist(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    if cx.lookup_write(&key).is_none() {
        return cx.out().int(0);
    }
    let removed = cx.db().persist(&key);
    if removed {
        cx.dirty(1);
        cx.notify(GENERIC, "persist", &key);
    }
    cx.out().int(removed as i64);
}

/// TOUCH key [key ...]: updates access times; counts existing keys.
pub fn touch(cx: &mut Ctx) {
    let mut n = 0;
    for i in 1..cx.argv.len() {
        let key = cx.argv[i].clone();
        if cx.lookup_read(&key).is_some() {
            n += 1;
        }
    }
    cx.out().int(n);
}

/// Parses a db index argument; replies Redis's errors.
fn parse_db_index(cx: &mut Ctx, i: usize) -> Option<usize> {
    let id = cx.parse_i32(i)?;
    if id < 0 || id as usize >= cx.node.dbs.len() {
        cx.error("ERR DB index is out of range");
        return None;
    }
    Some(id as usize)
}

/// COPY source destination [DB destination-db] [REPLACE]
pub fn copy(cx: &mut Ctx) {
    let (src, dst) = (cx.argv[1].clone(), cx.argv[2].clone());
    let mut replace = false;
    let mut dst_db = cx.client.db;
    let mut j = 3;
    while j < cx.argv.len() {
        if cx.arg_is(j, "replace") {
            replace = true;
        } else if cx.arg_is(j, "db") && j + 1 < cx.argv.len() {
            let Some(id) = parse_db_index(cx, j + 1) else {
                return;
            };
            dst_db = id;
            j += 1;
        } else {
            return cx.syntax_error();
        }
        j += 1;
    }
    if dst_db == cx.client.db && src == dst {
        return cx.error("ERR source and destination objects are the same");
    }
    // Redis reads the source with lookupKeyRead (stats, keymiss).
    let Some(entry) = cx.lookup_read(&src).map(|e| e.clone()) else {
        return cx.out().int(0);
    };
    let expire = cx.db().expire_of(&src);
    let now = cx.now_ms();
    let target = &mut cx.node.dbs[dst_db];
    if target.expire_if_needed(&dst, now) {
        cx.node.stats.expired_keys += 1;
        crate::notify::key_expired(cx.node, dst_db, &dst);
    }
    let target = &mut cx.node.dbs[dst_db];
    if target.keys.contains_key(&dst) {
        if !replace {
            return cx.out().int(0);
        }
        target.delete(&dst);
    }
    // Redis duplicates the object: a shared integer's copy is an object of
    // its own.
    let value = match entry.value {
        Value::Str(Str::Int(n)) => Value::Str(Str::IntOwned(n)),
        v => v,
    };
    target.set(dst.clone(), value, entry.lru);
    if let Some(at) = expire {
        target.set_expire(&dst, at);
    }
    cx.node.signal_ready(dst_db, &dst);
    cx.dirty(1);
    // WATCH: the destination, in its own db (the node leaves COPY to us).
    cx.node.touch_key(cx.client, dst_db, &dst);
    cx.notify_new(&dst, dst_db);
    cx.notify_in_db(GENERIC, "copy_to", &dst, dst_db);
    cx.out().int(1);
}

/// MOVE key db
pub fn move_(cx: &mut Ctx) {
    let Some(dst_db) = parse_db_index(cx, 2) else {
        return;
    };
    if dst_db == cx.client.db {
        return cx.error("ERR source and destination objects are the same");
    }
    let key = cx.argv[1].clone();
    if cx.lookup_write(&key).is_none() {
        return cx.out().int(0);
    }
    let now = cx.now_ms();
    let target = &mut cx.node.dbs[dst_db];
    if target.expire_if_needed(&key, now) {
        cx.node.stats.expired_keys += 1;
        crate::notify::key_expired(cx.node, dst_db, &key);
    }
    if cx.node.dbs[dst_db].keys.contains_key(&key) {
        return cx.out().int(0);
    }
    let src = cx.db();
    let expire = src.expire_of(&key);
    let Some(entry) = src.take(&key) else {
        return;
    };
    src.persist(&key);
    let target = &mut cx.node.dbs[dst_db];
    target.put(&key, entry);
    if let Some(at) = expire {
        target.set_expire(&key, at);
    }
    cx.node.signal_ready(dst_db, &key);
    cx.dirty(1);
    // WATCH: the key in both dbs, as Redis signals it.
    let db = cx.client.db;
    cx.node.touch_key(cx.client, db, &key);
    cx.node.touch_key(cx.client, dst_db, &key);
    cx.notify_new(&key, dst_db);
    cx.notify(GENERIC, "move_from", &key);
    cx.notify_in_db(GENERIC, "move_to", &key, dst_db);
    cx.out().int(1);
}

/// OBJECT ENCODING key
pub fn object_encoding(cx: &mut Ctx) {
    let key = cx.argv[2].clone();
    match cx
        .lookup_read_notouch(&key)
        .map(|e| e.value.encoding_name())
    {
        Some(enc) => cx.out().bulk(enc.as_bytes()),
        None => cx.out().null(),
    }
}

fn lfu_policy(cx: &Ctx) -> bool {
    cx.node.policy().is_lfu()
}

/// OBJECT IDLETIME key: seconds since last access (LRU policies only).
pub fn object_idletime(cx: &mut Ctx) {
    let key = cx.argv[2].clone();
    let now = cx.node.now.as_secs();
    let Some(lru) = cx.lookup_read_notouch(&key).map(|e| e.lru) else {
        return cx.out().null();
    };
    if lfu_policy(cx) {
        return cx.error("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
    }
    let idle_s = crate::evict::idle_ms(lru, now) / 1000;
    cx.out().int(idle_s as i64);
}

/// OBJECT FREQ key: the decayed LFU counter (LFU policies only).
pub fn object_freq(cx: &mut Ctx) {
    let key = cx.argv[2].clone();
    let Some(lru) = cx.lookup_read_notouch(&key).map(|e| e.lru) else {
        return cx.out().null();
    };
    if !lfu_policy(cx) {
        return cx.error("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
    }
    let decay = cx.node.config.lfu_decay_time.clamp(0, u32::MAX as i64) as u32;
    let freq = crate::evict::lfu_decr(lru, cx.node.now.as_secs(), decay);
    cx.out().int(freq as i64);
}

/// OBJECT REFCOUNT key
pub fn object_refcount(cx: &mut Ctx) {
    let key = cx.argv[2].clone();
    let db = cx.client.db;
    let from_argv = cx.client.in_exec
        && !cx.client.is_script
        && cx
            .node
            .exec_argv_values
            .iter()
            .any(|(d, k)| *d == db && *k == key);
    // Under an LRU or LFU maxmemory policy Redis creates integers as
    // objects of their own (MAXMEMORY_FLAG_NO_SHARED_INTEGERS), since a
    // shared object cannot keep one key's access time. Judged by the
    // current policy: Redis remembers the policy each object was made under.
    let policy = cx.node.policy();
    let unshared = cx.node.config.maxmemory != 0
        && (policy.is_lfu()
            || matches!(
                policy,
                crate::evict::Policy::AllKeysLru | crate::evict::Policy::VolatileLru
            ));
    let rc = cx.lookup_read_notouch(&key).map(|e| match &e.value {
        Value::Str(s) => match super::strings::refcount(s) {
            n if n > 1 && unshared => 1 + from_argv as i64,
            1 if from_argv => 2,
            n => n,
        },
        _ => 1,
    });
    match rc {
        Some(n) => cx.out().int(n),
        None => cx.out().null(),
    }
}

/// One queued command of an EXEC, for OBJECT REFCOUNT: which string
/// values are the object of a queued command's argument. Redis stores the
/// argument object itself (SET and friends, APPEND to a new key) or
/// rewrites the argv to the stored object (INCRBYFLOAT), and the argvs of
/// the transaction live until EXEC returns; every other write gives the key
/// a fresh object (APPEND, SETRANGE, INCR, ... unshare a value whose
/// refcount is above 1), except those that keep or move the object.
pub struct ExecStep {
    dirty: u64,
    db: usize,
    existed: bool,
}

impl ExecStep {
    pub fn before(node: &Node, c: &Client, argv: &[Bytes]) -> ExecStep {
        let existed = argv
            .get(1)
            .is_some_and(|k| node.dbs[c.db].keys.contains_key(k));
        ExecStep {
            dirty: node.dirty,
            db: c.db,
            existed,
        }
    }

    pub fn after(self, node: &mut Node, argv: &[Bytes]) {
        if node.dirty == self.dirty || argv.is_empty() {
            return;
        }
        let name = argv[0].to_ascii_lowercase();
        let db = self.db;
        let arg_db = |i: usize| -> Option<usize> {
            let n = crate::resp::parse_i64(argv.get(i)?)?;
            usize::try_from(n).ok()
        };
        let tracked = &mut node.exec_argv_values;
        match name.as_slice() {
            // The same object, with another TTL.
            b"expire" | b"pexpire" | b"expireat" | b"pexpireat" | b"persist" | b"getex" => {}
            // The object moves.
            b"rename" | b"renamenx" if argv.len() == 3 => {
                let moved = tracked.iter().any(|(d, k)| *d == db && *k == argv[1]);
                tracked.retain(|(d, k)| !(*d == db && (*k == argv[1] || *k == argv[2])));
                if moved {
                    tracked.push((db, argv[2].clone()));
                }
            }
            b"move" => {
                if let Some(to) = arg_db(2) {
                    for (d, k) in tracked.iter_mut() {
                        if *d == db && *k == argv[1] {
                            *d = to;
                        }
                    }
                }
            }
            b"swapdb" => {
                if let (Some(a), Some(b)) = (arg_db(1), arg_db(2)) {
                    for (d, _) in tracked.iter_mut() {
                        if *d == a {
                            *d = b;
                        } else if *d == b {
                            *d = a;
                        }
                    }
                }
            }
            b"flushall" => tracked.clear(),
            b"flushdb" => tracked.retain(|(d, _)| *d != db),
            _ => {
                let Some(cmd) = Table::get().lookup(&argv[0]) else {
                    return;
                };
                use crate::command::key_flags::{OW, RM, RW};
                let written: Vec<usize> = cmd
                    .key_specs
                    .iter()
                    .filter(|s| s.flags & (RW | OW | RM) != 0)
                    .flat_map(|s| s.positions(argv))
                    .collect();
                let written: Vec<&Bytes> = written.iter().filter_map(|&i| argv.get(i)).collect();
                tracked.retain(|(d, k)| !(*d == db && written.contains(&k)));
                let stored: Vec<Bytes> = match name.as_slice() {
                    b"set" | b"setnx" | b"setex" | b"psetex" | b"getset" | b"incrbyfloat" => {
                        vec![argv[1].clone()]
                    }
                    b"append" if !self.existed => vec![argv[1].clone()],
                    b"mset" | b"msetnx" => argv[1..].iter().step_by(2).cloned().collect(),
                    _ => vec![],
                };
                for k in stored {
                    if matches!(
                        node.dbs[db].keys.get(&k).map(|e| &e.value),
                        Some(Value::Str(_))
                    ) {
                        node.exec_argv_values.push((db, k));
                    }
                }
            }
        }
    }
}

pub fn object_help(cx: &mut Ctx) {
    cx.reply_help("object");
}

#[cfg(test)]
mod tests {
    use super::parse_cursor;

    #[test]
    fn cursor_parsing_like_strtoul() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"+5"), Some(5));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b" 1"), None);
        assert_eq!(parse_cursor(b"1x"), None);
        assert_eq!(parse_cursor(b"18446744073709551616"), None);
    }
}
