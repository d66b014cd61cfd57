//! The device-PKI subcommands: `ca`, `device` and `cert`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the root CA certificate in PEM (with --chain: issuing CA, then root).
    Export {
        #[arg(long)]
        chain: bool,
    },
    /// Take over an existing CA instead of generating one. Run it before the first `serve`
    /// (the store must not hold a CA yet); the key is sealed under the master key.
    Import {
        #[command(flatten)]
        offline: OfflineArgs,
        /// PEM of the issuing CA certificate (more certificates after it form the chain).
        #[arg(long)]
        cert: PathBuf,
        /// Unencrypted PKCS#8 PEM private key of that certificate.
        #[arg(long)]
        key: PathBuf,
        /// PEM of the rest of the chain up to the root.
        #[arg(long)]
        chain: Option<PathBuf>,
    },
}

/// Where an offline command finds the node's configuration (store, master key, key backend).
#[derive(Debug, Clone, Args)]
pub struct OfflineArgs {
    /// TOML configuration file; `PORTCULLIS_SECTION__KEY` variables override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides `[server] data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Register a device; prints its one-time enrollment secret.
    Register {
        /// The device id (EST user name, certificate CN).
        #[arg(long)]
        id: String,
        #[arg(long)]
        model: Option<String>,
        /// An attribute, `key=value` (repeatable).
        #[arg(long = "attr", value_name = "KEY=VALUE")]
        attrs: Vec<String>,
    },
    /// Register a manufacturing list (CSV with a `device_id` column, optional `model`, every
    /// other column an attribute). Idempotent: devices already registered are skipped.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Write `device_id,enrollment_secret` of newly registered devices here (mode 0600)
        /// instead of standard output.
        #[arg(long)]
        secrets_out: Option<PathBuf>,
    },
    /// List devices.
    List {
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one device.
    Show { id: String },
    /// Suspend a device: its certificates are put on hold, EST refuses it.
    Suspend { id: String },
    /// Resume a suspended device: prints a new enrollment secret; it enrolls again.
    Resume { id: String },
    /// Revoke a device: every certificate it holds, and it can never enroll again.
    Revoke {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Take a device out of service for good.
    Decommission { id: String },
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// List issued certificates.
    List {
        /// Only this device's certificates.
        #[arg(long)]
        device: Option<String>,
        /// Only revoked ones.
        #[arg(long)]
        revoked: bool,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one certificate (with its PEM).
    Show { serial: String },
    /// Revoke one certificate.
    Revoke {
        serial: String,
        /// RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged,
        /// superseded, cessationOfOperation, certificateHold, privilegeWithdrawn.
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
}
