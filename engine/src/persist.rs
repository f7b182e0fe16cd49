//! RDB persistence: SAVE, BGSAVE, the `save` points, LASTSAVE, loading at
//! start-up, saving at shutdown and DEBUG RELOAD, as a state machine over the
//! disk boundary ([`crate::disk`]).
//!
//! # Saving without fork()
//!
//! Redis forks and lets the kernel's copy-on-write keep the child's view
//! frozen. We have no child, so the snapshot is taken incrementally by the
//! node itself (the [`Snapshot`]):
//!
//! - Each `Tick` serialises a slice of the keyspace, walking each database's
//!   table with the SCAN cursor (shrinking is paused meanwhile, so the walk
//!   visits every bucket exactly once). While a snapshot runs,
//!   `poll_timeout` asks for a tick at once, so it proceeds at full speed
//!   when idle and interleaves with clients under load.
//! - Before a write command runs, [`before_write`] looks at the keys it may
//!   touch. A key the walk has not reached yet is serialised *now*, with its
//!   old value, and remembered so the walk skips it; a key that does not
//!   exist yet is remembered too, so a key created after the snapshot began
//!   is never saved. This is per-key copy-on-write: the file is exactly the
//!   dataset at the moment BGSAVE started.
//! - Commands that touch keys they do not name (FLUSHALL, SWAPDB, MOVE...)
//!   first finish the snapshot synchronously; they are rare.
//!
//! Then, as Redis's `rdbSave`: write to a temp file, fsync it, rename it over
//! `dbfilename`, fsync the directory, and only then count the save as done.

use crate::command::{flags, Command};
use crate::disk::{self, DiskError, DiskOp, DiskOpId, DiskReply, DiskResult};
use crate::node::{ConnId, Node, Output, Time};
use crate::rdb::{self, AuxValue, LoadOptions, Loaded, RdbWriter};
use bytes::Bytes;
use std::collections::{BTreeSet, VecDeque};

/// Serialised bytes are handed to the disk in chunks of about this size.
const WRITE_CHUNK: usize = 1 << 20;
/// Keys serialised per tick by a background snapshot.
const KEYS_PER_STEP: usize = 2000;
/// After a failed background save, automatic saves wait this long
/// (CONFIG_BGSAVE_RETRY_DELAY).
const BGSAVE_RETRY_DELAY_S: u64 = 5;

/// The persistence state of a node (INFO persistence reads it).
#[derive(Default)]
pub struct Persistence {
    /// Loading the dataset at start-up: commands get -LOADING.
    pub loading: bool,
    /// LASTSAVE: unix seconds of the last successful save (start time
    /// before any).
    pub lastsave: u64,
    pub last_bgsave_ok: bool,
    pub last_bgsave_time_sec: Option<u64>,
    pub rdb_saves: u64,
    pub last_load_keys_loaded: u64,
    pub last_load_keys_expired: u64,
    /// BGSAVE SCHEDULE arrived while a save was running.
    pub bgsave_scheduled: bool,
    last_bgsave_try: u64,
    job: Option<SaveJob>,
    next_job: u64,
    /// Issued disk operations and what their completion means, in order.
    pending: VecDeque<(DiskOpId, Purpose)>,
}

/// Installing a written temp file: fsync it, rename it over the target,
/// fsync the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommitStep {
    Fsync,
    Rename,
    FsyncDir,
}

/// What a disk operation's completion means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Purpose {
    LoadRdb,
    /// A chunk of save job `job`'s temp file, `len` bytes: a short write
    /// fails the save like an error.
    SaveWrite {
        job: u64,
        len: u64,
    },
    /// The steps that install a save job's temp file once every chunk is
    /// written: each is issued only after the one before succeeded, so a
    /// failed or short write never has its file renamed into place.
    SaveCommit {
        job: u64,
        step: CommitStep,
    },
    /// Best-effort cleanup (removing a failed save's temp file).
    Cleanup,
    /// A step whose failure shows up later (e.g. in the fsync after it).
    Ignore,
    /// AOF: appending these bytes to the current incr file.
    AofWrite {
        data: Bytes,
        /// The stream offset this append ends at.
        end: u64,
    },
    /// AOF: fsync covering the stream up to this offset.
    AofFsync {
        upto: u64,
    },
    /// AOF start-up: listings of `dir` (`aof_dir` false) and of the AOF
    /// directory, to find an old-style AOF to upgrade.
    AofStartList {
        aof_dir: bool,
    },
    /// AOF start-up: an old-style AOF moved into the AOF directory.
    AofUpgradeMoved,
    /// AOF start-up: the manifest, then each file it names.
    AofManifest,
    /// Installing a new AOF manifest, one checked step at a time: the temp
    /// file written, fsynced, renamed over the manifest, the directory
    /// fsynced.
    AofManifestWrite,
    AofManifestSynced,
    AofManifestRenamed,
    AofManifestInstalled,
    AofFile {
        index: usize,
    },
    /// A step of ACL SAVE or ACL LOAD.
    Acl(crate::commands::acl::AclDiskStep),
    /// A step of CONFIG REWRITE.
    ConfigRewrite(crate::config_rewrite::Step),
    /// Everything before it is on disk: stop now.
    ShutdownAfter,
}

/// Who waits for a save and what happens when it ends.
#[derive(Debug)]
enum SaveKind {
    /// BGSAVE or a save point: nobody waits.
    Background,
    /// SAVE: the clients get +OK (or -ERR) when the file is durable.
    Foreground { waiters: Vec<ConnId> },
    /// SHUTDOWN or a signal: stop when the file is durable. `client` gets
    /// the error if the save fails (unless `force`).
    Shutdown { client: Option<ConnId>, force: bool },
    /// DEBUG RELOAD: the dataset was reloaded from the saved bytes; the
    /// client gets +OK when the file is durable.
    Reload { client: ConnId },
    /// BGREWRITEAOF: the snapshot is the AOF's next base file.
    AofRewrite,
}

struct SaveJob {
    id: u64,
    kind: SaveKind,
    tmp: String,
    target: String,
    snap: Option<Snapshot>,
    /// The first chunk creates the temp file; later ones append.
    wrote_any: bool,
    /// Chunks issued and not yet completed.
    writes_in_flight: u32,
    /// The serialisation is complete: install the file once the chunks in
    /// flight are written.
    commit_when_written: bool,
    bytes: u64,
    failed: Option<String>,
    dirty_at_start: u64,
    started: Time,
}

/// A point-in-time serialisation in progress (see the module docs).
pub struct Snapshot {
    w: RdbWriter,
    /// The database being walked, and the walk's next cursor.
    db: usize,
    cursor: u64,
    /// Whether `db`'s SELECTDB has been written.
    db_open: bool,
    /// Per database: keys written early (copy-on-write) or born after the
    /// snapshot began. The walk skips them.
    handled: Vec<BTreeSet<Box<[u8]>>>,
    /// Per database not reached yet: copy-on-write records to put after its
    /// SELECTDB.
    early: Vec<Vec<u8>>,
    /// Keys and volatile keys per db when the snapshot began (RESIZEDB).
    sizes: Vec<(u64, u64)>,
    compress: bool,
    /// Full chunks the walk set aside, in file order, for the caller to
    /// hand to the disk (a whole-dataset step never holds one huge buffer).
    chunks: Vec<Vec<u8>>,
    pub keys_done: u64,
    pub keys_total: u64,
    /// A rewrite with `aof-use-rdb-preamble no`: the whole base as AOF
    /// commands, serialised when the job began (not over ticks, unlike
    /// the RDB form), written instead of the RDB image.
    aof_body: Option<Vec<u8>>,
}

impl Persistence {
    pub fn new(now: Time) -> Persistence {
        Persistence {
            lastsave: now.as_secs(),
            last_bgsave_ok: true,
            next_job: 1,
            ..Persistence::default()
        }
    }

    /// A background save is running (rdb_bgsave_in_progress).
    pub fn bgsave_in_progress(&self) -> bool {
        self.job
            .as_ref()
            .is_some_and(|j| !matches!(j.kind, SaveKind::AofRewrite))
    }

    /// A snapshot (BGSAVE or AOF rewrite) is running.
    pub fn busy(&self) -> bool {
        self.job.is_some()
    }

    /// Seconds the running save has taken so far.
    pub fn current_save_secs(&self, now: Time) -> Option<u64> {
        self.job
            .as_ref()
            .map(|j| now.as_secs().saturating_sub(j.started.as_secs()))
    }

    /// (keys processed, keys total) of a running snapshot.
    pub fn save_progress(&self) -> (u64, u64) {
        match self.job.as_ref().and_then(|j| j.snap.as_ref()) {
            Some(s) => (s.keys_done, s.keys_total),
            None => (0, 0),
        }
    }

    /// The node wants a tick at once: a snapshot is being serialised.
    pub fn wants_tick(&self) -> bool {
        self.job.as_ref().is_some_and(|j| j.snap.is_some())
    }
}

pub(crate) fn issue(node: &mut Node, op: DiskOp, purpose: Purpose) {
    let id = DiskOpId(node.next_disk_op);
    node.next_disk_op += 1;
    node.persist.pending.push_back((id, purpose));
    node.push_output(Output::Disk { id, op });
}

fn rdb_path(node: &Node) -> String {
    disk::join(&node.config.dir, &node.config.dbfilename)
}

/// Start-up: load the AOF when `appendonly` is on, else `dir/dbfilename`
/// if it exists. Until then, commands get -LOADING.
pub fn start(node: &mut Node) {
    node.persist = Persistence::new(node.now);
    node.persist.loading = true;
    if node.config.appendonly {
        return crate::aof::start(node);
    }
    let path = rdb_path(node);
    issue(node, DiskOp::Read { path }, Purpose::LoadRdb);
}

/// A disk operation completed.
pub fn disk_done(node: &mut Node, id: DiskOpId, result: DiskResult) {
    let Some((expected, purpose)) = node.persist.pending.pop_front() else {
        tracing::error!(?id, "disk completion for nothing issued");
        return;
    };
    // The driver's contract: completions in issue order.
    assert_eq!(expected, id, "disk completions must arrive in issue order");
    match purpose {
        Purpose::LoadRdb => load_done(node, result),
        Purpose::SaveWrite { job, len } => save_write_done(node, job, len, result),
        Purpose::SaveCommit { job, step } => save_commit_done(node, job, step, result),
        Purpose::Cleanup | Purpose::Ignore => {
            if let Err(e) = result {
                tracing::debug!("disk operation failed: {e}");
            }
        }
        p @ (Purpose::AofWrite { .. } | Purpose::AofFsync { .. }) => {
            crate::aof::done(node, p, result)
        }
        Purpose::AofStartList { aof_dir } => crate::aof::start_listed(node, aof_dir, result),
        Purpose::AofUpgradeMoved => crate::aof::upgrade_moved(node, result),
        p @ (Purpose::AofManifest | Purpose::AofFile { .. }) => {
            crate::aof::load_step(node, p, result)
        }
        p @ (Purpose::AofManifestWrite
        | Purpose::AofManifestSynced
        | Purpose::AofManifestRenamed
        | Purpose::AofManifestInstalled) => crate::aof::manifest_step(node, p, result),
        Purpose::Acl(step) => crate::commands::acl::disk_done(node, step, result),
        Purpose::ConfigRewrite(step) => crate::config_rewrite::disk_done(node, step, result),
        Purpose::ShutdownAfter => {
            node.shutdown_requested = true;
            node.push_output(Output::Shutdown);
        }
    }
}

/// Loading is over: commands are served.
pub(crate) fn loading_finished(node: &mut Node) {
    node.persist.loading = false;
    let log = node.aof.enabled;
    for db in &mut node.dbs {
        db.log_expired = log;
    }
}

pub(crate) fn fatal(node: &mut Node, message: String) {
    tracing::error!("{message}");
    node.shutdown_requested = true;
    node.halted = true;
    node.push_output(Output::Fatal { message });
}

fn load_done(node: &mut Node, result: DiskResult) {
    match result {
        Ok(DiskReply::Data(data)) => {
            if let Err(e) = load_rdb_bytes(node, &data) {
                let path = rdb_path(node);
                return fatal(
                    node,
                    format!("Fatal error loading the DB ({path}): {e}. Exiting."),
                );
            }
            tracing::info!(
                keys = node.persist.last_load_keys_loaded,
                expired = node.persist.last_load_keys_expired,
                "DB loaded from disk"
            );
        }
        Ok(_) | Err(DiskError::NotFound) => {}
        Err(e) => {
            let path = rdb_path(node);
            return fatal(
                node,
                format!("Fatal error loading the DB ({path}): {e}. Exiting."),
            );
        }
    }
    loading_finished(node);
}

/// Replaces nothing: adds the keys and functions of an RDB image to the
/// (empty) dataset. Expired keys are skipped, as a master does (not in an
/// AOF's base file). Returns the bytes the image took (an old-style AOF
/// has commands after it).
pub fn load_rdb_bytes(node: &mut Node, data: &[u8]) -> Result<usize, String> {
    let now_ms = node.now.as_millis();
    let aof_base = node.aof.replaying;
    let lru_now = node.now.as_secs();
    let lfu = node.policy().is_lfu();
    let databases = node.dbs.len();
    let (mut loaded, mut expired) = (0u64, 0u64);
    let mut functions: Vec<Vec<u8>> = Vec::new();
    // About one key per 64 bytes of file (a mixed 1M-key file has one per
    // 39): most regrowth copies are avoided, with a cap on what a huge file
    // reserves before it has proved anything.
    let reserve = (data.len() / 64).min(1 << 22);
    let mut keys: Vec<(usize, Bytes, Option<i64>, u32)> = Vec::with_capacity(reserve);
    let mut values: Vec<crate::db::Value> = Vec::with_capacity(reserve);
    let used;
    {
        let opts = LoadOptions {
            config: &node.config,
            check_checksum: node.config.rdbchecksum,
            sanitize: false,
        };
        let mut sink = |item: Loaded| -> Result<(), rdb::RdbError> {
            match item {
                Loaded::Aux { .. } => {}
                Loaded::Function { code } => functions.push(code),
                Loaded::Key {
                    db,
                    key,
                    value,
                    expire_ms,
                    idle_s,
                    freq,
                } => {
                    if db >= databases {
                        return Err(rdb::RdbError(format!(
                            "FATAL: Data file was created with a Redis server configured to handle more than {databases} databases"
                        )));
                    }
                    // A master drops keys whose time has passed (Redis:
                    // `expiretime < now`: a key lives through its last
                    // millisecond), except in the AOF's base: the log after
                    // it may touch them, as they were when it was written.
                    if !aof_base && expire_ms.is_some_and(|at| at < now_ms) {
                        expired += 1;
                        return Ok(());
                    }
                    // objectSetLRUOrLFU: the saved frequency under an LFU
                    // policy, the saved idle time under any other; a key
                    // without the one that applies is as new.
                    let lru = match (lfu, freq, idle_s) {
                        (true, Some(f), _) => {
                            (crate::evict::initial_stamp(lru_now, true) & !0xff) | f as u32
                        }
                        (false, _, Some(idle)) => crate::commands::dump::lru_for_idle(
                            lru_now,
                            idle.min(i64::MAX as u64) as i64,
                        ),
                        _ => crate::evict::initial_stamp(lru_now, lfu),
                    };
                    keys.push((db, key, expire_ms, lru));
                    values.push(value);
                }
            }
            Ok(())
        };
        used =
            rdb::load_with_rng(data, &opts, &mut node.rng, &mut sink).map_err(|e| e.to_string())?;
    }
    for code in functions {
        crate::commands::scripting::restore_library(node, &code)?;
    }
    // Size each table once instead of doubling its way up.
    let mut per_db = vec![0usize; databases];
    for k in &keys {
        per_db[k.0] += 1;
    }
    for (db, n) in per_db.into_iter().enumerate() {
        let d = &mut node.dbs[db];
        d.keys.reserve(d.keys.len() + n);
    }
    // Keys are inserted in file order, which is random for our table: each
    // lookup would wait on two cache misses (the bucket, then its first
    // node). Prefetching the bucket PREFETCH_AHEAD keys early and its node
    // half as early hides them (Redis waits on them).
    const PREFETCH_AHEAD: usize = 32;
    for (i, ((db, key, expire_ms, lru), value)) in keys.iter().zip(values).enumerate() {
        if let Some((d, k, ..)) = keys.get(i + PREFETCH_AHEAD) {
            node.dbs[*d].keys.prefetch(k, false);
        }
        if let Some((d, k, ..)) = keys.get(i + PREFETCH_AHEAD / 2) {
            node.dbs[*d].keys.prefetch(k, true);
        }
        let d = &mut node.dbs[*db];
        if let Some(at) = *expire_ms {
            d.add_expire(key, at);
        }
        if !d.put(key, crate::db::Entry::new(value, *lru)) {
            return Err(format!(
                "Duplicate key '{}' found in RDB file",
                String::from_utf8_lossy(key)
            ));
        }
        loaded += 1;
    }
    node.persist.last_load_keys_loaded = loaded;
    node.persist.last_load_keys_expired = expired;
    Ok(used)
}

/// The aux fields Redis 7.0 writes at the head of an RDB file.
fn write_header(node: &Node, w: &mut RdbWriter) {
    let ctime = node.now.as_secs() as i64;
    let used = node.used_memory as i64;
    w.header(&[
        ("redis-ver", AuxValue::Str(crate::REDIS_VERSION.as_bytes())),
        ("redis-bits", AuxValue::Int(64)),
        ("ctime", AuxValue::Int(ctime)),
        ("used-mem", AuxValue::Int(used)),
        ("repl-stream-db", AuxValue::Int(0)),
        ("repl-id", AuxValue::Str(node.run_id.as_bytes())),
        ("repl-offset", AuxValue::Int(0)),
        ("aof-base", AuxValue::Int(0)),
    ]);
    for code in crate::commands::scripting::library_codes(node) {
        w.function_library(&code);
    }
}

/// `rdbSaveKeyValuePair`'s `savelru` / `savelfu`: idle seconds before
/// each key under an LRU policy, the decayed counter under an LFU one.
fn access_info(node: &Node) -> rdb::AccessInfo {
    use crate::evict::Policy;
    let now_s = node.now.as_secs();
    match node.policy() {
        Policy::AllKeysLru | Policy::VolatileLru => rdb::AccessInfo::Idle { now_s },
        Policy::AllKeysLfu | Policy::VolatileLfu => rdb::AccessInfo::Freq {
            now_s,
            decay_min: node.config.lfu_decay_time.clamp(0, u32::MAX as i64) as u32,
        },
        _ => rdb::AccessInfo::None,
    }
}

impl Snapshot {
    /// Begins a snapshot of the node's dataset as it is now.
    fn begin(node: &mut Node) -> Snapshot {
        let compress = node.config.rdbcompression;
        let mut w = RdbWriter::with_config(&node.config, compress);
        w.set_access_info(access_info(node));
        write_header(node, &mut w);
        let mut sizes = Vec::with_capacity(node.dbs.len());
        for db in &mut node.dbs {
            db.keys.set_shrink_paused(true);
            sizes.push((db.keys.len() as u64, db.expires.len() as u64));
        }
        let keys_total = sizes.iter().map(|s| s.0).sum();
        Snapshot {
            w,
            db: 0,
            cursor: 0,
            db_open: false,
            handled: vec![BTreeSet::new(); node.dbs.len()],
            early: vec![Vec::new(); node.dbs.len()],
            sizes,
            compress,
            chunks: Vec::new(),
            keys_done: 0,
            keys_total,
            aof_body: None,
        }
    }

    /// True if the walk has passed `key` in `db`.
    fn reached(&self, node: &Node, db: usize, key: &[u8]) -> bool {
        match db.cmp(&self.db) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal => {
                self.db_open && self.cursor != 0 && node.dbs[db].keys.scan_visited(key, self.cursor)
            }
        }
    }

    /// Copy-on-write: called before `key` in `db` may change.
    fn preserve(&mut self, node: &Node, db: usize, key: &[u8]) {
        if db >= self.handled.len() || self.reached(node, db, key) || self.handled[db].contains(key)
        {
            return;
        }
        self.handled[db].insert(Box::from(key));
        let d = &node.dbs[db];
        if let Some(e) = d.keys.get(key) {
            let expire = d.expire_of(key);
            self.keys_done += 1;
            if db == self.db && self.db_open {
                self.w.key_stamped(key, &e.value, expire, e.lru);
            } else {
                let mut side = RdbWriter::with_config(&node.config, self.compress);
                side.set_access_info(access_info(node));
                side.key_stamped(key, &e.value, expire, e.lru);
                self.early[db].extend_from_slice(&side.take_chunk());
            }
        }
    }

    /// Serialises up to `budget` keys; true when the whole dataset is done.
    fn step(&mut self, node: &Node, mut budget: usize) -> bool {
        while self.db < node.dbs.len() {
            let d = &node.dbs[self.db];
            if !self.db_open {
                let (keys, expires) = self.sizes[self.db];
                let early = std::mem::take(&mut self.early[self.db]);
                if keys > 0 || !early.is_empty() {
                    self.w.select_db(self.db as u32, keys, expires);
                    self.w.raw(&early);
                }
                self.db_open = true;
                self.cursor = 0;
                if d.keys.is_empty() {
                    self.next_db();
                    continue;
                }
                if budget == usize::MAX {
                    // The whole database in this call, so nothing can write
                    // in between and the walk's order need not be SCAN's:
                    // bucket order reads the table sequentially (SCAN's
                    // reversed-bit order missed the cache on every bucket,
                    // a sixth of SAVE's time).
                    let handled = &self.handled[self.db];
                    for (k, e) in d.keys.iter() {
                        if !handled.contains(k) {
                            self.w.key_stamped(k, &e.value, d.expire_of(k), e.lru);
                            self.keys_done += 1;
                            set_aside_full_chunk(&mut self.w, &mut self.chunks);
                        }
                    }
                    self.next_db();
                    continue;
                }
            }
            loop {
                let handled = &self.handled[self.db];
                let w = &mut self.w;
                let mut n = 0u64;
                self.cursor = d.keys.scan(self.cursor, |k, e| {
                    if !handled.contains(k) {
                        w.key_stamped(k, &e.value, d.expire_of(k), e.lru);
                        n += 1;
                    }
                });
                self.keys_done += n;
                set_aside_full_chunk(&mut self.w, &mut self.chunks);
                budget = budget.saturating_sub(n as usize + 1);
                if self.cursor == 0 {
                    self.next_db();
                    break;
                }
                if budget == 0 {
                    return false;
                }
            }
        }
        true
    }

    /// Every byte serialised so far (the chunks set aside, then the rest).
    fn take_all(&mut self) -> Vec<u8> {
        let mut all = self.chunks.concat();
        all.extend_from_slice(&self.w.take_chunk());
        self.chunks.clear();
        all
    }

    fn next_db(&mut self) {
        self.handled[self.db].clear();
        self.db += 1;
        self.db_open = false;
        self.cursor = 0;
    }
}

fn set_aside_full_chunk(w: &mut RdbWriter, chunks: &mut Vec<Vec<u8>>) {
    if w.pending_len() >= WRITE_CHUNK {
        chunks.push(w.take_chunk());
    }
}

/// Ends a snapshot's effect on the tables (shrinking may resume).
fn release_tables(node: &mut Node) {
    for db in &mut node.dbs {
        db.keys.set_shrink_paused(false);
    }
}

/// BGREWRITEAOF's snapshot, written to `base_path`.
pub(crate) fn start_aof_rewrite_job(node: &mut Node, base_path: String) {
    start_job_to(node, SaveKind::AofRewrite, base_path);
}

/// Starts a save job. Foreground kinds serialise everything now; a
/// background job serialises over the following ticks.
fn start_job(node: &mut Node, kind: SaveKind) {
    let target = rdb_path(node);
    start_job_to(node, kind, target);
}

fn start_job_to(node: &mut Node, kind: SaveKind, target: String) {
    let id = node.persist.next_job;
    node.persist.next_job += 1;
    let tmp = disk::join(disk::parent(&target), &format!("temp-{id}.rdb"));
    let background = matches!(kind, SaveKind::Background | SaveKind::AofRewrite);
    let mut snap = Snapshot::begin(node);
    if matches!(kind, SaveKind::AofRewrite) && !node.config.aof_use_rdb_preamble {
        snap.aof_body = Some(crate::aof::rewrite_commands(node));
        // Nothing is left to walk, and copy-on-write has nothing to keep.
        snap.db = node.dbs.len();
        snap.keys_done = snap.keys_total;
    }
    node.persist.job = Some(SaveJob {
        id,
        kind,
        tmp,
        target,
        snap: Some(snap),
        wrote_any: false,
        writes_in_flight: 0,
        commit_when_written: false,
        bytes: 0,
        failed: None,
        dirty_at_start: node.dirty,
        started: node.now,
    });
    if background {
        node.persist.last_bgsave_try = node.now.as_secs();
        step_job(node, crate::buggify::shrink(KEYS_PER_STEP, 2));
    } else {
        step_job(node, usize::MAX);
    }
}

/// Advances the job's serialisation by `budget` keys and hands full chunks
/// to the disk; at the end, the fsync/rename/fsync-dir sequence.
fn step_job(node: &mut Node, budget: usize) {
    let Some(mut job) = node.persist.job.take() else {
        return;
    };
    let Some(mut snap) = job.snap.take() else {
        node.persist.job = Some(job);
        return;
    };
    let done = snap.step(node, budget);
    let aof_body = if done { snap.aof_body.take() } else { None };
    if done {
        if aof_body.is_none() {
            snap.w.finish(node.config.rdbchecksum);
        }
        release_tables(node);
    }
    let mut chunks = std::mem::take(&mut snap.chunks);
    if let Some(body) = aof_body {
        chunks.push(body);
    } else if done || snap.w.pending_len() >= crate::buggify::shrink(WRITE_CHUNK, 512) {
        chunks.push(snap.w.take_chunk());
    }
    for chunk in chunks {
        let data = Bytes::from(chunk);
        job.bytes += data.len() as u64;
        let path = job.tmp.clone();
        let op = if job.wrote_any {
            DiskOp::Append { path, data }
        } else {
            DiskOp::Write { path, data }
        };
        job.wrote_any = true;
        job.writes_in_flight += 1;
        let len = data_len(&op);
        issue(node, op, Purpose::SaveWrite { job: job.id, len });
    }
    if done {
        job.commit_when_written = true;
    } else {
        job.snap = Some(snap);
    }
    node.persist.job = Some(job);
    maybe_commit(node);
}

/// The bytes a chunk write carries.
fn data_len(op: &DiskOp) -> u64 {
    match op {
        DiskOp::Write { data, .. } | DiskOp::Append { data, .. } => data.len() as u64,
        _ => 0,
    }
}

/// Once a finished job's chunks are all written: a failed job ends (its
/// temp file removed, the target untouched), a good one starts installing.
fn maybe_commit(node: &mut Node) {
    let Some(job) = node.persist.job.as_mut() else {
        return;
    };
    if !job.commit_when_written || job.writes_in_flight > 0 {
        return;
    }
    job.commit_when_written = false;
    if job.failed.is_some() {
        return finish_job(node);
    }
    let (id, path) = (job.id, job.tmp.clone());
    issue(
        node,
        DiskOp::Fsync { path },
        Purpose::SaveCommit {
            job: id,
            step: CommitStep::Fsync,
        },
    );
}

/// DEBUG RELOAD: the saved image replaces the dataset, through the same
/// loader start-up uses.
fn reload_from_image(node: &mut Node, image: &[u8]) -> Result<(), String> {
    for i in 0..node.dbs.len() {
        let fresh = node.fresh_db(i);
        node.dbs[i] = fresh;
    }
    if let Some(s) = node.scripting.as_mut() {
        s.clear_libraries();
    }
    load_rdb_bytes(node, image).map(drop)
}

fn save_write_done(node: &mut Node, job_id: u64, len: u64, result: DiskResult) {
    let Some(job) = node.persist.job.as_mut() else {
        return;
    };
    if job.id != job_id {
        return; // a job abandoned by SHUTDOWN
    }
    job.writes_in_flight = job.writes_in_flight.saturating_sub(1);
    let failure = match result {
        Err(e) => Some(e.to_string()),
        Ok(DiskReply::Written(n)) if n < len => Some(format!("short write ({n} of {len} bytes)")),
        Ok(_) => None,
    };
    if let Some(why) = failure {
        job.failed.get_or_insert(why);
    }
    maybe_commit(node);
}

fn save_commit_done(node: &mut Node, job_id: u64, step: CommitStep, result: DiskResult) {
    let Some(job) = node.persist.job.as_mut() else {
        return;
    };
    if job.id != job_id {
        return; // a job abandoned by SHUTDOWN
    }
    if let Err(e) = result {
        job.failed.get_or_insert(e.to_string());
        return finish_job(node);
    }
    let (id, tmp, target) = (job.id, job.tmp.clone(), job.target.clone());
    let (op, next) = match step {
        CommitStep::Fsync => (
            DiskOp::Rename {
                from: tmp,
                to: target,
            },
            CommitStep::Rename,
        ),
        CommitStep::Rename => (
            crate::aof::fsync_dir(disk::parent(&target).to_string()),
            CommitStep::FsyncDir,
        ),
        CommitStep::FsyncDir => return finish_job(node),
    };
    issue(
        node,
        op,
        Purpose::SaveCommit {
            job: id,
            step: next,
        },
    );
}

fn finish_job(node: &mut Node) {
    let Some(job) = node.persist.job.take() else {
        return;
    };
    let elapsed = node.now.as_secs().saturating_sub(job.started.as_secs());
    let ok = job.failed.is_none();
    if ok {
        node.dirty = node.dirty.saturating_sub(job.dirty_at_start);
        node.persist.lastsave = node.now.as_secs();
        node.persist.rdb_saves += 1;
        tracing::info!("DB saved on disk");
    } else {
        let why = job.failed.clone().unwrap_or_default();
        tracing::warn!("Failed saving the DB: {why}");
        if !matches!(job.kind, SaveKind::AofRewrite) {
            issue(
                node,
                DiskOp::Remove {
                    path: job.tmp.clone(),
                },
                Purpose::Cleanup,
            );
        }
    }
    if let SaveKind::AofRewrite = job.kind {
        if !ok {
            issue(
                node,
                DiskOp::Remove {
                    path: job.tmp.clone(),
                },
                Purpose::Cleanup,
            );
        }
        crate::aof::rewrite_done(node, ok, &job.target, job.bytes);
        return;
    }
    let background = matches!(job.kind, SaveKind::Background);
    if background {
        node.persist.last_bgsave_ok = ok;
        node.persist.last_bgsave_time_sec = Some(elapsed);
    } else if ok {
        // A successful SAVE also clears a past background failure, as in
        // Redis (rdbSave sets lastbgsave_status).
        node.persist.last_bgsave_ok = true;
    } else {
        node.persist.last_bgsave_ok = false;
    }
    match job.kind {
        SaveKind::Background | SaveKind::AofRewrite => {}
        SaveKind::Foreground { waiters } => {
            for conn in waiters {
                node.reply_to_waiting(conn, if ok { None } else { Some("ERR") });
            }
        }
        SaveKind::Reload { client } => {
            node.reply_to_waiting(
                client,
                if ok {
                    None
                } else {
                    Some("ERR Error trying to load the RDB dump")
                },
            );
        }
        SaveKind::Shutdown { client, force } => {
            if ok || force {
                node.shutdown_requested = true;
                node.push_output(Output::Shutdown);
            } else {
                tracing::warn!("Error trying to save the DB, can't exit.");
                if let Some(conn) = client {
                    node.reply_to_waiting(conn, Some("ERR Errors trying to SHUTDOWN. Check logs."));
                }
            }
        }
    }
}

/// Periodic work: advance a background snapshot; start saves whose `save`
/// point is reached, or that BGSAVE SCHEDULE asked for.
pub fn tick(node: &mut Node) {
    crate::aof::tick(node);
    if node.persist.wants_tick() {
        step_job(node, crate::buggify::shrink(KEYS_PER_STEP, 2));
        return;
    }
    if node.persist.job.is_some() || node.persist.loading {
        return;
    }
    if node.persist.bgsave_scheduled {
        node.persist.bgsave_scheduled = false;
        start_job(node, SaveKind::Background);
        return;
    }
    let now = node.now.as_secs();
    let since_save = now.saturating_sub(node.persist.lastsave);
    let may_retry = node.persist.last_bgsave_ok
        || now.saturating_sub(node.persist.last_bgsave_try) > BGSAVE_RETRY_DELAY_S;
    let due = save_points(&node.config.save)
        .iter()
        .any(|&(secs, changes)| node.dirty >= changes && since_save > secs);
    if due && may_retry {
        tracing::info!("save point reached: background saving started");
        start_job(node, SaveKind::Background);
    }
}

/// Parses the `save` parameter ("3600 1 300 100"): (seconds, changes) pairs.
pub fn save_points(spec: &str) -> Vec<(u64, u64)> {
    let nums: Vec<u64> = spec
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    nums.chunks_exact(2).map(|p| (p[0], p[1])).collect()
}

/// Before a command runs: copy-on-write for the keys it may touch, or
/// finish the snapshot first if it may touch keys it does not name.
pub fn before_write(node: &mut Node, db: usize, cmd: &Command, argv: &[Bytes]) {
    if !node.persist.wants_tick() {
        return;
    }
    let whole = matches!(
        cmd.name.as_str(),
        "flushall" | "flushdb" | "swapdb" | "move" | "copy" | "debug" | "function|restore"
    );
    if whole {
        step_job(node, usize::MAX);
        return;
    }
    let positions: Vec<usize> = if cmd.has(flags::MOVABLE_KEYS) {
        (1..argv.len()).collect()
    } else {
        cmd.key_positions(argv.len())
    };
    let Some(mut job) = node.persist.job.take() else {
        return;
    };
    if let Some(snap) = job.snap.as_mut() {
        for i in positions {
            if let Some(k) = argv.get(i) {
                snap.preserve(node, db, k);
            }
        }
    }
    node.persist.job = Some(job);
}

/// SAVE.
pub fn save_command(node: &mut Node, conn: ConnId) -> Result<(), &'static str> {
    if node.persist.job.is_some() {
        return Err("ERR Background save already in progress");
    }
    start_job(
        node,
        SaveKind::Foreground {
            waiters: vec![conn],
        },
    );
    Ok(())
}

/// BGSAVE [SCHEDULE]: the status line to reply.
pub fn bgsave_command(node: &mut Node, schedule: bool) -> Result<&'static str, &'static str> {
    if node.aof.rewrite_in_progress && !schedule {
        return Err("ERR An AOF log rewriting in progress: can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.");
    }
    if node.persist.job.is_some() {
        if schedule {
            node.persist.bgsave_scheduled = true;
            return Ok("Background saving scheduled");
        }
        return Err("ERR Background save already in progress");
    }
    start_job(node, SaveKind::Background);
    Ok("Background saving started")
}

/// DEBUG RELOAD: save, then replace the dataset with what was saved.
pub fn debug_reload(node: &mut Node, conn: ConnId) -> Result<(), &'static str> {
    if node.persist.job.is_some() {
        return Err("ERR Background save already in progress");
    }
    // Serialise once to keep an image for the reload; the job writes the
    // same bytes.
    let mut snap = Snapshot::begin(node);
    snap.step(node, usize::MAX);
    snap.w.finish(node.config.rdbchecksum);
    release_tables(node);
    let image = snap.take_all();
    let id = node.persist.next_job;
    node.persist.next_job += 1;
    let target = rdb_path(node);
    let tmp = disk::join(&node.config.dir, &format!("temp-{id}.rdb"));
    let mut job = SaveJob {
        id,
        kind: SaveKind::Reload { client: conn },
        tmp: tmp.clone(),
        target: target.clone(),
        snap: None,
        wrote_any: true,
        writes_in_flight: 1,
        commit_when_written: true,
        bytes: 0,
        failed: None,
        dirty_at_start: node.dirty,
        started: node.now,
    };
    if let Err(e) = reload_from_image(node, &image) {
        job.failed = Some(e);
    }
    let len = image.len() as u64;
    issue(
        node,
        DiskOp::Write {
            path: tmp,
            data: Bytes::from(image),
        },
        Purpose::SaveWrite { job: id, len },
    );
    node.persist.job = Some(job);
    Ok(())
}

/// SHUTDOWN (from a client or a signal): save first when asked to or when
/// save points are configured, then stop.
pub fn shutdown(node: &mut Node, client: Option<ConnId>, save: Option<bool>, force: bool) {
    let save = save.unwrap_or_else(|| !save_points(&node.config.save).is_empty());
    // The AOF is flushed and fsynced first (Redis's flushAppendOnlyFile(1)
    // and fsync in prepareForShutdown).
    let aof_pending = crate::aof::flush_for_shutdown(node);
    if !save {
        if aof_pending {
            let dir = disk::join(&node.config.dir, &node.config.appenddirname);
            issue(node, DiskOp::FsyncDir { path: dir }, Purpose::ShutdownAfter);
        } else {
            node.shutdown_requested = true;
            node.push_output(Output::Shutdown);
        }
        return;
    }
    // A background save in progress is abandoned, as Redis kills its
    // child; its remaining completions are ignored.
    if node.persist.job.take().is_some() {
        release_tables(node);
    }
    tracing::info!("Saving the final RDB snapshot before exiting.");
    start_job(node, SaveKind::Shutdown { client, force });
}

/// SIGTERM/SIGINT.
pub fn shutdown_signal(node: &mut Node) {
    shutdown(node, None, None, false);
}

/// `-MISCONF` applies: the last background save failed, save points are
/// configured and stop-writes-on-bgsave-error is on.
pub fn writes_refused(node: &Node) -> bool {
    node.config.stop_writes_on_bgsave_error
        && !node.persist.last_bgsave_ok
        && !save_points(&node.config.save).is_empty()
}

pub const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";
