//! Long macro expansions in domain-specs (RFC 7208 §7.3): when an expanded
//! domain-spec is longer than 253 octets, labels are removed from the left,
//! so the right-hand part, which the record's owner wrote, is what gets
//! queried.

use std::net::{IpAddr, Ipv4Addr};
use tollgate_dns::memory::block_on;

use proptest::prelude::*;
use tollgate_dns::memory::{RecordData, Zone};
use tollgate_spf::{Options, Spf, SpfOutput, SpfResult, fuzzing};

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

fn check(zone: Zone, mail_from: &str) -> SpfOutput {
    let spf = Spf::new(
        zone,
        Options {
            trace: true,
            timestamp: Some(1_700_000_000),
            ..Options::default()
        },
    );
    block_on(spf.check_mailfrom(IpAddr::V4(CLIENT), mail_from, "h.example.com"))
}

/// Regression (issue 14, item 1): the evaluator expanded a domain-spec as
/// text, which keeps the first 4,096 bytes, and cut that head to 253. A
/// local part of 4,078 bytes of `b.` labels, then `mail.attacker.test`,
/// then 1,000 more bytes, made the `exists` query go to
/// `…b.b.mail.attacker.test`, a name the attacker controls: `pass`. The
/// tail of the expansion is `….x.x._spf.macro.test`, under the owner's name.
#[test]
fn long_local_part_cannot_move_exists_query_to_attacker_domain_head_truncation_bypass() {
    let local = format!(
        "{}mail.attacker.test{}",
        "b.".repeat(2039),
        ".x".repeat(500)
    );
    let mut zone = Zone::new();
    zone.add_txt("macro.test", "v=spf1 exists:%{l}._spf.macro.test -all");
    // What the buggy engine queried: the head of the expansion, cut to 253.
    let head = format!("{}mail.attacker.test", "b.".repeat(117));
    assert!(head.len() <= 253 && head.len() > 250);
    zone.add(&head, RecordData::A(Ipv4Addr::new(203, 0, 113, 1)));
    // Every shorter cut of the head too, whatever label the cut lands on.
    for skip in 1..4 {
        zone.add(
            &head[2 * skip..],
            RecordData::A(Ipv4Addr::new(203, 0, 113, 1)),
        );
    }
    let out = check(zone, &format!("{local}@macro.test"));
    assert_eq!(out.result, SpfResult::Fail, "{:#?}", out.trace);
    let queried = &out.trace[1].name;
    assert!(queried.len() <= 253, "{} octets", queried.len());
    assert!(queried.ends_with(".x.x._spf.macro.test"), "{queried}");
    let full = format!("{local}._spf.macro.test");
    assert!(full.ends_with(&format!(".{queried}")));
}

/// The same record with a short local part: the owner's answer decides.
#[test]
fn short_local_part_queries_the_whole_expansion() {
    let mut zone = Zone::new();
    zone.add_txt("macro.test", "v=spf1 exists:%{l}._spf.macro.test -all");
    zone.add(
        "alice._spf.macro.test",
        RecordData::A(Ipv4Addr::new(127, 0, 0, 2)),
    );
    assert_eq!(
        check(zone.clone(), "alice@macro.test").result,
        SpfResult::Pass
    );
    assert_eq!(check(zone, "bob@macro.test").result, SpfResult::Fail);
}

/// Regression (issue 14, item 14): the `macro_expand` fuzz target failed
/// in under a minute on a 560-byte string of repeated `%{ir}` macros. Its
/// reference was the text expansion, which keeps the head (4,096 bytes),
/// and the evaluator used that head for names. Both the name cut and the
/// name the evaluator queries must be the tail of the whole expansion.
#[test]
fn repeated_ir_macros_query_the_tail_of_the_whole_expansion_fuzz_regression() {
    let spec = format!("{}.example.com", "%{ir}.".repeat(93).trim_end_matches('.'));
    assert!(spec.len() >= 560);
    for ip in ["2001:db8::cb01", "192.0.2.3"] {
        let ip: IpAddr = ip.parse().unwrap();
        fuzzing::check_exists_query(&spec, "strong-bad", ip);
        let mut input = spec.clone().into_bytes();
        input.extend_from_slice(b"\nstrong-bad");
        fuzzing::macro_expand(&input);
    }
}

/// Domain-spec texts: macros that carry the sender's values, literals, and
/// the owner's suffix.
fn spec_text() -> impl Strategy<Value = String> {
    let fragment = prop::sample::select(vec![
        "%{l}", "%{L}", "%{s}", "%{o}", "%{d}", "%{d2}", "%{h}", "%{ir}", "%{i}", "%{v}",
        "%{l1r-}", "%{lr}", "%{l-}", "%{p}", "%{s+}", ".", "._spf", "x", "%%", "%-", "%_",
    ]);
    (prop::collection::vec(fragment, 1..16), prop::bool::ANY).prop_map(|(parts, suffix)| {
        let mut text = parts.concat();
        if suffix {
            text.push_str("._spf.macro.test");
        }
        text
    })
}

/// Local parts, long ones made of labels of every length, some hostile.
fn local_part() -> impl Strategy<Value = String> {
    let label = prop::sample::select(vec![
        "b",
        "x",
        "ab",
        "mail",
        "attacker",
        "test",
        "",
        "a-b",
        "%",
        "\\",
        "@",
        "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01",
        "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz012",
    ]);
    prop_oneof![
        1 => "[a-z.-]{0,20}",
        3 => prop::collection::vec(label, 0..1500).prop_map(|v| v.join(".")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    /// RFC 7208 §7.3: whatever the expansion, the name the evaluator
    /// queries is a cut of the whole expansion at a label boundary that
    /// keeps its right-hand end, the longest such cut of at most 253
    /// octets.
    #[test]
    fn queried_name_is_the_left_cut_of_the_whole_expansion(
        spec in spec_text(),
        local in local_part(),
        v6 in prop::bool::ANY,
    ) {
        let ip: IpAddr = if v6 { "2001:db8::cb01".parse().unwrap() } else { IpAddr::V4(CLIENT) };
        fuzzing::check_exists_query(&spec, &local, ip);
    }
}
