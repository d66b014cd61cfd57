use super::*;
use crate::conformance::sample_client;
use crate::sqlite::SqliteStore;
use crate::RevokedToken;

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
