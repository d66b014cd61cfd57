//! The HTTPS listener's own certificate, kept current while the node runs: a node may run
//! longer than its certificate is valid.
//!
//! Without configured files the certificate is issued by our CA for `[pki] tls_names` (and
//! recorded in the store like any other) and renewed two thirds into its lifetime
//! (`core::tls_renewal`); the one it replaces is revoked as `superseded`. Configured files
//! (`[server] tls_cert_file` / `tls_key_file`, which operators rotate with certbot or
//! cert-manager) are read again when either changes on disk. Either way the new certificate
//! goes into the listener's [`CurrentCertificate`]: new handshakes get it, open connections
//! keep theirs. Anything that fails (the CA, the store, a half-written or garbled file, a key
//! that does not match) keeps the current certificate and is retried with backoff: a node
//! never stops serving, nor serves nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use portcullis_core::device::RevocationReason;
use portcullis_core::tls_renewal;
use portcullis_pki::Pki;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use zeroize::Zeroizing;

use crate::bootstrap::unix_now;
use crate::config::Config;
use crate::tls::{certified_key, CurrentCertificate};

/// The listener's certificate and what it takes to keep it current.
pub struct TlsCertificate {
    current: Arc<CurrentCertificate>,
    source: Source,
    interval: Duration,
}

/// Where the certificate comes from.
enum Source {
    /// Issued by our CA for `names`; `served` is the one in use.
    Issued {
        pki: Arc<Pki>,
        names: Vec<String>,
        lifetime_secs: i64,
        served: Served,
    },
    /// Read from PEM files; `loaded` is how they looked when the served pair was read.
    Files {
        cert: PathBuf,
        key: PathBuf,
        loaded: FileStamps,
    },
}

/// What renewal needs to know of the issued certificate in use.
struct Served {
    serial: String,
    issued_at: i64,
    not_after: i64,
}

/// Why the HTTPS listener's certificate could not be loaded, issued or renewed. No variant
/// carries a parser's message about the key file: it could quote a line of the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsCertificateError {
    /// A configured file could not be read (or its metadata not taken).
    #[error("{setting} {}: {source}", path.display())]
    Unreadable {
        setting: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The certificate file is not a PEM chain.
    #[error("server.tls_cert_file {}: {why}", path.display())]
    BadChain { path: PathBuf, why: String },
    #[error("server.tls_cert_file {} holds no CERTIFICATE", path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "server.tls_key_file {} holds no readable PEM private key (PKCS#8, PKCS#1 or SEC1)",
        path.display()
    )]
    NoPrivateKey { path: PathBuf },
    /// The two files do not make a usable pair.
    #[error("server.tls_cert_file {} with server.tls_key_file {}: {source}", cert.display(), key.display())]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        source: Box<TlsCertificateError>,
    },
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    #[error("TLS: {0}")]
    Rustls(rustls::Error),
    #[error("TLS key: {0}")]
    KeyGeneration(rcgen::Error),
    #[error("TLS certificate: {0}")]
    Issue(portcullis_pki::PkiError),
    #[error("recording the TLS certificate: {0}")]
    Record(portcullis_store::StoreError),
}

/// Modification time and length of the certificate and key files: a change to either means
/// they are read again. (A rotation replaces files or the symlinks to them; metadata follows
/// symlinks, as cert-manager's `..data` link needs.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamps([(Option<SystemTime>, u64); 2]);

impl TlsCertificate {
    /// The first certificate: the configured files, or one issued for `[pki] tls_names` and
    /// the bound address. An error here stops the start.
    pub async fn load(
        config: &Config,
        pki: &Arc<Pki>,
        bound: SocketAddr,
    ) -> Result<Self, TlsCertificateError> {
        let lifetime_secs = config.pki.tls_cert_lifetime_secs;
        let interval = tls_renewal::check_interval(lifetime_secs.unsigned_abs());
        match (&config.server.tls_cert_file, &config.server.tls_key_file) {
            (Some(cert), Some(key)) => Self::from_files(cert, key, interval).await,
            _ => {
                let names = tls_names(config, bound);
                Self::issued(pki.clone(), names, lifetime_secs, interval).await
            }
        }
    }

    /// A certificate read from `cert` (PEM chain, leaf first) and `key` (PEM private key).
    async fn from_files(
        cert: &Path,
        key: &Path,
        interval: Duration,
    ) -> Result<Self, TlsCertificateError> {
        let (certified, loaded) = read_files(cert, key).await?;
        Ok(Self {
            current: Arc::new(CurrentCertificate::new(certified)),
            source: Source::Files {
                cert: cert.to_owned(),
                key: key.to_owned(),
                loaded,
            },
            interval,
        })
    }

    /// A certificate issued by our CA for `names`, renewed when due.
    async fn issued(
        pki: Arc<Pki>,
        names: Vec<String>,
        lifetime_secs: i64,
        interval: Duration,
    ) -> Result<Self, TlsCertificateError> {
        let (certified, served) = issue(&pki, &names, lifetime_secs).await?;
        tracing::info!(
            serial = %served.serial,
            not_after = served.not_after,
            "TLS server certificate issued by the device CA"
        );
        Ok(Self {
            current: Arc::new(CurrentCertificate::new(certified)),
            source: Source::Issued {
                pki,
                names,
                lifetime_secs,
                served,
            },
            interval,
        })
    }

    /// What the listener serves (see [`crate::tls::server_config`]).
    pub fn current(&self) -> Arc<CurrentCertificate> {
        self.current.clone()
    }

    /// Checks at the regular interval (a tenth of the lifetime, at most hourly) and after a
    /// failure sooner, with backoff; runs until dropped with the listener's task.
    pub async fn keep_current(mut self) {
        let mut failures = 0u32;
        loop {
            let wait = match failures {
                0 => self.interval,
                n => tls_renewal::retry_delay(n, self.interval),
            };
            tokio::time::sleep(wait).await;
            match self.refresh().await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(
                        error = %e,
                        retry_in_secs = tls_renewal::retry_delay(failures, self.interval).as_secs_f64(),
                        "TLS server certificate not replaced; the current one is still served"
                    );
                }
            }
        }
    }

    /// Renews or reloads the certificate when due; `Ok` also when nothing was due.
    async fn refresh(&mut self) -> Result<(), TlsCertificateError> {
        match &mut self.source {
            Source::Issued {
                pki,
                names,
                lifetime_secs,
                served,
            } => {
                let now = unix_now();
                if !tls_renewal::renewal_due(served.issued_at, served.not_after, now) {
                    return Ok(());
                }
                if now >= served.not_after {
                    tracing::error!(
                        serial = %served.serial,
                        "the served TLS certificate has expired; renewing it"
                    );
                }
                let (certified, renewed) = issue(pki, names, *lifetime_secs).await?;
                self.current.replace(certified);
                let replaced = std::mem::replace(served, renewed);
                tracing::info!(
                    serial = %served.serial,
                    not_after = served.not_after,
                    replaced = %replaced.serial,
                    "TLS server certificate renewed"
                );
                // The replaced certificate is revoked so the store does not collect valid
                // server certificates (one per renewal). Open connections are unaffected;
                // if this fails it simply expires.
                if let Err(e) = pki
                    .revoke_certificate("system", &replaced.serial, RevocationReason::Superseded)
                    .await
                {
                    tracing::warn!(
                        serial = %replaced.serial,
                        error = %e,
                        "revoking the replaced TLS certificate failed; it expires on its own"
                    );
                }
                Ok(())
            }
            Source::Files { cert, key, loaded } => {
                if file_stamps(cert, key).await? == *loaded {
                    return Ok(());
                }
                let (certified, stamps) = read_files(cert, key).await?;
                let leaf = certified
                    .end_entity_cert()
                    .map(|der| leaf_sha256(der))
                    .unwrap_or_default();
                self.current.replace(certified);
                *loaded = stamps;
                tracing::info!(
                    file = %cert.display(),
                    sha256 = %leaf,
                    "TLS server certificate reloaded from server.tls_cert_file"
                );
                Ok(())
            }
        }
    }
}

/// The names of the generated certificate: `[pki] tls_names` plus the bound IP address.
fn tls_names(config: &Config, bound: SocketAddr) -> Vec<String> {
    let mut names = config.pki.tls_names.clone();
    let ip = bound.ip();
    if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
        names.push(ip.to_string());
    }
    names
}

/// Issues a certificate for a new key and records it in the store; it is served only once
/// recorded, so every certificate a client ever sees can be looked up and revoked.
async fn issue(
    pki: &Pki,
    names: &[String],
    lifetime_secs: i64,
) -> Result<(Arc<CertifiedKey>, Served), TlsCertificateError> {
    let issued_at = unix_now();
    let key = rcgen::KeyPair::generate().map_err(TlsCertificateError::KeyGeneration)?;
    let issued = pki
        .ca
        .issue_tls_server(names, &key, lifetime_secs, issued_at)
        .map_err(TlsCertificateError::Issue)?;
    if issued.not_after < issued_at.saturating_add(lifetime_secs) {
        tracing::warn!(
            not_after = issued.not_after,
            "the issuing CA expires before a full-lifetime TLS certificate would; it was cut \
             short and will be renewed sooner"
        );
    }
    let served = Served {
        serial: issued.serial.clone(),
        issued_at,
        not_after: issued.not_after,
    };
    let certified = certified_key(
        vec![
            CertificateDer::from(issued.der.clone()),
            CertificateDer::from(pki.ca.issuing_der().to_vec()),
        ],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )?;
    pki.store
        .insert_certificate(&issued)
        .await
        .map_err(TlsCertificateError::Record)?;
    Ok((certified, served))
}

async fn file_stamps(cert: &Path, key: &Path) -> Result<FileStamps, TlsCertificateError> {
    let stamp = |path: &Path, setting: &'static str| {
        let path = path.to_owned();
        async move {
            match tokio::fs::metadata(&path).await {
                Ok(meta) => Ok((meta.modified().ok(), meta.len())),
                Err(source) => Err(TlsCertificateError::Unreadable {
                    setting,
                    path,
                    source,
                }),
            }
        }
    };
    Ok(FileStamps([
        stamp(cert, "server.tls_cert_file").await?,
        stamp(key, "server.tls_key_file").await?,
    ]))
}

/// Reads and checks a certificate chain and its key. The stamps are taken first, so a file
/// replaced while it is read is read again at the next check.
async fn read_files(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<CertifiedKey>, FileStamps), TlsCertificateError> {
    let stamps = file_stamps(cert, key).await?;
    let unreadable = |setting: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| TlsCertificateError::Unreadable {
            setting,
            path,
            source,
        }
    };
    let cert_pem = tokio::fs::read(cert)
        .await
        .map_err(unreadable("server.tls_cert_file", cert))?;
    let key_pem = Zeroizing::new(
        tokio::fs::read(key)
            .await
            .map_err(unreadable("server.tls_key_file", key))?,
    );
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsCertificateError::BadChain {
            path: cert.to_owned(),
            why: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsCertificateError::NoCertificate {
            path: cert.to_owned(),
        });
    }
    // The parser's message is not passed on: it could quote a line of the key file.
    let private_key =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsCertificateError::NoPrivateKey {
            path: key.to_owned(),
        })?;
    let certified = certified_key(chain, private_key).map_err(|e| TlsCertificateError::Pair {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source: Box::new(e),
    })?;
    Ok((certified, stamps))
}

/// Lowercase hex SHA-256 of a certificate, as `openssl x509 -fingerprint -sha256` shows it
/// (without the colons), for the log.
fn leaf_sha256(der: &CertificateDer<'_>) -> String {
    portcullis_core::hex::encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref()).as_ref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed pair for `name` as PEM (certificate, key).
    fn pair(name: &str) -> (String, String) {
        let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (generated.cert.pem(), generated.signing_key.serialize_pem())
    }

    fn served_leaf(tls: &TlsCertificate) -> Vec<u8> {
        tls.current().get().end_entity_cert().unwrap().to_vec()
    }

    fn leaf_of(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    /// Writes `content` to `path` so that its stamp surely differs from the last write's
    /// (another length, or the same length with a later modification time).
    fn write(path: &Path, content: &str) {
        std::fs::write(path, content).unwrap();
        let later = SystemTime::now() + Duration::from_secs(1);
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(later).unwrap();
    }

    #[tokio::test]
    async fn configured_files_are_reloaded_when_they_change_and_kept_when_broken() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.pem"), dir.path().join("tls.key"));
        let (first_cert, first_key) = pair("first.example");
        write(&cert, &first_cert);
        write(&key, &first_key);
        let mut tls = TlsCertificate::from_files(&cert, &key, Duration::from_secs(1))
            .await
            .unwrap();
        let listener_view = tls.current();
        assert_eq!(served_leaf(&tls), leaf_of(&first_cert));

        // Nothing changed: nothing is read.
        tls.refresh().await.unwrap();
        assert_eq!(served_leaf(&tls), leaf_of(&first_cert));

        // A new pair is served, through the handle the listener already holds.
        let (second_cert, second_key) = pair("second.example");
        write(&cert, &second_cert);
        write(&key, &second_key);
        tls.refresh().await.unwrap();
        assert_eq!(
            listener_view.get().end_entity_cert().unwrap().as_ref(),
            leaf_of(&second_cert)
        );

        // Garbage, an empty file, a certificate without its key, a missing file: each is an
        // error naming the file, and the second pair stays in service.
        let (third_cert, third_key) = pair("third.example");
        let broken: [(&Path, Option<&str>, &str); 5] = [
            (&cert, Some("not a certificate"), "server.tls_cert_file"),
            (&cert, Some(""), "holds no CERTIFICATE"),
            (
                &cert,
                Some(&third_cert),
                "does not belong to the certificate",
            ),
            (
                &key,
                Some("-----BEGIN PRIVATE KEY-----\nAAAA\n"),
                "no readable PEM private key",
            ),
            (&key, None, "server.tls_key_file"),
        ];
        for (path, content, expected) in broken {
            match content {
                Some(content) => write(path, content),
                None => std::fs::remove_file(path).unwrap(),
            }
            let err = tls.refresh().await.unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains("AAAA"), "{err}");
            assert_eq!(served_leaf(&tls), leaf_of(&second_cert), "{err}");
            if path == key.as_path() {
                write(&key, &second_key);
            }
        }

        // Once the files are whole again they are served.
        write(&cert, &third_cert);
        write(&key, &third_key);
        tls.refresh().await.unwrap();
        assert_eq!(served_leaf(&tls), leaf_of(&third_cert));
    }

    #[tokio::test]
    async fn a_key_that_does_not_match_refuses_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.pem"), dir.path().join("tls.key"));
        let (first_cert, _) = pair("first.example");
        let (_, other_key) = pair("other.example");
        write(&cert, &first_cert);
        write(&key, &other_key);
        let err = TlsCertificate::from_files(&cert, &key, Duration::from_secs(1))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("server.tls_cert_file"), "{err}");
    }
}
