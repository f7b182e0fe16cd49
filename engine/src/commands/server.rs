//! Server commands: DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, TIME, INFO, CONFIG,
//! SHUTDOWN, DEBUG, COMMAND, LOLWUT.

use crate::command::{Command, Table};
use crate::config::{Config, SetError};
use crate::node::{Ctx, Output};
use crate::resp::Frame;
use std::fmt::Write;

/// DBSIZE
pub fn dbsize(cx: &mut Ctx) {
    let n = cx.db().len() as i64;
    cx.out().int(n);
}

/// FLUSHDB/FLUSHALL accept one optional ASYNC|SYNC; without one,
/// `lazyfree-lazy-user-flush` decides. `Some(true)`: free the old data
/// lazily (handed to the driver, see lazyfree.rs).
fn flush_mode(cx: &mut Ctx) -> Option<bool> {
    match cx.argv.len() {
        1 => Some(cx.node.config.lazyfree_lazy_user_flush),
        2 if cx.arg_is(1, "sync") => Some(false),
        2 if cx.arg_is(1, "async") => Some(true),
        _ => {
            cx.syntax_error();
            None
        }
    }
}

/// Replaces db `i` with an empty one, freeing the old one lazily or not.
fn flush_one(cx: &mut Ctx, i: usize, lazy: bool) {
    let fresh = cx.node.fresh_db(i);
    let old = std::mem::replace(&mut cx.node.dbs[i], fresh);
    if lazy {
        crate::lazyfree::dispose_db(cx.node, old);
    }
}

/// FLUSHDB [ASYNC|SYNC]
pub fn flushdb(cx: &mut Ctx) {
    let Some(lazy) = flush_mode(cx) else {
        return;
    };
    let n = cx.db().len() as u64;
    let i = cx.client.db;
    cx.node.touch_watched_in_db(cx.client, i);
    flush_one(cx, i, lazy);
    cx.dirty(n);
    cx.out().ok();
}

/// FLUSHALL [ASYNC|SYNC]
pub fn flushall(cx: &mut Ctx) {
    let Some(lazy) = flush_mode(cx) else {
        return;
    };
    let mut n = 0;
    for i in 0..cx.node.dbs.len() {
        cx.node.touch_watched_in_db(cx.client, i);
        n += cx.node.dbs[i].len() as u64;
        flush_one(cx, i, lazy);
    }
    // Redis counts FLUSHALL as at least one change so a save follows.
    cx.dirty(n + 1);
    cx.out().ok();
}

/// SWAPDB index1 index2
pub fn swapdb(cx: &mut Ctx) {
    let Some(a) = super::parse_i32(&cx.argv[1]) else {
        return cx.error("ERR invalid first DB index");
    };
    let Some(b) = super::parse_i32(&cx.argv[2]) else {
        return cx.error("ERR invalid second DB index");
    };
    let n = cx.node.dbs.len() as i32;
    if a < 0 || a >= n || b < 0 || b >= n {
        return cx.error("ERR DB index is out of range");
    }
    if a == b {
        // Redis's dbSwapDatabases returns early: nothing changes.
        cx.dirty(1);
        return cx.out().ok();
    }
    cx.node
        .touch_watched_for_swap(cx.client, a as usize, b as usize);
    cx.node
        .touch_watched_for_swap(cx.client, b as usize, a as usize);
    cx.node.dbs.swap(a as usize, b as usize);
    // Clients blocked in either db may now find their keys.
    cx.node.signal_blocked_keys_in_db(a as usize);
    cx.node.signal_blocked_keys_in_db(b as usize);
    cx.dirty(1);
    cx.out().ok();
}

/// TIME: [unix seconds, microseconds], from the driver's clock.
pub fn time(cx: &mut Ctx) {
    let us = cx.node.now.as_micros();
    let out = cx.out();
    out.array(2);
    out.bulk_int((us / 1_000_000) as i64);
    out.bulk_int((us % 1_000_000) as i64);
}

/// Formats bytes as Redis's `bytesToHuman`.
fn human(n: u64) -> String {
    let d = n as f64;
    if n < 1024 {
        format!("{n}B")
    } else if n < 1024 * 1024 {
        format!("{:.2}K", d / 1024.0)
    } else if n < 1024 * 1024 * 1024 {
        format!("{:.2}M", d / (1024.0 * 1024.0))
    } else if n < 1 << 40 {
        format!("{:.2}G", d / (1024.0 * 1024.0 * 1024.0))
    } else {
        format!("{:.2}T", d / (1u64 << 40) as f64)
    }
}

/// The sections INFO prints without arguments (and for "default").
const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "module_list",
    "errorstats",
    "cluster",
    "keyspace",
];

/// INFO [section [section ...]]: Redis 7.0's sections, field names and
/// order, so exporters and dashboards read it unchanged. "all" adds
/// commandstats and latencystats; "everything" also module sections.
pub fn info(cx: &mut Ctx) {
    let mut wanted: Vec<String> = cx.argv[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    if wanted.is_empty() || wanted.iter().any(|s| s == "default") {
        wanted.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
    }
    if wanted.iter().any(|s| s == "all" || s == "everything") {
        wanted.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
        wanted.push("commandstats".into());
        wanted.push("latencystats".into());
    }
    if wanted.iter().any(|s| s == "modules") {
        wanted.push("module_list".into());
    }
    let text = info_text(cx, &wanted);
    cx.client.reply.verbatim(text.as_bytes(), "txt");
}

/// `%f` then trailing zeros trimmed (Redis's `trimDoubleString`).
fn trim_double(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// `latency-tracking-info-percentiles` as numbers (invalid ones dropped).
fn info_percentiles(c: &Config) -> Vec<f64> {
    c.latency_tracking_info_percentiles
        .split_whitespace()
        .filter_map(|p| p.parse::<f64>().ok())
        .filter(|p| (0.0..=100.0).contains(p))
        .collect()
}

fn info_text(cx: &Ctx, wanted: &[String]) -> String {
    let n = &*cx.node;
    let mut out = String::new();
    let mut sections = 0;
    let mut section = |name: &str, title: &str, out: &mut String| -> bool {
        if !wanted.iter().any(|w| w == name) {
            return false;
        }
        if sections > 0 {
            out.push_str("\r\n");
        }
        sections += 1;
        let _ = write!(out, "# {title}\r\n");
        true
    };
    macro_rules! field {
        ($out:expr, $k:expr, $v:expr) => {
            let _ = write!($out, "{}:{}\r\n", $k, $v);
        };
    }
    if section("server", "Server", &mut out) {
        field!(out, "redis_version", crate::REDIS_VERSION);
        field!(out, "redis_git_sha1", "00000000");
        field!(out, "redis_git_dirty", 0);
        field!(out, "redis_build_id", "0");
        field!(out, "redis_mode", "standalone");
        field!(out, "cinnabar_version", crate::CINNABAR_VERSION);
        field!(out, "os", n.host.os);
        field!(out, "arch_bits", 64);
        field!(out, "monotonic_clock", "POSIX clock_gettime");
        field!(out, "multiplexing_api", n.host.multiplexing_api);
        field!(out, "atomicvar_api", "c11-builtin");
        // Parsers expect a dotted version; there is no C compiler here.
        field!(out, "gcc_version", "0.0.0");
        field!(out, "process_id", n.host.process_id);
        field!(out, "process_supervised", "no");
        field!(out, "run_id", n.run_id);
        field!(out, "tcp_port", n.config.port);
        field!(out, "server_time_usec", n.now.as_micros());
        field!(out, "uptime_in_seconds", n.uptime_s());
        field!(out, "uptime_in_days", n.uptime_s() / 86400);
        field!(out, "hz", n.config.hz.clamp(1, 500));
        field!(out, "configured_hz", n.config.hz);
        field!(out, "lru_clock", crate::evict::lru_clock(n.now.as_secs()));
        field!(out, "executable", n.host.executable);
        field!(out, "config_file", n.host.config_file);
        field!(out, "io_threads_active", 0);
    }
    if section("clients", "Clients", &mut out) {
        field!(out, "connected_clients", n.clients.len() + 1);
        field!(out, "cluster_connections", 0);
        field!(out, "maxclients", n.config.maxclients);
        field!(out, "client_recent_max_input_buffer", 0);
        field!(out, "client_recent_max_output_buffer", 0);
        field!(out, "blocked_clients", n.blocked_clients());
        field!(out, "tracking_clients", n.tracking.info().0);
        field!(out, "clients_in_timeout_table", 0);
    }
    if section("memory", "Memory", &mut out) {
        let used = n.used_memory_estimate();
        let peak = n.used_memory_peak.max(used);
        let startup = crate::memory::BASE_OVERHEAD;
        let dataset: u64 = n.dbs.iter().map(|d| d.used_bytes).sum();
        let overhead = used.saturating_sub(dataset);
        let rss = n.used_memory_rss;
        let pct = |a: u64, b: u64| {
            if b == 0 {
                0.0
            } else {
                a as f64 * 100.0 / b as f64
            }
        };
        let lua = 32768u64;
        field!(out, "used_memory", used);
        field!(out, "used_memory_human", human(used));
        field!(out, "used_memory_rss", rss);
        field!(out, "used_memory_rss_human", human(rss));
        field!(out, "used_memory_peak", peak);
        field!(out, "used_memory_peak_human", human(peak));
        field!(
            out,
            "used_memory_peak_perc",
            format!("{:.2}%", pct(used, peak))
        );
        field!(out, "used_memory_overhead", overhead);
        field!(out, "used_memory_startup", startup);
        field!(out, "used_memory_dataset", dataset);
        field!(
            out,
            "used_memory_dataset_perc",
            format!("{:.2}%", pct(dataset, used.saturating_sub(startup)))
        );
        // The allocator's own count of live bytes, from the host.
        field!(out, "allocator_allocated", n.used_memory);
        field!(out, "allocator_active", n.used_memory);
        field!(out, "allocator_resident", rss);
        field!(out, "total_system_memory", n.host.total_system_memory);
        field!(
            out,
            "total_system_memory_human",
            human(n.host.total_system_memory)
        );
        field!(out, "used_memory_lua", lua);
        field!(out, "used_memory_vm_eval", lua);
        field!(out, "used_memory_lua_human", human(lua));
        field!(out, "used_memory_scripts_eval", 0);
        field!(out, "number_of_cached_scripts", 0);
        field!(out, "number_of_functions", 0);
        field!(out, "number_of_libraries", 0);
        field!(out, "used_memory_vm_functions", lua);
        field!(out, "used_memory_vm_total", 2 * lua);
        field!(out, "used_memory_vm_total_human", human(2 * lua));
        field!(out, "used_memory_functions", 0);
        field!(out, "used_memory_scripts", 0);
        field!(out, "used_memory_scripts_human", human(0));
        field!(out, "maxmemory", n.config.maxmemory);
        field!(out, "maxmemory_human", human(n.config.maxmemory as u64));
        field!(out, "maxmemory_policy", n.config.maxmemory_policy);
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let alloc = n.used_memory;
        field!(out, "allocator_frag_ratio", "1.00");
        field!(out, "allocator_frag_bytes", 0);
        field!(
            out,
            "allocator_rss_ratio",
            format!("{:.2}", ratio(rss, alloc))
        );
        field!(out, "allocator_rss_bytes", rss as i64 - alloc as i64);
        field!(out, "rss_overhead_ratio", "1.00");
        field!(out, "rss_overhead_bytes", 0);
        field!(
            out,
            "mem_fragmentation_ratio",
            format!("{:.2}", ratio(rss, used))
        );
        field!(out, "mem_fragmentation_bytes", rss as i64 - used as i64);
        field!(out, "mem_not_counted_for_evict", 0);
        field!(out, "mem_replication_backlog", 0);
        field!(out, "mem_total_replication_buffers", 0);
        field!(out, "mem_clients_slaves", 0);
        field!(out, "mem_clients_normal", n.clients_memory);
        field!(out, "mem_cluster_links", 0);
        field!(out, "mem_aof_buffer", 0);
        field!(out, "mem_allocator", n.host.mem_allocator);
        field!(out, "active_defrag_running", 0);
        field!(out, "lazyfree_pending_objects", 0);
        field!(out, "lazyfreed_objects", n.lazyfree.freed_objects);
    }
    if section("persistence", "Persistence", &mut out) {
        let p = &n.persist;
        let (done, total) = p.save_progress();
        field!(out, "loading", p.loading as u8);
        field!(out, "async_loading", 0);
        field!(out, "current_cow_peak", 0);
        field!(out, "current_cow_size", 0);
        field!(out, "current_cow_size_age", 0);
        field!(out, "current_fork_perc", "0.00");
        field!(out, "current_save_keys_processed", done);
        field!(out, "current_save_keys_total", total);
        field!(out, "rdb_changes_since_last_save", n.dirty);
        field!(out, "rdb_bgsave_in_progress", p.bgsave_in_progress() as u8);
        field!(out, "rdb_last_save_time", p.lastsave);
        field!(
            out,
            "rdb_last_bgsave_status",
            if p.last_bgsave_ok { "ok" } else { "err" }
        );
        field!(
            out,
            "rdb_last_bgsave_time_sec",
            p.last_bgsave_time_sec.map_or(-1, |s| s as i64)
        );
        field!(
            out,
            "rdb_current_bgsave_time_sec",
            p.current_save_secs(n.now).map_or(-1, |s| s as i64)
        );
        field!(out, "rdb_saves", p.rdb_saves);
        field!(out, "rdb_last_cow_size", 0);
        field!(out, "rdb_last_load_keys_expired", p.last_load_keys_expired);
        field!(out, "rdb_last_load_keys_loaded", p.last_load_keys_loaded);
        let a = &n.aof;
        field!(out, "aof_enabled", a.enabled as u8);
        field!(out, "aof_rewrite_in_progress", a.rewrite_in_progress as u8);
        field!(out, "aof_rewrite_scheduled", a.rewrite_scheduled as u8);
        field!(out, "aof_last_rewrite_time_sec", -1);
        field!(out, "aof_current_rewrite_time_sec", -1);
        field!(
            out,
            "aof_last_bgrewrite_status",
            if a.last_rewrite_ok || a.rewrites == 0 {
                "ok"
            } else {
                "err"
            }
        );
        field!(out, "aof_rewrites", a.rewrites);
        field!(out, "aof_rewrites_consecutive_failures", 0);
        field!(
            out,
            "aof_last_write_status",
            if a.write_error.is_none() { "ok" } else { "err" }
        );
        field!(out, "aof_last_cow_size", 0);
        field!(out, "module_fork_in_progress", 0);
        field!(out, "module_fork_last_cow_size", 0);
    }
    if section("stats", "Stats", &mut out) {
        let s = &n.stats;
        field!(out, "total_connections_received", s.connections_received);
        field!(out, "total_commands_processed", s.commands_processed);
        field!(
            out,
            "instantaneous_ops_per_sec",
            n.instantaneous_ops_per_sec()
        );
        field!(out, "total_net_input_bytes", s.net_input_bytes);
        field!(out, "total_net_output_bytes", s.net_output_bytes);
        field!(out, "total_net_repl_input_bytes", 0);
        field!(out, "total_net_repl_output_bytes", 0);
        field!(out, "instantaneous_input_kbps", "0.00");
        field!(out, "instantaneous_output_kbps", "0.00");
        field!(out, "instantaneous_input_repl_kbps", "0.00");
        field!(out, "instantaneous_output_repl_kbps", "0.00");
        field!(out, "rejected_connections", s.rejected_connections);
        field!(out, "sync_full", 0);
        field!(out, "sync_partial_ok", 0);
        field!(out, "sync_partial_err", 0);
        field!(out, "expired_keys", s.expired_keys);
        field!(out, "expired_stale_perc", "0.00");
        field!(out, "expired_time_cap_reached_count", 0);
        field!(out, "expire_cycle_cpu_milliseconds", 0);
        field!(out, "evicted_keys", s.evicted_keys);
        field!(out, "evicted_clients", s.evicted_clients);
        field!(out, "total_eviction_exceeded_time", 0);
        field!(out, "current_eviction_exceeded_time", 0);
        field!(out, "keyspace_hits", s.keyspace_hits);
        field!(out, "keyspace_misses", s.keyspace_misses);
        field!(out, "pubsub_channels", n.pubsub_channels.len());
        field!(out, "pubsub_patterns", n.pubsub_patterns.len());
        field!(out, "pubsubshard_channels", n.pubsub_shard_channels.len());
        field!(out, "latest_fork_usec", 0);
        field!(out, "total_forks", 0);
        field!(out, "migrate_cached_sockets", 0);
        field!(out, "slave_expires_tracked_keys", 0);
        field!(out, "active_defrag_hits", 0);
        field!(out, "active_defrag_misses", 0);
        field!(out, "active_defrag_key_hits", 0);
        field!(out, "active_defrag_key_misses", 0);
        field!(out, "total_active_defrag_time", 0);
        field!(out, "current_active_defrag_time", 0);
        let (_, keys, items, prefixes) = n.tracking.info();
        field!(out, "tracking_total_keys", keys);
        field!(out, "tracking_total_items", items);
        field!(out, "tracking_total_prefixes", prefixes);
        field!(out, "unexpected_error_replies", s.unexpected_error_replies);
        field!(out, "total_error_replies", s.total_error_replies);
        field!(out, "dump_payload_sanitizations", 0);
        field!(out, "total_reads_processed", 0);
        field!(out, "total_writes_processed", 0);
        field!(out, "io_threaded_reads_processed", 0);
        field!(out, "io_threaded_writes_processed", 0);
        field!(out, "reply_buffer_shrinks", 0);
        field!(out, "reply_buffer_expands", 0);
    }
    if section("replication", "Replication", &mut out) {
        field!(out, "role", "master");
        field!(out, "connected_slaves", 0);
        field!(out, "master_failover_state", "no-failover");
        field!(out, "master_replid", n.run_id);
        field!(
            out,
            "master_replid2",
            "0000000000000000000000000000000000000000"
        );
        field!(out, "master_repl_offset", 0);
        field!(out, "second_repl_offset", -1);
        field!(out, "repl_backlog_active", 0);
        field!(out, "repl_backlog_size", 1048576);
        field!(out, "repl_backlog_first_byte_offset", 0);
        field!(out, "repl_backlog_histlen", 0);
    }
    if section("cpu", "CPU", &mut out) {
        field!(out, "used_cpu_sys", format!("{:.6}", n.host.cpu_sys_s));
        field!(out, "used_cpu_user", format!("{:.6}", n.host.cpu_user_s));
        field!(out, "used_cpu_sys_children", "0.000000");
        field!(out, "used_cpu_user_children", "0.000000");
        // One thread does all the work, as Redis's main thread.
        field!(
            out,
            "used_cpu_sys_main_thread",
            format!("{:.6}", n.host.cpu_sys_s)
        );
        field!(
            out,
            "used_cpu_user_main_thread",
            format!("{:.6}", n.host.cpu_user_s)
        );
    }
    // No modules: the section is there, empty, as in Redis without any.
    section("module_list", "Modules", &mut out);
    if section("commandstats", "Commandstats", &mut out) {
        for (name, (calls, rejected, failed)) in &n.stats.per_command {
            let usec = n.observe.commands.get(name).map_or(0, |t| t.usec);
            let per_call = if *calls > 0 {
                usec as f64 / *calls as f64
            } else {
                0.0
            };
            let _ = write!(
                out,
                "cmdstat_{name}:calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls={rejected},failed_calls={failed}\r\n"
            );
        }
    }
    if section("errorstats", "Errorstats", &mut out) {
        for (code, count) in &n.stats.errors {
            let _ = write!(out, "errorstat_{code}:count={count}\r\n");
        }
    }
    if section("latencystats", "Latencystats", &mut out) && n.config.latency_tracking {
        let percentiles = info_percentiles(&n.config);
        for (name, t) in &n.observe.commands {
            if t.histogram.total == 0 {
                continue;
            }
            let values: Vec<String> = percentiles
                .iter()
                .map(|&p| {
                    let us = t.histogram.percentile(p) as f64 / 1000.0;
                    format!("p{}={us:.3}", trim_double(p))
                })
                .collect();
            let _ = write!(
                out,
                "latency_percentiles_usec_{name}:{}\r\n",
                values.join(",")
            );
        }
    }
    if section("cluster", "Cluster", &mut out) {
        field!(out, "cluster_enabled", 0);
    }
    if section("keyspace", "Keyspace", &mut out) {
        for (i, db) in n.dbs.iter().enumerate() {
            if !db.is_empty() {
                let _ = write!(
                    out,
                    "db{i}:keys={},expires={},avg_ttl={}\r\n",
                    db.len(),
                    db.expires.len(),
                    db.avg_ttl_ms
                );
            }
        }
    }
    out
}

/// CONFIG GET parameter [parameter ...]: glob patterns over parameter
/// names; a plain name is answered under the spelling it was asked with
/// (as Redis does), once however often it is asked.
pub fn config_get(cx: &mut Ctx) {
    let mut pairs: Vec<(String, String)> = vec![];
    let mut seen: Vec<&'static str> = vec![];
    for pattern in &cx.argv[2..] {
        if !pattern.iter().any(|b| b"*?[".contains(b)) {
            let asked = String::from_utf8_lossy(pattern).into_owned();
            let Some(name) = Config::names().find(|n| n.eq_ignore_ascii_case(&asked)) else {
                continue;
            };
            if seen.contains(&name) {
                continue;
            }
            if let Some(v) = cx.node.config.get(name) {
                seen.push(name);
                pairs.push((asked, v));
            }
            continue;
        }
        for name in Config::names() {
            if seen.contains(&name) || !crate::glob::matches(pattern, name.as_bytes(), true) {
                continue;
            }
            if let Some(v) = cx.node.config.get(name) {
                seen.push(name);
                pairs.push((name.to_string(), v));
            }
        }
    }
    let out = cx.out();
    out.map(pairs.len());
    for (k, v) in pairs {
        out.bulk(k.as_bytes());
        out.bulk(v.as_bytes());
    }
}

/// CONFIG SET parameter value [parameter value ...]: all or nothing.
pub fn config_set(cx: &mut Ctx) {
    if !cx.argv.len().is_multiple_of(2) {
        return cx.syntax_error();
    }
    let mut next = cx.node.config.clone();
    let mut seen: Vec<String> = vec![];
    for i in (2..cx.argv.len()).step_by(2) {
        let name = String::from_utf8_lossy(&cx.argv[i]).to_ascii_lowercase();
        let value = String::from_utf8_lossy(&cx.argv[i + 1]).into_owned();
        let fail = |why: &str| {
            format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")
        };
        if seen.contains(&name) {
            return cx.error(&fail("duplicate parameter"));
        }
        match next.set(&name, &value, false) {
            Ok(()) => seen.push(name),
            Err(SetError::Unknown) => {
                let msg = format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                    crate::resp::c_str_lossy(&cx.argv[i])
                );
                return cx.error(&msg);
            }
            Err(SetError::Immutable) => return cx.error(&fail("can't set immutable config")),
            Err(SetError::Invalid(why)) => return cx.error(&fail(&why)),
        }
    }
    let appendonly = next.appendonly;
    let maxmemory_changed = next.maxmemory != cx.node.config.maxmemory;
    cx.node.config = next;
    if seen.iter().any(|n| n == "requirepass") {
        crate::acl::requirepass_changed(cx.node);
    }
    cx.node.evictor.policy = Some(crate::evict::Policy::parse(
        &cx.node.config.maxmemory_policy,
    ));
    crate::aof::set_enabled(cx.node, appendonly);
    if maxmemory_changed && cx.node.config.maxmemory > 0 {
        // Redis's updateMaxmemory: warn if already over, evict now.
        let used = cx.node.used_memory_estimate();
        if (cx.node.config.maxmemory as u64) < used {
            tracing::warn!(
                "WARNING: the new maxmemory value set via CONFIG SET ({}) is smaller than the current memory usage ({used}). This will result in key eviction and/or the inability to accept new write commands depending on the maxmemory-policy.",
                cx.node.config.maxmemory
            );
        }
        crate::evict::perform_evictions(cx.node, Some(cx.client));
    }
    cx.out().ok();
}

/// CONFIG RESETSTAT
pub fn config_resetstat(cx: &mut Ctx) {
    cx.node.reset_stats();
    // Redis's resetServerStats calls lazyfreeResetStats too.
    cx.node.lazyfree.freed_objects = 0;
    cx.node.observe.reset_command_stats();
    cx.out().ok();
}

/// CONFIG REWRITE: the reply waits for the file to be renamed in place.
pub fn config_rewrite(cx: &mut Ctx) {
    let conn = cx.client.conn;
    match crate::config_rewrite::start(cx.node, conn) {
        Ok(()) => cx.client.awaiting_disk = true,
        Err(e) => cx.error(e),
    }
}

pub fn config_help(cx: &mut Ctx) {
    cx.reply_help("config");
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: saves first when asked
/// to (SAVE) or when save points are configured (unless NOSAVE); the client
/// gets an error and the server keeps running if that save fails (unless
/// FORCE).
pub fn shutdown(cx: &mut Ctx) {
    let (mut save, mut nosave, mut abort, mut other) = (false, false, false, false);
    let mut force = false;
    for i in 1..cx.argv.len() {
        if cx.arg_is(i, "nosave") {
            nosave = true;
        } else if cx.arg_is(i, "save") {
            save = true;
        } else if cx.arg_is(i, "now") {
            other = true;
        } else if cx.arg_is(i, "force") {
            other = true;
            force = true;
        } else if cx.arg_is(i, "abort") {
            abort = true;
        } else {
            return cx.syntax_error();
        }
    }
    if (abort && (save || nosave || other)) || (save && nosave) {
        return cx.syntax_error();
    }
    if abort {
        return cx.error("ERR No shutdown in progress.");
    }
    tracing::warn!("User requested shutdown...");
    let choice = if save {
        Some(true)
    } else if nosave {
        Some(false)
    } else {
        None
    };
    let conn = cx.client.conn;
    crate::persist::shutdown(cx.node, Some(conn), choice, force);
    if cx.node.shutdown_requested {
        cx.client.close_after_reply = true;
    } else {
        // Saving first: the reply (an error if the save fails) comes later.
        cx.client.awaiting_disk = true;
    }
}

/// DEBUG subcommand: SLEEP, SET-ACTIVE-EXPIRE, HELP. Disabled unless
/// `enable-debug-command` is `yes` (or `local` for loopback clients), as in
/// Redis 7.0.
pub fn debug(cx: &mut Ctx) {
    let allowed = match cx.node.config.enable_debug_command.as_str() {
        "yes" => true,
        "local" => cx.client.peer.starts_with("127.") || cx.client.peer.starts_with("[::1]"),
        _ => false,
    };
    if !allowed {
        return cx.error("ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.");
    }
    if cx.argv.len() == 2 && cx.arg_is(1, "help") {
        return cx.reply_help("debug");
    }
    if cx.argv.len() == 3 && cx.arg_is(1, "sleep") {
        let secs = crate::numeric::parse_f64(&cx.argv[2]).unwrap_or(0.0);
        let micros = (secs * 1e6).max(0.0) as u64;
        // The host sleeps after the command returns, outside the stopwatch:
        // the command's measured duration includes it, as in Redis.
        cx.node.observe.extra_ns = cx.node.observe.extra_ns.saturating_add(micros * 1000);
        cx.node.push_output(Output::Sleep { micros });
        return cx.out().ok();
    }
    if cx.argv.len() >= 2 && cx.arg_is(1, "reload") {
        let conn = cx.client.conn;
        match crate::persist::debug_reload(cx.node, conn) {
            Ok(()) => cx.client.awaiting_disk = true,
            Err(e) => cx.error(e),
        }
        return;
    }
    if cx.argv.len() == 3 && cx.arg_is(1, "set-active-expire") {
        // Redis reads the flag with atoi: "abc" is 0, "2" is on.
        cx.node.active_expire_enabled = atoi(&cx.argv[2]) != 0;
        return cx.out().ok();
    }
    if (3..=5).contains(&cx.argv.len()) && cx.arg_is(1, "populate") {
        return debug_populate(cx);
    }
    if cx.argv.len() == 3 && cx.arg_is(1, "object") {
        return debug_object(cx);
    }
    if cx.argv.len() == 2 && cx.arg_is(1, "digest") {
        let d = dataset_digest(cx.node);
        return cx.out().simple(&hex(&d));
    }
    if cx.argv.len() >= 2 && cx.arg_is(1, "digest-value") {
        let db = cx.client.db;
        let digests: Vec<String> = cx.argv[2..]
            .iter()
            .map(|k| {
                let mut d = [0u8; 20];
                if let Some(e) = cx.node.dbs[db].keys.get(k) {
                    let expires = cx.node.dbs[db].expire_of(k).is_some();
                    object_digest(&mut d, &e.value, expires);
                }
                hex(&d)
            })
            .collect();
        let out = cx.out();
        out.array(digests.len());
        for d in digests {
            out.simple(&d);
        }
        return;
    }
    if cx.argv.len() == 2 && cx.arg_is(1, "change-repl-id") {
        // There is no replication: the id has nothing to invalidate.
        return cx.out().ok();
    }
    if cx.argv.len() == 3 && cx.arg_is(1, "quicklist-packed-threshold") {
        // quicklistisSetPackedThreshold: up to 4 GB minus 1 MB.
        let text = String::from_utf8_lossy(&cx.argv[2]);
        let ok = !text.starts_with('-')
            && crate::config::parse_memory(&text)
                .is_some_and(|n| (0..=(1i64 << 32) - (1 << 20)).contains(&n));
        if !ok {
            return cx
                .error("ERR argument must be a memory value bigger than 1 and smaller than 4gb");
        }
        // Our lists never store an element as a plain (unpacked) node, so
        // the threshold has nothing to change.
        return cx.out().ok();
    }
    let msg = format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
        crate::resp::c_str_lossy(&cx.argv[1])
    );
    cx.error(&msg);
}

/// C's `atoi`: optional blanks and sign, then digits up to the first
/// other byte; 0 if none.
fn atoi(b: &[u8]) -> i64 {
    let mut i = 0;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let neg = i < b.len() && b[i] == b'-';
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let mut n: i64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        n = n.wrapping_mul(10).wrapping_add((b[i] - b'0') as i64);
        i += 1;
    }
    if neg {
        -n
    } else {
        n
    }
}

/// DEBUG POPULATE count [prefix] [size], as Redis's debug.c: string keys
/// `prefix:N` (default prefix `key`) holding `value:N`, or with a size,
/// `value:N` truncated or padded with zero bytes to that size. Existing keys
/// are left alone. Nothing is propagated or notified; WATCH and client
/// tracking see the keys as modified (signalModifiedKey).
fn debug_populate(cx: &mut Ctx) {
    const RANGE: &str = "ERR value is out of range, must be positive";
    let positive = |b: &[u8]| crate::resp::parse_i64(b).filter(|n| *n >= 0);
    let Some(count) = positive(&cx.argv[2]) else {
        return cx.error(RANGE);
    };
    let size = match cx.argv.get(4) {
        Some(b) => match positive(b) {
            Some(n) => n as usize,
            None => return cx.error(RANGE),
        },
        None => 0,
    };
    // Redis first grows the table to `count` buckets and answers this when
    // the allocation fails; a table bigger than the machine's memory would.
    let buckets = (count as u64)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX);
    let ram = cx.node.host.total_system_memory;
    if buckets.saturating_mul(8) > if ram > 0 { ram } else { 1 << 40 } {
        return cx.error("ERR OOM in dictTryExpand");
    }
    let prefix = cx
        .argv
        .get(3)
        .cloned()
        .unwrap_or(bytes::Bytes::from_static(b"key"));
    let db = cx.client.db;
    let lru = cx.lru_now();
    let now_ms = cx.node.now.as_millis();
    for j in 0..count {
        let mut key = Vec::with_capacity(prefix.len() + 12);
        key.extend_from_slice(&prefix);
        key.extend_from_slice(format!(":{j}").as_bytes());
        // snprintf into a 128-byte buffer: at most 127 bytes.
        key.truncate(127);
        let d = &mut cx.node.dbs[db];
        if d.expire_if_needed(&key, now_ms) {
            cx.node.stats.expired_keys += 1;
            crate::notify::key_expired(cx.node, db, &key);
        } else if d.keys.contains_key(&key) {
            continue;
        }
        let mut value = format!("value:{j}").into_bytes();
        if size > 0 {
            value.resize(size, 0);
        }
        cx.node.dbs[db].set(
            bytes::Bytes::from(key.clone()),
            crate::db::Value::Str(crate::db::Str::from_vec(value)),
            lru,
        );
        cx.node.touch_key(cx.client, db, &key);
        crate::tracking::invalidate_key(cx.node, &key);
    }
    cx.out().ok();
}

/// COMMAND: every implemented command's info.
pub fn command(cx: &mut Ctx) {
    let t = Table::get();
    cx.out().array(t.commands.len());
    for c in &t.commands {
        cx.client.reply.frame(&c.info);
    }
}

/// COMMAND COUNT
pub fn command_count(cx: &mut Ctx) {
    let n = Table::get().commands.len() as i64;
    cx.out().int(n);
}

/// Finds a command or subcommand by "name" or "container|sub".
fn lookup_by_full_name(name: &[u8]) -> Option<&'static Command> {
    let t = Table::get();
    match name.iter().position(|&b| b == b'|') {
        None => t.lookup(name),
        Some(i) => t.lookup(&name[..i])?.subcommand(&name[i + 1..]),
    }
}

/// COMMAND INFO [command-name ...]
pub fn command_info(cx: &mut Ctx) {
    if cx.argv.len() == 2 {
        return command(cx);
    }
    let n = cx.argv.len() - 2;
    cx.out().array(n);
    for i in 2..cx.argv.len() {
        match lookup_by_full_name(&cx.argv[i]) {
            Some(c) => cx.client.reply.frame(&c.info),
            None => cx.client.reply.null(),
        }
    }
}

/// COMMAND DOCS [command-name ...]
pub fn command_docs(cx: &mut Ctx) {
    let t = Table::get();
    let found: Vec<&Command> = if cx.argv.len() == 2 {
        t.commands.iter().collect()
    } else {
        cx.argv[2..]
            .iter()
            .filter_map(|n| lookup_by_full_name(n))
            .collect()
    };
    let found: Vec<&Command> = found.into_iter().filter(|c| c.docs.is_some()).collect();
    cx.out().map(found.len());
    for c in found {
        cx.client.reply.bulk(c.name.as_bytes());
        if let Some(d) = &c.docs {
            cx.client.reply.frame(d);
        }
    }
}

/// COMMAND LIST [FILTERBY MODULE name|ACLCAT category|PATTERN pattern]
pub fn command_list(cx: &mut Ctx) {
    enum Filter {
        All,
        Module,
        AclCat(Vec<u8>),
        Pattern(Vec<u8>),
    }
    let filter = match cx.argv.len() {
        2 => Filter::All,
        5 if cx.arg_is(2, "filterby") => {
            let v = cx.argv[4].to_vec();
            if cx.arg_is(3, "module") {
                Filter::Module
            } else if cx.arg_is(3, "aclcat") {
                Filter::AclCat(v)
            } else if cx.arg_is(3, "pattern") {
                Filter::Pattern(v)
            } else {
                return cx.syntax_error();
            }
        }
        _ => return cx.syntax_error(),
    };
    let mut names = vec![];
    let mut visit = |c: &Command| {
        let keep = match &filter {
            Filter::All => true,
            Filter::Module => false,
            Filter::AclCat(cat) => acl_categories(c)
                .iter()
                .any(|x| x.eq_ignore_ascii_case(cat)),
            Filter::Pattern(p) => crate::glob::matches(p, c.name.as_bytes(), true),
        };
        if keep {
            names.push(c.name.clone());
        }
    };
    for c in &Table::get().commands {
        visit(c);
        c.subcommands.iter().for_each(&mut visit);
    }
    let out = cx.out();
    out.array(names.len());
    for n in names {
        out.bulk(n.as_bytes());
    }
}

/// ACL categories of a command, without the '@'.
fn acl_categories(c: &Command) -> Vec<Vec<u8>> {
    let Frame::Array(f) = &c.info else {
        return vec![];
    };
    match f.get(6) {
        Some(Frame::Set(v)) => v
            .iter()
            .filter_map(|x| x.as_bytes())
            .map(|b| b.strip_prefix(b"@").unwrap_or(b).to_vec())
            .collect(),
        _ => vec![],
    }
}

/// COMMAND GETKEYS command [arg ...]
pub fn command_getkeys(cx: &mut Ctx) {
    let args = &cx.argv[2..];
    let Some(mut c) = Table::get().lookup(&args[0]) else {
        return cx.error("ERR Invalid command specified");
    };
    if c.is_container() && args.len() >= 2 {
        match c.subcommand(&args[1]) {
            Some(s) => c = s,
            None => return cx.error("ERR Invalid command specified"),
        }
    }
    if !c.arity_ok(args.len()) {
        return cx.error("ERR Invalid number of arguments specified for command");
    }
    let keys = c.key_positions(args.len());
    if keys.is_empty() {
        return cx.error("ERR The command has no key arguments");
    }
    let keys: Vec<_> = keys.iter().map(|&i| args[i].clone()).collect();
    let out = cx.out();
    out.array(keys.len());
    for k in keys {
        out.bulk(&k);
    }
}

pub fn command_help(cx: &mut Ctx) {
    cx.reply_help("command");
}

/// LOLWUT [VERSION v]: Redis prints art; we print our own line, as the
/// command's output is explicitly unspecified.
pub fn lolwut(cx: &mut Ctx) {
    let text = format!(
        "Cinnabar {} (Redis {} compatible). A deterministic simulation of a key-value store.\n",
        crate::CINNABAR_VERSION,
        crate::REDIS_VERSION
    );
    cx.client.reply.verbatim(text.as_bytes(), "txt");
}

/// MONITOR: from now on, every command the server runs is shown to this
/// client as one status line.
pub fn monitor(cx: &mut Ctx) {
    let conn = cx.client.conn;
    if !cx.node.monitors.contains(&conn) {
        cx.node.monitors.push(conn);
    }
    cx.out().ok();
}

/// SLOWLOG GET [count]: newest first; 10 by default, -1 for all.
pub fn slowlog_get(cx: &mut Ctx) {
    if cx.argv.len() > 3 {
        // Redis's slowlogCommand accepts at most one count and otherwise
        // falls through to its generic subcommand error.
        let msg = format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
            crate::resp::c_str_lossy(&cx.argv[1])
        );
        return cx.error(&msg);
    }
    let count = if cx.argv.len() == 3 {
        match crate::resp::parse_i64(&cx.argv[2]) {
            Some(n) if n >= -1 => n,
            _ => return cx.error("ERR count should be greater than or equal to -1"),
        }
    } else {
        10
    };
    let log = &cx.node.observe.slowlog;
    let n = if count < 0 {
        log.entries.len()
    } else {
        log.entries.len().min(count as usize)
    };
    let out = &mut cx.client.reply;
    out.array(n);
    for e in log.entries.iter().take(n) {
        out.array(6);
        out.int(e.id as i64);
        out.int(e.time_s as i64);
        out.int(e.duration_us as i64);
        out.array(e.argv.len());
        for a in &e.argv {
            out.bulk(a);
        }
        out.bulk(e.peer.as_bytes());
        out.bulk(&e.name);
    }
}

/// SLOWLOG LEN
pub fn slowlog_len(cx: &mut Ctx) {
    let n = cx.node.observe.slowlog.entries.len() as i64;
    cx.out().int(n);
}

/// SLOWLOG RESET
pub fn slowlog_reset(cx: &mut Ctx) {
    cx.node.observe.slowlog.reset();
    cx.out().ok();
}

pub fn slowlog_help(cx: &mut Ctx) {
    cx.reply_help("slowlog");
}

/// LATENCY LATEST: [event, time of the latest sample, its ms, max ms].
pub fn latency_latest(cx: &mut Ctx) {
    let events = &cx.node.observe.events;
    let out = &mut cx.client.reply;
    let live: Vec<_> = events
        .iter()
        .filter_map(|(name, h)| h.samples.back().map(|s| (name, *s, h.max_ms)))
        .collect();
    out.array(live.len());
    for (name, (t, ms), max) in live {
        out.array(4);
        out.bulk(name.as_bytes());
        out.int(t as i64);
        out.int(ms as i64);
        out.int(max as i64);
    }
}

/// LATENCY HISTORY event: [time, ms] pairs, oldest first.
pub fn latency_history(cx: &mut Ctx) {
    let name = String::from_utf8_lossy(&cx.argv[2]).into_owned();
    let samples: Vec<(u64, u64)> = cx
        .node
        .observe
        .events
        .get(&name)
        .map(|h| h.samples.iter().copied().collect())
        .unwrap_or_default();
    let out = cx.out();
    out.array(samples.len());
    for (t, ms) in samples {
        out.array(2);
        out.int(t as i64);
        out.int(ms as i64);
    }
}

/// LATENCY RESET [event ...]: how many event histories were dropped.
pub fn latency_reset(cx: &mut Ctx) {
    let events = &mut cx.node.observe.events;
    let n = if cx.argv.len() == 2 {
        let n = events.len();
        events.clear();
        n
    } else {
        cx.argv[2..]
            .iter()
            .filter(|a| events.remove(&*String::from_utf8_lossy(a)).is_some())
            .count()
    };
    cx.out().int(n as i64);
}

/// LATENCY GRAPH event: an ASCII chart of the event's samples, with
/// Redis's header (the drawing is ours: the command's text is meant for
/// people, not parsers).
pub fn latency_graph(cx: &mut Ctx) {
    let name = String::from_utf8_lossy(&cx.argv[2]).into_owned();
    let Some(h) = cx
        .node
        .observe
        .events
        .get(&name)
        .filter(|h| !h.samples.is_empty())
    else {
        let msg = format!("ERR No samples available for event '{name}'");
        return cx.error(&msg);
    };
    let high = h.samples.iter().map(|s| s.1).max().unwrap_or(0);
    let low = h.samples.iter().map(|s| s.1).min().unwrap_or(0);
    let mut text = format!(
        "{name} - high {high} ms, low {low} ms (all time high {} ms)\n{}\n",
        h.max_ms,
        "-".repeat(80)
    );
    // Four rows of bars, then each sample's age (seconds ago) downwards.
    const ROWS: u64 = 4;
    let now = cx.node.now.as_secs();
    let samples: Vec<(u64, u64)> = h.samples.iter().rev().take(80).rev().copied().collect();
    for row in (1..=ROWS).rev() {
        let line: String = samples
            .iter()
            .map(|&(_, ms)| {
                let level = if high == 0 {
                    0
                } else {
                    (ms * ROWS).div_ceil(high)
                };
                if level >= row {
                    '#'
                } else if level + 1 == row {
                    '_'
                } else {
                    ' '
                }
            })
            .collect();
        text.push_str(&line);
        text.push('\n');
    }
    let ages: Vec<String> = samples
        .iter()
        .map(|&(t, _)| format!("{}s", now.saturating_sub(t)))
        .collect();
    let depth = ages.iter().map(|a| a.len()).max().unwrap_or(0);
    for i in 0..depth {
        let line: String = ages
            .iter()
            .map(|a| a.as_bytes().get(i).map_or(' ', |&b| b as char))
            .collect();
        text.push_str(&line);
        text.push('\n');
    }
    cx.client.reply.verbatim(text.as_bytes(), "txt");
}

/// LATENCY DOCTOR: a human-readable report (Redis's wording for the
/// disabled and the quiet cases; per-event lines like Redis's).
pub fn latency_doctor(cx: &mut Ctx) {
    let o = &cx.node.observe;
    let threshold = cx.node.config.latency_monitor_threshold;
    let mut text = String::new();
    if o.events.is_empty() && threshold == 0 {
        text.push_str("I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n");
    } else if o.events.is_empty() {
        text.push_str("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n");
    } else {
        text.push_str("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
        for (i, (name, h)) in o.events.iter().enumerate() {
            let n = h.samples.len().max(1) as f64;
            let avg = h.samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
            let mad = h
                .samples
                .iter()
                .map(|s| (s.1 as f64 - avg).abs())
                .sum::<f64>()
                / n;
            let period = match (h.samples.front(), h.samples.back()) {
                (Some(a), Some(b)) if h.samples.len() > 1 => {
                    (b.0 - a.0) as f64 / (h.samples.len() - 1) as f64
                }
                _ => 1.0,
            };
            let _ = writeln!(
                text,
                "{}. {name}: {} latency spikes (average {}ms, mean deviation {}ms, period {period:.2} sec). Worst all time event {}ms.",
                i + 1,
                h.samples.len(),
                avg as u64,
                mad as u64,
                h.max_ms
            );
        }
        text.push_str("\nI have a few advices for you:\n\n");
        let slower_ms = cx.node.config.slowlog_log_slower_than / 1000;
        if slower_ms >= threshold {
            let _ = writeln!(text, "- Your current Slow Log configuration only logs events that are slower than your configured latency monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than {}'.", threshold * 1000);
        }
        text.push_str("- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n");
        text.push_str("- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. If you have very large objects that are often deleted, expired, or evicted, try to fragment those objects into multiple smaller objects.\n");
    }
    cx.client.reply.verbatim(text.as_bytes(), "txt");
}

/// One command's LATENCY HISTOGRAM entry: calls, then the cumulative
/// count at each power-of-two microsecond bound where it grows (Redis
/// iterates its hdr histogram from 1024 ns doubling).
fn histogram_entry(out: &mut crate::resp::ReplyBuf, h: &crate::latency::Histogram) {
    out.map(2);
    out.bulk(b"calls");
    out.int(h.total as i64);
    out.bulk(b"histogram_usec");
    let mut points = vec![];
    let (mut previous, mut bound) = (0u64, 1024u64);
    let max = h.max();
    loop {
        let n = h.count_at_most(bound - 1);
        if n > previous {
            points.push((bound / 1000, n));
        }
        previous = n;
        if bound > max || bound >= 1 << 62 {
            break;
        }
        bound *= 2;
    }
    out.map(points.len());
    for (us, n) in points {
        out.int(us as i64);
        out.int(n as i64);
    }
}

/// LATENCY HISTOGRAM [command ...]: per-command latency distributions of
/// the commands that ran (a container name covers its subcommands).
pub fn latency_histogram(cx: &mut Ctx) {
    let stats = &cx.node.observe.commands;
    let mut names: Vec<&String> = vec![];
    if cx.argv.len() == 2 {
        names = stats.keys().collect();
    } else {
        for a in &cx.argv[2..] {
            let want = String::from_utf8_lossy(a).to_ascii_lowercase();
            for k in stats.keys() {
                let hit = *k == want || k.split_once('|').is_some_and(|(c, _)| c == want);
                if hit && !names.contains(&k) {
                    names.push(k);
                }
            }
        }
    }
    names.retain(|n| stats.get(*n).is_some_and(|t| t.histogram.total > 0));
    let out = &mut cx.client.reply;
    out.map(names.len());
    for name in names {
        out.bulk(name.as_bytes());
        if let Some(t) = stats.get(name) {
            histogram_entry(out, &t.histogram);
        }
    }
}

pub fn latency_help(cx: &mut Ctx) {
    cx.reply_help("latency");
}

/// MEMORY USAGE key [SAMPLES count]: the key's estimated bytes (its
/// keyspace entry and its value, collections extrapolated from `count`
/// elements, 5 by default, 0 for all).
pub fn memory_usage(cx: &mut Ctx) {
    let mut samples = crate::memory::SAMPLES;
    let mut i = 3;
    while i < cx.argv.len() {
        if cx.arg_is(i, "samples") && i + 1 < cx.argv.len() {
            let Some(n) = cx.parse_int(i + 1) else {
                return;
            };
            samples = if n < 0 {
                return cx.syntax_error();
            } else {
                n as usize
            };
            i += 2;
        } else {
            return cx.syntax_error();
        }
    }
    let key = cx.argv[2].clone();
    let Some(bytes) = cx
        .lookup_quiet(&key)
        .map(|e| crate::memory::value_bytes_sampled(&e.value, samples))
    else {
        return cx.out().null();
    };
    let total = bytes + crate::memory::key_bytes(key.len());
    cx.out().int(total as i64);
}

/// MEMORY STATS: Redis's field names and nesting (db.N maps), from the
/// engine's estimate and the host's allocator figures.
pub fn memory_stats(cx: &mut Ctx) {
    let n = &*cx.node;
    let used = n.used_memory_estimate();
    let peak = n.used_memory_peak.max(used);
    let startup = crate::memory::BASE_OVERHEAD;
    let dataset: u64 = n.dbs.iter().map(|d| d.used_bytes).sum();
    let overhead = used.saturating_sub(dataset);
    let keys: u64 = n.dbs.iter().map(|d| d.len() as u64).sum();
    let rss = n.used_memory_rss;
    let alloc = n.used_memory;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let dbs: Vec<(usize, u64, u64)> = n
        .dbs
        .iter()
        .enumerate()
        .filter(|(_, d)| !d.is_empty())
        .map(|(i, d)| {
            let main = d.keys.bucket_count() as u64 * 8 + d.len() as u64 * 24;
            let expires = d.expires.len() as u64 * crate::memory::EXPIRE_ENTRY_BYTES;
            (i, main, expires)
        })
        .collect();
    let clients = n.clients_memory;
    let out = &mut cx.client.reply;
    out.map(27 + dbs.len());
    let int = |out: &mut crate::resp::ReplyBuf, k: &str, v: u64| {
        out.bulk(k.as_bytes());
        out.int(v as i64);
    };
    int(out, "peak.allocated", peak);
    int(out, "total.allocated", used);
    int(out, "startup.allocated", startup);
    int(out, "replication.backlog", 0);
    int(out, "clients.slaves", 0);
    int(out, "clients.normal", clients);
    int(out, "cluster.links", 0);
    int(out, "aof.buffer", 0);
    int(out, "lua.caches", 0);
    int(out, "functions.caches", 0);
    for (i, main, expires) in &dbs {
        out.bulk(format!("db.{i}").as_bytes());
        out.map(3);
        int(out, "overhead.hashtable.main", *main);
        int(out, "overhead.hashtable.expires", *expires);
        int(out, "overhead.hashtable.slot-to-keys", 0);
    }
    int(out, "overhead.total", overhead);
    int(out, "keys.count", keys);
    int(
        out,
        "keys.bytes-per-key",
        used.saturating_sub(startup).checked_div(keys).unwrap_or(0),
    );
    int(out, "dataset.bytes", dataset);
    let dbl = |out: &mut crate::resp::ReplyBuf, k: &str, v: f64| {
        out.bulk(k.as_bytes());
        out.double(v);
    };
    dbl(
        out,
        "dataset.percentage",
        ratio(dataset, used.saturating_sub(startup)) * 100.0,
    );
    dbl(out, "peak.percentage", ratio(used, peak) * 100.0);
    int(out, "allocator.allocated", alloc);
    int(out, "allocator.active", alloc);
    int(out, "allocator.resident", rss);
    dbl(out, "allocator-fragmentation.ratio", 1.0);
    int(out, "allocator-fragmentation.bytes", 0);
    dbl(out, "allocator-rss.ratio", ratio(rss, alloc));
    int(out, "allocator-rss.bytes", rss.saturating_sub(alloc));
    dbl(out, "rss-overhead.ratio", 1.0);
    int(out, "rss-overhead.bytes", 0);
    dbl(out, "fragmentation", ratio(rss, used));
    int(out, "fragmentation.bytes", rss.saturating_sub(used));
}

/// MEMORY DOCTOR: Redis's report texts; below 5 MB Redis declines to judge.
pub fn memory_doctor(cx: &mut Ctx) {
    let used = cx.node.used_memory_estimate();
    let text = if used < 5 * 1024 * 1024 {
        "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n"
    } else if cx.node.config.maxmemory > 0 && cx.node.used_memory_rss > 2 * used {
        "Sam, I detected a few issues in this Redis instance memory implants:\n\n * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc.\n\nI'm here to keep you safe, Sam. I want to help you.\n"
    } else {
        "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n"
    };
    cx.client.reply.verbatim(text.as_bytes(), "txt");
}

/// MEMORY MALLOC-STATS: the engine cannot see the allocator's internals
/// (Redis says the same for allocators without a stats dump).
pub fn memory_malloc_stats(cx: &mut Ctx) {
    cx.client
        .reply
        .verbatim(b"Stats not supported for the current allocator", "txt");
}

/// MEMORY PURGE: nothing to ask the allocator from here; +OK as Redis.
pub fn memory_purge(cx: &mut Ctx) {
    cx.out().ok();
}

pub fn memory_help(cx: &mut Ctx) {
    cx.reply_help("memory");
}

/// DEBUG DIGEST: Redis's dataset digest (`computeDatasetDigest`), so two
/// servers holding the same data agree; 40 zeros when empty.
fn dataset_digest(node: &crate::node::Node) -> [u8; 20] {
    let mut fin = [0u8; 20];
    for (j, db) in node.dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        mix_digest(&mut fin, &(j as u32).to_be_bytes());
        for (key, e) in db.keys.iter() {
            let mut d = [0u8; 20];
            mix_digest(&mut d, key);
            object_digest(&mut d, &e.value, db.expire_of(key).is_some());
            xor_digest(&mut fin, &d);
        }
    }
    fin
}

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h = sha1_smol::Sha1::new();
    h.update(data);
    h.digest().bytes()
}

fn xor_digest(digest: &mut [u8; 20], data: &[u8]) {
    for (d, h) in digest.iter_mut().zip(sha1(data)) {
        *d ^= h;
    }
}

fn mix_digest(digest: &mut [u8; 20], data: &[u8]) {
    xor_digest(digest, data);
    *digest = sha1(&digest[..]);
}

/// `xorObjectDigest`: the type, the elements (ordered ones mixed, unordered
/// ones xored), and whether the key expires.
fn object_digest(d: &mut [u8; 20], v: &crate::db::Value, expires: bool) {
    use crate::db::Value;
    let type_id: u32 = match v {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
        #[allow(unreachable_patterns)]
        _ => 6,
    };
    mix_digest(d, &type_id.to_be_bytes());
    match v {
        Value::Str(s) => mix_digest(d, &s.to_vec()),
        Value::List(l) => {
            for e in l.iter() {
                mix_digest(d, e);
            }
        }
        Value::Set(s) => {
            for m in s.iter() {
                match m {
                    crate::commands::sets::Member::Int(n) => {
                        xor_digest(d, itoa::Buffer::new().format(n).as_bytes())
                    }
                    crate::commands::sets::Member::Bytes(b) => xor_digest(d, b),
                }
            }
        }
        Value::ZSet(z) => {
            for (score, m) in z.iter() {
                let mut e = [0u8; 20];
                mix_digest(&mut e, m);
                mix_digest(&mut e, crate::numeric::fmt_double_17g(score).as_bytes());
                xor_digest(d, &e);
            }
        }
        Value::Hash(h) => {
            for (f, val) in h.iter() {
                let mut e = [0u8; 20];
                mix_digest(&mut e, f);
                mix_digest(&mut e, val);
                xor_digest(d, &e);
            }
        }
        // Entries in order as `ms.seq` then fields and values; consumer
        // groups are not part of the digest in Redis either.
        Value::Stream(st) => {
            use crate::stream::StreamId;
            for e in st.range(StreamId::MIN, StreamId::MAX, 0, false) {
                mix_digest(d, format!("{}.{}", e.id.ms, e.id.seq).as_bytes());
                for f in &e.fields {
                    mix_digest(d, f);
                }
            }
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
    if expires {
        xor_digest(d, b"!!expire!!");
    }
}

fn hex(d: &[u8; 20]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// DEBUG OBJECT key: Redis's status line (address, refcount, encoding,
/// serialized length, LRU field and idle time; quicklist figures for lists).
fn debug_object(cx: &mut Ctx) {
    let key = cx.argv[2].clone();
    let now_s = cx.node.now.as_secs();
    let config = cx.node.config.clone();
    let Some(e) = cx.lookup_quiet(&key) else {
        return cx.error("ERR no such key");
    };
    let refcount = match &e.value {
        crate::db::Value::Str(s) => super::strings::refcount(s),
        _ => 1,
    };
    let serialized = crate::rdb::dump_payload(&e.value, &config)
        .len()
        .saturating_sub(11);
    let mut extra = String::new();
    if let crate::db::Value::List(l) = &e.value {
        // Node sizes follow list-max-listpack-size (-2: 8 KB per node).
        let bytes: usize = l.iter().map(|x| x.len() + 2).sum();
        let fill = config.list_max_listpack_size;
        let nodes = if fill < 0 {
            let limit = 4096usize << (-fill).clamp(1, 5) as usize >> 1;
            bytes.div_ceil(limit).max(1)
        } else {
            l.len().div_ceil(fill.max(1) as usize).max(1)
        };
        let _ = write!(
            extra,
            " ql_nodes:{nodes} ql_avg_node:{:.2} ql_listpack_max:{fill} ql_compressed:{} ql_uncompressed_size:{}",
            l.len() as f64 / nodes as f64,
            (config.list_compress_depth > 0) as u8,
            bytes + 6 * nodes
        );
    }
    let line = format!(
        "Value at:{:p} refcount:{refcount} encoding:{} serializedlength:{serialized} lru:{} lru_seconds_idle:{}{extra}",
        &e.value as *const _,
        e.value.encoding_name(),
        e.lru,
        crate::evict::idle_ms(e.lru, now_s) / 1000
    );
    cx.out().simple(&line);
}
