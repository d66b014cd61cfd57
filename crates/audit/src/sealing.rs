//! Audit records encrypted at rest, still verifiable by anyone.
//!
//! Who acted, on what, from where and with which details (`actor`, `subject`, `detail`) say
//! which machine talked to which service: sensitive, and needed for years. They are sealed
//! with AES-256-GCM before the record is linked into the chain, so the chain hash and the
//! signed checkpoints cover the ciphertext: `audit verify` proves integrity with no key, and
//! only a holder of the audit data key reads contents. What an operator filters on (`at`,
//! `action`, `outcome`) stays in the clear and is bound to the ciphertext as AAD, so a
//! ciphertext moved onto another record does not open. Checkpoint records stay in the clear:
//! they hold hashes and signatures only, and verification must read them.
//!
//! A sealed record is stored with empty `actor` and `subject` and
//! `detail = {"sealed": "1.<kid>.<salt>.<n>.<ct>"}` (one string: a record is built, hashed and
//! stored at token rates, and a nested object costs measurably more): `kid` names the data key,
//! `salt` (16 random bytes, base64url) derives the batch's record key with HKDF-SHA256 from
//! it, `n` is the record's index in its batch and so its nonce, `ct` the ciphertext and tag
//! (base64url) of the JSON `{"actor", "subject", "detail"}`. One derived key per batch means nonces are
//! counters under a key used once, instead of random nonces under one key whose 2^32-message
//! limit a busy node would reach within a day.
//!
//! The data keys live in the store setting `audit.data_keys`, each sealed by the key custody
//! (under the master key, or by the HSM), one of them active for new records. Rotation adds a
//! key and makes it active; old keys stay to read old records; `key rewrap` reseals them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use portcullis_core::audit::{AuditAction, AuditEvent, AuditRecord};
use portcullis_keys::{KeyBackend, KeyCustody, KeyPurpose};
use portcullis_store::Store;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::AuditError;

/// The store setting holding the sealed data keys.
pub const DATA_KEYS_SETTING: &str = "audit.data_keys";
const DATA_KEY_LEN: usize = 32;
const SALT_LEN: usize = 16;
const FORMAT_VERSION: u64 = 1;
const HKDF_INFO: &[u8] = b"portcullis audit record key v1";
const AAD_LABEL: &[u8] = b"portcullis audit record v1";
/// Attempts at a compare-and-swap of the key set before giving up (another node rotating
/// at the same instant).
const CAS_ATTEMPTS: usize = 5;

/// The stored form of the key set (JSON in [`DATA_KEYS_SETTING`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredDataKeys {
    /// The kid new records are sealed with.
    pub active: String,
    pub keys: Vec<StoredDataKey>,
}

/// One sealed data key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredDataKey {
    pub kid: String,
    pub created_at: i64,
    /// `software` (sealed under the master key) or `pkcs11` (sealed by the token).
    pub backend: String,
    /// The custody's sealed blob, base64url.
    pub sealed: String,
}

impl StoredDataKeys {
    /// Parses the setting's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, AuditError> {
        serde_json::from_slice(bytes)
            .map_err(|e| AuditError::Keys(format!("{DATA_KEYS_SETTING} is not a key set: {e}")))
    }

    /// The setting's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What `GET /admin/v1/audit/keys` lists: never key material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataKeyInfo {
    pub kid: String,
    pub created_at: i64,
    pub backend: String,
    pub active: bool,
}

/// The opened key set of this node.
struct KeySet {
    stored: StoredDataKeys,
    keys: HashMap<String, Arc<Zeroizing<[u8; DATA_KEY_LEN]>>>,
}

/// Seals records as they are appended and opens them for readers holding `audit:read`.
pub struct AuditSealer {
    store: Arc<dyn Store>,
    custody: KeyCustody,
    keys: RwLock<Arc<KeySet>>,
}

impl std::fmt::Debug for AuditSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSealer")
            .field("active", &self.active_kid())
            .finish_non_exhaustive()
    }
}

/// A record as a reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// The record, its sealed fields opened when they could be (hashes are the stored ones,
    /// over the ciphertext).
    pub record: AuditRecord,
    /// Whether the stored record is encrypted.
    pub encrypted: bool,
    /// Why an encrypted record could not be opened (its fields are then shown as stored).
    pub unreadable: Option<String>,
}

impl ReadRecord {
    /// A record stored in the clear.
    pub fn plain(record: AuditRecord) -> Self {
        Self {
            record,
            encrypted: false,
            unreadable: None,
        }
    }
}

/// The sealed fields of a record, as stored in `detail.sealed` (`1.kid.salt.n.ct`).
#[derive(Debug)]
struct SealedFields {
    v: u64,
    kid: String,
    salt: String,
    n: u64,
    ct: String,
}

impl SealedFields {
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        let fields = SealedFields {
            v: parts.next()?.parse().ok()?,
            kid: parts.next()?.to_owned(),
            salt: parts.next()?.to_owned(),
            n: parts.next()?.parse().ok()?,
            ct: parts.next()?.to_owned(),
        };
        parts.next().is_none().then_some(fields)
    }
}

/// The plaintext that is sealed, as written.
#[derive(Serialize)]
struct ContentsRef<'a> {
    actor: &'a str,
    subject: &'a str,
    detail: &'a serde_json::Value,
}

/// The plaintext that is sealed, as read back.
#[derive(Deserialize)]
struct Contents {
    actor: String,
    subject: String,
    detail: serde_json::Value,
}

/// Whether a stored event holds sealed fields.
pub fn is_sealed(event: &AuditEvent) -> bool {
    event.actor.is_empty() && event.subject.is_empty() && event.detail.get("sealed").is_some()
}

impl AuditSealer {
    /// Opens the deployment's data keys, creating the first one if there is none (two nodes
    /// starting at once agree on one: the setting is written only if absent).
    pub async fn load_or_create(
        store: Arc<dyn Store>,
        custody: KeyCustody,
        now: i64,
    ) -> Result<Arc<Self>, AuditError> {
        let stored = match store.get_setting(DATA_KEYS_SETTING).await? {
            Some(bytes) => StoredDataKeys::parse(&bytes)?,
            None => {
                let first = new_key(&custody, now)?;
                let wanted = StoredDataKeys {
                    active: first.kid.clone(),
                    keys: vec![first],
                };
                let won = store
                    .put_setting_if_absent(DATA_KEYS_SETTING, &wanted.to_bytes())
                    .await?;
                StoredDataKeys::parse(&won)?
            }
        };
        let set = open_set(&custody, stored, None)?;
        Ok(Arc::new(Self {
            store,
            custody,
            keys: RwLock::new(Arc::new(set)),
        }))
    }

    fn current(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, set: KeySet) {
        match self.keys.write() {
            Ok(mut keys) => *keys = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        }
    }

    /// The kid new records are sealed with.
    pub fn active_kid(&self) -> String {
        self.current().stored.active.clone()
    }

    /// The data keys, newest last.
    pub fn list(&self) -> Vec<DataKeyInfo> {
        let set = self.current();
        set.stored
            .keys
            .iter()
            .map(|k| DataKeyInfo {
                kid: k.kid.clone(),
                created_at: k.created_at,
                backend: k.backend.clone(),
                active: k.kid == set.stored.active,
            })
            .collect()
    }

    /// Re-reads the key set (another node rotated, or a record names a kid not seen yet).
    pub async fn reload(&self) -> Result<(), AuditError> {
        let Some(bytes) = self.store.get_setting(DATA_KEYS_SETTING).await? else {
            return Ok(());
        };
        let stored = StoredDataKeys::parse(&bytes)?;
        if stored == self.current().stored {
            return Ok(());
        }
        let set = open_set(&self.custody, stored, Some(&self.current()))?;
        self.replace(set);
        Ok(())
    }

    /// Creates a data key and makes it the one new records are sealed with; returns its kid.
    /// Older keys stay, to read older records.
    pub async fn rotate(&self, now: i64) -> Result<String, AuditError> {
        for _ in 0..CAS_ATTEMPTS {
            let bytes = self
                .store
                .get_setting(DATA_KEYS_SETTING)
                .await?
                .ok_or_else(|| AuditError::Keys(format!("{DATA_KEYS_SETTING} is missing")))?;
            let mut stored = StoredDataKeys::parse(&bytes)?;
            let key = new_key(&self.custody, now)?;
            let kid = key.kid.clone();
            stored.active = kid.clone();
            stored.keys.push(key);
            if self
                .store
                .replace_setting(DATA_KEYS_SETTING, &bytes, &stored.to_bytes())
                .await?
            {
                let set = open_set(&self.custody, stored, Some(&self.current()))?;
                self.replace(set);
                return Ok(kid);
            }
        }
        Err(AuditError::Keys(
            "the audit key set kept changing under this rotation; try again".into(),
        ))
    }

    /// Seals the sensitive fields of every event but checkpoints, with one fresh record key
    /// for the batch. An event is changed only once its ciphertext exists, and events already
    /// sealed are left alone, so a batch whose sealing failed half-way is simply sealed again.
    pub fn seal_batch(&self, events: &mut [AuditEvent]) -> Result<(), AuditError> {
        let set = self.current();
        let (kid, salt, key) = fresh_key(&set)?;
        let prefix = format!("{FORMAT_VERSION}.{kid}.{}.", B64.encode(salt));
        for (n, event) in events.iter_mut().enumerate() {
            if event.action == AuditAction::AuditCheckpoint.as_str() || is_sealed(event) {
                continue;
            }
            let n = n as u64;
            let mut buffer = serde_json::to_vec(&ContentsRef {
                actor: &event.actor,
                subject: &event.subject,
                detail: &event.detail,
            })
            .map_err(|e| AuditError::Keys(format!("encoding a record: {e}")))?;
            key.seal_in_place_append_tag(nonce(n), Aad::from(aad(kid, event)), &mut buffer)
                .map_err(|_| AuditError::Keys("sealing a record failed".into()))?;
            event.actor.clear();
            event.subject.clear();
            let mut sealed = String::with_capacity(prefix.len() + 24 + buffer.len() * 4 / 3);
            sealed.push_str(&prefix);
            // Writing into a String cannot fail.
            let _ = write!(sealed, "{n}.");
            B64.encode_string(&buffer, &mut sealed);
            let mut detail = serde_json::Map::with_capacity(1);
            detail.insert("sealed".to_owned(), serde_json::Value::String(sealed));
            event.detail = serde_json::Value::Object(detail);
        }
        Ok(())
    }

    /// Seals a JSON value kept outside the chain (an alert's detail) under the active key:
    /// `v1.<kid>.<salt>.<ciphertext>`, bound to `context` (e.g. the alert id) so it does not
    /// open anywhere else.
    pub fn seal_value(
        &self,
        context: &str,
        value: &serde_json::Value,
    ) -> Result<String, AuditError> {
        let set = self.current();
        let (kid, salt, key) = fresh_key(&set)?;
        let mut buffer = serde_json::to_vec(value)
            .map_err(|e| AuditError::Keys(format!("encoding a value: {e}")))?;
        key.seal_in_place_append_tag(nonce(0), Aad::from(value_aad(kid, context)), &mut buffer)
            .map_err(|_| AuditError::Keys("sealing a value failed".into()))?;
        Ok(format!(
            "v1.{kid}.{}.{}",
            B64.encode(salt),
            B64.encode(&buffer)
        ))
    }

    /// Opens what [`Self::seal_value`] sealed for the same `context`.
    pub async fn open_value(
        &self,
        context: &str,
        sealed: &str,
    ) -> Result<serde_json::Value, String> {
        let mut parts = sealed.splitn(4, '.');
        let (Some("v1"), Some(kid), Some(salt), Some(ct)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a sealed value".into());
        };
        if !self.current().keys.contains_key(kid) {
            self.reload().await.map_err(|e| e.to_string())?;
        }
        let plain = self.open_sealed(kid, salt, 0, &value_aad(kid, context), ct)?;
        serde_json::from_slice(&plain).map_err(|_| "the plaintext is not JSON".to_owned())
    }

    /// Opens the sealed records among `records`; a kid this node has not loaded makes it
    /// reload the key set once.
    pub async fn open_records(&self, records: Vec<AuditRecord>) -> Vec<ReadRecord> {
        // Each record's sealed fields are parsed once, for the kid check and the opening.
        let parsed: Vec<(AuditRecord, Option<SealedFields>)> = records
            .into_iter()
            .map(|r| {
                let fields = sealed_fields(&r.event);
                (r, fields)
            })
            .collect();
        let needs_reload = {
            let current = self.current();
            parsed.iter().any(|(_, fields)| {
                fields
                    .as_ref()
                    .is_some_and(|f| !current.keys.contains_key(&f.kid))
            })
        };
        if needs_reload {
            if let Err(e) = self.reload().await {
                tracing::warn!(error = %e, "reloading the audit data keys failed");
            }
        }
        parsed
            .into_iter()
            .map(|(record, fields)| self.open_parsed(record, fields))
            .collect()
    }

    /// Opens one record (stored in the clear: returned as is).
    pub fn open_record(&self, record: AuditRecord) -> ReadRecord {
        let fields = sealed_fields(&record.event);
        self.open_parsed(record, fields)
    }

    fn open_parsed(&self, mut record: AuditRecord, fields: Option<SealedFields>) -> ReadRecord {
        let Some(fields) = fields else {
            return ReadRecord::plain(record);
        };
        match self.open_fields(&record.event, &fields) {
            Ok(contents) => {
                record.event.actor = contents.actor;
                record.event.subject = contents.subject;
                record.event.detail = contents.detail;
                ReadRecord {
                    record,
                    encrypted: true,
                    unreadable: None,
                }
            }
            Err(why) => ReadRecord {
                record,
                encrypted: true,
                unreadable: Some(why),
            },
        }
    }

    fn open_fields(&self, event: &AuditEvent, fields: &SealedFields) -> Result<Contents, String> {
        if fields.v != FORMAT_VERSION {
            return Err(format!("unknown sealed format {}", fields.v));
        }
        let plain = self.open_sealed(
            &fields.kid,
            &fields.salt,
            fields.n,
            &aad(&fields.kid, event),
            &fields.ct,
        )?;
        serde_json::from_slice(&plain).map_err(|_| "the plaintext is not a record".to_owned())
    }

    /// Decrypts `ct` (base64url) under the key `salt` (base64url) derives from data key `kid`,
    /// with nonce `n` and `aad`: what opening a record and opening a value share.
    fn open_sealed(
        &self,
        kid: &str,
        salt: &str,
        n: u64,
        aad: &[u8],
        ct: &str,
    ) -> Result<Zeroizing<Vec<u8>>, String> {
        let set = self.current();
        let data_key = set
            .keys
            .get(kid)
            .ok_or_else(|| format!("audit data key {kid} is not available"))?;
        let salt = B64
            .decode(salt)
            .map_err(|_| "the salt is not base64url".to_owned())?;
        let mut buffer = Zeroizing::new(
            B64.decode(ct)
                .map_err(|_| "the ciphertext is not base64url".to_owned())?,
        );
        let len = record_key(data_key, &salt)
            .map_err(|e| e.to_string())?
            .open_in_place(nonce(n), Aad::from(aad), buffer.as_mut_slice())
            .map_err(|_| "the ciphertext does not authenticate".to_owned())?
            .len();
        buffer.truncate(len);
        Ok(buffer)
    }
}

/// The active kid, a fresh salt and the key it derives: what one sealing (a batch, a value)
/// uses once.
fn fresh_key(set: &KeySet) -> Result<(&str, [u8; SALT_LEN], LessSafeKey), AuditError> {
    let kid = set.stored.active.as_str();
    let data_key = set
        .keys
        .get(kid)
        .ok_or_else(|| AuditError::Keys(format!("active audit key {kid} is not open")))?;
    let salt =
        portcullis_keys::random_array::<SALT_LEN>().map_err(|e| AuditError::Keys(e.to_string()))?;
    let key = record_key(data_key, &salt)?;
    Ok((kid, salt, key))
}

fn sealed_fields(event: &AuditEvent) -> Option<SealedFields> {
    if !is_sealed(event) {
        return None;
    }
    SealedFields::parse(event.detail.get("sealed")?.as_str()?)
}

/// A fresh data key, sealed by `custody`.
fn new_key(custody: &KeyCustody, now: i64) -> Result<StoredDataKey, AuditError> {
    let key = Zeroizing::new(
        portcullis_keys::random_array::<DATA_KEY_LEN>()
            .map_err(|e| AuditError::Keys(e.to_string()))?,
    );
    let id = portcullis_keys::random_array::<6>().map_err(|e| AuditError::Keys(e.to_string()))?;
    let kid = format!("ak-{}", portcullis_core::hex::encode(&id));
    let sealed = custody
        .seal_secret(KeyPurpose::AuditData, &kid, key.as_slice())
        .map_err(|e| AuditError::Keys(format!("sealing audit data key {kid}: {e}")))?;
    Ok(StoredDataKey {
        kid,
        created_at: now,
        backend: custody.backend().as_str().to_owned(),
        sealed: B64.encode(sealed),
    })
}

/// Opens every key of `stored`, reusing those `previous` already opened.
fn open_set(
    custody: &KeyCustody,
    stored: StoredDataKeys,
    previous: Option<&KeySet>,
) -> Result<KeySet, AuditError> {
    let mut keys = HashMap::with_capacity(stored.keys.len());
    for key in &stored.keys {
        if let Some(open) = previous.and_then(|p| p.keys.get(&key.kid)) {
            keys.insert(key.kid.clone(), open.clone());
            continue;
        }
        let sealed = B64.decode(&key.sealed).map_err(|_| {
            AuditError::Keys(format!("audit data key {} is not base64url", key.kid))
        })?;
        let backend =
            KeyBackend::parse(&key.backend).map_err(|e| AuditError::Keys(e.to_string()))?;
        let plain = custody
            .open_secret(KeyPurpose::AuditData, backend, &key.kid, &sealed)
            .map_err(|e| AuditError::Keys(format!("opening audit data key {}: {e}", key.kid)))?;
        let bytes: [u8; DATA_KEY_LEN] = plain.as_slice().try_into().map_err(|_| {
            AuditError::Keys(format!("audit data key {} has the wrong length", key.kid))
        })?;
        keys.insert(key.kid.clone(), Arc::new(Zeroizing::new(bytes)));
    }
    if !keys.contains_key(&stored.active) {
        return Err(AuditError::Keys(format!(
            "the active audit data key {} is not in the key set",
            stored.active
        )));
    }
    Ok(KeySet { stored, keys })
}

/// The record key of one batch: HKDF-SHA256 of the data key with the batch's salt.
fn record_key(data_key: &[u8; DATA_KEY_LEN], salt: &[u8]) -> Result<LessSafeKey, AuditError> {
    let prk = Salt::new(HKDF_SHA256, salt).extract(data_key);
    let okm = prk
        .expand(&[HKDF_INFO], &AES_256_GCM)
        .map_err(|_| AuditError::Keys("deriving a record key failed".into()))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

/// The nonce of record `n` of a batch: unique because the batch's key is used once.
fn nonce(n: u64) -> Nonce {
    let [a, b, c, d, e, f, g, h] = n.to_be_bytes();
    Nonce::assume_unique_for_key([0, 0, 0, 0, a, b, c, d, e, f, g, h])
}

/// What a sealed value is bound to: its key and its context.
fn value_aad(kid: &str, context: &str) -> Vec<u8> {
    let mut aad = b"portcullis sealed value v1".to_vec();
    for field in [kid.as_bytes(), context.as_bytes()] {
        aad.extend_from_slice(&(field.len() as u64).to_be_bytes());
        aad.extend_from_slice(field);
    }
    aad
}

/// What the ciphertext is bound to: its key, and the record's clear fields.
fn aad(kid: &str, event: &AuditEvent) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64);
    aad.extend_from_slice(AAD_LABEL);
    for field in [
        kid.as_bytes(),
        event.action.as_bytes(),
        event.outcome.as_bytes(),
    ] {
        aad.extend_from_slice(&(field.len() as u64).to_be_bytes());
        aad.extend_from_slice(field);
    }
    aad.extend_from_slice(&event.at.to_be_bytes());
    aad
}

#[cfg(test)]
#[path = "sealing_tests.rs"]
mod tests;
