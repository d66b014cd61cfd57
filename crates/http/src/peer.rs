//! What the TLS listener learned about the peer, handed to the protocol handlers as a request
//! extension.

use std::sync::Arc;

/// The certificate chain a client presented during the TLS handshake, leaf first, DER.
///
/// The listener accepts any certificate at the TLS layer (it checks only that the client
/// holds the key); what a certificate is worth is decided by the endpoint that reads this:
/// EST checks it against our CA or a manufacturer CA, the token endpoint per RFC 8705.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificates(pub Arc<Vec<Vec<u8>>>);

impl PeerCertificates {
    /// The client's own certificate.
    pub fn leaf(&self) -> Option<&[u8]> {
        self.0.first().map(Vec::as_slice)
    }
}
