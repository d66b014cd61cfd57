//! Why a node could not start or stopped serving: one typed error for `serve`, its PKI
//! set-up and its background jobs, mapped to the exit code (1) and a message once, in `main`.

use std::net::SocketAddr;
use std::path::PathBuf;

use portcullis_pki::PkiError;
use portcullis_store::StoreError;

use crate::bootstrap::BootstrapError;
use crate::config::ConfigError;
use crate::key_manager::KeyManagerError;
use crate::tls_certificate::TlsCertificateError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}{}: {source}", if *tls { " (TLS)" } else { "" })]
    Listen {
        addr: SocketAddr,
        tls: bool,
        source: std::io::Error,
    },
    #[error("server.listen and server.listen_tls are both off: nothing to serve")]
    NothingToServe,
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
    #[error("metrics: {0}")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
    #[error("signing keys: {0}")]
    Keys(#[from] KeyManagerError),
    /// The audit data keys could not be created or opened (`[audit] encrypt`).
    #[error("{0}")]
    Audit(#[from] portcullis_audit::AuditError),
    /// An `[[audit.export]]` could not be set up (its message names it).
    #[error("{0}")]
    AuditExport(String),
    /// `[alerts.webhook]` could not be set up (its URL or secret file); the message names
    /// the setting.
    #[error("{0}")]
    Alerts(String),
    /// The device CA, the OCSP responder or the PKI service could not be set up.
    #[error("{what}: {source}")]
    Pki {
        what: &'static str,
        source: PkiError,
    },
    #[error("pki.manufacturer_ca_file {}: {source}", path.display())]
    ManufacturerCas {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("pki.manufacturer_ca_file {} holds no CERTIFICATE", path.display())]
    NoManufacturerCa { path: PathBuf },
    #[error("HTTPS listener: {0}")]
    Tls(#[from] TlsCertificateError),
    #[error("server error: {0}")]
    Http(std::io::Error),
    /// The device gateway could not be set up (its sink, its listeners).
    #[error("gateway: {0}")]
    Gateway(String),
}

impl ServeError {
    /// A PKI failure while setting up `what`.
    pub fn pki(what: &'static str) -> impl FnOnce(PkiError) -> ServeError {
        move |source| ServeError::Pki { what, source }
    }
}

/// Why an audit checkpoint was not taken (the job retries on its next tick).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("checkpoint lease: {0}")]
    Lease(StoreError),
    #[error("reading the chain head: {0}")]
    Head(StoreError),
    #[error("signing: {0}")]
    Signing(#[from] portcullis_keys::KeyError),
    #[error("storing the checkpoint: {0}")]
    Audit(#[from] portcullis_audit::AuditUnavailable),
}

/// Why an automatic audit archiving run stopped (it retries on its next tick; nothing was
/// removed unless its segment was written and verified first).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveJobError {
    #[error("archive lease: {0}")]
    Lease(StoreError),
    #[error("{0}")]
    Audit(#[from] portcullis_audit::AuditError),
    #[error("writing the segment: {0}")]
    Write(String),
    #[error("the segment does not verify: {0}")]
    Verify(String),
    #[error("recording the archive: {0}")]
    Record(#[from] portcullis_audit::AuditUnavailable),
}
