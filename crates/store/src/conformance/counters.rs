//! Gateway message counters: the replay guard's store contract.

use std::sync::Arc;

use portcullis_core::device::DeviceId;

use crate::Store;

fn id(s: &str) -> DeviceId {
    DeviceId::parse(s).unwrap()
}

/// Advances are judged in order against what the earlier ones left; a counter at or below
/// the stored one is refused; out-of-range counters never pass; a revert applies only while
/// the counter is still the one reverted.
pub async fn counters_only_rise_and_revert_only_their_own_advance(store: &dyn Store) {
    let a = id("ctr-a");
    let b = id("ctr-b");
    let got = store
        .advance_device_counters(&[
            (a.clone(), 5),
            (a.clone(), 5),
            (a.clone(), 4),
            (b.clone(), 1),
            (a.clone(), 9),
            (b.clone(), 0),
            (b.clone(), u64::MAX),
        ])
        .await
        .unwrap();
    assert_eq!(got, vec![Some(0), None, None, Some(0), Some(5), None, None]);
    assert_eq!(
        store
            .advance_device_counters(&[(a.clone(), 9)])
            .await
            .unwrap(),
        vec![None],
        "a replay of the last counter"
    );
    // The sink refused counter 9: take it back, and the same message passes once more.
    assert!(store.revert_device_counter(&a, 9, 5).await.unwrap());
    assert_eq!(
        store
            .advance_device_counters(&[(a.clone(), 9)])
            .await
            .unwrap(),
        vec![Some(5)]
    );
    // A revert after a later advance changes nothing.
    assert_eq!(
        store
            .advance_device_counters(&[(a.clone(), 12)])
            .await
            .unwrap(),
        vec![Some(9)]
    );
    assert!(!store.revert_device_counter(&a, 9, 5).await.unwrap());
    assert_eq!(
        store
            .advance_device_counters(&[(a.clone(), 10)])
            .await
            .unwrap(),
        vec![None]
    );
    let max = i64::MAX as u64;
    assert_eq!(
        store
            .advance_device_counters(&[(b.clone(), max)])
            .await
            .unwrap(),
        vec![Some(1)],
        "the largest stored counter"
    );
    let listed = store.list_device_counters(None, 1000).await.unwrap();
    assert!(
        listed.contains(&(a.clone(), 12)) && listed.contains(&(b.clone(), max)),
        "{listed:?}"
    );
    let after_a = store.list_device_counters(Some(&a), 1000).await.unwrap();
    assert!(after_a.iter().all(|(d, _)| d > &a));
}

/// A raise (counters decided elsewhere) only ever raises, keeps each device's highest,
/// skips counters that could never be accepted, and the judged advances see what it wrote.
pub async fn raises_only_raise_and_advances_see_them(store: &dyn Store) {
    let (a, b, c) = (id("ctr-raise-a"), id("ctr-raise-b"), id("ctr-raise-c"));
    store
        .raise_device_counters(&[(a.clone(), 7), (b.clone(), 4), (a.clone(), 3)])
        .await
        .unwrap();
    // Lower ones and invalid ones change nothing; a higher one raises.
    store
        .raise_device_counters(&[(a.clone(), 5), (b.clone(), 9), (c.clone(), 0)])
        .await
        .unwrap();
    store
        .raise_device_counters(&[(c.clone(), u64::MAX)])
        .await
        .unwrap();
    store.raise_device_counters(&[]).await.unwrap();
    let listed = store
        .list_device_counters(Some(&id("ctr-raise")), 10)
        .await
        .unwrap();
    let of = |d: &DeviceId| listed.iter().find(|(x, _)| x == d).map(|(_, n)| *n);
    assert_eq!((of(&a), of(&b), of(&c)), (Some(7), Some(9), None));
    let judged = store
        .advance_device_counters(&[(a.clone(), 7), (a.clone(), 8), (b.clone(), 9)])
        .await
        .unwrap();
    assert_eq!(judged, vec![None, Some(7), None]);
}

/// Many tasks (on one or several nodes) offer the same counters for one device at once:
/// each counter is accepted exactly once.
pub async fn concurrent_advances_accept_each_counter_once(stores: &[Arc<dyn Store>]) {
    const TASKS: usize = 8;
    const COUNTERS: u64 = 50;
    let device = id("ctr-race");
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let barrier = barrier.clone();
            let device = device.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let mut won = Vec::new();
                for c in 1..=COUNTERS {
                    let got = store
                        .advance_device_counters(&[(device.clone(), c)])
                        .await
                        .unwrap();
                    if got[0].is_some() {
                        won.push(c);
                    }
                }
                won
            })
        })
        .collect();
    let mut accepted = Vec::new();
    for t in tasks {
        accepted.extend(t.await.unwrap());
    }
    accepted.sort_unstable();
    let before = accepted.len();
    accepted.dedup();
    assert_eq!(before, accepted.len(), "a counter was accepted twice");
    assert_eq!(
        accepted.last(),
        Some(&COUNTERS),
        "the highest counter is accepted once"
    );
}
