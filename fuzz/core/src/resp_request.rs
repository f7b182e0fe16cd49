//! `resp_request`: arbitrary bytes into [`RequestParser`], whole and split
//! at arbitrary points.
//!
//! Input: one control byte (bit 0: the client is authenticated; bits 1-2:
//! `proto-max-bulk-len` of 512 MB, 16, 1024 or 100000), one byte giving the
//! number of split points, two bytes per split point, then the stream.
//!
//! Checks:
//! - never a panic;
//! - any split gives the same commands and the same protocol error as the
//!   whole stream (except the "too big" errors, which depend on how much
//!   is buffered without a newline, in Redis too: then one outcome's
//!   commands are a prefix of the other's);
//! - every accepted command is non-empty, its multibulk arguments respect
//!   `proto-max-bulk-len`, and re-encoded as a multibulk request it parses
//!   back to the same arguments using every byte;
//! - memory: the argument vector never reserves more than what arrived
//!   plus the parser's fixed pre-allocation, whatever a header claims;
//! - [`parse_i64`] agrees with a reference implementation of `string2ll`.

use bytes::{Bytes, BytesMut};
use cinnabar_engine::resp::{parse_i64, Parsed, RequestParser};

/// The parser pre-allocates at most this many argument slots.
const ARGV_PREALLOC_MAX: usize = 1024;

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    commands: Vec<Vec<Bytes>>,
    /// Per command: it came as a multibulk request (not inline).
    multibulk: Vec<bool>,
    error: Option<&'static str>,
}

fn is_too_big(e: &str) -> bool {
    e.contains("too big")
}

/// Feeds `chunks` in order, parsing as far as possible after each.
fn parse_chunks(chunks: &[&[u8]], max_bulk_len: usize, authenticated: bool) -> Outcome {
    let mut p = RequestParser::default();
    let mut buf = BytesMut::new();
    let mut argv = Vec::new();
    let mut commands = Vec::new();
    let mut multibulk = Vec::new();
    let mut fed = 0usize;
    // Whether the frame being parsed started with '*' (known once its first
    // byte arrived).
    let mut frame_start = true;
    let mut frame_multibulk = false;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        fed += chunk.len();
        loop {
            let before = buf.len();
            if frame_start && !buf.is_empty() {
                frame_multibulk = buf[0] == b'*';
                frame_start = false;
            }
            let r = p.parse(&mut buf, &mut argv, max_bulk_len, authenticated);
            // Whatever a header claimed, the slots reserved stay within the
            // fixed pre-allocation or what actually arrived.
            assert!(
                argv.capacity() <= ARGV_PREALLOC_MAX.max(fed) * 2,
                "argv reserved {} slots after {fed} bytes",
                argv.capacity()
            );
            if let Some(pending) = p.pending_bulk() {
                assert!(pending <= max_bulk_len, "pending bulk beyond the limit");
            }
            match r {
                Parsed::Command => {
                    assert!(!argv.is_empty(), "a command with no arguments");
                    if frame_multibulk {
                        // Inline arguments are bounded by the inline limit
                        // instead.
                        for a in &argv {
                            assert!(a.len() <= max_bulk_len, "bulk beyond proto-max-bulk-len");
                        }
                    }
                    commands.push(std::mem::take(&mut argv));
                    multibulk.push(frame_multibulk);
                    frame_start = true;
                }
                Parsed::Empty => {
                    assert!(buf.len() < before, "Empty consumed nothing");
                    frame_start = true;
                }
                Parsed::Incomplete => break,
                Parsed::Error(e) => {
                    assert!(e.starts_with("Protocol error: "), "{e}");
                    return Outcome {
                        commands,
                        multibulk,
                        error: Some(e),
                    };
                }
            }
        }
    }
    Outcome {
        commands,
        multibulk,
        error: None,
    }
}

fn encode(argv: &[Bytes]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", argv.len()).into_bytes();
    for a in argv {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Redis's `string2ll`, written the obvious way.
fn reference_parse_i64(s: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(s).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    if text == "-0" {
        return None;
    }
    text.parse().ok()
}

pub fn run(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let control = data[0];
    let authenticated = control & 1 == 1;
    let max_bulk_len = [512 << 20, 16, 1024, 100_000][(control as usize >> 1) & 3];
    let nsplits = (data[1] % 16) as usize;
    let header = 2 + 2 * nsplits;
    if data.len() < header {
        return;
    }
    let stream = &data[header..];
    let mut cuts: Vec<usize> = data[2..header]
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]) as usize % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut last = 0;
    for c in cuts {
        chunks.push(&stream[last..c]);
        last = c;
    }
    chunks.push(&stream[last..]);

    let whole = parse_chunks(&[stream], max_bulk_len, authenticated);
    let split = parse_chunks(&chunks, max_bulk_len, authenticated);
    let too_big = whole.error.is_some_and(is_too_big) || split.error.is_some_and(is_too_big);
    if too_big {
        let n = whole.commands.len().min(split.commands.len());
        assert_eq!(whole.commands[..n], split.commands[..n]);
        assert_eq!(whole.multibulk[..n], split.multibulk[..n]);
    } else {
        assert_eq!(whole, split, "a split changed the outcome");
    }

    for argv in &whole.commands {
        let wire = encode(argv);
        let again = parse_chunks(&[&wire], usize::MAX >> 1, true);
        assert_eq!(again.error, None);
        assert_eq!(
            again.commands,
            vec![argv.clone()],
            "re-encoded command differs"
        );
    }

    for n in [1usize, 2, 5, 11, 20, 21, 24] {
        let s = &stream[..n.min(stream.len())];
        assert_eq!(parse_i64(s), reference_parse_i64(s), "parse_i64({s:?})");
    }
}
