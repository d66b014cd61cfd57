//! In-process caches in front of the [`Store`] for the lookups on every token request ("who
//! is this client", "is this token revoked") and every enrollment ("which device is this").
//! A hit costs a hash lookup and no I/O, so the token endpoint's throughput does not depend
//! on the database.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use moka::sync::Cache;
use portcullis_core::client::Client;
use portcullis_core::device::{Device, DeviceId};
use portcullis_core::{ClientId, UnixTime};

use crate::{Store, StoreError};

/// Positive entries are invalidated explicitly on every change; the TTL only bounds how long a
/// change made on another node (or a missed invalidation) can go unseen.
const KNOWN_TTL: Duration = Duration::from_secs(600);
/// Unknown ids are remembered briefly, so a flood of bogus ids costs one query per id per
/// window, while a record created where no invalidation reaches this node (a bulk load
/// straight into the store) becomes visible within seconds.
const UNKNOWN_ID_TTL: Duration = Duration::from_secs(5);
/// The negative cache is bounded on its own so bogus ids cannot evict real entries.
const MAX_UNKNOWN_IDS: u64 = 100_000;
/// Ids share this many invalidation counters (see [`KeyedCache::get_or_load`]).
const GENERATION_STRIPES: usize = 64;
/// Invalidations a slow subscriber may fall behind by before it is told it lagged (and should
/// then treat everything as changed).
const INVALIDATION_BACKLOG: usize = 1024;

/// Records by id, loaded from the store on a miss, with negative caching of unknown ids.
/// Every write must be followed by [`KeyedCache::invalidate`] on the writing node, and is
/// announced to the others through the store's change feed.
pub struct KeyedCache<K, V> {
    known: Cache<K, Arc<V>>,
    unknown: Cache<K, ()>,
    /// Invalidation counters, one per stripe of ids (by hash), bumped by every invalidation of
    /// an id in the stripe. A load that overlapped an invalidation may have read the old row,
    /// so its result is returned but not kept. Striped so a stream of invalidations (an
    /// enrollment burst) does not keep every other id's loads from being cached.
    generations: [AtomicU64; GENERATION_STRIPES],
    stripe_hasher: RandomState,
    /// One turn per id being loaded: concurrent misses for one id (a cold start, a flushed
    /// cache under load) wait for the first load instead of each querying the store.
    loading: std::sync::Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
    /// Every invalidation, for whoever keeps state derived from these records (the gateway's
    /// device credentials): `Some(id)` for one id, `None` for everything.
    invalidations: tokio::sync::broadcast::Sender<Option<K>>,
}

/// Clients by id ([`ClientCache::get`]).
pub type ClientCache = KeyedCache<ClientId, Client>;

/// Devices by id ([`DeviceCache::get`]). Unknown ids are cached too: every device insert is
/// announced (`device:<id>`, or `device:*` for a bulk import), so a device registered on
/// another node is invalidated here like any change.
pub type DeviceCache = KeyedCache<DeviceId, Device>;

impl<K, V> std::fmt::Debug for KeyedCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedCache")
            .field("of", &std::any::type_name::<V>())
            .field("known", &self.known.entry_count())
            .field("unknown", &self.unknown.entry_count())
            .finish()
    }
}

impl<K, V> KeyedCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// A cache holding up to `max_entries` records (and as many unknown ids, at most
    /// 100 000).
    pub fn new(max_entries: u64) -> Self {
        Self {
            known: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(KNOWN_TTL)
                .build(),
            unknown: Cache::builder()
                .max_capacity(MAX_UNKNOWN_IDS.min(max_entries.max(1)))
                .time_to_live(UNKNOWN_ID_TTL)
                .build(),
            generations: std::array::from_fn(|_| AtomicU64::new(0)),
            stripe_hasher: RandomState::new(),
            loading: std::sync::Mutex::new(HashMap::new()),
            invalidations: tokio::sync::broadcast::channel(INVALIDATION_BACKLOG).0,
        }
    }

    /// Every invalidation from now on: `Some(id)` when one id was forgotten
    /// ([`KeyedCache::invalidate`], an [`InvalidateOnDrop`] guard), `None` when everything was
    /// ([`KeyedCache::invalidate_all`]). Sent after the cache dropped the entry, so a reload
    /// on receipt reads the store. A receiver that falls behind by more than 1024 gets
    /// `RecvError::Lagged` and must treat everything as changed.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Option<K>> {
        self.invalidations.subscribe()
    }

    /// Tells subscribers; costs one uncontended lock and no clone when nobody listens.
    fn announce(&self, id: Option<&K>) {
        if self.invalidations.receiver_count() > 0 {
            // Fails only when the last receiver went meanwhile: nobody to tell.
            let _ = self.invalidations.send(id.cloned());
        }
    }

    /// The invalidation counter of `id`'s stripe.
    fn generation(&self, id: &K) -> &AtomicU64 {
        let hash = self.stripe_hasher.hash_one(id);
        let stripe = (hash % GENERATION_STRIPES as u64) as usize;
        #[allow(
            clippy::indexing_slicing,
            reason = "the remainder is below GENERATION_STRIPES, the array's length"
        )]
        &self.generations[stripe]
    }

    /// The record with `id`, from memory if cached, else from `load` (called at most once;
    /// its errors are returned and not cached). Concurrent misses for one id take turns, and
    /// each re-checks the cache on its turn, so one load serves them all.
    pub async fn get_or_load<F, Fut>(&self, id: &K, load: F) -> Result<Option<Arc<V>>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, StoreError>>,
    {
        if let Some(cached) = self.cached(id) {
            return Ok(cached);
        }
        let turn = LoadingTurn::take(&self.loading, id);
        let _mine = turn.slot.lock().await;
        if let Some(cached) = self.cached(id) {
            return Ok(cached);
        }
        self.load_and_keep(id, load).await
    }

    /// `Some(answer)` when memory knows the answer: the record, or that there is none.
    fn cached(&self, id: &K) -> Option<Option<Arc<V>>> {
        if let Some(record) = self.known.get(id) {
            return Some(Some(record));
        }
        self.unknown.contains_key(id).then_some(None)
    }

    async fn load_and_keep<F, Fut>(&self, id: &K, load: F) -> Result<Option<Arc<V>>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, StoreError>>,
    {
        let counter = self.generation(id);
        let generation = counter.load(Ordering::SeqCst);
        let loaded = load().await?.map(Arc::new);
        match &loaded {
            Some(record) => self.known.insert(id.clone(), Arc::clone(record)),
            None => self.unknown.insert(id.clone(), ()),
        }
        // An invalidation that began after our read of the store either bumped the generation
        // before this check (so we drop what we cached) or will remove the entry after it.
        if counter.load(Ordering::SeqCst) != generation {
            self.known.invalidate(id);
            self.unknown.invalidate(id);
        }
        Ok(loaded)
    }

    /// Forgets `id`, cached or known-unknown; call after creating, changing or deleting it.
    pub fn invalidate(&self, id: &K) {
        self.generation(id).fetch_add(1, Ordering::SeqCst);
        self.known.invalidate(id);
        self.unknown.invalidate(id);
        self.announce(Some(id));
    }

    /// Forgets every entry (bulk imports, restores, a lost change feed).
    pub fn invalidate_all(&self) {
        for counter in &self.generations {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        self.known.invalidate_all();
        self.unknown.invalidate_all();
        self.announce(None);
    }

    /// A guard that forgets `id` when dropped. Hold it across a write, so the entry goes
    /// however the write ends: done, failed, or abandoned with its request.
    pub fn invalidate_on_drop(&self, id: K) -> InvalidateOnDrop<'_, K, V> {
        InvalidateOnDrop { cache: self, id }
    }
}

impl ClientCache {
    /// The client with `id`, from memory if cached, else from `store`.
    pub async fn get(
        &self,
        store: &dyn Store,
        id: &ClientId,
    ) -> Result<Option<Arc<Client>>, StoreError> {
        self.get_or_load(id, || store.get_client(id)).await
    }
}

impl DeviceCache {
    /// The device with `id`, from memory if cached, else from `store`.
    pub async fn get(
        &self,
        store: &dyn Store,
        id: &DeviceId,
    ) -> Result<Option<Arc<Device>>, StoreError> {
        self.get_or_load(id, || store.get_device(id)).await
    }
}

/// A caller's place in the queue of loads of one id; the last one out removes the queue,
/// also when its request is abandoned mid-load (the drop runs either way).
struct LoadingTurn<'a, K: Hash + Eq + Clone> {
    loading: &'a std::sync::Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
    id: K,
    slot: Arc<tokio::sync::Mutex<()>>,
}

impl<'a, K: Hash + Eq + Clone> LoadingTurn<'a, K> {
    fn take(
        loading: &'a std::sync::Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
        id: &K,
    ) -> Self {
        let slot = loading
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id.clone())
            .or_default()
            .clone();
        Self {
            loading,
            id: id.clone(),
            slot,
        }
    }
}

impl<K: Hash + Eq + Clone> Drop for LoadingTurn<'_, K> {
    fn drop(&mut self) {
        let mut loading = self.loading.lock().unwrap_or_else(PoisonError::into_inner);
        // Clones are only made under this lock: two references (the map's and ours) mean
        // nobody else is queued.
        if Arc::strong_count(&self.slot) == 2 {
            loading.remove(&self.id);
        }
    }
}

/// See [`KeyedCache::invalidate_on_drop`].
#[must_use = "the entry is forgotten when the guard is dropped"]
pub struct InvalidateOnDrop<'a, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    cache: &'a KeyedCache<K, V>,
    id: K,
}

impl<K, V> Drop for InvalidateOnDrop<'_, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn drop(&mut self) {
        self.cache.invalidate(&self.id);
    }
}

/// The jtis of revoked, not yet expired access tokens, so introspection and the resource-side
/// checks answer from memory. Revocation is never undone, so the set only grows until purged.
#[derive(Debug, Default)]
pub struct RevocationCache {
    expires_at_by_jti: RwLock<HashMap<String, UnixTime>>,
}

impl RevocationCache {
    /// An empty set; fill it with [`RevocationCache::load`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every revocation in `store` still live at `now`. Merges rather than replaces, so a
    /// revocation inserted while the load ran is kept.
    pub async fn load(&self, store: &dyn Store, now: UnixTime) -> Result<(), StoreError> {
        let revoked = store.list_revoked_tokens(now).await?;
        let mut set = self
            .expires_at_by_jti
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for token in revoked {
            let entry = set.entry(token.jti).or_insert(token.expires_at);
            *entry = (*entry).max(token.expires_at);
        }
        Ok(())
    }

    /// Remembers a revocation until `expires_at`.
    pub fn insert(&self, jti: String, expires_at: UnixTime) {
        let mut set = self
            .expires_at_by_jti
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = set.entry(jti).or_insert(expires_at);
        *entry = (*entry).max(expires_at);
    }

    /// Whether `jti` is revoked and the token not yet expired (`now < exp`, RFC 7519 §4.1.4);
    /// an expired token is refused for its expiry anyway.
    pub fn contains(&self, jti: &str, now: UnixTime) -> bool {
        let set = self
            .expires_at_by_jti
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        set.get(jti).is_some_and(|&expires_at| expires_at > now)
    }

    /// Drops revocations of tokens expired at `now`.
    pub fn purge(&self, now: UnixTime) {
        let mut set = self
            .expires_at_by_jti
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        set.retain(|_, expires_at| *expires_at > now);
    }

    /// How many revocations are held.
    pub fn len(&self) -> usize {
        self.expires_at_by_jti
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no revocation is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
