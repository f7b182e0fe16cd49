//! # cinnabar-engine
//!
//! A Redis 7.0-compatible server as a sans-IO state machine. This crate
//! contains no networking code, reads no clock, spawns no threads, touches no
//! files and draws randomness only from the seed given to [`Node::new`]: time,
//! bytes received and I/O completions are inputs; bytes to send, connections
//! to close and timers are outputs. See [`node`] for the driving contract.
//!
//! Where things are:
//! - [`node`]: the `Node` state machine, clients, dispatch.
//! - [`resp`]: request parsing and reply encoding (RESP2/RESP3).
//! - [`command`]: the command table (Redis's own specification + handlers).
//! - [`commands`]: one module per command family (`strings`, `keys`, ...).
//! - [`db`], [`dict`]: the keyspace and its hash table; [`expire`]: active expiry.
//! - [`acl`]: users, rules and the permission check.
//! - [`config`]: parameters, defaults and CONFIG GET/SET syntax.

pub mod acl;
pub mod aof;
pub mod buggify;
pub mod check;
pub mod command;
pub mod commands;
pub mod config;
pub mod config_rewrite;
pub mod db;
pub mod dict;
pub mod disk;
pub mod evict;
pub mod expire;
pub mod glob;
pub mod latency;
pub mod lazyfree;
pub mod limits;
pub mod lua;
pub mod memory;
pub mod node;
pub mod notify;
pub mod numeric;
pub mod persist;
pub mod rdb;
pub mod resp;
pub mod slowlog;
pub mod stream;
pub mod tracking;

pub use config::Config;

/// The Redis version we are compatible with; clients gate features on it.
pub const REDIS_VERSION: &str = "7.0.15";
/// Cinnabar's own version (INFO server's `cinnabar_version`).
pub const CINNABAR_VERSION: &str = env!("CARGO_PKG_VERSION");
pub use node::{ConnId, HostInfo, Input, Node, Output, Time};
