//! The audit writer and chain verification against a real SQLite file.

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod fixtures;
mod flaky_store;

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Instant;

use fixtures::event;
use flaky_store::FlakyStore;
use portcullis_audit::{verify_chain, AuditError, AuditLog, CheckpointKeys};
use portcullis_core::audit::ChainBreak;
use portcullis_store::sqlite::SqliteStore;
use portcullis_store::Store;
use sqlx::Connection;

/// No key table: these tests are about the chain; checkpoints have tests of their own.
fn no_keys() -> CheckpointKeys {
    CheckpointKeys::none("no key table in this test")
}

async fn open_store(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    Arc::new(
        SqliteStore::open(&dir.path().join("audit.db"))
            .await
            .expect("open store"),
    )
}

async fn stored_subjects(store: &dyn Store) -> Vec<String> {
    let records = store.list_audit(0, u32::MAX).await.expect("list");
    records.into_iter().map(|r| r.event.subject).collect()
}

/// Checks that exactly `subjects` were stored, in that order, in a chain that verifies.
async fn assert_stored_in_order(store: &dyn Store, subjects: &[String]) {
    assert_eq!(stored_subjects(store).await, subjects);
    let report = verify_chain(store, &no_keys())
        .await
        .expect("chain verifies");
    assert_eq!(report.records, subjects.len() as u64);
}

/// Records `n` events, flushes, and returns the events per second it took.
async fn record_and_flush(log: &AuditLog, n: usize) -> f64 {
    let started = Instant::now();
    for i in 0..n {
        log.record(event(i)).await.unwrap();
    }
    log.flush().await;
    n as f64 / started.elapsed().as_secs_f64()
}

/// Runs a statement on the database file directly, as someone with disk access could,
/// dropping the append-only triggers first.
async fn tamper(dir: &tempfile::TempDir, statement: &str) {
    let mut conn = fixtures::open_without_triggers(&dir.path().join("audit.db")).await;
    sqlx::query(statement)
        .execute(&mut conn)
        .await
        .expect("tamper");
    conn.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_recorded_events_are_stored_after_flush_and_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir).await;
    let log = AuditLog::start(store.clone());
    let per_second = record_and_flush(&log, 10_000).await;
    println!("audit append: {per_second:.0} events/s (10 000 events, record to flush)");
    let report = verify_chain(store.as_ref(), &no_keys())
        .await
        .expect("chain verifies");
    assert_eq!((report.records, report.last_seq), (10_000, 10_000));
    log.shutdown().await;
}

#[tokio::test]
async fn order_is_preserved_across_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir).await;
    let log = AuditLog::start(store.clone());
    // More than one batch's worth, with flushes cutting batches at odd places.
    let mut expected = Vec::new();
    for (start, len) in [(0, 5_000), (5_000, 1), (5_001, 4_097)] {
        for i in start..start + len {
            log.record(event(i)).await.unwrap();
            expected.push(format!("jti-{i}"));
        }
        log.flush().await;
    }
    assert_stored_in_order(store.as_ref(), &expected).await;
}

#[tokio::test]
async fn an_empty_log_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir).await;
    let report = verify_chain(store.as_ref(), &no_keys())
        .await
        .expect("verifies");
    assert_eq!((report.records, report.last_seq), (0, 0));
    assert_eq!(report.checkpoints.verified, 0);
}

#[tokio::test]
async fn edited_record_is_reported_at_its_seq() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir).await;
    let log = AuditLog::start(store.clone());
    record_and_flush(&log, 10).await;
    tamper(
        &dir,
        "UPDATE audit_log SET outcome = 'failure' WHERE seq = 5",
    )
    .await;
    let result = verify_chain(store.as_ref(), &no_keys()).await;
    assert!(
        matches!(
            result,
            Err(AuditError::Broken(ChainBreak::Edited { seq: 5 }))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn deleted_middle_record_is_reported_as_a_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir).await;
    let log = AuditLog::start(store.clone());
    record_and_flush(&log, 10).await;
    tamper(&dir, "DELETE FROM audit_log WHERE seq = 5").await;
    let result = verify_chain(store.as_ref(), &no_keys()).await;
    let gap = ChainBreak::Gap {
        seq: 6,
        expected: 5,
    };
    assert!(
        matches!(result, Err(AuditError::Broken(ref b)) if *b == gap),
        "{result:?}"
    );
}

#[tokio::test]
async fn the_store_refuses_to_edit_audit_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir).await;
    let log = AuditLog::start(store.clone());
    record_and_flush(&log, 3).await;
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    let edit = sqlx::query("UPDATE audit_log SET outcome = 'x' WHERE seq = 2")
        .execute(&mut conn)
        .await;
    assert!(edit.is_err(), "the append-only trigger refuses edits");
    let delete = sqlx::query("DELETE FROM audit_log")
        .execute(&mut conn)
        .await;
    assert!(delete.is_err(), "the append-only trigger refuses deletes");
}

#[tokio::test]
async fn failed_appends_are_retried_without_losing_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inner = SqliteStore::open(&dir.path().join("audit.db"))
        .await
        .expect("open");
    let store = Arc::new(FlakyStore {
        inner,
        failures_left: AtomicU32::new(3),
    });
    let log = AuditLog::start(store.clone());
    record_and_flush(&log, 100).await;
    let expected: Vec<String> = (0..100).map(|i| format!("jti-{i}")).collect();
    assert_stored_in_order(store.as_ref(), &expected).await;
}

#[tokio::test]
async fn shutdown_stores_everything_and_later_records_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir).await;
    let log = AuditLog::start(store.clone());
    let other_handle = log.clone();
    for i in 0..500 {
        log.record(event(i)).await.unwrap();
    }
    log.shutdown().await;
    assert_eq!(stored_subjects(store.as_ref()).await.len(), 500);
    assert!(
        other_handle.record(event(500)).await.is_err(),
        "a record after shutdown is refused, not silently lost"
    );
    other_handle.flush().await;
    assert_eq!(stored_subjects(store.as_ref()).await.len(), 500);
}

/// `cargo test -p portcullis-audit --release -- --ignored --nocapture` for a steadier number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput measurement, several seconds"]
async fn sustained_append_throughput() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir).await;
    let log = AuditLog::start(store.clone());
    let per_second = record_and_flush(&log, 500_000).await;
    println!("audit append: {per_second:.0} events/s (500 000 events, record to flush)");
    let started = Instant::now();
    let report = verify_chain(store.as_ref(), &no_keys())
        .await
        .expect("verifies");
    let verify_rate = report.records as f64 / started.elapsed().as_secs_f64();
    println!("audit verify: {verify_rate:.0} records/s");
}

#[tokio::test]
async fn durable_records_are_stored_before_the_call_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir).await;
    let log = AuditLog::start_with(store.clone(), portcullis_audit::AuditMode::Durable, 16);
    for i in 0..20 {
        log.record(event(i)).await.unwrap();
        // No flush: durable means stored when `record` returns.
        assert_eq!(stored_subjects(store.as_ref()).await.len(), i + 1);
    }
    let async_log = AuditLog::start(store.clone());
    async_log.commit(event(99)).await.unwrap();
    assert_eq!(
        stored_subjects(store.as_ref()).await.len(),
        21,
        "commit is durable in async mode too"
    );
}

#[tokio::test]
async fn a_full_queue_makes_callers_wait_instead_of_growing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir).await;
    // A queue of 4: 1000 records from 10 tasks still all land, each caller waiting for room.
    let log = AuditLog::start_with(store.clone(), portcullis_audit::AuditMode::Async, 4);
    let tasks: Vec<_> = (0..10)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    log.record(event(t * 100 + i)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    log.flush().await;
    assert_eq!(stored_subjects(store.as_ref()).await.len(), 1000);
}

#[tokio::test]
async fn a_flood_of_refusals_from_one_source_is_one_record_until_its_window_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir).await;
    let log = AuditLog::start(store.clone());
    let source: std::net::IpAddr = "203.0.113.9".parse().unwrap();
    for i in 0..10_000 {
        log.record_refusal(source, event(i));
    }
    log.flush().await;
    assert_eq!(stored_subjects(store.as_ref()).await.len(), 1);
    // At shutdown the open window is written as one summary counting the rest.
    log.shutdown().await;
    let records = store.list_audit(0, 100).await.unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].event.detail["summary"]["more_refusals"], 9_999);
}

/// Records `n` events through a writer on `store`, sealed with `sealer` if given; events/s
/// from the first record to the flush that stored the last.
async fn write_rate(
    store: Arc<dyn Store>,
    sealer: Option<Arc<portcullis_audit::AuditSealer>>,
    n: usize,
) -> f64 {
    let log = AuditLog::start_sealed(
        store,
        portcullis_audit::AuditMode::Async,
        portcullis_audit::log::QUEUE_CAPACITY,
        sealer,
    );
    let rate = record_and_flush(&log, n).await;
    log.shutdown().await;
    rate
}

async fn sealer_for(store: Arc<dyn Store>) -> Arc<portcullis_audit::AuditSealer> {
    use portcullis_keys::software::MasterKey;
    let custody = portcullis_keys::KeyCustody::Software(Arc::new(MasterKey::from_bytes([7; 32])));
    portcullis_audit::AuditSealer::load_or_create(store, custody, 1)
        .await
        .unwrap()
}

/// The audit write rate, records in the clear and sealed (AES-256-GCM), on SQLite and on
/// PostgreSQL, interleaved (clear, sealed, clear, sealed, ...) on one chain per backend:
/// `cargo test -p portcullis-audit --release --test audit_log -- --ignored --nocapture write_rate`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput measurement, tens of seconds"]
async fn write_rate_clear_and_sealed_on_sqlite_and_postgresql() {
    const EVENTS: usize = 200_000;
    const ROUNDS: usize = 3;
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite: Arc<dyn Store> = open_store(&dir).await;
    let sealer = sealer_for(sqlite.clone()).await;
    for round in 1..=ROUNDS {
        let clear = write_rate(sqlite.clone(), None, EVENTS).await;
        let sealed = write_rate(sqlite.clone(), Some(sealer.clone()), EVENTS).await;
        println!("SQLite round {round}: clear {clear:.0} records/s, sealed {sealed:.0} records/s");
    }
    portcullis_store::postgres::test_schema::with_test_schema(|schema| async move {
        let postgres: Arc<dyn Store> = Arc::new(schema.connect().await);
        let sealer = sealer_for(postgres.clone()).await;
        for round in 1..=ROUNDS {
            let clear = write_rate(postgres.clone(), None, EVENTS).await;
            let sealed = write_rate(postgres.clone(), Some(sealer.clone()), EVENTS).await;
            println!(
                "PostgreSQL round {round}: clear {clear:.0} records/s, sealed {sealed:.0} records/s"
            );
        }
        let report = verify_chain(postgres.as_ref(), &no_keys())
            .await
            .expect("verifies");
        assert_eq!(report.records, (2 * ROUNDS * EVENTS) as u64);
    })
    .await;
}
