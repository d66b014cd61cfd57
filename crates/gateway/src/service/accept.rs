//! Accepting a message: verified (COSE when it is one), checked for replay, held by the sink
//! before the caller hears yes.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::{
    cose_message_id, random_message_id, unix_millis, valid_stream, Accepted, Gateway,
    DEFAULT_STREAM, MESSAGES_METRIC, VERIFY_SECONDS_METRIC,
};
use crate::cose;
use crate::credentials::MessageAuth;
use crate::session::{Admitted, Session, Transport};
use crate::sink::TelemetryRecord;
use crate::GatewayError;

impl Gateway {
    /// Accepts a message on an admitted connection: verified (COSE when `cose`), checked for
    /// replay, held by the sink. A COSE message must name the session's device.
    pub async fn publish(
        &self,
        session: &Session,
        stream: Option<&str>,
        payload: Bytes,
        cose: bool,
    ) -> Result<Accepted, GatewayError> {
        if session.is_closed() {
            return Err(GatewayError::Forbidden("session_closed"));
        }
        self.accept(
            session.transport,
            session.source,
            Some(&session.admitted),
            stream,
            payload,
            cose,
        )
        .await
    }

    /// Accepts a message that came with no connection credential (HTTP
    /// `application/cose`), or with one checked for this request alone (`admitted`).
    pub async fn accept(
        &self,
        transport: Transport,
        source: IpAddr,
        admitted: Option<&Admitted>,
        stream: Option<&str>,
        payload: Bytes,
        cose: bool,
    ) -> Result<Accepted, GatewayError> {
        let result = self.verify_and_store(admitted, stream, payload, cose).await;
        let outcome = match &result {
            Ok(_) => "accepted",
            Err(e) => e.reason(),
        };
        metrics::counter!(MESSAGES_METRIC, "transport" => transport.as_str(), "outcome" => outcome)
            .increment(1);
        if let Err(e) = &result {
            let device = admitted.map(|a| a.device_id.as_str());
            self.audit_refusal(transport, source, device, e);
        }
        result
    }

    async fn verify_and_store(
        &self,
        admitted: Option<&Admitted>,
        stream: Option<&str>,
        payload: Bytes,
        cose: bool,
    ) -> Result<Accepted, GatewayError> {
        if payload.len() > self.config.limits.max_message_bytes {
            return Err(GatewayError::TooLarge);
        }
        let stream = match stream {
            None => DEFAULT_STREAM,
            Some(s) if valid_stream(s) => s,
            Some(_) => return Err(GatewayError::Forbidden("bad_stream")),
        };
        let now = self.now();
        let received_at_ms = unix_millis();
        if !cose {
            let admitted = admitted.ok_or(GatewayError::Unauthenticated("no_credential"))?;
            let creds = self.active_credentials(&admitted.device_id).await?;
            if creds.message_auth == MessageAuth::Required {
                return Err(GatewayError::Forbidden("message_auth_required"));
            }
            let record = TelemetryRecord {
                message_id: random_message_id()?,
                device_id: admitted.device_id.to_string(),
                model: creds.model.clone(),
                stream: stream.to_owned(),
                method: admitted.method.as_str().to_owned(),
                key_id: admitted.credential.clone(),
                counter: None,
                sent_at: None,
                received_at_ms,
                payload,
            };
            let message_id = record.message_id.clone();
            self.sink
                .put(record)
                .await
                .map_err(|e| GatewayError::Unavailable(e.0))?;
            return Ok(Accepted { message_id });
        }

        let started = Instant::now();
        let message = cose::parse(&payload)?;
        if let Some(admitted) = admitted {
            if message.device_id() != &admitted.device_id {
                return Err(GatewayError::Forbidden("other_device"));
            }
        }
        let creds = self.active_credentials(message.device_id()).await?;
        let verified = message.verify(&creds, now)?;
        metrics::histogram!(VERIFY_SECONDS_METRIC).record(started.elapsed().as_secs_f64());
        self.replay.check_time(verified.timestamp, now)?;
        if i64::try_from(verified.counter).is_err() {
            return Err(GatewayError::Malformed("counter_out_of_range"));
        }
        let record = TelemetryRecord {
            message_id: cose_message_id(&payload),
            device_id: verified.device_id.to_string(),
            model: creds.model.clone(),
            stream: stream.to_owned(),
            method: verified.method.as_str().to_owned(),
            key_id: Some(verified.key_id),
            counter: Some(verified.counter),
            sent_at: Some(verified.timestamp),
            received_at_ms,
            payload: Bytes::from(verified.payload),
        };
        // Reserve, store, and give the reservation back if the sink refuses: one step that
        // runs to its end even if the caller goes away meanwhile (an HTTP client hanging up,
        // an MQTT session ended mid-publish), so a counter is never left reserved for a
        // message that was not stored.
        let replay = Arc::clone(&self.replay);
        let sink = Arc::clone(&self.sink);
        let device = verified.device_id;
        let counter = verified.counter;
        tokio::spawn(async move {
            let reservation = replay.reserve(&device, counter).await?;
            let message_id = record.message_id.clone();
            match sink.put(record).await {
                Ok(()) => Ok(Accepted { message_id }),
                Err(e) => {
                    replay.release(reservation).await;
                    Err(GatewayError::Unavailable(e.0))
                }
            }
        })
        .await
        .map_err(|e| GatewayError::Internal(format!("the store step failed: {e}")))?
    }
}
