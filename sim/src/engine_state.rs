//! What the simulator reads from a live engine besides its replies: whether
//! it would refuse a command outright (loading, writes stopped after a
//! failed save or AOF write). All such reads live here, so an engine change
//! touches one place.

use cinnabar_engine::Node;

/// True when [`refusal`] reads the engine's state (feature
/// `engine-persist`); otherwise refusals are learnt from replies.
pub const PREDICTS_REFUSALS: bool = cfg!(feature = "engine-persist");

/// The error prefix `node` would answer `name` with, without running it,
/// if it refuses it now (the checks of `Node::execute`, in its order).
#[cfg(feature = "engine-persist")]
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

#[cfg(not(feature = "engine-persist"))]
pub fn refusal(_node: &Node, _name: &str) -> Option<&'static str> {
    None
}

/// The message of an `Output::Fatal` (matched by its debug form, so this
/// builds against engines with and without that variant).
pub fn fatal_message(out: &cinnabar_engine::Output) -> Option<String> {
    let text = format!("{out:?}");
    text.starts_with("Fatal").then_some(text)
}
