//! Persistence commands (Redis's `rdb.c` front end): SAVE, BGSAVE, LASTSAVE.
//! The saving itself is the state machine in [`crate::persist`].

use crate::command::Handler;
use crate::node::Ctx;

pub fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "save" => save,
        "bgsave" => bgsave,
        "lastsave" => lastsave,
        "bgrewriteaof" => bgrewriteaof,
        _ => return None,
    })
}

/// SAVE: replies +OK once the file is written, fsynced and renamed into
/// place (the client waits; other clients go on, unlike Redis, which blocks
/// everyone).
pub fn save(cx: &mut Ctx) {
    let conn = cx.client.conn;
    match crate::persist::save_command(cx.node, conn) {
        Ok(()) => cx.client.awaiting_disk = true,
        Err(e) => cx.error(e),
    }
}

/// BGSAVE [SCHEDULE]
pub fn bgsave(cx: &mut Ctx) {
    let schedule = match cx.argv.len() {
        1 => false,
        2 if cx.arg_is(1, "schedule") => true,
        _ => return cx.syntax_error(),
    };
    match crate::persist::bgsave_command(cx.node, schedule) {
        Ok(status) => cx.out().simple(status),
        Err(e) => cx.error(e),
    }
}

/// LASTSAVE: unix time of the last successful save.
pub fn lastsave(cx: &mut Ctx) {
    let t = cx.node.persist.lastsave as i64;
    cx.out().int(t);
}

/// BGREWRITEAOF: a new base file from a snapshot of the dataset.
pub fn bgrewriteaof(cx: &mut Ctx) {
    if cx.node.aof.rewrite_in_progress {
        return cx.error("ERR Background append only file rewriting already in progress");
    }
    if cx.node.persist.busy() {
        cx.node.aof.rewrite_scheduled = true;
        return cx
            .out()
            .simple("Background append only file rewriting scheduled");
    }
    match crate::aof::start_rewrite(cx.node) {
        Ok(()) => cx
            .out()
            .simple("Background append only file rewriting started"),
        Err(e) => cx.error(&e),
    }
}
