//! The dnsbl check over real DNS packets: the hickory adapter asking a
//! testdns server on 127.0.0.1 that serves a fake block list and allow list.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use tollgate_checks::stage_checks::dnsbl;
use tollgate_checks::{DnsList, ListHit, ListKind, Outcome};
use tollgate_dns::memory::{RecordData, RecordType, Zone};
use tollgate_dns::{HickoryLookup, Lookup, LookupResult, Mx, ResolverOptions};
use tollgate_testdns::{Rcode, TestDns, suite::parse_zone};

/// bl.example.test lists 192.0.2.7 (with a reason) and 2001:db8::7, and
/// refuses the query for 192.0.2.9; slow.example.test never answers for
/// 192.0.2.7; wl.example.test allows 192.0.2.8, which bl.example.test
/// also lists.
const ZONE: &str = r#"
7.2.0.192.bl.example.test:
  - A: 127.0.0.2
  - TXT: "listed for spam, see https://bl.example.test/lookup?ip=192.0.2.7"
8.2.0.192.bl.example.test:
  - A: 127.0.0.4
9.2.0.192.bl.example.test:
  - A: 127.255.255.254
7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example.test:
  - A: 127.0.0.3
  - TXT: "IPv6 listing"
7.2.0.192.slow.example.test:
  - TIMEOUT
8.2.0.192.wl.example.test:
  - A: 127.0.10.1
  - TXT: "well-known sender"
7.2.0.192.parked.example.test:
  - A: 198.51.100.80
"#;

async fn setup() -> (TestDns, HickoryLookup) {
    let dns = TestDns::start(parse_zone(ZONE).unwrap()).await.unwrap();
    let lookup = HickoryLookup::new(ResolverOptions {
        nameservers: Some(vec![dns.addr()]),
        timeout: Duration::from_millis(300),
        attempts: 1,
        cache_size: 0,
    })
    .unwrap();
    (dns, lookup)
}

fn list(zone: &str, kind: ListKind) -> DnsList {
    DnsList {
        zone: zone.to_owned(),
        kind,
        codes: None,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn listed_client_is_listed_with_the_txt_reason() {
    let (dns, lookup) = setup().await;
    let lists = [list("bl.example.test", ListKind::Block)];
    let found = dnsbl(&lookup, ip("192.0.2.7"), &lists).await;
    assert_eq!(found.outcome, Outcome::Listed);
    assert_eq!(
        found.detail,
        "192.0.2.7 is listed by bl.example.test (127.0.0.2): \"listed for spam, see https://bl.example.test/lookup?ip=192.0.2.7\""
    );
    assert_eq!(
        found.hits,
        [ListHit {
            zone: "bl.example.test".into(),
            kind: ListKind::Block,
            code: Ipv4Addr::new(127, 0, 0, 2),
            reason: Some("listed for spam, see https://bl.example.test/lookup?ip=192.0.2.7".into()),
        }]
    );
    // One A query, and one TXT query because it is listed.
    let name = "7.2.0.192.bl.example.test";
    assert_eq!(dns.query_count_for(name, RecordType::A), 1);
    assert_eq!(dns.query_count_for(name, RecordType::Txt), 1);
}

#[tokio::test]
async fn unlisted_client_passes_without_a_txt_query() {
    let (dns, lookup) = setup().await;
    let lists = [list("bl.example.test", ListKind::Block)];
    let found = dnsbl(&lookup, ip("192.0.2.10"), &lists).await;
    assert_eq!(found.outcome, Outcome::Pass);
    assert_eq!(
        found.detail,
        "192.0.2.10 is not on the block list bl.example.test"
    );
    assert!(found.hits.is_empty());
    assert_eq!(dns.query_count(), 1);
}

#[tokio::test]
async fn configured_codes_leave_other_answers_unlisted() {
    let (_dns, lookup) = setup().await;
    let lists = [DnsList {
        codes: Some(vec![Ipv4Addr::new(127, 0, 0, 2)]),
        ..list("bl.example.test", ListKind::Block)
    }];
    // 192.0.2.8 answers 127.0.0.4, which is not configured.
    let found = dnsbl(&lookup, ip("192.0.2.8"), &lists).await;
    assert_eq!(found.outcome, Outcome::Pass);
    assert!(found.hits.is_empty());
    // An answer outside 127/8 (a parked zone's wildcard) never lists.
    let lists = [list("parked.example.test", ListKind::Block)];
    let found = dnsbl(&lookup, ip("192.0.2.7"), &lists).await;
    assert_eq!(found.outcome, Outcome::Pass);
    assert!(
        found
            .detail
            .contains("answered 198.51.100.80, not a listing code")
    );
}

#[tokio::test]
async fn error_code_answer_is_temperror_never_listed() {
    let (_dns, lookup) = setup().await;
    let lists = [list("bl.example.test", ListKind::Block)];
    let found = dnsbl(&lookup, ip("192.0.2.9"), &lists).await;
    assert_eq!(found.outcome, Outcome::TempError);
    assert_eq!(
        found.detail,
        "192.0.2.9 could not be checked: bl.example.test answered 127.255.255.254: the list refuses queries from this resolver"
    );
    assert!(found.hits.is_empty());
    // Not even when an administrator configured that code.
    let lists = [DnsList {
        codes: Some(vec![Ipv4Addr::new(127, 255, 255, 254)]),
        ..list("bl.example.test", ListKind::Block)
    }];
    let found = dnsbl(&lookup, ip("192.0.2.9"), &lists).await;
    assert_eq!(found.outcome, Outcome::TempError);
}

#[tokio::test]
async fn timeout_and_servfail_are_temperror_of_that_list() {
    let (dns, lookup) = setup().await;
    let lists = [
        list("slow.example.test", ListKind::Block),
        list("bl.example.test", ListKind::Block),
    ];
    // A listing on the other list still decides.
    let found = dnsbl(&lookup, ip("192.0.2.7"), &lists).await;
    assert_eq!(found.outcome, Outcome::Listed);
    let lists = [list("slow.example.test", ListKind::Block)];
    let found = dnsbl(&lookup, ip("192.0.2.7"), &lists).await;
    assert_eq!(found.outcome, Outcome::TempError);
    assert_eq!(
        found.detail,
        "192.0.2.7 could not be checked: slow.example.test: DNS timeout looking up 7.2.0.192.slow.example.test"
    );
    dns.set_rcode("10.2.0.192.bl.example.test", Rcode::ServFail);
    let lists = [list("bl.example.test", ListKind::Block)];
    let found = dnsbl(&lookup, ip("192.0.2.10"), &lists).await;
    assert_eq!(found.outcome, Outcome::TempError);
    assert_eq!(
        found.detail,
        "192.0.2.10 could not be checked: bl.example.test: DNS server answered SERVFAIL looking up 10.2.0.192.bl.example.test"
    );
}

#[tokio::test]
async fn allow_list_wins_over_block_list() {
    let (_dns, lookup) = setup().await;
    let lists = [
        list("bl.example.test", ListKind::Block),
        list("wl.example.test", ListKind::Allow),
    ];
    let found = dnsbl(&lookup, ip("192.0.2.8"), &lists).await;
    assert_eq!(found.outcome, Outcome::Allowed);
    assert_eq!(
        found.detail,
        "192.0.2.8 is on the allow list wl.example.test (127.0.10.1): \"well-known sender\" (which outweighs the block list bl.example.test)"
    );
    assert_eq!(found.hits.len(), 2);
    let allow = &found.hits[1];
    assert_eq!(
        (allow.kind, allow.code, allow.reason.as_deref()),
        (
            ListKind::Allow,
            Ipv4Addr::new(127, 0, 10, 1),
            Some("well-known sender")
        )
    );
}

#[tokio::test]
async fn ipv6_client_is_asked_by_nibbles() {
    let (dns, lookup) = setup().await;
    let lists = [list("bl.example.test", ListKind::Block)];
    let found = dnsbl(&lookup, ip("2001:db8::7"), &lists).await;
    assert_eq!(found.outcome, Outcome::Listed);
    assert_eq!(
        found.detail,
        "2001:db8::7 is listed by bl.example.test (127.0.0.3): \"IPv6 listing\""
    );
    let found = dnsbl(&lookup, ip("2001:db8::8"), &lists).await;
    assert_eq!(found.outcome, Outcome::Pass);
    let asked: Vec<String> = dns.queries().into_iter().map(|q| q.name).collect();
    assert!(
        asked.contains(
            &"8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example.test"
                .to_owned()
        ),
        "{asked:?}"
    );
}

#[tokio::test]
async fn ipv4_mapped_client_is_asked_as_ipv4() {
    let (_dns, lookup) = setup().await;
    let lists = [list("bl.example.test", ListKind::Block)];
    let found = dnsbl(&lookup, ip("::ffff:192.0.2.7"), &lists).await;
    assert_eq!(found.outcome, Outcome::Listed);
    assert!(
        found
            .detail
            .starts_with("192.0.2.7 is listed by bl.example.test")
    );
}

/// A lookup whose A queries all wait until `expected` of them are in
/// flight: lists asked one after the other never get past the first.
struct AllAtOnce {
    zone: Zone,
    barrier: tokio::sync::Barrier,
}

impl Lookup for AllAtOnce {
    fn lookup_a(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Ipv4Addr>>> + Send {
        let name = name.to_owned();
        async move {
            self.barrier.wait().await;
            self.zone.lookup_a(&name).await
        }
    }
    fn lookup_aaaa(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Ipv6Addr>>> + Send {
        self.zone.lookup_aaaa(name)
    }
    fn lookup_mx(&self, name: &str) -> impl Future<Output = LookupResult<Vec<Mx>>> + Send {
        self.zone.lookup_mx(name)
    }
    fn lookup_txt(&self, name: &str) -> impl Future<Output = LookupResult<Vec<String>>> + Send {
        self.zone.lookup_txt(name)
    }
    fn lookup_ptr(&self, ip: IpAddr) -> impl Future<Output = LookupResult<Vec<String>>> + Send {
        self.zone.lookup_ptr(ip)
    }
}

#[tokio::test(start_paused = true)]
async fn lists_are_asked_concurrently() {
    let mut zone = Zone::new();
    zone.add(
        "7.2.0.192.three.example.test",
        RecordData::A(Ipv4Addr::new(127, 0, 0, 2)),
    );
    let lookup = AllAtOnce {
        zone,
        barrier: tokio::sync::Barrier::new(3),
    };
    let lists = [
        list("one.example.test", ListKind::Block),
        list("two.example.test", ListKind::Allow),
        list("three.example.test", ListKind::Block),
    ];
    // With time paused, the timeout fires only if the check is stuck.
    let found = tokio::time::timeout(
        Duration::from_secs(60),
        dnsbl(&lookup, ip("192.0.2.7"), &lists),
    )
    .await
    .expect("the lists were asked one after the other, not at once");
    assert_eq!(found.outcome, Outcome::Listed);
}
