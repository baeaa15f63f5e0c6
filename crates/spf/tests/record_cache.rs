//! Parsed records shared between evaluations ([`RecordCache`]): the
//! result follows the record in DNS, whichever evaluation parsed first.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use tollgate_dns::memory::{Zone, block_on};
use tollgate_spf::{Options, RecordCache, Spf, SpfResult};

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));

fn check(zone: Zone, records: &Arc<RecordCache>) -> SpfResult {
    let spf = Spf::new(zone, Options::default()).with_record_cache(Arc::clone(records));
    block_on(spf.check_mailfrom(CLIENT, "alice@example.com", "mx.example.com")).result
}

fn zone(record: &str) -> Zone {
    let mut zone = Zone::new();
    zone.add_txt("example.com", record);
    zone
}

#[test]
fn a_record_changed_in_dns_is_evaluated_as_it_now_reads() {
    let records = Arc::new(RecordCache::new(64));
    let before = zone("v=spf1 ip4:192.0.2.0/24 -all");
    let after = zone("v=spf1 ip4:198.51.100.0/24 -all");
    assert_eq!(check(before.clone(), &records), SpfResult::Pass);
    assert_eq!(check(after, &records), SpfResult::Fail);
    assert_eq!(check(before, &records), SpfResult::Pass);
    assert_eq!(records.len(), 2);
}

#[test]
fn shared_records_give_the_same_results_as_parsing_each_time() {
    let records = Arc::new(RecordCache::new(64));
    let mut zone = zone("v=spf1 include:_spf.example.net ~all");
    zone.add_txt("_spf.example.net", "v=spf1 ip4:203.0.113.0/24 -all");
    for ip in ["192.0.2.10", "203.0.113.5", "2001:db8::1"] {
        let ip: IpAddr = ip.parse().unwrap();
        let plain = Spf::new(zone.clone(), Options::default());
        let shared =
            Spf::new(zone.clone(), Options::default()).with_record_cache(Arc::clone(&records));
        for _ in 0..2 {
            let want = block_on(plain.check_mailfrom(ip, "bob@example.com", "mx.example.com"));
            let got = block_on(shared.check_mailfrom(ip, "bob@example.com", "mx.example.com"));
            assert_eq!(got, want, "{ip}");
        }
    }
    assert_eq!(records.len(), 2);
}

/// The permerror names the record first, then the term: the old wording
/// ("…: invalid IPv4 address of the record at example.com") read as if the
/// address belonged to the record's owner.
#[test]
fn a_broken_record_is_named_before_its_bad_term() {
    let spf = Spf::new(zone("v=spf1 ip4:192.0.2 -all"), Options::default());
    let out = block_on(spf.check_mailfrom(CLIENT, "alice@example.com", "mx.example.com"));
    assert_eq!(out.result, SpfResult::PermError);
    assert_eq!(
        out.problem.as_deref(),
        Some(
            "the SPF record at example.com has a syntax error in term 1 \"ip4:192.0.2\": \
             invalid IPv4 address"
        )
    );
}

#[test]
fn a_broken_record_stays_a_permerror() {
    let records = Arc::new(RecordCache::new(64));
    for _ in 0..2 {
        assert_eq!(
            check(zone("v=spf1 ip4:192.0.2 -all"), &records),
            SpfResult::PermError
        );
    }
    assert!(records.is_empty());
}
