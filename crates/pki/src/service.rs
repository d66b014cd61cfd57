//! The PKI as the endpoints, the admin API and the CLI use it: one [`Pki`] per node holding
//! the CA, the store, the trust anchors and the publishers. Device registry operations live
//! in `registry.rs`, symmetric device keys in `device_keys.rs`, enrollment in `enroll.rs`,
//! revocation in `revoke.rs`.

use portcullis_core::audit::{AuditAction, Outcome};
use std::sync::Arc;

use portcullis_audit::AuditLog;
use portcullis_core::audit::AuditEvent;
use portcullis_core::device::DeviceId;
use portcullis_keys::software::MasterKey;
use portcullis_store::{DeviceCache, Store};
use tokio::sync::broadcast;
use zeroize::Zeroizing;

use crate::ca::CertificateAuthority;
use crate::chain::TrustAnchor;
use crate::crl::CrlPublisher;

/// Called with a serial whenever this node revokes a certificate (the OCSP responder drops and
/// re-signs its answer; other nodes learn through the store's change feed).
pub type CertificateHook = Arc<dyn Fn(&str) + Send + Sync>;

pub struct Pki {
    pub ca: Arc<CertificateAuthority>,
    pub store: Arc<dyn Store>,
    pub audit: AuditLog,
    pub crl: Arc<CrlPublisher>,
    /// The server pepper enrollment secrets are HMACed under (as client secrets are).
    pub(crate) pepper: Zeroizing<Vec<u8>>,
    /// The master key device keys are sealed under (as `client_secret_jwt` secrets are).
    pub(crate) master: Arc<MasterKey>,
    pub(crate) issuing_anchor: TrustAnchor,
    /// Manufacturer CAs whose certificates (IDevIDs) may authenticate a first enrollment.
    pub(crate) manufacturers: Vec<TrustAnchor>,
    pub(crate) on_revoke: Vec<CertificateHook>,
    pub(crate) clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// Devices as enrollment (and the gateway) read them; invalidated by every write here and,
    /// for other nodes' writes, by the server's change feed (`Pki::device_changed`).
    pub(crate) devices: Arc<DeviceCache>,
    /// Group commit of enrollments.
    pub(crate) enrollments: crate::enrollment_writer::EnrollmentWriter,
    /// Per-address rate and failure lock-out of the EST endpoints.
    pub limits: portcullis_http::AbuseLimits,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

/// Devices kept in memory by default (`[store] device_cache_entries`).
pub const DEFAULT_DEVICE_CACHE_ENTRIES: u64 = 100_000;

/// How long a CRL is valid; regenerated at half of it, and at once on any revocation.
pub const DEFAULT_CRL_VALIDITY_SECS: i64 = 24 * 3600;

impl Pki {
    /// Builds the PKI service, caching up to `device_cache_entries` devices; starts its
    /// enrollment writer on the current tokio runtime. `pepper` HMACs enrollment secrets,
    /// `master` seals device keys.
    pub fn new(
        ca: Arc<CertificateAuthority>,
        store: Arc<dyn Store>,
        audit: AuditLog,
        pepper: Zeroizing<Vec<u8>>,
        master: Arc<MasterKey>,
        crl_validity_secs: i64,
        device_cache_entries: u64,
    ) -> Result<Pki, crate::PkiError> {
        let issuing_anchor = TrustAnchor::new(ca.issuing_der().to_vec())?;
        let crl = Arc::new(CrlPublisher::new(
            ca.clone(),
            store.clone(),
            crl_validity_secs,
        ));
        let devices = Arc::new(DeviceCache::new(device_cache_entries));
        let enrollments =
            crate::enrollment_writer::EnrollmentWriter::start(store.clone(), devices.clone());
        Ok(Pki {
            ca,
            store,
            audit,
            crl,
            pepper,
            master,
            limits: portcullis_http::AbuseLimits::new(
                0,
                0,
                portcullis_http::abuse::DEFAULT_MAX_AUTH_FAILURES,
            ),
            issuing_anchor,
            manufacturers: Vec::new(),
            on_revoke: Vec::new(),
            devices,
            enrollments,
            clock: Arc::new(crate::clock::unix_now),
        })
    }

    /// Trusts these manufacturer CA certificates (DER) for IDevID enrollment.
    pub fn with_manufacturer_cas(mut self, cas: Vec<Vec<u8>>) -> Result<Pki, crate::PkiError> {
        for der in cas {
            self.manufacturers.push(TrustAnchor::new(der)?);
        }
        Ok(self)
    }

    pub fn with_revocation_hook(mut self, hook: CertificateHook) -> Pki {
        self.on_revoke.push(hook);
        self
    }

    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Pki {
        self.clock = Arc::new(clock);
        self
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// The trust anchor of certificates this CA issued.
    pub fn issuing_anchor(&self) -> &TrustAnchor {
        &self.issuing_anchor
    }

    /// Tells every listener that `serial` changed and marks the CRL stale. Also called by the
    /// server for revocations other nodes made.
    pub fn certificate_changed(&self, serial: &str) {
        self.crl.mark_stale();
        for hook in &self.on_revoke {
            hook(serial);
        }
    }

    /// A certificate revoked on another node: besides [`Self::certificate_changed`], its
    /// device is announced, so credentials built from the certificate (the gateway's) go.
    pub async fn certificate_revoked_elsewhere(&self, serial: &str) {
        self.certificate_changed(serial);
        match self.store.get_certificate(serial).await {
            Ok(Some(cert)) => {
                if let Some(device) = &cert.device_id {
                    self.devices.invalidate(device);
                }
            }
            Ok(None) => {}
            // Unknown now: every device is checked again rather than one missed.
            Err(_) => self.devices.invalidate_all(),
        }
    }

    /// Forgets this node's cached copy of device `id`. Called by the server for changes other
    /// nodes made (this node's own writes invalidate as they go).
    pub fn device_changed(&self, id: &DeviceId) {
        self.devices.invalidate(id);
    }

    /// Every device change from now on, this node's own writes (state, keys, enrollment) and
    /// other nodes' through [`Pki::device_changed`] alike: `Some(id)` for one device, `None`
    /// for all (see [`portcullis_store::KeyedCache::subscribe`]).
    pub fn watch_devices(&self) -> broadcast::Receiver<Option<DeviceId>> {
        self.devices.subscribe()
    }

    /// The EST endpoints' per-address rate and failure lock-out (`[rate_limit]`).
    pub fn with_limits(mut self, limits: portcullis_http::AbuseLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Forgets every cached device (a bulk import elsewhere, a lost change feed).
    pub fn devices_changed(&self) {
        self.devices.invalidate_all();
    }

    fn event(
        &self,
        actor: &str,
        action: AuditAction,
        subject: &str,
        ok: bool,
        detail: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            at: self.now(),
            actor: actor.to_owned(),
            action: action.into(),
            subject: subject.to_owned(),
            outcome: Outcome::of(ok).into(),
            detail,
        }
    }

    /// Records an operator's change (registration, state change, revocation) before it is
    /// confirmed, in either audit mode: a crash must not lose it.
    pub(crate) async fn commit_audit(
        &self,
        actor: &str,
        action: AuditAction,
        subject: &str,
        detail: serde_json::Value,
    ) -> Result<(), crate::PkiError> {
        self.store_audit(true, self.event(actor, action, subject, true, detail))
            .await
    }

    /// Records an issued certificate as `[audit] mode` says.
    pub(crate) async fn record_audit(
        &self,
        actor: &str,
        action: AuditAction,
        subject: &str,
        detail: serde_json::Value,
    ) -> Result<(), crate::PkiError> {
        self.store_audit(false, self.event(actor, action, subject, true, detail))
            .await
    }

    async fn store_audit(&self, commit: bool, event: AuditEvent) -> Result<(), crate::PkiError> {
        let stored = if commit {
            self.audit.commit(event).await
        } else {
            self.audit.record(event).await
        };
        Ok(stored?)
    }

    /// Records a refused enrollment from `source`, summarised per source and window.
    pub(crate) fn audit_refusal(
        &self,
        source: std::net::IpAddr,
        action: AuditAction,
        detail: serde_json::Value,
    ) {
        let event = self.event("est", action, "-", false, detail);
        self.audit.record_refusal(source, event);
    }
}
