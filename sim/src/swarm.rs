//! Swarm testing: each seed picks which faults are on and how often, so
//! rare combinations are reached across seeds instead of every fault being
//! diluted in every run. The choice uses its own RNG stream (derived from the
//! seed) so that it does not shift the world's draws.

use crate::disk::DiskFaults;
use crate::durability::Persistence;
use crate::rng::SimRng;
use crate::workload::Workload;
use crate::world::SimConfig;

/// Named scenarios: which fault families a run may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// No faults: every reply is checked against the model.
    Quiet,
    /// Network faults only.
    Net,
    /// Crashes (power loss, kill -9) and disk faults: one node, 10 clients.
    CrashDisk,
    /// Everything, each on or off per seed.
    Swarm,
}

impl Scenario {
    pub fn parse(s: &str) -> Option<Scenario> {
        match s {
            "quiet" => Some(Scenario::Quiet),
            "net" => Some(Scenario::Net),
            "crash-disk" => Some(Scenario::CrashDisk),
            "swarm" => Some(Scenario::Swarm),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Quiet => "quiet",
            Scenario::Net => "net",
            Scenario::CrashDisk => "crash-disk",
            Scenario::Swarm => "swarm",
        }
    }
}

/// Weight of a fault family: off for about a third of the seeds.
fn weight(r: &mut SimRng) -> u64 {
    if r.chance(0.35) {
        0
    } else {
        r.range(1, 10)
    }
}

fn disk_faults(r: &mut SimRng) -> DiskFaults {
    let on = |r: &mut SimRng, p: f64| if r.chance(0.5) { p } else { 0.0 };
    DiskFaults {
        torn_writes: r.chance(0.6),
        fsync_eio_p: on(r, 0.02),
        space_bytes: if r.chance(0.2) {
            Some(r.range(1_000, 200_000))
        } else {
            None
        },
        short_write_p: on(r, 0.05),
        corrupt_on_crash_p: on(r, 0.1),
        read_eio_p: on(r, 0.02),
        misdirect_p: on(r, 0.001),
        latency_us_min: 10,
        latency_us_max: r.range(50, 2_000),
        slow_p: on(r, 0.02),
        slow_us_max: r.range(10_000, 1_000_000),
    }
}

/// Picks how the node persists (unless `force`d), and configures the
/// engine and workload.
pub fn persistence(r: &mut SimRng, cfg: &mut SimConfig, force: Option<Persistence>) {
    let p = match r.below(20) {
        0..=4 => Persistence::None,
        5..=11 => Persistence::Snapshot,
        12..=16 => Persistence::AofAlways,
        _ => Persistence::AofEverysec,
    };
    let p = force.unwrap_or(p);
    let params: &[(&str, &str)] = match p {
        Persistence::None => &[("save", ""), ("appendonly", "no")],
        Persistence::Snapshot => &[("appendonly", "no")],
        Persistence::AofAlways => &[
            ("save", ""),
            ("appendonly", "yes"),
            ("appendfsync", "always"),
        ],
        Persistence::AofEverysec => &[
            ("save", ""),
            ("appendonly", "yes"),
            ("appendfsync", "everysec"),
        ],
    };
    cfg.engine_params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if p != Persistence::None {
        // Background snapshots and AOF rewrites racing with writes and
        // crashes. (Not without persistence: a BGSAVE would write the
        // dump.rdb the next start loads.)
        if r.chance(0.6) {
            cfg.workload.background_pm = r.range(1, 15);
        }
        if matches!(p, Persistence::AofAlways | Persistence::AofEverysec) && r.chance(0.5) {
            // Automatic rewrites once the AOF doubles past a few kB.
            let min = r.range(1_000, 50_000).to_string();
            cfg.engine_params
                .push(("auto-aof-rewrite-min-size".into(), min));
        }
    }
    if p == Persistence::Snapshot {
        // Save points on some seeds (snapshots the node takes by itself),
        // SAVE commands from the clients on all.
        let save = *r.pick(&["", "1 1", "1 100 5 1"]);
        cfg.engine_params.push(("save".into(), save.into()));
        cfg.workload.save_pm = r.range(2, 30);
    }
    cfg.persistence = p;
}

/// The configuration of `seed` for `scenario`.
pub fn config(seed: u64, scenario: Scenario) -> SimConfig {
    config_with(seed, scenario, None)
}

/// As [`config`], with the persistence mode forced (crash-disk and swarm):
/// the other choices stay those of the seed.
pub fn config_with(seed: u64, scenario: Scenario, force: Option<Persistence>) -> SimConfig {
    let mut r = SimRng::new(seed ^ 0x5157_4a52_4d5f_5357);
    let mut cfg = SimConfig::quiet(seed);
    cfg.clients = r.range(1, 10) as usize;
    cfg.workload = Workload::random(&mut r);
    cfg.think_us_mean = r.range(1_000, 100_000);
    cfg.pipeline_max = r.range(1, 5);
    cfg.resp3_p = *r.pick(&[0.0, 0.5, 1.0]);
    cfg.net.latency_us_min = r.range(10, 200);
    cfg.net.latency_us_max = cfg.net.latency_us_min + r.range(0, 5_000);
    cfg.net.split_p = *r.pick(&[0.0, 0.2, 0.8]);
    cfg.fault_interval_us_mean = r.range(100_000, 3_000_000);
    // Some seeds of every scenario run with the engine's BUGGIFY hooks.
    cfg.buggify = r.chance(0.3);
    match scenario {
        Scenario::Quiet => {}
        Scenario::Net => {
            cfg.net.reset_w = weight(&mut r);
            cfg.net.partition_w = weight(&mut r);
            cfg.net.spike_w = weight(&mut r);
            cfg.proc.pause_w = weight(&mut r);
            cfg.proc.clock_jump_w = weight(&mut r);
        }
        Scenario::CrashDisk => {
            cfg.clients = 10;
            cfg.proc.power_loss_w = r.range(1, 10);
            cfg.proc.kill_w = r.range(0, 10);
            cfg.disk = disk_faults(&mut r);
            persistence(&mut r, &mut cfg, force);
        }
        Scenario::Swarm => {
            cfg.net.reset_w = weight(&mut r);
            cfg.net.partition_w = weight(&mut r);
            cfg.net.spike_w = weight(&mut r);
            cfg.proc.pause_w = weight(&mut r);
            cfg.proc.clock_jump_w = weight(&mut r);
            cfg.proc.power_loss_w = weight(&mut r);
            cfg.proc.kill_w = weight(&mut r);
            cfg.disk = disk_faults(&mut r);
            persistence(&mut r, &mut cfg, force);
        }
    }
    cfg
}
