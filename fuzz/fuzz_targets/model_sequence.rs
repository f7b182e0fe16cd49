#![no_main]
//! See fuzz/core/src/model_sequence.rs for what this target checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cinnabar_fuzz_core::model_sequence::run(data));
