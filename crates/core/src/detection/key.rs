//! What is counted (a [`SignalKey`]), what one event adds ([`Signal`]), and the keyed hashes
//! that name counters and incidents in the shared store without storing who they are about.

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::rule::{KeyKind, RuleKind};
use crate::UnixTime;

/// What a rule counts per.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKey {
    /// A client id (claimed, for refused requests; the admin's, for admin rules).
    Client(String),
    /// A source address, canonical (an IPv4-mapped IPv6 address is its IPv4 address).
    Address(IpAddr),
    /// A device id (as the device claimed it, for refusals).
    Device(String),
    /// A device seen from a source: `cloned_device` counts distinct sources per device.
    DeviceSource { device: String, source: IpAddr },
}

impl SignalKey {
    /// The address key of `ip`, canonical.
    pub fn address(ip: IpAddr) -> Self {
        Self::Address(ip.to_canonical())
    }

    /// What a firing names and an action acts on: the device of a `DeviceSource`, the key
    /// itself otherwise. Distinct counting counts the keys of one group.
    pub fn group(&self) -> SignalKey {
        match self {
            Self::DeviceSource { device, .. } => Self::Device(device.clone()),
            other => other.clone(),
        }
    }

    /// The kind of the key's group.
    pub fn kind(&self) -> KeyKind {
        match self {
            Self::Client(_) => KeyKind::Client,
            Self::Address(_) => KeyKind::Address,
            Self::Device(_) | Self::DeviceSource { .. } => KeyKind::Device,
        }
    }

    /// The key as the shared store names it: hex HMAC-SHA256 under `secret` (the same on
    /// every node) of its length-prefixed encoding. Client ids and addresses are not stored
    /// in the clear, and nobody without the secret can test a guess against a stored key.
    pub fn hashed(&self, secret: &[u8]) -> String {
        let mut enc = Encoder::new("key");
        self.encode(&mut enc);
        enc.hmac_hex(secret)
    }

    pub(super) fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::Client(id) => enc.put_str("client").put_str(id),
            Self::Address(ip) => enc.put_str("address").put_str(&ip.to_string()),
            Self::Device(id) => enc.put_str("device").put_str(id),
            Self::DeviceSource { device, source } => enc
                .put_str("device_source")
                .put_str(device)
                .put_str(&source.to_string()),
        };
    }
}

impl std::fmt::Display for SignalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Client(id) => write!(f, "client {id}"),
            Self::Address(ip) => write!(f, "address {ip}"),
            Self::Device(id) => write!(f, "device {id}"),
            Self::DeviceSource { device, source } => write!(f, "device {device} from {source}"),
        }
    }
}

/// What one event counts toward: `weight` more for `rule`'s counter of `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signal {
    pub rule: RuleKind,
    pub key: SignalKey,
    pub weight: u64,
}

impl Signal {
    pub fn new(rule: RuleKind, key: SignalKey) -> Self {
        Self {
            rule,
            key,
            weight: 1,
        }
    }
}

/// The shared store's name for `rule`'s counter of `key` (its buckets are told apart by
/// their start): hex HMAC-SHA256 under `secret`.
pub fn counter_key(rule: RuleKind, key: &SignalKey, secret: &[u8]) -> String {
    let mut enc = Encoder::new("counter");
    enc.put_str(rule.as_str());
    key.encode(&mut enc);
    enc.hmac_hex(secret)
}

/// Length-prefixed fields under a purpose and version tag, so no two different inputs (a
/// counter and an incident, `("ab", "c")` and `("a", "bc")`) encode alike.
pub(super) struct Encoder(Vec<u8>);

impl Encoder {
    pub(super) fn new(purpose: &str) -> Self {
        let mut enc = Self(Vec::with_capacity(128));
        enc.put_str("portcullis.detection.v1").put_str(purpose);
        enc
    }

    pub(super) fn put_str(&mut self, field: &str) -> &mut Self {
        let len = u64::try_from(field.len()).unwrap_or(u64::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(field.as_bytes());
        self
    }

    pub(super) fn put_time(&mut self, t: UnixTime) -> &mut Self {
        self.0.extend_from_slice(&8u64.to_be_bytes());
        self.0.extend_from_slice(&t.to_be_bytes());
        self
    }

    pub(super) fn hmac_hex(&self, secret: &[u8]) -> String {
        // HMAC accepts keys of any length, so new_from_slice cannot fail.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        mac.update(&self.0);
        crate::hex::encode(&mac.finalize().into_bytes())
    }
}
