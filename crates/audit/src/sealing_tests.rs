use std::sync::Arc;

use portcullis_core::audit::{link, AuditEvent, ChainVerifier, GENESIS_HASH};
use portcullis_keys::software::MasterKey;
use portcullis_store::sqlite::SqliteStore;

use super::*;

fn custody(seed: u8) -> KeyCustody {
    KeyCustody::Software(Arc::new(MasterKey::from_bytes([seed; 32])))
}

async fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(&dir.path().join("a.db")).await.unwrap())
}

fn event(i: i64) -> AuditEvent {
    AuditEvent {
        at: 1_000 + i,
        actor: format!("sensor-{i}"),
        action: "token.issued".into(),
        subject: format!("jti-{i}"),
        outcome: "success".into(),
        detail: serde_json::json!({"source": "192.0.2.7", "scope": "read"}),
    }
}

fn sealed(sealer: &AuditSealer, n: i64) -> Vec<AuditRecord> {
    let mut events: Vec<_> = (1..=n).map(event).collect();
    sealer.seal_batch(&mut events).unwrap();
    link(0, GENESIS_HASH, events)
}

#[tokio::test]
async fn sealed_records_hide_their_fields_verify_without_the_key_and_open_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let sealer = AuditSealer::load_or_create(store(&dir).await, custody(1), 5)
        .await
        .unwrap();
    let records = sealed(&sealer, 3);
    let stored = serde_json::to_string(&records).unwrap();
    for secret in ["sensor-1", "jti-2", "192.0.2.7", "read"] {
        assert!(!stored.contains(secret), "{secret} in {stored}");
    }
    let mut verifier = ChainVerifier::default();
    for r in &records {
        verifier.check(r).unwrap();
        assert!(is_sealed(&r.event));
        assert_eq!(r.event.action, "token.issued");
    }
    for (i, r) in records.into_iter().enumerate() {
        let read = sealer.open_record(r);
        let want = event(i as i64 + 1);
        assert!(read.encrypted);
        assert_eq!(read.unreadable, None);
        assert_eq!(read.record.event, want);
    }
}

#[tokio::test]
async fn a_ciphertext_moved_or_edited_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let sealer = AuditSealer::load_or_create(store(&dir).await, custody(1), 5)
        .await
        .unwrap();
    let mut records = sealed(&sealer, 2);
    // The clear fields are bound: the same ciphertext under another outcome fails.
    let mut moved = records[0].clone();
    moved.event.outcome = "failure".into();
    assert!(sealer.open_record(moved).unreadable.is_some());
    // Another record's index (nonce) fails.
    let sealed = records[1].event.detail["sealed"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut parts: Vec<&str> = sealed.split('.').collect();
    assert_eq!(parts[3], "1");
    parts[3] = "0";
    records[1].event.detail["sealed"] = parts.join(".").into();
    assert!(sealer.open_record(records[1].clone()).unreadable.is_some());
}

#[tokio::test]
async fn checkpoints_stay_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let sealer = AuditSealer::load_or_create(store(&dir).await, custody(1), 5)
        .await
        .unwrap();
    let mut events = vec![AuditEvent {
        action: "audit.checkpoint".into(),
        ..event(1)
    }];
    sealer.seal_batch(&mut events).unwrap();
    assert_eq!(events[0].actor, "sensor-1");
    assert!(!is_sealed(&events[0]));
}

#[tokio::test]
async fn rotation_keeps_old_records_readable_and_other_nodes_agree() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let node_a = AuditSealer::load_or_create(store.clone(), custody(1), 5)
        .await
        .unwrap();
    let node_b = AuditSealer::load_or_create(store.clone(), custody(1), 6)
        .await
        .unwrap();
    assert_eq!(node_a.active_kid(), node_b.active_kid(), "one first key");
    let old = sealed(&node_a, 1);
    let first = node_a.active_kid();
    let second = node_a.rotate(7).await.unwrap();
    assert_ne!(first, second);
    let new = sealed(&node_a, 1);
    assert_eq!(
        new[0].event.detail["sealed"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1),
        Some(second.as_str())
    );
    // Node B has not reloaded: it reads the new record after reloading on the unknown kid.
    let read = node_b
        .open_records(vec![old[0].clone(), new[0].clone()])
        .await;
    assert!(read.iter().all(|r| r.unreadable.is_none()), "{read:?}");
    assert_eq!(node_b.active_kid(), second);
    let listed = node_b.list();
    assert_eq!(listed.len(), 2);
    assert!(listed[1].active && !listed[0].active);
}

#[tokio::test]
async fn without_the_master_key_the_key_set_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    AuditSealer::load_or_create(store.clone(), custody(1), 5)
        .await
        .unwrap();
    let err = AuditSealer::load_or_create(store, custody(2), 5)
        .await
        .unwrap_err();
    assert!(matches!(err, AuditError::Keys(_)), "{err}");
}

#[test]
fn a_plain_record_reads_as_stored() {
    let record = link(0, GENESIS_HASH, vec![event(1)]).remove(0);
    let read = ReadRecord::plain(record.clone());
    assert!(!read.encrypted);
    assert!(!is_sealed(&record.event));
}

#[tokio::test]
async fn a_sealed_value_opens_only_in_its_context() {
    let dir = tempfile::tempdir().unwrap();
    let sealer = AuditSealer::load_or_create(store(&dir).await, custody(1), 5)
        .await
        .unwrap();
    let value = serde_json::json!({"key": "client ghost-1", "total": 21});
    let sealed = sealer.seal_value("alert-a", &value).unwrap();
    assert!(!sealed.contains("ghost-1"));
    assert_eq!(sealer.open_value("alert-a", &sealed).await.unwrap(), value);
    assert!(sealer.open_value("alert-b", &sealed).await.is_err());
    assert!(sealer.open_value("alert-a", "v1.x.y.z").await.is_err());
}
