//! Builds a node's device gateway from `[gateway]`: the verification core over the device
//! registry (the PKI), the certificate check, the token validator, the store (replay
//! counters) and the sink; the HTTP routes both listeners mount (with the RabbitMQ broker
//! hook when it is enabled); the MQTT listeners.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::detection::GATEWAY_CERTIFICATE_REVOKED;
use portcullis_core::UnixTime;
use portcullis_gateway::broker_auth::{BrokerHook, BrokerHookConfig};
use portcullis_gateway::sink::embedded::{EmbeddedLog, EmbeddedOptions, SyncPolicy};
use portcullis_gateway::sink::Sink;
use portcullis_gateway::{
    CertificateCheck, CertificateRefusal, CloseReason, Gateway, GatewayConfig, GatewayError,
    GatewayLimits, GatewayParts, MessageAuth, MessagePolicy, ValidCertificate,
};
use portcullis_pki::chain::IssuedCertificateValidator;

use crate::bootstrap::unix_now;
use crate::config::Config;
use crate::node_services::NodeServices;
use crate::serve_error::ServeError;

/// Device certificates checked by the PKI's chain validation (our issuing CA, `clientAuth`,
/// the store's revocation state now).
struct PkiDeviceCertificates(IssuedCertificateValidator);

#[async_trait]
impl CertificateCheck for PkiDeviceCertificates {
    async fn validate(
        &self,
        chain: &[Vec<u8>],
        now: UnixTime,
    ) -> Result<ValidCertificate, CertificateRefusal> {
        let leaf = match self.0.validate(chain, now).await {
            Ok(leaf) => leaf,
            Err(e) => {
                tracing::debug!(error = %e, "gateway refused a client certificate");
                // Read again only on this path: whether it is ours and revoked, to name the
                // device still presenting it.
                let revoked_device = self
                    .0
                    .revoked_leaf(chain, now)
                    .await
                    .and_then(|leaf| leaf.device_id());
                let reason = match revoked_device {
                    Some(_) => GATEWAY_CERTIFICATE_REVOKED,
                    None => "certificate_refused",
                };
                return Err(CertificateRefusal {
                    error: GatewayError::Unauthenticated(reason),
                    revoked_device,
                });
            }
        };
        let device_id = leaf.device_id().ok_or(CertificateRefusal {
            error: GatewayError::Unauthenticated("certificate_names_no_device"),
            revoked_device: None,
        })?;
        Ok(ValidCertificate {
            device_id,
            serial: leaf.serial,
            not_after: leaf.not_after,
        })
    }
}

/// A node's gateway and what its listeners need.
pub struct NodeGateway {
    pub gateway: Arc<Gateway>,
    /// The embedded sink, when it is the sink (its stream endpoint reads it).
    pub log: Option<EmbeddedLog>,
    pub limits: Arc<portcullis_http::AbuseLimits>,
    /// The admin API's `/trust` routes over the gateway's operator keys.
    pub trust: portcullis_admin::SharedTrustAdmin,
    /// The admin API's `/commands/rules` routes over the gateway's command policy.
    pub command_rules: portcullis_admin::SharedCommandRulesAdmin,
    /// The RabbitMQ auth back-end, when `[gateway.broker_hook]` is enabled.
    pub broker_hook: Option<BrokerHook>,
}

impl NodeGateway {
    /// The gateway's HTTP routes for one listener.
    pub fn router(&self, tls: bool) -> axum::Router {
        portcullis_gateway::http::router(
            self.gateway.clone(),
            self.log.clone(),
            self.limits.clone(),
            tls,
            self.broker_hook.as_ref(),
        )
    }
}

/// Builds the gateway and starts following device changes.
pub async fn start(
    config: &Config,
    services: &NodeServices,
    issuer: &str,
) -> Result<NodeGateway, ServeError> {
    let g = &config.gateway;
    let (sink, log): (Arc<dyn Sink>, Option<EmbeddedLog>) = if g.sink == "embedded" {
        let dir = config.server.data_dir.join("telemetry");
        // Deciding counters in memory, the log keeps what the store's counters do not cover.
        let covered = if services.store.is_shared() {
            u64::MAX
        } else {
            portcullis_gateway::counters_behind::covered(&*services.store)
                .await
                .map_err(|e| ServeError::Gateway(format!("message counters: {e}")))?
                .unwrap_or(u64::MAX)
        };
        let log = EmbeddedLog::open_holding(
            &dir,
            EmbeddedOptions {
                max_bytes: g.embedded_max_bytes,
                segment_bytes: g.embedded_segment_bytes,
                max_age: Duration::from_secs(g.embedded_max_age_secs),
                sync: match g.embedded_sync_interval_ms {
                    0 => SyncPolicy::EveryBatch,
                    ms => SyncPolicy::Interval(Duration::from_millis(ms)),
                },
            },
            covered,
        )
        .map_err(|e| ServeError::Gateway(format!("telemetry log {}: {e}", dir.display())))?;
        if !services.store.is_shared() {
            // Counters are decided in memory on this node (the store is its alone): the
            // log's records beyond what the store covers go back in before any message.
            portcullis_gateway::counters_behind::recover(&*services.store, &log)
                .await
                .map_err(|e| ServeError::Gateway(format!("message counters: {e}")))?;
        }
        (Arc::new(log.clone()), Some(log))
    } else {
        let sink = portcullis_gateway::sink::nats::NatsSink::connect(
            &g.sink,
            &g.nats_stream,
            &g.nats_subject_prefix,
        )
        .await
        .map_err(|e| ServeError::Gateway(e.to_string()))?;
        (Arc::new(sink), None)
    };
    let policy = MessagePolicy {
        models: g
            .models
            .iter()
            .filter_map(|(m, p)| {
                let auth = MessageAuth::parse(p.message_auth.as_deref()?)?;
                Some((m.clone(), auth))
            })
            .collect(),
    };
    let gateway_config = GatewayConfig {
        audience: g.audience.clone().unwrap_or_else(|| issuer.to_owned()),
        issuer: issuer.to_owned(),
        max_device_token_secs: g.max_device_token_secs,
        skew_secs: g.skew_secs,
        message_window_secs: g.message_window_secs,
        limits: GatewayLimits {
            max_message_bytes: g.max_message_bytes,
            connect_timeout: Duration::from_secs(g.connect_timeout_secs),
            max_inflight: g.max_inflight,
            max_keep_alive_secs: g.max_keep_alive_secs,
            sink_write_interval: Duration::from_millis(g.sink_write_interval_ms),
        },
        policy,
        command_rules: g.commands.rules.clone(),
    };
    let certificates = PkiDeviceCertificates(IssuedCertificateValidator {
        anchor: services.pki.pki.issuing_anchor().clone(),
        store: services.store.clone(),
    });
    let gateway = Gateway::new(GatewayParts {
        config: gateway_config,
        registry: services.pki.pki.clone(),
        certificates: Arc::new(certificates),
        tokens: services.server.clone(),
        store: services.store.clone(),
        sink,
        audit: services.audit.clone(),
        custody: services.keys.custody().clone(),
        images_dir: config.server.data_dir.join("updates"),
        address_gate: Some(services.blocklist.clone()),
        clock: unix_now,
    });
    // A newly blocked address loses its open MQTT connections too, on every node (the list
    // changes here when another node's block arrives through the change feed).
    let mut blocked = services.blocklist.changes();
    let (list, sessions) = (services.blocklist.clone(), gateway.sessions().clone());
    tokio::spawn(async move {
        while blocked.changed().await.is_ok() {
            let ended = sessions.close_from(|a| list.is_blocked(a), CloseReason::Blocked);
            if ended > 0 {
                tracing::warn!(
                    connections = ended,
                    "ended gateway connections from a blocked address"
                );
            }
        }
    });
    if let Err(e) = gateway.commands().reload_rules().await {
        tracing::warn!(error = %e, "the command rules set through the admin API are not in force");
    }
    tokio::spawn(
        gateway
            .clone()
            .follow_devices(services.pki.pki.watch_devices()),
    );
    let limits = Arc::new(portcullis_http::AbuseLimits::new(
        0,
        0,
        config.rate_limit.auth_failures_per_minute,
    ));
    let hook = &g.broker_hook;
    let broker_hook = if hook.enabled {
        let secret = hook
            .secret()
            .map_err(|e| ServeError::Gateway(e.to_string()))?;
        if secret.is_none() {
            tracing::info!(
                "the RabbitMQ broker hook answers loopback callers only (no secret_file)"
            );
        }
        Some(BrokerHook::new(
            gateway.clone(),
            BrokerHookConfig {
                vhost: hook.vhost.clone(),
                trust_broker_certificates: hook.trust_broker_certificates,
                secret,
            },
        ))
    } else {
        None
    };
    let trust = Arc::new(crate::trust_admin::GatewayTrustAdmin {
        keys: gateway.operator_keys().clone(),
        audit: services.audit.clone(),
    });
    let command_rules = Arc::new(crate::command_rules_admin::GatewayCommandRulesAdmin {
        gateway: gateway.clone(),
    });
    Ok(NodeGateway {
        trust,
        command_rules,
        gateway,
        log,
        limits,
        broker_hook,
    })
}
