//! The append-only file: Redis 7.0's multi-part AOF (a base file, incr files
//! and a manifest in `appenddirname`), written and loaded through the disk
//! boundary.
//!
//! # What is written
//!
//! Every command that changed the dataset is appended as its *effect*, as
//! Redis propagates it (see [`effects`]): relative TTLs become PEXPIREAT /
//! `SET ... PXAT`, INCRBYFLOAT becomes `SET ... KEEPTTL`, blocking pops
//! become plain pops, an expired key becomes DEL, and a transaction or script
//! with more than one write is wrapped in MULTI/EXEC. Replaying the file
//! therefore rebuilds the same dataset without clocks or randomness.
//!
//! # The promises (`appendfsync`)
//!
//! - `always`: after each batch of input the node appends the new commands
//!   and fsyncs, and **holds every reply** produced meanwhile until that
//!   fsync succeeded (group commit). A client that saw a reply for a write
//!   finds it after a crash. A failed write or fsync stops the node, as in
//!   Redis ("Can't recover from AOF write error...").
//! - `everysec`: appends after each batch, fsyncs at most once a second in
//!   the background; a crash loses about the last one to two seconds. A
//!   failed write or fsync refuses writes (-MISCONF) until one succeeds.
//! - `no`: appends; the OS decides when data reaches the disk.
//!
//! # Rewrites
//!
//! BGREWRITEAOF opens a new incr file (so later writes go there), then saves
//! the dataset as an RDB-format base with the same incremental snapshot as
//! BGSAVE, renames it into place, writes the new manifest (temp file, fsync,
//! rename, fsync the directory) and only then deletes the old files.

use crate::disk::{self, DiskOp, DiskReply, DiskResult};
use crate::node::{Client, Node, Time};
use crate::persist::{self, Purpose};
use bytes::Bytes;

/// Deliberately broken variants (feature `planted-bugs`, compiled out
/// otherwise): the simulator must catch each of them
/// (`sim/tests/planted.rs`). Selected per thread, so parallel tests and
/// worlds do not see each other's.
#[cfg(feature = "planted-bugs")]
pub mod planted {
    use std::cell::Cell;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Bug {
        /// `appendfsync always` replies before the fsync completes.
        ReplyBeforeFsync = 1,
        /// No fsync of the directory after a rename (SAVE, BGSAVE, AOF
        /// manifest and base): the rename may be lost at a power cut.
        NoDirFsync = 2,
        /// The AOF buffer is dropped when a rewrite starts.
        LoseBufOnRewrite = 4,
        /// A torn AOF tail is cut one byte short of the last whole command.
        TornTailOffByOne = 8,
        /// Keys expire one millisecond early (`at <= now`).
        ExpireEarly = 16,
    }

    impl Bug {
        pub const ALL: [Bug; 5] = [
            Bug::ReplyBeforeFsync,
            Bug::NoDirFsync,
            Bug::LoseBufOnRewrite,
            Bug::TornTailOffByOne,
            Bug::ExpireEarly,
        ];

        pub fn name(self) -> &'static str {
            match self {
                Bug::ReplyBeforeFsync => "reply-before-fsync",
                Bug::NoDirFsync => "no-dir-fsync",
                Bug::LoseBufOnRewrite => "lose-buf-on-rewrite",
                Bug::TornTailOffByOne => "torn-tail-off-by-one",
                Bug::ExpireEarly => "expire-early",
            }
        }

        pub fn parse(s: &str) -> Option<Bug> {
            Bug::ALL.into_iter().find(|b| b.name() == s)
        }
    }

    thread_local! {
        static ACTIVE: Cell<u32> = const { Cell::new(0) };
    }

    /// Switches these bugs on (and every other off) for this thread.
    pub fn set(bugs: &[Bug]) {
        ACTIVE.with(|a| a.set(bugs.iter().fold(0, |m, b| m | *b as u32)));
    }

    pub fn on(bug: Bug) -> bool {
        ACTIVE.with(|a| a.get() & bug as u32 != 0)
    }
}

/// fsync(2) of a directory after a rename (or the planted bug's no-op).
pub(crate) fn fsync_dir(path: String) -> DiskOp {
    #[cfg(feature = "planted-bugs")]
    if planted::on(planted::Bug::NoDirFsync) {
        return DiskOp::ListDir { path };
    }
    DiskOp::FsyncDir { path }
}

/// The state of the AOF.
#[derive(Default)]
pub struct Aof {
    /// `appendonly yes` is in effect (Redis's aof_state == AOF_ON).
    pub enabled: bool,
    /// Commands not yet handed to the disk (Redis's aof_buf).
    buf: Vec<u8>,
    /// The db the AOF stream last SELECTed.
    selected: Option<usize>,
    /// Offsets in the stream of commands: bytes handed to the disk, known
    /// written, and known fsynced.
    issued: u64,
    written: u64,
    pub synced: u64,
    /// Offset up to which append attempts have completed (replies under
    /// everysec and no wait for this).
    pub attempted: u64,
    write_in_flight: bool,
    fsync_in_flight: bool,
    /// Appends handed to the disk, oldest first: (path, the file offset it
    /// starts at, the incr file generation). At most one to the current
    /// file; a rewrite's switch may leave one more to the old file.
    appends: std::collections::VecDeque<(String, u64, u64)>,
    /// Where the next append to the current incr file lands.
    incr_end: u64,
    /// Bumped each time a rewrite switches to a new incr file.
    generation: u64,
    last_fsync: Time,
    /// The last write or fsync failed with this error: writes are refused.
    pub write_error: Option<String>,
    manifest: Manifest,
    /// Files read at start-up, in manifest order.
    loading_files: Vec<(String, Option<Bytes>)>,
    /// A rewrite is running; it opened incr file `seq`.
    pub rewrite_in_progress: bool,
    pub rewrite_scheduled: bool,
    pub rewrites: u64,
    pub last_rewrite_ok: bool,
    /// Size of the AOF at the last rewrite, and now (auto-aof-rewrite-*).
    pub base_size: u64,
    pub current_size: u64,
    /// Set while replaying the AOF: nothing is propagated.
    pub replaying: bool,
    /// Writes of the running top-level command: (db, argv).
    pending: Vec<(usize, Vec<Bytes>)>,
    /// The last `#TS:` annotation's second (Redis's aof_cur_timestamp).
    cur_timestamp: u64,
    /// An append to an incr file a rewrite had left failed: retried there
    /// (path, file offset, generation, bytes).
    old_retry: Option<(String, u64, u64, Bytes)>,
    /// Manifests to install, in order (the first is being installed), each
    /// with the files to delete once it is durable. Appends wait meanwhile:
    /// the incr file they go to may not be named by a durable manifest yet.
    installs: std::collections::VecDeque<(Manifest, Vec<String>)>,
    /// The temp manifest's write failed (short or an error).
    install_failed: Option<String>,
    /// The sequence number of the base file the running rewrite writes.
    rewrite_base_seq: u64,
    /// Start-up: `dir` holds a file named `appendfilename` (an old-style,
    /// single-file AOF, perhaps to upgrade).
    old_file: bool,
    /// Start-up: the names in `appenddirname`, None if it did not exist.
    dir_names: Option<Vec<String>>,
    /// Start-up: an old-style AOF is being moved in once the manifest
    /// naming it is durable.
    upgrading: bool,
}

/// The manifest: which files make up the AOF, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub base: Option<(String, u64)>,
    pub incrs: Vec<(String, u64)>,
    pub history: Vec<String>,
}

impl Manifest {
    /// Parses Redis 7.0's manifest: `file <name> seq <n> type <b|i|h>` lines.
    pub fn parse(text: &[u8]) -> Result<Manifest, String> {
        let text = std::str::from_utf8(text).map_err(|_| "Invalid AOF manifest file format")?;
        let mut m = Manifest::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let t: Vec<&str> = line.split_whitespace().collect();
            let mut name = None;
            let mut seq = None;
            let mut kind = None;
            for kv in t.chunks(2) {
                match kv {
                    ["file", v] => name = Some(v.to_string()),
                    ["seq", v] => seq = v.parse::<u64>().ok(),
                    ["type", v] => kind = Some(v.to_string()),
                    _ => {}
                }
            }
            let (Some(name), Some(seq), Some(kind)) = (name, seq, kind) else {
                return Err("Invalid AOF manifest file format".into());
            };
            if name.contains('/') {
                return Err(format!("File can't be a path, just a filename: {name}"));
            }
            match kind.as_str() {
                "b" if m.base.is_none() => m.base = Some((name, seq)),
                "b" => return Err("Found duplicate base file information".into()),
                "i" => m.incrs.push((name, seq)),
                "h" => m.history.push(name),
                _ => return Err(format!("Unknown AOF file type: {kind}")),
            }
        }
        if m.base.is_none() && m.incrs.is_empty() {
            return Err("Found an empty AOF manifest".into());
        }
        Ok(m)
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some((n, seq)) = &self.base {
            s.push_str(&format!("file {n} seq {seq} type b\n"));
        }
        for n in &self.history {
            s.push_str(&format!("file {n} seq 0 type h\n"));
        }
        for (n, seq) in &self.incrs {
            s.push_str(&format!("file {n} seq {seq} type i\n"));
        }
        s
    }

    fn next_incr_seq(&self) -> u64 {
        self.incrs.iter().map(|i| i.1).max().unwrap_or(0) + 1
    }

    fn next_base_seq(&self) -> u64 {
        self.base.as_ref().map_or(0, |b| b.1) + 1
    }

    /// True if the manifest names `file` (as any type).
    fn names(&self, file: &str) -> bool {
        self.base.as_ref().is_some_and(|b| b.0 == file)
            || self.incrs.iter().any(|i| i.0 == file)
            || self.history.iter().any(|h| h == file)
    }

    /// `<prefix>.<seq>.<suffix>` from `seq` on, skipping names the manifest
    /// already uses: a manifest whose names and sequence numbers disagree
    /// (edited by hand, or damaged) must not make a new file overwrite a
    /// file it names.
    fn fresh_name(&self, prefix: &str, mut seq: u64, suffix: &str) -> (String, u64) {
        loop {
            let name = format!("{prefix}.{seq}.{suffix}");
            if !self.names(&name) {
                return (name, seq);
            }
            seq += 1;
        }
    }
}

fn aof_dir(node: &Node) -> String {
    disk::join(&node.config.dir, &node.config.appenddirname)
}

fn in_dir(node: &Node, name: &str) -> String {
    disk::join(&aof_dir(node), name)
}

fn manifest_name(node: &Node) -> String {
    format!("{}.manifest", node.config.appendfilename)
}

fn current_incr(node: &Node) -> Option<String> {
    node.aof.manifest.incrs.last().map(|(n, _)| in_dir(node, n))
}

// ---------------------------------------------------------------------------
// Propagation
// ---------------------------------------------------------------------------

/// Records that the running command changed the dataset with these effects.
pub fn propagate(node: &mut Node, db: usize, argv: Vec<Bytes>) {
    if node.aof.enabled && !node.aof.replaying {
        node.aof.pending.push((db, argv));
    }
}

/// Effects recorded so far for the running top-level command (a script's
/// `redis.set_repl` drops what its commands add while the AOF is off).
pub(crate) fn pending_effects(node: &Node) -> usize {
    node.aof.pending.len()
}

/// Drops the effects recorded after the first `keep` (see
/// [`pending_effects`]).
pub(crate) fn drop_effects_after(node: &mut Node, keep: usize) {
    node.aof.pending.truncate(keep);
}

/// The top-level command ended: its effects go to the buffer, wrapped in
/// MULTI/EXEC when there is more than one (as Redis 7.0 does).
pub fn end_of_command(node: &mut Node) {
    if node.aof.pending.is_empty() {
        return;
    }
    let ops = std::mem::take(&mut node.aof.pending);
    let now_s = node
        .config
        .aof_timestamp_enabled
        .then(|| node.now.as_secs());
    let wrap = ops.len() > 1;
    if wrap {
        let db = ops[0].0;
        append_command(&mut node.aof, db, &[Bytes::from_static(b"MULTI")], now_s);
    }
    for (db, argv) in &ops {
        append_command(&mut node.aof, *db, argv, now_s);
    }
    if wrap {
        let db = ops[ops.len() - 1].0;
        append_command(&mut node.aof, db, &[Bytes::from_static(b"EXEC")], now_s);
    }
}

/// `feedAppendOnlyFile`: with `aof-timestamp-enabled` (`now_s` given), a
/// `#TS:<unix seconds>` annotation first whenever the second has advanced
/// since the last one (for `redis-check-aof --truncate-to-timestamp`;
/// loaders skip it), then SELECT if the db changed, then the command.
fn append_command(aof: &mut Aof, db: usize, argv: &[Bytes], now_s: Option<u64>) {
    if let Some(now) = now_s {
        if aof.cur_timestamp < now {
            aof.cur_timestamp = now;
            aof.buf
                .extend_from_slice(format!("#TS:{now}\r\n").as_bytes());
        }
    }
    if aof.selected != Some(db) {
        let n = db.to_string();
        encode(&mut aof.buf, &[b"SELECT", n.as_bytes()]);
        aof.selected = Some(db);
    }
    let parts: Vec<&[u8]> = argv.iter().map(|a| a.as_ref()).collect();
    encode(&mut aof.buf, &parts);
}

/// RESP array of bulk strings, the AOF's format.
pub fn encode(out: &mut Vec<u8>, argv: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(argv.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in argv {
        out.push(b'$');
        out.extend_from_slice(itoa::Buffer::new().format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// The effect to log for a command that changed the dataset, when it is not
/// the command itself (Redis's `rewriteClientCommandVector` calls). Commands
/// whose effect depends on what they did (SPOP, blocking pops) report it
/// themselves through [`propagate`] and are not rewritten here.
///
/// A command that deleted its key because the time it set was already past
/// (EXPIRE family, GETEX, RESTORE: Redis's `checkAlreadyExpired`) is logged
/// as `DEL key`, as Redis does: replayed, a past time is kept as a TTL (no
/// key expires while loading), so logging the time would let the old value
/// live on for the rest of the replay.
pub fn effects(name: &str, argv: &[Bytes], now_ms: i64) -> Vec<Bytes> {
    let abs = |rel: &[u8], unit_ms: i64| -> Bytes {
        let n = crate::resp::parse_i64(rel).unwrap_or(0);
        Bytes::from(now_ms.saturating_add(n.saturating_mul(unit_ms)).to_string())
    };
    let past = |at: &[u8]| crate::resp::parse_i64(at).is_some_and(|t| t <= now_ms);
    let del = |key: &Bytes| vec![Bytes::from_static(b"DEL"), key.clone()];
    match name {
        "expire" | "pexpire" | "expireat" | "pexpireat" if argv.len() >= 3 => {
            let at = match name {
                "expire" => abs(&argv[2], 1000),
                "pexpire" => abs(&argv[2], 1),
                "expireat" => Bytes::from(
                    crate::resp::parse_i64(&argv[2])
                        .unwrap_or(0)
                        .saturating_mul(1000)
                        .to_string(),
                ),
                _ => argv[2].clone(),
            };
            if past(&at) {
                return del(&argv[1]);
            }
            vec![Bytes::from_static(b"PEXPIREAT"), argv[1].clone(), at]
        }
        "setex" | "psetex" if argv.len() == 4 => {
            let at = abs(&argv[2], if name == "setex" { 1000 } else { 1 });
            vec![
                Bytes::from_static(b"SET"),
                argv[1].clone(),
                argv[3].clone(),
                Bytes::from_static(b"PXAT"),
                at,
            ]
        }
        "set" | "getex" => {
            // EX/PX/EXAT become PXAT; everything else is kept.
            let mut out = Vec::with_capacity(argv.len());
            let mut i = 0;
            let mut changed = false;
            while i < argv.len() {
                let a = &argv[i];
                let opt = |o: &str| a.eq_ignore_ascii_case(o.as_bytes());
                if i + 1 < argv.len() && (opt("ex") || opt("px") || opt("exat")) {
                    let v = &argv[i + 1];
                    let at = if opt("ex") {
                        abs(v, 1000)
                    } else if opt("px") {
                        abs(v, 1)
                    } else {
                        Bytes::from(
                            crate::resp::parse_i64(v)
                                .unwrap_or(0)
                                .saturating_mul(1000)
                                .to_string(),
                        )
                    };
                    out.push(Bytes::from_static(b"PXAT"));
                    out.push(at);
                    i += 2;
                    changed = true;
                    continue;
                }
                out.push(a.clone());
                i += 1;
            }
            if name == "getex" {
                // GETEX's effect is on the TTL only.
                let key = argv[1].clone();
                if let Some(p) = out.iter().position(|a| a.as_ref() == b"PXAT") {
                    if past(&out[p + 1]) {
                        return del(&key);
                    }
                    return vec![Bytes::from_static(b"PEXPIREAT"), key, out[p + 1].clone()];
                }
                if argv.iter().any(|a| a.eq_ignore_ascii_case(b"persist")) {
                    return vec![Bytes::from_static(b"PERSIST"), key];
                }
                return Vec::new();
            }
            if changed {
                out[0] = Bytes::from_static(b"SET");
            }
            out
        }
        // Stream consumer-group reads and claims log their effects
        // themselves (XCLAIM ... FORCE JUSTID, XGROUP SETID), never as
        // the command.
        "xreadgroup" | "xclaim" | "xautoclaim" => Vec::new(),
        "restore" if argv.len() >= 4 => {
            // A relative TTL becomes absolute (Redis adds ABSTTL).
            let absttl = argv[4..].iter().any(|a| a.eq_ignore_ascii_case(b"absttl"));
            let ttl = crate::resp::parse_i64(&argv[2]).unwrap_or(0);
            let mut out = argv.to_vec();
            if ttl != 0 && !absttl {
                // As the command computed it (mstime() + ttl, wrapping).
                out[2] = Bytes::from(ttl.wrapping_add(now_ms).to_string());
                out.push(Bytes::from_static(b"ABSTTL"));
            }
            if ttl != 0 && past(&out[2]) {
                // REPLACE deleted the old key and nothing was restored.
                return del(&argv[1]);
            }
            out
        }
        _ => argv.to_vec(),
    }
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

fn fsync_policy(node: &Node) -> &str {
    node.config.appendfsync.as_str()
}

/// After each input: hand the buffer to the disk and, per `appendfsync`,
/// fsync. Under `always`, every reply produced meanwhile is held until the
/// fsync covering it completes.
pub fn after_input(node: &mut Node) {
    if !node.aof.enabled || node.aof.replaying || node.halted {
        return;
    }
    write_buffer(node);
    let needed = node.aof.issued + node.aof.buf.len() as u64;
    if fsync_policy(node) == "always" {
        if node.aof.synced < node.aof.issued && !node.aof.fsync_in_flight {
            issue_fsync(node);
        }
        #[cfg(feature = "planted-bugs")]
        if planted::on(planted::Bug::ReplyBeforeFsync) {
            return;
        }
        node.hold_outputs_until(needed, true);
    } else {
        // everysec / no: a reply goes out once its write reached the OS, so
        // a crashed process (not machine) loses nothing acknowledged, as
        // with Redis, which writes before it replies.
        node.hold_outputs_until(needed, false);
    }
}

fn write_buffer(node: &mut Node) {
    if let Some((path, offset, gen, data)) = node.aof.old_retry.take() {
        // A failed append to an incr file a rewrite has since left: again,
        // to that file, then fsync it (everysec fsyncs only the current
        // file). `synced` does not move: the current file is not covered.
        node.aof.issued += data.len() as u64;
        node.aof.appends.push_back((path.clone(), offset, gen));
        let end = node.aof.issued;
        persist::issue(
            node,
            DiskOp::Append {
                path: path.clone(),
                data: data.clone(),
            },
            Purpose::AofWrite { data, end },
        );
        let upto = node.aof.synced;
        persist::issue(node, DiskOp::Fsync { path }, Purpose::AofFsync { upto });
    }
    if node.aof.buf.is_empty() || node.aof.write_in_flight || !node.aof.installs.is_empty() {
        return;
    }
    let Some(path) = current_incr(node) else {
        return;
    };
    let data = Bytes::from(std::mem::take(&mut node.aof.buf));
    let len = data.len() as u64;
    node.aof.issued += len;
    node.aof.write_in_flight = true;
    let gen = node.aof.generation;
    node.aof
        .appends
        .push_back((path.clone(), node.aof.incr_end, gen));
    node.aof.incr_end += len;
    persist::issue(
        node,
        DiskOp::Append {
            path,
            data: data.clone(),
        },
        Purpose::AofWrite {
            data,
            end: node.aof.issued,
        },
    );
}

fn issue_fsync(node: &mut Node) {
    let Some(path) = current_incr(node) else {
        return;
    };
    node.aof.fsync_in_flight = true;
    let upto = node.aof.issued;
    persist::issue(node, DiskOp::Fsync { path }, Purpose::AofFsync { upto });
}

/// Periodic work: everysec fsync, retries after errors, automatic rewrites.
pub fn tick(node: &mut Node) {
    if node.aof.replaying || node.persist.loading {
        return;
    }
    if !node.aof.enabled {
        // A BGREWRITEAOF scheduled behind a save runs with appendonly off
        // too (serverCron checks aof_rewrite_scheduled whatever the state).
        if node.aof.rewrite_scheduled && !node.persist.busy() {
            node.aof.rewrite_scheduled = false;
            let _ = start_rewrite(node);
        }
        return;
    }
    write_buffer(node);
    let now = node.now;
    if fsync_policy(node) == "everysec"
        && node.aof.synced < node.aof.written
        && !node.aof.fsync_in_flight
        && now
            .as_micros()
            .saturating_sub(node.aof.last_fsync.as_micros())
            >= 1_000_000
    {
        issue_fsync(node);
    }
    let pct = node.config.auto_aof_rewrite_percentage as u64;
    let min = node.config.auto_aof_rewrite_min_size as u64;
    let size = node.aof.current_size;
    if pct > 0
        && !node.aof.rewrite_in_progress
        && !node.persist.busy()
        && size > min
        && size * 100 / node.aof.base_size.max(1) >= 100 + pct
    {
        tracing::info!("Starting automatic rewriting of AOF on {pct}% growth");
        let _ = start_rewrite(node);
    }
    if node.aof.rewrite_scheduled && !node.persist.busy() {
        node.aof.rewrite_scheduled = false;
        let _ = start_rewrite(node);
    }
}

/// A write or fsync finished.
pub(crate) fn done(node: &mut Node, purpose: Purpose, result: DiskResult) {
    match purpose {
        Purpose::AofWrite { data, end } => {
            // The write was attempted: under everysec and no, the replies
            // that waited for it may go (Redis writes before it replies;
            // a failed write is reported through -MISCONF instead).
            node.aof.attempted = node.aof.attempted.max(end);
            let (path, offset, gen) = node.aof.appends.pop_front().unwrap_or_default();
            node.aof.write_in_flight = node.aof.appends.iter().any(|a| a.2 == node.aof.generation);
            match result {
                Ok(DiskReply::Written(n)) if n == data.len() as u64 => {
                    node.aof.written += n;
                    node.aof.current_size += n;
                    if node.aof.write_error.take().is_some() {
                        tracing::warn!("AOF write error looks solved, Redis can write again.");
                    }
                }
                other => {
                    let partial = matches!(other, Ok(DiskReply::Written(n)) if n > 0);
                    let why = match other {
                        Err(e) => e.to_string(),
                        Ok(_) => "short write".to_string(),
                    };
                    if partial {
                        // Remove the partial command, as Redis ftruncates
                        // to aof_last_incr_size: a retry appended after it
                        // would make the file unreadable.
                        persist::issue(
                            node,
                            DiskOp::Truncate {
                                path: path.clone(),
                                len: offset,
                            },
                            Purpose::Ignore,
                        );
                    }
                    if fsync_policy(node) == "always" {
                        return persist::fatal(
                            node,
                            format!("Can't recover from AOF write error when the AOF fsync policy is 'always' ({why}). Exiting..."),
                        );
                    }
                    tracing::warn!("Error writing to the AOF file: {why}");
                    // Retry the same bytes later; a short write may have left
                    // a partial command, which the loader treats as a torn
                    // tail (Redis truncates it back; we rewrite it whole).
                    node.aof.write_error = Some(why);
                    node.aof.issued -= data.len() as u64;
                    if gen == node.aof.generation {
                        node.aof.incr_end = offset;
                        let mut again = data.to_vec();
                        again.extend_from_slice(&node.aof.buf);
                        node.aof.buf = again;
                    } else {
                        // Bytes for an incr file a rewrite has since left:
                        // they are retried there (after them in the new
                        // file they would be applied twice, over a base
                        // that already holds them).
                        node.aof.old_retry = Some((path, offset, gen, data));
                    }
                }
            }
            write_buffer(node);
            if fsync_policy(node) == "always"
                && node.aof.synced < node.aof.issued
                && !node.aof.fsync_in_flight
            {
                issue_fsync(node);
            }
            node.release_held_outputs();
        }
        Purpose::AofFsync { upto } => {
            node.aof.fsync_in_flight = false;
            match result {
                Ok(_) => {
                    node.aof.synced = node.aof.synced.max(upto);
                    node.aof.last_fsync = node.now;
                    node.release_held_outputs();
                }
                Err(e) => {
                    if fsync_policy(node) == "always" {
                        return persist::fatal(
                            node,
                            format!("Can't persist AOF for fsync error when the AOF fsync policy is 'always': {e}. Exiting..."),
                        );
                    }
                    tracing::warn!("Error fsyncing the AOF file: {e}");
                    node.aof.write_error = Some(e.to_string());
                    node.aof.last_fsync = node.now;
                }
            }
            if fsync_policy(node) == "always" && node.aof.synced < node.aof.issued {
                issue_fsync(node);
            }
        }
        _ => {}
    }
}

/// Shutdown: write and fsync what is buffered. True if operations were
/// issued (the caller stops after they complete).
pub fn flush_for_shutdown(node: &mut Node) -> bool {
    if !node.aof.enabled || node.persist.loading {
        return false;
    }
    write_buffer(node);
    if node.aof.synced < node.aof.issued {
        issue_fsync(node);
        return true;
    }
    false
}

/// Bytes logged but not yet handed to the disk (the simulator checks the
/// files replay to the dataset only when nothing is left here).
pub fn buffered(node: &Node) -> usize {
    node.aof.buf.len()
}

/// Writes are refused with -MISCONF while the AOF cannot be written.
pub fn write_error(node: &Node) -> Option<String> {
    if !node.aof.enabled {
        return None;
    }
    node.aof
        .write_error
        .as_ref()
        .map(|e| format!("MISCONF Errors writing to the AOF file: {e}"))
}

// ---------------------------------------------------------------------------
// Start-up: create or load
// ---------------------------------------------------------------------------

/// Start-up with `appendonly yes`: load the AOF named by the manifest, or
/// create a fresh one (the RDB file is *not* loaded then, as in Redis).
pub fn start(node: &mut Node) {
    node.aof = Aof {
        enabled: true,
        last_rewrite_ok: true,
        last_fsync: node.now,
        ..Aof::default()
    };
    // What is there before anything is created: an old-style AOF in `dir`
    // is upgraded when the AOF directory does not name it yet.
    let top = if node.config.dir.is_empty() {
        ".".to_string()
    } else {
        node.config.dir.clone()
    };
    persist::issue(
        node,
        DiskOp::ListDir { path: top },
        Purpose::AofStartList { aof_dir: false },
    );
    let dir = aof_dir(node);
    persist::issue(
        node,
        DiskOp::ListDir { path: dir.clone() },
        Purpose::AofStartList { aof_dir: true },
    );
    persist::issue(node, DiskOp::CreateDir { path: dir }, Purpose::Ignore);
    let path = in_dir(node, &manifest_name(node));
    persist::issue(node, DiskOp::Read { path }, Purpose::AofManifest);
}

/// Start-up: a listing of `dir` or of the AOF directory arrived. A failed
/// listing counts as "no such file" (Redis's `fileExist` is a stat).
pub(crate) fn start_listed(node: &mut Node, aof_dir: bool, result: DiskResult) {
    let names = match result {
        Ok(DiskReply::Names(n)) => Some(n),
        _ => None,
    };
    if aof_dir {
        node.aof.dir_names = names;
    } else {
        let file = &node.config.appendfilename;
        node.aof.old_file = names.is_some_and(|n| n.iter().any(|x| x == file));
    }
}

/// Redis 7.0's `loadAppendOnlyFiles` test for an old-style AOF to upgrade:
/// `dir/appendfilename` exists and the AOF directory is missing, or has no
/// manifest, or has a manifest naming only that file as its base while the
/// directory lacks it (a crash between the two steps of an upgrade).
fn needs_upgrade(node: &Node, manifest: Option<&Manifest>) -> bool {
    if !node.aof.old_file {
        return false;
    }
    let file = &node.config.appendfilename;
    match (&node.aof.dir_names, manifest) {
        (None, _) | (_, None) => true,
        (Some(names), Some(m)) => {
            m.incrs.is_empty()
                && m.base.as_ref().is_some_and(|b| &b.0 == file)
                && !names.iter().any(|n| n == file)
        }
    }
}

/// `aofUpgradePrepare`: the old file becomes the base (same name, seq 1),
/// the manifest naming it is made durable, and only then is the file moved
/// into the AOF directory ([`upgrade_moved`] continues).
fn upgrade(node: &mut Node, mut m: Manifest) {
    m.base = Some((node.config.appendfilename.clone(), 1));
    node.aof.manifest = m.clone();
    node.aof.upgrading = true;
    write_manifest(node, m, Vec::new());
}

/// The manifest naming the old file is durable: move the file in.
fn upgrade_move(node: &mut Node) {
    node.aof.upgrading = false;
    let file = node.config.appendfilename.clone();
    let from = disk::join(&node.config.dir, &file);
    let to = in_dir(node, &file);
    persist::issue(node, DiskOp::Rename { from, to }, Purpose::AofUpgradeMoved);
    // The move is durable once both directories are.
    persist::issue(node, fsync_dir(aof_dir(node)), Purpose::Ignore);
    let top = disk::parent(&disk::join(&node.config.dir, &file)).to_string();
    persist::issue(node, fsync_dir(top), Purpose::Ignore);
}

/// The old file is in the AOF directory: load as usual.
pub(crate) fn upgrade_moved(node: &mut Node, result: DiskResult) {
    if let Err(e) = result {
        let file = node.config.appendfilename.clone();
        let dir = node.config.appenddirname.clone();
        return persist::fatal(
            node,
            format!("Error moving the AOF file {file} to the directory {dir}: {e}"),
        );
    }
    tracing::info!(
        "Successfully migrated an old-style AOF file ({}) into the AOF directory ({}).",
        node.config.appendfilename,
        node.config.appenddirname
    );
    read_manifest_files(node);
}

/// Reads every file the manifest names; the last read replays them all.
fn read_manifest_files(node: &mut Node) {
    let m = &node.aof.manifest;
    let mut files = Vec::new();
    if let Some((b, _)) = &m.base {
        files.push(b.clone());
    }
    files.extend(m.incrs.iter().map(|i| i.0.clone()));
    node.aof.loading_files = files.iter().map(|f| (f.clone(), None)).collect();
    for (i, f) in files.iter().enumerate() {
        let path = in_dir(node, f);
        persist::issue(node, DiskOp::Read { path }, Purpose::AofFile { index: i });
    }
}

pub(crate) fn load_step(node: &mut Node, purpose: Purpose, result: DiskResult) {
    match purpose {
        Purpose::AofManifest => match result {
            Ok(DiskReply::Data(text)) => match Manifest::parse(&text) {
                Ok(m) if needs_upgrade(node, Some(&m)) => upgrade(node, m),
                Ok(m) => {
                    node.aof.manifest = m;
                    read_manifest_files(node);
                }
                Err(e) => persist::fatal(node, format!("Bad AOF manifest: {e}. Exiting.")),
            },
            Err(disk::DiskError::NotFound) if needs_upgrade(node, None) => {
                upgrade(node, Manifest::default())
            }
            Err(disk::DiskError::NotFound) => {
                tracing::info!("No AOF found: creating a fresh one.");
                persist::loading_finished(node);
                if let Err(e) = start_rewrite(node) {
                    persist::fatal(node, format!("Can't create the AOF: {e}"));
                }
            }
            Ok(_) => persist::fatal(node, "Unexpected reply reading the AOF manifest".into()),
            Err(e) => persist::fatal(node, format!("Can't read the AOF manifest: {e}. Exiting.")),
        },
        Purpose::AofFile { index } => {
            let data = match result {
                Ok(DiskReply::Data(d)) => d,
                Ok(_) => Bytes::new(),
                Err(disk::DiskError::NotFound) if index > 0 => Bytes::new(),
                Err(e) => {
                    let name = node.aof.loading_files.get(index).map(|f| f.0.clone());
                    return persist::fatal(
                        node,
                        format!(
                            "Can't open the append-only file {}: {e}",
                            name.unwrap_or_default()
                        ),
                    );
                }
            };
            if let Some(slot) = node.aof.loading_files.get_mut(index) {
                slot.1 = Some(data);
            }
            if index + 1 == node.aof.loading_files.len() {
                replay_all(node);
            }
        }
        _ => {}
    }
}

/// Replays every file in order. A torn tail of the last file is cut off
/// (aof-load-truncated yes); anything else malformed is fatal.
fn replay_all(node: &mut Node) {
    let files = std::mem::take(&mut node.aof.loading_files);
    let count = files.len();
    let has_base = node.aof.manifest.base.is_some();
    node.aof.replaying = true;
    for db in &mut node.dbs {
        db.loading = true;
    }
    let mut client = Client::loader();
    let mut total = 0u64;
    for (i, (name, data)) in files.into_iter().enumerate() {
        let data = data.unwrap_or_default();
        total += data.len() as u64;
        // An RDB image first (an RDB base, or an old-style AOF's preamble),
        // then commands, as Redis's loadSingleAppendOnlyFile reads any file.
        let mut rdb_len = 0usize;
        if data.starts_with(b"REDIS") {
            match persist::load_rdb_bytes(node, &data) {
                Ok(used) => rdb_len = used,
                Err(e) => {
                    node.aof.replaying = false;
                    return persist::fatal(
                        node,
                        format!("Bad file format reading the append only file {name}: {e}"),
                    );
                }
            }
        }
        let last = i + 1 == count;
        if last {
            node.aof.incr_end = data.len() as u64;
        }
        match replay(node, &mut client, &data[rdb_len..]) {
            Scan::Done { .. } => {}
            Scan::Truncated { valid } if last && node.config.aof_load_truncated => {
                let valid = valid + rdb_len as u64;
                node.aof.incr_end = valid;
                tracing::warn!(
                    "!!! Warning: short read while loading the AOF file {name}!!! AOF loaded anyway because aof-load-truncated is enabled; truncating it to {valid} bytes"
                );
                total -= data.len() as u64 - valid;
                #[cfg(feature = "planted-bugs")]
                let valid = match planted::on(planted::Bug::TornTailOffByOne) {
                    true => valid.saturating_sub(1),
                    false => valid,
                };
                let path = in_dir(node, &name);
                persist::issue(node, DiskOp::Truncate { path, len: valid }, Purpose::Ignore);
            }
            Scan::Truncated { .. } => {
                node.aof.replaying = false;
                return persist::fatal(
                    node,
                    format!("Unexpected end of file reading the append only file {name}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."),
                );
            }
            Scan::Bad { why, .. } => {
                node.aof.replaying = false;
                return persist::fatal(
                    node,
                    format!("Bad file format reading the append only file {name}: {why}. Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>"),
                );
            }
        }
        if i == 0 && has_base {
            node.aof.base_size = data.len() as u64;
        }
    }
    node.aof.replaying = false;
    for db in &mut node.dbs {
        db.loading = false;
    }
    node.aof.current_size = total;
    node.aof.issued = 0;
    node.aof.written = 0;
    node.aof.synced = 0;
    node.aof.attempted = 0;
    node.dirty = 0;
    tracing::info!("DB loaded from append only file");
    // As Redis's aofOpenIfNeededOnServerStart: open the current incr file
    // with O_CREAT and make its name durable (Redis persists the manifest,
    // fsyncing the directory). Without this, an incr file the manifest
    // names but the disk lacks would be created by the first append and
    // vanish at the next power loss with every write acknowledged in it.
    // A manifest naming no incr file (an upgraded old-style AOF, or a
    // directory with only a base) gets a new one, named in a durable
    // manifest before anything is appended to it (getLastIncrAofName).
    if node.aof.manifest.incrs.is_empty() {
        let (incr, seq) = node.aof.manifest.fresh_name(
            &node.config.appendfilename,
            node.aof.manifest.next_incr_seq(),
            "incr.aof",
        );
        tracing::info!("Creating AOF incr file {incr} on server start");
        node.aof.manifest.incrs.push((incr, seq));
        let m = node.aof.manifest.clone();
        write_manifest(node, m, Vec::new());
    }
    if let Some(path) = current_incr(node) {
        persist::issue(
            node,
            DiskOp::Append {
                path,
                data: Bytes::new(),
            },
            Purpose::Ignore,
        );
        persist::issue(
            node,
            DiskOp::FsyncDir {
                path: aof_dir(node),
            },
            Purpose::Ignore,
        );
    }
    persist::loading_finished(node);
}

/// The outcome of walking one AOF file ([`scan_commands`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// Every byte belongs to a whole command; `commands` of them.
    Done { commands: u64 },
    /// The file ends inside a command (or an unfinished MULTI): the first
    /// `valid` bytes are whole.
    Truncated { valid: u64 },
    /// Malformed at `offset` (not fixable by truncation).
    Bad { offset: u64, why: String },
}

/// Parses one command at `pos`: Ok(None) when the data ends inside it.
pub fn parse_command(data: &[u8], pos: usize) -> Result<Option<(Vec<Bytes>, usize)>, String> {
    fn line(data: &[u8], pos: usize) -> Option<(&[u8], usize)> {
        let rest = data.get(pos..)?;
        let nl = rest.windows(2).position(|w| w == b"\r\n")?;
        Some((&rest[..nl], pos + nl + 2))
    }
    let Some((head, mut p)) = line(data, pos) else {
        return Ok(None);
    };
    if head.first() != Some(&b'*') {
        return Err("expected '*'".into());
    }
    let argc = crate::resp::parse_i64(&head[1..])
        .filter(|&n| n >= 1)
        .ok_or("bad argument count")? as usize;
    let mut argv = Vec::with_capacity(argc.min(1024));
    for _ in 0..argc {
        let Some((h, q)) = line(data, p) else {
            return Ok(None);
        };
        if h.first() != Some(&b'$') {
            return Err("expected '$'".into());
        }
        let len = crate::resp::parse_i64(&h[1..])
            .filter(|&n| n >= 0)
            .ok_or("bad bulk length")? as usize;
        let end = q.checked_add(len).ok_or("bad bulk length")?;
        if data.len() < end.saturating_add(2) {
            return Ok(None);
        }
        if &data[end..end + 2] != b"\r\n" {
            return Err("bulk not terminated by CRLF".into());
        }
        argv.push(Bytes::copy_from_slice(&data[q..end]));
        p = end + 2;
    }
    Ok(Some((argv, p)))
}

/// Walks the commands of an AOF file in order, handing each to `on_command`
/// (an error from it stops the walk as `Bad`). Annotations (`#TS:...`) are
/// skipped. A file that ends inside a command or inside a MULTI that never
/// reached EXEC is `Truncated` at the last whole point. Used by the loader
/// and by `--check-aof`, so both draw the same line.
pub fn scan_commands(
    data: &[u8],
    mut on_command: impl FnMut(&[Bytes]) -> Result<(), String>,
) -> Scan {
    let mut pos = 0;
    let mut commands = 0;
    // Where the open MULTI began: a file cut inside a transaction is valid
    // only up to there.
    let mut multi_start: Option<usize> = None;
    while pos < data.len() {
        if data[pos] == b'#' {
            match data[pos..].windows(2).position(|w| w == b"\r\n") {
                Some(n) => {
                    pos += n + 2;
                    continue;
                }
                None => return Scan::Truncated { valid: pos as u64 },
            }
        }
        match parse_command(data, pos) {
            Ok(Some((argv, next))) => {
                if argv[0].eq_ignore_ascii_case(b"multi") {
                    multi_start = Some(pos);
                } else if argv[0].eq_ignore_ascii_case(b"exec") {
                    multi_start = None;
                }
                if let Err(why) = on_command(&argv) {
                    return Scan::Bad {
                        offset: pos as u64,
                        why,
                    };
                }
                commands += 1;
                pos = next;
            }
            Ok(None) => {
                return Scan::Truncated {
                    valid: multi_start.unwrap_or(pos) as u64,
                }
            }
            Err(why) => {
                return Scan::Bad {
                    offset: pos as u64,
                    why,
                }
            }
        }
    }
    match multi_start {
        Some(start) => Scan::Truncated {
            valid: start as u64,
        },
        None => Scan::Done { commands },
    }
}

fn replay(node: &mut Node, client: &mut Client, data: &[u8]) -> Scan {
    let scan = scan_commands(data, |argv| {
        if node.execute_for_replay(client, argv) {
            match node.replay_error.take() {
                Some(msg) => Err(msg),
                None => Ok(()),
            }
        } else {
            Err(format!(
                "Unknown command '{}' reading the append only file",
                String::from_utf8_lossy(&argv[0])
            ))
        }
    });
    if !matches!(scan, Scan::Done { .. }) {
        discard_transaction(client);
    }
    scan
}

fn discard_transaction(client: &mut Client) {
    client.multi = None;
    client.multi_error = false;
}

// ---------------------------------------------------------------------------
// Rewrites
// ---------------------------------------------------------------------------

/// BGREWRITEAOF (and creating the AOF): switch to a new incr file, then
/// snapshot the dataset as the next base.
pub fn start_rewrite(node: &mut Node) -> Result<(), String> {
    if node.aof.rewrite_in_progress || !node.aof.installs.is_empty() {
        return Err("ERR Background append only file rewriting already in progress".into());
    }
    if !node.aof.enabled {
        // Allowed with appendonly off, as in Redis: no incr file is opened
        // (openNewIncrAofForAppend does nothing then); the base alone is
        // written and named by the manifest (see `rewrite_done`).
        let dir = aof_dir(node);
        persist::issue(node, DiskOp::CreateDir { path: dir }, Purpose::Ignore);
        return start_base_job(node);
    }
    #[cfg(feature = "planted-bugs")]
    if planted::on(planted::Bug::LoseBufOnRewrite) {
        node.aof.buf.clear();
    }
    // Whatever is buffered belongs to the old incr file (the new base is
    // a snapshot of the dataset now, which includes it), even if an append
    // is still in flight; and the fsync that covers it must be of that
    // file (Redis flushes the buffer and fsyncs the old file in the
    // background before it opens the new one).
    if !node.aof.buf.is_empty() && node.aof.write_in_flight {
        node.aof.write_in_flight = false;
    }
    write_buffer(node);
    if node.aof.synced < node.aof.issued {
        if let Some(old) = current_incr(node) {
            node.aof.fsync_in_flight = true;
            let upto = node.aof.issued;
            persist::issue(
                node,
                DiskOp::Fsync { path: old },
                Purpose::AofFsync { upto },
            );
        }
    }
    node.aof.generation += 1;
    node.aof.incr_end = 0;
    node.aof.write_in_flight = false;
    let (incr, seq) = node.aof.manifest.fresh_name(
        &node.config.appendfilename,
        node.aof.manifest.next_incr_seq(),
        "incr.aof",
    );
    node.aof.manifest.incrs.push((incr.clone(), seq));
    let path = in_dir(node, &incr);
    persist::issue(
        node,
        DiskOp::Write {
            path,
            data: Bytes::new(),
        },
        Purpose::Ignore,
    );
    // The stream in the new file starts with its own SELECT.
    node.aof.selected = None;
    write_manifest(node, node.aof.manifest.clone(), Vec::new());
    start_base_job(node)
}

/// Starts writing the rewrite's base file.
fn start_base_job(node: &mut Node) -> Result<(), String> {
    node.aof.rewrite_in_progress = true;
    let (base, base_seq) = node.aof.manifest.fresh_name(
        &node.config.appendfilename,
        node.aof.manifest.next_base_seq(),
        if node.config.aof_use_rdb_preamble {
            "base.rdb"
        } else {
            "base.aof"
        },
    );
    node.aof.rewrite_base_seq = base_seq;
    persist::start_aof_rewrite_job(node, in_dir(node, &base));
    Ok(())
}

/// CONFIG SET appendonly: turning it on writes a fresh AOF from the
/// current dataset (Redis's startAppendOnly); off stops logging.
pub fn set_enabled(node: &mut Node, on: bool) {
    if on == node.aof.enabled {
        return;
    }
    if on {
        node.aof = Aof {
            enabled: true,
            last_rewrite_ok: true,
            last_fsync: node.now,
            ..Aof::default()
        };
        for db in &mut node.dbs {
            db.log_expired = true;
        }
        let dir = aof_dir(node);
        persist::issue(node, DiskOp::CreateDir { path: dir }, Purpose::Ignore);
        if node.persist.busy() {
            node.aof.rewrite_scheduled = true;
        } else {
            let _ = start_rewrite(node);
        }
    } else {
        flush_for_shutdown(node);
        node.aof.enabled = false;
        for db in &mut node.dbs {
            db.log_expired = false;
            db.expired.clear();
        }
    }
}

/// Writes a manifest durably: temp file, fsync, rename, fsync the
/// directory, then deletes `remove_after`. Each step is issued once the
/// previous one succeeded (a rename after a failed fsync would install a
/// manifest that may be lost or garbage); a failure stops the node (Redis
/// exits when it cannot persist the manifest at start-up). Installs run one
/// at a time, in order.
fn write_manifest(node: &mut Node, m: Manifest, remove_after: Vec<String>) {
    node.aof.installs.push_back((m, remove_after));
    if node.aof.installs.len() == 1 {
        start_install(node);
    }
}

fn manifest_paths(node: &Node) -> (String, String, String) {
    let name = manifest_name(node);
    (
        in_dir(node, &format!("temp-{name}")),
        in_dir(node, &name),
        aof_dir(node),
    )
}

fn start_install(node: &mut Node) {
    let Some((m, _)) = node.aof.installs.front() else {
        return;
    };
    let data = Bytes::from(m.render());
    let (tmp, _, _) = manifest_paths(node);
    node.aof.install_failed = None;
    persist::issue(
        node,
        DiskOp::Write {
            path: tmp.clone(),
            data,
        },
        Purpose::AofManifestWrite,
    );
    persist::issue(
        node,
        DiskOp::Fsync { path: tmp },
        Purpose::AofManifestSynced,
    );
}

/// A step of a manifest installation finished.
pub(crate) fn manifest_step(node: &mut Node, purpose: Purpose, result: DiskResult) {
    let (tmp, path, dir) = manifest_paths(node);
    let failed = |node: &mut Node, why: String| {
        persist::fatal(
            node,
            format!("Can't persist the AOF manifest: {why}. Exiting..."),
        )
    };
    match purpose {
        Purpose::AofManifestWrite => {
            let want = node
                .aof
                .installs
                .front()
                .map_or(0, |i| i.0.render().len() as u64);
            match result {
                Ok(DiskReply::Written(n)) if n == want => {}
                Ok(_) => node.aof.install_failed = Some("short write".into()),
                Err(e) => node.aof.install_failed = Some(e.to_string()),
            }
        }
        Purpose::AofManifestSynced => {
            if let Some(why) = node.aof.install_failed.take() {
                return failed(node, why);
            }
            if let Err(e) = result {
                return failed(node, e.to_string());
            }
            persist::issue(
                node,
                DiskOp::Rename {
                    from: tmp,
                    to: path,
                },
                Purpose::AofManifestRenamed,
            );
        }
        Purpose::AofManifestRenamed => {
            if let Err(e) = result {
                return failed(node, e.to_string());
            }
            persist::issue(node, fsync_dir(dir), Purpose::AofManifestInstalled);
        }
        Purpose::AofManifestInstalled => {
            if let Err(e) = result {
                return failed(node, e.to_string());
            }
            let Some((_, remove)) = node.aof.installs.pop_front() else {
                return;
            };
            if node.aof.upgrading {
                return upgrade_move(node);
            }
            for name in remove {
                let path = in_dir(node, &name);
                persist::issue(node, DiskOp::Remove { path }, Purpose::Ignore);
            }
            if !node.aof.installs.is_empty() {
                start_install(node);
            }
        }
        _ => {}
    }
}

/// The rewrite's base file is in place (or the rewrite failed).
pub fn rewrite_done(node: &mut Node, ok: bool, base_path: &str, base_size: u64) {
    node.aof.rewrite_in_progress = false;
    node.aof.last_rewrite_ok = ok;
    if !ok {
        tracing::warn!("Background AOF rewrite failed");
        return;
    }
    let base_name = base_path
        .rsplit('/')
        .next()
        .unwrap_or(base_path)
        .to_string();
    let old = node.aof.manifest.clone();
    // Creating the AOF is not a rewrite (aof_rewrites counts rewrites); a
    // rewrite with appendonly off is one.
    if old.base.is_some() || !node.aof.enabled {
        node.aof.rewrites += 1;
    }
    // The incr file being written stays; with appendonly off none is, and
    // every incr file is history (markRewrittenIncrAofAsHistory).
    let keep = if node.aof.enabled {
        old.incrs.last().cloned()
    } else {
        None
    };
    let mut m = Manifest {
        base: Some((base_name, node.aof.rewrite_base_seq)),
        incrs: keep.iter().cloned().collect(),
        history: Vec::new(),
    };
    let mut history: Vec<String> = old.history.clone();
    if let Some((b, _)) = &old.base {
        history.push(b.clone());
    }
    history.extend(
        old.incrs
            .iter()
            .filter(|i| Some(*i) != keep.as_ref())
            .map(|i| i.0.clone()),
    );
    m.history = Vec::new();
    // A file the new manifest names is never deleted, even if an old entry
    // had the same name (a hand-edited manifest whose names and sequence
    // numbers disagree).
    history
        .retain(|h| m.base.as_ref().is_none_or(|b| &b.0 != h) && m.incrs.iter().all(|i| &i.0 != h));
    node.aof.manifest = m.clone();
    // The old files go once the new manifest is durable.
    write_manifest(node, m, history);
    node.aof.base_size = base_size.max(1);
    node.aof.current_size = base_size;
    tracing::info!("Background AOF rewrite finished successfully");
}

// ---------------------------------------------------------------------------
// Rewrite without an RDB preamble
// ---------------------------------------------------------------------------

/// Items per command in a rewritten base (AOF_REWRITE_ITEMS_PER_CMD).
const REWRITE_ITEMS_PER_CMD: usize = 64;

/// `rewriteAppendOnlyFileRio`: the dataset as commands, for a base written
/// with `aof-use-rdb-preamble no`. A forced `#TS:` annotation first when
/// timestamps are on, then every function library (FUNCTION LOAD), then per
/// database a SELECT and per key the commands that rebuild it: SET, RPUSH,
/// SADD, ZADD and HMSET in batches of 64 items, XADD/XSETID/XGROUP/XCLAIM
/// for streams, and PEXPIREAT for a TTL.
pub(crate) fn rewrite_commands(node: &Node) -> Vec<u8> {
    let mut out = Vec::new();
    if node.config.aof_timestamp_enabled {
        out.extend_from_slice(format!("#TS:{}\r\n", node.now.as_secs()).as_bytes());
    }
    for code in crate::commands::scripting::library_codes(node) {
        encode(&mut out, &[b"FUNCTION", b"LOAD", &code]);
    }
    let mut num = itoa::Buffer::new();
    for (i, d) in node.dbs.iter().enumerate() {
        if d.keys.is_empty() {
            continue;
        }
        encode(&mut out, &[b"SELECT", num.format(i).as_bytes()]);
        for (k, e) in d.keys.iter() {
            rewrite_value(&mut out, k, &e.value);
            if let Some(at) = d.expire_of(k) {
                encode(&mut out, &[b"PEXPIREAT", k, num.format(at).as_bytes()]);
            }
        }
    }
    out
}

/// Emits `cmd key item...` commands of at most 64 items (each item one or
/// more arguments), as Redis's rewrite*Object functions batch them.
fn batched(out: &mut Vec<u8>, cmd: &[u8], key: &[u8], items: Vec<Vec<Vec<u8>>>) {
    for chunk in items.chunks(REWRITE_ITEMS_PER_CMD) {
        let mut argv: Vec<&[u8]> = vec![cmd, key];
        for item in chunk {
            argv.extend(item.iter().map(|a| a.as_slice()));
        }
        encode(out, &argv);
    }
}

fn rewrite_value(out: &mut Vec<u8>, key: &[u8], value: &crate::db::Value) {
    use crate::commands::sets::Member;
    use crate::db::Value;
    let mut num = itoa::Buffer::new();
    match value {
        Value::Str(s) => {
            let v = s.as_bytes(&mut num).to_vec();
            encode(out, &[b"SET", key, &v]);
        }
        Value::List(l) => {
            let items = l.iter().map(|m| vec![m.to_vec()]).collect();
            batched(out, b"RPUSH", key, items);
        }
        Value::Set(s) => {
            let items = s
                .iter()
                .map(|m| match m {
                    Member::Int(i) => vec![num.format(i).as_bytes().to_vec()],
                    Member::Bytes(b) => vec![b.to_vec()],
                })
                .collect();
            batched(out, b"SADD", key, items);
        }
        Value::ZSet(z) => {
            // rioWriteBulkDouble: "%.17g" (inf and -inf as glibc prints them).
            let items = z
                .iter()
                .map(|(score, m)| {
                    let s = if score.is_infinite() {
                        if score > 0.0 { "inf" } else { "-inf" }.to_string()
                    } else {
                        crate::numeric::fmt_double_17g(score)
                    };
                    vec![s.into_bytes(), m.to_vec()]
                })
                .collect();
            batched(out, b"ZADD", key, items);
        }
        Value::Hash(h) => {
            let items = h
                .iter()
                .map(|(f, v)| vec![f.to_vec(), v.to_vec()])
                .collect();
            batched(out, b"HMSET", key, items);
        }
        Value::Stream(s) => rewrite_stream(out, key, s),
    }
}

/// `rewriteStreamObject`.
fn rewrite_stream(out: &mut Vec<u8>, key: &[u8], s: &crate::stream::Stream) {
    use crate::stream::StreamId;
    let mut num = itoa::Buffer::new();
    if s.length > 0 {
        let all = s.range(
            StreamId::new(0, 0),
            StreamId::new(u64::MAX, u64::MAX),
            0,
            false,
        );
        for e in all {
            let id = e.id.to_bytes();
            let mut argv: Vec<&[u8]> = vec![b"XADD", key, &id];
            argv.extend(e.fields.iter().map(|f| f.as_slice()));
            encode(out, &argv);
        }
    } else {
        // XADD MAXLEN 0 makes an empty stream.
        encode(out, &[b"XADD", key, b"MAXLEN", b"0", b"0-1", b"x", b"y"]);
    }
    let (last, deleted) = (s.last_id.to_bytes(), s.max_deleted_id.to_bytes());
    let added = num.format(s.entries_added).as_bytes().to_vec();
    encode(
        out,
        &[
            b"XSETID",
            key,
            &last,
            b"ENTRIESADDED",
            &added,
            b"MAXDELETEDID",
            &deleted,
        ],
    );
    for (name, g) in &s.groups {
        let gid = g.last_id.to_bytes();
        let read = num.format(g.entries_read).as_bytes().to_vec();
        encode(
            out,
            &[b"XGROUP", b"CREATE", key, name, &gid, b"ENTRIESREAD", &read],
        );
        for (cname, c) in &g.consumers {
            if c.pel.is_empty() {
                encode(out, &[b"XGROUP", b"CREATECONSUMER", key, name, cname]);
                continue;
            }
            for id in &c.pel {
                let Some(p) = g.pel.get(id) else { continue };
                let idb = id.to_bytes();
                let time = num.format(p.delivery_time).as_bytes().to_vec();
                let count = num.format(p.delivery_count).as_bytes().to_vec();
                encode(
                    out,
                    &[
                        b"XCLAIM",
                        key,
                        name,
                        cname,
                        b"0",
                        &idb,
                        b"TIME",
                        &time,
                        b"RETRYCOUNT",
                        &count,
                        b"JUSTID",
                        b"FORCE",
                    ],
                );
            }
        }
    }
}
