//! The admin REST API: register and manage machine clients, read and verify the audit chain.
//!
//! It exists so that operators and the `portcullis` CLI change server state through one
//! authenticated, audited, documented door instead of touching the store. The server nests
//! [`router`] at `/admin/v1`. Every route but `GET /openapi.json` needs a bearer access token
//! of this server with the `portcullis:admin` scope (`auth.rs`); every failure is an RFC 9457
//! problem (`errors.rs`); every change is audited (`clients.rs`, `secrets.rs`).

pub mod alerts;
pub mod audit;
pub mod audit_archive;
pub mod audit_stream;
pub mod auth;
pub mod clients;
pub mod command_rules;
pub mod device_keys;
pub mod devices;
pub mod dto;
pub mod errors;
pub mod extract;
pub mod federation;
pub mod keys;
pub mod openapi;
pub mod secrets;
pub mod trust;

use std::sync::Arc;

use auth::ScopeGate;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::{middleware, Router};
use portcullis_audit::AuditTrail;
use portcullis_ports::{ClientRegistry, DeviceRegistry, TokenValidator};

pub use auth::{AdminCaller, ADMIN_SCOPE, AUDIT_READ_SCOPE};
pub use command_rules::{CommandRulesAdmin, SharedCommandRulesAdmin};
pub use errors::{AdminError, Problem, PROBLEM_JSON};
pub use federation::{FederationAdmin, SharedFederationAdmin};
pub use keys::{KeyAdmin, KeyView, SharedKeyAdmin};
pub use openapi::AdminApi;
pub use trust::{SharedTrustAdmin, TrustAdmin};

/// What the admin API works on, each through a port the server wires in: the admin crate
/// imports none of `oauth`, `pki` or `gateway`.
#[derive(Clone)]
pub struct AdminPorts {
    clients: Arc<dyn ClientRegistry>,
    tokens: Arc<dyn TokenValidator>,
    audit: AuditTrail,
    keys: Option<SharedKeyAdmin>,
    devices: Option<Arc<dyn DeviceRegistry>>,
    trust: Option<SharedTrustAdmin>,
    command_rules: Option<SharedCommandRulesAdmin>,
    federation: Option<SharedFederationAdmin>,
    archive: Option<audit_archive::ArchiveState>,
    alerts: Option<Arc<dyn portcullis_store::Store>>,
}

impl AdminPorts {
    /// The client registry, the validator of callers' bearer tokens and the audit trail:
    /// the routes every admin API has.
    pub fn new(
        clients: Arc<dyn ClientRegistry>,
        tokens: Arc<dyn TokenValidator>,
        audit: AuditTrail,
    ) -> Self {
        Self {
            clients,
            tokens,
            audit,
            keys: None,
            devices: None,
            trust: None,
            command_rules: None,
            federation: None,
            archive: None,
            alerts: None,
        }
    }

    /// Adds the alerts of attack detection (`/alerts`), kept in `store`.
    pub fn with_alerts(mut self, store: Arc<dyn portcullis_store::Store>) -> Self {
        self.alerts = Some(store);
        self
    }

    /// Adds archiving (`/audit/archive`): the store whose records move to segments, the
    /// keys that sign the segments' manifests, and the exports (name, start) whose
    /// undelivered records must stay live.
    pub fn with_archive(
        mut self,
        store: Arc<dyn portcullis_store::Store>,
        keys: Arc<portcullis_keys::KeyRing>,
        exports: Arc<[(String, portcullis_audit::export::StartAt)]>,
    ) -> Self {
        self.archive = Some(audit_archive::ArchiveState {
            trail: self.audit.clone(),
            store,
            keys,
            exports,
        });
        self
    }

    /// Adds the signing-key routes (`/keys`) and checkpoint verification in `/audit/verify`.
    pub fn with_keys(mut self, keys: SharedKeyAdmin) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Adds the gateway's operator-key routes (`/trust`).
    pub fn with_trust(mut self, trust: SharedTrustAdmin) -> Self {
        self.trust = Some(trust);
        self
    }

    /// Adds the command policy's routes (`/commands/rules`).
    pub fn with_command_rules(mut self, rules: SharedCommandRulesAdmin) -> Self {
        self.command_rules = Some(rules);
        self
    }

    /// Adds workload federation's trust (`/federation`).
    pub fn with_federation(mut self, federation: SharedFederationAdmin) -> Self {
        self.federation = Some(federation);
        self
    }

    /// Adds the device PKI's routes (`/devices` with their keys, `/certificates`, `/ca`).
    pub fn with_devices(mut self, devices: Arc<dyn DeviceRegistry>) -> Self {
        self.devices = Some(devices);
        self
    }
}

impl std::fmt::Debug for AdminPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminPorts")
            .field("keys", &self.keys.is_some())
            .field("devices", &self.devices.is_some())
            .field("trust", &self.trust.is_some())
            .field("command_rules", &self.command_rules.is_some())
            .field("federation", &self.federation.is_some())
            .field("archive", &self.archive.is_some())
            .field("alerts", &self.alerts.is_some())
            .finish_non_exhaustive()
    }
}

/// The state of the client and audit routes (opaque outside this crate).
#[derive(Clone)]
pub struct ClientsState {
    pub(crate) clients: Arc<dyn ClientRegistry>,
    pub(crate) audit: AuditTrail,
}

/// The admin API's routes, relative to where the server nests them (`/admin/v1`).
pub fn router(ports: AdminPorts) -> Router {
    let AdminPorts {
        clients,
        tokens,
        audit,
        keys,
        devices,
        trust,
        command_rules,
        federation,
        archive,
        alerts,
    } = ports;
    let device_routes: Router = match devices {
        Some(devices) => Router::new()
            .route(
                "/devices",
                post(devices::register_device).get(devices::list_devices),
            )
            .route(
                "/devices/import",
                post(devices::import_devices)
                    .layer(DefaultBodyLimit::max(devices::IMPORT_BODY_LIMIT)),
            )
            .route(
                "/devices/{id}",
                get(devices::get_device).patch(devices::update_device),
            )
            .route("/devices/{id}/revoke", post(devices::revoke_device))
            .route(
                "/devices/{id}/keys",
                post(device_keys::create_device_key).get(device_keys::list_device_keys),
            )
            .route(
                "/devices/{id}/keys/rotate",
                post(device_keys::rotate_device_key),
            )
            .route(
                "/devices/{id}/keys/{key_id}",
                delete(device_keys::delete_device_key),
            )
            .route("/certificates", get(devices::list_certificates))
            .route("/certificates/{serial}", get(devices::get_certificate))
            .route(
                "/certificates/{serial}/revoke",
                post(devices::revoke_certificate),
            )
            .route("/ca", get(devices::get_ca))
            .with_state(devices),
        None => Router::new(),
    };
    // Verifying reads no contents: administrators and auditors both may.
    let audit_verify: Router = Router::new()
        .route("/audit/verify", post(audit::verify_audit))
        .with_state(audit::AuditVerification {
            trail: audit.clone(),
            keys: keys.clone(),
        })
        .route_layer(middleware::from_fn_with_state(
            ScopeGate::new(tokens.clone(), &[ADMIN_SCOPE, AUDIT_READ_SCOPE]),
            auth::require_scope,
        ));
    // Reading records needs `audit:read`, and every read is itself audited.
    let audit_read: Router = Router::new()
        .route("/audit", get(audit::list_audit))
        .route("/audit/stream", get(audit_stream::stream_audit))
        .with_state(audit.clone())
        .route_layer(middleware::from_fn_with_state(
            ScopeGate::new(tokens.clone(), &[AUDIT_READ_SCOPE]),
            auth::require_scope,
        ));
    let (archive_read, archive_purge): (Router, Router) = match archive {
        Some(state) => (
            Router::new()
                .route("/audit/archive", get(audit_archive::get_archive))
                .with_state(state.clone())
                .route_layer(middleware::from_fn_with_state(
                    ScopeGate::new(tokens.clone(), &[AUDIT_READ_SCOPE]),
                    auth::require_scope,
                )),
            Router::new()
                .route("/audit/archive/purge", post(audit_archive::purge_archived))
                .with_state(state),
        ),
        None => (Router::new(), Router::new()),
    };
    let (alert_read, alert_ack): (Router, Router) = match alerts {
        Some(store) => {
            let state = alerts::AlertsState {
                store,
                trail: audit.clone(),
            };
            (
                Router::new()
                    .route("/alerts", get(alerts::list_alerts))
                    .route("/alerts/{id}", get(alerts::get_alert))
                    .with_state(state.clone())
                    .route_layer(middleware::from_fn_with_state(
                        ScopeGate::new(tokens.clone(), &[ADMIN_SCOPE, AUDIT_READ_SCOPE]),
                        auth::require_scope,
                    )),
                Router::new()
                    .route("/alerts/{id}/ack", post(alerts::ack_alert))
                    .with_state(state),
            )
        }
        None => (Router::new(), Router::new()),
    };
    let audit_keys: Router = Router::new()
        .route("/audit/keys", get(audit::list_audit_keys))
        .route("/audit/keys/rotate", post(audit::rotate_audit_key))
        .with_state(audit.clone());
    let key_routes: Router = match keys {
        Some(keys) => Router::new()
            .route("/keys", get(keys::list_keys))
            .route("/keys/rotate", post(keys::rotate_keys))
            .route("/keys/{kid}/retire", post(keys::retire_key))
            .with_state(keys),
        None => Router::new(),
    };
    let trust_routes: Router = match trust {
        Some(trust) => Router::new()
            .route(
                "/trust/keys",
                get(trust::list_operator_keys).post(trust::create_operator_key),
            )
            .route("/trust/keys/{kid}/retire", post(trust::retire_operator_key))
            .route("/trust/publish", post(trust::publish_trust_list))
            .route("/trust/keys/import", post(trust::import_root_key))
            .route("/trust/draft", post(trust::draft_trust_list))
            .route("/trust/upload", post(trust::upload_trust_list))
            .with_state(trust),
        None => Router::new(),
    };
    let command_rule_routes: Router = match command_rules {
        Some(rules) => Router::new()
            .route(
                "/commands/rules",
                get(command_rules::get_command_rules).put(command_rules::put_command_rules),
            )
            .with_state(rules),
        None => Router::new(),
    };
    let federation_routes: Router = match federation {
        Some(federation) => Router::new()
            .route(
                "/federation",
                get(federation::get_federation).put(federation::put_federation),
            )
            .with_state(federation),
        None => Router::new(),
    };
    let client_routes: Router = Router::new()
        .route(
            "/clients",
            post(clients::create_client).get(clients::list_clients),
        )
        .route(
            "/clients/{id}",
            get(clients::get_client)
                .patch(clients::update_client)
                .delete(clients::delete_client),
        )
        .route("/clients/{id}/rotate-secret", post(secrets::rotate_secret))
        .with_state(ClientsState { clients, audit });
    let protected = Router::new()
        .merge(client_routes)
        .merge(audit_keys)
        .merge(archive_purge)
        .merge(alert_ack)
        .merge(key_routes)
        .merge(device_routes)
        .merge(trust_routes)
        .merge(command_rule_routes)
        .merge(federation_routes)
        // route_layer: only matched routes authenticate, so an unknown path is a plain 404.
        .route_layer(middleware::from_fn_with_state(
            ScopeGate::new(tokens, &[ADMIN_SCOPE]),
            auth::require_scope,
        ));
    Router::new()
        .route("/openapi.json", get(openapi::openapi_document))
        .merge(protected)
        .merge(audit_verify)
        .merge(audit_read)
        .merge(archive_read)
        .merge(alert_read)
        .fallback(|| async { AdminError::NoRoute })
        .method_not_allowed_fallback(|| async { AdminError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
}
