use serde_json::json;

use super::*;

fn sig(rule: RuleKind, key: SignalKey) -> Signal {
    Signal::new(rule, key)
}

fn client(id: &str) -> SignalKey {
    SignalKey::Client(id.into())
}

fn device(id: &str) -> SignalKey {
    SignalKey::Device(id.into())
}

fn of(e: &AuditEvent) -> Vec<Signal> {
    signals(e, &DetectionConfig::default())
}

#[test]
fn failed_client_authentication_counts_per_claimed_client_and_per_address() {
    let e = token_refused(Some("svc"), "invalid_client", "203.0.113.9");
    assert_eq!(
        of(&e),
        [
            sig(
                RuleKind::AuthFailuresPerAddress,
                SignalKey::Address(ip("203.0.113.9"))
            ),
            sig(RuleKind::AuthFailuresPerClient, client("svc")),
        ]
    );
}

#[test]
fn failed_authentication_without_a_claimed_client_counts_per_address_only() {
    let e = token_refused(None, "invalid_client", "2001:db8::1");
    assert_eq!(
        of(&e),
        [sig(
            RuleKind::AuthFailuresPerAddress,
            SignalKey::Address(ip("2001:db8::1"))
        )]
    );
}

#[test]
fn ipv4_mapped_sources_count_as_their_ipv4_address() {
    let e = token_refused(None, "invalid_client", "::ffff:198.51.100.7");
    assert_eq!(of(&e)[0].key, SignalKey::Address(ip("198.51.100.7")));
}

#[test]
fn token_refusals_that_are_not_authentication_failures_count_for_nothing() {
    for error in [
        "invalid_request",
        "invalid_scope",
        "invalid_grant",
        "unsupported_grant_type",
        "temporarily_unavailable",
    ] {
        assert_eq!(
            of(&token_refused(Some("svc"), error, "203.0.113.9")),
            [],
            "{error}"
        );
    }
}

#[test]
fn replayed_assertion_and_disabled_client_count_when_the_refusal_says_why() {
    let mut e = token_refused(Some("svc"), "invalid_client", "203.0.113.9");
    e.detail["reason"] = json!("replay");
    assert!(of(&e).contains(&sig(RuleKind::AssertionReplay, client("svc"))));
    e.detail["reason"] = json!("disabled");
    let got = of(&e);
    assert!(got.contains(&sig(RuleKind::DisabledClientUse, client("svc"))));
    assert!(!got.iter().any(|s| s.rule == RuleKind::AssertionReplay));
    // Still failed authentication.
    assert!(got.contains(&sig(RuleKind::AuthFailuresPerClient, client("svc"))));
}

#[test]
fn a_replayed_dpop_proof_or_outside_token_counts_as_a_replay_and_not_as_failed_authentication() {
    for error in ["invalid_dpop_proof", "invalid_grant"] {
        let mut e = token_refused(Some("svc"), error, "203.0.113.9");
        e.detail["reason"] = json!("replay");
        assert_eq!(
            of(&e),
            [sig(RuleKind::AssertionReplay, client("svc"))],
            "{error}"
        );
    }
}

#[test]
fn a_dpop_proof_replayed_to_a_resource_endpoint_counts_as_a_replay_of_the_tokens_client() {
    let mut e = AuditEvent {
        at: 1,
        actor: "anonymous".into(),
        action: AuditAction::TokenUseRefused.into(),
        subject: "jti-1".into(),
        outcome: Outcome::Failure.into(),
        detail: json!({"client_id": "svc", "reason": "replay", "source": "203.0.113.9"}),
    };
    assert_eq!(of(&e), [sig(RuleKind::AssertionReplay, client("svc"))]);
    // A bound token without its proof or certificate is recorded, not a replay.
    for reason in [
        "dpop_proof_missing",
        "certificate_mismatch",
        "dpop_proof_invalid",
    ] {
        e.detail["reason"] = json!(reason);
        assert_eq!(of(&e), [], "{reason}");
    }
}

#[test]
fn issued_tokens_count_toward_the_actors_rate() {
    assert_eq!(
        of(&token_issued("svc")),
        [sig(RuleKind::TokenRateAnomaly, client("svc"))]
    );
}

#[test]
fn refused_enrollments_count_per_address() {
    for action in [
        AuditAction::DeviceEnrollRefused,
        AuditAction::DeviceReenrollRefused,
    ] {
        for error in [
            "device authentication failed",
            "malformed Basic credentials",
            "client certificate refused: revoked",
            "client certificate refused: not issued by a trusted CA",
        ] {
            let e = est_refused(action, error, "192.0.2.5");
            assert_eq!(
                of(&e),
                [sig(
                    RuleKind::EnrollFailuresPerAddress,
                    SignalKey::Address(ip("192.0.2.5"))
                )],
                "{action} {error}"
            );
        }
    }
}

#[test]
fn enrollment_failures_count_per_device_once_the_refusal_names_the_claimed_device() {
    let mut e = est_refused(
        AuditAction::DeviceEnrollRefused,
        "device authentication failed",
        "192.0.2.5",
    );
    e.detail[CLAIMED_DEVICE_ID] = json!("valve-7");
    assert!(of(&e).contains(&sig(RuleKind::EnrollFailuresPerDevice, device("valve-7"))));
    e.detail[CLAIMED_DEVICE_ID] = json!("not a device id");
    assert!(!of(&e)
        .iter()
        .any(|s| s.rule == RuleKind::EnrollFailuresPerDevice));
}

#[test]
fn server_side_enrollment_failures_count_for_nothing() {
    for error in [
        "store: connection refused",
        "key: sealed",
        "CA: missing",
        "certificate encoding: x",
        "the audit log cannot store records now",
    ] {
        let e = est_refused(AuditAction::DeviceEnrollRefused, error, "192.0.2.5");
        assert_eq!(of(&e), [], "{error}");
    }
}

#[test]
fn an_inactive_device_enrolling_counts_as_inactive_device_use_not_as_guessing() {
    for state in ["suspended", "revoked", "decommissioned"] {
        let error = format!("device valve-7 is {state} and may not enroll");
        let e = est_refused(AuditAction::DeviceReenrollRefused, &error, "192.0.2.5");
        assert_eq!(
            of(&e),
            [sig(RuleKind::InactiveDeviceUse, device("valve-7"))],
            "{state}"
        );
    }
    let e = est_refused(
        AuditAction::DeviceReenrollRefused,
        "device valve-7 has not enrolled yet; use simpleenroll",
        "192.0.2.5",
    );
    assert_eq!(of(&e)[0].rule, RuleKind::EnrollFailuresPerAddress);
}

#[test]
fn gateway_refusals_of_inactive_devices_count_per_device() {
    for reason in ["device_inactive", "certificate_revoked"] {
        let e = gateway_refusal(
            AuditAction::GatewayRefused,
            Some("valve-7"),
            reason,
            "198.51.100.1",
        );
        assert_eq!(
            of(&e),
            [sig(RuleKind::InactiveDeviceUse, device("valve-7"))]
        );
    }
    // Without a device (a certificate connection refused before the device is known).
    let e = gateway_refusal(
        AuditAction::GatewayRefused,
        None,
        "device_inactive",
        "198.51.100.1",
    );
    assert_eq!(of(&e), []);
    for reason in [
        "bad_signature",
        "unknown_device",
        "certificate_refused",
        "topic_not_allowed",
        "no_such_command",
    ] {
        let e = gateway_refusal(
            AuditAction::GatewayRefused,
            Some("valve-7"),
            reason,
            "198.51.100.1",
        );
        assert_eq!(of(&e), [], "{reason}");
    }
}

#[test]
fn replayed_device_messages_count_per_device() {
    for reason in ["counter_not_increasing", "stale_timestamp"] {
        let e = gateway_refusal(
            AuditAction::GatewayReplay,
            Some("valve-7"),
            reason,
            "198.51.100.1",
        );
        assert_eq!(
            of(&e),
            [sig(RuleKind::MessageReplay, device("valve-7"))],
            "{reason}"
        );
        let unknown = gateway_refusal(AuditAction::GatewayReplay, None, reason, "198.51.100.1");
        assert_eq!(of(&unknown), [], "{reason} without a device");
    }
}

#[test]
fn a_result_for_no_waiting_command_counts_as_a_replay_and_a_recorded_one_does_not() {
    assert_eq!(
        of(&command_result("valve-7", false)),
        [sig(RuleKind::MessageReplay, device("valve-7"))]
    );
    assert_eq!(of(&command_result("valve-7", true)), []);
}

#[test]
fn takeovers_count_the_device_with_its_source_and_plain_connections_do_not() {
    let key = SignalKey::DeviceSource {
        device: "valve-7".into(),
        source: ip("198.51.100.1"),
    };
    assert_eq!(
        of(&session(true, "valve-7", "198.51.100.1")),
        [sig(RuleKind::ClonedDevice, key)]
    );
    assert_eq!(of(&session(false, "valve-7", "198.51.100.1")), []);
}

#[test]
fn summaries_count_for_nothing() {
    let first = token_refused(Some("svc"), "invalid_client", "203.0.113.9");
    let mut summary = first.clone();
    summary.detail = json!({
        "summary": { "source": "203.0.113.9", "more_refusals": 41, "first_at": T0, "last_at": T0 + 50, "window_secs": 60 },
        "first": first.detail,
    });
    assert_eq!(of(&summary), []);
}

#[test]
fn disabled_rules_and_disabled_detection_yield_nothing() {
    let e = token_refused(Some("svc"), "invalid_client", "203.0.113.9");
    let mut config = DetectionConfig::default();
    config
        .rules
        .iter_mut()
        .filter(|r| r.kind == RuleKind::AuthFailuresPerClient)
        .for_each(|r| r.enabled = false);
    assert_eq!(signals(&e, &config).len(), 1);
    config.enabled = false;
    assert_eq!(signals(&e, &config), []);
}

#[test]
fn admin_actions_count_only_when_they_break_the_policy() {
    let mut config = DetectionConfig::default();
    let e = admin_change("ops", T0); // 22:14 UTC on a Tuesday
    assert_eq!(signals(&e, &config), [], "no policy, no violation");
    config.admin.hours = Some((7, 19));
    assert_eq!(
        signals(&e, &config),
        [sig(RuleKind::AdminOffHours, client("ops"))]
    );
    config.admin.networks = vec![crate::forwarded::IpCidr::parse("10.0.0.0/8").unwrap()];
    let mut from = e.clone();
    from.detail["source"] = json!("192.0.2.1");
    assert_eq!(
        signals(&from, &config),
        [
            sig(RuleKind::AdminOffHours, client("ops")),
            sig(RuleKind::AdminOffNetwork, client("ops"))
        ]
    );
}

#[test]
fn unrelated_events_count_for_nothing() {
    let e = event(AuditAction::ClientCreated, "system", "svc", true, json!({}));
    assert_eq!(of(&e), []);
    assert_eq!(of(&session(true, "valve-7", "not an address")), []);
}
