//! A reference model of Redis semantics for the commands the workload
//! generates: a `BTreeMap` keyspace with absolute expiry times, stepped in
//! the order the node executes commands, predicting each reply exactly.
//!
//! It is deliberately naive (no encodings, no hash tables): its only job is
//! to be obviously right. Expiry follows Redis 7.0: a key is logically gone
//! once `now_ms > expire_ms` (`keyIsExpired`), and a relative TTL that lands
//! at or before now deletes the key at once (`checkAlreadyExpired`).

use crate::resp::Value;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";

/// A value in the model.
#[derive(Debug, Clone, PartialEq)]
pub enum MVal {
    Str(Vec<u8>),
    List(VecDeque<Vec<u8>>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
    /// member -> score. Scores are finite.
    ZSet(BTreeMap<Vec<u8>, f64>),
}

impl MVal {
    fn type_name(&self) -> &'static str {
        match self {
            MVal::Str(_) => "string",
            MVal::List(_) => "list",
            MVal::Hash(_) => "hash",
            MVal::Set(_) => "set",
            MVal::ZSet(_) => "zset",
        }
    }

    fn is_empty_collection(&self) -> bool {
        match self {
            MVal::Str(_) => false,
            MVal::List(l) => l.is_empty(),
            MVal::Hash(h) => h.is_empty(),
            MVal::Set(s) => s.is_empty(),
            MVal::ZSet(z) => z.is_empty(),
        }
    }
}

/// A key's value and absolute expiry (unix ms).
#[derive(Debug, Clone, PartialEq)]
pub struct MEntry {
    pub value: MVal,
    pub expire_ms: Option<i64>,
}

impl MEntry {
    /// Readable form for failure messages: `hash{m0=1 m3=v2} px@<ms>`.
    pub fn short(&self) -> String {
        let t = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let body = match &self.value {
            MVal::Str(s) => format!("\"{}\"", t(s)),
            MVal::List(l) => format!(
                "list[{}]",
                l.iter().map(|v| t(v)).collect::<Vec<_>>().join(" ")
            ),
            MVal::Hash(h) => format!(
                "hash{{{}}}",
                h.iter()
                    .map(|(f, v)| format!("{}={}", t(f), t(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            MVal::Set(s) => format!(
                "set{{{}}}",
                s.iter().map(|v| t(v)).collect::<Vec<_>>().join(" ")
            ),
            MVal::ZSet(z) => format!(
                "zset{{{}}}",
                z.iter()
                    .map(|(m, s)| format!("{}:{s}", t(m)))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        };
        match self.expire_ms {
            Some(at) => format!("{body} pxat {at}"),
            None => body,
        }
    }
}

/// The reply a command must produce.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// `+OK`
    Ok,
    /// A status reply other than OK (TYPE).
    Status(&'static str),
    Int(i64),
    /// A bulk string, or nil.
    Bulk(Option<Vec<u8>>),
    /// An ordered array of bulk strings or nils (MGET, LRANGE).
    Array(Vec<Option<Vec<u8>>>),
    /// Nil array (RESP2 `*-1`, RESP3 `_`): LPOP key count on a missing key.
    NilArray,
    /// Members in any order (SMEMBERS): RESP2 array, RESP3 set.
    Unordered(Vec<Vec<u8>>),
    /// Field/value pairs in any order (HGETALL): RESP2 flat array, RESP3 map.
    Pairs(Vec<(Vec<u8>, Vec<u8>)>),
    /// A score or nil: RESP2 bulk string, RESP3 double.
    Score(Option<f64>),
    /// ZRANGE WITHSCORES: RESP2 flat [m, s, ...], RESP3 [[m, s], ...].
    WithScores(Vec<(Vec<u8>, f64)>),
    /// An exact error message.
    Error(String),
    /// Anything but a protocol violation (HELLO's server map).
    Any,
    /// SAVE: `+OK`, or an error if the disk failed it.
    Saved,
    /// BGSAVE, BGREWRITEAOF: a `Background ...` status, or an `ERR` (one
    /// is already running).
    Background,
    /// Refused before running: an error with this code (LOADING,
    /// MISCONF).
    Refused(&'static str),
    /// An error starting with this text (a script error carries the
    /// script's sha and line after the command's own message).
    ErrorPrefix(String),
    /// An array of replies, each checked by its own expectation (EXEC, a
    /// script returning the replies of its calls).
    Tuple(Vec<Expect>),
}

/// A command the workload issues. Each variant is modelled exactly.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    Hello3,
    Ping,
    /// SAVE: a durability point for the snapshot checker.
    Save,
    /// BGSAVE and BGREWRITEAOF: snapshots and AOF rewrites racing with
    /// writes and crashes (the dataset does not change).
    BgSave,
    BgRewriteAof,
    // strings
    Get(Vec<u8>),
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
        /// EX seconds / PX ms (positive).
        ttl: Option<Ttl>,
        cond: Option<Cond>,
        keepttl: bool,
        get: bool,
    },
    SetNx(Vec<u8>, Vec<u8>),
    Append(Vec<u8>, Vec<u8>),
    Strlen(Vec<u8>),
    IncrBy(Vec<u8>, i64, IncrForm),
    MGet(Vec<Vec<u8>>),
    MSet(Vec<(Vec<u8>, Vec<u8>)>),
    GetDel(Vec<u8>),
    // keys
    Del(Vec<Vec<u8>>),
    Exists(Vec<Vec<u8>>),
    Type(Vec<u8>),
    Expire {
        key: Vec<u8>,
        amount: i64,
        unit: ExpireUnit,
        flag: Option<ExpireFlag>,
    },
    Ttl(Vec<u8>),
    PTtl(Vec<u8>),
    Persist(Vec<u8>),
    Rename(Vec<u8>, Vec<u8>),
    // lists
    Push {
        key: Vec<u8>,
        left: bool,
        items: Vec<Vec<u8>>,
    },
    Pop {
        key: Vec<u8>,
        left: bool,
        count: Option<i64>,
    },
    LLen(Vec<u8>),
    LRange(Vec<u8>, i64, i64),
    LIndex(Vec<u8>, i64),
    LSet(Vec<u8>, i64, Vec<u8>),
    // hashes
    HSet(Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>),
    HGet(Vec<u8>, Vec<u8>),
    HDel(Vec<u8>, Vec<Vec<u8>>),
    HLen(Vec<u8>),
    HGetAll(Vec<u8>),
    HExists(Vec<u8>, Vec<u8>),
    HIncrBy(Vec<u8>, Vec<u8>, i64),
    // sets
    SAdd(Vec<u8>, Vec<Vec<u8>>),
    SRem(Vec<u8>, Vec<Vec<u8>>),
    SIsMember(Vec<u8>, Vec<u8>),
    SCard(Vec<u8>),
    SMembers(Vec<u8>),
    // sorted sets
    ZAdd(Vec<u8>, Vec<(f64, Vec<u8>)>),
    ZRem(Vec<u8>, Vec<Vec<u8>>),
    ZScore(Vec<u8>, Vec<u8>),
    ZCard(Vec<u8>),
    ZIncrBy(Vec<u8>, f64, Vec<u8>),
    ZRange(Vec<u8>, i64, i64, bool),
    ZRank(Vec<u8>, Vec<u8>),
    // lists, moving and blocking
    LMove {
        src: Vec<u8>,
        dst: Vec<u8>,
        from_left: bool,
        to_left: bool,
    },
    /// BLPOP / BRPOP keys... timeout (never 0: a client would wait forever).
    BPop {
        keys: Vec<Vec<u8>>,
        left: bool,
        timeout_ms: u64,
    },
    BlMove {
        src: Vec<u8>,
        dst: Vec<u8>,
        from_left: bool,
        to_left: bool,
        timeout_ms: u64,
    },
    // transactions (modelled per connection in `crate::session`)
    Multi,
    Exec,
    Discard,
    Watch(Vec<Vec<u8>>),
    Unwatch,
    // scripts
    /// EVAL (or EVALSHA when `by_sha`) of `script`; `calls` are the
    /// commands a batch script runs, `keys` the KEYS of the others.
    Eval {
        script: Script,
        by_sha: bool,
        calls: Vec<Cmd>,
        keys: Vec<Vec<u8>>,
    },
    ScriptLoad(Script),
}

/// The Lua scripts the workload runs. Each is small enough for the model to
/// predict exactly what it does and returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Script {
    /// Runs the commands encoded in ARGV (`n arg1 .. argn`, repeated) with
    /// `redis.pcall` and returns their replies as an array (errors as error
    /// elements).
    PCalls,
    /// The same with `redis.call`: the first error ends the script with it,
    /// the writes before it stay (scripts are atomic, not transactional).
    Calls,
    /// A read then a write that depends on it: copies the string at KEYS[1]
    /// to KEYS[2] (returns 1), or returns 0 if it is not a string.
    Copy,
}

impl Script {
    pub const ALL: [Script; 3] = [Script::PCalls, Script::Calls, Script::Copy];

    pub fn text(self) -> &'static str {
        match self {
            Script::PCalls => SCRIPT_PCALLS,
            Script::Calls => SCRIPT_CALLS,
            Script::Copy => SCRIPT_COPY,
        }
    }

    /// The SHA1 EVALSHA names it by (computed once per script).
    pub fn sha(self) -> &'static str {
        use std::sync::OnceLock;
        static SHAS: [OnceLock<String>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let i = match self {
            Script::PCalls => 0,
            Script::Calls => 1,
            Script::Copy => 2,
        };
        SHAS[i].get_or_init(|| sha1_smol::Sha1::from(self.text()).digest().to_string())
    }
}

const SCRIPT_PCALLS: &str = "local r = {}\nlocal i = 1\nwhile i <= #ARGV do\n  local n = tonumber(ARGV[i])\n  local a = {}\n  for j = 1, n do a[j] = ARGV[i + j] end\n  r[#r + 1] = redis.pcall(unpack(a))\n  i = i + n + 1\nend\nreturn r\n";
const SCRIPT_CALLS: &str = "local r = {}\nlocal i = 1\nwhile i <= #ARGV do\n  local n = tonumber(ARGV[i])\n  local a = {}\n  for j = 1, n do a[j] = ARGV[i + j] end\n  r[#r + 1] = redis.call(unpack(a))\n  i = i + n + 1\nend\nreturn r\n";
const SCRIPT_COPY: &str = "local v = redis.pcall('GET', KEYS[1])\nif type(v) ~= 'string' then return 0 end\nredis.call('SET', KEYS[2], v)\nreturn 1\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    Ex(i64),
    Px(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    Nx,
    Xx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrForm {
    Incr,
    Decr,
    IncrBy,
    DecrBy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireUnit {
    /// EXPIRE: relative seconds.
    Seconds,
    /// PEXPIRE: relative ms.
    Millis,
    /// EXPIREAT: absolute unix seconds.
    AtSeconds,
    /// PEXPIREAT: absolute unix ms.
    AtMillis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireFlag {
    Nx,
    Xx,
    Gt,
    Lt,
}

fn side(left: bool) -> &'static str {
    if left {
        "LEFT"
    } else {
        "RIGHT"
    }
}

/// A blocking timeout in seconds with millisecond fractions ("0.25").
pub fn fmt_timeout(ms: u64) -> Vec<u8> {
    format!("{}.{:03}", ms / 1000, ms % 1000).into_bytes()
}

/// Formats a score as Redis's `%.17g` would for the values we generate
/// (integers and halves), which is also how we send them.
pub fn fmt_score(s: f64) -> Vec<u8> {
    if s == s.trunc() && s.abs() < 1e15 {
        format!("{}", s as i64).into_bytes()
    } else {
        format!("{s}").into_bytes()
    }
}

/// Receives a request's arguments in order ([`Cmd::write_args`]).
pub trait ArgSink {
    fn arg(&mut self, a: &[u8]);

    fn num(&mut self, n: i64) {
        let mut b = itoa::Buffer::new();
        self.arg(b.format(n).as_bytes());
    }
}

impl ArgSink for Vec<Vec<u8>> {
    fn arg(&mut self, a: &[u8]) {
        self.push(a.to_vec());
    }
}

/// Counts arguments (the RESP header and a script's per-call counts come
/// before the arguments).
struct ArgCount(usize);

impl ArgSink for ArgCount {
    fn arg(&mut self, _: &[u8]) {
        self.0 += 1;
    }

    fn num(&mut self, _: i64) {
        self.0 += 1;
    }
}

impl Cmd {
    /// The request's arguments.
    pub fn argv(&self) -> Vec<Vec<u8>> {
        let mut a: Vec<Vec<u8>> = Vec::new();
        self.write_args(&mut a);
        a
    }

    /// How many arguments the request has.
    pub fn argc(&self) -> usize {
        let mut n = ArgCount(0);
        self.write_args(&mut n);
        n.0
    }

    /// Hands the request's arguments to `a` in order (the request is
    /// encoded straight from them, without building an argv).
    pub fn write_args<S: ArgSink>(&self, a: &mut S) {
        let w = |a: &mut S, s: &str| a.arg(s.as_bytes());
        let num = |a: &mut S, n: i64| a.num(n);
        match self {
            Cmd::Hello3 => {
                w(a, "HELLO");
                w(a, "3");
            }
            Cmd::Ping => w(a, "PING"),
            Cmd::Save => w(a, "SAVE"),
            Cmd::BgSave => w(a, "BGSAVE"),
            Cmd::BgRewriteAof => w(a, "BGREWRITEAOF"),
            Cmd::Get(k) => {
                w(a, "GET");
                a.arg(k);
            }
            Cmd::Set {
                key,
                value,
                ttl,
                cond,
                keepttl,
                get,
            } => {
                w(a, "SET");
                a.arg(key);
                a.arg(value);
                match cond {
                    Some(Cond::Nx) => w(a, "NX"),
                    Some(Cond::Xx) => w(a, "XX"),
                    None => {}
                }
                if *get {
                    w(a, "GET");
                }
                match ttl {
                    Some(Ttl::Ex(s)) => {
                        w(a, "EX");
                        num(a, *s);
                    }
                    Some(Ttl::Px(ms)) => {
                        w(a, "PX");
                        num(a, *ms);
                    }
                    None => {}
                }
                if *keepttl {
                    w(a, "KEEPTTL");
                }
            }
            Cmd::SetNx(k, v) => {
                w(a, "SETNX");
                a.arg(k);
                a.arg(v);
            }
            Cmd::Append(k, v) => {
                w(a, "APPEND");
                a.arg(k);
                a.arg(v);
            }
            Cmd::Strlen(k) => {
                w(a, "STRLEN");
                a.arg(k);
            }
            Cmd::IncrBy(k, n, form) => match form {
                IncrForm::Incr => {
                    w(a, "INCR");
                    a.arg(k);
                }
                IncrForm::Decr => {
                    w(a, "DECR");
                    a.arg(k);
                }
                IncrForm::IncrBy => {
                    w(a, "INCRBY");
                    a.arg(k);
                    num(a, *n);
                }
                IncrForm::DecrBy => {
                    w(a, "DECRBY");
                    a.arg(k);
                    num(a, -*n);
                }
            },
            Cmd::MGet(ks) => {
                w(a, "MGET");
                for x in ks {
                    a.arg(x);
                }
            }
            Cmd::MSet(kv) => {
                w(a, "MSET");
                for (k, v) in kv {
                    a.arg(k);
                    a.arg(v);
                }
            }
            Cmd::GetDel(k) => {
                w(a, "GETDEL");
                a.arg(k);
            }
            Cmd::Del(ks) => {
                w(a, "DEL");
                for x in ks {
                    a.arg(x);
                }
            }
            Cmd::Exists(ks) => {
                w(a, "EXISTS");
                for x in ks {
                    a.arg(x);
                }
            }
            Cmd::Type(k) => {
                w(a, "TYPE");
                a.arg(k);
            }
            Cmd::Expire {
                key,
                amount,
                unit,
                flag,
            } => {
                w(
                    a,
                    match unit {
                        ExpireUnit::Seconds => "EXPIRE",
                        ExpireUnit::Millis => "PEXPIRE",
                        ExpireUnit::AtSeconds => "EXPIREAT",
                        ExpireUnit::AtMillis => "PEXPIREAT",
                    },
                );
                a.arg(key);
                num(a, *amount);
                match flag {
                    Some(ExpireFlag::Nx) => w(a, "NX"),
                    Some(ExpireFlag::Xx) => w(a, "XX"),
                    Some(ExpireFlag::Gt) => w(a, "GT"),
                    Some(ExpireFlag::Lt) => w(a, "LT"),
                    None => {}
                }
            }
            Cmd::Ttl(k) => {
                w(a, "TTL");
                a.arg(k);
            }
            Cmd::PTtl(k) => {
                w(a, "PTTL");
                a.arg(k);
            }
            Cmd::Persist(k) => {
                w(a, "PERSIST");
                a.arg(k);
            }
            Cmd::Rename(s, d) => {
                w(a, "RENAME");
                a.arg(s);
                a.arg(d);
            }
            Cmd::Push { key, left, items } => {
                w(a, if *left { "LPUSH" } else { "RPUSH" });
                a.arg(key);
                for x in items {
                    a.arg(x);
                }
            }
            Cmd::Pop { key, left, count } => {
                w(a, if *left { "LPOP" } else { "RPOP" });
                a.arg(key);
                if let Some(c) = count {
                    num(a, *c);
                }
            }
            Cmd::LLen(k) => {
                w(a, "LLEN");
                a.arg(k);
            }
            Cmd::LRange(k, s, e) => {
                w(a, "LRANGE");
                a.arg(k);
                num(a, *s);
                num(a, *e);
            }
            Cmd::LIndex(k, i) => {
                w(a, "LINDEX");
                a.arg(k);
                num(a, *i);
            }
            Cmd::LSet(k, i, v) => {
                w(a, "LSET");
                a.arg(k);
                num(a, *i);
                a.arg(v);
            }
            Cmd::HSet(k, fv) => {
                w(a, "HSET");
                a.arg(k);
                for (f, v) in fv {
                    a.arg(f);
                    a.arg(v);
                }
            }
            Cmd::HGet(k, f) => {
                w(a, "HGET");
                a.arg(k);
                a.arg(f);
            }
            Cmd::HDel(k, fs) => {
                w(a, "HDEL");
                a.arg(k);
                for x in fs {
                    a.arg(x);
                }
            }
            Cmd::HLen(k) => {
                w(a, "HLEN");
                a.arg(k);
            }
            Cmd::HGetAll(k) => {
                w(a, "HGETALL");
                a.arg(k);
            }
            Cmd::HExists(k, f) => {
                w(a, "HEXISTS");
                a.arg(k);
                a.arg(f);
            }
            Cmd::HIncrBy(k, f, n) => {
                w(a, "HINCRBY");
                a.arg(k);
                a.arg(f);
                num(a, *n);
            }
            Cmd::SAdd(k, ms) => {
                w(a, "SADD");
                a.arg(k);
                for x in ms {
                    a.arg(x);
                }
            }
            Cmd::SRem(k, ms) => {
                w(a, "SREM");
                a.arg(k);
                for x in ms {
                    a.arg(x);
                }
            }
            Cmd::SIsMember(k, m) => {
                w(a, "SISMEMBER");
                a.arg(k);
                a.arg(m);
            }
            Cmd::SCard(k) => {
                w(a, "SCARD");
                a.arg(k);
            }
            Cmd::SMembers(k) => {
                w(a, "SMEMBERS");
                a.arg(k);
            }
            Cmd::ZAdd(k, sm) => {
                w(a, "ZADD");
                a.arg(k);
                for (s, m) in sm {
                    a.arg(&fmt_score(*s));
                    a.arg(m);
                }
            }
            Cmd::ZRem(k, ms) => {
                w(a, "ZREM");
                a.arg(k);
                for x in ms {
                    a.arg(x);
                }
            }
            Cmd::ZScore(k, m) => {
                w(a, "ZSCORE");
                a.arg(k);
                a.arg(m);
            }
            Cmd::ZCard(k) => {
                w(a, "ZCARD");
                a.arg(k);
            }
            Cmd::ZIncrBy(k, by, m) => {
                w(a, "ZINCRBY");
                a.arg(k);
                a.arg(&fmt_score(*by));
                a.arg(m);
            }
            Cmd::ZRange(k, s, e, withscores) => {
                w(a, "ZRANGE");
                a.arg(k);
                num(a, *s);
                num(a, *e);
                if *withscores {
                    w(a, "WITHSCORES");
                }
            }
            Cmd::ZRank(k, m) => {
                w(a, "ZRANK");
                a.arg(k);
                a.arg(m);
            }
            Cmd::LMove {
                src,
                dst,
                from_left,
                to_left,
            } => {
                w(a, "LMOVE");
                a.arg(src);
                a.arg(dst);
                w(a, side(*from_left));
                w(a, side(*to_left));
            }
            Cmd::BPop {
                keys,
                left,
                timeout_ms,
            } => {
                w(a, if *left { "BLPOP" } else { "BRPOP" });
                for x in keys {
                    a.arg(x);
                }
                a.arg(&fmt_timeout(*timeout_ms));
            }
            Cmd::BlMove {
                src,
                dst,
                from_left,
                to_left,
                timeout_ms,
            } => {
                w(a, "BLMOVE");
                a.arg(src);
                a.arg(dst);
                w(a, side(*from_left));
                w(a, side(*to_left));
                a.arg(&fmt_timeout(*timeout_ms));
            }
            Cmd::Multi => w(a, "MULTI"),
            Cmd::Exec => w(a, "EXEC"),
            Cmd::Discard => w(a, "DISCARD"),
            Cmd::Watch(ks) => {
                w(a, "WATCH");
                for x in ks {
                    a.arg(x);
                }
            }
            Cmd::Unwatch => w(a, "UNWATCH"),
            Cmd::Eval {
                script,
                by_sha,
                calls,
                keys,
            } => {
                if *by_sha {
                    w(a, "EVALSHA");
                    a.arg(script.sha().as_bytes());
                } else {
                    w(a, "EVAL");
                    w(a, script.text());
                }
                num(a, keys.len() as i64);
                for x in keys {
                    a.arg(x);
                }
                for c in calls {
                    num(a, c.argc() as i64);
                    c.write_args(a);
                }
            }
            Cmd::ScriptLoad(script) => {
                w(a, "SCRIPT");
                w(a, "LOAD");
                w(a, script.text());
            }
        }
    }

    /// How long the command may block (its timeout), in µs.
    pub fn block_us(&self) -> u64 {
        match self {
            Cmd::BPop { timeout_ms, .. } | Cmd::BlMove { timeout_ms, .. } => timeout_ms * 1000,
            _ => 0,
        }
    }

    /// The keys a (non-transaction, non-script) command may write, for
    /// WATCH and for waking blocked clients.
    pub fn write_keys(&self) -> Vec<&[u8]> {
        match self {
            Cmd::Set { key, .. } => vec![key],
            Cmd::SetNx(k, _)
            | Cmd::Append(k, _)
            | Cmd::IncrBy(k, ..)
            | Cmd::GetDel(k)
            | Cmd::Persist(k)
            | Cmd::LSet(k, ..)
            | Cmd::HSet(k, _)
            | Cmd::HDel(k, _)
            | Cmd::HIncrBy(k, ..)
            | Cmd::SAdd(k, _)
            | Cmd::SRem(k, _)
            | Cmd::ZAdd(k, _)
            | Cmd::ZRem(k, _)
            | Cmd::ZIncrBy(k, ..) => vec![k],
            Cmd::Expire { key, .. } | Cmd::Push { key, .. } | Cmd::Pop { key, .. } => vec![key],
            Cmd::MSet(kv) => kv.iter().map(|(k, _)| k.as_slice()).collect(),
            Cmd::Del(ks) => ks.iter().map(|k| k.as_slice()).collect(),
            Cmd::BPop { keys, .. } => keys.iter().map(|k| k.as_slice()).collect(),
            Cmd::Rename(s, d) => vec![s, d],
            Cmd::LMove { src, dst, .. } | Cmd::BlMove { src, dst, .. } => vec![src, dst],
            _ => Vec::new(),
        }
    }

    /// True for commands Redis counts as a change whenever they succeed,
    /// even when the value stays the same (SET of the same value, INCRBY 0,
    /// APPEND of nothing): they touch WATCHed keys. Others touch only what
    /// they change (a ZINCRBY by 0 or a refused EXPIRE touches nothing).
    fn always_dirty(&self) -> bool {
        matches!(
            self,
            Cmd::Set { .. }
                | Cmd::MSet(_)
                | Cmd::Append(..)
                | Cmd::IncrBy(..)
                | Cmd::HSet(..)
                | Cmd::HIncrBy(..)
                | Cmd::LSet(..)
                | Cmd::Push { .. }
                | Cmd::LMove { .. }
                | Cmd::BlMove { .. }
                | Cmd::Rename(..)
        )
    }

    /// True if the command may change the dataset (for the durability
    /// checker).
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Cmd::Hello3
                | Cmd::Ping
                | Cmd::BgSave
                | Cmd::BgRewriteAof
                | Cmd::Get(_)
                | Cmd::Strlen(_)
                | Cmd::MGet(_)
                | Cmd::Exists(_)
                | Cmd::Type(_)
                | Cmd::Ttl(_)
                | Cmd::PTtl(_)
                | Cmd::LLen(_)
                | Cmd::LRange(..)
                | Cmd::LIndex(..)
                | Cmd::HGet(..)
                | Cmd::HLen(_)
                | Cmd::HGetAll(_)
                | Cmd::HExists(..)
                | Cmd::SIsMember(..)
                | Cmd::SCard(_)
                | Cmd::SMembers(_)
                | Cmd::ZScore(..)
                | Cmd::ZCard(_)
                | Cmd::ZRange(..)
                | Cmd::ZRank(..)
                | Cmd::Multi
                | Cmd::Discard
                | Cmd::Watch(_)
                | Cmd::Unwatch
                | Cmd::ScriptLoad(_)
        )
    }

    /// The request as one readable line, for traces and reports.
    pub fn line(&self) -> String {
        if let Cmd::Eval {
            script,
            by_sha,
            calls,
            keys,
        } = self
        {
            let mut s = format!(
                "{} <{script:?}> {}",
                if *by_sha { "EVALSHA" } else { "EVAL" },
                keys.len()
            );
            for k in keys {
                s.push(' ');
                s.push_str(&String::from_utf8_lossy(k));
            }
            for c in calls {
                s.push_str(" | ");
                s.push_str(&c.line());
            }
            return s;
        }
        if let Cmd::ScriptLoad(script) = self {
            return format!("SCRIPT LOAD <{script:?}>");
        }
        let argv = self.argv();
        let mut s = String::new();
        for (i, a) in argv.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            let t = String::from_utf8_lossy(a);
            if t.is_empty() || t.contains(|c: char| c.is_whitespace() || c == '"') {
                s.push_str(&format!("{t:?}"));
            } else {
                s.push_str(&t);
            }
        }
        s
    }
}

/// Parses a string as Redis's `string2ll`: optional `-`, no leading zeros,
/// no `+`, no spaces, within i64.
pub fn redis_int(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if digits.first().is_none_or(|d| !(b'1'..=b'9').contains(d)) {
        return None;
    }
    crate::resp::parse_i64(b)
}

/// Normalizes a Redis range (start, stop) over a length to a half-open
/// index range, as LRANGE/ZRANGE do.
fn range_of(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut s = if start < 0 { len + start } else { start };
    let mut e = if stop < 0 { len + stop } else { stop };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s as usize, e as usize + 1))
}

/// The reference keyspace (db 0).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    pub keys: BTreeMap<Vec<u8>, MEntry>,
}

/// Engine bugs the model can emulate so a run can look past them. Each is
/// listed with its seeds in [`crate::KNOWN_ENGINE_BUGS`]; by default the
/// model is strict Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
///
/// None at the moment. (The first one, keys expiring in the last
/// millisecond of their TTL, was fixed in the engine; its seeds pass with
/// the strict model and stay in `sim/tests/seeds.rs`.)
pub enum KnownBug {}

impl KnownBug {
    pub const ALL: &'static [KnownBug] = &[];
}

enum Found<'a> {
    Missing,
    Present(&'a mut MEntry),
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    /// True if a key expiring at `at` is gone at `now_ms` (Redis:
    /// `now > when`).
    pub fn is_expired(&self, at: i64, now_ms: i64) -> bool {
        now_ms > at
    }

    /// Drops `key` if its TTL passed.
    fn expire_if_needed(&mut self, key: &[u8], now_ms: i64) {
        if let Some(e) = self.keys.get(key) {
            if e.expire_ms.is_some_and(|at| self.is_expired(at, now_ms)) {
                self.keys.remove(key);
            }
        }
    }

    fn lookup(&mut self, key: &[u8], now_ms: i64) -> Found<'_> {
        self.expire_if_needed(key, now_ms);
        match self.keys.get_mut(key) {
            Some(e) => Found::Present(e),
            None => Found::Missing,
        }
    }

    /// The live value of `key`, if any (read-only view for the checkers).
    pub fn get(&self, key: &[u8], now_ms: i64) -> Option<&MEntry> {
        self.keys
            .get(key)
            .filter(|e| !e.expire_ms.is_some_and(|at| self.is_expired(at, now_ms)))
    }

    /// Removes a collection key left empty by a removal.
    fn drop_if_empty(&mut self, key: &[u8]) {
        if self
            .keys
            .get(key)
            .is_some_and(|e| e.value.is_empty_collection())
        {
            self.keys.remove(key);
        }
    }

    /// Applies `cmd` at `now_ms` and returns the reply Redis would give.
    pub fn apply(&mut self, cmd: &Cmd, now_ms: i64) -> Expect {
        match cmd {
            Cmd::Hello3 => Expect::Any,
            Cmd::Ping => Expect::Status("PONG"),
            Cmd::Save => Expect::Saved,
            Cmd::BgSave | Cmd::BgRewriteAof => Expect::Background,
            Cmd::Get(k) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Bulk(None),
                Found::Present(e) => match &e.value {
                    MVal::Str(s) => Expect::Bulk(Some(s.clone())),
                    _ => Expect::Error(WRONGTYPE.into()),
                },
            },
            Cmd::Set {
                key,
                value,
                ttl,
                cond,
                keepttl,
                get,
            } => {
                let old = match self.lookup(key, now_ms) {
                    Found::Missing => None,
                    Found::Present(e) => Some(e.clone()),
                };
                let old_str = match &old {
                    Some(MEntry {
                        value: MVal::Str(s),
                        ..
                    }) => Some(s.clone()),
                    Some(_) if *get => return Expect::Error(WRONGTYPE.into()),
                    _ => None,
                };
                let go = match cond {
                    Some(Cond::Nx) => old.is_none(),
                    Some(Cond::Xx) => old.is_some(),
                    None => true,
                };
                if go {
                    let expire_ms = match ttl {
                        Some(Ttl::Ex(s)) => Some(now_ms + s * 1000),
                        Some(Ttl::Px(ms)) => Some(now_ms + ms),
                        None if *keepttl => old.as_ref().and_then(|e| e.expire_ms),
                        None => None,
                    };
                    self.keys.insert(
                        key.clone(),
                        MEntry {
                            value: MVal::Str(value.clone()),
                            expire_ms,
                        },
                    );
                }
                if *get {
                    Expect::Bulk(old_str)
                } else if go {
                    Expect::Ok
                } else {
                    Expect::Bulk(None)
                }
            }
            Cmd::SetNx(k, v) => match self.lookup(k, now_ms) {
                Found::Present(_) => Expect::Int(0),
                Found::Missing => {
                    self.keys.insert(
                        k.clone(),
                        MEntry {
                            value: MVal::Str(v.clone()),
                            expire_ms: None,
                        },
                    );
                    Expect::Int(1)
                }
            },
            Cmd::Append(k, v) => match self.lookup(k, now_ms) {
                Found::Missing => {
                    self.keys.insert(
                        k.clone(),
                        MEntry {
                            value: MVal::Str(v.clone()),
                            expire_ms: None,
                        },
                    );
                    Expect::Int(v.len() as i64)
                }
                Found::Present(e) => match &mut e.value {
                    MVal::Str(s) => {
                        s.extend_from_slice(v);
                        Expect::Int(s.len() as i64)
                    }
                    _ => Expect::Error(WRONGTYPE.into()),
                },
            },
            Cmd::Strlen(k) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Int(0),
                Found::Present(e) => match &e.value {
                    MVal::Str(s) => Expect::Int(s.len() as i64),
                    _ => Expect::Error(WRONGTYPE.into()),
                },
            },
            Cmd::IncrBy(k, by, _) => {
                let cur = match self.lookup(k, now_ms) {
                    Found::Missing => None,
                    Found::Present(e) => match &e.value {
                        MVal::Str(s) => match redis_int(s) {
                            Some(n) => Some((n, e.expire_ms)),
                            None => return Expect::Error(NOT_INTEGER.into()),
                        },
                        _ => return Expect::Error(WRONGTYPE.into()),
                    },
                };
                let (n, expire_ms) = cur.unwrap_or((0, None));
                let Some(v) = n.checked_add(*by) else {
                    return Expect::Error(OVERFLOW.into());
                };
                self.keys.insert(
                    k.clone(),
                    MEntry {
                        value: MVal::Str(v.to_string().into_bytes()),
                        expire_ms,
                    },
                );
                Expect::Int(v)
            }
            Cmd::MGet(ks) => {
                let mut out = Vec::new();
                for k in ks {
                    out.push(match self.lookup(k, now_ms) {
                        Found::Present(MEntry {
                            value: MVal::Str(s),
                            ..
                        }) => Some(s.clone()),
                        _ => None,
                    });
                }
                Expect::Array(out)
            }
            Cmd::MSet(kv) => {
                for (k, v) in kv {
                    self.keys.insert(
                        k.clone(),
                        MEntry {
                            value: MVal::Str(v.clone()),
                            expire_ms: None,
                        },
                    );
                }
                Expect::Ok
            }
            Cmd::GetDel(k) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Bulk(None),
                Found::Present(e) => match &e.value {
                    MVal::Str(s) => {
                        let s = s.clone();
                        self.keys.remove(k);
                        Expect::Bulk(Some(s))
                    }
                    _ => Expect::Error(WRONGTYPE.into()),
                },
            },
            Cmd::Del(ks) => {
                let mut n = 0;
                for k in ks {
                    self.expire_if_needed(k, now_ms);
                    if self.keys.remove(k).is_some() {
                        n += 1;
                    }
                }
                Expect::Int(n)
            }
            Cmd::Exists(ks) => {
                let mut n = 0;
                for k in ks {
                    if let Found::Present(_) = self.lookup(k, now_ms) {
                        n += 1;
                    }
                }
                Expect::Int(n)
            }
            Cmd::Type(k) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Status("none"),
                Found::Present(e) => Expect::Status(e.value.type_name()),
            },
            Cmd::Expire {
                key,
                amount,
                unit,
                flag,
            } => {
                let when = match unit {
                    ExpireUnit::Seconds => now_ms + amount * 1000,
                    ExpireUnit::Millis => now_ms + amount,
                    ExpireUnit::AtSeconds => amount * 1000,
                    ExpireUnit::AtMillis => *amount,
                };
                let Found::Present(e) = self.lookup(key, now_ms) else {
                    return Expect::Int(0);
                };
                let current = e.expire_ms;
                let refused = match flag {
                    Some(ExpireFlag::Nx) => current.is_some(),
                    Some(ExpireFlag::Xx) => current.is_none(),
                    Some(ExpireFlag::Gt) => current.is_none_or(|c| when <= c),
                    Some(ExpireFlag::Lt) => current.is_some_and(|c| when >= c),
                    None => false,
                };
                if refused {
                    return Expect::Int(0);
                }
                if when <= now_ms {
                    self.keys.remove(key);
                } else {
                    e.expire_ms = Some(when);
                }
                Expect::Int(1)
            }
            Cmd::Ttl(k) | Cmd::PTtl(k) => {
                let ms = matches!(cmd, Cmd::PTtl(_));
                match self.lookup(k, now_ms) {
                    Found::Missing => Expect::Int(-2),
                    Found::Present(MEntry {
                        expire_ms: None, ..
                    }) => Expect::Int(-1),
                    Found::Present(MEntry {
                        expire_ms: Some(at),
                        ..
                    }) => {
                        let ttl = (*at - now_ms).max(0);
                        Expect::Int(if ms { ttl } else { (ttl + 500) / 1000 })
                    }
                }
            }
            Cmd::Persist(k) => match self.lookup(k, now_ms) {
                Found::Present(e) if e.expire_ms.is_some() => {
                    e.expire_ms = None;
                    Expect::Int(1)
                }
                _ => Expect::Int(0),
            },
            Cmd::Rename(s, d) => {
                let Found::Present(e) = self.lookup(s, now_ms) else {
                    return Expect::Error("ERR no such key".into());
                };
                let e = e.clone();
                if s != d {
                    self.keys.remove(s);
                    self.keys.insert(d.clone(), e);
                }
                Expect::Ok
            }
            Cmd::Push { key, left, items } => {
                let entry = match self.lookup(key, now_ms) {
                    Found::Missing => {
                        self.keys.insert(
                            key.clone(),
                            MEntry {
                                value: MVal::List(VecDeque::new()),
                                expire_ms: None,
                            },
                        );
                        self.keys.get_mut(key).expect("just inserted")
                    }
                    Found::Present(e) => e,
                };
                let MVal::List(l) = &mut entry.value else {
                    return Expect::Error(WRONGTYPE.into());
                };
                for it in items {
                    if *left {
                        l.push_front(it.clone());
                    } else {
                        l.push_back(it.clone());
                    }
                }
                Expect::Int(l.len() as i64)
            }
            Cmd::Pop { key, left, count } => {
                let Found::Present(e) = self.lookup(key, now_ms) else {
                    return if count.is_some() {
                        Expect::NilArray
                    } else {
                        Expect::Bulk(None)
                    };
                };
                let MVal::List(l) = &mut e.value else {
                    return Expect::Error(WRONGTYPE.into());
                };
                let reply = match count {
                    None => Expect::Bulk(if *left { l.pop_front() } else { l.pop_back() }),
                    Some(c) => {
                        let mut out = Vec::new();
                        for _ in 0..*c {
                            match if *left { l.pop_front() } else { l.pop_back() } {
                                Some(v) => out.push(Some(v)),
                                None => break,
                            }
                        }
                        Expect::Array(out)
                    }
                };
                self.drop_if_empty(key);
                reply
            }
            Cmd::LLen(k) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Int(0),
                Found::Present(MEntry {
                    value: MVal::List(l),
                    ..
                }) => Expect::Int(l.len() as i64),
                Found::Present(_) => Expect::Error(WRONGTYPE.into()),
            },
            Cmd::LRange(k, s, e) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Array(vec![]),
                Found::Present(MEntry {
                    value: MVal::List(l),
                    ..
                }) => match range_of(l.len(), *s, *e) {
                    None => Expect::Array(vec![]),
                    Some((a, b)) => Expect::Array(l.range(a..b).map(|v| Some(v.clone())).collect()),
                },
                Found::Present(_) => Expect::Error(WRONGTYPE.into()),
            },
            Cmd::LIndex(k, i) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Bulk(None),
                Found::Present(MEntry {
                    value: MVal::List(l),
                    ..
                }) => {
                    let idx = if *i < 0 { l.len() as i64 + i } else { *i };
                    Expect::Bulk(if idx < 0 {
                        None
                    } else {
                        l.get(idx as usize).cloned()
                    })
                }
                Found::Present(_) => Expect::Error(WRONGTYPE.into()),
            },
            Cmd::LSet(k, i, v) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Error("ERR no such key".into()),
                Found::Present(MEntry {
                    value: MVal::List(l),
                    ..
                }) => {
                    let idx = if *i < 0 { l.len() as i64 + i } else { *i };
                    match (idx >= 0).then(|| l.get_mut(idx as usize)).flatten() {
                        Some(slot) => {
                            *slot = v.clone();
                            Expect::Ok
                        }
                        None => Expect::Error("ERR index out of range".into()),
                    }
                }
                Found::Present(_) => Expect::Error(WRONGTYPE.into()),
            },
            Cmd::HSet(k, fv) => {
                let entry = match self.lookup(k, now_ms) {
                    Found::Missing => {
                        self.keys.insert(
                            k.clone(),
                            MEntry {
                                value: MVal::Hash(BTreeMap::new()),
                                expire_ms: None,
                            },
                        );
                        self.keys.get_mut(k).expect("just inserted")
                    }
                    Found::Present(e) => e,
                };
                let MVal::Hash(h) = &mut entry.value else {
                    return Expect::Error(WRONGTYPE.into());
                };
                let mut added = 0;
                for (f, v) in fv {
                    if h.insert(f.clone(), v.clone()).is_none() {
                        added += 1;
                    }
                }
                Expect::Int(added)
            }
            Cmd::HGet(k, f) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Bulk(None),
                Found::Present(MEntry {
                    value: MVal::Hash(h),
                    ..
                }) => Expect::Bulk(h.get(f).cloned()),
                Found::Present(_) => Expect::Error(WRONGTYPE.into()),
            },
            Cmd::HDel(k, fs) => {
                let n = match self.lookup(k, now_ms) {
                    Found::Missing => return Expect::Int(0),
                    Found::Present(MEntry {
                        value: MVal::Hash(h),
                        ..
                    }) => fs.iter().filter(|f| h.remove(*f).is_some()).count(),
                    Found::Present(_) => return Expect::Error(WRONGTYPE.into()),
                };
                self.drop_if_empty(k);
                Expect::Int(n as i64)
            }
            Cmd::HLen(k) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Int(0),
                Found::Present(MEntry {
                    value: MVal::Hash(h),
                    ..
                }) => Expect::Int(h.len() as i64),
                Found::Present(_) => Expect::Error(WRONGTYPE.into()),
            },
            Cmd::HGetAll(k) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Pairs(vec![]),
                Found::Present(MEntry {
                    value: MVal::Hash(h),
                    ..
                }) => Expect::Pairs(h.iter().map(|(f, v)| (f.clone(), v.clone())).collect()),
                Found::Present(_) => Expect::Error(WRONGTYPE.into()),
            },
            Cmd::HExists(k, f) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Int(0),
                Found::Present(MEntry {
                    value: MVal::Hash(h),
                    ..
                }) => Expect::Int(h.contains_key(f) as i64),
                Found::Present(_) => Expect::Error(WRONGTYPE.into()),
            },
            Cmd::HIncrBy(k, f, by) => {
                let entry = match self.lookup(k, now_ms) {
                    Found::Missing => {
                        self.keys.insert(
                            k.clone(),
                            MEntry {
                                value: MVal::Hash(BTreeMap::new()),
                                expire_ms: None,
                            },
                        );
                        self.keys.get_mut(k).expect("just inserted")
                    }
                    Found::Present(e) => e,
                };
                let MVal::Hash(h) = &mut entry.value else {
                    return Expect::Error(WRONGTYPE.into());
                };
                let cur = match h.get(f) {
                    None => 0,
                    Some(v) => match redis_int(v) {
                        Some(n) => n,
                        None => return Expect::Error("ERR hash value is not an integer".into()),
                    },
                };
                match cur.checked_add(*by) {
                    Some(n) => {
                        h.insert(f.clone(), n.to_string().into_bytes());
                        Expect::Int(n)
                    }
                    None => {
                        self.drop_if_empty(k);
                        Expect::Error(OVERFLOW.into())
                    }
                }
            }
            Cmd::SAdd(k, ms) => {
                let entry = match self.lookup(k, now_ms) {
                    Found::Missing => {
                        self.keys.insert(
                            k.clone(),
                            MEntry {
                                value: MVal::Set(BTreeSet::new()),
                                expire_ms: None,
                            },
                        );
                        self.keys.get_mut(k).expect("just inserted")
                    }
                    Found::Present(e) => e,
                };
                let MVal::Set(s) = &mut entry.value else {
                    return Expect::Error(WRONGTYPE.into());
                };
                Expect::Int(ms.iter().filter(|m| s.insert((*m).clone())).count() as i64)
            }
            Cmd::SRem(k, ms) => {
                let n = match self.lookup(k, now_ms) {
                    Found::Missing => return Expect::Int(0),
                    Found::Present(MEntry {
                        value: MVal::Set(s),
                        ..
                    }) => ms.iter().filter(|m| s.remove(*m)).count(),
                    Found::Present(_) => return Expect::Error(WRONGTYPE.into()),
                };
                self.drop_if_empty(k);
                Expect::Int(n as i64)
            }
            Cmd::SIsMember(k, m) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Int(0),
                Found::Present(MEntry {
                    value: MVal::Set(s),
                    ..
                }) => Expect::Int(s.contains(m) as i64),
                Found::Present(_) => Expect::Error(WRONGTYPE.into()),
            },
            Cmd::SCard(k) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Int(0),
                Found::Present(MEntry {
                    value: MVal::Set(s),
                    ..
                }) => Expect::Int(s.len() as i64),
                Found::Present(_) => Expect::Error(WRONGTYPE.into()),
            },
            Cmd::SMembers(k) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Unordered(vec![]),
                Found::Present(MEntry {
                    value: MVal::Set(s),
                    ..
                }) => Expect::Unordered(s.iter().cloned().collect()),
                Found::Present(_) => Expect::Error(WRONGTYPE.into()),
            },
            Cmd::ZAdd(k, sm) => {
                let entry = match self.lookup(k, now_ms) {
                    Found::Missing => {
                        self.keys.insert(
                            k.clone(),
                            MEntry {
                                value: MVal::ZSet(BTreeMap::new()),
                                expire_ms: None,
                            },
                        );
                        self.keys.get_mut(k).expect("just inserted")
                    }
                    Found::Present(e) => e,
                };
                let MVal::ZSet(z) = &mut entry.value else {
                    return Expect::Error(WRONGTYPE.into());
                };
                let mut added = 0;
                for (s, m) in sm {
                    if z.insert(m.clone(), *s).is_none() {
                        added += 1;
                    }
                }
                Expect::Int(added)
            }
            Cmd::ZRem(k, ms) => {
                let n = match self.lookup(k, now_ms) {
                    Found::Missing => return Expect::Int(0),
                    Found::Present(MEntry {
                        value: MVal::ZSet(z),
                        ..
                    }) => ms.iter().filter(|m| z.remove(*m).is_some()).count(),
                    Found::Present(_) => return Expect::Error(WRONGTYPE.into()),
                };
                self.drop_if_empty(k);
                Expect::Int(n as i64)
            }
            Cmd::ZScore(k, m) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Score(None),
                Found::Present(MEntry {
                    value: MVal::ZSet(z),
                    ..
                }) => Expect::Score(z.get(m).copied()),
                Found::Present(_) => Expect::Error(WRONGTYPE.into()),
            },
            Cmd::ZCard(k) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Int(0),
                Found::Present(MEntry {
                    value: MVal::ZSet(z),
                    ..
                }) => Expect::Int(z.len() as i64),
                Found::Present(_) => Expect::Error(WRONGTYPE.into()),
            },
            Cmd::ZIncrBy(k, by, m) => {
                let entry = match self.lookup(k, now_ms) {
                    Found::Missing => {
                        self.keys.insert(
                            k.clone(),
                            MEntry {
                                value: MVal::ZSet(BTreeMap::new()),
                                expire_ms: None,
                            },
                        );
                        self.keys.get_mut(k).expect("just inserted")
                    }
                    Found::Present(e) => e,
                };
                let MVal::ZSet(z) = &mut entry.value else {
                    return Expect::Error(WRONGTYPE.into());
                };
                let s = z.get(m).copied().unwrap_or(0.0) + by;
                z.insert(m.clone(), s);
                Expect::Score(Some(s))
            }
            Cmd::ZRange(k, s, e, withscores) => match self.lookup(k, now_ms) {
                Found::Missing => {
                    if *withscores {
                        Expect::WithScores(vec![])
                    } else {
                        Expect::Array(vec![])
                    }
                }
                Found::Present(MEntry {
                    value: MVal::ZSet(z),
                    ..
                }) => {
                    let sorted = zsorted(z);
                    let items = match range_of(sorted.len(), *s, *e) {
                        None => vec![],
                        Some((a, b)) => sorted[a..b].to_vec(),
                    };
                    if *withscores {
                        Expect::WithScores(items)
                    } else {
                        Expect::Array(items.into_iter().map(|(m, _)| Some(m)).collect())
                    }
                }
                Found::Present(_) => Expect::Error(WRONGTYPE.into()),
            },
            Cmd::ZRank(k, m) => match self.lookup(k, now_ms) {
                Found::Missing => Expect::Bulk(None),
                Found::Present(MEntry {
                    value: MVal::ZSet(z),
                    ..
                }) => match zsorted(z).iter().position(|(x, _)| x == m) {
                    Some(i) => Expect::Int(i as i64),
                    None => Expect::Bulk(None),
                },
                Found::Present(_) => Expect::Error(WRONGTYPE.into()),
            },
            Cmd::LMove {
                src,
                dst,
                from_left,
                to_left,
            } => self.lmove(src, dst, *from_left, *to_left, now_ms),
            // Outside a top-level command (MULTI, a script) a blocking
            // command does not block: it answers as if it timed out.
            Cmd::BPop { keys, left, .. } => self
                .try_bpop(keys, *left, now_ms)
                .unwrap_or(Expect::NilArray),
            Cmd::BlMove {
                src,
                dst,
                from_left,
                to_left,
                ..
            } => self
                .try_blmove(src, dst, *from_left, *to_left, now_ms)
                .unwrap_or(Expect::Bulk(None)),
            // Per-connection state: `crate::session` runs these.
            Cmd::Multi
            | Cmd::Exec
            | Cmd::Discard
            | Cmd::Watch(_)
            | Cmd::Unwatch
            | Cmd::Eval { .. }
            | Cmd::ScriptLoad(_) => Expect::Any,
        }
    }

    /// The length of the list at `key`, if it holds one.
    pub fn list_len(&self, key: &[u8], now_ms: i64) -> Option<usize> {
        match self.get(key, now_ms) {
            Some(MEntry {
                value: MVal::List(l),
                ..
            }) => Some(l.len()),
            _ => None,
        }
    }

    /// LMOVE (and BLMOVE finding data): the source's type is checked first,
    /// the destination's only if there is something to move.
    fn lmove(
        &mut self,
        src: &[u8],
        dst: &[u8],
        from_left: bool,
        to_left: bool,
        now_ms: i64,
    ) -> Expect {
        match self.lookup(src, now_ms) {
            Found::Missing => return Expect::Bulk(None),
            Found::Present(MEntry {
                value: MVal::List(_),
                ..
            }) => {}
            Found::Present(_) => return Expect::Error(WRONGTYPE.into()),
        }
        match self.lookup(dst, now_ms) {
            Found::Present(MEntry {
                value: MVal::List(_),
                ..
            })
            | Found::Missing => {}
            Found::Present(_) => return Expect::Error(WRONGTYPE.into()),
        }
        let Some(MEntry {
            value: MVal::List(l),
            ..
        }) = self.keys.get_mut(src)
        else {
            return Expect::Bulk(None);
        };
        let Some(v) = (if from_left {
            l.pop_front()
        } else {
            l.pop_back()
        }) else {
            return Expect::Bulk(None);
        };
        let entry = self.keys.entry(dst.to_vec()).or_insert_with(|| MEntry {
            value: MVal::List(VecDeque::new()),
            expire_ms: None,
        });
        if let MVal::List(d) = &mut entry.value {
            if to_left {
                d.push_front(v.clone());
            } else {
                d.push_back(v.clone());
            }
        }
        self.drop_if_empty(src);
        Expect::Bulk(Some(v))
    }

    /// BLPOP/BRPOP finding data in the first of `keys` that has some (or a
    /// wrong type before it); `None` if it would block.
    pub fn try_bpop(&mut self, keys: &[Vec<u8>], left: bool, now_ms: i64) -> Option<Expect> {
        for k in keys {
            match self.lookup(k, now_ms) {
                Found::Missing => {}
                Found::Present(MEntry {
                    value: MVal::List(l),
                    ..
                }) => {
                    let v = if left { l.pop_front() } else { l.pop_back() };
                    self.drop_if_empty(k);
                    return Some(Expect::Array(vec![Some(k.clone()), v]));
                }
                Found::Present(_) => return Some(Expect::Error(WRONGTYPE.into())),
            }
        }
        None
    }

    /// BLMOVE: as LMOVE when the source exists; `None` if it would block.
    pub fn try_blmove(
        &mut self,
        src: &[u8],
        dst: &[u8],
        from_left: bool,
        to_left: bool,
        now_ms: i64,
    ) -> Option<Expect> {
        match self.lookup(src, now_ms) {
            Found::Missing => None,
            _ => Some(self.lmove(src, dst, from_left, to_left, now_ms)),
        }
    }

    /// The keys `cmd` touched (for WATCH), given their values before it:
    /// what a read now sees changed, or the command is one Redis counts as
    /// a change whenever it succeeds.
    pub fn touched<'a>(
        &self,
        cmd: &'a Cmd,
        before: &[Option<MEntry>],
        reply: &Expect,
        now_ms: i64,
    ) -> Vec<&'a [u8]> {
        let keys = cmd.write_keys();
        let failed = matches!(reply, Expect::Error(_));
        let went = match cmd {
            // SET's condition failed: nothing happened (the reply is nil,
            // or the old value with GET).
            Cmd::Set { cond, .. } => match cond {
                Some(Cond::Nx) => before.first().is_some_and(|b| b.is_none()),
                Some(Cond::Xx) => before.first().is_some_and(|b| b.is_some()),
                None => true,
            },
            Cmd::LMove { .. } | Cmd::BlMove { .. } => matches!(reply, Expect::Bulk(Some(_))),
            Cmd::Rename(s, d) => s != d,
            _ => true,
        };
        let always = match cmd {
            // Applied, even to the same time.
            Cmd::Expire { .. } => *reply == Expect::Int(1),
            // Each pair counts: `ZADD k 6 m 8 m` over 8 is two updates.
            Cmd::ZAdd(_, pairs) if !failed => {
                let mut cur: BTreeMap<&[u8], f64> = match before.first() {
                    Some(Some(MEntry {
                        value: MVal::ZSet(z),
                        ..
                    })) => z.iter().map(|(m, s)| (m.as_slice(), *s)).collect(),
                    _ => BTreeMap::new(),
                };
                pairs
                    .iter()
                    .any(|(s, m)| cur.insert(m.as_slice(), *s) != Some(*s))
            }
            _ => cmd.always_dirty() && !failed && went,
        };
        // Those touch every key they name (RENAME's source, MSET's every
        // key); the others each key they change (BLPOP's popped key only).
        keys.into_iter()
            .zip(before)
            .filter(|(k, b)| {
                let now = self.get(k, now_ms);
                if always {
                    b.is_some() || now.is_some()
                } else {
                    now != b.as_ref()
                }
            })
            .map(|(k, _)| k)
            .collect()
    }
}

/// Members ordered by (score, member), as Redis orders a sorted set.
fn zsorted(z: &BTreeMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
    let mut v: Vec<(Vec<u8>, f64)> = z.iter().map(|(m, s)| (m.clone(), *s)).collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    v
}

fn bulk_of(v: &Value) -> Option<Option<&[u8]>> {
    match v {
        Value::Bulk(b) => Some(Some(b)),
        Value::Nil => Some(None),
        _ => None,
    }
}

fn score_of(v: &Value) -> Option<f64> {
    match v {
        Value::Bulk(b) | Value::Double(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// Checks a reply against the model's prediction. `Err` explains the
/// mismatch.
pub fn check(expect: &Expect, got: &Value) -> Result<(), String> {
    let ok = match (expect, got) {
        (Expect::Any, Value::Error(_)) => false,
        (Expect::Any, _) => true,
        (Expect::Saved, Value::Simple(s)) => s == b"OK",
        (Expect::Saved, Value::Error(_)) => true,
        (Expect::Background, Value::Simple(s)) => s.starts_with(b"Background "),
        (Expect::Background, Value::Error(e)) => e.starts_with(b"ERR "),
        (Expect::Ok, Value::Simple(s)) => s == b"OK",
        (Expect::Status(t), Value::Simple(s)) => s == t.as_bytes(),
        (Expect::Int(n), Value::Int(m)) => n == m,
        (Expect::Bulk(b), v) => bulk_of(v).is_some_and(|x| x == b.as_deref()),
        (Expect::NilArray, Value::Nil) => true,
        (Expect::Array(items), Value::Array(vs)) => {
            items.len() == vs.len()
                && items
                    .iter()
                    .zip(vs)
                    .all(|(i, v)| bulk_of(v).is_some_and(|x| x == i.as_deref()))
        }
        (Expect::Unordered(items), Value::Array(vs) | Value::Set(vs)) => {
            let mut got: Vec<&[u8]> = Vec::new();
            for v in vs {
                match v {
                    Value::Bulk(b) => got.push(b),
                    _ => return Err(format!("expected members, got {}", v.short())),
                }
            }
            got.sort();
            let mut want: Vec<&[u8]> = items.iter().map(|v| v.as_slice()).collect();
            want.sort();
            got == want
        }
        (Expect::Pairs(pairs), v) => {
            let mut got: Vec<(&[u8], &[u8])> = Vec::new();
            match v {
                Value::Map(kv) => {
                    for (k, v) in kv {
                        match (k, v) {
                            (Value::Bulk(k), Value::Bulk(v)) => got.push((k, v)),
                            _ => return Err(format!("bad map entry in {}", got.len())),
                        }
                    }
                }
                Value::Array(vs) if vs.len() % 2 == 0 => {
                    for kv in vs.chunks(2) {
                        match (&kv[0], &kv[1]) {
                            (Value::Bulk(k), Value::Bulk(v)) => got.push((k, v)),
                            _ => return Err("bad pair in array".into()),
                        }
                    }
                }
                _ => return Err(format!("expected pairs, got {}", v.short())),
            }
            got.sort();
            let mut want: Vec<(&[u8], &[u8])> = pairs
                .iter()
                .map(|(a, b)| (a.as_slice(), b.as_slice()))
                .collect();
            want.sort();
            got == want
        }
        (Expect::Score(None), Value::Nil) => true,
        (Expect::Score(Some(s)), v) => score_of(v) == Some(*s),
        (Expect::WithScores(items), Value::Array(vs)) => {
            let mut got: Vec<(&[u8], f64)> = Vec::new();
            if vs.iter().all(|v| matches!(v, Value::Array(_))) && !vs.is_empty() {
                for v in vs {
                    let Value::Array(pair) = v else {
                        unreachable!()
                    };
                    match pair.as_slice() {
                        [Value::Bulk(m), s] => got.push((m, score_of(s).unwrap_or(f64::NAN))),
                        _ => return Err("bad [member, score] pair".into()),
                    }
                }
            } else if vs.len() % 2 == 0 {
                for kv in vs.chunks(2) {
                    match &kv[0] {
                        Value::Bulk(m) => got.push((m, score_of(&kv[1]).unwrap_or(f64::NAN))),
                        _ => return Err("bad member".into()),
                    }
                }
            } else {
                return Err("odd WITHSCORES array".into());
            }
            got.len() == items.len()
                && got
                    .iter()
                    .zip(items)
                    .all(|(g, w)| g.0 == w.0.as_slice() && g.1 == w.1)
        }
        (Expect::Error(msg), Value::Error(e)) => e == msg.as_bytes(),
        (Expect::ErrorPrefix(p), Value::Error(e)) => e.starts_with(p.as_bytes()),
        (Expect::Tuple(items), Value::Array(vs)) => {
            if items.len() != vs.len() {
                false
            } else {
                for (i, (e, v)) in items.iter().zip(vs).enumerate() {
                    check(e, v).map_err(|m| format!("element {i}: {m}"))?;
                }
                true
            }
        }
        (Expect::Refused(code), Value::Error(e)) => {
            e.starts_with(code.as_bytes()) && e.get(code.len()) == Some(&b' ')
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected {}, got {}",
            expect_short(expect),
            got.short()
        ))
    }
}

/// The expectation as text.
pub fn expect_short(e: &Expect) -> String {
    let b = |x: &Option<Vec<u8>>| match x {
        Some(v) => format!("{:?}", String::from_utf8_lossy(v)),
        None => "nil".into(),
    };
    match e {
        Expect::Ok => "+OK".into(),
        Expect::Status(s) => format!("+{s}"),
        Expect::Int(n) => format!(":{n}"),
        Expect::Bulk(x) => b(x),
        Expect::Array(xs) => format!("[{}]", xs.iter().map(b).collect::<Vec<_>>().join(" ")),
        Expect::NilArray => "nil-array".into(),
        Expect::Unordered(xs) => format!(
            "unordered{{{}}}",
            xs.iter()
                .map(|x| String::from_utf8_lossy(x).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Expect::Pairs(xs) => format!(
            "pairs{{{}}}",
            xs.iter()
                .map(|(f, v)| format!(
                    "{}={}",
                    String::from_utf8_lossy(f),
                    String::from_utf8_lossy(v)
                ))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Expect::Score(s) => format!("score {s:?}"),
        Expect::WithScores(xs) => format!(
            "[{}]",
            xs.iter()
                .map(|(m, s)| format!("{}:{s}", String::from_utf8_lossy(m)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Expect::Error(m) => format!("-{m}"),
        Expect::Any => "any".into(),
        Expect::Saved => "+OK or a save error".into(),
        Expect::Background => "+Background ... or -ERR".into(),
        Expect::Refused(code) => format!("-{code} ..."),
        Expect::ErrorPrefix(p) => format!("-{p}..."),
        Expect::Tuple(xs) => format!(
            "[{}]",
            xs.iter().map(expect_short).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn redis_int_is_strict() {
        assert_eq!(redis_int(b"0"), Some(0));
        assert_eq!(redis_int(b"-5"), Some(-5));
        assert_eq!(redis_int(b"01"), None);
        assert_eq!(redis_int(b"-0"), None);
        assert_eq!(redis_int(b"+1"), None);
        assert_eq!(redis_int(b""), None);
        assert_eq!(redis_int(b" 1"), None);
    }

    #[test]
    fn expiry_is_strictly_after_the_deadline() {
        let mut m = Model::new();
        m.apply(
            &Cmd::Set {
                key: k("a"),
                value: k("1"),
                ttl: Some(Ttl::Px(10)),
                cond: None,
                keepttl: false,
                get: false,
            },
            1000,
        );
        assert_eq!(m.apply(&Cmd::PTtl(k("a")), 1010), Expect::Int(0));
        assert_eq!(m.apply(&Cmd::PTtl(k("a")), 1011), Expect::Int(-2));
    }

    #[test]
    fn expire_in_the_past_deletes() {
        let mut m = Model::new();
        m.apply(&Cmd::SetNx(k("a"), k("1")), 0);
        let e = Cmd::Expire {
            key: k("a"),
            amount: 0,
            unit: ExpireUnit::Seconds,
            flag: None,
        };
        assert_eq!(m.apply(&e, 5), Expect::Int(1));
        assert_eq!(m.apply(&Cmd::Exists(vec![k("a")]), 5), Expect::Int(0));
    }

    #[test]
    fn ranges() {
        assert_eq!(range_of(5, 0, -1), Some((0, 5)));
        assert_eq!(range_of(5, -2, 100), Some((3, 5)));
        assert_eq!(range_of(5, 3, 1), None);
        assert_eq!(range_of(0, 0, -1), None);
        assert_eq!(range_of(5, -100, 0), Some((0, 1)));
    }
}
