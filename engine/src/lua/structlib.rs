//! `struct`: Roberto Ierusalimschy's struct library as Redis 7.0 bundles it
//! (with Redis's overflow and offset fixes). Formats: `>` `<` `![n]`
//! endianness and alignment, `x` padding, `b B h H l L T iN IN` integers,
//! `f d` floats, `cN` fixed strings (`c0`: whole string / previous number),
//! `s` zero-terminated strings, spaces ignored.

use super::{
    cast_i64, cast_u64, check_bytes, check_integer, check_number, check_stack, lua_cfn, push_bytes,
    push_funcs, Raise, Ret,
};
use mlua::ffi::{self, lua_State};

/// Redis limits integral sizes to 32 bytes.
const MAXINTSIZE: i32 = 32;
/// `MAXALIGN` on x86-64: the alignment of double (8) vs sizeof(int) (4).
const MAXALIGN: i32 = 8;

#[derive(Clone, Copy, PartialEq)]
enum Endian {
    Big,
    Little,
}

struct Header {
    endian: Endian,
    align: usize,
}

impl Header {
    fn new() -> Header {
        Header {
            endian: Endian::Little,
            align: 1,
        }
    }
}

/// A format string read as C does: it ends at the first NUL.
struct Fmt<'a> {
    s: &'a [u8],
    i: usize,
}

impl Fmt<'_> {
    fn peek(&self) -> u8 {
        self.s.get(self.i).copied().unwrap_or(0)
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        if c == 0 {
            return None;
        }
        self.i += 1;
        Some(c)
    }
    /// `getnum`: an optional decimal number, guarded against int overflow.
    fn num(&mut self, default: i32) -> Result<i32, Raise> {
        if !self.peek().is_ascii_digit() {
            return Ok(default);
        }
        let mut a: i32 = 0;
        while self.peek().is_ascii_digit() {
            let d = (self.peek() - b'0') as i32;
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return Err(Raise::error("integral size overflow"));
            }
            a = a * 10 + d;
            self.i += 1;
        }
        Ok(a)
    }
}

/// `optsize`: the size an option occupies (0 for the control options and
/// for `s`, whose size depends on the data).
fn optsize(opt: u8, fmt: &mut Fmt) -> Result<usize, Raise> {
    Ok(match opt {
        b'B' | b'b' => 1,
        b'H' | b'h' => 2,
        b'L' | b'l' | b'T' => 8,
        b'f' => 4,
        b'd' => 8,
        b'x' => 1,
        b'c' => fmt.num(1)? as usize,
        b'i' | b'I' => {
            let sz = fmt.num(4)?;
            if sz > MAXINTSIZE {
                return Err(Raise::error(format!(
                    "integral size {sz} is larger than limit of {MAXINTSIZE}"
                )));
            }
            sz as usize
        }
        _ => 0,
    })
}

/// `gettoalign`: padding needed before an item of `size` at `len`.
fn gettoalign(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size.wrapping_sub(len & size.wrapping_sub(1))) & size.wrapping_sub(1)
}

/// `controloptions`: endianness, alignment, spaces; anything else is an
/// invalid option.
fn controloptions(opt: u8, fmt: &mut Fmt, h: &mut Header) -> Result<(), Raise> {
    match opt {
        b' ' => {}
        b'>' => h.endian = Endian::Big,
        b'<' => h.endian = Endian::Little,
        b'!' => {
            let a = fmt.num(MAXALIGN)?;
            if !(a > 0 && a & (a - 1) == 0) {
                return Err(Raise::error(format!("alignment {a} is not a power of 2")));
            }
            h.align = a as usize;
        }
        _ => {
            let mut msg = b"invalid format option '".to_vec();
            msg.push(opt);
            msg.push(b'\'');
            return Err(Raise::Arg(1, msg));
        }
    }
    Ok(())
}

fn putinteger(out: &mut Vec<u8>, n: f64, endian: Endian, size: usize) {
    let mut value: u64 = if n < 0.0 {
        cast_i64(n) as u64
    } else {
        cast_u64(n)
    };
    let mut buf = [0u8; MAXINTSIZE as usize];
    let buf = &mut buf[..size];
    if endian == Endian::Little {
        for b in buf.iter_mut() {
            *b = value as u8;
            value >>= 8;
        }
    } else {
        for b in buf.iter_mut().rev() {
            *b = value as u8;
            value >>= 8;
        }
    }
    out.extend_from_slice(buf);
}

unsafe fn pack(l: *mut lua_State) -> Ret {
    let fmt = check_bytes(l, 1)?;
    let mut fmt = Fmt { s: fmt, i: 0 };
    let mut h = Header::new();
    let mut arg = 2;
    // The C code pushes a nil to separate the arguments from its string
    // buffer: a missing argument right after the last one reads as nil
    // ("got nil", not "got no value").
    ffi::lua_pushnil(l);
    let mut out: Vec<u8> = Vec::new();
    while let Some(opt) = fmt.next() {
        let mut size = optsize(opt, &mut fmt)?;
        let toalign = gettoalign(out.len(), &h, opt, size);
        out.resize(out.len() + toalign, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(l, arg)?;
                arg += 1;
                putinteger(&mut out, n, h.endian, size);
            }
            b'x' => out.push(0),
            b'f' => {
                let f = check_number(l, arg)? as f32;
                arg += 1;
                out.extend_from_slice(&match h.endian {
                    Endian::Little => f.to_le_bytes(),
                    Endian::Big => f.to_be_bytes(),
                });
            }
            b'd' => {
                let d = check_number(l, arg)?;
                arg += 1;
                out.extend_from_slice(&match h.endian {
                    Endian::Little => d.to_le_bytes(),
                    Endian::Big => d.to_be_bytes(),
                });
            }
            b'c' | b's' => {
                let s = check_bytes(l, arg)?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                // The C code reports the already-advanced argument number.
                if s.len() < size {
                    return Err(Raise::arg(arg, "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => controloptions(opt, &mut fmt, &mut h)?,
        }
    }
    push_bytes(l, &out);
    Ok(1)
}

fn getinteger(b: &[u8], endian: Endian, signed: bool) -> f64 {
    let size = b.len();
    let mut v: u64 = 0;
    // Bytes beyond the eighth shift out of the 64-bit accumulator, as in C.
    let fold = |v: u64, byte: &u8| (v.wrapping_shl(8)) | *byte as u64;
    v = match endian {
        Endian::Big => b.iter().fold(v, fold),
        Endian::Little => b.iter().rev().fold(v, fold),
    };
    if !signed {
        return v as f64;
    }
    // `~0 << (size*8 - 1)`: x86 masks the shift count to 6 bits.
    let mask = u64::MAX.wrapping_shl(((size * 8).wrapping_sub(1) & 63) as u32);
    if v & mask != 0 {
        v |= mask;
    }
    v as i64 as f64
}

unsafe fn unpack(l: *mut lua_State) -> Ret {
    let fmt = check_bytes(l, 1)?;
    let data = check_bytes(l, 2)?;
    let ld = data.len();
    let pos = if ffi::lua_type(l, 3) <= ffi::LUA_TNIL {
        1
    } else {
        check_integer(l, 3)?
    };
    // `size_t pos`: a negative offset wraps to a huge one and then fails
    // the length check, as in Redis.
    let mut pos = pos as usize;
    if pos == 0 {
        return Err(Raise::arg(3, "offset must be 1 or greater"));
    }
    pos -= 1;
    let mut fmt = Fmt { s: fmt, i: 0 };
    let mut h = Header::new();
    let mut n: i32 = 0;
    let too_short = || Raise::arg(2, "data string too short");
    while let Some(opt) = fmt.next() {
        let mut size = optsize(opt, &mut fmt)?;
        pos = pos.wrapping_add(gettoalign(pos, &h, opt, size));
        if !(size <= ld && pos <= ld - size) {
            return Err(too_short());
        }
        check_stack(l, 2, "too many results")?;
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let v = getinteger(&data[pos..pos + size], h.endian, opt.is_ascii_lowercase());
                ffi::lua_pushnumber(l, v);
                n += 1;
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let f = match h.endian {
                    Endian::Little => f32::from_le_bytes(b),
                    Endian::Big => f32::from_be_bytes(b),
                };
                ffi::lua_pushnumber(l, f as f64);
                n += 1;
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                let d = match h.endian {
                    Endian::Little => f64::from_le_bytes(b),
                    Endian::Big => f64::from_be_bytes(b),
                };
                ffi::lua_pushnumber(l, d);
                n += 1;
            }
            b'c' => {
                if size == 0 {
                    if n == 0 || ffi::lua_isnumber(l, -1) == 0 {
                        return Err(Raise::error("format 'c0' needs a previous size"));
                    }
                    size = cast_u64(ffi::lua_tonumber(l, -1)) as usize;
                    ffi::lua_settop(l, -2);
                    n -= 1;
                    if !(size <= ld && pos <= ld - size) {
                        return Err(too_short());
                    }
                }
                push_bytes(l, &data[pos..pos + size]);
                n += 1;
            }
            b's' => {
                let Some(end) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(Raise::error("unfinished string in data"));
                };
                push_bytes(l, &data[pos..pos + end]);
                size = end + 1;
                n += 1;
            }
            _ => controloptions(opt, &mut fmt, &mut h)?,
        }
        pos = pos.wrapping_add(size);
    }
    ffi::lua_pushinteger(l, pos.wrapping_add(1) as i64);
    Ok(n + 1)
}

unsafe fn size(l: *mut lua_State) -> Ret {
    let fmt = check_bytes(l, 1)?;
    let mut fmt = Fmt { s: fmt, i: 0 };
    let mut h = Header::new();
    let mut pos: usize = 0;
    while let Some(opt) = fmt.next() {
        let size = optsize(opt, &mut fmt)?;
        pos = pos.wrapping_add(gettoalign(pos, &h, opt, size));
        if opt == b's' {
            return Err(Raise::arg(1, "option 's' has no fixed size"));
        } else if opt == b'c' && size == 0 {
            return Err(Raise::arg(1, "option 'c0' has no fixed size"));
        }
        // Unknown letters and digits are ignored here (they are only
        // rejected by pack and unpack), as in the C code.
        if !opt.is_ascii_alphanumeric() {
            controloptions(opt, &mut fmt, &mut h)?;
        }
        pos = pos.wrapping_add(size);
    }
    ffi::lua_pushinteger(l, pos as i64);
    Ok(1)
}

lua_cfn!(c_pack => pack);
lua_cfn!(c_unpack => unpack);
lua_cfn!(c_size => size);

/// Pushes the `struct` table.
///
/// # Safety
/// A valid state with free stack slots.
pub unsafe fn open(l: *mut lua_State) {
    push_funcs(
        l,
        &[(c"pack", c_pack), (c"unpack", c_unpack), (c"size", c_size)],
    );
}
