//! Where the gateway learns about devices: the device registry (a port, implemented by the
//! PKI) for state, keys and certificates, and a certificate check (a port of the gateway's
//! own, implemented by the server over the PKI's chain validation) for connections that
//! present one. Credentials are cached per device and dropped when the registry announces a
//! change to the device, so a suspension or a key rotation applies to the next message.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;
use portcullis_core::device::{DeviceId, DeviceState};
use portcullis_core::UnixTime;
use portcullis_keys::verify::VerifyingKey;
use portcullis_keys::Algorithm;
use portcullis_ports::DeviceRegistry;
use portcullis_store::CertificateFilter;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::credentials::{CertificateKey, DeviceCredentials, MessageAuth, SymmetricKey};
use crate::GatewayError;

/// A client certificate that our CA issued, is current and unrevoked now.
#[derive(Debug, Clone)]
pub struct ValidCertificate {
    pub device_id: DeviceId,
    pub serial: String,
    pub not_after: UnixTime,
}

/// A certificate refused, and the device it was issued to when that is known for sure: a
/// certificate our CA issued that is revoked (the TLS handshake proved its key is held), so
/// attack detection counts a revoked device still trying.
#[derive(Debug)]
pub struct CertificateRefusal {
    pub error: GatewayError,
    pub revoked_device: Option<DeviceId>,
}

/// Checks a certificate chain a device presented on a TLS connection.
#[async_trait]
pub trait CertificateCheck: Send + Sync {
    /// `Unauthenticated` unless our issuing CA issued the leaf, it is valid at `now`, names a
    /// device, and the store says it is not revoked (read now, never a cached CRL).
    async fn validate(
        &self,
        chain: &[Vec<u8>],
        now: UnixTime,
    ) -> Result<ValidCertificate, CertificateRefusal>;
}

/// Per-model and per-device message-authentication policy: a device attribute
/// `message_auth` wins over its model's entry, which wins over the default (required for a
/// device with a symmetric key, optional otherwise).
#[derive(Debug, Clone, Default)]
pub struct MessagePolicy {
    pub models: BTreeMap<String, MessageAuth>,
}

/// The algorithms a certificate key may sign device tokens and COSE messages with.
const CERTIFICATE_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::PS256,
];

/// Devices' credentials, cached.
pub struct Directory {
    registry: Arc<dyn DeviceRegistry>,
    policy: MessagePolicy,
    cache: Cache<DeviceId, Option<Arc<DeviceCredentials>>>,
    /// Moves after every change the directory is told of (see [`Self::generation`]).
    generation: AtomicU64,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("cached", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl Directory {
    pub fn new(registry: Arc<dyn DeviceRegistry>, policy: MessagePolicy, capacity: u64) -> Self {
        Self {
            registry,
            policy,
            // The change feed drops entries at once; the TTL only bounds how long a copy
            // lives if a notification is ever lost.
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(300))
                .build(),
            generation: AtomicU64::new(0),
        }
    }

    pub fn registry(&self) -> &Arc<dyn DeviceRegistry> {
        &self.registry
    }

    /// The device's credentials; `None` for a device that is not registered. Concurrent
    /// misses for one device load it once.
    pub async fn credentials(
        &self,
        id: &DeviceId,
    ) -> Result<Option<Arc<DeviceCredentials>>, GatewayError> {
        self.cache
            .try_get_with(id.clone(), self.load(id))
            .await
            .map_err(|e: Arc<GatewayError>| match &*e {
                GatewayError::Unavailable(m) => GatewayError::Unavailable(m.clone()),
                other => GatewayError::Internal(other.to_string()),
            })
    }

    /// Forgets the device's cached credentials (its state, keys or certificates changed).
    pub async fn forget(&self, id: &DeviceId) {
        self.cache.invalidate(id).await;
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn forget_all(&self) {
        self.cache.invalidate_all();
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// A number that moves after every change (it moves once the cached copy is gone, so
    /// credentials read after seeing a generation are at least as new as it): a session's
    /// copy taken at the current generation is current (`credentials_memo`).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    async fn load(&self, id: &DeviceId) -> Result<Option<Arc<DeviceCredentials>>, GatewayError> {
        let device = match self.registry.device(id).await {
            Ok(device) => device,
            Err(portcullis_ports::PortError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let active = matches!(
            device.state,
            DeviceState::Registered | DeviceState::Enrolled
        );
        // Loaded whatever the state: a message that comes alone is verified before the state
        // is judged, so that refusing an inactive device names one that really signed. Every
        // caller admits only `active` credentials.
        let mut keys = Vec::new();
        let mut certificates = Vec::new();
        for material in self.registry.device_key_material(id).await? {
            keys.push(SymmetricKey {
                key_id: material.info.key_id.to_string(),
                key: material.key,
                not_after: material.info.expires_at,
            });
        }
        let filter = CertificateFilter {
            device_id: Some(id.clone()),
            revoked: Some(false),
            ..CertificateFilter::default()
        };
        for cert in self.registry.certificates(&filter, 16).await? {
            match certificate_key(&cert.der, &cert.serial, cert.not_after) {
                Ok(key) => certificates.push(key),
                Err(reason) => {
                    tracing::warn!(device = %id, serial = %cert.serial, reason,
                        "a device certificate's key cannot verify device messages")
                }
            }
        }
        let message_auth = device
            .attrs
            .get("message_auth")
            .and_then(|v| MessageAuth::parse(v))
            .or_else(|| {
                device
                    .model
                    .as_ref()
                    .and_then(|m| self.policy.models.get(m).copied())
            })
            .unwrap_or(if keys.is_empty() {
                MessageAuth::Optional
            } else {
                MessageAuth::Required
            });
        Ok(Some(Arc::new(DeviceCredentials {
            device_id: id.clone(),
            model: device.model.clone(),
            active,
            message_auth,
            keys,
            certificates,
        })))
    }
}

/// The verifying keys of an issued certificate's subject public key.
fn certificate_key(
    der: &[u8],
    serial: &str,
    not_after: UnixTime,
) -> Result<CertificateKey, &'static str> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| "certificate does not parse")?;
    let spki = cert.tbs_certificate.subject_pki.raw;
    let verifiers = VerifyingKey::from_spki_der(spki, &CERTIFICATE_ALGORITHMS)
        .map_err(|_| "unsupported key type")?;
    Ok(CertificateKey {
        serial: serial.to_ascii_lowercase(),
        verifiers,
        not_after,
    })
}
