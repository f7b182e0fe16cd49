//! # cinnabar-sim
//!
//! A deterministic simulator for the Cinnabar engine: a world of engine
//! [`Node`](cinnabar_engine::Node)s, simulated clients, a simulated network
//! and one simulated disk per node, on a virtual clock, with every choice
//! drawn from one seeded RNG. See `docs/simulation.md` for how to run and
//! replay it, and [`world`] for the event loop.
//!
//! - [`world`]: the event loop, network, process faults, liveness checks.
//! - [`disk`]: the simulated disk (page cache, fsync, crashes, faults).
//! - [`model`]: the reference model of Redis semantics the replies are
//!   checked against; [`workload`]: the operations clients issue.
//! - [`session`]: transactions, blocked clients and the script cache,
//!   per connection, beside the model.
//! - [`durability`]: what a restarted node may load.
//! - [`reload`]: a node's files must load back to its dataset.
//! - [`resp`]: the clients' RESP2/RESP3 reply decoder.
//! - [`swarm`]: per-seed choice of faults and rates.

pub mod disk;
pub mod durability;
pub mod engine_state;
pub mod model;
pub mod reload;
pub mod resp;
pub mod rng;
pub mod session;
pub mod snapshot;
pub mod swarm;
pub mod trace;
pub mod workload;
pub mod world;

pub use world::{Report, SimConfig, World};

/// Seeds known to fail because of an engine bug (not a simulator bug). Each
/// entry: (seed, scenario flags, what goes wrong). Kept so the bug is not
/// forgotten and the checker is not weakened to hide it. The flags are a
/// scenario name, optionally followed by ` --buggify on`.
pub const KNOWN_ENGINE_BUGS: &[(u64, &str, &str)] = &[];

/// Runs one seed with the given config and returns its report.
pub fn run(cfg: SimConfig) -> Report {
    World::new(cfg).run()
}
