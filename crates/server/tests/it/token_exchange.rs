//! Token exchange (RFC 8693) end to end: a gateway exchanges a device's token, acting for it,
//! for a narrower token for one back-end; rules decide who may exchange whose tokens for
//! which audiences, and every way around them is refused.

use crate::support;

use serde_json::{json, Value};
use support::issuer::LocalIssuer;
use support::{jwt_payload, Answer, Node};

const EXCHANGE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange";
const ACCESS: &str = "urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token";
const JWT: &str = "urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt";
const HISTORIAN: &str = "https://historian.example";

struct Setup {
    node: Node,
    gateway: (String, String),
    meter: (String, String),
    valve: (String, String),
}

fn setup(extra_env: &[(&str, &str)]) -> Setup {
    let rules = format!(
        r#"[{{ name = "gateway-for-meters", clients = ["gateway-1"], subjects = ["meter-*", "fed-*"], audiences = ["{HISTORIAN}", "https://billing.example"], scopes = ["telemetry:write"], require_actor = true }}]"#
    );
    let mut env = vec![("PORTCULLIS_TOKEN_EXCHANGE__RULES", rules.as_str())];
    env.extend_from_slice(extra_env);
    let node = Node::start_with_env(&env);
    let gateway = node.create_client(&["--id", "gateway-1", "--scope", "gateway"]);
    let meter = node.create_client(&[
        "--id",
        "meter-7",
        "--scope",
        "telemetry:write",
        "--scope",
        "commands:read",
    ]);
    let valve = node.create_client(&["--id", "valve-3", "--scope", "telemetry:write"]);
    Setup {
        node,
        gateway,
        meter,
        valve,
    }
}

fn token_of(node: &Node, (id, secret): &(String, String)) -> String {
    let a = node.token(id, secret, "");
    assert_eq!(a.status, 200, "{}", a.text);
    a.json["access_token"].as_str().unwrap().to_owned()
}

fn exchange(node: &Node, (id, secret): &(String, String), form: &str) -> Answer {
    node.post_form(
        "/oauth2/token",
        &format!("grant_type={EXCHANGE}{form}"),
        Some((id, secret)),
    )
}

/// The gateway exchanges `subject`, acting for it with a fresh token of its own.
fn exchange_acting(s: &Setup, subject: &str) -> Answer {
    let own = token_of(&s.node, &s.gateway);
    exchange(
        &s.node,
        &s.gateway,
        &format!("&subject_token={subject}&subject_token_type={ACCESS}&actor_token={own}&actor_token_type={ACCESS}"),
    )
}

#[test]
fn a_gateway_acting_for_a_device_gets_a_narrower_token_naming_both() {
    let s = setup(&[]);
    let (device, own) = (token_of(&s.node, &s.meter), token_of(&s.node, &s.gateway));
    let form = format!(
        "&subject_token={device}&subject_token_type={ACCESS}&actor_token={own}&actor_token_type={ACCESS}&audience={HISTORIAN}"
    );
    let answer = exchange(&s.node, &s.gateway, &form);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(answer.json["token_type"], "Bearer");
    assert!(answer.json.get("refresh_token").is_none());
    let token = answer.json["access_token"].as_str().unwrap().to_owned();
    let claims = jwt_payload(&token);
    assert_eq!(claims["sub"], "meter-7");
    assert_eq!(claims["client_id"], "gateway-1");
    assert_eq!(claims["act"], json!({"sub": "gateway-1"}));
    assert_eq!(claims["aud"], HISTORIAN);
    assert_eq!(claims["scope"], "telemetry:write");
    assert!(claims["exp"].as_i64() <= jwt_payload(&device)["exp"].as_i64());
    let i = s.node.post_form(
        "/oauth2/introspect",
        &format!("token={token}"),
        Some((&s.gateway.0, &s.gateway.1)),
    );
    assert_eq!(i.json["active"], true, "{}", i.text);
    assert_eq!(i.json["sub"], "meter-7");

    // Exchanged again, acting again: the chain of actors grows (RFC 8693 §4.1).
    let again = exchange_acting(&s, &token);
    assert_eq!(again.status, 200, "{}", again.text);
    let claims = jwt_payload(again.json["access_token"].as_str().unwrap());
    assert_eq!(
        claims["act"],
        json!({"sub": "gateway-1", "act": {"sub": "gateway-1"}})
    );
    // No audience asked: every audience of the rule.
    assert_eq!(claims["aud"], json!([HISTORIAN, "https://billing.example"]));

    let audit = s.node.cli_json(&["audit", "list", "--limit", "20"]);
    assert!(
        audit["records"].as_array().into_iter().flatten().any(|r| {
            r["action"] == "token.issued" && r["detail"]["exchange"]["rule"] == "gateway-for-meters"
        }),
        "{audit}"
    );
}

/// Revoking a subject token ends every token exchanged from it, directly or through another
/// exchange; revoking an exchanged token leaves its subject token alone.
#[test]
fn revoking_the_subject_token_ends_what_was_exchanged_from_it() {
    let s = setup(&[]);
    let active = |token: &str| {
        let i = s.node.post_form(
            "/oauth2/introspect",
            &format!("token={token}"),
            Some((&s.gateway.0, &s.gateway.1)),
        );
        i.json["active"] == true
    };
    let exchange_from = |subject: &str| {
        let answer = exchange_acting(&s, subject);
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.json["access_token"].as_str().unwrap().to_owned()
    };
    let revoke = |token: &str, (id, secret): &(String, String)| {
        let r = s.node.post_form(
            "/oauth2/revoke",
            &format!("token={token}"),
            Some((id, secret)),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    };

    let device = token_of(&s.node, &s.meter);
    let first = exchange_from(&device);
    let second = exchange_from(&first);
    assert_eq!(
        jwt_payload(&second)["exchanged_from"],
        json!([jwt_payload(&first)["jti"], jwt_payload(&device)["jti"]])
    );
    // Revoking the middle one ends it and what came from it, not its source.
    revoke(&first, &s.gateway);
    assert!(!active(&first) && !active(&second));
    assert!(active(&device));
    // Revoking the device's own token ends every token exchanged from it.
    let third = exchange_from(&device);
    let fourth = exchange_from(&third);
    assert!(active(&third) && active(&fourth));
    revoke(&device, &s.meter);
    assert!(!active(&third) && !active(&fourth));
    // And nothing more can be exchanged from them.
    let refused = exchange_acting(&s, &third);
    assert_eq!(refused.error(), "invalid_grant", "{}", refused.text);
}

/// An exchange chain is bounded, so the sources checked on every use stay few.
#[test]
fn a_token_exchanged_eight_times_over_cannot_be_exchanged_again() {
    let s = setup(&[]);
    let mut token = token_of(&s.node, &s.meter);
    for depth in 0..=8 {
        let answer = exchange_acting(&s, &token);
        if depth < 8 {
            assert_eq!(answer.status, 200, "{depth}: {}", answer.text);
            token = answer.json["access_token"].as_str().unwrap().to_owned();
        } else {
            assert_eq!(answer.error(), "invalid_grant", "{}", answer.text);
            assert!(answer.text.contains("too many"), "{}", answer.text);
        }
    }
    assert_eq!(
        jwt_payload(&token)["exchanged_from"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
}

#[test]
fn exchanges_outside_the_rules_are_refused() {
    let s = setup(&[]);
    let device = token_of(&s.node, &s.meter);
    let own = token_of(&s.node, &s.gateway);
    let valve = token_of(&s.node, &s.valve);
    let actor = format!("&actor_token={own}&actor_token_type={ACCESS}");
    let subject = |t: &str| format!("&subject_token={t}&subject_token_type={ACCESS}");
    let cases: Vec<(&str, String, &(String, String), &str)> = vec![
        ("no actor token where the rule asks for one", subject(&device), &s.gateway, "unauthorized_client"),
        ("an actor token of another client", format!("{}&actor_token={valve}&actor_token_type={ACCESS}", subject(&device)), &s.gateway, "invalid_grant"),
        ("a subject no rule covers", format!("{}{actor}", subject(&valve)), &s.gateway, "unauthorized_client"),
        ("a requester no rule names", format!("{}&actor_token={valve}&actor_token_type={ACCESS}", subject(&device)), &s.valve, "unauthorized_client"),
        ("an audience the rule does not name", format!("{}{actor}&audience=https://evil.example", subject(&device)), &s.gateway, "invalid_target"),
        ("a scope beyond the rule", format!("{}{actor}&scope=commands:read", subject(&device)), &s.gateway, "invalid_scope"),
        ("a subject token that is not ours", format!("{}{actor}", subject("eyJhbGciOiJFUzI1NiJ9.e30.c2ln")), &s.gateway, "invalid_grant"),
        ("an unknown token type", format!("&subject_token={device}&subject_token_type=urn:ietf:params:oauth:token-type:saml2{actor}"), &s.gateway, "invalid_request"),
        ("a refresh token asked for", format!("{}{actor}&requested_token_type=urn:ietf:params:oauth:token-type:refresh_token", subject(&device)), &s.gateway, "invalid_request"),
        ("no subject token", actor.clone(), &s.gateway, "invalid_request"),
    ];
    for (why, form, client, error) in cases {
        let answer = exchange(&s.node, client, &form);
        assert_eq!(answer.error(), error, "{why}: {}", answer.text);
        assert!(answer.json.get("access_token").is_none(), "{why}");
    }
    // Without client authentication: invalid_client.
    let anonymous = s.node.post_form(
        "/oauth2/token",
        &format!("grant_type={EXCHANGE}{}{actor}", subject(&device)),
        None,
    );
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    // A revoked subject token cannot be exchanged.
    s.node.post_form(
        "/oauth2/revoke",
        &format!("token={device}"),
        Some((&s.meter.0, &s.meter.1)),
    );
    let revoked = exchange(&s.node, &s.gateway, &format!("{}{actor}", subject(&device)));
    assert_eq!(revoked.error(), "invalid_grant", "{}", revoked.text);
}

/// An outside token of a trusted federation issuer can be the subject: its mapped client is
/// the new token's `sub`, and the outside subject stays named.
#[test]
fn a_trusted_outside_token_can_be_the_subject() {
    let issuer = LocalIssuer::start();
    let issuers = format!(
        r#"[{{ name = "k8s", issuer = "{}", audience = "portcullis" }}]"#,
        issuer.base
    );
    let policies = r#"[{ name = "fed", issuer = "k8s", claims = { sub = "system:serviceaccount:edge:*" }, client_id = "fed-agent", scopes = ["telemetry:write"] }]"#;
    let s = setup(&[
        ("PORTCULLIS_OAUTH__JWKS_URI_ALLOW_PRIVATE", "true"),
        ("PORTCULLIS_FEDERATION__ISSUERS", &issuers),
        ("PORTCULLIS_FEDERATION__POLICIES", policies),
    ]);
    s.node
        .create_client(&["--id", "fed-agent", "--scope", "telemetry:write"]);
    let outside = issuer.sign(&issuer.service_account_claims("edge", "agent", "portcullis"));
    let own = token_of(&s.node, &s.gateway);
    let answer = exchange(
        &s.node,
        &s.gateway,
        &format!("&subject_token={outside}&subject_token_type={JWT}&actor_token={own}&actor_token_type={ACCESS}"),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    let claims: Value = jwt_payload(answer.json["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "fed-agent");
    assert_eq!(
        claims["federated"]["sub"],
        "system:serviceaccount:edge:agent"
    );
    assert_eq!(claims["act"]["sub"], "gateway-1");
}

/// Rules set through the admin API (`federation set`, `PUT /admin/v1/federation`) work like
/// the configuration's, after them; a name the configuration uses is refused, and removing
/// the rule refuses the exchange again at once.
#[test]
fn rules_set_through_the_admin_api_allow_exchanges_after_the_configurations() {
    let s = setup(&[]);
    let proxy = s
        .node
        .create_client(&["--id", "historian-proxy", "--scope", "proxy"]);
    let valve = token_of(&s.node, &s.valve);
    let form = format!("&subject_token={valve}&subject_token_type={ACCESS}");
    assert_eq!(
        exchange(&s.node, &proxy, &form).error(),
        "unauthorized_client"
    );

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("trust.toml");
    let rule = |name: &str| {
        format!(
            "[[exchange_rules]]\nname = \"{name}\"\nclients = [\"historian-proxy\"]\n\
             subjects = [\"valve-*\"]\naudiences = [\"{HISTORIAN}\"]\n"
        )
    };
    std::fs::write(&file, rule("proxy-for-valves")).unwrap();
    let shown = s
        .node
        .cli_json(&["federation", "set", file.to_str().unwrap()]);
    assert_eq!(
        shown["admin"]["exchange_rules"][0]["name"], "proxy-for-valves",
        "{shown}"
    );
    // The configuration's rule is shown as the configuration's part.
    assert_eq!(
        shown["config"]["exchange_rules"][0]["name"], "gateway-for-meters",
        "{shown}"
    );
    let answer = exchange(&s.node, &proxy, &form);
    assert_eq!(answer.status, 200, "{}", answer.text);
    let claims = jwt_payload(answer.json["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "valve-3");
    assert_eq!(claims["aud"], HISTORIAN);
    // The change is audited with the rule's name.
    let changed = s.node.cli_json(&["audit", "list", "--limit", "20"])["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "federation.changed")
        .cloned()
        .expect("audited");
    assert_eq!(
        changed["detail"]["exchange_rules"],
        json!(["proxy-for-valves"])
    );

    // A name the configuration already uses, and a rule that breaks the rules, are refused;
    // what was in force stays.
    for (bad, why) in [
        (rule("gateway-for-meters"), "unique"),
        (
            "[[exchange_rules]]\nname = \"any\"\nclients = [\"historian-proxy\"]\n\
             subjects = [\"*\"]\naudiences = [\"x\"]\n"
                .to_owned(),
            "only '*'",
        ),
    ] {
        std::fs::write(&file, bad).unwrap();
        let refused = s.node.cli(&["federation", "set", file.to_str().unwrap()]);
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(why), "{why}: {stderr}");
    }
    assert_eq!(exchange(&s.node, &proxy, &form).status, 200);

    // Removed: refused again.
    std::fs::write(&file, "").unwrap();
    s.node
        .cli_json(&["federation", "set", file.to_str().unwrap()]);
    assert_eq!(
        exchange(&s.node, &proxy, &form).error(),
        "unauthorized_client"
    );
}
