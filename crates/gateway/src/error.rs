//! One error enum for the gateway, mapped to each transport's own refusal at its edge
//! (problem+json statuses for HTTP, CONNACK / PUBACK reason codes for MQTT).
//!
//! Every variant carries a short internal reason (`&'static str`, fit for a metrics label
//! and the audit log). What a device is told is only the variant's public detail: which
//! check failed is for the operator, not for whoever holds a stolen or forged credential.

use portcullis_ports::PortError;
use portcullis_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The message or credential does not parse (bad CBOR, bad COSE structure, bad JWT).
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// The credential or the message's authentication does not verify: wrong key, unknown
    /// key, expired or future token, wrong audience, unknown device.
    #[error("not authenticated: {0}")]
    Unauthenticated(&'static str),
    /// Authenticated, but not allowed: the device is not active, the stream or topic is
    /// not its own, unauthenticated messages are not allowed by its policy.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The message's counter is not above the last one accepted for its device, or its
    /// timestamp is outside the window.
    #[error("replay: {0}")]
    Replay(&'static str),
    /// The message exceeds `[gateway] max_message_bytes`.
    #[error("message too large")]
    TooLarge,
    /// The body's media type is not one the gateway takes.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// Too many requests from this source or device.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// The sink (or the replay guard's store) cannot take the message now; nothing was
    /// acknowledged, the device may retry.
    #[error("sink unavailable: {0}")]
    Unavailable(String),
    /// A defect or an unexpected failure; logged, answered as a generic server error.
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// A short, stable label: the `outcome` of `portcullis_gateway_messages_total` and the
    /// reason written to the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(r)
            | Self::Unauthenticated(r)
            | Self::Forbidden(r)
            | Self::Replay(r) => r,
            Self::TooLarge => "too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// Whether the device should try the same message again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable(_))
    }
}

impl From<StoreError> for GatewayError {
    fn from(e: StoreError) -> Self {
        // Store failures are transient from the device's side: nothing was accepted.
        Self::Unavailable(e.to_string())
    }
}

impl From<PortError> for GatewayError {
    fn from(e: PortError) -> Self {
        match e {
            PortError::NotFound(_) => Self::Unauthenticated("unknown_device"),
            PortError::Store(s) => Self::Unavailable(s.to_string()),
            PortError::AuditUnavailable => Self::Unavailable("audit log unavailable".into()),
            other => Self::Internal(other.to_string()),
        }
    }
}
