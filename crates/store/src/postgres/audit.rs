//! The `audit_log` table: the append-only hash chain of everything that happened, shared by
//! every node.

use portcullis_core::audit::{to_hex, AuditEvent, AuditRecord, ChainLink, ChainLinker};
use sqlx::{PgConnection, PgPool};

use crate::rows::{linker_after, record_from_row, records_at};
use crate::{AuditArchiveAnchor, StoreError};

const COLUMNS: &str = "seq, at, actor, action, subject, outcome, detail, prev_hash, hash";

/// First key of the appenders' advisory lock: "PCAU" (Portcullis audit), so it cannot collide
/// with another application's single-key locks. The second key is the `audit_log` table's oid,
/// which makes the lock per schema: test runs in separate schemas do not queue on each other.
const AUDIT_LOCK_NAMESPACE: i32 = 0x5043_4155;

/// Rows per INSERT statement; the audit writer's batches (up to 4096) fit in one.
const ROWS_PER_STATEMENT: usize = 4096;

/// Links `events` to the last stored record and inserts them in one transaction, holding a
/// transaction-scoped advisory lock from before the read of the chain's tail until commit.
/// Every appender on every node takes the same lock, so no two can link to the same record;
/// readers take no lock and never wait. (Under READ COMMITTED each statement sees what was
/// committed before it started, so the tail read after the lock sees the previous holder's
/// rows.) Returns the records.
pub(super) async fn append(
    pool: &PgPool,
    events: Vec<AuditEvent>,
) -> Result<Vec<AuditRecord>, StoreError> {
    let mut places = Vec::with_capacity(events.len());
    append_with(pool, &events, |link| places.push(link.place)).await?;
    Ok(records_at(events, places))
}

/// [`append`] of a batch the caller keeps (the audit writer, for a retry), returning nothing:
/// the columns are filled from the borrowed events and their links, without a copy of the
/// batch or records nobody reads.
pub(super) async fn append_batch(pool: &PgPool, events: &[AuditEvent]) -> Result<(), StoreError> {
    append_with(pool, events, |_| {}).await
}

async fn append_with(
    pool: &PgPool,
    events: &[AuditEvent],
    mut linked: impl FnMut(&ChainLink),
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, 'audit_log'::regclass::oid::int)")
        .bind(AUDIT_LOCK_NAMESPACE)
        .execute(&mut *tx)
        .await?;
    let mut linker = tail(&mut tx).await?;
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let links: Vec<ChainLink> = chunk
            .iter()
            .map(|event| {
                let link = linker.link(event);
                linked(&link);
                link
            })
            .collect();
        insert(&mut tx, chunk, links).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Where the next record links: after the last stored record, or after the newest archive
/// anchor when the log is empty (a copied archived chain), or at the genesis.
async fn tail(tx: &mut PgConnection) -> Result<ChainLinker, StoreError> {
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

/// One statement for the whole chunk, one array per column; each link's detail is the exact
/// JSON text its hash covered.
async fn insert(
    conn: &mut PgConnection,
    events: &[AuditEvent],
    links: Vec<ChainLink>,
) -> Result<(), StoreError> {
    let mut seq = Vec::with_capacity(events.len());
    let mut at = Vec::with_capacity(events.len());
    let mut actor = Vec::with_capacity(events.len());
    let mut action = Vec::with_capacity(events.len());
    let mut subject = Vec::with_capacity(events.len());
    let mut outcome = Vec::with_capacity(events.len());
    let mut detail = Vec::with_capacity(events.len());
    let mut prev_hash = Vec::with_capacity(events.len());
    let mut hash = Vec::with_capacity(events.len());
    for (e, link) in events.iter().zip(links) {
        seq.push(link.place.seq);
        at.push(e.at);
        actor.push(e.actor.as_str());
        action.push(e.action.as_str());
        subject.push(e.subject.as_str());
        outcome.push(e.outcome.as_str());
        prev_hash.push(to_hex(&link.place.prev_hash));
        hash.push(to_hex(&link.place.hash));
        detail.push(link.detail);
    }
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, subject, outcome, detail, prev_hash, \
         hash) SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], \
         $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])",
    )
    .bind(seq)
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(subject)
    .bind(outcome)
    .bind(detail)
    .bind(prev_hash)
    .bind(hash)
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn list_ascending(
    pool: &PgPool,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<AuditRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
    let rows = sqlx::query(&sql)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(record_from_row).collect()
}

pub(super) async fn list_descending(
    pool: &PgPool,
    before_seq: i64,
    limit: u32,
) -> Result<Vec<AuditRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq < $1 ORDER BY seq DESC LIMIT $2");
    let rows = sqlx::query(&sql)
        .bind(before_seq)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(record_from_row).collect()
}

/// Records `anchor` and deletes the records it covers, if the live chain starts at
/// `anchor.first_seq` and record `anchor.seq` still has `anchor.hash`.
pub(super) async fn archive(pool: &PgPool, anchor: &AuditArchiveAnchor) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
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
    let hash: Option<(String,)> = sqlx::query_as("SELECT hash FROM audit_log WHERE seq = $1")
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
    let deleted = sqlx::query("DELETE FROM audit_log WHERE seq <= $1")
        .bind(anchor.seq)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(deleted)
}

/// Records `anchor` if the audit log is empty (the start of a copied archived chain).
pub(super) async fn import_anchor(
    pool: &PgPool,
    anchor: &AuditArchiveAnchor,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, 'audit_log'::regclass::oid::int)")
        .bind(AUDIT_LOCK_NAMESPACE)
        .execute(&mut *tx)
        .await?;
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
    conn: &mut PgConnection,
    anchor: &AuditArchiveAnchor,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_archives (anchor_seq, anchor_hash, first_seq, checkpoint_seq, \
         segment_sha256, archived_at) VALUES ($1, $2, $3, $4, $5, $6)",
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
pub(super) async fn anchor(pool: &PgPool) -> Result<Option<AuditArchiveAnchor>, StoreError> {
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
