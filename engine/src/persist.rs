//! Persistence: the state machine behind SAVE, BGSAVE, the `save` points,
//! loading at start-up and shutdown saves. Every file operation goes through
//! the disk boundary ([`crate::disk`]).

use crate::disk::{DiskOp, DiskOpId, DiskResult};
use crate::node::{Node, Output};

/// Issues a disk operation.
pub fn issue(node: &mut Node, op: DiskOp) -> DiskOpId {
    let id = DiskOpId(node.next_disk_op);
    node.next_disk_op += 1;
    node.push_output(Output::Disk { id, op });
    id
}

/// A disk operation completed.
pub fn disk_done(_node: &mut Node, _id: DiskOpId, _result: DiskResult) {}

/// SIGTERM/SIGINT.
pub fn shutdown_signal(node: &mut Node) {
    node.shutdown_requested = true;
    node.push_output(Output::Shutdown);
}
