//! [`OcspResponder`]: from a decoded request to the DER answer.
//!
//! 1. Every CertID must name our issuing CA: its `issuerNameHash` and `issuerKeyHash` must be
//!    the hashes of our subject name and public key under the CertID's algorithm. Otherwise
//!    the answer is `unauthorized` (RFC 6960 §2.3): we are not authoritative for it.
//! 2. One CertID and no nonce (the RFC 5019 profile, what nearly every client sends) is
//!    answered from the pre-signed cache when its response is less than half-way to its
//!    nextUpdate; otherwise the status is looked up, signed, and cached for the next caller.
//! 3. Anything else (a nonce, which makes the answer unique, or several CertIDs) is looked up
//!    and signed afresh.
//!
//! `unknown` answers are signed every time and never cached: a serial unknown here may be
//! issued a moment later on another node (issuance announces nothing on the change feed),
//! and caching guesses would let anyone fill the cache with random serials.
//!
//! Answers that cannot come from the cache (a nonce, several CertIDs, a serial with nothing
//! cached — an unknown one) cost a store lookup and a signature each that anyone can demand
//! at will, so they share a budget, spent before the lookup
//! ([`OcspConfig::fresh_signatures_per_sec`]); past it the answer is `tryLater` (§2.3), which
//! clients retry, while cached answers for real certificates are never throttled.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use der::Encode;
use portcullis_core::UnixTime;
use portcullis_store::Store;
use x509_ocsp::OcspResponseStatus;
use x509_parser::prelude::FromDer as _;

use super::cache::{CachedResponse, ResponseCache};
use super::request::{parse_request, HashAlgorithm, OcspRequestInfo, RequestedCert};
use super::response;
use super::status::{CertificateStatus, CertificateStatusSource, StoreStatusSource};
use crate::{CaKey, PkiError};

/// Tunables of the responder.
#[derive(Debug, Clone)]
pub struct OcspConfig {
    /// nextUpdate − thisUpdate. Bounds how long a relying party may trust a `good` answer
    /// after a revocation (RFC 5019 §6.2 caching ties to it too). Cached responses are
    /// re-signed once half of it has passed, so a served response always has at least half
    /// of it left.
    pub validity: Duration,
    /// At most this many serials keep pre-signed responses (about 0.5 KiB each with an
    /// ECDSA P-256 CA, so the default bounds the cache near 500 MiB at worst).
    pub cache_capacity: u64,
    /// The CertID hash algorithms [`OcspResponder::presign`] signs for; both are sent with
    /// NULL parameters, as OpenSSL, Go and Bouncy Castle encode them.
    pub presign_hashes: Vec<HashAlgorithm>,
    /// Answers signed on demand that cannot be cached (nonce, several CertIDs, unknown
    /// serial) per second, across all clients, with a burst of as many; `0` is unlimited.
    /// One signature costs ~35 µs of a core (27 800/s on two cores with ES256), so the
    /// default keeps such traffic to about a fifth of a two-core node.
    pub fresh_signatures_per_sec: u32,
}

/// Default of [`OcspConfig::fresh_signatures_per_sec`].
pub const DEFAULT_FRESH_SIGNATURES_PER_SEC: u32 = 5_000;

impl Default for OcspConfig {
    fn default() -> Self {
        Self {
            validity: Duration::from_secs(3600),
            cache_capacity: 1_000_000,
            presign_hashes: vec![HashAlgorithm::Sha1, HashAlgorithm::Sha256],
            fresh_signatures_per_sec: DEFAULT_FRESH_SIGNATURES_PER_SEC,
        }
    }
}

/// An answer, ready for HTTP.
#[derive(Debug, Clone)]
pub struct OcspReply {
    /// The DER `OCSPResponse`.
    pub der: Bytes,
    pub status: OcspResponseStatus,
    /// `(thisUpdate, nextUpdate)` when HTTP caches may keep the answer (no nonce, every
    /// status known; RFC 5019 §6.2); `None` for errors, nonce answers and `unknown`.
    pub cache_window: Option<(UnixTime, UnixTime)>,
    /// Whether it came from the pre-signed cache.
    pub cached: bool,
}

/// The issuer's name and key hashed under one algorithm (the CertID's issuer fields).
#[derive(Debug, Clone)]
struct IssuerHashes {
    algorithm: HashAlgorithm,
    name: Vec<u8>,
    key: Vec<u8>,
}

type Clock = Arc<dyn Fn() -> UnixTime + Send + Sync>;

/// The OCSP responder of the issuing CA. Cheap to share (`Arc`); every method takes `&self`.
pub struct OcspResponder {
    ca_key: CaKey,
    issuer: Vec<IssuerHashes>,
    /// SHA-1 of the CA's subjectPublicKey bits: the `responderID` (§4.2.2.3).
    responder_key_hash: Vec<u8>,
    source: Arc<dyn CertificateStatusSource>,
    cache: ResponseCache,
    validity: i64,
    presign_hashes: Vec<HashAlgorithm>,
    /// The budget of uncacheable signatures; `None` when unlimited.
    fresh_budget: Option<governor::DefaultDirectRateLimiter>,
    clock: Clock,
}

impl std::fmt::Debug for OcspResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcspResponder")
            .field("source", &self.source)
            .field("cache", &self.cache)
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

fn count(status: &'static str, cached: bool) {
    metrics::counter!(
        "portcullis_ocsp_responses_total",
        "status" => status,
        "cached" => if cached { "true" } else { "false" }
    )
    .increment(1);
}

impl OcspResponder {
    /// A responder for the CA whose certificate is `issuer_cert_der` and key `ca_key`, with
    /// statuses from `source`. Fails if the certificate does not parse or its public key is
    /// not `ca_key`'s (responses would then verify against no certificate).
    pub fn new(
        ca_key: CaKey,
        issuer_cert_der: &[u8],
        source: Arc<dyn CertificateStatusSource>,
        config: OcspConfig,
    ) -> Result<Self, PkiError> {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(issuer_cert_der)
            .map_err(|e| PkiError::Ca(format!("the OCSP issuer certificate: {e}")))?;
        let tbs = &cert.tbs_certificate;
        if tbs.subject_pki.subject_public_key.data.as_ref() != ca_key.public_key_bits() {
            return Err(PkiError::Ca(
                "the OCSP issuer certificate is not the CA key's certificate".into(),
            ));
        }
        // §4.1.1: issuerNameHash is the hash of the DER of the issuer's distinguished name
        // (our subject); issuerKeyHash of its subjectPublicKey BIT STRING's value.
        let issuer = HashAlgorithm::ALL
            .into_iter()
            .map(|algorithm| IssuerHashes {
                algorithm,
                name: algorithm.digest(tbs.subject.as_raw()),
                key: algorithm.digest(ca_key.public_key_bits()),
            })
            .collect();
        let validity = i64::try_from(config.validity.as_secs())
            .unwrap_or(i64::MAX)
            .max(2);
        Ok(Self {
            responder_key_hash: HashAlgorithm::Sha1.digest(ca_key.public_key_bits()),
            ca_key,
            issuer,
            source,
            cache: ResponseCache::new(config.cache_capacity, config.validity),
            validity,
            presign_hashes: config.presign_hashes,
            fresh_budget: std::num::NonZeroU32::new(config.fresh_signatures_per_sec)
                .map(|n| governor::RateLimiter::direct(governor::Quota::per_second(n))),
            clock: Arc::new(crate::clock::unix_now),
        })
    }

    /// [`Self::new`] with statuses from the store's certificates table.
    pub fn for_store(
        ca_key: CaKey,
        issuer_cert_der: &[u8],
        store: Arc<dyn Store>,
        config: OcspConfig,
    ) -> Result<Self, PkiError> {
        Self::new(
            ca_key,
            issuer_cert_der,
            Arc::new(StoreStatusSource(store)),
            config,
        )
    }

    /// Replaces the clock (tests; the server uses the system clock).
    pub fn with_clock(mut self, clock: impl Fn() -> UnixTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The responder's clock (thisUpdate of fresh answers; HTTP max-age).
    pub fn now(&self) -> UnixTime {
        (self.clock)()
    }

    /// Answers a DER request (a POST body, or a decoded GET path). Never fails: every
    /// problem is an OCSP status (§2.3), which is what the client understands.
    pub async fn respond(&self, request_der: &[u8]) -> OcspReply {
        match parse_request(request_der) {
            Ok(request) => self.respond_to(&request).await,
            Err(e) => {
                tracing::debug!(error = %e, "OCSP: refusing a request");
                Self::error(OcspResponseStatus::MalformedRequest)
            }
        }
    }

    /// Answers a decoded request.
    pub async fn respond_to(&self, request: &OcspRequestInfo) -> OcspReply {
        if !request.certs.iter().all(|c| self.is_ours(c)) {
            return Self::error(OcspResponseStatus::Unauthorized);
        }
        let answer = match (&request.nonce, request.certs.as_slice()) {
            (None, [cert]) => self.single(cert).await,
            _ if !self.spend_fresh_signature() => return Self::throttled(),
            _ => self.fresh(request).await,
        };
        answer.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "OCSP: cannot answer");
            Self::error(OcspResponseStatus::InternalError)
        })
    }

    /// Signs and caches the answers for `serial` (store form, or any hex with leading
    /// zeros) under each configured CertID hash, so the first relying party to ask gets a
    /// cached answer. Called at issuance; returns the status it signed (an `unknown` one is
    /// not cached).
    pub async fn presign(&self, serial: &str) -> Result<CertificateStatus, PkiError> {
        let content = serial_content(serial)
            .ok_or_else(|| PkiError::Invalid(format!("`{serial}` is not a hex serial")))?;
        let mut status = CertificateStatus::Unknown;
        for algorithm in &self.presign_hashes {
            let cert = self.requested_cert(*algorithm, &content)?;
            let cert_id_der = cert.cert_id.to_der().map_err(encoding)?;
            status = self
                .sign_single(&cert, &cert.serial_hex(), cert_id_der, false)
                .await?
                .1;
        }
        Ok(status)
    }

    /// Drops the pre-signed answers for `serial` (store form). The server calls this when it
    /// revokes a certificate and when the change feed announces `cert:<serial>`; the next
    /// request reads the store again.
    pub fn invalidate(&self, serial: &str) {
        match serial_content(serial) {
            Some(content) => self
                .cache
                .invalidate(&portcullis_core::serial::serial_key(&content)),
            None => self.cache.invalidate(serial),
        }
    }

    /// Drops every pre-signed answer (the change feed lost events; the CA key changed).
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// How many serials have pre-signed answers.
    pub fn cached_serials(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Takes one signature from the budget of uncacheable answers; `false` when spent.
    fn spend_fresh_signature(&self) -> bool {
        self.fresh_budget
            .as_ref()
            .is_none_or(|budget| budget.check().is_ok())
    }

    /// `tryLater` (§2.3): the budget of uncacheable signatures is spent for now.
    fn throttled() -> OcspReply {
        metrics::counter!("portcullis_ocsp_throttled_total").increment(1);
        Self::error(OcspResponseStatus::TryLater)
    }

    /// An unsigned error answer (§2.3), counted as `status="error"`.
    pub(crate) fn error(status: OcspResponseStatus) -> OcspReply {
        count("error", false);
        OcspReply {
            der: Bytes::from(response::unsigned(status)),
            status,
            cache_window: None,
            cached: false,
        }
    }

    fn is_ours(&self, cert: &RequestedCert) -> bool {
        cert.hash_algorithm.is_some_and(|alg| {
            self.issuer.iter().any(|h| {
                h.algorithm == alg
                    && h.name == cert.issuer_name_hash
                    && h.key == cert.issuer_key_hash
            })
        })
    }

    async fn lookup(&self, cert: &RequestedCert) -> Result<CertificateStatus, PkiError> {
        if cert.serial_is_negative() {
            return Ok(CertificateStatus::Unknown);
        }
        self.source.status(&cert.serial_hex()).await
    }

    /// The RFC 5019 path: one CertID, no nonce.
    async fn single(&self, cert: &RequestedCert) -> Result<OcspReply, PkiError> {
        let serial = cert.serial_hex();
        let cert_id_der = cert.cert_id.to_der().map_err(encoding)?;
        let now = self.now();
        let cached = self.cache.get(&serial, &cert_id_der);
        let refresh = cached.is_some();
        if let Some(hit) = cached {
            // Re-signed once half-way to nextUpdate, so a relying party never receives an
            // answer about to expire (and HTTP caches get a useful max-age).
            let refresh_at = hit.this_update + (hit.next_update - hit.this_update) / 2;
            if (hit.this_update..refresh_at).contains(&now) {
                count(hit.status, true);
                return Ok(OcspReply {
                    der: hit.der,
                    status: OcspResponseStatus::Successful,
                    cache_window: Some((hit.this_update, hit.next_update)),
                    cached: true,
                });
            }
        }
        if !refresh && !self.spend_fresh_signature() {
            // Nothing cached for this serial: most likely an unknown one (every certificate
            // we issue or revoke is pre-signed), and anyone can send endless random serials.
            // The budget is spent before the store is asked, so such a flood costs neither
            // database queries nor signatures beyond it.
            return Ok(Self::throttled());
        }
        let (reply, status) = self
            .sign_single(cert, &serial, cert_id_der, refresh)
            .await?;
        if reply.status == OcspResponseStatus::Successful {
            count(status.as_str(), false);
        }
        Ok(reply)
    }

    /// Looks the status up, signs a one-certificate response and caches it unless it is
    /// `unknown` or the serial was invalidated meanwhile (see `cache.rs`). With `budgeted`,
    /// an `unknown` answer (never cached) must fit the budget, else it is `tryLater`.
    async fn sign_single(
        &self,
        cert: &RequestedCert,
        serial: &str,
        cert_id_der: Vec<u8>,
        budgeted: bool,
    ) -> Result<(OcspReply, CertificateStatus), PkiError> {
        let generation = self.cache.generation(serial);
        // thisUpdate is taken before the lookup: the status read was true at least then.
        let now = self.now();
        let status = self.lookup(cert).await?;
        if budgeted && status == CertificateStatus::Unknown && !self.spend_fresh_signature() {
            return Ok((Self::throttled(), status));
        }
        let next = now.saturating_add(self.validity);
        let single = response::single(&cert.cert_id, &status, now, next)?;
        let der = Bytes::from(response::signed(
            &self.ca_key,
            &self.responder_key_hash,
            now,
            vec![single],
            None,
        )?);
        let cache_window = match status {
            CertificateStatus::Unknown => None,
            _ => {
                self.cache.insert_if_current(
                    serial,
                    generation,
                    CachedResponse {
                        cert_id_der,
                        der: der.clone(),
                        status: status.as_str(),
                        this_update: now,
                        next_update: next,
                    },
                );
                Some((now, next))
            }
        };
        let reply = OcspReply {
            der,
            status: OcspResponseStatus::Successful,
            cache_window,
            cached: false,
        };
        Ok((reply, status))
    }

    /// A nonce or several CertIDs: every status looked up, one response signed for them.
    async fn fresh(&self, request: &OcspRequestInfo) -> Result<OcspReply, PkiError> {
        let now = self.now();
        let next = now.saturating_add(self.validity);
        let mut singles = Vec::with_capacity(request.certs.len());
        let mut statuses = Vec::with_capacity(request.certs.len());
        for cert in &request.certs {
            let status = self.lookup(cert).await?;
            singles.push(response::single(&cert.cert_id, &status, now, next)?);
            statuses.push(status);
        }
        let der = response::signed(
            &self.ca_key,
            &self.responder_key_hash,
            now,
            singles,
            request.nonce.as_deref(),
        )?;
        for status in &statuses {
            count(status.as_str(), false);
        }
        let cacheable = request.nonce.is_none() && !statuses.contains(&CertificateStatus::Unknown);
        Ok(OcspReply {
            der: Bytes::from(der),
            status: OcspResponseStatus::Successful,
            cache_window: cacheable.then_some((now, next)),
            cached: false,
        })
    }

    /// The CertID a client using `algorithm` would send for serial `content` (INTEGER
    /// content octets), hash parameters NULL.
    fn requested_cert(
        &self,
        algorithm: HashAlgorithm,
        content: &[u8],
    ) -> Result<RequestedCert, PkiError> {
        let hashes = self
            .issuer
            .iter()
            .find(|h| h.algorithm == algorithm)
            .ok_or_else(|| PkiError::Ca(format!("no issuer hashes for {}", algorithm.as_str())))?;
        let der = cert_id_der(algorithm, &hashes.name, &hashes.key, content)?;
        requested_cert_from_der(&der)
    }
}

fn encoding(e: der::Error) -> PkiError {
    PkiError::Encoding(format!("OCSP CertID: {e}"))
}

/// `SEQUENCE { AlgorithmIdentifier { oid, NULL }, OCTET STRING, OCTET STRING, INTEGER }`.
fn cert_id_der(
    algorithm: HashAlgorithm,
    name_hash: &[u8],
    key_hash: &[u8],
    serial_content: &[u8],
) -> Result<Vec<u8>, PkiError> {
    use crate::der_writer::push_tlv;
    let oid = algorithm.oid().to_der().map_err(encoding)?;
    let mut alg = oid;
    alg.extend_from_slice(&[0x05, 0x00]);
    let mut body = Vec::with_capacity(128);
    push_tlv(&mut body, 0x30, &alg);
    push_tlv(&mut body, 0x04, name_hash);
    push_tlv(&mut body, 0x04, key_hash);
    push_tlv(&mut body, 0x02, serial_content);
    let mut out = Vec::with_capacity(body.len() + 4);
    push_tlv(&mut out, 0x30, &body);
    Ok(out)
}

fn requested_cert_from_der(der: &[u8]) -> Result<RequestedCert, PkiError> {
    use der::Decode as _;
    let cert_id = x509_ocsp::CertId::from_der(der).map_err(encoding)?;
    super::request::requested_cert(&cert_id).map_err(|e| PkiError::Encoding(e.to_string()))
}

/// A serial as hex (store form, or with leading zeros or an odd digit count) → DER INTEGER
/// content octets of the positive serial: minimal, with a 0x00 added back when the top bit
/// is set.
fn serial_content(serial: &str) -> Option<Vec<u8>> {
    let bytes = portcullis_core::serial::serial_octets(serial.trim())?;
    Some(crate::der_writer::unsigned_integer(&bytes))
}

#[cfg(test)]
#[path = "responder_tests.rs"]
mod tests;
