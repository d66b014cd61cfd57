//! `/commands/rules`: the command policy's rules (issue #13) — who may send which commands,
//! with which arguments, to which devices (`portcullis_core::command_policy` has the syntax).
//!
//! Two lists are in force, evaluated in this order: the rules of the node's configuration
//! (`[[gateway.commands.rules]]`, read-only here) and the rules set through this API, which
//! `PUT` replaces whole. Rule names are unique across both. The admin API does not hold the
//! policy: it calls the [`CommandRulesAdmin`] the server gives it, which validates, stores
//! and audits (`command.rules_changed`).

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::State;
use axum::Json;
use portcullis_core::command_policy::CommandRule;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::openapi::{ObjectBuilder, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::auth::AdminCaller;
use crate::errors::{AdminError, Problem};
use crate::extract::JsonBody;
use crate::openapi::{DEVICE_ID_PATTERN, ID_PATTERN, PRINTABLE_PATTERN};

/// The rules in force: the configuration's first, then the admin API's.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommandRulesView {
    /// From `[[gateway.commands.rules]]` of the node's configuration: read-only here,
    /// evaluated first.
    #[schema(value_type = Vec<CommandRuleSchema>)]
    pub config: Vec<CommandRule>,
    /// Set through `PUT /commands/rules`, evaluated after the configuration's.
    #[schema(value_type = Vec<CommandRuleSchema>)]
    pub admin: Vec<CommandRule>,
}

/// `PUT /commands/rules` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutCommandRulesRequest {
    /// The new admin rules, in evaluation order; `[]` removes them all. Names must be unique
    /// here and must not be names of the configuration's rules.
    #[schema(value_type = Vec<CommandRuleSchema>)]
    pub rules: Vec<Value>,
}

impl PutCommandRulesRequest {
    /// Reads each rule, naming the one that does not parse (the core's message says why).
    fn into_rules(self) -> Result<Vec<CommandRule>, AdminError> {
        self.rules
            .into_iter()
            .enumerate()
            .map(|(i, mut rule)| {
                integral_counts(&mut rule);
                let parsed = serde_json::from_value::<CommandRule>(rule.clone())
                    .map_err(|e| AdminError::BadRequest(format!("rules[{i}]: {e}")))?;
                // serde reads a `null` of an optional key as unset; the API does not take one.
                match null_in(&rule) {
                    Some(key) => Err(AdminError::BadRequest(format!(
                        "rules[{i}]: {key} is null: leave out what a rule does not set"
                    ))),
                    None => Ok(parsed),
                }
            })
            .collect()
    }
}

/// Where a rule holds a `null`, if it does (`args.position.min`; `the rule` for itself).
/// A rule has none: the configuration's TOML cannot write one, and the API takes rules in the
/// form it shows them, an unset key left out.
fn null_in(value: &Value) -> Option<String> {
    fn walk(value: &Value, path: &mut Vec<String>) -> bool {
        match value {
            Value::Null => true,
            Value::Object(map) => map.iter().any(|(key, v)| {
                path.push(key.clone());
                let found = walk(v, path);
                if !found {
                    path.pop();
                }
                found
            }),
            Value::Array(items) => items.iter().enumerate().any(|(i, v)| {
                path.push(i.to_string());
                let found = walk(v, path);
                if !found {
                    path.pop();
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = Vec::new();
    walk(value, &mut path).then(|| {
        if path.is_empty() {
            "the rule".to_owned()
        } else {
            path.join(".")
        }
    })
}

/// Writes the counts of a rule (`approvals`, `rate_per_minute`, each argument's `max_len`)
/// that arrive as integral floats (`2.0`) as integers: JSON has one number type, and JSON
/// Schema calls `2.0` an integer, but serde reads a count only from an integer.
fn integral_counts(rule: &mut Value) {
    fn integral(value: Option<&mut Value>) {
        let Some(value) = value else { return };
        let Some(f) = value.as_f64().filter(|_| value.is_f64()) else {
            return;
        };
        // Exact for every integral f64 in u32's range, the widest of the three counts.
        if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) {
            let n = f as u64;
            *value = Value::from(n);
        }
    }
    let Some(rule) = rule.as_object_mut() else {
        return;
    };
    integral(rule.get_mut("approvals"));
    integral(rule.get_mut("rate_per_minute"));
    if let Some(args) = rule.get_mut("args").and_then(Value::as_object_mut) {
        for constraint in args.values_mut() {
            integral(constraint.get_mut("max_len"));
        }
    }
}

/// What the admin API needs from whoever keeps the command policy.
#[async_trait]
pub trait CommandRulesAdmin: Send + Sync {
    /// The configuration's rules and the admin API's.
    async fn command_rules(&self) -> Result<CommandRulesView, AdminError>;
    /// Replaces the admin API's rules (validated together with the configuration's), audited
    /// with `actor`; answers the rules now in force. A rule that breaks a rule of syntax or
    /// reuses a name is [`AdminError::BadRequest`]; a concurrent change that won first is
    /// [`AdminError::Conflict`].
    async fn set_command_rules(
        &self,
        actor: &str,
        rules: Vec<CommandRule>,
    ) -> Result<CommandRulesView, AdminError>;
}

/// The shared handle the command-rule routes hold as state.
pub type SharedCommandRulesAdmin = Arc<dyn CommandRulesAdmin>;

#[utoipa::path(
    get, path = "/commands/rules", tag = "commands",
    responses((status = 200, description = "The rules in force: the configuration's (read-only, evaluated first) and the admin API's", body = CommandRulesView))
)]
pub async fn get_command_rules(
    State(rules): State<SharedCommandRulesAdmin>,
    _caller: AdminCaller,
) -> Result<Json<CommandRulesView>, AdminError> {
    Ok(Json(rules.command_rules().await?))
}

#[utoipa::path(
    put, path = "/commands/rules", tag = "commands",
    request_body = PutCommandRulesRequest,
    responses(
        (status = 200, description = "The rules now in force", body = CommandRulesView),
        (status = 400, description = "A rule breaks the rule syntax, or a name is used twice (here or by a configuration rule)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The rules changed meanwhile (another admin, another node): read them again and retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_command_rules(
    State(rules): State<SharedCommandRulesAdmin>,
    caller: AdminCaller,
    JsonBody(request): JsonBody<PutCommandRulesRequest>,
) -> Result<Json<CommandRulesView>, AdminError> {
    let actor = format!("admin:{}", caller.client_id);
    let new = request.into_rules()?;
    Ok(Json(rules.set_command_rules(&actor, new).await?))
}

/// The OpenAPI schema of one command rule (`CommandRule` in the document): the syntax of
/// `portcullis_core::command_policy`, stated as JSON Schema 2020-12 so that callers and
/// generators know exactly which rules the server takes. Two of its rules cannot be said in
/// JSON Schema: an argument's `min` must not exceed its `max`, and names are unique across
/// the list and the configuration's rules; the server answers 400 for either. A rule holds no
/// `null` (an unset key is left out, as in TOML).
pub struct CommandRuleSchema;

/// A rule, command-rule or argument name: `check_token` of the core, 64 characters.
const TOKEN_64: &str = "^[A-Za-z0-9_.-]{1,64}$";
/// A command name: non-empty dot-separated segments of `A-Z a-z 0-9 _ -`.
const COMMAND_NAME: &str = "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$";
/// Every command below a dotted prefix: `prefix.*`.
const COMMAND_PREFIX: &str = "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*\\.\\*$";

/// An argument constraint: a number, a string or a bool, its type said by `type` or implied
/// by its keys (which must all be of that one kind). Spelled as a union of closed objects, one
/// per way of saying the type, so that generators can also draw what it refuses.
fn arg_constraint_schema() -> Value {
    let closed = |properties: &Value, required: &str| {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": [required],
            "properties": properties,
        })
    };
    let with_type = |kind: &str, properties: &Value| {
        let mut properties = properties.clone();
        if let Some(map) = properties.as_object_mut() {
            map.insert("type".to_owned(), json!({ "const": kind }));
        }
        closed(&properties, "type")
    };
    let number = json!({
        "required": {"type": "boolean"},
        "min": {"type": "number"},
        "max": {"type": "number"},
        "integer": {"type": "boolean"},
    });
    let string = json!({
        "required": {"type": "boolean"},
        "one_of": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "max_len": {"type": "integer", "minimum": 0, "maximum": u32::MAX},
    });
    let boolean = json!({ "required": {"type": "boolean"} });
    json!({
        "description": "One argument: a number (min, max inclusive; integer), a string (one_of, max_len in characters) or a bool; its type = \"number\", \"string\" or \"bool\", or implied by its keys; required = true if it must be present. min must not exceed max.",
        "anyOf": [
            with_type("number", &number),
            with_type("string", &string),
            with_type("bool", &boolean),
            closed(&number, "min"),
            closed(&number, "max"),
            closed(&number, "integer"),
            closed(&string, "one_of"),
            closed(&string, "max_len"),
        ],
    })
}

/// The whole rule as JSON Schema keywords.
fn command_rule_schema() -> Value {
    let list_of = |item: Value| json!({"type": "array", "items": item});
    json!({
        "type": "object",
        "description": "A command rule (the syntax of [[gateway.commands.rules]]): principals (any listed client, or any holder of a listed scope) may send the commands (exact names or prefix.*) to the devices (every selector given must hold; none: every device) with arguments within args; approvals = 2 asks a second principal to approve.",
        "additionalProperties": false,
        "required": ["name", "principals", "commands"],
        "properties": {
            "name": {"type": "string", "pattern": TOKEN_64},
            "principals": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "clients": list_of(json!({"type": "string", "pattern": ID_PATTERN})),
                    "scopes": list_of(json!({"type": "string", "pattern": crate::openapi::SCOPE_PATTERN})),
                },
                "anyOf": [
                    {"required": ["clients"], "properties": {"clients": {"minItems": 1}}},
                    {"required": ["scopes"], "properties": {"scopes": {"minItems": 1}}},
                ],
            },
            "commands": {
                "type": "array",
                "minItems": 1,
                "items": {"anyOf": [
                    {"type": "string", "maxLength": 128, "pattern": COMMAND_NAME},
                    {"type": "string", "maxLength": 130, "pattern": COMMAND_PREFIX},
                ]},
            },
            "devices": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "ids": list_of(json!({"type": "string", "pattern": DEVICE_ID_PATTERN})),
                    "models": list_of(json!({
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 128,
                        "pattern": PRINTABLE_PATTERN,
                    })),
                    "attributes": {
                        "type": "object",
                        "propertyNames": {"pattern": TOKEN_64},
                        "additionalProperties": {
                            "type": "string",
                            "maxLength": 256,
                            "pattern": PRINTABLE_PATTERN,
                        },
                    },
                },
            },
            "args": {
                "type": "object",
                "propertyNames": {"pattern": TOKEN_64},
                "additionalProperties": arg_constraint_schema(),
            },
            "extra_args": {"type": "boolean"},
            "rate_per_minute": {"type": "integer", "minimum": 1, "maximum": u32::MAX},
            "approvals": {"type": "integer", "minimum": 1, "maximum": 2},
        },
    })
}

impl PartialSchema for CommandRuleSchema {
    fn schema() -> RefOr<Schema> {
        // utoipa has no builder for `anyOf` with `required` alone, `const` or type lists in
        // nested schemas: the keywords go in whole, as the document's other raw rules do.
        let mut object = ObjectBuilder::new().build();
        if let Value::Object(keywords) = command_rule_schema() {
            object
                .extensions
                .get_or_insert_with(Default::default)
                .extend(keywords);
        }
        RefOr::T(Schema::Object(object))
    }
}

impl ToSchema for CommandRuleSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("CommandRule")
    }
}

#[cfg(test)]
mod tests {
    //! The schema against the API's reading of a rule and the core's validation: what one
    //! takes the other takes.
    use super::*;

    /// Whether the API takes the rule alone: it reads, and the core validates it.
    fn accepted(rule: &Value) -> bool {
        let request = PutCommandRulesRequest {
            rules: vec![rule.clone()],
        };
        request
            .into_rules()
            .is_ok_and(|rules| rules.iter().all(|r| r.validate().is_ok()))
    }

    fn valid_by_schema(rule: &Value) -> bool {
        // A small evaluator of the keywords the schema uses, enough to hold the two in step.
        fn check(schema: &Value, v: &Value) -> bool {
            let Some(s) = schema.as_object() else {
                return true;
            };
            if let Some(t) = s.get("type") {
                let types: Vec<&str> = match t {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                let is = |t: &str| match t {
                    "object" => v.is_object(),
                    "array" => v.is_array(),
                    "string" => v.is_string(),
                    "boolean" => v.is_boolean(),
                    "null" => v.is_null(),
                    "number" => v.is_number(),
                    // JSON Schema's integers: `4.0` is one.
                    "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
                    _ => false,
                };
                if !types.into_iter().any(is) {
                    return false;
                }
            }
            if let Some(e) = s.get("enum").and_then(Value::as_array) {
                if !e.contains(v) {
                    return false;
                }
            }
            if let Some(c) = s.get("const") {
                if c != v {
                    return false;
                }
            }
            if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
                if !any.iter().any(|sub| check(sub, v)) {
                    return false;
                }
            }
            if let Some(text) = v.as_str() {
                let n = text.chars().count() as u64;
                if s.get("minLength")
                    .and_then(Value::as_u64)
                    .is_some_and(|m| n < m)
                    || s.get("maxLength")
                        .and_then(Value::as_u64)
                        .is_some_and(|m| n > m)
                {
                    return false;
                }
                if let Some(p) = s.get("pattern").and_then(Value::as_str) {
                    if !pattern_matches(p, text) {
                        return false;
                    }
                }
            }
            if let Some(n) = v.as_f64() {
                if s.get("minimum")
                    .and_then(Value::as_f64)
                    .is_some_and(|m| n < m)
                    || s.get("maximum")
                        .and_then(Value::as_f64)
                        .is_some_and(|m| n > m)
                {
                    return false;
                }
            }
            if let Some(items) = v.as_array() {
                if s.get("minItems")
                    .and_then(Value::as_u64)
                    .is_some_and(|m| (items.len() as u64) < m)
                {
                    return false;
                }
                if let Some(item) = s.get("items") {
                    if !items.iter().all(|i| check(item, i)) {
                        return false;
                    }
                }
            }
            if let Some(map) = v.as_object() {
                if let Some(required) = s.get("required").and_then(Value::as_array) {
                    if !required
                        .iter()
                        .filter_map(Value::as_str)
                        .all(|k| map.contains_key(k))
                    {
                        return false;
                    }
                }
                let properties = s.get("properties").and_then(Value::as_object);
                for (k, value) in map {
                    if let Some(names) = s.get("propertyNames") {
                        if !check(names, &Value::String(k.clone())) {
                            return false;
                        }
                    }
                    let sub = properties
                        .and_then(|p| p.get(k))
                        .or_else(|| s.get("additionalProperties"));
                    match sub {
                        Some(Value::Bool(false)) => return false,
                        Some(sub) if !check(sub, value) => return false,
                        _ => {}
                    }
                }
            }
            true
        }
        check(&command_rule_schema(), rule)
    }

    /// The handful of patterns the schema uses, matched by hand (the crate has no regex).
    fn pattern_matches(pattern: &str, s: &str) -> bool {
        let token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        let segment = |seg: &str| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        };
        match pattern {
            TOKEN_64 => (1..=64).contains(&s.len()) && s.chars().all(token),
            COMMAND_NAME => s.split('.').all(segment),
            COMMAND_PREFIX => s
                .strip_suffix(".*")
                .is_some_and(|p| p.split('.').all(segment)),
            crate::openapi::SCOPE_PATTERN => {
                (1..=256).contains(&s.len())
                    && s.chars()
                        .all(|c| matches!(c, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e'))
            }
            ID_PATTERN => {
                (1..=128).contains(&s.len())
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._:@-".contains(c))
            }
            DEVICE_ID_PATTERN => portcullis_core::device::DeviceId::parse(s).is_ok(),
            PRINTABLE_PATTERN => !s.chars().any(char::is_control),
            other => panic!("no matcher for {other}"),
        }
    }

    #[test]
    fn the_schema_takes_what_the_api_takes() {
        let base = || {
            json!({
                "name": "valve-operators",
                "principals": {"clients": ["control-service"]},
                "commands": ["valve.open", "valve.calibrate.*"],
            })
        };
        let with = |key: &str, value: Value| {
            let mut rule = base();
            rule[key] = value;
            rule
        };
        let arg = |constraint: Value| with("args", json!({ "position": constraint }));
        let cases = [
            base(),
            with("principals", json!({"scopes": ["commands:valve"]})),
            with("principals", json!({"clients": [], "scopes": ["s"]})),
            with("principals", json!({})),
            with("principals", json!({"clients": []})),
            with("principals", json!({"clients": ["a b"]})),
            with("principals", json!({"scopes": ["a\"b"]})),
            with("principals", json!({"clients": ["c"], "other": 1})),
            with("commands", json!([])),
            with("commands", json!(["*"])),
            with("commands", json!([".*"])),
            with("commands", json!(["a..b"])),
            with("commands", json!(["a.*"])),
            with("commands", json!(["a.b.*"])),
            with("commands", json!(["a.*.b"])),
            with("commands", json!(["a".repeat(128)])),
            with("commands", json!(["a".repeat(129)])),
            with("commands", json!([format!("{}.*", "a".repeat(128))])),
            with("commands", json!([format!("{}.*", "a".repeat(129))])),
            with("name", json!("")),
            with("name", json!("n".repeat(64))),
            with("name", json!("n".repeat(65))),
            with("name", json!("a b")),
            with("devices", json!({})),
            with("devices", json!({"ids": ["valve-7"], "models": ["v2"]})),
            with("devices", json!({"ids": ["-x"]})),
            with("devices", json!({"models": [""]})),
            with("devices", json!({"models": ["m\u{7}"]})),
            with("devices", json!({"attributes": {"site": ""}})),
            with("devices", json!({"attributes": {"si te": "x"}})),
            with("devices", json!({"attributes": {"site": "x".repeat(257)}})),
            with("devices", json!({"ids": null})),
            with("devices", Value::Null),
            with("approvals", json!(2)),
            with("approvals", json!(0)),
            with("approvals", json!(3)),
            with("approvals", Value::Null),
            with("rate_per_minute", json!(0)),
            with("rate_per_minute", json!(1)),
            with("rate_per_minute", Value::Null),
            with("rate_per_minute", json!(u64::from(u32::MAX) + 1)),
            with("extra_args", json!(true)),
            with("extra_args", Value::Null),
            with("args", json!({})),
            with("args", Value::Null),
            with("args", json!({"a b": {"type": "bool"}})),
            arg(json!({"min": 0, "max": 100, "integer": true, "required": true})),
            arg(json!({"type": "number"})),
            arg(json!({"integer": false})),
            arg(json!({"min": null})),
            arg(json!({"type": "number", "min": null, "one_of": null})),
            arg(json!({"one_of": ["auto", "manual"]})),
            arg(json!({"one_of": []})),
            arg(json!({"max_len": 64})),
            arg(json!({"max_len": -1})),
            arg(json!({"type": "string", "min": 1})),
            arg(json!({"type": "bool"})),
            arg(json!({"type": "bool", "max_len": 1})),
            arg(json!({"type": "bool", "max_len": null})),
            arg(json!({"type": "text"})),
            arg(json!({})),
            arg(json!({"required": true})),
            arg(json!({"required": null, "type": "bool"})),
            arg(json!({"min": 1, "max_len": 2})),
            arg(json!({"type": null, "max": 3})),
            arg(json!({"type": "number", "max": 3, "extra": 1})),
            arg(json!({"type": "number", "min": 1.5, "max": 2})),
            arg(json!({"type": "string", "one_of": ["a"], "max_len": 4})),
            arg(json!({"type": "string", "max_len": 4.0})),
            arg(json!({"type": "bool", "required": false})),
            arg(json!({"min": 1, "max": 2, "integer": true, "required": true})),
            arg(json!({"one_of": ["a"], "required": true})),
            arg(json!({"type": "bool", "one_of": ["a"]})),
            with("unknown", json!(1)),
        ];
        for rule in cases {
            assert_eq!(
                valid_by_schema(&rule),
                accepted(&rule),
                "schema and core disagree on {rule}"
            );
        }
        // The one rule the schema cannot state.
        let reversed = arg(json!({"min": 5, "max": 1}));
        assert!(valid_by_schema(&reversed) && !accepted(&reversed));
    }

    #[test]
    fn counts_written_as_integral_floats_are_counts() {
        let request = PutCommandRulesRequest {
            rules: vec![json!({
                "name": "r",
                "principals": {"clients": ["c"]},
                "commands": ["a"],
                "approvals": 2.0,
                "rate_per_minute": 60.0,
                "args": {"note": {"max_len": 16.0}, "level": {"min": 1.0, "max": 2.5}},
            })],
        };
        let rules = request.into_rules().unwrap();
        assert_eq!(rules[0].approvals, 2);
        assert_eq!(rules[0].rate_per_minute, Some(60));
        let round = serde_json::to_value(&rules[0]).unwrap();
        assert_eq!(round["args"]["note"]["max_len"], 16);
        // Bounds are numbers, kept as written.
        assert_eq!(round["args"]["level"]["min"], json!(1.0));
        for bad in [json!(1.5), json!(-1.0), json!(1e10)] {
            let request = PutCommandRulesRequest {
                rules: vec![json!({
                    "name": "r", "principals": {"clients": ["c"]}, "commands": ["a"],
                    "rate_per_minute": bad,
                })],
            };
            assert!(request.into_rules().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_document_names_the_rule_schema() {
        let RefOr::T(Schema::Object(object)) = CommandRuleSchema::schema() else {
            panic!("not an object schema");
        };
        let text = serde_json::to_value(&object).unwrap();
        assert_eq!(text["type"], "object");
        assert_eq!(text["required"], json!(["name", "principals", "commands"]));
        assert_eq!(CommandRuleSchema::name(), "CommandRule");
    }
}
