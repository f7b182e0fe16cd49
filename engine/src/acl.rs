//! Access control lists: users, their rules and selectors, and the
//! permission check that dispatch runs before every command (Redis 7.0's
//! `acl.c`).
//!
//! A user has a root selector and any number of extra selectors; a command
//! is allowed when one selector allows the command, all its keys and all its
//! channels. Rules are applied to a copy of the user and committed only if
//! every one parses, as `ACL SETUSER` does.
//!
//! The command universe is Redis's full command table (the embedded
//! `commands.resp3`), not just what Cinnabar implements, so `+@string` or
//! `-xadd` mean what they mean in Redis and the category bookkeeping behind
//! `ACL LIST` comes out the same. The order of single-command rules in
//! descriptions follows the table (Redis follows its randomly seeded dict).

use crate::command::{key_flags, Command};
use crate::resp::Frame;
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::sync::OnceLock;

/// ACL categories, in Redis's order (`ACL CAT`).
pub const CATEGORIES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// The bit of a category name (case-insensitive), 0 if unknown.
pub fn category_bit(name: &[u8]) -> u32 {
    CATEGORIES
        .iter()
        .position(|c| c.as_bytes().eq_ignore_ascii_case(name))
        .map_or(0, |i| 1 << i)
}

/// One command (or subcommand) as ACLs see it.
pub struct AclCommand {
    /// Lowercase full name: `get`, `config|get`.
    pub name: String,
    pub categories: u32,
    pub parent: Option<usize>,
    pub subs: Vec<usize>,
}

/// Every Redis command, parents before their subcommands, sorted by name
/// within each level; an index is a command's ACL id.
pub struct Universe {
    pub cmds: Vec<AclCommand>,
    /// (name, id), sorted by name, for lookups.
    by_name: Vec<(String, usize)>,
}

impl Universe {
    pub fn get() -> &'static Universe {
        static U: OnceLock<Universe> = OnceLock::new();
        U.get_or_init(Universe::load)
    }

    fn load() -> Universe {
        let entries = match Frame::parse_resp3(include_bytes!("../data/commands.resp3")) {
            Some((Frame::Array(v), _)) => v,
            _ => panic!("embedded command table is an array"),
        };
        let mut tops: Vec<&Frame> = entries.iter().collect();
        tops.sort_by_key(|e| entry_name(e));
        let mut u = Universe {
            cmds: Vec::new(),
            by_name: Vec::new(),
        };
        for e in tops {
            let id = u.push(e, None);
            if let Frame::Array(f) = e {
                if let Some(Frame::Array(subs)) | Some(Frame::Set(subs)) = f.get(9) {
                    let mut subs: Vec<&Frame> = subs.iter().collect();
                    subs.sort_by_key(|e| entry_name(e));
                    for s in subs {
                        let sid = u.push(s, Some(id));
                        u.cmds[id].subs.push(sid);
                    }
                }
            }
        }
        u.by_name = u
            .cmds
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        u.by_name.sort();
        u
    }

    fn push(&mut self, e: &Frame, parent: Option<usize>) -> usize {
        let mut categories = 0;
        if let Frame::Array(f) = e {
            if let Some(Frame::Set(cats)) | Some(Frame::Array(cats)) = f.get(6) {
                for c in cats {
                    let name = c.as_bytes().unwrap_or_default();
                    categories |= category_bit(name.strip_prefix(b"@").unwrap_or(name));
                }
            }
        }
        self.cmds.push(AclCommand {
            name: entry_name(e),
            categories,
            parent,
            subs: Vec::new(),
        });
        self.cmds.len() - 1
    }

    /// A command's id by full name (`get`, `config|get`), any case.
    pub fn lookup(&self, name: &[u8]) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        self.by_name
            .binary_search_by(|(n, _)| n.as_bytes().cmp(&lower))
            .ok()
            .map(|i| self.by_name[i].1)
    }

    fn len(&self) -> usize {
        self.cmds.len()
    }
}

fn entry_name(e: &Frame) -> String {
    match e {
        Frame::Array(f) => f
            .first()
            .and_then(Frame::as_bytes)
            .map(|b| String::from_utf8_lossy(b).to_ascii_lowercase())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// A key pattern and what it allows (`~p` is both, `%R~p` read only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    pub pattern: Vec<u8>,
    pub read: bool,
    pub write: bool,
}

impl KeyPattern {
    fn describe(&self, out: &mut Vec<u8>) {
        if self.read && self.write {
            out.push(b'~');
        } else {
            out.push(b'%');
            if self.read {
                out.push(b'R');
            }
            if self.write {
                out.push(b'W');
            }
            out.push(b'~');
        }
        out.extend_from_slice(&self.pattern);
    }
}

/// One set of permissions: commands, key patterns, channel patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    all_keys: bool,
    all_channels: bool,
    /// Every command bit is set (cleared as soon as one is cleared).
    all_commands: bool,
    /// The last allcommands/nocommands was allcommands: commands added to
    /// Redis later would be allowed (Redis's reserved command bit). Decides
    /// whether a description starts with `+@all` or `-@all`.
    future_commands: bool,
    keys: Vec<KeyPattern>,
    channels: Vec<Vec<u8>>,
    allowed: Vec<u64>,
    /// Allowed first arguments of otherwise denied commands (`+select|0`).
    first_args: BTreeMap<usize, Vec<Vec<u8>>>,
}

/// Why a rule could not be applied; the text is Redis's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleError {
    KeysAfterAll,
    ChannelsAfterAll,
    Unknown,
    Syntax,
    FirstArgOfSub,
    BadHash,
    NoSuchPassword,
}

impl RuleError {
    pub fn message(self) -> &'static str {
        match self {
            RuleError::KeysAfterAll => "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
            RuleError::ChannelsAfterAll => "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
            RuleError::Unknown => "Unknown command or category name in ACL",
            RuleError::Syntax => "Syntax error",
            RuleError::FirstArgOfSub => "Allowing first-arg of a subcommand is not supported",
            RuleError::BadHash => "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
            RuleError::NoSuchPassword => "The password you are trying to remove from the user does not exist",
        }
    }
}

impl Selector {
    /// An empty selector: no keys, no commands; channels per
    /// `acl-pubsub-default`.
    pub fn new(all_channels: bool) -> Selector {
        Selector {
            all_keys: false,
            all_channels,
            all_commands: false,
            future_commands: false,
            keys: Vec::new(),
            channels: Vec::new(),
            allowed: vec![0; Universe::get().len().div_ceil(64)],
            first_args: BTreeMap::new(),
        }
    }

    fn bit(&self, id: usize) -> bool {
        self.allowed
            .get(id / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        if let Some(w) = self.allowed.get_mut(id / 64) {
            if on {
                *w |= 1 << (id % 64);
            } else {
                *w &= !(1 << (id % 64));
                self.all_commands = false;
            }
        }
    }

    /// `+cmd` / `-cmd`: the command and all its subcommands.
    fn change_perm(&mut self, id: usize, allow: bool) {
        let u = Universe::get();
        self.set_bit(id, allow);
        self.first_args.remove(&id);
        for &s in &u.cmds[id].subs {
            self.set_bit(s, allow);
        }
    }

    fn change_category(&mut self, cat: u32, allow: bool) {
        let u = Universe::get();
        for id in 0..u.len() {
            let c = &u.cmds[id];
            if c.categories & cat == 0 {
                continue;
            }
            if c.parent.is_none() {
                self.change_perm(id, allow);
            } else {
                self.set_bit(id, allow);
            }
        }
    }

    fn set_all(&mut self, on: bool) {
        let fill = if on { u64::MAX } else { 0 };
        self.allowed.iter_mut().for_each(|w| *w = fill);
        self.all_commands = on;
        self.future_commands = on;
        self.first_args.clear();
    }

    /// Applies one selector rule (Redis's `ACLSetSelector`).
    pub fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let is = |w: &str| op.eq_ignore_ascii_case(w.as_bytes());
        if is("allkeys") || op == b"~*" {
            self.all_keys = true;
            self.keys.clear();
        } else if is("resetkeys") {
            self.all_keys = false;
            self.keys.clear();
        } else if is("allchannels") || op == b"&*" {
            self.all_channels = true;
            self.channels.clear();
        } else if is("resetchannels") {
            self.all_channels = false;
            self.channels.clear();
        } else if is("allcommands") || is("+@all") {
            self.set_all(true);
        } else if is("nocommands") || is("-@all") {
            self.set_all(false);
        } else if op[0] == b'~' || op[0] == b'%' {
            if self.all_keys {
                return Err(RuleError::KeysAfterAll);
            }
            let (mut read, mut write) = (false, false);
            let mut offset = 1;
            if op[0] == b'%' {
                while offset < op.len() {
                    match op[offset] {
                        b'R' | b'r' if !read => read = true,
                        b'W' | b'w' if !write => write = true,
                        b'~' => {
                            offset += 1;
                            break;
                        }
                        _ => return Err(RuleError::Syntax),
                    }
                    offset += 1;
                }
                if !read && !write {
                    return Err(RuleError::Syntax);
                }
            } else {
                (read, write) = (true, true);
            }
            let pattern = op[offset.min(op.len())..].to_vec();
            match self.keys.iter_mut().find(|k| k.pattern == pattern) {
                Some(k) => {
                    k.read |= read;
                    k.write |= write;
                }
                None => self.keys.push(KeyPattern {
                    pattern,
                    read,
                    write,
                }),
            }
        } else if op[0] == b'&' {
            if self.all_channels {
                return Err(RuleError::ChannelsAfterAll);
            }
            let p = op[1..].to_vec();
            if !self.channels.contains(&p) {
                self.channels.push(p);
            }
        } else if op.len() >= 2 && (op[0] == b'+' || op[0] == b'-') && op[1] == b'@' {
            let cat = category_bit(&op[2..]);
            if cat == 0 {
                return Err(RuleError::Unknown);
            }
            self.change_category(cat, op[0] == b'+');
        } else if op[0] == b'+' {
            let u = Universe::get();
            let name = &op[1..];
            match name.iter().rposition(|&b| b == b'|') {
                None => {
                    let id = u.lookup(name).ok_or(RuleError::Unknown)?;
                    self.change_perm(id, true);
                }
                Some(bar) => {
                    let id = u.lookup(&name[..bar]).ok_or(RuleError::Unknown)?;
                    if u.cmds[id].parent.is_some() {
                        return Err(RuleError::FirstArgOfSub);
                    }
                    let sub = &name[bar + 1..];
                    if sub.is_empty() {
                        return Err(RuleError::Syntax);
                    }
                    if !u.cmds[id].subs.is_empty() {
                        let sid = u.lookup(name).ok_or(RuleError::Unknown)?;
                        self.change_perm(sid, true);
                    } else {
                        // Redis warns this is deprecated (allowing SELECT 0
                        // only), but still supports it.
                        let list = self.first_args.entry(id).or_default();
                        if !list.iter().any(|a| a.eq_ignore_ascii_case(sub)) {
                            list.push(sub.to_ascii_lowercase());
                        }
                    }
                }
            }
        } else if op[0] == b'-' {
            let id = Universe::get().lookup(&op[1..]).ok_or(RuleError::Unknown)?;
            self.change_perm(id, false);
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    /// Redis's `ACLDescribeSelectorCommandRules`: starts from `+@all` or
    /// `-@all`, then greedily adds (or removes) the category that covers
    /// the most remaining commands with the fewest exceptions, then lists
    /// the single commands that still differ.
    pub fn describe_commands(&self) -> String {
        let u = Universe::get();
        let additive = !self.future_commands;
        let mut fake = Selector::new(false);
        let mut rules = String::new();
        if additive {
            rules.push_str("-@all ");
        } else {
            fake.set_all(true);
            rules.push_str("+@all ");
        }
        // `temp` starts as this selector's bitmap; each chosen category is
        // undone in it, so later counts only see what is left to explain.
        let mut temp = self.clone();
        let mut applied = [false; CATEGORIES.len()];
        loop {
            let mut best = None;
            let (mut mindiff, mut maxsame) = (usize::MAX, 0);
            for (j, done) in applied.iter().enumerate() {
                if *done {
                    continue;
                }
                let cat = 1 << j;
                let (mut on, mut off) = (0, 0);
                for (id, c) in u.cmds.iter().enumerate() {
                    if c.categories & cat != 0 {
                        if temp.bit(id) {
                            on += 1;
                        } else {
                            off += 1;
                        }
                    }
                }
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                    best = Some(j);
                    mindiff = diff;
                    maxsame = same;
                }
            }
            let Some(j) = best else { break };
            fake.change_category(1 << j, additive);
            temp.change_category(1 << j, !additive);
            rules.push(if additive { '+' } else { '-' });
            rules.push('@');
            rules.push_str(CATEGORIES[j]);
            rules.push(' ');
            applied[j] = true;
        }
        for (id, c) in u.cmds.iter().enumerate() {
            if c.parent.is_some() {
                continue;
            }
            for &cid in std::iter::once(&id).chain(c.subs.iter()) {
                let (mine, theirs) = (self.bit(cid), fake.bit(cid));
                if mine != theirs {
                    rules.push(if mine { '+' } else { '-' });
                    rules.push_str(&u.cmds[cid].name);
                    rules.push(' ');
                    if cid == id {
                        fake.change_perm(cid, mine);
                    } else {
                        fake.set_bit(cid, mine);
                    }
                }
            }
            if !self.bit(id) {
                for a in self.first_args.get(&id).into_iter().flatten() {
                    rules.push('+');
                    rules.push_str(&c.name);
                    rules.push('|');
                    rules.push_str(&String::from_utf8_lossy(a));
                    rules.push(' ');
                }
            }
        }
        rules.pop();
        rules
    }

    /// The key patterns as ACL GETUSER shows them.
    pub fn describe_keys(&self) -> Vec<u8> {
        if self.all_keys {
            return b"~*".to_vec();
        }
        let mut out = Vec::new();
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            k.describe(&mut out);
        }
        out
    }

    /// The channel patterns as ACL GETUSER shows them.
    pub fn describe_channels(&self) -> Vec<u8> {
        if self.all_channels {
            return b"&*".to_vec();
        }
        let mut out = Vec::new();
        for (i, c) in self.channels.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.push(b'&');
            out.extend_from_slice(c);
        }
        out
    }

    /// The whole selector as ACL LIST shows it (`ACLDescribeSelector`).
    fn describe(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.all_keys {
            out.extend_from_slice(b"~* ");
        } else {
            for k in &self.keys {
                k.describe(&mut out);
                out.push(b' ');
            }
        }
        if self.all_channels {
            out.extend_from_slice(b"&* ");
        } else {
            out.extend_from_slice(b"resetchannels ");
            for c in &self.channels {
                out.push(b'&');
                out.extend_from_slice(c);
                out.push(b' ');
            }
        }
        out.extend_from_slice(self.describe_commands().as_bytes());
        out
    }

    /// `ACLSelectorCheckCmd`: Ok, or why not (with the offending argument).
    fn check(&self, id: usize, cmd: &Command, argv: &[Bytes]) -> Result<(), Denied> {
        use crate::command::flags;
        if !self.all_commands && !cmd.has(flags::NO_AUTH) && !self.bit(id) {
            // Maybe allowed with this first argument only.
            let idx = if cmd.name.contains('|') { 2 } else { 1 };
            let ok = argv.get(idx).is_some_and(|a| {
                self.first_args
                    .get(&id)
                    .is_some_and(|l| l.iter().any(|x| x.eq_ignore_ascii_case(a)))
            });
            if !ok {
                return Err(Denied::Command);
            }
        }
        if !self.all_keys {
            for spec in cmd
                .key_specs
                .iter()
                .filter(|s| s.flags & key_flags::NOT_KEY == 0)
            {
                // Key specs without access/insert/delete/update flags
                // (EXISTS, TYPE) need either permission.
                let (need_read, need_write) = variable_key_needs(cmd, argv).unwrap_or((
                    spec.flags & key_flags::ACCESS != 0,
                    spec.flags & (key_flags::INSERT | key_flags::DELETE | key_flags::UPDATE) != 0,
                ));
                for pos in spec.positions(argv) {
                    let key = &argv[pos];
                    let ok = self.keys.iter().any(|k| {
                        (k.read || !need_read)
                            && (k.write || !need_write)
                            && crate::glob::matches(&k.pattern, key, false)
                    });
                    if !ok {
                        return Err(Denied::Key(pos));
                    }
                }
            }
        }
        if !self.all_channels {
            for (pos, is_pattern) in channel_args(cmd, argv) {
                let ch = &argv[pos];
                let ok = self.channels.iter().any(|p| {
                    if is_pattern {
                        p.as_slice() == ch.as_ref()
                    } else {
                        crate::glob::matches(p, ch, false)
                    }
                });
                if !ok {
                    return Err(Denied::Channel(pos));
                }
            }
        }
        Ok(())
    }
}

/// Commands whose key spec has VARIABLE_FLAGS: what their key really
/// needs (read, write) given the arguments (Redis's `setGetKeys` and
/// `bitfieldGetKeys`).
fn variable_key_needs(cmd: &Command, argv: &[Bytes]) -> Option<(bool, bool)> {
    match cmd.name.as_str() {
        // SET ... GET reads the old value; plain SET only overwrites.
        "set" => Some((
            argv[3.min(argv.len())..]
                .iter()
                .any(|a| a.eq_ignore_ascii_case(b"get")),
            true,
        )),
        // BITFIELD with only GET operations is a read.
        "bitfield" => {
            let writes = argv
                .iter()
                .skip(2)
                .any(|a| a.eq_ignore_ascii_case(b"set") || a.eq_ignore_ascii_case(b"incrby"));
            Some((true, writes))
        }
        _ => None,
    }
}

/// The channels a command publishes or subscribes to, with whether they
/// are patterns (Redis's `getChannelsFromCommand`; unsubscribing is always
/// allowed).
fn channel_args(cmd: &Command, argv: &[Bytes]) -> Vec<(usize, bool)> {
    match cmd.name.as_str() {
        "publish" | "spublish" => vec![(1, false)],
        "subscribe" | "ssubscribe" => (1..argv.len()).map(|i| (i, false)).collect(),
        "psubscribe" => (1..argv.len()).map(|i| (i, true)).collect(),
        _ => Vec::new(),
    }
}

/// Why a command was refused, ordered as Redis ranks them when several
/// selectors fail (a key or channel beats "command").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Command,
    Key(usize),
    Channel(usize),
}

impl Denied {
    fn rank(self) -> (u8, usize) {
        match self {
            Denied::Command => (1, 0),
            Denied::Key(i) => (2, i),
            Denied::Channel(i) => (4, i),
        }
    }

    /// The error message without the NOPERM prefix, as a top-level command
    /// gets it.
    pub fn toplevel_message(self, cmd: &Command) -> String {
        match self {
            Denied::Command => format!(
                "NOPERM this user has no permissions to run the '{}' command",
                cmd.name
            ),
            Denied::Key(_) => {
                "NOPERM this user has no permissions to access one of the keys used as arguments"
                    .into()
            }
            Denied::Channel(_) => "NOPERM this user has no permissions to access one of the channels used as arguments".into(),
        }
    }

    /// ACL DRYRUN's wording (Redis's verbose `getAclErrorMessage`).
    pub fn verbose_message(self, cmd: &Command, argv: &[Bytes]) -> Vec<u8> {
        let arg = |i: usize| argv.get(i).map(|a| a.to_vec()).unwrap_or_default();
        match self {
            Denied::Command => format!(
                "This user has no permissions to run the '{}' command",
                cmd.name
            )
            .into_bytes(),
            Denied::Key(i) => {
                let mut m = b"This user has no permissions to access the '".to_vec();
                m.extend_from_slice(&arg(i));
                m.extend_from_slice(b"' key");
                m
            }
            Denied::Channel(i) => {
                let mut m = b"This user has no permissions to access the '".to_vec();
                m.extend_from_slice(&arg(i));
                m.extend_from_slice(b"' channel");
                m
            }
        }
    }
}

/// One user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: Bytes,
    pub enabled: bool,
    pub nopass: bool,
    /// `Some(true)`: sanitize-payload, `Some(false)`: skip-sanitize-payload.
    sanitize: Option<bool>,
    /// SHA-256 digests in lowercase hex, in the order added.
    pub passwords: Vec<String>,
    /// The root selector first.
    pub selectors: Vec<Selector>,
}

/// SHA-256 in lowercase hex, as Redis stores passwords.
pub fn hash_password(p: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(p);
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn valid_hash(h: &[u8]) -> bool {
    h.len() == 64 && h.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Usernames cannot contain spaces or control characters (Redis's
/// `ACLStringHasSpaces`: isspace or NUL).
pub fn valid_username(name: &[u8]) -> bool {
    !name
        .iter()
        .any(|&b| b == 0 || b == b' ' || (b'\t'..=b'\r').contains(&b))
}

impl User {
    /// A new user: off, no passwords, no permissions.
    pub fn new(name: &[u8], all_channels: bool) -> User {
        User {
            name: Bytes::copy_from_slice(name),
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            selectors: vec![Selector::new(all_channels)],
        }
    }

    /// Redis's default user: `on nopass ~* &* +@all`.
    pub fn default_user() -> User {
        let mut u = User::new(b"default", false);
        for op in ["+@all", "~*", "&*", "on", "nopass"] {
            let _ = u.apply(op.as_bytes(), false);
        }
        u
    }

    /// Applies one rule (Redis's `ACLSetUser`). `all_channels` is
    /// `acl-pubsub-default allchannels`, used by `reset` and new selectors.
    pub fn apply(&mut self, op: &[u8], all_channels: bool) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        let is = |w: &str| op.eq_ignore_ascii_case(w.as_bytes());
        if is("on") {
            self.enabled = true;
        } else if is("off") {
            self.enabled = false;
        } else if is("skip-sanitize-payload") {
            self.sanitize = Some(false);
        } else if is("sanitize-payload") {
            self.sanitize = Some(true);
        } else if is("nopass") {
            self.nopass = true;
            self.passwords.clear();
        } else if is("resetpass") {
            self.nopass = false;
            self.passwords.clear();
        } else if op[0] == b'>' || op[0] == b'#' {
            let h = if op[0] == b'>' {
                hash_password(&op[1..])
            } else {
                if !valid_hash(&op[1..]) {
                    return Err(RuleError::BadHash);
                }
                String::from_utf8_lossy(&op[1..]).into_owned()
            };
            if !self.passwords.contains(&h) {
                self.passwords.push(h);
            }
            self.nopass = false;
        } else if op[0] == b'<' || op[0] == b'!' {
            let h = if op[0] == b'<' {
                hash_password(&op[1..])
            } else {
                if !valid_hash(&op[1..]) {
                    return Err(RuleError::BadHash);
                }
                String::from_utf8_lossy(&op[1..]).into_owned()
            };
            match self.passwords.iter().position(|p| *p == h) {
                Some(i) => {
                    self.passwords.remove(i);
                }
                None => return Err(RuleError::NoSuchPassword),
            }
        } else if op[0] == b'(' && op[op.len() - 1] == b')' && op.len() >= 2 {
            let mut s = Selector::new(all_channels);
            let inner = &op[1..op.len() - 1];
            for word in inner.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
                s.apply(word)?;
            }
            self.selectors.push(s);
        } else if is("clearselectors") {
            self.selectors.truncate(1);
        } else if is("reset") {
            self.nopass = false;
            self.passwords.clear();
            let root = &mut self.selectors[0];
            root.all_keys = false;
            root.keys.clear();
            root.all_channels = all_channels;
            root.channels.clear();
            self.enabled = false;
            self.sanitize = Some(true);
            self.selectors.truncate(1);
            self.selectors[0].set_all(false);
        } else {
            self.selectors[0].apply(op)?;
        }
        Ok(())
    }

    /// The flag words ACL GETUSER and ACL LIST show, in Redis's order.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize {
            Some(false) => f.push("skip-sanitize-payload"),
            Some(true) => f.push("sanitize-payload"),
            None => {}
        }
        f
    }

    /// ACL LIST's description (without `user <name> `).
    pub fn describe(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for f in self.flags() {
            out.extend_from_slice(f.as_bytes());
            out.push(b' ');
        }
        for p in &self.passwords {
            out.push(b'#');
            out.extend_from_slice(p.as_bytes());
            out.push(b' ');
        }
        for (i, s) in self.selectors.iter().enumerate() {
            if i == 0 {
                out.extend_from_slice(&s.describe());
            } else {
                out.extend_from_slice(b" (");
                out.extend_from_slice(&s.describe());
                out.push(b')');
            }
        }
        out
    }

    /// Whether `password` opens this user (enabled, nopass or a match).
    pub fn check_password(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let h = hash_password(password);
        self.passwords.contains(&h)
    }

    /// `ACLCheckAllUserCommandPerm`: allowed if any selector allows it;
    /// otherwise the most relevant refusal.
    pub fn check(&self, cmd: &Command, argv: &[Bytes]) -> Result<(), Denied> {
        let Some(id) = Universe::get().lookup(cmd.name.as_bytes()) else {
            return Err(Denied::Command);
        };
        let mut worst = Denied::Command;
        for s in &self.selectors {
            match s.check(id, cmd, argv) {
                Ok(()) => return Ok(()),
                Err(d) => {
                    if d.rank() > worst.rank() {
                        worst = d;
                    }
                }
            }
        }
        Err(worst)
    }

    /// True if this user may run anything on any key and channel: the
    /// common case skips the per-command work.
    fn unrestricted(&self) -> bool {
        let r = &self.selectors[0];
        r.all_commands && r.all_keys && r.all_channels
    }

    /// Every channel pattern of every selector, or `None` if one selector
    /// allows all channels.
    fn channel_patterns(&self) -> Option<Vec<&[u8]>> {
        let mut v = Vec::new();
        for s in &self.selectors {
            if s.all_channels {
                return None;
            }
            v.extend(s.channels.iter().map(|c| c.as_slice()));
        }
        Some(v)
    }

    /// Whether a subscriber of this user may keep its subscriptions after
    /// its channel rules changed from `old` (Redis's
    /// `ACLKillPubsubClientsIfNeeded`): false means disconnect it.
    pub fn keeps_subscriptions(
        &self,
        old: &User,
        channels: &[Bytes],
        patterns: &[Bytes],
        shard: &[Bytes],
    ) -> bool {
        let Some(upcoming) = self.channel_patterns() else {
            return true;
        };
        // Nothing was revoked: every old pattern is still there.
        if let Some(before) = old.channel_patterns() {
            if before.iter().all(|p| upcoming.contains(p)) {
                return true;
            }
        }
        let pats_ok = patterns
            .iter()
            .all(|p| upcoming.iter().any(|u| *u == p.as_ref()));
        let chans_ok = channels
            .iter()
            .chain(shard.iter())
            .all(|c| upcoming.iter().any(|u| crate::glob::matches(u, c, false)));
        pats_ok && chans_ok
    }
}

/// Where a refused command came from (ACL LOG's `context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogContext {
    Toplevel,
    Multi,
    Lua,
}

/// ACL LOG's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogReason {
    Command,
    Key,
    Channel,
    Auth,
}

/// One ACL LOG entry.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub count: u64,
    pub reason: LogReason,
    pub context: LogContext,
    pub object: Bytes,
    pub username: Bytes,
    /// When it last happened, unix ms.
    pub ctime_ms: i64,
    pub client_info: String,
}

/// Entries for the same event within this window are merged (Redis's
/// ACL_LOG_GROUPING_MAX_TIME_DELTA).
const LOG_GROUPING_MS: i64 = 60_000;

/// The users and the ACL LOG.
#[derive(Debug, Clone)]
pub struct Acl {
    /// By name; bytewise order is Redis's (a radix tree).
    pub users: BTreeMap<Bytes, User>,
    /// Newest first.
    pub log: VecDeque<LogEntry>,
}

impl Acl {
    /// The default user alone, with `requirepass` as its password.
    pub fn new(requirepass: Option<&[u8]>) -> Acl {
        let mut acl = Acl {
            users: BTreeMap::new(),
            log: VecDeque::new(),
        };
        let mut d = User::default_user();
        set_default_password(&mut d, requirepass);
        acl.users.insert(d.name.clone(), d);
        acl
    }

    pub fn default_user(&self) -> Option<&User> {
        self.users.get(&b"default"[..])
    }

    /// Whether clients must authenticate (Redis's `authRequired` without
    /// the client part): the default user has a password or is off.
    pub fn auth_required(&self) -> bool {
        self.default_user().is_none_or(|d| !d.nopass || !d.enabled)
    }

    /// Checks a command for the client's user. `None` (internal clients:
    /// AOF loading) may run anything.
    pub fn check(&self, user: Option<&Bytes>, cmd: &Command, argv: &[Bytes]) -> Result<(), Denied> {
        let Some(name) = user else { return Ok(()) };
        match self.users.get(name) {
            Some(u) if u.unrestricted() => Ok(()),
            Some(u) => u.check(cmd, argv),
            None => Err(Denied::Command),
        }
    }

    /// Applies `user` config lines / ACL file lines (`name rule...`): a
    /// user is created or, for `default`, reset first.
    pub fn load_user_line(&mut self, words: &[Vec<u8>], all_channels: bool) -> Result<(), String> {
        let Some((name, rules)) = words.split_first() else {
            return Err("empty user line".into());
        };
        if !valid_username(name) {
            return Err(format!(
                "username '{}' contains invalid characters",
                String::from_utf8_lossy(name)
            ));
        }
        let mut u = User::new(name, all_channels);
        let rules = merge_selector_args(rules)
            .map_err(|_| "Unmatched parenthesis in selector definition.".to_string())?;
        for r in &rules {
            u.apply(r, all_channels).map_err(|e| {
                format!(
                    "Error in applying operation '{}': {}",
                    String::from_utf8_lossy(r),
                    e.message()
                )
            })?;
        }
        self.users.insert(u.name.clone(), u);
        Ok(())
    }

    /// Records a refusal (Redis's `addACLLogEntry`): merged with a recent
    /// identical entry among the last ten, else added at the head.
    #[allow(clippy::too_many_arguments)]
    pub fn log_event(
        &mut self,
        reason: LogReason,
        context: LogContext,
        object: Bytes,
        username: Bytes,
        now_ms: i64,
        client_info: String,
        max_len: usize,
    ) {
        let found = self.log.iter().take(10).position(|e| {
            e.reason == reason
                && e.context == context
                && now_ms - e.ctime_ms <= LOG_GROUPING_MS
                && e.object == object
                && e.username == username
        });
        if let Some(i) = found {
            if let Some(mut e) = self.log.remove(i) {
                e.count += 1;
                e.ctime_ms = now_ms;
                e.client_info = client_info;
                self.log.push_front(e);
            }
            return;
        }
        self.log.push_front(LogEntry {
            count: 1,
            reason,
            context,
            object,
            username,
            ctime_ms: now_ms,
            client_info,
        });
        self.log.truncate(max_len);
    }

    /// The ACL file's text (ACL SAVE): one `user` line per user.
    pub fn to_file_text(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for u in self.users.values() {
            out.extend_from_slice(b"user ");
            out.extend_from_slice(&u.name);
            out.push(b' ');
            out.extend_from_slice(&u.describe());
            out.push(b'\n');
        }
        out
    }

    /// Parses an ACL file (Redis's `ACLLoadFromFile`): every error is
    /// collected; any error means nothing changes. On success returns the
    /// new user set, with the default user recreated if the file lacks it.
    pub fn parse_file(
        text: &[u8],
        filename: &str,
        all_channels: bool,
    ) -> Result<BTreeMap<Bytes, User>, String> {
        let mut users: BTreeMap<Bytes, User> = BTreeMap::new();
        let mut errors = String::new();
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            let linenum = i + 1;
            let line = trim(line);
            if line.is_empty() {
                continue;
            }
            let argv: Vec<&[u8]> = line
                .split(|&b| b == b' ')
                .filter(|w| !w.is_empty())
                .collect();
            if argv.is_empty() {
                continue;
            }
            if argv[0] != b"user" || argv.len() < 2 {
                errors.push_str(&format!(
                    "{filename}:{linenum} should start with user keyword followed by the username. "
                ));
                continue;
            }
            let name = argv[1];
            if !valid_username(name) {
                errors.push_str(&format!(
                    "'{filename}:{linenum}: username '{}' contains invalid characters. ",
                    String::from_utf8_lossy(name)
                ));
                continue;
            }
            if users.contains_key(name) {
                errors.push_str(&format!(
                    "WARNING: Duplicate user '{}' found on line {linenum}. ",
                    String::from_utf8_lossy(name)
                ));
                continue;
            }
            let mut u = User::new(name, all_channels);
            let rules: Vec<Vec<u8>> = argv[2..].iter().map(|w| w.to_vec()).collect();
            let merged = match merge_selector_args(&rules) {
                Ok(m) => m,
                Err(_) => {
                    errors.push_str(&format!(
                        "{filename}:{linenum}: Unmatched parenthesis in selector definition."
                    ));
                    Vec::new()
                }
            };
            let mut syntax_error = false;
            for r in &merged {
                let r = trim(r);
                if let Err(e) = u.apply(r, all_channels) {
                    if e == RuleError::Unknown {
                        errors.push_str(&format!(
                            "{filename}:{linenum}: Error in applying operation '{}': {}. ",
                            String::from_utf8_lossy(r),
                            e.message()
                        ));
                    } else if !syntax_error {
                        errors.push_str(&format!("{filename}:{linenum}: {}. ", e.message()));
                        syntax_error = true;
                    }
                }
            }
            users.insert(u.name.clone(), u);
        }
        if !errors.is_empty() {
            errors.push_str(
                "WARNING: ACL errors detected, no change to the previously active ACL rules was performed",
            );
            return Err(errors);
        }
        if !users.contains_key(&b"default"[..]) {
            let d = User::default_user();
            users.insert(d.name.clone(), d);
        }
        Ok(users)
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let start = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ws(c)).map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

/// `requirepass`: the default user's only password, or nopass when empty
/// (Redis's `ACLUpdateDefaultUserPassword`).
pub fn set_default_password(d: &mut User, password: Option<&[u8]>) {
    let _ = d.apply(b"resetpass", false);
    match password {
        Some(p) => {
            let mut op = b">".to_vec();
            op.extend_from_slice(p);
            let _ = d.apply(&op, false);
        }
        None => {
            let _ = d.apply(b"nopass", false);
        }
    }
}

/// Joins selector rules split over several arguments (`(~a` `+get)`) into
/// one (Redis's `ACLMergeSelectorArguments`). `Err(i)`: the selector
/// starting at argument `i` is never closed.
pub fn merge_selector_args(args: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, usize> {
    let mut out = Vec::with_capacity(args.len());
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (j, op) in args.iter().enumerate() {
        if let Some((_, sel)) = &mut open {
            sel.push(b' ');
            sel.extend_from_slice(op);
            if op.last() == Some(&b')') {
                if let Some((_, sel)) = open.take() {
                    out.push(sel);
                }
            }
            continue;
        }
        if op.first() == Some(&b'(') && op.last() != Some(&b')') {
            open = Some((j, op.clone()));
            continue;
        }
        out.push(op.clone());
    }
    match open {
        Some((j, _)) => Err(j),
        None => Ok(out),
    }
}

impl Acl {
    /// The ACL a configuration asks for: the default user with
    /// `requirepass`, then the config file's `user` lines, then the ACL
    /// file's text when the driver read one at start-up. Errors are Redis's
    /// reasons to refuse to start.
    pub fn from_config(config: &crate::Config, aclfile_text: Option<&[u8]>) -> Result<Acl, String> {
        let all_channels = config.acl_pubsub_default == "allchannels";
        let mut acl = Acl::new(config.requirepass.as_deref());
        if !config.acl_users.is_empty() && !config.aclfile.is_empty() {
            return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
        }
        for line in &config.acl_users {
            let name = line.first().cloned().unwrap_or_default();
            if name == b"default" {
                // The default user is reset, then configured by its line.
                if let Some(d) = acl.users.get_mut(&b"default"[..]) {
                    let _ = d.apply(b"reset", all_channels);
                    let rules = merge_selector_args(&line[1..])
                        .map_err(|_| "Unmatched parenthesis in selector definition.".to_string())?;
                    for r in &rules {
                        d.apply(r, all_channels).map_err(|e| {
                            format!(
                                "Error loading ACL rule '{}' for the user named 'default': {}",
                                String::from_utf8_lossy(r),
                                e.message()
                            )
                        })?;
                    }
                }
                continue;
            }
            if acl.users.contains_key(name.as_slice()) {
                return Err(format!(
                    "Duplicate user '{}' found",
                    String::from_utf8_lossy(&name)
                ));
            }
            acl.load_user_line(line, all_channels)?;
        }
        if let Some(text) = aclfile_text {
            acl.users = Acl::parse_file(text, &config.aclfile, all_channels)?;
        }
        Ok(acl)
    }
}

/// `CONFIG SET requirepass`: the default user's password follows.
pub fn requirepass_changed(node: &mut crate::Node) {
    let pass = node.config.requirepass.clone();
    if let Some(d) = node.acl.users.get_mut(&b"default"[..]) {
        set_default_password(d, pass.as_deref());
    }
}

/// The CLIENT LIST line of a client for ACL LOG's `client-info`.
fn client_info(node: &crate::Node, c: &crate::node::Client) -> String {
    let mut s = String::new();
    crate::commands::connection::client_line(node, c, &mut s);
    while s.ends_with('\n') {
        s.pop();
    }
    s
}

/// AUTH or HELLO with a wrong username or password: ACL LOG reason "auth",
/// the object being the command name as the client typed it.
pub fn log_auth_failure(
    node: &mut crate::Node,
    c: &crate::node::Client,
    object: Bytes,
    username: &[u8],
) {
    let context = if c.multi.is_some() || c.in_exec {
        LogContext::Multi
    } else {
        LogContext::Toplevel
    };
    let info = client_info(node, c);
    let now = node.now.as_millis();
    let max = node.config.acllog_max_len.max(0) as usize;
    node.acl.log_event(
        LogReason::Auth,
        context,
        object,
        Bytes::copy_from_slice(username),
        now,
        info,
        max,
    );
}

impl crate::Node {
    /// The ACL check of dispatch: `None` if the client's user may run the
    /// command; otherwise the refusal is logged and its error returned,
    /// worded for where the command came from (top level or queued in
    /// MULTI, EXEC, a script).
    pub(crate) fn acl_refusal(
        &mut self,
        c: &mut crate::node::Client,
        cmd: &Command,
        argv: &[Bytes],
    ) -> Option<String> {
        let denied = self.acl.check(c.user.as_ref(), cmd, argv).err()?;
        // Redis names the command being refused in client-info's cmd=, but
        // for EXEC and scripts the one the client sent (exec, eval).
        if !c.in_exec {
            c.last_cmd.clear();
            c.last_cmd.push_str(&cmd.name);
        }
        let (context, msg) = if c.is_script {
            let m = match denied {
                Denied::Command => "ERR The user executing the script can't run this command or subcommand",
                Denied::Key(_) => "ERR The user executing the script can't access at least one of the keys mentioned in the command arguments",
                Denied::Channel(_) => "ERR The user executing the script can't publish to the channel mentioned in the command",
            };
            (LogContext::Lua, m.to_string())
        } else if c.in_exec {
            let reason = match denied {
                Denied::Command => "no permission to execute the command or subcommand",
                Denied::Key(_) => "no permission to touch the specified keys",
                Denied::Channel(_) => {
                    "no permission to access one of the channels used as arguments"
                }
            };
            (LogContext::Multi, format!("NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {reason}"))
        } else if c.multi.is_some() {
            (LogContext::Multi, denied.toplevel_message(cmd))
        } else {
            (LogContext::Toplevel, denied.toplevel_message(cmd))
        };
        let (reason, object) = match denied {
            Denied::Command => (LogReason::Command, Bytes::from(cmd.name.clone())),
            Denied::Key(i) => (LogReason::Key, argv[i].clone()),
            Denied::Channel(i) => (LogReason::Channel, argv[i].clone()),
        };
        let info = client_info(self, c);
        let now = self.now.as_millis();
        let max = self.config.acllog_max_len.max(0) as usize;
        let username = c.user.clone().unwrap_or_default();
        self.acl
            .log_event(reason, context, object, username, now, info, max);
        Some(msg)
    }

    /// Disconnects every client authenticated as `user` (a deleted user):
    /// the current client `cur` closes after its reply.
    pub fn kill_clients_of_user(&mut self, cur: &mut crate::node::Client, user: &[u8]) {
        let conns: Vec<crate::ConnId> = self
            .clients
            .values()
            .filter(|c| c.user.as_deref() == Some(user))
            .map(|c| c.conn)
            .collect();
        for conn in conns {
            self.kill_client(conn);
        }
        if cur.user.as_deref() == Some(user) {
            cur.close_after_reply = true;
        }
    }
}

/// Protected mode's refusal, written to a non-loopback client when the
/// default user has no password (Redis 7.0's text, with its typo).
pub const PROTECTED_MODE_DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Whether a peer address (as the driver names it: "ip:port", or a unix
/// socket path) is local for protected mode: loopback IPs and unix sockets.
/// (Address parsing only: `core::net`, no sockets.)
pub fn is_local_peer(peer: &str) -> bool {
    match peer.parse::<core::net::SocketAddr>() {
        Ok(core::net::SocketAddr::V4(a)) => a.ip().is_loopback(),
        Ok(core::net::SocketAddr::V6(a)) => {
            a.ip().is_loopback() || a.ip().to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        // Not an IP address: a unix socket (or a simulated peer).
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Table;

    fn user(rules: &[&str]) -> User {
        let mut u = User::new(b"u", false);
        for r in rules {
            u.apply(r.as_bytes(), false).unwrap();
        }
        u
    }

    fn argv(a: &[&str]) -> Vec<Bytes> {
        a.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn check(u: &User, a: &[&str]) -> Result<(), Denied> {
        let t = Table::get();
        let v = argv(a);
        let mut cmd = t.lookup(&v[0]).unwrap();
        if cmd.is_container() {
            cmd = cmd.subcommand(&v[1]).unwrap();
        }
        u.check(cmd, &v)
    }

    #[test]
    fn default_user_describes_like_redis() {
        let d = User::default_user();
        assert_eq!(d.describe(), b"on nopass ~* &* +@all".to_vec());
        assert_eq!(
            User::new(b"a", false).describe(),
            b"off resetchannels -@all".to_vec()
        );
    }

    #[test]
    fn categories_and_commands() {
        let u = user(&["-@all", "+@hash", "-hset", "+get"]);
        let d = String::from_utf8(u.describe()).unwrap();
        assert!(d.starts_with("off resetchannels -@all +@hash "), "{d}");
        assert!(d.contains("-hset") && d.contains("+get"), "{d}");
        let u = user(&["+@all", "-@string", "+get"]);
        assert_eq!(
            String::from_utf8(u.describe()).unwrap(),
            "off resetchannels +@all -@string +get"
        );
    }

    #[test]
    fn rule_errors() {
        let mut u = User::new(b"u", false);
        assert_eq!(u.apply(b"+nosuch", false), Err(RuleError::Unknown));
        assert_eq!(u.apply(b"+@nosuch", false), Err(RuleError::Unknown));
        assert_eq!(
            u.apply(b"+config|get|x", false),
            Err(RuleError::FirstArgOfSub)
        );
        assert_eq!(u.apply(b"+config|", false), Err(RuleError::Syntax));
        assert_eq!(u.apply(b"#abc", false), Err(RuleError::BadHash));
        assert_eq!(u.apply(b"<nope", false), Err(RuleError::NoSuchPassword));
        assert_eq!(u.apply(b"%RR~a", false), Err(RuleError::Syntax));
        assert_eq!(u.apply(b"%~a", false), Err(RuleError::Syntax));
        assert_eq!(u.apply(b"(badrule)", false), Err(RuleError::Syntax));
        u.apply(b"~*", false).unwrap();
        assert_eq!(u.apply(b"~foo", false), Err(RuleError::KeysAfterAll));
        u.apply(b"&*", false).unwrap();
        assert_eq!(u.apply(b"&x", false), Err(RuleError::ChannelsAfterAll));
        // Bad input never panics.
        for op in [
            "(", ")", "%", "~", "&", "+", "-", "+@", "-@", "+|", ">", "<", "!", "#",
        ] {
            let _ = u.apply(op.as_bytes(), false);
        }
    }

    #[test]
    fn keys_read_write_and_selectors() {
        let u = user(&["+@all", "%R~r*", "%W~w*", "~both"]);
        assert_eq!(check(&u, &["get", "r1"]), Ok(()));
        assert_eq!(check(&u, &["set", "r1", "x"]), Err(Denied::Key(1)));
        assert_eq!(check(&u, &["set", "w1", "x"]), Ok(()));
        assert_eq!(check(&u, &["get", "w1"]), Err(Denied::Key(1)));
        assert_eq!(check(&u, &["copy", "r1", "w1"]), Ok(()));
        assert_eq!(
            check(&u, &["mset", "both", "1", "x", "2"]),
            Err(Denied::Key(3))
        );
        let u = user(&["+get", "~a", "(+set ~b)"]);
        assert_eq!(check(&u, &["get", "a"]), Ok(()));
        assert_eq!(check(&u, &["set", "b", "1"]), Ok(()));
        assert_eq!(check(&u, &["set", "a", "1"]), Err(Denied::Key(1)));
        assert_eq!(check(&u, &["get", "b"]), Err(Denied::Key(1)));
        assert_eq!(check(&u, &["del", "b"]), Err(Denied::Command));
    }

    #[test]
    fn channels_and_first_args() {
        let u = user(&["+publish", "+psubscribe", "+select|0", "&news.*"]);
        assert_eq!(check(&u, &["publish", "news.1", "x"]), Ok(()));
        assert_eq!(
            check(&u, &["publish", "other", "x"]),
            Err(Denied::Channel(1))
        );
        assert_eq!(check(&u, &["psubscribe", "news.*"]), Ok(()));
        assert_eq!(
            check(&u, &["psubscribe", "news.1"]),
            Err(Denied::Channel(1))
        );
        assert_eq!(check(&u, &["select", "0"]), Ok(()));
        assert_eq!(check(&u, &["select", "1"]), Err(Denied::Command));
        assert!(String::from_utf8(u.describe())
            .unwrap()
            .contains("+select|0"));
    }

    #[test]
    fn passwords_and_file_round_trip() {
        let u = user(&["on", ">p1", ">p1", ">p2", "<p2"]);
        assert_eq!(u.passwords.len(), 1);
        assert!(u.check_password(b"p1"));
        assert!(!u.check_password(b"p2"));
        let mut acl = Acl::new(Some(b"secret"));
        acl.users.insert(u.name.clone(), u.clone());
        let text = acl.to_file_text();
        let back = Acl::parse_file(&text, "users.acl", false).unwrap();
        assert_eq!(
            back.get(&b"u"[..]).map(|u| u.describe()),
            Some(u.describe())
        );
        assert!(back[&b"default"[..]].check_password(b"secret"));
        let err = Acl::parse_file(b"user a +nosuch\nnope\n", "f", false).unwrap_err();
        assert!(
            err.contains("f:1: Error in applying operation '+nosuch'"),
            "{err}"
        );
        assert!(err.contains("f:2 should start with user keyword"), "{err}");
    }

    #[test]
    fn local_peers() {
        assert!(is_local_peer("127.0.0.1:5000"));
        assert!(is_local_peer("127.8.0.1:5000"));
        assert!(is_local_peer("[::1]:5000"));
        assert!(is_local_peer("[::ffff:127.0.0.1]:5000"));
        assert!(is_local_peer("/tmp/redis.sock:0"));
        assert!(!is_local_peer("10.0.0.1:5000"));
        assert!(!is_local_peer("[2001:db8::1]:5000"));
    }

    #[test]
    fn merge_selectors() {
        let a: Vec<Vec<u8>> = ["on", "(~a", "+get)", "+set"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        assert_eq!(
            merge_selector_args(&a).unwrap(),
            vec![b"on".to_vec(), b"(~a +get)".to_vec(), b"+set".to_vec()]
        );
        let b: Vec<Vec<u8>> = ["(~a", "+get"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        assert_eq!(merge_selector_args(&b), Err(0));
    }
}
