//! Small readers over `roxmltree` shared by the structure check and the signed-bytes reader.

use roxmltree::{Document, Node, ParsingOptions};

use crate::SamlError;

pub(crate) const ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub(crate) const PROTOCOL_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(crate) const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub(crate) const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub(crate) const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
/// The namespace of `xml:id`, which libxml2 treats as an ID whatever the schema says.
pub(crate) const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Parses with DTDs refused (so no entity can be declared, internal or external) and a node
/// budget well above any real assertion.
pub(crate) fn parse(text: &str) -> Result<Document<'_>, SamlError> {
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: 20_000,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(text, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => SamlError::Dtd,
        _ => SamlError::Malformed,
    })
}

/// Whether `node` is the element `{ns}name`.
pub(crate) fn is(node: Node<'_, '_>, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().namespace() == Some(ns) && node.tag_name().name() == name
}

/// The element children `{ns}name` of `node`.
pub(crate) fn children<'a, 'input: 'a>(
    node: Node<'a, 'input>,
    ns: &'a str,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    node.children().filter(move |c| is(*c, ns, name))
}

/// The one child `{ns}name`, if any; two are refused with `what`.
pub(crate) fn at_most_one<'a, 'input: 'a>(
    node: Node<'a, 'input>,
    ns: &'a str,
    name: &'a str,
    what: &'static str,
) -> Result<Option<Node<'a, 'input>>, SamlError> {
    let mut all = children(node, ns, name);
    let first = all.next();
    if all.next().is_some() {
        return Err(SamlError::Structure(what));
    }
    Ok(first)
}

/// The one child `{ns}name`; none or two are refused with `what`.
pub(crate) fn exactly_one<'a, 'input: 'a>(
    node: Node<'a, 'input>,
    ns: &'a str,
    name: &'a str,
    what: &'static str,
) -> Result<Node<'a, 'input>, SamlError> {
    at_most_one(node, ns, name, what)?.ok_or(SamlError::Structure(what))
}

/// The element's whole text, which must be its only content (no child elements; one text
/// node at most, so nothing can hide a second piece of it).
pub(crate) fn text<'a>(node: Node<'a, '_>, what: &'static str) -> Result<&'a str, SamlError> {
    let mut content = node.children();
    let value = match (content.next(), content.next()) {
        (None, _) => "",
        (Some(only), None) if only.is_text() => only.text().unwrap_or_default(),
        _ => return Err(SamlError::Structure(what)),
    };
    Ok(value)
}

/// The assertion's one `<saml:Issuer>`, as plain text.
pub(crate) fn issuer<'a>(assertion: Node<'a, '_>) -> Result<&'a str, SamlError> {
    text(
        exactly_one(
            assertion,
            ASSERTION_NS,
            "Issuer",
            "the assertion must have one Issuer",
        )?,
        "the assertion's Issuer must be plain text",
    )
}
