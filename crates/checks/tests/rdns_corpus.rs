//! The rdns-name detection measured on a corpus of real-world reverse
//! name shapes (`data/rdns-corpus.tsv`): large senders' outbound hosts,
//! business lines, cloud defaults and access providers' pool names, each
//! with the expected answer and where the shape was seen. Prints
//! precision and recall and holds them above the figures in
//! docs/rdns-name.md.
//!
//! The detection is a private module of the checks crate; it is compiled
//! into this test from its source.

#[allow(dead_code)]
#[path = "../src/generic.rs"]
mod generic;

use std::io::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

const CORPUS: &str = include_str!("data/rdns-corpus.tsv");

/// The minimums the docs promise.
const MIN_PRECISION: f64 = 0.95;
const MIN_RECALL: f64 = 0.90;

struct Case {
    line: usize,
    name: &'static str,
    ip: IpAddr,
    generic: bool,
}

fn cases() -> Vec<Case> {
    let documentation: Vec<IpNet> = [
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "2001:db8::/32",
    ]
    .iter()
    .map(|n| n.parse().unwrap())
    .collect();
    let mut cases = Vec::new();
    for (i, line) in CORPUS.lines().enumerate() {
        let line_no = i + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, ip, generic, source] = fields[..] else {
            panic!(
                "line {line_no}: want 4 tab-separated fields, got {}",
                fields.len()
            );
        };
        let ip: IpAddr = ip
            .parse()
            .unwrap_or_else(|e| panic!("line {line_no}: address {ip}: {e}"));
        assert!(
            documentation.iter().any(|net| net.contains(&ip)),
            "line {line_no}: {ip} is not a documentation address"
        );
        let generic = match generic {
            "yes" => true,
            "no" => false,
            other => panic!("line {line_no}: generic is yes or no, not {other:?}"),
        };
        assert!(!source.trim().is_empty(), "line {line_no}: no source");
        cases.push(Case {
            line: line_no,
            name,
            ip,
            generic,
        });
    }
    cases
}

#[test]
fn corpus_is_large_and_has_both_kinds() {
    let cases = cases();
    let generic = cases.iter().filter(|c| c.generic).count();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    assert!(generic >= 25, "only {generic} generic cases");
    assert!(
        cases.len() - generic >= 25,
        "only {} named cases",
        cases.len() - generic
    );
}

#[test]
fn precision_and_recall_on_the_corpus() {
    let (mut tp, mut fp, mut tn, mut fn_) = (0u32, 0u32, 0u32, 0u32);
    for case in cases() {
        let class = generic::classify(case.name, case.ip);
        let said = class.is_generic();
        assert_eq!(
            said,
            generic::generic_reason(case.name, case.ip).is_some(),
            "generic_reason and classify disagree on {}",
            case.name
        );
        match (case.generic, said) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
            (true, false) => fn_ += 1,
        }
        let mark = if said == case.generic { "ok  " } else { "MISS" };
        println!(
            "{mark} line {:>3} want {:<7} {} [{}]: {class}",
            case.line,
            if case.generic { "generic" } else { "named" },
            case.name,
            case.ip
        );
    }
    let precision = f64::from(tp) / f64::from(tp + fp);
    let recall = f64::from(tp) / f64::from(tp + fn_);
    // Straight to stderr, past the test harness's capture, so that the
    // figures show in every run, not only with --nocapture.
    let _ = writeln!(
        std::io::stderr(),
        "rdns-name corpus: {} cases; true positives {tp}, false positives {fp}, \
         true negatives {tn}, false negatives {fn_}; precision {precision:.3}, recall {recall:.3}",
        tp + fp + tn + fn_
    );
    assert!(
        precision >= MIN_PRECISION,
        "precision {precision:.3} below {MIN_PRECISION}"
    );
    assert!(
        recall >= MIN_RECALL,
        "recall {recall:.3} below {MIN_RECALL}"
    );
}
