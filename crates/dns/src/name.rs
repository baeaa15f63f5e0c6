//! Domain name helpers shared by the zone and the resolver adapter.

use std::fmt::Write;
use std::net::IpAddr;

/// The form names are compared in: ASCII lower case, no trailing dot.
pub fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// The reverse-mapping name of an address, without trailing dot:
/// `7.2.0.192.in-addr.arpa` for IPv4 (RFC 1035 §3.5) and nibble form under
/// `ip6.arpa` for IPv6 (RFC 3596 §2.5).
pub fn reverse_name(ip: IpAddr) -> String {
    let mut out = String::with_capacity(72);
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let _ = write!(out, "{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]);
        }
        IpAddr::V6(v6) => {
            for byte in v6.octets().iter().rev() {
                let _ = write!(out, "{:x}.{:x}.", byte & 0x0f, byte >> 4);
            }
            out.push_str("ip6.arpa");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_name_of_ipv4_reverses_octets() {
        assert_eq!(
            reverse_name("192.0.2.7".parse().unwrap()),
            "7.2.0.192.in-addr.arpa"
        );
    }

    #[test]
    fn reverse_name_of_ipv6_is_nibbles_under_ip6_arpa() {
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn normalize_name_folds_case_and_trailing_dot() {
        assert_eq!(normalize_name("Mail.Example.COM."), "mail.example.com");
    }
}
