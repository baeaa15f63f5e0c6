//! `tollgate greylist` (the binary) against an embedded store that a
//! "milter" (a second handle in this process) holds open, and `tollgate
//! check` showing the greylist verdict without touching the store.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use tollgate::cli::check::{CheckArgs, DnsArgs, Format, render_json, run};
use tollgate_greylist::{Decision, EmbeddedStore, Settings, Store, SystemClock, Triplet};
use tollgate_testdns::{TestDns, suite::parse_zone};

#[path = "common/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

fn config(dir: &Path) -> PathBuf {
    let path = dir.join("milter.yaml");
    std::fs::write(
        &path,
        format!(
            "policy:\n  fcrdns: {{fail: greylist, permerror: greylist}}\n\
             greylist:\n  path: {}\n",
            dir.join("greylist.db").display()
        ),
    )
    .unwrap();
    path
}

fn tollgate(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("greylist")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_lists_counts_allows_and_forgets_while_the_milter_holds_the_store() {
    let d = TempDir::new("greylist-cli");
    let config = config(d.path());
    let milter = EmbeddedStore::open(
        &d.path().join("greylist.db"),
        Settings::default(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let now = tollgate_greylist::Clock::now(&SystemClock);
    let t = Triplet::new(
        "192.0.2.50".parse().unwrap(),
        "alice@example.com",
        "bob@example.org",
        Default::default(),
    );
    assert!(matches!(
        milter.check(&t, now).await.unwrap(),
        Decision::New { .. }
    ));

    let (ok, out, err) = tollgate(&config, &["count"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "triplets: 1 pending, 0 passed\nnetworks: 0 (0 skip greylisting)\n"
    );
    let (ok, out, _) = tollgate(&config, &["list"]);
    assert!(ok);
    assert!(
        out.starts_with("triplet 192.0.2.0/24 alice@example.com -> bob@example.org pending"),
        "{out}"
    );

    let (ok, out, err) = tollgate(
        &config,
        &[
            "allow",
            "--ip",
            "192.0.2.50",
            "--sender",
            "Alice@example.com",
            "--recipient",
            "<bob@example.org>",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "allowed triplet 192.0.2.0/24 alice@example.com -> bob@example.org\n"
    );
    assert_eq!(milter.check(&t, now).await.unwrap(), Decision::Known);

    let (ok, out, _) = tollgate(&config, &["allow", "198.51.100.9"]);
    assert!(ok);
    assert_eq!(out, "allowed network 198.51.100.0/24\n");
    let other = Triplet::new(
        "198.51.100.20".parse().unwrap(),
        "",
        "carol@example.org",
        Default::default(),
    );
    assert_eq!(milter.check(&other, now).await.unwrap(), Decision::Allowed);

    let (ok, out, _) = tollgate(&config, &["forget", "198.51.100.0/24"]);
    assert!(ok);
    assert_eq!(out, "forgot network 198.51.100.0/24\n");
    let (ok, _, err) = tollgate(&config, &["forget", "198.51.100.0/24"]);
    assert!(!ok);
    assert_eq!(
        err,
        "tollgate greylist: network 198.51.100.0/24 is not in the store\n"
    );
    let (ok, _, err) = tollgate(&config, &["allow", "not-a-network"]);
    assert!(!ok);
    assert!(err.contains("is not a network"), "{err}");
}

#[test]
fn a_store_that_cannot_be_opened_is_named_by_its_key() {
    let d = TempDir::new("greylist-cli-bad");
    let config = d.path().join("milter.yaml");
    std::fs::write(
        &config,
        "greylist:\n  path: /nonexistent/tollgate/greylist.db\n",
    )
    .unwrap();
    let (ok, _, err) = tollgate(&config, &["count"]);
    assert!(!ok);
    assert!(
        err.contains(": greylist.path: cannot open /nonexistent/tollgate/greylist.db"),
        "{err}"
    );
}

#[tokio::test]
async fn check_shows_greylist_and_the_first_attempt_reply_without_writing_the_store() {
    let d = TempDir::new("greylist-check");
    let zone = parse_zone("example.com:\n  - MX: [10, mx.example.com]\n  - TXT: \"v=spf1 ip4:192.0.2.0/24 -all\"\nmx.example.com:\n  - A: 192.0.2.7\n").unwrap();
    let dns = TestDns::start(zone).await.unwrap();
    let args = CheckArgs {
        ip: "192.0.2.50".parse().unwrap(),
        helo: Some("client.example.com".to_owned()),
        sender: Some("alice@example.com".to_owned()),
        dns: DnsArgs {
            config: Some(config(d.path())),
            nameservers: vec![dns.addr().to_string()],
            dns_timeout: Some(1.0),
            format: Format::Json,
        },
    };
    let report = run(&args).await.unwrap();
    let json = render_json(&report);
    assert_eq!(json["verdict"]["action"], "greylist", "{json:#}");
    assert_eq!(json["verdict"]["stage"], "fcrdns", "{json:#}");
    let reply = json["verdict"]["reply"].as_str().unwrap();
    assert!(reply.starts_with("451 4.7.1 Greylisted: "), "{reply}");
    assert!(reply.contains("please retry in 5 minutes"), "{reply}");
    assert!(
        !d.path().join("greylist.db").exists(),
        "check must not create or write the store"
    );
}
