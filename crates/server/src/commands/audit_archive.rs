//! `portcullis audit archive --before DATE --out FILE`: moves the oldest audit records into a
//! signed archive segment on the operator's disk (what a segment is and proves:
//! `portcullis_audit::archive`). In this order, so no record is lost if anything fails:
//! the node builds the segment; the CLI writes it (never over an existing file), syncs it,
//! reads it back and verifies it with the node's public keys (saved beside it as
//! `FILE.jwks.json`); only then does it ask the node to remove those records, naming the
//! segment by its signed manifest. If the node refuses (a credential without
//! `portcullis:admin`, a chain that moved on), the files of this run are removed again: they
//! archive records that are still live, and would block the next run's `--out`.

use std::io::{Read, Write};
use std::path::Path;

use portcullis_audit::archive::verify_segment;
use portcullis_audit::CheckpointKeys;

use super::api::{AdminApi, ApiError};
use super::output::print_json;
use super::CommandError;
use crate::cli::ApiArgs;

/// Archives records up to the newest checkpoint before `before` into `out`.
pub fn archive(api: &ApiArgs, before: &str, out: &Path) -> Result<(), CommandError> {
    let before = super::values::parse_time(before).map_err(CommandError::Usage)?;
    let jwks_path = out.with_extension("jwks.json");
    for path in [out, jwks_path.as_path()] {
        if path.exists() {
            return Err(CommandError::Usage(format!(
                "{} exists; archive files are never overwritten",
                path.display()
            )));
        }
    }
    let admin = AdminApi::connect_as_client(api)?;
    let mut segment = Vec::new();
    admin
        .stream(&format!("/admin/v1/audit/archive?before={before}"))?
        .read_to_end(&mut segment)
        .map_err(|e| CommandError::Failed(format!("reading the segment: {e}")))?;
    let jwks_text = admin.call_root("GET", "/jwks.json", None)?.to_string();
    let keys = public_keys(jwks_text.as_bytes(), "the node's /jwks.json")?;
    // Checked before anything is written: a node answering with a problem, or a segment
    // that does not verify, leaves no file behind.
    let report = verify_segment(&segment, &keys)
        .map_err(|e| CommandError::Failed(format!("the node's segment does not verify: {e}")))?;
    // The keys first: a segment is never seen without them.
    write_new(&jwks_path, jwks_text.as_bytes())?;
    write_new(out, &segment)?;
    let written = std::fs::read(out).map_err(|e| io(out, &e))?;
    verify_segment(&written, &keys).map_err(|e| {
        CommandError::Failed(format!(
            "{} does not verify after writing: {e}",
            out.display()
        ))
    })?;
    let m = &report.manifest;
    let manifest = std::str::from_utf8(&written)
        .ok()
        .and_then(|text| text.lines().nth(1))
        .unwrap_or_default();
    let purged = admin
        .call(
            "POST",
            "/audit/archive/purge",
            Some(&serde_json::json!({ "manifest": manifest })),
        )
        .map_err(|e| {
            // Only a refusal (4xx) proves the records are still live; after a lost answer or
            // a server error they may be gone, and the file is then their only copy.
            let refused =
                matches!(&e, ApiError::Problem { status, .. } if (400..500).contains(status));
            if !refused {
                return CommandError::Failed(format!(
                    "{e}; the records may or may not have been removed: keep {} and check \
                     with `portcullis audit verify`",
                    out.display()
                ));
            }
            let removed = [out, jwks_path.as_path()]
                .iter()
                .all(|path| std::fs::remove_file(path).is_ok());
            CommandError::Failed(if removed {
                format!("{e}; no record was removed, and the files of this run were deleted")
            } else {
                format!(
                    "{e}; no record was removed; delete {} and {} before the next run",
                    out.display(),
                    jwks_path.display()
                )
            })
        })?;
    let summary = serde_json::json!({
        "file": out.display().to_string(),
        "jwks": jwks_path.display().to_string(),
        "first_seq": m.first_seq,
        "last_seq": m.last_seq,
        "records": m.records,
        "removed": purged["removed"],
        "checkpoint_verified": report.checkpoint_verified,
    });
    if api.json {
        print_json(&summary);
    } else {
        println!(
            "archived records {}..={} ({} records) to {}; public keys in {}; removed {} from the live store",
            m.first_seq,
            m.last_seq,
            m.records,
            out.display(),
            jwks_path.display(),
            purged["removed"]
        );
        if let Some(why) = report.unverifiable {
            println!("note: the checkpoint's key is not in the current JWKS ({why}); the manifest is signed by a current key");
        }
    }
    Ok(())
}

/// `portcullis audit verify --archive FILE --jwks JWKS`: a segment checked offline.
pub fn verify_file(file: &Path, jwks: &Path, json: bool) -> Result<(), CommandError> {
    let bytes = std::fs::read(file).map_err(|e| io(file, &e))?;
    let jwks_bytes = std::fs::read(jwks).map_err(|e| io(jwks, &e))?;
    let keys = public_keys(&jwks_bytes, &jwks.display().to_string())?;
    let report = verify_segment(&bytes, &keys).map_err(|e| {
        if json {
            print_json(&serde_json::json!({"ok": false, "error": e.to_string()}));
        }
        CommandError::Failed(format!("archive segment BROKEN: {e}"))
    })?;
    let m = &report.manifest;
    if json {
        print_json(&serde_json::json!({
            "ok": true,
            "first_seq": m.first_seq,
            "last_seq": m.last_seq,
            "records": m.records,
            "first_prev_hash": m.first_prev_hash,
            "last_hash": m.last_hash,
            "checkpoint_verified": report.checkpoint_verified,
            "unverifiable": report.unverifiable,
        }));
    } else {
        println!(
            "archive segment intact: records {}..={} ({}), signed manifest verified, chain linked from {}",
            m.first_seq, m.last_seq, m.records, m.first_prev_hash
        );
        match report.unverifiable {
            None => println!("checkpoint over record {} verified", m.last_seq),
            Some(why) => {
                println!("warning: the checkpoint's signature could not be checked: {why}")
            }
        }
    }
    Ok(())
}

/// Every signing key of a JWKS, trusted (a kid it lacks is unverifiable, not forged).
pub fn public_keys(jwks: &[u8], what: &str) -> Result<CheckpointKeys, CommandError> {
    CheckpointKeys::from_jwks(jwks, what).map_err(CommandError::Usage)
}

/// Writes `bytes` to a file that must not exist yet, and syncs it.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), CommandError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| io(path, &e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io(path, &e))
}

fn io(path: &Path, e: &std::io::Error) -> CommandError {
    CommandError::Failed(format!("{}: {e}", path.display()))
}
