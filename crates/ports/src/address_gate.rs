//! Addresses refused for a while: attack detection's `block` action. The server keeps the
//! list (one store setting, every node); each transport asks before it spends any work on a
//! request or a connection — HTTP in a middleware, MQTT at `accept`.

use std::net::IpAddr;

/// Counter: requests and connections refused because their source is blocked.
pub const BLOCKED_METRIC: &str = "portcullis_blocked_requests_total";

/// Whether an address is blocked now.
pub trait AddressGate: Send + Sync {
    fn is_blocked(&self, address: IpAddr) -> bool;
}
