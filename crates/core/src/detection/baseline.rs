//! A client's token rate against its own moving average.
//!
//! Tokens are counted per client in fixed intervals (the rule's `window_secs`, one bucket
//! each). When an interval is over, its count is folded into the client's [`Baseline`], an
//! exponentially weighted moving average kept in the shared store; while an interval runs,
//! its count so far is compared with the baseline, so a burst alerts as it happens rather
//! than when the interval ends.

use serde::{Deserialize, Serialize};

use super::config::TokenRateConfig;
use super::decide::Firing;
use super::key::SignalKey;
use super::rule::RuleConfig;
use crate::UnixTime;

/// Empty intervals folded in at most at once (the average is ~0 long before).
const MAX_GAP: i64 = 10_000;

/// The moving average of a client's tokens per interval.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// Tokens per interval, on average.
    pub mean: f64,
    /// Intervals averaged (empty ones included).
    pub samples: u64,
    /// The start of the last interval folded in, so folding one twice (two nodes, a retry)
    /// changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_interval: Option<UnixTime>,
}

impl Baseline {
    /// Folds in one more interval's count with weight `alpha` (the first sets the mean).
    pub fn update(&mut self, count_in_interval: u64, alpha: f64) {
        let x = count_in_interval as f64;
        self.mean = if self.samples == 0 {
            x
        } else {
            self.mean + alpha * (x - self.mean)
        };
        self.samples = self.samples.saturating_add(1);
    }

    /// Folds in the complete interval that starts at `interval_start` (of `interval_secs`),
    /// with zeros for the intervals since the last one folded in (no tokens, no events).
    /// `false`, changing nothing, for an interval at or before the last one folded in.
    pub fn observe(
        &mut self,
        interval_start: UnixTime,
        interval_secs: u64,
        count: u64,
        alpha: f64,
    ) -> bool {
        let len = i64::try_from(interval_secs.max(1)).unwrap_or(i64::MAX);
        let start = interval_start.div_euclid(len).saturating_mul(len);
        if let Some(last) = self.last_interval {
            if start <= last {
                return false;
            }
            let gap = (start.saturating_sub(last) / len).saturating_sub(1);
            if gap > 0 {
                let folded = gap.min(MAX_GAP);
                self.mean *= (1.0 - alpha).powi(i32::try_from(folded).unwrap_or(i32::MAX));
                self.samples = self.samples.saturating_add(gap.unsigned_abs());
            }
        }
        self.update(count, alpha);
        self.last_interval = Some(start);
        true
    }

    /// Whether `current` tokens in an interval are far above the baseline: at least
    /// `min_samples` intervals averaged (the warm-up), at least `min_rate` tokens, and more
    /// than `factor` times the mean.
    pub fn is_anomalous(&self, current: u64, factor: f64, min_rate: u64, min_samples: u64) -> bool {
        self.samples >= min_samples && current >= self.limit(factor, min_rate)
    }

    /// The least count that is anomalous (after the warm-up).
    pub fn limit(&self, factor: f64, min_rate: u64) -> u64 {
        let above = (factor * self.mean).floor();
        let above = if above.is_finite() && above >= 0.0 {
            // Saturates at u64::MAX for a huge mean.
            (above as u64).saturating_add(1)
        } else {
            u64::MAX
        };
        above.max(min_rate)
    }
}

/// Whether `token_rate_anomaly` fires for `key` with `current` tokens so far in the current
/// interval, against its `baseline` (the rule's `threshold` is the least rate that fires).
pub fn decide_rate(
    rule: &RuleConfig,
    rate: &TokenRateConfig,
    key: &SignalKey,
    baseline: &Baseline,
    current: u64,
    now: UnixTime,
) -> Option<Firing> {
    let anomalous = baseline.is_anomalous(current, rate.factor, rule.threshold, rate.min_samples);
    (rule.enabled && anomalous).then(|| Firing {
        rule: rule.kind,
        key: key.group(),
        total: current,
        threshold: baseline.limit(rate.factor, rule.threshold),
        window_secs: rule.window_secs,
        cooldown_secs: rule.cooldown_secs,
        at: now,
        action: rule.action,
    })
}
