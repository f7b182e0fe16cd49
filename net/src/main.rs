//! `cinnabar-server`: the real-IO shim around the sans-IO engine.
//!
//! The shim owns sockets, the clock, signals and the allocator's figures; the
//! engine owns every decision. One thread runs everything (like Redis's
//! event loop): connection tasks on a tokio current-thread runtime share the
//! single [`Node`] through the serving core in `cinnabar_net::server`.
//! This file adds the process around it: configuration, listeners (TCP
//! with socket options, TLS, the unix socket), signals, the disk thread,
//! the lazyfree thread and the allocator's figures.

mod alloc;
mod args;
mod check;
mod disk;
mod tls;

use cinnabar_engine::{Config, HostInfo, Input, Node};
use cinnabar_net::server::{self, now, Server};
use std::rc::Rc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream, UnixListener};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// Drops what the engine hands over (UNLINK'd values, flushed databases)
/// on a thread of its own, Redis's lazyfree thread: freeing millions of
/// allocations must not stall the event loop.
fn free_off_loop(garbage: cinnabar_engine::node::Garbage) {
    use std::sync::mpsc::{channel, Sender};
    use std::sync::{Mutex, OnceLock};
    static FREER: OnceLock<Mutex<Sender<cinnabar_engine::node::Garbage>>> = OnceLock::new();
    let tx = FREER.get_or_init(|| {
        let (tx, rx) = channel::<cinnabar_engine::node::Garbage>();
        let spawned = std::thread::Builder::new()
            .name("lazyfree".into())
            .spawn(move || rx.into_iter().for_each(drop));
        if let Err(e) = spawned {
            tracing::warn!("cannot start the lazyfree thread, freeing inline: {e}");
        }
        Mutex::new(tx)
    });
    // If the thread is gone, the send fails and the value drops here.
    if let Ok(tx) = tx.lock() {
        let _ = tx.send(garbage);
    }
}

impl server::DiskExecutor for disk::DiskWorker {
    fn submit(&self, id: cinnabar_engine::disk::DiskOpId, op: cinnabar_engine::disk::DiskOp) {
        disk::DiskWorker::submit(self, id, op)
    }
}

/// The real process behind the server.
fn platform(disk: disk::DiskWorker) -> server::Platform {
    server::Platform {
        disk: Box::new(disk),
        memory: || (alloc::allocated(), alloc::rss_bytes()),
        cpu: alloc::cpu_seconds,
        free: free_off_loop,
        // DEBUG SLEEP blocks the whole server, exactly as in Redis.
        sleep: std::thread::sleep,
        // Corrupt data file, AOF fsync failure under `always`: Redis logs
        // and exits with 1. (The engine has logged the message.)
        fatal: || std::process::exit(1),
    }
}

/// How long a TLS client may take to complete its handshake: a client
/// that connects and says nothing (or speaks plaintext) holds no engine
/// state, and is dropped after this.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What happens to an accepted TCP client: Redis's keepalive, then, with
/// `tls`, a TLS handshake before the engine hears of it (a failed
/// handshake, e.g. a plaintext client, is just closed).
fn accepted(
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> impl FnMut(&Rc<Server>, TcpStream, String, String) {
    move |server, stream, peer, local| {
        let keepalive_s = server.config(|c| c.tcp_keepalive);
        if keepalive_s > 0 {
            // As Redis's anetKeepAlive: probes after `interval` idle
            // seconds, then every interval/3, 3 times.
            let secs = keepalive_s as u64;
            let ka = socket2::TcpKeepalive::new()
                .with_time(Duration::from_secs(secs))
                .with_interval(Duration::from_secs((secs / 3).max(1)))
                .with_retries(3);
            let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&ka);
        }
        let Some(acceptor) = tls.clone() else {
            server.start_conn(stream, peer, local, None);
            return;
        };
        let server = server.clone();
        tokio::task::spawn_local(async move {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => {
                    let cn = tls::peer_common_name(s.get_ref().1);
                    server.start_conn(s, peer, local, cn)
                }
                Ok(Err(e)) => tracing::warn!(
                    "Error accepting a client connection: {e} (addr={peer} laddr={local})"
                ),
                Err(_) => tracing::warn!(
                    "Error accepting a client connection: TLS handshake timed out (addr={peer})"
                ),
            }
        });
    }
}

/// A listening TCP socket with Redis's `tcp-backlog` (tokio's default is
/// 128: a burst of connections would see SYNs dropped and 1 s retries).
fn listen_tcp(host: &str, backlog: i64) -> std::io::Result<TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = host
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(backlog.clamp(1, i32::MAX as i64) as i32)?;
    sock.set_nonblocking(true)?;
    TcpListener::from_std(sock.into())
}

/// Accepts clients on the unix socket.
async fn unix_accept_loop(server: Rc<Server>, listener: UnixListener, path: String) {
    // Redis shows unix clients as "<path>:0".
    let addr = format!("{path}:0");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => server.start_conn(stream, addr.clone(), addr.clone(), None),
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn host_info(config_file: &str) -> HostInfo {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    HostInfo {
        os: format!(
            "{} {} {}",
            read("/proc/sys/kernel/ostype"),
            read("/proc/sys/kernel/osrelease"),
            std::env::consts::ARCH
        ),
        multiplexing_api: "epoll".into(),
        mem_allocator: "jemalloc".into(),
        process_id: std::process::id(),
        executable: std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        config_file: config_file.to_string(),
        cpu_sys_s: 0.0,
        cpu_user_s: 0.0,
        total_system_memory: alloc::total_system_memory(),
    }
}

/// Logging as `loglevel` and `logfile` say, like Redis (notice is info,
/// verbose and debug are debug, warning is warn, nothing is off; an empty
/// logfile is standard output). RUST_LOG, when set, wins.
fn init_logging(config: &Config) {
    let level = match config.loglevel.as_str() {
        "debug" | "verbose" => "debug",
        "warning" => "warn",
        "nothing" => "off",
        _ => "info",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if config.logfile.is_empty() {
        builder.init();
        return;
    }
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.logfile)
    {
        Ok(f) => builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f))
            .init(),
        Err(e) => {
            // Redis's wording, and it does not start either.
            eprintln!("Can't open the log file: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let Some(code) = check::run(&argv) {
        std::process::exit(code);
    }
    let (config, config_file) = match args::load(&argv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "\n*** FATAL CONFIG FILE ERROR (Cinnabar {}) ***\n{e}",
                cinnabar_engine::CINNABAR_VERSION
            );
            std::process::exit(1);
        }
    };
    init_logging(&config);
    tracing::info!("oO0OoO0OoO0Oo Cinnabar is starting oO0OoO0OoO0Oo");
    tracing::info!(
        "Cinnabar version={}, Redis version={}, bits=64, pid={}, just started",
        cinnabar_engine::CINNABAR_VERSION,
        cinnabar_engine::REDIS_VERSION,
        std::process::id()
    );
    if config_file.is_empty() {
        tracing::warn!("Warning: no config file specified, using the default config. In order to specify a config file use cinnabar-server /path/to/redis.conf");
    } else {
        tracing::info!("Configuration loaded");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(tokio::task::LocalSet::new().run_until(run(config, config_file)));
    std::process::exit(code);
}

/// Redis's `adjustOpenFilesLimit`: room for `maxclients` plus 32 spare
/// descriptors, raising the soft RLIMIT_NOFILE as far as the hard one
/// allows; if that is not enough, maxclients shrinks to fit.
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
fn adjust_open_files_limit(config: &mut Config) {
    let want = (config.maxclients.max(1) as u64).saturating_add(32);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur as u64 >= want {
        return;
    }
    let target = want.min(lim.rlim_max as u64);
    let new = libc::rlimit {
        rlim_cur: target as libc::rlim_t,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    let ok = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0;
    let have = if ok { target } else { lim.rlim_cur as u64 };
    if have < want {
        let reduced = have.saturating_sub(32).max(1);
        tracing::warn!(
            "You requested maxclients of {} requiring at least {want} max file descriptors. Current maximum open files is {have}. maxclients has been reduced to {reduced} to compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'.",
            config.maxclients
        );
        config.maxclients = reduced as i64;
    }
}

async fn run(mut config: Config, config_file: String) -> i32 {
    adjust_open_files_limit(&mut config);
    let port = config.port as u16;
    let binds = config.bind.clone();
    let tls_port = config.tls_port as u16;
    let tcp_backlog = config.tcp_backlog;
    let unixsocket = config.unixsocket.clone();
    let unixsocketperm = config.unixsocketperm.clone();
    let tls_acceptor = if tls_port != 0 {
        match tls::acceptor(&config) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::error!("{e}");
                tracing::error!("Failed to configure TLS. Check logs for more info.");
                return 1;
            }
        }
    } else {
        None
    };
    // Hash seeds are random in production (HashDoS), fixed in simulation.
    let seed = alloc::random_seed();
    let (disk, disk_done) = match disk::DiskWorker::start() {
        Ok(x) => x,
        Err(e) => {
            tracing::error!("cannot start the disk thread: {e}");
            return 1;
        }
    };
    // ACL users from the config file and the ACL file: read here, at
    // start-up, and refused as Redis refuses them (exit 1).
    let acl_text = if config.aclfile.is_empty() {
        None
    } else {
        let path = cinnabar_engine::disk::join(&config.dir, &config.aclfile);
        match std::fs::read(&path) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(
                    "Error loading ACLs, opening file '{}': {e}. Aborting Redis startup because of ACL errors.",
                    config.aclfile
                );
                return 1;
            }
        }
    };
    let acl = match cinnabar_engine::acl::Acl::from_config(&config, acl_text.as_deref()) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("{e}. Aborting Redis startup because of ACL errors.");
            return 1;
        }
    };
    let mut node = Node::new(config, seed);
    node.set_stopwatch(server::stopwatch_ns);
    node.acl = acl;
    node.start(now());
    // Load the dataset before listening, so no client ever sees a
    // half-loaded node. (Redis listens first and answers -LOADING meanwhile;
    // with a huge dataset our clients are refused instead until it is in.)
    tracing::info!("Running mode=standalone, port={}.", node.config.port);
    tracing::info!("Server initialized");
    let load_started = std::time::Instant::now();
    let mut startup = disk::Blocking::default();
    if !server::load(&mut node, |op| startup.perform(op)) {
        return 1;
    }
    let keys = node.persist.last_load_keys_loaded;
    if keys > 0 {
        let secs = load_started.elapsed().as_secs_f64();
        tracing::info!("DB loaded from disk: {secs:.3} seconds");
        tracing::info!(
            "Done loading: {keys} keys, {:.0} keys/s",
            keys as f64 / secs.max(1e-6)
        );
    }
    let server = Server::new(node, platform(disk), disk_done);
    server.input(Input::Host(host_info(&config_file)));
    let mut listening = 0;
    // `port 0` / `tls-port 0` disable that listener, as in Redis.
    let mut ports: Vec<(u16, Option<tokio_rustls::TlsAcceptor>)> = Vec::new();
    if port != 0 {
        ports.push((port, None));
    }
    if let Some(a) = tls_acceptor {
        ports.push((tls_port, Some(a)));
    }
    for (port, tls) in ports {
        let mut bound_here = 0;
        for b in &binds {
            let (optional, addr) = match b.strip_prefix('-') {
                Some(a) => (true, a),
                None => (false, b.as_str()),
            };
            let host = if addr.contains(':') {
                format!("[{addr}]:{port}")
            } else {
                format!("{addr}:{port}")
            };
            match listen_tcp(&host, tcp_backlog) {
                Ok(l) => {
                    let kind = if tls.is_some() { " (TLS)" } else { "" };
                    tracing::info!("Ready to accept connections on {host}{kind}");
                    bound_here += 1;
                    tokio::task::spawn_local(server.clone().accept_loop(l, accepted(tls.clone())));
                }
                Err(e) if optional => tracing::debug!("skipping optional bind {host}: {e}"),
                Err(e) => {
                    tracing::error!("Could not create server TCP listening socket {host}: {e}");
                    return 1;
                }
            }
        }
        if bound_here == 0 {
            tracing::error!("Failed listening on port {port} (tcp), aborting.");
            return 1;
        }
        listening += bound_here;
    }
    if !unixsocket.is_empty() {
        // A stale socket file from an earlier run is replaced, as Redis does.
        let _ = std::fs::remove_file(&unixsocket);
        match UnixListener::bind(&unixsocket) {
            Ok(l) => {
                let perm = u32::from_str_radix(unixsocketperm.trim(), 8).unwrap_or(0);
                if perm != 0 {
                    use std::os::unix::fs::PermissionsExt;
                    if let Err(e) =
                        std::fs::set_permissions(&unixsocket, std::fs::Permissions::from_mode(perm))
                    {
                        tracing::error!("Failed to set permissions on {unixsocket}: {e}");
                        return 1;
                    }
                }
                tracing::info!("The server is now ready to accept connections at {unixsocket}");
                listening += 1;
                tokio::task::spawn_local(unix_accept_loop(server.clone(), l, unixsocket.clone()));
            }
            Err(e) => {
                tracing::error!("Failed opening Unix socket: {e}");
                return 1;
            }
        }
    }
    if listening == 0 {
        tracing::error!("Configured to not listen anywhere, exiting.");
        return 1;
    }
    let mut sigterm = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install SIGTERM handler: {e}");
            return 1;
        }
    };
    // A signal asks the node to stop; it may save first and then says
    // Shutdown, as a SHUTDOWN command does.
    loop {
        tokio::select! {
            _ = server.stopped() => break,
            _ = sigterm.recv() => {
                tracing::info!("Received SIGTERM scheduling shutdown...");
                server.input(Input::ShutdownSignal);
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("Received SIGINT scheduling shutdown...");
                server.input(Input::ShutdownSignal);
            }
        }
    }
    tracing::info!("Cinnabar is now ready to exit, bye bye...");
    0
}
