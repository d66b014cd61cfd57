use super::*;

fn client(id: &str) -> SignalKey {
    SignalKey::Client(id.into())
}

/// The defaults but the address rule: these cases repeat one client's failures from one
/// address, and count the client's.
fn client_failures_only() -> DetectionConfig {
    let mut config = DetectionConfig::default();
    for rule in &mut config.rules {
        if rule.kind == RuleKind::AuthFailuresPerAddress {
            rule.enabled = false;
        }
    }
    config
}

fn feed(tally: &mut LocalTally, config: &DetectionConfig, e: &AuditEvent, n: usize, at: UnixTime) {
    for _ in 0..n {
        tally.add_all(&signals(e, config), at, config);
    }
}

#[test]
fn fires_at_the_threshold_and_not_below() {
    let r = rule(RuleKind::AuthFailuresPerClient);
    assert_eq!(decide(&r, &client("svc"), 19, T0), None);
    let firing = decide(&r, &client("svc"), 20, T0).unwrap();
    assert_eq!(
        (
            firing.rule,
            &firing.key,
            firing.total,
            firing.threshold,
            firing.at
        ),
        (RuleKind::AuthFailuresPerClient, &client("svc"), 20, 20, T0)
    );
    assert!(decide(&r, &client("svc"), 500, T0).is_some());
    assert_eq!(
        decide(
            &RuleConfig {
                enabled: false,
                ..r
            },
            &client("svc"),
            500,
            T0
        ),
        None
    );
}

#[test]
fn two_nodes_sharing_counters_raise_one_alert_when_their_sum_crosses() {
    let config = client_failures_only();
    let e = token_refused(Some("svc"), "invalid_client", "203.0.113.9");
    let mut shared = Shared::default();
    let (mut a, mut b) = (LocalTally::new(), LocalTally::new());
    feed(&mut a, &config, &e, 10, T0);
    feed(&mut b, &config, &e, 9, T0 + 1);
    assert_eq!(shared.flush_and_decide(&mut a, &config, T0 + 1), []);
    assert_eq!(
        shared.flush_and_decide(&mut b, &config, T0 + 1),
        [],
        "19 < 20"
    );
    feed(&mut a, &config, &e, 1, T0 + 2);
    feed(&mut b, &config, &e, 1, T0 + 2);
    let alerts_a = shared.flush_and_decide(&mut a, &config, T0 + 2);
    let alerts_b = shared.flush_and_decide(&mut b, &config, T0 + 3);
    assert_eq!(alerts_a.len(), 1);
    assert_eq!(alerts_a[0].key, client("svc"));
    assert_eq!(
        alerts_b,
        [],
        "node b decided the same incident: no second alert"
    );
    // Still going a few seconds later: the same incident again, no alert.
    feed(&mut b, &config, &e, 5, T0 + 20);
    assert_eq!(shared.flush_and_decide(&mut b, &config, T0 + 20), []);
}

#[test]
fn old_events_roll_out_of_the_window() {
    let config = client_failures_only();
    let e = token_refused(Some("svc"), "invalid_client", "203.0.113.9");
    let mut shared = Shared::default();
    let mut tally = LocalTally::new();
    feed(&mut tally, &config, &e, 19, T0);
    assert_eq!(shared.flush_and_decide(&mut tally, &config, T0), []);
    feed(&mut tally, &config, &e, 1, T0 + 70);
    assert_eq!(
        shared.flush_and_decide(&mut tally, &config, T0 + 70),
        [],
        "the 19 are over 60 s old"
    );
    feed(&mut tally, &config, &e, 19, T0 + 80);
    assert_eq!(
        shared.flush_and_decide(&mut tally, &config, T0 + 80).len(),
        1,
        "1 + 19 within 60 s"
    );
}

#[test]
fn a_cloned_device_fires_on_distinct_sources_not_on_reconnects() {
    let config = DetectionConfig::default();
    let mut shared = Shared::default();
    let mut tally = LocalTally::new();
    // A flapping connection: many take-overs, one source.
    feed(
        &mut tally,
        &config,
        &session(true, "valve-7", "198.51.100.1"),
        5,
        T0,
    );
    assert_eq!(shared.flush_and_decide(&mut tally, &config, T0), []);
    // The clone: the other source takes over too.
    feed(
        &mut tally,
        &config,
        &session(true, "valve-7", "203.0.113.4"),
        1,
        T0 + 30,
    );
    let alerts = shared.flush_and_decide(&mut tally, &config, T0 + 30);
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].key,
        SignalKey::Device("valve-7".into()),
        "the device, not the source"
    );
    assert_eq!(alerts[0].total, 2);
    // Another device from the same sources is its own group.
    feed(
        &mut tally,
        &config,
        &session(true, "pump-1", "198.51.100.1"),
        1,
        T0 + 31,
    );
    assert_eq!(shared.flush_and_decide(&mut tally, &config, T0 + 31), []);
}

#[test]
fn incident_ids_agree_across_nodes_and_differ_per_rule_key_bucket_and_secret() {
    let r = rule(RuleKind::AuthFailuresPerClient); // cooldown 300
    let start = T0 - T0.rem_euclid(300);
    let node_a = decide(&r, &client("svc"), 20, start + 10).unwrap();
    let node_b = decide(&r, &client("svc"), 23, start + 299).unwrap();
    assert_eq!(node_a.incident_bucket(), node_b.incident_bucket());
    assert_eq!(
        node_a.incident_id_with(SECRET),
        node_b.incident_id_with(SECRET)
    );
    assert_eq!(node_a.incident_id(), node_b.incident_id());
    assert_eq!(
        node_a.incident_id(),
        format!("auth_failures_per_client/client svc/{}", start / 300)
    );
    let id = node_a.incident_id_with(SECRET);
    assert_eq!(id.len(), 64);
    assert!(!id.contains("svc"));
    let next_period = decide(&r, &client("svc"), 20, start + 300).unwrap();
    assert_ne!(next_period.incident_id_with(SECRET), id);
    assert_ne!(
        decide(&r, &client("svc2"), 20, start + 10)
            .unwrap()
            .incident_id_with(SECRET),
        id
    );
    let other_rule = decide(
        &rule(RuleKind::AssertionReplay),
        &client("svc"),
        20,
        start + 10,
    )
    .unwrap();
    assert_ne!(other_rule.incident_id_with(SECRET), id);
    assert_ne!(node_a.incident_id_with(b"another secret"), id);
}

#[test]
fn key_encodings_cannot_collide() {
    let a = SignalKey::DeviceSource {
        device: "ab".into(),
        source: ip("192.0.2.1"),
    };
    let b = SignalKey::Device("ab".into());
    assert_ne!(a.hashed(SECRET), b.hashed(SECRET));
    assert_ne!(
        SignalKey::Client("d".into()).hashed(SECRET),
        SignalKey::Device("d".into()).hashed(SECRET)
    );
    assert_eq!(
        SignalKey::address(ip("::ffff:192.0.2.1")).hashed(SECRET),
        SignalKey::Address(ip("192.0.2.1")).hashed(SECRET)
    );
    assert_eq!(b.hashed(SECRET), b.clone().hashed(SECRET));
}

#[test]
fn actions_name_what_they_act_on() {
    let with = |kind, action, key| {
        decide(
            &RuleConfig {
                action,
                ..rule(kind)
            },
            &key,
            1_000,
            T0,
        )
        .unwrap()
        .action_target()
    };
    assert_eq!(
        with(
            RuleKind::MessageReplay,
            Action::SuspendDevice,
            SignalKey::Device("valve-7".into())
        ),
        Some(ActionTarget::SuspendDevice("valve-7".into()))
    );
    assert_eq!(
        with(
            RuleKind::AuthFailuresPerClient,
            Action::DisableClient,
            client("svc")
        ),
        Some(ActionTarget::DisableClient("svc".into()))
    );
    assert_eq!(
        with(
            RuleKind::AuthFailuresPerAddress,
            Action::BlockAddress { secs: 900 },
            SignalKey::Address(ip("192.0.2.9"))
        ),
        Some(ActionTarget::BlockAddress {
            address: ip("192.0.2.9"),
            secs: 900
        })
    );
    assert_eq!(
        with(
            RuleKind::MessageReplay,
            Action::None,
            SignalKey::Device("d".into())
        ),
        None
    );
    // A hand-built misfit is inert rather than acting on the wrong thing.
    assert_eq!(
        with(
            RuleKind::AuthFailuresPerClient,
            Action::SuspendDevice,
            client("svc")
        ),
        None
    );
}

#[test]
fn a_firing_serializes_for_the_alert_record() {
    let f = decide(
        &rule(RuleKind::AuthFailuresPerAddress),
        &SignalKey::Address(ip("192.0.2.9")),
        50,
        T0,
    )
    .unwrap();
    let v = serde_json::to_value(&f).unwrap();
    assert_eq!(v["rule"], "auth_failures_per_address");
    assert_eq!(v["key"], serde_json::json!({ "address": "192.0.2.9" }));
    assert_eq!(v["action"], "none");
    assert_eq!(v["total"], 50);
}
