//! One client socket (plain or TLS) with its read and write buffers. The read buffer starts
//! small and grows only to hold the packet being read, then shrinks back, so an idle
//! connection costs little more than its socket (and its TLS state).

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::codec::{self, Inbound, ReadError};
use super::protocol::Version;

/// What an idle connection's read buffer holds: a PINGREQ, a small PUBLISH.
const INITIAL_READ_BUFFER: usize = 512;
/// The most room made for one read.
const READ_STEP: usize = 4 * 1024;
/// Above this, an emptied read buffer is given back and a small one taken.
const KEEP_READ_BUFFER: usize = 4 * 1024;
/// A client that does not take our bytes for this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection waits for its TLS close_notify / FIN to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A plain or TLS socket. Boxed: a TLS stream is over a kilobyte, and an async function
/// that moves it along would carry a copy per state in every connection's task.
pub trait Socket: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Socket for T {}

/// A socket speaking MQTT, with its buffers.
pub struct Connection {
    stream: Box<dyn Socket>,
    pub source: IpAddr,
    read: BytesMut,
    /// What the codec said the packet being read still needs.
    wanted: usize,
    /// Answers waiting to be flushed.
    pub out: BytesMut,
    /// The largest remaining length a packet may have.
    pub max_remaining: usize,
}

impl Connection {
    pub fn new(stream: Box<dyn Socket>, source: IpAddr, max_remaining: usize) -> Self {
        Self {
            stream,
            source,
            read: BytesMut::with_capacity(INITIAL_READ_BUFFER),
            wanted: 0,
            out: BytesMut::new(),
            max_remaining,
        }
    }

    /// The bytes received and not yet taken as packets.
    pub fn buffered(&self) -> &[u8] {
        &self.read
    }

    /// Reads once from the socket: `Ok(0)` at end of stream. Room is made for the rest of
    /// the packet being read (as far as the codec knows it), at most one step at a time.
    /// Cancel-safe: bytes are only ever added to the buffer by a completed read.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        // Never more than one step ahead of what arrived: a header claiming a large packet
        // costs memory only as its bytes actually come (a slow sender cannot reserve it).
        let room = self.wanted.clamp(INITIAL_READ_BUFFER / 2, READ_STEP);
        if self.read.capacity() - self.read.len() < room {
            self.read.reserve(room);
        }
        self.stream.read_buf(&mut self.read).await
    }

    /// Takes the next whole packet from the buffer, if there is one.
    pub fn next_packet(&mut self, version: Version) -> Result<Option<Inbound>, ReadError> {
        if self.read.is_empty() {
            self.wanted = 0;
            self.shrink();
            return Ok(None);
        }
        match codec::read(version, &mut self.read, self.max_remaining) {
            Ok(packet) => {
                self.wanted = 0;
                if self.read.is_empty() {
                    self.shrink();
                }
                Ok(Some(packet))
            }
            Err(ReadError::Incomplete(n)) => {
                self.wanted = n;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Replaces a large, empty read buffer with a small one: the packet that needed it is
    /// gone (its payload keeps only its own slice alive until it is handed on).
    fn shrink(&mut self) {
        if self.read.capacity() > KEEP_READ_BUFFER {
            self.read = BytesMut::with_capacity(INITIAL_READ_BUFFER);
        }
    }

    /// Sends what `out` holds.
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        })
        .await;
        self.out.clear();
        match written {
            Ok(result) => result,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// Sends what `out` holds (a refusal, a DISCONNECT), then closes the connection.
    pub async fn close(mut self) {
        let _ = self.flush().await;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.stream.shutdown()).await;
    }
}
