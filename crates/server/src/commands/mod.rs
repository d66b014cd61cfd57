//! The CLI's subcommands other than `serve`.

pub mod api;
pub mod audit;
pub mod bench;
pub mod ca;
pub mod cert;
pub mod client;
pub mod device;
pub mod key;
pub mod output;
pub mod rewrap;
pub mod store_copy;

/// A command failure, mapped to the exit code by `main`.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Wrong use of the command line: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The operation failed: exit 1.
    #[error("{0}")]
    Failed(String),
}
