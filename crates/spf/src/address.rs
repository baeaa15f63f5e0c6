//! Addresses as the SMTP conversation gives them, in the one form every
//! crate above uses: the client address and the MAIL FROM path.

use std::net::IpAddr;

/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.7`) is the IPv4 client it
/// maps (RFC 7208 §5); every other address is itself.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A path without its angle brackets and surrounding white space
/// (RFC 5321 §4.1.2): `<alice@example.com>` → `alice@example.com`,
/// `<>` → ``.
pub fn strip_brackets(path: &str) -> &str {
    let trimmed = path.trim();
    let trimmed = trimmed.strip_prefix('<').unwrap_or(trimmed);
    trimmed.strip_suffix('>').unwrap_or(trimmed).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_is_the_ipv4_client() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(canonical(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }

    #[test]
    fn brackets_and_white_space_are_stripped() {
        assert_eq!(strip_brackets(" <alice@example.com> "), "alice@example.com");
        assert_eq!(strip_brackets("<>"), "");
        assert_eq!(strip_brackets("alice@example.com"), "alice@example.com");
    }
}
