//! The decision over the shared totals, and the identity of the incident it raises.

use std::net::IpAddr;

use serde::Serialize;

use super::key::{Encoder, SignalKey};
use super::rule::{Action, Counting, RuleConfig, RuleKind};
use crate::UnixTime;

/// A rule that fired for a key: one alert, unless the store already holds its incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Firing {
    pub rule: RuleKind,
    /// What it fired for (a device, never a device-and-source).
    pub key: SignalKey,
    /// The total that reached the threshold (distinct sources for `cloned_device`, the
    /// interval's tokens for `token_rate_anomaly`).
    pub total: u64,
    /// What the total was compared with (for `token_rate_anomaly`, the baseline's limit).
    pub threshold: u64,
    pub window_secs: u64,
    pub cooldown_secs: u64,
    /// When it was decided: the crossing, to within the flush interval.
    pub at: UnixTime,
    pub action: Action,
}

/// What an automatic action is to do, and to whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionTarget {
    SuspendDevice(String),
    DisableClient(String),
    BlockAddress { address: IpAddr, secs: u64 },
}

/// Whether `rule` fires for `key` with `total` in its window at `now`: enabled and at or
/// over its threshold. A pure function of the shared total, so every node that asks decides
/// alike; [`Firing::incident_id_with`] makes their alerts one. Never for
/// `token_rate_anomaly`, whose count means nothing without its baseline ([`super::decide_rate`]).
pub fn decide(
    rule: &RuleConfig,
    key: &SignalKey,
    total_in_window: u64,
    now: UnixTime,
) -> Option<Firing> {
    let counted = rule.kind.counting() != Counting::Baseline;
    (counted && rule.enabled && total_in_window >= rule.threshold).then(|| Firing {
        rule: rule.kind,
        key: key.group(),
        total: total_in_window,
        threshold: rule.threshold,
        window_secs: rule.window_secs,
        cooldown_secs: rule.cooldown_secs,
        at: now,
        action: rule.action,
    })
}

impl Firing {
    /// The incident this firing belongs to: the cooldown period its decision falls in. Every
    /// node deciding the same crossing within the same period names the same incident; an
    /// attack that goes on is a new incident each period (a reminder, not a flood). Two nodes
    /// whose decisions fall either side of a period's end (they are at most a flush apart)
    /// name two incidents: at most two alerts, rarely (about flush / cooldown of the time).
    pub fn incident_bucket(&self) -> i64 {
        let cooldown = i64::try_from(self.cooldown_secs.max(1)).unwrap_or(i64::MAX);
        self.at.div_euclid(cooldown)
    }

    /// A readable incident id, `rule/key/bucket`, for logs and the alert's own audit record
    /// (which names the key anyway). The shared store keys on [`Firing::incident_id_with`].
    pub fn incident_id(&self) -> String {
        format!("{}/{}/{}", self.rule, self.key, self.incident_bucket())
    }

    /// The incident id the shared store inserts if absent: hex HMAC-SHA256 under `secret` of
    /// the rule, the key and the incident bucket, so two nodes raising the same incident
    /// insert the same row and only the first one alerts.
    pub fn incident_id_with(&self, secret: &[u8]) -> String {
        let mut enc = Encoder::new("incident");
        enc.put_str(self.rule.as_str());
        self.key.encode(&mut enc);
        enc.put_time(self.incident_bucket());
        enc.hmac_hex(secret)
    }

    /// What the rule's action does to the key; `None` for no action (or a hand-built rule
    /// whose action does not fit its key, which validation refuses).
    pub fn action_target(&self) -> Option<ActionTarget> {
        match (self.action, &self.key) {
            (Action::SuspendDevice, SignalKey::Device(id)) => {
                Some(ActionTarget::SuspendDevice(id.clone()))
            }
            (Action::DisableClient, SignalKey::Client(id)) => {
                Some(ActionTarget::DisableClient(id.clone()))
            }
            (Action::BlockAddress { secs }, SignalKey::Address(address)) => {
                Some(ActionTarget::BlockAddress {
                    address: *address,
                    secs,
                })
            }
            _ => None,
        }
    }
}
