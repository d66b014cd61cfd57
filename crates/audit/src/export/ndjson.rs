//! NDJSON export: one JSON object per line ([`super::record_json`]), appended to a file or
//! written to stdout, for log shippers (Vector, Fluent Bit, Filebeat) that tail a file.
//!
//! Each page is written with one `write_all` and, for a file, `sync_data` before the cursor
//! moves; a failed write is cut back off the file, so a retry does not leave half a line. A
//! crash between the write and the cursor can repeat the last page (each line names its
//! `seq`, so a reader drops repeats) but never loses one.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use tokio::io::AsyncWriteExt;

use super::{record_json, ExportError, ExportSink};
use crate::sealing::ReadRecord;

/// The export file's mode: the owner reads and writes, nobody else anything.
const OWNER_ONLY: u32 = 0o600;

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NdjsonTarget {
    Stdout,
    File(PathBuf),
}

impl NdjsonTarget {
    /// `-` is stdout, anything else a file path.
    pub fn parse(s: &str) -> Self {
        if s == "-" {
            Self::Stdout
        } else {
            Self::File(PathBuf::from(s))
        }
    }
}

/// Appends records as lines.
pub struct NdjsonSink {
    target: NdjsonTarget,
    file: Option<tokio::fs::File>,
}

impl NdjsonSink {
    pub fn new(target: NdjsonTarget) -> Self {
        Self { target, file: None }
    }

    /// Opens the file for appending, readable by its owner alone: the lines are the
    /// decrypted audit trail. A new file is created 0600; a file that already grants group or
    /// other bits (one an older version created 0644 under umask 022, or one made by hand) is
    /// tightened to its owner's bits and a warning names it, rather than refused, so an
    /// upgraded node keeps exporting to the file its shipper tails. A shipper that reads the
    /// file as another user needs the owner's user (or an ACL), not a wider mode.
    async fn file(&mut self, path: &PathBuf) -> Result<&mut tokio::fs::File, ExportError> {
        if self.file.is_none() {
            let failed = |e: std::io::Error| ExportError(format!("{}: {e}", path.display()));
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(OWNER_ONLY)
                .open(path)
                .await
                .map_err(failed)?;
            let mode = file.metadata().await.map_err(failed)?.permissions().mode();
            if mode & !OWNER_ONLY & 0o777 != 0 {
                let tightened = mode & OWNER_ONLY;
                file.set_permissions(std::fs::Permissions::from_mode(tightened))
                    .await
                    .map_err(failed)?;
                tracing::warn!(
                    path = %path.display(),
                    "audit export file was mode {:o}, open to group or others; set to {:o}",
                    mode & 0o777,
                    tightened
                );
            }
            self.file = Some(file);
        }
        self.file
            .as_mut()
            .ok_or_else(|| ExportError("the file is not open".into()))
    }
}

#[async_trait::async_trait]
impl ExportSink for NdjsonSink {
    fn describe(&self) -> String {
        match &self.target {
            NdjsonTarget::Stdout => "ndjson stdout".into(),
            NdjsonTarget::File(path) => format!("ndjson {}", path.display()),
        }
    }

    async fn deliver(&mut self, records: &[ReadRecord]) -> Result<(), ExportError> {
        let mut lines = Vec::with_capacity(records.len() * 256);
        for record in records {
            serde_json::to_writer(&mut lines, &record_json(record))
                .map_err(|e| ExportError(format!("encoding a record: {e}")))?;
            lines.push(b'\n');
        }
        match self.target.clone() {
            NdjsonTarget::Stdout => {
                let mut out = tokio::io::stdout();
                out.write_all(&lines)
                    .await
                    .and(out.flush().await)
                    .map_err(|e| ExportError(format!("stdout: {e}")))
            }
            NdjsonTarget::File(path) => {
                let failed = |e: std::io::Error| ExportError(format!("{}: {e}", path.display()));
                let result = async {
                    let file = self.file(&path).await?;
                    let before = file.metadata().await.map_err(failed)?.len();
                    let written = async {
                        file.write_all(&lines).await?;
                        file.sync_data().await
                    }
                    .await;
                    if let Err(e) = written {
                        let _ = file.set_len(before).await;
                        return Err(failed(e));
                    }
                    Ok(())
                }
                .await;
                if result.is_err() {
                    // Reopen next time: the file may have been rotated away or the disk
                    // remounted.
                    self.file = None;
                }
                result
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// The file's permission bits in octal, as `ls -l` readers think of them.
    fn mode(path: &std::path::Path) -> String {
        format!(
            "{:o}",
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777
        )
    }

    #[tokio::test]
    async fn a_new_export_file_is_readable_by_its_owner_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.ndjson");
        let mut sink = NdjsonSink::new(NdjsonTarget::File(path.clone()));
        sink.file(&path).await.unwrap();
        assert_eq!(mode(&path), "600");
    }

    #[tokio::test]
    async fn an_existing_export_file_readable_by_others_is_tightened_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.ndjson");
        std::fs::write(&path, "{\"seq\":1}\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
        let mut sink = NdjsonSink::new(NdjsonTarget::File(path.clone()));
        sink.file(&path).await.unwrap();
        assert_eq!(mode(&path), "600");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"seq\":1}\n");
    }
}
