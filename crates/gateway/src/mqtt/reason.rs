//! The gateway's refusals in each MQTT version's own words: CONNACK return codes (MQTT 3.1.1
//! §3.2.2.3), MQTT 5 reason codes (§2.4) for CONNACK, PUBACK and DISCONNECT, and what to do
//! where MQTT 3.1.1 has no word at all (it cannot refuse a PUBLISH: the connection is closed,
//! so an unacknowledged QoS 1 message is sent again on the next connection).
//!
//! Like the HTTP adapter's problem bodies, a refusal says no more than the device needs:
//! which check failed is in the audit log, not in the reason code or reason string.

use rumqttc::mqttbytes::v4::ConnectReturnCode as ConnAckV311;
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode as ConnAckV5, DisconnectReasonCode, PubAckReason,
};

use super::protocol::Version;
use crate::session::CloseReason;
use crate::GatewayError;

/// The CONNACK return code refusing a connection for `error` (MQTT 3.1.1 §3.2.2.3).
pub fn connack_v311(error: &GatewayError) -> ConnAckV311 {
    match error {
        GatewayError::Malformed(_) | GatewayError::Unauthenticated(_) | GatewayError::TooLarge => {
            ConnAckV311::BadUserNamePassword
        }
        GatewayError::Forbidden(_)
        | GatewayError::Replay(_)
        | GatewayError::UnsupportedMediaType => ConnAckV311::NotAuthorized,
        GatewayError::RateLimited { .. }
        | GatewayError::Unavailable(_)
        | GatewayError::Internal(_) => ConnAckV311::ServiceUnavailable,
    }
}

/// The CONNACK reason code refusing a connection for `error` (MQTT 5 §3.2.2.2).
pub fn connack_v5(error: &GatewayError) -> ConnAckV5 {
    match error {
        GatewayError::Malformed(_) | GatewayError::Unauthenticated(_) => {
            ConnAckV5::BadUserNamePassword
        }
        GatewayError::Forbidden(_) | GatewayError::Replay(_) => ConnAckV5::NotAuthorized,
        GatewayError::TooLarge => ConnAckV5::PacketTooLarge,
        GatewayError::RateLimited { .. } => ConnAckV5::ServerBusy,
        GatewayError::Unavailable(_) => ConnAckV5::ServerUnavailable,
        GatewayError::UnsupportedMediaType | GatewayError::Internal(_) => {
            ConnAckV5::UnspecifiedError
        }
    }
}

/// What the adapter does about a PUBLISH the gateway refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishRefusal {
    /// QoS 0: nothing to answer; the message is gone.
    Drop,
    /// MQTT 5 QoS 1: a PUBACK with this reason code (and a short reason string).
    Nack(PubAckReason),
    /// MQTT 5: DISCONNECT with this reason code, then close.
    Disconnect(DisconnectReasonCode),
    /// MQTT 3.1.1: close the connection (no negative PUBACK exists; the device re-sends
    /// an unacknowledged QoS 1 message after reconnecting).
    Close,
}

/// What to do about a PUBLISH (`qos1`: QoS 1, else QoS 0) refused for `error`.
///
/// A QoS 0 message the device may not send at all (wrong credential, foreign topic,
/// unreadable COSE) ends an MQTT 5 connection with the matching reason and an MQTT 3.1.1
/// one without: dropping it silently would leave a misconfigured device talking to no one.
/// A QoS 0 message refused for a passing reason (replay, rate, sink) is dropped, as QoS 0
/// promises nothing.
pub fn publish_refusal(version: Version, qos1: bool, error: &GatewayError) -> PublishRefusal {
    let not_allowed = match error {
        GatewayError::Unauthenticated(_) | GatewayError::Forbidden(_) => {
            Some(DisconnectReasonCode::NotAuthorized)
        }
        GatewayError::Malformed(_) | GatewayError::UnsupportedMediaType => {
            Some(DisconnectReasonCode::PayloadFormatInvalid)
        }
        _ => None,
    };
    match (version, qos1, not_allowed) {
        (Version::V5, true, _) => PublishRefusal::Nack(puback_v5(error)),
        (Version::V5, false, Some(code)) => PublishRefusal::Disconnect(code),
        (Version::V311, true, _) | (Version::V311, false, Some(_)) => PublishRefusal::Close,
        (_, false, None) => PublishRefusal::Drop,
    }
}

/// The PUBACK reason code refusing a QoS 1 message for `error` (MQTT 5 §3.4.2.1).
pub fn puback_v5(error: &GatewayError) -> PubAckReason {
    match error {
        GatewayError::Malformed(_) | GatewayError::UnsupportedMediaType => {
            PubAckReason::PayloadFormatInvalid
        }
        GatewayError::Unauthenticated(_) | GatewayError::Forbidden(_) => {
            PubAckReason::NotAuthorized
        }
        GatewayError::Replay(_) | GatewayError::TooLarge => {
            PubAckReason::ImplementationSpecificError
        }
        GatewayError::RateLimited { .. } => PubAckReason::QuotaExceeded,
        GatewayError::Unavailable(_) | GatewayError::Internal(_) => PubAckReason::UnspecifiedError,
    }
}

/// The reason string an MQTT 5 refusal carries: what the device needs to act (retry or
/// not), never which check failed.
pub fn reason_string(error: &GatewayError) -> &'static str {
    match error {
        GatewayError::Malformed(_) => "malformed message",
        GatewayError::Unauthenticated(_) => "not authenticated",
        GatewayError::Forbidden(_) => "not authorized",
        GatewayError::Replay(_) => "replayed or stale message",
        GatewayError::TooLarge => "message too large",
        GatewayError::UnsupportedMediaType => "unsupported payload",
        GatewayError::RateLimited { .. } => "rate limited, retry later",
        GatewayError::Unavailable(_) => "temporarily unavailable, retry later",
        GatewayError::Internal(_) => "server error",
    }
}

/// The MQTT 5 DISCONNECT reason code and string for a session the gateway ended.
pub fn session_closed_v5(reason: CloseReason) -> (DisconnectReasonCode, &'static str) {
    match reason {
        CloseReason::TakenOver => (DisconnectReasonCode::SessionTakenOver, "session taken over"),
        CloseReason::DeviceInactive => (DisconnectReasonCode::NotAuthorized, "not authorized"),
        // The token or certificate the connection was admitted with is no longer valid:
        // connect again with a current one.
        CloseReason::Expired => (
            DisconnectReasonCode::MaximumConnectTime,
            "credential expired",
        ),
        CloseReason::Shutdown => (
            DisconnectReasonCode::ServerShuttingDown,
            "server shutting down",
        ),
        // MQTT 5 §3.14.2.1: 0x98, "the connection is closed due to an administrative action".
        CloseReason::Blocked => (
            DisconnectReasonCode::AdministrativeAction,
            "address blocked",
        ),
        // Never asked for (a session that is still open is not closed).
        CloseReason::Open => (DisconnectReasonCode::UnspecifiedError, "closed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_error() -> Vec<GatewayError> {
        vec![
            GatewayError::Malformed("cbor"),
            GatewayError::Unauthenticated("bad_mac"),
            GatewayError::Forbidden("inactive"),
            GatewayError::Replay("counter"),
            GatewayError::TooLarge,
            GatewayError::UnsupportedMediaType,
            GatewayError::RateLimited {
                retry_after_secs: 1,
            },
            GatewayError::Unavailable("sink".into()),
            GatewayError::Internal("bug".into()),
        ]
    }

    #[test]
    fn connack_codes_follow_each_version() {
        let cases: &[(GatewayError, u8, u8)] = &[
            (GatewayError::Unauthenticated("x"), 0x04, 0x86),
            (GatewayError::Malformed("x"), 0x04, 0x86),
            (GatewayError::Forbidden("x"), 0x05, 0x87),
            (GatewayError::Replay("x"), 0x05, 0x87),
            (GatewayError::TooLarge, 0x04, 0x95),
            (
                GatewayError::RateLimited {
                    retry_after_secs: 1,
                },
                0x03,
                0x89,
            ),
            (GatewayError::Unavailable("x".into()), 0x03, 0x88),
            (GatewayError::Internal("x".into()), 0x03, 0x80),
        ];
        for (error, v311, v5) in cases {
            assert_eq!(connack_v311(error) as u8, *v311, "{error:?}");
            assert_eq!(v5_connack_byte(connack_v5(error)), *v5, "{error:?}");
        }
    }

    /// The wire byte of a v5 CONNACK code, read back through the codec.
    fn v5_connack_byte(code: ConnAckV5) -> u8 {
        use rumqttc::v5::mqttbytes::v5::ConnAck;
        let mut buf = bytes::BytesMut::new();
        ConnAck {
            session_present: false,
            code,
            properties: None,
        }
        .write(&mut buf)
        .unwrap();
        buf[3]
    }

    #[test]
    fn mqtt5_qos1_refusals_are_negative_pubacks() {
        let expected: &[(GatewayError, PubAckReason)] = &[
            (
                GatewayError::Malformed("x"),
                PubAckReason::PayloadFormatInvalid,
            ),
            (
                GatewayError::Unauthenticated("x"),
                PubAckReason::NotAuthorized,
            ),
            (GatewayError::Forbidden("x"), PubAckReason::NotAuthorized),
            (
                GatewayError::Replay("x"),
                PubAckReason::ImplementationSpecificError,
            ),
            (
                GatewayError::RateLimited {
                    retry_after_secs: 1,
                },
                PubAckReason::QuotaExceeded,
            ),
            (
                GatewayError::Unavailable("x".into()),
                PubAckReason::UnspecifiedError,
            ),
        ];
        for (error, reason) in expected {
            assert_eq!(
                publish_refusal(Version::V5, true, error),
                PublishRefusal::Nack(*reason),
                "{error:?}"
            );
        }
    }

    #[test]
    fn mqtt5_qos0_refusals_disconnect_only_when_the_device_may_not_send() {
        use DisconnectReasonCode::{NotAuthorized, PayloadFormatInvalid};
        for error in every_error() {
            let expected = match &error {
                GatewayError::Unauthenticated(_) | GatewayError::Forbidden(_) => {
                    PublishRefusal::Disconnect(NotAuthorized)
                }
                GatewayError::Malformed(_) | GatewayError::UnsupportedMediaType => {
                    PublishRefusal::Disconnect(PayloadFormatInvalid)
                }
                _ => PublishRefusal::Drop,
            };
            assert_eq!(
                publish_refusal(Version::V5, false, &error),
                expected,
                "{error:?}"
            );
        }
    }

    #[test]
    fn mqtt311_cannot_refuse_a_publish_so_it_closes() {
        for error in every_error() {
            assert_eq!(
                publish_refusal(Version::V311, true, &error),
                PublishRefusal::Close,
                "{error:?}"
            );
        }
        let topic = GatewayError::Forbidden("topic_not_allowed");
        assert_eq!(
            publish_refusal(Version::V311, false, &topic),
            PublishRefusal::Close
        );
        let replay = GatewayError::Replay("counter");
        assert_eq!(
            publish_refusal(Version::V311, false, &replay),
            PublishRefusal::Drop
        );
    }

    #[test]
    fn retryable_refusals_say_retry_and_others_do_not() {
        for error in every_error() {
            assert_eq!(
                reason_string(&error).contains("retry"),
                error.is_retryable(),
                "{error:?}"
            );
            // Never the internal detail of which check failed.
            for detail in ["cbor", "bad_mac", "inactive", "counter", "sink", "bug"] {
                assert!(!reason_string(&error).contains(detail), "{error:?}");
            }
        }
    }

    #[test]
    fn gateway_closes_map_to_mqtt5_disconnect_codes() {
        let code = |reason| session_closed_v5(reason).0 as u8;
        assert_eq!(code(CloseReason::TakenOver), 0x8E);
        assert_eq!(code(CloseReason::DeviceInactive), 0x87);
        assert_eq!(code(CloseReason::Expired), 0xA0);
        assert_eq!(code(CloseReason::Shutdown), 0x8B);
    }
}
