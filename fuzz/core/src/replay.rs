//! The stable driver: replays a target's seed corpus and regressions, then
//! runs pseudo-random inputs (fresh bytes, and corpus files mutated the way
//! libFuzzer mutates: bit flips, interesting bytes, inserts, deletes,
//! copies, splices) drawn from a fixed seed. No coverage feedback, but the
//! same checks as a libFuzzer campaign, on every `cargo test`.
//!
//! A failing input is written to `$CARGO_TARGET_TMPDIR`-like `out_dir` so it
//! can be replayed with `cargo fuzz run TARGET FILE` or moved into
//! `fuzz/regressions/TARGET/`.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The files of a directory, sorted by name (missing directory: none).
pub fn read_dir(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, data)
        })
        .collect()
}

/// Bytes libFuzzer's mutators like to write.
const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'\r', b'\n', b'*', b'$', b'-', b'0', b'9',
];

/// Inputs longer than this are not grown further.
const MUTANT_LEN_MAX: usize = 64 * 1024;

fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (rng.next_u64() % n as u64) as usize
    }
}

/// One to eight mutations of `base`, spliced with `other` sometimes.
pub fn mutate(rng: &mut ChaCha8Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = base.to_vec();
    let rounds = 1 + below(rng, 8);
    for _ in 0..rounds {
        let len = d.len();
        match below(rng, 9) {
            0 if len > 0 => {
                let i = below(rng, len);
                d[i] ^= 1 << below(rng, 8);
            }
            1 if len > 0 => {
                let i = below(rng, len);
                d[i] = INTERESTING[below(rng, INTERESTING.len())];
            }
            2 if len > 0 => {
                let i = below(rng, len);
                d[i] = rng.next_u32() as u8;
            }
            3 if len < MUTANT_LEN_MAX => {
                let i = below(rng, len + 1);
                let n = 1 + below(rng, 8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u32() as u8).collect();
                d.splice(i..i, bytes);
            }
            4 if len > 0 => {
                let i = below(rng, len);
                let n = 1 + below(rng, (len - i).min(16));
                d.drain(i..i + n);
            }
            5 if len > 0 && len < MUTANT_LEN_MAX => {
                let i = below(rng, len);
                let n = 1 + below(rng, (len - i).min(32));
                let copy = d[i..i + n].to_vec();
                let at = below(rng, len + 1);
                d.splice(at..at, copy);
            }
            6 if !other.is_empty() => {
                let cut = below(rng, len + 1);
                let from = below(rng, other.len());
                d.truncate(cut);
                d.extend_from_slice(&other[from..other.len().min(from + 4096)]);
            }
            7 if len > 0 => {
                d.truncate(below(rng, len));
            }
            _ => {
                // A little-endian integer field set to an edge value.
                if len >= 8 {
                    let i = below(rng, len - 7);
                    let v: u64 =
                        [0, 1, u64::MAX, 1 << 31, 1 << 32, 0x7fff_ffff_ffff_ffff][below(rng, 6)];
                    d[i..i + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
    d
}

/// Runs `target` on `data`; on a panic, saves the input under `out_dir`
/// and panics with where it is.
pub fn run_one(name: &str, target: fn(&[u8]), data: &[u8], what: &str, out_dir: &Path) {
    let r = panic::catch_unwind(AssertUnwindSafe(|| target(data)));
    if let Err(e) = r {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        std::fs::create_dir_all(out_dir).ok();
        let path = out_dir.join(format!("crash-{name}-{:016x}", fxhash(data)));
        std::fs::write(&path, data).ok();
        panic!(
            "{name}: {what} panicked: {msg}\ninput ({} bytes) saved to {}\nreplay: cargo +nightly fuzz run {name} {}",
            data.len(),
            path.display(),
            path.display()
        );
    }
}

fn fxhash(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// What one replay did.
#[derive(Debug, Default)]
pub struct Stats {
    pub corpus: usize,
    pub regressions: usize,
    pub generated: usize,
}

/// Replays `corpus` and `regressions` files, then `cases` generated inputs
/// from `seed`.
pub fn replay(
    name: &str,
    target: fn(&[u8]),
    corpus: &Path,
    regressions: &Path,
    cases: usize,
    seed: u64,
    out_dir: &Path,
) -> Stats {
    let mut stats = Stats::default();
    let seeds = read_dir(corpus);
    for (path, data) in &seeds {
        run_one(name, target, data, &path.display().to_string(), out_dir);
        stats.corpus += 1;
    }
    for (path, data) in read_dir(regressions) {
        run_one(name, target, &data, &path.display().to_string(), out_dir);
        stats.regressions += 1;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fxhash(name.as_bytes()));
    for i in 0..cases {
        let input = if seeds.is_empty() || below(&mut rng, 4) == 0 {
            let max = [16, 64, 256, 2048][below(&mut rng, 4)];
            let n = below(&mut rng, max + 1);
            let mut v = vec![0u8; n];
            rng.fill_bytes(&mut v);
            v
        } else {
            let base = &seeds[below(&mut rng, seeds.len())].1;
            let other = &seeds[below(&mut rng, seeds.len())].1;
            mutate(&mut rng, base, other)
        };
        run_one(
            name,
            target,
            &input,
            &format!("generated case {i}"),
            out_dir,
        );
        stats.generated += 1;
    }
    stats
}
