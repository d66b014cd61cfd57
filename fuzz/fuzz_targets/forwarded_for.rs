//! Fuzzes the reading of `X-Forwarded-For` behind trusted proxies (`portcullis_core::forwarded`),
//! which decides the address that per-address limits and the lock-out are keyed by. Anyone can
//! send the header, so beyond "no panic" the target checks the rule's security properties:
//! - a peer that is not a trusted proxy is the client, whatever the header says;
//! - otherwise the answer is the peer or an address written in the header, never invented;
//! - a CIDR that parses prints as text that parses back to the same network.
//!
//! Input: the first byte picks the peer, the rest is the header's fields, one per line.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use portcullis_core::forwarded::{IpCidr, TrustedProxies};

const PEERS: [&str; 6] = [
    "10.0.0.7",        // trusted (10.0.0.0/8)
    "::ffff:10.1.2.3", // trusted, IPv4-mapped
    "2001:db8::5",     // trusted (2001:db8::/32)
    "127.0.0.1",       // trusted (a single address)
    "192.0.2.44",      // not trusted
    "2001:db9::1",     // not trusted
];

fuzz_target!(|bytes: &[u8]| {
    let Some((&pick, rest)) = bytes.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);

    // Every line as a CIDR: parse, print, parse again.
    for line in text.lines() {
        if let Ok(cidr) = IpCidr::parse(line) {
            let printed = cidr.to_string();
            assert_eq!(IpCidr::parse(&printed).ok(), Some(cidr), "{printed}");
        }
    }

    let proxies =
        TrustedProxies::parse(["10.0.0.0/8", "2001:db8::/32", "127.0.0.1"]).expect("fixed list");
    let peer: IpAddr = PEERS[usize::from(pick) % PEERS.len()]
        .parse()
        .expect("fixed address");
    let fields: Vec<&str> = text.lines().collect();
    let client = proxies.client_address(peer, fields.iter().copied());

    if !proxies.is_trusted(peer.to_canonical()) {
        assert_eq!(client, peer.to_canonical());
        return;
    }
    if client != peer.to_canonical() {
        let written = fields.iter().flat_map(|f| f.split(',')).any(|entry| {
            let entry = entry.trim();
            entry
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.to_canonical() == client)
                || entry
                    .parse::<std::net::SocketAddr>()
                    .is_ok_and(|sa| sa.ip().to_canonical() == client)
                || entry
                    .strip_prefix('[')
                    .and_then(|e| e.strip_suffix(']'))
                    .and_then(|e| e.parse::<IpAddr>().ok())
                    .is_some_and(|ip| ip.to_canonical() == client)
        });
        assert!(written, "{client} is neither the peer nor in the header");
    }
});
