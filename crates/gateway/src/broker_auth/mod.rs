//! An HTTP authentication and authorization back-end in the dialect of RabbitMQ's
//! `rabbitmq_auth_backend_http` (issue #13 item 5), for operators who keep their own broker:
//! a RabbitMQ with its MQTT plugin admits devices by device token (or, when configured, by the
//! name on the client certificate the broker checked) and lets each publish only to its own
//! topics, with the same verification core, refusal accounting and audit as the gateway's own
//! MQTT.
//!
//! The broker asks four questions, form-encoded (`auth_http.http_method = post`) or in the
//! query (`get`, RabbitMQ's default), and takes `allow` or `deny` as the answer:
//! `user` (username, password, vhost, client_id), `vhost` (username, vhost, ip), `resource`
//! (username, vhost, resource, name, permission) and `topic` (the same plus routing_key and
//! `variable_map.*`). Bodies are parsed by axum's `Form` extractor (no parser of our own).
//!
//! RabbitMQ's back-end cannot add headers, so the hook is guarded by a secret in the URL path
//! (compared in constant time), or — with no secret configured — by accepting loopback
//! sources only. Nothing new is cached here: `/topic` runs once per publish and reads the
//! device through the gateway's credential cache, which device changes and revocations
//! invalidate on every node (put `rabbitmq_auth_backend_cache` in front to spare RabbitMQ the
//! HTTP round trips).

use std::sync::Arc;

use aws_lc_rs::digest;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use portcullis_core::device::DeviceId;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::service::{ConnectCredential, Gateway};
use crate::session::Transport;
use crate::GatewayError;

mod guard;
pub mod rules;

use guard::Caller;

use rules::{Permission, ResourceKind};

/// Where the hook's four endpoints live (followed by `/<secret>` when one is configured).
pub const PATH_PREFIX: &str = "/gateway/v1/broker/rabbitmq";

/// `[gateway.broker_hook]` as the hook needs it.
#[derive(Clone)]
pub struct BrokerHookConfig {
    /// The one virtual host devices may use (RabbitMQ's default `/`).
    pub vhost: String,
    /// Admit a user name with no password at all as the device of that name, on the broker's
    /// word that it verified a client certificate naming it (`ssl_cert_login`).
    pub trust_broker_certificates: bool,
    /// The path segment RabbitMQ's URLs must carry; `None`: loopback callers only.
    pub secret: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for BrokerHookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerHookConfig")
            .field("vhost", &self.vhost)
            .field("trust_broker_certificates", &self.trust_broker_certificates)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The hook's routes and what they answer from.
#[derive(Clone)]
pub struct BrokerHook(Arc<Hook>);

struct Hook {
    gateway: Arc<Gateway>,
    vhost: String,
    trust_broker_certificates: bool,
    /// SHA-256 of the secret: compared digest to digest, so neither the content nor the
    /// length of the secret shows in the comparison's timing.
    secret_digest: Option<digest::Digest>,
}

impl std::fmt::Debug for BrokerHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerHook")
            .field("vhost", &self.0.vhost)
            .field("secret", &self.0.secret_digest.is_some())
            .finish_non_exhaustive()
    }
}

impl BrokerHook {
    /// The hook over the gateway's verification core.
    pub fn new(gateway: Arc<Gateway>, config: BrokerHookConfig) -> Self {
        let secret_digest = config
            .secret
            .as_ref()
            .map(|s| digest::digest(&digest::SHA256, s.as_bytes()));
        Self(Arc::new(Hook {
            gateway,
            vhost: config.vhost,
            trust_broker_certificates: config.trust_broker_certificates,
            secret_digest,
        }))
    }

    /// `GET` and `POST` `/gateway/v1/broker/rabbitmq[/<secret>]/{user,vhost,resource,topic}`.
    pub fn router(&self) -> Router {
        let base = if self.0.secret_digest.is_some() {
            format!("{PATH_PREFIX}/{{secret}}")
        } else {
            PATH_PREFIX.to_owned()
        };
        Router::new()
            .route(&format!("{base}/user"), get(user).post(user))
            .route(&format!("{base}/vhost"), get(vhost).post(vhost))
            .route(&format!("{base}/resource"), get(resource).post(resource))
            .route(&format!("{base}/topic"), get(topic).post(topic))
            .with_state(self.clone())
    }
}

/// `/user`. Every field is optional to the parser so that a missing one is a counted `deny`,
/// not a bare 422; fields RabbitMQ may add are ignored.
#[derive(Deserialize)]
struct UserQuestion {
    username: Option<String>,
    password: Option<String>,
    vhost: Option<String>,
}

/// `/vhost`.
#[derive(Deserialize)]
struct VhostQuestion {
    username: Option<String>,
    vhost: Option<String>,
}

/// `/resource` and `/topic` (`routing_key` only on the latter).
#[derive(Deserialize)]
struct ResourceQuestion {
    username: Option<String>,
    vhost: Option<String>,
    resource: Option<String>,
    name: Option<String>,
    permission: Option<String>,
    routing_key: Option<String>,
}

/// The answer RabbitMQ reads: `allow` or `deny`, `text/plain`, 200 (any other status is an
/// error to it, and an error is a refusal).
fn answer(allowed: bool) -> Response {
    let body = if allowed { "allow" } else { "deny" };
    (StatusCode::OK, [(CONTENT_TYPE, "text/plain")], body).into_response()
}

impl Hook {
    /// Counts and audits a refusal, then answers `deny`.
    fn deny(&self, caller: &Caller, device: Option<&str>, error: &GatewayError) -> Response {
        tracing::debug!(device, reason = error.reason(), "broker hook denied");
        self.gateway
            .refused(Transport::BrokerHook, caller.source, device, error);
        answer(false)
    }

    /// The asked virtual host, which must be ours (absent: not part of the question).
    fn our_vhost(&self, vhost: Option<&str>) -> Result<(), GatewayError> {
        match vhost {
            Some(v) if v != self.vhost => Err(GatewayError::Forbidden("broker_vhost")),
            _ => Ok(()),
        }
    }

    /// The device RabbitMQ names by its user name: a well-formed id whose routing keys are
    /// unambiguous.
    fn device(username: Option<&str>) -> Result<DeviceId, GatewayError> {
        let id = username
            .and_then(|u| DeviceId::parse(u).ok())
            .ok_or(GatewayError::Malformed("broker_bad_username"))?;
        rules::routable(&id).map_err(GatewayError::Forbidden)?;
        Ok(id)
    }

    /// The device is registered and active, read through the gateway's credential cache (a
    /// suspension refuses the device's next publish through the broker).
    async fn active(&self, id: &DeviceId) -> Result<(), GatewayError> {
        self.gateway.active_credentials(id).await.map(|_| ())
    }

    /// Whether the active device holds a certificate that is unrevoked and valid now.
    async fn has_current_certificate(&self, id: &DeviceId) -> Result<bool, GatewayError> {
        let creds = self.gateway.active_credentials(id).await?;
        let now = self.gateway.now();
        let current = creds.certificates(None, now).next().is_some();
        Ok(current)
    }
}

async fn user(
    State(hook): State<BrokerHook>,
    caller: Caller,
    Form(q): Form<UserQuestion>,
) -> Response {
    let hook = &hook.0;
    let claimed = q.username.as_deref();
    let id = match Hook::device(claimed).and_then(|id| {
        hook.our_vhost(q.vhost.as_deref())?;
        Ok(id)
    }) {
        Ok(id) => id,
        Err(e) => return hook.deny(&caller, claimed, &e),
    };
    match q.password {
        // A device token or an access token issued to the device, verified by the core
        // (which counts and audits its own refusals). There is no TLS certificate here, so
        // a certificate-bound access token is refused (RFC 8705 §3).
        Some(password) if !password.is_empty() => {
            let credential = ConnectCredential::Token {
                token: password,
                claimed_device: Some(id.as_str().to_owned()),
                leaf: None,
                dpop: None,
            };
            let admitted = hook
                .gateway
                .authenticate(Transport::BrokerHook, credential, caller.source)
                .await;
            answer(admitted.is_ok())
        }
        // PLAIN with an empty password: never a certificate login.
        Some(_) => hook.deny(
            &caller,
            claimed,
            &GatewayError::Unauthenticated("broker_empty_password"),
        ),
        // No password field at all: RabbitMQ's `ssl_cert_login` (or EXTERNAL), the user name
        // being the certificate's name. Believed only when the operator said so.
        None if !hook.trust_broker_certificates => hook.deny(
            &caller,
            claimed,
            &GatewayError::Unauthenticated("broker_certificates_not_trusted"),
        ),
        None => {
            let checked = hook.has_current_certificate(&id).await;
            match checked {
                Ok(true) => answer(true),
                Ok(false) => hook.deny(
                    &caller,
                    claimed,
                    &GatewayError::Unauthenticated("broker_no_current_certificate"),
                ),
                Err(e) => hook.deny(&caller, claimed, &e),
            }
        }
    }
}

async fn vhost(
    State(hook): State<BrokerHook>,
    caller: Caller,
    Form(q): Form<VhostQuestion>,
) -> Response {
    let hook = &hook.0;
    let claimed = q.username.as_deref();
    let checked = async {
        let id = Hook::device(claimed)?;
        if q.vhost.is_none() {
            return Err(GatewayError::Malformed("broker_missing_vhost"));
        }
        hook.our_vhost(q.vhost.as_deref())?;
        hook.active(&id).await
    };
    match checked.await {
        Ok(()) => answer(true),
        Err(e) => hook.deny(&caller, claimed, &e),
    }
}

/// The parts of a `/resource` or `/topic` question every rule needs.
struct Asked {
    device: DeviceId,
    kind: ResourceKind,
    name: String,
    permission: Permission,
}

impl Hook {
    fn asked(&self, q: &ResourceQuestion) -> Result<Asked, GatewayError> {
        let device = Hook::device(q.username.as_deref())?;
        if q.vhost.is_none() {
            return Err(GatewayError::Malformed("broker_missing_vhost"));
        }
        self.our_vhost(q.vhost.as_deref())?;
        let kind = q
            .resource
            .as_deref()
            .and_then(ResourceKind::parse)
            .ok_or(GatewayError::Malformed("broker_resource_kind"))?;
        let permission = q
            .permission
            .as_deref()
            .and_then(Permission::parse)
            .ok_or(GatewayError::Malformed("broker_permission"))?;
        let name = q
            .name
            .clone()
            .ok_or(GatewayError::Malformed("broker_missing_name"))?;
        Ok(Asked {
            device,
            kind,
            name,
            permission,
        })
    }
}

async fn resource(
    State(hook): State<BrokerHook>,
    caller: Caller,
    Form(q): Form<ResourceQuestion>,
) -> Response {
    let hook = &hook.0;
    let checked = hook.asked(&q).and_then(|a| {
        rules::resource_allowed(&a.device, a.kind, &a.name, a.permission)
            .map_err(GatewayError::Forbidden)
    });
    match checked {
        Ok(()) => answer(true),
        Err(e) => hook.deny(&caller, q.username.as_deref(), &e),
    }
}

async fn topic(
    State(hook): State<BrokerHook>,
    caller: Caller,
    Form(q): Form<ResourceQuestion>,
) -> Response {
    let hook = &hook.0;
    let checked = async {
        let a = hook.asked(&q)?;
        if a.kind != ResourceKind::Topic {
            return Err(GatewayError::Malformed("broker_resource_kind"));
        }
        let key = q
            .routing_key
            .as_deref()
            .ok_or(GatewayError::Malformed("broker_missing_routing_key"))?;
        rules::topic_allowed(&a.device, &a.name, a.permission, key)
            .map_err(GatewayError::Forbidden)?;
        hook.active(&a.device).await
    };
    match checked.await {
        Ok(()) => answer(true),
        Err(e) => hook.deny(&caller, q.username.as_deref(), &e),
    }
}
