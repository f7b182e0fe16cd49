//! Memory accounting: a deterministic estimate of the bytes the dataset
//! holds, which `maxmemory` is checked against and INFO reports as
//! `used_memory`.
//!
//! Why an estimate and not the allocator's counter: eviction decides which
//! keys disappear, so it must not depend on the host (the simulator replays
//! a seed exactly). The estimate mirrors our real layout (dict nodes, inline
//! keys, jemalloc size classes), so it tracks the allocator closely; the
//! shim still reports the process's real resident size as
//! `used_memory_rss`.
//!
//! How it stays cheap: every [`crate::db::Entry`] remembers the estimate
//! (`mem`) it contributed to its db's total. `Db::set`/`delete` add and
//! subtract it; commands that change a value in place are reconciled after
//! they run (`Node::account_written_keys`), re-estimating only the keys the
//! command wrote. A collection's estimate samples at most
//! [`SAMPLES`] elements and extrapolates, as Redis's `objectComputeSize`
//! does, so a write to a ten-million-element set costs the same as one to a
//! small set.

use crate::db::{Str, Value};

/// Elements sampled per collection estimate (OBJ_COMPUTE_SIZE_DEF_SAMPLES).
pub const SAMPLES: usize = 5;

/// A fixed allowance for what the process holds with an empty dataset
/// (command table, Lua, runtime), so `used_memory` starts near Redis's
/// ~870 KB rather than at zero.
pub const BASE_OVERHEAD: u64 = 900 * 1024;

/// jemalloc's size class for an allocation of `n` bytes (0 for none): 8,
/// 16, then multiples of 16 up to 128, then four classes per doubling.
pub fn class(n: usize) -> usize {
    match n {
        0 => 0,
        1..=8 => 8,
        9..=128 => n.div_ceil(16) * 16,
        _ => {
            let pow = usize::BITS - (n - 1).leading_zeros(); // 2^pow >= n
            let step = 1usize << (pow - 3); // four classes between 2^(pow-1) and 2^pow
            n.div_ceil(step) * step
        }
    }
}

/// Bytes a connected client holds (Redis's `getClientMemoryUsage`): its
/// state, the query buffer, arguments parsed so far, the reply buffer, the
/// replies the driver has not yet written to the socket (reported with
/// `Input::OutputBacklog`), a queued MULTI and its subscriptions and WATCHed
/// keys. This is what `maxmemory-clients` limits and what CLIENT LIST's
/// `tot-mem` shows.
pub fn client_bytes(c: &crate::node::Client) -> u64 {
    let handle = std::mem::size_of::<bytes::Bytes>();
    let args = |argv: &[bytes::Bytes]| -> usize { argv.iter().map(|a| a.len() + handle).sum() };
    let multi: usize = c
        .multi
        .as_ref()
        .map_or(0, |q| q.iter().map(|cmd| 24 + args(cmd)).sum());
    let subscriptions = c.channels.len() + c.patterns.len() + c.shard_channels.len();
    let watched: usize = c.watched.iter().map(|(_, k, _)| k.len() + 48).sum();
    (std::mem::size_of::<crate::node::Client>()
        + c.querybuf.capacity()
        + args(&c.argv)
        + c.reply.buf.capacity()
        + multi
        + subscriptions * handle
        + watched) as u64
        + c.output_backlog
}

/// Collection fields and members this long or shorter live inside their
/// dict node (dict.rs `Key`).
const INLINE_KEY: usize = 22;

/// Heap bytes of a collection's dict key beyond its node.
fn key_heap(len: usize) -> usize {
    if len > INLINE_KEY {
        class(len)
    } else {
        0
    }
}

/// Heap bytes of a keyspace or expires key beyond its node (dict.rs
/// `ShortKey`: 15 bytes inline, longer ones boxed).
pub fn short_key_heap(len: usize) -> usize {
    if len > <crate::dict::ShortKey as crate::dict::DictKey>::INLINE {
        class(len)
    } else {
        0
    }
}

const SHORT_KEY: usize = std::mem::size_of::<crate::dict::ShortKey>();

/// A keyspace dict node: key (16) + entry (40) + next pointer = 64.
fn keyspace_node() -> usize {
    class(SHORT_KEY + std::mem::size_of::<crate::db::Entry>() + 8)
}

/// Bytes a key costs in the keyspace besides its value: the node and a
/// heap key if long. Bucket pointers are not charged per key: the db counts
/// both bucket arrays as they are (`Db::memory_bytes`), which also sees the
/// two tables held during an incremental rehash, as Redis's counter does.
pub fn key_bytes(key_len: usize) -> u64 {
    (keyspace_node() + short_key_heap(key_len)) as u64
}

/// Bytes one entry of the expires dict costs: its node (key 16 + i64 +
/// next = 32). A long key's own heap copy is counted apart, per entry, in
/// `Db::expires_heap`; the buckets with the table's.
pub const EXPIRE_ENTRY_BYTES: u64 = 32;

/// Estimated heap bytes of a value (not counting the entry that holds it).
pub fn value_bytes(v: &Value) -> u64 {
    value_bytes_sampled(v, SAMPLES)
}

/// [`value_bytes`] extrapolating from `samples` elements of a collection
/// (0: all of them), as MEMORY USAGE ... SAMPLES asks.
pub fn value_bytes_sampled(v: &Value, samples: usize) -> u64 {
    let samples = if samples == 0 { usize::MAX } else { samples };
    let sampled = |costs: &mut dyn Iterator<Item = usize>| sampled(costs, samples);
    let n = match v {
        Value::Str(s) => match s {
            Str::Int(_) | Str::IntOwned(_) => 0,
            Str::Emb(b) => class(b.len()),
            Str::Raw(v) => class(v.capacity()),
        },
        Value::List(l) => {
            // Packed chunks: each element costs its bytes plus a length
            // prefix and a back-length; chunks of ~8 KB plus their header.
            let per = sampled(&mut l.iter().map(|e| e.len() + 2));
            let body = per * l.len() as f64;
            body as usize + (body as usize / 8192 + 1) * 32
        }
        Value::Hash(h) => {
            let table = h.encoding_name() == "hashtable";
            let per = sampled(&mut h.iter().map(|(f, v)| {
                if table {
                    // Node (two 24-byte keys + next) in the 64 class, heap
                    // parts of long fields/values, a bucket pointer.
                    64 + key_heap(f.len()) + key_heap(v.len()) + 8
                } else {
                    f.len() + v.len() + 4
                }
            }));
            (per * h.len() as f64) as usize + 32
        }
        Value::Set(s) => {
            let table = s.encoding_name() == "hashtable";
            let per = sampled(&mut s.iter().map(|m| match m {
                crate::commands::sets::Member::Int(_) => 8,
                crate::commands::sets::Member::Bytes(b) if table => 32 + key_heap(b.len()) + 8,
                crate::commands::sets::Member::Bytes(b) => b.len() + 2,
            }));
            // An intset stores members of one width; 8 is the widest.
            let per = if table { per } else { per.min(8.0) };
            (per * s.len() as f64) as usize + 32
        }
        Value::ZSet(z) => {
            let tree = z.encoding_name() == "skiplist";
            let per = sampled(&mut z.iter().map(|(_, m)| {
                if tree {
                    // Tree node (score, member, links) plus the member index.
                    class(m.len()) + 64 + 32
                } else {
                    m.len() + 12
                }
            }));
            (per * z.len() as f64) as usize + 32
        }
        Value::Stream(s) => s.heap_bytes() + 64,
        #[allow(unreachable_patterns)]
        _ => 64,
    };
    n as u64
}

/// The mean of the first `samples` costs (0 if none).
fn sampled(costs: &mut dyn Iterator<Item = usize>, samples: usize) -> f64 {
    let (mut sum, mut n) = (0usize, 0usize);
    for c in costs.take(samples) {
        sum += c;
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        sum as f64 / n as f64
    }
}

/// The estimate as stored in an entry: saturating at u32::MAX (4 GiB);
/// values that large are rare and still count as huge.
pub fn clamp(n: u64) -> u32 {
    n.min(u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes() {
        assert_eq!(class(0), 0);
        assert_eq!(class(1), 8);
        assert_eq!(class(9), 16);
        assert_eq!(class(72), 80);
        assert_eq!(class(129), 160);
        assert_eq!(class(200), 224);
        assert_eq!(class(1025), 1280);
        assert_eq!(class(4096), 4096);
    }

    #[test]
    fn estimates_grow_with_content() {
        let small = value_bytes(&Value::Str(Str::from_vec(vec![b'x'; 10])));
        let big = value_bytes(&Value::Str(Str::from_vec(vec![b'x'; 1000])));
        assert!(small < big, "{small} {big}");
        assert_eq!(value_bytes(&Value::Str(Str::Int(5))), 0);
        // A keyspace node fills the 64-byte class, an expires node the 32.
        assert_eq!(key_bytes(10), 64);
        assert_eq!(key_bytes(15), 64);
        assert_eq!(key_bytes(16), 64 + 16);
        assert_eq!(key_bytes(30), 64 + 32);
        assert_eq!(
            EXPIRE_ENTRY_BYTES as usize,
            class(SHORT_KEY + std::mem::size_of::<i64>() + 8)
        );
    }
}
