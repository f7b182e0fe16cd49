//! The simulated world: nodes, their disks, clients, the network between
//! them, one virtual clock and one event queue, all driven by one RNG.
//!
//! # How a run goes
//!
//! [`World::new`] builds everything from a [`SimConfig`]; [`World::run`] pops
//! events in (time, sequence) order until the end of the run or the first
//! failure. The run has two phases, as TigerBeetle's VOPR does:
//!
//! 1. **safety** (`safety_us`): the nemesis injects the faults the config
//!    enables, and every reply is checked against the reference model;
//! 2. **liveness** (`liveness_us`): every fault is healed (partitions
//!    removed, paused nodes resumed, crashed nodes restarted, disks made
//!    well-behaved), client time-outs are switched off, and every request
//!    must complete within `liveness_bound_us`.
//!
//! # What the simulator knows that clients don't
//!
//! The node executes a request at the moment its last byte is handed to it
//! (the workload never blocks), so the world applies the request to the
//! reference model right after that `handle` call: the model sees commands in
//! exactly the node's execution order, whatever the network did. A request
//! whose connection broke is therefore still exact: either it was executed
//! (the model knows its effect) or it never reached the node.
//!
//! Determinism: no wall clock, no threads, no hash-map iteration; every
//! random choice comes from `rng` in event order. Every event writes one line
//! to the trace, whose hash names the run.

use crate::disk::{DiskFaults, SimDisk};
use crate::durability::{Durability, Persistence};
use crate::model::{check, expect_short, Cmd, Expect, KnownBug, Model};
use crate::resp::{encode_cmd, Decoder, Value};
use crate::rng::SimRng;
use crate::session::{Refusing, Sessions};
use crate::trace::Trace;
use crate::workload::Workload;
use bytes::Bytes;
use cinnabar_engine::disk::{DiskOp, DiskOpId};
use cinnabar_engine::{Config, ConnId, Input, Node, Output, Time};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt::Write as _;

/// Virtual CPU time of one slice of a long Lua script (10^6 instructions).
const SCRIPT_SLICE_US: u64 = 2_000;

/// Virtual time at which every run starts: 2023-11-14, so EXPIREAT and
/// friends see a plausible wall clock.
pub const START_US: u64 = 1_700_000_000_000_000;

/// How often (virtual time) a running node's AOF is replayed by a shadow
/// engine and compared with its dataset.
pub const RELOAD_CHECK_US: u64 = 1_000_000;

/// Network behaviour and faults.
#[derive(Debug, Clone)]
pub struct NetFaults {
    pub latency_us_min: u64,
    pub latency_us_max: u64,
    /// Probability that a send is split into several segments at random
    /// byte boundaries.
    pub split_p: f64,
    /// Nemesis weights (0 disables the fault).
    pub reset_w: u64,
    pub partition_w: u64,
    pub spike_w: u64,
    /// How long a partition or a spike lasts at most.
    pub fault_us_max: u64,
    pub spike_us_extra_max: u64,
}

/// Process faults.
#[derive(Debug, Clone)]
pub struct ProcFaults {
    /// Machine crash: the node is gone and its disk loses what was not
    /// durable.
    pub power_loss_w: u64,
    /// kill -9: the node is gone, the page cache survives.
    pub kill_w: u64,
    pub pause_w: u64,
    pub clock_jump_w: u64,
    pub restart_us_max: u64,
    pub pause_us_max: u64,
    pub clock_jump_us_max: u64,
}

/// Everything that defines a run besides the seed.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    pub clients: usize,
    pub safety_us: u64,
    pub liveness_us: u64,
    /// In the liveness phase every request must complete within this.
    pub liveness_bound_us: u64,
    pub net: NetFaults,
    pub proc: ProcFaults,
    pub disk: DiskFaults,
    pub workload: Workload,
    /// Mean pause between a client's batches.
    pub think_us_mean: u64,
    /// Requests per batch (pipelining), at most.
    pub pipeline_max: u64,
    /// Share of clients that speak RESP3 (HELLO 3).
    pub resp3_p: f64,
    /// A client gives up on a request after this (safety phase only) and
    /// reconnects, as client libraries do.
    pub client_timeout_us: u64,
    /// Mean time between nemesis actions.
    pub fault_interval_us_mean: u64,
    /// Engine parameters set by name, as a config file would.
    pub engine_params: Vec<(String, String)>,
    /// How the engine is configured to persist, for the durability checker.
    pub persistence: Persistence,
    /// Known engine bugs the model emulates (none by default).
    pub emulate: Vec<KnownBug>,
    /// The engine's BUGGIFY hooks are on (`cinnabar_engine::buggify`):
    /// input parsed in pieces, replies sent in pieces, spurious wake-ups,
    /// background work in tiny steps.
    pub buggify: bool,
    /// The engine's planted bugs switched on for this run (feature
    /// `planted-bugs`).
    #[cfg(feature = "planted-bugs")]
    pub planted: Vec<cinnabar_engine::aof::planted::Bug>,
}

impl SimConfig {
    /// A quiet world: one node, a few clients, no faults.
    pub fn quiet(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            nodes: 1,
            clients: 4,
            safety_us: 10_000_000,
            liveness_us: 5_000_000,
            liveness_bound_us: 3_000_000,
            net: NetFaults {
                latency_us_min: 20,
                latency_us_max: 500,
                split_p: 0.3,
                reset_w: 0,
                partition_w: 0,
                spike_w: 0,
                fault_us_max: 3_000_000,
                spike_us_extra_max: 200_000,
            },
            proc: ProcFaults {
                power_loss_w: 0,
                kill_w: 0,
                pause_w: 0,
                clock_jump_w: 0,
                restart_us_max: 1_000_000,
                pause_us_max: 2_000_000,
                clock_jump_us_max: 60_000_000,
            },
            disk: DiskFaults::none(),
            workload: Workload {
                keys: 6,
                members: 4,
                write_pct: 60,
                save_pm: 0,
                background_pm: 0,
                tx_pm: 100,
                script_pm: 100,
                block_pm: 100,
            },
            think_us_mean: 20_000,
            pipeline_max: 3,
            resp3_p: 0.3,
            client_timeout_us: 2_000_000,
            fault_interval_us_mean: 500_000,
            engine_params: vec![("save".into(), "".into())],
            persistence: Persistence::None,
            emulate: Vec::new(),
            buggify: false,
            #[cfg(feature = "planted-bugs")]
            planted: Vec::new(),
        }
    }

    pub fn emulates(&self, bug: KnownBug) -> bool {
        self.emulate.contains(&bug)
    }

    /// An empty model with the emulated bugs switched on.
    pub fn new_model(&self) -> Model {
        Model::default()
    }

    /// True if any fault can happen in the safety phase.
    pub fn any_faults(&self) -> bool {
        self.net.reset_w
            + self.net.partition_w
            + self.net.spike_w
            + self.proc.power_loss_w
            + self.proc.kill_w
            + self.proc.pause_w
            + self.proc.clock_jump_w
            > 0
    }
}

/// Why a run failed.
#[derive(Debug, Clone)]
pub struct Failure {
    pub at_us: u64,
    pub kind: &'static str,
    pub message: String,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub seed: u64,
    pub trace_hash: u64,
    pub trace_lines: u64,
    pub events: u64,
    pub sim_us: u64,
    pub ops_invoked: u64,
    pub ops_completed: u64,
    pub ops_checked: u64,
    pub crashes: u64,
    pub restarts: u64,
    pub resets: u64,
    pub partitions: u64,
    pub pauses: u64,
    pub clock_jumps: u64,
    pub disk_faults: u64,
    pub durability_checks: u64,
    /// Shadow reloads of a node's files compared with its dataset.
    pub reload_checks: u64,
    pub failure: Option<Failure>,
}

/// One end of a network link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    Node(usize),
    Client(usize),
}

/// A network partition: traffic from `from` to `to` is held (TCP keeps
/// retransmitting) until it heals; with `two_way` also back.
#[derive(Debug, Clone)]
pub struct Partition {
    pub from: BTreeSet<Endpoint>,
    pub to: BTreeSet<Endpoint>,
    pub two_way: bool,
}

#[derive(Debug, Clone)]
enum Event {
    ClientWake { client: usize },
    ConnectArrive { conn: u64 },
    ConnectAnswer { conn: u64, ok: bool },
    Deliver { conn: u64, to_node: bool },
    NodeClosed { conn: u64 },
    NodeTimer { node: usize, inc: u64 },
    DiskDone { node: usize, inc: u64 },
    Nemesis,
    Restart { node: usize },
    Resume { node: usize, pause: u64 },
    Heal { partition: u64 },
    SpikeEnd { spike: u64 },
    Liveness,
    End,
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    // Reversed: BinaryHeap is a max-heap, we want the earliest first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

enum Seg {
    Data(Bytes),
    Fin,
}

/// One direction of a connection: segments in flight, in order.
#[derive(Default)]
struct Stream {
    segs: VecDeque<(u64, Seg)>,
    last_ready: u64,
    /// When the pending Deliver event for this stream fires.
    kick: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Connecting,
    Open,
    Closed,
}

struct Conn {
    client: usize,
    node: usize,
    node_inc: u64,
    state: ConnState,
    /// The node has accepted it and not seen it closed.
    node_open: bool,
    to_node: Stream,
    to_client: Stream,
    /// Bytes sent towards the node and bytes handed to it.
    sent: u64,
    delivered: u64,
    /// Requests sent whose last byte has not reached the node:
    /// (end offset, history index).
    unexecuted: VecDeque<(u64, usize)>,
}

enum ClientState {
    Disconnected { retry_at: u64 },
    Connecting { conn: u64, since: u64 },
    Open { conn: u64 },
}

struct SimClient {
    node: usize,
    resp3: bool,
    state: ClientState,
    decoder: Decoder,
    /// History indices awaiting replies, in order.
    inflight: VecDeque<usize>,
    /// Earliest time to send the next batch.
    next_batch_at: u64,
    wake_at: Option<u64>,
    /// Batches still to send, one per round trip (a WATCH, then the
    /// transaction that depends on it).
    plan: VecDeque<Vec<Cmd>>,
}

struct SimNode {
    engine: Option<Box<Node>>,
    /// Incarnation: bumped at each crash so stale events are ignored.
    inc: u64,
    paused: Option<u64>,
    deferred: Vec<Event>,
    clock_offset_us: u64,
    timer_at: Option<u64>,
    disk: SimDisk,
    disk_queue: VecDeque<(DiskOpId, DiskOp, u64)>,
    config: Config,
    /// The reference model of its dataset; `None` while unknown (a restart
    /// that has not served a command yet).
    model: Option<Model>,
    /// Changes whenever the model is forgotten or learnt: predictions made
    /// in an older epoch are not checked.
    model_epoch: u64,

    down_since: Option<u64>,
    /// Set when the node stopped by itself (Output::Shutdown).
    stopped: bool,
    /// The node exited because its disk failed it: it may stay down, and
    /// its clients are exempt from the liveness check.
    excused: bool,
    /// `disk.stats.undetectable` at the last crash.
    undetectable_seen: u64,
    /// When the current pause began.
    paused_at: u64,
    /// Keys outside db 0 a load that was not checked brought in.
    foreign_keys: usize,
    /// Not before this time, the next check that the AOF replays to the
    /// dataset.
    next_reload_check: u64,
    /// The engine's AOF rewrite was running after its last input.
    rewriting: bool,
    /// Transactions, blocked clients and scripts, beside the model; reset
    /// with the node's memory.
    sessions: Sessions,
}

/// What the history knows of one request.
pub struct Op {
    pub client: usize,
    pub node: usize,
    pub cmd: Cmd,
    pub invoked_us: u64,
    /// Set when the node executed it, until its reply is checked: the
    /// model's prediction (if the model was known) and the model epoch it
    /// was made in.
    pub executed: Option<(Option<Expect>, u64)>,
    pub completed_us: Option<u64>,
    /// The connection broke before a reply.
    pub lost: bool,
    /// Its execution may have changed the dataset (a write, an EXEC or
    /// script with writes, a blocked pop once served).
    pub wrote: bool,
    /// A blocked request served by another one's effects: the history
    /// index whose durability state holds its effect.
    pub effect_of: Option<usize>,
}

pub struct World {
    pub cfg: SimConfig,
    pub now: u64,
    rng: SimRng,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    nodes: Vec<SimNode>,
    clients: Vec<SimClient>,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    partitions: BTreeMap<u64, Partition>,
    next_partition: u64,
    spikes: BTreeMap<u64, u64>,
    next_spike: u64,
    next_pause: u64,
    next_epoch: u64,
    pub history: Vec<Op>,
    pub trace: Trace,
    liveness: bool,
    liveness_start: u64,
    durability: Durability,
    report: Report,
    failure: Option<Failure>,
    line: String,
}

impl World {
    pub fn new(cfg: SimConfig) -> World {
        let mut rng = SimRng::new(cfg.seed);
        // Simulated clients connect from 10.0.1.x: without a password,
        // protected mode (on by default, as in Redis) would refuse them all.
        let mut engine_config = Config {
            protected_mode: false,
            ..Config::default()
        };
        // An engine without a parameter (persistence is being built) runs
        // without it, and then what it persists is not checked.
        let mut missing = Vec::new();
        for (k, v) in &cfg.engine_params {
            if let Err(e) = engine_config.set(k, v, true) {
                missing.push(format!("{k} {v:?}: {e:?}"));
            }
        }
        let nodes = (0..cfg.nodes)
            .map(|_| SimNode {
                engine: None,
                inc: 0,
                paused: None,
                deferred: Vec::new(),
                clock_offset_us: 0,
                timer_at: None,
                disk: SimDisk::new(cfg.disk.clone()),
                disk_queue: VecDeque::new(),
                config: engine_config.clone(),
                model: Some(cfg.new_model()),
                model_epoch: 0,

                down_since: None,
                stopped: false,
                excused: false,
                undetectable_seen: 0,
                paused_at: 0,
                foreign_keys: 0,
                next_reload_check: 0,
                rewriting: false,
                sessions: Sessions::default(),
            })
            .collect();
        let clients = (0..cfg.clients)
            .map(|i| SimClient {
                node: i % cfg.nodes.max(1),
                resp3: rng.chance(cfg.resp3_p),
                state: ClientState::Disconnected { retry_at: START_US },
                decoder: Decoder::new(),
                inflight: VecDeque::new(),
                next_batch_at: START_US,
                wake_at: None,
                plan: VecDeque::new(),
            })
            .collect();
        let mut durability = Durability::new(cfg.persistence, cfg.nodes);
        durability.disabled = !missing.is_empty();
        let mut w = World {
            now: START_US,
            rng,
            queue: BinaryHeap::new(),
            seq: 0,
            nodes,
            clients,
            conns: BTreeMap::new(),
            next_conn: 1,
            partitions: BTreeMap::new(),
            next_partition: 1,
            spikes: BTreeMap::new(),
            next_spike: 1,
            next_pause: 1,
            next_epoch: 0,
            history: Vec::new(),
            trace: Trace::new(false),
            liveness: false,
            liveness_start: u64::MAX,
            durability,
            report: Report {
                seed: cfg.seed,
                ..Report::default()
            },
            failure: None,
            line: String::new(),
            cfg,
        };
        w.report.seed = w.cfg.seed;
        for m in missing {
            w.fail("sim", format!("the engine refused parameter {m}"));
        }
        w
    }

    /// Prints every trace line as it happens.
    pub fn set_verbose(&mut self, verbose: bool) {
        self.trace = Trace::new(verbose);
    }

    fn schedule(&mut self, at: u64, event: Event) {
        let at = at.max(self.now);
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            event,
        });
    }

    fn log(&mut self, args: std::fmt::Arguments<'_>) {
        self.trace.line_fmt(self.now - START_US, args);
    }

    /// As [`World::log`], with a readable `detail` printed with `--trace`
    /// but neither built nor hashed otherwise (what it shows is hashed in
    /// another form, or follows from what is).
    fn log_detail(&mut self, args: std::fmt::Arguments<'_>, detail: impl FnOnce() -> String) {
        self.line.clear();
        let _ = write!(self.line, "{} ", self.now - START_US);
        let _ = self.line.write_fmt(args);
        self.trace.hash_line(&self.line);
        if self.trace.verbose() {
            let d = detail();
            tracing::info!(target: "sim", "{} {d}", self.line);
        }
    }

    fn fail(&mut self, kind: &'static str, message: String) {
        if self.failure.is_none() {
            self.log(format_args!("FAIL {kind}: {message}"));
            self.failure = Some(Failure {
                at_us: self.now - START_US,
                kind,
                message,
            });
        }
    }

    /// Runs to the end (or the first failure) and reports.
    pub fn run(mut self) -> Report {
        let start = self.now;
        let summary = format!(
            "config: {} nodes, {} clients, persistence {:?}, engine {:?}, disk {:?}",
            self.cfg.nodes,
            self.cfg.clients,
            self.cfg.persistence,
            self.cfg.engine_params,
            self.cfg.disk
        );
        self.log(format_args!("{summary}"));
        // The hooks draw from their own per-thread stream, seeded from the
        // run's seed: a run stays a function of its seed.
        cinnabar_engine::buggify::set(self.cfg.buggify.then_some(self.cfg.seed ^ 0x4255_4747));
        if self.cfg.buggify {
            self.log(format_args!("buggify on"));
        }
        #[cfg(feature = "planted-bugs")]
        {
            cinnabar_engine::aof::planted::set(&self.cfg.planted);
            let names: Vec<&str> = self.cfg.planted.iter().map(|b| b.name()).collect();
            self.log(format_args!("planted bugs: {names:?}"));
        }
        for n in 0..self.nodes.len() {
            self.start_node(n);
        }
        for c in 0..self.clients.len() {
            let at = start + self.rng.range(0, 10_000);
            self.wake_client_at(c, at);
        }
        if self.cfg.any_faults() {
            let d = self.rng.exp_us(self.cfg.fault_interval_us_mean);
            self.schedule(start + d, Event::Nemesis);
        }
        self.schedule(start + self.cfg.safety_us, Event::Liveness);
        self.schedule(
            start + self.cfg.safety_us + self.cfg.liveness_us,
            Event::End,
        );
        while let Some(s) = self.queue.pop() {
            self.now = s.at;
            self.report.events += 1;
            if matches!(s.event, Event::End) {
                self.finish();
                break;
            }
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.handle(s.event);
            }));
            if let Err(p) = step {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "non-string panic".into());
                self.fail("panic", msg);
            }
            if self.failure.is_some() {
                break;
            }
        }
        #[cfg(feature = "planted-bugs")]
        cinnabar_engine::aof::planted::set(&[]);
        cinnabar_engine::buggify::set(None);
        self.report.sim_us = self.now - start;
        self.report.trace_hash = self.trace.hash();
        self.report.trace_lines = self.trace.lines();
        self.report.ops_invoked = self.history.len() as u64;
        self.report.ops_completed = self
            .history
            .iter()
            .filter(|o| o.completed_us.is_some())
            .count() as u64;
        self.report.durability_checks = self.durability.checks;
        self.report.disk_faults = self
            .nodes
            .iter()
            .map(|n| {
                let s = &n.disk.stats;
                s.fsync_eio + s.enospc + s.short_writes + s.corruptions + s.read_eio + s.misdirected
            })
            .sum();
        self.report.failure = self.failure.take();
        self.report
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::ClientWake { client } => {
                if self.clients[client].wake_at == Some(self.now) {
                    self.clients[client].wake_at = None;
                    self.client_poll(client);
                }
            }
            Event::ConnectArrive { conn } => self.connect_arrive(conn),
            Event::ConnectAnswer { conn, ok } => self.connect_answer(conn, ok),
            Event::Deliver { conn, to_node } => self.deliver(conn, to_node),
            Event::NodeClosed { conn } => self.node_closed(conn),
            Event::NodeTimer { node, inc } => {
                let n = &self.nodes[node];
                if n.inc != inc || n.engine.is_none() || n.timer_at != Some(self.now) {
                    return;
                }
                if n.paused.is_some() {
                    self.nodes[node].deferred.push(event);
                    return;
                }
                self.nodes[node].timer_at = None;
                self.node_input(node, Input::Tick);
                self.check_blocked(node, true);
            }
            Event::DiskDone { node, inc } => {
                if self.nodes[node].inc != inc || self.nodes[node].engine.is_none() {
                    return;
                }
                if self.nodes[node].paused.is_some() {
                    self.nodes[node].deferred.push(event);
                    return;
                }
                self.disk_done(node);
            }
            Event::Nemesis => {
                if !self.liveness {
                    self.nemesis();
                    let d = self.rng.exp_us(self.cfg.fault_interval_us_mean);
                    self.schedule(self.now + d, Event::Nemesis);
                }
            }
            Event::Restart { node } => {
                if self.nodes[node].engine.is_none() {
                    self.start_node(node);
                }
            }
            Event::Resume { node, pause } => {
                if self.nodes[node].paused == Some(pause) {
                    self.resume(node);
                }
            }
            Event::Heal { partition } => {
                if self.partitions.remove(&partition).is_some() {
                    self.log(format_args!("heal partition p{partition}"));
                    self.kick_all();
                }
            }
            Event::SpikeEnd { spike } => {
                self.spikes.remove(&spike);
            }
            Event::Liveness => self.start_liveness(),
            Event::End => {}
        }
    }

    // ----- nodes -----

    fn new_epoch(&mut self, n: usize) {
        self.next_epoch += 1;
        self.nodes[n].model_epoch = self.next_epoch;
    }

    /// Virtual time in milliseconds (the world's clock, which never jumps).
    fn world_ms(&self) -> i64 {
        (self.now / 1000) as i64
    }

    fn node_now(&self, n: usize) -> Time {
        Time(self.now + self.nodes[n].clock_offset_us)
    }

    fn start_node(&mut self, n: usize) {
        let seed = self.rng.next_u64();
        let node = &mut self.nodes[n];
        node.inc += 1;
        node.down_since = None;
        node.stopped = false;
        node.paused = None;
        node.deferred.clear();
        node.timer_at = None;
        node.disk_queue.clear();
        node.rewriting = false;
        node.sessions = Sessions::default();
        let mut engine = Box::new(Node::new(node.config.clone(), seed));
        let now = Time(self.now + node.clock_offset_us);
        engine.start(now);
        node.engine = Some(engine);
        let inc = node.inc;
        if inc > 1 {
            self.report.restarts += 1;
            // What it loads is learnt when it serves its first command.
            self.nodes[n].model = None;
            self.new_epoch(n);
        }
        self.log(format_args!("n{n} start inc={inc} seed={seed}"));
        self.drain_node(n);
    }

    /// Feeds one input to a node and processes what it asks for.
    fn node_input(&mut self, n: usize, input: Input<'_>) {
        let now = self.node_now(n);
        let Some(engine) = self.nodes[n].engine.as_mut() else {
            return;
        };
        engine.handle(now, input);
        self.drain_node(n);
    }

    fn drain_node(&mut self, n: usize) {
        loop {
            let Some(engine) = self.nodes[n].engine.as_mut() else {
                return;
            };
            let Some(out) = engine.poll_output() else {
                break;
            };
            match out {
                Output::Send { conn, data } => {
                    let Some(c) = self.conns.get(&conn.0) else {
                        continue;
                    };
                    if c.node != n || c.node_inc != self.nodes[n].inc || !c.node_open {
                        continue;
                    }
                    self.send(conn.0, false, data);
                }
                Output::Close { conn } => {
                    if let Some(c) = self.conns.get_mut(&conn.0) {
                        if c.node == n && c.node_open {
                            c.node_open = false;
                            self.push_seg(conn.0, false, Seg::Fin);
                        }
                    }
                    self.log(format_args!("n{n} close conn{}", conn.0));
                }
                Output::Sleep { micros } => {
                    self.log(format_args!("n{n} sleep {micros}us"));
                    self.pause(n, micros);
                }
                Output::Shutdown => {
                    self.log(format_args!("n{n} shutdown"));
                    self.nodes[n].stopped = true;
                    self.take_down(n, false);
                    return;
                }
                Output::Disk { id, op } => self.disk_issue(n, id, op),
                // Lazy free: the simulator drops it at once.
                Output::Free(_) => {}
                Output::Fatal { message } => {
                    self.log(format_args!("n{n} fatal: {message}"));
                    self.node_fatal(n, message);
                    return;
                }
            }
        }
        // The next tick.
        let Some(engine) = self.nodes[n].engine.as_ref() else {
            return;
        };
        if engine.aof.write_error.is_some() {
            let world_ms = self.world_ms();
            self.durability.aof_trouble(n, world_ms);
        }
        self.maybe_check_aof_files(n);
        let Some(engine) = self.nodes[n].engine.as_ref() else {
            return;
        };
        if let Some(t) = engine.poll_timeout() {
            let mut at =
                t.0.saturating_sub(self.nodes[n].clock_offset_us)
                    .max(self.now);
            if engine.running_script.is_some() {
                // A long script asks for its next slice "now"; the slice it
                // just ran took CPU time, which virtual time must show or
                // the script would never reach busy-reply-threshold.
                at = at.max(self.now + SCRIPT_SLICE_US);
            }
            if self.nodes[n].timer_at != Some(at) {
                self.nodes[n].timer_at = Some(at);
                let inc = self.nodes[n].inc;
                self.schedule(at, Event::NodeTimer { node: n, inc });
            }
        }
    }

    fn disk_issue(&mut self, n: usize, id: DiskOpId, op: DiskOp) {
        let lat = self.nodes[n].disk.latency_us(&op, &mut self.rng);
        let tail = self.nodes[n].disk_queue.back().map_or(0, |e| e.2);
        let done_at = tail.max(self.now + lat);
        let (kind, size, path) = op_digest(&op);
        let now = self.now - START_US;
        self.trace.event(
            now,
            "disk issue",
            &[n as u64, id.0, kind, size],
            path,
            || format!("n{n} disk issue #{} {}", id.0, OpShort(&op)),
        );
        let was_empty = self.nodes[n].disk_queue.is_empty();
        self.nodes[n].disk_queue.push_back((id, op, done_at));
        if was_empty {
            let inc = self.nodes[n].inc;
            self.schedule(done_at, Event::DiskDone { node: n, inc });
        }
    }

    fn disk_done(&mut self, n: usize) {
        let Some((id, op, _)) = self.nodes[n].disk_queue.pop_front() else {
            return;
        };
        let node = &mut self.nodes[n];
        let result = node.disk.perform(&op, &mut self.rng);
        let (kind, size, path) = op_digest(&op);
        let res = result_digest(&result);
        let now = self.now - START_US;
        self.trace.event(
            now,
            "disk done",
            &[n as u64, id.0, kind, size, res],
            path,
            || {
                format!(
                    "n{n} disk done #{} {} -> {}",
                    id.0,
                    OpShort(&op),
                    ResultShort(&result)
                )
            },
        );
        if let Err(e) = &result {
            // Which error, for the hash (rare: formatting is fine).
            self.trace.bytes(e.to_string().as_bytes());
        }
        self.durability
            .disk_done(n, &op, &result, &self.nodes[n].disk);
        if let Some(&(_, _, at)) = self.nodes[n].disk_queue.front() {
            let inc = self.nodes[n].inc;
            self.schedule(at, Event::DiskDone { node: n, inc });
        }
        // The reaction to a failed AOF fsync: under `always` stop (nothing
        // unsynced may be acknowledged; the durability checker sees the
        // loss at the next power cut), under `everysec` refuse writes.
        let aof_fsync_failed =
            matches!(&op, DiskOp::Fsync { path } if path.ends_with(".aof")) && result.is_err();
        let inc = self.nodes[n].inc;
        self.node_input(n, Input::DiskDone { id, result });
        if aof_fsync_failed {
            let engine = self.nodes[n]
                .engine
                .as_ref()
                .filter(|_| self.nodes[n].inc == inc);
            match self.cfg.persistence {
                Persistence::AofAlways if engine.is_some() => self.fail(
                    "durability",
                    format!("n{n}: an AOF fsync failed under appendfsync always and the node went on"),
                ),
                Persistence::AofEverysec
                    if engine.is_some_and(|e| cinnabar_engine::aof::write_error(e).is_none()) =>
                {
                    self.fail(
                        "durability",
                        format!("n{n}: an AOF fsync failed under appendfsync everysec and writes are not refused"),
                    )
                }
                _ => {}
            }
        }
    }

    /// The node process is gone (crash or its own shutdown): its
    /// connections reset, its timers and disk queue vanish.
    fn take_down(&mut self, n: usize, power_loss: bool) {
        if self.nodes[n].paused.is_some() {
            let (from, to) = ((self.nodes[n].paused_at / 1000) as i64, self.world_ms());
            self.durability.paused(n, from, to);
        }
        let node = &mut self.nodes[n];
        node.engine = None;
        node.inc += 1;
        node.paused = None;
        node.deferred.clear();
        node.timer_at = None;
        node.disk_queue.clear();
        node.down_since = Some(self.now);
        node.model = None;
        node.sessions = Sessions::default();
        if power_loss {
            node.disk.crash(&mut self.rng);
            // Damage no checksum can reveal (see disk::checksummed): the
            // node may load anything, so the load is not checked.
            let undetectable = node.disk.stats.undetectable;
            if undetectable > node.undetectable_seen {
                node.undetectable_seen = undetectable;
                self.durability.unknown_write(n);
                self.log(format_args!(
                    "n{n} disk damaged where no checksum covers it: next load not checked"
                ));
            }
        }
        self.new_epoch(n);
        let conns: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.node == n && c.state != ConnState::Closed)
            .map(|(&id, _)| id)
            .collect();
        for id in conns {
            if let Some(c) = self.conns.get_mut(&id) {
                c.node_open = false;
            }
            self.reset_conn(id, "node down");
        }
        let world_ms = self.world_ms();
        self.durability
            .crashed(n, world_ms, power_loss, &self.history);
        let restart = self
            .rng
            .range(1_000, self.cfg.proc.restart_us_max.max(1_000));
        self.schedule(self.now + restart, Event::Restart { node: n });
    }

    /// The node exited on its own (Output::Fatal). That is the right
    /// reaction to unreadable or lost data (corruption, EIO, ENOSPC) and
    /// such a node may legitimately stay down; without such a disk fault it
    /// is a failure.
    fn node_fatal(&mut self, n: usize, message: String) {
        let s = &self.nodes[n].disk.stats;
        let loading = self.nodes[n]
            .engine
            .as_ref()
            .is_some_and(|e| e.persist.loading);
        // Redis exits on these too: at start-up, data it cannot read
        // (corruption, EIO, sectors lost by a failed fsync, a torn file it
        // cannot parse); running, an AOF write or fsync that failed under
        // `appendfsync always`. Anything else is a failure: under
        // `everysec` a failed write is retried (a short one cut off first)
        // and writes are refused meanwhile.
        let excused = if loading {
            // A torn crash that left only a clean prefix is a torn tail,
            // repaired by truncation; it explains a refusal only in a file
            // that is not the last one (Redis refuses that too).
            s.corruptions
                + s.misdirected
                + s.read_eio
                + s.fsync_eio
                + s.enospc
                + s.short_writes
                + s.torn_holes
                > 0
                || (s.torn_sectors > 0 && message.contains("Unexpected end of file"))
        } else {
            // Running: an AOF write or fsync error under always, or a new
            // AOF manifest that could not be made durable.
            s.fsync_eio + s.enospc + s.short_writes > 0
                && (self.cfg.persistence == Persistence::AofAlways
                    || message.contains("AOF manifest"))
        };
        if !excused {
            self.fail(
                "fatal",
                format!(
                    "n{n} exited {} without a disk fault that explains it: {message}",
                    if loading { "loading" } else { "running" }
                ),
            );
            return;
        }
        self.nodes[n].excused = true;
        self.take_down(n, false);
    }

    fn pause(&mut self, n: usize, us: u64) {
        if self.nodes[n].engine.is_none() {
            return;
        }
        let id = self.next_pause;
        self.next_pause += 1;
        if self.nodes[n].paused.is_none() {
            self.nodes[n].paused_at = self.now;
        }
        self.nodes[n].paused = Some(id);
        self.report.pauses += 1;
        self.schedule(self.now + us, Event::Resume { node: n, pause: id });
    }

    fn resume(&mut self, n: usize) {
        if self.nodes[n].paused.is_some() {
            let (from, to) = ((self.nodes[n].paused_at / 1000) as i64, self.world_ms());
            self.durability.paused(n, from, to);
        }
        self.nodes[n].paused = None;
        self.log(format_args!("n{n} resume"));
        let deferred = std::mem::take(&mut self.nodes[n].deferred);
        for e in deferred {
            // Timers and completions are re-checked when they fire.
            if let Event::NodeTimer { .. } = e {
                self.nodes[n].timer_at = Some(self.now);
            }
            self.schedule(self.now, e);
        }
        let conns: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.node == n)
            .map(|(&id, _)| id)
            .collect();
        for id in conns {
            self.ensure_kick(id, true, self.now);
        }
    }

    // ----- network -----

    fn link_up(&self, from: Endpoint, to: Endpoint) -> bool {
        !self.partitions.values().any(|p| {
            (p.from.contains(&from) && p.to.contains(&to))
                || (p.two_way && p.from.contains(&to) && p.to.contains(&from))
        })
    }

    fn latency(&mut self) -> u64 {
        let net = &self.cfg.net;
        let mut us = self.rng.range(net.latency_us_min, net.latency_us_max);
        if let Some(&extra) = self.spikes.values().max() {
            us += self.rng.range(0, extra);
        }
        us
    }

    /// Sends bytes on a connection, split at random byte boundaries.
    fn send(&mut self, conn: u64, to_node: bool, data: Bytes) {
        let mut rest = data;
        while !rest.is_empty() {
            let cut = if rest.len() > 1 && self.rng.chance(self.cfg.net.split_p) {
                self.rng.range(1, rest.len() as u64 - 1) as usize
            } else {
                rest.len()
            };
            let seg = rest.split_to(cut);
            self.push_seg(conn, to_node, Seg::Data(seg));
        }
    }

    fn push_seg(&mut self, conn: u64, to_node: bool, seg: Seg) {
        let lat = self.latency();
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let s = if to_node {
            &mut c.to_node
        } else {
            &mut c.to_client
        };
        let ready = s.last_ready.max(now + lat);
        s.last_ready = ready;
        s.segs.push_back((ready, seg));
        self.ensure_kick(conn, to_node, ready);
    }

    /// Makes sure a Deliver event fires for the stream's head no later than
    /// `at`.
    fn ensure_kick(&mut self, conn: u64, to_node: bool, at: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let s = if to_node {
            &mut c.to_node
        } else {
            &mut c.to_client
        };
        let Some(&(head, _)) = s.segs.front() else {
            return;
        };
        let at = at.max(head);
        if s.kick.is_some_and(|k| k <= at) {
            return;
        }
        s.kick = Some(at);
        self.schedule(at, Event::Deliver { conn, to_node });
    }

    fn kick_all(&mut self) {
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            self.ensure_kick(id, true, self.now);
            self.ensure_kick(id, false, self.now);
        }
    }

    fn deliver(&mut self, conn: u64, to_node: bool) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let s = if to_node {
            &mut c.to_node
        } else {
            &mut c.to_client
        };
        if s.kick != Some(now) {
            return;
        }
        s.kick = None;
        let (client, node) = (c.client, c.node);
        let (from, to) = if to_node {
            (Endpoint::Client(client), Endpoint::Node(node))
        } else {
            (Endpoint::Node(node), Endpoint::Client(client))
        };
        if !self.link_up(from, to) {
            return; // Held until the partition heals.
        }
        if to_node && self.nodes[node].paused.is_some() {
            return; // Kicked again on resume.
        }
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let s = if to_node {
                &mut c.to_node
            } else {
                &mut c.to_client
            };
            match s.segs.front() {
                Some(&(ready, _)) if ready <= now => {}
                Some(&(ready, _)) => {
                    self.ensure_kick(conn, to_node, ready);
                    return;
                }
                None => return,
            }
            let (_, seg) = s.segs.pop_front().expect("front exists");
            if to_node {
                self.deliver_to_node(conn, seg);
            } else {
                self.deliver_to_client(conn, seg);
            }
            if self.failure.is_some() {
                return;
            }
        }
    }

    fn deliver_to_node(&mut self, conn: u64, seg: Seg) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let n = c.node;
        if !c.node_open || c.node_inc != self.nodes[n].inc {
            return;
        }
        match seg {
            Seg::Fin => {
                self.conns.get_mut(&conn).expect("exists").node_open = false;
                self.node_input(n, Input::Closed { conn: ConnId(conn) });
                self.nodes[n].sessions.closed(conn);
            }
            Seg::Data(data) => {
                let len = data.len() as u64;
                let now = self.now - START_US;
                self.trace
                    .event(now, "recv", &[n as u64, conn, len], b"", || {
                        format!("n{n} recv conn{conn} {len}B")
                    });
                // The requests this input completes run now, in order; the
                // engine's state before the input says which it refuses.
                let c = self.conns.get_mut(&conn).expect("exists");
                c.delivered += len;
                let mut ran = Vec::new();
                while let Some(&(end, idx)) = c.unexecuted.front() {
                    if end > c.delivered {
                        break;
                    }
                    c.unexecuted.pop_front();
                    ran.push(idx);
                }
                let engine = self.nodes[n].engine.as_ref().expect("node up");
                let refusing = crate::engine_state::capture(engine);
                // A restarted node's dataset is learnt just before the first
                // command it runs.
                let learn = self.nodes[n].model.is_none()
                    && !engine.persist.loading
                    && ran.iter().any(|&i| {
                        let cmd = &self.history[i].cmd;
                        !matches!(cmd, Cmd::Hello3)
                            && crate::engine_state::refusal(refusing, cmd, false).is_none()
                    });
                if learn {
                    self.learn_dataset(n);
                }
                self.node_input(
                    n,
                    Input::Received {
                        conn: ConnId(conn),
                        data: &data,
                    },
                );
                for idx in ran {
                    self.executed(n, conn, idx, refusing);
                }
                self.check_blocked(n, false);
            }
        }
    }

    /// Reads a restarted node's dataset into the model, after checking it
    /// against what the history allows.
    fn learn_dataset(&mut self, n: usize) {
        let now_ms = self.node_now(n).as_millis();
        let engine = self.nodes[n].engine.as_ref().expect("node up");
        let loaded = crate::snapshot::model_of(engine, now_ms);
        let extra = crate::snapshot::keys_outside_db0(engine);
        self.log(format_args!(
            "n{n} model synced: {} keys loaded",
            loaded.keys.len()
        ));
        self.check_reload(n, &loaded, "after its restart");
        if !self.durability.will_check(n) {
            // Damage no checksum covers may have put keys anywhere (a flip
            // in a SELECT); they stay until the disk forgets them.
            self.nodes[n].foreign_keys = self.nodes[n].foreign_keys.max(extra);
        } else if extra > self.nodes[n].foreign_keys {
            self.fail(
                "durability",
                format!("n{n} loaded {extra} keys outside db 0, which the workload never writes"),
            );
        }
        let world_ms = self.world_ms();
        if let Err(e) = self.durability.loaded(n, &loaded, now_ms, world_ms) {
            self.fail("durability", e);
        }
        self.nodes[n].model = Some(loaded);
        self.new_epoch(n);
    }

    /// The recovery invariant (see [`crate::reload`]): the node's files,
    /// with the operations it queued, load back to `dataset`.
    fn check_reload(&mut self, n: usize, dataset: &Model, when: &str) {
        let node = &self.nodes[n];
        let pending: Vec<DiskOp> = node.disk_queue.iter().map(|e| e.1.clone()).collect();
        let now = self.node_now(n);
        self.report.reload_checks += 1;
        let why = match crate::reload::reload(&node.config, &node.disk, &pending, now) {
            Ok(m) if m.keys == dataset.keys => return,
            Ok(m) => {
                let d = crate::durability::differences(dataset, &m);
                format!("they load to a different dataset: {}", d.join("; "))
            }
            Err(e) => format!("they do not load: {e}"),
        };
        self.fail("durability", format!("n{n}'s own files {when}: {why}"));
    }

    /// With an AOF, its files (with the operations queued) must replay to
    /// the node's dataset: whenever its disk queue is empty (at most every
    /// `RELOAD_CHECK_US`), and whenever a rewrite has just begun.
    fn maybe_check_aof_files(&mut self, n: usize) {
        let Some(engine) = self.nodes[n].engine.as_ref() else {
            return;
        };
        let rewriting = engine.aof.rewrite_in_progress;
        let quiet = cinnabar_engine::aof::buffered(engine) == 0
            && engine.aof.enabled
            && !engine.persist.loading
            && engine.aof.write_error.is_none();
        let node = &mut self.nodes[n];
        let rewrite_began = rewriting && !node.rewriting;
        node.rewriting = rewriting;
        let due = node.disk_queue.is_empty() && self.now >= node.next_reload_check;
        if !(due || rewrite_began) || !quiet || node.model.is_none() {
            return;
        }
        node.next_reload_check = self.now + RELOAD_CHECK_US;
        let now_ms = self.node_now(n).as_millis();
        let engine = self.nodes[n].engine.as_ref().expect("node up");
        let dataset = crate::snapshot::model_of(engine, now_ms);
        self.check_reload(n, &dataset, "while it runs");
    }

    /// The node ran request `idx` of connection `conn` just now (or
    /// refused it, as `refusing` says): step the model and note its
    /// prediction, and the predictions for the blocked requests it served.
    /// A SAVE's durability point is the state now: everything executed
    /// before it.
    fn executed(&mut self, n: usize, conn: u64, idx: usize, refusing: Refusing) {
        let now = self.node_now(n);
        let epoch = self.nodes[n].model_epoch;
        // Taken out for the step (no clone), put back after.
        let cmd = std::mem::replace(&mut self.history[idx].cmd, Cmd::Ping);
        let node = &mut self.nodes[n];
        let step = node
            .sessions
            .step(node.model.as_mut(), conn, idx, &cmd, now.0, refusing);
        if step.resync {
            // An EXEC whose WATCH or MULTI the model could not follow.
            let now_ms = now.as_millis();
            if let Some(engine) = self.nodes[n].engine.as_ref() {
                let m = crate::snapshot::model_of(engine, now_ms);
                self.nodes[n].model = Some(m);
                self.log(format_args!("n{n} model read back after #{idx}"));
            }
        }
        let refused = matches!(step.reply, Some(Expect::Refused(_)));
        if step.wrote && !refused {
            match &self.nodes[n].model {
                Some(m) => {
                    let world_ms = self.world_ms();
                    for b in &step.before_served {
                        self.durability.write_executed(n, idx, b, world_ms);
                    }
                    self.durability.write_executed(n, idx, m, world_ms)
                }
                None => self.durability.unknown_write(n),
            }
        }
        let blocked = step.blocked;
        if blocked {
            let now = self.now - START_US;
            self.trace
                .event(now, "ran blocked", &[n as u64, idx as u64], b"", || {
                    format!("n{n} ran #{idx} -> blocked")
                });
        } else {
            let now = self.now - START_US;
            let reply = &step.reply;
            self.trace
                .event(now, "ran", &[n as u64, idx as u64], b"", || {
                    format!(
                        "n{n} ran #{idx} -> {}",
                        reply.as_ref().map_or("?".into(), expect_short)
                    )
                });
        }
        let op = &mut self.history[idx];
        op.cmd = cmd;
        op.wrote = step.wrote && !refused;
        if !blocked {
            op.executed = Some((step.reply, epoch));
        }
        for (c, sidx, expect) in step.served {
            let still = self.nodes[n]
                .engine
                .as_ref()
                .is_some_and(|e| crate::engine_state::blocked(e, c));
            if still {
                let line = self.history[sidx].cmd.line();
                self.fail(
                    "model",
                    format!("#{idx} served #{sidx} `{line}` (conn{c}) in the model; the node still blocks it"),
                );
            }
            self.log_detail(
                format_args!("n{n} served #{sidx} on conn{c} by #{idx} ->"),
                || expect_short(&expect),
            );
            let op = &mut self.history[sidx];
            op.executed = Some((Some(expect), epoch));
            op.wrote = true;
            op.effect_of = Some(idx);
        }
    }

    /// The model's blocked clients must be the node's: after a tick the
    /// ones the node let go timed out (not before their deadline); after
    /// any other input none may have left without the model serving it.
    fn check_blocked(&mut self, n: usize, tick: bool) {
        if self.nodes[n].sessions.blocked().is_empty() {
            return;
        }
        let Some(engine) = self.nodes[n].engine.as_ref() else {
            return;
        };
        let gone: Vec<u64> = self.nodes[n]
            .sessions
            .blocked()
            .iter()
            .copied()
            .filter(|&c| !crate::engine_state::blocked(engine, c))
            .collect();
        let now = self.node_now(n).0;
        let epoch = self.nodes[n].model_epoch;
        for conn in gone {
            let Some(w) = self.nodes[n].sessions.timed_out(conn) else {
                continue;
            };
            let line = self.history[w.idx].cmd.line();
            if !tick {
                let msg = format!(
                    "n{n} ended #{} `{line}` (conn{conn}) without the model serving it",
                    w.idx
                );
                self.fail("model", msg);
                return;
            }
            if now < w.deadline_us {
                let msg = format!(
                    "n{n} timed #{} `{line}` out {}us before its deadline",
                    w.idx,
                    w.deadline_us - now
                );
                self.fail("model", msg);
                return;
            }
            self.log(format_args!("n{n} timed out #{}", w.idx));
            self.history[w.idx].executed = Some((Some(Expect::NilArray), epoch));
        }
    }

    fn deliver_to_client(&mut self, conn: u64, seg: Seg) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let cl = c.client;
        if c.state != ConnState::Open {
            return;
        }
        match seg {
            Seg::Fin => {
                self.log(format_args!("c{cl} conn{conn} closed by server"));
                self.reset_conn(conn, "closed by server");
            }
            Seg::Data(data) => {
                self.trace.bytes(&data);
                self.clients[cl].decoder.feed(&data);
                loop {
                    match self.clients[cl].decoder.next_value() {
                        Ok(Some(Value::Push(_))) => {}
                        Ok(Some(v)) => self.reply(cl, v),
                        Ok(None) => break,
                        Err(e) => {
                            self.fail("protocol", format!("c{cl} conn{conn}: {e}"));
                            return;
                        }
                    }
                    if self.failure.is_some() {
                        return;
                    }
                }
                if self.clients[cl].inflight.is_empty() {
                    self.client_poll(cl);
                }
            }
        }
    }

    fn reply(&mut self, cl: usize, v: Value) {
        let Some(idx) = self.clients[cl].inflight.pop_front() else {
            self.fail(
                "protocol",
                format!("c{cl}: reply with no request: {}", v.short()),
            );
            return;
        };
        let now = self.now - START_US;
        self.trace
            .event(now, "reply", &[cl as u64, idx as u64], b"", || {
                format!("c{cl} reply #{idx} {}", v.short())
            });
        let node = self.history[idx].node;
        self.history[idx].completed_us = Some(self.now);
        // Taken: the prediction is checked once (and not kept for the rest
        // of the run).
        let Some((expect, inc)) = self.history[idx].executed.take() else {
            let line = self.history[idx].cmd.line();
            self.fail(
                "sim",
                format!("c{cl} got a reply to #{idx} `{line}` before the node ran it"),
            );
            return;
        };
        if let Some(expect) = expect {
            if inc == self.nodes[node].model_epoch || matches!(expect, Expect::Refused(_)) {
                self.report.ops_checked += 1;
                if let Err(e) = check(&expect, &v) {
                    let line = self.history[idx].cmd.line();
                    self.fail("model", format!("#{idx} c{cl} `{line}`: {e}"));
                }
            }
        }
        let op = &self.history[idx];
        if op.wrote && !matches!(v, Value::Error(_)) {
            let at = op.effect_of.unwrap_or(idx);
            self.durability.acked(node, at, &self.history[idx].cmd);
        }
    }

    /// Tears down a connection from both sides (a reset, or the node died).
    fn reset_conn(&mut self, conn: u64, why: &str) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.state == ConnState::Closed {
            return;
        }
        c.state = ConnState::Closed;
        c.to_client.segs.clear();
        c.to_node.segs.clear();
        c.unexecuted.clear();
        let (cl, node_open) = (c.client, c.node_open);
        self.log(format_args!("conn{conn} reset ({why})"));
        if node_open {
            // The RST reaches the node after the usual delay; the node may
            // still run and answer what it already received.
            let lat = self.latency();
            self.schedule(self.now + lat, Event::NodeClosed { conn });
        } else {
            self.conns.remove(&conn);
        }
        let client = &mut self.clients[cl];
        let mine = match client.state {
            ClientState::Open { conn: c } | ClientState::Connecting { conn: c, .. } => c == conn,
            _ => false,
        };
        if mine {
            for idx in client.inflight.drain(..) {
                self.history[idx].lost = true;
            }
            client.decoder = Decoder::new();
            client.plan.clear();
            let backoff = self.rng.range(1_000, 100_000);
            self.clients[cl].state = ClientState::Disconnected {
                retry_at: self.now + backoff,
            };
            self.wake_client_at(cl, self.now + backoff);
        }
    }

    fn node_closed(&mut self, conn: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let n = c.node;
        if !c.node_open || c.node_inc != self.nodes[n].inc {
            self.conns.remove(&conn);
            return;
        }
        if self.nodes[n].paused.is_some() {
            self.nodes[n].deferred.push(Event::NodeClosed { conn });
            return;
        }
        c.node_open = false;
        self.conns.remove(&conn);
        self.node_input(n, Input::Closed { conn: ConnId(conn) });
        self.nodes[n].sessions.closed(conn);
    }

    fn connect_arrive(&mut self, conn: u64) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.state != ConnState::Connecting {
            return;
        }
        let (n, cl) = (c.node, c.client);
        let lat = self.latency();
        if self.nodes[n].engine.is_none() {
            // Nobody listens: RST.
            self.schedule(self.now + lat, Event::ConnectAnswer { conn, ok: false });
            return;
        }
        if self.nodes[n].paused.is_some() {
            self.nodes[n].deferred.push(Event::ConnectArrive { conn });
            return;
        }
        let inc = self.nodes[n].inc;
        let c = self.conns.get_mut(&conn).expect("exists");
        c.node_open = true;
        c.node_inc = inc;
        self.node_input(
            n,
            Input::Accepted {
                conn: ConnId(conn),
                peer: format!("10.0.1.{}:{}", cl, 40000 + conn % 20000),
                local: format!("10.0.0.{n}:6379"),
            },
        );
        if self.link_up(Endpoint::Node(n), Endpoint::Client(cl)) {
            self.schedule(self.now + lat, Event::ConnectAnswer { conn, ok: true });
        }
    }

    fn connect_answer(&mut self, conn: u64, ok: bool) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.state != ConnState::Connecting {
            return;
        }
        let cl = c.client;
        let mine =
            matches!(self.clients[cl].state, ClientState::Connecting { conn: x, .. } if x == conn);
        if !ok || !mine {
            self.log(format_args!("c{cl} conn{conn} refused"));
            self.reset_conn(conn, "refused");
            return;
        }
        c.state = ConnState::Open;
        self.clients[cl].state = ClientState::Open { conn };
        self.log(format_args!("c{cl} conn{conn} open"));
        if self.clients[cl].resp3 {
            self.issue(cl, vec![Cmd::Hello3]);
        } else {
            self.client_poll(cl);
        }
    }

    // ----- clients -----

    fn wake_client_at(&mut self, cl: usize, at: u64) {
        let at = at.max(self.now);
        if self.clients[cl].wake_at.is_some_and(|w| w <= at) {
            return;
        }
        self.clients[cl].wake_at = Some(at);
        self.schedule(at, Event::ClientWake { client: cl });
    }

    /// Does whatever the client is due to do, and sets its next wake-up.
    fn client_poll(&mut self, cl: usize) {
        let now = self.now;
        match self.clients[cl].state {
            ClientState::Disconnected { retry_at } => {
                if now < retry_at {
                    self.wake_client_at(cl, retry_at);
                    return;
                }
                let conn = self.next_conn;
                self.next_conn += 1;
                let n = self.clients[cl].node;
                self.conns.insert(
                    conn,
                    Conn {
                        client: cl,
                        node: n,
                        node_inc: 0,
                        state: ConnState::Connecting,
                        node_open: false,
                        to_node: Stream::default(),
                        to_client: Stream::default(),
                        sent: 0,
                        delivered: 0,
                        unexecuted: VecDeque::new(),
                    },
                );
                self.clients[cl].state = ClientState::Connecting { conn, since: now };
                self.log(format_args!("c{cl} connect conn{conn} -> n{n}"));
                if self.link_up(Endpoint::Client(cl), Endpoint::Node(n)) {
                    let lat = self.latency();
                    self.schedule(now + lat, Event::ConnectArrive { conn });
                }
                // A SYN lost in a partition times out.
                self.wake_client_at(cl, now + 1_000_000);
            }
            ClientState::Connecting { conn, since } => {
                if now >= since + 1_000_000 {
                    self.log(format_args!("c{cl} connect timeout conn{conn}"));
                    self.reset_conn(conn, "connect timeout");
                } else {
                    self.wake_client_at(cl, since + 1_000_000);
                }
            }
            ClientState::Open { conn } => {
                let client = &self.clients[cl];
                if let Some(&oldest) = client.inflight.front() {
                    let deadline = self.history[oldest].invoked_us
                        + self.cfg.client_timeout_us
                        + self.history[oldest].cmd.block_us();
                    if !self.liveness {
                        if now >= deadline {
                            self.log(format_args!("c{cl} timeout #{oldest}"));
                            self.reset_conn(conn, "client timeout");
                        } else {
                            self.wake_client_at(cl, deadline);
                        }
                    }
                    return;
                }
                if now < client.next_batch_at {
                    let at = client.next_batch_at;
                    self.wake_client_at(cl, at);
                    return;
                }
                let n = client.node;
                if let Some(batch) = self.clients[cl].plan.pop_front() {
                    self.issue(cl, batch);
                    return;
                }
                let now_ms = self.node_now(n).as_millis();
                let k = self.rng.range(1, self.cfg.pipeline_max.max(1));
                let mut plan = self.cfg.workload.next_plan(&mut self.rng, now_ms, k);
                let first = plan.remove(0);
                self.clients[cl].plan = plan.into();
                self.issue(cl, first);
            }
        }
    }

    /// Sends a batch of requests on the client's open connection.
    fn issue(&mut self, cl: usize, cmds: Vec<Cmd>) {
        let ClientState::Open { conn } = self.clients[cl].state else {
            return;
        };
        let n = self.clients[cl].node;
        let mut bytes = Vec::with_capacity(256);
        let block_us = cmds.iter().map(|c| c.block_us()).max().unwrap_or(0);
        for cmd in cmds {
            let idx = self.history.len();
            let start = bytes.len();
            encode_cmd(&cmd, &mut bytes);
            let request = &bytes[start..];
            self.trace.bytes(request);
            let now = self.now - START_US;
            self.trace
                .event(now, "send", &[cl as u64, idx as u64], b"", || {
                    format!("c{cl} send #{idx} {}", cmd.line())
                });
            let len = request.len() as u64;
            let c = self.conns.get_mut(&conn).expect("open conn exists");
            c.sent += len;
            c.unexecuted.push_back((c.sent, idx));
            self.history.push(Op {
                client: cl,
                node: n,
                cmd,
                invoked_us: self.now,
                executed: None,
                completed_us: None,
                lost: false,
                wrote: false,
                effect_of: None,
            });
            self.clients[cl].inflight.push_back(idx);
        }
        let think = self.rng.exp_us(self.cfg.think_us_mean);
        self.clients[cl].next_batch_at = self.now + think;
        self.send(conn, true, Bytes::from(bytes));
        if !self.liveness {
            let t = self.now + self.cfg.client_timeout_us + block_us;
            self.wake_client_at(cl, t);
        }
    }

    // ----- faults -----

    fn nemesis(&mut self) {
        let net = &self.cfg.net;
        let p = &self.cfg.proc;
        let weights = [
            net.reset_w,
            net.partition_w,
            net.spike_w,
            p.power_loss_w,
            p.kill_w,
            p.pause_w,
            p.clock_jump_w,
        ];
        let total: u64 = weights.iter().sum();
        if total == 0 {
            return;
        }
        let mut roll = self.rng.below(total);
        let mut kind = 0;
        for (i, w) in weights.iter().enumerate() {
            if roll < *w {
                kind = i;
                break;
            }
            roll -= w;
        }
        let n = self.rng.index(self.nodes.len());
        match kind {
            0 => {
                let open: Vec<u64> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.state == ConnState::Open)
                    .map(|(&id, _)| id)
                    .collect();
                if !open.is_empty() {
                    let id = *self.rng.pick(&open);
                    self.report.resets += 1;
                    self.log(format_args!("fault reset conn{id}"));
                    self.reset_conn(id, "nemesis");
                }
            }
            1 => {
                let clients: BTreeSet<Endpoint> = (0..self.clients.len())
                    .filter(|_| self.rng.chance(0.5))
                    .map(Endpoint::Client)
                    .collect();
                if clients.is_empty() {
                    return;
                }
                let node: BTreeSet<Endpoint> = [Endpoint::Node(n)].into_iter().collect();
                let two_way = self.rng.chance(0.5);
                let towards_node = self.rng.chance(0.5);
                let (from, to) = if towards_node {
                    (clients, node)
                } else {
                    (node, clients)
                };
                let d = self.rng.range(1_000, self.cfg.net.fault_us_max);
                let id = self.partition(from, to, two_way);
                self.schedule(self.now + d, Event::Heal { partition: id });
            }
            2 => {
                let id = self.next_spike;
                self.next_spike += 1;
                let extra = self.rng.range(1_000, self.cfg.net.spike_us_extra_max);
                let d = self.rng.range(1_000, self.cfg.net.fault_us_max);
                self.log(format_args!("fault latency spike +{extra}us for {d}us"));
                self.spikes.insert(id, extra);
                self.schedule(self.now + d, Event::SpikeEnd { spike: id });
            }
            3 | 4 => {
                if self.nodes[n].engine.is_some() {
                    let power = kind == 3;
                    self.report.crashes += 1;
                    self.log(format_args!(
                        "fault {} n{n}",
                        if power { "power loss" } else { "kill -9" }
                    ));
                    self.take_down(n, power);
                }
            }
            5 => {
                if self.nodes[n].engine.is_some() && self.nodes[n].paused.is_none() {
                    let d = self.rng.range(1_000, self.cfg.proc.pause_us_max);
                    self.log(format_args!("fault pause n{n} {d}us"));
                    self.pause(n, d);
                }
            }
            _ => {
                let d = self.rng.range(1_000, self.cfg.proc.clock_jump_us_max);
                self.nodes[n].clock_offset_us += d;
                self.report.clock_jumps += 1;
                self.log(format_args!("fault clock jump n{n} +{d}us"));
            }
        }
    }

    /// Cuts traffic from `from` to `to` (and back if `two_way`) until
    /// [`World::heal_all`] or the returned id heals.
    pub fn partition(
        &mut self,
        from: BTreeSet<Endpoint>,
        to: BTreeSet<Endpoint>,
        two_way: bool,
    ) -> u64 {
        let id = self.next_partition;
        self.next_partition += 1;
        self.report.partitions += 1;
        self.log(format_args!(
            "fault partition p{id} {from:?} -> {to:?}{}",
            if two_way { " (two-way)" } else { "" }
        ));
        self.partitions.insert(id, Partition { from, to, two_way });
        id
    }

    pub fn heal_all(&mut self) {
        self.partitions.clear();
        self.spikes.clear();
        self.kick_all();
    }

    fn start_liveness(&mut self) {
        self.log(format_args!("liveness phase: healing everything"));
        self.liveness = true;
        self.liveness_start = self.now;
        self.heal_all();
        for n in 0..self.nodes.len() {
            self.nodes[n].disk.faults = DiskFaults {
                latency_us_min: self.cfg.disk.latency_us_min,
                latency_us_max: self.cfg.disk.latency_us_max,
                space_bytes: None,
                ..DiskFaults::default()
            };
            if self.nodes[n].paused.is_some() {
                self.resume(n);
            }
            if self.nodes[n].engine.is_none() {
                self.start_node(n);
            }
        }
        for c in 0..self.clients.len() {
            self.wake_client_at(c, self.now);
        }
    }

    /// Liveness: by the end, every request made after the liveness phase
    /// began (or pending then) must have completed within the bound.
    fn finish(&mut self) {
        if self.failure.is_some() {
            return;
        }
        let bound = self.cfg.liveness_bound_us;
        let grace = self.liveness_start + bound;
        for (idx, op) in self.history.iter().enumerate() {
            if self.nodes[op.node].excused {
                continue;
            }
            if op.completed_us.is_some() || op.lost {
                if let Some(done) = op.completed_us {
                    if op.invoked_us >= grace && done - op.invoked_us > bound {
                        let msg = format!(
                            "#{idx} c{} `{}` took {}us in the liveness phase (bound {bound}us)",
                            op.client,
                            op.cmd.line(),
                            done - op.invoked_us
                        );
                        self.fail("liveness", msg);
                        return;
                    }
                }
                continue;
            }
            let since = op.invoked_us.max(self.liveness_start);
            if self.now.saturating_sub(since) > bound {
                let msg = format!(
                    "#{idx} c{} `{}` invoked at {}us never completed (stuck client)",
                    op.client,
                    op.cmd.line(),
                    op.invoked_us - START_US
                );
                self.fail("liveness", msg);
                return;
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            if !matches!(c.state, ClientState::Open { .. }) && !self.nodes[c.node].excused {
                let msg = format!("c{i} is not connected at the end of the liveness phase");
                self.fail("liveness", msg);
                return;
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.engine.is_none() && !n.excused {
                let msg = format!("n{i} is down at the end of the liveness phase");
                self.fail("liveness", msg);
                return;
            }
        }
    }
}

/// A disk operation, shortly, for the trace (written straight into the
/// line: no allocation).
struct OpShort<'a>(&'a DiskOp);

impl std::fmt::Display for OpShort<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            DiskOp::Read { path } => write!(f, "read {path}"),
            DiskOp::Write { path, data } => write!(f, "write {path} {}B", data.len()),
            DiskOp::Append { path, data } => write!(f, "append {path} {}B", data.len()),
            DiskOp::Truncate { path, len } => write!(f, "truncate {path} {len}"),
            DiskOp::Fsync { path } => write!(f, "fsync {path}"),
            DiskOp::Rename { from, to } => write!(f, "rename {from} {to}"),
            DiskOp::Remove { path } => write!(f, "remove {path}"),
            DiskOp::CreateDir { path } => write!(f, "mkdir {path}"),
            DiskOp::FsyncDir { path } => write!(f, "fsyncdir {path}"),
            DiskOp::ListDir { path } => write!(f, "listdir {path}"),
        }
    }
}

/// A disk result, shortly, for the trace.
struct ResultShort<'a>(&'a cinnabar_engine::disk::DiskResult);

impl std::fmt::Display for ResultShort<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use cinnabar_engine::disk::DiskReply;
        match self.0 {
            Ok(DiskReply::Done) => f.write_str("ok"),
            Ok(DiskReply::Data(b)) => write!(f, "{}B", b.len()),
            Ok(DiskReply::Written(n)) => write!(f, "wrote {n}"),
            Ok(DiskReply::Names(v)) => write!(f, "{v:?}"),
            Err(e) => write!(f, "err {e}"),
        }
    }
}

/// A disk operation for the trace's hash: (kind, size, path).
fn op_digest(op: &DiskOp) -> (u64, u64, &[u8]) {
    match op {
        DiskOp::Read { path } => (0, 0, path.as_bytes()),
        DiskOp::Write { path, data } => (1, data.len() as u64, path.as_bytes()),
        DiskOp::Append { path, data } => (2, data.len() as u64, path.as_bytes()),
        DiskOp::Truncate { path, len } => (3, *len, path.as_bytes()),
        DiskOp::Fsync { path } => (4, 0, path.as_bytes()),
        DiskOp::Rename { from, to } => (5, to.len() as u64, from.as_bytes()),
        DiskOp::Remove { path } => (6, 0, path.as_bytes()),
        DiskOp::CreateDir { path } => (7, 0, path.as_bytes()),
        DiskOp::FsyncDir { path } => (8, 0, path.as_bytes()),
        DiskOp::ListDir { path } => (9, 0, path.as_bytes()),
    }
}

/// A disk result for the trace's hash.
fn result_digest(r: &cinnabar_engine::disk::DiskResult) -> u64 {
    use cinnabar_engine::disk::DiskReply;
    match r {
        Ok(DiskReply::Done) => 0,
        Ok(DiskReply::Data(b)) => 1 | (b.len() as u64) << 8,
        Ok(DiskReply::Written(n)) => 2 | *n << 8,
        Ok(DiskReply::Names(v)) => 3 | (v.len() as u64) << 8,
        Err(_) => 4,
    }
}
