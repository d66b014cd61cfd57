//! Row codecs shared by every SQL backend: the same columns decode to the same domain values,
//! with the same corruption checks, whether the row came from SQLite or PostgreSQL. Each
//! backend's row type only says how to read one column ([`ColumnReader`]).

use portcullis_core::audit::{
    from_hex, AuditEvent, AuditRecord, ChainLinker, ChainPlace, GENESIS_HASH,
};
use std::collections::BTreeMap;

use portcullis_core::client::{AuthMethod, Client, TlsClientAuthMatch};
use portcullis_core::command::{CommandId, CommandRecord, CommandState};
use portcullis_core::device::{Device, DeviceId, DeviceState, RevocationReason};
use portcullis_core::device_key::{DeviceKeyId, DeviceKeyInfo};
use portcullis_core::rotation::StoredKeyState;
use portcullis_core::update::UpdateStatus;
use portcullis_core::{ClientId, Kid, ScopeSet, SecretHash};

use crate::pki::{IssuedCertificate, RevokedCertificate, StoredDeviceKey};
use crate::{StoreError, StoredKey, UpdateReport};

/// Reads one typed column of a row.
pub(crate) trait ColumnReader {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    /// A nullable `SMALLINT` (PostgreSQL) or `INTEGER` (SQLite) column.
    fn opt_small_int(&self, column: &str) -> Result<Option<i16>, StoreError>;
    fn flag(&self, column: &str) -> Result<bool, StoreError>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Implements [`ColumnReader`] for a sqlx row type with `try_get`.
macro_rules! column_reader {
    ($row:ty) => {
        impl $crate::rows::ColumnReader for $row {
            fn text(&self, column: &str) -> Result<String, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn int(&self, column: &str) -> Result<i64, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_small_int(&self, column: &str) -> Result<Option<i16>, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn flag(&self, column: &str) -> Result<bool, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
        }
    };
}
pub(crate) use column_reader;

/// The JSON text of a client's list-valued columns.
pub(crate) struct JsonColumns {
    pub scopes: String,
    pub audiences: String,
    pub secret_hashes: String,
    /// The RFC 8705 certificate match of a `tls_client_auth` client; NULL for the others.
    pub tls_client_auth: Option<String>,
}

impl JsonColumns {
    pub fn of(client: &Client) -> Result<Self, StoreError> {
        let failed = |column| StoreError::corrupt_field(column, client.client_id.as_str());
        Ok(Self {
            scopes: serde_json::to_string(&client.scopes).map_err(|_| failed("clients.scopes"))?,
            audiences: serde_json::to_string(&client.audiences)
                .map_err(|_| failed("clients.audiences"))?,
            secret_hashes: serde_json::to_string(&client.secret_hashes)
                .map_err(|_| failed("clients.secret_hashes"))?,
            tls_client_auth: client
                .tls_client_auth
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|_| failed("clients.tls_client_auth"))?,
        })
    }
}

/// Decodes the JSON text in `table.column` of the row keyed `id`.
fn json_column<T: serde::de::DeserializeOwned>(
    row: &impl ColumnReader,
    table: &str,
    column: &str,
    id: &str,
) -> Result<T, StoreError> {
    let text = row.text(column)?;
    serde_json::from_str(&text)
        .map_err(|e| StoreError::corrupt_json(&format!("{table}.{column}"), id, &e))
}

/// Decodes a client, checking every domain rule again: the database may have been edited by
/// hand.
pub(crate) fn client_from_row(row: &impl ColumnReader) -> Result<Client, StoreError> {
    let id = row.text("client_id")?;
    let client_id = ClientId::parse(id.as_str())
        .map_err(|_| StoreError::corrupt_field("clients.client_id", &id))?;
    let auth_method = AuthMethod::parse(&row.text("auth_method")?)
        .map_err(|_| StoreError::corrupt_field("clients.auth_method", &id))?;
    let token_ttl_secs = u32::try_from(row.int("token_ttl_secs")?)
        .map_err(|_| StoreError::corrupt_field("clients.token_ttl_secs", &id))?;
    Ok(Client {
        name: row.text("name")?,
        auth_method,
        scopes: json_column::<ScopeSet>(row, "clients", "scopes", &id)?,
        audiences: json_column::<Vec<String>>(row, "clients", "audiences", &id)?,
        token_ttl_secs,
        enabled: row.flag("enabled")?,
        secret_hashes: json_column::<Vec<SecretHash>>(row, "clients", "secret_hashes", &id)?,
        sealed_secret: row.opt_bytes("sealed_secret")?,
        jwks: row.opt_text("jwks")?,
        jwks_uri: row.opt_text("jwks_uri")?,
        tls_client_auth: row
            .opt_text("tls_client_auth")?
            .map(|text| serde_json::from_str::<TlsClientAuthMatch>(&text))
            .transpose()
            .map_err(|e| StoreError::corrupt_json("clients.tls_client_auth", &id, &e))?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        token_epoch: u32::try_from(row.int("token_epoch")?)
            .map_err(|_| StoreError::corrupt_field("clients.token_epoch", &id))?,
        dpop_bound_access_tokens: row.flag("dpop_bound_access_tokens")?,
        client_id,
    })
}

/// Decodes a signing key.
pub(crate) fn key_from_row(row: &impl ColumnReader) -> Result<StoredKey, StoreError> {
    let kid = row.text("kid")?;
    Ok(StoredKey {
        kid: Kid::parse(kid.as_str())
            .map_err(|_| StoreError::corrupt_field("signing_keys.kid", &kid))?,
        alg: row.text("alg")?,
        backend: row.text("backend")?,
        sealed_private: row.bytes("sealed_private")?,
        public_jwk: row.text("public_jwk")?,
        state: {
            let state = row.text("state")?;
            StoredKeyState::parse(&state)
                .map_err(|_| StoreError::corrupt_field("signing_keys.state", &state))?
        },
        created_at: row.int("created_at")?,
        state_changed_at: row.int("state_changed_at")?,
    })
}

/// Where an append links, from the chain's tail as read (`(seq, hash)` of the last record, or
/// of the newest archive anchor when the log is empty; `None` for a chain not begun).
pub(crate) fn linker_after(tail: Option<(i64, String)>) -> Result<ChainLinker, StoreError> {
    Ok(match tail {
        None => ChainLinker::after(0, GENESIS_HASH),
        Some((seq, hex)) => {
            let hash = from_hex(&hex)
                .ok_or_else(|| StoreError::corrupt_field("audit_log.hash", &seq.to_string()))?;
            ChainLinker::after(seq, hash)
        }
    })
}

/// The records `events` became at `places`: an append's links, in the events' order.
pub(crate) fn records_at(events: Vec<AuditEvent>, places: Vec<ChainPlace>) -> Vec<AuditRecord> {
    events
        .into_iter()
        .zip(places)
        .map(|(event, place)| place.record(event))
        .collect()
}

/// Decodes an audit record as stored, without judging it: checking the chain is the
/// verifier's job, and it must see an edited record to report it.
pub(crate) fn record_from_row(row: &impl ColumnReader) -> Result<AuditRecord, StoreError> {
    let seq = row.int("seq")?;
    let detail = serde_json::from_str(&row.text("detail")?)
        .map_err(|e| StoreError::corrupt_json("audit_log.detail", &seq.to_string(), &e))?;
    Ok(AuditRecord {
        seq,
        event: AuditEvent {
            at: row.int("at")?,
            actor: row.text("actor")?,
            action: row.text("action")?,
            subject: row.text("subject")?,
            outcome: row.text("outcome")?,
            detail,
        },
        prev_hash: row.text("prev_hash")?,
        hash: row.text("hash")?,
    })
}

/// The columns of `devices`, in the order both backends bind them.
pub(crate) const DEVICE_COLUMNS: &str = "device_id, model, attrs, state, enrollment_secret_mac, \
     enrollment_secret_expires_at, created_at, updated_at";

/// A device's columns that are not stored as they are: the attributes as JSON text, the
/// enrollment secret split into its MAC and deadline.
pub(crate) struct DeviceColumns<'a> {
    pub attrs: String,
    pub secret_mac: Option<&'a str>,
    pub secret_expires_at: Option<i64>,
}

impl<'a> DeviceColumns<'a> {
    pub fn of(device: &'a Device) -> Result<Self, StoreError> {
        let attrs = serde_json::to_string(&device.attrs)
            .map_err(|_| StoreError::corrupt_field("devices.attrs", device.device_id.as_str()))?;
        let secret = device.enrollment_secret.as_ref();
        Ok(Self {
            attrs,
            secret_mac: secret.map(|s| s.mac.as_str()),
            secret_expires_at: secret.and_then(|s| s.expires_at),
        })
    }
}

/// Decodes a device, checking the id, state, attributes and secret columns: the database may
/// have been edited by hand.
pub(crate) fn device_from_row(row: &impl ColumnReader) -> Result<Device, StoreError> {
    let id = row.text("device_id")?;
    let device_id = DeviceId::parse(id.as_str())
        .map_err(|_| StoreError::corrupt_field("devices.device_id", &id))?;
    let state = DeviceState::parse(&row.text("state")?)
        .map_err(|_| StoreError::corrupt_field("devices.state", &id))?;
    let enrollment_secret = match (
        row.opt_text("enrollment_secret_mac")?,
        row.opt_int("enrollment_secret_expires_at")?,
    ) {
        (Some(mac), expires_at) => Some(SecretHash { mac, expires_at }),
        (None, None) => None,
        (None, Some(_)) => {
            return Err(StoreError::corrupt_field(
                "devices.enrollment_secret_expires_at",
                &id,
            ))
        }
    };
    Ok(Device {
        model: row.opt_text("model")?,
        attrs: json_column::<BTreeMap<String, String>>(row, "devices", "attrs", &id)?,
        state,
        enrollment_secret,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        device_id,
    })
}

/// The columns of `device_keys`, in the order both backends bind them.
pub(crate) const DEVICE_KEY_COLUMNS: &str = "device_id, key_id, sealed, created_at, expires_at";

pub(crate) fn device_key_from_row(row: &impl ColumnReader) -> Result<StoredDeviceKey, StoreError> {
    let id = row.text("device_id")?;
    let device_id = DeviceId::parse(id.as_str())
        .map_err(|_| StoreError::corrupt_field("device_keys.device_id", &id))?;
    let key_id = DeviceKeyId::parse(row.text("key_id")?)
        .map_err(|_| StoreError::corrupt_field("device_keys.key_id", &id))?;
    Ok(StoredDeviceKey {
        info: DeviceKeyInfo {
            device_id,
            key_id,
            created_at: row.int("created_at")?,
            expires_at: row.opt_int("expires_at")?,
        },
        sealed: row.bytes("sealed")?,
    })
}

/// The columns of `certificates`, in the order both backends bind them.
pub(crate) const CERTIFICATE_COLUMNS: &str = "serial, device_id, subject, not_before, not_after, \
     sha256, der, revoked_at, revocation_reason";

/// The columns of a CRL entry.
pub(crate) const REVOKED_COLUMNS: &str = "serial, revoked_at, revocation_reason, not_after";

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn serial_column(row: &impl ColumnReader) -> Result<String, StoreError> {
    let serial = row.text("serial")?;
    if !is_lower_hex(&serial) {
        return Err(StoreError::corrupt_field("certificates.serial", &serial));
    }
    Ok(serial)
}

fn reason_from_code(code: i16, serial: &str) -> Result<RevocationReason, StoreError> {
    u8::try_from(code)
        .ok()
        .and_then(RevocationReason::from_code)
        .ok_or_else(|| StoreError::corrupt_field("certificates.revocation_reason", serial))
}

/// The stored code of a reason (RFC 5280 CRLReason).
pub(crate) fn reason_code(reason: RevocationReason) -> i16 {
    i16::from(reason.code())
}

/// Decodes an issued certificate. The revocation time and reason are set together or not at
/// all; anything else is corruption, not "half revoked".
pub(crate) fn certificate_from_row(
    row: &impl ColumnReader,
) -> Result<IssuedCertificate, StoreError> {
    let serial = serial_column(row)?;
    let device_id = row
        .opt_text("device_id")?
        .map(|id| {
            DeviceId::parse(id)
                .map_err(|_| StoreError::corrupt_field("certificates.device_id", &serial))
        })
        .transpose()?;
    let sha256 = row.text("sha256")?;
    if sha256.len() != 64 || !is_lower_hex(&sha256) {
        return Err(StoreError::corrupt_field("certificates.sha256", &serial));
    }
    let (revoked_at, revocation_reason) = match (
        row.opt_int("revoked_at")?,
        row.opt_small_int("revocation_reason")?,
    ) {
        (Some(at), Some(code)) => (Some(at), Some(reason_from_code(code, &serial)?)),
        (None, None) => (None, None),
        _ => {
            return Err(StoreError::corrupt_field(
                "certificates.revocation_reason",
                &serial,
            ))
        }
    };
    Ok(IssuedCertificate {
        device_id,
        subject: row.text("subject")?,
        not_before: row.int("not_before")?,
        not_after: row.int("not_after")?,
        sha256,
        der: row.bytes("der")?,
        revoked_at,
        revocation_reason,
        serial,
    })
}

/// Decodes a CRL entry (`REVOKED_COLUMNS` of a revoked certificate).
pub(crate) fn revoked_from_row(row: &impl ColumnReader) -> Result<RevokedCertificate, StoreError> {
    let serial = serial_column(row)?;
    let code = row
        .opt_small_int("revocation_reason")?
        .ok_or_else(|| StoreError::corrupt_field("certificates.revocation_reason", &serial))?;
    Ok(RevokedCertificate {
        reason: reason_from_code(code, &serial)?,
        revoked_at: row.int("revoked_at")?,
        not_after: row.int("not_after")?,
        serial,
    })
}

/// The columns of `commands`, in the order both backends bind them.
pub(crate) const COMMAND_COLUMNS: &str = "command_id, device_id, name, args, sender, rule, \
     approvals_required, approver, state, created_at, expires_at, seq, signed, queued_at, \
     delivered_at, finished_at, output";

/// A command's columns that are not stored as they are: the arguments and output as JSON
/// text, the approval count as a small integer.
pub(crate) struct CommandColumns {
    pub args: String,
    pub output: Option<String>,
    pub approvals_required: i16,
}

impl CommandColumns {
    pub fn of(command: &CommandRecord) -> Result<Self, StoreError> {
        let id = command.command_id.as_str();
        Ok(Self {
            args: serde_json::to_string(&command.args)
                .map_err(|_| StoreError::corrupt_field("commands.args", id))?,
            output: command_output(command.output.as_ref(), &command.command_id)?,
            approvals_required: i16::from(command.approvals_required),
        })
    }
}

/// A device's reported output as stored: JSON text, or NULL.
pub(crate) fn command_output(
    output: Option<&serde_json::Value>,
    id: &CommandId,
) -> Result<Option<String>, StoreError> {
    output
        .map(serde_json::to_string)
        .transpose()
        .map_err(|_| StoreError::corrupt_field("commands.output", id.as_str()))
}

/// Only a command waiting for its approver is inserted as it is
/// ([`crate::Store::insert_command`]); the others are queued, which numbers and signs them.
pub(crate) fn check_pending_insert(command: &CommandRecord) -> Result<(), StoreError> {
    if command.state == CommandState::PendingApproval
        && command.seq.is_none()
        && command.signed.is_none()
    {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "command '{}' is inserted pending approval, without a number or signature",
            command.command_id
        )))
    }
}

/// A device reports only success or failure ([`crate::Store::record_command_result`]).
pub(crate) fn check_result_state(state: CommandState, id: &CommandId) -> Result<(), StoreError> {
    match state {
        CommandState::Succeeded | CommandState::Failed => Ok(()),
        other => Err(StoreError::Conflict(format!(
            "command '{id}' cannot be finished as {}",
            other.as_str()
        ))),
    }
}

/// A refused command insert: a missing device (the foreign key) is `NotFound`, a duplicate id
/// a `Conflict` naming the command. A clash on `(device_id, seq)` means the device's
/// `command_sequences` row is behind its commands (a hand edit or a partial copy), said so.
pub(crate) fn command_insert_error(err: sqlx::Error, command: &CommandRecord) -> StoreError {
    match err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        other => StoreError::unique_as(other, |message| {
            if message.contains("seq") {
                format!(
                    "the command sequence of device '{}' is behind its commands",
                    command.device_id
                )
            } else {
                format!("command '{}' already exists", command.command_id)
            }
        }),
    }
}

/// A sequence number as read (`command_sequences.last_seq` or `commands.seq`): never below 1.
pub(crate) fn read_seq(seq: i64, column: &str, key: &str) -> Result<u64, StoreError> {
    u64::try_from(seq)
        .ok()
        .filter(|seq| *seq >= 1)
        .ok_or_else(|| StoreError::corrupt_field(column, key))
}

/// Decodes a command, checking its ids, state, counts and JSON again: the database may have
/// been edited by hand.
pub(crate) fn command_from_row(row: &impl ColumnReader) -> Result<CommandRecord, StoreError> {
    let id = row.text("command_id")?;
    let corrupt = |column: &str| StoreError::corrupt_field(column, &id);
    let command_id = CommandId::parse(id.as_str()).map_err(|_| corrupt("commands.command_id"))?;
    let device_id =
        DeviceId::parse(row.text("device_id")?).map_err(|_| corrupt("commands.device_id"))?;
    let sender = ClientId::parse(row.text("sender")?).map_err(|_| corrupt("commands.sender"))?;
    let approver = row
        .opt_text("approver")?
        .map(ClientId::parse)
        .transpose()
        .map_err(|_| corrupt("commands.approver"))?;
    let approvals_required = row
        .opt_small_int("approvals_required")?
        .and_then(|n| u8::try_from(n).ok())
        .ok_or_else(|| corrupt("commands.approvals_required"))?;
    let state = CommandState::parse(&row.text("state")?).map_err(|_| corrupt("commands.state"))?;
    let seq = row
        .opt_int("seq")?
        .map(|seq| read_seq(seq, "commands.seq", &id))
        .transpose()?;
    let output = row
        .opt_text("output")?
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| StoreError::corrupt_json("commands.output", &id, &e))?;
    Ok(CommandRecord {
        device_id,
        name: row.text("name")?,
        args: json_column::<serde_json::Map<String, serde_json::Value>>(
            row, "commands", "args", &id,
        )?,
        sender,
        rule: row.text("rule")?,
        approvals_required,
        approver,
        state,
        created_at: row.int("created_at")?,
        expires_at: row.int("expires_at")?,
        seq,
        signed: row.opt_bytes("signed")?,
        queued_at: row.opt_int("queued_at")?,
        delivered_at: row.opt_int("delivered_at")?,
        finished_at: row.opt_int("finished_at")?,
        output,
        command_id,
    })
}

/// The columns of `update_reports`, in the order both backends bind them.
pub(crate) const UPDATE_REPORT_COLUMNS: &str =
    "device_id, model, release, status, detail, reported_at";

/// A release number as stored: 1..2^63-1. Numbers beyond `i64::MAX` cannot be stored (and
/// release 0 does not exist), so they are refused before the database sees them.
pub(crate) fn release_as_stored(release: u64) -> Result<i64, StoreError> {
    i64::try_from(release)
        .ok()
        .filter(|release| *release >= 1)
        .ok_or_else(|| StoreError::Conflict("release number out of range".to_owned()))
}

/// A release number as read: never below 1.
fn read_release(release: i64, key: &str) -> Result<u64, StoreError> {
    u64::try_from(release)
        .ok()
        .filter(|release| *release >= 1)
        .ok_or_else(|| StoreError::corrupt_field("update_reports.release", key))
}

/// A refused report: the device does not exist (the foreign key) is `NotFound`.
pub(crate) fn update_report_error(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        other => other.into(),
    }
}

/// Decodes a device's report, checking its id, release and status again: the database may
/// have been edited by hand.
pub(crate) fn update_report_from_row(row: &impl ColumnReader) -> Result<UpdateReport, StoreError> {
    let id = row.text("device_id")?;
    let device_id = DeviceId::parse(id.as_str())
        .map_err(|_| StoreError::corrupt_field("update_reports.device_id", &id))?;
    let status = UpdateStatus::parse(&row.text("status")?)
        .map_err(|_| StoreError::corrupt_field("update_reports.status", &id))?;
    Ok(UpdateReport {
        model: row.text("model")?,
        release: read_release(row.int("release")?, &id)?,
        status,
        detail: row.opt_text("detail")?,
        reported_at: row.int("reported_at")?,
        device_id,
    })
}

/// Decodes a model's rollout, `(release, status, devices)` rows of a `GROUP BY release,
/// status`, and orders it by release then status, the order of [`UpdateStatus`] (the life of
/// an update: downloading, installed, failed, refused), not of the status text, so both
/// backends answer alike whatever their collation and the answer is sorted as Rust sorts it.
pub(crate) fn rollout_from_rows(
    model: &str,
    rows: Vec<(i64, String, i64)>,
) -> Result<Vec<(u64, UpdateStatus, u64)>, StoreError> {
    let mut rollout = rows
        .into_iter()
        .map(|(release, status, devices)| {
            let status = UpdateStatus::parse(&status)
                .map_err(|_| StoreError::corrupt_field("update_reports.status", model))?;
            Ok((
                read_release(release, model)?,
                status,
                devices.unsigned_abs(),
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    rollout.sort_unstable();
    Ok(rollout)
}

/// A command as the `commands` table takes it: every column, the number as stored
/// (1..2^63-1, refused otherwise before the database sees it).
pub(crate) struct CommandRow {
    pub columns: CommandColumns,
    pub seq: Option<i64>,
}

impl CommandRow {
    pub fn of(command: &CommandRecord) -> Result<Self, StoreError> {
        let seq = command
            .seq
            .map(|seq| sequence_as_stored(seq, command.device_id.as_str()))
            .transpose()?;
        Ok(Self {
            columns: CommandColumns::of(command)?,
            seq,
        })
    }
}

/// A command sequence number as stored: 1..2^63-1. A device never receives 0, and a number
/// beyond `i64::MAX` cannot be stored, so either is refused naming the device.
pub(crate) fn sequence_as_stored(seq: u64, device: &str) -> Result<i64, StoreError> {
    i64::try_from(seq)
        .ok()
        .filter(|seq| *seq >= 1)
        .ok_or_else(|| {
            StoreError::Conflict(format!(
                "command sequence number {seq} of device '{device}' is out of range"
            ))
        })
}

/// Each device's highest number of a [`crate::Store::raise_command_sequences`] batch, in
/// device id order (the order the rows are locked in), every number checked first.
pub(crate) fn highest_sequences(lasts: &[(DeviceId, u64)]) -> Result<Vec<(&str, i64)>, StoreError> {
    let mut rows = lasts
        .iter()
        .map(|(device, seq)| Ok((device.as_str(), sequence_as_stored(*seq, device.as_str())?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    // Highest first within a device, then keep each device's first row.
    rows.sort_unstable_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)));
    rows.dedup_by(|later, first| later.0 == first.0);
    Ok(rows)
}

/// Decodes a `command_sequences` row, checking the id and number again.
pub(crate) fn command_sequence_from_row(
    device: String,
    last_seq: i64,
) -> Result<(DeviceId, u64), StoreError> {
    let seq = read_seq(last_seq, "command_sequences.last_seq", &device)?;
    let id = DeviceId::parse(device.as_str())
        .map_err(|_| StoreError::corrupt_field("command_sequences.device_id", &device))?;
    Ok((id, seq))
}

#[cfg(test)]
mod update_report_tests {
    use super::*;

    #[test]
    fn a_hand_edited_rollout_row_is_corrupt_without_quoting_it() {
        for row in [
            (1, "s3cr3t-status".to_owned(), 1),
            (0, "installed".to_owned(), 1),
            (-5, "installed".to_owned(), 1),
        ] {
            match rollout_from_rows("cam-v1", vec![row]) {
                Err(StoreError::Corrupt(m)) => {
                    assert!(m.contains("update_reports.") && m.contains("cam-v1"), "{m}");
                    assert!(!m.contains("s3cr3t"), "{m}");
                }
                other => panic!("expected corruption, got {other:?}"),
            }
        }
    }

    #[test]
    fn the_rollout_is_ordered_by_release_number_then_status() {
        let rows = vec![
            (10, "downloading".to_owned(), 1),
            (2, "refused".to_owned(), 3),
            (2, "failed".to_owned(), 4),
            (2, "installed".to_owned(), 5),
        ];
        assert_eq!(
            rollout_from_rows("m", rows).unwrap(),
            [
                (2, UpdateStatus::Installed, 5),
                (2, UpdateStatus::Failed, 4),
                (2, UpdateStatus::Refused, 3),
                (10, UpdateStatus::Downloading, 1),
            ]
        );
    }

    #[test]
    fn only_releases_1_to_i64_max_are_stored() {
        assert_eq!(release_as_stored(1).unwrap(), 1);
        assert_eq!(
            release_as_stored(i64::MAX.unsigned_abs()).unwrap(),
            i64::MAX
        );
        for bad in [0, u64::MAX, 1 << 63] {
            assert!(matches!(
                release_as_stored(bad),
                Err(StoreError::Conflict(m)) if m == "release number out of range"
            ));
        }
    }
}
