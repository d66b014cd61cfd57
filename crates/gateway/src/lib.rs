//! The device gateway: the receiving side of Portcullis (issue #12).
//!
//! The shape is Eclipse Hono's: one verification core, thin transport adapters in front of
//! it and sinks behind it. A device is admitted by its certificate, a JWT it signed itself
//! (`device_token`) or an access token; each message may — and by policy must — be a COSE
//! object (`cose`) that names the device and carries a timestamp and a counter, so a message
//! relayed through an untrusted hop is still attributable to one device and one moment.
//! Replays are refused on every node (`replay`); accepted messages go to a sink (`sink`),
//! both through one group-committed pipeline (`ingest`).

pub mod broker_auth;
pub mod commands;
pub mod cose;
pub mod counters_behind;
pub mod credentials;
mod credentials_memo;
pub mod device_settings;
pub mod device_token;
pub mod directory;
pub mod error;
pub mod http;
mod ingest;
pub mod mqtt;
mod records;
pub mod replay;
pub mod service;
pub mod session;
pub mod signed;
pub mod sink;
pub mod trust_http;
pub mod updates;

pub use credentials::{
    CertificateKey, CredentialMethod, DeviceCredentials, MessageAuth, SymmetricKey,
};
pub use directory::{CertificateCheck, CertificateRefusal, MessagePolicy, ValidCertificate};
pub use error::GatewayError;
pub use service::{
    Accepted, ConnectCredential, Destination, Gateway, GatewayConfig, GatewayLimits, GatewayParts,
};
pub use session::{Admitted, CloseReason, Session, Transport};
