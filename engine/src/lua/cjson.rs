//! `cjson`: lua-cjson 2.1.0 as Redis 7.0 bundles it (global `cjson`,
//! encode and decode nesting limits of 1000, invalid numbers refused when
//! encoding and accepted when decoding).

use super::{cast_i32, check_bytes, check_integer, lua_cfn, push_bytes, Raise, Ret, StackGauge};
use mlua::ffi::{self, lua_State};
use std::ffi::{c_int, CStr};

/// The module's settings, one per `cjson` table (`cjson.new()` makes
/// another), kept in a userdata that every function holds as upvalue 1.
/// Plain data: the userdata needs no finaliser.
#[repr(C)]
#[derive(Clone, Copy)]
struct Config {
    encode_sparse_convert: c_int,
    encode_sparse_ratio: c_int,
    encode_sparse_safe: c_int,
    encode_max_depth: c_int,
    /// 0 refuse, 1 allow ("inf", "nan"), 2 encode as null.
    encode_invalid_numbers: c_int,
    encode_number_precision: c_int,
    /// Only changes buffer reuse in C; kept to answer the setter.
    encode_keep_buffer: c_int,
    decode_invalid_numbers: c_int,
    decode_max_depth: c_int,
}

const DEFAULT_CONFIG: Config = Config {
    encode_sparse_convert: 0,
    encode_sparse_ratio: 2,
    encode_sparse_safe: 10,
    encode_max_depth: 1000,
    encode_invalid_numbers: 0,
    encode_number_precision: 14,
    encode_keep_buffer: 1,
    decode_invalid_numbers: 1,
    decode_max_depth: 1000,
};

unsafe fn config<'a>(l: *mut lua_State) -> Result<&'a mut Config, Raise> {
    let p = ffi::lua_touserdata(l, ffi::lua_upvalueindex(1)) as *mut Config;
    // SAFETY: upvalue 1 of every cjson function is the Config userdata
    // created by `new_module`; Lua keeps it alive while the function is.
    p.as_mut()
        .ok_or_else(|| Raise::error("BUG: Unable to fetch CJSON configuration"))
}

/// `json_arg_init`: at most `args` arguments, padded with nils.
unsafe fn arg_init<'a>(l: *mut lua_State, args: c_int) -> Result<&'a mut Config, Raise> {
    if ffi::lua_gettop(l) > args {
        return Err(Raise::arg(args + 1, "found too many arguments"));
    }
    while ffi::lua_gettop(l) < args {
        ffi::lua_pushnil(l);
    }
    config(l)
}

unsafe fn integer_option(
    l: *mut lua_State,
    idx: c_int,
    setting: &mut c_int,
    min: c_int,
    max: c_int,
) -> Result<(), Raise> {
    if ffi::lua_type(l, idx) != ffi::LUA_TNIL {
        let value = check_integer(l, idx)? as c_int;
        if !(min <= value && value <= max) {
            // lua-cjson always names argument 1 here.
            return Err(Raise::arg(
                1,
                format!("expected integer between {min} and {max}"),
            ));
        }
        *setting = value;
    }
    ffi::lua_pushinteger(l, *setting as i64);
    Ok(())
}

/// `json_enum_option`: a boolean or one of `options` by name; answers a
/// boolean for the off/on values and the name otherwise.
unsafe fn enum_option(
    l: *mut lua_State,
    idx: c_int,
    setting: &mut c_int,
    options: &[&str],
) -> Result<(), Raise> {
    if ffi::lua_type(l, idx) != ffi::LUA_TNIL {
        if ffi::lua_type(l, idx) == ffi::LUA_TBOOLEAN {
            *setting = ffi::lua_toboolean(l, idx);
        } else {
            let name = check_bytes(l, idx)?;
            match options.iter().position(|o| o.as_bytes() == name) {
                Some(i) => *setting = i as c_int,
                None => {
                    let mut msg = b"invalid option '".to_vec();
                    msg.extend_from_slice(name);
                    msg.push(b'\'');
                    return Err(Raise::Arg(idx, msg));
                }
            }
        }
    }
    if *setting == 0 || *setting == 1 {
        ffi::lua_pushboolean(l, *setting);
    } else {
        let name = options.get(*setting as usize).copied().unwrap_or("");
        push_bytes(l, name.as_bytes());
    }
    Ok(())
}

const ON_OFF: &[&str] = &["off", "on"];

unsafe fn cfg_encode_sparse_array(l: *mut lua_State) -> Ret {
    let cfg = arg_init(l, 3)?;
    enum_option(l, 1, &mut cfg.encode_sparse_convert, ON_OFF)?;
    integer_option(l, 2, &mut cfg.encode_sparse_ratio, 0, c_int::MAX)?;
    integer_option(l, 3, &mut cfg.encode_sparse_safe, 0, c_int::MAX)?;
    Ok(3)
}

unsafe fn cfg_encode_max_depth(l: *mut lua_State) -> Ret {
    let cfg = arg_init(l, 1)?;
    integer_option(l, 1, &mut cfg.encode_max_depth, 1, c_int::MAX)?;
    Ok(1)
}

unsafe fn cfg_decode_max_depth(l: *mut lua_State) -> Ret {
    let cfg = arg_init(l, 1)?;
    integer_option(l, 1, &mut cfg.decode_max_depth, 1, c_int::MAX)?;
    Ok(1)
}

unsafe fn cfg_encode_number_precision(l: *mut lua_State) -> Ret {
    let cfg = arg_init(l, 1)?;
    integer_option(l, 1, &mut cfg.encode_number_precision, 1, 14)?;
    Ok(1)
}

unsafe fn cfg_encode_keep_buffer(l: *mut lua_State) -> Ret {
    let cfg = arg_init(l, 1)?;
    enum_option(l, 1, &mut cfg.encode_keep_buffer, ON_OFF)?;
    Ok(1)
}

unsafe fn cfg_encode_invalid_numbers(l: *mut lua_State) -> Ret {
    let cfg = arg_init(l, 1)?;
    enum_option(
        l,
        1,
        &mut cfg.encode_invalid_numbers,
        &["off", "on", "null"],
    )?;
    Ok(1)
}

unsafe fn cfg_decode_invalid_numbers(l: *mut lua_State) -> Ret {
    let cfg = arg_init(l, 1)?;
    enum_option(l, 1, &mut cfg.decode_invalid_numbers, ON_OFF)?;
    Ok(1)
}

// ===== Encoding =====

/// C's `printf("%.<precision>g", x)` (glibc), which lua-cjson uses for
/// every number.
pub fn fmt_g(x: f64, precision: usize) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    let p = precision.max(1);
    // %e with p-1 decimals decides the exponent (after rounding), as C's
    // %g does; both styles then show the same p significant digits.
    let sci = format!("{:.*e}", p - 1, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= p as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(mantissa), exp.unsigned_abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip(&format!("{:.*}", decimals, x))
    }
}

/// Encoding escapes: control characters, `"`, `\`, `/` and DEL.
fn escape(b: u8) -> Option<&'static str> {
    Some(match b {
        b'\x08' => "\\b",
        b'\t' => "\\t",
        b'\n' => "\\n",
        b'\x0c' => "\\f",
        b'\r' => "\\r",
        b'"' => "\\\"",
        b'\\' => "\\\\",
        b'/' => "\\/",
        0..=0x1f | 0x7f => return None,
        _ => return Some(""),
    })
}

fn append_string(json: &mut Vec<u8>, s: &[u8]) {
    json.push(b'"');
    for &b in s {
        match escape(b) {
            Some("") => json.push(b),
            Some(e) => json.extend_from_slice(e.as_bytes()),
            None => json.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
    }
    json.push(b'"');
}

/// `json_encode_exception`: "Cannot serialise <type>: <reason>".
unsafe fn encode_exception(l: *mut lua_State, idx: c_int, reason: &str) -> Raise {
    let tname = CStr::from_ptr(ffi::lua_typename(l, ffi::lua_type(l, idx)));
    Raise::error(format!(
        "Cannot serialise {}: {reason}",
        tname.to_string_lossy()
    ))
}

unsafe fn append_number(
    l: *mut lua_State,
    cfg: &Config,
    json: &mut Vec<u8>,
    idx: c_int,
) -> Result<(), Raise> {
    let num = ffi::lua_tonumber(l, idx);
    match cfg.encode_invalid_numbers {
        0 => {
            if num.is_infinite() || num.is_nan() {
                return Err(encode_exception(l, idx, "must not be NaN or Inf"));
            }
        }
        1 => {
            // "nan" whatever its sign, as lua-cjson does.
            if num.is_nan() {
                json.extend_from_slice(b"nan");
                return Ok(());
            }
        }
        _ => {
            if num.is_infinite() || num.is_nan() {
                json.extend_from_slice(b"null");
                return Ok(());
            }
        }
    }
    json.extend_from_slice(fmt_g(num, cfg.encode_number_precision as usize).as_bytes());
    Ok(())
}

/// `lua_array_length`: the table's array length, or -1 for an object
/// (a non-positive-integer key, or too sparse when conversion is on).
unsafe fn array_length(l: *mut lua_State, cfg: &Config) -> Result<i32, Raise> {
    let mut max: i32 = 0;
    let mut items: i32 = 0;
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, -2) != 0 {
        if ffi::lua_type(l, -2) == ffi::LUA_TNUMBER {
            let k = ffi::lua_tonumber(l, -2);
            if k != 0.0 && k.floor() == k && k >= 1.0 {
                // `max = k` is a C double-to-int conversion.
                if k > max as f64 {
                    max = cast_i32(k);
                }
                items = items.wrapping_add(1);
                ffi::lua_settop(l, -2);
                continue;
            }
        }
        ffi::lua_settop(l, -3);
        return Ok(-1);
    }
    if cfg.encode_sparse_ratio > 0
        && max > items.wrapping_mul(cfg.encode_sparse_ratio)
        && max > cfg.encode_sparse_safe
    {
        if cfg.encode_sparse_convert == 0 {
            return Err(encode_exception(l, -1, "excessively sparse array"));
        }
        return Ok(-1);
    }
    Ok(max)
}

/// Serialises the value on top of the stack (left there).
unsafe fn append_data(
    l: *mut lua_State,
    cfg: &Config,
    depth: c_int,
    json: &mut Vec<u8>,
    gauge: StackGauge,
) -> Result<(), Raise> {
    match ffi::lua_type(l, -1) {
        ffi::LUA_TSTRING => append_string(json, super::to_bytes(l, -1).unwrap_or_default()),
        ffi::LUA_TNUMBER => append_number(l, cfg, json, -1)?,
        ffi::LUA_TBOOLEAN => json.extend_from_slice(if ffi::lua_toboolean(l, -1) != 0 {
            b"true"
        } else {
            b"false"
        }),
        ffi::LUA_TTABLE => {
            let depth = depth + 1;
            // Room for key, value and an error message, as lua-cjson checks.
            if depth > cfg.encode_max_depth || !gauge.ok() || ffi::lua_checkstack(l, 3) == 0 {
                return Err(Raise::error(format!(
                    "Cannot serialise, excessive nesting ({depth})"
                )));
            }
            let len = array_length(l, cfg)?;
            if len > 0 {
                json.push(b'[');
                for i in 1..=len {
                    if i > 1 {
                        json.push(b',');
                    }
                    ffi::lua_rawgeti_(l, -1, i);
                    append_data(l, cfg, depth, json, gauge)?;
                    ffi::lua_settop(l, -2);
                }
                json.push(b']');
            } else {
                json.push(b'{');
                let mut comma = false;
                ffi::lua_pushnil(l);
                while ffi::lua_next(l, -2) != 0 {
                    if comma {
                        json.push(b',');
                    }
                    comma = true;
                    match ffi::lua_type(l, -2) {
                        ffi::LUA_TNUMBER => {
                            json.push(b'"');
                            append_number(l, cfg, json, -2)?;
                            json.extend_from_slice(b"\":");
                        }
                        ffi::LUA_TSTRING => {
                            append_string(json, super::to_bytes(l, -2).unwrap_or_default());
                            json.push(b':');
                        }
                        _ => {
                            return Err(encode_exception(
                                l,
                                -2,
                                "table key must be a number or string",
                            ))
                        }
                    }
                    append_data(l, cfg, depth, json, gauge)?;
                    ffi::lua_settop(l, -2);
                }
                json.push(b'}');
            }
        }
        ffi::LUA_TNIL => json.extend_from_slice(b"null"),
        ffi::LUA_TLIGHTUSERDATA if ffi::lua_touserdata(l, -1).is_null() => {
            json.extend_from_slice(b"null")
        }
        _ => return Err(encode_exception(l, -1, "type not supported")),
    }
    Ok(())
}

unsafe fn encode(l: *mut lua_State) -> Ret {
    let cfg = *config(l)?;
    if ffi::lua_gettop(l) != 1 {
        return Err(Raise::arg(1, "expected 1 argument"));
    }
    let mut json = Vec::new();
    append_data(l, &cfg, 0, &mut json, StackGauge::new())?;
    push_bytes(l, &json);
    Ok(1)
}

// ===== Decoding =====

#[derive(Clone, Copy, PartialEq, Debug)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str,
    Number(f64),
    Boolean(bool),
    Null,
    Colon,
    Comma,
    End,
    /// A token error with its description.
    Error(&'static str),
}

impl Tok {
    fn name(self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str => "T_STRING",
            Tok::Number(_) => "T_NUMBER",
            Tok::Boolean(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(e) => e,
        }
    }
}

struct Parser<'a> {
    /// The JSON text; reads past its end see the NUL that terminates
    /// every Lua string, which is what the C scanner stops on.
    data: &'a [u8],
    ptr: usize,
    cfg: Config,
    depth: c_int,
    /// The last string token's decoded bytes.
    tmp: Vec<u8>,
    gauge: StackGauge,
}

fn hexdigit(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

impl Parser<'_> {
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn starts_with(&self, s: &[u8]) -> bool {
        self.data.get(self.ptr..).is_some_and(|d| d.starts_with(s))
    }

    fn hex4(&self, i: usize) -> Option<u32> {
        let mut v = 0;
        for k in 0..4 {
            v = (v << 4) | hexdigit(self.at(i + k))?;
        }
        Some(v)
    }

    /// `json_append_unicode_escape` at `\uXXXX` (with a surrogate pair).
    fn unicode_escape(&mut self) -> Option<()> {
        let mut cp = self.hex4(self.ptr + 2)?;
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 {
                return None;
            }
            if self.at(self.ptr + 6) != b'\\' || self.at(self.ptr + 7) != b'u' {
                return None;
            }
            let low = self.hex4(self.ptr + 8)?;
            if low & 0xFC00 != 0xDC00 {
                return None;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        let mut utf8 = [0u8; 4];
        let n = if cp <= 0x7F {
            utf8[0] = cp as u8;
            1
        } else if cp <= 0x7FF {
            utf8[0] = (cp >> 6) as u8 | 0xC0;
            utf8[1] = (cp & 0x3F) as u8 | 0x80;
            2
        } else if cp <= 0xFFFF {
            utf8[0] = (cp >> 12) as u8 | 0xE0;
            utf8[1] = ((cp >> 6) & 0x3F) as u8 | 0x80;
            utf8[2] = (cp & 0x3F) as u8 | 0x80;
            3
        } else {
            utf8[0] = (cp >> 18) as u8 | 0xF0;
            utf8[1] = ((cp >> 12) & 0x3F) as u8 | 0x80;
            utf8[2] = ((cp >> 6) & 0x3F) as u8 | 0x80;
            utf8[3] = (cp & 0x3F) as u8 | 0x80;
            4
        };
        self.tmp.extend_from_slice(&utf8[..n]);
        self.ptr += len;
        Some(())
    }

    /// A string token; errors leave `ptr` at the offending byte.
    fn string_token(&mut self) -> Tok {
        self.ptr += 1;
        self.tmp.clear();
        loop {
            let ch = self.at(self.ptr);
            if ch == b'"' {
                break;
            }
            if ch == 0 {
                return Tok::Error("unexpected end of string");
            }
            let mut out = ch;
            if ch == b'\\' {
                out = match self.at(self.ptr + 1) {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 0x08,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'f' => 0x0c,
                    b'r' => b'\r',
                    b'u' => {
                        if self.unicode_escape().is_some() {
                            continue;
                        }
                        return Tok::Error("invalid unicode escape code");
                    }
                    _ => return Tok::Error("invalid escape code"),
                };
                self.ptr += 1;
            }
            self.tmp.push(out);
            self.ptr += 1;
        }
        self.ptr += 1;
        Tok::Str
    }

    /// `json_is_invalid_number`: forms strtod accepts but JSON does not.
    fn is_invalid_number(&self) -> bool {
        let mut p = self.ptr;
        if self.at(p) == b'+' {
            return true;
        }
        if self.at(p) == b'-' {
            p += 1;
        }
        let c = self.at(p);
        if c == b'0' {
            let c2 = self.at(p + 1);
            return c2 | 0x20 == b'x' || c2.is_ascii_digit();
        } else if c <= b'9' {
            return false;
        }
        let word = |w: &[u8]| (0..3).all(|i| self.at(p + i).to_ascii_lowercase() == w[i]);
        word(b"inf") || word(b"nan")
    }

    fn number_token(&mut self) -> Tok {
        match strtod(self.data, self.ptr) {
            Some((v, end)) => {
                self.ptr = end;
                Tok::Number(v)
            }
            None => Tok::Error("invalid number"),
        }
    }

    /// The next token and its 0-based start.
    fn next_token(&mut self) -> (Tok, usize) {
        while matches!(self.at(self.ptr), b' ' | b'\t' | b'\n' | b'\r') {
            self.ptr += 1;
        }
        let start = self.ptr;
        let ch = self.at(self.ptr);
        let single = match ch {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            _ => None,
        };
        if let Some(t) = single {
            self.ptr += 1;
            return (t, start);
        }
        if ch == 0 {
            return (Tok::End, start);
        }
        if !matches!(
            ch,
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'"' | b'+' | b'-' | b'0'..=b'9'
        ) {
            return (Tok::Error("invalid token"), start);
        }
        // Errors inside a token are reported where scanning stopped.
        let tok = if ch == b'"' {
            self.string_token()
        } else if ch == b'-' || ch.is_ascii_digit() {
            if self.cfg.decode_invalid_numbers == 0 && self.is_invalid_number() {
                Tok::Error("invalid number")
            } else {
                self.number_token()
            }
        } else if self.starts_with(b"true") {
            self.ptr += 4;
            Tok::Boolean(true)
        } else if self.starts_with(b"false") {
            self.ptr += 5;
            Tok::Boolean(false)
        } else if self.starts_with(b"null") {
            self.ptr += 4;
            Tok::Null
        } else if self.cfg.decode_invalid_numbers != 0 && self.is_invalid_number() {
            self.number_token()
        } else {
            Tok::Error("invalid token")
        };
        let index = if matches!(tok, Tok::Error(_)) {
            self.ptr
        } else {
            start
        };
        (tok, index)
    }

    fn parse_error(&self, expected: &str, tok: Tok, index: usize) -> Raise {
        Raise::error(format!(
            "Expected {expected} but found {} at character {}",
            tok.name(),
            index + 1
        ))
    }

    unsafe fn descend(&mut self, l: *mut lua_State, slots: c_int) -> Result<(), Raise> {
        self.depth += 1;
        if self.depth <= self.cfg.decode_max_depth
            && self.gauge.ok()
            && ffi::lua_checkstack(l, slots) != 0
        {
            return Ok(());
        }
        Err(Raise::error(format!(
            "Found too many nested data structures ({}) at character {}",
            self.depth, self.ptr
        )))
    }

    unsafe fn object(&mut self, l: *mut lua_State) -> Result<(), Raise> {
        self.descend(l, 3)?;
        ffi::lua_createtable(l, 0, 0);
        let (mut tok, mut index) = self.next_token();
        if tok == Tok::ObjEnd {
            self.depth -= 1;
            return Ok(());
        }
        loop {
            if tok != Tok::Str {
                return Err(self.parse_error("object key string", tok, index));
            }
            push_bytes(l, &self.tmp);
            (tok, index) = self.next_token();
            if tok != Tok::Colon {
                return Err(self.parse_error("colon", tok, index));
            }
            (tok, index) = self.next_token();
            self.value(l, tok, index)?;
            ffi::lua_rawset(l, -3);
            (tok, index) = self.next_token();
            if tok == Tok::ObjEnd {
                self.depth -= 1;
                return Ok(());
            }
            if tok != Tok::Comma {
                return Err(self.parse_error("comma or object end", tok, index));
            }
            (tok, index) = self.next_token();
        }
    }

    unsafe fn array(&mut self, l: *mut lua_State) -> Result<(), Raise> {
        self.descend(l, 2)?;
        ffi::lua_createtable(l, 0, 0);
        let (mut tok, mut index) = self.next_token();
        if tok == Tok::ArrEnd {
            self.depth -= 1;
            return Ok(());
        }
        let mut i: c_int = 1;
        loop {
            self.value(l, tok, index)?;
            ffi::lua_rawseti_(l, -2, i);
            i = i.wrapping_add(1);
            (tok, index) = self.next_token();
            if tok == Tok::ArrEnd {
                self.depth -= 1;
                return Ok(());
            }
            if tok != Tok::Comma {
                return Err(self.parse_error("comma or array end", tok, index));
            }
            (tok, index) = self.next_token();
        }
    }

    /// Pushes the value starting with `tok`. Recursion is bounded by
    /// `decode_max_depth` and by Lua's stack limit (checked in `descend`).
    unsafe fn value(&mut self, l: *mut lua_State, tok: Tok, index: usize) -> Result<(), Raise> {
        match tok {
            Tok::Str => push_bytes(l, &self.tmp),
            Tok::Number(n) => ffi::lua_pushnumber(l, n),
            Tok::Boolean(b) => ffi::lua_pushboolean(l, b as c_int),
            Tok::ObjBegin => self.object(l)?,
            Tok::ArrBegin => self.array(l)?,
            Tok::Null => ffi::lua_pushlightuserdata(l, std::ptr::null_mut()),
            _ => return Err(self.parse_error("value", tok, index)),
        }
        Ok(())
    }
}

/// glibc `strtod` from `start` (which is never whitespace here): decimal,
/// hexadecimal (`0x1.8p3`), `inf`/`infinity`, `nan`/`nan(...)`, with an
/// optional sign. `None` when no number starts there.
pub fn strtod(s: &[u8], start: usize) -> Option<(f64, usize)> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut p = start;
    let negative = at(p) == b'-';
    if matches!(at(p), b'+' | b'-') {
        p += 1;
    }
    let sign = |v: f64| if negative { -v } else { v };
    let word = |p: usize, w: &[u8]| (0..w.len()).all(|i| at(p + i).to_ascii_lowercase() == w[i]);
    if word(p, b"inf") {
        let end = if word(p + 3, b"inity") { p + 8 } else { p + 3 };
        return Some((sign(f64::INFINITY), end));
    }
    if word(p, b"nan") {
        let mut end = p + 3;
        if at(end) == b'(' {
            let mut q = end + 1;
            while at(q).is_ascii_alphanumeric() || at(q) == b'_' {
                q += 1;
            }
            if at(q) == b')' {
                end = q + 1;
            }
        }
        return Some((sign(f64::NAN), end));
    }
    if at(p) == b'0' && at(p + 1) | 0x20 == b'x' {
        if let Some((v, end)) = hex_float(s, p + 2) {
            return Some((sign(v), end));
        }
        // "0x" without digits: just the 0.
        return Some((sign(0.0), p + 1));
    }
    let digits_from = |mut q: usize| {
        while at(q).is_ascii_digit() {
            q += 1;
        }
        q
    };
    let int_end = digits_from(p);
    let mut end = int_end;
    let mut any = int_end > p;
    if at(end) == b'.' {
        let frac_end = digits_from(end + 1);
        any |= frac_end > end + 1;
        end = frac_end;
    }
    if !any {
        return None;
    }
    if at(end) | 0x20 == b'e' {
        let mut q = end + 1;
        if matches!(at(q), b'+' | b'-') {
            q += 1;
        }
        let exp_end = digits_from(q);
        if exp_end > q {
            end = exp_end;
        }
    }
    let text = std::str::from_utf8(s.get(p..end)?).ok()?;
    // Rust's parser rounds correctly, like glibc; it wants a digit before
    // an exponent, which "5." already has and ".5" gets from the prefix.
    let v: f64 = if text.starts_with('.') {
        format!("0{text}").parse().ok()?
    } else {
        text.parse().ok()?
    };
    Some((sign(v), end))
}

/// The digits of a hexadecimal float after "0x": mantissa with optional
/// point, optional binary exponent `p[+-]d+`.
fn hex_float(s: &[u8], start: usize) -> Option<(f64, usize)> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut p = start;
    let mut mantissa: u64 = 0;
    let mut exp: i64 = 0;
    let mut sticky = false;
    let mut any = false;
    let mut seen_point = false;
    loop {
        let c = at(p);
        if c == b'.' && !seen_point {
            seen_point = true;
            p += 1;
            continue;
        }
        let Some(d) = hexdigit(c) else { break };
        any = true;
        // Keep 60 significant bits; further digits only shift or stick.
        if mantissa >> 56 == 0 {
            mantissa = (mantissa << 4) | d as u64;
            if seen_point {
                exp -= 4;
            }
        } else {
            sticky |= d != 0;
            if !seen_point {
                exp += 4;
            }
        }
        p += 1;
    }
    if !any {
        return None;
    }
    if at(p) | 0x20 == b'p' {
        let mut q = p + 1;
        let neg = at(q) == b'-';
        if matches!(at(q), b'+' | b'-') {
            q += 1;
        }
        if at(q).is_ascii_digit() {
            let mut e: i64 = 0;
            while at(q).is_ascii_digit() {
                e = (e * 10 + (at(q) - b'0') as i64).min(1 << 20);
                q += 1;
            }
            exp += if neg { -e } else { e };
            p = q;
        }
    }
    // Scale in steps whose factors are normal powers of two, so only the
    // final step can round (into the subnormals) or overflow.
    let mut v = (mantissa | sticky as u64) as f64;
    let mut exp = exp.clamp(-2200, 2200) as i32;
    while exp > 1000 {
        v *= 2f64.powi(1000);
        exp -= 1000;
    }
    while exp < -1000 {
        v *= 2f64.powi(-1000);
        exp += 1000;
    }
    Some((v * 2f64.powi(exp), p))
}

unsafe fn decode(l: *mut lua_State) -> Ret {
    if ffi::lua_gettop(l) != 1 {
        return Err(Raise::arg(1, "expected 1 argument"));
    }
    let cfg = *config(l)?;
    let data = check_bytes(l, 1)?;
    // Only the first bytes are checked: enough to tell UTF-16/32 apart.
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return Err(Raise::error(
            "JSON parser does not support UTF-16 or UTF-32",
        ));
    }
    let mut p = Parser {
        data,
        ptr: 0,
        cfg,
        depth: 0,
        tmp: Vec::new(),
        gauge: StackGauge::new(),
    };
    let (tok, index) = p.next_token();
    p.value(l, tok, index)?;
    let (tok, index) = p.next_token();
    if tok != Tok::End {
        return Err(p.parse_error("the end", tok, index));
    }
    Ok(1)
}

lua_cfn!(c_encode => encode);
lua_cfn!(c_decode => decode);
lua_cfn!(c_encode_sparse_array => cfg_encode_sparse_array);
lua_cfn!(c_encode_max_depth => cfg_encode_max_depth);
lua_cfn!(c_decode_max_depth => cfg_decode_max_depth);
lua_cfn!(c_encode_number_precision => cfg_encode_number_precision);
lua_cfn!(c_encode_keep_buffer => cfg_encode_keep_buffer);
lua_cfn!(c_encode_invalid_numbers => cfg_encode_invalid_numbers);
lua_cfn!(c_decode_invalid_numbers => cfg_decode_invalid_numbers);
lua_cfn!(c_new => new_module_fn);

unsafe fn new_module_fn(l: *mut lua_State) -> Ret {
    open(l);
    Ok(1)
}

/// Pushes a `cjson` table with its own settings (`cjson.new()` too).
///
/// # Safety
/// A valid state with free stack slots.
pub unsafe fn open(l: *mut lua_State) {
    let funcs: [(&CStr, ffi::lua_CFunction); 10] = [
        (c"encode", c_encode),
        (c"decode", c_decode),
        (c"encode_sparse_array", c_encode_sparse_array),
        (c"encode_max_depth", c_encode_max_depth),
        (c"decode_max_depth", c_decode_max_depth),
        (c"encode_number_precision", c_encode_number_precision),
        (c"encode_keep_buffer", c_encode_keep_buffer),
        (c"encode_invalid_numbers", c_encode_invalid_numbers),
        (c"decode_invalid_numbers", c_decode_invalid_numbers),
        (c"new", c_new),
    ];
    ffi::lua_createtable(l, 0, 13);
    let cfg = ffi::lua_newuserdata(l, std::mem::size_of::<Config>()) as *mut Config;
    // SAFETY: a fresh block of the right size from Lua's allocator, which
    // aligns for any C type.
    cfg.write(DEFAULT_CONFIG);
    for (name, f) in funcs {
        ffi::lua_pushvalue(l, -1);
        ffi::lua_pushcclosure(l, f, 1);
        ffi::lua_setfield(l, -3, name.as_ptr());
    }
    ffi::lua_settop(l, -2);
    ffi::lua_pushlightuserdata(l, std::ptr::null_mut());
    ffi::lua_setfield(l, -2, c"null".as_ptr());
    for (k, v) in [(c"_NAME", c"cjson"), (c"_VERSION", c"2.1.0")] {
        ffi::lua_pushstring_(l, v.as_ptr());
        ffi::lua_setfield(l, -2, k.as_ptr());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt_g_matches_printf() {
        for (x, p, want) in [
            (0.0, 14, "0"),
            (-0.0, 14, "-0"),
            (1.0, 14, "1"),
            (0.1, 14, "0.1"),
            (1e14, 14, "1e+14"),
            (123456789012345.0, 14, "1.2345678901234e+14"),
            (99999999999999.0, 14, "99999999999999"),
            (0.0001, 14, "0.0001"),
            (0.00001, 14, "1e-05"),
            (1.0 / 3.0, 14, "0.33333333333333"),
            (1.0 / 3.0, 3, "0.333"),
            (2.5, 1, "2"),
            (1e300, 14, "1e+300"),
            (f64::INFINITY, 14, "inf"),
            (-f64::INFINITY, 14, "-inf"),
        ] {
            assert_eq!(fmt_g(x, p), want, "{x} %.{p}g");
        }
    }

    #[test]
    fn strtod_forms() {
        let p = |s: &str| strtod(s.as_bytes(), 0);
        assert_eq!(p("12abc"), Some((12.0, 2)));
        assert_eq!(p("-1.5e3,"), Some((-1500.0, 6)));
        assert_eq!(p("1e"), Some((1.0, 1)));
        assert_eq!(p("0x10"), Some((16.0, 4)));
        assert_eq!(p("0x1p4"), Some((16.0, 5)));
        assert_eq!(p("0x1p-1074"), Some((5e-324, 9)));
        assert_eq!(p("0x1p-1080"), Some((0.0, 9)));
        assert_eq!(p("0x1p1024"), Some((f64::INFINITY, 8)));
        assert_eq!(p("0x"), Some((0.0, 1)));
        assert_eq!(p("-Infinity"), Some((f64::NEG_INFINITY, 9)));
        assert_eq!(p("5."), Some((5.0, 2)));
        assert_eq!(p("-"), None);
        assert!(p("nan(abc)").is_some_and(|(v, e)| v.is_nan() && e == 8));
    }
}
