//! An admitted device's connection, from CONNACK to close: one task selecting over the
//! socket, the gateway ending the session (suspension, take-over, credential expiry,
//! shutdown) and the keep-alive clock. Shutdown reaches a session as its close signal
//! (`Sessions::close_all`), not as a second watch in every wait: one watch shared by every
//! connection would be locked twice per message by both worker threads.
//!
//! Messages are verified one at a time, in the order they arrived, and those one read
//! brought in are handed to the gateway's ingest together, which judges and stores them in
//! that order (the replay guard accepts a device's counters only in increasing order). Several may be being stored at
//! once — up to `max_inflight` (the MQTT 5 Receive Maximum) read and not yet answered — so a
//! connection's rate is not bounded by one storage round trip per message; past that bound
//! the socket is left unread, and a slow sink pushes back on the device through TCP instead
//! of growing memory. PUBACKs go out in PUBLISH order (MQTT 3.1.1 §4.6), each only once the
//! sink holds its message, written together when several answers arrive at once.

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode as Code;
use tokio::sync::watch;
use tokio::time::Instant;

use super::codec::{self, Inbound, InboundPublish, ReadError};
use super::command_feed::{command_topic, CommandFeed};
use super::connect::Admission;
use super::connection::Connection;
use super::protocol::Version;
use super::reason::{self, PublishRefusal};
use super::settings_feed::{settings_topic, SettingsFeed};
use super::topic;
use crate::cose::{TAG_MAC0, TAG_SIGN1};
use crate::service::{Gateway, Submitted};
use crate::session::{CloseReason, Session, Transport};
use crate::GatewayError;

/// Answers waiting in the output buffer past which it is written even with publishes queued.
const FLUSH_AT: usize = 4096;
/// The first byte of a tagged `COSE_Mac0` / `COSE_Sign1` (CBOR major type 6, tag < 24).
const MAC0_BYTE: u8 = 0xC0 | TAG_MAC0 as u8;
const SIGN1_BYTE: u8 = 0xC0 | TAG_SIGN1 as u8;

/// Whether a payload is COSE by its first byte (RFC 9052 §2: the tagged forms).
pub fn is_tagged_cose(payload: &[u8]) -> bool {
    matches!(payload.first(), Some(&b) if b == MAC0_BYTE || b == SIGN1_BYTE)
}

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client is done (DISCONNECT, end of stream) and what it sent is answered.
    ClientDone,
    /// The socket failed.
    Broken,
    /// The server ends the connection; an MQTT 5 client is told why.
    Server(Code, &'static str),
}

/// Serves an admitted connection until it ends, then tells the gateway.
pub async fn serve(
    mut conn: Connection,
    admission: Admission,
    gateway: &Arc<Gateway>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let Admission {
        mut session,
        version,
        keep_alive_secs,
        reason_strings,
    } = admission;
    let mut link = Link {
        version,
        reason_strings,
        pending: VecDeque::new(),
        inflight: VecDeque::new(),
        max_pending: usize::from(gateway.limits().max_inflight.max(1)),
        keep_alive: (keep_alive_secs > 0)
            .then(|| Duration::from_millis(u64::from(keep_alive_secs) * 1_500)),
        last_heard: Instant::now(),
        eof: false,
        disconnected: false,
        commands: None,
        settings: None,
    };
    // The listener stopped before this session was registered: close_all did not see it.
    let end = if *shutdown.borrow() {
        server_shutdown()
    } else {
        link.run(&mut conn, &mut session, gateway).await
    };
    tracing::debug!(
        device = session.admitted.device_id.as_str(),
        source = %conn.source,
        ?end,
        "MQTT connection ends"
    );
    if let (End::Server(code, why), Version::V5) = (end, version) {
        if codec::disconnect_v5(&mut conn.out, code, why).is_err() {
            conn.out.clear();
        }
    }
    conn.close().await;
    gateway.session_ended(session);
}

/// One admitted connection's state.
struct Link {
    version: Version,
    reason_strings: bool,
    /// PUBLISHes read and not yet handed to the gateway, in arrival order.
    pending: VecDeque<InboundPublish>,
    /// PUBLISHes handed to the gateway and not yet answered, in arrival order.
    inflight: VecDeque<InFlight>,
    /// Read and not yet answered (`pending` + `inflight`) at most.
    max_pending: usize,
    /// 1.5 × the keep-alive in force (MQTT 3.1.1 §3.1.2.10); `None`: no keep-alive.
    keep_alive: Option<Duration>,
    last_heard: Instant,
    /// The client closed its side: nothing more to read.
    eof: bool,
    /// The client sent DISCONNECT: nothing after it counts.
    disconnected: bool,
    /// Commands to the device, once it subscribed to its command topic.
    commands: Option<CommandFeed>,
    /// Its desired settings, once it subscribed to its settings topic.
    settings: Option<SettingsFeed>,
}

/// A PUBLISH whose answer is to come.
struct InFlight {
    pkid: u16,
    qos1: bool,
    outcome: Outcome,
}

enum Outcome {
    /// With the gateway.
    Submitted(Submitted),
    /// Refused by the adapter (a topic not its own); answered in its turn.
    Refused(GatewayError),
}

impl InFlight {
    fn is_settled(&mut self) -> bool {
        match &mut self.outcome {
            Outcome::Submitted(submitted) => submitted.is_settled(),
            Outcome::Refused(_) => true,
        }
    }
}

/// What woke the idle loop.
enum Event {
    Read(io::Result<usize>),
    KeepAliveCheck,
    /// The device's command or settings feed should look at the store.
    Commands,
}

impl Link {
    async fn run(
        &mut self,
        conn: &mut Connection,
        session: &mut Session,
        gateway: &Arc<Gateway>,
    ) -> End {
        let far = Duration::from_secs(365 * 24 * 3600);
        let keep_alive = tokio::time::sleep(self.keep_alive.unwrap_or(far));
        tokio::pin!(keep_alive);
        // Ends of the session seen while a publish is with the gateway.
        let mut close_watch = session.close_watch();
        loop {
            if session.is_closed() {
                return session_closed(session.closed().await);
            }
            // Answers first: they make room for what the read buffer still holds.
            if let Err(end) = self.answer_settled(conn, session, gateway).await {
                return end;
            }
            if let Err(end) = self.take_packets(conn, session, gateway) {
                return end;
            }
            if let Some(feed) = &mut self.commands {
                feed.pump(self.version, &mut conn.out, gateway).await;
            }
            if let Some(feed) = &mut self.settings {
                feed.pump(self.version, &mut conn.out, gateway).await;
            }
            if !self.pending.is_empty() {
                let publishes = self.pending.drain(..).collect();
                // Boxed: verification's future is large, and an idle connection's task would
                // otherwise carry room for it (measured: +2.7 KB per connection).
                let submitted = Box::pin(submit_all(publishes, conn.source, session, gateway));
                self.inflight.extend(submitted.await);
            }
            // The answers that came together go out in one write.
            if conn.flush().await.is_err() {
                return End::Broken;
            }
            if session.is_closed() {
                continue;
            }
            let may_read = !self.eof
                && !self.disconnected
                && self.pending.len() + self.inflight.len() < self.max_pending;
            if let Some(front) = self.inflight.front_mut() {
                // Messages with the gateway: wait for the oldest, reading ahead meanwhile.
                // Keep-alive is not enforced here: the device may be waiting for us.
                let read = tokio::select! {
                    biased;
                    () = ready(front) => None,
                    // An ended session is handled at the top of the loop.
                    _ = close_watch.changed() => None,
                    () = commands_rung(&mut self.commands) => None,
                    () = settings_rung(&mut self.settings) => None,
                    read = conn.read_more(), if may_read => Some(read),
                };
                if let Some(read) = read {
                    if let Err(end) = self.heard(read) {
                        return end;
                    }
                }
                continue;
            }
            if self.disconnected || self.eof {
                return End::ClientDone;
            }
            // Idle: wait for the device, the gateway (an ended session) or the clock.
            let event = tokio::select! {
                reason = session.closed() => return session_closed(reason),
                () = &mut keep_alive, if self.keep_alive.is_some() => Event::KeepAliveCheck,
                read = conn.read_more() => Event::Read(read),
                () = commands_rung(&mut self.commands) => Event::Commands,
                () = settings_rung(&mut self.settings) => Event::Commands,
            };
            match event {
                Event::KeepAliveCheck => {
                    let deadline = self.last_heard + self.keep_alive.unwrap_or(far);
                    if Instant::now() >= deadline {
                        return End::Server(Code::KeepAliveTimeout, "keep alive timeout");
                    }
                    keep_alive.as_mut().reset(deadline);
                }
                Event::Read(read) => {
                    if let Err(end) = self.heard(read) {
                        return end;
                    }
                }
                // Pumped at the top of the loop.
                Event::Commands => {}
            }
        }
    }

    /// Answers the oldest PUBLISHes whose outcome is in, in order, into the output buffer
    /// (written once past `FLUSH_AT`).
    async fn answer_settled(
        &mut self,
        conn: &mut Connection,
        session: &Session,
        gateway: &Gateway,
    ) -> Result<(), End> {
        while self.inflight.front_mut().is_some_and(InFlight::is_settled) {
            let Some(InFlight {
                pkid,
                qos1,
                outcome,
            }) = self.inflight.pop_front()
            else {
                break;
            };
            let result = match outcome {
                Outcome::Submitted(submitted) => gateway.settle(session, submitted).await,
                Outcome::Refused(e) => Err(e),
            };
            match result {
                Ok(_) if qos1 => {
                    codec::puback(self.version, &mut conn.out, pkid).map_err(|_| End::Broken)?;
                }
                Ok(_) => {}
                // A session the gateway ended is answered by the caller, with its reason.
                Err(_) if session.is_closed() => return Ok(()),
                Err(e) => self.refuse(conn, qos1, pkid, &e)?,
            }
            if conn.out.len() >= FLUSH_AT {
                conn.flush().await.map_err(|_| End::Broken)?;
            }
        }
        Ok(())
    }

    /// Notes a read: bytes heard (keep-alive), end of stream, or a broken socket.
    fn heard(&mut self, read: io::Result<usize>) -> Result<(), End> {
        match read {
            // A TLS peer that closes without close_notify is done all the same: what it sent
            // before is still handled.
            Ok(0) => self.eof = true,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => self.eof = true,
            Ok(_) => self.last_heard = Instant::now(),
            Err(_) => return Err(End::Broken),
        }
        Ok(())
    }

    /// Takes whole packets from the read buffer while the queue has room: answers what can
    /// be answered at once (PINGREQ, SUBSCRIBE), queues PUBLISHes, ends on a violation.
    fn take_packets(
        &mut self,
        conn: &mut Connection,
        session: &Session,
        gateway: &Gateway,
    ) -> Result<(), End> {
        let device = session.admitted.device_id.as_str();
        let source = conn.source;
        let violation = |e: GatewayError, end: End| {
            gateway.refused(Transport::Mqtt, source, Some(device), &e);
            Err(end)
        };
        while !self.disconnected && self.pending.len() + self.inflight.len() < self.max_pending {
            let packet = match conn.next_packet(self.version) {
                Ok(Some(packet)) => packet,
                Ok(None) => return Ok(()),
                Err(ReadError::TooLarge) => {
                    return violation(
                        GatewayError::TooLarge,
                        End::Server(Code::PacketTooLarge, "packet too large"),
                    )
                }
                Err(_) => {
                    return violation(
                        GatewayError::Malformed("mqtt_packet"),
                        End::Server(Code::MalformedPacket, "malformed packet"),
                    )
                }
            };
            let answered = match packet {
                Inbound::Publish(publish) => {
                    if let Some((e, end)) = self.publish_violation(&publish) {
                        return violation(e, end);
                    }
                    self.pending.push_back(publish);
                    Ok(())
                }
                Inbound::PingReq => codec::pingresp(self.version, &mut conn.out),
                Inbound::Subscribe { pkid, filters } => {
                    let granted = self.subscribe(&filters, session, gateway);
                    codec::suback(self.version, &mut conn.out, pkid, &granted)
                }
                Inbound::Unsubscribe { pkid, filters } => {
                    let existed = self.unsubscribe(&filters);
                    codec::unsuback(self.version, &mut conn.out, pkid, &existed)
                }
                Inbound::PubAck { pkid } => {
                    if SettingsFeed::owns(pkid) {
                        if let Some(feed) = &mut self.settings {
                            feed.acked(pkid);
                        }
                    } else if let Some(feed) = &mut self.commands {
                        feed.acked(pkid);
                    }
                    Ok(())
                }
                Inbound::Disconnect => {
                    self.disconnected = true;
                    Ok(())
                }
                Inbound::Connect(_) | Inbound::Unexpected => {
                    return violation(
                        GatewayError::Malformed("mqtt_protocol"),
                        End::Server(Code::ProtocolError, "unexpected packet"),
                    )
                }
            };
            answered.map_err(|_| End::Broken)?;
        }
        Ok(())
    }

    /// Grants the device's own command and settings topics (QoS at most 1) and starts their
    /// feeds; refuses every other filter.
    fn subscribe(
        &mut self,
        filters: &[(String, u8)],
        session: &Session,
        gateway: &Gateway,
    ) -> Vec<Option<u8>> {
        let device = &session.admitted.device_id;
        let commands = command_topic(device.as_str());
        let settings = settings_topic(device.as_str());
        let granted: Vec<Option<u8>> = filters
            .iter()
            .map(|(filter, qos)| {
                if *filter == commands {
                    if self.commands.is_none() {
                        self.commands = Some(CommandFeed::new(gateway, device));
                    }
                } else if *filter == settings {
                    if self.settings.is_none() {
                        self.settings = Some(SettingsFeed::new(gateway, device));
                    }
                } else {
                    return None;
                }
                Some((*qos).min(1))
            })
            .collect();
        if granted.iter().any(Option::is_none) {
            tracing::debug!(
                device = device.as_str(),
                "MQTT SUBSCRIBE refused: only devices/{{own id}}/commands and /settings"
            );
        }
        granted
    }

    /// Stops the feeds whose topics are named; per filter, whether it was subscribed.
    fn unsubscribe(&mut self, filters: &[String]) -> Vec<bool> {
        filters
            .iter()
            .map(|f| {
                if self.commands.as_ref().is_some_and(|c| c.topic() == f) {
                    self.commands = None;
                    true
                } else if self.settings.as_ref().is_some_and(|c| c.topic() == f) {
                    self.settings = None;
                    true
                } else {
                    false
                }
            })
            .collect()
    }

    /// What ends the connection as soon as a PUBLISH is read, before it is queued.
    fn publish_violation(&self, publish: &InboundPublish) -> Option<(GatewayError, End)> {
        if publish.qos > 1 {
            // MQTT 5 §3.3.1.2: above the Maximum QoS of the CONNACK. MQTT 3.1.1 cannot say
            // it; the connection is closed all the same.
            return Some((
                GatewayError::Forbidden("qos_2"),
                End::Server(Code::QoSNotSupported, "QoS 2 is not supported"),
            ));
        }
        if publish.topic_alias {
            return Some((
                GatewayError::Malformed("topic_alias"),
                End::Server(Code::TopicAliasInvalid, "topic aliases are not supported"),
            ));
        }
        if publish.retain && self.version == Version::V5 {
            // MQTT 5 §3.3.1.3: Retain Available was 0. (MQTT 3.1.1 has no way to say so:
            // its retain flag is ignored, as nothing is ever delivered to subscribers.)
            return Some((
                GatewayError::Forbidden("retain"),
                End::Server(Code::RetainNotSupported, "retain is not supported"),
            ));
        }
        None
    }

    /// Answers a refused PUBLISH in the version's own way.
    fn refuse(
        &self,
        conn: &mut Connection,
        qos1: bool,
        pkid: u16,
        error: &GatewayError,
    ) -> Result<(), End> {
        match reason::publish_refusal(self.version, qos1, error) {
            PublishRefusal::Drop => Ok(()),
            PublishRefusal::Nack(code) => {
                let why = self.reason_strings.then(|| reason::reason_string(error));
                codec::puback_refused_v5(&mut conn.out, pkid, code, why).map_err(|_| End::Broken)
            }
            PublishRefusal::Disconnect(code) => {
                Err(End::Server(code, reason::reason_string(error)))
            }
            // MQTT 3.1.1: never written, the connection just closes.
            PublishRefusal::Close => Err(End::Server(Code::UnspecifiedError, "refused")),
        }
    }
}

fn session_closed(reason: CloseReason) -> End {
    let (code, why) = reason::session_closed_v5(reason);
    End::Server(code, why)
}

fn server_shutdown() -> End {
    End::Server(Code::ServerShuttingDown, "server shutting down")
}

/// Checks the topics of PUBLISHes read together and hands them to the gateway together
/// (verification happens here, in order; storing, in the gateway's ingest, with one write
/// when it is done in place).
async fn submit_all(
    publishes: Vec<InboundPublish>,
    source: IpAddr,
    session: &Session,
    gateway: &Gateway,
) -> Vec<InFlight> {
    let device = session.admitted.device_id.as_str();
    let mut inflight = Vec::with_capacity(publishes.len());
    let mut messages = Vec::with_capacity(publishes.len());
    for publish in &publishes {
        let outcome = match topic::destination(&publish.topic, device) {
            Ok(destination) => {
                let cose = publish.cose_content_type || is_tagged_cose(&publish.payload);
                messages.push((destination, publish.payload.clone(), cose));
                None
            }
            Err(e) => {
                gateway.refused(Transport::Mqtt, source, Some(device), &e);
                Some(Outcome::Refused(e))
            }
        };
        inflight.push((publish.pkid, publish.qos == 1, outcome));
    }
    let mut submitted = gateway.submit_all(session, messages).await.into_iter();
    inflight
        .into_iter()
        .map(|(pkid, qos1, outcome)| InFlight {
            pkid,
            qos1,
            outcome: outcome.unwrap_or_else(|| match submitted.next() {
                Some(submitted) => Outcome::Submitted(submitted),
                None => Outcome::Refused(GatewayError::Internal("a message got no answer".into())),
            }),
        })
        .collect()
}

/// Resolves when a subscribed device's feed should look for commands; never without one.
async fn commands_rung(feed: &mut Option<CommandFeed>) {
    match feed {
        Some(feed) => feed.rung().await,
        None => std::future::pending().await,
    }
}

/// Resolves when a subscribed device's settings feed should look again; never without one.
async fn settings_rung(feed: &mut Option<SettingsFeed>) {
    match feed {
        Some(feed) => feed.rung().await,
        None => std::future::pending().await,
    }
}

/// Resolves once the oldest message in flight is answered (without taking the answer).
async fn ready(front: &mut InFlight) {
    if let Outcome::Submitted(submitted) = &mut front.outcome {
        submitted.ready().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_cose_is_recognised_by_its_first_byte() {
        assert!(is_tagged_cose(&[0xD1, 0x84]));
        assert!(is_tagged_cose(&[0xD2, 0x84]));
        assert!(!is_tagged_cose(&[0x84])); // untagged
        assert!(!is_tagged_cose(&[0xD0]));
        assert!(!is_tagged_cose(b"{\"t\":21}"));
        assert!(!is_tagged_cose(&[]));
    }
}
