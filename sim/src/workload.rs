//! Random operations over a small key space, mixing every modelled type so
//! that keys change type, collide, expire and come back.

use crate::model::{Cmd, Cond, ExpireFlag, ExpireUnit, IncrForm, Script, Ttl};
use crate::rng::SimRng;

/// What a run's clients generate.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Number of distinct keys (small: collisions are the point).
    pub keys: u64,
    /// Distinct members/fields per collection.
    pub members: u64,
    /// Weight of writes among operations, in percent.
    pub write_pct: u64,
    /// SAVE commands per thousand operations (snapshot durability points).
    pub save_pm: u64,
    /// BGSAVE / BGREWRITEAOF per thousand operations.
    pub background_pm: u64,
    /// Batches that are transactions (MULTI/EXEC, with or without WATCH),
    /// per thousand.
    pub tx_pm: u64,
    /// Batches that are a Lua script (EVAL, EVALSHA, SCRIPT LOAD), per
    /// thousand.
    pub script_pm: u64,
    /// Batches that are a blocking command (BLPOP, BRPOP, BLMOVE), per
    /// thousand.
    pub block_pm: u64,
}

/// `tag` followed by `n` in decimal (`k3`, `v917`), without `format!`:
/// every generated command builds a few of these.
fn tagged(tag: u8, n: u64) -> Vec<u8> {
    let mut b = itoa::Buffer::new();
    let digits = b.format(n).as_bytes();
    let mut v = Vec::with_capacity(1 + digits.len());
    v.push(tag);
    v.extend_from_slice(digits);
    v
}

impl Workload {
    pub fn random(rng: &mut SimRng) -> Workload {
        Workload {
            keys: rng.range(1, 12),
            members: rng.range(2, 8),
            write_pct: rng.range(30, 90),
            save_pm: 0,
            background_pm: 0,
            tx_pm: *rng.pick(&[0, 30, 100, 250]),
            script_pm: *rng.pick(&[0, 30, 100, 200]),
            block_pm: *rng.pick(&[0, 30, 100, 200]),
        }
    }

    /// The next batches a client sends, one per round trip: usually one
    /// batch of `pipeline` plain commands; sometimes a transaction (a WATCH
    /// and its reads first, so other clients can touch the keys before
    /// the EXEC), a script or a blocking command, which is sent alone
    /// (the node runs nothing pipelined behind it until it is served).
    pub fn next_plan(&self, rng: &mut SimRng, now_ms: i64, pipeline: u64) -> Vec<Vec<Cmd>> {
        let roll = rng.below(1000);
        if roll < self.tx_pm {
            return self.transaction(rng, now_ms);
        }
        if roll < self.tx_pm + self.script_pm {
            return self.script(rng, now_ms);
        }
        if roll < self.tx_pm + self.script_pm + self.block_pm {
            return vec![vec![self.blocking(rng)]];
        }
        let mut cmds: Vec<Cmd> = Vec::new();
        for _ in 0..pipeline {
            let cmd = self.next_cmd(rng, now_ms);
            let last = matches!(cmd, Cmd::Save);
            cmds.push(cmd);
            // The node may hold a SAVE's client until the file is
            // durable: nothing is pipelined behind it, so every request
            // runs when its last byte arrives.
            if last {
                break;
            }
        }
        vec![cmds]
    }

    /// A command for a transaction or a script: a plain read or write, or
    /// (in MULTI only) a blocking one, which does not block there.
    fn inner(&self, rng: &mut SimRng, now_ms: i64, blocking: bool) -> Cmd {
        if blocking && rng.chance(0.1) {
            return self.blocking(rng);
        }
        if rng.below(100) < self.write_pct {
            self.write(rng, now_ms)
        } else {
            self.read(rng)
        }
    }

    fn transaction(&self, rng: &mut SimRng, now_ms: i64) -> Vec<Vec<Cmd>> {
        let body = |rng: &mut SimRng| -> Vec<Cmd> {
            (0..rng.range(1, 4))
                .map(|_| self.inner(rng, now_ms, true))
                .collect()
        };
        let mut exec = vec![Cmd::Multi];
        exec.extend(body(rng));
        match rng.below(12) {
            // WATCH, read, then the transaction: other clients (or this
            // one) may touch the keys in between.
            0..=4 => {
                let keys = self.keys(rng, 2);
                let mut first = vec![Cmd::Watch(keys.clone())];
                for k in &keys {
                    if rng.chance(0.5) {
                        first.push(Cmd::Get(k.clone()));
                    }
                }
                let mut plan = vec![first];
                if rng.chance(0.15) {
                    // It writes a key it watches itself: EXEC fails too.
                    plan.push(vec![self.write(rng, now_ms)]);
                }
                if rng.chance(0.1) {
                    exec.insert(0, Cmd::Unwatch);
                }
                exec.push(Cmd::Exec);
                plan.push(exec);
                plan
            }
            // Queued over several round trips.
            5 => {
                let mut rest = body(rng);
                rest.push(Cmd::Exec);
                vec![exec, rest]
            }
            6 => {
                exec.push(Cmd::Discard);
                vec![exec]
            }
            // Misuse: the errors Redis gives (a nested MULTI and a WATCH
            // inside MULTI are refused without aborting; EXEC or DISCARD
            // alone).
            7 => {
                let mut v = vec![Cmd::Multi];
                v.push(if rng.chance(0.5) {
                    Cmd::Multi
                } else {
                    Cmd::Watch(vec![self.key(rng)])
                });
                v.extend(body(rng));
                v.push(Cmd::Exec);
                vec![v]
            }
            8 => vec![vec![if rng.chance(0.5) {
                Cmd::Exec
            } else {
                Cmd::Discard
            }]],
            _ => {
                exec.push(Cmd::Exec);
                vec![exec]
            }
        }
    }

    fn script(&self, rng: &mut SimRng, now_ms: i64) -> Vec<Vec<Cmd>> {
        let script = *rng.pick(&Script::ALL);
        let calls: Vec<Cmd> = match script {
            Script::Copy => Vec::new(),
            _ => (0..rng.range(1, 4))
                .map(|_| self.inner(rng, now_ms, false))
                .collect(),
        };
        let keys = match script {
            Script::Copy => vec![self.key(rng), self.key(rng)],
            _ => Vec::new(),
        };
        let eval = |by_sha: bool| Cmd::Eval {
            script,
            by_sha,
            calls: calls.clone(),
            keys: keys.clone(),
        };
        match rng.below(10) {
            0 => vec![vec![Cmd::ScriptLoad(script), eval(true)]],
            // A client library's way: EVALSHA, and EVAL if the node does not
            // have the script (a restarted node forgot it).
            1..=4 => vec![vec![eval(true)], vec![eval(false)]],
            _ => vec![vec![eval(false)]],
        }
    }

    /// BLPOP/BRPOP on one or two keys, or BLMOVE, with a timeout short
    /// enough to end within the liveness bound.
    fn blocking(&self, rng: &mut SimRng) -> Cmd {
        let timeout_ms = rng.range(10, 1_500);
        if rng.chance(0.7) {
            Cmd::BPop {
                keys: self.keys(rng, 2),
                left: rng.chance(0.5),
                timeout_ms,
            }
        } else {
            Cmd::BlMove {
                src: self.key(rng),
                dst: self.key(rng),
                from_left: rng.chance(0.5),
                to_left: rng.chance(0.5),
                timeout_ms,
            }
        }
    }

    fn key(&self, rng: &mut SimRng) -> Vec<u8> {
        tagged(b'k', rng.below(self.keys))
    }

    fn keys(&self, rng: &mut SimRng, max: u64) -> Vec<Vec<u8>> {
        (0..rng.range(1, max)).map(|_| self.key(rng)).collect()
    }

    fn member(&self, rng: &mut SimRng) -> Vec<u8> {
        tagged(b'm', rng.below(self.members))
    }

    fn members(&self, rng: &mut SimRng) -> Vec<Vec<u8>> {
        (0..rng.range(1, 3)).map(|_| self.member(rng)).collect()
    }

    /// A string value: often an integer (so INCR works), sometimes not.
    fn value(&self, rng: &mut SimRng) -> Vec<u8> {
        match rng.below(10) {
            0..=4 => rng.range_i64(-20, 100).to_string().into_bytes(),
            5 => b"".to_vec(),
            6 => b"007".to_vec(),
            7 => vec![b'x'; rng.range(1, 60) as usize],
            _ => tagged(b'v', rng.below(1000)),
        }
    }

    fn score(&self, rng: &mut SimRng) -> f64 {
        // Integers and halves: exact in binary and in text.
        rng.range_i64(-10, 10) as f64 / if rng.chance(0.3) { 2.0 } else { 1.0 }
    }

    /// A relative TTL in ms: mostly short, so expiry happens during runs.
    fn ttl_ms(&self, rng: &mut SimRng) -> i64 {
        match rng.below(4) {
            0 => rng.range_i64(1, 50),
            1 => rng.range_i64(50, 2_000),
            2 => rng.range_i64(2_000, 20_000),
            _ => rng.range_i64(20_000, 600_000),
        }
    }

    /// The next operation. `now_ms` lets absolute expiry times land near the
    /// present.
    pub fn next_cmd(&self, rng: &mut SimRng, now_ms: i64) -> Cmd {
        if self.save_pm > 0 && rng.below(1000) < self.save_pm {
            return Cmd::Save;
        }
        if self.background_pm > 0 && rng.below(1000) < self.background_pm {
            return if rng.chance(0.5) {
                Cmd::BgSave
            } else {
                Cmd::BgRewriteAof
            };
        }
        if rng.below(100) < self.write_pct {
            self.write(rng, now_ms)
        } else {
            self.read(rng)
        }
    }

    fn read(&self, rng: &mut SimRng) -> Cmd {
        let k = self.key(rng);
        match rng.below(22) {
            0 => Cmd::Get(k),
            1 => Cmd::Strlen(k),
            2 => Cmd::MGet(self.keys(rng, 4)),
            3 => Cmd::Exists(self.keys(rng, 3)),
            4 => Cmd::Type(k),
            5 => Cmd::Ttl(k),
            6 => Cmd::PTtl(k),
            7 => Cmd::LLen(k),
            8 => Cmd::LRange(k, rng.range_i64(-5, 3), rng.range_i64(-3, 8)),
            9 => Cmd::LIndex(k, rng.range_i64(-4, 4)),
            10 => Cmd::HGet(k, self.member(rng)),
            11 => Cmd::HLen(k),
            12 => Cmd::HGetAll(k),
            13 => Cmd::HExists(k, self.member(rng)),
            14 => Cmd::SIsMember(k, self.member(rng)),
            15 => Cmd::SCard(k),
            16 => Cmd::SMembers(k),
            17 => Cmd::ZScore(k, self.member(rng)),
            18 => Cmd::ZCard(k),
            19 => Cmd::ZRange(
                k,
                rng.range_i64(-4, 2),
                rng.range_i64(-2, 6),
                rng.chance(0.5),
            ),
            20 => Cmd::ZRank(k, self.member(rng)),
            _ => Cmd::Ping,
        }
    }

    fn write(&self, rng: &mut SimRng, now_ms: i64) -> Cmd {
        let k = self.key(rng);
        match rng.below(28) {
            0..=2 => {
                let keepttl = rng.chance(0.15);
                Cmd::Set {
                    key: k,
                    value: self.value(rng),
                    ttl: match rng.below(6) {
                        _ if keepttl => None,
                        0 => Some(Ttl::Ex(rng.range_i64(1, 30))),
                        1 => Some(Ttl::Px(self.ttl_ms(rng))),
                        _ => None,
                    },
                    cond: match rng.below(6) {
                        0 => Some(Cond::Nx),
                        1 => Some(Cond::Xx),
                        _ => None,
                    },
                    keepttl,
                    get: rng.chance(0.2),
                }
            }
            3 => Cmd::SetNx(k, self.value(rng)),
            4 => Cmd::Append(k, self.value(rng)),
            5 | 6 => {
                let (form, by) = match rng.below(4) {
                    0 => (IncrForm::Incr, 1),
                    1 => (IncrForm::Decr, -1),
                    2 => (IncrForm::IncrBy, rng.range_i64(-100, 100)),
                    _ => (IncrForm::DecrBy, -rng.range_i64(-100, 100)),
                };
                Cmd::IncrBy(k, by, form)
            }
            7 => Cmd::MSet(
                (0..rng.range(1, 3))
                    .map(|_| (self.key(rng), self.value(rng)))
                    .collect(),
            ),
            8 => Cmd::GetDel(k),
            9 => Cmd::Del(self.keys(rng, 3)),
            10 | 11 => {
                let unit = *rng.pick(&[
                    ExpireUnit::Seconds,
                    ExpireUnit::Millis,
                    ExpireUnit::AtSeconds,
                    ExpireUnit::AtMillis,
                ]);
                let rel_ms = if rng.chance(0.1) {
                    -rng.range_i64(0, 5_000)
                } else {
                    self.ttl_ms(rng)
                };
                let amount = match unit {
                    ExpireUnit::Seconds => rel_ms / 1000,
                    ExpireUnit::Millis => rel_ms,
                    ExpireUnit::AtSeconds => (now_ms + rel_ms) / 1000,
                    ExpireUnit::AtMillis => now_ms + rel_ms,
                };
                Cmd::Expire {
                    key: k,
                    amount,
                    unit,
                    flag: match rng.below(8) {
                        0 => Some(ExpireFlag::Nx),
                        1 => Some(ExpireFlag::Xx),
                        2 => Some(ExpireFlag::Gt),
                        3 => Some(ExpireFlag::Lt),
                        _ => None,
                    },
                }
            }
            12 => Cmd::Persist(k),
            13 => Cmd::Rename(k, self.key(rng)),
            14 | 15 => Cmd::Push {
                key: k,
                left: rng.chance(0.5),
                items: (0..rng.range(1, 3)).map(|_| self.value(rng)).collect(),
            },
            16 => Cmd::Pop {
                key: k,
                left: rng.chance(0.5),
                count: if rng.chance(0.3) {
                    Some(rng.range_i64(1, 3))
                } else {
                    None
                },
            },
            17 => Cmd::LSet(k, rng.range_i64(-3, 3), self.value(rng)),
            18 => Cmd::HSet(
                k,
                (0..rng.range(1, 3))
                    .map(|_| (self.member(rng), self.value(rng)))
                    .collect(),
            ),
            19 => Cmd::HDel(k, self.members(rng)),
            20 => Cmd::HIncrBy(k, self.member(rng), rng.range_i64(-10, 10)),
            21 => Cmd::SAdd(k, self.members(rng)),
            22 => Cmd::SRem(k, self.members(rng)),
            23 | 24 => Cmd::ZAdd(
                k,
                (0..rng.range(1, 3))
                    .map(|_| (self.score(rng), self.member(rng)))
                    .collect(),
            ),
            25 => Cmd::ZRem(k, self.members(rng)),
            26 => Cmd::ZIncrBy(k, self.score(rng), self.member(rng)),
            _ => Cmd::LMove {
                src: k,
                dst: self.key(rng),
                from_left: rng.chance(0.5),
                to_left: rng.chance(0.5),
            },
        }
    }
}
