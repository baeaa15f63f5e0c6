//! No header line tollgate adds exceeds RFC 5322 §2.1.1's 998 octets,
//! whatever the client and the DNS sent. Regression for a `Received-SPF`
//! of a permerror/temperror whose comment carried the unbounded sender.
//!
//! The milter folds values at spaces only, so the property is on the
//! longest space-separated run of each value: with the field name in
//! front of the first, it must fit in 998 octets.

use proptest::prelude::*;
use tollgate_checks::headers::{authentication_results, received_spf};
use tollgate_checks::{
    Action, FcrdnsInfo, Identity, Outcome, SkipReason, SpfOutput, SpfResult, Stage, StageReport,
};

const LIMIT: usize = 998;

fn longest_run(name: &str, value: &str) -> usize {
    value
        .split(' ')
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                name.len() + 2 + w.len()
            } else {
                w.len() + 1
            }
        })
        .max()
        .unwrap_or(0)
}

fn result() -> impl Strategy<Value = SpfResult> {
    prop_oneof![
        Just(SpfResult::Pass),
        Just(SpfResult::Fail),
        Just(SpfResult::SoftFail),
        Just(SpfResult::Neutral),
        Just(SpfResult::None),
        Just(SpfResult::PermError),
        Just(SpfResult::TempError),
    ]
}

/// Long text without spaces: the worst case for folding.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z.@()\"\\\\]{0,40}",
        (1usize..6000).prop_map(|n| "x".repeat(n)),
        (1usize..3000).prop_map(|n| "\"(".repeat(n)),
        "[^ ]{0,2000}",
    ]
}

fn output(result: SpfResult, identity: Identity, s: [String; 5]) -> SpfOutput {
    let [sender, domain, helo, mechanism, problem] = s;
    SpfOutput {
        identity,
        ip: "192.0.2.7".parse().unwrap(),
        helo,
        sender,
        checked_domain: domain.clone(),
        result,
        domain,
        mechanism: Some(mechanism),
        explanation: None,
        problem: Some(problem),
        lookups: 0,
        void_lookups: 0,
        queries: 0,
        trace: Vec::new(),
    }
}

fn report(stage: Stage, spf: Option<SpfOutput>, fcrdns: Option<FcrdnsInfo>) -> StageReport {
    StageReport {
        stage,
        outcome: Outcome::Pass,
        detail: String::new(),
        action: Action::Tag,
        reply: None,
        spf,
        fcrdns,
        dns_queries: 0,
        skip: None,
        lists: Vec::new(),
        notes: Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn no_added_header_line_exceeds_998_octets(
        result in result(),
        helo_identity in any::<bool>(),
        s in [text(), text(), text(), text(), text()],
        envelope in text(),
        ptr in text(),
        user in text(),
    ) {
        let identity = if helo_identity { Identity::Helo } else { Identity::MailFrom };
        let out = output(result, identity, s);
        let v = received_spf(&out, &envelope, "mx.example.org");
        prop_assert!(longest_run("Received-SPF", &v) <= LIMIT, "{}", v.len());
        prop_assert!(!v.contains('\r') && !v.contains('\n'));

        let info = FcrdnsInfo {
            ip: out.ip,
            ptr_names: vec![ptr.clone()],
            confirmed: Some(ptr),
            generic: None,
        };
        let reports = [
            report(Stage::Fcrdns, None, Some(info)),
            report(Stage::SpfHelo, Some(out.clone()), None),
            report(Stage::SpfMailfrom, Some(out), None),
        ];
        let ar = authentication_results("mx.example.org", &reports, None);
        prop_assert!(longest_run("Authentication-Results", &ar) <= LIMIT);
        let skipped = SkipReason::Authenticated(user);
        let ar = authentication_results("mx.example.org", &reports, Some(&skipped));
        prop_assert!(longest_run("Authentication-Results", &ar) <= LIMIT);
    }
}
