//! The one typed configuration, parsed once at start-up: a TOML file (optional), then
//! `PORTCULLIS_SECTION__KEY` environment overrides, then command-line flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_keys::Algorithm;

use crate::config_values::{self, Listen, LogFormat};
use portcullis_keys::KeyBackend;
use serde::Deserialize;
use zeroize::Zeroizing;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config: {0}")]
    Invalid(String),
}

/// `[server]`: where and as whom Portcullis listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Plain-HTTP listen address. Default `127.0.0.1:8080` (loopback only); `off` serves
    /// HTTPS only.
    pub listen: Listen,
    /// The `iss` of tokens and base URL of every endpoint. Default `http://<listen>`, or
    /// `https://<listen_tls>` when `listen` is off.
    pub issuer: Option<String>,
    /// Where state lives. Default `./portcullis-data`.
    pub data_dir: PathBuf,
    /// HTTPS listen address (EST, mTLS token requests, OCSP). Default `127.0.0.1:8443`;
    /// `off` disables it.
    pub listen_tls: Listen,
    /// Where `/metrics` is served to anyone who can reach it (e.g. `10.0.0.5:9464` for a
    /// Prometheus on another host), or `off`. Unset (the default): on the plain and TLS
    /// listeners, to sources on this host only.
    pub metrics_listen: Option<Listen>,
    /// PEM certificate chain for the HTTPS listener, read again when it or the key file
    /// changes on disk. Default: a certificate for `[pki] tls_names` issued by our own CA at
    /// every start and renewed while the node runs.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM (PKCS#8, PKCS#1 or SEC1) private key for `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Reverse proxies (CIDRs, e.g. `["10.0.0.10/32"]`) whose `X-Forwarded-For` names the
    /// client for per-address limits, the failure lock-out and audit records: the right-most
    /// address in it that is not itself a trusted proxy. Default empty: the header is ignored
    /// and the TCP peer is the client. List only the proxies, never client networks.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: Listen::At(SocketAddr::from(([127, 0, 0, 1], 8080))),
            issuer: None,
            data_dir: PathBuf::from("portcullis-data"),
            listen_tls: Listen::At(SocketAddr::from(([127, 0, 0, 1], 8443))),
            metrics_listen: None,
            tls_cert_file: None,
            tls_key_file: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[store]`: the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite:PATH` (default `sqlite:<data_dir>/portcullis.db`) or
    /// `postgres://user@host:5432/db` for many nodes sharing one database.
    pub url: Option<String>,
    /// Clients kept in memory (about 1 KiB each). Default 100 000; raise it to the number of
    /// clients active within ten minutes so token requests never wait for the database.
    pub client_cache_entries: u64,
    /// Devices kept in memory (about 0.5 KiB each). Default 100 000; EST enrollment and the
    /// admin API read devices through this cache, kept coherent across nodes like clients.
    pub device_cache_entries: u64,
    /// A file holding the PostgreSQL password (a secret mount), so `url` carries none. Read at
    /// start; one trailing newline is dropped. It wins over a password in the URL,
    /// `PGPASSWORD` and a pgpass file.
    pub password_file: Option<PathBuf>,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            url: None,
            client_cache_entries: portcullis_oauth::state::DEFAULT_CLIENT_CACHE_ENTRIES,
            device_cache_entries: portcullis_pki::service::DEFAULT_DEVICE_CACHE_ENTRIES,
            password_file: None,
        }
    }
}

/// `[keys]`: signing keys and the master key that seals them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysSection {
    /// Algorithm of the access-token signing key. Default `ES256`; `EdDSA`, `ES384`,
    /// `PS256` and `RS256` by choice. Changing it makes a new key of that algorithm active
    /// on the next start; the old key stays published until its tokens have expired.
    #[serde(deserialize_with = "config_values::signing_algorithm")]
    pub algorithm: Algorithm,
    /// The master key file (32 random bytes, base64). Default `<data_dir>/master.key`,
    /// generated on first start with mode 0600.
    pub master_key_file: Option<PathBuf>,
    /// Algorithms accepted in `private_key_jwt` client assertions.
    #[serde(deserialize_with = "config_values::assertion_algorithms")]
    pub assertion_algorithms: Vec<Algorithm>,
    /// Where signing keys live: `software` (default; sealed in the store under the master
    /// key) or `pkcs11` (generated and used inside a PKCS#11 token; needs the three below).
    pub backend: KeyBackend,
    /// Seconds a new key is published in JWKS before it signs, so every verifier's cache has
    /// it. Default 86400 (24 h).
    pub prepublish_secs: i64,
    /// Scheduled rotation interval in seconds; 0 (default) rotates only on demand
    /// (`portcullis key rotate`). Must exceed `prepublish_secs`.
    pub rotate_every_secs: i64,
    /// PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub pkcs11_module: Option<PathBuf>,
    /// Label of the token holding the keys.
    pub pkcs11_token_label: Option<String>,
    /// File holding the token's user PIN (a secret mount; never the PIN itself in config).
    pub pkcs11_pin_file: Option<PathBuf>,
}

impl Default for KeysSection {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::ES256,
            master_key_file: None,
            assertion_algorithms: Algorithm::ALL.to_vec(),
            backend: KeyBackend::Software,
            prepublish_secs: 86_400,
            rotate_every_secs: 0,
            pkcs11_module: None,
            pkcs11_token_label: None,
            pkcs11_pin_file: None,
        }
    }
}

/// `[rate_limit]`: abuse limits on `/oauth2/token`, in requests per second; 0 turns one off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSection {
    /// Per client id. Default 1000/s: a client caching its tokens asks once per lifetime.
    pub per_client: u32,
    /// Per source address. Default 5000/s: a gateway fronting many devices stays under it.
    pub per_address: u32,
    /// Failed client authentications allowed per source address per minute before that
    /// address is answered 429 until the minute has passed. Default 20; 0 = off.
    pub auth_failures_per_minute: u32,
}

impl Default for RateLimitSection {
    fn default() -> Self {
        Self {
            per_client: 1000,
            per_address: 5000,
            auth_failures_per_minute: 20,
        }
    }
}

/// Default lifetime of the generated HTTPS server certificate: 90 days.
pub const DEFAULT_TLS_CERT_LIFETIME_SECS: i64 = 90 * 86_400;
/// Longest lifetime of the generated HTTPS server certificate: 398 days, the most TLS
/// clients that follow the CA/Browser Forum rules accept.
const MAX_TLS_CERT_LIFETIME_SECS: i64 = 398 * 86_400;

/// `[pki]`: the device CA, enrollment and revocation services.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PkiSection {
    /// Organisation name in the generated CA subjects. Default `Portcullis`.
    pub ca_name: String,
    /// Algorithm of generated CA keys: `ES256` (default), `ES384`, `EdDSA` or `RS256`.
    #[serde(deserialize_with = "config_values::ca_algorithm")]
    pub ca_algorithm: Algorithm,
    /// Base URL relying parties reach over plain HTTP, named in every certificate's CRL
    /// Distribution Points and OCSP AIA. Default: `[server] issuer`.
    pub public_url: Option<String>,
    /// Lifetime of device certificates in seconds. Default 2592000 (30 days).
    pub cert_lifetime_secs: i64,
    /// Key types a device CSR may carry. Default all of `P-256`, `P-384`, `Ed25519`, `RSA`.
    pub key_types: Vec<String>,
    /// Smallest RSA key accepted. Default 2048 (the floor).
    pub min_rsa_bits: usize,
    /// Validity of a CRL (regenerated at half of it, and at once on every revocation).
    pub crl_validity_secs: i64,
    /// Validity of an OCSP response (pre-signed ones are refreshed at half of it).
    pub ocsp_validity_secs: i64,
    /// OCSP answers signed on demand that cannot be cached (a nonce, several CertIDs, an
    /// unknown serial) per second across all clients; past it, `tryLater`. Default 5000;
    /// 0 is unlimited. Cached answers for issued certificates are never limited.
    pub ocsp_fresh_signatures_per_sec: u32,
    /// PEM file of manufacturer CAs whose certificates (IDevIDs) may authenticate a first
    /// enrollment.
    pub manufacturer_ca_file: Option<PathBuf>,
    /// DNS names / IP addresses of the generated HTTPS server certificate.
    pub tls_names: Vec<String>,
    /// Lifetime of the generated HTTPS server certificate in seconds. Default 7776000
    /// (90 days); renewed two thirds in, without a restart. It also sets how often the
    /// certificate (or the configured files) is checked: a tenth of it, at most hourly.
    /// From 5 (for tests) to 34387200 (398 days).
    pub tls_cert_lifetime_secs: i64,
}

impl Default for PkiSection {
    fn default() -> Self {
        Self {
            ca_name: "Portcullis".into(),
            ca_algorithm: Algorithm::ES256,
            public_url: None,
            cert_lifetime_secs: portcullis_pki::profile::DEFAULT_LIFETIME_SECS,
            key_types: portcullis_pki::profile::KeyType::ALL
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
            min_rsa_bits: 2048,
            crl_validity_secs: portcullis_pki::service::DEFAULT_CRL_VALIDITY_SECS,
            ocsp_validity_secs: 3600,
            ocsp_fresh_signatures_per_sec: portcullis_pki::ocsp::DEFAULT_FRESH_SIGNATURES_PER_SEC,
            manufacturer_ca_file: None,
            tls_names: vec!["localhost".into(), "127.0.0.1".into()],
            tls_cert_lifetime_secs: DEFAULT_TLS_CERT_LIFETIME_SECS,
        }
    }
}

/// `[log]`: diagnostics (never secrets).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `tracing` filter, e.g. `info` or `portcullis=debug`. Default `info`; `RUST_LOG` wins.
    pub level: String,
    /// `text` (default) or `json`.
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// `[oauth]`: the token server's choices that are not limits or keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthSection {
    /// Whether a client's `jwks_uri` may resolve to loopback, private, link-local (cloud
    /// metadata) or other internal addresses, on the first request or any redirect. Default
    /// false: a registered URL must not make the server reach inside its own network.
    pub jwks_uri_allow_private: bool,
}

/// `[token_exchange]`: which clients may exchange whose tokens, for which audiences
/// (`[[token_exchange.rules]]`, RFC 8693).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenExchangeSection {
    pub rules: Vec<portcullis_core::token_exchange::ExchangeRule>,
}

/// `[dpop]`: DPoP-bound access tokens (RFC 9449).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpopSection {
    /// Algorithms a DPoP proof may be signed with; default all five asymmetric ones
    /// (EdDSA, ES256, ES384, PS256, RS256). Advertised as `dpop_signing_alg_values_supported`.
    #[serde(deserialize_with = "config_values::assertion_algorithms")]
    pub algorithms: Vec<Algorithm>,
    /// Oldest accepted proof `iat`, in seconds before now; default 60, from 1 to 3600.
    pub max_age_secs: u32,
    /// Newest accepted proof `iat`, in seconds after now (clock skew); default 5, at most 300.
    pub clock_skew_secs: u32,
    /// Require a server nonce in every proof (RFC 9449 §8, §9): proofs cannot be made ahead
    /// of time. Default false.
    pub require_nonce: bool,
    /// Seconds one nonce slot lasts; a nonce is accepted in its slot and the next. Default
    /// 300, from 10 to 86400.
    pub nonce_lifetime_secs: u32,
}

impl Default for DpopSection {
    fn default() -> Self {
        let d = portcullis_oauth::DpopSettings::default();
        Self {
            algorithms: d.algorithms,
            max_age_secs: d.window.max_age_secs,
            clock_skew_secs: d.window.skew_secs,
            require_nonce: d.require_nonce,
            nonce_lifetime_secs: d.nonce_lifetime_secs,
        }
    }
}

impl DpopSection {
    /// The validated settings.
    pub fn settings(&self) -> Result<portcullis_oauth::DpopSettings, ConfigError> {
        if !(1..=3600).contains(&self.max_age_secs) || self.clock_skew_secs > 300 {
            return Err(ConfigError::Invalid(
                "dpop.max_age_secs must be from 1 to 3600 and dpop.clock_skew_secs at most 300"
                    .into(),
            ));
        }
        if !(10..=86_400).contains(&self.nonce_lifetime_secs) {
            return Err(ConfigError::Invalid(
                "dpop.nonce_lifetime_secs must be from 10 to 86400".into(),
            ));
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::Invalid(
                "dpop.algorithms must name at least one algorithm".into(),
            ));
        }
        Ok(portcullis_oauth::DpopSettings {
            algorithms: self.algorithms.clone(),
            window: portcullis_core::dpop::ProofWindow {
                max_age_secs: self.max_age_secs,
                skew_secs: self.clock_skew_secs,
            },
            require_nonce: self.require_nonce,
            nonce_lifetime_secs: self.nonce_lifetime_secs,
        })
    }
}

/// `[audit]`: the audit log's signed checkpoints and its durability.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Seconds between signed checkpoints of the audit chain's head, taken by one node (the
    /// `audit-checkpoint` lease holder) and only when something new was recorded. Default 60;
    /// 0 turns checkpoints off; at most 86400. A rewrite of the database is detectable for
    /// everything older than the newest checkpoint.
    pub checkpoint_interval_secs: u64,
    /// `"async"` (default): a token is answered once its record is queued; `"durable"`: once
    /// it is stored (group commit). Admin actions, key changes and revocations are stored
    /// before they are confirmed in both modes. Measured (docs/benchmarks.md): durable gives
    /// 74 % of async's throughput and twice its p99, so async is the default.
    #[serde(deserialize_with = "config_values::audit_mode")]
    pub mode: portcullis_audit::AuditMode,
    /// Encrypt who, what and from where of every new record (AES-256-GCM under an audit
    /// data key in key custody); default true. The chain and checkpoints cover the
    /// ciphertext, so `audit verify` needs no key. Turning it off affects new records only.
    pub encrypt: bool,
    /// `[[audit.export]]`: streams of the trail to a syslog receiver or an NDJSON file, each
    /// resuming from its own cursor in the store.
    pub export: Vec<AuditExportConfig>,
    /// Archive records automatically once they are this many days old (fractions allowed):
    /// one node (the `audit-archive` lease holder) writes a signed segment to `archive_dir`,
    /// verifies it and only then removes its records, as `portcullis audit archive` does.
    /// Unset (default): records stay live until archived by hand.
    pub archive_after_days: Option<f64>,
    /// Where automatic archiving writes segments (default `<data_dir>/audit-archive`). With
    /// several nodes, a directory every node can write (the lease holder may change).
    pub archive_dir: Option<PathBuf>,
    /// Seconds between automatic archiving runs (default 3600, 1 to 86400).
    pub archive_interval_secs: u64,
}

/// `[alerts]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsSection {
    /// `[alerts.webhook]`: POST each alert, signed (see `alert_webhook.rs`).
    pub webhook: Option<crate::alert_webhook::WebhookConfig>,
}

/// One `[[audit.export]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditExportConfig {
    /// Names the export's cursor (`audit.export.<name>` in the store): keep it stable, or the
    /// export starts over. Letters, digits, `-` and `_`.
    pub name: String,
    /// `syslog` (RFC 5424 over TLS, octet-counting framing) or `ndjson`.
    pub kind: AuditExportKind,
    /// ndjson: the file to append to, or `-` for stdout.
    #[serde(default)]
    pub path: Option<String>,
    /// syslog: the receiver, `host:port`.
    #[serde(default)]
    pub address: Option<String>,
    /// syslog: the name the receiver's certificate must carry (default: the host of `address`).
    #[serde(default)]
    pub server_name: Option<String>,
    /// syslog: PEM file of the CA(s) that sign the receiver's certificate.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// syslog: the HOSTNAME field (default: this machine's host name).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Where a new export starts: `beginning` (default, the whole trail) or `end` (records
    /// from now on).
    #[serde(default)]
    pub start: AuditExportStart,
}

/// `kind` of an `[[audit.export]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditExportKind {
    Syslog,
    Ndjson,
}

/// `start` of an `[[audit.export]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditExportStart {
    #[default]
    Beginning,
    End,
}

impl AuditExportConfig {
    /// Where the exporter starts when the export has no cursor yet.
    pub fn start_at(&self) -> portcullis_audit::export::StartAt {
        match self.start {
            AuditExportStart::Beginning => portcullis_audit::export::StartAt::Beginning,
            AuditExportStart::End => portcullis_audit::export::StartAt::End,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid(why));
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return invalid(format!(
                "audit.export name {:?}: 1 to 64 letters, digits, '-' or '_'",
                self.name
            ));
        }
        match self.kind {
            AuditExportKind::Ndjson if self.path.is_none() => invalid(format!(
                "audit.export {}: an ndjson export needs path (a file, or \"-\" for stdout)",
                self.name
            )),
            AuditExportKind::Syslog if self.address.is_none() || self.tls_ca_file.is_none() => {
                invalid(format!(
                    "audit.export {}: a syslog export needs address (host:port) and tls_ca_file",
                    self.name
                ))
            }
            // A key of the other kind is a mistake (an export meant as syslog written as
            // ndjson would otherwise write a file nobody reads), not something to ignore.
            AuditExportKind::Ndjson
                if self.address.is_some()
                    || self.server_name.is_some()
                    || self.tls_ca_file.is_some()
                    || self.hostname.is_some() =>
            {
                invalid(format!(
                    "audit.export {}: address, server_name, tls_ca_file and hostname are for \
                     kind = \"syslog\"; an ndjson export takes path",
                    self.name
                ))
            }
            AuditExportKind::Syslog if self.path.is_some() => invalid(format!(
                "audit.export {}: path is for kind = \"ndjson\"; a syslog export takes address",
                self.name
            )),
            _ => Ok(()),
        }
    }
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            checkpoint_interval_secs: 60,
            mode: portcullis_audit::AuditMode::Async,
            encrypt: true,
            export: Vec::new(),
            archive_after_days: None,
            archive_dir: None,
            archive_interval_secs: 3600,
        }
    }
}

/// `[gateway]`: the device gateway (issue #12).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// The `aud` a device token must carry. Default: the issuer URL.
    pub audience: Option<String>,
    /// Longest a device token may live (`exp - iat`). Default 3600.
    pub max_device_token_secs: i64,
    /// Clock skew tolerated on device tokens' `iat` and `exp`. Default 60.
    pub skew_secs: i64,
    /// How far a COSE message's timestamp may be from this node's clock. Default 300.
    pub message_window_secs: i64,
    /// Largest message (HTTP body, MQTT payload). Default 65536.
    pub max_message_bytes: usize,
    /// MQTT: seconds a connection has to complete TLS and send CONNECT. Default 10.
    pub connect_timeout_secs: u64,
    /// MQTT: QoS 1 messages in flight per connection. Default 64.
    pub max_inflight: u16,
    /// MQTT: longest keep-alive granted. Default 300.
    pub max_keep_alive_secs: u16,
    /// MQTT over TLS, client certificates asked (not required); `off` disables it. Unset:
    /// `127.0.0.1:8883` if that port is free (a node that finds it taken — another node on the
    /// same host — says so in its log and serves without MQTT); set, it must bind.
    pub listen_mqtts: Option<Listen>,
    /// Plain MQTT (device tokens and COSE messages only make sense over it on trusted
    /// networks). Default `off`.
    pub listen_mqtt: Listen,
    /// `embedded` (default: an append-only log in `<data_dir>/telemetry`) or a
    /// `nats://host:port` URL (JetStream).
    pub sink: String,
    /// While messages come faster than the sink writes them, it is written at most once per
    /// this many milliseconds, everything that arrived meanwhile in one write (one
    /// `fdatasync` of the embedded log); messages that come one at a time are written at
    /// once. Less CPU per message under load for about this much more latency. Default 0
    /// (as soon as the previous write is done); at most 100.
    pub sink_write_interval_ms: u64,
    /// The embedded log's bound in bytes (oldest segments go first). Default 1 GiB.
    pub embedded_max_bytes: u64,
    /// The size at which the embedded log closes a segment and starts the next (the unit in
    /// which the bounds delete). Default 64 MiB; from 4 KiB to 1 GiB.
    pub embedded_segment_bytes: u64,
    /// The embedded log's bound in age. Default 7 days.
    pub embedded_max_age_secs: u64,
    /// The embedded log's fsync policy. 0 (default): every batch is `fdatasync`ed before any
    /// of its messages is acknowledged, so nothing acknowledged is lost to a kill, an OS crash
    /// or a power cut. N (1 to 10 000): a batch is acknowledged once written — it survives the
    /// node being killed — and the log is synced every N ms, as PostgreSQL's
    /// `synchronous_commit = off` or JetStream's `sync_interval`: an OS crash or a power cut
    /// may lose the last N ms of acknowledged messages. Readers see only synced records.
    pub embedded_sync_interval_ms: u64,
    /// JetStream stream the NATS sink writes to (created if missing). Default `TELEMETRY`.
    pub nats_stream: String,
    /// Subject prefix: messages go to `<prefix>.<device_id>.<stream>`. Default `telemetry`.
    pub nats_subject_prefix: String,
    /// Per-model policy: `[gateway.models.<model>] message_auth = "required" | "optional"`.
    pub models: BTreeMap<String, GatewayModel>,
    /// `[gateway.broker_hook]`: the RabbitMQ auth back-end. Default off.
    pub broker_hook: GatewayBrokerHook,
    /// `[gateway.commands]`: who may send which commands to which devices (issue #13).
    pub commands: GatewayCommands,
}

/// `[gateway.commands]`: the command rules of this node's configuration, evaluated before
/// those set through `/admin/v1/commands/rules` (README, "Commands to devices"). The rules'
/// syntax is `core::command_policy`'s: `[[gateway.commands.rules]]` tables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayCommands {
    pub rules: portcullis_core::command_policy::CommandPolicy,
}

/// `[gateway.broker_hook]`: an HTTP auth back-end in RabbitMQ's `rabbitmq_auth_backend_http`
/// dialect (issue #13), so a broker of the operator's own admits devices by device token and
/// lets each publish only to its own topics (README, "Your own MQTT broker (RabbitMQ)").
/// Set from the environment as one inline table:
/// `PORTCULLIS_GATEWAY__BROKER_HOOK='{ enabled = true, secret_file = "/run/secrets/hook" }'`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayBrokerHook {
    /// Serve `/gateway/v1/broker/rabbitmq/...` on both listeners. Default false.
    pub enabled: bool,
    /// A file holding the secret RabbitMQ's URLs carry as a path segment
    /// (`.../rabbitmq/<secret>/user`): 24 to 256 of `A-Z a-z 0-9 - _ . ~` (e.g.
    /// `openssl rand -hex 32`), one trailing newline dropped. Unset (the default): the hook
    /// answers loopback callers only (a broker on this host).
    pub secret_file: Option<PathBuf>,
    /// The one virtual host devices may use. Default `/`.
    pub vhost: String,
    /// Admit a user name that comes with no password as the device of that name, on the
    /// broker's word that it verified a client certificate naming it (RabbitMQ
    /// `ssl_cert_login`); the device must be active and hold a current unrevoked certificate.
    /// Default false: the hook never sees the certificate.
    pub trust_broker_certificates: bool,
}

impl Default for GatewayBrokerHook {
    fn default() -> Self {
        Self {
            enabled: false,
            secret_file: None,
            vhost: "/".into(),
            trust_broker_certificates: false,
        }
    }
}

impl GatewayBrokerHook {
    /// Checks the keys of an enabled hook, reading the secret file now so that a missing
    /// secret mount stops the node before it serves.
    fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if self.vhost.is_empty()
            || self.vhost.len() > 255
            || self.vhost.chars().any(char::is_control)
        {
            return Err(ConfigError::Invalid(
                "gateway.broker_hook.vhost must be 1 to 255 printable characters".into(),
            ));
        }
        self.secret().map(drop)
    }

    /// The hook's URL secret from `secret_file`, if one is configured.
    pub fn secret(&self) -> Result<Option<Zeroizing<String>>, ConfigError> {
        let Some(path) = self.secret_file.as_deref() else {
            return Ok(None);
        };
        let secret = read_password_file(path, "gateway.broker_hook.secret_file")?;
        let unreserved =
            |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        if !(24..=256).contains(&secret.len()) || !secret.bytes().all(unreserved) {
            // The content is never echoed.
            return Err(ConfigError::Invalid(format!(
                "gateway.broker_hook.secret_file {}: must hold 24 to 256 of A-Z a-z 0-9 - _ . ~",
                path.display()
            )));
        }
        Ok(Some(secret))
    }
}

/// `[gateway.models.<model>]`: the policy of one device model.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayModel {
    /// `required` or `optional`; unset: required for devices with a symmetric key.
    pub message_auth: Option<String>,
    /// Scopes a device of this model may get access tokens for at `/oauth2/token` (with its
    /// certificate, `client_id` = device id). Default none.
    pub scopes: Vec<String>,
}

impl Default for GatewaySection {
    fn default() -> Self {
        Self {
            audience: None,
            max_device_token_secs: 3600,
            skew_secs: 60,
            message_window_secs: 300,
            max_message_bytes: 64 * 1024,
            connect_timeout_secs: 10,
            max_inflight: 64,
            max_keep_alive_secs: 300,
            listen_mqtts: None,
            listen_mqtt: Listen::Off,
            sink: "embedded".into(),
            sink_write_interval_ms: 0,
            embedded_max_bytes: 1 << 30,
            embedded_segment_bytes: 64 << 20,
            embedded_max_age_secs: 7 * 24 * 3600,
            embedded_sync_interval_ms: 0,
            nats_stream: "TELEMETRY".into(),
            nats_subject_prefix: "telemetry".into(),
            models: BTreeMap::new(),
            broker_hook: GatewayBrokerHook::default(),
            commands: GatewayCommands::default(),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerSection,
    pub store: StoreSection,
    pub keys: KeysSection,
    pub rate_limit: RateLimitSection,
    pub pki: PkiSection,
    pub log: LogSection,
    pub audit: AuditSection,
    /// `[detection]`: real-time attack detection (rules, thresholds, actions).
    pub detection: portcullis_core::detection::DetectionConfig,
    /// `[alerts]`: where raised alerts go besides the audit log and the admin API.
    pub alerts: AlertsSection,
    pub oauth: OAuthSection,
    /// `[dpop]`: DPoP proofs and nonces (RFC 9449).
    pub dpop: DpopSection,
    /// `[federation]`: outside token issuers trusted for the JWT bearer grant
    /// (`[[federation.issuers]]`) and the policies mapping their subjects to clients
    /// (`[[federation.policies]]`).
    pub federation: portcullis_oauth::federation::TrustSet,
    /// `[token_exchange]`: RFC 8693 rules (`[[token_exchange.rules]]`).
    pub token_exchange: TokenExchangeSection,
    pub gateway: GatewaySection,
}

impl Config {
    /// Loads `file` (if any), applies environment overrides from `env`, and validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        apply_env_overrides(&mut table, env)?;
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.server.listen == Listen::Off && self.server.listen_tls == Listen::Off {
            return Err(ConfigError::Invalid(
                "server.listen and server.listen_tls are both off: nothing would be served".into(),
            ));
        }
        self.rotation_policy()?;
        self.dpop.settings()?;
        portcullis_core::token_exchange::validate_rules(&self.token_exchange.rules)
            .map_err(|e| ConfigError::Invalid(format!("token_exchange.rules: {e}")))?;
        if !self.federation.exchange_rules.is_empty() {
            // One spelling in the configuration; the admin API's trust file takes them as
            // `[[exchange_rules]]`.
            return Err(ConfigError::Invalid(
                "federation.exchange_rules: write token exchange rules as [[token_exchange.rules]]"
                    .into(),
            ));
        }
        // Checked here as well as where the trust is put in force: a mistake in it found only
        // then would stop a first start after it created the keys, the CA and (on
        // PostgreSQL) the stored issuer.
        portcullis_oauth::federation::check_configured(&self.configured_trust())
            .map_err(|e| ConfigError::Invalid(format!("federation: {e}")))?;
        self.certificate_profile()?;
        self.ca_algorithm()?;
        self.trusted_proxies()?;
        if self.pki.crl_validity_secs < 60 || self.pki.ocsp_validity_secs < 60 {
            return Err(ConfigError::Invalid(
                "pki.crl_validity_secs and pki.ocsp_validity_secs must be at least 60".into(),
            ));
        }
        if !(5..=MAX_TLS_CERT_LIFETIME_SECS).contains(&self.pki.tls_cert_lifetime_secs) {
            return Err(ConfigError::Invalid(format!(
                "pki.tls_cert_lifetime_secs must be from 5 to {MAX_TLS_CERT_LIFETIME_SECS} (398 days)"
            )));
        }
        for export in &self.audit.export {
            export.validate()?;
        }
        let mut names: Vec<&str> = self.audit.export.iter().map(|e| e.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w.first() == w.get(1)) {
            return Err(ConfigError::Invalid(
                "audit.export names must be unique (each names its own cursor)".into(),
            ));
        }
        if self.audit.checkpoint_interval_secs > 86_400 {
            return Err(ConfigError::Invalid(
                "audit.checkpoint_interval_secs must be at most 86400 (0 turns checkpoints off)"
                    .into(),
            ));
        }
        if let Some(days) = self.audit.archive_after_days {
            if !(days > 0.0 && days <= 36_500.0) {
                return Err(ConfigError::Invalid(
                    "audit.archive_after_days must be above 0 and at most 36500".into(),
                ));
            }
        }
        if !(1..=86_400).contains(&self.audit.archive_interval_secs) {
            return Err(ConfigError::Invalid(
                "audit.archive_interval_secs must be between 1 and 86400".into(),
            ));
        }
        if self.server.tls_cert_file.is_some() != self.server.tls_key_file.is_some() {
            return Err(ConfigError::Invalid(
                "server.tls_cert_file and server.tls_key_file go together".into(),
            ));
        }
        match self.keys.backend {
            KeyBackend::Software => {}
            KeyBackend::Pkcs11 => {
                if self.keys.pkcs11_module.is_none()
                    || self.keys.pkcs11_token_label.is_none()
                    || self.keys.pkcs11_pin_file.is_none()
                {
                    return Err(ConfigError::Invalid(
                        "keys.backend = \"pkcs11\" needs keys.pkcs11_module, keys.pkcs11_token_label and keys.pkcs11_pin_file".into(),
                    ));
                }
            }
        }
        if let Some(url) = &self.store.url {
            if !["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|p| url.starts_with(p))
            {
                // The URL itself is not echoed: it may carry a password.
                return Err(ConfigError::Invalid(
                    "store.url must start with sqlite:, postgres:// or postgresql://".into(),
                ));
            }
        }
        if self.store.password_file.is_some() {
            if !self.shared_store() {
                return Err(ConfigError::Invalid(
                    "store.password_file needs a postgres:// store.url (SQLite has no password)"
                        .into(),
                ));
            }
            // Read now, so a missing or unreadable secret mount is a configuration error
            // before anything starts (and read again when the store is opened).
            self.store_password()?;
        }
        self.gateway_limits_valid()?;
        if let Some(issuer) = &self.server.issuer {
            if !(issuer.starts_with("http://") || issuer.starts_with("https://"))
                || issuer.ends_with('/')
            {
                return Err(ConfigError::Invalid(
                    "server.issuer must be an http(s) URL without a trailing slash".into(),
                ));
            }
        }
        Ok(())
    }

    /// The `[gateway]` values that have bounds.
    fn gateway_limits_valid(&self) -> Result<(), ConfigError> {
        let g = &self.gateway;
        let bad = |m: &str| Err(ConfigError::Invalid(format!("gateway.{m}")));
        if !(60..=86_400).contains(&g.max_device_token_secs) {
            return bad("max_device_token_secs must be from 60 to 86400");
        }
        if !(0..=600).contains(&g.skew_secs) {
            return bad("skew_secs must be from 0 to 600");
        }
        if !(1..=86_400).contains(&g.message_window_secs) {
            return bad("message_window_secs must be from 1 to 86400");
        }
        if !(64..=16 << 20).contains(&g.max_message_bytes) {
            return bad("max_message_bytes must be from 64 to 16777216");
        }
        if !(1..=300).contains(&g.connect_timeout_secs) {
            return bad("connect_timeout_secs must be from 1 to 300");
        }
        if g.max_inflight == 0 || g.max_keep_alive_secs == 0 {
            return bad("max_inflight and max_keep_alive_secs must be above 0");
        }
        if g.sink_write_interval_ms > 100 {
            return bad("sink_write_interval_ms must be at most 100");
        }
        if !(4096..=1 << 30).contains(&g.embedded_segment_bytes) {
            return bad("embedded_segment_bytes must be from 4096 to 1073741824");
        }
        if g.embedded_sync_interval_ms > 10_000 {
            return bad("embedded_sync_interval_ms must be at most 10000 (0: sync every batch)");
        }
        if g.sink != "embedded" && !g.sink.starts_with("nats://") {
            return bad("sink must be \"embedded\" or a nats:// URL");
        }
        let token = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !token(&g.nats_stream) || !g.nats_subject_prefix.split('.').all(token) {
            return bad("nats_stream and nats_subject_prefix must be plain NATS names");
        }
        for (model, policy) in &g.models {
            if policy
                .message_auth
                .as_deref()
                .is_some_and(|m| portcullis_gateway::MessageAuth::parse(m).is_none())
            {
                return bad(&format!(
                    "models.{model}.message_auth must be \"required\" or \"optional\""
                ));
            }
            if portcullis_core::ScopeSet::from_tokens(policy.scopes.iter().cloned()).is_err() {
                return bad(&format!("models.{model}.scopes holds an invalid scope"));
            }
        }
        g.broker_hook.validate()?;
        Ok(())
    }

    /// The key rotation policy.
    pub fn rotation_policy(
        &self,
    ) -> Result<portcullis_core::rotation::RotationPolicy, ConfigError> {
        let policy = portcullis_core::rotation::RotationPolicy {
            prepublish_secs: self.keys.prepublish_secs,
            rotate_every_secs: (self.keys.rotate_every_secs > 0)
                .then_some(self.keys.rotate_every_secs),
            max_token_ttl_secs: i64::from(portcullis_core::client::MAX_TOKEN_TTL_SECS),
        };
        policy
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("keys: {e}")))?;
        Ok(policy)
    }

    /// The device certificate profile.
    pub fn certificate_profile(
        &self,
    ) -> Result<portcullis_pki::profile::CertificateProfile, ConfigError> {
        let invalid = |e: portcullis_pki::PkiError| ConfigError::Invalid(format!("pki: {e}"));
        let allowed_keys = self
            .pki
            .key_types
            .iter()
            .map(|k| portcullis_pki::profile::KeyType::parse(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let profile = portcullis_pki::profile::CertificateProfile {
            lifetime_secs: self.pki.cert_lifetime_secs,
            allowed_keys,
            min_rsa_bits: self.pki.min_rsa_bits,
            ..Default::default()
        };
        profile.validate().map_err(invalid)?;
        Ok(profile)
    }

    /// The algorithm of generated CA keys.
    pub fn ca_algorithm(&self) -> Result<Algorithm, ConfigError> {
        let alg = self.pki.ca_algorithm;
        if alg == Algorithm::PS256 {
            return Err(ConfigError::Invalid(
                "pki.ca_algorithm must be ES256, ES384, EdDSA or RS256".into(),
            ));
        }
        Ok(alg)
    }

    /// Whether the store is PostgreSQL, which several nodes may share (SQLite serves one).
    pub fn shared_store(&self) -> bool {
        self.store
            .url
            .as_deref()
            .is_some_and(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"))
    }

    /// The PostgreSQL password from `[store] password_file`, if one is configured.
    pub fn store_password(&self) -> Result<Option<Zeroizing<String>>, ConfigError> {
        self.store
            .password_file
            .as_deref()
            .map(|path| read_password_file(path, "store.password_file"))
            .transpose()
    }

    /// The proxies whose `X-Forwarded-For` is believed (`[server] trusted_proxies`).
    pub fn trusted_proxies(
        &self,
    ) -> Result<portcullis_core::forwarded::TrustedProxies, ConfigError> {
        portcullis_core::forwarded::TrustedProxies::parse(&self.server.trusted_proxies)
            .map_err(|e| ConfigError::Invalid(format!("server.trusted_proxies: {e}")))
    }

    /// The access-token signing algorithm.
    pub fn signing_algorithm(&self) -> Algorithm {
        self.keys.algorithm
    }

    /// Algorithms accepted in client assertions.
    pub fn assertion_algorithms(&self) -> &[Algorithm] {
        &self.keys.assertion_algorithms
    }

    /// The SQLite database path.
    pub fn sqlite_path(&self) -> PathBuf {
        match &self.store.url {
            Some(url) => PathBuf::from(url.trim_start_matches("sqlite:").trim_start_matches("//")),
            None => self.server.data_dir.join("portcullis.db"),
        }
    }

    /// The configuration's part of the federation trust: `[federation]` with the rules of
    /// `[[token_exchange.rules]]`.
    pub fn configured_trust(&self) -> portcullis_oauth::federation::TrustSet {
        let mut trust = self.federation.clone();
        trust.exchange_rules = self.token_exchange.rules.clone();
        trust
    }

    /// The `[[audit.export]]`s by name and start: what archiving must wait for
    /// (`portcullis_audit::export::delivered_through`).
    pub fn audit_exports(&self) -> Arc<[(String, portcullis_audit::export::StartAt)]> {
        self.audit
            .export
            .iter()
            .map(|e| (e.name.clone(), e.start_at()))
            .collect()
    }

    /// Where automatic audit archiving writes its segments.
    pub fn audit_archive_dir(&self) -> PathBuf {
        self.audit
            .archive_dir
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("audit-archive"))
    }

    /// The master key file.
    pub fn master_key_file(&self) -> PathBuf {
        self.keys
            .master_key_file
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("master.key"))
    }
}

/// `PORTCULLIS_SECTION__KEY=value` sets `[section] key = value`. The value is read as a TOML
/// value when it parses as one (numbers, booleans, arrays), else as a string.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let overrides: BTreeMap<(String, String), String> = env
        .into_iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix("PORTCULLIS_")?;
            let (section, key) = rest.split_once("__")?;
            Some(((section.to_ascii_lowercase(), key.to_ascii_lowercase()), v))
        })
        .collect();
    for ((section, key), raw) in overrides {
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw));
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(section_table) = entry else {
            return Err(ConfigError::Invalid(format!("{section} is not a section")));
        };
        section_table.insert(key, value);
    }
    Ok(())
}

/// A password file's content minus one trailing `\n` or `\r\n` (how secret mounts and
/// `echo` write them). Errors name the file under `what`, never its content. Shared by the
/// server (`[store] password_file`) and the offline commands (`--password-file`).
pub fn read_password_file(path: &Path, what: &str) -> Result<Zeroizing<String>, ConfigError> {
    let bad = |why: String| ConfigError::Invalid(format!("{what} {}: {why}", path.display()));
    // The io::Error kind only: its message is the OS's, but keep to what cannot echo.
    let bytes = Zeroizing::new(
        std::fs::read(path).map_err(|e| bad(format!("cannot be read ({})", e.kind())))?,
    );
    let mut password = Zeroizing::new(
        std::str::from_utf8(&bytes)
            .map_err(|_| bad("is not UTF-8 text".into()))?
            .to_owned(),
    );
    if password.ends_with('\n') {
        password.pop();
        if password.ends_with('\r') {
            password.pop();
        }
    }
    if password.is_empty() {
        return Err(bad("is empty".into()));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A README walk found `auth_failures_per_address` (then 50 a minute) could never fire:
    /// the lock-out answers 429, unaudited, after 20 failures a minute from an address.
    #[test]
    fn the_address_detection_rule_fires_before_the_lock_out_by_default() {
        let c = Config::load(None, env(&[])).unwrap();
        let rule = portcullis_core::detection::default_rule(
            portcullis_core::detection::RuleKind::AuthFailuresPerAddress,
        );
        assert!(rule.threshold < u64::from(c.rate_limit.auth_failures_per_minute));
        assert!(rule.window_secs <= 60);
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.signing_algorithm(), Algorithm::ES256);
        assert_eq!(c.rate_limit.per_client, 1000);
        assert_eq!(c.gateway.sink_write_interval_ms, 0);
        assert_eq!(c.gateway.embedded_sync_interval_ms, 0, "sync every batch");
        assert_eq!(c.gateway.embedded_segment_bytes, 64 << 20);
    }

    #[test]
    fn environment_overrides_file_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"127.0.0.1:9000\"\n[rate_limit]\nper_client = 5\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            env(&[
                ("PORTCULLIS_SERVER__LISTEN", "127.0.0.1:9100"),
                ("PORTCULLIS_RATE_LIMIT__PER_ADDRESS", "0"),
                ("PORTCULLIS_KEYS__ALGORITHM", "EdDSA"),
                ("PORTCULLIS_SERVER", "http://not-a-config-key"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(c.rate_limit.per_client, 5);
        assert_eq!(c.rate_limit.per_address, 0);
        assert_eq!(c.signing_algorithm(), Algorithm::EdDSA);
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        for (k, v) in [
            ("PORTCULLIS_KEYS__ALGORITHM", "none"),
            ("PORTCULLIS_SERVER__LISTEN", "nowhere"),
            ("PORTCULLIS_SERVER__NOPE", "1"),
            ("PORTCULLIS_LOG__FORMAT", "xml"),
            ("PORTCULLIS_KEYS__BACKEND", "tpm"),
            ("PORTCULLIS_KEYS__BACKEND", "pkcs11"),
            ("PORTCULLIS_STORE__URL", "mysql://x"),
            ("PORTCULLIS_SERVER__ISSUER", "https://as/"),
            ("PORTCULLIS_SERVER__TRUSTED_PROXIES", "[\"10.0.0.0/33\"]"),
            ("PORTCULLIS_SERVER__TRUSTED_PROXIES", "[\"10.1.2.3/8\"]"),
            ("PORTCULLIS_SERVER__TRUSTED_PROXIES", "[\"proxy.internal\"]"),
            ("PORTCULLIS_SERVER__TRUSTED_PROXIES", "10.0.0.0/8"),
            ("PORTCULLIS_AUDIT__CHECKPOINT_INTERVAL_SECS", "-1"),
            ("PORTCULLIS_AUDIT__CHECKPOINT_INTERVAL_SECS", "86401"),
            ("PORTCULLIS_AUDIT__CHECKPOINT_INTERVAL_SECS", "often"),
            ("PORTCULLIS_GATEWAY__SINK_WRITE_INTERVAL_MS", "101"),
            ("PORTCULLIS_GATEWAY__EMBEDDED_SYNC_INTERVAL_MS", "10001"),
            ("PORTCULLIS_GATEWAY__EMBEDDED_SYNC_INTERVAL_MS", "-1"),
            ("PORTCULLIS_GATEWAY__EMBEDDED_SEGMENT_BYTES", "4095"),
            ("PORTCULLIS_GATEWAY__EMBEDDED_SEGMENT_BYTES", "1073741825"),
            ("PORTCULLIS_PKI__TLS_CERT_LIFETIME_SECS", "4"),
            ("PORTCULLIS_PKI__TLS_CERT_LIFETIME_SECS", "34387201"),
            ("PORTCULLIS_PKI__TLS_CERT_LIFETIME_SECS", "-1"),
        ] {
            assert!(
                Config::load(None, env(&[(k, v)])).is_err(),
                "{k}={v} should be rejected"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[server\n").unwrap();
        assert!(Config::load(Some(&path), env(&[])).is_err());
        assert!(Config::load(Some(&dir.path().join("missing.toml")), env(&[])).is_err());
    }

    /// A README walk wrote `address` into an ndjson export and nothing said so.
    #[test]
    fn an_export_with_the_other_kinds_keys_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exports.toml");
        for (body, named) in [
            (
                "kind = \"ndjson\"\npath = \"-\"\naddress = \"siem:6514\"",
                "address",
            ),
            (
                "kind = \"syslog\"\naddress = \"siem:6514\"\ntls_ca_file = \"ca.pem\"\npath = \"x\"",
                "path is for",
            ),
        ] {
            std::fs::write(&path, format!("[[audit.export]]\nname = \"e\"\n{body}\n")).unwrap();
            let refused = Config::load(Some(&path), env(&[])).err().map(|e| e.to_string());
            assert!(
                refused.as_deref().is_some_and(|e| e.contains(named)),
                "{body}: {refused:?}"
            );
        }
    }

    #[test]
    fn the_store_password_comes_from_its_file_and_errors_never_show_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db-password");
        let pg = (
            "PORTCULLIS_STORE__URL",
            "postgres://portcullis@db.internal/portcullis",
        );
        let file_env = ("PORTCULLIS_STORE__PASSWORD_FILE", file.to_str().unwrap());
        for (content, want) in [
            ("s3cr3t-Pa55\n", "s3cr3t-Pa55"),
            ("s3cr3t-Pa55\r\n", "s3cr3t-Pa55"),
            ("s3cr3t-Pa55", "s3cr3t-Pa55"),
            (" spaced pass \n\n", " spaced pass \n"),
        ] {
            std::fs::write(&file, content).unwrap();
            let c = Config::load(None, env(&[pg, file_env])).unwrap();
            assert_eq!(c.store_password().unwrap().unwrap().as_str(), want);
        }
        assert!(Config::load(None, env(&[pg]))
            .unwrap()
            .store_password()
            .unwrap()
            .is_none());

        std::fs::write(&file, "s3cr3t-Pa55\n").unwrap();
        let errors = [
            // Missing or unreadable (a directory) file: named, content never shown.
            env(&[
                pg,
                (
                    "PORTCULLIS_STORE__PASSWORD_FILE",
                    "/nonexistent/db-password",
                ),
            ]),
            env(&[
                pg,
                (
                    "PORTCULLIS_STORE__PASSWORD_FILE",
                    dir.path().to_str().unwrap(),
                ),
            ]),
            // A password file for SQLite (or the default store) makes no sense.
            env(&[file_env]),
            env(&[("PORTCULLIS_STORE__URL", "sqlite:/tmp/p.db"), file_env]),
        ];
        for e in errors {
            let err = Config::load(None, e.clone()).unwrap_err().to_string();
            assert!(err.contains("store.password_file"), "{e:?}: {err}");
            assert!(!err.contains("s3cr3t"), "{e:?}: {err}");
        }
        let missing = Config::load(
            None,
            env(&[
                pg,
                (
                    "PORTCULLIS_STORE__PASSWORD_FILE",
                    "/nonexistent/db-password",
                ),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(missing.contains("/nonexistent/db-password"), "{missing}");
        std::fs::write(&file, "\n").unwrap();
        let empty = Config::load(None, env(&[pg, file_env]))
            .unwrap_err()
            .to_string();
        assert!(empty.contains("is empty"), "{empty}");
    }

    #[test]
    fn audit_checkpoints_default_to_every_minute_and_zero_turns_them_off() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.audit.checkpoint_interval_secs, 60);
        for (value, want) in [("1", 1), ("0", 0), ("86400", 86_400)] {
            let c = Config::load(
                None,
                env(&[("PORTCULLIS_AUDIT__CHECKPOINT_INTERVAL_SECS", value)]),
            )
            .unwrap();
            assert_eq!(c.audit.checkpoint_interval_secs, want);
        }
    }

    #[test]
    fn automatic_audit_archiving_is_off_unless_an_age_is_configured() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.audit.archive_after_days, None);
        assert_eq!(c.audit.archive_interval_secs, 3600);
        assert_eq!(
            c.audit_archive_dir(),
            PathBuf::from("portcullis-data/audit-archive")
        );
        let c = Config::load(
            None,
            env(&[
                ("PORTCULLIS_AUDIT__ARCHIVE_AFTER_DAYS", "365"),
                ("PORTCULLIS_AUDIT__ARCHIVE_DIR", "/srv/archive"),
            ]),
        )
        .unwrap();
        assert_eq!(c.audit.archive_after_days, Some(365.0));
        assert_eq!(c.audit_archive_dir(), PathBuf::from("/srv/archive"));
        for (key, value) in [
            ("PORTCULLIS_AUDIT__ARCHIVE_AFTER_DAYS", "0"),
            ("PORTCULLIS_AUDIT__ARCHIVE_AFTER_DAYS", "-1.5"),
            ("PORTCULLIS_AUDIT__ARCHIVE_AFTER_DAYS", "nan"),
            ("PORTCULLIS_AUDIT__ARCHIVE_INTERVAL_SECS", "0"),
            ("PORTCULLIS_AUDIT__ARCHIVE_INTERVAL_SECS", "86401"),
        ] {
            let err = Config::load(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("audit.archive_"), "{key}={value}: {err}");
        }
    }

    #[test]
    fn the_generated_tls_certificate_lives_ninety_days_unless_configured() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.pki.tls_cert_lifetime_secs, 90 * 86_400);
        for value in [5, 3600, 398 * 86_400] {
            let c = Config::load(
                None,
                env(&[("PORTCULLIS_PKI__TLS_CERT_LIFETIME_SECS", &value.to_string())]),
            )
            .unwrap();
            assert_eq!(c.pki.tls_cert_lifetime_secs, value);
        }
    }

    #[test]
    fn trusted_proxies_are_cidrs_and_default_to_none() {
        let c = Config::load(None, env(&[])).unwrap();
        assert!(c.trusted_proxies().unwrap().is_empty());
        let c = Config::load(
            None,
            env(&[(
                "PORTCULLIS_SERVER__TRUSTED_PROXIES",
                "[\"127.0.0.1/32\", \"10.0.0.0/8\", \"fd00::/8\", \"192.0.2.7\"]",
            )]),
        )
        .unwrap();
        let trusted = c.trusted_proxies().unwrap();
        assert!(trusted.is_trusted("10.1.2.3".parse().unwrap()));
        assert!(trusted.is_trusted("192.0.2.7".parse().unwrap()));
        assert!(!trusted.is_trusted("192.0.2.8".parse().unwrap()));
        let err = Config::load(
            None,
            env(&[(
                "PORTCULLIS_SERVER__TRUSTED_PROXIES",
                "[\"10.0.0.0/8\", \"10.0.0.0/33\"]",
            )]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("server.trusted_proxies") && err.contains("\"10.0.0.0/33\""),
            "{err}"
        );
    }
}
