//! # cinnabar-fuzz-core
//!
//! The bodies of Cinnabar's fuzz targets as plain functions, one module per
//! target, each with `pub fn run(data: &[u8])`. A target panics when it
//! finds a bug (a panic inside the engine, a broken invariant, a result
//! that differs from the reference) and returns normally otherwise.
//!
//! Two drivers call them:
//! - `fuzz/fuzz_targets/*.rs`: cargo-fuzz (libFuzzer, nightly) campaigns,
//!   see `fuzz/run.sh`;
//! - `tests/tests/fuzz_replay.rs`: a stable `cargo test` that replays the
//!   checked-in corpora, the regressions and pseudo-random mutations of
//!   them from a fixed seed (see [`replay`]).
//!
//! Targets:
//! - [`resp_request`]: the request parser under arbitrary splits.
//! - [`resp_reply`]: the simulator's reply decoder under arbitrary splits.
//! - [`rdb_load`]: arbitrary bytes as an RDB file.
//! - [`rdb_roundtrip`]: structure-aware datasets through `RdbWriter` and back.
//! - [`restore_payload`]: RESTORE with arbitrary payloads on a live node.
//! - [`aof_load`]: arbitrary manifests and AOF files at node start-up.
//! - [`command_sequence`]: arbitrary command sequences with keyspace
//!   invariants checked after every command.
//! - [`model_sequence`]: the simulator workload's commands, every reply
//!   checked against the simulator's reference model.

pub mod aof_load;
pub mod canon;
pub mod command_sequence;
pub mod harness;
pub mod model_sequence;
pub mod rdb_load;
pub mod rdb_roundtrip;
pub mod replay;
pub mod resp_reply;
pub mod resp_request;
pub mod restore_payload;

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by name, for the drivers.
pub const TARGETS: &[(&str, Target)] = &[
    ("resp_request", resp_request::run),
    ("resp_reply", resp_reply::run),
    ("rdb_load", rdb_load::run),
    ("rdb_roundtrip", rdb_roundtrip::run),
    ("restore_payload", restore_payload::run),
    ("aof_load", aof_load::run),
    ("command_sequence", command_sequence::run),
    ("model_sequence", model_sequence::run),
];
