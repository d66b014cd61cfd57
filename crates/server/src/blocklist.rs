//! Addresses blocked for a while by attack detection (a rule's `action = { block = SECS }`):
//! every HTTP request from one is answered 403 before any handler runs, and MQTT connections
//! from one are closed at `accept` (and ended if already open), on every node.
//!
//! The list is one store setting, `detection.blocked`: `{name: until}`, where a name is the
//! HMAC of the address under the detection naming key (a copied database shows no address),
//! replaced by compare-and-swap and announced to the other nodes by the change feed. Expired
//! entries are dropped at the next change. A request costs a lock-free emptiness check, plus
//! one HMAC while something is blocked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_store::{swap_setting, Store};
use zeroize::Zeroizing;

use crate::bootstrap::unix_now;

/// The store setting of the list.
pub const BLOCKED_SETTING: &str = "detection.blocked";
const CAS_ATTEMPTS: usize = 5;

/// This node's copy of the list.
pub struct Blocklist {
    store: Arc<dyn Store>,
    /// Names addresses (HMAC-SHA256 under the detection naming key).
    namer: aws_lc_rs::hmac::Key,
    entries: RwLock<HashMap<String, i64>>,
    /// Whether `entries` holds anything: the per-request check when nothing is blocked.
    any: AtomicBool,
    /// Bumped at every install.
    changed: tokio::sync::watch::Sender<()>,
}

impl Blocklist {
    /// An empty list over `store`; `secret` names addresses (the detection naming key).
    pub fn new(store: Arc<dyn Store>, secret: Zeroizing<Vec<u8>>) -> Arc<Self> {
        Arc::new(Self {
            store,
            namer: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
            entries: RwLock::new(HashMap::new()),
            any: AtomicBool::new(false),
            changed: tokio::sync::watch::Sender::new(()),
        })
    }

    fn name(&self, address: IpAddr) -> String {
        let tag =
            aws_lc_rs::hmac::sign(&self.namer, format!("blocked address {address}").as_bytes());
        portcullis_core::hex::encode(tag.as_ref())
    }

    /// Tells of every change of the list (this node's blocks and other nodes', reloaded), so
    /// that long-lived connections from a newly blocked address can be ended.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.changed.subscribe()
    }

    /// Whether requests from `address` are refused now.
    pub fn is_blocked(&self, address: IpAddr) -> bool {
        if !self.any.load(Ordering::Relaxed) {
            return false;
        }
        let name = self.name(address);
        let now = unix_now();
        match self.entries.read() {
            Ok(entries) => entries.get(&name).is_some_and(|until| *until > now),
            Err(_) => false,
        }
    }

    fn install(&self, entries: HashMap<String, i64>) {
        self.any.store(!entries.is_empty(), Ordering::Relaxed);
        match self.entries.write() {
            Ok(mut current) => *current = entries,
            Err(poisoned) => *poisoned.into_inner() = entries,
        }
        self.changed.send_replace(());
    }

    /// Re-reads the list (another node blocked an address).
    pub async fn reload(&self) -> Result<(), String> {
        let bytes = self
            .store
            .get_setting(BLOCKED_SETTING)
            .await
            .map_err(|e| e.to_string())?;
        let entries = match bytes {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| e.to_string())?,
            None => HashMap::new(),
        };
        self.install(entries);
        Ok(())
    }

    /// Blocks `address` for `secs` from now on every node; returns until when.
    pub async fn block(&self, address: IpAddr, secs: u64) -> Result<i64, String> {
        let now = unix_now();
        let until = now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX));
        let name = self.name(address);
        for _ in 0..CAS_ATTEMPTS {
            let current = self
                .store
                .get_setting(BLOCKED_SETTING)
                .await
                .map_err(|e| e.to_string())?;
            let mut entries: HashMap<String, i64> = match &current {
                Some(bytes) => serde_json::from_slice(bytes).map_err(|e| e.to_string())?,
                None => HashMap::new(),
            };
            entries.retain(|_, until| *until > now);
            let longer = entries.get(&name).map_or(until, |old| (*old).max(until));
            entries.insert(name.clone(), longer);
            let value = serde_json::to_vec(&entries).map_err(|e| e.to_string())?;
            let stored = swap_setting(
                self.store.as_ref(),
                BLOCKED_SETTING,
                current.as_deref(),
                &value,
            )
            .await
            .map_err(|e| e.to_string())?;
            if stored {
                self.install(entries);
                return Ok(longer);
            }
        }
        Err("the block list kept changing under this update; not blocked".into())
    }
}

/// Why a blocked address is refused, the same on every surface.
const BLOCKED_DETAIL: &str =
    "requests from this address are blocked for a while after an attack was detected";

/// The answer to a request from a blocked address, counted in `BLOCKED_METRIC`: 403 in the
/// error shape of the surface asked — an OAuth error (`access_denied`) on `/oauth2/`, an
/// RFC 9457 problem on the admin API, the gateway and the rest — so each client reads it as it
/// reads any other refusal. Checked before any handler runs, by [`crate::edge`].
pub fn refusal(path: &str) -> Response {
    metrics::counter!(BLOCKED_METRIC).increment(1);
    if !path.starts_with("/oauth2/") {
        return portcullis_http::problem::Problem::new(
            StatusCode::FORBIDDEN,
            "access-denied",
            "Access denied",
            BLOCKED_DETAIL.to_owned(),
        )
        .into_response();
    }
    let body = serde_json::json!({"error": "access_denied", "error_description": BLOCKED_DETAIL});
    let mut response = (StatusCode::FORBIDDEN, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub use portcullis_ports::BLOCKED_METRIC;

impl portcullis_ports::AddressGate for Blocklist {
    fn is_blocked(&self, address: IpAddr) -> bool {
        Blocklist::is_blocked(self, address)
    }
}
