//! A command's life (issue #13), from the sender's request to the device's result.
//!
//! ```text
//!  send ──▶ pending_approval ──approve──▶ queued ──device took it──▶ delivered ──result──▶ succeeded
//!    └────────────(one approver)─────────▶   │                          │                  failed
//!                         └── past expiry ───┴──────▶ expired           └── past expiry, no result: delivered
//! ```
//!
//! A command is signed and given its device's next sequence number only when it is queued
//! (after the last approval), so the numbers a device sees rise in the order it receives
//! them. An expired command is never handed out: the state a reader sees is the stored one,
//! corrected by the clock ([`CommandRecord::state_at`]), so no sweeper is needed for the
//! answer to be right.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::device::DeviceId;
use crate::{ClientId, CoreError, UnixTime};

/// The longest a command may wait for its approver or its device: 7 days.
pub const MAX_COMMAND_TTL_SECS: u32 = 7 * 86_400;
/// Random bytes behind a command id.
pub const COMMAND_ID_RANDOM_BYTES: usize = 8;

/// Where a command is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandState {
    /// Allowed by a rule that asks for a second approver, who has not approved yet.
    PendingApproval,
    /// Signed and waiting for its device.
    Queued,
    /// Handed to the device (MQTT: acknowledged by it; HTTP: returned by its poll).
    Delivered,
    /// The device reported that it executed the command.
    Succeeded,
    /// The device reported that it did not or could not execute the command.
    Failed,
    /// Its expiry passed before it was delivered (or approved): it never will be.
    Expired,
}

impl CommandState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PendingApproval => "pending_approval",
            Self::Queued => "queued",
            Self::Delivered => "delivered",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Ok(match s {
            "pending_approval" => Self::PendingApproval,
            "queued" => Self::Queued,
            "delivered" => Self::Delivered,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "expired" => Self::Expired,
            _ => return Err(CoreError::invalid("state", "not a command state")),
        })
    }

    /// Whether the device already answered (nothing more can happen).
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Expired)
    }
}

/// What recording a device's result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultRecorded {
    /// No command of this device was waiting for a result: nothing changed.
    NotWaiting,
    /// Recorded; the command's delivery had been recorded before.
    Recorded,
    /// Recorded, and the result is the first sign that the device had the command (it
    /// answered before its acknowledgement was processed — an MQTT client that publishes its
    /// result from its message callback sends it before the PUBACK): the delivery is
    /// recorded with it, at the same time.
    RecordedAndDelivered,
}

impl ResultRecorded {
    /// Whether the result was recorded.
    pub const fn recorded(self) -> bool {
        !matches!(self, Self::NotWaiting)
    }
}

/// A command's id: `c`, 12 hex digits of the millisecond it was made and 16 random hex
/// digits, so ids sort by creation time (keyset pagination lists commands oldest first).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommandId(String);

impl CommandId {
    /// A fresh id for a command made at `unix_millis`, from random bytes the caller drew.
    pub fn new(unix_millis: u64, random: [u8; COMMAND_ID_RANDOM_BYTES]) -> Self {
        let millis = unix_millis & 0xFFFF_FFFF_FFFF;
        Self(format!("c{millis:012x}{}", crate::hex::encode(&random)))
    }

    /// Validates an id as [`CommandId::new`] makes them.
    pub fn parse(s: impl Into<String>) -> Result<Self, CoreError> {
        let s = s.into();
        let ok = s.len() == 29
            && s.starts_with('c')
            && s[1..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(s))
        } else {
            Err(CoreError::invalid("command_id", "not a command id"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CommandId {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        Self::parse(s)
    }
}

impl From<CommandId> for String {
    fn from(id: CommandId) -> String {
        id.0
    }
}

impl std::fmt::Display for CommandId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One command as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub command_id: CommandId,
    pub device_id: DeviceId,
    pub name: String,
    /// The arguments as the sender gave them (a JSON object).
    pub args: Map<String, Value>,
    /// The client that sent it.
    pub sender: ClientId,
    /// The rule that allowed it.
    pub rule: String,
    /// Principals needed in all, the sender included (1 or 2).
    pub approvals_required: u8,
    /// The second principal, once approved.
    pub approver: Option<ClientId>,
    /// The stored state; [`CommandRecord::state_at`] is the one to show.
    pub state: CommandState,
    pub created_at: UnixTime,
    /// Never delivered at or after this.
    pub expires_at: UnixTime,
    /// The device's sequence number, given when queued.
    pub seq: Option<u64>,
    /// The `COSE_Sign1` the device receives, made when queued.
    #[serde(skip)]
    pub signed: Option<Vec<u8>>,
    pub queued_at: Option<UnixTime>,
    pub delivered_at: Option<UnixTime>,
    pub finished_at: Option<UnixTime>,
    /// What the device reported with its result, if anything (JSON).
    pub output: Option<Value>,
}

impl CommandRecord {
    /// The state as of `now`: a command still waiting (for its approver or its device) when
    /// its expiry has passed is expired, whatever the stored state says.
    pub fn state_at(&self, now: UnixTime) -> CommandState {
        match self.state {
            CommandState::PendingApproval | CommandState::Queued if now >= self.expires_at => {
                CommandState::Expired
            }
            state => state,
        }
    }

    /// Whether the command may still be handed to its device at `now`.
    pub fn deliverable_at(&self, now: UnixTime) -> bool {
        self.state == CommandState::Queued && now < self.expires_at && self.signed.is_some()
    }
}

/// What a device reports about a command it received (the payload of its authenticated
/// result message, `docs/gateway-protocol.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandOutcome {
    /// The command's id.
    pub cid: CommandId,
    /// `succeeded` or `failed`.
    pub status: ReportedStatus,
    /// Anything the device wants to say (a reading, an error text); at most 4 KiB as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

/// The two results a device can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportedStatus {
    Succeeded,
    Failed,
}

impl From<ReportedStatus> for CommandState {
    fn from(status: ReportedStatus) -> Self {
        match status {
            ReportedStatus::Succeeded => CommandState::Succeeded,
            ReportedStatus::Failed => CommandState::Failed,
        }
    }
}

/// Largest `output` a result may carry, as JSON text.
pub const MAX_OUTPUT_BYTES: usize = 4096;

impl CommandOutcome {
    /// Checks what JSON decoding cannot: the output's size.
    pub fn validate(self) -> Result<Self, CoreError> {
        if let Some(output) = &self.output {
            let len = serde_json::to_vec(output).map_or(usize::MAX, |v| v.len());
            if len > MAX_OUTPUT_BYTES {
                return Err(CoreError::invalid("output", "is larger than 4 KiB"));
            }
        }
        Ok(self)
    }
}

/// A time-to-live as the sender asks for it: 1 second to [`MAX_COMMAND_TTL_SECS`].
pub fn validate_ttl(ttl_secs: u32) -> Result<u32, CoreError> {
    if (1..=MAX_COMMAND_TTL_SECS).contains(&ttl_secs) {
        Ok(ttl_secs)
    } else {
        Err(CoreError::invalid(
            "ttl_secs",
            "must be 1 to 604800 seconds (7 days)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: CommandState) -> CommandRecord {
        CommandRecord {
            command_id: CommandId::new(1, [0; 8]),
            device_id: DeviceId::parse("valve-7").unwrap(),
            name: "valve.open".into(),
            args: Map::new(),
            sender: ClientId::parse("control").unwrap(),
            rule: "r".into(),
            approvals_required: 1,
            approver: None,
            state,
            created_at: 100,
            expires_at: 160,
            seq: Some(1),
            signed: Some(vec![1]),
            queued_at: Some(100),
            delivered_at: None,
            finished_at: None,
            output: None,
        }
    }

    #[test]
    fn ids_sort_by_time_and_parse_back() {
        let a = CommandId::new(1_700_000_000_000, [0xff; 8]);
        let b = CommandId::new(1_700_000_000_001, [0; 8]);
        assert!(a < b);
        assert_eq!(CommandId::parse(a.as_str()).unwrap(), a);
        for bad in ["", "c", "x0000000000000000000000000000", &format!("{a}0")] {
            assert!(CommandId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(CommandId::parse(a.as_str().to_uppercase()).is_err());
    }

    #[test]
    fn a_waiting_command_past_its_expiry_is_expired() {
        for state in [CommandState::PendingApproval, CommandState::Queued] {
            assert_eq!(record(state).state_at(159), state);
            assert_eq!(record(state).state_at(160), CommandState::Expired);
        }
        // A delivered or answered command keeps its state.
        for state in [
            CommandState::Delivered,
            CommandState::Succeeded,
            CommandState::Failed,
        ] {
            assert_eq!(record(state).state_at(1_000), state);
        }
        assert!(record(CommandState::Queued).deliverable_at(159));
        assert!(!record(CommandState::Queued).deliverable_at(160));
        assert!(!record(CommandState::PendingApproval).deliverable_at(100));
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in [
            CommandState::PendingApproval,
            CommandState::Queued,
            CommandState::Delivered,
            CommandState::Succeeded,
            CommandState::Failed,
            CommandState::Expired,
        ] {
            assert_eq!(CommandState::parse(state.as_str()).unwrap(), state);
        }
        assert!(CommandState::parse("done").is_err());
    }

    #[test]
    fn outcomes_are_strict() {
        let ok: CommandOutcome = serde_json::from_value(serde_json::json!({
            "cid": CommandId::new(5, [1; 8]), "status": "succeeded", "output": {"position": 40}
        }))
        .unwrap();
        assert_eq!(ok.status, ReportedStatus::Succeeded);
        assert!(ok.validate().is_ok());
        for bad in [
            serde_json::json!({"cid": "nope", "status": "succeeded"}),
            serde_json::json!({"cid": CommandId::new(5, [1; 8]), "status": "done"}),
            serde_json::json!({"cid": CommandId::new(5, [1; 8]), "status": "failed", "x": 1}),
        ] {
            assert!(serde_json::from_value::<CommandOutcome>(bad).is_err());
        }
        let big = CommandOutcome {
            cid: CommandId::new(5, [1; 8]),
            status: ReportedStatus::Failed,
            output: Some(Value::String("x".repeat(5000))),
        };
        assert!(big.validate().is_err());
    }

    #[test]
    fn ttl_is_bounded() {
        assert!(validate_ttl(0).is_err());
        assert_eq!(validate_ttl(1).unwrap(), 1);
        assert_eq!(
            validate_ttl(MAX_COMMAND_TTL_SECS).unwrap(),
            MAX_COMMAND_TTL_SECS
        );
        assert!(validate_ttl(MAX_COMMAND_TTL_SECS + 1).is_err());
    }
}
