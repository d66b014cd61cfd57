//! Where accepted messages go. A sink says yes only once it holds the message durably: the
//! transport adapters acknowledge (HTTP 202, MQTT PUBACK) after that and never before, so
//! an acknowledged message is never lost when the node is killed, and a refused one may be
//! sent again. (Whether a power cut is survived too is the sink's fsync policy: always for
//! the embedded log's default, `embedded::SyncPolicy`.)

pub mod embedded;
pub mod nats;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One accepted message with what the gateway verified about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelemetryRecord {
    /// Stable for a COSE message (a digest of its bytes, so a retry or the same message sent
    /// to two nodes has one id and the sink can store it once); random otherwise.
    pub message_id: String,
    pub device_id: String,
    pub model: Option<String>,
    pub stream: String,
    /// `certificate`, `device_token`, `access_token`, `cose_sign1` or `cose_mac0`.
    pub method: String,
    /// The key that authenticated the message (device key id or certificate serial).
    pub key_id: Option<String>,
    /// The message's own counter (COSE messages only).
    pub counter: Option<u64>,
    /// The message's own timestamp, Unix seconds (COSE messages only).
    pub sent_at: Option<i64>,
    /// When this node accepted it, Unix milliseconds.
    pub received_at_ms: i64,
    /// The device's data (the COSE payload, or the whole body).
    #[serde(with = "payload_b64")]
    pub payload: Bytes,
}

/// The sink cannot take messages now; nothing was stored.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Why [`Sink::put_in_place`] did not store records.
#[derive(Debug)]
pub enum NotInPlace {
    /// Not on the caller's thread (not this sink, or not this write: the embedded log's next
    /// write opens a segment, which syncs the last one); the records come back, in order.
    Declined(Vec<TelemetryRecord>),
    /// The sink refused them, as [`Sink::put_batch`] would have; none of them is stored.
    Failed(SinkError),
}

#[async_trait]
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// Stores the message durably. `Ok` means it survives this node being killed.
    async fn put(&self, record: TelemetryRecord) -> Result<(), SinkError>;
    /// Stores a batch, one answer per record in order. The gateway hands its sink
    /// everything that queued while the previous batch was written; a sink with a cheaper
    /// write for many (one `fdatasync` for the embedded log) says so here. By default the
    /// records are stored concurrently, one `put` each.
    async fn put_batch(&self, records: Vec<TelemetryRecord>) -> Vec<Result<(), SinkError>> {
        futures_util::future::join_all(records.into_iter().map(|r| self.put(r))).await
    }
    /// Whether [`Sink::put_in_place`] stores records as a rule: a write is then one short
    /// system call that waits for no disk and no peer (the embedded log syncing on an
    /// interval), so a caller may make it on its own thread instead of handing it over.
    fn writes_in_place(&self) -> bool {
        false
    }
    /// Stores records on the caller's thread with one write, all or none, when that waits
    /// for no disk and no peer; otherwise gives them back, for [`Sink::put_batch`].
    fn put_in_place(&self, records: Vec<TelemetryRecord>) -> Result<(), NotInPlace> {
        Err(NotInPlace::Declined(records))
    }
    /// `embedded` or `nats`: a label for logs and metrics.
    fn kind(&self) -> &'static str;
    /// For a sink this node writes and can read back (the embedded log): the position up to
    /// which its records are durable. Under the embedded log's interval fsync policy records
    /// acknowledged since the last sync lie beyond it: the store's counters then cover more
    /// than the position recorded with them, and recovery reads a little more of the log
    /// than it needs, never less. `None` for one it cannot read back
    /// (NATS). With such a sink and a store no other node shares, message counters are
    /// decided in memory and recovered from the sink after a crash (`crate::replay`).
    fn position(&self) -> Option<u64> {
        None
    }

    /// Tells a sink read back after a crash that the store now holds every message counter
    /// of the records at or below `position` (`crate::counters_behind`): those records may
    /// go when the sink's bounds say so. A sink not read back ignores it.
    fn covered_by_store(&self, _position: u64) {}
}

/// Payloads as unpadded base64url in JSON.
mod payload_b64 {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(payload: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(payload))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = <&str>::deserialize(d)?;
        URL_SAFE_NO_PAD
            .decode(text)
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}
