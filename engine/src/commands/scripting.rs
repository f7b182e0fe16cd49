//! Lua scripting (Redis's `eval.c` and `script_lua.c`): EVAL, EVALSHA,
//! EVAL_RO, EVALSHA_RO and SCRIPT LOAD/EXISTS/FLUSH/KILL.
//!
//! Scripts run in one Lua 5.1 state (mlua, vendored Lua as Redis embeds),
//! with only the base, table, string and math libraries: no `io`, `os` or
//! `debug`, so a script can no more touch files or clocks than the engine
//! can. `math.random` is Redis's rand48 generator reseeded before every
//! script, so scripts are deterministic. `redis.call` runs commands through
//! the normal dispatcher on a script client, in RESP2 (Redis 7.0's default
//! for scripts); its reply is converted to Lua values as Redis does, and a
//! script's result back to RESP. A script runs atomically: the engine is
//! single-threaded. Not implemented: `redis.setresp`, `redis.set_repl`,
//! `redis.breakpoint`, the cjson/cmsgpack/struct/bit libraries, script
//! timeouts (SCRIPT KILL always replies NOTBUSY).

use crate::command::{flags, Handler, Table};
use crate::node::{Client, Ctx, Node};
use bytes::Bytes;
use mlua::{Lua, LuaOptions, MultiValue, StdLib, Table as LuaTable, Value as LuaValue};
use std::collections::BTreeMap;

/// The Lua state and the script cache (sha1 hex -> body).
pub struct Scripting {
    lua: Lua,
    cache: BTreeMap<String, Bytes>,
}

impl Scripting {
    fn new() -> Option<Scripting> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::new(),
        )
        .ok()?;
        // Scripts may not create globals or read undefined ones (Redis 7.0).
        lua.load(
            r#"setmetatable(_G, {
                __index = function(_, k)
                    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
                end,
                __newindex = function()
                    error("Attempt to modify a readonly table", 2)
                end,
            })"#,
        )
        .exec()
        .ok()?;
        Some(Scripting {
            lua,
            cache: BTreeMap::new(),
        })
    }
}

/// This module's commands, by lowercase name.
pub fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "eval" => eval,
        "evalsha" => evalsha,
        "eval_ro" => eval_ro,
        "evalsha_ro" => evalsha_ro,
        "script|load" => script_load,
        "script|exists" => script_exists,
        "script|flush" => script_flush,
        "script|kill" => script_kill,
        "script|help" => script_help,
        _ => return None,
    })
}

fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

pub fn eval(cx: &mut Ctx) {
    let body = cx.argv[1].clone();
    eval_generic(cx, Some(body), false);
}

pub fn eval_ro(cx: &mut Ctx) {
    let body = cx.argv[1].clone();
    eval_generic(cx, Some(body), true);
}

pub fn evalsha(cx: &mut Ctx) {
    eval_generic(cx, None, false);
}

pub fn evalsha_ro(cx: &mut Ctx) {
    eval_generic(cx, None, true);
}

fn scripting(node: &mut Node) -> Option<&mut Scripting> {
    if node.scripting.is_none() {
        node.scripting = Scripting::new().map(Box::new);
    }
    node.scripting.as_deref_mut()
}

fn eval_generic(cx: &mut Ctx, body: Option<Bytes>, read_only: bool) {
    let Some(numkeys) = cx.parse_int(2) else {
        return;
    };
    if numkeys > (cx.argv.len() - 3) as i64 {
        return cx.error("ERR Number of keys can't be greater than number of args");
    }
    if numkeys < 0 {
        return cx.error("ERR Number of keys can't be negative");
    }
    let numkeys = numkeys as usize;
    let (sha, body) = match body {
        Some(b) => (sha1_hex(&b), b),
        None => {
            let sha = String::from_utf8_lossy(&cx.argv[1]).to_ascii_lowercase();
            let cached = scripting(cx.node).and_then(|s| s.cache.get(&sha).cloned());
            match cached {
                Some(b) => (sha, b),
                None => return cx.error("NOSCRIPT No matching script. Please use EVAL."),
            }
        }
    };
    // EVAL skips the usual after-the-fact MONITOR feed: like Redis, it is
    // shown before the commands it runs.
    if !cx.node.monitors.is_empty() {
        cx.node.feed_monitors(cx.client, cx.cmd, cx.argv);
    }
    let keys: Vec<Bytes> = cx.argv[3..3 + numkeys].to_vec();
    let args: Vec<Bytes> = cx.argv[3 + numkeys..].to_vec();
    // The state leaves the node while the script runs, so `redis.call` can
    // borrow the node (a script cannot reach EVAL: it is flagged noscript).
    let _ = scripting(cx.node);
    let Some(mut state) = cx.node.scripting.take() else {
        return cx.error("ERR Lua scripting is unavailable");
    };
    state.cache.insert(sha.clone(), body.clone());
    let result = run(&state.lua, cx, &sha, &body, keys, args, read_only);
    cx.node.scripting = Some(state);
    match result {
        Ok(()) => {}
        Err(msg) => cx.error(&msg),
    }
}

/// What a `redis.call` error carries: the message and the script line.
struct CallError(String);

fn run(
    lua: &Lua,
    cx: &mut Ctx,
    sha: &str,
    body: &[u8],
    keys: Vec<Bytes>,
    args: Vec<Bytes>,
    read_only: bool,
) -> Result<(), String> {
    let func = lua
        .load(body)
        .set_name("@user_script")
        .into_function()
        .map_err(|e| {
            format!(
                "ERR Error compiling script (new function): {}",
                lua_message(&e)
            )
        })?;
    let globals = lua.globals();
    let set_strings = |name: &str, items: &[Bytes]| -> mlua::Result<()> {
        let t = lua.create_table()?;
        for (i, v) in items.iter().enumerate() {
            t.set(i + 1, lua.create_string(v)?)?;
        }
        globals.raw_set(name, t)
    };
    set_strings("KEYS", &keys).map_err(|e| e.to_string())?;
    lua.set_named_registry_value("__sha", sha)
        .map_err(|e| e.to_string())?;
    set_strings("ARGV", &args).map_err(|e| e.to_string())?;
    // Like Redis 7.0, math.random differs from call to call; here it is
    // seeded from the node's RNG so a run is still reproducible.
    let mut rand = Rand48::new(rand_core::RngCore::next_u32(&mut cx.node.rng));
    let mut script_client = Client::script_client(cx.client);
    let db_before = cx.client.db;
    let node = &mut *cx.node;
    let last_error: std::cell::RefCell<Option<CallError>> = std::cell::RefCell::new(None);
    let outcome = lua.scope(|scope| {
        let redis = lua.create_table()?;
        let call = scope.create_function_mut(|lua, (raise, argv): (bool, MultiValue)| {
            redis_call(lua, node, &mut script_client, raise, argv, read_only, &last_error)
        })?;
        let wrapper: mlua::Function = lua
            .load("local f = ... return function(...) return f(true, ...) end, function(...) return f(false, ...) end")
            .into_function()?;
        let (c, p): (mlua::Function, mlua::Function) = wrapper.call(call)?;
        redis.set("call", c)?;
        redis.set("pcall", p)?;
        redis.set(
            "error_reply",
            lua.create_function(|lua, msg: mlua::String| {
                let t = lua.create_table()?;
                t.set("err", msg)?;
                Ok(t)
            })?,
        )?;
        redis.set(
            "status_reply",
            lua.create_function(|lua, msg: mlua::String| {
                let t = lua.create_table()?;
                t.set("ok", msg)?;
                Ok(t)
            })?,
        )?;
        redis.set(
            "sha1hex",
            lua.create_function(|_, s: mlua::String| Ok(sha1_hex(&s.as_bytes())))?,
        )?;
        redis.set("log", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
        for (name, level) in [
            ("LOG_DEBUG", 0),
            ("LOG_VERBOSE", 1),
            ("LOG_NOTICE", 2),
            ("LOG_WARNING", 3),
        ] {
            redis.set(name, level)?;
        }
        globals.raw_set("redis", redis)?;
        let math: LuaTable = globals.raw_get("math")?;
        math.set(
            "random",
            scope.create_function_mut(|_, a: MultiValue| rand.random(&a))?,
        )?;
        math.set("randomseed", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
        func.call::<LuaValue>(())
    });
    cx.client.db = script_client.db;
    let _ = db_before;
    match outcome {
        Ok(v) => {
            to_resp(&v, &mut cx.client.reply, 0);
            Ok(())
        }
        Err(e) => {
            let line = last_error.borrow_mut().take();
            Err(match line {
                Some(CallError(msg)) => msg,
                None => {
                    let msg = lua_message(&e);
                    let line = msg
                        .strip_prefix("user_script:")
                        .and_then(|r| r.split(':').next())
                        .unwrap_or("?")
                        .to_string();
                    format!("ERR {msg} script: {sha}, on @user_script:{line}.")
                }
            })
        }
    }
}

/// The text of a Lua error, without mlua's traceback decoration.
fn lua_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        other => other.to_string(),
    }
    .lines()
    .next()
    .unwrap_or_default()
    .to_string()
}

/// `redis.call` / `redis.pcall`: runs a command and converts its reply.
fn redis_call(
    lua: &Lua,
    node: &mut Node,
    client: &mut Client,
    raise: bool,
    argv: MultiValue,
    read_only: bool,
    last_error: &std::cell::RefCell<Option<CallError>>,
) -> mlua::Result<LuaValue> {
    let line = lua.inspect_stack(1).map_or(0, |d| d.curr_line());
    let fail = |msg: &str| -> mlua::Result<LuaValue> {
        if raise {
            *last_error.borrow_mut() = Some(CallError(format!(
                "{msg} script: {}, on @user_script:{line}.",
                client_script_sha(lua)
            )));
            Err(mlua::Error::RuntimeError(msg.to_string()))
        } else {
            let t = lua.create_table()?;
            t.set("err", msg)?;
            Ok(LuaValue::Table(t))
        }
    };
    let mut args: Vec<Bytes> = Vec::with_capacity(argv.len());
    for v in argv.iter() {
        match v {
            LuaValue::String(s) => args.push(Bytes::copy_from_slice(&s.as_bytes())),
            LuaValue::Integer(n) => args.push(Bytes::from(n.to_string())),
            LuaValue::Number(n) => args.push(Bytes::from(crate::numeric::fmt_double_17g(*n))),
            _ => return fail("ERR Lua redis lib command arguments must be strings or integers"),
        }
    }
    if args.is_empty() {
        return fail("ERR Please specify at least one argument for this redis lib call");
    }
    let table = Table::get();
    let cmd = table.lookup(&args[0]).and_then(|c| {
        if c.is_container() {
            args.get(1).and_then(|s| c.subcommand(s))
        } else {
            Some(c)
        }
    });
    let Some(cmd) = cmd else {
        return fail("ERR Unknown Redis command called from script");
    };
    if !cmd.arity_ok(args.len()) {
        return fail("ERR Wrong number of args calling Redis command from script");
    }
    if cmd.has(flags::NOSCRIPT) {
        return fail("ERR This Redis command is not allowed from script");
    }
    if read_only && cmd.has(flags::WRITE) {
        return fail("ERR Write commands are not allowed from read-only scripts.");
    }
    client.reply.buf.clear();
    node.execute(client, &args);
    let reply = client.reply.buf.split().freeze();
    let (value, _) = from_resp(lua, &reply)?;
    if let LuaValue::Table(t) = &value {
        if let Ok(LuaValue::String(e)) = t.get::<LuaValue>("err") {
            if raise {
                let msg = e.to_str().map(|s| s.to_string()).unwrap_or_default();
                return fail(&msg);
            }
        }
    }
    Ok(value)
}

/// The running script's sha, stashed in the registry by `run`.
fn client_script_sha(lua: &Lua) -> String {
    lua.named_registry_value::<String>("__sha")
        .unwrap_or_default()
}

/// Parses one RESP2 reply into a Lua value, as Redis's `redisProtocolToLuaType`.
fn from_resp(lua: &Lua, b: &[u8]) -> mlua::Result<(LuaValue, usize)> {
    let bad = || mlua::Error::RuntimeError("bad reply".into());
    let eol = b.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
    let head = &b[1..eol];
    let num = || -> mlua::Result<i64> {
        std::str::from_utf8(head)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    let next = eol + 2;
    Ok(match b.first().ok_or_else(bad)? {
        b':' => (LuaValue::Integer(num()?), next),
        b'+' => {
            let t = lua.create_table()?;
            t.set("ok", lua.create_string(head)?)?;
            (LuaValue::Table(t), next)
        }
        b'-' => {
            let t = lua.create_table()?;
            t.set("err", lua.create_string(head)?)?;
            (LuaValue::Table(t), next)
        }
        b'$' => {
            let n = num()?;
            if n < 0 {
                (LuaValue::Boolean(false), next)
            } else {
                let end = next + n as usize;
                let s = b.get(next..end).ok_or_else(bad)?;
                (LuaValue::String(lua.create_string(s)?), end + 2)
            }
        }
        b'*' => {
            let n = num()?;
            if n < 0 {
                (LuaValue::Boolean(false), next)
            } else {
                let t = lua.create_table()?;
                let mut pos = next;
                for i in 0..n {
                    let (v, used) = from_resp(lua, &b[pos..])?;
                    t.set(i + 1, v)?;
                    pos += used;
                }
                (LuaValue::Table(t), pos)
            }
        }
        _ => return Err(bad()),
    })
}

/// Converts a script's result to RESP, as Redis's `luaReplyToRedisReply`.
fn to_resp(v: &LuaValue, out: &mut crate::resp::ReplyBuf, depth: usize) {
    match v {
        LuaValue::String(s) => out.bulk(&s.as_bytes()),
        LuaValue::Boolean(true) => out.int(1),
        LuaValue::Boolean(false) => out.null(),
        LuaValue::Integer(n) => out.int(*n),
        LuaValue::Number(n) => out.int(*n as i64),
        LuaValue::Table(t) => {
            if let Ok(LuaValue::String(e)) = t.get::<LuaValue>("err") {
                let msg = e.as_bytes().to_vec();
                out.error_bytes(&msg);
                return;
            }
            if let Ok(LuaValue::String(ok)) = t.get::<LuaValue>("ok") {
                let mut line = b"+".to_vec();
                line.extend(ok.as_bytes().iter().map(|&c| {
                    if c == b'\r' || c == b'\n' {
                        b' '
                    } else {
                        c
                    }
                }));
                line.extend_from_slice(b"\r\n");
                out.buf.extend_from_slice(&line);
                return;
            }
            // An array up to the first nil.
            let mut items = vec![];
            let mut i = 1;
            while let Ok(v) = t.raw_get::<LuaValue>(i) {
                if v.is_nil() || depth > 100 {
                    break;
                }
                items.push(v);
                i += 1;
            }
            out.array(items.len());
            for v in &items {
                to_resp(v, out, depth + 1);
            }
        }
        _ => out.null(),
    }
}

/// Redis's `redisLrand48` generator behind `math.random`.
struct Rand48 {
    x: u64,
}

impl Rand48 {
    /// `redisSrand48(seed)`.
    fn new(seed: u32) -> Rand48 {
        Rand48 {
            x: ((seed as u64) << 16) | 0x330E,
        }
    }

    fn next(&mut self) -> i64 {
        self.x = (self.x.wrapping_mul(0x5DEE_CE66D).wrapping_add(0xB)) & ((1 << 48) - 1);
        (self.x >> 17) as i64
    }

    /// Lua 5.1's `math.random` over this generator.
    fn random(&mut self, args: &MultiValue) -> mlua::Result<LuaValue> {
        let max = i32::MAX as i64;
        let r = (self.next() % max) as f64 / max as f64;
        let int = |v: &LuaValue| -> mlua::Result<i64> {
            match v {
                LuaValue::Integer(n) => Ok(*n),
                LuaValue::Number(n) => Ok(n.floor() as i64),
                _ => Err(mlua::Error::RuntimeError(
                    "bad argument to 'random' (number expected)".into(),
                )),
            }
        };
        match args.len() {
            0 => Ok(LuaValue::Number(r)),
            1 => {
                let u = int(&args[0])?;
                if u < 1 {
                    return Err(mlua::Error::RuntimeError(
                        "bad argument #1 to 'random' (interval is empty)".into(),
                    ));
                }
                Ok(LuaValue::Number((r * u as f64).floor() + 1.0))
            }
            2 => {
                let (l, u) = (int(&args[0])?, int(&args[1])?);
                if l > u {
                    return Err(mlua::Error::RuntimeError(
                        "bad argument #2 to 'random' (interval is empty)".into(),
                    ));
                }
                Ok(LuaValue::Number(
                    (r * (u - l + 1) as f64).floor() + l as f64,
                ))
            }
            _ => Err(mlua::Error::RuntimeError(
                "wrong number of arguments".into(),
            )),
        }
    }
}

/// SCRIPT LOAD script
pub fn script_load(cx: &mut Ctx) {
    let body = cx.argv[2].clone();
    let sha = sha1_hex(&body);
    let compiled = scripting(cx.node).map(|s| {
        let ok = s
            .lua
            .load(&body[..])
            .set_name("@user_script")
            .into_function();
        (ok.map(|_| ()).map_err(|e| lua_message(&e)), s)
    });
    match compiled {
        Some((Ok(()), s)) => {
            s.cache.insert(sha.clone(), body);
            cx.out().bulk(sha.as_bytes());
        }
        Some((Err(msg), _)) => {
            cx.error(&format!("ERR Error compiling script (new function): {msg}"))
        }
        None => cx.error("ERR Lua scripting is unavailable"),
    }
}

/// SCRIPT EXISTS sha1 [sha1 ...]
pub fn script_exists(cx: &mut Ctx) {
    let shas: Vec<String> = cx.argv[2..]
        .iter()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    let found: Vec<bool> = match scripting(cx.node) {
        Some(s) => shas.iter().map(|h| s.cache.contains_key(h)).collect(),
        None => vec![false; shas.len()],
    };
    let out = cx.out();
    out.array(found.len());
    for f in found {
        out.int(f as i64);
    }
}

/// SCRIPT FLUSH [ASYNC|SYNC]
pub fn script_flush(cx: &mut Ctx) {
    match cx.argv.len() {
        2 => {}
        3 if cx.arg_is(2, "sync") || cx.arg_is(2, "async") => {}
        _ => return cx.error("ERR SCRIPT FLUSH only support SYNC|ASYNC option"),
    }
    cx.node.scripting = None;
    cx.out().ok();
}

/// SCRIPT KILL: scripts never outlive their command here.
pub fn script_kill(cx: &mut Ctx) {
    cx.error("NOTBUSY No scripts in execution right now.");
}

pub fn script_help(cx: &mut Ctx) {
    cx.reply_help("script");
}
