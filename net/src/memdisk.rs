//! An in-memory file system for the engine's disk operations, used where
//! real files are out of reach: the madsim scenario (madsim simulates the
//! network and time, not files, and forbids the disk thread). It has no
//! faults and no crash model; the simulator's own disk (`sim/`) has those.
//! Every operation completes at once, in issue order.

use crate::server::DiskExecutor;
use bytes::Bytes;
use cinnabar_engine::disk::{DiskError, DiskOp, DiskOpId, DiskReply, DiskResult};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use tokio::sync::mpsc;

/// Files by path; directories are implied by the paths under them, plus
/// the ones created explicitly.
#[derive(Default, Debug)]
pub struct Files {
    files: BTreeMap<String, Vec<u8>>,
    dirs: std::collections::BTreeSet<String>,
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/')
        .map_or(".", |(d, _)| if d.is_empty() { "/" } else { d })
}

impl Files {
    /// Performs one operation.
    pub fn perform(&mut self, op: DiskOp) -> DiskResult {
        match op {
            DiskOp::Read { path } => self
                .files
                .get(&path)
                .map(|d| DiskReply::Data(Bytes::copy_from_slice(d)))
                .ok_or(DiskError::NotFound),
            DiskOp::Write { path, data } => {
                let n = data.len() as u64;
                self.files.insert(path, data.to_vec());
                Ok(DiskReply::Written(n))
            }
            DiskOp::Append { path, data } => {
                self.files.entry(path).or_default().extend_from_slice(&data);
                Ok(DiskReply::Written(data.len() as u64))
            }
            DiskOp::Truncate { path, len } => {
                let f = self.files.get_mut(&path).ok_or(DiskError::NotFound)?;
                f.resize(len as usize, 0);
                Ok(DiskReply::Done)
            }
            DiskOp::Fsync { path } => match self.files.contains_key(&path) {
                true => Ok(DiskReply::Done),
                false => Err(DiskError::NotFound),
            },
            DiskOp::Rename { from, to } => {
                let data = self.files.remove(&from).ok_or(DiskError::NotFound)?;
                self.files.insert(to, data);
                Ok(DiskReply::Done)
            }
            DiskOp::Remove { path } => match self.files.remove(&path) {
                Some(_) => Ok(DiskReply::Done),
                None => Err(DiskError::NotFound),
            },
            DiskOp::CreateDir { path } => {
                self.dirs.insert(path);
                Ok(DiskReply::Done)
            }
            DiskOp::FsyncDir { .. } => Ok(DiskReply::Done),
            DiskOp::ListDir { path } => {
                let dir = path.trim_end_matches('/');
                let names: Vec<String> = self
                    .files
                    .keys()
                    .filter(|p| parent(p) == dir)
                    .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
                    .collect();
                if names.is_empty() && !self.dirs.contains(dir) {
                    return Err(DiskError::NotFound);
                }
                Ok(DiskReply::Names(names))
            }
        }
    }

    /// The contents of a file, if it exists.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }
}

/// A [`DiskExecutor`] over shared in-memory [`Files`].
pub struct MemDisk {
    pub files: Rc<RefCell<Files>>,
    done: mpsc::UnboundedSender<(DiskOpId, DiskResult)>,
}

impl MemDisk {
    /// The executor and the channel its completions arrive on.
    pub fn new(
        files: Rc<RefCell<Files>>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_behave_like_a_directory_of_files() {
        let mut f = Files::default();
        let data = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert_eq!(
            f.perform(DiskOp::Read { path: "d/a".into() }),
            Err(DiskError::NotFound)
        );
        f.perform(DiskOp::CreateDir { path: "d".into() }).unwrap();
        assert_eq!(
            f.perform(DiskOp::ListDir { path: "d".into() }),
            Ok(DiskReply::Names(vec![]))
        );
        f.perform(DiskOp::Append {
            path: "d/a".into(),
            data: data("ab"),
        })
        .unwrap();
        f.perform(DiskOp::Append {
            path: "d/a".into(),
            data: data("cd"),
        })
        .unwrap();
        f.perform(DiskOp::Truncate {
            path: "d/a".into(),
            len: 3,
        })
        .unwrap();
        assert_eq!(f.get("d/a"), Some(&b"abc"[..]));
        f.perform(DiskOp::Write {
            path: "d/b.tmp".into(),
            data: data("x"),
        })
        .unwrap();
        f.perform(DiskOp::Rename {
            from: "d/b.tmp".into(),
            to: "d/b".into(),
        })
        .unwrap();
        assert_eq!(
            f.perform(DiskOp::ListDir { path: "d".into() }),
            Ok(DiskReply::Names(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            f.perform(DiskOp::Remove {
                path: "d/b.tmp".into()
            }),
            Err(DiskError::NotFound)
        );
    }
}
