//! Generic reverse DNS names: the names ISPs give whole address pools
//! (`192-0-2-7.dsl.example.net`, `dynamic-c0000207.example.net`). A
//! generic name is noted in the fcrdns detail; it does not change the result.

use std::net::IpAddr;

/// Words that mark end-user address pools.
const POOL_WORDS: &[&str] = &[
    "dynamic",
    "dyn",
    "dsl",
    "adsl",
    "vdsl",
    "xdsl",
    "pool",
    "dhcp",
    "dialup",
    "dial-up",
    "ppp",
    "pppoe",
    "cable",
    "broadband",
    "client",
    "customer",
    "cust",
    "residential",
    "home",
    "user",
    "unassigned",
    "nat",
];

/// Why `name` looks generic for `ip`, if it does.
pub(crate) fn generic_reason(name: &str, ip: IpAddr) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    // Only the host part (everything before the registered-ish domain)
    // is telling; looking at the first labels avoids flagging "dsl.example".
    let labels: Vec<&str> = lower.split('.').collect();
    let host_labels = &labels[..labels.len().saturating_sub(2)];
    if let Some(encoded) = encodes_address(host_labels, ip) {
        return Some(format!("generic name: it encodes the address ({encoded})"));
    }
    for label in host_labels {
        for word in label.split(|c: char| c == '-' || c.is_ascii_digit()) {
            if POOL_WORDS.contains(&word) {
                return Some(format!("generic name: contains \"{word}\""));
            }
        }
    }
    None
}

fn encodes_address(host_labels: &[&str], ip: IpAddr) -> Option<&'static str> {
    let host = host_labels.join(".");
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            let joined =
                |sep: &str, o: [u8; 4]| o.iter().map(u8::to_string).collect::<Vec<_>>().join(sep);
            let forms = [
                (joined("-", [a, b, c, d]), "dashed"),
                (joined("-", [d, c, b, a]), "reversed dashed"),
                (joined(".", [a, b, c, d]), "dotted"),
                (joined(".", [d, c, b, a]), "reversed dotted"),
                (joined("_", [a, b, c, d]), "underscored"),
                (format!("{:03}{:03}{:03}{:03}", a, b, c, d), "zero-padded"),
                (format!("{a:02x}{b:02x}{c:02x}{d:02x}"), "hexadecimal"),
            ];
            forms
                .into_iter()
                .find(|(form, _)| host.contains(form.as_str()))
                .map(|(_, how)| how)
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let tail = format!("{:x}-{:x}", segments[6], segments[7]);
            (host.contains(&tail) && segments[6] != 0).then_some("IPv6 segments")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn names_encoding_the_address_are_generic() {
        assert!(generic_reason("192-0-2-7.example.net", ip("192.0.2.7")).is_some());
        assert!(generic_reason("7.2.0.192.pool.example.net", ip("192.0.2.7")).is_some());
        assert!(generic_reason("host-c0000207.example.net", ip("192.0.2.7")).is_some());
    }

    #[test]
    fn pool_words_are_generic() {
        let why = generic_reason("dynamic-44.example.net", ip("192.0.2.7")).unwrap();
        assert!(why.contains("dynamic"));
        assert!(generic_reason("x.dsl.isp.example.net", ip("192.0.2.7")).is_some());
    }

    #[test]
    fn real_mail_server_names_are_not_generic() {
        assert!(generic_reason("mail.example.com", ip("192.0.2.7")).is_none());
        assert!(generic_reason("mx1.dsl.example", ip("192.0.2.7")).is_none());
        assert!(generic_reason("smtp-out.example.org", ip("192.0.2.7")).is_none());
    }
}
