//! Observability against genuine Redis 7.0: INFO's sections and field
//! names (every field Redis prints exists in ours, in the same order),
//! SLOWLOG and LATENCY reply shapes and error texts, CONFIG GET globs and
//! multiple parameters, CONFIG SET atomicity.
//!
//! Durations differ between servers, so timing-dependent replies are
//! compared by shape (types and fixed parts), the rest byte for byte.

use cinnabar_tests::{show, Conn, Reply, Server};

fn servers() -> (Server, Server) {
    (Server::redis(&[]), Server::cinnabar(&[]))
}

/// (section, field name) in order, from an INFO reply.
fn info_fields(c: &mut Conn, args: &[&str]) -> Vec<(String, String)> {
    let mut argv = vec!["INFO"];
    argv.extend_from_slice(args);
    let r = c.cmd_str(&argv);
    let text = String::from_utf8_lossy(&r).into_owned();
    let mut section = String::new();
    let mut out = vec![];
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("# ") {
            section = s.to_string();
            out.push((section.clone(), String::new()));
        } else if let Some((k, _)) = line.split_once(':') {
            if !line.starts_with('$') && !line.starts_with('=') {
                out.push((section.clone(), k.to_string()));
            }
        }
    }
    out
}

/// The reply with every integer replaced by 0 and every bulk in `vary`
/// positions blanked: what must match when values legitimately differ.
fn shape(r: &Reply) -> Reply {
    match r {
        Reply::Line(b':', _) => Reply::Line(b':', b"0".to_vec()),
        Reply::Agg(t, items) => Reply::Agg(*t, items.iter().map(shape).collect()),
        other => other.clone(),
    }
}

fn parse(b: &[u8]) -> Reply {
    Reply::parse(b).unwrap_or_else(|| panic!("unparsable reply {}", show(b)))
}

/// Every section and field name Redis 7.0 prints exists in ours, in the
/// same order, for the default set, "everything" and single sections.
#[test]
fn info_has_every_redis_field_in_order() {
    let (redis, ours) = servers();
    let (mut r, mut c) = (redis.connect(), ours.connect());
    for conn in [&mut r, &mut c] {
        conn.cmd_str(&["SET", "k", "v"]);
        conn.cmd_str(&["GET", "k"]);
        conn.cmd_str(&["EXPIRE", "k", "100"]);
        conn.cmd_str(&["LPUSH", "k", "x"]); // an error for errorstats
        conn.cmd_str(&["CONFIG", "GET", "maxmemory"]);
    }
    let mut failures = vec![];
    for args in [
        &[][..],
        &["everything"],
        &["all"],
        &["default"],
        &["server"],
        &["memory"],
        &["stats"],
        &["cpu", "clients"],
        &["commandstats"],
        &["latencystats"],
        &["errorstats"],
        &["keyspace"],
        &["modules"],
        &["replication", "persistence"],
    ] {
        let theirs = info_fields(&mut r, args);
        let mine = info_fields(&mut c, args);
        let missing: Vec<_> = theirs.iter().filter(|f| !mine.contains(f)).collect();
        if !missing.is_empty() {
            failures.push(format!("INFO {args:?}: missing {missing:?}"));
        }
        // Per-command and per-error lines follow Redis's hash-table order,
        // which is unspecified: those sections compare sorted.
        let canonical = |v: Vec<&(String, String)>| {
            let mut out: Vec<(String, String)> = vec![];
            let mut start = 0;
            for (s, k) in v {
                if k.is_empty() {
                    start = out.len() + 1;
                }
                out.push((s.clone(), k.clone()));
                if ["Commandstats", "Latencystats", "Errorstats"].contains(&s.as_str()) {
                    out[start..].sort();
                }
            }
            out
        };
        let order = canonical(mine.iter().filter(|f| theirs.contains(f)).collect());
        let expected = canonical(theirs.iter().collect());
        if missing.is_empty() && order != expected {
            failures.push(format!(
                "INFO {args:?}: order differs:\n{order:?}\n{expected:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The fields exporters compute with hold numbers of the right kind.
#[test]
fn info_values_parse_like_redis() {
    let ours = Server::cinnabar(&[]);
    let mut c = ours.connect();
    c.cmd_str(&["SET", "k", "v"]);
    let text = String::from_utf8_lossy(&c.cmd_str(&["INFO", "everything"])).into_owned();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:")))
            .unwrap_or_else(|| panic!("no {k}"))
            .to_string()
    };
    for k in [
        "used_memory",
        "used_memory_rss",
        "used_memory_peak",
        "used_memory_dataset",
        "total_system_memory",
        "maxmemory",
        "evicted_keys",
        "total_commands_processed",
    ] {
        assert!(get(k).parse::<u64>().is_ok(), "{k}={}", get(k));
    }
    for k in [
        "mem_fragmentation_ratio",
        "used_cpu_sys",
        "instantaneous_input_kbps",
    ] {
        assert!(get(k).parse::<f64>().is_ok(), "{k}={}", get(k));
    }
    assert!(get("used_memory_peak_perc").ends_with('%'));
    let set = get("cmdstat_set");
    assert!(
        set.starts_with("calls=1,usec=")
            && set.contains(",usec_per_call=")
            && set.ends_with(",rejected_calls=0,failed_calls=0"),
        "{set}"
    );
    let lat = get("latency_percentiles_usec_set");
    let keys: Vec<&str> = lat
        .split(',')
        .map(|p| p.split('=').next().unwrap_or(""))
        .collect();
    assert_eq!(keys, ["p50", "p99", "p99.9"], "{lat}");
}

/// SLOWLOG: entries' shape and arguments, LEN, RESET, GET's count and
/// its error, trimming of long argument lists and long arguments, HELP.
#[test]
fn slowlog_matches_redis() {
    let (redis, ours) = servers();
    let mut failures = vec![];
    let (mut r, mut c) = (redis.connect(), ours.connect());
    let long = "x".repeat(200);
    let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    for conn in [&mut r, &mut c] {
        conn.cmd_str(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
        conn.cmd_str(&["SLOWLOG", "RESET"]);
        conn.cmd_str(&["CLIENT", "SETNAME", "tester"]);
        conn.cmd_str(&["SET", "k", &long]);
        let mut args = vec!["RPUSH", "l"];
        args.extend(many.iter().map(|s| s.as_str()));
        conn.cmd_str(&args);
        conn.cmd_str(&["AUTH", "secret"]);
    }
    for args in [
        &["SLOWLOG", "GET", "10"][..],
        &["SLOWLOG", "GET", "-1"],
        &["SLOWLOG", "GET", "1"],
        &["SLOWLOG", "GET", "0"],
    ] {
        let (rr, cr) = (r.cmd_str(args), c.cmd_str(args));
        // Ids, times, durations and client ports differ; the rest may not.
        let strip = |rep: Reply| -> Reply {
            match shape(&rep) {
                Reply::Agg(t, entries) => Reply::Agg(
                    t,
                    entries
                        .into_iter()
                        .map(|e| match e {
                            Reply::Agg(t, mut f) if f.len() == 6 => {
                                f[4] = Reply::Line(b'?', b"addr".to_vec());
                                Reply::Agg(t, f)
                            }
                            other => other,
                        })
                        .collect(),
                ),
                other => other,
            }
        };
        if strip(parse(&rr)) != strip(parse(&cr)) {
            failures.push(format!(
                "{args:?}\n    redis:    {}\n    cinnabar: {}",
                show(&rr),
                show(&cr)
            ));
        }
    }
    for args in [
        &["SLOWLOG", "LEN"][..],
        &["SLOWLOG", "GET", "-2"],
        &["SLOWLOG", "GET", "x"],
        &["SLOWLOG", "GET", "1", "2"],
        &["SLOWLOG", "RESET"],
        &["SLOWLOG", "HELP"],
        &["SLOWLOG", "NOPE"],
        &["CONFIG", "SET", "slowlog-log-slower-than", "-2"],
        &["CONFIG", "SET", "slowlog-max-len", "-1"],
        &["CONFIG", "SET", "slowlog-log-slower-than", "-1"],
        &["SET", "a", "b"],
        &["SLOWLOG", "LEN"],
    ] {
        let (rr, cr) = (r.cmd_str(args), c.cmd_str(args));
        if rr != cr {
            failures.push(format!(
                "{args:?}\n    redis:    {}\n    cinnabar: {}",
                show(&rr),
                show(&cr)
            ));
        }
    }
    // slowlog-max-len keeps the newest.
    for conn in [&mut r, &mut c] {
        conn.cmd_str(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
        conn.cmd_str(&["CONFIG", "SET", "slowlog-max-len", "3"]);
        for i in 0..10 {
            conn.cmd_str(&["SET", "n", &i.to_string()]);
        }
    }
    let (rr, cr) = (
        r.cmd_str(&["SLOWLOG", "LEN"]),
        c.cmd_str(&["SLOWLOG", "LEN"]),
    );
    if rr != cr {
        failures.push(format!("max-len: {} vs {}", show(&rr), show(&cr)));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// LATENCY: DOCTOR's disabled and quiet texts, LATEST/HISTORY/GRAPH/RESET
/// after a spike (DEBUG SLEEP), HISTOGRAM's shape, errors, HELP.
#[test]
fn latency_matches_redis() {
    let (redis, ours) = servers();
    let mut failures = vec![];
    let (mut r, mut c) = (redis.connect(), ours.connect());
    let mut same = |r: &mut Conn, c: &mut Conn, args: &[&str], by_shape: bool| {
        let (rr, cr) = (r.cmd_str(args), c.cmd_str(args));
        let equal = if by_shape {
            shape(&parse(&rr)) == shape(&parse(&cr))
        } else {
            rr == cr
        };
        if !equal {
            failures.push(format!(
                "{args:?}\n    redis:    {}\n    cinnabar: {}",
                show(&rr),
                show(&cr)
            ));
        }
    };
    same(&mut r, &mut c, &["LATENCY", "DOCTOR"], false);
    same(&mut r, &mut c, &["LATENCY", "LATEST"], false);
    same(&mut r, &mut c, &["LATENCY", "HELP"], false);
    same(&mut r, &mut c, &["LATENCY", "GRAPH", "command"], false);
    same(&mut r, &mut c, &["LATENCY", "HISTORY", "command"], false);
    same(&mut r, &mut c, &["LATENCY", "RESET"], false);
    same(&mut r, &mut c, &["LATENCY", "NOPE"], false);
    same(
        &mut r,
        &mut c,
        &["CONFIG", "SET", "latency-monitor-threshold", "10"],
        false,
    );
    same(&mut r, &mut c, &["LATENCY", "DOCTOR"], false);
    same(&mut r, &mut c, &["DEBUG", "SLEEP", "0.05"], false);
    same(&mut r, &mut c, &["LATENCY", "LATEST"], true);
    same(&mut r, &mut c, &["LATENCY", "HISTORY", "command"], true);
    same(&mut r, &mut c, &["LATENCY", "HISTORY", "nothing"], false);
    // GRAPH and DOCTOR are text for people: their type and header match.
    let mut text_failures = vec![];
    for sub in ["GRAPH", "DOCTOR"] {
        let mut args = vec!["LATENCY", sub];
        if sub == "GRAPH" {
            args.push("command");
        }
        let (rr, cr) = (r.cmd_str(&args), c.cmd_str(&args));
        let first = |b: &[u8]| match parse(b) {
            Reply::Blob(t, text) => (
                t,
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .map(|l| l.split(" - ").next().unwrap_or("").to_string()),
            ),
            other => (0, Some(format!("{other:?}"))),
        };
        if first(&rr) != first(&cr) {
            text_failures.push(format!("LATENCY {sub}: {} vs {}", show(&rr), show(&cr)));
        }
    }
    same(
        &mut r,
        &mut c,
        &["LATENCY", "RESET", "command", "nothing"],
        false,
    );
    same(&mut r, &mut c, &["LATENCY", "LATEST"], false);
    same(&mut r, &mut c, &["LATENCY", "GRAPH", "command"], false);
    // HISTOGRAM: per command, calls and cumulative buckets.
    for conn in [&mut r, &mut c] {
        conn.cmd_str(&["CONFIG", "RESETSTAT"]);
        conn.cmd_str(&["SET", "a", "1"]);
        conn.cmd_str(&["SET", "a", "2"]);
        conn.cmd_str(&["GET", "a"]);
    }
    for args in [
        &["LATENCY", "HISTOGRAM", "set"][..],
        &["LATENCY", "HISTOGRAM", "get", "set", "nosuchcommand"],
        &["LATENCY", "HISTOGRAM", "lpush"],
    ] {
        let (rr, cr) = (r.cmd_str(args), c.cmd_str(args));
        // The bucket list's length depends on timing: compare the command
        // names, the calls, and that buckets are (int, int) pairs.
        let summary = |b: &[u8]| -> Vec<String> {
            let rep = parse(b);
            let items = rep.items().to_vec();
            let mut out = vec![];
            for pair in items.chunks(2) {
                out.push(format!("{:?}", pair[0]));
                let inner = pair.get(1).map(|x| x.items().to_vec()).unwrap_or_default();
                out.push(format!(
                    "{:?} {:?} {:?}",
                    inner.first(),
                    inner.get(1),
                    inner.get(2)
                ));
                let buckets = inner.get(3).map(|x| x.items().to_vec()).unwrap_or_default();
                let ok = !buckets.is_empty()
                    && buckets.iter().all(|x| matches!(x, Reply::Line(b':', _)));
                out.push(format!("buckets ok: {ok}"));
            }
            out
        };
        if summary(&rr) != summary(&cr) {
            text_failures.push(format!(
                "{args:?}\n    redis:    {}\n    cinnabar: {}",
                show(&rr),
                show(&cr)
            ));
        }
    }
    failures.extend(text_failures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// CONFIG GET with globs and several patterns; CONFIG SET of several
/// parameters at once, rolled back entirely when one is invalid.
#[test]
fn config_get_set_match_redis() {
    let (redis, ours) = servers();
    let (mut r, mut c) = (redis.connect(), ours.connect());
    let mut failures = vec![];
    let mut check = |r: &mut Conn, c: &mut Conn, args: &[&str], sort: bool| {
        let (rr, cr) = (r.cmd_str(args), c.cmd_str(args));
        let equal = if sort {
            pairs(&parse(&rr)) == pairs(&parse(&cr))
        } else {
            rr == cr
        };
        if !equal {
            failures.push(format!(
                "{args:?}\n    redis:    {}\n    cinnabar: {}",
                show(&rr),
                show(&cr)
            ));
        }
    };
    for args in [
        &["CONFIG", "GET", "maxmemory*"][..],
        &["CONFIG", "GET", "slowlog-*", "latency-*"],
        &["CONFIG", "GET", "lazyfree-*"],
        &["CONFIG", "GET", "lfu-*", "maxmemory-policy", "hz"],
        &["CONFIG", "GET", "MAXMEMORY"],
        &["CONFIG", "GET", "nonexistent"],
        &["CONFIG", "GET", "maxmemory", "maxmemory"],
    ] {
        check(&mut r, &mut c, args, true);
    }
    for args in [
        &[
            "CONFIG",
            "SET",
            "maxmemory",
            "10mb",
            "maxmemory-policy",
            "allkeys-lru",
        ][..],
        &[
            "CONFIG",
            "SET",
            "slowlog-max-len",
            "5",
            "slowlog-log-slower-than",
            "nope",
        ],
        &[
            "CONFIG",
            "SET",
            "latency-monitor-threshold",
            "3",
            "no-such-param",
            "1",
        ],
        &["CONFIG", "SET", "hz", "20", "hz", "30"],
        &["CONFIG", "SET", "maxmemory"],
    ] {
        check(&mut r, &mut c, args, false);
    }
    check(
        &mut r,
        &mut c,
        &[
            "CONFIG",
            "GET",
            "maxmemory",
            "maxmemory-policy",
            "slowlog-max-len",
            "latency-monitor-threshold",
            "hz",
        ],
        true,
    );
    check(&mut r, &mut c, &["CONFIG", "RESETSTAT"], false);
    check(&mut r, &mut c, &["CONFIG", "SET", "maxmemory", "0"], false);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A CONFIG GET reply as sorted (name, value) pairs.
fn pairs(r: &Reply) -> Vec<(Reply, Reply)> {
    let mut v: Vec<(Reply, Reply)> = r
        .items()
        .chunks(2)
        .map(|p| {
            (
                p[0].clone(),
                p.get(1).cloned().unwrap_or(Reply::Line(b'_', vec![])),
            )
        })
        .collect();
    v.sort();
    v
}

/// MEMORY: USAGE's reply types and errors, STATS's field names (nested db
/// maps included), DOCTOR on a small instance, MALLOC-STATS's type,
/// PURGE, HELP.
#[test]
fn memory_command_matches_redis() {
    let (redis, ours) = servers();
    let (mut r, mut c) = (redis.connect(), ours.connect());
    let mut failures = vec![];
    for conn in [&mut r, &mut c] {
        conn.cmd_str(&["SET", "s", "hello"]);
        conn.cmd_str(&["RPUSH", "l", "a", "b", "c"]);
        conn.cmd_str(&["EXPIRE", "s", "100"]);
    }
    for (args, by_shape) in [
        (&["MEMORY", "USAGE", "s"][..], true),
        (&["MEMORY", "USAGE", "l", "SAMPLES", "0"], true),
        (&["MEMORY", "USAGE", "nokey"], false),
        (&["MEMORY", "USAGE", "s", "SAMPLES", "x"], false),
        (&["MEMORY", "USAGE", "s", "FOO"], false),
        (&["MEMORY", "DOCTOR"], false),
        (&["MEMORY", "PURGE"], false),
        (&["MEMORY", "HELP"], false),
        (&["MEMORY", "NOPE"], false),
    ] {
        let (rr, cr) = (r.cmd_str(args), c.cmd_str(args));
        let equal = if by_shape {
            shape(&parse(&rr)) == shape(&parse(&cr))
        } else {
            rr == cr
        };
        if !equal {
            failures.push(format!(
                "{args:?}\n    redis:    {}\n    cinnabar: {}",
                show(&rr),
                show(&cr)
            ));
        }
    }
    // STATS: the same names in the same order, values of the same kinds.
    let names = |b: &[u8]| -> Vec<String> {
        fn walk(r: &Reply, out: &mut Vec<String>) {
            for pair in r.items().chunks(2) {
                if let Reply::Blob(_, k) = &pair[0] {
                    out.push(String::from_utf8_lossy(k).into_owned());
                }
                if let Some(v @ Reply::Agg(..)) = pair.get(1) {
                    walk(v, out);
                }
            }
        }
        let mut out = vec![];
        walk(&parse(b), &mut out);
        out
    };
    let (rr, cr) = (
        r.cmd_str(&["MEMORY", "STATS"]),
        c.cmd_str(&["MEMORY", "STATS"]),
    );
    if names(&rr) != names(&cr) {
        failures.push(format!(
            "MEMORY STATS names\n    redis:    {:?}\n    cinnabar: {:?}",
            names(&rr),
            names(&cr)
        ));
    }
    let (rr, cr) = (
        r.cmd_str(&["MEMORY", "MALLOC-STATS"]),
        c.cmd_str(&["MEMORY", "MALLOC-STATS"]),
    );
    if rr.first() != cr.first() {
        failures.push(format!(
            "MALLOC-STATS type: {} vs {}",
            show(&rr[..1]),
            show(&cr[..1])
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// DEBUG: DIGEST and DIGEST-VALUE equal Redis's for every type (so two
/// servers holding the same data agree), OBJECT's fields, the other
/// subcommands tools use, and their errors.
#[test]
fn debug_subcommands_match_redis() {
    let (redis, ours) = servers();
    let (mut r, mut c) = (redis.connect(), ours.connect());
    let mut failures = vec![];
    let setup: &[&[&str]] = &[
        &["SET", "s", "hello"],
        &["SET", "n", "12345"],
        &["SET", "big", &"x".repeat(100)],
        &["RPUSH", "l", "a", "b", "3"],
        &["SADD", "si", "1", "2", "-3"],
        &["SADD", "ss", "a", "b", "c"],
        &["ZADD", "z", "1.5", "a", "2", "b", "1e20", "c", "-0.1", "d"],
        &["HSET", "h", "f", "v", "g", "w"],
        &["EXPIRE", "s", "100"],
        &["SELECT", "3"],
        &["SET", "other", "db"],
        &["SELECT", "0"],
    ];
    let mut same = |r: &mut Conn, c: &mut Conn, args: &[&str]| {
        let (rr, cr) = (r.cmd_str(args), c.cmd_str(args));
        if rr != cr {
            failures.push(format!(
                "{args:?}\n    redis:    {}\n    cinnabar: {}",
                show(&rr),
                show(&cr)
            ));
        }
    };
    same(&mut r, &mut c, &["DEBUG", "DIGEST"]);
    for cmd in setup {
        same(&mut r, &mut c, cmd);
    }
    same(&mut r, &mut c, &["DEBUG", "DIGEST"]);
    same(
        &mut r,
        &mut c,
        &[
            "DEBUG",
            "DIGEST-VALUE",
            "s",
            "n",
            "big",
            "l",
            "si",
            "ss",
            "z",
            "h",
            "nokey",
        ],
    );
    same(&mut r, &mut c, &["DEBUG", "DIGEST-VALUE"]);
    for args in [
        &["DEBUG", "OBJECT", "nokey"][..],
        &["DEBUG", "OBJECT"],
        &["DEBUG", "DIGEST", "x"],
        &["DEBUG", "CHANGE-REPL-ID"],
        &["DEBUG", "CHANGE-REPL-ID", "x"],
        &["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "100"],
        &["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "abc"],
        &["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "0"],
        &["DEBUG", "JMAP"],
        &["DEBUG", "JMAP", "no"],
        &["DEBUG", "SET-ACTIVE-EXPIRE", "1"],
        &["DEBUG", "SET-ACTIVE-EXPIRE", "abc"],
        &["DEBUG", "SET-ACTIVE-EXPIRE", "2"],
        &["DEBUG", "SET-ACTIVE-EXPIRE"],
        &["DEBUG", "SET-ACTIVE-EXPIRE", "1"],
        &["DEBUG", "SLEEP", "abc"],
        &["DEBUG", "SLEEP", "0"],
        &["DEBUG", "SLEEP"],
        &["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "4293918720"],
        &["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "4293918721"],
        &["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "-1"],
        &["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "1k"],
        &["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "1gb"],
    ] {
        same(&mut r, &mut c, args);
    }
    // POPULATE: key names, values, size padding (zero bytes) and
    // truncation, existing keys left alone, argument errors.
    for args in [
        &["DEBUG", "POPULATE"][..],
        &["DEBUG", "POPULATE", "-1"],
        &["DEBUG", "POPULATE", "abc"],
        &["DEBUG", "POPULATE", "0"],
        &["DEBUG", "POPULATE", "3"],
        &["DEBUG", "POPULATE", "3", "pfx", "-2"],
        &["DEBUG", "POPULATE", "3", "pfx", "abc"],
        &["DEBUG", "POPULATE", "2", "a", "1", "extra"],
        &["DEBUG", "POPULATE", "3", "pfx", "0"],
        &["DEBUG", "POPULATE", "3", "t", "3"],
        &["DEBUG", "POPULATE", "5", "t", "12"],
        &["DEBUG", "POPULATE", "2", "s"],
        &["DEBUG", "POPULATE", "1", &"p".repeat(200)],
        &["MGET", "key:0", "key:1", "key:2", "key:3", "pfx:0", "pfx:2"],
        &["MGET", "t:0", "t:1", "t:2", "t:3", "t:4", "t:5"],
        &["GET", "s"],
        &["OBJECT", "ENCODING", "key:0"],
        &["OBJECT", "ENCODING", "t:4"],
        &["DBSIZE"],
        &["KEYS", "ppppp*"],
        &["DEBUG", "DIGEST"],
    ] {
        same(&mut r, &mut c, args);
    }
    // OBJECT: the same field names; encodings and lengths equal too.
    for key in ["s", "n", "big", "l", "si", "z", "h"] {
        let fields = |b: &[u8]| -> Vec<String> {
            String::from_utf8_lossy(b)
                .split_whitespace()
                .filter_map(|w| {
                    let (k, v) = w.split_once(':')?;
                    Some(match k {
                        "at" | "lru" | "lru_seconds_idle" => k.to_string(),
                        _ => format!("{k}:{v}"),
                    })
                })
                .collect()
        };
        let (rr, cr) = (
            r.cmd_str(&["DEBUG", "OBJECT", key]),
            c.cmd_str(&["DEBUG", "OBJECT", key]),
        );
        if fields(&rr) != fields(&cr) {
            failures.push(format!(
                "DEBUG OBJECT {key}\n    redis:    {}\n    cinnabar: {}",
                show(&rr),
                show(&cr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// CONFIG REWRITE against Redis: same file after the same CONFIG SETs
/// (comments and order kept, duplicates blanked, changes appended after
/// the signature), apart from the port and directory each server was given
/// and Redis's ACL `user` line. The appended block's order is Redis's
/// hash-table order, so it compares sorted.
#[test]
fn config_rewrite_matches_redis() {
    let base = "# A comment that must stay\nport 6379\n\n# memory\nmaxmemory 10mb\nmaxmemory-policy allkeys-lru\nmaxmemory-policy volatile-lru\nhz 10\n# trailing comment\nloglevel notice\n";
    let dir = std::env::temp_dir().join(format!("cinnabar-rewrite-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let (rfile, cfile) = (dir.join("redis.conf"), dir.join("cinnabar.conf"));
    std::fs::write(&rfile, base).expect("write redis.conf");
    std::fs::write(&cfile, base).expect("write cinnabar.conf");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _redis = Kill(
        std::process::Command::new("redis-server")
            .arg(&rfile)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--enable-debug-command", "yes", "--dir"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    let ours = Server::cinnabar_with_file(cfile.to_str(), &[]);
    let mut r = None;
    for _ in 0..100 {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            drop(s);
            r = Some(Conn::connect(port));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut r = r.expect("redis started");
    let mut c = ours.connect();
    for conn in [&mut r, &mut c] {
        let set = conn.cmd_str(&[
            "CONFIG",
            "SET",
            "maxmemory",
            "100mb",
            "maxmemory-policy",
            "allkeys-lfu",
            "slowlog-max-len",
            "200",
            "hz",
            "15",
            "lfu-log-factor",
            "12",
            "save",
            "100 10 50 5",
            "maxmemory-clients",
            "1mb",
            "lazyfree-lazy-expire",
            "yes",
        ]);
        assert_eq!(set, b"+OK\r\n");
        let rw = conn.cmd_str(&["CONFIG", "REWRITE"]);
        assert_eq!(rw, b"+OK\r\n", "{}", show(&rw));
    }
    let normalize = |text: String| -> (Vec<String>, Vec<String>) {
        let lines: Vec<String> = text
            .lines()
            .filter(|l| {
                !l.starts_with("user ") && !l.starts_with("port ") && !l.starts_with("dir ")
            })
            .map(String::from)
            .collect();
        let cut = lines
            .iter()
            .position(|l| l == "# Generated by CONFIG REWRITE")
            .unwrap_or(lines.len());
        let mut tail = lines[cut..].to_vec();
        tail.sort();
        (lines[..cut].to_vec(), tail)
    };
    let theirs = normalize(std::fs::read_to_string(&rfile).expect("read redis.conf"));
    let mine = normalize(std::fs::read_to_string(&cfile).expect("read cinnabar.conf"));
    assert_eq!(mine, theirs);
    // A server started without a file says so.
    let plain = Server::cinnabar(&[]);
    assert_eq!(
        show(&plain.connect().cmd_str(&["CONFIG", "REWRITE"])),
        "-ERR The server is running without a config file\\r\\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
