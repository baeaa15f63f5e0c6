//! Criterion benchmarks of the SPF engine: record parse plus check_host
//! over the in-memory zone, for realistic records.
//!
//! The zone's futures are always ready, so each evaluation is driven by a
//! single poll with a no-op waker: the figures are the engine's own cost
//! (parsing every record it fetches, macro expansion, matching), with no
//! DNS latency. Run with `cargo bench -p tollgate-spf`; see
//! docs/performance.md for the figures.

use std::hint::black_box;
use std::net::IpAddr;
use tollgate_dns::memory::block_on;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate_dns::memory::{RecordData, Zone};
use tollgate_spf::{Options, Record, Spf, SpfResult};

/// Polls a future once; the in-memory zone answers at once.
/// Twenty ip4/ip6 terms; only the last holds 192.0.2.0/24.
fn ip_list() -> String {
    let mut terms = Vec::new();
    for i in 0..10 {
        terms.push(format!("ip4:198.51.100.{}/29", i * 8));
        terms.push(format!("ip6:2001:db8:{i:x}::/48"));
    }
    terms.pop();
    terms.push("ip4:192.0.2.0/24".to_owned());
    format!("v=spf1 {} -all", terms.join(" "))
}

fn zone() -> Zone {
    let mut z = Zone::new();
    z.add_txt("list.example.com", &ip_list());
    // A 3-deep include chain.
    z.add_txt("chain.example.com", "v=spf1 include:l1.example.com -all");
    z.add_txt("l1.example.com", "v=spf1 include:l2.example.com -all");
    z.add_txt("l2.example.com", "v=spf1 include:l3.example.com -all");
    z.add_txt("l3.example.com", "v=spf1 ip4:192.0.2.0/24 -all");
    // A macro-heavy exists.
    z.add_txt(
        "macro.example.com",
        "v=spf1 exists:%{ir}.%{l1r-}.%{d2}._spf.example.com -all",
    );
    z.add(
        "10.2.0.192.strong.example.com._spf.example.com",
        RecordData::A("127.0.0.2".parse().unwrap()),
    );
    // A redirect.
    z.add_txt("redirect.example.com", "v=spf1 redirect=_spf.example.com");
    z.add_txt(
        "_spf.example.com",
        "v=spf1 ip4:198.51.100.0/24 ip6:2001:db8::/32 ip4:192.0.2.0/24 -all",
    );
    z
}

/// A long record: 18 directives and 3 modifiers, 445 characters (one TXT
/// character-string holds at most 255; longer records are split into
/// several strings, which the lookup concatenates).
const LONG_RECORD: &str = "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 ip4:203.0.113.0/24 \
    ip6:2001:db8::/32 ip6:2001:db8:1::/48 a a:mail.example.com/24//64 mx mx:example.com/28 \
    include:_spf.example.com include:_spf1.example.test include:_spf2.example.test \
    exists:%{ir}.%{v}._spf.%{d2} exists:%{l1r-}.%{d}._verify.example.com ptr:example.com \
    ?ip4:192.0.2.128/25 ~ip6:2001:db8:ffff::/48 -ip4:203.0.113.7 redirect=_spf.example.com \
    exp=explain._spf.%{d} note=%{o}.example.test";

fn bench(c: &mut Criterion) {
    let spf = Spf::new(
        zone(),
        Options {
            receiver: "mx.example.net".to_owned(),
            timestamp: Some(1_700_000_000),
            ..Options::default()
        },
    );
    let inside: IpAddr = "192.0.2.10".parse().unwrap();
    let outside: IpAddr = "203.0.113.5".parse().unwrap();
    let helo = "mail.example.com";

    let cases: [(&str, IpAddr, &str, SpfResult); 5] = [
        (
            "ip_list_20_match_last",
            inside,
            "alice@list.example.com",
            SpfResult::Pass,
        ),
        (
            "ip_list_20_no_match",
            outside,
            "alice@list.example.com",
            SpfResult::Fail,
        ),
        (
            "include_chain_3",
            inside,
            "alice@chain.example.com",
            SpfResult::Pass,
        ),
        (
            "exists_macros",
            inside,
            "strong-bad@macro.example.com",
            SpfResult::Pass,
        ),
        (
            "redirect",
            inside,
            "alice@redirect.example.com",
            SpfResult::Pass,
        ),
    ];

    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(1));
    for (name, ip, sender, expected) in cases {
        let out = block_on(spf.check_mailfrom(ip, sender, helo));
        assert_eq!(out.result, expected, "{name}: {out:?}");
        group.bench_function(name, |b| {
            b.iter(|| block_on(spf.check_mailfrom(black_box(ip), black_box(sender), helo)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));
    let parsed = Record::parse(LONG_RECORD).expect("the long record parses");
    assert_eq!(parsed.directives.len(), 18);
    assert_eq!(LONG_RECORD.len(), 445);
    group.bench_function("long_record", |b| {
        b.iter(|| Record::parse(black_box(LONG_RECORD)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
