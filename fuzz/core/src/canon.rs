//! A value's observable content, for comparing values across a save and a
//! load, and the structural invariants every loaded value must satisfy.

use cinnabar_engine::commands::hashes::Hash;
use cinnabar_engine::commands::sets::{Member, Set};
use cinnabar_engine::config::Config;
use cinnabar_engine::db::Value;
use cinnabar_engine::rdb::{self, LoadOptions};

/// Type and elements: lists in order, hashes as sorted `field=value`
/// pairs, sets as sorted members, sorted sets in order as
/// (score bits, member). Encodings are left out: a load may legitimately
/// pick another one (thresholds).
pub fn canon(v: &Value) -> (&'static str, Vec<Vec<u8>>) {
    let elems: Vec<Vec<u8>> = match v {
        Value::Str(s) => vec![s.to_vec()],
        Value::List(l) => l.iter().map(|e| e.to_vec()).collect(),
        Value::Hash(h) => {
            let mut pairs: Vec<Vec<u8>> = h
                .iter()
                .map(|(f, v)| {
                    let mut e = Vec::with_capacity(f.len() + v.len() + 9);
                    e.extend_from_slice(&(f.len() as u64).to_le_bytes());
                    e.extend_from_slice(f);
                    e.extend_from_slice(v);
                    e
                })
                .collect();
            pairs.sort();
            pairs
        }
        Value::Set(s) => {
            let mut m: Vec<Vec<u8>> = s.iter().map(|m| member_bytes(&m)).collect();
            m.sort();
            m
        }
        Value::ZSet(z) => z
            .iter()
            .map(|(s, m)| {
                // -0 and 0 are the same score to the zset.
                let s = if s == 0.0 { 0.0f64 } else { s };
                [&s.to_bits().to_le_bytes()[..], m].concat()
            })
            .collect(),
        // Entries in order (ID, then fields and values); groups are
        // compared through their replies, not here.
        Value::Stream(s) => s
            .range(
                cinnabar_engine::stream::StreamId::MIN,
                cinnabar_engine::stream::StreamId::MAX,
                0,
                false,
            )
            .into_iter()
            .map(|e| [&e.id.encode()[..], &e.fields.concat()].concat())
            .collect(),
    };
    (v.type_name(), elems)
}

fn member_bytes(m: &Member) -> Vec<u8> {
    match m {
        Member::Int(i) => i.to_string().into_bytes(),
        Member::Bytes(b) => b.to_vec(),
    }
}

/// Panics unless `v` is a value the engine can hold: collections are not
/// empty, set members and hash fields are distinct, a sorted set is in
/// (score, member) order with no NaN and distinct members, and the element
/// counts agree with `len()`.
pub fn check_value(v: &Value) {
    match v {
        Value::Str(_) => {}
        // Streams may be empty; nodes, counters and IDs must agree.
        Value::Stream(s) => assert!(s.validate(), "stream invariants"),
        Value::List(l) => {
            assert!(!l.is_empty(), "empty list");
            assert_eq!(l.iter().count(), l.len(), "list len");
        }
        Value::Hash(h) => {
            assert!(!h.is_empty(), "empty hash");
            let mut f: Vec<&[u8]> = h.iter().map(|(f, _)| f).collect();
            assert_eq!(f.len(), h.len(), "hash len");
            f.sort_unstable();
            assert!(f.windows(2).all(|w| w[0] != w[1]), "duplicate hash field");
            if let Hash::Listpack(lp) = h {
                assert_eq!(lp.len(), h.len());
            }
        }
        Value::Set(s) => {
            assert!(!s.is_empty(), "empty set");
            let mut m: Vec<Vec<u8>> = s.iter().map(|m| member_bytes(&m)).collect();
            assert_eq!(m.len(), s.len(), "set len");
            m.sort_unstable();
            assert!(m.windows(2).all(|w| w[0] != w[1]), "duplicate set member");
            if let Set::Int(is) = s {
                let ints: Vec<i64> = is.iter().collect();
                assert!(ints.windows(2).all(|w| w[0] < w[1]), "intset out of order");
            }
        }
        Value::ZSet(z) => {
            assert!(!z.is_empty(), "empty zset");
            let items: Vec<(f64, &[u8])> = z.iter().collect();
            assert_eq!(items.len(), z.len(), "zset len");
            for (s, _) in &items {
                assert!(!s.is_nan(), "NaN score");
            }
            for w in items.windows(2) {
                assert!(
                    w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1),
                    "zset out of order: {:?} then {:?}",
                    w[0],
                    w[1]
                );
            }
            let mut m: Vec<&[u8]> = items.iter().map(|x| x.1).collect();
            m.sort_unstable();
            assert!(m.windows(2).all(|w| w[0] != w[1]), "duplicate zset member");
            for (s, m) in &items {
                assert_eq!(z.score(m), Some(*s), "ZSCORE disagrees with the order");
            }
        }
    }
}

/// DUMP's payload of `v`, RESTOREd: the same content, and the payload of
/// the restored value restores again to the same content.
pub fn check_dump_roundtrip(v: &Value, config: &Config) {
    let payload = rdb::dump_payload(v, config);
    let opts = LoadOptions {
        config,
        check_checksum: true,
        sanitize: true,
    };
    let back = rdb::restore_payload(&payload, &opts)
        .unwrap_or_else(|e| panic!("DUMP of a valid value does not RESTORE: {e}"));
    check_value(&back);
    assert_eq!(canon(v), canon(&back), "DUMP/RESTORE changed the value");
}
