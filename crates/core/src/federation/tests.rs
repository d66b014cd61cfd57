use super::*;
use serde_json::json;

fn claims(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn k8s() -> TrustedIssuer {
    TrustedIssuer {
        name: "k8s-prod".into(),
        issuer: "https://kubernetes.default.svc.cluster.local".into(),
        jwks_uri: None,
        jwks: None,
        algorithms: vec![],
        audience: "https://auth.example".into(),
        max_lifetime_secs: 3600,
    }
}

fn policy(sub: &str) -> TrustPolicy {
    TrustPolicy {
        name: "api".into(),
        issuer: "k8s-prod".into(),
        claims: [("sub".to_owned(), sub.to_owned())].into(),
        client_id: "payments-api".into(),
        scopes: vec!["read".into()],
    }
}

const NOW: i64 = 1_800_000_000;

fn sa_token() -> Map<String, Value> {
    claims(json!({
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": "system:serviceaccount:prod:payments",
        "aud": ["https://auth.example"],
        "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 3000,
        "kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "payments"}}
    }))
}

#[test]
fn patterns_are_anchored_globs() {
    let yes = [
        (
            "system:serviceaccount:prod:*",
            "system:serviceaccount:prod:payments",
        ),
        (
            "repo:acme/*:ref:refs/heads/main",
            "repo:acme/api:ref:refs/heads/main",
        ),
        ("a*b*c", "abc"),
        ("a*b*c", "axxbyyc"),
        ("exact", "exact"),
        ("*suffix", "the-suffix"),
    ];
    for (p, v) in yes {
        assert!(pattern_matches(p, v), "{p} ~ {v}");
    }
    let no = [
        (
            "system:serviceaccount:prod:payments",
            "system:serviceaccount:prod:payments-evil",
        ),
        (
            "system:serviceaccount:prod:payments",
            "xsystem:serviceaccount:prod:payments",
        ),
        (
            "system:serviceaccount:prod:*",
            "system:serviceaccount:prod2:x",
        ),
        (
            "repo:acme/*:ref:refs/heads/main",
            "repo:acme/api:ref:refs/heads/main-evil",
        ),
        (
            "repo:acme/*:ref:refs/heads/main",
            "repo:evil/x:ref:refs/heads/mainrepo:acme/a:ref:refs/heads/main2",
        ),
        ("a*b*c", "acb"),
        ("exact", "Exact"),
        ("exact", ""),
    ];
    for (p, v) in no {
        assert!(!pattern_matches(p, v), "{p} !~ {v}");
    }
    // Hostile shapes stay linear.
    let long = "a".repeat(10_000);
    assert!(!pattern_matches(
        &"*a".repeat(500).replace("**", "*"),
        &format!("{long}b")
    ));
}

#[test]
fn a_service_account_token_passes_its_issuers_rules() {
    assert_eq!(k8s().check_claims(&sa_token(), NOW), Ok(NOW + 3000));
    let select = [policy("system:serviceaccount:prod:*")];
    assert_eq!(
        select_policy(&select, "k8s-prod", &sa_token()).map(|p| p.name.as_str()),
        Some("api")
    );
    assert!(select_policy(&select, "other", &sa_token()).is_none());
    assert!(select_policy(
        &[policy("system:serviceaccount:dev:*")],
        "k8s-prod",
        &sa_token()
    )
    .is_none());
}

#[test]
fn each_issuer_rule_is_enforced() {
    use ExternalTokenError::*;
    let bent = |name: &str, value: Value| {
        let mut c = sa_token();
        c.insert(name.into(), value);
        c
    };
    let mut no_sub = sa_token();
    no_sub.remove("sub");
    let mut no_exp = sa_token();
    no_exp.remove("exp");
    let cases = [
        (bent("iss", json!("https://evil.example")), NoTrustedIssuer),
        (bent("aud", json!("https://other.example")), WrongAudience),
        (bent("aud", json!(["x", "y"])), WrongAudience),
        (bent("exp", json!(NOW - 61)), Expired),
        (bent("iat", json!(NOW + 120)), NotYetValid),
        (bent("nbf", json!(NOW + 120)), NotYetValid),
        (bent("exp", json!(NOW + 7200)), TooLong),
        (bent("exp", json!("soon")), MissingClaim("exp")),
        (no_sub, MissingClaim("sub")),
        (no_exp, MissingClaim("exp")),
    ];
    for (c, want) in cases {
        assert_eq!(k8s().check_claims(&c, NOW), Err(want), "{c:?}");
    }
}

#[test]
fn an_exp_gets_no_skew_so_the_issued_token_cannot_outlive_the_outside_token() {
    let expiring = |exp: i64| {
        let mut c = sa_token();
        c.insert("exp".into(), json!(exp));
        k8s().check_claims(&c, NOW)
    };
    assert_eq!(expiring(NOW - 30), Err(ExternalTokenError::Expired));
    assert_eq!(expiring(NOW), Err(ExternalTokenError::Expired));
    // Expiring in 30 s: accepted, and the expiry the token is held to is that one.
    assert_eq!(expiring(NOW + 30), Ok(NOW + 30));
    // iat and nbf keep their skew: an issuer whose clock is 30 s ahead of ours is fine.
    let mut ahead = sa_token();
    ahead.insert("iat".into(), json!(NOW + 30));
    ahead.insert("nbf".into(), json!(NOW + 30));
    assert_eq!(k8s().check_claims(&ahead, NOW), Ok(NOW + 3000));
}

#[test]
fn a_policy_matches_only_string_claims() {
    let mut p = policy("system:serviceaccount:prod:*");
    p.claims.insert("kubernetes.io".into(), "*prod*".into());
    // An object claim never matches a pattern, even one that its JSON text would.
    assert!(!p.matches(&sa_token()));
}

#[test]
fn trust_configurations_are_checked_whole() {
    assert_eq!(
        validate_trust(&[k8s()], &[], &[policy("system:serviceaccount:prod:*")]),
        Ok(())
    );
    let mut orphan = policy("x");
    orphan.issuer = "nobody".into();
    assert!(validate_trust(&[k8s()], &[], &[orphan]).is_err());
    assert!(validate_trust(&[k8s(), k8s()], &[], &[]).is_err());
    let mut only_star = policy("*");
    only_star.name = "star".into();
    assert!(validate_trust(&[k8s()], &[], &[only_star]).is_err());
    let mut no_sub = policy("x");
    no_sub.claims = [("repository".to_owned(), "acme/api".to_owned())].into();
    assert!(no_sub.validate().is_err());
    let mut plain_http = k8s();
    plain_http.issuer = "http://issuer.example".into();
    assert!(plain_http.validate().is_err());
    plain_http.issuer = "http://127.0.0.1:9000".into();
    assert!(plain_http.validate().is_ok());
}
