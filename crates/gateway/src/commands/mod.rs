//! Commands to devices (issue #13, item 2): a principal asks, the policy decides, the
//! command is signed and queued, the device takes it and answers.
//!
//! - **Send.** The caller is the client of a bearer access token. The command policy
//!   (`core::command_policy`: the rules of `[gateway.commands]` followed by those set through
//!   the admin API) allows or refuses it — the refusal names the rule that matched all but the
//!   arguments, if any — and its per-device rate limit is counted in the store, so it holds
//!   across nodes. Every decision is audited (`command.sent`, `command.denied`).
//! - **Approve.** A rule with `approvals = 2` keeps the command `pending_approval` until a
//!   second principal, other than the sender and itself matching the rule, approves it
//!   (`command.approved`); past its expiry it can no longer be approved.
//! - **Queue.** Only then is it signed (`COSE_Sign1`, a key of role `commands`, see
//!   `docs/signed-objects.md`) under the device's next sequence number, in the store's one
//!   transaction ([`Store::queue_command`]): numbers rise in the order commands can be
//!   delivered, across nodes.
//! - **Deliver.** The device's MQTT connection (subscribed to `devices/{id}/commands`) or HTTP
//!   long poll is woken by a [`Doorbell`] — rung here, or by the change feed when another node
//!   queued the command — and takes the queued, unexpired commands in sequence order. An
//!   expired command is never handed out (the store's query filters on the expiry).
//! - **Answer.** The device reports `succeeded` or `failed` in an authenticated message (COSE
//!   or an authenticated connection, as for telemetry: the same replay protection); the first
//!   answer stays.

pub mod doorbell;
mod error;
pub mod http;
mod rules;

use std::sync::Arc;

use portcullis_audit::AuditLog;
use portcullis_core::audit::{AuditAction, AuditEvent, Outcome};
use portcullis_core::command::{
    validate_ttl, CommandId, CommandOutcome, CommandRecord, CommandState, ResultRecorded,
    COMMAND_ID_RANDOM_BYTES,
};
use portcullis_core::command_policy::{
    validate_command_name, CommandPolicy, CommandRequest, CommandRule, Decision, Principal, Target,
};
use portcullis_core::device::{DeviceId, DeviceState};
use portcullis_core::{ClientId, UnixTime};
use portcullis_ports::DeviceRegistry;
use portcullis_store::Store;
use serde_json::{json, Map, Value};

use crate::records::json_or_cbor;
use crate::signed::{cbor_from_json, sign, CommandObject, Kind, OperatorKeys, Role};
pub use doorbell::{Doorbell, Doorbells};
pub use error::CommandError;
pub use rules::RULES_SETTING;

/// Scope that lets a client read every command (status, lists) besides its own.
pub const COMMANDS_READ_SCOPE: &str = "commands:read";
/// Most commands one listing or one delivery returns.
pub const MAX_PAGE: u32 = 500;

/// What a sender asks for.
#[derive(Debug, Clone)]
pub struct NewCommand {
    pub name: String,
    pub args: Map<String, Value>,
    pub ttl_secs: u32,
}

/// The command service of one node.
pub struct Commands {
    store: Arc<dyn Store>,
    registry: Arc<dyn DeviceRegistry>,
    keys: OperatorKeys,
    rules: rules::Rules,
    audit: AuditLog,
    bells: Arc<Doorbells>,
    clock: fn() -> UnixTime,
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands")
            .field("listening_devices", &self.bells.len())
            .finish_non_exhaustive()
    }
}

impl Commands {
    /// The service over `config_rules` (from `[gateway.commands]`, evaluated first) and the
    /// rules the admin API stored, if any (call [`Commands::reload_rules`] once at start).
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<dyn DeviceRegistry>,
        keys: OperatorKeys,
        config_rules: CommandPolicy,
        audit: AuditLog,
        clock: fn() -> UnixTime,
    ) -> Self {
        Self {
            rules: rules::Rules::new(Arc::clone(&store), config_rules),
            store,
            registry,
            keys,
            audit,
            bells: Arc::new(Doorbells::default()),
            clock,
        }
    }

    fn now(&self) -> UnixTime {
        (self.clock)()
    }

    /// Sends a command: evaluated, rate-limited, then queued (signed) or left pending its
    /// second approver. Returns the stored command.
    pub async fn send(
        &self,
        sender: Principal<'_>,
        device_id: &DeviceId,
        new: NewCommand,
    ) -> Result<CommandRecord, CommandError> {
        let ttl = validate_ttl(new.ttl_secs)?;
        validate_command_name(&new.name)?;
        let device = self.registry.device(device_id).await?;
        if !matches!(
            device.state,
            DeviceState::Registered | DeviceState::Enrolled
        ) {
            return Err(CommandError::DeviceInactive);
        }
        let policy = self.rules.policy();
        let request = CommandRequest {
            name: &new.name,
            args: &new.args,
        };
        let (rule, approvals, rate) = match policy.evaluate(sender, Target::from(&*device), request)
        {
            Decision::Allowed {
                rule,
                approvals,
                rate_per_minute,
            } => (rule.to_owned(), approvals, rate_per_minute),
            Decision::Denied { rule, reason } => {
                let rule = rule.map(str::to_owned);
                self.audit_denied(sender.client_id, device_id, &new.name, &rule, &reason)
                    .await;
                return Err(CommandError::Denied { rule, reason });
            }
        };
        let now = self.now();
        if let Some(limit) = rate {
            let recent = self
                .store
                .count_recent_commands(device_id, &rule, now - 59)
                .await?;
            if recent >= u64::from(limit) {
                self.audit_event(
                    AuditAction::CommandDenied,
                    sender.client_id,
                    device_id.as_str(),
                    Outcome::Failure,
                    json!({ "name": new.name, "rule": rule, "reason": "rate_limited" }),
                )
                .await;
                return Err(CommandError::RateLimited {
                    rule,
                    retry_after_secs: 60,
                });
            }
        }
        let record = CommandRecord {
            command_id: new_command_id()?,
            device_id: device_id.clone(),
            name: new.name,
            args: new.args,
            sender: ClientId::parse(sender.client_id)?,
            rule,
            approvals_required: approvals,
            approver: None,
            state: CommandState::PendingApproval,
            created_at: now,
            expires_at: now + i64::from(ttl),
            seq: None,
            signed: None,
            queued_at: None,
            delivered_at: None,
            finished_at: None,
            output: None,
        };
        let stored = if approvals > 1 {
            self.store.insert_command(&record).await?;
            record
        } else {
            self.queue(&record, now).await?.ok_or_else(|| {
                CommandError::Unavailable("the command could not be queued".into())
            })?
        };
        self.audit_event(
            AuditAction::CommandSent,
            sender.client_id,
            device_id.as_str(),
            Outcome::Success,
            json!({
                "command_id": stored.command_id,
                "name": stored.name,
                "rule": stored.rule,
                "state": stored.state.as_str(),
                "seq": stored.seq,
            }),
        )
        .await;
        Ok(stored)
    }

    /// Approves a command waiting for its second principal, which then is queued.
    pub async fn approve(
        &self,
        approver: Principal<'_>,
        id: &CommandId,
    ) -> Result<CommandRecord, CommandError> {
        let now = self.now();
        let mut record = self
            .store
            .get_command(id)
            .await?
            .ok_or(CommandError::NotFound("command"))?;
        let state = record.state_at(now);
        if state != CommandState::PendingApproval {
            return Err(CommandError::NotPending(state.as_str()));
        }
        let policy = self.rules.policy();
        if let Err(reason) = policy.check_approval(&record.rule, record.sender.as_str(), approver) {
            let rule = Some(record.rule.clone());
            self.audit_denied(
                approver.client_id,
                &record.device_id,
                &record.name,
                &rule,
                &reason,
            )
            .await;
            return Err(CommandError::Denied { rule, reason });
        }
        record.approver = Some(ClientId::parse(approver.client_id)?);
        let queued = self
            .queue(&record, now)
            .await?
            .ok_or(CommandError::NotPending("no longer pending"))?;
        self.audit_event(
            AuditAction::CommandApproved,
            approver.client_id,
            record.device_id.as_str(),
            Outcome::Success,
            json!({
                "command_id": queued.command_id,
                "name": queued.name,
                "rule": queued.rule,
                "sender": queued.sender,
                "seq": queued.seq,
            }),
        )
        .await;
        Ok(queued)
    }

    /// Signs and queues a command under its device's next sequence number, then wakes the
    /// device's listeners on this node (other nodes hear the store's announcement).
    async fn queue(
        &self,
        record: &CommandRecord,
        now: UnixTime,
    ) -> Result<Option<CommandRecord>, CommandError> {
        let signer = self.keys.signer(Role::Commands).await?;
        let args = cbor_from_json(&Value::Object(record.args.clone()))?;
        let template = CommandObject {
            dev: record.device_id.to_string(),
            cid: record.command_id.to_string(),
            name: record.name.clone(),
            args,
            iat: now,
            exp: record.expires_at,
            seq: 0,
        };
        let sign_under = move |seq: u64| {
            let object = CommandObject {
                seq,
                ..template.clone()
            };
            sign(Kind::Command, &object, &*signer).map_err(|e| e.to_string())
        };
        let queued = self.store.queue_command(record, now, &sign_under).await?;
        if queued.is_some() {
            self.bells.ring(&record.device_id);
        }
        Ok(queued)
    }

    /// One command, if the caller may read it: its sender, its approver, or a holder of
    /// `commands:read`.
    pub async fn get(
        &self,
        reader: Principal<'_>,
        id: &CommandId,
    ) -> Result<CommandRecord, CommandError> {
        let record = self
            .store
            .get_command(id)
            .await?
            .ok_or(CommandError::NotFound("command"))?;
        let own = record.sender.as_str() == reader.client_id
            || record
                .approver
                .as_ref()
                .is_some_and(|a| a.as_str() == reader.client_id);
        if own || reader.scopes.contains(COMMANDS_READ_SCOPE) {
            Ok(record)
        } else if self
            .rules
            .policy()
            .rule(&record.rule)
            .is_some_and(|rule| rule.approvals > 1 && rule.admits(reader))
        {
            // A would-be approver must see what it is asked to approve.
            Ok(record)
        } else {
            // Not "forbidden": whether the id exists is not the caller's business.
            Err(CommandError::NotFound("command"))
        }
    }

    /// A device's commands, oldest first, for holders of `commands:read`.
    pub async fn list(
        &self,
        reader: Principal<'_>,
        device: Option<&DeviceId>,
        after: Option<&CommandId>,
        limit: u32,
    ) -> Result<Vec<CommandRecord>, CommandError> {
        if !reader.scopes.contains(COMMANDS_READ_SCOPE) {
            return Err(CommandError::NotReadable);
        }
        Ok(self
            .store
            .list_commands(device, after, limit.clamp(1, MAX_PAGE))
            .await?)
    }

    // --- The device's side ---

    /// The device's queued, unexpired commands, in sequence order.
    pub async fn deliverable(
        &self,
        device: &DeviceId,
        limit: u32,
    ) -> Result<Vec<CommandRecord>, CommandError> {
        Ok(self
            .store
            .deliverable_commands(device, self.now(), limit.clamp(1, MAX_PAGE))
            .await?)
    }

    /// Notes that the device has the command (MQTT: its PUBACK; HTTP: its poll's answer).
    /// `false` if it was delivered, answered or expired meanwhile.
    pub async fn delivered(
        &self,
        record: &CommandRecord,
        transport: &'static str,
    ) -> Result<bool, CommandError> {
        let now = self.now();
        let marked = self
            .store
            .mark_command_delivered(&record.command_id, now)
            .await?;
        if marked {
            self.audit_event(
                AuditAction::CommandDelivered,
                record.device_id.as_str(),
                record.device_id.as_str(),
                Outcome::Success,
                json!({
                    "command_id": record.command_id,
                    "seq": record.seq,
                    "transport": transport,
                }),
            )
            .await;
        }
        Ok(marked)
    }

    /// Records what the device reported (its message was authenticated and stored by the
    /// caller; `transport` is the one it came by). `false`: no such command of this device
    /// waiting for a result. A result for a command whose delivery was not recorded yet (the
    /// device answered before its acknowledgement was read) records the delivery too, and
    /// audits it as `command.delivered` with `"by": "result"`.
    pub async fn record_result(
        &self,
        device: &DeviceId,
        outcome: &CommandOutcome,
        transport: &'static str,
    ) -> Result<bool, CommandError> {
        let state = CommandState::from(outcome.status);
        let recorded = self
            .store
            .record_command_result(
                &outcome.cid,
                device,
                state,
                outcome.output.as_ref(),
                self.now(),
            )
            .await?;
        if recorded == ResultRecorded::RecordedAndDelivered {
            self.audit_event(
                AuditAction::CommandDelivered,
                device.as_str(),
                device.as_str(),
                Outcome::Success,
                json!({ "command_id": outcome.cid, "transport": transport, "by": "result" }),
            )
            .await;
        }
        let result = if recorded.recorded() {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        self.audit_event(
            AuditAction::CommandResult,
            device.as_str(),
            device.as_str(),
            result,
            json!({ "command_id": outcome.cid, "status": state.as_str() }),
        )
        .await;
        Ok(recorded.recorded())
    }

    /// The doorbells of this node's devices (shared with desired settings).
    pub fn doorbells(&self) -> Arc<Doorbells> {
        Arc::clone(&self.bells)
    }

    /// Listens for `device`'s new commands on this node.
    pub fn listen(&self, device: &DeviceId) -> Doorbell {
        self.bells.listen(device)
    }

    /// Another node queued a command for `device` (the change feed); `None`: any device.
    pub fn wake(&self, device: Option<&DeviceId>) {
        match device {
            Some(device) => self.bells.ring(device),
            None => self.bells.ring_all(),
        }
    }

    // --- Rules ---

    /// The rules from the configuration and those set through the admin API.
    pub fn rules(&self) -> (Vec<CommandRule>, Vec<CommandRule>) {
        self.rules.both()
    }

    /// Replaces the admin API's rules (validated together with the configuration's: names
    /// unique across both), audited as `command.rules_changed`.
    pub async fn set_rules(
        &self,
        actor: &str,
        rules: Vec<CommandRule>,
    ) -> Result<Vec<CommandRule>, CommandError> {
        let names: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
        let stored = self.rules.set(rules).await?;
        self.audit_event(
            AuditAction::CommandRulesChanged,
            actor,
            "gateway.commands",
            Outcome::Success,
            json!({ "rules": names }),
        )
        .await;
        Ok(stored)
    }

    /// Reads the admin API's rules again (at start, and when another node changed them).
    pub async fn reload_rules(&self) -> Result<(), CommandError> {
        self.rules.reload().await
    }

    async fn audit_denied(
        &self,
        actor: &str,
        device: &DeviceId,
        name: &str,
        rule: &Option<String>,
        reason: &portcullis_core::command_policy::DenyReason,
    ) {
        self.audit_event(
            AuditAction::CommandDenied,
            actor,
            device.as_str(),
            Outcome::Failure,
            json!({
                // The name only if it is one: a malformed name is not echoed into the log.
                "name": validate_command_name(name).is_ok().then_some(name),
                "rule": rule,
                "reason": reason.as_str(),
            }),
        )
        .await;
    }

    async fn audit_event(
        &self,
        action: AuditAction,
        actor: &str,
        subject: &str,
        outcome: Outcome,
        detail: Value,
    ) {
        let event = AuditEvent {
            at: self.now(),
            actor: actor.to_owned(),
            action: action.into(),
            subject: subject.to_owned(),
            outcome: outcome.into(),
            detail,
        };
        if self.audit.record(event).await.is_err() {
            tracing::warn!(
                action = action.as_str(),
                "the audit log could not take a command record"
            );
        }
    }
}

fn new_command_id() -> Result<CommandId, CommandError> {
    let random = portcullis_keys::random_array::<COMMAND_ID_RANDOM_BYTES>()
        .map_err(|e| CommandError::Unavailable(e.to_string()))?;
    let millis = u64::try_from(crate::service::unix_millis()).unwrap_or(0);
    Ok(CommandId::new(millis, random))
}

/// Reads a device's result message: a JSON object, or a CBOR map (what a COSE device
/// naturally sends), with `cid`, `status` and an optional `output`.
pub fn parse_outcome(payload: &[u8]) -> Result<CommandOutcome, CommandError> {
    let outcome: CommandOutcome = json_or_cbor(payload).ok_or_else(|| {
        CommandError::Invalid("the result is not a valid result object or map".into())
    })?;
    Ok(outcome.validate()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_read_from_json_or_cbor() {
        let cid = CommandId::new(7, [3; 8]);
        let json = format!(r#"{{"cid":"{cid}","status":"succeeded","output":{{"pos":40}}}}"#);
        let outcome = parse_outcome(json.as_bytes()).unwrap();
        assert_eq!(outcome.cid, cid);
        assert_eq!(outcome.output, Some(json!({"pos": 40})));
        let mut cbor = Vec::new();
        ciborium::into_writer(&json!({"cid": cid.as_str(), "status": "failed"}), &mut cbor)
            .unwrap();
        let outcome = parse_outcome(&cbor).unwrap();
        assert_eq!(CommandState::from(outcome.status), CommandState::Failed);
        for bad in [
            &b""[..],
            b"{",
            b"{\"cid\":\"x\",\"status\":\"succeeded\"}",
            &[0xa1, 0x61, 0x78, 0x01],
            &[0xff; 8],
        ] {
            assert!(parse_outcome(bad).is_err(), "{bad:?}");
        }
    }
}
