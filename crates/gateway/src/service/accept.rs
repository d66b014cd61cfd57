//! Accepting a message: verified (COSE when it is one), checked for replay, held by the sink
//! before the caller hears yes. Verification happens in the caller's task; storing, in the
//! ingest pipeline, so a connection may have several messages being stored at once.

use crate::credentials_memo::CredentialsMemo;
use std::net::IpAddr;
use std::time::Instant;

use bytes::Bytes;

use super::{
    cose_message_id, random_message_id, unix_millis, valid_stream, Accepted, Gateway,
    DEFAULT_STREAM, MESSAGES_METRIC,
};
use crate::commands::parse_outcome;
use crate::cose;
use crate::credentials::MessageAuth;
use crate::device_settings::parse_applied;
use crate::ingest::Answer;
use crate::session::{Admitted, Session, Transport};
use crate::sink::TelemetryRecord;
use crate::updates::parse_report;
use crate::GatewayError;
use portcullis_core::command::CommandOutcome;
use portcullis_core::device::DeviceId;
use portcullis_core::update::UpdateReportPayload;

/// Where a device's message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination<'a> {
    /// A telemetry stream (`None`: the default one).
    Telemetry(Option<&'a str>),
    /// The result of a command (`docs/gateway-protocol.md`): stored like telemetry, on the
    /// stream [`RESULTS_STREAM`], then recorded as the command's outcome.
    CommandResult,
    /// The settings version a device applied: stored on [`APPLIED_STREAM`], then recorded.
    SettingsApplied,
    /// What a device did with a software release: stored on [`UPDATES_STREAM`], then recorded.
    UpdateReport,
}

/// The stream results are stored on, beside the device's telemetry.
pub const RESULTS_STREAM: &str = "command-results";
/// The stream settings reports are stored on.
pub const APPLIED_STREAM: &str = "settings-applied";
/// The stream update reports are stored on.
pub const UPDATES_STREAM: &str = "update-reports";

/// What a verified message asks to record once it is stored.
enum Followup {
    CommandResult(DeviceId, CommandOutcome),
    SettingsApplied(DeviceId, u64),
    UpdateReport(DeviceId, UpdateReportPayload),
}

type PendingResult = Option<Followup>;

/// A message verified, to be handed to the ingest.
struct Verified {
    record: TelemetryRecord,
    /// The device's counter to reserve for it (COSE messages).
    counter: Option<(DeviceId, u64)>,
    result: PendingResult,
}

/// A message the gateway verified and handed to the ingest pipeline: its answer is to come
/// ([`Gateway::settle`]). Submitting one message after another and settling them in the same
/// order keeps a connection's messages in order while several are being stored.
#[must_use = "a submitted message is settled to learn whether it was stored"]
pub struct Submitted {
    state: State,
}

enum State {
    /// Refused before it reached the pipeline (counted and audited when settled, so that
    /// refusals and acceptances are answered in the order the messages came).
    Refused(GatewayError),
    Pending {
        message_id: String,
        answer: Answer,
        result: PendingResult,
    },
}

impl Submitted {
    /// Whether the answer is in (settling will not wait).
    pub fn is_settled(&mut self) -> bool {
        match &mut self.state {
            State::Refused(_) => true,
            State::Pending { answer, .. } => answer.is_ready(),
        }
    }

    /// Waits for the answer without taking it; cancel-safe.
    pub async fn ready(&mut self) {
        if let State::Pending { answer, .. } = &mut self.state {
            answer.wait().await;
        }
    }
}

impl Gateway {
    /// Verifies messages read together on an admitted connection (COSE when `cose`; a COSE
    /// message must name the session's device) and hands them to the ingest pipeline
    /// together, one [`Submitted`] each, in order.
    pub async fn submit_all(
        &self,
        session: &Session,
        messages: Vec<(Destination<'_>, Bytes, bool)>,
    ) -> Vec<Submitted> {
        // Each message's id and follow-up, or its refusal, in order; the verified ones'
        // answers come back from the ingest in the same order.
        let mut judged = Vec::with_capacity(messages.len());
        let mut batch = Vec::with_capacity(messages.len());
        for (destination, payload, cose) in messages {
            let verified = if session.is_closed() {
                Err(GatewayError::Forbidden("session_closed"))
            } else {
                self.verify(
                    Some(&session.admitted),
                    Some(&session.credentials),
                    destination,
                    payload,
                    cose,
                )
                .await
            };
            match verified {
                Ok(Verified {
                    record,
                    counter,
                    result,
                }) => {
                    judged.push(Ok((record.message_id.clone(), result)));
                    batch.push((record, counter));
                }
                Err(e) => judged.push(Err(e)),
            }
        }
        let mut answers = self.ingest.send_all(batch).await.into_iter();
        judged
            .into_iter()
            .map(|judged| {
                let state = match judged {
                    Err(e) => State::Refused(e),
                    Ok((message_id, result)) => match answers.next() {
                        Some(answer) => State::Pending {
                            message_id,
                            answer,
                            result,
                        },
                        None => {
                            State::Refused(GatewayError::Internal("a message got no answer".into()))
                        }
                    },
                };
                Submitted { state }
            })
            .collect()
    }

    /// Waits until the sink holds a message submitted on `session` (or it is refused);
    /// counts and audits the outcome.
    pub async fn settle(
        &self,
        session: &Session,
        submitted: Submitted,
    ) -> Result<Accepted, GatewayError> {
        let result = match submitted.state {
            State::Refused(e) => Err(e),
            State::Pending {
                message_id,
                answer,
                result,
            } => {
                self.stored(message_id, answer, result, session.transport)
                    .await
            }
        };
        let device = Some(session.admitted.device_id.as_str());
        self.count(session.transport, session.source, device, &result);
        result
    }

    /// Waits for the sink's answer to a handed-over message, then records what it asks
    /// (a command's result, a settings or update report).
    async fn stored(
        &self,
        message_id: String,
        answer: Answer,
        result: PendingResult,
        transport: Transport,
    ) -> Result<Accepted, GatewayError> {
        answer.take().await?;
        self.record_result(result, transport).await?;
        Ok(Accepted { message_id })
    }

    /// Accepts a message that came with no connection credential (HTTP
    /// `application/cose`), or with one checked for this request alone (`admitted`).
    pub async fn accept(
        &self,
        transport: Transport,
        source: IpAddr,
        admitted: Option<&Admitted>,
        destination: Destination<'_>,
        payload: Bytes,
        cose: bool,
    ) -> Result<Accepted, GatewayError> {
        // Without a connection credential the device is named only inside the message; kept
        // (a reference count, not a copy) to name it in the record of a replay.
        let raw = (admitted.is_none() && cose).then(|| payload.clone());
        let result = match self
            .verify(admitted, None, destination, payload, cose)
            .await
        {
            Ok(Verified {
                record,
                counter,
                result,
            }) => {
                let message_id = record.message_id.clone();
                let answer = self.ingest.send(record, counter).await;
                self.stored(message_id, answer, result, transport).await
            }
            Err(e) => Err(e),
        };
        // A replay, or a message from an inactive device, is refused only after the message
        // verified, so the device it names is the one that signed it: attack detection counts
        // both per device.
        let signer = match (&result, raw) {
            (
                Err(GatewayError::Replay(_) | GatewayError::Forbidden("device_inactive")),
                Some(raw),
            ) => cose::parse(&raw)
                .ok()
                .map(|m| m.device_id().as_str().to_owned()),
            _ => None,
        };
        let device = admitted.map(|a| a.device_id.as_str()).or(signer.as_deref());
        self.count(transport, source, device, &result);
        result
    }

    /// Records a stored result message as its command's outcome. A result for no command of
    /// this device that waits for one is refused (it is stored all the same, as what the
    /// device said).
    async fn record_result(
        &self,
        result: PendingResult,
        transport: Transport,
    ) -> Result<(), GatewayError> {
        let recorded = match result {
            None => return Ok(()),
            Some(Followup::CommandResult(device, outcome)) => self
                .commands
                .record_result(&device, &outcome, transport.as_str())
                .await
                .map(|ok| ok.then_some(()).ok_or("no_such_command")),
            Some(Followup::SettingsApplied(device, version)) => self
                .settings
                .applied(&device, version)
                .await
                .map(|ok| ok.then_some(()).ok_or("no_such_settings_version")),
            Some(Followup::UpdateReport(device, report)) => self
                .updates
                .report(&device, &report)
                .await
                .map(|ok| ok.then_some(()).ok_or("no_such_release")),
        };
        match recorded {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(GatewayError::Forbidden(reason)),
            Err(e) => Err(GatewayError::Unavailable(e.to_string())),
        }
    }

    fn count(
        &self,
        transport: Transport,
        source: IpAddr,
        device: Option<&str>,
        result: &Result<Accepted, GatewayError>,
    ) {
        match result {
            Ok(_) => self.metrics.accepted(transport).increment(1),
            Err(e) => {
                metrics::counter!(MESSAGES_METRIC, "transport" => transport.as_str(), "outcome" => e.reason())
                    .increment(1);
                self.audit_refusal(transport, source, device, e);
            }
        }
    }

    /// Verifies a message and judges it by everything but its counter's reservation: the
    /// record to store, the counter to reserve for it, what to record once it is stored.
    async fn verify(
        &self,
        admitted: Option<&Admitted>,
        memo: Option<&CredentialsMemo>,
        destination: Destination<'_>,
        payload: Bytes,
        cose: bool,
    ) -> Result<Verified, GatewayError> {
        if payload.len() > self.config.limits.max_message_bytes {
            return Err(GatewayError::TooLarge);
        }
        let stream = match destination {
            Destination::Telemetry(None) => DEFAULT_STREAM,
            Destination::Telemetry(Some(s)) if valid_stream(s) => s,
            Destination::Telemetry(Some(_)) => return Err(GatewayError::Forbidden("bad_stream")),
            Destination::CommandResult => RESULTS_STREAM,
            Destination::SettingsApplied => APPLIED_STREAM,
            Destination::UpdateReport => UPDATES_STREAM,
        };
        let now = self.now();
        let received_at_ms = unix_millis();
        if !cose {
            let admitted = admitted.ok_or(GatewayError::Unauthenticated("no_credential"))?;
            let creds = self.session_credentials(memo, &admitted.device_id).await?;
            if creds.message_auth == MessageAuth::Required {
                return Err(GatewayError::Forbidden("message_auth_required"));
            }
            let result = followup(destination, &admitted.device_id, &payload)?;
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
            return Ok(Verified {
                record,
                counter: None,
                result,
            });
        }

        let started = Instant::now();
        let message = cose::parse(&payload)?;
        if let Some(admitted) = admitted {
            if message.device_id() != &admitted.device_id {
                return Err(GatewayError::Forbidden("other_device"));
            }
        }
        // On a session the message names the session's device (checked above), whose
        // credentials the session keeps. Alone, the message is its own credential: it is
        // verified before the device's state is judged, so refusing an inactive device names
        // a device that really signed (attack detection counts `inactive_device_use` per
        // device) and a forger learns nothing about the state.
        let creds = match admitted {
            Some(_) => self.session_credentials(memo, message.device_id()).await?,
            None => self.registered_credentials(message.device_id()).await?,
        };
        let verified = message.verify(&creds, now)?;
        if !creds.active {
            return Err(GatewayError::Forbidden("device_inactive"));
        }
        self.metrics
            .verify_seconds
            .record(started.elapsed().as_secs_f64());
        self.replay.check_time(verified.timestamp, now)?;
        if i64::try_from(verified.counter).is_err() {
            return Err(GatewayError::Malformed("counter_out_of_range"));
        }
        self.replay
            .check_known(&verified.device_id, verified.counter)?;
        let result = followup(destination, &verified.device_id, &verified.payload)?;
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
        // Reserved, stored, and the reservation given back if the sink refuses, by the
        // ingest: it owns the message once sent, so a caller going away meanwhile (an HTTP
        // client hanging up, an MQTT session ended mid-publish) cannot leave a counter
        // reserved for a message that was not stored.
        Ok(Verified {
            record,
            counter: Some((verified.device_id, verified.counter)),
            result,
        })
    }
}

/// What a result or report message asks to record, read before it is stored: one that does
/// not parse is refused (and its counter not spent).
fn followup(
    destination: Destination<'_>,
    device: &DeviceId,
    payload: &[u8],
) -> Result<PendingResult, GatewayError> {
    Ok(match destination {
        Destination::Telemetry(_) => None,
        Destination::CommandResult => Some(Followup::CommandResult(
            device.clone(),
            parse_outcome(payload).map_err(|_| GatewayError::Malformed("command_result"))?,
        )),
        Destination::SettingsApplied => Some(Followup::SettingsApplied(
            device.clone(),
            parse_applied(payload)
                .map_err(|_| GatewayError::Malformed("settings_report"))?
                .ver,
        )),
        Destination::UpdateReport => Some(Followup::UpdateReport(
            device.clone(),
            parse_report(payload).map_err(|_| GatewayError::Malformed("update_report"))?,
        )),
    })
}
