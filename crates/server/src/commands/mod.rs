//! The CLI's subcommands other than `serve`.

// The commands read the admin API's JSON answers with `value["member"]`, which yields `Null`
// for a missing member or a non-object and never panics (serde_json's `Index` for `Value`);
// the lint cannot tell that from slice indexing. Slices here use `get`.
#![allow(
    clippy::indexing_slicing,
    reason = "serde_json::Value indexing returns Null instead of panicking"
)]

pub mod alerts;
pub mod api;
pub mod audit;
pub mod audit_archive;
pub mod audit_offline;
pub mod bench;
pub mod ca;
pub mod cert;
pub mod client;
pub mod command;
pub mod device;
pub mod federation;
pub mod key;
pub mod output;
pub mod rewrap;
pub mod settings;
pub mod store_copy;
pub mod telemetry;
pub mod trust;
pub mod update;
pub mod values;

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

/// A store named on the command line: its URL and, for PostgreSQL, an optional password file
/// (so offline commands need no password in the URL, like nodes with `[store] password_file`).
#[derive(Debug, Clone, Copy)]
pub struct StoreArg<'a> {
    pub url: &'a str,
    pub password_file: Option<&'a std::path::Path>,
}

impl<'a> StoreArg<'a> {
    pub fn new(url: &'a str, password_file: Option<&'a std::path::Path>) -> Self {
        Self { url, password_file }
    }

    /// Opens (and so migrates) the store; an SQLite file it creates is private (see
    /// [`create_private_sqlite_file`]).
    pub async fn open(&self) -> Result<std::sync::Arc<dyn portcullis_store::Store>, CommandError> {
        let password = self
            .password_file
            .map(|path| crate::config::read_password_file(path, "--password-file"))
            .transpose()
            .map_err(|e| CommandError::Usage(e.to_string()))?;
        create_private_sqlite_file(self.url)?;
        portcullis_store::open_with_password(self.url, password.as_ref().map(|p| p.as_str()))
            .await
            .map_err(|e| CommandError::Failed(e.to_string()))
    }
}

impl StoreArg<'_> {
    /// For `store copy`: an `sqlite:` store must not be in use by a node (which holds an
    /// exclusive lock on the file while it runs, `bootstrap::claim_embedded_store`): the copy
    /// would miss what the node writes meanwhile, or the node would start on a half-copied
    /// target. The source must exist (a missing one would be created empty and "copied").
    /// The returned lock keeps nodes off the file until the copy is done; `None` for other
    /// URLs.
    pub fn claim_for_copy(&self, source: bool) -> Result<Option<std::fs::File>, CommandError> {
        let Some(path) = sqlite_file(self.url) else {
            return Ok(None);
        };
        if source && !path.exists() {
            return Err(CommandError::Usage(format!(
                "{} does not exist",
                path.display()
            )));
        }
        create_private_sqlite_file(self.url)?;
        let file = std::fs::File::open(path)
            .map_err(|e| CommandError::Failed(format!("cannot open {}: {e}", path.display())))?;
        let locked = if source {
            file.try_lock_shared()
        } else {
            file.try_lock()
        };
        match locked {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(CommandError::Failed(format!(
                "{} is in use by a running node: stop it first",
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(CommandError::Failed(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }
}

/// The file of an `sqlite:` URL, as `portcullis_store::open_with_password` reads it; `None`
/// for other URLs.
fn sqlite_file(url: &str) -> Option<&std::path::Path> {
    let path = url.strip_prefix("sqlite:")?;
    Some(std::path::Path::new(
        path.strip_prefix("//").unwrap_or(path),
    ))
}

/// Creates the file of an `sqlite:` store with mode 0600 before SQLite does (with 0644 under
/// the usual umask): like a node's own database, a copy or a freshly migrated store holds the
/// pepper and the sealed keys, and SQLite gives its `-wal` and `-shm` files the same mode. An
/// existing file is left as it is; other URLs are not files.
fn create_private_sqlite_file(url: &str) -> Result<(), CommandError> {
    let Some(path) = sqlite_file(url) else {
        return Ok(());
    };
    crate::bootstrap::create_private_file(path).map_err(|e| match e {
        crate::bootstrap::BootstrapError::DataDir { path, source } => {
            CommandError::Failed(format!("cannot create {}: {source}", path.display()))
        }
        other => CommandError::Failed(other.to_string()),
    })
}
