//! Fixed-size buckets, and the local tally each node flushes into the shared counters.
//!
//! A rule's window is cut into buckets of `window_secs / 6` seconds (at least 1; for
//! `token_rate_anomaly`, one bucket per interval). Every node adds to the same shared
//! counter for (rule, key, bucket start), and the total in the window is the sum of the
//! buckets whose start is in [`window_buckets`]: the current bucket and enough before it to
//! cover `window_secs`. The window therefore slides a bucket at a time: it reaches between
//! `window_secs` and `window_secs + bucket` seconds back.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Serialize;

use super::config::DetectionConfig;
use super::key::{counter_key, Signal, SignalKey};
use super::rule::{RuleConfig, RuleKind};
use crate::UnixTime;

/// How many buckets a window is cut into.
pub const BUCKETS_PER_WINDOW: u64 = 6;

fn secs(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The bucket length of `rule`, in seconds (≥ 1).
pub fn bucket_secs(rule: &RuleConfig) -> i64 {
    let len = if rule.kind == RuleKind::TokenRateAnomaly {
        rule.window_secs
    } else {
        rule.window_secs / BUCKETS_PER_WINDOW
    };
    secs(len.max(1))
}

/// The start of the bucket holding `at`.
pub fn bucket_start(at: UnixTime, rule: &RuleConfig) -> UnixTime {
    let len = bucket_secs(rule);
    at.div_euclid(len).saturating_mul(len)
}

/// The bucket starts whose counters make up the window at `now`: a bucket counts when its
/// start `s` is in the range (the range's bounds are bucket starts, `end` exclusive).
pub fn window_buckets(now: UnixTime, rule: &RuleConfig) -> Range<UnixTime> {
    let len = bucket_secs(rule);
    let count = secs(rule.window_secs.div_ceil(len.unsigned_abs()).max(1));
    let end = bucket_start(now, rule).saturating_add(len);
    end.saturating_sub(count.saturating_mul(len))..end
}

/// An amount to add to one shared counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Increment {
    pub rule: RuleKind,
    pub key: SignalKey,
    pub bucket_start: UnixTime,
    pub count: u64,
}

impl Increment {
    /// The shared counter's name (its bucket is `bucket_start`); see [`counter_key`].
    pub fn counter_key(&self, secret: &[u8]) -> String {
        counter_key(self.rule, &self.key, secret)
    }

    /// The name of the group a distinct count is taken over (`cloned_device`: the device);
    /// the same as [`Increment::counter_key`] for other keys.
    pub fn group_key(&self, secret: &[u8]) -> String {
        counter_key(self.rule, &self.key.group(), secret)
    }
}

/// The signals a node saw since its last flush, summed per (rule, key, bucket), so a burst
/// of a thousand refusals is one store write. Drained at least once a second (alerts are due
/// within a second of the event).
#[derive(Debug, Clone, Default)]
pub struct LocalTally {
    counts: BTreeMap<(RuleKind, SignalKey, UnixTime), u64>,
}

impl LocalTally {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `signal`, seen in an event at `at`, to its bucket; a signal for a rule that is
    /// not enabled in `config` is dropped.
    pub fn add(&mut self, signal: &Signal, at: UnixTime, config: &DetectionConfig) {
        let Some(rule) = config.active_rule(signal.rule) else {
            return;
        };
        let slot = (signal.rule, signal.key.clone(), bucket_start(at, rule));
        let count = self.counts.entry(slot).or_insert(0);
        *count = count.saturating_add(signal.weight);
    }

    /// Adds every signal of one event.
    pub fn add_all<'a>(
        &mut self,
        signals: impl IntoIterator<Item = &'a Signal>,
        at: UnixTime,
        config: &DetectionConfig,
    ) {
        for signal in signals {
            self.add(signal, at, config);
        }
    }

    /// The number of distinct counters waiting.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Takes everything counted since the last drain, in a stable order.
    pub fn drain(&mut self) -> Vec<Increment> {
        std::mem::take(&mut self.counts)
            .into_iter()
            .map(|((rule, key, bucket_start), count)| Increment {
                rule,
                key,
                bucket_start,
                count,
            })
            .collect()
    }
}
