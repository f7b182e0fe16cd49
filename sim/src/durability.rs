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
//! | AOF, `appendfsync everysec` | power loss: the last acknowledged write at least `EVERYSEC_WINDOW_MS` older than the crash (pauses excepted); kill -9: the last acknowledged write (replies wait for write(2)) |
//!
//! The dataset a restarted node loads must equal one candidate, compared as
//! a read at load time would see it (keys whose TTL passed are absent): at
//! least the promised data, and nothing that was never written. Snapshots
//! taken on the node's own initiative (save points, BGSAVE) are later
//! states, so they are candidates too.
//!
//! # After a kill -9
//!
//! The page cache survives a kill, so a restarted node may load data that
//! was never made durable (written, not yet fsynced). A power loss soon
//! after can take it back. The loaded dataset is therefore not a floor by
//! itself: the candidates it matched (from the old floor to the newest
//! match) are *carried* into the new list, ahead of it, until a later
//! write is made durable (its acknowledgement under `always`, its
//! window under `everysec`, an acknowledged SAVE), which proves the
//! node's fsyncs covered them. After a power loss nothing is carried: the
//! node read only durable data.

use crate::disk::SimDisk;
use crate::model::{Cmd, Model};
use crate::world::Op;
use cinnabar_engine::disk::{DiskOp, DiskResult};
use std::rc::Rc;

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

#[derive(Clone)]
struct State {
    /// History index of the write that produced it (`None`: the base).
    idx: Option<usize>,
    /// Shared with the previous state when the write changed nothing.
    model: Rc<Model>,
    acked: bool,
    /// A SAVE that succeeded: the state is on disk.
    saved: bool,
    executed_ms: i64,
    /// Executed before the last load (or the loaded dataset itself, after
    /// a kill): its durability is not known, and time does not make it
    /// durable (the process that would have fsynced it is gone).
    carried: bool,
    /// The write changed the dataset: the node logged something, so its
    /// acknowledgement (always) or its window (everysec) implies an fsync
    /// that covered everything before it. A write that changed nothing
    /// (DEL of a missing key) is acknowledged without any disk work.
    changed: bool,
}

struct NodeTrack {
    /// States from the floor on; `states[0]` is the floor.
    states: Vec<State>,
    /// False when writes ran while the model was unknown.
    valid: bool,
    /// Candidates frozen at the last crash, waiting for the load.
    pending: Option<Vec<State>>,
    /// The last crash was a power loss (the load reads durable data only).
    power_loss: bool,
    /// A load was not checked after a kill: what may come back below the
    /// carried states is unknown until a write is made durable.
    unknown_carry: bool,
    /// The node served a command (its dataset was learnt) since the last
    /// crash. If not, a new crash keeps the candidates of the previous one:
    /// nothing was written in between, and the time that passed does not
    /// make anything durable (no process held the writes).
    loaded_since_crash: bool,
    /// In `pending`, the first state the load may show (after a kill under
    /// everysec, the last acknowledged one); the states before it are kept
    /// for what a later power loss may go back to.
    pending_load_floor: usize,
    /// When this incarnation's AOF first failed a write or fsync (its own
    /// clock). `everysec` promises nothing about writes near or after that:
    /// they may sit in a buffer the disk refuses, or in pages a failed fsync
    /// marked clean.
    aof_trouble_ms: Option<i64>,
    /// Intervals (world ms) the node was paused: no fsync happens in them,
    /// so they stretch the everysec window.
    pauses: Vec<(i64, i64)>,
}

pub struct Durability {
    /// The engine could not be configured as `persistence` says.
    pub disabled: bool,
    persistence: Persistence,
    nodes: Vec<NodeTrack>,
    pub checks: u64,
    pub skipped: u64,
}

impl Persistence {
    pub fn parse(s: &str) -> Option<Persistence> {
        match s {
            "none" => Some(Persistence::None),
            "snapshot" => Some(Persistence::Snapshot),
            "always" => Some(Persistence::AofAlways),
            "everysec" => Some(Persistence::AofEverysec),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Persistence::None => "none",
            Persistence::Snapshot => "snapshot",
            Persistence::AofAlways => "always",
            Persistence::AofEverysec => "everysec",
        }
    }
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
                        model: Rc::new(Model::new()),
                        acked: true,
                        saved: true,
                        executed_ms: 0,
                        carried: false,
                        changed: true,
                    }],
                    valid: true,
                    pending: None,
                    power_loss: true,
                    unknown_carry: false,
                    loaded_since_crash: true,
                    pending_load_floor: 0,
                    aof_trouble_ms: None,
                    pauses: Vec::new(),
                })
                .collect(),
            checks: 0,
            skipped: 0,
        }
    }

    /// The node ran write `idx`; `model` is the state after it. Times in
    /// this checker are the world's (milliseconds of virtual time), not the
    /// node's clock, which may jump.
    pub fn write_executed(&mut self, n: usize, idx: usize, model: &Model, now_ms: i64) {
        if self.persistence == Persistence::None {
            // Only the empty dataset may come back: nothing to remember.
            return;
        }
        let t = &mut self.nodes[n];
        if t.states.len() >= STATES_MAX {
            t.valid = false;
            return;
        }
        let prev = t.states.last().map(|s| s.model.clone());
        let changed = prev.as_ref().is_none_or(|m| **m != *model);
        let model = match prev {
            Some(m) if !changed => m,
            _ => Rc::new(model.clone()),
        };
        t.states.push(State {
            idx: Some(idx),
            model,
            acked: false,
            saved: false,
            executed_ms: now_ms,
            carried: false,
            changed,
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
        // Replies come soon after execution: search from the newest.
        let Some(pos) = t.states.iter().rposition(|s| s.idx == Some(idx)) else {
            return;
        };
        t.states[pos].acked = true;
        if matches!(cmd, Cmd::Save) {
            t.states[pos].saved = true;
        }
        // Move the floor up where the promise allows it now.
        let floor = match persistence {
            Persistence::AofAlways => t.states[pos].changed.then_some(pos),
            Persistence::Snapshot if t.states[pos].saved => Some(pos),
            Persistence::AofEverysec => {
                let newest = t.states.last().map_or(0, |s| s.executed_ms);
                everysec_floor(t, newest)
            }
            _ => None,
        };
        if let Some(f) = floor {
            t.states.drain(..f);
            if !t.states[0].carried {
                t.unknown_carry = false;
            }
        }
    }

    /// The next load of node `n` is checked (its candidates are known).
    pub fn will_check(&self, n: usize) -> bool {
        !self.disabled && self.nodes[n].pending.is_some()
    }

    /// The node was paused (SIGSTOP) from `from_ms` to `to_ms`.
    pub fn paused(&mut self, n: usize, from_ms: i64, to_ms: i64) {
        self.nodes[n].pauses.push((from_ms, to_ms));
    }

    /// The node's AOF reports a write or fsync error at `now_ms`.
    pub fn aof_trouble(&mut self, n: usize, now_ms: i64) {
        let t = &mut self.nodes[n];
        if t.aof_trouble_ms.is_none() {
            t.aof_trouble_ms = Some(now_ms);
        }
    }

    /// A disk operation completed (the checker may use it to follow files).
    pub fn disk_done(&mut self, _n: usize, _op: &DiskOp, _result: &DiskResult, _disk: &SimDisk) {}

    /// The node crashed at `now_ms` (its own clock): freeze the candidates.
    pub fn crashed(&mut self, n: usize, now_ms: i64, power_loss: bool, _history: &[Op]) {
        let persistence = self.persistence;
        let t = &mut self.nodes[n];
        t.power_loss = power_loss;
        if !t.valid {
            t.pending = None;
            return;
        }
        if !std::mem::replace(&mut t.loaded_since_crash, false) {
            if power_loss {
                t.pending_load_floor = 0;
            }
            return;
        }
        t.pending_load_floor = 0;
        let floor = match persistence {
            Persistence::None => {
                // Nothing is ever written: only the empty dataset (or the
                // base loaded at the last start, which is empty too).
                t.pending = Some(vec![t.states[0].clone()]);
                return;
            }
            Persistence::Snapshot | Persistence::AofAlways => 0,
            Persistence::AofEverysec => everysec_floor(t, now_ms).unwrap_or(0),
        };
        if persistence == Persistence::AofEverysec && !power_loss && t.aof_trouble_ms.is_none() {
            // A reply under everysec waits for its write(2): after a kill
            // (the page cache survives) the load shows every acknowledged
            // write. What is durable is still only the floor above, which
            // a later power loss may go back to.
            let acked = t.states.iter().rposition(|s| s.acked).unwrap_or(0);
            t.pending_load_floor = acked.saturating_sub(floor);
        }
        if power_loss && t.unknown_carry && t.states[floor].carried {
            // Nothing known to be durable since a load that was not
            // checked: the disk may hold anything from before it.
            t.pending = None;
            return;
        }
        // Until the load, nothing is written: the states can move.
        t.pending = Some(t.states.split_off(floor));
    }

    /// A restarted node serves its first command with `loaded` as its
    /// dataset (read at `now_ms` of its clock, at `world_ms`). Checks it
    /// and makes it the new base.
    pub fn loaded(
        &mut self,
        n: usize,
        loaded: &Model,
        now_ms: i64,
        world_ms: i64,
    ) -> Result<(), String> {
        let t = &mut self.nodes[n];
        let pending = t.pending.take();
        // After a kill the loaded data may not be durable (see the module
        // docs); after a power loss it is.
        let carry = !t.power_loss;
        let base = State {
            idx: None,
            model: Rc::new(loaded.clone()),
            acked: true,
            saved: true,
            executed_ms: world_ms,
            carried: carry,
            changed: true,
        };
        let was_valid = t.valid;
        t.states = vec![base.clone()];
        t.valid = true;
        t.loaded_since_crash = true;
        t.aof_trouble_ms = None;
        t.pauses.clear();
        let Some(candidates) = pending.filter(|_| !self.disabled) else {
            if !was_valid {
                self.skipped += 1;
            }
            t.unknown_carry = carry;
            return Ok(());
        };
        self.checks += 1;
        let seen = |m: &Model| visible(m, now_ms);
        let got = seen(loaded);
        let load_floor = std::mem::take(&mut t.pending_load_floor);
        if let Some(j) = candidates
            .iter()
            .rposition(|c| same_visible(&c.model, &got, now_ms))
            .filter(|&j| j >= load_floor)
        {
            if carry {
                let mut states: Vec<State> = candidates.into_iter().take(j + 1).collect();
                for s in &mut states {
                    s.carried = true;
                }
                states.push(base);
                t.states = states;
            }
            return Ok(());
        }
        let seen_all: Vec<(Option<usize>, Model)> = candidates
            .iter()
            .skip(load_floor)
            .map(|c| (c.idx, seen(&c.model)))
            .collect();
        // The closest candidate (fewest differing keys; the newest on ties)
        // tells what was lost or invented.
        let (pos, (idx, closest)) = seen_all
            .iter()
            .enumerate()
            .min_by_key(|(p, (_, c))| (differences(c, &got).len(), usize::MAX - p))
            .expect("at least the floor");
        let after = |i: &Option<usize>| i.map_or("the last load".to_string(), |i| format!("#{i}"));
        Err(format!(
            "n{n} loaded {} keys matching none of the {} states the history allows \
             (floor: after {}, {} keys; newest: after {}, {} keys); closest: state {pos} \
             (after {}): {}",
            got.keys.len(),
            seen_all.len(),
            after(&seen_all[0].0),
            seen_all[0].1.keys.len(),
            after(&seen_all[seen_all.len() - 1].0),
            seen_all[seen_all.len() - 1].1.keys.len(),
            after(idx),
            differences(closest, &got).join("; ")
        ))
    }
}

/// Under `everysec`, the newest state promised durable at `now_ms`: an
/// acknowledged write the node has had the window to fsync since (carried
/// states do not count: their process is gone).
fn everysec_floor(t: &NodeTrack, now_ms: i64) -> Option<usize> {
    // Nothing is promised past the AOF's first write error.
    let until = now_ms.min(t.aof_trouble_ms.unwrap_or(i64::MAX));
    let paused = |from: i64| -> i64 {
        t.pauses
            .iter()
            .map(|&(a, b)| (b.min(until) - a.max(from)).max(0))
            .sum()
    };
    // States are in execution order: none after this one is old enough
    // even without pauses.
    let end = t
        .states
        .partition_point(|s| s.executed_ms + EVERYSEC_WINDOW_MS <= until);
    t.states[..end].iter().rposition(|s| {
        s.acked
            && !s.carried
            && s.changed
            && s.executed_ms + EVERYSEC_WINDOW_MS + paused(s.executed_ms) <= until
    })
}

/// `candidate` as a read at `now_ms` sees it equals `got` (already seen so).
fn same_visible(candidate: &Model, got: &Model, now_ms: i64) -> bool {
    let mut live = candidate.keys.iter().filter(|(_, e)| {
        !e.expire_ms
            .is_some_and(|at| candidate.is_expired(at, now_ms))
    });
    let mut want = got.keys.iter();
    loop {
        match (live.next(), want.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// The dataset as a read at `now_ms` sees it.
fn visible(m: &Model, now_ms: i64) -> Model {
    let mut v = m.clone();
    v.keys
        .retain(|_, e| !e.expire_ms.is_some_and(|at| m.is_expired(at, now_ms)));
    v
}

/// How `got` differs from `want`, key by key.
pub fn differences(want: &Model, got: &Model) -> Vec<String> {
    let name = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
    let mut out = Vec::new();
    for (k, e) in &want.keys {
        match got.keys.get(k) {
            None => out.push(format!("{} missing", name(k))),
            Some(g) if g != e => out.push(format!(
                "{}: want {}, loaded {}",
                name(k),
                e.short(),
                g.short()
            )),
            _ => {}
        }
    }
    for (k, g) in &got.keys {
        if !want.keys.contains_key(k) {
            out.push(format!("{} never written (loaded {})", name(k), g.short()));
        }
    }
    out
}
