//! The rules: what each one counts, per what, and what it may do when it fires.

use serde::{Deserialize, Serialize};

use super::config::DetectionConfigError;

/// One detection rule. The snake_case name ([`RuleKind::as_str`]) is stable: it is the
/// configuration table's name, the `rule` label of `portcullis_alerts_total` and part of every
/// incident id, so it never changes once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// `token.refused` with `invalid_client`, per claimed client id.
    AuthFailuresPerClient,
    /// `token.refused` with `invalid_client`, per source address.
    AuthFailuresPerAddress,
    /// Refused EST enrollments per claimed device (needs the refusal's `claimed_device_id`,
    /// which EST does not write yet).
    EnrollFailuresPerDevice,
    /// Refused EST enrollments and re-enrollments per source address.
    EnrollFailuresPerAddress,
    /// A client assertion's `jti` presented again (RFC 7523 §3 item 7), per client.
    AssertionReplay,
    /// A device message replayed (counter not above the last accepted one — a counter going
    /// backwards included — or a stale timestamp), or a result for no waiting command.
    MessageReplay,
    /// One device connected from two or more sources at once: sessions taken over from
    /// distinct sources within the window (counted as distinct sources, not events).
    ClonedDevice,
    /// A disabled client authenticating, per client.
    DisabledClientUse,
    /// A suspended, revoked or decommissioned device (or a revoked certificate) trying to
    /// connect or enroll, per device.
    InactiveDeviceUse,
    /// A client's token rate far above its own moving average.
    TokenRateAnomaly,
    /// An admin action outside the configured hours or weekdays, per admin client.
    AdminOffHours,
    /// An admin action from outside the configured networks, per admin client.
    AdminOffNetwork,
}

impl RuleKind {
    /// Every rule, in a fixed order (the default configuration's).
    pub const ALL: [RuleKind; 12] = [
        Self::AuthFailuresPerClient,
        Self::AuthFailuresPerAddress,
        Self::EnrollFailuresPerDevice,
        Self::EnrollFailuresPerAddress,
        Self::AssertionReplay,
        Self::MessageReplay,
        Self::ClonedDevice,
        Self::DisabledClientUse,
        Self::InactiveDeviceUse,
        Self::TokenRateAnomaly,
        Self::AdminOffHours,
        Self::AdminOffNetwork,
    ];

    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AuthFailuresPerClient => "auth_failures_per_client",
            Self::AuthFailuresPerAddress => "auth_failures_per_address",
            Self::EnrollFailuresPerDevice => "enroll_failures_per_device",
            Self::EnrollFailuresPerAddress => "enroll_failures_per_address",
            Self::AssertionReplay => "assertion_replay",
            Self::MessageReplay => "message_replay",
            Self::ClonedDevice => "cloned_device",
            Self::DisabledClientUse => "disabled_client_use",
            Self::InactiveDeviceUse => "inactive_device_use",
            Self::TokenRateAnomaly => "token_rate_anomaly",
            Self::AdminOffHours => "admin_off_hours",
            Self::AdminOffNetwork => "admin_off_network",
        }
    }

    /// What the rule counts per (the kind of key a firing names).
    pub const fn key_kind(self) -> KeyKind {
        match self {
            Self::AuthFailuresPerAddress | Self::EnrollFailuresPerAddress => KeyKind::Address,
            Self::EnrollFailuresPerDevice
            | Self::MessageReplay
            | Self::ClonedDevice
            | Self::InactiveDeviceUse => KeyKind::Device,
            Self::AuthFailuresPerClient
            | Self::AssertionReplay
            | Self::DisabledClientUse
            | Self::TokenRateAnomaly
            | Self::AdminOffHours
            | Self::AdminOffNetwork => KeyKind::Client,
        }
    }

    /// How the shared store turns the rule's increments into the number `decide` compares.
    pub const fn counting(self) -> Counting {
        match self {
            Self::ClonedDevice => Counting::Distinct,
            Self::TokenRateAnomaly => Counting::Baseline,
            _ => Counting::Sum,
        }
    }
}

impl std::fmt::Display for RuleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule counts per: the kind of its keys, and so the kind of thing an action acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Client,
    Address,
    Device,
}

impl KeyKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Address => "address",
            Self::Device => "device",
        }
    }
}

/// How a rule's total in the window is made from the shared counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counting {
    /// The sum of the key's counters over the window's buckets.
    Sum,
    /// The number of distinct keys (each a [`super::SignalKey::DeviceSource`]) of one group
    /// ([`super::SignalKey::group`]) with a non-zero counter in the window.
    Distinct,
    /// The count in the current interval (one bucket), against a [`super::Baseline`].
    Baseline,
}

/// What to do, besides alerting, when a rule fires. Spelled in TOML as
/// `action = "none"`, `"suspend"` (suspend the device), `"disable"` (disable the client) or
/// `action = { block = 900 }` (refuse the address for 900 seconds). An action must fit the
/// rule's key: `suspend` only on per-device rules, `disable` on per-client rules, `block` on
/// per-address rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(from = "ActionRepr", into = "ActionRepr")]
pub enum Action {
    #[default]
    None,
    SuspendDevice,
    DisableClient,
    BlockAddress {
        secs: u64,
    },
}

impl Action {
    /// The kind of key the action acts on; `None` for no action.
    pub const fn target_kind(self) -> Option<KeyKind> {
        match self {
            Self::None => None,
            Self::SuspendDevice => Some(KeyKind::Device),
            Self::DisableClient => Some(KeyKind::Client),
            Self::BlockAddress { .. } => Some(KeyKind::Address),
        }
    }

    /// The configuration spelling (`none`, `suspend`, `disable`, `block`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::SuspendDevice => "suspend",
            Self::DisableClient => "disable",
            Self::BlockAddress { .. } => "block",
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum ActionRepr {
    None,
    Suspend,
    Disable,
    Block(u64),
}

impl From<ActionRepr> for Action {
    fn from(repr: ActionRepr) -> Self {
        match repr {
            ActionRepr::None => Self::None,
            ActionRepr::Suspend => Self::SuspendDevice,
            ActionRepr::Disable => Self::DisableClient,
            ActionRepr::Block(secs) => Self::BlockAddress { secs },
        }
    }
}

impl From<Action> for ActionRepr {
    fn from(action: Action) -> Self {
        match action {
            Action::None => Self::None,
            Action::SuspendDevice => Self::Suspend,
            Action::DisableClient => Self::Disable,
            Action::BlockAddress { secs } => Self::Block(secs),
        }
    }
}

/// The longest window or cooldown a rule may have (a week).
pub const MAX_WINDOW_SECS: u64 = 7 * 24 * 3600;
/// The longest an address may be blocked for (30 days).
pub const MAX_BLOCK_SECS: u64 = 30 * 24 * 3600;

/// One rule's settings.
///
/// - `threshold`: the rule fires when the total in the window reaches it (for
///   `cloned_device`, distinct sources, at least 2; for `token_rate_anomaly`, the least
///   number of tokens in one interval that may ever fire, whatever the baseline).
/// - `window_secs`: how far back events count (for `token_rate_anomaly`, the interval the
///   baseline averages over).
/// - `cooldown_secs`: one incident per key per cooldown: while the total stays above the
///   threshold, the rule alerts again once per cooldown, never per event or per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub kind: RuleKind,
    pub enabled: bool,
    pub threshold: u64,
    pub window_secs: u64,
    pub cooldown_secs: u64,
    pub action: Action,
}

impl RuleConfig {
    /// Refuses a rule that could never fire sensibly or whose action cannot act on its key.
    pub fn validate(&self) -> Result<(), DetectionConfigError> {
        let bad = |why: String| {
            Err(DetectionConfigError::Rule {
                rule: self.kind,
                why,
            })
        };
        if self.threshold == 0 {
            return bad("threshold must be at least 1".into());
        }
        if self.kind == RuleKind::ClonedDevice && self.threshold < 2 {
            return bad("threshold counts distinct sources and must be at least 2".into());
        }
        for (name, secs) in [
            ("window_secs", self.window_secs),
            ("cooldown_secs", self.cooldown_secs),
        ] {
            if secs == 0 || secs > MAX_WINDOW_SECS {
                return bad(format!("{name} must be between 1 and {MAX_WINDOW_SECS}"));
            }
        }
        if let Action::BlockAddress { secs } = self.action {
            if secs == 0 || secs > MAX_BLOCK_SECS {
                return bad(format!(
                    "block must be between 1 and {MAX_BLOCK_SECS} seconds"
                ));
            }
        }
        match self.action.target_kind() {
            Some(target) if target != self.kind.key_kind() => bad(format!(
                "action {:?} acts on {} {}, but this rule counts per {}",
                self.action.as_str(),
                if target.as_str().starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                },
                target.as_str(),
                self.kind.key_kind().as_str()
            )),
            _ => Ok(()),
        }
    }
}
