//! Fuzzes the MQTT adapter's handling of a connection's bytes: protocol detection, both
//! packet codecs (rumqttc's mqttbytes v4 / v5 as the adapter drives them) and the topic
//! check of every PUBLISH, through `gateway::mqtt::parse_inbound_for_fuzzing`. None may
//! panic, loop or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    portcullis_gateway::mqtt::parse_inbound_for_fuzzing(bytes);
});
