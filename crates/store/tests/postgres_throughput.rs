//! Throughput measurements of the PostgreSQL backend, beside SQLite for comparison. Ignored by
//! default (seconds to minutes, ~1 GB of memory for the bulk load); run with
//! `cargo test -p portcullis-store --test postgres_throughput -- --ignored --nocapture --test-threads 1`
//! Results go to `docs/benchmarks.md`.

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Instant;

use portcullis_core::audit::AuditEvent;
use portcullis_core::ClientId;
use portcullis_store::conformance::sample_client;
use portcullis_store::postgres::test_schema::with_test_schema;
use portcullis_store::sqlite::SqliteStore;
use portcullis_store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput measurement, tens of seconds and ~1 GB of memory"]
async fn one_million_clients_bulk_load_on_postgres() {
    with_test_schema(|schema| async move {
        let store = schema.connect().await;
        let clients: Vec<_> = (0..1_000_000)
            .map(|i| sample_client(&format!("bulk-{i:07}")))
            .collect();
        let started = Instant::now();
        store.insert_clients(&clients).await.expect("bulk insert");
        let elapsed = started.elapsed();
        println!(
            "PostgreSQL: inserted {} clients in {elapsed:.2?}: {:.0} clients/s",
            clients.len(),
            clients.len() as f64 / elapsed.as_secs_f64()
        );
        let probe = ClientId::parse("bulk-0765432").expect("id");
        assert_eq!(
            store.get_client(&probe).await.expect("get"),
            Some(clients[765_432].clone())
        );
        store.close().await;
    })
    .await;
}

fn event(i: usize) -> AuditEvent {
    AuditEvent {
        at: 1_700_000_000 + i as i64,
        actor: "bench-client".into(),
        action: "token.issued".into(),
        subject: format!("jti-{i}"),
        outcome: "success".into(),
        detail: serde_json::json!({ "scope": "read write", "aud": "https://api.example" }),
    }
}

/// Appends `total` events in batches of `batch` from one writer (the audit writer task is one
/// per node) and prints events per second.
async fn measure_audit_appends(backend: &str, store: &dyn Store, total: usize, batch: usize) {
    let started = Instant::now();
    let mut next = 0;
    while next < total {
        let events = (next..(next + batch).min(total)).map(event).collect();
        store.append_audit(events).await.expect("append");
        next += batch;
    }
    let elapsed = started.elapsed();
    println!(
        "{backend}: {total} audit events in batches of {batch}: {elapsed:.2?}, {:.0} events/s",
        total as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput measurement, a few seconds"]
async fn audit_append_throughput_postgres_and_sqlite() {
    let cases = [(2_000, 1), (100_000, 512), (100_000, 4096)];
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(&dir.path().join("audit.db"))
        .await
        .expect("open");
    for (total, batch) in cases {
        measure_audit_appends("SQLite", &sqlite, total, batch).await;
    }
    sqlite.close().await;
    with_test_schema(move |schema| async move {
        let postgres = schema.connect().await;
        for (total, batch) in cases {
            measure_audit_appends("PostgreSQL", &postgres, total, batch).await;
        }
        postgres.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing of the conformance suite on both backends"]
async fn conformance_suite_time_postgres_and_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(&dir.path().join("c.db"))
        .await
        .expect("open");
    let started = Instant::now();
    portcullis_store::conformance::run_all(&sqlite).await;
    println!("SQLite: conformance suite in {:.2?}", started.elapsed());
    with_test_schema(|schema| async move {
        let postgres = schema.connect().await;
        let started = Instant::now();
        portcullis_store::conformance::run_all(&postgres).await;
        println!("PostgreSQL: conformance suite in {:.2?}", started.elapsed());
        postgres.close().await;
    })
    .await;
}
