//! Reads a live engine's keyspace (db 0) into the reference model's form, so
//! the simulator can learn what a restarted node loaded and compare it with
//! what the history allows.

use crate::model::{MEntry, MVal, Model};
use cinnabar_engine::db::Value;
use cinnabar_engine::Node;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The node's db 0 as a model. Keys whose TTL passed are left out (a read
/// would not see them).
pub fn model_of(node: &Node, now_ms: i64) -> Model {
    let mut m = Model::default();
    let Some(db) = node.dbs.first() else {
        return m;
    };
    for (key, entry) in db.keys.iter() {
        let expire_ms = db.expire_of(key);
        if expire_ms.is_some_and(|at| m.is_expired(at, now_ms)) {
            continue;
        }
        let value = match &entry.value {
            Value::Str(s) => MVal::Str(s.to_vec()),
            Value::List(l) => MVal::List(l.iter().map(|v| v.to_vec()).collect::<VecDeque<_>>()),
            Value::Hash(h) => MVal::Hash(
                h.iter()
                    .map(|(f, v)| (f.to_vec(), v.to_vec()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            Value::Set(s) => MVal::Set(
                s.iter()
                    .map(|m| match m {
                        cinnabar_engine::commands::sets::Member::Int(n) => {
                            n.to_string().into_bytes()
                        }
                        cinnabar_engine::commands::sets::Member::Bytes(b) => b.to_vec(),
                    })
                    .collect::<BTreeSet<_>>(),
            ),
            Value::ZSet(z) => MVal::ZSet(z.iter().map(|(s, m)| (m.to_vec(), s)).collect()),
            // The simulated workload has no stream commands, so the model
            // has no streams to compare with.
            Value::Stream(_) => continue,
        };
        m.keys.insert(key.to_vec(), MEntry { value, expire_ms });
    }
    m
}

/// Number of keys in dbs other than 0 (the workload only uses db 0, so
/// anything there came from nowhere).
pub fn keys_outside_db0(node: &Node) -> usize {
    node.dbs.iter().skip(1).map(|d| d.len()).sum()
}
