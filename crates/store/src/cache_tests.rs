use super::*;
use crate::conformance::{sample_client, sample_device};
use crate::sqlite::SqliteStore;
use crate::RevokedToken;
use portcullis_core::device::DeviceState;

async fn fresh_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("cache.db"))
        .await
        .unwrap();
    (dir, store)
}

fn id(s: &str) -> ClientId {
    ClientId::parse(s).unwrap()
}

#[tokio::test]
async fn cached_client_is_served_without_touching_the_store() {
    let (_dir, store) = fresh_store().await;
    store.insert_client(&sample_client("c1")).await.unwrap();
    let cache = ClientCache::new(100);
    assert_eq!(
        cache.get(&store, &id("c1")).await.unwrap().unwrap().name,
        "client c1"
    );
    store.close().await;
    assert!(cache.get(&store, &id("c1")).await.unwrap().is_some());
}

#[tokio::test]
async fn unknown_id_is_answered_from_the_negative_cache() {
    let (_dir, store) = fresh_store().await;
    let cache = ClientCache::new(100);
    assert!(cache.get(&store, &id("ghost")).await.unwrap().is_none());
    store.close().await;
    assert!(cache.get(&store, &id("ghost")).await.unwrap().is_none());
}

#[tokio::test]
async fn negative_entry_disappears_after_invalidate() {
    let (_dir, store) = fresh_store().await;
    let cache = ClientCache::new(100);
    assert!(cache.get(&store, &id("late")).await.unwrap().is_none());
    store.insert_client(&sample_client("late")).await.unwrap();
    assert!(
        cache.get(&store, &id("late")).await.unwrap().is_none(),
        "still negatively cached"
    );
    cache.invalidate(&id("late"));
    assert!(cache.get(&store, &id("late")).await.unwrap().is_some());
}

#[tokio::test]
async fn changed_client_is_reloaded_after_invalidate() {
    let (_dir, store) = fresh_store().await;
    let mut client = sample_client("c2");
    store.insert_client(&client).await.unwrap();
    let cache = ClientCache::new(100);
    cache.get(&store, &id("c2")).await.unwrap();
    client.enabled = false;
    store.update_client(&client).await.unwrap();
    assert!(
        cache.get(&store, &id("c2")).await.unwrap().unwrap().enabled,
        "stale until invalidated"
    );
    cache.invalidate(&id("c2"));
    assert!(!cache.get(&store, &id("c2")).await.unwrap().unwrap().enabled);
}

#[tokio::test]
async fn invalidate_all_forgets_known_and_unknown_ids() {
    let (_dir, store) = fresh_store().await;
    store.insert_client(&sample_client("a")).await.unwrap();
    let cache = ClientCache::new(100);
    cache.get(&store, &id("a")).await.unwrap();
    cache.get(&store, &id("b")).await.unwrap();
    cache.invalidate_all();
    store.close().await;
    assert!(matches!(
        cache.get(&store, &id("a")).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        cache.get(&store, &id("b")).await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn store_errors_are_returned_and_not_cached() {
    let (dir, store) = fresh_store().await;
    let cache = ClientCache::new(100);
    store.close().await;
    assert!(cache.get(&store, &id("c3")).await.is_err());
    let reopened = SqliteStore::open(&dir.path().join("cache.db"))
        .await
        .unwrap();
    reopened.insert_client(&sample_client("c3")).await.unwrap();
    assert!(cache.get(&reopened, &id("c3")).await.unwrap().is_some());
}

#[tokio::test]
async fn hits_are_fast_enough_for_the_token_endpoint() {
    let (_dir, store) = fresh_store().await;
    store.insert_client(&sample_client("hot")).await.unwrap();
    let cache = ClientCache::new(100);
    let hot = id("hot");
    cache.get(&store, &hot).await.unwrap();
    let rounds = 100_000u32;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        assert!(cache.get(&store, &hot).await.unwrap().is_some());
    }
    let per_hit = started.elapsed() / rounds;
    println!("client cache hit: {per_hit:?}");
    // About 1 µs in a debug build. The bound is loose so a busy CI machine does not fail it,
    // yet a hit that went to the database (tens of µs) would.
    assert!(
        per_hit < std::time::Duration::from_micros(25),
        "{per_hit:?} per hit"
    );
}

fn device(s: &str) -> DeviceId {
    DeviceId::parse(s).unwrap()
}

#[tokio::test]
async fn cached_device_is_served_without_touching_the_store() {
    let (_dir, store) = fresh_store().await;
    store.insert_device(&sample_device("d1")).await.unwrap();
    let cache = DeviceCache::new(100);
    let first = cache.get(&store, &device("d1")).await.unwrap().unwrap();
    assert_eq!(first.state, DeviceState::Registered);
    store.close().await;
    let hit = cache.get(&store, &device("d1")).await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&first, &hit), "the same cached record");
}

#[tokio::test]
async fn unknown_device_is_negatively_cached_until_invalidated() {
    let (_dir, store) = fresh_store().await;
    let cache = DeviceCache::new(100);
    assert!(cache.get(&store, &device("late")).await.unwrap().is_none());
    store.insert_device(&sample_device("late")).await.unwrap();
    assert!(
        cache.get(&store, &device("late")).await.unwrap().is_none(),
        "still negatively cached"
    );
    cache.invalidate(&device("late"));
    assert!(cache.get(&store, &device("late")).await.unwrap().is_some());
}

#[tokio::test]
async fn changed_device_is_reloaded_after_invalidate_and_flush() {
    let (_dir, store) = fresh_store().await;
    let mut d = sample_device("d2");
    store.insert_device(&d).await.unwrap();
    let cache = DeviceCache::new(100);
    cache.get(&store, &d.device_id).await.unwrap();
    d.state = DeviceState::Suspended;
    store.update_device(&d).await.unwrap();
    let id = d.device_id.clone();
    let state = || async { cache.get(&store, &id).await.unwrap().unwrap().state };
    assert_eq!(state().await, DeviceState::Registered, "stale until told");
    cache.invalidate(&id);
    assert_eq!(state().await, DeviceState::Suspended);
    d.state = DeviceState::Registered;
    store.update_device(&d).await.unwrap();
    cache.invalidate_all();
    assert_eq!(state().await, DeviceState::Registered);
}

/// An invalidation that lands while a load is reading the store: the load may have read the
/// old row, so it is answered but not kept (without the generation check the stale row would
/// stay cached for the whole TTL).
#[tokio::test]
async fn a_load_overlapping_an_invalidation_is_not_kept() {
    let (_dir, store) = fresh_store().await;
    let registered = sample_device("d3");
    store.insert_device(&registered).await.unwrap();
    let suspended = Device {
        state: DeviceState::Suspended,
        ..registered.clone()
    };
    let cache = DeviceCache::new(100);
    let id = registered.device_id.clone();
    let loaded = cache
        .get_or_load(&id, || async {
            let old = store.get_device(&id).await;
            // Meanwhile another request suspends the device and invalidates.
            store.update_device(&suspended).await.unwrap();
            cache.invalidate(&id);
            old
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.state, DeviceState::Registered, "what the load read");
    assert_eq!(
        cache.get(&store, &id).await.unwrap().unwrap().state,
        DeviceState::Suspended,
        "the overlapping load was not kept"
    );
}

#[tokio::test]
async fn an_unknown_id_loaded_across_an_invalidation_is_not_remembered() {
    let cache: KeyedCache<u32, &'static str> = KeyedCache::new(10);
    let missing = cache
        .get_or_load(&7, || async {
            cache.invalidate(&7);
            Ok(None)
        })
        .await
        .unwrap();
    assert!(missing.is_none());
    let found = cache
        .get_or_load(&7, || async { Ok(Some("registered meanwhile")) })
        .await
        .unwrap();
    assert_eq!(found.as_deref(), Some(&"registered meanwhile"));
}

#[tokio::test]
async fn an_invalidation_of_another_stripe_does_not_discard_a_load() {
    let cache: KeyedCache<u32, &'static str> = KeyedCache::new(10);
    let other = (2..)
        .find(|&n| !std::ptr::eq(cache.generation(&1), cache.generation(&n)))
        .unwrap();
    cache
        .get_or_load(&1, || async {
            cache.invalidate(&other);
            Ok(Some("kept"))
        })
        .await
        .unwrap();
    let hit = cache
        .get_or_load(&1, || async { Ok(Some("reloaded")) })
        .await
        .unwrap();
    assert_eq!(
        hit.as_deref(),
        Some(&"kept"),
        "cached despite the other id's change"
    );
    // A flush concerns every stripe.
    cache
        .get_or_load(&other, || async {
            cache.invalidate_all();
            Ok(Some("stale"))
        })
        .await
        .unwrap();
    let reloaded = cache
        .get_or_load(&other, || async { Ok(Some("fresh")) })
        .await
        .unwrap();
    assert_eq!(reloaded.as_deref(), Some(&"fresh"));
}

#[tokio::test]
async fn the_drop_guard_forgets_the_entry_even_when_its_request_is_abandoned() {
    let cache: KeyedCache<u32, &'static str> = KeyedCache::new(10);
    let load = |value| move || async move { Ok(Some(value)) };
    cache.get_or_load(&1, load("old")).await.unwrap();
    {
        let _guard = cache.invalidate_on_drop(1);
        assert_eq!(
            *cache.get_or_load(&1, load("new")).await.unwrap().unwrap(),
            "old",
            "kept while the write runs"
        );
    }
    assert_eq!(
        *cache.get_or_load(&1, load("new")).await.unwrap().unwrap(),
        "new"
    );
    // A write whose future is dropped mid-way (the client went away) still forgets.
    let abandoned = async {
        let _guard = cache.invalidate_on_drop(1);
        std::future::pending::<()>().await;
    };
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(10), abandoned)
            .await
            .is_err()
    );
    assert_eq!(
        *cache.get_or_load(&1, load("newer")).await.unwrap().unwrap(),
        "newer"
    );
}

#[test]
fn revocation_is_live_until_the_token_expires() {
    let cache = RevocationCache::new();
    cache.insert("j1".into(), 100);
    assert!(cache.contains("j1", 99));
    assert!(!cache.contains("j1", 100));
    assert!(!cache.contains("other", 0));
}

#[test]
fn purge_drops_only_expired_revocations() {
    let cache = RevocationCache::new();
    cache.insert("old".into(), 10);
    cache.insert("new".into(), 1000);
    cache.purge(10);
    assert_eq!(cache.len(), 1);
    assert!(cache.contains("new", 10));
}

#[test]
fn reinserting_keeps_the_later_expiry() {
    let cache = RevocationCache::new();
    cache.insert("j".into(), 500);
    cache.insert("j".into(), 100);
    assert!(cache.contains("j", 400));
}

#[tokio::test]
async fn load_merges_live_revocations_from_the_store() {
    let (_dir, store) = fresh_store().await;
    for (jti, expires_at) in [("live", 2000), ("dead", 50)] {
        let token = RevokedToken {
            jti: jti.into(),
            client_id: id("c"),
            expires_at,
        };
        store.revoke_token(&token).await.unwrap();
    }
    let cache = RevocationCache::new();
    cache.insert("local".into(), 3000);
    cache.load(&store, 100).await.unwrap();
    assert!(cache.contains("live", 100));
    assert!(cache.contains("local", 100));
    assert!(
        !cache.contains("dead", 40),
        "expired revocations are not loaded"
    );
}

#[tokio::test]
async fn concurrent_misses_for_one_id_share_one_load() {
    let cache: KeyedCache<u32, &'static str> = KeyedCache::new(100);
    let loads = std::sync::atomic::AtomicUsize::new(0);
    let get = || {
        cache.get_or_load(&9, || async {
            loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            Ok(Some("loaded once"))
        })
    };
    let answers = futures_join_all((0..20).map(|_| get())).await;
    assert!(answers
        .iter()
        .all(|a| a.as_ref().unwrap().as_deref() == Some(&"loaded once")));
    assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(
        cache.loading.lock().unwrap().is_empty(),
        "the queue is gone when the last caller leaves"
    );
}

#[tokio::test]
async fn a_failed_load_lets_the_next_caller_try_and_an_abandoned_one_leaves_no_queue() {
    let cache: KeyedCache<u32, &'static str> = KeyedCache::new(100);
    let failed = cache
        .get_or_load(&3, || async { Err(StoreError::Unavailable("down".into())) })
        .await;
    assert!(failed.is_err(), "errors are returned, not cached");
    let loaded = cache
        .get_or_load(&3, || async { Ok(Some("back")) })
        .await
        .unwrap();
    assert_eq!(loaded.as_deref(), Some(&"back"));
    // A load abandoned mid-way (its request was dropped) takes its turn with it.
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(10),
        cache.get_or_load(&4, || async {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            Ok(Some("never"))
        }),
    )
    .await;
    assert!(abandoned.is_err());
    assert!(cache.loading.lock().unwrap().is_empty());
    let after = cache.get_or_load(&4, || async { Ok(Some("later")) }).await;
    assert_eq!(after.unwrap().as_deref(), Some(&"later"));
}

/// Runs the futures concurrently on this task (no extra dependency).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, out) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("ready")).collect()
}

#[tokio::test]
async fn subscribers_hear_every_invalidation_and_nobody_listening_costs_nothing() {
    let cache = ClientCache::new(100);
    // No subscriber yet: invalidations are silent and never fail.
    cache.invalidate(&id("before"));
    cache.invalidate_all();
    let mut first = cache.subscribe();
    let mut second = cache.subscribe();
    cache.invalidate(&id("c1"));
    drop(cache.invalidate_on_drop(id("c2")));
    cache.invalidate_all();
    for rx in [&mut first, &mut second] {
        assert_eq!(rx.recv().await.unwrap(), Some(id("c1")));
        assert_eq!(rx.recv().await.unwrap(), Some(id("c2")));
        assert_eq!(rx.recv().await.unwrap(), None, "None means everything");
        assert!(rx.try_recv().is_err(), "nothing else, not from before");
    }
    // A receiver that goes away leaves the others (and the cache) unaffected.
    drop(first);
    cache.invalidate(&id("c3"));
    assert_eq!(second.recv().await.unwrap(), Some(id("c3")));
    drop(second);
    cache.invalidate(&id("c4"));
}
