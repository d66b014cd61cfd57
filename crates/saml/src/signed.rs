//! Reads an assertion from the bytes its signature covers (libxmlsec1's pre-digest buffer:
//! the exclusive-c14n form of the referenced element, the signature itself taken out). What is
//! not in these bytes cannot reach the grant.

use portcullis_core::saml::{parse_instant, Conditions, SamlAssertion, SubjectConfirmation};
use portcullis_core::UnixTime;
use roxmltree::Node;

use crate::xml::{at_most_one, children, exactly_one, is, issuer, parse, text, ASSERTION_NS};
use crate::SamlError;

/// Reads the signed bytes of the assertion whose `ID` is `expected_id` (what [`inspect`]
/// found in the received document: the bytes must be that very element).
///
/// [`inspect`]: crate::inspect
pub fn read_signed(signed: &str, expected_id: &str) -> Result<SamlAssertion, SamlError> {
    use SamlError::Structure;
    let doc = parse(signed)?;
    let root = doc.root_element();
    if !is(root, ASSERTION_NS, "Assertion") || root.attribute("ID") != Some(expected_id) {
        return Err(SamlError::SignatureShape(
            "the signed element is not the assertion that was sent",
        ));
    }
    if root.descendants().any(|n| n.is_comment() || n.is_pi()) {
        return Err(SamlError::CommentOrInstruction);
    }
    let issuer = issuer(root)?;
    let issue_instant = instant(root, "IssueInstant")?
        .ok_or(Structure("the assertion has no valid IssueInstant"))?;
    let subject = exactly_one(
        root,
        ASSERTION_NS,
        "Subject",
        "the assertion must have one Subject",
    )?;
    if subject
        .children()
        .any(|c| is(c, ASSERTION_NS, "BaseID") || is(c, ASSERTION_NS, "EncryptedID"))
    {
        return Err(Structure("the Subject must identify itself with a NameID"));
    }
    let name_id = exactly_one(
        subject,
        ASSERTION_NS,
        "NameID",
        "the Subject must have one NameID",
    )?;
    let confirmations = children(subject, ASSERTION_NS, "SubjectConfirmation")
        .map(confirmation)
        .collect::<Result<Vec<_>, _>>()?;
    let conditions = at_most_one(
        root,
        ASSERTION_NS,
        "Conditions",
        "the assertion has two Conditions",
    )?
    .map(read_conditions)
    .transpose()?;
    let mut attributes = Vec::new();
    for statement in children(root, ASSERTION_NS, "AttributeStatement") {
        for attribute in children(statement, ASSERTION_NS, "Attribute") {
            let name = attribute
                .attribute("Name")
                .filter(|n| !n.is_empty())
                .ok_or(Structure("every Attribute needs a Name"))?;
            // Values with element content (complex types) are not matchable text: the
            // attribute is left out rather than flattened into something it does not say.
            let values: Result<Vec<&str>, _> = children(attribute, ASSERTION_NS, "AttributeValue")
                .map(|v| text(v, "attribute value"))
                .collect();
            if let Ok(values) = values {
                attributes.push((
                    name.to_owned(),
                    values.into_iter().map(str::to_owned).collect(),
                ));
            }
        }
    }
    Ok(SamlAssertion {
        id: expected_id.to_owned(),
        issuer: issuer.to_owned(),
        issue_instant,
        name_id: text(name_id, "the NameID must be plain text")?.to_owned(),
        name_id_format: name_id.attribute("Format").map(str::to_owned),
        conditions,
        confirmations,
        attributes,
    })
}

fn confirmation(node: Node<'_, '_>) -> Result<SubjectConfirmation, SamlError> {
    let method = node.attribute("Method").ok_or(SamlError::Structure(
        "every SubjectConfirmation needs a Method",
    ))?;
    let data = at_most_one(
        node,
        ASSERTION_NS,
        "SubjectConfirmationData",
        "a SubjectConfirmation has two SubjectConfirmationData",
    )?;
    Ok(SubjectConfirmation {
        method: method.to_owned(),
        recipient: data
            .and_then(|d| d.attribute("Recipient"))
            .map(str::to_owned),
        not_before: data.map(|d| instant(d, "NotBefore")).transpose()?.flatten(),
        not_on_or_after: data
            .map(|d| instant(d, "NotOnOrAfter"))
            .transpose()?
            .flatten(),
        has_data: data.is_some(),
    })
}

/// `<Conditions>`: its window and audience restrictions. `OneTimeUse` is what the grant does
/// anyway (every assertion ID is spent once) and `ProxyRestriction` concerns issuing further
/// assertions, which we never do; any other condition is unknown and makes the assertion
/// invalid (SAML core §2.5.1, RFC 7522 §3 item 11).
fn read_conditions(node: Node<'_, '_>) -> Result<Conditions, SamlError> {
    let mut conditions = Conditions {
        not_before: instant(node, "NotBefore")?,
        not_on_or_after: instant(node, "NotOnOrAfter")?,
        audience_restrictions: Vec::new(),
    };
    for condition in node.children().filter(Node::is_element) {
        if is(condition, ASSERTION_NS, "AudienceRestriction") {
            let audiences = children(condition, ASSERTION_NS, "Audience")
                .map(|a| text(a, "an Audience must be plain text").map(str::to_owned))
                .collect::<Result<Vec<_>, _>>()?;
            conditions.audience_restrictions.push(audiences);
        } else if !(is(condition, ASSERTION_NS, "OneTimeUse")
            || is(condition, ASSERTION_NS, "ProxyRestriction"))
        {
            return Err(SamlError::Structure(
                "the assertion has a condition this server does not understand",
            ));
        }
    }
    Ok(conditions)
}

/// The instant in attribute `name`, if present; present but not a UTC `xs:dateTime` is refused.
fn instant(node: Node<'_, '_>, name: &str) -> Result<Option<UnixTime>, SamlError> {
    node.attribute(name)
        .map(|t| {
            parse_instant(t).ok_or(SamlError::Structure(
                "an instant of the assertion is not a UTC xs:dateTime",
            ))
        })
        .transpose()
}
