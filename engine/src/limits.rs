//! Per-client limits that need time or the driver's view: idle `timeout`,
//! and `client-output-buffer-limit` (Redis's `checkClientOutputBufferLimits`).
//!
//! The engine hands replies to the driver as soon as they are produced, so
//! the bytes a slow client has not read yet sit in the driver. The driver
//! reports that backlog with [`Input::OutputBacklog`](crate::Input) whenever
//! it changes noticeably; the engine decides, by the client's class
//! (normal or pub/sub), whether the hard limit is passed (close now) or the
//! soft limit has been passed for longer than its seconds (close at the
//! next check). A driver that never reports makes these limits inert.

use crate::node::{Client, ConnId, Node};
use crate::Time;

/// One class's limits, in bytes and seconds; 0 disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ObufLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_secs: u64,
}

/// The three classes of `client-output-buffer-limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ObufLimits {
    pub normal: ObufLimit,
    pub replica: ObufLimit,
    pub pubsub: ObufLimit,
}

/// Redis's default: `normal 0 0 0 replica 256mb 64mb 60 pubsub 32mb 8mb 60`.
pub const DEFAULT_OBUF_LIMITS: &str =
    "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60";

/// Parses `<class> <hard> <soft> <soft seconds>` groups over `base`
/// (classes not named keep their limits), or Redis's error text.
pub fn parse_obuf_limits(text: &str, base: ObufLimits) -> Result<ObufLimits, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if !words.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    let mut out = base;
    for g in words.chunks(4) {
        let hard = crate::config::parse_memory(g[1]);
        let soft = crate::config::parse_memory(g[2]);
        let secs = crate::resp::parse_i64(g[3].as_bytes());
        let (Some(hard), Some(soft), Some(secs)) = (hard, soft, secs) else {
            return Err(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.".into(),
            );
        };
        if hard < 0 || soft < 0 || secs < 0 {
            return Err(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.".into(),
            );
        }
        let l = ObufLimit {
            hard: hard as u64,
            soft: soft as u64,
            soft_secs: secs as u64,
        };
        match g[0].to_ascii_lowercase().as_str() {
            "normal" => out.normal = l,
            "replica" | "slave" => out.replica = l,
            "pubsub" => out.pubsub = l,
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into())
            }
        }
    }
    Ok(out)
}

/// CONFIG GET's form of the limits (Redis writes bytes and `slave`).
pub fn format_obuf_limits(l: &ObufLimits) -> String {
    format!(
        "normal {} {} {} slave {} {} {} pubsub {} {} {}",
        l.normal.hard,
        l.normal.soft,
        l.normal.soft_secs,
        l.replica.hard,
        l.replica.soft,
        l.replica.soft_secs,
        l.pubsub.hard,
        l.pubsub.soft,
        l.pubsub.soft_secs
    )
}

fn limits(node: &Node) -> ObufLimits {
    parse_obuf_limits(
        &node.config.client_output_buffer_limit,
        parse_obuf_limits(DEFAULT_OBUF_LIMITS, ObufLimits::default()).unwrap_or_default(),
    )
    .unwrap_or_default()
}

/// The class a client's limits come from: pub/sub once it subscribed.
fn class_limit(l: &ObufLimits, c: &Client) -> ObufLimit {
    if c.subscription_count() > 0 || !c.shard_channels.is_empty() {
        l.pubsub
    } else {
        l.normal
    }
}

/// Whether the client must be closed now (Redis's
/// `checkClientOutputBufferLimits`); starts or clears the soft timer.
fn over_limit(c: &mut Client, l: ObufLimit, now: Time) -> bool {
    let used = c.output_backlog;
    if l.hard > 0 && used >= l.hard {
        return true;
    }
    if l.soft > 0 && used >= l.soft {
        match c.obuf_soft_since {
            None => {
                c.obuf_soft_since = Some(now);
                false
            }
            Some(t) => now.as_secs().saturating_sub(t.as_secs()) >= l.soft_secs,
        }
    } else {
        c.obuf_soft_since = None;
        false
    }
}

fn close_for_obuf(node: &mut Node, conn: ConnId) {
    if let Some(c) = node.clients.get(&conn) {
        tracing::warn!(
            client = c.id,
            addr = %c.peer,
            backlog = c.output_backlog,
            "Client scheduled to be closed ASAP for overcoming of output buffer limits."
        );
    }
    node.kill_client(conn);
}

/// The driver reports how many bytes it holds for a client.
pub fn output_backlog(node: &mut Node, conn: ConnId, bytes: u64) {
    let l = limits(node);
    let now = node.now;
    let Some(c) = node.clients.get_mut(&conn) else {
        return;
    };
    c.output_backlog = bytes;
    let lim = class_limit(&l, c);
    if over_limit(c, lim, now) {
        close_for_obuf(node, conn);
    }
}

/// Periodic checks: soft output limits held too long, idle `timeout`.
pub fn cron(node: &mut Node) {
    let l = limits(node);
    let now = node.now;
    let idle_max_s = node.config.timeout.max(0) as u64;
    let mut doomed: Vec<(ConnId, bool)> = Vec::new();
    for c in node.clients.values_mut() {
        if c.output_backlog > 0 || c.obuf_soft_since.is_some() {
            let lim = class_limit(&l, c);
            if over_limit(c, lim, now) {
                doomed.push((c.conn, true));
                continue;
            }
        }
        // Redis's clientsCronHandleTimeout: blocked and pub/sub clients are
        // exempt (a blocked one has its own timeout).
        if idle_max_s > 0
            && c.blocked.is_none()
            && c.subscription_count() == 0
            && c.shard_channels.is_empty()
            && !c.awaiting_disk
            && now.as_secs().saturating_sub(c.last_interaction.as_secs()) > idle_max_s
        {
            doomed.push((c.conn, false));
        }
    }
    for (conn, obuf) in doomed {
        if obuf {
            close_for_obuf(node, conn);
        } else {
            tracing::debug!(?conn, "Closing idle client");
            node.kill_client(conn);
        }
    }
}

/// Dispatch's command lookup under `rename-command`: a new name finds the
/// original command; an original that was renamed (or disabled with "")
/// is unknown. Lua and MULTI go through dispatch, so they see the same.
pub fn lookup_renamed(
    config: &crate::Config,
    name: &[u8],
) -> Option<&'static crate::command::Command> {
    let table = crate::command::Table::get();
    let lower = name.to_ascii_lowercase();
    for (from, to) in &config.rename_commands {
        if !to.is_empty() && to.as_bytes() == lower.as_slice() {
            return table.lookup(from.as_bytes());
        }
    }
    if config
        .rename_commands
        .iter()
        .any(|(from, _)| from.as_bytes() == lower.as_slice())
    {
        return None;
    }
    table.lookup(name)
}

/// CLIENT PAUSE: until when, and whether every command waits (ALL) or only
/// those that write or may replicate (WRITE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    pub until: Time,
    pub all: bool,
}

/// Whether CLIENT PAUSE holds this command back (Redis's processCommand:
/// everything under ALL; under WRITE, commands flagged write or
/// may-replicate, and EXEC of a transaction holding one).
pub fn paused_for(node: &Node, c: &Client, argv: &[bytes::Bytes]) -> bool {
    use crate::command::flags;
    let Some(p) = node.pause else { return false };
    if p.all {
        return true;
    }
    let writes = |argv: &[bytes::Bytes]| {
        resolve(node, argv).is_some_and(|cmd| cmd.has(flags::WRITE | flags::MAY_REPLICATE))
    };
    if writes(argv) {
        return true;
    }
    let is_exec = resolve(node, argv).is_some_and(|cmd| cmd.name == "exec");
    is_exec
        && c.multi
            .as_ref()
            .is_some_and(|q| q.iter().any(|a| writes(a)))
}

/// The command (or subcommand) argv names, as dispatch finds it.
fn resolve(node: &Node, argv: &[bytes::Bytes]) -> Option<&'static crate::command::Command> {
    let cmd = lookup_renamed(&node.config, argv.first()?)?;
    if cmd.is_container() {
        return argv.get(1).and_then(|s| cmd.subcommand(s)).or(Some(cmd));
    }
    Some(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let d = parse_obuf_limits(DEFAULT_OBUF_LIMITS, ObufLimits::default()).unwrap();
        assert_eq!(d.pubsub.hard, 32 << 20);
        assert_eq!(format_obuf_limits(&d), DEFAULT_OBUF_LIMITS);
        let l = parse_obuf_limits("pubsub 1mb 512kb 5", d).unwrap();
        assert_eq!(
            l.pubsub,
            ObufLimit {
                hard: 1 << 20,
                soft: 512 << 10,
                soft_secs: 5
            }
        );
        assert_eq!(l.normal, d.normal);
        assert!(parse_obuf_limits("pubsub 1mb 512kb", d).is_err());
        assert!(parse_obuf_limits("other 1 1 1", d).is_err());
        assert!(parse_obuf_limits("normal -1 1 1", d).is_err());
        assert!(parse_obuf_limits("normal x 1 1", d).is_err());
    }
}
