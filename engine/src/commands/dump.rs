//! DUMP and RESTORE (Redis 7.0's `dumpCommand` / `restoreCommand` in
//! `cluster.c`): a value's RDB serialisation out, and back in.
//!
//! The payload format lives in [`crate::rdb`]; here are the command rules:
//! option parsing, the order in which errors are checked, TTLs (relative
//! unless ABSTTL; one already past deletes instead of creating) and the
//! access time that IDLETIME sets.

use crate::command::Handler;
use crate::db::Value;
use crate::node::Ctx;
use crate::rdb::{self, LoadOptions};

/// This module's commands, by lowercase name.
pub fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "dump" => dump,
        "restore" => restore,
        _ => return None,
    })
}

/// DUMP key: the serialised value, or nil.
pub fn dump(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    if cx.lookup_read(&key).is_none() {
        return cx.out().null();
    }
    let db = cx.client.db;
    let node = &*cx.node;
    let Some(entry) = node.dbs[db].keys.get(&key) else {
        return cx.out().null();
    };
    let payload = rdb::dump_payload(&entry.value, &node.config);
    cx.out().bulk(&payload);
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds]
/// [FREQ frequency]
pub fn restore(cx: &mut Ctx) {
    let key = cx.argv[1].clone();
    let (mut replace, mut absttl) = (false, false);
    let mut idle_s: Option<i64> = None;
    let mut freq: Option<i64> = None;
    let argc = cx.argv.len();
    let mut j = 4;
    while j < argc {
        let additional = argc - j - 1;
        if cx.arg_is(j, "replace") {
            replace = true;
        } else if cx.arg_is(j, "absttl") {
            absttl = true;
        } else if cx.arg_is(j, "idletime") && additional >= 1 && freq.is_none() {
            let Some(v) = cx.parse_int(j + 1) else {
                return;
            };
            if v < 0 {
                return cx.error("ERR Invalid IDLETIME value, must be >= 0");
            }
            idle_s = Some(v);
            j += 1;
        } else if cx.arg_is(j, "freq") && additional >= 1 && idle_s.is_none() {
            let Some(v) = cx.parse_int(j + 1) else {
                return;
            };
            if !(0..=255).contains(&v) {
                return cx.error("ERR Invalid FREQ value, must be >= 0 and <= 255");
            }
            freq = Some(v);
            j += 1;
        } else {
            return cx.syntax_error();
        }
        j += 1;
    }

    let Some(ttl) = cx.parse_int(2) else {
        return;
    };
    if ttl < 0 {
        return cx.error("ERR Invalid TTL value, must be >= 0");
    }
    if !replace && cx.lookup_write(&key).is_some() {
        return cx.error("BUSYKEY Target key name already exists.");
    }

    let payload = cx.argv[3].clone();
    if rdb::verify_payload(&payload).is_err() {
        return cx.error("ERR DUMP payload version or checksum are wrong");
    }
    let node = &mut *cx.node;
    let opts = LoadOptions {
        config: &node.config,
        check_checksum: true,
        // sanitize-dump-payload is not a Config field yet; the loader
        // validates fully either way.
        sanitize: false,
    };
    let value = match rdb::restore_payload_with_rng(&payload, &opts, &mut node.rng) {
        Ok(v) => v,
        Err(_) => return cx.error("ERR Bad data format"),
    };

    // Like dbDelete: the old value goes even if it had logically expired.
    let deleted = replace && cx.delete_key(&key);
    let now_ms = cx.now_ms();
    let at_ms = if ttl != 0 && !absttl {
        // mstime() + ttl in C: wraps on overflow, and a wrapped (negative)
        // time is "already expired".
        ttl.wrapping_add(now_ms)
    } else {
        ttl
    };
    if ttl != 0 && at_ms <= now_ms && !cx.node.aof.replaying {
        if deleted {
            cx.dirty(1);
            cx.notify(crate::notify::GENERIC, "del", &key);
        }
        return cx.out().ok();
    }

    // Redis's objectSetLRUOrLFU: IDLETIME under LRU policies, FREQ under
    // LFU ones; the other is ignored.
    let now_s = cx.node.now.as_secs();
    let lfu = cx.node.policy().is_lfu();
    let lru = match (idle_s, freq) {
        (Some(idle), _) if !lfu => lru_for_idle(now_s, idle),
        (_, Some(f)) if lfu => ((((now_s / 60) & 0xffff) as u32) << 8) | f as u32,
        _ => cx.lru_now(),
    };
    let blocking_type = matches!(value, Value::List(_) | Value::ZSet(_) | Value::Stream(_));
    cx.db().set(key.clone(), value, lru);
    if ttl != 0 {
        cx.db().set_expire(&key, at_ms);
    }
    if blocking_type {
        cx.signal_ready(&key);
    }
    // dbAdd: `new` even when REPLACE deleted the old value.
    let db = cx.client.db;
    cx.notify_new(&key, db);
    cx.notify(crate::notify::GENERIC, "restore", &key);
    cx.out().ok();
    cx.dirty(1);
}

/// Redis's 24-bit LRU clock, in seconds.
const LRU_CLOCK_MAX: i64 = (1 << 24) - 1;

/// The access time (engine seconds) that makes OBJECT IDLETIME report
/// what Redis reports after `RESTORE ... IDLETIME idle`: Redis subtracts
/// the idle time from its 24-bit wrapping clock (`objectSetLRUOrLFU`),
/// so huge idle times wrap the way they do there.
pub(crate) fn lru_for_idle(now_s: u64, idle_s: i64) -> u32 {
    let clock = (now_s as i64) & LRU_CLOCK_MAX;
    let mut lru = clock.wrapping_sub(idle_s);
    if lru < 0 {
        lru = lru.wrapping_add(LRU_CLOCK_MAX);
    }
    // The object header's lru field is 24 bits wide.
    (lru & LRU_CLOCK_MAX) as u32
}

#[cfg(test)]
mod tests {
    use super::lru_for_idle;

    /// What OBJECT IDLETIME reports for the stamp RESTORE stored.
    fn shown(now: u64, idle: i64) -> u64 {
        crate::evict::idle_ms(lru_for_idle(now, idle), now) / 1000
    }

    #[test]
    fn idle_times() {
        let now = 1_700_000_000u64;
        assert_eq!(shown(now, 0), 0);
        assert_eq!(shown(now, 1000), 1000);
        // Up to a clock period the subtraction wraps back exactly...
        let clock = now & ((1 << 24) - 1);
        assert_eq!(shown(now, clock as i64 + 10), clock + 10);
        // ...beyond, the 24-bit field keeps only the low bits.
        assert_eq!(shown(now, (1 << 25) + 5), 6);
    }
}
