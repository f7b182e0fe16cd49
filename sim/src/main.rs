//! `cinnabar-sim`: runs seeds of the deterministic simulator.
//!
//! ```text
//! cargo run -p cinnabar-sim --release -- --seed 42 --trace
//! cargo run -p cinnabar-sim --release -- --seeds 0..1000 --scenario crash-disk
//! ```
//!
//! Options: `--seed N`, `--seeds A..B`, `--scenario quiet|net|crash-disk|swarm`
//! (default swarm), `--persistence none|snapshot|always|everysec` (forced
//! mode), `--duration S` (virtual seconds of the safety phase, default 10),
//! `--clients N`, `--buggify on|off` (force the engine's BUGGIFY hooks;
//! otherwise each seed picks), `--trace` (print every event), `--emulate-known-bugs`
//! (the model imitates the engine bugs listed in `KNOWN_ENGINE_BUGS`, to
//! look past them), `--plant BUG` (a planted engine bug; needs
//! `--features planted-bugs`), `--jobs N` (seeds run at once, one thread
//! each; default the machine's cores). A failure prints the seed and the
//! command that replays it; the exit status is 1 if any seed failed.

use cinnabar_sim::durability::Persistence;
use cinnabar_sim::swarm::{self, Scenario};
use cinnabar_sim::{run, World};
use std::process::ExitCode;
use std::time::Instant;

// The server's allocator (net/src/main.rs): the engine behaves as it does
// in production, and a campaign spends far less in malloc than on glibc's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Args {
    seeds: std::ops::Range<u64>,
    scenario: Scenario,
    duration_s: Option<u64>,
    clients: Option<usize>,
    trace: bool,
    /// Emulate the engine's known bugs in the model, to look past them.
    emulate_known_bugs: bool,
    /// Planted engine bugs to switch on (feature `planted-bugs`).
    plant: Vec<String>,
    /// Forced persistence mode (crash-disk and swarm).
    persistence: Option<Persistence>,
    /// Forced BUGGIFY setting (otherwise each seed picks).
    buggify: Option<bool>,
    /// Seeds run at once, each on a thread of its own (default: the
    /// machine's cores; 1 with `--trace`).
    jobs: Option<usize>,
}

fn usage() -> ! {
    eprintln!(
        "usage: cinnabar-sim [--seed N | --seeds A..B] [--scenario quiet|net|crash-disk|swarm] \
         [--persistence none|snapshot|always|everysec] [--duration SECONDS] [--clients N] \
         [--buggify on|off] [--trace] [--emulate-known-bugs] [--plant BUG]... [--jobs N]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        seeds: 0..1,
        scenario: Scenario::Swarm,
        duration_s: None,
        clients: None,
        trace: false,
        emulate_known_bugs: false,
        plant: Vec::new(),
        persistence: None,
        buggify: None,
        jobs: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--seed" => {
                let s: u64 = val().parse().unwrap_or_else(|_| usage());
                a.seeds = s..s + 1;
            }
            "--seeds" => {
                let v = val();
                let (lo, hi) = v.split_once("..").unwrap_or_else(|| usage());
                a.seeds =
                    lo.parse().unwrap_or_else(|_| usage())..hi.parse().unwrap_or_else(|_| usage());
            }
            "--scenario" => a.scenario = Scenario::parse(&val()).unwrap_or_else(|| usage()),
            "--duration" => a.duration_s = Some(val().parse().unwrap_or_else(|_| usage())),
            "--clients" => a.clients = Some(val().parse().unwrap_or_else(|_| usage())),
            "--trace" => a.trace = true,
            "--emulate-known-bugs" => a.emulate_known_bugs = true,
            "--plant" => a.plant.push(val()),
            "--persistence" => {
                a.persistence = Some(Persistence::parse(&val()).unwrap_or_else(|| usage()))
            }
            "--buggify" => {
                a.buggify = Some(match val().as_str() {
                    "on" => true,
                    "off" => false,
                    _ => usage(),
                })
            }
            "--jobs" => match val().parse() {
                Ok(n) if n > 0 => a.jobs = Some(n),
                _ => usage(),
            },
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    a
}

fn replay_command(seed: u64, a: &Args) -> String {
    let mut s = format!(
        "cargo run -p cinnabar-sim --release -- --seed {seed} --scenario {}",
        a.scenario.name()
    );
    if let Some(p) = a.persistence {
        s.push_str(&format!(" --persistence {}", p.name()));
    }
    if let Some(d) = a.duration_s {
        s.push_str(&format!(" --duration {d}"));
    }
    if let Some(c) = a.clients {
        s.push_str(&format!(" --clients {c}"));
    }
    if let Some(b) = a.buggify {
        s.push_str(if b { " --buggify on" } else { " --buggify off" });
    }
    if a.emulate_known_bugs {
        s.push_str(" --emulate-known-bugs");
    }
    if !a.plant.is_empty() {
        s = s.replace("-p cinnabar-sim", "-p cinnabar-sim --features planted-bugs");
        for p in &a.plant {
            s.push_str(&format!(" --plant {p}"));
        }
    }
    s.push_str(" --trace");
    s
}

#[cfg(feature = "planted-bugs")]
fn plant(cfg: &mut cinnabar_sim::SimConfig, names: &[String]) {
    use cinnabar_engine::aof::planted::Bug;
    for n in names {
        match Bug::parse(n) {
            Some(b) => cfg.planted.push(b),
            None => {
                let all: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
                eprintln!("unknown planted bug {n:?}; one of {all:?}");
                std::process::exit(2)
            }
        }
    }
}

#[cfg(not(feature = "planted-bugs"))]
fn plant(_cfg: &mut cinnabar_sim::SimConfig, _names: &[String]) {
    eprintln!("--plant needs: cargo run -p cinnabar-sim --features planted-bugs");
    std::process::exit(2)
}

/// Runs one seed as the options say.
fn run_seed(seed: u64, args: &Args) -> cinnabar_sim::Report {
    let mut cfg = swarm::config_with(seed, args.scenario, args.persistence);
    if let Some(d) = args.duration_s {
        cfg.safety_us = d * 1_000_000;
    }
    if let Some(c) = args.clients {
        cfg.clients = c;
    }
    if let Some(b) = args.buggify {
        cfg.buggify = b;
    }
    if args.emulate_known_bugs {
        cfg.emulate = cinnabar_sim::model::KnownBug::ALL.to_vec();
    }
    if !args.plant.is_empty() {
        plant(&mut cfg, &args.plant);
    }
    if args.trace {
        let mut w = World::new(cfg);
        w.set_verbose(true);
        w.run()
    } else {
        run(cfg)
    }
}

fn main() -> ExitCode {
    let args = parse_args();
    if args.trace {
        tracing_subscriber::fmt()
            .with_target(false)
            .without_time()
            .with_level(false)
            .init();
    }
    let started = Instant::now();
    let (mut failed, mut ran, mut sim_us, mut ops) = (0u64, 0u64, 0u64, 0u64);
    let jobs = if args.trace {
        1
    } else {
        args.jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    };
    let mut on_report = |seed: u64, report: &cinnabar_sim::Report| {
        ran += 1;
        sim_us += report.sim_us;
        ops += report.ops_completed;
        if let Some(f) = &report.failure {
            failed += 1;
            println!(
                "seed {seed} FAILED at {}us ({}): {}",
                f.at_us, f.kind, f.message
            );
            println!("  replay: {}", replay_command(seed, &args));
        } else if args.seeds.end - args.seeds.start == 1 {
            println!(
                "seed {seed} ok: trace {:016x} ({} lines, {} events), {} ops ({} checked), {} crashes, {} restarts, {} resets, {} partitions, {} pauses, {} clock jumps, {} disk faults, {} durability checks, {} reload checks",
                report.trace_hash,
                report.trace_lines,
                report.events,
                report.ops_completed,
                report.ops_checked,
                report.crashes,
                report.restarts,
                report.resets,
                report.partitions,
                report.pauses,
                report.clock_jumps,
                report.disk_faults,
                report.durability_checks,
                report.reload_checks,
            );
        }
    };
    if jobs <= 1 {
        for seed in args.seeds.clone() {
            let report = run_seed(seed, &args);
            on_report(seed, &report);
        }
    } else {
        // Seeds are independent worlds (the engine's BUGGIFY and planted
        // switches are per thread), so they run in parallel; reports are
        // printed in seed order, as a single thread prints them.
        let next = std::sync::atomic::AtomicU64::new(args.seeds.start);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                let (tx, next, args) = (tx.clone(), &next, &args);
                std::thread::Builder::new()
                    .stack_size(64 << 20)
                    .spawn_scoped(scope, move || loop {
                        let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if seed >= args.seeds.end {
                            break;
                        }
                        if tx.send((seed, run_seed(seed, args))).is_err() {
                            break;
                        }
                    })
                    .expect("spawn a seed thread");
            }
            drop(tx);
            let mut done = std::collections::BTreeMap::new();
            let mut want = args.seeds.start;
            for (seed, report) in rx {
                done.insert(seed, report);
                while let Some(report) = done.remove(&want) {
                    on_report(want, &report);
                    want += 1;
                }
            }
        });
    }
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    let sim = sim_us as f64 / 1e6;
    println!(
        "{ran} seeds, {failed} failed; {sim:.0} simulated s in {wall:.2} wall s ({jobs} jobs): {:.0}x real time, {:.0} seeds/hour, {:.0} ops/wall s",
        sim / wall,
        ran as f64 * 3600.0 / wall,
        ops as f64 / wall
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
