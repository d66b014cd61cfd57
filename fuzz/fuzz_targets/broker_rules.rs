//! Fuzzes the RabbitMQ broker hook's decisions (`portcullis_gateway::broker_auth::rules`): the
//! broker forwards names a device chose (its MQTT topic as a routing key, its client id in a
//! queue name), so beyond "no panic" the target checks that nothing outside the device's own
//! names is ever allowed:
//! - a routing key allowed for writing is `devices.<id>.telemetry` or that plus `.<stream>`
//!   with a valid stream name; one allowed for reading is `devices.<id>.commands`;
//!   configuring a topic is never allowed;
//! - an exchange is allowed only as `amq.topic` and only to write or read; a queue only as the
//!   device's own subscription queue;
//! - a device id with a dot (ambiguous once `/` became `.`) is allowed nothing.
//!
//! Input: one byte for the permission and resource kind, then NUL-separated device id,
//! exchange or resource name, and routing key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::device::DeviceId;
use portcullis_gateway::broker_auth::rules::{
    resource_allowed, topic_allowed, Permission, ResourceKind, MQTT_EXCHANGE,
};
use portcullis_gateway::service::valid_stream;

fuzz_target!(|bytes: &[u8]| {
    let Some((&pick, rest)) = bytes.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.split('\0');
    let (Some(id), Some(name), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let Ok(device) = DeviceId::parse(id) else {
        return;
    };
    let permission =
        [Permission::Configure, Permission::Write, Permission::Read][usize::from(pick & 3) % 3];
    let kind = [
        ResourceKind::Exchange,
        ResourceKind::Queue,
        ResourceKind::Topic,
    ][usize::from(pick >> 2) % 3];
    let dotted = device.as_str().contains('.');

    if topic_allowed(&device, name, permission, key).is_ok() {
        assert!(!dotted);
        assert_eq!(name, MQTT_EXCHANGE);
        let own = format!("devices.{}.", device.as_str());
        let rest = key
            .strip_prefix(&own)
            .expect("another device's routing key allowed");
        match permission {
            Permission::Write => {
                let tail = rest.strip_prefix("telemetry").expect("not a telemetry key");
                assert!(tail.is_empty() || tail.strip_prefix('.').is_some_and(valid_stream));
            }
            Permission::Read => assert_eq!(rest, "commands"),
            Permission::Configure => panic!("configure allowed on a topic"),
        }
    }

    if resource_allowed(&device, kind, name, permission).is_ok() {
        assert!(!dotted);
        match kind {
            ResourceKind::Exchange => {
                assert_eq!(name, MQTT_EXCHANGE);
                assert!(matches!(permission, Permission::Write | Permission::Read));
            }
            ResourceKind::Queue => assert!(
                name == format!("mqtt-subscription-{}qos0", device.as_str())
                    || name == format!("mqtt-subscription-{}qos1", device.as_str()),
                "queue {name} is not the device's own"
            ),
            ResourceKind::Topic => panic!("a topic allowed on /resource"),
        }
    }
});
