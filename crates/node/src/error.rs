//! The node's errors: what stops a node from starting or running. Each names
//! the file, address or node it is about.

use std::path::PathBuf;

/// Why the node could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The config file could not be read or is invalid.
    #[error("config: {0}")]
    Config(String),
    /// The config file could not be read or parsed (the message names the
    /// file, section, key and value).
    #[error("{0}")]
    ConfigFile(String),
    /// The node name is not a section of the config.
    #[error("node {name:?} is not in the config (nodes: {})", known.join(", "))]
    UnknownNode { name: String, known: Vec<String> },
    /// A listener could not be opened.
    #[error("cannot listen on {address} ({what}): {source}")]
    Listen {
        address: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The tlog could not be opened or failed.
    #[error("tlog in {}: {source}", dir.display())]
    Tlog {
        dir: PathBuf,
        #[source]
        source: tlog::TlogError,
    },
    /// The store could not be opened or failed.
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    /// The consensus core refused the recovered state.
    #[error("consensus cannot start from the recovered tlog and store: {0}")]
    Start(#[from] consensus::StartError),
    /// The consensus core or the storage failed while running.
    #[error("driver: {0}")]
    Driver(String),
    /// The driver thread could not be started.
    #[error("cannot start the driver thread: {0}")]
    Thread(std::io::Error),
}
