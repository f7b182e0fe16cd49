//! The fuzz targets on stable Rust: every checked-in seed corpus
//! (`fuzz/corpus/TARGET/`) and regression (`fuzz/regressions/TARGET/`) goes
//! through the same function a libFuzzer campaign runs
//! (`cinnabar_fuzz_core::TARGET::run`), followed by pseudo-random and
//! mutated inputs from a fixed seed. `FUZZ_REPLAY_CASES` scales the number
//! of generated inputs (default: the per-target counts below, about a
//! minute in a debug build on two cores); `FUZZ_REPLAY_SEED` changes the
//! seed. Failing inputs are saved under `target/fuzz-replay-failures/`.
//!
//! Crashes found and not fixed yet live in `fuzz/regressions/open/TARGET/`
//! and run in the ignored tests at the end, each with the reason.

use cinnabar_fuzz_core::replay::{read_dir, replay};
use std::path::PathBuf;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn out_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-replay-failures")
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

fn run(name: &str, default_cases: usize) {
    let (_, target) = cinnabar_fuzz_core::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("known target");
    let cases = env_u64("FUZZ_REPLAY_CASES").map_or(default_cases, |n| n as usize);
    let seed = env_u64("FUZZ_REPLAY_SEED").unwrap_or(0x5eed);
    let dir = fuzz_dir();
    let stats = replay(
        name,
        *target,
        &dir.join("corpus").join(name),
        &dir.join("regressions").join(name),
        cases,
        seed,
        &out_dir(),
    );
    println!("{name}: {stats:?}");
}

#[test]
fn resp_request() {
    run("resp_request", 20_000);
}

#[test]
fn resp_reply() {
    run("resp_reply", 20_000);
}

#[test]
fn rdb_load() {
    run("rdb_load", 3_000);
}

#[test]
fn rdb_roundtrip() {
    run("rdb_roundtrip", 5_000);
}

#[test]
fn restore_payload() {
    run("restore_payload", 3_000);
}

#[test]
fn aof_load() {
    run("aof_load", 3_000);
}

#[test]
fn command_sequence() {
    run("command_sequence", 40);
}

#[test]
fn model_sequence() {
    run("model_sequence", 2_000);
}

#[test]
fn open_regressions_are_listed() {
    // Every file in fuzz/regressions/open/ has an ignored test below.
    let listed: &[&str] = &[];
    for (target, _) in cinnabar_fuzz_core::TARGETS {
        for (path, _) in read_dir(&fuzz_dir().join("regressions/open").join(target)) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                listed.contains(&name.as_str()),
                "{}: add an ignored test for it",
                path.display()
            );
        }
    }
}

/// F-1 (fixed): an AOF with a Lua loop that never ends hung the node for
/// good (no script time limit). Now a script replayed from an AOF that runs
/// past 10^8 instructions fails the load with a message (scripting.rs
/// REPLAY_HOOKS); live scripts are suspended between slices, get -BUSY
/// and SCRIPT KILL (tests/tests/busy_scripts.rs). The reproducer is a
/// regression in fuzz/regressions/aof_load/, replayed above as well.
#[test]
fn f1_lua_infinite_loop_in_aof_fails_the_load() {
    let path = fuzz_dir().join("regressions/aof_load/lua-infinite-loop");
    let data = std::fs::read(&path).expect("reproducer");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let files = cinnabar_fuzz_core::aof_load::unpack(&data);
        let h = cinnabar_fuzz_core::harness::Harness::start(
            cinnabar_fuzz_core::aof_load::config(true),
            1,
            files,
        );
        let _ = tx.send(h.fatal);
    });
    let fatal = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("loading the AOF finished");
    let fatal = fatal.expect("the load failed");
    assert!(fatal.contains("loading limit"), "{fatal}");
}

/// F-3 (fixed): a key-spec `keynum` near i64::MAX overflowed `first +
/// (n - 1) * step` in `Command` key extraction (engine/src/command.rs),
/// which runs for a write while a client WATCHes: a panic in debug builds.
/// The fuzzer's input is now a regression under
/// fuzz/regressions/command_sequence/.
#[test]
fn f3_huge_numkeys_overflows_key_extraction() {
    let mut h = cinnabar_fuzz_core::harness::Harness::start(
        cinnabar_engine::Config::default(),
        1,
        Default::default(),
    );
    let (a, b) = (h.connect(), h.connect());
    h.call(a, &[b"WATCH", b"k"]);
    h.call(b, &[b"LMPOP", b"9223372036854775807", b"k", b"LEFT"]);
}

/// The Redis-made seeds get past the front door: otherwise a campaign
/// would start from inputs that only exercise error paths.
#[test]
fn seeds_reach_the_deep_paths() {
    use cinnabar_fuzz_core::{aof_load, harness, rdb_load};
    let dir = fuzz_dir().join("corpus");
    for t in ["rdb_load", "restore_payload", "aof_load"] {
        assert!(read_dir(&dir.join(t)).len() >= 3, "{t}: seeds missing");
    }
    for (path, data) in read_dir(&dir.join("rdb_load")) {
        let (items, _) = rdb_load::load(&data, &cinnabar_engine::Config::default(), true)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let empty = path.ends_with("empty.rdb");
        assert_eq!(items.is_empty(), empty, "{}", path.display());
    }
    for (path, data) in read_dir(&dir.join("restore_payload")) {
        let opts = cinnabar_engine::rdb::LoadOptions {
            config: &cinnabar_engine::Config::default(),
            check_checksum: true,
            sanitize: true,
        };
        cinnabar_engine::rdb::restore_payload(&data, &opts)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    for (path, data) in read_dir(&dir.join("aof_load")) {
        let config = cinnabar_engine::Config {
            appendonly: true,
            ..cinnabar_engine::Config::default()
        };
        let mut h = harness::Harness::start(config, 1, aof_load::unpack(&data));
        assert_eq!(h.fatal, None, "{}", path.display());
        let c = h.connect();
        let snap = aof_load::snapshot(&mut h, c).expect("answers");
        assert!(snap.len() > 5, "{}: {snap:?}", path.display());
    }
}
