//! The device PKI: devices and their one-time enrollment secrets, issued certificates and
//! their revocation.
//!
//! Certificates of each check get serials of their own (`serial(check, i)`: the check's
//! number, then the certificate's), so checks never see each other's rows as theirs.

use std::collections::BTreeMap;
use std::sync::Arc;

use portcullis_core::device::{Device, DeviceId, DeviceState, RevocationReason};
use portcullis_core::SecretHash;

use super::FAR_FUTURE;
use crate::{
    CertificateFilter, Enrollment, IssuedCertificate, RevokedCertificate, Store, StoreError,
};

pub(crate) fn device_id(s: &str) -> DeviceId {
    DeviceId::parse(s).expect("valid test device id")
}

/// A registered device named `id`, with a model, two attributes and an unspent enrollment
/// secret whose MAC is `mac-of-<id>`.
pub fn sample_device(id: &str) -> Device {
    Device {
        device_id: device_id(id),
        model: Some("meter-x2".into()),
        attrs: BTreeMap::from([
            ("batch".to_owned(), "2024-07".to_owned()),
            ("site".to_owned(), "plant 7 / hall ü".to_owned()),
        ]),
        state: DeviceState::Registered,
        enrollment_secret: Some(SecretHash {
            mac: format!("mac-of-{id}"),
            expires_at: None,
        }),
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
    }
}

/// The serial of certificate `i` of check `check`: lowercase hex of one fixed width, so
/// serials sort in `(check, i)` order.
pub fn serial(check: u8, i: u16) -> String {
    format!("{check:02x}{i:04x}")
}

/// An unrevoked certificate of `device` (or of the server, for `None`) valid until
/// `not_after`. Its SHA-256 is derived from the serial (and its length), so it is unique too.
pub fn sample_certificate(serial: &str, device: Option<&str>, not_after: i64) -> IssuedCertificate {
    IssuedCertificate {
        serial: serial.to_owned(),
        device_id: device.map(device_id),
        subject: format!("CN={},O=Portcullis Test", device.unwrap_or("server")),
        not_before: 1_700_000_000,
        not_after,
        sha256: format!("{:0>64}", format!("{serial}{:02x}", serial.len())),
        der: vec![0x30, 0x82, 0x01, 0x0a, 0, 0xff, b'\t', b'\\'],
        revoked_at: None,
        revocation_reason: None,
    }
}

/// Every column survives the round trip, with and without the optional ones.
pub async fn device_round_trips_with_attributes_and_secret(store: &dyn Store) {
    let full = Device {
        model: Some("gateway \"GW-9\"\ttab".into()),
        enrollment_secret: Some(SecretHash {
            mac: "c2VjcmV0LW1hYy1iYXNlNjR1cmw".into(),
            expires_at: Some(1_700_086_400),
        }),
        updated_at: 1_700_000_100,
        ..sample_device("pki-rt-full")
    };
    let bare = Device {
        model: None,
        attrs: BTreeMap::new(),
        state: DeviceState::Enrolled,
        enrollment_secret: None,
        ..sample_device("pki-rt-bare")
    };
    for device in [&full, &bare] {
        store.insert_device(device).await.expect("insert");
        assert_eq!(
            store
                .get_device(&device.device_id)
                .await
                .expect("get")
                .as_ref(),
            Some(device)
        );
    }
    assert_eq!(
        store
            .get_device(&device_id("pki-rt-never"))
            .await
            .expect("get"),
        None
    );
}

/// A second insert of the same id is a `Conflict` naming the device, never its secret.
pub async fn duplicate_device_conflicts(store: &dyn Store) {
    let device = sample_device("pki-dup");
    store.insert_device(&device).await.expect("insert");
    let again = store.insert_device(&device).await;
    let Err(StoreError::Conflict(message)) = again else {
        panic!("expected a conflict, got {again:?}");
    };
    assert!(message.contains("pki-dup"), "{message}");
    assert!(!message.contains("mac-of"), "{message}");
}

/// A bulk insert skips existing ids and returns only the new ones, in the order given:
/// running one list twice inserts nothing the second time.
pub async fn bulk_device_insert_is_idempotent(store: &dyn Store) {
    let devices: Vec<Device> = (0..1500)
        .map(|i| sample_device(&format!("pki-bulk-{i:04}")))
        .collect();
    let ids: Vec<DeviceId> = devices.iter().map(|d| d.device_id.clone()).collect();
    assert_eq!(store.insert_devices(&devices).await.expect("first"), ids);
    assert!(store
        .insert_devices(&devices)
        .await
        .expect("second")
        .is_empty());
    assert_eq!(
        store.get_device(&ids[777]).await.expect("get").as_ref(),
        Some(&devices[777])
    );

    // Existing rows are left as they are, not overwritten by the list's values.
    let mut changed = sample_device("pki-bulk-0001");
    changed.model = Some("other".into());
    let mixed = [
        sample_device("pki-bulk-new-b"),
        changed,
        sample_device("pki-bulk-new-a"),
        sample_device("pki-bulk-new-b"),
    ];
    let inserted = store.insert_devices(&mixed).await.expect("mixed");
    assert_eq!(
        inserted,
        vec![device_id("pki-bulk-new-b"), device_id("pki-bulk-new-a")]
    );
    assert_eq!(
        store.get_device(&ids[1]).await.expect("get").as_ref(),
        Some(&devices[1])
    );
    assert!(store.insert_devices(&[]).await.expect("empty").is_empty());
}

/// Keyset pages come back in id order with nothing skipped or repeated.
pub async fn list_devices_pages_in_id_order(store: &dyn Store) {
    let mut wanted: Vec<Device> = [4, 0, 3, 1, 2, 6, 5]
        .iter()
        .map(|i| sample_device(&format!("pki-page-{i}")))
        .collect();
    store.insert_devices(&wanted).await.expect("insert");
    wanted.sort_by(|a, b| a.device_id.cmp(&b.device_id));

    assert!(store
        .list_devices(None, 0)
        .await
        .expect("empty page")
        .is_empty());
    let mut seen: Vec<Device> = Vec::new();
    let mut after: Option<DeviceId> = None;
    loop {
        let page = store.list_devices(after.as_ref(), 2).await.expect("page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.device_id.clone());
        seen.extend(page);
    }
    assert!(
        seen.windows(2).all(|w| w[0].device_id < w[1].device_id),
        "strictly ascending"
    );
    let ours: Vec<Device> = seen
        .into_iter()
        .filter(|d| d.device_id.as_str().starts_with("pki-page-"))
        .collect();
    assert_eq!(ours, wanted);
}

/// An update replaces everything but the id and `created_at`; a missing device is `false`.
pub async fn update_device_replaces_fields_or_reports_missing(store: &dyn Store) {
    let original = sample_device("pki-upd");
    store.insert_device(&original).await.expect("insert");
    let updated = Device {
        model: None,
        attrs: BTreeMap::from([("rack".to_owned(), "r12".to_owned())]),
        state: DeviceState::Suspended,
        enrollment_secret: Some(SecretHash {
            mac: "replacement-mac".into(),
            expires_at: Some(FAR_FUTURE),
        }),
        created_at: 1,
        updated_at: 1_700_000_500,
        ..original.clone()
    };
    assert!(store.update_device(&updated).await.expect("update"));
    let stored = store.get_device(&updated.device_id).await.expect("get");
    assert_eq!(
        stored,
        Some(Device {
            created_at: original.created_at,
            ..updated
        })
    );
    assert!(!store
        .update_device(&sample_device("pki-upd-never"))
        .await
        .expect("update of a missing device"));
    assert_eq!(
        store
            .get_device(&device_id("pki-upd-never"))
            .await
            .expect("get"),
        None,
        "an update never inserts"
    );
}

/// A secret is spent once: a wrong MAC changes nothing, the right one clears it and sets the
/// state, and a replay finds it gone.
pub async fn enrollment_secret_is_spent_once(store: &dyn Store) {
    let device = sample_device("pki-enroll");
    store.insert_device(&device).await.expect("insert");
    let id = &device.device_id;
    assert!(!store
        .consume_enrollment_secret(id, "wrong-mac", DeviceState::Enrolled, 50)
        .await
        .expect("wrong mac"));
    assert_eq!(
        store.get_device(id).await.expect("get").as_ref(),
        Some(&device),
        "a wrong MAC changes nothing"
    );
    assert!(store
        .consume_enrollment_secret(id, "mac-of-pki-enroll", DeviceState::Enrolled, 60)
        .await
        .expect("right mac"));
    let spent = store.get_device(id).await.expect("get");
    assert_eq!(
        spent,
        Some(Device {
            state: DeviceState::Enrolled,
            enrollment_secret: None,
            updated_at: 60,
            ..device.clone()
        })
    );
    assert!(!store
        .consume_enrollment_secret(id, "mac-of-pki-enroll", DeviceState::Enrolled, 70)
        .await
        .expect("replay"));
    assert!(!store
        .consume_enrollment_secret(
            &device_id("pki-enroll-never"),
            "mac-of-pki-enroll-never",
            DeviceState::Enrolled,
            80
        )
        .await
        .expect("unknown device"));
}

/// A device that may not enroll keeps its secret unspendable: suspension keeps the secret, so
/// only the state stops a node whose cached copy still says `registered`. Nothing is written,
/// by the single spend or by a recorded enrollment, until the device is back in a state that
/// may enroll.
pub async fn a_device_that_may_not_enroll_cannot_spend_its_secret(store: &dyn Store) {
    let device = sample_device("pki-suspended-secret");
    store.insert_device(&device).await.expect("insert");
    let id = &device.device_id;
    let mac = "mac-of-pki-suspended-secret";
    for state in [
        DeviceState::Suspended,
        DeviceState::Revoked,
        DeviceState::Decommissioned,
    ] {
        let held = Device {
            state,
            ..device.clone()
        };
        assert!(store.update_device(&held).await.expect("update"));
        assert!(
            !store
                .consume_enrollment_secret(id, mac, DeviceState::Enrolled, 50)
                .await
                .expect("spend"),
            "a {} device spent its secret",
            state.as_str()
        );
        let enrollment = Enrollment {
            device_id: id.clone(),
            spend: Some(mac.to_owned()),
            at: 51,
            cert: sample_certificate(&serial(21, 1), Some("pki-suspended-secret"), FAR_FUTURE),
        };
        assert_eq!(
            store
                .record_enrollments(std::slice::from_ref(&enrollment))
                .await
                .expect("record"),
            vec![false],
            "a {} device enrolled",
            state.as_str()
        );
        assert_eq!(
            store.get_device(id).await.expect("get").as_ref(),
            Some(&held),
            "nothing written while {}",
            state.as_str()
        );
        assert_eq!(
            store.get_certificate(&serial(21, 1)).await.expect("get"),
            None
        );
    }
    assert!(store.update_device(&device).await.expect("resume"));
    assert!(store
        .consume_enrollment_secret(id, mac, DeviceState::Enrolled, 60)
        .await
        .expect("spend once registered"));
}

/// Enrollments are recorded in one transaction: for each, the secret is spent and the
/// certificate recorded together, or neither (a spent secret, a suspended device), without
/// affecting the others of the batch.
pub async fn an_enrollment_records_state_and_certificate_together(store: &dyn Store) {
    let device = sample_device("pki-record");
    store.insert_device(&device).await.expect("insert");
    let id = device.device_id.clone();
    let enrollment = |n: u16, spend: Option<&str>, at: i64| Enrollment {
        device_id: id.clone(),
        spend: spend.map(str::to_owned),
        at,
        cert: sample_certificate(&serial(20, n), Some("pki-record"), super::FAR_FUTURE),
    };
    // In one batch: the secret's first use wins, its replay does not, a renewal does.
    let batch = [
        enrollment(1, Some("mac-of-pki-record"), 90),
        enrollment(2, Some("mac-of-pki-record"), 91),
        enrollment(3, None, 92),
    ];
    assert_eq!(
        store.record_enrollments(&batch).await.expect("enroll"),
        vec![true, false, true]
    );
    let enrolled = store.get_device(&id).await.expect("get").expect("device");
    assert_eq!(enrolled.state, DeviceState::Enrolled);
    assert_eq!(enrolled.enrollment_secret, None);
    for (n, recorded) in [(1, true), (2, false), (3, true)] {
        assert_eq!(
            store
                .get_certificate(&serial(20, n))
                .await
                .expect("get")
                .is_some(),
            recorded,
            "certificate {n}"
        );
    }
    // Once suspended, a renewal records nothing.
    let mut suspended = enrolled;
    suspended.state = DeviceState::Suspended;
    assert!(store.update_device(&suspended).await.expect("suspend"));
    assert_eq!(
        store
            .record_enrollments(&[enrollment(4, None, 93)])
            .await
            .expect("suspended"),
        vec![false]
    );
    assert_eq!(
        store.get_certificate(&serial(20, 4)).await.expect("get"),
        None
    );
    assert_eq!(
        store.record_enrollments(&[]).await.expect("empty"),
        Vec::<bool>::new()
    );
}

/// Eight enrollments presenting one secret at once (each on a pooled connection of its own,
/// so the UPDATEs race in the database): exactly one wins.
pub async fn concurrent_enrollments_with_one_secret_have_one_winner(store: &dyn Store) {
    let device = sample_device("pki-race-joined");
    store.insert_device(&device).await.expect("insert");
    let attempt = || {
        store.consume_enrollment_secret(
            &device.device_id,
            "mac-of-pki-race-joined",
            DeviceState::Enrolled,
            100,
        )
    };
    let (a, b, c, d, e, f, g, h) = tokio::join!(
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt()
    );
    let wins = [a, b, c, d, e, f, g, h]
        .into_iter()
        .map(|r| r.expect("attempt"))
        .filter(|won| *won)
        .count();
    assert_eq!(wins, 1, "exactly one enrollment spends the secret");
}

/// Like [`concurrent_enrollments_with_one_secret_have_one_winner`], with eight spawned tasks
/// released together by a barrier, task `i` working through `stores[i % stores.len()]` (pass
/// several stores on one database to race several nodes).
pub async fn concurrent_enrollment_tasks_have_one_winner(stores: &[Arc<dyn Store>]) {
    const TASKS: usize = 8;
    let device = sample_device("pki-race-tasks");
    stores[0].insert_device(&device).await.expect("insert");
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let barrier = barrier.clone();
            let id = device.device_id.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .consume_enrollment_secret(
                        &id,
                        "mac-of-pki-race-tasks",
                        DeviceState::Enrolled,
                        100,
                    )
                    .await
                    .expect("attempt")
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        if task.await.expect("task") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1, "exactly one of {TASKS} tasks spends the secret");
    let spent = stores[0]
        .get_device(&device.device_id)
        .await
        .expect("get")
        .expect("device");
    assert_eq!(spent.enrollment_secret, None);
    assert_eq!(spent.state, DeviceState::Enrolled);
}

/// Every column survives the round trip: a device's certificate, a server certificate, and
/// one recorded already revoked.
pub async fn certificate_round_trips(store: &dyn Store) {
    let device_cert = sample_certificate(&serial(1, 0), Some("pki-cert-dev"), FAR_FUTURE);
    let server_cert = IssuedCertificate {
        subject: "CN=portcullis.example,O=Ünïcode \"Org\"".into(),
        der: (0..=255).collect(),
        ..sample_certificate(&serial(1, 1), None, FAR_FUTURE)
    };
    let revoked = IssuedCertificate {
        revoked_at: Some(1_700_000_300),
        revocation_reason: Some(RevocationReason::PrivilegeWithdrawn),
        ..sample_certificate(&serial(1, 2), Some("pki-cert-dev"), FAR_FUTURE)
    };
    for cert in [&device_cert, &server_cert, &revoked] {
        store.insert_certificate(cert).await.expect("insert");
        assert_eq!(
            store
                .get_certificate(&cert.serial)
                .await
                .expect("get")
                .as_ref(),
            Some(cert)
        );
    }
    assert_eq!(
        store.get_certificate(&serial(1, 99)).await.expect("get"),
        None
    );
}

/// A second certificate with the same serial, or with the same DER (SHA-256), is a
/// `Conflict` saying which.
pub async fn duplicate_certificate_conflicts(store: &dyn Store) {
    let cert = sample_certificate(&serial(2, 0), Some("pki-cert-dup"), FAR_FUTURE);
    store.insert_certificate(&cert).await.expect("insert");
    let same_serial = IssuedCertificate {
        sha256: format!("{:e>64}", serial(2, 1)),
        ..cert.clone()
    };
    match store.insert_certificate(&same_serial).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains(&cert.serial), "{m}"),
        other => panic!("expected a serial conflict, got {other:?}"),
    }
    let same_der = IssuedCertificate {
        serial: serial(2, 1),
        ..cert.clone()
    };
    match store.insert_certificate(&same_der).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains("SHA-256"), "{m}"),
        other => panic!("expected a SHA-256 conflict, got {other:?}"),
    }
    assert_eq!(
        store.get_certificate(&serial(2, 1)).await.expect("get"),
        None
    );
}

/// Revoking works once; the first revocation's time and reason stand.
pub async fn certificate_revocation_keeps_the_first(store: &dyn Store) {
    let cert = sample_certificate(&serial(3, 0), Some("pki-revoke"), FAR_FUTURE);
    store.insert_certificate(&cert).await.expect("insert");
    assert!(store
        .revoke_certificate(&cert.serial, RevocationReason::KeyCompromise, 1_000)
        .await
        .expect("revoke"));
    assert!(!store
        .revoke_certificate(&cert.serial, RevocationReason::Superseded, 2_000)
        .await
        .expect("revoke again"));
    let stored = store.get_certificate(&cert.serial).await.expect("get");
    assert_eq!(
        stored,
        Some(IssuedCertificate {
            revoked_at: Some(1_000),
            revocation_reason: Some(RevocationReason::KeyCompromise),
            ..cert
        })
    );
    assert!(!store
        .revoke_certificate(&serial(3, 99), RevocationReason::Unspecified, 1_000)
        .await
        .expect("unknown serial"));
}

/// Revoking a device's certificates revokes (and returns) only its unrevoked ones.
pub async fn revoking_a_devices_certificates_returns_only_unrevoked_ones(store: &dyn Store) {
    let ours = [
        sample_certificate(&serial(4, 2), Some("pki-devrev"), FAR_FUTURE),
        sample_certificate(&serial(4, 0), Some("pki-devrev"), FAR_FUTURE),
        sample_certificate(&serial(4, 1), Some("pki-devrev"), FAR_FUTURE),
    ];
    let other = sample_certificate(&serial(4, 3), Some("pki-devrev-other"), FAR_FUTURE);
    for cert in ours.iter().chain([&other]) {
        store.insert_certificate(cert).await.expect("insert");
    }
    assert!(store
        .revoke_certificate(&serial(4, 1), RevocationReason::KeyCompromise, 500)
        .await
        .expect("revoke one"));

    let revoked = store
        .revoke_device_certificates(
            &device_id("pki-devrev"),
            RevocationReason::CessationOfOperation,
            600,
        )
        .await
        .expect("revoke the device's");
    assert_eq!(revoked, vec![serial(4, 0), serial(4, 2)]);
    for s in &revoked {
        let cert = store.get_certificate(s).await.expect("get").expect("cert");
        assert_eq!(cert.revoked_at, Some(600));
        assert_eq!(
            cert.revocation_reason,
            Some(RevocationReason::CessationOfOperation)
        );
    }
    let earlier = store
        .get_certificate(&serial(4, 1))
        .await
        .expect("get")
        .expect("cert");
    assert_eq!(
        (earlier.revoked_at, earlier.revocation_reason),
        (Some(500), Some(RevocationReason::KeyCompromise)),
        "an earlier revocation stands"
    );
    let untouched = store.get_certificate(&other.serial).await.expect("get");
    assert_eq!(untouched.as_ref(), Some(&other));
    assert!(store
        .revoke_device_certificates(&device_id("pki-devrev"), RevocationReason::Unspecified, 700)
        .await
        .expect("again")
        .is_empty());
    assert!(store
        .revoke_device_certificates(
            &device_id("pki-devrev-never"),
            RevocationReason::Unspecified,
            700
        )
        .await
        .expect("unknown device")
        .is_empty());
}

/// The CRL lists revoked certificates that have not expired, in serial order: not the
/// unrevoked ones, not those expired at `now` or before.
pub async fn crl_lists_revoked_unexpired_certificates(store: &dyn Store) {
    let now = 1_800_000_000;
    let live_b = sample_certificate(&serial(5, 1), Some("pki-crl"), now + 1);
    let live_a = sample_certificate(&serial(5, 0), None, FAR_FUTURE);
    let expired_now = sample_certificate(&serial(5, 2), Some("pki-crl"), now);
    let expired_before = sample_certificate(&serial(5, 3), Some("pki-crl"), now - 100);
    let unrevoked = sample_certificate(&serial(5, 4), Some("pki-crl"), FAR_FUTURE);
    for cert in [&live_b, &live_a, &expired_now, &expired_before, &unrevoked] {
        store.insert_certificate(cert).await.expect("insert");
    }
    for (cert, reason) in [
        (&live_b, RevocationReason::KeyCompromise),
        (&live_a, RevocationReason::CaCompromise),
        (&expired_now, RevocationReason::Superseded),
        (&expired_before, RevocationReason::Superseded),
    ] {
        assert!(store
            .revoke_certificate(&cert.serial, reason, 1_700_000_900)
            .await
            .expect("revoke"));
    }

    let listed = store.list_revoked_certificates(now).await.expect("crl");
    assert!(
        listed.windows(2).all(|w| w[0].serial < w[1].serial),
        "strictly ascending serials"
    );
    let ours: Vec<RevokedCertificate> = listed
        .into_iter()
        .filter(|r| r.serial.starts_with("05"))
        .collect();
    assert_eq!(
        ours,
        vec![
            RevokedCertificate {
                serial: live_a.serial.clone(),
                revoked_at: 1_700_000_900,
                reason: RevocationReason::CaCompromise,
                not_after: FAR_FUTURE,
            },
            RevokedCertificate {
                serial: live_b.serial.clone(),
                revoked_at: 1_700_000_900,
                reason: RevocationReason::KeyCompromise,
                not_after: now + 1,
            },
        ]
    );
}

/// Listings filter by device and revocation state, and page by serial.
pub async fn certificate_listing_filters_and_pages(store: &dyn Store) {
    // Serials 06xxxx: device A has 0..5 (1 and 3 revoked), device B has 5..7.
    let mut a: Vec<IssuedCertificate> = (0..5)
        .map(|i| sample_certificate(&serial(6, i), Some("pki-list-a"), FAR_FUTURE))
        .collect();
    let b: Vec<IssuedCertificate> = (5..7)
        .map(|i| sample_certificate(&serial(6, i), Some("pki-list-b"), FAR_FUTURE))
        .collect();
    for cert in a.iter().chain(&b).rev() {
        store.insert_certificate(cert).await.expect("insert");
    }
    for i in [1, 3] {
        assert!(store
            .revoke_certificate(&a[i].serial, RevocationReason::AffiliationChanged, 900)
            .await
            .expect("revoke"));
        a[i].revoked_at = Some(900);
        a[i].revocation_reason = Some(RevocationReason::AffiliationChanged);
    }
    let list = |filter: CertificateFilter, limit| async move {
        store.list_certificates(&filter, limit).await.expect("list")
    };
    let of_a = |revoked| CertificateFilter {
        device_id: Some(device_id("pki-list-a")),
        after_serial: None,
        revoked,
    };

    assert_eq!(list(of_a(None), 100).await, a);
    assert_eq!(
        list(of_a(Some(true)), 100).await,
        vec![a[1].clone(), a[3].clone()]
    );
    assert_eq!(
        list(of_a(Some(false)), 100).await,
        vec![a[0].clone(), a[2].clone(), a[4].clone()]
    );
    assert_eq!(list(of_a(None), 2).await, a[..2].to_vec(), "limit");
    assert!(list(of_a(None), 0).await.is_empty());
    let after = CertificateFilter {
        after_serial: Some(a[2].serial.clone()),
        ..of_a(None)
    };
    assert_eq!(list(after, 100).await, a[3..].to_vec(), "after a serial");
    let unrevoked_after = CertificateFilter {
        after_serial: Some(a[0].serial.clone()),
        ..of_a(Some(false))
    };
    assert_eq!(
        list(unrevoked_after, 1).await,
        vec![a[2].clone()],
        "all filters at once"
    );

    // No device filter: keyset pages over everything, ours among them in order.
    let mut seen = Vec::new();
    let mut after_serial = Some(serial(5, 0xffff));
    loop {
        let filter = CertificateFilter {
            after_serial: after_serial.clone(),
            ..CertificateFilter::default()
        };
        let page = list(filter, 3).await;
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after_serial = Some(last.serial.clone());
        seen.extend(page);
    }
    assert!(seen.windows(2).all(|w| w[0].serial < w[1].serial));
    let ours: Vec<IssuedCertificate> = seen
        .into_iter()
        .filter(|c| c.serial.starts_with("06"))
        .collect();
    let all: Vec<IssuedCertificate> = a.iter().chain(&b).cloned().collect();
    assert_eq!(ours, all);
    let revoked_anywhere = CertificateFilter {
        revoked: Some(true),
        ..CertificateFilter::default()
    };
    let revoked: Vec<String> = list(revoked_anywhere, 10_000)
        .await
        .into_iter()
        .map(|c| c.serial)
        .filter(|s| s.starts_with("06"))
        .collect();
    assert_eq!(revoked, vec![a[1].serial.clone(), a[3].serial.clone()]);
}
