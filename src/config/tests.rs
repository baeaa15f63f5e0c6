//! Tests of configuration loading and validation.

use std::path::Path;

use tollgate_checks::{Action, Policy, Stage};

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/tollgate/milter.yaml"))
}

#[test]
fn empty_mapping_gives_the_documented_defaults() {
    let c = parse("{}").unwrap();
    assert_eq!(c.listen, Listen::Inet("127.0.0.1:8894".parse().unwrap()));
    assert_eq!(c.reject_at, RejectAt::Rcpt);
    assert_eq!(c.exempt_recipients, vec!["postmaster", "abuse"]);
    assert!(!c.dry_run);
    assert!(c.headers.received_spf && c.headers.authentication_results);
    assert_eq!(c.dns.timeout, Duration::from_secs(3));
    assert_eq!(c.checks.time_budget, Duration::from_secs(8));
    assert_eq!(c.checks.policy, Policy::default());
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.max_connections, 256);
    assert_eq!(c.connection_timeout, Duration::from_secs(600));
    let d = Config::defaults();
    assert_eq!(
        (d.listen, d.max_connections, d.connection_timeout, d.dns),
        (c.listen, c.max_connections, c.connection_timeout, c.dns)
    );
}

/// Asserts `err` is one line about the whole file that says `problem`.
fn assert_file_error(err: &ConfigError, problem: &str) {
    let line = err.to_string();
    assert_eq!(err.key, "-", "{line}");
    assert!(line.starts_with("/etc/tollgate/milter.yaml: "), "{line}");
    assert!(line.contains(problem), "{line}");
    assert!(!line.contains('\n'), "{line}");
}

#[test]
fn empty_whitespace_or_comment_only_file_is_refused_not_taken_as_defaults() {
    for text in [
        "",
        " \n\t\n",
        "# tollgate configuration\n\n# listen: inet:127.0.0.1:8894\n",
        "---\n",
        "--- # nothing\n...\n",
        "~\n",
        "null\n",
    ] {
        let err = parse(text).expect_err(text);
        assert_file_error(&err, "the file has no settings");
    }
}

#[test]
fn file_over_the_size_limit_is_refused_unread() {
    let dir = std::env::temp_dir().join(format!("tollgate-config-size-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("milter.yaml");
    // Valid YAML all the way: only its size is wrong.
    let mut text = String::from("local_names:\n");
    while text.len() as u64 <= MAX_FILE_SIZE {
        text.push_str("  - host.example.com\n");
    }
    std::fs::write(&path, &text).unwrap();
    let err = Config::load(&path).unwrap_err();
    let line = err.to_string();
    assert!(line.contains("larger than 1024 KiB"), "{line}");
    assert!(line.starts_with(&path.display().to_string()), "{line}");
    let err = parse(&text).unwrap_err();
    assert_file_error(&err, "larger than 1024 KiB");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn deeply_nested_file_is_refused_before_parsing() {
    // 50,000 nested [ took the YAML parser 20 s.
    let text = format!(
        "local_names: {}{}\n",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let err = parse(&text).unwrap_err();
    assert_file_error(&err, "more than 128 [ or {");
    assert_eq!(err.line, Some(1));
}

#[tokio::test]
async fn load_off_thread_gives_the_same_result_as_load() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("milter.yaml");
    let c = Config::load_off_thread(path.clone()).await.unwrap();
    assert_eq!(c.path, path);
    let missing = path.with_file_name("no-such-milter.yaml");
    let err = Config::load_off_thread(missing).await.unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[test]
fn numeric_keys_out_of_range_are_refused_with_one_line() {
    let cases = [
        ("max_connections: 0", "max_connections"),
        ("max_connections: 2305843009213693952", "max_connections"),
        ("max_connections: 100001", "max_connections"),
        ("max_connections: 18446744073709551616", "max_connections"),
        ("max_connections: -1", "max_connections"),
        ("connection_timeout: 0", "connection_timeout"),
        ("connection_timeout: 500ms", "connection_timeout"),
        ("connection_timeout: 25h", "connection_timeout"),
        ("connection_timeout: 1e300", "connection_timeout"),
        ("shutdown_timeout: 0s", "shutdown_timeout"),
        ("shutdown_timeout: 2h", "shutdown_timeout"),
        ("shutdown_timeout: 18446744073709551616", "shutdown_timeout"),
        ("dns:\n  attempts: 0", "dns.attempts"),
        ("dns:\n  attempts: 11", "dns.attempts"),
        ("dns:\n  cache_size: 1000001", "dns.cache_size"),
        ("dns:\n  cache_size: 9223372036854775808", "dns.cache_size"),
        ("dns:\n  timeout: 0", "dns.timeout"),
        ("dns:\n  timeout: 0.0001", "dns.timeout"),
        ("dns:\n  timeout: 2m", "dns.timeout"),
        ("dns:\n  time_budget: 0ms", "dns.time_budget"),
        ("dns:\n  time_budget: 11m", "dns.time_budget"),
        ("dns:\n  time_budget: 99999999999h", "dns.time_budget"),
        ("socket_mode: \"1777\"", "socket_mode"),
        ("socket_mode: \"+660\"", "socket_mode"),
        ("socket_mode: \"0o1000\"", "socket_mode"),
        ("socket_mode: \"\"", "socket_mode"),
        ("socket_mode: \"00660\"", "socket_mode"),
    ];
    for (text, key) in cases {
        let err = parse(text).expect_err(text);
        let line = err.to_string();
        assert_eq!(err.key, key, "{text}: {line}");
        assert_eq!(err.line, Some(text.lines().count()), "{text}: {line}");
        assert!(!line.contains('\n'), "{text}: {line}");
    }
    let err = parse("max_connections: 2305843009213693952").unwrap_err();
    assert_eq!(
        err.to_string(),
        "/etc/tollgate/milter.yaml: max_connections (line 1): 2305843009213693952 is out of range: must be between 1 and 100000"
    );
    let err = parse("dns:\n  timeout: 2m").unwrap_err();
    assert!(
        err.to_string()
            .ends_with("2m is out of range: must be between 1ms and 1m"),
        "{err}"
    );
}

#[test]
fn numeric_keys_at_the_ends_of_their_ranges_are_accepted() {
    let c = parse(
        "max_connections: 100000\nconnection_timeout: 24h\nshutdown_timeout: 1h\nsocket_mode: \"0777\"\n\
         dns:\n  attempts: 10\n  cache_size: 0\n  timeout: 1m\n  time_budget: 10m\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.max_connections, 100_000);
    assert_eq!(c.connection_timeout, Duration::from_secs(86_400));
    assert_eq!(c.socket_mode, 0o777);
    assert_eq!((c.dns.attempts, c.dns.cache_size), (10, 0));
    let c = parse(
        "max_connections: 1\nconnection_timeout: 1s\nsocket_mode: \"0o600\"\n\
         dns:\n  attempts: 1\n  cache_size: 1000000\n  timeout: 1ms\n  time_budget: 1ms\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.connection_timeout, Duration::from_secs(1));
    assert_eq!(c.socket_mode, 0o600);
    assert_eq!(c.dns.timeout, Duration::from_millis(1));
}

#[test]
fn log_level_is_validated_as_a_whole_filter() {
    for bad in [
        "foo=bar=baz",
        "infoo",
        "info,tollgate=loud",
        "tollgate",
        "",
        " ",
        "info,foo=bar=baz",
    ] {
        let text = format!("log:\n  level: '{bad}'");
        let err = parse(&text).expect_err(bad);
        assert_eq!(err.key, "log.level", "{bad}: {err}");
        assert_eq!(err.line, Some(2), "{bad}: {err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }
    for good in [
        "info",
        "WARN",
        "off",
        "tollgate=debug,indymilter=warn",
        "warn,tollgate::milter=trace",
        "info,tollgate[conn{client=192.0.2.7}]=debug",
    ] {
        let text = format!("log:\n  level: '{good}'");
        let c = parse(&text).unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(c.log.level, good);
    }
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
    let d = Config::defaults();
    assert_eq!(
        (c.max_connections, c.connection_timeout, c.shutdown_timeout),
        (d.max_connections, d.connection_timeout, d.shutdown_timeout),
        "milter.yaml spells out the defaults"
    );
    assert_eq!(c.dns.cache_size, d.dns.cache_size);
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

#[test]
fn metrics_listen_is_unset_by_default_and_takes_an_address_and_port() {
    assert_eq!(parse("{}").unwrap().metrics.listen, None);
    let c = parse("metrics:\n  listen: 0.0.0.0:9187\n").unwrap();
    assert_eq!(c.metrics.listen, Some("0.0.0.0:9187".parse().unwrap()));
    let c = parse("metrics: {listen: \"[::1]:9187\"}\n").unwrap();
    assert_eq!(c.metrics.listen, Some("[::1]:9187".parse().unwrap()));
    assert_eq!(parse("metrics: {}\n").unwrap().metrics.listen, None);
}

#[test]
fn bad_metrics_listen_is_refused_with_one_line_naming_file_and_key() {
    for (text, problem) in [
        (
            "metrics:\n  listen: 9187\n",
            "\"9187\" is not an address and port",
        ),
        (
            "metrics:\n  listen: example.com:9187\n",
            "is not an address and port",
        ),
        (
            "metrics:\n  listen: 127.0.0.1:99999\n",
            "is not an address and port",
        ),
        (
            "listen: inet:127.0.0.1:8894\nmetrics:\n  listen: 127.0.0.1:8894\n",
            "127.0.0.1:8894 is the milter's own listen address",
        ),
    ] {
        let err = parse(text).expect_err(text);
        let line = err.to_string();
        assert_eq!(err.key, "metrics.listen", "{line}");
        assert!(
            line.starts_with("/etc/tollgate/milter.yaml: metrics.listen (line "),
            "{line}"
        );
        assert!(line.contains(problem), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
    let err = parse("metrics:\n  port: 9187\n").unwrap_err();
    assert!(err.to_string().contains("unknown field `port`"), "{err}");
}

#[test]
fn greylist_keys_parse_with_days_and_milter_yaml_spells_out_their_defaults() {
    let c = Config::parse(
        "policy:\n  fcrdns: {fail: greylist}\ngreylist:\n  store: redis\n  redis: redis://:pw@192.0.2.40:6379/1\n  delay: 1s\n  retry_window: 1d\n  expire: 7d\n  auto_allow: 0\n  network_v4: 32\n  network_v6: 48\n  header: false\n",
        Path::new("m.yaml"),
    )
    .unwrap();
    assert!(c.checks.policy.uses_greylist());
    assert_eq!(
        c.greylist.store,
        super::StoreKind::Redis("redis://:pw@192.0.2.40:6379/1".to_owned())
    );
    let s = c.greylist.settings;
    assert_eq!(s.delay, Duration::from_secs(1));
    assert_eq!(c.checks.greylist_delay, Duration::from_secs(1));
    assert_eq!(s.retry_window, Duration::from_secs(86_400));
    assert_eq!(s.expire, Duration::from_secs(7 * 86_400));
    assert_eq!((s.auto_allow, s.networks.v4, s.networks.v6), (0, 32, 48));
    assert!(!c.greylist.header);

    let shipped = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("milter.yaml")).unwrap();
    assert_eq!(shipped.greylist, Config::defaults().greylist);
}

#[test]
fn bad_greylist_keys_are_refused_with_their_key() {
    let err = |text: &str| {
        Config::parse(text, Path::new("m.yaml"))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err("greylist:\n  delay: 10m\n  retry_window: 5m\n"),
        "m.yaml: greylist.retry_window (line 3): must be longer than greylist.delay (a retry after the delay must still be in the window)"
    );
    assert!(
        err("greylist:\n  store: memcached\n")
            .starts_with("m.yaml: greylist.store (line 2): \"memcached\" is not embedded or redis")
    );
    assert!(err("greylist:\n  store: redis\n  redis: http://x\n").contains("greylist.redis"));
    assert!(
        err("greylist:\n  network_v4: 4\n")
            .contains("greylist.network_v4 (line 2): 4 is out of range")
    );
    assert!(
        err("greylist:\n  expire: 400d\n").contains(
            "greylist.expire (line 2): 400d is out of range: must be between 1h and 366d"
        )
    );
    assert!(
        err("policy:\n  spf-helo: {temperror: greylist}\n")
            .contains("spf-helo temperror cannot be greylist")
    );
}
