//! Argument constraints: the type of each named argument and its bounds, and the check of a
//! request's JSON arguments against them.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use super::{ArgProblem, ValueType};
use crate::CoreError;

/// What one argument must be (`{ min = 0, max = 100 }`, `{ one_of = ["auto"] }`,
/// `{ type = "bool" }`), and whether it must be present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ArgSpec", into = "ArgSpec")]
pub struct ArgConstraint {
    pub required: bool,
    pub kind: ArgKind,
}

/// The type of an argument and the bounds of its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgKind {
    /// A JSON number within `min..=max`; with `integer`, written without fraction or exponent.
    Number {
        min: Option<Number>,
        max: Option<Number>,
        integer: bool,
    },
    /// A JSON string, one of `one_of` if that is not empty, of at most `max_len` characters.
    String {
        one_of: Vec<String>,
        max_len: Option<u32>,
    },
    /// A JSON boolean.
    Bool,
}

impl ArgConstraint {
    /// Checks the bounds: `min <= max`.
    pub fn validate(&self) -> Result<(), CoreError> {
        if let ArgKind::Number {
            min: Some(min),
            max: Some(max),
            ..
        } = &self.kind
        {
            if !matches!(compare(min, max), Some(Ordering::Less | Ordering::Equal)) {
                return Err(CoreError::invalid("argument", "min must not exceed max"));
            }
        }
        Ok(())
    }

    /// Whether `value` satisfies the constraint.
    fn check(&self, value: &Value) -> Result<(), ArgProblem> {
        match (&self.kind, value) {
            (ArgKind::Number { min, max, integer }, Value::Number(n)) => {
                if *integer && !(n.is_i64() || n.is_u64()) {
                    return Err(ArgProblem::WrongType {
                        expected: ValueType::Integer,
                    });
                }
                let at_least_min = min.as_ref().is_none_or(|min| {
                    matches!(compare(n, min), Some(Ordering::Greater | Ordering::Equal))
                });
                let at_most_max = max.as_ref().is_none_or(|max| {
                    matches!(compare(n, max), Some(Ordering::Less | Ordering::Equal))
                });
                if at_least_min && at_most_max {
                    Ok(())
                } else {
                    Err(ArgProblem::OutOfRange)
                }
            }
            (ArgKind::Number { integer, .. }, _) => Err(ArgProblem::WrongType {
                expected: if *integer {
                    ValueType::Integer
                } else {
                    ValueType::Number
                },
            }),
            (ArgKind::String { one_of, max_len }, Value::String(s)) => {
                if !one_of.is_empty() && !one_of.contains(s) {
                    return Err(ArgProblem::NotInSet);
                }
                match max_len {
                    Some(max) if s.chars().count() > *max as usize => Err(ArgProblem::TooLong),
                    _ => Ok(()),
                }
            }
            (ArgKind::String { .. }, _) => Err(ArgProblem::WrongType {
                expected: ValueType::String,
            }),
            (ArgKind::Bool, Value::Bool(_)) => Ok(()),
            (ArgKind::Bool, _) => Err(ArgProblem::WrongType {
                expected: ValueType::Bool,
            }),
        }
    }
}

/// The first argument of `args` that `constraints` refuse, and why: the listed arguments in
/// name order (present and valid, or absent and not required), then any unlisted one unless
/// `extra_args`.
pub(super) fn check_args<'a>(
    constraints: &'a BTreeMap<String, ArgConstraint>,
    extra_args: bool,
    args: &'a Map<String, Value>,
) -> Result<(), (&'a str, ArgProblem)> {
    for (name, constraint) in constraints {
        match args.get(name) {
            Some(value) => constraint.check(value).map_err(|p| (name.as_str(), p))?,
            None if constraint.required => return Err((name, ArgProblem::Missing)),
            None => {}
        }
    }
    if !extra_args {
        if let Some(unlisted) = args.keys().find(|k| !constraints.contains_key(*k)) {
            return Err((unlisted, ArgProblem::NotAllowed));
        }
    }
    Ok(())
}

/// Compares two JSON numbers exactly: integers as integers (an `f64` would round above 2^53),
/// an integer and a float by the float's integer part and fraction. `None` for NaN, which
/// serde_json never produces; a caller treats it as a refusal.
pub(super) fn compare(a: &Number, b: &Number) -> Option<Ordering> {
    match (integer_of(a), integer_of(b)) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        (Some(a), None) => compare_integer_float(a, b.as_f64()?),
        (None, Some(b)) => compare_integer_float(b, a.as_f64()?).map(Ordering::reverse),
        (None, None) => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn integer_of(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

fn compare_integer_float(i: i128, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    // ±2^127: beyond these every i128 compares the same way.
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    let whole = f.floor();
    if whole >= LIMIT {
        return Some(Ordering::Less);
    }
    if whole < -LIMIT {
        return Some(Ordering::Greater);
    }
    // `whole` is an integer within i128's range, so the cast is exact.
    match i.cmp(&(whole as i128)) {
        Ordering::Equal if f > whole => Some(Ordering::Less),
        other => Some(other),
    }
}

/// The serde form of a constraint: flat keys, the type optional when the keys imply it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArgSpec {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    kind: Option<ArgType>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    integer: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    one_of: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_len: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ArgType {
    Number,
    String,
    Bool,
}

impl TryFrom<ArgSpec> for ArgConstraint {
    type Error = CoreError;
    fn try_from(spec: ArgSpec) -> Result<Self, CoreError> {
        if spec.one_of.as_ref().is_some_and(Vec::is_empty) {
            return Err(CoreError::invalid(
                "argument",
                "one_of must list at least one value",
            ));
        }
        let numeric = spec.min.is_some() || spec.max.is_some() || spec.integer.is_some();
        let textual = spec.one_of.is_some() || spec.max_len.is_some();
        let invalid = |why: &'static str| Err(CoreError::invalid("argument", why));
        if numeric && textual {
            return invalid("min, max and integer are for numbers, one_of and max_len for strings");
        }
        let implied = match (numeric, textual) {
            (true, _) => Some(ArgType::Number),
            (_, true) => Some(ArgType::String),
            _ => None,
        };
        let kind = match spec.kind.or(implied) {
            None => return invalid("say its type: type = \"number\", \"string\" or \"bool\""),
            Some(ArgType::Number) if !textual => ArgKind::Number {
                min: spec.min,
                max: spec.max,
                integer: spec.integer.unwrap_or(false),
            },
            Some(ArgType::String) if !numeric => ArgKind::String {
                one_of: spec.one_of.unwrap_or_default(),
                max_len: spec.max_len,
            },
            Some(ArgType::Bool) if !numeric && !textual => ArgKind::Bool,
            Some(ArgType::Number) => return invalid("a number takes no one_of or max_len"),
            Some(ArgType::String) => return invalid("a string takes no min, max or integer"),
            Some(ArgType::Bool) => {
                return invalid("a bool takes no min, max, integer, one_of or max_len")
            }
        };
        let constraint = Self {
            required: spec.required,
            kind,
        };
        constraint.validate()?;
        Ok(constraint)
    }
}

impl From<ArgConstraint> for ArgSpec {
    fn from(c: ArgConstraint) -> Self {
        let mut spec = ArgSpec {
            kind: None,
            required: c.required,
            min: None,
            max: None,
            integer: None,
            one_of: None,
            max_len: None,
        };
        match c.kind {
            ArgKind::Number { min, max, integer } => {
                spec.kind = Some(ArgType::Number);
                spec.min = min;
                spec.max = max;
                spec.integer = integer.then_some(true);
            }
            ArgKind::String { one_of, max_len } => {
                spec.kind = Some(ArgType::String);
                spec.one_of = (!one_of.is_empty()).then_some(one_of);
                spec.max_len = max_len;
            }
            ArgKind::Bool => spec.kind = Some(ArgType::Bool),
        }
        spec
    }
}
