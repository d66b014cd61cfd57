//! The signing-key lifecycle of a node (issue #3): the rotation rules of
//! `portcullis_core::rotation` carried out against the store and the key custody, with the
//! key ring rebuilt after every change and every step audited.
//!
//! Stored keys map to the timeline as: `next` keys sign from `state_changed_at`; `retired`
//! and `revoked` keys changed state at `state_changed_at`; `removed` keys are history only.

use portcullis_core::audit::{AuditAction, Outcome};
use std::sync::Arc;

use async_trait::async_trait;
use portcullis_admin::{AdminError, KeyAdmin, KeyView};
use portcullis_audit::{AuditLog, CheckpointKeys};
use portcullis_core::audit::AuditEvent;
use portcullis_core::rotation::{
    self, KeyState, KeyTimeline, RotationPolicy, StoredKeyState, Transition,
};
use portcullis_core::{Kid, UnixTime};
use portcullis_keys::{Algorithm, Jwk, KeyError, KeyRing, VerifyingKey};
use portcullis_store::{Store, StoreError, StoredKey};
use tokio::sync::Mutex;

use crate::bootstrap::unix_now;
use crate::key_custody::KeyCustody;

/// The lease that makes one node the one that carries out due rotations.
const ROTATION_LEASE: &str = "key-rotation";
/// How long the lease lasts without renewal (renewed every check, i.e. every second): a dead
/// leader's rotations resume on another node within this.
const ROTATION_LEASE_SECS: i64 = 10;

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
}

impl From<KeyManagerError> for AdminError {
    fn from(e: KeyManagerError) -> Self {
        match e {
            KeyManagerError::Store(e) => AdminError::Store(e),
            KeyManagerError::Custody(e) => AdminError::Keys(e),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

type KeyResult<T> = Result<T, KeyManagerError>;

/// Carries out rotations on this node.
pub struct KeyManager {
    store: Arc<dyn Store>,
    custody: KeyCustody,
    ring: Arc<KeyRing>,
    policy: RotationPolicy,
    algorithm: Algorithm,
    audit: AuditLog,
    /// This node's name in the `key-rotation` lease.
    node_id: String,
    /// One rotation at a time on this node (several nodes: see docs/architecture.md); holds
    /// the published kids of the current ring, to reload only when they change.
    busy: Mutex<Vec<Kid>>,
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

impl KeyManager {
    pub fn new(
        store: Arc<dyn Store>,
        custody: KeyCustody,
        ring: Arc<KeyRing>,
        policy: RotationPolicy,
        algorithm: Algorithm,
        audit: AuditLog,
    ) -> Self {
        Self {
            store,
            custody,
            ring,
            policy,
            algorithm,
            audit,
            busy: Mutex::new(Vec::new()),
            node_id: format!(
                "node-{:016x}",
                u64::from_be_bytes(portcullis_keys::random_array::<8>().unwrap_or([0; 8]))
            ),
        }
    }

    async fn stored(&self) -> KeyResult<(Vec<StoredKey>, Vec<KeyTimeline>)> {
        let stored = self.store.list_signing_keys().await?;
        let timelines = stored.iter().filter_map(timeline).collect();
        Ok((stored, timelines))
    }

    /// Applies whatever the rotation policy says is due now (scheduled rotation, promotion of
    /// a pre-published key, removal of keys whose tokens have all expired).
    /// This node's name in leases (leader-only jobs).
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Cheap when nothing is due: one read of the key table, no key loading. Only the node
    /// holding the `key-rotation` lease acts; the others follow through change notifications.
    pub async fn reconcile(&self) -> KeyResult<()> {
        let mut published = self.busy.lock().await;
        let now = unix_now();
        let leader = self
            .store
            .try_acquire_lease(ROTATION_LEASE, &self.node_id, ROTATION_LEASE_SECS, now)
            .await?;
        if !leader {
            return Ok(());
        }
        let (_, timelines) = self.stored().await?;
        let transitions = rotation::plan(&timelines, &self.policy, now);
        if transitions.is_empty()
            && *published == rotation::published(&timelines, &self.policy, now)
        {
            return Ok(());
        }
        self.execute(&transitions, "system", now).await?;
        *published = self.reload_locked(now).await?;
        Ok(())
    }

    /// Rebuilds the key ring from the store (after another node changed a key).
    pub async fn reload(&self) -> KeyResult<()> {
        let mut published = self.busy.lock().await;
        *published = self.reload_locked(unix_now()).await?;
        Ok(())
    }

    /// Rebuilds the ring; returns the published kids.
    async fn reload_locked(&self, now: UnixTime) -> KeyResult<Vec<Kid>> {
        let (stored, timelines) = self.stored().await?;
        let signing = rotation::signing_key(&timelines).ok_or(KeyManagerError::NoActiveKey)?;
        let active = stored
            .iter()
            .find(|k| &k.kid == signing)
            .ok_or(KeyManagerError::NoActiveKey)?;
        let signer = self.custody.load(active)?;
        let kids = rotation::published(&timelines, &self.policy, now);
        let published: Vec<Jwk> = kids
            .iter()
            .filter_map(|kid| stored.iter().find(|k| &k.kid == kid))
            .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
            .collect();
        self.ring.replace(signer, published);
        Ok(kids)
    }

    async fn execute(
        &self,
        transitions: &[Transition],
        actor: &str,
        now: UnixTime,
    ) -> KeyResult<()> {
        for t in transitions {
            let (action, kid) = match t {
                Transition::CreateNext { activates_at } => (
                    AuditAction::KeyCreated,
                    self.create(StoredKeyState::Next, *activates_at, now)
                        .await?,
                ),
                Transition::CreateAndActivate { at } => (
                    AuditAction::KeyCreated,
                    self.create(StoredKeyState::Active, *at, now).await?,
                ),
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
                    if let KeyCustody::Pkcs11(token) = &self.custody {
                        if let Err(e) = token.destroy(kid) {
                            tracing::warn!(%kid, error = %e, "could not destroy a removed key in the token");
                        }
                    }
                    (
                        AuditAction::KeyRemoved,
                        self.set_state(kid, StoredKeyState::Removed, now).await?,
                    )
                }
            };
            tracing::info!(%kid, action = action.as_str(), actor, "signing key changed");
            self.audit.record(AuditEvent {
                at: now,
                actor: actor.to_owned(),
                action: action.into(),
                subject: kid.to_string(),
                outcome: Outcome::Success.into(),
                detail: serde_json::json!({"backend": self.custody.backend_name()}),
            });
        }
        Ok(())
    }

    async fn create(&self, state: StoredKeyState, at: UnixTime, now: UnixTime) -> KeyResult<Kid> {
        let (signer, sealed) = self.custody.generate(self.algorithm)?;
        let key = StoredKey {
            kid: signer.kid().clone(),
            alg: self.algorithm.as_str().into(),
            backend: self.custody.backend_name().into(),
            sealed_private: sealed,
            public_jwk: serde_json::to_string(&signer.public_jwk())?,
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

    async fn views(&self) -> KeyResult<Vec<KeyView>> {
        let now = unix_now();
        let (mut stored, timelines) = self.stored().await?;
        let published = rotation::published(&timelines, &self.policy, now);
        let signing = rotation::signing_key(&timelines).cloned();
        stored.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.kid.cmp(&a.kid))
        });
        Ok(stored
            .into_iter()
            .map(|k| KeyView {
                published: published.contains(&k.kid),
                signing: signing.as_ref() == Some(&k.kid),
                kid: k.kid.to_string(),
                alg: k.alg,
                backend: k.backend,
                state: k.state.as_str().to_owned(),
                created_at: k.created_at,
                state_changed_at: k.state_changed_at,
            })
            .collect())
    }
}

#[async_trait]
impl KeyAdmin for KeyManager {
    async fn list_keys(&self) -> Result<Vec<KeyView>, AdminError> {
        Ok(self.views().await?)
    }

    /// Every row of the key table, opened through this node's custody: a software key must
    /// unseal under the master key with its kid as AAD, a PKCS#11 key must be in the token,
    /// and the public key is derived from what was opened, so a row written by someone with
    /// only the database (its `public_jwk` is plain text) is never trusted. Retired and removed
    /// software keys stay sealed in their rows and keep verifying old checkpoints; keys that
    /// cannot be opened (destroyed in the token after removal, another backend) and revoked
    /// keys (whoever stole one could sign any checkpoint) are reported, not trusted.
    async fn checkpoint_keys(&self) -> Result<CheckpointKeys, AdminError> {
        let mut keys = CheckpointKeys::key_table();
        for key in self.store.list_signing_keys().await? {
            let kid = key.kid.as_str().to_owned();
            if key.state == StoredKeyState::Revoked {
                keys.distrust(kid, "revoked as compromised: its signatures prove nothing");
                continue;
            }
            let opened = self.custody.load(&key).and_then(|signer| {
                VerifyingKey::from_jwk(&signer.public_jwk(), &[signer.algorithm()])
            });
            match opened {
                Ok(public) => keys.trust(kid, public),
                Err(e) => {
                    keys.distrust(kid, format!("this node's key custody cannot open it ({e})"))
                }
            }
        }
        Ok(keys)
    }

    async fn retire_key(&self, actor: &str, kid: &str) -> Result<Vec<KeyView>, AdminError> {
        let kid = Kid::parse(kid)?;
        self.operator_change(actor, |timelines, now| {
            Ok(rotation::retire(timelines, &kid, now)?)
        })
        .await
    }

    async fn rotate_keys(
        &self,
        actor: &str,
        compromised: Option<&str>,
    ) -> Result<Vec<KeyView>, AdminError> {
        let compromised = compromised.map(Kid::parse).transpose()?;
        self.operator_change(actor, |timelines, now| match &compromised {
            Some(kid) => Ok(rotation::compromise(timelines, kid, now)?),
            None => Ok(rotation::rotate(timelines, &self.policy, now)),
        })
        .await
    }
}

impl KeyManager {
    /// An operator's key change: the transitions `decide` picks from the current timeline are
    /// carried out (audited as `actor`) and the ring rebuilt, all under this node's key lock.
    async fn operator_change(
        &self,
        actor: &str,
        decide: impl FnOnce(&[KeyTimeline], UnixTime) -> Result<Vec<Transition>, AdminError>,
    ) -> Result<Vec<KeyView>, AdminError> {
        {
            let mut published = self.busy.lock().await;
            let now = unix_now();
            let (_, timelines) = self.stored().await?;
            let transitions = decide(&timelines, now)?;
            self.execute(&transitions, actor, now).await?;
            *published = self.reload_locked(now).await?;
        }
        self.list_keys().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_reach_the_admin_api_without_their_detail() {
        let outage = KeyManagerError::Store(StoreError::Unavailable(
            "connection to 10.0.0.5:5432 refused".into(),
        ));
        let problem = AdminError::from(outage).problem();
        assert_eq!(problem.status, 503);
        assert!(!problem.detail.contains("10.0.0.5"), "{}", problem.detail);

        let custody = KeyManagerError::Custody(KeyError::Corrupt("row key-1 is garbage".into()));
        let problem = AdminError::from(custody).problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("key-1"), "{}", problem.detail);

        let problem = AdminError::from(KeyManagerError::NoActiveKey).problem();
        assert_eq!(problem.status, 500);
    }
}
