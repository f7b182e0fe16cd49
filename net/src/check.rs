//! `cinnabar-server --check-rdb FILE` and `--check-aof [--fix] DIR|FILE`:
//! redis-check-rdb and redis-check-aof for our (and Redis's) files. The
//! verdicts come from `cinnabar_engine::check`; this reads and fixes files.

use cinnabar_engine::check::{self, AofVerdict};
use std::path::{Path, PathBuf};

/// Runs a checker if `argv` asks for one; returns the exit code.
pub fn run(argv: &[String]) -> Option<i32> {
    match argv.first().map(String::as_str) {
        Some("--check-rdb") => Some(match argv.get(1) {
            Some(f) => check_rdb(Path::new(f)),
            None => usage(),
        }),
        Some("--check-aof") => {
            let fix = argv.iter().any(|a| a == "--fix");
            let target = argv[1..].iter().find(|a| *a != "--fix");
            Some(match target {
                Some(t) => check_aof(Path::new(t), fix),
                None => usage(),
            })
        }
        _ => None,
    }
}

fn usage() -> i32 {
    eprintln!("Usage: cinnabar-server --check-rdb <file.rdb>");
    eprintln!("       cinnabar-server --check-aof [--fix] <appendonlydir|file.manifest|file.aof>");
    1
}

fn check_rdb(path: &Path) -> i32 {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) => {
            println!("Cannot open {}: {e}", path.display());
            return 1;
        }
    };
    println!("[offset 0] Checking RDB file {}", path.display());
    match check::check_rdb(&data) {
        Ok(s) => {
            for (k, v) in &s.aux {
                println!("[info] AUX FIELD {k} = '{v}'");
            }
            println!("[offset {}] Checksum OK", data.len());
            println!("[offset {}] \\o/ RDB looks OK! \\o/", data.len());
            println!("[info] {} keys read", s.keys);
            println!("[info] {} expires", s.expires);
            println!("[info] {} functions", s.functions);
            0
        }
        Err(why) => {
            println!("--- RDB ERROR DETECTED ---");
            println!("{why}");
            1
        }
    }
}

/// The files to check, in load order, and the manifest's directory.
fn aof_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let manifest = if path.is_dir() {
        let found = std::fs::read_dir(path)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "manifest"));
        match found {
            Some(m) => m,
            None => return Err(format!("No manifest found in {}", path.display())),
        }
    } else if path.extension().is_some_and(|x| x == "manifest") {
        path.to_path_buf()
    } else {
        return Ok(vec![path.to_path_buf()]);
    };
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let text = std::fs::read(&manifest).map_err(|e| e.to_string())?;
    let files = check::manifest_files(&text)?;
    Ok(files.into_iter().map(|f| dir.join(f)).collect())
}

fn check_aof(path: &Path, fix: bool) -> i32 {
    let files = match aof_files(path) {
        Ok(f) => f,
        Err(e) => {
            println!("{e}");
            return 1;
        }
    };
    let last = files.len().saturating_sub(1);
    for (i, f) in files.iter().enumerate() {
        let data = match std::fs::read(f) {
            Ok(d) => d,
            Err(e) => {
                println!("Cannot open {}: {e}", f.display());
                return 1;
            }
        };
        match check::check_aof_file(&data) {
            AofVerdict::Done { .. } => println!("AOF {} is valid", f.display()),
            AofVerdict::Truncated { valid } if i == last => {
                println!(
                    "AOF {} has a truncated tail: {} of {} bytes are valid",
                    f.display(),
                    valid,
                    data.len()
                );
                if !fix {
                    println!("AOF analyzed: not fixed (use --fix to truncate it to {valid} bytes)");
                    return 1;
                }
                let ok = std::fs::OpenOptions::new()
                    .write(true)
                    .open(f)
                    .and_then(|h| h.set_len(valid).and_then(|_| h.sync_all()));
                match ok {
                    Ok(()) => println!("Successfully truncated AOF {}", f.display()),
                    Err(e) => {
                        println!("Failed to truncate AOF {}: {e}", f.display());
                        return 1;
                    }
                }
            }
            AofVerdict::Truncated { valid } => {
                println!(
                    "AOF {} is truncated at {valid} but is not the last file: not fixable",
                    f.display()
                );
                return 1;
            }
            AofVerdict::Bad { offset, why } => {
                println!("AOF {} format error at offset {offset}: {why}", f.display());
                return 1;
            }
        }
    }
    println!("All AOF files and manifest are valid");
    0
}
