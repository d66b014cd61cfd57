//! Changes made by any node, announced to every node so in-process caches stay coherent
//! (issue #5: a revocation or client disable on one node honoured by the others within
//! 500 ms). Single-node backends have no feed: their caches are the only ones.

use portcullis_core::device::DeviceId;
use portcullis_core::ClientId;
use tokio::sync::mpsc;

/// One change another node (or this one) committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A client was updated or deleted: drop it from the client cache.
    Client(ClientId),
    /// An access token was revoked: add its `jti` to the revocation set.
    Revocation(String),
    /// A signing key changed state.
    Key(String),
    /// A device was registered, updated or enrolled: drop it from the device cache.
    Device(DeviceId),
    /// A command was queued for this device: wake its connection or long poll, wherever it is.
    Commands(DeviceId),
    /// Devices were registered in bulk (`device:*`): flush the device cache, which may hold
    /// some of their ids as unknown.
    AllDevices,
    /// A certificate was revoked: refresh its OCSP answer and the CRL.
    Certificate(String),
    /// A setting was written (e.g. another node published the CRL): reload copies of it.
    Setting(String),
    /// Changes may have been missed (the feed reconnected, or a payload was too long to
    /// name one object): flush every cache and reload.
    Everything,
}

impl Change {
    /// Parses a `<kind>:<id>` payload; `device:*` means [`Change::AllDevices`]; any other
    /// `<kind>:*` and anything unknown mean [`Change::Everything`].
    pub fn parse(payload: &str) -> Change {
        match payload.split_once(':') {
            Some(("device", "*")) => Change::AllDevices,
            Some((_, "*")) | None => Change::Everything,
            Some(("client", id)) => ClientId::parse(id).map_or(Change::Everything, Change::Client),
            Some(("revocation", jti)) => Change::Revocation(jti.to_owned()),
            Some(("key", kid)) => Change::Key(kid.to_owned()),
            Some(("device", id)) => DeviceId::parse(id).map_or(Change::AllDevices, Change::Device),
            Some(("command", id)) => {
                DeviceId::parse(id).map_or(Change::Everything, Change::Commands)
            }
            Some(("cert", serial)) => Change::Certificate(serial.to_owned()),
            Some(("setting", name)) => Change::Setting(name.to_owned()),
            Some(_) => Change::Everything,
        }
    }
}

/// The receiving end of a backend's change notifications.
pub type ChangeFeed = mpsc::Receiver<Change>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_one_object_or_flush_everything() {
        assert_eq!(
            Change::parse("client:c-1"),
            Change::Client(ClientId::parse("c-1").unwrap())
        );
        assert_eq!(
            Change::parse("revocation:abc"),
            Change::Revocation("abc".into())
        );
        assert_eq!(Change::parse("key:k1"), Change::Key("k1".into()));
        assert_eq!(
            Change::parse("setting:pki.crl"),
            Change::Setting("pki.crl".into())
        );
        assert_eq!(
            Change::parse("device:meter-1"),
            Change::Device(DeviceId::parse("meter-1").unwrap())
        );
        assert_eq!(
            Change::parse("command:valve-7"),
            Change::Commands(DeviceId::parse("valve-7").unwrap())
        );
        for devices in ["device:*", "device:bad id"] {
            assert_eq!(Change::parse(devices), Change::AllDevices, "{devices:?}");
        }
        for flush in [
            "client:*",
            "revocation:*",
            "nonsense",
            "client:bad id",
            "other:x",
            "",
        ] {
            assert_eq!(Change::parse(flush), Change::Everything, "{flush:?}");
        }
    }
}
