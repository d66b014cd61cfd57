//! The `commands` table: commands to devices, from approval through delivery to the device's
//! result, and `command_sequences`, each device's last command number. Queuing takes the
//! number (an upsert whose row lock is held until commit, so two nodes never give one number
//! twice and numbers are committed in rising order), signs and stores in one transaction; a
//! failed signature rolls back and gives no number away. Queuing announces `command:<device
//! id>` in the writing statement, so the node holding the device's connection or long poll
//! hears it exactly when it commits. State changes are conditional updates, so the first
//! delivery and the first result win.

use portcullis_core::command::{CommandId, CommandRecord, CommandState, ResultRecorded};
use portcullis_core::device::DeviceId;
use portcullis_core::UnixTime;
use sqlx::{PgConnection, PgPool};

use crate::rows::{
    check_pending_insert, check_result_state, command_from_row, command_insert_error,
    command_output, command_sequence_from_row, highest_sequences, read_seq, CommandColumns,
    CommandRow, COMMAND_COLUMNS,
};
use crate::{CommandSigner, StoreError};

pub(super) async fn insert(pool: &PgPool, command: &CommandRecord) -> Result<(), StoreError> {
    check_pending_insert(command)?;
    insert_row(&mut *pool.acquire().await?, command).await
}

/// Writes `command` with every column as given (its number range-checked first): a new
/// command pending approval, or one `store copy` imports in whatever state it reached.
async fn insert_row(conn: &mut PgConnection, command: &CommandRecord) -> Result<(), StoreError> {
    let row = CommandRow::of(command)?;
    let sql = format!(
        "INSERT INTO commands ({COMMAND_COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
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
    pool: &PgPool,
    command: &CommandRecord,
    now: UnixTime,
    sign: &CommandSigner,
) -> Result<Option<CommandRecord>, StoreError> {
    let mut tx = pool.begin().await?;
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
    conn: &mut PgConnection,
    command: &CommandRecord,
    now: UnixTime,
    sign: &CommandSigner,
) -> Result<Option<CommandRecord>, StoreError> {
    let id = &command.command_id;
    let existing: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT device_id, state, expires_at FROM commands WHERE command_id = $1 FOR UPDATE",
    )
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
         SELECT device_id, 1 FROM devices WHERE device_id = $1 \
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
            "WITH written AS (UPDATE commands \
             SET state = $1, seq = $2, signed = $3, queued_at = $4, approver = $5 \
             WHERE command_id = $6 RETURNING {COMMAND_COLUMNS}) \
             SELECT written.*, portcullis_notify_change('command', device_id) AS announced \
             FROM written"
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
            "WITH written AS (INSERT INTO commands ({COMMAND_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, NULL, NULL) \
             ON CONFLICT (command_id) DO NOTHING RETURNING {COMMAND_COLUMNS}) \
             SELECT written.*, portcullis_notify_change('command', device_id) AS announced \
             FROM written"
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
    pool: &PgPool,
    id: &CommandId,
) -> Result<Option<CommandRecord>, StoreError> {
    let sql = format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE command_id = $1");
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(command_from_row).transpose()
}

/// Keyset pagination by id (`COLLATE "C"`: byte order, as on SQLite); ids are never empty, so
/// `''` sorts before every command.
pub(super) async fn list(
    pool: &PgPool,
    device: Option<&DeviceId>,
    after: Option<&CommandId>,
    limit: u32,
) -> Result<Vec<CommandRecord>, StoreError> {
    let after = after.map_or("", CommandId::as_str);
    let rows = match device {
        Some(device) => {
            let sql = format!(
                "SELECT {COMMAND_COLUMNS} FROM commands WHERE device_id = $1 AND command_id > $2 \
                 ORDER BY command_id LIMIT $3"
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
                "SELECT {COMMAND_COLUMNS} FROM commands WHERE command_id > $1 \
                 ORDER BY command_id LIMIT $2"
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
    pool: &PgPool,
    device: &DeviceId,
    now: UnixTime,
    limit: u32,
) -> Result<Vec<CommandRecord>, StoreError> {
    let sql = format!(
        "SELECT {COMMAND_COLUMNS} FROM commands \
         WHERE device_id = $1 AND state = $2 AND expires_at > $3 ORDER BY seq LIMIT $4"
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
    pool: &PgPool,
    id: &CommandId,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE commands SET state = $1, delivered_at = $2 \
         WHERE command_id = $3 AND state = $4 AND expires_at > $2",
    )
    .bind(CommandState::Delivered.as_str())
    .bind(now)
    .bind(id.as_str())
    .bind(CommandState::Queued.as_str())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(done == 1)
}

pub(super) async fn record_result(
    pool: &PgPool,
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
        "UPDATE commands SET state = $1, delivered_at = $2 \
         WHERE command_id = $3 AND device_id = $4 AND state = $5",
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
        "UPDATE commands SET state = $1, output = $2, finished_at = $3 \
         WHERE command_id = $4 AND device_id = $5 AND state = $6",
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
    pool: &PgPool,
    device: &DeviceId,
    rule: &str,
    since: UnixTime,
) -> Result<u64, StoreError> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM commands WHERE device_id = $1 AND rule = $2 AND created_at >= $3",
    )
    .bind(device.as_str())
    .bind(rule)
    .bind(since)
    .fetch_one(pool)
    .await?;
    Ok(count.unsigned_abs())
}

/// Every column as given, one statement per command in one transaction: the first refused
/// command rolls back the whole batch. Announces nothing: no node runs on a store being
/// filled by `store copy`.
pub(super) async fn import(pool: &PgPool, commands: &[CommandRecord]) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for command in commands {
        insert_row(&mut tx, command).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Keyset pagination by device id (`COLLATE "C"`: byte order, as on SQLite); ids are never
/// empty, so `''` sorts before every device.
pub(super) async fn list_sequences(
    pool: &PgPool,
    after: Option<&DeviceId>,
    limit: u32,
) -> Result<Vec<(DeviceId, u64)>, StoreError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT device_id, last_seq FROM command_sequences WHERE device_id > $1 \
         ORDER BY device_id LIMIT $2",
    )
    .bind(after.map_or("", DeviceId::as_str))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(device, seq)| command_sequence_from_row(device, seq))
        .collect()
}

/// One upsert for the batch keeping the higher number; rows are locked in device id order,
/// as a queuing transaction locks one, so the two never deadlock.
pub(super) async fn raise_sequences(
    pool: &PgPool,
    lasts: &[(DeviceId, u64)],
) -> Result<(), StoreError> {
    let rows = highest_sequences(lasts)?;
    if rows.is_empty() {
        return Ok(());
    }
    let (ids, seqs): (Vec<&str>, Vec<i64>) = rows.into_iter().unzip();
    sqlx::query(
        "INSERT INTO command_sequences (device_id, last_seq) \
         SELECT * FROM unnest($1::text[], $2::bigint[]) \
         ON CONFLICT (device_id) DO UPDATE \
         SET last_seq = GREATEST(command_sequences.last_seq, excluded.last_seq)",
    )
    .bind(&ids)
    .bind(&seqs)
    .execute(pool)
    .await?;
    Ok(())
}
