//! What the operator types, turned into what the APIs take: `KEY=VALUE` pairs and a JSON
//! object merged into one object (a command's arguments, a device's settings), and path
//! segments percent-encoded.

use serde_json::{Map, Value};

use super::CommandError;

/// The `json_flag` object (if given), then each `pair_flag KEY=VALUE` added to it (and
/// winning), VALUE read as JSON if it parses (`5`, `2.5`, `true`, `"7"`), else taken as a
/// string. The flag names (`--arg`, `--args-json`) are for the error messages.
pub fn json_object(
    pairs: &[String],
    json: Option<&str>,
    pair_flag: &str,
    json_flag: &str,
) -> Result<Map<String, Value>, CommandError> {
    let mut all = match json {
        None => Map::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(CommandError::Usage(format!(
                    "{json_flag} must be a JSON object, e.g. '{{\"position\": 40}}'"
                )))
            }
        },
    };
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(CommandError::Usage(format!(
                "{pair_flag} takes KEY=VALUE, not '{pair}'"
            )));
        };
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value));
        all.insert(key.to_owned(), value);
    }
    Ok(all)
}

/// Percent-encodes a path segment (ids are restricted, but the user may type anything).
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(pairs: &[&str], json: Option<&str>) -> Result<Map<String, Value>, CommandError> {
        let pairs: Vec<String> = pairs.iter().map(|s| (*s).to_owned()).collect();
        json_object(&pairs, json, "--arg", "--args-json")
    }

    #[test]
    fn pair_values_are_json_when_they_parse_else_strings() {
        let all = object(
            &[
                "position=40",
                "ratio=2.5",
                "force=true",
                "mode=auto",
                "note=\"7\"",
                "empty=",
            ],
            Some(r#"{"position": 1, "keep": [1]}"#),
        )
        .unwrap();
        assert_eq!(
            Value::Object(all),
            json!({"position": 40, "ratio": 2.5, "force": true, "mode": "auto", "note": "7", "empty": "", "keep": [1]})
        );
        assert!(object(&["=1"], None).is_err());
        let e = object(&["novalue"], None).unwrap_err().to_string();
        assert_eq!(e, "--arg takes KEY=VALUE, not 'novalue'");
        let e = object(&[], Some("[1]")).unwrap_err().to_string();
        assert!(e.starts_with("--args-json must be a JSON object"), "{e}");
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(path_segment("thermo-1_a.b~"), "thermo-1_a.b~");
        assert_eq!(path_segment("a/b c?"), "a%2Fb%20c%3F");
    }
}
