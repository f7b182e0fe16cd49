//! `resp_reply`: arbitrary bytes into the simulator's reply [`Decoder`]
//! (the client side of RESP2/RESP3 used by the simulated clients), whole
//! and split at arbitrary points.
//!
//! Input: one byte giving the number of split points, two bytes per split
//! point, then the stream.
//!
//! Checks:
//! - never a panic;
//! - any split gives the same replies, and an error exactly when the whole
//!   stream gives one; errors are sticky;
//! - every decoded reply, encoded again as RESP3, decodes to itself using
//!   every byte;
//! - memory: the decoder never holds more than the bytes fed to it, and
//!   nothing after an error.

use cinnabar_sim::resp::{Decoder, Value};

#[derive(Debug, PartialEq)]
struct Outcome {
    values: Vec<Value>,
    error: bool,
}

fn decode_chunks(chunks: &[&[u8]]) -> Outcome {
    let mut d = Decoder::new();
    let mut values = Vec::new();
    let mut fed = 0;
    for chunk in chunks {
        d.feed(chunk);
        fed += chunk.len();
        assert!(d.pending() <= fed, "holds more than it was fed");
        loop {
            match d.next_value() {
                Ok(Some(v)) => values.push(v),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(d.next_value(), Err(e), "errors are sticky");
                    d.feed(b"+OK\r\n");
                    assert_eq!(d.pending(), 0, "buffers after an error");
                    return Outcome {
                        values,
                        error: true,
                    };
                }
            }
        }
    }
    Outcome {
        values,
        error: false,
    }
}

/// RESP3 encoding of a decoded value.
pub fn encode(v: &Value, out: &mut Vec<u8>) {
    let head = |out: &mut Vec<u8>, t: u8, n: usize| {
        out.push(t);
        out.extend_from_slice(n.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    let line = |out: &mut Vec<u8>, t: u8, b: &[u8]| {
        out.push(t);
        out.extend_from_slice(b);
        out.extend_from_slice(b"\r\n");
    };
    match v {
        Value::Simple(b) => line(out, b'+', b),
        Value::Error(b) => {
            head(out, b'!', b.len());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Value::Int(n) => line(out, b':', n.to_string().as_bytes()),
        Value::Bulk(b) => {
            head(out, b'$', b.len());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Value::Nil => out.extend_from_slice(b"_\r\n"),
        Value::Double(b) => line(out, b',', b),
        Value::Bool(b) => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Value::BigNumber(b) => line(out, b'(', b),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            let t = match v {
                Value::Array(_) => b'*',
                Value::Set(_) => b'~',
                _ => b'>',
            };
            head(out, t, items.len());
            items.iter().for_each(|i| encode(i, out));
        }
        Value::Map(kv) => {
            head(out, b'%', kv.len());
            for (k, v) in kv {
                encode(k, out);
                encode(v, out);
            }
        }
    }
}

pub fn run(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let nsplits = (n % 16) as usize;
    if rest.len() < 2 * nsplits {
        return;
    }
    let (cuts, stream) = rest.split_at(2 * nsplits);
    let mut cuts: Vec<usize> = cuts
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

    let whole = decode_chunks(&[stream]);
    let split = decode_chunks(&chunks);
    assert_eq!(whole, split, "a split changed the outcome");

    for v in &whole.values {
        let mut wire = Vec::new();
        encode(v, &mut wire);
        let again = decode_chunks(&[&wire]);
        assert!(!again.error, "re-encoded reply does not decode: {v:?}");
        assert_eq!(again.values, vec![v.clone()], "re-encoded reply differs");
    }
}
