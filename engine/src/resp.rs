//! RESP: the request parser and the reply encoder.
//!
//! Requests arrive as bytes split anywhere; [`RequestParser`] consumes whole
//! commands from the front of a query buffer and leaves a partial one in place
//! (a partial frame is `Incomplete`, not an error). Its limits and error
//! strings follow Redis 7.0's `processMultibulkBuffer` and
//! `processInlineBuffer` in `networking.c`: a protocol error is sticky, gets
//! `-ERR Protocol error: ...` and then the connection is closed.
//!
//! Replies are written straight into a connection's output buffer by
//! [`ReplyBuf`], which knows whether the client speaks RESP2 or RESP3 and
//! downgrades RESP3-only types (maps, sets, doubles, nulls) the way Redis does.

// `advance`, not `split_to`: dropping the front of the buffer must not turn
// it into a shared (reference-counted) one, a cost paid on every argument.
use bytes::{Buf, Bytes, BytesMut};

/// Longest inline command, or `*<count>` / `$<len>` line, Redis accepts
/// before it sees a newline (`PROTO_INLINE_MAX_SIZE`).
pub const PROTO_INLINE_MAX_SIZE: usize = 64 * 1024;

/// A claimed multibulk count only pre-allocates this many argument slots
/// (Redis does the same): a 1M-element header costs nothing until the
/// elements actually arrive.
const ARGV_PREALLOC_MAX: usize = 1024;

/// The outcome of trying to take one command off the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete command was appended to `argv`.
    Command,
    /// An empty request (blank inline line, `*0` or `*-1`): nothing to run.
    Empty,
    /// More bytes are needed.
    Incomplete,
    /// A protocol violation: reply with this message (already prefixed with
    /// `Protocol error: `) and close the connection.
    Error(&'static str),
}

/// Incremental request parser. It holds the state of a multibulk request that
/// has only partly arrived, so no byte is scanned twice.
#[derive(Debug, Default)]
pub struct RequestParser {
    /// Elements of the current multibulk request still to read; 0 when
    /// between requests.
    multibulk_left: usize,
    /// Length of the bulk string being read, once its `$<len>` line was seen.
    bulk_len: Option<usize>,
    in_multibulk: bool,
}

impl RequestParser {
    /// Parses at most one command from the front of `buf`, consuming the bytes
    /// it used. `max_bulk_len` is `proto-max-bulk-len`; `authenticated`
    /// lifts Redis's tighter limits for clients that still must AUTH.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        argv: &mut Vec<Bytes>,
        max_bulk_len: usize,
        authenticated: bool,
    ) -> Parsed {
        if !self.in_multibulk {
            if buf.is_empty() {
                return Parsed::Incomplete;
            }
            if buf[0] != b'*' {
                return parse_inline(buf, argv);
            }
            let Some(eol) = find_crlf(buf, 0) else {
                if buf.len() > PROTO_INLINE_MAX_SIZE {
                    return Parsed::Error("Protocol error: too big mbulk count string");
                }
                return Parsed::Incomplete;
            };
            let count = match parse_i64(&buf[1..eol]) {
                Some(n) if n <= i32::MAX as i64 => n,
                _ => return Parsed::Error("Protocol error: invalid multibulk length"),
            };
            if count > 10 && !authenticated {
                return Parsed::Error("Protocol error: unauthenticated multibulk length");
            }
            buf.advance(eol + 2);
            if count <= 0 {
                return Parsed::Empty;
            }
            argv.clear();
            argv.reserve((count as usize).min(ARGV_PREALLOC_MAX));
            self.multibulk_left = count as usize;
            self.in_multibulk = true;
        }
        while self.multibulk_left > 0 {
            let len = match self.bulk_len {
                Some(len) => len,
                None => {
                    let Some(eol) = find_crlf(buf, 0) else {
                        if buf.len() > PROTO_INLINE_MAX_SIZE {
                            return Parsed::Error("Protocol error: too big bulk count string");
                        }
                        return Parsed::Incomplete;
                    };
                    if buf[0] != b'$' {
                        // Redis formats the offending byte into the message;
                        // we keep the static-str error type by matching the
                        // printable cases callers actually hit.
                        return Parsed::Error(expected_dollar(buf[0]));
                    }
                    let len = match parse_i64(&buf[1..eol]) {
                        Some(n) if n >= 0 && (n as u64) <= max_bulk_len as u64 => n as usize,
                        _ => return Parsed::Error("Protocol error: invalid bulk length"),
                    };
                    if len > 16384 && !authenticated {
                        return Parsed::Error("Protocol error: unauthenticated bulk length");
                    }
                    buf.advance(eol + 2);
                    self.bulk_len = Some(len);
                    len
                }
            };
            // Like Redis, the two bytes after the payload are skipped without
            // checking that they are CRLF.
            if buf.len() < len + 2 {
                // Grow towards the claimed size only as bytes arrive: the
                // caller's buffer never reserves a claimed length up front.
                return Parsed::Incomplete;
            }
            argv.push(Bytes::copy_from_slice(&buf[..len]));
            buf.advance(len + 2);
            self.bulk_len = None;
            self.multibulk_left -= 1;
        }
        self.in_multibulk = false;
        Parsed::Command
    }

    /// Bytes still expected for the bulk string being read, if one is in
    /// progress (used to size reads, never to allocate).
    pub fn pending_bulk(&self) -> Option<usize> {
        self.bulk_len
    }
}

fn expected_dollar(b: u8) -> &'static str {
    // Redis: "Protocol error: expected '$', got '%c'". Keep a static table for
    // printable ASCII so the error type stays allocation-free.
    const MSGS: [&str; 95] = expected_table();
    if (0x20..0x7f).contains(&b) {
        MSGS[(b - 0x20) as usize]
    } else {
        "Protocol error: expected '$', got '?'"
    }
}

const fn expected_table() -> [&'static str; 95] {
    macro_rules! t {
        ($($c:literal)*) => { [$(concat!("Protocol error: expected '$', got '", $c, "'")),*] };
    }
    t!(" " "!" "\"" "#" "$" "%" "&" "'" "(" ")" "*" "+" "," "-" "." "/"
       "0" "1" "2" "3" "4" "5" "6" "7" "8" "9" ":" ";" "<" "=" ">" "?"
       "@" "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O"
       "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" "[" "\\" "]" "^" "_"
       "`" "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o"
       "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" "{" "|" "}" "~")
}

fn parse_inline(buf: &mut BytesMut, argv: &mut Vec<Bytes>) -> Parsed {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > PROTO_INLINE_MAX_SIZE {
            return Parsed::Error("Protocol error: too big inline request");
        }
        return Parsed::Incomplete;
    };
    let end = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    argv.clear();
    let ok = split_args(&buf[..end], argv);
    buf.advance(nl + 1);
    if !ok {
        return Parsed::Error("Protocol error: unbalanced quotes in request");
    }
    if argv.is_empty() {
        Parsed::Empty
    } else {
        Parsed::Command
    }
}

/// Redis's `sdssplitargs`: whitespace-separated words, with "double quotes"
/// (and \xHH, \n, \r, \t, \b, \a escapes) and 'single quotes'. A closing quote
/// must be followed by whitespace or the end. Returns false on unbalanced
/// quotes.
pub fn split_args(line: &[u8], out: &mut Vec<Bytes>) -> bool {
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return true;
        }
        let mut cur = Vec::new();
        let mut inq = false;
        let mut insq = false;
        loop {
            if inq {
                if i >= n {
                    return false;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    cur.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return false;
                    }
                    inq = false;
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if i >= n {
                    return false;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return false;
                    }
                    insq = false;
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        let _ = (inq, insq);
        out.push(Bytes::from(cur));
    }
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    // Redis looks for '\r' and then requires a following byte; a lone '\r'
    // at the end means "incomplete".
    let pos = buf[from..].iter().position(|&b| b == b'\r')? + from;
    if pos + 1 < buf.len() {
        Some(pos)
    } else {
        None
    }
}

/// The part of `b` before its first NUL byte: what C's `%s` prints when
/// Redis formats a client argument into an error message.
pub fn c_str(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |i| &b[..i])
}

/// [`c_str`] as text, for `format!` (invalid UTF-8 becomes U+FFFD).
pub fn c_str_lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(c_str(b))
}

/// Redis's `string2ll`: an optional '-', digits, no leading zeros (except
/// "0"), no spaces, fits in i64.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = if s[0] == b'-' {
        (true, &s[1..])
    } else {
        (false, s)
    };
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    if neg {
        if v > (i64::MAX as u64) + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

/// Writes replies for one connection, in its protocol version.
#[derive(Debug, Default)]
pub struct ReplyBuf {
    pub buf: BytesMut,
    pub resp3: bool,
}

impl ReplyBuf {
    #[inline]
    fn put(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    fn put_len(&mut self, prefix: u8, n: i64) {
        let mut tmp = itoa::Buffer::new();
        self.buf.reserve(24);
        self.buf.extend_from_slice(&[prefix]);
        self.buf.extend_from_slice(tmp.format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `+OK`-style status reply.
    pub fn simple(&mut self, s: &str) {
        self.put(b"+");
        self.put(s.as_bytes());
        self.put(b"\r\n");
    }

    pub fn ok(&mut self) {
        self.put(b"+OK\r\n");
    }

    /// An error reply. `msg` carries its own code (`ERR ...`, `WRONGTYPE
    /// ...`); newlines are replaced by spaces as Redis does, so a reply can
    /// never break the protocol.
    pub fn error(&mut self, msg: &str) {
        self.error_bytes(msg.as_bytes());
    }

    /// [`ReplyBuf::error`] for messages that quote client bytes verbatim
    /// (Redis echoes them without UTF-8 validation).
    pub fn error_bytes(&mut self, msg: &[u8]) {
        self.put(b"-");
        let start = self.buf.len();
        self.put(msg);
        for b in &mut self.buf[start..] {
            if *b == b'\r' || *b == b'\n' {
                *b = b' ';
            }
        }
        self.put(b"\r\n");
    }

    pub fn int(&mut self, n: i64) {
        self.put_len(b':', n);
    }

    pub fn bulk(&mut self, b: &[u8]) {
        self.put_len(b'$', b.len() as i64);
        self.put(b);
        self.put(b"\r\n");
    }

    pub fn bulk_int(&mut self, n: i64) {
        let mut tmp = itoa::Buffer::new();
        self.bulk(tmp.format(n).as_bytes());
    }

    /// The null bulk string (`$-1` in RESP2, `_` in RESP3).
    pub fn null(&mut self) {
        if self.resp3 {
            self.put(b"_\r\n");
        } else {
            self.put(b"$-1\r\n");
        }
    }

    /// The null array (`*-1` in RESP2, `_` in RESP3).
    pub fn null_array(&mut self) {
        if self.resp3 {
            self.put(b"_\r\n");
        } else {
            self.put(b"*-1\r\n");
        }
    }

    pub fn array(&mut self, n: usize) {
        self.put_len(b'*', n as i64);
    }

    /// An out-of-band push (pub/sub messages): `>n` in RESP3, an array in
    /// RESP2.
    pub fn push(&mut self, n: usize) {
        self.put_len(if self.resp3 { b'>' } else { b'*' }, n as i64);
    }

    /// A map of `n` pairs: `%n` in RESP3, a flat array of 2n in RESP2.
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            self.put_len(b'%', n as i64);
        } else {
            self.put_len(b'*', 2 * n as i64);
        }
    }

    /// A set: `~n` in RESP3, an array in RESP2.
    pub fn set(&mut self, n: usize) {
        self.put_len(if self.resp3 { b'~' } else { b'*' }, n as i64);
    }

    /// A double: `,` in RESP3, a bulk string in RESP2 (Redis's `%.17g`).
    pub fn double(&mut self, d: f64) {
        let s = crate::numeric::fmt_double_17g(d);
        if self.resp3 {
            self.put(b",");
            self.put(s.as_bytes());
            self.put(b"\r\n");
        } else {
            self.bulk(s.as_bytes());
        }
    }

    /// A verbatim string (`=len\r\ntxt:...`) in RESP3, a bulk string in RESP2.
    pub fn verbatim(&mut self, text: &[u8], format: &str) {
        if self.resp3 {
            self.put_len(b'=', (text.len() + 4) as i64);
            self.put(format.as_bytes());
            self.put(b":");
            self.put(text);
            self.put(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    /// Writes a pre-built reply tree.
    pub fn frame(&mut self, f: &Frame) {
        match f {
            Frame::Simple(s) => {
                self.put(b"+");
                self.put(s);
                self.put(b"\r\n");
            }
            Frame::Error(s) => {
                self.put(b"-");
                self.put(s);
                self.put(b"\r\n");
            }
            Frame::Int(n) => self.int(*n),
            Frame::Bulk(b) => self.bulk(b),
            Frame::Null => self.null(),
            Frame::Array(v) => {
                self.array(v.len());
                v.iter().for_each(|x| self.frame(x));
            }
            Frame::Set(v) => {
                self.set(v.len());
                v.iter().for_each(|x| self.frame(x));
            }
            Frame::Map(v) => {
                self.map(v.len() / 2);
                v.iter().for_each(|x| self.frame(x));
            }
        }
    }
}

/// A parsed reply tree, used for static data (the command table's docs) and
/// for tests. The hot path writes into [`ReplyBuf`] directly instead.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Vec<u8>),
    Null,
    Array(Vec<Frame>),
    Set(Vec<Frame>),
    /// Keys and values alternate.
    Map(Vec<Frame>),
}

impl Frame {
    /// Parses one RESP3 reply from `data`, returning it and the bytes used.
    /// Only the types Redis's command table uses are supported; anything else
    /// is `None`.
    pub fn parse_resp3(data: &[u8]) -> Option<(Frame, usize)> {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let body = &data[1..eol];
        let next = eol + 2;
        let num = || -> Option<i64> { std::str::from_utf8(body).ok()?.parse().ok() };
        match data.first()? {
            b'+' => Some((Frame::Simple(body.to_vec()), next)),
            b'-' => Some((Frame::Error(body.to_vec()), next)),
            b':' => Some((Frame::Int(num()?), next)),
            b'_' => Some((Frame::Null, next)),
            b'$' => {
                let n = usize::try_from(num()?).ok()?;
                let payload = data.get(next..next + n)?;
                Some((Frame::Bulk(payload.to_vec()), next + n + 2))
            }
            t @ (b'*' | b'~' | b'%') => {
                let mut n = usize::try_from(num()?).ok()?;
                if *t == b'%' {
                    n *= 2;
                }
                let mut items = Vec::with_capacity(n.min(1024));
                let mut pos = next;
                for _ in 0..n {
                    let (f, used) = Frame::parse_resp3(data.get(pos..)?)?;
                    items.push(f);
                    pos += used;
                }
                let f = match t {
                    b'*' => Frame::Array(items),
                    b'~' => Frame::Set(items),
                    _ => Frame::Map(items),
                };
                Some((f, pos))
            }
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Frame::Simple(b) | Frame::Bulk(b) => Some(b),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> (Vec<Vec<Bytes>>, Option<&'static str>) {
        let mut p = RequestParser::default();
        let mut buf = BytesMut::from(input);
        let mut cmds = vec![];
        let mut argv = vec![];
        loop {
            match p.parse(&mut buf, &mut argv, 512 << 20, true) {
                Parsed::Command => cmds.push(std::mem::take(&mut argv)),
                Parsed::Empty => {}
                Parsed::Incomplete => return (cmds, None),
                Parsed::Error(e) => return (cmds, Some(e)),
            }
        }
    }

    #[test]
    fn multibulk_and_inline_pipelined() {
        let (cmds, err) =
            parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\nPING\r\nset 'a b' \"c\\x41\"\n");
        assert_eq!(err, None);
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0], vec![Bytes::from("GET"), Bytes::from("a")]);
        assert_eq!(cmds[1], vec![Bytes::from("PING")]);
        assert_eq!(
            cmds[2],
            vec![Bytes::from("set"), Bytes::from("a b"), Bytes::from("cA")]
        );
    }

    #[test]
    fn every_split_gives_the_same_commands() {
        let input: &[u8] =
            b"*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n$5\r\nworld\r\nPING\r\n*1\r\n$4\r\nPING\r\n";
        let (whole, _) = parse_all(input);
        for cut in 0..input.len() {
            let mut p = RequestParser::default();
            let mut buf = BytesMut::new();
            let mut cmds = vec![];
            let mut argv = vec![];
            for part in [&input[..cut], &input[cut..]] {
                buf.extend_from_slice(part);
                loop {
                    match p.parse(&mut buf, &mut argv, 512 << 20, true) {
                        Parsed::Command => cmds.push(std::mem::take(&mut argv)),
                        Parsed::Empty => {}
                        Parsed::Incomplete => break,
                        Parsed::Error(e) => panic!("{e}"),
                    }
                }
            }
            assert_eq!(cmds, whole, "split at {cut}");
        }
    }

    #[test]
    fn protocol_errors_match_redis() {
        assert_eq!(
            parse_all(b"*x\r\n").1,
            Some("Protocol error: invalid multibulk length")
        );
        assert_eq!(
            parse_all(b"*1\r\n$-5\r\n").1,
            Some("Protocol error: invalid bulk length")
        );
        assert_eq!(
            parse_all(b"*1\r\n:5\r\n").1,
            Some("Protocol error: expected '$', got ':'")
        );
        assert_eq!(
            parse_all(b"*1\r\n$4294967296\r\n").1,
            Some("Protocol error: invalid bulk length")
        );
        assert_eq!(
            parse_all(b"set \"a\n").1,
            Some("Protocol error: unbalanced quotes in request")
        );
        // A huge claimed count is fine until the data arrives.
        assert_eq!(parse_all(b"*1000000\r\n$1\r\na\r\n"), (vec![], None));
    }

    #[test]
    fn parse_i64_is_strict() {
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b"+1"), None);
    }
}
