//! `bit`: LuaBitOp 1.0.2 as bundled by Redis. Operands are 32-bit; results
//! are signed 32-bit numbers.

use super::{lua_cfn, push_funcs, Raise, Ret};
use mlua::ffi::{self, lua_State};
use std::ffi::c_int;

/// LuaBitOp's `barg`: the low 32 bits of the number after adding 2^52+2^51,
/// which rounds it to an integer and wraps it modulo 2^32. Lua 5.1's
/// `lua_tonumber` returns 0 for non-numbers, so only a zero result is
/// checked for the type error, exactly like the C code.
unsafe fn barg(l: *mut lua_State, idx: c_int) -> Result<u32, Raise> {
    let n = ffi::lua_tonumber(l, idx);
    let b = (n + 6755399441055744.0).to_bits() as u32;
    if b == 0 && ffi::lua_isnumber(l, idx) == 0 {
        return Err(Raise::Type(idx, c"number"));
    }
    Ok(b)
}

unsafe fn ret(l: *mut lua_State, b: u32) -> Ret {
    ffi::lua_pushnumber(l, b as i32 as f64);
    Ok(1)
}

unsafe fn tobit(l: *mut lua_State) -> Ret {
    ret(l, barg(l, 1)?)
}

unsafe fn bnot(l: *mut lua_State) -> Ret {
    ret(l, !barg(l, 1)?)
}

/// The variadic operators fold from the last argument down to the second,
/// so a bad argument is reported in the same order as the C loop.
unsafe fn fold(l: *mut lua_State, op: fn(u32, u32) -> u32) -> Ret {
    let mut b = barg(l, 1)?;
    let mut i = ffi::lua_gettop(l);
    while i > 1 {
        b = op(b, barg(l, i)?);
        i -= 1;
    }
    ret(l, b)
}

unsafe fn band(l: *mut lua_State) -> Ret {
    fold(l, |a, b| a & b)
}

unsafe fn bor(l: *mut lua_State) -> Ret {
    fold(l, |a, b| a | b)
}

unsafe fn bxor(l: *mut lua_State) -> Ret {
    fold(l, |a, b| a ^ b)
}

/// Shift counts are taken modulo 32.
unsafe fn shift(l: *mut lua_State, op: fn(u32, u32) -> u32) -> Ret {
    let b = barg(l, 1)?;
    let n = barg(l, 2)? & 31;
    ret(l, op(b, n))
}

unsafe fn lshift(l: *mut lua_State) -> Ret {
    shift(l, |b, n| b << n)
}

unsafe fn rshift(l: *mut lua_State) -> Ret {
    shift(l, |b, n| b >> n)
}

unsafe fn arshift(l: *mut lua_State) -> Ret {
    shift(l, |b, n| ((b as i32) >> n) as u32)
}

unsafe fn rol(l: *mut lua_State) -> Ret {
    shift(l, |b, n| b.rotate_left(n))
}

unsafe fn ror(l: *mut lua_State) -> Ret {
    shift(l, |b, n| b.rotate_right(n))
}

unsafe fn bswap(l: *mut lua_State) -> Ret {
    ret(l, barg(l, 1)?.swap_bytes())
}

/// `bit.tohex(x [, n])`: `n` digits (default 8, at most 8), upper case when
/// `n` is negative.
unsafe fn tohex(l: *mut lua_State) -> Ret {
    let mut b = barg(l, 1)?;
    // Negated in 64 bits: Redis's build treats -(-2^31) as the positive
    // 2^31 (the C negation overflows; the compiler assumes it cannot), so
    // that count means 8 upper-case digits.
    let mut n: i64 = if ffi::lua_type(l, 2) == ffi::LUA_TNONE {
        8
    } else {
        barg(l, 2)? as i32 as i64
    };
    let mut digits: &[u8; 16] = b"0123456789abcdef";
    if n < 0 {
        n = -n;
        digits = b"0123456789ABCDEF";
    }
    let n = n.min(8) as usize;
    let mut buf = [0u8; 8];
    for slot in buf[..n].iter_mut().rev() {
        *slot = digits[(b & 15) as usize];
        b >>= 4;
    }
    super::push_bytes(l, &buf[..n]);
    Ok(1)
}

lua_cfn!(c_tobit => tobit);
lua_cfn!(c_bnot => bnot);
lua_cfn!(c_band => band);
lua_cfn!(c_bor => bor);
lua_cfn!(c_bxor => bxor);
lua_cfn!(c_lshift => lshift);
lua_cfn!(c_rshift => rshift);
lua_cfn!(c_arshift => arshift);
lua_cfn!(c_rol => rol);
lua_cfn!(c_ror => ror);
lua_cfn!(c_bswap => bswap);
lua_cfn!(c_tohex => tohex);

/// Pushes the `bit` table.
///
/// # Safety
/// A valid state with free stack slots.
pub unsafe fn open(l: *mut lua_State) {
    push_funcs(
        l,
        &[
            (c"tobit", c_tobit),
            (c"bnot", c_bnot),
            (c"band", c_band),
            (c"bor", c_bor),
            (c"bxor", c_bxor),
            (c"lshift", c_lshift),
            (c"rshift", c_rshift),
            (c"arshift", c_arshift),
            (c"rol", c_rol),
            (c"ror", c_ror),
            (c"bswap", c_bswap),
            (c"tohex", c_tohex),
        ],
    );
}
