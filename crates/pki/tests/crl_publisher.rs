//! One node builds the CRL and publishes it in the store; the others serve the same bytes.
//! Two publishers on one (SQLite) store stand for two nodes; the store's change feed is played
//! by calling `mark_published` / `mark_stale` as `server::cache_coherence` does.

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use portcullis_core::device::RevocationReason;
use portcullis_keys::software::MasterKey;
use portcullis_keys::Algorithm;
use portcullis_keys::KeyCustody;
use portcullis_pki::ca::{CaSettings, CertificateAuthority};
use portcullis_pki::crl::{build_crl, CrlPublisher, CRL_SETTING};
use portcullis_pki::profile::CertificateProfile;
use portcullis_pki::PkiUrls;
use portcullis_store::sqlite::SqliteStore;
use portcullis_store::{IssuedCertificate, Store};

const NOW: i64 = 1_800_000_000;
const NOW_MS: i64 = NOW * 1000;
const VALIDITY: i64 = 86_400;

async fn ca(store: &dyn Store, name: &str, seed: u8) -> Arc<CertificateAuthority> {
    let vault = KeyCustody::Software(Arc::new(MasterKey::from_bytes([seed; 32])));
    let settings = CaSettings {
        name: name.into(),
        algorithm: Algorithm::ES256,
        urls: PkiUrls::under("http://127.0.0.1:8080"),
        profile: CertificateProfile::default(),
    };
    CertificateAuthority::load_or_create(store, &vault, &settings, NOW)
        .await
        .unwrap()
        .0
}

struct Cluster {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    ca: Arc<CertificateAuthority>,
}

impl Cluster {
    async fn new() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("pki.db")).await.unwrap());
        let ca = ca(store.as_ref(), "CRL CA", 7).await;
        Cluster {
            _dir: dir,
            store,
            ca,
        }
    }

    fn node(&self, leader: bool) -> CrlPublisher {
        let node = CrlPublisher::new(self.ca.clone(), self.store.clone(), VALIDITY);
        node.set_leader(leader);
        node
    }

    async fn revoke(&self, serial: &str) {
        self.store
            .insert_certificate(&IssuedCertificate {
                serial: serial.to_owned(),
                device_id: None,
                subject: "CN=device".into(),
                not_before: NOW - 10,
                not_after: NOW + 3600,
                sha256: "00".repeat(32),
                der: vec![0x30, 0x00],
                revoked_at: None,
                revocation_reason: None,
            })
            .await
            .unwrap();
        assert!(self
            .store
            .revoke_certificate(serial, RevocationReason::KeyCompromise, NOW)
            .await
            .unwrap());
    }

    async fn published(&self) -> Vec<u8> {
        self.store.get_setting(CRL_SETTING).await.unwrap().unwrap()
    }
}

#[tokio::test]
async fn the_builder_publishes_and_followers_serve_the_same_bytes() {
    let c = Cluster::new().await;
    let (a, b) = (c.node(true), c.node(false));
    let built = a.current(NOW_MS).await.unwrap();
    assert_eq!(c.published().await, built.der);
    let served = b.current(NOW_MS + 10).await.unwrap();
    assert_eq!(served.der, built.der, "a follower serves the published CRL");
    assert_eq!(served.number, built.number);
}

#[tokio::test]
async fn a_revocation_reaches_followers_through_the_published_crl() {
    let c = Cluster::new().await;
    let (a, b) = (c.node(true), c.node(false));
    let first = a.current(NOW_MS).await.unwrap();
    assert_eq!(b.current(NOW_MS).await.unwrap().entries, 0);

    c.revoke("7a01").await;
    // Both nodes hear `cert:7a01`; only the builder rebuilds.
    a.mark_stale();
    b.mark_stale();
    assert_eq!(
        b.current(NOW_MS + 5).await.unwrap().der,
        first.der,
        "a follower keeps serving the published CRL until a newer one is published"
    );
    let second = a.current(NOW_MS + 5).await.unwrap();
    assert_eq!(second.entries, 1);
    assert!(second.number > first.number);
    // `setting:pki.crl` reaches the follower.
    b.mark_published();
    assert_eq!(b.current(NOW_MS + 6).await.unwrap().der, second.der);
}

#[tokio::test]
async fn numbers_stay_above_a_crl_published_by_a_clock_running_ahead() {
    let c = Cluster::new().await;
    let (fast, slow) = (c.node(true), c.node(true));
    let ahead = fast.current(NOW_MS + 3_600_000).await.unwrap();
    let behind = slow.current(NOW_MS).await.unwrap();
    assert_eq!(behind.number, ahead.number + 1);
    assert_eq!(c.published().await, behind.der, "the newest build wins");
}

#[tokio::test]
async fn a_planted_crl_is_refused_and_rebuilt() {
    let c = Cluster::new().await;
    // A CRL signed by another CA, then plain garbage, planted in the store.
    let other_dir = tempfile::tempdir().unwrap();
    let other_store = SqliteStore::open(&other_dir.path().join("o.db"))
        .await
        .unwrap();
    let rogue = ca(&other_store, "CRL CA", 9).await;
    let foreign = build_crl(&rogue, &[], NOW_MS, u64::MAX / 2, VALIDITY).unwrap();
    for planted in [foreign.der.clone(), b"not a CRL".to_vec()] {
        let old = c.store.get_setting(CRL_SETTING).await.unwrap();
        match old {
            None => {
                c.store
                    .put_setting_if_absent(CRL_SETTING, &planted)
                    .await
                    .unwrap();
            }
            Some(old) => assert!(c
                .store
                .replace_setting(CRL_SETTING, &old, &planted)
                .await
                .unwrap()),
        }
        let follower = c.node(false);
        let served = follower.current(NOW_MS).await.unwrap();
        assert_ne!(served.der, planted);
        assert!(
            served.number < u64::MAX / 2,
            "the planted number is ignored"
        );
        assert_eq!(
            c.published().await,
            served.der,
            "the planted row is replaced"
        );
    }
}

#[tokio::test]
async fn a_follower_builds_when_no_builder_has_published() {
    let c = Cluster::new().await;
    let follower = c.node(false);
    let crl = follower.current(NOW_MS).await.unwrap();
    assert_eq!(c.published().await, crl.der);
    // A published CRL past three quarters of its validity is no longer served by followers.
    let later = NOW_MS + VALIDITY * 1000 * 3 / 4 + 1000;
    let other = c.node(false);
    let fresh = other.current(later).await.unwrap();
    assert!(fresh.number > crl.number);
    assert_eq!(fresh.this_update, later / 1000);
}

#[tokio::test]
async fn a_node_that_becomes_the_builder_rebuilds_once() {
    let c = Cluster::new().await;
    let (a, b) = (c.node(true), c.node(false));
    let first = a.current(NOW_MS).await.unwrap();
    assert_eq!(b.current(NOW_MS).await.unwrap().der, first.der);
    // A revocation the old builder never published (it died); B takes the lease over.
    c.revoke("7b02").await;
    a.set_leader(false);
    b.set_leader(true);
    let rebuilt = b.current(NOW_MS + 20).await.unwrap();
    assert_eq!(rebuilt.entries, 1);
    assert_eq!(c.published().await, rebuilt.der);
}
