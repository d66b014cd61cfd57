//! Real-time detection over the audit event stream (issue #14, item 5): the pure engine.
//!
//! # Design
//!
//! 1. **Signals, in process, before summarising.** Every audit event a node produces is
//!    passed to [`signals`] as it is recorded — before `audit/src/refusals.rs` folds refusals
//!    into per-source summaries — so each refused token request, enrollment or device message
//!    counts. [`signals`] is a pure mapping from the event shapes the producing crates write
//!    (the table in `signals.rs`) to [`Signal`]s: a rule, the key it counts per (a client, an
//!    address, a device, or a device seen from a source) and a weight. Summary records count
//!    for nothing, so nothing is counted twice.
//! 2. **Local tallies, flushed to shared counters.** Each node sums its signals in a
//!    [`LocalTally`] per (rule, key, bucket) — buckets are fixed, `window_secs / 6` long
//!    ([`bucket_start`]) — and at least once a second [`LocalTally::drain`]s it into the
//!    shared store, adding each [`Increment`] to the counter of its (rule, key, bucket). A
//!    node's thousand refusals in a second are one write per key.
//! 3. **Pure decisions over shared totals.** After a flush, the wiring reads the total of
//!    each touched key over [`window_buckets`] (a sum, or for `cloned_device` the number of
//!    distinct sources of the device, see [`Counting`]) and asks [`decide`]; for the token
//!    rate, [`decide_rate`] against the client's shared [`Baseline`]. The decision is a
//!    function of the shared total alone, so whichever node asks, the answer is the same, and
//!    it comes within a flush of the event.
//! 4. **One alert per incident.** Several nodes (and one node, on every further event) will
//!    decide the same firing. [`Firing::incident_id_with`] names it deterministically by
//!    (rule, key, cooldown period of the decision); the store inserts the incident if absent,
//!    and only the insert that created it alerts (audit record, `portcullis_alerts_total{rule}`,
//!    webhook, [`Firing::action_target`]). An attack that goes on raises one incident per
//!    cooldown, not one per event or per node.
//! 5. **Keys are hashed.** Counters and incidents in the shared store are named by
//!    HMAC-SHA256 under a secret every node has ([`SignalKey::hashed`], [`counter_key`],
//!    [`Increment::group_key`], [`Firing::incident_id_with`]) over a length-prefixed
//!    encoding: client ids and addresses are not stored in the clear there, and a stored name
//!    cannot be tested against a guessed address without the secret.
//!
//! Configuration (`[detection]`, every rule on by default, no automatic action by default):
//! see [`DetectionConfig`], [`RuleConfig`] and [`Action`]; admin hours and networks:
//! [`AdminPolicy`].

mod admin;
mod baseline;
mod config;
mod decide;
mod key;
mod rule;
mod signals;
mod window;

pub use admin::{
    admin_client, admin_violations, AdminPolicy, AdminViolation, Weekday, ADMIN_ACTOR_PREFIX,
};
pub use baseline::{decide_rate, Baseline};
pub use config::{default_rule, DetectionConfig, DetectionConfigError, TokenRateConfig};
pub use decide::{decide, ActionTarget, Firing};
pub use key::{counter_key, Signal, SignalKey};
pub use rule::{Action, Counting, KeyKind, RuleConfig, RuleKind, MAX_BLOCK_SECS, MAX_WINDOW_SECS};
pub use signals::{
    signals, source_address, CLAIMED_DEVICE_ID, GATEWAY_CERTIFICATE_REVOKED,
    GATEWAY_DEVICE_INACTIVE, REASON_DISABLED, REASON_REPLAY, UNKNOWN_DEVICE,
};
pub use window::{
    bucket_secs, bucket_start, window_buckets, Increment, LocalTally, BUCKETS_PER_WINDOW,
};

#[cfg(test)]
mod tests;
