//! `portcullis audit verify --store-url URL [--jwks FILE]`: verification of a store (or a
//! copy of it) with no node, no master key and no audit data key. The hash chain and the
//! checkpoints cover the stored ciphertext, so an auditor who cannot read a record can still
//! prove that none was edited, removed or reordered; checkpoint signatures are checked
//! against the public keys of a JWKS (the node's `/jwks`, saved) when one is given.

use std::path::Path;

use portcullis_audit::{verify_chain, AuditError, ChainReport, CheckpointKeys};

use super::{CommandError, StoreArg};

/// Verifies the chain in `store`; checkpoints against `jwks` if given.
pub async fn verify(
    store: &StoreArg<'_>,
    jwks: Option<&Path>,
) -> Result<serde_json::Value, CommandError> {
    let keys = match jwks {
        Some(path) => checkpoint_keys(path)?,
        None => CheckpointKeys::none(
            "no --jwks given: checkpoints were matched against the chain, their signatures not checked",
        ),
    };
    let store = store.open().await?;
    match verify_chain(store.as_ref(), &keys).await {
        Ok(report) => Ok(report_json(&report)),
        Err(AuditError::Broken(b)) => Err(CommandError::Failed(format!("audit chain BROKEN: {b}"))),
        Err(e) => Err(CommandError::Failed(e.to_string())),
    }
}

/// Trusts every signing key of the JWKS at `path` (a key the set lacks makes its
/// checkpoints unverifiable, not broken: it may have been removed since).
fn checkpoint_keys(path: &Path) -> Result<CheckpointKeys, CommandError> {
    let text = std::fs::read(path)
        .map_err(|e| CommandError::Usage(format!("--jwks {}: {e}", path.display())))?;
    super::audit_archive::public_keys(&text, &path.display().to_string())
}

/// The same members `POST /admin/v1/audit/verify` answers with.
pub fn report_json(report: &ChainReport) -> serde_json::Value {
    let checkpoints = &report.checkpoints;
    serde_json::json!({
        "ok": true,
        "records": report.records,
        "last_seq": report.last_seq,
        "checkpoints_verified": checkpoints.verified,
        "checkpoints_unverifiable": checkpoints.unverifiable,
        "unverifiable_keys": checkpoints.unverifiable_keys.iter()
            .map(|(kid, reason)| serde_json::json!({"kid": kid, "reason": reason}))
            .collect::<Vec<_>>(),
        "last_checkpoint_seq": checkpoints.last_seq,
        "records_after_checkpoint": report.records_after_checkpoint(),
        "archived_through": report.archived_through,
        "anchor_verified": report.anchor_verified,
    })
}
