//! The codec adapter against rumqttc's own reading of what it writes, and hostile bytes.

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
    suback(Version::V5, &mut out, 9, &[None, None]).unwrap();
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
    suback(Version::V311, &mut out, 3, &[None]).unwrap();
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
