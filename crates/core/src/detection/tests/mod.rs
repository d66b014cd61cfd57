//! Events built exactly as the producing crates build them, and a toy shared store, so the
//! tests run the whole flow: signals → local tallies on two nodes → shared counters →
//! decisions → incidents.

mod admin;
mod baseline;
mod config;
mod decide;
mod signals;
mod window;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::json;

use super::*;
use crate::audit::{AuditAction, AuditEvent, Outcome};
use crate::UnixTime;

pub(super) const T0: UnixTime = 1_700_000_040; // a Tuesday, 22:14:00 UTC
pub(super) const SECRET: &[u8] = b"cluster detection secret";

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn event(
    action: AuditAction,
    actor: &str,
    subject: &str,
    ok: bool,
    detail: serde_json::Value,
) -> AuditEvent {
    AuditEvent {
        at: T0,
        actor: actor.into(),
        action: action.into(),
        subject: subject.into(),
        outcome: Outcome::of(ok).into(),
        detail,
    }
}

/// `oauth/src/token.rs` `audit_refusal`.
pub(super) fn token_refused(claimed: Option<&str>, error: &str, addr: &str) -> AuditEvent {
    let detail = match claimed {
        Some(id) => json!({ "error": error, "source": addr, "claimed_client_id": id }),
        None => json!({ "error": error, "source": addr }),
    };
    event(AuditAction::TokenRefused, "anonymous", "-", false, detail)
}

/// `oauth/src/token.rs`, an issued token.
pub(super) fn token_issued(client: &str) -> AuditEvent {
    let detail =
        json!({ "scope": "read", "aud": "https://api", "auth_method": "client_secret_basic" });
    event(AuditAction::TokenIssued, client, "jti-1", true, detail)
}

/// `pki/src/est.rs` `refused` through `Pki::audit_refusal`.
pub(super) fn est_refused(action: AuditAction, error: &str, addr: &str) -> AuditEvent {
    let detail = json!({ "error": error, "source": addr });
    event(action, "est", "-", false, detail)
}

/// `gateway/src/service/mod.rs` `audit_refusal` (`GatewayReplay` for `GatewayError::Replay`).
pub(super) fn gateway_refusal(
    action: AuditAction,
    device: Option<&str>,
    reason: &str,
    source: &str,
) -> AuditEvent {
    let device = device.unwrap_or("unknown");
    let detail = json!({ "transport": "mqtt", "reason": reason, "source": source });
    event(action, device, device, false, detail)
}

/// `gateway/src/service/mod.rs` `open_session`.
pub(super) fn session(took_over: bool, device: &str, source: &str) -> AuditEvent {
    let action = if took_over {
        AuditAction::GatewayTakeover
    } else {
        AuditAction::GatewayConnected
    };
    let detail = json!({ "transport": "mqtt", "method": "certificate", "source": source });
    event(action, device, device, !took_over, detail)
}

/// `gateway/src/commands/mod.rs` `record_result`.
pub(super) fn command_result(device: &str, recorded: bool) -> AuditEvent {
    let detail = json!({ "command_id": "c-1", "status": "succeeded" });
    event(AuditAction::CommandResult, device, device, recorded, detail)
}

/// `admin/src/clients.rs` `audit_change`.
pub(super) fn admin_change(client: &str, at: UnixTime) -> AuditEvent {
    let mut e = event(
        AuditAction::ClientUpdated,
        &format!("admin:{client}"),
        "svc",
        true,
        json!({ "changed": ["scopes"] }),
    );
    e.at = at;
    e
}

pub(super) fn rule(kind: RuleKind) -> RuleConfig {
    default_rule(kind)
}

/// The shared store as the wiring would keep it: counters per (rule, key, bucket) and
/// incidents inserted if absent.
#[derive(Default)]
pub(super) struct Shared {
    counters: BTreeMap<(RuleKind, SignalKey, UnixTime), u64>,
    incidents: BTreeSet<String>,
}

impl Shared {
    pub(super) fn flush(&mut self, tally: &mut LocalTally) -> Vec<Increment> {
        let drained = tally.drain();
        for inc in &drained {
            *self
                .counters
                .entry((inc.rule, inc.key.clone(), inc.bucket_start))
                .or_default() += inc.count;
        }
        drained
    }

    /// The sum over the window (or distinct keys of the group, for `Counting::Distinct`).
    pub(super) fn total(&self, rule: &RuleConfig, key: &SignalKey, now: UnixTime) -> u64 {
        let window = window_buckets(now, rule);
        let in_window = self.counters.iter().filter(|((r, k, b), n)| {
            *r == rule.kind && window.contains(b) && **n > 0 && k.group() == key.group()
        });
        match rule.kind.counting() {
            Counting::Distinct => in_window
                .map(|((_, k, _), _)| k)
                .collect::<BTreeSet<_>>()
                .len() as u64,
            _ => in_window
                .filter(|((_, k, _), _)| k == key)
                .map(|(_, n)| n)
                .sum(),
        }
    }

    /// Inserts the incident; `true` when it is new (this node alerts).
    pub(super) fn raise(&mut self, firing: &Firing) -> bool {
        self.incidents.insert(firing.incident_id_with(SECRET))
    }

    /// One node's flush and decisions: the alerts it raises.
    pub(super) fn flush_and_decide(
        &mut self,
        tally: &mut LocalTally,
        config: &DetectionConfig,
        now: UnixTime,
    ) -> Vec<Firing> {
        let mut alerts = Vec::new();
        for inc in self.flush(tally) {
            let rule = config.rule(inc.rule).unwrap();
            let total = self.total(rule, &inc.key, now);
            if let Some(firing) = decide(rule, &inc.key, total, now) {
                if self.raise(&firing) {
                    alerts.push(firing);
                }
            }
        }
        alerts
    }
}
