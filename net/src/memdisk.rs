//! The shim's disk executor over the engine's in-memory disk
//! ([`MemFiles`]), used where real files are out of reach: the madsim
//! scenario (madsim simulates the network and time, not files, and forbids
//! the disk thread).

use crate::server::DiskExecutor;
use cinnabar_engine::disk::{DiskOp, DiskOpId, DiskResult, MemFiles};
use std::cell::RefCell;
use std::rc::Rc;
use tokio::sync::mpsc;

/// A [`DiskExecutor`] over shared in-memory files.
pub struct MemDisk {
    pub files: Rc<RefCell<MemFiles>>,
    done: mpsc::UnboundedSender<(DiskOpId, DiskResult)>,
}

impl MemDisk {
    /// The executor and the channel its completions arrive on.
    pub fn new(
        files: Rc<RefCell<MemFiles>>,
    ) -> (MemDisk, mpsc::UnboundedReceiver<(DiskOpId, DiskResult)>) {
        let (done, rx) = mpsc::unbounded_channel();
        (MemDisk { files, done }, rx)
    }
}

impl DiskExecutor for MemDisk {
    fn submit(&self, id: DiskOpId, op: DiskOp) {
        let result = self.files.borrow_mut().perform(op);
        let _ = self.done.send((id, result));
    }
}
