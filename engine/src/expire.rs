//! Active expiry: Redis's `activeExpireCycle`, driven by ticks.
//!
//! Lazy expiry alone would keep keys that are never read again. On every
//! tick the node samples keys with a TTL and deletes those that have passed,
//! repeating on a database while more than 10% of a sample was stale. Redis
//! bounds the work by CPU time (25% of the tick); the engine has no clock to
//! read mid-command, so the bound is a number of samples instead, scaled by
//! `active-expire-effort` like Redis's keys-per-loop.

use crate::node::Node;
use bytes::Bytes;

/// Keys sampled per loop at effort 1 (ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP).
const KEYS_PER_LOOP: usize = 20;
/// Loops per database per tick at most (stands in for Redis's time limit).
const MAX_LOOPS_PER_DB: usize = 16;
/// Keep going on a db while more than this percentage of samples expired.
const ACCEPTABLE_STALE_PCT: usize = 10;
/// Databases visited per tick (CRON_DBS_PER_CALL).
const DBS_PER_CALL: usize = 16;

pub fn active_expire_cycle(node: &mut Node) {
    let effort = node.config.active_expire_effort.clamp(1, 10) as usize - 1;
    let per_loop = crate::buggify::shrink(KEYS_PER_LOOP + KEYS_PER_LOOP / 4 * effort, 1);
    let acceptable = ACCEPTABLE_STALE_PCT.saturating_sub(effort);
    let now_ms = node.now.as_millis();
    let ndb = node.dbs.len();
    for _ in 0..DBS_PER_CALL.min(ndb) {
        let dbi = node.expire_db_cursor % ndb;
        node.expire_db_cursor = node.expire_db_cursor.wrapping_add(1);
        for _ in 0..MAX_LOOPS_PER_DB {
            let db = &mut node.dbs[dbi];
            if db.expires.is_empty() {
                break;
            }
            let sample = per_loop.min(db.expires.len());
            let mut expired = Vec::new();
            let (mut ttl_sum, mut ttl_samples) = (0i64, 0i64);
            for _ in 0..sample {
                if let Some((k, &at)) = db.expires.random_entry(&mut node.rng) {
                    if at < now_ms {
                        if !expired.iter().any(|e: &Vec<u8>| e == k) {
                            expired.push(k.to_vec());
                        }
                    } else {
                        ttl_sum = ttl_sum.saturating_add(at - now_ms);
                        ttl_samples += 1;
                    }
                }
            }
            if ttl_samples > 0 {
                // Redis's smoothing: the new sample weighs 2%, or all of it
                // when there is no estimate yet.
                let avg = ttl_sum / ttl_samples;
                db.avg_ttl_ms = if db.avg_ttl_ms == 0 {
                    avg
                } else {
                    (db.avg_ttl_ms / 50) * 49 + avg / 50
                };
            }
            for k in &expired {
                db.delete_expired(k);
            }
            if node.aof.enabled {
                for k in &expired {
                    crate::aof::propagate(
                        node,
                        dbi,
                        vec![Bytes::from_static(b"DEL"), Bytes::copy_from_slice(k)],
                    );
                    crate::aof::end_of_command(node);
                }
            }
            for k in &expired {
                crate::notify::key_expired(node, dbi, k);
            }
            node.stats.expired_keys += expired.len() as u64;
            node.stats.expire_cycle_cpu_samples += sample as u64;
            if expired.len() * 100 <= sample * acceptable {
                break;
            }
        }
    }
}
