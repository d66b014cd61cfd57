//! Symmetric device keys: stored sealed per device, listed in creation order, rotated with
//! an overlap in one transaction, deleted, resealed, and paged through for a rewrap.
//!
//! Each check uses devices of its own (`dk-<check>-...`), so checks never see each other's
//! keys as theirs.

use portcullis_core::device::DeviceId;
use portcullis_core::device_key::{DeviceKeyId, DeviceKeyInfo};
use portcullis_core::UnixTime;

use super::pki::{device_id, sample_device};
use crate::{Store, StoreError, StoredDeviceKey};

fn key_id(s: &str) -> DeviceKeyId {
    DeviceKeyId::parse(s).expect("valid test key id")
}

/// A key of `device` named `key`, created at `created_at`, whose sealed blob names both
/// (awkward bytes included), so a mix-up between rows shows.
pub fn sample_device_key(
    device: &str,
    key: &str,
    created_at: UnixTime,
    expires_at: Option<UnixTime>,
) -> StoredDeviceKey {
    let mut sealed = vec![0, 1, b'\\', b'\n', 255];
    sealed.extend_from_slice(format!("sealed {device}/{key}").as_bytes());
    StoredDeviceKey {
        info: DeviceKeyInfo {
            device_id: device_id(device),
            key_id: key_id(key),
            created_at,
            expires_at,
        },
        sealed,
    }
}

async fn registered(store: &dyn Store, id: &str) -> DeviceId {
    store
        .insert_device(&sample_device(id))
        .await
        .expect("device");
    device_id(id)
}

/// Every field survives the round trip; a device's keys come back by creation time, then key
/// id; other devices' keys are not among them.
pub async fn device_keys_round_trip_in_creation_order(store: &dyn Store) {
    let device = registered(store, "dk-order").await;
    registered(store, "dk-order-other").await;
    let keys = [
        sample_device_key("dk-order", "k2", 200, None),
        sample_device_key("dk-order", "k1", 100, Some(4_000_000_000)),
        sample_device_key("dk-order", "k0", 200, None),
        sample_device_key("dk-order-other", "k9", 50, None),
    ];
    for key in &keys {
        store.insert_device_key(key).await.expect("insert key");
    }
    let listed = store.list_device_keys(&device).await.expect("list");
    assert_eq!(listed, [keys[1].clone(), keys[2].clone(), keys[0].clone()]);
    assert!(store
        .list_device_keys(&device_id("dk-order-none"))
        .await
        .expect("list of an unknown device")
        .is_empty());
}

/// A key id is unique per device only; a key for a device that does not exist is
/// `NotFound`, never stored.
pub async fn duplicate_device_key_conflicts_and_unknown_device_is_not_found(store: &dyn Store) {
    registered(store, "dk-dup-a").await;
    registered(store, "dk-dup-b").await;
    let key = sample_device_key("dk-dup-a", "k1", 100, None);
    store.insert_device_key(&key).await.expect("first");
    match store.insert_device_key(&key).await {
        Err(StoreError::Conflict(m)) => {
            assert!(m.contains("dk-dup-a") && m.contains("k1"), "{m}");
            assert!(
                !m.contains("sealed"),
                "the message never quotes the material: {m}"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    store
        .insert_device_key(&sample_device_key("dk-dup-b", "k1", 100, None))
        .await
        .expect("the same key id on another device");
    let ghost = sample_device_key("dk-dup-ghost", "k1", 100, None);
    assert!(
        matches!(
            store.insert_device_key(&ghost).await,
            Err(StoreError::NotFound)
        ),
        "a key needs its device"
    );
    assert!(matches!(
        store.rotate_device_key(&ghost, 1000).await,
        Err(StoreError::NotFound)
    ));
    assert!(store
        .list_device_keys(&device_id("dk-dup-ghost"))
        .await
        .expect("list")
        .is_empty());
}

/// A rotation adds the new key and ends every other key at the deadline unless it ends
/// earlier already; a rotation that fails (a duplicate id) changes nothing.
pub async fn rotation_adds_a_key_and_ends_the_others_in_one_transaction(store: &dyn Store) {
    let device = registered(store, "dk-rot").await;
    for key in [
        sample_device_key("dk-rot", "a", 100, None),
        sample_device_key("dk-rot", "b", 110, Some(500)),
        sample_device_key("dk-rot", "c", 120, Some(5000)),
    ] {
        store.insert_device_key(&key).await.expect("insert");
    }
    let deadlines = |keys: Vec<StoredDeviceKey>| -> Vec<(String, Option<UnixTime>)> {
        keys.into_iter()
            .map(|k| (k.info.key_id.to_string(), k.info.expires_at))
            .collect()
    };
    let before = deadlines(store.list_device_keys(&device).await.expect("list"));
    let clash = sample_device_key("dk-rot", "a", 130, None);
    assert!(matches!(
        store.rotate_device_key(&clash, 10).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        deadlines(store.list_device_keys(&device).await.expect("list")),
        before,
        "a failed rotation expires nothing"
    );

    let new = sample_device_key("dk-rot", "d", 130, None);
    store.rotate_device_key(&new, 1000).await.expect("rotate");
    let after = store.list_device_keys(&device).await.expect("list");
    assert_eq!(
        deadlines(after.clone()),
        [
            ("a".to_owned(), Some(1000)),
            ("b".to_owned(), Some(500)),
            ("c".to_owned(), Some(1000)),
            ("d".to_owned(), None),
        ]
    );
    assert_eq!(after.last(), Some(&new), "the new key is stored as given");
}

/// Deleting a key says whether there was one; resealing replaces only the material of the
/// key named and reports a missing key.
pub async fn device_keys_are_deleted_and_resealed_one_by_one(store: &dyn Store) {
    let device = registered(store, "dk-del").await;
    for key in ["k1", "k2"] {
        store
            .insert_device_key(&sample_device_key("dk-del", key, 100, None))
            .await
            .expect("insert");
    }
    assert!(store
        .delete_device_key(&device, &key_id("k1"))
        .await
        .expect("delete"));
    assert!(!store
        .delete_device_key(&device, &key_id("k1"))
        .await
        .expect("delete again"));
    assert!(!store
        .delete_device_key(&device_id("dk-del-ghost"), &key_id("k2"))
        .await
        .expect("delete of an unknown device's key"));
    store
        .update_device_key_sealed(&device, &key_id("k2"), b"resealed")
        .await
        .expect("reseal");
    let listed = store.list_device_keys(&device).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sealed, b"resealed");
    assert_eq!(listed[0].info.created_at, 100);
    assert!(matches!(
        store
            .update_device_key_sealed(&device, &key_id("k1"), b"x")
            .await,
        Err(StoreError::NotFound)
    ));
}

/// Every key of every device pages in (device id, key id) byte order, each exactly once.
pub async fn all_device_keys_page_in_id_order(store: &dyn Store) {
    let mut expected = Vec::new();
    for device in ["dk-page-B", "dk-page-a", "dk-page-a.1"] {
        registered(store, device).await;
        for key in ["k_1", "K0", "k-1"] {
            let key = sample_device_key(device, key, 100, None);
            store.insert_device_key(&key).await.expect("insert");
            expected.push((device.to_owned(), key.info.key_id.to_string()));
        }
    }
    expected.sort();
    let mut seen = Vec::new();
    let mut after: Option<(DeviceId, DeviceKeyId)> = None;
    loop {
        let page = store
            .list_all_device_keys(after.as_ref().map(|(d, k)| (d, k)), 2)
            .await
            .expect("page");
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 2);
        after = Some((last.info.device_id.clone(), last.info.key_id.clone()));
        seen.extend(
            page.into_iter()
                .filter(|k| k.info.device_id.as_str().starts_with("dk-page"))
                .map(|k| (k.info.device_id.to_string(), k.info.key_id.to_string())),
        );
    }
    assert_eq!(seen, expected);
}
