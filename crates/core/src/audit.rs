//! The audit hash chain: each record carries the SHA-256 of the record before it, so editing
//! or deleting any record breaks every hash after it (`portcullis audit verify`).

use crate::UnixTime;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash that precedes the first record.
pub const GENESIS_HASH: [u8; 32] = [0u8; 32];

/// What happened; never contains a secret, a token or key material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: UnixTime,
    /// Who acted: a client id, `admin:<client_id>`, or `system`.
    pub actor: String,
    /// What was done, e.g. `token.issued`, `token.refused`, `client.created`: an
    /// [`AuditAction`]'s spelling when this version writes it.
    pub action: String,
    /// What it was done to (a client id, a token's jti, a key id).
    pub subject: String,
    /// `success` or `failure` (an [`Outcome`]'s spelling).
    pub outcome: String,
    /// Extra facts as JSON (scopes, error code, source address).
    pub detail: serde_json::Value,
}

/// What an audit record says was done. The stored text ([`AuditAction::as_str`]) is hashed
/// into the chain, so a spelling never changes once released; records are read back as text,
/// so a chain written by another version still verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditAction {
    TokenIssued,
    TokenRefused,
    /// A genuine access token presented without proof of the key or certificate it is bound
    /// to (RFC 8705 §3, RFC 9449 §7.1), or with a replayed DPoP proof: a stolen bound token.
    TokenUseRefused,
    TokenRevoked,
    TokenRevokeRefused,
    ClientCreated,
    ClientUpdated,
    ClientDeleted,
    ClientSecretRotated,
    KeyCreated,
    KeyActivated,
    KeyRetired,
    KeyRevoked,
    KeyRemoved,
    KeyRewrapped,
    CaCreated,
    DeviceRegistered,
    DeviceImported,
    DeviceStateChanged,
    DeviceRevoked,
    DeviceEnrolled,
    DeviceEnrollRefused,
    DeviceReenrolled,
    DeviceReenrollRefused,
    DeviceKeyCreated,
    DeviceKeyRotated,
    DeviceKeyDeleted,
    GatewayConnected,
    GatewayRefused,
    GatewayReplay,
    GatewayTakeover,
    TrustKeyCreated,
    TrustKeyRetired,
    TrustListPublished,
    CommandSent,
    CommandDenied,
    CommandApproved,
    CommandDelivered,
    CommandResult,
    CommandRulesChanged,
    FederationChanged,
    SettingsChanged,
    SettingsApplied,
    UpdatePublished,
    UpdateWithdrawn,
    UpdateRefused,
    CertRevoked,
    AuditCheckpoint,
    AuditRead,
    AuditKeyRotated,
    AuditArchived,
    AlertRaised,
    AlertAcknowledged,
}

impl AuditAction {
    /// The stored spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TokenIssued => "token.issued",
            Self::TokenRefused => "token.refused",
            Self::TokenUseRefused => "token.use_refused",
            Self::TokenRevoked => "token.revoked",
            Self::TokenRevokeRefused => "token.revoke_refused",
            Self::ClientCreated => "client.created",
            Self::ClientUpdated => "client.updated",
            Self::ClientDeleted => "client.deleted",
            Self::ClientSecretRotated => "client.secret_rotated",
            Self::KeyCreated => "key.created",
            Self::KeyActivated => "key.activated",
            Self::KeyRetired => "key.retired",
            Self::KeyRevoked => "key.revoked",
            Self::KeyRemoved => "key.removed",
            Self::KeyRewrapped => "key.rewrapped",
            Self::CaCreated => "ca.created",
            Self::DeviceRegistered => "device.registered",
            Self::DeviceImported => "device.imported",
            Self::DeviceStateChanged => "device.state_changed",
            Self::DeviceRevoked => "device.revoked",
            Self::DeviceEnrolled => "device.enrolled",
            Self::DeviceEnrollRefused => "device.enroll_refused",
            Self::DeviceReenrolled => "device.reenrolled",
            Self::DeviceReenrollRefused => "device.reenroll_refused",
            Self::DeviceKeyCreated => "device.key_created",
            Self::DeviceKeyRotated => "device.key_rotated",
            Self::DeviceKeyDeleted => "device.key_deleted",
            Self::GatewayConnected => "gateway.connected",
            Self::GatewayRefused => "gateway.refused",
            Self::GatewayReplay => "gateway.replay",
            Self::GatewayTakeover => "gateway.takeover",
            Self::TrustKeyCreated => "trust.key_created",
            Self::TrustKeyRetired => "trust.key_retired",
            Self::TrustListPublished => "trust.published",
            Self::CommandSent => "command.sent",
            Self::CommandDenied => "command.denied",
            Self::CommandApproved => "command.approved",
            Self::CommandDelivered => "command.delivered",
            Self::CommandResult => "command.result",
            Self::CommandRulesChanged => "command.rules_changed",
            Self::FederationChanged => "federation.changed",
            Self::SettingsChanged => "settings.changed",
            Self::SettingsApplied => "settings.applied",
            Self::UpdatePublished => "update.published",
            Self::UpdateWithdrawn => "update.withdrawn",
            Self::UpdateRefused => "update.refused",
            Self::CertRevoked => "cert.revoked",
            Self::AuditCheckpoint => "audit.checkpoint",
            Self::AuditRead => "audit.read",
            Self::AuditKeyRotated => "audit.key_rotated",
            Self::AuditArchived => "audit.archived",
            Self::AlertRaised => "alert.raised",
            Self::AlertAcknowledged => "alert.acknowledged",
        }
    }
}

impl From<AuditAction> for String {
    fn from(action: AuditAction) -> String {
        action.as_str().to_owned()
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether what a record describes happened (`success`) or was refused (`failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    /// `Success` when `ok`.
    pub const fn of(ok: bool) -> Self {
        if ok {
            Self::Success
        } else {
            Self::Failure
        }
    }

    /// The stored spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

impl From<Outcome> for String {
    fn from(outcome: Outcome) -> String {
        outcome.as_str().to_owned()
    }
}

/// A stored audit record: the event, its position and its chain hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
    /// hex SHA-256 of the previous record (zeros for the first).
    pub prev_hash: String,
    /// hex SHA-256 over `prev_hash` and this record's canonical fields.
    pub hash: String,
}

fn put_field(h: &mut Sha256, field: &[u8]) {
    h.update((field.len() as u64).to_be_bytes());
    h.update(field);
}

/// The chain hash of record `seq` holding `event`, following `prev`. Fields are
/// length-prefixed so no two different records can hash the same input.
pub fn chain_hash(prev: &[u8; 32], seq: i64, event: &AuditEvent) -> [u8; 32] {
    chain_hash_over(prev, seq, event, &detail_text(&event.detail))
}

/// [`chain_hash`] with the record's [`detail_text`] already written.
fn chain_hash_over(prev: &[u8; 32], seq: i64, event: &AuditEvent, detail: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(event.at.to_be_bytes());
    put_field(&mut h, event.actor.as_bytes());
    put_field(&mut h, event.action.as_bytes());
    put_field(&mut h, event.subject.as_bytes());
    put_field(&mut h, event.outcome.as_bytes());
    put_field(&mut h, detail.as_bytes());
    h.finalize().into()
}

/// The exact JSON text of a record's `detail`: what the chain hash covers and the stores keep
/// (compact, as `Value`'s `Display` writes it). Written into one buffer sized for a sealed
/// detail, where `to_string` would grow a string from nothing a handful of times per record.
pub fn detail_text(detail: &serde_json::Value) -> String {
    let mut text = Vec::with_capacity(512);
    match serde_json::to_writer(&mut text, detail) {
        // serde_json writes UTF-8 only; the check is a formality, its failure unreachable.
        Ok(()) => String::from_utf8(text).unwrap_or_else(|_| detail.to_string()),
        // Writing a `Value` to memory cannot fail either.
        Err(_) => detail.to_string(),
    }
}

/// Lowercase hex of a hash.
pub fn to_hex(bytes: &[u8; 32]) -> String {
    crate::hex::encode(bytes)
}

/// Parses 64 hex digits.
pub fn from_hex(s: &str) -> Option<[u8; 32]> {
    crate::hex::decode(s)?.try_into().ok()
}

/// Builds the records for `events` appended after a chain whose last record is
/// (`last_seq`, `last_hash`).
pub fn link(last_seq: i64, last_hash: [u8; 32], events: Vec<AuditEvent>) -> Vec<AuditRecord> {
    let mut linker = ChainLinker::after(last_seq, last_hash);
    events
        .into_iter()
        .map(|event| linker.link(&event).place.record(event))
        .collect()
}

/// Links events to a chain one at a time, borrowing each: what a store uses to write a batch
/// it does not own (the audit writer keeps its batch for a retry) without first turning it
/// into [`AuditRecord`]s nobody reads.
#[derive(Debug, Clone)]
pub struct ChainLinker {
    seq: i64,
    prev: [u8; 32],
}

/// One event's link, as [`ChainLinker::link`] computed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub place: ChainPlace,
    /// The event's [`detail_text`]: what the hash covered and the store keeps.
    pub detail: String,
}

/// Where a record sits in the chain: its number and the hashes that tie it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainPlace {
    pub seq: i64,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl ChainPlace {
    /// The record `event` becomes at this place.
    pub fn record(self, event: AuditEvent) -> AuditRecord {
        AuditRecord {
            seq: self.seq,
            event,
            prev_hash: to_hex(&self.prev_hash),
            hash: to_hex(&self.hash),
        }
    }
}

impl ChainLinker {
    /// Continues a chain whose last record is (`last_seq`, `last_hash`).
    pub fn after(last_seq: i64, last_hash: [u8; 32]) -> Self {
        Self {
            seq: last_seq,
            prev: last_hash,
        }
    }

    /// The next record's link for `event`.
    pub fn link(&mut self, event: &AuditEvent) -> ChainLink {
        self.seq += 1;
        let detail = detail_text(&event.detail);
        let hash = chain_hash_over(&self.prev, self.seq, event, &detail);
        let prev_hash = std::mem::replace(&mut self.prev, hash);
        ChainLink {
            place: ChainPlace {
                seq: self.seq,
                prev_hash,
                hash,
            },
            detail,
        }
    }
}

/// Why a chain failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("record {seq}: its hash does not match its contents (edited)")]
    Edited { seq: i64 },
    #[error("record {seq}: previous hash does not match record {prev_seq} (a record was removed or reordered)")]
    Unlinked { seq: i64, prev_seq: i64 },
    #[error("record {seq}: expected sequence number {expected} (a record was removed)")]
    Gap { seq: i64, expected: i64 },
    /// A signed checkpoint in the chain is forged, edited, or no longer matches the chain.
    #[error(transparent)]
    Checkpoint(#[from] crate::audit_checkpoint::CheckpointBreak),
}

/// Incremental verifier, so a chain of millions of records can be checked as a stream.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    prev_hash: [u8; 32],
    prev_seq: i64,
    /// Records checked so far.
    pub count: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            prev_hash: GENESIS_HASH,
            prev_seq: 0,
            count: 0,
        }
    }
}

impl ChainVerifier {
    /// A verifier that continues after record `seq` whose hash is `hash`: the anchor a live
    /// chain starts from once older records were archived, or an archive segment's start.
    pub fn after(seq: i64, hash: [u8; 32]) -> Self {
        Self {
            prev_hash: hash,
            prev_seq: seq,
            count: 0,
        }
    }

    /// The sequence number and hash of the last record checked (the start, before any).
    pub fn position(&self) -> (i64, [u8; 32]) {
        (self.prev_seq, self.prev_hash)
    }

    /// Checks the next record of the chain.
    pub fn check(&mut self, rec: &AuditRecord) -> Result<(), ChainBreak> {
        if rec.seq != self.prev_seq + 1 {
            return Err(ChainBreak::Gap {
                seq: rec.seq,
                expected: self.prev_seq + 1,
            });
        }
        if from_hex(&rec.prev_hash) != Some(self.prev_hash) {
            return Err(ChainBreak::Unlinked {
                seq: rec.seq,
                prev_seq: self.prev_seq,
            });
        }
        let expected = chain_hash(&self.prev_hash, rec.seq, &rec.event);
        if from_hex(&rec.hash) != Some(expected) {
            return Err(ChainBreak::Edited { seq: rec.seq });
        }
        self.prev_hash = expected;
        self.prev_seq = rec.seq;
        self.count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn detail_text_is_the_text_records_were_always_hashed_with() {
        // Old records were hashed over `Value::to_string`; a byte of difference would make
        // every one of them look edited.
        let long = "x".repeat(2000);
        for detail in [
            serde_json::json!({}),
            serde_json::json!({"sealed": "1.k1.c2FsdA.0.Y2lwaGVy"}),
            serde_json::json!({"scope": "a b", "aud": ["x", "y"], "n": 1.5, "ok": true, "none": null}),
            serde_json::json!({"quote\"": "tab\t, newline\n, \u{1}, é, 🦀, </script>"}),
            serde_json::json!({ "long": long }),
        ] {
            assert_eq!(super::detail_text(&detail), detail.to_string());
        }
    }

    #[test]
    fn action_spellings_are_the_released_ones() {
        // Hashed into every chain: changing one would make old records look edited.
        let released = [
            (AuditAction::TokenIssued, "token.issued"),
            (AuditAction::TokenRefused, "token.refused"),
            (AuditAction::TokenUseRefused, "token.use_refused"),
            (AuditAction::TokenRevokeRefused, "token.revoke_refused"),
            (AuditAction::ClientSecretRotated, "client.secret_rotated"),
            (
                AuditAction::DeviceReenrollRefused,
                "device.reenroll_refused",
            ),
            (AuditAction::AuditCheckpoint, "audit.checkpoint"),
            (AuditAction::DeviceKeyCreated, "device.key_created"),
            (AuditAction::DeviceKeyRotated, "device.key_rotated"),
            (AuditAction::DeviceKeyDeleted, "device.key_deleted"),
            (AuditAction::TrustKeyCreated, "trust.key_created"),
            (AuditAction::TrustKeyRetired, "trust.key_retired"),
            (AuditAction::TrustListPublished, "trust.published"),
            (AuditAction::CommandSent, "command.sent"),
            (AuditAction::CommandDenied, "command.denied"),
            (AuditAction::CommandApproved, "command.approved"),
            (AuditAction::CommandDelivered, "command.delivered"),
            (AuditAction::CommandResult, "command.result"),
            (AuditAction::CommandRulesChanged, "command.rules_changed"),
            (AuditAction::FederationChanged, "federation.changed"),
            (AuditAction::SettingsChanged, "settings.changed"),
            (AuditAction::SettingsApplied, "settings.applied"),
            (AuditAction::UpdatePublished, "update.published"),
            (AuditAction::UpdateWithdrawn, "update.withdrawn"),
            (AuditAction::UpdateRefused, "update.refused"),
            (AuditAction::AuditRead, "audit.read"),
            (AuditAction::AuditKeyRotated, "audit.key_rotated"),
            (AuditAction::AuditArchived, "audit.archived"),
            (AuditAction::AlertRaised, "alert.raised"),
            (AuditAction::AlertAcknowledged, "alert.acknowledged"),
        ];
        for (action, spelling) in released {
            assert_eq!(action.as_str(), spelling);
            assert_eq!(String::from(action), spelling);
        }
        assert_eq!(Outcome::of(true).as_str(), "success");
        assert_eq!(Outcome::of(false).as_str(), "failure");
    }

    use super::*;

    fn ev(i: i64) -> AuditEvent {
        AuditEvent {
            at: 1000 + i,
            actor: "c1".into(),
            action: "token.issued".into(),
            subject: format!("jti-{i}"),
            outcome: "success".into(),
            detail: serde_json::json!({"scope": "read"}),
        }
    }

    fn chain(n: i64) -> Vec<AuditRecord> {
        link(0, GENESIS_HASH, (1..=n).map(ev).collect())
    }

    fn verify(recs: &[AuditRecord]) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::default();
        for r in recs {
            v.check(r)?;
        }
        Ok(v.count)
    }

    #[test]
    fn intact_chain_verifies_and_continues_across_batches() {
        let mut recs = chain(3);
        let last = recs.last().unwrap();
        recs.extend(link(
            last.seq,
            from_hex(&last.hash).unwrap(),
            vec![ev(4), ev(5)],
        ));
        assert_eq!(verify(&recs).unwrap(), 5);
    }

    #[test]
    fn a_linker_links_one_event_at_a_time_as_link_does_a_batch() {
        let recs = chain(4);
        let mut linker = ChainLinker::after(0, GENESIS_HASH);
        for (i, rec) in (1..=4).zip(&recs) {
            let one = linker.link(&ev(i));
            assert_eq!(one.detail, detail_text(&rec.event.detail));
            assert_eq!(&one.place.record(ev(i)), rec);
        }
    }

    #[test]
    fn edited_record_is_detected() {
        let mut recs = chain(3);
        recs[1].event.outcome = "failure".into();
        assert_eq!(verify(&recs).unwrap_err(), ChainBreak::Edited { seq: 2 });
    }

    #[test]
    fn deleted_record_is_detected() {
        let mut recs = chain(3);
        recs.remove(1);
        assert!(matches!(
            verify(&recs).unwrap_err(),
            ChainBreak::Gap { seq: 3, .. }
        ));
    }

    #[test]
    fn rehashed_edit_is_still_detected_by_the_next_link() {
        let mut recs = chain(3);
        recs[1].event.subject = "forged".into();
        let prev = from_hex(&recs[1].prev_hash).unwrap();
        recs[1].hash = to_hex(&chain_hash(&prev, 2, &recs[1].event));
        assert_eq!(
            verify(&recs).unwrap_err(),
            ChainBreak::Unlinked {
                seq: 3,
                prev_seq: 2
            }
        );
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let h = [0xabu8; 32];
        assert_eq!(from_hex(&to_hex(&h)), Some(h));
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
    }
}
