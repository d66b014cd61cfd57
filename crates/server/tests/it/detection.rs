//! Real-time attack detection (issue #14, item 5) against the real binary: each rule's
//! scenario raises one alert — an audit record, `portcullis_alerts_total{rule}`, a webhook
//! signed with HMAC (checked with Python's `hmac`), the rule's automatic action — within a
//! second of the event, once per incident across nodes; a benign load raises none.

use crate::postgres_nodes::two_nodes;
use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{basic_header, Node};

/// One request the receiver got: its headers (lower-case names), body and arrival.
type Delivery = (Vec<(String, String)>, Vec<u8>, Instant);

/// A webhook receiver: records each request's headers and body, answers 200.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/alerts", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = Vec::new();
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                loop {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    let trimmed = line.trim_end();
                    if trimmed.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = trimmed.split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                    }
                }
                let length: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .map_or(0, |(_, v)| v.parse().unwrap());
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                sink.lock().unwrap().push((headers, body, Instant::now()));
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Receiver { url, got }
    }

    fn wait_for(&self, count: usize, within: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= count || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

const SECRET: &str = "webhook-secret-of-at-least-32-bytes-0123456789";

/// A config file with `rules` (TOML) and, if given, the webhook.
fn config(dir: &Path, rules: &str, webhook: Option<&str>) -> PathBuf {
    let secret = dir.join("webhook.secret");
    std::fs::write(&secret, SECRET).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut text = rules.to_owned();
    if let Some(url) = webhook {
        text.push_str(&format!(
            "\n[alerts.webhook]\nurl = \"{url}\"\nsecret_file = \"{}\"\n",
            secret.display()
        ));
    }
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The signature header checked with Python's hmac module (an implementation we did not write).
fn python_verifies(header: &str, body: &[u8]) -> bool {
    let script = "import hmac,hashlib,sys\n\
        parts=dict(p.split('=',1) for p in sys.argv[1].split(','))\n\
        body=sys.stdin.buffer.read()\n\
        mac=hmac.new(sys.argv[2].encode(), parts['t'].encode()+b'.'+body, hashlib.sha256).hexdigest()\n\
        sys.exit(0 if hmac.compare_digest(mac, parts['v1']) else 1)\n";
    let mut child = Command::new("python3")
        .args(["-c", script, header, SECRET])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    child.wait().unwrap().success()
}

fn wrong_secret(node: &Node, client: &str, forwarded: Option<&str>) -> u16 {
    let auth = basic_header(client, "not-the-secret");
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(f) = forwarded {
        headers.push(("X-Forwarded-For", f));
    }
    node.request(
        "POST",
        "/oauth2/token",
        Some("application/x-www-form-urlencoded"),
        &headers,
        b"grant_type=client_credentials",
    )
    .status
}

/// A node whose configuration file holds `rules` (and no webhook).
fn node_with_rules(dir: &Path, rules: &str) -> Node {
    let config = config(dir, rules, None);
    Node::start_with_args(
        &dir.join("data"),
        &["--config", config.to_str().unwrap()],
        &[],
    )
}

/// The first alert of `rule` on `node`, waiting up to 5 s for it.
fn first_alert(node: &Node, rule: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let listed = alerts(node);
        if let Some(alert) = listed.iter().find(|a| a["rule"] == rule) {
            return alert.clone();
        }
        assert!(Instant::now() < deadline, "no {rule} alert: {listed:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn alerts(node: &Node) -> Vec<Value> {
    node.cli_json(&["alerts", "list", "--limit", "100"])["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_burst_of_failed_authentication_raises_one_signed_alert_within_a_second_and_disables_the_client(
) {
    let tmp = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let config = config(
        tmp.path(),
        // The address rule (15 a minute from loopback) would raise its own alert later on.
        "[detection.rules.auth_failures_per_client]\nthreshold = 5\naction = \"disable\"\n\
         [detection.rules.auth_failures_per_address]\nenabled = false\n",
        Some(&receiver.url),
    );
    let node = Node::start_with_args(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
        &[],
    );
    let (id, secret) = node.create_client(&["--id", "stuffed-client"]);
    // Four failures: under the threshold, nothing.
    for _ in 0..4 {
        assert_eq!(wrong_secret(&node, &id, None), 401);
    }
    std::thread::sleep(Duration::from_millis(600));
    assert!(receiver.got.lock().unwrap().is_empty());
    assert!(alerts(&node).is_empty());
    // The fifth crosses it: the webhook arrives within a second.
    let fifth = Instant::now();
    assert_eq!(wrong_secret(&node, &id, None), 401);
    let got = receiver.wait_for(1, Duration::from_secs(3));
    assert_eq!(got.len(), 1, "one webhook");
    let (headers, body, at) = &got[0];
    let latency = at.duration_since(fifth);
    assert!(
        latency <= Duration::from_secs(1),
        "event to alert took {latency:?}"
    );
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let signature = header("portcullis-signature").expect("signed");
    assert!(python_verifies(&signature, body), "the HMAC verifies");
    assert!(!python_verifies(&signature, b"{\"forged\":true}"));
    let alert: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(alert["rule"], "auth_failures_per_client");
    assert_eq!(alert["key"], "client stuffed-client");
    assert_eq!(
        header("portcullis-alert-id").as_deref(),
        alert["id"].as_str()
    );
    assert!(alert["action_taken"]
        .as_str()
        .unwrap()
        .contains("disabled client stuffed-client"));

    // More failures in the same incident: no second alert.
    for _ in 0..10 {
        wrong_secret(&node, &id, None);
    }
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(receiver.got.lock().unwrap().len(), 1);
    let listed = alerts(&node);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["state"], "open");
    assert_eq!(listed[0]["detail"]["key"], "client stuffed-client");
    assert_eq!(
        listed[0]["detail"]["action_taken"], alert["action_taken"],
        "the stored alert says what was done, as the webhook does"
    );
    // The client was disabled: its right secret no longer gets a token.
    assert_eq!(node.token(&id, &secret, "").status, 401);
    assert_eq!(node.cli_json(&["client", "show", &id])["enabled"], false);

    let alert_id = listed[0]["id"].as_str().unwrap().to_owned();
    let acked = node.cli_json(&["alerts", "ack", &alert_id]);
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["acked_by"], "admin:portcullis-admin");
    // Again: the first acknowledgement stays, and the trail holds it once.
    let again = node.cli_json(&["alerts", "ack", &alert_id]);
    assert_eq!(again["acked_at"], acked["acked_at"]);
    let trail = node
        .cli_json(&["audit", "list", "--limit", "300"])
        .to_string();
    assert!(trail.contains("\"alert.raised\"") && trail.contains("\"alert.acknowledged\""));
    assert_eq!(
        trail.matches("\"alert.acknowledged\"").count(),
        1,
        "{trail}"
    );
    let metrics = node.get("/metrics").text;
    assert!(
        metrics.contains("portcullis_alerts_total{rule=\"auth_failures_per_client\"} 1"),
        "{metrics}"
    );
}

#[test]
fn failures_per_address_and_admin_actions_off_hours_and_networks_raise_their_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    // Admin actions allowed only in an hour that is not now.
    let hour = (support::gateway::now() / 3600 % 24) as u8;
    // [start, start + 1): one hour that is not this one (end may be 24).
    let start = (hour + 2) % 24;
    let end = start + 1;
    let rules = format!(
        "[detection.rules.auth_failures_per_address]\nthreshold = 6\naction = {{ block = 60 }}\n\
         [detection.admin]\nhours = [{start}, {end}]\nnetworks = [\"10.0.0.0/8\"]\n"
    );
    let config = config(tmp.path(), &rules, None);
    let node = Node::start_with_args(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
        &[("PORTCULLIS_SERVER__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]")],
    );
    // Six different client ids from one address (a spray): per client, nothing; per address, one.
    for i in 0..6 {
        wrong_secret(&node, &format!("sprayed-{i}"), Some("203.0.113.66"));
    }
    // The same from another address, five times: under the threshold.
    for i in 0..5 {
        wrong_secret(&node, &format!("other-{i}"), Some("203.0.113.77"));
    }
    node.create_client(&["--id", "made-off-hours"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut rules_seen: Vec<String>;
    loop {
        let listed = alerts(&node);
        rules_seen = listed
            .iter()
            .map(|a| a["rule"].as_str().unwrap().to_owned())
            .collect();
        if rules_seen.contains(&"auth_failures_per_address".to_owned())
            && rules_seen.contains(&"admin_off_hours".to_owned())
            && rules_seen.contains(&"admin_off_network".to_owned())
        {
            let by_address: Vec<&Value> = listed
                .iter()
                .filter(|a| a["rule"] == "auth_failures_per_address")
                .collect();
            assert_eq!(by_address.len(), 1, "{listed:?}");
            assert_eq!(by_address[0]["detail"]["key"], "address 203.0.113.66");
            break;
        }
        assert!(Instant::now() < deadline, "alerts so far: {rules_seen:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !rules_seen.contains(&"auth_failures_per_client".to_owned()),
        "{rules_seen:?}"
    );
    // The sprayer's address is blocked on every route; the other address is not.
    let (id, secret) = node.create_client(&["--id", "innocent"]);
    let auth = basic_header(&id, &secret);
    let from = |address: &str| {
        node.request(
            "POST",
            "/oauth2/token",
            Some("application/x-www-form-urlencoded"),
            &[
                ("Authorization", auth.as_str()),
                ("X-Forwarded-For", address),
            ],
            b"grant_type=client_credentials",
        )
    };
    let blocked = from("203.0.113.66");
    assert_eq!(blocked.status, 403, "{}", blocked.text);
    assert_eq!(blocked.json["error"], "access_denied");
    assert_eq!(from("203.0.113.77").status, 200);
    // Elsewhere the refusal has that surface's shape: an RFC 9457 problem.
    let gateway = node.request(
        "POST",
        "/gateway/v1/telemetry",
        Some("application/cose"),
        &[("X-Forwarded-For", "203.0.113.66")],
        b"x",
    );
    assert_eq!(gateway.status, 403, "{}", gateway.text);
    assert_eq!(
        gateway.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(gateway.json["type"], "urn:portcullis:problem:access-denied");
    // Admin records say where the administrator was.
    let trail = node.cli_json(&["audit", "list", "--limit", "200"]);
    let created = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "client.created" && r["subject"] == "made-off-hours")
        .expect("client.created");
    assert_eq!(created["detail"]["source"], "127.0.0.1", "{created}");
    alerts_cli_pages_and_shows_times(&node);
    // Neither the block list nor the alert shows the address in the store.
    assert!(node.stop().success());
    for entry in std::fs::read_dir(tmp.path().join("data")).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("portcullis.db")
        {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains("203.0.113.66"),
                "{path:?}"
            );
        }
    }
}

/// Message replays to both nodes of a cluster: one alert, and the device suspended on both.
#[test]
fn replayed_device_messages_raise_one_alert_across_nodes_and_suspend_the_device_everywhere() {
    use portcullis_core::device::DeviceId;
    use portcullis_gateway::cose::seal_mac0;

    let rules = [(
        "PORTCULLIS_DETECTION__RULES",
        "{ message_replay = { threshold = 4, action = \"suspend\" } }",
    )];
    let Some(nodes) = two_nodes("detection", &rules) else {
        return;
    };
    let (a, b) = (&nodes.a, &nodes.b);
    let (kid, key) = support::gateway::device_with_key(a, "meter-cloned", &[]);
    let id = DeviceId::parse("meter-cloned").unwrap();
    let post = support::gateway::post_cose;
    let message = seal_mac0(&id, &kid, &key, 1, support::gateway::now(), b"reading");
    assert_eq!(post(a, &message), 202);
    for node in [a, b, a, b, a, b] {
        assert_eq!(post(node, &message), 409);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let listed: Vec<Value> = alerts(a)
            .into_iter()
            .filter(|x| x["rule"] == "message_replay")
            .collect();
        if !listed.is_empty() {
            assert_eq!(listed.len(), 1, "one alert for the cluster: {listed:?}");
            assert_eq!(listed[0]["detail"]["key"], "device meter-cloned");
            break;
        }
        assert!(Instant::now() < deadline, "no message_replay alert");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Suspended: a fresh, genuine message is refused by both nodes within 500 ms.
    std::thread::sleep(Duration::from_millis(500));
    for (counter, node) in [(2, a), (3, b)] {
        let fresh = seal_mac0(&id, &kid, &key, counter, support::gateway::now(), b"after");
        let status = post(node, &fresh);
        assert!(
            status == 401 || status == 403,
            "suspended device accepted: {status}"
        );
    }
    assert_eq!(
        a.cli_json(&["device", "show", "meter-cloned"])["state"],
        "suspended"
    );
}

/// A minute of ordinary traffic from many clients — tokens, now and then a mistyped secret —
/// raises nothing.
#[test]
fn a_benign_load_of_many_clients_raises_no_alert() {
    let secs: u64 = std::env::var("PORTCULLIS_BENIGN_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    // Ordinary clients behind one address at full speed: the rate limits are the operator's
    // to size, not what this test is about.
    let node = Node::start_with_env(&[
        ("PORTCULLIS_RATE_LIMIT__PER_CLIENT", "0"),
        ("PORTCULLIS_RATE_LIMIT__PER_ADDRESS", "0"),
    ]);
    let clients: Vec<(String, String)> = (0..20)
        .map(|i| node.create_client(&["--id", &format!("benign-{i}")]))
        .collect();
    let until = Instant::now() + Duration::from_secs(secs);
    let (mut round, mut mistakes) = (0u64, 0usize);
    let mut last_mistake = Instant::now();
    while Instant::now() < until {
        for (id, secret) in &clients {
            // Now and then (every 5 s) a client mistypes its secret once, each in turn.
            if last_mistake.elapsed() >= Duration::from_secs(5) {
                let (mistyped, _) = &clients[mistakes % clients.len()];
                assert_eq!(wrong_secret(&node, mistyped, None), 401);
                mistakes += 1;
                last_mistake = Instant::now();
            }
            assert_eq!(node.token(id, secret, "").status, 200);
        }
        round += 1;
    }
    std::thread::sleep(Duration::from_millis(600));
    assert!(alerts(&node).is_empty(), "{:?}", alerts(&node));
    assert!(round > 10, "the load ran ({round} rounds)");
}

/// Guessed enrollment secrets for one device (curl over EST, as an attacker would) and a
/// disabled client that keeps trying: each rule raises its alert, naming the device, the
/// guessing address or the client.
#[test]
fn guessed_enrollment_secrets_and_a_disabled_client_still_trying_raise_their_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let node = node_with_rules(
        tmp.path(),
        "[detection.rules.enroll_failures_per_device]\nthreshold = 3\n\
         [detection.rules.enroll_failures_per_address]\nthreshold = 3\n\
         [detection.rules.disabled_client_use]\nthreshold = 3\n",
    );
    crate::pki::register(&node, "meter-guessed");
    let device = crate::pki::Device::new(&tmp.path().join("device"), "meter-guessed");
    crate::pki::provision_ca(&node, &device);
    let csr = device.csr("guess", "ec", "/CN=meter-guessed");
    for guess in ["000000", "123456", "password"] {
        let (status, _) = device.est(
            &node,
            "simpleenroll",
            &csr,
            Some(("meter-guessed", guess)),
            None,
        );
        assert_eq!(status, 401);
    }
    let (id, secret) = node.create_client(&["--id", "retired-client"]);
    node.cli_json(&["client", "update", &id, "--disable"]);
    for _ in 0..3 {
        assert_eq!(node.token(&id, &secret, "").status, 401);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let listed = alerts(&node);
        let key_of = |rule: &str| {
            listed
                .iter()
                .find(|a| a["rule"] == rule)
                .map(|a| a["detail"]["key"].as_str().unwrap_or("").to_owned())
        };
        if let (Some(device_key), Some(address_key), Some(client_key)) = (
            key_of("enroll_failures_per_device"),
            key_of("enroll_failures_per_address"),
            key_of("disabled_client_use"),
        ) {
            assert_eq!(device_key, "device meter-guessed");
            assert_eq!(address_key, "address 127.0.0.1", "the guesser's address");
            assert_eq!(client_key, "client retired-client");
            break;
        }
        assert!(Instant::now() < deadline, "alerts so far: {listed:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A client that suddenly asks for many times its usual tokens: once its baseline is learnt
/// (here: 1-second intervals, 3 of them), the burst raises `token_rate_anomaly`.
#[test]
fn a_client_far_above_its_own_token_rate_raises_an_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let node = node_with_rules(
        tmp.path(),
        "[detection.rules.token_rate_anomaly]\nthreshold = 20\nwindow_secs = 1\n\
         [detection.token_rate]\nfactor = 4.0\nmin_samples = 3\nalpha = 0.5\n",
    );
    let (id, secret) = node.create_client(&["--id", "steady-client"]);
    // Its habit: two tokens a second, for five seconds. Nothing fires.
    for _ in 0..10 {
        assert_eq!(node.token(&id, &secret, "").status, 200);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(alerts(&node)
        .iter()
        .all(|a| a["rule"] != "token_rate_anomaly"));
    // Then sixty in a second.
    for _ in 0..60 {
        assert_eq!(node.token(&id, &secret, "").status, 200);
    }
    let alert = first_alert(&node, "token_rate_anomaly");
    assert_eq!(alert["detail"]["key"], "client steady-client");
    assert!(alert["detail"]["total"].as_u64().unwrap() >= 20, "{alert}");
}

/// A signed client assertion replayed (its `jti` used again): `assertion_replay` names the
/// client it claims to be.
#[test]
fn a_replayed_client_assertion_raises_an_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let node = node_with_rules(
        tmp.path(),
        "[detection.rules.assertion_replay]\nthreshold = 2\n",
    );
    let client = crate::hostile_inputs::KeyClient::register(&node);
    let assertion = client.sign(&client.claims(&node));
    assert_eq!(client.request(&node, &assertion).status, 200);
    for _ in 0..2 {
        assert_eq!(client.request(&node, &assertion).status, 401, "replayed");
    }
    let alert = first_alert(&node, "assertion_replay");
    assert_eq!(alert["detail"]["key"], format!("client {}", client.id));
}

/// A suspended device that keeps presenting its device token: `inactive_device_use` names it.
#[test]
fn a_suspended_device_still_trying_raises_an_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let node = node_with_rules(
        tmp.path(),
        "[detection.rules.inactive_device_use]\nthreshold = 3\n",
    );
    let device = support::gateway::KeyedDevice::register(&node, "meter-suspended", "meter-v1");
    node.cli_json(&["device", "suspend", "meter-suspended"]);
    let token = device.token(&node.base);
    for _ in 0..3 {
        let status = node
            .request(
                "POST",
                "/gateway/v1/telemetry",
                Some("application/json"),
                &[("Authorization", &format!("Bearer {token}"))],
                b"{\"t\":21}",
            )
            .status;
        assert!(status == 401 || status == 403, "{status}");
    }
    let alert = first_alert(&node, "inactive_device_use");
    assert_eq!(alert["detail"]["key"], "device meter-suspended");

    // A suspended device sending signed messages over HTTP, with no other credential: the
    // message names it once it verified; a forgery in its name is refused as unauthenticated
    // and counts for nobody.
    let mut sender = support::gateway::KeyedDevice::register(&node, "meter-cose", "meter-v1");
    node.cli_json(&["device", "suspend", "meter-cose"]);
    let post = |body: &[u8]| support::gateway::post_cose(&node, body);
    let mut forger = support::gateway::KeyedDevice {
        id: sender.id.clone(),
        key_id: sender.key_id.clone(),
        key: [7; 32],
        counter: 100,
    };
    for _ in 0..3 {
        assert_eq!(post(&forger.seal(b"{\"t\":1}")), 401);
    }
    for _ in 0..3 {
        assert_eq!(post(&sender.seal(b"{\"t\":21}")), 403);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !alerts(&node)
        .iter()
        .any(|a| a["rule"] == "inactive_device_use" && a["detail"]["key"] == "device meter-cose")
    {
        assert!(Instant::now() < deadline, "no alert for meter-cose");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A replayed DPoP proof and a replayed outside token are replays like a replayed client
/// assertion: the same rule counts them for the client and raises one alert.
#[test]
fn replayed_dpop_proofs_raise_the_replay_alert() {
    use portcullis_keys::Algorithm;
    use support::dpop::DpopKey;

    let tmp = tempfile::tempdir().unwrap();
    let node = node_with_rules(
        tmp.path(),
        "[detection.rules.assertion_replay]\nthreshold = 2\n",
    );
    let (id, secret) = node.create_client(&[]);
    let key = DpopKey::new(Algorithm::ES256);
    let proof = key.proof("POST", &format!("{}/oauth2/token", node.base), None, None);
    let request = || {
        node.request(
            "POST",
            "/oauth2/token",
            Some("application/x-www-form-urlencoded"),
            &[
                ("Authorization", &support::basic_header(&id, &secret)),
                ("DPoP", &proof),
            ],
            b"grant_type=client_credentials",
        )
    };
    assert_eq!(request().status, 200);
    for _ in 0..2 {
        let replay = request();
        assert_eq!(replay.error(), "invalid_dpop_proof", "{}", replay.text);
    }
    let alert = first_alert(&node, "assertion_replay");
    assert_eq!(alert["detail"]["key"], format!("client {id}"));
}

/// Whether `mosquitto_pub` is here; in CI its absence is a failure.
fn mosquitto_pub_installed() -> bool {
    let installed = Command::new("mosquitto_pub").arg("--help").output().is_ok();
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "mosquitto_pub is missing in CI"
        );
        eprintln!("skipping: mosquitto_pub is not installed (run scripts/test.sh)");
    }
    installed
}

/// A node with `rules` and a plain MQTT listener.
fn mqtt_node_with_rules(dir: &Path, rules: &str) -> Node {
    let config = config(dir, rules, None);
    Node::start_with_args(
        &dir.join("data"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--listen-mqtt",
            "127.0.0.1:0",
        ],
        &[],
    )
}

/// `mosquitto_pub` as `device` (MQTT 5, QoS 1, a fresh device token) from the loopback
/// address `source` (`-A` binds the socket: 127.0.0.x are distinct places), to its topic.
fn mosquitto_pub(node: &Node, device: &support::gateway::KeyedDevice, source: &str) -> Command {
    let (host, port) = node.mqtt_addr.as_deref().unwrap().rsplit_once(':').unwrap();
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args([
        "-A", source, "-h", host, "-p", port, "-V", "mqttv5", "-q", "1",
    ])
    .args(["-u", &device.id, "-P", &device.token(&node.base)])
    .args(["-t", &format!("devices/{}/telemetry", device.id)]);
    cmd
}

/// A `mosquitto_pub -l` that keeps its connection open until killed.
fn held_connection(mut cmd: Command) -> std::process::Child {
    use std::process::Stdio;
    cmd.arg("-l")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A cloned device: the same device id connected over MQTT from two places at once
/// (`mosquitto_pub -A` binds its socket to 127.0.0.2 and 127.0.0.3, two sources on loopback).
/// The take-overs from two distinct sources raise `cloned_device`, naming the device; one
/// source reconnecting does not (the core's tests cover that), so the rule's threshold is the
/// number of places.
#[test]
fn one_device_connected_from_two_places_raises_the_cloned_device_alert() {
    if !mosquitto_pub_installed() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let node = mqtt_node_with_rules(
        tmp.path(),
        "[detection.rules.cloned_device]\nthreshold = 2\n",
    );
    let device = support::gateway::KeyedDevice::register(&node, "valve-cloned", "valve");
    let mut held = Vec::new();
    for source in ["127.0.0.2", "127.0.0.3", "127.0.0.2"] {
        held.push(held_connection(mosquitto_pub(&node, &device, source)));
        std::thread::sleep(Duration::from_millis(400));
    }
    let alert = first_alert(&node, "cloned_device");
    assert_eq!(alert["detail"]["key"], "device valve-cloned", "{alert}");
    for mut child in held {
        let _ = child.kill();
        let _ = child.wait();
    }
    let takeovers = node.cli_json(&["audit", "list", "--limit", "50"])["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["action"] == "gateway.takeover")
        .count();
    assert!(takeovers >= 2, "{takeovers} take-overs audited");
}

/// The `block` action reaches MQTT too: once failures from 127.0.0.5 (curl `--interface`)
/// block that address, the device connected from it is disconnected, a new connection from it
/// is closed at once, and the same device from 127.0.0.6 still gets in.
#[test]
fn a_blocked_address_loses_its_mqtt_connections_and_cannot_open_new_ones() {
    if !mosquitto_pub_installed() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let node = mqtt_node_with_rules(
        tmp.path(),
        "[detection.rules.auth_failures_per_address]\nthreshold = 3\naction = { block = 60 }\n",
    );
    let mut device = support::gateway::KeyedDevice::register(&node, "valve-blocked", "valve");
    let reading = tmp.path().join("reading.cose");
    std::fs::write(&reading, device.seal(b"21.5")).unwrap();
    let connections = || -> f64 {
        node.get("/metrics")
            .text
            .lines()
            .find(|l| l.starts_with("portcullis_gateway_connections{transport=\"mqtt\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let wait_for = |want: f64| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while connections() != want {
            assert!(
                Instant::now() < deadline,
                "connections: {} (want {want})",
                connections()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let mut held = held_connection(mosquitto_pub(&node, &device, "127.0.0.5"));
    wait_for(1.0);

    for i in 0..3 {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--interface",
                "127.0.0.5",
            ])
            .args([
                "-u",
                &format!("sprayed-{i}:wrong"),
                "-d",
                "grant_type=client_credentials",
            ])
            .arg(format!("{}/oauth2/token", node.base))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
    }
    let alert = first_alert(&node, "auth_failures_per_address");
    assert_eq!(alert["detail"]["key"], "address 127.0.0.5", "{alert}");

    // The open connection is ended (and its reconnects refused), within the detection second.
    wait_for(0.0);
    let refused = mosquitto_pub(&node, &device, "127.0.0.5")
        .arg("-f")
        .arg(&reading)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "a blocked address connected");
    // The same device from another address is admitted and its reading acknowledged.
    let elsewhere = mosquitto_pub(&node, &device, "127.0.0.6")
        .arg("-f")
        .arg(&reading)
        .output()
        .unwrap();
    assert!(
        elsewhere.status.success(),
        "127.0.0.6 should get in: {}",
        String::from_utf8_lossy(&elsewhere.stderr)
    );
    let _ = held.kill();
    let _ = held.wait();
    let metrics = node.get("/metrics").text;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("portcullis_blocked_requests_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

/// A webhook secret readable by all users stops a first start before anything is created or
/// bound — with detection on or off (off, the webhook would send nothing, but the mistake is
/// still named) — and the message names the setting once.
#[test]
fn a_bad_webhook_secret_stops_the_start_before_anything_is_created() {
    use std::os::unix::fs::PermissionsExt;
    for rules in ["", "[detection]\nenabled = false\n"] {
        let tmp = tempfile::tempdir().unwrap();
        let path = config(tmp.path(), rules, Some("http://127.0.0.1:9/hook"));
        let secret = tmp.path().join("webhook.secret");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let data = tmp.path().join("data");
        let out = support::serve_to_exit_with_args(
            &data,
            &["--listen-tls", "off", "--config", path.to_str().unwrap()],
            &[],
        );
        assert_eq!(out.status.code(), Some(1), "{rules:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("alerts.webhook.secret_file")
                && stderr.contains("accessible to all users")
                && !stderr.contains("alerts.webhook: alerts.webhook"),
            "{stderr}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
        let left: Vec<_> = std::fs::read_dir(&data)
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "created before the check: {left:?}");
    }
}

/// The `alerts` CLI on a node with several alerts: pages with `--before` (what it prints as
/// `more:`), times as RFC 3339, an id that cannot be one refused as a usage error.
fn alerts_cli_pages_and_shows_times(node: &Node) {
    let all: Vec<String> = alerts(node)
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(all.len() >= 2, "{all:?}");
    let first = node.cli(&["alerts", "list", "--limit", "1"]);
    assert!(first.status.success());
    let stderr = String::from_utf8_lossy(&first.stderr);
    let before = stderr
        .lines()
        .find_map(|l| l.strip_prefix("more: --before "))
        .unwrap_or_else(|| panic!("no next page named: {stderr}"));
    let second = node.cli(&["alerts", "list", "--limit", "1", "--before", before]);
    let second = String::from_utf8_lossy(&second.stdout);
    assert!(
        second.contains(&all[1]) && !second.contains(&all[0]),
        "{second}"
    );

    let shown = node.cli(&["alerts", "show", &all[0]]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    let raised = shown
        .lines()
        .find(|l| l.starts_with("raised_at"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(
        raised.trim_end().ends_with('Z') && raised.contains('T'),
        "{raised}"
    );
    for bad in ["..", "", "nosuch"] {
        assert_eq!(
            node.cli(&["alerts", "show", bad]).status.code(),
            Some(2),
            "{bad:?}"
        );
    }
}
