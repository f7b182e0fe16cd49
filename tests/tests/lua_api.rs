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
