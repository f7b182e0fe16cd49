//! `rdb_roundtrip`: the structure-aware RDB target. The input is read with
//! [`arbitrary::Unstructured`] as a dataset (databases, keys of every type
//! built through the same APIs the commands use, expiry times, function
//! libraries) plus the encoding thresholds and compression to save it with;
//! it is saved with `RdbWriter`, loaded back with `rdb::load` under another
//! arbitrary configuration, and compared.
//!
//! Checks: the file loads; every key comes back in file order with the same
//! db, content and expiry; every value is well-formed; each value survives
//! DUMP/RESTORE.

use crate::canon::{canon, check_dump_roundtrip, check_value};
use crate::rdb_load::{load, save, Item};
use arbitrary::{Result, Unstructured};
use bytes::Bytes;
use cinnabar_engine::commands::hashes::{self, Hash};
use cinnabar_engine::commands::lists::List;
use cinnabar_engine::commands::sets::{self, Set};
use cinnabar_engine::commands::zsets::{self, ZSet};
use cinnabar_engine::config::Config;
use cinnabar_engine::db::{Str, Value};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

/// Elements per collection and keys per dataset: enough to cross every
/// encoding threshold of [`arbitrary_config`].
const ELEMENTS_MAX: usize = 300;
const KEYS_MAX: usize = 24;

/// Strings biased to what changes the encoding: integers (intsets, int
/// strings, listpack ints), lengths around 20 (LZF), 44 (embstr), 64
/// (listpack value limit), and repetitive (compressible) bytes.
fn element(u: &mut Unstructured) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0u8..=9)? {
        0 | 1 => i64::arbitrary_small(u)?.to_string().into_bytes(),
        2 => u.arbitrary::<i64>()?.to_string().into_bytes(),
        3 => {
            let n = *u.choose(&[19usize, 20, 21, 44, 45, 63, 64, 65, 200, 5000])?;
            let b = u.arbitrary::<u8>()?;
            vec![b; n]
        }
        4 => {
            let n = u.int_in_range(0..=120)?;
            (0..n).map(|i| b"abc"[i % 3]).collect()
        }
        _ => {
            let n = u.int_in_range(0..=12)?;
            u.bytes(n)?.to_vec()
        }
    })
}

trait Small {
    fn arbitrary_small(u: &mut Unstructured) -> Result<i64>;
}

impl Small for i64 {
    fn arbitrary_small(u: &mut Unstructured) -> Result<i64> {
        Ok(match u.int_in_range(0u8..=3)? {
            0 => u.int_in_range(-10..=10)?,
            1 => u.arbitrary::<i16>()? as i64,
            2 => u.arbitrary::<i32>()? as i64,
            _ => *u.choose(&[i64::MIN, i64::MAX, -1 << 31, (1 << 31) - 1, 1 << 15])?,
        })
    }
}

fn score(u: &mut Unstructured) -> Result<f64> {
    Ok(match u.int_in_range(0u8..=4)? {
        0 => u.int_in_range(-5i64..=5)? as f64,
        1 => u.int_in_range(-20i64..=20)? as f64 / 4.0,
        2 => *u.choose(&[
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            1e-320,
            0.1,
        ])?,
        _ => {
            let f = f64::from_bits(u.arbitrary()?);
            if f.is_nan() {
                0.0
            } else {
                f
            }
        }
    })
}

/// A value of any type, never empty.
pub fn value(u: &mut Unstructured, config: &Config) -> Result<Value> {
    let mut rng = ChaCha8Rng::seed_from_u64(u.arbitrary()?);
    let n = u.int_in_range(1..=ELEMENTS_MAX)?;
    let n = if u.ratio(3u8, 4)? { n % 8 + 1 } else { n };
    Ok(match u.int_in_range(0u8..=4)? {
        0 => Value::Str(Str::from_arg(Bytes::from(element(u)?))),
        1 => {
            let items: Vec<Vec<u8>> = (0..n).map(|_| element(u)).collect::<Result<_>>()?;
            Value::List(List::from_elements(
                items.iter().map(|e| &e[..]),
                config.list_max_listpack_size,
            ))
        }
        2 => {
            let limits = hashes::Limits::from_config(config);
            let mut h = Hash::default();
            for _ in 0..n {
                h.set(&element(u)?, &element(u)?, limits, &mut rng);
            }
            Value::Hash(h)
        }
        3 => {
            let first = element(u)?;
            let max = sets::max_intset_entries(config);
            let mut s = Set::for_member(&first, &mut rng);
            s.add(&first, max, &mut rng);
            for _ in 1..n {
                s.add(&element(u)?, max, &mut rng);
            }
            Value::Set(s)
        }
        _ => {
            let lim = zsets::Limits {
                entries: config.zset_max_listpack_entries.max(0) as usize,
                value: config.zset_max_listpack_value.max(0) as usize,
            };
            let first = element(u)?;
            let mut z = ZSet::new_for(first.len(), lim);
            z.add(score(u)?, &first, zsets::AddFlags::default(), lim);
            for _ in 1..n {
                z.add(score(u)?, &element(u)?, zsets::AddFlags::default(), lim);
            }
            Value::ZSet(z)
        }
    })
}

/// Encoding thresholds: Redis's defaults or small ones.
pub fn arbitrary_config(u: &mut Unstructured) -> Result<Config> {
    let mut c = Config::default();
    if u.arbitrary()? {
        c.list_max_listpack_size = *u.choose(&[-5, -2, -1, 1, 2, 3, 8, 128])?;
        c.list_compress_depth = u.int_in_range(0..=3)?;
        c.hash_max_listpack_entries = u.int_in_range(0..=8)?;
        c.hash_max_listpack_value = *u.choose(&[0, 1, 8, 64])?;
        c.set_max_intset_entries = u.int_in_range(0..=8)?;
        c.zset_max_listpack_entries = u.int_in_range(0..=8)?;
        c.zset_max_listpack_value = *u.choose(&[0, 1, 8, 64])?;
    }
    Ok(c)
}

fn dataset(u: &mut Unstructured, config: &Config) -> Result<(Vec<Item>, Vec<Vec<u8>>)> {
    let mut items: Vec<Item> = Vec::new();
    let keys = u.int_in_range(0..=KEYS_MAX)?;
    for i in 0..keys {
        let db = if u.ratio(1u8, 4)? {
            u.int_in_range(0..=config.databases - 1)?
        } else {
            0
        };
        // Distinct keys: a prefix from the index.
        let mut key = format!("{i}:").into_bytes();
        key.extend_from_slice(&element(u)?);
        let expire = if u.ratio(1u8, 4)? {
            Some(*u.choose(&[0, 1, 1_700_000_000_000, i64::MAX, -1, i64::MIN])?)
        } else {
            None
        };
        items.push((db, key, value(u, config)?, expire));
    }
    // The writer groups keys by db, as a save does.
    items.sort_by_key(|i| i.0);
    let mut functions = Vec::new();
    if u.ratio(1u8, 8)? {
        functions.push(
            b"#!lua name=lib\nredis.register_function('f', function() return 1 end)".to_vec(),
        );
    }
    Ok((items, functions))
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(save_config) = arbitrary_config(&mut u) else {
        return;
    };
    let Ok(load_config) = arbitrary_config(&mut u) else {
        return;
    };
    let Ok(compress) = u.arbitrary::<bool>() else {
        return;
    };
    let Ok((items, functions)) = dataset(&mut u, &save_config) else {
        return;
    };
    for (_, _, v, _) in &items {
        check_value(v);
    }
    let file = save(&items, &functions, &save_config, compress);
    let (back, fns) = load(&file, &load_config, true)
        .unwrap_or_else(|e| panic!("a saved dataset does not load: {e}"));
    assert_eq!(fns, functions);
    assert_eq!(back.len(), items.len(), "keys lost or added");
    for ((db, k, v, e), (db2, k2, v2, e2)) in items.iter().zip(&back) {
        assert_eq!((db, k, e), (db2, k2, e2), "key, db or expiry changed");
        check_value(v2);
        assert_eq!(canon(v), canon(v2), "value of {k:?} changed");
    }
    for (_, _, v, _) in items.iter().take(8) {
        check_dump_roundtrip(v, &save_config);
        check_dump_roundtrip(v, &load_config);
    }
}
