#![no_main]
//! See fuzz/core/src/resp_reply.rs for what this target checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cinnabar_fuzz_core::resp_reply::run(data));
