//! Differential tests: the command sequences in `tests/cases/*.redis` go to
//! genuine Redis 7.0 and to Cinnabar, and the raw replies must be equal byte
//! for byte.
//!
//! Case file syntax: one command per line in redis-cli quoting; `#` starts a
//! comment. A line may start with a directive for replies that legitimately
//! differ:
//! - `~sort CMD...`: compare after sorting the array (order unspecified).
//! - `~type CMD...`: compare only the reply's type byte (random results).
//! - `~skip CMD...`: run on both, compare nothing (e.g. TIME).
//! - `~approx N CMD...`: integer replies within N of each other (clocks).
//! - `~replies N CMD...`: the command answers with N replies (SUBSCRIBE a b);
//!   all are compared.
//!
//! Each file starts from FLUSHALL on fresh connections.

use cinnabar_tests::{show, split_line, Conn, Reply, Server};

fn run_file(name: &str, text: &str, redis: &Server, ours: &Server, failures: &mut Vec<String>) {
    let mut r = redis.connect();
    let mut c = ours.connect();
    for conn in [&mut r, &mut c] {
        conn.cmd_str(&["FLUSHALL"]);
        conn.cmd_str(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
    }
    for (lineno, raw_line) in text.lines().enumerate() {
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (directive, rest) = match line.strip_prefix('~') {
            Some(d) => {
                let (d, rest) = d.split_once(' ').unwrap_or((d, ""));
                (Some(d), rest)
            }
            None => (None, line),
        };
        let (approx, rest) = if directive == Some("approx") {
            let (n, rest) = rest.split_once(' ').expect("~approx N CMD");
            (n.parse::<i64>().expect("~approx N"), rest)
        } else {
            (0, rest)
        };
        let (replies, rest) = if directive == Some("replies") {
            let (n, rest) = rest.split_once(' ').expect("~replies N CMD");
            (n.parse::<usize>().expect("~replies N"), rest)
        } else {
            (1, rest)
        };
        let args = split_line(rest);
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        let (mut rr, mut cr) = (exchange(&mut r, &argv), exchange(&mut c, &argv));
        for _ in 1..replies {
            rr.extend(r.read_reply().unwrap_or_else(|| b"<closed>".to_vec()));
            cr.extend(c.read_reply().unwrap_or_else(|| b"<closed>".to_vec()));
        }
        let equal = match directive {
            None | Some("replies") => rr == cr,
            Some("skip") => true,
            Some("sort") => parse(&rr).sorted() == parse(&cr).sorted(),
            Some("type") => rr.first() == cr.first(),
            Some("approx") => {
                let num = |b: &[u8]| -> i64 {
                    String::from_utf8_lossy(&b[1..b.len() - 2])
                        .parse()
                        .unwrap_or(i64::MIN)
                };
                rr.first() == Some(&b':')
                    && cr.first() == Some(&b':')
                    && (num(&rr) - num(&cr)).abs() <= approx
            }
            Some(d) => panic!("{name}:{}: unknown directive ~{d}", lineno + 1),
        };
        if !equal {
            failures.push(format!(
                "{name}:{}: {line}\n    redis:    {}\n    cinnabar: {}",
                lineno + 1,
                show(&rr),
                show(&cr)
            ));
        }
    }
}

/// Sends a command; a closed connection reads as the marker `<closed>`.
fn exchange(conn: &mut Conn, argv: &[&[u8]]) -> Vec<u8> {
    conn.send(argv);
    conn.read_reply().unwrap_or_else(|| b"<closed>".to_vec())
}

fn parse(b: &[u8]) -> Reply {
    Reply::parse(b).unwrap_or(Reply::Line(b'?', b.to_vec()))
}

#[test]
fn curated_cases_match_redis() {
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/cases exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "redis"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no case files in {}", dir.display());
    let mut failures = vec![];
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read case file");
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        run_file(&name, &text, &redis, &ours, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} replies differ from Redis 7.0:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
