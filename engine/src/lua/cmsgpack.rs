//! `cmsgpack`: lua-cmsgpack 0.4.0 as Redis 7.0 bundles it. `pack(...)`
//! concatenates the encodings of its arguments; `unpack` returns every
//! value of a stream; `unpack_one` and `unpack_limit` return the next
//! offset (-1 at the end) followed by the values.

use super::{
    cast_i32, cast_i64, check_bytes, check_integer, check_stack, lua_cfn, push_bytes, push_funcs,
    Raise, Ret, StackGauge,
};
use mlua::ffi::{self, lua_State};
use std::ffi::c_int;

/// Tables nested deeper than this encode as nil, so circular references
/// terminate.
const MAX_NESTING: u32 = 16;

fn encode_bytes(buf: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 32 {
        buf.push(0xa0 | len as u8);
    } else if len <= 0xff {
        buf.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        buf.push(0xda);
        buf.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        buf.push(0xdb);
        buf.extend_from_slice(&(len as u32).to_be_bytes());
    }
    buf.extend_from_slice(s);
}

/// A float when the double survives the round trip through f32, else a
/// double.
fn encode_double(buf: &mut Vec<u8>, d: f64) {
    let f = d as f32;
    if d == f as f64 {
        buf.push(0xca);
        buf.extend_from_slice(&f.to_be_bytes());
    } else {
        buf.push(0xcb);
        buf.extend_from_slice(&d.to_be_bytes());
    }
}

fn encode_int(buf: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            buf.push(n as u8);
        } else if n <= 0xff {
            buf.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            buf.push(0xcd);
            buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            buf.push(0xce);
            buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            buf.push(0xcf);
            buf.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        buf.push(n as i8 as u8);
    } else if n >= -128 {
        buf.extend_from_slice(&[0xd0, n as u8]);
    } else if n >= -32768 {
        buf.push(0xd1);
        buf.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2147483648 {
        buf.push(0xd2);
        buf.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        buf.push(0xd3);
        buf.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_header(buf: &mut Vec<u8>, n: u64, fix: u8, h16: u8, h32: u8) {
    if n <= 15 {
        buf.push(fix | n as u8);
    } else if n <= 65535 {
        buf.push(h16);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(h32);
        buf.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// `table_is_an_array`: every key a positive number equal to its `(int)`
/// cast, and the largest equal to the count (so 1..n without holes).
unsafe fn table_is_an_array(l: *mut lua_State) -> Result<bool, Raise> {
    let top = ffi::lua_gettop(l);
    let (mut count, mut max): (i32, i32) = (0, 0);
    check_stack(l, 2, "in function table_is_an_array")?;
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, -2) != 0 {
        ffi::lua_settop(l, -2);
        let n = if ffi::lua_type(l, -1) == ffi::LUA_TNUMBER {
            ffi::lua_tonumber(l, -1)
        } else {
            0.0
        };
        // (`n <= 0` is also false for NaN; the int cast then rejects it.)
        if ffi::lua_type(l, -1) != ffi::LUA_TNUMBER || n <= 0.0 || cast_i32(n) as f64 != n {
            ffi::lua_settop(l, top);
            return Ok(false);
        }
        max = max.max(n as i32);
        count = count.wrapping_add(1);
    }
    ffi::lua_settop(l, top);
    Ok(max == count)
}

/// Encodes the value on top of the stack and pops it.
unsafe fn encode_value(l: *mut lua_State, buf: &mut Vec<u8>, level: u32) -> Result<(), Raise> {
    let mut t = ffi::lua_type(l, -1);
    if t == ffi::LUA_TTABLE && level == MAX_NESTING {
        t = ffi::LUA_TNIL;
    }
    match t {
        ffi::LUA_TSTRING => {
            let s = super::to_bytes(l, -1).unwrap_or_default();
            encode_bytes(buf, s);
        }
        ffi::LUA_TBOOLEAN => buf.push(if ffi::lua_toboolean(l, -1) != 0 {
            0xc3
        } else {
            0xc2
        }),
        ffi::LUA_TNUMBER => {
            let n = ffi::lua_tonumber(l, -1);
            if n.is_finite() && cast_i64(n) as f64 == n {
                encode_int(buf, cast_i64(n));
            } else {
                encode_double(buf, n);
            }
        }
        ffi::LUA_TTABLE => {
            if table_is_an_array(l)? {
                let len = ffi::lua_objlen(l, -1);
                encode_header(buf, len as u64, 0x90, 0xdc, 0xdd);
                check_stack(l, 1, "in function mp_encode_lua_table_as_array")?;
                // The keys are exactly 1..len, so a raw read sees what the
                // C code's lua_gettable sees (no __index can fire).
                for j in 1..=len {
                    ffi::lua_rawgeti_(l, -1, j as c_int);
                    encode_value(l, buf, level + 1)?;
                }
            } else {
                check_stack(l, 3, "in function mp_encode_lua_table_as_map")?;
                let mut len: u64 = 0;
                ffi::lua_pushnil(l);
                while ffi::lua_next(l, -2) != 0 {
                    ffi::lua_settop(l, -2);
                    len += 1;
                }
                encode_header(buf, len, 0x80, 0xde, 0xdf);
                ffi::lua_pushnil(l);
                while ffi::lua_next(l, -2) != 0 {
                    ffi::lua_pushvalue(l, -2);
                    encode_value(l, buf, level + 1)?;
                    encode_value(l, buf, level + 1)?;
                }
            }
        }
        _ => buf.push(0xc0),
    }
    ffi::lua_settop(l, -2);
    Ok(())
}

unsafe fn pack(l: *mut lua_State) -> Ret {
    let nargs = ffi::lua_gettop(l);
    if nargs == 0 {
        return Err(Raise::arg(0, "MessagePack pack needs input."));
    }
    if ffi::lua_checkstack(l, nargs) == 0 {
        return Err(Raise::arg(0, "Too many arguments for MessagePack pack."));
    }
    // One buffer for all arguments: the C code pushes one string per
    // argument and concatenates them, which yields the same bytes.
    let mut buf = Vec::new();
    for i in 1..=nargs {
        check_stack(l, 1, "in function mp_check")?;
        ffi::lua_pushvalue(l, i);
        encode_value(l, &mut buf, 0)?;
    }
    push_bytes(l, &buf);
    Ok(1)
}

/// Why decoding stopped.
enum DecodeErr {
    /// Not enough data ("Missing bytes in input.").
    Eof,
    /// A type byte lua-cmsgpack does not know ("Bad data format in input.").
    BadFmt,
    /// A Lua error to raise as is.
    Lua(Raise),
}

impl From<Raise> for DecodeErr {
    fn from(r: Raise) -> DecodeErr {
        DecodeErr::Lua(r)
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    gauge: StackGauge,
}

impl<'a> Cursor<'a> {
    fn left(&self) -> usize {
        self.data.len() - self.pos
    }
    fn need(&self, n: usize) -> Result<(), DecodeErr> {
        if self.left() < n {
            Err(DecodeErr::Eof)
        } else {
            Ok(())
        }
    }
    /// `n` bytes after the type byte; `need` was checked.
    fn at(&self, i: usize) -> u8 {
        self.data.get(self.pos + i).copied().unwrap_or(0)
    }
    fn be(&self, from: usize, n: usize) -> u64 {
        (0..n).fold(0u64, |v, i| (v << 8) | self.at(from + i) as u64)
    }
    /// Takes `n` bytes from `skip` bytes ahead and consumes both.
    fn take(&mut self, skip: usize, n: usize) -> Result<&'a [u8], DecodeErr> {
        self.need(skip)?;
        let start = self.pos + skip;
        if self.data.len() - start < n {
            return Err(DecodeErr::Eof);
        }
        self.pos = start + n;
        Ok(&self.data[start..start + n])
    }
}

/// The C code stores key/value pairs with `lua_settable`, which raises on
/// a nil or NaN key; the same errors, without position, as Lua words them.
unsafe fn settable(l: *mut lua_State) -> Result<(), DecodeErr> {
    if ffi::lua_type(l, -2) == ffi::LUA_TNIL {
        return Err(DecodeErr::Lua(Raise::Bare(b"table index is nil".to_vec())));
    }
    if ffi::lua_type(l, -2) == ffi::LUA_TNUMBER && ffi::lua_tonumber(l, -2).is_nan() {
        return Err(DecodeErr::Lua(Raise::Bare(b"table index is NaN".to_vec())));
    }
    ffi::lua_rawset(l, -3);
    Ok(())
}

unsafe fn decode_array(l: *mut lua_State, c: &mut Cursor, len: u64) -> Result<(), DecodeErr> {
    ffi::lua_createtable(l, 0, 0);
    check_stack(l, 1, "in function mp_decode_to_lua_array")?;
    // A length claimed by the header allocates nothing up front: each
    // element must be present in the input, so the loop is bounded by it.
    let mut index: f64 = 1.0;
    for _ in 0..len {
        ffi::lua_pushnumber(l, index);
        index += 1.0;
        decode_value(l, c)?;
        settable(l)?;
    }
    Ok(())
}

unsafe fn decode_map(l: *mut lua_State, c: &mut Cursor, len: u64) -> Result<(), DecodeErr> {
    ffi::lua_createtable(l, 0, 0);
    for _ in 0..len {
        decode_value(l, c)?;
        decode_value(l, c)?;
        settable(l)?;
    }
    Ok(())
}

/// Decodes one value and pushes it. Recursion depth is bounded by Lua's
/// stack limit: every level holds at least one slot and checks for room.
unsafe fn decode_value(l: *mut lua_State, c: &mut Cursor) -> Result<(), DecodeErr> {
    c.need(1)?;
    const TOO_MANY: &str =
        "too many return values at once; use unpack_one or unpack_limit instead.";
    if !c.gauge.ok() {
        return Err(DecodeErr::Lua(Raise::error(format!(
            "stack overflow ({TOO_MANY})"
        ))));
    }
    check_stack(l, 1, TOO_MANY)?;
    let b0 = c.at(0);
    match b0 {
        0xcc => {
            c.need(2)?;
            ffi::lua_pushinteger(l, c.at(1) as i64);
            c.pos += 2;
        }
        0xd0 => {
            c.need(2)?;
            ffi::lua_pushinteger(l, c.at(1) as i8 as i64);
            c.pos += 2;
        }
        0xcd => {
            c.need(3)?;
            ffi::lua_pushinteger(l, c.be(1, 2) as i64);
            c.pos += 3;
        }
        0xd1 => {
            c.need(3)?;
            ffi::lua_pushinteger(l, c.be(1, 2) as u16 as i16 as i64);
            c.pos += 3;
        }
        0xce => {
            c.need(5)?;
            ffi::lua_pushinteger(l, c.be(1, 4) as i64);
            c.pos += 5;
        }
        0xd2 => {
            c.need(5)?;
            ffi::lua_pushinteger(l, c.be(1, 4) as u32 as i32 as i64);
            c.pos += 5;
        }
        0xcf => {
            c.need(9)?;
            // lua_pushunsigned is lua_pushinteger on 64-bit: the value is
            // reinterpreted as signed.
            ffi::lua_pushinteger(l, c.be(1, 8) as i64);
            c.pos += 9;
        }
        0xd3 => {
            c.need(9)?;
            ffi::lua_pushnumber(l, c.be(1, 8) as i64 as f64);
            c.pos += 9;
        }
        0xc0 => {
            ffi::lua_pushnil(l);
            c.pos += 1;
        }
        0xc3 | 0xc2 => {
            ffi::lua_pushboolean(l, (b0 == 0xc3) as c_int);
            c.pos += 1;
        }
        0xca => {
            c.need(5)?;
            ffi::lua_pushnumber(l, f32::from_bits(c.be(1, 4) as u32) as f64);
            c.pos += 5;
        }
        0xcb => {
            c.need(9)?;
            ffi::lua_pushnumber(l, f64::from_bits(c.be(1, 8)));
            c.pos += 9;
        }
        0xd9 => {
            c.need(2)?;
            let n = c.at(1) as usize;
            let s = c.take(2, n)?;
            push_bytes(l, s);
        }
        0xda => {
            c.need(3)?;
            let n = c.be(1, 2) as usize;
            let s = c.take(3, n)?;
            push_bytes(l, s);
        }
        0xdb => {
            c.need(5)?;
            let n = c.be(1, 4) as usize;
            let s = c.take(5, n)?;
            push_bytes(l, s);
        }
        0xdc | 0xde => {
            c.need(3)?;
            let n = c.be(1, 2);
            c.pos += 3;
            if b0 == 0xdc {
                decode_array(l, c, n)?;
            } else {
                decode_map(l, c, n)?;
            }
        }
        0xdd | 0xdf => {
            c.need(5)?;
            let n = c.be(1, 4);
            c.pos += 5;
            if b0 == 0xdd {
                decode_array(l, c, n)?;
            } else {
                decode_map(l, c, n)?;
            }
        }
        _ if b0 & 0x80 == 0 => {
            ffi::lua_pushinteger(l, b0 as i64);
            c.pos += 1;
        }
        _ if b0 & 0xe0 == 0xe0 => {
            ffi::lua_pushinteger(l, b0 as i8 as i64);
            c.pos += 1;
        }
        _ if b0 & 0xe0 == 0xa0 => {
            let s = c.take(1, (b0 & 0x1f) as usize)?;
            push_bytes(l, s);
        }
        _ if b0 & 0xf0 == 0x90 => {
            c.pos += 1;
            decode_array(l, c, (b0 & 0xf) as u64)?;
        }
        _ if b0 & 0xf0 == 0x80 => {
            c.pos += 1;
            decode_map(l, c, (b0 & 0xf) as u64)?;
        }
        _ => return Err(DecodeErr::BadFmt),
    }
    Ok(())
}

/// `mp_unpack_full`: `limit` 0 with `offset` 0 decodes everything and
/// returns only the values.
unsafe fn unpack_full(l: *mut lua_State, limit: i64, offset: i64) -> Ret {
    let data = check_bytes(l, 1)?;
    let len = data.len();
    let decode_all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        // (The C code prints the input length as the limit.)
        return Err(Raise::error(format!(
            "Invalid request to unpack with offset of {} and limit of {}.",
            offset as i32, len as i32
        )));
    } else if offset as usize > len {
        return Err(Raise::error(format!(
            "Start offset {} greater than input length {}.",
            offset as i32, len as i32
        )));
    }
    let limit = if decode_all { i32::MAX as i64 } else { limit };
    let mut c = Cursor {
        data,
        pos: offset as usize,
        gauge: StackGauge::new(),
    };
    let mut cnt: c_int = 0;
    while c.left() > 0 && (cnt as i64) < limit {
        match decode_value(l, &mut c) {
            Ok(()) => {}
            Err(DecodeErr::Eof) => return Err(Raise::error("Missing bytes in input.")),
            Err(DecodeErr::BadFmt) => return Err(Raise::error("Bad data format in input.")),
            Err(DecodeErr::Lua(r)) => return Err(r),
        }
        cnt += 1;
    }
    if !decode_all {
        check_stack(l, 1, "in function mp_unpack_full")?;
        let next = if c.left() == 0 { -1 } else { c.pos as i64 };
        ffi::lua_pushinteger(l, next);
        ffi::lua_insert(l, 2);
        cnt += 1;
    }
    Ok(cnt)
}

unsafe fn unpack(l: *mut lua_State) -> Ret {
    unpack_full(l, 0, 0)
}

unsafe fn unpack_one(l: *mut lua_State) -> Ret {
    let offset = if ffi::lua_type(l, 2) <= ffi::LUA_TNIL {
        0
    } else {
        check_integer(l, 2)?
    };
    ffi::lua_settop(l, 1.min(ffi::lua_gettop(l)));
    unpack_full(l, 1, offset)
}

unsafe fn unpack_limit(l: *mut lua_State) -> Ret {
    let limit = check_integer(l, 2)?;
    let offset = if ffi::lua_type(l, 3) <= ffi::LUA_TNIL {
        0
    } else {
        check_integer(l, 3)?
    };
    ffi::lua_settop(l, 1);
    unpack_full(l, limit, offset)
}

lua_cfn!(c_pack => pack);
lua_cfn!(c_unpack => unpack);
lua_cfn!(c_unpack_one => unpack_one);
lua_cfn!(c_unpack_limit => unpack_limit);

/// Pushes the `cmsgpack` table.
///
/// # Safety
/// A valid state with free stack slots.
pub unsafe fn open(l: *mut lua_State) {
    push_funcs(
        l,
        &[
            (c"pack", c_pack),
            (c"unpack", c_unpack),
            (c"unpack_one", c_unpack_one),
            (c"unpack_limit", c_unpack_limit),
        ],
    );
    for (k, v) in [
        (c"_NAME", c"cmsgpack"),
        (c"_VERSION", c"lua-cmsgpack 0.4.0"),
        (c"_COPYRIGHT", c"Copyright (C) 2012, Salvatore Sanfilippo"),
        (c"_DESCRIPTION", c"MessagePack C implementation for Lua"),
    ] {
        ffi::lua_pushstring_(l, v.as_ptr());
        ffi::lua_setfield(l, -2, k.as_ptr());
    }
}
