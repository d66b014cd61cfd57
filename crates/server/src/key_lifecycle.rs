//! The one signing-key lifecycle of a node: the rules of `portcullis_core::rotation` carried
//! out against the store's key table and the key custody. Start-up ([`KeyLifecycle::start`])
//! and the running key manager both go through it, so a key is only ever created, promoted,
//! retired or removed by a planned [`Transition`], under the `key-rotation` lease.
//!
//! Stored keys map to the timeline as: `next` keys sign from `state_changed_at`; `retired`
//! and `revoked` keys changed state at `state_changed_at`; `removed` keys are history only.
//!
//! Why this lives in `server` and not in `keys`: it needs the store and the audit events,
//! and `keys` stays a leaf that `pki` and `oauth` use without either. The rules are in
//! `core::rotation`, the custody in `keys::custody`; this file only connects them.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::{AuditAction, AuditEvent, Outcome};
use portcullis_core::rotation::{
    self, KeyState, KeyTimeline, RotationPolicy, StoredKeyState, Transition,
};
use portcullis_core::{Kid, UnixTime};
use portcullis_keys::{Algorithm, Jwk, KeyCustody, KeyError, KeyPurpose, Signer};
use portcullis_store::{Store, StoreError, StoredKey};

use crate::bootstrap::unix_now;
use crate::key_custody::open_signing_key;

/// The lease that makes one node the one that changes keys.
pub const ROTATION_LEASE: &str = "key-rotation";
/// How long the lease lasts without renewal (the leader renews it every second): a dead
/// leader's rotations resume on another node within this.
pub const ROTATION_LEASE_SECS: i64 = 10;

/// Why a key operation failed. The admin API answers these without their detail (a store
/// outage is a 503, the rest a 500); the detail goes to the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyManagerError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("key custody: {0}")]
    Custody(#[from] KeyError),
    #[error("the key table has no active signing key")]
    NoActiveKey,
    #[error("encoding a public key: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("the key change could not be audited in time")]
    Audit(#[from] portcullis_audit::AuditUnavailable),
}

pub type KeyResult<T> = Result<T, KeyManagerError>;

/// The key table as read once: the rows and their places on the timeline.
pub struct KeyTable {
    pub rows: Vec<StoredKey>,
    pub timelines: Vec<KeyTimeline>,
}

impl KeyTable {
    fn row(&self, kid: &Kid) -> Option<&StoredKey> {
        self.rows.iter().find(|k| &k.kid == kid)
    }
}

/// What a key ring is built from: the signing key and the published public keys.
pub struct RingContents {
    pub signer: Arc<dyn Signer>,
    pub published: Vec<Jwk>,
    pub kids: Vec<Kid>,
}

fn timeline(key: &StoredKey) -> Option<KeyTimeline> {
    let state = key.state.on_timeline()?;
    let at = Some(key.state_changed_at);
    Some(KeyTimeline {
        kid: key.kid.clone(),
        state,
        created_at: key.created_at,
        activates_at: matches!(state, KeyState::Next | KeyState::Active)
            .then_some(key.state_changed_at),
        retired_at: matches!(state, KeyState::Retired | KeyState::Revoked)
            .then_some(at)
            .flatten(),
    })
}

/// The signing keys of one deployment as this node manages them.
pub struct KeyLifecycle {
    store: Arc<dyn Store>,
    custody: KeyCustody,
    policy: RotationPolicy,
    algorithm: Algorithm,
    /// This node's name in leases.
    node_id: String,
    /// How long start-up waits for the lease when a change is needed and another node holds
    /// it (a restart after a crash: the dead process's lease runs out).
    lease_wait: Duration,
}

impl KeyLifecycle {
    pub fn new(
        store: Arc<dyn Store>,
        custody: KeyCustody,
        policy: RotationPolicy,
        algorithm: Algorithm,
        node_id: String,
    ) -> Self {
        Self {
            store,
            custody,
            policy,
            algorithm,
            node_id,
            lease_wait: Duration::from_secs(ROTATION_LEASE_SECS as u64 + 1),
        }
    }

    /// Shortens the wait for the lease at start-up (tests).
    #[cfg(test)]
    pub fn with_lease_wait(mut self, wait: Duration) -> Self {
        self.lease_wait = wait;
        self
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn custody(&self) -> &KeyCustody {
        &self.custody
    }

    pub fn policy(&self) -> &RotationPolicy {
        &self.policy
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Reads the key table.
    pub async fn table(&self) -> KeyResult<KeyTable> {
        let rows = self.store.list_signing_keys().await?;
        let timelines = rows.iter().filter_map(timeline).collect();
        Ok(KeyTable { rows, timelines })
    }

    /// Takes or renews the `key-rotation` lease; true while this node holds it.
    pub async fn lead(&self, now: UnixTime) -> KeyResult<bool> {
        Ok(self
            .store
            .try_acquire_lease(ROTATION_LEASE, &self.node_id, ROTATION_LEASE_SECS, now)
            .await?)
    }

    /// What the rotation policy makes due at `now`.
    pub fn planned(&self, table: &KeyTable, now: UnixTime) -> Vec<Transition> {
        rotation::plan(&table.timelines, &self.policy, now)
    }

    /// What is due when this node starts: the rotation plan, or a [`rotation::replace`] when
    /// the key that signs is not of the configured algorithm and backend and no key of them
    /// is pending (the operator changed `[keys] algorithm` or `backend`). Only start-up
    /// replaces keys, so nodes that disagree on the algorithm never take turns replacing
    /// each other's key while they run.
    pub fn due_at_start(&self, table: &KeyTable, now: UnixTime) -> Vec<Transition> {
        let configured = |key: &StoredKey| {
            key.alg == self.algorithm.as_str() && key.backend == self.custody.backend().as_str()
        };
        let signing = rotation::signing_key(&table.timelines).and_then(|kid| table.row(kid));
        let pending_successor = table
            .rows
            .iter()
            .any(|k| k.state == StoredKeyState::Next && configured(k));
        match signing {
            Some(key) if !configured(key) && !pending_successor => {
                rotation::replace(&table.timelines, now)
            }
            _ => self.planned(table, now),
        }
    }

    /// Carries out `transitions` on the key table and in custody; returns their audit events
    /// (`actor` acted) for the caller to record.
    pub async fn execute(
        &self,
        transitions: &[Transition],
        actor: &str,
        now: UnixTime,
    ) -> KeyResult<Vec<AuditEvent>> {
        let mut events = Vec::new();
        for t in transitions {
            let (action, kid) = match t {
                Transition::CreateNext { activates_at } => (
                    AuditAction::KeyCreated,
                    self.create(StoredKeyState::Next, *activates_at, now)
                        .await?,
                ),
                Transition::CreateAndActivate { at } => {
                    let kid = self.create(StoredKeyState::Active, *at, now).await?;
                    events.push(self.event(now, actor, AuditAction::KeyCreated, &kid));
                    (AuditAction::KeyActivated, kid)
                }
                Transition::Activate { kid, at } => (
                    AuditAction::KeyActivated,
                    self.set_state(kid, StoredKeyState::Active, *at).await?,
                ),
                Transition::Retire { kid, at } => (
                    AuditAction::KeyRetired,
                    self.set_state(kid, StoredKeyState::Retired, *at).await?,
                ),
                Transition::Revoke { kid, at } => (
                    AuditAction::KeyRevoked,
                    self.set_state(kid, StoredKeyState::Revoked, *at).await?,
                ),
                Transition::Remove { kid } => {
                    if let Err(e) = self.custody.destroy(kid) {
                        tracing::warn!(%kid, error = %e, "could not destroy a removed key in the token");
                    }
                    (
                        AuditAction::KeyRemoved,
                        self.set_state(kid, StoredKeyState::Removed, now).await?,
                    )
                }
            };
            tracing::info!(%kid, action = action.as_str(), actor, alg = self.algorithm.as_str(), "signing key changed");
            events.push(self.event(now, actor, action, &kid));
        }
        Ok(events)
    }

    fn event(&self, at: UnixTime, actor: &str, action: AuditAction, kid: &Kid) -> AuditEvent {
        AuditEvent {
            at,
            actor: actor.to_owned(),
            action: action.into(),
            subject: kid.to_string(),
            outcome: Outcome::Success.into(),
            detail: serde_json::json!({"backend": self.custody.backend().as_str()}),
        }
    }

    async fn create(&self, state: StoredKeyState, at: UnixTime, now: UnixTime) -> KeyResult<Kid> {
        let new = self
            .custody
            .generate(KeyPurpose::TokenSigning, self.algorithm)?;
        let key = StoredKey {
            kid: new.signer.kid().clone(),
            alg: self.algorithm.as_str().into(),
            backend: self.custody.backend().as_str().into(),
            sealed_private: new.sealed,
            public_jwk: serde_json::to_string(&new.signer.public_jwk())?,
            state,
            created_at: now,
            state_changed_at: at,
        };
        self.store.insert_signing_key(&key).await?;
        Ok(key.kid)
    }

    async fn set_state(&self, kid: &Kid, state: StoredKeyState, at: UnixTime) -> KeyResult<Kid> {
        self.store.update_signing_key_state(kid, state, at).await?;
        Ok(kid.clone())
    }

    /// The signer and the published keys of `table` at `now`.
    pub fn ring_contents(&self, table: &KeyTable, now: UnixTime) -> KeyResult<RingContents> {
        let signing =
            rotation::signing_key(&table.timelines).ok_or(KeyManagerError::NoActiveKey)?;
        let active = table.row(signing).ok_or(KeyManagerError::NoActiveKey)?;
        let signer = open_signing_key(&self.custody, active)?;
        let kids = rotation::published(&table.timelines, &self.policy, now);
        let published = kids
            .iter()
            .filter_map(|kid| table.row(kid))
            .filter_map(|k| match serde_json::from_str::<Jwk>(&k.public_jwk) {
                Ok(jwk) => Some(jwk),
                Err(e) => {
                    tracing::warn!(kid = %k.kid, error = %e, "stored public key does not parse; not published");
                    None
                }
            })
            .collect();
        Ok(RingContents {
            signer,
            published,
            kids,
        })
    }

    /// Start-up: carries out whatever is due (the first key of a new deployment, a changed
    /// algorithm or backend, a promotion or removal that fell due while no node ran) if this
    /// node can take the `key-rotation` lease, and returns the ring's contents with the
    /// audit events of what it did. When another node keeps the lease, that node carries
    /// out the plan; this one starts with the keys as they are (and waits for the first key
    /// of a new deployment rather than making a second one).
    pub async fn start(&self) -> KeyResult<(RingContents, Vec<AuditEvent>)> {
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + self.lease_wait;
        loop {
            let now = unix_now();
            let table = self.table().await?;
            let due = self.due_at_start(&table, now);
            if due.is_empty() {
                return Ok((self.ring_contents(&table, now)?, events));
            }
            if self.lead(now).await? {
                // Read again under the lease: another node may have acted meanwhile.
                let table = self.table().await?;
                let due = self.due_at_start(&table, now);
                events.extend(self.execute(&due, "system", now).await?);
                let table = self.table().await?;
                return Ok((self.ring_contents(&table, now)?, events));
            }
            if tokio::time::Instant::now() >= deadline {
                if rotation::signing_key(&table.timelines).is_none() {
                    return Err(KeyManagerError::NoActiveKey);
                }
                tracing::warn!(
                    alg = self.algorithm.as_str(),
                    backend = self.custody.backend().as_str(),
                    "another node holds the key-rotation lease; the signing keys stay as it keeps them (run `portcullis key rotate` to publish a key of this node's kind)"
                );
                return Ok((self.ring_contents(&table, now)?, events));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_keys::software::MasterKey;
    use portcullis_store::sqlite::SqliteStore;

    struct Deployment {
        _dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
    }

    async fn deployment() -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("s.db")).await.unwrap());
        Deployment {
            _dir: dir,
            store,
            master: Arc::new(MasterKey::from_bytes([9; 32])),
        }
    }

    impl Deployment {
        fn node(&self, name: &str, algorithm: Algorithm) -> KeyLifecycle {
            KeyLifecycle::new(
                self.store.clone(),
                KeyCustody::Software(self.master.clone()),
                RotationPolicy::default(),
                algorithm,
                name.into(),
            )
            .with_lease_wait(Duration::from_millis(300))
        }

        async fn rows(&self) -> Vec<StoredKey> {
            self.store.list_signing_keys().await.unwrap()
        }
    }

    fn actions(events: &[AuditEvent]) -> Vec<&str> {
        events.iter().map(|e| e.action.as_str()).collect()
    }

    #[tokio::test]
    async fn the_first_start_creates_one_signing_key_and_audits_it() {
        let d = deployment().await;
        let (ring, events) = d.node("a", Algorithm::ES256).start().await.unwrap();
        assert_eq!(actions(&events), ["key.created", "key.activated"]);
        let rows = d.rows().await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, StoredKeyState::Active);
        assert_eq!(ring.signer.kid(), &rows[0].kid);
        assert_eq!(ring.kids, vec![rows[0].kid.clone()]);
    }

    #[tokio::test]
    async fn a_restart_with_the_same_configuration_changes_nothing() {
        let d = deployment().await;
        let (first, _) = d.node("a", Algorithm::ES256).start().await.unwrap();
        // Another node name: the lease is not needed when nothing is due.
        let (again, events) = d.node("b", Algorithm::ES256).start().await.unwrap();
        assert!(events.is_empty());
        assert_eq!(first.signer.kid(), again.signer.kid());
        assert_eq!(d.rows().await.len(), 1);
    }

    #[tokio::test]
    async fn a_changed_algorithm_signs_with_a_new_key_and_keeps_the_old_one_published() {
        let d = deployment().await;
        let (old, _) = d.node("a", Algorithm::ES256).start().await.unwrap();
        let (new, events) = d.node("a", Algorithm::EdDSA).start().await.unwrap();
        assert_eq!(
            actions(&events),
            ["key.created", "key.activated", "key.retired"]
        );
        assert_eq!(new.signer.algorithm(), Algorithm::EdDSA);
        assert!(new.kids.contains(old.signer.kid()), "{:?}", new.kids);
        assert_eq!(new.published.len(), 2);
    }

    #[tokio::test]
    async fn a_next_key_due_while_no_node_ran_signs_after_the_start() {
        let d = deployment().await;
        let node = d.node("a", Algorithm::ES256);
        let (first, _) = node.start().await.unwrap();
        let now = unix_now();
        let events = node
            .execute(
                &[Transition::CreateNext {
                    activates_at: now - 1,
                }],
                "test",
                now,
            )
            .await
            .unwrap();
        let next = Kid::parse(events[0].subject.clone()).unwrap();
        let (ring, events) = node.start().await.unwrap();
        assert_eq!(ring.signer.kid(), &next);
        assert_eq!(actions(&events), ["key.activated", "key.retired"]);
        assert!(ring.kids.contains(first.signer.kid()));
    }

    #[tokio::test]
    async fn a_pending_key_of_the_configured_kind_is_awaited_not_replaced() {
        let d = deployment().await;
        let (first, _) = d.node("a", Algorithm::ES256).start().await.unwrap();
        let eddsa = d.node("a", Algorithm::EdDSA);
        let now = unix_now();
        eddsa
            .execute(
                &[Transition::CreateNext {
                    activates_at: now + 600,
                }],
                "test",
                now,
            )
            .await
            .unwrap();
        let (ring, events) = eddsa.start().await.unwrap();
        assert!(events.is_empty(), "{:?}", actions(&events));
        assert_eq!(ring.signer.kid(), first.signer.kid());
        assert_eq!(d.rows().await.len(), 2);
    }

    #[tokio::test]
    async fn a_node_that_cannot_lead_changes_no_key() {
        let d = deployment().await;
        let (first, _) = d.node("a", Algorithm::ES256).start().await.unwrap();
        // Node a still holds the lease; b wants another algorithm and must leave it be.
        let (ring, events) = d.node("b", Algorithm::EdDSA).start().await.unwrap();
        assert!(events.is_empty());
        assert_eq!(ring.signer.kid(), first.signer.kid());
        assert_eq!(d.rows().await.len(), 1);
    }

    #[tokio::test]
    async fn a_new_deployment_never_gets_two_first_keys() {
        let d = deployment().await;
        assert!(d
            .store
            .try_acquire_lease(ROTATION_LEASE, "other", ROTATION_LEASE_SECS, unix_now())
            .await
            .unwrap());
        let refused = d.node("b", Algorithm::ES256).start().await;
        assert!(matches!(refused, Err(KeyManagerError::NoActiveKey)));
        assert!(d.rows().await.is_empty());
    }

    #[tokio::test]
    async fn keys_of_another_backend_are_refused_with_a_reason() {
        let d = deployment().await;
        d.node("a", Algorithm::ES256).start().await.unwrap();
        let mut row = d.rows().await.remove(0);
        row.backend = "pkcs11".into();
        let custody = KeyCustody::Software(d.master.clone());
        let err = open_signing_key(&custody, &row).unwrap_err();
        assert!(err.to_string().contains("pkcs11"), "{err}");
    }
}
