//! Lazy freeing: UNLINK, FLUSHALL/FLUSHDB ASYNC and the `lazyfree-lazy-*`
//! settings.
//!
//! Freeing a value of ten million elements takes as many deallocations;
//! done on the event loop it stalls every client. Redis hands such values
//! to a background thread. The engine spawns no threads, so it hands them
//! to the driver instead: the key leaves the keyspace at once (and its
//! memory leaves the estimate), and the value goes out as
//! [`Output::Free`](crate::node::Output::Free); the shim drops it on its
//! own thread, the simulator drops it on the spot. Small values (effort at
//! most [`LAZYFREE_THRESHOLD`]) are freed inline, as Redis does, since the
//! hand-off would cost more than the free.

use crate::db::{Db, Value};
use crate::node::{Garbage, Node, Output};

/// Values whose free effort is at most this are freed inline
/// (LAZYFREE_THRESHOLD).
pub const LAZYFREE_THRESHOLD: usize = 64;

/// Counters for INFO memory.
#[derive(Debug, Default, Clone)]
pub struct LazyFreeStats {
    /// Values and databases handed to the driver (`lazyfreed_objects`).
    pub freed_objects: u64,
}

/// Redis's `lazyfreeGetFreeEffort`: roughly the number of allocations
/// freeing the value takes; compact encodings are one.
pub fn effort(v: &Value) -> usize {
    match v {
        Value::List(l) => l.len() / 128 + 1,
        Value::Hash(h) if h.encoding_name() == "hashtable" => h.len(),
        Value::Set(s) if s.encoding_name() == "hashtable" => s.len(),
        Value::ZSet(z) if z.encoding_name() == "skiplist" => z.len(),
        _ => 1,
    }
}

/// Frees a value taken out of the keyspace: inline if small, else by the
/// driver.
pub fn dispose(node: &mut Node, value: Value) {
    if effort(&value) > LAZYFREE_THRESHOLD {
        node.lazyfree.freed_objects += 1;
        node.push_output(Output::Free(Garbage(Box::new(value))));
    }
}

/// Why a large value left the keyspace outside a deletion command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Its key expired (`lazyfree-lazy-expire`).
    Expire,
    /// A write replaced it (SET over a big set, RENAME onto a key...):
    /// Redis's `dbSetValue` frees the old value in the background under
    /// `lazyfree-lazy-server-del`.
    Overwrite,
}

/// Frees the large values the databases set aside during the last input
/// (`Db::deferred_free`): in the background if the setting for their cause
/// is on, else here, on the event loop, as Redis does without it.
pub fn free_deferred(node: &mut Node) {
    for d in 0..node.dbs.len() {
        if node.dbs[d].deferred_free.is_empty() {
            continue;
        }
        for (value, cause) in std::mem::take(&mut node.dbs[d].deferred_free) {
            let lazy = match cause {
                Cause::Expire => node.config.lazyfree_lazy_expire,
                Cause::Overwrite => node.config.lazyfree_lazy_server_del,
            };
            if lazy {
                dispose(node, value);
            }
        }
    }
}

/// Frees a whole database (FLUSHALL/FLUSHDB ASYNC) by the driver.
pub fn dispose_db(node: &mut Node, db: Db) {
    if db.is_empty() {
        return;
    }
    node.lazyfree.freed_objects += 1;
    node.push_output(Output::Free(Garbage(Box::new(db))));
}

/// Deletes `key` from `db`, freeing its value lazily: UNLINK, and DEL
/// under `lazyfree-lazy-user-del`. True if it existed.
pub fn delete(node: &mut Node, db: usize, key: &[u8]) -> bool {
    let d = &mut node.dbs[db];
    let Some(entry) = d.take(key) else {
        return false;
    };
    d.persist(key);
    dispose(node, entry.value);
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_and_dbs_can_go_to_another_thread() {
        fn send<T: Send + 'static>() {}
        send::<super::Value>();
        send::<super::Db>();
    }
}
