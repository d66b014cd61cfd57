//! The adapter's view of MQTT packets, the same for both versions, over rumqttc's codecs
//! (`mqttbytes::v4` for 3.1.1, `v5::mqttbytes::v5` for 5). Packets are parsed and written
//! by the crate; this file only translates between its two sets of types and the few
//! things the adapter needs, so the connection logic is written once.

use std::fmt;
use std::io;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{v4, QoS};
use rumqttc::v5::mqttbytes::{v5, QoS as QoS5};

use super::protocol::Version;

/// The MQTT 5 content type that marks a payload as COSE (RFC 9052 §2's media type).
pub const COSE_CONTENT_TYPE: &str = "application/cose";

/// A packet from a client, reduced to what the adapter acts on.
#[derive(Debug)]
pub enum Inbound {
    Connect(ConnectRequest),
    Publish(InboundPublish),
    PingReq,
    /// SUBSCRIBE: each filter and its QoS; only the device's own command topic is granted
    /// (this adapter is not a broker).
    Subscribe {
        pkid: u16,
        filters: Vec<(String, u8)>,
    },
    /// UNSUBSCRIBE: the filters to drop.
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    /// PUBACK of a command the adapter published.
    PubAck {
        pkid: u16,
    },
    Disconnect,
    /// A packet a client of this adapter never sends (PUBREC, PUBREL... of QoS 2, CONNACK,
    /// SUBACK, AUTH): a protocol error.
    Unexpected,
}

/// What a CONNECT asks for.
pub struct ConnectRequest {
    pub client_id: String,
    pub keep_alive: u16,
    pub clean_start: bool,
    pub username: Option<String>,
    /// A device token or access token; never logged.
    pub password: Option<String>,
    /// MQTT 5: the session expiry the client asked for (the adapter keeps no session).
    pub session_expiry: Option<u32>,
    /// MQTT 5: the largest packet the client takes.
    pub client_max_packet: Option<u32>,
    /// MQTT 5: whether reason strings may go in PUBACKs (Request Problem Information).
    pub problem_information: bool,
    /// MQTT 5: an enhanced authentication method, which this adapter does not offer.
    pub authentication_method: bool,
}

impl fmt::Debug for ConnectRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectRequest")
            .field("client_id", &self.client_id)
            .field("keep_alive", &self.keep_alive)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// A PUBLISH from a device.
#[derive(Debug)]
pub struct InboundPublish {
    /// 0, 1 or 2.
    pub qos: u8,
    pub retain: bool,
    /// The packet identifier (0 for QoS 0).
    pub pkid: u16,
    pub topic: Bytes,
    pub payload: Bytes,
    /// MQTT 5: the content type says `application/cose`.
    pub cose_content_type: bool,
    /// MQTT 5: a topic alias, which this adapter never allows (Topic Alias Maximum 0).
    pub topic_alias: bool,
}

/// Why no packet came out of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// The buffer holds part of a packet; at least this many more bytes are needed.
    Incomplete(usize),
    /// The packet's remaining length is above the limit (nothing of it was consumed).
    TooLarge,
    /// The packet does not parse; the connection cannot continue.
    Malformed,
}

/// Takes the next packet out of `buf`, if a whole one is there. `max_remaining` bounds a
/// packet's remaining length; a larger one is refused from its fixed header alone.
pub fn read(
    version: Version,
    buf: &mut BytesMut,
    max_remaining: usize,
) -> Result<Inbound, ReadError> {
    match version {
        Version::V311 => read_v311(buf, max_remaining),
        Version::V5 => read_v5(buf, max_remaining),
    }
}

fn read_v311(buf: &mut BytesMut, max_remaining: usize) -> Result<Inbound, ReadError> {
    use rumqttc::mqttbytes::Error;
    let packet = v4::Packet::read(buf, max_remaining).map_err(|e| match e {
        Error::InsufficientBytes(n) => ReadError::Incomplete(n),
        Error::PayloadSizeLimitExceeded(_) => ReadError::TooLarge,
        _ => ReadError::Malformed,
    })?;
    Ok(match packet {
        v4::Packet::Connect(connect) => {
            let (username, password) = login(connect.login.map(|l| (l.username, l.password)));
            Inbound::Connect(ConnectRequest {
                client_id: connect.client_id,
                keep_alive: connect.keep_alive,
                clean_start: connect.clean_session,
                username,
                password,
                session_expiry: None,
                client_max_packet: None,
                problem_information: true,
                authentication_method: false,
            })
        }
        v4::Packet::Publish(publish) => Inbound::Publish(InboundPublish {
            qos: publish.qos as u8,
            retain: publish.retain,
            pkid: publish.pkid,
            topic: Bytes::from(publish.topic.into_bytes()),
            payload: publish.payload,
            cose_content_type: false,
            topic_alias: false,
        }),
        v4::Packet::PingReq => Inbound::PingReq,
        v4::Packet::Subscribe(s) => Inbound::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| (f.path, f.qos as u8))
                .collect(),
        },
        v4::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
        },
        v4::Packet::PubAck(a) => Inbound::PubAck { pkid: a.pkid },
        v4::Packet::Disconnect => Inbound::Disconnect,
        _ => Inbound::Unexpected,
    })
}

/// DISCONNECT's fixed-header byte (packet type 14, flags 0).
const DISCONNECT_BYTE: u8 = 0xE0;

fn read_v5(buf: &mut BytesMut, max_remaining: usize) -> Result<Inbound, ReadError> {
    use rumqttc::v5::mqttbytes::Error;
    let first = buf.first().copied();
    let max = u32::try_from(max_remaining).unwrap_or(u32::MAX);
    let packet = match v5::Packet::read(buf, Some(max)) {
        Ok(packet) => packet,
        // rumqttc 0.25 refuses a DISCONNECT with remaining length 0, which MQTT 5 §3.14.2.1
        // allows (reason 0x00, no properties: what most clients send). The packet is
        // consumed by then; it was a normal disconnect.
        Err(Error::PayloadRequired) if first == Some(DISCONNECT_BYTE) => {
            return Ok(Inbound::Disconnect)
        }
        Err(Error::InsufficientBytes(n)) => return Err(ReadError::Incomplete(n)),
        Err(Error::PayloadSizeLimitExceeded { .. }) => return Err(ReadError::TooLarge),
        Err(_) => return Err(ReadError::Malformed),
    };
    Ok(match packet {
        v5::Packet::Connect(connect, _will, login_fields) => {
            let (username, password) = login(login_fields.map(|l| (l.username, l.password)));
            let properties = connect.properties.as_ref();
            Inbound::Connect(ConnectRequest {
                client_id: connect.client_id,
                keep_alive: connect.keep_alive,
                clean_start: connect.clean_start,
                username,
                password,
                session_expiry: properties.and_then(|p| p.session_expiry_interval),
                client_max_packet: properties.and_then(|p| p.max_packet_size),
                problem_information: properties.and_then(|p| p.request_problem_info) != Some(0),
                authentication_method: properties
                    .is_some_and(|p| p.authentication_method.is_some()),
            })
        }
        v5::Packet::Publish(publish) => {
            let properties = publish.properties.as_ref();
            Inbound::Publish(InboundPublish {
                qos: publish.qos as u8,
                retain: publish.retain,
                pkid: publish.pkid,
                topic: publish.topic,
                payload: publish.payload,
                cose_content_type: properties
                    .and_then(|p| p.content_type.as_deref())
                    .is_some_and(|t| t.eq_ignore_ascii_case(COSE_CONTENT_TYPE)),
                topic_alias: properties.is_some_and(|p| p.topic_alias.is_some()),
            })
        }
        v5::Packet::PingReq(_) => Inbound::PingReq,
        v5::Packet::Subscribe(s) => Inbound::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| (f.path, f.qos as u8))
                .collect(),
        },
        v5::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
            pkid: u.pkid,
            filters: u.filters,
        },
        // A refusing PUBACK (MQTT 5 reason ≥ 0x80) also ends the delivery: the device has the
        // command and said no; the command stays delivered and waits for its result.
        v5::Packet::PubAck(a) => Inbound::PubAck { pkid: a.pkid },
        v5::Packet::Disconnect(_) => Inbound::Disconnect,
        _ => Inbound::Unexpected,
    })
}

/// User name and password; an empty field is an absent one (rumqttc reads absent as "").
fn login(fields: Option<(String, String)>) -> (Option<String>, Option<String>) {
    let present = |s: String| (!s.is_empty()).then_some(s);
    match fields {
        Some((username, password)) => (present(username), present(password)),
        None => (None, None),
    }
}

/// What an MQTT 5 CONNACK tells an admitted client about this server.
#[derive(Debug, Clone)]
pub struct ServerTerms {
    /// Receive Maximum: QoS 1 messages in flight.
    pub receive_maximum: u16,
    /// Maximum Packet Size, whole packet.
    pub max_packet_size: u32,
    /// Server Keep Alive, when it differs from what the client asked.
    pub server_keep_alive: Option<u16>,
    /// Assigned Client Identifier, when the client sent none.
    pub assigned_client_id: Option<String>,
    /// Session Expiry Interval 0, when the client asked for a session that outlives the
    /// connection (the adapter keeps none).
    pub no_session: bool,
}

/// Writes a CONNACK accepting the connection.
pub fn connack_accepted(
    version: Version,
    out: &mut BytesMut,
    terms: &ServerTerms,
) -> io::Result<()> {
    match version {
        Version::V311 => {
            encoded(v4::ConnAck::new(v4::ConnectReturnCode::Success, false).write(out))
        }
        Version::V5 => encoded(
            v5::ConnAck {
                session_present: false,
                code: v5::ConnectReturnCode::Success,
                properties: Some(v5::ConnAckProperties {
                    session_expiry_interval: terms.no_session.then_some(0),
                    receive_max: Some(terms.receive_maximum),
                    // MQTT 5 §3.2.2.3.4: QoS 2 is not offered.
                    max_qos: Some(1),
                    retain_available: Some(0),
                    max_packet_size: Some(terms.max_packet_size),
                    assigned_client_identifier: terms.assigned_client_id.clone(),
                    // Topic Alias Maximum absent = 0: no aliases.
                    topic_alias_max: None,
                    reason_string: None,
                    user_properties: Vec::new(),
                    wildcard_subscription_available: Some(0),
                    subscription_identifiers_available: Some(0),
                    shared_subscription_available: Some(0),
                    server_keep_alive: terms.server_keep_alive,
                    response_information: None,
                    server_reference: None,
                    authentication_method: None,
                    authentication_data: None,
                }),
            }
            .write(out),
        ),
    }
}

/// Writes an MQTT 3.1.1 CONNACK refusing the connection.
pub fn connack_refused_v311(out: &mut BytesMut, code: v4::ConnectReturnCode) -> io::Result<()> {
    encoded(v4::ConnAck::new(code, false).write(out))
}

/// Writes an MQTT 5 CONNACK refusing the connection, with a reason string.
pub fn connack_refused_v5(
    out: &mut BytesMut,
    code: v5::ConnectReturnCode,
    reason: &str,
) -> io::Result<()> {
    encoded(
        v5::ConnAck {
            session_present: false,
            code,
            properties: Some(v5::ConnAckProperties {
                reason_string: Some(reason.to_owned()),
                ..no_connack_properties()
            }),
        }
        .write(out),
    )
}

fn no_connack_properties() -> v5::ConnAckProperties {
    v5::ConnAckProperties {
        session_expiry_interval: None,
        receive_max: None,
        max_qos: None,
        retain_available: None,
        max_packet_size: None,
        assigned_client_identifier: None,
        topic_alias_max: None,
        reason_string: None,
        user_properties: Vec::new(),
        wildcard_subscription_available: None,
        subscription_identifiers_available: None,
        shared_subscription_available: None,
        server_keep_alive: None,
        response_information: None,
        server_reference: None,
        authentication_method: None,
        authentication_data: None,
    }
}

/// Writes a PUBACK: the message is in the sink.
pub fn puback(version: Version, out: &mut BytesMut, pkid: u16) -> io::Result<()> {
    match version {
        Version::V311 => encoded(v4::PubAck::new(pkid).write(out)),
        Version::V5 => encoded(v5::PubAck::new(pkid, None).write(out)),
    }
}

/// Writes an MQTT 5 PUBACK refusing the message.
pub fn puback_refused_v5(
    out: &mut BytesMut,
    pkid: u16,
    reason: v5::PubAckReason,
    reason_string: Option<&str>,
) -> io::Result<()> {
    encoded(
        v5::PubAck {
            pkid,
            reason,
            properties: reason_string.map(|r| v5::PubAckProperties {
                reason_string: Some(r.to_owned()),
                user_properties: Vec::new(),
            }),
        }
        .write(out),
    )
}

/// Writes a SUBACK: per filter, the QoS granted, or `None` for a refusal (MQTT 3.1.1 0x80
/// Failure, MQTT 5 0x87 Not authorized).
pub fn suback(
    version: Version,
    out: &mut BytesMut,
    pkid: u16,
    granted: &[Option<u8>],
) -> io::Result<()> {
    let qos = |q: u8| {
        if q == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        }
    };
    let qos5 = |q: u8| {
        if q == 0 {
            QoS5::AtMostOnce
        } else {
            QoS5::AtLeastOnce
        }
    };
    match version {
        Version::V311 => encoded(
            v4::SubAck::new(
                pkid,
                granted
                    .iter()
                    .map(|g| {
                        g.map_or(v4::SubscribeReasonCode::Failure, |q| {
                            v4::SubscribeReasonCode::Success(qos(q))
                        })
                    })
                    .collect(),
            )
            .write(out),
        ),
        Version::V5 => encoded(
            v5::SubAck {
                pkid,
                return_codes: granted
                    .iter()
                    .map(|g| {
                        g.map_or(v5::SubscribeReasonCode::NotAuthorized, |q| {
                            v5::SubscribeReasonCode::Success(qos5(q))
                        })
                    })
                    .collect(),
                properties: None,
            }
            .write(out),
        ),
    }
}

/// Writes an UNSUBACK; MQTT 5 says per filter whether there was such a subscription.
pub fn unsuback(
    version: Version,
    out: &mut BytesMut,
    pkid: u16,
    existed: &[bool],
) -> io::Result<()> {
    match version {
        Version::V311 => encoded(v4::UnsubAck::new(pkid).write(out)),
        Version::V5 => encoded(
            v5::UnsubAck {
                pkid,
                reasons: existed
                    .iter()
                    .map(|&e| {
                        if e {
                            v5::UnsubAckReason::Success
                        } else {
                            v5::UnsubAckReason::NoSubscriptionExisted
                        }
                    })
                    .collect(),
                properties: None,
            }
            .write(out),
        ),
    }
}

/// Writes a QoS 1 PUBLISH of a signed command to the device (MQTT 5: with the content type
/// `application/cose`).
pub fn publish_command(
    version: Version,
    out: &mut BytesMut,
    topic: &str,
    pkid: u16,
    payload: Bytes,
) -> io::Result<()> {
    match version {
        Version::V311 => {
            let mut publish = v4::Publish::new(topic, QoS::AtLeastOnce, Vec::new());
            publish.pkid = pkid;
            publish.payload = payload;
            encoded(publish.write(out))
        }
        Version::V5 => encoded(
            v5::Publish {
                dup: false,
                qos: QoS5::AtLeastOnce,
                retain: false,
                topic: Bytes::copy_from_slice(topic.as_bytes()),
                pkid,
                payload,
                properties: Some(v5::PublishProperties {
                    content_type: Some(COSE_CONTENT_TYPE.to_owned()),
                    ..Default::default()
                }),
            }
            .write(out),
        ),
    }
}

/// Writes a PINGRESP.
pub fn pingresp(version: Version, out: &mut BytesMut) -> io::Result<()> {
    match version {
        Version::V311 => encoded(v4::PingResp.write(out)),
        Version::V5 => encoded(v5::PingResp::write(out)),
    }
}

/// Writes an MQTT 5 DISCONNECT from the server, with a reason string.
pub fn disconnect_v5(
    out: &mut BytesMut,
    code: v5::DisconnectReasonCode,
    reason: &str,
) -> io::Result<()> {
    // Always with a non-empty properties block: rumqttc 0.25 miscounts the remaining length
    // of a DISCONNECT with a reason code and no properties, and writes one whose properties
    // are empty as a normal disconnection.
    let reason = if reason.is_empty() {
        "disconnected"
    } else {
        reason
    };
    encoded(
        v5::Disconnect {
            reason_code: code,
            properties: Some(v5::DisconnectProperties {
                session_expiry_interval: None,
                reason_string: Some(reason.to_owned()),
                user_properties: Vec::new(),
                server_reference: None,
            }),
        }
        .write(out),
    )
}

/// The codec's writers fail only on a packet over 256 MiB, which the adapter never builds.
fn encoded<E: fmt::Display>(written: Result<usize, E>) -> io::Result<()> {
    written
        .map(|_| ())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

#[cfg(test)]
mod tests;
