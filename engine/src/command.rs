//! The command table: one entry per command, driving dispatch, arity checks,
//! `COMMAND` and key extraction.
//!
//! The descriptive part of each entry (arity, flags, key positions, ACL
//! categories, key specs, docs) is Redis 7.0's own specification, embedded
//! from `engine/data/*.resp3` (regenerate with `tools/gen_command_data.py`).
//! The executable part is the handler registry in `commands/mod.rs`. Only
//! commands with a handler exist for clients: an unimplemented command gets
//! Redis's "unknown command" error rather than a wrong answer.

use crate::commands::handler_for;
use crate::node::Ctx;
use crate::resp::Frame;
use std::sync::OnceLock;

pub type Handler = fn(&mut Ctx);

/// Command flags, as named in Redis's command table.
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const SKIP_SLOWLOG: u32 = 1 << 10;
    pub const FAST: u32 = 1 << 11;
    pub const NO_AUTH: u32 = 1 << 12;
    pub const MAY_REPLICATE: u32 = 1 << 13;
    pub const NO_MULTI: u32 = 1 << 14;
    pub const MOVABLE_KEYS: u32 = 1 << 15;
    pub const ALLOW_BUSY: u32 = 1 << 16;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 17;

    pub fn from_name(name: &[u8]) -> u32 {
        match name {
            b"write" => WRITE,
            b"readonly" => READONLY,
            b"denyoom" => DENYOOM,
            b"admin" => ADMIN,
            b"pubsub" => PUBSUB,
            b"noscript" => NOSCRIPT,
            b"blocking" => BLOCKING,
            b"loading" => LOADING,
            b"stale" => STALE,
            b"skip_monitor" => SKIP_MONITOR,
            b"skip_slowlog" => SKIP_SLOWLOG,
            b"fast" => FAST,
            b"no_auth" => NO_AUTH,
            b"may_replicate" => MAY_REPLICATE,
            b"no_multi" => NO_MULTI,
            b"movablekeys" => MOVABLE_KEYS,
            b"allow_busy" => ALLOW_BUSY,
            b"no_mandatory_keys" => NO_MANDATORY_KEYS,
            _ => 0,
        }
    }
}

/// One command (or subcommand, e.g. `config|get`).
pub struct Command {
    /// Lowercase full name: `get`, `config|get`.
    pub name: String,
    pub arity: i32,
    pub flags: u32,
    pub first_key: i32,
    pub last_key: i32,
    pub key_step: i32,
    /// Redis 7.0's key specifications: where the keys are and what the
    /// command does to each.
    pub key_specs: Vec<KeySpec>,
    /// `None` for container commands (CONFIG, CLIENT...), which dispatch to a
    /// subcommand.
    pub handler: Option<Handler>,
    /// Sorted by name; empty unless this is a container.
    pub subcommands: Vec<Command>,
    /// The COMMAND INFO entry, with unimplemented subcommands removed.
    pub info: Frame,
    /// The COMMAND DOCS entry (name excluded), likewise filtered.
    pub docs: Option<Frame>,
}

impl Command {
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// Arity check: positive means exact, negative means at least.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity;
        (a > 0 && argc == a as usize) || (a < 0 && argc >= (-a) as usize)
    }

    pub fn is_container(&self) -> bool {
        !self.subcommands.is_empty()
    }

    /// Looks up a subcommand by its (case-insensitive) name.
    pub fn subcommand(&self, name: &[u8]) -> Option<&Command> {
        let prefix = self.name.len() + 1;
        self.subcommands
            .binary_search_by(|c| cmp_ignore_case(&c.name.as_bytes()[prefix..], name))
            .ok()
            .map(|i| &self.subcommands[i])
    }

    /// Key positions from first/last/step (for commands without movable keys).
    pub fn key_positions(&self, argc: usize) -> Vec<usize> {
        let mut out = vec![];
        if self.first_key <= 0 {
            return out;
        }
        let last = if self.last_key < 0 {
            argc as i32 + self.last_key
        } else {
            self.last_key
        };
        let mut i = self.first_key;
        while i <= last && (i as usize) < argc {
            out.push(i as usize);
            i += self.key_step.max(1);
        }
        out
    }
}

/// What a command does to the keys of one key spec (Redis's key-spec
/// flags; only those the engine acts on).
pub mod key_flags {
    /// Read only.
    pub const RO: u32 = 1 << 0;
    /// Read and written.
    pub const RW: u32 = 1 << 1;
    /// Overwritten without being read.
    pub const OW: u32 = 1 << 2;
    /// Removed.
    pub const RM: u32 = 1 << 3;
    /// The value is read or returned (ACL: needs read permission).
    pub const ACCESS: u32 = 1 << 4;
    /// Data is added (ACL: needs write permission).
    pub const INSERT: u32 = 1 << 5;
    /// Data is removed (ACL: needs write permission).
    pub const DELETE: u32 = 1 << 6;
    /// Data is modified (ACL: needs write permission).
    pub const UPDATE: u32 = 1 << 7;
    /// Not a key at all (the shard channel of SPUBLISH): ACLs skip it.
    pub const NOT_KEY: u32 = 1 << 8;

    pub fn from_name(n: &[u8]) -> u32 {
        match n {
            b"RO" => RO,
            b"RW" => RW,
            b"OW" => OW,
            b"RM" => RM,
            b"access" => ACCESS,
            b"insert" => INSERT,
            b"delete" => DELETE,
            b"update" => UPDATE,
            b"not_key" => NOT_KEY,
            _ => 0,
        }
    }
}

/// One key specification: how to find its keys in the arguments.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub flags: u32,
    begin: Begin,
    find: Find,
}

#[derive(Debug, Clone)]
enum Begin {
    Index(i64),
    Keyword { keyword: Vec<u8>, startfrom: i64 },
    Unknown,
}

#[derive(Debug, Clone)]
enum Find {
    Range { lastkey: i64, step: i64, limit: i64 },
    Keynum { idx: i64, first: i64, step: i64 },
    Unknown,
}

/// A map frame's value for `key`.
fn field<'a>(m: &'a Frame, key: &str) -> Option<&'a Frame> {
    let Frame::Map(kv) = m else { return None };
    kv.chunks(2)
        .find(|p| p[0].as_bytes() == Some(key.as_bytes()))
        .map(|p| &p[1])
}

fn int_field(m: &Frame, key: &str) -> i64 {
    match field(m, key) {
        Some(Frame::Int(n)) => *n,
        _ => 0,
    }
}

impl KeySpec {
    fn parse(f: &Frame) -> KeySpec {
        let mut flags = 0;
        if let Some(Frame::Set(fl)) | Some(Frame::Array(fl)) = field(f, "flags") {
            for x in fl {
                flags |= key_flags::from_name(x.as_bytes().unwrap_or_default());
            }
        }
        let begin = match field(f, "begin_search") {
            Some(b) => match (field(b, "type").and_then(Frame::as_bytes), field(b, "spec")) {
                (Some(b"index"), Some(s)) => Begin::Index(int_field(s, "index")),
                (Some(b"keyword"), Some(s)) => Begin::Keyword {
                    keyword: field(s, "keyword")
                        .and_then(Frame::as_bytes)
                        .unwrap_or_default()
                        .to_vec(),
                    startfrom: int_field(s, "startfrom"),
                },
                _ => Begin::Unknown,
            },
            None => Begin::Unknown,
        };
        let find = match field(f, "find_keys") {
            Some(k) => match (field(k, "type").and_then(Frame::as_bytes), field(k, "spec")) {
                (Some(b"range"), Some(s)) => Find::Range {
                    lastkey: int_field(s, "lastkey"),
                    step: int_field(s, "keystep"),
                    limit: int_field(s, "limit"),
                },
                (Some(b"keynum"), Some(s)) => Find::Keynum {
                    idx: int_field(s, "keynumidx"),
                    first: int_field(s, "firstkey"),
                    step: int_field(s, "keystep"),
                },
                _ => Find::Unknown,
            },
            None => Find::Unknown,
        };
        KeySpec { flags, begin, find }
    }

    /// The argument positions of this spec's keys (Redis's
    /// `getKeysUsingKeySpecs` for one spec); empty when they cannot be
    /// found (a missing keyword, a bad key count).
    pub fn positions(&self, argv: &[bytes::Bytes]) -> Vec<usize> {
        let argc = argv.len() as i64;
        let first = match &self.begin {
            Begin::Index(i) => *i,
            Begin::Keyword { keyword, startfrom } => {
                let (start, end, dir): (i64, i64, i64) = if *startfrom >= 0 {
                    (*startfrom, argc, 1)
                } else {
                    (argc + startfrom, 0, -1)
                };
                let mut i = start;
                let mut found = None;
                while (dir > 0 && i < end) || (dir < 0 && i > end) {
                    if i >= 1 && i < argc && argv[i as usize].eq_ignore_ascii_case(keyword) {
                        found = Some(i + 1);
                        break;
                    }
                    i += dir;
                }
                match found {
                    Some(f) => f,
                    None => return vec![],
                }
            }
            Begin::Unknown => return vec![],
        };
        if first <= 0 || first >= argc {
            return vec![];
        }
        let (first, last, step) = match &self.find {
            Find::Range {
                lastkey,
                step,
                limit,
            } => {
                let last = if *lastkey >= 0 {
                    first + lastkey
                } else if *limit <= 1 {
                    argc + lastkey
                } else {
                    first + ((argc - first) / limit + lastkey)
                };
                (first, last, (*step).max(1))
            }
            Find::Keynum {
                idx,
                first: fk,
                step,
            } => {
                let Some(n) = argv
                    .get((first + idx) as usize)
                    .and_then(|a| crate::resp::parse_i64(a))
                else {
                    return vec![];
                };
                if n <= 0 {
                    return vec![];
                }
                let f = first + fk;
                let step = (*step).max(1);
                // A huge key count is clamped by `argc` below; no overflow.
                (f, f.saturating_add((n - 1).saturating_mul(step)), step)
            }
            Find::Unknown => return vec![],
        };
        let mut out = vec![];
        let mut i = first;
        while i <= last && i < argc {
            out.push(i as usize);
            i = i.saturating_add(step);
        }
        out
    }
}

/// The whole table, sorted by name.
pub struct Table {
    pub commands: Vec<Command>,
    /// Indices into `commands` by (first letter, name length): lookup runs
    /// once per command, and scanning one tiny bucket is cheaper than a
    /// case-insensitive binary search over the whole table.
    by_shape: Vec<Vec<u16>>,
}

/// Names up to this length are indexed by shape.
const SHAPE_MAX_LEN: usize = 32;

fn shape(name: &[u8]) -> Option<usize> {
    let first = name.first()?.to_ascii_lowercase();
    (first.is_ascii_lowercase() && name.len() < SHAPE_MAX_LEN)
        .then(|| (first - b'a') as usize * SHAPE_MAX_LEN + name.len())
}

impl Table {
    pub fn get() -> &'static Table {
        static TABLE: OnceLock<Table> = OnceLock::new();
        TABLE.get_or_init(Table::load)
    }

    pub fn lookup(&self, name: &[u8]) -> Option<&Command> {
        if let Some(bucket) = shape(name).and_then(|i| self.by_shape.get(i)) {
            return bucket
                .iter()
                .map(|&i| &self.commands[i as usize])
                .find(|c| c.name.as_bytes().eq_ignore_ascii_case(name));
        }
        self.commands
            .binary_search_by(|c| cmp_ignore_case(c.name.as_bytes(), name))
            .ok()
            .map(|i| &self.commands[i])
    }

    fn load() -> Table {
        let (info, _) = Frame::parse_resp3(include_bytes!("../data/commands.resp3"))
            .expect("embedded command table parses");
        let (docs, _) = Frame::parse_resp3(include_bytes!("../data/docs.resp3"))
            .expect("embedded command docs parse");
        let Frame::Array(entries) = info else {
            panic!("embedded command table is an array")
        };
        let docs = match docs {
            Frame::Map(kv) => kv,
            _ => panic!("embedded docs are a map"),
        };
        let mut commands: Vec<Command> = entries
            .iter()
            .filter_map(|e| build(e, docs_for(&docs, e)))
            .collect();
        commands.sort_by(|a, b| a.name.cmp(&b.name));
        let mut by_shape = vec![Vec::new(); 26 * SHAPE_MAX_LEN];
        for (i, c) in commands.iter().enumerate() {
            if let Some(slot) = shape(c.name.as_bytes()) {
                by_shape[slot].push(i as u16);
            }
        }
        Table { commands, by_shape }
    }
}

fn docs_for<'a>(docs: &'a [Frame], entry: &Frame) -> Option<&'a Frame> {
    let name = match entry {
        Frame::Array(v) => v.first()?.as_bytes()?,
        _ => return None,
    };
    docs.chunks(2)
        .find(|kv| kv[0].as_bytes() == Some(name))
        .map(|kv| &kv[1])
}

/// Builds a table entry from Redis's COMMAND INFO reply; `None` if neither
/// the command nor any subcommand has a handler.
fn build(entry: &Frame, docs: Option<&Frame>) -> Option<Command> {
    let Frame::Array(f) = entry else { return None };
    let name = String::from_utf8(f.first()?.as_bytes()?.to_vec()).ok()?;
    let int = |i: usize| match f.get(i) {
        Some(Frame::Int(n)) => *n as i32,
        _ => 0,
    };
    let mut flag_bits = 0;
    if let Some(Frame::Set(fl)) = f.get(2) {
        for x in fl {
            flag_bits |= flags::from_name(x.as_bytes().unwrap_or_default());
        }
    }
    let mut subcommands = vec![];
    if let Some(Frame::Array(subs)) = f.get(9) {
        for s in subs {
            let sub_docs = docs_for_sub(docs, s);
            if let Some(c) = build(s, sub_docs) {
                subcommands.push(c);
            }
        }
    }
    subcommands.sort_by(|a, b| a.name.cmp(&b.name));
    let handler = handler_for(&name);
    if handler.is_none() && subcommands.is_empty() {
        return None;
    }
    let mut info = f.clone();
    // Keep only implemented subcommands, in Redis's container type.
    match info.get_mut(9) {
        Some(Frame::Array(v)) | Some(Frame::Set(v)) if !v.is_empty() => {
            *v = subcommands.iter().map(|c| c.info.clone()).collect();
        }
        _ => {}
    }
    let docs = docs.map(|d| filter_doc_subcommands(d, &subcommands));
    Some(Command {
        name,
        arity: int(1),
        flags: flag_bits,
        first_key: int(3),
        last_key: int(4),
        key_step: int(5),
        key_specs: match f.get(8) {
            Some(Frame::Array(specs)) | Some(Frame::Set(specs)) => {
                specs.iter().map(KeySpec::parse).collect()
            }
            _ => vec![],
        },
        handler,
        subcommands,
        info: Frame::Array(info),
        docs,
    })
}

fn docs_for_sub<'a>(parent: Option<&'a Frame>, sub: &Frame) -> Option<&'a Frame> {
    let Some(Frame::Map(kv)) = parent else {
        return None;
    };
    let subs = kv
        .chunks(2)
        .find(|p| p[0].as_bytes() == Some(b"subcommands"))?;
    let Frame::Map(skv) = &subs[1] else {
        return None;
    };
    docs_for(skv, sub)
}

fn filter_doc_subcommands(doc: &Frame, implemented: &[Command]) -> Frame {
    let Frame::Map(kv) = doc else {
        return doc.clone();
    };
    let mut out = vec![];
    for p in kv.chunks(2) {
        if p[0].as_bytes() == Some(b"subcommands") {
            if implemented.is_empty() {
                continue;
            }
            let mut subs = vec![];
            for c in implemented {
                if let Some(d) = &c.docs {
                    subs.push(Frame::Bulk(c.name.clone().into_bytes()));
                    subs.push(d.clone());
                }
            }
            out.push(p[0].clone());
            out.push(Frame::Map(subs));
        } else {
            out.extend_from_slice(p);
        }
    }
    Frame::Map(out)
}

/// Compares `a` (lowercase) with `b` (any case) as if `b` were lowercase.
fn cmp_ignore_case(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let n = a.len().min(b.len());
    for i in 0..n {
        let (x, y) = (a[i], b[i].to_ascii_lowercase());
        if x != y {
            return x.cmp(&y);
        }
    }
    a.len().cmp(&b.len())
}

/// The HELP reply of a container command (`CONFIG HELP`...), as Redis 7.0
/// words it.
pub fn help_text(container: &str) -> Option<&'static Frame> {
    static HELP: OnceLock<Vec<Frame>> = OnceLock::new();
    let kv = HELP.get_or_init(
        || match Frame::parse_resp3(include_bytes!("../data/help.resp3")) {
            Some((Frame::Map(kv), _)) => kv,
            _ => panic!("embedded help texts are a map"),
        },
    );
    kv.chunks(2)
        .find(|p| p[0].as_bytes() == Some(container.as_bytes()))
        .map(|p| &p[1])
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn lookup_finds_every_command_in_any_case_and_nothing_else() {
        let t = Table::get();
        for c in &t.commands {
            let lower = c.name.as_bytes().to_vec();
            let upper = c.name.to_ascii_uppercase().into_bytes();
            let mixed: Vec<u8> = lower
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if i % 2 == 0 {
                        b.to_ascii_uppercase()
                    } else {
                        *b
                    }
                })
                .collect();
            for name in [lower.clone(), upper, mixed] {
                let found = t.lookup(&name).map(|f| f.name.as_str());
                assert_eq!(
                    found,
                    Some(c.name.as_str()),
                    "{:?}",
                    String::from_utf8_lossy(&name)
                );
            }
            // A name one byte longer or shorter is another command or none.
            let mut longer = lower.clone();
            longer.push(b'x');
            let shorter = &lower[..lower.len() - 1];
            for other in [&longer[..], shorter] {
                if let Some(f) = t.lookup(other) {
                    assert_eq!(f.name.as_bytes(), other);
                }
            }
        }
        for miss in [
            &b""[..],
            b"x",
            b"getx",
            b"1get",
            b"_get",
            &[b'g'; 40],
            b"g\xffet",
        ] {
            assert!(
                t.lookup(miss).is_none(),
                "{:?}",
                String::from_utf8_lossy(miss)
            );
        }
    }
}
