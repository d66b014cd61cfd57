//! MQTT 3.1.1 and 5 as a protocol adapter in front of the gateway — the way Eclipse Hono's
//! MQTT adapter is — not a broker: devices connect and publish telemetry; nothing is routed
//! between clients.
//!
//! - **Codec**: rumqttc's `mqttbytes` (3.1.1 and 5) reads and writes every packet; the
//!   adapter only peeks at the CONNECT's protocol level to pick one (`protocol`).
//! - **CONNECT** (`connect`): whole within `connect_timeout` after the TLS handshake, once.
//!   The credential is the TLS client certificate if one was shown (a user name, if given,
//!   must be its device id), else user name = device id and password = device token or
//!   access token. Refusals are CONNACK codes (`reason`). The client id is free; the
//!   session is the device's: a second connection of the device takes over from the first
//!   (MQTT 5 DISCONNECT 0x8E), and the gateway audits it as a possible clone.
//! - **PUBLISH** (`session_loop`): only to `devices/{own id}/telemetry[/{stream}]`
//!   (`topic`), QoS 0 or 1. A payload is COSE when it starts with the tag of `COSE_Mac0` /
//!   `COSE_Sign1` or its MQTT 5 content type is `application/cose`. PUBACK only once the
//!   sink holds the message; an MQTT 5 refusal is a negative PUBACK, an MQTT 3.1.1 one
//!   closes the connection (it has no negative PUBACK; the device re-sends).
//! - **Not offered**, and said so in the protocol's own terms: QoS 2 (MQTT 5 DISCONNECT
//!   0x9B; 3.1.1 closes), retained messages (MQTT 5 advertises Retain Available 0 and
//!   disconnects with 0x9A; 3.1.1's retain flag is ignored), topic aliases, enhanced
//!   authentication, sessions that outlive the connection, wills (accepted, never
//!   published). SUBSCRIBE is answered with a refusal per filter (MQTT 5 0x87, 3.1.1 0x80):
//!   this listener is a telemetry ingress. Commands to devices come in a later issue, as
//!   a subscription to `devices/{own id}/commands` — that is where SUBSCRIBE will be
//!   admitted, nowhere else.
//! - **Bounds**: maximum packet size = `max_message_bytes` + room for the topic and MQTT 5
//!   properties (larger: MQTT 5 DISCONNECT 0x95, 3.1.1 closes); keep-alive capped by
//!   `max_keep_alive_secs` (MQTT 5 Server Keep Alive), 1.5 × keep-alive of silence
//!   closes; `max_inflight` QoS 1 messages per connection (MQTT 5 Receive Maximum).
//! - **Cost**: one task per connection, a read buffer that starts at 512 bytes and grows
//!   only for the packet being read, no timer armed while idle beyond keep-alive.

mod codec;
mod command_feed;
mod connect;
mod connection;
mod protocol;
mod reason;
mod session_loop;
mod settings_feed;
mod topic;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::service::Gateway;
use crate::session::{CloseReason, Transport};
use crate::GatewayError;
use connect::NoConnect;
use connection::Connection;

/// Room in a PUBLISH for what is not the message: fixed header, topic, packet id and
/// MQTT 5 properties (content type, user properties).
const PACKET_OVERHEAD: usize = 2 + topic::MAX_TOPIC_LEN + 2 + 512;
/// How long shutdown waits for connections to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves MQTT on `listener` (over TLS when `tls` is given) until `shutdown` resolves, then
/// tells every connection (MQTT 5: DISCONNECT 0x8B) and waits a little for them to close.
///
/// `tls` is the HTTPS listener's configuration (client certificates asked, not required);
/// its ALPN list is dropped here, as MQTT clients offer none or `mqtt`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tls.map(|config| {
        let mut config = (*config).clone();
        config.alpn_protocols.clear();
        TlsAcceptor::from(Arc::new(config))
    });
    let (stop, stopping) = watch::channel(false);
    // Every connection task holds a sender; when all are gone, `recv` answers `None`.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (socket, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "MQTT accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Attack detection blocked the address: closed before a TLS handshake or a CONNECT
        // costs anything (HTTP answers such requests 403).
        if gateway.is_blocked(remote.ip()) {
            metrics::counter!(portcullis_ports::BLOCKED_METRIC).increment(1);
            drop(socket);
            continue;
        }
        let acceptor = acceptor.clone();
        let gateway = Arc::clone(&gateway);
        let stopping = stopping.clone();
        let alive = alive.clone();
        tokio::spawn(async move {
            serve_socket(socket, remote, acceptor, gateway, stopping).await;
            drop(alive);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Sessions hear it as their close signal (DISCONNECT 0x8B); one registered after this
    // sees `stop` when it starts.
    gateway.sessions().close_all(CloseReason::Shutdown);
    drop(alive);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, all_closed.recv()).await;
}

/// One accepted socket: TLS handshake (bounded by the connect timeout), then MQTT.
async fn serve_socket(
    socket: TcpStream,
    remote: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    gateway: Arc<Gateway>,
    mut stopping: watch::Receiver<bool>,
) {
    // PUBACKs are small and latency matters more than packing them.
    let _ = socket.set_nodelay(true);
    let Some(acceptor) = acceptor else {
        serve_mqtt(Box::new(socket), remote, None, gateway, stopping).await;
        return;
    };
    // Boxed: the handshake's state (over a kilobyte) is not carried once it is done.
    let handshake = Box::pin(tls_handshake(
        acceptor,
        socket,
        remote,
        gateway.limits().connect_timeout,
    ));
    let accepted = tokio::select! {
        accepted = handshake => accepted,
        _ = stopping.wait_for(|stop| *stop) => return,
    };
    if let Some((tls, chain)) = accepted {
        serve_mqtt(tls, remote, chain, gateway, stopping).await;
    }
}

/// The TLS handshake within `timeout`: the stream, and the client's certificate chain (leaf
/// first, DER) if it showed one.
async fn tls_handshake(
    acceptor: TlsAcceptor,
    socket: TcpStream,
    remote: SocketAddr,
    timeout: Duration,
) -> Option<(Box<dyn connection::Socket>, Option<Vec<Vec<u8>>>)> {
    match tokio::time::timeout(timeout, acceptor.accept(socket)).await {
        Ok(Ok(tls)) => {
            let chain = tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|chain| chain.iter().map(|c| c.as_ref().to_vec()).collect());
            Some((Box::new(tls), chain))
        }
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "MQTT TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%remote, "MQTT TLS handshake timed out");
            None
        }
    }
}

/// One MQTT connection: CONNECT, then the admitted device's session.
async fn serve_mqtt(
    stream: Box<dyn connection::Socket>,
    remote: SocketAddr,
    peer_certificates: Option<Vec<Vec<u8>>>,
    gateway: Arc<Gateway>,
    mut stopping: watch::Receiver<bool>,
) {
    let source = remote.ip();
    let limits = gateway.limits();
    let max_remaining = limits.max_message_bytes.saturating_add(PACKET_OVERHEAD);
    let mut conn = Connection::new(stream, source, max_remaining);
    let first = tokio::select! {
        first = tokio::time::timeout(limits.connect_timeout, connect::read_connect(&mut conn)) => first,
        _ = stopping.wait_for(|stop| *stop) => return,
    };
    let (version, request) = match first {
        Ok(Ok(connect)) => connect,
        Ok(Err(NoConnect::Gone)) => return,
        Err(_) => {
            // A slow or absent CONNECT (half-open or idle connections) is dropped.
            let e = GatewayError::Malformed("connect_timeout");
            gateway.refused(Transport::Mqtt, source, None, &e);
            return;
        }
        Ok(Err(NoConnect::UnsupportedLevel(level))) => {
            tracing::debug!(%remote, level, "MQTT protocol level not supported");
            connect::refuse_level(&mut conn);
            let e = GatewayError::Malformed("mqtt_protocol_level");
            gateway.refused(Transport::Mqtt, source, None, &e);
            conn.close().await;
            return;
        }
        Ok(Err(NoConnect::Refused(e, version))) => {
            if let Some(version) = version {
                connect::refuse_connect(&mut conn, version, &e);
            }
            gateway.refused(Transport::Mqtt, source, None, &e);
            conn.close().await;
            return;
        }
    };
    let admitted = connect::admit(&mut conn, &gateway, version, request, peer_certificates).await;
    let Some(admission) = admitted else {
        conn.close().await;
        return;
    };
    if conn.flush().await.is_err() {
        gateway.session_ended(admission.session);
        return;
    }
    tracing::debug!(
        device = admission.session.admitted.device_id.as_str(),
        %remote,
        version = version.as_str(),
        "MQTT device connected"
    );
    // Boxed: a connection that never gets this far does not carry the session's state.
    Box::pin(session_loop::serve(
        conn,
        admission,
        &gateway,
        &mut stopping,
    ))
    .await;
}

/// Everything the adapter does with a connection's bytes before they reach the core, without
/// a socket: detect the protocol level, take packets out of the buffer as the connection loop
/// does (both codecs), and check each PUBLISH topic. The fuzz target `gateway_mqtt` drives
/// it with arbitrary bytes; it must never panic, loop forever or allocate without bound.
#[doc(hidden)]
pub fn parse_inbound_for_fuzzing(bytes: &[u8]) {
    let versions = match protocol::detect(bytes) {
        protocol::Detected::Version(v) => vec![v],
        // Past the first packet a connection has one version; try both on anything.
        _ => vec![protocol::Version::V311, protocol::Version::V5],
    };
    for version in versions {
        let mut buf = bytes::BytesMut::from(bytes);
        // Each read consumes a packet or fails; the bound guards against a codec that did
        // neither.
        for _ in 0..bytes.len().saturating_add(1) {
            match codec::read(version, &mut buf, 64 * 1024) {
                Ok(codec::Inbound::Publish(publish)) => {
                    let _ = topic::telemetry_stream(&publish.topic, "fuzz-device");
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::connection::Connection;
    use super::*;

    /// The fuzz entry point takes whatever it is given: valid CONNECT + PUBLISH streams of
    /// both versions, every truncation of them, and noise.
    #[test]
    fn the_fuzz_entry_takes_any_bytes() {
        let v311_connect: &[u8] = &[
            0x10, 0x14, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60, 0, 1, b'c', 0, 1, b'u', 0, 3,
            b'p', b'w', b'd',
        ];
        let publish: &[u8] = &[
            0x32, 0x1F, 0, 25, b'd', b'e', b'v', b'i', b'c', b'e', b's', b'/', b'f', b'u', b'z',
            b'z', b'-', b'd', b'e', b'v', b'i', b'c', b'e', b'/', b't', b'e', b'l', b'e', b'm', 0,
            1, b'x', 0,
        ];
        let mut stream = v311_connect.to_vec();
        stream.extend_from_slice(publish);
        for end in 0..=stream.len() {
            parse_inbound_for_fuzzing(&stream[..end]);
        }
        parse_inbound_for_fuzzing(&[0xFF; 64]);
        parse_inbound_for_fuzzing(&[0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
    }

    fn future_size<A, B, C, D, E, F>(_: impl FnOnce(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// What every idle connection's task holds must stay small (100 000 idle devices in
    /// 2 GiB): a TLS stream, a handshake or a session moved by value into an async function
    /// would be carried in each connection's state (an early version carried 12 KiB).
    #[test]
    fn connection_tasks_stay_small() {
        assert!(
            future_size(serve_socket) <= 4096,
            "{}",
            future_size(serve_socket)
        );
        assert!(
            future_size(serve_mqtt) <= 4096,
            "{}",
            future_size(serve_mqtt)
        );
        let session_loop = |c: Connection,
                            a: connect::Admission,
                            g: &'static Arc<Gateway>,
                            s: &'static mut watch::Receiver<bool>,
                            (): ()| session_loop::serve(c, a, g, s);
        assert!(
            future_size(session_loop) <= 4096,
            "{}",
            future_size(session_loop)
        );
        assert!(std::mem::size_of::<Connection>() <= 256);
    }
}
