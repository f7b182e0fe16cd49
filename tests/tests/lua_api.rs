//! The `redis` API scripts see beyond call/pcall (redis.setresp and
//! Redis's RESP3 <-> Lua conversions, set_repl and its constants, log,
//! acl_check_cmd, breakpoint/debug/replicate_commands, the version), the
//! conversions of results back to RESP, and FUNCTION DUMP / RESTORE,
//! compared byte for byte with genuine Redis 7.0, from RESP2 and RESP3
//! callers.

use cinnabar_tests::{show, Conn, Server};

/// Data every corpus script may read.
const SETUP: &[&[&str]] = &[
    &["FLUSHALL"],
    &["HSET", "h", "a", "1", "b", "2"],
    &["SADD", "s", "x"],
    &["ZADD", "z", "1.5", "a", "-inf", "m"],
    &["SET", "str", "hello"],
    &["RPUSH", "l", "1", "2", "3"],
];

/// Scripts run with EVAL 0, then with EVAL from a RESP3 client.
const CORPUS: &[&str] = &[
    // Constants and the debugger's stand-ins.
    "return {redis.REDIS_VERSION, redis.REDIS_VERSION_NUM}",
    "return {redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL}",
    "return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}",
    "return redis.breakpoint()",
    "return type(redis.breakpoint())",
    "return select('#', redis.debug('x', 1))",
    "return redis.replicate_commands()",
    "local t = {} for k in pairs(redis) do t[#t + 1] = k end table.sort(t) return t",
    "return type(redis.nosuch)",
    // redis.setresp: arguments and errors.
    "return redis.setresp(4)",
    "return redis.setresp()",
    "return redis.setresp(2, 3)",
    "return redis.setresp('3')",
    "return redis.setresp('x')",
    "return redis.setresp(2.9)",
    "return redis.setresp({})",
    "return {pcall(redis.setresp, 4)}",
    "local ok, e = pcall(redis.setresp, 4) return {tostring(ok), type(e), e}",
    "local ok, e = pcall(redis.setresp, 4) error(e)",
    // RESP3 replies as Lua values.
    "redis.setresp(3) return redis.call('hgetall', 'h')",
    "redis.setresp(3) local r = redis.call('hgetall', 'h') return {r.map.a, r.map.b}",
    "redis.setresp(3) return type(redis.call('hgetall', 'nokey').map)",
    "redis.setresp(3) return redis.call('smembers', 's')",
    "redis.setresp(3) local r = redis.call('smembers', 's') return tostring(r.set.x)",
    "redis.setresp(3) return redis.call('zscore', 'z', 'a')",
    "redis.setresp(3) local r = redis.call('zscore', 'z', 'a') return tostring(r.double)",
    "redis.setresp(3) local r = redis.call('zscore', 'z', 'm') return tostring(r.double)",
    "redis.setresp(3) return redis.call('zrange', 'z', 0, -1, 'withscores')",
    "redis.setresp(3) return type(redis.call('get', 'nokey'))",
    "redis.setresp(3) return redis.call('get', 'nokey') == nil",
    "redis.setresp(2) return redis.call('get', 'nokey') == false",
    "redis.setresp(3) return redis.call('mget', 'str', 'nokey', 'str')",
    "redis.setresp(3) return redis.call('config', 'get', 'maxmemory-policy')",
    "redis.setresp(3) return redis.call('hrandfield', 'nokey')",
    "redis.setresp(3) local r = redis.call('client', 'info') return {type(r.verbatim_string), r.verbatim_string.format}",
    "redis.setresp(3) return redis.call('set', 'k', 'v')",
    "redis.setresp(3) return redis.call('incr', 'nokey-n')",
    "redis.setresp(3) return redis.pcall('incr', 'str')",
    "redis.setresp(3) redis.setresp(2) return redis.call('hgetall', 'h')",
    "redis.setresp(3) return redis.call('lpos', 'l', 'nothere')",
    "redis.setresp(3) return redis.call('zrandmember', 'nokey')",
    // Lua values to RESP, in the script's protocol and the caller's.
    "return true",
    "return false",
    "return {true, false, 1}",
    "redis.setresp(3) return true",
    "redis.setresp(3) return false",
    "redis.setresp(3) return {true, false, 1}",
    "return nil",
    "return {1, nil, 3}",
    "return 3.99",
    "return -3.99",
    "return 1e20",
    "return -1e20",
    "return 0/0",
    "return {double = 3.5}",
    "return {double = 1/0}",
    "return {double = -1/0}",
    "return {double = 0.1}",
    "return {double = '2'}",
    "return {big_number = '123456789012345678901234567890'}",
    "return {big_number = '12\\r\\n3'}",
    "return {big_number = 12}",
    "return {verbatim_string = {format = 'txt', string = 'hello'}}",
    "return {verbatim_string = {format = 'mkd', string = ''}}",
    "return {verbatim_string = {format = 'txt'}}",
    "return {verbatim_string = 'x'}",
    "return {map = {a = 1}}",
    "return {map = {}}",
    "return {map = {[1] = {2, 3}}}",
    "return {map = {x = {map = {y = true}}}}",
    "return {set = {a = true}}",
    "return {set = {[5] = false}}",
    "return {set = {}}",
    "return {map = 'x', 1, 2}",
    "return {err = 'x\\0y'}",
    "return {ok = 'x\\0y'}",
    "return {ok = 'a\\r\\nb'}",
    "return {err = 'MY code'}",
    "return {ok = 'fine', err = 'bad'}",
    "return {double = 2, map = {a = 1}}",
    "return setmetatable({}, {__index = function(t, k) if k == 'err' then return 'E' end end})",
    "return setmetatable({}, {__index = function(t, k) if k == 'double' then return 1 end end})",
    "return redis.error_reply('My Error')",
    "return redis.error_reply('MyError')",
    "return redis.error_reply('-MyError')",
    "return redis.error_reply('-My Error')",
    "return redis.status_reply('FINE')",
    "return {1, {2, {3, {4, {'deep'}}}}}",
    "local t = {} local c = t for i = 1, 150 do c[1] = {} c = c[1] end return t",
    // Past Lua's C stack (Redis converts on it): the same cut-off point,
    // and never a crash (mlua's own reference stack is not used).
    "local t = {} local c = t for i = 1, 7994 do c[1] = {} c = c[1] end return t",
    "local t = {} local c = t for i = 1, 7995 do c[1] = {} c = c[1] end return t",
    "local t = {} local c = t for i = 1, 5000 do local n = {} c.map = {x = n} c = n end return t",
    "local t = {} local c = t for i = 1, 5000 do local n = {} c.set = {[n] = true} c = n end return t",
    "local t = {} for i = 1, 20000 do t[i] = tostring(i) end return t",
    // redis.set_repl and redis.log: arguments and errors.
    "return redis.set_repl(redis.REPL_ALL)",
    "return redis.set_repl(redis.REPL_NONE)",
    "return redis.set_repl()",
    "return redis.set_repl(1, 2)",
    "return redis.set_repl(8)",
    "return redis.set_repl(-1)",
    "return redis.set_repl('x')",
    "return redis.log(redis.LOG_WARNING, 'hello', 'world')",
    "return redis.log()",
    "return redis.log(1)",
    "return redis.log('x', 'y')",
    "return redis.log(9, 'y')",
    "return redis.log(-1, 'y')",
    "return redis.log('2', {})",
    "return {pcall(redis.log)}",
    // redis.acl_check_cmd
    "return redis.acl_check_cmd('get', 'k')",
    "return redis.acl_check_cmd('nosuch')",
    "return redis.acl_check_cmd()",
    "return redis.acl_check_cmd('get', {})",
    "return redis.acl_check_cmd('config', 'get', 'x')",
    "return redis.acl_check_cmd('config', 'nosub')",
    // pcall and errors around them.
    "local ok, e = pcall(redis.call, 'nosuch') return {tostring(ok), type(e), e}",
    "pcall(redis.call, 'nosuch') error('later')",
    "pcall(redis.call, 'nosuch') return redis.call('get', 'str')",
    "local ok, e = pcall(error, {err = 'X y'}) return {tostring(ok), type(e)}",
    "return redis.call('incr', 'str')",
    "return redis.pcall('incr', 'str')",
];

/// Runs `script` on both servers' connections and records a difference.
fn compare(r: &mut Conn, c: &mut Conn, argv: &[&[u8]], what: &str, failures: &mut Vec<String>) {
    let (rr, cr) = (r.cmd(argv), c.cmd(argv));
    if rr != cr {
        failures.push(format!(
            "{what}: {}\n    redis:    {}\n    cinnabar: {}",
            String::from_utf8_lossy(argv.last().copied().unwrap_or_default()),
            show(&rr),
            show(&cr)
        ));
    }
}

fn pair_conns(redis: &Server, ours: &Server, resp3: bool) -> (Conn, Conn) {
    let (mut r, mut c) = (redis.connect(), ours.connect());
    if resp3 {
        r.cmd_str(&["HELLO", "3"]);
        c.cmd_str(&["HELLO", "3"]);
    }
    (r, c)
}

#[test]
fn script_api_and_conversions_match_redis() {
    // The corpus returns tables nested thousands deep (Lua's C stack limit);
    // reading such a reply recurses once per level, more than a test
    // thread's default 2 MB stack holds in a debug build.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(script_api_and_conversions)
        .expect("spawn the test thread")
        .join()
        .expect("script API and conversions match Redis");
}

fn script_api_and_conversions() {
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let mut failures = vec![];
    for resp3 in [false, true] {
        let (mut r, mut c) = pair_conns(&redis, &ours, resp3);
        for cmd in SETUP {
            r.cmd_str(cmd);
            c.cmd_str(cmd);
        }
        let proto = if resp3 { "RESP3" } else { "RESP2" };
        for script in CORPUS {
            let argv: [&[u8]; 3] = [b"EVAL", script.as_bytes(), b"0"];
            compare(&mut r, &mut c, &argv, proto, &mut failures);
        }
    }
    assert!(
        failures.is_empty(),
        "{} replies differ from Redis 7.0:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Functions run in Redis's second Lua state: no debugger stand-ins, no
/// KEYS/ARGV globals, but setresp and set_repl as in EVAL.
#[test]
fn function_runtime_api_matches_redis() {
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let lib = "#!lua name=api\n\
        redis.register_function('keys', function() local t = {} for k in pairs(redis) do t[#t + 1] = k end table.sort(t) return t end)\n\
        redis.register_function('bp', function() return type(redis.breakpoint) end)\n\
        redis.register_function('rc', function() return redis.replicate_commands() end)\n\
        redis.register_function('globalkeys', function() return KEYS end)\n\
        redis.register_function('resp3', function(k) redis.setresp(3) return redis.call('hgetall', k[1]) end)\n\
        redis.register_function('bool3', function() redis.setresp(3) return {true, false} end)\n\
        redis.register_function('repl', function() redis.set_repl(redis.REPL_NONE) return redis.REPL_ALL end)\n\
        redis.register_function('version', function() return redis.REDIS_VERSION end)";
    let loads = [
        lib.to_string(),
        "#!lua name=l2\nlocal v = redis.REDIS_VERSION_NUM\nredis.register_function('v2', function() return v end)".into(),
        "#!lua name=l3\nredis.log(redis.LOG_NOTICE, 'loading')\nredis.register_function('v3', function() return 1 end)".into(),
        "#!lua name=l4\nredis.log()\nredis.register_function('v4', function() return 1 end)".into(),
        "#!lua name=l5\nredis.setresp(3)\nredis.register_function('v5', function() return 1 end)".into(),
        "#!lua name=l6\nredis.breakpoint()\nredis.register_function('v6', function() return 1 end)".into(),
    ];
    let mut failures = vec![];
    for resp3 in [false, true] {
        let (mut r, mut c) = pair_conns(&redis, &ours, resp3);
        for conn in [&mut r, &mut c] {
            conn.cmd_str(&["FUNCTION", "FLUSH"]);
            conn.cmd_str(&["HSET", "h", "a", "1"]);
        }
        for code in &loads {
            let argv: [&[u8]; 3] = [b"FUNCTION", b"LOAD", code.as_bytes()];
            compare(&mut r, &mut c, &argv, "load", &mut failures);
        }
        for f in [
            "keys",
            "bp",
            "rc",
            "globalkeys",
            "bool3",
            "repl",
            "version",
            "v2",
            "v3",
        ] {
            let argv: [&[u8]; 3] = [b"FCALL", f.as_bytes(), b"0"];
            compare(&mut r, &mut c, &argv, f, &mut failures);
        }
        let argv: [&[u8]; 4] = [b"FCALL", b"resp3", b"1", b"h"];
        compare(&mut r, &mut c, &argv, "resp3", &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} replies differ from Redis 7.0:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Redis's CRC-64 (Jones polynomial, reflected), to build payloads.
fn crc64(data: &[u8]) -> u64 {
    let mut crc = 0u64;
    for &b in data {
        crc ^= b as u64;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x95AC_9329_AC4B_C9B5
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// A FUNCTION RESTORE payload: `records` (opcode and RDB string each, as
/// given), the RDB version and the CRC-64.
fn payload(records: &[u8]) -> Vec<u8> {
    let mut out = records.to_vec();
    out.extend_from_slice(&10u16.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// One library record: opcode 245 and the code as a plain RDB string.
fn record(opcode: u8, code: &str) -> Vec<u8> {
    assert!(code.len() < 16384, "two-byte length form only");
    let mut out = vec![opcode];
    if code.len() < 64 {
        out.push(code.len() as u8);
    } else {
        out.push(0x40 | (code.len() >> 8) as u8);
        out.push(code.len() as u8);
    }
    out.extend_from_slice(code.as_bytes());
    out
}

fn check(failures: &mut Vec<String>, what: &str, (rr, cr): (Vec<u8>, Vec<u8>)) {
    if rr != cr {
        failures.push(format!(
            "{what}\n    redis:    {}\n    cinnabar: {}",
            show(&rr),
            show(&cr)
        ));
    }
}

fn bulk_body(reply: &[u8]) -> Vec<u8> {
    assert_eq!(reply.first(), Some(&b'$'), "bulk reply: {}", show(reply));
    let nl = reply.iter().position(|&b| b == b'\n').expect("header");
    reply[nl + 1..reply.len() - 2].to_vec()
}

fn sorted_list(conn: &mut Conn) -> cinnabar_tests::Reply {
    let raw = conn.cmd_str(&["FUNCTION", "LIST", "WITHCODE"]);
    cinnabar_tests::Reply::parse(&raw)
        .expect("FUNCTION LIST reply")
        .sorted()
}

const LIB_A: &str = "#!lua name=liba\nredis.register_function('fa', function(keys, args) return 'a:' .. (args[1] or '') end)\nredis.register_function{function_name='fa_ro', callback=function() return 1 end, flags={'no-writes'}}";
const LIB_B: &str =
    "#!lua name=libb\nredis.register_function('fb', function(keys, args) return #keys end)";
const LIB_A2: &str =
    "#!lua name=liba\nredis.register_function('fa2', function() return 'replaced' end)";
const LIB_CLASH: &str =
    "#!lua name=libc\nredis.register_function('fb', function() return 'clash' end)";

/// FUNCTION DUMP payloads interchange with Redis both ways (byte-identical
/// for the same library), and FUNCTION RESTORE's policies and errors match.
#[test]
fn function_dump_and_restore_match_redis() {
    let redis = Server::redis(&[]);
    let ours = Server::cinnabar(&[]);
    let (mut r, mut c) = (redis.connect(), ours.connect());
    let both = |r: &mut Conn, c: &mut Conn, args: &[&[u8]]| -> (Vec<u8>, Vec<u8>) {
        (r.cmd(args), c.cmd(args))
    };
    let mut failures = vec![];

    // Empty and one-library dumps are byte-identical (a dump of several
    // libraries follows each server's dict order, so it is compared by
    // restoring it instead).
    check(
        &mut failures,
        "FLUSH",
        both(&mut r, &mut c, &[b"FUNCTION", b"FLUSH"]),
    );
    check(
        &mut failures,
        "empty DUMP",
        both(&mut r, &mut c, &[b"FUNCTION", b"DUMP"]),
    );
    check(
        &mut failures,
        "LOAD a",
        both(&mut r, &mut c, &[b"FUNCTION", b"LOAD", LIB_A.as_bytes()]),
    );
    check(
        &mut failures,
        "DUMP a",
        both(&mut r, &mut c, &[b"FUNCTION", b"DUMP"]),
    );
    check(
        &mut failures,
        "DUMP x",
        both(&mut r, &mut c, &[b"FUNCTION", b"DUMP", b"x"]),
    );
    check(
        &mut failures,
        "LOAD b",
        both(&mut r, &mut c, &[b"FUNCTION", b"LOAD", LIB_B.as_bytes()]),
    );

    // Each server's two-library dump restores into the other.
    let from_redis = bulk_body(&r.cmd_str(&["FUNCTION", "DUMP"]));
    let from_ours = bulk_body(&c.cmd_str(&["FUNCTION", "DUMP"]));
    for (name, dump) in [
        ("redis's dump", &from_redis),
        ("cinnabar's dump", &from_ours),
    ] {
        for policy in ["", "APPEND", "REPLACE", "FLUSH"] {
            let mut args: Vec<&[u8]> = vec![b"FUNCTION", b"RESTORE", dump];
            if !policy.is_empty() {
                args.push(policy.as_bytes());
            }
            // Over the two libraries themselves. APPEND names the first
            // clashing library in Redis's dict order (a per-process hash
            // seed; Cinnabar: name order), so the name is masked.
            let (rr, cr) = both(&mut r, &mut c, &args);
            let mask = |b: Vec<u8>| -> Vec<u8> {
                String::from_utf8_lossy(&b)
                    .replace("Library liba", "Library <lib>")
                    .replace("Library libb", "Library <lib>")
                    .into_bytes()
            };
            check(
                &mut failures,
                &format!("{name} {policy} over itself"),
                (mask(rr), mask(cr)),
            );
            // ...and over a different set.
            for conn in [&mut r, &mut c] {
                conn.cmd_str(&["FUNCTION", "FLUSH"]);
                conn.cmd(&[b"FUNCTION", b"LOAD", LIB_A2.as_bytes()]);
            }
            check(
                &mut failures,
                &format!("{name} {policy} over liba'"),
                both(&mut r, &mut c, &args),
            );
            let (lr, lc) = (sorted_list(&mut r), sorted_list(&mut c));
            if lr != lc {
                failures.push(format!(
                    "{name} {policy}: FUNCTION LIST\n    redis:    {lr:?}\n    cinnabar: {lc:?}"
                ));
            }
            for f in ["fa", "fa2", "fb"] {
                check(
                    &mut failures,
                    &format!("{name} {policy}: FCALL {f}"),
                    both(&mut r, &mut c, &[b"FCALL", f.as_bytes(), b"1", b"k", b"x"]),
                );
            }
            check(
                &mut failures,
                &format!("{name} {policy}: FCALL_RO fa_ro"),
                both(&mut r, &mut c, &[b"FCALL_RO", b"fa_ro", b"0"]),
            );
            for conn in [&mut r, &mut c] {
                conn.cmd_str(&["FUNCTION", "FLUSH"]);
                conn.cmd(&[b"FUNCTION", b"RESTORE", dump]);
            }
        }
    }

    // Errors, each from a known state (libraries liba and libb).
    let dump_key = {
        r.cmd_str(&["SET", "k", "v"]);
        bulk_body(&r.cmd_str(&["DUMP", "k"]))
    };
    let mut bad_crc = from_redis.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    let mut newer = payload(&record(245, LIB_B));
    let version_at = newer.len() - 10;
    newer[version_at] = 11;
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("policy", vec![from_redis.clone(), b"MERGE".to_vec()]),
        (
            "too many",
            vec![from_redis.clone(), b"FLUSH".to_vec(), b"x".to_vec()],
        ),
        ("short", vec![b"abc".to_vec()]),
        ("bad crc", vec![bad_crc]),
        ("newer rdb", vec![newer]),
        ("key payload", vec![dump_key]),
        ("pre-GA truncated", vec![payload(&record(246, LIB_B))]),
        (
            "pre-GA",
            vec![payload(
                &[
                    record(246, "pglib"),
                    record(0, "LUA")[1..].to_vec(),
                    vec![0],
                    record(0, "redis.register_function('pgx', function() return 1 end)")[1..]
                        .to_vec(),
                ]
                .concat(),
            )],
        ),
        (
            "pre-GA with description",
            vec![payload(
                &[
                    record(246, "pglib"),
                    record(0, "lua")[1..].to_vec(),
                    vec![1],
                    record(0, "about it")[1..].to_vec(),
                    record(0, "redis.register_function('pgx', function() return 1 end)")[1..]
                        .to_vec(),
                ]
                .concat(),
            )],
        ),
        (
            "pre-GA other engine",
            vec![payload(
                &[
                    record(246, "pglib"),
                    record(0, "JS")[1..].to_vec(),
                    vec![0],
                    record(0, "x")[1..].to_vec(),
                ]
                .concat(),
            )],
        ),
        ("truncated string", vec![payload(&[245, 0x3f, b'#', b'!'])]),
        ("append existing", vec![payload(&record(245, LIB_B))]),
        (
            "replace existing",
            vec![payload(&record(245, LIB_B)), b"REPLACE".to_vec()],
        ),
        ("function clash", vec![payload(&record(245, LIB_CLASH))]),
        (
            "function clash replace",
            vec![payload(&record(245, LIB_CLASH)), b"replace".to_vec()],
        ),
        (
            "function clash flush",
            vec![payload(&record(245, LIB_CLASH)), b"flush".to_vec()],
        ),
        (
            "duplicate library",
            vec![payload(
                &[record(245, LIB_CLASH), record(245, LIB_CLASH)].concat(),
            )],
        ),
        (
            "duplicate function",
            vec![payload(
                &[
                    record(245, LIB_CLASH),
                    record(
                        245,
                        "#!lua name=libd\nredis.register_function('fb', function() end)",
                    ),
                ]
                .concat(),
            )],
        ),
        ("no metadata", vec![payload(&record(245, "return 1"))]),
        (
            "bad code",
            vec![payload(&record(245, "#!lua name=bad\nthis is not lua"))],
        ),
        (
            "no functions",
            vec![payload(&record(245, "#!lua name=none\nlocal x = 1"))],
        ),
        ("empty", vec![payload(&[])]),
    ];
    for (what, extra) in &cases {
        for conn in [&mut r, &mut c] {
            conn.cmd_str(&["FUNCTION", "FLUSH"]);
            conn.cmd(&[b"FUNCTION", b"LOAD", LIB_A.as_bytes()]);
            conn.cmd(&[b"FUNCTION", b"LOAD", LIB_B.as_bytes()]);
        }
        let mut args: Vec<&[u8]> = vec![b"FUNCTION", b"RESTORE"];
        args.extend(extra.iter().map(|a| a.as_slice()));
        check(&mut failures, what, both(&mut r, &mut c, &args));
        let (lr, lc) = (sorted_list(&mut r), sorted_list(&mut c));
        if lr != lc {
            failures.push(format!(
                "{what}: FUNCTION LIST after\n    redis:    {lr:?}\n    cinnabar: {lc:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} replies differ from Redis 7.0:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A fresh directory for one server's files.
fn scratch_dir(tag: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("cinnabar-lua-api-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// What `redis.set_repl` lets into the AOF, and the FUNCTION commands that
/// are logged, compared with the incremental AOF file Redis writes.
#[test]
fn set_repl_and_function_commands_reach_the_aof_as_in_redis() {
    let dirs = [scratch_dir("redis"), scratch_dir("ours")];
    let args = |d: &std::path::Path| -> Vec<String> {
        [
            "--dir",
            &d.display().to_string(),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (ra, ca) = (args(&dirs[0]), args(&dirs[1]));
    let redis = Server::redis(&ra.iter().map(String::as_str).collect::<Vec<_>>());
    let ours = Server::cinnabar(&ca.iter().map(String::as_str).collect::<Vec<_>>());
    let (mut r, mut c) = (redis.connect(), ours.connect());
    let lib = "#!lua name=aoflib\nredis.register_function('w', function(k, a) redis.set_repl(redis.REPL_REPLICA) redis.call('set', k[1], 'hidden') redis.set_repl(redis.REPL_AOF) return redis.call('incr', k[2]) end)";
    let script_none = "redis.call('set', 'a', '1') redis.set_repl(redis.REPL_NONE) redis.call('set', 'b', '2') redis.set_repl(redis.REPL_ALL) redis.call('set', 'c', '3') return 1";
    let script_one = "redis.set_repl(redis.REPL_SLAVE) redis.call('set', 'd', '4') redis.set_repl(redis.REPL_ALL) return redis.call('del', 'd')";
    let script_all_off = "redis.set_repl(redis.REPL_NONE) return redis.call('set', 'e', '5')";
    let commands: Vec<Vec<&[u8]>> = vec![
        vec![b"EVAL", script_none.as_bytes(), b"0"],
        vec![b"EVAL", script_one.as_bytes(), b"0"],
        vec![b"EVAL", script_all_off.as_bytes(), b"0"],
        vec![b"FUNCTION", b"LOAD", lib.as_bytes()],
        vec![b"FCALL", b"w", b"2", b"x", b"n"],
        vec![b"FUNCTION", b"DELETE", b"aoflib"],
        vec![b"FUNCTION", b"DELETE", b"aoflib"],
        vec![b"FUNCTION", b"LOAD", lib.as_bytes()],
        vec![b"FUNCTION", b"FLUSH"],
        vec![b"SET", b"last", b"1"],
    ];
    let mut failures = vec![];
    for argv in &commands {
        check(
            &mut failures,
            &String::from_utf8_lossy(argv[0]),
            (r.cmd(argv), c.cmd(argv)),
        );
    }
    // FUNCTION RESTORE of a dump is logged too (as itself).
    c.cmd_str(&[
        "FUNCTION",
        "LOAD",
        "#!lua name=x\nredis.register_function('x', function() end)",
    ]);
    r.cmd_str(&[
        "FUNCTION",
        "LOAD",
        "#!lua name=x\nredis.register_function('x', function() end)",
    ]);
    let dump = bulk_body(&r.cmd_str(&["FUNCTION", "DUMP"]));
    for conn in [&mut r, &mut c] {
        conn.cmd_str(&["FUNCTION", "FLUSH"]);
        assert_eq!(conn.cmd(&[b"FUNCTION", b"RESTORE", &dump]), b"+OK\r\n");
    }
    // appendfsync always: each reply follows its write.
    let incr = |d: &std::path::Path| {
        std::fs::read(d.join("appendonlydir").join("appendonly.aof.1.incr.aof")).expect("incr AOF")
    };
    let (rf, cf) = (incr(&dirs[0]), incr(&dirs[1]));
    if std::env::var_os("SHOW_AOF").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&rf));
    }
    // Not vacuous: the hidden writes are absent, the visible ones present.
    let text = String::from_utf8_lossy(&rf).into_owned();
    assert!(
        text.contains("$1\r\nc\r\n") && !text.contains("$1\r\nb\r\n"),
        "{text}"
    );
    assert!(
        text.contains("RESTORE") && !text.contains("$6\r\nhidden\r\n"),
        "{text}"
    );
    assert!(
        failures.is_empty(),
        "{} replies differ from Redis 7.0:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        String::from_utf8_lossy(&cf),
        String::from_utf8_lossy(&rf),
        "the AOF differs from Redis's"
    );
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}
