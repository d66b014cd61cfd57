//! DPoP (RFC 9449) end to end: a proof at the token endpoint binds the token to the client's
//! key (`token_type` DPoP, `cnf.jkt`), every endpoint that takes an access token checks the
//! binding, nonces work across nodes, and the hostile table of RFC 9449 §11 is refused.

use crate::postgres_nodes::two_nodes;
use crate::support;

use portcullis_keys::Algorithm;
use serde_json::{json, Value};
use support::dpop::{claims, DpopKey};
use support::{basic_header, jwt_payload, Answer, Node};

/// The bootstrap credential's id and secret (a client with `portcullis:admin`).
fn admin_client(node: &Node) -> (String, String) {
    let cred: Value =
        serde_json::from_str(&std::fs::read_to_string(node.admin_credential()).unwrap()).unwrap();
    (
        cred["client_id"].as_str().unwrap().to_owned(),
        cred["client_secret"].as_str().unwrap().to_owned(),
    )
}

/// A token request with client_secret_basic and the given `DPoP` headers.
fn token_request(node: &Node, id: &str, secret: &str, form: &str, proofs: &[&str]) -> Answer {
    let auth = basic_header(id, secret);
    let mut headers = vec![("Authorization", auth.as_str())];
    headers.extend(proofs.iter().map(|p| ("DPoP", *p)));
    node.request(
        "POST",
        "/oauth2/token",
        Some("application/x-www-form-urlencoded"),
        &headers,
        format!("grant_type=client_credentials{form}").as_bytes(),
    )
}

fn token_url(node: &Node) -> String {
    format!("{}/oauth2/token", node.base)
}

/// A DPoP-bound admin token of the bootstrap credential.
fn bound_admin_token(node: &Node, key: &DpopKey) -> String {
    let (id, secret) = admin_client(node);
    let proof = key.proof("POST", &token_url(node), None, None);
    let answer = token_request(node, &id, &secret, "&scope=portcullis:admin", &[&proof]);
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["access_token"].as_str().unwrap().to_owned()
}

/// `GET /admin/v1/clients` with the given `Authorization` and `DPoP` headers.
fn list_clients(node: &Node, authorization: &str, proof: Option<&str>) -> Answer {
    let mut headers = vec![("Authorization", authorization)];
    headers.extend(proof.map(|p| ("DPoP", p)));
    node.request("GET", "/admin/v1/clients", None, &headers, b"")
}

fn clients_url(node: &Node) -> String {
    format!("{}/admin/v1/clients", node.base)
}

#[test]
fn a_proof_binds_the_token_to_the_key_for_every_algorithm() {
    let node = Node::start();
    let (id, secret) = node.create_client(&["--scope", "read"]);
    for alg in Algorithm::ALL {
        let key = DpopKey::new(alg);
        let proof = key.proof("POST", &token_url(&node), None, None);
        let answer = token_request(&node, &id, &secret, "", &[&proof]);
        assert_eq!(answer.status, 200, "{alg:?}: {}", answer.text);
        assert_eq!(answer.json["token_type"], "DPoP", "{alg:?}");
        let token = answer.json["access_token"].as_str().unwrap();
        assert_eq!(
            jwt_payload(token)["cnf"],
            json!({ "jkt": key.thumbprint() })
        );

        // RFC 9449 §6.2: introspection says DPoP and gives the thumbprint.
        let i = node.post_form(
            "/oauth2/introspect",
            &format!("token={token}"),
            Some((&id, &secret)),
        );
        assert_eq!(i.json["active"], true, "{}", i.text);
        assert_eq!(i.json["token_type"], "DPoP");
        assert_eq!(i.json["cnf"]["jkt"], key.thumbprint().as_str());
    }
    // Without a proof the same client still gets a bearer token.
    let plain = node.token(&id, &secret, "");
    assert_eq!(plain.json["token_type"], "Bearer");
    assert!(jwt_payload(plain.json["access_token"].as_str().unwrap())
        .get("cnf")
        .is_none());

    let discovery = node.get("/.well-known/oauth-authorization-server").json;
    assert_eq!(
        discovery["dpop_signing_alg_values_supported"],
        json!(["EdDSA", "Ed25519", "ES256", "ES384", "PS256", "RS256"])
    );
}

#[test]
fn a_bound_token_works_only_with_a_fresh_proof_of_its_key() {
    let node = Node::start();
    let key = DpopKey::new(Algorithm::ES256);
    let token = bound_admin_token(&node, &key);
    let dpop = format!("DPoP {token}");
    let url = clients_url(&node);

    let proof = key.proof("GET", &url, Some(&token), None);
    let ok = list_clients(&node, &dpop, Some(&proof));
    assert_eq!(ok.status, 200, "{}", ok.text);

    let refused = |answer: Answer, why: &str| {
        assert_eq!(answer.status, 401, "{why}: {}", answer.text);
        let challenge = answer
            .header("www-authenticate")
            .unwrap_or_default()
            .to_owned();
        (challenge, why.to_owned())
    };
    let stolen = DpopKey::new(Algorithm::ES256);
    let cases = [
        // The same proof again: replay (RFC 9449 §11.1).
        (list_clients(&node, &dpop, Some(&proof)), "replayed proof"),
        // A bound token as a bearer token (§7.1).
        (
            list_clients(&node, &format!("Bearer {token}"), None),
            "bound token as Bearer",
        ),
        // DPoP scheme without a proof.
        (list_clients(&node, &dpop, None), "no proof"),
        // A proof by another key: a thief with the token but not the key.
        (
            list_clients(
                &node,
                &dpop,
                Some(&stolen.proof("GET", &url, Some(&token), None)),
            ),
            "another key",
        ),
        // A proof for another request, or without the token's hash.
        (
            list_clients(
                &node,
                &dpop,
                Some(&key.proof("POST", &url, Some(&token), None)),
            ),
            "wrong htm",
        ),
        (
            list_clients(
                &node,
                &dpop,
                Some(&key.proof(
                    "GET",
                    &format!("{}/admin/v1/devices", node.base),
                    Some(&token),
                    None,
                )),
            ),
            "wrong htu",
        ),
        (
            list_clients(&node, &dpop, Some(&key.proof("GET", &url, None, None))),
            "no ath",
        ),
        (
            list_clients(
                &node,
                &dpop,
                Some(&key.proof("GET", &url, Some("another token"), None)),
            ),
            "wrong ath",
        ),
    ];
    for (answer, why) in cases {
        let (challenge, why) = refused(answer, why);
        if why != "bound token as Bearer" {
            assert!(
                challenge.starts_with("DPoP ") && challenge.contains("invalid_dpop_proof"),
                "{why}: {challenge}"
            );
        }
    }

    // An unbound token cannot pose as a DPoP one.
    let bearer = node.admin_token();
    let proof = key.proof("GET", &url, Some(&bearer), None);
    assert_eq!(
        list_clients(&node, &format!("DPoP {bearer}"), Some(&proof)).status,
        401
    );
    // And a bearer token still works as one.
    assert_eq!(
        list_clients(&node, &format!("Bearer {bearer}"), None).status,
        200
    );
}

/// A stolen bound token tried at a resource endpoint is on the record: the replayed proof is
/// audited with the token's client and the presenter's address, and three replays raise the
/// replay alert as replayed assertions at the token endpoint do.
#[test]
fn a_proof_replayed_to_the_admin_api_is_audited_and_raises_the_replay_alert() {
    let node = Node::start();
    let (admin_id, _) = admin_client(&node);
    let key = DpopKey::new(Algorithm::ES256);
    let token = bound_admin_token(&node, &key);
    let dpop = format!("DPoP {token}");
    let proof = key.proof("GET", &clients_url(&node), Some(&token), None);
    assert_eq!(list_clients(&node, &dpop, Some(&proof)).status, 200);
    for _ in 0..3 {
        assert_eq!(list_clients(&node, &dpop, Some(&proof)).status, 401);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let alert = loop {
        let listed = node.cli_json(&["alerts", "list"]);
        let found = listed["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["rule"] == "assertion_replay")
            .cloned();
        if let Some(alert) = found {
            break alert;
        }
        assert!(std::time::Instant::now() < deadline, "no alert: {listed}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(alert["detail"]["key"], format!("client {admin_id}"));

    let refused = node.audit_record("token.use_refused");
    assert_eq!(refused["outcome"], "failure", "{refused}");
    assert_eq!(refused["subject"], jwt_payload(&token)["jti"], "{refused}");
    let detail = &refused["detail"];
    assert_eq!(detail["client_id"], admin_id.as_str(), "{refused}");
    assert_eq!(detail["reason"], "replay", "{refused}");
    assert_eq!(detail["path"], "/admin/v1/clients", "{refused}");
    assert_eq!(detail["source"], "127.0.0.1", "{refused}");
    // Neither the token nor the proof is in the record.
    assert!(!refused.to_string().contains(&token));
    assert!(!refused.to_string().contains(&proof));
}

#[test]
fn the_gateway_checks_the_binding_too() {
    let node = Node::start();
    let (id, secret) = node.create_client(&["--scope", "telemetry:read"]);
    let key = DpopKey::new(Algorithm::EdDSA);
    let proof = key.proof("POST", &token_url(&node), None, None);
    let answer = token_request(&node, &id, &secret, "&scope=telemetry:read", &[&proof]);
    let token = answer.json["access_token"].as_str().unwrap().to_owned();
    let path = "/gateway/v1/telemetry/stream";
    let url = format!("{}{path}", node.base);
    let read = |auth: String, proof: Option<String>| {
        let mut headers = vec![("Authorization", auth.as_str())];
        headers.extend(proof.as_deref().map(|p| ("DPoP", p)));
        node.request("GET", path, None, &headers, b"")
    };
    let ok = read(
        format!("DPoP {token}"),
        Some(key.proof("GET", &url, Some(&token), None)),
    );
    assert_eq!(ok.status, 200, "{}", ok.text);
    let refused = read(format!("Bearer {token}"), None);
    assert_eq!(refused.status, 401, "{}", refused.text);
    let refused = read(format!("DPoP {token}"), None);
    assert_eq!(refused.status, 401, "{}", refused.text);
    assert!(refused
        .header("www-authenticate")
        .is_some_and(|c| c.contains("invalid_dpop_proof")));
}

#[test]
fn a_client_that_must_use_dpop_gets_nothing_without_a_proof() {
    let node = Node::start();
    let (id, secret) = node.create_client(&["--dpop-bound"]);
    let shown = node.cli_json(&["client", "show", &id]);
    assert_eq!(shown["dpop_bound_access_tokens"], true);
    let answer = node.token(&id, &secret, "");
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(answer.error(), "invalid_dpop_proof");
    let key = DpopKey::new(Algorithm::ES256);
    let proof = key.proof("POST", &token_url(&node), None, None);
    assert_eq!(
        token_request(&node, &id, &secret, "", &[&proof]).status,
        200
    );

    // Turning it on ends the bearer tokens of before.
    let (other, other_secret) = node.create_client(&[]);
    let bearer = node.token(&other, &other_secret, "").json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    node.cli_json(&["client", "update", &other, "--dpop-bound"]);
    let i = node.post_form(
        "/oauth2/introspect",
        &format!("token={bearer}"),
        Some((&other, &other_secret)),
    );
    assert_eq!(i.json["active"], false, "{}", i.text);
}

/// RFC 9449 §11 and §4.3, one bent proof at a time: every one refused with
/// `invalid_dpop_proof`, and none of them gets a token.
#[test]
fn hostile_proofs_are_refused_at_the_token_endpoint() {
    let node = Node::start_with_env(&[("PORTCULLIS_DPOP__ALGORITHMS", "[\"ES256\", \"EdDSA\"]")]);
    let (id, secret) = node.create_client(&[]);
    let key = DpopKey::new(Algorithm::ES256);
    let url = token_url(&node);
    let good = || claims("POST", &url, None, None);
    let now = support::gateway::now();
    let with = |name: &str, value: Value| {
        let mut c = good();
        c[name] = value;
        c
    };
    let header_with = |name: &str, value: Value| {
        let mut h = key.header();
        h[name] = value;
        h
    };
    let mut private_jwk = key.jwk();
    private_jwk["d"] = json!("AAAA");
    let rsa = DpopKey::new(Algorithm::RS256);
    let hmac_proof = {
        // alg HS256 with a symmetric jwk: the key is in the proof, so HMAC proves nothing.
        use base64::Engine as _;
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let header =
            json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}});
        format!("{}.{}.c2ln", b64(header), b64(good()))
    };
    let unsigned = {
        use base64::Engine as _;
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(header_with("alg", json!("none"))),
            b64(good())
        )
    };
    let mut tampered = key.sign(&key.header(), &good());
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    let mut no_jti = good();
    no_jti.as_object_mut().unwrap().remove("jti");

    let cases: Vec<(&str, String)> = vec![
        (
            "typ missing",
            key.sign(&json!({"alg": "ES256", "jwk": key.jwk()}), &good()),
        ),
        (
            "typ JWT",
            key.sign(&header_with("typ", json!("JWT")), &good()),
        ),
        (
            "no jwk",
            key.sign(&json!({"typ": "dpop+jwt", "alg": "ES256"}), &good()),
        ),
        (
            "jwk with private d",
            key.sign(&header_with("jwk", private_jwk), &good()),
        ),
        ("alg HS256, symmetric jwk", hmac_proof),
        ("alg none", unsigned),
        (
            "alg not allowed (RS256)",
            rsa.proof("POST", &url, None, None),
        ),
        (
            "alg does not fit the jwk",
            key.sign(&header_with("alg", json!("EdDSA")), &good()),
        ),
        ("bad signature", tampered),
        (
            "htm GET",
            key.sign(&key.header(), &with("htm", json!("GET"))),
        ),
        (
            "htu another endpoint",
            key.sign(
                &key.header(),
                &with("htu", json!(format!("{}/oauth2/introspect", node.base))),
            ),
        ),
        (
            "htu another host",
            key.sign(
                &key.header(),
                &with("htu", json!("https://evil.example/oauth2/token")),
            ),
        ),
        (
            "iat too old",
            key.sign(&key.header(), &with("iat", json!(now - 120))),
        ),
        (
            "iat in the future",
            key.sign(&key.header(), &with("iat", json!(now + 60))),
        ),
        ("no jti", key.sign(&key.header(), &no_jti)),
        (
            "ath at the token endpoint",
            key.sign(&key.header(), &with("ath", json!("x"))),
        ),
        (
            "crit header",
            key.sign(&header_with("crit", json!(["exp"])), &good()),
        ),
        ("not a JWS", "garbage".to_owned()),
    ];
    for (why, proof) in &cases {
        let answer = token_request(&node, &id, &secret, "", &[proof]);
        assert_eq!(answer.status, 400, "{why}: {}", answer.text);
        assert_eq!(
            answer.error(),
            "invalid_dpop_proof",
            "{why}: {}",
            answer.text
        );
    }
    // The description says what is wrong with the proof where the client can fix it.
    for (why, says) in [
        ("jwk with private d", "private"),
        ("alg HS256, symmetric jwk", "symmetric"),
        ("alg none", "alg is none"),
        ("no jwk", "no public jwk"),
    ] {
        let proof = &cases.iter().find(|(w, _)| *w == why).expect("a case").1;
        let answer = token_request(&node, &id, &secret, "", &[proof]);
        assert!(
            answer.json["error_description"]
                .as_str()
                .is_some_and(|d| d.contains(says)),
            "{why}: {}",
            answer.text
        );
    }
    // Two DPoP headers (sent with curl: the test's HTTP client keeps one header per name).
    let (a, b) = (
        key.proof("POST", &url, None, None),
        key.proof("POST", &url, None, None),
    );
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-u",
            &format!("{id}:{secret}"),
            "-d",
            "grant_type=client_credentials",
        ])
        .args([
            "-H",
            &format!("DPoP: {a}"),
            "-H",
            &format!("DPoP: {b}"),
            &url,
        ])
        .output()
        .expect("curl");
    let body: Value = serde_json::from_slice(&out.stdout).expect("JSON error body");
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
    // A replay of an accepted proof.
    let proof = key.proof("POST", &url, None, None);
    assert_eq!(
        token_request(&node, &id, &secret, "", &[&proof]).status,
        200
    );
    let replay = token_request(&node, &id, &secret, "", &[&proof]);
    assert_eq!(replay.error(), "invalid_dpop_proof", "{}", replay.text);
    // The server still answers with the descriptions, never with the proof's contents.
    assert!(!replay.text.contains(&proof));
}

/// Nonces (RFC 9449 §8, §9) and replay are cluster-wide: a nonce from node A is good at node
/// B, and a proof accepted by A is refused by B.
#[test]
fn nonces_and_replay_protection_hold_across_nodes() {
    let Some(nodes) = two_nodes("dpop", &[("PORTCULLIS_DPOP__REQUIRE_NONCE", "true")]) else {
        return;
    };
    let (a, b) = (&nodes.a, &nodes.b);
    let (id, secret) = a.create_client(&["--scope", "read"]);
    let key = DpopKey::new(Algorithm::ES256);
    // The cluster's issuer, not the node's address, is what proofs name.
    let url = "https://auth.cluster.example/oauth2/token";

    let first = token_request(a, &id, &secret, "", &[&key.proof("POST", url, None, None)]);
    assert_eq!(first.status, 400, "{}", first.text);
    assert_eq!(first.error(), "use_dpop_nonce");
    let nonce = first
        .header("dpop-nonce")
        .expect("DPoP-Nonce header")
        .to_owned();

    let proof = key.proof("POST", url, None, Some(&nonce));
    let at_b = token_request(b, &id, &secret, "", &[&proof]);
    assert_eq!(at_b.status, 200, "A's nonce is good at B: {}", at_b.text);
    assert!(at_b.header("dpop-nonce").is_some());
    let replay_at_a = token_request(a, &id, &secret, "", &[&proof]);
    assert_eq!(replay_at_a.status, 400, "{}", replay_at_a.text);
    assert_eq!(replay_at_a.error(), "invalid_dpop_proof");

    let wrong = key.proof("POST", url, None, Some("not-the-nonce"));
    assert_eq!(
        token_request(a, &id, &secret, "", &[&wrong]).error(),
        "use_dpop_nonce"
    );

    // At a resource endpoint, a missing nonce is a 401 use_dpop_nonce challenge with one.
    let (admin, admin_secret) = admin_client(a);
    let admin_token = token_request(
        a,
        &admin,
        &admin_secret,
        "&scope=portcullis:admin",
        &[&key.proof("POST", url, None, Some(&nonce))],
    );
    let token = admin_token.json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let clients = "https://auth.cluster.example/admin/v1/clients";
    let dpop = format!("DPoP {token}");
    let no_nonce = list_clients(
        b,
        &dpop,
        Some(&key.proof("GET", clients, Some(&token), None)),
    );
    assert_eq!(no_nonce.status, 401, "{}", no_nonce.text);
    assert!(no_nonce
        .header("www-authenticate")
        .is_some_and(|c| c.contains("use_dpop_nonce")));
    let fresh = no_nonce.header("dpop-nonce").expect("nonce").to_owned();
    let ok = list_clients(
        b,
        &dpop,
        Some(&key.proof("GET", clients, Some(&token), Some(&fresh))),
    );
    assert_eq!(ok.status, 200, "{}", ok.text);
}

/// On the embedded store a node decides spent proof ids in memory and writes them behind; a
/// restart loads them back, so a proof accepted before it is refused after.
#[test]
fn a_restarted_node_still_refuses_a_proof_it_accepted_before() {
    let dir = tempfile::tempdir().unwrap();
    // One public URL for both lives of the node, whatever port each listens on: what the
    // proofs name as htu.
    let env = [("PORTCULLIS_SERVER__ISSUER", "https://auth.restart.example")];
    let node = Node::start_in(dir.path(), &env);
    let (id, secret) = node.create_client(&[]);
    let key = DpopKey::new(Algorithm::ES256);
    let url = "https://auth.restart.example/oauth2/token";
    let proof = key.proof("POST", url, None, None);
    assert_eq!(
        token_request(&node, &id, &secret, "", &[&proof]).status,
        200
    );
    node.stop();
    let node = Node::start_in(dir.path(), &env);
    let replay = token_request(&node, &id, &secret, "", &[&proof]);
    assert_eq!(replay.status, 400, "{}", replay.text);
    assert_eq!(replay.error(), "invalid_dpop_proof");
    assert!(replay.text.contains("already used"), "{}", replay.text);
}
