//! Attack detection's shared state (issue #14): counters that several nodes add to and read
//! the same totals from, and alerts raised once per incident.
//!
//! Each check uses keys, groups and alert ids of its own (`det-<check>-...`). Counter buckets
//! are around [`T`], except those of the purge check, which are the only ones below
//! [`PURGE_BELOW`], so the rows it counts as purged are exactly its own. Alert listings are
//! filtered to the check's own ids.

use std::sync::Arc;

use crate::{DetectionIncrement, DetectionTotals, Store, StoreError, StoredAlert};

/// A bucket start in the checks' time range.
const T: i64 = 1_700_000_000;

/// Every bucket below this is the purge check's.
const PURGE_BELOW: i64 = 1_000_000;

fn inc(key: &str, group: &str, bucket: i64, count: u64, window_from: i64) -> DetectionIncrement {
    DetectionIncrement {
        key: key.to_owned(),
        group: group.to_owned(),
        bucket,
        count,
        window_from,
    }
}

fn totals(total: u64, distinct_in_group: u64) -> DetectionTotals {
    DetectionTotals {
        total,
        distinct_in_group,
    }
}

async fn add(store: &dyn Store, increments: &[DetectionIncrement]) -> Vec<DetectionTotals> {
    store
        .add_detection_counts(increments)
        .await
        .expect("add detection counts")
}

/// Counts add up within a batch and across calls; each increment's totals are over the
/// buckets from its own `window_from`; a zero count reads without counting; distinct keys are
/// counted per group, over the window; a counter saturates at `i64::MAX` instead of failing.
pub async fn detection_counts_add_up_within_their_window(store: &dyn Store) {
    let (k1, k2, k3, g) = ("det-sum-k1", "det-sum-k2", "det-sum-k3", "det-sum-g");
    assert_eq!(add(store, &[]).await, vec![], "an empty batch");
    // Two increments of one counter and bucket in one batch add up; both answer the totals
    // after the whole batch.
    assert_eq!(
        add(
            store,
            &[
                inc(k1, g, T, 3, T),
                inc(k2, g, T, 1, T),
                inc(k1, g, T, 2, T)
            ]
        )
        .await,
        vec![totals(5, 2), totals(1, 2), totals(5, 2)]
    );
    // A later call, a later bucket: the window from T holds both.
    assert_eq!(
        add(store, &[inc(k1, g, T + 10, 4, T)]).await,
        vec![totals(9, 2)]
    );
    // A window from T + 10 leaves bucket T out, and with it k2 (counted only at T).
    assert_eq!(
        add(store, &[inc(k1, g, T + 20, 1, T + 10)]).await,
        vec![totals(5, 1)]
    );
    // One batch, one counter, two windows; and a zero count, which reads the totals but does
    // not make k3 a key of the group.
    assert_eq!(
        add(
            store,
            &[
                inc(k1, g, T + 20, 0, T),
                inc(k1, g, T + 20, 0, T + 20),
                inc(k3, g, T + 20, 0, T),
            ]
        )
        .await,
        vec![totals(10, 2), totals(1, 1), totals(0, 2)]
    );
    // A window starting after every bucket: nothing counted yet.
    assert_eq!(
        add(store, &[inc(k1, g, T + 20, 0, T + 30)]).await,
        vec![totals(0, 0)]
    );
    // A key that is its own group (rules without distinct counting).
    let solo = "det-sum-solo";
    assert_eq!(
        add(store, &[inc(solo, solo, T, 7, T)]).await,
        vec![totals(7, 1)]
    );

    // Counts beyond what a row holds saturate, in a row and in a total over rows.
    let (big, big_g) = ("det-sum-big", "det-sum-big-g");
    let max = i64::MAX.unsigned_abs();
    assert_eq!(
        add(store, &[inc(big, big_g, T, u64::MAX, T)]).await,
        vec![totals(max, 1)]
    );
    assert_eq!(
        add(store, &[inc(big, big_g, T, 1, T)]).await,
        vec![totals(max, 1)],
        "a full row stays full"
    );
    assert_eq!(
        add(
            store,
            &[
                inc(big, big_g, T + 10, max, T),
                inc(big, big_g, T + 10, 5, T)
            ]
        )
        .await,
        vec![totals(max, 1), totals(max, 1)],
        "a total over full rows stays at the maximum"
    );
}

/// Purging removes the buckets that start before the cut, and only those.
pub async fn detection_counts_purge_only_old_buckets(store: &dyn Store) {
    let (old, g) = ("det-purge-k", "det-purge-g");
    let recent = "det-purge-recent";
    add(
        store,
        &[
            inc(old, g, 100, 1, 0),
            inc(old, g, 200, 2, 0),
            inc(old, g, 300, 4, 0),
            inc(recent, g, T, 8, 0),
        ],
    )
    .await;
    assert_eq!(
        store.purge_detection_counts(250).await.expect("purge"),
        2,
        "buckets 100 and 200"
    );
    assert_eq!(
        add(store, &[inc(old, g, 300, 0, 0), inc(recent, g, T, 0, 0)]).await,
        vec![totals(4, 2), totals(8, 2)],
        "bucket 300 and the recent bucket are kept"
    );
    assert_eq!(
        store.purge_detection_counts(250).await.expect("again"),
        0,
        "nothing left to purge"
    );
    assert_eq!(
        store
            .purge_detection_counts(PURGE_BELOW)
            .await
            .expect("the rest"),
        1
    );
    assert_eq!(
        add(store, &[inc(old, g, 300, 0, 0)]).await,
        vec![totals(0, 1)],
        "only the recent key is left in the group"
    );
}

/// What one node adds, another node's next batch counts (and the other way round): the
/// counters are the cluster's, not a node's. `stores` are the nodes (one store is one node
/// twice).
pub async fn detection_counts_add_up_across_nodes(stores: &[Arc<dyn Store>]) {
    let a = stores[0].as_ref();
    let b = stores[stores.len() - 1].as_ref();
    let (k1, k2, g) = ("det-nodes-k1", "det-nodes-k2", "det-nodes-g");
    assert_eq!(add(a, &[inc(k1, g, T, 2, T)]).await, vec![totals(2, 1)]);
    assert_eq!(add(b, &[inc(k1, g, T, 3, T)]).await, vec![totals(5, 1)]);
    assert_eq!(
        add(a, &[inc(k2, g, T + 10, 1, T)]).await,
        vec![totals(1, 2)]
    );
    assert_eq!(
        add(b, &[inc(k1, g, T + 10, 0, T), inc(k2, g, T + 10, 0, T)]).await,
        vec![totals(5, 2), totals(1, 2)]
    );
}

/// Many tasks (on one or several nodes) add 1 to the same two counters at once, half of them
/// listing the counters in the other order: no count is lost, no two batches deadlock, and
/// each batch sees a total of its own (the adds are serialised, each seeing the ones before).
pub async fn concurrent_detection_counts_lose_nothing(stores: &[Arc<dyn Store>]) {
    const TASKS: usize = 8;
    const ROUNDS: u64 = 25;
    let (x, y, g) = ("det-race-x", "det-race-y", "det-race-g");
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let mut seen = Vec::new();
                for _ in 0..ROUNDS {
                    let mut batch = vec![inc(x, g, T, 1, T), inc(y, g, T, 1, T)];
                    if i % 2 == 1 {
                        batch.reverse();
                    }
                    let got = store.add_detection_counts(&batch).await.expect("add");
                    let of_x = if i % 2 == 1 { got[1] } else { got[0] };
                    assert_eq!(of_x.distinct_in_group, 2);
                    seen.push(of_x.total);
                }
                seen
            })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.extend(task.await.expect("task"));
    }
    seen.sort_unstable();
    let all = TASKS as u64 * ROUNDS;
    assert_eq!(
        seen,
        (1..=all).collect::<Vec<_>>(),
        "each batch saw the adds before it and its own"
    );
    let last = add(
        stores[0].as_ref(),
        &[inc(x, g, T, 0, T), inc(y, g, T, 0, T)],
    )
    .await;
    assert_eq!(last, vec![totals(all, 2), totals(all, 2)]);
}

fn alert(id: &str, raised_at: i64) -> StoredAlert {
    StoredAlert {
        id: id.to_owned(),
        rule: "auth_failures_per_client".to_owned(),
        raised_at,
        state: "open".to_owned(),
        detail: format!("sealed detail of {id}"),
        acked_by: None,
        acked_at: None,
    }
}

/// Every alert in `state` (all if `None`), page by page of `page` through the keyset cursor,
/// checking the order; only the ids starting with `prefix` are returned.
async fn all_alerts(
    store: &dyn Store,
    state: Option<&str>,
    page: u32,
    prefix: &str,
) -> Vec<StoredAlert> {
    let mut listed: Vec<StoredAlert> = Vec::new();
    loop {
        let cursor = listed.last().map(|a| (a.raised_at, a.id.clone()));
        let got = store
            .list_alerts(
                state,
                cursor.as_ref().map(|(t, id)| (*t, id.as_str())),
                page,
            )
            .await
            .expect("list alerts");
        assert!(got.len() <= page as usize, "at most the limit");
        let done = got.len() < page as usize;
        listed.extend(got);
        if done {
            break;
        }
    }
    for pair in listed.windows(2) {
        assert!(
            (pair[0].raised_at, pair[0].id.as_bytes()) > (pair[1].raised_at, pair[1].id.as_bytes()),
            "newest first, then by id in byte order, each once: {} then {}",
            pair[0].id,
            pair[1].id
        );
    }
    if let Some(state) = state {
        assert!(listed.iter().all(|a| a.state == state), "only {state}");
    }
    listed.retain(|a| a.id.starts_with(prefix));
    listed
}

fn ids(alerts: &[StoredAlert]) -> Vec<&str> {
    alerts.iter().map(|a| a.id.as_str()).collect()
}

/// An alert is inserted once (the first insert wins, the second changes nothing); alerts are
/// listed newest first, ties by id in byte order, through a (raised_at, id) cursor and an
/// optional state filter; an acknowledgement is recorded once and only for an existing alert.
pub async fn alerts_are_raised_once_listed_newest_first_and_acknowledged(store: &dyn Store) {
    let id = |s: &str| format!("det-alert-{s}");
    let first = alert(&id("a"), 5_000);
    assert!(store.insert_alert(&first).await.expect("insert"));
    let mut again = alert(&id("a"), 9_000);
    again.detail = "another node's detail".to_owned();
    assert!(
        !store.insert_alert(&again).await.expect("insert again"),
        "the incident exists"
    );
    assert_eq!(
        store.get_alert(&id("a")).await.expect("get"),
        Some(first.clone()),
        "the first insert is kept"
    );
    assert_eq!(store.get_alert(&id("none")).await.expect("get"), None);

    // `B` sorts before `a` byte-wise (not in a linguistic collation).
    for (s, at) in [("B", 5_000), ("c", 4_000), ("d", 6_000), ("e", 3_000)] {
        assert!(store
            .insert_alert(&alert(&id(s), at))
            .await
            .expect("insert"));
    }
    let prefix = id("");
    let newest_first = [id("d"), id("a"), id("B"), id("c"), id("e")];
    for page in [1, 2, 3, 100] {
        assert_eq!(
            ids(&all_alerts(store, None, page, &prefix).await),
            newest_first,
            "pages of {page}"
        );
    }
    assert!(store
        .list_alerts(None, None, 0)
        .await
        .expect("limit 0")
        .is_empty());
    let after_a = store
        .list_alerts(None, Some((5_000, &id("a"))), 100)
        .await
        .expect("after a");
    assert!(after_a
        .iter()
        .all(|x| (x.raised_at, x.id.as_bytes()) < (5_000, id("a").as_bytes())));
    assert_eq!(
        ids(&after_a)
            .into_iter()
            .filter(|x| x.starts_with(&prefix))
            .collect::<Vec<_>>(),
        [id("B"), id("c"), id("e")],
        "strictly before the cursor"
    );

    // Acknowledgement: once, by the first to do it; unknown ids are reported.
    assert_eq!(
        store
            .ack_alert(&id("none"), "op-1", 7_000)
            .await
            .expect("ack unknown"),
        crate::AlertAck::NoSuchAlert
    );
    assert_eq!(store.get_alert(&id("none")).await.expect("get"), None);
    assert_eq!(
        store.ack_alert(&id("a"), "op-1", 7_000).await.expect("ack"),
        crate::AlertAck::Acknowledged
    );
    let acked = StoredAlert {
        state: "acknowledged".to_owned(),
        acked_by: Some("op-1".to_owned()),
        acked_at: Some(7_000),
        ..first.clone()
    };
    assert_eq!(
        store.get_alert(&id("a")).await.expect("get"),
        Some(acked.clone())
    );
    assert_eq!(
        store
            .ack_alert(&id("a"), "op-2", 8_000)
            .await
            .expect("ack again"),
        crate::AlertAck::AlreadyAcknowledged
    );
    assert_eq!(
        store.get_alert(&id("a")).await.expect("get"),
        Some(acked.clone()),
        "the first acknowledgement stays"
    );
    // The raising node adds what its action did; nothing else changes.
    assert!(store
        .set_alert_detail(&id("a"), "sealed detail with the action")
        .await
        .expect("set detail"));
    assert_eq!(
        store.get_alert(&id("a")).await.expect("get"),
        Some(StoredAlert {
            detail: "sealed detail with the action".to_owned(),
            ..acked
        })
    );
    assert!(!store
        .set_alert_detail(&id("none"), "x")
        .await
        .expect("set detail of unknown"));

    // The state filter, alone and with the cursor.
    assert_eq!(
        ids(&all_alerts(store, Some("open"), 2, &prefix).await),
        [id("d"), id("B"), id("c"), id("e")]
    );
    assert_eq!(
        ids(&all_alerts(store, Some("acknowledged"), 2, &prefix).await),
        [id("a")]
    );
    let open_after_b = store
        .list_alerts(Some("open"), Some((5_000, &id("B"))), 100)
        .await
        .expect("open after B");
    assert_eq!(
        ids(&open_after_b)
            .into_iter()
            .filter(|x| x.starts_with(&prefix))
            .collect::<Vec<_>>(),
        [id("c"), id("e")]
    );
    assert!(store
        .list_alerts(Some("no-such-state"), None, 100)
        .await
        .expect("unknown state")
        .is_empty());

    // An alert inserted acknowledged round-trips every field; an unknown state is refused.
    let mut done = alert(&id("f"), 2_000);
    done.state = "acknowledged".to_owned();
    done.acked_by = Some("op-3".to_owned());
    done.acked_at = Some(2_500);
    assert!(store
        .insert_alert(&done)
        .await
        .expect("insert acknowledged"));
    assert_eq!(store.get_alert(&id("f")).await.expect("get"), Some(done));
    let mut bogus = alert(&id("g"), 1_000);
    bogus.state = "closed".to_owned();
    assert!(matches!(
        store.insert_alert(&bogus).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_alert(&id("g")).await.expect("get"), None);
}

/// Many tasks (on one or several nodes) insert the same incidents at once, as nodes deciding
/// the same crossing do: each incident is inserted by exactly one of them.
pub async fn concurrent_alert_inserts_have_one_winner(stores: &[Arc<dyn Store>]) {
    const TASKS: usize = 8;
    const INCIDENTS: usize = 20;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let mut won = Vec::new();
                for n in 0..INCIDENTS {
                    let mut incident = alert(&format!("det-race-{n:02}"), T);
                    incident.detail = format!("decided by task {i}");
                    if store.insert_alert(&incident).await.expect("insert") {
                        won.push(n);
                    }
                }
                won
            })
        })
        .collect();
    let mut won = Vec::new();
    for task in tasks {
        won.extend(task.await.expect("task"));
    }
    won.sort_unstable();
    assert_eq!(
        won,
        (0..INCIDENTS).collect::<Vec<_>>(),
        "each incident inserted exactly once"
    );
    let listed = stores[0]
        .list_alerts(None, Some((T + 1, "")), 1_000)
        .await
        .expect("list");
    assert_eq!(
        listed
            .iter()
            .filter(|a| a.id.starts_with("det-race-"))
            .count(),
        INCIDENTS,
        "one row per incident"
    );
}
