//! The structure check of a received assertion, before any signature code sees it: the one
//! shape a signed bearer assertion has, and nothing an attacker could use to make the signed
//! element differ from the one read.

use std::collections::BTreeSet;

use roxmltree::Node;

use crate::xml::{
    at_most_one, children, exactly_one, is, issuer, parse, ASSERTION_NS, DSIG_NS, ENVELOPED,
    EXC_C14N, PROTOCOL_NS, XML_NS,
};
use crate::SamlError;

/// Signature methods accepted: RSA PKCS#1 v1.5 and ECDSA with SHA-2 (no SHA-1, no DSA, no HMAC:
/// an identity provider signs with a key pair).
pub(crate) const SIGNATURE_METHODS: [&str; 6] = [
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];
/// Digest methods accepted: SHA-2.
const DIGEST_METHODS: [&str; 3] = [
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];

/// What the structure check learnt: enough to find the identity provider and to tie the
/// signed bytes back to this assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// The root assertion's `ID` (the signature's one reference points at it).
    pub id: String,
    /// Its `<saml:Issuer>`, to pick the certificates. Not yet trusted: the signed bytes are
    /// read again and must name the same issuer.
    pub issuer: String,
}

/// Checks the received document's shape; see the crate documentation for the list.
pub fn inspect(xml: &str) -> Result<Inspected, SamlError> {
    let doc = parse(xml)?;
    if doc.descendants().any(|n| n.is_comment() || n.is_pi()) {
        return Err(SamlError::CommentOrInstruction);
    }
    let root = doc.root_element();
    if is(root, PROTOCOL_NS, "Response") {
        return Err(SamlError::Response);
    }
    if is(root, ASSERTION_NS, "EncryptedAssertion") {
        return Err(SamlError::Encrypted);
    }
    if !is(root, ASSERTION_NS, "Assertion") {
        return Err(SamlError::NotAnAssertion);
    }
    for node in root.descendants().filter(|n| n.is_element() && *n != root) {
        let name = node.tag_name();
        if name.namespace() == Some(ASSERTION_NS) {
            match name.name() {
                "EncryptedAssertion" | "EncryptedID" | "EncryptedAttribute" => {
                    return Err(SamlError::Encrypted)
                }
                "Assertion" | "AssertionIDRef" | "AssertionURIRef" => {
                    return Err(SamlError::NestedAssertion)
                }
                _ => {}
            }
        }
    }
    let id = unique_ids(root)?;
    if root.attribute("Version") != Some("2.0") {
        return Err(SamlError::Structure("the assertion's Version must be 2.0"));
    }
    let issuer = issuer(root)?;
    check_signature(root, &id)?;
    Ok(Inspected {
        id,
        issuer: issuer.to_owned(),
    })
}

/// Every `ID` attribute value is unique, no `xml:id` exists (libxml2 would index it as an ID a
/// reference could resolve to), and the root has an `ID`, which is returned.
fn unique_ids(root: Node<'_, '_>) -> Result<String, SamlError> {
    let mut seen = BTreeSet::new();
    for node in root.descendants().filter(Node::is_element) {
        for attribute in node.attributes() {
            match (attribute.namespace(), attribute.name()) {
                (Some(XML_NS), "id") => return Err(SamlError::Ids),
                (None, "ID") if !seen.insert(attribute.value()) => return Err(SamlError::Ids),
                _ => {}
            }
        }
    }
    match root.attribute("ID") {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => Err(SamlError::Ids),
    }
}

/// Exactly one `<ds:Signature>` in the document, directly under the assertion, with one
/// reference to the assertion's own ID through enveloped-signature and exclusive c14n only,
/// SHA-2 algorithms, and no `<Object>` (content that is carried but not what is signed).
fn check_signature(root: Node<'_, '_>, id: &str) -> Result<(), SamlError> {
    use SamlError::SignatureShape as Shape;
    let mut signatures = root.descendants().filter(|n| is(*n, DSIG_NS, "Signature"));
    let signature = signatures.next().ok_or(SamlError::Unsigned)?;
    if signatures.next().is_some() {
        return Err(Shape("the assertion must carry exactly one Signature"));
    }
    if signature.parent_element() != Some(root) {
        return Err(Shape(
            "the Signature must be a direct child of the Assertion",
        ));
    }
    if children(signature, DSIG_NS, "Object").next().is_some()
        || signature.descendants().any(|n| is(n, DSIG_NS, "Manifest"))
    {
        return Err(Shape("Signature Object and Manifest elements are refused"));
    }
    let signed_info = exactly_one(
        signature,
        DSIG_NS,
        "SignedInfo",
        "the Signature needs one SignedInfo",
    )?;
    let c14n = exactly_one(
        signed_info,
        DSIG_NS,
        "CanonicalizationMethod",
        "SignedInfo needs one CanonicalizationMethod",
    )?;
    if c14n.attribute("Algorithm") != Some(EXC_C14N) {
        return Err(Shape(
            "the canonicalization must be exclusive XML c14n without comments (http://www.w3.org/2001/10/xml-exc-c14n#), as SAML requires",
        ));
    }
    let method = exactly_one(
        signed_info,
        DSIG_NS,
        "SignatureMethod",
        "SignedInfo needs one SignatureMethod",
    )?;
    if !method
        .attribute("Algorithm")
        .is_some_and(|a| SIGNATURE_METHODS.contains(&a))
    {
        return Err(Shape(
            "the signature method must be RSA or ECDSA with SHA-256, SHA-384 or SHA-512",
        ));
    }
    let mut references = children(signed_info, DSIG_NS, "Reference");
    let reference = references
        .next()
        .ok_or(Shape("the Signature must have one Reference"))?;
    if references.next().is_some() {
        return Err(Shape("the Signature must have exactly one Reference"));
    }
    let target = reference.attribute("URI").and_then(|u| u.strip_prefix('#'));
    if target != Some(id) {
        return Err(Shape(
            "the Signature's Reference must point at the Assertion's own ID",
        ));
    }
    let digest = exactly_one(
        reference,
        DSIG_NS,
        "DigestMethod",
        "the Reference needs one DigestMethod",
    )?;
    if !digest
        .attribute("Algorithm")
        .is_some_and(|a| DIGEST_METHODS.contains(&a))
    {
        return Err(Shape(
            "the digest method must be SHA-256, SHA-384 or SHA-512",
        ));
    }
    let transforms = at_most_one(
        reference,
        DSIG_NS,
        "Transforms",
        "the Reference has two Transforms",
    )?
    .ok_or(Shape(
        "the Reference must use the enveloped-signature transform",
    ))?;
    let mut enveloped = false;
    for transform in transforms.children().filter(Node::is_element) {
        if !is(transform, DSIG_NS, "Transform") {
            return Err(Shape("Transforms may hold only Transform elements"));
        }
        match transform.attribute("Algorithm") {
            Some(ENVELOPED) if transform.children().all(|c| c.is_text()) => enveloped = true,
            // Its only possible child is the InclusiveNamespaces prefix list.
            Some(EXC_C14N)
                if transform
                    .children()
                    .filter(Node::is_element)
                    .all(|c| is(c, EXC_C14N, "InclusiveNamespaces")) => {}
            _ => {
                return Err(Shape(
                    "only the enveloped-signature and exclusive c14n transforms are accepted",
                ))
            }
        }
    }
    if !enveloped {
        return Err(Shape(
            "the Reference must use the enveloped-signature transform",
        ));
    }
    Ok(())
}
