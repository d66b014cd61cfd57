//! Signed checkpoints against a real SQLite chain: counted when intact, and a rewrite that
//! re-hashes the whole chain (which the chain alone cannot see) fails at the checkpoint.

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod fixtures;

use std::sync::Arc;

use fixtures::event;
use portcullis_audit::{sign_checkpoint, verify_chain, AuditError, AuditLog, CheckpointKeys};
use portcullis_core::audit::{from_hex, link, AuditRecord, ChainBreak, GENESIS_HASH};
use portcullis_core::audit_checkpoint::CheckpointBreak;
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::{Algorithm, JwtSigner, Signer, VerifyingKey};
use portcullis_store::sqlite::SqliteStore;
use portcullis_store::Store;
use sqlx::Connection;

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    log: AuditLog,
    key: Arc<dyn Signer>,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            SqliteStore::open(&dir.path().join("audit.db"))
                .await
                .expect("open store"),
        );
        let log = AuditLog::start(store.clone());
        let (key, _) = SoftwareSigner::generate(Algorithm::ES256).expect("key");
        Fixture {
            dir,
            store,
            log,
            key: Arc::new(key),
        }
    }

    async fn record(&self, range: std::ops::Range<usize>) {
        for i in range {
            self.log.record(event(i)).await.unwrap();
        }
        self.log.flush().await;
    }

    /// Takes a checkpoint of the head as the server's job does, signed by `key`.
    async fn checkpoint_with(&self, key: &Arc<dyn Signer>) {
        let head = self.store.list_audit_desc(i64::MAX, 1).await.expect("head");
        let head = head.first().expect("a record");
        let jwt = JwtSigner::new(Arc::clone(key), "at+jwt");
        let detail = sign_checkpoint(&jwt, head, 1_700_001_000).expect("sign");
        self.log
            .record(detail.to_event(1_700_001_000))
            .await
            .unwrap();
        self.log.flush().await;
    }

    async fn checkpoint(&self) {
        self.checkpoint_with(&self.key).await;
    }

    fn keys(&self) -> CheckpointKeys {
        let mut keys = CheckpointKeys::key_table();
        let public = VerifyingKey::from_jwk(&self.key.public_jwk(), &[self.key.algorithm()]);
        keys.trust(self.key.kid().as_str(), public.expect("verifying key"));
        keys
    }

    /// Rewrites record `seq` and recomputes every hash from there on, through the file with
    /// the append-only triggers dropped: what someone with write access to the database can do.
    async fn rewrite_and_rehash(&self, seq: i64, subject: &str) {
        let mut records = self.store.list_audit(0, u32::MAX).await.expect("list");
        let at = records.iter().position(|r| r.seq == seq).expect("seq");
        records[at].event.subject = subject.into();
        let prev = if at == 0 {
            GENESIS_HASH
        } else {
            from_hex(&records[at - 1].hash).expect("hex")
        };
        let events = records[at..].iter().map(|r| r.event.clone()).collect();
        let rewritten: Vec<AuditRecord> = link(seq - 1, prev, events);
        let mut conn = fixtures::open_without_triggers(&self.dir.path().join("audit.db")).await;
        for r in rewritten {
            sqlx::query("UPDATE audit_log SET subject = ?, prev_hash = ?, hash = ? WHERE seq = ?")
                .bind(&r.event.subject)
                .bind(&r.prev_hash)
                .bind(&r.hash)
                .bind(r.seq)
                .execute(&mut conn)
                .await
                .expect("rewrite");
        }
        conn.close().await.expect("close");
    }
}

#[tokio::test]
async fn intact_checkpoints_are_counted_and_the_uncovered_tail_reported() {
    let f = Fixture::new().await;
    f.record(0..5).await;
    f.checkpoint().await; // covers 5, stored as 6
    f.record(5..8).await;
    f.checkpoint().await; // covers 9, stored as 10
    f.record(8..10).await; // 11, 12
    let report = verify_chain(f.store.as_ref(), &f.keys())
        .await
        .expect("verifies");
    assert_eq!((report.records, report.last_seq), (12, 12));
    assert_eq!(report.checkpoints.verified, 2);
    assert_eq!(report.checkpoints.unverifiable, 0);
    assert_eq!(report.checkpoints.last_seq, 9);
    assert_eq!(report.records_after_checkpoint(), 3);
}

#[tokio::test]
async fn a_rehashed_rewrite_passes_the_chain_but_fails_at_the_covering_checkpoint() {
    let f = Fixture::new().await;
    f.record(0..5).await;
    f.checkpoint().await; // covers 5, stored as 6
    f.record(5..7).await;
    f.rewrite_and_rehash(3, "jti-forged").await;
    // The chain alone is consistent again ...
    let chain_only = verify_chain(f.store.as_ref(), &CheckpointKeys::none("chain only"))
        .await
        .map(|r| r.records);
    assert!(
        matches!(
            chain_only,
            Err(AuditError::Broken(ChainBreak::Checkpoint(
                CheckpointBreak::HashMismatch { seq: 6, covered: 5 }
            )))
        ),
        "even without keys the signed hash no longer matches: {chain_only:?}"
    );
    // ... and with the key table the error names the checkpoint and what it covered.
    let result = verify_chain(f.store.as_ref(), &f.keys()).await;
    let Err(AuditError::Broken(broken)) = result else {
        panic!("a rewrite before a checkpoint must fail: {result:?}")
    };
    assert_eq!(
        broken,
        ChainBreak::Checkpoint(CheckpointBreak::HashMismatch { seq: 6, covered: 5 })
    );
    assert!(broken.to_string().contains("record 6"), "{broken}");
}

#[tokio::test]
async fn a_rewrite_after_the_last_checkpoint_is_not_covered_by_it() {
    let f = Fixture::new().await;
    f.record(0..5).await;
    f.checkpoint().await; // covers 5, stored as 6
    f.record(5..7).await; // 7, 8
    f.rewrite_and_rehash(8, "jti-forged").await;
    let report = verify_chain(f.store.as_ref(), &f.keys())
        .await
        .expect("the tail after the checkpoint is not pinned");
    assert_eq!(report.checkpoints.last_seq, 5);
    assert_eq!(report.records_after_checkpoint(), 3);
}

#[tokio::test]
async fn a_checkpoint_by_a_key_outside_the_key_table_fails_naming_its_record() {
    let f = Fixture::new().await;
    f.record(0..3).await;
    let (other, _) = SoftwareSigner::generate(Algorithm::ES256).expect("key");
    let other: Arc<dyn Signer> = Arc::new(other);
    f.checkpoint_with(&other).await; // stored as 4
    let result = verify_chain(f.store.as_ref(), &f.keys()).await;
    assert!(
        matches!(
            result,
            Err(AuditError::Broken(ChainBreak::Checkpoint(
                CheckpointBreak::UnknownKey { seq: 4, .. }
            )))
        ),
        "{result:?}"
    );
    // A key the table knows but this node cannot use: reported, not trusted, not an error.
    let mut keys = f.keys();
    keys.distrust(other.kid().as_str(), "destroyed in the token");
    let report = verify_chain(f.store.as_ref(), &keys)
        .await
        .expect("verifies");
    assert_eq!(
        (report.checkpoints.verified, report.checkpoints.unverifiable),
        (0, 1)
    );
    assert_eq!(
        report.checkpoints.last_seq, 0,
        "an unverifiable one pins nothing"
    );
    assert_eq!(
        report.checkpoints.unverifiable_keys,
        vec![(other.kid().to_string(), "destroyed in the token".to_owned())]
    );
}

#[tokio::test]
async fn a_checkpoint_first_on_its_page_finds_its_record_on_the_page_before() {
    let f = Fixture::new().await;
    // verify reads 10 000 records per page: the checkpoint is the first of the second page.
    f.record(0..10_000).await;
    f.checkpoint().await;
    let report = verify_chain(f.store.as_ref(), &f.keys())
        .await
        .expect("verifies");
    assert_eq!(report.checkpoints.verified, 1);
    assert_eq!(report.checkpoints.last_seq, 10_000);
    assert_eq!(report.records_after_checkpoint(), 1);
}
