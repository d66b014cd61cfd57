//! The `audit_log` table: the append-only hash chain of everything that happened.

use portcullis_core::audit::{from_hex, link_with_details, AuditEvent, AuditRecord, GENESIS_HASH};
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, SqliteConnection, SqlitePool};

use super::bulk_insert::BulkInsert;
use crate::rows::record_from_row;
use crate::{AuditArchiveAnchor, StoreError};

const COLUMNS: &str = "seq, at, actor, action, subject, outcome, detail, prev_hash, hash";

const INSERT: BulkInsert = BulkInsert {
    table: "audit_log",
    columns: COLUMNS,
    column_count: 9,
    suffix: "",
};

/// Links `events` to the last stored record and inserts them, all in one `BEGIN IMMEDIATE`
/// transaction: the read of the chain's tail and the insert cannot interleave with another
/// appender, so two writers can never both link to the same record.
pub(super) async fn append(
    pool: &SqlitePool,
    events: Vec<AuditEvent>,
) -> Result<Vec<AuditRecord>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let tail: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    // An empty log continues from the newest anchor (a copied archived chain).
    let tail = match tail {
        Some(tail) => Some(tail),
        None => sqlx::query_as(
            "SELECT anchor_seq, anchor_hash FROM audit_archives ORDER BY anchor_seq DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?,
    };
    let (last_seq, last_hash) = match tail {
        None => (0, GENESIS_HASH),
        Some((seq, hex)) => {
            let hash = from_hex(&hex)
                .ok_or_else(|| StoreError::corrupt_field("audit_log.hash", &seq.to_string()))?;
            (seq, hash)
        }
    };
    let (records, details) = link_with_details(last_seq, last_hash, events);
    let rows: Vec<(&AuditRecord, &str)> = records
        .iter()
        .zip(details.iter().map(String::as_str))
        .collect();
    INSERT.run(&mut tx, &rows, bind_record).await?;
    tx.commit().await?;
    Ok(records)
}

/// Adds every column of `record` in `COLUMNS` order; `detail` is stored as the exact JSON text
/// the chain hash covered.
fn bind_record<'a>(
    args: &mut SqliteArguments<'a>,
    (record, detail): &'a (&'a AuditRecord, &'a str),
) -> Result<(), StoreError> {
    let e = &record.event;
    let bound = (|| {
        args.add(record.seq)?;
        args.add(e.at)?;
        args.add(e.actor.as_str())?;
        args.add(e.action.as_str())?;
        args.add(e.subject.as_str())?;
        args.add(e.outcome.as_str())?;
        args.add(*detail)?;
        args.add(record.prev_hash.as_str())?;
        args.add(record.hash.as_str())
    })();
    bound.map_err(|_| StoreError::corrupt_field("audit_log row", &record.seq.to_string()))
}

pub(super) async fn list_ascending(
    pool: &SqlitePool,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<AuditRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?");
    let rows = sqlx::query(&sql)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(record_from_row).collect()
}

pub(super) async fn list_descending(
    pool: &SqlitePool,
    before_seq: i64,
    limit: u32,
) -> Result<Vec<AuditRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq < ? ORDER BY seq DESC LIMIT ?");
    let rows = sqlx::query(&sql)
        .bind(before_seq)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(record_from_row).collect()
}

/// Records `anchor` and deletes the records it covers, if the live chain starts at
/// `anchor.first_seq` and record `anchor.seq` still has `anchor.hash`.
pub(super) async fn archive(
    pool: &SqlitePool,
    anchor: &AuditArchiveAnchor,
) -> Result<u64, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let first: Option<(i64,)> = sqlx::query_as("SELECT MIN(seq) FROM audit_log")
        .fetch_optional(&mut *tx)
        .await?;
    let first = first.map(|(seq,)| seq);
    if first != Some(anchor.first_seq) {
        return Err(StoreError::Conflict(format!(
            "the live audit chain starts at {first:?}, not at {}: archive from its start",
            anchor.first_seq
        )));
    }
    let hash: Option<(String,)> = sqlx::query_as("SELECT hash FROM audit_log WHERE seq = ?")
        .bind(anchor.seq)
        .fetch_optional(&mut *tx)
        .await?;
    if hash.as_ref().map(|(h,)| h.as_str()) != Some(anchor.hash.as_str()) {
        return Err(StoreError::Conflict(format!(
            "audit record {} is not the one the archive segment ends with",
            anchor.seq
        )));
    }
    insert_anchor(&mut tx, anchor).await?;
    let deleted = sqlx::query("DELETE FROM audit_log WHERE seq <= ?")
        .bind(anchor.seq)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(deleted)
}

/// Records `anchor` if the audit log is empty (the start of a copied archived chain).
pub(super) async fn import_anchor(
    pool: &SqlitePool,
    anchor: &AuditArchiveAnchor,
) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let any: Option<(i64,)> = sqlx::query_as("SELECT seq FROM audit_log LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    if any.is_some() {
        return Err(StoreError::audit_log_not_empty());
    }
    insert_anchor(&mut tx, anchor).await?;
    tx.commit().await?;
    Ok(())
}

async fn insert_anchor(
    conn: &mut SqliteConnection,
    anchor: &AuditArchiveAnchor,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_archives (anchor_seq, anchor_hash, first_seq, checkpoint_seq, \
         segment_sha256, archived_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(anchor.seq)
    .bind(&anchor.hash)
    .bind(anchor.first_seq)
    .bind(anchor.checkpoint_seq)
    .bind(&anchor.segment_sha256)
    .bind(anchor.archived_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The newest archive anchor.
pub(super) async fn anchor(pool: &SqlitePool) -> Result<Option<AuditArchiveAnchor>, StoreError> {
    let row: Option<(i64, String, i64, i64, String, i64)> = sqlx::query_as(
        "SELECT anchor_seq, anchor_hash, first_seq, checkpoint_seq, segment_sha256, archived_at \
         FROM audit_archives ORDER BY anchor_seq DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(
        |(seq, hash, first_seq, checkpoint_seq, segment_sha256, archived_at)| AuditArchiveAnchor {
            seq,
            hash,
            first_seq,
            checkpoint_seq,
            segment_sha256,
            archived_at,
        },
    ))
}
