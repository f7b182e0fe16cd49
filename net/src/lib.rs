//! `cinnabar-net`: the shim between the sans-IO engine and real I/O.
//!
//! [`server`] is the serving core (connections, routing, timers); the
//! `cinnabar-server` binary wraps it with the process's concerns (config
//! files, TLS, unix sockets, signals, real files). Built with
//! `--cfg madsim`, `tokio` is madsim's simulation and the core runs over a
//! simulated network (`sim_test.rs`, see docs/simulation.md).

pub mod memdisk;
pub mod server;

#[cfg(all(test, madsim))]
mod sim_test;
