//! Device keys on a real `Pki` over SQLite, with a CA, an audit log and a clock the tests move.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_core::device::{DeviceState, RevocationReason};
use portcullis_core::device_key::MAX_USABLE_KEYS;
use portcullis_keys::software::MasterKey;
use portcullis_keys::{Algorithm, KeyCustody};
use portcullis_ports::NewDevice;
use portcullis_store::sqlite::SqliteStore;
use portcullis_store::Store;
use tokio::sync::broadcast::error::TryRecvError;

use super::*;
use crate::ca::{CaSettings, CertificateAuthority};
use crate::profile::CertificateProfile;
use crate::PkiUrls;

const T0: i64 = 1_800_000_000;

struct Fixture {
    pki: Pki,
    store: Arc<dyn Store>,
    clock: Arc<AtomicI64>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("keys.db"))
            .await
            .unwrap(),
    );
    let master = Arc::new(MasterKey::from_bytes([7; 32]));
    let settings = CaSettings {
        name: "Key CA".into(),
        algorithm: Algorithm::ES256,
        urls: PkiUrls::under("http://127.0.0.1:8080"),
        profile: CertificateProfile::default(),
    };
    let custody = KeyCustody::Software(master.clone());
    let (ca, _) = CertificateAuthority::load_or_create(store.as_ref(), &custody, &settings, T0)
        .await
        .unwrap();
    let audit = portcullis_audit::AuditLog::start(store.clone());
    let clock = Arc::new(AtomicI64::new(T0));
    let now = clock.clone();
    let pki = Pki::new(
        ca,
        store.clone(),
        audit,
        Zeroizing::new(vec![3; 32]),
        master,
        86_400,
        1000,
    )
    .unwrap()
    .with_clock(move || now.load(Ordering::SeqCst));
    Fixture {
        pki,
        store,
        clock,
        _dir: dir,
    }
}

fn id(s: &str) -> DeviceId {
    DeviceId::parse(s).unwrap()
}

impl Fixture {
    async fn register(&self, device: &str) -> DeviceId {
        let new = NewDevice {
            device_id: id(device),
            model: None,
            attrs: Default::default(),
        };
        self.pki.register_device("admin:test", new).await.unwrap();
        id(device)
    }

    fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    /// The audit actions recorded so far, with their subjects and details as text.
    async fn audit(&self) -> Vec<(String, String, String)> {
        let records = self.store.list_audit(0, 1000).await.unwrap();
        records
            .into_iter()
            .map(|r| (r.event.action, r.event.subject, r.event.detail.to_string()))
            .collect()
    }
}

fn decode(secret: &Secret) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(secret.expose()).unwrap()
}

#[tokio::test]
async fn a_created_key_is_shown_once_stored_sealed_and_unseals_to_the_same_bytes() {
    let f = fixture().await;
    let device = f.register("sensor-1").await;
    let (info, secret) = f.pki.create_device_key("admin:ops", &device).await.unwrap();
    assert_eq!(info.device_id, device);
    assert_eq!(info.created_at, T0);
    assert_eq!(info.expires_at, None);
    assert!(info.key_id.as_str().starts_with('k') && info.key_id.as_str().len() == 9);
    let bytes = decode(&secret);
    assert_eq!(bytes.len(), 32);
    assert!(!secret.expose().contains('='), "base64url without padding");

    // Listed without material; stored only sealed.
    assert_eq!(
        f.pki.device_keys(&device).await.unwrap(),
        std::slice::from_ref(&info)
    );
    let stored = f.store.list_device_keys(&device).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(
        !stored[0].sealed.windows(32).any(|w| w == bytes.as_slice()),
        "the material is not stored in clear"
    );

    let material = f.pki.device_key_material(&device).await.unwrap();
    assert_eq!(material.len(), 1);
    assert_eq!(material[0].info, info);
    assert_eq!(material[0].key.as_slice(), bytes.as_slice());
    let shown = format!("{:?} {:?}", material[0], secret);
    assert!(!shown.contains(secret.expose()), "{shown}");

    let audit = f.audit().await;
    let created = audit
        .iter()
        .find(|(action, _, _)| action == "device.key_created")
        .expect("audited");
    assert_eq!(created.1, "sensor-1");
    assert!(created.2.contains(info.key_id.as_str()));
    assert!(!created.2.contains(secret.expose()));
}

#[tokio::test]
async fn a_rotation_keeps_older_keys_for_the_overlap_only() {
    let f = fixture().await;
    let device = f.register("sensor-2").await;
    let (old, _) = f.pki.create_device_key("admin:ops", &device).await.unwrap();
    f.advance(10);
    let (new, new_secret) = f
        .pki
        .rotate_device_key("admin:ops", &device, 3600)
        .await
        .unwrap();
    let listed = f.pki.device_keys(&device).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].key_id, old.key_id);
    assert_eq!(listed[0].expires_at, Some(T0 + 10 + 3600));
    assert_eq!(listed[1], new);
    assert_eq!(f.pki.device_key_material(&device).await.unwrap().len(), 2);

    // Once the overlap is over only the new key is handed out.
    f.advance(3600);
    let material = f.pki.device_key_material(&device).await.unwrap();
    assert_eq!(material.len(), 1);
    assert_eq!(material[0].info.key_id, new.key_id);
    assert_eq!(material[0].key.as_slice(), decode(&new_secret).as_slice());

    // Without overlap the older keys end at once.
    let (newest, _) = f
        .pki
        .rotate_device_key("admin:ops", &device, 0)
        .await
        .unwrap();
    let material = f.pki.device_key_material(&device).await.unwrap();
    assert_eq!(material.len(), 1);
    assert_eq!(material[0].info.key_id, newest.key_id);

    let too_long = f
        .pki
        .rotate_device_key("admin:ops", &device, 30 * 86_400 + 1)
        .await
        .unwrap_err();
    assert!(matches!(too_long, PkiError::Invalid(_)), "{too_long}");
    let rotations = f
        .audit()
        .await
        .into_iter()
        .filter(|(action, _, _)| action == "device.key_rotated")
        .count();
    assert_eq!(rotations, 2);
}

#[tokio::test]
async fn only_known_devices_that_are_not_final_get_keys_and_their_usable_keys_are_capped() {
    let f = fixture().await;
    let ghost = id("ghost");
    assert!(matches!(
        f.pki.create_device_key("admin:ops", &ghost).await,
        Err(PkiError::NotFound(_))
    ));
    assert!(matches!(
        f.pki.rotate_device_key("admin:ops", &ghost, 0).await,
        Err(PkiError::NotFound(_))
    ));
    assert!(matches!(
        f.pki.device_keys(&ghost).await,
        Err(PkiError::NotFound(_))
    ));
    assert!(matches!(
        f.pki.device_key_material(&ghost).await,
        Err(PkiError::NotFound(_))
    ));
    let key = DeviceKeyId::parse("k1").unwrap();
    assert!(matches!(
        f.pki.delete_device_key("admin:ops", &ghost, &key).await,
        Err(PkiError::NotFound(_))
    ));

    let suspended = f.register("sensor-s").await;
    f.pki
        .set_device_state("admin:ops", &suspended, DeviceState::Suspended)
        .await
        .unwrap();
    assert!(f
        .pki
        .create_device_key("admin:ops", &suspended)
        .await
        .is_ok());
    let revoked = f.register("sensor-r").await;
    f.pki
        .revoke_device("admin:ops", &revoked, RevocationReason::KeyCompromise)
        .await
        .unwrap();
    let decommissioned = f.register("sensor-d").await;
    f.pki
        .set_device_state("admin:ops", &decommissioned, DeviceState::Decommissioned)
        .await
        .unwrap();
    for device in [&revoked, &decommissioned] {
        let err = f
            .pki
            .create_device_key("admin:ops", device)
            .await
            .unwrap_err();
        assert!(matches!(err, PkiError::NotPermitted(_)), "{err}");
        assert!(err.to_string().contains("cannot get new keys"), "{err}");
    }

    let full = f.register("sensor-full").await;
    for _ in 0..MAX_USABLE_KEYS {
        f.pki.create_device_key("admin:ops", &full).await.unwrap();
    }
    let err = f
        .pki
        .create_device_key("admin:ops", &full)
        .await
        .unwrap_err();
    assert!(matches!(err, PkiError::NotPermitted(_)), "{err}");
    assert!(f
        .pki
        .rotate_device_key("admin:ops", &full, 60)
        .await
        .is_err());
    // A rotation without overlap ends the others, so it always fits.
    f.pki
        .rotate_device_key("admin:ops", &full, 0)
        .await
        .unwrap();
    assert_eq!(f.pki.device_key_material(&full).await.unwrap().len(), 1);
    f.pki.create_device_key("admin:ops", &full).await.unwrap();
}

#[tokio::test]
async fn a_deleted_key_is_gone_and_audited_once() {
    let f = fixture().await;
    let device = f.register("sensor-3").await;
    let (info, _) = f.pki.create_device_key("admin:ops", &device).await.unwrap();
    assert!(f
        .pki
        .delete_device_key("admin:ops", &device, &info.key_id)
        .await
        .unwrap());
    assert!(!f
        .pki
        .delete_device_key("admin:ops", &device, &info.key_id)
        .await
        .unwrap());
    assert!(f.pki.device_keys(&device).await.unwrap().is_empty());
    assert!(f.pki.device_key_material(&device).await.unwrap().is_empty());
    let deletions: Vec<_> = f
        .audit()
        .await
        .into_iter()
        .filter(|(action, _, _)| action == "device.key_deleted")
        .collect();
    assert_eq!(deletions.len(), 1);
    assert!(deletions[0].2.contains(info.key_id.as_str()));
}

#[tokio::test]
async fn a_sealed_key_moved_onto_another_row_does_not_unseal() {
    let f = fixture().await;
    let a = f.register("sensor-a").await;
    let b = f.register("sensor-b").await;
    f.pki.create_device_key("admin:ops", &a).await.unwrap();
    let (b_info, _) = f.pki.create_device_key("admin:ops", &b).await.unwrap();
    let a_sealed = f.store.list_device_keys(&a).await.unwrap()[0]
        .sealed
        .clone();
    f.store
        .update_device_key_sealed(&b, &b_info.key_id, &a_sealed)
        .await
        .unwrap();
    let err = f.pki.device_key_material(&b).await.unwrap_err();
    assert!(matches!(err, PkiError::Key(_)), "{err}");
    assert_eq!(f.pki.device_key_material(&a).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_subscriber_hears_state_changes_key_writes_and_other_nodes_changes() {
    let f = fixture().await;
    let device = f.register("sensor-w").await;
    let mut watch = f.pki.watch_devices();
    let mut next = || match watch.try_recv() {
        Ok(change) => Some(change),
        Err(TryRecvError::Empty) => None,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(next(), None, "nothing before the subscription");

    f.pki
        .set_device_state("admin:ops", &device, DeviceState::Suspended)
        .await
        .unwrap();
    assert_eq!(next(), Some(Some(device.clone())), "state change");
    while next().is_some() {}

    let (info, _) = f.pki.create_device_key("admin:ops", &device).await.unwrap();
    assert_eq!(next(), Some(Some(device.clone())), "key created");
    assert_eq!(next(), None);
    f.pki
        .rotate_device_key("admin:ops", &device, 0)
        .await
        .unwrap();
    assert_eq!(next(), Some(Some(device.clone())), "key rotated");
    f.pki
        .delete_device_key("admin:ops", &device, &info.key_id)
        .await
        .unwrap();
    assert_eq!(next(), Some(Some(device.clone())), "key deleted");

    // What another node changed reaches this node through `device_changed` (the change feed).
    let remote = id("elsewhere");
    f.pki.device_changed(&remote);
    assert_eq!(next(), Some(Some(remote)), "remote change");
    f.pki.devices_changed();
    assert_eq!(next(), Some(None), "everything");
    assert_eq!(next(), None);
}
