//! The greylisting triplet (RFC 6647 §2.2, §4): the client's network, the
//! envelope sender and the recipient, normalized so that a real mail
//! server's retry matches its first attempt even when the retry comes from
//! another address of the same network or with a rotated sender address.
//!
//! The sender is normalized in this order, after case folding:
//! 1. the null sender is `<>`;
//! 2. BATV (`prvs=TAG=local@domain`, `msprvs1=TAG=local@…`,
//!    `btv1==TAG==local@…`) is unwrapped to `local@domain`;
//! 3. SRS (`SRS0=HASH=TT=domain=local@forwarder`, and SRS1 that wraps it)
//!    is unwrapped to the original `local@domain`;
//! 4. the local part loses a `+extension` (sub-address and `bounces+…`
//!    VERP), and its numbers and long hexadecimal identifiers become `#`
//!    (`bounce-12345-678@…` and `bounce-#-#@…` match).

use std::fmt;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The longest sender or recipient kept in a triplet, in bytes: RFC 5321
/// §4.5.3.1 allows 64 for a local part and 255 for a domain; longer text
/// from a client is cut, so a key stays bounded.
pub const MAX_ADDRESS: usize = 320;

/// How much of the client address makes the triplet's network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Networks {
    /// Prefix length for IPv4 clients (default 24).
    pub v4: u8,
    /// Prefix length for IPv6 clients (default 64).
    pub v6: u8,
}

impl Default for Networks {
    fn default() -> Self {
        Networks { v4: 24, v6: 64 }
    }
}

impl Networks {
    /// The network of `ip`: an IPv4-mapped IPv6 address counts as IPv4.
    pub fn of(&self, ip: IpAddr) -> IpNet {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => IpNet::V4(
                Ipv4Net::new(v4, self.v4.min(32))
                    .unwrap_or_else(|_| Ipv4Net::from(v4))
                    .trunc(),
            ),
            IpAddr::V6(v6) => IpNet::V6(
                Ipv6Net::new(v6, self.v6.min(128))
                    .unwrap_or_else(|_| Ipv6Net::from(v6))
                    .trunc(),
            ),
        }
    }
}

/// A normalized triplet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Triplet {
    /// The client's network.
    pub network: IpNet,
    /// The normalized envelope sender (`<>` for the null sender).
    pub sender: String,
    /// The recipient, case-folded, without angle brackets.
    pub recipient: String,
}

impl Triplet {
    /// The triplet of a client address, MAIL FROM and RCPT TO as the
    /// client gave them (with or without angle brackets).
    pub fn new(ip: IpAddr, sender: &str, recipient: &str, networks: Networks) -> Triplet {
        Triplet {
            network: networks.of(ip),
            sender: normalize_sender(sender),
            recipient: normalize_recipient(recipient),
        }
    }

    /// The store key: `network|sender|recipient`, with `%` and `|` in
    /// the addresses escaped so that the key splits back unambiguously.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}",
            self.network,
            escape(&self.sender),
            escape(&self.recipient)
        )
    }

    /// The triplet back from a [`key`](Self::key); `None` when it is not one.
    pub fn from_key(key: &str) -> Option<Triplet> {
        let mut parts = key.splitn(3, '|');
        let network = parts.next()?.parse().ok()?;
        let sender = unescape(parts.next()?);
        let recipient = unescape(parts.next()?);
        Some(Triplet {
            network,
            sender,
            recipient,
        })
    }
}

impl fmt::Display for Triplet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {}", self.network, self.sender, self.recipient)
    }
}

fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('|', "%7C")
}

fn unescape(s: &str) -> String {
    s.replace("%7C", "|").replace("%25", "%")
}

/// Bare, case-folded, bounded, without control characters.
fn bare(address: &str) -> String {
    let trimmed = address.trim();
    let inner = trimmed
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(trimmed);
    let mut out: String = inner
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(char::to_lowercase)
        .collect();
    if out.len() > MAX_ADDRESS {
        let mut cut = MAX_ADDRESS;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// The recipient as it is kept: case-folded, bare.
pub fn normalize_recipient(recipient: &str) -> String {
    bare(recipient)
}

/// The envelope sender as it is kept (see the module documentation).
pub fn normalize_sender(sender: &str) -> String {
    let address = bare(sender);
    if address.is_empty() {
        return "<>".to_owned();
    }
    let (local, domain) = match address.rsplit_once('@') {
        Some((l, d)) => (l.to_owned(), d.to_owned()),
        None => (address.clone(), String::new()),
    };
    let local = unwrap_batv(&local).unwrap_or(&local).to_owned();
    let (local, domain) = match unwrap_srs(&local) {
        Some((l, d)) => (l, d),
        None => (local, domain),
    };
    let local = local.split('+').next().unwrap_or("").to_owned();
    let local = mask_identifiers(&local);
    if domain.is_empty() {
        local
    } else {
        format!("{local}@{domain}")
    }
}

/// BATV: `prvs=TAG=local`, `msprvs1=TAG=local`, `btv1==TAG==local`.
fn unwrap_batv(local: &str) -> Option<&str> {
    if let Some(rest) = local.strip_prefix("btv1==") {
        return rest
            .split_once("==")
            .map(|(_, l)| l)
            .filter(|l| !l.is_empty());
    }
    let rest = local
        .strip_prefix("prvs=")
        .or_else(|| local.strip_prefix("msprvs1="))?;
    rest.split_once('=')
        .map(|(_, l)| l)
        .filter(|l| !l.is_empty())
}

/// SRS0 `SRS0=HASH=TT=domain=local`, and SRS1
/// `SRS1=HASH=forwarder==HASH=TT=domain=local`: the original local part
/// and domain. The separator after `SRS0`/`SRS1` may be `=`, `+` or `-`.
fn unwrap_srs(local: &str) -> Option<(String, String)> {
    let srs0 = |rest: &str| {
        let mut f = rest.splitn(4, '=');
        let (_hash, _time, domain, local) = (f.next()?, f.next()?, f.next()?, f.next()?);
        (!domain.is_empty() && !local.is_empty()).then(|| (local.to_owned(), domain.to_owned()))
    };
    let separated = |s: &str, tag: &str| {
        s.strip_prefix(tag)
            .and_then(|r| r.strip_prefix(['=', '+', '-']))
            .map(str::to_owned)
    };
    if let Some(rest) = separated(local, "srs0") {
        return srs0(&rest);
    }
    if let Some(rest) = separated(local, "srs1") {
        let (_, inner) = rest.split_once("==")?;
        return srs0(inner);
    }
    None
}

/// Numbers, and hexadecimal identifiers of 8 characters or more that hold
/// a digit, become `#`; the separators between them stay.
fn mask_identifiers(local: &str) -> String {
    let mut out = String::with_capacity(local.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        let digits = token.bytes().all(|b| b.is_ascii_digit());
        let hex = token.len() >= 8
            && token.bytes().all(|b| b.is_ascii_hexdigit())
            && token.bytes().any(|b| b.is_ascii_digit());
        if !token.is_empty() && (digits || hex) {
            out.push('#');
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for c in local.chars() {
        if c.is_ascii_alphanumeric() {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_sender_is_angle_brackets() {
        assert_eq!(normalize_sender(""), "<>");
        assert_eq!(normalize_sender("<>"), "<>");
    }

    #[test]
    fn addresses_are_case_folded_and_bare() {
        assert_eq!(normalize_sender("<Alice@Example.COM>"), "alice@example.com");
        assert_eq!(normalize_recipient("<Bob@Example.ORG>"), "bob@example.org");
    }

    #[test]
    fn batv_tags_are_removed() {
        assert_eq!(
            normalize_sender("prvs=1234abcdef=alice@example.com"),
            "alice@example.com"
        );
        assert_eq!(
            normalize_sender("PRVS=9876fedcba=Alice@example.com"),
            "alice@example.com"
        );
        assert_eq!(
            normalize_sender("msprvs1=17abcdef0=bounces-x@example.com"),
            "bounces-x@example.com"
        );
        assert_eq!(
            normalize_sender("btv1==0a1b2c3d==alice@example.com"),
            "alice@example.com"
        );
    }

    #[test]
    fn srs_addresses_give_back_the_original_sender() {
        assert_eq!(
            normalize_sender("SRS0=HHH=TT=example.com=alice@forwarder.example.net"),
            "alice@example.com"
        );
        assert_eq!(
            normalize_sender("srs0+hhh=tt=example.com=alice@forwarder.example.net"),
            "alice@example.com"
        );
        assert_eq!(
            normalize_sender(
                "SRS1=XXX=first.example.org==HHH=TT=example.com=alice@second.example.net"
            ),
            "alice@example.com"
        );
        // Rotated hash and timestamp: the same triplet.
        assert_eq!(
            normalize_sender("SRS0=a1b2=Q1=example.com=alice@fwd.example.net"),
            normalize_sender("SRS0=z9y8=Q2=example.com=alice@fwd.example.net")
        );
    }

    #[test]
    fn verp_and_message_identifiers_are_masked() {
        assert_eq!(
            normalize_sender("bounce-12345-678@lists.example.com"),
            "bounce-#-#@lists.example.com"
        );
        assert_eq!(
            normalize_sender("bounces+bob=example.org@lists.example.com"),
            "bounces@lists.example.com"
        );
        assert_eq!(
            normalize_sender("0100017f3a2b4c5d-aa11bb22-0000@ses.example.com"),
            normalize_sender("0100017f9e8d7c6b-cc33dd44-0000@ses.example.com")
        );
        // Words stay: a name is not an identifier.
        assert_eq!(
            normalize_sender("newsletter@example.com"),
            "newsletter@example.com"
        );
        assert_eq!(
            normalize_sender("deadbeef@example.com"),
            "deadbeef@example.com"
        );
    }

    #[test]
    fn networks_are_24_and_64_by_default_and_mapped_addresses_count_as_ipv4() {
        let n = Networks::default();
        assert_eq!(
            n.of("192.0.2.77".parse().unwrap()).to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            n.of("::ffff:192.0.2.77".parse().unwrap()).to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            n.of("2001:db8:1:2:3:4:5:6".parse().unwrap()).to_string(),
            "2001:db8:1:2::/64"
        );
        let wide = Networks { v4: 16, v6: 48 };
        assert_eq!(
            wide.of("198.51.100.9".parse().unwrap()).to_string(),
            "198.51.0.0/16"
        );
    }

    #[test]
    fn keys_split_back_even_with_bars_in_addresses() {
        let t = Triplet::new(
            "203.0.113.5".parse().unwrap(),
            "<a|b%7C@example.com>",
            "<c|d@example.org>",
            Networks::default(),
        );
        assert_eq!(Triplet::from_key(&t.key()), Some(t));
    }

    #[test]
    fn long_client_addresses_are_cut() {
        let long = format!("{}@example.com", "é".repeat(400));
        assert!(normalize_recipient(&long).len() <= MAX_ADDRESS);
        assert!(!normalize_sender("a\r\nb@example.com").contains('\n'));
    }
}
