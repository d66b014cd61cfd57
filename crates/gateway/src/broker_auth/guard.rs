//! Who may ask the broker hook: RabbitMQ's HTTP back-end cannot add a header, so the caller
//! proves itself by a secret path segment (compared digest to digest, in constant time) or,
//! with no secret configured, by calling from this host.

use std::net::IpAddr;

use aws_lc_rs::digest;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::StatusCode;
use subtle::ConstantTimeEq;

use super::BrokerHook;
use crate::session::Transport;
use crate::GatewayError;

/// A caller allowed to ask: it named the secret, or (no secret configured) it is on this
/// host. Anyone else gets 404, as if the hook were not there, and the attempt is counted and
/// audited like any refusal.
pub(super) struct Caller {
    pub(super) source: IpAddr,
}

impl FromRequestParts<BrokerHook> for Caller {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, hook: &BrokerHook) -> Result<Self, StatusCode> {
        let source = portcullis_http::client_address(parts);
        let refusal = match &hook.0.secret_digest {
            Some(expected) => {
                let presented = RawPathParams::from_request_parts(parts, hook)
                    .await
                    .ok()
                    .and_then(|params| {
                        params
                            .iter()
                            .find(|(name, _)| *name == "secret")
                            .map(|(_, value)| digest::digest(&digest::SHA256, value.as_bytes()))
                    });
                let matches =
                    presented.is_some_and(|p| bool::from(p.as_ref().ct_eq(expected.as_ref())));
                (!matches).then_some("broker_hook_secret")
            }
            None => (!source.is_loopback()).then_some("broker_hook_not_loopback"),
        };
        match refusal {
            None => Ok(Caller { source }),
            Some(reason) => {
                hook.0.gateway.refused(
                    Transport::BrokerHook,
                    source,
                    None,
                    &GatewayError::Unauthenticated(reason),
                );
                Err(StatusCode::NOT_FOUND)
            }
        }
    }
}
