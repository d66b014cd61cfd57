//! The syslog export (issue #14, item 4) against a real receiver: rsyslog (the Debian package,
//! with its GnuTLS driver) listening on TLS, started by the test from its own configuration.
//! Every record arrives once, decrypted, as an RFC 5424 message that rsyslog parses into the
//! fields we sent; when rsyslog restarts, the records made while it was down arrive once it
//! is back, and none is lost or repeated (count and sequence check against the chain head).

use crate::support;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{free_port, Node};

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";
const CLIENT: &str = "syslog-exported";

/// Whether rsyslogd and its GnuTLS network stream driver are installed.
fn rsyslog_present() -> bool {
    let driver = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .any(|dir| dir.path().join("rsyslog/lmnsd_gtls.so").exists());
    Path::new(RSYSLOGD).exists() && driver
}

/// rsyslog and rsyslog-gnutls, installed with apt-get when missing and we are root. Without
/// them (and no root) the test skips, except in CI where it fails.
fn ensure_rsyslog() -> bool {
    if rsyslog_present() {
        return true;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    if root {
        let install = || {
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(["rsyslog", "rsyslog-gnutls"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !install() {
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
            install();
        }
        assert!(
            rsyslog_present(),
            "apt-get install rsyslog rsyslog-gnutls did not install {RSYSLOGD} and lmnsd_gtls.so"
        );
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "rsyslog is missing in CI: install rsyslog and rsyslog-gnutls"
    );
    eprintln!("skipping: rsyslog is not installed (apt-get install rsyslog rsyslog-gnutls)");
    false
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and the receiver's certificate for `localhost` (`server.pem`,
/// `server.key`), X.509 v3 as rustls requires.
fn certificates(dir: &Path) {
    let p256 = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-new"];
    ca.extend(p256);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Test Syslog CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&ca, dir);
    let mut csr = vec!["req", "-new"];
    csr.extend(p256);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&csr, dir);
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:localhost\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
        dir,
    );
}

/// An rsyslogd of the test's own (its configuration, work directory and pid file in `dir`),
/// listening with TLS on `port` and writing each message it receives to `received.log` as
/// `PRI|TIMESTAMP|HOSTNAME|APP-NAME|PROCID|MSGID|STRUCTURED-DATA|MSG`: the fields rsyslog's
/// RFC 5424 parser read. Killed when dropped.
struct Rsyslog {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Rsyslog {
    fn new(dir: &Path) -> Rsyslog {
        std::fs::create_dir_all(dir).unwrap();
        certificates(dir);
        let port = free_port();
        let d = dir.display();
        std::fs::write(
            dir.join("rsyslog.conf"),
            format!(
                r#"global(workDirectory="{d}" maxMessageSize="64k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="{d}/ca.pem"
  defaultNetstreamDriverCertFile="{d}/server.pem"
  defaultNetstreamDriverKeyFile="{d}/server.key")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="fields" type="string"
  string="%pri%|%timereported:::date-rfc3339%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\n")
action(type="omfile" file="{d}/received.log" template="fields")
"#
            ),
        )
        .unwrap();
        Rsyslog {
            dir: dir.to_owned(),
            port,
            child: None,
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn received_log(&self) -> PathBuf {
        self.dir.join("received.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.log")).unwrap_or_default()
    }

    /// Starts rsyslogd in the foreground and waits until its port takes connections.
    fn start(&mut self) {
        assert!(self.child.is_none());
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("rsyslogd.log"))
            .unwrap();
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn rsyslogd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(self.address()).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("rsyslogd exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd does not listen on {}:\n{}",
                self.address(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM by pid, and waits for it to exit.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("rsyslogd running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if child.try_wait().unwrap().is_some() {
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rsyslogd did not stop within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One message as rsyslog parsed it.
#[derive(Debug)]
struct Received {
    pri: String,
    timestamp: String,
    hostname: String,
    app_name: String,
    procid: String,
    msgid: String,
    structured_data: String,
    record: Value,
}

fn received(path: &Path) -> Vec<Received> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.splitn(8, '|').collect();
            assert_eq!(f.len(), 8, "{line}");
            let msg = f[7].strip_prefix('\u{feff}').unwrap_or_else(|| {
                panic!("the MSG starts with the UTF-8 BOM: {line}");
            });
            Received {
                pri: f[0].into(),
                timestamp: f[1].into(),
                hostname: f[2].into(),
                app_name: f[3].into(),
                procid: f[4].into(),
                msgid: f[5].into(),
                structured_data: f[6].into(),
                record: serde_json::from_str(msg)
                    .unwrap_or_else(|e| panic!("the MSG is a record ({e}): {line}")),
            }
        })
        .collect()
}

/// The newest record's sequence number (reading it adds an `audit.read` record after it).
fn head(node: &Node) -> i64 {
    node.cli_json(&["audit", "list", "--limit", "1"])["records"][0]["seq"]
        .as_i64()
        .unwrap()
}

/// Waits until rsyslog has written record `seq`, then checks that it holds every record
/// from 1 to the last it has exactly once (in whatever order rsyslog wrote them), each
/// message's header agreeing with its record; returns the records by `seq`.
fn received_through(rsyslog: &Rsyslog, node: &Node, seq: i64) -> BTreeMap<i64, Received> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let all = received(&rsyslog.received_log());
        if all.iter().any(|r| r.record["seq"].as_i64().unwrap() >= seq) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "record {seq} did not reach rsyslog ({} messages there)\nnode log:\n{}\nrsyslogd log:\n{}",
            all.len(),
            node.log(),
            rsyslog.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A little longer, so that a page sent twice would show.
    std::thread::sleep(Duration::from_millis(500));
    let all = received(&rsyslog.received_log());
    let count = all.len();
    let mut by_seq = BTreeMap::new();
    for r in all {
        check_header(&r);
        let seq = r.record["seq"].as_i64().unwrap();
        assert!(
            by_seq.insert(seq, r).is_none(),
            "record {seq} arrived twice"
        );
    }
    let last = by_seq.keys().next_back().copied().unwrap_or(0);
    let missing: Vec<i64> = (1..=last).filter(|s| !by_seq.contains_key(s)).collect();
    assert!(missing.is_empty(), "records lost: {missing:?}");
    assert_eq!(count as i64, last, "records 1..={last}, each once");
    by_seq
}

/// The fields rsyslog parsed say what the record says.
fn check_header(r: &Received) {
    let record = &r.record;
    let seq = record["seq"].as_i64().unwrap();
    // authpriv (10): notice (5) for a success, warning (4) otherwise.
    let pri = if record["outcome"] == "success" {
        "85"
    } else {
        "84"
    };
    assert_eq!(r.pri, pri, "{r:?}");
    assert_eq!(r.hostname, "node-a", "{r:?}");
    assert_eq!(r.app_name, "portcullis", "{r:?}");
    assert_eq!(r.procid, "-", "{r:?}");
    assert_eq!(r.msgid, record["action"].as_str().unwrap(), "{r:?}");
    assert_eq!(
        r.structured_data,
        format!(
            "[portcullis@32473 seq=\"{seq}\" outcome=\"{}\" hash=\"{}\"]",
            record["outcome"].as_str().unwrap(),
            record["hash"].as_str().unwrap()
        ),
        "{r:?}"
    );
    assert!(
        r.timestamp.len() == 20 && r.timestamp.ends_with('Z'),
        "RFC 3339 UTC: {r:?}"
    );
}

#[test]
fn the_trail_streams_to_rsyslog_over_tls_and_survives_its_restart() {
    if !ensure_rsyslog() {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut rsyslog = Rsyslog::new(&tmp.path().join("rsyslog"));
    rsyslog.start();

    // Checkpoints off: no record is written in the background, so the node is quiet
    // whenever the test stops rsyslog (syslog over TLS has no acknowledgement: a record the
    // receiver has not read when it goes down is lost to it, whatever the sender does).
    let config = tmp.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "[audit]\ncheckpoint_interval_secs = 0\n\n\
             [[audit.export]]\nname = \"siem\"\nkind = \"syslog\"\naddress = \"{}\"\n\
             server_name = \"localhost\"\ntls_ca_file = \"{}\"\nhostname = \"node-a\"\n",
            rsyslog.address(),
            rsyslog.dir.join("ca.pem").display()
        ),
    )
    .unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let node = Node::start_with_args(&tmp.path().join("data"), &args, &[]);
    let (id, secret) = node.create_client(&["--id", CLIENT]);
    for _ in 0..40 {
        assert_eq!(node.token(&id, &secret, "").status, 200);
    }
    for _ in 0..3 {
        assert_eq!(node.token(&id, "wrong", "").status, 401);
    }

    // The node lists the same chain (hashes as stored): compared once the list's own
    // audit.read record is in too, so that nothing is on its way when rsyslog stops.
    let listed = node.cli_json(&["audit", "list", "--limit", "20"]);
    let first = head(&node);
    let got = received_through(&rsyslog, &node, first + 1);
    assert_eq!(
        by_actor(&got, "token.issued"),
        40,
        "decrypted: the client id is readable"
    );
    // Refusals are recorded once per source and minute (then summarised): the first one,
    // with the client id it claimed and where it came from.
    let refused: Vec<&Value> = got
        .values()
        .map(|r| &r.record)
        .filter(|r| r["action"] == "token.refused")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["detail"]["claimed_client_id"], CLIENT);
    assert_eq!(refused[0]["detail"]["source"], "127.0.0.1");
    assert_eq!(refused[0]["encrypted"], true);
    assert!(got
        .values()
        .filter(|r| r.record["actor"] == CLIENT)
        .all(|r| r.record["encrypted"] == true));
    for record in listed["records"].as_array().unwrap() {
        let seq = record["seq"].as_i64().unwrap();
        let r = &got[&seq].record;
        assert_eq!(r["hash"], record["hash"], "record {seq}");
        assert_eq!(r["actor"], record["actor"], "record {seq}");
        assert_eq!(r["action"], record["action"], "record {seq}");
    }
    eprintln!(
        "{} records through rsyslog after {:?}",
        got.len(),
        started.elapsed()
    );

    // The receiver restarts: records made while it is down are retried until it is back.
    rsyslog.stop();
    let down_since = Instant::now();
    for _ in 0..10 {
        assert_eq!(node.token(&id, &secret, "").status, 200);
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        node.log().contains("audit export failed"),
        "the export noticed the receiver was down:\n{}",
        node.log()
    );
    let before_restart = received(&rsyslog.received_log()).len();
    assert_eq!(
        before_restart,
        got.len(),
        "nothing was received while rsyslog was down"
    );
    rsyslog.start();
    eprintln!("rsyslog down for {:?}", down_since.elapsed());
    for _ in 0..5 {
        assert_eq!(node.token(&id, &secret, "").status, 200);
    }

    let second = head(&node);
    let got = received_through(&rsyslog, &node, second + 1);
    assert_eq!(
        *got.keys().next_back().unwrap(),
        second + 1,
        "the chain head and its audit.read, no further"
    );
    assert_eq!(by_actor(&got, "token.issued"), 55);
    eprintln!(
        "{} records through rsyslog, each once, after {:?}",
        got.len(),
        started.elapsed()
    );
    assert!(node.stop().success());
    rsyslog.stop();
}

fn by_actor(got: &BTreeMap<i64, Received>, action: &str) -> usize {
    got.values()
        .filter(|r| r.record["action"] == action && r.record["actor"] == CLIENT)
        .count()
}
