//! Command policy evaluation cost per command (issue #13): a policy of N rules for N plant
//! zones, where every rule names the command but only the last one's scope is the sender's, so
//! each earlier rule is tried up to its principal check; the last one also checks two
//! arguments. N = 100 (a large plant) and N = 5.

// A benchmark: a failure aborts the measurement, so panicking shortcuts are fine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use portcullis_core::command_policy::{
    CommandPolicy, CommandRequest, CommandRule, Principal, Target,
};
use portcullis_core::device::DeviceId;
use portcullis_core::ScopeSet;
use serde_json::json;

fn zone_policy(zones: usize) -> CommandPolicy {
    let rules = (0..zones)
        .map(|zone| {
            serde_json::from_value::<CommandRule>(json!({
                "name": format!("zone-{zone}-operators"),
                "principals": {"scopes": [format!("commands:zone-{zone}")]},
                "commands": ["valve.open", "valve.close", "valve.calibrate.*"],
                "devices": {"models": ["valve-v2"], "attributes": {"zone": format!("zone-{zone}")}},
                "args": {
                    "position": {"min": 0, "max": 100, "integer": true, "required": true},
                    "mode": {"one_of": ["auto", "manual"]},
                },
                "rate_per_minute": 10,
            }))
            .unwrap()
        })
        .collect();
    CommandPolicy::new(rules).unwrap()
}

fn bench_command_policy(c: &mut Criterion) {
    for zones in [100, 5] {
        let policy = zone_policy(zones);
        let last = zones - 1;
        let scopes = ScopeSet::parse(&format!("telemetry:read commands:zone-{last}")).unwrap();
        let device_id = DeviceId::parse("valve-7").unwrap();
        let attrs = BTreeMap::from([("zone".to_owned(), format!("zone-{last}"))]);
        let args = json!({"position": 40, "mode": "manual"});
        let args = args.as_object().unwrap();
        let principal = Principal {
            client_id: "control-service",
            scopes: &scopes,
        };
        let target = Target {
            device_id: &device_id,
            model: Some("valve-v2"),
            attrs: &attrs,
        };
        let request = CommandRequest {
            name: "valve.open",
            args,
        };
        assert!(policy.evaluate(principal, target, request).is_allowed());
        c.bench_function(&format!("command_policy/{zones}_rules_match_last"), |b| {
            b.iter(|| policy.evaluate(black_box(principal), black_box(target), black_box(request)))
        });
    }
}

criterion_group!(benches, bench_command_policy);
criterion_main!(benches);
