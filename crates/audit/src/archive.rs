//! Archive segments: old audit records moved out of the live store without losing proof.
//!
//! A segment holds records `first..=last` exactly as stored (ciphertext included: archiving
//! needs no audit data key, and reading the archive later needs the key as the live trail
//! does), and the signed checkpoint that covers `last`. The live store keeps that checkpoint
//! and records an anchor (`last`, its hash) before deleting the segment's records, so
//! `audit verify` proves the live chain from the anchor and the checkpoint proves the anchor.
//!
//! The file is text, one item per line, so any changed byte shows:
//!
//! ```text
//! portcullis-audit-archive/1
//! <manifest: a JWS signed by the token-signing key, typ audit-archive+jwt>
//! <the checkpoint record, JSON>
//! <record first, JSON>
//! ...
//! <record last, JSON>
//! ```
//!
//! The manifest states the range, the first record's `prev_hash` (where it links to the
//! segment before), the last hash, the checkpoint's seq and the SHA-256 of every byte after
//! the manifest line. [`verify_segment`] checks all of it with public keys only.

use portcullis_core::audit::{from_hex, AuditRecord, ChainVerifier};
use portcullis_core::audit_checkpoint::{is_checkpoint, CheckpointDetail};
use portcullis_keys::{decode, JwtSigner};
use portcullis_store::{AuditArchiveAnchor, Store};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::checkpoint::{check_checkpoint_signature, CheckpointKeys, CheckpointStatus};
use crate::AuditError;

/// The first line of every segment.
pub const MAGIC: &str = "portcullis-audit-archive/1";
/// The manifest's JWS `typ`.
pub const MANIFEST_TYP: &str = "audit-archive+jwt";
/// Records per segment at most (a segment is built in memory).
pub const MAX_SEGMENT_RECORDS: i64 = 1_000_000;
const PAGE: u32 = 10_000;

/// What the manifest signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveManifest {
    pub first_seq: i64,
    pub last_seq: i64,
    /// The first record's `prev_hash`: the previous segment's last hash (or the genesis).
    pub first_prev_hash: String,
    pub last_hash: String,
    /// The checkpoint record that signs `last_hash`.
    pub checkpoint_seq: i64,
    pub records: u64,
    /// SHA-256 (hex) of every byte after the manifest line.
    pub body_sha256: String,
    pub created_at: i64,
}

/// A built segment: its manifest and the file's bytes.
#[derive(Debug, Clone)]
pub struct Segment {
    pub manifest: ArchiveManifest,
    pub bytes: Vec<u8>,
}

impl Segment {
    /// SHA-256 (hex) of the whole file.
    pub fn sha256(&self) -> String {
        portcullis_core::hex::encode(&Sha256::digest(&self.bytes))
    }
}

/// What a verified segment proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    pub manifest: ArchiveManifest,
    /// Whether the checkpoint's signature verified with the given keys (else it is
    /// unverifiable with them, and the report says why).
    pub checkpoint_verified: bool,
    pub unverifiable: Option<String>,
}

fn broken(why: impl Into<String>) -> AuditError {
    AuditError::Archive(why.into())
}

/// Builds the segment of the oldest live records, up to the newest record that a checkpoint
/// taken before `before` signs (so the segment carries its own proof) and no further than
/// record `through` (what every export has delivered: [`crate::export::delivered_through`]);
/// `None` when no such checkpoint exists. Refuses to archive a chain that does not verify.
pub async fn build_segment(
    store: &dyn Store,
    signer: &JwtSigner,
    before: i64,
    through: i64,
    now: i64,
) -> Result<Option<Segment>, AuditError> {
    let anchor = store.audit_anchor().await?;
    let start = anchor.as_ref().map_or(0, |a| a.seq);
    // Find the newest usable checkpoint: recorded before `before`, covering a live record.
    let mut after = start;
    let mut chosen: Option<(AuditRecord, CheckpointDetail)> = None;
    'scan: loop {
        let page = store.list_audit(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in page {
            if record.event.at >= before {
                break 'scan;
            }
            if !is_checkpoint(&record.event) {
                continue;
            }
            let detail =
                CheckpointDetail::from_record(&record).map_err(|b| AuditError::Broken(b.into()))?;
            if detail.seq > start
                && detail.seq <= through
                && detail.seq - start <= MAX_SEGMENT_RECORDS
            {
                chosen = Some((record, detail));
            }
        }
    }
    let Some((checkpoint, detail)) = chosen else {
        return Ok(None);
    };
    let verifier = match &anchor {
        Some(a) => ChainVerifier::after(
            a.seq,
            from_hex(&a.hash).ok_or_else(|| broken("the archive anchor's hash is not hex"))?,
        ),
        None => ChainVerifier::default(),
    };
    let Some(body) = segment_body(store, start, verifier, &checkpoint, &detail).await? else {
        return Ok(None);
    };
    let (first, last) = (body.first, body.last);
    let manifest = ArchiveManifest {
        first_seq: first.seq,
        last_seq: last.seq,
        first_prev_hash: first.prev_hash,
        last_hash: last.hash,
        checkpoint_seq: checkpoint.seq,
        records: body.records,
        body_sha256: portcullis_core::hex::encode(&Sha256::digest(&body.bytes)),
        created_at: now,
    };
    let jws = signer
        .with_typ(MANIFEST_TYP)
        .sign(&manifest)
        .map_err(|e| broken(format!("signing the manifest: {e}")))?;
    let mut bytes = Vec::with_capacity(body.bytes.len() + jws.len() + MAGIC.len() + 2);
    bytes.extend_from_slice(MAGIC.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(jws.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(&body.bytes);
    Ok(Some(Segment { manifest, bytes }))
}

/// A segment's body (everything after the manifest line) as read from the live store.
struct SegmentBody {
    bytes: Vec<u8>,
    first: AuditRecord,
    last: AuditRecord,
    records: u64,
}

/// Reads the body of the segment that ends at the record `detail` signs: the checkpoint
/// record, then every live record after `start` up to it, each checked by `verifier`. The
/// same records always give the same bytes, which lets a purge check a segment it did not
/// keep ([`anchor_for_purge`]). `None` when no live record is in that range.
async fn segment_body(
    store: &dyn Store,
    start: i64,
    mut verifier: ChainVerifier,
    checkpoint: &AuditRecord,
    detail: &CheckpointDetail,
) -> Result<Option<SegmentBody>, AuditError> {
    let mut bytes = Vec::new();
    serde_json::to_writer(&mut bytes, checkpoint).map_err(|e| broken(e.to_string()))?;
    bytes.push(b'\n');
    let (mut first, mut last): (Option<AuditRecord>, Option<AuditRecord>) = (None, None);
    let mut after = start;
    while after < detail.seq {
        let page = store.list_audit(after, PAGE).await?;
        let Some(tail) = page.last() else { break };
        after = tail.seq;
        for record in page.into_iter().filter(|r| r.seq <= detail.seq) {
            verifier.check(&record)?;
            serde_json::to_writer(&mut bytes, &record).map_err(|e| broken(e.to_string()))?;
            bytes.push(b'\n');
            if first.is_none() {
                first = Some(record.clone());
            }
            last = Some(record);
        }
    }
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(None);
    };
    if last.seq != detail.seq || last.hash != detail.hash {
        return Err(broken(format!(
            "checkpoint {} signs record {} with another hash than the chain holds",
            checkpoint.seq, detail.seq
        )));
    }
    Ok(Some(SegmentBody {
        bytes,
        first,
        last,
        records: verifier.count,
    }))
}

/// The anchor for purging the segment whose signed manifest line is `manifest_jws`, checked
/// against the live store rather than believed: the manifest must verify with `keys` (this
/// node's), and the live records it names — from the chain's current start — must hash to
/// its `body_sha256`. The file's SHA-256 is then computed here, from the magic line, the
/// manifest and that body. So removing records takes a segment this deployment built and
/// signed over exactly those records (`GET /audit/archive`, which needs `audit:read`), not
/// numbers anyone could type.
pub async fn anchor_for_purge(
    store: &dyn Store,
    manifest_jws: &str,
    keys: &CheckpointKeys,
    now: i64,
) -> Result<AuditArchiveAnchor, AuditError> {
    let manifest = open_manifest(manifest_jws, keys)?;
    let start = store.audit_anchor().await?.map_or(0, |a| a.seq);
    if manifest.first_seq != start + 1 {
        return Err(broken(format!(
            "the live chain starts at record {}, not at the segment's first record {}",
            start + 1,
            manifest.first_seq
        )));
    }
    let checkpoint = store
        .list_audit(manifest.checkpoint_seq - 1, 1)
        .await?
        .into_iter()
        .find(|r| r.seq == manifest.checkpoint_seq)
        .ok_or_else(|| broken("the segment's checkpoint is not in the live chain"))?;
    let detail =
        CheckpointDetail::from_record(&checkpoint).map_err(|b| AuditError::Broken(b.into()))?;
    let start_hash =
        from_hex(&manifest.first_prev_hash).ok_or_else(|| broken("first_prev_hash is not hex"))?;
    let verifier = ChainVerifier::after(start, start_hash);
    let body = segment_body(store, start, verifier, &checkpoint, &detail)
        .await?
        .filter(|b| {
            portcullis_core::hex::encode(&Sha256::digest(&b.bytes)) == manifest.body_sha256
                && b.last.seq == manifest.last_seq
                && b.last.hash == manifest.last_hash
        })
        .ok_or_else(|| broken("the live records are not those the segment's manifest signed"))?;
    let mut file = Sha256::new();
    for part in [MAGIC.as_bytes(), b"\n", manifest_jws.as_bytes(), b"\n"] {
        file.update(part);
    }
    file.update(&body.bytes);
    Ok(AuditArchiveAnchor {
        seq: manifest.last_seq,
        hash: manifest.last_hash,
        first_seq: manifest.first_seq,
        checkpoint_seq: manifest.checkpoint_seq,
        segment_sha256: portcullis_core::hex::encode(&file.finalize()),
        archived_at: now,
    })
}

/// A manifest line whose signature verifies with `keys`, and what it says.
fn open_manifest(jws: &str, keys: &CheckpointKeys) -> Result<ArchiveManifest, AuditError> {
    let decoded = decode(jws).map_err(|e| broken(format!("manifest: {e}")))?;
    if decoded.header.typ.as_deref() != Some(MANIFEST_TYP) {
        return Err(broken(format!("manifest typ is not {MANIFEST_TYP}")));
    }
    let kid = decoded
        .header
        .kid
        .clone()
        .ok_or_else(|| broken("the manifest names no key"))?;
    let key = keys
        .key_for(&kid)
        .map_err(|why| broken(format!("manifest key {kid}: {why}")))?;
    decoded
        .verify(key)
        .map_err(|e| broken(format!("manifest signature: {e}")))?;
    serde_json::from_slice(&decoded.claims).map_err(|e| broken(format!("manifest claims: {e}")))
}

/// Removes the records of an archived segment from the live store, keeping `anchor` so the
/// chain stays provable from it. Refuses unless the checkpoint the segment carries is in the
/// live chain and signs exactly the anchor's record and hash (the store itself refuses unless
/// the live chain starts at `anchor.first_seq`). Returns how many records were removed.
pub async fn purge(store: &dyn Store, anchor: &AuditArchiveAnchor) -> Result<u64, AuditError> {
    let checkpoint = store
        .list_audit(anchor.checkpoint_seq - 1, 1)
        .await?
        .into_iter()
        .find(|r| r.seq == anchor.checkpoint_seq)
        .and_then(|r| CheckpointDetail::from_record(&r).ok())
        .filter(|d| d.seq == anchor.seq && d.hash == anchor.hash);
    if checkpoint.is_none() {
        return Err(broken(format!(
            "record {} is not a checkpoint over record {} with that hash",
            anchor.checkpoint_seq, anchor.seq
        )));
    }
    Ok(store.archive_audit(anchor).await?)
}

/// Verifies a segment file offline: the manifest's signature with `keys`, the body's hash,
/// every record's chain link and hash from `first_prev_hash`, and the checkpoint's signature
/// over the last record.
pub fn verify_segment(bytes: &[u8], keys: &CheckpointKeys) -> Result<SegmentReport, AuditError> {
    let text = std::str::from_utf8(bytes).map_err(|_| broken("the archive is not UTF-8 text"))?;
    let (magic, rest) = text
        .split_once('\n')
        .ok_or_else(|| broken("the archive has no manifest"))?;
    if magic != MAGIC {
        return Err(broken(format!(
            "not an archive segment (first line is not {MAGIC})"
        )));
    }
    let (jws, body) = rest
        .split_once('\n')
        .ok_or_else(|| broken("the archive has no records"))?;
    let manifest = open_manifest(jws, keys)?;
    if portcullis_core::hex::encode(&Sha256::digest(body.as_bytes())) != manifest.body_sha256 {
        return Err(broken(
            "the records are not those the manifest signed (changed bytes)",
        ));
    }
    let mut lines = body.lines();
    let checkpoint: AuditRecord = lines
        .next()
        .ok_or_else(|| broken("the archive has no checkpoint"))
        .and_then(|l| serde_json::from_str(l).map_err(|e| broken(format!("checkpoint: {e}"))))?;
    let start_hash =
        from_hex(&manifest.first_prev_hash).ok_or_else(|| broken("first_prev_hash is not hex"))?;
    let mut verifier = ChainVerifier::after(manifest.first_seq - 1, start_hash);
    let mut last: Option<AuditRecord> = None;
    for (i, line) in lines.enumerate() {
        let record: AuditRecord = serde_json::from_str(line)
            .map_err(|e| broken(format!("record line {}: {e}", i + 4)))?;
        verifier.check(&record)?;
        last = Some(record);
    }
    let last = last.ok_or_else(|| broken("the archive holds no records"))?;
    if last.seq != manifest.last_seq
        || last.hash != manifest.last_hash
        || verifier.count != manifest.records
    {
        return Err(broken("the records end elsewhere than the manifest says"));
    }
    if checkpoint.seq != manifest.checkpoint_seq {
        return Err(broken("the checkpoint is not the one the manifest names"));
    }
    let (detail, status) =
        check_checkpoint_signature(&checkpoint, keys).map_err(|b| AuditError::Broken(b.into()))?;
    detail
        .check_covered(checkpoint.seq, &last)
        .map_err(|b| AuditError::Broken(b.into()))?;
    let (checkpoint_verified, unverifiable) = match status {
        CheckpointStatus::Verified => (true, None),
        CheckpointStatus::Unverifiable { kid, reason } => (false, Some(format!("{kid}: {reason}"))),
    };
    Ok(SegmentReport {
        manifest,
        checkpoint_verified,
        unverifiable,
    })
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
