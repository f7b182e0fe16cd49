#![no_main]
//! See fuzz/core/src/rdb_load.rs for what this target checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cinnabar_fuzz_core::rdb_load::run(data));
