//! The `commands` table: commands to devices, from approval through delivery to the device's
//! result, and `command_sequences`, each device's last command number. Queuing takes the
//! number, signs and stores in one `BEGIN IMMEDIATE` transaction (SQLite runs one writer at a
//! time), so numbers are never given twice, a failed signature gives none away, and they are
//! committed in rising order. State changes are conditional updates, so the first delivery
//! and the first result win.

use portcullis_core::command::{CommandId, CommandRecord, CommandState, ResultRecorded};
use portcullis_core::device::DeviceId;
use portcullis_core::UnixTime;
use sqlx::{SqliteConnection, SqlitePool};

use crate::rows::{
    check_pending_insert, check_result_state, command_from_row, command_insert_error,
    command_output, command_sequence_from_row, highest_sequences, read_seq, CommandColumns,
    CommandRow, COMMAND_COLUMNS,
};
use crate::{CommandSigner, StoreError};

pub(super) async fn insert(pool: &SqlitePool, command: &CommandRecord) -> Result<(), StoreError> {
    check_pending_insert(command)?;
    insert_row(&mut *pool.acquire().await?, command).await
}

/// Writes `command` with every column as given (its number range-checked first): a new
/// command pending approval, or one `store copy` imports in whatever state it reached.
async fn insert_row(
    conn: &mut SqliteConnection,
    command: &CommandRecord,
) -> Result<(), StoreError> {
    let row = CommandRow::of(command)?;
    let sql = format!(
        "INSERT INTO commands ({COMMAND_COLUMNS}) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    sqlx::query(&sql)
        .bind(command.command_id.as_str())
        .bind(command.device_id.as_str())
        .bind(command.name.as_str())
        .bind(row.columns.args)
        .bind(command.sender.as_str())
        .bind(command.rule.as_str())
        .bind(row.columns.approvals_required)
        .bind(command.approver.as_ref().map(|a| a.as_str()))
        .bind(command.state.as_str())
        .bind(command.created_at)
        .bind(command.expires_at)
        .bind(row.seq)
        .bind(command.signed.as_deref())
        .bind(command.queued_at)
        .bind(command.delivered_at)
        .bind(command.finished_at)
        .bind(row.columns.output)
        .execute(conn)
        .await
        .map_err(|e| command_insert_error(e, command))?;
    Ok(())
}

pub(super) async fn queue(
    pool: &SqlitePool,
    command: &CommandRecord,
    now: UnixTime,
    sign: &CommandSigner,
) -> Result<Option<CommandRecord>, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let queued = queue_on(&mut tx, command, now, sign).await;
    match queued {
        Ok(Some(record)) => {
            tx.commit().await?;
            Ok(Some(record))
        }
        Ok(None) => {
            tx.rollback().await?;
            Ok(None)
        }
        Err(err) => {
            // The first error is the one to report; a rollback that fails too is retried
            // when the transaction is dropped.
            let _ = tx.rollback().await;
            Err(err)
        }
    }
}

/// The transaction's statements; the caller commits only a `Some`.
async fn queue_on(
    conn: &mut SqliteConnection,
    command: &CommandRecord,
    now: UnixTime,
    sign: &CommandSigner,
) -> Result<Option<CommandRecord>, StoreError> {
    let id = &command.command_id;
    let existing: Option<(String, String, i64)> =
        sqlx::query_as("SELECT device_id, state, expires_at FROM commands WHERE command_id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    if let Some((device, state, expires_at)) = &existing {
        let approvable = device == command.device_id.as_str()
            && state == CommandState::PendingApproval.as_str()
            && *expires_at > now;
        if !approvable {
            return Ok(None);
        }
    }
    // The device's next number; no row when the device does not exist.
    let last_seq: Option<i64> = sqlx::query_scalar(
        "INSERT INTO command_sequences (device_id, last_seq) \
         SELECT device_id, 1 FROM devices WHERE device_id = ? \
         ON CONFLICT (device_id) DO UPDATE SET last_seq = command_sequences.last_seq + 1 \
         RETURNING last_seq",
    )
    .bind(command.device_id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let seq = last_seq.ok_or(StoreError::NotFound)?;
    let signed = sign(read_seq(
        seq,
        "command_sequences.last_seq",
        command.device_id.as_str(),
    )?)
    .map_err(|msg| StoreError::Unavailable(format!("signing command: {msg}")))?;
    let row = if existing.is_some() {
        let sql = format!(
            "UPDATE commands SET state = ?, seq = ?, signed = ?, queued_at = ?, approver = ? \
             WHERE command_id = ? RETURNING {COMMAND_COLUMNS}"
        );
        sqlx::query(&sql)
            .bind(CommandState::Queued.as_str())
            .bind(seq)
            .bind(signed)
            .bind(now)
            .bind(command.approver.as_ref().map(|a| a.as_str()))
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?
    } else {
        let columns = CommandColumns::of(command)?;
        let sql = format!(
            "INSERT INTO commands ({COMMAND_COLUMNS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL) \
             ON CONFLICT (command_id) DO NOTHING RETURNING {COMMAND_COLUMNS}"
        );
        sqlx::query(&sql)
            .bind(id.as_str())
            .bind(command.device_id.as_str())
            .bind(command.name.as_str())
            .bind(columns.args)
            .bind(command.sender.as_str())
            .bind(command.rule.as_str())
            .bind(columns.approvals_required)
            .bind(command.approver.as_ref().map(|a| a.as_str()))
            .bind(CommandState::Queued.as_str())
            .bind(command.created_at)
            .bind(command.expires_at)
            .bind(seq)
            .bind(signed)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| command_insert_error(e, command))?
    };
    row.as_ref().map(command_from_row).transpose()
}

pub(super) async fn get(
    pool: &SqlitePool,
    id: &CommandId,
) -> Result<Option<CommandRecord>, StoreError> {
    let sql = format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE command_id = ?");
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(command_from_row).transpose()
}

/// Keyset pagination by id; ids are never empty, so `''` sorts before every command.
pub(super) async fn list(
    pool: &SqlitePool,
    device: Option<&DeviceId>,
    after: Option<&CommandId>,
    limit: u32,
) -> Result<Vec<CommandRecord>, StoreError> {
    let after = after.map_or("", CommandId::as_str);
    let rows = match device {
        Some(device) => {
            let sql = format!(
                "SELECT {COMMAND_COLUMNS} FROM commands WHERE device_id = ? AND command_id > ? \
                 ORDER BY command_id LIMIT ?"
            );
            sqlx::query(&sql)
                .bind(device.as_str())
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        }
        None => {
            let sql = format!(
                "SELECT {COMMAND_COLUMNS} FROM commands WHERE command_id > ? \
                 ORDER BY command_id LIMIT ?"
            );
            sqlx::query(&sql)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        }
    };
    rows.iter().map(command_from_row).collect()
}

pub(super) async fn deliverable(
    pool: &SqlitePool,
    device: &DeviceId,
    now: UnixTime,
    limit: u32,
) -> Result<Vec<CommandRecord>, StoreError> {
    let sql = format!(
        "SELECT {COMMAND_COLUMNS} FROM commands \
         WHERE device_id = ? AND state = ? AND expires_at > ? ORDER BY seq LIMIT ?"
    );
    let rows = sqlx::query(&sql)
        .bind(device.as_str())
        .bind(CommandState::Queued.as_str())
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(command_from_row).collect()
}

pub(super) async fn mark_delivered(
    pool: &SqlitePool,
    id: &CommandId,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE commands SET state = ?, delivered_at = ? \
         WHERE command_id = ? AND state = ? AND expires_at > ?",
    )
    .bind(CommandState::Delivered.as_str())
    .bind(now)
    .bind(id.as_str())
    .bind(CommandState::Queued.as_str())
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(done == 1)
}

pub(super) async fn record_result(
    pool: &SqlitePool,
    id: &CommandId,
    device: &DeviceId,
    state: CommandState,
    output: Option<&serde_json::Value>,
    now: UnixTime,
) -> Result<ResultRecorded, StoreError> {
    check_result_state(state, id)?;
    let output = command_output(output, id)?;
    let mut tx = pool.begin().await?;
    // The answer shows that the device had the command: one still queued is delivered now.
    let delivered_now = sqlx::query(
        "UPDATE commands SET state = ?, delivered_at = ? \
         WHERE command_id = ? AND device_id = ? AND state = ?",
    )
    .bind(CommandState::Delivered.as_str())
    .bind(now)
    .bind(id.as_str())
    .bind(device.as_str())
    .bind(CommandState::Queued.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    let done = sqlx::query(
        "UPDATE commands SET state = ?, output = ?, finished_at = ? \
         WHERE command_id = ? AND device_id = ? AND state = ?",
    )
    .bind(state.as_str())
    .bind(output)
    .bind(now)
    .bind(id.as_str())
    .bind(device.as_str())
    .bind(CommandState::Delivered.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if done != 1 {
        return Ok(ResultRecorded::NotWaiting);
    }
    tx.commit().await?;
    Ok(if delivered_now {
        ResultRecorded::RecordedAndDelivered
    } else {
        ResultRecorded::Recorded
    })
}

pub(super) async fn count_recent(
    pool: &SqlitePool,
    device: &DeviceId,
    rule: &str,
    since: UnixTime,
) -> Result<u64, StoreError> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM commands WHERE device_id = ? AND rule = ? AND created_at >= ?",
    )
    .bind(device.as_str())
    .bind(rule)
    .bind(since)
    .fetch_one(pool)
    .await?;
    Ok(count.unsigned_abs())
}

/// Every column as given, one statement per command in one transaction: the first refused
/// command rolls back the whole batch.
pub(super) async fn import(
    pool: &SqlitePool,
    commands: &[CommandRecord],
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for command in commands {
        insert_row(&mut tx, command).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Keyset pagination by device id; ids are never empty, so `''` sorts before every device.
pub(super) async fn list_sequences(
    pool: &SqlitePool,
    after: Option<&DeviceId>,
    limit: u32,
) -> Result<Vec<(DeviceId, u64)>, StoreError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT device_id, last_seq FROM command_sequences WHERE device_id > ? \
         ORDER BY device_id LIMIT ?",
    )
    .bind(after.map_or("", DeviceId::as_str))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(device, seq)| command_sequence_from_row(device, seq))
        .collect()
}

/// One upsert per device keeping the higher number, in one transaction.
pub(super) async fn raise_sequences(
    pool: &SqlitePool,
    lasts: &[(DeviceId, u64)],
) -> Result<(), StoreError> {
    let rows = highest_sequences(lasts)?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    for (device, seq) in rows {
        sqlx::query(
            "INSERT INTO command_sequences (device_id, last_seq) VALUES (?, ?) \
             ON CONFLICT (device_id) DO UPDATE \
             SET last_seq = MAX(command_sequences.last_seq, excluded.last_seq)",
        )
        .bind(device)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
