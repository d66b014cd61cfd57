//! The verification core every transport adapter calls: admit a connection, accept a
//! message. Adapters only translate their protocol to these calls and the answers back.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use portcullis_audit::AuditLog;
use portcullis_core::audit::{AuditAction, AuditEvent, Outcome};
use portcullis_core::{hex, UnixTime};
use portcullis_ports::TokenValidator;
use portcullis_store::Store;
use serde_json::json;

use crate::commands::Commands;
use crate::device_settings::DeviceSettings;
use crate::directory::{CertificateCheck, Directory, MessagePolicy};
use crate::ingest::Ingest;
use crate::replay::ReplayGuard;
use crate::session::{Admitted, Session, Sessions, Transport};
use crate::signed::OperatorKeys;
use crate::sink::Sink;
use crate::updates::Updates;
use crate::GatewayError;
use portcullis_core::command_policy::CommandPolicy;
use portcullis_keys::KeyCustody;

mod accept;
pub use accept::{Destination, Submitted, APPLIED_STREAM, RESULTS_STREAM, UPDATES_STREAM};
mod admit;
mod follow;

/// The stream a message goes to when the device names none.
pub const DEFAULT_STREAM: &str = "default";

/// Connection and message bounds the adapters enforce.
#[derive(Debug, Clone)]
pub struct GatewayLimits {
    pub max_message_bytes: usize,
    pub connect_timeout: Duration,
    pub max_inflight: u16,
    pub max_keep_alive_secs: u16,
    /// While messages come faster than the sink writes them, it is written at most once
    /// per this interval (group commit: one `fdatasync` of the embedded log for everything
    /// that came meanwhile); zero: as soon as the previous write is done.
    pub sink_write_interval: Duration,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            connect_timeout: Duration::from_secs(10),
            max_inflight: 64,
            max_keep_alive_secs: 300,
            sink_write_interval: Duration::ZERO,
        }
    }
}

/// `[gateway]` as the core needs it.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The `aud` a device token must carry.
    pub audience: String,
    /// This server's issuer: a token it issued is an access token, not a device token.
    pub issuer: String,
    pub max_device_token_secs: i64,
    pub skew_secs: i64,
    /// How far a COSE message's timestamp may be from this node's clock.
    pub message_window_secs: i64,
    pub limits: GatewayLimits,
    pub policy: MessagePolicy,
    /// The command rules of `[gateway.commands]` (the admin API's come after them).
    pub command_rules: CommandPolicy,
}

/// What a device presents to open a connection.
#[derive(Debug, Clone)]
pub enum ConnectCredential {
    /// TLS client certificate chain, leaf first (DER).
    Certificate(Vec<Vec<u8>>),
    /// A device token, or an access token `/oauth2/token` issued to the device;
    /// `claimed_device` (the MQTT user name) must name the same device. `leaf` is the TLS
    /// client certificate the token came with, if any (a certificate-bound access token is
    /// accepted only with its certificate, RFC 8705 §3).
    Token {
        token: String,
        claimed_device: Option<String>,
        leaf: Option<Vec<u8>>,
        /// Set when the token came over HTTP as `Authorization: DPoP` (RFC 9449 §7.1): the
        /// proof and the request it must be for. MQTT has nowhere to carry a proof, so a
        /// DPoP-bound token is refused there.
        dpop: Option<DpopRequest>,
    },
}

/// An owned [`portcullis_ports::DpopPresentation`]: the credential outlives the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopRequest {
    pub proof: Option<String>,
    pub method: String,
    pub path: String,
}

impl DpopRequest {
    pub(crate) fn presentation(&self) -> portcullis_ports::DpopPresentation<'_> {
        portcullis_ports::DpopPresentation {
            proof: self.proof.as_deref(),
            method: &self.method,
            path: &self.path,
        }
    }
}

/// A message the sink holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub message_id: String,
}

/// The gateway's services, shared by every adapter.
pub struct Gateway {
    config: GatewayConfig,
    directory: Directory,
    certificates: Arc<dyn CertificateCheck>,
    tokens: Arc<dyn TokenValidator>,
    replay: Arc<ReplayGuard>,
    /// Counters reserved and messages stored, in batches.
    ingest: Ingest,
    /// `embedded` or `nats` (the sink itself belongs to the ingest pipeline).
    sink_kind: &'static str,
    audit: AuditLog,
    sessions: Arc<Sessions>,
    /// The operator's signing keys and the trust list (issue #13).
    operator_keys: OperatorKeys,
    /// Commands to devices (issue #13).
    commands: Commands,
    /// Desired settings per device (issue #13).
    settings: DeviceSettings,
    /// Software releases (issue #13).
    updates: Updates,
    address_gate: Option<Arc<dyn portcullis_ports::AddressGate>>,
    clock: fn() -> UnixTime,
    metrics: MessageMetrics,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("sink", &self.sink_kind)
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

/// The parts a gateway is built from (the server wires them).
pub struct GatewayParts {
    pub config: GatewayConfig,
    pub registry: Arc<dyn portcullis_ports::DeviceRegistry>,
    pub certificates: Arc<dyn CertificateCheck>,
    pub tokens: Arc<dyn TokenValidator>,
    pub store: Arc<dyn Store>,
    pub sink: Arc<dyn Sink>,
    pub audit: AuditLog,
    /// Where the operator keys are kept (the node's key custody).
    pub custody: KeyCustody,
    /// Where uploaded update images are kept (`<data_dir>/updates`).
    pub images_dir: std::path::PathBuf,
    /// Addresses attack detection blocked (none: nothing is blocked).
    pub address_gate: Option<Arc<dyn portcullis_ports::AddressGate>>,
    pub clock: fn() -> UnixTime,
}

const MESSAGES_METRIC: &str = "portcullis_gateway_messages_total";
const CONNECTIONS_METRIC: &str = "portcullis_gateway_connections";
const VERIFY_SECONDS_METRIC: &str = "portcullis_gateway_verify_seconds";

/// The per-message metrics' handles, registered once: `counter!` with labels looks its series
/// up in the recorder on every call, ~1.5 % of a paced message's CPU. Built with the gateway,
/// after the server installs its recorder (a handle taken before would count nowhere).
struct MessageMetrics {
    accepted_http: metrics::Counter,
    accepted_mqtt: metrics::Counter,
    accepted_broker_hook: metrics::Counter,
    verify_seconds: metrics::Histogram,
}

impl MessageMetrics {
    fn register() -> Self {
        let accepted = |transport: Transport| metrics::counter!(MESSAGES_METRIC, "transport" => transport.as_str(), "outcome" => "accepted");
        Self {
            accepted_http: accepted(Transport::Http),
            accepted_mqtt: accepted(Transport::Mqtt),
            accepted_broker_hook: accepted(Transport::BrokerHook),
            verify_seconds: metrics::histogram!(VERIFY_SECONDS_METRIC),
        }
    }

    /// `portcullis_gateway_messages_total{transport, outcome="accepted"}`.
    fn accepted(&self, transport: Transport) -> &metrics::Counter {
        match transport {
            Transport::Http => &self.accepted_http,
            Transport::Mqtt => &self.accepted_mqtt,
            Transport::BrokerHook => &self.accepted_broker_hook,
        }
    }
}

/// Stream names: 1 to 64 of A-Z a-z 0-9 _ - (they become NATS subject tokens and file-safe
/// labels).
pub fn valid_stream(stream: &str) -> bool {
    !stream.is_empty()
        && stream.len() <= 64
        && stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Gateway {
    /// Builds the gateway; must run inside a Tokio runtime (it starts the ingest pipeline's
    /// tasks).
    pub fn new(parts: GatewayParts) -> Arc<Gateway> {
        let operator_keys = OperatorKeys::new(Arc::clone(&parts.store), parts.custody, parts.clock);
        let commands = Commands::new(
            Arc::clone(&parts.store),
            Arc::clone(&parts.registry),
            operator_keys.clone(),
            parts.config.command_rules.clone(),
            parts.audit.clone(),
            parts.clock,
        );
        let settings = DeviceSettings::new(
            Arc::clone(&parts.store),
            Arc::clone(&parts.registry),
            operator_keys.clone(),
            parts.audit.clone(),
            commands.doorbells(),
            parts.clock,
        );
        let updates = Updates::new(
            Arc::clone(&parts.store),
            Arc::clone(&parts.registry),
            operator_keys.clone(),
            parts.audit.clone(),
            parts.images_dir,
            parts.config.issuer.clone(),
            parts.clock,
        );
        // One node writing its own store and log decides counters in memory (`replay`).
        let window = parts.config.message_window_secs;
        let replay = Arc::new(
            if !parts.store.is_shared() && parts.sink.position().is_some() {
                ReplayGuard::deciding_locally(parts.store, window, Arc::clone(&parts.sink))
            } else {
                ReplayGuard::new(parts.store, window)
            },
        );
        let write_interval = parts.config.limits.sink_write_interval;
        Arc::new(Gateway {
            operator_keys,
            commands,
            settings,
            updates,
            directory: Directory::new(parts.registry, parts.config.policy.clone(), 1_000_000),
            config: parts.config,
            certificates: parts.certificates,
            tokens: parts.tokens,
            sink_kind: parts.sink.kind(),
            ingest: Ingest::start(Arc::clone(&replay), parts.sink, write_interval),
            replay,
            audit: parts.audit,
            sessions: Arc::new(Sessions::default()),
            address_gate: parts.address_gate,
            clock: parts.clock,
            metrics: MessageMetrics::register(),
        })
    }

    /// Whether attack detection blocked `address`: its connections are refused before any
    /// work is spent on them.
    pub fn is_blocked(&self, address: std::net::IpAddr) -> bool {
        self.address_gate
            .as_ref()
            .is_some_and(|gate| gate.is_blocked(address))
    }

    pub fn limits(&self) -> &GatewayLimits {
        &self.config.limits
    }

    /// The operator's signing keys and the trust list.
    pub fn operator_keys(&self) -> &OperatorKeys {
        &self.operator_keys
    }

    /// Commands to devices: sending, approving, delivering, results.
    pub fn commands(&self) -> &Commands {
        &self.commands
    }

    /// Desired settings per device.
    pub fn settings(&self) -> &DeviceSettings {
        &self.settings
    }

    /// Software releases and their rollout.
    pub fn updates(&self) -> &Updates {
        &self.updates
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    /// The token validator, for the adapters' read endpoints (`telemetry:read`).
    pub fn tokens(&self) -> &Arc<dyn TokenValidator> {
        &self.tokens
    }

    pub(crate) fn now(&self) -> UnixTime {
        (self.clock)()
    }

    /// Registers the connection as the device's live session; a previous one is ended and
    /// the take-over audited (two connections for one device may mean a cloned device).
    pub fn open_session(
        &self,
        admitted: Admitted,
        transport: Transport,
        source: IpAddr,
    ) -> Session {
        let device = admitted.device_id.to_string();
        let method = admitted.method;
        let (session, took_over) = self.sessions.open(admitted, transport, source);
        metrics::gauge!(CONNECTIONS_METRIC, "transport" => transport.as_str()).increment(1.0);
        let (action, outcome) = if took_over {
            (AuditAction::GatewayTakeover, Outcome::Failure)
        } else {
            (AuditAction::GatewayConnected, Outcome::Success)
        };
        let event = AuditEvent {
            at: self.now(),
            actor: device.clone(),
            action: action.into(),
            subject: device,
            outcome: outcome.into(),
            detail: json!({
                "transport": transport.as_str(),
                "method": method.as_str(),
                "source": source.to_string(),
            }),
        };
        let audit = self.audit.clone();
        tokio::spawn(async move {
            if audit.record(event).await.is_err() {
                tracing::warn!("the audit log could not take a gateway connection record");
            }
        });
        session
    }

    /// Tells the gateway a session's connection is gone (for the connection gauge).
    pub fn session_ended(&self, session: Session) {
        metrics::gauge!(CONNECTIONS_METRIC, "transport" => session.transport.as_str())
            .decrement(1.0);
        drop(session);
    }

    /// Counts and audits a refusal an adapter decided itself (a bad topic, a bad CONNECT).
    pub fn refused(
        &self,
        transport: Transport,
        source: IpAddr,
        device: Option<&str>,
        error: &GatewayError,
    ) {
        metrics::counter!(MESSAGES_METRIC, "transport" => transport.as_str(), "outcome" => error.reason())
            .increment(1);
        self.audit_refusal(transport, source, device, error);
    }

    /// Refusals go to the audit log summarised per source and minute (a flood of forged
    /// messages must not become a flood of records); replays are their own action, so a
    /// replay campaign stands out.
    fn audit_refusal(
        &self,
        transport: Transport,
        source: IpAddr,
        device: Option<&str>,
        error: &GatewayError,
    ) {
        if matches!(
            error,
            GatewayError::Unavailable(_) | GatewayError::Internal(_)
        ) {
            tracing::warn!(error = %error, transport = transport.as_str(), "gateway could not take a message");
        }
        let action = match error {
            GatewayError::Replay(_) => AuditAction::GatewayReplay,
            _ => AuditAction::GatewayRefused,
        };
        let device = device.unwrap_or("unknown").to_owned();
        self.audit.record_refusal(
            source,
            AuditEvent {
                at: self.now(),
                actor: device.clone(),
                action: action.into(),
                subject: device,
                outcome: Outcome::Failure.into(),
                detail: json!({
                    "transport": transport.as_str(),
                    "reason": error.reason(),
                    "source": source.to_string(),
                }),
            },
        );
    }
}

/// A COSE message's id: the first 128 bits of the SHA-256 of its bytes, hex. The same
/// message sent twice (a retry, or to two nodes) has the same id, which is what JetStream's
/// de-duplication keys on.
fn cose_message_id(bytes: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, bytes);
    hex::encode(d.as_ref().get(..16).unwrap_or_default())
}

fn random_message_id() -> Result<String, GatewayError> {
    portcullis_keys::random_id::<16>()
        .map(|b| hex::encode(&b))
        .map_err(|e| GatewayError::Internal(e.to_string()))
}

/// This node's clock in Unix milliseconds (when a message was received).
pub(crate) fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
