//! Fuzzes command rules as the configuration (TOML) and the admin API (JSON) read them, then
//! one evaluation: the bytes before the first NUL are the rules (a JSON list of rules, one
//! JSON rule, or a TOML document with `[[rules]]`), the bytes after it the command's JSON
//! arguments. Nothing may panic; an accepted policy serializes and parses back to itself, and
//! a decision names only rules of the policy.
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portcullis_core::command_policy::{
    CommandPolicy, CommandRequest, CommandRule, Decision, Principal, Target,
};
use portcullis_core::device::DeviceId;
use portcullis_core::ScopeSet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Doc {
    rules: CommandPolicy,
}

static SCOPES: LazyLock<ScopeSet> =
    LazyLock::new(|| ScopeSet::parse("commands:valve read").unwrap_or_default());
static DEVICE: LazyLock<Option<DeviceId>> = LazyLock::new(|| DeviceId::parse("valve-7").ok());
static ATTRS: LazyLock<BTreeMap<String, String>> =
    LazyLock::new(|| BTreeMap::from([("site".to_owned(), "plant-1".to_owned())]));

fuzz_target!(|data: &[u8]| {
    let (rules, args) = match data.iter().position(|&b| b == 0) {
        Some(nul) => data.split_at(nul),
        None => (data, &[][..]),
    };
    let args = args.get(1..).unwrap_or_default();

    // One rule, as the admin API takes it: validation must not panic either way.
    if let Ok(rule) = serde_json::from_slice::<CommandRule>(rules) {
        let _ = rule.validate();
    }
    let policy = match serde_json::from_slice::<CommandPolicy>(rules) {
        Ok(policy) => policy,
        Err(_) => {
            let Ok(text) = std::str::from_utf8(rules) else {
                return;
            };
            match toml::from_str::<Doc>(text) {
                Ok(doc) => doc.rules,
                Err(_) => return,
            }
        }
    };

    let json = serde_json::to_vec(&policy).expect("a policy serializes to JSON");
    let again: CommandPolicy = serde_json::from_slice(&json).expect("its JSON parses back");
    assert_eq!(again, policy);
    let doc = Doc { rules: policy };
    // TOML has no integers above i64::MAX: serializing such a bound may fail, never panic.
    if let Ok(text) = toml::to_string(&doc) {
        let again: Doc = toml::from_str(&text).expect("its TOML parses back");
        assert_eq!(again, doc);
    }
    let policy = doc.rules;

    let Some(device_id) = DEVICE.as_ref() else {
        return;
    };
    let args: Map<String, Value> = serde_json::from_slice(args).unwrap_or_default();
    let principal = Principal {
        client_id: "control-service",
        scopes: &SCOPES,
    };
    let target = Target {
        device_id,
        model: Some("valve-v2"),
        attrs: &ATTRS,
    };
    let mut names = vec![
        "valve.open".to_owned(),
        "valve".to_owned(),
        "valve.".to_owned(),
    ];
    for rule in policy.rules() {
        for pattern in &rule.commands {
            let text = pattern.to_string();
            names.push(
                text.strip_suffix('*')
                    .map_or(text.clone(), |p| format!("{p}x")),
            );
        }
    }
    for name in &names {
        let decision = policy.evaluate(principal, target, CommandRequest { name, args: &args });
        let rule = match &decision {
            Decision::Allowed {
                rule, approvals, ..
            } => {
                assert!((1..=2).contains(approvals));
                Some(*rule)
            }
            Decision::Denied { rule, reason } => {
                let _ = (reason.as_str(), reason.to_string());
                *rule
            }
        };
        if let Some(rule) = rule {
            assert!(policy.rule(rule).is_some(), "{rule} is not in the policy");
            let _ = policy.check_approval(rule, "control-service", principal);
            let _ = policy.check_approval(rule, "someone-else", principal);
        }
    }
});
