//! What the reference model needs to know about connections besides the
//! keyspace: transactions (MULTI/EXEC/DISCARD/WATCH), clients blocked in
//! BLPOP/BRPOP/BLMOVE, and the script cache EVALSHA reads.
//!
//! The keyspace ([`Model`]) is what the durability checker copies after
//! every write, so this state lives beside it, one [`Sessions`] per node,
//! and is forgotten with the node's memory at a crash. It follows Redis
//! 7.0:
//!
//! - a command sent inside MULTI is queued (`+QUEUED`) unless refused
//!   (LOADING, MISCONF), which makes EXEC abort; EXEC refused because the
//!   queue holds writes the node would refuse discards the transaction;
//! - a WATCHed key is *touched* by any command counted as a change to it
//!   (its own client's included; see [`Model::touched`]), and a key that
//!   was live when watched and is gone at EXEC (expired, deleted) aborts it
//!   too; EXEC then replies a null array;
//! - a blocking command with nothing to pop blocks; after each top-level
//!   command (an EXEC and a script count as one) the keys that got a list
//!   are served in the order they got it, each to its clients first
//!   blocked first, from the key that became ready; a BLMOVE served may
//!   make its destination ready in turn. Inside MULTI and scripts nothing
//!   blocks. The node times clients out on its own clock: the world tells
//!   [`Sessions::timed_out`];
//! - scripts run atomically; their calls touch and wake as commands do.

use crate::model::{Cmd, Expect, MEntry, MVal, Model, Script};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Why a node would refuse commands right now, captured before an input
/// (see `crate::engine_state::capture`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Refusing {
    /// Writes (and PING) get MISCONF: a failed save or AOF write.
    pub writes: bool,
    /// Commands without the `loading` flag get LOADING.
    pub loading: bool,
}

/// A client waiting in a blocking command.
#[derive(Debug, Clone)]
pub struct Waiter {
    /// Its request in the history.
    pub idx: usize,
    pub cmd: Cmd,
    /// Node time (µs) at which the node may time it out.
    pub deadline_us: u64,
}

impl Waiter {
    fn keys(&self) -> Vec<&[u8]> {
        match &self.cmd {
            Cmd::BPop { keys, .. } => keys.iter().map(|k| k.as_slice()).collect(),
            Cmd::BlMove { src, .. } => vec![src],
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Default)]
struct ConnState {
    /// Queued commands while in MULTI.
    multi: Option<Vec<Cmd>>,
    /// A command was refused while queueing: EXEC aborts.
    multi_error: bool,
    /// WATCHed keys and whether each was live (present, not expired) then.
    watched: Vec<(Vec<u8>, bool)>,
    /// A watched key was touched.
    dirty: bool,
    blocked: Option<Waiter>,
    /// Its transaction or watches began while the dataset was unknown (a
    /// node still loading runs MULTI and WATCH): its EXEC is not
    /// predicted, and the model is read back from the node after it.
    uncertain: bool,
}

/// The result of one request's execution.
#[derive(Debug, Default)]
pub struct Step {
    /// The reply expected now; `None` if the request blocked.
    pub reply: Option<Expect>,
    /// Blocked requests this one's effects served: (connection, history
    /// index, reply).
    pub served: Vec<(u64, usize, Expect)>,
    /// The step may have changed the dataset (for the durability checker).
    pub wrote: bool,
    /// The model cannot tell what the step did: read it back from the
    /// node.
    pub resync: bool,
    /// The request blocked: its reply comes when it is served or times
    /// out.
    pub blocked: bool,
    /// The dataset before each blocked request it served: the node logs
    /// each served pop as a command of its own after this one, so a crash
    /// may keep the first and not the rest.
    pub before_served: Vec<Model>,
}

/// One node's connections, as the model sees them.
#[derive(Debug, Default)]
pub struct Sessions {
    conns: BTreeMap<u64, ConnState>,
    /// Blocked connections, first blocked first.
    blocked: Vec<u64>,
    /// Watched keys over all connections (0: touches need no bookkeeping).
    watching: usize,
    /// Scripts the node has cached (EVAL, SCRIPT LOAD) since it started.
    scripts: BTreeSet<Script>,
    /// Keys that got a list during the current step, in order.
    ready: VecDeque<Vec<u8>>,
}

const EXECABORT_ERRORS: &str = "EXECABORT Transaction discarded because of previous errors.";
const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";

impl Sessions {
    /// Connections blocked now, first blocked first.
    pub fn blocked(&self) -> &[u64] {
        &self.blocked
    }

    pub fn waiter(&self, conn: u64) -> Option<&Waiter> {
        self.conns.get(&conn)?.blocked.as_ref()
    }

    /// The node closed `conn` (the client went away): its transaction,
    /// watches and wait end with it.
    pub fn closed(&mut self, conn: u64) {
        if let Some(mut c) = self.conns.remove(&conn) {
            self.watching -= c.watched.len();
            c.watched.clear();
            if c.blocked.is_some() {
                self.blocked.retain(|&b| b != conn);
            }
        }
    }

    /// The node timed `conn` out of its blocking command: the waiter.
    pub fn timed_out(&mut self, conn: u64) -> Option<Waiter> {
        let w = self.conns.get_mut(&conn)?.blocked.take()?;
        self.blocked.retain(|&b| b != conn);
        Some(w)
    }

    fn unwatch(&mut self, conn: u64) {
        if let Some(c) = self.conns.get_mut(&conn) {
            self.watching -= c.watched.len();
            c.watched.clear();
            c.dirty = false;
        }
    }

    fn touch(&mut self, key: &[u8]) {
        for c in self.conns.values_mut() {
            if c.watched.iter().any(|(k, _)| k == key) {
                c.dirty = true;
            }
        }
    }

    fn waited_on(&self, key: &[u8]) -> bool {
        self.blocked.iter().any(|c| {
            self.conns
                .get(c)
                .and_then(|s| s.blocked.as_ref())
                .is_some_and(|w| w.keys().contains(&key))
        })
    }

    /// Runs a plain command on the keyspace, noting what it touched (for
    /// WATCH) and which waited-on keys it gave a list (for blocked clients).
    fn apply(&mut self, model: &mut Model, cmd: &Cmd, now_ms: i64) -> Expect {
        if self.watching == 0 && self.blocked.is_empty() {
            return model.apply(cmd, now_ms);
        }
        let keys = cmd.write_keys();
        let before: Vec<Option<MEntry>> =
            keys.iter().map(|k| model.get(k, now_ms).cloned()).collect();
        let reply = model.apply(cmd, now_ms);
        if self.watching > 0 {
            for k in model.touched(cmd, &before, &reply, now_ms) {
                self.touch(k);
            }
        }
        if !self.blocked.is_empty() {
            for k in keys {
                if model.list_len(k, now_ms).is_some_and(|n| n > 0)
                    && self.waited_on(k)
                    && !self.ready.iter().any(|r| r == k)
                {
                    self.ready.push_back(k.to_vec());
                }
            }
        }
        reply
    }

    /// Runs request `idx` (`cmd`) of connection `conn` at node time
    /// `now_us`, on `model` (the node's keyspace). Without a model (the
    /// dataset is not known yet) only the connection's state is followed.
    pub fn step(
        &mut self,
        model: Option<&mut Model>,
        conn: u64,
        idx: usize,
        cmd: &Cmd,
        now_us: u64,
        refusing: Refusing,
    ) -> Step {
        let mut scratch = Model::default();
        let known = model.is_some();
        let state = self.conns.entry(conn).or_default();
        let queued_writes = state
            .multi
            .as_ref()
            .is_some_and(|q| q.iter().any(|c| c.is_write()));
        if known
            && state.uncertain
            && matches!(cmd, Cmd::Exec)
            && crate::engine_state::refusal(refusing, cmd, queued_writes).is_none()
        {
            // Whether it ran is not known: nothing is applied; the world
            // reads the dataset back, and any other watcher's EXEC is
            // uncertain now too (this one may have touched its keys).
            state.multi = None;
            state.multi_error = false;
            self.unwatch(conn);
            for c in self.conns.values_mut() {
                if !c.watched.is_empty() {
                    c.uncertain = true;
                }
            }
            return Step {
                resync: true,
                wrote: true,
                ..Step::default()
            };
        }
        let model = model.unwrap_or(&mut scratch);
        let mut step = self.step_on(model, conn, idx, cmd, now_us, refusing, known);
        let state = self.conns.entry(conn).or_default();
        if !known {
            state.uncertain = true;
            if !matches!(step.reply, Some(Expect::Refused(_))) {
                step.reply = None;
            }
        }
        if state.multi.is_none() && state.watched.is_empty() {
            state.uncertain = false;
        }
        step
    }

    #[allow(clippy::too_many_arguments)]
    fn step_on(
        &mut self,
        model: &mut Model,
        conn: u64,
        idx: usize,
        cmd: &Cmd,
        now_us: u64,
        refusing: Refusing,
        known: bool,
    ) -> Step {
        let now_ms = (now_us / 1000) as i64;
        let state = self.conns.entry(conn).or_default();
        let in_multi = state.multi.is_some();
        let exec_writes = matches!(cmd, Cmd::Exec)
            && state
                .multi
                .as_ref()
                .is_some_and(|q| q.iter().any(|c| c.is_write()));
        if let Some(code) = crate::engine_state::refusal(refusing, cmd, exec_writes) {
            let reply = if matches!(cmd, Cmd::Exec) && in_multi {
                state.multi = None;
                state.multi_error = false;
                self.unwatch(conn);
                Expect::ErrorPrefix(format!(
                    "EXECABORT Transaction discarded because of: {code}"
                ))
            } else {
                if in_multi {
                    state.multi_error = true;
                }
                Expect::Refused(code)
            };
            return Step {
                reply: Some(reply),
                ..Step::default()
            };
        }
        if in_multi && !matches!(cmd, Cmd::Exec | Cmd::Discard | Cmd::Multi | Cmd::Watch(_)) {
            if let Some(q) = &mut state.multi {
                q.push(cmd.clone());
            }
            return Step {
                reply: Some(Expect::Status("QUEUED")),
                ..Step::default()
            };
        }
        let mut wrote = cmd.is_write();
        let reply = match cmd {
            Cmd::Multi if in_multi => Expect::Error("ERR MULTI calls can not be nested".into()),
            Cmd::Multi => {
                state.multi = Some(Vec::new());
                state.multi_error = false;
                Expect::Ok
            }
            Cmd::Discard if !in_multi => Expect::Error("ERR DISCARD without MULTI".into()),
            Cmd::Discard => {
                state.multi = None;
                state.multi_error = false;
                self.unwatch(conn);
                Expect::Ok
            }
            Cmd::Watch(_) if in_multi => {
                Expect::Error("ERR WATCH inside MULTI is not allowed".into())
            }
            Cmd::Watch(keys) => {
                let mut added = 0;
                for k in keys {
                    if state.watched.iter().any(|(w, _)| w == k) {
                        continue;
                    }
                    let live = model.get(k, now_ms).is_some();
                    state.watched.push((k.clone(), live));
                    added += 1;
                }
                self.watching += added;
                Expect::Ok
            }
            Cmd::Unwatch => {
                self.unwatch(conn);
                Expect::Ok
            }
            Cmd::Exec if !in_multi => Expect::Error("ERR EXEC without MULTI".into()),
            Cmd::Exec => {
                let queue = state.multi.take().unwrap_or_default();
                let had_error = std::mem::take(&mut state.multi_error);
                let aborted = state.dirty
                    || state
                        .watched
                        .iter()
                        .any(|(k, live)| *live && model.get(k, now_ms).is_none());
                self.unwatch(conn);
                wrote = false;
                if had_error {
                    Expect::Error(EXECABORT_ERRORS.into())
                } else if aborted {
                    Expect::NilArray
                } else {
                    let mut replies = Vec::with_capacity(queue.len());
                    for c in &queue {
                        wrote |= c.is_write();
                        // UNWATCH queued: the watches are already gone.
                        replies.push(match c {
                            Cmd::Unwatch => Expect::Ok,
                            _ => self.apply(model, c, now_ms),
                        });
                    }
                    Expect::Tuple(replies)
                }
            }
            Cmd::ScriptLoad(script) => {
                self.scripts.insert(*script);
                Expect::Bulk(Some(script.sha().as_bytes().to_vec()))
            }
            Cmd::Eval {
                script,
                by_sha,
                calls,
                keys,
            } => {
                if *by_sha && !self.scripts.contains(script) {
                    wrote = false;
                    Expect::Error(NOSCRIPT.into())
                } else {
                    self.scripts.insert(*script);
                    wrote = matches!(script, Script::Copy) || calls.iter().any(|c| c.is_write());
                    self.run_script(model, *script, calls, keys, now_ms, refusing)
                }
            }
            Cmd::BPop { timeout_ms, .. } | Cmd::BlMove { timeout_ms, .. } => {
                // Nothing to pop (every key missing, or BLMOVE's source):
                // it blocks. Otherwise it runs as a plain command.
                let blocks = match cmd {
                    Cmd::BPop { keys, .. } => keys.iter().all(|k| model.get(k, now_ms).is_none()),
                    Cmd::BlMove { src, .. } => model.get(src, now_ms).is_none(),
                    _ => false,
                };
                if blocks && known {
                    state.blocked = Some(Waiter {
                        idx,
                        cmd: cmd.clone(),
                        // The node truncates `timeout * 1000` in floating
                        // point to whole ms (Redis's long long cast): 1.001
                        // may become 1000 ms. Allow that millisecond.
                        deadline_us: (now_us + timeout_ms * 1000).saturating_sub(1000),
                    });
                    self.blocked.push(conn);
                    return Step {
                        blocked: true,
                        ..Step::default()
                    };
                }
                self.apply(model, cmd, now_ms)
            }
            _ => self.apply(model, cmd, now_ms),
        };
        let mut before_served = Vec::new();
        let served = self.serve_ready(model, now_ms, &mut before_served);
        wrote |= !served.is_empty();
        Step {
            reply: Some(reply),
            served,
            wrote,
            resync: false,
            blocked: false,
            before_served,
        }
    }

    fn run_script(
        &mut self,
        model: &mut Model,
        script: Script,
        calls: &[Cmd],
        keys: &[Vec<u8>],
        now_ms: i64,
        refusing: Refusing,
    ) -> Expect {
        // A write a script calls while the node refuses writes fails with
        // MISCONF (scripts without flags are not refused up front).
        let call = |s: &mut Sessions, model: &mut Model, c: &Cmd| {
            if refusing.writes && c.is_write() {
                Expect::ErrorPrefix("MISCONF".into())
            } else {
                s.apply(model, c, now_ms)
            }
        };
        match script {
            Script::PCalls => Expect::Tuple(calls.iter().map(|c| call(self, model, c)).collect()),
            Script::Calls => {
                let mut out = Vec::with_capacity(calls.len());
                for c in calls {
                    match call(self, model, c) {
                        // redis.call raises: the script ends with the
                        // command's error (plus where, in the script).
                        Expect::Error(m) | Expect::ErrorPrefix(m) => return Expect::ErrorPrefix(m),
                        e => out.push(e),
                    }
                }
                Expect::Tuple(out)
            }
            Script::Copy => {
                let (Some(src), Some(dst)) = (keys.first(), keys.get(1)) else {
                    return Expect::Any;
                };
                match call(self, model, &Cmd::Get(src.clone())) {
                    Expect::Bulk(Some(v)) => {
                        let set = Cmd::Set {
                            key: dst.clone(),
                            value: v,
                            ttl: None,
                            cond: None,
                            keepttl: false,
                            get: false,
                        };
                        match call(self, model, &set) {
                            Expect::Ok => Expect::Int(1),
                            Expect::Error(m) | Expect::ErrorPrefix(m) => Expect::ErrorPrefix(m),
                            _ => Expect::Any,
                        }
                    }
                    _ => Expect::Int(0),
                }
            }
        }
    }

    /// Serves blocked clients from the keys that got a list during this
    /// step, in that order, each key to its clients first blocked first,
    /// while it holds elements.
    fn serve_ready(
        &mut self,
        model: &mut Model,
        now_ms: i64,
        before: &mut Vec<Model>,
    ) -> Vec<(u64, usize, Expect)> {
        let mut served = Vec::new();
        while let Some(key) = self.ready.pop_front() {
            let waiting: Vec<u64> = self
                .blocked
                .iter()
                .copied()
                .filter(|c| {
                    self.conns
                        .get(c)
                        .and_then(|s| s.blocked.as_ref())
                        .is_some_and(|w| w.keys().contains(&key.as_slice()))
                })
                .collect();
            for conn in waiting {
                if !matches!(
                    model.get(&key, now_ms),
                    Some(MEntry {
                        value: MVal::List(l),
                        ..
                    }) if !l.is_empty()
                ) {
                    break;
                }
                let Some(w) = self.timed_out(conn) else {
                    continue;
                };
                // As the command popping from `key` (touches, wakes).
                let as_cmd = match &w.cmd {
                    Cmd::BPop { left, .. } => Cmd::BPop {
                        keys: vec![key.clone()],
                        left: *left,
                        timeout_ms: 0,
                    },
                    other => other.clone(),
                };
                before.push(model.clone());
                let reply = self.apply(model, &as_cmd, now_ms);
                served.push((conn, w.idx, reply));
            }
        }
        served
    }
}
