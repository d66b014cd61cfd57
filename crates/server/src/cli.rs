//! The command line: `portcullis serve` runs a node; every other subcommand is a client of the
//! admin API (so it works the same against a remote node).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `--version`, with the optional features this binary was built with: whether a node takes
/// the SAML grant is otherwise seen only in its discovery document.
#[cfg(feature = "saml")]
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (features: saml)");
#[cfg(not(feature = "saml"))]
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (features: none; the SAML grant needs --features saml)"
);

/// Portcullis: authentication for machines.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version = VERSION)]
pub struct Cli {
    /// How admin commands reach a node: accepted before or after the subcommand
    /// (`portcullis --server URL client list` and `portcullis client list --server URL`).
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node (creates ./portcullis-data on first start).
    Serve(ServeArgs),
    /// Manage machine clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Signing keys: list and rotate.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The gateway's operator keys (trust root, command, settings and update keys) and the
    /// trust list devices verify commands, settings and updates with.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Read and verify the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Alerts raised by attack detection: list, show, acknowledge.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// The device CA: export its certificates, or import an existing CA.
    #[command(subcommand)]
    Ca(crate::cli_pki::CaCommand),
    /// Register and manage devices.
    #[command(subcommand)]
    Device(crate::cli_pki::DeviceCommand),
    /// List, show and revoke issued certificates.
    #[command(subcommand)]
    Cert(crate::cli_pki::CertCommand),
    /// Run the store's schema migrations explicitly (nodes also migrate at start).
    Migrate {
        /// The store, e.g. sqlite:portcullis-data/portcullis.db or postgres://host/db.
        #[arg(long, env = "PORTCULLIS_STORE__URL")]
        store_url: String,
        /// A file holding the PostgreSQL password (as `[store] password_file`).
        #[arg(long, env = "PORTCULLIS_STORE__PASSWORD_FILE")]
        password_file: Option<PathBuf>,
    },
    /// Read what devices sent through the gateway (the embedded sink).
    #[command(subcommand)]
    Telemetry(TelemetryCommand),
    /// Commands to devices: send, approve, show, list; and the command policy's rules.
    /// Commands are sent and approved as the client of the credential file
    /// (--admin-credential: any client's `{"client_id", "client_secret"}` file).
    #[command(subcommand, name = "command")]
    Commands(CommandCommand),
    /// A device's desired settings: show them, or set the next version (as the client of the
    /// credential file; the bootstrap admin has settings:read and settings:write).
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Software updates: publish a release, see its rollout, withdraw it (as the client of the
    /// credential file; the bootstrap admin has updates:read and updates:write).
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Federation trust: outside JWT issuers (JWT bearer grant), SAML identity providers
    /// (SAML 2.0 bearer grant), the policies mapping their subjects to clients, and token
    /// exchange rules (RFC 8693).
    #[command(subcommand)]
    Federation(FederationCommand),
    /// Move a deployment between stores.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Benchmark helpers (load data directly into a stopped node's store).
    #[command(subcommand, hide = true)]
    Bench(BenchCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file; `PORTCULLIS_SECTION__KEY` variables override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides `[server] data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Plain-HTTP listen address, or `off` (overrides `[server] listen`).
    #[arg(long)]
    pub listen: Option<crate::config_values::Listen>,
    /// HTTPS listen address, or `off` (overrides `[server] listen_tls`).
    #[arg(long)]
    pub listen_tls: Option<crate::config_values::Listen>,
    /// Gateway MQTT-over-TLS listen address, or `off` (overrides `[gateway] listen_mqtts`).
    #[arg(long)]
    pub listen_mqtts: Option<crate::config_values::Listen>,
    /// Gateway plain-MQTT listen address, or `off` (overrides `[gateway] listen_mqtt`).
    #[arg(long)]
    pub listen_mqtt: Option<crate::config_values::Listen>,
    /// On a shared (PostgreSQL) store, replace the issuer every node uses with this node's
    /// configured `[server] issuer`. Tokens issued under the old issuer stop being accepted.
    #[arg(long)]
    pub adopt_issuer: bool,
}

#[derive(Debug, Subcommand)]
pub enum TelemetryCommand {
    /// Print accepted device messages, oldest first (the credential needs scope
    /// telemetry:read, which the bootstrap admin has).
    Tail {
        /// Only this device's messages.
        #[arg(long)]
        device: Option<String>,
        /// Start after this position (default 0: the oldest message kept).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Keep waiting for new messages.
        #[arg(long, short = 'f')]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CommandCommand {
    /// Send a command to a device; prints its id and state (queued, or pending_approval when
    /// its rule asks a second principal to approve).
    Send {
        /// The device.
        device: String,
        /// The command, e.g. valve.open.
        name: String,
        /// An argument, KEY=VALUE (repeatable). VALUE is read as JSON if it parses (5, 2.5,
        /// true, "text"), else taken as a string.
        #[arg(long = "arg", value_name = "KEY=VALUE")]
        args: Vec<String>,
        /// The arguments as one JSON object; --arg values are added to it (and win).
        #[arg(long, value_name = "JSON")]
        args_json: Option<String>,
        /// Seconds the command stays deliverable (and approvable).
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        ttl: u32,
    },
    /// Approve a command waiting for its second principal (not its sender).
    Approve {
        /// The command id.
        cid: String,
    },
    /// Show one command: its state, rule, sequence number and the device's answer.
    Show {
        /// The command id.
        cid: String,
    },
    /// A device's commands, oldest first (the credential needs scope commands:read, which
    /// the bootstrap admin has).
    List {
        /// The device.
        #[arg(long)]
        device: String,
        /// Continue after this command id.
        #[arg(long, value_name = "CID")]
        after: Option<String>,
        /// Most commands to show.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// The command policy's rules: the configuration's (read-only) and the admin API's.
    #[command(subcommand)]
    Rules(CommandRulesCommand),
}

/// `portcullis federation ...`.
#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// Print the trust in force as JSON: the configuration's part (read-only) and the admin
    /// API's.
    Show,
    /// Replace the admin API's part with a file of `[[issuers]]` (outside JWT issuers),
    /// `[[saml_issuers]]` (SAML identity providers, in a build with the `saml` feature),
    /// `[[policies]]` and `[[exchange_rules]]` (token exchange, the fields of
    /// `[[token_exchange.rules]]`) tables: the syntax of `[federation]`; JSON also works.
    /// Names are unique across the configuration's and the file's. An empty file removes
    /// them all.
    Set {
        /// The trust file (TOML or JSON).
        file: PathBuf,
    },
}

/// `portcullis command rules ...`.
#[derive(Debug, Subcommand)]
pub enum CommandRulesCommand {
    /// Print the rules in force: the configuration's (as comments: they are read-only and
    /// evaluated first), then the admin API's as a file `rules set` takes.
    Show,
    /// Replace the admin API's rules with those of a TOML file of `[[rules]]` tables, in the
    /// syntax of `[[gateway.commands.rules]]` (a file without any removes them all).
    Set {
        /// The rules file.
        #[arg(long, value_name = "RULES.toml")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Show a device's settings: their version, values and the version the device applied.
    Get {
        /// The device.
        device: String,
    },
    /// Replace a device's settings with the next version, signed for the device at once.
    /// The values given are the whole set: a key left out is removed.
    #[command(group = clap::ArgGroup::new("values").required(true).multiple(false)
        .args(["value", "values_json"]))]
    Set {
        /// The device.
        device: String,
        /// A value, KEY=VALUE (repeatable). VALUE is read as JSON if it parses (21.5, true,
        /// "text", [1, 2]), else taken as a string.
        #[arg(long, value_name = "KEY=VALUE")]
        value: Vec<String>,
        /// The values as one JSON object ('{}' clears them all).
        #[arg(long, value_name = "JSON")]
        values_json: Option<String>,
        /// Refuse the change (409) unless the settings are still at this version: nobody
        /// changed them since you read them.
        #[arg(long, value_name = "N")]
        if_version: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Publish a release of a model: upload an image (--file), or name one kept elsewhere
    /// (--url, --sha256, --size). Its manifest is signed by the active updates key.
    #[command(group = clap::ArgGroup::new("image").required(true).multiple(false)
        .args(["file", "url"]))]
    Publish {
        /// The device model it is for.
        #[arg(long)]
        model: String,
        /// The version as people write it, e.g. 1.1.0.
        #[arg(long)]
        version: String,
        /// The image to upload (streamed; at most 2 GiB).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Where devices download an image kept elsewhere (object storage, a CDN).
        #[arg(long, value_name = "URL", requires_all = ["sha256", "size"])]
        url: Option<String>,
        /// The SHA-256 of the image at --url, in hex.
        #[arg(long, value_name = "HEX", requires = "url")]
        sha256: Option<String>,
        /// The size in bytes of the image at --url.
        #[arg(long, value_name = "BYTES", requires = "url")]
        size: Option<u64>,
        /// The release number (default: one above the highest); release numbers only rise.
        #[arg(long, value_name = "N")]
        release: Option<u64>,
        /// Days the manifest stays valid (default 30).
        #[arg(long, value_name = "DAYS")]
        valid_days: Option<u32>,
        /// Offer it to this percentage of the devices only (a stable sample).
        #[arg(long, value_name = "P", value_parser = clap::value_parser!(u8).range(1..=100))]
        percent: Option<u8>,
        /// Offer it to these devices only (comma-separated or repeated).
        #[arg(long, value_name = "ID,...", value_delimiter = ',')]
        devices: Vec<String>,
        /// Offer it to devices with this attribute only, KEY=VALUE (repeatable).
        #[arg(long = "attr", value_name = "KEY=VALUE")]
        attrs: Vec<String>,
    },
    /// A model's releases and, per release, how many devices reported each status.
    Status {
        /// The device model.
        #[arg(long)]
        model: String,
    },
    /// Withdraw a release: offered to no one any more (devices that installed it keep it).
    Withdraw {
        /// The device model.
        #[arg(long)]
        model: String,
        /// The release number.
        #[arg(long, value_name = "N")]
        release: u64,
    },
}

/// How a CLI command reaches the admin API.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Base URL of a Portcullis node.
    #[arg(
        long,
        env = "PORTCULLIS_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Admin credential file (written by the first `serve`).
    #[arg(
        long,
        env = "PORTCULLIS_ADMIN_CREDENTIAL",
        default_value = "./portcullis-data/admin.json",
        global = true
    )]
    pub admin_credential: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// PEM file of CA certificates to trust for an https:// --server, besides the system's
    /// (e.g. the node's own CA from `portcullis ca export`, or the private CA of its
    /// tls_cert_file).
    #[arg(long, env = "PORTCULLIS_CACERT", value_name = "FILE", global = true)]
    pub cacert: Option<PathBuf>,
}

/// The certificate attribute a `tls_client_auth` client is recognised by (RFC 8705 §2.1.2):
/// at most one.
#[derive(Debug, Default, clap::Args)]
#[group(required = false, multiple = false)]
pub struct TlsMatchArgs {
    /// Expected subject DN of the client certificate, RFC 4514 (e.g. 'CN=meter-7,O=Plant').
    #[arg(long = "tls-subject-dn")]
    pub subject_dn: Option<String>,
    /// Expected dNSName SAN of the client certificate.
    #[arg(long = "tls-san-dns")]
    pub san_dns: Option<String>,
    /// Expected URI SAN of the client certificate.
    #[arg(long = "tls-san-uri")]
    pub san_uri: Option<String>,
    /// Expected IP address SAN of the client certificate.
    #[arg(long = "tls-san-ip")]
    pub san_ip: Option<String>,
    /// Expected email (rfc822Name) SAN of the client certificate.
    #[arg(long = "tls-san-email")]
    pub san_email: Option<String>,
}

impl TlsMatchArgs {
    /// The admin API field and value given, if any.
    pub fn field(&self) -> Option<(&'static str, &str)> {
        [
            ("tls_client_auth_subject_dn", &self.subject_dn),
            ("tls_client_auth_san_dns", &self.san_dns),
            ("tls_client_auth_san_uri", &self.san_uri),
            ("tls_client_auth_san_ip", &self.san_ip),
            ("tls_client_auth_san_email", &self.san_email),
        ]
        .into_iter()
        .find_map(|(name, value)| value.as_deref().map(|v| (name, v)))
    }
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its secret once.
    Create {
        /// Human-readable name.
        #[arg(long)]
        name: String,
        /// Choose the client id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// Allowed scope (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Allowed audience / resource indicator URI (repeatable).
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// client_secret_basic (default), client_secret_post, client_secret_jwt,
        /// private_key_jwt, tls_client_auth (with one --tls-* option) or
        /// self_signed_tls_client_auth (with --jwks holding x5c certificates).
        #[arg(long)]
        auth_method: Option<String>,
        /// JWK Set file with the client's public keys (private_key_jwt), or with its
        /// certificates in x5c (self_signed_tls_client_auth).
        #[arg(long, alias = "jwks", conflicts_with = "jwks_uri")]
        jwks_file: Option<PathBuf>,
        /// URL of the client's JWK Set (private_key_jwt).
        #[arg(long)]
        jwks_uri: Option<String>,
        #[command(flatten)]
        tls: Box<TlsMatchArgs>,
        /// Access-token lifetime in seconds (default 3600).
        #[arg(long)]
        token_ttl: Option<u32>,
        /// Every token request must carry a DPoP proof (RFC 9449 `dpop_bound_access_tokens`).
        #[arg(long)]
        dpop_bound: bool,
    },
    /// List clients.
    List {
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Start after this client id.
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one client.
    Show { id: String },
    /// Change a client's settings.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// Replace the allowed scopes (repeatable).
        #[arg(long = "scope")]
        scopes: Option<Vec<String>>,
        /// Replace the allowed audiences (repeatable).
        #[arg(long = "audience")]
        audiences: Option<Vec<String>>,
        #[arg(long)]
        token_ttl: Option<u32>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        #[arg(long, alias = "jwks")]
        jwks_file: Option<PathBuf>,
        #[arg(long)]
        jwks_uri: Option<String>,
        /// Replace the certificate match of a tls_client_auth client.
        #[command(flatten)]
        tls: Box<TlsMatchArgs>,
        /// Require a DPoP proof with every token request from now on (ends the client's
        /// earlier tokens).
        #[arg(long, conflicts_with = "no_dpop_bound")]
        dpop_bound: bool,
        /// Stop requiring DPoP proofs.
        #[arg(long)]
        no_dpop_bound: bool,
    },
    /// Issue a new secret; the old one keeps working for the overlap window.
    RotateSecret {
        id: String,
        /// Seconds the old secret stays valid (default 86400; 0 = stops at once).
        #[arg(long)]
        overlap: Option<u32>,
    },
    /// Delete a client.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Show every signing key: state, whether published in JWKS, whether signing.
    List,
    /// Publish a new key now; it signs after the pre-publication period ([keys]
    /// prepublish_secs). With --compromised KID: that key leaves JWKS at once, its tokens
    /// become inactive, and a successor signs immediately.
    Rotate {
        /// The compromised key's id (base64url: it may begin with `-`).
        #[arg(long, allow_hyphen_values = true)]
        compromised: Option<String>,
    },
    /// Retire a key: a pending (next) key is withdrawn; the signing key only when a published
    /// successor takes over at once (publish one with `key rotate` first).
    Retire {
        /// The key id (base64url: it may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// Re-encrypt every software key and sealed client secret under a new master key. Stop
    /// the nodes first; then start them with the new key file.
    Rewrap {
        /// The store, e.g. sqlite:portcullis-data/portcullis.db or postgres://host/db.
        #[arg(long, env = "PORTCULLIS_STORE__URL")]
        store_url: String,
        /// A file holding the PostgreSQL password (as `[store] password_file`).
        #[arg(long, env = "PORTCULLIS_STORE__PASSWORD_FILE")]
        password_file: Option<PathBuf>,
        /// The master key file everything is sealed under now.
        #[arg(long)]
        old_master_key: std::path::PathBuf,
        /// The new master key file (created, mode 0600, if it does not exist).
        #[arg(long)]
        new_master_key: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Operator keys: create, list, retire.
    #[command(subcommand)]
    Key(TrustKeyCommand),
    /// Sign the next trust list (the active command, settings and update keys) with the
    /// active root; devices fetch it at GET /gateway/v1/trust.
    Publish {
        /// How long the list is valid.
        #[arg(long, default_value_t = 30)]
        valid_days: u32,
        /// Also write the signed list (COSE_Sign1) to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A root kept offline (an air-gapped machine): generate it there.
    #[command(subcommand)]
    Root(TrustRootCommand),
    /// Write the next trust list, unsigned, for an offline root to sign.
    Draft {
        #[arg(long, default_value_t = 30)]
        valid_days: u32,
        /// Where the draft goes (CBOR): carry it to the root's machine.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a draft with a root key file (offline: no server is contacted).
    Sign {
        /// The root's private key, PKCS#8 PEM (`trust root generate` wrote it).
        #[arg(long)]
        root_key: PathBuf,
        #[arg(long)]
        draft: PathBuf,
        /// The signed list (COSE_Sign1).
        #[arg(long)]
        out: PathBuf,
    },
    /// Upload a list an offline root signed; the node verifies it with the imported root.
    Upload { signed: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum TrustRootCommand {
    /// Generate a root key into a file (mode 0600) and print its public JWK, to import with
    /// `trust key import` on a machine that reaches the node. No server is contacted.
    Generate {
        /// ES256 (default), ES384 or EdDSA.
        #[arg(long, default_value = "ES256")]
        alg: String,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustKeyCommand {
    /// Create a key in key custody; it is active at once (publish a trust list next).
    Create {
        /// root, commands, settings or updates.
        #[arg(long)]
        role: String,
        /// ES256 (default), ES384 or EdDSA.
        #[arg(long)]
        alg: Option<String>,
    },
    /// Every operator key, oldest first.
    List,
    /// Record a root kept offline by its public JWK (what `trust root generate` printed).
    Import {
        #[arg(long)]
        public_jwk: PathBuf,
    },
    /// Retire a key: it signs no more and is left out of the next trust list.
    Retire {
        /// The key id (base64url: it may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Show audit records, newest first, decrypted (needs scope audit:read; the read is
    /// itself audited).
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Show records older than this sequence number.
        #[arg(long)]
        before: Option<i64>,
    },
    /// Prove the hash chain unbroken; exit 1 if a record was edited or removed. Needs no
    /// audit data key: the chain covers the ciphertext. Through a node's admin API, or
    /// offline on a store (or a copy of one) with --store-url, with no master key.
    Verify {
        /// Verify this store directly instead of asking a node, e.g. sqlite:copy.db or
        /// postgres://host/db.
        #[arg(long)]
        store_url: Option<String>,
        /// A file holding the PostgreSQL password (with --store-url).
        #[arg(long, requires = "store_url")]
        password_file: Option<PathBuf>,
        /// Verify an archive segment file offline instead (with --jwks).
        #[arg(long, conflicts_with = "store_url", requires = "jwks")]
        archive: Option<PathBuf>,
        /// The public keys signatures are verified with (a saved `/jwks.json`; `audit archive`
        /// writes one beside each segment). With --store-url, optional: without it
        /// checkpoint signatures are reported unverifiable.
        #[arg(long)]
        jwks: Option<PathBuf>,
    },
    /// Move the oldest records into a signed archive segment: up to the newest checkpoint
    /// before DATE. Writes FILE (never over an existing one) and the keys that verify it beside
    /// it, its extension replaced by `.jwks.json` (`trail.archive` → `trail.jwks.json`),
    /// verifies them, then removes those records from the live store.
    Archive {
        /// 2026-01-31, 2026-01-31T12:00:00Z or Unix seconds.
        #[arg(long)]
        before: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// The audit data keys that encrypt records at rest.
    #[command(subcommand)]
    Key(AuditKeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Alerts, newest first.
    List {
        /// Only `open` or `acknowledged` ones.
        #[arg(long)]
        state: Option<String>,
        /// Most alerts to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Older than this (the `more: --before ...` a previous page printed).
        #[arg(long)]
        before: Option<String>,
    },
    /// One alert with what fired it.
    Show { id: String },
    /// Acknowledge an alert (audited).
    Ack { id: String },
}

#[derive(Debug, Subcommand)]
pub enum AuditKeyCommand {
    /// List the audit data keys (names and dates only).
    List,
    /// Create a new audit data key and encrypt new records with it; older keys stay to read
    /// older records.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy every client, key, setting, revocation and audit record into an empty store,
    /// e.g. from the embedded SQLite to PostgreSQL. Stop the nodes first.
    Copy {
        /// The store to copy from, left as it is: sqlite:PATH (e.g.
        /// sqlite:portcullis-data/portcullis.db) or postgres://user@host[:port]/db.
        #[arg(long, value_name = "URL")]
        from: String,
        /// The empty store to copy into (refused if it holds anything): postgres://... or
        /// sqlite:PATH (created with mode 0600). Migrated to the current schema first.
        #[arg(long, value_name = "URL")]
        to: String,
        /// A file holding the password of the `--from` PostgreSQL database.
        #[arg(long)]
        from_password_file: Option<PathBuf>,
        /// A file holding the password of the `--to` PostgreSQL database.
        #[arg(long)]
        to_password_file: Option<PathBuf>,
        /// The issuer the source's tokens were issued under (the old node's `[server] issuer`,
        /// or its `http://<listen address>`), recorded in a PostgreSQL target when the source
        /// keeps none (an SQLite source never does): the target's nodes then use it, and
        /// tokens issued before the copy stay active.
        #[arg(long, value_name = "URL")]
        issuer: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Insert COUNT clients with random secrets directly into the store of DATA_DIR.
    LoadClients(BenchLoad),
    /// Insert COUNT registered devices (dev-00000000 ...), each with a random enrollment
    /// secret, directly into the store of DATA_DIR.
    LoadDevices(BenchLoad),
    /// Write COUNT DPoP proofs (RFC 9449), one per line, all by one fresh key, for a load
    /// generator to send one per request (bench/dpop.sh).
    DpopProofs(BenchDpopProofs),
    /// Print a fresh key's JWK Set and an outside token (a Kubernetes-like service-account
    /// token) it signed, for the JWT bearer grant's benchmark.
    ExternalToken {
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        audience: String,
        #[arg(long)]
        sub: String,
        #[arg(long, default_value_t = 3600)]
        lifetime_secs: i64,
    },
}

/// What `bench dpop-proofs` signs.
#[derive(Debug, Args)]
pub struct BenchDpopProofs {
    /// The proofs' `htu`, e.g. http://127.0.0.1:8080/oauth2/token.
    #[arg(long)]
    pub htu: String,
    #[arg(long)]
    pub count: u64,
    /// The key's algorithm.
    #[arg(long, default_value = "ES256")]
    pub alg: String,
    #[arg(long)]
    pub out: PathBuf,
}

/// Where and how many rows a bench loader writes.
#[derive(Debug, Args)]
pub struct BenchLoad {
    /// The node's data directory (its SQLite store) ...
    #[arg(long, required_unless_present = "store_url")]
    pub data_dir: Option<PathBuf>,
    /// ... or any store URL (e.g. postgres://...).
    #[arg(long, conflicts_with = "data_dir")]
    pub store_url: Option<String>,
    #[arg(long)]
    pub count: u64,
}

impl BenchLoad {
    /// `--store-url`, or the SQLite file in `--data-dir`.
    pub fn store_url(&self) -> String {
        self.store_url.clone().unwrap_or_else(|| {
            let dir = self.data_dir.clone().unwrap_or_default();
            format!("sqlite:{}", dir.join("portcullis.db").display())
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// The long help of `portcullis <path...>`.
    fn help(path: &[&str]) -> String {
        let mut cmd = Cli::command();
        for name in path {
            cmd = cmd
                .find_subcommand(name)
                .unwrap_or_else(|| panic!("no subcommand {name}"))
                .clone();
        }
        cmd.render_long_help().to_string()
    }

    #[test]
    fn federation_help_names_every_kind_of_trust_a_file_may_hold() {
        let set = help(&["federation", "set"]);
        for table in [
            "[[issuers]]",
            "[[saml_issuers]]",
            "[[policies]]",
            "[[exchange_rules]]",
        ] {
            assert!(set.contains(table), "{table} missing from:\n{set}");
        }
        let federation = help(&["federation"]);
        assert!(
            federation.contains("SAML") && federation.contains("exchange"),
            "{federation}"
        );
    }

    #[test]
    fn store_copy_help_describes_from_to_and_issuer() {
        let copy = help(&["store", "copy"]);
        for described in ["store to copy from", "empty store to copy into", "--issuer"] {
            assert!(
                copy.contains(described),
                "{described} missing from:\n{copy}"
            );
        }
    }
}
