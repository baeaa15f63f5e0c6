//! `tollgate check` over real DNS packets: the hickory adapter asks a
//! testdns server on 127.0.0.1, and every case asserts the stage results
//! and the reply text a remote administrator would see.

use std::net::IpAddr;

use tollgate::checks::{Outcome, Stage};
use tollgate::cli::check::{
    CheckArgs, CheckReport, DnsArgs, Format, render_json, render_text, run,
};
use tollgate_testdns::{TestDns, Transport, suite::parse_zone};

/// A zone for all cases. Clients: 192.0.2.7 (mx.example.com, FCrDNS ok),
/// 192.0.2.8 (PTR host.example.net, which has no A record),
/// 2001:db8::25 (mx6.example.com, FCrDNS ok over ip6.arpa).
fn zone() -> String {
    let mut z = String::from(
        r#"
example.com:
  - TXT: "v=spf1 include:_spf.example.net -all"
  - MX: [10, mx.example.com]
_spf.example.net:
  - TXT: "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all"
mx.example.com:
  - A: 192.0.2.7
mx-out.example.com:
  - A: 198.51.100.20
  - TXT: "v=spf1 a ~all"
7.2.0.192.in-addr.arpa:
  - PTR: mx.example.com
8.2.0.192.in-addr.arpa:
  - PTR: host.example.net
host.example.net:
  - TXT: "no addresses here"
mx6.example.com:
  - AAAA: "2001:db8::25"
5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa:
  - PTR: mx6.example.com
v6.example.com:
  - TXT: "v=spf1 ip6:2001:db8::/48 -all"
slow.example.com:
  - TIMEOUT
big.example.com:
  - TXT:
"#,
    );
    // A TXT record of 16 strings, about 900 bytes: too big for UDP.
    for i in 0..16 {
        z.push_str(&format!(
            "    - \"{} ip4:203.0.113.{i}/32 ip4:198.51.100.{i}/32 \"\n",
            if i == 0 { "v=spf1" } else { "" }
        ));
    }
    z.push_str("    - \"ip4:192.0.2.0/24 -all\"\n");
    // A chain of 12 includes: one more lookup than RFC 7208 §4.6.4 allows.
    z.push_str("chain.example.com:\n  - TXT: \"v=spf1 include:c1.example.com -all\"\n");
    for i in 1..12 {
        z.push_str(&format!(
            "c{i}.example.com:\n  - TXT: \"v=spf1 include:c{}.example.com -all\"\n",
            i + 1
        ));
    }
    z.push_str("c12.example.com:\n  - TXT: \"v=spf1 ip4:192.0.2.0/24 -all\"\n");
    z
}

async fn check(dns: &TestDns, ip: &str, helo: Option<&str>, sender: Option<&str>) -> CheckReport {
    let args = CheckArgs {
        ip: ip.parse::<IpAddr>().unwrap(),
        helo: helo.map(str::to_owned),
        sender: sender.map(str::to_owned),
        dns: DnsArgs {
            config: None,
            nameservers: vec![dns.addr().to_string()],
            dns_timeout: Some(0.3),
            format: Format::Text,
        },
    };
    run(&args).await.expect("check runs")
}

async fn server() -> TestDns {
    TestDns::start(parse_zone(&zone()).expect("zone parses"))
        .await
        .expect("testdns starts")
}

fn stage(report: &CheckReport, stage: Stage) -> &tollgate::checks::StageReport {
    report
        .evaluation
        .report(stage)
        .unwrap_or_else(|| panic!("{stage} did not run"))
}

#[tokio::test]
async fn helo_softfail_is_tagged_while_mailfrom_passes_through_include() {
    let dns = server().await;
    let r = check(
        &dns,
        "192.0.2.7",
        Some("mx-out.example.com"),
        Some("alice@example.com"),
    )
    .await;
    let helo = stage(&r, Stage::SpfHelo);
    assert_eq!(helo.outcome, Outcome::SoftFail);
    assert_eq!(
        helo.spf.as_ref().unwrap().mechanism.as_deref(),
        Some("~all")
    );
    assert!(
        helo.reply.is_none(),
        "softfail on HELO must not produce a reply"
    );
    let mailfrom = stage(&r, Stage::SpfMailfrom);
    assert_eq!(mailfrom.outcome, Outcome::Pass);
    assert_eq!(
        mailfrom.spf.as_ref().unwrap().mechanism.as_deref(),
        Some("include:_spf.example.net")
    );
    assert_eq!(r.verdict.action_str(), "accept");
    let (_, rspf) = r
        .headers
        .iter()
        .find(|(n, _)| *n == "Received-SPF")
        .unwrap();
    assert!(rspf.starts_with("pass "), "{rspf}");
    assert!(rspf.contains("identity=mailfrom;"), "{rspf}");
    assert!(
        rspf.contains("envelope-from=\"alice@example.com\";"),
        "{rspf}"
    );
    let (_, ar) = r
        .headers
        .iter()
        .find(|(n, _)| *n == "Authentication-Results")
        .unwrap();
    assert!(ar.contains("spf=pass smtp.mailfrom=example.com"), "{ar}");
    assert!(
        ar.contains("spf=softfail smtp.helo=mx-out.example.com"),
        "{ar}"
    );
    assert!(
        ar.contains("iprev=pass policy.iprev=192.0.2.7 (mx.example.com)"),
        "{ar}"
    );
}

#[tokio::test]
async fn ptr_without_a_record_fails_fcrdns_and_the_reply_names_the_ptr() {
    let dns = server().await;
    let r = check(
        &dns,
        "192.0.2.8",
        Some("mx.example.com"),
        Some("alice@example.com"),
    )
    .await;
    let fcrdns = stage(&r, Stage::Fcrdns);
    assert_eq!(fcrdns.outcome, Outcome::Fail);
    assert_eq!(
        r.verdict.reply.as_ref().unwrap().to_string(),
        "550 5.7.25 reverse DNS of 192.0.2.8 does not confirm: PTR host.example.net has no A record pointing back"
    );
    assert_eq!(r.verdict.stage, Some(Stage::Fcrdns));
}

#[tokio::test]
async fn bare_word_helo_is_rejected_as_not_fully_qualified() {
    let dns = server().await;
    let r = check(
        &dns,
        "192.0.2.7",
        Some("OEMCOMPUTER"),
        Some("alice@example.com"),
    )
    .await;
    assert_eq!(stage(&r, Stage::HeloSyntax).outcome, Outcome::Fail);
    assert_eq!(
        r.verdict.reply.as_ref().unwrap().to_string(),
        "550 5.5.2 HELO \"OEMCOMPUTER\" is not a fully qualified domain name or address literal"
    );
    // SPF for a bare word HELO has nothing to check (RFC 7208 §4.3).
    assert_eq!(stage(&r, Stage::SpfHelo).outcome, Outcome::None);
}

#[tokio::test]
async fn bare_ip_helo_is_rejected_and_told_to_use_a_literal() {
    let dns = server().await;
    let r = check(
        &dns,
        "192.0.2.7",
        Some("192.0.2.7"),
        Some("alice@example.com"),
    )
    .await;
    assert_eq!(
        r.verdict.reply.as_ref().unwrap().to_string(),
        "550 5.5.2 HELO \"192.0.2.7\" is a bare IP address, not an address literal like [192.0.2.7]"
    );
    let r = check(
        &dns,
        "192.0.2.7",
        Some("[192.0.2.7]"),
        Some("alice@example.com"),
    )
    .await;
    assert_eq!(stage(&r, Stage::HeloSyntax).outcome, Outcome::Pass);
    assert_eq!(stage(&r, Stage::HeloDns).outcome, Outcome::None);
}

#[tokio::test]
async fn txt_record_over_512_bytes_arrives_over_tcp_and_passes() {
    let dns = server().await;
    let r = check(
        &dns,
        "192.0.2.7",
        Some("mx.example.com"),
        Some("news@big.example.com"),
    )
    .await;
    let mailfrom = stage(&r, Stage::SpfMailfrom);
    assert_eq!(mailfrom.outcome, Outcome::Pass, "{}", mailfrom.detail);
    assert_eq!(
        mailfrom.spf.as_ref().unwrap().mechanism.as_deref(),
        Some("ip4:192.0.2.0/24")
    );
    let over_tcp = dns
        .queries()
        .iter()
        .any(|q| q.name == "big.example.com" && q.transport == Transport::Tcp);
    assert!(over_tcp, "the TXT record was never asked for over TCP");
}

#[tokio::test]
async fn silent_nameserver_gives_temperror_and_a_4xx_within_the_budget() {
    let dns = server().await;
    let r = check(
        &dns,
        "192.0.2.7",
        Some("mx.example.com"),
        Some("bob@slow.example.com"),
    )
    .await;
    let mailfrom = stage(&r, Stage::SpfMailfrom);
    assert_eq!(mailfrom.outcome, Outcome::TempError);
    let problem = mailfrom.spf.as_ref().unwrap().problem.clone().unwrap();
    // The per-query timeout answered, not the overall time budget.
    assert_eq!(problem, "DNS timeout looking up TXT for slow.example.com");
    let reply = mailfrom.reply.as_ref().unwrap().to_string();
    assert_eq!(
        reply,
        "451 4.7.24 SPF temperror for slow.example.com: DNS timeout looking up TXT for slow.example.com, try again later"
    );
    assert!(reply.starts_with('4'), "DNS trouble must never be a 5xx");
}

#[tokio::test]
async fn twelve_lookup_include_chain_is_a_permerror() {
    let dns = server().await;
    let r = check(
        &dns,
        "192.0.2.7",
        Some("mx.example.com"),
        Some("alice@chain.example.com"),
    )
    .await;
    let mailfrom = stage(&r, Stage::SpfMailfrom);
    assert_eq!(mailfrom.outcome, Outcome::PermError);
    assert_eq!(
        mailfrom.reply.as_ref().unwrap().to_string(),
        "550 5.7.24 SPF permerror for chain.example.com: more than 10 DNS lookups"
    );
    assert_eq!(mailfrom.spf.as_ref().unwrap().lookups, 11);
}

#[tokio::test]
async fn ipv6_client_is_confirmed_over_ip6_arpa_and_passes_ip6() {
    let dns = server().await;
    let r = check(
        &dns,
        "2001:db8::25",
        Some("mx6.example.com"),
        Some("carol@v6.example.com"),
    )
    .await;
    let fcrdns = stage(&r, Stage::Fcrdns);
    assert_eq!(fcrdns.outcome, Outcome::Pass, "{}", fcrdns.detail);
    assert_eq!(
        fcrdns.fcrdns.as_ref().unwrap().confirmed.as_deref(),
        Some("mx6.example.com")
    );
    assert_eq!(stage(&r, Stage::HeloDns).outcome, Outcome::Pass);
    let mailfrom = stage(&r, Stage::SpfMailfrom);
    assert_eq!(mailfrom.outcome, Outcome::Pass);
    assert_eq!(
        mailfrom.spf.as_ref().unwrap().mechanism.as_deref(),
        Some("ip6:2001:db8::/48")
    );
    let (_, ar) = r
        .headers
        .iter()
        .find(|(n, _)| *n == "Authentication-Results")
        .unwrap();
    assert!(ar.contains("policy.iprev=\"2001:db8::25\""), "{ar}");
}

#[tokio::test]
async fn json_output_keeps_the_contract_shape() {
    let dns = server().await;
    let r = check(
        &dns,
        "192.0.2.7",
        Some("mx-out.example.com"),
        Some("alice@example.com"),
    )
    .await;
    let json = render_json(&r);
    assert_eq!(json["client"]["ip"], "192.0.2.7");
    assert_eq!(json["client"]["helo"], "mx-out.example.com");
    let names: Vec<&str> = json["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "helo-syntax",
            "fcrdns",
            "rdns-name",
            "helo-dns",
            "spf-helo",
            "sender-domain",
            "spf-mailfrom"
        ]
    );
    let helo = &json["stages"][4];
    assert_eq!(helo["result"], "softfail");
    assert_eq!(helo["domain"], "mx-out.example.com");
    assert_eq!(helo["mechanism"], "~all");
    assert_eq!(helo["lookups"], 1);
    assert_eq!(json["verdict"]["action"], "accept");
    assert!(json["verdict"]["reply"].is_null());
    // The text form carries the same facts for people.
    let text = render_text(&r);
    assert!(text.contains("spf-helo      softfail   tag"), "{text}");
    assert!(text.contains("verdict: accept"), "{text}");
}

#[tokio::test]
async fn control_characters_from_dns_are_escaped_in_the_text_report() {
    // Regression: `check --format text` printed CR, LF and ESC from DNS data raw.
    let zone = "ctl.example.com:\n  - TXT: \"v=spf1 ip4:192.0.2.0/24\\r\\nverdict: accept\\e[2J -all\"\n\
                6.2.0.192.in-addr.arpa:\n  - PTR: \"a\\r\\nb.example.com\"\n  - PTR: \"c.example.com\"\n";
    let dns = TestDns::start(parse_zone(zone).expect("zone parses"))
        .await
        .expect("testdns starts");
    let r = check(
        &dns,
        "192.0.2.6",
        Some("ctl.example.com"),
        Some("a@ctl.example.com"),
    )
    .await;
    let text = render_text(&r);
    for line in text.lines() {
        assert!(
            !line.chars().any(char::is_control),
            "a control character reached the terminal: {line:?}"
        );
    }
    assert!(!text.lines().any(|l| l.starts_with("verdict: accept\\e")));
    assert!(text.contains("\\r\\n"), "{text}");
}

/// Scripts parse `--format json`: a check that cannot run (here, a
/// configuration file that does not exist) still prints one object, with
/// the client as given and `error` saying why, and exits 1 with the
/// one-line reason on stderr.
#[test]
fn json_is_one_object_even_when_the_check_cannot_run() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "check",
            "--ip",
            "192.0.2.7",
            "--helo",
            "mx.example.com",
            "--config",
            "/nonexistent/tollgate-test/milter.yaml",
            "--format",
            "json",
        ])
        .output()
        .expect("run tollgate check");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(json["client"]["ip"], "192.0.2.7");
    assert_eq!(json["client"]["helo"], "mx.example.com");
    assert_eq!(json["stages"], serde_json::json!([]));
    assert!(json["verdict"].is_null());
    let error = json["error"].as_str().unwrap();
    assert!(
        error.contains("/nonexistent/tollgate-test/milter.yaml"),
        "{error}"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("tollgate check: "), "{stderr}");
}
