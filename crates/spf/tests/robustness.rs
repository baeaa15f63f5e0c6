//! Robustness properties of the SPF engine under hostile and broken input.
//!
//! Property tests (proptest) feed random strings and mutations of realistic
//! records through [`Record::parse`], [`MacroString::parse`] in every
//! [`MacroContext`], macro expansion with arbitrary [`MacroValues`], and full
//! evaluation ([`Spf::check_mailfrom`], [`Spf::check_helo`]) over an
//! in-memory [`Zone`] whose records are the generated ones, next to fixed
//! hostile structures (self-include, mutual includes, redirect loops, long
//! include chains, MX and PTR answers with many names, CNAME loops, timeouts).
//!
//! They assert properties, not only the absence of panics: an evaluation
//! over the in-memory zone completes on its first poll; the RFC 7208 §4.6.4
//! limits hold and are exact; errors carry a `problem`; a fail carries a
//! printable explanation; a parsed record displays as text that re-parses to
//! the same record; an expanded domain-spec never exceeds 253 characters.
//!
//! The number of cases per property is fixed in each `proptest_config`
//! (5,700 generated cases in all) so that the whole file runs in well
//! under 20 s in a debug build.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;
use tollgate_dns::memory::{Entry, RecordData, Zone};
use tollgate_dns::{Mx, reverse_name};
use tollgate_spf::{
    MacroContext, MacroString, MacroValues, Options, Record, Spf, SpfOutput, SpfResult, fuzzing,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Polls a future once with a no-op waker. The in-memory zone answers at
/// once, so an evaluation over it must be ready on the first poll: `None`
/// means it was not (it waited on something, or never ends).
fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// Like [`poll_once`], for the fixed tests.
fn block_on<F: Future>(f: F) -> F::Output {
    poll_once(f).expect("in-memory evaluation did not complete on its first poll")
}

/// The most DNS queries one evaluation can make (`SpfOutput::queries`),
/// derived from `crates/spf/src/eval.rs`:
///
/// * 1 TXT query for the checked domain;
/// * each DNS-querying term that is allowed to run (at most
///   `max_dns_terms`; the term over the limit fails in `spend_term` before
///   it queries anything) makes at most `1 + max_names` queries: `mx` is
///   1 MX query plus one A/AAAA query per exchange (an answer with more
///   than `max_names` exchanges is a permerror before any address query);
///   `ptr` is 1 PTR query plus one validation per name among the first
///   `max_names`; `include` and `redirect` are 1 TXT query each (the
///   included record's own terms are counted as terms of their own); `a`
///   and `exists` are 1 A/AAAA query;
/// * the `%{p}` validated name, computed at most once per evaluation:
///   1 PTR query plus at most `max_names` validations;
/// * the explanation of a fail: 1 TXT query (a `%{p}` in it reuses the
///   validated name).
///
/// So `2 + (max_dns_terms + 1) * (max_names + 1)`: 123 with the RFC limits.
fn max_queries(o: &Options) -> u32 {
    let names = u32::try_from(o.max_names).unwrap_or(u32::MAX);
    2 + (o.max_dns_terms + 1) * (names + 1)
}

fn is_printable_ascii(s: &str) -> bool {
    s.chars().all(|c| matches!(c, ' '..='~'))
}

/// The properties every evaluation output must have, whatever the zone.
fn check_output(out: &SpfOutput, o: &Options) -> Result<(), TestCaseError> {
    // §4.6.4: the term that goes over the limit is counted and ends the
    // evaluation with permerror, so at most one more than the limit.
    prop_assert!(
        out.lookups <= o.max_dns_terms + 1,
        "lookups {} > {} + 1",
        out.lookups,
        o.max_dns_terms
    );
    if out.lookups > o.max_dns_terms {
        prop_assert_eq!(out.result, SpfResult::PermError);
    }
    prop_assert!(
        out.void_lookups <= o.max_void_lookups + 1,
        "void lookups {} > {} + 1",
        out.void_lookups,
        o.max_void_lookups
    );
    if out.void_lookups > o.max_void_lookups {
        prop_assert_eq!(out.result, SpfResult::PermError);
    }
    prop_assert!(
        out.queries <= max_queries(o),
        "{} queries > bound {}",
        out.queries,
        max_queries(o)
    );
    if o.trace {
        prop_assert_eq!(out.trace.len(), out.queries as usize);
    } else {
        prop_assert!(out.trace.is_empty());
    }
    match out.result {
        SpfResult::PermError | SpfResult::TempError | SpfResult::None => {
            let problem = out.problem.as_deref().unwrap_or("");
            prop_assert!(!problem.is_empty(), "{} without a problem", out.result);
        }
        _ => prop_assert!(
            out.problem.is_none(),
            "{} with problem {:?}",
            out.result,
            out.problem
        ),
    }
    match (&out.result, &out.explanation) {
        (SpfResult::Fail, Some(exp)) => {
            prop_assert!(!exp.text.is_empty(), "empty explanation");
            prop_assert!(
                is_printable_ascii(&exp.text),
                "explanation {:?} is not printable ASCII",
                exp.text
            );
        }
        (SpfResult::Fail, None) => prop_assert!(false, "fail without an explanation"),
        (_, Some(exp)) => prop_assert!(false, "{} with explanation {:?}", out.result, exp),
        (_, None) => {}
    }
    if let Some(m) = &out.mechanism {
        prop_assert!(
            matches!(
                out.result,
                SpfResult::Pass | SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral
            ),
            "mechanism {:?} with result {}",
            m,
            out.result
        );
        // The matching term as written: one term of a record that parsed.
        let reparsed = Record::parse(&format!("v=spf1 {m}"));
        prop_assert!(
            reparsed.is_ok_and(|r| r.directives.len() == 1),
            "mechanism {:?} is not one directive",
            m
        );
    }
    Ok(())
}

/// The properties of any `Record::parse` outcome: the `record_parser`
/// fuzz target's own check ([`fuzzing::check_record`]), so the two cannot
/// drift apart.
fn check_parse(text: &str) -> Result<(), TestCaseError> {
    fuzzing::check_record(text);
    Ok(())
}

/// The properties of parsing `text` as a macro string in every context and
/// expanding it with `values`: the `macro_expand` fuzz target's check
/// ([`fuzzing::check_macro`]), including that a domain-spec's name is the
/// RFC 7208 §7.3 cut of the whole expansion.
fn check_macro(text: &str, values: &MacroValues<'_>) -> Result<(), TestCaseError> {
    fuzzing::check_macro(text, values);
    Ok(())
}

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

/// Characters weighted towards the ones the grammars care about, with
/// control characters and arbitrary Unicode mixed in.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::char::range('!', '~'),
        3 => prop::sample::select(vec![
            '%', '{', '}', ':', '/', '.', '=', '-', '+', '~', '?', ' ', '0', '9', 'r', 'd', '_',
        ]),
        1 => prop::char::range('\0', '\x1f'),
        1 => Just('\x7f'),
        1 => any::<char>(),
    ]
}

fn chars_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any_char(), 0..max).prop_map(|v| v.into_iter().collect())
}

fn long_label() -> String {
    format!("a:{}.example.com", "x".repeat(70))
}

fn long_domain() -> String {
    format!("include:{}example.com", "abcdefghi.".repeat(30))
}

/// Terms to splice into records: valid and invalid, benign and hostile.
fn term_pool() -> Vec<String> {
    let mut pool: Vec<String> = [
        "include:self.example.net",
        "include:m1.example.net",
        "include:chain0.example.net",
        "include:a.example.com",
        "include:b.example.com",
        "include:void.example.net",
        "include:timeout.example.net",
        "include:cname1.example.net",
        "include:twospf.example.net",
        "include:bad.example.net",
        "include:%{d2}",
        "include:%{o}",
        "redirect=r1.example.net",
        "redirect=c.example.com",
        "redirect=%{d2}",
        "redirect=void.example.net",
        "exp=exp.example.net",
        "exp=%{l}.exp.example.net",
        "exp=void.example.net",
        "a",
        "a/24//64",
        "a:c.example.com/24//64",
        "a:void.example.net",
        "a:empty.example.net",
        "a:slow.example.net",
        "a:cname1.example.net",
        "a:%{h}",
        "mx",
        "mx:mx.example.net",
        "mx:manymx.example.net/16",
        "mx//0",
        "ptr",
        "ptr:example.com",
        "ptr:%{p}",
        "exists:%{ir}.%{v}._spf.%{d2}",
        "exists:%{l1r-}.%{d}",
        "exists:%{p}.%{d}",
        "exists:%{d99999999999}.example.com",
        "exists:%{S}.%{L}.%{O}.example.com",
        "exists:%{h}.%{o}",
        "ip4:192.0.2.0/24",
        "ip4:198.51.100.7",
        "ip6:2001:db8::/32",
        "ip6:::ffff:192.0.2.10",
        "ip4:192.0.2.1/33",
        "ip6:2001:db8::/129",
        "-all",
        "~all",
        "?all",
        "+all",
        "all/8",
        "unknown=%{x}",
        "foo=bar",
        "moo.cow-far_out=%{c}",
        "%{ir}.%{v}._spf.%{d2}",
        "exists:é.example.com",
        "a:ctrl\u{1}.example.com",
        "include:\u{200b}",
        "v=spf1",
        "%",
        "%{",
        ":",
        "/",
        "//",
        "=",
        "a:%{d}%{d}%{d}%{d}%{d}%{d}%{d}%{d}%{d}%{d}%{d}%{d}%{d}%{d}%{d}",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    pool.push(long_label());
    pool.push(long_domain());
    pool
}

/// Realistic records to mutate.
const BASE_RECORDS: [&str; 10] = [
    "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:a.example.com -all",
    "v=spf1 a mx ptr ~all",
    "v=spf1 include:b.example.com include:c.example.com ?all",
    "v=spf1 exists:%{ir}.%{v}._spf.%{d2} -all exp=exp.example.net",
    "v=spf1 redirect=d.example.com",
    "v=spf1 ip4:198.51.100.0/24 include:e.example.com include:f.example.com -all",
    "v=spf1 a:g.example.com/24 mx:a.example.com -all exp=%{l}.exp.example.net",
    "v=spf1 mx:mx.example.net/24//64 a:%{d}/24 -all",
    "v=spf1 -all",
    "v=spf1 ptr:example.com ip4:203.0.113.0/24 include:%{d2} ~all exp=%{l}.exp.example.net",
];

/// One edit of a record.
#[derive(Clone, Debug)]
enum Op {
    InsertChar(Index, char),
    DeleteChar(Index),
    ReplaceChar(Index, char),
    InsertTerm(Index, String),
    ReplaceTerm(Index, String),
    DeleteTerm(Index),
    DuplicateTerm(Index),
}

fn op() -> impl Strategy<Value = Op> {
    let term = prop::sample::select(term_pool());
    prop_oneof![
        1 => (any::<Index>(), any_char()).prop_map(|(i, c)| Op::InsertChar(i, c)),
        1 => any::<Index>().prop_map(Op::DeleteChar),
        1 => (any::<Index>(), any_char()).prop_map(|(i, c)| Op::ReplaceChar(i, c)),
        2 => (any::<Index>(), term.clone()).prop_map(|(i, t)| Op::InsertTerm(i, t)),
        2 => (any::<Index>(), term).prop_map(|(i, t)| Op::ReplaceTerm(i, t)),
        1 => any::<Index>().prop_map(Op::DeleteTerm),
        1 => any::<Index>().prop_map(Op::DuplicateTerm),
    ]
}

fn apply(base: &str, ops: &[Op]) -> String {
    let mut text = base.to_owned();
    for op in ops {
        let mut chars: Vec<char> = text.chars().collect();
        let mut terms: Vec<String> = text.split(' ').map(str::to_owned).collect();
        match op {
            Op::InsertChar(i, c) => {
                chars.insert(i.index(chars.len() + 1), *c);
                text = chars.into_iter().collect();
            }
            Op::DeleteChar(i) if !chars.is_empty() => {
                chars.remove(i.index(chars.len()));
                text = chars.into_iter().collect();
            }
            Op::ReplaceChar(i, c) if !chars.is_empty() => {
                let at = i.index(chars.len());
                chars[at] = *c;
                text = chars.into_iter().collect();
            }
            Op::InsertTerm(i, t) => {
                // Never before the version, so the record stays v=spf1 more often.
                let at = 1 + i.index(terms.len());
                terms.insert(at.min(terms.len()), t.clone());
                text = terms.join(" ");
            }
            Op::ReplaceTerm(i, t) => {
                let at = i.index(terms.len());
                terms[at] = t.clone();
                text = terms.join(" ");
            }
            Op::DeleteTerm(i) if terms.len() > 1 => {
                terms.remove(i.index(terms.len()));
                text = terms.join(" ");
            }
            Op::DuplicateTerm(i) => {
                let at = i.index(terms.len());
                let t = terms[at].clone();
                terms.insert(at, t);
                text = terms.join(" ");
            }
            _ => {}
        }
    }
    text
}

fn mutated_record() -> impl Strategy<Value = String> {
    (
        prop::sample::select(BASE_RECORDS.to_vec()),
        prop::collection::vec(op(), 0..6),
    )
        .prop_map(|(base, ops)| apply(base, &ops))
}

fn term_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(term_pool()), 0..14)
        .prop_map(|terms| format!("v=spf1 {}", terms.join(" ")))
}

/// A record: mostly mutations of realistic ones, some term soup, some noise.
fn any_record() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => mutated_record(),
        2 => term_soup(),
        1 => chars_string(60).prop_map(|s| format!("v=spf1 {s}")),
        1 => any::<String>(),
    ]
}

/// Fragments that make macro strings interesting.
fn macro_text() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        4 => prop::sample::select(vec![
            "%{", "}", "%%", "%_", "%-", "%{ir}", "%{v}", "%{d2}", "%{l1r-}", "%{S}", "%{L}",
            "%{o}", "%{h}", "%{p}", "%{c}", "%{t}", "%{r}", "%{i}", "%{d99999999999}",
            "%{d0}", "%{dr2}", "%{d2r+-.,/_=}", "%{x}", "%{D3R}", "%{s}", "._spf.", ".", "example",
            "com", "-", " ", "é", "\0", "\u{7f}", "%", "{", "%{d", "%{lr-}.lp",
        ])
        .prop_map(str::to_owned),
        1 => any_char().prop_map(String::from),
        1 => Just("a".repeat(70)),
    ];
    prop::collection::vec(fragment, 0..12).prop_map(|v| v.concat())
}

/// Values for the macro letters: realistic, hostile, or arbitrary.
fn value_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "", "example.com", "strong-bad", "mail.example.org", "a.b.c.d.e.f.g.h",
            "~jack&jill=up-a_b3.c", "münchen.example", "....", "-.-+,/_=",
        ])
        .prop_map(str::to_owned),
        1 => Just("ab.".repeat(120)),
        1 => Just("x".repeat(300)),
        1 => Just(format!("{}.example.com", "abcdefghij.".repeat(40))),
        2 => chars_string(40),
        1 => any::<String>(),
    ]
}

#[derive(Clone, Debug)]
struct Values {
    strings: [String; 7],
    ip: IpAddr,
    timestamp: u64,
}

impl Values {
    fn macro_values(&self) -> MacroValues<'_> {
        let [
            sender,
            local_part,
            sender_domain,
            domain,
            helo,
            validated_name,
            receiver,
        ] = &self.strings;
        MacroValues {
            sender,
            local_part,
            sender_domain,
            domain,
            ip: self.ip,
            helo,
            validated_name,
            receiver,
            timestamp: self.timestamp,
        }
    }
}

fn any_values() -> impl Strategy<Value = Values> {
    (
        prop::array::uniform7(value_string()),
        any::<IpAddr>(),
        any::<u64>(),
    )
        .prop_map(|(strings, ip, timestamp)| Values {
            strings,
            ip,
            timestamp,
        })
}

// ---------------------------------------------------------------------------
// The zone
// ---------------------------------------------------------------------------

/// The main client address, with PTR names and `exists` answers in the zone.
const CLIENT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);

/// The names whose records are generated in each case.
const GENERATED: [&str; 8] = [
    "example.com",
    "a.example.com",
    "b.example.com",
    "c.example.com",
    "d.example.com",
    "e.example.com",
    "f.example.com",
    "g.example.com",
];

fn a(ip: [u8; 4]) -> RecordData {
    RecordData::A(Ipv4Addr::from(ip))
}

/// The hostile structures that every generated zone also holds.
fn fixed_zone() -> &'static Zone {
    static ZONE: OnceLock<Zone> = OnceLock::new();
    ZONE.get_or_init(|| {
        let mut z = Zone::new();
        z.add_txt("self.example.net", "v=spf1 include:self.example.net -all");
        z.add_txt("m1.example.net", "v=spf1 include:m2.example.net -all");
        z.add_txt("m2.example.net", "v=spf1 include:m1.example.net ~all");
        z.add_txt("r1.example.net", "v=spf1 redirect=r2.example.net");
        z.add_txt("r2.example.net", "v=spf1 redirect=r1.example.net");
        for i in 0..15 {
            z.add_txt(
                &format!("chain{i}.example.net"),
                &format!("v=spf1 include:chain{}.example.net ~all", i + 1),
            );
        }
        z.add_txt("chain15.example.net", "v=spf1 ip4:192.0.2.0/24 -all");
        // MX answers: the most allowed, and one over.
        for i in 0..10u8 {
            let host = format!("mx{i}.example.net");
            z.add(
                "mx.example.net",
                RecordData::Mx(Mx {
                    preference: u16::from(10 - i),
                    exchange: host.clone(),
                }),
            );
            z.add(&host, a([198, 51, 100, i]));
            z.add(
                &host,
                RecordData::Aaaa(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1)),
            );
        }
        for i in 0..11 {
            z.add(
                "manymx.example.net",
                RecordData::Mx(Mx {
                    preference: 10,
                    exchange: format!("mx{i}.example.net"),
                }),
            );
        }
        // PTR answers with many names, some validating, one past the limit.
        for i in 0..15 {
            let host = format!("h{i}.example.com");
            z.add(
                &reverse_name(IpAddr::V4(CLIENT4)),
                RecordData::Ptr(host.clone()),
            );
            z.add(
                &reverse_name(IpAddr::V6(CLIENT6)),
                RecordData::Ptr(host.clone()),
            );
            if i % 4 == 3 {
                z.add(&host, RecordData::A(CLIENT4));
                z.add(&host, RecordData::Aaaa(CLIENT6));
            } else {
                z.add(&host, a([203, 0, 113, i]));
            }
        }
        z.add(
            &reverse_name(IpAddr::V4(CLIENT4)),
            RecordData::Ptr(format!("{}.example.com", "y".repeat(70))),
        );
        z.add(
            "cname1.example.net",
            RecordData::Cname("cname2.example.net".into()),
        );
        z.add(
            "cname2.example.net",
            RecordData::Cname("cname1.example.net".into()),
        );
        z.add_entry("timeout.example.net", Entry::Timeout);
        z.add_txt("slow.example.net", "v=spf1 a -all");
        z.add_entry("slow.example.net", Entry::Timeout);
        z.add_name("empty.example.net");
        z.add_txt("twospf.example.net", "v=spf1 -all");
        z.add_txt("twospf.example.net", "v=spf1 +all");
        z.add_txt("bad.example.net", "v=spf1 foo -all");
        z.add_txt(
            "exp.example.net",
            "%{c} is not one of %{d}'s \u{7}senders\u{e9} (%{p}, %{i}, %{t}, %{r})",
        );
        z.add_txt("strong-bad.exp.example.net", "%{S} may not use %{O}%_%-");
        // The answers of exists:%{ir}.%{v}._spf.%{d2}.
        z.add("10.2.0.192.in-addr._spf.example.com", a([127, 0, 0, 2]));
        z
    })
}

#[derive(Clone, Debug)]
enum Generated {
    Absent,
    NoRecords,
    Txt(Vec<String>),
}

/// Terms that mostly evaluate without error, pointing at the generated names.
fn benign_term() -> impl Strategy<Value = String> {
    let mut pool: Vec<String> = GENERATED
        .iter()
        .flat_map(|n| {
            [
                format!("include:{n}"),
                format!("redirect={n}"),
                format!("a:{n}/24"),
                format!("mx:{n}//64"),
                format!("exists:%{{l}}.{n}"),
            ]
        })
        .collect();
    pool.extend(
        [
            "ip4:192.0.2.10",
            "ip6:2001:db8::10",
            "ip4:203.0.113.0/24",
            "a",
            "mx",
            "ptr",
            "ptr:example.com",
            "exists:%{ir}.%{v}._spf.%{d2}",
            "exp=exp.example.net",
            "exp=%{l}.exp.example.net",
            "?all",
            "~all",
            "-all",
        ]
        .map(str::to_owned),
    );
    prop::sample::select(pool)
}

/// Records for the generated zone: mostly term-level edits that keep the
/// record valid often enough for evaluation to go deep.
fn zone_record() -> impl Strategy<Value = String> {
    let term = prop_oneof![3 => benign_term(), 1 => prop::sample::select(term_pool())];
    let term_op = prop_oneof![
        3 => (any::<Index>(), term.clone()).prop_map(|(i, t)| Op::InsertTerm(i, t)),
        2 => (any::<Index>(), term.clone()).prop_map(|(i, t)| Op::ReplaceTerm(i, t)),
        1 => any::<Index>().prop_map(Op::DeleteTerm),
        1 => any::<Index>().prop_map(Op::DuplicateTerm),
    ];
    prop_oneof![
        5 => (
            prop::sample::select(BASE_RECORDS.to_vec()),
            prop::collection::vec(term_op, 0..5),
        )
            .prop_map(|(base, ops)| apply(base, &ops)),
        2 => prop::collection::vec(term, 0..12)
            .prop_map(|terms| format!("v=spf1 {}", terms.join(" "))),
        2 => mutated_record(),
        1 => any_record(),
    ]
}

fn generated_name() -> impl Strategy<Value = Generated> {
    prop_oneof![
        1 => Just(Generated::Absent),
        1 => Just(Generated::NoRecords),
        14 => zone_record().prop_map(|r| Generated::Txt(vec![r])),
        1 => (zone_record(), zone_record()).prop_map(|(a, b)| Generated::Txt(vec![a, b])),
        2 => (zone_record(), any_record()).prop_map(|(spf, other)| {
            // One SPF record next to a TXT record that is not one.
            Generated::Txt(vec![spf, format!("google-site-verification={other}")])
        }),
    ]
}

fn build_zone(generated: &[Generated]) -> Zone {
    let mut z = fixed_zone().clone();
    for (name, g) in GENERATED.iter().zip(generated) {
        match g {
            Generated::Absent => {}
            Generated::NoRecords => {
                z.add_name(name);
            }
            Generated::Txt(records) => {
                for r in records {
                    z.add_txt(name, r);
                }
                z.add(name, RecordData::A(CLIENT4));
                z.add(
                    name,
                    RecordData::Mx(Mx {
                        preference: 0,
                        exchange: "mx3.example.net".into(),
                    }),
                );
            }
        }
    }
    z
}

fn client_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        3 => Just(IpAddr::V4(CLIENT4)),
        2 => Just(IpAddr::V6(CLIENT6)),
        1 => Just(IpAddr::V6(CLIENT4.to_ipv6_mapped())),
        1 => Just("198.51.100.3".parse().unwrap()),
        1 => any::<IpAddr>(),
    ]
}

fn domain_name() -> impl Strategy<Value = String> {
    let mut names: Vec<String> = GENERATED.iter().map(|s| (*s).to_owned()).collect();
    names.extend(
        [
            "self.example.net",
            "m1.example.net",
            "r1.example.net",
            "chain0.example.net",
            "chain5.example.net",
            "cname1.example.net",
            "timeout.example.net",
            "slow.example.net",
            "twospf.example.net",
            "bad.example.net",
            "void.example.net",
            "empty.example.net",
            "example.com.",
            "EXAMPLE.COM",
            "",
            "localhost",
            "192.0.2.1",
            "[192.0.2.1]",
            "a..example.com",
        ]
        .map(str::to_owned),
    );
    names.push(long_domain());
    prop_oneof![
        8 => prop::sample::select(names),
        1 => chars_string(20),
    ]
}

fn mail_from() -> impl Strategy<Value = String> {
    let local = prop_oneof![
        3 => prop::sample::select(vec!["strong-bad", "alice", "", "a.b-c+d", "\"quoted@\"", "é"])
            .prop_map(str::to_owned),
        1 => Just("l.".repeat(40)),
        1 => chars_string(12),
    ];
    let domain = prop_oneof![
        4 => prop::sample::select(GENERATED.to_vec()).prop_map(str::to_owned),
        2 => domain_name(),
    ];
    let form = prop_oneof![8 => 0..2u8, 1 => 2..5u8];
    (local, domain, form).prop_map(|(l, d, form)| match form {
        0 => format!("<{l}@{d}>"),
        1 => format!("{l}@{d}"),
        2 => d,
        3 => "<>".to_owned(),
        _ => String::new(),
    })
}

fn options() -> impl Strategy<Value = Options> {
    let limits = prop_oneof![
        3 => Just((10u32, 2u32, 10usize)),
        1 => (0..13u32, 0..5u32, 0..13usize),
    ];
    (limits, any::<bool>()).prop_map(|((terms, voids, names), trace)| Options {
        receiver: "mx.example.org".to_owned(),
        trace,
        max_dns_terms: terms,
        max_void_lookups: voids,
        max_names: names,
        timestamp: Some(1_700_000_000),
    })
}

fn default_options() -> Options {
    Options {
        receiver: "mx.example.org".to_owned(),
        timestamp: Some(1_700_000_000),
        ..Options::default()
    }
}

/// Evaluates `mail_from` for `ip` over a zone with the given records.
fn check(zone: Zone, ip: IpAddr, mail_from: &str, helo: &str) -> SpfOutput {
    let spf = Spf::new(zone, default_options());
    block_on(spf.check_mailfrom(ip, mail_from, helo))
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// A fixed number of cases; failures are not persisted to a file (a
/// failure found here becomes a named regression test instead).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn random_text_parses_or_errors_at_a_term_and_round_trips(
        text in prop_oneof![
            chars_string(80),
            chars_string(80).prop_map(|s| format!("v=spf1 {s}")),
            any::<String>(),
        ]
    ) {
        check_parse(&text)?;
    }

    #[test]
    fn mutated_records_parse_or_error_at_a_term_and_round_trip(text in any_record()) {
        check_parse(&text)?;
    }

    #[test]
    fn macro_strings_parse_consistently_and_expand_within_limits(
        text in prop_oneof![3 => macro_text(), 1 => chars_string(40), 1 => any::<String>()],
        values in any_values(),
    ) {
        check_macro(&text, &values.macro_values())?;
    }
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn evaluation_over_generated_zones_completes_within_the_limits(
        generated in prop::collection::vec(generated_name(), GENERATED.len()),
        ip in client_ip(),
        mail_from in mail_from(),
        helo in domain_name(),
        opts in options(),
    ) {
        let zone = build_zone(&generated);
        let spf = Spf::new(zone, opts.clone());
        let first = poll_once(spf.check_mailfrom(ip, &mail_from, &helo));
        prop_assert!(first.is_some(), "check_mailfrom was not ready on its first poll");
        let first = first.unwrap();
        check_output(&first, &opts)?;
        // Deterministic: the same inputs give the same output.
        let second = poll_once(spf.check_mailfrom(ip, &mail_from, &helo));
        prop_assert_eq!(Some(&first), second.as_ref());

        let helo_out = poll_once(spf.check_helo(ip, &helo));
        prop_assert!(helo_out.is_some(), "check_helo was not ready on its first poll");
        check_output(&helo_out.unwrap(), &opts)?;
    }
}

proptest! {
    #![proptest_config(config(200))]

    /// Every DNS-querying term counts once, whatever its kind, and the
    /// eleventh one is a permerror before it queries anything.
    #[test]
    fn dns_term_limit_is_exact(kinds in prop::collection::vec(0..4usize, 0..16)) {
        let mut z = Zone::new();
        z.add("h.example.com", a([203, 0, 113, 1]));
        z.add("mxhost.example.com", RecordData::Mx(Mx {
            preference: 10,
            exchange: "mx1.example.com".into(),
        }));
        z.add("mx1.example.com", a([203, 0, 113, 2]));
        z.add_txt("neutral.example.com", "v=spf1");
        z.add(&reverse_name(IpAddr::V4(CLIENT4)), RecordData::Ptr("h.example.com".into()));
        // (term, queries it makes when it runs)
        let terms = [
            ("a:h.example.com", 1),
            ("mx:mxhost.example.com", 2),
            ("include:neutral.example.com", 1),
            ("ptr:example.org", 1),
        ];
        let record: Vec<&str> = kinds.iter().map(|&k| terms[k].0).collect();
        z.add_txt("example.com", &format!("v=spf1 {} -all", record.join(" ")));
        let out = check(z, IpAddr::V4(CLIENT4), "x@example.com", "h.example.com");
        let ran = kinds.len().min(10);
        let queries: u32 = 1 + kinds[..ran].iter().map(|&k| terms[k].1).sum::<u32>();
        prop_assert_eq!(out.queries, queries);
        if kinds.len() <= 10 {
            prop_assert_eq!(out.result, SpfResult::Fail);
            prop_assert_eq!(out.lookups as usize, kinds.len());
        } else {
            prop_assert_eq!(out.result, SpfResult::PermError);
            prop_assert_eq!(out.lookups, 11);
        }
    }

    /// A chain of includes passes through 10 levels and is a permerror at 11.
    #[test]
    fn include_chain_depth_is_limited_to_ten(depth in 0..16usize) {
        let mut z = Zone::new();
        for i in 0..depth {
            z.add_txt(
                &format!("l{i}.example.com"),
                &format!("v=spf1 include:l{}.example.com -all", i + 1),
            );
        }
        z.add_txt(&format!("l{depth}.example.com"), "v=spf1 +all");
        let out = check(z, IpAddr::V4(CLIENT4), "x@l0.example.com", "h.example.com");
        if depth <= 10 {
            prop_assert_eq!(out.result, SpfResult::Pass);
            prop_assert_eq!(out.lookups as usize, depth);
            prop_assert_eq!(out.queries as usize, depth + 1);
        } else {
            prop_assert_eq!(out.result, SpfResult::PermError);
            prop_assert_eq!(out.lookups, 11);
            prop_assert_eq!(out.queries, 11);
        }
    }

    /// The third void lookup is a permerror; NXDOMAIN and NODATA both count.
    #[test]
    fn void_lookup_limit_is_exact(voids in prop::collection::vec(any::<bool>(), 0..7)) {
        let mut z = Zone::new();
        let terms: Vec<String> = voids
            .iter()
            .enumerate()
            .map(|(i, &nodata)| {
                let name = format!("v{i}.example.com");
                if nodata {
                    z.add_name(&name);
                }
                format!("a:{name}")
            })
            .collect();
        z.add_txt("example.com", &format!("v=spf1 {} -all", terms.join(" ")));
        let out = check(z, IpAddr::V4(CLIENT4), "x@example.com", "h.example.com");
        if voids.len() <= 2 {
            prop_assert_eq!(out.result, SpfResult::Fail);
            prop_assert_eq!(out.void_lookups as usize, voids.len());
        } else {
            prop_assert_eq!(out.result, SpfResult::PermError);
            prop_assert_eq!(out.void_lookups, 3);
            prop_assert_eq!(out.lookups, 3);
        }
    }

    /// An MX answer with more than 10 names is a permerror before any
    /// address lookup; up to 10 are each looked up.
    #[test]
    fn mx_answers_over_ten_names_are_a_permerror(count in 0..15u8) {
        let mut z = Zone::new();
        z.add_name("mxs.example.com");
        for i in 0..count {
            let host = format!("mx{i}.example.com");
            z.add("mxs.example.com", RecordData::Mx(Mx { preference: 5, exchange: host.clone() }));
            z.add(&host, a([203, 0, 113, i]));
        }
        z.add_txt("example.com", "v=spf1 mx:mxs.example.com -all");
        let out = check(z, IpAddr::V4(CLIENT4), "x@example.com", "h.example.com");
        if count <= 10 {
            prop_assert_eq!(out.result, SpfResult::Fail);
            prop_assert_eq!(out.queries, 2 + u32::from(count));
            prop_assert_eq!(out.void_lookups, u32::from(count == 0));
        } else {
            prop_assert_eq!(out.result, SpfResult::PermError);
            prop_assert_eq!(out.queries, 2);
        }
    }

    /// ptr looks at the first 10 PTR names only.
    #[test]
    fn ptr_considers_only_the_first_ten_names(count in 0..16u8, good in 0..16u8) {
        let mut z = Zone::new();
        for i in 0..count {
            let host = format!("p{i}.example.com");
            z.add(&reverse_name(IpAddr::V4(CLIENT4)), RecordData::Ptr(host.clone()));
            z.add(&host, if i == good { RecordData::A(CLIENT4) } else { a([203, 0, 113, i]) });
        }
        if count == 0 {
            z.add_name(&reverse_name(IpAddr::V4(CLIENT4)));
        }
        z.add_txt("example.com", "v=spf1 ptr:example.com -all");
        let out = check(z, IpAddr::V4(CLIENT4), "x@example.com", "h.example.com");
        let expected = if good < count.min(10) { SpfResult::Pass } else { SpfResult::Fail };
        prop_assert_eq!(out.result, expected);
        prop_assert!(out.queries <= 2 + 10);
    }

    /// A record of ip4/ip6 terms matches exactly when a network holds the
    /// client, at the first such term, without any DNS query beyond the TXT.
    #[test]
    fn ip_lists_match_exactly_the_networks_that_hold_the_client(
        nets in prop::collection::vec(
            prop_oneof![
                (any::<[u8; 4]>(), 0..=32u8).prop_map(|(a, l)| (IpAddr::from(a), l)),
                (any::<[u8; 16]>(), 0..=128u8).prop_map(|(a, l)| (IpAddr::from(a), l)),
                (Just(IpAddr::V4(CLIENT4)), 0..=32u8),
                (Just(IpAddr::V6(CLIENT6)), 0..=128u8),
            ],
            0..20,
        ),
        ip in prop_oneof![
            Just(IpAddr::V4(CLIENT4)),
            Just(IpAddr::V6(CLIENT6)),
            any::<IpAddr>(),
        ],
    ) {
        let terms: Vec<String> = nets
            .iter()
            .map(|(net, len)| match net {
                IpAddr::V4(v4) => format!("ip4:{v4}/{len}"),
                IpAddr::V6(v6) => format!("ip6:{v6}/{len}"),
            })
            .collect();
        let mut z = Zone::new();
        z.add_txt("example.com", &format!("v=spf1 {} -all", terms.join(" ")));
        let out = check(z, ip, "x@example.com", "h.example.com");
        // The engine treats an IPv4-mapped IPv6 client as IPv4 (RFC 7208 §5).
        let client = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let holds = |net: &IpAddr, len: u8| match (client, net) {
            (IpAddr::V4(c), IpAddr::V4(n)) => {
                len == 0 || u32::from(c) >> (32 - u32::from(len)) == u32::from(*n) >> (32 - u32::from(len))
            }
            (IpAddr::V6(c), IpAddr::V6(n)) => {
                len == 0
                    || u128::from(c) >> (128 - u32::from(len)) == u128::from(*n) >> (128 - u32::from(len))
            }
            _ => false,
        };
        let first = nets.iter().position(|(net, len)| holds(net, *len));
        match first {
            Some(i) => {
                prop_assert_eq!(out.result, SpfResult::Pass);
                prop_assert_eq!(out.mechanism.as_deref(), Some(terms[i].as_str()));
            }
            None => {
                prop_assert_eq!(out.result, SpfResult::Fail);
                prop_assert_eq!(out.mechanism.as_deref(), Some("-all"));
            }
        }
        prop_assert_eq!(out.queries, 1);
        prop_assert_eq!(out.lookups, 0);
    }
}

// ---------------------------------------------------------------------------
// Fixed hostile structures
// ---------------------------------------------------------------------------

#[test]
fn self_include_is_a_permerror_at_the_term_limit() {
    let out = check(
        fixed_zone().clone(),
        IpAddr::V4(CLIENT4),
        "x@self.example.net",
        "h.example.com",
    );
    assert_eq!(out.result, SpfResult::PermError);
    assert_eq!(out.lookups, 11);
    assert_eq!(out.queries, 11);
    assert!(out.problem.unwrap().contains("more than 10 DNS lookups"));
}

#[test]
fn mutual_includes_are_a_permerror_at_the_term_limit() {
    let out = check(
        fixed_zone().clone(),
        IpAddr::V4(CLIENT4),
        "x@m1.example.net",
        "h.example.com",
    );
    assert_eq!(out.result, SpfResult::PermError);
    assert_eq!(out.lookups, 11);
}

#[test]
fn redirect_loop_is_a_permerror_at_the_term_limit() {
    let out = check(
        fixed_zone().clone(),
        IpAddr::V4(CLIENT4),
        "x@r1.example.net",
        "h.example.com",
    );
    assert_eq!(out.result, SpfResult::PermError);
    assert_eq!(out.lookups, 11);
}

#[test]
fn cname_loop_is_a_temperror() {
    let mut z = fixed_zone().clone();
    z.add_txt("example.org", "v=spf1 a:cname1.example.net -all");
    let out = check(z, IpAddr::V4(CLIENT4), "x@example.org", "h.example.com");
    assert_eq!(out.result, SpfResult::TempError);
    assert!(out.problem.unwrap().contains("cname1.example.net"));
}

#[test]
fn timeout_is_a_temperror_that_says_so() {
    let mut z = fixed_zone().clone();
    z.add_txt("example.org", "v=spf1 include:timeout.example.net -all");
    let out = check(z, IpAddr::V4(CLIENT4), "x@example.org", "h.example.com");
    assert_eq!(out.result, SpfResult::TempError);
    assert!(out.problem.unwrap().contains("timeout"));
    // The suite's convention: types listed before the marker still answer.
    let out = check(
        fixed_zone().clone(),
        IpAddr::V4(CLIENT4),
        "x@slow.example.net",
        "h.example.com",
    );
    assert_eq!(out.result, SpfResult::TempError);
}

#[test]
fn explanation_from_the_domain_is_stripped_to_printable_ascii() {
    let mut z = fixed_zone().clone();
    z.add_txt("example.org", "v=spf1 -all exp=exp.example.net");
    let out = check(z, IpAddr::V4(CLIENT4), "x@example.org", "h.example.com");
    assert_eq!(out.result, SpfResult::Fail);
    let exp = out.explanation.unwrap();
    // The TXT record holds a BEL and a non-ASCII letter, so it does not
    // parse as an explanation string, and the default is used.
    assert!(is_printable_ascii(&exp.text), "{:?}", exp.text);
    assert!(!exp.from_domain);
}

#[test]
fn huge_expansions_are_truncated_to_253_characters() {
    let mut z = Zone::new();
    let record = format!("v=spf1 exists:{}.example.com -all", "%{l}".repeat(60));
    z.add_txt("example.com", &record);
    let local = format!("{}a", "a.".repeat(31));
    let spf = Spf::new(
        z,
        Options {
            trace: true,
            ..default_options()
        },
    );
    let out = block_on(spf.check_mailfrom(
        IpAddr::V4(CLIENT4),
        &format!("{local}@example.com"),
        "h.example.com",
    ));
    assert_eq!(out.result, SpfResult::Fail);
    let queried = &out.trace[1].name;
    assert!(queried.len() <= 253, "{}", queried.len());
    assert!(queried.ends_with(".example.com"));
}

#[test]
fn query_bound_is_reached_by_a_worst_case_record() {
    // Ten mx terms of ten exchanges each, a %{p} over ten PTR names none of
    // which validates, and an explanation: the bound of max_queries is
    // attained, not just respected.
    let mut z = Zone::new();
    for i in 0..10u8 {
        let mx = format!("mx{i}.example.net");
        z.add(
            "mx.example.net",
            RecordData::Mx(Mx {
                preference: 10,
                exchange: mx.clone(),
            }),
        );
        z.add(&mx, a([198, 51, 100, i]));
        let host = format!("h{i}.example.com");
        z.add(
            &reverse_name(IpAddr::V4(CLIENT4)),
            RecordData::Ptr(host.clone()),
        );
        z.add(&host, a([203, 0, 113, i]));
    }
    let record = format!(
        "v=spf1 {} -all exp=%{{p}}.example.org",
        ["mx:mx.example.net"; 10].join(" ")
    );
    z.add_txt("example.org", &record);
    let spf = Spf::new(
        z,
        Options {
            trace: true,
            ..default_options()
        },
    );
    let out = block_on(spf.check_mailfrom(IpAddr::V4(CLIENT4), "x@example.org", "h.example.com"));
    assert_eq!(out.result, SpfResult::Fail);
    assert_eq!(out.lookups, 10);
    // 1 TXT + 10 × (1 MX + 10 A) + (1 PTR + 10 A for %{p}) + 1 TXT for exp.
    assert_eq!(out.queries, max_queries(spf.options()), "{:#?}", out.trace);
    assert_eq!(out.queries, 123);
}

/// Regression: `truncate_domain` used to remove one label per pass,
/// quadratic in the number of labels (a 32 KB record of `%{l}` macros took
/// over a second). The expansion now keeps only the tail it needs and cuts
/// once; the result must still be exactly the old one: whole labels removed
/// from the left until at most 253 characters remain.
#[test]
fn huge_expansion_is_cut_to_the_same_labels_quadratic_truncation_regression() {
    let local = format!("{}a", "a.".repeat(31));
    let values = MacroValues {
        sender: "x@example.com",
        local_part: &local,
        sender_domain: "example.com",
        domain: "example.com",
        ip: IpAddr::V4(CLIENT4),
        helo: "h.example.com",
        validated_name: "unknown",
        receiver: "mx.example.org",
        timestamp: 0,
    };
    for n in [1, 5, 100, 8_000] {
        let spec = MacroString::parse(
            &format!("{}.example.com", "%{l}".repeat(n)),
            MacroContext::DomainSpec,
        )
        .unwrap();
        // The old algorithm, label by label, on the full expansion.
        let mut expected = format!("{}.example.com", local.repeat(n));
        while expected.len() > 253 {
            let dot = expected.find('.').unwrap();
            expected.drain(..=dot);
        }
        assert_eq!(spec.expand_domain(&values), expected, "n = {n}");
    }
}
