//! Redis 7.0-compatible number parsing and formatting, byte for byte.
//!
//! Redis does not format or parse floating point numbers itself: it hands
//! them to the C library. Clients see glibc's output verbatim, so a
//! compatible server must reproduce glibc (x86_64) exactly:
//!
//! * Scores and other `double` replies (`ZSCORE`, `ZINCRBY`, ...) go through
//!   `addReplyDouble`, i.e. `printf("%.17g")`: [`fmt_double_17g`]. Rust's own
//!   `Display` for `f64` prints the *shortest* round-trip form (`1.1`), while
//!   Redis prints seventeen significant digits (`1.1000000000000001`).
//! * `double` arguments are parsed by `string2d`, a thin strict wrapper around
//!   `strtod`: [`parse_f64`]. Its grammar (hex floats, `inf`, `infinity`,
//!   `5.`, `.5`) and its overflow/underflow rules differ from `str::parse`.
//! * `INCRBYFLOAT` / `HINCRBYFLOAT` compute in C `long double`, which on
//!   x86_64 is the 80-bit x87 extended format (64-bit significand). That is
//!   why Redis answers `0.1 + 0.2` with `0.3` instead of
//!   `0.30000000000000004`: the extra 11 bits of precision vanish when the
//!   result is printed with `%.17Lf` and trailing zeros are trimmed.
//!   Rust has no `f80`, so [`LongDouble`] emulates the format in software:
//!   `strtold` parsing, one correctly rounded addition and `%.17Lf` output.
//!
//! # Why hand-rolled (and not `rustc_apfloat`)
//!
//! Everything here is done with exact integer arithmetic (a tiny private
//! bignum) followed by a single round-half-to-even step, which is exactly
//! what glibc does, so bit-for-bit agreement follows from the arithmetic
//! being exact rather than from matching someone else's algorithm.
//! `rustc_apfloat` would give the 80-bit addition and decimal parsing, but
//! not the parts that carry most of the compatibility risk: the `strtod`
//! grammar and `ERANGE` rules that decide which inputs Redis *rejects*, and
//! the fixed-point `%.17Lf` expansion of numbers as large as 1.19e4932
//! (thousands of exact digits). With those written anyway, the remaining
//! arithmetic is a few dozen lines, so the module stays dependency-free.
//!
//! # One known divergence from older glibc
//!
//! glibc up to at least 2.36 (Debian 12, where our reference `redis-server`
//! runs) has a `strtod`/`strtold` rounding bug for *subnormal* results:
//! when the input carries more significant bits than the format holds, the
//! first bit beyond them is dropped instead of being kept as a sticky bit,
//! so a value just above a rounding midpoint can round down. Newer glibc
//! keeps that bit (`old_half_bit` in `round_and_return`), and so do we: we
//! always round correctly. Hitting the difference takes a hex float with
//! more than 53 (or 64) significant bits, or a decimal with hundreds of
//! exact digits, landing in the subnormal range (below 2.2e-308, or
//! 3.4e-4932 for `long double`). For `long double` it is invisible in
//! Redis replies anyway, since such values print as `0`.

use std::cmp::Ordering;

/// Redis's `MAX_LONG_DOUBLE_CHARS` (`util.h`). `string2ld` copies its input
/// into a buffer of this size, so inputs of this length or longer are
/// rejected before `strtold` ever sees them.
pub const MAX_LONG_DOUBLE_CHARS: usize = 5 * 1024;

// ---------------------------------------------------------------------------
// Binary floating point formats and correct rounding
// ---------------------------------------------------------------------------

/// Parameters of an IEEE-style binary format; values are `mant * 2^exp`.
#[derive(Clone, Copy)]
struct Format {
    /// Significand bits, counting the integer bit.
    prec: u32,
    /// Exponent of the lowest significand bit of subnormals (the smallest
    /// subnormal is `2^min_lsb`).
    min_lsb: i64,
    /// Exponent of the lowest significand bit of the largest finite numbers.
    max_lsb: i64,
    /// Decimal inputs with more significant digits than this are shortened
    /// to this many digits plus a trailing `1` (a "something nonzero follows"
    /// marker). That cannot change the rounding, because every rounding
    /// boundary (a midpoint between two adjacent representable values) has
    /// fewer significant digits than this: at most ~768 for `f64` (midpoints
    /// near `2^-1075`) and ~11515 for x87 (near `2^-16446`).
    max_sig_digits: usize,
}

/// IEEE binary64 (`double`).
const F64: Format = Format {
    prec: 53,
    min_lsb: -1074,
    max_lsb: 971,
    max_sig_digits: 800,
};

/// x87 80-bit extended precision (`long double` on x86_64 Linux).
const X87: Format = Format {
    prec: 64,
    min_lsb: -16445,
    max_lsb: 16320,
    max_sig_digits: 12000,
};

/// Outcome of rounding an exact nonnegative value into a [`Format`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rounded {
    /// The value rounded to zero (for nonzero input: an underflow, which
    /// `strtod` reports with `ERANGE`).
    Zero,
    /// `mant * 2^exp`, `mant < 2^prec`; normal iff `mant >= 2^(prec-1)`,
    /// otherwise `exp == min_lsb`.
    Finite { mant: u64, exp: i64 },
    /// The value rounded past the largest finite number (`ERANGE`, infinity).
    Overflow,
}

/// Rounds `(m + f) * 2^e` to the nearest value of `fmt`, ties to even, where
/// `0 <= f < 1` is an unknown fraction that is nonzero iff `sticky`.
///
/// This is the single rounding step used by parsing and addition; callers
/// compute exactly and only summarize what lies below `m` in `sticky`. For
/// that summary to be enough, `m` must have more than `prec` bits whenever
/// `sticky` is set (so the round bit is a real bit of `m`).
fn round_to_format(m: u128, e: i64, sticky: bool, fmt: Format) -> Rounded {
    if m == 0 {
        return Rounded::Zero;
    }
    let bits = i64::from(128 - m.leading_zeros());
    let lsb = (e + bits - i64::from(fmt.prec)).max(fmt.min_lsb);
    let (mut q, mut t) = if lsb > e {
        let sh = lsb - e;
        let (q, half, below) = if sh > 128 {
            (0, false, true)
        } else if sh == 128 {
            (0, m >> 127 == 1, (m << 1) != 0 || sticky)
        } else {
            let sh = sh as u32;
            let half = (m >> (sh - 1)) & 1 == 1;
            let below = (m & ((1u128 << (sh - 1)) - 1)) != 0 || sticky;
            (m >> sh, half, below)
        };
        let up = half && (below || q & 1 == 1);
        (q + u128::from(up), lsb)
    } else {
        debug_assert!(!sticky, "sticky bits need a round bit inside m");
        (m << (e - lsb), lsb)
    };
    if q >> fmt.prec != 0 {
        // Rounding carried into a new bit: 1.111..1 -> 10.000..0.
        q >>= 1;
        t += 1;
    }
    if q == 0 {
        return Rounded::Zero;
    }
    if t > fmt.max_lsb {
        return Rounded::Overflow;
    }
    Rounded::Finite {
        mant: q as u64,
        exp: t,
    }
}

/// A parsed number before it is packed into a concrete type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Zero,
    Inf,
    Finite { mant: u64, exp: i64 },
}

// ---------------------------------------------------------------------------
// A minimal unsigned bignum (little-endian 32-bit limbs, no leading zeros)
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
struct BigUint {
    limbs: Vec<u32>,
}

impl BigUint {
    fn from_u128(mut v: u128) -> Self {
        let mut limbs = Vec::new();
        while v != 0 {
            limbs.push(v as u32);
            v >>= 32;
        }
        BigUint { limbs }
    }

    fn is_zero(&self) -> bool {
        self.limbs.is_empty()
    }

    fn trim(&mut self) {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }

    fn bit_len(&self) -> i64 {
        match self.limbs.last() {
            None => 0,
            Some(&top) => (self.limbs.len() as i64) * 32 - i64::from(top.leading_zeros()),
        }
    }

    /// `self = self * m + a`.
    fn mul_add_small(&mut self, m: u32, a: u32) {
        let mut carry = u64::from(a);
        for limb in &mut self.limbs {
            let v = u64::from(*limb) * u64::from(m) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.limbs.push(carry as u32);
        }
        self.trim();
    }

    fn mul_pow5(&mut self, mut k: u64) {
        const POW5_13: u32 = 1_220_703_125;
        while k >= 13 {
            self.mul_add_small(POW5_13, 0);
            k -= 13;
        }
        self.mul_add_small(5u32.pow(k as u32), 0);
    }

    fn shl(&mut self, bits: u64) {
        if self.is_zero() || bits == 0 {
            return;
        }
        let words = (bits / 32) as usize;
        let rem = (bits % 32) as u32;
        if rem != 0 {
            let mut carry = 0u32;
            for limb in &mut self.limbs {
                let v = (*limb << rem) | carry;
                carry = *limb >> (32 - rem);
                *limb = v;
            }
            if carry != 0 {
                self.limbs.push(carry);
            }
        }
        if words != 0 {
            let mut shifted = vec![0; words];
            shifted.extend_from_slice(&self.limbs);
            self.limbs = shifted;
        }
    }

    fn shr1(&mut self) {
        let mut carry = 0u32;
        for limb in self.limbs.iter_mut().rev() {
            let v = (*limb >> 1) | (carry << 31);
            carry = *limb & 1;
            *limb = v;
        }
        self.trim();
    }

    fn cmp_big(&self, other: &BigUint) -> Ordering {
        self.limbs
            .len()
            .cmp(&other.limbs.len())
            .then_with(|| self.limbs.iter().rev().cmp(other.limbs.iter().rev()))
    }

    /// `self -= other`; requires `self >= other`.
    fn sub_assign(&mut self, other: &BigUint) {
        let mut borrow = 0i64;
        for (i, limb) in self.limbs.iter_mut().enumerate() {
            let o = other.limbs.get(i).copied().map_or(0, i64::from);
            if o == 0 && borrow == 0 && i >= other.limbs.len() {
                break;
            }
            let mut v = i64::from(*limb) - o - borrow;
            borrow = 0;
            if v < 0 {
                v += 1 << 32;
                borrow = 1;
            }
            *limb = v as u32;
        }
        self.trim();
    }

    /// `self /= d`, returning the remainder.
    fn divrem_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for limb in self.limbs.iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / u64::from(d)) as u32;
            rem = cur % u64::from(d);
        }
        self.trim();
        rem as u32
    }

    /// Decimal digits (ASCII), `"0"` for zero.
    fn into_decimal(mut self) -> Vec<u8> {
        let mut chunks = Vec::new();
        while !self.is_zero() {
            chunks.push(self.divrem_small(1_000_000_000));
        }
        let mut out = Vec::with_capacity(chunks.len() * 9 + 1);
        match chunks.pop() {
            None => out.push(b'0'),
            Some(top) => out.extend_from_slice(top.to_string().as_bytes()),
        }
        for chunk in chunks.iter().rev() {
            out.extend_from_slice(format!("{chunk:09}").as_bytes());
        }
        out
    }
}

/// `floor(num / den)` and whether the remainder is nonzero, for quotients
/// known to be below `2^qbits` (binary long division; `qbits <= 127`).
fn div_small_quotient(mut num: BigUint, den: &BigUint, qbits: u32) -> (u128, bool) {
    let mut d = den.clone();
    d.shl(u64::from(qbits - 1));
    let mut q = 0u128;
    for i in (0..qbits).rev() {
        if num.cmp_big(&d) != Ordering::Less {
            num.sub_assign(&d);
            q |= 1u128 << i;
        }
        d.shr1();
    }
    (q, !num.is_zero())
}

// ---------------------------------------------------------------------------
// strtod / strtold
// ---------------------------------------------------------------------------

/// What the whole input spells, per the C `strtod` grammar (C locale).
enum Literal<'a> {
    Inf,
    /// `int.frac * 10^exp` (digits as ASCII).
    Dec {
        int: &'a [u8],
        frac: &'a [u8],
        exp: i64,
    },
    /// `int.frac * 2^exp` (hex digits as ASCII).
    Hex {
        int: &'a [u8],
        frac: &'a [u8],
        exp: i64,
    },
}

fn split_while(s: &[u8], pred: impl Fn(u8) -> bool) -> (&[u8], &[u8]) {
    let n = s.iter().position(|&b| !pred(b)).unwrap_or(s.len());
    s.split_at(n)
}

/// Parses an exponent (`[+-]?[0-9]+`) that must run to the end of `s`,
/// saturating far beyond any exponent that could matter.
fn scan_exponent(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        v = (v * 10 + i64::from(d - b'0')).min(1_000_000_000_000);
    }
    Some(if neg { -v } else { v })
}

/// Returns the sign and the literal if `strtod` would consume *all* of `s`.
///
/// `strtod` takes the longest prefix that is a number, and Redis rejects the
/// input unless that prefix is the whole string, so "would strtod consume
/// everything" is the same as "does the whole string match the grammar".
/// NaN spellings (`nan`, `nan(...)`) are reported as `None` because Redis
/// rejects a NaN result anyway. Leading whitespace, which `strtod` would
/// skip, is rejected too (`string2d` checks `isspace(s[0])`).
fn scan(s: &[u8]) -> Option<(bool, Literal<'_>)> {
    let (neg, rest) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
        return Some((neg, Literal::Inf));
    }
    let is_hex = rest.len() >= 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x';
    let (body, digit, marker): (&[u8], fn(&u8) -> bool, u8) = if is_hex {
        (&rest[2..], u8::is_ascii_hexdigit, b'p')
    } else {
        (rest, u8::is_ascii_digit, b'e')
    };
    let (int, after) = split_while(body, |b| digit(&b));
    let (frac, after) = match after.split_first() {
        Some((b'.', tail)) => split_while(tail, |b| digit(&b)),
        _ => (&after[..0], after),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let exp = match after.split_first() {
        None => 0,
        Some((&m, tail)) if (m | 0x20) == marker => scan_exponent(tail)?,
        Some(_) => return None,
    };
    let lit = if is_hex {
        Literal::Hex { int, frac, exp }
    } else {
        Literal::Dec { int, frac, exp }
    };
    Some((neg, lit))
}

/// Decimal `int.frac * 10^exp` rounded into `fmt`; `None` for an exact zero
/// (which, unlike an underflow to zero, `strtod` accepts without `ERANGE`).
fn decimal_to_rounded(int: &[u8], frac: &[u8], exp: i64, fmt: Format) -> Option<Rounded> {
    let total = int.len() + frac.len();
    let digit_at = |i: usize| -> u8 {
        if i < int.len() {
            int[i]
        } else {
            frac[i - int.len()]
        }
    };
    let first = (0..total).find(|&i| digit_at(i) != b'0')?;
    let last = (first..total).rev().find(|&i| digit_at(i) != b'0')?;
    // value = D * 10^e10 where D = digits[first..=last] (no leading/trailing 0)
    let nd = last - first + 1;
    let mut e10 = exp - frac.len() as i64 + (total - 1 - last) as i64;
    // 10^top <= value < 10^(top + 1)
    let top = e10 + nd as i64 - 1;
    if top >= 4933 {
        return Some(Rounded::Overflow); // > 1.19e4932, the x87 maximum
    }
    if top < -4952 {
        return Some(Rounded::Zero); // < 1e-4952, below half the x87 minimum
    }

    // Fast path: few digits and a small exponent fit in u128 arithmetic.
    if nd <= 19 {
        let d = (first..=last).fold(0u64, |acc, i| acc * 10 + u64::from(digit_at(i) - b'0'));
        if (0..=38).contains(&e10) {
            if let Some(v) = 10u128.pow(e10 as u32).checked_mul(u128::from(d)) {
                return Some(round_to_format(v, 0, false, fmt));
            }
        } else if (-18..0).contains(&e10) {
            // q = floor(d * 2^s / 10^k) has >= 66 bits: 2^126 / 10^18 > 2^66.
            let s = 127 - (64 - d.leading_zeros());
            let n = u128::from(d) << s;
            let den = 10u128.pow((-e10) as u32);
            return Some(round_to_format(n / den, -i64::from(s), n % den != 0, fmt));
        }
    }

    // Exact path: value = N / M * 2^e2 with bignums, then ~72 quotient bits.
    let mut mant = BigUint::default();
    let take = |i: usize, big: &mut BigUint| big.mul_add_small(10, u32::from(digit_at(i) - b'0'));
    if nd > fmt.max_sig_digits {
        for i in first..first + fmt.max_sig_digits {
            take(i, &mut mant);
        }
        mant.mul_add_small(10, 1); // marker: the dropped tail is nonzero
        e10 += (nd - fmt.max_sig_digits - 1) as i64;
    } else {
        for i in first..=last {
            take(i, &mut mant);
        }
    }
    let (mut num, mut den, e2) = if e10 >= 0 {
        mant.mul_pow5(e10 as u64);
        mant.shl(e10 as u64);
        (mant, BigUint::from_u128(1), 0)
    } else {
        let mut den = BigUint::from_u128(1);
        den.mul_pow5((-e10) as u64);
        (mant, den, e10) // 10^-k = 5^-k * 2^-k
    };
    let s = 72 - (num.bit_len() - den.bit_len());
    if s >= 0 {
        num.shl(s as u64);
    } else {
        den.shl((-s) as u64);
    }
    // Now 2^71 < num / den < 2^73.
    let (q, sticky) = div_small_quotient(num, &den, 73);
    Some(round_to_format(q, e2 - s, sticky, fmt))
}

/// Hex `int.frac * 2^exp` rounded into `fmt`; `None` for an exact zero.
/// Binary input needs no bignum: bits beyond the first 120 only matter as
/// "nonzero or not".
fn hex_to_rounded(int: &[u8], frac: &[u8], exp: i64, fmt: Format) -> Option<Rounded> {
    let hex = |b: u8| -> u128 {
        match b {
            b'0'..=b'9' => u128::from(b - b'0'),
            _ => u128::from((b | 0x20) - b'a' + 10),
        }
    };
    let mut m = 0u128;
    let mut kept = 0usize;
    let mut dropped = 0i64;
    let mut sticky = false;
    for &b in int.iter().chain(frac) {
        let v = hex(b);
        if kept == 0 && v == 0 {
            continue;
        }
        if kept < 30 {
            m = (m << 4) | v;
            kept += 1;
        } else {
            dropped += 1;
            sticky |= v != 0;
        }
    }
    if m == 0 {
        return None;
    }
    let e = exp - 4 * frac.len() as i64 + 4 * dropped;
    Some(round_to_format(m, e, sticky, fmt))
}

/// Shared `string2d` / `string2ld` logic: `strtod`-parse the whole input
/// into `fmt` and apply Redis's rejections.
fn parse_in(s: &[u8], fmt: Format) -> Option<(bool, Class)> {
    let (neg, lit) = scan(s)?;
    let rounded = match lit {
        // "inf" is accepted: strtod returns HUGE_VAL but without ERANGE.
        Literal::Inf => return Some((neg, Class::Inf)),
        Literal::Dec { int, frac, exp } => decimal_to_rounded(int, frac, exp, fmt),
        Literal::Hex { int, frac, exp } => hex_to_rounded(int, frac, exp, fmt),
    };
    match rounded {
        // An exact zero ("0", "-0.0e999") parses without ERANGE.
        None => Some((neg, Class::Zero)),
        // ERANGE with a zero or infinite result: Redis rejects.
        Some(Rounded::Zero) | Some(Rounded::Overflow) => None,
        Some(Rounded::Finite { mant, exp }) => Some((neg, Class::Finite { mant, exp })),
    }
}

/// Parses a `double` exactly like Redis 7.0's `string2d` (used by
/// `getDoubleFromObject`, e.g. for `ZADD` scores and `ZINCRBY`).
///
/// `strtod` must consume the entire input, and the input must not start
/// with whitespace. Accepted: decimal (`1`, `-1.5`, `.5`, `5.`, `+3`,
/// `1e5`, `1E-5`), hex floats (`0x1p3`, `0X1.8P1`, `0x10`) and infinities
/// (`inf`, `-Infinity`, any case). Rejected: empty input, surrounding
/// whitespace, trailing garbage, any NaN, and finite literals whose
/// magnitude rounds to infinity (`1e309`) or to zero (`1e-400`), because
/// `strtod` flags those with `ERANGE`. An exact zero (`0e999`) and values
/// that underflow only to a subnormal (`3e-324`) are accepted. Rounding is
/// correct (round-half-even on the exact decimal value), like glibc.
///
/// Unlike `string2ld`, `string2d` has no length limit.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    let (neg, class) = parse_in(s, F64)?;
    let bits = match class {
        Class::Zero => 0,
        Class::Inf => 0x7ff0_0000_0000_0000,
        Class::Finite { mant, exp } => {
            if mant >> 52 != 0 {
                (((exp + 1075) as u64) << 52) | (mant & ((1 << 52) - 1))
            } else {
                mant // subnormal: biased exponent 0
            }
        }
    };
    Some(f64::from_bits(bits | (u64::from(neg) << 63)))
}

// ---------------------------------------------------------------------------
// printf formatting
// ---------------------------------------------------------------------------

/// Exact decimal expansion of `m * 2^t`: `(digits, e10)` with
/// `value = digits * 10^e10`, `digits` without leading zeros.
fn exact_decimal(m: u64, t: i64) -> (Vec<u8>, i64) {
    let mut big = BigUint::from_u128(u128::from(m));
    if t >= 0 {
        big.shl(t as u64);
        (big.into_decimal(), 0)
    } else {
        // m / 2^k = m * 5^k / 10^k
        big.mul_pow5((-t) as u64);
        (big.into_decimal(), t)
    }
}

/// Rounds a digit string to `p` significant digits, half to even (what
/// glibc's printf does in the default rounding mode). Returns exactly `p`
/// digits and the decimal exponent of the first one.
fn round_significant(mut digits: Vec<u8>, e10: i64, p: usize) -> (Vec<u8>, i64) {
    let mut x = digits.len() as i64 - 1 + e10;
    if digits.len() <= p {
        digits.resize(p, b'0');
        return (digits, x);
    }
    let next = digits[p];
    let rest_nonzero = digits[p + 1..].iter().any(|&d| d != b'0');
    digits.truncate(p);
    let last_odd = (digits[p - 1] - b'0') % 2 == 1;
    if next > b'5' || (next == b'5' && (rest_nonzero || last_odd)) {
        let mut i = p;
        loop {
            if i == 0 {
                // 999..9 rounded up to 1000..0
                digits.insert(0, b'1');
                digits.truncate(p);
                x += 1;
                break;
            }
            i -= 1;
            if digits[i] == b'9' {
                digits[i] = b'0';
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    (digits, x)
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let n = digits.iter().rposition(|&d| d != b'0').map_or(0, |i| i + 1);
    &digits[..n]
}

/// The first 17 significant digits of a finite, positive `d`, correctly
/// rounded (half to even) from its exact binary value, and the decimal
/// exponent of the first digit.
///
/// Rust's `{:.16e}` is an *exact* conversion (Grisu exact mode with a
/// Dragon4 fallback, ties to even), unlike the shortest-digits `{}`, so it
/// yields the same digits as glibc at a fraction of the cost of a bignum
/// expansion. The bignum path remains as the reference (and as a fallback
/// that never triggers); tests cross-check the two.
fn significant_17(d: f64) -> (Vec<u8>, i64) {
    let s = format!("{d:.16e}");
    if let Some((mant, exp)) = s.split_once('e') {
        let digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
        if let (17, Ok(x)) = (digits.len(), exp.parse::<i64>()) {
            return (digits, x);
        }
    }
    significant_17_exact(d)
}

/// Bignum reference for [`significant_17`]: exact expansion, then rounding.
fn significant_17_exact(d: f64) -> (Vec<u8>, i64) {
    let bits = d.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1 << 52) - 1);
    let (m, t) = if biased == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), biased - 1075)
    };
    let (digits, e10) = exact_decimal(m, t);
    round_significant(digits, e10, 17)
}

/// Formats like glibc's `printf("%.17g", d)`, which is what Redis 7.0's
/// `addReplyDouble` sends (e.g. `ZSCORE`, `ZINCRBY`, `ZSCAN` scores).
///
/// Seventeen significant digits always identify a `double` uniquely, which
/// is why Redis chose them; the price is that short decimals show their
/// binary error: `1.1` -> `"1.1000000000000001"`. `%g` picks exponent
/// notation when the decimal exponent is below -4 or at least 17, then
/// drops trailing zeros (and a bare `.`): `1e20` -> `"1e+20"`, `0.0001` ->
/// `"0.0001"`, `1e-5` -> `"1.0000000000000001e-05"`, `100` -> `"100"`,
/// `-0.0` -> `"-0"`. Infinities print as `"inf"` / `"-inf"` (what Redis
/// sends for them in RESP2, and glibc's spelling too). NaN prints as glibc
/// does: `"nan"`, or `"-nan"` when its sign bit is set.
///
/// The digits come from the exact decimal expansion of the binary value,
/// rounded half-to-even, exactly like glibc.
pub fn fmt_double_17g(d: f64) -> String {
    let mut out = String::new();
    if d.is_sign_negative() {
        out.push('-');
    }
    if d.is_nan() {
        out.push_str("nan");
        return out;
    }
    if d.is_infinite() {
        out.push_str("inf");
        return out;
    }
    if d == 0.0 {
        out.push('0');
        return out;
    }
    if d.fract() == 0.0 && d.abs() < 1e17 {
        // Integers below 10^17 have at most 17 digits: %.17g prints them
        // exactly, in %f style. (Common for scores; skips digit generation.)
        out.push_str(&(d.abs() as u64).to_string());
        return out;
    }
    let (sig, x) = significant_17(d.abs());
    let push = |out: &mut String, ds: &[u8]| out.extend(ds.iter().map(|&b| char::from(b)));
    if !(-4..17).contains(&x) {
        // %e style: d.dddde+XX (at least two exponent digits)
        push(&mut out, &sig[..1]);
        let frac = trim_zeros(&sig[1..]);
        if !frac.is_empty() {
            out.push('.');
            push(&mut out, frac);
        }
        out.push_str(&format!("e{}{:02}", if x < 0 { '-' } else { '+' }, x.abs()));
    } else if x >= 0 {
        // %f style, integer part has x + 1 digits
        let (int, frac) = sig.split_at(x as usize + 1);
        push(&mut out, int);
        let frac = trim_zeros(frac);
        if !frac.is_empty() {
            out.push('.');
            push(&mut out, frac);
        }
    } else {
        out.push_str("0.");
        for _ in 0..(-x - 1) {
            out.push('0');
        }
        push(&mut out, trim_zeros(&sig));
    }
    out
}

// ---------------------------------------------------------------------------
// x87 80-bit long double
// ---------------------------------------------------------------------------

/// A software x87 80-bit extended-precision number: what C `long double` is
/// on x86_64 Linux, and therefore what Redis 7.0's `INCRBYFLOAT` and
/// `HINCRBYFLOAT` compute with.
///
/// The 64-bit significand (11 bits more than `f64`) is what makes Redis
/// print `0.3` for `0.1 + 0.2`: the binary error stays below the 17th
/// decimal place that `%.17Lf` keeps. Emulating it with `f64` would give
/// visibly different replies, so this type reproduces the exact bits: the
/// layout is the x87 one (sign, 15-bit biased exponent, 64-bit significand
/// with an explicit integer bit), parsing is `strtold`, addition is IEEE
/// round-to-nearest-even, formatting is `%.17Lf`.
#[derive(Clone, Copy, Debug)]
pub struct LongDouble {
    /// Sign bit (0x8000) and 15-bit biased exponent (bias 16383).
    sign_exp: u16,
    /// Significand with explicit integer bit (bit 63).
    mant: u64,
}

/// A [`LongDouble`] taken apart: finite values (zero included) are
/// `(-1)^neg * m * 2^e`.
enum Decoded {
    NaN,
    Inf { neg: bool },
    Finite { neg: bool, m: u64, e: i64 },
}

impl LongDouble {
    /// The x87 "real indefinite" NaN, what the FPU produces for `inf - inf`.
    const DEFAULT_NAN: LongDouble = LongDouble {
        sign_exp: 0xffff,
        mant: 0xc000_0000_0000_0000,
    };

    /// Parses like Redis 7.0's `string2ld` (used by `getLongDoubleFromObject`
    /// for `INCRBYFLOAT` / `HINCRBYFLOAT` values and increments).
    ///
    /// Same grammar and rejections as [`parse_f64`] (whole input must be
    /// consumed by `strtold`, no leading whitespace, no NaN, no `ERANGE`
    /// overflow to infinity or underflow to zero; `"inf"` itself is
    /// accepted), with two differences: the input must be shorter than
    /// [`MAX_LONG_DOUBLE_CHARS`] bytes (Redis copies it into a fixed
    /// buffer), and the result is correctly rounded to the 64-bit x87
    /// significand, with the x87 exponent range (up to ~1.19e4932, subnormals
    /// down to ~3.65e-4951), as glibc's `strtold` does.
    pub fn parse(s: &[u8]) -> Option<LongDouble> {
        if s.is_empty() || s.len() >= MAX_LONG_DOUBLE_CHARS {
            return None;
        }
        let (neg, class) = parse_in(s, X87)?;
        let r = match class {
            Class::Zero => Rounded::Zero,
            Class::Inf => Rounded::Overflow,
            Class::Finite { mant, exp } => Rounded::Finite { mant, exp },
        };
        Some(Self::pack(neg, r))
    }

    /// Converts exactly, like C's `(long double)v`: every `i64` fits in the
    /// 64-bit significand. Redis uses this when the stored value is an
    /// integer-encoded string (e.g. after `SET k 10`).
    pub fn from_i64(v: i64) -> LongDouble {
        let r = round_to_format(u128::from(v.unsigned_abs()), 0, false, X87);
        Self::pack(v < 0, r)
    }

    /// IEEE addition rounded to nearest, ties to even, as the x87 FPU does
    /// it at 64-bit precision (Redis: `value += incr`).
    ///
    /// Special cases follow IEEE: `inf + -inf` is NaN, NaN propagates,
    /// `x + -x` is `+0`, `-0 + -0` is `-0`, and overflow gives infinity
    /// (Redis then refuses with "increment would produce NaN or Infinity").
    // An inherent `add` (the API callers use, no trait import needed) next
    // to the `std::ops::Add` impl below, which just delegates here.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, other: LongDouble) -> LongDouble {
        let (a, b) = match (self.decode(), other.decode()) {
            (Decoded::NaN, _) | (_, Decoded::NaN) => return Self::DEFAULT_NAN,
            (Decoded::Inf { neg: x }, Decoded::Inf { neg: y }) => {
                return if x == y { self } else { Self::DEFAULT_NAN };
            }
            (Decoded::Inf { .. }, _) => return self,
            (_, Decoded::Inf { .. }) => return other,
            (
                Decoded::Finite {
                    neg: na,
                    m: ma,
                    e: ea,
                },
                Decoded::Finite {
                    neg: nb,
                    m: mb,
                    e: eb,
                },
            ) => ((na, ma, ea), (nb, mb, eb)),
        };
        // With a zero operand the result is the other one, re-packed so that
        // a pseudo-denormal operand comes out normalized as the FPU does it.
        match (a.1 == 0, b.1 == 0) {
            (true, true) => return Self::pack(a.0 && b.0, Rounded::Zero),
            (true, false) => return Self::pack(b.0, round_to_format(b.1.into(), b.2, false, X87)),
            (false, true) => return Self::pack(a.0, round_to_format(a.1.into(), a.2, false, X87)),
            (false, false) => {}
        }
        // Let `a` be the operand with the larger lowest-bit exponent.
        let (a, b) = if a.2 >= b.2 { (a, b) } else { (b, a) };
        let (na, ma, ea) = a;
        let (nb, mb, eb) = b;
        let diff = ea - eb;
        if diff <= 63 {
            // Both fit exactly in u128 at b's scale: exact sum, one rounding.
            let wa = u128::from(ma) << diff;
            let wb = u128::from(mb);
            let (neg, sum) = if na == nb {
                (na, wa + wb)
            } else if wa >= wb {
                (na, wa - wb)
            } else {
                (nb, wb - wa)
            };
            if sum == 0 {
                return Self::pack(false, Rounded::Zero); // x + -x = +0
            }
            Self::pack(neg, round_to_format(sum, eb, false, X87))
        } else {
            // b is below a's lowest bit (so |b| < |a|, and a is normal). Put
            // a at scale ea - 64 and fold what b loses there into a sticky
            // bit; a keeps >= 127 bits, far more than rounding needs.
            let wa = u128::from(ma) << 64;
            let k = diff - 64;
            let (wb, lost) = if k >= 64 {
                (0u128, true)
            } else {
                let k = k as u32;
                (u128::from(mb >> k), k > 0 && (mb & ((1u64 << k) - 1)) != 0)
            };
            let sum = if na == nb {
                wa + wb
            } else {
                // a - (wb + f) = (a - wb - 1) + (1 - f) when f > 0
                wa - wb - u128::from(lost)
            };
            Self::pack(na, round_to_format(sum, ea - 64, lost, X87))
        }
    }

    /// True unless infinite or NaN (C's `isfinite`). Redis checks
    /// `isnan(value) || isinf(value)` after adding.
    pub fn is_finite(&self) -> bool {
        self.sign_exp & 0x7fff != 0x7fff
    }

    /// Formats like Redis 7.0's `ld2string(..., LD_STR_HUMAN)`, the
    /// `INCRBYFLOAT` / `HINCRBYFLOAT` reply and stored value.
    ///
    /// That is `snprintf("%.17Lf")` (fixed point, 17 decimals, exact value
    /// rounded half to even, never exponent notation, so `1e300` expands
    /// to all 301 digits of the binary value) followed by trimming trailing
    /// zeros and then a trailing `.`, and finally `"-0"` is replaced by
    /// `"0"` (tiny negative results print as `0`). Infinities are written
    /// explicitly as `"inf"` / `"-inf"`. The output always fits Redis's
    /// 5 KiB buffer (at most ~4950 bytes), so `ld2string` never fails here.
    /// NaN cannot reach this in Redis (it is refused first); it prints as
    /// glibc would (`"nan"` / `"-nan"`).
    pub fn to_redis_string(&self) -> String {
        let (neg, m, t) = match self.decode() {
            Decoded::NaN => {
                return if self.sign_exp & 0x8000 != 0 {
                    "-nan"
                } else {
                    "nan"
                }
                .to_string();
            }
            Decoded::Inf { neg } => return if neg { "-inf" } else { "inf" }.to_string(),
            Decoded::Finite { neg, m, e } => (neg, m, e),
        };
        const TEN17: u128 = 100_000_000_000_000_000;
        let (int_digits, frac17) = if t >= 0 {
            let mut big = BigUint::from_u128(u128::from(m));
            big.shl(t as u64);
            (big.into_decimal(), 0u128)
        } else {
            // round(m * 10^17 / 2^k), half to even; m * 10^17 < 2^121.
            let n = u128::from(m) * TEN17;
            let k = -t;
            let r = if k >= 128 {
                0
            } else {
                let k = k as u32;
                let q = n >> k;
                let half = (n >> (k - 1)) & 1 == 1;
                let below = n & ((1u128 << (k - 1)) - 1) != 0;
                q + u128::from(half && (below || q & 1 == 1))
            };
            ((r / TEN17).to_string().into_bytes(), r % TEN17)
        };
        let mut out = String::with_capacity(int_digits.len() + 19);
        if neg {
            out.push('-');
        }
        out.extend(int_digits.iter().map(|&b| char::from(b)));
        if frac17 != 0 {
            let frac = format!("{frac17:017}");
            out.push('.');
            out.push_str(frac.trim_end_matches('0'));
        }
        if out == "-0" {
            out = "0".to_string();
        }
        out
    }

    /// The 80-bit x87 memory image as an integer: bits 0..64 are the
    /// significand (explicit integer bit at 63), bits 64..79 the biased
    /// exponent, bit 79 the sign. Handy for tests and persistence.
    pub fn to_bits(self) -> u128 {
        (u128::from(self.sign_exp) << 64) | u128::from(self.mant)
    }

    /// Inverse of [`LongDouble::to_bits`]; bits above 79 are ignored.
    /// (Encodings the x87 treats as invalid, such as unnormals, are taken at
    /// their numeric value.)
    pub fn from_bits(bits: u128) -> LongDouble {
        LongDouble {
            sign_exp: (bits >> 64) as u16,
            mant: bits as u64,
        }
    }

    fn decode(&self) -> Decoded {
        let neg = self.sign_exp & 0x8000 != 0;
        let exp = self.sign_exp & 0x7fff;
        if exp == 0x7fff {
            if self.mant << 1 == 0 {
                Decoded::Inf { neg }
            } else {
                Decoded::NaN
            }
        } else if exp == 0 {
            Decoded::Finite {
                neg,
                m: self.mant,
                e: X87.min_lsb,
            }
        } else {
            Decoded::Finite {
                neg,
                m: self.mant,
                e: i64::from(exp) - 16446,
            }
        }
    }

    fn pack(neg: bool, r: Rounded) -> LongDouble {
        let sign = if neg { 0x8000 } else { 0 };
        match r {
            Rounded::Zero => LongDouble {
                sign_exp: sign,
                mant: 0,
            },
            Rounded::Overflow => LongDouble {
                sign_exp: sign | 0x7fff,
                mant: 1 << 63,
            },
            Rounded::Finite { mant, exp } => {
                let biased = if mant >> 63 == 1 {
                    (exp + 16446) as u16
                } else {
                    0 // subnormal
                };
                LongDouble {
                    sign_exp: sign | biased,
                    mant,
                }
            }
        }
    }
}

/// `a + b` is [`LongDouble::add`].
impl std::ops::Add for LongDouble {
    type Output = LongDouble;

    fn add(self, other: LongDouble) -> LongDouble {
        LongDouble::add(self, other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis 7.0's `incrbyfloatCommand`: integer-encoded values convert with
    /// `(long double)`, strings with `string2ld`; a non-finite sum is refused.
    fn incrbyfloat(cur: &str, incr: &str) -> Result<String, &'static str> {
        let parse = |s: &str| match s.parse::<i64>() {
            Ok(i) if !s.starts_with('+') => Some(LongDouble::from_i64(i)),
            _ => LongDouble::parse(s.as_bytes()),
        };
        let (Some(a), Some(b)) = (parse(cur), parse(incr)) else {
            return Err("ERR value is not a valid float");
        };
        let sum = a.add(b);
        if !sum.is_finite() {
            return Err("ERR increment would produce NaN or Infinity");
        }
        Ok(sum.to_redis_string())
    }

    const NOT_FLOAT: &str = "ERR value is not a valid float";
    const NAN_OR_INF: &str = "ERR increment would produce NaN or Infinity";

    /// `SET k <cur>` then `INCRBYFLOAT k <incr>`, replies from redis-server 7.0.15.
    #[test]
    fn incrbyfloat_matches_redis() {
        let ok = |s: &str| Ok(s.to_string());
        let cases: &[(&str, &str, Result<String, &str>)] = &[
            ("10.5", "0.1", ok("10.6")),
            ("0", "0.1", ok("0.1")),
            ("0.1", "0.2", ok("0.3")),
            ("5", "5.0e3", ok("5005")),
            ("0", "1e-30", ok("0")),
            ("0", "-1e-30", ok("0")),
            ("-5", "0.5", ok("-4.5")),
            ("3.0e3", "-3000", ok("0")),
            ("1.5", "-1.5", ok("0")),
            ("-0", "-0", ok("0")),
            ("7", "-7.5", ok("-0.5")),
            ("9223372036854775807", "1", ok("9223372036854775808")),
            ("-9223372036854775808", "-1", ok("-9223372036854775809")),
            ("1", "0x10", ok("17")),
            ("1", "1e-4940", ok("1")),
            ("0", "0.0000000000000001", ok("0.0000000000000001")),
            ("0", "0.00000000000000001", ok("0.00000000000000001")),
            ("0", "0.000000000000000005", ok("0")),
            ("0", "0.000000000000000015", ok("0.00000000000000002")),
            ("0", "-0.00000000000000001", ok("-0.00000000000000001")),
            (
                "123456789.123456789",
                "0",
                ok("123456789.12345678899873747"),
            ),
            (
                "1.23456789012345678901234567890",
                "0",
                ok("1.23456789012345679"),
            ),
            ("1.1", "2.2", ok("3.3")),
            ("1", "1e20", ok("100000000000000000000")),
            ("1e20", "0.5", ok("100000000000000000000")),
            ("1e19", "1", ok("10000000000000000001")),
            ("99999999999999999", "1", ok("100000000000000000")),
            ("1e-300", "0", ok("0")),
            ("1.0e1", "0", ok("10")),
            ("3.0", "0.000000001", ok("3.000000001")),
            ("2", "-0.1", ok("1.9")),
            ("-1", "0.9", ok("-0.1")),
            ("0.3", "-0.1", ok("0.2")),
            ("100", "-0.01", ok("99.99")),
            ("-1e10", "1e-10", ok("-10000000000")),
            ("+1", "+1", ok("2")),
            (".5", ".5", ok("1")),
            ("5.", "1", ok("6")),
            ("1E2", "1", ok("101")),
            ("0x1p-3", "0", ok("0.125")),
            ("1.18e4932", "1e4932", Err(NAN_OR_INF)),
            ("inf", "1", Err(NAN_OR_INF)),
            ("0", "inf", Err(NAN_OR_INF)),
            ("INF", "-1", Err(NAN_OR_INF)),
            ("infinity", "1", Err(NAN_OR_INF)),
            ("abc", "1", Err(NOT_FLOAT)),
            ("1", "abc", Err(NOT_FLOAT)),
            ("1", " 1", Err(NOT_FLOAT)),
            ("1", "1 ", Err(NOT_FLOAT)),
            ("1", "", Err(NOT_FLOAT)),
            ("1", "1e-5000", Err(NOT_FLOAT)),
            ("1", "nan", Err(NOT_FLOAT)),
        ];
        for (cur, incr, want) in cases {
            assert_eq!(&incrbyfloat(cur, incr), want, "{cur} + {incr}");
        }
        // SET k 0; INCRBYFLOAT k 0.1; INCRBYFLOAT k 0.2 -> "0.3" (the stored
        // string "0.1" is re-parsed, as Redis does).
        let first = incrbyfloat("0", "0.1");
        assert_eq!(first, ok("0.1"));
        assert_eq!(incrbyfloat("0.1", "0.2"), ok("0.3"));
    }

    #[test]
    fn incrbyfloat_huge_values_match_redis() {
        assert_eq!(
            incrbyfloat("1e300", "1").as_deref(),
            Ok(concat!(
                "1000000000000000000008997324079559193870523944273290747938260082",
                "3212656465961809357558491520837504971903503725086142748359035925",
                "5618467298391309626052074864628732713564184365329408425510760601",
                "6789726652932370030551382947620994540294772781889620606179267611",
                "627097410650567187386105690089424915104006144"
            ))
        );
        let big = incrbyfloat("1e4932", "0").unwrap_or_default();
        assert_eq!(big.len(), 4933);
        assert!(big.starts_with(
            "10000000000000000000060189493879638913238377742545331147737850413525330194866087"
        ));
        assert!(big.ends_with("876379371163141086538418113791886622720"));
    }

    /// `string2ld` refuses inputs of MAX_LONG_DOUBLE_CHARS (5120) bytes or more.
    #[test]
    fn long_double_length_limit_matches_redis() {
        let ok_5119 = format!("1.{}", "0".repeat(5117));
        let bad_5120 = format!("1.{}", "0".repeat(5118));
        assert_eq!(incrbyfloat("1", &ok_5119).as_deref(), Ok("2"));
        assert_eq!(incrbyfloat("1", &bad_5120), Err(NOT_FLOAT));
        // string2d has no such limit.
        assert_eq!(parse_f64(bad_5120.as_bytes()), Some(1.0));
    }

    /// `ZADD z <score> m` then `ZSCORE z m`, replies from redis-server 7.0.15.
    #[test]
    fn zadd_zscore_matches_redis() {
        let cases: &[(&str, Option<&str>)] = &[
            ("1.1", Some("1.1000000000000001")),
            ("1e20", Some("1e+20")),
            ("0.0001", Some("0.0001")),
            ("1e-4", Some("0.0001")),
            ("1e-5", Some("1.0000000000000001e-05")),
            ("0", Some("0")),
            ("100", Some("100")),
            ("0.1", Some("0.10000000000000001")),
            ("0.3333333333333333", Some("0.33333333333333331")),
            ("123456789012345678", Some("1.2345678901234568e+17")),
            ("1e16", Some("10000000000000000")),
            ("1e17", Some("1e+17")),
            ("99999999999999999", Some("1e+17")),
            ("12345678901234567", Some("12345678901234568")),
            ("1.5e-4", Some("0.00014999999999999999")),
            ("0.000123456789", Some("0.000123456789")),
            ("9.9999e-5", Some("9.9999000000000003e-05")),
            ("5e-324", Some("4.9406564584124654e-324")),
            ("3e-324", Some("4.9406564584124654e-324")),
            ("1e-320", Some("9.9998886718268301e-321")),
            ("1.7976931348623157e308", Some("1.7976931348623157e+308")),
            ("inf", Some("inf")),
            ("-inf", Some("-inf")),
            ("infinity", Some("inf")),
            ("-Infinity", Some("-inf")),
            ("2.5", Some("2.5")),
            ("1e21", Some("1e+21")),
            ("3.14159", Some("3.1415899999999999")),
            ("-1.1", Some("-1.1000000000000001")),
            ("0.5", Some("0.5")),
            ("1000000000000000.3", Some("1000000000000000.2")),
            // exactly halfway at the 17th digit: ties to even
            ("1.00000762939453125", Some("1.0000076293945312")),
            ("-2.5e-10", Some("-2.5000000000000002e-10")),
            ("123.456e2", Some("12345.6")),
            ("0x1p3", Some("8")),
            ("0x1.8p1", Some("3")),
            (".5", Some("0.5")),
            ("5.", Some("5")),
            ("+3", Some("3")),
            ("1e309", None),
            ("1e-400", None),
            (" 1", None),
            ("1 ", None),
            ("", None),
            ("nan", None),
            ("1e", None),
            ("0x", None),
            ("abc", None),
        ];
        for (input, want) in cases {
            let got = parse_f64(input.as_bytes()).map(fmt_double_17g);
            assert_eq!(got.as_deref(), *want, "{input:?}");
        }
    }

    /// Values checked against glibc (x86_64) `printf("%.17g")`.
    #[test]
    fn fmt_double_17g_matches_glibc() {
        assert_eq!(fmt_double_17g(-0.0), "-0");
        assert_eq!(fmt_double_17g(0.0), "0");
        assert_eq!(fmt_double_17g(f64::NAN), "nan");
        assert_eq!(fmt_double_17g(-f64::NAN), "-nan");
        assert_eq!(fmt_double_17g(f64::MIN_POSITIVE), "2.2250738585072014e-308");
        assert_eq!(fmt_double_17g(1.0000038146972656), "1.0000038146972656");
        assert_eq!(fmt_double_17g(1e100), "1e+100");
        assert_eq!(fmt_double_17g(123456.0), "123456");
        assert_eq!(fmt_double_17g(9.5), "9.5");
    }

    /// Bit patterns checked against glibc `strtod` / `strtold`, x87 addition
    /// and `printf("%.17Lf")`.
    #[test]
    fn long_double_bits_match_x87() {
        let bits = |s: &str| LongDouble::parse(s.as_bytes()).map(LongDouble::to_bits);
        assert_eq!(bits("0.1"), Some(0x3ffb_cccc_cccc_cccc_cccd));
        assert_eq!(bits("0.2"), Some(0x3ffc_cccc_cccc_cccc_cccd));
        assert_eq!(bits("1e-4950"), Some(3)); // subnormal
        assert_eq!(bits("1.9e-4951"), Some(1)); // rounds up to the minimum
        assert_eq!(bits("1.8e-4951"), None); // rounds to zero: ERANGE
        assert_eq!(bits("0x1p-16446"), None); // exact tie with zero
        assert_eq!(bits("0x1.00000001p-16446"), Some(1));
        assert_eq!(
            bits("1.18973149535723176502e4932"),
            Some(0x7ffe_ffff_ffff_ffff_ffff)
        );
        assert_eq!(bits("1.1897314953572317651e4932"), None); // overflow
        assert_eq!(
            bits("0x1.fffffffffffffffefp16383"),
            Some(0x7ffe_ffff_ffff_ffff_ffff)
        );
        assert_eq!(bits("0x1.ffffffffffffffffp16383"), None); // tie, to even: overflow
        assert_eq!(bits("-0"), Some(0x8000_0000_0000_0000_0000));

        let ld = LongDouble::from_bits;
        let add = |a: u128, b: u128| ld(a).add(ld(b)).to_bits();
        assert_eq!(
            add(0x3ffb_cccc_cccc_cccc_cccd, 0x3ffc_cccc_cccc_cccc_cccd),
            0x3ffd_9999_9999_9999_999a
        );
        assert_eq!(
            add(0x3fff_8000_0000_0000_0000, 0xbfbf_8000_0000_0000_0000),
            0x3ffe_ffff_ffff_ffff_ffff
        );
        assert_eq!(
            add(0x7ffe_ffff_ffff_ffff_ffff, 0x7ffe_8000_0000_0000_0000),
            0x7fff_8000_0000_0000_0000
        );
        assert_eq!(
            add(0x3fff_8000_0000_0000_0000, 0xbfff_8000_0000_0000_0000),
            0
        );
        assert_eq!(
            add(0x8000_0000_0000_0000_0000, 0x8000_0000_0000_0000_0000),
            0x8000_0000_0000_0000_0000
        );
        assert_eq!(
            add(0x7fff_8000_0000_0000_0000, 0xffff_8000_0000_0000_0000),
            0xffff_c000_0000_0000_0000
        );
        assert!(!ld(0xffff_c000_0000_0000_0000).is_finite());

        assert_eq!(ld(0x3ffd_9999_9999_9999_999a).to_redis_string(), "0.3");
        // 2^-18 = 0.000003814697265625: a tie at the 17th decimal, to even.
        assert_eq!(
            ld(0x3fed_8000_0000_0000_0000).to_redis_string(),
            "0.00000381469726562"
        );
        assert_eq!(
            ld(0x3fed_c000_0000_0000_0000).to_redis_string(),
            "0.00000572204589844"
        );
        assert_eq!(
            ld(0xbfed_8000_0000_0000_0000).to_redis_string(),
            "-0.00000381469726562"
        );
        assert_eq!(ld(0x7fff_8000_0000_0000_0000).to_redis_string(), "inf");
        assert_eq!(ld(0xffff_8000_0000_0000_0000).to_redis_string(), "-inf");
    }

    /// The fast digit generator must agree with the exact bignum reference,
    /// including on ties at the 18th digit (`k + odd * 2^-n`).
    #[test]
    fn fast_digits_match_exact_reference() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000u64 {
            let d = match i % 3 {
                0 => f64::from_bits(next() & !(1 << 63)),
                1 => {
                    (next() % 1000) as f64
                        + (2 * (next() % (1 << 20)) + 1) as f64 * 2f64.powi(-((next() % 70) as i32))
                }
                _ => (next() >> 11) as f64 * 2f64.powi((next() % 200) as i32 - 100),
            };
            if d.is_finite() && d > 0.0 {
                assert_eq!(significant_17(d), significant_17_exact(d), "{d:e}");
            }
        }
    }

    #[test]
    fn from_i64_is_exact() {
        for v in [0, 1, -1, 10, i64::MAX, i64::MIN, 1 << 53, (1 << 53) + 1] {
            assert_eq!(LongDouble::from_i64(v).to_redis_string(), v.to_string());
        }
        assert_eq!(LongDouble::from_i64(0).to_bits(), 0);
    }

    #[test]
    fn strtod_grammar() {
        let accepted = [
            "1",
            "-1",
            "+1",
            ".5",
            "5.",
            "1e5",
            "1E+5",
            "1e-5",
            "0x10",
            "0X1P-3",
            "0x.8",
            "0x1.",
            "inf",
            "INF",
            "+Infinity",
            "-iNfInItY",
            "0e99999999999999999999",
            "00012",
            "1.e1",
        ];
        for s in accepted {
            assert!(parse_f64(s.as_bytes()).is_some(), "{s:?}");
            assert!(LongDouble::parse(s.as_bytes()).is_some(), "{s:?}");
        }
        let rejected = [
            "",
            " 1",
            "1 ",
            "\t1",
            "1\n",
            "+",
            "-",
            ".",
            "+.",
            ".e1",
            "e1",
            "1e",
            "1e+",
            "1x",
            "0x",
            "0x.",
            "0xp1",
            "0x1p",
            "1..2",
            "1.2.3",
            "--1",
            "+-1",
            "1e1.5",
            "infin",
            "infinityy",
            "nan",
            "-nan",
            "nan(1)",
            "1_0",
            "1\0",
            "0b1",
            "1f",
        ];
        for s in rejected {
            assert_eq!(parse_f64(s.as_bytes()), None, "{s:?}");
            assert!(LongDouble::parse(s.as_bytes()).is_none(), "{s:?}");
        }
        // Hex floats are correctly rounded too.
        assert_eq!(parse_f64(b"0x1.00000000000008p0"), Some(1.0));
        assert_eq!(
            parse_f64(b"0x1.000000000000081p0"),
            Some(1.0000000000000002)
        );
        // Overflow / underflow boundaries of double.
        assert_eq!(parse_f64(b"1.7976931348623158e308"), Some(f64::MAX));
        assert_eq!(parse_f64(b"1.7976931348623159e308"), None);
        assert_eq!(parse_f64(b"2.4703282292062328e-324"), Some(5e-324));
        assert_eq!(parse_f64(b"2.4703282292062327e-324"), None);
        assert_eq!(parse_f64(b"-0").map(f64::to_bits), Some(1 << 63));
        // Huge inputs stay cheap: only ~800 significant digits are examined.
        let long = format!("0.{}1e1", "3".repeat(1_000_000));
        assert_eq!(parse_f64(long.as_bytes()), Some(3.3333333333333335));
    }
}
