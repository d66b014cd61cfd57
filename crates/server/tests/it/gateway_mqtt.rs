//! The gateway's MQTT adapter (issue #12) against the real binary: devices connect with a
//! device token (username = device id, password = token) and publish COSE_Mac0 messages,
//! in MQTT 3.1.1 and 5, through a small client written here byte by byte (so the test does
//! not share the server's codec) and through `mosquitto_pub` when it is installed. Refusals
//! must use each version's own codes; a take-over, a suspension and a slow CONNECT end
//! connections.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_core::device::DeviceId;
use serde_json::json;

use crate::support::gateway::stored;
use crate::support::Node;

const V311: u8 = 4;
const V5: u8 = 5;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A node with the plain MQTT listener on too (loopback, so tokens may ride on it).
fn start_node(env: &[(&str, &str)]) -> (Node, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start_with_args(
        &tmp.path().join("data"),
        &["--listen-mqtt", "127.0.0.1:0"],
        env,
    );
    assert!(
        node.mqtt_addr.is_some(),
        "no plain MQTT listener: {}",
        node.log()
    );
    (node, tmp)
}

/// A registered device with one symmetric key.
struct Device {
    id: String,
    key_id: String,
    key: [u8; 32],
    counter: u64,
}

impl Device {
    fn register(node: &Node, id: &str) -> Device {
        node.cli_json(&["device", "register", "--id", id]);
        let created = node.cli_json(&["device", "key", "create", id]);
        let key: [u8; 32] = URL_SAFE_NO_PAD
            .decode(created["key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        Device {
            id: id.to_owned(),
            key_id: created["key_id"].as_str().unwrap().to_owned(),
            key,
            counter: 0,
        }
    }

    /// An HS256 device token for `audience` (the issuer URL by default).
    fn token(&self, audience: &str) -> String {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": self.key_id});
        let iat = now();
        let claims = json!({
            "iss": self.id, "sub": self.id, "aud": audience, "iat": iat, "exp": iat + 600,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.key);
        let tag = hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The next COSE_Mac0 reading (counter one above the last).
    fn reading(&mut self, value: f64) -> Vec<u8> {
        self.counter += 1;
        portcullis_gateway::cose::seal_mac0(
            &DeviceId::parse(self.id.clone()).unwrap(),
            &self.key_id,
            &self.key,
            self.counter,
            now(),
            json!({ "t": value }).to_string().as_bytes(),
        )
    }

    fn topic(&self) -> String {
        format!("devices/{}/telemetry", self.id)
    }
}

/// An MQTT packet as read: the first byte and what follows the remaining length.
#[derive(Debug)]
struct Packet {
    first: u8,
    body: Vec<u8>,
}

impl Packet {
    fn kind(&self) -> u8 {
        self.first >> 4
    }
}

const CONNACK: u8 = 2;
const PUBACK: u8 = 4;
const SUBACK: u8 = 9;
const PINGRESP: u8 = 13;
const DISCONNECT: u8 = 14;

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return;
        }
    }
}

fn string(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    remaining_length(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

fn connect_packet(
    version: u8,
    client_id: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> Vec<u8> {
    let mut body = Vec::new();
    string(b"MQTT", &mut body);
    body.push(version);
    let flags = 0x02 | user.map_or(0, |_| 0x80) | password.map_or(0, |_| 0x40);
    body.push(flags);
    body.extend_from_slice(&30u16.to_be_bytes()); // keep-alive
    if version == V5 {
        body.push(0); // no properties
    }
    string(client_id.as_bytes(), &mut body);
    if let Some(user) = user {
        string(user.as_bytes(), &mut body);
    }
    if let Some(password) = password {
        string(password.as_bytes(), &mut body);
    }
    packet(0x10, &body)
}

fn publish_packet(version: u8, topic: &str, qos: u8, pkid: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    string(topic.as_bytes(), &mut body);
    if qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    if version == V5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    packet(0x30 | (qos << 1), &body)
}

/// A byte-level MQTT client, enough for the adapter's tests.
struct Client {
    stream: TcpStream,
    version: u8,
}

impl Client {
    fn open(addr: &str, version: u8) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client { stream, version }
    }

    /// Connects and returns the CONNACK's return / reason code.
    fn connect(
        addr: &str,
        version: u8,
        user: Option<&str>,
        password: Option<&str>,
    ) -> (Client, u8) {
        let mut client = Client::open(addr, version);
        client.send(&connect_packet(version, "test-client", user, password));
        let ack = client.read().expect("a CONNACK");
        assert_eq!(ack.kind(), CONNACK, "{ack:?}");
        let code = ack.body[1];
        (client, code)
    }

    fn connected(node: &Node, device: &Device, version: u8) -> Client {
        let token = device.token(&node.base);
        let (client, code) = Client::connect(
            node.mqtt_addr.as_deref().unwrap(),
            version,
            Some(&device.id),
            Some(&token),
        );
        assert_eq!(code, 0, "CONNECT refused: {}", node.log());
        client
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn publish(&mut self, topic: &str, qos: u8, pkid: u16, payload: &[u8]) {
        let bytes = publish_packet(self.version, topic, qos, pkid, payload);
        self.send(&bytes);
    }

    /// The next packet, or `None` once the server closed the connection.
    fn read(&mut self) -> Option<Packet> {
        let mut first = [0u8; 1];
        match self.stream.read_exact(&mut first) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                ) =>
            {
                return None
            }
            Err(e) => panic!("read: {e}"),
        }
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let mut b = [0u8; 1];
            self.stream.read_exact(&mut b).unwrap();
            len |= usize::from(b[0] & 0x7F) << shift;
            shift += 7;
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).unwrap();
        Some(Packet {
            first: first[0],
            body,
        })
    }

    /// A PUBACK's packet id and reason code (0 in MQTT 3.1.1 or when left out).
    fn puback(&mut self) -> (u16, u8) {
        let ack = self.read().expect("a PUBACK");
        assert_eq!(ack.kind(), PUBACK, "{ack:?}");
        let pkid = u16::from_be_bytes([ack.body[0], ack.body[1]]);
        (pkid, ack.body.get(2).copied().unwrap_or(0))
    }

    /// The reason code of the DISCONNECT the server sends before it closes (MQTT 5).
    fn disconnect_reason(&mut self) -> u8 {
        let packet = self.read().expect("a DISCONNECT");
        assert_eq!(packet.kind(), DISCONNECT, "{packet:?}");
        let reason = packet.body.first().copied().unwrap_or(0);
        assert!(
            self.read().is_none(),
            "the connection stays open after DISCONNECT"
        );
        reason
    }

    /// Whether the server closes the connection without another packet.
    fn closed(&mut self) -> bool {
        self.read().is_none()
    }
}

#[test]
fn mqtt_device_token_and_cose_messages_are_acknowledged_in_both_versions() {
    let (node, _tmp) = start_node(&[]);
    let mut device = Device::register(&node, "mqtt-sensor-1");

    for version in [V311, V5] {
        let mut client = Client::connected(&node, &device, version);
        // QoS 1: PUBACK once the sink holds it.
        let reading = device.reading(21.5);
        client.publish(&device.topic(), 1, 7, &reading);
        assert_eq!(client.puback(), (7, 0), "MQTT level {version}");
        // A named stream, then QoS 0 (no answer), then a ping that is answered after it.
        let reading = device.reading(22.0);
        client.publish(&format!("{}/power", device.topic()), 1, 8, &reading);
        assert_eq!(client.puback(), (8, 0));
        let reading = device.reading(22.5);
        client.publish(&device.topic(), 0, 0, &reading);
        client.send(&[0xC0, 0x00]);
        assert_eq!(client.read().unwrap().kind(), PINGRESP);
        client.send(&[0xE0, 0x00]);
        assert!(client.closed());
    }
    let records = stored(&node, &device.id);
    assert_eq!(records.len(), 6, "{records:?}");
    assert!(records.iter().all(|r| r["device_id"] == device.id.as_str()));
    assert_eq!(records.iter().filter(|r| r["stream"] == "power").count(), 2);
    assert_eq!(
        records
            .iter()
            .filter(|r| r["method"] == "cose_mac0")
            .count(),
        6
    );
}

#[test]
fn mqtt_refusals_use_each_versions_codes() {
    let (node, _tmp) = start_node(&[]);
    let addr = node.mqtt_addr.clone().unwrap();
    let mut device = Device::register(&node, "mqtt-sensor-2");
    let other = Device::register(&node, "mqtt-sensor-3");
    let token = device.token(&node.base);

    // Wrong password, no password, another device's token, an unknown device: CONNACK
    // 0x04 bad user name or password (3.1.1) / 0x86 (5).
    let other_token = other.token(&node.base);
    let refused: [(Option<&str>, Option<&str>); 4] = [
        (Some(&device.id), Some("not-a-token")),
        (Some(&device.id), None),
        (Some(&device.id), Some(&other_token)),
        (Some("nobody"), Some(&token)),
    ];
    for (user, password) in refused {
        for (version, expected) in [(V311, 0x04), (V5, 0x86)] {
            let (mut client, code) = Client::connect(&addr, version, user, password);
            assert_eq!(code, expected, "level {version}, user {user:?}");
            assert!(client.closed());
        }
    }

    // Another device's topic, wildcards, an empty stream: MQTT 5 PUBACK 0x87 on an open
    // connection.
    let mut v5 = Client::connected(&node, &device, V5);
    for (pkid, topic) in [
        (1, other.topic()),
        (2, "devices/+/telemetry".to_owned()),
        (3, format!("{}/", device.topic())),
        (4, format!("{}/a/b", device.topic())),
    ] {
        let reading = device.reading(1.0);
        v5.publish(&topic, 1, pkid, &reading);
        assert_eq!(v5.puback(), (pkid, 0x87), "{topic}");
    }

    // A replayed message: accepted once, then refused with PUBACK 0x83, connection open.
    let replayed = device.reading(2.0);
    v5.publish(&device.topic(), 1, 10, &replayed);
    assert_eq!(v5.puback(), (10, 0));
    v5.publish(&device.topic(), 1, 11, &replayed);
    assert_eq!(v5.puback(), (11, 0x83));

    // A message that is not COSE from a device whose policy requires it: not authorized.
    v5.publish(&device.topic(), 1, 13, b"{\"t\":1}");
    assert_eq!(v5.puback(), (13, 0x87));

    // SUBSCRIBE is refused per filter: this is an ingress, not a broker.
    let mut subscribe = 20u16.to_be_bytes().to_vec();
    subscribe.push(0);
    string(b"devices/#", &mut subscribe);
    subscribe.push(1);
    v5.send(&packet(0x82, &subscribe));
    let suback = v5.read().unwrap();
    assert_eq!(suback.kind(), SUBACK);
    assert_eq!(suback.body, vec![0, 20, 0, 0x87]);

    // QoS 2 is not offered: MQTT 5 DISCONNECT 0x9B.
    let reading = device.reading(3.0);
    v5.publish(&device.topic(), 2, 30, &reading);
    assert_eq!(v5.disconnect_reason(), 0x9B);

    // A packet over the maximum size: MQTT 5 DISCONNECT 0x95, before the body is read.
    let mut v5 = Client::connected(&node, &device, V5);
    let mut huge = vec![0x32];
    remaining_length(1 << 20, &mut huge);
    v5.send(&huge);
    assert_eq!(v5.disconnect_reason(), 0x95);

    // MQTT 3.1.1 cannot refuse a PUBLISH: another device's topic, a replay and a QoS 2
    // message each close the connection.
    for (topic, qos, payload) in [
        (other.topic(), 1, device.reading(4.0)),
        (device.topic(), 1, replayed.clone()),
        (device.topic(), 2, device.reading(5.0)),
    ] {
        let mut v311 = Client::connected(&node, &device, V311);
        v311.publish(&topic, qos, 1, &payload);
        assert!(v311.closed(), "3.1.1 {topic} QoS {qos}");
    }

    // Nothing refused was stored: the one accepted reading only.
    assert_eq!(stored(&node, &device.id).len(), 1);
}

#[test]
fn mqtt_take_over_and_suspension_end_connections() {
    let (node, _tmp) = start_node(&[]);
    let mut device = Device::register(&node, "mqtt-sensor-4");

    // A second connection of the same device takes over: the first hears 0x8E.
    let mut first = Client::connected(&node, &device, V5);
    let mut second = Client::connected(&node, &device, V5);
    assert_eq!(first.disconnect_reason(), 0x8E);
    let reading = device.reading(1.0);
    second.publish(&device.topic(), 1, 1, &reading);
    assert_eq!(second.puback(), (1, 0));
    // An MQTT 3.1.1 connection taken over is just closed.
    let mut third = Client::connected(&node, &device, V311);
    assert_eq!(second.disconnect_reason(), 0x8E);
    let mut fourth = Client::connected(&node, &device, V5);
    assert!(third.closed());

    // Suspended while connected: disconnected (0x87) within 500 ms.
    let out = node.cli(&["device", "suspend", &device.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let suspended = Instant::now();
    assert_eq!(fourth.disconnect_reason(), 0x87);
    let took = suspended.elapsed();
    assert!(
        took <= Duration::from_millis(500),
        "disconnected after {took:?}"
    );
    // And refused from now on.
    let token = device.token(&node.base);
    let addr = node.mqtt_addr.clone().unwrap();
    let (_, code) = Client::connect(&addr, V5, Some(&device.id), Some(&token));
    assert_eq!(code, 0x87);
    let (_, code) = Client::connect(&addr, V311, Some(&device.id), Some(&token));
    assert_eq!(code, 0x05);
}

/// A session keeps its device's credentials between messages (`credentials_memo`); a key
/// added by rotation must still be taken by the same session's next message, within the
/// change announcement's delay and not the copy's 5 s age.
#[test]
fn a_key_rotated_mid_session_signs_the_sessions_next_message() {
    let (node, _tmp) = start_node(&[]);
    let mut device = Device::register(&node, "mqtt-sensor-rotating");
    let mut client = Client::connected(&node, &device, V5);
    let reading = device.reading(1.0);
    client.publish(&device.topic(), 1, 1, &reading);
    assert_eq!(client.puback(), (1, 0));

    let rotated = node.cli_json(&["device", "key", "rotate", &device.id, "--overlap", "600"]);
    let rotated_at = Instant::now();
    device.key = URL_SAFE_NO_PAD
        .decode(rotated["key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    device.key_id = rotated["key_id"].as_str().unwrap().to_owned();
    let mut pkid = 1;
    loop {
        pkid += 1;
        let reading = device.reading(2.0);
        client.publish(&device.topic(), 1, pkid, &reading);
        let (acked, code) = client.puback();
        assert_eq!(acked, pkid);
        if code == 0 {
            break;
        }
        assert!(
            rotated_at.elapsed() < Duration::from_millis(1500),
            "the new key is still refused (reason {code:#x}) after {:?}",
            rotated_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let records = stored(&node, &device.id);
    assert_eq!(records.last().unwrap()["key_id"], device.key_id.as_str());
}

#[test]
fn mqtt_slow_or_absent_connect_is_closed() {
    let (node, _tmp) = start_node(&[("PORTCULLIS_GATEWAY__CONNECT_TIMEOUT_SECS", "1")]);
    let addr = node.mqtt_addr.clone().unwrap();
    let device = Device::register(&node, "mqtt-sensor-5");
    let token = device.token(&node.base);

    // Nothing at all, and half a CONNECT: closed after the connect timeout.
    let connect = connect_packet(V311, "slow", Some(&device.id), Some(&token));
    for sent in [&connect[..0], &connect[..connect.len() / 2]] {
        let started = Instant::now();
        let mut client = Client::open(&addr, V311);
        client.send(sent);
        assert!(client.closed());
        let took = started.elapsed();
        assert!(
            (Duration::from_millis(900)..Duration::from_secs(5)).contains(&took),
            "closed after {took:?}"
        );
    }
    // Something that is not MQTT: closed at once, without an answer.
    let mut client = Client::open(&addr, V311);
    client.send(b"GET / HTTP/1.1\r\n\r\n");
    assert!(client.closed());
    // MQTT 3.1 (MQIsdp, level 3): CONNACK 0x01 unacceptable protocol version.
    let mut client = Client::open(&addr, V311);
    let mut body = Vec::new();
    string(b"MQIsdp", &mut body);
    body.extend_from_slice(&[3, 0x02, 0, 30]);
    string(b"old", &mut body);
    client.send(&packet(0x10, &body));
    let ack = client.read().unwrap();
    assert_eq!((ack.kind(), ack.body[1]), (CONNACK, 0x01));
    assert!(client.closed());
}

/// Whether `mosquitto_pub` (Debian package mosquitto-clients, which `scripts/test.sh`
/// installs) is here. In CI its absence is a failure; elsewhere the test says it skips.
fn mosquitto_pub_installed() -> bool {
    let installed = std::process::Command::new("mosquitto_pub")
        .arg("--help")
        .output()
        .is_ok();
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "mosquitto_pub is missing in CI: run scripts/test.sh"
        );
        eprintln!("skipping: mosquitto_pub is not installed (run scripts/test.sh)");
    }
    installed
}

#[test]
fn mosquitto_pub_publishes_cose_readings() {
    if !mosquitto_pub_installed() {
        return;
    }
    let (node, tmp) = start_node(&[]);
    let mut device = Device::register(&node, "mqtt-sensor-6");
    let (host, port) = node.mqtt_addr.as_deref().unwrap().rsplit_once(':').unwrap();
    for (n, version) in ["mqttv311", "mqttv5"].into_iter().enumerate() {
        let file = tmp.path().join(format!("reading-{n}.cbor"));
        std::fs::write(&file, device.reading(n as f64)).unwrap();
        let token = device.token(&node.base);
        let out = std::process::Command::new("mosquitto_pub")
            .args([
                "-h",
                host,
                "-p",
                port,
                "-V",
                version,
                "-q",
                "1",
                "-i",
                "mosquitto",
            ])
            .args(["-u", &device.id, "-P", &token, "-t", &device.topic(), "-f"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mosquitto_pub -V {version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A wrong password is refused with the code mosquitto reports.
    let out = std::process::Command::new("mosquitto_pub")
        .args([
            "-h", host, "-p", port, "-V", "mqttv5", "-q", "1", "-u", &device.id,
        ])
        .args(["-P", "wrong", "-t", &device.topic(), "-m", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(stored(&node, &device.id).len(), 2);
}

#[test]
fn mosquitto_pub_over_tls_with_a_device_certificate() {
    if !mosquitto_pub_installed() {
        return;
    }
    let (node, tmp) = start_node(&[]);
    // Enrolled over EST like any certificate device.
    let dev = crate::pki::Device::new(&tmp.path().join("dev"), "mqtt-gw-1");
    crate::pki::provision_ca(&node, &dev);
    let secret = crate::pki::register(&node, "mqtt-gw-1");
    let csr = dev.csr("gw", "ec", "/CN=mqtt-gw-1");
    let (status, out) = dev.est(
        &node,
        "simpleenroll",
        &csr,
        Some(("mqtt-gw-1", &secret)),
        None,
    );
    assert_eq!(status, 200);
    dev.save_cert(&out, "gw");

    let (host, port) = node
        .mqtts_addr
        .as_deref()
        .unwrap()
        .rsplit_once(':')
        .unwrap();
    let publish = |version: &str, user: Option<&str>| {
        let mut cmd = std::process::Command::new("mosquitto_pub");
        cmd.args(["-h", host, "-p", port, "-V", version, "-q", "1", "-i", "gw"])
            .arg("--cafile")
            .arg(dev.path("root.pem"))
            .arg("--cert")
            .arg(dev.path("gw.pem"))
            .arg("--key")
            .arg(dev.path("gw.key"))
            .args([
                "-t",
                "devices/mqtt-gw-1/telemetry/power",
                "-m",
                "{\"w\":1200}",
            ]);
        if let Some(user) = user {
            cmd.args(["-u", user]);
        }
        cmd.output().unwrap()
    };
    for (version, user) in [("mqttv311", None), ("mqttv5", Some("mqtt-gw-1"))] {
        let out = publish(version, user);
        assert!(
            out.status.success(),
            "mosquitto_pub -V {version}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            node.log()
        );
    }
    // With a certificate, a user name naming another device is refused.
    assert!(!publish("mqttv5", Some("someone-else")).status.success());
    let records = stored(&node, "mqtt-gw-1");
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(records
        .iter()
        .all(|r| r["method"] == "certificate" && r["stream"] == "power"));
}

#[test]
fn mqtt_pipelined_qos1_messages_are_acknowledged_in_order() {
    let (node, _tmp) = start_node(&[("PORTCULLIS_GATEWAY__MAX_INFLIGHT", "16")]);
    let mut device = Device::register(&node, "mqtt-sensor-7");
    let mut client = Client::connected(&node, &device, V5);
    // Far more than the in-flight limit, written at once: the adapter queues up to the limit
    // and leaves the rest in the socket; every message is acknowledged, in order.
    let count: u16 = 300;
    let mut burst = Vec::new();
    for pkid in 1..=count {
        let reading = device.reading(f64::from(pkid));
        burst.extend(publish_packet(V5, &device.topic(), 1, pkid, &reading));
    }
    let started = Instant::now();
    client.send(&burst);
    for pkid in 1..=count {
        assert_eq!(client.puback(), (pkid, 0));
    }
    eprintln!(
        "{count} pipelined QoS 1 messages on one connection in {:?}",
        started.elapsed()
    );
    // The connection goes on.
    client.send(&[0xC0, 0x00]);
    assert_eq!(client.read().unwrap().kind(), PINGRESP);
    assert_eq!(stored(&node, &device.id).len(), usize::from(count));
}

/// A full disk, over MQTT (the log's writes fail with ENOSPC, from a FUSE filesystem under
/// it): an MQTT 5 device gets a negative PUBACK (0x80, unspecified error) and keeps its
/// connection; an MQTT 3.1.1 device, which has no negative PUBACK, loses its connection
/// without one, so it sends the message again when it reconnects (§4.4). Once there is room
/// the same messages are acknowledged, each stored once.
#[test]
fn a_full_disk_refuses_mqtt_messages_in_each_versions_way() {
    use crate::support::gateway::{stored_counters, DiskFault, FailingDisk};

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let Some(disk) = FailingDisk::mount(&data.join("telemetry"), tmp.path()) else {
        return;
    };
    let node = Node::start_with_args(&data, &["--listen-mqtt", "127.0.0.1:0"], &[]);
    let mut device = Device::register(&node, "mqtt-full");
    let topic = device.topic();

    let mut v5 = Client::connected(&node, &device, V5);
    v5.publish(&topic, 1, 1, &device.reading(1.0));
    assert_eq!(v5.puback(), (1, 0));
    disk.fail(DiskFault::Full);
    let second = device.reading(2.0);
    v5.publish(&topic, 1, 2, &second);
    assert_eq!(v5.puback(), (2, 0x80));
    disk.heal();
    v5.publish(&topic, 1, 3, &second);
    assert_eq!(v5.puback(), (3, 0));
    drop(v5);

    disk.fail(DiskFault::Full);
    let third = device.reading(3.0);
    let mut v311 = Client::connected(&node, &device, V311);
    v311.publish(&topic, 1, 4, &third);
    assert!(v311.closed(), "an MQTT 3.1.1 refusal closes the connection");
    disk.heal();
    let mut v311 = Client::connected(&node, &device, V311);
    v311.publish(&topic, 1, 4, &third);
    assert_eq!(v311.puback(), (4, 0));

    assert_eq!(stored_counters(&node, &device.id), [1, 2, 3]);
    drop(node);
    drop(disk);
}

#[test]
fn a_node_shutting_down_tells_mqtt5_devices_why_and_closes_every_connection() {
    let (node, _tmp) = start_node(&[]);
    let five = Device::register(&node, "mqtt-sensor-bye5");
    let three = Device::register(&node, "mqtt-sensor-bye3");
    let mut v5 = Client::connected(&node, &five, V5);
    let mut v311 = Client::connected(&node, &three, V311);
    assert!(node.stop().success());
    // MQTT 5: DISCONNECT 0x8B "server shutting down"; 3.1.1 has no such packet: closed.
    assert_eq!(v5.disconnect_reason(), 0x8B);
    assert!(v311.closed());
}

/// The resident memory of the node serving `data_dir`, in bytes (Linux).
fn node_rss(node: &Node) -> Option<u64> {
    let data_dir = node.data_dir.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "serve") && args.contains(&data_dir) {
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let kib: u64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            return Some(kib * 1024);
        }
    }
    None
}

#[test]
fn ten_thousand_half_open_mqtt_connections_cost_little_memory() {
    let (node, _tmp) = start_node(&[("PORTCULLIS_GATEWAY__CONNECT_TIMEOUT_SECS", "60")]);
    let addr = node.mqtt_addr.clone().unwrap();
    let mut device = Device::register(&node, "mqtt-sensor-8");
    let Some(before) = node_rss(&node) else {
        eprintln!("skipping: no /proc to read the node's memory from");
        return;
    };
    // Half a CONNECT each, then silence: each waits out the connect timeout.
    let connect = connect_packet(V311, "idle", Some("x"), Some("y"));
    let idle: Vec<TcpStream> = (0..10_000)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(&connect[..8]).unwrap();
            s
        })
        .collect();
    // A real device still gets through meanwhile.
    let mut client = Client::connected(&node, &device, V5);
    let reading = device.reading(1.0);
    client.publish(&device.topic(), 1, 1, &reading);
    assert_eq!(client.puback(), (1, 0));
    std::thread::sleep(Duration::from_millis(500));
    let after = node_rss(&node).unwrap();
    let per_connection = after.saturating_sub(before) / idle.len() as u64;
    eprintln!(
        "{} half-open MQTT connections: {per_connection} bytes each",
        idle.len()
    );
    assert!(
        per_connection < 8 * 1024,
        "{per_connection} bytes per half-open connection"
    );
}

/// Python's paho-mqtt (through the example device, pycose + PyJWT) over MQTT with TLS on the
/// default-style MQTTS listener, trusting our CA: the README's flow.
#[test]
fn paho_publishes_a_pycose_reading_over_tls_with_a_device_token() {
    let Some(interop) = std::env::var_os("PORTCULLIS_INTEROP_DIR") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "PORTCULLIS_INTEROP_DIR is not set in CI: run scripts/test.sh"
        );
        eprintln!("skipping: run scripts/test.sh (it installs paho-mqtt and pycose)");
        return;
    };
    let (node, tmp) = start_node(&[]);
    let device = Device::register(&node, "paho-meter");
    let root = node.cli(&["ca", "export"]);
    assert!(root.status.success());
    let cafile = tmp.path().join("root.pem");
    std::fs::write(&cafile, &root.stdout).unwrap();
    let key = URL_SAFE_NO_PAD.encode(device.key);
    let example = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/python_device/device.py");
    let out = std::process::Command::new("python3")
        .arg(example)
        .args([
            "send",
            "--device-id",
            &device.id,
            "--key-id",
            &device.key_id,
        ])
        .args([
            &format!("--key={key}"),
            "--audience",
            &node.base,
            "--payload",
            "{\"kwh\": 3}",
        ])
        .args(["--mqtt", node.mqtts_addr.as_deref().unwrap(), "--cafile"])
        .arg(&cafile)
        .args(["--state"])
        .arg(tmp.path().join("paho.counter.json"))
        .env("PYTHONPATH", std::path::Path::new(&interop).join("python"))
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && printed.contains("published"),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = stored(&node, &device.id);
    assert_eq!(got.len(), 1, "{got:?}");
}

/// Two nodes on one PostgreSQL database: a device connected over MQTT to node B is
/// disconnected within 500 ms of being suspended through node A, and a message it sent to B is
/// a replay when sent to A.
#[test]
fn suspension_on_one_node_disconnects_the_device_from_the_other() {
    let Some(nodes) = crate::postgres_nodes::two_nodes(
        "gwmqtt",
        &[("PORTCULLIS_GATEWAY__LISTEN_MQTT", "127.0.0.1:0")],
    ) else {
        return;
    };
    let (a, b) = (&nodes.a, &nodes.b);
    let issuer = "https://auth.cluster.example";
    let mut device = Device::register(a, "mqtt-pg-1");
    let token = device.token(issuer);
    let reading = device.reading(1.0);
    let id = device.id.clone();
    let connect = |node: &Node| {
        let addr = node.mqtt_addr.clone().expect("plain MQTT listener");
        let (client, code) = Client::connect(&addr, V5, Some(&id), Some(&token));
        assert_eq!(code, 0, "CONNACK");
        client
    };
    let mut on_b = connect(b);
    on_b.publish(&device.topic(), 1, 1, &reading);
    assert_eq!(on_b.puback(), (1, 0));
    let mut on_a = connect(a);
    on_a.publish(&device.topic(), 1, 1, &reading);
    assert_eq!(on_a.puback().1, 0x83, "the message B took is a replay on A");
    drop(on_a);

    let out = a.cli(&["device", "suspend", &device.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let suspended = Instant::now();
    assert_eq!(on_b.disconnect_reason(), 0x87);
    let took = suspended.elapsed();
    assert!(
        took <= Duration::from_millis(500),
        "disconnected from B after {took:?}"
    );
}
