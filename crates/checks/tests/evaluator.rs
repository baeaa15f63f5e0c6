//! The evaluator's time budget and accounting, over the in-memory zone
//! behind a lookup that takes a fixed time per answer, with tokio's clock
//! paused (virtual time: nothing here depends on the machine's speed).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tollgate_checks::{Action, Checker, Evaluator, Mode, Outcome, Settings, SkipLists, Stage};
use tollgate_dns::memory::Zone;
use tollgate_dns::{Lookup, LookupResult, Mx};

/// `zone`, answering each query after `delay`.
#[derive(Debug)]
struct Slow {
    zone: Zone,
    delay: Duration,
}

impl Lookup for Slow {
    async fn lookup_a(&self, name: &str) -> LookupResult<Vec<Ipv4Addr>> {
        tokio::time::sleep(self.delay).await;
        self.zone.lookup_a(name).await
    }
    async fn lookup_aaaa(&self, name: &str) -> LookupResult<Vec<Ipv6Addr>> {
        tokio::time::sleep(self.delay).await;
        self.zone.lookup_aaaa(name).await
    }
    async fn lookup_mx(&self, name: &str) -> LookupResult<Vec<Mx>> {
        tokio::time::sleep(self.delay).await;
        self.zone.lookup_mx(name).await
    }
    async fn lookup_txt(&self, name: &str) -> LookupResult<Vec<String>> {
        tokio::time::sleep(self.delay).await;
        self.zone.lookup_txt(name).await
    }
    async fn lookup_ptr(&self, ip: IpAddr) -> LookupResult<Vec<String>> {
        tokio::time::sleep(self.delay).await;
        self.zone.lookup_ptr(ip).await
    }
}

/// A zone where every HELO stage needs several answers: the HELO host's
/// SPF record has three `a` terms that resolve.
fn zone() -> Zone {
    let mut zone = Zone::new();
    zone.add_txt(
        "mx.example.com",
        "v=spf1 a:a1.example.com a:a2.example.com a:a3.example.com -all",
    );
    zone.add_txt("example.com", "v=spf1 ip4:192.0.2.0/24 -all");
    let a = |ip: &str| tollgate_dns::memory::RecordData::A(ip.parse().unwrap());
    zone.add("mx.example.com", a("192.0.2.7"));
    zone.add("a1.example.com", a("198.51.100.1"));
    zone.add("a2.example.com", a("198.51.100.2"));
    zone.add("a3.example.com", a("198.51.100.3"));
    zone.add(
        "7.2.0.192.in-addr.arpa",
        tollgate_dns::memory::RecordData::Ptr("mx.example.com".to_owned()),
    );
    zone
}

/// Every temperror only tagged, so every HELO stage runs.
fn settings(budget: Duration) -> Settings {
    let mut settings = Settings {
        time_budget: budget,
        skip: SkipLists {
            trusted_networks: Vec::new(),
            ..SkipLists::default()
        },
        ..Settings::default()
    };
    for stage in [Stage::Fcrdns, Stage::HeloDns, Stage::SpfHelo] {
        settings
            .policy
            .set(stage, "temperror", Action::Tag)
            .unwrap();
    }
    settings
}

fn evaluator(delay: Duration, budget: Duration) -> Evaluator<Slow> {
    let lookup = Slow {
        zone: zone(),
        delay,
    };
    Evaluator::new(
        Arc::new(Checker::new(lookup, settings(budget))),
        Mode::StopEarly,
    )
}

#[tokio::test(start_paused = true)]
async fn dns_time_budget_bounds_a_whole_helo_command_not_each_stage() {
    // Regression: with time_budget 5s, a HELO took 15 s (5 s per stage).
    let budget = Duration::from_secs(5);
    let mut ev = evaluator(Duration::from_secs(2), budget);
    ev.connect(Some("192.0.2.7".parse().unwrap()));
    let started = Instant::now();
    ev.helo("mx.example.com").await;
    let took = started.elapsed();
    assert!(
        took <= budget,
        "HELO took {took:?}, more than the {budget:?} budget"
    );
    // fcrdns (2 answers, 4 s) fits; helo-dns reuses its A answer (no DNS
    // time); spf-helo gets the last second and is cut.
    assert_eq!(ev.report(Stage::Fcrdns).unwrap().outcome, Outcome::Pass);
    assert_eq!(ev.report(Stage::HeloDns).unwrap().outcome, Outcome::Pass);
    let spf = ev.report(Stage::SpfHelo).unwrap();
    assert_eq!(spf.outcome, Outcome::TempError);
    let problem = spf.spf.as_ref().unwrap().problem.as_deref().unwrap();
    assert!(problem.contains("time budget of 5s"), "{problem}");
}

#[tokio::test(start_paused = true)]
async fn dns_queries_are_counted_when_the_budget_cuts_a_stage() {
    // Regression: dns_queries read 0 for a stage the budget cut.
    let mut ev = evaluator(Duration::from_secs(2), Duration::from_secs(7));
    ev.connect(Some("192.0.2.7".parse().unwrap()));
    ev.helo("mx.example.com").await;
    // fcrdns 4 s, helo-dns from the connection's answers, spf-helo cut
    // after its TXT query and the first `a` term.
    let spf = ev.report(Stage::SpfHelo).unwrap();
    assert_eq!(spf.outcome, Outcome::TempError);
    assert!(spf.dns_queries >= 1, "{spf:?}");
    assert!(ev.take_queries() >= 4);
}

#[tokio::test(start_paused = true)]
async fn a_fast_helo_runs_every_stage_within_the_budget() {
    let mut ev = evaluator(Duration::from_millis(20), Duration::from_secs(5));
    ev.connect(Some("192.0.2.7".parse().unwrap()));
    ev.helo("mx.example.com").await;
    let stages: Vec<(Stage, Outcome)> = ev.reports().map(|r| (r.stage, r.outcome)).collect();
    assert_eq!(
        stages,
        [
            (Stage::HeloSyntax, Outcome::Pass),
            (Stage::Fcrdns, Outcome::Pass),
            (Stage::RdnsName, Outcome::Pass),
            (Stage::HeloDns, Outcome::Pass),
            (Stage::SpfHelo, Outcome::Fail),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_delivered_message_gets_its_mailfrom_spf_result_after_an_early_refusal() {
    let mut ev = evaluator(Duration::from_millis(1), Duration::from_secs(5));
    ev.connect(Some("192.0.2.7".parse().unwrap()));
    ev.helo("OEMCOMPUTER").await;
    ev.mail("<alice@example.com>", None).await;
    assert_eq!(ev.decisive().unwrap().stage, Stage::HeloSyntax);
    assert!(ev.report(Stage::SpfMailfrom).is_none(), "early stop");
    ev.complete().await;
    let spf = ev.report(Stage::SpfMailfrom).expect("spf-mailfrom ran");
    assert_eq!(spf.outcome, Outcome::Pass);
    // The verdict is still the earlier stage's.
    assert_eq!(ev.verdict().stage, Some(Stage::HeloSyntax));
}
