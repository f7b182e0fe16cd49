//! The simulated clients' side of RESP: request encoding and an incremental
//! reply decoder for RESP2 and RESP3.
//!
//! The decoder is fed whatever byte runs the network delivers and yields
//! complete replies. A partial reply is not an error (it waits for more
//! bytes); anything malformed is a sticky [`ProtocolError`]: the client
//! drops the connection, as a real client library would. It never panics
//! and never allocates what a length prefix merely claims (it will be
//! fuzzed): every limit below is named.

use crate::model::ArgSink;
use std::fmt;

/// Longest header line (`+...`, `-...`, `:...`, lengths) we accept.
pub const LINE_LEN_MAX: usize = 64 * 1024;
/// Largest bulk string we accept (Redis's proto-max-bulk-len default).
pub const BULK_LEN_MAX: i64 = 512 * 1024 * 1024;
/// Largest aggregate element count we accept.
pub const AGGREGATE_LEN_MAX: i64 = 1 << 32;
/// Deepest nesting of aggregates.
pub const DEPTH_MAX: usize = 64;
/// Elements reserved up front for an aggregate, whatever it claims.
const PREALLOC_MAX: usize = 64;

/// A decoded reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `+text`
    Simple(Vec<u8>),
    /// `-text` or RESP3 `!len` blob error.
    Error(Vec<u8>),
    /// `:n`
    Int(i64),
    /// `$len` bulk string, or RESP3 `=len` verbatim string (format dropped).
    Bulk(Vec<u8>),
    /// RESP2 `$-1` / `*-1`, RESP3 `_`.
    Nil,
    /// `*n`
    Array(Vec<Value>),
    /// RESP3 `%n`
    Map(Vec<(Value, Value)>),
    /// RESP3 `~n`
    Set(Vec<Value>),
    /// RESP3 `,x`, kept as text (and parsed on demand) so `Value` is exact.
    Double(Vec<u8>),
    /// RESP3 `#t` / `#f`
    Bool(bool),
    /// RESP3 `(n`
    BigNumber(Vec<u8>),
    /// RESP3 `>n` out-of-band push.
    Push(Vec<Value>),
}

impl Value {
    /// The value as text for traces and failure reports (bounded).
    pub fn short(&self) -> String {
        let mut s = String::new();
        self.write_short(&mut s);
        if s.len() > 300 {
            let mut cut = 300;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push('…');
        }
        s
    }

    fn write_short(&self, s: &mut String) {
        use std::fmt::Write;
        if s.len() > 400 {
            return;
        }
        let list = |s: &mut String, open: &str, items: &[Value], close: &str| {
            s.push_str(open);
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                v.write_short(s);
            }
            s.push_str(close);
        };
        match self {
            Value::Simple(b) => {
                s.push('+');
                s.push_str(&String::from_utf8_lossy(b));
            }
            Value::Error(b) => {
                s.push('-');
                s.push_str(&String::from_utf8_lossy(b));
            }
            Value::Int(n) => {
                let _ = write!(s, ":{n}");
            }
            Value::Bulk(b) => {
                let _ = write!(s, "{:?}", String::from_utf8_lossy(b));
            }
            Value::Nil => s.push_str("nil"),
            Value::Array(v) => list(s, "[", v, "]"),
            Value::Set(v) => list(s, "~{", v, "}"),
            Value::Push(v) => list(s, ">[", v, "]"),
            Value::Map(kv) => {
                s.push('{');
                for (i, (k, v)) in kv.iter().enumerate() {
                    if i > 0 {
                        s.push(' ');
                    }
                    k.write_short(s);
                    s.push_str(": ");
                    v.write_short(s);
                }
                s.push('}');
            }
            Value::Double(b) => {
                s.push(',');
                s.push_str(&String::from_utf8_lossy(b));
            }
            Value::Bool(b) => s.push_str(if *b { "#t" } else { "#f" }),
            Value::BigNumber(b) => {
                s.push('(');
                s.push_str(&String::from_utf8_lossy(b));
            }
        }
    }
}

/// Why a byte stream is not RESP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "protocol error: {}", self.0)
    }
}

/// Incremental reply decoder.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed by returned replies.
    pos: usize,
    error: Option<ProtocolError>,
}

enum Step<T> {
    Done(T, usize),
    Incomplete,
}

type Parse<T> = Result<Step<T>, ProtocolError>;

fn err<T>(msg: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(msg.into()))
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Appends bytes received from the network.
    pub fn feed(&mut self, data: &[u8]) {
        if self.error.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes buffered but not yet part of a returned reply.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete reply, `Ok(None)` if more bytes are needed. Errors
    /// are sticky: once the stream is broken every call returns the error.
    pub fn next_value(&mut self) -> Result<Option<Value>, ProtocolError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match parse_value(&self.buf, self.pos, 0) {
            Ok(Step::Done(v, next)) => {
                self.pos = next;
                // Compact once the consumed prefix dominates the buffer.
                if self.pos == self.buf.len() {
                    self.buf.clear();
                    self.pos = 0;
                } else if self.pos > 4096 && self.pos * 2 > self.buf.len() {
                    self.buf.drain(..self.pos);
                    self.pos = 0;
                }
                Ok(Some(v))
            }
            Ok(Step::Incomplete) => Ok(None),
            Err(e) => {
                self.error = Some(e.clone());
                self.buf = Vec::new();
                self.pos = 0;
                Err(e)
            }
        }
    }
}

/// The header line starting at `at` (type byte excluded), and the offset
/// after its CRLF.
fn line(buf: &[u8], at: usize) -> Parse<&[u8]> {
    let rest = &buf[at.min(buf.len())..];
    let window = &rest[..rest.len().min(LINE_LEN_MAX + 2)];
    match window.iter().position(|&b| b == b'\r') {
        Some(i) if i + 1 < window.len() => {
            if window[i + 1] != b'\n' {
                return err("CR not followed by LF");
            }
            Ok(Step::Done(&rest[..i], at + i + 2))
        }
        Some(_) => Ok(Step::Incomplete),
        None if rest.len() > LINE_LEN_MAX => err("header line too long"),
        None => Ok(Step::Incomplete),
    }
}

/// Parses a signed decimal integer exactly (no spaces, no `+`, no overflow).
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let v = (d - b'0') as i64;
        n = if neg {
            n.checked_mul(10)?.checked_sub(v)?
        } else {
            n.checked_mul(10)?.checked_add(v)?
        };
    }
    Some(n)
}

fn parse_len(b: &[u8], max: i64) -> Result<i64, ProtocolError> {
    match parse_i64(b) {
        Some(n) if (-1..=max).contains(&n) => Ok(n),
        _ => err(format!("bad length {:?}", String::from_utf8_lossy(b))),
    }
}

/// `len` bytes at `at` followed by CRLF.
fn blob(buf: &[u8], at: usize, len: usize) -> Parse<Vec<u8>> {
    let end = match at.checked_add(len) {
        Some(e) => e,
        None => return err("length overflow"),
    };
    if buf.len() < end + 2 {
        // The claimed bytes might still arrive; only check what we have.
        if buf.len() > end && buf[end] != b'\r' {
            return err("bulk not followed by CRLF");
        }
        return Ok(Step::Incomplete);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return err("bulk not followed by CRLF");
    }
    Ok(Step::Done(buf[at..end].to_vec(), end + 2))
}

fn parse_value(buf: &[u8], at: usize, depth: usize) -> Parse<Value> {
    if depth > DEPTH_MAX {
        return err("nesting too deep");
    }
    let Some(&kind) = buf.get(at) else {
        return Ok(Step::Incomplete);
    };
    if !b"+-:,#(_$!=*~>%|".contains(&kind) {
        return err(format!("unknown type byte {kind:#04x}"));
    }
    let (head, next) = match line(buf, at + 1)? {
        Step::Done(h, n) => (h, n),
        Step::Incomplete => return Ok(Step::Incomplete),
    };
    let done = |v: Value| Ok(Step::Done(v, next));
    match kind {
        b'+' => done(Value::Simple(head.to_vec())),
        b'-' => done(Value::Error(head.to_vec())),
        b':' => match parse_i64(head) {
            Some(n) => done(Value::Int(n)),
            None => err("bad integer"),
        },
        b',' => {
            if head.is_empty() {
                return err("empty double");
            }
            done(Value::Double(head.to_vec()))
        }
        b'#' => match head {
            b"t" => done(Value::Bool(true)),
            b"f" => done(Value::Bool(false)),
            _ => err("bad boolean"),
        },
        b'(' => {
            let digits = head.strip_prefix(b"-").unwrap_or(head);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return err("bad big number");
            }
            done(Value::BigNumber(head.to_vec()))
        }
        b'_' => {
            if !head.is_empty() {
                return err("bad null");
            }
            done(Value::Nil)
        }
        b'$' | b'!' | b'=' => {
            let n = parse_len(head, BULK_LEN_MAX)?;
            if n == -1 {
                if kind != b'$' {
                    return err("null blob error or verbatim");
                }
                return done(Value::Nil);
            }
            match blob(buf, next, n as usize)? {
                Step::Incomplete => Ok(Step::Incomplete),
                Step::Done(b, end) => {
                    let v = match kind {
                        b'$' => Value::Bulk(b),
                        b'!' => Value::Error(b),
                        _ => {
                            // "txt:" + text.
                            if b.len() < 4 || b[3] != b':' {
                                return err("bad verbatim string");
                            }
                            Value::Bulk(b[4..].to_vec())
                        }
                    };
                    Ok(Step::Done(v, end))
                }
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = parse_len(head, AGGREGATE_LEN_MAX)?;
            if n == -1 {
                if kind != b'*' {
                    return err("null aggregate");
                }
                return done(Value::Nil);
            }
            let count = if kind == b'%' || kind == b'|' {
                n as usize * 2
            } else {
                n as usize
            };
            let mut items = Vec::with_capacity(count.min(PREALLOC_MAX));
            let mut pos = next;
            for _ in 0..count {
                match parse_value(buf, pos, depth + 1)? {
                    Step::Incomplete => return Ok(Step::Incomplete),
                    Step::Done(v, p) => {
                        items.push(v);
                        pos = p;
                    }
                }
            }
            let v = match kind {
                b'*' => Value::Array(items),
                b'~' => Value::Set(items),
                b'>' => Value::Push(items),
                b'%' => Value::Map(pairs(items)),
                _ => {
                    // An attribute annotates the value that follows; the
                    // simulated clients do not use attributes.
                    return parse_value(buf, pos, depth + 1);
                }
            };
            Ok(Step::Done(v, pos))
        }
        _ => err(format!("unknown type byte {kind:#04x}")),
    }
}

fn pairs(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

/// Encodes a command as a RESP multibulk request.
pub fn encode_request(argv: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + argv.iter().map(|a| a.len() + 16).sum::<usize>());
    let mut w = RespWriter(&mut out);
    w.header(argv.len());
    for a in argv {
        w.arg(a);
    }
    out
}

/// Appends `cmd` as a RESP request to `out`, straight from its arguments
/// (no argv vectors, no formatting: this runs for every request).
pub fn encode_cmd(cmd: &crate::model::Cmd, out: &mut Vec<u8>) {
    let mut w = RespWriter(out);
    w.header(cmd.argc());
    cmd.write_args(&mut w);
}

/// Writes arguments as RESP bulk strings.
struct RespWriter<'a>(&'a mut Vec<u8>);

impl RespWriter<'_> {
    fn header(&mut self, argc: usize) {
        let mut b = itoa::Buffer::new();
        self.0.push(b'*');
        self.0.extend_from_slice(b.format(argc).as_bytes());
        self.0.extend_from_slice(b"\r\n");
    }
}

impl ArgSink for RespWriter<'_> {
    fn arg(&mut self, a: &[u8]) {
        let out = &mut *self.0;
        out.reserve(a.len() + 26);
        out.push(b'$');
        if a.len() < 10 {
            out.push(b'0' + a.len() as u8);
        } else {
            out.extend_from_slice(itoa::Buffer::new().format(a.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8]) -> Vec<Value> {
        let mut d = Decoder::new();
        d.feed(bytes);
        let mut out = Vec::new();
        while let Some(v) = d.next_value().unwrap() {
            out.push(v);
        }
        out
    }

    #[test]
    fn resp2_types() {
        let v = all(b"+OK\r\n-ERR x\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*-1\r\n*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(
            v,
            vec![
                Value::Simple(b"OK".to_vec()),
                Value::Error(b"ERR x".to_vec()),
                Value::Int(42),
                Value::Bulk(b"abc".to_vec()),
                Value::Nil,
                Value::Nil,
                Value::Array(vec![Value::Bulk(b"a".to_vec()), Value::Int(1)]),
            ]
        );
    }

    #[test]
    fn resp3_types() {
        let v = all(b"_\r\n,1.5\r\n#t\r\n(123\r\n%1\r\n+a\r\n:1\r\n~1\r\n+x\r\n>1\r\n+p\r\n=7\r\ntxt:abc\r\n!3\r\nERR\r\n|1\r\n+k\r\n+v\r\n:5\r\n");
        assert_eq!(v.len(), 10);
        assert_eq!(v[0], Value::Nil);
        assert_eq!(v[1], Value::Double(b"1.5".to_vec()));
        assert_eq!(v[7], Value::Bulk(b"abc".to_vec()));
        assert_eq!(v[8], Value::Error(b"ERR".to_vec()));
        assert_eq!(v[9], Value::Int(5));
    }

    #[test]
    fn any_split_gives_the_same_replies() {
        let stream: &[u8] = b"*3\r\n$5\r\nhello\r\n%1\r\n+a\r\n,2\r\n:7\r\n+OK\r\n";
        let whole = all(stream);
        for cut in 0..=stream.len() {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            d.feed(&stream[..cut]);
            while let Some(v) = d.next_value().unwrap() {
                got.push(v);
            }
            d.feed(&stream[cut..]);
            while let Some(v) = d.next_value().unwrap() {
                got.push(v);
            }
            assert_eq!(got, whole, "cut at {cut}");
        }
    }

    #[test]
    fn malformed_input_is_a_sticky_error() {
        for bad in [
            &b"?x\r\n"[..],
            b":12a\r\n",
            b"$-2\r\n",
            b"$3\r\nabcd\r\n",
            b"*99999999999\r\n",
            b"#x\r\n",
            b"\r\n",
            b"+a\rb\r\n",
        ] {
            let mut d = Decoder::new();
            d.feed(bad);
            assert!(d.next_value().is_err(), "{bad:?}");
            assert!(d.next_value().is_err());
        }
    }

    #[test]
    fn claimed_lengths_are_not_allocated() {
        let mut d = Decoder::new();
        d.feed(b"*4294967296\r\n");
        assert_eq!(d.next_value(), Ok(None));
        d.feed(b"$536870912\r\n");
        assert_eq!(d.next_value(), Ok(None));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut d = Decoder::new();
        d.feed(&b"*1\r\n".repeat(DEPTH_MAX + 2));
        assert!(d.next_value().is_err());
    }

    #[test]
    fn pseudo_random_bytes_never_panic() {
        let mut r = crate::rng::SimRng::new(3);
        let alphabet = b"+-:$*_,#(!=%~>|\r\n0123456789-abc";
        for _ in 0..20_000 {
            let mut d = Decoder::new();
            let n = r.index(40);
            let bytes: Vec<u8> = (0..n).map(|_| *r.pick(alphabet)).collect();
            d.feed(&bytes);
            while let Ok(Some(_)) = d.next_value() {}
        }
    }
}
