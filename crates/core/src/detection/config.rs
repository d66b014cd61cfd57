//! The `[detection]` configuration: every rule with its defaults, what the operator changes,
//! and the checks that refuse nonsense at load time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::admin::AdminPolicy;
use super::rule::{Action, RuleConfig, RuleKind};

/// Why a detection configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectionConfigError {
    #[error("detection rule {rule}: {why}")]
    Rule { rule: RuleKind, why: String },
    #[error("detection rule {0} is missing")]
    MissingRule(RuleKind),
    #[error("detection rule {0} is given twice")]
    DuplicateRule(RuleKind),
    #[error("[detection.token_rate] {0}")]
    TokenRate(String),
    #[error("[detection.admin] {0}")]
    Admin(String),
}

/// The token-rate baseline's parameters (`[detection.token_rate]`); the rule's `threshold` is
/// the least rate that may fire and its `window_secs` the interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenRateConfig {
    /// Fires when an interval's count exceeds `factor` times the moving average (≥ 1).
    pub factor: f64,
    /// No firing before this many intervals were averaged (the warm-up).
    pub min_samples: u64,
    /// The weight of the newest interval in the moving average, in (0, 1].
    pub alpha: f64,
}

impl Default for TokenRateConfig {
    fn default() -> Self {
        Self {
            factor: 5.0,
            min_samples: 30,
            alpha: 0.1,
        }
    }
}

impl TokenRateConfig {
    pub fn validate(&self) -> Result<(), DetectionConfigError> {
        let bad = |why: &str| Err(DetectionConfigError::TokenRate(why.to_owned()));
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return bad("factor must be a number of at least 1");
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return bad("alpha must be above 0 and at most 1");
        }
        if self.min_samples == 0 {
            return bad("min_samples must be at least 1");
        }
        Ok(())
    }
}

/// Detection as a whole. Deserializing merges what the operator wrote onto the defaults
/// and validates the result:
///
/// ```toml
/// [detection]
/// enabled = true                      # default
///
/// [detection.rules.auth_failures_per_client]
/// threshold = 50                      # any of enabled, threshold, window_secs,
/// action = "disable"                  # cooldown_secs, action; the rest keep defaults
///
/// [detection.rules.auth_failures_per_address]
/// action = { block = 900 }
///
/// [detection.token_rate]
/// factor = 5.0
///
/// [detection.admin]
/// hours = [7, 19]                     # admin actions allowed 07:00-19:00 (UTC + offset)
/// weekdays = ["mon", "tue", "wed", "thu", "fri"]
/// networks = ["10.0.0.0/8"]
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawDetectionConfig")]
pub struct DetectionConfig {
    pub enabled: bool,
    /// One per [`RuleKind`], in [`RuleKind::ALL`] order.
    pub rules: Vec<RuleConfig>,
    pub token_rate: TokenRateConfig,
    pub admin: AdminPolicy,
}

/// The defaults: every rule on, with no automatic action (acting is the operator's choice).
/// `auth_failures_per_address` stays below the token endpoint's lock-out (`[rate_limit]
/// auth_failures_per_minute`, 20 by default): locked-out attempts are answered 429 without an
/// audit record, so a threshold above it could never be reached from one address on one node.
pub const fn default_rule(kind: RuleKind) -> RuleConfig {
    let (threshold, window_secs, cooldown_secs) = match kind {
        RuleKind::AuthFailuresPerClient => (20, 60, 300),
        RuleKind::AuthFailuresPerAddress => (15, 60, 300),
        RuleKind::EnrollFailuresPerDevice => (5, 300, 900),
        RuleKind::EnrollFailuresPerAddress => (20, 300, 900),
        RuleKind::AssertionReplay => (3, 300, 900),
        RuleKind::MessageReplay => (10, 300, 900),
        RuleKind::ClonedDevice => (2, 600, 3600),
        RuleKind::DisabledClientUse | RuleKind::InactiveDeviceUse => (5, 600, 3600),
        RuleKind::TokenRateAnomaly => (30, 60, 600),
        RuleKind::AdminOffHours | RuleKind::AdminOffNetwork => (1, 3600, 3600),
    };
    RuleConfig {
        kind,
        enabled: true,
        threshold,
        window_secs,
        cooldown_secs,
        action: Action::None,
    }
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rules: RuleKind::ALL.into_iter().map(default_rule).collect(),
            token_rate: TokenRateConfig::default(),
            admin: AdminPolicy::default(),
        }
    }
}

impl DetectionConfig {
    /// The rule's settings (`None` only for a hand-built configuration that lacks it).
    pub fn rule(&self, kind: RuleKind) -> Option<&RuleConfig> {
        self.rules.iter().find(|r| r.kind == kind)
    }

    /// The rule's settings if detection and the rule are both enabled.
    pub fn active_rule(&self, kind: RuleKind) -> Option<&RuleConfig> {
        self.rule(kind).filter(|r| self.enabled && r.enabled)
    }

    /// Every rule present once and sensible, the baseline and the admin policy sensible.
    pub fn validate(&self) -> Result<(), DetectionConfigError> {
        for kind in RuleKind::ALL {
            match self.rules.iter().filter(|r| r.kind == kind).count() {
                0 => return Err(DetectionConfigError::MissingRule(kind)),
                1 => {}
                _ => return Err(DetectionConfigError::DuplicateRule(kind)),
            }
        }
        for rule in &self.rules {
            rule.validate()?;
        }
        self.token_rate.validate()?;
        self.admin.validate()
    }
}

/// What an operator may change of one rule.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleOverride {
    enabled: Option<bool>,
    threshold: Option<u64>,
    window_secs: Option<u64>,
    cooldown_secs: Option<u64>,
    action: Option<Action>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetectionConfig {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    rules: BTreeMap<RuleKind, RuleOverride>,
    #[serde(default)]
    token_rate: TokenRateConfig,
    #[serde(default)]
    admin: AdminPolicy,
}

impl TryFrom<RawDetectionConfig> for DetectionConfig {
    type Error = DetectionConfigError;

    fn try_from(raw: RawDetectionConfig) -> Result<Self, Self::Error> {
        let mut config = DetectionConfig {
            enabled: raw.enabled.unwrap_or(true),
            token_rate: raw.token_rate,
            admin: raw.admin,
            ..DetectionConfig::default()
        };
        for rule in &mut config.rules {
            let Some(o) = raw.rules.get(&rule.kind) else {
                continue;
            };
            rule.enabled = o.enabled.unwrap_or(rule.enabled);
            rule.threshold = o.threshold.unwrap_or(rule.threshold);
            rule.window_secs = o.window_secs.unwrap_or(rule.window_secs);
            rule.cooldown_secs = o.cooldown_secs.unwrap_or(rule.cooldown_secs);
            rule.action = o.action.unwrap_or(rule.action);
        }
        config.validate()?;
        Ok(config)
    }
}
