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
    ///
    /// The secrets of newly registered devices are written as CSV, one device per line after
    /// a header: `device_id,enrollment_secret`, or with --with-keys
    /// `device_id,enrollment_secret,device_key_id,device_key` (the key base64url, 32 bytes;
    /// both key columns empty for a device whose key could not be created, which the command
    /// reports and exits non-zero for).
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Write the secrets of newly registered devices here (a new file, mode 0600)
        /// instead of standard output.
        #[arg(long)]
        secrets_out: Option<PathBuf>,
        /// Also create one symmetric key per newly registered device and write it next to its
        /// enrollment secret (needs --secrets-out: keys are never printed to a terminal).
        #[arg(long, requires = "secrets_out")]
        with_keys: bool,
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
    /// Symmetric keys of a device, for sensors that cannot do public-key cryptography.
    #[command(subcommand)]
    Key(DeviceKeyCommand),
}

/// `portcullis device key ...`: a device's symmetric keys (32 random bytes each, stored only
/// sealed under the master key; the key itself is shown once, when it is created).
#[derive(Debug, Subcommand)]
pub enum DeviceKeyCommand {
    /// Create a key for the device; prints it once (base64url, 32 bytes).
    Create {
        /// The device id.
        id: String,
    },
    /// Create a new key; the device's older keys stop working after the overlap.
    Rotate {
        /// The device id.
        id: String,
        /// Seconds the older keys keep working (0: they stop at once; at most 30 days).
        #[arg(long, value_name = "SECS", default_value_t = 86_400)]
        overlap: u32,
    },
    /// List the device's keys: ids, creation times and deadlines, never the keys.
    List {
        /// The device id.
        id: String,
    },
    /// Delete one of the device's keys: the device can no longer use it.
    Delete {
        /// The device id.
        id: String,
        /// The key id (as `device key list` shows it).
        key_id: String,
    },
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
