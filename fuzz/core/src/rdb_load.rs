//! `rdb_load`: arbitrary bytes as an RDB file, through
//! [`cinnabar_engine::rdb::load`].
//!
//! The input is the file itself, so Redis-made dumps are seeds as they are.
//! It is loaded twice: with the default configuration (checksum not
//! verified, so mutated files get past the trailer) and with tiny encoding
//! thresholds and a checked checksum (every value converts).
//!
//! Checks:
//! - never a panic, hang or huge allocation: a clean `RdbError` or items;
//! - every loaded value is well-formed ([`canon::check_value`]);
//! - the loaded dataset saves with `RdbWriter` and loads back identical,
//!   and every value survives DUMP/RESTORE;
//! - a file that loads with its checksum verified also loads without.

use crate::canon::{canon, check_dump_roundtrip, check_value};
use cinnabar_engine::config::Config;
use cinnabar_engine::db::Value;
use cinnabar_engine::rdb::{self, LoadOptions, Loaded, RdbWriter};

/// A loaded key: (db, key, value, expire).
pub type Item = (usize, Vec<u8>, Value, Option<i64>);

/// Loads `data`, returning keys and function libraries.
pub fn load(
    data: &[u8],
    config: &Config,
    check_checksum: bool,
) -> Result<(Vec<Item>, Vec<Vec<u8>>), rdb::RdbError> {
    let opts = LoadOptions {
        config,
        check_checksum,
        sanitize: true,
    };
    let mut items = Vec::new();
    let mut functions = Vec::new();
    rdb::load(data, &opts, &mut |l| {
        match l {
            Loaded::Key {
                db,
                key,
                value,
                expire_ms,
                ..
            } => {
                assert!(db < config.databases, "db {db} out of range");
                items.push((db, key.to_vec(), value, expire_ms));
            }
            Loaded::Function { code } => functions.push(code),
            Loaded::Aux { .. } => {}
        }
        Ok(())
    })?;
    Ok((items, functions))
}

/// Writes items (in order, grouped by db as given) as an RDB file.
pub fn save(items: &[Item], functions: &[Vec<u8>], config: &Config, compress: bool) -> Vec<u8> {
    let mut w = RdbWriter::with_config(config, compress);
    w.header(&[("redis-ver", rdb::AuxValue::Str(b"7.0.15"))]);
    for f in functions {
        w.function_library(f);
    }
    let mut current = None;
    for (db, key, value, expire) in items {
        if current != Some(*db) {
            let in_db = items.iter().filter(|i| i.0 == *db);
            let keys = in_db.clone().count() as u64;
            let expires = in_db.filter(|i| i.3.is_some()).count() as u64;
            w.select_db(*db as u32, keys, expires);
            current = Some(*db);
        }
        w.key(key, value, *expire);
    }
    w.finish(true);
    w.take_chunk()
}

/// A key as compared: (db, key, canonical value, expire).
type CanonItem = (usize, Vec<u8>, (&'static str, Vec<Vec<u8>>), Option<i64>);

fn canon_items(items: &[Item]) -> Vec<CanonItem> {
    items
        .iter()
        .map(|(db, k, v, e)| (*db, k.clone(), canon(v), *e))
        .collect()
}

/// Encoding thresholds small enough that every loaded value converts.
pub fn tiny_config() -> Config {
    Config {
        list_max_listpack_size: 1,
        list_compress_depth: 1,
        hash_max_listpack_entries: 1,
        hash_max_listpack_value: 1,
        set_max_intset_entries: 1,
        zset_max_listpack_entries: 1,
        zset_max_listpack_value: 1,
        ..Config::default()
    }
}

fn check_loaded(items: &[Item], functions: &[Vec<u8>], config: &Config) {
    for (_, _, v, _) in items {
        check_value(v);
    }
    // Keys in one db are distinct in any file Redis could have written, but
    // a hostile file may repeat one; the round trip below still holds.
    let saved = save(items, functions, config, true);
    let (again, fns) = load(&saved, config, true)
        .unwrap_or_else(|e| panic!("a loaded dataset saved again does not load: {e}"));
    assert_eq!(
        canon_items(items),
        canon_items(&again),
        "save/load changed the dataset"
    );
    assert_eq!(functions, &fns[..]);
    for (_, _, v, _) in items.iter().take(16) {
        check_dump_roundtrip(v, config);
    }
}

pub fn run(data: &[u8]) {
    let default = Config::default();
    let loose = load(data, &default, false);
    if let Ok((items, functions)) = &loose {
        check_loaded(items, functions, &default);
    }
    let tiny = tiny_config();
    match load(data, &tiny, true) {
        Ok((items, functions)) => {
            assert!(
                loose.is_ok(),
                "loads with its checksum checked, not without"
            );
            check_loaded(&items, &functions, &tiny);
            let loose_items = &loose.as_ref().expect("checked above").0;
            assert_eq!(
                canon_items(loose_items),
                canon_items(&items),
                "the encoding thresholds changed the content"
            );
        }
        Err(e) => assert!(!e.0.is_empty()),
    }
}
