//! TLS sessions with real clients: certificates are generated here (rcgen),
//! then redis-cli --tls (with and without a client certificate) and redis-py
//! talk to cinnabar-server's tls-port, and a plaintext client on the TLS
//! port is turned away without harming the server.

use cinnabar_tests::{free_port, fresh_dir, Conn, Server};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// PEM files: a CA, a server certificate for 127.0.0.1/localhost, two
/// client certificates (CN "client" and CN "alice"), and a second CA nobody trusts (with its client).
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn generate(dir: &Path) -> Certs {
        let write = |name: &str, pem: String| {
            std::fs::write(dir.join(name), pem).expect("write a PEM file");
        };
        let make_ca = |cn: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, cn);
            let key = KeyPair::generate().expect("CA key");
            let cert = p.self_signed(&key).expect("self-signed CA");
            (cert, key)
        };
        let (ca, ca_key) = make_ca("Cinnabar Test CA");
        let (rogue, rogue_key) = make_ca("Rogue CA");
        write("ca.crt", ca.pem());
        let mut sp = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("server params");
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        sp.distinguished_name.push(DnType::CommonName, "localhost");
        let skey = KeyPair::generate().expect("server key");
        let server = sp.signed_by(&skey, &ca, &ca_key).expect("server cert");
        write("server.crt", server.pem());
        write("server.key", skey.serialize_pem());
        for (name, issuer, issuer_key) in [
            ("client", &ca, &ca_key),
            ("alice", &ca, &ca_key),
            ("rogue", &rogue, &rogue_key),
        ] {
            let mut cp = CertificateParams::new(Vec::<String>::new()).expect("client params");
            cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            cp.distinguished_name.push(DnType::CommonName, name);
            let ckey = KeyPair::generate().expect("client key");
            let c = cp
                .signed_by(&ckey, issuer, issuer_key)
                .expect("client cert");
            write(&format!("{name}.crt"), c.pem());
            write(&format!("{name}.key"), ckey.serialize_pem());
        }
        Certs {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// Starts cinnabar-server with a TLS port; returns it with that port.
fn start(certs: &Certs, auth_clients: &str, extra: &[&str]) -> (Server, u16) {
    let tls_port = free_port();
    let tp = tls_port.to_string();
    let (cert, key, ca) = (
        certs.path("server.crt"),
        certs.path("server.key"),
        certs.path("ca.crt"),
    );
    let mut args = vec![
        "--tls-port",
        &tp,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        auth_clients,
    ];
    args.extend_from_slice(extra);
    let s = Server::cinnabar(&args);
    (s, tls_port)
}

/// Runs redis-cli over TLS; returns (success, stdout+stderr).
fn cli(certs: &Certs, port: u16, client: Option<&str>, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "--tls"])
        .args(["--cacert", &certs.path("ca.crt")]);
    if let Some(c) = client {
        cmd.args([
            "--cert",
            &certs.path(&format!("{c}.crt")),
            "--key",
            &certs.path(&format!("{c}.key")),
        ]);
    }
    let out = cmd.args(args).output().expect("run redis-cli");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && !text.contains("Could not") && !text.contains("Error"),
        text.trim().to_string(),
    )
}

fn cert_dir(tag: &str) -> Certs {
    let dir = fresh_dir(free_port()).join(format!("certs-{tag}"));
    std::fs::create_dir_all(&dir).expect("cert dir");
    Certs::generate(&dir)
}

#[test]
fn redis_cli_with_and_without_client_certificates() {
    let certs = cert_dir("cli");
    // tls-auth-clients yes: a certificate from the trusted CA is required.
    let (s, port) = start(&certs, "yes", &[]);
    let (ok, out) = cli(&certs, port, Some("client"), &["PING"]);
    assert!(ok && out == "PONG", "client cert, auth yes: {out}");
    let (ok, out) = cli(&certs, port, Some("client"), &["SET", "k", "over tls"]);
    assert!(ok && out == "OK", "{out}");
    let (ok, out) = cli(&certs, port, Some("client"), &["GET", "k"]);
    assert!(ok && out == "over tls", "{out}");
    let (ok, out) = cli(&certs, port, None, &["PING"]);
    assert!(
        !ok && !out.contains("PONG"),
        "no client cert must be refused: {out}"
    );
    let (ok, out) = cli(&certs, port, Some("rogue"), &["PING"]);
    assert!(
        !ok && !out.contains("PONG"),
        "untrusted client cert must be refused: {out}"
    );
    // The plaintext port still works and sees the same data.
    let mut plain = s.connect();
    assert_eq!(plain.cmd_str(&["GET", "k"]), b"$8\r\nover tls\r\n");
    drop(s);

    // optional: a client may come without a certificate, but a bad one is
    // still refused.
    let (_s, port) = start(&certs, "optional", &[]);
    let (ok, out) = cli(&certs, port, None, &["PING"]);
    assert!(ok && out == "PONG", "optional, no cert: {out}");
    let (ok, out) = cli(&certs, port, Some("client"), &["PING"]);
    assert!(ok && out == "PONG", "optional, good cert: {out}");
    let (ok, out) = cli(&certs, port, Some("rogue"), &["PING"]);
    assert!(
        !ok && !out.contains("PONG"),
        "optional, untrusted cert: {out}"
    );

    // no: certificates are not even asked for.
    let (_s, port) = start(&certs, "no", &[]);
    let (ok, out) = cli(&certs, port, None, &["PING"]);
    assert!(ok && out == "PONG", "auth no: {out}");
}

/// `tls-auth-clients-user CN` (Redis 8.6's option; 7.0 has no way to use
/// the certificate's identity): the certificate's CN is the ACL user the
/// client starts as, if that user exists and is enabled.
#[test]
fn certificate_common_name_authenticates_as_acl_user() {
    let certs = cert_dir("cn");
    let (s, port) = start(
        &certs,
        "yes",
        &["--requirepass", "s3cret", "--tls-auth-clients-user", "CN"],
    );
    let mut admin = s.connect();
    assert_eq!(admin.cmd_str(&["AUTH", "s3cret"]), b"+OK\r\n");
    assert_eq!(
        admin.cmd_str(&["ACL", "SETUSER", "alice", "on", ">alicepw", "~*", "+@all"]),
        b"+OK\r\n"
    );
    let (ok, out) = cli(&certs, port, Some("alice"), &["ACL", "WHOAMI"]);
    assert!(ok && out == "alice", "CN alice: {out}");
    // Authenticated as alice, not as default: alice's permissions apply.
    assert_eq!(
        admin.cmd_str(&["ACL", "SETUSER", "alice", "-set"]),
        b"+OK\r\n"
    );
    let (_, out) = cli(&certs, port, Some("alice"), &["SET", "k", "v"]);
    assert!(out.contains("NOPERM"), "alice may not SET: {out}");
    // CN "client" names no user: the client is not authenticated.
    let (_, out) = cli(&certs, port, Some("client"), &["ACL", "WHOAMI"]);
    assert!(out.contains("NOAUTH"), "unknown CN: {out}");
    // A disabled user is no credential either.
    assert_eq!(
        admin.cmd_str(&["ACL", "SETUSER", "alice", "off"]),
        b"+OK\r\n"
    );
    let (_, out) = cli(&certs, port, Some("alice"), &["ACL", "WHOAMI"]);
    assert!(out.contains("NOAUTH"), "disabled user: {out}");
    // Switched off at run time: certificates no longer authenticate.
    assert_eq!(
        admin.cmd_str(&["ACL", "SETUSER", "alice", "on"]),
        b"+OK\r\n"
    );
    assert_eq!(
        admin.cmd_str(&["CONFIG", "SET", "tls-auth-clients-user", "off"]),
        b"+OK\r\n"
    );
    assert_eq!(
        admin.cmd_str(&["CONFIG", "GET", "tls-auth-clients-user"]),
        b"*2\r\n$21\r\ntls-auth-clients-user\r\n$3\r\noff\r\n"
    );
    let (_, out) = cli(&certs, port, Some("alice"), &["ACL", "WHOAMI"]);
    assert!(out.contains("NOAUTH"), "option off: {out}");
    // Password authentication still works for the same user.
    let (ok, out) = cli(
        &certs,
        port,
        Some("alice"),
        &["--user", "alice", "--pass", "alicepw", "ACL", "WHOAMI"],
    );
    // (redis-cli's warning about passwords on the command line follows.)
    assert!(
        ok && out.lines().next() == Some("alice"),
        "password auth: {out}"
    );
}

#[test]
fn protocols_and_ciphersuites() {
    let certs = cert_dir("proto");
    let (_s, port) = start(
        &certs,
        "no",
        &[
            "--tls-protocols",
            "TLSv1.3",
            "--tls-ciphersuites",
            "TLS_CHACHA20_POLY1305_SHA256",
        ],
    );
    let (ok, out) = cli(&certs, port, None, &["PING"]);
    assert!(ok && out == "PONG", "TLS 1.3 only: {out}");
    // openssl s_client can tell which protocol and suite were chosen.
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-tls1_2",
        ])
        .stdin(std::process::Stdio::null())
        .output();
    if let Ok(o) = out {
        let text =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(
            text.contains("no peer certificate available") || text.contains("Cipher is (NONE)"),
            "TLS 1.2 must be refused when tls-protocols is TLSv1.3: {text}"
        );
        let o = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-tls1_3",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl s_client");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("TLS_CHACHA20_POLY1305_SHA256"),
            "the configured suite is used: {text}"
        );
    }
    // A configuration rustls cannot honour stops the server at start-up.
    let tls_port = free_port().to_string();
    let (cert, key) = (certs.path("server.crt"), certs.path("server.key"));
    let out = Command::new(cinnabar_tests::cinnabar_bin())
        .args([
            "--port",
            "0",
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-auth-clients",
            "no",
            "--tls-protocols",
            "TLSv1",
        ])
        .output()
        .expect("run cinnabar-server");
    assert!(!out.status.success(), "TLSv1 only must not start");
    // tls-auth-clients yes without a CA is refused, as in Redis.
    let out = Command::new(cinnabar_tests::cinnabar_bin())
        .args([
            "--port",
            "0",
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
        ])
        .output()
        .expect("run cinnabar-server");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("tls-ca-cert-file or tls-ca-cert-dir"),
        "{text}"
    );
}

#[test]
fn redis_py_over_tls() {
    let certs = cert_dir("py");
    let (_s, port) = start(&certs, "yes", &["--requirepass", "pw"]);
    let script = format!(
        r#"
import redis
r = redis.Redis(host="127.0.0.1", port={port}, password="pw", ssl=True,
                ssl_ca_certs="{ca}", ssl_certfile="{crt}", ssl_keyfile="{key}")
assert r.ping() is True
r.set("py", "tls")
assert r.get("py") == b"tls"
p = r.pipeline()
for i in range(100):
    p.incr("n")
assert p.execute()[-1] == 100
print("redis-py ok")
"#,
        ca = certs.path("ca.crt"),
        crt = certs.path("client.crt"),
        key = certs.path("client.key"),
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 (scripts/test.sh installs redis-py)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("redis-py ok"),
        "{text}"
    );
}

#[test]
fn plaintext_client_on_tls_port_is_rejected_cleanly() {
    let certs = cert_dir("plain");
    let (s, port) = start(&certs, "no", &[]);
    let mut c = Conn::connect(port);
    c.send(&[b"PING"]);
    // The handshake fails: the server closes without a RESP reply.
    let reply = c.try_reply(Duration::from_secs(3));
    assert!(reply.is_none(), "no RESP reply on the TLS port: {reply:?}");
    assert!(c.is_closed(), "the plaintext connection is closed");
    // The server is unharmed, on both ports.
    let (ok, out) = cli(&certs, port, None, &["PING"]);
    assert!(ok && out == "PONG", "{out}");
    assert_eq!(s.connect().cmd_str(&["PING"]), b"+PONG\r\n");
    // A client that connects and says nothing does not hold the port.
    let _idle = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (ok, out) = cli(&certs, port, None, &["PING"]);
    assert!(ok && out == "PONG", "{out}");
}

// ---- Network: bind, protected mode, port 0, unix socket ----

/// A non-loopback address of this machine, if it has one (protected mode
/// only refuses clients coming from such an address).
fn external_ip() -> Option<std::net::IpAddr> {
    // The source address the kernel would use to reach a public address; no
    // packet is sent by a UDP connect.
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// What a client connecting from `ip` gets for PING (then EOF or not).
fn ping_from(ip: std::net::IpAddr, port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect((ip, port)).expect("connect");
    // Long enough for a reply; a served client stays connected.
    s.set_read_timeout(Some(Duration::from_millis(700))).ok();
    let _ = s.write_all(b"PING\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn start_redis_like(redis: bool, args: &[&str]) -> (std::process::Child, u16) {
    let port = free_port();
    let p = port.to_string();
    let dir = fresh_dir(port);
    let d = dir.display().to_string();
    let mut all = vec!["--port", &p, "--save", "", "--dir", &d];
    all.extend_from_slice(args);
    let bin = if redis {
        std::path::PathBuf::from("redis-server")
    } else {
        cinnabar_tests::cinnabar_bin()
    };
    let child = Command::new(bin)
        .args(&all)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start server");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    (child, port)
}

#[test]
fn protected_mode_refuses_remote_clients_without_password() {
    let Some(ip) = external_ip() else {
        panic!("this machine has no non-loopback address to test protected mode from");
    };
    let mut transcripts = vec![];
    for redis in [true, false] {
        let mut t = vec![];
        for args in [
            &["--bind", "0.0.0.0"][..],
            &["--bind", "0.0.0.0", "--protected-mode", "no"][..],
            &["--bind", "0.0.0.0", "--requirepass", "pw"][..],
        ] {
            let (mut child, port) = start_redis_like(redis, args);
            t.push(ping_from(ip, port));
            // Loopback clients are always served.
            t.push(ping_from("127.0.0.1".parse().expect("ip"), port));
            let _ = child.kill();
            let _ = child.wait();
        }
        transcripts.push(t);
    }
    assert!(transcripts[0][0].starts_with("-DENIED Redis is running in protected mode"));
    assert_eq!(
        transcripts[0], transcripts[1],
        "left: redis, right: cinnabar"
    );
}

#[test]
fn bind_addresses_port_zero_and_unix_socket() {
    // Several addresses, one of them optional and absent: starts on the rest.
    let (mut child, port) = start_redis_like(false, &["--bind", "127.0.0.1 -192.0.2.254"]);
    assert_eq!(Conn::connect(port).cmd_str(&["PING"]), b"+PONG\r\n");
    let _ = child.kill();
    let _ = child.wait();
    // A mandatory address that cannot be bound stops the server.
    let out = Command::new(cinnabar_tests::cinnabar_bin())
        .args([
            "--port",
            &free_port().to_string(),
            "--bind",
            "127.0.0.1 192.0.2.254",
        ])
        .output()
        .expect("run cinnabar-server");
    assert!(
        !out.status.success(),
        "an unbindable mandatory address is fatal"
    );
    // port 0 with nothing else: nowhere to listen, as Redis says.
    let out = Command::new(cinnabar_tests::cinnabar_bin())
        .args(["--port", "0"])
        .output()
        .expect("run cinnabar-server");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("Configured to not listen anywhere"),
        "{text}"
    );
    // port 0 and a unix socket with permissions: only the socket serves.
    let dir = fresh_dir(free_port());
    let sock = dir.join("cinnabar.sock").display().to_string();
    let mut child = Command::new(cinnabar_tests::cinnabar_bin())
        .args([
            "--port",
            "0",
            "--unixsocket",
            &sock,
            "--unixsocketperm",
            "700",
            "--save",
            "",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start cinnabar-server");
    let mut stream = None;
    for _ in 0..200 {
        if let Ok(s) = std::os::unix::net::UnixStream::connect(&sock) {
            stream = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let mut s = stream.expect("the unix socket accepts connections");
    {
        use std::io::{Read, Write};
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sock)
            .expect("socket file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "unixsocketperm applied");
        s.write_all(b"*1\r\n$4\r\nPING\r\n*2\r\n$6\r\nCLIENT\r\n$4\r\nINFO\r\n")
            .expect("write");
        s.set_read_timeout(Some(Duration::from_secs(3))).ok();
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("resp=") {
            let n = s.read(&mut buf).expect("read");
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("+PONG\r\n"), "{text}");
        assert!(text.contains(&format!("addr={sock}:0")), "{text}");
    }
    let _ = child.kill();
    let _ = child.wait();
}
