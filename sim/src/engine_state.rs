//! What the simulator reads from a live engine besides its replies: whether
//! it would refuse a command outright (loading, writes stopped after a
//! failed save or AOF write). All such reads live here, so an engine change
//! touches one place.

use crate::model::Cmd;
use crate::session::Refusing;
use cinnabar_engine::Node;

/// True if `node` may refuse some commands now (a cheap test before
/// [`refusal`]).
pub fn refusing(node: &Node) -> bool {
    !node.aof.replaying
        && (node.persist.loading
            || cinnabar_engine::persist::writes_refused(node)
            || cinnabar_engine::aof::write_error(node).is_some())
}

/// What `node` refuses now, to judge the requests an input runs by the
/// state before it.
pub fn capture(node: &Node) -> Refusing {
    if !refusing(node) {
        return Refusing::default();
    }
    Refusing {
        writes: cinnabar_engine::persist::writes_refused(node)
            || cinnabar_engine::aof::write_error(node).is_some(),
        loading: node.persist.loading,
    }
}

/// The error code a node refusing as `r` says answers `cmd` with, without
/// running it (the checks of `Node::execute`, in its order). An EXEC whose
/// queue holds writes counts as a write (Redis's `processCommand`).
pub fn refusal(r: Refusing, cmd: &Cmd, exec_writes: bool) -> Option<&'static str> {
    use cinnabar_engine::command::{flags, Table};
    if !r.writes && !r.loading {
        return None;
    }
    let argv = cmd.argv();
    let top = Table::get().lookup(&argv[0])?;
    let sub = top
        .is_container()
        .then(|| top.subcommand(argv.get(1)?))
        .flatten();
    let c = sub.unwrap_or(top);
    if r.writes && (c.has(flags::WRITE) || c.name == "ping" || exec_writes) {
        return Some("MISCONF");
    }
    if r.loading && !c.has(flags::LOADING) {
        return Some("LOADING");
    }
    None
}

/// True if the node has the client on `conn` blocked in a command.
pub fn blocked(node: &Node, conn: u64) -> bool {
    node.clients
        .get(&cinnabar_engine::ConnId(conn))
        .is_some_and(|c| c.blocked.is_some())
}
