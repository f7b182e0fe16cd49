//! The recovery invariant: a node's files, as it left them, load back to
//! the dataset it has. A fresh engine (the *shadow*) starts over a copy of
//! the node's disk (the page cache: what a kill -9 now would leave) and
//! must end up with the same keyspace.
//!
//! Checked right after a restart (the files the node just repaired, e.g.
//! a torn tail it truncated, must load to what it loaded) and, with an
//! AOF, whenever the node's disk queue is empty (everything it logged is in
//! the files, so the files must replay to its dataset, rewrites included).
//! This catches damage the durability checker would see only at a later
//! crash, if ever.

use crate::disk::{DiskFaults, SimDisk};
use crate::model::Model;
use crate::rng::SimRng;
use cinnabar_engine::disk::DiskOp;
use cinnabar_engine::{Config, Input, Node, Output, Time};

/// Loads a shadow engine from a copy of `disk` after performing `pending`
/// (operations the node issued that the disk has not performed yet), at
/// `now`. Its db 0 as a model, or why it did not load.
pub fn reload(
    config: &Config,
    disk: &SimDisk,
    pending: &[DiskOp],
    now: Time,
) -> Result<Model, String> {
    let mut d = disk.clone();
    d.faults = DiskFaults::none();
    // Its own RNG: the world's draws are not disturbed.
    let mut rng = SimRng::new(0x5348_4144_4f57);
    for op in pending {
        let _ = d.perform(op, &mut rng);
    }
    let mut node = Node::new(config.clone(), 0);
    node.start(now);
    while let Some(out) = node.poll_output() {
        match out {
            Output::Disk { id, op } => {
                let result = d.perform(&op, &mut rng);
                node.handle(now, Input::DiskDone { id, result });
            }
            Output::Fatal { message } => return Err(message),
            _ => {}
        }
    }
    if node.persist.loading {
        return Err("the shadow never finished loading".into());
    }
    Ok(crate::snapshot::model_of(&node, now.as_millis()))
}
