//! The operator's signing keys — the trust root and the command, settings and update keys —
//! in key custody, and the trust list the root signs over the current ones.
//!
//! Both live in store settings, like the device CA's record: one JSON record of key handles
//! (sealed PKCS#8 under the master key with the role in the AAD, or a PKCS#11 kid; never a
//! plaintext key), and the latest signed trust list. Every change is a compare-and-swap of
//! the record, so two nodes (or two admins) never lose each other's keys, and a trust list's
//! version rises by exactly one per publication.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_core::{Kid, UnixTime};
use portcullis_keys::{Algorithm, Jwk, KeyBackend, KeyCustody, KeyPurpose, Signer};
use portcullis_store::Store;
use serde::{Deserialize, Serialize};

use super::{cose_key_from_jwk, sign, Kind, Role, TrustList, TrustedKey};
use crate::error::GatewayError;
use portcullis_store::swap_setting;

/// The settings record of operator keys.
pub const OPERATOR_KEYS_SETTING: &str = "gateway.operator_keys";
/// The settings record of the latest signed trust list.
pub const TRUST_LIST_SETTING: &str = "gateway.trust_list";

/// The backend of a root key whose private half never reaches Portcullis (an air-gapped
/// file): only its public key is recorded; trust lists are drafted here, signed there
/// (`portcullis trust sign`) and uploaded.
pub const OFFLINE_BACKEND: &str = "offline";

/// What an offline root's signer answers: the list must be signed where the key is.
const ROOT_OFFLINE: &str = "the active trust root is kept offline: `portcullis trust draft`, \
     sign the draft where the root key is (`portcullis trust sign`), then `portcullis trust upload`";

/// How many times a compare-and-swap is retried against concurrent writers.
const CAS_ATTEMPTS: usize = 8;

impl Role {
    /// The custody purpose a key of this role is sealed for.
    pub const fn purpose(self) -> KeyPurpose {
        match self {
            Self::Root => KeyPurpose::TrustRoot,
            Self::Commands => KeyPurpose::CommandSigning,
            Self::Settings => KeyPurpose::SettingsSigning,
            Self::Updates => KeyPurpose::UpdateSigning,
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Self::Root, Self::Commands, Self::Settings, Self::Updates]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// An operator key's life: it signs while active; retired, it is left out of the next trust
/// list (devices stop believing it once they have that list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperatorKeyState {
    Active,
    Retired,
}

/// What the store keeps of one operator key: a handle and its public half.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredOperatorKey {
    pub kid: String,
    pub role: Role,
    pub alg: String,
    /// `software` (sealed PKCS#8 below) or `pkcs11` (the token finds it by kid).
    pub backend: String,
    /// base64 of the sealed PKCS#8; empty for a key inside a token.
    #[serde(default)]
    pub sealed: String,
    pub public_jwk: Jwk,
    pub state: OperatorKeyState,
    pub created_at: UnixTime,
    #[serde(default)]
    pub retired_at: Option<UnixTime>,
}

impl std::fmt::Debug for StoredOperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredOperatorKey")
            .field("kid", &self.kid)
            .field("role", &self.role)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The settings record: every operator key, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredOperatorKeys {
    pub keys: Vec<StoredOperatorKey>,
}

impl StoredOperatorKeys {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, GatewayError> {
        serde_json::from_slice(bytes)
            .map_err(|e| GatewayError::Internal(format!("the operator key record: {e}")))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The newest active key of `role`.
    fn active(&self, role: Role) -> Option<&StoredOperatorKey> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.role == role && k.state == OperatorKeyState::Active)
    }
}

/// A trust list just published: what it says, and its signed form (what devices fetch).
#[derive(Debug, Clone)]
pub struct PublishedTrustList {
    pub list: TrustList,
    pub signed: Vec<u8>,
}

/// The operator keys and the trust list, over the store and key custody.
#[derive(Clone)]
pub struct OperatorKeys {
    store: Arc<dyn Store>,
    custody: KeyCustody,
    clock: fn() -> UnixTime,
}

impl std::fmt::Debug for OperatorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorKeys")
            .field("custody", &self.custody)
            .finish_non_exhaustive()
    }
}

fn key_error(e: portcullis_keys::KeyError) -> GatewayError {
    GatewayError::Internal(format!("key custody: {e}"))
}

impl OperatorKeys {
    pub fn new(store: Arc<dyn Store>, custody: KeyCustody, clock: fn() -> UnixTime) -> Self {
        Self {
            store,
            custody,
            clock,
        }
    }

    async fn load(&self) -> Result<(Option<Vec<u8>>, StoredOperatorKeys), GatewayError> {
        match self.store.get_setting(OPERATOR_KEYS_SETTING).await? {
            Some(bytes) => {
                let record = StoredOperatorKeys::from_bytes(&bytes)?;
                Ok((Some(bytes), record))
            }
            None => Ok((None, StoredOperatorKeys::default())),
        }
    }

    /// Writes `record` over `previous` (as read); `false` if someone wrote meanwhile.
    async fn swap(
        &self,
        previous: Option<&[u8]>,
        record: &StoredOperatorKeys,
    ) -> Result<bool, GatewayError> {
        let bytes = record.to_bytes();
        Ok(swap_setting(self.store.as_ref(), OPERATOR_KEYS_SETTING, previous, &bytes).await?)
    }

    /// Every operator key, oldest first.
    pub async fn list(&self) -> Result<Vec<StoredOperatorKey>, GatewayError> {
        Ok(self.load().await?.1.keys)
    }

    /// Generates a key of `role` in custody and records it as active. Keys of one role may
    /// overlap (a rotation: the new one signs, the old one verifies until retired).
    pub async fn create(
        &self,
        role: Role,
        alg: Algorithm,
    ) -> Result<StoredOperatorKey, GatewayError> {
        // One set for every role, the root included: what a constrained device verifies
        // cheaply (no RSA).
        if !matches!(alg, Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA) {
            return Err(GatewayError::Forbidden("operator_key_algorithm"));
        }
        let key = self
            .custody
            .generate(role.purpose(), alg)
            .map_err(key_error)?;
        let stored = StoredOperatorKey {
            kid: key.signer.kid().as_str().to_owned(),
            role,
            alg: alg.as_str().to_owned(),
            backend: self.custody.backend().as_str().to_owned(),
            sealed: if key.sealed.is_empty() {
                String::new()
            } else {
                STANDARD.encode(&key.sealed)
            },
            public_jwk: key.signer.public_jwk(),
            state: OperatorKeyState::Active,
            created_at: (self.clock)(),
            retired_at: None,
        };
        for _ in 0..CAS_ATTEMPTS {
            let (previous, mut record) = self.load().await?;
            record.keys.push(stored.clone());
            if self.swap(previous.as_deref(), &record).await? {
                return Ok(stored);
            }
        }
        Err(GatewayError::Unavailable(
            "the operator key record kept changing; try again".into(),
        ))
    }

    /// Retires a key: it signs no more and is left out of the next trust list. Retiring the
    /// only active root is refused (nothing could sign the next list).
    pub async fn retire(&self, kid: &str) -> Result<StoredOperatorKey, GatewayError> {
        for _ in 0..CAS_ATTEMPTS {
            let (previous, mut record) = self.load().await?;
            let roots_active = record
                .keys
                .iter()
                .filter(|k| k.role == Role::Root && k.state == OperatorKeyState::Active)
                .count();
            let now = (self.clock)();
            let Some(key) = record.keys.iter_mut().find(|k| k.kid == kid) else {
                return Err(GatewayError::Forbidden("unknown_operator_key"));
            };
            if key.state == OperatorKeyState::Retired {
                return Ok(key.clone());
            }
            if key.role == Role::Root && roots_active <= 1 {
                return Err(GatewayError::Forbidden("last_trust_root"));
            }
            key.state = OperatorKeyState::Retired;
            key.retired_at = Some(now);
            let retired = key.clone();
            if self.swap(previous.as_deref(), &record).await? {
                return Ok(retired);
            }
        }
        Err(GatewayError::Unavailable(
            "the operator key record kept changing; try again".into(),
        ))
    }

    /// The signer of the newest active key of `role`.
    pub async fn signer(&self, role: Role) -> Result<Arc<dyn Signer>, GatewayError> {
        let (_, record) = self.load().await?;
        let key = record
            .active(role)
            .ok_or(GatewayError::Unavailable(format!(
                "no active {} key: create one with `portcullis trust key create --role {}`",
                role.as_str(),
                role.as_str()
            )))?;
        self.open(key)
    }

    fn open(&self, key: &StoredOperatorKey) -> Result<Arc<dyn Signer>, GatewayError> {
        if key.backend == OFFLINE_BACKEND {
            return Err(GatewayError::Unavailable(ROOT_OFFLINE.into()));
        }
        let backend = KeyBackend::parse(&key.backend).map_err(key_error)?;
        let alg = Algorithm::parse(&key.alg).map_err(key_error)?;
        let kid = Kid::parse(key.kid.clone())
            .map_err(|e| GatewayError::Internal(format!("key {}: {e}", key.kid)))?;
        let sealed = STANDARD
            .decode(&key.sealed)
            .map_err(|_| GatewayError::Internal(format!("key {}: sealed form", key.kid)))?;
        self.custody
            .open(key.role.purpose(), backend, alg, &kid, &sealed)
            .map_err(key_error)
    }

    /// Records a root key kept offline: its public JWK (ES256, ES384 or EdDSA, no private
    /// members), active at once. Its kid is the key's RFC 7638 thumbprint, as for every
    /// operator key (`portcullis trust root generate` prints it).
    pub async fn import_root(&self, public_jwk: &Jwk) -> Result<StoredOperatorKey, GatewayError> {
        let alg = public_jwk
            .alg
            .as_deref()
            .and_then(|a| Algorithm::parse(a).ok())
            .filter(|a| matches!(a, Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA))
            .ok_or(GatewayError::Forbidden("operator_key_algorithm"))?;
        // A key that does not parse for its algorithm is refused; private members cannot come
        // in (the JWK type has none: a `d` sent along is dropped on reading).
        portcullis_keys::verify::VerifyingKey::from_jwk(public_jwk, &[alg])
            .map_err(|_| GatewayError::Forbidden("root_public_key"))?;
        let kid = public_jwk
            .thumbprint()
            .map_err(|_| GatewayError::Forbidden("root_public_key"))?;
        if public_jwk.kid.as_deref().is_some_and(|k| k != kid) {
            return Err(GatewayError::Forbidden("root_kid_not_thumbprint"));
        }
        let mut jwk = public_jwk.clone();
        jwk.kid = Some(kid.clone());
        let stored = StoredOperatorKey {
            kid,
            role: Role::Root,
            alg: alg.as_str().to_owned(),
            backend: OFFLINE_BACKEND.to_owned(),
            sealed: String::new(),
            public_jwk: jwk,
            state: OperatorKeyState::Active,
            created_at: (self.clock)(),
            retired_at: None,
        };
        for _ in 0..CAS_ATTEMPTS {
            let (previous, mut record) = self.load().await?;
            if let Some(existing) = record.keys.iter().find(|k| k.kid == stored.kid) {
                return Ok(existing.clone());
            }
            record.keys.push(stored.clone());
            if self.swap(previous.as_deref(), &record).await? {
                return Ok(stored);
            }
        }
        Err(GatewayError::Unavailable(
            "the operator key record kept changing; try again".into(),
        ))
    }

    /// The next trust list, unsigned: one version above the published one, over the active
    /// command, settings and update keys, valid `valid_secs` from now.
    fn next_list(
        &self,
        record: &StoredOperatorKeys,
        published: Option<&[u8]>,
        valid_secs: i64,
    ) -> Result<TrustList, GatewayError> {
        if !(60..=400 * 86_400).contains(&valid_secs) {
            return Err(GatewayError::Forbidden("trust_list_validity"));
        }
        let ver = match published {
            Some(bytes) => stored_version(bytes)? + 1,
            None => 1,
        };
        let now = (self.clock)();
        let keys = record
            .keys
            .iter()
            .filter(|k| k.role != Role::Root && k.state == OperatorKeyState::Active)
            .map(|k| {
                Ok(TrustedKey {
                    role: k.role,
                    key: cose_key_from_jwk(&k.public_jwk)?,
                })
            })
            .collect::<Result<Vec<_>, GatewayError>>()?;
        Ok(TrustList {
            ver,
            iat: now,
            exp: now.saturating_add(valid_secs),
            keys,
        })
    }

    /// Signs and records the next trust list over the active command, settings and update
    /// keys, valid `valid_secs` from now, with the newest active root key (refused when that
    /// root is offline: see [`OperatorKeys::draft_trust_list`]). Returns it.
    pub async fn publish_trust_list(
        &self,
        valid_secs: i64,
    ) -> Result<PublishedTrustList, GatewayError> {
        for _ in 0..CAS_ATTEMPTS {
            let (_, record) = self.load().await?;
            let root = record.active(Role::Root).ok_or(GatewayError::Unavailable(
                "no active trust root: create one with `portcullis trust key create --role root`"
                    .into(),
            ))?;
            let signer = self.open(root)?;
            let previous = self.store.get_setting(TRUST_LIST_SETTING).await?;
            let list = self.next_list(&record, previous.as_deref(), valid_secs)?;
            let signed = sign(Kind::Trust, &list, signer.as_ref())?;
            let stored = swap_setting(
                self.store.as_ref(),
                TRUST_LIST_SETTING,
                previous.as_deref(),
                &signed,
            )
            .await?;
            if stored {
                return Ok(PublishedTrustList { list, signed });
            }
        }
        Err(GatewayError::Unavailable(
            "the trust list kept changing; try again".into(),
        ))
    }

    /// The next trust list for an offline root to sign: what `publish_trust_list` would sign.
    pub async fn draft_trust_list(&self, valid_secs: i64) -> Result<TrustList, GatewayError> {
        let (_, record) = self.load().await?;
        let published = self.store.get_setting(TRUST_LIST_SETTING).await?;
        self.next_list(&record, published.as_deref(), valid_secs)
    }

    /// Records a trust list signed elsewhere (an offline root): it must verify with an active
    /// root key, be unexpired and of a version above the published one.
    pub async fn upload_trust_list(
        &self,
        signed: &[u8],
    ) -> Result<PublishedTrustList, GatewayError> {
        let now = (self.clock)();
        for _ in 0..CAS_ATTEMPTS {
            let (_, record) = self.load().await?;
            let previous = self.store.get_setting(TRUST_LIST_SETTING).await?;
            let have = previous.as_deref().map(stored_version).transpose()?;
            let mut opened = Err(GatewayError::Unauthenticated("unknown_root"));
            for root in record
                .keys
                .iter()
                .filter(|k| k.role == Role::Root && k.state == OperatorKeyState::Active)
            {
                let Ok(key) = portcullis_keys::verify::VerifyingKey::from_jwk(
                    &root.public_jwk,
                    &[Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA],
                ) else {
                    continue;
                };
                opened = TrustList::open(signed, &key, now, have);
                if opened.is_ok() {
                    break;
                }
            }
            let list = opened?;
            if have.is_some_and(|have| list.ver <= have) {
                return Err(GatewayError::Replay("older_trust_list"));
            }
            if swap_setting(
                self.store.as_ref(),
                TRUST_LIST_SETTING,
                previous.as_deref(),
                signed,
            )
            .await?
            {
                return Ok(PublishedTrustList {
                    list,
                    signed: signed.to_vec(),
                });
            }
        }
        Err(GatewayError::Unavailable(
            "the trust list kept changing; try again".into(),
        ))
    }

    /// The latest signed trust list, if one was published.
    pub async fn trust_list(&self) -> Result<Option<Vec<u8>>, GatewayError> {
        Ok(self.store.get_setting(TRUST_LIST_SETTING).await?)
    }
}

/// The version of a stored trust list, read without verifying (it is our own record; the
/// next version only has to be above it).
fn stored_version(bytes: &[u8]) -> Result<u64, GatewayError> {
    TrustList::peek(bytes)
        .map(|list| list.ver)
        .map_err(|_| GatewayError::Internal("the stored trust list does not parse".into()))
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
