//! Command policy: which principals may send which commands, with which arguments, to which
//! devices (issue #13, item 1).
//!
//! A command moves an actuator, so the gateway must refuse one that nobody granted before it
//! signs anything. The rules live here, pure (no I/O, no clock: the rate limit is counted by the
//! caller, which only learns it from the decision), so the configuration, the admin API and the
//! gateway read one set of rules, and every case has a line in a table test.
//!
//! # Configuration
//!
//! ```toml
//! [[gateway.commands.rules]]
//! name = "valve-operators"
//! principals = { clients = ["control-service"], scopes = ["commands:valve"] }
//! commands = ["valve.open", "valve.close", "valve.calibrate.*"]
//! devices = { ids = ["valve-7"], models = ["valve-v2"], attributes = { site = "plant-1" } }
//! rate_per_minute = 10
//! approvals = 2
//!
//! [gateway.commands.rules.args]             # the rule above's arguments
//! position = { min = 0, max = 100, integer = true, required = true }
//! mode = { one_of = ["auto", "manual"] }
//! note = { max_len = 64 }
//! force = { type = "bool" }
//! ```
//!
//! - `name`: unique, 1 to 64 of `A-Z a-z 0-9 _ . -`; the audit log and 403 bodies name it.
//! - `principals`: a caller matches if its client id is in `clients` or it holds any scope in
//!   `scopes`; at least one of the two lists must be non-empty.
//! - `commands`: exact names, or `prefix.*` for every command below that dotted prefix
//!   (`valve.*` takes `valve.open` and `valve.calibrate.zero`, neither `valve` nor
//!   `valves.open`). A command name is 1 to 128 of `A-Z a-z 0-9 _ . -` in dot-separated
//!   non-empty segments; a bare `*` is refused, a rule must name what it grants.
//! - `devices`: every selector given must hold (`ids`: any of; `models`: any of;
//!   `attributes`: all pairs equal). Omitted or empty: every device.
//! - `args`: one constraint per argument, its type said by `type` (`number`, `string`, `bool`)
//!   or implied by its keys: numbers take `min`, `max` (inclusive) and `integer = true` (the
//!   value must be written as an integer: `5`, not `5.0`, since the device receives the
//!   arguments as sent); strings take `one_of` and `max_len` (in characters); any argument may
//!   be `required = true`. An argument the rule does not list is refused unless
//!   `extra_args = true`. A sub-table as above, or inline: `args = { position = { max = 9 } }`.
//! - `rate_per_minute`: optional, per device and rule; reported in the decision, counted by
//!   the gateway.
//! - `approvals`: 1 (default) or 2: a second principal, different from the sender and itself
//!   matching the rule's `principals`, must approve before dispatch
//!   ([`CommandPolicy::check_approval`]).
//!
//! # Evaluation
//!
//! Default deny. Rules are tried in order; the first whose principals, commands and devices
//! match the request and whose argument constraints pass allows it. When some rules matched
//! all three but each refused the arguments, the denial names the first of them and the
//! argument it refused; when none matched, the denial names no rule, so a caller without any
//! grant learns nothing about the rules. Denials never carry argument values, only names.

mod args;
mod rule;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::device::{Device, DeviceId};
use crate::{CoreError, ScopeSet};

pub use args::{ArgConstraint, ArgKind};
pub use rule::{CommandPattern, CommandRule, DeviceSelector, PrincipalSelector};

/// Who sends (or approves) a command: the client of the bearer token and its scopes.
#[derive(Debug, Clone, Copy)]
pub struct Principal<'a> {
    pub client_id: &'a str,
    pub scopes: &'a ScopeSet,
}

/// The device a command is for, as registered.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub device_id: &'a DeviceId,
    pub model: Option<&'a str>,
    pub attrs: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a Device> for Target<'a> {
    fn from(device: &'a Device) -> Self {
        Self {
            device_id: &device.device_id,
            model: device.model.as_deref(),
            attrs: &device.attrs,
        }
    }
}

/// The command asked for: its name and its JSON arguments.
#[derive(Debug, Clone, Copy)]
pub struct CommandRequest<'a> {
    pub name: &'a str,
    pub args: &'a Map<String, Value>,
}

/// The outcome of [`CommandPolicy::evaluate`], borrowing rule names from the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'p> {
    /// The rule `rule` allows the command; it needs `approvals` principals in all (the sender
    /// included) and at most `rate_per_minute` such commands per device.
    Allowed {
        rule: &'p str,
        approvals: u8,
        rate_per_minute: Option<u32>,
    },
    /// Refused; `rule` is the first rule that matched all but the arguments, if any.
    Denied {
        rule: Option<&'p str>,
        reason: DenyReason,
    },
}

impl Decision<'_> {
    /// Whether the command may proceed (possibly to wait for a second approver).
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }
}

/// Why a command or an approval was refused. `as_str` is for audit records; `Display` is the
/// message of a 403 body and names arguments but never shows their values.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenyReason {
    /// No rule matches this principal, command and device.
    NoRule,
    /// The command name is not a valid name (checked before any rule).
    MalformedCommand,
    /// A rule matched everything but this argument. `name` is made safe for logs: at most 64
    /// characters, anything outside `A-Z a-z 0-9 _ . -` replaced by `?`.
    Argument { name: String, problem: ArgProblem },
    /// The approver is the principal who sent the command.
    ApproverIsSender,
    /// The approver does not match the rule's `principals`.
    ApproverNotAllowed,
    /// The rule that allowed the pending command is no longer in the policy.
    RuleGone,
}

impl DenyReason {
    /// A short, stable name for audit records.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::NoRule => "no_rule",
            Self::MalformedCommand => "malformed_command",
            Self::Argument { problem, .. } => match problem {
                ArgProblem::Missing => "argument_missing",
                ArgProblem::NotAllowed => "argument_not_allowed",
                ArgProblem::OutOfRange => "argument_out_of_range",
                ArgProblem::NotInSet => "argument_not_in_set",
                ArgProblem::TooLong => "argument_too_long",
                ArgProblem::WrongType { .. } => "argument_wrong_type",
            },
            Self::ApproverIsSender => "approver_is_sender",
            Self::ApproverNotAllowed => "approver_not_allowed",
            Self::RuleGone => "rule_gone",
        }
    }
}

impl std::fmt::Display for DenyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoRule => f.write_str("no command rule allows this command to this device"),
            Self::MalformedCommand => f.write_str(
                "a command name is 1 to 128 characters of A-Z a-z 0-9 _ . - in non-empty \
                 dot-separated segments",
            ),
            Self::Argument { name, problem } => match problem {
                ArgProblem::Missing => write!(f, "argument '{name}' is required"),
                ArgProblem::NotAllowed => write!(f, "argument '{name}' is not allowed"),
                ArgProblem::OutOfRange => write!(f, "argument '{name}' is out of range"),
                ArgProblem::NotInSet => {
                    write!(f, "argument '{name}' is not one of the allowed values")
                }
                ArgProblem::TooLong => write!(f, "argument '{name}' is too long"),
                ArgProblem::WrongType { expected } => {
                    write!(f, "argument '{name}' must be {}", expected.with_article())
                }
            },
            Self::ApproverIsSender => {
                f.write_str("the approver must be another principal than the sender")
            }
            Self::ApproverNotAllowed => {
                f.write_str("the approver is not among the principals of the command's rule")
            }
            Self::RuleGone => f.write_str("the rule that allowed this command no longer exists"),
        }
    }
}

/// What is wrong with one argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgProblem {
    /// A `required` argument is absent.
    Missing,
    /// The rule does not list the argument and does not set `extra_args`.
    NotAllowed,
    /// A number below `min` or above `max`.
    OutOfRange,
    /// A string that is not in `one_of`.
    NotInSet,
    /// A string longer than `max_len` characters.
    TooLong,
    /// A value of another JSON type (or a non-integer where `integer = true`).
    WrongType { expected: ValueType },
}

impl ArgProblem {
    /// A short, stable name (`out_of_range`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::NotAllowed => "not_allowed",
            Self::OutOfRange => "out_of_range",
            Self::NotInSet => "not_in_set",
            Self::TooLong => "too_long",
            Self::WrongType { .. } => "wrong_type",
        }
    }
}

/// The JSON type an argument constraint expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Number,
    Integer,
    String,
    Bool,
}

impl ValueType {
    const fn with_article(self) -> &'static str {
        match self {
            Self::Number => "a number",
            Self::Integer => "an integer",
            Self::String => "a string",
            Self::Bool => "a boolean",
        }
    }
}

/// An ordered, validated list of command rules. Deserializes from the list of rules (the
/// `rules` array of `[gateway.commands]`) and refuses an invalid one there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<CommandRule>", into = "Vec<CommandRule>")]
pub struct CommandPolicy {
    rules: Vec<CommandRule>,
}

impl CommandPolicy {
    /// Validates every rule and that their names are unique. An empty policy denies everything.
    pub fn new(rules: Vec<CommandRule>) -> Result<Self, CoreError> {
        let mut names = HashSet::with_capacity(rules.len());
        for rule in &rules {
            rule.validate()?;
            if !names.insert(rule.name.as_str()) {
                return Err(CoreError::invalid(
                    "command rule",
                    format!("the name '{}' is used twice", rule.name),
                ));
            }
        }
        Ok(Self { rules })
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[CommandRule] {
        &self.rules
    }

    /// The rule of that name.
    pub fn rule(&self, name: &str) -> Option<&CommandRule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// Decides whether `principal` may send `request` to `target` (see the module doc).
    pub fn evaluate(
        &self,
        principal: Principal<'_>,
        target: Target<'_>,
        request: CommandRequest<'_>,
    ) -> Decision<'_> {
        if validate_command_name(request.name).is_err() {
            return Decision::Denied {
                rule: None,
                reason: DenyReason::MalformedCommand,
            };
        }
        let mut refused: Option<Decision<'_>> = None;
        for rule in &self.rules {
            if !rule.covers(principal, target, request.name) {
                continue;
            }
            match rule.check_args(request.args) {
                Ok(()) => {
                    return Decision::Allowed {
                        rule: &rule.name,
                        approvals: rule.approvals,
                        rate_per_minute: rule.rate_per_minute,
                    }
                }
                Err((name, problem)) if refused.is_none() => {
                    refused = Some(Decision::Denied {
                        rule: Some(&rule.name),
                        reason: DenyReason::Argument {
                            name: loggable_name(name),
                            problem,
                        },
                    });
                }
                Err(_) => {}
            }
        }
        refused.unwrap_or(Decision::Denied {
            rule: None,
            reason: DenyReason::NoRule,
        })
    }

    /// Whether `approver` may approve a command that `sender_client_id` sent under the rule
    /// `rule_name` (which asked for `approvals = 2`): the rule must still exist, the approver
    /// must be another client than the sender, and must itself match the rule's `principals`.
    /// The approver need not be allowed the command on its own by the rest of the rule: it
    /// vouches for the sender's request, which the rule already allowed.
    pub fn check_approval(
        &self,
        rule_name: &str,
        sender_client_id: &str,
        approver: Principal<'_>,
    ) -> Result<(), DenyReason> {
        self.rule(rule_name)
            .ok_or(DenyReason::RuleGone)?
            .check_approver(sender_client_id, approver)
    }
}

impl TryFrom<Vec<CommandRule>> for CommandPolicy {
    type Error = CoreError;
    fn try_from(rules: Vec<CommandRule>) -> Result<Self, CoreError> {
        Self::new(rules)
    }
}

impl From<CommandPolicy> for Vec<CommandRule> {
    fn from(policy: CommandPolicy) -> Self {
        policy.rules
    }
}

/// Checks a command name: 1 to 128 of `A-Z a-z 0-9 _ . -`, in non-empty dot-separated
/// segments. The HTTP edge may call it to answer 400 before evaluating.
pub fn validate_command_name(name: &str) -> Result<(), CoreError> {
    check_token("command name", name, 128)?;
    if name.split('.').any(str::is_empty) {
        return Err(CoreError::invalid(
            "command name",
            "dot-separated segments must not be empty",
        ));
    }
    Ok(())
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// The one character set of rule, command and argument names: `A-Z a-z 0-9 _ . -`.
fn check_token(what: &'static str, s: &str, max: usize) -> Result<(), CoreError> {
    if s.is_empty() || s.len() > max || !s.chars().all(is_token_char) {
        return Err(CoreError::invalid(
            what,
            format!("must be 1 to {max} characters of A-Z a-z 0-9 _ . -"),
        ));
    }
    Ok(())
}

/// An argument name from a request, safe to log and to put in a 403 body.
fn loggable_name(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| if is_token_char(c) { c } else { '?' })
        .collect()
}
