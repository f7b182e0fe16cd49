//! A fixed set of seeds, run in debug under `cargo test`: determinism (same
//! seed, same trace hash), the model checker on quiet and faulty networks,
//! and the known engine bugs still reproducing.

use cinnabar_sim::model::KnownBug;
use cinnabar_sim::swarm::{self, Scenario};
use cinnabar_sim::{run, KNOWN_ENGINE_BUGS};

/// Virtual seconds of the safety phase per seed: short, so the whole file
/// stays well under a minute in debug builds.
const SAFETY_S: u64 = 3;

fn config(seed: u64, scenario: Scenario) -> cinnabar_sim::SimConfig {
    let mut cfg = swarm::config(seed, scenario);
    cfg.safety_us = SAFETY_S * 1_000_000;
    // Look past the engine bugs already recorded (see KNOWN_ENGINE_BUGS).
    cfg.emulate = KnownBug::ALL.to_vec();
    cfg
}

#[test]
fn same_seed_same_trace() {
    for (seed, scenario) in [
        (7, Scenario::Quiet),
        (8, Scenario::Net),
        (9, Scenario::Swarm),
    ] {
        let a = run(config(seed, scenario));
        let b = run(config(seed, scenario));
        assert!(a.trace_lines > 100, "seed {seed}: trace too short");
        assert_eq!(
            a.trace_hash, b.trace_hash,
            "seed {seed} {scenario:?} diverged"
        );
        let c = run(config(seed + 1000, scenario));
        assert_ne!(a.trace_hash, c.trace_hash, "different seeds, same trace");
    }
}

fn run_seeds(scenario: Scenario, seeds: std::ops::Range<u64>) {
    let mut failures = Vec::new();
    for seed in seeds {
        let r = run(config(seed, scenario));
        assert!(r.ops_completed > 0, "seed {seed}: nothing completed");
        if let Some(f) = r.failure {
            failures.push(format!(
                "seed {seed} ({}): {}\n  replay: cargo run -p cinnabar-sim --release -- --seed {seed} --scenario {} --duration {SAFETY_S} --emulate-known-bugs --trace",
                f.kind,
                f.message,
                scenario.name()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn quiet_seeds_match_the_model() {
    run_seeds(Scenario::Quiet, 0..12);
}

#[test]
fn network_and_process_faults() {
    run_seeds(Scenario::Net, 100..112);
}

/// Crashes and disk faults, with every persistence mode.
#[test]
fn crash_and_disk_faults() {
    run_seeds(Scenario::CrashDisk, 200..210);
}

#[test]
fn known_engine_bugs_still_fail_with_a_strict_model() {
    for &(seed, scenario, what) in KNOWN_ENGINE_BUGS {
        let mut cfg = swarm::config(seed, Scenario::parse(scenario).expect("scenario name"));
        cfg.emulate.clear();
        let r = run(cfg);
        assert!(
            r.failure.is_some(),
            "seed {seed} ({scenario}) no longer fails: is this fixed? {what}"
        );
    }
}
