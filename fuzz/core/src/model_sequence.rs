//! `model_sequence`: command sequences checked reply by reply against the
//! simulator's reference model (`cinnabar_sim::model`), the small
//! `BTreeMap` keyspace that predicts every reply of the commands it models.
//!
//! The model is exact only for the commands and argument ranges the
//! simulator's workload draws, so commands come from
//! [`Workload::next_cmd`] itself: the input supplies the workload's shape
//! (a seed), then, per step, either a clock jump or a seed for one command.
//! libFuzzer explores orders, collisions, types and timings of the
//! workload's commands; `command_sequence` covers everything else without a
//! model.
//!
//! Checks: never a panic; every reply is the one the model predicts
//! (`model::check`); the keyspace invariants at the end.

use crate::harness::{check_keyspace, Harness};
use arbitrary::Unstructured;
use cinnabar_engine::Config;
use cinnabar_sim::model::{check, Model};
use cinnabar_sim::rng::SimRng;
use cinnabar_sim::workload::Workload;
use std::collections::BTreeMap;

const STEPS_MAX: usize = 64;

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(shape) = u.arbitrary::<u64>() else {
        return;
    };
    let workload = Workload::random(&mut SimRng::new(shape));
    let mut model = Model::new();
    let mut h = Harness::start(Config::default(), shape, BTreeMap::new());
    let c = h.connect();
    let mut lines = Vec::new();
    for _ in 0..STEPS_MAX {
        let Ok(kind) = u.int_in_range(0u8..=7) else {
            break;
        };
        if kind == 0 {
            let Ok(ms) = u.choose(&[1u64, 2, 10, 100, 1_000, 5_000, 60_000]) else {
                break;
            };
            h.advance_us(ms * 1000);
            lines.push(format!("(+{ms} ms)"));
            continue;
        }
        let Ok(seed) = u.arbitrary::<u64>() else {
            break;
        };
        let now_ms = (h.now / 1000) as i64;
        let cmd = workload.next_cmd(&mut SimRng::new(seed), now_ms);
        lines.push(cmd.line());
        let expect = model.apply(&cmd, now_ms);
        let argv = cmd.argv();
        let argv: Vec<&[u8]> = argv.iter().map(|a| &a[..]).collect();
        let got = h
            .call(c, &argv)
            .unwrap_or_else(|| panic!("no reply to {}", cmd.line()));
        if let Err(e) = check(&expect, &got) {
            panic!(
                "`{}` differs from the model: {e}\nsequence:\n{}",
                cmd.line(),
                lines.join("\n")
            );
        }
    }
    let checker = h.connect();
    check_keyspace(&mut h, checker);
}
