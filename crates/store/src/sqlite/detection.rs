//! Attack detection's shared state on SQLite: the counters (`detection_counts`) and the alerts
//! they raise. One node only, so "shared" means shared by this node's tasks; a batch is one
//! `BEGIN IMMEDIATE` transaction, taken under the store's writer lock.

use std::collections::HashMap;

use sqlx::{SqliteConnection, SqlitePool};

use crate::{
    detection_count, detection_rows, AlertAck, DetectionIncrement, DetectionRow, DetectionTotals,
    StoreError, StoredAlert,
};

/// Rows per upsert statement: four variables each, far below SQLite's limit of 32 766.
const CHUNK: usize = 500;

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

/// Upserts the batch's rows, then reads each increment's totals, in one transaction: what it
/// answers is what the batch left, with no other writer in between.
pub(super) async fn add_counts(
    pool: &SqlitePool,
    increments: &[DetectionIncrement],
) -> Result<Vec<DetectionTotals>, StoreError> {
    if increments.is_empty() {
        return Ok(Vec::new());
    }
    let rows = detection_rows(increments);
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for chunk in rows.chunks(CHUNK) {
        upsert(&mut tx, chunk).await?;
    }
    // Increments of one batch often share a counter or a group: each is read once.
    let mut totals: HashMap<(&str, i64), u64> = HashMap::new();
    let mut distinct: HashMap<(&str, i64), u64> = HashMap::new();
    let mut out = Vec::with_capacity(increments.len());
    for inc in increments {
        let total = match totals.get(&(inc.key.as_str(), inc.window_from)) {
            Some(total) => *total,
            None => {
                let total = key_total(&mut tx, &inc.key, inc.window_from).await?;
                totals.insert((inc.key.as_str(), inc.window_from), total);
                total
            }
        };
        let distinct_in_group = match distinct.get(&(inc.group.as_str(), inc.window_from)) {
            Some(n) => *n,
            None => {
                let n = group_distinct(&mut tx, &inc.group, inc.window_from).await?;
                distinct.insert((inc.group.as_str(), inc.window_from), n);
                n
            }
        };
        out.push(DetectionTotals {
            total,
            distinct_in_group,
        });
    }
    tx.commit().await?;
    Ok(out)
}

/// Adds `rows` to their counters; a sum past `i64::MAX` stays at `i64::MAX` (SQLite would
/// turn an overflowing sum into a REAL, which the STRICT table refuses).
async fn upsert(conn: &mut SqliteConnection, rows: &[DetectionRow<'_>]) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO detection_counts (key, grp, bucket, count) VALUES {} \
         ON CONFLICT (key, bucket) DO UPDATE SET count = CASE \
         WHEN detection_counts.count > 9223372036854775807 - excluded.count \
         THEN 9223372036854775807 ELSE detection_counts.count + excluded.count END",
        vec!["(?, ?, ?, ?)"; rows.len()].join(", ")
    );
    let mut query = sqlx::query(&sql);
    for (key, group, bucket, count) in rows {
        query = query.bind(*key).bind(*group).bind(*bucket).bind(*count);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// The key's counts over buckets `>= window_from`, summed in Rust and saturating at
/// `i64::MAX` (as PostgreSQL's answer is): SQLite's `SUM` fails on an integer overflow. A
/// window holds a handful of buckets.
async fn key_total(
    conn: &mut SqliteConnection,
    key: &str,
    window_from: i64,
) -> Result<u64, StoreError> {
    let counts: Vec<(i64,)> =
        sqlx::query_as("SELECT count FROM detection_counts WHERE key = ? AND bucket >= ?")
            .bind(key)
            .bind(window_from)
            .fetch_all(&mut *conn)
            .await?;
    let sum = counts
        .into_iter()
        .fold(0i64, |sum, (count,)| sum.saturating_add(count.max(0)));
    Ok(detection_count(sum))
}

/// How many keys of `group` have a count in buckets `>= window_from`.
async fn group_distinct(
    conn: &mut SqliteConnection,
    group: &str,
    window_from: i64,
) -> Result<u64, StoreError> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(DISTINCT key) FROM detection_counts \
         WHERE grp = ? AND bucket >= ? AND count > 0",
    )
    .bind(group)
    .bind(window_from)
    .fetch_one(&mut *conn)
    .await?;
    Ok(detection_count(n))
}

pub(super) async fn purge_counts(pool: &SqlitePool, before: i64) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM detection_counts WHERE bucket < ?")
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected())
}

pub(super) async fn insert_alert(
    pool: &SqlitePool,
    alert: &StoredAlert,
) -> Result<bool, StoreError> {
    let sql = format!(
        "INSERT INTO alerts ({ALERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) \
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
    pool: &SqlitePool,
    state: Option<&str>,
    before: Option<(i64, &str)>,
    limit: u32,
) -> Result<Vec<StoredAlert>, StoreError> {
    let mut conditions = Vec::new();
    if state.is_some() {
        conditions.push("state = ?");
    }
    if before.is_some() {
        conditions.push("(raised_at, id) < (?, ?)");
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {ALERT_COLUMNS} FROM alerts {filter} ORDER BY raised_at DESC, id DESC LIMIT ?"
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

pub(super) async fn get_alert(
    pool: &SqlitePool,
    id: &str,
) -> Result<Option<StoredAlert>, StoreError> {
    let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?");
    let row: Option<AlertRow> = sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?;
    Ok(row.map(alert_from_row))
}

/// Acknowledges the alert if it is open; an acknowledged one keeps its first acknowledgement.
/// Only an open alert is changed; when none was, whether the alert exists tells "acknowledged
/// before" from "no such alert" (the caller holds the writer lock, so nothing moves between).
pub(super) async fn ack_alert(
    pool: &SqlitePool,
    id: &str,
    by: &str,
    at: i64,
) -> Result<AlertAck, StoreError> {
    let acked = sqlx::query(
        "UPDATE alerts SET state = 'acknowledged', acked_by = ?, acked_at = ? \
         WHERE id = ? AND state = 'open'",
    )
    .bind(by)
    .bind(at)
    .bind(id)
    .execute(pool)
    .await?
    .rows_affected();
    if acked == 1 {
        return Ok(AlertAck::Acknowledged);
    }
    let (exists,): (bool,) = sqlx::query_as("SELECT EXISTS (SELECT 1 FROM alerts WHERE id = ?)")
        .bind(id)
        .fetch_one(pool)
        .await?;
    Ok(if exists {
        AlertAck::AlreadyAcknowledged
    } else {
        AlertAck::NoSuchAlert
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
    pool: &SqlitePool,
    id: &str,
    detail: &str,
) -> Result<bool, StoreError> {
    let updated = sqlx::query("UPDATE alerts SET detail = ? WHERE id = ?")
        .bind(detail)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(updated == 1)
}
