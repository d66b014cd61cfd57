//! Devices at the token endpoint (issue #12 item 5): a device that authenticates with its
//! certificate over TLS gets access tokens as itself, without being registered twice. The
//! authorization server asks this port for a client it does not have; the device PKI (wired by
//! the server) answers with the device as a `tls_client_auth` client.

use async_trait::async_trait;
use portcullis_core::client::Client;
use portcullis_core::ClientId;

use crate::PortError;

#[async_trait]
pub trait DeviceClients: Send + Sync {
    /// The device named `id` as an OAuth client: `tls_client_auth` recognised by its
    /// certificate's SAN URI `urn:portcullis:device:<id>`, the scopes of its model's policy,
    /// enabled only while the device is active, and a token epoch that changes whenever the
    /// device does (so a suspension ends its tokens at once). `None` if no such device.
    async fn device_client(&self, id: &ClientId) -> Result<Option<Client>, PortError>;
}
