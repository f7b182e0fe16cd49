//! The Lua libraries Redis 7.0 bundles for scripts: `cjson`, `cmsgpack`,
//! `bit` and `struct`.
//!
//! Why hand-rolled: no maintained crate reproduces these libraries' exact
//! output (number formatting, escaping, array detection, msgpack encoding
//! choices, error messages), and Redis's C sources are not available to the
//! build. Each module is a port of the C library Redis 7.0 compiles in
//! (lua-cjson 2.1.0, lua-cmsgpack 0.4.0, LuaBitOp 1.0.2, Roberto's struct
//! with Redis's fixes), written as raw Lua C functions against the same Lua
//! 5.1 API. That choice is deliberate: going through the real stack API
//! keeps `pairs` order (`lua_next`), argument errors (`luaL_argerror` names
//! the function the way the caller spelled it) and `luaL_error` positions
//! identical to Redis, where mlua's high-level callbacks would word them
//! differently.
//!
//! The error contract: a library function's body returns `Result<c_int,
//! Raise>` and never raises itself; [`entry`] turns a [`Raise`] into a Lua
//! error only after every Rust value has been dropped, so the `longjmp`
//! inside `lua_error` crosses no frame with pending destructors. The body
//! calls only Lua API functions that cannot raise on valid input (they can
//! still fail on out-of-memory, which aborts the script like any Lua OOM).

use mlua::ffi::{self, lua_State};
use std::ffi::{c_int, CStr};

pub mod bit;
pub mod cjson;
pub mod cmsgpack;
pub mod structlib;

/// A Lua error a library function asks [`entry`] to raise.
pub enum Raise {
    /// `luaL_error`: the message, prefixed with the caller's position.
    Error(Vec<u8>),
    /// `lua_error` with the bare message, as Lua's own runtime errors
    /// raised inside a C function (e.g. "table index is nil").
    Bare(Vec<u8>),
    /// `luaL_argerror(L, narg, msg)`.
    Arg(c_int, Vec<u8>),
    /// `luaL_typerror(L, narg, tname)`.
    Type(c_int, &'static CStr),
}

impl Raise {
    pub fn error(msg: impl Into<Vec<u8>>) -> Raise {
        Raise::Error(msg.into())
    }
    pub fn arg(narg: c_int, msg: impl Into<Vec<u8>>) -> Raise {
        Raise::Arg(narg, msg.into())
    }
}

/// What a library function's body returns: the number of results it left
/// on the stack, or the error to raise.
pub type Ret = Result<c_int, Raise>;

/// Runs a library function's body and raises its error, if any. A panic
/// (a bug: the bodies are written not to panic) becomes a Lua error rather
/// than unwinding through Lua's C frames.
///
/// # Safety
/// `l` must be the state Lua called the C function with.
pub unsafe fn entry(l: *mut lua_State, body: unsafe fn(*mut lua_State) -> Ret) -> c_int {
    let base = ffi::lua_gettop(l);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(l)));
    let raise = match outcome {
        Ok(Ok(n)) => return n,
        Ok(Err(raise)) => raise,
        Err(_) => Raise::error("internal error in Lua library"),
    };
    raise_error(l, base, raise)
}

/// Pushes the error's message and raises it. Every Rust value is dropped
/// before the non-returning Lua call.
unsafe fn raise_error(l: *mut lua_State, base: c_int, raise: Raise) -> c_int {
    // The error may come from a full stack (a nesting limit): the partial
    // results above the arguments are garbage now, and dropping them makes
    // room for the message (Lua's API checks insist on it).
    if ffi::lua_checkstack(l, 4) == 0 {
        ffi::lua_settop(l, base);
    }
    // The messages are copied onto the Lua stack and the Rust buffers
    // dropped here; only `Copy` values remain for the calls below.
    let (kind, narg, tname) = match raise {
        Raise::Error(msg) => {
            push_bytes(l, &msg);
            (0, 0, None)
        }
        Raise::Bare(msg) => {
            push_bytes(l, &msg);
            (1, 0, None)
        }
        Raise::Arg(narg, msg) => {
            push_bytes(l, &msg);
            (2, narg, None)
        }
        Raise::Type(narg, tname) => (3, narg, Some(tname)),
    };
    match (kind, tname) {
        (0, _) => {
            ffi::luaL_where(l, 1);
            ffi::lua_insert(l, -2);
            ffi::lua_concat(l, 2);
            ffi::lua_error(l)
        }
        (1, _) => ffi::lua_error(l),
        (2, _) => {
            let msg = ffi::lua_tolstring(l, -1, std::ptr::null_mut());
            ffi::luaL_argerror(l, narg, msg)
        }
        (_, Some(tname)) => ffi::luaL_typerror(l, narg, tname.as_ptr()),
        (_, None) => ffi::lua_error(l),
    }
}

/// Defines a `lua_CFunction` named `$name` that runs `$body` through
/// [`entry`].
macro_rules! lua_cfn {
    ($name:ident => $body:path) => {
        unsafe extern "C-unwind" fn $name(l: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
            $crate::lua::entry(l, $body)
        }
    };
}
pub(crate) use lua_cfn;

/// `lua_pushlstring` of a byte slice.
///
/// # Safety
/// A valid state with a free stack slot.
pub unsafe fn push_bytes(l: *mut lua_State, b: &[u8]) {
    ffi::lua_pushlstring_(l, b.as_ptr() as *const std::ffi::c_char, b.len());
}

/// The bytes of the string (or number, converted in place, as
/// `lua_tolstring` does) at `idx`, or `None` for other types. The slice
/// borrows Lua's copy: it stays valid while the value stays on the stack,
/// which is the caller's responsibility.
///
/// # Safety
/// A valid state and index.
pub unsafe fn to_bytes<'a>(l: *mut lua_State, idx: c_int) -> Option<&'a [u8]> {
    let mut len = 0usize;
    let p = ffi::lua_tolstring(l, idx, &mut len);
    if p.is_null() {
        None
    } else {
        Some(std::slice::from_raw_parts(p as *const u8, len))
    }
}

/// `luaL_checklstring`.
///
/// # Safety
/// As [`to_bytes`].
pub unsafe fn check_bytes<'a>(l: *mut lua_State, idx: c_int) -> Result<&'a [u8], Raise> {
    to_bytes(l, idx).ok_or(Raise::Type(idx, c"string"))
}

/// `luaL_checknumber`.
///
/// # Safety
/// A valid state and index.
pub unsafe fn check_number(l: *mut lua_State, idx: c_int) -> Result<f64, Raise> {
    let n = ffi::lua_tonumber(l, idx);
    if n == 0.0 && ffi::lua_isnumber(l, idx) == 0 {
        return Err(Raise::Type(idx, c"number"));
    }
    Ok(n)
}

/// `luaL_checkinteger` (Lua 5.1: the number truncated by a C cast).
///
/// # Safety
/// A valid state and index.
pub unsafe fn check_integer(l: *mut lua_State, idx: c_int) -> Result<i64, Raise> {
    let n = ffi::lua_tointeger_(l, idx);
    if n == 0 && ffi::lua_isnumber(l, idx) == 0 {
        return Err(Raise::Type(idx, c"number"));
    }
    Ok(n)
}

/// `luaL_optinteger`.
///
/// # Safety
/// A valid state and index.
pub unsafe fn opt_integer(l: *mut lua_State, idx: c_int, default: i64) -> Result<i64, Raise> {
    if ffi::lua_type(l, idx) <= ffi::LUA_TNIL {
        Ok(default)
    } else {
        check_integer(l, idx)
    }
}

/// `luaL_checkstack`: Lua's "stack overflow (msg)" error when the stack
/// cannot grow.
///
/// # Safety
/// A valid state.
pub unsafe fn check_stack(l: *mut lua_State, slots: c_int, msg: &str) -> Result<(), Raise> {
    if ffi::lua_checkstack(l, slots) == 0 {
        return Err(Raise::error(format!("stack overflow ({msg})")));
    }
    Ok(())
}

/// C's `(int64_t)x` as x86-64 computes it (`cvttsd2si`): out-of-range and
/// NaN give `i64::MIN`. The libraries rely on these casts, so the quirk is
/// part of their observable behaviour.
pub fn cast_i64(x: f64) -> i64 {
    if (-9223372036854775808.0..9223372036854775808.0).contains(&x) {
        x as i64
    } else {
        i64::MIN
    }
}

/// C's `(int)x` on x86-64: out-of-range and NaN give `i32::MIN`.
pub fn cast_i32(x: f64) -> i32 {
    if x > -2147483649.0 && x < 2147483648.0 {
        x as i32
    } else {
        i32::MIN
    }
}

/// C's `(uint64_t)x` as gcc compiles it on x86-64: values from 2^63 are
/// converted after subtracting 2^63 and the top bit is flipped back; NaN
/// fails the `>= 2^63` test and takes the signed path.
pub fn cast_u64(x: f64) -> u64 {
    const TWO63: f64 = 9223372036854775808.0;
    if x.is_nan() || x < TWO63 {
        cast_i64(x) as u64
    } else {
        (cast_i64(x - TWO63) as u64) ^ (1 << 63)
    }
}

/// How much machine stack one library call may use for its recursion.
/// Lua's stack limit (8000 slots, checked with `lua_checkstack` as the C
/// code does) is what bounds nesting in Redis. In a release build frames
/// are small (under 256 bytes a level) and Lua's limit is reached well
/// within 4 MB, half the scripts' 8 MB stack, so the budget never decides.
/// Debug frames are about 1.3 KB a level: 1.5 MB still covers the default
/// nesting limits (1000) and fits a 2 MB test thread, and deeper nesting
/// (only with raised limits) fails with the error Lua's limit gives.
pub const STACK_BUDGET: usize = if cfg!(debug_assertions) {
    3 << 19
} else {
    4 << 20
};

/// Where a library call's recursion started, to measure against
/// [`STACK_BUDGET`] (the stack grows downwards on every target we build).
#[derive(Clone, Copy)]
pub struct StackGauge(usize);

impl StackGauge {
    #[inline(never)]
    pub fn new() -> StackGauge {
        let here = 0u8;
        StackGauge(std::hint::black_box(&here) as *const u8 as usize)
    }

    /// True while the recursion below the start stays within budget.
    #[inline(never)]
    pub fn ok(self) -> bool {
        let here = 0u8;
        let addr = std::hint::black_box(&here) as *const u8 as usize;
        self.0.saturating_sub(addr) < STACK_BUDGET
    }
}

impl Default for StackGauge {
    fn default() -> Self {
        StackGauge::new()
    }
}

/// Registers the four libraries as globals. Run before the globals table
/// is made read-only: it writes with `rawset`.
pub fn install(lua: &mlua::Lua) -> mlua::Result<()> {
    // SAFETY: plain Lua C API calls in protected mode (exec_raw), on the
    // state mlua owns; each library leaves exactly its table on the stack.
    unsafe {
        lua.exec_raw::<()>((), |l| {
            for (name, open) in [
                (c"cjson", cjson::open as unsafe fn(*mut lua_State)),
                (c"cmsgpack", cmsgpack::open),
                (c"bit", bit::open),
                (c"struct", structlib::open),
            ] {
                ffi::lua_pushstring_(l, name.as_ptr());
                open(l);
                ffi::lua_rawset(l, ffi::LUA_GLOBALSINDEX);
            }
        })
    }
}

/// Pushes a table of `(name, function)` pairs.
///
/// # Safety
/// A valid state.
pub unsafe fn push_funcs(l: *mut lua_State, funcs: &[(&CStr, ffi::lua_CFunction)]) {
    ffi::lua_createtable(l, 0, funcs.len() as c_int);
    for (name, f) in funcs {
        ffi::lua_pushcclosure(l, *f, 0);
        ffi::lua_setfield(l, -2, name.as_ptr());
    }
}

#[cfg(test)]
mod tests {
    use mlua::{Lua, LuaOptions, StdLib};

    fn lua() -> Lua {
        let lua = Lua::new_with(StdLib::ALL_SAFE, LuaOptions::default()).expect("lua");
        super::install(&lua).expect("install");
        lua
    }

    /// Runs `script` on a stack of `stack` bytes (a coroutine stack, as
    /// scripts get in scripting.rs, but smaller).
    fn run_on_stack(stack: usize, script: &'static str) -> Result<String, String> {
        use corosensei::stack::DefaultStack;
        use corosensei::{Coroutine, CoroutineResult};
        let stack = DefaultStack::new(stack).expect("stack");
        let mut co = Coroutine::with_stack(stack, move |_: &corosensei::Yielder<(), ()>, ()| {
            lua()
                .load(script)
                .eval::<String>()
                .map_err(|e| e.to_string())
        });
        match co.resume(()) {
            CoroutineResult::Return(r) => r,
            CoroutineResult::Yield(()) => Err("yielded".to_string()),
        }
    }

    /// Nesting as deep as Lua's stack allows, with the libraries' own
    /// limits raised, fails cleanly (in Redis too, with the same messages
    /// in a release build) and never overflows the machine stack: this runs
    /// on a 2 MB stack, in debug builds too.
    #[test]
    fn deep_nesting_fails_cleanly() {
        for (script, want) in [
            ("cjson.decode_max_depth(100000) return select(2, pcall(cjson.decode, string.rep('[', 20000)))", "Found too many nested data structures"),
            ("cjson.decode_max_depth(100000) return select(2, pcall(cjson.decode, string.rep('{\"a\":', 20000)))", "Found too many nested data structures"),
            ("cjson.encode_max_depth(100000) local t = {} local c = t for i = 1, 20000 do c[1] = {} c = c[1] end return select(2, pcall(cjson.encode, t))", "Cannot serialise, excessive nesting"),
            ("cjson.encode_max_depth(100000) local t = {} local c = t for i = 1, 20000 do c.k = {} c = c.k end return select(2, pcall(cjson.encode, t))", "Cannot serialise, excessive nesting"),
            ("return select(2, pcall(cmsgpack.unpack, string.rep('\\145', 20000)))", "stack overflow (too many return values"),
            ("return select(2, pcall(cmsgpack.unpack, string.rep('\\129\\1', 20000)))", "stack overflow (too many return values"),
        ] {
            let got = run_on_stack(2 << 20, script);
            assert!(got.as_ref().is_ok_and(|m| m.starts_with(want)), "{script}: {got:?}");
        }
    }

    /// Runs `script` with `input` as its `...` and returns its string.
    fn eval_with(lua: &Lua, script: &str, input: &[u8]) -> Vec<u8> {
        let input = lua.create_string(input).expect("string");
        lua.load(script)
            .call::<mlua::String>(input)
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// In-process, so Lua's API checks (on in debug builds) watch every
    /// stack operation: arbitrary bytes through every decoder and format
    /// parser, and arbitrary numbers through `bit`, must give a value or a
    /// Lua error, never a panic or an abort. (The differential tests
    /// compare the outcomes with Redis.)
    #[test]
    fn arbitrary_input_never_breaks_the_state() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        let lua = lua();
        let script = r#"
            local s = ...
            local out = {}
            local function try(f, ...)
              -- One result through pcall: Lua's API check aborts when
              -- pcall receives many (a Lua 5.1 quirk, not these libraries').
              local r = {pcall(function(...) return select('#', f(...)) end, ...)}
              out[#out + 1] = tostring(r[1]) .. tostring(r[2])
            end
            try(cjson.decode, s)
            try(cmsgpack.unpack, s)
            try(cmsgpack.unpack_one, s, #s % 5)
            try(cmsgpack.unpack_limit, s, #s % 3, 1)
            try(struct.unpack, s, s)
            try(struct.pack, s, 1, 2, 3, s, 5, 6)
            try(struct.size, s)
            try(bit.tohex, #s * 1e9, #s - 20)
            try(function() return cjson.encode(cjson.decode(s)) end)
            try(function() return cmsgpack.pack(cmsgpack.unpack(s)) end)
            return table.concat(out, '|')
        "#;
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases: 2000,
                failure_persistence: None,
                ..Config::default()
            },
            TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        );
        let bytes = prop::collection::vec(
            prop_oneof![
                any::<u8>(),
                prop::sample::select(
                    b"[]{}:,\"\\ 0123456789.eE+-tfnulx<>!bBhHlLTiIcsfd\x91\x81\xc0\xdc\xde"
                        .to_vec()
                ),
            ],
            0..64,
        );
        // Both outcomes must occur, or the inputs are not reaching the code.
        let (ok, failed) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
        runner
            .run(&bytes, |b| {
                let out = eval_with(&lua, script, &b);
                for call in out.split(|&c| c == b'|') {
                    let n = if call.starts_with(b"true") {
                        &ok
                    } else {
                        &failed
                    };
                    n.set(n.get() + 1);
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(ok.get() > 2000 && failed.get() > 2000, "{ok:?} {failed:?}");
        // Deep and wide inputs, beyond what random bytes reach.
        for input in [
            "[".repeat(5000),
            "{\"a\":".repeat(5000),
            "\u{91}".repeat(5000),
            "\u{dd}\u{ff}\u{ff}\u{ff}\u{ff}".repeat(100),
            "b".repeat(10000),
        ] {
            eval_with(&lua, script, input.as_bytes());
        }
    }
}
