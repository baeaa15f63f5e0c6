//! The sender-domain check over real DNS packets: the hickory adapter
//! asking a testdns server on 127.0.0.1 about MX sets with null MX,
//! private addresses, CNAME targets, 11 hosts, timeouts and implicit MX.

use std::fmt::Write;
use std::time::Duration;

use tollgate_checks::Outcome;
use tollgate_checks::stage_checks::{MAX_MX_HOSTS, sender_domain};
use tollgate_dns::memory::RecordType;
use tollgate_dns::{HickoryLookup, ResolverOptions};
use tollgate_testdns::{Rcode, TestDns, suite::parse_zone};

const ZONE: &str = r#"
nullmx.example.test:
  - MX: [0, "."]
nullmx-bare.example.test:
  - MX: [0, ~]
good.example.test:
  - MX: [10, mx.good.example.test]
mx.good.example.test:
  - A: 192.0.2.25
private.example.test:
  - MX: [10, mx.private.example.test]
  - MX: [20, lo.private.example.test]
mx.private.example.test:
  - A: 10.0.0.25
  - AAAA: "fd00::25"
lo.private.example.test:
  - A: 127.0.0.1
  - AAAA: "::1"
cname.example.test:
  - MX: [10, alias.cname.example.test]
alias.cname.example.test:
  - CNAME: mail.cname.example.test
mail.cname.example.test:
  - AAAA: "2001:db8::25"
cname-private.example.test:
  - MX: [10, alias.cname-private.example.test]
alias.cname-private.example.test:
  - CNAME: mail.cname-private.example.test
mail.cname-private.example.test:
  - A: 192.168.1.25
dangling.example.test:
  - MX: [10, nowhere.dangling.example.test]
  - MX: [20, empty.dangling.example.test]
empty.dangling.example.test:
  - TXT: "no address here"
slow.example.test:
  - TIMEOUT
slowhost.example.test:
  - MX: [10, slow.slowhost.example.test]
  - MX: [20, mx.private.example.test]
slowbackup.example.test:
  - MX: [10, slow.slowhost.example.test]
  - MX: [20, mx.good.example.test]
slow.slowhost.example.test:
  - TIMEOUT
implicit.example.test:
  - A: 192.0.2.30
  - TXT: "v=spf1 a -all"
implicit-private.example.test:
  - A: 127.0.0.1
noaddress.example.test:
  - TXT: "v=spf1 -all"
"#;

/// many.example.test: 11 MX hosts, the 10 most preferred private, the
/// 11th routable.
fn zone_text() -> String {
    let mut text = ZONE.to_owned();
    text.push_str("many.example.test:\n");
    for i in 1..=11 {
        let _ = writeln!(text, "  - MX: [{i}, mx{i}.many.example.test]");
    }
    for i in 1..=10 {
        let _ = writeln!(text, "mx{i}.many.example.test:\n  - A: 10.0.0.{i}");
    }
    text.push_str("mx11.many.example.test:\n  - A: 192.0.2.11\n");
    text
}

async fn setup() -> (TestDns, HickoryLookup) {
    let dns = TestDns::start(parse_zone(&zone_text()).unwrap())
        .await
        .unwrap();
    let lookup = HickoryLookup::new(ResolverOptions {
        nameservers: Some(vec![dns.addr()]),
        timeout: Duration::from_millis(300),
        attempts: 1,
        cache_size: 0,
    })
    .unwrap();
    (dns, lookup)
}

#[tokio::test]
async fn null_mx_over_the_wire_is_nullmx() {
    let (_dns, lookup) = setup().await;
    // The zone spells the root "." or leaves it empty; the resolver gives "".
    for domain in ["nullmx.example.test", "nullmx-bare.example.test"] {
        let found = sender_domain(&lookup, domain).await;
        assert_eq!(found.outcome, Outcome::NullMx, "{domain}");
        assert_eq!(
            found.detail,
            format!("{domain} publishes a null MX: it accepts no mail (RFC 7505)")
        );
    }
}

#[tokio::test]
async fn routable_mx_host_passes_with_one_address_query() {
    let (dns, lookup) = setup().await;
    let found = sender_domain(&lookup, "good.example.test").await;
    assert_eq!(found.outcome, Outcome::Pass);
    assert_eq!(
        found.detail,
        "good.example.test has MX host mx.good.example.test at 192.0.2.25"
    );
    assert_eq!(found.mx, ["mx.good.example.test"]);
    assert!(found.notes.is_empty(), "{:?}", found.notes);
    // MX, then A; AAAA is not needed once A is routable.
    assert_eq!(dns.query_count(), 2);
}

#[tokio::test]
async fn private_and_loopback_mx_hosts_are_unroutable() {
    let (_dns, lookup) = setup().await;
    let found = sender_domain(&lookup, "private.example.test").await;
    assert_eq!(found.outcome, Outcome::Unroutable);
    assert_eq!(
        found.detail,
        "no MX host of private.example.test has an address routable on the internet: mx.private.example.test at 10.0.0.25 (private (10.0.0.0/8)), lo.private.example.test at 127.0.0.1 (loopback)"
    );
    assert_eq!(
        found.mx,
        ["mx.private.example.test", "lo.private.example.test"]
    );
}

#[tokio::test]
async fn cname_targets_are_followed() {
    let (_dns, lookup) = setup().await;
    let found = sender_domain(&lookup, "cname.example.test").await;
    assert_eq!(found.outcome, Outcome::Pass);
    assert_eq!(
        found.detail,
        "cname.example.test has MX host alias.cname.example.test at 2001:db8::25"
    );
    let found = sender_domain(&lookup, "cname-private.example.test").await;
    assert_eq!(found.outcome, Outcome::Unroutable);
    assert!(found.detail.contains("192.168.1.25"), "{}", found.detail);
}

#[tokio::test]
async fn only_ten_of_eleven_mx_hosts_are_looked_at() {
    let (dns, lookup) = setup().await;
    let found = sender_domain(&lookup, "many.example.test").await;
    // The routable 11th host is beyond the bound.
    assert_eq!(found.outcome, Outcome::Unroutable);
    assert_eq!(found.mx.len(), 11);
    assert_eq!(
        found.notes[0],
        format!(
            "many.example.test has 11 MX hosts; only the {MAX_MX_HOSTS} most preferred were looked at"
        )
    );
    assert_eq!(
        dns.query_count_for("mx11.many.example.test", RecordType::A),
        0
    );
    // One MX query and at most 20 address queries.
    assert!(dns.query_count() <= 21, "{} queries", dns.query_count());
    assert_eq!(dns.query_count_for("many.example.test", RecordType::Mx), 1);
}

#[tokio::test]
async fn mx_hosts_that_do_not_resolve_fail() {
    let (_dns, lookup) = setup().await;
    let found = sender_domain(&lookup, "dangling.example.test").await;
    assert_eq!(found.outcome, Outcome::Fail);
    assert_eq!(
        found.detail,
        "no MX host of dangling.example.test has an address"
    );
}

#[tokio::test]
async fn timeouts_are_temperror_only_where_they_decide() {
    let (dns, lookup) = setup().await;
    let found = sender_domain(&lookup, "slow.example.test").await;
    assert_eq!(found.outcome, Outcome::TempError);
    assert_eq!(
        found.detail,
        "slow.example.test could not be checked: DNS timeout looking up MX"
    );
    // The slow host might be the routable one.
    let found = sender_domain(&lookup, "slowhost.example.test").await;
    assert_eq!(found.outcome, Outcome::TempError);
    assert_eq!(
        found.detail,
        "slowhost.example.test could not be checked: DNS timeout looking up MX host slow.slowhost.example.test"
    );
    // A routable backup decides despite the slow host.
    let found = sender_domain(&lookup, "slowbackup.example.test").await;
    assert_eq!(found.outcome, Outcome::Pass);
    assert_eq!(
        found.notes,
        ["MX host slow.slowhost.example.test could not be looked up: DNS timeout"]
    );
    dns.set_rcode("good.example.test", Rcode::ServFail);
    let found = sender_domain(&lookup, "good.example.test").await;
    assert_eq!(found.outcome, Outcome::TempError);
    assert_eq!(
        found.detail,
        "good.example.test could not be checked: DNS server answered SERVFAIL looking up MX"
    );
}

#[tokio::test]
async fn domain_without_mx_is_its_own_mail_host() {
    let (_dns, lookup) = setup().await;
    let found = sender_domain(&lookup, "implicit.example.test").await;
    assert_eq!(found.outcome, Outcome::Pass);
    assert_eq!(
        found.detail,
        "implicit.example.test has no MX record; its own address 192.0.2.30 receives mail (RFC 5321 §5.1)"
    );
    let found = sender_domain(&lookup, "implicit-private.example.test").await;
    assert_eq!(found.outcome, Outcome::Unroutable);
    let found = sender_domain(&lookup, "noaddress.example.test").await;
    assert_eq!(found.outcome, Outcome::Fail);
    assert_eq!(
        found.detail,
        "noaddress.example.test has no MX record and no address"
    );
}

#[tokio::test]
async fn domain_that_does_not_exist_fails() {
    let (dns, lookup) = setup().await;
    let found = sender_domain(&lookup, "nowhere.example.test").await;
    assert_eq!(found.outcome, Outcome::Fail);
    assert_eq!(found.detail, "nowhere.example.test does not exist");
    // NXDOMAIN on MX settles it: no address queries follow.
    assert_eq!(dns.query_count(), 1);
}
