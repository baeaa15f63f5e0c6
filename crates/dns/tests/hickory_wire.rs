//! `HickoryLookup` against `tollgate-testdns` over real sockets on
//! 127.0.0.1: every mapping from DNS outcomes to `Lookup` results, TCP
//! fallback, timeouts and the shared cache.

#![cfg(feature = "hickory")]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tollgate_dns::memory::{RecordData, RecordType, Zone};
use tollgate_dns::{HickoryLookup, Lookup, LookupError, Mx, ResolverOptions};
use tollgate_testdns::suite::parse_zone;
use tollgate_testdns::{Rcode, TestDns, Transport};

/// The per-attempt timeout in these tests: real sockets, so not too short.
const TIMEOUT: Duration = Duration::from_millis(200);

fn zone() -> Zone {
    parse_zone(
        r#"
        example.com:
          - TXT: v=spf1 mx -all
          - MX: [10, Mail.Example.com.]
          - MX: [20, backup.example.com]
          - A: 192.0.2.1
        mail.example.com:
          - A: 192.0.2.10
          - A: 192.0.2.11
          - AAAA: 2001:db8::10
        www.example.com:
          - CNAME: alias.example.com
        alias.example.com:
          - CNAME: mail.example.com.
        split.example.com:
          - TXT: [ "v=spf1 ip4:", "192.0.2.5 -all" ]
          - TXT: second record
        empty.example.com:
          - TXT: [ ]
        nullmx.example.com:
          - MX: [0, ""]
        exists.example.com: []
        slow.example.com:
          - TXT: v=spf1 -all
          - TIMEOUT
        10.2.0.192.in-addr.arpa:
          - PTR: Mail.Example.com.
        0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa:
          - PTR: mail6.example.com.
          - PTR: other.example.com.
        "#,
    )
    .unwrap()
}

async fn setup(zone: Zone) -> (TestDns, HickoryLookup) {
    let server = TestDns::start(zone).await.unwrap();
    let lookup = HickoryLookup::new(ResolverOptions {
        nameservers: Some(vec![server.addr()]),
        timeout: TIMEOUT,
        attempts: 1,
        cache_size: 256,
    })
    .unwrap();
    (server, lookup)
}

#[tokio::test]
async fn addresses_are_returned_with_cnames_followed() {
    let (_server, dns) = setup(zone()).await;
    assert_eq!(
        dns.lookup_a("mail.example.com").await.unwrap(),
        vec![
            "192.0.2.10".parse::<std::net::Ipv4Addr>().unwrap(),
            "192.0.2.11".parse().unwrap()
        ]
    );
    assert_eq!(
        dns.lookup_aaaa("MAIL.example.com.").await.unwrap(),
        vec!["2001:db8::10".parse::<std::net::Ipv6Addr>().unwrap()]
    );
    assert_eq!(dns.lookup_a("www.example.com").await.unwrap().len(), 2);
}

#[tokio::test]
async fn mx_exchanges_come_without_trailing_dot() {
    let (_server, dns) = setup(zone()).await;
    let mut mx = dns.lookup_mx("example.com").await.unwrap();
    mx.sort_by_key(|m| m.preference);
    assert_eq!(
        mx,
        vec![
            Mx {
                preference: 10,
                exchange: "Mail.Example.com".into()
            },
            Mx {
                preference: 20,
                exchange: "backup.example.com".into()
            },
        ]
    );
    assert_eq!(
        dns.lookup_mx("nullmx.example.com").await.unwrap(),
        vec![Mx {
            preference: 0,
            exchange: String::new()
        }]
    );
}

#[tokio::test]
async fn txt_character_strings_are_concatenated_per_record() {
    let (_server, dns) = setup(zone()).await;
    let mut txt = dns.lookup_txt("split.example.com").await.unwrap();
    txt.sort();
    assert_eq!(
        txt,
        vec![
            "second record".to_owned(),
            "v=spf1 ip4:192.0.2.5 -all".to_owned()
        ]
    );
    assert_eq!(
        dns.lookup_txt("empty.example.com").await.unwrap(),
        vec![String::new()]
    );
}

#[tokio::test]
async fn ptr_names_come_lower_case_without_trailing_dot_for_ipv4_and_ipv6() {
    let (server, dns) = setup(zone()).await;
    let v4: IpAddr = "192.0.2.10".parse().unwrap();
    assert_eq!(
        dns.lookup_ptr(v4).await.unwrap(),
        vec!["mail.example.com".to_owned()]
    );
    let v6: IpAddr = "2001:db8::10".parse().unwrap();
    let mut names = dns.lookup_ptr(v6).await.unwrap();
    names.sort();
    assert_eq!(
        names,
        vec![
            "mail6.example.com".to_owned(),
            "other.example.com".to_owned()
        ]
    );
    assert_eq!(
        server.query_count_for(&tollgate_dns::reverse_name(v6), RecordType::Ptr),
        1
    );
}

#[tokio::test]
async fn nxdomain_and_nodata_map_to_void_errors() {
    let (_server, dns) = setup(zone()).await;
    assert_eq!(
        dns.lookup_a("nowhere.example.com").await,
        Err(LookupError::NxDomain)
    );
    assert_eq!(
        dns.lookup_txt("nowhere.example.com").await,
        Err(LookupError::NxDomain)
    );
    assert_eq!(
        dns.lookup_txt("mail.example.com").await,
        Err(LookupError::NoData)
    );
    assert_eq!(
        dns.lookup_a("exists.example.com").await,
        Err(LookupError::NoData)
    );
    assert_eq!(
        dns.lookup_mx("www.example.com").await,
        Err(LookupError::NoData)
    );
    let unknown: IpAddr = "198.51.100.1".parse().unwrap();
    assert_eq!(dns.lookup_ptr(unknown).await, Err(LookupError::NxDomain));
}

#[tokio::test]
async fn cname_to_a_missing_name_is_nxdomain() {
    let mut zone = Zone::new();
    zone.add(
        "dangling.example.com",
        RecordData::Cname("gone.example.com".into()),
    );
    let (_server, dns) = setup(zone).await;
    assert_eq!(
        dns.lookup_a("dangling.example.com").await,
        Err(LookupError::NxDomain)
    );
}

#[tokio::test]
async fn servfail_and_refused_map_to_server_failure() {
    let (server, dns) = setup(zone()).await;
    server.set_rcode("example.com", Rcode::ServFail);
    server.set_rcode("mail.example.com", Rcode::Refused);
    assert_eq!(
        dns.lookup_txt("example.com").await,
        Err(LookupError::ServerFailure("SERVFAIL".into()))
    );
    assert_eq!(
        dns.lookup_a("mail.example.com").await,
        Err(LookupError::ServerFailure("REFUSED".into()))
    );
    assert!(
        dns.lookup_a("mail.example.com")
            .await
            .unwrap_err()
            .is_temporary()
    );
}

#[tokio::test]
async fn cname_loop_is_a_server_failure() {
    let mut zone = Zone::new();
    zone.add(
        "loop1.example.com",
        RecordData::Cname("loop2.example.com".into()),
    );
    zone.add(
        "loop2.example.com",
        RecordData::Cname("loop1.example.com".into()),
    );
    let (_server, dns) = setup(zone).await;
    assert_eq!(
        dns.lookup_a("loop1.example.com").await,
        Err(LookupError::ServerFailure("SERVFAIL".into()))
    );
}

#[tokio::test]
async fn timeout_name_gives_timeout_within_the_configured_time() {
    let (_server, dns) = setup(zone()).await;
    let start = Instant::now();
    assert_eq!(
        dns.lookup_a("slow.example.com").await,
        Err(LookupError::Timeout)
    );
    let elapsed = start.elapsed();
    assert!(elapsed >= TIMEOUT / 2, "gave up after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    // Types listed before the TIMEOUT marker are answered.
    assert_eq!(
        dns.lookup_txt("slow.example.com").await.unwrap(),
        vec!["v=spf1 -all".to_owned()]
    );
}

#[tokio::test]
async fn attempts_resend_a_query_that_timed_out() {
    let server = TestDns::start(zone()).await.unwrap();
    let dns = HickoryLookup::new(ResolverOptions {
        nameservers: Some(vec![server.addr()]),
        timeout: TIMEOUT,
        attempts: 3,
        cache_size: 16,
    })
    .unwrap();
    let start = Instant::now();
    assert_eq!(
        dns.lookup_a("slow.example.com").await,
        Err(LookupError::Timeout)
    );
    assert!(
        start.elapsed() >= TIMEOUT * 2,
        "gave up after {:?}",
        start.elapsed()
    );
    assert!(server.query_count_for("slow.example.com", RecordType::A) >= 3);
}

#[tokio::test]
async fn large_txt_arrives_in_full_over_tcp_after_truncation() {
    let long = format!("v=spf1 {}-all", "ip4:192.0.2.0/24 ".repeat(60));
    assert!(long.len() > 1000);
    let mut zone = Zone::new();
    zone.add_txt("big.example.com", &long);
    let (server, dns) = setup(zone).await;
    assert_eq!(dns.lookup_txt("big.example.com").await.unwrap(), vec![long]);
    let transports: Vec<_> = server.queries().iter().map(|q| q.transport).collect();
    assert_eq!(transports.first(), Some(&Transport::Udp));
    assert_eq!(transports.last(), Some(&Transport::Tcp));
}

/// An answer too large for the map of finished answers (here 20 TXT
/// records, 5 KiB) is still answered again from the resolver's own cache,
/// not asked again, and comes back whole.
#[tokio::test]
async fn an_answer_too_large_to_keep_is_served_from_the_resolver_cache() {
    let mut zone = Zone::new();
    let records: Vec<String> = (0..20)
        .map(|i| format!("verification-{i:02}={}", "x".repeat(240)))
        .collect();
    for record in &records {
        zone.add_txt("many.example.com", record);
    }
    let (server, dns) = setup(zone).await;
    let first = dns.lookup_txt("many.example.com").await.unwrap();
    assert!(first.iter().map(String::len).sum::<usize>() > 4096);
    let asked = server.query_count_for("many.example.com", RecordType::Txt);
    let mut again = dns.lookup_txt("many.example.com").await.unwrap();
    assert_eq!(
        server.query_count_for("many.example.com", RecordType::Txt),
        asked
    );
    again.sort();
    let mut want = records.clone();
    want.sort();
    assert_eq!(again, want);
}

#[tokio::test]
async fn negative_answers_are_cached() {
    let (server, dns) = setup(zone()).await;
    for _ in 0..3 {
        assert_eq!(
            dns.lookup_a("nowhere.example.com").await,
            Err(LookupError::NxDomain)
        );
        assert_eq!(
            dns.lookup_txt("mail.example.com").await,
            Err(LookupError::NoData)
        );
    }
    assert_eq!(
        server.query_count_for("nowhere.example.com", RecordType::A),
        1
    );
    assert_eq!(
        server.query_count_for("mail.example.com", RecordType::Txt),
        1
    );
}

#[tokio::test]
async fn positive_answers_are_cached_and_shared_by_clones() {
    let (server, dns) = setup(zone()).await;
    let clone = dns.clone();
    assert_eq!(dns.lookup_txt("example.com").await.unwrap().len(), 1);
    assert_eq!(clone.lookup_txt("example.com").await.unwrap().len(), 1);
    assert_eq!(clone.lookup_a("www.example.com").await.unwrap().len(), 2);
    assert_eq!(dns.lookup_a("www.example.com").await.unwrap().len(), 2);
    assert_eq!(server.query_count_for("example.com", RecordType::Txt), 1);
    assert_eq!(server.query_count_for("www.example.com", RecordType::A), 1);
    dns.clear_cache();
    dns.lookup_txt("example.com").await.unwrap();
    assert_eq!(server.query_count_for("example.com", RecordType::Txt), 2);
}

/// A "no such domain" without an SOA carries no negative TTL (RFC 2308
/// §5): there is nothing to keep it by, so it is asked again.
#[tokio::test]
async fn nxdomain_without_soa_is_not_kept() {
    let (server, dns) = setup(zone()).await;
    server.set_rcode("example.com", Rcode::NxDomain);
    for _ in 0..2 {
        assert_eq!(
            dns.lookup_txt("example.com").await,
            Err(LookupError::NxDomain)
        );
    }
    assert_eq!(server.query_count_for("example.com", RecordType::Txt), 2);
    server.clear_rcode("example.com");
    assert_eq!(dns.lookup_txt("example.com").await.unwrap().len(), 1);
}

/// Names differing only in case (RFC 4343) or by a trailing dot share one
/// kept answer.
#[tokio::test]
async fn kept_answers_match_names_in_any_case() {
    let (server, dns) = setup(zone()).await;
    assert_eq!(dns.lookup_a("mail.example.com").await.unwrap().len(), 2);
    assert_eq!(dns.lookup_a("MAIL.Example.COM.").await.unwrap().len(), 2);
    assert_eq!(server.query_count_for("mail.example.com", RecordType::A), 1);
}

#[tokio::test]
async fn server_failures_and_timeouts_are_not_cached() {
    let (server, dns) = setup(zone()).await;
    server.set_rcode("example.com", Rcode::ServFail);
    assert!(dns.lookup_txt("example.com").await.is_err());
    server.clear_rcode("example.com");
    assert_eq!(dns.lookup_txt("example.com").await.unwrap().len(), 1);
}

#[tokio::test]
async fn names_are_absolute_and_never_expanded() {
    let (server, dns) = setup(zone()).await;
    assert_eq!(dns.lookup_a("com").await, Err(LookupError::NxDomain));
    let names: Vec<_> = server.queries().into_iter().map(|q| q.name).collect();
    assert_eq!(names, vec!["com".to_owned()]);
}

#[tokio::test]
async fn hosts_file_is_not_consulted() {
    // Any name /etc/hosts lists (other than localhost, which hickory answers
    // itself as RFC 6761 asks) must still be asked of the nameserver. The
    // name is this machine's own host name where /etc/hosts lists it (as
    // Debian's installer and container engines write it), else a name
    // that only the nameserver knows; the resolver's option itself is
    // checked by the unit test `the_resolver_never_reads_the_hosts_file`.
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let listed = hosts
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace().skip(1))
        .find(|n| !n.contains("localhost"))
        .map(str::to_owned);
    let name = listed.unwrap_or_else(|| "host.example.com".to_owned());
    let (server, dns) = setup(Zone::new()).await;
    assert_eq!(dns.lookup_a(&name).await, Err(LookupError::NxDomain));
    assert_eq!(server.query_count(), 1);
}

#[tokio::test]
async fn impossible_names_are_nxdomain_without_a_query() {
    let (server, dns) = setup(zone()).await;
    let long_label = format!("{}.example.com", "a".repeat(64));
    assert_eq!(
        dns.lookup_txt(&long_label).await,
        Err(LookupError::NxDomain)
    );
    assert_eq!(
        dns.lookup_a("a..example.com").await,
        Err(LookupError::NxDomain)
    );
    assert_eq!(server.query_count(), 0);
}

#[tokio::test]
async fn unreachable_nameserver_times_out() {
    // A port with nothing listening: UDP gets no answer (or an ICMP error).
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    drop(socket);
    let dns = HickoryLookup::new(ResolverOptions {
        nameservers: Some(vec![addr]),
        timeout: TIMEOUT,
        attempts: 1,
        cache_size: 16,
    })
    .unwrap();
    let err = dns.lookup_a("example.com").await.unwrap_err();
    assert!(
        matches!(err, LookupError::Timeout | LookupError::Other(_)),
        "{err:?}"
    );
    assert!(err.is_temporary());
}

#[tokio::test]
async fn no_nameservers_is_an_error() {
    let err = HickoryLookup::new(ResolverOptions {
        nameservers: Some(vec![]),
        ..ResolverOptions::default()
    });
    assert!(matches!(
        err,
        Err(tollgate_dns::ResolverError::NoNameservers)
    ));
}

#[tokio::test]
async fn default_options_read_the_system_nameservers() {
    // Building asks nothing of the network: it succeeds where
    // /etc/resolv.conf names a nameserver, and says why where none is.
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let has_nameserver = conf
        .lines()
        .any(|l| l.trim_start().starts_with("nameserver"));
    let built = HickoryLookup::new(ResolverOptions::default());
    if has_nameserver {
        built.unwrap();
    } else {
        assert!(
            matches!(
                built,
                Err(tollgate_dns::ResolverError::NoNameservers
                    | tollgate_dns::ResolverError::SystemConfig(_))
            ),
            "{built:?}"
        );
    }
}

/// Regression (issue 14, item 5): a TXT record with RDLENGTH 0 (testdns
/// sends the suite's `[]` as it is) made hickory refuse the whole answer,
/// "decoding error: unexpected record with length 0", so the SPF record
/// next to it was lost and the check gave temperror. The empty record is
/// empty text; the others are used, over UDP and over TCP.
#[tokio::test]
async fn empty_txt_record_does_not_hide_the_other_records_rdlength_zero_regression() {
    let long = format!("v=spf1 {}-all", "ip4:192.0.2.0/24 ".repeat(40));
    let zone = parse_zone(&format!(
        r#"
        null.example.com:
          - TXT: [ "v=spf1 ip4:", "192.0.2.5 -all" ]
          - TXT: [ ]
        big.example.com:
          - TXT: [ ]
          - TXT: "{long}"
          - TXT: [ ]
        "#
    ))
    .unwrap();
    let (server, dns) = setup(zone).await;
    let mut txt = dns.lookup_txt("null.example.com").await.unwrap();
    txt.sort();
    assert_eq!(
        txt,
        vec![String::new(), "v=spf1 ip4:192.0.2.5 -all".to_owned()]
    );
    assert!(
        server
            .queries()
            .iter()
            .all(|q| q.transport == Transport::Udp)
    );

    server.reset_counts();
    let mut txt = dns.lookup_txt("big.example.com").await.unwrap();
    txt.sort();
    assert_eq!(txt, vec![String::new(), String::new(), long]);
    let transports: Vec<_> = server.queries().iter().map(|q| q.transport).collect();
    assert_eq!(transports, vec![Transport::Udp, Transport::Tcp]);
}

/// Regression (issue 14, item 12): an answer truncated over TCP as well
/// showed hickory's own wording ("response was truncated; TCP already
/// tried …") in replies. It is a `LookupError` of its own, worded like the
/// other DNS failures.
#[tokio::test]
async fn answer_truncated_over_tcp_too_is_reported_in_tollgate_wording() {
    let mut zone = Zone::new();
    zone.add_txt("cut.example.com", "v=spf1 -all");
    let (server, dns) = setup(zone).await;
    server.set_truncated("cut.example.com", true);
    let err = dns.lookup_txt("cut.example.com").await.unwrap_err();
    assert_eq!(err, LookupError::Truncated);
    assert!(err.is_temporary());
    assert_eq!(err.summary(), "DNS answer truncated even over TCP");
    let transports: Vec<_> = server.queries().iter().map(|q| q.transport).collect();
    assert_eq!(transports, vec![Transport::Udp, Transport::Tcp]);

    server.set_truncated("cut.example.com", false);
    assert_eq!(
        dns.lookup_txt("cut.example.com").await.unwrap(),
        vec!["v=spf1 -all".to_owned()]
    );
}
