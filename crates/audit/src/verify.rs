//! Checks the whole audit hash chain, a page at a time, so a log of millions of records is
//! verified in constant memory, and every signed checkpoint in it against the chain.

use portcullis_core::audit::{from_hex, AuditRecord, ChainBreak, ChainVerifier};
use portcullis_core::audit_checkpoint::{is_checkpoint, CheckpointBreak, CheckpointDetail};
use portcullis_store::Store;

use crate::checkpoint::{check_checkpoint_signature, CheckpointKeys, CheckpointStatus};
use crate::AuditError;

/// Records fetched per page: large enough that round trips do not dominate, small enough to
/// keep memory flat.
const PAGE_SIZE: u32 = 10_000;

/// Distinct keys of unverifiable checkpoints listed in a report at most.
const MAX_UNVERIFIABLE_KIDS: usize = 16;

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Records checked.
    pub records: u64,
    /// Sequence number of the last record (0 for an empty log).
    pub last_seq: i64,
    /// What the signed checkpoints in the chain proved.
    pub checkpoints: CheckpointReport,
    /// The last archived record when older records went to archive segments (0: none): the
    /// chain was checked from there.
    pub archived_through: i64,
    /// Whether a verified checkpoint in the live chain signs the archive anchor (so the
    /// removed records are those of the archive segment, not a cut someone made).
    pub anchor_verified: bool,
}

impl ChainReport {
    /// Records no verified checkpoint covers: everything after the newest one's record (so
    /// at least that checkpoint's own record). Only a copy kept outside the database (the
    /// operational log) shows whether records were removed from this tail.
    pub fn records_after_checkpoint(&self) -> u64 {
        u64::try_from(self.last_seq - self.checkpoints.last_seq).unwrap_or(0)
    }
}

/// The checkpoint part of a [`ChainReport`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    /// Checkpoints whose signature verified and whose hash matches the chain.
    pub verified: u64,
    /// Checkpoints whose key could not be used (kept by the custody no longer, revoked as
    /// compromised, or no key source given): consistent with the chain, but proving nothing.
    pub unverifiable: u64,
    /// The keys of those, each once, with the reason (at most 16).
    pub unverifiable_keys: Vec<(String, String)>,
    /// The record the newest verified checkpoint covers (0 when none).
    pub last_seq: i64,
}

impl CheckpointReport {
    fn count(&mut self, detail: &CheckpointDetail, status: CheckpointStatus) {
        match status {
            CheckpointStatus::Verified => {
                self.verified += 1;
                self.last_seq = self.last_seq.max(detail.seq);
            }
            CheckpointStatus::Unverifiable { kid, reason } => {
                self.unverifiable += 1;
                if self.unverifiable_keys.len() < MAX_UNVERIFIABLE_KIDS
                    && !self.unverifiable_keys.iter().any(|(k, _)| *k == kid)
                {
                    self.unverifiable_keys.push((kid, reason));
                }
            }
        }
    }
}

/// Verifies every record from the first, and every checkpoint (signature with `keys`, signed
/// hash against the chain); the first break found is returned as [`AuditError::Broken`].
/// Removing records from the end cannot be seen from the chain alone: compare `last_seq`
/// with a checkpoint logged outside the database for that.
///
/// Verification ends at the newest record when it starts: a record appended meanwhile may be
/// a checkpoint signed by a key created after `keys` was loaded.
pub async fn verify_chain(
    store: &dyn Store,
    keys: &CheckpointKeys,
) -> Result<ChainReport, AuditError> {
    let end = store
        .list_audit_desc(i64::MAX, 1)
        .await?
        .first()
        .map_or(0, |head| head.seq);
    let anchor = store.audit_anchor().await?;
    let mut verifier = match &anchor {
        Some(anchor) => {
            let hash = from_hex(&anchor.hash).ok_or_else(|| {
                AuditError::Broken(ChainBreak::Checkpoint(CheckpointBreak::Malformed {
                    seq: anchor.seq,
                    why: "the archive anchor's hash is not hex".into(),
                }))
            })?;
            ChainVerifier::after(anchor.seq, hash)
        }
        None => ChainVerifier::default(),
    };
    let anchor_seq = anchor.as_ref().map_or(0, |a| a.seq);
    let mut anchor_covered = false;
    let mut anchor_verified = false;
    let mut checkpoints = CheckpointReport::default();
    let mut last_seq = anchor_seq;
    while last_seq < end {
        let mut page = store.list_audit(last_seq, PAGE_SIZE).await?;
        page.retain(|record| record.seq <= end);
        let Some(last) = page.last() else { break };
        for (i, record) in page.iter().enumerate() {
            verifier.check(record)?;
            if is_checkpoint(&record.event) {
                let (detail, status) = check_checkpoint_signature(record, keys)
                    .map_err(|b| AuditError::Broken(b.into()))?;
                match (&anchor, detail.seq.cmp(&anchor_seq)) {
                    // It signs the anchor: the hash must be the anchor's.
                    (Some(anchor), std::cmp::Ordering::Equal) => {
                        if detail.hash != anchor.hash {
                            return Err(AuditError::Broken(ChainBreak::Checkpoint(
                                CheckpointBreak::Malformed {
                                    seq: record.seq,
                                    why: format!(
                                        "it signs record {} with another hash than the archive anchor",
                                        anchor.seq
                                    ),
                                },
                            )));
                        }
                        anchor_covered = true;
                        anchor_verified |= status == CheckpointStatus::Verified;
                    }
                    // It signs an archived record: its archive segment holds the proof.
                    (Some(_), std::cmp::Ordering::Less) => {}
                    _ => {
                        let covered = covered_record(
                            store,
                            page.get(..i).unwrap_or_default(),
                            &detail,
                            record.seq,
                        )
                        .await?;
                        detail
                            .check_covered(record.seq, &covered)
                            .map_err(|b| AuditError::Broken(b.into()))?;
                    }
                }
                checkpoints.count(&detail, status);
            }
        }
        last_seq = last.seq;
    }
    if let Some(anchor) = &anchor {
        if !anchor_covered && end > anchor.seq {
            return Err(AuditError::Broken(ChainBreak::Checkpoint(
                CheckpointBreak::Malformed {
                    seq: anchor.seq,
                    why: "no checkpoint in the live chain signs the archive anchor".into(),
                },
            )));
        }
    }
    Ok(ChainReport {
        records: verifier.count,
        last_seq,
        checkpoints,
        archived_through: anchor_seq,
        anchor_verified,
    })
}

/// The record `detail` covers, already verified as part of the chain: from the records of
/// this page before the checkpoint (`earlier`, contiguous), else read again from the store.
async fn covered_record(
    store: &dyn Store,
    earlier: &[AuditRecord],
    detail: &CheckpointDetail,
    checkpoint_seq: i64,
) -> Result<AuditRecord, AuditError> {
    let in_page = earlier
        .first()
        .and_then(|first| usize::try_from(detail.seq - first.seq).ok())
        .and_then(|i| earlier.get(i));
    if let Some(record) = in_page {
        return Ok(record.clone());
    }
    store
        .list_audit(detail.seq - 1, 1)
        .await?
        .into_iter()
        .find(|r| r.seq == detail.seq)
        .ok_or_else(|| {
            AuditError::Broken(ChainBreak::Checkpoint(CheckpointBreak::Malformed {
                seq: checkpoint_seq,
                why: format!("covered record {} is not in the chain", detail.seq),
            }))
        })
}
