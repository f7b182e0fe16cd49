//! [`Node`]: one Redis-compatible server as a sans-IO state machine.
//!
//! # Driving a node
//!
//! A driver (the tokio shim in `net/`, or the simulator) owns the sockets and
//! the clock. It feeds the node with [`Node::handle`] and drains it:
//!
//! ```text
//! let mut node = Node::new(config, seed);
//! node.handle(now, Input::Accepted { conn, peer, local });
//! node.handle(now, Input::Received { conn, data });  // any split of the bytes
//! node.handle(now, Input::Tick);                      // at or after poll_timeout()
//! while let Some(out) = node.poll_output() { ... }    // Send, Close, Sleep, Shutdown
//! let next_tick = node.poll_timeout();
//! ```
//!
//! After every `handle`, drain `poll_output` until it returns `None`, then
//! ask `poll_timeout` for the next deadline. `now` is the driver's clock in
//! unix microseconds; the node never reads a clock, so a simulator can run
//! it faster than real time, and EXPIREAT and saved TTLs still mean wall
//! time in production.

use crate::command::{flags, Command, Table};
use crate::config::Config;
use crate::db::Db;
use crate::resp::{Parsed, ReplyBuf, RequestParser};
use bytes::{Bytes, BytesMut};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::{BTreeMap, VecDeque};

/// Buckets of each keyspace table moved per tick while it is being resized
/// (a few hundred microseconds of work, like Redis's 1 ms per db).
const ACTIVE_REHASH_BUCKETS: usize = 1000;

/// Unix time in microseconds, as given by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Time(pub u64);

impl Time {
    pub fn from_micros(us: u64) -> Time {
        Time(us)
    }
    pub fn as_micros(self) -> u64 {
        self.0
    }
    pub fn as_millis(self) -> i64 {
        (self.0 / 1000) as i64
    }
    pub fn as_secs(self) -> u64 {
        self.0 / 1_000_000
    }
    pub fn plus_micros(self, us: u64) -> Time {
        Time(self.0.saturating_add(us))
    }
}

/// A connection, named by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// What happened, as seen by the driver.
#[derive(Debug)]
pub enum Input<'a> {
    /// A client connected. `peer` and `local` are "ip:port" strings, shown by
    /// CLIENT LIST.
    Accepted {
        conn: ConnId,
        peer: String,
        local: String,
    },
    /// The TLS client `conn` presented a certificate that the driver
    /// verified against the configured CA; `common_name` is its subject's CN.
    /// Sent right after `Accepted`. With `tls-auth-clients-user CN` the
    /// client is authenticated as the ACL user of that name.
    PeerCertificate { conn: ConnId, common_name: String },
    /// Bytes arrived from a client.
    Received { conn: ConnId, data: &'a [u8] },
    /// The client went away (or the driver dropped it).
    Closed { conn: ConnId },
    /// Time passed: run the periodic work (active expiry, statistics).
    Tick,
    /// The process's memory figures, measured by the driver (the engine
    /// cannot see its allocator). Reported by INFO memory.
    MemoryUsage { used_bytes: u64, rss_bytes: u64 },
    /// Facts about the host process that INFO reports (pid, OS, CPU time).
    Host(HostInfo),
    /// A file operation asked for by [`Output::Disk`] finished. Completions
    /// arrive in the order the operations were issued.
    DiskDone {
        id: crate::disk::DiskOpId,
        result: crate::disk::DiskResult,
    },
    /// The driver holds `bytes` of output for a client that it could not
    /// write yet (a slow reader). Report it when it changes noticeably; the
    /// node applies client-output-buffer-limit (see [`crate::limits`]).
    OutputBacklog { conn: ConnId, bytes: u64 },
    /// The process was asked to stop (SIGTERM, SIGINT): Redis saves first
    /// when save points are configured, then stops.
    ShutdownSignal,
}

/// What the driver knows about the process, for INFO server and cpu.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    pub os: String,
    pub multiplexing_api: String,
    /// INFO memory's `mem_allocator`.
    pub mem_allocator: String,
    pub process_id: u32,
    pub executable: String,
    pub config_file: String,
    pub cpu_sys_s: f64,
    pub cpu_user_s: f64,
    /// INFO memory's `total_system_memory` (bytes of RAM).
    pub total_system_memory: u64,
}

/// A value or database the node has finished with (see `lazyfree.rs`):
/// the driver drops it, off its event loop if it can.
pub struct Garbage(pub Box<dyn std::any::Any + Send>);

impl std::fmt::Debug for Garbage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Garbage")
    }
}

/// Two hand-offs are equal only if they are the same allocation.
impl PartialEq for Garbage {
    fn eq(&self, other: &Garbage) -> bool {
        std::ptr::addr_eq(&*self.0, &*other.0)
    }
}
impl Eq for Garbage {}

/// What the driver must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the connection, in order.
    Send { conn: ConnId, data: Bytes },
    /// Close the connection after writing everything sent before.
    Close { conn: ConnId },
    /// Block the whole server for this long (DEBUG SLEEP), as Redis does.
    Sleep { micros: u64 },
    /// Stop the server (SHUTDOWN). Connections are closed by the driver.
    Shutdown,
    /// Perform a file operation and report it with [`Input::DiskDone`].
    /// See [`crate::disk`] for the ordering and durability contract.
    Disk {
        id: crate::disk::DiskOpId,
        op: crate::disk::DiskOp,
    },
    /// The node cannot go on (e.g. its data file is corrupt): log the
    /// message and exit with status 1, as Redis does.
    Fatal { message: String },
    /// Drop this (a large value or a flushed database), ideally on another
    /// thread: Redis's lazy free (UNLINK, FLUSHALL ASYNC).
    Free(Garbage),
}

/// Per-connection state.
pub struct Client {
    pub conn: ConnId,
    /// CLIENT ID: increasing from 1, never reused.
    pub id: u64,
    pub name: Option<Bytes>,
    pub db: usize,
    pub authenticated: bool,
    pub peer: String,
    pub local: String,
    pub created: Time,
    pub last_interaction: Time,
    pub last_cmd: String,
    pub reply: ReplyBuf,
    pub querybuf: BytesMut,
    pub parser: RequestParser,
    pub argv: Vec<Bytes>,
    /// Set by QUIT, protocol errors and CLIENT KILL: send what is buffered,
    /// then close; no further commands are read.
    pub close_after_reply: bool,
    pub lib_name: Option<Bytes>,
    /// Set while the client waits in a blocking command (BLPOP...).
    pub blocked: Option<Blocked>,
    /// Set by [`Ctx::block`] during a re-execution: still not served.
    rearmed: bool,
    /// Commands queued since MULTI; `None` outside a transaction.
    pub multi: Option<Vec<Vec<Bytes>>>,
    /// A command was rejected while queueing: EXEC will abort.
    pub multi_error: bool,
    /// True while EXEC runs the queue: blocking commands must not block.
    pub in_exec: bool,
    /// WATCHed keys: (db, key, not live when watched: missing or already
    /// expired).
    pub watched: Vec<(usize, Bytes, bool)>,
    /// A watched key was modified: EXEC will fail.
    pub dirty_cas: bool,
    /// Waiting for a disk operation (SAVE, DEBUG RELOAD, SHUTDOWN's save):
    /// no further commands are read until it replies.
    pub awaiting_disk: bool,
    /// Pub/sub subscriptions, in subscription order.
    pub channels: Vec<Bytes>,
    pub patterns: Vec<Bytes>,
    pub shard_channels: Vec<Bytes>,
    /// Bytes the driver holds for this client, not yet written to it
    /// ([`Input::OutputBacklog`]); checked against client-output-buffer-limit.
    pub output_backlog: u64,
    /// Since when the backlog has been over the soft limit.
    pub obuf_soft_since: Option<Time>,
    /// A command held back by CLIENT PAUSE; it runs when the pause ends.
    pub postponed: Option<Vec<Bytes>>,
    /// CLIENT NO-EVICT on.
    pub no_evict: bool,
    /// Its memory as last added to the client-eviction total
    /// (`evict::client_memory_changed`).
    pub mem_counted: u64,
    /// The ACL user the client is authenticated as; `None` for internal
    /// clients (AOF loading), which may run anything.
    pub user: Option<Bytes>,
    /// The client a script's `redis.call` runs as (ACL LOG context "lua").
    pub is_script: bool,
    /// Its EVAL/FCALL is a suspended script: no further commands are read
    /// until the script ends (see scripting.rs).
    pub in_script: bool,
}

/// The client `conn` names: `c` (the one running, out of the table) or one
/// in `clients`; `None` once it disconnected.
fn watcher<'a>(
    clients: &'a mut BTreeMap<ConnId, Box<Client>>,
    c: &'a mut Client,
    conn: ConnId,
) -> Option<&'a mut Client> {
    if conn == c.conn {
        Some(c)
    } else {
        clients.get_mut(&conn).map(|b| &mut **b)
    }
}

/// What a client blocked in BLPOP & co. waits for.
#[derive(Debug, Clone)]
pub struct Blocked {
    /// The db the keys belong to.
    pub db: usize,
    pub keys: Vec<Bytes>,
    /// When to give up; `None` waits forever (timeout 0).
    pub deadline: Option<Time>,
    pub on_timeout: TimeoutReply,
    /// The command to run again when one of the keys becomes ready.
    pub argv: Vec<Bytes>,
}

/// The reply a blocking command gives when its timeout expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutReply {
    /// `*-1` (RESP2) / `_` (RESP3): BLPOP, BRPOP, BLMPOP, BZPOPMIN...
    NullArray,
    /// `$-1` / `_`: BLMOVE, BRPOPLPUSH.
    NullBulk,
}

impl Client {
    fn new(conn: ConnId, id: u64, peer: String, local: String, now: Time, auth: bool) -> Client {
        Client {
            conn,
            id,
            name: None,
            db: 0,
            authenticated: auth,
            peer,
            local,
            created: now,
            last_interaction: now,
            last_cmd: "NULL".into(),
            reply: ReplyBuf::default(),
            querybuf: BytesMut::new(),
            parser: RequestParser::default(),
            argv: Vec::new(),
            close_after_reply: false,
            lib_name: None,
            blocked: None,
            rearmed: false,
            multi: None,
            multi_error: false,
            in_exec: false,
            watched: Vec::new(),
            dirty_cas: false,
            awaiting_disk: false,
            channels: Vec::new(),
            patterns: Vec::new(),
            shard_channels: Vec::new(),
            output_backlog: 0,
            obuf_soft_since: None,
            no_evict: false,
            mem_counted: 0,
            postponed: None,
            user: Some(Bytes::from_static(b"default")),
            is_script: false,
            in_script: false,
        }
    }

    /// The pseudo client that replays the AOF at start-up.
    pub(crate) fn loader() -> Client {
        let mut c = Client::new(
            ConnId(u64::MAX),
            0,
            String::new(),
            String::new(),
            Time(0),
            true,
        );
        // A logged BLPOP found its data when it ran; replayed, it must
        // never wait.
        c.in_exec = true;
        c.user = None;
        c
    }

    /// The client a script's `redis.call` runs as: the caller's db and
    /// authentication, RESP2, and blocking commands that never block.
    pub fn script_client(caller: &Client) -> Client {
        // An empty address marks the script client: MONITOR shows "lua".
        let mut c = Client::new(
            caller.conn,
            caller.id,
            String::new(),
            String::new(),
            caller.created,
            true,
        );
        c.db = caller.db;
        c.in_exec = true;
        c.user = caller.user.clone();
        c.is_script = true;
        // ACL LOG's client-info for a refused call describes the caller.
        c.name = caller.name.clone();
        c.last_cmd = caller.last_cmd.clone();
        c
    }

    /// Number of (pattern) channel subscriptions, as SUBSCRIBE replies count.
    pub fn subscription_count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// RESP2 clients with subscriptions may only run pub/sub commands.
    pub fn in_pubsub_mode(&self) -> bool {
        !self.reply.resp3 && (self.subscription_count() > 0 || !self.shard_channels.is_empty())
    }

    pub fn resp(&self) -> u8 {
        if self.reply.resp3 {
            3
        } else {
            2
        }
    }
}

/// Counters reported by INFO stats.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub connections_received: u64,
    pub commands_processed: u64,
    pub expired_keys: u64,
    /// Keys removed by maxmemory eviction (INFO stats `evicted_keys`).
    pub evicted_keys: u64,
    /// Clients closed by maxmemory-clients (INFO stats `evicted_clients`).
    pub evicted_clients: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    pub rejected_connections: u64,
    pub total_error_replies: u64,
    pub unexpected_error_replies: u64,
    pub expire_cycle_cpu_samples: u64,
    /// Per-command counters for INFO commandstats: (calls, rejected, failed).
    pub per_command: BTreeMap<String, (u64, u64, u64)>,
    /// Per error-code counters for INFO errorstats.
    pub errors: BTreeMap<String, u64>,
}

/// One server.
pub struct Node {
    pub config: Config,
    pub dbs: Vec<Db>,
    pub clients: BTreeMap<ConnId, Box<Client>>,
    pub stats: Stats,
    pub rng: ChaCha8Rng,
    pub now: Time,
    pub start_time: Time,
    /// 40 hex characters, from the seed.
    pub run_id: String,
    pub next_client_id: u64,
    outputs: VecDeque<Output>,
    next_tick: Time,
    /// Number of ticks run (cronloops).
    pub cron_loops: u64,
    /// Memory figures from the driver.
    pub used_memory: u64,
    pub used_memory_rss: u64,
    pub used_memory_peak: u64,
    pub host: HostInfo,
    /// Samples of (time, commands processed) for instantaneous_ops_per_sec.
    ops_samples: VecDeque<(Time, u64)>,
    /// DEBUG SET-ACTIVE-EXPIRE.
    pub active_expire_enabled: bool,
    /// Which db the active expiry cycle resumes from.
    pub(crate) expire_db_cursor: usize,
    /// Seed for hash tables created later (FLUSHALL, new dbs).
    hash_seed: [u64; 2],
    /// Write commands since the last save (rdb_changes_since_last_save).
    pub dirty: u64,
    pub shutdown_requested: bool,
    /// Clients blocked on each (db, key), first blocked first.
    blocking: BTreeMap<(usize, Bytes), VecDeque<ConnId>>,
    /// Keys that received data while clients wait on them, in signal order.
    ready_keys: VecDeque<(usize, Bytes)>,
    /// Touches of watchers that were out of `clients` (the client whose
    /// command made keys ready is detached while the blocked clients it
    /// woke are served, and their writes may touch its WATCH): the
    /// watcher, the db and key, and whether the key was gone.
    detached_touches: Vec<(ConnId, usize, Bytes, bool)>,
    /// While a blocked command runs again: the key whose signal woke it
    /// (XREAD then answers for that key only, as Redis serves one key).
    pub serving_key: Option<Bytes>,
    /// Clients WATCHing each (db, key).
    watchers: BTreeMap<(usize, Bytes), Vec<ConnId>>,
    /// Pub/sub: subscribers per channel, pattern and shard channel, in
    /// subscription order.
    pub pubsub_channels: BTreeMap<Bytes, Vec<ConnId>>,
    pub pubsub_patterns: BTreeMap<Bytes, Vec<ConnId>>,
    pub pubsub_shard_channels: BTreeMap<Bytes, Vec<ConnId>>,
    /// Other clients whose output buffers got data (published messages)
    /// and must be flushed after the current input.
    pending_flush: Vec<ConnId>,
    /// The Lua state and script cache, created on first use.
    pub scripting: Option<Box<crate::commands::scripting::Scripting>>,
    /// Clients in MONITOR mode.
    pub monitors: Vec<ConnId>,
    /// Id of the next disk operation.
    pub(crate) next_disk_op: u64,
    /// RDB saving and loading.
    pub persist: crate::persist::Persistence,
    /// The append-only file.
    pub aof: crate::aof::Aof,
    /// Set with [`Output::Fatal`]: every later input is ignored.
    pub halted: bool,
    /// CLIENT PAUSE in effect.
    pub pause: Option<crate::limits::Pause>,
    /// ACL users and the ACL LOG.
    pub acl: crate::acl::Acl,
    /// A script suspended between slices (see scripting.rs): while it is
    /// set, no other client's command runs.
    pub running_script: Option<Box<crate::commands::scripting::RunningScript>>,
    /// Set when a script suspended inside the command being executed: the
    /// callers up the stack leave their bookkeeping in the script's frames.
    pub(crate) suspending: bool,
    /// Set by a handler that has re-estimated the memory of every key it
    /// wrote itself (`Node::write_typed_with`, `Db::set`): its bookkeeping
    /// then skips `account_written_keys`, a second lookup and estimate of
    /// the same keys (a tenth of a pipelined LPUSH). Taken after each
    /// handler, so it never outlives the command that set it.
    pub(crate) accounted: bool,
    /// During EXEC: string values stored from a queued command's own
    /// argument, (db, key). Redis shares that object with the argv, kept
    /// until EXEC ends, so OBJECT REFCOUNT says 2 (keys.rs).
    pub exec_argv_values: Vec<(usize, Bytes)>,
    /// Clients whose input arrived while a script ran, in arrival order:
    /// served when the script ends, or with -BUSY once it has run past
    /// `busy-reply-threshold`.
    busy_backlog: Vec<ConnId>,
    /// Set when a command replayed from the AOF cannot be applied as
    /// logged (a script past the loading limit): the load fails with it.
    pub(crate) replay_error: Option<String>,
    /// Nesting of `execute` (EXEC and scripts run commands inside one).
    call_depth: u32,
    /// Calls to [`Node::propagate`] so far: a command that reports its own
    /// effects is not logged as itself.
    explicit_props: u64,
    /// Under `appendfsync always`: outputs waiting for the AOF fsync that
    /// covers offset `.0`.
    held: VecDeque<(u64, bool, Output)>,
    /// Held outputs whose fsync completed, sent at the end of this input.
    released: VecDeque<Output>,
    /// maxmemory eviction state (evict.rs).
    pub evictor: crate::evict::Evictor,
    /// Estimated bytes of client buffers, refreshed every tick (summing
    /// every client per command would cost O(clients)).
    pub clients_memory: u64,
    /// Command durations, SLOWLOG and the latency monitor (latency.rs).
    pub observe: crate::latency::Observability,
    /// Lazy freeing counters (lazyfree.rs).
    pub lazyfree: crate::lazyfree::LazyFreeStats,
    /// Keyspace notifications' per-command state (notify.rs).
    pub notifier: crate::notify::Notifier,
    /// Client-side caching: tracking clients and tables (tracking.rs).
    pub tracking: crate::tracking::Tracking,
}

/// `execute`'s state from before a command ran, for its bookkeeping after.
pub struct AfterCall {
    dirty_before: u64,
    explicit_before: u64,
    errors_before: u64,
    /// For WATCH: which of the command's keys existed before it ran.
    existed: Vec<(Bytes, bool)>,
    /// For client tracking: the keys the command may write and whether
    /// they existed before it ran (empty when nothing is tracked).
    tracked: Vec<(Bytes, bool)>,
    /// Keys the command may write that hold a stream a client blocks on:
    /// if the command deletes or replaces one, its waiters are signalled.
    streams_before: Vec<Bytes>,
    /// The handler accounted for its writes' memory itself.
    accounted: bool,
}

/// The rest of a command that a suspended script interrupted, kept in the
/// script's frames (innermost first) until it ends.
pub enum Frame {
    /// `execute`'s bookkeeping for a command whose handler returned early.
    Finish {
        cmd: &'static Command,
        argv: Vec<Bytes>,
        after: AfterCall,
        /// The nesting depth the bookkeeping runs at.
        depth: u32,
    },
    /// The commands an EXEC has still to run.
    Exec {
        rest: VecDeque<Vec<Bytes>>,
        depth: u32,
    },
}

/// Per-command context handed to command implementations.
pub struct Ctx<'a> {
    pub node: &'a mut Node,
    pub client: &'a mut Client,
    pub argv: &'a [Bytes],
    pub cmd: &'static Command,
}

impl Ctx<'_> {
    #[inline]
    pub fn out(&mut self) -> &mut ReplyBuf {
        &mut self.client.reply
    }
    #[inline]
    pub fn db(&mut self) -> &mut Db {
        &mut self.node.dbs[self.client.db]
    }
    #[inline]
    pub fn now_ms(&self) -> i64 {
        self.node.now.as_millis()
    }
    pub fn arg(&self, i: usize) -> &Bytes {
        &self.argv[i]
    }
    /// Case-insensitive comparison of argument `i` with an option name.
    pub fn arg_is(&self, i: usize, opt: &str) -> bool {
        self.argv
            .get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(opt.as_bytes()))
    }
    pub fn error(&mut self, msg: &str) {
        self.node.count_error(msg);
        self.client.reply.error(msg);
    }
    pub fn syntax_error(&mut self) {
        self.error("ERR syntax error");
    }
    pub fn wrongtype(&mut self) {
        self.error("WRONGTYPE Operation against a key holding the wrong kind of value");
    }
    /// Marks one change to the dataset (for rdb_changes_since_last_save).
    pub fn dirty(&mut self, n: u64) {
        self.node.dirty += n;
    }
    /// Blocks the client until one of `keys` is ready or `deadline` passes
    /// (`None`: forever). The command must not have replied. When a key is
    /// ready the same command runs again; if it calls `block` again it keeps
    /// its place in the queue.
    pub fn block(&mut self, keys: Vec<Bytes>, deadline: Option<Time>, on_timeout: TimeoutReply) {
        // Inside MULTI/EXEC a blocking command behaves as if it timed out.
        if self.client.in_exec {
            match on_timeout {
                TimeoutReply::NullArray => self.client.reply.null_array(),
                TimeoutReply::NullBulk => self.client.reply.null(),
            }
            return;
        }
        if self.client.blocked.is_some() {
            self.client.rearmed = true;
            return;
        }
        self.client.blocked = Some(Blocked {
            db: self.client.db,
            keys,
            deadline,
            on_timeout,
            argv: Vec::new(),
        });
    }

    /// [`Ctx::block`] with the command to run again when woken, when it
    /// must differ from the one received (XREAD BLOCK with `$` waits for
    /// entries after the ID `$` meant when it blocked).
    pub fn block_with_argv(
        &mut self,
        keys: Vec<Bytes>,
        deadline: Option<Time>,
        on_timeout: TimeoutReply,
        argv: Vec<Bytes>,
    ) {
        let was_blocked = self.client.blocked.is_some();
        self.block(keys, deadline, on_timeout);
        if !was_blocked {
            if let Some(b) = &mut self.client.blocked {
                b.argv = argv;
            }
        }
    }

    /// Signals that `key` (in the client's db) got data blocked clients may
    /// want.
    pub fn signal_ready(&mut self, key: &[u8]) {
        let db = self.client.db;
        self.node.signal_ready(db, key);
    }

    /// Parses a blocking timeout in seconds (fractions allowed) into a
    /// deadline, as Redis's `getTimeoutFromObjectOrReply`: 0 means forever.
    pub fn parse_timeout(&mut self, i: usize) -> Option<Option<Time>> {
        // Redis reads a long double: beyond a double's range a huge value
        // still parses (and becomes LLONG_MIN below: "negative"), and a
        // tiny one rounds up to 1 ms (or, negative, to 0: no timeout).
        let secs = match crate::numeric::parse_f64(&self.argv[i]) {
            Some(s) => s,
            None => match crate::numeric::LongDouble::parse(&self.argv[i]) {
                Some(ld) if (ld.to_bits() >> 64) & 0x7fff >= 0x3fff => f64::INFINITY,
                Some(ld) if ld.to_bits() >> 79 & 1 == 1 => 0.0,
                Some(_) => f64::MIN_POSITIVE,
                None => {
                    self.error("ERR timeout is not a float or out of range");
                    return None;
                }
            },
        };
        // Redis rounds up to whole milliseconds (`ceill`, so 0.0001 is 1 ms,
        // not "forever") in a long long before checking the sign; on x86 an
        // out-of-range value (inf, 1e100) becomes LLONG_MIN, so it too is
        // "negative".
        let ms = (secs * 1000.0).ceil();
        if ms < 0.0 || !ms.is_finite() || ms >= i64::MAX as f64 {
            self.error("ERR timeout is negative");
            return None;
        }
        if ms == 0.0 {
            return Some(None);
        }
        Some(Some(self.node.now.plus_micros(ms as u64 * 1000)))
    }

    /// Parses argument `i` as an i32 (Redis's `getIntFromObjectOrReply`),
    /// with its two distinct errors.
    pub fn parse_i32(&mut self, i: usize) -> Option<i32> {
        let n = self.parse_int(i)?;
        match i32::try_from(n) {
            Ok(v) => Some(v),
            Err(_) => {
                self.error(
                    "ERR value is out of range, value must between -2147483648 and 2147483647",
                );
                None
            }
        }
    }

    /// Parses argument `i` as an i64, replying Redis's error if it is not one.
    pub fn parse_int(&mut self, i: usize) -> Option<i64> {
        match crate::resp::parse_i64(&self.argv[i]) {
            Some(n) => Some(n),
            None => {
                self.error("ERR value is not an integer or out of range");
                None
            }
        }
    }
}

impl Node {
    /// A node with the given configuration. All randomness (hash seeds, run
    /// id, random keys, sampling) derives from `seed`.
    pub fn new(config: Config, seed: u64) -> Node {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let hash_seed = [rng.next_u64(), rng.next_u64()];
        // The shim validates the ACL configuration before building the node
        // (and refuses to start on errors); here a bad one falls back.
        let acl = crate::acl::Acl::from_config(&config, None).unwrap_or_else(|e| {
            tracing::warn!("ACL configuration ignored: {e}");
            crate::acl::Acl::new(config.requirepass.as_deref())
        });
        let mut run_id = String::with_capacity(40);
        for _ in 0..20 {
            run_id.push_str(&format!("{:02x}", rng.next_u32() as u8));
        }
        let dbs = (0..config.databases)
            .map(|i| Db::new([hash_seed[0].wrapping_add(i as u64), hash_seed[1]]))
            .collect();
        let mut node = Node {
            config,
            dbs,
            clients: BTreeMap::new(),
            stats: Stats::default(),
            rng,
            now: Time(0),
            start_time: Time(0),
            run_id,
            next_client_id: 1,
            outputs: VecDeque::new(),
            next_tick: Time(0),
            cron_loops: 0,
            used_memory: 0,
            used_memory_rss: 0,
            used_memory_peak: 0,
            host: HostInfo::default(),
            ops_samples: VecDeque::new(),
            active_expire_enabled: true,
            expire_db_cursor: 0,
            hash_seed,
            dirty: 0,
            shutdown_requested: false,
            blocking: BTreeMap::new(),
            ready_keys: VecDeque::new(),
            detached_touches: Vec::new(),
            serving_key: None,
            watchers: BTreeMap::new(),
            pubsub_channels: BTreeMap::new(),
            pubsub_patterns: BTreeMap::new(),
            pubsub_shard_channels: BTreeMap::new(),
            pending_flush: Vec::new(),
            scripting: None,
            monitors: Vec::new(),
            next_disk_op: 1,
            persist: crate::persist::Persistence::default(),
            aof: crate::aof::Aof::default(),
            halted: false,
            pause: None,
            acl,
            running_script: None,
            suspending: false,
            accounted: false,
            exec_argv_values: Vec::new(),
            busy_backlog: Vec::new(),
            replay_error: None,
            call_depth: 0,
            explicit_props: 0,
            held: VecDeque::new(),
            released: VecDeque::new(),
            evictor: crate::evict::Evictor::default(),
            clients_memory: 0,
            observe: Default::default(),
            lazyfree: Default::default(),
            notifier: Default::default(),
            tracking: Default::default(),
        };
        node.evictor.seed(hash_seed[0] ^ hash_seed[1]);
        node.evictor.policy = Some(crate::evict::Policy::parse(&node.config.maxmemory_policy));
        node
    }

    /// Sets the start time (for uptime) and the first tick. Call once before
    /// the first input; otherwise the first `handle` does it.
    /// Also starts loading the dataset from disk.
    pub fn start(&mut self, now: Time) {
        self.now = now;
        self.start_time = now;
        self.next_tick = now.plus_micros(self.tick_interval_us());
        crate::persist::start(self);
    }

    fn tick_interval_us(&self) -> u64 {
        1_000_000 / self.config.hz.clamp(1, 500) as u64
    }

    /// Feeds one input. `now` must not go backwards (if it does, the node
    /// keeps its latest time).
    pub fn handle(&mut self, now: Time, input: Input<'_>) {
        if self.halted {
            // After Output::Fatal the node does nothing more.
            return;
        }
        if self.start_time == Time(0) {
            self.start(now);
        }
        // Time passed between inputs: no command's duration spans it.
        self.observe.chained_ns = None;
        if now > self.now {
            self.now = now;
        }
        match input {
            Input::Accepted { conn, peer, local } => self.accept(conn, peer, local),
            Input::PeerCertificate { conn, common_name } => {
                self.authenticate_by_certificate(conn, &common_name)
            }
            Input::Received { conn, data } => self.receive(conn, data),
            Input::Closed { conn } => {
                self.monitors.retain(|&m| m != conn);
                if let Some(mut c) = self.clients.remove(&conn) {
                    crate::evict::client_gone(self, &c);
                    self.unblock(&mut c);
                    self.unwatch_all(&mut c);
                    crate::commands::pubsub::unsubscribe_everything(self, &mut c);
                }
            }
            // A suspended script owns the node's time: its next slice runs,
            // and nothing periodic does (Redis's event loop is blocked too).
            Input::Tick if self.running_script.is_some() => {
                crate::commands::scripting::resume(self);
            }
            Input::Tick => {
                self.expire_blocked();
                if self.pause.is_some_and(|p| p.until <= self.now) {
                    self.unpause();
                }
                crate::persist::tick(self);
                if self.now >= self.next_tick {
                    self.cron();
                    self.next_tick = self.now.plus_micros(self.tick_interval_us());
                }
            }
            Input::MemoryUsage {
                used_bytes,
                rss_bytes,
            } => {
                self.used_memory = used_bytes;
                self.used_memory_rss = rss_bytes;
            }
            Input::Host(info) => self.host = info,
            Input::DiskDone { id, result } => crate::persist::disk_done(self, id, result),
            Input::ShutdownSignal => crate::persist::shutdown_signal(self),
            Input::OutputBacklog { conn, bytes } => {
                crate::limits::output_backlog(self, conn, bytes);
                crate::evict::client_backlog_changed(self, conn);
            }
        }
        if self.running_script.is_some() && self.busy() {
            // Past the threshold: what waited gets served (-BUSY mostly).
            for conn in std::mem::take(&mut self.busy_backlog) {
                self.serve_client(conn);
            }
        }
        if crate::tracking::broadcast_pending(self) {
            crate::tracking::broadcast(self);
        }
        if !self.pending_flush.is_empty() {
            // Messages from outside any command (expiry, BCAST).
            self.flush_pending();
        }
        // maxmemory-clients, where Redis's beforeSleep checks it.
        crate::evict::evict_clients(self);
        crate::lazyfree::free_deferred(self);
        crate::aof::after_input(self);
        if !self.released.is_empty() {
            // Released replies are older than anything produced just now.
            let mut out = std::mem::take(&mut self.released);
            out.extend(self.outputs.drain(..));
            self.outputs = out;
        }
    }

    /// The next output for the driver, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the driver should next send [`Input::Tick`].
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.running_script.is_some() || crate::buggify::chance(0.02) {
            // (Buggify: a spurious early wake-up.)
            // The next slice of the script, as soon as the host can.
            return Some(self.now);
        }
        let earliest_block = self
            .clients
            .values()
            .filter_map(|c| c.blocked.as_ref()?.deadline)
            .min();
        if self.persist.wants_tick() || self.evictor.running {
            return Some(self.now);
        }
        Some(earliest_block.map_or(self.next_tick, |d| d.min(self.next_tick)))
    }

    /// `tls-auth-clients-user CN` (Redis 8.6, Valkey 8.1): a verified
    /// certificate is the credential, so a client whose CN names an enabled
    /// ACL user starts authenticated as that user, passwords unasked. Any
    /// other certificate leaves the client as it was (the default user, or
    /// unauthenticated when that one needs a password).
    fn authenticate_by_certificate(&mut self, conn: ConnId, common_name: &str) {
        if self.config.tls_auth_clients_user != "cn" {
            return;
        }
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        let name = common_name.as_bytes();
        if self.acl.users.get(name).is_some_and(|u| u.enabled) {
            c.authenticated = true;
            c.user = Some(Bytes::copy_from_slice(name));
        } else {
            tracing::warn!(
                "TLS client certificate CN '{common_name}' names no enabled ACL user (addr={})",
                c.peer
            );
        }
    }

    fn accept(&mut self, conn: ConnId, peer: String, local: String) {
        self.stats.connections_received += 1;
        if self.clients.len() >= self.config.maxclients as usize {
            // Redis writes this error and closes (networking.c acceptCommonHandler).
            self.stats.rejected_connections += 1;
            self.outputs.push_back(Output::Send {
                conn,
                data: Bytes::from_static(b"-ERR max number of clients reached\r\n"),
            });
            self.outputs.push_back(Output::Close { conn });
            return;
        }
        // Protected mode: with no password for the default user, only
        // loopback (and unix socket) clients are served (Redis's
        // clientAcceptHandler).
        if self.config.protected_mode
            && self.acl.default_user().is_some_and(|d| d.nopass)
            && !crate::acl::is_local_peer(&peer)
        {
            self.stats.rejected_connections += 1;
            self.outputs.push_back(Output::Send {
                conn,
                data: Bytes::from_static(crate::acl::PROTECTED_MODE_DENIED),
            });
            self.outputs.push_back(Output::Close { conn });
            return;
        }
        let id = self.next_client_id;
        self.next_client_id += 1;
        let auth = !self.acl.auth_required();
        let c = Client::new(conn, id, peer, local, self.now, auth);
        self.clients.insert(conn, Box::new(c));
    }

    fn receive(&mut self, conn: ConnId, data: &[u8]) {
        if self.running_script.is_some() && !self.busy() {
            // A script is running and has not yet run long enough for other
            // clients to be told: their input waits, as it would in
            // Redis's blocked event loop.
            if let Some(c) = self.clients.get_mut(&conn) {
                self.stats.net_input_bytes += data.len() as u64;
                c.last_interaction = self.now;
                if !c.close_after_reply {
                    c.querybuf.extend_from_slice(data);
                }
                if !self.busy_backlog.contains(&conn) {
                    self.busy_backlog.push(conn);
                }
            }
            return;
        }
        // The client is taken out of the table while its commands run, so a
        // command can borrow both it and the rest of the node.
        let Some(mut c) = self.clients.remove(&conn) else {
            return;
        };
        self.stats.net_input_bytes += data.len() as u64;
        c.last_interaction = self.now;
        if !c.close_after_reply {
            // Buggify: parse the input in two pieces (a short read).
            let cut = crate::buggify::split_at(data.len(), 0.1).unwrap_or(data.len());
            c.querybuf.extend_from_slice(&data[..cut]);
            self.process_input(&mut c);
            if cut < data.len() && !c.close_after_reply {
                c.querybuf.extend_from_slice(&data[cut..]);
                self.process_input(&mut c);
            }
        }
        self.after_input_of(c);
    }

    /// Runs a client's buffered commands (after a script that held them).
    fn serve_client(&mut self, conn: ConnId) {
        let Some(mut c) = self.clients.remove(&conn) else {
            return;
        };
        if !c.close_after_reply {
            self.process_input(&mut c);
        }
        self.after_input_of(c);
    }

    /// Sends what a client's commands produced and puts it back in the
    /// table, or closes it.
    fn after_input_of(&mut self, mut c: Box<Client>) {
        let conn = c.conn;
        let close = c.close_after_reply;
        if self.notifier.has_stash() {
            // Keyspace messages for it from after its last command (a
            // blocked client it served, an eviction before a refusal).
            self.notifier.drain_into(&mut c);
        }
        self.flush(&mut c);
        if close {
            crate::evict::client_gone(self, &c);
            self.monitors.retain(|&m| m != conn);
            crate::commands::pubsub::unsubscribe_everything(self, &mut c);
            self.outputs.push_back(Output::Close { conn });
        } else {
            crate::evict::client_memory_changed(self, &mut c);
            self.clients.insert(conn, c);
        }
        self.flush_pending();
    }

    /// Notes that another client's output buffer got data.
    pub fn mark_for_flush(&mut self, conn: ConnId) {
        if !self.pending_flush.contains(&conn) {
            self.pending_flush.push(conn);
        }
    }

    fn flush_pending(&mut self) {
        for conn in std::mem::take(&mut self.pending_flush) {
            if let Some(mut c) = self.clients.remove(&conn) {
                self.flush(&mut c);
                self.clients.insert(conn, c);
            }
        }
    }

    fn process_input(&mut self, c: &mut Client) {
        let max_bulk = self.config.proto_max_bulk_len as usize;
        loop {
            // Redis's authRequired(): unauthenticated clients get tighter
            // limits (checked per command: an AUTH may precede it).
            let authenticated = c.authenticated || !self.acl.auth_required();
            if c.close_after_reply
                || self.shutdown_requested
                || c.blocked.is_some()
                || c.awaiting_disk
                || c.in_script
                || c.postponed.is_some()
            {
                break;
            }
            let mut argv = std::mem::take(&mut c.argv);
            let parsed = c
                .parser
                .parse(&mut c.querybuf, &mut argv, max_bulk, authenticated);
            match parsed {
                Parsed::Command => {
                    if self.pause.is_some() && crate::limits::paused_for(self, c, &argv) {
                        // CLIENT PAUSE: this command (and what follows it)
                        // waits for the pause to end.
                        c.postponed = Some(argv);
                        break;
                    }
                    self.execute(c, &argv);
                    if std::mem::take(&mut self.suspending) {
                        // Its script goes on in later slices; the reply and
                        // the rest of the pipeline wait for it.
                        c.in_script = true;
                        argv.clear();
                        c.argv = argv;
                        break;
                    }
                    if let Some(b) = &mut c.blocked {
                        // Keep the command to run again when a key is ready.
                        // (unless the command chose what to run again:
                        // XREAD BLOCK resolves `$` before blocking).
                        if b.argv.is_empty() {
                            b.argv = argv.clone();
                        }
                        self.enqueue_blocked(c);
                    }
                    argv.clear();
                    c.argv = argv;
                    self.serve_ready_keys_for(c);
                }
                Parsed::Empty => c.argv = argv,
                Parsed::Incomplete => {
                    c.argv = argv;
                    // Redis 7.0 measures only the unparsed query buffer. The
                    // arguments already parsed are bounded separately by the
                    // same limit, so one request can never hold more than
                    // twice client-query-buffer-limit (Redis has no bound).
                    let pending = c.querybuf.len();
                    let parsed: usize = c.argv.iter().map(|a| a.len()).sum();
                    let limit = self.config.client_query_buffer_limit as usize;
                    if pending > limit
                        || parsed > limit
                        || (!authenticated && pending > 1024 * 1024)
                    {
                        // Redis logs and closes without a reply.
                        tracing::warn!(
                            client = c.id,
                            pending,
                            "closing client that reached max query buffer length"
                        );
                        c.close_after_reply = true;
                        c.querybuf = BytesMut::new();
                    }
                    break;
                }
                Parsed::Error(msg) => {
                    c.argv = argv;
                    self.count_error(msg);
                    c.reply.error(&format!("ERR {msg}"));
                    c.close_after_reply = true;
                    c.querybuf = BytesMut::new();
                    break;
                }
            }
        }
        // Don't keep a large empty buffer around after a big request.
        if c.querybuf.is_empty() && c.querybuf.capacity() > 32 * 1024 {
            c.querybuf = BytesMut::new();
        }
    }

    /// Runs one command: lookup, arity, authentication, then the handler.
    pub(crate) fn execute(&mut self, c: &mut Client, argv: &[Bytes]) {
        let table = Table::get();
        let mut cmd = if self.config.rename_commands.is_empty() {
            table.lookup(&argv[0])
        } else {
            crate::limits::lookup_renamed(&self.config, &argv[0])
        };
        if let Some(container) = cmd {
            if container.is_container() {
                cmd = if argv.len() >= 2 {
                    container.subcommand(&argv[1])
                } else {
                    // "CONFIG" alone: a container's own arity error.
                    Some(container)
                };
                if cmd.is_none() {
                    let mut msg = b"ERR unknown subcommand '".to_vec();
                    let sub = crate::resp::c_str(&argv[1]);
                    msg.extend_from_slice(&sub[..sub.len().min(128)]);
                    msg.extend_from_slice(
                        format!("'. Try {} HELP.", container.name.to_uppercase()).as_bytes(),
                    );
                    self.count_error("ERR");
                    c.reply.error_bytes(&msg);
                    if c.multi.is_some() {
                        c.multi_error = true;
                    }
                    return;
                }
            }
        }
        let Some(cmd) = cmd else {
            // Redis quotes the client's bytes as they are, cut at 128 bytes.
            let mut args = Vec::new();
            for a in &argv[1..] {
                if args.len() >= 128 {
                    break;
                }
                let room = 128 - args.len();
                let a = crate::resp::c_str(a);
                args.push(b'\'');
                args.extend_from_slice(&a[..a.len().min(room)]);
                args.extend_from_slice(b"' ");
            }
            let name = crate::resp::c_str(&argv[0]);
            let mut msg = b"ERR unknown command '".to_vec();
            msg.extend_from_slice(&name[..name.len().min(128)]);
            msg.extend_from_slice(b"', with args beginning with: ");
            msg.extend_from_slice(&args);
            self.count_error("ERR");
            c.reply.error_bytes(&msg);
            if c.multi.is_some() {
                c.multi_error = true;
            }
            return;
        };
        if !cmd.arity_ok(argv.len()) || cmd.handler.is_none() {
            let msg = format!("ERR wrong number of arguments for '{}' command", cmd.name);
            self.reject_command(c, cmd, &msg);
            return;
        }
        if !c.authenticated && !cmd.has(flags::NO_AUTH) && self.acl.auth_required() {
            self.reject_command(c, cmd, "NOAUTH Authentication required.");
            return;
        }
        if let Some(msg) = self.acl_refusal(c, cmd, argv) {
            if c.in_exec {
                // EXEC and scripts report it as the command's own reply.
                self.count_error(&msg);
                c.reply.error(&msg);
            } else {
                self.reject_command(c, cmd, &msg);
            }
            return;
        }
        // As Redis's processCommand: PING only at the top level, and an
        // EXEC whose queue holds writes counts as a write (refused, it
        // discards the transaction); commands EXEC runs are not checked.
        let write = cmd.has(flags::WRITE)
            || (cmd.name == "ping" && !c.in_exec)
            || (cmd.name == "exec" && self.queued_writes(c));
        if write && !self.aof.replaying {
            if crate::persist::writes_refused(self) {
                self.reject_command(c, cmd, crate::persist::MISCONF);
                return;
            }
            if let Some(msg) = crate::aof::write_error(self) {
                self.reject_command(c, cmd, &msg);
                return;
            }
        }
        if c.in_pubsub_mode()
            && !matches!(
                cmd.name.as_str(),
                "ping"
                    | "subscribe"
                    | "ssubscribe"
                    | "unsubscribe"
                    | "sunsubscribe"
                    | "psubscribe"
                    | "punsubscribe"
                    | "quit"
                    | "reset"
            )
        {
            let msg = format!("ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", cmd.name);
            self.reject(c, &msg);
            return;
        }
        if self.persist.loading && !self.aof.replaying && !cmd.has(flags::LOADING) {
            self.reject_command(c, cmd, "LOADING Redis is loading the dataset in memory");
            return;
        }
        if self.config.maxmemory > 0 && !self.aof.replaying && self.oom_refuses(c, cmd) {
            let msg = crate::evict::OOM_ERROR;
            self.reject_command(c, cmd, msg);
            return;
        }
        if let Some(running) = &self.running_script {
            // SHUTDOWN is allowed while a script is busy only with NOSAVE.
            let saving_shutdown = cmd.name == "shutdown"
                && !argv[1..].iter().any(|a| a.eq_ignore_ascii_case(b"nosave"));
            if !cmd.has(flags::ALLOW_BUSY) || saving_shutdown {
                let msg = crate::commands::scripting::busy_error(running);
                self.reject_command(c, cmd, msg);
                return;
            }
        }
        let Some(handler) = cmd.handler else { return };
        if c.multi.is_some()
            && !matches!(
                cmd.name.as_str(),
                "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
            )
        {
            if let Some(q) = &mut c.multi {
                q.push(argv.to_vec());
            }
            c.reply.simple("QUEUED");
            return;
        }
        self.stats.commands_processed += 1;
        let dirty_before = self.dirty;
        // For WATCH: which of the command's keys exist before it runs (a key
        // absent before and after was not modified).
        let existed: Vec<(Bytes, bool)> = if self.watchers.is_empty() {
            Vec::new()
        } else {
            self.command_keys(cmd, argv)
                .into_iter()
                .map(|k| {
                    let e = self.dbs[c.db].keys.contains_key(&k);
                    (k, e)
                })
                .collect()
        };
        let tracked = if self.tracking.watches_writes() && cmd.has(flags::WRITE) {
            self.written_keys(cmd, argv)
                .into_iter()
                .map(|k| {
                    let e = self.dbs[c.db].keys.contains_key(&k);
                    (k, e)
                })
                .collect()
        } else {
            Vec::new()
        };
        let streams_before = if self.blocking.is_empty() || !cmd.has(flags::WRITE) {
            Vec::new()
        } else {
            self.blocked_streams_written(c.db, cmd, argv)
        };
        if self.call_depth == 0 {
            self.tracking.current = c.id;
        }
        if self.config.notify_keyspace_events & crate::notify::NEW != 0 {
            let keys = self.written_keys(cmd, argv);
            crate::notify::before_command(self, c.db, keys);
        }
        if cmd.has(flags::WRITE) || cmd.name == "debug" {
            crate::persist::before_write(self, c.db, cmd, argv);
        }
        c.last_cmd.clear();
        c.last_cmd.push_str(&cmd.name);
        let errors_before = self.stats.total_error_replies;
        let explicit_before = self.explicit_props;
        self.call_depth += 1;
        {
            let mut ctx = Ctx {
                node: self,
                client: c,
                argv,
                cmd,
            };
            let top_level = ctx.node.call_depth == 1;
            let started_ns = ctx.node.observe.command_start_ns(top_level);
            ctx.node.accounted = false;
            handler(&mut ctx);
            ctx.node.record_duration(ctx.client, cmd, argv, started_ns);
        }
        let accounted = std::mem::take(&mut self.accounted);
        self.call_depth -= 1;
        let after = AfterCall {
            dirty_before,
            explicit_before,
            errors_before,
            existed,
            tracked,
            streams_before,
            accounted,
        };
        if self.suspending {
            // A script suspended inside this command: the bookkeeping below
            // runs when it ends (`script_finished`).
            if let Some(running) = &mut self.running_script {
                running.frames.push(Frame::Finish {
                    cmd,
                    argv: argv.to_vec(),
                    after,
                    depth: self.call_depth,
                });
            }
            return;
        }
        self.after_call(c, cmd, argv, after);
    }

    /// `execute`'s bookkeeping once a command's handler has returned: AOF,
    /// memory accounting, stats, WATCH and MONITOR.
    fn after_call(&mut self, c: &mut Client, cmd: &Command, argv: &[Bytes], after: AfterCall) {
        let AfterCall {
            dirty_before,
            explicit_before,
            errors_before,
            existed,
            tracked,
            streams_before,
            accounted,
        } = after;
        if self.aof.enabled {
            self.log_effects(c.db, cmd, argv, dirty_before, explicit_before);
        }
        if self.dirty != dirty_before && !accounted {
            self.account_written_keys(c.db, cmd, argv);
        }
        if self.dirty != dirty_before && !streams_before.is_empty() {
            self.signal_deleted_streams(c.db, streams_before);
        }
        let failed = (self.stats.total_error_replies > errors_before) as u64;
        self.count_call(cmd, failed);
        if self.dirty != dirty_before && !self.watchers.is_empty() {
            for (k, before) in existed {
                if before || self.dbs[c.db].keys.contains_key(&k) {
                    self.touch_key(c, c.db, &k);
                }
            }
        }
        if !self.monitors.is_empty() && !cmd.has(flags::SKIP_MONITOR | flags::ADMIN) {
            self.feed_monitors(c, cmd, argv);
        }
        self.after_call_caching(c, cmd, argv, tracked, dirty_before, failed);
    }

    /// Client-side caching and notifications after a command: invalidate
    /// what it wrote, remember what a tracking client read, and at the top
    /// level send what waited for the reply (tracking.rs, notify.rs).
    fn after_call_caching(
        &mut self,
        c: &mut Client,
        cmd: &Command,
        argv: &[Bytes],
        tracked: Vec<(Bytes, bool)>,
        dirty_before: u64,
        failed: u64,
    ) {
        if self.dirty != dirty_before {
            for (k, before) in tracked {
                if before || self.dbs[c.db].keys.contains_key(&k) {
                    crate::tracking::invalidate_key(self, &k);
                }
            }
        }
        if !self.tracking.clients.is_empty() {
            if failed == 0 && matches!(cmd.name.as_str(), "flushdb" | "flushall") {
                crate::tracking::invalidate_all(self, c);
            }
            crate::tracking::remember_keys(self, c, cmd, argv);
        }
        if self.call_depth == 0 {
            if self.notifier.has_stash() && !c.is_script {
                self.notifier.drain_into(c);
            }
            crate::tracking::after_command(self, c, cmd);
        }
    }

    /// The keys a command may write, by its key specs (RW, OW, RM).
    fn written_keys(&self, cmd: &Command, argv: &[Bytes]) -> Vec<Bytes> {
        use crate::command::key_flags::{OW, RM, RW};
        let positions: Vec<usize> = if !cmd.key_specs.is_empty() {
            cmd.key_specs
                .iter()
                .filter(|s| s.flags & (RW | OW | RM) != 0)
                .flat_map(|s| s.positions(argv))
                .collect()
        } else {
            cmd.key_positions(argv.len())
        };
        positions
            .into_iter()
            .filter_map(|i| argv.get(i).cloned())
            .collect()
    }

    /// `busy-reply-threshold` has passed since the suspended script started:
    /// other clients are served, with -BUSY for most commands.
    fn busy(&self) -> bool {
        self.running_script.as_ref().is_some_and(|r| {
            let ms = self.now.as_millis() - r.started.as_millis();
            ms >= self.config.busy_reply_threshold
        })
    }

    pub(crate) fn call_depth(&self) -> u32 {
        self.call_depth
    }

    /// Sets the nesting depth (a script resumes at its command's depth);
    /// returns the previous one.
    pub(crate) fn set_call_depth(&mut self, depth: u32) -> u32 {
        std::mem::replace(&mut self.call_depth, depth)
    }

    /// A suspended script ended: its reply goes to its caller (if still
    /// connected), the interrupted commands finish (`frames`, innermost
    /// first), then the caller's pipeline and every client that waited.
    pub(crate) fn script_finished(
        &mut self,
        caller: ConnId,
        reply: crate::commands::scripting::ScriptReply,
        frames: Vec<Frame>,
    ) {
        // A caller that disconnected meanwhile still has its script's
        // effects logged and counted, through a stand-in.
        let mut c = self.clients.remove(&caller).unwrap_or_else(|| {
            Box::new(Client::new(
                caller,
                0,
                String::new(),
                String::new(),
                self.now,
                true,
            ))
        });
        c.db = reply.db;
        if self.notifier.has_stash() {
            // The script's keyspace events for its caller precede its reply.
            self.notifier.drain_into(&mut c);
        }
        reply.write(self, &mut c);
        let mut frames = frames.into_iter();
        while let Some(frame) = frames.next() {
            match frame {
                Frame::Finish {
                    cmd,
                    argv,
                    after,
                    depth,
                } => {
                    let outer = self.set_call_depth(depth);
                    self.after_call(&mut c, cmd, &argv, after);
                    self.set_call_depth(outer);
                }
                Frame::Exec { mut rest, depth } => {
                    let outer = self.set_call_depth(depth);
                    c.in_exec = true;
                    while let Some(argv) = rest.pop_front() {
                        self.execute(&mut c, &argv);
                        if self.suspending {
                            break;
                        }
                    }
                    c.in_exec = false;
                    self.set_call_depth(outer);
                    if self.suspending {
                        // Another script in the same EXEC suspended: what
                        // is left waits for that one.
                        if let Some(running) = &mut self.running_script {
                            running.caller = caller;
                            running.frames.push(Frame::Exec { rest, depth });
                            running.frames.extend(frames);
                        }
                        self.suspending = false;
                        if c.id != 0 {
                            self.clients.insert(caller, c);
                        }
                        return;
                    }
                }
            }
        }
        c.in_script = false;
        self.serve_ready_keys_for(&mut c);
        if c.id != 0 {
            self.clients.insert(caller, c);
            self.serve_client(caller);
        }
        for conn in std::mem::take(&mut self.busy_backlog) {
            self.serve_client(conn);
        }
    }

    /// Redis's maxmemory gate in `processCommand`: at the top level, evict
    /// first, then refuse deny-oom commands (and anything queued in MULTI
    /// but EXEC/DISCARD/QUIT/RESET, and an EXEC holding a deny-oom
    /// command) if memory is still over. Inside a script, deny-oom calls
    /// are refused if memory was over when the script started.
    fn oom_refuses(&mut self, c: &mut Client, cmd: &Command) -> bool {
        if self.call_depth > 0 {
            // A script's redis.call (the script client has no address);
            // EXEC's queued commands are not checked again.
            let script = c.peer.is_empty() && c.in_exec;
            return script && self.evictor.pre_command_oom && cmd.has(flags::DENYOOM);
        }
        if self.config.maxmemory > 0 {
            // Eviction is not the next command's time.
            self.observe.chained_ns = None;
        }
        let oom = crate::evict::perform_evictions(self, Some(c)) == crate::evict::Outcome::Fail;
        self.evictor.pre_command_oom = oom;
        if !oom {
            return false;
        }
        let queued_denyoom = cmd.name == "exec"
            && c.multi.as_ref().is_some_and(|q| {
                q.iter().any(|a| {
                    let t = Table::get();
                    let top = t.lookup(&a[0]);
                    let sub = top
                        .filter(|x| x.is_container())
                        .and_then(|x| x.subcommand(a.get(1)?));
                    sub.or(top).is_some_and(|x| x.has(flags::DENYOOM))
                })
            });
        let in_multi = c.multi.is_some()
            && !matches!(cmd.name.as_str(), "exec" | "discard" | "quit" | "reset");
        cmd.has(flags::DENYOOM) || queued_denyoom || in_multi
    }

    /// Memory accounting after a write: re-estimates the values of the keys
    /// the command may have changed in place (its write key positions).
    fn account_written_keys(&mut self, db: usize, cmd: &Command, argv: &[Bytes]) {
        use crate::command::key_flags::{OW, RM, RW};
        if cmd.key_specs.is_empty() {
            return;
        }
        for spec in cmd
            .key_specs
            .iter()
            .filter(|s| s.flags & (RW | OW | RM) != 0)
        {
            for i in spec.positions(argv) {
                if let Some(k) = argv.get(i) {
                    self.dbs[db].reaccount(k);
                }
            }
        }
    }

    /// The memory estimate `maxmemory` is compared with and INFO reports
    /// as `used_memory` (memory.rs): a fixed base, the datasets, and the
    /// client buffers as of the last tick.
    pub fn used_memory_estimate(&self) -> u64 {
        crate::memory::BASE_OVERHEAD
            + self.dbs.iter().map(|d| d.memory_bytes()).sum::<u64>()
            + self.clients_memory
    }

    /// AOF: logs what the command just did (unless it reported its effects
    /// itself), after the DELs of keys it found expired.
    fn log_effects(
        &mut self,
        db: usize,
        cmd: &Command,
        argv: &[Bytes],
        dirty_before: u64,
        explicit_before: u64,
    ) {
        for d in 0..self.dbs.len() {
            if !self.dbs[d].expired.is_empty() {
                for k in std::mem::take(&mut self.dbs[d].expired) {
                    crate::aof::propagate(self, d, vec![Bytes::from_static(b"DEL"), k]);
                }
            }
        }
        // EXEC and scripts are logged through the commands they ran.
        let container = matches!(
            cmd.name.as_str(),
            "exec" | "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
        );
        if self.dirty != dirty_before && self.explicit_props == explicit_before && !container {
            let effect = crate::aof::effects(&cmd.name, argv, self.now.as_millis());
            if !effect.is_empty() {
                crate::aof::propagate(self, db, effect);
            }
        }
        // While a script is suspended, its effects so far wait in the
        // pending list: the allow-busy commands of other clients must not
        // close its MULTI/EXEC early.
        if self.call_depth == 0 && self.running_script.is_none() {
            crate::aof::end_of_command(self);
        }
    }

    /// A command reports its effect for the AOF (SPOP's SREMs, a blocking
    /// pop's plain pop), instead of being logged as itself.
    pub fn propagate(&mut self, db: usize, argv: Vec<Bytes>) {
        self.explicit_props += 1;
        crate::aof::propagate(self, db, argv);
    }

    /// Runs one command from the AOF; false if it is not a known command.
    pub(crate) fn execute_for_replay(&mut self, c: &mut Client, argv: &[Bytes]) -> bool {
        if Table::get().lookup(&argv[0]).is_none() {
            return false;
        }
        c.in_exec = true;
        self.execute(c, argv);
        c.reply.buf.clear();
        true
    }

    /// Under `appendfsync always`: client-visible outputs queued from now on
    /// wait until the AOF is fsynced up to `offset`.
    /// The AOF: client-visible outputs queued from now on wait until the
    /// stream is fsynced (`by_fsync`, appendfsync always) or written up to
    /// `offset`.
    pub(crate) fn hold_outputs_until(&mut self, offset: u64, by_fsync: bool) {
        let done = if by_fsync {
            self.aof.synced
        } else {
            self.aof.attempted
        };
        if offset <= done && self.held.is_empty() {
            return;
        }
        let mut keep = VecDeque::with_capacity(self.outputs.len());
        for o in self.outputs.drain(..) {
            match o {
                Output::Send { .. } | Output::Close { .. } => {
                    self.held.push_back((offset, by_fsync, o))
                }
                o => keep.push_back(o),
            }
        }
        self.outputs = keep;
    }

    /// An AOF write or fsync completed: release, in order, what waited
    /// for it.
    pub(crate) fn release_held_outputs(&mut self) {
        let (synced, attempted) = (self.aof.synced, self.aof.attempted);
        while self
            .held
            .front()
            .is_some_and(|(need, by_fsync, _)| *need <= if *by_fsync { synced } else { attempted })
        {
            if let Some((_, _, o)) = self.held.pop_front() {
                self.released.push_back(o);
            }
        }
    }

    /// MONITOR's line: `+<unix secs>.<micros> [<db> <addr>] "arg" ...`,
    /// arguments quoted like Redis's `sdscatrepr`, AUTH secrets redacted.
    pub(crate) fn feed_monitors(&mut self, c: &mut Client, cmd: &Command, argv: &[Bytes]) {
        use std::fmt::Write;
        let us = self.now.as_micros();
        let addr = if c.peer.is_empty() { "lua" } else { &c.peer };
        let mut line = format!(
            "+{}.{:06} [{} {}]",
            us / 1_000_000,
            us % 1_000_000,
            c.db,
            addr
        );
        for (i, a) in argv.iter().enumerate() {
            let redact = (cmd.name == "auth" && i > 0)
                || (cmd.name == "hello" && i > 1 && argv[i - 1].eq_ignore_ascii_case(b"auth"))
                || (cmd.name == "hello" && i > 2 && argv[i - 2].eq_ignore_ascii_case(b"auth"));
            line.push(' ');
            if redact {
                line.push_str("\"(redacted)\"");
                continue;
            }
            line.push('"');
            for &b in a.iter() {
                match b {
                    b'\\' => line.push_str("\\\\"),
                    b'"' => line.push_str("\\\""),
                    b'\n' => line.push_str("\\n"),
                    b'\r' => line.push_str("\\r"),
                    b'\t' => line.push_str("\\t"),
                    7 => line.push_str("\\a"),
                    8 => line.push_str("\\b"),
                    0x20..=0x7e => line.push(b as char),
                    _ => {
                        let _ = write!(line, "\\x{b:02x}");
                    }
                }
            }
            line.push('"');
        }
        line.push_str("\r\n");
        for conn in self.monitors.clone() {
            if conn == c.conn && !c.peer.is_empty() {
                c.reply.buf.extend_from_slice(line.as_bytes());
            } else if let Some(m) = self.clients.get_mut(&conn) {
                m.reply.buf.extend_from_slice(line.as_bytes());
                self.mark_for_flush(conn);
            }
        }
    }

    /// The keys a command may modify, for WATCH: the command table's key
    /// positions; for commands whose keys move (LMPOP, Z*STORE) every
    /// argument, which can only make EXEC fail more eagerly, never less.
    /// Only watched keys are returned.
    fn command_keys(&self, cmd: &Command, argv: &[Bytes]) -> Vec<Bytes> {
        use crate::command::key_flags::{OW, RM, RW};
        if matches!(
            cmd.name.as_str(),
            "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
        ) {
            // A script's calls touch what they write; the keys it declares
            // may only have been read.
            return Vec::new();
        }
        // Pops from the first non-empty of several keys: Redis signals only
        // that key; COPY and MOVE write in another db. Their handlers touch
        // what they modify themselves.
        if matches!(
            cmd.name.as_str(),
            "blpop"
                | "brpop"
                | "lmpop"
                | "blmpop"
                | "bzpopmin"
                | "bzpopmax"
                | "zmpop"
                | "bzmpop"
                | "copy"
                | "move"
        ) {
            return Vec::new();
        }
        let positions: Vec<usize> = if !cmd.key_specs.is_empty() {
            // Only the keys the command may write: a STORE command's
            // sources (RO) are not touched, as Redis signals only keys it
            // modifies.
            cmd.key_specs
                .iter()
                .filter(|s| s.flags & (RW | OW | RM) != 0)
                .flat_map(|s| s.positions(argv))
                .collect()
        } else if cmd.has(flags::MOVABLE_KEYS) {
            (1..argv.len()).collect()
        } else {
            cmd.key_positions(argv.len())
        };
        positions
            .into_iter()
            .filter(|&i| self.watchers.keys().any(|(_, k)| *k == argv[i]))
            .map(|i| argv[i].clone())
            .collect()
    }

    /// Marks every client watching (db, key) as dirty, the current client
    /// (`c`, out of the table while it runs) included.
    pub fn touch_key(&mut self, c: &mut Client, db: usize, key: &[u8]) {
        let slot = (db, Bytes::copy_from_slice(key));
        let Some(conns) = self.watchers.get(&slot) else {
            return;
        };
        // Redis 7.0: a key already expired when watched that is now gone
        // (its expiry deleted it, whichever command looked) is no change.
        let gone = !self.dbs[db].keys.contains_key(key);
        let expired_then = |w: &Client| {
            gone && w
                .watched
                .iter()
                .any(|(d, k, not_live)| *d == db && k.as_ref() == key && *not_live)
        };
        for conn in conns.clone() {
            // A script's client shares its caller's connection id, but the
            // WATCH belongs to the caller (detached while its EVAL runs).
            if conn == c.conn && !c.is_script {
                c.dirty_cas |= !expired_then(c);
            } else if let Some(other) = self.clients.get_mut(&conn) {
                other.dirty_cas |= !expired_then(other);
            } else {
                self.detached_touches.push((conn, db, slot.1.clone(), gone));
            }
        }
    }

    /// Serves the blocked clients whose keys are ready while `c` (whose
    /// command made them ready) is out of `clients`, then gives `c` the
    /// WATCH touches their writes meant for it.
    fn serve_ready_keys_for(&mut self, c: &mut Client) {
        self.serve_ready_keys();
        for (conn, db, key, gone) in std::mem::take(&mut self.detached_touches) {
            let Some(w) = watcher(&mut self.clients, c, conn) else {
                continue;
            };
            let expired_then = gone
                && w.watched
                    .iter()
                    .any(|(d, k, not_live)| *d == db && *k == key && *not_live);
            w.dirty_cas |= !expired_then;
        }
    }

    /// FLUSHDB/FLUSHALL/SWAPDB: marks watchers of keys that exist in `db`.
    pub fn touch_watched_in_db(&mut self, c: &mut Client, db: usize) {
        let slots: Vec<(Bytes, Vec<ConnId>)> = self
            .watchers
            .iter()
            .filter(|((d, k), _)| *d == db && self.dbs[db].keys.contains_key(k))
            .map(|((_, k), conns)| (k.clone(), conns.clone()))
            .collect();
        for (key, conns) in slots {
            for conn in conns {
                let Some(w) = watcher(&mut self.clients, c, conn) else {
                    continue;
                };
                // Redis 7.0's touchAllWatchedKeysInDb(db, NULL): a key that
                // was already expired when watched is now just deleted, no
                // logical change (it stays "not live when watched" here).
                if !w
                    .watched
                    .iter()
                    .any(|(d, k, not_live)| *d == db && *k == key && *not_live)
                {
                    w.dirty_cas = true;
                }
            }
        }
    }

    /// SWAPDB's effect on WATCH (Redis 7.0's `touchAllWatchedKeysInDb(emptied,
    /// replaced_with)`): a key watched in `emptied` that exists there or in
    /// the database replacing it fails the watcher's EXEC, except where
    /// nothing changes logically: a key that was not live when watched and
    /// after the swap is missing or expired again, or a key watched live
    /// (and since gone) that is replaced by an expired one, which then
    /// counts as not live.
    pub fn touch_watched_for_swap(&mut self, c: &mut Client, emptied: usize, replaced_with: usize) {
        let now = self.now.as_millis();
        let slots: Vec<(Bytes, Vec<ConnId>)> = self
            .watchers
            .iter()
            .filter(|((d, _), _)| *d == emptied)
            .map(|((_, k), conns)| (k.clone(), conns.clone()))
            .collect();
        for (key, conns) in slots {
            let exists_in_emptied = self.dbs[emptied].keys.contains_key(&key);
            let in_replacement = self.dbs[replaced_with].keys.contains_key(&key);
            if !exists_in_emptied && !in_replacement {
                continue;
            }
            let replacement_expired =
                in_replacement && self.dbs[replaced_with].is_expired(&key, now);
            for conn in conns {
                let Some(w) = watcher(&mut self.clients, c, conn) else {
                    continue;
                };
                let Some(entry) = w
                    .watched
                    .iter_mut()
                    .find(|(d, k, _)| *d == emptied && *k == key)
                else {
                    continue;
                };
                let not_live = &mut entry.2;
                if *not_live {
                    if !in_replacement || replacement_expired {
                        continue;
                    }
                } else if !exists_in_emptied && replacement_expired {
                    *not_live = true;
                    continue;
                }
                w.dirty_cas = true;
            }
        }
    }

    /// WATCH key: remember it (and whether it was already expired).
    pub fn watch(&mut self, c: &mut Client, key: &Bytes) {
        let db = c.db;
        if c.watched.iter().any(|(d, k, _)| *d == db && k == key) {
            return;
        }
        let expired = !self.dbs[db].keys.contains_key(key)
            || self.dbs[db].is_expired(key, self.now.as_millis());
        c.watched.push((db, key.clone(), expired));
        self.watchers
            .entry((db, key.clone()))
            .or_default()
            .push(c.conn);
    }

    /// UNWATCH (and what EXEC, DISCARD, RESET and disconnects imply).
    pub fn unwatch_all(&mut self, c: &mut Client) {
        for (db, key, _) in c.watched.drain(..) {
            let slot = (db, key);
            if let Some(v) = self.watchers.get_mut(&slot) {
                v.retain(|&x| x != c.conn);
                if v.is_empty() {
                    self.watchers.remove(&slot);
                }
            }
        }
        c.dirty_cas = false;
    }

    /// True if a watched key expired since it was watched (Redis 7.0 makes
    /// EXEC fail then, as the key is gone). A live key that is missing now
    /// was deleted by expiry (a command deleting it touched it already):
    /// Redis's expiry deletion touches watchers too.
    pub fn watched_key_expired(&self, c: &Client) -> bool {
        let now = self.now.as_millis();
        c.watched.iter().any(|(db, k, not_live)| {
            !not_live && (!self.dbs[*db].keys.contains_key(k) || self.dbs[*db].is_expired(k, now))
        })
    }

    fn count_call(&mut self, cmd: &Command, failed: u64) {
        match self.stats.per_command.get_mut(cmd.name.as_str()) {
            Some(e) => {
                e.0 += 1;
                e.2 += failed;
            }
            None => {
                self.stats
                    .per_command
                    .insert(cmd.name.clone(), (1, 0, failed));
            }
        }
    }

    /// True if `c` is in MULTI with a write command queued.
    fn queued_writes(&self, c: &Client) -> bool {
        let t = Table::get();
        c.multi.as_ref().is_some_and(|q| {
            q.iter().any(|a| {
                let top = t.lookup(&a[0]);
                let sub = top
                    .filter(|x| x.is_container())
                    .and_then(|x| x.subcommand(a.get(1)?));
                sub.or(top).is_some_and(|x| x.has(flags::WRITE))
            })
        })
    }

    /// Redis's `rejectCommand`: a refused EXEC also discards the
    /// transaction, with EXECABORT naming the reason.
    fn reject_command(&mut self, c: &mut Client, cmd: &Command, msg: &str) {
        if cmd.name == "exec" {
            let reason = msg.strip_prefix("ERR ").unwrap_or(msg);
            c.multi = None;
            c.multi_error = false;
            self.unwatch_all(c);
            let text = format!("EXECABORT Transaction discarded because of: {reason}");
            self.count_error(&text);
            c.reply.error(&text);
            return;
        }
        self.reject(c, msg);
    }

    fn reject(&mut self, c: &mut Client, msg: &str) {
        self.count_error(msg);
        c.reply.error(msg);
        // A command refused while queueing dooms the transaction.
        if c.multi.is_some() {
            c.multi_error = true;
        }
    }

    /// Counts an error reply for INFO stats and errorstats.
    pub fn count_error(&mut self, msg: &str) {
        self.stats.total_error_replies += 1;
        let code = msg.split(' ').next().unwrap_or("ERR");
        match self.stats.errors.get_mut(code) {
            Some(n) => *n += 1,
            None => {
                self.stats.errors.insert(code.to_string(), 1);
            }
        }
    }

    /// Moves a client's buffered reply to the output queue.
    fn flush(&mut self, c: &mut Client) {
        if !c.reply.buf.is_empty() {
            let mut data = c.reply.buf.split().freeze();
            self.stats.net_output_bytes += data.len() as u64;
            if let Some(at) = crate::buggify::split_at(data.len(), 0.1) {
                let head = data.split_to(at);
                self.outputs.push_back(Output::Send {
                    conn: c.conn,
                    data: head,
                });
            }
            self.outputs.push_back(Output::Send { conn: c.conn, data });
        }
    }

    /// Queues an output on behalf of a command (SHUTDOWN, DEBUG SLEEP).
    pub fn push_output(&mut self, out: Output) {
        self.outputs.push_back(out);
    }

    /// Registers a freshly blocked client in the per-key queues.
    fn enqueue_blocked(&mut self, c: &Client) {
        let Some(b) = &c.blocked else { return };
        for k in &b.keys {
            let q = self.blocking.entry((b.db, k.clone())).or_default();
            if !q.contains(&c.conn) {
                q.push_back(c.conn);
            }
        }
    }

    /// Removes a client from every queue it waits in.
    fn unblock(&mut self, c: &mut Client) {
        let Some(b) = c.blocked.take() else { return };
        for k in &b.keys {
            let slot = (b.db, k.clone());
            if let Some(q) = self.blocking.get_mut(&slot) {
                q.retain(|&x| x != c.conn);
                if q.is_empty() {
                    self.blocking.remove(&slot);
                }
            }
        }
    }

    /// Notes that `key` got data; blocked clients are served after the
    /// current command (Redis's `signalKeyAsReady`).
    pub fn signal_ready(&mut self, db: usize, key: &[u8]) {
        if self.blocking.is_empty() {
            return;
        }
        let slot = (db, Bytes::copy_from_slice(key));
        if self.blocking.contains_key(&slot) && !self.ready_keys.contains(&slot) {
            self.ready_keys.push_back(slot);
        }
    }

    /// The keys `cmd` may write that clients block on and that hold a
    /// stream now (before the command runs).
    fn blocked_streams_written(&self, db: usize, cmd: &Command, argv: &[Bytes]) -> Vec<Bytes> {
        use crate::command::key_flags::{OW, RM, RW};
        // The keys the command may write (`command_keys` keeps only
        // watched ones).
        let positions: Vec<usize> = if !cmd.key_specs.is_empty() {
            cmd.key_specs
                .iter()
                .filter(|s| s.flags & (RW | OW | RM) != 0)
                .flat_map(|s| s.positions(argv))
                .collect()
        } else {
            cmd.key_positions(argv.len())
        };
        positions
            .into_iter()
            .filter_map(|i| argv.get(i).cloned())
            .filter(|k| {
                self.blocking.contains_key(&(db, k.clone()))
                    && matches!(
                        self.dbs[db].keys.get(k),
                        Some(crate::db::Entry {
                            value: crate::db::Value::Stream(_),
                            ..
                        })
                    )
            })
            .collect()
    }

    /// After a write: of the blocked-on keys that held a stream before it,
    /// those that no longer do are signalled, so a blocked XREADGROUP learns
    /// its stream was deleted or replaced (Redis 7.0's
    /// `signalDeletedKeyAsReady`, which only streams call). Keys that never
    /// held a stream are not: signalling them would serve their waiters
    /// out of Redis's order (a deleted key signalled before a pushed one).
    fn signal_deleted_streams(&mut self, db: usize, streams_before: Vec<Bytes>) {
        for k in streams_before {
            let still_stream = matches!(
                self.dbs[db].keys.get(&k),
                Some(crate::db::Entry {
                    value: crate::db::Value::Stream(_),
                    ..
                })
            );
            if !still_stream {
                self.signal_ready(db, &k);
            }
        }
    }

    /// Signals every key of `db` that clients block on and that exists
    /// (SWAPDB brings a whole keyspace in at once).
    pub fn signal_blocked_keys_in_db(&mut self, db: usize) {
        let keys: Vec<Bytes> = self
            .blocking
            .keys()
            .filter(|(d, k)| *d == db && self.dbs[db].keys.contains_key(k))
            .map(|(_, k)| k.clone())
            .collect();
        for k in keys {
            self.signal_ready(db, &k);
        }
    }

    /// Serves clients blocked on ready keys, first blocked first, by running
    /// their command again. A command that still finds nothing stays blocked
    /// in its place. Serving may make more keys ready (BLMOVE), which are
    /// served in turn.
    fn serve_ready_keys(&mut self) {
        while let Some(slot) = self.ready_keys.pop_front() {
            let waiting: Vec<ConnId> = match self.blocking.get(&slot) {
                Some(q) => q.iter().copied().collect(),
                None => continue,
            };
            // A key signalled because it was deleted wakes every waiter
            // (XREADGROUP answers with an error, the others block again).
            let existed = self.dbs[slot.0].keys.contains_key(&slot.1);
            for conn in waiting {
                let Some(mut c) = self.clients.remove(&conn) else {
                    continue;
                };
                let Some(b) = c.blocked.clone() else {
                    self.clients.insert(conn, c);
                    continue;
                };
                c.rearmed = false;
                let saved_db = c.db;
                c.db = b.db;
                self.serving_key = Some(slot.1.clone());
                self.execute(&mut c, &b.argv);
                self.serving_key = None;
                c.db = saved_db;
                let served = !c.rearmed;
                c.rearmed = false;
                if served {
                    self.unblock(&mut c);
                    // Commands pipelined behind the blocking one run now.
                    self.process_input(&mut c);
                }
                self.flush(&mut c);
                if c.close_after_reply {
                    self.outputs.push_back(Output::Close { conn });
                } else {
                    self.clients.insert(conn, c);
                }
                // The key may be empty again: stop when nobody else can be
                // served (the next re-execution would just re-block).
                if existed && !self.dbs[slot.0].keys.contains_key(&slot.1) {
                    break;
                }
            }
        }
    }

    /// Replies to blocked clients whose timeout passed.
    fn expire_blocked(&mut self) {
        let now = self.now;
        let expired: Vec<ConnId> = self
            .clients
            .values()
            .filter(|c| {
                c.blocked
                    .as_ref()
                    .and_then(|b| b.deadline)
                    .is_some_and(|d| d <= now)
            })
            .map(|c| c.conn)
            .collect();
        for conn in expired {
            self.finish_blocked(conn, None);
        }
    }

    /// Ends a client's wait with its timeout reply, or with `error`
    /// (CLIENT UNBLOCK ... ERROR). Returns false if it was not blocked.
    pub fn finish_blocked(&mut self, conn: ConnId, error: Option<&str>) -> bool {
        let Some(mut c) = self.clients.remove(&conn) else {
            return false;
        };
        let Some(on_timeout) = c.blocked.as_ref().map(|b| b.on_timeout) else {
            self.clients.insert(conn, c);
            return false;
        };
        self.unblock(&mut c);
        match (error, on_timeout) {
            (Some(e), _) => c.reply.error(e),
            (None, TimeoutReply::NullArray) => c.reply.null_array(),
            (None, TimeoutReply::NullBulk) => c.reply.null(),
        }
        // The client may have pipelined more commands behind the blocking one.
        self.process_input(&mut c);
        self.flush(&mut c);
        if c.close_after_reply {
            self.outputs.push_back(Output::Close { conn });
        } else {
            self.clients.insert(conn, c);
        }
        true
    }

    /// Replies to a client that waited for the disk (SAVE and friends):
    /// +OK, or the error; then reads what it pipelined meanwhile.
    pub fn reply_to_waiting(&mut self, conn: ConnId, error: Option<&str>) {
        let Some(mut c) = self.clients.remove(&conn) else {
            return;
        };
        c.awaiting_disk = false;
        match error {
            Some(e) => {
                self.count_error(e);
                c.reply.error(e);
            }
            None => c.reply.ok(),
        }
        self.process_input(&mut c);
        self.flush(&mut c);
        if c.close_after_reply {
            self.outputs.push_back(Output::Close { conn });
        } else {
            self.clients.insert(conn, c);
        }
    }

    /// Number of clients waiting in blocking commands (INFO clients).
    pub fn blocked_clients(&self) -> usize {
        self.clients
            .values()
            .filter(|c| c.blocked.is_some())
            .count()
    }

    /// The connection of the client with this CLIENT ID, if connected.
    pub fn conn_of_client_id(&self, id: u64) -> Option<ConnId> {
        self.clients.values().find(|c| c.id == id).map(|c| c.conn)
    }

    /// Periodic work: Redis's `serverCron` at `hz`.
    fn cron(&mut self) {
        self.cron_loops += 1;
        self.ops_samples
            .push_back((self.now, self.stats.commands_processed));
        if self.ops_samples.len() > 16 {
            self.ops_samples.pop_front();
        }
        if self.active_expire_enabled {
            crate::expire::active_expire_cycle(self);
        }
        // Redis's activerehashing: a table being resized that nobody
        // writes to still finishes, a bounded number of buckets per tick.
        for db in &mut self.dbs {
            db.keys.rehash_steps(ACTIVE_REHASH_BUCKETS);
            db.expires.rehash_steps(ACTIVE_REHASH_BUCKETS);
        }
        self.clients_memory = crate::evict::recount_clients(self);
        self.used_memory_peak = self.used_memory_peak.max(self.used_memory_estimate());
        crate::evict::tick(self);
        crate::limits::cron(self);
    }

    /// Ends CLIENT PAUSE: postponed commands run, oldest client first, each
    /// followed by what that client pipelined behind it.
    pub fn unpause(&mut self) {
        self.pause = None;
        let mut waiting: Vec<(u64, ConnId)> = self
            .clients
            .values()
            .filter(|c| c.postponed.is_some())
            .map(|c| (c.id, c.conn))
            .collect();
        waiting.sort();
        for (_, conn) in waiting {
            let Some(mut c) = self.clients.remove(&conn) else {
                continue;
            };
            if let Some(argv) = c.postponed.take() {
                self.execute(&mut c, &argv);
                self.process_input(&mut c);
            }
            self.flush(&mut c);
            if c.close_after_reply {
                self.outputs.push_back(Output::Close { conn });
            } else {
                self.clients.insert(conn, c);
            }
        }
    }

    /// Commands per second over the recent samples (Redis averages 16).
    pub fn instantaneous_ops_per_sec(&self) -> u64 {
        let (Some(first), Some(last)) = (self.ops_samples.front(), self.ops_samples.back()) else {
            return 0;
        };
        let dt_us = last.0 .0.saturating_sub(first.0 .0);
        if dt_us == 0 {
            return 0;
        }
        (last.1 - first.1) * 1_000_000 / dt_us
    }

    /// CONFIG RESETSTAT.
    pub fn reset_stats(&mut self) {
        self.stats = Stats::default();
        self.ops_samples.clear();
        self.used_memory_peak = self.used_memory_estimate();
    }

    /// Closes another client (CLIENT KILL): its buffered reply is sent first.
    pub fn kill_client(&mut self, conn: ConnId) {
        if let Some(mut c) = self.clients.remove(&conn) {
            crate::evict::client_gone(self, &c);
            self.flush(&mut c);
            self.outputs.push_back(Output::Close { conn });
            // The driver's Closed will not find it: release what it holds.
            self.monitors.retain(|&m| m != conn);
            self.unblock(&mut c);
            self.unwatch_all(&mut c);
            crate::commands::pubsub::unsubscribe_everything(self, &mut c);
        }
    }

    /// A fresh hash-table seed (for FLUSHALL's new tables), derived from the
    /// node seed so runs stay reproducible.
    pub fn fresh_db(&mut self, index: usize) -> Db {
        Db::new([
            self.hash_seed[0].wrapping_add(index as u64),
            self.hash_seed[1],
        ])
    }

    /// Every client, the one executing included, in id order. Used by CLIENT
    /// LIST and friends.
    pub fn all_clients<'a>(&'a self, current: &'a Client) -> Vec<&'a Client> {
        let mut v: Vec<&Client> = self.clients.values().map(|b| &**b).collect();
        v.push(current);
        v.sort_by_key(|c| c.id);
        v
    }

    /// Seconds since start (uptime_in_seconds).
    pub fn uptime_s(&self) -> u64 {
        (self.now.0.saturating_sub(self.start_time.0)) / 1_000_000
    }
}
