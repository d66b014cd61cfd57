//! The adapter's view of MQTT packets, the same for both versions, over rumqttc's codecs
//! (`mqttbytes::v4` for 3.1.1, `v5::mqttbytes::v5` for 5). Packets are parsed and written
//! by the crate; this file only translates between its two sets of types and the few
//! things the adapter needs, so the connection logic is written once.

use std::fmt;
use std::io;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

use super::protocol::Version;

/// The MQTT 5 content type that marks a payload as COSE (RFC 9052 §2's media type).
pub const COSE_CONTENT_TYPE: &str = "application/cose";

/// A packet from a client, reduced to what the adapter acts on.
#[derive(Debug)]
pub enum Inbound {
    Connect(ConnectRequest),
    Publish(InboundPublish),
    PingReq,
    /// SUBSCRIBE: refused filter by filter (this adapter is an ingress, not a broker).
    Subscribe {
        pkid: u16,
        filters: usize,
    },
    /// UNSUBSCRIBE: acknowledged (there is never a subscription to remove).
    Unsubscribe {
        pkid: u16,
        filters: usize,
    },
    Disconnect,
    /// A packet a client of this adapter never sends (PUBACK, PUBREL... for publishes it
    /// never received, CONNACK, SUBACK, AUTH): a protocol error.
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
            filters: s.filters.len(),
        },
        v4::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics.len(),
        },
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
            filters: s.filters.len(),
        },
        v5::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
            pkid: u.pkid,
            filters: u.filters.len(),
        },
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

/// Writes a SUBACK refusing every filter (MQTT 3.1.1 0x80 Failure, MQTT 5 0x87 Not
/// authorized).
pub fn suback_refused(
    version: Version,
    out: &mut BytesMut,
    pkid: u16,
    filters: usize,
) -> io::Result<()> {
    match version {
        Version::V311 => encoded(
            v4::SubAck::new(pkid, vec![v4::SubscribeReasonCode::Failure; filters]).write(out),
        ),
        Version::V5 => encoded(
            v5::SubAck {
                pkid,
                return_codes: vec![v5::SubscribeReasonCode::NotAuthorized; filters],
                properties: None,
            }
            .write(out),
        ),
    }
}

/// Writes an UNSUBACK (MQTT 5: 0x11 No subscription existed, per filter).
pub fn unsuback(version: Version, out: &mut BytesMut, pkid: u16, filters: usize) -> io::Result<()> {
    match version {
        Version::V311 => encoded(v4::UnsubAck::new(pkid).write(out)),
        Version::V5 => encoded(
            v5::UnsubAck {
                pkid,
                reasons: vec![v5::UnsubAckReason::NoSubscriptionExisted; filters],
                properties: None,
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
mod tests {
    use super::*;
    use rumqttc::v5::mqttbytes::QoS;

    fn read_all(version: Version, bytes: &[u8]) -> Result<Inbound, ReadError> {
        let mut buf = BytesMut::from(bytes);
        read(version, &mut buf, 1024)
    }

    /// An MQTT 5 PUBLISH as a client writes it.
    fn publish_v5(topic: &str, qos: QoS, content_type: Option<&str>) -> Vec<u8> {
        let mut publish = v5::Publish::new(
            topic,
            qos,
            Bytes::from_static(b"\xd1payload"),
            content_type.map(|t| v5::PublishProperties {
                content_type: Some(t.to_owned()),
                ..Default::default()
            }),
        );
        publish.pkid = u16::from(qos != QoS::AtMostOnce) * 7;
        let mut buf = BytesMut::new();
        publish.write(&mut buf).unwrap();
        buf.to_vec()
    }

    #[test]
    fn a_bare_mqtt5_disconnect_is_a_normal_disconnect() {
        let mut buf = BytesMut::from(&[0xE0, 0x00, 0xC0, 0x00][..]);
        assert!(matches!(
            read(Version::V5, &mut buf, 1024),
            Ok(Inbound::Disconnect)
        ));
        // The next packet is intact.
        assert!(matches!(
            read(Version::V5, &mut buf, 1024),
            Ok(Inbound::PingReq)
        ));
        assert!(matches!(
            read_all(Version::V311, &[0xE0, 0x00]),
            Ok(Inbound::Disconnect)
        ));
    }

    #[test]
    fn mqtt5_disconnect_reads_back_with_its_reason_and_nothing_left_over() {
        for code in [
            v5::DisconnectReasonCode::SessionTakenOver,
            v5::DisconnectReasonCode::NotAuthorized,
            v5::DisconnectReasonCode::ServerShuttingDown,
            v5::DisconnectReasonCode::PacketTooLarge,
        ] {
            let mut out = BytesMut::new();
            disconnect_v5(&mut out, code, "why").unwrap();
            disconnect_v5(&mut out, code, "").unwrap();
            for _ in 0..2 {
                match v5::Packet::read(&mut out, None).unwrap() {
                    v5::Packet::Disconnect(d) => assert_eq!(d.reason_code, code),
                    other => panic!("{other:?}"),
                }
            }
            assert!(out.is_empty(), "{code:?}: trailing bytes {out:?}");
        }
    }

    #[test]
    fn mqtt5_connack_states_the_server_terms() {
        let terms = ServerTerms {
            receive_maximum: 64,
            max_packet_size: 70_000,
            server_keep_alive: Some(300),
            assigned_client_id: Some("sensor-1".into()),
            no_session: true,
        };
        let mut out = BytesMut::new();
        connack_accepted(Version::V5, &mut out, &terms).unwrap();
        let v5::Packet::ConnAck(ack) = v5::Packet::read(&mut out, None).unwrap() else {
            panic!("not a CONNACK");
        };
        assert_eq!(ack.code, v5::ConnectReturnCode::Success);
        let p = ack.properties.unwrap();
        assert_eq!(p.receive_max, Some(64));
        assert_eq!(p.max_qos, Some(1));
        assert_eq!(p.retain_available, Some(0));
        assert_eq!(p.max_packet_size, Some(70_000));
        assert_eq!(p.server_keep_alive, Some(300));
        assert_eq!(p.session_expiry_interval, Some(0));
        assert_eq!(p.assigned_client_identifier.as_deref(), Some("sensor-1"));
        assert_eq!(p.wildcard_subscription_available, Some(0));
        assert!(out.is_empty());
    }

    #[test]
    fn refusals_read_back_as_the_client_sees_them() {
        let mut out = BytesMut::new();
        connack_refused_v5(&mut out, v5::ConnectReturnCode::BadUserNamePassword, "no").unwrap();
        puback_refused_v5(
            &mut out,
            7,
            v5::PubAckReason::NotAuthorized,
            Some("not authorized"),
        )
        .unwrap();
        puback_refused_v5(&mut out, 8, v5::PubAckReason::QuotaExceeded, None).unwrap();
        suback_refused(Version::V5, &mut out, 9, 2).unwrap();
        let packets: Vec<_> = (0..4)
            .map(|_| v5::Packet::read(&mut out, None).unwrap())
            .collect();
        assert!(out.is_empty());
        assert!(matches!(&packets[0], v5::Packet::ConnAck(a)
            if a.code == v5::ConnectReturnCode::BadUserNamePassword));
        assert!(matches!(&packets[1], v5::Packet::PubAck(a)
            if a.pkid == 7 && a.reason == v5::PubAckReason::NotAuthorized));
        assert!(matches!(&packets[2], v5::Packet::PubAck(a)
            if a.pkid == 8 && a.reason == v5::PubAckReason::QuotaExceeded));
        assert!(matches!(&packets[3], v5::Packet::SubAck(a)
            if a.return_codes == vec![v5::SubscribeReasonCode::NotAuthorized; 2]));

        let mut out = BytesMut::new();
        connack_refused_v311(&mut out, v4::ConnectReturnCode::NotAuthorized).unwrap();
        suback_refused(Version::V311, &mut out, 3, 1).unwrap();
        assert_eq!(&out[..], &[0x20, 2, 0, 5, 0x90, 3, 0, 3, 0x80]);
    }

    #[test]
    fn publish_fields_come_through_and_the_cose_content_type_is_seen() {
        let bytes = publish_v5(
            "devices/a/telemetry",
            QoS::AtLeastOnce,
            Some("application/cose"),
        );
        let Ok(Inbound::Publish(p)) = read_all(Version::V5, &bytes) else {
            panic!("not a PUBLISH");
        };
        assert_eq!((p.qos, p.pkid, p.retain), (1, 7, false));
        assert_eq!(&p.topic[..], b"devices/a/telemetry");
        assert_eq!(&p.payload[..], b"\xd1payload");
        assert!(p.cose_content_type);
        let plain = publish_v5("t", QoS::AtMostOnce, Some("application/json"));
        assert!(matches!(read_all(Version::V5, &plain),
            Ok(Inbound::Publish(p)) if !p.cose_content_type && p.pkid == 0));
    }

    #[test]
    fn a_packet_over_the_limit_is_refused_from_its_fixed_header() {
        // PUBLISH claiming 1 MiB; only the header has arrived.
        let header = [0x30, 0x80, 0x80, 0x40];
        for version in [Version::V311, Version::V5] {
            assert_eq!(read_all(version, &header).err(), Some(ReadError::TooLarge));
        }
    }

    #[test]
    fn every_truncation_of_a_packet_is_incomplete() {
        let bytes = publish_v5("devices/a/telemetry/s", QoS::AtLeastOnce, None);
        for end in 0..bytes.len() {
            let result = read_all(Version::V5, &bytes[..end]);
            assert!(
                matches!(result, Err(ReadError::Incomplete(_))),
                "{end}: {result:?}"
            );
        }
    }

    #[test]
    fn hostile_packets_are_malformed_not_a_panic() {
        let hostile: &[&[u8]] = &[
            &[0x30, 0x02, 0x00, 0x05],             // topic longer than the packet
            &[0x32, 0x03, 0x00, 0x00, 0x00],       // QoS 1 with packet id 0
            &[0x36, 0x03, 0x00, 0x00, 0x01],       // QoS 3
            &[0x82, 0x02, 0x00, 0x01],             // SUBSCRIBE without a filter
            &[0xF0, 0x00],                         // AUTH / reserved type
            &[0x00, 0x00],                         // reserved type 0
            &[0x10, 0x03, 0x00, 0x01, b'X'],       // CONNECT, not "MQTT"
            &[0xE0, 0x01, 0x42],                   // DISCONNECT with an unknown reason (v5)
            &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], // remaining length of 5 bytes
        ];
        for bytes in hostile {
            for version in [Version::V311, Version::V5] {
                let result = read_all(version, bytes);
                assert!(
                    !matches!(result, Ok(Inbound::Publish(_) | Inbound::Subscribe { .. })),
                    "{version:?} {bytes:?}: {result:?}"
                );
            }
        }
        // A non-UTF-8 topic: MQTT 3.1.1's codec refuses it; MQTT 5's passes the bytes on
        // (`topic::telemetry_stream` refuses them).
        let bad_topic = [0x30, 0x05, 0x00, 0x01, 0xFF, 0x00, 0x00];
        assert_eq!(
            read_all(Version::V311, &bad_topic).err(),
            Some(ReadError::Malformed)
        );
        // Pseudo-random bytes: whatever comes out, nothing panics.
        let mut state: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            let len = (state % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            let _ = read_all(Version::V311, &bytes);
            let _ = read_all(Version::V5, &bytes);
        }
    }
}
