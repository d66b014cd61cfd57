//! What each audit event counts toward: the pure mapping from the shapes the producing
//! crates write (checked against them, see the tests) to [`Signal`]s.
//!
//! | action | written by | detail | counts toward |
//! |---|---|---|---|
//! | `token.refused` | `oauth/src/token.rs` | `error`, `source`, `claimed_client_id`? (+ `reason`?) | `invalid_client`: auth failures per client and per address; `reason = "replay"`: assertion replay; `reason = "disabled"`: disabled client use |
//! | `token.issued` | `oauth/src/token.rs` | `scope`, `aud`, `auth_method` | token rate of the actor |
//! | `device.enroll_refused`, `device.reenroll_refused` | `pki/src/est.rs` | `error` (text), `source` (+ `claimed_device_id`?) | enroll failures per address (and per device); `device X is revoked and may not enroll`: inactive device use |
//! | `gateway.refused` | `gateway/src/service/mod.rs` | `transport`, `reason`, `source` | `device_inactive` (or `certificate_revoked`): inactive device use |
//! | `gateway.replay` | same | same | message replay of the device |
//! | `gateway.takeover` | `gateway/src/service/mod.rs` | `transport`, `method`, `source` | cloned device (device, source) |
//! | `command.result`, failure | `gateway/src/commands/mod.rs` | `command_id`, `status` | message replay of the device |
//! | actor `admin:<id>` | `admin/src/*` | none carries `source` yet | admin off hours / off network |
//!
//! Members marked `?` are optional (written where the producer knows them). Refusal summaries (`detail.summary`, `audit/src/refusals.rs`) count for nothing:
//! detection is fed every refusal before it is summarised, so a summary would count twice.

use std::net::IpAddr;

use super::admin::{admin_client, admin_violations, AdminViolation};
use super::config::DetectionConfig;
use super::key::{Signal, SignalKey};
use super::rule::RuleKind;
use crate::audit::{AuditAction, AuditEvent, Outcome};
use crate::device::DeviceId;
use crate::ErrorCode;

/// `token.refused` `detail.reason` of a replay: a client assertion's `jti` (the OAuth crate's
/// `FailureReason::Replay`), a DPoP proof, an outside token's `jti` (`Error::Replayed`).
pub const REASON_REPLAY: &str = "replay";
/// `token.refused` `detail.reason` of a disabled client (`FailureReason::Disabled`).
pub const REASON_DISABLED: &str = "disabled";
/// The gateway's refusal of a device that is not active (`service/admit.rs`).
pub const GATEWAY_DEVICE_INACTIVE: &str = "device_inactive";
/// A gateway refusal of a certificate our CA issued to the device and revoked since (other
/// certificate refusals are `certificate_refused`, with no device).
pub const GATEWAY_CERTIFICATE_REVOKED: &str = "certificate_revoked";
/// The subject of a gateway record whose device is not known.
pub const UNKNOWN_DEVICE: &str = "unknown";
/// The device member EST refusals would need for per-device counting.
pub const CLAIMED_DEVICE_ID: &str = "claimed_device_id";

/// EST errors that are the server's trouble, not the caller's (`PkiError`'s `Display` of
/// `Store`, `Key`, `Ca`, `Encoding` and `AuditUnavailable`).
const EST_SERVER_FAULTS: [&str; 5] = [
    "store: ",
    "key: ",
    "CA: ",
    "certificate encoding: ",
    "the audit log cannot store records now",
];

/// What `event` counts toward, for the enabled rules of `config`.
pub fn signals(event: &AuditEvent, config: &DetectionConfig) -> Vec<Signal> {
    if !config.enabled || event.detail.get("summary").is_some() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let failed = event.outcome == Outcome::Failure.as_str();
    let action = event.action.as_str();
    if action == AuditAction::TokenRefused.as_str() {
        token_refused(event, &mut out);
    } else if action == AuditAction::TokenUseRefused.as_str() {
        // A DPoP proof replayed to a resource endpoint (`oauth/src/bound_use.rs`): the same
        // rule as a replayed assertion at the token endpoint, keyed on the token's client.
        if let (Some(REASON_REPLAY), Some(client)) =
            (detail_str(event, "reason"), detail_str(event, "client_id"))
        {
            out.push(Signal::new(
                RuleKind::AssertionReplay,
                SignalKey::Client(client.to_owned()),
            ));
        }
    } else if action == AuditAction::TokenIssued.as_str() && !failed {
        out.push(Signal::new(
            RuleKind::TokenRateAnomaly,
            SignalKey::Client(event.actor.clone()),
        ));
    } else if action == AuditAction::DeviceEnrollRefused.as_str()
        || action == AuditAction::DeviceReenrollRefused.as_str()
    {
        est_refused(event, &mut out);
    } else if action == AuditAction::GatewayRefused.as_str() {
        let reason = detail_str(event, "reason");
        if matches!(
            reason,
            Some(GATEWAY_DEVICE_INACTIVE | GATEWAY_CERTIFICATE_REVOKED)
        ) {
            push_device(&mut out, RuleKind::InactiveDeviceUse, gateway_device(event));
        }
    } else if action == AuditAction::GatewayReplay.as_str()
        || (action == AuditAction::CommandResult.as_str() && failed)
    {
        push_device(&mut out, RuleKind::MessageReplay, gateway_device(event));
    } else if action == AuditAction::GatewayTakeover.as_str() {
        if let (Some(device), Some(source)) = (gateway_device(event), source_address(event)) {
            let key = SignalKey::DeviceSource { device, source };
            out.push(Signal::new(RuleKind::ClonedDevice, key));
        }
    }
    if let Some(admin) = admin_client(event) {
        for violation in admin_violations(event, &config.admin) {
            let rule = match violation {
                AdminViolation::OffHours { .. } => RuleKind::AdminOffHours,
                AdminViolation::OffNetwork { .. } => RuleKind::AdminOffNetwork,
            };
            out.push(Signal::new(rule, SignalKey::Client(admin.to_owned())));
        }
    }
    out.retain(|s| config.active_rule(s.rule).is_some());
    out
}

/// `detail.source` as an address (canonical); `None` when absent or not an address.
pub fn source_address(event: &AuditEvent) -> Option<IpAddr> {
    detail_str(event, "source")?
        .parse::<IpAddr>()
        .ok()
        .map(|ip| ip.to_canonical())
}

fn detail_str<'a>(event: &'a AuditEvent, member: &str) -> Option<&'a str> {
    event.detail.get(member)?.as_str()
}

fn token_refused(event: &AuditEvent, out: &mut Vec<Signal>) {
    let client = detail_str(event, "claimed_client_id").map(|id| SignalKey::Client(id.to_owned()));
    // A replay — of a client assertion (`invalid_client`), a DPoP proof (`invalid_dpop_proof`)
    // or an outside token (`invalid_grant`) — whatever error it was answered with.
    if let (Some(REASON_REPLAY), Some(client)) = (detail_str(event, "reason"), &client) {
        out.push(Signal::new(RuleKind::AssertionReplay, client.clone()));
    }
    if detail_str(event, "error") != Some(ErrorCode::InvalidClient.as_str()) {
        return;
    }
    if let Some(ip) = source_address(event) {
        out.push(Signal::new(
            RuleKind::AuthFailuresPerAddress,
            SignalKey::address(ip),
        ));
    }
    let Some(client) = client else {
        return;
    };
    out.push(Signal::new(RuleKind::AuthFailuresPerClient, client.clone()));
    if detail_str(event, "reason") == Some(REASON_DISABLED) {
        out.push(Signal::new(RuleKind::DisabledClientUse, client));
    }
}

fn est_refused(event: &AuditEvent, out: &mut Vec<Signal>) {
    let error = detail_str(event, "error").unwrap_or_default();
    if EST_SERVER_FAULTS
        .iter()
        .any(|fault| error.starts_with(fault))
    {
        return;
    }
    // `PkiError::NotPermitted` of `pki/src/enroll.rs`: "device {id} is {state} and may not
    // enroll" — a device that is not active, not a guessed secret.
    if let Some(device) = inactive_enrolling_device(error) {
        out.push(Signal::new(
            RuleKind::InactiveDeviceUse,
            SignalKey::Device(device),
        ));
        return;
    }
    if let Some(ip) = source_address(event) {
        out.push(Signal::new(
            RuleKind::EnrollFailuresPerAddress,
            SignalKey::address(ip),
        ));
    }
    let claimed = detail_str(event, CLAIMED_DEVICE_ID).and_then(valid_device);
    push_device(out, RuleKind::EnrollFailuresPerDevice, claimed);
}

fn inactive_enrolling_device(error: &str) -> Option<String> {
    let rest = error
        .strip_prefix("device ")?
        .strip_suffix(" and may not enroll")?;
    let (device, state) = rest.rsplit_once(" is ")?;
    matches!(state, "suspended" | "revoked" | "decommissioned")
        .then(|| valid_device(device))
        .flatten()
}

fn valid_device(id: &str) -> Option<String> {
    DeviceId::parse(id).ok().map(|d| d.as_str().to_owned())
}

/// The device a gateway record names, unless it is the placeholder for none.
fn gateway_device(event: &AuditEvent) -> Option<String> {
    (event.subject != UNKNOWN_DEVICE)
        .then(|| valid_device(&event.subject))
        .flatten()
}

fn push_device(out: &mut Vec<Signal>, rule: RuleKind, device: Option<String>) {
    if let Some(device) = device {
        out.push(Signal::new(rule, SignalKey::Device(device)));
    }
}
