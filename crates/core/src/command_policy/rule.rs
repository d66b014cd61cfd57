//! One command rule and its selectors: who (principals), what (command patterns), where
//! (devices). The arguments are in `args.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::args::{check_args, ArgConstraint};
use super::{check_token, validate_command_name, ArgProblem, DenyReason, Principal, Target};
use crate::device::DeviceId;
use crate::{ClientId, CoreError, ScopeSet};

/// One rule of the command policy (the module doc shows its TOML shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRule {
    /// Unique within the policy, 1 to 64 of `A-Z a-z 0-9 _ . -`.
    pub name: String,
    pub principals: PrincipalSelector,
    /// Exact names or `prefix.*`; at least one.
    pub commands: Vec<CommandPattern>,
    /// Empty: every device.
    #[serde(default, skip_serializing_if = "DeviceSelector::is_any")]
    pub devices: DeviceSelector,
    /// Constraints per argument name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, ArgConstraint>,
    /// Whether arguments the rule does not list are let through unchecked.
    #[serde(default, skip_serializing_if = "is_false")]
    pub extra_args: bool,
    /// Commands per device and minute under this rule; counted by the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_minute: Option<u32>,
    /// Principals needed in all, the sender included: 1 or 2.
    #[serde(default = "one_approval")]
    pub approvals: u8,
}

fn one_approval() -> u8 {
    1
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl CommandRule {
    /// Checks what serde cannot: the name, non-empty lists, bounds and counts.
    pub fn validate(&self) -> Result<(), CoreError> {
        check_token("command rule name", &self.name, 64)?;
        let invalid = |why: &str| {
            Err(CoreError::invalid(
                "command rule",
                format!("'{}': {why}", self.name),
            ))
        };
        if self.principals.clients.is_empty() && self.principals.scopes.is_empty() {
            return invalid("principals must list at least one client or scope");
        }
        if self.commands.is_empty() {
            return invalid("commands must list at least one command");
        }
        if !(1..=2).contains(&self.approvals) {
            return invalid("approvals must be 1 or 2");
        }
        if self.rate_per_minute == Some(0) {
            return invalid("rate_per_minute must be at least 1 (omit it for no limit)");
        }
        if let Err(e) = self.devices.validate() {
            return invalid(&e.to_string());
        }
        for (name, constraint) in &self.args {
            if let Err(e) = check_token("argument name", name, 64).and(constraint.validate()) {
                return invalid(&format!("argument '{name}': {e}"));
            }
        }
        Ok(())
    }

    /// Whether `principal` is one of the rule's principals: its client is listed or it holds
    /// any listed scope.
    pub fn admits(&self, principal: Principal<'_>) -> bool {
        let p = &self.principals;
        p.clients.iter().any(|c| c.as_str() == principal.client_id)
            || p.scopes.iter().any(|s| principal.scopes.contains(s))
    }

    /// Whether the rule speaks of this command from this principal to this device (the
    /// arguments aside). The cheapest test first: most rules are for other commands.
    pub(super) fn covers(&self, principal: Principal<'_>, target: Target<'_>, name: &str) -> bool {
        self.commands.iter().any(|c| c.matches(name))
            && self.admits(principal)
            && self.devices.matches(target)
    }

    /// The first argument the rule refuses, and why.
    pub(super) fn check_args<'a>(
        &'a self,
        args: &'a Map<String, Value>,
    ) -> Result<(), (&'a str, ArgProblem)> {
        check_args(&self.args, self.extra_args, args)
    }

    /// The four-eyes rule for `approvals = 2`: the approver is another client than the sender
    /// and is itself one of the rule's principals.
    pub fn check_approver(
        &self,
        sender_client_id: &str,
        approver: Principal<'_>,
    ) -> Result<(), DenyReason> {
        if approver.client_id == sender_client_id {
            return Err(DenyReason::ApproverIsSender);
        }
        if !self.admits(approver) {
            return Err(DenyReason::ApproverNotAllowed);
        }
        Ok(())
    }
}

/// The principals a rule is for: any listed client, or any holder of a listed scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSelector {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientId>,
    #[serde(default, skip_serializing_if = "ScopeSet::is_empty")]
    pub scopes: ScopeSet,
}

/// A command name, or every command below a dotted prefix (`valve.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommandPattern(Pattern);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    /// The prefix with its trailing dot (`valve.`), so that matching is one `starts_with`.
    Below(String),
}

impl CommandPattern {
    /// Parses `name` or `prefix.*`, where `name` and `prefix` are valid command names.
    pub fn parse(s: impl Into<String>) -> Result<Self, CoreError> {
        let s = s.into();
        let name = s.strip_suffix(".*").unwrap_or(&s);
        if validate_command_name(name).is_err() {
            return Err(CoreError::invalid(
                "command pattern",
                "expected a command name or `prefix.*`: 1 to 128 characters of \
                 A-Z a-z 0-9 _ . - in non-empty dot-separated segments",
            ));
        }
        if s.ends_with(".*") {
            let mut below = s;
            below.pop(); // keep the dot: `valve.` matches what is below `valve`
            Ok(Self(Pattern::Below(below)))
        } else {
            Ok(Self(Pattern::Exact(s)))
        }
    }

    /// Whether the command `name` is this one, or below this prefix.
    pub fn matches(&self, name: &str) -> bool {
        match &self.0 {
            Pattern::Exact(exact) => exact == name,
            Pattern::Below(prefix) => {
                name.len() > prefix.len() && name.starts_with(prefix.as_str())
            }
        }
    }
}

impl TryFrom<String> for CommandPattern {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        Self::parse(s)
    }
}

impl From<CommandPattern> for String {
    fn from(p: CommandPattern) -> String {
        match p.0 {
            Pattern::Exact(name) => name,
            Pattern::Below(mut prefix) => {
                prefix.push('*');
                prefix
            }
        }
    }
}

impl std::fmt::Display for CommandPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Pattern::Exact(name) => f.write_str(name),
            Pattern::Below(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// The devices a rule is for. Every non-empty selector must hold; all empty: every device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSelector {
    /// Any of these devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<DeviceId>,
    /// Devices of any of these models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Devices whose attributes have all of these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl DeviceSelector {
    /// Whether the selector takes every device.
    pub fn is_any(&self) -> bool {
        self.ids.is_empty() && self.models.is_empty() && self.attributes.is_empty()
    }

    /// Whether `target` is one of the selected devices.
    pub fn matches(&self, target: Target<'_>) -> bool {
        (self.ids.is_empty() || self.ids.contains(target.device_id))
            && (self.models.is_empty()
                || target
                    .model
                    .is_some_and(|m| self.models.iter().any(|want| want == m)))
            && self
                .attributes
                .iter()
                .all(|(k, v)| target.attrs.get(k) == Some(v))
    }

    /// Refuses selectors no registered device could meet (`Device::validate` bounds them).
    fn validate(&self) -> Result<(), CoreError> {
        let printable = |s: &str, max: usize| {
            !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
        };
        if !self.models.iter().all(|m| printable(m, 128)) {
            return Err(CoreError::invalid(
                "devices.models",
                "each model is 1 to 128 printable characters",
            ));
        }
        for (key, value) in &self.attributes {
            check_token("devices.attributes key", key, 64)?;
            if value.chars().count() > 256 || value.chars().any(char::is_control) {
                return Err(CoreError::invalid(
                    "devices.attributes",
                    "values are at most 256 printable characters",
                ));
            }
        }
        Ok(())
    }
}
