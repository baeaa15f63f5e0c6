//! Tests of configuration loading and validation.

use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/tollgate/milter.yaml"))
}

#[test]
fn empty_file_gives_the_documented_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.listen, Listen::Inet("127.0.0.1:8894".parse().unwrap()));
    assert_eq!(c.reject_at, RejectAt::Rcpt);
    assert_eq!(c.exempt_recipients, vec!["postmaster", "abuse"]);
    assert!(!c.dry_run);
    assert!(c.headers.received_spf && c.headers.authentication_results);
    assert_eq!(c.dns.timeout, Duration::from_secs(3));
    assert_eq!(c.checks.time_budget, Duration::from_secs(8));
    assert_eq!(c.checks.policy, Policy::default());
    assert_eq!(c.log.format, LogFormat::Text);
}

#[test]
fn unknown_key_is_refused_with_file_key_and_line() {
    let err =
        parse("listen: inet:127.0.0.1:8894\ndns:\n  timeout: 5s\n  retries: 3\n").unwrap_err();
    let line = err.to_string();
    assert!(line.starts_with("/etc/tollgate/milter.yaml: dns"), "{line}");
    assert!(line.contains("unknown field `retries`"), "{line}");
    assert!(line.contains("line 4"), "{line}");
    assert!(!line.contains('\n'));
}

#[test]
fn bad_values_name_their_key() {
    let cases = [
        ("listen: tcp:1.2.3.4", "listen"),
        ("socket_mode: \"999\"", "socket_mode"),
        ("reject_at: helo", "reject_at"),
        ("dns:\n  timeout: 5 parsecs", "dns.timeout"),
        ("dns:\n  nameservers: [not-an-ip]", "dns.nameservers"),
        ("skip:\n  networks: [192.0.2.0/33]", "skip.networks"),
        (
            "policy:\n  spf-helo:\n    mismatch: reject",
            "policy.spf-helo.mismatch",
        ),
        (
            "policy:\n  spf-mailfrom:\n    fail: bounce",
            "policy.spf-mailfrom.fail",
        ),
        (
            "policy:\n  fcrdns:\n    temperror: reject",
            "policy.fcrdns.temperror",
        ),
        ("policy:\n  dkim: off", "policy.dkim"),
        ("log:\n  format: xml", "log.format"),
    ];
    for (text, key) in cases {
        let err = parse(text).unwrap_err();
        assert_eq!(err.key, key, "{text}: {err}");
        assert!(err.line.is_some(), "{text}: {err}");
    }
}

#[test]
fn policy_overrides_merge_with_defaults() {
    let c = parse("policy:\n  spf-helo:\n    softfail: reject\n  helo-dns: off\n").unwrap();
    let p = &c.checks.policy;
    assert_eq!(
        p.action(Stage::SpfHelo, tollgate_checks::Outcome::SoftFail),
        Action::Reject
    );
    assert_eq!(
        p.action(Stage::SpfHelo, tollgate_checks::Outcome::Fail),
        Action::Reject
    );
    assert!(!p.enabled(Stage::HeloDns));
}

#[test]
fn listen_accepts_inet_unix_and_sendmail_spelling() {
    assert_eq!(
        "inet:0.0.0.0:8894".parse::<Listen>().unwrap(),
        Listen::Inet("0.0.0.0:8894".parse().unwrap())
    );
    assert_eq!(
        "inet:8894@127.0.0.1".parse::<Listen>().unwrap(),
        Listen::Inet("127.0.0.1:8894".parse().unwrap())
    );
    assert_eq!(
        "inet:[::1]:8894".parse::<Listen>().unwrap(),
        Listen::Inet("[::1]:8894".parse().unwrap())
    );
    assert_eq!(
        "unix:/run/tollgate/tollgate.sock"
            .parse::<Listen>()
            .unwrap(),
        Listen::Unix("/run/tollgate/tollgate.sock".into())
    );
}

#[test]
fn shipped_milter_yaml_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("milter.yaml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.checks.policy,
        Policy::default(),
        "milter.yaml spells out the defaults"
    );
}

#[test]
fn yaml_examples_in_docs_parse() {
    // Every ```yaml block in docs/ that starts with a top-level key is a config example.
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&docs).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, block) in text.split("```yaml\n").skip(1).enumerate() {
            let block = block.split("```").next().unwrap();
            if block.contains("# not a tollgate config") {
                continue;
            }
            if let Err(e) = Config::parse(block, &path) {
                panic!("{} yaml block {}: {e}", path.display(), i + 1);
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no yaml examples found in docs/");
}
