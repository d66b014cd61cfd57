//! What a device may do on a RabbitMQ broker, as pure functions of the broker's question:
//! which exchange and queues it may touch (`/resource`) and which routing keys it may publish
//! to or bind (`/topic`). No I/O, so every rule has a plain unit test.
//!
//! RabbitMQ's MQTT plugin (3.10) publishes to the topic exchange `amq.topic` with the MQTT
//! topic's `/` turned into `.` as the routing key, and keeps one queue per client and QoS for
//! subscriptions, `mqtt-subscription-<client id>qos0` / `qos1`.

use portcullis_core::device::DeviceId;

use crate::service::valid_stream;

/// The exchange the MQTT plugin publishes to and binds subscriptions on (its default
/// `mqtt.exchange`).
pub const MQTT_EXCHANGE: &str = "amq.topic";

/// The permission RabbitMQ asks about (`permission`, its access-control guide's three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Configure,
    Write,
    Read,
}

impl Permission {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "configure" => Some(Self::Configure),
            "write" => Some(Self::Write),
            "read" => Some(Self::Read),
            _ => None,
        }
    }
}

/// The kind of resource RabbitMQ asks about (`resource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Exchange,
    Queue,
    Topic,
}

impl ResourceKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "exchange" => Some(Self::Exchange),
            "queue" => Some(Self::Queue),
            "topic" => Some(Self::Topic),
            _ => None,
        }
    }
}

/// Whether the device's routing keys are unambiguous. After `/` → `.`, a device id with a
/// dot could not be told from a longer topic: device `m` with stream `telemetry` and device
/// `m.telemetry` on its default stream would both publish `devices.m.telemetry.telemetry`.
/// Such devices are refused by the broker hook (they can use the gateway's own MQTT).
pub fn routable(device: &DeviceId) -> Result<(), &'static str> {
    if device.as_str().contains('.') {
        Err("broker_dotted_device_id")
    } else {
        Ok(())
    }
}

/// `/resource`: write (publish) and read (bind a subscription) on `amq.topic`, where `/topic`
/// then decides per routing key; any permission on the device's own subscription queues,
/// which exist only for a client id equal to the device id. Nothing else.
pub fn resource_allowed(
    device: &DeviceId,
    kind: ResourceKind,
    name: &str,
    permission: Permission,
) -> Result<(), &'static str> {
    routable(device)?;
    match kind {
        ResourceKind::Exchange
            if name == MQTT_EXCHANGE
                && matches!(permission, Permission::Write | Permission::Read) =>
        {
            Ok(())
        }
        ResourceKind::Exchange => Err("broker_exchange_not_allowed"),
        ResourceKind::Queue => {
            let own = name
                .strip_prefix("mqtt-subscription-")
                .and_then(|rest| {
                    rest.strip_suffix("qos0")
                        .or_else(|| rest.strip_suffix("qos1"))
                })
                .is_some_and(|client| client == device.as_str());
            if own {
                Ok(())
            } else {
                Err("broker_queue_not_own")
            }
        }
        // Topic permissions are asked on `/topic`, never here.
        ResourceKind::Topic => Err("broker_resource_kind"),
    }
}

/// `/topic`: write only to `devices.<id>.telemetry` and `devices.<id>.telemetry.<stream>`
/// (the MQTT topics `devices/<id>/telemetry[/<stream>]`), read only
/// `devices.<id>.commands`, both on `amq.topic`.
pub fn topic_allowed(
    device: &DeviceId,
    exchange: &str,
    permission: Permission,
    routing_key: &str,
) -> Result<(), &'static str> {
    routable(device)?;
    if exchange != MQTT_EXCHANGE {
        return Err("broker_exchange_not_allowed");
    }
    let rest = routing_key
        .strip_prefix("devices.")
        .and_then(|r| r.strip_prefix(device.as_str()))
        .and_then(|r| r.strip_prefix('.'))
        .ok_or("broker_topic_not_own")?;
    let allowed = match permission {
        Permission::Write => match rest.strip_prefix("telemetry") {
            Some("") => true,
            Some(tail) => tail.strip_prefix('.').is_some_and(valid_stream),
            None => false,
        },
        Permission::Read => rest == "commands",
        Permission::Configure => false,
    };
    if allowed {
        Ok(())
    } else {
        Err("broker_topic_not_own")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> DeviceId {
        DeviceId::parse(s).unwrap()
    }

    #[test]
    fn a_device_publishes_only_to_its_own_telemetry_keys() {
        let d = id("meter-1");
        let write = |key: &str| topic_allowed(&d, MQTT_EXCHANGE, Permission::Write, key);
        assert_eq!(write("devices.meter-1.telemetry"), Ok(()));
        assert_eq!(write("devices.meter-1.telemetry.power"), Ok(()));
        for refused in [
            "devices.meter-2.telemetry",
            "devices.meter-1",
            "devices.meter-1.",
            "devices.meter-1.telemetry.",
            "devices.meter-1.telemetry.a.b",
            "devices.meter-1.telemetryx",
            "devices.meter-1.commands",
            "devices.meter-10.telemetry",
            "devices.*.telemetry",
            "devices.#",
            "#",
            "devices.meter-1.telemetry.#",
            "devices.meter-1.telemetry.*",
            "",
        ] {
            assert!(write(refused).is_err(), "{refused}");
        }
        let long_stream = format!("devices.meter-1.telemetry.{}", "s".repeat(65));
        assert!(write(&long_stream).is_err());
    }

    #[test]
    fn a_device_reads_only_its_own_commands_on_the_mqtt_exchange() {
        let d = id("meter-1");
        assert_eq!(
            topic_allowed(
                &d,
                MQTT_EXCHANGE,
                Permission::Read,
                "devices.meter-1.commands"
            ),
            Ok(())
        );
        for (exchange, permission, key) in [
            (MQTT_EXCHANGE, Permission::Read, "devices.meter-1.telemetry"),
            (MQTT_EXCHANGE, Permission::Read, "devices.*.commands"),
            (MQTT_EXCHANGE, Permission::Read, "devices.meter-2.commands"),
            (
                MQTT_EXCHANGE,
                Permission::Configure,
                "devices.meter-1.telemetry",
            ),
            ("amq.direct", Permission::Write, "devices.meter-1.telemetry"),
            ("", Permission::Write, "devices.meter-1.telemetry"),
        ] {
            assert!(topic_allowed(&d, exchange, permission, key).is_err());
        }
    }

    #[test]
    fn dotted_device_ids_are_refused_everywhere() {
        let d = id("m.telemetry");
        assert_eq!(
            topic_allowed(
                &d,
                MQTT_EXCHANGE,
                Permission::Write,
                "devices.m.telemetry.telemetry"
            ),
            Err("broker_dotted_device_id")
        );
        assert!(
            resource_allowed(&d, ResourceKind::Exchange, MQTT_EXCHANGE, Permission::Write).is_err()
        );
        // The device `m` may still use the stream `telemetry`: it is its own key.
        let m = id("m");
        assert_eq!(
            topic_allowed(
                &m,
                MQTT_EXCHANGE,
                Permission::Write,
                "devices.m.telemetry.telemetry"
            ),
            Ok(())
        );
    }

    #[test]
    fn resources_are_the_mqtt_exchange_and_own_subscription_queues() {
        let d = id("meter-1");
        let allowed = |kind, name: &str, permission| resource_allowed(&d, kind, name, permission);
        assert_eq!(
            allowed(ResourceKind::Exchange, MQTT_EXCHANGE, Permission::Write),
            Ok(())
        );
        assert_eq!(
            allowed(ResourceKind::Exchange, MQTT_EXCHANGE, Permission::Read),
            Ok(())
        );
        for permission in [Permission::Configure, Permission::Write, Permission::Read] {
            assert_eq!(
                allowed(
                    ResourceKind::Queue,
                    "mqtt-subscription-meter-1qos0",
                    permission
                ),
                Ok(())
            );
            assert_eq!(
                allowed(
                    ResourceKind::Queue,
                    "mqtt-subscription-meter-1qos1",
                    permission
                ),
                Ok(())
            );
        }
        for (kind, name, permission) in [
            (ResourceKind::Exchange, MQTT_EXCHANGE, Permission::Configure),
            (ResourceKind::Exchange, "amq.direct", Permission::Write),
            (ResourceKind::Exchange, "", Permission::Write),
            (
                ResourceKind::Queue,
                "mqtt-subscription-meter-2qos0",
                Permission::Read,
            ),
            (
                ResourceKind::Queue,
                "mqtt-subscription-meter-1qos2",
                Permission::Read,
            ),
            (
                ResourceKind::Queue,
                "mqtt-subscription-qos0",
                Permission::Read,
            ),
            (ResourceKind::Queue, "meter-1", Permission::Read),
            (
                ResourceKind::Queue,
                "mqtt-subscription-meter-1qos0x",
                Permission::Read,
            ),
            (ResourceKind::Topic, MQTT_EXCHANGE, Permission::Write),
        ] {
            assert!(allowed(kind, name, permission).is_err(), "{kind:?} {name}");
        }
    }

    #[test]
    fn words_parse_exactly() {
        assert_eq!(Permission::parse("write"), Some(Permission::Write));
        assert_eq!(Permission::parse("WRITE"), None);
        assert_eq!(Permission::parse(""), None);
        assert_eq!(ResourceKind::parse("queue"), Some(ResourceKind::Queue));
        assert_eq!(ResourceKind::parse("vhost"), None);
    }
}
