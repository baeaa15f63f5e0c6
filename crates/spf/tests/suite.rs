//! The OpenSPF RFC 7208 test suite (`tests/suite/rfc7208-tests.yml`, BSD
//! licence, see `tests/suite/rfc7208-tests.LICENSE`) run through the
//! engine over the in-memory zone, following the suite driver's
//! conventions: where `result` is a list any value passes, and
//! `explanation: DEFAULT` means the engine's own default text.

use std::path::Path;
use tollgate_dns::memory::block_on;

use tollgate_spf::{Options, Spf, SpfOutput};
use tollgate_testdns::suite::{TestCase, load_suite};

/// Polls a future that never waits (the in-memory zone answers at once).
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

#[test]
fn rfc7208_suite_passes_in_memory() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/suite/rfc7208-tests.yml");
    let scenarios = load_suite(&path).expect("suite loads");
    let options = Options {
        receiver: "mx.example.org".to_owned(),
        ..Options::default()
    };
    let mut ran = 0;
    let mut failures = Vec::new();
    for scenario in scenarios {
        let spf = Spf::new(scenario.zone, options.clone());
        for case in &scenario.tests {
            ran += 1;
            let out = block_on(spf.check_mailfrom(case.host, &case.mailfrom, &case.helo));
            if let Err(why) = judge(case, &out) {
                failures.push(format!("{} ({}): {why}", case.name, scenario.description));
            }
        }
    }
    println!(
        "rfc7208 suite in memory: {ran} tests ran, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    assert_eq!(ran, 203, "the suite has 203 tests");
}
