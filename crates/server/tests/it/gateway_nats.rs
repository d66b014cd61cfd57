//! The NATS JetStream sink against a real `nats-server` (Debian package), started by the test
//! with JetStream on a free port and its own store directory, stopped by its process id:
//! accepted messages arrive with their verified identity in headers, one message is stored
//! once, and while NATS is down messages get retryable refusals and none is lost.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use portcullis_core::device::DeviceId;
use portcullis_gateway::cose::seal_mac0;
use portcullis_gateway::sink::nats::NatsSink;
use portcullis_gateway::sink::{Sink, TelemetryRecord};

use crate::support::gateway::{device_with_key, now};
use crate::support::{free_port, Node};

struct NatsServer {
    child: Option<Child>,
    port: u16,
}

impl NatsServer {
    fn start(dir: &Path, port: u16) -> NatsServer {
        let log = std::fs::File::create(dir.join(format!("nats-{port}.log"))).unwrap();
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.join("jetstream"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server (Debian package nats-server) must be installed");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        NatsServer {
            child: Some(child),
            port,
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn stream(url: &str) -> async_nats::jetstream::stream::Stream {
    let client = async_nats::connect(url).await.unwrap();
    async_nats::jetstream::new(client)
        .get_stream("TELEMETRY")
        .await
        .unwrap()
}

#[test]
fn messages_reach_jetstream_with_their_identity_and_survive_an_outage() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut nats = NatsServer::start(dir.path(), port);
    let url = nats.url();
    let node = Node::start_with_env(&[("PORTCULLIS_GATEWAY__SINK", &url)]);
    // A device id with dots: one subject token all the same.
    let (kid, key) = device_with_key(&node, "meter.n1", &[]);
    let id = DeviceId::parse("meter.n1").unwrap();
    let seal = |counter: u64| {
        seal_mac0(
            &id,
            &kid,
            &key,
            counter,
            now(),
            format!("r{counter}").as_bytes(),
        )
    };
    let send = |body: &[u8]| {
        node.request(
            "POST",
            "/gateway/v1/telemetry/power",
            Some("application/cose"),
            &[],
            body,
        )
    };
    let post = |counter: u64| send(&seal(counter));
    let first = post(1);
    assert_eq!(first.status, 202, "{}", first.text);
    let message_id = first.json["message_id"].as_str().unwrap().to_owned();
    assert_eq!(post(1).status, 409, "the same message again is a replay");

    let (count, stored) = rt.block_on(async {
        let mut s = stream(&url).await;
        let count = s.info().await.unwrap().state.messages;
        (count, s.get_raw_message(1).await.unwrap())
    });
    assert_eq!(count, 1);
    assert_eq!(stored.subject.as_str(), "telemetry.meter~n1.power");
    assert_eq!(stored.payload, Bytes::from("r1"));
    let header = |name: &str| {
        stored
            .headers
            .get(name)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(header("Nats-Msg-Id"), message_id);
    assert_eq!(header("Portcullis-Device"), "meter.n1");
    assert_eq!(header("Portcullis-Model"), "meter-v1");
    assert_eq!(header("Portcullis-Method"), "cose_mac0");
    assert_eq!(header("Portcullis-Key"), kid);
    assert_eq!(header("Portcullis-Counter"), "1");
    assert_eq!(header("Portcullis-Stream"), "power");
    assert!(!header("Portcullis-Received-At-Ms").is_empty());

    // NATS goes away: a retryable refusal, never an acknowledgement.
    nats.stop();
    // The device keeps the sealed message and retries the same bytes.
    let second = seal(2);
    let refused = send(&second);
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert!(refused.header("retry-after").is_some());
    // It comes back (same store directory): the very same message is accepted now — its
    // counter was given back when the sink refused it — and stored once.
    let nats = NatsServer::start(dir.path(), port);
    let deadline = Instant::now() + Duration::from_secs(20);
    let retried = loop {
        let answer = send(&second);
        if answer.status != 503 || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(retried.status, 202, "{}", retried.text);
    assert_eq!(post(3).status, 202);
    let count = rt.block_on(async {
        stream(&nats.url())
            .await
            .info()
            .await
            .unwrap()
            .state
            .messages
    });
    assert_eq!(count, 3);
}

/// JetStream's de-duplication on the message id: the same record published twice (a retry
/// after a lost acknowledgement, or the same message through two nodes) is stored once.
#[test]
fn one_message_published_twice_is_stored_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path(), free_port());
    rt.block_on(async {
        let sink = NatsSink::connect(&nats.url(), "TELEMETRY", "telemetry")
            .await
            .unwrap();
        let record = TelemetryRecord {
            message_id: "00112233445566778899aabbccddeeff".into(),
            device_id: "meter-d".into(),
            model: None,
            stream: "default".into(),
            method: "cose_mac0".into(),
            key_id: Some("k1".into()),
            counter: Some(7),
            sent_at: Some(now()),
            received_at_ms: now() * 1000,
            payload: Bytes::from_static(b"once"),
        };
        sink.put(record.clone()).await.unwrap();
        sink.put(record).await.unwrap();
        let count = stream(&nats.url())
            .await
            .info()
            .await
            .unwrap()
            .state
            .messages;
        assert_eq!(count, 1);
    });
}
