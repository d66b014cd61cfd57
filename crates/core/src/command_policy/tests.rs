use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Number, Value};

use super::args::compare;
use super::*;

/// A policy in the configuration's shape, `[[rules]]` standing for `[[gateway.commands.rules]]`.
fn policy(toml_text: &str) -> CommandPolicy {
    try_policy(toml_text).unwrap()
}

fn try_policy(toml_text: &str) -> Result<CommandPolicy, String> {
    #[derive(Deserialize)]
    struct Doc {
        rules: CommandPolicy,
    }
    toml::from_str::<Doc>(toml_text)
        .map(|d| d.rules)
        .map_err(|e| e.to_string())
}

const PLANT: &str = r#"
[[rules]]
name = "valve-operators"
principals = { clients = ["control-service"], scopes = ["commands:valve"] }
commands = ["valve.*"]
devices = { models = ["valve-v2"], attributes = { site = "plant-1" } }
rate_per_minute = 10

[rules.args]
position = { min = 0, max = 100, integer = true, required = true }
mode = { one_of = ["auto", "manual"] }
note = { max_len = 8 }
force = { type = "bool" }
trim = { min = -0.5, max = 0.5 }

[[rules]]
name = "pump-stop"
principals = { clients = ["control-service", "shift-lead"] }
commands = ["pump.stop"]
devices = { ids = ["pump-1"] }
approvals = 2

[[rules]]
name = "diagnostics"
principals = { scopes = ["commands:diag"] }
commands = ["diag.ping"]
extra_args = true

[[rules]]
name = "setpoint-operators"
principals = { clients = ["control-service"] }
commands = ["thermostat.set"]
args = { celsius = { min = 15, max = 25, required = true } }

[[rules]]
name = "setpoint-maintenance"
principals = { clients = ["control-service"] }
commands = ["thermostat.set"]
devices = { attributes = { mode = "maintenance" } }
args = { celsius = { min = 5, max = 35, required = true } }
"#;

/// Two rules for the same command: the first that matches wins.
const ORDERED: &str = r#"
[[rules]]
name = "reset-with-approval"
principals = { scopes = ["commands:reset"] }
commands = ["controller.reset"]
approvals = 2

[[rules]]
name = "reset-alone"
principals = { clients = ["control-service"] }
commands = ["controller.reset", "controller.*"]
"#;

struct Case {
    what: &'static str,
    rules: &'static str,
    client: &'static str,
    scopes: &'static str,
    device: &'static str,
    model: Option<&'static str>,
    attrs: &'static [(&'static str, &'static str)],
    command: &'static str,
    args: Value,
    expect: Decision<'static>,
}

const VALVE_ATTRS: &[(&str, &str)] = &[("site", "plant-1")];

/// The usual request: control-service opens a valve-v2 on plant-1.
fn valve(what: &'static str, args: Value, expect: Decision<'static>) -> Case {
    Case {
        what,
        rules: PLANT,
        client: "control-service",
        scopes: "",
        device: "valve-7",
        model: Some("valve-v2"),
        attrs: VALVE_ATTRS,
        command: "valve.open",
        args,
        expect,
    }
}

fn allowed(rule: &'static str, approvals: u8, rate: Option<u32>) -> Decision<'static> {
    Decision::Allowed {
        rule,
        approvals,
        rate_per_minute: rate,
    }
}

const VALVE_OK: Decision<'static> = Decision::Allowed {
    rule: "valve-operators",
    approvals: 1,
    rate_per_minute: Some(10),
};

fn no_rule() -> Decision<'static> {
    Decision::Denied {
        rule: None,
        reason: DenyReason::NoRule,
    }
}

fn refused(rule: &'static str, name: &str, problem: ArgProblem) -> Decision<'static> {
    Decision::Denied {
        rule: Some(rule),
        reason: DenyReason::Argument {
            name: name.to_owned(),
            problem,
        },
    }
}

fn valve_refused(name: &str, problem: ArgProblem) -> Decision<'static> {
    refused("valve-operators", name, problem)
}

fn wrong_type(expected: ValueType) -> ArgProblem {
    ArgProblem::WrongType { expected }
}

fn cases() -> Vec<Case> {
    use ArgProblem::*;
    vec![
        // Principals.
        valve("allowed by client id", json!({"position": 50}), VALVE_OK),
        Case {
            client: "hmi-3",
            scopes: "read commands:valve",
            ..valve("allowed by scope", json!({"position": 50}), VALVE_OK)
        },
        Case {
            client: "billing",
            scopes: "read commands:other",
            ..valve(
                "denied for another client",
                json!({"position": 50}),
                no_rule(),
            )
        },
        Case {
            client: "control-service-2",
            ..valve(
                "client ids match exactly",
                json!({"position": 50}),
                no_rule(),
            )
        },
        // Command patterns.
        Case {
            command: "valve.calibrate.zero",
            ..valve(
                "prefix takes nested commands",
                json!({"position": 1}),
                VALVE_OK,
            )
        },
        Case {
            command: "valves.open",
            ..valve(
                "prefix is a dotted segment",
                json!({"position": 1}),
                no_rule(),
            )
        },
        Case {
            command: "valve",
            ..valve(
                "prefix alone is not below itself",
                json!({"position": 1}),
                no_rule(),
            )
        },
        Case {
            command: "valve.",
            ..valve(
                "empty segment is malformed",
                json!({"position": 1}),
                Decision::Denied {
                    rule: None,
                    reason: DenyReason::MalformedCommand,
                },
            )
        },
        Case {
            command: "valve.op\nen",
            ..valve(
                "control character is malformed",
                json!({"position": 1}),
                Decision::Denied {
                    rule: None,
                    reason: DenyReason::MalformedCommand,
                },
            )
        },
        // Devices.
        Case {
            device: "valve-8",
            ..valve(
                "ids not given: any device id",
                json!({"position": 5}),
                VALVE_OK,
            )
        },
        Case {
            model: Some("valve-v1"),
            ..valve("model mismatch", json!({"position": 5}), no_rule())
        },
        Case {
            model: None,
            ..valve(
                "no model when models are required",
                json!({"position": 5}),
                no_rule(),
            )
        },
        Case {
            attrs: &[("site", "plant-2")],
            ..valve("attribute mismatch", json!({"position": 5}), no_rule())
        },
        Case {
            attrs: &[],
            ..valve("attribute missing", json!({"position": 5}), no_rule())
        },
        Case {
            attrs: &[("site", "plant-1"), ("line", "3")],
            ..valve(
                "extra device attributes do not matter",
                json!({"position": 5}),
                VALVE_OK,
            )
        },
        Case {
            device: "pump-1",
            model: None,
            attrs: &[],
            command: "pump.stop",
            ..valve(
                "device by id, approvals reported",
                json!({}),
                allowed("pump-stop", 2, None),
            )
        },
        Case {
            device: "pump-2",
            model: None,
            attrs: &[],
            command: "pump.stop",
            ..valve("device id mismatch", json!({}), no_rule())
        },
        // Arguments.
        valve("at min", json!({"position": 0}), VALVE_OK),
        valve("at max", json!({"position": 100}), VALVE_OK),
        valve(
            "every argument valid",
            json!({"position": 7, "mode": "auto", "note": "ééééééé!", "force": true, "trim": -0.5}),
            VALVE_OK,
        ),
        valve(
            "below min",
            json!({"position": -1}),
            valve_refused("position", OutOfRange),
        ),
        valve(
            "above max",
            json!({"position": 101}),
            valve_refused("position", OutOfRange),
        ),
        valve(
            "far above max, beyond f64 precision",
            json!({"position": u64::MAX}),
            valve_refused("position", OutOfRange),
        ),
        valve(
            "float bound",
            json!({"position": 1, "trim": 0.51}),
            valve_refused("trim", OutOfRange),
        ),
        valve(
            "float bound, integer value",
            json!({"position": 1, "trim": 0}),
            VALVE_OK,
        ),
        valve(
            "non-integer when integer = true",
            json!({"position": 50.5}),
            valve_refused("position", wrong_type(ValueType::Integer)),
        ),
        valve(
            "integer = true wants an integer literal",
            json!({"position": 50.0}),
            valve_refused("position", wrong_type(ValueType::Integer)),
        ),
        valve(
            "number as a string",
            json!({"position": "50"}),
            valve_refused("position", wrong_type(ValueType::Integer)),
        ),
        valve(
            "not in set",
            json!({"position": 1, "mode": "turbo"}),
            valve_refused("mode", NotInSet),
        ),
        valve(
            "too long",
            json!({"position": 1, "note": "123456789"}),
            valve_refused("note", TooLong),
        ),
        valve(
            "string wrong type",
            json!({"position": 1, "mode": 1}),
            valve_refused("mode", wrong_type(ValueType::String)),
        ),
        valve(
            "bool wrong type",
            json!({"position": 1, "force": "yes"}),
            valve_refused("force", wrong_type(ValueType::Bool)),
        ),
        valve(
            "null is a wrong type, not an absence",
            json!({"position": null}),
            valve_refused("position", wrong_type(ValueType::Integer)),
        ),
        valve(
            "missing required",
            json!({"mode": "auto"}),
            valve_refused("position", Missing),
        ),
        valve(
            "unknown argument refused",
            json!({"position": 1, "speed": 3}),
            valve_refused("speed", NotAllowed),
        ),
        valve(
            "unknown argument name made safe to log",
            json!({"position": 1, "x\n<b>\"": 3}),
            valve_refused("x??b??", NotAllowed),
        ),
        Case {
            client: "ops",
            scopes: "commands:diag",
            command: "diag.ping",
            ..valve(
                "extra_args = true allows unknown, rate not set",
                json!({"anything": [1, 2], "else": {"a": null}}),
                allowed("diagnostics", 1, None),
            )
        },
        // Order of rules.
        Case {
            rules: ORDERED,
            scopes: "commands:reset",
            command: "controller.reset",
            ..valve(
                "first matching rule wins",
                json!({}),
                allowed("reset-with-approval", 2, None),
            )
        },
        Case {
            rules: ORDERED,
            command: "controller.reset",
            ..valve(
                "a later rule for another principal",
                json!({}),
                allowed("reset-alone", 1, None),
            )
        },
        Case {
            command: "thermostat.set",
            attrs: &[("mode", "maintenance")],
            ..valve(
                "second rule allows when the first refuses the arguments",
                json!({"celsius": 30}),
                allowed("setpoint-maintenance", 1, None),
            )
        },
        Case {
            command: "thermostat.set",
            attrs: &[("mode", "maintenance")],
            ..valve(
                "when every rule refuses, the first is named",
                json!({"celsius": 40}),
                refused("setpoint-operators", "celsius", OutOfRange),
            )
        },
        Case {
            command: "thermostat.set",
            attrs: &[("mode", "normal")],
            ..valve(
                "a rule for other devices does not help",
                json!({"celsius": 30}),
                refused("setpoint-operators", "celsius", OutOfRange),
            )
        },
        Case {
            rules: "rules = []",
            ..valve("an empty policy denies", json!({"position": 1}), no_rule())
        },
    ]
}

#[test]
fn command_policy_decides_every_case_of_the_table() {
    let mut failures = Vec::new();
    for case in cases() {
        let policy = policy(case.rules);
        let scopes = ScopeSet::parse(case.scopes).unwrap();
        let device_id = DeviceId::parse(case.device).unwrap();
        let attrs: BTreeMap<String, String> = case
            .attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let Value::Object(args) = &case.args else {
            panic!("{}: args must be an object", case.what)
        };
        let decision = policy.evaluate(
            Principal {
                client_id: case.client,
                scopes: &scopes,
            },
            Target {
                device_id: &device_id,
                model: case.model,
                attrs: &attrs,
            },
            CommandRequest {
                name: case.command,
                args,
            },
        );
        if decision != case.expect {
            failures.push(format!(
                "{}: got {decision:?}, want {:?}",
                case.what, case.expect
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn denial_messages_name_arguments_but_never_show_values() {
    let policy = policy(PLANT);
    let scopes = ScopeSet::default();
    let device = Device {
        device_id: DeviceId::parse("valve-7").unwrap(),
        model: Some("valve-v2".into()),
        attrs: [("site".to_owned(), "plant-1".to_owned())].into(),
        state: crate::device::DeviceState::Enrolled,
        enrollment_secret: None,
        created_at: 0,
        updated_at: 0,
    };
    let secret = "S3CRET-VALUE";
    for args in [
        json!({"position": 1, "mode": secret}),
        json!({"position": 1, "note": format!("{secret}-too-long")}),
        json!({"position": secret}),
        json!({"position": 1, "force": secret}),
        json!({"position": 1, "unlisted": secret}),
    ] {
        let Value::Object(args) = args else {
            unreachable!()
        };
        let decision = policy.evaluate(
            Principal {
                client_id: "control-service",
                scopes: &scopes,
            },
            Target::from(&device),
            CommandRequest {
                name: "valve.open",
                args: &args,
            },
        );
        let Decision::Denied { rule, reason } = decision else {
            panic!("{args:?} allowed")
        };
        assert_eq!(rule, Some("valve-operators"));
        let message = reason.to_string();
        assert!(!message.contains(secret), "{message}");
        assert!(
            reason.as_str().starts_with("argument_"),
            "{}",
            reason.as_str()
        );
        let DenyReason::Argument { name, .. } = &reason else {
            panic!("{reason:?}")
        };
        assert!(message.contains(&format!("'{name}'")), "{message}");
    }
}

#[test]
fn reasons_have_stable_audit_names() {
    let arg = |problem| DenyReason::Argument {
        name: "position".into(),
        problem,
    };
    for (reason, name) in [
        (DenyReason::NoRule, "no_rule"),
        (DenyReason::MalformedCommand, "malformed_command"),
        (arg(ArgProblem::Missing), "argument_missing"),
        (arg(ArgProblem::NotAllowed), "argument_not_allowed"),
        (arg(ArgProblem::OutOfRange), "argument_out_of_range"),
        (arg(ArgProblem::NotInSet), "argument_not_in_set"),
        (arg(ArgProblem::TooLong), "argument_too_long"),
        (arg(wrong_type(ValueType::Bool)), "argument_wrong_type"),
        (DenyReason::ApproverIsSender, "approver_is_sender"),
        (DenyReason::ApproverNotAllowed, "approver_not_allowed"),
        (DenyReason::RuleGone, "rule_gone"),
    ] {
        assert_eq!(reason.as_str(), name);
        assert!(!reason.to_string().is_empty());
        if let DenyReason::Argument { problem, .. } = reason {
            assert_eq!(format!("argument_{}", problem.as_str()), name);
        }
    }
    assert_eq!(
        arg(wrong_type(ValueType::Integer)).to_string(),
        "argument 'position' must be an integer"
    );
}

#[test]
fn a_second_approver_must_be_another_principal_of_the_rule() {
    let policy = policy(PLANT);
    let none = ScopeSet::default();
    let valve_scope = ScopeSet::parse("commands:valve").unwrap();
    let principal = |client_id, scopes| Principal { client_id, scopes };
    assert_eq!(
        policy.check_approval(
            "pump-stop",
            "control-service",
            principal("shift-lead", &none)
        ),
        Ok(())
    );
    assert_eq!(
        policy.check_approval(
            "pump-stop",
            "control-service",
            principal("control-service", &none)
        ),
        Err(DenyReason::ApproverIsSender)
    );
    assert_eq!(
        policy.check_approval("pump-stop", "control-service", principal("intern", &none)),
        Err(DenyReason::ApproverNotAllowed)
    );
    // A scope makes a principal of the rule as much as a listed client id.
    assert_eq!(
        policy.check_approval(
            "valve-operators",
            "control-service",
            principal("hmi-3", &valve_scope)
        ),
        Ok(())
    );
    assert_eq!(
        policy.check_approval(
            "retired-rule",
            "control-service",
            principal("shift-lead", &none)
        ),
        Err(DenyReason::RuleGone)
    );
}

/// A rule that is invalid for one reason: what, the TOML line that makes it so (replacing the
/// default line of the same key, or added), and what the error must say.
const INVALID_RULES: &str = r#"
empty name               | name = ""                                     | rule name
name with a space        | name = "a b"                                  | rule name
empty principals         | principals = {}                               | at least one client
empty principal lists    | principals = { clients = [], scopes = [] }    | at least one client
no commands              | commands = []                                 | at least one command
bare star                | commands = ["*"]                              | command pattern
star alone after a dot   | commands = [".*"]                             | command pattern
star without a dot       | commands = ["valve*"]                         | command pattern
star in the middle       | commands = ["a.*.b"]                          | command pattern
empty segment            | commands = ["a..b"]                           | command pattern
approvals 3              | approvals = 3                                 | approvals must be 1 or 2
approvals 0              | approvals = 0                                 | approvals must be 1 or 2
rate 0                   | rate_per_minute = 0                           | rate_per_minute
min above max            | args = { p = { min = 5, max = 4 } }           | min must not exceed max
float min above max      | args = { p = { min = 4.5, max = 4 } }         | min must not exceed max
empty one_of             | args = { p = { one_of = [] } }                | one_of must list
number and string bounds | args = { p = { min = 1, max_len = 4 } }       | for numbers, one_of
bool with a bound        | args = { p = { type = "bool", min = 1 } }     | a bool takes
string with min          | args = { p = { type = "string", min = 1 } }   | a string takes no min
no type                  | args = { p = { required = true } }            | say its type
unknown type             | args = { p = { type = "float" } }             | unknown variant
bad argument name        | args = { "a b" = { type = "bool" } }          | argument name
NaN bound                | args = { p = { max = nan } }                  | not a JSON number
misspelt key             | approval = 2                                  | unknown field
misspelt constraint      | args = { p = { maximum = 3 } }                | unknown field
misspelt selector        | devices = { model = ["m"] }                   | unknown field
bad client id            | principals = { clients = ["a b"] }            | client_id
bad scope                | principals = { scopes = ["a\"b"] }            | scope
bad device id            | devices = { ids = ["a:b"] }                   | device_id
empty model              | devices = { models = [""] }                   | models
bad attribute key        | devices = { attributes = { "a b" = "x" } }    | attributes
"#;

#[test]
fn invalid_rules_are_refused_with_the_reason() {
    let one_rule = |line: &str| {
        let mut text = String::from("[[rules]]\n");
        let defaults = [
            r#"name = "r""#,
            r#"principals = { clients = ["c"] }"#,
            r#"commands = ["a.b"]"#,
        ];
        for default in defaults {
            let key = default.split(" =").next().unwrap();
            if !line.starts_with(&format!("{key} =")) {
                text += default;
                text.push('\n');
            }
        }
        text + line + "\n"
    };
    assert!(try_policy(&one_rule("")).is_ok());
    let long_name = format!("name too long | name = \"{}\" | rule name", "n".repeat(65));
    let long_command = format!(
        "command too long | commands = [\"{}\"] | command pattern",
        "a".repeat(129)
    );
    let cases = INVALID_RULES.lines().filter(|l| !l.is_empty());
    for case in cases.chain([long_name.as_str(), long_command.as_str()]) {
        let [what, line, expect] = case.split(" | ").map(str::trim).collect::<Vec<_>>()[..] else {
            panic!("malformed case {case}")
        };
        let err = try_policy(&one_rule(line))
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(err.contains(expect), "{what}: {err}");
    }
    let twice = format!("{}{}", one_rule(""), one_rule(""));
    assert!(try_policy(&twice).unwrap_err().contains("used twice"));
}

#[test]
fn command_policy_new_validates_rules_built_in_code() {
    let mut rule = policy(PLANT).rules()[1].clone();
    assert!(CommandPolicy::new(vec![rule.clone()]).is_ok());
    rule.approvals = 3;
    let err = CommandPolicy::new(vec![rule]).unwrap_err().to_string();
    assert!(err.contains("approvals"), "{err}");
    let mut bad_bound = policy(PLANT).rules()[0].clone();
    bad_bound.args.insert(
        "p".into(),
        ArgConstraint {
            required: false,
            kind: ArgKind::Number {
                min: Some(Number::from(2)),
                max: Some(Number::from(1)),
                integer: false,
            },
        },
    );
    assert!(CommandPolicy::new(vec![bad_bound]).is_err());
    assert!(CommandPolicy::new(Vec::new()).is_ok());
}

#[test]
fn rules_round_trip_through_toml_and_json() {
    #[derive(serde::Serialize, Deserialize, PartialEq, Debug)]
    struct Doc {
        rules: CommandPolicy,
    }
    for text in [PLANT, ORDERED] {
        let doc = Doc {
            rules: policy(text),
        };
        let as_toml = toml::to_string(&doc).unwrap();
        assert_eq!(toml::from_str::<Doc>(&as_toml).unwrap(), doc, "{as_toml}");
        let as_json = serde_json::to_string(&doc.rules).unwrap();
        assert_eq!(
            serde_json::from_str::<CommandPolicy>(&as_json).unwrap(),
            doc.rules,
            "{as_json}"
        );
    }
    // The admin API's JSON for one rule, with defaults left out.
    let rule: CommandRule = serde_json::from_value(json!({
        "name": "r",
        "principals": {"scopes": ["s"]},
        "commands": ["a.*"],
        "args": {"level": {"min": 1, "max": 2.5}},
    }))
    .unwrap();
    assert_eq!(rule.approvals, 1);
    assert!(rule.devices.is_any());
    assert_eq!(
        serde_json::to_value(&rule).unwrap(),
        json!({
            "name": "r",
            "principals": {"scopes": ["s"]},
            "commands": ["a.*"],
            "args": {"level": {"type": "number", "min": 1, "max": 2.5}},
            "approvals": 1,
        })
    );
}

/// The TOML in the module documentation is what operators copy: it must parse as written.
#[test]
fn the_documented_configuration_parses() {
    let source = include_str!("mod.rs");
    let start = source.find("//! ```toml\n").unwrap() + "//! ```toml\n".len();
    let len = source[start..].find("//! ```\n").unwrap();
    let toml_text: String = source[start..start + len]
        .lines()
        .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start()))
        .collect();
    #[derive(Deserialize)]
    struct Config {
        gateway: Gateway,
    }
    #[derive(Deserialize)]
    struct Gateway {
        commands: Commands,
    }
    #[derive(Deserialize)]
    struct Commands {
        rules: CommandPolicy,
    }
    let config: Config = toml::from_str(&toml_text).unwrap();
    let rule = &config.gateway.commands.rules.rules()[0];
    assert_eq!(rule.name, "valve-operators");
    assert_eq!(rule.approvals, 2);
    assert_eq!(rule.rate_per_minute, Some(10));
    assert_eq!(rule.args.len(), 4);
    assert!(rule.args["position"].required);
}

#[test]
fn command_patterns_parse_and_print_back() {
    for text in ["valve.open", "valve.*", "a.b.*", "A-1_x.y"] {
        let pattern = CommandPattern::parse(text).unwrap();
        assert_eq!(pattern.to_string(), text);
        assert_eq!(String::from(pattern), text);
    }
    let below = CommandPattern::parse("valve.*").unwrap();
    assert!(below.matches("valve.open"));
    assert!(below.matches("valve.calibrate.zero"));
    assert!(!below.matches("valve"));
    assert!(!below.matches("valve."));
    assert!(!below.matches("valves.open"));
    assert!(!CommandPattern::parse("valve.open")
        .unwrap()
        .matches("valve.open.now"));
}

#[test]
fn numbers_compare_exactly_across_integers_and_floats() {
    let n = |v: Value| match v {
        Value::Number(n) => n,
        other => panic!("{other}"),
    };
    let big = n(json!(9_007_199_254_740_993_u64)); // 2^53 + 1: not an f64
    let big_float = n(json!(9_007_199_254_740_992.0_f64)); // 2^53
    for (a, b, want) in [
        (n(json!(1)), n(json!(2)), Ordering::Less),
        (n(json!(-1)), n(json!(u64::MAX)), Ordering::Less),
        (n(json!(u64::MAX)), n(json!(i64::MIN)), Ordering::Greater),
        (big.clone(), big_float.clone(), Ordering::Greater),
        (big_float, big, Ordering::Less),
        (n(json!(2)), n(json!(2.0)), Ordering::Equal),
        (n(json!(2)), n(json!(2.5)), Ordering::Less),
        (n(json!(-3)), n(json!(-2.5)), Ordering::Less),
        (n(json!(-2)), n(json!(-2.5)), Ordering::Greater),
        (n(json!(0.5)), n(json!(0.25)), Ordering::Greater),
        (n(json!(u64::MAX)), n(json!(1e300)), Ordering::Less),
        (n(json!(i64::MIN)), n(json!(-1e300)), Ordering::Greater),
    ] {
        assert_eq!(compare(&a, &b), Some(want), "{a} vs {b}");
    }
}
