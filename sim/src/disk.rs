//! A simulated disk for one node, performing every [`DiskOp`] of the engine's
//! disk boundary with the failure modes real storage has.
//!
//! # Model
//!
//! Each file is an inode with two images: `cache` (the page cache: what
//! reads see) and `durable` (what the platter holds), plus the set of dirty
//! 512-byte sectors. The namespace is likewise two maps from path to inode:
//! the live one and the durable one.
//!
//! - `Write`/`Append`/`Truncate` change the cache and dirty sectors.
//! - `Fsync` copies the dirty sectors (and the length) to `durable`.
//! - New names, renames and unlinks change the live namespace only;
//!   `FsyncDir` makes a directory's entries durable.
//! - [`SimDisk::crash`] throws the cache away: files revert to `durable`,
//!   names to the durable namespace. With `torn_writes`, the kernel is
//!   assumed to have flushed an arbitrary subset of dirty sectors (each
//!   sector is atomic, the write is not) and, per directory, possibly the
//!   live namespace: a crash "may lose anything else", so it may also keep
//!   some of it. Or, as ext4's ordered mode does, a grown file keeps a
//!   clean prefix of its new data (a torn tail, cut anywhere).
//!
//! # Faults (each switchable, drawn from the world's RNG)
//!
//! - `fsync_eio_p`: fsync fails with EIO after writing back an arbitrary
//!   subset of dirty sectors, and the rest are marked clean anyway (Linux's
//!   behaviour, "fsyncgate"): a later fsync succeeds, but the data is gone
//!   on the next crash. Only a node that treats EIO as fatal is safe.
//! - `space_bytes`: ENOSPC once the files' cached sizes exceed the budget;
//!   an append that partly fits is a short write.
//! - `short_write_p`: an append writes only a prefix (as write(2) may).
//! - `corrupt_on_crash_p`: per file and crash, one bit of the durable image
//!   flips (bit rot, a bad sector): the formats' checksums must notice.
//! - `read_eio_p`: a read fails with EIO (a latent sector error).
//! - `misdirect_p`: per sector written back by fsync, the sector lands at a
//!   wrong offset of the file and its intended place keeps stale data.
//! - Latency: every operation takes `latency_us_min..=latency_us_max`
//!   (fsync 10x); with `slow_p` it also takes up to `slow_us_max` more.

use crate::rng::SimRng;
use bytes::Bytes;
use cinnabar_engine::disk::{parent, DiskError, DiskOp, DiskReply, DiskResult};
use std::collections::{BTreeMap, BTreeSet};

pub const SECTOR: usize = 512;

/// Which faults are on, and how often.
#[derive(Debug, Clone, Default)]
pub struct DiskFaults {
    pub torn_writes: bool,
    pub fsync_eio_p: f64,
    pub space_bytes: Option<u64>,
    pub short_write_p: f64,
    pub corrupt_on_crash_p: f64,
    pub read_eio_p: f64,
    pub misdirect_p: f64,
    pub latency_us_min: u64,
    pub latency_us_max: u64,
    pub slow_p: f64,
    pub slow_us_max: u64,
}

impl DiskFaults {
    /// A well-behaved disk with realistic latency.
    pub fn none() -> DiskFaults {
        DiskFaults {
            latency_us_min: 20,
            latency_us_max: 200,
            ..DiskFaults::default()
        }
    }
}

type Inode = u64;

#[derive(Debug, Clone, Default)]
struct File {
    cache: Vec<u8>,
    durable: Vec<u8>,
    dirty: BTreeSet<usize>,
    /// The length differs from the durable image's.
    len_dirty: bool,
}

impl File {
    fn mark_dirty(&mut self, from: usize, to: usize) {
        if to > from {
            for s in from / SECTOR..=(to - 1) / SECTOR {
                self.dirty.insert(s);
            }
        }
    }

    /// Writes sector `s` of the cache to sector `at` of the durable image.
    fn write_back(&mut self, s: usize, at: usize) {
        let src_lo = s * SECTOR;
        let src_hi = (src_lo + SECTOR).min(self.cache.len());
        if src_lo >= src_hi {
            return;
        }
        let dst_lo = at * SECTOR;
        let n = src_hi - src_lo;
        if self.durable.len() < dst_lo + n {
            self.durable.resize(dst_lo + n, 0);
        }
        self.durable[dst_lo..dst_lo + n].copy_from_slice(&self.cache[src_lo..src_hi]);
    }
}

/// Counts of what the disk did to the node, for reports and the checkers.
#[derive(Debug, Clone, Default)]
pub struct DiskStats {
    pub ops: u64,
    pub fsync_eio: u64,
    pub enospc: u64,
    pub short_writes: u64,
    pub corruptions: u64,
    pub read_eio: u64,
    pub misdirected: u64,
    pub torn_sectors: u64,
    /// Torn crashes that left a file with a hole (not a clean prefix).
    pub torn_holes: u64,
    pub crashes: u64,
    /// Bit flips and misdirected sectors that landed in files without a
    /// checksum (the AOF's incr files and manifest, as in Redis): the node
    /// cannot notice them, so what it loads next is not checked.
    pub undetectable: u64,
}

/// Files whose format has a checksum that covers every byte (RDB files,
/// including the AOF's base file, with `rdbchecksum yes`).
pub fn checksummed(path: &str) -> bool {
    path.ends_with(".rdb")
}

#[derive(Clone)]
pub struct SimDisk {
    pub faults: DiskFaults,
    files: BTreeMap<Inode, File>,
    names: BTreeMap<String, Inode>,
    durable_names: BTreeMap<String, Inode>,
    dirs: BTreeSet<String>,
    next_inode: Inode,
    pub stats: DiskStats,
}

impl SimDisk {
    pub fn new(faults: DiskFaults) -> SimDisk {
        SimDisk {
            faults,
            files: BTreeMap::new(),
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            dirs: [".".to_string(), "/".to_string()].into_iter().collect(),
            next_inode: 1,
            stats: DiskStats::default(),
        }
    }

    /// How long `op` takes, in microseconds.
    pub fn latency_us(&mut self, op: &DiskOp, rng: &mut SimRng) -> u64 {
        let f = &self.faults;
        let mut us = rng.range(f.latency_us_min, f.latency_us_max.max(f.latency_us_min));
        if matches!(op, DiskOp::Fsync { .. } | DiskOp::FsyncDir { .. }) {
            us *= 10;
        }
        if rng.chance(f.slow_p) {
            us += rng.range(0, f.slow_us_max);
        }
        us
    }

    /// The cached contents of a file, as the live system sees it.
    pub fn read_live(&self, path: &str) -> Option<&[u8]> {
        Some(&self.files.get(self.names.get(path)?)?.cache)
    }

    /// Names in the live namespace.
    pub fn live_names(&self) -> Vec<String> {
        self.names.keys().cloned().collect()
    }

    fn used_bytes(&self) -> u64 {
        self.files.values().map(|f| f.cache.len() as u64).sum()
    }

    fn room(&self) -> u64 {
        match self.faults.space_bytes {
            None => u64::MAX,
            Some(budget) => budget.saturating_sub(self.used_bytes()),
        }
    }

    fn check_dir(&self, path: &str) -> Result<(), DiskError> {
        if self.dirs.contains(parent(path)) {
            Ok(())
        } else {
            Err(DiskError::NotFound)
        }
    }

    /// The inode at `path`, created (empty, name not yet durable) if needed.
    fn open_create(&mut self, path: &str) -> Result<Inode, DiskError> {
        if let Some(&ino) = self.names.get(path) {
            return Ok(ino);
        }
        self.check_dir(path)?;
        let ino = self.next_inode;
        self.next_inode += 1;
        self.files.insert(ino, File::default());
        self.names.insert(path.to_string(), ino);
        Ok(ino)
    }

    /// Performs one operation now.
    pub fn perform(&mut self, op: &DiskOp, rng: &mut SimRng) -> DiskResult {
        self.stats.ops += 1;
        match op {
            DiskOp::Read { path } => {
                let ino = *self.names.get(path).ok_or(DiskError::NotFound)?;
                if rng.chance(self.faults.read_eio_p) {
                    self.stats.read_eio += 1;
                    return Err(DiskError::Io);
                }
                Ok(DiskReply::Data(Bytes::copy_from_slice(
                    &self.files[&ino].cache,
                )))
            }
            DiskOp::Write { path, data } => {
                let ino = self.open_create(path)?;
                let f = self.files.get_mut(&ino).expect("inode of a name");
                let old_len = f.cache.len();
                f.cache.clear();
                f.len_dirty = true;
                // The truncation frees space before the write needs it.
                if (data.len() as u64) > self.room() {
                    self.stats.enospc += 1;
                    let f = self.files.get_mut(&ino).expect("inode of a name");
                    f.mark_dirty(0, old_len);
                    return Err(DiskError::NoSpace);
                }
                let f = self.files.get_mut(&ino).expect("inode of a name");
                f.cache.extend_from_slice(data);
                f.mark_dirty(0, old_len.max(data.len()));
                Ok(DiskReply::Written(data.len() as u64))
            }
            DiskOp::Append { path, data } => {
                let ino = self.open_create(path)?;
                let mut n = data.len();
                let room = self.room();
                if (n as u64) > room {
                    self.stats.enospc += 1;
                    if room == 0 {
                        return Err(DiskError::NoSpace);
                    }
                    n = room as usize;
                    self.stats.short_writes += 1;
                } else if n > 1 && rng.chance(self.faults.short_write_p) {
                    n = rng.range(1, n as u64 - 1) as usize;
                    self.stats.short_writes += 1;
                }
                let f = self.files.get_mut(&ino).expect("inode of a name");
                let from = f.cache.len();
                f.cache.extend_from_slice(&data[..n]);
                f.mark_dirty(from, from + n);
                f.len_dirty = true;
                Ok(DiskReply::Written(n as u64))
            }
            DiskOp::Truncate { path, len } => {
                let ino = *self.names.get(path).ok_or(DiskError::NotFound)?;
                let len = *len as usize;
                let f = self.files.get_mut(&ino).expect("inode of a name");
                let old = f.cache.len();
                if len > old && (len - old) as u64 > self.room() {
                    self.stats.enospc += 1;
                    return Err(DiskError::NoSpace);
                }
                let f = self.files.get_mut(&ino).expect("inode of a name");
                f.cache.resize(len, 0);
                f.mark_dirty(len.min(old), len.max(old));
                f.len_dirty = true;
                Ok(DiskReply::Done)
            }
            DiskOp::Fsync { path } => {
                let ino = *self.names.get(path).ok_or(DiskError::NotFound)?;
                let eio = rng.chance(self.faults.fsync_eio_p);
                let misdirect_p = self.faults.misdirect_p;
                let f = self.files.get_mut(&ino).expect("inode of a name");
                let dirty: Vec<usize> = std::mem::take(&mut f.dirty).into_iter().collect();
                let sectors = f.cache.len().div_ceil(SECTOR).max(1);
                if eio {
                    // Some sectors made it, the rest are lost but marked
                    // clean: the page cache still shows them until a crash.
                    for s in dirty {
                        if rng.chance(0.5) {
                            f.write_back(s, s);
                        }
                    }
                    self.stats.fsync_eio += 1;
                    return Err(DiskError::Io);
                }
                let mut misdirected = 0;
                for s in dirty {
                    if rng.chance(misdirect_p) {
                        let at = rng.index(sectors);
                        f.write_back(s, at);
                        misdirected += 1;
                        if !checksummed(path) {
                            self.stats.undetectable += 1;
                        }
                    } else {
                        f.write_back(s, s);
                    }
                }
                f.durable.truncate(f.cache.len());
                f.durable.resize(f.cache.len(), 0);
                f.len_dirty = false;
                self.stats.misdirected += misdirected;
                Ok(DiskReply::Done)
            }
            DiskOp::Rename { from, to } => {
                let ino = *self.names.get(from).ok_or(DiskError::NotFound)?;
                self.check_dir(to)?;
                self.names.remove(from);
                self.names.insert(to.clone(), ino);
                self.collect_garbage();
                Ok(DiskReply::Done)
            }
            DiskOp::Remove { path } => {
                self.names.remove(path).ok_or(DiskError::NotFound)?;
                self.collect_garbage();
                Ok(DiskReply::Done)
            }
            DiskOp::CreateDir { path } => {
                // Directories are durable at once: the simulated data
                // directory tree is set up before the node ever runs.
                self.dirs.insert(path.trim_end_matches('/').to_string());
                Ok(DiskReply::Done)
            }
            DiskOp::FsyncDir { path } => {
                let dir = path.trim_end_matches('/');
                if !self.dirs.contains(dir) {
                    return Err(DiskError::NotFound);
                }
                self.sync_dir(dir);
                Ok(DiskReply::Done)
            }
            DiskOp::ListDir { path } => {
                let dir = path.trim_end_matches('/');
                if !self.dirs.contains(dir) {
                    return Err(DiskError::NotFound);
                }
                let names = self
                    .names
                    .keys()
                    .filter(|n| parent(n) == dir)
                    .map(|n| n.rsplit('/').next().unwrap_or(n).to_string())
                    .collect();
                Ok(DiskReply::Names(names))
            }
        }
    }

    /// Makes the live entries of `dir` durable.
    fn sync_dir(&mut self, dir: &str) {
        self.durable_names.retain(|n, _| parent(n) != dir);
        for (n, ino) in &self.names {
            if parent(n) == dir {
                self.durable_names.insert(n.clone(), *ino);
            }
        }
    }

    /// Drops inodes no name (live or durable) refers to.
    fn collect_garbage(&mut self) {
        let used: BTreeSet<Inode> = self
            .names
            .values()
            .chain(self.durable_names.values())
            .copied()
            .collect();
        self.files.retain(|ino, _| used.contains(ino));
    }

    /// Power loss / kill -9 of the machine's page cache: only what was made
    /// durable survives (plus, with torn writes, whatever the kernel happened
    /// to flush).
    pub fn crash(&mut self, rng: &mut SimRng) {
        self.stats.crashes += 1;
        let torn = self.faults.torn_writes;
        if torn {
            let dirs: Vec<String> = self.dirs.iter().cloned().collect();
            for d in dirs {
                if rng.chance(0.5) {
                    self.sync_dir(&d);
                }
            }
        }
        self.names = self.durable_names.clone();
        self.collect_garbage();
        let corrupt_p = self.faults.corrupt_on_crash_p;
        let names = &self.names;
        for (ino, f) in self.files.iter_mut() {
            let grown = f.cache.len() > f.durable.len();
            if torn && grown && rng.chance(0.4) {
                // Ordered write-back (ext4 data=ordered): the kernel wrote
                // the new data in order and the size reached the journal
                // part-way: a clean prefix of what was written, usually
                // ending inside an append (a torn tail).
                let lo = f.durable.len() as u64;
                let cut = rng.range(lo, f.cache.len() as u64) as usize;
                f.durable = f.cache[..cut].to_vec();
                self.stats.torn_sectors += 1;
            } else if torn && (!f.dirty.is_empty() || f.len_dirty) {
                if f.len_dirty && rng.chance(0.5) {
                    // The size update reached the journal: the file has its
                    // new length, with stale or zero bytes where data did
                    // not make it.
                    f.durable.resize(f.cache.len(), 0);
                }
                let dirty: Vec<usize> = f.dirty.iter().copied().collect();
                for s in dirty {
                    if s * SECTOR < f.durable.len() && rng.chance(0.5) {
                        let keep = f.durable.len();
                        f.write_back(s, s);
                        f.durable.truncate(keep);
                        self.stats.torn_sectors += 1;
                    }
                }
                // A hole: the durable image is no longer a prefix of what
                // was written (zeros or stale bytes before flushed ones).
                // A clean prefix is a torn tail, which a loader repairs.
                let m = f.durable.len().min(f.cache.len());
                if f.durable[..m] != f.cache[..m] {
                    self.stats.torn_holes += 1;
                }
            }
            if !f.durable.is_empty() && rng.chance(corrupt_p) {
                let i = rng.index(f.durable.len());
                f.durable[i] ^= 1 << rng.below(8);
                self.stats.corruptions += 1;
                let protected = names.iter().any(|(n, i)| i == ino && checksummed(n));
                if !protected {
                    self.stats.undetectable += 1;
                }
            }
            f.cache = f.durable.clone();
            f.dirty.clear();
            f.len_dirty = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op_write(path: &str, data: &[u8]) -> DiskOp {
        DiskOp::Write {
            path: path.into(),
            data: Bytes::copy_from_slice(data),
        }
    }

    fn read(d: &mut SimDisk, rng: &mut SimRng, path: &str) -> Option<Vec<u8>> {
        match d.perform(&DiskOp::Read { path: path.into() }, rng) {
            Ok(DiskReply::Data(b)) => Some(b.to_vec()),
            Err(DiskError::NotFound) => None,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsynced_data_and_names_are_lost() {
        let mut rng = SimRng::new(1);
        let mut d = SimDisk::new(DiskFaults::none());
        d.perform(&op_write("a", b"hello"), &mut rng).unwrap();
        assert_eq!(read(&mut d, &mut rng, "a").as_deref(), Some(&b"hello"[..]));
        d.crash(&mut rng);
        assert_eq!(read(&mut d, &mut rng, "a"), None);
    }

    #[test]
    fn fsync_and_fsync_dir_make_a_file_durable() {
        let mut rng = SimRng::new(1);
        let mut d = SimDisk::new(DiskFaults::none());
        d.perform(&op_write("dir/x", b"1"), &mut rng).unwrap_err();
        d.perform(&DiskOp::CreateDir { path: "dir".into() }, &mut rng)
            .unwrap();
        d.perform(&op_write("dir/tmp", b"snapshot"), &mut rng)
            .unwrap();
        d.perform(
            &DiskOp::Fsync {
                path: "dir/tmp".into(),
            },
            &mut rng,
        )
        .unwrap();
        d.perform(
            &DiskOp::Rename {
                from: "dir/tmp".into(),
                to: "dir/dump".into(),
            },
            &mut rng,
        )
        .unwrap();
        // Renamed but the directory not synced: the rename is undone and the
        // temp name was never durable either.
        d.perform(&DiskOp::FsyncDir { path: "dir".into() }, &mut rng)
            .unwrap();
        d.perform(
            &DiskOp::Append {
                path: "dir/dump".into(),
                data: Bytes::from_static(b"-more"),
            },
            &mut rng,
        )
        .unwrap();
        d.crash(&mut rng);
        assert_eq!(
            read(&mut d, &mut rng, "dir/dump").as_deref(),
            Some(&b"snapshot"[..])
        );
        assert_eq!(read(&mut d, &mut rng, "dir/tmp"), None);
    }

    #[test]
    fn fsync_eio_loses_data_even_if_a_later_fsync_succeeds() {
        let mut rng = SimRng::new(5);
        let mut d = SimDisk::new(DiskFaults::none());
        d.perform(&op_write("f", &[b'a'; 4096]), &mut rng).unwrap();
        d.perform(&DiskOp::Fsync { path: "f".into() }, &mut rng)
            .unwrap();
        d.perform(&DiskOp::FsyncDir { path: ".".into() }, &mut rng)
            .unwrap();
        d.perform(&op_write("f", &[b'b'; 4096]), &mut rng).unwrap();
        d.faults.fsync_eio_p = 1.0;
        assert_eq!(
            d.perform(&DiskOp::Fsync { path: "f".into() }, &mut rng),
            Err(DiskError::Io)
        );
        d.faults.fsync_eio_p = 0.0;
        d.perform(&DiskOp::Fsync { path: "f".into() }, &mut rng)
            .unwrap();
        d.crash(&mut rng);
        let after = read(&mut d, &mut rng, "f").unwrap();
        assert_eq!(after.len(), 4096);
        // Some sectors kept the old bytes: the successful fsync did not
        // rewrite pages the failed one had marked clean.
        assert!(after.contains(&b'a'), "all sectors written back");
    }

    #[test]
    fn enospc_and_short_appends() {
        let mut rng = SimRng::new(2);
        let mut d = SimDisk::new(DiskFaults {
            space_bytes: Some(10),
            ..DiskFaults::none()
        });
        assert_eq!(
            d.perform(
                &DiskOp::Append {
                    path: "aof".into(),
                    data: Bytes::from_static(b"0123456789abc"),
                },
                &mut rng
            ),
            Ok(DiskReply::Written(10))
        );
        assert_eq!(
            d.perform(
                &DiskOp::Append {
                    path: "aof".into(),
                    data: Bytes::from_static(b"x"),
                },
                &mut rng
            ),
            Err(DiskError::NoSpace)
        );
    }

    #[test]
    fn torn_crash_keeps_whole_sectors_only() {
        for seed in 0..50 {
            let mut rng = SimRng::new(seed);
            let mut d = SimDisk::new(DiskFaults {
                torn_writes: true,
                ..DiskFaults::none()
            });
            d.perform(&op_write("f", &[0u8; 2048]), &mut rng).unwrap();
            d.perform(&DiskOp::Fsync { path: "f".into() }, &mut rng)
                .unwrap();
            d.perform(&DiskOp::FsyncDir { path: ".".into() }, &mut rng)
                .unwrap();
            d.perform(&op_write("f", &[1u8; 2048]), &mut rng).unwrap();
            d.crash(&mut rng);
            let after = read(&mut d, &mut rng, "f").unwrap();
            assert_eq!(after.len(), 2048);
            for s in after.chunks(SECTOR) {
                assert!(s.iter().all(|&b| b == s[0]), "torn within a sector");
            }
        }
    }

    #[test]
    fn list_dir_is_sorted_names() {
        let mut rng = SimRng::new(1);
        let mut d = SimDisk::new(DiskFaults::none());
        d.perform(&DiskOp::CreateDir { path: "d".into() }, &mut rng)
            .unwrap();
        for n in ["d/b", "d/a", "c"] {
            d.perform(&op_write(n, b""), &mut rng).unwrap();
        }
        assert_eq!(
            d.perform(&DiskOp::ListDir { path: "d".into() }, &mut rng),
            Ok(DiskReply::Names(vec!["a".into(), "b".into()]))
        );
    }
}
