//! The ports between Portcullis's protocol crates.
//!
//! `admin`, `oauth`, `pki` and the coming `gateway` never import each other: what one needs
//! of another is a narrow trait here, below all of them, in the style of rustls's
//! `crypto::CryptoProvider`. The crate that owns the logic implements the trait (`oauth`
//! implements [`ClientRegistry`] and [`TokenValidator`], `pki` implements
//! [`DeviceRegistry`]); `server` hands the implementations to the crates that use them as
//! `Arc<dyn ...>`. Nothing here does I/O of its own.

mod address_gate;
mod clients;
mod device_clients;
mod devices;
mod error;
mod tokens;

pub use address_gate::{AddressGate, BLOCKED_METRIC};
pub use clients::{ClientRegistry, RotatedSecret};
pub use device_clients::DeviceClients;
pub use devices::{CaCertificates, DeviceKeyMaterial, DeviceRegistry, ImportOutcome, NewDevice};
pub use error::PortError;
pub use tokens::{DpopPresentation, Presentation, TokenRejection, TokenValidator};
