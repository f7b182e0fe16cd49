//! CLIENT PAUSE, CLIENT UNPAUSE and CLIENT NO-EVICT: the client commands
//! that limit or protect clients (the rest of CLIENT is in `connection`).

use crate::command::Handler;
use crate::node::Ctx;

pub fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "client|pause" => client_pause,
        "client|unpause" => client_unpause,
        "client|no-evict" => client_no_evict,
        _ => return None,
    })
}

/// CLIENT PAUSE timeout [WRITE|ALL]: commands wait (all of them, or only
/// writes) until `timeout` milliseconds pass or CLIENT UNPAUSE.
fn client_pause(cx: &mut Ctx) {
    let Some(ms) = crate::resp::parse_i64(&cx.argv[2]) else {
        return cx.error("ERR timeout is not an integer or out of range");
    };
    if ms < 0 {
        return cx.error("ERR timeout is negative");
    }
    let all = match cx.argv.len() {
        3 => true,
        4 if cx.arg_is(3, "all") => true,
        4 if cx.arg_is(3, "write") => false,
        4 => return cx.error("ERR CLIENT PAUSE mode must be WRITE or ALL"),
        _ => {
            let msg = format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(&cx.argv[1])
            );
            return cx.error(&msg);
        }
    };
    let until = cx.node.now.plus_micros((ms as u64).saturating_mul(1000));
    // A second pause sets the mode and extends (never shortens) the end.
    let until = match cx.node.pause {
        Some(p) if p.until > until => p.until,
        _ => until,
    };
    cx.node.pause = Some(crate::limits::Pause { until, all });
    cx.out().ok();
}

/// CLIENT UNPAUSE
fn client_unpause(cx: &mut Ctx) {
    cx.node.unpause();
    cx.out().ok();
}

/// CLIENT NO-EVICT on|off
fn client_no_evict(cx: &mut Ctx) {
    if cx.arg_is(2, "on") {
        cx.client.no_evict = true;
    } else if cx.arg_is(2, "off") {
        cx.client.no_evict = false;
    } else {
        return cx.syntax_error();
    }
    cx.out().ok();
}
