#![no_main]
//! See fuzz/core/src/restore_payload.rs for what this target checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cinnabar_fuzz_core::restore_payload::run(data));
