//! The requests of the security review (issue #11), each the way an attacker would send it,
//! each answered the way it must be now.

use crate::support;

use support::Node;

/// An access token for `id`.
fn token(node: &Node, id: &str, secret: &str, extra: &str) -> String {
    let t = node.token(id, secret, extra);
    assert_eq!(t.status, 200, "{}", t.text);
    t.json["access_token"].as_str().unwrap().to_owned()
}

/// Whether introspection (by a bystander resource server) calls `token` active.
fn active(node: &Node, rs: &(String, String), token: &str) -> bool {
    let i = node.post_form(
        "/oauth2/introspect",
        &format!("token={token}"),
        Some((&rs.0, &rs.1)),
    );
    assert_eq!(i.status, 200, "{}", i.text);
    i.json["active"] == true
}

fn cli_ok(node: &Node, args: &[&str]) {
    let out = node.cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Finding 1: disable → rotate → enable, narrowing scopes or audiences and delete → re-create
/// each end the tokens issued before; widening does not.
#[test]
fn tokens_issued_before_a_security_change_of_their_client_stay_dead() {
    let node = Node::start();
    let rs = node.create_client(&[]);
    let (id, secret) = node.create_client(&["--id", "ops", "--scope", "read", "--scope", "write"]);

    let stolen = token(&node, &id, &secret, "");
    assert!(active(&node, &rs, &stolen));
    cli_ok(&node, &["client", "update", "ops", "--disable"]);
    assert!(!active(&node, &rs, &stolen));
    let rotated = node.cli_json(&["client", "rotate-secret", "ops", "--overlap", "3600"]);
    let secret = rotated["client_secret"].as_str().unwrap().to_owned();
    cli_ok(&node, &["client", "update", "ops", "--enable"]);
    assert!(
        !active(&node, &rs, &stolen),
        "re-enabling a client does not bring back what was stolen before it was disabled"
    );

    let before_narrowing = token(&node, &id, &secret, "");
    assert!(active(&node, &rs, &before_narrowing));
    cli_ok(
        &node,
        &[
            "client", "update", "ops", "--scope", "read", "--scope", "write", "--scope", "extra",
        ],
    );
    assert!(
        active(&node, &rs, &before_narrowing),
        "widening ends nothing"
    );
    cli_ok(&node, &["client", "update", "ops", "--scope", "read"]);
    assert!(
        !active(&node, &rs, &before_narrowing),
        "a dropped scope ends the tokens that carry it"
    );
    let narrowed = token(&node, &id, &secret, "");
    assert!(active(&node, &rs, &narrowed));
    cli_ok(
        &node,
        &[
            "client",
            "update",
            "ops",
            "--audience",
            "https://api.example",
        ],
    );
    assert!(
        !active(&node, &rs, &narrowed),
        "audiences narrowed from the issuer to one API"
    );

    // A rotation without overlap replaces the secret at once: its tokens go with it.
    let before_rotation = token(&node, &id, &secret, "");
    let rotated = node.cli_json(&["client", "rotate-secret", "ops", "--overlap", "0"]);
    let secret = rotated["client_secret"].as_str().unwrap().to_owned();
    assert!(!active(&node, &rs, &before_rotation));

    let before_delete = token(&node, &id, &secret, "");
    cli_ok(&node, &["client", "delete", "ops"]);
    let (_, new_secret) =
        node.create_client(&["--id", "ops", "--scope", "read", "--scope", "write"]);
    assert!(
        !active(&node, &rs, &before_delete),
        "a client re-created under the same id does not bring its predecessor's tokens back"
    );
    assert!(active(&node, &rs, &token(&node, "ops", &new_secret, "")));
}

/// Finding 1 on our own API: a token stays an admin token only while its client holds the
/// admin scope.
#[test]
fn an_admin_token_dies_with_its_clients_admin_scope() {
    let node = Node::start();
    let (id, secret) = node.create_client(&["--id", "deputy", "--scope", "portcullis:admin"]);
    let admin = token(&node, &id, &secret, "&scope=portcullis:admin");
    let bearer = format!("Bearer {admin}");
    let list = |node: &Node| {
        node.request(
            "GET",
            "/admin/v1/clients",
            None,
            &[("authorization", &bearer)],
            b"",
        )
        .status
    };
    assert_eq!(list(&node), 200);
    cli_ok(&node, &["client", "update", "deputy", "--scope", "read"]);
    assert_eq!(
        list(&node),
        401,
        "the scope was taken away: so is the token"
    );
}

/// Finding 5: `/metrics` is for this host only (judged on the resolved source, so a trusted
/// proxy's outside client is refused), or for whoever reaches its own listener.
#[test]
fn metrics_are_served_to_this_host_only_unless_they_have_their_own_listener() {
    let node =
        Node::start_with_env(&[("PORTCULLIS_SERVER__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]")]);
    assert_eq!(node.get("/metrics").status, 200);
    let relayed = node.request(
        "GET",
        "/metrics",
        None,
        &[("x-forwarded-for", "203.0.113.7")],
        b"",
    );
    assert_eq!(relayed.status, 403, "{}", relayed.text);

    let node = Node::start_with_env(&[("PORTCULLIS_SERVER__METRICS_LISTEN", "127.0.0.1:0")]);
    assert_eq!(
        node.get("/metrics").status,
        404,
        "not on the main listener any more"
    );
    let metrics_base = node
        .metrics_base
        .clone()
        .expect("metrics listener announced");
    // An unknown client and a wrong secret: one label, as they are one answer.
    let (id, _) = node.create_client(&[]);
    assert_eq!(node.token("no-such-client", "x", "").status, 401);
    assert_eq!(node.token(&id, "wrong", "").status, 401);
    let out = std::process::Command::new("curl")
        .args(["-sf", &format!("{metrics_base}/metrics")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("portcullis_client_auth_failures_total{reason=\"invalid_credentials\"} 2"),
        "{text}"
    );
    for revealing in [
        "unknown_client",
        "bad_secret",
        "disabled",
        "method_mismatch",
    ] {
        assert!(!text.contains(revealing), "{revealing} in:\n{text}");
    }
}

/// How many audit records of `action` there are (the admin API flushes the writer first).
fn audit_count(node: &Node, action: &str) -> usize {
    let list = node.cli_json(&["audit", "list", "--limit", "1000"]);
    list["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == action)
        .count()
}

/// Finding 3: floods of unauthenticated refusals — garbage token requests, EST enrollments
/// of an unknown device — grow the append-only audit chain by one record per source and
/// window, not one per request. Lock-out and rate limits are off here, so only the summary
/// bounds it.
#[test]
fn a_flood_of_refused_requests_grows_the_audit_chain_by_one_record() {
    let node = Node::start_with_env(&[
        ("PORTCULLIS_RATE_LIMIT__AUTH_FAILURES_PER_MINUTE", "0"),
        ("PORTCULLIS_RATE_LIMIT__PER_ADDRESS", "0"),
    ]);
    for _ in 0..500 {
        let refused = node.request("POST", "/oauth2/token", Some("text/plain"), &[], b"x");
        assert_eq!(refused.status, 400);
    }
    let tmp = tempfile::tempdir().unwrap();
    let dev = crate::pki::Device::new(tmp.path(), "intruder");
    crate::pki::provision_ca(&node, &dev);
    let csr = dev.csr("intruder", "ec", "/CN=intruder");
    for _ in 0..30 {
        let (status, _) = dev.est(
            &node,
            "simpleenroll",
            &csr,
            Some(("intruder", "guess")),
            None,
        );
        assert_eq!(status, 401);
    }
    assert_eq!(
        audit_count(&node, "token.refused"),
        1,
        "500 refusals, one record"
    );
    assert_eq!(
        audit_count(&node, "device.enroll_refused"),
        1,
        "30 refusals, one record"
    );
}

/// Finding 3: EST has the per-address failure lock-out of the token endpoint.
#[test]
fn repeated_failed_enrollments_lock_the_address_out() {
    let node = Node::start_with_env(&[("PORTCULLIS_RATE_LIMIT__AUTH_FAILURES_PER_MINUTE", "5")]);
    let tmp = tempfile::tempdir().unwrap();
    let dev = crate::pki::Device::new(tmp.path(), "intruder");
    crate::pki::provision_ca(&node, &dev);
    let csr = dev.csr("intruder", "ec", "/CN=intruder");
    let statuses: Vec<u16> = (0..8)
        .map(|_| {
            dev.est(
                &node,
                "simpleenroll",
                &csr,
                Some(("intruder", "guess")),
                None,
            )
            .0
        })
        .collect();
    assert_eq!(
        statuses,
        [401, 401, 401, 401, 401, 429, 429, 429],
        "{statuses:?}"
    );
    // Garbage token requests count towards the same kind of lock-out on the token endpoint.
    let garbage: Vec<u16> = (0..7)
        .map(|_| {
            node.request("POST", "/oauth2/token", Some("text/plain"), &[], b"x")
                .status
        })
        .collect();
    assert_eq!(garbage, [400, 400, 400, 400, 400, 429, 429], "{garbage:?}");
}

/// Finding 4: with `[audit] mode = "durable"` a token is answered only once its record is
/// stored, so a node killed right after answering (SIGKILL: no shutdown, no flush) has lost
/// no record of a token it gave out. Revocations are durable in either mode.
#[test]
fn a_killed_node_lost_no_record_of_what_it_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let env = [("PORTCULLIS_AUDIT__MODE", "durable")];
    let node = Node::start_in(&dir, &env);
    let (id, secret) = node.create_client(&["--id", "meter"]);
    let mut jtis = Vec::new();
    for _ in 0..20 {
        let t = token(&node, &id, &secret, "");
        jtis.push(support::jwt_payload(&t)["jti"].as_str().unwrap().to_owned());
    }
    drop(node); // SIGKILL

    let node = Node::start_in(&dir, &env);
    let list = node.cli_json(&["audit", "list", "--limit", "1000"]);
    let issued: Vec<&str> = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "token.issued" && r["actor"] == "meter")
        .filter_map(|r| r["subject"].as_str())
        .collect();
    for jti in &jtis {
        assert!(
            issued.contains(&jti.as_str()),
            "token {jti} was answered but not recorded"
        );
    }
}

/// Finding 7: a client that opens a connection to the plain listener and trickles its
/// headers (slowloris) is cut off after 30 s, as on the TLS listener.
#[test]
fn a_connection_that_never_finishes_its_headers_is_closed() {
    use std::io::{Read, Write};
    let node = Node::start();
    let addr = node.base.trim_start_matches("http://").to_owned();
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(45)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 512];
    // The server answers 408 or just closes; either way the read ends well before 45 s.
    let _ = slow.read(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(40),
        "the connection was held for {waited:?}"
    );
    // Meanwhile the node kept serving everyone else.
    assert_eq!(node.get("/healthz").status, 200);
}

/// A tiny HTTP server that answers every request with an empty JWK Set and counts the
/// connections it got.
fn counting_jwks_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = r#"{"keys":[]}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, hits)
}

/// The signing input (`header.claims`, base64url) of a client assertion for `client_id`,
/// with a fresh `jti`.
fn assertion_input(alg: &str, client_id: &str, audience: &str) -> String {
    use base64::Engine as _;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let jti = format!("{alg}-{}-{}", now.as_secs(), now.subsec_nanos());
    let now = now.as_secs();
    format!(
        "{}.{}",
        b64(serde_json::json!({"alg": alg, "kid": "k1"})),
        b64(
            serde_json::json!({"iss": client_id, "sub": client_id, "aud": audience, "exp": now + 60, "iat": now, "jti": jti})
        )
    )
}

/// The token request form carrying `assertion`.
fn assertion_form(assertion: &str) -> String {
    format!(
        "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    )
}

/// A syntactically fine client assertion whose signature nothing will verify: enough to make
/// the server look up the client's keys.
fn unverifiable_assertion(client_id: &str, audience: &str) -> String {
    format!("{}.c2ln", assertion_input("ES256", client_id, audience))
}

/// Finding 7: a `jwks_uri` that points inside the server's own network is never fetched
/// (first request or redirect), unless `[oauth] jwks_uri_allow_private` allows it.
#[test]
fn a_jwks_uri_pointing_inside_the_network_is_never_fetched() {
    for (allow, expect_fetch) in [("false", false), ("true", true)] {
        let node = Node::start_with_env(&[("PORTCULLIS_OAUTH__JWKS_URI_ALLOW_PRIVATE", allow)]);
        let (port, hits) = counting_jwks_server();
        let (id, _) = node.create_client(&[
            "--auth-method",
            "private_key_jwt",
            "--jwks-uri",
            &format!("http://127.0.0.1:{port}/jwks"),
        ]);
        let audience = format!("{}/oauth2/token", node.base);
        for _ in 0..3 {
            let form = assertion_form(&unverifiable_assertion(&id, &audience));
            let answer = node.post_form("/oauth2/token", &form, None);
            assert_eq!(
                (answer.status, answer.error()),
                (401, "invalid_client"),
                "{}",
                answer.text
            );
        }
        let fetched = hits.load(std::sync::atomic::Ordering::SeqCst);
        if expect_fetch {
            // Allowed: fetched once; the failed verification does not refetch within 10 s.
            assert_eq!(fetched, 1, "allow_private = {allow}");
        } else {
            assert_eq!(
                fetched, 0,
                "allow_private = {allow}: the server connected inward"
            );
        }
    }
}

/// Finding 7: what the README promises for `client_secret_jwt` works — a new client's secret
/// is long enough to be an HS384 and HS512 key (RFC 7518 §3.2).
#[test]
fn client_secret_jwt_clients_can_sign_with_every_hmac_algorithm() {
    use base64::Engine as _;
    let node = Node::start();
    let (id, secret) = node.create_client(&["--auth-method", "client_secret_jwt"]);
    assert!(secret.len() >= 64, "{} characters", secret.len());
    let audience = format!("{}/oauth2/token", node.base);
    for (alg, hmac) in [
        ("HS256", aws_lc_rs::hmac::HMAC_SHA256),
        ("HS384", aws_lc_rs::hmac::HMAC_SHA384),
        ("HS512", aws_lc_rs::hmac::HMAC_SHA512),
    ] {
        let input = assertion_input(alg, &id, &audience);
        let key = aws_lc_rs::hmac::Key::new(hmac, secret.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        let assertion = format!(
            "{input}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
        );
        let answer = node.post_form("/oauth2/token", &assertion_form(&assertion), None);
        assert_eq!(answer.status, 200, "{alg}: {}", answer.text);
    }
}

/// Finding 7: revocation is rate-limited per client like token requests (each revocation is
/// kept until its token expires), and a token that has already expired is not stored at all.
#[test]
fn revocations_are_rate_limited_per_client() {
    let node = Node::start_with_env(&[("PORTCULLIS_RATE_LIMIT__PER_CLIENT", "3")]);
    let (id, secret) = node.create_client(&[]);
    let t = token(&node, &id, &secret, "");
    let revoke = |node: &Node| {
        node.post_form(
            "/oauth2/revoke",
            &format!("token={t}"),
            Some((&id, &secret)),
        )
        .status
    };
    let statuses: Vec<u16> = (0..4).map(|_| revoke(&node)).collect();
    assert_eq!(
        statuses,
        [200, 200, 429, 429],
        "one token request and two revocations fill the budget of 3"
    );
}
