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

/// Sends every command to both servers and records replies that differ.
struct Pair {
    r: Conn,
    c: Conn,
    failures: Vec<String>,
    compared: usize,
}

impl Pair {
    fn new(redis: &Server, ours: &Server) -> Pair {
        let mut p = Pair {
            r: redis.connect(),
            c: ours.connect(),
            failures: vec![],
            compared: 0,
        };
        p.run(&["FLUSHALL"]);
        p
    }

    fn run_bytes(&mut self, argv: &[&[u8]]) -> Vec<u8> {
        let (rr, cr) = (exchange(&mut self.r, argv), exchange(&mut self.c, argv));
        self.compared += 1;
        if rr != cr && self.failures.len() < 40 {
            let line: Vec<String> = argv
                .iter()
                .map(|a| {
                    let s = String::from_utf8_lossy(a);
                    if s.len() > 40 {
                        format!("<{} bytes>", s.len())
                    } else {
                        s.into_owned()
                    }
                })
                .collect();
            self.failures.push(format!(
                "{}\n    redis:    {}\n    cinnabar: {}",
                line.join(" "),
                brief(&rr, &cr),
                brief(&cr, &rr)
            ));
        }
        rr
    }

    fn run(&mut self, argv: &[&str]) -> Vec<u8> {
        let v: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
        self.run_bytes(&v)
    }

    /// OBJECT ENCODING of `key`, and its DUMP payload unless the encoding
    /// is a hash table (whose order is each server's hash order).
    fn check(&mut self, key: &str) {
        let enc = self.run(&["OBJECT", "ENCODING", key]);
        if enc != b"$9\r\nhashtable\r\n" {
            self.run(&["DUMP", key]);
        }
    }
}

/// A reply for a failure message: whole if short, else its length and the
/// bytes around the first difference from `other`.
fn brief(reply: &[u8], other: &[u8]) -> String {
    if reply.len() <= 120 {
        return show(reply);
    }
    let at = reply
        .iter()
        .zip(other)
        .position(|(a, b)| a != b)
        .unwrap_or(reply.len().min(other.len()));
    let from = at.saturating_sub(16);
    let to = (at + 32).min(reply.len());
    format!(
        "{} bytes, first difference at {at}: ...{}...",
        reply.len(),
        show(&reply[from..to])
    )
}

/// OBJECT ENCODING (and DUMP, which shows the representation byte for byte:
/// intset widths, listpack contents, quicklist node boundaries and
/// compression) at and around every size threshold of every collection,
/// growing each key one element past the threshold and shrinking it back,
/// with thresholds changed by CONFIG SET before and after keys exist.
#[test]
fn encoding_thresholds_match_redis() {
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let mut p = Pair::new(&redis, &ours);

    // Hashes: entries.
    for t in [0usize, 1, 2, 3, 8, 128] {
        p.run(&["CONFIG", "SET", "hash-max-listpack-entries", &t.to_string()]);
        p.run(&["DEL", "h"]);
        for i in 0..t + 2 {
            p.run(&["HSET", "h", &format!("f{i}"), &format!("v{i}")]);
            p.check("h");
        }
        for i in 0..t + 2 {
            p.run(&["HDEL", "h", &format!("f{i}")]);
            p.check("h");
        }
    }
    p.run(&["CONFIG", "SET", "hash-max-listpack-entries", "128"]);
    // Hashes: value and field lengths; HSETNX, HINCRBYFLOAT and HMSET too.
    for v in [0usize, 1, 5, 64] {
        p.run(&["CONFIG", "SET", "hash-max-listpack-value", &v.to_string()]);
        for len in [v.saturating_sub(1), v, v + 1] {
            let long = "x".repeat(len);
            p.run(&["DEL", "h", "h2", "h3", "h4"]);
            p.run(&["HSET", "h", "a", "b"]);
            p.run(&["HSET", "h", "f", &long]);
            p.check("h");
            p.run(&["HSET", "h2", &long, "x"]);
            p.check("h2");
            p.run(&["HSETNX", "h3", "f", &long]);
            p.check("h3");
            p.run(&["HMSET", "h4", "a", "1", &long, "2"]);
            p.check("h4");
        }
        p.run(&["DEL", "hf"]);
        p.run(&["HINCRBYFLOAT", "hf", "f", "1.5"]);
        p.check("hf");
        p.run(&["HINCRBYFLOAT", "hf", "f", "0.333333333333"]);
        p.check("hf");
    }
    p.run(&["CONFIG", "SET", "hash-max-listpack-value", "64"]);

    // Sets: intset entries, widths, non-integers, and stored results.
    for t in [0usize, 1, 2, 3, 8, 512] {
        p.run(&["CONFIG", "SET", "set-max-intset-entries", &t.to_string()]);
        p.run(&["DEL", "s"]);
        for i in 0..t + 2 {
            p.run(&["SADD", "s", &(i as i64 * 7 - 3).to_string()]);
            p.check("s");
        }
        for i in 0..t + 2 {
            p.run(&["SREM", "s", &(i as i64 * 7 - 3).to_string()]);
            p.check("s");
        }
        for n in [t.saturating_sub(1), t, t + 1] {
            let members: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            let mut args = vec!["SADD", "src"];
            args.extend(members.iter().map(|s| s.as_str()));
            p.run(&["DEL", "src", "src2", "dst"]);
            if n > 0 {
                p.run(&args);
                p.run(&["SADD", "src2", "0", "x"]);
            }
            p.run(&["SUNIONSTORE", "dst", "src"]);
            p.check("dst");
            p.run(&["SINTERSTORE", "dst", "src", "src"]);
            p.check("dst");
            p.run(&["SDIFFSTORE", "dst", "src", "src2"]);
            p.check("dst");
            p.run(&["SMOVE", "src2", "src", "x"]);
            p.check("src");
        }
    }
    p.run(&["CONFIG", "SET", "set-max-intset-entries", "512"]);
    p.run(&["DEL", "w"]);
    for v in [
        "1",
        "-32768",
        "32768",
        "-2147483648",
        "2147483648",
        "-9223372036854775808",
    ] {
        p.run(&["SADD", "w", v]);
        p.check("w");
    }
    for v in ["-9223372036854775808", "2147483648", "32768"] {
        p.run(&["SREM", "w", v]);
        p.check("w");
    }
    // Redis 7.0 has no listpack sets.
    p.run(&["CONFIG", "SET", "set-max-listpack-entries", "1"]);
    p.run(&["CONFIG", "GET", "set-max-listpack-entries"]);

    // Sorted sets: entries, then member lengths, then stored results.
    for t in [0usize, 1, 2, 3, 8, 128] {
        p.run(&["CONFIG", "SET", "zset-max-listpack-entries", &t.to_string()]);
        p.run(&["DEL", "z"]);
        for i in 0..t + 2 {
            p.run(&["ZADD", "z", &format!("{}.5", i % 5), &format!("m{i}")]);
            p.check("z");
        }
        for i in 0..t + 2 {
            p.run(&["ZREM", "z", &format!("m{i}")]);
            p.check("z");
        }
        p.run(&["DEL", "big"]);
        for i in 0..t + 2 {
            p.run(&["ZADD", "big", &i.to_string(), &format!("m{i}")]);
        }
        for n in [t.saturating_sub(1), t, t + 1] {
            let stop = (n as i64 - 1).to_string();
            p.run(&["ZRANGESTORE", "dst", "big", "0", &stop]);
            p.check("dst");
            p.run(&["ZUNIONSTORE", "dst", "1", "big", "WEIGHTS", "2"]);
            p.check("dst");
            p.run(&["ZRANGESTORE", "part", "big", "0", &stop]);
            p.run(&["ZINTERSTORE", "dst", "2", "big", "part"]);
            p.check("dst");
            p.run(&["ZDIFFSTORE", "dst", "1", "part"]);
            p.check("dst");
            p.run(&["DEL", "g"]);
            let mut geo = vec!["GEOADD".to_string(), "g".to_string()];
            for i in 0..n {
                geo.extend([format!("{}", 10 + i), "20".into(), format!("p{i}")]);
            }
            if n > 0 {
                let g: Vec<&str> = geo.iter().map(|s| s.as_str()).collect();
                p.run(&g);
                p.check("g");
            }
        }
    }
    p.run(&["CONFIG", "SET", "zset-max-listpack-entries", "128"]);
    for v in [0usize, 1, 5, 64] {
        p.run(&["CONFIG", "SET", "zset-max-listpack-value", &v.to_string()]);
        for len in [v.saturating_sub(1), v, v + 1] {
            let long = "m".repeat(len);
            p.run(&["DEL", "z", "z2", "z3"]);
            p.run(&["ZADD", "z", "1", "a"]);
            p.run(&["ZADD", "z", "2", &long]);
            p.check("z");
            p.run(&["ZINCRBY", "z2", "1", &long]);
            p.check("z2");
            p.run(&["ZADD", "z3", "1", &long]);
            p.check("z3");
            p.run(&["ZRANGESTORE", "z4", "z", "0", "-1"]);
            p.check("z4");
        }
    }
    p.run(&["CONFIG", "SET", "zset-max-listpack-value", "64"]);

    // Thresholds lowered under existing keys: Redis converts on the next
    // write that checks, not at CONFIG SET.
    p.run(&["DEL", "h", "s", "z"]);
    p.run(&["HSET", "h", "a", "1", "b", "2", "c", "3"]);
    p.run(&["SADD", "s", "1", "2", "3"]);
    p.run(&["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
    p.run(&["CONFIG", "SET", "hash-max-listpack-entries", "2"]);
    p.run(&["CONFIG", "SET", "set-max-intset-entries", "2"]);
    p.run(&["CONFIG", "SET", "zset-max-listpack-entries", "2"]);
    for k in ["h", "s", "z"] {
        p.check(k);
    }
    // Updates of existing elements, then reads, then new elements.
    p.run(&["HSET", "h", "a", "9"]);
    p.check("h");
    p.run(&["SADD", "s", "1"]);
    p.check("s");
    p.run(&["ZADD", "z", "9", "a"]);
    p.check("z");
    p.run(&["ZINCRBY", "z", "1", "b"]);
    p.check("z");
    p.run(&["HSET", "h", "d", "4"]);
    p.check("h");
    p.run(&["SADD", "s", "4"]);
    p.check("s");
    p.run(&["ZADD", "z", "4", "d"]);
    p.check("z");
    // RESTORE of a payload above the thresholds converts as a load does.
    p.run(&["CONFIG", "SET", "hash-max-listpack-entries", "128"]);
    p.run(&["CONFIG", "SET", "set-max-intset-entries", "512"]);
    p.run(&["CONFIG", "SET", "zset-max-listpack-entries", "128"]);
    p.run(&["DEL", "h", "s", "z"]);
    p.run(&["HSET", "h", "a", "1", "b", "2", "c", "3"]);
    p.run(&["SADD", "s", "1", "2", "3"]);
    p.run(&["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
    let dumps: Vec<(&str, Vec<u8>)> = ["h", "s", "z"]
        .into_iter()
        .map(|k| (k, p.run(&["DUMP", k])))
        .collect();
    p.run(&["CONFIG", "SET", "hash-max-listpack-entries", "2"]);
    p.run(&["CONFIG", "SET", "set-max-intset-entries", "2"]);
    p.run(&["CONFIG", "SET", "zset-max-listpack-entries", "2"]);
    for (k, d) in dumps {
        // The bulk string's payload (after `$<len>\r\n`, before `\r\n`).
        let start = d.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        let payload = &d[start..d.len().saturating_sub(2)];
        let key = format!("{k}-restored");
        p.run_bytes(&[b"RESTORE", key.as_bytes(), b"0", payload]);
        p.check(&key);
    }
    // Old names are aliases.
    for (name, val) in [
        ("hash-max-ziplist-entries", "3"),
        ("hash-max-ziplist-value", "10"),
        ("zset-max-ziplist-entries", "3"),
        ("zset-max-ziplist-value", "10"),
        ("list-max-ziplist-size", "4"),
    ] {
        p.run(&["CONFIG", "SET", name, val]);
        p.run(&["CONFIG", "GET", name]);
        let new = name.replace("ziplist", "listpack");
        p.run(&["CONFIG", "GET", &new]);
    }

    // Lists: quicklist node boundaries by count and by bytes (negative
    // sizes), with and without compression, pushes and pops at both ends,
    // and edits in the middle.
    for size in [-5i64, -4, -3, -2, -1, 1, 2, 3, 5] {
        for depth in [0, 1, 2] {
            p.run(&["CONFIG", "SET", "list-max-listpack-size", &size.to_string()]);
            p.run(&["CONFIG", "SET", "list-compress-depth", &depth.to_string()]);
            p.run(&["DEL", "l"]);
            // Byte limits: 4096 << (-size - 1); items big enough to cross
            // a few nodes, compressible (repeated) and not.
            let (n, item_len) = if size < 0 {
                let limit = 4096usize << (-size - 1);
                (limit * 3 / 1500 + 2, 1500)
            } else {
                (size as usize * 3 + 1, 10)
            };
            for i in 0..n {
                let item = if i % 2 == 0 {
                    format!("{i:0>width$}", width = item_len)
                } else {
                    (0..item_len)
                        .map(|j| char::from(b'a' + ((i * 7 + j * 13) % 26) as u8))
                        .collect()
                };
                let push = if i % 3 == 0 { "LPUSH" } else { "RPUSH" };
                p.run(&[push, "l", &item]);
                if size > 0 || i % 4 == 0 || i + 1 == n {
                    p.check("l");
                }
            }
            p.run(&["LINSERT", "l", "BEFORE", "0000000003", "mid"]);
            p.run(&["LSET", "l", "1", "changed"]);
            p.run(&["LREM", "l", "1", "mid"]);
            p.check("l");
            p.run(&["LTRIM", "l", "1", "-2"]);
            p.check("l");
            // An element larger than a byte-limited node.
            p.run(&["RPUSH", "l", &"y".repeat(70000)]);
            p.check("l");
            while p.run(&["LLEN", "l"]) != b":0\r\n" {
                p.run(&["RPOP", "l", "2"]);
                p.run(&["LPOP", "l"]);
                p.check("l");
            }
        }
    }
    // LINSERT (splits, merges, neighbours with room), LSET with elements
    // larger than a node, LREM from either end: at random places in
    // multi-node lists, with distinct elements so every pivot is exact.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for size in [-2i64, -1, 1, 2, 4, 7] {
        p.run(&["CONFIG", "SET", "list-max-listpack-size", &size.to_string()]);
        p.run(&["DEL", "l"]);
        let item_len = if size < 0 { 700 } else { 3 };
        let mut names: Vec<String> = vec![];
        for i in 0..24 {
            let v = format!("{i:0>item_len$}");
            p.run(&["RPUSH", "l", &v]);
            names.push(v);
        }
        p.check("l");
        for step in 0..150 {
            let pivot = names[rnd(names.len())].clone();
            match rnd(10) {
                0..=5 => {
                    let len = [1, 5, 60, 700, 3000, 9000][rnd(6)];
                    let v = format!("n{step}-{}", "v".repeat(len));
                    let side = if rnd(2) == 0 { "BEFORE" } else { "AFTER" };
                    p.run(&["LINSERT", "l", side, &pivot, &v]);
                    names.push(v);
                }
                6 | 7 => {
                    let v = format!("s{step}-{}", "w".repeat([2, 800, 9000][rnd(3)]));
                    let llen = names.len();
                    let idx = rnd(llen) as i64 - if rnd(2) == 0 { llen as i64 } else { 0 };
                    p.run(&["LSET", "l", &idx.to_string(), &v]);
                }
                _ => {
                    let count = ["1", "-1", "0"][rnd(3)];
                    p.run(&["LREM", "l", count, &pivot]);
                }
            }
            p.check("l");
            // The pivots still present, from Redis's own view of the list.
            let range = p.run(&["LRANGE", "l", "0", "-1"]);
            names = match Reply::parse(&range) {
                Some(Reply::Agg(_, items)) => items
                    .iter()
                    .filter_map(|r| match r {
                        Reply::Blob(_, b) => Some(String::from_utf8_lossy(b).into_owned()),
                        _ => None,
                    })
                    .collect(),
                _ => vec![],
            };
            if names.len() < 4 {
                for i in 0..8 {
                    let v = format!("r{step}-{i}");
                    p.run(&["RPUSH", "l", &v]);
                    names.push(v);
                }
            }
        }
    }
    p.run(&["CONFIG", "SET", "list-max-listpack-size", "-2"]);
    p.run(&["CONFIG", "SET", "list-compress-depth", "0"]);

    assert!(p.compared > 3000, "only {} commands compared", p.compared);
    assert!(
        p.failures.is_empty(),
        "{} replies differ from Redis 7.0:\n{}",
        p.failures.len(),
        p.failures.join("\n")
    );
}
