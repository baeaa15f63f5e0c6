//! `tollgate check` and the milter say the same thing: a generated corpus
//! of scenarios (tests/equivalence/corpus.rs: client address and FCrDNS,
//! HELO, sender and its SPF, recipient, policy variations including
//! `reject_at`, dry run and skip lists; zone data served by testdns on
//! 127.0.0.1) runs through both the real `tollgate check --format json`
//! binary and the milter over the real milter protocol, and the verdict
//! action, the deciding stage and the reply must be identical, the milter
//! must give that reply when and where its settings say, and the headers
//! of a delivered message must be those check prints.
//!
//! `tollgate check` gets the configuration file the milter serves from and
//! `--nameserver` pointing at testdns; a third of its runs are the real
//! binary, the rest the same argument vector through the library in this
//! process (less CPU on a shared machine). The main test prints a one-line
//! summary (`cargo test --test equivalence -- --nocapture`).
//!
//! Disagreements this test found before the single evaluator are listed
//! in [`KNOWN`], each with a regression test of its own, named for it,
//! that asserts agreement on the scenarios it concerned (all agree now):
//!
//! - headers of skipped messages: check ran every stage anyway and printed
//!   their `Received-SPF`; the milter added none for a trusted network or a
//!   listed HELO, and the HELO identity's for a listed sender (now neither
//!   adds a `Received-SPF` to skipped mail);
//! - headers of messages delivered although the verdict refuses (dry run,
//!   exempt recipient): the milter stopped at the deciding stage, so its
//!   headers lacked the SPF results check printed (now both show the
//!   stages up to the deciding one plus spf-mailfrom);
//! - `reject_at: earliest` and a listed sender: the milter refused HELO
//!   for a failed connection stage, then accepted the listed sender's MAIL
//!   while check's verdict was accept (skip) (now the refusal waits for
//!   MAIL FROM while a sender-domain skip could still apply).

#[path = "equivalence/check_side.rs"]
mod check_side;
#[path = "equivalence/compare.rs"]
mod compare;
#[path = "equivalence/corpus.rs"]
mod corpus;
#[path = "equivalence/milter_side.rs"]
mod milter_side;
#[path = "common/temp_dir.rs"]
mod temp_dir;
#[path = "equivalence/zone.rs"]
mod zone;

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinSet;
use tollgate_testdns::suite::parse_zone;
use tollgate_testdns::{Rcode, TestDns};

use check_side::{CheckSaid, Via};
use compare::{Kind, Mismatch};
use corpus::{Client, Helo, POLICIES, Rcpt, Scenario, Sender};
use milter_side::{Instance, MilterDid, TempDir};

/// Scenarios in flight at once (each mostly waits on DNS timeouts).
const IN_FLIGHT: usize = 12;

/// One check run in this many goes through the `tollgate` binary, the
/// others through the library in this process (the same arguments, the
/// same JSON), which costs less CPU.
const BINARY_EVERY: usize = 3;

/// Disagreements shown in a failure message (the count says how many more).
const SHOWN: usize = 30;

/// One scenario's run.
#[derive(Debug)]
struct Ran {
    scenario: Scenario,
    check: CheckSaid,
    milter: MilterDid,
    mismatches: Vec<Mismatch>,
}

/// Runs `scenarios` through both sides.
async fn run(mut scenarios: Vec<Scenario>) -> (Vec<Ran>, Runs) {
    static RUNS: AtomicUsize = AtomicUsize::new(1);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    for s in &mut scenarios {
        s.run = run;
    }
    milter_side::capture_logs();
    let zone = parse_zone(&corpus::zone()).expect("the corpus zone parses");
    let dns = TestDns::start(zone).await.expect("testdns starts");
    dns.set_rcode(corpus::SERVFAIL_NAME, Rcode::ServFail);
    let dir = TempDir::new("equivalence");
    let mut milters = BTreeMap::new();
    for s in &scenarios {
        if let Entry::Vacant(slot) = milters.entry(s.policy) {
            slot.insert(Arc::new(
                Instance::start(s.policy(), dns.addr(), dir.path()).await,
            ));
        }
    }
    // Scenarios that differ only in what check is not told (recipient,
    // conversation) share one check run; every BINARY_EVERY-th of those
    // runs the binary.
    let mut checks: HashMap<_, Arc<OnceCell<CheckSaid>>> = HashMap::new();
    let mut via = HashMap::new();
    for s in &scenarios {
        let key = check_key(s);
        if !checks.contains_key(&key) {
            let v = if checks.len().is_multiple_of(BINARY_EVERY) {
                Via::Binary
            } else {
                Via::Library
            };
            via.insert(key, v);
            checks.insert(key, Arc::new(OnceCell::new()));
        }
    }
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = JoinSet::new();
    for s in scenarios {
        let milter = Arc::clone(&milters[&s.policy]);
        let gate = Arc::clone(&gate);
        let dns = dns.addr();
        let key = check_key(&s);
        let (check, via) = (Arc::clone(&checks[&key]), via[&key]);
        tasks.spawn(async move {
            let _permit = gate.acquire().await.expect("the gate stays open");
            let (check, did) = tokio::join!(
                check.get_or_init(|| check_side::run(&s, &milter.config, dns, via)),
                milter_side::run(&s, milter.addr)
            );
            let check = check.clone();
            let mismatches = compare::compare(&s, &check, &did);
            Ran {
                scenario: s,
                check,
                milter: did,
                mismatches,
            }
        });
    }
    let mut ran = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(r) => ran.push(r),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a scenario did not finish: {e}"),
        }
    }
    ran.sort_by_key(|r| r.scenario.id);
    let binary = via.values().filter(|v| **v == Via::Binary).count();
    (
        ran,
        Runs {
            check: checks.len(),
            binary,
        },
    )
}

/// What check is told about a scenario.
fn check_key(s: &Scenario) -> (usize, Client, Helo, Sender) {
    (s.policy, s.client, s.helo, s.sender)
}

/// How often `tollgate check` ran.
#[derive(Clone, Copy, Debug)]
struct Runs {
    /// Distinct check runs.
    check: usize,
    /// Of which through the binary.
    binary: usize,
}

/// A disagreement found before the single evaluator: which scenarios and
/// comparison it concerned, and the regression test that asserts agreement.
struct Known {
    /// The regression test.
    test: &'static str,
    /// The scenarios it concerns.
    select: fn(&Scenario) -> bool,
    /// Whether a mismatch of such a scenario is this disagreement.
    matches: fn(&Ran, &Mismatch) -> bool,
}

/// The disagreements between `tollgate check` and the milter that were fixed.
const KNOWN: [Known; 3] = [
    Known {
        test: "check_and_milter_agree_on_the_headers_of_skipped_messages",
        select: |s| s.policy().skips,
        matches: |_, m| m.kind == Kind::HeadersSkipped,
    },
    Known {
        test: "check_and_milter_agree_on_the_headers_of_messages_delivered_despite_a_refusal",
        select: |s| s.policy().dry_run || s.rcpt == Rcpt::Postmaster,
        // The milter stopped at the deciding stage, before spf-mailfrom.
        matches: |r, m| {
            m.kind == Kind::HeadersDeliveredAnyway && !r.milter.log.stages.contains("spf-mailfrom=")
        },
    },
    Known {
        test: "reject_at_earliest_does_not_refuse_at_helo_what_a_listed_sender_exempts",
        select: |s| s.policy().earliest && s.policy().skips && s.sender == corpus::Sender::Listed,
        matches: |r, m| {
            m.kind == Kind::Protocol
                && r.check.verdict.stage.as_deref() == Some("skip")
                && r.milter.helo.as_ref().is_some_and(|a| !a.is_continue())
        },
    },
];

fn known(r: &Ran, m: &Mismatch) -> Option<&'static Known> {
    KNOWN
        .iter()
        .find(|k| (k.select)(&r.scenario) && (k.matches)(r, m))
}

fn describe(r: &Ran, m: &Mismatch) -> String {
    format!(
        "{}\n    check stages: {}\n    milter stages: {}\n    {m}",
        r.scenario,
        r.check.stages.join(" "),
        r.milter.log.stages
    )
}

/// (action, deciding stage) pairs the corpus must produce, so that it
/// cannot agree by accident (say, every lookup timing out on both sides).
const MUST_SEE: [(&str, Option<&str>); 10] = [
    ("accept", None),
    ("accept", Some("skip")),
    ("reject", Some("helo-syntax")),
    ("reject", Some("fcrdns")),
    ("reject", Some("spf-helo")),
    ("reject", Some("spf-mailfrom")),
    ("tempfail", Some("fcrdns")),
    ("tempfail", Some("helo-dns")),
    ("tempfail", Some("spf-helo")),
    ("tempfail", Some("spf-mailfrom")),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_milter_agree_on_verdict_stage_reply_and_headers_for_the_whole_corpus() {
    let scenarios = corpus::corpus();
    let total = scenarios.len();
    assert!(total >= 200, "the corpus shrank to {total} scenarios");
    let (ran, runs) = run(scenarios).await;
    assert_eq!(ran.len(), total);

    let mut unexpected = Vec::new();
    let mut known_count: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &ran {
        for m in &r.mismatches {
            match known(r, m) {
                Some(k) => *known_count.entry(k.test).or_default() += 1,
                None => unexpected.push(describe(r, m)),
            }
        }
    }
    let agree = |kind: Kind| {
        ran.iter()
            .filter(|r| !r.mismatches.iter().any(|m| m.kind == kind))
            .count()
    };
    let delivered = ran.iter().filter(|r| r.milter.headers.is_some()).count();
    let headers_agree = ran
        .iter()
        .filter(|r| r.milter.headers.is_some())
        .filter(|r| !r.mismatches.iter().any(|m| m.kind >= Kind::Headers))
        .count();
    println!(
        "equivalence: {total} scenarios under {} policies (seed {:#x}) through the milter protocol and {} runs of tollgate check ({} of the binary): \
         {} agree on verdict, stage and reply, {} on the milter's answers, {headers_agree} of {delivered} delivered messages on headers; \
         known disagreements {known_count:?}; {} unexpected",
        POLICIES.len(),
        corpus::SEED,
        runs.check,
        runs.binary,
        agree(Kind::Verdict),
        agree(Kind::Protocol),
        unexpected.len()
    );
    assert!(
        unexpected.is_empty(),
        "{} disagreements between tollgate check and the milter, the first {SHOWN}:\n{}",
        unexpected.len(),
        unexpected[..unexpected.len().min(SHOWN)].join("\n")
    );
    let seen: BTreeSet<(&str, Option<&str>)> = ran
        .iter()
        .map(|r| {
            let v = &r.check.verdict;
            (v.action.as_str(), v.stage.as_deref())
        })
        .collect();
    for want in MUST_SEE {
        assert!(
            seen.contains(&want),
            "no scenario ended in {want:?}: the corpus lost its teeth (seen: {seen:?})"
        );
    }
}

/// Runs the scenarios a known disagreement concerns and asserts that it
/// is gone.
async fn assert_agreement(test: &str) {
    let known = KNOWN
        .iter()
        .find(|k| k.test == test)
        .expect("a known disagreement of that name");
    let scenarios: Vec<Scenario> = corpus::corpus()
        .into_iter()
        .filter(|s| (known.select)(s))
        .collect();
    assert!(!scenarios.is_empty());
    let total = scenarios.len();
    let (ran, _) = run(scenarios).await;
    let found: Vec<String> = ran
        .iter()
        .flat_map(|r| {
            r.mismatches
                .iter()
                .filter(|m| (known.matches)(r, m))
                .map(|m| describe(r, m))
        })
        .collect();
    println!("{test}: {total} scenarios, {} disagree", found.len());
    assert!(
        found.is_empty(),
        "{} disagreements, the first {SHOWN}:\n{}",
        found.len(),
        found[..found.len().min(SHOWN)].join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_milter_agree_on_the_headers_of_skipped_messages() {
    assert_agreement("check_and_milter_agree_on_the_headers_of_skipped_messages").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_milter_agree_on_the_headers_of_messages_delivered_despite_a_refusal() {
    assert_agreement(
        "check_and_milter_agree_on_the_headers_of_messages_delivered_despite_a_refusal",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_at_earliest_does_not_refuse_at_helo_what_a_listed_sender_exempts() {
    assert_agreement("reject_at_earliest_does_not_refuse_at_helo_what_a_listed_sender_exempts")
        .await;
}
