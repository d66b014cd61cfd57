//! `gateway-load mqtt --direct`: each device is one task that owns its socket and drives
//! rumqttc's packet codec (`mqttbytes::v4`) itself, instead of rumqttc's client.
//!
//! Why: the client is two tasks per device (the publisher and the `EventLoop`) joined by a
//! channel, so a paced message costs the generator two wake-ups, a channel hop and the event
//! loop's bookkeeping (16-19 µs of CPU per message measured, about as much as the server
//! under test). On two shared cores that CPU is taken from the server, and at "half the
//! maximum rate" the two together queue: the p99 then measures the machine, Mosquitto's
//! included. Here a message is one timer wake-up and one `write` of a packet encoded with
//! the codec; PUBACKs are read in the same task. The packets on the wire are the same
//! (MQTT 3.1.1, QoS 1, the same topics, payloads and logins); latency is counted the same
//! way (from the due instant when paced, from the write otherwise).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::{Packet, Publish, QoS};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::{idle_connect, start_of, Plan, Tally, Window};

/// Keep-alive in the CONNECT: longer than any set-up plus run, so no PINGREQ is needed.
const KEEP_ALIVE_SECS: u16 = 600;

/// One device: connect, wait for the start, publish until the window ends, tally.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn connection(
    index: usize,
    n: usize,
    target: SocketAddr,
    plan: Plan,
    inflight: u16,
    connecting: Arc<Semaphore>,
    settled: Arc<AtomicUsize>,
    mut start_rx: watch::Receiver<Option<Window>>,
) -> Tally {
    let mut tally = Tally::default();
    let connected = {
        let _permit = connecting.acquire().await;
        idle_connect(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            target,
            plan.client_id.clone(),
            plan.login.clone(),
            KEEP_ALIVE_SECS,
        )
        .await
    };
    settled.fetch_add(1, Ordering::Relaxed);
    let stream = match connected {
        Ok(stream) => stream,
        Err(e) => {
            tally.connect_error = Some(e.to_string());
            return tally;
        }
    };
    tally.connected = true;
    let Some(window) = start_of(&mut start_rx).await else {
        return tally;
    };
    let client_id = plan.client_id.clone();
    if let Err(e) = run(stream, plan, inflight, window, index, n, &mut tally).await {
        tally.error = Some(format!("{client_id}: {e}"));
    }
    tally
}

/// The publishing loop: a free packet id and a due message make a PUBLISH; a PUBACK frees
/// its id and, if a message is waiting (paced and behind), sends it at once.
async fn run(
    mut stream: tokio::net::TcpStream,
    plan: Plan,
    inflight: u16,
    window: Window,
    index: usize,
    n: usize,
    tally: &mut Tally,
) -> crate::Result<()> {
    let Plan {
        topic,
        mut payloads,
        ..
    } = plan;
    let mut publish = Publish::new(topic, QoS::AtLeastOnce, Vec::new());
    let mut free: Vec<u16> = (1..=inflight.max(1)).rev().collect();
    // Per packet id: when its message was due (paced) or written.
    let mut due_of: Vec<Option<Instant>> = vec![None; usize::from(inflight.max(1)) + 1];
    // Paced messages due but not yet sent (the in-flight window was full).
    let mut waiting: VecDeque<Instant> = VecDeque::new();
    let mut ticks = window.ticks(index, n);
    let close = window.until + Duration::from_millis(500);
    let mut input = BytesMut::with_capacity(4096);
    let mut out = BytesMut::with_capacity(4096);
    tokio::time::sleep_until(window.start).await;
    loop {
        // Send what may go now: unpaced, while a packet id is free; paced, what is due.
        let now = Instant::now();
        while let Some(&pkid) = free.last() {
            let due = match ticks {
                None if now < window.until => now,
                None => break,
                Some(_) => match waiting.pop_front() {
                    Some(due) => due,
                    None => break,
                },
            };
            free.pop();
            publish.pkid = pkid;
            publish.payload = payloads.next();
            publish.write(&mut out)?;
            due_of[usize::from(pkid)] = Some(due);
            if now >= window.from && now < window.until {
                tally.sent += 1;
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        let tick = async {
            match ticks.as_mut() {
                Some(ticks) => ticks.tick().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(close) => return Ok(()),
            due = tick => {
                if due < window.until {
                    waiting.push_back(due);
                }
            }
            read = stream.read_buf(&mut input) => {
                if read? == 0 {
                    return Err("the server closed the connection".into());
                }
                let now = Instant::now();
                loop {
                    match Packet::read(&mut input, 64 * 1024) {
                        Ok(Packet::PubAck(ack)) => {
                            let due = due_of
                                .get_mut(usize::from(ack.pkid))
                                .and_then(Option::take)
                                .ok_or_else(|| format!("PUBACK for packet id {} not in flight", ack.pkid))?;
                            free.push(ack.pkid);
                            tally.acked(&window, due, now);
                        }
                        Ok(Packet::Disconnect) => return Err("the server disconnected".into()),
                        Ok(_) => {}
                        Err(rumqttc::Error::InsufficientBytes(_)) => break,
                        Err(e) => return Err(format!("bad packet from the server: {e}").into()),
                    }
                }
            }
        }
    }
}
