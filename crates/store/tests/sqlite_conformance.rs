//! The SQLite backend against the backend-independent [`Store`] contract.

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use portcullis_core::device::DeviceId;
use portcullis_store::conformance;
use portcullis_store::sqlite::SqliteStore;
use portcullis_store::{Store, StoreError};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("conformance.db"))
        .await
        .expect("open");
    conformance::run_all(&store).await;
}

#[tokio::test]
async fn audit_chain_continues_across_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("reopen.db");
    let first = SqliteStore::open(&path).await.expect("first open");
    conformance::audit_chain_spans_batches_and_verifies(&first).await;
    first.close().await;
    let second = SqliteStore::open(&path).await.expect("second open");
    conformance::audit_chain_spans_batches_and_verifies(&second).await;
}

#[tokio::test]
async fn an_imported_anchor_starts_an_empty_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("anchor.db"))
        .await
        .expect("open");
    conformance::an_imported_anchor_starts_an_empty_chain(&store).await;
}

/// Eight spawned tasks presenting one enrollment secret at once: exactly one spends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enrollment_tasks_have_one_winner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("race.db"))
        .await
        .expect("open");
    let shared: Arc<dyn Store> = Arc::new(store);
    conformance::concurrent_enrollment_tasks_have_one_winner(&[shared]).await;
}

/// Eight tasks advance one device's message counter through the same values at once: no
/// counter is accepted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_counters_are_accepted_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("counters.db"))
        .await
        .expect("open");
    let shared: Arc<dyn Store> = Arc::new(store);
    conformance::concurrent_advances_accept_each_counter_once(&[shared]).await;
}

/// Device and certificate rows edited by hand into values their types cannot hold are
/// reported as `Corrupt`, naming the column and key, never quoting the value.
#[tokio::test]
async fn hand_edited_pki_rows_are_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("corrupt.db");
    let store = SqliteStore::open(&path).await.expect("open");
    let mut raw = SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .expect("raw connection");
    for sql in [
        "INSERT INTO devices VALUES ('bad-state', NULL, '{}', 'bogus', NULL, NULL, 1, 1)",
        "INSERT INTO devices VALUES ('bad-attrs', NULL, '[\"s3cr3t\"]', 'registered', NULL, NULL, 1, 1)",
        "INSERT INTO devices VALUES ('bad id', NULL, '{}', 'registered', NULL, NULL, 1, 1)",
        "INSERT INTO certificates VALUES ('0a0b', NULL, 'CN=x', 1, 4000000000, \
         printf('%064d', 1), X'30', 5, 7)",
    ] {
        sqlx::query(sql).execute(&mut raw).await.expect(sql);
    }
    let corrupt = |result: Result<(), StoreError>, column: &str| match result {
        Err(StoreError::Corrupt(m)) => {
            assert!(m.contains(column), "{m}");
            assert!(!m.contains("s3cr3t"), "{m}");
        }
        other => panic!("expected corruption of {column}, got {other:?}"),
    };
    let id = |s: &str| DeviceId::parse(s).expect("id");
    corrupt(
        store.get_device(&id("bad-state")).await.map(drop),
        "devices.state",
    );
    corrupt(
        store.get_device(&id("bad-attrs")).await.map(drop),
        "devices.attrs",
    );
    corrupt(store.list_devices(None, 10).await.map(drop), "devices.");
    corrupt(
        store.get_certificate("0a0b").await.map(drop),
        "certificates.revocation_reason",
    );
    corrupt(
        store.list_revoked_certificates(0).await.map(drop),
        "certificates.revocation_reason",
    );
}

/// Two stores on one file stand for two processes: what one adds to a detection counter, the
/// other's next batch counts; eight tasks adding to the same counters at once lose nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_counts_are_shared_and_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("detection.db");
    let node_a = SqliteStore::open(&path).await.expect("open a");
    let node_b = SqliteStore::open(&path).await.expect("open b");
    let nodes: [Arc<dyn Store>; 2] = [Arc::new(node_a), Arc::new(node_b)];
    conformance::detection_counts_add_up_across_nodes(&nodes).await;
    conformance::concurrent_detection_counts_lose_nothing(&nodes).await;
}

/// Eight tasks insert the same incidents at once: each alert is inserted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_alert_inserts_have_one_winner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("alerts.db"))
        .await
        .expect("open");
    let shared: Arc<dyn Store> = Arc::new(store);
    conformance::concurrent_alert_inserts_have_one_winner(&[shared]).await;
}
