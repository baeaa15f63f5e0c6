//! The checks of the fuzz targets (`fuzz/fuzz_targets/record_parser.rs`
//! and `macro_expand.rs`), here so that the workspace tests run the same
//! code over the seed corpus and the property tests: a check that only a
//! fuzzing engine runs rots unseen.
//!
//! Each function panics (with the offending input) when a property does
//! not hold. They call exactly what the evaluator calls: [`Record::is_spf1`]
//! and [`Record::parse`] for records; [`MacroString::expand_domain`] for
//! every domain-spec and [`MacroString::expand`] for explanation text; and
//! the evaluator itself for an `exists` term. Not a stable interface.

use std::net::IpAddr;
use tollgate_dns::memory::block_on;

use tollgate_dns::memory::Zone;

use crate::macros::MAX_TEXT;
use crate::result::{Identity, QueryType};
use crate::{MacroContext, MacroString, MacroValues, Options, Record, Sender, Spf, TermError};

/// The body of the `record_parser` target: the input as (lossy) UTF-8
/// through [`check_record`].
pub fn record_parser(data: &[u8]) {
    check_record(&String::from_utf8_lossy(data));
}

/// The body of the `macro_expand` target. The input up to the first
/// newline is a macro string; what follows, if anything, is the sender's
/// local part (so that the fuzzer controls a long, hostile value too).
/// The string goes through [`check_macro`] for an IPv4 and an IPv6 client
/// and, when it is a domain-spec, through the evaluator
/// ([`check_exists_query`]).
pub fn macro_expand(data: &[u8]) {
    let data = String::from_utf8_lossy(data);
    let (text, local_part) = match data.split_once('\n') {
        Some((text, local)) => (text, local),
        None => (&*data, "strong-bad"),
    };
    for ip in [
        IpAddr::from([192, 0, 2, 3]),
        "2001:db8::cb01".parse().unwrap(),
    ] {
        let sender = format!("{local_part}@email.example.com");
        let values = MacroValues {
            sender: &sender,
            local_part,
            sender_domain: "email.example.com",
            domain: "email.example.com",
            ip,
            helo: "mx.example.org",
            validated_name: "mail.example.com",
            receiver: "mx.example.net",
            timestamp: 1_700_000_000,
        };
        check_macro(text, &values);
        check_exists_query(text, local_part, ip);
    }
}

/// The properties of any [`Record::parse`] outcome: a record that parses
/// displays as a `v=spf1` text that re-parses to an equal record and
/// displays the same again; text without the version is refused as a
/// whole at position 0; any other error names a term of the input, at a
/// term start.
pub fn check_record(text: &str) {
    let spf1 = Record::is_spf1(text);
    match Record::parse(text) {
        Ok(record) => {
            assert!(spf1, "{text:?} parsed without being v=spf1");
            let shown = record.to_string();
            assert!(Record::is_spf1(&shown), "display {shown:?} is not v=spf1");
            let again = Record::parse(&shown)
                .unwrap_or_else(|e| panic!("display {shown:?} of {text:?} does not re-parse: {e}"));
            assert_eq!(
                again, record,
                "display {shown:?} of {text:?} re-parses differently"
            );
            assert_eq!(again.to_string(), shown);
            for d in &record.directives {
                assert!(!d.text.is_empty());
                assert!(
                    d.text.chars().all(|c| matches!(c, '!'..='~')),
                    "{:?}",
                    d.text
                );
            }
            let dns = record
                .directives
                .iter()
                .filter(|d| d.mechanism.queries_dns())
                .count()
                + usize::from(record.redirect.is_some());
            assert_eq!(record.dns_terms(), dns);
        }
        Err(e) if e.error == TermError::NotSpf1 => {
            assert!(!spf1, "{text:?} is v=spf1 but was refused as not");
            assert_eq!((e.position, e.offset), (0, 0), "{text:?}");
            assert!(!e.to_string().is_empty());
        }
        Err(e) => {
            assert!(spf1, "{text:?}: {e}");
            assert!(e.position >= 1, "{text:?}: {e}");
            assert!(!e.term.is_empty());
            assert!(
                e.offset >= 6 && e.offset < text.len(),
                "offset {} in {text:?}",
                e.offset
            );
            assert!(text.is_char_boundary(e.offset));
            assert!(e.offset == 6 || text.as_bytes()[e.offset - 1] == b' ');
            assert_ne!(text.as_bytes()[e.offset], b' ');
            assert!(!e.to_string().is_empty());
        }
    }
}

const CONTEXTS: [MacroContext; 3] = [
    MacroContext::DomainSpec,
    MacroContext::Unknown,
    MacroContext::Explanation,
];

/// The properties of parsing `text` as a macro string in every context
/// and expanding it: the grammars nest (domain-spec ⊆ modifier value ⊆
/// explanation); [`MacroString::expand_domain`] is the RFC 7208 §7.3 cut
/// of the full expansion ([`check_domain_cut`]); [`MacroString::expand`]
/// is the head of it, at most [`MAX_TEXT`] bytes.
pub fn check_macro(text: &str, values: &MacroValues<'_>) {
    let parsed: Vec<_> = CONTEXTS
        .iter()
        .map(|&c| MacroString::parse(text, c))
        .collect();
    if parsed[0].is_ok() {
        assert!(
            parsed[1].is_ok(),
            "domain-spec but not modifier value: {text:?}"
        );
    }
    if parsed[1].is_ok() {
        assert!(
            parsed[2].is_ok(),
            "modifier value but not explanation: {text:?}"
        );
    }
    let mut expansions = Vec::new();
    for ms in parsed.iter().flatten() {
        assert_eq!(ms.as_str(), text);
        assert_eq!(ms.to_string(), text);
        let full = ms.expand_unbounded(values);
        check_domain_cut(&full, &ms.expand_domain(values));
        let head = ms.expand(values);
        assert!(head.len() <= MAX_TEXT, "{} bytes of text", head.len());
        assert!(full.starts_with(&head), "text expansion is not the head");
        if full.len() <= MAX_TEXT {
            assert_eq!(head, full);
        } else {
            assert!(head.len() + 4 > MAX_TEXT, "head cut short: {}", head.len());
        }
        if !text.contains('%') {
            assert_eq!(full, text, "macro-free text changed");
        }
        expansions.push(full);
    }
    // The context decides validity, never the expansion.
    assert!(expansions.windows(2).all(|w| w[0] == w[1]), "{text:?}");
}

/// That `cut` is what RFC 7208 §7.3 makes of the expanded domain-spec
/// `full`: `full` itself when at most 253 octets; otherwise the longest
/// suffix of `full` that starts after a dot and is at most 253 octets
/// (empty when even the last label is longer).
pub fn check_domain_cut(full: &str, cut: &str) {
    assert!(cut.len() <= 253, "cut of {} octets", cut.len());
    assert!(
        full.ends_with(cut),
        "{cut:?} is not a tail of the expansion"
    );
    if full.len() <= 253 {
        assert_eq!(cut, full);
        return;
    }
    let start = full.len() - cut.len();
    // Where the cut starts: after a dot, or nowhere when nothing fits.
    let before = if cut.is_empty() && !full.ends_with('.') {
        full.len()
    } else {
        assert_eq!(full.as_bytes()[start - 1], b'.', "cut inside a label");
        start - 1
    };
    // No longer label-suffix would fit: the dot before that one leaves
    // more than 253 octets.
    if let Some(dot) = full.as_bytes()[..before].iter().rposition(|b| *b == b'.') {
        assert!(
            full.len() - dot - 1 > 253,
            "a longer label-suffix of {} octets fits",
            full.len() - dot - 1
        );
    }
}

/// Runs the evaluator on `v=spf1 exists:<spec> -all` for a sender with
/// `local_part` and checks the name it queries: the §7.3 cut of the full
/// expansion ([`check_domain_cut`]), and no query when that name cannot
/// be a DNS name. Does nothing when `spec` is not a valid `exists` term.
pub fn check_exists_query(spec: &str, local_part: &str, ip: IpAddr) {
    const DOMAIN: &str = "email.example.com";
    const HELO: &str = "mx.example.org";
    let record = format!("v=spf1 exists:{spec} -all");
    let Ok(parsed) = Record::parse(&record) else {
        return;
    };
    let Some(crate::Mechanism::Exists(ms)) = parsed.directives.first().map(|d| &d.mechanism) else {
        return;
    };
    // A space in `spec` ends the term: the rest are terms of their own
    // (`%{l}.x a` adds an `a` mechanism, which queries too), so the record
    // is not the one this property is about.
    let only_exists_and_all = parsed.directives.len() == 2
        && parsed.redirect.is_none()
        && parsed.exp.is_none()
        && parsed.unknown.is_empty();
    if !only_exists_and_all {
        return;
    }
    let mut zone = Zone::new();
    zone.add_txt(DOMAIN, &record);
    let opts = Options {
        trace: true,
        timestamp: Some(1_700_000_000),
        receiver: "mx.example.net".to_owned(),
        ..Options::default()
    };
    let spf = Spf::new(zone, opts);
    let sender = Sender {
        local_part: local_part.to_owned(),
        domain: DOMAIN.to_owned(),
    };
    let out = block_on(spf.check_host(ip, Identity::MailFrom, &sender, HELO));
    // What the evaluator's values are (crate::eval::Eval::new): an IPv4-
    // mapped client is IPv4, an empty local part is "postmaster", and the
    // zone has no PTR record, so %{p} is "unknown".
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let local_part = if local_part.is_empty() {
        "postmaster"
    } else {
        local_part
    };
    let sender = format!("{local_part}@{DOMAIN}");
    let values = MacroValues {
        sender: &sender,
        local_part,
        sender_domain: DOMAIN,
        domain: DOMAIN,
        ip,
        helo: HELO,
        validated_name: "unknown",
        receiver: "mx.example.net",
        timestamp: 1_700_000_000,
    };
    let full = ms.expand_unbounded(&values);
    let expected = ms.expand_domain(&values);
    check_domain_cut(&full, &expected);
    let queried: Vec<&str> = out
        .trace
        .iter()
        .filter(|t| t.qtype == QueryType::A)
        .map(|t| t.name.as_str())
        .collect();
    if crate::domain::check_query_name(&expected).is_ok() {
        assert_eq!(queried, [expected.as_str()], "spec {spec:?}");
    } else {
        assert!(queried.is_empty(), "queried {queried:?} for spec {spec:?}");
    }
}
