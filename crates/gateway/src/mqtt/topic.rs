//! The topics a device may publish to: `devices/{own id}/telemetry` (the default stream),
//! `devices/{own id}/telemetry/{stream}`, `devices/{own id}/results` (results of commands)
//! `devices/{own id}/settings/applied` (the settings version applied) and
//! `devices/{own id}/updates/status` (what it did with a release). Anything else — another device's id, a
//! wildcard, an empty or over-long stream, a deeper level — is refused; the topic is the
//! adapter's only say in where a message goes, so it is matched exactly, byte by byte.

use crate::service::{valid_stream, Destination};
use crate::GatewayError;

const RESULTS: &[u8] = b"/results";
const APPLIED: &[u8] = b"/settings/applied";
const UPDATE_STATUS: &[u8] = b"/updates/status";

/// Where a PUBLISH to `topic` by `device` goes.
pub fn destination<'t>(topic: &'t [u8], device: &str) -> Result<Destination<'t>, GatewayError> {
    let own = topic
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix(device.as_bytes()));
    match own {
        Some(RESULTS) => return Ok(Destination::CommandResult),
        Some(APPLIED) => return Ok(Destination::SettingsApplied),
        Some(UPDATE_STATUS) => return Ok(Destination::UpdateReport),
        _ => {}
    }
    telemetry_stream(topic, device).map(Destination::Telemetry)
}

const PREFIX: &[u8] = b"devices/";
const TELEMETRY: &[u8] = b"/telemetry";

/// The stream a PUBLISH to `topic` by `device` goes to: `Ok(None)` for the default stream.
/// The topic arrives as bytes (MQTT 5 topics are not UTF-8-checked by the codec).
pub fn telemetry_stream<'t>(
    topic: &'t [u8],
    device: &str,
) -> Result<Option<&'t str>, GatewayError> {
    let refused = || GatewayError::Forbidden("topic_not_allowed");
    let rest = topic
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix(device.as_bytes()))
        .and_then(|rest| rest.strip_prefix(TELEMETRY))
        .ok_or_else(refused)?;
    if rest.is_empty() {
        return Ok(None);
    }
    match rest.strip_prefix(b"/") {
        Some(stream) => match std::str::from_utf8(stream) {
            Ok(stream) if valid_stream(stream) => Ok(Some(stream)),
            _ => Err(refused()),
        },
        None => Err(refused()),
    }
}

/// The longest topic a device can legitimately use (for the packet-size budget).
/// `devices/` + a device id (at most 128) + `/telemetry/` + a stream (at most 64).
pub const MAX_TOPIC_LEN: usize = 8 + 128 + 11 + 64;

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(topic: &str) -> Result<Option<&str>, GatewayError> {
        telemetry_stream(topic.as_bytes(), "sensor-1")
    }

    #[test]
    fn own_results_topic_takes_results_and_no_one_elses() {
        fn to(t: &str) -> Result<Destination<'_>, GatewayError> {
            destination(t.as_bytes(), "sensor-1")
        }
        assert_eq!(
            to("devices/sensor-1/results").unwrap(),
            Destination::CommandResult
        );
        assert_eq!(
            to("devices/sensor-1/telemetry").unwrap(),
            Destination::Telemetry(None)
        );
        for refused in [
            "devices/sensor-2/results",
            "devices/sensor-1/results/x",
            "devices/sensor-1/result",
            "devices/sensor-1/commands",
            "devices/sensor-1/settings",
            "devices/sensor-2/settings/applied",
        ] {
            assert!(to(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn own_default_topic_is_the_default_stream() {
        assert_eq!(stream("devices/sensor-1/telemetry").unwrap(), None);
    }

    #[test]
    fn own_topic_with_a_stream_names_it() {
        assert_eq!(
            stream("devices/sensor-1/telemetry/power_W-1").unwrap(),
            Some("power_W-1")
        );
        let longest = format!("devices/sensor-1/telemetry/{}", "s".repeat(64));
        assert_eq!(stream(&longest).unwrap().map(str::len), Some(64));
        assert!(longest.len() <= MAX_TOPIC_LEN);
    }

    #[test]
    fn hostile_topics_are_refused() {
        let too_long = format!("devices/sensor-1/telemetry/{}", "s".repeat(65));
        let huge = format!("devices/sensor-1/telemetry/{}", "a/".repeat(40_000));
        let hostile: &[&str] = &[
            "",
            "/",
            "devices",
            "devices/",
            "devices/sensor-1",
            "devices/sensor-1/",
            "devices/sensor-1/telemetry/", // empty stream (trailing slash)
            "devices/sensor-1/telemetry//x",
            "devices/sensor-1/telemetry/a/b", // deeper level
            "devices/sensor-1/telemetryx",
            "devices/sensor-1/telemetry/bad.name",
            "devices/sensor-1/telemetry/ümlaut",
            "devices/sensor-1/telemetry/a b",
            "devices/sensor-2/telemetry",  // another device
            "devices/sensor-10/telemetry", // a device whose id extends ours
            "devices/sensor-/telemetry",
            "devices/+/telemetry", // wildcards
            "devices/#",
            "devices/sensor-1/telemetry/#",
            "devices/sensor-1/telemetry/+",
            "devices/sensor-1/+",
            "#",
            "/devices/sensor-1/telemetry",
            "DEVICES/sensor-1/telemetry",
            "devices/SENSOR-1/telemetry",
            "devices/sensor-1/commands",
            "$SYS/broker",
            too_long.as_str(),
            huge.as_str(),
        ];
        for topic in hostile {
            assert!(
                matches!(stream(topic), Err(GatewayError::Forbidden(_))),
                "{topic:?} was not refused"
            );
        }
    }

    #[test]
    fn non_utf8_topic_is_refused() {
        assert!(telemetry_stream(b"devices/sensor-1/telemetry/\xff", "sensor-1").is_err());
        assert!(telemetry_stream(b"devices/sensor-1/telemetry\0", "sensor-1").is_err());
    }
}
