//! Refused uses of bound access tokens (RFC 8705 §3, RFC 9449 §7.1): a genuine, active token
//! presented to one of our endpoints without proof of the certificate or DPoP key it is bound
//! to, or with a DPoP proof already spent. That is what a stolen bound token looks like, so
//! each one is audited with the token's client and the presenter's address, and a replayed
//! proof feeds the replay rule of attack detection as a replayed assertion does at the token
//! endpoint. Tokens that are simply invalid or expired are not recorded here: anyone can send
//! those, and the endpoint answers them alike.
//!
//! The records go through the refusal summariser (per source and window), so a loop replaying
//! one proof cannot grow the chain without bound; detection still sees every one.

use std::net::{IpAddr, Ipv4Addr};

use portcullis_core::audit::{AuditAction, AuditEvent, Outcome};
use portcullis_core::detection::REASON_REPLAY;
use portcullis_core::token::AccessTokenClaims;
use portcullis_ports::{Presentation, TokenRejection};

use crate::AuthServer;

impl AuthServer {
    /// Audits `rejection` of `claims`' token presented as `presented`, when it is a failure
    /// to prove possession (see the module).
    pub(crate) fn audit_bound_use_refused(
        &self,
        claims: &AccessTokenClaims,
        presented: &Presentation<'_>,
        rejection: TokenRejection,
    ) {
        if !rejection.is_possession_failure() {
            return;
        }
        let reason = if rejection == TokenRejection::DpopProofReplayed {
            REASON_REPLAY
        } else {
            rejection.as_str()
        };
        let mut detail = serde_json::json!({
            "client_id": claims.client_id,
            "reason": reason,
        });
        if let Some(map) = detail.as_object_mut() {
            if let Some(dpop) = &presented.dpop {
                map.insert("method".into(), dpop.method.into());
                map.insert("path".into(), dpop.path.into());
            }
            if let Some(source) = presented.source {
                map.insert("source".into(), source.to_string().into());
            }
        }
        self.audit.record_refusal(
            presented
                .source
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            AuditEvent {
                at: self.now(),
                // Whoever presented it proved nothing: the token's client is a claim.
                actor: "anonymous".to_owned(),
                action: AuditAction::TokenUseRefused.into(),
                subject: claims.jti.clone(),
                outcome: Outcome::Failure.into(),
                detail,
            },
        );
    }
}
