//! Command implementations, one module per family, as in Redis's `t_*.c`:
//! SET is in `strings`, DEL in `keys`, CONFIG in `server`, HELLO in
//! `connection`.
//!
//! A handler reads its arguments from [`Ctx::argv`], touches the keyspace
//! through the lookup helpers below (which apply lazy expiry and keep the
//! hit/miss statistics), and writes exactly one reply.

pub mod acl;
pub mod bitops;
pub mod client_admin;
pub mod connection;
pub mod dump;
pub mod hashes;
pub mod hyperloglog;
pub mod keys;
pub mod lists;
pub mod persistence;
pub mod pubsub;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod streams;
pub mod strings;
pub mod transactions;
pub mod zsets;

use crate::command::Handler;
use crate::db::{Entry, Str, Value};
use crate::node::Ctx;

/// The handler registry: the executable half of the command table.
pub fn handler_for(name: &str) -> Option<Handler> {
    use bitops as b;
    use connection as c;
    use keys as k;
    use server as s;
    use strings as t;
    Some(match name {
        // connection
        "ping" => c::ping,
        "echo" => c::echo,
        "quit" => c::quit,
        "hello" => c::hello,
        "auth" => c::auth,
        "select" => c::select,
        "reset" => c::reset,
        "client|id" => c::client_id,
        "client|setname" => c::client_setname,
        "client|getname" => c::client_getname,
        "client|list" => c::client_list,
        "client|info" => c::client_info,
        "client|kill" => c::client_kill,
        "client|help" => c::client_help,
        "client|unblock" => c::client_unblock,
        "client|tracking" => crate::tracking::client_tracking,
        "client|caching" => crate::tracking::client_caching,
        "client|getredir" => crate::tracking::client_getredir,
        "client|trackinginfo" => crate::tracking::client_trackinginfo,
        // server
        "dbsize" => s::dbsize,
        "flushdb" => s::flushdb,
        "flushall" => s::flushall,
        "swapdb" => s::swapdb,
        "time" => s::time,
        "info" => s::info,
        "config|get" => s::config_get,
        "config|set" => s::config_set,
        "config|resetstat" => s::config_resetstat,
        "config|rewrite" => s::config_rewrite,
        "config|help" => s::config_help,
        "slowlog|get" => s::slowlog_get,
        "slowlog|len" => s::slowlog_len,
        "slowlog|reset" => s::slowlog_reset,
        "slowlog|help" => s::slowlog_help,
        "latency|latest" => s::latency_latest,
        "latency|history" => s::latency_history,
        "latency|reset" => s::latency_reset,
        "latency|graph" => s::latency_graph,
        "latency|doctor" => s::latency_doctor,
        "latency|histogram" => s::latency_histogram,
        "latency|help" => s::latency_help,
        "memory|usage" => s::memory_usage,
        "memory|stats" => s::memory_stats,
        "memory|doctor" => s::memory_doctor,
        "memory|malloc-stats" => s::memory_malloc_stats,
        "memory|purge" => s::memory_purge,
        "memory|help" => s::memory_help,
        "shutdown" => s::shutdown,
        "debug" => s::debug,
        "command" => s::command,
        "command|count" => s::command_count,
        "command|info" => s::command_info,
        "command|docs" => s::command_docs,
        "command|list" => s::command_list,
        "command|getkeys" => s::command_getkeys,
        "command|help" => s::command_help,
        "lolwut" => s::lolwut,
        "monitor" => s::monitor,
        // keys
        "del" => k::del,
        "unlink" => k::del,
        "exists" => k::exists,
        "type" => k::type_,
        "rename" => k::rename,
        "renamenx" => k::renamenx,
        "keys" => k::keys,
        "scan" => k::scan,
        "randomkey" => k::randomkey,
        "expire" => k::expire,
        "pexpire" => k::pexpire,
        "expireat" => k::expireat,
        "pexpireat" => k::pexpireat,
        "ttl" => k::ttl,
        "pttl" => k::pttl,
        "expiretime" => k::expiretime,
        "pexpiretime" => k::pexpiretime,
        "persist" => k::persist,
        "touch" => k::touch,
        "copy" => k::copy,
        "move" => k::move_,
        "object|encoding" => k::object_encoding,
        "object|idletime" => k::object_idletime,
        "object|freq" => k::object_freq,
        "object|refcount" => k::object_refcount,
        "object|help" => k::object_help,
        // strings
        "get" => t::get,
        "set" => t::set,
        "setnx" => t::setnx,
        "setex" => t::setex,
        "psetex" => t::psetex,
        "mget" => t::mget,
        "mset" => t::mset,
        "msetnx" => t::msetnx,
        "getset" => t::getset,
        "getdel" => t::getdel,
        "getex" => t::getex,
        "append" => t::append,
        "strlen" => t::strlen,
        "incr" => t::incr,
        "decr" => t::decr,
        "incrby" => t::incrby,
        "decrby" => t::decrby,
        "incrbyfloat" => t::incrbyfloat,
        "getrange" => t::getrange,
        "substr" => t::getrange,
        "setrange" => t::setrange,
        "lcs" => t::lcs,
        // bitmaps
        "setbit" => b::setbit,
        "getbit" => b::getbit,
        "bitcount" => b::bitcount,
        "bitpos" => b::bitpos,
        "bitop" => b::bitop,
        "bitfield" => b::bitfield,
        "bitfield_ro" => b::bitfield_ro,
        // Each collection module registers its own commands.
        _ => {
            return lists::handler(name)
                .or_else(|| hashes::handler(name))
                .or_else(|| sets::handler(name))
                .or_else(|| zsets::handler(name))
                .or_else(|| hyperloglog::handler(name))
                .or_else(|| transactions::handler(name))
                .or_else(|| pubsub::handler(name))
                .or_else(|| scripting::handler(name))
                .or_else(|| dump::handler(name))
                .or_else(|| persistence::handler(name))
                .or_else(|| streams::handler(name))
                .or_else(|| acl::handler(name))
                .or_else(|| client_admin::handler(name))
        }
    })
}

/// Why a typed lookup failed.
pub enum Lookup<T> {
    Found(T),
    Missing,
    WrongType,
}

/// A value type that can be borrowed out of a [`Value`]; lets one lookup
/// serve every collection (`node.read_typed::<Hash>(db, key)`).
pub trait Typed: Sized {
    fn from_value(v: &mut Value) -> Option<&mut Self>;
}

macro_rules! typed {
    ($t:ty, $variant:ident) => {
        impl Typed for $t {
            fn from_value(v: &mut Value) -> Option<&mut Self> {
                match v {
                    Value::$variant(x) => Some(x),
                    _ => None,
                }
            }
        }
    };
}
typed!(lists::List, List);
typed!(hashes::Hash, Hash);
typed!(sets::Set, Set);
typed!(zsets::ZSet, ZSet);

impl Typed for crate::stream::Stream {
    fn from_value(v: &mut Value) -> Option<&mut Self> {
        match v {
            Value::Stream(x) => Some(x),
            _ => None,
        }
    }
}

impl crate::node::Node {
    /// A typed value for a read command (`lookupKeyRead`: expiry, LRU touch,
    /// hit/miss stats).
    pub fn read_typed<T: Typed>(&mut self, db: usize, key: &[u8]) -> Lookup<&mut T> {
        match self.lookup_read(db, key) {
            None => Lookup::Missing,
            Some(e) => T::from_value(&mut e.value).map_or(Lookup::WrongType, Lookup::Found),
        }
    }

    /// A typed value for a write command (`lookupKeyWrite`: expiry, LRU
    /// touch, no stats).
    pub fn write_typed<T: Typed>(&mut self, db: usize, key: &[u8]) -> Lookup<&mut T> {
        let clock = self.access_clock();
        match self.lookup_quiet(db, key) {
            None => Lookup::Missing,
            Some(e) => {
                clock.touch(&mut e.lru);
                T::from_value(&mut e.value).map_or(Lookup::WrongType, Lookup::Found)
            }
        }
    }

    /// [`Node::write_typed`] that runs `f` on the value and then
    /// re-estimates the value's memory in the same lookup, as
    /// `Db::reaccount` would after the command. A handler whose every write
    /// goes through this (or creates the key with `Db::set`) marks
    /// [`Node::accounted`] so the bookkeeping does not look the key up and
    /// estimate it again.
    /// `f` also gets the node's RNG (see [`Node::typed_and_rng`]).
    pub fn write_typed_with<T: Typed, R>(
        &mut self,
        db: usize,
        key: &[u8],
        f: impl FnOnce(&mut T, &mut rand_chacha::ChaCha8Rng) -> R,
    ) -> Lookup<R> {
        let clock = self.access_clock();
        self.expire_quietly(db, key);
        let crate::node::Node { dbs, rng, .. } = self;
        let d = &mut dbs[db];
        let Some(e) = d.keys.get_mut(key) else {
            return Lookup::Missing;
        };
        clock.touch(&mut e.lru);
        let Some(v) = T::from_value(&mut e.value) else {
            return Lookup::WrongType;
        };
        let r = f(v, rng);
        let now = crate::memory::clamp(crate::memory::value_bytes(&e.value));
        let before = std::mem::replace(&mut e.mem, now);
        d.used_bytes = (d.used_bytes + now as u64).saturating_sub(before as u64);
        Lookup::Found(r)
    }

    /// The value at `key` with the node's RNG, for operations that need
    /// randomness. The command must already have looked the key up (expiry
    /// applied).
    pub fn typed_and_rng<T: Typed>(
        &mut self,
        db: usize,
        key: &[u8],
    ) -> Option<(&mut T, &mut rand_chacha::ChaCha8Rng)> {
        let crate::node::Node { dbs, rng, .. } = self;
        let e = dbs[db].keys.get_mut(key)?;
        Some((T::from_value(&mut e.value)?, rng))
    }

    /// Reads a key for a read command: lazy expiry, LRU touch, hit/miss stats
    /// (Redis's `lookupKeyRead`).
    pub fn lookup_read(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        let clock = self.access_clock();
        let e = self.lookup_read_notouch(db, key)?;
        clock.touch(&mut e.lru);
        Some(e)
    }

    /// A read lookup that counts hits and misses but leaves the access time
    /// alone (Redis's LOOKUP_NOTOUCH: TYPE, EXISTS, TTL, OBJECT).
    pub fn lookup_read_notouch(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        let now_ms = self.now.as_millis();
        if self.dbs[db].expire_if_needed(key, now_ms) {
            self.stats.expired_keys += 1;
            crate::notify::key_expired(self, db, key);
        }
        // Tested first so the lookup below stays one probe when the `m`
        // class is off.
        if self.config.notify_keyspace_events & crate::notify::KEY_MISS != 0
            && !self.dbs[db].keys.contains_key(key)
        {
            crate::notify::notify(self, crate::notify::KEY_MISS, "keymiss", key, db);
        }
        match self.dbs[db].keys.get_mut(key) {
            Some(e) => {
                self.stats.keyspace_hits += 1;
                Some(e)
            }
            None => {
                self.stats.keyspace_misses += 1;
                None
            }
        }
    }

    /// Looks a key up without touching its LRU or the statistics (Redis's
    /// LOOKUP_NOTOUCH|LOOKUP_NOSTATS), still applying lazy expiry.
    pub fn lookup_quiet(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        self.expire_quietly(db, key);
        self.dbs[db].keys.get_mut(key)
    }

    /// Lazy expiry of `key` before a write lookup.
    fn expire_quietly(&mut self, db: usize, key: &[u8]) {
        let now_ms = self.now.as_millis();
        if self.dbs[db].expire_if_needed(key, now_ms) {
            self.stats.expired_keys += 1;
            crate::notify::key_expired(self, db, key);
        }
    }

    /// A string value for reading, or why not.
    pub fn read_str(&mut self, db: usize, key: &[u8]) -> Lookup<&mut Str> {
        match self.lookup_read(db, key) {
            None => Lookup::Missing,
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => Lookup::Found(s),
            Some(_) => Lookup::WrongType,
        }
    }
}

impl Ctx<'_> {
    /// [`Node::lookup_read`](crate::node::Node::lookup_read) in the client's db.
    pub fn lookup_read(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.node.lookup_read(self.client.db, key)
    }

    /// [`Node::lookup_read_notouch`](crate::node::Node::lookup_read_notouch)
    /// in the client's db.
    pub fn lookup_read_notouch(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.node.lookup_read_notouch(self.client.db, key)
    }

    /// [`Node::lookup_quiet`](crate::node::Node::lookup_quiet) in the client's db.
    pub fn lookup_quiet(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.node.lookup_quiet(self.client.db, key)
    }

    /// Reads a key for a write command (Redis's `lookupKeyWrite`: expiry,
    /// LRU touch, no hit/miss stats).
    pub fn lookup_write(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let clock = self.node.access_clock();
        let e = self.lookup_quiet(key)?;
        clock.touch(&mut e.lru);
        Some(e)
    }

    /// A string value for reading, or why not.
    pub fn read_str(&mut self, key: &[u8]) -> Lookup<&mut Str> {
        self.node.read_str(self.client.db, key)
    }

    /// Deletes a key from the current db; true if it existed.
    pub fn delete_key(&mut self, key: &[u8]) -> bool {
        let db = self.client.db;
        // UNLINK, DEL under lazyfree-lazy-user-del, and other commands'
        // deletions under lazyfree-lazy-server-del free large values off
        // the event loop (lazyfree.rs).
        let lazy = match self.cmd.name.as_str() {
            "unlink" => true,
            "del" => self.node.config.lazyfree_lazy_user_del,
            // A TTL set in the past deletes under lazyfree-lazy-expire
            // (Redis's expireGenericCommand and GETEX).
            "expire" | "pexpire" | "expireat" | "pexpireat" | "getex" => {
                self.node.config.lazyfree_lazy_expire
            }
            _ => self.node.config.lazyfree_lazy_server_del,
        };
        if lazy {
            return crate::lazyfree::delete(self.node, db, key);
        }
        self.node.dbs[db].delete(key)
    }

    /// The LRU/LFU field for new entries (Redis's `createObject`).
    pub fn lru_now(&self) -> u32 {
        self.node.initial_stamp()
    }

    /// Replies with one of Redis's stored HELP texts.
    pub fn reply_help(&mut self, container: &str) {
        if let Some(f) = crate::command::help_text(container) {
            self.client.reply.frame(f);
        }
    }
}

/// Parses a Redis `getLongFromObject`-style integer or `getIntFromObject`
/// (i32 range).
pub fn parse_i32(b: &[u8]) -> Option<i32> {
    crate::resp::parse_i64(b).and_then(|n| i32::try_from(n).ok())
}
