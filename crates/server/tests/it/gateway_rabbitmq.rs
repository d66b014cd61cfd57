//! The RabbitMQ broker hook (issue #13 item 5): a real RabbitMQ (Debian `rabbitmq-server`
//! with `rabbitmq_mqtt` and `rabbitmq_auth_backend_http`), started by the test as a node of its
//! own (own name, ports and directories) and stopped by name and process id, asks the node
//! whether Python paho-mqtt devices may connect and publish; and a table of hostile questions
//! asked over HTTP alone, none of which may be allowed or crash the node.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use crate::support::gateway::{device_with_key, example_device, python_path};
use crate::support::{form_encode, free_port, Node};

const PREFIX: &str = "/gateway/v1/broker/rabbitmq";
const SECRET: &str = "s3cr3t-hook-path-0123456789abcdef";

/// A node with the broker hook on, guarded by [`SECRET`] unless `secret` is false; `env` adds
/// to it.
fn start_node(tmp: &Path, secret: bool, env: &[(&str, &str)]) -> Node {
    let hook = if secret {
        let file = tmp.join("hook.secret");
        std::fs::write(&file, format!("{SECRET}\n")).unwrap();
        format!("{{ enabled = true, secret_file = \"{}\" }}", file.display())
    } else {
        "{ enabled = true }".to_owned()
    };
    let mut all = vec![("PORTCULLIS_GATEWAY__BROKER_HOOK", hook.as_str())];
    all.extend_from_slice(env);
    Node::start_in(&tmp.join("data"), &all)
}

/// A device token for `id` from the example device (PyJWT), HS256 with `key`.
fn device_token(node: &Node, python: &Path, id: &str, key_id: &str, key: &[u8; 32]) -> String {
    let out = Command::new("python3")
        .arg(example_device())
        .args(["token", "--device-id", id, "--key-id", key_id])
        .args([
            &format!("--key={}", URL_SAFE_NO_PAD.encode(key)),
            "--audience",
            &node.base,
        ])
        .env("PYTHONPATH", python)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A RabbitMQ node of the test's own, per `../shared/RECIPES.md`.
struct RabbitMq {
    child: Option<Child>,
    node: String,
    dir: tempfile::TempDir,
    mqtt_port: u16,
}

impl RabbitMq {
    /// Starts it with the HTTP auth back-end pointed at `hook` (`http://.../rabbitmq/SECRET`)
    /// and waits until its MQTT port listens.
    fn start(hook: &str) -> RabbitMq {
        let dir = tempfile::tempdir().unwrap();
        // The Debian script runs the broker as user `rabbitmq` (su when started as root).
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let (amqp, mqtt, dist) = (free_port(), free_port(), free_port());
        let d = dir.path();
        std::fs::write(
            d.join("enabled_plugins"),
            "[rabbitmq_mqtt,rabbitmq_auth_backend_http].\n",
        )
        .unwrap();
        std::fs::write(
            d.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = {amqp}\n\
                 mqtt.listeners.tcp.default = {mqtt}\n\
                 mqtt.allow_anonymous = false\n\
                 auth_backends.1 = http\n\
                 auth_http.http_method = post\n\
                 auth_http.user_path = {hook}/user\n\
                 auth_http.vhost_path = {hook}/vhost\n\
                 auth_http.resource_path = {hook}/resource\n\
                 auth_http.topic_path = {hook}/topic\n"
            ),
        )
        .unwrap();
        let node = format!("portcullis-it-{}-{amqp}@localhost", std::process::id());
        let out = std::fs::File::create(d.join("out")).unwrap();
        let child = Command::new("rabbitmq-server")
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_PORT", amqp.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("rabbitmq-server (Debian package rabbitmq-server) must be installed");
        let mut broker = RabbitMq {
            child: Some(child),
            node,
            dir,
            mqtt_port: mqtt,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", mqtt)).is_err() {
            let exited = broker
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if start.elapsed() > Duration::from_secs(60) || exited.is_some() {
                let out =
                    std::fs::read_to_string(broker.dir.path().join("out")).unwrap_or_default();
                panic!("RabbitMQ did not start ({exited:?}):\n{out}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        broker
    }

    /// Stops the node by name, then makes sure its Erlang VM is gone by the pid it wrote
    /// (`rabbitmq-server` is a script: the child is `su`/`sh`, the broker is `beam.smp`).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(mut ctl) = Command::new("rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            let start = Instant::now();
            while matches!(ctl.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = ctl.kill();
            let _ = ctl.wait();
        }
        let pid = std::fs::read_to_string(self.dir.path().join("pid")).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<u32>() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        self.stop();
    }
}

/// paho-mqtt as the device: connects as `user` / `password` with client id `user`, then
/// publishes each topic at QoS 1 in turn on that one connection. Prints what happened.
const PAHO_DEVICE: &str = r#"
import json, sys, threading, time
import paho.mqtt.client as mqtt

port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
topics = sys.argv[4:]
result = {"connack": None, "published": [], "disconnects": 0}
answered = threading.Event()

def on_connect(client, userdata, flags, reason, properties):
    if result["connack"] is None:
        result["connack"] = reason.value
    answered.set()

def on_disconnect(client, userdata, flags, reason, properties):
    result["disconnects"] += 1
    answered.set()

client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv311)
client.username_pw_set(user, password)
client.on_connect = on_connect
client.on_disconnect = on_disconnect
client.reconnect_delay_set(30, 30)   # no reconnection within the test's time
client.connect("127.0.0.1", port, keepalive=30)
client.loop_start()
answered.wait(20)
if result["connack"] == 0:
    for topic in topics:
        before = result["disconnects"]
        info = client.publish(topic, b'{"kwh": 1}', qos=1)
        deadline = time.time() + 5
        while not info.is_published() and result["disconnects"] == before and time.time() < deadline:
            time.sleep(0.02)
        result["published"].append({"topic": topic, "acked": info.is_published(),
                                     "closed": result["disconnects"] > before})
client.disconnect()
client.loop_stop()
print(json.dumps(result))
"#;

fn paho(
    python: &Path,
    script: &Path,
    port: u16,
    user: &str,
    password: &str,
    topics: &[&str],
) -> Value {
    let out = Command::new("python3")
        .arg(script)
        .args([&port.to_string(), user, password])
        .args(topics)
        .env("PYTHONPATH", python)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn rabbitmq_admits_devices_by_token_and_keeps_each_to_its_own_topics() {
    let Some(python) = python_path() else {
        return;
    };
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let node = start_node(tmp.path(), true, &[]);
    let (kid, key) = device_with_key(&node, "rmq-1", &[]);
    device_with_key(&node, "rmq-2", &[]);
    let (skid, skey) = device_with_key(&node, "rmq-susp", &[]);
    let good = device_token(&node, &python, "rmq-1", &kid, &key);
    let forged = device_token(&node, &python, "rmq-1", &kid, &[7; 32]);
    let unknown = device_token(&node, &python, "rmq-nobody", &kid, &key);
    let suspended = device_token(&node, &python, "rmq-susp", &skid, &skey);
    assert!(node
        .cli(&["device", "suspend", "rmq-susp"])
        .status
        .success());

    let broker = RabbitMq::start(&format!("{}{PREFIX}/{SECRET}", node.base));
    let script = tmp.path().join("paho_device.py");
    std::fs::write(&script, PAHO_DEVICE).unwrap();
    let port = broker.mqtt_port;
    eprintln!("RabbitMQ up after {:?}", started.elapsed());

    // Its own topics: PUBACK for each. Then another device's topic on the same connection:
    // RabbitMQ 3.10's MQTT plugin treats a topic-authorization refusal on PUBLISH as an
    // access-refused error and closes the connection (3.1.1 has no negative PUBACK), so the
    // message is neither acknowledged nor routed.
    let own = paho(
        &python,
        &script,
        port,
        "rmq-1",
        &good,
        &[
            "devices/rmq-1/telemetry",
            "devices/rmq-1/telemetry/power",
            "devices/rmq-2/telemetry",
        ],
    );
    assert_eq!(own["connack"], 0, "{own}");
    let published = own["published"].as_array().unwrap();
    assert_eq!(published.len(), 3, "{own}");
    assert_eq!(published[0]["acked"], true, "{own}");
    assert_eq!(published[1]["acked"], true, "{own}");
    assert_eq!(published[2]["acked"], false, "{own}");
    assert_eq!(published[2]["closed"], true, "{own}");

    // A topic that is not telemetry at all, first thing on a fresh connection.
    let other = paho(
        &python,
        &script,
        port,
        "rmq-1",
        &good,
        &["devices/rmq-1/commands"],
    );
    assert_eq!(other["connack"], 0, "{other}");
    assert_eq!(other["published"][0]["acked"], false, "{other}");

    // Refused logins: RabbitMQ answers every refused MQTT 3.1.1 login with CONNACK return code
    // 4 (bad user name or password), which paho 2 reports as the MQTT 5 reason 0x86.
    for (what, user, password) in [
        ("a forged token", "rmq-1", forged.as_str()),
        ("another device's token", "rmq-2", good.as_str()),
        ("an unknown device", "rmq-nobody", unknown.as_str()),
        ("a suspended device", "rmq-susp", suspended.as_str()),
        ("an empty password", "rmq-1", ""),
    ] {
        let refused = paho(&python, &script, port, user, password, &[]);
        let code = refused["connack"].as_u64();
        assert_eq!(code, Some(0x86), "{what} got CONNACK {refused}");
    }
    let metrics = node.get("/metrics").text;
    assert!(
        metrics.contains("transport=\"rabbitmq\",outcome=\"broker_topic_not_own\""),
        "the refused publish was the hook's refusal, counted under its transport:\n{metrics}"
    );
    drop(broker);
    eprintln!("whole test {:?}", started.elapsed());
}

/// `(status, body)` of a hook question, as a form POST or as a GET query.
fn ask(node: &Node, path: &str, fields: &[(&str, &str)], get: bool) -> (u16, String) {
    let query = fields
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let answer = if get {
        node.request("GET", &format!("{path}?{query}"), None, &[], b"")
    } else {
        node.request(
            "POST",
            path,
            Some("application/x-www-form-urlencoded"),
            &[],
            query.as_bytes(),
        )
    };
    (answer.status, answer.text)
}

/// The questions RabbitMQ would ask about device `hk-1`, and what must never be allowed.
const ALLOWED: [(&str, &str); 4] = [
    ("vhost", "username=hk-1&vhost=%2F&ip=127.0.0.1"),
    ("resource", "username=hk-1&vhost=%2F&resource=exchange&name=amq.topic&permission=write"),
    ("resource", "username=hk-1&vhost=%2F&resource=queue&name=mqtt-subscription-hk-1qos1&permission=configure"),
    ("topic", "username=hk-1&vhost=%2F&resource=topic&name=amq.topic&permission=write&routing_key=devices.hk-1.telemetry.power&variable_map.client_id=hk-1"),
];

/// Endpoint, form (`TOKEN` stands for a valid device token of `hk-1`), what it tries.
const HOSTILE: &[(&str, &str, &str)] = &[
    ("user", "", "no fields"),
    ("user", "password=TOKEN", "no username"),
    ("user", "username=hk-1", "no password while certificates are not trusted"),
    ("user", "username=hk-1&password=", "an empty password"),
    ("user", "username=hk-1&password=not-a-jwt", "a garbage token"),
    ("user", "username=hk.dotted&password=TOKEN", "another device's token"),
    ("user", "username=nobody&password=TOKEN", "an unknown user"),
    ("user", "username=..%2F..%2Fetc&password=TOKEN", "a user name that is no device id"),
    ("user", "username=hk-1&password=TOKEN&vhost=other", "another vhost"),
    ("user", "username=hk-1&username=hk-2&password=TOKEN", "a user name twice"),
    ("user", "username=hk-1&password=LONG", "a 70 kB password"),
    ("vhost", "", "no fields"),
    ("vhost", "username=hk-1", "no vhost"),
    ("vhost", "username=hk-1&vhost=prod", "another vhost"),
    ("vhost", "username=nobody&vhost=%2F", "an unknown device"),
    ("vhost", "username=hk.dotted&vhost=%2F", "a dotted device id"),
    ("resource", "", "no fields"),
    ("resource", "username=hk-1&vhost=%2F&resource=vhost&name=amq.topic&permission=write", "an unknown resource kind"),
    ("resource", "username=hk-1&vhost=%2F&resource=exchange&name=amq.topic&permission=all", "an unknown permission"),
    ("resource", "username=hk-1&vhost=%2F&resource=exchange&name=amq.topic&permission=configure", "configuring the exchange"),
    ("resource", "username=hk-1&vhost=%2F&resource=exchange&name=amq.fanout&permission=write", "another exchange"),
    ("resource", "username=hk-1&vhost=%2F&resource=queue&name=mqtt-subscription-hk-2qos1&permission=read", "another device's queue"),
    ("resource", "username=hk-1&vhost=%2F&resource=queue&name=telemetry&permission=read", "any queue"),
    ("resource", "username=hk-1&vhost=%2F&resource=topic&name=amq.topic&permission=write", "a topic asked as a resource"),
    ("resource", "username=hk-1&vhost=%2F&resource=exchange&permission=write", "no name"),
    ("resource", "username=hk-1&vhost=x&resource=exchange&name=amq.topic&permission=write", "another vhost"),
    ("resource", "username=hk.dotted&vhost=%2F&resource=exchange&name=amq.topic&permission=write", "a dotted device id"),
    ("topic", "", "no fields"),
    ("topic", "username=hk-1&vhost=%2F&resource=topic&name=amq.topic&permission=write", "no routing key"),
    ("topic", "username=hk-1&vhost=%2F&resource=topic&name=amq.topic&permission=write&routing_key=devices.hk-2.telemetry", "another device's key"),
    ("topic", "username=hk-1&vhost=%2F&resource=topic&name=amq.topic&permission=write&routing_key=devices.*.telemetry", "a wildcard"),
    ("topic", "username=hk-1&vhost=%2F&resource=topic&name=amq.topic&permission=write&routing_key=devices.hk-1.telemetry.a.b", "a stream with a dot"),
    ("topic", "username=hk-1&vhost=%2F&resource=topic&name=amq.topic&permission=write&routing_key=devices.hk-1.commands", "writing commands"),
    ("topic", "username=hk-1&vhost=%2F&resource=topic&name=amq.topic&permission=read&routing_key=devices.hk-1.telemetry", "reading telemetry"),
    ("topic", "username=hk-1&vhost=%2F&resource=topic&name=amq.topic&permission=configure&routing_key=devices.hk-1.telemetry", "configure"),
    ("topic", "username=hk-1&vhost=%2F&resource=topic&name=amq.direct&permission=write&routing_key=devices.hk-1.telemetry", "another exchange"),
    ("topic", "username=hk-1&vhost=%2F&resource=queue&name=amq.topic&permission=write&routing_key=devices.hk-1.telemetry", "not a topic"),
    ("topic", "username=hk.dotted&vhost=%2F&resource=topic&name=amq.topic&permission=write&routing_key=devices.hk.dotted.telemetry", "a dotted device id's own key"),
    ("topic", "username=hk-1&vhost=%2F&resource=topic&name=amq.topic&permission=write&routing_key=devices.hk-1.telemetry&routing_key=devices.hk-2.telemetry", "a routing key twice"),
    ("topic", "username=nobody&vhost=%2F&resource=topic&name=amq.topic&permission=write&routing_key=devices.nobody.telemetry", "an unknown device"),
];

/// `(status, body)` of a hook question: `form` as a POST body, or as a GET query.
fn ask_raw(node: &Node, path: &str, form: &str, get: bool) -> (u16, String) {
    let answer = if get {
        node.request("GET", &format!("{path}?{form}"), None, &[], b"")
    } else {
        let form_type = Some("application/x-www-form-urlencoded");
        node.request("POST", path, form_type, &[], form.as_bytes())
    };
    (answer.status, answer.text)
}

#[test]
fn hostile_broker_questions_are_denied_never_allowed_and_never_crash() {
    let python = python_path();
    let tmp = tempfile::tempdir().unwrap();
    let node = start_node(tmp.path(), true, &[]);
    let (kid, key) = device_with_key(&node, "hk-1", &[]);
    device_with_key(&node, "hk.dotted", &[]);
    let at = |endpoint: &str| format!("{PREFIX}/{SECRET}/{endpoint}");

    // The controls: what RabbitMQ asks for a device's own connection and publish is
    // allowed, by POST and by GET, so the table below cannot pass by denying everything.
    for (endpoint, form) in ALLOWED {
        for get in [false, true] {
            let answer = ask_raw(&node, &at(endpoint), form, get);
            assert_eq!(answer, (200, "allow".into()), "{endpoint} {form}");
        }
    }
    let token = python
        .as_deref()
        .map(|p| device_token(&node, p, "hk-1", &kid, &key));
    if let Some(token) = &token {
        let login = [("username", "hk-1"), ("password", token), ("vhost", "/")];
        assert_eq!(
            ask(&node, &at("user"), &login, false),
            (200, "allow".into())
        );
    }
    let token = token.unwrap_or_else(|| "e30.e30.e30".into());

    let long = "x".repeat(70_000);
    for (endpoint, form, what) in HOSTILE {
        let form = form.replace("TOKEN", &token).replace("LONG", &long);
        for get in [false, true] {
            let (status, body) = ask_raw(&node, &at(endpoint), &form, get);
            assert!(
                status == 200 && body == "deny" || (400..500).contains(&status),
                "{endpoint}: {what} (get: {get}) was answered {status} {body:?}"
            );
        }
    }
    // The guard: a wrong secret, none, one in another segment, an empty one: 404, as if
    // there were no hook, even for a question that is otherwise allowed.
    let (_, own_publish) = ALLOWED[3];
    for path in [
        format!("{PREFIX}/wrong-{SECRET}/topic"),
        format!("{PREFIX}/{}/topic", &SECRET[1..]),
        format!("{PREFIX}/topic"),
        format!("{PREFIX}/topic/{SECRET}"),
        format!("{PREFIX}//topic"),
    ] {
        for get in [false, true] {
            assert_eq!(ask_raw(&node, &path, own_publish, get).0, 404, "{path}");
        }
    }
    // A POST that is not a form at all.
    let answer = node.request("POST", &at("user"), Some("application/json"), &[], b"{}");
    assert!((400..500).contains(&answer.status), "{}", answer.status);
    // Nothing leaked into the log: no token, no secret.
    let log = node.log();
    assert!(!log.contains(&token), "a token was logged");
    assert!(!log.contains(SECRET), "the hook secret was logged");
    // Refusals are counted under the hook's transport like the gateway's own.
    let metrics = node.get("/metrics").text;
    for outcome in ["broker_hook_secret", "broker_topic_not_own", "bad_token"] {
        let label = format!("transport=\"rabbitmq\",outcome=\"{outcome}\"");
        assert!(metrics.contains(&label), "{label} in\n{metrics}");
    }
}

/// With no secret the hook answers loopback callers only: a request a trusted proxy
/// forwards from elsewhere is not one, and gets 404 as if there were no hook.
#[test]
fn without_a_secret_the_broker_hook_answers_loopback_only() {
    let tmp = tempfile::tempdir().unwrap();
    let node = start_node(
        tmp.path(),
        false,
        &[("PORTCULLIS_SERVER__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]")],
    );
    device_with_key(&node, "lo-1", &[]);
    let body = b"username=lo-1&vhost=%2F&ip=127.0.0.1";
    let path = format!("{PREFIX}/vhost");
    let form = Some("application/x-www-form-urlencoded");
    let here = node.request("POST", &path, form, &[], body);
    assert_eq!((here.status, here.text.as_str()), (200, "allow"));
    let relayed = node.request(
        "POST",
        &path,
        form,
        &[("X-Forwarded-For", "203.0.113.9")],
        body,
    );
    assert_eq!(relayed.status, 404, "{}", relayed.text);
    // And the secret form of the path does not exist then.
    let secret_path = format!("{PREFIX}/{SECRET}/vhost");
    assert_eq!(
        node.request("POST", &secret_path, form, &[], body).status,
        404
    );
}

/// `trust_broker_certificates = true`: a user name with no password field (RabbitMQ's
/// `ssl_cert_login`) is admitted only for an active device with a current, unrevoked
/// certificate; an empty password is never a certificate login.
#[test]
fn certificate_logins_need_a_current_certificate_when_trusted() {
    use crate::pki::{provision_ca, register, Device};
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("hook.secret");
    std::fs::write(&file, SECRET).unwrap();
    let hook = format!(
        "{{ enabled = true, trust_broker_certificates = true, secret_file = \"{}\" }}",
        file.display()
    );
    let node = Node::start_in(
        &tmp.path().join("data"),
        &[("PORTCULLIS_GATEWAY__BROKER_HOOK", &hook)],
    );
    let dev = Device::new(tmp.path(), "cert-1");
    provision_ca(&node, &dev);
    let secret = register(&node, "cert-1");
    let csr = dev.csr("dev", "ec", "/CN=cert-1");
    let (status, out) = dev.est(&node, "simpleenroll", &csr, Some(("cert-1", &secret)), None);
    assert_eq!(status, 200);
    let serial = dev.serial(&dev.save_cert(&out, "dev"));
    register(&node, "cert-none");

    let user = format!("{PREFIX}/{SECRET}/user");
    let login = |fields: &[(&str, &str)]| ask(&node, &user, fields, false);
    assert_eq!(
        login(&[("username", "cert-1"), ("vhost", "/")]),
        (200, "allow".into())
    );
    for refused in [
        vec![("username", "cert-1"), ("password", "")],
        vec![("username", "cert-none")],
        vec![("username", "cert-nobody")],
    ] {
        assert_eq!(login(&refused), (200, "deny".into()), "{refused:?}");
    }
    node.cli_json(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    assert_eq!(login(&[("username", "cert-1")]), (200, "deny".into()));
}
