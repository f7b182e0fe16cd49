//! Transactions (Redis's `multi.c`): MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! While a client is in MULTI, the dispatcher (`Node::execute`) queues its
//! commands and replies `+QUEUED`; a command refused while queueing (unknown,
//! wrong arity) makes EXEC abort. WATCHed keys are marked modified by any
//! command that changed the dataset (`Node::touch_command_keys`), and EXEC
//! then replies a null array. Blocking commands inside EXEC don't block.
//! Clients blocked on keys the transaction filled are served after EXEC.

use crate::command::Handler;
use crate::node::{Ctx, Frame};

/// This module's commands, by lowercase name.
pub fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "multi" => multi,
        "exec" => exec,
        "discard" => discard,
        "watch" => watch,
        "unwatch" => unwatch,
        _ => return None,
    })
}

/// MULTI
pub fn multi(cx: &mut Ctx) {
    if cx.client.multi.is_some() {
        return cx.error("ERR MULTI calls can not be nested");
    }
    cx.client.multi = Some(Vec::new());
    cx.client.multi_error = false;
    cx.out().ok();
}

/// DISCARD
pub fn discard(cx: &mut Ctx) {
    if cx.client.multi.take().is_none() {
        return cx.error("ERR DISCARD without MULTI");
    }
    cx.client.multi_error = false;
    cx.node.unwatch_all(cx.client);
    cx.out().ok();
}

/// EXEC: runs the queue and replies with an array of the replies.
pub fn exec(cx: &mut Ctx) {
    let Some(queue) = cx.client.multi.take() else {
        return cx.error("ERR EXEC without MULTI");
    };
    if std::mem::take(&mut cx.client.multi_error) {
        cx.node.unwatch_all(cx.client);
        return cx.error("EXECABORT Transaction discarded because of previous errors.");
    }
    let aborted = cx.client.dirty_cas || cx.node.watched_key_expired(cx.client);
    cx.node.unwatch_all(cx.client);
    if aborted {
        return cx.out().null_array();
    }
    cx.out().array(queue.len());
    cx.client.in_exec = true;
    let mut queue: std::collections::VecDeque<_> = queue.into();
    cx.node.exec_argv_values.clear();
    while let Some(argv) = queue.pop_front() {
        let before = super::keys::ExecStep::before(cx.node, cx.client, &argv);
        cx.node.execute(cx.client, &argv);
        before.after(cx.node, &argv);
        if cx.node.suspending {
            // A script in the transaction runs on in later slices; the
            // remaining commands run after it (`Node::script_finished`).
            let depth = cx.node.call_depth();
            if let Some(running) = &mut cx.node.running_script {
                running.frames.push(Frame::Exec { rest: queue, depth });
            }
            break;
        }
    }
    cx.node.exec_argv_values.clear();
    cx.client.in_exec = false;
}

/// WATCH key [key ...]
pub fn watch(cx: &mut Ctx) {
    if cx.client.multi.is_some() {
        return cx.error("ERR WATCH inside MULTI is not allowed");
    }
    for i in 1..cx.argv.len() {
        let key = cx.argv[i].clone();
        cx.node.watch(cx.client, &key);
    }
    cx.out().ok();
}

/// UNWATCH
pub fn unwatch(cx: &mut Ctx) {
    cx.node.unwatch_all(cx.client);
    cx.out().ok();
}
