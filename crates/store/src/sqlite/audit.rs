//! The `audit_log` table: the append-only hash chain of everything that happened.

use portcullis_core::audit::{to_hex, AuditEvent, AuditRecord, ChainLink, ChainLinker};
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, SqliteConnection, SqlitePool};

use super::bulk_insert::BulkInsert;
use crate::rows::{linker_after, record_from_row, records_at};
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
/// appender, so two writers can never both link to the same record. Returns the records.
pub(super) async fn append(
    pool: &SqlitePool,
    events: Vec<AuditEvent>,
) -> Result<Vec<AuditRecord>, StoreError> {
    let mut places = Vec::with_capacity(events.len());
    append_with(pool, &events, |link| places.push(link.place)).await?;
    Ok(records_at(events, places))
}

/// [`append`] of a batch the caller keeps (the audit writer, for a retry), returning nothing:
/// each statement's rows are linked and bound straight from the events, so a batch of
/// hundreds is neither copied nor turned into records nobody reads, and the texts made for
/// it (detail, hashes) move into the statement instead of being copied once more.
pub(super) async fn append_batch(
    pool: &SqlitePool,
    events: &[AuditEvent],
) -> Result<(), StoreError> {
    append_with(pool, events, |_| {}).await
}

async fn append_with(
    pool: &SqlitePool,
    events: &[AuditEvent],
    mut linked: impl FnMut(&ChainLink),
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut linker = tail(&mut tx).await?;
    for chunk in INSERT.chunks(events) {
        let mut args = INSERT.arguments_for(chunk.len());
        for event in chunk {
            let link = linker.link(event);
            linked(&link);
            bind_record(&mut args, event, link)?;
        }
        INSERT.execute(&mut tx, chunk.len(), args).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Where the next record links: after the last stored record, or after the newest archive
/// anchor when the log is empty (a copied archived chain), or at the genesis.
async fn tail(tx: &mut SqliteConnection) -> Result<ChainLinker, StoreError> {
    let tail: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    let tail = match tail {
        Some(tail) => Some(tail),
        None => sqlx::query_as(
            "SELECT anchor_seq, anchor_hash FROM audit_archives ORDER BY anchor_seq DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?,
    };
    linker_after(tail)
}

/// Adds every column of one record in `COLUMNS` order; the detail is the exact JSON text the
/// chain hash covered.
fn bind_record<'a>(
    args: &mut SqliteArguments<'a>,
    e: &'a AuditEvent,
    link: ChainLink,
) -> Result<(), StoreError> {
    let place = link.place;
    let bound = (|| {
        args.add(place.seq)?;
        args.add(e.at)?;
        args.add(e.actor.as_str())?;
        args.add(e.action.as_str())?;
        args.add(e.subject.as_str())?;
        args.add(e.outcome.as_str())?;
        args.add(link.detail)?;
        args.add(to_hex(&place.prev_hash))?;
        args.add(to_hex(&place.hash))
    })();
    bound.map_err(|_| StoreError::corrupt_field("audit_log row", &place.seq.to_string()))
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
