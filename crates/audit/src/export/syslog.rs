//! Syslog export: each record as one RFC 5424 message over TLS (RFC 5425), octet-counted
//! (RFC 6587 §3.4.1, RFC 5425 §4.3: `MSG-LEN SP SYSLOG-MSG`), to a receiver such as rsyslog
//! or a SIEM's collector.
//!
//! The message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [portcullis@32473 seq= outcome=
//! hash=] BOM{json}`: the action is the MSGID, the structured data lets a receiver filter
//! without parsing the JSON, and the MSG is the record as every export shows it
//! ([`super::record_json`]).
//!
//! Syslog over TLS has no acknowledgements: a write is done once the kernel has the bytes.
//! The sink keeps one connection open and, before each page, checks that the receiver has not
//! closed it (a receiver never sends application data, so anything readable — end of stream,
//! `close_notify`, an error — means it is gone) and reconnects if so; records made while the
//! receiver is down are therefore not written into a dead socket but retried, from the same
//! record, once it is back. What no sender can see is a receiver that dies between that check
//! and reading the page (or a write that fails halfway, which is resent whole): the first can
//! lose the page in flight, the second repeat part of it. Each message names its `seq`, so a
//! receiver can drop repeats and spot a gap.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use portcullis_core::audit::{AuditAction, AuditEvent, Outcome};

use super::{record_json, ExportError, ExportSink};
use crate::sealing::ReadRecord;

/// Bound on connecting and the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on writing one page: a receiver that stops reading must not stall the export forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The default APP-NAME.
pub const DEFAULT_APP_NAME: &str = "portcullis";

/// Facility `authpriv` (10): "security/authorization messages (private)". Chosen over
/// facility 13 ("log audit") because every record is an authentication or authorization
/// decision (tokens issued and refused, clients and keys changed), which is what authpriv
/// carries for sshd, sudo and PAM; receivers name it (`authpriv.*`) and by default keep it in
/// an access-restricted file (Debian: `/var/log/auth.log`), while 13 has no name in glibc
/// (there is no `LOG_AUDIT`) and many relays route it only to a catch-all file.
const FACILITY: u8 = 10;
/// Severity `notice` (5): a normal but significant condition.
const SEVERITY_NOTICE: u8 = 5;
/// Severity `warning` (4): for a refusal (any outcome other than `success`) and a raised
/// attack alert.
const SEVERITY_WARNING: u8 = 4;
/// The SD-ID of the structured data element. 32473 is the private enterprise number RFC 5612
/// reserves for documentation and examples; an operator with a PEN of their own can filter on
/// the name, and a registered one would replace it without changing anything else.
const SD_ID: &str = "portcullis@32473";
/// RFC 5424 §6: HOSTNAME is at most 255 characters, APP-NAME 48, MSGID 32.
const HOSTNAME_MAX: usize = 255;
const APP_NAME_MAX: usize = 48;
const MSGID_MAX: usize = 32;
/// The UTF-8 byte order mark that says the MSG is UTF-8 (RFC 5424 §6.4).
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where a syslog export sends records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    /// `host:port` of the receiver's TLS listener.
    pub address: String,
    /// The name the receiver's certificate must carry.
    pub server_name: String,
    /// PEM file of the CA certificate(s) that sign the receiver's certificate.
    pub ca_file: PathBuf,
    /// The HOSTNAME field: this node's name.
    pub hostname: String,
    /// The APP-NAME field ([`DEFAULT_APP_NAME`] unless configured).
    pub app_name: String,
}

/// Sends records to a syslog receiver over TLS, one connection kept across pages.
pub struct SyslogSink {
    target: SyslogTarget,
    connector: TlsConnector,
    server_name: ServerName<'static>,
    connection: Option<TlsStream<TcpStream>>,
}

impl SyslogSink {
    /// Reads the CA file and prepares the TLS client; connects on the first delivery.
    pub fn new(target: SyslogTarget) -> Result<SyslogSink, ExportError> {
        let file = target.ca_file.display().to_string();
        let pem = std::fs::read(&target.ca_file)
            .map_err(|e| ExportError(format!("syslog CA file {file}: {e}")))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|_| {
                ExportError(format!(
                    "syslog CA file {file}: not a readable PEM certificate"
                ))
            })?;
            roots.add(cert).map_err(|e| {
                ExportError(format!(
                    "syslog CA file {file}: a certificate cannot be a trust anchor: {e}"
                ))
            })?;
        }
        if roots.is_empty() {
            return Err(ExportError(format!(
                "syslog CA file {file}: no PEM certificate in it"
            )));
        }
        let server_name = ServerName::try_from(target.server_name.clone()).map_err(|_| {
            ExportError(format!(
                "syslog server name {:?} is not a DNS name or an IP address",
                target.server_name
            ))
        })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ExportError(format!("syslog TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(SyslogSink {
            target,
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            connection: None,
        })
    }

    async fn connect(&self) -> Result<TlsStream<TcpStream>, ExportError> {
        let address = &self.target.address;
        let attempt = async {
            let tcp = TcpStream::connect(address)
                .await
                .map_err(|e| ExportError(format!("syslog {address}: connecting: {e}")))?;
            // Pages are written whole and flushed: no reason to hold the last segment back.
            let _ = tcp.set_nodelay(true);
            self.connector
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| ExportError(format!("syslog {address}: TLS handshake: {e}")))
        };
        tokio::time::timeout(CONNECT_TIMEOUT, attempt)
            .await
            .map_err(|_| {
                ExportError(format!(
                    "syslog {address}: no TLS connection within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
    }

    /// The open connection, or a new one when there is none or the receiver closed it.
    async fn connection(&mut self) -> Result<&mut TlsStream<TcpStream>, ExportError> {
        let alive = match self.connection.as_mut() {
            Some(stream) => !receiver_closed(stream).await,
            None => false,
        };
        if !alive {
            if self.connection.take().is_some() {
                tracing::info!(
                    sink = %self.describe(),
                    "the syslog receiver closed the connection; reconnecting"
                );
            }
            let stream = self.connect().await?;
            self.connection = Some(stream);
        }
        self.connection
            .as_mut()
            .ok_or_else(|| ExportError("syslog: no connection".into()))
    }
}

/// Whether the receiver has closed (or broken) the connection: reads once without waiting.
/// Ready — end of stream, `close_notify`, an error, or data a receiver never sends — means the
/// connection is not to be written to; Pending means nothing happened on it. (TLS 1.3 session
/// tickets the receiver sent after the handshake are consumed by the read without surfacing.)
async fn receiver_closed(stream: &mut TlsStream<TcpStream>) -> bool {
    let mut buf = [0u8; 512];
    let poll_once = std::future::poll_fn(|cx| {
        let mut read = ReadBuf::new(&mut buf);
        match Pin::new(&mut *stream).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Ready(false),
            Poll::Ready(_) => Poll::Ready(true),
        }
    });
    // Unconstrained: an exhausted cooperative budget would make the read Pending and hide a
    // closed connection.
    tokio::task::unconstrained(poll_once).await
}

#[async_trait::async_trait]
impl ExportSink for SyslogSink {
    fn describe(&self) -> String {
        format!("syslog {}", self.target.address)
    }

    async fn deliver(&mut self, records: &[ReadRecord]) -> Result<(), ExportError> {
        let mut page = Vec::with_capacity(records.len() * 512);
        for record in records {
            frame_into(
                &format_message(record, &self.target.hostname, &self.target.app_name),
                &mut page,
            );
        }
        let address = self.target.address.clone();
        let stream = self.connection().await?;
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            stream.write_all(&page).await?;
            stream.flush().await
        })
        .await;
        let failure = match written {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => format!("syslog {address}: writing: {e}"),
            Err(_) => format!(
                "syslog {address}: the receiver took no page within {} s",
                WRITE_TIMEOUT.as_secs()
            ),
        };
        // Part of the page may have gone out: start over on a new connection.
        self.connection = None;
        Err(ExportError(failure))
    }
}

/// Appends `message` to `out` with octet-counting framing: its length in bytes, a space, the
/// message (RFC 6587 §3.4.1, RFC 5425 §4.3).
pub fn frame_into(message: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(message.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(message);
}

/// One record as an RFC 5424 message (unframed):
/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [portcullis@32473 seq="…" outcome="…"
/// hash="…"] BOM{json}`.
pub fn format_message(record: &ReadRecord, hostname: &str, app_name: &str) -> Vec<u8> {
    let r = &record.record;
    let pri = u16::from(FACILITY) * 8 + u16::from(severity(&r.event));
    let header = format!(
        "<{pri}>1 {timestamp} {hostname} {app_name} - {msgid} [{SD_ID} seq=\"{seq}\" outcome=\"{outcome}\" hash=\"{hash}\"] ",
        timestamp = timestamp(r.event.at),
        hostname = header_field(hostname, HOSTNAME_MAX),
        app_name = header_field(app_name, APP_NAME_MAX),
        msgid = msgid(&r.event.action),
        seq = r.seq,
        outcome = param_value(&r.event.outcome),
        hash = param_value(&r.hash),
    );
    let json = record_json(record).to_string();
    let mut message = Vec::with_capacity(header.len() + BOM.len() + json.len());
    message.extend_from_slice(header.as_bytes());
    message.extend_from_slice(BOM);
    message.extend_from_slice(json.as_bytes());
    message
}

/// `warning` for what a SIEM filtering on warning and above must see: a refusal, and an
/// `alert.raised` record, which the detector writes with outcome `success` (raising the alert
/// succeeded) but which reports an attack; `notice` for everything else.
fn severity(event: &AuditEvent) -> u8 {
    if event.outcome != Outcome::Success.as_str()
        || event.action == AuditAction::AlertRaised.as_str()
    {
        SEVERITY_WARNING
    } else {
        SEVERITY_NOTICE
    }
}

/// RFC 3339 in UTC with whole seconds (`2023-11-14T22:13:20Z`), or the NILVALUE for a time
/// outside years 0000–9999 (which the TIMESTAMP cannot write).
fn timestamp(at: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(at) {
        Ok(t) if (0..=9999).contains(&t.year()) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        _ => "-".into(),
    }
}

/// PRINTUSASCII: `!` to `~`.
fn printable(c: char) -> bool {
    c.is_ascii_graphic()
}

/// HOSTNAME or APP-NAME: kept when it is printable US-ASCII without spaces (cut to `max`),
/// the NILVALUE otherwise.
fn header_field(value: &str, max: usize) -> String {
    if value.is_empty() || !value.chars().all(printable) {
        return "-".into();
    }
    value.chars().take(max).collect()
}

/// MSGID: the action with anything but printable US-ASCII replaced by `_`, cut to 32
/// characters; the NILVALUE when empty.
fn msgid(action: &str) -> String {
    let id: String = action
        .chars()
        .take(MSGID_MAX)
        .map(|c| if printable(c) { c } else { '_' })
        .collect();
    if id.is_empty() {
        "-".into()
    } else {
        id
    }
}

/// A PARAM-VALUE with `"`, `\` and `]` escaped by a backslash (RFC 5424 §6.3.3).
fn param_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use portcullis_core::audit::{AuditEvent, AuditRecord};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    fn record(seq: i64, action: &str, outcome: &str) -> ReadRecord {
        ReadRecord {
            record: AuditRecord {
                seq,
                event: AuditEvent {
                    at: 1_700_000_000 + seq,
                    actor: format!("client-{seq}"),
                    action: action.into(),
                    subject: "jti-é-✓".into(),
                    outcome: outcome.into(),
                    detail: serde_json::json!({"source": "192.0.2.1", "note": "naïve ] \" \\"}),
                },
                prev_hash: "00".repeat(32),
                hash: format!("{seq:064x}"),
            },
            encrypted: true,
            unreadable: None,
        }
    }

    /// The header up to the MSG, and the MSG (after the BOM) as JSON.
    fn split(message: &[u8]) -> (String, serde_json::Value) {
        let at = message
            .windows(BOM.len())
            .position(|w| w == BOM)
            .expect("a BOM");
        let header = String::from_utf8(message[..at].to_vec()).unwrap();
        let json = serde_json::from_slice(&message[at + BOM.len()..]).unwrap();
        (header, json)
    }

    #[test]
    fn formats_an_rfc5424_message() {
        let r = record(7, "token.issued", "success");
        let message = format_message(&r, "node-a", DEFAULT_APP_NAME);
        let (header, json) = split(&message);
        assert_eq!(
            header,
            format!(
                "<85>1 2023-11-14T22:13:27Z node-a portcullis - token.issued \
                 [portcullis@32473 seq=\"7\" outcome=\"success\" hash=\"{}\"] ",
                r.record.hash
            )
        );
        assert_eq!(json, record_json(&r));
        assert_eq!(json["subject"], "jti-é-✓");
        assert_eq!(json["encrypted"], true);
        // authpriv.warning for a refusal (and anything not "success").
        let refused = format_message(&record(8, "token.refused", "failure"), "h", "a");
        assert!(refused.starts_with(b"<84>1 "), "{:?}", &refused[..8]);
        let odd = format_message(&record(9, "token.refused", "maybe"), "h", "a");
        assert!(odd.starts_with(b"<84>1 "));
    }

    #[test]
    fn a_raised_alert_goes_out_as_a_warning_and_its_acknowledgement_as_a_notice() {
        let raised = format_message(&record(10, "alert.raised", "success"), "h", "a");
        assert!(raised.starts_with(b"<84>1 "), "{:?}", &raised[..8]);
        let acknowledged = format_message(&record(11, "alert.acknowledged", "success"), "h", "a");
        assert!(
            acknowledged.starts_with(b"<85>1 "),
            "{:?}",
            &acknowledged[..8]
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc_or_nil() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(timestamp(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(timestamp(253_402_300_800), "-");
        assert_eq!(timestamp(-62_167_219_201), "-");
        assert_eq!(timestamp(i64::MAX), "-");
        assert_eq!(timestamp(i64::MIN), "-");
    }

    #[test]
    fn escapes_param_values() {
        assert_eq!(param_value(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        assert_eq!(param_value("plain [ é"), "plain [ é");
        let mut r = record(3, "token.refused", r#"fail"ure]\"#);
        r.record.hash = "x]y".into();
        let (header, _) = split(&format_message(&r, "h", "a"));
        assert!(
            header.ends_with(r#"[portcullis@32473 seq="3" outcome="fail\"ure\]\\" hash="x\]y"] "#),
            "{header}"
        );
    }

    #[test]
    fn sanitizes_msgid_hostname_and_app_name() {
        assert_eq!(msgid("token.issued"), "token.issued");
        assert_eq!(msgid("a b\té\u{7f}"), "a_b___");
        assert_eq!(msgid(""), "-");
        let long = "x".repeat(40);
        assert_eq!(msgid(&long), "x".repeat(32));
        assert_eq!(msgid(&"é".repeat(40)), "_".repeat(32));
        assert_eq!(
            header_field("node-a.example", HOSTNAME_MAX),
            "node-a.example"
        );
        assert_eq!(header_field("node a", HOSTNAME_MAX), "-");
        assert_eq!(header_field("nœud", HOSTNAME_MAX), "-");
        assert_eq!(header_field("", APP_NAME_MAX), "-");
        assert_eq!(header_field(&"a".repeat(60), APP_NAME_MAX), "a".repeat(48));
        let r = record(1, "token issued", "success");
        let (header, _) = split(&format_message(&r, "bad host", "app\nname"));
        assert!(
            header.starts_with("<85>1 2023-11-14T22:13:21Z - - - token_issued ["),
            "{header}"
        );
    }

    #[test]
    fn frames_count_octets_not_characters() {
        let message = format_message(&record(1, "token.issued", "success"), "h", "a");
        assert_ne!(
            String::from_utf8(message.clone()).unwrap().chars().count(),
            message.len(),
            "the record holds multi-byte characters"
        );
        let mut out = b"12 earlier one".to_vec();
        frame_into(&message, &mut out);
        let rest = &out[b"12 earlier one".len()..];
        let space = rest.iter().position(|&b| b == b' ').unwrap();
        let len: usize = std::str::from_utf8(&rest[..space])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, message.len());
        assert_eq!(&rest[space + 1..], &message[..]);
    }

    #[test]
    fn a_bad_ca_file_is_named_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let target = |file: &str| SyslogTarget {
            address: "127.0.0.1:1".into(),
            server_name: "localhost".into(),
            ca_file: dir.path().join(file),
            hostname: "h".into(),
            app_name: "a".into(),
        };
        let missing = SyslogSink::new(target("missing.pem")).err().unwrap().0;
        assert!(missing.contains("missing.pem"), "{missing}");
        std::fs::write(dir.path().join("junk.pem"), "secret-junk-do-not-echo").unwrap();
        let junk = SyslogSink::new(target("junk.pem")).err().unwrap().0;
        assert!(
            junk.contains("junk.pem") && junk.contains("no PEM certificate"),
            "{junk}"
        );
        assert!(!junk.contains("secret-junk"), "{junk}");
        std::fs::write(
            dir.path().join("broken.pem"),
            "-----BEGIN CERTIFICATE-----\nsecret!!not base64\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let broken = SyslogSink::new(target("broken.pem")).err().unwrap().0;
        assert!(broken.contains("broken.pem"), "{broken}");
        assert!(!broken.contains("secret"), "{broken}");
        let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
        std::fs::write(dir.path().join("ok.pem"), ca.cert.pem()).unwrap();
        let mut bad_name = target("ok.pem");
        bad_name.server_name = "not a name".into();
        let name = SyslogSink::new(bad_name).err().unwrap().0;
        assert!(name.contains("not a name"), "{name}");
    }

    /// A TLS receiver for `localhost` on a random port, and a CA file that trusts it.
    struct Receiver {
        listener: TcpListener,
        acceptor: TlsAcceptor,
        ca_file: PathBuf,
        _dir: tempfile::TempDir,
    }

    async fn receiver() -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test syslog CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
            .unwrap();
        Receiver {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
            ca_file,
            _dir: dir,
        }
    }

    impl Receiver {
        fn sink(&self, server_name: &str) -> SyslogSink {
            SyslogSink::new(SyslogTarget {
                address: self.listener.local_addr().unwrap().to_string(),
                server_name: server_name.into(),
                ca_file: self.ca_file.clone(),
                hostname: "node-a".into(),
                app_name: DEFAULT_APP_NAME.into(),
            })
            .unwrap()
        }

        async fn accept(&self) -> tokio_rustls::server::TlsStream<TcpStream> {
            let accepted = async {
                let (tcp, _) = self.listener.accept().await.unwrap();
                self.acceptor.accept(tcp).await.unwrap()
            };
            tokio::time::timeout(Duration::from_secs(5), accepted)
                .await
                .expect("the sink connects")
        }
    }

    /// Reads `count` octet-counted frames and returns their `seq`s, checking each message.
    async fn read_frames(
        stream: &mut tokio_rustls::server::TlsStream<TcpStream>,
        count: usize,
    ) -> Vec<i64> {
        let mut seqs = Vec::new();
        for _ in 0..count {
            let mut len = Vec::new();
            loop {
                let byte = stream.read_u8().await.unwrap();
                if byte == b' ' {
                    break;
                }
                assert!(byte.is_ascii_digit(), "MSG-LEN digit, got {byte}");
                len.push(byte);
            }
            let len: usize = std::str::from_utf8(&len).unwrap().parse().unwrap();
            let mut message = vec![0; len];
            stream.read_exact(&mut message).await.unwrap();
            let (header, json) = split(&message);
            assert!(header.starts_with("<85>1 "), "{header}");
            assert!(header.contains(" node-a portcullis - token.issued [portcullis@32473 seq=\""));
            seqs.push(json["seq"].as_i64().unwrap());
        }
        seqs
    }

    /// Nothing more arrives on `stream` for a moment.
    async fn nothing_more(stream: &mut tokio_rustls::server::TlsStream<TcpStream>) {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut byte)).await;
        assert!(read.is_err(), "unexpected {read:?}");
    }

    /// Delivers records `seqs` (all `token.issued`, `success`).
    async fn deliver(
        sink: &mut SyslogSink,
        seqs: std::ops::RangeInclusive<i64>,
    ) -> Result<(), ExportError> {
        let page: Vec<ReadRecord> = seqs.map(|s| record(s, "token.issued", "success")).collect();
        sink.deliver(&page).await
    }

    #[tokio::test]
    async fn delivers_over_one_connection_and_reconnects_when_the_receiver_closes_it() {
        let rx = receiver().await;
        let mut sink = rx.sink("localhost");
        assert_eq!(
            sink.describe(),
            format!("syslog {}", rx.listener.local_addr().unwrap())
        );

        let (sent, mut first) = tokio::join!(deliver(&mut sink, 1..=3), rx.accept());
        sent.unwrap();
        assert_eq!(read_frames(&mut first, 3).await, vec![1, 2, 3]);
        // The next page on the same connection (no new accept).
        deliver(&mut sink, 4..=5).await.unwrap();
        assert_eq!(read_frames(&mut first, 2).await, vec![4, 5]);

        // The receiver closes cleanly (close_notify, FIN): the next page goes to a new
        // connection, none of it into the closed one.
        first.shutdown().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (sent, mut second) = tokio::join!(deliver(&mut sink, 6..=8), rx.accept());
        sent.unwrap();
        assert_eq!(read_frames(&mut second, 3).await, vec![6, 7, 8]);
        // (The sink drops the old connection without a close_notify of its own.)
        let mut rest = Vec::new();
        let end = first.read_to_end(&mut rest).await;
        assert!(
            end.is_ok() || end.is_err_and(|e| e.kind() == std::io::ErrorKind::UnexpectedEof),
            "the old connection just ends"
        );
        assert!(rest.is_empty(), "nothing written after the close");

        // The receiver goes away without close_notify (its TCP connection just ends).
        let (tcp, _) = second.into_inner();
        drop(tcp);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (sent, mut third) = tokio::join!(deliver(&mut sink, 9..=9), rx.accept());
        sent.unwrap();
        assert_eq!(read_frames(&mut third, 1).await, vec![9]);
        nothing_more(&mut third).await;
    }

    #[tokio::test]
    async fn a_receiver_that_is_down_fails_the_page_until_it_is_back() {
        let rx = receiver().await;
        let address = rx.listener.local_addr().unwrap();
        let mut sink = rx.sink("localhost");
        let Receiver {
            listener,
            acceptor,
            ca_file,
            _dir,
        } = rx;
        drop(listener);
        let down = deliver(&mut sink, 1..=2).await.err().unwrap().0;
        assert!(down.contains(&address.to_string()), "{down}");
        let rx = Receiver {
            listener: TcpListener::bind(address).await.unwrap(),
            acceptor,
            ca_file,
            _dir,
        };
        let (sent, mut conn) = tokio::join!(deliver(&mut sink, 1..=2), rx.accept());
        sent.unwrap();
        assert_eq!(read_frames(&mut conn, 2).await, vec![1, 2]);
    }

    #[tokio::test]
    async fn a_receiver_with_another_name_is_refused() {
        let rx = receiver().await;
        let mut sink = rx.sink("syslog.example");
        let (sent, _) = tokio::join!(deliver(&mut sink, 1..=1), async {
            let (tcp, _) = rx.listener.accept().await.unwrap();
            rx.acceptor.accept(tcp).await.err()
        });
        let e = sent.err().unwrap().0;
        assert!(e.contains("TLS handshake"), "{e}");
    }
}
