//! Where the server may fetch a client's `jwks_uri` from. A client registers the URL, so
//! without a guard anyone who can register a client (or an operator tricked into it) makes the
//! server request its own loopback services, the cloud metadata endpoint at 169.254.169.254
//! or hosts on the private network (SSRF). Every host a fetch connects to — the first and
//! every redirect — is resolved here, and only public addresses are used unless
//! `[oauth] jwks_uri_allow_private` says otherwise. Resolving once and connecting to what was
//! checked leaves no window for DNS rebinding between the check and the connection.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// Whether `ip` is an address on the public internet: not loopback, private (RFC 1918, RFC
/// 4193), link-local (which holds cloud metadata services), shared (RFC 6598), multicast,
/// documentation, benchmarking, reserved or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space, RFC 6598
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local, RFC 4193
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x0064 && ip.segments()[1] == 0xff9b) // NAT64 onto v4 ranges
}

/// The resolver of `jwks_uri` fetches.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl ureq::Resolver for GuardedResolver {
    fn resolve(&self, netloc: &str) -> io::Result<Vec<SocketAddr>> {
        let all: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
        if self.allow_private {
            return Ok(all);
        }
        let public: Vec<SocketAddr> = all.into_iter().filter(|a| is_public(a.ip())).collect();
        if public.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the host resolves only to loopback, private or link-local addresses \
                 ([oauth] jwks_uri_allow_private is off)",
            ));
        }
        Ok(public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn the_resolver_refuses_hosts_that_resolve_inward_unless_allowed() {
        let guarded = GuardedResolver {
            allow_private: false,
        };
        let err = ureq::Resolver::resolve(&guarded, "127.0.0.1:80").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(ureq::Resolver::resolve(&guarded, "localhost:80").is_err());
        let open = GuardedResolver {
            allow_private: true,
        };
        assert_eq!(
            ureq::Resolver::resolve(&open, "127.0.0.1:80").unwrap(),
            vec![SocketAddr::from(([127, 0, 0, 1], 80))]
        );
    }
}
