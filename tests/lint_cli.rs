//! `tollgate lint` as a whole: the exit statuses of the real binary, the
//! JSON contract, the text report, three real-world shapes, and hostile
//! zones (include loops, answers of 10,000 names, a 64 KiB TXT record)
//! that must end with bounded queries, never a panic or a hang.

mod lint;
#[path = "common/temp_dir.rs"]
mod temp_dir;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use lint::{binary, binary_as_given, code, lint, server, start};
use serde_json::Value;
use temp_dir::TempDir;
use tollgate::checks::lint::Status;
use tollgate::checks::{Outcome, SpfResult};
use tollgate::cli::lint::{render_json, render_text};
use tollgate_testdns::Transport;

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
    names.iter().copied().collect()
}

#[tokio::test]
async fn exit_status_is_0_clean_1_errors_2_unchecked() {
    let dns = server().await;
    assert_eq!(binary(&dns, &["good.example.com"]).await.0, 0);
    assert_eq!(binary(&dns, &["chain.example.com"]).await.0, 1);
    assert_eq!(
        binary(&dns, &["good.example.com", "--ip", "198.51.100.1"])
            .await
            .0,
        1
    );
    assert_eq!(binary(&dns, &["slow.example.com"]).await.0, 2);
    // Not a domain name: could not check.
    assert_eq!(binary(&dns, &["bad..example.com"]).await.0, 2);
}

#[tokio::test]
async fn strict_makes_warnings_count_as_errors() {
    let dns = server().await;
    assert_eq!(binary(&dns, &["near.example.com"]).await.0, 0);
    let (status, text) = binary(&dns, &["near.example.com", "--strict"]).await;
    assert_eq!(status, 1);
    assert!(
        text.contains("warnings count as errors (--strict)"),
        "{text}"
    );
    // Notes alone never fail, even strict.
    assert_eq!(
        binary(&dns, &["overlap.example.com", "--strict"]).await.0,
        0
    );
}

#[tokio::test]
async fn json_output_keeps_the_contract_shape() {
    let dns = server().await;
    let (status, out) = binary(
        &dns,
        &[
            "bigsender.example.com",
            "--ip",
            "203.0.113.7",
            "--helo",
            "mta.bigsender.example.com",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(status, 0, "{out}");
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(
        keys(&v),
        set(&[
            "domain",
            "record",
            "lookups",
            "void_lookups",
            "tree",
            "findings",
            "ips",
            "helo"
        ])
    );
    assert_eq!(v["domain"], "bigsender.example.com");
    assert_eq!(
        v["record"],
        "v=spf1 include:_spf.bigsender.example.com -all"
    );
    assert_eq!(v["lookups"], serde_json::json!({"used": 1, "limit": 10}));
    assert_eq!(
        v["void_lookups"],
        serde_json::json!({"used": 0, "limit": 2})
    );
    let root = &v["tree"][0];
    assert_eq!(
        keys(root),
        set(&["domain", "record", "lookups", "children"])
    );
    assert_eq!(root["lookups"], 1);
    assert_eq!(root["children"][0]["domain"], "_spf.bigsender.example.com");
    assert_eq!(root["children"][0]["children"], serde_json::json!([]));
    let findings = v["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    for f in findings {
        assert_eq!(
            keys(f),
            set(&["severity", "code", "message", "where", "rfc", "fix"])
        );
        assert!(["error", "warning", "info"].contains(&f["severity"].as_str().unwrap()));
    }
    let helo_warning = findings
        .iter()
        .find(|f| f["code"] == "helo-not-permitted")
        .expect("helo-not-permitted");
    assert_eq!(helo_warning["severity"], "warning");
    assert_eq!(helo_warning["where"], "203.0.113.7");
    assert_eq!(helo_warning["rfc"], "RFC 7208 §2.3");
    assert_eq!(
        v["ips"],
        serde_json::json!([{"ip": "203.0.113.7", "result": "pass",
                            "mechanism": "include:_spf.bigsender.example.com"}])
    );
    let helo = &v["helo"];
    assert_eq!(
        keys(helo),
        set(&["name", "record", "results", "resolves_to_ip", "fcrdns"])
    );
    assert_eq!(helo["record"], "v=spf1 a ~all");
    assert_eq!(
        helo["results"],
        serde_json::json!([{"ip": "203.0.113.7", "result": "softfail"}])
    );
    assert_eq!(helo["resolves_to_ip"], false);
    assert_eq!(
        helo["fcrdns"],
        serde_json::json!([{"ip": "203.0.113.7", "result": "pass"}])
    );
}

const CONTRACT_KEYS: [&str; 8] = [
    "domain",
    "record",
    "lookups",
    "void_lookups",
    "tree",
    "findings",
    "ips",
    "helo",
];

/// Exit status 2 with `--format json` is still one JSON object: the
/// report with its `dns-error` when DNS failed, and the contract's keys
/// with an `error` when the lint could not start.
#[tokio::test]
async fn json_is_one_object_even_when_the_domain_cannot_be_checked() {
    let dns = server().await;
    let (status, out) = binary(&dns, &["slow.example.com", "--format", "json"]).await;
    assert_eq!(status, 2, "{out}");
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(keys(&v), set(&CONTRACT_KEYS));
    assert_eq!(v["findings"][0]["code"], "dns-error", "{out}");
    assert_eq!(v["findings"][0]["where"], "slow.example.com");

    // An include whose nameserver is silent: exit 2 as well, not 1.
    let (status, out) = binary(&dns, &["slowinc.example.com", "--format", "json"]).await;
    assert_eq!(status, 2, "{out}");
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "dns-error" && f["where"] == "slow.example.com"),
        "{out}"
    );

    let (status, out, err) = binary_as_given(vec![
        "bad..example.com".into(),
        "--format".into(),
        "json".into(),
    ])
    .await;
    assert_eq!(status, 2);
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    let mut with_error = CONTRACT_KEYS.to_vec();
    with_error.push("error");
    assert_eq!(keys(&v), set(&with_error));
    assert_eq!(v["error"], "bad..example.com is not a domain name");
    assert_eq!(v["findings"], serde_json::json!([]));
    assert_eq!(
        err,
        "tollgate lint: bad..example.com is not a domain name\n"
    );
}

/// `--config` takes the resolver from a milter.yaml; `--nameserver`
/// overrides it; a bad file is refused with one line naming file and key.
#[tokio::test]
async fn config_file_gives_the_resolver_and_nameserver_overrides_it() {
    let dns = server().await;
    // Another server, where good.example.com lets everyone pass.
    let other = start("good.example.com:\n  - TXT: \"v=spf1 +all\"\n").await;
    let dir = TempDir::new("lint-config");
    let config = dir.path().join("milter.yaml");
    let write = |servers: &str| {
        std::fs::write(
            &config,
            format!("dns:\n  nameservers: [\"{servers}\"]\n  timeout: 300ms\n  attempts: 1\n"),
        )
        .expect("config written")
    };
    let config_arg = config.to_str().expect("a UTF-8 path").to_owned();
    let run = |extra: Vec<String>| {
        let mut args = vec![
            "good.example.com".to_owned(),
            "--config".to_owned(),
            config_arg.clone(),
        ];
        args.extend(extra);
        binary_as_given(args)
    };

    write(&dns.addr().to_string());
    let (status, out, err) = run(vec![]).await;
    assert_eq!(status, 0, "{out}{err}");
    assert!(
        out.contains("good.example.com: v=spf1 ip4:192.0.2.0/24 -all"),
        "{out}"
    );

    write(&other.addr().to_string());
    let (status, out, _) = run(vec![]).await;
    assert_eq!(status, 1, "{out}");
    assert!(out.contains("pass-all"), "{out}");
    let (status, out, _) = run(vec!["--nameserver".into(), dns.addr().to_string()]).await;
    assert_eq!(status, 0, "--nameserver must override the file: {out}");

    std::fs::write(&config, "dns:\n  timeout: 2m\n").expect("config written");
    let (status, out, err) = run(vec!["--format".into(), "json".into()]).await;
    assert_eq!(status, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("tollgate lint: {config_arg}: dns.timeout")),
        "{err}"
    );
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    assert!(
        v["error"].as_str().unwrap().contains("dns.timeout"),
        "{out}"
    );
}

/// IPv6 senders: check_host for each, the deciding term, an address
/// outside the record is an error, and the text keeps one column.
#[tokio::test]
async fn ipv6_addresses_are_checked_and_shown_in_one_column() {
    let dns = server().await;
    let (status, out) = binary(
        &dns,
        &[
            "v6.example.com",
            "--ip",
            "2001:db8:1::7",
            "--ip",
            "2001:db8:2:3:4:5:6:7",
            "--ip",
            "192.0.2.7",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(status, 1, "{out}");
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(
        v["ips"],
        serde_json::json!([
            {"ip": "2001:db8:1::7", "result": "pass", "mechanism": "ip6:2001:db8:1::/48"},
            {"ip": "2001:db8:2:3:4:5:6:7", "result": "fail", "mechanism": "-all"},
            {"ip": "192.0.2.7", "result": "pass", "mechanism": "ip4:192.0.2.0/24"},
        ])
    );
    let wrong: Vec<&Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "ip-not-permitted")
        .collect();
    assert_eq!(wrong.len(), 1, "{out}");
    assert_eq!(wrong[0]["where"], "2001:db8:2:3:4:5:6:7");

    let (_, text) = binary(
        &dns,
        &[
            "v6.example.com",
            "--ip",
            "2001:db8:1::7",
            "--ip",
            "2001:db8:2:3:4:5:6:7",
        ],
    )
    .await;
    assert!(
        text.contains("  2001:db8:1::7        pass       matched \"ip6:2001:db8:1::/48\"")
            && text.contains("  2001:db8:2:3:4:5:6:7 fail       matched \"-all\""),
        "{text}"
    );
}

#[tokio::test]
async fn json_without_ip_or_helo_has_empty_ips_and_null_helo() {
    let dns = server().await;
    let report = lint(&dns, "none.example.com", &[], None).await;
    let v = render_json(&report);
    assert_eq!(v["record"], Value::Null);
    assert_eq!(v["ips"], serde_json::json!([]));
    assert_eq!(v["helo"], Value::Null);
    assert_eq!(v["findings"][0]["code"], "no-record");
    assert_eq!(v["findings"][0]["where"], "none.example.com");
}

#[tokio::test]
async fn text_output_explains_each_finding_with_its_fix() {
    let dns = server().await;
    let report = lint(&dns, "chain.example.com", &[], None).await;
    let text = render_text(&report, false);
    assert!(
        text.starts_with("chain.example.com: v=spf1 include:c1.example.com -all\n"),
        "{text}"
    );
    assert!(
        text.contains("DNS lookups 12 of 10, void lookups 0 of 2"),
        "{text}"
    );
    assert!(
        text.contains("include tree:\n  chain.example.com [1 lookup]"),
        "{text}"
    );
    assert!(
        text.contains("error    too-many-lookups at include:c11.example.com (RFC 7208 §4.6.4)"),
        "{text}"
    );
    assert!(text.contains("receivers stop with permerror at \"include:c11.example.com\" in the record at c10.example.com"), "{text}");
    for f in &report.findings {
        assert!(text.contains(&format!("fix: {}", f.code.fix())), "{text}");
    }
    assert!(text.ends_with("errors (exit 1)\n"), "{text}");
}

#[tokio::test]
async fn control_characters_in_dns_data_are_escaped_in_text() {
    let dns = start(concat!(
        "evil.example.com:\n",
        "  - TXT: \"v=spf1 ip4:192.0.2.0/24 \\r\\n\\e[2J -all\"\n",
        "  - TXT: \"x v=spf1 \\e]0;owned\\a\"\n",
    ))
    .await;
    let report = lint(&dns, "evil.example.com", &[], None).await;
    assert!(report.has(code("syntax-error")), "{:#?}", report.findings);
    let text = render_text(&report, false);
    assert!(
        !text.contains('\r') && !text.contains('\x1b') && !text.contains('\x07'),
        "{text:?}"
    );
    for line in text.lines() {
        assert!(!line.starts_with("[2J"), "{text}");
    }
    assert!(text.contains("\\r\\n\\u{1b}[2J"), "{text}");
}

/// A large sender: its mail passes, but its HELO host's own record does
/// not cover the address it sends from: a warning naming the risk, not an
/// error, and `--strict` turns it into one.
#[tokio::test]
async fn large_sender_whose_helo_record_does_not_cover_itself() {
    let dns = server().await;
    let report = lint(
        &dns,
        "bigsender.example.com",
        &["203.0.113.7"],
        Some("mta.bigsender.example.com"),
    )
    .await;
    assert_eq!(report.ips[0].result, SpfResult::Pass);
    let helo = report.helo.as_ref().unwrap();
    assert_eq!(helo.results[0].result, SpfResult::SoftFail);
    assert_eq!(helo.results[0].mechanism.as_deref(), Some("~all"));
    assert_eq!(helo.resolves_to_ip, Some(false));
    assert_eq!(helo.fcrdns[0].result, Outcome::Pass);
    let warning = report
        .findings
        .iter()
        .find(|f| f.code == code("helo-not-permitted"))
        .expect("helo-not-permitted");
    assert!(
        warning
            .message
            .contains("strict receivers refuse mail at HELO"),
        "{}",
        warning.message
    );
    assert!(report.has(code("helo-not-resolving")));
    assert_eq!(report.status(false), Status::Clean);
    assert_eq!(report.status(true), Status::Errors);
}

/// Three providers' includes bring the tree to 9 lookups: a warning, and
/// the tree shows where each lookup goes.
#[tokio::test]
async fn record_near_the_limit_through_three_providers() {
    let dns = server().await;
    let report = lint(&dns, "near.example.com", &["198.51.100.200"], None).await;
    assert_eq!(report.lookups, 9);
    assert!(report.has(code("lookups-near-limit")));
    assert!(!report.has(code("too-many-lookups")));
    let tree = &report.tree;
    assert_eq!(tree.lookups, 4);
    let children: Vec<(&str, u32)> = tree
        .children
        .iter()
        .map(|c| (c.domain.as_str(), c.lookups))
        .collect();
    assert_eq!(
        children,
        [
            ("_spf.provider-a.test", 2),
            ("spf.provider-b.test", 1),
            ("mail.provider-c.test", 2)
        ]
    );
    assert_eq!(tree.children[0].children.len(), 2);
    assert_eq!(report.ips[0].result, SpfResult::Pass);
    assert_eq!(report.status(false), Status::Clean);
}

/// A big sender's 700-octet record: too long, fetched over TCP after a
/// truncated UDP answer, and still evaluated.
#[tokio::test]
async fn long_record_that_needs_tcp() {
    let dns = server().await;
    let report = lint(&dns, "long.example.com", &["203.0.113.15"], None).await;
    assert!(report.has(code("record-too-long")));
    assert!(report.has(code("answer-needs-tcp")));
    assert!(report.record.as_ref().is_some_and(|r| r.len() > 512));
    assert_eq!(report.ips[0].result, SpfResult::Pass);
    assert!(
        dns.queries().iter().any(|q| q.name == "long.example.com"
            && q.qtype == 16
            && q.transport == Transport::Tcp),
        "no TXT query over TCP"
    );
}

/// Hostile zones end, with bounded queries: each name is asked once, the
/// walk stops at its limits, and answers the wire cannot carry are DNS
/// errors, not hangs.
#[tokio::test]
async fn hostile_zones_are_bounded_in_queries() {
    let mut z = String::from(concat!(
        "self.example.com:\n  - TXT: \"v=spf1 include:self.example.com redirect=self.example.com\"\n",
        "loopa.example.com:\n  - TXT: \"v=spf1 include:loopb.example.com include:loopa.example.com -all\"\n",
        "loopb.example.com:\n  - TXT: \"v=spf1 include:loopa.example.com redirect=loopb.example.com\"\n",
        "mxflood.example.com:\n  - TXT: \"v=spf1 mx a:aflood.example.com ptr -all\"\n",
    ));
    for i in 0..10_000 {
        let _ = writeln!(z, "  - MX: [10, m{i}.example.com]");
    }
    z.push_str("aflood.example.com:\n");
    for i in 0..10_000 {
        let _ = writeln!(z, "  - A: 10.{}.{}.{}", i >> 16, (i >> 8) & 0xff, i & 0xff);
    }
    z.push_str("100.2.0.192.in-addr.arpa:\n");
    for i in 0..10_000 {
        let _ = writeln!(z, "  - PTR: p{i}.example.com");
    }
    // 64,000 octets of ip4 terms in 255-octet strings.
    let mut text = String::from("v=spf1 ");
    let mut i = 0u32;
    while text.len() < 64_000 {
        let _ = write!(text, "ip4:10.{}.{}.0/24 ", (i >> 8) & 0xff, i & 0xff);
        i += 1;
    }
    text.push_str("-all");
    z.push_str("big64.example.com:\n  - TXT:\n");
    for chunk in text.as_bytes().chunks(255) {
        let _ = writeln!(z, "    - \"{}\"", std::str::from_utf8(chunk).unwrap());
    }
    let dns = start(&z).await;

    for domain in ["self.example.com", "loopa.example.com"] {
        dns.reset_counts();
        let report = lint(&dns, domain, &["192.0.2.7"], None).await;
        assert!(
            report.has(code("include-loop")),
            "{domain}: {:#?}",
            report.findings
        );
        assert!(
            dns.query_count() <= 20,
            "{domain}: {} queries",
            dns.query_count()
        );
    }

    dns.reset_counts();
    let report = lint(
        &dns,
        "mxflood.example.com",
        &["192.0.2.100"],
        Some("mx.example.com"),
    )
    .await;
    assert_ne!(
        report.status(false),
        Status::Clean,
        "{:#?}",
        report.findings
    );
    assert!(dns.query_count() <= 60, "{} queries", dns.query_count());

    dns.reset_counts();
    let (status, out) = binary(&dns, &["big64.example.com", "--ip", "192.0.2.7"]).await;
    assert_eq!(status, 1, "{out}");
    assert!(
        out.contains("record-too-long") && out.contains("answer-needs-tcp"),
        "{out}"
    );
    assert!(out.contains("192.0.2.7        fail"), "{out}");
    assert!(dns.query_count() <= 10, "{} queries", dns.query_count());
}

#[test]
fn docs_list_every_code_with_an_example() {
    let docs = include_str!("../docs/lint.md");
    for c in tollgate::checks::lint::Code::ALL {
        let heading = format!("### `{}`", c.as_str());
        let at = docs
            .find(&heading)
            .unwrap_or_else(|| panic!("docs/lint.md has no section {heading}"));
        let section = &docs[at + heading.len()..];
        let section = &section[..section.find("\n### ").unwrap_or(section.len())];
        assert!(section.contains("```"), "{heading} has no example");
        assert!(
            section.contains(c.severity().as_str()),
            "{heading} does not give its severity"
        );
    }
}
