//! Persistence behind the [`Store`] trait, so the protocol crates never know which database
//! holds their state. SQLite (embedded default, WAL, one file) lives in `sqlite/`, PostgreSQL
//! (many nodes on one database) in `postgres/`; both pass the same conformance suite
//! (`conformance/`), and [`open`] picks one from the store URL. Hot lookups are cached in
//! process (`cache.rs`).

pub mod cache;
pub mod changes;
/// The suite every backend passes; for tests only (the `test-support` feature).
#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
pub mod counters;
pub mod error;
pub mod pki;
pub mod postgres;
mod rows;
mod single_use;
pub mod sqlite;

pub use cache::{ClientCache, DeviceCache, KeyedCache, RevocationCache};
pub use changes::{Change, ChangeFeed};
pub use counters::CounterAdvance;
pub use error::StoreError;
pub use pki::{
    CertificateFilter, Enrollment, IssuedCertificate, RevokedCertificate, StoredDeviceKey,
};
pub use single_use::{SingleUse, SingleUseBatcher, SingleUseScopes};

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::audit::{AuditEvent, AuditRecord};
use portcullis_core::client::Client;
use portcullis_core::command::{CommandId, CommandRecord, CommandState, ResultRecorded};
use portcullis_core::device::{Device, DeviceId, DeviceState, RevocationReason};
use portcullis_core::device_key::DeviceKeyId;
use portcullis_core::rotation::StoredKeyState;
use portcullis_core::update::UpdateStatus;
use portcullis_core::{ClientId, Kid, UnixTime};

/// Opens the store a URL names, so start-up has one call whatever the backend:
/// `sqlite:PATH` (also `sqlite://PATH`) opens or creates an SQLite file, `postgres://...` or
/// `postgresql://...` connects to PostgreSQL. Either way the schema is migrated first.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with_password(url, None).await
}

/// Like [`open`], with the PostgreSQL password given apart from the URL (from
/// `[store] password_file`), so the URL carries none; it wins over a password in the URL.
/// SQLite has no password: giving one with an `sqlite:` URL is refused. The password is never
/// part of an error.
pub async fn open_with_password(
    url: &str,
    password: Option<&str>,
) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        if password.is_some() {
            return Err(StoreError::Unavailable(
                "a database password applies only to PostgreSQL, not to an sqlite: store"
                    .to_owned(),
            ));
        }
        let path = path.strip_prefix("//").unwrap_or(path);
        return Ok(Arc::new(sqlite::SqliteStore::open(Path::new(path)).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(
            postgres::PostgresStore::connect_with_password(url, password).await?,
        ));
    }
    // The URL itself is not echoed: it may carry a password.
    Err(StoreError::Unavailable(
        "store URL must start with sqlite:, postgres:// or postgresql://".to_owned(),
    ))
}

/// Signs a command under the sequence number the store gave it ([`Store::queue_command`]):
/// the `COSE_Sign1` bytes, or why it could not.
pub type CommandSigner = dyn Fn(u64) -> Result<Vec<u8>, String> + Send + Sync;

/// Compare-and-swap of a settings record: `value` replaces `previous` (as read; `None`: the
/// record did not exist); `false` if another writer got there first. Every read-modify-write
/// of a setting shared by nodes goes through this.
pub async fn swap_setting(
    store: &dyn Store,
    name: &str,
    previous: Option<&[u8]>,
    value: &[u8],
) -> Result<bool, StoreError> {
    Ok(match previous {
        Some(old) => store.replace_setting(name, old, value).await?,
        None => store.put_setting_if_absent(name, value).await? == value,
    })
}

/// Where the live audit chain starts after older records went to an archive segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditArchiveAnchor {
    /// The last archived record; the live chain continues at `seq + 1`.
    pub seq: i64,
    /// Its chain hash (hex): the first live record's `prev_hash`.
    pub hash: String,
    /// The first record of the archived segment.
    pub first_seq: i64,
    /// The checkpoint record (still in the live chain) that signs `seq`'s hash.
    pub checkpoint_seq: i64,
    /// SHA-256 (hex) of the segment file.
    pub segment_sha256: String,
    pub archived_at: UnixTime,
}

/// One increment of a shared detection counter. Keys are opaque (HMACs computed by the
/// caller, never client ids in the clear).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionIncrement {
    /// The counter: (rule, key) hashed.
    pub key: String,
    /// The counter's group: (rule, the key's group, e.g. the device of a device+source key)
    /// hashed; for counting distinct keys per group.
    pub group: String,
    /// Start of the time bucket (Unix seconds).
    pub bucket: i64,
    pub count: u64,
    /// Totals are over buckets >= this (Unix seconds).
    pub window_from: i64,
}

/// What an increment's counter stands at after the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectionTotals {
    /// Sum of the key's counts over buckets >= window_from.
    pub total: u64,
    /// Number of distinct keys of the group with a count in buckets >= window_from.
    pub distinct_in_group: u64,
}

/// What [`Store::ack_alert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAck {
    /// This call acknowledged the open alert.
    Acknowledged,
    /// It was acknowledged before; the first acknowledgement stays.
    AlreadyAcknowledged,
    NoSuchAlert,
}

/// A raised alert. `detail` is opaque text (the caller stores it sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlert {
    /// The incident id (deterministic across nodes: an HMAC).
    pub id: String,
    /// The rule's name, e.g. `auth_failures_per_client` (in the clear: operators filter on it).
    pub rule: String,
    pub raised_at: i64,
    /// `open` or `acknowledged`.
    pub state: String,
    pub detail: String,
    pub acked_by: Option<String>,
    pub acked_at: Option<i64>,
}

/// One `detection_counts` row a batch adds to: `(key, group, bucket, count)`.
pub(crate) type DetectionRow<'a> = (&'a str, &'a str, i64, i64);

/// The rows a batch of increments writes: one per (key, bucket), their counts summed and
/// clamped to what a row holds (`i64::MAX`), zero counts left out (a row means "counted"), in
/// (key, bucket) byte order: the order a batch locks its rows in, so two nodes' batches
/// cannot deadlock. A key keeps the group of its first increment.
pub(crate) fn detection_rows(increments: &[DetectionIncrement]) -> Vec<DetectionRow<'_>> {
    let mut rows: std::collections::BTreeMap<(&str, i64), (&str, u64)> =
        std::collections::BTreeMap::new();
    for inc in increments.iter().filter(|inc| inc.count > 0) {
        let row = rows
            .entry((inc.key.as_str(), inc.bucket))
            .or_insert((inc.group.as_str(), 0));
        row.1 = row.1.saturating_add(inc.count);
    }
    rows.into_iter()
        .map(|((key, bucket), (group, count))| {
            (key, group, bucket, i64::try_from(count).unwrap_or(i64::MAX))
        })
        .collect()
}

/// A stored count or total as returned: never negative (the tables refuse it).
pub(crate) fn detection_count(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}

/// One device's latest report about one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateReport {
    pub device_id: DeviceId,
    pub model: String,
    pub release: u64,
    pub status: UpdateStatus,
    /// At most 256 characters, from the device.
    pub detail: Option<String>,
    pub reported_at: UnixTime,
}

/// A signing key as stored: the private key sealed under the master key (or, for an HSM
/// key, only a handle), and its public JWK for publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: Kid,
    /// JWS algorithm name (`ES256`, `EdDSA`, `RS256`, ...).
    pub alg: String,
    /// Which backend holds the private key: `software` or `pkcs11`.
    pub backend: String,
    /// Sealed PKCS#8 (software) or an opaque handle (pkcs11). Never plaintext key material.
    pub sealed_private: Vec<u8>,
    /// The public JWK as JSON text.
    pub public_jwk: String,
    /// `next` (published, not yet signing), `active` (signing), `retired` (published until
    /// its tokens expire), `revoked` (withdrawn at once), `removed` (history only).
    pub state: StoredKeyState,
    pub created_at: UnixTime,
    /// When the key starts signing (`next` keys) or was retired.
    pub state_changed_at: UnixTime,
}

/// How long past its expiry an assertion jti is kept: the most two nodes' clocks may
/// disagree without a replay window opening.
pub const ASSERTION_JTI_GRACE_SECS: i64 = 3600;

/// A revoked access token, remembered until the token would have expired anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedToken {
    pub jti: String,
    pub client_id: ClientId,
    pub expires_at: UnixTime,
}

/// Everything Portcullis persists. Implementations must be safe to share between tasks and,
/// for networked backends, between nodes.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Changes committed by any node, so this node can keep its caches coherent. `None` for
    /// single-node backends (SQLite), whose caches are the only ones.
    async fn change_feed(&self) -> Result<Option<ChangeFeed>, StoreError> {
        Ok(None)
    }

    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// A named server setting (the secret pepper, the bootstrap marker).
    async fn get_setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` under `name` unless a value is already there; returns the stored value,
    /// so concurrent first starts agree on one winner.
    async fn put_setting_if_absent(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// Replaces a setting only if it still holds `expected`; `false` if it did not (or does
    /// not exist). Used to re-seal the CA record under a new master key.
    async fn replace_setting(
        &self,
        name: &str,
        expected: &[u8],
        value: &[u8],
    ) -> Result<bool, StoreError>;
    /// Every setting, ordered by name (byte order), strictly after `after`, at most `limit`
    /// (keyset pagination): what `portcullis store copy` moves, so a setting added later (a
    /// device's desired settings, a federation trust set, a model's releases) is never left
    /// behind by a list of names that forgot it.
    async fn list_settings(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Inserts a new client; `StoreError::Conflict` if the id exists.
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    /// Inserts many clients in one transaction (bulk loads, benchmarks); existing ids conflict.
    async fn insert_clients(&self, clients: &[Client]) -> Result<(), StoreError>;
    async fn get_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError>;
    /// Clients ordered by id, strictly after `after`, at most `limit` (keyset pagination).
    async fn list_clients(
        &self,
        after: Option<&ClientId>,
        limit: u32,
    ) -> Result<Vec<Client>, StoreError>;
    /// Replaces a client; `StoreError::NotFound` if it does not exist.
    async fn update_client(&self, client: &Client) -> Result<(), StoreError>;
    /// Deletes a client; false if there was none.
    async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError>;

    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    async fn update_signing_key_state(
        &self,
        kid: &Kid,
        state: StoredKeyState,
        at: UnixTime,
    ) -> Result<(), StoreError>;
    async fn list_signing_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Takes or renews the lease `name` for `holder` until `ttl_secs` from now; true if this
    /// holder has it. Leader-only jobs (key rotation checks) run only while they hold theirs,
    /// so several nodes never act on the same due transition. `now` is this node's clock;
    /// networked backends judge expiry by the database clock instead.
    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_secs: i64,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Gives up every lease `holder` holds (a node shutting down cleanly), so its jobs move
    /// to another node — or to itself after a restart — at once instead of after the lease
    /// expires. Returns how many it held.
    async fn release_leases(&self, holder: &str) -> Result<u64, StoreError>;
    /// Replaces a key's sealed private key (`portcullis key rewrap` under a new master key).
    async fn update_signing_key_sealed(
        &self,
        kid: &Kid,
        sealed_private: &[u8],
    ) -> Result<(), StoreError>;

    /// Records a revoked token (idempotent).
    async fn revoke_token(&self, token: &RevokedToken) -> Result<(), StoreError>;
    async fn is_token_revoked(&self, jti: &str) -> Result<bool, StoreError>;
    /// Revocations whose token has not yet expired at `now`.
    async fn list_revoked_tokens(&self, now: UnixTime) -> Result<Vec<RevokedToken>, StoreError>;

    /// Remembers a single-use id in `scope` until `expires_at`; returns false if it was
    /// already seen there. Scopes: a client's id for its assertions' `jti` (RFC 7523 §3 item 7:
    /// a jti must not be accepted twice), and names beginning with `#`, which no client id can
    /// contain, for everything else that is accepted once (`#dpop` proofs, RFC 9449 §11.1).
    /// A row for the same id counts as expired only if `expires_at <= now`, where `now` is the
    /// clock that just accepted the id's carrier as unexpired: acceptance and expiry are judged
    /// by the same clock, so a node whose clock lags cannot replay what another node's clock
    /// (or the database's) already called expired.
    async fn record_single_use(
        &self,
        scope: &str,
        id: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Whether other nodes may share this store (PostgreSQL). An embedded store (SQLite) has
    /// one node, which may then keep per-node state such as spent ids in memory first.
    fn is_shared(&self) -> bool {
        true
    }

    /// The unexpired single-use ids of every `#` scope (DPoP proofs, outside tokens): what
    /// a node of an embedded store loads into memory at start, so a restart forgets none; with
    /// [`SingleUseScopes::All`] every client's assertion ids too (`store copy`).
    async fn list_single_use(
        &self,
        scopes: SingleUseScopes,
        now: UnixTime,
    ) -> Result<Vec<SingleUse>, StoreError>;

    /// [`record_single_use`](Self::record_single_use) for many ids in one transaction (one
    /// commit for all): the answers in order. An id twice in one batch is new the first time
    /// only. What [`SingleUseBatcher`] sends under load.
    async fn record_single_use_batch(
        &self,
        items: &[SingleUse],
        now: UnixTime,
    ) -> Result<Vec<bool>, StoreError> {
        let mut fresh = Vec::with_capacity(items.len());
        for item in items {
            fresh.push(
                self.record_single_use(&item.scope, &item.id, item.expires_at, now)
                    .await?,
            );
        }
        Ok(fresh)
    }

    /// Keeps single-use ids that this node has already decided in memory (an embedded store,
    /// [`is_shared`](Self::is_shared) false), so that [`list_single_use`](Self::list_single_use)
    /// returns them after a restart. Nothing is decided here: the answers were given. A shared
    /// store never gets this call; by default the ids are spent as usual.
    async fn keep_spent(&self, items: &[SingleUse], now: UnixTime) -> Result<(), StoreError> {
        self.record_single_use_batch(items, now).await.map(drop)
    }

    /// Deletes expired revocations, and assertion jtis expired for longer than
    /// [`ASSERTION_JTI_GRACE_SECS`] (so a node whose clock lags the purging node's by less
    /// than that still finds the jti and refuses a replay); returns how many rows went.
    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError>;

    /// Appends events to the audit hash chain in one transaction, linking them to the last
    /// stored record, or to the newest archive anchor when no record is stored
    /// (`portcullis_core::audit::link`); returns the new records.
    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditRecord>, StoreError>;
    /// [`append_audit`](Self::append_audit) of a batch the caller keeps, returning nothing:
    /// the audit writer's path (it holds each batch for a retry and reads nothing back), where
    /// copying the batch and building records per decision showed on the token path. By
    /// default, exactly `append_audit` of a copy.
    async fn append_audit_batch(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.append_audit(events.to_vec()).await.map(drop)
    }
    /// Audit records with `seq > after_seq`, ascending, at most `limit`.
    async fn list_audit(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;
    /// Audit records with `seq < before_seq`, descending (newest first), at most `limit`.
    async fn list_audit_desc(
        &self,
        before_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// Records `anchor` and removes the records it covers (`seq <= anchor.seq`), in one
    /// transaction, only if the live chain starts at `anchor.first_seq` and record
    /// `anchor.seq` has hash `anchor.hash` (else [`StoreError::Conflict`]); returns how many
    /// records went. The tables' triggers refuse any other delete.
    async fn archive_audit(&self, anchor: &AuditArchiveAnchor) -> Result<u64, StoreError>;
    /// The newest archive anchor: where the live chain starts (`None`: at the genesis).
    async fn audit_anchor(&self) -> Result<Option<AuditArchiveAnchor>, StoreError>;
    /// Records `anchor` in a store whose audit log is empty (else [`StoreError::Conflict`]):
    /// the next append then links to it, as the live chain of an archived store does, so
    /// `portcullis store copy` reproduces an archived chain hash for hash.
    async fn import_audit_anchor(&self, anchor: &AuditArchiveAnchor) -> Result<(), StoreError>;

    // --- Device PKI (issue #4) ---

    /// Registers one device; [`StoreError::Conflict`] if the id is taken. Announces
    /// `device:<id>` (caches remember unknown ids).
    async fn insert_device(&self, device: &Device) -> Result<(), StoreError>;
    /// Registers many devices in one transaction (manufacturing lists), skipping ids that
    /// already exist; returns the ids that were inserted, in the order given. Idempotent:
    /// running the same list twice inserts nothing the second time. Announces `device:*` when
    /// it inserted any.
    async fn insert_devices(&self, devices: &[Device]) -> Result<Vec<DeviceId>, StoreError>;
    async fn get_device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError>;
    /// Devices ordered by id, after `after` (keyset pagination).
    async fn list_devices(
        &self,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<Device>, StoreError>;
    /// Replaces a device's model, attributes, state, enrollment secret and `updated_at`;
    /// `false` if it does not exist. Announces `device:<id>`.
    async fn update_device(&self, device: &Device) -> Result<bool, StoreError>;
    /// Spends a one-time enrollment secret: atomically clears it and sets `state`, only if
    /// the stored secret MAC is still exactly `expected_mac` and the device may still enroll
    /// (`registered` or `enrolled`; a suspended device keeps its secret). `false` means it was
    /// spent (or changed) meanwhile or the device left those states, so two concurrent
    /// enrollments with one secret cannot both win, and a stale cached copy of the device
    /// cannot enroll it. Announces `device:<id>` when it succeeds.
    async fn consume_enrollment_secret(
        &self,
        id: &DeviceId,
        expected_mac: &str,
        state: DeviceState,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Records enrollments, all in one transaction (group commit: concurrent enrollments
    /// share one commit). For each, the device becomes `enrolled` — only if it is still
    /// `registered` or `enrolled`, spending its one-time secret if `spend` names the MAC it
    /// must still hold — and its certificate is inserted; `false` (and nothing written for
    /// it) when the secret was spent meanwhile or the device left those states.
    async fn record_enrollments(&self, batch: &[Enrollment]) -> Result<Vec<bool>, StoreError>;
    /// Records an issued certificate; [`StoreError::Conflict`] on a duplicate serial (or a
    /// duplicate SHA-256: one DER is recorded once).
    async fn insert_certificate(&self, cert: &IssuedCertificate) -> Result<(), StoreError>;
    async fn get_certificate(&self, serial: &str) -> Result<Option<IssuedCertificate>, StoreError>;
    /// Certificates matching `filter`, ordered by serial, at most `limit`.
    async fn list_certificates(
        &self,
        filter: &CertificateFilter,
        limit: u32,
    ) -> Result<Vec<IssuedCertificate>, StoreError>;
    /// Revokes one certificate; `false` if it does not exist or was already revoked (the
    /// first revocation's time and reason stand). Announces `cert:<serial>`.
    async fn revoke_certificate(
        &self,
        serial: &str,
        reason: RevocationReason,
        at: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Revokes every unrevoked certificate of a device; returns their serials, in order.
    /// Announces `cert:<serial>` for each.
    async fn revoke_device_certificates(
        &self,
        id: &DeviceId,
        reason: RevocationReason,
        at: UnixTime,
    ) -> Result<Vec<String>, StoreError>;
    /// Every revoked certificate that has not expired at `now` (`not_after > now`), ordered by
    /// serial: the CRL's entries.
    async fn list_revoked_certificates(
        &self,
        now: UnixTime,
    ) -> Result<Vec<RevokedCertificate>, StoreError>;

    // --- Symmetric device keys (issue #12) ---
    //
    // Every write announces `device:<id>`, so every node drops what it caches of the device's
    // credentials.

    /// Adds a key to its device. [`StoreError::Conflict`] if the device already has a key with
    /// this id, [`StoreError::NotFound`] if there is no such device.
    async fn insert_device_key(&self, key: &StoredDeviceKey) -> Result<(), StoreError>;
    /// Adds `new` and, in the same transaction, sets the deadline of every other key of its
    /// device to `expire_others_at` unless it already ends earlier (a rotation with overlap).
    /// Errors as [`Store::insert_device_key`], which then changes nothing.
    async fn rotate_device_key(
        &self,
        new: &StoredDeviceKey,
        expire_others_at: UnixTime,
    ) -> Result<(), StoreError>;
    /// A device's keys, expired ones included, ordered by `created_at`, then key id.
    async fn list_device_keys(&self, id: &DeviceId) -> Result<Vec<StoredDeviceKey>, StoreError>;
    /// Deletes one key; `false` if the device has no key with that id.
    async fn delete_device_key(
        &self,
        id: &DeviceId,
        key_id: &DeviceKeyId,
    ) -> Result<bool, StoreError>;
    /// Every device's keys ordered by device id, then key id, strictly after `after`, at most
    /// `limit` (keyset pagination; `portcullis key rewrap` reseals them all).
    async fn list_all_device_keys(
        &self,
        after: Option<(&DeviceId, &DeviceKeyId)>,
        limit: u32,
    ) -> Result<Vec<StoredDeviceKey>, StoreError>;
    /// Replaces a key's sealed material (`portcullis key rewrap` under a new master key);
    /// [`StoreError::NotFound`] if there is no such key.
    async fn update_device_key_sealed(
        &self,
        id: &DeviceId,
        key_id: &DeviceKeyId,
        sealed: &[u8],
    ) -> Result<(), StoreError>;

    // --- Commands to devices (issue #13) ---

    /// Stores a command that waits for its approver (`PendingApproval`: no sequence number,
    /// nothing signed); [`StoreError::Conflict`] if the id exists, [`StoreError::NotFound`]
    /// if the device does not.
    async fn insert_command(&self, command: &CommandRecord) -> Result<(), StoreError>;
    /// Queues a command, in one transaction: takes the device's next command sequence number
    /// (one above the last one given to the device, 1 for its first), calls `sign(seq)` for
    /// the bytes the device will receive, and stores the command `Queued` with that `seq`,
    /// `signed` and `queued_at = now`. A new `command_id` is inserted; an existing one must
    /// still be `PendingApproval` and unexpired at `now` (an approval: `approver` is taken
    /// from `command`), else `Ok(None)` and nothing changes. The device's number is locked
    /// until commit, so two nodes never give one number twice and numbers are committed in
    /// rising order. A `sign` error aborts (nothing stored, the number not taken) and comes
    /// back as [`StoreError::Unavailable`]. Announces `command:<device id>`.
    async fn queue_command(
        &self,
        command: &CommandRecord,
        now: UnixTime,
        sign: &CommandSigner,
    ) -> Result<Option<CommandRecord>, StoreError>;
    async fn get_command(&self, id: &CommandId) -> Result<Option<CommandRecord>, StoreError>;
    /// Commands ordered by id (oldest first), after `after`, of one device if given.
    async fn list_commands(
        &self,
        device: Option<&DeviceId>,
        after: Option<&CommandId>,
        limit: u32,
    ) -> Result<Vec<CommandRecord>, StoreError>;
    /// A device's commands that are `Queued` and unexpired at `now`, by rising `seq`.
    async fn deliverable_commands(
        &self,
        device: &DeviceId,
        now: UnixTime,
        limit: u32,
    ) -> Result<Vec<CommandRecord>, StoreError>;
    /// Marks a command `Delivered` at `now` if it is still `Queued` and unexpired; `false`
    /// otherwise (delivered already, answered, or expired meanwhile).
    async fn mark_command_delivered(
        &self,
        id: &CommandId,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Records a device's result: `state` (`Succeeded` or `Failed`), `output` and
    /// `finished_at = now`, only if the command is `device`'s and `Queued` or `Delivered`;
    /// a `Queued` one also gets `delivered_at = now` (a device may answer before its
    /// acknowledgement is processed, and its answer shows it had the command).
    /// [`ResultRecorded::NotWaiting`] otherwise (unknown, another device's, not sent yet, or
    /// answered already: the first answer stays).
    async fn record_command_result(
        &self,
        id: &CommandId,
        device: &DeviceId,
        state: CommandState,
        output: Option<&serde_json::Value>,
        now: UnixTime,
    ) -> Result<ResultRecorded, StoreError>;
    /// How many commands allowed by `rule` were made for `device` at or after `since` (the
    /// rule's per-device rate limit, counted across nodes).
    async fn count_recent_commands(
        &self,
        device: &DeviceId,
        rule: &str,
        since: UnixTime,
    ) -> Result<u64, StoreError>;
    /// Inserts commands exactly as given, in any state and with every field (number, signed
    /// bytes, times, output), in one transaction (`portcullis store copy`, which reads them
    /// with [`list_commands`](Self::list_commands)). [`StoreError::Conflict`] if an id (or a
    /// device's number) exists, [`StoreError::NotFound`] if a device does not; nothing is
    /// inserted then. The devices' numbers are not taken: copy them with
    /// [`raise_command_sequences`](Self::raise_command_sequences). Announces nothing (no node
    /// runs on a store being filled).
    async fn import_commands(&self, commands: &[CommandRecord]) -> Result<(), StoreError>;
    /// Each device's last command sequence number, ordered by device id, strictly after
    /// `after` (keyset pagination; `portcullis store copy`). Devices deleted since keep theirs.
    async fn list_command_sequences(
        &self,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<(DeviceId, u64)>, StoreError>;
    /// Raises each device's last command sequence number to at least the one given (one
    /// already at or above stays), in one transaction, so the next command queued for it is
    /// numbered above every number it has received: a device refuses a command numbered at or
    /// below the last one it executed. Numbers of 0 or above `i64::MAX` are a
    /// [`StoreError::Conflict`]. A device id need not exist (numbers outlive their device).
    async fn raise_command_sequences(&self, lasts: &[(DeviceId, u64)]) -> Result<(), StoreError>;

    // --- Software updates (issue #13) ---

    /// Records what a device reports about a release of its model: one row per device, model
    /// and release, a later report replacing an earlier one (a device goes downloading →
    /// installed). [`StoreError::NotFound`] if the device does not exist.
    async fn record_update_report(&self, report: &UpdateReport) -> Result<(), StoreError>;
    /// How many devices of `model` last reported each status, per release, ordered by release
    /// then status: `(release, status, devices)`.
    async fn update_rollout(
        &self,
        model: &str,
    ) -> Result<Vec<(u64, UpdateStatus, u64)>, StoreError>;
    /// The reports about one release of `model`, by device id after `after` (keyset pages).
    async fn list_update_reports(
        &self,
        model: &str,
        release: u64,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<UpdateReport>, StoreError>;
    /// Every device's reports, ordered by device id, model, then release, strictly after
    /// `after` (keyset pagination; `portcullis store copy`, which writes them back with
    /// [`record_update_report`](Self::record_update_report), every field kept).
    async fn list_all_update_reports(
        &self,
        after: Option<(&DeviceId, &str, u64)>,
        limit: u32,
    ) -> Result<Vec<UpdateReport>, StoreError>;

    // --- Device gateway (issue #12) ---

    /// Replay protection: for each `(device, counter)` in order, in one transaction, stores
    /// the counter as the device's highest if it is above the stored one (none = 0) and
    /// answers `Some(previous)`, else `None` (a replay). Atomic across nodes: of two nodes
    /// advancing one device to the same counter, exactly one gets `Some`. Counters above
    /// `i64::MAX` (and 0) are never accepted.
    async fn advance_device_counters(
        &self,
        batch: &[(DeviceId, u64)],
    ) -> Result<Vec<CounterAdvance>, StoreError>;
    /// Raises each device's stored counter to at least the one given (one already at or
    /// above stays; a counter that could never be accepted is skipped), judging nothing: for
    /// a caller that decided the counters itself and keeps them durable elsewhere (one node
    /// whose telemetry log records each accepted counter and is read back after a crash).
    /// One statement per chunk of devices, no rows read back; the embedded store skips
    /// syncing the commit (a power cut may lose the last ones, never reorder them).
    async fn raise_device_counters(&self, highs: &[(DeviceId, u64)]) -> Result<(), StoreError>;
    /// Takes an advance back (the sink refused the message): sets the counter to `previous`
    /// only if it is still `counter`; `false` if a later advance happened meanwhile.
    async fn revert_device_counter(
        &self,
        device: &DeviceId,
        counter: u64,
        previous: u64,
    ) -> Result<bool, StoreError>;
    /// Stored counters ordered by device id, after `after` (`portcullis store copy`).
    async fn list_device_counters(
        &self,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<(DeviceId, u64)>, StoreError>;

    // --- Detection (issue #14) ---

    /// Adds every increment to its counter in ONE transaction (upsert: count += increment,
    /// saturating at `i64::MAX`) and returns, in the same order, each counter's totals after
    /// the batch (as the whole cluster sees them). Increments of one (key, bucket) in a batch
    /// add up; a zero count writes nothing but still gets its totals.
    async fn add_detection_counts(
        &self,
        increments: &[DetectionIncrement],
    ) -> Result<Vec<DetectionTotals>, StoreError>;
    /// Deletes counter buckets that start before `before`; returns how many rows went.
    async fn purge_detection_counts(&self, before: i64) -> Result<u64, StoreError>;
    /// Inserts `alert` unless an alert with its id exists (two nodes deciding the same
    /// incident); true if this call inserted it. A state other than `open` or `acknowledged`
    /// is a [`StoreError::Conflict`].
    async fn insert_alert(&self, alert: &StoredAlert) -> Result<bool, StoreError>;
    /// Alerts newest first (raised_at DESC, id DESC), those raised strictly before `before` (a
    /// (raised_at, id) keyset cursor; None = from the newest), optionally only those in
    /// `state`, at most `limit`.
    async fn list_alerts(
        &self,
        state: Option<&str>,
        before: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>, StoreError>;
    async fn get_alert(&self, id: &str) -> Result<Option<StoredAlert>, StoreError>;
    /// Marks an open alert acknowledged by `by` at `at`. Acknowledging an acknowledged alert
    /// changes nothing (the first acknowledgement stays), and says so, so that only the call
    /// that acknowledged records it.
    async fn ack_alert(&self, id: &str, by: &str, at: i64) -> Result<AlertAck, StoreError>;
    /// Replaces an alert's (sealed) detail: the node that raised it adds what its automatic
    /// action did, which is known only after the insert decided who acts. Ok(false) if there
    /// is no such alert.
    async fn set_alert_detail(&self, id: &str, detail: &str) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod open_tests {
    use super::*;

    #[tokio::test]
    async fn a_sqlite_url_opens_a_file_store() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("open.db").display());
        let store = open(&url).await.unwrap();
        store.ping().await.unwrap();
        assert!(dir.path().join("open.db").exists());
    }

    #[tokio::test]
    async fn an_unknown_scheme_is_refused_without_echoing_the_url() {
        let err = open("mysql://u:hunter2@db/x").await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    /// A PostgreSQL server that asks for a cleartext password, reports what it received and
    /// refuses it (the machines' real PostgreSQL trusts everyone, so it checks no password).
    fn password_refusing_server() -> (u16, std::sync::mpsc::Receiver<String>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel();
        /// One message: an optional type byte, a length that counts itself, the body.
        fn read_message(stream: &mut std::net::TcpStream, typed: bool) -> Option<Vec<u8>> {
            let mut head = vec![0u8; if typed { 5 } else { 4 }];
            stream.read_exact(&mut head).ok()?;
            let len = u32::from_be_bytes(head[head.len() - 4..].try_into().ok()?);
            let mut body = vec![0u8; (len as usize).checked_sub(4)?];
            stream.read_exact(&mut body).ok()?;
            Some(body)
        }
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                // SSLRequest (code 80877103) first unless sslmode=disable: say no, then the
                // StartupMessage follows.
                let Some(first) = read_message(&mut stream, false) else {
                    continue;
                };
                if first.get(..4) == Some(&80_877_103u32.to_be_bytes()[..]) {
                    let _ = stream.write_all(b"N");
                    if read_message(&mut stream, false).is_none() {
                        continue;
                    }
                }
                // AuthenticationCleartextPassword.
                let _ = stream.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]);
                let Some(password) = read_message(&mut stream, true) else {
                    continue;
                };
                let password =
                    String::from_utf8_lossy(password.strip_suffix(&[0]).unwrap_or(&password));
                let _ = tx.send(password.into_owned());
                let mut fields = Vec::new();
                for (code, value) in [
                    (b'S', "FATAL"),
                    (b'V', "FATAL"),
                    (b'C', "28P01"),
                    (
                        b'M',
                        "password authentication failed for user \"portcullis\"",
                    ),
                ] {
                    fields.push(code);
                    fields.extend_from_slice(value.as_bytes());
                    fields.push(0);
                }
                fields.push(0);
                let mut error = vec![b'E'];
                error.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                error.extend_from_slice(&fields);
                let _ = stream.write_all(&error);
            }
        });
        (port, rx)
    }

    #[tokio::test]
    async fn a_postgres_password_is_sent_but_never_echoed() {
        let (port, received) = password_refusing_server();
        for url in [
            format!("postgres://portcullis@127.0.0.1:{port}/portcullis?sslmode=disable"),
            // The given password wins over one in the URL.
            format!("postgres://portcullis:url-pass@127.0.0.1:{port}/portcullis"),
        ] {
            let Err(err) = open_with_password(&url, Some("s3cr3t-Pa55")).await else {
                panic!("the server refuses every password");
            };
            let shown = format!("{err} {err:?}");
            assert!(shown.contains("password authentication failed"), "{shown}");
            assert!(
                !shown.contains("s3cr3t"),
                "the password is never echoed: {shown}"
            );
            let sent = received
                .recv_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            assert_eq!(sent, "s3cr3t-Pa55", "{url}");
        }
    }

    #[tokio::test]
    async fn a_password_for_sqlite_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("open.db").display());
        let err = open_with_password(&url, Some("s3cr3t-Pa55"))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("only to PostgreSQL"), "{err}");
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }

    #[tokio::test]
    async fn a_connection_with_a_password_works() {
        // Trust authentication on the test machines accepts any password: this proves the
        // password does not get in the way of a real connection and its migrations.
        postgres::test_schema::with_test_schema(|schema| async move {
            let sep = if schema.url().contains('?') { '&' } else { '?' };
            let url = format!(
                "{}{sep}options[search_path]={}",
                schema.url(),
                schema.name()
            );
            let store = open_with_password(&url, Some("s3cr3t-Pa55")).await.unwrap();
            store.ping().await.unwrap();
            assert!(store.list_clients(None, 1).await.unwrap().is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn a_postgres_url_goes_to_the_postgres_backend() {
        // A malformed authority fails in the PostgreSQL URL parser, at once: its message
        // proves the route without a server.
        for url in ["postgres://u@[::1", "postgresql://u@[::1"] {
            let err = open(url).await.unwrap_err();
            assert!(err.to_string().contains("PostgreSQL URL"), "{err:?}");
        }
    }
}
