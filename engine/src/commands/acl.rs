//! ACL commands: SETUSER, GETUSER, DELUSER, LIST, USERS, WHOAMI, CAT,
//! GENPASS, LOG, SAVE, LOAD, DRYRUN, HELP. The rules themselves live in
//! [`crate::acl`].
//!
//! ACL SAVE and ACL LOAD go through the disk boundary: the client waits
//! (like SAVE) until the driver reports the file operation.

use crate::acl::{merge_selector_args, Acl, LogContext, LogReason, Universe, User, CATEGORIES};
use crate::command::Handler;
use crate::disk::{DiskError, DiskOp, DiskReply, DiskResult};
use crate::node::{ConnId, Ctx, Node};
use crate::persist::{issue, Purpose};
use bytes::Bytes;

pub fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "acl|setuser" => setuser,
        "acl|getuser" => getuser,
        "acl|deluser" => deluser,
        "acl|list" => list,
        "acl|users" => users,
        "acl|whoami" => whoami,
        "acl|cat" => cat,
        "acl|genpass" => genpass,
        "acl|log" => log,
        "acl|save" => save,
        "acl|load" => load,
        "acl|dryrun" => dryrun,
        "acl|help" => help,
        _ => return None,
    })
}

/// Redis's `addReplySubcommandSyntaxError`, naming the subcommand as typed.
fn subcommand_syntax_error(cx: &mut Ctx) {
    let msg = format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try ACL HELP.",
        String::from_utf8_lossy(&cx.argv[1])
    );
    cx.error(&msg);
}

fn all_channels_default(node: &Node) -> bool {
    node.config.acl_pubsub_default == "allchannels"
}

/// ACL SETUSER username [rule ...]: every rule is applied to a copy; the
/// user changes only if all apply.
fn setuser(cx: &mut Ctx) {
    let name = cx.argv[2].clone();
    if !crate::acl::valid_username(&name) {
        return cx.error("ERR Usernames can't contain spaces or null characters");
    }
    let args: Vec<Vec<u8>> = cx.argv[3..].iter().map(|a| a.to_vec()).collect();
    let rules = match merge_selector_args(&args) {
        Ok(r) => r,
        Err(i) => {
            let msg = format!(
                "ERR Unmatched parenthesis in acl selector starting at '{}'.",
                String::from_utf8_lossy(&args[i])
            );
            return cx.error(&msg);
        }
    };
    let all_channels = all_channels_default(cx.node);
    let old = cx.node.acl.users.get(&name).cloned();
    let mut u = old
        .clone()
        .unwrap_or_else(|| User::new(&name, all_channels));
    for r in &rules {
        if let Err(e) = u.apply(r, all_channels) {
            let msg = format!(
                "ERR Error in ACL SETUSER modifier '{}': {}",
                String::from_utf8_lossy(r),
                e.message()
            );
            return cx.error(&msg);
        }
    }
    if let Some(old) = &old {
        kill_pubsub_clients_if_needed(cx, &u, old);
    }
    cx.node.acl.users.insert(name, u);
    cx.out().ok();
}

/// Subscribers of a user whose channel rules no longer cover their
/// subscriptions are disconnected (Redis's `ACLKillPubsubClientsIfNeeded`).
fn kill_pubsub_clients_if_needed(cx: &mut Ctx, new: &User, old: &User) {
    let name = &new.name;
    let doomed: Vec<ConnId> = cx
        .node
        .clients
        .values()
        .filter(|c| c.user.as_ref() == Some(name))
        .filter(|c| c.subscription_count() > 0 || !c.shard_channels.is_empty())
        .filter(|c| !new.keeps_subscriptions(old, &c.channels, &c.patterns, &c.shard_channels))
        .map(|c| c.conn)
        .collect();
    for conn in doomed {
        cx.node.kill_client(conn);
    }
    let c = &*cx.client;
    if c.user.as_ref() == Some(name)
        && (c.subscription_count() > 0 || !c.shard_channels.is_empty())
        && !new.keeps_subscriptions(old, &c.channels, &c.patterns, &c.shard_channels)
    {
        cx.client.close_after_reply = true;
    }
}

/// ACL GETUSER username
fn getuser(cx: &mut Ctx) {
    let Some(u) = cx.node.acl.users.get(&cx.argv[2]).cloned() else {
        return cx.out().null();
    };
    let out = cx.out();
    out.map(6);
    out.bulk(b"flags");
    let flags = u.flags();
    out.set(flags.len());
    for f in flags {
        out.bulk(f.as_bytes());
    }
    out.bulk(b"passwords");
    out.array(u.passwords.len());
    for p in &u.passwords {
        out.bulk(p.as_bytes());
    }
    let root = &u.selectors[0];
    out.bulk(b"commands");
    out.bulk(root.describe_commands().as_bytes());
    out.bulk(b"keys");
    out.bulk(&root.describe_keys());
    out.bulk(b"channels");
    out.bulk(&root.describe_channels());
    out.bulk(b"selectors");
    out.array(u.selectors.len() - 1);
    for s in &u.selectors[1..] {
        out.map(3);
        out.bulk(b"commands");
        out.bulk(s.describe_commands().as_bytes());
        out.bulk(b"keys");
        out.bulk(&s.describe_keys());
        out.bulk(b"channels");
        out.bulk(&s.describe_channels());
    }
}

/// ACL DELUSER username [username ...]: their clients are disconnected.
fn deluser(cx: &mut Ctx) {
    let mut deleted = 0;
    for i in 2..cx.argv.len() {
        if cx.argv[i].as_ref() == b"default" {
            return cx.error("ERR The 'default' user cannot be removed");
        }
    }
    for i in 2..cx.argv.len() {
        let name = cx.argv[i].clone();
        if cx.node.acl.users.remove(&name).is_some() {
            deleted += 1;
            cx.node.kill_clients_of_user(cx.client, &name);
        }
    }
    cx.out().int(deleted);
}

/// ACL LIST
fn list(cx: &mut Ctx) {
    let lines: Vec<Vec<u8>> = cx
        .node
        .acl
        .users
        .values()
        .map(|u| {
            let mut l = b"user ".to_vec();
            l.extend_from_slice(&u.name);
            l.push(b' ');
            l.extend_from_slice(&u.describe());
            l
        })
        .collect();
    let out = cx.out();
    out.array(lines.len());
    for l in lines {
        out.bulk(&l);
    }
}

/// ACL USERS
fn users(cx: &mut Ctx) {
    let names: Vec<Bytes> = cx.node.acl.users.keys().cloned().collect();
    let out = cx.out();
    out.array(names.len());
    for n in names {
        out.bulk(&n);
    }
}

/// ACL WHOAMI
fn whoami(cx: &mut Ctx) {
    let name = cx.client.user.clone().unwrap_or_default();
    cx.out().bulk(&name);
}

/// ACL CAT [category]
fn cat(cx: &mut Ctx) {
    if cx.argv.len() > 3 {
        return subcommand_syntax_error(cx);
    }
    if cx.argv.len() == 2 {
        let out = cx.out();
        out.array(CATEGORIES.len());
        for c in CATEGORIES {
            out.bulk(c.as_bytes());
        }
        return;
    }
    let bit = crate::acl::category_bit(&cx.argv[2]);
    if bit == 0 {
        let msg = format!(
            "ERR Unknown category '{}'",
            String::from_utf8_lossy(&cx.argv[2])
        );
        return cx.error(&msg);
    }
    let names: Vec<&str> = Universe::get()
        .cmds
        .iter()
        .filter(|c| c.categories & bit != 0)
        .map(|c| c.name.as_str())
        .collect();
    let out = cx.out();
    out.array(names.len());
    for n in names {
        out.bulk(n.as_bytes());
    }
}

/// ACL GENPASS [bits]: random hex from the node's seeded RNG.
fn genpass(cx: &mut Ctx) {
    let mut bits = 256;
    if cx.argv.len() == 3 {
        let Some(n) = cx.parse_int(2) else { return };
        if n <= 0 || n > 4096 {
            return cx.error("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096");
        }
        bits = n as usize;
    } else if cx.argv.len() > 3 {
        return subcommand_syntax_error(cx);
    }
    let chars = bits.div_ceil(4);
    let mut s = String::with_capacity(chars + 8);
    while s.len() < chars {
        let r = rand_core::RngCore::next_u32(&mut cx.node.rng);
        s.push_str(&format!("{r:08x}"));
    }
    s.truncate(chars);
    cx.out().bulk(s.as_bytes());
}

/// ACL LOG [count | RESET]
fn log(cx: &mut Ctx) {
    if cx.argv.len() > 3 {
        return subcommand_syntax_error(cx);
    }
    let mut count = 10i64;
    if cx.argv.len() == 3 {
        if cx.arg_is(2, "reset") {
            cx.node.acl.log.clear();
            return cx.out().ok();
        }
        let Some(n) = cx.parse_int(2) else { return };
        count = n.max(0);
    }
    let now = cx.node.now.as_millis();
    let entries: Vec<crate::acl::LogEntry> = cx
        .node
        .acl
        .log
        .iter()
        .take(count as usize)
        .cloned()
        .collect();
    let out = cx.out();
    out.array(entries.len());
    for e in entries {
        out.map(7);
        out.bulk(b"count");
        out.int(e.count as i64);
        out.bulk(b"reason");
        out.bulk(match e.reason {
            LogReason::Command => b"command",
            LogReason::Key => b"key",
            LogReason::Channel => b"channel",
            LogReason::Auth => b"auth",
        });
        out.bulk(b"context");
        out.bulk(match e.context {
            LogContext::Toplevel => b"toplevel".as_slice(),
            LogContext::Multi => b"multi",
            LogContext::Lua => b"lua",
        });
        out.bulk(b"object");
        out.bulk(&e.object);
        out.bulk(b"username");
        out.bulk(&e.username);
        out.bulk(b"age-seconds");
        out.double((now - e.ctime_ms) as f64 / 1000.0);
        out.bulk(b"client-info");
        out.bulk(e.client_info.as_bytes());
    }
}

/// ACL DRYRUN username command [arg ...]
fn dryrun(cx: &mut Ctx) {
    let Some(u) = cx.node.acl.users.get(&cx.argv[2]).cloned() else {
        let msg = format!(
            "ERR User '{}' not found",
            String::from_utf8_lossy(&cx.argv[2])
        );
        return cx.error(&msg);
    };
    let argv = &cx.argv[3..];
    let table = crate::command::Table::get();
    let cmd = table.lookup(&argv[0]).and_then(|c| {
        if c.is_container() && argv.len() >= 2 {
            c.subcommand(&argv[1])
        } else {
            Some(c)
        }
    });
    let Some(cmd) = cmd else {
        let msg = format!(
            "ERR Command '{}' not found",
            String::from_utf8_lossy(&argv[0])
        );
        return cx.error(&msg);
    };
    if !cmd.arity_ok(argv.len()) {
        let msg = format!("ERR wrong number of arguments for '{}' command", cmd.name);
        return cx.error(&msg);
    }
    match u.check(cmd, argv) {
        Ok(()) => cx.out().ok(),
        Err(d) => {
            let m = d.verbose_message(cmd, argv);
            cx.out().bulk(&m);
        }
    }
}

fn help(cx: &mut Ctx) {
    cx.reply_help("acl");
}

const NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

/// The steps of ACL SAVE and ACL LOAD at the disk boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclDiskStep {
    /// ACL LOAD read the file.
    Loaded {
        conn: ConnId,
    },
    /// ACL SAVE wrote the temp file; fsync then rename follow.
    Written {
        conn: ConnId,
    },
    Synced {
        conn: ConnId,
    },
    Renamed {
        conn: ConnId,
    },
}

fn acl_path(node: &Node) -> String {
    crate::disk::join(&node.config.dir, &node.config.aclfile)
}

/// ACL SAVE: a temp file, fsynced, renamed over the ACL file.
fn save(cx: &mut Ctx) {
    if cx.node.config.aclfile.is_empty() {
        return cx.error(NO_ACLFILE);
    }
    let path = acl_path(cx.node);
    let data = Bytes::from(cx.node.acl.to_file_text());
    let conn = cx.client.conn;
    cx.client.awaiting_disk = true;
    issue(
        cx.node,
        DiskOp::Write {
            path: format!("{path}.tmp"),
            data,
        },
        Purpose::Acl(AclDiskStep::Written { conn }),
    );
}

/// ACL LOAD: reads the file; the users are replaced only if it all parses.
fn load(cx: &mut Ctx) {
    if cx.node.config.aclfile.is_empty() {
        return cx.error(NO_ACLFILE);
    }
    let path = acl_path(cx.node);
    let conn = cx.client.conn;
    cx.client.awaiting_disk = true;
    issue(
        cx.node,
        DiskOp::Read { path },
        Purpose::Acl(AclDiskStep::Loaded { conn }),
    );
}

const SAVE_FAILED: &str =
    "ERR There was an error trying to save the ACLs. Please check the server logs for more information";

/// A disk step of ACL SAVE or LOAD completed.
pub(crate) fn disk_done(node: &mut Node, step: AclDiskStep, result: DiskResult) {
    let path = acl_path(node);
    match step {
        AclDiskStep::Written { conn } => match result {
            Ok(_) => issue(
                node,
                DiskOp::Fsync {
                    path: format!("{path}.tmp"),
                },
                Purpose::Acl(AclDiskStep::Synced { conn }),
            ),
            Err(e) => {
                tracing::warn!("ACL SAVE: writing {path}.tmp: {e}");
                node.reply_to_waiting(conn, Some(SAVE_FAILED));
            }
        },
        AclDiskStep::Synced { conn } => match result {
            Ok(_) => issue(
                node,
                DiskOp::Rename {
                    from: format!("{path}.tmp"),
                    to: path,
                },
                Purpose::Acl(AclDiskStep::Renamed { conn }),
            ),
            Err(e) => {
                tracing::warn!("ACL SAVE: fsync of {path}.tmp: {e}");
                node.reply_to_waiting(conn, Some(SAVE_FAILED));
            }
        },
        AclDiskStep::Renamed { conn } => match result {
            Ok(_) => node.reply_to_waiting(conn, None),
            Err(e) => {
                tracing::warn!("ACL SAVE: renaming to {path}: {e}");
                node.reply_to_waiting(conn, Some(SAVE_FAILED));
            }
        },
        AclDiskStep::Loaded { conn } => {
            let text = match result {
                Ok(DiskReply::Data(d)) => d,
                Ok(_) => Bytes::new(),
                Err(e) => {
                    let msg = format!(
                        "ERR Error loading ACLs, opening file '{}': {}",
                        node.config.aclfile,
                        match e {
                            DiskError::NotFound => "No such file or directory".to_string(),
                            e => e.to_string(),
                        }
                    );
                    return node.reply_to_waiting(conn, Some(&msg));
                }
            };
            let all = all_channels_default(node);
            match Acl::parse_file(&text, &node.config.aclfile, all) {
                Ok(users) => {
                    let old = std::mem::replace(&mut node.acl.users, users);
                    // Redis frees every old user but the default one,
                    // disconnecting their clients, even if unchanged.
                    for name in old.keys().filter(|n| n.as_ref() != b"default") {
                        let conns: Vec<ConnId> = node
                            .clients
                            .values()
                            .filter(|c| c.user.as_ref() == Some(name))
                            .map(|c| c.conn)
                            .collect();
                        for c in conns {
                            if c == conn {
                                if let Some(me) = node.clients.get_mut(&c) {
                                    me.close_after_reply = true;
                                }
                            } else {
                                node.kill_client(c);
                            }
                        }
                    }
                    node.reply_to_waiting(conn, None);
                }
                Err(errors) => node.reply_to_waiting(conn, Some(&format!("ERR {errors}"))),
            }
        }
    }
}
