//! The running side of the signing-key lifecycle (issue #3): the leader's scheduled
//! transitions every second, operators' rotations and retirements through the admin API, and
//! the key ring rebuilt after every change, each step audited. The transitions themselves are
//! carried out by [`KeyLifecycle`], which start-up uses too.

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_admin::{AdminError, KeyAdmin, KeyView};
use portcullis_audit::{AuditLog, CheckpointKeys};
use portcullis_core::rotation::{self, KeyTimeline, StoredKeyState, Transition};
use portcullis_core::{Kid, UnixTime};
use portcullis_keys::{KeyRing, VerifyingKey};
use tokio::sync::Mutex;

use crate::bootstrap::unix_now;
use crate::key_custody::open_signing_key;
pub use crate::key_lifecycle::KeyManagerError;
use crate::key_lifecycle::{KeyLifecycle, KeyResult};

impl From<KeyManagerError> for AdminError {
    fn from(e: KeyManagerError) -> Self {
        match e {
            KeyManagerError::Store(e) => AdminError::Store(e),
            KeyManagerError::Custody(e) => AdminError::Keys(e),
            KeyManagerError::Audit(e) => AdminError::AuditUnavailable(e),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

/// Carries out rotations on this node.
pub struct KeyManager {
    lifecycle: KeyLifecycle,
    ring: Arc<KeyRing>,
    audit: AuditLog,
    /// One rotation at a time on this node (several nodes: see docs/architecture.md); holds
    /// the published kids of the current ring, to reload only when they change.
    busy: Mutex<Vec<Kid>>,
}

impl KeyManager {
    /// Takes over the lifecycle and the ring start-up built from it, which publishes
    /// `published` (so the first check does not rebuild a ring that is already current).
    pub fn new(
        lifecycle: KeyLifecycle,
        ring: Arc<KeyRing>,
        published: Vec<Kid>,
        audit: AuditLog,
    ) -> Self {
        Self {
            lifecycle,
            ring,
            audit,
            busy: Mutex::new(published),
        }
    }

    /// This node's name in leases (leader-only jobs).
    /// The key custody every key of this node goes through (token, CA and operator keys).
    pub fn custody(&self) -> &portcullis_keys::KeyCustody {
        self.lifecycle.custody()
    }

    pub fn node_id(&self) -> &str {
        self.lifecycle.node_id()
    }

    /// Applies whatever the rotation policy says is due now (scheduled rotation, promotion of
    /// a pre-published key, removal of keys whose tokens have all expired). Cheap when
    /// nothing is due: one read of the key table, no key loading. Only the node holding the
    /// `key-rotation` lease acts; the others follow through change notifications (and reload
    /// when the change feed lost its connection).
    pub async fn reconcile(&self) -> KeyResult<()> {
        let mut published = self.busy.lock().await;
        let now = unix_now();
        if !self.lifecycle.lead(now).await? {
            return Ok(());
        }
        let table = self.lifecycle.table().await?;
        let transitions = self.lifecycle.planned(&table, now);
        if transitions.is_empty()
            && *published == rotation::published(&table.timelines, self.lifecycle.policy(), now)
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
        let table = self.lifecycle.table().await?;
        let contents = self.lifecycle.ring_contents(&table, now)?;
        self.ring.replace(contents.signer, contents.published);
        Ok(contents.kids)
    }

    async fn execute(
        &self,
        transitions: &[Transition],
        actor: &str,
        now: UnixTime,
    ) -> KeyResult<()> {
        // A key change is confirmed only once its record is stored, in either audit mode.
        for event in self.lifecycle.execute(transitions, actor, now).await? {
            self.audit.commit(event).await?;
        }
        Ok(())
    }

    async fn views(&self) -> KeyResult<Vec<KeyView>> {
        let now = unix_now();
        let table = self.lifecycle.table().await?;
        let published = rotation::published(&table.timelines, self.lifecycle.policy(), now);
        let signing = rotation::signing_key(&table.timelines).cloned();
        let mut rows = table.rows;
        rows.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.kid.cmp(&a.kid))
        });
        Ok(rows
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
        for key in self.lifecycle.store().list_signing_keys().await? {
            let kid = key.kid.as_str().to_owned();
            if key.state == StoredKeyState::Revoked {
                keys.distrust(kid, "revoked as compromised: its signatures prove nothing");
                continue;
            }
            let opened = open_signing_key(self.lifecycle.custody(), &key).and_then(|signer| {
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
            known(timelines, &kid)?;
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
            Some(kid) => {
                known(timelines, kid)?;
                Ok(rotation::compromise(timelines, kid, now)?)
            }
            None => Ok(rotation::rotate(timelines, self.lifecycle.policy(), now)),
        })
        .await
    }
}

/// A kid the operator named must be in the key table (removed keys are not: nothing is left to
/// change); otherwise the answer is 404.
fn known(timelines: &[KeyTimeline], kid: &Kid) -> Result<(), AdminError> {
    if timelines.iter().any(|k| &k.kid == kid) {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!("no signing key {kid}")))
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
            let table = self.lifecycle.table().await?;
            let transitions = decide(&table.timelines, now)?;
            self.execute(&transitions, actor, now).await?;
            *published = self.reload_locked(now).await?;
        }
        self.list_keys().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_keys::KeyError;
    use portcullis_store::StoreError;

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

    mod lifecycle {
        use super::*;
        use crate::key_lifecycle::KeyLifecycle;
        use portcullis_core::rotation::RotationPolicy;
        use portcullis_keys::software::MasterKey;
        use portcullis_keys::{Algorithm, KeyCustody};
        use portcullis_store::sqlite::SqliteStore;
        use portcullis_store::Store;

        async fn manager() -> (tempfile::TempDir, KeyManager, Arc<KeyRing>) {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn Store> =
                Arc::new(SqliteStore::open(&dir.path().join("s.db")).await.unwrap());
            let lifecycle = KeyLifecycle::new(
                store.clone(),
                KeyCustody::Software(Arc::new(MasterKey::from_bytes([4; 32]))),
                RotationPolicy::default(),
                Algorithm::ES256,
                "node-test".into(),
            );
            let (contents, _) = lifecycle.start().await.unwrap();
            let ring = Arc::new(KeyRing::new(contents.signer, contents.published));
            let manager = KeyManager::new(
                lifecycle,
                ring.clone(),
                contents.kids,
                AuditLog::start(store),
            );
            (dir, manager, ring)
        }

        fn signing(views: &[KeyView]) -> &KeyView {
            views.iter().find(|k| k.signing).unwrap()
        }

        #[tokio::test]
        async fn an_operator_rotation_prepublishes_and_the_schedule_keeps_the_signer() {
            let (_dir, keys, ring) = manager().await;
            let before = keys.list_keys().await.unwrap();
            let after = keys.rotate_keys("admin:ops", None).await.unwrap();
            assert_eq!(after.len(), 2);
            let next = after.iter().find(|k| k.state == "next").unwrap();
            assert!(next.published && !next.signing);
            assert_eq!(signing(&after).kid, signing(&before).kid);
            // Published at once, so verifiers have it a day before it signs.
            assert!(ring.jwks_json().contains(&next.kid));
            keys.reconcile().await.unwrap();
            assert_eq!(ring.active().kid().as_str(), signing(&before).kid);
            // A second rotation while one is pending changes nothing.
            assert_eq!(keys.rotate_keys("admin:ops", None).await.unwrap().len(), 2);
        }

        #[tokio::test]
        async fn a_compromised_key_leaves_jwks_and_another_signs_at_once() {
            let (_dir, keys, ring) = manager().await;
            let old = ring.active().kid().as_str().to_owned();
            let after = keys.rotate_keys("admin:ops", Some(&old)).await.unwrap();
            let revoked = after.iter().find(|k| k.kid == old).unwrap();
            assert_eq!(revoked.state, "revoked");
            assert!(!revoked.published);
            assert_ne!(ring.active().kid().as_str(), old);
            assert!(!ring.jwks_json().contains(&old));
        }

        #[tokio::test]
        async fn the_only_signing_key_cannot_be_retired_and_unknown_kids_are_refused() {
            let (_dir, keys, ring) = manager().await;
            let only = ring.active().kid().as_str().to_owned();
            let err = keys.retire_key("admin:ops", &only).await.unwrap_err();
            assert_eq!(err.problem().status, 409, "a state conflict: {err}");
            let err = keys
                .retire_key("admin:ops", "no-such-kid")
                .await
                .unwrap_err();
            assert_eq!(err.problem().status, 404, "{err}");
            let err = keys
                .retire_key("admin:ops", "not a kid!")
                .await
                .unwrap_err();
            assert_eq!(err.problem().status, 400, "{err}");
            assert_eq!(ring.active().kid().as_str(), only);
        }

        #[tokio::test]
        async fn checkpoint_keys_trust_what_custody_opens_and_distrust_revoked_keys() {
            let (_dir, keys, ring) = manager().await;
            let old = ring.active().kid().as_str().to_owned();
            keys.rotate_keys("admin:ops", Some(&old)).await.unwrap();
            let trusted = keys.checkpoint_keys().await.unwrap();
            let new = ring.active().kid().as_str().to_owned();
            assert!(trusted.is_trusted(&new));
            assert!(!trusted.is_trusted(&old));
        }
    }
}
