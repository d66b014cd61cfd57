//! The SAML 2.0 bearer assertion grant (RFC 7522) end to end: assertions signed by the
//! `xmlsec1` tool and by Python `signxml` become tokens of the client a policy names, and the
//! attacks on XML signatures — wrapping, DTDs and entities, comments inside NameID, unsigned
//! assertions in signed responses, keys the IdP never had — are refused with a clear error.

use crate::support;

use serde_json::json;
use support::saml::{param, signature_template, Assertion, SamlIdp, ASSERTION_NS};
use support::{basic_header, jwt_payload, Answer, Node};

const GRANT: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Asaml2-bearer";
const CORP: &str = "https://idp.corp.example/saml";
const PLANT: &str = "https://sso.plant.example/idp";

/// TOML basic string of a PEM text.
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\n', "\\n"))
}

/// A node trusting `corp` and `plant` as SAML identity providers, a policy for each, and the
/// clients they map to.
fn saml_node(corp: &SamlIdp, plant: &SamlIdp) -> Node {
    saml_node_with_env(corp, plant, &[])
}

/// [`saml_node`] with extra environment.
fn saml_node_with_env(corp: &SamlIdp, plant: &SamlIdp, env: &[(&str, &str)]) -> Node {
    let issuers = format!(
        r#"[{{ name = "corp", entity_id = "{CORP}", certificates = [{}] }}, {{ name = "plant", entity_id = "{PLANT}", certificates = [{}], max_lifetime_secs = 900 }}]"#,
        toml_string(&corp.cert_pem()),
        toml_string(&plant.cert_pem()),
    );
    let policies = r#"[{ name = "billing", issuer = "corp", claims = { sub = "billing-*", department = "finance" }, client_id = "billing", scopes = ["invoices:read", "invoices:write"] }, { name = "scada", issuer = "plant", claims = { sub = "historian" }, client_id = "historian", scopes = ["telemetry:read"] }]"#;
    let saml = [
        ("PORTCULLIS_FEDERATION__SAML_ISSUERS", issuers.as_str()),
        ("PORTCULLIS_FEDERATION__POLICIES", policies),
    ];
    let node = Node::start_with_env(&[&saml[..], env].concat());
    node.create_client(&["--id", "billing", "--scope", "invoices:read"]);
    node.create_client(&["--id", "historian", "--scope", "telemetry:read"]);
    node
}

fn endpoint(node: &Node) -> String {
    format!("{}/oauth2/token", node.base)
}

fn exchange(node: &Node, xml: &str, extra: &[(&str, &str)]) -> Answer {
    exchange_param(node, &param(xml), extra)
}

fn exchange_param(node: &Node, assertion: &str, extra: &[(&str, &str)]) -> Answer {
    node.assertion_grant(GRANT, assertion, extra)
}

fn refused(answer: &Answer, code: &str, description: &str, case: &str) {
    assert_eq!(answer.status, 400, "{case}: {}", answer.text);
    assert_eq!(answer.error(), code, "{case}: {}", answer.text);
    assert!(
        answer.json["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains(description),
        "{case}: wanted {description:?} in {}",
        answer.text
    );
    assert!(answer.json.get("access_token").is_none(), "{case}");
}

#[test]
fn an_xmlsec1_signed_assertion_becomes_a_token_of_the_mapped_client_once() {
    let (corp, plant) = (SamlIdp::rsa(CORP), SamlIdp::ec(PLANT));
    let node = saml_node(&corp, &plant);
    let discovery = node.get("/.well-known/oauth-authorization-server");
    assert!(
        discovery.json["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("urn:ietf:params:oauth:grant-type:saml2-bearer")),
        "{}",
        discovery.text
    );

    let assertion = Assertion::new(&corp, &endpoint(&node), &node.base, "billing-batch-7");
    let signed = assertion.signed(&corp);
    let answer = exchange(&node, &signed, &[]);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["token_type"], "Bearer");
    let payload = jwt_payload(answer.json["access_token"].as_str().unwrap());
    assert_eq!(payload["sub"], "billing");
    assert_eq!(payload["client_id"], "billing");
    assert_eq!(
        payload["federated"],
        json!({"iss": CORP, "sub": "billing-batch-7"})
    );
    // The policy allows read and write; the client has only read.
    assert_eq!(payload["scope"], "invoices:read");
    assert!(payload["exp"].as_i64().unwrap() <= assertion.confirmation_not_on_or_after);

    // An assertion expiring in 30 s gets a token that ends with it, not the client's TTL.
    let mut expiring = Assertion::new(&corp, &endpoint(&node), &node.base, "billing-batch-7");
    expiring.not_on_or_after = support::gateway::now() + 30;
    expiring.confirmation_not_on_or_after = expiring.not_on_or_after;
    let answer = exchange(&node, &expiring.signed(&corp), &[]);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.json["expires_in"].as_i64().unwrap() <= 30,
        "{}",
        answer.text
    );
    let payload = jwt_payload(answer.json["access_token"].as_str().unwrap());
    assert!(payload["exp"].as_i64().unwrap() <= expiring.not_on_or_after);

    // RFC 7522 §3 item 8: an assertion ID is spent once.
    let replay = exchange(&node, &signed, &[]);
    refused(&replay, "invalid_grant", "already used", "replay");

    // The ECDSA IdP, and the token endpoint URL as the audience.
    let mut scada = Assertion::new(&plant, &endpoint(&node), &endpoint(&node), "historian");
    scada.attributes.clear();
    let answer = exchange(&node, &scada.signed(&plant), &[]);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        jwt_payload(answer.json["access_token"].as_str().unwrap())["sub"],
        "historian"
    );

    // Client authentication is optional (§3.1); when sent it must be the policy's client.
    let (other, other_secret) = node.create_client(&["--scope", "invoices:read"]);
    let fresh = Assertion::new(&corp, &endpoint(&node), &node.base, "billing-batch-7");
    let wrong = exchange(
        &node,
        &fresh.signed(&corp),
        &[("Authorization", &basic_header(&other, &other_secret))],
    );
    refused(
        &wrong,
        "invalid_grant",
        "another client",
        "authenticated as another client",
    );

    let issued = node.issued_record("billing");
    assert_eq!(issued["detail"]["auth_method"], "saml2_bearer", "{issued}");
    assert_eq!(
        issued["detail"]["federated"]["policy"], "billing",
        "{issued}"
    );
}

#[test]
fn signxml_signed_assertions_are_accepted_with_rsa_and_ecdsa() {
    let Some(interop) = std::env::var_os("PORTCULLIS_INTEROP_DIR").map(std::path::PathBuf::from)
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "PORTCULLIS_INTEROP_DIR is not set in CI"
        );
        eprintln!("skipping signxml: run scripts/test.sh (it installs signxml)");
        return;
    };
    let (corp, plant) = (SamlIdp::rsa(CORP), SamlIdp::ec(PLANT));
    let node = saml_node(&corp, &plant);
    for (idp, name_id, algorithm) in [
        (&corp, "billing-nightly", "rsa-sha256"),
        (&corp, "billing-nightly", "rsa-sha512"),
        (&plant, "historian", "ecdsa-sha256"),
        (&plant, "historian", "ecdsa-sha384"),
    ] {
        let assertion = Assertion::new(idp, &endpoint(&node), &node.base, name_id);
        let signed = idp.sign_signxml(&interop, &assertion.xml(""), algorithm, None);
        let answer = exchange(&node, &signed, &[]);
        assert_eq!(answer.status, 200, "{algorithm}: {}", answer.text);
        assert_eq!(
            jwt_payload(answer.json["access_token"].as_str().unwrap())["federated"]["sub"],
            name_id
        );
    }
    // signxml's default canonicalization is inclusive c14n 1.1, which SAML does not use.
    let assertion = Assertion::new(&corp, &endpoint(&node), &node.base, "billing-nightly");
    let c14n11 = corp.sign_signxml(
        &interop,
        &assertion.xml(""),
        "rsa-sha256",
        Some("http://www.w3.org/2006/12/xml-c14n11"),
    );
    refused(
        &exchange(&node, &c14n11, &[]),
        "invalid_grant",
        "exclusive XML c14n",
        "c14n 1.1",
    );
}

/// RFC 7522 §3, SAML core and the XML signature attacks, one bent assertion at a time: each
/// gets a 400 that names the rule, and no token.
#[test]
fn hostile_saml_assertions_are_refused() {
    let (corp, plant) = (SamlIdp::rsa(CORP), SamlIdp::ec(PLANT));
    // A JSON log, with what libxmlsec1 prints about bad signatures shown: it must be JSON too.
    let log = [
        ("PORTCULLIS_LOG__FORMAT", "json"),
        ("RUST_LOG", "info,portcullis::stderr=debug"),
    ];
    let node = saml_node_with_env(&corp, &plant, &log);
    let good = || Assertion::new(&corp, &endpoint(&node), &node.base, "billing-batch-7");
    let now = support::gateway::now();
    let stranger = SamlIdp::rsa(CORP);

    let bent = |bend: &dyn Fn(&mut Assertion)| {
        let mut a = good();
        bend(&mut a);
        a.signed(&corp)
    };
    // A signed original the wrapping cases reuse.
    let original = good();
    let signed_original = original.signed(&corp);
    let signature_of = |xml: &str| {
        let start = xml.find("<ds:Signature").unwrap();
        let end = xml.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
        xml[start..end].to_owned()
    };
    let original_signature = signature_of(&signed_original);
    let mut evil = original.clone();
    evil.name_id = "billing-admin".into();
    let without_declaration = |xml: &str| {
        xml.trim_start_matches("<?xml version=\"1.0\"?>\n")
            .to_owned()
    };

    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            // Within the 60 s skew NotBefore gets, but an expiry gets none.
            "expired 30 s ago",
            bent(&|a| {
                a.issue_instant = now - 900;
                a.not_before = now - 900;
                a.not_on_or_after = now - 30;
                a.confirmation_not_on_or_after = now - 30;
            }),
            "invalid_grant",
            "has expired",
        ),
        (
            "not yet valid",
            bent(&|a| a.not_before = now + 600),
            "invalid_grant",
            "not valid yet",
        ),
        (
            "wrong audience",
            bent(&|a| a.audience = "https://other-as.example".into()),
            "invalid_grant",
            "not for this server (Audience)",
        ),
        (
            "wrong recipient",
            bent(&|a| a.recipient = "https://other-as.example/oauth2/token".into()),
            "invalid_grant",
            "Recipient is not this token endpoint",
        ),
        (
            "holder-of-key instead of bearer",
            bent(&|a| a.method = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key".into()),
            "invalid_grant",
            "no usable bearer SubjectConfirmation",
        ),
        (
            "lives longer than the issuer allows",
            bent(&|a| {
                a.not_on_or_after = now + 7200;
                a.confirmation_not_on_or_after = now + 7200;
            }),
            "invalid_grant",
            "longer than its issuer's max_lifetime_secs",
        ),
        (
            "unknown identity provider",
            bent(&|a| a.issuer = "https://idp.evil.example/saml".into()),
            "invalid_grant",
            "not a trusted SAML identity provider",
        ),
        (
            "no policy for the subject",
            bent(&|a| a.name_id = "payroll-batch".into()),
            "invalid_grant",
            "no trust policy",
        ),
        (
            "no policy for the attribute value",
            bent(&|a| a.attributes = vec![("department".into(), "finance-evil".into())]),
            "invalid_grant",
            "no trust policy",
        ),
        (
            "signed by a key the IdP never had (its certificate in KeyInfo)",
            good().signed(&stranger),
            "invalid_grant",
            "does not verify",
        ),
        (
            "NameID changed after signing",
            signed_original.replacen("billing-batch-7", "billing-batch-8", 1),
            "invalid_grant",
            "does not verify",
        ),
        (
            "wrapping: evil root with the original signature (same ID)",
            evil.xml(&original_signature),
            "invalid_grant",
            "does not verify",
        ),
        (
            "wrapping: evil root, signed original hidden inside",
            {
                let mut root = good();
                root.name_id = "billing-admin".into();
                root.xml(&original_signature).replacen(
                    "<saml:Subject>",
                    &format!(
                        "<saml:Advice>{}</saml:Advice><saml:Subject>",
                        without_declaration(&signed_original)
                    ),
                    1,
                )
            },
            "invalid_grant",
            "may not contain other assertions",
        ),
        (
            "wrapping: evil root with another ID, signature pointing into an Object",
            {
                let mut root = good();
                root.id = "_evil".into();
                root.name_id = "billing-admin".into();
                let moved = original_signature.replacen(
                    "</ds:Signature>",
                    &format!(
                        "<ds:Object>{}</ds:Object></ds:Signature>",
                        without_declaration(&original.xml(""))
                    ),
                    1,
                );
                root.xml(&moved)
            },
            "invalid_grant",
            "may not contain other assertions",
        ),
        (
            "DTD with an external entity",
            format!(
                "<!DOCTYPE saml:Assertion [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>{}",
                without_declaration(&signed_original).replacen("billing-batch-7", "&xxe;", 1)
            ),
            "invalid_grant",
            "DTDs and entities are refused",
        ),
        (
            "comment inside NameID (the signature still verifies without it)",
            signed_original.replacen("billing-batch-7", "billing-batch<!---->-7", 1),
            "invalid_grant",
            "comments",
        ),
        ("unsigned", good().xml(""), "invalid_grant", "not signed"),
        (
            "unsigned assertion inside a signed response",
            {
                let response_id = "_response1";
                let response = format!(
                    r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="{response_id}" Version="2.0" IssueInstant="{}">{}{}</samlp:Response>"#,
                    support::saml::instant(now),
                    signature_template(response_id, "rsa-sha256"),
                    good().xml(""),
                );
                corp.sign_xmlsec1(&response, "urn:oasis:names:tc:SAML:2.0:protocol:Response")
            },
            "invalid_grant",
            "Response is not accepted",
        ),
        (
            "signed with RSA-SHA1",
            {
                let a = good();
                corp.sign_xmlsec1(
                    &a.xml(&signature_template(&a.id, "rsa-sha1")),
                    &format!("{ASSERTION_NS}:Assertion"),
                )
            },
            "invalid_grant",
            "SHA-256, SHA-384 or SHA-512",
        ),
        (
            "encrypted assertion",
            format!(
                r#"<saml:EncryptedAssertion xmlns:saml="{ASSERTION_NS}"><x/></saml:EncryptedAssertion>"#
            ),
            "invalid_grant",
            "encrypted",
        ),
        (
            "not XML",
            "this is not xml".into(),
            "invalid_grant",
            "not well-formed",
        ),
    ];
    for (case, xml, code, description) in &cases {
        refused(&exchange(&node, xml, &[]), code, description, case);
    }
    refused(
        &exchange_param(&node, "bm90IGJhc2U2NA%3D%3D%2B%2F", &[]),
        "invalid_request",
        "base64url",
        "standard base64",
    );
    // The token endpoint's body limit (64 KiB) comes before the assertion's own.
    let huge = exchange_param(&node, &"A".repeat(100_000), &[]);
    assert_eq!(huge.status, 413, "{}", huge.text);
    assert_eq!(huge.error(), "invalid_request");
    // After all of that, the untouched original is still good (no refusal spent its ID).
    let answer = exchange(&node, &signed_original, &[]);
    assert_eq!(answer.status, 200, "{}", answer.text);

    let log = node.log();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["source"] == "libxmlsec1" && e["level"] == "DEBUG"),
        "libxmlsec1's own lines should be log events:\n{log}"
    );
}

#[test]
fn saml_identity_providers_are_managed_through_the_cli_and_admin_api() {
    let corp = SamlIdp::rsa(CORP);
    let node = Node::start();
    node.create_client(&["--id", "billing", "--scope", "invoices:read"]);
    let file = node.data_dir.with_extension("trust.toml");
    std::fs::write(
        &file,
        format!(
            "[[saml_issuers]]\nname = \"corp\"\nentity_id = \"{CORP}\"\ncertificates = [\"\"\"\n{}\"\"\"]\n\n[[policies]]\nname = \"billing\"\nissuer = \"corp\"\nclient_id = \"billing\"\nclaims = {{ sub = \"billing-*\" }}\nscopes = [\"invoices:read\"]\n",
            corp.cert_pem()
        ),
    )
    .unwrap();
    let shown = node.cli_json(&["federation", "set", file.to_str().unwrap()]);
    assert_eq!(
        shown["admin"]["saml_issuers"][0]["entity_id"], CORP,
        "{shown}"
    );
    let assertion = Assertion::new(&corp, &endpoint(&node), &node.base, "billing-batch-1");
    let answer = exchange(&node, &assertion.signed(&corp), &[]);
    assert_eq!(answer.status, 200, "{}", answer.text);

    // A certificate that does not parse is refused when set, not at the first grant.
    let token = node.admin_token();
    let bad = node.request(
        "PUT",
        "/admin/v1/federation",
        Some("application/json"),
        &[("Authorization", &format!("Bearer {token}"))],
        json!({"saml_issuers": [{"name": "x", "entity_id": "urn:x", "certificates": ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]}]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("PEM X.509"), "{}", bad.text);
    // And the trust in force is unchanged.
    let again = Assertion::new(&corp, &endpoint(&node), &node.base, "billing-batch-2");
    assert_eq!(exchange(&node, &again.signed(&corp), &[]).status, 200);
}

/// RFC 7522 §3 item 8 across a cluster: an assertion one node accepted is refused by the other
/// (the IDs are spent in the shared PostgreSQL store).
#[test]
fn an_assertion_is_spent_once_across_nodes() {
    let corp = SamlIdp::rsa(CORP);
    let issuers = format!(
        r#"[{{ name = "corp", entity_id = "{CORP}", certificates = [{}] }}]"#,
        toml_string(&corp.cert_pem())
    );
    let policies = r#"[{ name = "billing", issuer = "corp", claims = { sub = "billing-*" }, client_id = "billing", scopes = ["invoices:read"] }]"#;
    let Some(nodes) = crate::postgres_nodes::two_nodes(
        "saml",
        &[
            ("PORTCULLIS_FEDERATION__SAML_ISSUERS", &issuers),
            ("PORTCULLIS_FEDERATION__POLICIES", policies),
        ],
    ) else {
        return;
    };
    nodes
        .a
        .create_client(&["--id", "billing", "--scope", "invoices:read"]);
    // The cluster's issuer, not a node's address, is what assertions are aimed at.
    let issuer = "https://auth.cluster.example";
    let assertion = Assertion::new(
        &corp,
        &format!("{issuer}/oauth2/token"),
        issuer,
        "billing-7",
    );
    let signed = assertion.signed(&corp);
    let at_a = exchange(&nodes.a, &signed, &[]);
    assert_eq!(at_a.status, 200, "{}", at_a.text);
    refused(
        &exchange(&nodes.b, &signed, &[]),
        "invalid_grant",
        "already used",
        "replay at B",
    );
}
