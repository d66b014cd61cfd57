//! The audit hash chain: linking across batches and writers, and paging.

use portcullis_core::audit::{AuditEvent, AuditRecord, ChainVerifier};

use crate::Store;

fn audit_event(batch: usize, i: usize) -> AuditEvent {
    AuditEvent {
        at: 1_700_000_000 + i as i64,
        actor: format!("client-{batch}"),
        action: "token.issued".into(),
        subject: format!("jti-{batch}-{i}"),
        outcome: (match i % 7 {
            0 => "failure",
            _ => "success",
        })
        .into(),
        // Floats, nesting and non-ASCII text: the stored JSON must hash exactly as appended.
        detail: serde_json::json!({
            "scope": "read write", "n": i, "ratio": 0.1 + i as f64 / 3.0,
            "tiny": 1e-7, "nested": {"z": [1, 2.5, null], "a": "ünïcode ✓"},
        }),
    }
}

async fn audit_tail(store: &dyn Store) -> i64 {
    let newest = store.list_audit_desc(i64::MAX, 1).await.expect("tail");
    newest.first().map_or(0, |r| r.seq)
}

/// Walks the whole chain from the first record through [`ChainVerifier`].
async fn assert_chain_verifies(store: &dyn Store) -> u64 {
    let mut verifier = ChainVerifier::default();
    let mut after = 0;
    loop {
        let page = store.list_audit(after, 500).await.expect("page");
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in &page {
            verifier.check(record).expect("chain verifies");
        }
    }
    verifier.count
}

fn assert_consecutive(records: &[AuditRecord], first_seq: i64) {
    for (offset, record) in records.iter().enumerate() {
        assert_eq!(record.seq, first_seq + offset as i64);
    }
}

/// Batches of different sizes, appended owned or borrowed, form one chain that verifies from
/// the first record.
pub async fn audit_chain_spans_batches_and_verifies(store: &dyn Store) {
    assert!(store
        .append_audit(Vec::new())
        .await
        .expect("empty append")
        .is_empty());
    let mut next_seq = audit_tail(store).await + 1;
    for (batch, size) in [1usize, 700, 5].into_iter().enumerate() {
        let events: Vec<AuditEvent> = (0..size).map(|i| audit_event(batch, i)).collect();
        let records = store.append_audit(events.clone()).await.expect("append");
        assert_consecutive(&records, next_seq);
        assert!(records.iter().map(|r| &r.event).eq(events.iter()));
        let stored = store
            .list_audit(next_seq - 1, size as u32)
            .await
            .expect("read back");
        assert_eq!(stored, records);
        next_seq += size as i64;
    }
    // The writer's borrowing append continues the same chain, across statement sizes.
    for (batch, size) in [(10usize, 3usize), (11, 1000), (12, 1)] {
        let events: Vec<AuditEvent> = (0..size).map(|i| audit_event(batch, i)).collect();
        store
            .append_audit_batch(&events)
            .await
            .expect("batch append");
        let stored = store
            .list_audit(next_seq - 1, size as u32)
            .await
            .expect("read back");
        assert_consecutive(&stored, next_seq);
        assert!(stored.iter().map(|r| &r.event).eq(events.iter()));
        next_seq += size as i64;
    }
    assert!(store.append_audit_batch(&[]).await.is_ok());
    assert_eq!(audit_tail(store).await, next_seq - 1);
    assert_eq!(assert_chain_verifies(store).await, (next_seq - 1) as u64);
}

/// Concurrent appenders never link to the same tail: the chain stays single and intact.
pub async fn concurrent_audit_appends_form_one_chain(store: &dyn Store) {
    let before = audit_tail(store).await;
    let appender = |writer: usize| async move {
        for batch in 0..10 {
            let events = (0..50)
                .map(|i| audit_event(100 + writer * 10 + batch, i))
                .collect();
            store.append_audit(events).await.expect("concurrent append");
        }
    };
    tokio::join!(appender(0), appender(1), appender(2), appender(3));
    assert_eq!(audit_tail(store).await, before + 4 * 10 * 50);
    assert_chain_verifies(store).await;
}

/// Ascending and descending pages return the same records in opposite orders.
pub async fn audit_pages_in_both_directions(store: &dyn Store) {
    let before = audit_tail(store).await;
    let events: Vec<AuditEvent> = (0..25).map(|i| audit_event(900, i)).collect();
    store.append_audit(events.clone()).await.expect("append");

    let mut forward = Vec::new();
    let mut after = before;
    loop {
        let page = store.list_audit(after, 10).await.expect("page");
        let Some(last) = page.last() else { break };
        after = last.seq;
        forward.extend(page);
    }
    assert_consecutive(&forward, before + 1);
    assert!(forward.iter().map(|r| &r.event).eq(events.iter()));

    let mut backward = Vec::new();
    let mut before_seq = i64::MAX;
    while backward.len() < 25 {
        let page = store.list_audit_desc(before_seq, 10).await.expect("page");
        let Some(last) = page.last() else { break };
        before_seq = last.seq;
        backward.extend(page);
    }
    backward.truncate(25);
    backward.reverse();
    assert_eq!(backward, forward, "newest first, the same records");
}

/// On a fresh store: an imported archive anchor is where the chain continues, exactly as after
/// an archive purge; once a record is stored, no anchor can be imported.
pub async fn an_imported_anchor_starts_an_empty_chain(store: &dyn Store) {
    use crate::{AuditArchiveAnchor, StoreError};
    let anchor = AuditArchiveAnchor {
        seq: 41,
        hash: "ab".repeat(32),
        first_seq: 1,
        checkpoint_seq: 43,
        segment_sha256: "cd".repeat(32),
        archived_at: 1_700_000_000,
    };
    store
        .import_audit_anchor(&anchor)
        .await
        .expect("import into an empty log");
    assert_eq!(
        store.audit_anchor().await.expect("anchor"),
        Some(anchor.clone())
    );
    let records = store
        .append_audit(vec![audit_event(0, 1), audit_event(0, 2)])
        .await
        .expect("append after the anchor");
    assert_consecutive(&records, 42);
    assert_eq!(
        records.first().map(|r| r.prev_hash.as_str()),
        Some(anchor.hash.as_str())
    );
    let mut verifier = ChainVerifier::after(
        anchor.seq,
        portcullis_core::audit::from_hex(&anchor.hash).expect("hex"),
    );
    for record in &records {
        verifier.check(record).expect("links to the anchor");
    }
    let again = AuditArchiveAnchor { seq: 100, ..anchor };
    assert!(matches!(
        store.import_audit_anchor(&again).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.audit_anchor().await.expect("anchor").map(|a| a.seq),
        Some(41)
    );
}
