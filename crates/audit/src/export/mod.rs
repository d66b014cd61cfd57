//! Streaming the audit trail to where security teams look: a syslog receiver (RFC 5424 over
//! TLS, [`syslog`]), an NDJSON file or stdout ([`ndjson`]); the admin API's Server-Sent Events
//! stream reads the same records the same way ([`record_json`]).
//!
//! An [`Exporter`] follows the chain from a cursor kept in the store (setting
//! `audit.export.<name>`: the last sequence number its sink took), a page at a time, opening
//! sealed records with the audit data keys, and moves the cursor only once the sink has a
//! page. A sink that fails (a receiver restarting, a full disk) is retried with backoff from
//! the same record: nothing is skipped, and an export that fell behind catches up where it
//! stopped — across node restarts too. One node runs each export (lease
//! `audit-export:<name>`), so a cluster sends each record once.

pub mod ndjson;
pub mod syslog;

use std::sync::Arc;
use std::time::Duration;

use portcullis_store::Store;

use crate::sealing::{AuditSealer, ReadRecord};

/// Records read and delivered per round at most.
pub const PAGE: u32 = 500;
/// How often an idle export looks for new records (the bound on its added latency).
pub const POLL: Duration = Duration::from_millis(250);
const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// The lease outlives a stalled round by this much before another node takes the export over.
const LEASE_SECS: i64 = 15;

/// Gauge: the sequence number each export has delivered up to (`export` label); with the
/// chain head, the export's lag.
pub const EXPORTED_SEQ_METRIC: &str = "portcullis_audit_exported_seq";
/// Counter: records delivered per export.
pub const EXPORTED_METRIC: &str = "portcullis_audit_exported_total";
/// Counter: failed deliveries per export (each retried).
pub const EXPORT_FAILURES_METRIC: &str = "portcullis_audit_export_failures_total";

/// Why a sink could not take records (never carries record contents).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExportError(pub String);

/// Where exported records go.
#[async_trait::async_trait]
pub trait ExportSink: Send + Sync {
    /// A short name for logs and errors (`syslog 127.0.0.1:6514`).
    fn describe(&self) -> String;

    /// Delivers `records` (in chain order, each exactly once unless an error is returned) and
    /// returns once the sink holds them as firmly as it can say. On an error the exporter calls
    /// again later with the same records, starting at the first one.
    async fn deliver(&mut self, records: &[ReadRecord]) -> Result<(), ExportError>;
}

/// A record as every export shows it: the stored fields opened, the chain hashes as stored
/// (over the ciphertext), and whether it was encrypted.
pub fn record_json(read: &ReadRecord) -> serde_json::Value {
    let r = &read.record;
    let mut json = serde_json::json!({
        "seq": r.seq,
        "at": r.event.at,
        "actor": r.event.actor,
        "action": r.event.action,
        "subject": r.event.subject,
        "outcome": r.event.outcome,
        "detail": r.event.detail,
        "prev_hash": r.prev_hash,
        "hash": r.hash,
        "encrypted": read.encrypted,
    });
    if let (Some(why), Some(map)) = (&read.unreadable, json.as_object_mut()) {
        map.insert("unreadable".into(), why.clone().into());
    }
    json
}

/// Where a new export (no cursor yet) starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// The first record of the chain.
    #[default]
    Beginning,
    /// The head when the export first runs: only what is recorded from then on.
    End,
}

/// The last record every export in `exports` (name, where it starts) has delivered, and the
/// export furthest behind: archiving stops there, so that no export ever finds records gone
/// from under its cursor (it would skip them without a word). An export that has not run yet
/// holds everything if it starts at the beginning, nothing if at the end. `None`: no export
/// holds anything back.
pub async fn delivered_through(
    store: &dyn Store,
    exports: &[(String, StartAt)],
) -> Result<Option<(i64, String)>, portcullis_store::StoreError> {
    let mut lowest: Option<(i64, String)> = None;
    for (name, start) in exports {
        let stored = store.get_setting(&Exporter::cursor_setting(name)).await?;
        let seq = match (stored.as_deref().and_then(parse_cursor), start) {
            (Some(seq), _) => seq,
            // A cursor that does not parse stops the export itself; hold everything for it.
            (None, _) if stored.is_some() => 0,
            (None, StartAt::Beginning) => 0,
            (None, StartAt::End) => continue,
        };
        if lowest.as_ref().is_none_or(|(low, _)| seq < *low) {
            lowest = Some((seq, name.clone()));
        }
    }
    Ok(lowest)
}

/// One configured export: follows the chain into its sink.
pub struct Exporter {
    pub name: String,
    pub store: Arc<dyn Store>,
    pub sealer: Option<Arc<AuditSealer>>,
    pub sink: Box<dyn ExportSink>,
    pub start: StartAt,
    /// This node's name in leases.
    pub node_id: String,
}

impl Exporter {
    /// The store setting holding the cursor of export `name`.
    pub fn cursor_setting(name: &str) -> String {
        format!("audit.export.{name}")
    }

    /// Runs until the task is aborted.
    pub async fn run(mut self) {
        let lease = format!("audit-export:{}", self.name);
        let mut delay = FIRST_RETRY;
        let mut held = Held::default();
        loop {
            match self.round(&lease, &mut held).await {
                Ok(Progress::Delivered) => {
                    delay = FIRST_RETRY;
                    continue;
                }
                Ok(Progress::Idle) => {
                    delay = FIRST_RETRY;
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => {
                    // Read lease and cursor afresh next time: another node may have moved on.
                    held = Held::default();
                    metrics::counter!(EXPORT_FAILURES_METRIC, "export" => self.name.clone())
                        .increment(1);
                    tracing::warn!(
                        export = %self.name,
                        sink = %self.sink.describe(),
                        error = %e,
                        retry_in_ms = delay.as_millis() as u64,
                        "audit export failed; retrying from the same record"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY);
                }
            }
        }
    }

    /// One page: holds the lease, reads after the cursor, delivers, moves the cursor. The
    /// lease is renewed once a third of it has passed, not every poll, and the cursor is kept
    /// between rounds while this node holds the lease (the compare-and-swap that moves it
    /// still catches another node having moved it).
    async fn round(&mut self, lease: &str, held: &mut Held) -> Result<Progress, ExportError> {
        let now = unix_now();
        if now >= held.renew_at {
            let leader = self
                .store
                .try_acquire_lease(lease, &self.node_id, LEASE_SECS, now)
                .await
                .map_err(store_error)?;
            if !leader {
                *held = Held::default();
                return Ok(Progress::Idle);
            }
            held.renew_at = now + LEASE_SECS / 3;
        }
        let (cursor, stored) = match held.position.take() {
            Some(position) => position,
            None => {
                let (cursor, stored) = self.cursor().await?;
                // Shown from the start, not only after a first delivery: an export that
                // never delivered is the one to see.
                metrics::gauge!(EXPORTED_SEQ_METRIC, "export" => self.name.clone())
                    .set(cursor as f64);
                (cursor, stored)
            }
        };
        let records = self
            .store
            .list_audit(cursor, PAGE)
            .await
            .map_err(store_error)?;
        let Some(last) = records.last().map(|r| r.seq) else {
            held.position = Some((cursor, stored));
            return Ok(Progress::Idle);
        };
        if let Some(first) = records.first().map(|r| r.seq).filter(|&f| f > cursor + 1) {
            // Archived by a node that does not run this export (archiving waits only for the
            // exports its own configuration names): the records are in the archive segments.
            tracing::warn!(
                export = %self.name,
                first_missing = cursor + 1,
                last_missing = first - 1,
                "audit records were archived before this export delivered them; it goes on \
                 after them, and they are in the archive segments"
            );
        }
        let read = match &self.sealer {
            Some(sealer) => sealer.open_records(records).await,
            None => records.into_iter().map(ReadRecord::plain).collect(),
        };
        self.sink.deliver(&read).await?;
        held.position = Some((last, self.save_cursor(&stored, last).await?));
        metrics::counter!(EXPORTED_METRIC, "export" => self.name.clone())
            .increment(read.len() as u64);
        metrics::gauge!(EXPORTED_SEQ_METRIC, "export" => self.name.clone()).set(last as f64);
        Ok(Progress::Delivered)
    }

    /// The last delivered sequence number, and the setting's bytes (for the swap).
    async fn cursor(&self) -> Result<(i64, Vec<u8>), ExportError> {
        let setting = Self::cursor_setting(&self.name);
        if let Some(bytes) = self
            .store
            .get_setting(&setting)
            .await
            .map_err(store_error)?
        {
            let seq = parse_cursor(&bytes)
                .ok_or_else(|| ExportError(format!("{setting} is not a sequence number")))?;
            return Ok((seq, bytes));
        }
        let start = match self.start {
            StartAt::Beginning => 0,
            StartAt::End => self
                .store
                .list_audit_desc(i64::MAX, 1)
                .await
                .map_err(store_error)?
                .first()
                .map_or(0, |head| head.seq),
        };
        let stored = self
            .store
            .put_setting_if_absent(&setting, start.to_string().as_bytes())
            .await
            .map_err(store_error)?;
        let seq = parse_cursor(&stored).unwrap_or(start);
        Ok((seq, stored))
    }

    /// Moves the cursor from `expected` to `seq`; returns the setting's new bytes.
    async fn save_cursor(&self, expected: &[u8], seq: i64) -> Result<Vec<u8>, ExportError> {
        let setting = Self::cursor_setting(&self.name);
        let value = seq.to_string().into_bytes();
        let swapped = self
            .store
            .replace_setting(&setting, expected, &value)
            .await
            .map_err(store_error)?;
        if swapped {
            Ok(value)
        } else {
            // Another node moved the cursor meanwhile (it took the lease over while this one
            // stalled): its position wins; this page may have been delivered twice.
            Err(ExportError(format!(
                "{setting} changed under this export; continuing from the stored position"
            )))
        }
    }
}

enum Progress {
    Delivered,
    Idle,
}

/// What a node holding an export's lease keeps between rounds.
#[derive(Default)]
struct Held {
    /// When to renew the lease (0: take it first).
    renew_at: i64,
    /// The cursor and the setting's bytes, as last read or written.
    position: Option<(i64, Vec<u8>)>,
}

/// A cursor setting's sequence number.
fn parse_cursor(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

fn store_error(e: portcullis_store::StoreError) -> ExportError {
    ExportError(format!("store: {e}"))
}

fn unix_now() -> i64 {
    portcullis_core::time::unix_seconds(std::time::SystemTime::now())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
