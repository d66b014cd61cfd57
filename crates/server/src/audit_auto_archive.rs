//! Automatic audit archiving (`[audit] archive_after_days`), a leader-only job: every
//! `archive_interval_secs` the holder of the `audit-archive` lease moves the records older
//! than the configured age into signed segments in `archive_dir`, exactly as
//! `portcullis audit archive` does by hand (what a segment proves:
//! `portcullis_audit::archive`).
//!
//! Nothing is removed before its segment is safely on disk: the job builds the segment,
//! writes it to a temporary file, syncs it, links it to its final name (which fails if the
//! name exists, so two nodes, or a run after a crash, never overwrite a segment), syncs the
//! directory, reads it back and verifies it with the published keys, and only then asks the
//! store to purge the records (which refuses if the chain no longer starts where the segment
//! does). A segment left by a run that crashed before its purge is verified and used as is.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portcullis_audit::archive::{build_segment, purge, verify_segment, ArchiveManifest};
use portcullis_audit::{AuditLog, CheckpointKeys};
use portcullis_core::audit::{AuditAction, AuditEvent, Outcome};
use portcullis_keys::KeyRing;
use portcullis_store::{AuditArchiveAnchor, Store};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use crate::bootstrap::unix_now;
use crate::serve_error::ArchiveJobError;

/// The lease that makes one node archive.
const ARCHIVE_LEASE: &str = "audit-archive";
/// Long enough to cover one run over a full segment (a million records), so a slow run
/// keeps its lease; a dead holder's job moves to another node after this.
const MIN_LEASE_SECS: u64 = 300;
/// Segments one run writes at most (each up to a million records); the rest waits a tick.
const MAX_SEGMENTS_PER_RUN: usize = 16;

/// What one node needs to archive automatically.
#[derive(Clone)]
pub struct ArchiveJob {
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyRing>,
    pub audit: AuditLog,
    pub node_id: String,
    /// Records older than this many seconds are archived.
    pub after_secs: i64,
    pub dir: PathBuf,
    pub interval: Duration,
    /// The exports whose undelivered records must stay live.
    pub exports: Arc<[(String, portcullis_audit::export::StartAt)]>,
}

impl ArchiveJob {
    /// The job `[audit]` asks for, if any.
    pub fn configured(
        config: &crate::config::Config,
        store: &Arc<dyn Store>,
        keys: &Arc<KeyRing>,
        audit: &AuditLog,
        node_id: &str,
    ) -> Option<ArchiveJob> {
        let days = config.audit.archive_after_days?;
        // Validated to (0, 36500]: the product fits an i64 of seconds.
        #[allow(clippy::cast_possible_truncation)]
        let after_secs = (days * 86_400.0).ceil() as i64;
        Some(ArchiveJob {
            store: Arc::clone(store),
            keys: Arc::clone(keys),
            audit: audit.clone(),
            node_id: node_id.to_owned(),
            after_secs,
            dir: config.audit_archive_dir(),
            interval: Duration::from_secs(config.audit.archive_interval_secs),
            exports: config.audit_exports(),
        })
    }

    /// Starts the job on its own task.
    pub fn spawn(self) -> JoinHandle<()> {
        tracing::info!(
            dir = %self.dir.display(),
            after_secs = self.after_secs,
            "audit records are archived automatically"
        );
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for _ in 0..MAX_SEGMENTS_PER_RUN {
                match self.archive_once().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "automatic audit archiving failed; will retry");
                        break;
                    }
                }
            }
        }
    }

    fn lease_secs(&self) -> i64 {
        let secs = (self.interval.as_secs() * 3).max(MIN_LEASE_SECS);
        i64::try_from(secs).unwrap_or(i64::MAX)
    }

    /// Archives the oldest segment of records past the age, if this node holds the lease and
    /// a checkpoint old enough covers some; returns its manifest.
    pub async fn archive_once(&self) -> Result<Option<ArchiveManifest>, ArchiveJobError> {
        let now = unix_now();
        let leader = self
            .store
            .try_acquire_lease(ARCHIVE_LEASE, &self.node_id, self.lease_secs(), now)
            .await
            .map_err(ArchiveJobError::Lease)?;
        if !leader {
            return Ok(None);
        }
        self.audit.flush().await;
        let before = now.saturating_sub(self.after_secs);
        let held = portcullis_audit::export::delivered_through(self.store.as_ref(), &self.exports)
            .await
            .map_err(portcullis_audit::AuditError::from)?;
        let through = held.as_ref().map_or(i64::MAX, |(seq, _)| *seq);
        let Some(segment) = build_segment(
            self.store.as_ref(),
            &self.keys.active(),
            before,
            through,
            now,
        )
        .await?
        else {
            if let Some((seq, export)) = held {
                tracing::debug!(export = %export, delivered_through = seq,
                    "automatic audit archiving waits for an export");
            }
            return Ok(None);
        };
        let keys = CheckpointKeys::from_jwks(self.keys.jwks_json().as_bytes(), "the node's JWKS")
            .map_err(ArchiveJobError::Verify)?;
        // The segment must verify before it is written (a broken one leaves no file), and
        // what is on disk must verify before anything is removed.
        verify_segment(&segment.bytes, &keys)
            .map_err(|e| ArchiveJobError::Verify(e.to_string()))?;
        let portcullis_audit::archive::Segment { manifest: m, bytes } = segment;
        let path = self.dir.join(format!(
            "audit-{:012}-{:012}.archive",
            m.first_seq, m.last_seq
        ));
        let jwks = self.keys.jwks_json();
        let write = |set_aside_first: bool| {
            let (dir, path, bytes, jwks) =
                (self.dir.clone(), path.clone(), bytes.clone(), jwks.clone());
            async move {
                tokio::task::spawn_blocking(move || {
                    if set_aside_first {
                        set_aside(&path, now)?;
                    }
                    write_segment(&dir, &path, &bytes, jwks.as_bytes())
                })
                .await
                .map_err(|e| ArchiveJobError::Write(format!("writer task: {e}")))?
            }
        };
        let mut written = write(false).await?;
        let mut checked = verify_segment(&written, &keys);
        if checked.is_err() && written != bytes {
            // An earlier run's segment that does not verify with today's keys (its signing
            // key left the JWKS since, or the file is damaged): nothing was purged with it
            // (a purge follows only a verified segment), so the live chain still holds every
            // record it covers. Kept aside for inspection; this run's segment replaces it.
            tracing::warn!(file = %path.display(),
                "an archive segment left by an earlier run does not verify with the node's keys; set aside and written again");
            written = write(true).await?;
            checked = verify_segment(&written, &keys);
        }
        let on_disk = checked
            .map_err(|e| ArchiveJobError::Verify(format!("{}: {e}", path.display())))?
            .manifest;
        if (on_disk.first_seq, on_disk.last_seq, &on_disk.last_hash)
            != (m.first_seq, m.last_seq, &m.last_hash)
        {
            return Err(ArchiveJobError::Verify(format!(
                "{} holds records {}..={}, not {}..={}",
                path.display(),
                on_disk.first_seq,
                on_disk.last_seq,
                m.first_seq,
                m.last_seq
            )));
        }
        let anchor = AuditArchiveAnchor {
            seq: on_disk.last_seq,
            hash: on_disk.last_hash.clone(),
            first_seq: on_disk.first_seq,
            checkpoint_seq: on_disk.checkpoint_seq,
            segment_sha256: portcullis_core::hex::encode(&Sha256::digest(&written)),
            archived_at: now,
        };
        let removed = purge(self.store.as_ref(), &anchor).await?;
        tracing::info!(
            file = %path.display(),
            first_seq = anchor.first_seq,
            last_seq = anchor.seq,
            removed,
            "audit records archived"
        );
        self.audit
            .commit(AuditEvent {
                at: now,
                actor: "system".to_owned(),
                action: AuditAction::AuditArchived.into(),
                subject: format!("{}-{}", anchor.first_seq, anchor.seq),
                outcome: Outcome::Success.into(),
                detail: serde_json::json!({
                    "first_seq": anchor.first_seq,
                    "last_seq": anchor.seq,
                    "removed": removed,
                    "segment_sha256": anchor.segment_sha256,
                    "file": path.display().to_string(),
                    "automatic": true,
                }),
            })
            .await?;
        Ok(Some(on_disk))
    }
}

/// Puts `bytes` at `path` unless a segment is already there, and the public keys beside it
/// (`.jwks.json`); returns the bytes now at `path` (the existing segment's, if there was one).
fn write_segment(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    jwks: &[u8],
) -> Result<Vec<u8>, ArchiveJobError> {
    let io =
        |what: &Path, e: std::io::Error| ArchiveJobError::Write(format!("{}: {e}", what.display()));
    create_private_dir(dir).map_err(|e| io(dir, e))?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    write_new(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    // The keys beside a segment are those of the run that wrote it, and they are in place
    // before the segment appears: whoever sees a segment finds its keys.
    let jwks_path = path.with_extension("jwks.json");
    let put_keys = || {
        let tmp = jwks_path.with_extension(format!("tmp-{}", std::process::id()));
        let put = write_new(&tmp, jwks).and_then(|()| std::fs::rename(&tmp, &jwks_path));
        if put.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        put.map_err(|e| io(&jwks_path, e))
    };
    if !path.exists() {
        if let Err(e) = put_keys() {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    }
    // A hard link never replaces an existing name: a segment already there (another node's,
    // or this one's before a crash) is kept and read back instead, with its keys (written
    // now only if that run left none).
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if !jwks_path.exists() {
                put_keys()?;
            }
        }
        Err(e) => return Err(io(path, e)),
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))?;
    std::fs::read(path).map_err(|e| io(path, e))
}

/// Renames the segment at `path` and the keys beside it to names no tool reads as a segment
/// (`.archive.unverifiable-<now>`), so a fresh one can take its name.
fn set_aside(path: &Path, now: i64) -> Result<(), ArchiveJobError> {
    for (from, ext) in [
        (path.to_owned(), "archive"),
        (path.with_extension("jwks.json"), "jwks.json"),
    ] {
        let to = path.with_extension(format!("{ext}.unverifiable-{now}"));
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && ext != "archive" => {}
            Err(e) => {
                return Err(ArchiveJobError::Write(format!(
                    "setting {} aside: {e}",
                    from.display()
                )))
            }
        }
    }
    Ok(())
}

/// Writes and syncs a new file readable by its owner only.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_already_on_disk_is_kept_and_read_back_rather_than_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("archive");
        let path = dir.join("audit-000000000001-000000000009.archive");
        let first = write_segment(&dir, &path, b"first run", b"{\"keys\":[1]}").unwrap();
        assert_eq!(first, b"first run");
        // A second writer (another node, or this one after a crash before the purge).
        let second = write_segment(&dir, &path, b"second run", b"{\"keys\":[2]}").unwrap();
        assert_eq!(second, b"first run");
        assert_eq!(
            std::fs::read(path.with_extension("jwks.json")).unwrap(),
            b"{\"keys\":[1]}"
        );
        // Set aside, the name is free for a fresh segment; both old files are kept.
        set_aside(&path, 1_700_000_000).unwrap();
        let third = write_segment(&dir, &path, b"third run", b"{\"keys\":[3]}").unwrap();
        assert_eq!(third, b"third run");
        let kept = std::fs::read(
            dir.join("audit-000000000001-000000000009.archive.unverifiable-1700000000"),
        );
        assert_eq!(kept.unwrap(), b"first run");
        let kept_keys = std::fs::read(
            dir.join("audit-000000000001-000000000009.jwks.json.unverifiable-1700000000"),
        );
        assert_eq!(kept_keys.unwrap(), b"{\"keys\":[1]}");
        assert_eq!(
            std::fs::read(path.with_extension("jwks.json")).unwrap(),
            b"{\"keys\":[3]}"
        );
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&path), 0o600);
        }
    }

    /// The keys are in place before the segment appears (a reader listing the directory
    /// while the job writes found a segment without its keys): when they cannot be written,
    /// no segment appears and nothing temporary stays.
    #[test]
    fn a_segment_never_appears_without_its_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("archive");
        let path = dir.join("audit-000000000001-000000000009.archive");
        // A directory where the keys file goes: renaming the keys onto it fails.
        std::fs::create_dir_all(path.with_extension("jwks.json").join("blocker")).unwrap();
        assert!(write_segment(&dir, &path, b"segment", b"{\"keys\":[]}").is_err());
        assert!(!path.exists(), "a segment was published without its keys");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["audit-000000000001-000000000009.jwks.json"]);
    }
}
