//! Signing a checkpoint of the chain head, and checking the signature of a stored one (what a
//! checkpoint is and why: `portcullis_core::audit_checkpoint`).
//!
//! Which public keys a checkpoint may be verified with is the caller's to say
//! ([`CheckpointKeys`]): the key table's `public_jwk` column is as writable as the audit log,
//! so the server derives each key from the private half its key custody opens (see
//! `KeyManager::checkpoint_keys`), which someone with only the database cannot produce.

use std::collections::HashMap;

use portcullis_core::audit::AuditRecord;
use portcullis_core::audit_checkpoint::{
    CheckpointBreak, CheckpointClaims, CheckpointDetail, CHECKPOINT_JWS_TYP,
};
use portcullis_core::UnixTime;
use portcullis_keys::{decode, Algorithm, JwkSet, JwtSigner, KeyError, VerifyingKey};

/// Signs a checkpoint of `head` (the newest record) at `now` with `active`, the token
/// endpoint's signer, under the checkpoint `typ`.
pub fn sign_checkpoint(
    active: &JwtSigner,
    head: &AuditRecord,
    now: UnixTime,
) -> Result<CheckpointDetail, KeyError> {
    let claims = CheckpointClaims::for_head(head, now);
    let signer = active.with_typ(CHECKPOINT_JWS_TYP);
    let jws = signer.sign(&claims)?;
    Ok(CheckpointDetail {
        seq: claims.seq,
        hash: claims.hash,
        kid: signer.kid().as_str().to_owned(),
        jws,
    })
}

/// How far a key can be believed.
#[derive(Debug, Clone)]
enum KeyTrust {
    /// Derived from a private key our custody opened.
    Trusted(VerifyingKey),
    /// In the key table, but not usable to prove anything, and why.
    Unavailable(String),
}

/// The keys checkpoints are verified with, by kid.
#[derive(Debug, Clone)]
pub struct CheckpointKeys {
    keys: HashMap<String, KeyTrust>,
    /// `None` when the whole key table is here: a kid outside it was invented or its row
    /// deleted, since rows are never deleted. `Some(why)` when there is no key table behind
    /// this set: every checkpoint is unverifiable for that reason.
    unknown: Option<String>,
}

impl CheckpointKeys {
    /// An empty set that stands for the whole key table (fill it with [`Self::trust`] and
    /// [`Self::distrust`]).
    pub fn key_table() -> CheckpointKeys {
        CheckpointKeys {
            keys: HashMap::new(),
            unknown: None,
        }
    }

    /// No keys at all: hashes and shape are still checked, signatures reported unverifiable.
    pub fn none(why: impl Into<String>) -> CheckpointKeys {
        CheckpointKeys {
            keys: HashMap::new(),
            unknown: Some(why.into()),
        }
    }

    /// Every key of a published JWK Set (`what` names it in reasons), trusted: what an
    /// auditor holding only the public keys checks an archive segment with. A kid the set
    /// lacks is reported unverifiable, not forged.
    pub fn from_jwks(jwks: &[u8], what: &str) -> Result<CheckpointKeys, String> {
        let set: JwkSet =
            serde_json::from_slice(jwks).map_err(|e| format!("{what}: not a JWK set: {e}"))?;
        let mut keys = CheckpointKeys::none(format!("its key is not in {what}"));
        for jwk in &set.keys {
            let Some(kid) = jwk.kid.clone() else { continue };
            match VerifyingKey::from_jwk(jwk, &Algorithm::ALL) {
                Ok(key) => keys.trust(kid, key),
                Err(e) => keys.distrust(kid, format!("unusable in {what}: {e}")),
            }
        }
        Ok(keys)
    }

    /// Checkpoints signed by `kid` are verified with `key`.
    pub fn trust(&mut self, kid: impl Into<String>, key: VerifyingKey) {
        self.keys.insert(kid.into(), KeyTrust::Trusted(key));
    }

    /// Whether checkpoints signed by `kid` are verified (rather than reported unverifiable).
    pub fn is_trusted(&self, kid: &str) -> bool {
        matches!(self.keys.get(kid), Some(KeyTrust::Trusted(_)))
    }

    /// The key that verifies signatures of `kid`, or why there is none.
    pub(crate) fn key_for(&self, kid: &str) -> Result<&VerifyingKey, String> {
        match (self.keys.get(kid), &self.unknown) {
            (Some(KeyTrust::Trusted(key)), _) => Ok(key),
            (Some(KeyTrust::Unavailable(reason)), _) | (None, Some(reason)) => Err(reason.clone()),
            (None, None) => Err(format!("key {kid} is not in the key table")),
        }
    }

    /// Checkpoints signed by `kid` prove nothing, for `reason` (reported, not an error).
    pub fn distrust(&mut self, kid: impl Into<String>, reason: impl Into<String>) {
        self.keys
            .insert(kid.into(), KeyTrust::Unavailable(reason.into()));
    }
}

/// What one well-formed checkpoint record proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointStatus {
    /// Signed by a trusted key.
    Verified,
    /// Its key cannot be used to verify it (`reason`), so it proves nothing either way.
    Unverifiable { kid: String, reason: String },
}

/// Checks one `audit.checkpoint` record up to its signature: well formed, explicitly typed,
/// the stored position equal to the signed one, and signed by a trusted key of the named
/// kid. Whether the chain still has the signed hash is the caller's check
/// ([`CheckpointDetail::check_covered`]), since that needs the covered record.
pub fn check_checkpoint_signature(
    record: &AuditRecord,
    keys: &CheckpointKeys,
) -> Result<(CheckpointDetail, CheckpointStatus), CheckpointBreak> {
    let seq = record.seq;
    let malformed = |why: String| CheckpointBreak::Malformed { seq, why };
    let detail = CheckpointDetail::from_record(record)?;
    let decoded = decode(&detail.jws).map_err(|e| malformed(format!("JWS: {e}")))?;
    if decoded.header.typ.as_deref() != Some(CHECKPOINT_JWS_TYP) {
        return Err(malformed(format!(
            "JWS typ is {:?}, not {CHECKPOINT_JWS_TYP}",
            decoded.header.typ
        )));
    }
    if decoded.header.kid.as_deref() != Some(detail.kid.as_str()) {
        return Err(malformed("JWS header names another key".into()));
    }
    let claims = CheckpointClaims::parse(&decoded.claims).map_err(|e| malformed(e.to_string()))?;
    detail.check_claims(seq, &claims)?;
    let status = match (keys.keys.get(&detail.kid), &keys.unknown) {
        (Some(KeyTrust::Trusted(key)), _) => {
            decoded
                .verify(key)
                .map_err(|e| CheckpointBreak::BadSignature {
                    seq,
                    kid: detail.kid.clone(),
                    why: e.to_string(),
                })?;
            CheckpointStatus::Verified
        }
        (Some(KeyTrust::Unavailable(reason)), _) | (None, Some(reason)) => {
            CheckpointStatus::Unverifiable {
                kid: detail.kid.clone(),
                reason: reason.clone(),
            }
        }
        (None, None) => {
            return Err(CheckpointBreak::UnknownKey {
                seq,
                kid: detail.kid.clone(),
            })
        }
    };
    Ok((detail, status))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use portcullis_core::audit::{from_hex, link, AuditEvent, GENESIS_HASH};
    use portcullis_keys::software::SoftwareSigner;
    use portcullis_keys::{Algorithm, Signer};

    use super::*;

    fn signer(alg: Algorithm) -> Arc<dyn Signer> {
        match SoftwareSigner::generate(alg) {
            Ok((signer, _)) => Arc::new(signer),
            Err(e) => panic!("{alg}: {e}"),
        }
    }

    fn verifying(signer: &Arc<dyn Signer>) -> VerifyingKey {
        match VerifyingKey::from_jwk(&signer.public_jwk(), &[signer.algorithm()]) {
            Ok(key) => key,
            Err(e) => panic!("{e}"),
        }
    }

    fn trusting(signer: &Arc<dyn Signer>) -> CheckpointKeys {
        let mut keys = CheckpointKeys::key_table();
        keys.trust(signer.kid().as_str(), verifying(signer));
        keys
    }

    /// Two events and a checkpoint of the second signed by `signer`, as stored.
    fn chain(signer: &Arc<dyn Signer>) -> Vec<AuditRecord> {
        let event = |subject: &str| AuditEvent {
            at: 1_700_000_000,
            actor: "c1".into(),
            action: "token.issued".into(),
            subject: subject.into(),
            outcome: "success".into(),
            detail: serde_json::json!({}),
        };
        let mut recs = link(0, GENESIS_HASH, vec![event("a"), event("b")]);
        let jwt = JwtSigner::new(Arc::clone(signer), "at+jwt");
        let detail = sign_checkpoint(&jwt, &recs[1], 1_700_000_060);
        let Ok(detail) = detail else {
            panic!("signing failed")
        };
        let hash = from_hex(&recs[1].hash).unwrap_or_default();
        recs.extend(link(2, hash, vec![detail.to_event(1_700_000_060)]));
        recs
    }

    fn with_detail(record: &AuditRecord, edit: impl FnOnce(&mut serde_json::Value)) -> AuditRecord {
        let mut record = record.clone();
        edit(&mut record.event.detail);
        record
    }

    #[test]
    fn a_signed_checkpoint_verifies_with_its_key_for_every_algorithm() {
        for alg in Algorithm::ALL {
            let key = signer(alg);
            let recs = chain(&key);
            let checked = check_checkpoint_signature(&recs[2], &trusting(&key));
            let Ok((detail, status)) = checked else {
                panic!("{alg}: {checked:?}")
            };
            assert_eq!(status, CheckpointStatus::Verified, "{alg}");
            assert_eq!(detail.check_covered(3, &recs[1]), Ok(()));
            assert_eq!(detail.kid, key.kid().as_str());
        }
    }

    #[test]
    fn the_checkpoint_jws_is_explicitly_typed_not_an_access_token() {
        let key = signer(Algorithm::ES256);
        let recs = chain(&key);
        let jws = recs[2].event.detail["jws"].as_str().unwrap_or_default();
        let header = decode(jws).map(|d| d.header.typ);
        assert_eq!(header.ok().flatten().as_deref(), Some(CHECKPOINT_JWS_TYP));
    }

    #[test]
    fn another_keys_signature_is_forged() {
        let key = signer(Algorithm::ES256);
        let impostor = signer(Algorithm::ES256);
        let recs = chain(&impostor);
        // The impostor's checkpoint, claiming to be by the trusted kid.
        let mut keys = CheckpointKeys::key_table();
        keys.trust(impostor.kid().as_str(), verifying(&key));
        let result = check_checkpoint_signature(&recs[2], &keys);
        assert!(
            matches!(result, Err(CheckpointBreak::BadSignature { seq: 3, .. })),
            "{result:?}"
        );
        let message = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("record 3") && message.contains("forged"),
            "{message}"
        );
    }

    #[test]
    fn edited_detail_or_payload_is_caught() {
        let key = signer(Algorithm::EdDSA);
        let keys = trusting(&key);
        let recs = chain(&key);
        let cp = &recs[2];
        let first_hash = recs[0].hash.clone();
        // The stored position moved to another record.
        let moved = with_detail(cp, |d| {
            d["seq"] = 1.into();
            d["hash"] = first_hash.clone().into();
        });
        assert!(matches!(
            check_checkpoint_signature(&moved, &keys),
            Err(CheckpointBreak::DetailMismatch { seq: 3, .. })
        ));
        // A payload re-written to match, keeping the old signature.
        let jws = cp.event.detail["jws"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let parts: Vec<&str> = jws.split('.').collect();
        let claims = CheckpointClaims {
            typ: "audit-checkpoint".into(),
            seq: 1,
            hash: first_hash.clone(),
            iat: 1,
        };
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims).unwrap_or_default());
        let resigned = with_detail(&moved, |d| {
            d["jws"] = format!("{}.{payload}.{}", parts[0], parts[2]).into();
        });
        assert!(matches!(
            check_checkpoint_signature(&resigned, &keys),
            Err(CheckpointBreak::BadSignature { seq: 3, .. })
        ));
        // Hostile JWS values.
        for bad in ["", "a.b", "a.b.c", "e30.e30.AA", jws.as_str()] {
            let rec = with_detail(cp, |d| {
                d["jws"] = bad.into();
                d["kid"] = "other".into();
            });
            assert!(
                matches!(
                    check_checkpoint_signature(&rec, &keys),
                    Err(CheckpointBreak::Malformed { seq: 3, .. })
                ),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn an_access_token_by_the_same_key_is_not_a_checkpoint() {
        let key = signer(Algorithm::ES256);
        let recs = chain(&key);
        let token = JwtSigner::new(Arc::clone(&key), "at+jwt")
            .sign(&CheckpointClaims::for_head(&recs[1], 1_700_000_060));
        let rec = with_detail(&recs[2], |d| d["jws"] = token.unwrap_or_default().into());
        assert!(matches!(
            check_checkpoint_signature(&rec, &trusting(&key)),
            Err(CheckpointBreak::Malformed { seq: 3, .. })
        ));
    }

    #[test]
    fn unknown_and_unavailable_keys_are_told_apart() {
        let key = signer(Algorithm::ES256);
        let recs = chain(&key);
        assert!(matches!(
            check_checkpoint_signature(&recs[2], &CheckpointKeys::key_table()),
            Err(CheckpointBreak::UnknownKey { seq: 3, .. })
        ));
        let mut keys = CheckpointKeys::key_table();
        keys.distrust(key.kid().as_str(), "destroyed in the token");
        assert_eq!(
            check_checkpoint_signature(&recs[2], &keys).map(|(_, s)| s),
            Ok(CheckpointStatus::Unverifiable {
                kid: key.kid().as_str().to_owned(),
                reason: "destroyed in the token".into()
            })
        );
        let none = CheckpointKeys::none("no key source");
        assert!(matches!(
            check_checkpoint_signature(&recs[2], &none),
            Ok((_, CheckpointStatus::Unverifiable { .. }))
        ));
    }
}
