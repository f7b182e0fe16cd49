//! What the simulator reads from a live engine besides its replies: whether
//! it would refuse a command outright (loading, writes stopped after a
//! failed save or AOF write). All such reads live here, so an engine change
//! touches one place.

use cinnabar_engine::Node;

/// True if `node` may refuse some commands now (a cheap test before
/// [`refusal`]).
pub fn refusing(node: &Node) -> bool {
    !node.aof.replaying
        && (node.persist.loading
            || cinnabar_engine::persist::writes_refused(node)
            || cinnabar_engine::aof::write_error(node).is_some())
}

/// The error prefix `node` would answer `name` with, without running it,
/// if it refuses it now (the checks of `Node::execute`, in its order).
pub fn refusal(node: &Node, name: &str) -> Option<&'static str> {
    use cinnabar_engine::command::{flags, Table};
    let cmd = Table::get().lookup(name.as_bytes())?;
    if (cmd.has(flags::WRITE) || cmd.name == "ping")
        && !node.aof.replaying
        && (cinnabar_engine::persist::writes_refused(node)
            || cinnabar_engine::aof::write_error(node).is_some())
    {
        return Some("MISCONF");
    }
    if node.persist.loading && !node.aof.replaying && !cmd.has(flags::LOADING) {
        return Some("LOADING");
    }
    None
}
