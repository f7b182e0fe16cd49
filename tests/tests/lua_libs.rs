//! The Lua libraries Redis 7.0 bundles for scripts (`cjson`, `cmsgpack`,
//! `bit`, `struct`), compared reply for reply (raw RESP) with genuine Redis
//! 7.0: a corpus of hand-picked scripts covering every format, boundary and
//! error, then property tests that push random nested values through the
//! encoders and decoders of both servers.
//!
//! The cases that raise the nesting limits to 100000 expect a release
//! build of the server (what scripts/test.sh runs): a debug build's larger
//! frames stop the recursion earlier, by design (engine/src/lua/mod.rs,
//! `STACK_BUDGET`), with the same message and a smaller depth.
//!
//! Scripts return strings where they can (encodings, `dump` of decoded
//! values) so that the comparison sees every byte and every number's full
//! precision, not just Redis's integer conversion of Lua numbers.

use cinnabar_tests::{show, Conn, Server};
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, RngAlgorithm, TestRng, TestRunner};

/// Defines `dump(v)`: a canonical text for any Lua value (type-tagged,
/// `%.17g` numbers, `%q` strings, tables with sorted keys), so a decoded
/// value compares exactly whatever its table iteration order.
const PRELUDE: &str = r#"
local function key(k) return type(k) .. ':' .. (type(k) == 'number' and string.format('%.17g', k) or tostring(k)) end
local function dump(v, depth)
  depth = depth or 0
  if depth > 40 then return '...' end
  local t = type(v)
  if t == 'table' then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return key(a) < key(b) end)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = dump(k, depth + 1) .. '=' .. dump(v[k], depth + 1) end
    return '{' .. table.concat(parts, ',') .. '}'
  elseif t == 'number' then return 'n:' .. string.format('%.17g', v)
  elseif t == 'string' then return 's:' .. string.format('%q', v)
  elseif t == 'userdata' then return v == cjson.null and 'null' or 'userdata'
  else return t .. ':' .. tostring(v) end
end
-- Settings live in the server's Lua state and outlast a script: every
-- corpus script starts from Redis's defaults.
cjson.encode_invalid_numbers(false) cjson.decode_invalid_numbers(true)
cjson.encode_number_precision(14) cjson.encode_sparse_array(false, 2, 10)
cjson.encode_max_depth(1000) cjson.decode_max_depth(1000) cjson.encode_keep_buffer(true)
local function dumpall(...)
  local out = {}
  for i = 1, select('#', ...) do out[#out + 1] = dump((select(i, ...))) end
  return table.concat(out, ' ')
end
-- f's results or error, as one string: pcall then sees a single result
-- (a debug build's Lua API checks abort when pcall itself gets many).
local function try(f, ...)
  return dumpall(pcall(function(...) return dumpall(f(...)) end, ...))
end
"#;

struct Pair {
    // Held so the servers live as long as the connections.
    _servers: [Server; 2],
    redis: Conn,
    ours: Conn,
}

impl Pair {
    fn new() -> Pair {
        let servers = [Server::redis(&[]), Server::cinnabar(&[])];
        let (redis, ours) = (servers[0].connect(), servers[1].connect());
        Pair {
            _servers: servers,
            redis,
            ours,
        }
    }

    /// EVALs the prelude plus `body` on both servers; the two raw replies.
    fn eval(&mut self, body: &str) -> (Vec<u8>, Vec<u8>) {
        self.eval_raw(&format!("{PRELUDE}\n{body}"))
    }

    fn eval_raw(&mut self, script: &str) -> (Vec<u8>, Vec<u8>) {
        let args: [&[u8]; 3] = [b"EVAL", script.as_bytes(), b"0"];
        (self.redis.cmd(&args), self.ours.cmd(&args))
    }

    /// Runs every script and fails listing each one whose replies differ.
    fn check_all(&mut self, bodies: &[&str]) {
        let mut diffs = Vec::new();
        for body in bodies {
            let (want, got) = self.eval(body);
            if want != got {
                diffs.push(format!(
                    "script: {body}\n  redis:    {}\n  cinnabar: {}",
                    show(&want),
                    show(&got)
                ));
            }
        }
        assert!(
            diffs.is_empty(),
            "{} of {} scripts differ:\n{}",
            diffs.len(),
            bodies.len(),
            diffs.join("\n")
        );
    }
}

const CJSON_ENCODE: &[&str] = &[
    "return cjson.encode(nil)",
    "return cjson.encode(true)",
    "return cjson.encode(false)",
    "return cjson.encode(cjson.null)",
    "return cjson.encode('')",
    "return cjson.encode('hello')",
    "return cjson.encode('a/b\"c\\\\d')",
    "local s = '' for i = 0, 255 do s = s .. string.char(i) end return cjson.encode(s)",
    "return cjson.encode({})",
    "return cjson.encode({1, 2, 3})",
    "return cjson.encode({1, 'two', true, false, cjson.null})",
    "return cjson.encode({{}, {{}}, {{{}}}})",
    "return cjson.encode({a = 1})",
    "return cjson.encode({a = {b = {c = {1, 2, {d = 'e'}}}}})",
    "return cjson.encode({[1] = 'a', [2] = 'b', [4] = 'd'})",
    "return cjson.encode({[1] = 'a', [3] = 'c'})",
    "return cjson.encode({[10] = 1})",
    "return cjson.encode({[11] = 1})",
    "return cjson.encode({[1] = 1, [2] = 2, [30] = 3})",
    "return cjson.encode({[0] = 1})",
    "return cjson.encode({[-1] = 1})",
    "return cjson.encode({[1.5] = 1})",
    "return cjson.encode({[2^31] = 1})",
    "return cjson.encode({[2^31] = 1, [1] = 2})",
    "cjson.encode_sparse_array(false, 2^31 - 1, 0) return cjson.encode({[1] = 1, [2] = 2, [5] = 3})",
    "return cjson.encode({[2^53] = 1})",
    "return cjson.encode({[1] = 1, x = 2})",
    "return cjson.encode({[true] = 1})",
    "return cjson.encode({[{}] = 1})",
    "return cjson.encode(function() end)",
    "return cjson.encode({f = function() end})",
    "return cjson.encode(coroutine.create(function() end))",
    "return cjson.encode()",
    "return cjson.encode(1, 2)",
    "return cjson.encode(0)",
    "return cjson.encode(-0)",
    "return cjson.encode(-0.0)",
    "return cjson.encode(1)",
    "return cjson.encode(-1)",
    "return cjson.encode(0.1)",
    "return cjson.encode(1/3)",
    "return cjson.encode(-2/3)",
    "return cjson.encode(123456789012345)",
    "return cjson.encode(12345678901234)",
    "return cjson.encode(1e14)",
    "return cjson.encode(1e15)",
    "return cjson.encode(1e-4)",
    "return cjson.encode(1e-5)",
    "return cjson.encode(1e300)",
    "return cjson.encode(-1e-300)",
    "return cjson.encode(5e-324)",
    "return cjson.encode(2^53)",
    "return cjson.encode(2^63)",
    "return cjson.encode(0.30000000000000004)",
    "return cjson.encode(99999999999999.5)",
    "return cjson.encode(1/0)",
    "return cjson.encode(-1/0)",
    "return cjson.encode(0/0)",
    "return cjson.encode({1/0})",
    "return cjson.encode({[1/0] = 1})",
    "cjson.encode_invalid_numbers(true) return cjson.encode({1/0, -1/0, 0/0, -(0/0)})",
    "cjson.encode_invalid_numbers('null') return cjson.encode({1/0, -1/0, 0/0})",
    "cjson.encode_invalid_numbers('on') return cjson.encode({[1/0] = 1})",
    "return {cjson.encode_invalid_numbers('null'), cjson.encode_invalid_numbers(), cjson.encode_invalid_numbers(false)}",
    "return cjson.encode_invalid_numbers('maybe')",
    "return cjson.encode_invalid_numbers(1)",
    "return cjson.encode_invalid_numbers(true, 1)",
    "for p = 1, 14 do cjson.encode_number_precision(p) end return cjson.encode(math.pi)",
    "local out = {} for p = 1, 14 do cjson.encode_number_precision(p) out[p] = cjson.encode({math.pi, 1/3, 123456.789, 1e21, 0.000123}) end return out",
    "return cjson.encode_number_precision(0)",
    "return cjson.encode_number_precision(15)",
    "return cjson.encode_number_precision('x')",
    "return cjson.encode_number_precision('7')",
    "return cjson.encode_number_precision()",
    "return {cjson.encode_sparse_array()}",
    "return {cjson.encode_sparse_array(true)}",
    "cjson.encode_sparse_array(true) return cjson.encode({[1] = 1, [100] = 2})",
    "cjson.encode_sparse_array(false, 0) return cjson.encode({[1] = 1, [20] = 2})",
    "cjson.encode_sparse_array(false, 1, 0) return cjson.encode({[1] = 1, [3] = 2})",
    "cjson.encode_sparse_array(false, 3, 5) return cjson.encode({[1] = 1, [6] = 2})",
    "cjson.encode_sparse_array(false, 3, 5) return cjson.encode({[1] = 1, [5] = 2})",
    "return {cjson.encode_sparse_array('on', 4, 7)}",
    "return cjson.encode_sparse_array(1)",
    "return cjson.encode_sparse_array(true, -1)",
    "return cjson.encode_sparse_array(true, 1, 2, 3)",
    "return cjson.encode_sparse_array('yes')",
    "return cjson.encode_max_depth()",
    "return cjson.encode_max_depth(0)",
    "cjson.encode_max_depth(2) return cjson.encode({{1}})",
    "cjson.encode_max_depth(2) return cjson.encode({{{1}}})",
    "local t = {} local c = t for i = 1, 999 do c[1] = {} c = c[1] end return #cjson.encode(t)",
    "local t = {} local c = t for i = 1, 1000 do c[1] = {} c = c[1] end return cjson.encode(t)",
    "local t = {} t[1] = t return cjson.encode(t)",
    "cjson.encode_max_depth(100000) local t = {} local c = t for i = 1, 10000 do c[1] = {} c = c[1] end return cjson.encode(t)",
    "cjson.encode_max_depth(100000) local t = {} local c = t for i = 1, 10000 do c.k = {} c = c.k end return cjson.encode(t)",
    "return {cjson.encode_keep_buffer(), cjson.encode_keep_buffer(false), cjson.encode_keep_buffer('on'), cjson.encode({1})}",
    "return cjson.encode_keep_buffer('x')",
    "return pcall(cjson.encode, function() end)",
    "local ok, e = pcall(cjson.encode, {f = type}) return e",
    "local f = cjson.encode return f()",
    "return cjson:encode(1)",
    "local ok, e = pcall(cjson.encode) return e",
    "return cjson.encode(setmetatable({}, {__index = function() return 1 end}))",
    "return cjson.encode(setmetatable({1, 2}, {__len = function() return 5 end}))",
    "local t = {} for i = 1, 100 do t[i] = i * 1.5 end return cjson.encode(t)",
    "local t = {} for i = 1, 50 do t['k' .. i] = i end return cjson.encode(t)",
    "local t = {1, 2, 3} t[2] = nil return cjson.encode(t)",
    "return {cjson._NAME, cjson._VERSION, type(cjson.null), tostring(cjson.null == nil)}",
    "local j = cjson.new() j.encode_number_precision(3) return {j.encode(1/3), cjson.encode(1/3)}",
];

const CJSON_DECODE: &[&str] = &[
    "return dump(cjson.decode('null'))",
    "return dump(cjson.decode('true'))",
    "return dump(cjson.decode('false'))",
    "return dump(cjson.decode('0'))",
    "return dump(cjson.decode('-0'))",
    "return dump(cjson.decode('1.5e3'))",
    "return dump(cjson.decode('-1.25E-2'))",
    "return dump(cjson.decode('123456789012345678901234567890'))",
    "return dump(cjson.decode('1e400'))",
    "return dump(cjson.decode('-1e400'))",
    "return dump(cjson.decode('1e-400'))",
    "return dump(cjson.decode('0.1'))",
    "return dump(cjson.decode('[0.1, 0.2, 0.30000000000000004]'))",
    "return dump(cjson.decode('\"\"'))",
    "return dump(cjson.decode('\"abc\"'))",
    [r#"return dump(cjson.decode('"\\"\\\\\\/\\b\\f\\n\\r\\t"'))"#][0],
    [r#"return dump(cjson.decode('"\\u0041\\u00e9\\u20ac\\ud83d\\ude00"'))"#][0],
    [r#"return dump(cjson.decode('"\\u0000"'))"#][0],
    [r#"return dump(cjson.decode('"\\ud83d"'))"#][0],
    [r#"return dump(cjson.decode('"\\ude00"'))"#][0],
    [r#"return dump(cjson.decode('"\\ud83d\\u0041"'))"#][0],
    [r#"return dump(cjson.decode('"\\u12"'))"#][0],
    [r#"return dump(cjson.decode('"\\uZZZZ"'))"#][0],
    [r#"return dump(cjson.decode('"\\x"'))"#][0],
    [r#"return dump(cjson.decode('"abc'))"#][0],
    [r#"return dump(cjson.decode('"a\nb"'))"#][0],
    "return dump(cjson.decode('[]'))",
    "return dump(cjson.decode('{}'))",
    "return dump(cjson.decode('[1, [2, [3, [4]]], {\"a\": [5, {\"b\": null}]}]'))",
    "return dump(cjson.decode('{\"a\": 1, \"a\": 2}'))",
    "return dump(cjson.decode('{\"1\": 1, \"2\": 2}'))",
    "return dump(cjson.decode(' \\t\\r\\n [ 1 , 2 ] \\n'))",
    "return dump(cjson.decode(''))",
    "return dump(cjson.decode('   '))",
    "return dump(cjson.decode('['))",
    "return dump(cjson.decode(']'))",
    "return dump(cjson.decode('[1,]'))",
    "return dump(cjson.decode('[1 2]'))",
    "return dump(cjson.decode('{\"a\" 1}'))",
    "return dump(cjson.decode('{\"a\": 1,}'))",
    "return dump(cjson.decode('{1: 2}'))",
    "return dump(cjson.decode('{\"a\": 1'))",
    "return dump(cjson.decode('[1] x'))",
    "return dump(cjson.decode('1 2'))",
    "return dump(cjson.decode('tru'))",
    "return dump(cjson.decode('nul'))",
    "return dump(cjson.decode('True'))",
    "return dump(cjson.decode('@'))",
    "return dump(cjson.decode('-'))",
    "return dump(cjson.decode('--1'))",
    "return dump(cjson.decode('1.'))",
    "return dump(cjson.decode('.5'))",
    "return dump(cjson.decode('-.5'))",
    "return dump(cjson.decode('1e'))",
    "return dump(cjson.decode('1e+'))",
    "return dump(cjson.decode('01'))",
    "return dump(cjson.decode('+1'))",
    "return dump(cjson.decode('0x1F'))",
    "return dump(cjson.decode('-0x10'))",
    "return dump(cjson.decode('0x1.8p1'))",
    "return dump(cjson.decode('0x'))",
    "return dump(cjson.decode('[0xFFFFFFFFFFFFFFFFFF, 0x1.fffffffffffff8p0, 0x1.00000000000008p0, 0x.8, 0x1p-1074, 0x1p-1080, 0x1p1024, 0xAp-2]'))",
    "return dump(cjson.decode(string.rep('1', 400)))",
    "return dump(cjson.decode('0.1000000000000000055511151231257827021181583404541015625'))",
    "return dump(cjson.decode('[2.2250738585072011e-308, 4.9406564584124654e-324, 1.7976931348623157e308, 1.7976931348623159e308]'))",
    "return dump(cjson.decode('inf'))",
    "return dump(cjson.decode('-Infinity'))",
    "return dump(cjson.decode('[NaN, nan, -nan, INF]'))",
    "return dump(cjson.decode('nan(123)'))",
    "return dump(cjson.decode('infx'))",
    "cjson.decode_invalid_numbers(false) return dump(cjson.decode('inf'))",
    "cjson.decode_invalid_numbers(false) return dump(cjson.decode('0x10'))",
    "cjson.decode_invalid_numbers(false) return dump(cjson.decode('01'))",
    "cjson.decode_invalid_numbers(false) return dump(cjson.decode('+1'))",
    "cjson.decode_invalid_numbers(false) return dump(cjson.decode('-1.5'))",
    "return {cjson.decode_invalid_numbers(), cjson.decode_invalid_numbers('off'), cjson.decode_invalid_numbers()}",
    "return dump(cjson.decode('\\0'))",
    "return dump(cjson.decode('a\\0'))",
    "return dump(cjson.decode('[1]\\0garbage'))",
    "return dump(cjson.decode('\"a\\0b\"'))",
    "return dump(cjson.decode(12))",
    "return dump(cjson.decode({}))",
    "return dump(cjson.decode())",
    "return dump(cjson.decode('1', '2'))",
    "return cjson.decode_max_depth()",
    "return cjson.decode_max_depth(0)",
    "cjson.decode_max_depth(3) return dump(cjson.decode('[[[1]]]'))",
    "cjson.decode_max_depth(3) return dump(cjson.decode('[[[[1]]]]'))",
    "cjson.decode_max_depth(3) return dump(cjson.decode('{\"a\":{\"b\":{\"c\":{}}}}'))",
    "return #cjson.encode(cjson.decode(string.rep('[', 1000) .. string.rep(']', 1000)))",
    "return dump(cjson.decode(string.rep('[', 1001) .. string.rep(']', 1001)))",
    "return dump(cjson.decode(string.rep('{\"a\":', 1001) .. '1' .. string.rep('}', 1001)))",
    "cjson.decode_max_depth(100000) return dump(cjson.decode(string.rep('[', 20000) .. string.rep(']', 20000)))",
    "cjson.decode_max_depth(100000) return dump(cjson.decode(string.rep('{\"a\":', 20000) .. '1' .. string.rep('}', 20000)))",
    "return dump(cjson.decode(cjson.encode({a = {1, 2, {b = 'c'}}, d = 'e/f', g = 1.5})))",
    "local t = cjson.decode('[1,2,3]') return #t",
    "return cjson.decode('[1, 2, \"x\", null, true]')",
    "return pcall(cjson.decode, '[')",
    "local ok, e = pcall(cjson.decode, '{') return e",
];

const CMSGPACK: &[&str] = &[
    "return cmsgpack.pack(nil)",
    "return cmsgpack.pack(true)",
    "return cmsgpack.pack(false)",
    "return cmsgpack.pack(0)",
    "return cmsgpack.pack(1, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296)",
    "return cmsgpack.pack(-1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649)",
    "return cmsgpack.pack(2^53, -2^53, 2^63, -2^63, 2^64, 2^62)",
    "return cmsgpack.pack(0.5, 1.5, 0.1, -0.1, 1/3, 1e300, -1e-300)",
    "return cmsgpack.pack(1/0, -1/0, 0/0, -0.0)",
    "return cmsgpack.pack(3.4028234663852886e38, 3.4028235677973366e38, 1e-45, 1.401298464324817e-45)",
    "return cmsgpack.pack('')",
    "return cmsgpack.pack(string.rep('a', 31), string.rep('b', 32))",
    "return cmsgpack.pack(string.rep('a', 255), string.rep('b', 256))",
    "return #cmsgpack.pack(string.rep('a', 65535)) .. ' ' .. #cmsgpack.pack(string.rep('b', 65536))",
    "return string.sub(cmsgpack.pack(string.rep('a', 65535)), 1, 4) .. string.sub(cmsgpack.pack(string.rep('b', 65536)), 1, 6)",
    "return cmsgpack.pack({})",
    "return cmsgpack.pack({1, 2, 3})",
    "local t = {} for i = 1, 15 do t[i] = i end return cmsgpack.pack(t)",
    "local t = {} for i = 1, 16 do t[i] = i end return cmsgpack.pack(t)",
    "local t = {} for i = 1, 65535 do t[i] = 0 end return string.sub(cmsgpack.pack(t), 1, 4)",
    "local t = {} for i = 1, 65536 do t[i] = 0 end return string.sub(cmsgpack.pack(t), 1, 6)",
    "return cmsgpack.pack({a = 1})",
    "local t = {} for i = 1, 15 do t['k' .. i] = i end return #cmsgpack.pack(t) .. string.sub(cmsgpack.pack(t), 1, 1)",
    "local t = {} for i = 1, 16 do t['k' .. i] = i end return #cmsgpack.pack(t) .. string.sub(cmsgpack.pack(t), 1, 3)",
    "local t = {} for i = 1, 65536 do t['k' .. i] = i end return string.sub(cmsgpack.pack(t), 1, 5)",
    "return cmsgpack.pack({[1] = 1, [3] = 3})",
    "return cmsgpack.pack({[0] = 1})",
    "return cmsgpack.pack({[1.5] = 1})",
    "return cmsgpack.pack({[2^31] = 1})",
    "return cmsgpack.pack({1, 2, x = 3})",
    "return cmsgpack.pack({[true] = false})",
    "return cmsgpack.pack({{{{}}}})",
    "return cmsgpack.pack(type, coroutine.create(function() end), cjson.null)",
    "local t = {} t[1] = t return cmsgpack.pack(t)",
    "local t = {} t.self = t return cmsgpack.pack(t)",
    "local t = {} local c = t for i = 1, 20 do c[1] = {} c = c[1] end return cmsgpack.pack(t)",
    "return cmsgpack.pack(1, 'a', {2}, nil, true)",
    "return cmsgpack.pack()",
    "return cmsgpack.pack(setmetatable({1, 2}, {__index = function() return 9 end}))",
    "return dumpall(cmsgpack.unpack(cmsgpack.pack(1, -1, 1.5, 'x', true, false, {1, 2}, {a = {b = 1}})))",
    "return dumpall(cmsgpack.unpack(cmsgpack.pack(nil)))",
    "return dumpall(cmsgpack.unpack(cmsgpack.pack(2^53, -2^53, 2^63, 2^64, 1/0, 0/0)))",
    "return dumpall(cmsgpack.unpack(''))",
    "return dumpall(cmsgpack.unpack('\\192\\192'))",
    "return dumpall(cmsgpack.unpack('\\207\\255\\255\\255\\255\\255\\255\\255\\255'))",
    "return dumpall(cmsgpack.unpack('\\207\\128\\0\\0\\0\\0\\0\\0\\0'))",
    "return dumpall(cmsgpack.unpack('\\211\\255\\255\\255\\255\\255\\255\\255\\254'))",
    "return dumpall(cmsgpack.unpack('\\204\\200\\205\\1\\0\\206\\255\\0\\0\\1\\208\\128\\209\\128\\0\\210\\128\\0\\0\\0'))",
    "return dumpall(cmsgpack.unpack('\\202\\63\\128\\0\\0\\203\\63\\240\\0\\0\\0\\0\\0\\0'))",
    "return dumpall(cmsgpack.unpack('\\217\\3abc\\218\\0\\2de\\219\\0\\0\\0\\1f'))",
    "return dumpall(cmsgpack.unpack('\\220\\0\\2\\1\\2\\221\\0\\0\\0\\1\\3\\222\\0\\1\\1\\2\\223\\0\\0\\0\\1\\3\\4'))",
    "return dumpall(cmsgpack.unpack('\\146\\1\\192\\130\\161a\\192\\161b\\1'))",
    "return dumpall(pcall(cmsgpack.unpack, '\\129\\192\\1'))",
    "return dumpall(pcall(cmsgpack.unpack, '\\129\\203\\255\\248\\0\\0\\0\\0\\0\\0\\1'))",
    "return dumpall(cmsgpack.unpack('\\193'))",
    "return dumpall(cmsgpack.unpack('\\196\\1a'))",
    "return dumpall(cmsgpack.unpack('\\212\\1\\1'))",
    "return dumpall(cmsgpack.unpack('\\205\\1'))",
    "return dumpall(cmsgpack.unpack('\\163ab'))",
    "return dumpall(cmsgpack.unpack('\\219\\255\\255\\255\\255abc'))",
    "return dumpall(cmsgpack.unpack('\\221\\255\\255\\255\\255\\1\\2'))",
    "return dumpall(cmsgpack.unpack('\\223\\255\\255\\255\\255\\1\\2'))",
    "return dumpall(cmsgpack.unpack('\\147\\1\\2'))",
    "return dumpall(cmsgpack.unpack(string.rep('\\145', 3000) .. '\\1'))",
    "return dumpall(cmsgpack.unpack(string.rep('\\145', 10000) .. '\\1'))",
    "return #{cmsgpack.unpack(string.rep('\\1', 100))}",
    "return #{cmsgpack.unpack(string.rep('\\1', 10000))}",
    "return dumpall(cmsgpack.unpack(5))",
    "return dumpall(cmsgpack.unpack({}))",
    "return dumpall(cmsgpack.unpack())",
    "local p = cmsgpack.pack(1, 'two', {3}) return dumpall(cmsgpack.unpack_one(p))",
    "local p = cmsgpack.pack(1, 'two', {3}) return dumpall(cmsgpack.unpack_one(p, 1))",
    "local p = cmsgpack.pack(1, 'two', {3}) return dumpall(cmsgpack.unpack_one(p, 5))",
    "local p = cmsgpack.pack(1, 'two', {3}) return dumpall(cmsgpack.unpack_one(p, 7))",
    "local p = cmsgpack.pack(1, 'two', {3}) return dumpall(cmsgpack.unpack_one(p, 8))",
    "local p = cmsgpack.pack(1, 'two', {3}) return dumpall(cmsgpack.unpack_one(p, -1))",
    "local p = cmsgpack.pack(1, 'two', {3}) return dumpall(cmsgpack.unpack_one(p, 'x'))",
    "local p = cmsgpack.pack(1, 'two', {3}) return dumpall(cmsgpack.unpack_limit(p, 2))",
    "local p = cmsgpack.pack(1, 'two', {3}) return dumpall(cmsgpack.unpack_limit(p, 2, 1))",
    "local p = cmsgpack.pack(1, 'two', {3}) return dumpall(cmsgpack.unpack_limit(p, 0))",
    "local p = cmsgpack.pack(1, 'two', {3}) return dumpall(cmsgpack.unpack_limit(p, 0, 1))",
    "local p = cmsgpack.pack(1, 'two', {3}) return dumpall(cmsgpack.unpack_limit(p, 10))",
    "local p = cmsgpack.pack(1, 'two', {3}) return dumpall(cmsgpack.unpack_limit(p, -1))",
    "local p = cmsgpack.pack(1, 'two', {3}) return dumpall(cmsgpack.unpack_limit(p))",
    "local p = cmsgpack.pack(1, 'two', {3}) return dumpall(cmsgpack.unpack_limit(p, 1, 99))",
    "return dumpall(cmsgpack.unpack_one(''))",
    "return dumpall(cmsgpack.unpack_one('abc', 2^40))",
    "return dumpall(cmsgpack.unpack_one('abc', 2^32 + 5))",
    "return dumpall(cmsgpack.unpack_limit('\\1\\2\\3', 2^40))",
    "return dumpall(cmsgpack.unpack_one('\\193'))",
    "return dumpall(pcall(cmsgpack.unpack, '\\193'))",
    "return dumpall(pcall(cmsgpack.pack))",
    "return {cmsgpack._NAME, cmsgpack._VERSION, cmsgpack._COPYRIGHT, cmsgpack._DESCRIPTION}",
];

const BIT: &[&str] = &[
    "return {bit.tobit(1), bit.tobit(-1), bit.tobit(2^31), bit.tobit(2^32), bit.tobit(2^32 + 5), bit.tobit(-2^31 - 1)}",
    "return {bit.tobit(1.5), bit.tobit(2.5), bit.tobit(-1.5), bit.tobit(0.4999), bit.tobit(1e20), bit.tobit(2^52 + 0.5)}",
    "return {bit.tobit('12'), bit.tobit('0x10'), bit.tobit(' 7 ')}",
    "return bit.tobit('x')",
    "return bit.tobit()",
    "return bit.tobit({})",
    "return bit.tobit(1/0)",
    "return bit.tobit(0/0)",
    "return {bit.bnot(0), bit.bnot(-1), bit.bnot(12345)}",
    "return {bit.band(0xff, 0x0f), bit.band(-1, 0x12345678), bit.band(1, 3, 5, 7), bit.band(7)}",
    "return {bit.bor(1, 2), bit.bor(1, 2, 4, 8), bit.bor(-2^31, 1)}",
    "return {bit.bxor(5, 3), bit.bxor(-1, 1, 2)}",
    "return bit.band(1, 2, 'x', 4)",
    "return bit.bor(1, {}, 'x')",
    "return {bit.lshift(1, 0), bit.lshift(1, 31), bit.lshift(1, 32), bit.lshift(1, 33), bit.lshift(1, -1), bit.lshift(-1, 4)}",
    "return {bit.rshift(-1, 0), bit.rshift(-1, 1), bit.rshift(-1, 31), bit.rshift(-1, 32), bit.rshift(256, 4)}",
    "return {bit.arshift(-256, 4), bit.arshift(-1, 31), bit.arshift(2^31, 1), bit.arshift(256, 36)}",
    "return {bit.rol(1, 1), bit.rol(2^31, 1), bit.rol(0x12345678, 8), bit.rol(5, 0), bit.rol(5, 32)}",
    "return {bit.ror(1, 1), bit.ror(0x12345678, 8), bit.ror(5, 0), bit.ror(5, -1)}",
    "return {bit.bswap(0x12345678), bit.bswap(-1), bit.bswap(1)}",
    "return {bit.tohex(0), bit.tohex(1), bit.tohex(-1), bit.tohex(0x12345678), bit.tohex(2^32 + 10)}",
    "return {bit.tohex(255, 2), bit.tohex(255, -2), bit.tohex(255, 1), bit.tohex(255, 0), bit.tohex(-1, 20), bit.tohex(-1, -20), bit.tohex(0xabcdef, -8)}",
    "return {bit.tohex(255, -2^31), bit.tohex(255, 2^31), bit.tohex(255, 2^32 - 1)}",
    "return bit.tohex(1, 'x')",
    "return bit.tohex(1, nil)",
    "return bit.lshift(1)",
    "return pcall(bit.band, 'a')",
];

const STRUCT: &[&str] = &[
    "return struct.pack('b', -1) .. struct.pack('B', 255) .. struct.pack('b', 300)",
    "return struct.pack('<h', 0x1234) .. struct.pack('>h', 0x1234) .. struct.pack('H', -1)",
    "return struct.pack('<l', 1) .. struct.pack('>L', 2^40) .. struct.pack('<T', 7)",
    "return struct.pack('<i', -2) .. struct.pack('>I', 1) .. struct.pack('<i1', 255) .. struct.pack('>i2', 1)",
    "return struct.pack('<i3', 0x123456) .. struct.pack('>i3', 0x123456) .. struct.pack('<I5', 2^33)",
    "return struct.pack('<i16', -1) .. struct.pack('>i16', -1) .. struct.pack('<I16', 1) .. struct.pack('>i32', 2)",
    "return struct.pack('i33', 1)",
    "return struct.pack('i0', 1)",
    "return struct.pack('i99999999999', 1)",
    "return struct.pack('<I8', 2^64) .. struct.pack('<I8', 2^63) .. struct.pack('<i8', -2^63) .. struct.pack('<i8', -2^64)",
    "return struct.pack('<i8', 0/0) .. struct.pack('<I8', 1/0) .. struct.pack('<i8', -1/0) .. struct.pack('<i4', 1.9) .. struct.pack('<i4', -1.9)",
    "return struct.pack('<f', 1.5) .. struct.pack('>f', 1.5) .. struct.pack('<f', 0.1) .. struct.pack('<f', 1e40)",
    "return struct.pack('<d', 1.5) .. struct.pack('>d', -0.1) .. struct.pack('d', 1/0)",
    "return struct.pack('c5', 'abcdefg') .. struct.pack('c0', 'xyz') .. struct.pack('c', 'q')",
    "return struct.pack('c5', 'abc')",
    "return struct.pack('bc5', 1, 'abc')",
    "return struct.pack('s', 'hello') .. struct.pack('s', '') .. struct.pack('s', 'a\\0b')",
    "return struct.pack('xxbx', 7)",
    "return struct.pack('!4 b i', 1, 2) .. struct.pack('!b i', 1, 2) .. struct.pack('!2 b d', 1, 2)",
    "return struct.pack('!8 b d b h', 1, 2, 3, 4)",
    "return struct.pack('!3 b i', 1, 2)",
    "return struct.pack('!0 b', 1)",
    "return struct.pack('! b d', 1, 2) .. struct.pack('!16 b d', 1, 2) .. struct.size('!')",
    "return struct.pack('b b  b', 1, 2, 3)",
    "return struct.pack('z', 1)",
    "return struct.pack('b')",
    "return struct.pack('b', 'x')",
    "return struct.pack('s', {})",
    "return struct.pack()",
    "return struct.pack(12, 1)",
    "return struct.pack('b\\0b', 1, 2)",
    "return struct.pack('>b', 1, 2, 3)",
    "return dumpall(struct.unpack('b', '\\255'))",
    "return dumpall(struct.unpack('B', '\\255'))",
    "return dumpall(struct.unpack('<h>h<H>H', '\\1\\2\\1\\2\\255\\254\\255\\254'))",
    "return dumpall(struct.unpack('<i3>i3<I3', '\\255\\255\\255\\255\\255\\127\\1\\2\\3'))",
    "return dumpall(struct.unpack('<l<L', '\\255\\255\\255\\255\\255\\255\\255\\255\\255\\255\\255\\255\\255\\255\\255\\255'))",
    "return dumpall(struct.unpack('<i9', '\\255\\255\\255\\255\\255\\255\\255\\255\\255'))",
    "return dumpall(struct.unpack('>i12', string.rep('\\255', 12)))",
    "return dumpall(struct.unpack('<I16', string.rep('\\1', 16)))",
    "return dumpall(struct.unpack('<i0', 'abc'))",
    "return dumpall(struct.unpack('<f>f', struct.pack('<f>f', 1.5, -2.25)))",
    "return dumpall(struct.unpack('<d>d', struct.pack('<d>d', 0.1, 1e300)))",
    "return dumpall(struct.unpack('c3c2', 'abcdefg'))",
    "return dumpall(struct.unpack('bc0', '\\3abcdef'))",
    "return dumpall(struct.unpack('c0', '3abc'))",
    "return dumpall(struct.unpack('c0', 'abc'))",
    "return dumpall(struct.unpack('bc0', '\\9abc'))",
    "return dumpall(struct.unpack('bc0', '\\255abc'))",
    "return dumpall(struct.unpack('ss', 'hello\\0world\\0rest'))",
    "return dumpall(struct.unpack('s', 'unterminated'))",
    "return dumpall(struct.unpack('xbx', '\\1\\2\\3'))",
    "return dumpall(struct.unpack('!4 b i', struct.pack('!4 b i', 1, 2)))",
    "return dumpall(struct.unpack('b', 'abc', 2))",
    "return dumpall(struct.unpack('b', 'abc', 3))",
    "return dumpall(struct.unpack('b', 'abc', 4))",
    "return dumpall(struct.unpack('b', 'abc', 0))",
    "return dumpall(struct.unpack('b', 'abc', -5))",
    "return dumpall(struct.unpack('b', 'abc', 'x'))",
    "return dumpall(struct.unpack('i', 'abc'))",
    "return dumpall(struct.unpack('b', ''))",
    "return dumpall(struct.unpack('', 'abc'))",
    "return dumpall(struct.unpack('z', 'abc'))",
    "return dumpall(struct.unpack('b'))",
    "return dumpall(struct.unpack('c99999999999', 'abc'))",
    "return dumpall(struct.unpack('c2000000000', 'abc'))",
    "return dumpall(struct.unpack(string.rep('b', 9000), string.rep('a', 9000)))",
    "return {struct.size('b'), struct.size('bhlT'), struct.size('i'), struct.size('i7'), struct.size('!4 bi'), struct.size('!8 bd'), struct.size('c10'), struct.size('xxx'), struct.size('fd'), struct.size('')}",
    "return struct.size('s')",
    "return struct.size('c0')",
    "return struct.size('bz')",
    "return struct.size('b?')",
    "return struct.size('!5')",
    "return struct.size('i40')",
    "return struct.size()",
    "return pcall(struct.pack, 'i40', 1)",
];

/// Every library exposes exactly Redis's names.
#[test]
fn library_tables_match_redis() {
    Pair::new().check_all(&[
        "local out = {} for _, lib in ipairs({cjson, cmsgpack, bit, struct}) do local k = {} for n in pairs(lib) do k[#k + 1] = n end table.sort(k) out[#out + 1] = table.concat(k, ',') end return out",
        "return {type(cjson), type(cmsgpack), type(bit), type(struct), getmetatable(cjson) == nil}",
        "return type(cmsgpack_safe)",
        "return type(cjson.safe)",
    ]);
}

#[test]
fn cjson_encode_matches_redis() {
    Pair::new().check_all(CJSON_ENCODE);
}

#[test]
fn cjson_decode_matches_redis() {
    Pair::new().check_all(CJSON_DECODE);
}

#[test]
fn cmsgpack_matches_redis() {
    Pair::new().check_all(CMSGPACK);
}

#[test]
fn bit_matches_redis() {
    Pair::new().check_all(BIT);
}

#[test]
fn struct_matches_redis() {
    Pair::new().check_all(STRUCT);
}

/// Library settings belong to the script's Lua state: what one script
/// changes, the next one sees (in Redis too), until SCRIPT FLUSH.
#[test]
fn settings_persist_like_redis() {
    let mut p = Pair::new();
    for script in [
        "cjson.encode_number_precision(3) return cjson.encode(1/3)",
        "return cjson.encode(1/3)",
        "cjson.encode_sparse_array(true) return cjson.encode({[1] = 1, [50] = 2})",
        "return {cjson.encode_sparse_array()}",
        "cjson.encode_number_precision(14) return cjson.encode(1/3)",
    ] {
        let (want, got) = p.eval_raw(script);
        assert_eq!(show(&want), show(&got), "script: {script}");
    }
}

/// Differences that come from the script runner (scripting.rs), not from
/// these libraries, kept here so they are fixed rather than forgotten:
/// Cinnabar turns a script's error message into UTF-8 lossily (a byte
/// such as 0xC8 in an invalid-option message becomes U+FFFD), and an error
/// raised without a position by a C function (Lua's "table index is nil")
/// reports line "?" where Redis reports the calling line. And Redis 7.0
/// makes every table reachable from the globals read-only (its Lua has a
/// read-only flag that even `rawset` obeys), the libraries' tables
/// included; Cinnabar protects only the globals table itself.
#[test]
#[ignore = "scripting.rs error reporting and read-only tables, outside the libraries (see the comment)"]
fn error_reporting_matches_redis() {
    Pair::new().check_all(&[
        "cjson.encode = nil return 1",
        "bit.x = 1 return 1",
        "rawset(struct, 'x', 1) return 1",
        "return struct.pack('\\200', 1)",
        "return dumpall(cmsgpack.unpack('\\129\\192\\1'))",
        "return dumpall(cmsgpack.unpack('\\129\\203\\255\\248\\0\\0\\0\\0\\0\\0\\1'))",
    ]);
}

/// A Lua literal for a random value: nil-free scalars (ints, floats, the
/// special numbers, strings with every kind of byte) and nested tables
/// mixing array parts, holes and hash keys.
fn lua_value() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        any::<i32>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| format!("{n}")),
        (-1e6f64..1e6).prop_map(|f| format!("{f:?}")),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        prop::sample::select(vec![
            "0",
            "-0.0",
            "1/0",
            "-1/0",
            "0/0",
            "2^53",
            "2^63",
            "-2^63",
            "2^64",
            "127",
            "128",
            "-32",
            "-33",
            "255",
            "256",
            "65535",
            "65536",
            "4294967295",
            "4294967296",
            "0.1",
            "1e-310",
        ])
        .prop_map(str::to_string),
    ];
    let string = prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| {
        let body: String = b.iter().map(|c| format!("\\{c}")).collect();
        format!("\"{body}\"")
    });
    let long_string = (0usize..3, 0usize..70000)
        .prop_map(|(c, n)| format!("string.rep('{}', {n})", ["a", "/", "\\0"][c]));
    let leaf = prop_oneof![
        4 => number,
        4 => string,
        1 => long_string,
        1 => Just("true".to_string()),
        1 => Just("false".to_string()),
        1 => Just("cjson.null".to_string()),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8)
                .prop_map(|v| format!("{{{}}}", v.join(", "))),
            prop::collection::vec(
                (
                    prop_oneof![
                        (1i32..20).prop_map(|k| format!("[{k}]")),
                        "[a-z]{1,4}".prop_map(|k| format!("[\"{k}\"]")),
                        Just("[0]".to_string()),
                        Just("[-1]".to_string()),
                        Just("[1.5]".to_string()),
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|kv| {
                let fields: Vec<String> =
                    kv.into_iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{{}}}", fields.join(", "))
            }),
        ]
    })
}

/// A seeded runner: every run replays the same cases, and a failure
/// prints the minimal input.
fn runner() -> TestRunner {
    TestRunner::new_with_rng(
        PropConfig {
            cases: 400,
            failure_persistence: None,
            ..PropConfig::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    )
}

/// Random values through both libraries' encoders and decoders on both
/// servers: the encodings must be byte-identical, and so must the decoded
/// values (dumped canonically) or the errors.
#[test]
fn random_values_encode_and_decode_like_redis() {
    // The runner wants an `Fn`; the connections need `&mut`.
    let p = std::cell::RefCell::new(Pair::new());
    // How many replies were encodings rather than errors: the generator
    // must mostly produce encodable values for the comparison to mean much.
    let encoded = std::cell::Cell::new(0u32);
    let mut runner = runner();
    let result = runner.run(&lua_value(), |lit| {
        for body in [
            format!("return cjson.encode({lit})"),
            format!("return cmsgpack.pack({lit})"),
            format!("return dump(cjson.decode(cjson.encode({lit})))"),
            format!("return dumpall(cmsgpack.unpack(cmsgpack.pack({lit})))"),
            format!("cjson.encode_invalid_numbers(true) local s = cjson.encode({lit}) cjson.encode_invalid_numbers(false) return s"),
            format!("cjson.encode_sparse_array(true) local s = cjson.encode({lit}) cjson.encode_sparse_array(false) return s"),
            format!("cjson.encode_number_precision({}) return cjson.encode({lit})", 1 + lit.len() % 14),
        ] {
            let (want, got) = p.borrow_mut().eval(&body);
            prop_assert_eq!(show(&want), show(&got), "script: {}", body);
            encoded.set(encoded.get() + u32::from(want.starts_with(b"$")));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // 400 cases x 7 scripts; errors (NaN, sparse arrays, bad keys) are a
    // minority by construction.
    assert!(encoded.get() > 1400, "only {} encodings", encoded.get());
}

/// Random bytes through the decoders and `struct.unpack`: the same values
/// or the same errors, and never a crash.
#[test]
fn random_bytes_decode_like_redis() {
    // The runner wants an `Fn`; the connections need `&mut`.
    let p = std::cell::RefCell::new(Pair::new());
    let mut runner = runner();
    let bytes = prop::collection::vec(
        prop_oneof![
            any::<u8>(),
            prop::sample::select(b"[]{}:,\"\\ 0123456789.eE+-tfnulx".to_vec()),
        ],
        0..40,
    );
    let fmt = "[<>!bBhHlLTiIcsfdx0-9 ]{0,8}";
    // How many calls succeeded: both outcomes must be exercised.
    let succeeded = std::cell::Cell::new(0u32);
    let result = runner.run(&(bytes, fmt), |(b, fmt)| {
        let lit: String = b.iter().map(|c| format!("\\{c}")).collect();
        for body in [
            // Under pcall: the messages compare as values, independently of
            // the script runner's error reporting (error_reporting_matches_redis).
            format!("return try(cjson.decode, \"{lit}\")"),
            format!("return try(cmsgpack.unpack, \"{lit}\")"),
            format!("return try(cmsgpack.unpack_limit, \"{lit}\", 2, 1)"),
            format!("return try(struct.unpack, \"{fmt}\", \"{lit}\")"),
            format!("return try(struct.pack, \"{fmt}\", 1, 2, 3, 4, 5, 6, 7, 8)"),
        ] {
            let (want, got) = p.borrow_mut().eval(&body);
            prop_assert_eq!(show(&want), show(&got), "script: {}", body);
            succeeded
                .set(succeeded.get() + u32::from(want.windows(12).any(|w| w == b"boolean:true")));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let n = succeeded.get();
    assert!(n > 200 && n < 1800, "{n} of 2000 calls succeeded");
}

/// Random numbers (integers, fractions, huge, negative, special) through
/// every `bit` operation and every integral and float `struct` format, in
/// both byte orders: the C casts these libraries rely on (double to int,
/// to unsigned, out of range) must come out as Redis's build computes them.
#[test]
fn random_numbers_through_bit_and_struct_like_redis() {
    let p = std::cell::RefCell::new(Pair::new());
    let mut runner = runner();
    let number = prop_oneof![
        any::<i32>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (-1e4f64..1e4).prop_map(|f| format!("{f:?}")),
        any::<f64>().prop_map(|f| {
            if f.is_nan() {
                "0/0".to_string()
            } else if f.is_infinite() {
                format!("{}1/0", if f < 0.0 { "-" } else { "" })
            } else {
                format!("{f:e}")
            }
        }),
        (-70i32..70).prop_map(|e| format!("2^{e}")),
        (-70i32..70).prop_map(|e| format!("-2^{e} - 0.5")),
    ];
    let result = runner.run(&(number.clone(), number), |(x, y)| {
        for body in [
            format!("local x, y = {x}, {y} return {{bit.tobit(x), bit.bnot(x), bit.band(x, y), bit.bor(x, y), bit.bxor(x, y), bit.lshift(x, y), bit.rshift(x, y), bit.arshift(x, y), bit.rol(x, y), bit.ror(x, y), bit.bswap(x), bit.tohex(x), bit.tohex(x, y)}}"),
            format!("local x = {x} local s = '' for _, f in ipairs({{'b', 'B', 'h', 'H', 'l', 'L', 'T', 'i', 'I', 'i3', 'I5', 'i12', 'f', 'd'}}) do s = s .. struct.pack('<' .. f, x) .. struct.pack('>' .. f, x) end return s"),
            format!("local x = {x} local s = '' for _, f in ipairs({{'b', 'H', 'i3', 'l', 'I8', 'i10', 'f', 'd'}}) do s = s .. dumpall(struct.unpack('<' .. f, struct.pack('<' .. f, x))) .. dumpall(struct.unpack('>' .. f, struct.pack('<' .. f, x))) end return s"),
            format!("local x = {x} return cmsgpack.pack(x) .. cjson.encode({{x}}) .. dumpall(cmsgpack.unpack(cmsgpack.pack(x)))"),
        ] {
            let (want, got) = p.borrow_mut().eval(&body);
            prop_assert_eq!(show(&want), show(&got), "script: {}", body);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
