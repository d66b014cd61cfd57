//! NDJSON export: one JSON object per line ([`super::record_json`]), appended to a file or
//! written to stdout, for log shippers (Vector, Fluent Bit, Filebeat) that tail a file.
//!
//! Each page is written with one `write_all` and, for a file, `sync_data` before the cursor
//! moves; a failed write is cut back off the file, so a retry does not leave half a line. A
//! crash between the write and the cursor can repeat the last page (each line names its
//! `seq`, so a reader drops repeats) but never loses one.

use std::path::PathBuf;

use tokio::io::AsyncWriteExt;

use super::{record_json, ExportError, ExportSink};
use crate::sealing::ReadRecord;

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

    async fn file(&mut self, path: &PathBuf) -> Result<&mut tokio::fs::File, ExportError> {
        if self.file.is_none() {
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await
                .map_err(|e| ExportError(format!("{}: {e}", path.display())))?;
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
