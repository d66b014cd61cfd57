//! The alert webhook of `[alerts.webhook]` (issue #14): every alert is POSTed as JSON to
//! one URL, signed with a shared secret so the receiver can check it came from this server,
//! and retried with backoff until the receiver takes it.
//!
//! # Wire format
//!
//! One request per attempt:
//!
//! ```text
//! POST <url>
//! Content-Type: application/json
//! User-Agent: portcullis/<version>
//! Portcullis-Signature: t=<unix seconds>,v1=<64 lowercase hex digits>
//! Portcullis-Alert-Id: <the alert's "id">
//!
//! <the alert as one JSON object>
//! ```
//!
//! - The body is the alert serialized once: every attempt of one alert sends the same bytes.
//! - `t` is the time of this attempt (so a retry carries a newer `t` than the first try), in
//!   seconds since the Unix epoch.
//! - `v1` is HMAC-SHA256, keyed with the secret, of the ASCII decimal `t`, a `.`, and then the
//!   body bytes exactly as received: `HMAC-SHA256(secret, "<t>." || body)`, in lowercase hex.
//!   Verify it over the raw body, before parsing the JSON.
//! - The secret is the content of `secret_file` less one trailing `\n` or `\r\n` (at least 32
//!   bytes remain), used as raw bytes.
//! - `Portcullis-Alert-Id` is there when the alert's `id` member is a number or a string of
//!   1 to 256 visible ASCII characters; alerts are delivered at least once (a response lost
//!   on the way back causes a retry of an alert the receiver already has), so a receiver
//!   drops an id it has seen.
//! - Any 2xx answer is success. Connection errors, timeouts, 5xx and 429 are retried after
//!   1 s, 2 s, 4 s, ... (at most 60 s apart) until `max_attempts` have been made; a
//!   `Retry-After: <seconds>` on a retried answer is honoured when longer (up to 60 s). Any
//!   other answer (other 4xx, and 1xx or 3xx: redirects are not followed) refuses the alert
//!   and is not retried.
//! - Alerts go one at a time in the order they were raised.
//!
//! A receiver in Python, refusing signatures more than five minutes off (replays):
//!
//! ```python
//! import hashlib, hmac, time
//!
//! raw = open("webhook.secret", "rb").read()
//! secret = raw[:-2] if raw.endswith(b"\r\n") else raw.removesuffix(b"\n")
//!
//! def verify(signature_header: str, body: bytes, tolerance: int = 300) -> bool:
//!     fields = dict(part.split("=", 1) for part in signature_header.split(","))
//!     t = int(fields["t"])
//!     if abs(time.time() - t) > tolerance:
//!         return False
//!     expected = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
//!     return hmac.compare_digest(expected, fields.get("v1", ""))
//! ```
//!
//! Neither the secret nor alert bodies are ever logged; nor is the URL (webhook URLs often
//! carry a token). Logs about one alert name its `id` and `rule` members only.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use serde_json::Value;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

/// Counter of alerts by how their delivery ended (`outcome` label: [`OUTCOME_DELIVERED`],
/// [`OUTCOME_FAILED`] or [`OUTCOME_DROPPED`]).
pub const DELIVERIES_METRIC: &str = "portcullis_alert_webhook_deliveries_total";
/// `outcome` of an alert the receiver answered with a 2xx.
pub const OUTCOME_DELIVERED: &str = "delivered";
/// `outcome` of an alert the receiver refused, or that every attempt failed to deliver.
pub const OUTCOME_FAILED: &str = "failed";
/// `outcome` of an alert that found the queue full (or the delivery task gone).
pub const OUTCOME_DROPPED: &str = "dropped";

/// The header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "Portcullis-Signature";
/// The header carrying the alert's `id`.
pub const ALERT_ID_HEADER: &str = "Portcullis-Alert-Id";
/// Alerts waiting for delivery at most; more are dropped.
pub const QUEUE_CAPACITY: usize = 1024;
/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;
/// The longest secret file read, in bytes (a guard against pointing at the wrong file).
const MAX_SECRET_FILE_LEN: u64 = 4096;

const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
/// A receiver's `Retry-After` is honoured up to this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The longest alert id sent in [`ALERT_ID_HEADER`].
const MAX_ALERT_ID_LEN: usize = 256;
/// The longest `id` or `rule` value written to a log line.
const MAX_LOGGED_MEMBER_LEN: usize = 128;

/// The configuration section, as errors name it.
const WHAT: &str = "alerts.webhook";

/// `[alerts.webhook]`
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where alerts are POSTed (http or https).
    pub url: String,
    /// A file holding the shared secret the body is signed with: at least 32 bytes once a
    /// trailing newline is trimmed, and not accessible to all users (mode `o-rwx`).
    pub secret_file: std::path::PathBuf,
    /// Attempts per alert (default 8); delays 1 s, 2 s, 4 s, ... capped at 60 s.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Per-request timeout in seconds (default 10).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_max_attempts() -> u32 {
    8
}

fn default_timeout_secs() -> u64 {
    10
}

/// The sending end of the alert webhook: a bounded queue to one delivery task, which
/// delivers the alerts in order. The task ends once every handle is dropped and the queue
/// is drained.
#[derive(Debug, Clone)]
pub struct AlertWebhook {
    queue: mpsc::Sender<Value>,
}

impl AlertWebhook {
    /// Reads the secret and spawns the delivery task on the current runtime. Errors name the
    /// file, never its contents.
    pub fn start(config: &WebhookConfig) -> Result<AlertWebhook, String> {
        Self::start_with_delays(config, FIRST_RETRY_DELAY, MAX_RETRY_DELAY)
    }

    /// [`start`](Self::start) with another backoff: the first retry after `first_delay`,
    /// each next one after twice as long, at most `max_delay`.
    pub(crate) fn start_with_delays(
        config: &WebhookConfig,
        first_delay: Duration,
        max_delay: Duration,
    ) -> Result<AlertWebhook, String> {
        if config.max_attempts == 0 {
            return Err(format!("{WHAT}.max_attempts must be at least 1"));
        }
        if config.timeout_secs == 0 {
            return Err(format!("{WHAT}.timeout_secs must be at least 1"));
        }
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(config.timeout_secs))
            .redirects(0)
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build();
        check_url(&agent, &config.url)?;
        let secret = read_secret(&config.secret_file)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| format!("{WHAT}: no async runtime to deliver alerts on"))?;
        let (queue, alerts) = mpsc::channel(QUEUE_CAPACITY);
        let delivery = Delivery {
            agent,
            url: config.url.as_str().into(),
            secret,
            max_attempts: config.max_attempts,
            first_delay,
            max_delay,
        };
        runtime.spawn(delivery.run(alerts));
        tracing::info!(
            max_attempts = config.max_attempts,
            timeout_secs = config.timeout_secs,
            "alert webhook started"
        );
        Ok(AlertWebhook { queue })
    }

    /// Queues one alert (a JSON object) for delivery; never waits. A full queue drops it
    /// (counted as [`OUTCOME_DROPPED`], logged with its `id` and `rule`).
    pub fn send(&self, alert: Value) {
        let why = match self.queue.try_send(alert) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(alert)) => (alert, "the queue is full"),
            Err(mpsc::error::TrySendError::Closed(alert)) => {
                (alert, "the delivery task has stopped")
            }
        };
        let (alert, why) = why;
        metrics::counter!(DELIVERIES_METRIC, "outcome" => OUTCOME_DROPPED).increment(1);
        tracing::warn!(
            id = ?log_member(&alert, "id"),
            rule = ?log_member(&alert, "rule"),
            "alert webhook: alert dropped: {why}"
        );
    }
}

/// The [`SIGNATURE_HEADER`] value for `body` sent at `timestamp` (Unix seconds):
/// `t=<timestamp>,v1=<lowercase hex HMAC-SHA256(secret, "<timestamp>." || body)>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut context = hmac::Context::with_key(&key);
    context.update(format!("{timestamp}.").as_bytes());
    context.update(body);
    let tag = context.sign();
    let mut header = format!("t={timestamp},v1=");
    for byte in tag.as_ref() {
        // Writing to a String cannot fail.
        let _ = write!(header, "{byte:02x}");
    }
    header
}

/// Refuses a URL that is not http(s) or that the client cannot parse; the URL itself is
/// not echoed (it may carry a token).
fn check_url(agent: &ureq::Agent, url: &str) -> Result<(), String> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(format!("{WHAT}.url must be an http:// or https:// URL"));
    }
    agent
        .post(url)
        .request_url()
        .map(drop)
        .map_err(|e| format!("{WHAT}.url is not a valid URL ({})", e.kind()))
}

/// The secret of `path`: its bytes less one trailing `\n` or `\r\n`. The file must not be
/// accessible to all users and must hold at least [`MIN_SECRET_LEN`] bytes.
fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let bad = |why: String| format!("{WHAT}.secret_file {}: {why}", path.display());
    // The io::Error kind only: its message is the OS's, but keep to what cannot echo.
    let cannot_read = |e: std::io::Error| bad(format!("cannot be read ({})", e.kind()));
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    let metadata = file.metadata().map_err(cannot_read)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            return Err(bad(format!(
                "is accessible to all users (mode {mode:03o}); run chmod o-rwx on it"
            )));
        }
    }
    if metadata.len() > MAX_SECRET_FILE_LEN {
        return Err(bad(format!(
            "is larger than {MAX_SECRET_FILE_LEN} bytes; is it the right file?"
        )));
    }
    // Room for the whole file up front, so no reallocation leaves a copy behind.
    let capacity = usize::try_from(MAX_SECRET_FILE_LEN).unwrap_or(4096) + 1;
    let mut secret = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(MAX_SECRET_FILE_LEN + 1)
        .read_to_end(&mut secret)
        .map_err(cannot_read)?;
    if secret.len() as u64 > MAX_SECRET_FILE_LEN {
        return Err(bad(format!(
            "is larger than {MAX_SECRET_FILE_LEN} bytes; is it the right file?"
        )));
    }
    if secret.last() == Some(&b'\n') {
        secret.pop();
        if secret.last() == Some(&b'\r') {
            secret.pop();
        }
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(bad(format!(
            "must hold a secret of at least {MIN_SECRET_LEN} bytes"
        )));
    }
    Ok(secret)
}

/// The delivery task's state.
struct Delivery {
    agent: ureq::Agent,
    url: Arc<str>,
    secret: Zeroizing<Vec<u8>>,
    max_attempts: u32,
    first_delay: Duration,
    max_delay: Duration,
}

/// How one attempt ended.
enum Attempt {
    /// A 2xx.
    Delivered,
    /// An answer not to retry (the status).
    Refused(u16),
    /// Worth another attempt: why not (for the log), and the receiver's `Retry-After`.
    Retry {
        why: String,
        retry_after: Option<Duration>,
    },
}

/// The alerts the delivery task holds: the one being delivered and the queue. Kept in memory
/// only, so a node that stops (its runtime dropping the task mid-retry) would lose them
/// without a word; dropping this names them instead — in the log, and counted as
/// [`OUTCOME_DROPPED`] — for the operator to look up with `alerts list`, where every alert
/// stays stored.
struct Backlog {
    current: Option<Value>,
    queue: mpsc::Receiver<Value>,
}

impl Drop for Backlog {
    fn drop(&mut self) {
        self.queue.close();
        let unsent: Vec<Value> = self
            .current
            .take()
            .into_iter()
            .chain(std::iter::from_fn(|| self.queue.try_recv().ok()))
            .collect();
        if unsent.is_empty() {
            return;
        }
        metrics::counter!(DELIVERIES_METRIC, "outcome" => OUTCOME_DROPPED)
            .increment(unsent.len() as u64);
        let ids: Vec<String> = unsent.iter().map(|a| log_member(a, "id")).collect();
        tracing::warn!(
            count = unsent.len(),
            ids = ?ids,
            "alert webhook: the node stops with alerts not delivered; they stay in `alerts list`"
        );
    }
}

impl Delivery {
    async fn run(self, alerts: mpsc::Receiver<Value>) {
        let mut backlog = Backlog {
            current: None,
            queue: alerts,
        };
        while let Some(alert) = backlog.queue.recv().await {
            let alert = backlog.current.insert(alert);
            self.deliver(alert).await;
            backlog.current = None;
        }
        tracing::debug!("alert webhook: every sender is gone; delivery task ends");
    }

    /// Delivers one alert, retrying as the module documentation says.
    async fn deliver(&self, alert: &Value) {
        let id = log_member(alert, "id");
        let rule = log_member(alert, "rule");
        let body: Arc<[u8]> = match serde_json::to_vec(alert) {
            Ok(body) => body.into(),
            Err(e) => {
                // Cannot happen for a Value (its map keys are strings), but never panic.
                metrics::counter!(DELIVERIES_METRIC, "outcome" => OUTCOME_FAILED).increment(1);
                tracing::error!(?id, ?rule, error = %e, "alert webhook: alert not serializable");
                return;
            }
        };
        let alert_id = header_alert_id(alert);
        let mut delay = self.first_delay;
        let mut attempt = 1;
        loop {
            match self.attempt(&body, alert_id.as_deref()).await {
                Attempt::Delivered => {
                    metrics::counter!(DELIVERIES_METRIC, "outcome" => OUTCOME_DELIVERED)
                        .increment(1);
                    tracing::debug!(?id, ?rule, attempt, "alert webhook: alert delivered");
                    return;
                }
                Attempt::Refused(status) => {
                    metrics::counter!(DELIVERIES_METRIC, "outcome" => OUTCOME_FAILED).increment(1);
                    tracing::warn!(
                        ?id,
                        ?rule,
                        status,
                        "alert webhook: the receiver refused the alert; not retried"
                    );
                    return;
                }
                Attempt::Retry { why, retry_after } => {
                    if attempt >= self.max_attempts {
                        metrics::counter!(DELIVERIES_METRIC, "outcome" => OUTCOME_FAILED)
                            .increment(1);
                        tracing::error!(
                            ?id,
                            ?rule,
                            attempts = attempt,
                            last_error = %why,
                            "alert webhook: alert not delivered; giving up"
                        );
                        return;
                    }
                    let wait = retry_after.map_or(delay, |asked| asked.max(delay));
                    tracing::warn!(
                        ?id,
                        ?rule,
                        attempt,
                        error = %why,
                        retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "alert webhook: delivery failed; will retry"
                    );
                    tokio::time::sleep(wait).await;
                    delay = delay.saturating_mul(2).min(self.max_delay);
                    attempt += 1;
                }
            }
        }
    }

    /// One POST, signed at the time of sending, run on the blocking pool.
    async fn attempt(&self, body: &Arc<[u8]>, alert_id: Option<&str>) -> Attempt {
        let mut request = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/json")
            .set(SIGNATURE_HEADER, &signature(&self.secret, unix_now(), body));
        if let Some(alert_id) = alert_id {
            request = request.set(ALERT_ID_HEADER, alert_id);
        }
        let body = body.clone();
        tokio::task::spawn_blocking(move || classify(request.send_bytes(&body)))
            .await
            .unwrap_or_else(|e| Attempt::Retry {
                why: format!("the request task failed ({e})"),
                retry_after: None,
            })
    }
}

/// What an answer (or its absence) means for the alert.
fn classify(result: Result<ureq::Response, ureq::Error>) -> Attempt {
    match result {
        Ok(response) if (200..300).contains(&response.status()) => Attempt::Delivered,
        // 1xx and 3xx (redirects are not followed: the URL is configured, not discovered).
        Ok(response) => Attempt::Refused(response.status()),
        Err(ureq::Error::Status(status, response)) if status == 429 || status >= 500 => {
            Attempt::Retry {
                why: format!("status {status}"),
                retry_after: response.header("Retry-After").and_then(parse_retry_after),
            }
        }
        Err(ureq::Error::Status(status, _)) => Attempt::Refused(status),
        Err(ureq::Error::Transport(transport)) => {
            // Kind, message and cause only: the Display of a transport error names the URL.
            let mut why = transport.kind().to_string();
            if let Some(message) = transport.message() {
                let _ = write!(why, ": {message}");
            }
            if let Some(source) = std::error::Error::source(&transport) {
                let _ = write!(why, ": {source}");
            }
            Attempt::Retry {
                why,
                retry_after: None,
            }
        }
    }
}

/// A `Retry-After` in seconds, at most [`MAX_RETRY_AFTER`]; the HTTP-date form is ignored
/// (the backoff applies).
fn parse_retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// The alert's `id` as a header value, if it is a number or short visible ASCII.
fn header_alert_id(alert: &Value) -> Option<String> {
    match alert.get("id")? {
        Value::String(id)
            if !id.is_empty()
                && id.len() <= MAX_ALERT_ID_LEN
                && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Some(id.clone())
        }
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// One member of an alert for a log line: a string as it is, anything else as JSON, `-`
/// when absent; at most [`MAX_LOGGED_MEMBER_LEN`] characters.
fn log_member(alert: &Value, name: &str) -> String {
    let value = match alert.get(name) {
        None => return "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    value.chars().take(MAX_LOGGED_MEMBER_LEN).collect()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const SHORT: Duration = Duration::from_millis(20);

    /// One request as the test receiver saw it.
    struct Seen {
        head: String,
        body: Vec<u8>,
        at: Instant,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.head.lines().skip(1).find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
        }

        fn alert(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap()
        }
    }

    /// How the test receiver answers one request.
    enum Reply {
        Status(u16),
        WithHeader(u16, &'static str),
        /// Read the request, never answer (until the test ends).
        Hang,
    }

    /// A receiver on 127.0.0.1 answering requests as `script` says, then 200s; its URL
    /// and what it saw.
    async fn receiver(script: Vec<Reply>) -> (String, mpsc::UnboundedReceiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/alerts", listener.local_addr().unwrap());
        let (seen_tx, seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut script = script.into_iter();
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                let head_end = loop {
                    if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                    let mut chunk = [0u8; 1024];
                    let n = stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "connection closed mid-head");
                    buf.extend_from_slice(&chunk[..n]);
                };
                let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().unwrap())
                    })
                    .expect("a Content-Length");
                let mut body = buf[head_end..].to_vec();
                while body.len() < length {
                    let mut chunk = [0u8; 1024];
                    let n = stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "connection closed mid-body");
                    body.extend_from_slice(&chunk[..n]);
                }
                let _ = seen_tx.send(Seen {
                    head,
                    body,
                    at: Instant::now(),
                });
                let (status, extra) = match script.next() {
                    None => (200, ""),
                    Some(Reply::Status(status)) => (status, ""),
                    Some(Reply::WithHeader(status, header)) => (status, header),
                    Some(Reply::Hang) => {
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            drop(stream);
                        });
                        continue;
                    }
                };
                let extra = if extra.is_empty() {
                    String::new()
                } else {
                    format!("{extra}\r\n")
                };
                let reply = format!(
                    "HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n{extra}\r\n"
                );
                stream.write_all(reply.as_bytes()).await.unwrap();
                let _ = stream.shutdown().await;
            }
        });
        (url, seen)
    }

    async fn next(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
        tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .expect("a request within 10 s")
            .expect("the receiver is running")
    }

    /// Asserts no request arrives within a while.
    async fn nothing_more(seen: &mut mpsc::UnboundedReceiver<Seen>) {
        let more = tokio::time::timeout(Duration::from_millis(300), seen.recv()).await;
        assert!(more.is_err(), "an unexpected request");
    }

    fn secret_file(dir: &tempfile::TempDir, content: &[u8], mode: u32) -> std::path::PathBuf {
        let path = dir.path().join("webhook.secret");
        std::fs::write(&path, content).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = mode;
        path
    }

    fn config(url: &str, secret_file: std::path::PathBuf) -> WebhookConfig {
        WebhookConfig {
            url: url.to_owned(),
            secret_file,
            max_attempts: 8,
            timeout_secs: 10,
        }
    }

    /// Starts a webhook to `url` with the test secret and short delays.
    fn start(dir: &tempfile::TempDir, url: &str, max_attempts: u32) -> AlertWebhook {
        let mut secret = SECRET.to_vec();
        secret.push(b'\n');
        let mut config = config(url, secret_file(dir, &secret, 0o600));
        config.max_attempts = max_attempts;
        AlertWebhook::start_with_delays(&config, SHORT, SHORT * 4).unwrap()
    }

    fn hex_decode(hex: &str) -> Vec<u8> {
        assert!(hex.len().is_multiple_of(2));
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn signature_matches_python_hmac() {
        // python3: hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        assert_eq!(
            signature(SECRET, 1_700_000_000, br#"{"id":"a1","rule":"r"}"#),
            "t=1700000000,v1=4f3ae7821ef75d3cc5160330f787cb1b530d87abf255285b39e8f6d189124bc0"
        );
    }

    #[tokio::test]
    async fn delivery_is_signed_and_carries_the_exact_body() {
        let dir = tempfile::tempdir().unwrap();
        let (url, mut seen) = receiver(vec![]).await;
        let webhook = start(&dir, &url, 8);
        let alert = json!({"id": "alert-1", "rule": "token-burst", "client": "c1", "count": 12});
        webhook.send(alert.clone());
        let request = next(&mut seen).await;

        assert!(request.head.starts_with("POST /alerts HTTP/1.1\r\n"));
        assert_eq!(request.header("Content-Type"), Some("application/json"));
        let agent = format!("portcullis/{}", env!("CARGO_PKG_VERSION"));
        assert_eq!(request.header("User-Agent"), Some(agent.as_str()));
        assert_eq!(request.header("Portcullis-Alert-Id"), Some("alert-1"));
        assert_eq!(request.body, serde_json::to_vec(&alert).unwrap());

        let header = request.header("Portcullis-Signature").unwrap();
        let (t, v1) = header.split_once(",v1=").unwrap();
        let t: i64 = t.strip_prefix("t=").unwrap().parse().unwrap();
        assert!((t - unix_now()).abs() <= 5, "t = {t} is not now");
        assert_eq!(v1.len(), 64);
        assert!(v1
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
        let mut signed = format!("{t}.").into_bytes();
        signed.extend_from_slice(&request.body);
        assert!(hmac::verify(&key, &signed, &hex_decode(v1)).is_ok());
        // The same bytes under another secret do not verify.
        let other = hmac::Key::new(hmac::HMAC_SHA256, &[b'x'; 32]);
        assert!(hmac::verify(&other, &signed, &hex_decode(v1)).is_err());
        nothing_more(&mut seen).await;
    }

    #[tokio::test]
    async fn server_error_is_retried_until_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let (url, mut seen) = receiver(vec![Reply::Status(500)]).await;
        let webhook = start(&dir, &url, 8);
        webhook.send(json!({"id": "a", "rule": "r"}));
        let first = next(&mut seen).await;
        let second = next(&mut seen).await;
        assert_eq!(first.body, second.body);
        assert_eq!(second.header("Portcullis-Alert-Id"), Some("a"));
        assert!(second.at.duration_since(first.at) >= SHORT);
        // Delivered on the second attempt: no third.
        nothing_more(&mut seen).await;
    }

    #[tokio::test]
    async fn client_error_is_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let (url, mut seen) = receiver(vec![Reply::Status(400)]).await;
        let webhook = start(&dir, &url, 8);
        webhook.send(json!({"id": "refused", "rule": "r"}));
        assert_eq!(next(&mut seen).await.alert()["id"], "refused");
        nothing_more(&mut seen).await;
        // The task goes on with the next alert.
        webhook.send(json!({"id": "next", "rule": "r"}));
        assert_eq!(next(&mut seen).await.alert()["id"], "next");
        nothing_more(&mut seen).await;
    }

    #[tokio::test]
    async fn too_many_requests_waits_for_retry_after() {
        let dir = tempfile::tempdir().unwrap();
        let (url, mut seen) = receiver(vec![Reply::WithHeader(429, "Retry-After: 1")]).await;
        let webhook = start(&dir, &url, 8);
        webhook.send(json!({"id": "a", "rule": "r"}));
        let first = next(&mut seen).await;
        let second = next(&mut seen).await;
        assert_eq!(first.body, second.body);
        // Retry-After (1 s) rather than the 20 ms backoff.
        assert!(second.at.duration_since(first.at) >= Duration::from_millis(950));
        nothing_more(&mut seen).await;
    }

    #[tokio::test]
    async fn timeout_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let (url, mut seen) = receiver(vec![Reply::Hang]).await;
        let mut secret = SECRET.to_vec();
        secret.push(b'\n');
        let mut config = config(&url, secret_file(&dir, &secret, 0o600));
        config.timeout_secs = 1;
        let webhook = AlertWebhook::start_with_delays(&config, SHORT, SHORT).unwrap();
        webhook.send(json!({"id": "slow", "rule": "r"}));
        let first = next(&mut seen).await;
        let second = next(&mut seen).await;
        assert_eq!(first.body, second.body);
        assert!(second.at.duration_since(first.at) >= Duration::from_millis(950));
        nothing_more(&mut seen).await;
    }

    #[tokio::test]
    async fn attempts_stop_at_max_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let failing = (0..3).map(|_| Reply::Status(503)).collect();
        let (url, mut seen) = receiver(failing).await;
        let webhook = start(&dir, &url, 3);
        webhook.send(json!({"id": "lost", "rule": "r"}));
        for _ in 0..3 {
            assert_eq!(next(&mut seen).await.alert()["id"], "lost");
        }
        webhook.send(json!({"id": "next", "rule": "r"}));
        assert_eq!(next(&mut seen).await.alert()["id"], "next");
        nothing_more(&mut seen).await;
    }

    #[tokio::test]
    async fn alerts_are_delivered_one_at_a_time_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (url, mut seen) = receiver(vec![Reply::Status(502)]).await;
        let webhook = start(&dir, &url, 8);
        webhook.send(json!({"id": 1, "rule": "r"}));
        webhook.send(json!({"id": 2, "rule": "r"}));
        let ids: Vec<Value> = [
            next(&mut seen).await,
            next(&mut seen).await,
            next(&mut seen).await,
        ]
        .iter()
        .map(|s| s.alert()["id"].clone())
        .collect();
        // The first alert's retry comes before the second alert.
        assert_eq!(ids, [json!(1), json!(1), json!(2)]);
        nothing_more(&mut seen).await;
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing listens there; on this single-threaded runtime the task does not run
        // before the test yields, so the queue only fills.
        let webhook = start(&dir, "http://127.0.0.1:9/alerts", 1);
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let started = Instant::now();
        metrics::with_local_recorder(&recorder, || {
            for i in 0..=QUEUE_CAPACITY {
                webhook.send(json!({"id": i, "rule": "r"}));
            }
        });
        assert!(started.elapsed() < Duration::from_secs(2), "send waited");
        let rendered = recorder.handle().render();
        assert!(
            rendered.contains(r#"portcullis_alert_webhook_deliveries_total{outcome="dropped"} 1"#),
            "{rendered}"
        );
    }

    /// A node stopping while alerts wait (the receiver down, one alert between retries, one
    /// queued): its runtime drops the task, and both are counted as dropped.
    #[test]
    fn alerts_still_waiting_when_the_node_stops_are_counted_as_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let webhook = start(&dir, "http://127.0.0.1:9/alerts", 8);
                webhook.send(json!({"id": "a-1", "rule": "r"}));
                webhook.send(json!({"id": "a-2", "rule": "r"}));
                // The first attempt fails at once (nothing listens); the task then waits.
                tokio::time::sleep(Duration::from_millis(100)).await;
                drop(webhook);
            });
            drop(runtime);
        });
        let rendered = handle.render();
        assert!(
            rendered.contains(r#"portcullis_alert_webhook_deliveries_total{outcome="dropped"} 2"#),
            "{rendered}"
        );
    }

    #[tokio::test]
    async fn secret_file_problems_name_the_file_not_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let url = "http://127.0.0.1:9/alerts";

        let short = secret_file(&dir, b"too-short-secret\n", 0o600);
        let err = AlertWebhook::start(&config(url, short.clone())).unwrap_err();
        assert!(err.contains(&short.display().to_string()), "{err}");
        assert!(err.contains("at least 32 bytes"), "{err}");
        assert!(!err.contains("too-short-secret"), "{err}");

        let missing = dir.path().join("missing.secret");
        let err = AlertWebhook::start(&config(url, missing.clone())).unwrap_err();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        assert!(err.contains("cannot be read"), "{err}");

        #[cfg(unix)]
        {
            let content = b"world-readable-secret-0123456789abcdef";
            let open = secret_file(&dir, content, 0o644);
            let err = AlertWebhook::start(&config(url, open.clone())).unwrap_err();
            assert!(err.contains(&open.display().to_string()), "{err}");
            assert!(err.contains("accessible to all users"), "{err}");
            assert!(!err.contains("world-readable-secret"), "{err}");
        }

        // 32 bytes and a CRLF, owner-only: accepted.
        let mut exact = SECRET.to_vec();
        exact.extend_from_slice(b"\r\n");
        let ok = secret_file(&dir, &exact, 0o640);
        assert!(AlertWebhook::start(&config(url, ok)).is_ok());
        assert_eq!(
            read_secret(&secret_file(&dir, &exact, 0o600))
                .unwrap()
                .as_slice(),
            SECRET
        );
    }

    #[tokio::test]
    async fn bad_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = secret_file(&dir, SECRET, 0o600);
        for url in ["ftp://example.com/x", "example.com/alerts", "http://"] {
            let err = AlertWebhook::start(&config(url, path.clone())).unwrap_err();
            assert!(err.contains("alerts.webhook.url"), "{url}: {err}");
        }
        let mut zero = config("https://example.com/alerts", path.clone());
        zero.max_attempts = 0;
        assert!(AlertWebhook::start(&zero)
            .unwrap_err()
            .contains("max_attempts"));
        let mut zero = config("https://example.com/alerts", path);
        zero.timeout_secs = 0;
        assert!(AlertWebhook::start(&zero)
            .unwrap_err()
            .contains("timeout_secs"));
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c: WebhookConfig =
            toml::from_str("url = \"https://example.com/a\"\nsecret_file = \"/etc/s\"\n").unwrap();
        assert_eq!((c.max_attempts, c.timeout_secs), (8, 10));
        let c: WebhookConfig = toml::from_str(
            "url = \"https://example.com/a\"\nsecret_file = \"/etc/s\"\nmax_attempts = 2\ntimeout_secs = 3\n",
        )
        .unwrap();
        assert_eq!((c.max_attempts, c.timeout_secs), (2, 3));
        assert!(toml::from_str::<WebhookConfig>(
            "url = \"https://example.com/a\"\nsecret_file = \"/etc/s\"\nsecret = \"x\"\n"
        )
        .is_err());
    }

    #[test]
    fn retry_after_and_alert_id_parsing() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("3600"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(
            header_alert_id(&json!({"id": "a-1"})).as_deref(),
            Some("a-1")
        );
        assert_eq!(header_alert_id(&json!({"id": 7})).as_deref(), Some("7"));
        assert_eq!(header_alert_id(&json!({"id": "a\r\nX-Evil: 1"})), None);
        assert_eq!(header_alert_id(&json!({"id": ""})), None);
        assert_eq!(header_alert_id(&json!({"rule": "r"})), None);
    }
}
