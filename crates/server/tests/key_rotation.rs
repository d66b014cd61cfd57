//! Key rotation on a running node: a new key is published before it signs, the old one stays
//! published while its tokens live, and an emergency rotation withdraws a key at once.
//! (The timeline rules themselves are tested with an injected clock in core::rotation.)

mod support;

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
    let next = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "next")
        .expect("a next key")["kid"]
        .as_str()
        .unwrap()
        .to_owned();
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
