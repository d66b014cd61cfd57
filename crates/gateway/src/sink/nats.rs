//! The NATS JetStream sink: the path for many gateway nodes. Each accepted message is
//! published to `<prefix>.<device>.<stream>` with its identity in headers, and counted as
//! held only when JetStream acknowledges it (stored under the stream's own replication and
//! storage settings). The message id goes in `Nats-Msg-Id`: a COSE message's id is a digest
//! of its bytes, so the same message retried or sent to two nodes is stored once within the
//! stream's duplicate window.
//!
//! Device ids may contain `.`, which separates subject tokens: it is written as `~` (never
//! part of a device id), so one device is always exactly one token.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use async_trait::async_trait;

use super::{Sink, SinkError, TelemetryRecord};

/// How long a publish waits for JetStream's acknowledgement before the message is refused
/// as retryable.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Identity headers every message carries.
pub const DEVICE_HEADER: &str = "Portcullis-Device";
pub const MODEL_HEADER: &str = "Portcullis-Model";
pub const METHOD_HEADER: &str = "Portcullis-Method";
pub const KEY_HEADER: &str = "Portcullis-Key";
pub const COUNTER_HEADER: &str = "Portcullis-Counter";
pub const SENT_AT_HEADER: &str = "Portcullis-Sent-At";
pub const RECEIVED_AT_HEADER: &str = "Portcullis-Received-At-Ms";
pub const STREAM_HEADER: &str = "Portcullis-Stream";

pub struct NatsSink {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    prefix: String,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The subject token for a device id.
pub fn device_token(device_id: &str) -> String {
    device_id.replace('.', "~")
}

impl NatsSink {
    /// Connects and makes sure the stream exists (created over `<prefix>.>` if missing; an
    /// existing stream is used as its operator configured it). The connection reconnects by
    /// itself; while it is down, publishes fail and messages are refused as retryable.
    pub async fn connect(
        url: &str,
        stream_name: &str,
        prefix: &str,
    ) -> Result<NatsSink, SinkError> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| SinkError(format!("cannot connect to NATS: {e}")))?;
        let jetstream = jetstream::new(client.clone());
        jetstream
            .get_or_create_stream(stream::Config {
                name: stream_name.to_owned(),
                subjects: vec![format!("{prefix}.>")],
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| SinkError(format!("JetStream stream {stream_name}: {e}")))?;
        Ok(NatsSink {
            client,
            jetstream,
            prefix: prefix.to_owned(),
        })
    }
}

#[async_trait]
impl Sink for NatsSink {
    async fn put(&self, record: TelemetryRecord) -> Result<(), SinkError> {
        // While disconnected the client would queue the publish and send it on reconnect,
        // after this message was refused: refuse at once instead. (A disconnect between this
        // check and the publish can still deliver a refused message late; a device retries
        // the same bytes, whose id JetStream de-duplicates.)
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(SinkError("NATS is not connected".into()));
        }
        let subject = format!(
            "{}.{}.{}",
            self.prefix,
            device_token(&record.device_id),
            record.stream
        );
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", record.message_id.as_str());
        headers.insert(DEVICE_HEADER, record.device_id.as_str());
        if let Some(model) = &record.model {
            headers.insert(MODEL_HEADER, model.as_str());
        }
        headers.insert(METHOD_HEADER, record.method.as_str());
        if let Some(key) = &record.key_id {
            headers.insert(KEY_HEADER, key.as_str());
        }
        if let Some(counter) = record.counter {
            headers.insert(COUNTER_HEADER, counter.to_string().as_str());
        }
        if let Some(sent_at) = record.sent_at {
            headers.insert(SENT_AT_HEADER, sent_at.to_string().as_str());
        }
        headers.insert(
            RECEIVED_AT_HEADER,
            record.received_at_ms.to_string().as_str(),
        );
        headers.insert(STREAM_HEADER, record.stream.as_str());
        let ack = self
            .jetstream
            .publish_with_headers(subject, headers, record.payload)
            .await
            .map_err(|e| SinkError(format!("NATS publish: {e}")))?;
        tokio::time::timeout(ACK_TIMEOUT, ack)
            .await
            .map_err(|_| SinkError("JetStream did not acknowledge in time".into()))?
            .map_err(|e| SinkError(format!("JetStream: {e}")))?;
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "nats"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_always_one_subject_token() {
        assert_eq!(device_token("meter.7.b"), "meter~7~b");
        assert_eq!(device_token("meter-7_b"), "meter-7_b");
    }
}
