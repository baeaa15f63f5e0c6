//! Generic reverse DNS names: the template names that access providers
//! and clouds give whole address pools (`c-192-0-2-7.hsd1.ca.example.net`,
//! `pool-192-0-2-7.example.net`, `pc0000207.dip0.example.de`), as opposed
//! to the names an administrator gives a mail server. The `rdns-name`
//! stage acts on this; fcrdns notes it in its detail.
//!
//! A name is split with the Public Suffix List (ICANN section) into its
//! registered domain (`example.co.uk`) and the host labels left of it.
//! Then, in order:
//!
//! 1. a host label says mail service (`mail`, `mx`, `smtp`, `out`,
//!    `relay`, `mta`… as whole words): not generic — large senders number
//!    their outbound hosts, often by address (`mail-…-f41.google.com`,
//!    `a2-7.smtp-out.amazonses.com`);
//! 2. evidence of a template: the whole address spelled anywhere left of
//!    the public suffix, in any form of [`address`]; or part of it (two
//!    or three adjacent octets, an IPv6 /64) together with a pool word;
//!    or a strong pool word alone (`dynamic`, `dsl`, `pool`, `cable`…).
//!    Pool words count only in host labels, never in the registered
//!    domain (`mail.dynamics.example` is not generic);
//! 3. evidence plus `static` (a whole word): a static address on a
//!    business line, reported as [`Classification::Static`], not generic.
//!
//! Cloud names (`ec2-192-0-2-7.compute-1.amazonaws.com`) spell the
//! address and so are generic: from a mail point of view a VM is generic
//! until its operator names it. The PSL's private section (cloud and
//! dynamic-DNS zones such as `compute-1.amazonaws.com`) is ignored for
//! that reason: the owner of the address block sets the PTR, not a
//! customer of a private suffix.
//!
//! Cost: one copy of the name on the stack, one PSL lookup (a compiled
//! `match`, plus one more per private-section hit), linear scans; no
//! allocation unless a reason is rendered.

#[path = "generic/address.rs"]
mod address;

use std::fmt;
use std::net::IpAddr;

use address::{Form, Spelled};
use psl::Psl as _;

/// What a reverse name says about the host behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Classification {
    /// No sign of a template: a name someone chose.
    Named,
    /// A template name for an end-user, pool or cloud address.
    Generic(Evidence),
    /// A template name that says the address is static (a business line).
    Static {
        evidence: Evidence,
        word: &'static str,
    },
    /// The name says mail service; any template evidence is ignored.
    MailService { word: &'static str },
}

impl Classification {
    pub(crate) fn is_generic(&self) -> bool {
        matches!(self, Classification::Generic(_))
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Classification::Named => f.write_str("not a generic name"),
            Classification::Generic(evidence) => write!(f, "generic name: {evidence}"),
            Classification::Static { evidence, word } => write!(
                f,
                "static address, not counted as generic: it says \"{word}\" ({evidence})"
            ),
            Classification::MailService { word } => {
                write!(
                    f,
                    "mail server name, not counted as generic: it says \"{word}\""
                )
            }
        }
    }
}

/// Why a name is a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Evidence {
    /// The name spells the whole address.
    Address(Form),
    /// The name spells part of the address and has a pool word.
    PartAndWord(Form, &'static str),
    /// The name has a pool word strong enough alone.
    Word(&'static str),
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::Address(form) => write!(f, "it encodes the address ({form})"),
            Evidence::PartAndWord(form, word) => write!(
                f,
                "it encodes part of the address ({form}) and contains \"{word}\""
            ),
            Evidence::Word(word) => write!(f, "it contains \"{word}\""),
        }
    }
}

/// What a word in a host label tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A mail server: exempts the name.
    Service,
    /// A static address: the name is not counted as generic.
    Static,
    /// An end-user pool, generic alone.
    Strong,
    /// An end-user or hosting pool, generic with part of the address.
    Weak,
}

/// Words are whole runs of letters: `hsd1` gives `hsd`, `ip68-…` gives `ip`.
const WORDS: &[(&str, Kind)] = &[
    // Mail service (as in the names of large senders' outbound hosts).
    ("mail", Kind::Service),
    ("mx", Kind::Service),
    ("mxout", Kind::Service),
    ("smtp", Kind::Service),
    ("smtpout", Kind::Service),
    ("smtpgw", Kind::Service),
    ("mta", Kind::Service),
    ("out", Kind::Service),
    ("outbound", Kind::Service),
    ("outgoing", Kind::Service),
    ("mailout", Kind::Service),
    ("mout", Kind::Service),
    ("relay", Kind::Service),
    ("mailrelay", Kind::Service),
    ("mailer", Kind::Service),
    ("mailhost", Kind::Service),
    ("mailgw", Kind::Service),
    ("email", Kind::Service),
    ("sender", Kind::Service),
    ("bounce", Kind::Service),
    ("bounces", Kind::Service),
    ("postfix", Kind::Service),
    ("exim", Kind::Service),
    // Static addresses.
    ("static", Kind::Static),
    ("staticip", Kind::Static),
    ("fixed", Kind::Static),
    ("fixedip", Kind::Static),
    // Strong pool words.
    ("dynamic", Kind::Strong),
    ("dynamicip", Kind::Strong),
    ("dyn", Kind::Strong),
    ("dynip", Kind::Strong),
    ("dhcp", Kind::Strong),
    ("pool", Kind::Strong),
    ("pools", Kind::Strong),
    ("dsl", Kind::Strong),
    ("adsl", Kind::Strong),
    ("vdsl", Kind::Strong),
    ("xdsl", Kind::Strong),
    ("sdsl", Kind::Strong),
    ("dslb", Kind::Strong),
    ("cable", Kind::Strong),
    ("cablemodem", Kind::Strong),
    ("modemcable", Kind::Strong),
    ("ppp", Kind::Strong),
    ("pppoe", Kind::Strong),
    ("pppoa", Kind::Strong),
    ("dialup", Kind::Strong),
    ("dial", Kind::Strong),
    ("dialin", Kind::Strong),
    ("broadband", Kind::Strong),
    ("bredband", Kind::Strong),
    ("residential", Kind::Strong),
    ("resi", Kind::Strong),
    ("unassigned", Kind::Strong),
    // Weak pool words: telling only with part of the address.
    ("ip", Kind::Weak),
    ("ips", Kind::Weak),
    ("ipv", Kind::Weak),
    ("host", Kind::Weak),
    ("hosts", Kind::Weak),
    ("client", Kind::Weak),
    ("clients", Kind::Weak),
    ("customer", Kind::Weak),
    ("customers", Kind::Weak),
    ("cust", Kind::Weak),
    ("user", Kind::Weak),
    ("users", Kind::Weak),
    ("subscriber", Kind::Weak),
    ("subs", Kind::Weak),
    ("home", Kind::Weak),
    ("res", Kind::Weak),
    ("rev", Kind::Weak),
    ("abo", Kind::Weak),
    ("range", Kind::Weak),
    ("red", Kind::Weak),
    ("cpe", Kind::Weak),
    ("cm", Kind::Weak),
    ("hsd", Kind::Weak),
    ("hsi", Kind::Weak),
    ("bb", Kind::Weak),
    ("dip", Kind::Weak),
    ("nat", Kind::Weak),
    ("cgnat", Kind::Weak),
    ("fiber", Kind::Weak),
    ("fibre", Kind::Weak),
    ("ftth", Kind::Weak),
    ("fttc", Kind::Weak),
    ("fttx", Kind::Weak),
    ("catv", Kind::Weak),
    ("wireless", Kind::Weak),
    ("wifi", Kind::Weak),
    ("lte", Kind::Weak),
    ("mobile", Kind::Weak),
    ("gprs", Kind::Weak),
    ("members", Kind::Weak),
    ("vps", Kind::Weak),
    ("cloud", Kind::Weak),
    ("compute", Kind::Weak),
];

/// Why `name` looks generic for `ip`, if it does.
pub(crate) fn generic_reason(name: &str, ip: IpAddr) -> Option<String> {
    let class = classify(name, ip);
    class.is_generic().then(|| class.to_string())
}

/// What the reverse name `name` of `ip` says about the host.
pub(crate) fn classify(name: &str, ip: IpAddr) -> Classification {
    let Some(lower) = Lowered::new(name) else {
        return Classification::Named;
    };
    let (left, host) = split(lower.as_bytes());
    let words = Words::scan(host);
    if let Some(word) = words.service {
        return Classification::MailService { word };
    }
    let spelled = match ip {
        IpAddr::V4(v4) => address::find_v4(left, v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => address::find_v4(left, v4),
            None => address::find_v6(left, v6),
        },
    };
    let evidence = match spelled {
        Some(Spelled::Whole(form)) => Some(Evidence::Address(form)),
        Some(Spelled::Part(form)) => words.pool().map(|word| Evidence::PartAndWord(form, word)),
        None => None,
    }
    .or(words.strong.map(Evidence::Word));
    match (evidence, words.fixed) {
        (None, _) => Classification::Named,
        (Some(evidence), Some(word)) => Classification::Static { evidence, word },
        (Some(evidence), None) => Classification::Generic(evidence),
    }
}

/// The longest name in text form (RFC 1035 §2.3.4: 255 octets on the wire).
const MAX_NAME: usize = 253;

/// A lower-case copy of a name without its trailing dot, on the stack.
struct Lowered {
    bytes: [u8; MAX_NAME],
    len: usize,
}

impl Lowered {
    fn new(name: &str) -> Option<Lowered> {
        let name = name.strip_suffix('.').unwrap_or(name).as_bytes();
        if name.is_empty() || name.len() > MAX_NAME {
            return None;
        }
        let mut bytes = [0; MAX_NAME];
        for (to, from) in bytes.iter_mut().zip(name) {
            *to = from.to_ascii_lowercase();
        }
        Some(Lowered {
            bytes,
            len: name.len(),
        })
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The labels left of the public suffix, and of those the labels left of
/// the registered domain (the host labels).
fn split(name: &[u8]) -> (&[u8], &[u8]) {
    // A last label of digits is no top-level domain: the name is an
    // address in text form, all of it host part.
    let tld = name.rsplit(|b| *b == b'.').next().unwrap_or_default();
    let suffix = if tld.iter().all(u8::is_ascii_digit) {
        0
    } else {
        icann_suffix_len(name)
    };
    let left = match name.len().checked_sub(suffix + 1) {
        Some(end) if suffix > 0 => &name[..end],
        _ if suffix == 0 => name,
        _ => &[],
    };
    let host = match left.iter().rposition(|b| *b == b'.') {
        Some(dot) if suffix > 0 => &left[..dot],
        _ if suffix == 0 => left,
        _ => &[],
    };
    (left, host)
}

/// The length of the public suffix of `name` by the ICANN section of the
/// Public Suffix List; a name under an unknown top-level domain (`.test`)
/// has that label as its suffix (the list's `*` rule).
fn icann_suffix_len(name: &[u8]) -> usize {
    let mut tail = name;
    loop {
        let info = psl::List.find(tail.rsplit(|b| *b == b'.'));
        let len = info.len.min(tail.len());
        if info.typ != Some(psl::Type::Private) {
            return len;
        }
        // A private suffix (`compute-1.amazonaws.com`) sits under an
        // ICANN one: look again without its first label. `tail` shrinks
        // every time, so this ends.
        let suffix = &tail[tail.len() - len..];
        match suffix.iter().position(|b| *b == b'.') {
            Some(dot) => tail = &suffix[dot + 1..],
            None => return len,
        }
    }
}

/// The first word of each kind in the host labels.
#[derive(Debug, Default)]
struct Words {
    service: Option<&'static str>,
    fixed: Option<&'static str>,
    strong: Option<&'static str>,
    weak: Option<&'static str>,
}

impl Words {
    fn scan(host: &[u8]) -> Words {
        let mut found = Words::default();
        for token in host.split(|b| !b.is_ascii_lowercase()) {
            let Some((word, kind)) = WORDS.iter().find(|(w, _)| w.as_bytes() == token) else {
                continue;
            };
            let slot = match kind {
                Kind::Service => &mut found.service,
                Kind::Static => &mut found.fixed,
                Kind::Strong => &mut found.strong,
                Kind::Weak => &mut found.weak,
            };
            slot.get_or_insert(word);
        }
        found
    }

    /// A pool word of either strength.
    fn pool(&self) -> Option<&'static str> {
        self.strong.or(self.weak)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn class(name: &str) -> Classification {
        classify(name, ip("192.0.2.7"))
    }

    #[test]
    fn names_encoding_the_address_are_generic() {
        assert!(generic_reason("192-0-2-7.example.net", ip("192.0.2.7")).is_some());
        assert!(generic_reason("7.2.0.192.pool.example.net", ip("192.0.2.7")).is_some());
        assert!(generic_reason("host-c0000207.example.net", ip("192.0.2.7")).is_some());
        let why = generic_reason("syn-192-000-002-007.res.example.com", ip("192.0.2.7")).unwrap();
        assert_eq!(
            why,
            "generic name: it encodes the address (zero-padded dashed octets)"
        );
    }

    #[test]
    fn pool_words_are_generic() {
        let why = generic_reason("dynamic-44.example.net", ip("192.0.2.7")).unwrap();
        assert!(why.contains("dynamic"));
        assert!(generic_reason("x.dsl.isp.example.net", ip("192.0.2.7")).is_some());
    }

    #[test]
    fn weak_pool_words_need_part_of_the_address() {
        assert_eq!(class("host1.example.com"), Classification::Named);
        assert!(class("host2-7.example.com").is_generic());
        assert!(class("ip7.ip-192-0-2.example.eu").is_generic());
        assert_eq!(class("m2-7.example.net"), Classification::Named);
    }

    #[test]
    fn real_mail_server_names_are_not_generic() {
        assert!(generic_reason("mail.example.com", ip("192.0.2.7")).is_none());
        assert!(generic_reason("mx1.dsl.example", ip("192.0.2.7")).is_none());
        assert!(generic_reason("smtp-out.example.org", ip("192.0.2.7")).is_none());
        assert_eq!(
            class("mail-192-0-2-7.static.example.net"),
            Classification::MailService { word: "mail" }
        );
    }

    #[test]
    fn static_names_are_not_counted_as_generic() {
        let c = class("192-0-2-7.static.example.net");
        assert!(
            matches!(c, Classification::Static { word: "static", .. }),
            "{c:?}"
        );
        assert!(c.to_string().contains("static"));
        assert!(generic_reason("192-0-2-7.static.example.net", ip("192.0.2.7")).is_none());
    }

    #[test]
    fn pool_words_in_the_registered_domain_do_not_count() {
        assert_eq!(class("www.dynamic.example"), Classification::Named);
        assert_eq!(class("www.dsl.co.uk"), Classification::Named);
        assert!(class("a.dsl.example.co.uk").is_generic());
        assert_eq!(class("dynamic.example"), Classification::Named);
    }

    #[test]
    fn the_private_section_of_the_list_is_ignored() {
        // compute-1.amazonaws.com is a private-section suffix; the name's
        // host labels are still ec2-… and compute-1.
        assert_eq!(
            split(b"ec2-192-0-2-7.compute-1.amazonaws.com").1,
            b"ec2-192-0-2-7.compute-1"
        );
        assert!(class("ec2-192-0-2-7.compute-1.amazonaws.com").is_generic());
        assert_eq!(
            split(b"a.b.example.co.uk"),
            (&b"a.b.example"[..], &b"a.b"[..])
        );
    }

    #[test]
    fn ipv6_and_mapped_clients() {
        let v6 = ip("2001:db8::7");
        assert!(classify("2001-db8--7.example.net", v6).is_generic());
        assert!(!classify("2001-db8--70.example.net", v6).is_generic());
        assert!(classify("192-0-2-7.example.net", ip("::ffff:192.0.2.7")).is_generic());
    }

    #[test]
    fn odd_names_are_handled() {
        assert_eq!(class(""), Classification::Named);
        assert_eq!(class("."), Classification::Named);
        assert_eq!(class(&"a".repeat(300)), Classification::Named);
        assert!(class("7.2.0.192").is_generic());
        assert!(class("192-0-2-7.EXAMPLE.NET.").is_generic());
        assert!(class("DYNAMIC-1.example.net").is_generic());
        assert_eq!(class("a..b...com"), Classification::Named);
        assert_eq!(class("é.ü.example"), Classification::Named);
    }

    proptest::proptest! {
        #[test]
        fn classify_never_panics(name in "\\PC{0,300}", a: u8, d: u8) {
            let _ = classify(&name, IpAddr::from([a, 0, 2, d]));
            let _ = classify(&name, IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(d)]));
        }

        #[test]
        fn dashed_octets_are_found(a in 1u8.., b: u8, c: u8, d: u8) {
            let name = format!("x-{a}-{b}-{c}-{d}.example.net");
            proptest::prop_assert!(classify(&name, IpAddr::from([a, b, c, d])).is_generic());
        }
    }
}
