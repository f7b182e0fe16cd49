//! Performs the engine's disk operations with real files.
//!
//! One background thread runs them in the order issued (the engine's
//! contract, see `cinnabar_engine::disk`), so a slow fsync never stalls the
//! event loop, as Redis's bio thread keeps fsync off its main thread.
//! Completions come back over a channel and are fed to the node in order.

use bytes::Bytes;
use cinnabar_engine::disk::{DiskError, DiskOp, DiskOpId, DiskReply, DiskResult};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use tokio::sync::mpsc;

/// The sending half: hand operations to the worker.
pub struct DiskWorker {
    tx: std::sync::mpsc::Sender<(DiskOpId, DiskOp)>,
}

impl DiskWorker {
    /// Starts the worker; completions arrive on the returned receiver.
    pub fn start() -> std::io::Result<(DiskWorker, mpsc::UnboundedReceiver<(DiskOpId, DiskResult)>)>
    {
        let (tx, rx) = std::sync::mpsc::channel::<(DiskOpId, DiskOp)>();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("cinnabar-disk".into())
            .spawn(move || {
                let mut files = Files::default();
                while let Ok((id, op)) = rx.recv() {
                    let result = files.perform(op);
                    if done_tx.send((id, result)).is_err() {
                        break;
                    }
                }
            })?;
        Ok((DiskWorker { tx }, done_rx))
    }

    pub fn submit(&self, id: DiskOpId, op: DiskOp) {
        if self.tx.send((id, op)).is_err() {
            tracing::error!("disk worker is gone; operation {id:?} dropped");
        }
    }
}

/// Performs operations on the calling thread, for start-up: the dataset is
/// loaded before the first client is served, as Redis loads before its
/// event loop runs.
#[derive(Default)]
pub struct Blocking(Files);

impl Blocking {
    pub fn perform(&mut self, op: DiskOp) -> DiskResult {
        self.0.perform(op)
    }
}

/// Open append handles, kept so an AOF append is one write(2).
#[derive(Default)]
struct Files {
    append: HashMap<String, File>,
}

fn map_err(e: std::io::Error) -> DiskError {
    match (e.kind(), e.raw_os_error()) {
        (ErrorKind::NotFound, _) => DiskError::NotFound,
        (_, Some(5)) => DiskError::Io,
        (_, Some(28)) => DiskError::NoSpace,
        _ => DiskError::Other(e.to_string()),
    }
}

impl Files {
    fn perform(&mut self, op: DiskOp) -> DiskResult {
        match op {
            DiskOp::Read { path } => {
                // Sized from the file's length up front (std::fs::read):
                // growing a Vec to a 40 MB RDB copies it several times.
                let v = std::fs::read(&path).map_err(map_err)?;
                Ok(DiskReply::Data(Bytes::from(v)))
            }
            DiskOp::Write { path, data } => {
                self.append.remove(&path);
                let mut f = File::create(&path).map_err(map_err)?;
                f.write_all(&data).map_err(map_err)?;
                Ok(DiskReply::Written(data.len() as u64))
            }
            DiskOp::Append { path, data } => {
                if !self.append.contains_key(&path) {
                    let f = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(map_err)?;
                    self.append.insert(path.clone(), f);
                }
                let f = self
                    .append
                    .get_mut(&path)
                    .ok_or_else(|| DiskError::Other("append handle lost".into()))?;
                f.write_all(&data).map_err(map_err)?;
                Ok(DiskReply::Written(data.len() as u64))
            }
            DiskOp::Truncate { path, len } => {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(map_err)?;
                f.set_len(len).map_err(map_err)?;
                Ok(DiskReply::Done)
            }
            DiskOp::Fsync { path } => {
                match self.append.get(&path) {
                    Some(f) => f.sync_data().map_err(map_err)?,
                    None => File::open(&path)
                        .and_then(|f| f.sync_all())
                        .map_err(map_err)?,
                }
                Ok(DiskReply::Done)
            }
            DiskOp::Rename { from, to } => {
                self.append.remove(&from);
                self.append.remove(&to);
                std::fs::rename(&from, &to).map_err(map_err)?;
                Ok(DiskReply::Done)
            }
            DiskOp::Remove { path } => {
                self.append.remove(&path);
                std::fs::remove_file(&path).map_err(map_err)?;
                Ok(DiskReply::Done)
            }
            DiskOp::CreateDir { path } => match std::fs::create_dir(&path) {
                Ok(()) => Ok(DiskReply::Done),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(DiskReply::Done),
                Err(e) => Err(map_err(e)),
            },
            DiskOp::FsyncDir { path } => {
                File::open(&path)
                    .and_then(|f| f.sync_all())
                    .map_err(map_err)?;
                Ok(DiskReply::Done)
            }
            DiskOp::ListDir { path } => {
                let mut names = Vec::new();
                for e in std::fs::read_dir(&path).map_err(map_err)? {
                    let e = e.map_err(map_err)?;
                    names.push(e.file_name().to_string_lossy().into_owned());
                }
                names.sort();
                Ok(DiskReply::Names(names))
            }
        }
    }
}
