//! What the gateway tests share: the example device (pycose, PyJWT, paho) and reading back
//! what a node stored.

use std::path::PathBuf;

use serde_json::Value;

use super::Node;

/// `examples/python_device/device.py`.
pub fn example_device() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/python_device/device.py")
}

/// pycose, cbor2, PyJWT and paho from `.interop/python`; `None` (skip) outside CI without them.
pub fn python_path() -> Option<PathBuf> {
    match std::env::var_os("PORTCULLIS_INTEROP_DIR") {
        Some(d) => Some(PathBuf::from(d).join("python")),
        None if std::env::var_os("CI").is_some() => {
            panic!("PORTCULLIS_INTEROP_DIR is not set in CI: run scripts/test.sh")
        }
        None => {
            eprintln!("skipping: run scripts/test.sh (it installs pycose and sets PORTCULLIS_INTEROP_DIR)");
            None
        }
    }
}

/// What `portcullis telemetry tail --device DEVICE --json` shows.
pub fn stored(node: &Node, device: &str) -> Vec<Value> {
    let out = node.cli(&["telemetry", "tail", "--device", device, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The message counters of what `telemetry tail` shows for `device`, in log order.
pub fn stored_counters(node: &Node, device: &str) -> Vec<u64> {
    stored(node, device)
        .iter()
        .map(|r| r["counter"].as_u64().unwrap())
        .collect()
}

/// Registers a device of model `meter-v1` (with `--attr` for each of `attrs`) and creates
/// one key for it: (key id, key).
pub fn device_with_key(node: &Node, id: &str, attrs: &[&str]) -> (String, [u8; 32]) {
    use base64::Engine as _;
    let mut args = vec!["device", "register", "--id", id, "--model", "meter-v1"];
    for a in attrs {
        args.extend_from_slice(&["--attr", a]);
    }
    node.cli_json(&args);
    let key = node.cli_json(&["device", "key", "create", id]);
    let raw: [u8; 32] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key["key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    (key["key_id"].as_str().unwrap().to_owned(), raw)
}

/// This host's clock, Unix seconds (the time COSE messages carry).
/// POSTs one COSE message to `/gateway/v1/telemetry` with no other credential; the status.
pub fn post_cose(node: &Node, body: &[u8]) -> u16 {
    node.request(
        "POST",
        "/gateway/v1/telemetry",
        Some("application/cose"),
        &[],
        body,
    )
    .status
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A device that holds one symmetric key: HS256 device tokens and COSE_Mac0 messages.
pub struct KeyedDevice {
    pub id: String,
    pub key_id: String,
    pub key: [u8; 32],
    pub counter: u64,
}

impl KeyedDevice {
    /// Registers `id` (model `model`) and creates its key.
    pub fn register(node: &Node, id: &str, model: &str) -> KeyedDevice {
        node.cli_json(&["device", "register", "--id", id, "--model", model]);
        let created = node.cli_json(&["device", "key", "create", id]);
        Self::from_created(id, &created)
    }

    /// From what `device key create --json` printed.
    pub fn from_created(id: &str, created: &Value) -> KeyedDevice {
        use base64::Engine as _;
        let key: [u8; 32] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(created["key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        KeyedDevice {
            id: id.to_owned(),
            key_id: created["key_id"].as_str().unwrap().to_owned(),
            key,
            counter: 0,
        }
    }

    /// An HS256 device token for `audience`, valid ten minutes.
    pub fn token(&self, audience: &str) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        let header = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": self.key_id});
        let iat = now();
        let claims = serde_json::json!({
            "iss": self.id, "sub": self.id, "aud": audience, "iat": iat, "exp": iat + 600,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.key);
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The next COSE_Mac0 message carrying `payload` (counter one above the last).
    pub fn seal(&mut self, payload: &[u8]) -> Vec<u8> {
        self.counter += 1;
        portcullis_gateway::cose::seal_mac0(
            &portcullis_core::device::DeviceId::parse(self.id.clone()).unwrap(),
            &self.key_id,
            &self.key,
            self.counter,
            now(),
            payload,
        )
    }
}

/// A client with these scopes, and an access token for all of them.
pub fn principal(node: &Node, scopes: &[&str]) -> String {
    let mut args = Vec::new();
    for scope in scopes {
        args.extend_from_slice(&["--scope", scope]);
    }
    let (id, secret) = node.create_client(&args);
    let form = if scopes.is_empty() {
        String::new()
    } else {
        format!("&scope={}", scopes.join("%20"))
    };
    let answer = node.token(&id, &secret, &form);
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["access_token"].as_str().unwrap().to_owned()
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A request with a bearer token and no body.
pub fn call(node: &Node, method: &str, path: &str, token: &str) -> super::Answer {
    let auth = bearer(token);
    node.request(method, path, None, &[("Authorization", &auth)], b"")
}

/// A root key and one key per role in `roles` made, a trust list published: the list as a
/// device opens it, and the root's public JWK (what a device pins).
pub fn publish_trust(
    node: &Node,
    roles: &[&str],
) -> (portcullis_gateway::signed::TrustList, Value) {
    use std::io::Read as _;
    node.cli_json(&["trust", "key", "create", "--role", "root"]);
    for role in roles {
        node.cli_json(&["trust", "key", "create", "--role", role]);
    }
    node.cli_json(&["trust", "publish"]);
    let keys = node.cli_json(&["trust", "key", "list"]);
    let root = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "root")
        .unwrap()["public_jwk"]
        .clone();
    let jwk: portcullis_keys::Jwk = serde_json::from_value(root.clone()).unwrap();
    let key =
        portcullis_keys::verify::VerifyingKey::from_jwk(&jwk, &portcullis_keys::Algorithm::ALL)
            .unwrap();
    let mut bytes = Vec::new();
    ureq::get(&format!("{}/gateway/v1/trust", node.base))
        .call()
        .unwrap()
        .into_reader()
        .read_to_end(&mut bytes)
        .unwrap();
    let list = portcullis_gateway::signed::TrustList::open(&bytes, &key, now(), None).unwrap();
    (list, root)
}

/// A device's long poll of `base` + `path` with a bearer `token`, in a thread: join it for
/// how long the request waited and the JSON it got.
pub fn long_poll(
    base: &str,
    path: &str,
    token: String,
) -> std::thread::JoinHandle<(std::time::Duration, Value)> {
    let url = format!("{base}{path}");
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let answer = ureq::get(&url)
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        (started.elapsed(), answer.into_json::<Value>().unwrap())
    })
}

/// A FUSE filesystem (`tests/fault/failing_disk_fs.py`) mounted over a directory: it passes
/// everything through to a backing directory, but fails as [`FailingDisk::fail`] says until
/// [`FailingDisk::heal`]. Unmounted when dropped (after the node using it is gone).
pub struct FailingDisk {
    child: std::process::Child,
    mount_point: PathBuf,
    flag: PathBuf,
}

impl FailingDisk {
    /// Mounts it at `mount_point` (created, and empty), the backing directory in `scratch`.
    /// `None` (skip) where FUSE cannot be mounted: no `/dev/fuse`, or not root.
    pub fn mount(mount_point: &std::path::Path, scratch: &std::path::Path) -> Option<FailingDisk> {
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
        {
            eprintln!("skipping: FUSE is not available here ({e}); CI runs as root with /dev/fuse");
            return None;
        }
        let python = python_path()?;
        let backing = scratch.join("backing");
        std::fs::create_dir_all(&backing).unwrap();
        std::fs::create_dir_all(mount_point).unwrap();
        let flag = scratch.join("disk-fault");
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fault/failing_disk_fs.py");
        let mut child = std::process::Command::new("python3")
            .env("PYTHONPATH", &python)
            .arg(script)
            .args([&backing, mount_point, &flag])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mounted = || {
            std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap_or_default()
                .lines()
                .any(|l| l.split(' ').nth(4) == Some(mount_point.to_str().unwrap()))
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while !mounted() {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read as _;
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("the FUSE filesystem did not mount ({status}): {err}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the FUSE filesystem did not mount in 15 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Some(FailingDisk {
            child,
            mount_point: mount_point.to_owned(),
            flag,
        })
    }

    /// From now on the mount fails as `fault` says.
    pub fn fail(&self, fault: DiskFault) {
        let what = match fault {
            DiskFault::Fsync => "fsync",
            DiskFault::Full => "full",
            DiskFault::Broken => "broken",
        };
        std::fs::write(&self.flag, what).unwrap();
    }

    /// From now on the mount works again.
    pub fn heal(&self) {
        std::fs::remove_file(&self.flag).unwrap();
    }
}

/// How a [`FailingDisk`] fails.
pub enum DiskFault {
    /// `fsync` and `fdatasync` fail with EIO.
    Fsync,
    /// Writes are short, then fail with ENOSPC: the writer is left with a torn record.
    Full,
    /// Writes are short, then fail with EIO, and truncating fails too: the torn record
    /// cannot be taken back.
    Broken,
}

impl Drop for FailingDisk {
    fn drop(&mut self) {
        // Lazy: a process of the test still holding a file under it must not keep it mounted.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
