//! The verification core every transport adapter calls: admit a connection, accept a
//! message. Adapters only translate their protocol to these calls and the answers back.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use bytes::Bytes;
use portcullis_audit::AuditLog;
use portcullis_core::audit::{AuditAction, AuditEvent, Outcome};
use portcullis_core::device::DeviceId;
use portcullis_core::{hex, UnixTime};
use portcullis_ports::TokenValidator;
use portcullis_store::Store;
use serde_json::json;
use tokio::sync::broadcast;

use crate::cose;
use crate::credentials::{CredentialMethod, DeviceCredentials, MessageAuth};
use crate::device_token::{self, DeviceTokenRules};
use crate::directory::{CertificateCheck, Directory, MessagePolicy};
use crate::replay::ReplayGuard;
use crate::session::{Admitted, CloseReason, Session, Sessions, Transport};
use crate::sink::{Sink, TelemetryRecord};
use crate::GatewayError;

/// The stream a message goes to when the device names none.
pub const DEFAULT_STREAM: &str = "default";

/// Connection and message bounds the adapters enforce.
#[derive(Debug, Clone)]
pub struct GatewayLimits {
    pub max_message_bytes: usize,
    pub connect_timeout: Duration,
    pub max_inflight: u16,
    pub max_keep_alive_secs: u16,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            connect_timeout: Duration::from_secs(10),
            max_inflight: 64,
            max_keep_alive_secs: 300,
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
    },
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
    sink: Arc<dyn Sink>,
    audit: AuditLog,
    sessions: Arc<Sessions>,
    clock: fn() -> UnixTime,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("sink", &self.sink.kind())
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
    pub clock: fn() -> UnixTime,
}

const MESSAGES_METRIC: &str = "portcullis_gateway_messages_total";
const CONNECTIONS_METRIC: &str = "portcullis_gateway_connections";
const VERIFY_SECONDS_METRIC: &str = "portcullis_gateway_verify_seconds";

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
    /// Builds the gateway; must run inside a Tokio runtime (the replay guard starts its
    /// batch task).
    pub fn new(parts: GatewayParts) -> Arc<Gateway> {
        let replay = Arc::new(ReplayGuard::new(
            parts.store,
            parts.config.message_window_secs,
        ));
        Arc::new(Gateway {
            directory: Directory::new(parts.registry, parts.config.policy.clone(), 1_000_000),
            config: parts.config,
            certificates: parts.certificates,
            tokens: parts.tokens,
            replay,
            sink: parts.sink,
            audit: parts.audit,
            sessions: Arc::new(Sessions::default()),
            clock: parts.clock,
        })
    }

    pub fn limits(&self) -> &GatewayLimits {
        &self.config.limits
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    /// The token validator, for the adapters' read endpoints (`telemetry:read`).
    pub fn tokens(&self) -> &Arc<dyn TokenValidator> {
        &self.tokens
    }

    fn now(&self) -> UnixTime {
        (self.clock)()
    }

    /// Verifies a connection credential; the device must be registered and active.
    pub async fn authenticate(
        &self,
        transport: Transport,
        credential: ConnectCredential,
        source: IpAddr,
    ) -> Result<Admitted, GatewayError> {
        let claimed = match &credential {
            ConnectCredential::Token { claimed_device, .. } => claimed_device.clone(),
            ConnectCredential::Certificate(_) => None,
        };
        let result = self.admit(credential).await;
        let result = result.and_then(|admitted| match &claimed {
            Some(name) if name != admitted.device_id.as_str() => {
                Err(GatewayError::Unauthenticated("user_name_mismatch"))
            }
            _ => Ok(admitted),
        });
        if let Err(e) = &result {
            self.refused(transport, source, claimed.as_deref(), e);
        }
        result
    }

    async fn admit(&self, credential: ConnectCredential) -> Result<Admitted, GatewayError> {
        let now = self.now();
        match credential {
            ConnectCredential::Certificate(chain) => {
                let valid = self.certificates.validate(&chain, now).await?;
                let creds = self.active_credentials(&valid.device_id).await?;
                Ok(Admitted {
                    device_id: valid.device_id,
                    model: creds.model.clone(),
                    method: CredentialMethod::Certificate,
                    credential: Some(valid.serial),
                    expires_at: Some(valid.not_after),
                })
            }
            ConnectCredential::Token { token, leaf, .. } => {
                let unverified = device_token::peek(&token)?;
                if unverified.issuer() == Some(self.config.issuer.as_str()) {
                    return self.admit_access_token(&token, leaf.as_deref()).await;
                }
                let device_id = unverified.device_id()?;
                let creds = self.active_credentials(&device_id).await?;
                let rules = DeviceTokenRules {
                    audience: self.config.audience.clone(),
                    max_lifetime_secs: self.config.max_device_token_secs,
                    skew_secs: self.config.skew_secs,
                };
                let verified = unverified.verify(&creds, &rules, now)?;
                Ok(Admitted {
                    device_id: verified.device_id,
                    model: creds.model.clone(),
                    method: verified.method,
                    credential: Some(verified.key_id),
                    expires_at: Some(verified.expires_at),
                })
            }
        }
    }

    /// An access token this server issued to a device (`client_id` = device id, issue #12
    /// item 5): active, bound to the presented certificate if it is bound, and the device
    /// registered and active.
    async fn admit_access_token(
        &self,
        token: &str,
        leaf: Option<&[u8]>,
    ) -> Result<Admitted, GatewayError> {
        let claims = self
            .tokens
            .presented_token(token, leaf)
            .await
            .map_err(|_| GatewayError::Unauthenticated("access_token_inactive"))?;
        let device_id = DeviceId::parse(claims.client_id.as_str())
            .map_err(|_| GatewayError::Unauthenticated("access_token_not_a_device"))?;
        let creds = self.active_credentials(&device_id).await?;
        Ok(Admitted {
            device_id,
            model: creds.model.clone(),
            method: CredentialMethod::AccessToken,
            credential: None,
            expires_at: Some(claims.exp),
        })
    }

    /// The device's credentials if it is registered and active.
    async fn active_credentials(
        &self,
        id: &DeviceId,
    ) -> Result<Arc<DeviceCredentials>, GatewayError> {
        let creds = self
            .directory
            .credentials(id)
            .await?
            .ok_or(GatewayError::Unauthenticated("unknown_device"))?;
        if !creds.active {
            return Err(GatewayError::Forbidden("device_inactive"));
        }
        Ok(creds)
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

    /// Accepts a message on an admitted connection: verified (COSE when `cose`), checked for
    /// replay, held by the sink. A COSE message must name the session's device.
    pub async fn publish(
        &self,
        session: &Session,
        stream: Option<&str>,
        payload: Bytes,
        cose: bool,
    ) -> Result<Accepted, GatewayError> {
        if session.is_closed() {
            return Err(GatewayError::Forbidden("session_closed"));
        }
        self.accept(
            session.transport,
            session.source,
            Some(&session.admitted),
            stream,
            payload,
            cose,
        )
        .await
    }

    /// Accepts a message that came with no connection credential (HTTP
    /// `application/cose`), or with one checked for this request alone (`admitted`).
    pub async fn accept(
        &self,
        transport: Transport,
        source: IpAddr,
        admitted: Option<&Admitted>,
        stream: Option<&str>,
        payload: Bytes,
        cose: bool,
    ) -> Result<Accepted, GatewayError> {
        let result = self.verify_and_store(admitted, stream, payload, cose).await;
        let outcome = match &result {
            Ok(_) => "accepted",
            Err(e) => e.reason(),
        };
        metrics::counter!(MESSAGES_METRIC, "transport" => transport.as_str(), "outcome" => outcome)
            .increment(1);
        if let Err(e) = &result {
            let device = admitted.map(|a| a.device_id.as_str());
            self.audit_refusal(transport, source, device, e);
        }
        result
    }

    async fn verify_and_store(
        &self,
        admitted: Option<&Admitted>,
        stream: Option<&str>,
        payload: Bytes,
        cose: bool,
    ) -> Result<Accepted, GatewayError> {
        if payload.len() > self.config.limits.max_message_bytes {
            return Err(GatewayError::TooLarge);
        }
        let stream = match stream {
            None => DEFAULT_STREAM,
            Some(s) if valid_stream(s) => s,
            Some(_) => return Err(GatewayError::Forbidden("bad_stream")),
        };
        let now = self.now();
        let received_at_ms = unix_millis();
        if !cose {
            let admitted = admitted.ok_or(GatewayError::Unauthenticated("no_credential"))?;
            let creds = self.active_credentials(&admitted.device_id).await?;
            if creds.message_auth == MessageAuth::Required {
                return Err(GatewayError::Forbidden("message_auth_required"));
            }
            let record = TelemetryRecord {
                message_id: random_message_id()?,
                device_id: admitted.device_id.to_string(),
                model: creds.model.clone(),
                stream: stream.to_owned(),
                method: admitted.method.as_str().to_owned(),
                key_id: admitted.credential.clone(),
                counter: None,
                sent_at: None,
                received_at_ms,
                payload,
            };
            let message_id = record.message_id.clone();
            self.sink
                .put(record)
                .await
                .map_err(|e| GatewayError::Unavailable(e.0))?;
            return Ok(Accepted { message_id });
        }

        let started = Instant::now();
        let message = cose::parse(&payload)?;
        if let Some(admitted) = admitted {
            if message.device_id() != &admitted.device_id {
                return Err(GatewayError::Forbidden("other_device"));
            }
        }
        let creds = self.active_credentials(message.device_id()).await?;
        let verified = message.verify(&creds, now)?;
        metrics::histogram!(VERIFY_SECONDS_METRIC).record(started.elapsed().as_secs_f64());
        self.replay.check_time(verified.timestamp, now)?;
        if i64::try_from(verified.counter).is_err() {
            return Err(GatewayError::Malformed("counter_out_of_range"));
        }
        let record = TelemetryRecord {
            message_id: cose_message_id(&payload),
            device_id: verified.device_id.to_string(),
            model: creds.model.clone(),
            stream: stream.to_owned(),
            method: verified.method.as_str().to_owned(),
            key_id: Some(verified.key_id),
            counter: Some(verified.counter),
            sent_at: Some(verified.timestamp),
            received_at_ms,
            payload: Bytes::from(verified.payload),
        };
        // Reserve, store, and give the reservation back if the sink refuses: one step that
        // runs to its end even if the caller goes away meanwhile (an HTTP client hanging up,
        // an MQTT session ended mid-publish), so a counter is never left reserved for a
        // message that was not stored.
        let replay = Arc::clone(&self.replay);
        let sink = Arc::clone(&self.sink);
        let device = verified.device_id;
        let counter = verified.counter;
        tokio::spawn(async move {
            let reservation = replay.reserve(&device, counter).await?;
            let message_id = record.message_id.clone();
            match sink.put(record).await {
                Ok(()) => Ok(Accepted { message_id }),
                Err(e) => {
                    replay.release(reservation).await;
                    Err(GatewayError::Unavailable(e.0))
                }
            }
        })
        .await
        .map_err(|e| GatewayError::Internal(format!("the store step failed: {e}")))?
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

    /// Follows device changes announced by the registry (this node's writes and, through
    /// the store's change feed, every other node's): drops cached credentials and ends the
    /// sessions of devices that are no longer active or whose certificate was revoked. Also
    /// ends sessions whose credential expired. Runs until the registry goes away.
    pub async fn follow_devices(
        self: Arc<Self>,
        mut changes: broadcast::Receiver<Option<DeviceId>>,
    ) {
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(Some(id)) => {
                        self.directory.forget(&id).await;
                        self.recheck(&id).await;
                    }
                    Ok(None) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.directory.forget_all();
                        for live in self.sessions.live() {
                            self.recheck(&live.device_id).await;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = sweep.tick() => {
                    let closed = self.sessions.close_expired(self.now());
                    if closed > 0 {
                        tracing::debug!(closed, "gateway sessions ended at their credential's expiry");
                    }
                }
            }
        }
    }

    /// Ends the device's session if it may no longer be connected.
    async fn recheck(&self, id: &DeviceId) {
        let Some(live) = self.sessions.live_credential(id) else {
            return;
        };
        let verdict = match self.directory.credentials(id).await {
            Ok(Some(creds)) if creds.active => {
                let now = self.now();
                match (live.method, live.credential.as_deref()) {
                    (CredentialMethod::Certificate, Some(serial)) => {
                        creds.certificates(Some(serial), now).next().is_some()
                    }
                    (CredentialMethod::DeviceToken, Some(key_id)) => {
                        // A token signed with a deleted key, or with a certificate now revoked,
                        // no longer admits the device.
                        creds.symmetric_key(key_id, now).is_some()
                            || creds.certificates(Some(key_id), now).next().is_some()
                    }
                    _ => true,
                }
            }
            Ok(_) => false,
            // The store is unreachable: keep the session; the next change or the cache's
            // time-to-live brings the check back.
            Err(_) => true,
        };
        if !verdict {
            self.sessions.close(id, CloseReason::DeviceInactive);
        }
    }

    /// Ends every session (shutdown).
    pub fn close_all(&self) {
        self.sessions.close_all(CloseReason::Shutdown);
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
    portcullis_keys::random_array::<16>()
        .map(|b| hex::encode(&b))
        .map_err(|e| GatewayError::Internal(e.to_string()))
}

/// This node's clock in Unix milliseconds (when a message was received).
fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
