//! Which address a request came from when it passed through reverse proxies.
//!
//! Per-address limits and the authentication-failure lock-out are keyed by the client's
//! address. Behind a load balancer the TCP peer is the proxy, so the real client has to be
//! read from `X-Forwarded-For` — but only when the peer is a proxy we trust, since anyone can
//! send that header. The rule (the one nginx's `real_ip_recursive on` applies):
//!
//! 1. The peer is not in `[server] trusted_proxies` (or the list is empty, the default): the
//!    peer is the client, and `X-Forwarded-For` is ignored.
//! 2. Otherwise walk the `X-Forwarded-For` list **from the right** (each proxy appends the
//!    address it received the request from): skip addresses that are themselves trusted
//!    proxies; the first one that is not is the client.
//! 3. A malformed entry ends the walk: nobody vouches for it or for anything to its left, so
//!    the address of the trusted hop that handed it over is used instead. Likewise when the
//!    list is missing or empty (the peer), or holds only trusted proxies (the left-most).
//!
//! The left-most entries are whatever the client chose to send; they are reached only by
//! passing trusted proxies, so a client cannot pick its own address by sending a forged
//! header through a proxy that appends the real one.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::CoreError;

/// An IP network in CIDR notation: `10.0.0.0/8`, `2001:db8::/32`, or a single address
/// (`127.0.0.1` = `127.0.0.1/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpCidr {
    network: IpAddr,
    prefix: u8,
}

impl IpCidr {
    /// Parses `ADDRESS[/PREFIX]`. Host bits below the prefix must be zero (`10.1.2.3/8` is
    /// refused rather than silently widened or narrowed: the writer meant something else).
    pub fn parse(s: &str) -> Result<IpCidr, CoreError> {
        let invalid = |why: &str| {
            CoreError::invalid(
                "trusted proxy",
                format!("{s:?} {why} (write it like 10.0.0.0/8, 2001:db8::/32 or 127.0.0.1)"),
            )
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| invalid("is not an IP address or CIDR"))?;
        let bits = max_prefix(network);
        let prefix = match prefix {
            None => bits,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= bits && !p.starts_with('+') => n,
                _ => return Err(invalid(&format!("has a prefix length outside 0-{bits}"))),
            },
        };
        let cidr = IpCidr { network, prefix };
        if cidr.masked(network) != network {
            return Err(invalid("has bits set beyond its prefix length"));
        }
        Ok(cidr)
    }

    /// Whether `ip` is inside the network. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`,
    /// as a dual-stack socket reports IPv4 peers) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && self.masked(ip) == self.network
    }

    /// `ip` with every bit beyond the prefix cleared (`ip` of the same family).
    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

impl FromStr for IpCidr {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IpCidr::parse(s)
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` is believed. Empty (the default) trusts nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpCidr>);

impl TrustedProxies {
    /// Parses every CIDR; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(
        cidrs: impl IntoIterator<Item = S>,
    ) -> Result<TrustedProxies, CoreError> {
        cidrs
            .into_iter()
            .map(|c| IpCidr::parse(c.as_ref().trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// True when no proxy is trusted: forwarding headers are never read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client's address for a request from TCP peer `peer` carrying the
    /// `X-Forwarded-For` header values `forwarded_for` (every field of that name, in the
    /// order received; each a comma-separated list). See the module documentation for the
    /// rule. The result is canonical (IPv4-mapped IPv6 addresses become IPv4).
    pub fn client_address<'a, I>(&self, peer: IpAddr, forwarded_for: I) -> IpAddr
    where
        I: IntoIterator<Item = &'a str>,
        I::IntoIter: DoubleEndedIterator,
    {
        let mut hop = peer.to_canonical();
        if !self.is_trusted(hop) {
            return hop;
        }
        // RFC 9110 §5.3: several fields of one name are one list, in order.
        let entries = forwarded_for
            .into_iter()
            .rev()
            .flat_map(|field| field.rsplit(','));
        for entry in entries {
            let entry = entry.trim();
            if entry.is_empty() {
                // `a,,b` or a trailing comma: an empty list element (RFC 9110 §5.6.1).
                continue;
            }
            let Some(addr) = parse_forwarded_address(entry) else {
                return hop;
            };
            hop = addr;
            if !self.is_trusted(addr) {
                return addr;
            }
        }
        hop
    }
}

/// One `X-Forwarded-For` element: an IP address, optionally with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`) or in brackets (`[2001:db8::1]`), as various proxies write it.
fn parse_forwarded_address(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = entry.parse::<std::net::SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse::<std::net::Ipv6Addr>().ok())
        .map(|ip| IpAddr::V6(ip).to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let cases: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("127.0.0.1/32", "127.0.0.1", true),
            ("127.0.0.1/32", "127.0.0.2", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("0.0.0.0/0", "203.0.113.7", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("192.168.0.0/16", "::ffff:192.168.3.4", true),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "2001:db8::1", true),
            ("::1/128", "::1", true),
            ("::1", "127.0.0.1", false),
            ("fd00::/8", "10.0.0.1", false),
        ];
        for (cidr, addr, inside) in cases {
            let net = IpCidr::parse(cidr).unwrap();
            assert_eq!(net.contains(ip(addr)), *inside, "{cidr} contains {addr}");
        }
        assert_eq!(
            IpCidr::parse("127.0.0.1").unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!(
            "2001:db8::/32".parse::<IpCidr>().unwrap().to_string(),
            "2001:db8::/32"
        );
    }

    #[test]
    fn bad_cidrs_are_clear_errors() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.1.2.3/8",
            "2001:db8::1/32",
            "10.0.0",
            "localhost",
            "10.0.0.0 /8",
            "[::1]/128",
        ] {
            let err = IpCidr::parse(bad).unwrap_err().to_string();
            assert!(err.contains("trusted proxy"), "{bad:?}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{bad:?} is named: {err}");
        }
        let err = TrustedProxies::parse(["10.0.0.0/8", "nope"]).unwrap_err();
        assert!(err.to_string().contains("\"nope\""), "{err}");
        assert!(TrustedProxies::parse([" 10.0.0.0/8 "]).is_ok());
        assert!(TrustedProxies::parse(Vec::<String>::new())
            .unwrap()
            .is_empty());
    }

    /// (trusted CIDRs, TCP peer, X-Forwarded-For fields, expected client, why)
    type Case = (
        &'static [&'static str],
        &'static str,
        &'static [&'static str],
        &'static str,
        &'static str,
    );

    #[test]
    fn the_client_is_the_rightmost_untrusted_forwarded_address() {
        const LB: &[&str] = &["127.0.0.1/32"];
        const NET: &[&str] = &["10.0.0.0/8"];
        const TWO: &[&str] = &["10.0.0.5/32", "192.168.1.1/32"];
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // No trust configured: the header means nothing.
            (&[], "203.0.113.9", &["198.51.100.1"], "203.0.113.9", "nothing trusted"),
            (&[], "127.0.0.1", &["198.51.100.1"], "127.0.0.1", "nothing trusted, even loopback"),
            // A direct client outside the trusted networks cannot claim another address.
            (LB, "203.0.113.9", &["198.51.100.1"], "203.0.113.9", "untrusted peer sends XFF"),
            (LB, "203.0.113.9", &["127.0.0.1"], "203.0.113.9", "untrusted peer claims to be the proxy"),
            // One trusted proxy appending the real client.
            (LB, "127.0.0.1", &["198.51.100.1"], "198.51.100.1", "one proxy"),
            (LB, "127.0.0.1", &[" 198.51.100.1 "], "198.51.100.1", "whitespace"),
            (LB, "::ffff:127.0.0.1", &["198.51.100.1"], "198.51.100.1", "IPv4-mapped peer"),
            (LB, "127.0.0.1", &["::ffff:198.51.100.1"], "198.51.100.1", "IPv4-mapped entry"),
            (LB, "127.0.0.1", &["2001:db8::7"], "2001:db8::7", "IPv6 client"),
            // Spoofing: the client sent its own XFF, the proxy appended the real address.
            (LB, "127.0.0.1", &["6.6.6.6, 198.51.100.1"], "198.51.100.1", "forged left-most entry"),
            (LB, "127.0.0.1", &["6.6.6.6", "198.51.100.1"], "198.51.100.1", "forged first field"),
            (LB, "127.0.0.1", &["127.0.0.1, 198.51.100.1"], "198.51.100.1", "forged trusted entry"),
            (LB, "127.0.0.1", &["garbage, 198.51.100.1"], "198.51.100.1", "forged garbage"),
            (NET, "10.0.0.2", &["6.6.6.6, 198.51.100.1, 10.0.0.3"], "198.51.100.1", "two proxies"),
            (TWO, "10.0.0.5", &["6.6.6.6,198.51.100.1,192.168.1.1"], "198.51.100.1", "listed proxies"),
            // A client inside a trusted network is skipped like a proxy; the next untrusted
            // entry to its left wins (so list proxies, not client networks).
            (NET, "10.0.0.2", &["198.51.100.1, 10.9.9.9"], "198.51.100.1", "trusted hop skipped"),
            // Missing, empty or only-trusted lists: the last trusted hop.
            (LB, "127.0.0.1", &[], "127.0.0.1", "no header"),
            (LB, "127.0.0.1", &[""], "127.0.0.1", "empty header"),
            (LB, "127.0.0.1", &[" , ,"], "127.0.0.1", "only empty elements"),
            (NET, "10.0.0.2", &["10.0.0.9, 10.0.0.3"], "10.0.0.9", "only proxies: the left-most"),
            (LB, "127.0.0.1", &["198.51.100.1,"], "198.51.100.1", "trailing comma"),
            // Malformed entries are never chosen, and nothing left of them is believed.
            (LB, "127.0.0.1", &["unknown"], "127.0.0.1", "nginx-style unknown"),
            (LB, "127.0.0.1", &["6.6.6.6, unknown"], "127.0.0.1", "forged entry behind garbage"),
            (NET, "10.0.0.2", &["6.6.6.6, _hidden, 10.0.0.3"], "10.0.0.3", "obfuscated hop"),
            (LB, "127.0.0.1", &["198.51.100.1/32"], "127.0.0.1", "a CIDR is not an address"),
            (LB, "127.0.0.1", &["999.1.1.1"], "127.0.0.1", "out-of-range octet"),
            // Ports and brackets, as some proxies write them.
            (LB, "127.0.0.1", &["198.51.100.1:4711"], "198.51.100.1", "IPv4 with port"),
            (LB, "127.0.0.1", &["[2001:db8::7]:4711"], "2001:db8::7", "IPv6 with port"),
            (LB, "127.0.0.1", &["[2001:db8::7]"], "2001:db8::7", "bracketed IPv6"),
        ];
        for (trusted, peer, xff, want, why) in cases {
            let proxies = TrustedProxies::parse(trusted.iter()).unwrap();
            let got = proxies.client_address(ip(peer), xff.iter().copied());
            assert_eq!(got, ip(want), "{why}: peer {peer}, XFF {xff:?}");
        }
    }
}
