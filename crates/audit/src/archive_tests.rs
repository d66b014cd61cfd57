use std::sync::Arc;

use portcullis_core::audit::AuditEvent;
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::{Algorithm, JwtSigner, Signer, VerifyingKey};
use portcullis_store::sqlite::SqliteStore;
use portcullis_store::AuditArchiveAnchor;

use super::*;
use crate::{sign_checkpoint, verify_chain};

struct Setup {
    store: Arc<dyn Store>,
    signer: JwtSigner,
    keys: CheckpointKeys,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("a.db")).await.unwrap());
    let (signer, _) = SoftwareSigner::generate(Algorithm::ES256).unwrap();
    let signer: Arc<dyn Signer> = Arc::new(signer);
    let mut keys = CheckpointKeys::none("not in this test's key set");
    keys.trust(
        signer.kid().as_str(),
        VerifyingKey::from_jwk(&signer.public_jwk(), &[Algorithm::ES256]).unwrap(),
    );
    Setup {
        store,
        signer: JwtSigner::new(signer, "at+jwt"),
        keys,
        _dir: dir,
    }
}

fn event(at: i64, subject: &str) -> AuditEvent {
    AuditEvent {
        at,
        actor: "c1".into(),
        action: "token.issued".into(),
        subject: subject.into(),
        outcome: "success".into(),
        detail: serde_json::json!({"n": at}),
    }
}

/// Appends `n` records at `at`, then a checkpoint over them at `at`.
async fn records_then_checkpoint(s: &Setup, at: i64, n: usize) {
    let events = (0..n).map(|i| event(at, &format!("r{at}-{i}"))).collect();
    let stored = s.store.append_audit(events).await.unwrap();
    let head = stored.last().unwrap();
    let detail = sign_checkpoint(&s.signer, head, at).unwrap();
    s.store
        .append_audit(vec![detail.to_event(at)])
        .await
        .unwrap();
}

async fn archive(s: &Setup, segment: &Segment) -> u64 {
    s.store
        .archive_audit(&AuditArchiveAnchor {
            seq: segment.manifest.last_seq,
            hash: segment.manifest.last_hash.clone(),
            first_seq: segment.manifest.first_seq,
            checkpoint_seq: segment.manifest.checkpoint_seq,
            segment_sha256: segment.sha256(),
            archived_at: 3_000,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_segment_verifies_offline_and_the_live_chain_verifies_from_its_anchor() {
    let s = setup().await;
    records_then_checkpoint(&s, 1_000, 3).await; // 1..3, checkpoint 4
    records_then_checkpoint(&s, 2_000, 2).await; // 5..6, checkpoint 7
    s.store
        .append_audit(vec![event(2_500, "tail")])
        .await
        .unwrap(); // 8
    let segment = build_segment(s.store.as_ref(), &s.signer, 1_500, i64::MAX, 3_000)
        .await
        .unwrap()
        .expect("a checkpoint before 1500");
    assert_eq!(
        (segment.manifest.first_seq, segment.manifest.last_seq),
        (1, 3)
    );
    assert_eq!(segment.manifest.checkpoint_seq, 4);
    let report = verify_segment(&segment.bytes, &s.keys).unwrap();
    assert!(report.checkpoint_verified);

    assert_eq!(archive(&s, &segment).await, 3);
    let live = verify_chain(s.store.as_ref(), &s.keys).await.unwrap();
    assert_eq!(live.archived_through, 3);
    assert!(live.anchor_verified);
    assert_eq!(live.records, 5);

    // The next segment continues from the anchor and links to the first one.
    let next = build_segment(s.store.as_ref(), &s.signer, 2_100, i64::MAX, 3_100)
        .await
        .unwrap()
        .expect("the second checkpoint");
    assert_eq!((next.manifest.first_seq, next.manifest.last_seq), (4, 6));
    assert_eq!(next.manifest.first_prev_hash, segment.manifest.last_hash);
    verify_segment(&next.bytes, &s.keys).unwrap();
    archive(&s, &next).await;
    let live = verify_chain(s.store.as_ref(), &s.keys).await.unwrap();
    assert_eq!((live.archived_through, live.records), (6, 2));
}

#[tokio::test]
async fn every_changed_byte_of_a_segment_fails_verification() {
    let s = setup().await;
    records_then_checkpoint(&s, 1_000, 2).await;
    let segment = build_segment(s.store.as_ref(), &s.signer, 1_500, i64::MAX, 3_000)
        .await
        .unwrap()
        .unwrap();
    for i in 0..segment.bytes.len() {
        let mut bytes = segment.bytes.clone();
        bytes[i] ^= 0x01;
        assert!(
            verify_segment(&bytes, &s.keys).is_err(),
            "byte {i} ({:?}) changed and still verified",
            segment.bytes[i] as char
        );
    }
    // Without the signing key's public half the manifest proves nothing: refused.
    let strangers = CheckpointKeys::none("no keys");
    assert!(verify_segment(&segment.bytes, &strangers).is_err());
}

#[tokio::test]
async fn nothing_is_archived_without_a_checkpoint_and_unarchived_records_cannot_be_deleted() {
    let s = setup().await;
    s.store
        .append_audit(vec![event(1_000, "a"), event(1_000, "b")])
        .await
        .unwrap();
    assert!(
        build_segment(s.store.as_ref(), &s.signer, 5_000, i64::MAX, 5_000)
            .await
            .unwrap()
            .is_none()
    );
    // An anchor that does not match the chain is refused, and nothing is deleted.
    let wrong = AuditArchiveAnchor {
        seq: 2,
        hash: "00".repeat(32),
        first_seq: 1,
        checkpoint_seq: 3,
        segment_sha256: "x".into(),
        archived_at: 1,
    };
    assert!(s.store.archive_audit(&wrong).await.is_err());
    assert_eq!(s.store.list_audit(0, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_live_chain_cut_behind_a_forged_anchor_fails() {
    let s = setup().await;
    records_then_checkpoint(&s, 1_000, 3).await; // 1..3, checkpoint 4
    s.store.append_audit(vec![event(1_100, "x")]).await.unwrap(); // 5
                                                                  // An anchor at record 4 (the checkpoint itself) is not signed by any checkpoint.
    let records = s.store.list_audit(0, 10).await.unwrap();
    let cut = AuditArchiveAnchor {
        seq: 4,
        hash: records[3].hash.clone(),
        first_seq: 1,
        checkpoint_seq: 4,
        segment_sha256: "forged".into(),
        archived_at: 1,
    };
    s.store.archive_audit(&cut).await.unwrap();
    let err = verify_chain(s.store.as_ref(), &s.keys).await.unwrap_err();
    assert!(err.to_string().contains("archive anchor"), "{err}");
}
