//! `gateway-load`: the load generator of the device gateway's benchmarks (issue #12,
//! `bench/gateway.sh`, results in `docs/benchmarks.md`).
//!
//! - `gateway-load mqtt`: N devices connect over MQTT 3.1.1 with rumqttc's client
//!   (`AsyncClient` + `EventLoop`), all start together, and each publishes QoS 1 messages of S
//!   bytes for D seconds with at most W unacknowledged (rumqttc's `inflight`), unpaced or
//!   paced to a total rate R. Against the gateway (`--gateway --secrets CSV`) each device logs
//!   in with a device token (HS256 JWT under its key) and every message is a `COSE_Mac0` made
//!   by `portcullis_gateway::cose::seal_mac0` with a fresh counter; against a plain broker
//!   (`--plain`) the same clients send the same number of random bytes with no login.
//!   Prints one `RESULT ...` line: PUBACKs received in the measured window per second, PUBACK
//!   latency percentiles, and the CPU the generator and the server (`--server-pid`) used.
//!   With `--direct`, each device drives rumqttc's packet codec over its own socket instead
//!   (one task, one write per message: `direct.rs`), for a generator that leaves more of
//!   the shared CPU to the server.
//! - `gateway-load mqtt --idle`: N devices connect and hold their connection (a PINGREQ at
//!   half the keep-alive), publishing nothing; prints the server's VmRSS before and after.
//!   rumqttc's client cannot choose a source address (`NetworkOptions::set_bind_device` is
//!   SO_BINDTODEVICE, an interface, not an address, and its TCP connect cannot be replaced),
//!   so idle devices use rumqttc's own packet codec (`mqttbytes::v4`) over a tokio
//!   `TcpSocket` bound to 127.0.0.k before it connects: no ephemeral-port range is shared
//!   between the source addresses.
//! - `gateway-load commands`: commands end to end (issue #13, `bench/commands.sh`): sent over
//!   HTTP, delivered over MQTT to subscribed devices, answered with COSE results (`commands.rs`).
//! - `gateway-load cose-file`: writes pre-built `COSE_Mac0` messages, all of exactly S bytes,
//!   one file per wrk thread, for `bench/gateway_http.lua`.
//!
//! Counters: a device's counter is the generator's start time in microseconds plus the
//! message's number, so every run (and every file) continues above what the node already
//! accepted from the device in earlier runs, with no state kept between runs.

// A load generator: a failure aborts the run, reported on stderr.
#![allow(clippy::indexing_slicing)]

use std::collections::VecDeque;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use clap::{Parser, Subcommand};
use portcullis_core::device::DeviceId;
use portcullis_gateway::cose::seal_mac0;
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, MqttOptions, NetworkOptions, Outgoing, Packet, QoS,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpSocket;
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, MissedTickBehavior};

mod commands;
mod direct;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

#[derive(Debug, Parser)]
#[command(
    name = "gateway-load",
    about = "Load generator for the Portcullis device gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// MQTT QoS 1 publishers (default) or idle connections (--idle).
    Mqtt(MqttArgs),
    /// Pre-built COSE_Mac0 bodies for wrk: FILE.0 .. FILE.<threads-1>, fixed-size records.
    CoseFile(CoseFileArgs),
    /// Commands end to end: sent over HTTP, delivered over MQTT, answered (issue #13).
    Commands(commands::CommandsArgs),
}

#[derive(Debug, clap::Args)]
struct MqttArgs {
    /// The broker or gateway, host:port.
    #[arg(long)]
    target: String,
    /// Log in as devices of the secrets CSV (device token) and send COSE_Mac0 messages.
    #[arg(long, conflicts_with = "plain", requires = "secrets")]
    gateway: bool,
    /// No login, random payloads (a plain broker such as Mosquitto).
    #[arg(long)]
    plain: bool,
    /// `portcullis device import --with-keys --secrets-out` output:
    /// device_id,enrollment_secret,device_key_id,device_key.
    #[arg(long)]
    secrets: Option<PathBuf>,
    /// The `aud` of the device tokens: the gateway's issuer URL.
    #[arg(long, default_value = "")]
    audience: String,
    /// Connected devices.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Use the devices of the secrets file from this row on.
    #[arg(long, default_value_t = 0)]
    skip: usize,
    /// Message size in bytes (the whole COSE_Mac0 with --gateway).
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// With --gateway: messages sealed per device before the run starts, so that sealing
    /// (the devices' work, not the server's) does not take the shared CPU during the
    /// measured window; past them, messages are sealed as they are sent (`sealed_live` in
    /// the result says how many).
    #[arg(long, default_value_t = 0)]
    preseal: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before the measured window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Unacknowledged QoS 1 messages per connection at most.
    #[arg(long, default_value_t = 16)]
    inflight: u16,
    /// Total messages per second over all devices (paced); unset: as fast as acknowledged.
    #[arg(long)]
    rate: Option<f64>,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Connect, publish nothing, hold; report the server's resident memory.
    #[arg(long)]
    idle: bool,
    /// Idle mode: seconds to hold every connection once all are up.
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
    /// Publishers drive rumqttc's packet codec over their own sockets, one task per device,
    /// instead of rumqttc's client (two tasks and a channel per device): the same packets
    /// for a fraction of the generator's CPU (`direct.rs`).
    #[arg(long, conflicts_with = "idle")]
    direct: bool,
    /// Idle mode: keep-alive in the CONNECT (a PINGREQ goes out every half of it).
    #[arg(long, default_value_t = 60)]
    keep_alive: u16,
    /// Idle mode: source addresses, `127.0.0.2-127.0.0.9` or a comma list; connection i
    /// binds to address i mod count.
    #[arg(long, default_value = "127.0.0.1")]
    source_ips: String,
    /// The server's process id: its CPU time (load) or VmRSS (idle) is reported.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Write the PUBACK latencies over time to this file: per 10 ms of due time in the
    /// window, `offset_ms count p99_us max_us` (where stalls come from, and how often).
    #[arg(long)]
    timeline: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct CoseFileArgs {
    /// The secrets CSV (as for `mqtt --gateway`).
    #[arg(long)]
    secrets: PathBuf,
    /// Devices to use (from the first row).
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Messages per file.
    #[arg(long)]
    messages: usize,
    /// Files (one per wrk thread); device i goes to file i mod threads only.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Size of every message in bytes.
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// Output prefix: PREFIX.0, PREFIX.1, ...
    #[arg(long)]
    out: PathBuf,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::CoseFile(args) => cose_file(&args),
        Command::Commands(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(commands::run(args)),
        Command::Mqtt(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                if args.idle {
                    idle(args).await
                } else {
                    publish(args).await
                }
            })
        }
    }
}

/// One row of the secrets file.
#[derive(Debug, Clone)]
struct Device {
    id: DeviceId,
    key_id: String,
    key: [u8; 32],
}

fn read_secrets(path: &Path, skip: usize, count: usize) -> Result<Vec<Device>> {
    let mut reader = csv::Reader::from_path(path)?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("{}: no {name} column", path.display()))
    };
    let (id_col, kid_col, key_col) = (
        column("device_id")?,
        column("device_key_id")?,
        column("device_key")?,
    );
    let mut devices = Vec::with_capacity(count);
    for row in reader.records().skip(skip).take(count) {
        let row = row?;
        let field = |i: usize| row.get(i).unwrap_or_default();
        let key = URL_SAFE_NO_PAD.decode(field(key_col))?;
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| format!("{}: a device key is not 32 bytes", field(id_col)))?;
        devices.push(Device {
            id: DeviceId::parse(field(id_col))?,
            key_id: field(kid_col).to_owned(),
            key,
        });
    }
    if devices.len() < count {
        return Err(format!(
            "{}: {} devices after row {skip}, {count} wanted",
            path.display(),
            devices.len()
        )
        .into());
    }
    Ok(devices)
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn unix_secs() -> i64 {
    i64::try_from(unix_now().as_secs()).unwrap_or(i64::MAX)
}

/// The first counter of this run: microseconds since the epoch (see the module doc).
fn counter_base() -> u64 {
    u64::try_from(unix_now().as_micros()).unwrap_or(u64::MAX / 2)
}

/// A device token (docs/gateway-protocol.md): HS256 under the device key, one hour.
fn device_token(device: &Device, audience: &str) -> String {
    let now = unix_secs();
    let header = serde_json::json!({ "alg": "HS256", "kid": device.key_id, "typ": "JWT" });
    let claims = serde_json::json!({
        "iss": device.id.as_str(), "sub": device.id.as_str(), "aud": audience,
        "iat": now, "exp": now + 3600,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &device.key),
        input.as_bytes(),
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Where a connection's payloads come from.
enum Payloads {
    /// The same random bytes every time (a plain broker does not look at them).
    Random(Bytes),
    /// A COSE_Mac0 per message, `filler` as its payload so that the whole is `size` bytes:
    /// the `ready` ones first (sealed before the run), then sealed one by one.
    Sealed {
        device: Device,
        filler: Vec<u8>,
        counter: u64,
        ready: VecDeque<Bytes>,
    },
}

/// Messages sealed during the run because the pre-sealed ones ran out.
static SEALED_LIVE: AtomicUsize = AtomicUsize::new(0);

impl Payloads {
    /// Seals `n` messages ahead (their counters and timestamps fixed now), into one buffer
    /// they are slices of: handing one out and dropping it after the write is then a
    /// reference count, as `Random`'s is. (Messages allocated one by one made the run
    /// against the gateway free ~200-byte blocks by the tens of thousands a second, and
    /// glibc's `malloc_consolidate` then stalled this generator for 20-150 ms at a time —
    /// seen in `perf record -a` as the generator busy and the node idle, counted as PUBACK
    /// latency.)
    fn preseal(&mut self, n: usize) {
        if let Self::Sealed {
            device,
            filler,
            counter,
            ready,
        } = self
        {
            let now = unix_secs();
            let mut all = BytesMut::new();
            let mut ends = Vec::with_capacity(n);
            for _ in 0..n {
                *counter += 1;
                let sealed = seal_mac0(
                    &device.id,
                    &device.key_id,
                    &device.key,
                    *counter,
                    now,
                    filler,
                );
                if all.is_empty() {
                    all.reserve(sealed.len() * n);
                }
                all.extend_from_slice(&sealed);
                ends.push(all.len());
            }
            let all = all.freeze();
            let mut start = 0;
            for end in ends {
                ready.push_back(all.slice(start..end));
                start = end;
            }
        }
    }

    fn next(&mut self) -> Bytes {
        match self {
            Self::Random(bytes) => bytes.clone(),
            Self::Sealed {
                device,
                filler,
                counter,
                ready,
            } => {
                if let Some(sealed) = ready.pop_front() {
                    return sealed;
                }
                SEALED_LIVE.fetch_add(1, Ordering::Relaxed);
                *counter += 1;
                Bytes::from(seal_mac0(
                    &device.id,
                    &device.key_id,
                    &device.key,
                    *counter,
                    unix_secs(),
                    filler,
                ))
            }
        }
    }
}

/// The payload that makes this device's COSE_Mac0 exactly `size` bytes (the counter and
/// the time keep their CBOR width: 8-byte and 4-byte integers for the years this runs).
fn filler_for(device: &Device, size: usize, counter: u64) -> Result<Vec<u8>> {
    let empty = seal_mac0(
        &device.id,
        &device.key_id,
        &device.key,
        counter,
        unix_secs(),
        &[],
    )
    .len();
    // The payload's bstr head grows by one byte at 24 and again at 256.
    for len in (0..=size.saturating_sub(empty)).rev() {
        let filler = vec![b'x'; len];
        let sealed = seal_mac0(
            &device.id,
            &device.key_id,
            &device.key,
            counter,
            unix_secs(),
            &filler,
        );
        if sealed.len() == size {
            return Ok(filler);
        }
    }
    Err(format!(
        "no payload makes a {size}-byte COSE_Mac0 for {} (the envelope alone is {empty} bytes)",
        device.id.as_str()
    )
    .into())
}

fn random_bytes(len: usize) -> Result<Bytes> {
    let mut bytes = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "no randomness")?;
    Ok(Bytes::from(bytes))
}

/// host:port, split.
fn host_port(target: &str) -> Result<(String, u16)> {
    let (host, port) = target
        .rsplit_once(':')
        .ok_or_else(|| format!("--target {target}: expected host:port"))?;
    Ok((host.to_owned(), port.parse()?))
}

/// What one connection should do.
struct Plan {
    client_id: String,
    topic: String,
    login: Option<(String, String)>,
    payloads: Payloads,
}

fn plans(args: &MqttArgs) -> Result<Vec<Plan>> {
    if args.gateway {
        let path = args.secrets.as_deref().ok_or("--gateway needs --secrets")?;
        let devices = read_secrets(path, args.skip, args.devices)?;
        let base = counter_base();
        devices
            .into_iter()
            .map(|device| {
                let filler = filler_for(&device, args.size, base)?;
                let id = device.id.as_str().to_owned();
                let login = Some((id.clone(), device_token(&device, &args.audience)));
                let mut payloads = Payloads::Sealed {
                    device,
                    filler,
                    counter: base,
                    ready: VecDeque::new(),
                };
                payloads.preseal(args.preseal);
                Ok(Plan {
                    client_id: id.clone(),
                    topic: format!("devices/{id}/telemetry"),
                    login,
                    payloads,
                })
            })
            .collect()
    } else if args.plain {
        (0..args.devices)
            .map(|i| {
                let id = format!("plain-{:06}", args.skip + i);
                Ok(Plan {
                    topic: format!("devices/{id}/telemetry"),
                    client_id: id,
                    login: None,
                    payloads: Payloads::Random(random_bytes(args.size)?),
                })
            })
            .collect()
    } else {
        Err("say --gateway or --plain".into())
    }
}

/// The measured window and the run's shared switches.
#[derive(Clone, Copy)]
struct Window {
    /// Publishing starts.
    start: Instant,
    /// Counting starts (after the warm-up).
    from: Instant,
    /// Counting and publishing end.
    until: Instant,
    /// Total rate, if paced.
    rate: Option<f64>,
}

impl Window {
    /// Paced runs: device `index` of `n`'s send instants, one every `n / rate` seconds from
    /// the start, the devices' phases spread over the period. Behind schedule (a full
    /// in-flight window) the ticks catch up, each message still timed from its due instant.
    fn ticks(&self, index: usize, n: usize) -> Option<tokio::time::Interval> {
        let rate = self.rate?;
        let period = Duration::from_secs_f64(n as f64 / rate.max(1e-3));
        let phase = period.mul_f64(index as f64 / n as f64);
        let mut ticks = tokio::time::interval_at(self.start + phase, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
        Some(ticks)
    }
}

/// One connection's tally.
#[derive(Debug, Default)]
struct Tally {
    connected: bool,
    connect_error: Option<String>,
    error: Option<String>,
    /// PUBLISHes written in the window.
    sent: u64,
    /// PUBACKs received in the window.
    acked: u64,
    /// Their latencies, microseconds.
    latencies_us: Vec<u32>,
    /// When each was due, milliseconds into the window (parallel to `latencies_us`).
    due_ms: Vec<u32>,
}

impl Tally {
    /// A PUBACK read at `now` for the message due at `due`, counted if `now` is in the window.
    fn acked(&mut self, window: &Window, due: Instant, now: Instant) {
        if now < window.from || now >= window.until {
            return;
        }
        self.acked += 1;
        let us = now.saturating_duration_since(due).as_micros();
        self.latencies_us
            .push(u32::try_from(us).unwrap_or(u32::MAX));
        let into = due.saturating_duration_since(window.from).as_millis();
        self.due_ms.push(u32::try_from(into).unwrap_or(u32::MAX));
    }
}

async fn publish(args: MqttArgs) -> Result<()> {
    let (host, port) = host_port(&args.target)?;
    let plans = plans(&args)?;
    let n = plans.len();
    let inflight = args.inflight.max(1);
    let connecting = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let settled = Arc::new(AtomicUsize::new(0));
    let (start_tx, start_rx) = watch::channel::<Option<Window>>(None);
    let setup_started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    let direct_target = if args.direct {
        let address = tokio::net::lookup_host(&args.target).await?.next();
        Some(address.ok_or_else(|| format!("--target {}: no address", args.target))?)
    } else {
        None
    };
    for (index, plan) in plans.into_iter().enumerate() {
        if let Some(target) = direct_target {
            tasks.push(tokio::spawn(direct::connection(
                index,
                n,
                target,
                plan,
                inflight,
                Arc::clone(&connecting),
                Arc::clone(&settled),
                start_rx.clone(),
            )));
            continue;
        }
        let mut options = MqttOptions::new(plan.client_id.clone(), host.clone(), port);
        options
            .set_keep_alive(Duration::from_secs(60))
            .set_clean_session(true)
            .set_inflight(inflight)
            .set_max_packet_size(64 * 1024, 64 * 1024);
        if let Some((user, password)) = &plan.login {
            options.set_credentials(user.clone(), password.clone());
        }
        tasks.push(tokio::spawn(connection(
            index,
            n,
            options,
            plan,
            usize::from(inflight),
            Arc::clone(&connecting),
            Arc::clone(&settled),
            start_rx.clone(),
        )));
    }
    // Every connection up (or refused) before anyone publishes.
    while settled.load(Ordering::Relaxed) < n {
        if setup_started.elapsed() > Duration::from_secs(300) {
            return Err("connections still not set up after 300 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let setup_secs = setup_started.elapsed().as_secs_f64();
    let start = Instant::now() + Duration::from_millis(100);
    let from = start + Duration::from_secs_f64(args.warmup);
    let until = from + Duration::from_secs_f64(args.duration);
    let _ = start_tx.send(Some(Window {
        start,
        from,
        until,
        rate: args.rate,
    }));
    if args.timeline.is_some() {
        // The window's start on CLOCK_MONOTONIC (std's Instant prints its timespec on
        // Linux), to line the timeline up with `perf record -k CLOCK_MONOTONIC`.
        eprintln!("gateway-load: window from {:?}", from.into_std());
    }
    tokio::time::sleep_until(from).await;
    let cpu_before = (cpu_secs(None), args.server_pid.map(|p| cpu_secs(Some(p))));
    tokio::time::sleep_until(until).await;
    let cpu_after = (cpu_secs(None), args.server_pid.map(|p| cpu_secs(Some(p))));

    let mut total = Tally::default();
    let (mut connected, mut connect_failed, mut broken) = (0usize, 0usize, 0usize);
    let mut first_errors = Vec::new();
    for task in tasks {
        let tally = task.await?;
        if tally.connected {
            connected += 1;
        } else {
            connect_failed += 1;
        }
        for e in [tally.connect_error, tally.error].into_iter().flatten() {
            if tally.connected {
                broken += 1;
            }
            if first_errors.len() < 5 {
                first_errors.push(e);
            }
        }
        total.sent += tally.sent;
        total.acked += tally.acked;
        total.latencies_us.extend(tally.latencies_us);
        total.due_ms.extend(tally.due_ms);
    }
    for e in &first_errors {
        eprintln!("gateway-load: {e}");
    }
    if let Some(path) = &args.timeline {
        write_timeline(path, &total.due_ms, &total.latencies_us)?;
    }
    let mut latencies = total.latencies_us;
    latencies.sort_unstable();
    let pct = |p: f64| -> u32 {
        if latencies.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1]
    };
    let secs = args.duration;
    let client_cpu = cpu_after.0 - cpu_before.0;
    let server_cpu = match (cpu_before.1, cpu_after.1) {
        (Some(b), Some(a)) => a - b,
        _ => 0.0,
    };
    let per_msg = |cpu: f64| {
        if total.acked == 0 {
            0.0
        } else {
            cpu * 1e6 / total.acked as f64
        }
    };
    println!(
        "RESULT mode={} devices={n} connected={connected} connect_failed={connect_failed} broken={broken} \
         setup_s={setup_secs:.1} secs={secs} sent={} acked={} rate={:.1} p50_us={} p90_us={} p99_us={} \
         p999_us={} max_us={} client_cpu_s={client_cpu:.2} server_cpu_s={server_cpu:.2} \
         client_us_per_msg={:.1} server_us_per_msg={:.1} errors={} sealed_live={}",
        if args.gateway { "gateway" } else { "plain" },
        total.sent,
        total.acked,
        total.acked as f64 / secs,
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        latencies.last().copied().unwrap_or(0),
        per_msg(client_cpu),
        per_msg(server_cpu),
        connect_failed + broken,
        SEALED_LIVE.load(Ordering::Relaxed),
    );
    Ok(())
}

/// Per 10 ms of due time: how many PUBACKs, their p99 and maximum latency.
fn write_timeline(path: &std::path::Path, due_ms: &[u32], latencies_us: &[u32]) -> Result<()> {
    let mut buckets: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
    for (due, latency) in due_ms.iter().zip(latencies_us) {
        buckets.entry(due / 10).or_default().push(*latency);
    }
    let mut text = String::from("offset_ms count p99_us max_us\n");
    for (bucket, mut latencies) in buckets {
        latencies.sort_unstable();
        let p99 = latencies[(latencies.len() * 99).div_ceil(100).max(1) - 1];
        let max = latencies[latencies.len() - 1];
        text.push_str(&format!(
            "{} {} {p99} {max}\n",
            bucket * 10,
            latencies.len()
        ));
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// The run's window, once every connection is up; `None` if the run was abandoned.
async fn start_of(start_rx: &mut watch::Receiver<Option<Window>>) -> Option<Window> {
    loop {
        if let Some(window) = *start_rx.borrow_and_update() {
            return Some(window);
        }
        start_rx.changed().await.ok()?;
    }
}

/// One device: connect, wait for the start, publish until the window ends, tally.
#[allow(clippy::too_many_arguments)]
async fn connection(
    index: usize,
    n: usize,
    options: MqttOptions,
    plan: Plan,
    inflight: usize,
    connecting: Arc<Semaphore>,
    settled: Arc<AtomicUsize>,
    mut start_rx: watch::Receiver<Option<Window>>,
) -> Tally {
    let mut tally = Tally::default();
    let (client, mut eventloop) = AsyncClient::new(options, 1);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(30);
    eventloop.set_network_options(network);
    {
        let _permit = connecting.acquire().await;
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) if ack.code == ConnectReturnCode::Success => {
                tally.connected = true;
            }
            Ok(other) => {
                tally.connect_error =
                    Some(format!("{}: CONNECT answered {other:?}", plan.client_id))
            }
            Err(e) => {
                tally.connect_error = Some(format!("{}: CONNECT failed: {e}", plan.client_id))
            }
        }
    }
    settled.fetch_add(1, Ordering::Relaxed);
    if !tally.connected {
        return tally;
    }
    let Some(window) = start_of(&mut start_rx).await else {
        return tally;
    };
    // Paced: the intended send instants, oldest first; a PUBACK's latency counts from the
    // instant the message was due, not from when a full window let it out.
    let intended: Arc<Mutex<VecDeque<Instant>>> = Arc::default();
    let publisher = tokio::spawn(publisher(
        client,
        plan.topic,
        plan.payloads,
        window,
        index,
        n,
        Arc::clone(&intended),
    ));
    let mut sent_at: Vec<Option<Instant>> = vec![None; inflight + 1];
    // The tally closes shortly after the window; later PUBACKs are not counted anyway.
    let close = window.until + Duration::from_millis(500);
    loop {
        let event = match tokio::time::timeout_at(close, eventloop.poll()).await {
            Err(_) => break,
            Ok(Err(e)) => {
                tally.error = Some(format!("{}: connection failed: {e}", plan.client_id));
                break;
            }
            Ok(Ok(event)) => event,
        };
        let now = Instant::now();
        let counted = now >= window.from && now < window.until;
        match event {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                let due = if window.rate.is_some() {
                    intended
                        .lock()
                        .ok()
                        .and_then(|mut q| q.pop_front())
                        .unwrap_or(now)
                } else {
                    now
                };
                if let Some(slot) = sent_at.get_mut(usize::from(pkid)) {
                    *slot = Some(due);
                }
                if counted {
                    tally.sent += 1;
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                let due = sent_at
                    .get_mut(usize::from(ack.pkid))
                    .and_then(Option::take);
                if let Some(due) = due {
                    tally.acked(&window, due, now);
                }
            }
            Event::Incoming(Packet::Disconnect) => {
                tally.error = Some(format!("{}: the server disconnected", plan.client_id));
                break;
            }
            _ => {}
        }
    }
    publisher.abort();
    tally
}

/// Hands messages to the client: as fast as the in-flight window lets them out, or one
/// every `n / rate` seconds with the devices' phases spread over the period.
async fn publisher(
    client: AsyncClient,
    topic: String,
    mut payloads: Payloads,
    window: Window,
    index: usize,
    n: usize,
    intended: Arc<Mutex<VecDeque<Instant>>>,
) {
    match window.ticks(index, n) {
        None => {
            tokio::time::sleep_until(window.start).await;
            while Instant::now() < window.until {
                let payload = payloads.next();
                if client
                    .publish_bytes(topic.clone(), QoS::AtLeastOnce, false, payload)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        Some(mut ticks) => loop {
            let due = ticks.tick().await;
            if due >= window.until {
                return;
            }
            let payload = payloads.next();
            if let Ok(mut q) = intended.lock() {
                q.push_back(due);
            }
            if client
                .publish_bytes(topic.clone(), QoS::AtLeastOnce, false, payload)
                .await
                .is_err()
            {
                return;
            }
        },
    }
}

/// utime + stime of a process (this one when `None`), seconds.
fn cpu_secs(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // The fields after the command name (which may hold spaces) start at `) `.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of proc(5), counted from 1 with pid and comm first.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on every Linux this runs on.
    (ticks(11) + ticks(12)) / 100.0
}

/// VmRSS of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn source_ips(spec: &str) -> Result<Vec<IpAddr>> {
    if let Some((first, last)) = spec.split_once('-') {
        let (first, last): (Ipv4Addr, Ipv4Addr) = (first.trim().parse()?, last.trim().parse()?);
        let (a, b) = (u32::from(first), u32::from(last));
        if b < a {
            return Err(format!("--source-ips {spec}: empty range").into());
        }
        return Ok((a..=b).map(|ip| IpAddr::V4(Ipv4Addr::from(ip))).collect());
    }
    spec.split(',').map(|ip| Ok(ip.trim().parse()?)).collect()
}

/// Idle devices: connect all, hold, report the server's resident memory.
async fn idle(args: MqttArgs) -> Result<()> {
    let target: SocketAddr = args.target.parse()?;
    let ips = source_ips(&args.source_ips)?;
    let logins: Vec<(String, Option<(String, String)>)> = if args.gateway {
        let path = args.secrets.as_deref().ok_or("--gateway needs --secrets")?;
        read_secrets(path, args.skip, args.devices)?
            .into_iter()
            .map(|d| {
                let token = device_token(&d, &args.audience);
                let id = d.id.as_str().to_owned();
                (id.clone(), Some((id, token)))
            })
            .collect()
    } else {
        (0..args.devices)
            .map(|i| (format!("idle-{:06}", args.skip + i), None))
            .collect()
    };
    let rss_before = args.server_pid.map_or(0, rss_kib);
    let connecting = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let up = Arc::new(AtomicUsize::new(0));
    let lost = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(logins.len());
    for (i, (client_id, login)) in logins.into_iter().enumerate() {
        let source = ips[i % ips.len()];
        let connecting = Arc::clone(&connecting);
        let (up, lost, stop_rx) = (Arc::clone(&up), Arc::clone(&lost), stop_rx.clone());
        let keep_alive = args.keep_alive;
        tasks.push(tokio::spawn(async move {
            let permit = connecting.acquire_owned().await;
            let stream = match idle_connect(source, target, client_id, login, keep_alive).await {
                Ok(stream) => stream,
                Err(e) => return Some(e.to_string()),
            };
            drop(permit);
            up.fetch_add(1, Ordering::Relaxed);
            if hold(stream, keep_alive, stop_rx).await.is_err() {
                lost.fetch_add(1, Ordering::Relaxed);
            }
            None
        }));
    }
    // Wait until every connection is up or failed.
    let mut failures = Vec::new();
    let mut failed = 0usize;
    loop {
        let finished_early = tasks.iter().filter(|t| t.is_finished()).count();
        if up.load(Ordering::Relaxed) + finished_early >= tasks.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    for task in tasks.iter_mut().filter(|t| t.is_finished()) {
        if let Ok(Some(e)) = task.await {
            failed += 1;
            if failures.len() < 5 {
                failures.push(e);
            }
        }
    }
    for e in &failures {
        eprintln!("gateway-load: {e}");
    }
    let connected = up.load(Ordering::Relaxed);
    eprintln!(
        "gateway-load: {connected} idle connections up in {connect_secs:.1} s ({failed} failed); holding {} s",
        args.hold
    );
    // Hold, sampling the server's RSS; the last sample and the peak are reported.
    let hold_until = Instant::now() + Duration::from_secs_f64(args.hold);
    let mut rss_peak = 0u64;
    let mut rss_now = 0u64;
    while Instant::now() < hold_until {
        if let Some(pid) = args.server_pid {
            rss_now = rss_kib(pid);
            rss_peak = rss_peak.max(rss_now);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(pid) = args.server_pid {
        rss_now = rss_kib(pid);
        rss_peak = rss_peak.max(rss_now);
    }
    let still = connected - lost.load(Ordering::Relaxed).min(connected);
    let per_1000 = if still > 0 {
        rss_now.saturating_sub(rss_before) as f64 * 1000.0 / still as f64
    } else {
        0.0
    };
    println!(
        "RESULT mode={} devices={} connected={connected} failed={failed} held={still} \
         connect_s={connect_secs:.1} source_ips={} rss_before_kib={rss_before} rss_kib={rss_now} \
         rss_peak_kib={rss_peak} kib_per_1000={per_1000:.0}",
        if args.gateway { "gateway" } else { "plain" },
        args.devices,
        ips.len(),
    );
    let _ = stop_tx.send(true);
    Ok(())
}

/// TCP from `source`, CONNECT (MQTT 3.1.1, rumqttc's codec), CONNACK must be Success.
async fn idle_connect(
    source: IpAddr,
    target: SocketAddr,
    client_id: String,
    login: Option<(String, String)>,
    keep_alive: u16,
) -> Result<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let mut stream = tokio::time::timeout(Duration::from_secs(30), socket.connect(target))
        .await
        .map_err(|_| "TCP connect timed out")?
        .map_err(|e| format!("connect from {source}: {e}"))?;
    stream.set_nodelay(true)?;
    let mut connect = rumqttc::Connect::new(client_id.clone());
    connect.keep_alive = keep_alive;
    if let Some((user, password)) = login {
        connect.set_login(user, password);
    }
    let mut out = BytesMut::new();
    Packet::Connect(connect).write(&mut out, 64 * 1024)?;
    stream.write_all(&out).await?;
    let mut input = BytesMut::with_capacity(64);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Packet::read(&mut input, 1024) {
            Ok(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => {
                return Ok(stream)
            }
            Ok(other) => return Err(format!("{client_id}: CONNECT answered {other:?}").into()),
            Err(rumqttc::Error::InsufficientBytes(_)) => {
                let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut input))
                    .await
                    .map_err(|_| format!("{client_id}: no CONNACK in 30 s"))??;
                if read == 0 {
                    return Err(format!("{client_id}: closed before CONNACK").into());
                }
            }
            Err(e) => return Err(format!("{client_id}: bad CONNACK: {e}").into()),
        }
    }
}

/// Keeps an idle connection: PINGREQ every half keep-alive, reads (and drops) what comes,
/// until `stop`. An error if the server closes it.
async fn hold(
    mut stream: tokio::net::TcpStream,
    keep_alive: u16,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut ping = tokio::time::interval(Duration::from_secs(u64::from(keep_alive.max(2)) / 2));
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ping.tick().await;
    let mut scratch = [0u8; 64];
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = ping.tick() => stream.write_all(&[0xC0, 0x00]).await?,
            read = stream.read(&mut scratch) => {
                if read? == 0 {
                    return Err("closed by the server".into());
                }
            }
        }
    }
}

/// Writes `threads` files of fixed-size COSE_Mac0 records. Messages go round-robin over
/// the file's devices with counters rising by one per round, so a device's next message
/// is `devices / threads` requests after its previous one: with wrk's connections far fewer
/// than that, each message of a device is answered before the next one is sent, and every
/// counter arrives above the previous one.
fn cose_file(args: &CoseFileArgs) -> Result<()> {
    let threads = args.threads.max(1);
    let devices = read_secrets(&args.secrets, 0, args.devices)?;
    let base = counter_base();
    let now = unix_secs();
    for t in 0..threads {
        let mine: Vec<&Device> = devices.iter().skip(t).step_by(threads).collect();
        if mine.is_empty() {
            return Err("fewer devices than threads".into());
        }
        let fillers = mine
            .iter()
            .map(|d| filler_for(d, args.size, base))
            .collect::<Result<Vec<_>>>()?;
        let path = PathBuf::from(format!("{}.{t}", args.out.display()));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for k in 0..args.messages {
            let (i, round) = (k % mine.len(), k / mine.len());
            let device = mine[i];
            let message = seal_mac0(
                &device.id,
                &device.key_id,
                &device.key,
                base + 1 + round as u64,
                now,
                &fillers[i],
            );
            if message.len() != args.size {
                return Err(format!("a message came out {} bytes", message.len()).into());
            }
            out.write_all(&message)?;
        }
        out.flush()?;
    }
    eprintln!(
        "gateway-load: {threads} × {} messages of {} bytes ({} devices) in {}.*",
        args.messages,
        args.size,
        devices.len(),
        args.out.display()
    );
    Ok(())
}
