//! Lua scripting (Redis's `eval.c`, `script_lua.c` and `script.c`): EVAL,
//! EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT LOAD/EXISTS/FLUSH/KILL, FCALL and
//! the FUNCTION family.
//!
//! Scripts run in one Lua 5.1 state (mlua, vendored Lua as Redis embeds),
//! with only the base, table, string and math libraries: no `io`, `os` or
//! `debug`, so a script can no more touch files or clocks than the engine
//! can. `math.random` is Redis's rand48 generator reseeded before every
//! script, so scripts are deterministic. `redis.call` runs commands through
//! the normal dispatcher on a script client, in RESP2 (Redis 7.0's default
//! for scripts); its reply is converted to Lua values as Redis does, and a
//! script's result back to RESP. A script runs atomically: while it runs,
//! no other client's command does.
//!
//! ## Long scripts: slices, BUSY and SCRIPT KILL
//! Redis checks the clock from a Lua count hook and, once a script has run
//! `busy-reply-threshold` ms, serves other clients `-BUSY` between slices of
//! the script. The engine has no clock and cannot block its host, so a
//! script runs on its own stack (a `corosensei` coroutine: Lua 5.1 cannot
//! yield from a hook, and a stackful coroutine can yield from anywhere,
//! even inside `pcall`). Every [`SLICE_HOOKS`] hook calls the script
//! suspends and [`Node::handle`] returns; the host sees `poll_timeout() ==
//! now` and sends a tick to run the next slice, with a fresh `now`. Scripts
//! that finish within a slice (almost all) never suspend. While one is
//! suspended, other clients' input waits until the threshold has passed
//! and then gets `-BUSY` (except commands flagged allow-busy, such as
//! SCRIPT KILL and SHUTDOWN NOSAVE); the interrupted command's bookkeeping
//! waits in [`crate::node::Frame`]s. The script sees the time it started
//! at, as in Redis. The Lua debugger (SCRIPT DEBUG) is not implemented:
//! `redis.breakpoint` and `redis.debug` answer as Redis does outside it.

use crate::command::{flags, Handler};
use crate::node::{Client, ConnId, Ctx, Frame, Node, Time};
use bytes::Bytes;
use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use mlua::{ffi, Lua, LuaOptions, MultiValue, StdLib, Table as LuaTable, Value as LuaValue};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

/// Lua instructions between two calls of the count hook (Redis's value).
const HOOK_EVERY: u32 = 100_000;
/// Hook calls per slice: a long script hands control back to the host
/// every million instructions (a few milliseconds).
const SLICE_HOOKS: u32 = 10;
/// Hook calls a library's top-level code may take in FUNCTION LOAD (Redis
/// allows 500 ms of wall time; an instruction budget keeps it deterministic).
const LOAD_HOOKS: u32 = 500;
/// Hook calls a script may take while the AOF loads: one that cannot
/// suspend. Redis 7.0 logs scripts as their effects, so an EVAL in an AOF
/// comes from an old Redis or a hand; one that runs past 10^8 instructions
/// fails the load instead of hanging it (Redis would hang).
const REPLAY_HOOKS: u32 = 1_000;
/// The script stack: Redis runs Lua on the main thread's 8 MB stack.
/// Pages are touched only as deep as a script goes.
const SCRIPT_STACK: usize = 8 << 20;

const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
/// `redis.set_repl` flags (Redis's `PROPAGATE_AOF | PROPAGATE_REPL`).
const REPL_AOF: u8 = 1;
const REPL_ALL: u8 = 3;
const KILLED: &str = "Script killed by user with SCRIPT KILL...";
const REPLAY_TOO_LONG: &str =
    "a script in the append only file ran past the loading limit of 10^8 Lua instructions";

/// The Lua state, the EVAL script cache and the FUNCTION libraries.
pub struct Scripting {
    lua: Lua,
    /// EVAL scripts by sha1 hex, compiled: a script is compiled once, not at
    /// every EVAL/EVALSHA (Redis keeps `f_<sha>` functions in its Lua state).
    cache: BTreeMap<String, mlua::Function>,
    libraries: BTreeMap<String, Library>,
    env: Rc<ScriptEnv>,
    /// The coroutine stack, kept between scripts (allocating one is a
    /// system call).
    stack: Option<DefaultStack>,
}

/// What the Lua callbacks (`redis.call`, the hook) share with the engine.
///
/// The callbacks are `'static` Lua functions, created once, so they cannot
/// borrow the node. Instead [`resume`] stores raw pointers to the node and
/// the script client here for exactly the duration of one slice, during
/// which the resumer does not touch either; between slices they are null.
struct ScriptEnv {
    node: Cell<*mut Node>,
    client: Cell<*mut Client>,
    /// The running coroutine's yielder; null when the script may not
    /// suspend (inside AOF loading, or while a library loads).
    yielder: Cell<*const Yielder<(), ()>>,
    read_only: Cell<bool>,
    /// Hook calls since the script started.
    hooks: Cell<u32>,
    /// Loading a library: the hook enforces [`LOAD_HOOKS`].
    loading: Cell<bool>,
    killed: Cell<bool>,
    /// The script ran a write command: SCRIPT KILL refuses (UNKILLABLE).
    wrote: Cell<bool>,
    last_error: RefCell<Option<CallError>>,
    /// The `err` of the last table raised with `error({err = ...})`: Redis
    /// replies it as the error (cleared when a pcall catches it).
    table_error: RefCell<Option<String>>,
    rand: RefCell<Rand48>,
    /// `redis.set_repl` flags (Redis's PROPAGATE_AOF = 1, PROPAGATE_REPL =
    /// 2): without the AOF bit the script's commands are not logged.
    repl: Cell<u8>,
    /// The running script's sha or function name, and chunk name.
    name: RefCell<String>,
    source: Cell<&'static str>,
}

/// A library loaded with FUNCTION LOAD.
struct Library {
    code: Bytes,
    functions: Vec<Function>,
}

/// A function a library registered.
struct Function {
    name: String,
    flags: Vec<String>,
    callback: mlua::RegistryKey,
}

/// The coroutine a script runs on.
/// It returns the script's reply already in RESP: the conversion recurses
/// as deep as the script's tables, on the script's stack.
type ScriptCoroutine = Coroutine<(), (), mlua::Result<Vec<u8>>, DefaultStack>;

/// A script suspended between two slices: it owns the Lua state until it
/// finishes.
pub struct RunningScript {
    /// Both `Some` until the script finishes (see `Drop`).
    co: Option<ScriptCoroutine>,
    state: Option<Box<Scripting>>,
    script_client: Box<Client>,
    /// The client that sent EVAL/FCALL.
    pub caller: ConnId,
    /// EVAL (SCRIPT KILL may stop it) or FCALL (FUNCTION KILL may).
    pub is_eval: bool,
    /// The sha (EVAL) or function name (FCALL), for errors and STATS.
    name: String,
    source: &'static str,
    /// The command that ran it, for FUNCTION STATS.
    command: Vec<Bytes>,
    /// When the script started: the time its commands see, and the base of
    /// `busy-reply-threshold`.
    pub started: Time,
    /// `Node::call_depth` inside the script's handler.
    depth: u32,
    /// What the interrupted command (and an EXEC around it) still has to do.
    pub frames: Vec<Frame>,
}

impl Drop for RunningScript {
    fn drop(&mut self) {
        if let Some(co) = &mut self.co {
            if co.started() && !co.done() {
                // A node dropped (crash in the simulator) with a script
                // mid-slice. Unwinding the coroutine would unwind a Rust
                // panic through Lua's C frames, so the stack is abandoned
                // instead, and the Lua state it points into is leaked.
                // SAFETY: nothing on that stack is used again.
                unsafe { co.force_reset() };
                std::mem::forget(self.state.take());
            }
        }
    }
}

impl RunningScript {
    fn env(&self) -> Option<&ScriptEnv> {
        self.state.as_deref().map(|s| &*s.env)
    }
}

impl Scripting {
    fn new() -> Option<Scripting> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::new(),
        )
        .ok()?;
        let env = Rc::new(ScriptEnv {
            node: Cell::new(std::ptr::null_mut()),
            client: Cell::new(std::ptr::null_mut()),
            yielder: Cell::new(std::ptr::null()),
            read_only: Cell::new(false),
            hooks: Cell::new(0),
            loading: Cell::new(false),
            killed: Cell::new(false),
            wrote: Cell::new(false),
            last_error: RefCell::new(None),
            table_error: RefCell::new(None),
            rand: RefCell::new(Rand48::new(0)),
            repl: Cell::new(REPL_ALL),
            name: RefCell::new(String::new()),
            source: Cell::new("user_script"),
        });
        install_globals(&lua, &env).ok()?;
        install_hook(&lua, &env).ok()?;
        Some(Scripting {
            lua,
            cache: BTreeMap::new(),
            libraries: BTreeMap::new(),
            env,
            stack: None,
        })
    }
}

/// Where the count hook finds its [`ScriptEnv`] (a light userdata).
const ENV_KEY: &std::ffi::CStr = c"cinnabar.script_env";

/// Installs [`count_hook`] on the main Lua thread. mlua's own hook is not
/// used: it ignores threads other than the one it was set on, and a
/// script's coroutines inherit the hook in Lua 5.1 and must be stopped too.
fn install_hook(lua: &Lua, env: &Rc<ScriptEnv>) -> mlua::Result<()> {
    let ptr = Rc::as_ptr(env) as *mut std::ffi::c_void;
    // SAFETY: plain Lua C API calls on the state mlua hands us; the env
    // outlives the state (both live in `Scripting`).
    unsafe {
        lua.exec_raw::<()>((), |l| {
            ffi::lua_pushlightuserdata(l, ptr);
            ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, ENV_KEY.as_ptr());
            ffi::lua_sethook(
                l,
                Some(count_hook),
                ffi::LUA_MASKCOUNT,
                HOOK_EVERY as std::ffi::c_int,
            );
        })
    }
}

/// What the hook decided.
enum HookAction {
    Continue,
    /// Raise this error in the script.
    Stop(&'static str),
}

/// Lua's count hook, every [`HOOK_EVERY`] instructions of any script
/// thread. It suspends the script every [`SLICE_HOOKS`] calls and stops it
/// once SCRIPT KILL asked, or a library's load ran too long.
unsafe extern "C-unwind" fn count_hook(l: *mut ffi::lua_State, ar: *mut ffi::lua_Debug) {
    ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, ENV_KEY.as_ptr());
    let env = ffi::lua_touserdata(l, -1) as *const ScriptEnv;
    ffi::lua_pop(l, 1);
    if env.is_null() {
        return;
    }
    // SAFETY: the pointer was stored by `install_hook` from the Rc that
    // owns the env, alive as long as the Lua state.
    let env = &*env;
    if let HookAction::Stop(msg) = on_hook(env) {
        if env.killed.get() {
            let line = if ffi::lua_getinfo(l, c"l".as_ptr(), ar) != 0 {
                (*ar).currentline
            } else {
                0
            };
            env.record_kill(line);
        }
        // lua_error does not return: nothing that needs dropping is alive
        // in this frame.
        ffi::lua_pushlstring(l, msg.as_ptr() as *const std::ffi::c_char, msg.len());
        ffi::lua_error(l);
    }
}

fn on_hook(env: &ScriptEnv) -> HookAction {
    let hooks = env.hooks.get().saturating_add(1);
    env.hooks.set(hooks);
    if env.loading.get() {
        if hooks > LOAD_HOOKS {
            return HookAction::Stop("FUNCTION LOAD timeout");
        }
        return HookAction::Continue;
    }
    let yielder = env.yielder.get();
    if yielder.is_null() && hooks > REPLAY_HOOKS {
        return HookAction::Stop(REPLAY_TOO_LONG);
    }
    if hooks.is_multiple_of(SLICE_HOOKS) && !yielder.is_null() {
        // SAFETY: the yielder lives on the coroutine's stack for as long as
        // the coroutine runs, and the hook runs only inside it.
        unsafe { &*yielder }.suspend(());
    }
    if env.killed.get() {
        return HookAction::Stop(KILLED);
    }
    HookAction::Continue
}

impl ScriptEnv {
    /// Records SCRIPT KILL's error with the line the script was at, as
    /// Redis words it.
    fn record_kill(&self, line: i32) {
        *self.last_error.borrow_mut() = Some(CallError(format!(
            "ERR {KILLED} script: {}, on @{}:{line}.",
            self.name.borrow(),
            self.source.get()
        )));
    }
}

/// Sets up the globals every script sees: `redis`, the deterministic
/// `math.random`, `pcall` that cannot swallow SCRIPT KILL, and Redis 7.0's
/// protection against creating or reading undefined globals.
fn install_globals(lua: &Lua, env: &Rc<ScriptEnv>) -> mlua::Result<()> {
    let globals = lua.globals();
    let redis = lua.create_table()?;
    for (name, raise) in [("call", true), ("pcall", false)] {
        let env = env.clone();
        // C functions to Lua (as in Redis), so the calling script's frame
        // stays on the stack for error lines.
        let f = lua.create_function(move |lua, argv: MultiValue| {
            let (node, client) = (env.node.get(), env.client.get());
            if node.is_null() || client.is_null() {
                return Err(mlua::Error::RuntimeError(
                    "redis.call outside a script".into(),
                ));
            }
            // SAFETY: `resume` set these for this slice from live `&mut`
            // references it does not use until the slice returns, and a
            // script cannot re-enter EVAL (flagged noscript), so these are
            // the only references in use.
            let (node, client) = unsafe { (&mut *node, &mut *client) };
            let (value, raise) = redis_call(lua, node, client, raise, argv, &env)?;
            let err = if raise { value.clone() } else { LuaValue::Nil };
            Ok((value, err))
        })?;
        redis.set(name, raising(lua, f, 1)?)?;
    }
    // Both return an error table for bad arguments instead of raising,
    // as Redis does.
    for (name, field) in [("error_reply", "err"), ("status_reply", "ok")] {
        let f = lua.create_function(move |lua, args: MultiValue| {
            let t = lua.create_table()?;
            match (args.len(), args.front()) {
                (1, Some(LuaValue::String(s))) if field == "err" => {
                    let mut text = s.as_bytes().to_vec();
                    if text.first() != Some(&b'-') {
                        text.insert(0, b'-');
                    }
                    t.set("err", lua.create_string(error_table_text(&text))?)?;
                }
                (1, Some(LuaValue::String(s))) => t.set("ok", s.clone())?,
                _ => t.set("err", "ERR wrong number or type of arguments")?,
            }
            Ok(t)
        })?;
        redis.set(name, f)?;
    }
    redis.set(
        "sha1hex",
        lua.create_function(|_, s: mlua::String| Ok(sha1_hex(&s.as_bytes())))?,
    )?;
    install_script_api(lua, &redis, env)?;
    globals.raw_set("redis", redis)?;
    let math: LuaTable = globals.raw_get("math")?;
    let rand_env = env.clone();
    math.set(
        "random",
        lua.create_function(move |_, a: MultiValue| rand_env.rand.borrow_mut().random(&a))?,
    )?;
    math.set(
        "randomseed",
        lua.create_function(|_, _: MultiValue| Ok(()))?,
    )?;
    // A killed script must not go on because it ran inside pcall: Redis
    // re-raises on every line; here pcall and xpcall re-raise themselves.
    let table_env = env.clone();
    globals.raw_set(
        "__table_error",
        lua.create_function(move |_, err: Option<mlua::String>| {
            if err.is_none() {
                // A pcall caught the error: a redis.call failure it raised
                // is no longer the script's error.
                *table_env.last_error.borrow_mut() = None;
            }
            *table_env.table_error.borrow_mut() =
                err.map(|e| String::from_utf8_lossy(&e.as_bytes()).into_owned());
            Ok(())
        })?,
    )?;
    let kill_env = env.clone();
    globals.raw_set(
        "__killed",
        lua.create_function(move |_, ()| Ok(kill_env.killed.get()))?,
    )?;
    lua.load(
        r#"
        local basepcall, basexpcall, killed, select, error = pcall, xpcall, __killed, select, error
        local table_error, type, rawget = __table_error, type, rawget
        local function check(ok, ...)
            if not ok and killed() then error((...), 0) end
            if not ok then table_error(nil) end
            return ok, ...
        end
        -- Redis 7.0's pcall gives the text of an error table, not the table.
        local function pcheck(ok, ...)
            if not ok and killed() then error((...), 0) end
            if ok then return ok, ... end
            table_error(nil)
            local e = ...
            if type(e) == "table" then
                local m = e.err
                if type(m) == "string" or type(m) == "number" then return false, m end
            end
            return false, e
        end
        rawset(_G, "error", function(e, level)
            if type(e) == "table" and type(rawget(e, "err")) == "string" then
                table_error(rawget(e, "err"))
            end
            level = level or 1
            return error(e, level > 0 and level + 1 or level)
        end)
        rawset(_G, "pcall", function(...) return pcheck(basepcall(...)) end)
        rawset(_G, "xpcall", function(...) return check(basexpcall(...)) end)
        rawset(_G, "__killed", nil)
        rawset(_G, "__table_error", nil)
        "#,
    )
    .exec()?;
    crate::lua::install(lua)?;
    // Redis 7.0's sandbox: no way to read files or swap environments, and
    // every library table is read-only, so no script can change what the
    // next one runs. Lua 5.1 has no read-only tables (Redis patches its
    // VM), so libraries are replaced by proxies, and the raw accessors and
    // iterators see through them.
    lua.load(
        r#"
        local real = {}
        local pairs, ipairs, next, rawget, rawset, error = pairs, ipairs, next, rawget, rawset, error
        local setmetatable, getmetatable, type, tostring = setmetatable, getmetatable, type, tostring
        -- Scripts may not create globals or read undefined ones (Redis 7.0).
        setmetatable(_G, {
            __index = function(_, k)
                error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
            end,
            __newindex = function()
                error("Attempt to modify a readonly table", 2)
            end,
        })
        local function readonly(t)
            local proxy = setmetatable({}, {
                __index = t,
                __newindex = function() error("Attempt to modify a readonly table", 2) end,
                __metatable = false,
            })
            real[proxy] = t
            return proxy
        end
        for _, name in ipairs({"string", "math", "table", "coroutine", "bit", "cjson", "cmsgpack", "struct", "redis"}) do
            local t = rawget(_G, name)
            if type(t) == "table" then rawset(_G, name, readonly(t)) end
        end
        local string_mt = getmetatable("")
        string_mt.__index = rawget(_G, "string")
        local string_mt_proxy = readonly(string_mt)
        local function unwrap(t) return real[t] or t end
        rawset(_G, "pairs", function(t) return pairs(unwrap(t)) end)
        rawset(_G, "ipairs", function(t) return ipairs(unwrap(t)) end)
        rawset(_G, "next", function(t, k) return next(unwrap(t), k) end)
        rawset(_G, "rawget", function(t, k) return rawget(unwrap(t), k) end)
        rawset(_G, "rawset", function(t, k, v)
            if real[t] or t == _G then error("Attempt to modify a readonly table", 0) end
            return rawset(t, k, v)
        end)
        rawset(_G, "setmetatable", function(t, mt)
            if real[t] or t == _G then error("Attempt to modify a readonly table", 0) end
            return setmetatable(t, mt)
        end)
        rawset(_G, "getmetatable", function(t)
            if real[t] then return nil end
            if type(t) == "string" then return string_mt_proxy end
            return getmetatable(t)
        end)
        for _, name in ipairs({"print", "newproxy", "setfenv", "getfenv", "loadfile", "dofile"}) do
            rawset(_G, name, nil)
        end
        -- Functions run in Redis's other Lua state, whose globals are the
        -- same but for redis.breakpoint, redis.debug and
        -- redis.replicate_commands (EVAL only), and without KEYS/ARGV.
        local fenv = {}
        for k, v in next, _G do fenv[k] = v end
        local fredis = {}
        for k, v in next, real[rawget(_G, "redis")] do
            if k ~= "breakpoint" and k ~= "debug" and k ~= "replicate_commands" then fredis[k] = v end
        end
        fenv.redis = readonly(fredis)
        fenv._G = fenv
        setmetatable(fenv, getmetatable(_G))
        real[fenv] = fenv
        return fenv
        "#,
    )
    .eval::<LuaTable>()
    .and_then(|fenv| lua.set_named_registry_value(FUNCTION_ENV, fenv))
}

/// Where the globals of FCALL's functions are kept (registry name).
const FUNCTION_ENV: &str = "cinnabar.function_env";

/// Lua 5.1's `lua_tonumber`: numbers, and strings that read as numbers
/// (else 0).
fn lua_tonumber(v: Option<&LuaValue>) -> Option<f64> {
    match v? {
        LuaValue::Integer(n) => Some(*n as f64),
        LuaValue::Number(n) => Some(*n),
        LuaValue::String(s) => {
            let b = s.as_bytes();
            let t = std::str::from_utf8(&b).ok()?.trim();
            if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                return u64::from_str_radix(hex, 16).ok().map(|n| n as f64);
            }
            let (v, used) = crate::commands::zsets::strtod(t.as_bytes());
            (used > 0 && used == t.len()).then_some(v)
        }
        _ => None,
    }
}

/// Wraps `inner` (which returns a value and an error: nil, a message or
/// an error table) in a C function that raises the error as Redis's error
/// table, or returns `results` (0 or 1) values. A C function, as Redis's
/// are: a Lua wrapper would lose the script's frame in a tail call
/// (`return redis.call(...)`), and with it the error's line.
fn raising(lua: &Lua, inner: mlua::Function, results: i64) -> mlua::Result<mlua::Function> {
    // SAFETY: plain Lua C API on the state mlua owns: the two arguments
    // are on the stack and become the closure's upvalues.
    unsafe {
        lua.exec_raw::<mlua::Function>((inner, results), |l| {
            ffi::lua_pushcclosure(l, raise_wrapper, 2);
        })
    }
}

/// The C function [`raising`] makes (upvalues: the inner function and
/// the number of results).
unsafe extern "C-unwind" fn raise_wrapper(l: *mut ffi::lua_State) -> std::ffi::c_int {
    let nargs = ffi::lua_gettop(l);
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
    ffi::lua_insert(l, 1);
    ffi::lua_call(l, nargs, 2);
    match ffi::lua_type(l, -1) {
        ffi::LUA_TNIL => {}
        ffi::LUA_TSTRING => {
            ffi::lua_createtable(l, 0, 1);
            ffi::lua_pushvalue(l, -2);
            ffi::lua_setfield(l, -2, c"err".as_ptr());
            // lua_error does not return; nothing here needs dropping.
            ffi::lua_error(l);
        }
        _ => {
            ffi::lua_error(l);
        }
    }
    ffi::lua_pop(l, 1);
    let results = ffi::lua_tointeger(l, ffi::lua_upvalueindex(2));
    if results == 0 {
        0
    } else {
        1
    }
}

/// The parts of `redis` beyond call/pcall (Redis's `luaRegisterRedisAPI`
/// and eval.c's debugger stubs): setresp, set_repl and its REPL_*
/// constants, log and its LOG_* levels, acl_check_cmd, the version, and
/// breakpoint/debug/replicate_commands as Redis answers them outside the
/// debugger. Errors are raised as Redis's error tables, from Lua wrappers,
/// so they carry the script's line and pcall sees their text.
fn install_script_api(lua: &Lua, redis: &LuaTable, env: &Rc<ScriptEnv>) -> mlua::Result<()> {
    let inside = |env: &ScriptEnv| !env.client.get().is_null();
    // An error becomes the script's error reply (unless a pcall catches
    // the table the wrapper raises).
    let raised = |lua: &Lua, env: &ScriptEnv, msg: Option<&str>| -> Option<String> {
        msg.map(|m| {
            let full = format!("ERR {m}");
            record_raise(lua, env, &full);
            full
        })
    };
    let e = env.clone();
    let setresp = lua.create_function(move |lua, args: MultiValue| {
        let check = || {
            if !inside(&e) {
                return Some("redis.setresp can only be called inside a script invocation");
            }
            if args.len() != 1 {
                return Some("redis.setresp() requires one argument.");
            }
            let resp = crate::lua::cast_i32(lua_tonumber(args.front()).unwrap_or(0.0));
            if resp != 2 && resp != 3 {
                return Some("RESP version must be 2 or 3.");
            }
            // SAFETY: set by `slice` for the duration of this slice (see
            // ScriptEnv); nothing else borrows the script client meanwhile.
            unsafe { (*e.client.get()).reply.resp3 = resp == 3 };
            None
        };
        Ok((LuaValue::Nil, raised(lua, &e, check())))
    })?;
    let e = env.clone();
    let set_repl = lua.create_function(move |lua, args: MultiValue| {
        let check = || {
            if !inside(&e) {
                return Some("redis.set_repl can only be called inside a script invocation");
            }
            if args.len() != 1 {
                return Some("redis.set_repl() requires two arguments.");
            }
            let flags = crate::lua::cast_i32(lua_tonumber(args.front()).unwrap_or(0.0));
            if flags & !(REPL_ALL as i32) != 0 {
                return Some(
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                );
            }
            e.repl.set(flags as u8);
            None
        };
        Ok((LuaValue::Nil, raised(lua, &e, check())))
    })?;
    // The engine has no log of its own: the message is checked, not kept.
    let e = env.clone();
    let log = lua.create_function(move |lua, args: MultiValue| {
        let check = || {
            if args.len() < 2 {
                return Some("redis.log() requires two arguments or more.");
            }
            let Some(level) = lua_tonumber(args.front()) else {
                return Some("First argument must be a number (log level).");
            };
            if !(0..=3).contains(&crate::lua::cast_i32(level)) {
                return Some("Invalid debug level.");
            }
            None
        };
        Ok((LuaValue::Nil, raised(lua, &e, check())))
    })?;
    let e = env.clone();
    let acl_check = lua.create_function(move |lua, args: MultiValue| {
        let check = || -> mlua::Result<(Option<bool>, Option<&str>)> {
            let (node, client) = (e.node.get(), e.client.get());
            if node.is_null() || client.is_null() {
                return Ok((
                    None,
                    Some("redis.acl_check_cmd can only be called inside a script invocation"),
                ));
            }
            let mut argv: Vec<Bytes> = Vec::with_capacity(args.len());
            for v in args.iter() {
                match v {
                    LuaValue::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
                    LuaValue::Integer(n) => argv.push(Bytes::from(n.to_string())),
                    LuaValue::Number(n) => {
                        argv.push(Bytes::from(crate::numeric::fmt_double_17g(*n)))
                    }
                    _ => {
                        return Ok((
                            None,
                            Some("Lua redis lib command arguments must be strings or integers"),
                        ))
                    }
                }
            }
            if argv.is_empty() {
                return Ok((
                    None,
                    Some("Please specify at least one argument for this redis lib call"),
                ));
            }
            // SAFETY: as for redis.call (see install_globals).
            let (node, client) = unsafe { (&*node, &*client) };
            let cmd = crate::limits::lookup_renamed(&node.config, &argv[0]).and_then(|c| {
                if c.is_container() {
                    argv.get(1).and_then(|s| c.subcommand(s))
                } else {
                    Some(c)
                }
            });
            let Some(cmd) = cmd.filter(|c| c.arity_ok(argv.len())) else {
                return Ok((
                    None,
                    Some("Invalid command passed to redis.acl_check_cmd()"),
                ));
            };
            Ok((
                Some(node.acl.check(client.user.as_ref(), cmd, &argv).is_ok()),
                None,
            ))
        };
        let (v, err): (Option<bool>, Option<&str>) = check()?;
        Ok((v, raised(lua, &e, err)))
    })?;
    redis.set("setresp", raising(lua, setresp, 0)?)?;
    redis.set("set_repl", raising(lua, set_repl, 0)?)?;
    redis.set("log", raising(lua, log, 0)?)?;
    redis.set("acl_check_cmd", raising(lua, acl_check, 1)?)?;
    let stubs: LuaTable = lua
        .load(
            r#"return {
                breakpoint = function() return false end,
                debug = function() end,
                replicate_commands = function() return true end,
            }"#,
        )
        .set_name("=redis_debugger")
        .eval()?;
    for pair in stubs.pairs::<String, mlua::Function>() {
        let (name, f) = pair?;
        redis.set(name, f)?;
    }
    for (name, value) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
        ("REDIS_VERSION_NUM", redis_version_num()),
    ] {
        redis.set(name, value)?;
    }
    redis.set("REDIS_VERSION", crate::REDIS_VERSION)?;
    Ok(())
}

/// `REDIS_VERSION_NUM`: 0x00MMmmpp.
fn redis_version_num() -> i64 {
    crate::REDIS_VERSION
        .split('.')
        .map(|p| p.parse::<i64>().unwrap_or(0))
        .fold(0, |acc, p| (acc << 8) | p)
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
        "fcall" => fcall,
        "fcall_ro" => fcall_ro,
        "function|load" => function_load,
        "function|delete" => function_delete,
        "function|flush" => function_flush,
        "function|list" => function_list,
        "function|stats" => function_stats,
        "function|kill" => function_kill,
        "function|help" => function_help,
        "function|dump" => function_dump,
        "function|restore" => function_restore,
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

/// The code of every FUNCTION library, in name order (what an RDB file
/// stores).
pub fn library_codes(node: &Node) -> Vec<Bytes> {
    let state = node.scripting.as_deref().or(node
        .running_script
        .as_deref()
        .and_then(|r| r.state.as_deref()));
    match state {
        Some(s) => s.libraries.values().map(|l| l.code.clone()).collect(),
        None => Vec::new(),
    }
}

/// Loads a library found in an RDB file (FUNCTION LOAD without REPLACE).
pub fn restore_library(node: &mut Node, code: &[u8]) -> Result<(), String> {
    let name = library_name(code)?;
    let state = scripting(node).ok_or("Lua scripting is unavailable")?;
    if state.libraries.contains_key(&name) {
        return Err(format!("Library '{name}' already exists"));
    }
    let loaded = load_library(state, code, &taken_by_others(&state.libraries, &name));
    let functions = loaded?;
    state.libraries.insert(
        name,
        Library {
            code: Bytes::copy_from_slice(code),
            functions,
        },
    );
    Ok(())
}

impl Scripting {
    /// FUNCTION FLUSH's effect, for DEBUG RELOAD.
    pub fn clear_libraries(&mut self) {
        self.libraries.clear();
    }
}

/// The numkeys argument of EVAL and FCALL (argv[2]), with Redis's errors.
fn parse_numkeys(cx: &mut Ctx) -> Option<usize> {
    let numkeys = cx.parse_int(2)?;
    if numkeys > (cx.argv.len() - 3) as i64 {
        cx.error("ERR Number of keys can't be greater than number of args");
        return None;
    }
    if numkeys < 0 {
        cx.error("ERR Number of keys can't be negative");
        return None;
    }
    Some(numkeys as usize)
}

fn eval_generic(cx: &mut Ctx, body: Option<Bytes>, read_only: bool) {
    let Some(numkeys) = parse_numkeys(cx) else {
        return;
    };
    let sha = match &body {
        Some(b) => sha1_hex(b),
        None => String::from_utf8_lossy(&cx.argv[1]).to_ascii_lowercase(),
    };
    if body.is_none() && scripting(cx.node).is_none_or(|s| !s.cache.contains_key(&sha)) {
        return cx.error("NOSCRIPT No matching script. Please use EVAL.");
    }
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
    let compiled = match (state.cache.get(&sha), body) {
        (Some(func), _) => Ok(func.clone()),
        (None, Some(body)) => state.compile(&sha, body),
        (None, None) => unreachable!("EVALSHA of an unknown sha returned above"),
    };
    match compiled {
        Ok(func) => start(
            cx,
            state,
            sha,
            "user_script",
            false,
            func,
            keys,
            args,
            read_only,
        ),
        Err(e) => {
            cx.node.scripting = Some(state);
            let msg = format!(
                "ERR Error compiling script (new function): {}",
                lua_message(&e)
            );
            cx.error(&msg)
        }
    }
}

impl Scripting {
    /// Compiles an EVAL script and keeps it in the cache under `sha`.
    fn compile(&mut self, sha: &str, body: Bytes) -> mlua::Result<mlua::Function> {
        let func = self
            .lua
            .load(&body[..])
            .set_name("@user_script")
            .into_function()?;
        self.cache.insert(sha.to_string(), func.clone());
        Ok(func)
    }
}

/// What a `redis.call` error carries: the message and the script line.
struct CallError(String);

/// Starts a script: runs its first slice, then either replies or leaves
/// it suspended in `node.running_script` (see the module comment).
#[allow(clippy::too_many_arguments)]
fn start(
    cx: &mut Ctx,
    state: Box<Scripting>,
    name: String,
    source: &'static str,
    is_function: bool,
    func: mlua::Function,
    keys: Vec<Bytes>,
    args: Vec<Bytes>,
    read_only: bool,
) {
    let mut state = state;
    if let Err(e) = prepare(&state, cx, &name, source, &keys, &args, read_only) {
        cx.node.scripting = Some(state);
        return cx.error(&format!("ERR {e}"));
    }
    let stack = match state.stack.take() {
        Some(s) => s,
        None => match DefaultStack::new(SCRIPT_STACK) {
            Ok(s) => s,
            Err(_) => {
                cx.node.scripting = Some(state);
                return cx.error("ERR Lua scripting is unavailable");
            }
        },
    };
    let env = state.env.clone();
    // AOF loading must run a script to its end, as Redis's loading does.
    let suspendable = !cx.node.aof.replaying;
    let lua = state.lua.clone();
    let caller_resp3 = cx.client.reply.resp3;
    let co = Coroutine::with_stack(stack, move |yielder: &Yielder<(), ()>, ()| {
        if suspendable {
            env.yielder.set(yielder as *const _);
        }
        let result = if is_function {
            let g = lua.globals();
            match (g.raw_get::<LuaTable>("KEYS"), g.raw_get::<LuaTable>("ARGV")) {
                (Ok(k), Ok(a)) => func.call::<LuaValue>((k, a)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        } else {
            func.call::<LuaValue>(())
        };
        env.yielder.set(std::ptr::null());
        result
            .map(|v| {
                // The script client's protocol as the script left it.
                let client = env.client.get();
                // SAFETY: set by `slice` for this slice, which is still running.
                let script_resp3 = !client.is_null() && unsafe { (*client).reply.resp3 };
                let mut out = crate::resp::ReplyBuf {
                    resp3: caller_resp3,
                    ..Default::default()
                };
                // On the Lua stack, as Redis converts (see reply_from_stack).
                // SAFETY: raw API calls in mlua's protected call, on the value
                // it pushed; reply_from_stack consumes it.
                let converted = unsafe {
                    lua.exec_raw::<()>(v, |l| {
                        // Redis converts with two slots in use (the error
                        // handler and the result): the same stack limit.
                        ffi::lua_pushnil(l);
                        ffi::lua_insert(l, 1);
                        reply_from_stack(l, &mut out, script_resp3);
                        ffi::lua_settop(l, 0);
                    })
                };
                converted.map(|()| out.buf.to_vec())
            })
            .and_then(|r| r)
    });
    let mut running = Box::new(RunningScript {
        co: Some(co),
        state: Some(state),
        script_client: Box::new(Client::script_client(cx.client)),
        caller: cx.client.conn,
        is_eval: !is_function,
        name,
        source,
        command: cx.argv.to_vec(),
        started: cx.node.now,
        depth: cx.node.call_depth(),
        frames: Vec::new(),
    });
    match slice(cx.node, &mut running) {
        Some(result) => {
            if !suspendable && running.env().is_some_and(|e| e.hooks.get() > REPLAY_HOOKS) {
                cx.node.replay_error = Some(REPLAY_TOO_LONG.to_string());
            }
            let reply = finish(cx.node, running, result);
            cx.client.db = reply.db;
            // Keyspace events of its commands for the caller come first,
            // as Redis writes them while the script runs.
            if cx.node.notifier.has_stash() {
                cx.node.notifier.drain_into(cx.client);
            }
            reply.write(cx.node, cx.client);
        }
        None => {
            cx.node.running_script = Some(running);
            cx.node.suspending = true;
        }
    }
}

/// Sets KEYS, ARGV and the per-script state before a script starts.
fn prepare(
    state: &Scripting,
    cx: &mut Ctx,
    name: &str,
    source: &'static str,
    keys: &[Bytes],
    args: &[Bytes],
    read_only: bool,
) -> mlua::Result<()> {
    let lua = &state.lua;
    let globals = lua.globals();
    let set_strings = |name: &str, items: &[Bytes]| -> mlua::Result<()> {
        let t = lua.create_table()?;
        for (i, v) in items.iter().enumerate() {
            t.set(i + 1, lua.create_string(v)?)?;
        }
        globals.raw_set(name, t)
    };
    set_strings("KEYS", keys)?;
    set_strings("ARGV", args)?;
    lua.set_named_registry_value("__sha", name)?;
    lua.set_named_registry_value("__source", source)?;
    let env = &state.env;
    *env.name.borrow_mut() = name.to_string();
    env.source.set(source);
    env.read_only.set(read_only);
    env.hooks.set(0);
    env.killed.set(false);
    env.wrote.set(false);
    env.repl.set(REPL_ALL);
    *env.last_error.borrow_mut() = None;
    *env.table_error.borrow_mut() = None;
    // Like Redis 7.0, math.random differs from call to call; here it is
    // seeded from the node's RNG so a run is still reproducible.
    *env.rand.borrow_mut() = Rand48::new(rand_core::RngCore::next_u32(&mut cx.node.rng));
    Ok(())
}

/// Runs one slice of a script; `Some` once it has finished.
fn slice(node: &mut Node, running: &mut RunningScript) -> Option<mlua::Result<Vec<u8>>> {
    let (Some(state), Some(co)) = (running.state.as_ref(), running.co.as_mut()) else {
        return Some(Err(mlua::Error::RuntimeError("script state lost".into())));
    };
    let env = state.env.clone();
    env.node.set(node as *mut Node);
    env.client.set(&mut *running.script_client as *mut Client);
    let result = co.resume(());
    env.node.set(std::ptr::null_mut());
    env.client.set(std::ptr::null_mut());
    match result {
        CoroutineResult::Yield(()) => None,
        CoroutineResult::Return(r) => Some(r),
    }
}

/// A finished script's reply, for whichever client is still there to get it.
pub struct ScriptReply {
    /// Converted to RESP when written, in the caller's protocol.
    result: Result<Vec<u8>, String>,
    /// The db the script's client ended in (SELECT inside a script).
    pub db: usize,
}

impl ScriptReply {
    /// Writes the reply (counting an error as Redis does).
    pub fn write(self, node: &mut Node, client: &mut Client) {
        match self.result {
            Ok(v) => client.reply.buf.extend_from_slice(&v),
            Err(msg) => {
                node.count_error(&msg);
                client.reply.error(&msg);
            }
        }
    }
}

/// Ends a script: the Lua state returns to the node and the result becomes
/// a reply.
fn finish(
    node: &mut Node,
    running: Box<RunningScript>,
    result: mlua::Result<Vec<u8>>,
) -> ScriptReply {
    let mut running = running;
    let db = running.script_client.db;
    let last_error = running.env().and_then(|e| e.last_error.borrow_mut().take());
    let reply = match result {
        Ok(v) => Ok(v),
        Err(e) => Err(match last_error {
            Some(CallError(msg)) => msg,
            None => {
                let table_error = running
                    .env()
                    .and_then(|env| env.table_error.borrow_mut().take());
                // A raised error table's `err` is the reply as it is (its
                // own error code, no ERR added), as in Redis.
                let code = if table_error.is_some() { "" } else { "ERR " };
                let msg = table_error.unwrap_or_else(|| lua_message(&e));
                let source = running.source;
                let tag = format!("{source}:");
                // The line is that of the innermost script frame when the
                // error was raised (Redis's error handler asks
                // debug.getinfo), whatever position the message names.
                let line_after = |text: &str| -> Option<String> {
                    let rest = &text[text.find(&tag)? + tag.len()..];
                    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                    (!digits.is_empty()).then_some(digits)
                };
                let full = e.to_string();
                let traceback = full.find("stack traceback:").map_or("", |i| &full[i..]);
                let line = line_after(traceback)
                    .or_else(|| {
                        msg.strip_prefix(&tag)
                            .and_then(|r| r.split(':').next())
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| "?".into());
                format!("{code}{msg} script: {}, on @{source}:{line}.", running.name)
            }
        }),
    };
    if let (Some(co), Some(mut state)) = (running.co.take(), running.state.take()) {
        state.stack = Some(co.into_stack());
        node.scripting = Some(state);
    }
    ScriptReply { result: reply, db }
}

/// Runs the next slice of the suspended script (on a tick). When it ends,
/// replies to its caller and finishes the interrupted command.
pub fn resume(node: &mut Node) {
    let Some(mut running) = node.running_script.take() else {
        return;
    };
    // The script's commands see the time it started at (Redis freezes the
    // clock for a script), and run at the depth its command ran at.
    let now = node.now;
    node.now = running.started;
    let depth = node.set_call_depth(running.depth);
    let result = slice(node, &mut running);
    node.set_call_depth(depth);
    node.now = now;
    match result {
        None => node.running_script = Some(running),
        Some(result) => {
            let caller = running.caller;
            let frames = std::mem::take(&mut running.frames);
            let reply = finish(node, running, result);
            node.script_finished(caller, reply, frames);
        }
    }
}

/// The `-BUSY` error for commands refused while a script is suspended.
pub fn busy_error(running: &RunningScript) -> &'static str {
    if running.is_eval {
        BUSY_EVAL
    } else {
        BUSY_FUNCTION
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
    env: &ScriptEnv,
) -> mlua::Result<(LuaValue, bool)> {
    let read_only = env.read_only.get();
    // Redis's error tables; redis.call's wrapper raises them. Errors of
    // the call itself (not of its arguments) carry
    // `ignore_error_stats_update`, as in Redis.
    let fail_with = |msg: &str, ignore_stats: bool| -> mlua::Result<(LuaValue, bool)> {
        if raise {
            record_raise(lua, env, msg);
        }
        let t = lua.create_table()?;
        t.set("err", msg)?;
        if ignore_stats {
            t.set("ignore_error_stats_update", true)?;
        }
        Ok((LuaValue::Table(t), raise))
    };
    let fail = |msg: &str| fail_with(msg, true);
    let arg_fail = |msg: &str| fail_with(msg, false);
    let mut args: Vec<Bytes> = Vec::with_capacity(argv.len());
    for v in argv.iter() {
        match v {
            LuaValue::String(s) => args.push(Bytes::copy_from_slice(&s.as_bytes())),
            LuaValue::Integer(n) => args.push(Bytes::from(n.to_string())),
            LuaValue::Number(n) => args.push(Bytes::from(crate::numeric::fmt_double_17g(*n))),
            _ => {
                return arg_fail("ERR Lua redis lib command arguments must be strings or integers")
            }
        }
    }
    if args.is_empty() {
        return arg_fail("ERR Please specify at least one argument for this redis lib call");
    }
    // rename-command applies to scripts too, as in Redis.
    let cmd = crate::limits::lookup_renamed(&node.config, &args[0]).and_then(|c| {
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
    if cmd.has(flags::WRITE) {
        env.wrote.set(true);
    }
    client.reply.buf.clear();
    let effects_before = crate::aof::pending_effects(node);
    node.execute(client, &args);
    if env.repl.get() & REPL_AOF == 0 {
        crate::aof::drop_effects_after(node, effects_before);
    }
    let reply = client.reply.buf.split().freeze();
    let (value, _) = from_resp(lua, &reply)?;
    if raise && reply.first() == Some(&b'-') {
        if let LuaValue::Table(t) = &value {
            if let Ok(LuaValue::String(e)) = t.raw_get::<LuaValue>("err") {
                record_raise(lua, env, &String::from_utf8_lossy(&e.as_bytes()));
                return Ok((value, true));
            }
        }
    }
    Ok((value, false))
}

/// The line of the innermost frame of the user's code (not our wrappers).
fn script_line(lua: &Lua) -> i32 {
    (0..16)
        .filter_map(|level| lua.inspect_stack(level))
        .find(|d| {
            let src = d.source();
            [src.source, src.short_src].iter().any(|s| {
                s.as_deref()
                    .is_some_and(|s| s.contains("user_script") || s.contains("user_function"))
            })
        })
        .map_or(0, |d| d.curr_line())
}

/// Records the script's error reply for an error table about to be raised
/// from one of the `redis` functions (`msg` carries its code), with the
/// script's line, as Redis's error handler words it. A pcall that catches
/// the error clears it.
fn record_raise(lua: &Lua, env: &ScriptEnv, msg: &str) {
    // The bare message too: a library's load error quotes it alone.
    *env.table_error.borrow_mut() = Some(msg.to_string());
    let line = script_line(lua);
    *env.last_error.borrow_mut() = Some(CallError(format!(
        "{msg} script: {}, on @{}:{line}.",
        client_script_sha(lua),
        lua.named_registry_value::<String>("__source")
            .unwrap_or_default()
    )));
}

/// Redis's `luaPushErrorBuff`: the text of an error table from an error
/// reply (`-CODE message`, or a bare message that gets `ERR`), with
/// newlines trimmed from the message's ends.
fn error_table_text(reply: &[u8]) -> Vec<u8> {
    let text = crate::resp::c_str(reply);
    let (code, msg): (&[u8], &[u8]) = match text.strip_prefix(b"-") {
        Some(rest) => match rest.iter().position(|&b| b == b' ') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (b"ERR", rest),
        },
        None => (b"ERR", text),
    };
    let start = msg
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(msg.len());
    let end = msg
        .iter()
        .rposition(|&b| b != b'\r' && b != b'\n')
        .map_or(start, |i| i + 1);
    let mut out = code.to_vec();
    out.push(b' ');
    out.extend_from_slice(&msg[start..end.max(start)]);
    out
}

/// The running script's sha, stashed in the registry by `run`.
fn client_script_sha(lua: &Lua) -> String {
    lua.named_registry_value::<String>("__sha")
        .unwrap_or_default()
}

/// Parses one reply (RESP2, or RESP3 after `redis.setresp(3)`) into a Lua
/// value, as Redis's `redisProtocolToLuaType`: RESP3 types become tables
/// with one field (`map`, `set`, `double`, `big_number`,
/// `verbatim_string`), null is nil and booleans are booleans.
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
    let one_field = |name: &str, v: LuaValue| -> mlua::Result<LuaValue> {
        let t = lua.create_table()?;
        t.set(name, v)?;
        Ok(LuaValue::Table(t))
    };
    let body = |n: i64| -> mlua::Result<(&[u8], usize)> {
        let end = next
            .checked_add(usize::try_from(n).map_err(|_| bad())?)
            .ok_or_else(bad)?;
        Ok((b.get(next..end).ok_or_else(bad)?, end + 2))
    };
    Ok(match b.first().ok_or_else(bad)? {
        b':' => (LuaValue::Integer(num()?), next),
        b'+' => (
            one_field("ok", LuaValue::String(lua.create_string(head)?))?,
            next,
        ),
        b'-' => {
            let t = lua.create_table()?;
            t.set("err", lua.create_string(error_table_text(&b[..eol]))?)?;
            t.set("ignore_error_stats_update", true)?;
            (LuaValue::Table(t), next)
        }
        b'$' => {
            let n = num()?;
            if n < 0 {
                (LuaValue::Boolean(false), next)
            } else {
                let (s, end) = body(n)?;
                (LuaValue::String(lua.create_string(s)?), end)
            }
        }
        b'*' | b'>' => {
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
        b'%' | b'~' => {
            let is_map = b[0] == b'%';
            let inner = lua.create_table()?;
            let mut pos = next;
            for _ in 0..num()? {
                let (k, used) = from_resp(lua, &b[pos..])?;
                pos += used;
                let v = if is_map {
                    let (v, used) = from_resp(lua, &b[pos..])?;
                    pos += used;
                    v
                } else {
                    LuaValue::Boolean(true)
                };
                if !k.is_nil() {
                    inner.set(k, v)?;
                }
            }
            let name = if is_map { "map" } else { "set" };
            (one_field(name, LuaValue::Table(inner))?, pos)
        }
        b'_' => (LuaValue::Nil, next),
        b'#' => (LuaValue::Boolean(head == b"t"), next),
        b',' => {
            let (d, _) = crate::commands::zsets::strtod(head);
            (one_field("double", LuaValue::Number(d))?, next)
        }
        b'(' => (
            one_field("big_number", LuaValue::String(lua.create_string(head)?))?,
            next,
        ),
        b'=' => {
            let (s, end) = body(num()?)?;
            let (format, text) = (s.get(..3).unwrap_or(s), s.get(4..).unwrap_or_default());
            let t = lua.create_table()?;
            t.set("string", lua.create_string(text)?)?;
            t.set("format", lua.create_string(format)?)?;
            (one_field("verbatim_string", LuaValue::Table(t))?, end)
        }
        b'|' => {
            // Attributes are not shown to scripts: skipped, then the reply.
            let mut pos = next;
            for _ in 0..num()?.saturating_mul(2) {
                pos += from_resp(lua, &b[pos..])?.1;
            }
            let (v, used) = from_resp(lua, &b[pos..])?;
            (v, pos + used)
        }
        _ => return Err(bad()),
    })
}

/// Converts the value on top of the Lua stack to RESP and pops it, as
/// Redis's `luaReplyToRedisReply` (same checks, same order, same stack
/// use, so the same `reached lua stack limit` point). Raw API rather than
/// mlua values: each mlua value held in Rust takes a slot of mlua's own
/// reference stack, which a deeply nested result would exhaust.
///
/// # Safety
/// A valid state with a value on top.
unsafe fn reply_from_stack(
    l: *mut ffi::lua_State,
    out: &mut crate::resp::ReplyBuf,
    script_resp3: bool,
) {
    if ffi::lua_checkstack(l, 4) == 0 {
        out.error("ERR reached lua stack limit");
        ffi::lua_pop(l, 1);
        return;
    }
    let bytes = |l: *mut ffi::lua_State, idx: std::ffi::c_int| -> &[u8] {
        let mut len = 0usize;
        let p = ffi::lua_tolstring(l, idx, &mut len);
        if p.is_null() {
            &[]
        } else {
            std::slice::from_raw_parts(p as *const u8, len)
        }
    };
    // Pushes t[name] (raw) and returns its type.
    let field = |l: *mut ffi::lua_State, name: &std::ffi::CStr| -> std::ffi::c_int {
        ffi::lua_pushstring(l, name.as_ptr());
        ffi::lua_rawget(l, -2);
        ffi::lua_type(l, -1)
    };
    let no_crlf = |b: &[u8]| -> Vec<u8> {
        b.iter()
            .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
            .collect()
    };
    match ffi::lua_type(l, -1) {
        ffi::LUA_TSTRING => out.bulk(bytes(l, -1)),
        ffi::LUA_TBOOLEAN => {
            let b = ffi::lua_toboolean(l, -1) != 0;
            if !script_resp3 {
                if b {
                    out.int(1)
                } else {
                    out.null()
                }
            } else if out.resp3 {
                out.buf
                    .extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
            } else {
                out.int(b as i64);
            }
        }
        ffi::LUA_TNUMBER => out.int(crate::lua::cast_i64(ffi::lua_tonumber(l, -1))),
        ffi::LUA_TTABLE => {
            if field(l, c"err") == ffi::LUA_TSTRING {
                let msg = crate::resp::c_str(bytes(l, -1)).to_vec();
                out.error_bytes(&msg);
                ffi::lua_pop(l, 2);
                return;
            }
            ffi::lua_pop(l, 1);
            if field(l, c"ok") == ffi::LUA_TSTRING {
                out.buf.extend_from_slice(b"+");
                let ok = no_crlf(crate::resp::c_str(bytes(l, -1)));
                out.buf.extend_from_slice(&ok);
                out.buf.extend_from_slice(b"\r\n");
                ffi::lua_pop(l, 2);
                return;
            }
            ffi::lua_pop(l, 1);
            if field(l, c"double") == ffi::LUA_TNUMBER {
                out.double(ffi::lua_tonumber(l, -1));
                ffi::lua_pop(l, 2);
                return;
            }
            ffi::lua_pop(l, 1);
            if field(l, c"big_number") == ffi::LUA_TSTRING {
                let n = no_crlf(bytes(l, -1));
                if out.resp3 {
                    out.buf.extend_from_slice(b"(");
                    out.buf.extend_from_slice(&n);
                    out.buf.extend_from_slice(b"\r\n");
                } else {
                    out.bulk(&n);
                }
                ffi::lua_pop(l, 2);
                return;
            }
            ffi::lua_pop(l, 1);
            if field(l, c"verbatim_string") == ffi::LUA_TTABLE {
                if field(l, c"format") == ffi::LUA_TSTRING {
                    ffi::lua_pushstring(l, c"string".as_ptr());
                    ffi::lua_rawget(l, -3);
                    if ffi::lua_type(l, -1) == ffi::LUA_TSTRING {
                        // addReplyVerbatim copies three bytes of the format.
                        let mut f = crate::resp::c_str(bytes(l, -2)).to_vec();
                        f.resize(3, 0);
                        let text = bytes(l, -1);
                        if out.resp3 {
                            out.buf
                                .extend_from_slice(format!("={}\r\n", text.len() + 4).as_bytes());
                            out.buf.extend_from_slice(&f);
                            out.buf.extend_from_slice(b":");
                            out.buf.extend_from_slice(text);
                            out.buf.extend_from_slice(b"\r\n");
                        } else {
                            out.bulk(text);
                        }
                        ffi::lua_pop(l, 4);
                        return;
                    }
                    ffi::lua_pop(l, 1);
                }
                ffi::lua_pop(l, 1);
            }
            ffi::lua_pop(l, 1);
            for (name, is_map) in [(c"map", true), (c"set", false)] {
                if field(l, name) == ffi::LUA_TTABLE {
                    // Redis defers the length; here a first pass counts.
                    let mut n = 0usize;
                    ffi::lua_pushnil(l);
                    while ffi::lua_next(l, -2) != 0 {
                        ffi::lua_pop(l, 1);
                        n += 1;
                    }
                    if is_map {
                        out.map(n);
                    } else {
                        out.set(n);
                    }
                    ffi::lua_pushnil(l);
                    while ffi::lua_next(l, -2) != 0 {
                        if is_map {
                            // table, key, value: the key (a copy), then the value.
                            ffi::lua_pushvalue(l, -2);
                            reply_from_stack(l, out, script_resp3);
                            reply_from_stack(l, out, script_resp3);
                        } else {
                            ffi::lua_pop(l, 1);
                            ffi::lua_pushvalue(l, -1);
                            reply_from_stack(l, out, script_resp3);
                        }
                    }
                    ffi::lua_pop(l, 2);
                    return;
                }
                ffi::lua_pop(l, 1);
            }
            // An array up to the first nil.
            let mut n = 0;
            loop {
                ffi::lua_rawgeti(l, -1, n + 1);
                let nil = ffi::lua_type(l, -1) == ffi::LUA_TNIL;
                ffi::lua_pop(l, 1);
                if nil {
                    break;
                }
                n += 1;
            }
            out.array(n as usize);
            for j in 1..=n {
                ffi::lua_rawgeti(l, -1, j);
                reply_from_stack(l, out, script_resp3);
            }
        }
        _ => out.null(),
    }
    ffi::lua_pop(l, 1);
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
        if s.cache.contains_key(&sha) {
            return Ok(());
        }
        s.compile(&sha, body)
            .map(|_| ())
            .map_err(|e| lua_message(&e))
    });
    match compiled {
        Some(Ok(())) => cx.out().bulk(sha.as_bytes()),
        Some(Err(msg)) => cx.error(&format!("ERR Error compiling script (new function): {msg}")),
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
    if let Some(s) = cx.node.scripting.as_deref_mut() {
        s.cache.clear();
    }
    cx.out().ok();
}

/// SCRIPT KILL: scripts never outlive their command here.
pub fn script_kill(cx: &mut Ctx) {
    kill(cx, true);
}

/// FUNCTION KILL
pub fn function_kill(cx: &mut Ctx) {
    kill(cx, false);
}

/// SCRIPT KILL / FUNCTION KILL (Redis's `scriptKill`): only a script that
/// has not written may be stopped, and each command stops only its kind.
fn kill(cx: &mut Ctx, is_eval: bool) {
    let Some(running) = cx.node.running_script.as_deref() else {
        return cx.error("NOTBUSY No scripts in execution right now.");
    };
    let Some(env) = running.env() else {
        return cx.error("NOTBUSY No scripts in execution right now.");
    };
    if env.wrote.get() {
        return cx.error("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.");
    }
    if is_eval && !running.is_eval {
        return cx.error(BUSY_FUNCTION);
    }
    if !is_eval && running.is_eval {
        return cx.error(BUSY_EVAL);
    }
    env.killed.set(true);
    cx.out().ok();
}

pub fn script_help(cx: &mut Ctx) {
    cx.reply_help("script");
}

/// Parses `#!lua name=<library>` from a library's first line.
fn library_name(code: &[u8]) -> Result<String, String> {
    let first = code.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let Some(rest) = first.strip_prefix("#!") else {
        return Err("ERR Missing library metadata".into());
    };
    let mut parts = rest.split(' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or_default();
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Engine '{engine}' not found"));
    }
    let mut name = None;
    for p in parts {
        match p.split_once('=') {
            Some(("name", v)) => name = Some(v.to_string()),
            _ => return Err(format!("ERR Invalid metadata value given: {p}")),
        }
    }
    let name = name.ok_or_else(|| "ERR Library name was not given".to_string())?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    Ok(name)
}

/// FUNCTION LOAD [REPLACE] code
pub fn function_load(cx: &mut Ctx) {
    let (replace, code) = match cx.argv.len() {
        3 => (false, cx.argv[2].clone()),
        4 if cx.arg_is(2, "replace") => (true, cx.argv[3].clone()),
        4 => {
            let msg = format!(
                "ERR Unknown option given: {}",
                crate::resp::c_str_lossy(&cx.argv[2])
            );
            return cx.error(&msg);
        }
        _ => return cx.syntax_error(),
    };
    let name = match library_name(&code) {
        Ok(n) => n,
        Err(e) => return cx.error(&e),
    };
    let Some(state) = scripting(cx.node) else {
        return cx.error("ERR Lua scripting is unavailable");
    };
    if state.libraries.contains_key(&name) && !replace {
        let msg = format!("ERR Library '{name}' already exists");
        return cx.error(&msg);
    }
    let loaded = load_library(state, &code, &taken_by_others(&state.libraries, &name));
    match loaded {
        Ok(functions) => {
            state
                .libraries
                .insert(name.clone(), Library { code, functions });
            cx.dirty(1);
            cx.out().bulk(name.as_bytes());
        }
        Err(e) => cx.error(&e),
    }
}

/// Why a library's code failed.
enum LoadError {
    Compile(mlua::Error),
    Run(mlua::Error),
}

/// A function registered while a library loads.
type Registered = (String, Vec<String>, mlua::Function);

/// Runs a library's code with only `redis.register_function` and
/// `redis.log` reachable, collecting the functions it registers.
/// `taken` says whether a function name belongs to another library of the
/// set the new one joins.
fn load_library(
    state: &Scripting,
    code: &[u8],
    taken: &dyn Fn(&str) -> bool,
) -> Result<Vec<Function>, String> {
    state.env.hooks.set(0);
    *state.env.table_error.borrow_mut() = None;
    state.env.loading.set(true);
    let loaded = load_library_code(state, code, taken);
    state.env.loading.set(false);
    loaded
}

/// What FUNCTION LOAD checks against: the functions of every library but
/// the one being (re)loaded.
fn taken_by_others<'a>(
    libraries: &'a BTreeMap<String, Library>,
    name: &'a str,
) -> impl Fn(&str) -> bool + 'a {
    move |fname| {
        libraries
            .iter()
            .any(|(lib, l)| lib != name && l.functions.iter().any(|x| x.name == fname))
    }
}

fn load_library_code(
    state: &Scripting,
    code: &[u8],
    taken: &dyn Fn(&str) -> bool,
) -> Result<Vec<Function>, String> {
    let lua = &state.lua;
    let registered: std::cell::RefCell<Vec<Registered>> = std::cell::RefCell::new(Vec::new());
    let result = lua.scope(|scope| {
        let env = lua.create_table()?;
        let redis = lua.create_table()?;
        let register = scope.create_function(|_, args: MultiValue| {
            let (fname, callback, flags) = match (args.front(), args.get(1)) {
                (Some(LuaValue::String(n)), Some(LuaValue::Function(f))) => {
                    (n.to_str()?.to_string(), f.clone(), vec![])
                }
                (Some(LuaValue::Table(t)), None) => {
                    let n: String = t.get("function_name")?;
                    let f: mlua::Function = t.get("callback")?;
                    let flags: Vec<String> = match t.get::<LuaValue>("flags")? {
                        LuaValue::Table(ft) => ft
                            .sequence_values::<String>()
                            .collect::<mlua::Result<_>>()?,
                        _ => vec![],
                    };
                    (n, f, flags)
                }
                _ => {
                    return Err(mlua::Error::RuntimeError(
                        "wrong number of arguments to redis.register_function".into(),
                    ))
                }
            };
            registered.borrow_mut().push((fname, flags, callback));
            Ok(())
        })?;
        redis.set("register_function", register)?;
        // Redis's load-time `redis`: register_function, log and its levels,
        // and the version.
        let api: LuaTable = lua.globals().raw_get("redis")?;
        for name in [
            "log",
            "LOG_DEBUG",
            "LOG_VERBOSE",
            "LOG_NOTICE",
            "LOG_WARNING",
            "REDIS_VERSION",
            "REDIS_VERSION_NUM",
        ] {
            redis.set(name, api.get::<LuaValue>(name)?)?;
        }
        // Anything else, in the environment or in `redis`, is an error
        // raised from Lua so it carries the caller's position.
        let guard: LuaTable = lua
            .load(
                r#"return { __index = function(_, k)
                    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
                end }"#,
            )
            .eval()?;
        redis.set_metatable(Some(guard.clone()));
        env.set("redis", redis)?;
        env.set_metatable(Some(guard));
        // Lua's loader would choke on the shebang; blank it but keep the
        // newline so error line numbers match Redis's.
        let body_start = code.iter().position(|&b| b == b'\n').unwrap_or(code.len());
        let mut body = Vec::with_capacity(code.len());
        body.extend_from_slice(&code[body_start..]);
        match lua
            .load(body)
            .set_name("@user_function")
            .set_environment(env)
            .into_function()
        {
            Ok(f) => Ok(f.call::<()>(()).map_err(LoadError::Run)),
            Err(e) => Ok(Err(LoadError::Compile(e))),
        }
    });
    let result = match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(LoadError::Run(e))) | Err(e) => Err(e),
        Ok(Err(LoadError::Compile(e))) => {
            let msg = lua_message(&e);
            return Err(format!("ERR Error compiling function: {msg}"));
        }
    };
    if let Err(e) = result {
        // An error table (redis.log's) is its own message.
        if let Some(msg) = state.env.table_error.borrow_mut().take() {
            return Err(format!("ERR Error registering functions: {msg}"));
        }
        let msg = lua_message(&e);
        return Err(format!("ERR Error registering functions: ERR {msg}"));
    }
    let registered = registered.into_inner();
    if registered.is_empty() {
        return Err("ERR No functions registered".into());
    }
    let mut out: Vec<Function> = Vec::new();
    for (fname, flags, f) in registered {
        if taken(&fname) || out.iter().any(|x| x.name == fname) {
            return Err(format!("ERR Function {fname} already exists"));
        }
        // Registered in the restricted load environment, the function runs
        // in the scripting globals (redis.call, error, ...).
        let fenv: LuaTable = lua
            .named_registry_value(FUNCTION_ENV)
            .map_err(|e| e.to_string())?;
        f.set_environment(fenv).map_err(|e| e.to_string())?;
        let callback = lua.create_registry_value(f).map_err(|e| e.to_string())?;
        out.push(Function {
            name: fname,
            flags,
            callback,
        });
    }
    Ok(out)
}

pub fn fcall(cx: &mut Ctx) {
    fcall_generic(cx, false);
}

pub fn fcall_ro(cx: &mut Ctx) {
    fcall_generic(cx, true);
}

/// FCALL function numkeys [key ...] [arg ...]
fn fcall_generic(cx: &mut Ctx, ro_command: bool) {
    let Some(numkeys) = parse_numkeys(cx) else {
        return;
    };
    let fname = String::from_utf8_lossy(&cx.argv[1]).into_owned();
    let _ = scripting(cx.node);
    let Some(state) = cx.node.scripting.take() else {
        return cx.error("ERR Lua scripting is unavailable");
    };
    let found = state
        .libraries
        .values()
        .flat_map(|l| l.functions.iter())
        .find(|f| f.name == fname);
    let func = match found {
        None => Err("ERR Function not found".to_string()),
        Some(f) => {
            let no_writes = f.flags.iter().any(|x| x == "no-writes");
            if ro_command && !no_writes {
                Err("ERR Can not execute a script with write flag using *_ro command.".into())
            } else {
                state
                    .lua
                    .registry_value::<mlua::Function>(&f.callback)
                    .map(|func| (func, no_writes))
                    .map_err(|e| format!("ERR {e}"))
            }
        }
    };
    match func {
        Ok((func, no_writes)) => {
            let keys: Vec<Bytes> = cx.argv[3..3 + numkeys].to_vec();
            let args: Vec<Bytes> = cx.argv[3 + numkeys..].to_vec();
            start(
                cx,
                state,
                fname,
                "user_function",
                true,
                func,
                keys,
                args,
                no_writes,
            )
        }
        Err(msg) => {
            cx.node.scripting = Some(state);
            cx.error(&msg);
        }
    }
}

/// FUNCTION DELETE library-name
pub fn function_delete(cx: &mut Ctx) {
    let name = String::from_utf8_lossy(&cx.argv[2]).into_owned();
    let removed = scripting(cx.node).and_then(|s| s.libraries.remove(&name));
    match removed {
        Some(_) => {
            cx.dirty(1);
            cx.out().ok()
        }
        None => cx.error("ERR Library not found"),
    }
}

/// FUNCTION FLUSH [ASYNC|SYNC]
pub fn function_flush(cx: &mut Ctx) {
    match cx.argv.len() {
        2 => {}
        3 if cx.arg_is(2, "sync") || cx.arg_is(2, "async") => {}
        _ => return cx.error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option"),
    }
    if let Some(s) = scripting(cx.node) {
        s.libraries.clear();
    }
    // Logged to the AOF as itself, as Redis propagates it.
    cx.dirty(1);
    cx.out().ok();
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE]
pub fn function_list(cx: &mut Ctx) {
    let mut with_code = false;
    let mut pattern: Option<Bytes> = None;
    let mut j = 2;
    while j < cx.argv.len() {
        if cx.arg_is(j, "withcode") && !with_code {
            with_code = true;
        } else if cx.arg_is(j, "libraryname") && pattern.is_none() {
            if j + 1 >= cx.argv.len() {
                return cx.error("ERR library name argument was not given");
            }
            pattern = Some(cx.argv[j + 1].clone());
            j += 1;
        } else {
            let msg = format!(
                "ERR Unknown argument {}",
                crate::resp::c_str_lossy(&cx.argv[j])
            );
            return cx.error(&msg);
        }
        j += 1;
    }
    let Some(state) = scripting(cx.node) else {
        return cx.out().array(0);
    };
    let libs: Vec<(&String, &Library)> = state
        .libraries
        .iter()
        .filter(|(n, _)| {
            pattern
                .as_ref()
                .is_none_or(|p| crate::glob::matches(p, n.as_bytes(), false))
        })
        .collect();
    let out = &mut cx.client.reply;
    out.array(libs.len());
    for (name, lib) in libs {
        out.map(if with_code { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(name.as_bytes());
        out.bulk(b"engine");
        out.bulk(b"LUA");
        out.bulk(b"functions");
        out.array(lib.functions.len());
        for f in &lib.functions {
            out.map(3);
            out.bulk(b"name");
            out.bulk(f.name.as_bytes());
            out.bulk(b"description");
            out.null();
            out.bulk(b"flags");
            out.set(f.flags.len());
            for fl in &f.flags {
                out.simple(fl);
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&lib.code);
        }
    }
}

/// FUNCTION STATS: the running function, if any, and the library counts.
pub fn function_stats(cx: &mut Ctx) {
    let running = cx.node.running_script.as_deref();
    if running.is_some_and(|r| r.is_eval) {
        return cx.error(BUSY_EVAL);
    }
    let now = cx.node.now;
    let running = running.map(|r| {
        let ms = now.as_millis().saturating_sub(r.started.as_millis());
        (r.name.clone(), r.command.clone(), ms)
    });
    let counts = |s: &Scripting| {
        (
            s.libraries.len(),
            s.libraries.values().map(|l| l.functions.len()).sum(),
        )
    };
    let (libs, funcs): (usize, usize) = match cx.node.running_script.as_deref() {
        Some(r) => r.state.as_deref().map_or((0, 0), counts),
        None => scripting(cx.node).map_or((0, 0), |s| counts(s)),
    };
    let out = &mut cx.client.reply;
    out.map(2);
    out.bulk(b"running_script");
    match running {
        None => out.null(),
        Some((name, command, ms)) => {
            out.map(3);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"command");
            out.array(command.len());
            for a in &command {
                out.bulk(a);
            }
            out.bulk(b"duration_ms");
            out.int(ms);
        }
    }
    out.bulk(b"engines");
    out.map(1);
    out.bulk(b"LUA");
    out.map(2);
    out.bulk(b"libraries_count");
    out.int(libs as i64);
    out.bulk(b"functions_count");
    out.int(funcs as i64);
}

pub fn function_help(cx: &mut Ctx) {
    cx.reply_help("function");
}

/// FUNCTION DUMP: every library's code in Redis's payload format.
pub fn function_dump(cx: &mut Ctx) {
    let compress = cx.node.config.rdbcompression;
    let codes = library_codes(cx.node);
    let payload = crate::rdb::function_dump_payload(&codes, compress);
    cx.out().bulk(&payload);
}

/// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE] (Redis's
/// `functionRestoreCommand`): the payload's libraries are loaded into a
/// set of their own, then replace the current set (FLUSH) or join it
/// (APPEND refuses a library that exists, REPLACE drops it first); a
/// function name held by another library refuses the whole payload.
pub fn function_restore(cx: &mut Ctx) {
    #[derive(PartialEq)]
    enum Policy {
        Append,
        Replace,
        Flush,
    }
    if cx.argv.len() > 4 {
        let sub = crate::resp::c_str(&cx.argv[1]);
        let mut msg = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
        msg.extend_from_slice(&sub[..sub.len().min(128)]);
        msg.extend_from_slice(b"'. Try FUNCTION HELP.");
        cx.node.count_error("ERR");
        cx.client.reply.error_bytes(&msg);
        return;
    }
    let policy =
        match cx.argv.get(3) {
            None => Policy::Append,
            Some(_) if cx.arg_is(3, "append") => Policy::Append,
            Some(_) if cx.arg_is(3, "replace") => Policy::Replace,
            Some(_) if cx.arg_is(3, "flush") => Policy::Flush,
            Some(_) => return cx.error(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ),
        };
    let codes = match crate::rdb::function_restore_codes(&cx.argv[2]) {
        Ok(c) => c,
        Err("payload version or checksum are wrong") => {
            return cx.error("ERR DUMP payload version or checksum are wrong")
        }
        Err(e) => return cx.error(&format!("ERR {e}")),
    };
    let Some(state) = scripting(cx.node) else {
        return cx.error("ERR Lua scripting is unavailable");
    };
    // functionsCreateWithLibraryCtx into the payload's own set.
    let mut fresh: BTreeMap<String, Library> = BTreeMap::new();
    for code in codes {
        let loaded = library_name(&code).and_then(|name| {
            if fresh.contains_key(&name) {
                return Err(format!("ERR Library '{name}' already exists"));
            }
            let functions = load_library(state, &code, &taken_by_others(&fresh, &name))?;
            Ok((name, functions))
        });
        match loaded {
            Ok((name, functions)) => {
                let code = Bytes::from(code);
                fresh.insert(name, Library { code, functions });
            }
            Err(e) => return cx.error(&e),
        }
    }
    if policy == Policy::Flush {
        state.libraries = fresh;
    } else {
        // libraryJoin: libraries first, then function names against what
        // stays.
        for name in fresh.keys() {
            if state.libraries.contains_key(name) && policy == Policy::Append {
                return cx.error(&format!("ERR Library {name} already exists"));
            }
        }
        let clash = fresh.values().flat_map(|l| l.functions.iter()).find(|f| {
            state
                .libraries
                .iter()
                .filter(|(n, _)| !fresh.contains_key(*n))
                .any(|(_, l)| l.functions.iter().any(|x| x.name == f.name))
        });
        if let Some(f) = clash {
            let msg = format!("ERR Function {} already exists", f.name);
            return cx.error(&msg);
        }
        state.libraries.extend(fresh);
    }
    cx.dirty(1);
    cx.out().ok();
}
