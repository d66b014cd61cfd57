//! The first packet of a connection: one CONNECT, whole within the connect timeout, then
//! the device's credential — its TLS client certificate if it showed one (a user name, if
//! given, must then be its device id), else user name = device id and password = device
//! token or access token — verified by the gateway, and the CONNACK.

use std::sync::Arc;

use rumqttc::mqttbytes::v4::ConnectReturnCode as ConnAckV311;
use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as ConnAckV5;

use super::codec::{self, ConnectRequest, Inbound, ReadError, ServerTerms};
use super::connection::Connection;
use super::protocol::{self, Detected, Version};
use super::reason;
use crate::service::{ConnectCredential, Gateway};
use crate::session::{Session, Transport};
use crate::GatewayError;

/// A CONNECT may be larger than a PUBLISH allows when messages are configured small: a
/// device token signed with RSA is over a kilobyte.
const MIN_CONNECT_LIMIT: usize = 8 * 1024;

/// Why no CONNECT came.
#[derive(Debug)]
pub enum NoConnect {
    /// The client went away (or the socket failed) first.
    Gone,
    /// It answered with something else, or a CONNECT the codec cannot read.
    Refused(GatewayError, Option<Version>),
    /// A CONNECT for an MQTT this adapter does not speak.
    UnsupportedLevel(u8),
}

/// Reads bytes until they hold a whole CONNECT (the caller bounds the time).
pub async fn read_connect(conn: &mut Connection) -> Result<(Version, ConnectRequest), NoConnect> {
    let message_limit = conn.max_remaining;
    conn.max_remaining = message_limit.max(MIN_CONNECT_LIMIT);
    let result = read_whole_connect(conn).await;
    conn.max_remaining = message_limit;
    result
}

async fn read_whole_connect(conn: &mut Connection) -> Result<(Version, ConnectRequest), NoConnect> {
    let malformed = |v| NoConnect::Refused(GatewayError::Malformed("connect"), v);
    loop {
        let version = match protocol::detect(conn.buffered()) {
            Detected::NeedMore => None,
            Detected::Version(version) => Some(version),
            Detected::UnsupportedLevel(level) => return Err(NoConnect::UnsupportedLevel(level)),
            Detected::NotConnect => return Err(malformed(None)),
        };
        if let Some(version) = version {
            match conn.next_packet(version) {
                Ok(Some(Inbound::Connect(request))) => return Ok((version, request)),
                // The first byte said CONNECT; anything else is the codec's surprise.
                Ok(Some(_)) => return Err(malformed(Some(version))),
                Ok(None) => {}
                Err(ReadError::TooLarge) => {
                    return Err(NoConnect::Refused(GatewayError::TooLarge, Some(version)))
                }
                Err(_) => return Err(malformed(Some(version))),
            }
        }
        match conn.read_more().await {
            Ok(0) | Err(_) => return Err(NoConnect::Gone),
            Ok(_) => {}
        }
    }
}

/// An admitted device's connection, CONNACK sent.
pub struct Admission {
    pub session: Session,
    pub version: Version,
    /// The keep-alive in force (0: none).
    pub keep_alive_secs: u16,
    /// MQTT 5: whether refusals may carry reason strings.
    pub reason_strings: bool,
}

/// Verifies the CONNECT's credential and answers it. `None`: refused (the answer is in
/// `conn.out`, the refusal counted); the caller closes the connection.
pub async fn admit(
    conn: &mut Connection,
    gateway: &Arc<Gateway>,
    version: Version,
    mut request: ConnectRequest,
    peer_certificates: Option<Vec<Vec<u8>>>,
) -> Option<Admission> {
    let source = conn.source;
    if let Err(problem) = protocol_checks(version, &request) {
        let written = match version {
            Version::V311 => codec::connack_refused_v311(&mut conn.out, problem.connack_v311()),
            Version::V5 => {
                codec::connack_refused_v5(&mut conn.out, problem.connack_v5(), problem.reason())
            }
        };
        if written.is_err() {
            conn.out.clear();
        }
        gateway.refused(
            Transport::Mqtt,
            source,
            request.username.as_deref(),
            &problem.error(),
        );
        return None;
    }
    let from_certificate = peer_certificates.is_some();
    let credential = match (peer_certificates, request.password.take()) {
        (Some(chain), _) => ConnectCredential::Certificate(chain),
        (None, Some(token)) => ConnectCredential::Token {
            token,
            claimed_device: request.username.clone(),
            leaf: None,
            dpop: None,
        },
        (None, None) => {
            let e = GatewayError::Unauthenticated("no_credential");
            refuse_connect(conn, version, &e);
            gateway.refused(Transport::Mqtt, source, request.username.as_deref(), &e);
            return None;
        }
    };
    let limits = gateway.limits();
    let authenticated = tokio::time::timeout(
        limits.connect_timeout,
        Box::pin(gateway.authenticate(Transport::Mqtt, credential, source)),
    )
    .await;
    let admitted = match authenticated {
        Ok(Ok(admitted)) => admitted,
        // Counted and audited by the gateway.
        Ok(Err(e)) => {
            refuse_connect(conn, version, &e);
            return None;
        }
        Err(_) => {
            let e = GatewayError::Unavailable("authentication timed out".into());
            refuse_connect(conn, version, &e);
            gateway.refused(Transport::Mqtt, source, request.username.as_deref(), &e);
            return None;
        }
    };
    // With a certificate, the user name is optional, and if given must be the device it
    // names (the gateway checks this itself for tokens).
    if from_certificate
        && request
            .username
            .as_deref()
            .is_some_and(|name| name != admitted.device_id.as_str())
    {
        let e = GatewayError::Unauthenticated("user_name_mismatch");
        refuse_connect(conn, version, &e);
        gateway.refused(Transport::Mqtt, source, request.username.as_deref(), &e);
        return None;
    }

    let (keep_alive_secs, capped) = keep_alive(request.keep_alive, limits.max_keep_alive_secs);
    let terms = ServerTerms {
        receive_maximum: limits.max_inflight.max(1),
        max_packet_size: u32::try_from(conn.max_remaining + 5).unwrap_or(u32::MAX),
        server_keep_alive: capped.then_some(keep_alive_secs),
        assigned_client_id: request
            .client_id
            .is_empty()
            .then(|| admitted.device_id.to_string()),
        no_session: request.session_expiry.is_some_and(|secs| secs > 0),
    };
    let session = gateway.open_session(admitted, Transport::Mqtt, source);
    if codec::connack_accepted(version, &mut conn.out, &terms).is_err() {
        gateway.session_ended(session);
        return None;
    }
    Some(Admission {
        session,
        version,
        keep_alive_secs,
        reason_strings: request.problem_information
            && request.client_max_packet.is_none_or(|max| max >= 256),
    })
}

/// What a CONNECT may ask that this adapter does not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnectProblem {
    /// MQTT 5 enhanced authentication (AUTH exchanges) is not offered.
    AuthenticationMethod,
    /// MQTT 3.1.1 §3.1.3-8: an empty client id needs a clean session.
    EmptyClientId,
}

impl ConnectProblem {
    fn error(self) -> GatewayError {
        match self {
            Self::AuthenticationMethod => GatewayError::Unauthenticated("authentication_method"),
            Self::EmptyClientId => GatewayError::Malformed("client_id"),
        }
    }

    fn connack_v311(self) -> ConnAckV311 {
        match self {
            Self::AuthenticationMethod => ConnAckV311::NotAuthorized,
            Self::EmptyClientId => ConnAckV311::BadClientId,
        }
    }

    fn connack_v5(self) -> ConnAckV5 {
        match self {
            Self::AuthenticationMethod => ConnAckV5::BadAuthenticationMethod,
            Self::EmptyClientId => ConnAckV5::ClientIdentifierNotValid,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Self::AuthenticationMethod => "enhanced authentication is not offered",
            Self::EmptyClientId => "an empty client id needs a clean session",
        }
    }
}

fn protocol_checks(version: Version, request: &ConnectRequest) -> Result<(), ConnectProblem> {
    if request.authentication_method {
        return Err(ConnectProblem::AuthenticationMethod);
    }
    if version == Version::V311 && request.client_id.is_empty() && !request.clean_start {
        return Err(ConnectProblem::EmptyClientId);
    }
    Ok(())
}

/// The keep-alive in force for a client that asked `requested` seconds (0: none), with
/// `max` the cap (0: no cap), and whether it differs from what the client asked (an MQTT 5
/// client is then told through Server Keep Alive; an MQTT 3.1.1 client cannot be, and is
/// held to the cap all the same).
pub fn keep_alive(requested: u16, max: u16) -> (u16, bool) {
    if max == 0 || (requested != 0 && requested <= max) {
        (requested, false)
    } else {
        (max, true)
    }
}

/// Writes the CONNACK refusing the connection for `error` into `conn.out`.
pub fn refuse_connect(conn: &mut Connection, version: Version, error: &GatewayError) {
    let written = match version {
        Version::V311 => codec::connack_refused_v311(&mut conn.out, reason::connack_v311(error)),
        Version::V5 => codec::connack_refused_v5(
            &mut conn.out,
            reason::connack_v5(error),
            reason::reason_string(error),
        ),
    };
    if written.is_err() {
        conn.out.clear();
    }
}

/// Writes MQTT 3.1.1 §3.1.2.2's answer to a protocol level it does not speak.
pub fn refuse_level(conn: &mut Connection) {
    if codec::connack_refused_v311(&mut conn.out, ConnAckV311::RefusedProtocolVersion).is_err() {
        conn.out.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_is_capped_and_zero_means_the_cap() {
        assert_eq!(keep_alive(60, 300), (60, false));
        assert_eq!(keep_alive(300, 300), (300, false));
        assert_eq!(keep_alive(301, 300), (300, true));
        assert_eq!(keep_alive(0, 300), (300, true));
        assert_eq!(keep_alive(65_535, 300), (300, true));
        // No cap configured: whatever the client asked, even none.
        assert_eq!(keep_alive(0, 0), (0, false));
        assert_eq!(keep_alive(1_000, 0), (1_000, false));
    }
}
