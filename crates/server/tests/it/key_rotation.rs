//! Key rotation on a running node: a new key is published before it signs, the old one stays
//! published while its tokens live, and an emergency rotation withdraws a key at once.
//! (The timeline rules themselves are tested with an injected clock in core::rotation.)

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{jwt_header, Node};

fn kid_of(token: &str) -> String {
    jwt_header(token)["kid"].as_str().unwrap().to_owned()
}

fn jwks_kids(node: &Node) -> Vec<String> {
    node.get("/jwks.json").json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn key<'a>(keys: &'a Value, kid: &str) -> &'a Value {
    keys.as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("{kid} not in {keys}"))
}

#[test]
fn rotation_publishes_before_signing_and_compromise_withdraws_at_once() {
    let node = Node::start_with_env(&[("PORTCULLIS_KEYS__PREPUBLISH_SECS", "2")]);
    let (id, secret) = node.create_client(&[]);
    let token = |n: &Node| {
        n.token(&id, &secret, "").json["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let active = |t: &str| {
        node.post_form(
            "/oauth2/introspect",
            &format!("token={t}"),
            Some((&id, &secret)),
        )
        .json["active"]
            == true
    };

    let first_token = token(&node);
    let first = kid_of(&first_token);
    let keys = node.cli_json(&["key", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(key(&keys, &first)["signing"], true);

    // On-demand rotation: the new key is published at once but does not sign yet.
    let keys = node.cli_json(&["key", "rotate"]);
    let next = support::pending_kid(&keys);
    assert_eq!(key(&keys, &next)["published"], true);
    assert_eq!(key(&keys, &next)["signing"], false);
    assert!(jwks_kids(&node).contains(&next), "pre-published in JWKS");
    assert_eq!(
        kid_of(&token(&node)),
        first,
        "the old key signs during pre-publication"
    );

    // After pre-publication the new key signs; the old one stays published for its tokens.
    let started = Instant::now();
    while kid_of(&token(&node)) != next {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the next key never started signing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let keys = node.cli_json(&["key", "list"]);
    assert_eq!(key(&keys, &first)["state"], "retired");
    assert_eq!(key(&keys, &first)["published"], true);
    assert!(jwks_kids(&node).contains(&first));
    assert!(active(&first_token), "tokens of the retired key stay valid");

    // Emergency: the signing key is compromised.
    let next_token = token(&node);
    let keys = node.cli_json(&["key", "rotate", "--compromised", &next]);
    assert_eq!(key(&keys, &next)["state"], "revoked");
    assert!(
        !jwks_kids(&node).contains(&next),
        "a compromised key leaves JWKS at once"
    );
    assert!(!active(&next_token), "its tokens are inactive at once");
    let replacement = kid_of(&token(&node));
    assert!(
        replacement != next && replacement != first,
        "a fresh key signs immediately"
    );
    assert!(active(&first_token), "other keys' tokens are unaffected");

    let bad = node.cli(&["key", "rotate", "--compromised", "no-such-kid"]);
    assert_eq!(bad.status.code(), Some(1));

    let audit = node
        .cli_json(&["audit", "list", "--limit", "200"])
        .to_string();
    for action in ["key.created", "key.activated", "key.retired", "key.revoked"] {
        assert!(audit.contains(action), "{action} is audited");
    }
}

/// A `client_secret_jwt` assertion (RFC 7523, HS256 keyed with the client secret).
fn secret_jwt(node: &Node, id: &str, secret: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({"iss": id, "sub": id, "aud": format!("{}/oauth2/token", node.base), "exp": now + 60, "jti": format!("j{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())});
    let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes()),
        input.as_bytes(),
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn jwt_login(node: &Node, id: &str, secret: &str) -> u16 {
    let form = format!(
        "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}",
        secret_jwt(node, id, secret)
    );
    node.post_form("/oauth2/token", &form, None).status
}

#[test]
fn rewrap_moves_every_sealed_secret_to_a_new_master_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let new_key = tmp.path().join("new-master.key");
    let node = Node::start_in(&dir, &[]);
    let (id, secret) = node.create_client(&[]);
    let (jwt_id, jwt_secret) = node.create_client(&["--auth-method", "client_secret_jwt"]);
    assert_eq!(
        jwt_login(&node, &jwt_id, &jwt_secret),
        200,
        "client_secret_jwt works before"
    );
    let kid = kid_of(
        node.token(&id, &secret, "").json["access_token"]
            .as_str()
            .unwrap(),
    );
    assert!(node.stop().success());

    let store = format!("sqlite:{}", dir.join("portcullis.db").display());
    let rewrap = || {
        std::process::Command::new(support::BIN)
            .args(["key", "rewrap", "--store-url", &store, "--old-master-key"])
            .arg(dir.join("master.key"))
            .arg("--new-master-key")
            .arg(&new_key)
            .output()
            .unwrap()
    };
    let out = rewrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("rewrapped 1 signing keys, 1 client secrets and 2 CA keys"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let again = rewrap();
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains("rewrapped 0 signing keys, 0 client secrets and 0 CA keys"),
        "idempotent"
    );

    let old_key_start = support::serve_to_exit(&dir, &[]);
    assert_eq!(
        old_key_start.status.code(),
        Some(1),
        "the old master key no longer opens the signing key"
    );

    let node = Node::start_in(
        &dir,
        &[(
            "PORTCULLIS_KEYS__MASTER_KEY_FILE",
            new_key.to_str().unwrap(),
        )],
    );
    let t = node.token(&id, &secret, "");
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(
        kid_of(t.json["access_token"].as_str().unwrap()),
        kid,
        "the same key, now under the new master key"
    );
    assert_eq!(
        jwt_login(&node, &jwt_id, &jwt_secret),
        200,
        "client_secret_jwt works after"
    );
    let audit = node
        .cli_json(&["audit", "list", "--limit", "100"])
        .to_string();
    for action in ["key.created", "key.activated", "key.rewrapped"] {
        assert!(
            audit.contains(action),
            "{action} is audited, at start-up and offline too"
        );
    }
    assert_eq!(node.cli_json(&["audit", "verify"])["ok"], true);
}

#[test]
fn retire_withdraws_a_pending_key_and_hands_signing_only_to_a_published_successor() {
    let node = Node::start_with_env(&[("PORTCULLIS_KEYS__PREPUBLISH_SECS", "3600")]);
    let (id, secret) = node.create_client(&[]);
    let signing_kid = || {
        kid_of(
            node.token(&id, &secret, "").json["access_token"]
                .as_str()
                .unwrap(),
        )
    };
    let first = signing_kid();
    let refused = node.cli(&["key", "retire", &first]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "the only signing key cannot be retired"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("successor"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let keys = node.cli_json(&["key", "rotate"]);
    let pending = support::pending_kid(&keys);
    let keys = node.cli_json(&["key", "retire", &pending]);
    assert_eq!(
        key(&keys, &pending)["state"],
        "retired",
        "a pending key is withdrawn"
    );
    assert_eq!(signing_kid(), first);

    let keys = node.cli_json(&["key", "rotate"]);
    let successor = support::pending_kid(&keys);
    let keys = node.cli_json(&["key", "retire", &first]);
    assert_eq!(key(&keys, &first)["state"], "retired");
    assert_eq!(
        key(&keys, &successor)["signing"],
        true,
        "the published successor takes over at once"
    );
    assert_eq!(signing_kid(), successor);
}
