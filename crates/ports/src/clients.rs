//! The client registry: what the admin API needs of the authorization server to manage the
//! clients the token endpoint authenticates. The rules about secrets (drawn at random, stored
//! only as an HMAC under the pepper, sealed under the master key for `client_secret_jwt`) and
//! about keys (checked against the assertion algorithms the token endpoint accepts) stay with
//! the implementation in `oauth`, which holds the pepper and the master key; callers never see
//! either.

use async_trait::async_trait;
use portcullis_core::client::{AuthMethod, Client};
use portcullis_core::{ClientId, Secret, UnixTime};

use crate::PortError;

/// A rotated client secret, shown once.
#[derive(Debug)]
pub struct RotatedSecret {
    /// The client as stored after the rotation.
    pub client: Client,
    /// The new secret.
    pub secret: Secret,
    /// When the previous secret stops working (now, for `client_secret_jwt` clients).
    pub old_secret_expires_at: UnixTime,
}

/// Registration and management of OAuth clients. Every write is visible to the token endpoint
/// of this node at once (its cached copy is dropped) and to other nodes through the store's
/// change feed.
#[async_trait]
pub trait ClientRegistry: Send + Sync {
    /// The registry's clock (tests inject their own).
    fn now(&self) -> UnixTime;
    /// Checks a JWK Set for a client authenticating with `method` and returns the text to
    /// store: public keys the token endpoint accepts for `private_key_jwt`, `x5c`
    /// certificates for `self_signed_tls_client_auth` (RFC 8705 §2.2).
    fn check_jwks(&self, method: AuthMethod, jwks: &serde_json::Value)
        -> Result<String, PortError>;
    /// Up to `limit` clients ordered by id, after `after`.
    async fn clients(&self, after: Option<&ClientId>, limit: u32)
        -> Result<Vec<Client>, PortError>;
    /// The client as stored.
    async fn client(&self, id: &ClientId) -> Result<Client, PortError>;
    /// Stores a new client. A client whose method uses a secret gets a fresh one, returned
    /// here and never again; any hashes or sealed secret on `client` are replaced.
    async fn register(&self, client: Client) -> Result<(Client, Option<Secret>), PortError>;
    /// Replaces a client's settings (not its secret: see [`Self::rotate_secret`]).
    async fn update(&self, client: &Client) -> Result<(), PortError>;
    /// Deletes a client.
    async fn delete(&self, id: &ClientId) -> Result<(), PortError>;
    /// Draws a new secret; the previous ones keep working for `overlap_secs` at most.
    async fn rotate_secret(
        &self,
        id: &ClientId,
        overlap_secs: u32,
    ) -> Result<RotatedSecret, PortError>;
}
