//! Which addresses can be a mail host on the internet: RFC 6890's
//! special-purpose blocks that are not globally reachable (loopback,
//! private, link-local, shared, reserved, multicast) cannot. Used by the
//! sender-domain stage to tell an MX set that only points inward.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `ip` cannot be a mail host on the internet, or `None` if it can.
/// The documentation ranges (192.0.2.0/24, 198.51.100.0/24,
/// 203.0.113.0/24, 2001:db8::/32) count as routable: they stand for
/// public addresses in examples and tests.
pub(crate) fn unroutable(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => unroutable_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => unroutable_v4(v4),
            None => unroutable_v6(v6),
        },
    }
}

/// RFC 6890's IPv4 special-purpose blocks that are not globally reachable.
fn unroutable_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, _, _] = ip.octets();
    let why = match (a, b) {
        (0, _) => "unspecified (0.0.0.0/8)",
        (10, _) => "private (10.0.0.0/8)",
        (100, 64..=127) => "shared address space (100.64.0.0/10)",
        (127, _) => "loopback",
        (169, 254) => "link-local",
        (172, 16..=31) => "private (172.16.0.0/12)",
        (192, 168) => "private (192.168.0.0/16)",
        (198, 18..=19) => "benchmarking (198.18.0.0/15)",
        (224..=239, _) => "multicast",
        (240..=255, _) => "reserved (240.0.0.0/4)",
        _ => return None,
    };
    Some(why)
}

/// RFC 6890's IPv6 special-purpose blocks that are not globally reachable.
fn unroutable_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let why = if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "unique local (fc00::/7)"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "link-local"
    } else if s[0] & 0xffc0 == 0xfec0 {
        "site-local (fec0::/10)"
    } else if s[0] & 0xff00 == 0xff00 {
        "multicast"
    } else if s[..4] == [0x100, 0, 0, 0] {
        "discard-only (100::/64)"
    } else if s[..6] == [0; 6] {
        "IPv4-compatible (::/96)"
    } else {
        return None;
    };
    Some(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(ip: &str) -> Option<&'static str> {
        unroutable(ip.parse().unwrap())
    }

    #[test]
    fn private_loopback_link_local_and_reserved_are_unroutable() {
        for ip in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.1.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
        ] {
            assert!(why(ip).is_some(), "{ip} should be unroutable");
        }
    }

    #[test]
    fn public_and_documentation_addresses_are_routable() {
        for ip in [
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "2001:db8::1",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "169.253.1.1",
            "198.20.0.1",
            "223.255.255.255",
            "::ffff:192.0.2.1",
        ] {
            assert_eq!(why(ip), None, "{ip} should be routable");
        }
    }
}
