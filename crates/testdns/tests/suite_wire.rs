//! The OpenSPF RFC 7208 suite over the wire: every test runs through the
//! SPF engine, the hickory adapter (`HickoryLookup`) and a real DNS server
//! (`TestDns`, one per scenario) on 127.0.0.1, with the conventions of the
//! in-memory run in `crates/spf/tests/suite.rs`: where `result` is a list
//! any value passes, and `explanation: DEFAULT` means the engine's own
//! default text. `TIMEOUT` names are never answered, so each attempt waits
//! out a short timeout; scenarios run concurrently to keep that quick.

use std::path::Path;
use std::time::Duration;

use tollgate_dns::{HickoryLookup, ResolverOptions};
use tollgate_spf::{Options, Spf, SpfOutput};
use tollgate_testdns::TestDns;
use tollgate_testdns::suite::{Scenario, TestCase, load_suite};

/// Per-attempt DNS timeout: long enough for loopback, short enough that
/// the suite's TIMEOUT tests finish quickly.
const DNS_TIMEOUT: Duration = Duration::from_millis(300);

/// Judges an output by the suite's conventions, saying what matched or went wrong.
fn judge(case: &TestCase, out: &SpfOutput) -> Result<(), String> {
    let explanation = out
        .explanation
        .as_ref()
        .map(|e| (e.text.as_str(), e.from_domain));
    case.judge(out.result.as_str(), explanation).map_err(|why| {
        format!(
            "{why}; mechanism {:?}, problem {:?}",
            out.mechanism, out.problem
        )
    })
}

/// Runs one scenario against its own server; returns how many tests ran
/// and the failures.
async fn run_scenario(scenario: Scenario) -> (usize, Vec<String>) {
    let server = TestDns::start(scenario.zone.clone())
        .await
        .expect("test DNS server starts");
    let lookup = HickoryLookup::new(ResolverOptions {
        nameservers: Some(vec![server.addr()]),
        timeout: DNS_TIMEOUT,
        attempts: 1,
        cache_size: 1024,
    })
    .expect("resolver builds");
    let options = Options {
        receiver: "mx.example.org".to_owned(),
        ..Options::default()
    };
    let spf = Spf::new(lookup, options);
    let mut failures = Vec::new();
    for case in &scenario.tests {
        let out = spf
            .check_mailfrom(case.host, &case.mailfrom, &case.helo)
            .await;
        if let Err(why) = judge(case, &out) {
            failures.push(format!("{} ({}): {why}", case.name, scenario.description));
        }
    }
    (scenario.tests.len(), failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7208_suite_passes_over_the_wire() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spf/tests/suite/rfc7208-tests.yml");
    let scenarios = load_suite(&path).expect("suite loads");
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for scenario in scenarios {
        tasks.spawn(run_scenario(scenario));
    }
    let mut ran = 0;
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (count, failed) = joined.expect("scenario task completes");
        ran += count;
        failures.extend(failed);
    }
    failures.sort();
    println!(
        "rfc7208 suite over the wire: {ran} tests ran, {} failed, in {:?}",
        failures.len(),
        started.elapsed()
    );
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    assert_eq!(ran, 203, "the suite has 203 tests");
}
