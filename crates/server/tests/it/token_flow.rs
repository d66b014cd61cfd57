//! End to end: the real binary, a fresh data directory, the CLI and the OAuth endpoints.

use crate::support;

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use support::{jwt_header, jwt_payload, Node};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn first_start_creates_private_state_and_restart_keeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let node = Node::start_in(&dir, &[]);
    assert_eq!(mode(&dir.join("master.key")), 0o600);
    assert_eq!(mode(&dir.join("admin.json")), 0o600);
    assert_eq!(
        mode(&dir.join("portcullis.db")),
        0o600,
        "the database holds sealed keys and hashes"
    );
    assert_eq!(mode(&dir), 0o700);
    assert!(
        node.log().contains("admin.json"),
        "the log names the credential file"
    );
    let admin_before = std::fs::read_to_string(dir.join("admin.json")).unwrap();
    let (id, secret) = node.create_client(&["--scope", "read"]);
    let kid_before = node.get("/jwks.json").json["keys"][0]["kid"].clone();
    assert!(node.stop().success(), "SIGTERM ends the node cleanly");

    let node = Node::start_in(&dir, &[]);
    assert_eq!(
        std::fs::read_to_string(dir.join("admin.json")).unwrap(),
        admin_before,
        "bootstrap runs once"
    );
    let t = node.token(&id, &secret, "");
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(
        jwt_header(t.json["access_token"].as_str().unwrap())["kid"],
        kid_before,
        "same signing key after restart"
    );
}

#[test]
fn client_credentials_token_is_an_rfc9068_jwt() {
    let node = Node::start();
    let (id, secret) = node.create_client(&[
        "--scope",
        "read",
        "--scope",
        "write",
        "--audience",
        "https://api.example",
    ]);
    let t = node.token(&id, &secret, "");
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(t.header("cache-control"), Some("no-store"));
    assert_eq!(t.json["token_type"], "Bearer");
    assert_eq!(t.json["expires_in"], 3600);
    assert_eq!(t.json["scope"], "read write");
    let token = t.json["access_token"].as_str().unwrap();
    let header = jwt_header(token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let claims = jwt_payload(token);
    assert_eq!(claims["iss"], node.base.as_str());
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["aud"], "https://api.example");
    assert_eq!(claims["scope"], "read write");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    let jwks = node.get("/jwks.json").json;
    let published: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kid"] == header["kid"])
        .collect();
    assert_eq!(published.len(), 1, "the signing key is in JWKS");
    assert!(
        published[0].get("d").is_none(),
        "JWKS holds public keys only"
    );
    assert_eq!(published[0]["use"], "sig");

    let post = node.post_form(
        "/oauth2/token",
        &format!(
            "grant_type=client_credentials&client_id={id}&client_secret={}",
            support::form_encode(&secret)
        ),
        None,
    );
    assert_eq!(
        post.status, 200,
        "client_secret_post works too: {}",
        post.text
    );
}

#[test]
fn scope_and_resource_are_narrowed_or_refused() {
    let node = Node::start();
    let (id, secret) = node.create_client(&[
        "--scope",
        "read",
        "--scope",
        "write",
        "--audience",
        "urn:a",
        "--audience",
        "urn:b",
    ]);
    let t = node.token(&id, &secret, "&scope=read&resource=urn:b");
    assert_eq!(t.status, 200, "{}", t.text);
    let claims = jwt_payload(t.json["access_token"].as_str().unwrap());
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["aud"], "urn:b");
    let t = node.token(&id, &secret, "&scope=admin");
    assert_eq!((t.status, t.error()), (400, "invalid_scope"));
    let t = node.token(&id, &secret, "&resource=urn:c");
    assert_eq!((t.status, t.error()), (400, "invalid_target"));
}

#[test]
fn introspection_reflects_revocation_at_once() {
    let node = Node::start();
    let (id, secret) = node.create_client(&["--scope", "read"]);
    let (other, other_secret) = node.create_client(&[]);
    let token = node.token(&id, &secret, "").json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let i = node.post_form(
        "/oauth2/introspect",
        &format!("token={token}"),
        Some((&other, &other_secret)),
    );
    assert_eq!(i.status, 200, "{}", i.text);
    assert_eq!(i.json["active"], true);
    assert_eq!(i.json["client_id"], id.as_str());
    assert_eq!(i.json["scope"], "read");

    let r = node.post_form(
        "/oauth2/revoke",
        &format!("token={token}"),
        Some((&other, &other_secret)),
    );
    assert_eq!(
        r.status, 200,
        "revoking someone else's token answers 200 ..."
    );
    let i = node.post_form(
        "/oauth2/introspect",
        &format!("token={token}"),
        Some((&other, &other_secret)),
    );
    assert_eq!(i.json["active"], true, "... but does not revoke it");

    let r = node.post_form(
        "/oauth2/revoke",
        &format!("token={token}&token_type_hint=access_token"),
        Some((&id, &secret)),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let i = node.post_form(
        "/oauth2/introspect",
        &format!("token={token}"),
        Some((&other, &other_secret)),
    );
    assert_eq!(i.json, serde_json::json!({"active": false}));
    let r = node.post_form(
        "/oauth2/revoke",
        &format!("token={token}"),
        Some((&id, &secret)),
    );
    assert_eq!(r.status, 200, "revoking twice is fine");

    for junk in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        let i = node.post_form(
            "/oauth2/introspect",
            &format!("token={junk}"),
            Some((&id, &secret)),
        );
        assert_eq!(
            (i.status, i.json.clone()),
            (200, serde_json::json!({"active": false})),
            "{junk}"
        );
    }
    let i = node.post_form(
        "/oauth2/introspect",
        &format!("token={token}"),
        Some((&id, "wrong")),
    );
    assert_eq!(
        (i.status, i.error()),
        (401, "invalid_client"),
        "introspection requires client authentication"
    );
}

#[test]
fn clients_are_managed_through_the_cli() {
    let node = Node::start();
    let (id, secret) = node.create_client(&["--id", "sensor-1", "--scope", "read"]);
    assert_eq!(id, "sensor-1");
    assert_eq!(secret.len(), 43, "256-bit secret, base64url");
    for i in 0..3 {
        node.create_client(&["--id", &format!("pump-{i}")]);
    }
    let page = node.cli_json(&["client", "list", "--limit", "2"]);
    assert_eq!(page["clients"].as_array().unwrap().len(), 2);
    let next = page["next"].as_str().unwrap().to_owned();
    let rest = node.cli_json(&["client", "list", "--limit", "10", "--after", &next]);
    assert!(rest["next"].is_null());
    let all_ids: Vec<String> = page["clients"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["clients"].as_array().unwrap())
        .map(|c| c["client_id"].as_str().unwrap().to_owned())
        .collect();
    for expected in ["portcullis-admin", "pump-0", "pump-1", "pump-2", "sensor-1"] {
        assert!(
            all_ids.iter().any(|i| i == expected),
            "{expected} listed in {all_ids:?}"
        );
    }

    let shown = node.cli_json(&["client", "show", "sensor-1"]);
    assert_eq!(shown["scopes"], serde_json::json!(["read"]));
    assert!(shown.get("client_secret").is_none() && !shown.to_string().contains(&secret));

    let (peer, peer_secret) = node.create_client(&["--id", "resource-server"]);
    let introspect = |token: &str| {
        let a = node.post_form(
            "/oauth2/introspect",
            &format!("token={token}"),
            Some((&peer, &peer_secret)),
        );
        a.json["active"].clone()
    };
    let issued = node.token(&id, &secret, "").json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(introspect(&issued), true);
    node.cli_json(&["client", "update", "sensor-1", "--disable"]);
    let t = node.token(&id, &secret, "");
    assert_eq!(
        (t.status, t.error()),
        (401, "invalid_client"),
        "disabled client is refused at once"
    );
    assert_eq!(
        introspect(&issued),
        false,
        "a disabled client's tokens are inactive at once"
    );
    node.cli_json(&[
        "client", "update", "sensor-1", "--enable", "--scope", "read", "--scope", "write",
    ]);
    assert_eq!(node.token(&id, &secret, "&scope=write").status, 200);

    let rotated = node.cli_json(&["client", "rotate-secret", "sensor-1", "--overlap", "3600"]);
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(
        node.token(&id, &secret, "").status,
        200,
        "old secret works during the overlap"
    );
    assert_eq!(
        node.token(&id, &new_secret, "").status,
        200,
        "new secret works"
    );
    let rotated = node.cli_json(&["client", "rotate-secret", "sensor-1", "--overlap", "0"]);
    let newest = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        node.token(&id, &new_secret, "").status,
        401,
        "overlap 0 retires the previous secret at once"
    );
    assert_eq!(node.token(&id, &newest, "").status, 200);

    let before_delete = node.token(&id, &newest, "").json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(introspect(&before_delete), true);
    node.cli_json(&["client", "delete", "sensor-1"]);
    assert_eq!(
        introspect(&before_delete),
        false,
        "a deleted client's tokens are inactive at once"
    );
    assert_eq!(
        node.token(&id, &newest, "").status,
        401,
        "deleted client is refused"
    );
    let out = node.cli(&["client", "show", "sensor-1"]);
    assert_eq!(out.status.code(), Some(1), "show of a deleted client fails");
    let out = node.cli(&["client", "create"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing --name is a usage error"
    );
    let out = node.cli(&["client", "create", "--name", "x", "--auth-method", "magic"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("client_secret_basic"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn readable_table_output_without_json() {
    let node = Node::start();
    node.create_client(&["--id", "table-client", "--scope", "read"]);
    let out = node.cli(&["client", "list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().next().unwrap().starts_with("CLIENT_ID"),
        "{text}"
    );
    assert!(text.contains("table-client"));
}

#[test]
fn signing_algorithm_is_configurable() {
    for alg in ["EdDSA", "RS256"] {
        let node = Node::start_with_env(&[("PORTCULLIS_KEYS__ALGORITHM", alg)]);
        let (id, secret) = node.create_client(&[]);
        let t = node.token(&id, &secret, "");
        assert_eq!(t.status, 200, "{}", t.text);
        assert_eq!(
            jwt_header(t.json["access_token"].as_str().unwrap())["alg"],
            alg
        );
        let jwks = node.get("/jwks.json").json;
        assert_eq!(jwks["keys"][0]["alg"], alg);
    }
}

#[test]
fn secrets_and_tokens_never_reach_the_log() {
    let node = Node::start();
    let (id, secret) = node.create_client(&[]);
    let token = node.token(&id, &secret, "").json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    node.token(&id, "wrong-secret-value", "");
    node.post_form(
        "/oauth2/revoke",
        &format!("token={token}"),
        Some((&id, &secret)),
    );
    let admin: Value =
        serde_json::from_str(&std::fs::read_to_string(node.admin_credential()).unwrap()).unwrap();
    let log = node.log();
    let audit = node
        .cli_json(&["audit", "list", "--limit", "1000"])
        .to_string();
    for (what, needle) in [
        ("client secret", secret.as_str()),
        ("token", token.as_str()),
        ("admin secret", admin["client_secret"].as_str().unwrap()),
        ("wrong secret", "wrong-secret-value"),
    ] {
        assert!(!log.contains(needle), "{what} leaked into the log");
        assert!(!audit.contains(needle), "{what} leaked into the audit log");
    }
    let signature = token.rsplit('.').next().unwrap();
    assert!(!log.contains(signature));
}
