//! HyperLogLog commands (PFADD, PFCOUNT, PFMERGE). HLLs are strings, as in
//! Redis. Work in progress (issue 3).

use crate::command::Handler;

/// This module's commands, by lowercase name.
pub fn handler(_name: &str) -> Option<Handler> {
    None
}
