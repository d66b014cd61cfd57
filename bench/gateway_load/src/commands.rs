//! `gateway-load commands`: commands end to end (issue #13). N devices connect over MQTT with
//! their device tokens and subscribe to `devices/{id}/commands`; senders post commands
//! (`POST /gateway/v1/devices/{id}/commands`, keep-alive HTTP/1.1 written by hand, a bearer
//! token of a client the rules allow) round-robin over the devices, paced to a total rate;
//! each device, on a command, answers with a `COSE_Mac0` result (`{"cid", "status":
//! "succeeded"}`) on `devices/{id}/results`. Measured per command: sent → delivered (the
//! PUBLISH reaches the device) and sent → answered (the result's PUBACK, i.e. the gateway has
//! recorded the outcome). Prints one `RESULT` line: commands answered per second in the
//! window, both latencies' p50/p99, and errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use portcullis_gateway::cose::seal_mac0;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{counter_base, device_token, host_port, read_secrets, unix_secs, Device, Result};

#[derive(Debug, clap::Args)]
pub struct CommandsArgs {
    /// The gateway's MQTT listener, host:port.
    #[arg(long)]
    pub mqtt: String,
    /// The node's HTTP listener, host:port.
    #[arg(long)]
    pub http: String,
    /// A bearer token of the sending client.
    #[arg(long)]
    pub token: String,
    /// The secrets CSV (device_id, device_key_id, device_key).
    #[arg(long)]
    pub secrets: std::path::PathBuf,
    /// The `aud` of the device tokens.
    #[arg(long)]
    pub audience: String,
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// Commands per second over all devices.
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// HTTP connections the commands are sent over.
    #[arg(long, default_value_t = 8)]
    pub senders: usize,
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// The command's name (the rules must allow it to the devices' model).
    #[arg(long, default_value = "valve.open")]
    pub name: String,
}

/// When each command was sent, delivered and answered (by command id; a device may see a
/// command before its sender has read the 202).
#[derive(Default)]
struct Timeline {
    sent: HashMap<String, Instant>,
    delivered: HashMap<String, Instant>,
    answered: HashMap<String, Instant>,
}

type Shared = Arc<Mutex<Timeline>>;

fn lock(t: &Shared) -> std::sync::MutexGuard<'_, Timeline> {
    t.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub async fn run(args: CommandsArgs) -> Result<()> {
    let devices = read_secrets(&args.secrets, 0, args.devices)?;
    let timeline: Shared = Arc::default();
    let (host, port) = host_port(&args.mqtt)?;
    let base = counter_base();
    let mut subscribed = Vec::new();
    for (i, device) in devices.iter().enumerate() {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        subscribed.push(ready_rx);
        tokio::spawn(device_loop(
            device.clone(),
            host.clone(),
            port,
            args.audience.clone(),
            base + (i as u64) * 1_000_000,
            Arc::clone(&timeline),
            ready_tx,
        ));
    }
    for ready in subscribed {
        ready.await.map_err(|_| "a device could not subscribe")?;
    }
    eprintln!("{} devices subscribed", devices.len());

    let started = Instant::now();
    let window_start = started + Duration::from_secs_f64(args.warmup);
    let end = window_start + Duration::from_secs_f64(args.duration);
    let per_sender = args.rate / args.senders as f64;
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut senders = Vec::new();
    for s in 0..args.senders {
        let ids: Vec<String> = devices
            .iter()
            .skip(s)
            .step_by(args.senders)
            .map(|d| d.id.to_string())
            .collect();
        senders.push(tokio::spawn(sender(
            args.http.clone(),
            args.token.clone(),
            args.name.clone(),
            ids,
            per_sender,
            end,
            Arc::clone(&timeline),
            Arc::clone(&errors),
        )));
    }
    for s in senders {
        s.await??;
    }
    // Let the last answers come in.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = lock(&timeline);
    // Commands sent in the window, and how long each took to arrive and to be answered.
    let latencies = |seen: &HashMap<String, Instant>| -> Vec<Duration> {
        t.sent
            .iter()
            .filter(|(_, sent)| **sent >= window_start && **sent < end)
            .filter_map(|(cid, sent)| Some(seen.get(cid)?.duration_since(*sent)))
            .collect()
    };
    let mut delivered = latencies(&t.delivered);
    let mut answered = latencies(&t.answered);
    let pct = |v: &mut Vec<Duration>, p: f64| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        v.sort();
        let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        v[i].as_secs_f64() * 1000.0
    };
    let unanswered = t
        .sent
        .keys()
        .filter(|c| !t.answered.contains_key(*c))
        .count();
    println!(
        "RESULT commands_s={:.1} delivered_p50_ms={:.2} delivered_p99_ms={:.2} answered_p50_ms={:.2} answered_p99_ms={:.2} errors={} unanswered={}",
        answered.len() as f64 / args.duration,
        pct(&mut delivered, 0.5),
        pct(&mut delivered, 0.99),
        pct(&mut answered, 0.5),
        pct(&mut answered, 0.99),
        errors.load(std::sync::atomic::Ordering::Relaxed),
        unanswered,
    );
    Ok(())
}

/// One device: subscribes, answers every command with a result, notes the timings.
async fn device_loop(
    device: Device,
    host: String,
    port: u16,
    audience: String,
    first_counter: u64,
    timeline: Shared,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut options = MqttOptions::new(device.id.to_string(), host, port);
    options.set_credentials(device.id.to_string(), device_token(&device, &audience));
    options.set_keep_alive(Duration::from_secs(60));
    options.set_inflight(16);
    let (client, mut events) = AsyncClient::new(options, 64);
    let topic = format!("devices/{}/commands", device.id);
    let results = format!("devices/{}/results", device.id);
    let mut ready = Some(ready);
    let mut counter = first_counter;
    // Results published and not yet acknowledged, by packet id, with their command id.
    let mut pending: HashMap<u16, String> = HashMap::new();
    let mut outgoing: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    loop {
        let event = match events.poll().await {
            Ok(event) => event,
            Err(e) => {
                eprintln!("{}: {e}", device.id);
                return;
            }
        };
        match event {
            Event::Incoming(Packet::ConnAck(_))
                if client.subscribe(&topic, QoS::AtLeastOnce).await.is_err() =>
            {
                return;
            }
            Event::Incoming(Packet::SubAck(_)) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
            }
            Event::Incoming(Packet::Publish(publish)) => {
                let now = Instant::now();
                let Some(cid) = command_id(&publish.payload) else {
                    continue;
                };
                lock(&timeline).delivered.insert(cid.clone(), now);
                counter += 1;
                let body = serde_json::json!({ "cid": cid, "status": "succeeded" }).to_string();
                let message = seal_mac0(
                    &device.id,
                    &device.key_id,
                    &device.key,
                    counter,
                    unix_secs(),
                    body.as_bytes(),
                );
                outgoing.push_back(cid);
                if client
                    .publish(&results, QoS::AtLeastOnce, false, message)
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Event::Outgoing(rumqttc::Outgoing::Publish(pkid)) => {
                if let Some(cid) = outgoing.pop_front() {
                    pending.insert(pkid, cid);
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(cid) = pending.remove(&ack.pkid) {
                    lock(&timeline).answered.insert(cid, Instant::now());
                }
            }
            _ => {}
        }
    }
}

/// The `cid` of a signed command (its CBOR payload, unverified: the device's checks are the
/// device's cost, measured by the criterion benchmarks).
fn command_id(cose: &Bytes) -> Option<String> {
    let value: ciborium::Value = ciborium::from_reader(cose.as_ref()).ok()?;
    let ciborium::Value::Tag(18, inner) = value else {
        return None;
    };
    let ciborium::Value::Array(parts) = *inner else {
        return None;
    };
    let ciborium::Value::Bytes(payload) = parts.get(2)? else {
        return None;
    };
    let map: ciborium::Value = ciborium::from_reader(payload.as_slice()).ok()?;
    map.as_map()?
        .iter()
        .find_map(|(k, v)| (k.as_text()? == "cid").then(|| v.as_text().map(str::to_owned))?)
}

/// One HTTP/1.1 keep-alive connection sending commands to `ids` in turn at `rate` per second.
#[allow(clippy::too_many_arguments)]
async fn sender(
    http: String,
    token: String,
    name: String,
    ids: Vec<String>,
    rate: f64,
    end: Instant,
    timeline: Shared,
    errors: Arc<std::sync::atomic::AtomicUsize>,
) -> Result<()> {
    let mut stream = TcpStream::connect(&http).await?;
    stream.set_nodelay(true)?;
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut next = Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    for id in ids.iter().cycle() {
        if Instant::now() >= end {
            break;
        }
        tokio::time::sleep_until(next).await;
        next += interval;
        let body = format!(r#"{{"name":"{name}","args":{{"position":40}},"ttl_secs":60}}"#);
        let request = format!(
            "POST /gateway/v1/devices/{id}/commands HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let sent = Instant::now();
        stream.write_all(request.as_bytes()).await?;
        let response = read_response(&mut stream, &mut buf).await?;
        match response {
            Some(cid) => {
                lock(&timeline).sent.insert(cid, sent);
            }
            None => {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// Reads one response; the command id if it is a 202.
async fn read_response(stream: &mut TcpStream, buf: &mut [u8]) -> Result<Option<String>> {
    let mut have = 0;
    loop {
        let n = stream.read(&mut buf[have..]).await?;
        if n == 0 {
            return Err("the node closed the connection".into());
        }
        have += n;
        let text = String::from_utf8_lossy(&buf[..have]);
        let Some(head_end) = text.find("\r\n\r\n") else {
            continue;
        };
        let length = text[..head_end]
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        if have < head_end + 4 + length {
            continue;
        }
        if !text.starts_with("HTTP/1.1 202") {
            eprintln!("{}", &text[..text.len().min(300)]);
            return Ok(None);
        }
        let body: serde_json::Value =
            serde_json::from_str(&text[head_end + 4..head_end + 4 + length])?;
        return Ok(body["command_id"].as_str().map(str::to_owned));
    }
}
