//! The CRL every node serves. The holder of the `crl` lease (the server's background job calls
//! [`CrlPublisher::set_leader`]) rebuilds it when a revocation marks it stale or half its
//! validity has passed, and publishes it in the store (setting [`CRL_SETTING`], written with a
//! compare-and-swap); the other nodes load that row when the store announces a new one.
//!
//! Why one builder rather than every node building its own: behind a load balancer a relying
//! party could otherwise fetch CRL number N from one node and an older N-1 from the next, and
//! three nodes would each pay for the same signature over 100 000 entries.
//!
//! A node never waits for a leader that is not there: if the stored CRL is missing, refused
//! (wrong issuer, bad signature) or older than three quarters of its validity, the node builds
//! and publishes one itself. The leader refreshes at one half, so this fallback only runs when
//! no leader is working.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use portcullis_store::Store;

use super::{build_crl, stored, Crl};
use crate::ca::CertificateAuthority;
use crate::PkiError;

/// The settings row holding the published CRL (DER).
pub const CRL_SETTING: &str = "pki.crl";

/// Attempts to publish before serving an unpublished CRL: each retry follows another node's
/// write between our read and our compare-and-swap, which a lease makes rare.
const PUBLISH_ATTEMPTS: usize = 3;

pub struct CrlPublisher {
    ca: Arc<CertificateAuthority>,
    store: Arc<dyn Store>,
    validity_secs: i64,
    current: RwLock<Option<Arc<Crl>>>,
    /// A certificate was revoked since the CRL was built: the leader rebuilds.
    stale: AtomicBool,
    /// Another node published a CRL (or notices were lost): followers reload it.
    outdated: AtomicBool,
    /// This node holds the `crl` lease.
    leader: AtomicBool,
    /// One build or load at a time: concurrent fetches of a stale CRL share its result.
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for CrlPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlPublisher")
            .field("leader", &self.leader.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl CrlPublisher {
    pub fn new(ca: Arc<CertificateAuthority>, store: Arc<dyn Store>, validity_secs: i64) -> Self {
        Self {
            ca,
            store,
            validity_secs,
            current: RwLock::new(None),
            stale: AtomicBool::new(true),
            outdated: AtomicBool::new(true),
            leader: AtomicBool::new(false),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// Marks the CRL out of date (a certificate was revoked, here or on another node).
    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// Another node published a CRL: load it on the next request.
    pub fn mark_published(&self) {
        self.outdated.store(true, Ordering::Release);
    }

    /// Whether this node builds the CRL (it holds the `crl` lease). A node that becomes the
    /// builder rebuilds once: the previous one may have died before publishing a revocation.
    pub fn set_leader(&self, leader: bool) {
        if self.leader.swap(leader, Ordering::AcqRel) != leader && leader {
            self.mark_stale();
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// The CRL to serve now: this node's copy while it is current, else (on the leader) a
    /// fresh build, else (on a follower) the published one.
    pub async fn current(&self, now_millis: i64) -> Result<Arc<Crl>, PkiError> {
        let now = now_millis.div_euclid(1000);
        if let Some(crl) = self.usable(now) {
            return Ok(crl);
        }
        let _one_at_a_time = self.refresh.lock().await;
        if let Some(crl) = self.usable(now) {
            return Ok(crl);
        }
        let mut seen = None;
        if !self.is_leader() {
            // Cleared before reading, so a notice arriving during the read marks it again.
            self.outdated.store(false, Ordering::Release);
            match self.read_published().await {
                Ok(Seen::Ours(crl)) if now < crl.this_update + self.validity_secs * 3 / 4 => {
                    return Ok(self.keep(crl));
                }
                Ok(other) => seen = Some(other),
                Err(PkiError::Store(e)) => {
                    self.mark_published();
                    return Err(PkiError::Store(e));
                }
                Err(e) => tracing::warn!(error = %e, "rebuilding the CRL"),
            }
        }
        self.rebuild(now_millis, seen).await
    }

    /// This node's copy, if nothing requires a refresh: the leader answers to revocations, a
    /// follower to publications; both to age.
    fn usable(&self, now: i64) -> Option<Arc<Crl>> {
        let crl = self.current.read().ok()?.clone()?;
        let refresh = if self.is_leader() {
            self.stale.load(Ordering::Acquire)
        } else {
            self.outdated.load(Ordering::Acquire)
        };
        (!refresh && now < crl.this_update + self.validity_secs / 2).then_some(crl)
    }

    fn keep(&self, crl: impl Into<Arc<Crl>>) -> Arc<Crl> {
        let crl = crl.into();
        if let Ok(mut slot) = self.current.write() {
            *slot = Some(crl.clone());
        }
        crl
    }

    /// The published row, read from the store and checked against the CA (off the runtime
    /// threads: a CRL of 100 000 entries is megabytes to verify and parse).
    async fn read_published(&self) -> Result<Seen, PkiError> {
        let Some(der) = self.store.get_setting(CRL_SETTING).await? else {
            return Ok(Seen::Nothing);
        };
        let issuer = self.ca.issuing_der().to_vec();
        let checked = der.clone();
        let decoded = tokio::task::spawn_blocking(move || stored::decode(checked, &issuer))
            .await
            .map_err(|e| PkiError::Encoding(format!("CRL task failed: {e}")))?;
        Ok(match decoded {
            Ok(crl) => Seen::Ours(Arc::new(crl)),
            Err(e) => {
                tracing::warn!(error = %e, "the published CRL is refused; it will be replaced");
                Seen::Refused(der)
            }
        })
    }

    /// Builds a CRL from the store's revocations and publishes it. Its number is above the
    /// published one even if another node's clock runs ahead, so the newest build always wins
    /// and numbers never go backwards. `seen` is the row if the caller has just read it.
    async fn rebuild(&self, now_millis: i64, seen: Option<Seen>) -> Result<Arc<Crl>, PkiError> {
        // Cleared before reading, so a revocation committed during the read marks it again.
        self.stale.store(false, Ordering::Release);
        // What this node built or loaded last is normally what is published: start from it,
        // and read the row only if the compare-and-swap says another node wrote since.
        let held = self.current.read().ok().and_then(|c| c.clone());
        let mut published = match (seen, held) {
            (Some(seen), _) => seen,
            (None, Some(crl)) => Seen::Ours(crl),
            (None, None) => self
                .read_published()
                .await
                .inspect_err(|_| self.mark_stale())?,
        };
        for _ in 0..PUBLISH_ATTEMPTS {
            let number = u64::try_from(now_millis)
                .unwrap_or(0)
                .max(published.next_number());
            let crl = self.build(now_millis, number).await?;
            let written = match published.der() {
                None => self
                    .store
                    .put_setting_if_absent(CRL_SETTING, &crl.der)
                    .await
                    .map(|stored| stored == crl.der),
                Some(old) => self.store.replace_setting(CRL_SETTING, old, &crl.der).await,
            };
            match written {
                Ok(true) => return Ok(self.keep(crl)),
                // Another node published since: build above what it wrote.
                Ok(false) => {
                    published = self
                        .read_published()
                        .await
                        .inspect_err(|_| self.mark_stale())?;
                }
                // Still a correct CRL of this CA; the next revocation or refresh publishes.
                Err(e) => {
                    tracing::warn!(error = %e, "publishing the CRL failed; serving this node's build");
                    return Ok(self.keep(crl));
                }
            }
        }
        // Others keep publishing (a lease hand-over in progress): theirs is the newest.
        match published {
            Seen::Ours(crl) => Ok(self.keep(crl)),
            Seen::Nothing | Seen::Refused(_) => {
                Err(PkiError::Encoding("CRL publication kept failing".into()))
            }
        }
    }

    async fn build(&self, now_millis: i64, number: u64) -> Result<Crl, PkiError> {
        let revoked = self
            .store
            .list_revoked_certificates(now_millis.div_euclid(1000))
            .await
            .inspect_err(|_| self.mark_stale())?;
        let ca = self.ca.clone();
        let validity = self.validity_secs;
        tokio::task::spawn_blocking(move || build_crl(&ca, &revoked, now_millis, number, validity))
            .await
            .map_err(|e| PkiError::Encoding(format!("CRL task failed: {e}")))?
    }
}

/// The published row as this node last saw it.
enum Seen {
    Nothing,
    /// A CRL of this CA: built or loaded here, or read and checked.
    Ours(Arc<Crl>),
    /// Bytes that are not a CRL of this CA (a planted or corrupted row), to be replaced.
    Refused(Vec<u8>),
}

impl Seen {
    /// What a compare-and-swap must find in the row.
    fn der(&self) -> Option<&[u8]> {
        match self {
            Seen::Nothing => None,
            Seen::Ours(crl) => Some(&crl.der),
            Seen::Refused(der) => Some(der),
        }
    }

    /// The lowest number the next CRL may carry.
    fn next_number(&self) -> u64 {
        match self {
            Seen::Ours(crl) => crl.number.saturating_add(1),
            Seen::Nothing | Seen::Refused(_) => 0,
        }
    }
}
