//! The disk boundary: file operations the node asks for ([`DiskOp`], via
//! [`Output::Disk`](crate::Output::Disk)) and their results
//! ([`DiskResult`], via [`Input::DiskDone`](crate::Input::DiskDone)).
//!
//! The node never touches a file. The real server performs these operations
//! on a background thread (as Redis's bio threads do fsync); the simulator
//! performs them on a simulated disk that can lose unsynced data on a crash,
//! tear writes, fail with EIO or ENOSPC and flip bits. Everything the node
//! promises about durability is therefore something the simulator can break.
//!
//! # Contract
//!
//! - Paths are complete (the node joins `dir` with file names itself), UTF-8,
//!   `/`-separated.
//! - The driver performs operations **in the order issued** and reports
//!   completions **in that order**, one `DiskDone` per `Disk` output. This
//!   keeps the node's persistence logic a simple queue, like Redis's single
//!   bio thread per job type.
//! - A write is not durable until a later `Fsync` of the same path has
//!   completed with `Ok`; a rename or a new file is not durable until
//!   `FsyncDir` of its directory completed. A crash may lose anything else
//!   (the simulator does).

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

/// Names an issued operation; completions carry it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DiskOpId(pub u64);

/// A file operation for the driver to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskOp {
    /// Reads a whole file: [`DiskReply::Data`].
    Read { path: String },
    /// Creates or truncates `path` and writes `data`: [`DiskReply::Written`].
    Write { path: String, data: Bytes },
    /// Appends to `path`, creating it if needed: [`DiskReply::Written`]
    /// (possibly fewer bytes than given: a short write).
    Append { path: String, data: Bytes },
    /// Cuts `path` to `len` bytes (repairing a torn AOF tail).
    Truncate { path: String, len: u64 },
    /// fsync(2) of a file.
    Fsync { path: String },
    /// rename(2), replacing `to` atomically.
    Rename { from: String, to: String },
    /// unlink(2). A missing file is [`DiskError::NotFound`].
    Remove { path: String },
    /// mkdir(2); an existing directory is not an error.
    CreateDir { path: String },
    /// fsync(2) of a directory, making renames and new names durable.
    FsyncDir { path: String },
    /// The names in a directory: [`DiskReply::Names`], sorted.
    ListDir { path: String },
}

impl DiskOp {
    /// The path the operation is about (the source, for a rename).
    pub fn path(&self) -> &str {
        match self {
            DiskOp::Read { path }
            | DiskOp::Write { path, .. }
            | DiskOp::Append { path, .. }
            | DiskOp::Truncate { path, .. }
            | DiskOp::Fsync { path }
            | DiskOp::Remove { path }
            | DiskOp::CreateDir { path }
            | DiskOp::FsyncDir { path }
            | DiskOp::ListDir { path } => path,
            DiskOp::Rename { from, .. } => from,
        }
    }
}

/// A successful operation's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskReply {
    Done,
    Data(Bytes),
    Written(u64),
    Names(Vec<String>),
}

/// Why an operation failed. The messages are strerror's, which Redis logs
/// and puts in error replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskError {
    /// ENOENT.
    NotFound,
    /// EIO: the device failed (or, for fsync, data may be lost).
    Io,
    /// ENOSPC.
    NoSpace,
    /// Anything else, with the OS's message.
    Other(String),
}

impl std::fmt::Display for DiskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiskError::NotFound => f.write_str("No such file or directory"),
            DiskError::Io => f.write_str("Input/output error"),
            DiskError::NoSpace => f.write_str("No space left on device"),
            DiskError::Other(m) => f.write_str(m),
        }
    }
}

pub type DiskResult = Result<DiskReply, DiskError>;

/// `dir` joined with a file name, as Redis's chdir(dir) + relative name
/// would resolve it.
pub fn join(dir: &str, name: &str) -> String {
    if name.starts_with('/') || dir.is_empty() || dir == "." {
        name.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The directory part of a path ("." when there is none), for FsyncDir.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => ".",
    }
}

/// An ideal disk in memory: every operation completes at once, in issue
/// order, and nothing is ever lost (fsync is a no-op). Engine tests and the
/// shim's madsim scenario (madsim simulates the network and time, not
/// files) run on it; the simulator's disk (`sim/`) is the one with faults
/// and a crash model.
///
/// It dereferences to its map of file contents by path, so tests can read
/// and damage files directly. Directories are implied by the paths under
/// them, plus the ones created explicitly.
#[derive(Default, Debug, Clone)]
pub struct MemFiles {
    files: BTreeMap<String, Vec<u8>>,
    dirs: BTreeSet<String>,
}

impl MemFiles {
    /// Performs one operation with POSIX's results.
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
                // ftruncate(2) past the end extends with zeros.
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
}

impl From<BTreeMap<String, Vec<u8>>> for MemFiles {
    fn from(files: BTreeMap<String, Vec<u8>>) -> MemFiles {
        MemFiles {
            files,
            dirs: BTreeSet::new(),
        }
    }
}

impl std::ops::Deref for MemFiles {
    type Target = BTreeMap<String, Vec<u8>>;
    fn deref(&self) -> &Self::Target {
        &self.files
    }
}

impl std::ops::DerefMut for MemFiles {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_files_behave_like_a_directory_of_files() {
        let mut f = MemFiles::default();
        let data = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert_eq!(
            f.perform(DiskOp::Read { path: "d/a".into() }),
            Err(DiskError::NotFound)
        );
        assert_eq!(
            f.perform(DiskOp::ListDir { path: "d".into() }),
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
        assert_eq!(f.get("d/a").map(Vec::as_slice), Some(&b"abc"[..]));
        f.perform(DiskOp::Truncate {
            path: "d/a".into(),
            len: 5,
        })
        .unwrap();
        assert_eq!(f.get("d/a").map(Vec::as_slice), Some(&b"abc\0\0"[..]));
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
        assert_eq!(
            f.perform(DiskOp::Fsync {
                path: "d/b.tmp".into()
            }),
            Err(DiskError::NotFound)
        );
    }
}
