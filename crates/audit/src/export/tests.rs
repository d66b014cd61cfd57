use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::AuditEvent;
use portcullis_keys::software::MasterKey;
use portcullis_keys::KeyCustody;
use portcullis_store::sqlite::SqliteStore;

use super::ndjson::{NdjsonSink, NdjsonTarget};
use super::*;
use crate::AuditLog;

fn event(i: i64) -> AuditEvent {
    AuditEvent {
        at: 1_000 + i,
        actor: format!("client-{i}"),
        action: "token.issued".into(),
        subject: format!("jti-{i}"),
        outcome: "success".into(),
        detail: serde_json::json!({"source": "192.0.2.1"}),
    }
}

struct Setup {
    store: Arc<dyn Store>,
    sealer: Arc<AuditSealer>,
    log: AuditLog,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("a.db")).await.unwrap());
    let custody = KeyCustody::Software(Arc::new(MasterKey::from_bytes([3; 32])));
    let sealer = AuditSealer::load_or_create(store.clone(), custody, 1)
        .await
        .unwrap();
    let log = AuditLog::start_sealed(
        store.clone(),
        crate::AuditMode::Durable,
        64,
        Some(sealer.clone()),
    );
    Setup {
        store,
        sealer,
        log,
        _dir: dir,
    }
}

fn exporter(s: &Setup, name: &str, sink: Box<dyn ExportSink>, node: &str) -> Exporter {
    Exporter {
        name: name.into(),
        store: s.store.clone(),
        sealer: Some(s.sealer.clone()),
        sink,
        start: StartAt::Beginning,
        node_id: node.into(),
    }
}

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn wait_for(path: &std::path::Path, count: usize) -> Vec<serde_json::Value> {
    for _ in 0..200 {
        let got = lines(path);
        if got.len() >= count {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    lines(path)
}

#[tokio::test]
async fn records_reach_the_file_decrypted_in_order_and_a_restart_resumes_without_repeats() {
    let s = setup().await;
    let out = s._dir.path().join("audit.ndjson");
    for i in 1..=3 {
        s.log.commit(event(i)).await.unwrap();
    }
    let sink = Box::new(NdjsonSink::new(NdjsonTarget::File(out.clone())));
    let task = tokio::spawn(exporter(&s, "file", sink, "node-a").run());
    let got = wait_for(&out, 3).await;
    task.abort();
    let _ = task.await;
    assert_eq!(got.len(), 3);
    for (i, line) in got.iter().enumerate() {
        assert_eq!(line["seq"], i as i64 + 1);
        assert_eq!(line["actor"], format!("client-{}", i + 1));
        assert_eq!(line["encrypted"], true);
    }
    // A new exporter (the node restarted) starts after the stored cursor.
    for i in 4..=5 {
        s.log.commit(event(i)).await.unwrap();
    }
    let sink = Box::new(NdjsonSink::new(NdjsonTarget::File(out.clone())));
    let task = tokio::spawn(exporter(&s, "file", sink, "node-a").run());
    let got = wait_for(&out, 5).await;
    tokio::time::sleep(POLL * 2).await;
    task.abort();
    let seqs: Vec<i64> = lines(&out)
        .iter()
        .map(|l| l["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5], "{got:?}");
}

/// Refuses its first `failures` deliveries, then records what it gets.
struct Flaky {
    failures: usize,
    calls: Arc<AtomicUsize>,
    got: Arc<std::sync::Mutex<Vec<i64>>>,
}

#[async_trait::async_trait]
impl ExportSink for Flaky {
    fn describe(&self) -> String {
        "flaky".into()
    }

    async fn deliver(&mut self, records: &[ReadRecord]) -> Result<(), ExportError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(ExportError("receiver restarting".into()));
        }
        self.got
            .lock()
            .unwrap()
            .extend(records.iter().map(|r| r.record.seq));
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_sink_is_retried_from_the_same_record_and_nothing_is_skipped() {
    let s = setup().await;
    for i in 1..=4 {
        s.log.commit(event(i)).await.unwrap();
    }
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let sink = Box::new(Flaky {
        failures: 2,
        calls: calls.clone(),
        got: got.clone(),
    });
    let task = tokio::spawn(exporter(&s, "flaky", sink, "node-a").run());
    for _ in 0..200 {
        if got.lock().unwrap().len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    task.abort();
    assert_eq!(*got.lock().unwrap(), [1, 2, 3, 4]);
    assert!(calls.load(Ordering::SeqCst) >= 3);
}

#[tokio::test]
async fn only_the_lease_holder_exports() {
    let s = setup().await;
    s.log.commit(event(1)).await.unwrap();
    let a = s._dir.path().join("a.ndjson");
    let b = s._dir.path().join("b.ndjson");
    let task_a = tokio::spawn(
        exporter(
            &s,
            "shared",
            Box::new(NdjsonSink::new(NdjsonTarget::File(a.clone()))),
            "node-a",
        )
        .run(),
    );
    wait_for(&a, 1).await;
    let task_b = tokio::spawn(
        exporter(
            &s,
            "shared",
            Box::new(NdjsonSink::new(NdjsonTarget::File(b.clone()))),
            "node-b",
        )
        .run(),
    );
    s.log.commit(event(2)).await.unwrap();
    wait_for(&a, 2).await;
    tokio::time::sleep(POLL * 3).await;
    task_a.abort();
    task_b.abort();
    assert_eq!(lines(&a).len(), 2);
    assert!(lines(&b).is_empty(), "the other node waits for the lease");
}

#[tokio::test]
async fn a_new_export_may_start_at_the_head() {
    let s = setup().await;
    s.log.commit(event(1)).await.unwrap();
    let out = s._dir.path().join("end.ndjson");
    let mut export = exporter(
        &s,
        "from-now",
        Box::new(NdjsonSink::new(NdjsonTarget::File(out.clone()))),
        "node-a",
    );
    export.start = StartAt::End;
    let task = tokio::spawn(export.run());
    tokio::time::sleep(POLL * 2).await;
    s.log.commit(event(2)).await.unwrap();
    let got = wait_for(&out, 1).await;
    tokio::time::sleep(POLL * 2).await;
    task.abort();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["seq"], 2);
}

/// Archiving stops at the export furthest behind; one that has not run holds everything if
/// it starts at the beginning, nothing if at the end; an export not named holds nothing.
#[tokio::test]
async fn delivered_through_is_the_lowest_cursor_of_the_named_exports() {
    let s = setup().await;
    let store = s.store.as_ref();
    let named = |list: &[(&str, StartAt)]| -> Vec<(String, StartAt)> {
        list.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect()
    };
    assert_eq!(delivered_through(store, &[]).await.unwrap(), None);
    assert_eq!(
        delivered_through(store, &named(&[("late", StartAt::End)]))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        delivered_through(store, &named(&[("new", StartAt::Beginning)]))
            .await
            .unwrap(),
        Some((0, "new".to_owned()))
    );
    for (name, seq) in [("ahead", "40"), ("behind", "7"), ("forgotten", "1")] {
        store
            .put_setting_if_absent(&Exporter::cursor_setting(name), seq.as_bytes())
            .await
            .unwrap();
    }
    assert_eq!(
        delivered_through(
            store,
            &named(&[("ahead", StartAt::Beginning), ("behind", StartAt::End)])
        )
        .await
        .unwrap(),
        Some((7, "behind".to_owned())),
        "the furthest behind; `forgotten` is not configured any more"
    );
}
