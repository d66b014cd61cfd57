//! The SQLite backend against the backend-independent [`Store`] contract.

use portcullis_store::conformance;
use portcullis_store::sqlite::SqliteStore;

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
