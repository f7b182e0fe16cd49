//! Randomized differential test: proptest generates random command
//! sequences over a small key space, sends each sequence to genuine Redis 7.0
//! and to Cinnabar, and requires the raw replies to be equal byte for byte.
//!
//! Only replies that Redis itself leaves unordered, random or clock-dependent
//! are compared canonically (see [`Check`]): KEYS and SCAN after sorting,
//! RANDOMKEY as "nil on both, or a key that exists on each", and
//! TTL/PTTL/EXPIRETIME/PEXPIRETIME within a small tolerance when the expiry
//! is close to the clock's race.
//!
//! Clock safety: relative TTLs are far in the future and unique per command
//! (`base + index` seconds, or `(base + index) * 1000 + 250` milliseconds),
//! so GT/LT comparisons and TTL rounding never depend on how long a command
//! took; absolute times are either in the past (the key expires at once,
//! deterministically) or years ahead.
//!
//! Environment:
//! - `DIFF_CASES`: number of sequences per test (default 2000).
//! - `DIFF_SEED`: fixed RNG seed (default: random, printed on failure).
//! - `DIFF_SURVEY=1`: don't stop at the first mismatch; run every case and
//!   print the shortest sequence for each distinct kind of mismatch.
//! - `DIFF_SKIP=GETEX,KEYS,UNKNOWN`: leave these commands out of every
//!   sequence (to look past a known mismatch).
//! - `DIFF_STATS=1`: print how often each command was sent and failed.
//! - `DIFF_SELF_CHECK=1`: compare Redis with a second Redis instead (any
//!   mismatch is then a flaw of this test, not of Cinnabar).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cinnabar_tests::{encode, Reply, Server};
use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};

/// SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO.
const INCLUDE_BITOPS: bool = true;

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

/// One command argument.
#[derive(Clone)]
enum Arg {
    Lit(Vec<u8>),
    /// A relative time in seconds: `base + index of the command`.
    Secs(u64),
    /// A relative time in milliseconds: `(base + index) * 1000 + 250`. The
    /// extra 250 ms keeps TTL's rounding away from the half-second edge.
    Millis(u64),
}

/// A generated command; rendered to bytes by [`render`].
#[derive(Clone)]
struct Cmd(Vec<Arg>);

impl fmt::Debug for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Lit(b) => f.write_str(&quote(b)),
            Arg::Secs(b) => write!(f, "<{b}+i s>"),
            Arg::Millis(b) => write!(f, "<({b}+i)*1000+250 ms>"),
        }
    }
}

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self.0.iter().map(|a| format!("{a:?}")).collect();
        f.write_str(&words.join(" "))
    }
}

/// The command's arguments as sent when it is the `index`-th of its case.
fn render(cmd: &Cmd, index: usize) -> Vec<Vec<u8>> {
    let i = index as u64;
    cmd.0
        .iter()
        .map(|a| match a {
            Arg::Lit(b) => b.clone(),
            Arg::Secs(base) => (base + i).to_string().into_bytes(),
            Arg::Millis(base) => ((base + i) * 1000 + 250).to_string().into_bytes(),
        })
        .collect()
}

/// redis-cli quoting, as `split_line` reads it (so a failing sequence can be
/// pasted into `tests/cases/*.redis`).
fn quote(b: &[u8]) -> String {
    let plain = !b.is_empty()
        && b.iter()
            .all(|&c| c.is_ascii_graphic() && c != b'"' && c != b'\'' && c != b'\\');
    if plain {
        return String::from_utf8_lossy(b).into_owned();
    }
    let mut s = String::from("\"");
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            c if c == b' ' || c.is_ascii_graphic() => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

/// A raw reply, readably: like `cinnabar_tests::show`, but every byte that
/// is not printable ASCII is escaped, so NULs and invalid UTF-8 show.
fn show(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            c if c == b' ' || c.is_ascii_graphic() => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

fn line(argv: &[Vec<u8>]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------
// Argument pools
// ---------------------------------------------------------------------------

/// Six keys that commands share (weighted), plus rare odd ones. At most nine
/// names exist, so a SCAN with the default COUNT 10 always completes.
const KEYS: &[&[u8]] = &[
    b"k0", b"k1", b"k2", b"k3", b"k4", b"k5", b"k0", b"k1", b"k2", b"k3", b"k4", b"k5", b"k0",
    b"k1", b"k2", b"k3", b"k4", b"k5", b"k0", b"k1", b"k2", b"k3", b"k4", b"k5", b"", b"k*",
    b"a b",
];

const VALUES: &[&[u8]] = &[
    b"",
    b"0",
    b"1",
    b"-1",
    b"42",
    b"007",
    b"3.5",
    b"-0.0",
    b"1e3",
    b"abc",
    b"hello world",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"9223372036854775808",
    b"12345678901234567890",
    b"9999",
    b"10000",
    b" 1",
    b"k1",
    // 44 bytes (the longest embstr) and 45 bytes.
    b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH",
    b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHI",
    b"a\x00b\r\nc\xff",
    b"\xff\xf0\x00\x01",
];

const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "10",
    "-10",
    "100",
    "007",
    "-0",
    "+5",
    " 1",
    "",
    "abc",
    "1.5",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
];

const FLOATS: &[&str] = &[
    "0",
    "1",
    "-1",
    "0.1",
    "1.5",
    "-3.25",
    "1e3",
    "1E-3",
    "-0.0",
    "3.0e2",
    "10.50",
    "0x10",
    "inf",
    "-inf",
    "nan",
    "abc",
    "",
    "1.5.5",
    " 1",
    "5e-324",
    "1.7976931348623157e308",
    "123456789012345678901234567890",
    "9223372036854775807",
];

/// GETRANGE / BITCOUNT / BITPOS indices.
const INDICES: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "-1",
    "-2",
    "-5",
    "-100",
    "10",
    "100",
    "x",
    "",
    "9223372036854775807",
    "-9223372036854775808",
];

/// SETRANGE offsets. No offset in [1000, 512 MB) so nothing allocates much.
const OFFSETS: &[&str] = &[
    "0",
    "1",
    "3",
    "10",
    "100",
    "-1",
    "x",
    "536870912",
    "9223372036854775807",
];

const SETBIT_OFFSETS: &[&str] = &[
    "0",
    "1",
    "7",
    "8",
    "15",
    "100",
    "1000",
    "-1",
    "x",
    "",
    "4294967296",
];

const GETBIT_OFFSETS: &[&str] = &[
    "0",
    "1",
    "7",
    "8",
    "15",
    "100",
    "1000",
    "-1",
    "x",
    "4294967295",
    "4294967296",
    "9223372036854775807",
];

const PATTERNS: &[&str] = &[
    "*", "*", "k*", "k?", "k[0-2]", "k[^1]", "k[!1]", "k[2-0]", "k[1-]", "*1*", "k\\*", "k\\1",
    "[", "k[", "k[a-", "\\", "?", "??", "*?*", "", "nomatch", "K*", "[a-k]*", "[^k]*",
];

const DBS: &[&str] = &[
    "0",
    "0",
    "0",
    "0",
    "1",
    "1",
    "1",
    "1",
    "2",
    "2",
    "15",
    "16",
    "-1",
    "x",
    "99999999999",
];

/// Edge cases for any time argument: errors, overflow, deletion.
const TIME_EDGES: &[&str] = &[
    "0",
    "-1",
    "-100",
    "abc",
    "1.5",
    "",
    "+5000",
    "01000",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775806",
    "9223372036854775",
    "9223372036854776",
];

const ABS_SECS: &[&str] = &[
    "1",
    "1",
    "4102444800",
    "4102444800",
    "4102444801",
    "99999999999",
];

const ABS_MILLIS: &[&str] = &[
    "1",
    "1",
    "4102444800000",
    "4102444800123",
    "4102444800500",
    "4102444800999",
    "99999999999999",
];

/// Names that no Redis version knows.
const UNKNOWN: &[&str] = &["NOSUCH", "GETT", "SETT", "", "get x"];

/// Arguments appended by the wrong-arity mutation (no small positive
/// numbers, which would be short TTLs).
const EXTRA: &[&str] = &["", "x", "abc", "0", "-1", "k1", "NX", "hello world", "N\0X"];

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

type S = BoxedStrategy<Vec<Arg>>;

fn pick(pool: &'static [&'static str]) -> S {
    prop::sample::select(pool)
        .prop_map(|s| vec![Arg::Lit(s.as_bytes().to_vec())])
        .boxed()
}

fn pick_bytes(pool: &'static [&'static [u8]]) -> S {
    prop::sample::select(pool)
        .prop_map(|s| vec![Arg::Lit(s.to_vec())])
        .boxed()
}

fn key() -> S {
    pick_bytes(KEYS)
}

fn distinct_keys() -> Vec<&'static [u8]> {
    let mut keys = KEYS.to_vec();
    keys.sort();
    keys.dedup();
    keys
}

/// A value: mostly from [`VALUES`], sometimes a random number.
fn val() -> S {
    union(vec![
        (8, pick_bytes(VALUES)),
        (1, int_in(-20_000, 20_000)),
        (1, any_int()),
        (1, float()),
        (1, short_text()),
    ])
}

/// A short random string over a small alphabet (for LCS, APPEND, GETRANGE).
fn short_text() -> S {
    prop::collection::vec(prop::sample::select(&b"ab01 "[..]), 0..16)
        .prop_map(|v| vec![Arg::Lit(v)])
        .boxed()
}

fn text(s: String) -> Vec<Arg> {
    vec![Arg::Lit(s.into_bytes())]
}

fn int_in(lo: i64, hi: i64) -> S {
    (lo..=hi).prop_map(|n| text(n.to_string())).boxed()
}

fn any_int() -> S {
    any::<i64>().prop_map(|n| text(n.to_string())).boxed()
}

/// A random float in several spellings (INCRBYFLOAT and its formatting).
fn float() -> S {
    let f = prop_oneof![-1000.0..1000.0f64, -1e20..1e20f64, any::<f64>()];
    (f, 0u8..4)
        .prop_map(|(x, style)| {
            text(match style {
                0 => format!("{x}"),
                1 => format!("{x:e}"),
                2 => format!("{x:.3}"),
                _ => format!("{x:.17}"),
            })
        })
        .boxed()
}

/// A pool entry or, one time in four, a number in `lo..=hi`.
fn pick_or_int(pool: &'static [&'static str], lo: i64, hi: i64) -> S {
    union(vec![(3, pick(pool)), (1, int_in(lo, hi))])
}

fn ints() -> S {
    union(vec![
        (6, pick(INTS)),
        (2, int_in(-1000, 1000)),
        (1, any_int()),
    ])
}

fn floats() -> S {
    union(vec![(3, pick(FLOATS)), (2, float())])
}

fn indices() -> S {
    pick_or_int(INDICES, -60, 60)
}

/// A command or option word in upper, lower or mixed case.
fn kw_any(words: &'static [&'static str]) -> S {
    (prop::sample::select(words), 0u8..8, any::<u32>())
        .prop_map(|(word, mode, mask)| {
            let bytes: Vec<u8> = match mode {
                0 => word.to_ascii_lowercase().into_bytes(),
                1 => word
                    .bytes()
                    .enumerate()
                    .map(|(i, b)| {
                        if (mask >> (i % 32)) & 1 == 1 {
                            b.to_ascii_lowercase()
                        } else {
                            b.to_ascii_uppercase()
                        }
                    })
                    .collect(),
                _ => word.to_ascii_uppercase().into_bytes(),
            };
            vec![Arg::Lit(bytes)]
        })
        .boxed()
}

macro_rules! kw {
    ($($w:literal),+) => {
        kw_any(&[$($w),+])
    };
}

/// Concatenation.
fn seq(parts: Vec<S>) -> S {
    parts
        .prop_map(|v| v.into_iter().flatten().collect())
        .boxed()
}

/// `lo..=hi` repetitions of `s`, concatenated.
fn rep(s: S, lo: usize, hi: usize) -> S {
    prop::collection::vec(s, lo..=hi)
        .prop_map(|v| v.into_iter().flatten().collect())
        .boxed()
}

/// Options in any order: often none, often one, sometimes up to `max`
/// (which may conflict).
fn opts(opt: S, max: usize) -> S {
    union(vec![
        (4, Just(vec![]).boxed()),
        (3, opt.clone()),
        (2, rep(opt, 2, max)),
    ])
}

fn union(options: Vec<(u32, S)>) -> S {
    Union::new_weighted(options).boxed()
}

/// A relative time in seconds (mostly far ahead, sometimes an edge case).
fn secs() -> S {
    union(vec![
        (
            6,
            prop::sample::select(&[1000u64, 5000, 100_000][..])
                .prop_map(|b| vec![Arg::Secs(b)])
                .boxed(),
        ),
        (1, pick(TIME_EDGES)),
    ])
}

fn millis() -> S {
    union(vec![
        (
            6,
            prop::sample::select(&[1000u64, 5000, 100_000][..])
                .prop_map(|b| vec![Arg::Millis(b)])
                .boxed(),
        ),
        (1, pick(TIME_EDGES)),
    ])
}

fn abs_secs() -> S {
    union(vec![(6, pick(ABS_SECS)), (1, pick(TIME_EDGES))])
}

fn abs_millis() -> S {
    union(vec![(6, pick(ABS_MILLIS)), (1, pick(TIME_EDGES))])
}

fn set_opt() -> S {
    union(vec![
        (3, kw!("NX", "XX", "GET", "KEEPTTL")),
        (2, seq(vec![kw!("EX"), secs()])),
        (2, seq(vec![kw!("PX"), millis()])),
        (1, seq(vec![kw!("EXAT"), abs_secs()])),
        (1, seq(vec![kw!("PXAT"), abs_millis()])),
        (1, pick(&["FOO", "EX", "NXX"])),
    ])
}

fn getex_opt() -> S {
    union(vec![
        (2, seq(vec![kw!("EX"), secs()])),
        (2, seq(vec![kw!("PX"), millis()])),
        (1, seq(vec![kw!("EXAT"), abs_secs()])),
        (1, seq(vec![kw!("PXAT"), abs_millis()])),
        (2, kw!("PERSIST")),
        (1, pick(&["FOO", "KEEPTTL", "NX"])),
    ])
}

fn expire_opt() -> S {
    union(vec![
        (8, kw!("NX", "XX", "GT", "LT")),
        (1, pick(&["FOO", "G", "N\0X"])),
    ])
}

fn copy_opt() -> S {
    union(vec![
        (3, seq(vec![kw!("DB"), pick(DBS)])),
        (3, kw!("REPLACE")),
        (1, pick(&["FOO", "DB"])),
    ])
}

fn lcs_opt() -> S {
    union(vec![
        (3, kw!("LEN", "IDX", "WITHMATCHLEN")),
        (
            2,
            seq(vec![
                kw!("MINMATCHLEN"),
                pick(&["0", "1", "2", "3", "-1", "x"]),
            ]),
        ),
        (1, pick(&["FOO"])),
    ])
}

fn scan() -> S {
    let opt = union(vec![
        (
            4,
            seq(vec![
                kw!("COUNT"),
                pick(&["1000", "1000", "1000", "100", "0", "-1", "x"]),
            ]),
        ),
        (4, seq(vec![kw!("MATCH"), pick(PATTERNS)])),
        (
            3,
            seq(vec![
                kw!("TYPE"),
                pick(&["string", "STRING", "list", "none", "foo"]),
            ]),
        ),
        (1, pick(&["FOO"])),
    ]);
    // No other cursors: where a nonzero cursor starts depends on the hash
    // table's layout (random in Redis too).
    seq(vec![
        kw!("SCAN"),
        pick(&[
            "0",
            "0",
            "0",
            "0",
            "0",
            "0",
            "x",
            "18446744073709551616",
            "1x",
        ]),
        opts(opt, 3),
    ])
}

fn bit_range_unit() -> S {
    kw!("BYTE", "BIT", "BYTE", "BIT", "FOO")
}

fn bitfield_sub(read_only: bool) -> S {
    let ty = || {
        union(vec![
            (
                3,
                pick(&[
                    "u1", "i1", "u8", "i8", "u8", "i8", "u16", "i16", "i32", "u32", "i63", "u63",
                    "i64", "u64", "i65", "i0", "u0", "x8", "8", "i", "I8",
                ]),
            ),
            (
                2,
                (any::<bool>(), 1u32..=64)
                    .prop_map(|(signed, bits)| {
                        text(format!("{}{bits}", if signed { 'i' } else { 'u' }))
                    })
                    .boxed(),
            ),
        ])
    };
    // No large offsets: BITFIELD SET would allocate up to 512 MB.
    let off = || {
        union(vec![
            (
                3,
                pick(&[
                    "0",
                    "0",
                    "1",
                    "3",
                    "7",
                    "8",
                    "13",
                    "100",
                    "#0",
                    "#1",
                    "#2",
                    "-1",
                    "x",
                    "#-1",
                    "4294967296",
                ]),
            ),
            (1, int_in(0, 130)),
            (1, (0u32..12).prop_map(|n| text(format!("#{n}"))).boxed()),
        ])
    };
    let num = || {
        union(vec![
            (
                3,
                pick(&[
                    "0",
                    "1",
                    "-1",
                    "100",
                    "127",
                    "128",
                    "255",
                    "256",
                    "-128",
                    "-129",
                    "9223372036854775807",
                    "-9223372036854775808",
                    "x",
                ]),
            ),
            (1, int_in(-300, 300)),
            (1, any_int()),
        ])
    };
    let (get, write) = if read_only { (8, 1) } else { (3, 3) };
    union(vec![
        (get, seq(vec![kw!("GET"), ty(), off()])),
        (write, seq(vec![kw!("SET"), ty(), off(), num()])),
        (write, seq(vec![kw!("INCRBY"), ty(), off(), num()])),
        (
            write,
            seq(vec![kw!("OVERFLOW"), kw!("WRAP", "SAT", "FAIL", "FOO")]),
        ),
        (1, pick(&["FOO"])),
    ])
}

/// Command families and their weights.
fn families() -> Vec<(u32, S)> {
    let mut f: Vec<(u32, S)> = vec![
        // strings
        (8, seq(vec![kw!("GET"), key()])),
        (8, seq(vec![kw!("SET"), key(), val(), opts(set_opt(), 3)])),
        (2, seq(vec![kw!("SETNX"), key(), val()])),
        (2, seq(vec![kw!("SETEX"), key(), secs(), val()])),
        (2, seq(vec![kw!("PSETEX"), key(), millis(), val()])),
        (3, seq(vec![kw!("MGET"), rep(key(), 1, 4)])),
        (
            3,
            seq(vec![
                kw!("MSET", "MSETNX"),
                rep(seq(vec![key(), val()]), 1, 3),
            ]),
        ),
        (2, seq(vec![kw!("GETSET"), key(), val()])),
        (2, seq(vec![kw!("GETDEL"), key()])),
        (3, seq(vec![kw!("GETEX"), key(), opts(getex_opt(), 2)])),
        (4, seq(vec![kw!("APPEND"), key(), val()])),
        (2, seq(vec![kw!("STRLEN"), key()])),
        (3, seq(vec![kw!("INCR", "DECR"), key()])),
        (3, seq(vec![kw!("INCRBY", "DECRBY"), key(), ints()])),
        (3, seq(vec![kw!("INCRBYFLOAT"), key(), floats()])),
        (
            3,
            seq(vec![kw!("GETRANGE", "SUBSTR"), key(), indices(), indices()]),
        ),
        (
            3,
            seq(vec![
                kw!("SETRANGE"),
                key(),
                pick_or_int(OFFSETS, 0, 70),
                val(),
            ]),
        ),
        (2, seq(vec![kw!("LCS"), key(), key(), opts(lcs_opt(), 3)])),
        // keyspace
        (
            4,
            seq(vec![
                kw!("DEL", "UNLINK", "EXISTS", "TOUCH"),
                rep(key(), 1, 4),
            ]),
        ),
        (3, seq(vec![kw!("TYPE"), key()])),
        (3, seq(vec![kw!("RENAME", "RENAMENX"), key(), key()])),
        (2, seq(vec![kw!("KEYS"), pick(PATTERNS)])),
        (2, scan()),
        (1, kw!("RANDOMKEY")),
        (
            3,
            seq(vec![kw!("EXPIRE"), key(), secs(), opts(expire_opt(), 2)]),
        ),
        (
            2,
            seq(vec![kw!("PEXPIRE"), key(), millis(), opts(expire_opt(), 2)]),
        ),
        (
            2,
            seq(vec![
                kw!("EXPIREAT"),
                key(),
                abs_secs(),
                opts(expire_opt(), 2),
            ]),
        ),
        (
            2,
            seq(vec![
                kw!("PEXPIREAT"),
                key(),
                abs_millis(),
                opts(expire_opt(), 2),
            ]),
        ),
        (
            5,
            seq(vec![kw!("TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"), key()]),
        ),
        (2, seq(vec![kw!("PERSIST"), key()])),
        (2, seq(vec![kw!("COPY"), key(), key(), opts(copy_opt(), 2)])),
        (2, seq(vec![kw!("MOVE"), key(), pick(DBS)])),
        (
            3,
            seq(vec![
                kw!("OBJECT"),
                union(vec![
                    (8, kw!("ENCODING", "ENCODING", "REFCOUNT", "FOO")),
                    (1, pick(&["FO\0O"])),
                ]),
                key(),
            ]),
        ),
        // connection / server
        (1, seq(vec![kw!("PING"), rep(val(), 0, 1)])),
        (1, seq(vec![kw!("ECHO"), val()])),
        (2, seq(vec![kw!("SELECT"), pick(DBS)])),
        (2, kw!("DBSIZE")),
        (
            1,
            seq(vec![
                kw!("FLUSHDB", "FLUSHDB", "FLUSHDB", "FLUSHALL"),
                rep(kw!("ASYNC", "SYNC", "FOO"), 0, 1),
            ]),
        ),
        (1, seq(vec![kw!("SWAPDB"), pick(DBS), pick(DBS)])),
        (1, seq(vec![pick(UNKNOWN), rep(val(), 0, 2)])),
    ];
    if INCLUDE_BITOPS {
        let bits = || pick(&["0", "0", "1", "1", "1", "2", "-1", "x"]);
        f.extend([
            (
                3,
                seq(vec![
                    kw!("SETBIT"),
                    key(),
                    pick_or_int(SETBIT_OFFSETS, 0, 400),
                    bits(),
                ]),
            ),
            (
                3,
                seq(vec![
                    kw!("GETBIT"),
                    key(),
                    pick_or_int(GETBIT_OFFSETS, 0, 600),
                ]),
            ),
            (
                3,
                seq(vec![
                    kw!("BITCOUNT"),
                    key(),
                    rep(
                        seq(vec![indices(), indices(), rep(bit_range_unit(), 0, 1)]),
                        0,
                        1,
                    ),
                ]),
            ),
            (
                3,
                seq(vec![
                    kw!("BITPOS"),
                    key(),
                    bits(),
                    rep(
                        seq(vec![
                            indices(),
                            rep(seq(vec![indices(), rep(bit_range_unit(), 0, 1)]), 0, 1),
                        ]),
                        0,
                        1,
                    ),
                ]),
            ),
            (
                2,
                seq(vec![
                    kw!("BITOP"),
                    kw!("AND", "OR", "XOR", "NOT", "NOT", "FOO"),
                    key(),
                    rep(key(), 1, 3),
                ]),
            ),
            (
                3,
                seq(vec![kw!("BITFIELD"), key(), rep(bitfield_sub(false), 0, 3)]),
            ),
            (
                1,
                seq(vec![
                    kw!("BITFIELD_RO"),
                    key(),
                    rep(bitfield_sub(true), 0, 2),
                ]),
            ),
        ]);
    }
    f
}

#[derive(Clone, Debug)]
enum Mutation {
    None,
    DropLast,
    Append(&'static str),
}

/// One command; 10% of them lose their last argument or gain one, so that
/// arity and syntax errors are compared too.
fn command() -> BoxedStrategy<Cmd> {
    let mutation = prop_oneof![
        18 => Just(Mutation::None),
        1 => Just(Mutation::DropLast),
        1 => prop::sample::select(EXTRA).prop_map(Mutation::Append),
    ];
    (union(families()), mutation)
        .prop_map(|(mut args, m)| {
            match m {
                Mutation::None => {}
                // Never send an empty multibulk: Redis ignores it silently.
                Mutation::DropLast if args.len() > 1 => {
                    args.pop();
                }
                Mutation::DropLast => {}
                Mutation::Append(extra) => args.push(Arg::Lit(extra.as_bytes().to_vec())),
            }
            Cmd(args)
        })
        .boxed()
}

fn sequence() -> BoxedStrategy<Vec<Cmd>> {
    prop::collection::vec(command(), 1..=30).boxed()
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

/// A Redis server and a Cinnabar server, with one connection to each.
struct Pair {
    resp3: bool,
    redis: Server,
    ours: Server,
    r: Link,
    c: Link,
    /// A connection closed or timed out: reconnect before the next case.
    broken: bool,
}

/// A raw RESP connection like [`cinnabar_tests::Conn`], but whose framing
/// doesn't require simple-string and error lines to be UTF-8 (a reply that
/// echoes binary argument bytes must be compared, not hang the reader).
struct Link {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Length of the first complete RESP2/RESP3 reply in `buf`, if complete.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let eol = buf.windows(2).position(|w| w == b"\r\n")?;
    let next = eol + 2;
    let count = || -> Option<i64> { std::str::from_utf8(&buf[1..eol]).ok()?.parse().ok() };
    match buf.first()? {
        b'$' | b'=' | b'!' => {
            let n = count()?;
            if n < 0 {
                return Some(next);
            }
            let end = next + n as usize + 2;
            (buf.len() >= end).then_some(end)
        }
        t @ (b'*' | b'~' | b'%' | b'>' | b'|') => {
            let mut n = count()?;
            if n < 0 {
                return Some(next);
            }
            if *t == b'%' || *t == b'|' {
                n *= 2;
            }
            let mut pos = next;
            for _ in 0..n {
                pos += frame_len(&buf[pos..])?;
            }
            Some(pos)
        }
        _ => Some(next),
    }
}

impl Link {
    fn open(server: &Server, resp3: bool) -> Link {
        let stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("set timeout");
        let _ = stream.set_nodelay(true);
        let mut link = Link {
            stream,
            buf: Vec::new(),
        };
        // Expired keys then stay until a command touches them, on both
        // servers alike, instead of until a background cycle finds them.
        let reply = link.exchange(&[
            b"DEBUG".to_vec(),
            b"SET-ACTIVE-EXPIRE".to_vec(),
            b"0".to_vec(),
        ]);
        assert_eq!(
            reply.as_deref(),
            Ok(&b"+OK\r\n"[..]),
            "DEBUG SET-ACTIVE-EXPIRE 0 on {}",
            server.name
        );
        if resp3 {
            // HELLO's reply contains the client id: compare neither.
            link.exchange(&[b"HELLO".to_vec(), b"3".to_vec()])
                .expect("HELLO 3 reply");
        }
        link
    }

    /// Sends a command and reads one reply: `Err` if the connection closed
    /// or no complete reply arrived in time.
    fn exchange(&mut self, argv: &[Vec<u8>]) -> Result<Vec<u8>, &'static [u8]> {
        let args: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
        if self.stream.write_all(&encode(&args)).is_err() {
            return Err(b"<write failed>");
        }
        loop {
            if let Some(n) = frame_len(&self.buf) {
                let rest = self.buf.split_off(n);
                return Ok(std::mem::replace(&mut self.buf, rest));
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(b"<connection closed>"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(b"<no complete reply within 2 s>");
                }
                Err(_) => return Err(b"<connection reset>"),
            }
        }
    }
}

/// One exchange; a failure reads as a marker reply and marks the pair for
/// reconnection.
fn exchange(link: &mut Link, argv: &[Vec<u8>], broken: &mut bool) -> Vec<u8> {
    match link.exchange(argv) {
        Ok(mut reply) => {
            if !link.buf.is_empty() {
                // More than one reply to one command.
                *broken = true;
                reply.extend_from_slice(b"<then unexpected bytes: ");
                reply.append(&mut link.buf);
                reply.push(b'>');
            }
            reply
        }
        Err(marker) => {
            *broken = true;
            let mut m = marker.to_vec();
            if !link.buf.is_empty() {
                m.extend_from_slice(b" partial: ");
                m.extend_from_slice(&link.buf);
            }
            m
        }
    }
}

/// Our server, or with `DIFF_SELF_CHECK=1` a second genuine Redis (to show
/// that the generator and the canonical comparisons are deterministic).
fn start_ours() -> Server {
    if std::env::var("DIFF_SELF_CHECK").is_ok_and(|v| v == "1") {
        Server::redis(&[])
    } else {
        Server::cinnabar(&[])
    }
}

impl Pair {
    fn start(resp3: bool) -> Pair {
        let redis = Server::redis(&[]);
        let ours = start_ours();
        let r = Link::open(&redis, resp3);
        let c = Link::open(&ours, resp3);
        Pair {
            resp3,
            redis,
            ours,
            r,
            c,
            broken: false,
        }
    }

    /// Restarts a server that died (a crash is reported by the case that
    /// caused it) and reconnects.
    fn heal(&mut self) {
        if !self.redis.is_running() {
            self.redis = Server::redis(&[]);
        }
        if !self.ours.is_running() {
            self.ours = start_ours();
        }
        self.r = Link::open(&self.redis, self.resp3);
        self.c = Link::open(&self.ours, self.resp3);
        self.broken = false;
    }

    fn both(&mut self, argv: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
        let rr = exchange(&mut self.r, argv, &mut self.broken);
        let cr = exchange(&mut self.c, argv, &mut self.broken);
        (rr, cr)
    }

    /// Empty keyspace, database 0.
    fn reset(&mut self) {
        if self.broken {
            self.heal();
        }
        for attempt in 0..2 {
            let (r1, c1) = self.both(&[b"FLUSHALL".to_vec()]);
            let (r2, c2) = self.both(&[b"SELECT".to_vec(), b"0".to_vec()]);
            if [r1, c1, r2, c2].iter().all(|r| r == b"+OK\r\n") {
                return;
            }
            assert!(attempt == 0, "cannot reset the servers between cases");
            self.heal();
        }
    }
}

// ---------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------

/// How a command's replies are compared.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Check {
    Exact,
    /// Unordered arrays (KEYS, SCAN with a complete iteration).
    Sorted,
    /// nil on both, or on each a key that exists there.
    RandomKey,
    Ttl,
    Pttl,
    ExpireTime,
    PexpireTime,
}

fn check_for(argv: &[Vec<u8>]) -> Check {
    let name = argv
        .first()
        .map(|n| n.to_ascii_uppercase())
        .unwrap_or_default();
    match name.as_slice() {
        b"KEYS" | b"SCAN" => Check::Sorted,
        b"RANDOMKEY" => Check::RandomKey,
        b"TTL" => Check::Ttl,
        b"PTTL" => Check::Pttl,
        b"EXPIRETIME" => Check::ExpireTime,
        b"PEXPIRETIME" => Check::PexpireTime,
        _ => Check::Exact,
    }
}

/// The `tests/cases` directive that compares like `check`.
fn directive(check: Check) -> &'static str {
    match check {
        Check::Exact => "",
        Check::Sorted => "~sort ",
        Check::RandomKey => "~type ",
        Check::Ttl | Check::ExpireTime => "~approx 1 ",
        Check::Pttl | Check::PexpireTime => "~approx 1000 ",
    }
}

fn int_reply(b: &[u8]) -> Option<i64> {
    if b.first() != Some(&b':') || b.len() < 3 {
        return None;
    }
    std::str::from_utf8(&b[1..b.len() - 2]).ok()?.parse().ok()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Every absolute expiry time the generator can set, in milliseconds.
fn absolute_expiries_ms() -> Vec<i64> {
    let parse = |pool: &[&str]| -> Vec<i64> {
        pool.iter()
            .chain(TIME_EDGES)
            .filter_map(|t| t.parse::<i64>().ok())
            .filter(|&t| t > 0)
            .collect()
    };
    let mut ms = parse(ABS_MILLIS);
    ms.extend(
        parse(ABS_SECS)
            .into_iter()
            .filter_map(|t| t.checked_mul(1000)),
    );
    ms
}

/// Integer replies that depend on the clock: equal, or both non-negative
/// and within `tolerance` when `racy(value)`.
fn close_ints(rr: &[u8], cr: &[u8], tolerance: i64, racy: impl Fn(i64) -> bool) -> bool {
    if rr == cr {
        return true;
    }
    match (int_reply(rr), int_reply(cr)) {
        (Some(a), Some(b)) if a >= 0 && b >= 0 && racy(a) && racy(b) => (a - b).abs() <= tolerance,
        _ => false,
    }
}

fn parse(b: &[u8]) -> Reply {
    Reply::parse(b).unwrap_or(Reply::Line(b'?', b.to_vec()))
}

/// The key in a RANDOMKEY bulk reply.
fn bulk(b: &[u8]) -> Option<Vec<u8>> {
    match Reply::parse(b)? {
        Reply::Blob(b'$', k) => Some(k),
        _ => None,
    }
}

/// Compares the replies of one command; `Err` describes a mismatch.
/// `slow`: the case has run long enough that TTL may have rounded a second
/// down on one server and not on the other.
fn compare(
    pair: &mut Pair,
    argv: &[Vec<u8>],
    rr: &[u8],
    cr: &[u8],
    slow: bool,
) -> Result<(), String> {
    let ok = match check_for(argv) {
        Check::Exact => rr == cr,
        Check::Sorted => rr == cr || parse(rr).sorted() == parse(cr).sorted(),
        // Relative TTLs are exact while the case is young (see
        // `Arg::Millis`); expiries years ahead (EXAT/PXAT) round either way.
        Check::Ttl => close_ints(rr, cr, 1, |v| slow || v >= 1_000_000),
        Check::Pttl => close_ints(rr, cr, 1000, |_| true),
        // Times the generator sets absolutely are exact; relative ones race.
        Check::ExpireTime => {
            let exact = absolute_expiries_ms();
            close_ints(rr, cr, 1, |v| {
                !exact
                    .iter()
                    .any(|&ms| (i128::from(ms) + 500) / 1000 == i128::from(v))
            })
        }
        Check::PexpireTime => {
            let exact = absolute_expiries_ms();
            close_ints(rr, cr, 1000, |v| !exact.contains(&v))
        }
        Check::RandomKey => match (bulk(rr), bulk(cr)) {
            (Some(rk), Some(ck)) => {
                let exists = |k: Vec<u8>| vec![b"EXISTS".to_vec(), k];
                let re = exchange(&mut pair.r, &exists(rk), &mut pair.broken);
                let ce = exchange(&mut pair.c, &exists(ck), &mut pair.broken);
                if re != b":1\r\n" {
                    return Err(format!("redis's RANDOMKEY key: EXISTS -> {}", show(&re)));
                }
                if ce != b":1\r\n" {
                    return Err(format!(
                        "cinnabar's RANDOMKEY key does not exist: EXISTS -> {}",
                        show(&ce)
                    ));
                }
                // RANDOMKEY deletes the expired keys it happens to draw:
                // touch every key so both servers have deleted them all.
                for k in distinct_keys() {
                    pair.both(&[b"EXISTS".to_vec(), k.to_vec()]);
                }
                true
            }
            (None, None) => rr == cr,
            _ => false,
        },
    };
    if ok {
        Ok(())
    } else {
        Err(String::new())
    }
}

/// Runs one case. `Err((index, message))` for the first mismatch.
/// `stats` counts, per command name, the commands sent and Redis's error
/// replies among them.
fn run_case(pair: &mut Pair, cmds: &[Cmd], stats: &mut Stats) -> Result<(), (usize, String)> {
    pair.reset();
    let started = Instant::now();
    let mut transcript: Vec<String> = vec![];
    for (i, cmd) in cmds.iter().enumerate() {
        let argv = render(cmd, i);
        let (rr, cr) = pair.both(&argv);
        let name = String::from_utf8_lossy(&argv[0].to_ascii_uppercase()).into_owned();
        let counts = stats.entry(name).or_default();
        counts[0] += 1;
        counts[1] += u32::from(rr.first() == Some(&b'-'));
        let slow = started.elapsed() > Duration::from_millis(400);
        if let Err(note) = compare(pair, &argv, &rr, &cr, slow) {
            let mut msg = String::from("Sequence (after FLUSHALL, SELECT 0):\n");
            for t in &transcript {
                msg.push_str(t);
                msg.push('\n');
            }
            msg.push_str(&format!(
                ">>> {}\n      redis:    {}\n      cinnabar: {}\n",
                line(&argv),
                show(&rr),
                show(&cr)
            ));
            if !note.is_empty() {
                msg.push_str(&format!("      ({note})\n"));
            }
            msg.push_str("As a case file:\n");
            for c in cmds[..=i].iter().enumerate().map(|(j, c)| render(c, j)) {
                msg.push_str(&format!("{}{}\n", directive(check_for(&c)), line(&c)));
            }
            return Err((i, msg));
        }
        let mut shown = show(&rr);
        if shown.len() > 120 {
            let mut cut = 120;
            while !shown.is_char_boundary(cut) {
                cut -= 1;
            }
            shown.truncate(cut);
            shown.push_str("...");
        }
        transcript.push(format!("    {:<50} -> {}", line(&argv), shown));
    }
    Ok(())
}

type Stats = BTreeMap<String, [u32; 2]>;

/// True if `DIFF_SKIP` (comma-separated command names; `UNKNOWN` stands for
/// the unknown-command case) excludes the command.
fn skipped(cmd: &Cmd, skip: &[String]) -> bool {
    let Some(Arg::Lit(name)) = cmd.0.first() else {
        return false;
    };
    let name = String::from_utf8_lossy(name).to_ascii_uppercase();
    skip.iter().any(|s| {
        *s == name || (s == "UNKNOWN" && UNKNOWN.iter().any(|u| u.eq_ignore_ascii_case(&name)))
    })
}

/// A short name for a kind of mismatch (survey mode).
fn signature(cmd: &[Vec<u8>], msg: &str) -> String {
    let name = cmd
        .first()
        .map(|n| String::from_utf8_lossy(&n.to_ascii_uppercase()).into_owned())
        .unwrap_or_default();
    if msg.contains("redis:    -ERR unknown command") {
        return "<unknown command>".into();
    }
    let sub = match name.as_str() {
        "OBJECT" | "BITFIELD" | "BITFIELD_RO" | "BITOP" => cmd
            .get(if name == "OBJECT" { 1 } else { 2 })
            .map(|s| String::from_utf8_lossy(&s.to_ascii_uppercase()).into_owned())
            .unwrap_or_default(),
        _ => String::new(),
    };
    // The reply kinds: type byte, or the error's first words.
    let kind = |who: &str| -> String {
        let line = msg
            .lines()
            .find_map(|l| l.trim().strip_prefix(who))
            .unwrap_or("")
            .trim();
        if line.starts_with('-') {
            line.chars().take(24).collect()
        } else {
            line.chars().take(1).collect()
        }
    };
    format!(
        "{name} {sub} redis={} ours={}",
        kind("redis:"),
        kind("cinnabar:")
    )
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn run(resp3: bool) {
    if !cinnabar_tests::redis_available() {
        eprintln!("redis-server not installed: skipping");
        return;
    }
    let cases = env_u64("DIFF_CASES").unwrap_or(2000) as u32;
    let seed = env_u64("DIFF_SEED").unwrap_or_else(|| now_ms() as u64 ^ u64::from(resp3));
    let survey = std::env::var("DIFF_SURVEY").is_ok_and(|v| v == "1");
    let proto = if resp3 { "RESP3" } else { "RESP2" };
    let pair = RefCell::new(Pair::start(resp3));
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 200,
        // Shrinking a hang costs a 2 s timeout per step.
        max_shrink_time: 30_000,
        rng_seed: RngSeed::Fixed(seed),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    // Survey mode: the shortest sequence per kind of mismatch.
    let found: RefCell<BTreeMap<String, (usize, String)>> = RefCell::new(BTreeMap::new());
    let skip: Vec<String> = std::env::var("DIFF_SKIP")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().to_ascii_uppercase())
        .collect();
    let stats = RefCell::new(Stats::new());
    let result = runner.run(&sequence(), |cmds| {
        let cmds: Vec<Cmd> = cmds.into_iter().filter(|c| !skipped(c, &skip)).collect();
        let outcome = run_case(&mut pair.borrow_mut(), &cmds, &mut stats.borrow_mut());
        match outcome {
            Ok(()) => Ok(()),
            Err((i, msg)) if survey => {
                let sig = signature(&render(&cmds[i], i), &msg);
                let mut found = found.borrow_mut();
                let entry = found.entry(sig).or_insert((usize::MAX, String::new()));
                if i + 1 < entry.0 {
                    *entry = (i + 1, msg);
                }
                Ok(())
            }
            Err((_, msg)) => Err(TestCaseError::fail(msg)),
        }
    });
    eprintln!(
        "random_diff {proto}: {cases} cases, seed {seed}, {:.1?}",
        started.elapsed()
    );
    if std::env::var("DIFF_STATS").is_ok_and(|v| v == "1") {
        for (name, [sent, errors]) in stats.borrow().iter() {
            eprintln!("{name:>14} {sent:>7} sent {errors:>7} errors");
        }
    }
    let found = found.into_inner();
    if survey && !found.is_empty() {
        let mut report = format!(
            "{} kinds of mismatch ({proto}, seed {seed}):\n",
            found.len()
        );
        for (sig, (_, msg)) in &found {
            report.push_str(&format!("\n=== {sig}\n{msg}"));
        }
        panic!("{report}");
    }
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, _)) => panic!(
            "Cinnabar differs from Redis 7.0 ({proto}). Shortest failing sequence found:\n{}\
             Replay: DIFF_SEED={seed} DIFF_CASES={cases}{} cargo test -p cinnabar-tests \
             --test random_diff {}",
            reason.message(),
            if skip.is_empty() {
                String::new()
            } else {
                format!(" DIFF_SKIP={}", skip.join(","))
            },
            if resp3 { "resp3" } else { "resp2" },
        ),
        Err(TestError::Abort(reason)) => panic!("aborted: {}", reason.message()),
    }
}

#[test]
fn random_sequences_match_redis_resp2() {
    run(false);
}

#[test]
fn random_sequences_match_redis_resp3() {
    run(true);
}
