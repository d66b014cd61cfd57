//! A SAML identity provider for the RFC 7522 tests: its own key and self-signed certificate
//! (made by `openssl`), assertions written as an IdP writes them, and signatures made by
//! implementations nobody here wrote — the `xmlsec1` command-line tool and Python `signxml`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

pub const ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";

pub struct SamlIdp {
    pub entity_id: String,
    _dir: tempfile::TempDir,
    pub key: PathBuf,
    pub cert: PathBuf,
    /// The `SignatureMethod` its key signs with in xmlsec1 templates.
    pub signature_method: &'static str,
}

impl SamlIdp {
    /// An IdP with a fresh RSA 2048 key.
    pub fn rsa(entity_id: &str) -> SamlIdp {
        Self::with_key(entity_id, &["-newkey", "rsa:2048"], "rsa-sha256")
    }

    /// An IdP with a fresh ECDSA P-256 key.
    pub fn ec(entity_id: &str) -> SamlIdp {
        Self::with_key(
            entity_id,
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "ecdsa-sha256",
        )
    }

    fn with_key(entity_id: &str, key_args: &[&str], method: &'static str) -> SamlIdp {
        let dir = tempfile::tempdir().expect("tempdir");
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=saml-idp",
            ])
            .args(key_args)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        SamlIdp {
            entity_id: entity_id.to_owned(),
            _dir: dir,
            key,
            cert,
            signature_method: method,
        }
    }

    pub fn cert_pem(&self) -> String {
        std::fs::read_to_string(&self.cert).unwrap()
    }

    /// Signs `xml`, which holds [`signature_template`] for the element with ID `id`, with the
    /// `xmlsec1` tool (the key's certificate goes into `KeyInfo`, as IdPs do).
    pub fn sign_xmlsec1(&self, xml: &str, id_attr_element: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.xml");
        std::fs::write(&input, xml).unwrap();
        let out = Command::new("xmlsec1")
            .arg("--sign")
            .arg("--privkey-pem")
            .arg(format!("{},{}", self.key.display(), self.cert.display()))
            .arg("--id-attr:ID")
            .arg(id_attr_element)
            .arg(&input)
            .output()
            .expect("xmlsec1");
        assert!(
            out.status.success(),
            "xmlsec1: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Signs `xml` (no template) with Python signxml: `algorithm` as signxml names it,
    /// `c14n` the canonicalization (None: exclusive c14n).
    pub fn sign_signxml(
        &self,
        interop: &Path,
        xml: &str,
        algorithm: &str,
        c14n: Option<&str>,
    ) -> String {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/saml_sign.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg(&self.key)
            .arg(&self.cert)
            .arg(algorithm);
        if let Some(c14n) = c14n {
            cmd.arg(c14n);
        }
        let mut child = cmd
            .env("PYTHONPATH", interop.join("python"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(xml.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "signxml: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// An xmlsec1 signature template (enveloped, exclusive c14n, SHA-256 digest) for `#id`,
/// with `method` (`rsa-sha256`, `ecdsa-sha256`, `rsa-sha1`, ...) from xmldsig-more (or
/// xmldsig for SHA-1).
pub fn signature_template(id: &str, method: &str) -> String {
    let method_uri = if method.ends_with("sha1") {
        format!("http://www.w3.org/2000/09/xmldsig#{method}")
    } else {
        format!("http://www.w3.org/2001/04/xmldsig-more#{method}")
    };
    format!(
        r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{method_uri}"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>"##
    )
}

/// What an assertion says; [`Assertion::new`] fills a good one, tests bend one field.
#[derive(Clone)]
pub struct Assertion {
    pub id: String,
    pub issuer: String,
    pub name_id: String,
    pub audience: String,
    pub recipient: String,
    pub issue_instant: i64,
    pub not_before: i64,
    pub not_on_or_after: i64,
    pub confirmation_not_on_or_after: i64,
    pub method: String,
    pub attributes: Vec<(String, String)>,
}

impl Assertion {
    pub fn new(idp: &SamlIdp, token_endpoint: &str, audience: &str, name_id: &str) -> Assertion {
        let now = super::gateway::now();
        Assertion {
            id: format!("_{}", uuid_like()),
            issuer: idp.entity_id.clone(),
            name_id: name_id.to_owned(),
            audience: audience.to_owned(),
            recipient: token_endpoint.to_owned(),
            issue_instant: now,
            not_before: now - 10,
            not_on_or_after: now + 300,
            confirmation_not_on_or_after: now + 300,
            method: "urn:oasis:names:tc:SAML:2.0:cm:bearer".into(),
            attributes: vec![("department".into(), "finance".into())],
        }
    }

    /// The assertion XML; `signature` goes right after the Issuer (empty: unsigned).
    pub fn xml(&self, signature: &str) -> String {
        let attributes: String = self
            .attributes
            .iter()
            .map(|(n, v)| format!(r#"<saml:Attribute Name="{n}"><saml:AttributeValue>{v}</saml:AttributeValue></saml:Attribute>"#))
            .collect();
        format!(
            r#"<saml:Assertion xmlns:saml="{ASSERTION_NS}" ID="{id}" Version="2.0" IssueInstant="{issued}"><saml:Issuer>{issuer}</saml:Issuer>{signature}<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">{name_id}</saml:NameID><saml:SubjectConfirmation Method="{method}"><saml:SubjectConfirmationData NotOnOrAfter="{confirm_until}" Recipient="{recipient}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{not_before}" NotOnOrAfter="{not_after}"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{issued}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:X509</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement>{attributes}</saml:AttributeStatement></saml:Assertion>"#,
            id = self.id,
            issued = instant(self.issue_instant),
            issuer = self.issuer,
            name_id = self.name_id,
            method = self.method,
            confirm_until = instant(self.confirmation_not_on_or_after),
            recipient = self.recipient,
            not_before = instant(self.not_before),
            not_after = instant(self.not_on_or_after),
            audience = self.audience,
        )
    }

    /// Signed by `idp` with xmlsec1.
    pub fn signed(&self, idp: &SamlIdp) -> String {
        idp.sign_xmlsec1(
            &self.xml(&signature_template(&self.id, idp.signature_method)),
            &format!("{ASSERTION_NS}:Assertion"),
        )
    }
}

/// The grant's `assertion` parameter: base64url without padding.
pub fn param(xml: &str) -> String {
    URL_SAFE_NO_PAD.encode(xml)
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time.
pub use portcullis_core::time::rfc3339 as instant;

/// A fresh assertion ID (an NCName: starts with `_`).
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{nanos:x}{:x}{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
