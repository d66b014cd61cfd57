//! Fuzzes the JWT bearer grant's handling of an outside token (RFC 7523 §3) before and after
//! its signature check: an arbitrary string through the compact-JWS decoder, the claims as a
//! JSON object, the trusted issuer's claim rules and the policy match (anchored glob patterns
//! over string claims). None may panic; refusals are expected.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis_core::federation::{pattern_matches, select_policy, TrustPolicy, TrustedIssuer};
use serde_json::{Map, Value};

/// A fixed "now" so that runs are reproducible: 2026-01-01T00:00:00Z.
const NOW: i64 = 1_767_225_600;

fn trust() -> &'static (TrustedIssuer, Vec<TrustPolicy>) {
    static TRUST: OnceLock<(TrustedIssuer, Vec<TrustPolicy>)> = OnceLock::new();
    TRUST.get_or_init(|| {
        let issuer = TrustedIssuer {
            name: "k8s".into(),
            issuer: "https://kubernetes.default.svc".into(),
            jwks_uri: None,
            jwks: None,
            algorithms: vec![],
            audience: "portcullis".into(),
            max_lifetime_secs: 3600,
        };
        let policy = |name: &str, claims: &[(&str, &str)]| TrustPolicy {
            name: name.into(),
            issuer: "k8s".into(),
            claims: claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            client_id: "c".into(),
            scopes: vec![],
        };
        let policies = vec![
            policy("sa", &[("sub", "system:serviceaccount:prod:*")]),
            policy(
                "ci",
                &[("sub", "repo:acme/*:ref:*"), ("ref", "refs/heads/main")],
            ),
        ];
        (issuer, policies)
    })
}

fuzz_target!(|token: &str| {
    // The raw input as a pattern and a value too: the matcher must stay total on anything.
    let mid = token
        .char_indices()
        .map(|(i, _)| i)
        .nth(token.chars().count() / 2)
        .unwrap_or(token.len());
    let (head, tail) = token.split_at(mid);
    let _ = pattern_matches(head, tail);
    let Ok(decoded) = portcullis_keys::decode(token) else {
        return;
    };
    let Ok(claims) = decoded.claims_as::<Map<String, Value>>() else {
        return;
    };
    let (issuer, policies) = trust();
    let _ = issuer.check_claims(&claims, NOW);
    let _ = select_policy(policies, "k8s", &claims);
});
