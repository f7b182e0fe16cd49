//! The durability checker: what a restarted node may have loaded.
//!
//! The world records the model's state after every write the node executed
//! (`write_executed`) and learns which were acknowledged (`acked`). At a
//! crash, the states from the *floor* on are the candidates: the floor is
//! the newest state the configured persistence promises to keep.
//!
//! | persistence | floor |
//! |---|---|
//! | none (`save ""`, no AOF) | the empty dataset: nothing may come back |
//! | snapshots (`SAVE` acknowledged) | the state at the last acknowledged SAVE |
//! | AOF, `appendfsync always` | the state after the last acknowledged write |
//! | AOF, `appendfsync everysec` | the last acknowledged write at least `EVERYSEC_WINDOW_MS` older than the crash |
//!
//! The dataset a restarted node loads must equal one candidate, compared as
//! a read at load time would see it (keys whose TTL passed are absent): at
//! least the promised data, and nothing that was never written. Snapshots
//! taken on the node's own initiative (save points, BGSAVE) are later
//! states, so they are candidates too.

use crate::disk::SimDisk;
use crate::model::{Cmd, Model};
use crate::world::Op;
use cinnabar_engine::disk::{DiskOp, DiskResult};

/// How long `appendfsync everysec` may lose, with slack for a slow fsync.
pub const EVERYSEC_WINDOW_MS: i64 = 3_000;
/// States kept per node; past this the next load is not checked (sound, but
/// noted in the report) rather than checked against a truncated list.
pub const STATES_MAX: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    None,
    Snapshot,
    AofAlways,
    AofEverysec,
}

struct State {
    /// History index of the write that produced it (`None`: the base).
    idx: Option<usize>,
    model: Model,
    acked: bool,
    /// A SAVE that succeeded: the state is on disk.
    saved: bool,
    executed_ms: i64,
}

struct NodeTrack {
    /// States from the floor on; `states[0]` is the floor.
    states: Vec<State>,
    /// False when writes ran while the model was unknown.
    valid: bool,
    /// Candidates frozen at the last crash, waiting for the load.
    pending: Option<Vec<Model>>,
}

pub struct Durability {
    /// The engine could not be configured as `persistence` says.
    pub disabled: bool,
    persistence: Persistence,
    nodes: Vec<NodeTrack>,
    pub checks: u64,
    pub skipped: u64,
}

impl Durability {
    pub fn new(persistence: Persistence, nodes: usize) -> Durability {
        Durability {
            disabled: false,
            persistence,
            nodes: (0..nodes)
                .map(|_| NodeTrack {
                    states: vec![State {
                        idx: None,
                        model: Model::new(),
                        acked: true,
                        saved: true,
                        executed_ms: 0,
                    }],
                    valid: true,
                    pending: None,
                })
                .collect(),
            checks: 0,
            skipped: 0,
        }
    }

    /// The node ran write `idx`; `model` is the state after it.
    pub fn write_executed(&mut self, n: usize, idx: usize, model: &Model, now_ms: i64) {
        let t = &mut self.nodes[n];
        if t.states.len() >= STATES_MAX {
            t.valid = false;
            return;
        }
        t.states.push(State {
            idx: Some(idx),
            model: model.clone(),
            acked: false,
            saved: false,
            executed_ms: now_ms,
        });
    }

    /// A write ran while the model was unknown: the next load cannot be
    /// checked.
    pub fn unknown_write(&mut self, n: usize) {
        self.nodes[n].valid = false;
    }

    /// The client got a successful reply to write `idx`.
    pub fn acked(&mut self, n: usize, idx: usize, cmd: &Cmd) {
        let persistence = self.persistence;
        let t = &mut self.nodes[n];
        let Some(pos) = t.states.iter().position(|s| s.idx == Some(idx)) else {
            return;
        };
        t.states[pos].acked = true;
        if matches!(cmd, Cmd::Save) {
            t.states[pos].saved = true;
        }
        // Move the floor up where the promise allows it now.
        let floor = match persistence {
            Persistence::AofAlways => Some(pos),
            Persistence::Snapshot if t.states[pos].saved => Some(pos),
            Persistence::AofEverysec => {
                let newest = t.states.last().map_or(0, |s| s.executed_ms);
                t.states
                    .iter()
                    .rposition(|s| s.acked && s.executed_ms + EVERYSEC_WINDOW_MS <= newest)
            }
            _ => None,
        };
        if let Some(f) = floor {
            t.states.drain(..f);
        }
    }

    /// A disk operation completed (the checker may use it to follow files).
    pub fn disk_done(&mut self, _n: usize, _op: &DiskOp, _result: &DiskResult, _disk: &SimDisk) {}

    /// The node crashed at `now_ms` (its own clock): freeze the candidates.
    pub fn crashed(&mut self, n: usize, now_ms: i64, _history: &[Op]) {
        let persistence = self.persistence;
        let t = &mut self.nodes[n];
        if !t.valid {
            t.pending = None;
            return;
        }
        let floor = match persistence {
            Persistence::None => {
                // Nothing is ever written: only the empty dataset (or the
                // base loaded at the last start, which is empty too).
                t.pending = Some(vec![t.states[0].model.clone()]);
                return;
            }
            Persistence::Snapshot | Persistence::AofAlways => 0,
            Persistence::AofEverysec => t
                .states
                .iter()
                .rposition(|s| s.acked && s.executed_ms + EVERYSEC_WINDOW_MS <= now_ms)
                .unwrap_or(0),
        };
        t.pending = Some(t.states[floor..].iter().map(|s| s.model.clone()).collect());
    }

    /// A restarted node serves its first command with `loaded` as its
    /// dataset (read at `now_ms`). Checks it and makes it the new base.
    pub fn loaded(&mut self, n: usize, loaded: &Model, now_ms: i64) -> Result<(), String> {
        let t = &mut self.nodes[n];
        let pending = t.pending.take();
        let base = State {
            idx: None,
            model: loaded.clone(),
            acked: true,
            saved: true,
            executed_ms: now_ms,
        };
        let was_valid = t.valid;
        t.states = vec![base];
        t.valid = true;
        if self.disabled {
            return Ok(());
        }
        let Some(candidates) = pending else {
            if !was_valid {
                self.skipped += 1;
            }
            return Ok(());
        };
        self.checks += 1;
        let seen = |m: &Model| visible(m, now_ms);
        let got = seen(loaded);
        if candidates.iter().any(|c| seen(c).keys == got.keys) {
            return Ok(());
        }
        let newest = candidates.last().map(seen).unwrap_or_default();
        let oldest = candidates.first().map(seen).unwrap_or_default();
        Err(format!(
            "n{n} loaded {} keys matching none of the {} states the history allows \
             (floor has {} keys, newest {}); first difference from the floor: {}",
            got.keys.len(),
            candidates.len(),
            oldest.keys.len(),
            newest.keys.len(),
            first_difference(&oldest, &got)
        ))
    }
}

/// The dataset as a read at `now_ms` sees it.
fn visible(m: &Model, now_ms: i64) -> Model {
    let mut v = m.clone();
    let gone = |at: i64| now_ms > at || (m.expire_at_deadline && now_ms == at);
    v.keys.retain(|_, e| !e.expire_ms.is_some_and(gone));
    v
}

fn first_difference(want: &Model, got: &Model) -> String {
    for (k, e) in &want.keys {
        match got.keys.get(k) {
            None => return format!("{} missing", String::from_utf8_lossy(k)),
            Some(g) if g != e => {
                return format!(
                    "{}: want {:?}, loaded {:?}",
                    String::from_utf8_lossy(k),
                    e,
                    g
                )
            }
            _ => {}
        }
    }
    for k in got.keys.keys() {
        if !want.keys.contains_key(k) {
            return format!("{} never written", String::from_utf8_lossy(k));
        }
    }
    "none".into()
}
