//! The serving core of the shim: one [`Node`] shared by the connection tasks
//! of a single thread, the routing of output between connections, the timer
//! loop and disk completions.
//!
//! It knows nothing of the process around it (files, signals, TLS, unix
//! sockets, the allocator): those come in through [`Platform`] and through
//! the streams handed to [`Server::start_conn`]. That is what lets the same
//! code run in `cinnabar-server` on real tokio and, built with
//! `--cfg madsim`, over madsim's simulated network (`sim_test.rs`).
//!
//! Per read, a connection task hands the bytes to the engine, drains the
//! outputs, and writes its own replies itself in one write (pipelined
//! commands get batched replies). Output for other connections (PUBLISH,
//! CLIENT KILL, unblocked clients) goes through a per-connection channel;
//! the receiving task drains everything queued and writes it in one
//! vectored write, so a subscriber woken once writes once.

use bytes::Bytes;
use cinnabar_engine::disk::{DiskOp, DiskOpId, DiskResult};
use cinnabar_engine::{Config, ConnId, Input, Node, Output, Time};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::IoSlice;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

/// Read size per syscall; Redis uses 16 KB (PROTO_IOBUF_LEN) and so do we.
const READ_CHUNK: usize = 16 * 1024;

/// How much a slow reader's backlog must change before the engine hears of
/// it (client-output-buffer-limit is checked on each report).
const BACKLOG_REPORT_STEP: u64 = 64 * 1024;

/// At most this many queued chunks go into one vectored write.
const MAX_IOVECS: usize = 64;

/// Wall-clock time for the engine (virtual under madsim, which intercepts
/// the clock).
pub fn now() -> Time {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    Time::from_micros(us)
}

/// The engine's stopwatch: monotonic nanoseconds since the first reading.
/// Command durations feed SLOWLOG, LATENCY and commandstats only.
pub fn stopwatch_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

/// Performs the engine's disk operations; completions come back, in issue
/// order, on the channel given to [`Server::new`].
pub trait DiskExecutor {
    fn submit(&self, id: DiskOpId, op: DiskOp);
}

/// What the process around the server provides.
pub struct Platform {
    pub disk: Box<dyn DiskExecutor>,
    /// The process's (allocated, resident) bytes, for INFO memory.
    pub memory: fn() -> (u64, u64),
    /// The process's (user, system) CPU seconds, for INFO cpu.
    pub cpu: fn() -> (f64, f64),
    /// Takes values the engine dropped (UNLINK, FLUSHALL ASYNC) off the
    /// event loop.
    pub free: fn(cinnabar_engine::node::Garbage),
    /// DEBUG SLEEP: blocks the whole server, as in Redis.
    pub sleep: fn(Duration),
    /// The node cannot go on (Output::Fatal; the engine has logged why).
    pub fatal: fn(),
}

/// Messages to a connection task from elsewhere in the server.
enum ToConn {
    Data(Bytes),
    Close,
}

/// What a drain left for the connection that triggered it.
#[derive(Default)]
struct Mine {
    data: Vec<Bytes>,
    close: bool,
}

/// One server: the node and everything the tasks of its thread share.
pub struct Server {
    node: RefCell<Node>,
    routes: RefCell<HashMap<ConnId, mpsc::UnboundedSender<ToConn>>>,
    /// Per connection: bytes routed to it and not yet written (a slow
    /// reader's backlog), and the figure last reported to the engine.
    backlog: RefCell<HashMap<ConnId, (u64, u64)>>,
    /// Backlog changes to report once the current drain is over.
    backlog_reports: RefCell<Vec<(ConnId, u64)>>,
    shutdown: Notify,
    next_conn: Cell<u64>,
    platform: Platform,
}

impl Server {
    /// Wraps a started node (dataset loaded, see [`load`]) and spawns the
    /// tasks that feed it disk completions and timer ticks. Must be called
    /// inside the runtime (on tokio, within a `LocalSet`).
    pub fn new(
        node: Node,
        platform: Platform,
        mut disk_done: mpsc::UnboundedReceiver<(DiskOpId, DiskResult)>,
    ) -> Rc<Server> {
        let server = Rc::new(Server {
            node: RefCell::new(node),
            routes: RefCell::new(HashMap::new()),
            backlog: RefCell::new(HashMap::new()),
            backlog_reports: RefCell::new(Vec::new()),
            shutdown: Notify::new(),
            next_conn: Cell::new(0),
            platform,
        });
        // Disk completions go back to the node in order.
        let s = server.clone();
        tokio::task::spawn_local(async move {
            while let Some((id, result)) = disk_done.recv().await {
                s.feed(Input::DiskDone { id, result }, None);
            }
        });
        tokio::task::spawn_local(tick_loop(server.clone()));
        server
    }

    /// Reads the node's configuration.
    pub fn config<R>(&self, f: impl FnOnce(&Config) -> R) -> R {
        f(&self.node.borrow().config)
    }

    /// Feeds an input that concerns no connection (host facts, signals).
    pub fn input(&self, input: Input<'_>) {
        self.feed(input, None);
    }

    /// Resolves when the node has asked to stop (SHUTDOWN, or a signal
    /// after its final save).
    pub async fn stopped(&self) {
        self.shutdown.notified().await
    }

    /// Feeds one input and executes the resulting outputs. Output for `me` is
    /// returned so the caller writes it itself (no channel hop on the hot
    /// path).
    fn feed(&self, input: Input<'_>, me: Option<ConnId>) -> Mine {
        let mut node = self.node.borrow_mut();
        node.handle(now(), input);
        let mut mine = Mine::default();
        loop {
            let Some(out) = node.poll_output() else {
                // Routing may have grown someone's backlog: tell the engine
                // (it may close that client), then drain what that produced.
                let reports = std::mem::take(&mut *self.backlog_reports.borrow_mut());
                if reports.is_empty() {
                    break;
                }
                for (conn, bytes) in reports {
                    node.handle(now(), Input::OutputBacklog { conn, bytes });
                }
                continue;
            };
            match out {
                Output::Send { conn, data } if Some(conn) == me => mine.data.push(data),
                Output::Close { conn } if Some(conn) == me => mine.close = true,
                Output::Send { conn, data } => self.route(conn, ToConn::Data(data)),
                Output::Close { conn } => self.route(conn, ToConn::Close),
                Output::Sleep { micros } => (self.platform.sleep)(Duration::from_micros(micros)),
                Output::Shutdown => self.shutdown.notify_one(),
                Output::Disk { id, op } => self.platform.disk.submit(id, op),
                Output::Fatal { .. } => (self.platform.fatal)(),
                Output::Free(garbage) => (self.platform.free)(garbage),
            }
        }
        mine
    }

    fn route(&self, conn: ConnId, msg: ToConn) {
        if let Some(tx) = self.routes.borrow().get(&conn) {
            if let ToConn::Data(d) = &msg {
                self.backlog_changed(conn, d.len() as i64);
            }
            let _ = tx.send(msg);
        }
    }

    /// Tracks a connection's unwritten bytes; a change of at least
    /// BACKLOG_REPORT_STEP (or a drain to zero) is reported to the engine.
    fn backlog_changed(&self, conn: ConnId, delta: i64) {
        let mut map = self.backlog.borrow_mut();
        let e = map.entry(conn).or_insert((0, 0));
        e.0 = e.0.saturating_add_signed(delta);
        if e.0.abs_diff(e.1) >= BACKLOG_REPORT_STEP || (e.0 == 0 && e.1 != 0) {
            e.1 = e.0;
            self.backlog_reports.borrow_mut().push((conn, e.0));
        }
    }

    /// A connection is gone: forget its routing and backlog.
    fn forget(&self, conn: ConnId) {
        self.routes.borrow_mut().remove(&conn);
        self.backlog.borrow_mut().remove(&conn);
    }

    /// Introduces a connection to the engine and serves it on a task of its
    /// own. `cert_cn` is a TLS client certificate's verified subject CN.
    pub fn start_conn<S: AsyncRead + AsyncWrite + Unpin + 'static>(
        self: &Rc<Self>,
        mut stream: S,
        peer: String,
        local: String,
        cert_cn: Option<String>,
    ) {
        let conn = ConnId(self.next_conn.get() + 1);
        self.next_conn.set(conn.0);
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes.borrow_mut().insert(conn, tx);
        let mut mine = self.feed(Input::Accepted { conn, peer, local }, Some(conn));
        if let (Some(common_name), false) = (cert_cn, mine.close) {
            let more = self.feed(Input::PeerCertificate { conn, common_name }, Some(conn));
            mine.data.extend(more.data);
            mine.close |= more.close;
        }
        let server = self.clone();
        tokio::task::spawn_local(async move {
            if !mine.data.is_empty() || mine.close {
                let _ = write_chunks(&mut stream, &mine.data).await;
                if mine.close {
                    let _ = stream.shutdown().await;
                    server.routes.borrow_mut().remove(&conn);
                    return;
                }
            }
            server.serve_conn(stream, conn, rx).await;
        });
    }

    /// Serves one client connection until it closes.
    async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        conn: ConnId,
        mut rx: mpsc::UnboundedReceiver<ToConn>,
    ) {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut routed: Vec<Bytes> = Vec::new();
        loop {
            tokio::select! {
                biased;
                msg = rx.recv() => {
                    // Everything queued goes out in one write.
                    let mut close = false;
                    let mut next = msg;
                    loop {
                        match next {
                            Some(ToConn::Data(d)) => routed.push(d),
                            Some(ToConn::Close) | None => {
                                close = true;
                                break;
                            }
                        }
                        if routed.len() >= MAX_IOVECS {
                            break;
                        }
                        next = match rx.try_recv() {
                            Ok(m) => Some(m),
                            Err(_) => break,
                        };
                    }
                    if !routed.is_empty() {
                        let written: usize = routed.iter().map(Bytes::len).sum();
                        if write_chunks(&mut stream, &routed).await.is_err() {
                            break;
                        }
                        routed.clear();
                        self.backlog_changed(conn, -(written as i64));
                        let reports = std::mem::take(&mut *self.backlog_reports.borrow_mut());
                        for (c, bytes) in reports {
                            self.feed(Input::OutputBacklog { conn: c, bytes }, None);
                        }
                    }
                    if close {
                        break;
                    }
                }
                r = stream.read(&mut buf) => {
                    let n = match r { Ok(0) | Err(_) => break, Ok(n) => n };
                    let mine = self.feed(Input::Received { conn, data: &buf[..n] }, Some(conn));
                    // Write after the other ready connections have run, as
                    // Redis writes replies in beforeSleep: a pipelining
                    // client then finds many replies per wakeup instead of
                    // being woken once per connection (about a fifth more
                    // requests/s with redis-benchmark -P 16 on two cores).
                    // Order is kept: routed output for this connection is
                    // only written after these replies.
                    tokio::task::yield_now().await;
                    if write_chunks(&mut stream, &mine.data).await.is_err() || mine.close {
                        let _ = stream.shutdown().await;
                        self.forget(conn);
                        return;
                    }
                }
            }
        }
        self.forget(conn);
        self.feed(Input::Closed { conn }, None);
    }

    /// Accepts TCP clients on `listener`; `accepted` decides what to do with
    /// each stream (socket options, a TLS handshake) and normally ends in
    /// [`Server::start_conn`].
    pub async fn accept_loop<F>(self: Rc<Self>, listener: TcpListener, mut accepted: F)
    where
        F: FnMut(&Rc<Server>, TcpStream, String, String),
    {
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    accepted(&self, stream, peer.to_string(), local.clone());
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    // Out of file descriptors: let other tasks release some.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

/// Writes `chunks` in order, as few writes as the stream takes (one
/// vectored write when it takes everything), then flushes (a no-op on a
/// TCP socket; TLS and madsim's streams send on flush).
async fn write_chunks<S: AsyncWrite + Unpin>(
    stream: &mut S,
    chunks: &[Bytes],
) -> std::io::Result<()> {
    match chunks {
        [] => return Ok(()),
        [one] => stream.write_all(one).await?,
        _ => {
            let mut i = 0;
            let mut off = 0;
            while i < chunks.len() {
                let slices: Vec<IoSlice> = std::iter::once(IoSlice::new(&chunks[i][off..]))
                    .chain(chunks[i + 1..].iter().map(|c| IoSlice::new(c)))
                    .collect();
                let mut n = stream.write_vectored(&slices).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                while i < chunks.len() && n >= chunks[i].len() - off {
                    n -= chunks[i].len() - off;
                    i += 1;
                    off = 0;
                }
                off += n;
            }
        }
    }
    stream.flush().await
}

/// Drives the engine's timers and reports process figures to it.
async fn tick_loop(server: Rc<Server>) {
    loop {
        let deadline = server.node.borrow().poll_timeout();
        if let Some(at) = deadline {
            let wait = at.as_micros().saturating_sub(now().as_micros());
            if wait == 0 {
                // Due now (a long script's next slice, a snapshot step): let
                // the connections run first, so they are not starved.
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(Duration::from_micros(wait)).await;
            }
        }
        let (used, rss) = (server.platform.memory)();
        server.feed(
            Input::MemoryUsage {
                used_bytes: used,
                rss_bytes: rss,
            },
            None,
        );
        let (user, sys) = (server.platform.cpu)();
        let host = {
            let node = server.node.borrow();
            let mut h = node.host.clone();
            h.cpu_user_s = user;
            h.cpu_sys_s = sys;
            h
        };
        server.feed(Input::Host(host), None);
        server.feed(Input::Tick, None);
    }
}

/// Runs the node's start-up loading to the end, performing its disk
/// operations with `perform` on the calling thread (no client is served
/// before the dataset is in). Returns false if the node cannot start.
pub fn load(node: &mut Node, mut perform: impl FnMut(DiskOp) -> DiskResult) -> bool {
    while node.persist.loading && !node.halted {
        let mut progressed = false;
        while let Some(out) = node.poll_output() {
            match out {
                Output::Disk { id, op } => {
                    let result = perform(op);
                    node.handle(now(), Input::DiskDone { id, result });
                    progressed = true;
                }
                Output::Fatal { .. } => return false,
                other => tracing::debug!("output during loading: {other:?}"),
            }
        }
        if !progressed {
            break;
        }
    }
    true
}
