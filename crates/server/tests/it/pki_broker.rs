//! Brokers that trust our CA: our own Mosquitto (the Debian package, its own configuration on
//! a free port — never the system instance on 1883) with `require_certificate true`, our
//! chain as `cafile` and our CRL as `crlfile`. An enrolled device publishes with its
//! certificate; after revocation and a CRL refresh the broker refuses it.

use crate::pki;
use crate::support;
use crate::support::free_port;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pki::{ok, provision_ca, register, run, Device};
use support::Node;

struct Broker {
    child: Child,
    port: u16,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker(dir: &Path, port: u16) -> Broker {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             persistence false\n\
             user root\n\
             cafile {d}/chain.pem\n\
             certfile {d}/broker.pem\n\
             keyfile {d}/broker.key\n\
             require_certificate true\n\
             use_identity_as_username true\n\
             crlfile {d}/crl.pem\n\
             log_dest stderr\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join(format!("mosquitto-{port}.log"))).unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("mosquitto (Debian package mosquitto) must be installed");
    // Wait until it accepts TCP connections.
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "mosquitto did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Broker { child, port }
}

fn publish(dev: &Device, port: u16) -> std::process::Output {
    run(Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--cafile"])
        .arg(dev.path("broker.pem"))
        .arg("--cert")
        .arg(dev.path("dev.pem"))
        .arg("--key")
        .arg(dev.path("dev.key"))
        .args(["-t", "sensors/temperature", "-m", "21.5", "-q", "1"]))
}

fn refresh_crl(node: &Node, dev: &Device) {
    ok(Command::new("curl")
        .args(["-sSf", "-o"])
        .arg(dev.path("crl.pem"))
        .arg(format!("{}/pki/crl.pem", node.base)));
}

#[test]
fn mosquitto_accepts_an_enrolled_device_and_refuses_it_after_revocation() {
    let node = Node::start();
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(tmp.path(), "meter-7");
    provision_ca(&node, &dev);
    // The broker's own server certificate (its own small CA; brokers rarely use ours).
    dev.self_signed(
        "broker",
        "/CN=127.0.0.1",
        &["-addext", "subjectAltName=IP:127.0.0.1"],
    );

    let secret = register(&node, "meter-7");
    let csr = dev.csr("dev", "ec", "/CN=meter-7");
    let (status, out) = dev.est(
        &node,
        "simpleenroll",
        &csr,
        Some(("meter-7", &secret)),
        None,
    );
    assert_eq!(status, 200);
    dev.save_cert(&out, "dev");
    refresh_crl(&node, &dev);

    let broker = start_broker(&dev.dir, free_port());
    let published = publish(&dev, broker.port);
    assert!(
        published.status.success(),
        "an enrolled device must be able to publish: {}\nbroker log:\n{}",
        String::from_utf8_lossy(&published.stderr),
        std::fs::read_to_string(dev.path(&format!("mosquitto-{}.log", broker.port)))
            .unwrap_or_default()
    );
    drop(broker);

    // Revoke, refresh the CRL, restart the broker with it: the device is refused.
    let out = node.cli_json(&["device", "revoke", "meter-7", "--reason", "keyCompromise"]);
    assert_eq!(out["revoked"].as_array().unwrap().len(), 1, "{out}");
    refresh_crl(&node, &dev);
    let broker = start_broker(&dev.dir, free_port());
    let refused = publish(&dev, broker.port);
    assert!(
        !refused.status.success(),
        "a revoked device must be refused by the broker"
    );
}
