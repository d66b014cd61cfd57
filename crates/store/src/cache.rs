//! In-process caches in front of the [`Store`] for the two lookups on every token request:
//! "who is this client" and "is this token revoked". A hit costs a hash lookup and no I/O, so
//! the token endpoint's throughput does not depend on the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use moka::sync::Cache;
use portcullis_core::client::Client;
use portcullis_core::{ClientId, UnixTime};

use crate::{Store, StoreError};

/// Positive entries are invalidated explicitly on every change; the TTL only bounds how long a
/// change made on another node (or a missed invalidation) can go unseen.
const CLIENT_TTL: Duration = Duration::from_secs(600);
/// Unknown ids are remembered briefly, so a flood of bogus ids costs one query per id per
/// window, while a client registered on another node becomes usable within seconds.
const UNKNOWN_ID_TTL: Duration = Duration::from_secs(5);
/// The negative cache is bounded on its own so bogus ids cannot evict real clients.
const MAX_UNKNOWN_IDS: u64 = 100_000;

/// Clients by id, with negative caching of unknown ids.
pub struct ClientCache {
    known: Cache<ClientId, Arc<Client>>,
    unknown: Cache<ClientId, ()>,
    /// Bumped by every invalidation. A load that overlapped an invalidation may have read the
    /// old row, so its result is returned but not kept.
    generation: AtomicU64,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCache")
            .field("known", &self.known.entry_count())
            .field("unknown", &self.unknown.entry_count())
            .finish()
    }
}

impl ClientCache {
    /// A cache holding up to `max_entries` clients.
    pub fn new(max_entries: u64) -> Self {
        Self {
            known: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(CLIENT_TTL)
                .build(),
            unknown: Cache::builder()
                .max_capacity(MAX_UNKNOWN_IDS.min(max_entries.max(1)))
                .time_to_live(UNKNOWN_ID_TTL)
                .build(),
            generation: AtomicU64::new(0),
        }
    }

    /// The client with `id`, from memory if cached, else from `store`.
    pub async fn get(
        &self,
        store: &dyn Store,
        id: &ClientId,
    ) -> Result<Option<Arc<Client>>, StoreError> {
        if let Some(client) = self.known.get(id) {
            return Ok(Some(client));
        }
        if self.unknown.contains_key(id) {
            return Ok(None);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let loaded = store.get_client(id).await?.map(Arc::new);
        match &loaded {
            Some(client) => self.known.insert(id.clone(), Arc::clone(client)),
            None => self.unknown.insert(id.clone(), ()),
        }
        // An invalidation that began after our read of the store either bumped the generation
        // before this check (so we drop what we cached) or will remove the entry after it.
        if self.generation.load(Ordering::SeqCst) != generation {
            self.known.invalidate(id);
            self.unknown.invalidate(id);
        }
        Ok(loaded)
    }

    /// Forgets `id`, cached or known-unknown; call after creating, changing or deleting it.
    pub fn invalidate(&self, id: &ClientId) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.known.invalidate(id);
        self.unknown.invalidate(id);
    }

    /// Forgets every entry (bulk imports, restores).
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.known.invalidate_all();
        self.unknown.invalidate_all();
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
