//! Test harness for black-box and differential tests.
//!
//! [`Server`] starts a real server process on a free port (genuine
//! `redis-server` 7.0 or our `cinnabar-server`) and kills it when dropped.
//! [`Conn`] speaks raw RESP so replies can be compared byte for byte:
//! `read_reply` returns exactly the bytes of one reply.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    pub name: &'static str,
    /// Where the server logs (its stderr, or Redis's logfile): printed
    /// when a test fails while the server is alive, so a crash or a
    /// refused start-up explains itself.
    log: PathBuf,
}

/// A port no other test server on this machine has been given. Asking
/// the OS for an ephemeral port and letting it go can hand two tests the
/// same port (the second server then fails to bind, while the first
/// answers both tests' start-up probes), so ports come from a per-process
/// counter below the ephemeral range, checked free by binding, and are
/// claimed machine-wide by an advisory lock on a file named after the
/// port: another test process (whose counter may start at the same base)
/// skips a claimed port. The lock is held until the server is dropped, or
/// until the process exits, when the OS lets go of it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Below Linux's ephemeral range (32768 and up), where client sockets
    // take their ports; each process starts at its own offset.
    let offset = (std::process::id() % 60) * 200;
    let dir = std::env::temp_dir().join("cinnabar-test-ports");
    let _ = std::fs::create_dir_all(&dir);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (20_000 + (offset + n) % 12_000) as u16;
        let Ok(lock) = std::fs::File::create(dir.join(format!("{port}.lock"))) else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            claimed_ports().insert(port, lock);
            return port;
        }
    }
}

/// The port locks this process holds (see [`free_port`]).
fn claimed_ports() -> std::sync::MutexGuard<'static, std::collections::BTreeMap<u16, std::fs::File>>
{
    static CLAIMED: std::sync::Mutex<std::collections::BTreeMap<u16, std::fs::File>> =
        std::sync::Mutex::new(std::collections::BTreeMap::new());
    CLAIMED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The cinnabar-server binary: `$CINNABAR_BIN`, else the workspace's
/// release build, else its debug build. The test script builds it first.
pub fn cinnabar_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CINNABAR_BIN") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for profile in ["release", "debug"] {
        let p = root.join("target").join(profile).join("cinnabar-server");
        if p.exists() {
            return p;
        }
    }
    panic!("cinnabar-server not built: run `cargo build --release -p cinnabar-net` (scripts/test.sh does)");
}

/// An empty directory for one server's files.
pub fn fresh_dir(port: u16) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cinnabar-test-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(&dir);
    dir
}

impl Server {
    /// Genuine Redis 7.0 (Debian's redis-server), with DEBUG enabled and no
    /// persistence, on a free port.
    pub fn redis(extra: &[&str]) -> Server {
        let port = free_port();
        let redis_log = std::env::temp_dir().join(format!(
            "cinnabar-test-redis-{}-{port}.log",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&redis_log);
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--enable-debug-command".into(),
            "yes".into(),
            "--daemonize".into(),
            "no".into(),
            "--dir".into(),
            std::env::temp_dir().display().to_string(),
            "--logfile".into(),
            redis_log.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        Server::wait(child, port, "redis", redis_log)
    }

    /// Our server, configured like [`Server::redis`].
    pub fn cinnabar(extra: &[&str]) -> Server {
        Server::cinnabar_with_file(None, extra)
    }

    /// Our server with a config file as first argument (as redis-server
    /// takes it), then the usual test arguments, then `extra`.
    pub fn cinnabar_with_file(file: Option<&str>, extra: &[&str]) -> Server {
        let port = free_port();
        let dir = fresh_dir(port);
        let log = dir.join("stderr.log");
        let mut args: Vec<String> = file.iter().map(|f| f.to_string()).collect();
        args.extend([
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            "".into(),
            "--enable-debug-command".into(),
            "yes".into(),
            // A fresh directory per server: nothing is loaded at start-up
            // unless a test puts it there, and saves never litter the tree.
            "--dir".into(),
            dir.display().to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(cinnabar_bin())
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(&log)
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("start cinnabar-server");
        Server::wait(child, port, "cinnabar", log)
    }

    fn wait(mut child: Child, port: u16, name: &'static str, log: PathBuf) -> Server {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(probe) = TcpStream::connect(("127.0.0.1", port)) {
                close_with_reset(probe);
                return Server {
                    child,
                    port,
                    name,
                    log,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} exited at start-up: {status}\n{}", log_tail(&log));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        panic!("{name} did not start listening on {port}");
    }

    pub fn connect(&self) -> Conn {
        Conn::connect(self.port)
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit by itself (e.g. after SHUTDOWN).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9: the process dies at once; the OS keeps what it was given.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as `kill` and service managers send it.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Polls `CLIENT LIST ID id` until `ready` accepts the client's line
    /// (`None` once it has disconnected), instead of sleeping and hoping:
    /// loaded CI machines make fixed sleeps flaky.
    pub fn wait_client(&self, id: &str, ready: impl Fn(Option<&str>) -> bool) {
        let mut probe = self.connect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let r = probe.cmd_str(&["CLIENT", "LIST", "ID", id]);
            let text = String::from_utf8_lossy(&r).into_owned();
            let line = text.lines().find(|l| l.starts_with("id="));
            if ready(line) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!(
            "{}: client {id} never reached the expected state",
            self.name
        );
    }

    /// Waits until client `id` is blocked in a blocking command.
    pub fn wait_blocked(&self, id: &str) {
        self.wait_client(id, |l| l.is_some_and(|l| l.contains(" flags=b ")));
    }

    /// Waits until client `id` has gone.
    pub fn wait_gone(&self, id: &str) {
        self.wait_client(id, |l| l.is_none());
    }
}

impl Conn {
    /// This connection's CLIENT ID, as text.
    pub fn id(&mut self) -> String {
        let r = self.cmd_str(&["CLIENT", "ID"]);
        String::from_utf8_lossy(&r)
            .trim_start_matches(':')
            .trim()
            .to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The test failed: say whether the server was still up and
            // what it logged, so a crash is told apart from a test bug.
            let state = match self.child.try_wait() {
                Ok(None) => "still running".to_string(),
                Ok(Some(status)) => format!("exited: {status}"),
                Err(e) => format!("unknown: {e}"),
            };
            eprintln!(
                "{} on port {} (pid {}) {state}\n{}",
                self.name,
                self.port,
                self.child.id(),
                log_tail(&self.log)
            );
        } else if self.name == "redis" {
            let _ = std::fs::remove_file(&self.log);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        claimed_ports().remove(&self.port);
    }
}

/// Closes a probe connection with a reset (SO_LINGER 0), leaving no
/// TIME_WAIT behind: Linux reuses TIME_WAIT ports for loopback connections
/// (`tcp_tw_reuse` 2) after a second, and a test's next connection from
/// the probe's port could meet the old connection's remains.
fn close_with_reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Connects to a server that is up, retrying a refused connection for up
/// to a second and saying so on stderr: CI saw a connection to a running,
/// listening server refused once in hundreds of runs (both servers alive,
/// its log clean), which looks like a loopback port-reuse collision rather
/// than the server; a listener that has really gone still fails the test.
fn connect_retrying(port: u16) -> std::io::Result<TcpStream> {
    let mut tries = 0;
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && tries < 20 => {
                tries += 1;
                eprintln!("connect to port {port} refused ({e}); retry {tries}");
                std::thread::sleep(Duration::from_millis(50));
            }
            r => return r,
        }
    }
}

/// The last lines of a server's log, for failure messages.
fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(30);
    format!(
        "--- {} (last {} lines)\n{}",
        path.display(),
        lines.len() - from,
        lines[from..].join("\n")
    )
}

/// A raw RESP connection.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// Encodes a command as a RESP multibulk request.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Conn {
    pub fn connect(port: u16) -> Conn {
        let stream = connect_retrying(port).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set timeout");
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn send(&mut self, args: &[&[u8]]) {
        self.send_raw(&encode(args));
    }

    /// Sends a command and returns the raw bytes of its reply.
    pub fn cmd(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(args);
        self.read_reply()
            .expect("a reply before the connection closed")
    }

    /// Like [`Conn::cmd`] with string arguments.
    pub fn cmd_str(&mut self, args: &[&str]) -> Vec<u8> {
        let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.cmd(&v)
    }

    /// Reads exactly one reply; `None` if the server closed the connection
    /// first.
    pub fn read_reply(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(n) = reply_len(&self.buf) {
                let rest = self.buf.split_off(n);
                return Some(std::mem::replace(&mut self.buf, rest));
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// Like [`Conn::read_reply`], but gives up after `wait` (then `None`):
    /// for checking that a blocked client has *not* been answered.
    pub fn try_reply(&mut self, wait: Duration) -> Option<Vec<u8>> {
        self.stream
            .set_read_timeout(Some(wait))
            .expect("set timeout");
        let r = loop {
            if let Some(n) = reply_len(&self.buf) {
                let rest = self.buf.split_off(n);
                break Some(std::mem::replace(&mut self.buf, rest));
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => break None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => break None,
            }
        };
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set timeout");
        r
    }

    /// True if the server closed the connection (after any pending replies,
    /// which are discarded).
    pub fn is_closed(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// Length of the first complete RESP2/RESP3 reply in `buf`, if complete.
pub fn reply_len(buf: &[u8]) -> Option<usize> {
    let eol = buf.windows(2).position(|w| w == b"\r\n")?;
    // Only lengths are parsed; other lines (errors) may hold any bytes.
    let head = || std::str::from_utf8(&buf[1..eol]).ok();
    let next = eol + 2;
    match buf.first()? {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Some(next),
        b'$' | b'=' | b'!' => {
            let n: i64 = head()?.parse().ok()?;
            if n < 0 {
                return Some(next);
            }
            let end = next + n as usize + 2;
            (buf.len() >= end).then_some(end)
        }
        t @ (b'*' | b'~' | b'%' | b'>' | b'|') => {
            let mut n: i64 = head()?.parse().ok()?;
            if n < 0 {
                return Some(next);
            }
            if *t == b'%' || *t == b'|' {
                n *= 2;
            }
            let mut pos = next;
            for _ in 0..n {
                pos += reply_len(&buf[pos..])?;
            }
            Some(pos)
        }
        _ => None,
    }
}

/// A parsed reply, for canonical comparisons (sorting unordered arrays).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reply {
    /// Type byte and the line after it (simple, error, int, null, double...).
    Line(u8, Vec<u8>),
    /// Type byte (`$`, `=`, `!`) and payload.
    Blob(u8, Vec<u8>),
    /// Type byte (`*`, `~`, `%`, `>`) and elements (maps flattened).
    Agg(u8, Vec<Reply>),
}

impl Reply {
    pub fn parse(buf: &[u8]) -> Option<Reply> {
        Self::parse_at(buf).map(|(r, _)| r)
    }

    fn parse_at(buf: &[u8]) -> Option<(Reply, usize)> {
        let eol = buf.windows(2).position(|w| w == b"\r\n")?;
        let t = *buf.first()?;
        let head = &buf[1..eol];
        let next = eol + 2;
        let num = || -> Option<i64> { std::str::from_utf8(head).ok()?.parse().ok() };
        match t {
            b'$' | b'=' | b'!' => {
                let n = num()?;
                if n < 0 {
                    return Some((Reply::Line(t, head.to_vec()), next));
                }
                let end = next + n as usize;
                Some((Reply::Blob(t, buf.get(next..end)?.to_vec()), end + 2))
            }
            b'*' | b'~' | b'%' | b'>' | b'|' => {
                let mut n = num()?;
                if n < 0 {
                    return Some((Reply::Line(t, head.to_vec()), next));
                }
                if t == b'%' || t == b'|' {
                    n *= 2;
                }
                let mut pos = next;
                let mut items = vec![];
                for _ in 0..n {
                    let (r, used) = Self::parse_at(&buf[pos..])?;
                    items.push(r);
                    pos += used;
                }
                Some((Reply::Agg(t, items), pos))
            }
            _ => Some((Reply::Line(t, head.to_vec()), next)),
        }
    }

    /// Sorts the elements of an array reply (for replies whose order Redis
    /// leaves unspecified, such as KEYS).
    pub fn sorted(self) -> Reply {
        match self {
            Reply::Agg(t, items) => {
                let mut items: Vec<Reply> = items.into_iter().map(Reply::sorted).collect();
                items.sort();
                Reply::Agg(t, items)
            }
            other => other,
        }
    }

    pub fn items(&self) -> &[Reply] {
        match self {
            Reply::Agg(_, v) => v,
            _ => &[],
        }
    }
}

/// Runs redis-cli-style lines (see `split_line`) against both servers and
/// returns a description of every mismatch.
pub fn split_line(line: &str) -> Vec<Vec<u8>> {
    // Same quoting rules as redis-cli / redis.conf: "double" with escapes,
    // 'single'.
    let mut out = vec![];
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let mut cur = vec![];
        if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                    match b[i] {
                        b'n' => cur.push(b'\n'),
                        b'r' => cur.push(b'\r'),
                        b't' => cur.push(b'\t'),
                        b'x' if i + 2 < b.len() => {
                            let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
                            cur.push(u8::from_str_radix(h, 16).unwrap_or(0));
                            i += 2;
                        }
                        c => cur.push(c),
                    }
                } else {
                    cur.push(b[i]);
                }
                i += 1;
            }
            i += 1;
        } else if b[i] == b'\'' {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                cur.push(b[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                cur.push(b[i]);
                i += 1;
            }
        }
        out.push(cur);
    }
    out
}

/// Shows a raw reply readably in assertion messages.
pub fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).replace("\r\n", "\\r\\n")
}

/// True if redis-server is on PATH.
pub fn redis_available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
