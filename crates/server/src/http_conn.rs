//! One HTTP/1.1 connection served by hyper with the limits every listener needs, and the
//! plain-HTTP accept loop. Both listeners go through [`serve_connection`], so a client that
//! opens a connection and trickles its headers (slowloris) is cut off after
//! [`HEADER_READ_TIMEOUT`] on either. (`axum::serve` sets no timer, so hyper's default header
//! timeout never applied to the plain listener.)

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use portcullis_http::PeerCertificates;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight requests may take to finish once shutdown began.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The hyper connection of `io` serving `app`; the remote address (and, over TLS, the peer's
/// certificates) go into every request's extensions.
pub fn connection<I>(
    io: I,
    remote: SocketAddr,
    peer: Option<PeerCertificates>,
    app: Router,
) -> impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            if let Some(peer) = &peer {
                request.extensions_mut().insert(peer.clone());
            }
            app.clone().oneshot(request)
        });
    hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
}

/// Serves one connection to its end.
pub async fn serve_connection<I>(
    io: I,
    remote: SocketAddr,
    peer: Option<PeerCertificates>,
    app: Router,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if let Err(e) = connection(io, remote, peer, app).await {
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
}

/// Serves `app` over plain HTTP on `listener` until `shutdown` resolves; then stops accepting
/// and lets requests in flight finish (for at most [`SHUTDOWN_GRACE`]).
pub async fn serve_plain(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = graceful.watch(connection(stream, remote, None, app.clone()));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%remote, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the shutdown grace period; closing them");
    }
}
