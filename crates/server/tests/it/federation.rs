//! Workload federation end to end (RFC 7523 §2.1 JWT bearer grant): tokens shaped like a
//! Kubernetes service-account token and a GitHub Actions OIDC token, signed by a local issuer
//! that serves a real discovery document and JWKS, become Portcullis tokens of the client a
//! policy names — and the hostile table of RFC 7523 §3 and RFC 8725 is refused.

use crate::support;

use portcullis_keys::Algorithm;
use serde_json::{json, Value};
use support::dpop::DpopKey;
use support::issuer::LocalIssuer;
use support::{basic_header, jwt_payload, Answer, Node};

const GRANT: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";
const K8S_AUDIENCE: &str = "portcullis";
const CI_AUDIENCE: &str = "https://github.com/acme";

/// A node trusting `k8s` (keys by discovery) and `ci` (keys by jwks_uri), with a policy for
/// each, and the two clients they map to.
fn federated_node(k8s: &LocalIssuer, ci: &LocalIssuer) -> Node {
    let issuers = format!(
        r#"[{{ name = "k8s", issuer = "{k}", audience = "{K8S_AUDIENCE}", max_lifetime_secs = 3600 }}, {{ name = "ci", issuer = "{c}", audience = "{CI_AUDIENCE}", jwks_uri = "{c}/jwks.json", algorithms = ["ES256"] }}]"#,
        k = k8s.base,
        c = ci.base
    );
    let policies = r#"[{ name = "payments", issuer = "k8s", claims = { sub = "system:serviceaccount:prod:*" }, client_id = "payments-api", scopes = ["read", "write"] }, { name = "deploy", issuer = "ci", claims = { sub = "repo:acme/*", repository = "acme/api", ref = "refs/heads/main" }, client_id = "deployer", scopes = ["deploy"] }]"#;
    let node = Node::start_with_env(&[
        ("PORTCULLIS_OAUTH__JWKS_URI_ALLOW_PRIVATE", "true"),
        ("PORTCULLIS_FEDERATION__ISSUERS", &issuers),
        ("PORTCULLIS_FEDERATION__POLICIES", policies),
    ]);
    node.create_client(&["--id", "payments-api", "--scope", "read"]);
    node.create_client(&["--id", "deployer", "--scope", "deploy"]);
    node
}

fn exchange(node: &Node, assertion: &str, extra: &[(&str, &str)]) -> Answer {
    node.assertion_grant(GRANT, assertion, extra)
}

#[test]
fn a_service_account_token_becomes_a_token_of_the_mapped_client() {
    let (k8s, ci) = (LocalIssuer::start(), LocalIssuer::start());
    let node = federated_node(&k8s, &ci);
    let claims = k8s.service_account_claims("prod", "payments", K8S_AUDIENCE);
    let external_exp = claims["exp"].as_i64().unwrap();
    let answer = exchange(&node, &k8s.sign(&claims), &[]);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["token_type"], "Bearer");
    let token = answer.json["access_token"].as_str().unwrap();
    let payload = jwt_payload(token);
    assert_eq!(payload["sub"], "payments-api");
    assert_eq!(payload["client_id"], "payments-api");
    assert_eq!(
        payload["federated"],
        json!({"iss": k8s.base, "sub": "system:serviceaccount:prod:payments"})
    );
    // The policy allows read and write; the client only read.
    assert_eq!(payload["scope"], "read");
    assert!(
        payload["exp"].as_i64().unwrap() <= external_exp,
        "{payload}"
    );
    assert!(answer.json["expires_in"].as_i64().unwrap() <= 600);

    // A token expiring in 30 s gets a token that ends with it, not the client's TTL.
    let mut expiring = k8s.service_account_claims("prod", "payments", K8S_AUDIENCE);
    let external_exp = support::gateway::now() + 30;
    expiring["exp"] = json!(external_exp);
    let answer = exchange(&node, &k8s.sign(&expiring), &[]);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.json["expires_in"].as_i64().unwrap() <= 30,
        "{}",
        answer.text
    );
    let payload = jwt_payload(answer.json["access_token"].as_str().unwrap());
    assert!(
        payload["exp"].as_i64().unwrap() <= external_exp,
        "{payload}"
    );

    // The same grant with a DPoP proof gives a bound token.
    let key = DpopKey::new(Algorithm::ES256);
    let proof = key.proof("POST", &format!("{}/oauth2/token", node.base), None, None);
    let fresh = k8s.sign(&k8s.service_account_claims("prod", "payments", K8S_AUDIENCE));
    let bound = exchange(&node, &fresh, &[("DPoP", &proof)]);
    assert_eq!(bound.status, 200, "{}", bound.text);
    assert_eq!(bound.json["token_type"], "DPoP");

    let issued = node.issued_record("payments-api");
    assert_eq!(
        issued["detail"]["federated"]["policy"], "payments",
        "{issued}"
    );
    assert_eq!(issued["detail"]["auth_method"], "jwt_bearer");
}

#[test]
fn a_ci_token_is_accepted_once_and_only_for_its_repository_and_branch() {
    let (k8s, ci) = (LocalIssuer::start(), LocalIssuer::start());
    let node = federated_node(&k8s, &ci);
    let token = ci.sign(&ci.ci_claims("acme/api", "refs/heads/main", CI_AUDIENCE));
    let first = exchange(&node, &token, &[]);
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(
        jwt_payload(first.json["access_token"].as_str().unwrap())["scope"],
        "deploy"
    );
    let replay = exchange(&node, &token, &[]);
    assert_eq!(replay.status, 400, "{}", replay.text);
    assert_eq!(replay.error(), "invalid_grant");
    assert!(replay.text.contains("already used"), "{}", replay.text);
    // Replays count for attack detection against the client the token maps to, though no
    // client authenticated (3 within 5 minutes by default).
    for _ in 0..2 {
        assert_eq!(exchange(&node, &token, &[]).error(), "invalid_grant");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let alerts = node.cli_json(&["alerts", "list"]);
        let raised =
            alerts["alerts"].as_array().into_iter().flatten().any(|a| {
                a["rule"] == "assertion_replay" && a["detail"]["key"] == "client deployer"
            });
        if raised {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no replay alert: {alerts}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    for (repo, git_ref) in [
        ("acme/api", "refs/heads/main-evil"),
        ("acme/api", "refs/heads/feature"),
        ("acme/api-fork", "refs/heads/main"),
        ("evil/api", "refs/heads/main"),
    ] {
        let other = exchange(
            &node,
            &ci.sign(&ci.ci_claims(repo, git_ref, CI_AUDIENCE)),
            &[],
        );
        assert_eq!(other.status, 400, "{repo} {git_ref}: {}", other.text);
        assert_eq!(other.error(), "invalid_grant");
    }
}

/// RFC 7523 §3 and RFC 8725, one bent assertion at a time: each gets `invalid_grant` and no
/// token.
#[test]
fn hostile_assertions_are_refused() {
    let (k8s, ci) = (LocalIssuer::start(), LocalIssuer::start());
    let node = federated_node(&k8s, &ci);
    let stranger = LocalIssuer::start();
    let good = || k8s.service_account_claims("prod", "payments", K8S_AUDIENCE);
    let bent = |name: &str, value: Value| {
        let mut c = good();
        c[name] = value;
        c
    };
    let now = support::gateway::now();
    let b64 = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let mut no_sub = good();
    no_sub.as_object_mut().unwrap().remove("sub");
    let cases: Vec<(&str, String)> = vec![
        ("unknown issuer", stranger.sign(&json!({"iss": stranger.base, "sub": "system:serviceaccount:prod:payments", "aud": K8S_AUDIENCE, "exp": now + 60}))),
        ("a trusted iss signed by a stranger's key", stranger.sign(&good())),
        ("a stranger's key under the issuer's kid", stranger.sign_with_header(&json!({"alg": "ES256", "kid": k8s.kid()}), &good())),
        ("alg none", format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&good()))),
        ("alg swap to HS256", format!("{}.{}.c2ln", b64(&json!({"alg": "HS256", "kid": k8s.kid()})), b64(&good()))),
        ("alg swap to EdDSA", k8s.sign_with_header(&json!({"alg": "EdDSA", "kid": k8s.kid()}), &good())),
        // Within the 60 s skew iat and nbf get, but exp gets none.
        ("expired 30 s ago", k8s.sign(&bent("exp", json!(now - 30)))),
        ("issued in the future", k8s.sign(&bent("iat", json!(now + 300)))),
        ("not valid yet", k8s.sign(&bent("nbf", json!(now + 300)))),
        ("lives longer than allowed", k8s.sign(&bent("exp", json!(now + 7200)))),
        ("wrong audience", k8s.sign(&bent("aud", json!(["https://other.example"])))),
        ("the CI issuer's audience", k8s.sign(&bent("aud", json!(CI_AUDIENCE)))),
        ("another namespace", k8s.sign(&bent("sub", json!("system:serviceaccount:dev:payments")))),
        ("a look-alike namespace", k8s.sign(&bent("sub", json!("system:serviceaccount:prod-evil:payments")))),
        ("a prefix of the pattern", k8s.sign(&bent("sub", json!("system:serviceaccount:prod")))),
        ("sub not a string", k8s.sign(&bent("sub", json!(["system:serviceaccount:prod:payments"])))),
        ("no sub", k8s.sign(&no_sub)),
        ("a CI token from the k8s issuer", k8s.sign(&bent("iss", json!(ci.base)))),
        ("not a JWS", "not-a-jwt".to_owned()),
    ];
    for (why, assertion) in &cases {
        let answer = exchange(&node, assertion, &[]);
        assert_eq!(answer.status, 400, "{why}: {}", answer.text);
        assert_eq!(answer.error(), "invalid_grant", "{why}: {}", answer.text);
    }

    // Client authentication is optional, but when sent it must be the mapped client.
    let (other, other_secret) = node.create_client(&["--scope", "read"]);
    let auth = basic_header(&other, &other_secret);
    let mismatch = exchange(&node, &k8s.sign(&good()), &[("Authorization", &auth)]);
    assert_eq!(mismatch.error(), "invalid_grant", "{}", mismatch.text);
    // And a failed client authentication is invalid_client, not a token.
    let wrong = basic_header("payments-api", "not-the-secret");
    assert_eq!(
        exchange(&node, &k8s.sign(&good()), &[("Authorization", &wrong)]).status,
        401
    );

    // A disabled client gets nothing through federation either.
    node.cli_json(&["client", "update", "payments-api", "--disable"]);
    let disabled = exchange(&node, &k8s.sign(&good()), &[]);
    assert_eq!(disabled.error(), "invalid_grant", "{}", disabled.text);

    // No assertion at all.
    let missing = node.request(
        "POST",
        "/oauth2/token",
        Some("application/x-www-form-urlencoded"),
        &[],
        format!("grant_type={GRANT}").as_bytes(),
    );
    assert_eq!(missing.error(), "invalid_request", "{}", missing.text);
}

/// A key rotation at the issuer is followed (the JWKS is fetched again for an unknown `kid`),
/// but unknown kids never make the server fetch more than once per interval.
#[test]
fn the_issuers_key_rotation_is_followed_without_fetch_amplification() {
    let (k8s, ci) = (LocalIssuer::start(), LocalIssuer::start());
    let node = federated_node(&k8s, &ci);
    let good = || k8s.service_account_claims("prod", "payments", K8S_AUDIENCE);
    assert_eq!(exchange(&node, &k8s.sign(&good()), &[]).status, 200);
    let fetched = k8s.jwks_fetches.load(std::sync::atomic::Ordering::SeqCst);
    k8s.rotate();
    // Right after the first fetch, unknown kids are refused without fetching again.
    for _ in 0..5 {
        let early = exchange(&node, &k8s.sign(&good()), &[]);
        assert_eq!(early.error(), "invalid_grant", "{}", early.text);
    }
    assert_eq!(
        k8s.jwks_fetches.load(std::sync::atomic::Ordering::SeqCst),
        fetched
    );
    // After the refetch interval (10 s) one unknown kid fetches the new set.
    std::thread::sleep(std::time::Duration::from_millis(10_500));
    let after = exchange(&node, &k8s.sign(&good()), &[]);
    assert_eq!(after.status, 200, "{}", after.text);
    assert_eq!(
        k8s.jwks_fetches.load(std::sync::atomic::Ordering::SeqCst),
        fetched + 1
    );
}

#[test]
fn a_discovery_document_naming_another_issuer_is_not_trusted() {
    let lookalike = LocalIssuer::start_claiming(Some("https://kubernetes.default.svc"));
    let ci = LocalIssuer::start();
    let node = federated_node(&lookalike, &ci);
    let answer = exchange(
        &node,
        &lookalike.sign(&lookalike.service_account_claims("prod", "payments", K8S_AUDIENCE)),
        &[],
    );
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.error(), "temporarily_unavailable");
}

/// Issuers and policies set through the CLI (admin API) are in force at once, audited, and
/// checked whole before they are stored.
#[test]
fn trust_set_through_the_cli_is_in_force_at_once_and_audited() {
    let k8s = LocalIssuer::start();
    let node = Node::start_with_env(&[("PORTCULLIS_OAUTH__JWKS_URI_ALLOW_PRIVATE", "true")]);
    node.create_client(&["--id", "edge-agent", "--scope", "telemetry:write"]);
    let claims = k8s.service_account_claims("edge", "agent", "portcullis-edge");
    assert_eq!(
        exchange(&node, &k8s.sign(&claims), &[]).error(),
        "invalid_grant"
    );

    let file = node.data_dir.with_extension("trust.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[issuers]]
name = "edge-cluster"
issuer = "{}"
audience = "portcullis-edge"

[[policies]]
name = "edge-agent"
issuer = "edge-cluster"
client_id = "edge-agent"
scopes = ["telemetry:write"]
claims = {{ sub = "system:serviceaccount:edge:agent" }}
"#,
            k8s.base
        ),
    )
    .unwrap();
    let shown = node.cli_json(&["federation", "set", file.to_str().unwrap()]);
    assert_eq!(
        shown["admin"]["issuers"][0]["name"], "edge-cluster",
        "{shown}"
    );
    assert_eq!(shown["config"], json!({"issuers": [], "policies": []}));
    let answer = exchange(&node, &k8s.sign(&claims), &[]);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        node.cli_json(&["federation", "show"])["admin"],
        shown["admin"]
    );

    // A policy naming no issuer is refused whole; what was in force stays.
    std::fs::write(
        &file,
        "[[policies]]\nname = \"x\"\nissuer = \"nobody\"\nclient_id = \"edge-agent\"\nclaims = { sub = \"a\" }\n",
    )
    .unwrap();
    let refused = node.cli(&["federation", "set", file.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("names no configured issuer"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let again = exchange(
        &node,
        &k8s.sign(&k8s.service_account_claims("edge", "agent", "portcullis-edge")),
        &[],
    );
    assert_eq!(again.status, 200, "{}", again.text);

    let audit = node.cli_json(&["audit", "list", "--limit", "50"]);
    assert!(
        audit["records"].as_array().into_iter().flatten().any(|r| {
            r["action"] == "federation.changed" && r["detail"]["issuers"] == json!(["edge-cluster"])
        }),
        "{audit}"
    );
    assert!(shown.get("warnings").is_none(), "{shown}");

    // A policy whose client does not exist yet is taken (the client may follow) and said.
    std::fs::write(
        &file,
        format!(
            "[[issuers]]\nname = \"edge-cluster\"\nissuer = \"{}\"\naudience = \"portcullis-edge\"\n\
             [[policies]]\nname = \"later\"\nissuer = \"edge-cluster\"\nclient_id = \"not-yet\"\n\
             claims = {{ sub = \"a\" }}\n",
            k8s.base
        ),
    )
    .unwrap();
    let warned = node.cli(&["--json", "federation", "set", file.to_str().unwrap()]);
    assert!(warned.status.success());
    let shown: serde_json::Value = serde_json::from_slice(&warned.stdout).unwrap();
    assert_eq!(
        shown["warnings"][0],
        "policy later maps to client not-yet, which does not exist: create it, or its tokens \
         are refused",
        "{shown}"
    );
    assert!(String::from_utf8_lossy(&warned.stderr).contains("warning: policy later"));
}

/// A build without the `saml` feature cannot verify SAML signatures: the grant is refused as
/// unsupported (and says how to get it), discovery does not list it, and SAML issuers cannot
/// be configured.
#[cfg(not(feature = "saml"))]
#[test]
fn a_build_without_saml_refuses_the_saml_grant_clearly() {
    let node = Node::start();
    let answer = node.request(
        "POST",
        "/oauth2/token",
        Some("application/x-www-form-urlencoded"),
        &[],
        b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Asaml2-bearer&assertion=PGEvPg",
    );
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(answer.error(), "unsupported_grant_type");
    assert!(answer.text.contains("--features saml"), "{}", answer.text);
    let discovery = node.get("/.well-known/oauth-authorization-server");
    assert!(
        !discovery.text.contains("saml2-bearer"),
        "{}",
        discovery.text
    );
    let file = node.data_dir.with_extension("trust.toml");
    std::fs::write(
        &file,
        "[[saml_issuers]]\nname = \"corp\"\nentity_id = \"urn:corp\"\ncertificates = [\"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\"]\n",
    )
    .unwrap();
    let refused = node.cli(&["federation", "set", file.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no SAML support"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// A mistake in the configuration's trust is a usage error before anything is created: found
/// only when the trust was put in force, it stopped a first start that had already made the
/// keys, the CA and (on PostgreSQL) the stored issuer, which then had to be dropped.
#[test]
fn a_bad_configured_trust_stops_the_start_before_anything_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("portcullis.toml");
    std::fs::write(
        &config,
        "[[federation.saml_issuers]]\nname = \"corp\"\nentity_id = \"http://corp.example\"\n\
         certificates = [\"not a certificate\"]\n",
    )
    .unwrap();
    let data = tmp.path().join("data");
    let out = support::serve_to_exit_with_args(
        &data,
        &["--listen-tls", "off", "--config", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("federation"), "{stderr}");
    assert!(!data.exists(), "created before the check");
}
