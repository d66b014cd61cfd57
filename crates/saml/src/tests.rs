//! The structure check and the signed-bytes reader on hand-written documents (the signature
//! itself is checked against real signers in the server's integration tests).

use super::*;

const SIGNATURE: &str = r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#_a1"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AAAA</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature>"##;

const BODY: &str = r#"<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">billing-batch</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="2027-01-15T08:05:00Z" Recipient="https://auth.example/oauth2/token"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="2027-01-15T07:59:00Z" NotOnOrAfter="2027-01-15T08:05:00Z"><saml:AudienceRestriction><saml:Audience>https://auth.example</saml:Audience></saml:AudienceRestriction><saml:OneTimeUse/></saml:Conditions><saml:AttributeStatement><saml:Attribute Name="department"><saml:AttributeValue>finance</saml:AttributeValue></saml:Attribute><saml:Attribute Name="complex"><saml:AttributeValue><x:y xmlns:x="urn:x"/></saml:AttributeValue></saml:Attribute></saml:AttributeStatement>"#;

fn assertion_with(signature: &str, body: &str) -> String {
    format!(
        r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a1" Version="2.0" IssueInstant="2027-01-15T08:00:00Z"><saml:Issuer>https://idp.example/saml</saml:Issuer>{signature}{body}</saml:Assertion>"#
    )
}

fn good() -> String {
    assertion_with(SIGNATURE, BODY)
}

#[test]
fn a_well_shaped_assertion_passes_and_names_its_id_and_issuer() {
    let inspected = inspect(&good()).unwrap();
    assert_eq!(inspected.id, "_a1");
    assert_eq!(inspected.issuer, "https://idp.example/saml");
}

#[test]
fn every_shape_an_attacker_needs_is_refused() {
    let sig = |from: &str, to: &str| good().replacen(from, to, 1);
    let cases: Vec<(&str, String, SamlError)> = vec![
        ("garbage", "<not xml".into(), SamlError::Malformed),
        (
            "external entity",
            format!("<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{}", good()),
            SamlError::Dtd,
        ),
        (
            "internal entity bomb",
            format!("<!DOCTYPE a [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;\">]>{}", good()),
            SamlError::Dtd,
        ),
        (
            "comment inside NameID",
            sig("billing-batch<", "billing<!---->-batch<"),
            SamlError::CommentOrInstruction,
        ),
        ("processing instruction", sig("<saml:Subject>", "<?x y?><saml:Subject>"), SamlError::CommentOrInstruction),
        (
            "response",
            format!(r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r">{}</samlp:Response>"#, assertion_with("", BODY)),
            SamlError::Response,
        ),
        ("other root", "<a/>".into(), SamlError::NotAnAssertion),
        (
            "encrypted id",
            sig("<saml:NameID ", r#"<saml:EncryptedID/><saml:NameID "#),
            SamlError::Encrypted,
        ),
        (
            "nested assertion (advice)",
            sig("<saml:Subject>", &format!("<saml:Advice>{}</saml:Advice><saml:Subject>", assertion_with("", BODY).replace("_a1", "_a2"))),
            SamlError::NestedAssertion,
        ),
        ("duplicate id", sig("<saml:Subject>", r#"<saml:Subject ID="_a1">"#), SamlError::Ids),
        ("xml:id", sig("<saml:Subject>", r#"<saml:Subject xml:id="_a1">"#), SamlError::Ids),
        ("no id", sig(r#" ID="_a1""#, ""), SamlError::Ids),
        ("version", sig(r#"Version="2.0""#, r#"Version="1.1""#), SamlError::Structure("the assertion's Version must be 2.0")),
        ("no issuer", sig("<saml:Issuer>https://idp.example/saml</saml:Issuer>", ""), SamlError::Structure("the assertion must have one Issuer")),
        ("unsigned", assertion_with("", BODY), SamlError::Unsigned),
        (
            "two signatures",
            assertion_with(&format!("{SIGNATURE}{SIGNATURE}"), BODY),
            SamlError::SignatureShape("the assertion must carry exactly one Signature"),
        ),
        (
            "signature moved into the subject",
            assertion_with("", &BODY.replacen("<saml:Subject>", &format!("<saml:Subject>{SIGNATURE}"), 1)),
            SamlError::SignatureShape("the Signature must be a direct child of the Assertion"),
        ),
        (
            "reference to another element",
            sig("URI=\"#_a1\"", "URI=\"#_other\""),
            SamlError::SignatureShape("the Signature's Reference must point at the Assertion's own ID"),
        ),
        (
            "reference to the whole document",
            sig("URI=\"#_a1\"", "URI=\"\""),
            SamlError::SignatureShape("the Signature's Reference must point at the Assertion's own ID"),
        ),
        (
            "second reference",
            sig("</ds:SignedInfo>", r##"<ds:Reference URI="#_a1"><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AA</ds:DigestValue></ds:Reference></ds:SignedInfo>"##),
            SamlError::SignatureShape("the Signature must have exactly one Reference"),
        ),
        (
            "xpath transform",
            sig("http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms>", "http://www.w3.org/TR/1999/REC-xpath-19991116\"/></ds:Transforms>"),
            SamlError::SignatureShape("only the enveloped-signature and exclusive c14n transforms are accepted"),
        ),
        (
            "no enveloped transform",
            sig(r#"<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>"#, ""),
            SamlError::SignatureShape("the Reference must use the enveloped-signature transform"),
        ),
        (
            "inclusive c14n 1.1",
            sig(r#"CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#""#, r#"CanonicalizationMethod Algorithm="http://www.w3.org/2006/12/xml-c14n11""#),
            SamlError::SignatureShape("the canonicalization must be exclusive XML c14n without comments (http://www.w3.org/2001/10/xml-exc-c14n#), as SAML requires"),
        ),
        (
            "c14n with comments",
            sig(r#"CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#""#, r#"CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#WithComments""#),
            SamlError::SignatureShape("the canonicalization must be exclusive XML c14n without comments (http://www.w3.org/2001/10/xml-exc-c14n#), as SAML requires"),
        ),
        (
            "rsa-sha1",
            sig("xmldsig-more#rsa-sha256", "xmldsig#rsa-sha1"),
            SamlError::SignatureShape("the signature method must be RSA or ECDSA with SHA-256, SHA-384 or SHA-512"),
        ),
        (
            "hmac",
            sig("xmldsig-more#rsa-sha256", "xmldsig-more#hmac-sha256"),
            SamlError::SignatureShape("the signature method must be RSA or ECDSA with SHA-256, SHA-384 or SHA-512"),
        ),
        (
            "sha1 digest",
            sig("xmlenc#sha256", "xmldsig#sha1"),
            SamlError::SignatureShape("the digest method must be SHA-256, SHA-384 or SHA-512"),
        ),
        (
            "object in the signature",
            sig("</ds:Signature>", "<ds:Object><x/></ds:Object></ds:Signature>"),
            SamlError::SignatureShape("Signature Object and Manifest elements are refused"),
        ),
    ];
    for (name, xml, want) in cases {
        assert_eq!(inspect(&xml), Err(want), "{name}");
    }
}

/// The signed bytes as libxmlsec1 hands them over: the assertion without its signature.
fn signed(body: &str) -> String {
    assertion_with("", body)
}

#[test]
fn the_signed_bytes_are_read_into_the_assertion() {
    let a = read_signed(&signed(BODY), "_a1").unwrap();
    assert_eq!(a.issuer, "https://idp.example/saml");
    assert_eq!(a.name_id, "billing-batch");
    assert_eq!(a.issue_instant, 1_800_000_000);
    assert_eq!(a.confirmations.len(), 1);
    assert_eq!(
        a.confirmations[0].recipient.as_deref(),
        Some("https://auth.example/oauth2/token")
    );
    assert_eq!(a.confirmations[0].not_on_or_after, Some(1_800_000_300));
    let conditions = a.conditions.unwrap();
    assert_eq!(
        conditions.audience_restrictions,
        vec![vec!["https://auth.example".to_owned()]]
    );
    assert_eq!(conditions.not_before, Some(1_799_999_940));
    // The attribute with element content is left out, not flattened.
    assert_eq!(
        a.attributes,
        vec![("department".to_owned(), vec!["finance".to_owned()])]
    );
}

#[test]
fn signed_bytes_that_are_not_the_sent_assertion_or_not_plain_are_refused() {
    assert!(matches!(
        read_signed(&signed(BODY), "_other"),
        Err(SamlError::SignatureShape(_))
    ));
    let bent = |from: &str, to: &str| read_signed(&signed(&BODY.replacen(from, to, 1)), "_a1");
    assert!(
        bent("billing-batch", "billing<b/>batch").is_err(),
        "element inside NameID"
    );
    assert!(
        bent("<saml:NameID", "<saml:NameID>x</saml:NameID><saml:NameID").is_err(),
        "two NameIDs"
    );
    assert!(
        bent("<saml:OneTimeUse/>", "<saml:Condition/>").is_err(),
        "unknown condition"
    );
    assert!(
        bent("2027-01-15T08:05:00Z", "tomorrow").is_err(),
        "bad instant"
    );
    assert!(
        bent("<saml:NameID", "<saml:BaseID/><saml:NameID").is_err(),
        "BaseID"
    );
    assert!(
        bent(" Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\"", "").is_err(),
        "no Method"
    );
}

#[test]
fn the_parameter_is_base64url_of_at_most_64_kib() {
    use base64::Engine as _;
    let xml = good();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&xml);
    assert_eq!(decode_param(&b64).unwrap(), xml);
    let padded = base64::engine::general_purpose::URL_SAFE.encode(&xml);
    assert_eq!(decode_param(&padded).unwrap(), xml);
    assert_eq!(decode_param("a b"), Err(SamlError::Encoding));
    assert_eq!(decode_param("+/+/"), Err(SamlError::Encoding));
    assert_eq!(decode_param("_w"), Err(SamlError::Encoding), "not UTF-8");
    let huge = "A".repeat(MAX_ASSERTION_BYTES / 3 * 4 + 8);
    assert_eq!(decode_param(&huge), Err(SamlError::TooLarge));
}

#[test]
fn pem_certificates_are_read_in_order() {
    let pem = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\nx\n-----BEGIN CERTIFICATE-----\nAwQF\n-----END CERTIFICATE-----\n";
    assert_eq!(
        pem_certificates(pem).unwrap(),
        vec![vec![0, 1, 2], vec![3, 4, 5]]
    );
    assert!(pem_certificates("nothing").is_err());
    assert!(
        pem_certificates("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----").is_err()
    );
}

/// The real signature check on an xmlsec1-signed fixture (the bench's): it verifies with the
/// IdP's certificate, not with another, and not once a signed value changed.
#[cfg(feature = "xmlsec")]
#[test]
fn libxmlsec1_verifies_the_fixture_and_nothing_bent() {
    let xml = include_str!("../benches/fixtures/assertion.xml");
    let certificates = pem_certificates(include_str!("../benches/fixtures/idp.pem")).unwrap();
    let inspected = inspect(xml).unwrap();
    let assertion = verify(xml, &inspected, &certificates).unwrap();
    assert_eq!(assertion.name_id, "billing-batch");
    assert_eq!(assertion.id, "_a1");

    let bent = xml.replacen("billing-batch", "billing-batcH", 1);
    assert_eq!(
        verify(&bent, &inspect(&bent).unwrap(), &certificates),
        Err(SamlError::BadSignature)
    );
    let other = pem_certificates(include_str!("../benches/fixtures/other.pem")).unwrap();
    assert_eq!(
        verify(xml, &inspected, &other),
        Err(SamlError::BadSignature)
    );
    // The right certificate after a wrong one (a rollover list) still verifies.
    let both = [other, certificates.clone()].concat();
    assert!(verify(xml, &inspected, &both).is_ok());
    assert_eq!(verify(xml, &inspected, &[]), Err(SamlError::BadSignature));
}
