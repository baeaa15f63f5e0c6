//! The pipeline over real DNS packets: the hickory adapter asking a testdns
//! server on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use tollgate_checks::{
    Action, Checker, Client, MailFrom, Mode, Outcome, Settings, SkipLists, SkipReason, Stage,
};
use tollgate_dns::{HickoryLookup, ResolverOptions};
use tollgate_testdns::{Rcode, TestDns, suite::parse_zone};

const ZONE: &str = r#"
example.com:
  - TXT: "v=spf1 ip4:192.0.2.0/24 -all"
mx.example.com:
  - A: 192.0.2.7
  - TXT: "v=spf1 a -all"
named.example.com:
  - TXT: "only text"
7.2.0.192.in-addr.arpa:
  - PTR: mx.example.com
9.2.0.192.in-addr.arpa:
  - PTR: mx.example.com
broken.example.com:
  - TXT: "v=spf1 ip4:192.0.2.0/24 -all"
slow.example.com:
  - TIMEOUT
soft.example.com:
  - TXT: "v=spf1 ~all"
"#;

async fn setup(settings: Settings, timeout_ms: u64) -> (TestDns, Arc<Checker<HickoryLookup>>) {
    let dns = TestDns::start(parse_zone(ZONE).unwrap()).await.unwrap();
    let lookup = HickoryLookup::new(ResolverOptions {
        nameservers: Some(vec![dns.addr()]),
        timeout: Duration::from_millis(timeout_ms),
        attempts: 1,
        cache_size: 1024,
    })
    .unwrap();
    (dns, Arc::new(Checker::new(lookup, settings)))
}

fn untrusted() -> Settings {
    Settings {
        receiver: "mx.example.org".to_owned(),
        skip: SkipLists {
            trusted_networks: Vec::new(),
            ..SkipLists::default()
        },
        ..Settings::default()
    }
}

fn client(ip: &str, helo: &str, sender: &str) -> Client {
    Client {
        ip: ip.parse().unwrap(),
        helo: Some(helo.to_owned()),
        sender: Some(sender.to_owned()),
        auth: None,
    }
}

#[tokio::test]
async fn a_reject_stops_the_later_stages() {
    let (_dns, checker) = setup(untrusted(), 300).await;
    // 192.0.2.9's PTR name resolves to 192.0.2.7: fcrdns fails.
    let eval = checker
        .run(
            &client("192.0.2.9", "mx.example.com", "a@example.com"),
            Mode::StopEarly,
        )
        .await;
    let stages: Vec<Stage> = eval.stages.iter().map(|r| r.stage).collect();
    assert_eq!(stages, [Stage::HeloSyntax, Stage::Fcrdns]);
    let verdict = eval.verdict();
    assert_eq!(verdict.action, Action::Reject);
    assert_eq!(
        verdict.reply.unwrap().to_string(),
        "550 5.7.25 reverse DNS of 192.0.2.9 does not confirm: PTR mx.example.com resolves to 192.0.2.7, not 192.0.2.9"
    );
    // Mode::All shows everything.
    let eval = checker
        .run(
            &client("192.0.2.9", "mx.example.com", "a@example.com"),
            Mode::All,
        )
        .await;
    assert_eq!(eval.stages.len(), 7, "with rdns-name and sender-domain");
}

#[tokio::test]
async fn null_sender_reuses_the_helo_result_without_new_queries() {
    let (dns, checker) = setup(untrusted(), 300).await;
    let ip = "192.0.2.7".parse().unwrap();
    let helo = checker
        .spf_helo(ip, "mx.example.com", checker.deadline())
        .await;
    assert_eq!(helo.outcome, Outcome::Pass);
    dns.reset_counts();
    let mailfrom = checker
        .spf_mailfrom(
            ip,
            "mx.example.com",
            &MailFrom::parse(""),
            helo.spf.as_ref(),
            checker.deadline(),
        )
        .await;
    assert_eq!(mailfrom.outcome, Outcome::Pass);
    assert_eq!(mailfrom.dns_queries, 0);
    assert_eq!(dns.query_count(), 0);
    let out = mailfrom.spf.unwrap();
    assert_eq!(out.sender, "postmaster@mx.example.com");
}

#[tokio::test]
async fn servfail_is_a_temperror_and_a_4xx() {
    let (dns, checker) = setup(untrusted(), 300).await;
    dns.set_rcode("broken.example.com", Rcode::ServFail);
    let report = checker
        .spf_mailfrom(
            "192.0.2.7".parse().unwrap(),
            "mx.example.com",
            &MailFrom::parse("a@broken.example.com"),
            None,
            checker.deadline(),
        )
        .await;
    assert_eq!(report.outcome, Outcome::TempError);
    assert_eq!(report.action, Action::Tempfail);
    assert_eq!(
        report.reply.unwrap().to_string(),
        "451 4.7.24 SPF temperror for broken.example.com: DNS server answered SERVFAIL looking up TXT for broken.example.com, try again later"
    );
}

#[tokio::test]
async fn time_budget_turns_a_slow_stage_into_temperror() {
    let settings = Settings {
        time_budget: Duration::from_millis(200),
        ..untrusted()
    };
    // Each query may wait 5 s; the stage may not.
    let (_dns, checker) = setup(settings, 5_000).await;
    let report = checker
        .spf_mailfrom(
            "192.0.2.7".parse().unwrap(),
            "mx.example.com",
            &MailFrom::parse("a@slow.example.com"),
            None,
            checker.deadline(),
        )
        .await;
    assert_eq!(report.outcome, Outcome::TempError);
    let problem = report.spf.unwrap().problem.unwrap();
    assert!(problem.contains("time budget of 0.2s"), "{problem}");
    assert!(report.reply.unwrap().code == 451);
}

#[tokio::test]
async fn helo_dns_tells_missing_names_from_mismatches() {
    let (_dns, checker) = setup(untrusted(), 300).await;
    let ip = "192.0.2.7".parse().unwrap();
    let pass = checker
        .helo_dns(ip, "mx.example.com", checker.deadline())
        .await;
    assert_eq!(pass.outcome, Outcome::Pass);
    let other = checker
        .helo_dns(
            "198.51.100.1".parse().unwrap(),
            "mx.example.com",
            checker.deadline(),
        )
        .await;
    assert_eq!(other.outcome, Outcome::Mismatch);
    assert_eq!(
        other.action,
        Action::Tag,
        "a mismatch alone must not reject"
    );
    let nodata = checker
        .helo_dns(ip, "named.example.com", checker.deadline())
        .await;
    assert_eq!(nodata.outcome, Outcome::Fail);
    assert_eq!(
        nodata.detail,
        "HELO named.example.com has no address records"
    );
    let missing = checker
        .helo_dns(ip, "nowhere.example.com", checker.deadline())
        .await;
    assert_eq!(
        missing.detail,
        "HELO nowhere.example.com does not exist (NXDOMAIN)"
    );
    let slow = checker
        .helo_dns(ip, "slow.example.com", checker.deadline())
        .await;
    assert_eq!(slow.outcome, Outcome::TempError);
    assert_eq!(slow.action, Action::Tempfail);
}

#[tokio::test]
async fn trusted_and_authenticated_clients_are_skipped() {
    let (_dns, checker) = setup(Settings::default(), 300).await;
    let eval = checker
        .run(
            &client("127.0.0.1", "localhost", "a@example.com"),
            Mode::StopEarly,
        )
        .await;
    assert_eq!(eval.stages.len(), 1);
    assert_eq!(
        eval.skipped().map(ToString::to_string).as_deref(),
        Some("client 127.0.0.1 is in trusted network 127.0.0.0/8")
    );
    assert_eq!(eval.verdict().action, Action::Tag);
    let mut c = client("192.0.2.99", "OEMCOMPUTER", "a@example.com");
    c.auth = Some("alice".to_owned());
    let eval = checker.run(&c, Mode::StopEarly).await;
    assert_eq!(
        eval.skipped(),
        Some(&SkipReason::Authenticated("alice".to_owned()))
    );
}

#[tokio::test]
async fn softfail_under_a_reject_policy_names_the_policy() {
    let mut settings = untrusted();
    settings
        .policy
        .set(Stage::SpfHelo, "softfail", Action::Reject)
        .unwrap();
    let (_dns, checker) = setup(settings, 300).await;
    let report = checker
        .spf_helo(
            "192.0.2.7".parse().unwrap(),
            "soft.example.com",
            checker.deadline(),
        )
        .await;
    assert_eq!(
        report.reply.unwrap().to_string(),
        "550 5.7.23 SPF fail for HELO soft.example.com: 192.0.2.7 not permitted (matched \"~all\" under HELO policy softfail=reject)"
    );
}

#[tokio::test]
async fn mailfrom_softfail_under_a_reject_policy_reads_as_the_design_says() {
    let mut settings = untrusted();
    settings
        .policy
        .set(Stage::SpfMailfrom, "softfail", Action::Reject)
        .unwrap();
    let (_dns, checker) = setup(settings, 300).await;
    let report = checker
        .spf_mailfrom(
            "192.0.2.7".parse().unwrap(),
            "mx.example.com",
            &MailFrom::parse("a@soft.example.com"),
            None,
            checker.deadline(),
        )
        .await;
    assert_eq!(report.outcome, Outcome::SoftFail);
    assert_eq!(
        report.reply.unwrap().to_string(),
        "550 5.7.23 SPF fail: 192.0.2.7 is not allowed to send mail as soft.example.com (matched \"~all\" under policy softfail=reject)"
    );
}
