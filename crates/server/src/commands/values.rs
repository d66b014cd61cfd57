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

/// A point in time as an operator types it: `2026-01-31` (midnight UTC),
/// `2026-01-31T12:00:00Z`, or Unix seconds. Returns Unix seconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| format!("{s:?} is too large"));
    }
    let bad = || format!("{s:?} is not a date (2026-01-31, 2026-01-31T12:00:00Z or Unix seconds)");
    let (date, time) = match s.split_once('T') {
        Some((date, time)) => (date, Some(time.strip_suffix('Z').ok_or_else(bad)?)),
        None => (s, None),
    };
    let number = |part: Option<&str>| part.and_then(|p| p.parse::<i64>().ok()).ok_or_else(bad);
    let mut ymd = date.split('-');
    let (year, month, day) = (
        number(ymd.next())?,
        number(ymd.next())?,
        number(ymd.next())?,
    );
    if ymd.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let secs = match time {
        Some(time) => {
            let mut hms = time.split(':');
            let (h, m, sec) = (
                number(hms.next())?,
                number(hms.next())?,
                number(hms.next())?,
            );
            if hms.next().is_some() || h > 23 || m > 59 || sec > 60 {
                return Err(bad());
            }
            h * 3600 + m * 60 + sec
        }
        None => 0,
    };
    // Days since 1970-01-01 (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 + secs)
}

#[cfg(test)]
mod parse_time_tests {
    use super::parse_time;

    #[test]
    fn dates_times_and_unix_seconds_parse_and_nonsense_does_not() {
        assert_eq!(parse_time("1970-01-01"), Ok(0));
        assert_eq!(parse_time("2026-12-04"), Ok(1_796_342_400));
        assert_eq!(parse_time("2000-03-01T01:02:03Z"), Ok(951_872_523));
        assert_eq!(parse_time("1796342400"), Ok(1_796_342_400));
        for bad in [
            "",
            "2026-13-01",
            "2026-12-04T10:00:00",
            "tomorrow",
            "2026-12",
            "2026-12-04T25:00:00Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
