//! Shared by the `tollgate lint` tests: the zone (tests/lint/zone.yaml plus
//! generated records), a testdns server on 127.0.0.1, and ways to run the
//! lint in-process or as the real binary.

#![allow(dead_code)]

use std::fmt::Write as _;

use tollgate::checks::lint::{Code, LintReport};
use tollgate::cli::dns_args::{DnsArgs, Format};
use tollgate::cli::lint::{LintArgs, run};
use tollgate_testdns::{TestDns, suite::parse_zone};

/// The zone: the YAML file and the records too long or too many to write
/// by hand.
pub fn zone() -> String {
    let mut z = String::from(include_str!("zone.yaml"));
    // A chain of 12 includes: 12 lookups, two more than allowed.
    z.push_str("chain.example.com:\n  - TXT: \"v=spf1 include:c1.example.com -all\"\n");
    for i in 1..12 {
        let _ = writeln!(
            z,
            "c{i}.example.com:\n  - TXT: \"v=spf1 include:c{}.example.com\"",
            i + 1
        );
    }
    z.push_str("c12.example.com:\n  - TXT: \"v=spf1 ip4:192.0.2.0/24\"\n");
    // A big sender's long record: 4 strings, about 700 octets.
    z.push_str("long.example.com:\n  - TXT:\n    - \"v=spf1 ip4:192.0.2.0/24 \"\n");
    for chunk in 0..4 {
        z.push_str("    - \"");
        for i in 0..4 {
            let n = chunk * 4 + i;
            let _ = write!(z, "ip4:198.51.100.{n}/32 ip4:203.0.113.{n}/32 ");
        }
        z.push_str("\"\n");
    }
    z.push_str("    - \"-all\"\n");
    // A short record among long verification tokens: the answer needs TCP.
    z.push_str("tcp.example.com:\n  - TXT: \"v=spf1 ip4:192.0.2.0/24 -all\"\n");
    for token in ["site-verification", "domain-verification"] {
        let _ = writeln!(z, "  - TXT: \"{token}={}\"", "x".repeat(230));
    }
    // 11 MX names.
    z.push_str("manymx.example.com:\n  - TXT: \"v=spf1 mx -all\"\n");
    for i in 0..11 {
        let _ = writeln!(z, "  - MX: [10, mx{i}.example.com]");
    }
    // 11 PTR names for 192.0.2.99.
    z.push_str("99.2.0.192.in-addr.arpa:\n");
    for i in 0..11 {
        let _ = writeln!(z, "  - PTR: h{i}.example.com");
    }
    // Each record includes the next one twice: a billion paths, 31 names.
    z.push_str(
        "wide.example.com:\n  - TXT: \"v=spf1 include:w1.example.com include:w1.example.com -all\"\n",
    );
    for i in 1..30 {
        let next = format!("w{}.example.com", i + 1);
        let _ = writeln!(
            z,
            "w{i}.example.com:\n  - TXT: \"v=spf1 include:{next} include:{next}\""
        );
    }
    z.push_str("w30.example.com:\n  - TXT: \"v=spf1 ip4:192.0.2.0/24\"\n");
    z
}

/// A testdns server for [`zone`].
pub async fn server() -> TestDns {
    start(&zone()).await
}

/// A testdns server for any zone text.
pub async fn start(zone: &str) -> TestDns {
    TestDns::start(parse_zone(zone).expect("zone parses"))
        .await
        .expect("testdns starts")
}

/// The arguments for linting `domain` against `dns`.
pub fn args(dns: &TestDns, domain: &str, ips: &[&str], helo: Option<&str>) -> LintArgs {
    LintArgs {
        domain: domain.to_owned(),
        ips: ips
            .iter()
            .map(|ip| ip.parse().expect("an address"))
            .collect(),
        helo: helo.map(str::to_owned),
        dns: DnsArgs {
            config: None,
            nameservers: vec![dns.addr().to_string()],
            dns_timeout: Some(0.3),
            format: Format::Text,
        },
        strict: false,
    }
}

/// Lints in-process.
pub async fn lint(dns: &TestDns, domain: &str, ips: &[&str], helo: Option<&str>) -> LintReport {
    run(&args(dns, domain, ips, helo)).await.expect("lint runs")
}

/// The code named `name` (which must be one).
pub fn code(name: &str) -> Code {
    *Code::ALL
        .iter()
        .find(|c| c.as_str() == name)
        .unwrap_or_else(|| panic!("{name} is not a finding code"))
}

/// Runs the real binary, `tollgate lint ARGS… --nameserver <dns>`: its
/// exit status and standard output.
pub async fn binary(dns: &TestDns, args: &[&str]) -> (i32, String) {
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    args.extend([
        "--nameserver".to_owned(),
        dns.addr().to_string(),
        "--dns-timeout".to_owned(),
        "0.3".to_owned(),
    ]);
    let (status, stdout, _) = binary_as_given(args).await;
    (status, stdout)
}

/// Runs the real binary, `tollgate lint ARGS…` and nothing added: its exit
/// status, standard output and standard error.
pub async fn binary_as_given(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("lint")
            .args(&args)
            .output()
            .expect("tollgate runs");
        (
            out.status.code().expect("exited, not killed"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("the binary's thread")
}
