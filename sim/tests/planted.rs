//! The simulator's teeth: each bug planted in the engine (feature
//! `planted-bugs`, see `cinnabar_engine::aof::planted`) is caught within a
//! bounded number of seeds, and the clean engine passes the same seeds.
//!
//! ```sh
//! cargo test -p cinnabar-sim --features planted-bugs --release --test planted
//! ```
//!
//! | bug | scenario | caught within (seeds from 0) |
//! |---|---|---|
//! | reply-before-fsync | crash-disk, appendfsync always | 10 |
//! | no-dir-fsync | crash-disk, snapshots (SAVE) | 10 |
//! | lose-buf-on-rewrite | crash-disk, appendfsync always | 20 |
//! | torn-tail-off-by-one | crash-disk, appendfsync always | 10 |
//! | expire-early | quiet | 10 |
#![cfg(feature = "planted-bugs")]

use cinnabar_engine::aof::planted::Bug;
use cinnabar_sim::durability::Persistence;
use cinnabar_sim::swarm::{self, Scenario};
use cinnabar_sim::{run, SimConfig};

fn config(seed: u64, scenario: Scenario, p: Option<Persistence>, bug: Option<Bug>) -> SimConfig {
    let mut cfg = swarm::config_with(seed, scenario, p);
    cfg.planted = bug.into_iter().collect();
    cfg
}

/// Runs seeds from 0 with `bug` planted until one fails (at most `bound`),
/// then checks the clean engine passes every seed up to that one.
fn caught(bug: Bug, scenario: Scenario, p: Option<Persistence>, bound: u64) -> u64 {
    let Some((seed, why)) = (0..bound).find_map(|seed| {
        run(config(seed, scenario, p, Some(bug)))
            .failure
            .map(|f| (seed, format!("{} at {}us: {}", f.kind, f.at_us, f.message)))
    }) else {
        panic!("{} not caught in {bound} seeds", bug.name());
    };
    println!("{} caught by seed {seed}: {why}", bug.name());
    for s in 0..=seed {
        let r = run(config(s, scenario, p, None));
        assert!(
            r.failure.is_none(),
            "the clean engine fails seed {s}: {:?}",
            r.failure
        );
    }
    seed
}

#[test]
fn reply_before_fsync_is_caught() {
    caught(
        Bug::ReplyBeforeFsync,
        Scenario::CrashDisk,
        Some(Persistence::AofAlways),
        10,
    );
}

#[test]
fn no_dir_fsync_is_caught() {
    caught(
        Bug::NoDirFsync,
        Scenario::CrashDisk,
        Some(Persistence::Snapshot),
        10,
    );
}

#[test]
fn lose_buf_on_rewrite_is_caught() {
    caught(
        Bug::LoseBufOnRewrite,
        Scenario::CrashDisk,
        Some(Persistence::AofAlways),
        20,
    );
}

#[test]
fn torn_tail_off_by_one_is_caught() {
    caught(
        Bug::TornTailOffByOne,
        Scenario::CrashDisk,
        Some(Persistence::AofAlways),
        10,
    );
}

#[test]
fn expire_early_is_caught() {
    caught(Bug::ExpireEarly, Scenario::Quiet, None, 10);
}
