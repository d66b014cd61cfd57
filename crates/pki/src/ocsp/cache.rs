//! Pre-signed responses for the RFC 5019 profile: one certificate, no nonce. Such a
//! response depends only on the CertID and the status, so one signature serves every
//! relying party until it is refreshed; the responder then answers from memory instead of
//! the store and the signer, which is what lets a fleet's worth of clients poll it.
//!
//! Entries are keyed by serial (the store's key), each holding the responses for the CertID
//! encodings seen for it (typically a SHA-1 and a SHA-256 one: the response echoes the
//! CertID, so the hash algorithm and its parameters' encoding are part of the key).
//!
//! Invalidation must win against a concurrent miss that read the status just before a
//! revocation and is about to insert its now-stale response. Each serial maps to a shard
//! holding a generation number: a miss reads it before the store lookup and inserts only if
//! it is unchanged, checked and inserted under the shard's lock, and [`ResponseCache::invalidate`]
//! bumps it and removes the entry under the same lock. (An unrelated invalidation in the
//! same shard only costs one uncached answer.)

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use portcullis_core::UnixTime;

const SHARDS: usize = 64;

/// One pre-signed response.
#[derive(Debug, Clone)]
pub(crate) struct CachedResponse {
    /// The DER of the CertID it answers (the part of the key beyond the serial).
    pub cert_id_der: Vec<u8>,
    /// The whole `OCSPResponse`.
    pub der: Bytes,
    /// Whether it says `good` or `revoked` (for the metric).
    pub status: &'static str,
    pub this_update: UnixTime,
    pub next_update: UnixTime,
}

pub(crate) struct ResponseCache {
    entries: moka::sync::Cache<String, Arc<[CachedResponse]>>,
    generations: Box<[Mutex<u64>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl ResponseCache {
    /// `capacity` serials at most; an entry is dropped `ttl` after insertion (a response
    /// past its nextUpdate is useless, and keeping it costs memory).
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl.max(Duration::from_secs(1)))
                .build(),
            generations: (0..SHARDS).map(|_| Mutex::new(0)).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn shard(&self, serial: &str) -> MutexGuard<'_, u64> {
        let i = (self.hasher.hash_one(serial) % SHARDS as u64) as usize;
        #[allow(
            clippy::indexing_slicing,
            reason = "the remainder is below SHARDS, the number of counters"
        )]
        let counter = &self.generations[i];
        // A panic while holding this lock leaves only a counter behind; keep using it.
        counter
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get(&self, serial: &str, cert_id_der: &[u8]) -> Option<CachedResponse> {
        let entry = self.entries.get(serial)?;
        entry.iter().find(|r| r.cert_id_der == cert_id_der).cloned()
    }

    /// The generation to hand back to [`Self::insert_if_current`]; read it before looking
    /// the status up.
    pub fn generation(&self, serial: &str) -> u64 {
        *self.shard(serial)
    }

    /// Stores `response` unless `serial` was invalidated since `generation` was read.
    /// Replaces the response for the same CertID, keeps the others.
    pub fn insert_if_current(&self, serial: &str, generation: u64, response: CachedResponse) {
        let shard = self.shard(serial);
        if *shard != generation {
            return;
        }
        let mut responses: Vec<CachedResponse> = self
            .entries
            .get(serial)
            .map(|e| {
                e.iter()
                    .filter(|r| r.cert_id_der != response.cert_id_der)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        responses.push(response);
        self.entries.insert(serial.to_owned(), responses.into());
        drop(shard);
    }

    pub fn invalidate(&self, serial: &str) {
        let mut shard = self.shard(serial);
        *shard += 1;
        self.entries.invalidate(serial);
        drop(shard);
    }

    pub fn invalidate_all(&self) {
        let mut shards: Vec<_> = self
            .generations
            .iter()
            .map(|counter| {
                counter
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
            })
            .collect();
        for shard in &mut shards {
            **shard += 1;
        }
        self.entries.invalidate_all();
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}
