//! Audit checkpoints: the chain head signed by a key the database alone cannot produce.
//!
//! The hash chain (`crate::audit`) shows an edit only to someone who still knows a later hash:
//! whoever can write the database can rewrite a record and recompute every hash after it. A
//! checkpoint pins the chain: the `{seq, hash}` of the newest record, signed as a compact JWS
//! with the node's active token-signing key (sealed under the master key, or inside an HSM)
//! and appended to the chain itself as an `audit.checkpoint` event. Rewriting any record up to
//! `seq` then no longer matches the signed hash. Removing the newest records (checkpoints
//! included) cannot be seen from the database alone; every checkpoint is also written to the
//! operational log, and that copy outside the database is what shows a truncation.
//!
//! The rules are pure and live here: what is signed, what the event stores, when a checkpoint
//! is due, and how a stored checkpoint must agree with its signed claims and with the chain.
//! Signing and signature checks are `portcullis_audit::checkpoint`.

use serde::{Deserialize, Serialize};

use crate::audit::{from_hex, AuditAction, AuditEvent, AuditRecord, Outcome};
use crate::UnixTime;

/// The audit action of a checkpoint record.
pub const CHECKPOINT_ACTION: &str = AuditAction::AuditCheckpoint.as_str();
/// The JWS header `typ` (RFC 8725 §3.11 explicit typing): the same key signs access tokens
/// (`at+jwt`), and neither may pass for the other.
pub const CHECKPOINT_JWS_TYP: &str = "audit-checkpoint+jwt";
/// The `typ` claim inside the signed payload, so the payload names its purpose on its own.
pub const CHECKPOINT_CLAIM_TYP: &str = "audit-checkpoint";

/// The signed statement: at `iat` the chain's newest record was `seq`, with hash `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointClaims {
    /// Always [`CHECKPOINT_CLAIM_TYP`].
    pub typ: String,
    /// The sequence number of the covered record.
    pub seq: i64,
    /// Its chain hash, lowercase hex.
    pub hash: String,
    /// When the checkpoint was taken.
    pub iat: UnixTime,
}

impl CheckpointClaims {
    /// The claims of a checkpoint over `head` (the newest record) taken at `now`.
    pub fn for_head(head: &AuditRecord, now: UnixTime) -> CheckpointClaims {
        CheckpointClaims {
            typ: CHECKPOINT_CLAIM_TYP.to_owned(),
            seq: head.seq,
            hash: head.hash.clone(),
            iat: now,
        }
    }

    /// Parses a signed payload: exactly these four members, the right `typ`, a positive
    /// `seq` and a well-formed hash.
    pub fn parse(json: &[u8]) -> Result<CheckpointClaims, MalformedCheckpoint> {
        let claims: CheckpointClaims = serde_json::from_slice(json)
            .map_err(|e| MalformedCheckpoint::NotClaims(e.to_string()))?;
        if claims.typ != CHECKPOINT_CLAIM_TYP {
            return Err(MalformedCheckpoint::WrongTyp(claims.typ));
        }
        check_position(claims.seq, &claims.hash)?;
        Ok(claims)
    }
}

/// The `detail` of an `audit.checkpoint` record: the signed claims' position plus the JWS and
/// its key, so the record can be checked without anything but the key table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointDetail {
    /// The covered record.
    pub seq: i64,
    /// Its chain hash, lowercase hex.
    pub hash: String,
    /// The signing key (also in the JWS header).
    pub kid: String,
    /// The compact JWS over [`CheckpointClaims`].
    pub jws: String,
}

impl CheckpointDetail {
    /// The audit event that appends this checkpoint to the chain.
    pub fn to_event(&self, at: UnixTime) -> AuditEvent {
        AuditEvent {
            at,
            actor: "system".to_owned(),
            action: AuditAction::AuditCheckpoint.into(),
            subject: "audit".to_owned(),
            outcome: Outcome::Success.into(),
            detail: serde_json::json!({
                "seq": self.seq,
                "hash": self.hash,
                "kid": self.kid,
                "jws": self.jws,
            }),
        }
    }

    /// Reads the checkpoint stored in `record` (an `audit.checkpoint` record). A checkpoint
    /// can only cover a record before its own.
    pub fn from_record(record: &AuditRecord) -> Result<CheckpointDetail, CheckpointBreak> {
        let malformed = |why: String| CheckpointBreak::Malformed {
            seq: record.seq,
            why,
        };
        let detail: CheckpointDetail = serde_json::from_value(record.event.detail.clone())
            .map_err(|e| malformed(format!("detail is not a checkpoint ({e})")))?;
        check_position(detail.seq, &detail.hash).map_err(|e| malformed(e.to_string()))?;
        if detail.seq >= record.seq {
            return Err(malformed(format!(
                "it claims to cover record {}, which is not before it",
                detail.seq
            )));
        }
        if detail.kid.is_empty() {
            return Err(malformed("it names no key".into()));
        }
        Ok(detail)
    }

    /// The stored position must be the signed one: otherwise the record was edited (and the
    /// chain re-hashed) after signing.
    pub fn check_claims(
        &self,
        record_seq: i64,
        claims: &CheckpointClaims,
    ) -> Result<(), CheckpointBreak> {
        let what = if claims.seq != self.seq {
            "seq"
        } else if from_hex(&claims.hash) != from_hex(&self.hash) {
            "hash"
        } else {
            return Ok(());
        };
        Err(CheckpointBreak::DetailMismatch {
            seq: record_seq,
            what,
        })
    }

    /// The covered record must still have the signed hash.
    pub fn check_covered(
        &self,
        record_seq: i64,
        covered: &AuditRecord,
    ) -> Result<(), CheckpointBreak> {
        if covered.seq == self.seq && from_hex(&covered.hash) == from_hex(&self.hash) {
            Ok(())
        } else {
            Err(CheckpointBreak::HashMismatch {
                seq: record_seq,
                covered: self.seq,
            })
        }
    }
}

/// Why signed checkpoint claims or a checkpoint record's position are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedCheckpoint {
    #[error("signed payload is not checkpoint claims ({0})")]
    NotClaims(String),
    #[error("signed payload has typ {0:?}")]
    WrongTyp(String),
    #[error("covered seq {0} is not a record")]
    NotARecord(i64),
    #[error("covered hash is not 64 hex digits")]
    BadHash,
}

fn check_position(seq: i64, hash: &str) -> Result<(), MalformedCheckpoint> {
    if seq < 1 {
        return Err(MalformedCheckpoint::NotARecord(seq));
    }
    if from_hex(hash).is_none() {
        return Err(MalformedCheckpoint::BadHash);
    }
    Ok(())
}

/// Whether `event` is a checkpoint (every record with this action is checked as one).
pub fn is_checkpoint(event: &AuditEvent) -> bool {
    event.action == CHECKPOINT_ACTION
}

/// Whether a checkpoint of `head` (the newest record, `None` for an empty log) is worth
/// taking: not when the newest record is itself a checkpoint, since then nothing but
/// checkpoints was appended since the last one, and each checkpoint would otherwise make the
/// next one due, forever.
pub fn checkpoint_due(head: Option<&AuditRecord>) -> bool {
    head.is_some_and(|head| !is_checkpoint(&head.event))
}

/// Why a checkpoint record fails verification. Each names the checkpoint's own record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointBreak {
    /// The record cannot be a checkpoint we wrote.
    #[error("audit checkpoint at record {seq} is malformed: {why}")]
    Malformed { seq: i64, why: String },
    /// The JWS does not verify with the trusted public key of its `kid`.
    #[error("audit checkpoint at record {seq} is forged: its signature does not verify with key {kid} ({why})")]
    BadSignature { seq: i64, kid: String, why: String },
    /// The key is not in the key table at all (rows are never deleted, even for removed keys).
    #[error("audit checkpoint at record {seq} names key {kid}, which is not in the key table (key rows are never deleted: the record or the key table was tampered with)")]
    UnknownKey { seq: i64, kid: String },
    /// The stored `seq`/`hash` differ from the signed ones.
    #[error("audit checkpoint at record {seq} was edited: its stored {what} differs from the signed one")]
    DetailMismatch { seq: i64, what: &'static str },
    /// The chain no longer has the signed hash at the covered record.
    #[error("audit checkpoint at record {seq} signed a different hash for record {covered}: records up to {covered} were rewritten")]
    HashMismatch { seq: i64, covered: i64 },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{link, GENESIS_HASH};

    fn event(action: &str) -> AuditEvent {
        AuditEvent {
            at: 1_700_000_000,
            actor: "c1".into(),
            action: action.into(),
            subject: "s".into(),
            outcome: "success".into(),
            detail: serde_json::json!({}),
        }
    }

    fn records(actions: &[&str]) -> Vec<AuditRecord> {
        link(0, GENESIS_HASH, actions.iter().map(|a| event(a)).collect())
    }

    fn detail_for(head: &AuditRecord) -> CheckpointDetail {
        CheckpointDetail {
            seq: head.seq,
            hash: head.hash.clone(),
            kid: "k1".into(),
            jws: "h.p.s".into(),
        }
    }

    /// The chain `token.issued` ×2 followed by a checkpoint of record 2, as stored.
    fn chain_with_checkpoint() -> Vec<AuditRecord> {
        let mut recs = records(&["token.issued", "token.issued"]);
        let cp = detail_for(&recs[1]).to_event(1_700_000_060);
        let last = &recs[1];
        let hash = from_hex(&last.hash).unwrap_or_default();
        recs.extend(link(last.seq, hash, vec![cp]));
        recs
    }

    #[test]
    fn checkpoint_is_due_only_after_something_other_than_a_checkpoint() {
        assert!(!checkpoint_due(None), "an empty log has nothing to pin");
        let recs = records(&["token.issued"]);
        assert!(checkpoint_due(recs.last()));
        let recs = chain_with_checkpoint();
        assert!(
            !checkpoint_due(recs.last()),
            "only a checkpoint since the last checkpoint"
        );
        let mut recs = recs;
        let last = recs[2].clone();
        let hash = from_hex(&last.hash).unwrap_or_default();
        recs.extend(link(last.seq, hash, vec![event("client.updated")]));
        assert!(checkpoint_due(recs.last()));
    }

    #[test]
    fn claims_are_built_from_the_head_and_parse_back() {
        let recs = records(&["token.issued", "client.created"]);
        let claims = CheckpointClaims::for_head(&recs[1], 1_700_000_123);
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&json),
            format!(
                r#"{{"typ":"audit-checkpoint","seq":2,"hash":"{}","iat":1700000123}}"#,
                recs[1].hash
            )
        );
        assert_eq!(CheckpointClaims::parse(&json), Ok(claims));
    }

    #[test]
    fn hostile_payloads_are_refused() {
        let hash = "ab".repeat(32);
        for bad in [
            String::new(),
            "[]".into(),
            r#"{"typ":"audit-checkpoint","seq":1,"hash":"00"}"#.into(),
            format!(r#"{{"typ":"at+jwt","seq":1,"hash":"{hash}","iat":1}}"#),
            format!(r#"{{"typ":"audit-checkpoint","seq":0,"hash":"{hash}","iat":1}}"#),
            format!(r#"{{"typ":"audit-checkpoint","seq":-5,"hash":"{hash}","iat":1}}"#),
            format!(r#"{{"typ":"audit-checkpoint","seq":"1","hash":"{hash}","iat":1}}"#),
            format!(r#"{{"typ":"audit-checkpoint","seq":1,"hash":"{hash}","iat":1,"x":1}}"#),
            r#"{"typ":"audit-checkpoint","seq":1,"hash":"zz","iat":1}"#.into(),
            format!(r#"{{"typ":"audit-checkpoint","seq":1,"hash":"{hash}00","iat":1}}"#),
        ] {
            assert!(
                CheckpointClaims::parse(bad.as_bytes()).is_err(),
                "accepted {bad}"
            );
        }
    }

    #[test]
    fn detail_round_trips_through_the_stored_event() {
        let recs = chain_with_checkpoint();
        assert!(is_checkpoint(&recs[2].event));
        assert_eq!(recs[2].event.actor, "system");
        assert_eq!(
            CheckpointDetail::from_record(&recs[2]),
            Ok(detail_for(&recs[1]))
        );
    }

    #[test]
    fn malformed_checkpoint_records_name_their_seq() {
        let recs = chain_with_checkpoint();
        let mut bad_details = vec![
            serde_json::json!("not an object"),
            serde_json::json!({"seq": 2, "hash": recs[1].hash, "kid": "k1"}),
            serde_json::json!({"seq": 2, "hash": "00", "kid": "k1", "jws": "a.b.c"}),
            serde_json::json!({"seq": 3, "hash": recs[1].hash, "kid": "k1", "jws": "a.b.c"}),
            serde_json::json!({"seq": 9, "hash": recs[1].hash, "kid": "k1", "jws": "a.b.c"}),
            serde_json::json!({"seq": 2, "hash": recs[1].hash, "kid": "", "jws": "a.b.c"}),
        ];
        for detail in bad_details.drain(..) {
            let mut rec = recs[2].clone();
            rec.event.detail = detail.clone();
            assert!(
                matches!(
                    CheckpointDetail::from_record(&rec),
                    Err(CheckpointBreak::Malformed { seq: 3, .. })
                ),
                "accepted {detail}"
            );
        }
    }

    #[test]
    fn stored_position_must_equal_the_signed_one() {
        let recs = records(&["a", "b"]);
        let detail = detail_for(&recs[1]);
        let claims = CheckpointClaims::for_head(&recs[1], 1);
        assert_eq!(detail.check_claims(3, &claims), Ok(()));
        let earlier = CheckpointClaims::for_head(&recs[0], 1);
        assert_eq!(
            detail.check_claims(3, &earlier),
            Err(CheckpointBreak::DetailMismatch {
                seq: 3,
                what: "seq"
            })
        );
        let mut other_hash = claims.clone();
        other_hash.hash = "00".repeat(32);
        assert_eq!(
            detail.check_claims(3, &other_hash),
            Err(CheckpointBreak::DetailMismatch {
                seq: 3,
                what: "hash"
            })
        );
    }

    #[test]
    fn a_rewritten_covered_record_no_longer_matches() {
        let recs = records(&["a", "b"]);
        let detail = detail_for(&recs[1]);
        assert_eq!(detail.check_covered(3, &recs[1]), Ok(()));
        // Rewritten and re-hashed, as someone with write access could.
        let mut forged = records(&["a", "forged"]);
        forged[1].event.subject = "x".into();
        assert_eq!(
            detail.check_covered(3, &forged[1]),
            Err(CheckpointBreak::HashMismatch { seq: 3, covered: 2 })
        );
        assert!(detail.check_covered(3, &recs[0]).is_err(), "wrong record");
        let message = CheckpointBreak::HashMismatch { seq: 3, covered: 2 }.to_string();
        assert!(message.contains("record 3") && message.contains("record 2"));
    }
}
