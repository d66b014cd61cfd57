//! Behind a reverse proxy: `[server] trusted_proxies` makes per-address limits, the
//! authentication-failure lock-out and audit records use the client named in
//! `X-Forwarded-For` — only when the TCP peer is a trusted proxy. (The address rule itself is
//! tested with a table in `core::forwarded`.)

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{basic_header, Answer, Node};

/// Failures per minute before an address is locked out, small so the tests are quick.
const MAX_FAILURES: &str = "3";

/// A token request as a proxy forwards it: from the test (127.0.0.1), with `forwarded_for`
/// as the `X-Forwarded-For` field (none when empty).
fn token_via(node: &Node, id: &str, secret: &str, forwarded_for: &str) -> Answer {
    let auth = basic_header(id, secret);
    let mut headers = vec![("Authorization", auth.as_str())];
    if !forwarded_for.is_empty() {
        headers.push(("X-Forwarded-For", forwarded_for));
    }
    node.request(
        "POST",
        "/oauth2/token",
        Some("application/x-www-form-urlencoded"),
        &headers,
        b"grant_type=client_credentials",
    )
}

/// The status of a token request written by hand, so a header can appear twice (the HTTP
/// client of the harness keeps one field per name).
fn raw_status(node: &Node, headers: &[String]) -> u16 {
    use std::io::{Read, Write};
    let addr = node.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = "grant_type=client_credentials";
    let mut request = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

/// Fails authentication from `forwarded_for` until the address is answered 429.
fn lock_out(node: &Node, id: &str, forwarded_for: &str) {
    let statuses: Vec<u16> = (0..6)
        .map(|_| token_via(node, id, "guess", forwarded_for).status)
        .collect();
    assert_eq!(
        &statuses[..3],
        &[401, 401, 401],
        "failures are counted first: {statuses:?}"
    );
    assert!(
        statuses[3..].iter().all(|s| *s == 429),
        "then {forwarded_for:?} is locked out: {statuses:?}"
    );
}

/// The `source` of every `token.refused` audit record, waiting for the batched writer.
fn refused_sources(node: &Node, at_least: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = node.cli_json(&["audit", "list", "--limit", "100"]);
        let sources: Vec<String> = list["records"]
            .as_array()
            .expect("records")
            .iter()
            .filter(|r| r["action"] == "token.refused")
            .map(|r| detail_source(&r["detail"]))
            .collect();
        if sources.len() >= at_least || Instant::now() > deadline {
            return sources;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn detail_source(detail: &Value) -> String {
    // The CLI may show the detail as an object or as its JSON text.
    let parsed;
    let detail = match detail.as_str() {
        Some(text) => {
            parsed = serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
            &parsed
        }
        None => detail,
    };
    detail["source"].as_str().unwrap_or("").to_owned()
}

#[test]
fn behind_a_trusted_proxy_only_the_failing_client_is_locked_out() {
    let node = Node::start_with_env(&[
        ("PORTCULLIS_SERVER__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]"),
        (
            "PORTCULLIS_RATE_LIMIT__AUTH_FAILURES_PER_MINUTE",
            MAX_FAILURES,
        ),
    ]);
    let (id, secret) = node.create_client(&[]);

    lock_out(&node, &id, "198.51.100.1");
    let other = token_via(&node, &id, &secret, "198.51.100.2");
    assert_eq!(
        other.status, 200,
        "another client behind the proxy: {}",
        other.text
    );
    let locked = token_via(&node, &id, &secret, "198.51.100.1");
    assert_eq!(
        locked.status, 429,
        "the failing client waits even with the right secret"
    );
    // The locked-out client forges a left-most entry; the proxy appended its real address.
    let forged = token_via(&node, &id, &secret, "198.51.100.2, 198.51.100.1");
    assert_eq!(forged.status, 429, "a forged X-Forwarded-For does not help");
    // The same, as two header fields (the client's own, then the proxy's).
    let forged_fields = raw_status(
        &node,
        &[
            format!("Authorization: {}", basic_header(&id, &secret)),
            "X-Forwarded-For: 198.51.100.2".to_owned(),
            "X-Forwarded-For: 198.51.100.1".to_owned(),
        ],
    );
    assert_eq!(forged_fields, 429, "two fields are one list");
    // The proxy itself (no header) was never blamed.
    assert_eq!(token_via(&node, &id, &secret, "").status, 200);

    // The audit records name the client behind the proxy, not the proxy. (Refusals from one
    // source are summarised: the first is recorded at once, the rest when the window closes.)
    let sources = refused_sources(&node, 1);
    assert!(
        !sources.is_empty() && sources.iter().all(|s| s == "198.51.100.1"),
        "refusals are audited with the forwarded address: {sources:?}"
    );
}

#[test]
fn without_trusted_proxies_x_forwarded_for_is_ignored() {
    let node = Node::start_with_env(&[(
        "PORTCULLIS_RATE_LIMIT__AUTH_FAILURES_PER_MINUTE",
        MAX_FAILURES,
    )]);
    let (id, secret) = node.create_client(&[]);

    lock_out(&node, &id, "198.51.100.1");
    // The lock-out fell on the real peer (127.0.0.1): a fresh X-Forwarded-For does not escape it.
    for xff in ["198.51.100.2", "198.51.100.2, 198.51.100.3", ""] {
        let a = token_via(&node, &id, &secret, xff);
        assert_eq!(a.status, 429, "XFF {xff:?} cannot escape the lock-out");
    }
}

#[test]
fn a_bad_trusted_proxy_is_a_clear_configuration_error() {
    let out = support::serve_to_exit(
        std::path::Path::new("/nonexistent-never"),
        &[("PORTCULLIS_SERVER__TRUSTED_PROXIES", "[\"10.0.0.0/33\"]")],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server.trusted_proxies") && stderr.contains("10.0.0.0/33"),
        "{stderr}"
    );
}
