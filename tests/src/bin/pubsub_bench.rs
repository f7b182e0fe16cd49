//! Pub/sub throughput, for `bench/pubsub.sh` (which runs it against Redis
//! and Cinnabar side by side and prints the ratio).
//!
//! `pubsub_bench PORT SCENARIO MESSAGES` prints one line:
//! `<scenario> <published> <delivered> <seconds> <deliveries/s>`.
//!
//! Scenarios:
//! - `fanout`: 50 subscribers on one channel; one publisher pipelines
//!   PUBLISH in batches of 100. Cost is per delivery.
//! - `patterns`: 1000 channels; 50 subscribers each SUBSCRIBE to 20 of
//!   them (each channel has one subscriber) and every fifth subscriber also
//!   PSUBSCRIBEs to `ch:<d>*` for one digit (10 patterns in all, matching
//!   1 to 111 channels each). `MESSAGES` must be a multiple of 1000. The
//!   publisher goes round the 1000 channels. Cost is per publish (pattern
//!   matching) and per delivery.
//!
//! Each subscriber is a thread that counts messages by their RESP framing;
//! the run ends when every expected delivery has arrived.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SUBSCRIBERS: usize = 50;
const BATCH: usize = 100;

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one RESP2 reply (arrays of bulks and integers, as pub/sub sends)
/// and returns its first element's text.
fn read_push(r: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let n: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    let mut first = None;
    for i in 0..n {
        line.clear();
        r.read_line(&mut line).ok()?;
        if let Some(len) = line.trim_end().strip_prefix('$') {
            let len: usize = len.parse().ok()?;
            let mut buf = vec![0u8; len + 2];
            r.read_exact(&mut buf).ok()?;
            if i == 0 {
                first = Some(String::from_utf8_lossy(&buf[..len]).into_owned());
            }
        }
    }
    first
}

/// A subscriber: sends its subscriptions, waits for their confirmations,
/// then counts messages until it has `expect`.
fn subscriber(
    port: u16,
    commands: Vec<Vec<u8>>,
    confirmations: usize,
    expect: u64,
    ready: Arc<AtomicU64>,
    delivered: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut s = connect(port);
        for c in &commands {
            s.write_all(c).expect("subscribe");
        }
        let mut r = BufReader::with_capacity(1 << 16, s);
        for _ in 0..confirmations {
            read_push(&mut r).expect("subscription confirmed");
        }
        ready.fetch_add(1, Ordering::SeqCst);
        let mut got = 0;
        while got < expect {
            match read_push(&mut r).as_deref() {
                Some("message") | Some("pmessage") => got += 1,
                Some(_) => {}
                None => break,
            }
        }
        delivered.fetch_add(got, Ordering::SeqCst);
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: pubsub_bench PORT fanout|patterns MESSAGES");
        std::process::exit(2);
    }
    let port: u16 = args[1].parse().expect("port");
    let scenario = args[2].as_str();
    let messages: usize = args[3].parse().expect("messages");
    let ready = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    let channels: Vec<String> = match scenario {
        "fanout" => vec!["news".to_string()],
        "patterns" => (0..1000).map(|i| format!("ch:{i}")).collect(),
        _ => panic!("unknown scenario {scenario}"),
    };
    let mut expected_total = 0u64;
    for sub in 0..SUBSCRIBERS {
        let (cmds, confirmations, expect) = match scenario {
            "fanout" => (vec![encode(&[b"SUBSCRIBE", b"news"])], 1, messages as u64),
            _ => {
                // Channels sub*20 .. sub*20+19; each gets messages/1000.
                let mine: Vec<&[u8]> = (sub * 20..sub * 20 + 20)
                    .map(|i| channels[i].as_bytes())
                    .collect();
                let mut argv: Vec<&[u8]> = vec![b"SUBSCRIBE"];
                argv.extend(mine.iter().copied());
                let mut cmds = vec![encode(&argv)];
                let per_channel = (messages / 1000) as u64;
                let mut expect = 20 * per_channel;
                let mut confirmations = 20;
                if sub % 5 == 0 {
                    let d = sub / 5;
                    let pattern = format!("ch:{d}*");
                    let prefix = format!("ch:{d}");
                    let matched = channels.iter().filter(|c| c.starts_with(&prefix)).count();
                    cmds.push(encode(&[b"PSUBSCRIBE", pattern.as_bytes()]));
                    confirmations += 1;
                    expect += matched as u64 * per_channel;
                }
                (cmds, confirmations, expect)
            }
        };
        expected_total += expect;
        threads.push(subscriber(
            port,
            cmds,
            confirmations,
            expect,
            ready.clone(),
            delivered.clone(),
        ));
    }
    while ready.load(Ordering::SeqCst) < SUBSCRIBERS as u64 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut publisher = connect(port);
    let reader = publisher.try_clone().expect("clone");
    // Drain the publisher's integer replies on a thread so pipelining
    // never stalls on a full socket buffer.
    let replies = std::thread::spawn(move || {
        let mut r = BufReader::with_capacity(1 << 16, reader);
        let mut line = String::new();
        for _ in 0..messages {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
        }
    });
    let payload = b"0123456789abcdef0123456789abcdef";
    let start = Instant::now();
    let mut i = 0;
    while i < messages {
        let mut batch = Vec::with_capacity(BATCH * 64);
        for _ in 0..BATCH.min(messages - i) {
            let ch = &channels[i % channels.len()];
            batch.extend_from_slice(&encode(&[b"PUBLISH", ch.as_bytes(), payload]));
            i += 1;
        }
        publisher.write_all(&batch).expect("publish");
    }
    for t in threads {
        t.join().expect("subscriber");
    }
    let secs = start.elapsed().as_secs_f64();
    replies.join().expect("publisher replies");
    let got = delivered.load(Ordering::SeqCst);
    assert_eq!(got, expected_total, "every delivery arrived");
    println!(
        "{scenario} {messages} {got} {secs:.3} {:.0}",
        got as f64 / secs
    );
}
