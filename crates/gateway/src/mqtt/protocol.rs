//! Which MQTT a connection speaks, read from its first bytes before any codec runs: the two
//! codecs (3.1.1 and 5) disagree on the CONNECT's layout after the protocol level, so the
//! level picks the codec. Only the fixed header, the protocol name and the level are looked
//! at here; the packet itself is parsed by the codec.

/// The MQTT versions the adapter speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

impl Version {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V311 => "3.1.1",
            Self::V5 => "5",
        }
    }
}

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// Too few bytes yet to tell.
    NeedMore,
    /// A CONNECT for a version we speak.
    Version(Version),
    /// A CONNECT for another MQTT (3.1's `MQIsdp` level 3, a future level): MQTT 3.1.1
    /// §3.1.2.2 answers CONNACK 0x01 "unacceptable protocol version" and closes.
    UnsupportedLevel(u8),
    /// Not an MQTT CONNECT at all (another packet first, another protocol, a CONNECT too
    /// short to hold its own header): closed without an answer (MQTT 3.1.1 §3.1.0-1).
    NotConnect,
}

/// CONNECT's first byte: packet type 1, flags 0 (MQTT 3.1.1 §2.2, MQTT 5 §2.1.3).
const CONNECT: u8 = 0x10;

/// Reads the protocol level of the CONNECT that `bytes` starts with.
pub fn detect(bytes: &[u8]) -> Detected {
    let Some(&first) = bytes.first() else {
        return Detected::NeedMore;
    };
    if first != CONNECT {
        return Detected::NotConnect;
    }
    // Remaining Length: a variable byte integer of 1 to 4 bytes (MQTT 3.1.1 §2.2.3).
    let mut remaining: usize = 0;
    let mut header = 1;
    loop {
        let Some(&byte) = bytes.get(header) else {
            return Detected::NeedMore;
        };
        remaining |= usize::from(byte & 0x7F) << (7 * (header - 1));
        header += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if header > 4 {
            return Detected::NotConnect;
        }
    }
    // Variable header: protocol name (u16 length + bytes), then the level byte.
    let name_len = match (bytes.get(header), bytes.get(header + 1)) {
        (Some(&hi), Some(&lo)) => usize::from(u16::from_be_bytes([hi, lo])),
        // Not yet here; a packet too short to ever hold them is not a CONNECT.
        _ if remaining < 2 => return Detected::NotConnect,
        _ => return Detected::NeedMore,
    };
    let level_at = header + 2 + name_len;
    if level_at >= header + remaining {
        // The level would lie past the end of the packet.
        return Detected::NotConnect;
    }
    let (Some(name), Some(&level)) = (bytes.get(header + 2..level_at), bytes.get(level_at)) else {
        return Detected::NeedMore;
    };
    match (name, level) {
        (b"MQTT", 4) => Detected::Version(Version::V311),
        (b"MQTT", 5) => Detected::Version(Version::V5),
        (b"MQTT" | b"MQIsdp", level) => Detected::UnsupportedLevel(level),
        _ => Detected::NotConnect,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CONNECT's first bytes up to the level (remaining length 12 is arbitrary).
    fn connect(name: &[u8], level: u8) -> Vec<u8> {
        let mut bytes = vec![0x10, 12, 0, name.len() as u8];
        bytes.extend_from_slice(name);
        bytes.push(level);
        bytes
    }

    #[test]
    fn level_4_is_mqtt_3_1_1_and_level_5_is_mqtt_5() {
        assert_eq!(
            detect(&connect(b"MQTT", 4)),
            Detected::Version(Version::V311)
        );
        assert_eq!(detect(&connect(b"MQTT", 5)), Detected::Version(Version::V5));
    }

    #[test]
    fn a_real_mosquitto_connect_is_detected() {
        // mosquitto_pub -V mqttv311 -i x: CONNECT, remaining 13, "MQTT", level 4, flags 2.
        let packet = [
            0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'x',
        ];
        assert_eq!(detect(&packet), Detected::Version(Version::V311));
    }

    #[test]
    fn a_multi_byte_remaining_length_is_skipped() {
        let mut packet = vec![0x10, 0x80 | 0x2C, 0x01, 0, 4];
        packet.extend_from_slice(b"MQTT");
        packet.push(5);
        assert_eq!(detect(&packet), Detected::Version(Version::V5));
    }

    #[test]
    fn other_levels_are_unsupported() {
        assert_eq!(
            detect(&connect(b"MQIsdp", 3)),
            Detected::UnsupportedLevel(3)
        );
        assert_eq!(detect(&connect(b"MQTT", 3)), Detected::UnsupportedLevel(3));
        assert_eq!(detect(&connect(b"MQTT", 6)), Detected::UnsupportedLevel(6));
        assert_eq!(detect(&connect(b"MQTT", 0)), Detected::UnsupportedLevel(0));
    }

    #[test]
    fn every_truncation_of_a_connect_needs_more() {
        let full = connect(b"MQTT", 5);
        for end in 0..full.len() {
            assert_eq!(detect(&full[..end]), Detected::NeedMore, "{end} bytes");
        }
    }

    #[test]
    fn hostile_first_bytes_are_not_a_connect() {
        let hostile: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\n",
            b"\x16\x03\x01\x02\x00", // a TLS ClientHello on the plain port
            &[0x30, 5, 0, 1, b'a', 0, 0], // PUBLISH before CONNECT
            &[0xC0, 0],              // PINGREQ before CONNECT
            &[0x11, 12, 0, 4, b'M', b'Q', b'T', b'T', 4], // reserved flags set
            &[0x10, 0x80, 0x80, 0x80, 0x80, 0x01], // remaining length of 5 bytes
            &[0x10, 0],              // CONNECT with nothing in it
            &[0x10, 2, 0, 4],        // name longer than the packet
            &[0x10, 6, 0, 4, b'M', b'Q', b'T', b'T', 4], // level past the end
            &[0x10, 12, 0, 4, b'm', b'q', b't', b't', 4],
            &[0x10, 12, 0, 3, b'M', b'Q', b'T', 4],
            &[0x10, 12, 0xFF, 0xFF],
        ];
        for bytes in hostile {
            assert_eq!(detect(bytes), Detected::NotConnect, "{bytes:?}");
        }
    }
}
