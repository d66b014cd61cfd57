//! Real-time attack detection on a node: the pure engine (`portcullis_core::detection`) fed
//! from the audit log and wired to the shared store, the alert webhook and the automatic
//! actions.
//!
//! Every event the node records passes [`DetectionObserver`] first — before refusals are
//! summarised — which turns it into signals and adds them to the node's [`SharedTally`],
//! summed per (rule, key, bucket) (never waiting long: a lock held for one insertion; past
//! [`MAX_PENDING`] counters the signals are dropped, counted in
//! `portcullis_detection_signals_dropped_total`). Every [`FLUSH`] the [`Detector`] task takes
//! the tally and adds the sums to the shared counters in the store, whose totals over the
//! window — every node's events together — decide. A firing is an incident named by an HMAC of (rule, key, cooldown
//! period); only the node whose insert creates it alerts: an `alert.raised` audit record,
//! `portcullis_alerts_total{rule}`, the webhook, and the rule's action (suspend the device,
//! disable the client, block the address: `blocklist.rs`). Event to alert: one flush, ≤ 250 ms plus a store round trip.
//!
//! Counter and incident names are HMACs under a key derived from the deployment's pepper,
//! and an alert's detail (who, from where) is sealed with the audit data key: the store
//! holds no client id or address in the clear for detection either.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_audit::{AuditLog, AuditObserver};
use portcullis_core::audit::{AuditAction, AuditEvent, Outcome};
use std::collections::HashMap;

use portcullis_core::detection::{
    decide, decide_rate, signals, window_buckets, ActionTarget, Baseline, Counting,
    DetectionConfig, Firing, LocalTally, SignalKey,
};
use portcullis_core::device::{DeviceId, DeviceState};
use portcullis_core::ClientId;
use portcullis_ports::{ClientRegistry, DeviceRegistry};
use portcullis_store::{DetectionIncrement, Store, StoredAlert};
use zeroize::Zeroizing;

use crate::alert_webhook::AlertWebhook;
use crate::bootstrap::unix_now;

/// How often local tallies go to the shared counters (the bound on detection latency).
pub const FLUSH: Duration = Duration::from_millis(250);
/// Distinct counters a node holds between two flushes at most: beyond, signals are dropped
/// (and counted), so a flood of distinct keys cannot grow memory without bound.
pub const MAX_PENDING: usize = 65_536;
/// Counter: alerts raised, by rule.
pub const ALERTS_METRIC: &str = "portcullis_alerts_total";
/// Counter: signals dropped because [`MAX_PENDING`] counters were waiting.
pub const DROPPED_METRIC: &str = "portcullis_detection_signals_dropped_total";
/// The actor of alert records and automatic actions.
const ACTOR: &str = "system:detection";
/// How long counter buckets are kept: the longest window a rule may have (7 days).
const KEEP_SECS: i64 = 7 * 86_400;

/// A client's token rate as this node follows it: the moving average of the cluster's
/// tokens per interval, and the interval being counted.
///
/// Each node learns it from the shared counters' totals at its flushes, so nodes that see the
/// client agree to within a flush; a restarted node relearns it (the warm-up, `min_samples`
/// intervals) before it decides again. The decision's incident id is the same on every node.
struct RateState {
    baseline: Baseline,
    /// Start of the interval `total` counts.
    interval: i64,
    /// The cluster's tokens in that interval, as of the last flush.
    total: u64,
}

/// Rates not seen for this long are forgotten (bounded memory; a returning client relearns).
const RATE_FORGET_SECS: i64 = 86_400;

/// The signals this node observed since the detector's last flush: the recording tasks add,
/// the detector takes it all every [`FLUSH`]. Why a lock and not a queue: each queued event
/// woke the detector task, about once per token at tens of thousands a second, which cost
/// the node more than the counting; an insertion under an uncontended lock costs less than
/// the wake-up did, and the detector wakes four times a second.
pub type SharedTally = Arc<Mutex<LocalTally>>;

/// Turns recorded events into signals for the detector (installed on the audit log).
pub struct DetectionObserver {
    tally: SharedTally,
    config: Arc<DetectionConfig>,
}

impl DetectionObserver {
    /// The observer and the tally the [`Detector`] drains.
    pub fn new(config: Arc<DetectionConfig>) -> (Self, SharedTally) {
        let tally = SharedTally::default();
        (
            Self {
                tally: tally.clone(),
                config,
            },
            tally,
        )
    }
}

impl AuditObserver for DetectionObserver {
    fn observe(&self, event: &AuditEvent) {
        let signals = signals(event, &self.config);
        if signals.is_empty() {
            return;
        }
        // A panic elsewhere while holding the lock leaves counts, not a broken invariant.
        let mut tally = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
        if tally.len() >= MAX_PENDING {
            drop(tally);
            metrics::counter!(DROPPED_METRIC).increment(signals.len() as u64);
            return;
        }
        tally.add_all(&signals, event.at, &self.config);
    }
}

/// What the detector acts with.
pub struct Detector {
    pub config: Arc<DetectionConfig>,
    pub store: Arc<dyn Store>,
    /// Names counters and incidents (HMAC key).
    pub secret: Zeroizing<Vec<u8>>,
    pub audit: AuditLog,
    pub webhook: Option<AlertWebhook>,
    pub clients: Arc<dyn ClientRegistry>,
    pub devices: Arc<dyn DeviceRegistry>,
    pub blocklist: Arc<crate::blocklist::Blocklist>,
}

/// The key that names detection counters and incidents, derived from the deployment's pepper
/// (every node has it; the store alone does not).
pub fn naming_key(pepper: &[u8]) -> Zeroizing<Vec<u8>> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, pepper);
    let tag = aws_lc_rs::hmac::sign(&key, b"portcullis detection names v1");
    Zeroizing::new(tag.as_ref().to_vec())
}

impl Detector {
    /// Runs until the observer is gone (the node stops), flushing `tally` every [`FLUSH`].
    pub async fn run(self, tally: SharedTally) {
        let mut rates: HashMap<SignalKey, RateState> = HashMap::new();
        let mut tick = tokio::time::interval(FLUSH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut purged_at = 0;
        loop {
            tick.tick().await;
            let mut pending =
                std::mem::take(&mut *tally.lock().unwrap_or_else(PoisonError::into_inner));
            self.flush(&mut pending, &mut rates).await;
            let now = unix_now();
            if now - purged_at > 3600 {
                purged_at = now;
                rates.retain(|_, state| state.interval > now - RATE_FORGET_SECS);
                if let Err(e) = self.store.purge_detection_counts(now - KEEP_SECS).await {
                    tracing::warn!(error = %e, "purging old detection counters failed");
                }
            }
            // Only this task holds the tally now: the audit log and its observer are gone.
            if Arc::strong_count(&tally) == 1 {
                return;
            }
        }
    }

    /// Adds the tally to the shared counters and decides on each touched key.
    async fn flush(&self, tally: &mut LocalTally, rates: &mut HashMap<SignalKey, RateState>) {
        let increments = tally.drain();
        if increments.is_empty() {
            return;
        }
        let now = unix_now();
        let mut touched = Vec::with_capacity(increments.len());
        let mut shared = Vec::with_capacity(increments.len());
        for increment in increments {
            let Some(rule) = self.config.active_rule(increment.rule) else {
                continue;
            };
            // The token rate counts the increment's own interval (one bucket per interval).
            let window_from = match increment.rule.counting() {
                Counting::Baseline => increment.bucket_start,
                _ => window_buckets(now, rule).start,
            };
            shared.push(DetectionIncrement {
                key: increment.counter_key(&self.secret),
                group: increment.group_key(&self.secret),
                bucket: increment.bucket_start,
                count: increment.count,
                window_from,
            });
            touched.push((*rule, increment.key, increment.bucket_start));
        }
        if shared.is_empty() {
            return;
        }
        let totals = match self.store.add_detection_counts(&shared).await {
            Ok(totals) => totals,
            Err(e) => {
                tracing::warn!(error = %e, signals = shared.len(), "detection counters could not be stored; these signals are lost");
                return;
            }
        };
        for ((rule, key, bucket), totals) in touched.into_iter().zip(totals) {
            if rule.kind.counting() == Counting::Baseline {
                if let Some(firing) = self.rate(rates, &rule, key, bucket, totals.total, now) {
                    self.raise(firing).await;
                }
                continue;
            }
            let (key, total) = match rule.kind.counting() {
                Counting::Distinct => match key {
                    SignalKey::DeviceSource { device, .. } => {
                        (SignalKey::Device(device), totals.distinct_in_group)
                    }
                    other => (other, totals.distinct_in_group),
                },
                _ => (key, totals.total),
            };
            if let Some(firing) = decide(&rule, &key, total, now) {
                self.raise(firing).await;
            }
        }
    }

    /// Follows a client's tokens per interval: an interval that ended is folded into the
    /// baseline, and the current one is judged against it.
    fn rate(
        &self,
        rates: &mut HashMap<SignalKey, RateState>,
        rule: &portcullis_core::detection::RuleConfig,
        key: SignalKey,
        interval: i64,
        total: u64,
        now: i64,
    ) -> Option<Firing> {
        let alpha = self.config.token_rate.alpha;
        let state = rates.entry(key.clone()).or_insert(RateState {
            baseline: Baseline::default(),
            interval,
            total: 0,
        });
        if interval < state.interval {
            // A late increment of an interval already folded in: nothing to judge.
            return None;
        }
        if interval > state.interval {
            state
                .baseline
                .observe(state.interval, rule.window_secs, state.total, alpha);
            state.interval = interval;
        }
        state.total = total;
        decide_rate(
            rule,
            &self.config.token_rate,
            &key,
            &state.baseline,
            total,
            now,
        )
    }

    /// Records the incident once across the cluster; the node that created it alerts.
    async fn raise(&self, firing: Firing) {
        let id = firing.incident_id_with(&self.secret);
        let rule = firing.rule.as_str();
        let view = serde_json::json!({
            "id": id,
            "rule": rule,
            "raised_at": firing.at,
            "key": firing.key.to_string(),
            "total": firing.total,
            "threshold": firing.threshold,
            "window_secs": firing.window_secs,
            "action": firing.action.as_str(),
        });
        let detail = match self.stored_detail(&id, &view) {
            Ok(sealed) => sealed,
            Err(e) => {
                tracing::error!(error = %e, rule, "sealing an alert failed; not raised now");
                return;
            }
        };
        let alert = StoredAlert {
            id: id.clone(),
            rule: rule.to_owned(),
            raised_at: firing.at,
            state: "open".into(),
            detail,
            acked_by: None,
            acked_at: None,
        };
        match self.store.insert_alert(&alert).await {
            Ok(true) => {}
            // Raised already (by this node on an earlier event, or by another node).
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, rule, "storing an alert failed; it is retried on the next event");
                return;
            }
        }
        metrics::counter!(ALERTS_METRIC, "rule" => rule).increment(1);
        tracing::warn!(alert = %id, rule, "security alert raised");
        let action = self.act(&firing).await;
        // What was done goes with the alert everywhere: the stored alert (`alerts show`),
        // the audit record and the webhook.
        let mut detail = view;
        if let Some(map) = detail.as_object_mut() {
            map.insert("action_taken".into(), action.into());
        }
        if let Ok(stored) = self.stored_detail(&alert.id, &detail) {
            if let Err(e) = self.store.set_alert_detail(&alert.id, &stored).await {
                tracing::warn!(error = %e, rule, "the alert's action could not be stored with it");
            }
        }
        let body = self.webhook.as_ref().map(|_| detail.clone());
        if self
            .audit
            .commit(AuditEvent {
                at: firing.at,
                actor: ACTOR.into(),
                action: AuditAction::AlertRaised.into(),
                subject: id,
                outcome: Outcome::Success.into(),
                detail,
            })
            .await
            .is_err()
        {
            tracing::error!(rule, "the alert.raised audit record could not be stored");
        }
        if let (Some(webhook), Some(body)) = (&self.webhook, body) {
            webhook.send(body);
        }
    }

    /// An alert's detail as the store keeps it: sealed under the audit data key when the
    /// trail is encrypted, else the JSON text.
    fn stored_detail(
        &self,
        id: &str,
        detail: &serde_json::Value,
    ) -> Result<String, portcullis_audit::AuditError> {
        match self.audit.sealer() {
            Some(sealer) => sealer.seal_value(id, detail),
            None => Ok(detail.to_string()),
        }
    }

    /// Runs the rule's automatic action; says what happened.
    async fn act(&self, firing: &Firing) -> String {
        let Some(target) = firing.action_target() else {
            return "none".into();
        };
        let result = match &target {
            ActionTarget::SuspendDevice(id) => match DeviceId::parse(id.clone()) {
                Ok(id) => self
                    .devices
                    .set_state(ACTOR, &id, DeviceState::Suspended)
                    .await
                    .map(|_| format!("suspended device {id}"))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            ActionTarget::DisableClient(id) => self.disable_client(id).await,
            ActionTarget::BlockAddress { address, secs } => self
                .blocklist
                .block(*address, *secs)
                .await
                .map(|until| format!("blocked address {address} until {until}")),
        };
        match result {
            Ok(done) => done,
            Err(why) => {
                tracing::warn!(rule = firing.rule.as_str(), error = %why, "automatic action failed");
                format!("failed: {why}")
            }
        }
    }

    async fn disable_client(&self, id: &str) -> Result<String, String> {
        let id = ClientId::parse(id).map_err(|e| e.to_string())?;
        let mut client = self.clients.client(&id).await.map_err(|e| e.to_string())?;
        if !client.enabled {
            return Ok(format!("client {id} was disabled already"));
        }
        client.enabled = false;
        client.updated_at = unix_now();
        self.clients
            .update(&client)
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!("disabled client {id}"))
    }
}
