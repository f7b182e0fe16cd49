//! File checkers behind `cinnabar-server --check-rdb` and `--check-aof`
//! (Redis's redis-check-rdb and redis-check-aof). Pure functions over bytes;
//! the shim reads the files and applies `--fix`.

use crate::aof::{scan_commands, Manifest, Scan};
use crate::config::Config;
use crate::rdb::{self, LoadOptions, Loaded};

/// What a valid RDB file holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RdbSummary {
    pub keys: u64,
    pub expires: u64,
    pub functions: u64,
    pub aux: Vec<(String, String)>,
}

/// Parses a whole RDB file (checksum included).
pub fn check_rdb(data: &[u8]) -> Result<RdbSummary, String> {
    let config = Config::default();
    let opts = LoadOptions {
        config: &config,
        check_checksum: true,
        sanitize: true,
    };
    let mut s = RdbSummary::default();
    let mut sink = |item: Loaded| -> Result<(), rdb::RdbError> {
        match item {
            Loaded::Aux { key, value } => s.aux.push((
                String::from_utf8_lossy(&key).into_owned(),
                String::from_utf8_lossy(&value).into_owned(),
            )),
            Loaded::Function { .. } => s.functions += 1,
            Loaded::Key { expire_ms, .. } => {
                s.keys += 1;
                s.expires += expire_ms.is_some() as u64;
            }
        }
        Ok(())
    };
    rdb::load(data, &opts, &mut sink).map_err(|e| e.to_string())?;
    Ok(s)
}

/// The verdict on one AOF file: the loader's own walk ([`Scan`]), with
/// the transaction nesting redis-check-aof also insists on.
pub type AofVerdict = Scan;

/// Checks one AOF file: RDB preamble (a base file) or commands.
pub fn check_aof_file(data: &[u8]) -> AofVerdict {
    if data.starts_with(b"REDIS") {
        return match check_rdb(data) {
            Ok(s) => Scan::Done { commands: s.keys },
            Err(why) => Scan::Bad { offset: 0, why },
        };
    }
    let mut in_multi = false;
    scan_commands(data, |argv| {
        if argv[0].eq_ignore_ascii_case(b"multi") {
            if std::mem::replace(&mut in_multi, true) {
                return Err("Unexpected MULTI".into());
            }
        } else if argv[0].eq_ignore_ascii_case(b"exec") && !std::mem::take(&mut in_multi) {
            return Err("Unexpected EXEC".into());
        }
        Ok(())
    })
}

/// The files a manifest names, in load order (base first).
pub fn manifest_files(text: &[u8]) -> Result<Vec<String>, String> {
    let m = Manifest::parse(text)?;
    let mut files: Vec<String> = m.base.into_iter().map(|b| b.0).collect();
    files.extend(m.incrs.into_iter().map(|i| i.0));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aof_verdicts() {
        let ok = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n";
        assert_eq!(check_aof_file(ok), AofVerdict::Done { commands: 2 });
        let mut torn = ok.to_vec();
        torn.extend_from_slice(b"*3\r\n$3\r\nSE");
        assert_eq!(
            check_aof_file(&torn),
            AofVerdict::Truncated {
                valid: ok.len() as u64
            }
        );
        let mut open_multi = ok.to_vec();
        open_multi
            .extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n");
        assert_eq!(
            check_aof_file(&open_multi),
            AofVerdict::Truncated {
                valid: ok.len() as u64
            }
        );
        let mut bad = ok.to_vec();
        // Junk between the two commands.
        bad.splice(23..23, *b"junk");
        assert!(matches!(
            check_aof_file(&bad),
            AofVerdict::Bad { offset: 23, .. }
        ));
    }

    #[test]
    fn rdb_checks_the_checksum() {
        let mut w = rdb::RdbWriter::new(true);
        w.header(&[("redis-ver", rdb::AuxValue::Str(b"7.0.15"))]);
        w.select_db(0, 1, 0);
        let v = crate::db::Value::Str(crate::db::Str::from_vec(b"v".to_vec()));
        w.key(b"k", &v, Some(1_900_000_000_000));
        w.finish(true);
        let file = w.take_chunk();
        let s = check_rdb(&file).expect("valid");
        assert_eq!((s.keys, s.expires), (1, 1));
        let mut bad = file.clone();
        let at = bad.len() - 12;
        bad[at] ^= 1;
        assert!(check_rdb(&bad).is_err());
    }
}
