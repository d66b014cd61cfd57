//! Attack detection's shared state on PostgreSQL, where every node adds its signals to the
//! same counters (`detection_counts`) and the first node to decide an incident raises its one
//! alert. A batch is one transaction of two statements: one upsert of all its rows, whose row
//! locks serialise two nodes adding to one counter (the later sees the earlier's count), then
//! one read of every increment's totals.

use sqlx::PgPool;

use crate::{
    detection_count, detection_rows, AlertAck, DetectionIncrement, DetectionTotals, StoreError,
    StoredAlert,
};

const ALERT_COLUMNS: &str = "id, rule, raised_at, state, detail, acked_by, acked_at";

type AlertRow = (
    String,
    String,
    i64,
    String,
    String,
    Option<String>,
    Option<i64>,
);

/// Rows are upserted in (key, bucket) order (`detection_rows` sorts them, `ORDER BY ord`
/// keeps that order), so two nodes' batches lock shared rows in the same order and cannot
/// deadlock. A sum past `i64::MAX` stays at `i64::MAX`. The totals are read in the same
/// transaction: this batch's rows plus everything other nodes had committed.
pub(super) async fn add_counts(
    pool: &PgPool,
    increments: &[DetectionIncrement],
) -> Result<Vec<DetectionTotals>, StoreError> {
    if increments.is_empty() {
        return Ok(Vec::new());
    }
    let rows = detection_rows(increments);
    let mut tx = pool.begin().await?;
    if !rows.is_empty() {
        let mut keys = Vec::with_capacity(rows.len());
        let mut groups = Vec::with_capacity(rows.len());
        let mut buckets = Vec::with_capacity(rows.len());
        let mut counts = Vec::with_capacity(rows.len());
        for (key, group, bucket, count) in rows {
            keys.push(key);
            groups.push(group);
            buckets.push(bucket);
            counts.push(count);
        }
        sqlx::query(
            "INSERT INTO detection_counts (key, grp, bucket, count) \
             SELECT key, grp, bucket, count \
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) \
                  WITH ORDINALITY AS u(key, grp, bucket, count, ord) \
             ORDER BY ord \
             ON CONFLICT (key, bucket) DO UPDATE SET count = CASE \
             WHEN detection_counts.count > 9223372036854775807 - EXCLUDED.count \
             THEN 9223372036854775807 ELSE detection_counts.count + EXCLUDED.count END",
        )
        .bind(&keys)
        .bind(&groups)
        .bind(&buckets)
        .bind(&counts)
        .execute(&mut *tx)
        .await?;
    }
    let keys: Vec<&str> = increments.iter().map(|i| i.key.as_str()).collect();
    let groups: Vec<&str> = increments.iter().map(|i| i.group.as_str()).collect();
    let windows: Vec<i64> = increments.iter().map(|i| i.window_from).collect();
    // SUM over BIGINT is NUMERIC: clamped before the cast, it cannot overflow. (COALESCE
    // first: LEAST ignores a NULL, the SUM of no rows.)
    let totals: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT q.ord, \
           (SELECT LEAST(COALESCE(SUM(c.count), 0), 9223372036854775807)::bigint \
            FROM detection_counts c \
            WHERE c.key = q.key AND c.bucket >= q.window_from), \
           (SELECT COUNT(DISTINCT c.key) FROM detection_counts c \
            WHERE c.grp = q.grp AND c.bucket >= q.window_from AND c.count > 0) \
         FROM unnest($1::text[], $2::text[], $3::bigint[]) \
              WITH ORDINALITY AS q(key, grp, window_from, ord) \
         ORDER BY q.ord",
    )
    .bind(&keys)
    .bind(&groups)
    .bind(&windows)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    if totals.len() != increments.len() {
        return Err(StoreError::Corrupt(format!(
            "detection_counts: {} totals for {} increments",
            totals.len(),
            increments.len()
        )));
    }
    Ok(totals
        .into_iter()
        .map(|(_, total, distinct)| DetectionTotals {
            total: detection_count(total),
            distinct_in_group: detection_count(distinct),
        })
        .collect())
}

pub(super) async fn purge_counts(pool: &PgPool, before: i64) -> Result<u64, StoreError> {
    Ok(
        sqlx::query("DELETE FROM detection_counts WHERE bucket < $1")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// Of two nodes inserting one incident at once, the second waits for the first to commit and
/// then inserts nothing: exactly one gets `true`.
pub(super) async fn insert_alert(pool: &PgPool, alert: &StoredAlert) -> Result<bool, StoreError> {
    let sql = format!(
        "INSERT INTO alerts ({ALERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (id) DO NOTHING"
    );
    let inserted = sqlx::query(&sql)
        .bind(&alert.id)
        .bind(&alert.rule)
        .bind(alert.raised_at)
        .bind(&alert.state)
        .bind(&alert.detail)
        .bind(alert.acked_by.as_deref())
        .bind(alert.acked_at)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(inserted == 1)
}

pub(super) async fn list_alerts(
    pool: &PgPool,
    state: Option<&str>,
    before: Option<(i64, &str)>,
    limit: u32,
) -> Result<Vec<StoredAlert>, StoreError> {
    let mut conditions = Vec::new();
    let mut next = 1;
    if state.is_some() {
        conditions.push(format!("state = ${next}"));
        next += 1;
    }
    if before.is_some() {
        conditions.push(format!("(raised_at, id) < (${next}, ${})", next + 1));
        next += 2;
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {ALERT_COLUMNS} FROM alerts {filter} \
         ORDER BY raised_at DESC, id DESC LIMIT ${next}"
    );
    let mut query = sqlx::query_as::<_, AlertRow>(&sql);
    if let Some(state) = state {
        query = query.bind(state);
    }
    if let Some((raised_at, id)) = before {
        query = query.bind(raised_at).bind(id);
    }
    let rows = query.bind(i64::from(limit)).fetch_all(pool).await?;
    Ok(rows.into_iter().map(alert_from_row).collect())
}

pub(super) async fn get_alert(pool: &PgPool, id: &str) -> Result<Option<StoredAlert>, StoreError> {
    let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1");
    let row: Option<AlertRow> = sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?;
    Ok(row.map(alert_from_row))
}

/// Acknowledges the alert if it is open, and answers whether it exists, in one statement: the
/// `EXISTS` reads the table as it was before the update. Of two nodes acknowledging at once,
/// the second waits on the row lock, finds the alert no longer open and changes nothing: the
/// first acknowledgement stays.
pub(super) async fn ack_alert(
    pool: &PgPool,
    id: &str,
    by: &str,
    at: i64,
) -> Result<AlertAck, StoreError> {
    let (acked, exists): (bool, bool) = sqlx::query_as(
        "WITH acked AS (\
           UPDATE alerts SET state = 'acknowledged', acked_by = $2, acked_at = $3 \
           WHERE id = $1 AND state = 'open' RETURNING 1) \
         SELECT EXISTS (SELECT 1 FROM acked), EXISTS (SELECT 1 FROM alerts WHERE id = $1)",
    )
    .bind(id)
    .bind(by)
    .bind(at)
    .fetch_one(pool)
    .await?;
    Ok(match (acked, exists) {
        (true, _) => AlertAck::Acknowledged,
        (false, true) => AlertAck::AlreadyAcknowledged,
        (false, false) => AlertAck::NoSuchAlert,
    })
}

fn alert_from_row(
    (id, rule, raised_at, state, detail, acked_by, acked_at): AlertRow,
) -> StoredAlert {
    StoredAlert {
        id,
        rule,
        raised_at,
        state,
        detail,
        acked_by,
        acked_at,
    }
}

pub(super) async fn set_alert_detail(
    pool: &PgPool,
    id: &str,
    detail: &str,
) -> Result<bool, StoreError> {
    let updated = sqlx::query("UPDATE alerts SET detail = $1 WHERE id = $2")
        .bind(detail)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(updated == 1)
}
