//! Bulk-load throughput: one million clients in one `insert_clients` call.
//! `cargo test -p portcullis-store --test bulk_load -- --ignored --nocapture`

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Instant;

use portcullis_core::ClientId;
use portcullis_store::conformance::sample_client;
use portcullis_store::sqlite::SqliteStore;
use portcullis_store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput measurement, tens of seconds and ~1 GB of memory"]
async fn one_million_clients_load_in_one_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("bulk.db"))
        .await
        .expect("open");
    let clients: Vec<_> = (0..1_000_000)
        .map(|i| sample_client(&format!("bulk-{i:07}")))
        .collect();

    let started = Instant::now();
    store.insert_clients(&clients).await.expect("bulk insert");
    let elapsed = started.elapsed();
    println!(
        "inserted {} clients in {elapsed:.2?}: {:.0} clients/s",
        clients.len(),
        clients.len() as f64 / elapsed.as_secs_f64()
    );

    let probe = ClientId::parse("bulk-0765432").expect("id");
    assert_eq!(
        store.get_client(&probe).await.expect("get"),
        Some(clients[765_432].clone())
    );
}
