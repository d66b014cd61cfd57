//! Fuzzes the reading of a stored audit checkpoint: the record's `detail` and the JWS in it are
//! whatever the database holds, and `portcullis audit verify` exists for the day someone else
//! wrote it. Any input must give a checkpoint or a clean `CheckpointBreak`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::audit::{AuditEvent, AuditRecord};
use portcullis_core::audit_checkpoint::{CheckpointClaims, CheckpointDetail, CHECKPOINT_ACTION};

fuzz_target!(|bytes: &[u8]| {
    let _ = CheckpointClaims::parse(bytes);
    let Ok(detail) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return;
    };
    let record = AuditRecord {
        seq: 1_000,
        event: AuditEvent {
            at: 0,
            actor: "system".into(),
            action: CHECKPOINT_ACTION.into(),
            subject: "audit".into(),
            outcome: "success".into(),
            detail,
        },
        prev_hash: "00".repeat(32),
        hash: "00".repeat(32),
    };
    if let Ok(checkpoint) = CheckpointDetail::from_record(&record) {
        assert!(checkpoint.seq >= 1 && checkpoint.seq < record.seq);
        if let Ok(decoded) = portcullis_keys::decode(&checkpoint.jws) {
            if let Ok(claims) = CheckpointClaims::parse(&decoded.claims) {
                let _ = checkpoint.check_claims(record.seq, &claims);
            }
        }
    }
});
