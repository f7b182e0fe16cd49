//! Black-box tests of the `cinnabar-server` binary over real TCP: start-up
//! arguments and config files, real client tools, shutdown paths.

use cinnabar_tests::{cinnabar_bin, Server};
use std::process::Command;
use std::time::Duration;

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli is installed with redis-tools");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn redis_cli_talks_to_it() {
    let s = Server::cinnabar(&[]);
    assert_eq!(redis_cli(s.port, &["ping"]), "PONG");
    assert_eq!(redis_cli(s.port, &["set", "a", "1"]), "OK");
    assert_eq!(redis_cli(s.port, &["get", "a"]), "1");
    assert_eq!(redis_cli(s.port, &["incr", "a"]), "2");
    // redis-cli -3 negotiates RESP3 with HELLO.
    assert_eq!(redis_cli(s.port, &["-3", "get", "a"]), "2");
    let info = redis_cli(s.port, &["info", "server"]);
    assert!(info.contains("redis_version:7.0.15"), "{info}");
    assert!(info.contains("cinnabar_version:"), "{info}");
}

#[test]
fn redis_benchmark_completes() {
    let s = Server::cinnabar(&[]);
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &s.port.to_string(),
            "-q",
            "-t",
            "set,get",
            "-n",
            "20000",
            "-c",
            "20",
            "-P",
            "4",
        ])
        .output()
        .expect("redis-benchmark is installed with redis-tools");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SET:") && text.contains("GET:"), "{text}");
    // Every SET landed: the keyspace has the benchmark's key.
    assert_eq!(redis_cli(s.port, &["exists", "key:__rand_int__"]), "1");
}

#[test]
fn config_file_and_arguments() {
    let dir = std::env::temp_dir().join(format!("cinnabar-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let conf = dir.join("redis.conf");
    std::fs::write(
        &conf,
        "# a redis.conf\nrequirepass \"s3cret\"\ndatabases 4\nhz 20\nappendfsync everysec\n",
    )
    .expect("write conf");
    let conf = conf.to_str().expect("utf8 path");
    let s = Server::cinnabar_with_file(Some(conf), &[]);
    assert_eq!(
        redis_cli(s.port, &["ping"]),
        "NOAUTH Authentication required."
    );
    assert_eq!(
        redis_cli(
            s.port,
            &["-a", "s3cret", "--no-auth-warning", "select", "4"]
        ),
        "ERR DB index is out of range"
    );
    assert_eq!(
        redis_cli(
            s.port,
            &["-a", "s3cret", "--no-auth-warning", "config", "get", "hz"]
        ),
        "hz\n20"
    );
    // Later arguments override the file, as with redis-server.
    let s2 = Server::cinnabar_with_file(Some(conf), &["--requirepass", "other"]);
    assert_eq!(
        redis_cli(s2.port, &["-a", "other", "--no-auth-warning", "ping"]),
        "PONG"
    );
}

#[test]
fn invalid_arguments_fail_at_start() {
    let out = Command::new(cinnabar_bin())
        .args(["--port", "notaport"])
        .output()
        .expect("run server");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FATAL CONFIG"), "{err}");
}

#[test]
fn shutdown_command_stops_the_process() {
    let mut s = Server::cinnabar(&[]);
    let mut c = s.connect();
    c.send_raw(b"SHUTDOWN NOSAVE\r\n");
    assert!(c.read_reply().is_none(), "SHUTDOWN closes without a reply");
    let status = s.wait_exit(Duration::from_secs(5)).expect("exits");
    assert!(status.success(), "{status}");
}

#[test]
fn sigterm_stops_the_process_cleanly() {
    let mut s = Server::cinnabar(&[]);
    let ok = Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let status = s.wait_exit(Duration::from_secs(5)).expect("exits");
    assert!(status.success(), "{status}");
}

#[test]
fn maxclients_is_enforced() {
    let s = Server::cinnabar(&["--maxclients", "2"]);
    let mut a = s.connect();
    // Wait until the server has noticed that the start-up probe closed.
    for _ in 0..1000 {
        let info = String::from_utf8_lossy(&a.cmd_str(&["INFO", "clients"])).into_owned();
        if info.contains("connected_clients:1\r\n") {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut b = s.connect();
    assert_eq!(a.cmd_str(&["PING"]), b"+PONG\r\n");
    assert_eq!(b.cmd_str(&["PING"]), b"+PONG\r\n");
    let mut c = s.connect();
    assert_eq!(
        c.read_reply().as_deref(),
        Some(&b"-ERR max number of clients reached\r\n"[..])
    );
    assert!(c.is_closed());
}

#[test]
fn large_values_round_trip() {
    let s = Server::cinnabar(&[]);
    let mut c = s.connect();
    let big = vec![b'x'; 20 * 1024 * 1024];
    assert_eq!(c.cmd(&[b"SET", b"big", &big]), b"+OK\r\n");
    let reply = c.cmd(&[b"GET", b"big"]);
    assert_eq!(&reply[..12], b"$20971520\r\nx");
    assert_eq!(reply.len(), big.len() + 13);
    assert_eq!(c.cmd_str(&["STRLEN", "big"]), b":20971520\r\n");
}
