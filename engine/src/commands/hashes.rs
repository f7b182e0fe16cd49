//! Hash commands. Work in progress: the value type exists so the keyspace
//! knows it; commands arrive with the collections work (issue 3).

use crate::command::Handler;

/// A hash value.
#[derive(Debug, Clone, Default)]
pub struct Hash {}

impl Hash {
    /// OBJECT ENCODING's name for the current representation.
    pub fn encoding_name(&self) -> &'static str {
        "hashtable"
    }
}

/// This module's commands, by lowercase name.
pub fn handler(_name: &str) -> Option<Handler> {
    None
}
