use super::*;

fn parse(text: &str) -> Result<DetectionConfig, String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        detection: DetectionConfig,
    }
    toml::from_str::<Doc>(text)
        .map(|d| d.detection)
        .map_err(|e| e.to_string())
}

fn invalid(kind: RuleKind, change: impl FnOnce(&mut RuleConfig)) -> String {
    let mut r = rule(kind);
    change(&mut r);
    r.validate().unwrap_err().to_string()
}

#[test]
fn the_default_has_every_rule_once_valid_and_without_actions() {
    let config = DetectionConfig::default();
    config.validate().unwrap();
    assert_eq!(config.rules.len(), RuleKind::ALL.len());
    for kind in RuleKind::ALL {
        let r = config.rule(kind).unwrap();
        assert!(r.enabled);
        assert_eq!(r.action, Action::None);
    }
    let auth = config.rule(RuleKind::AuthFailuresPerClient).unwrap();
    assert_eq!((auth.threshold, auth.window_secs), (20, 60));
}

#[test]
fn rule_names_are_stable_and_match_serde() {
    for kind in RuleKind::ALL {
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        assert_eq!(kind.to_string(), kind.as_str());
    }
    assert_eq!(
        RuleKind::AuthFailuresPerAddress.as_str(),
        "auth_failures_per_address"
    );
    assert_eq!(RuleKind::ClonedDevice.as_str(), "cloned_device");
}

#[test]
fn an_empty_section_is_the_default() {
    assert_eq!(parse("[detection]").unwrap(), DetectionConfig::default());
}

#[test]
fn what_the_operator_writes_is_merged_onto_the_defaults() {
    let config = parse(
        r#"
        [detection.rules.auth_failures_per_client]
        threshold = 50
        action = "disable"

        [detection.rules.auth_failures_per_address]
        action = { block = 900 }

        [detection.rules.cloned_device]
        action = "suspend"
        window_secs = 120

        [detection.rules.admin_off_network]
        enabled = false

        [detection.token_rate]
        factor = 8.0

        [detection.admin]
        hours = [22, 6]
        weekdays = ["mon", "fri"]
        networks = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]
        utc_offset_minutes = 60
        "#,
    )
    .unwrap();
    let client = config.rule(RuleKind::AuthFailuresPerClient).unwrap();
    assert_eq!(
        (client.threshold, client.window_secs, client.action),
        (50, 60, Action::DisableClient)
    );
    let address = config.rule(RuleKind::AuthFailuresPerAddress).unwrap();
    assert_eq!(address.action, Action::BlockAddress { secs: 900 });
    let cloned = config.rule(RuleKind::ClonedDevice).unwrap();
    assert_eq!(
        (cloned.window_secs, cloned.threshold, cloned.action),
        (120, 2, Action::SuspendDevice)
    );
    assert!(!config.rule(RuleKind::AdminOffNetwork).unwrap().enabled);
    assert!(config.active_rule(RuleKind::AdminOffNetwork).is_none());
    assert_eq!(config.token_rate.factor, 8.0);
    assert_eq!(config.token_rate.min_samples, 30);
    assert_eq!(config.admin.hours, Some((22, 6)));
    assert_eq!(
        config.admin.weekdays,
        Some(vec![Weekday::Mon, Weekday::Fri])
    );
    assert_eq!(config.admin.networks.len(), 3);
}

#[test]
fn actions_round_trip_in_their_spelling() {
    for (action, json) in [
        (Action::None, serde_json::json!("none")),
        (Action::SuspendDevice, serde_json::json!("suspend")),
        (Action::DisableClient, serde_json::json!("disable")),
        (
            Action::BlockAddress { secs: 60 },
            serde_json::json!({ "block": 60 }),
        ),
    ] {
        assert_eq!(serde_json::to_value(action).unwrap(), json);
        assert_eq!(serde_json::from_value::<Action>(json).unwrap(), action);
    }
    assert!(serde_json::from_value::<Action>(serde_json::json!("block")).is_err());
    assert!(serde_json::from_value::<Action>(serde_json::json!("suspend_device")).is_err());
}

#[test]
fn a_rule_config_deserializes_strictly() {
    let typo = serde_json::json!({
        "kind": "replay_typo", "enabled": true, "threshold": 1, "window_secs": 1, "cooldown_secs": 1, "action": "none"
    });
    assert!(serde_json::from_value::<RuleConfig>(typo).is_err());
    let ok = serde_json::json!({
        "kind": "message_replay", "enabled": true, "threshold": 1, "window_secs": 1, "cooldown_secs": 1, "action": "suspend"
    });
    assert_eq!(
        serde_json::from_value::<RuleConfig>(ok.clone())
            .unwrap()
            .action,
        Action::SuspendDevice
    );
    let mut extra = ok;
    extra["colour"] = serde_json::json!("red");
    assert!(serde_json::from_value::<RuleConfig>(extra).is_err());
}

#[test]
fn unknown_names_are_refused() {
    assert!(parse("[detection.rules.replay]\nthreshold = 2")
        .unwrap_err()
        .contains("unknown variant"));
    assert!(parse("[detection.rules.message_replay]\nthreshhold = 2")
        .unwrap_err()
        .contains("unknown field"));
    assert!(parse("[detection]\nenable = true")
        .unwrap_err()
        .contains("unknown field"));
    assert!(parse("[detection.admin]\nnetwork = []")
        .unwrap_err()
        .contains("unknown field"));
    assert!(parse("[detection.admin]\nweekdays = [\"monday\"]").is_err());
}

#[test]
fn nonsense_is_refused_with_the_rule_named() {
    let zero = invalid(RuleKind::AuthFailuresPerClient, |r| r.threshold = 0);
    assert_eq!(
        zero,
        "detection rule auth_failures_per_client: threshold must be at least 1"
    );
    assert!(invalid(RuleKind::MessageReplay, |r| r.window_secs = 0).contains("window_secs"));
    assert!(invalid(RuleKind::MessageReplay, |r| r.cooldown_secs = 0).contains("cooldown_secs"));
    assert!(invalid(RuleKind::MessageReplay, |r| r.window_secs =
        MAX_WINDOW_SECS + 1)
    .contains("window_secs"));
    assert!(invalid(RuleKind::ClonedDevice, |r| r.threshold = 1).contains("distinct sources"));
    let block0 = invalid(RuleKind::AuthFailuresPerAddress, |r| {
        r.action = Action::BlockAddress { secs: 0 }
    });
    assert!(block0.contains("block"), "{block0}");
}

#[test]
fn an_action_must_fit_the_rules_key() {
    let suspend = invalid(RuleKind::AuthFailuresPerAddress, |r| {
        r.action = Action::SuspendDevice
    });
    assert_eq!(
        suspend,
        "detection rule auth_failures_per_address: action \"suspend\" acts on a device, but this rule counts per address"
    );
    assert!(invalid(RuleKind::MessageReplay, |r| r.action =
        Action::DisableClient)
    .contains("per device"));
    assert!(invalid(RuleKind::AuthFailuresPerClient, |r| r.action =
        Action::BlockAddress { secs: 60 })
    .contains("per client"));
    for kind in RuleKind::ALL {
        let fitting = match kind.key_kind() {
            KeyKind::Client => Action::DisableClient,
            KeyKind::Address => Action::BlockAddress { secs: 60 },
            KeyKind::Device => Action::SuspendDevice,
        };
        RuleConfig {
            action: fitting,
            ..rule(kind)
        }
        .validate()
        .unwrap();
        RuleConfig {
            action: Action::None,
            ..rule(kind)
        }
        .validate()
        .unwrap();
    }
    let toml =
        parse("[detection.rules.enroll_failures_per_address]\naction = \"suspend\"").unwrap_err();
    assert!(toml.contains("acts on a device"), "{toml}");
}

#[test]
fn missing_or_duplicate_rules_and_bad_parameters_are_refused() {
    let mut config = DetectionConfig::default();
    config.rules.retain(|r| r.kind != RuleKind::ClonedDevice);
    assert_eq!(
        config.validate(),
        Err(DetectionConfigError::MissingRule(RuleKind::ClonedDevice))
    );
    let mut config = DetectionConfig::default();
    config.rules.push(rule(RuleKind::ClonedDevice));
    assert_eq!(
        config.validate(),
        Err(DetectionConfigError::DuplicateRule(RuleKind::ClonedDevice))
    );
    for bad in [
        "factor = 0.5",
        "factor = nan",
        "alpha = 0.0",
        "alpha = 1.5",
        "min_samples = 0",
    ] {
        let err = parse(&format!("[detection.token_rate]\n{bad}")).unwrap_err();
        assert!(err.contains("[detection.token_rate]"), "{bad}: {err}");
    }
    for bad in [
        "hours = [24, 6]",
        "hours = [7, 7]",
        "hours = [7, 25]",
        "hours = [7, 0]",
        "weekdays = []",
        "utc_offset_minutes = 900",
        "networks = [\"10.1.2.3/8\"]",
    ] {
        assert!(
            parse(&format!("[detection.admin]\n{bad}")).is_err(),
            "{bad}"
        );
    }
    let cidr = parse("[detection.admin]\nnetworks = [\"ten\"]").unwrap_err();
    assert!(cidr.contains("admin network \"ten\""), "{cidr}");
}
