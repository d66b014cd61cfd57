//! Software update reports (issue #13): one row per device, model and release, a later report
//! replacing the earlier one; a model's rollout counted per release and status; one release's
//! reports paged through by device id.
//!
//! Each check uses devices (`upd-<check>-...`) and models (`upd-<check>-model...`) of its own,
//! so the rollout counts it sees are exactly its own reports.

use portcullis_core::device::DeviceId;
use portcullis_core::update::UpdateStatus;
use portcullis_core::UnixTime;

use super::pki::{device_id, sample_device};
use crate::{Store, StoreError, UpdateReport};

async fn registered(store: &dyn Store, id: &str) -> DeviceId {
    store
        .insert_device(&sample_device(id))
        .await
        .expect("device");
    device_id(id)
}

fn report(
    device: &str,
    model: &str,
    release: u64,
    status: UpdateStatus,
    reported_at: UnixTime,
) -> UpdateReport {
    UpdateReport {
        device_id: device_id(device),
        model: model.to_owned(),
        release,
        status,
        detail: None,
        reported_at,
    }
}

async fn record(store: &dyn Store, report: &UpdateReport) {
    store.record_update_report(report).await.expect("record");
}

/// Every report about one release of `model`, in one page.
async fn all_of(store: &dyn Store, model: &str, release: u64) -> Vec<UpdateReport> {
    store
        .list_update_reports(model, release, None, 1_000)
        .await
        .expect("list")
}

/// A report comes back as it was recorded; a second one about the same release replaces it
/// whole (status, detail, time), including a detail taken away.
pub async fn an_update_report_round_trips_and_a_later_one_replaces_it(store: &dyn Store) {
    let model = "upd-trip-model";
    registered(store, "upd-trip").await;
    let downloading = report("upd-trip", model, 3, UpdateStatus::Downloading, 1_000);
    record(store, &downloading).await;
    assert_eq!(
        all_of(store, model, 3).await,
        std::slice::from_ref(&downloading)
    );

    let failed = UpdateReport {
        status: UpdateStatus::Failed,
        detail: Some("digest mismatch: \"ü\" ≠ expected\n".to_owned()),
        reported_at: 1_100,
        ..downloading.clone()
    };
    record(store, &failed).await;
    assert_eq!(all_of(store, model, 3).await, [failed]);

    let installed = UpdateReport {
        status: UpdateStatus::Installed,
        reported_at: 1_200,
        ..downloading
    };
    record(store, &installed).await;
    assert_eq!(
        all_of(store, model, 3).await,
        std::slice::from_ref(&installed)
    );
    // Recording the same report again (a retried message) changes nothing.
    record(store, &installed).await;
    assert_eq!(all_of(store, model, 3).await, [installed]);
    assert_eq!(
        store.update_rollout(model).await.expect("rollout"),
        [(3, UpdateStatus::Installed, 1)],
        "one device, one row"
    );
}

/// Reports about two releases, or about one release number of two models (a device that
/// changed model), are separate rows: writing one leaves the other as it was.
pub async fn update_reports_of_two_releases_are_kept_apart(store: &dyn Store) {
    let model = "upd-two-model";
    let other_model = "upd-two-model-b";
    registered(store, "upd-two").await;
    let first = report("upd-two", model, 1, UpdateStatus::Installed, 1_000);
    let second = report("upd-two", model, 2, UpdateStatus::Downloading, 2_000);
    record(store, &first).await;
    record(store, &second).await;
    let second_refused = UpdateReport {
        status: UpdateStatus::Refused,
        detail: Some("rollback".to_owned()),
        reported_at: 2_100,
        ..second
    };
    record(store, &second_refused).await;
    let of_other_model = report("upd-two", other_model, 1, UpdateStatus::Failed, 3_000);
    record(store, &of_other_model).await;

    assert_eq!(all_of(store, model, 1).await, [first]);
    assert_eq!(all_of(store, model, 2).await, [second_refused]);
    assert_eq!(all_of(store, other_model, 1).await, [of_other_model]);
    assert!(all_of(store, other_model, 2).await.is_empty());
    assert_eq!(
        store.update_rollout(model).await.expect("rollout"),
        [
            (1, UpdateStatus::Installed, 1),
            (2, UpdateStatus::Refused, 1)
        ]
    );
    assert_eq!(
        store.update_rollout(other_model).await.expect("rollout"),
        [(1, UpdateStatus::Failed, 1)]
    );
}

/// The rollout counts devices by the status they last reported, per release of the model
/// only, ordered by release (as numbers: 2 before 10) then status (in [`UpdateStatus`]'s
/// order), with no row for a status nobody reported.
pub async fn update_rollout_counts_devices_per_release_and_status(store: &dyn Store) {
    let model = "upd-roll-model";
    for i in 0..6 {
        registered(store, &format!("upd-roll-{i}")).await;
    }
    let at =
        |i: u8, release, status| report(&format!("upd-roll-{i}"), model, release, status, 1_000);
    // Release 10 first, so an order of insertion or of text ("10" < "2") would show.
    record(store, &at(0, 10, UpdateStatus::Downloading)).await;
    record(store, &at(1, 10, UpdateStatus::Downloading)).await;
    record(store, &at(2, 10, UpdateStatus::Refused)).await;
    record(store, &at(3, 10, UpdateStatus::Installed)).await;
    record(store, &at(4, 10, UpdateStatus::Failed)).await;
    record(store, &at(0, 2, UpdateStatus::Installed)).await;
    record(store, &at(1, 2, UpdateStatus::Failed)).await;
    record(store, &at(2, 2, UpdateStatus::Installed)).await;
    // A device moves on: it counts under its latest status only.
    record(store, &at(0, 10, UpdateStatus::Installed)).await;
    // Another model's reports, from one of these devices too, are not counted.
    let other = |i: u8| {
        report(
            &format!("upd-roll-{i}"),
            "upd-roll-model-b",
            2,
            UpdateStatus::Installed,
            1_000,
        )
    };
    record(store, &other(5)).await;
    record(store, &other(0)).await;

    let rollout = store.update_rollout(model).await.expect("rollout");
    assert_eq!(
        rollout,
        [
            (2, UpdateStatus::Installed, 2),
            (2, UpdateStatus::Failed, 1),
            (10, UpdateStatus::Downloading, 1),
            (10, UpdateStatus::Installed, 2),
            (10, UpdateStatus::Failed, 1),
            (10, UpdateStatus::Refused, 1),
        ]
    );
    assert!(
        rollout.windows(2).all(|w| w[0] < w[1]),
        "sorted as Rust sorts"
    );
    assert_eq!(
        store
            .update_rollout("upd-roll-model-b")
            .await
            .expect("rollout"),
        [(2, UpdateStatus::Installed, 2)]
    );
    assert!(store
        .update_rollout("upd-roll-model-none")
        .await
        .expect("unknown model")
        .is_empty());
}

/// One release's reports page by device id, strictly after the cursor; other releases and
/// models are left out.
pub async fn update_reports_page_by_device_id_for_one_model_and_release(store: &dyn Store) {
    let model = "upd-page-model";
    // Registered and reported out of id order: the order is the ids'.
    let ids = [
        "upd-page-d",
        "upd-page-b",
        "upd-page-e",
        "upd-page-a",
        "upd-page-c",
    ];
    for (i, id) in (0i64..).zip(ids) {
        registered(store, id).await;
        record(
            store,
            &report(id, model, 5, UpdateStatus::Installed, 1_000 + i),
        )
        .await;
        record(
            store,
            &report(id, model, 6, UpdateStatus::Downloading, 2_000 + i),
        )
        .await;
        record(
            store,
            &report(id, "upd-page-model-b", 5, UpdateStatus::Failed, 3_000 + i),
        )
        .await;
    }
    let mut expected: Vec<UpdateReport> = (0i64..)
        .zip(ids)
        .map(|(i, id)| report(id, model, 5, UpdateStatus::Installed, 1_000 + i))
        .collect();
    expected.sort_by(|a, b| a.device_id.as_str().cmp(b.device_id.as_str()));

    let page1 = store
        .list_update_reports(model, 5, None, 2)
        .await
        .expect("page 1");
    assert_eq!(page1, expected[..2]);
    let page2 = store
        .list_update_reports(model, 5, Some(&page1[1].device_id), 2)
        .await
        .expect("page 2");
    assert_eq!(page2, expected[2..4]);
    let page3 = store
        .list_update_reports(model, 5, Some(&page2[1].device_id), 2)
        .await
        .expect("page 3");
    assert_eq!(page3, expected[4..]);
    assert!(store
        .list_update_reports(model, 5, Some(&page3[0].device_id), 2)
        .await
        .expect("past the end")
        .is_empty());
    // The cursor need not be a device with a report.
    assert_eq!(
        store
            .list_update_reports(model, 5, Some(&device_id("upd-page-bb")), 10)
            .await
            .expect("from between"),
        expected[2..]
    );

    let release_6 = all_of(store, model, 6).await;
    assert_eq!(release_6.len(), 5);
    assert!(release_6
        .iter()
        .all(|r| r.release == 6 && r.status == UpdateStatus::Downloading));
    assert_eq!(all_of(store, "upd-page-model-b", 5).await.len(), 5);
    assert!(all_of(store, model, 7).await.is_empty());
    assert!(
        all_of(store, model, u64::MAX).await.is_empty(),
        "unstorable"
    );
}

/// A report needs its device; a release number that cannot be stored (0, above `i64::MAX`)
/// is refused. Neither stores anything.
pub async fn an_update_report_needs_its_device_and_a_storable_release(store: &dyn Store) {
    let model = "upd-need-model";
    let ghost = report("upd-need-ghost", model, 1, UpdateStatus::Installed, 1_000);
    assert!(
        matches!(
            store.record_update_report(&ghost).await,
            Err(StoreError::NotFound)
        ),
        "a report needs its device"
    );
    registered(store, "upd-need").await;
    for release in [0, u64::MAX, 1 << 63] {
        let bad = report("upd-need", model, release, UpdateStatus::Failed, 1_000);
        match store.record_update_report(&bad).await {
            Err(StoreError::Conflict(m)) => assert!(m.contains("release"), "{m}"),
            other => panic!("release {release}: expected a conflict, got {other:?}"),
        }
    }
    assert!(all_of(store, model, 1).await.is_empty());
    assert!(store
        .update_rollout(model)
        .await
        .expect("rollout")
        .is_empty());
    // The largest storable release is stored.
    let largest = report(
        "upd-need",
        model,
        i64::MAX.unsigned_abs(),
        UpdateStatus::Installed,
        1_000,
    );
    record(store, &largest).await;
    assert_eq!(all_of(store, model, largest.release).await, [largest]);
}

/// Every report of every device, model and release is listed in (device, model, release)
/// order, page after page, each field as recorded: what `store copy` moves.
pub async fn all_update_reports_page_by_device_model_and_release(store: &dyn Store) {
    registered(store, "upd-all-a").await;
    registered(store, "upd-all-b").await;
    let reports = [
        UpdateReport {
            detail: Some("disk full ü".into()),
            ..report("upd-all-a", "upd-all-model-1", 2, UpdateStatus::Failed, 120)
        },
        report(
            "upd-all-a",
            "upd-all-model-1",
            1,
            UpdateStatus::Installed,
            110,
        ),
        report(
            "upd-all-a",
            "upd-all-model-0",
            9,
            UpdateStatus::Downloading,
            100,
        ),
        report(
            "upd-all-b",
            "upd-all-model-1",
            1,
            UpdateStatus::Refused,
            130,
        ),
    ];
    for r in &reports {
        record(store, r).await;
    }
    let mut all = Vec::new();
    let mut after: Option<(DeviceId, String, u64)> = None;
    loop {
        let page = store
            .list_all_update_reports(after.as_ref().map(|(d, m, r)| (d, m.as_str(), *r)), 2)
            .await
            .expect("list");
        assert!(page.len() <= 2, "a page holds at most its limit");
        let Some(last) = page.last() else { break };
        after = Some((last.device_id.clone(), last.model.clone(), last.release));
        all.extend(page);
    }
    let key = |r: &UpdateReport| (r.device_id.as_str().to_owned(), r.model.clone(), r.release);
    assert!(
        all.windows(2).all(|w| key(&w[0]) < key(&w[1])),
        "in (device, model, release) order, each once"
    );
    let mine: Vec<UpdateReport> = all
        .into_iter()
        .filter(|r| r.device_id.as_str().starts_with("upd-all-"))
        .collect();
    let mut expected = reports.to_vec();
    expected.sort_by_key(key);
    assert_eq!(mine, expected);
    // A release beyond what can be stored sorts after every stored one.
    let a = device_id("upd-all-a");
    let next = store
        .list_all_update_reports(Some((&a, "upd-all-model-1", u64::MAX)), 1)
        .await
        .expect("after");
    assert_eq!(
        next.first().map(|r| r.device_id.as_str()),
        Some("upd-all-b")
    );
}
