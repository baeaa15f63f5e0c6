//! Regression tests for faults a hostile review found, through the real
//! milter protocol (indymilter-test against a milter on 127.0.0.1:0, DNS
//! from testdns on 127.0.0.1). Each test is named for the fault.

// The shared harness has helpers these tests do not use.
#![allow(dead_code)]

#[path = "milter/support.rs"]
mod support;

use indymilter_test::Status;
use tollgate_testdns::suite::parse_zone;

use support::{Running, Setup, assert_accepted, inserted_headers, received_spf, reply};

/// 192.0.2.7 is mx.example.com (FCrDNS passes); example.com authorises it.
/// 192.0.2.9 has a PTR that does not point back (fcrdns fails).
const ZONE: &str = r#"
example.com:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:192.0.2.0/24 -all"
mx.example.com:
  - A: 192.0.2.7
7.2.0.192.in-addr.arpa:
  - PTR: mx.example.com
9.2.0.192.in-addr.arpa:
  - PTR: mx.example.com
relay.example.com:
  - A: 192.0.2.7
"#;

/// A client-written verdict that OpenDMARC would trust if it stayed on top.
const FORGED: &str = "pass (mx.test.example: domain of alice@example.com designates 203.0.113.5 as permitted sender) client-ip=203.0.113.5; envelope-from=\"alice@example.com\"; identity=mailfrom;";

fn zone() -> tollgate::dns::memory::Zone {
    parse_zone(ZONE).expect("the zone parses")
}

/// Sends the message with a forged `Received-SPF` and returns the topmost
/// `Received-SPF` of the delivered message: the first one tollgate
/// inserted (it inserts at index 0), else the forged one.
async fn topmost_received_spf(
    m: &Running,
    c: &mut indymilter_test::TestConnection,
) -> support::ReceivedSpf {
    let (actions, status) = m.eom(c, &[("Received-SPF", FORGED)]).await;
    assert_eq!(status, Status::Continue);
    let headers = inserted_headers(&actions);
    assert!(
        headers.iter().any(|(n, _)| n == "Received-SPF"),
        "tollgate added no Received-SPF, so the forged one is topmost: {headers:?}"
    );
    received_spf(&headers)
}

#[tokio::test]
async fn forged_received_spf_is_never_topmost_for_an_exempt_recipient_after_an_early_refusal() {
    let m = Running::start(zone(), Setup::default()).await;
    // fcrdns fails for 192.0.2.9: the message is refused, but postmaster is exempt.
    let mut c = m.client("192.0.2.9", "mx.example.com").await;
    assert_accepted(&mut c, "<alice@example.com>", "<postmaster@example.org>").await;
    let top = topmost_received_spf(&m, &mut c).await;
    assert_eq!(top.field("identity"), Some("mailfrom"));
    assert_eq!(top.field("client-ip"), Some("192.0.2.9"));
    assert_eq!(top.field("envelope-from"), Some("\"alice@example.com\""));
    assert_eq!(top.field("receiver"), Some(support::RECEIVER));
    assert_eq!(top.result, "pass");
    c.close().await.unwrap();
}

#[tokio::test]
async fn forged_received_spf_is_never_topmost_in_dry_run() {
    let m = Running::start(zone(), Setup::extra("dry_run: true\n")).await;
    let mut c = m.connect("192.0.2.7").await;
    assert_eq!(c.helo("OEMCOMPUTER").await.unwrap(), Status::Continue);
    assert_accepted(&mut c, "<alice@example.com>", "<bob@example.org>").await;
    let top = topmost_received_spf(&m, &mut c).await;
    assert_eq!(top.field("identity"), Some("mailfrom"));
    assert_eq!(top.field("client-ip"), Some("192.0.2.7"));
    assert_eq!(top.field("envelope-from"), Some("\"alice@example.com\""));
    c.close().await.unwrap();
}

#[tokio::test]
async fn forged_received_spf_is_never_topmost_in_normal_mode() {
    let m = Running::start(zone(), Setup::default()).await;
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    assert_accepted(&mut c, "<alice@example.com>", "<bob@example.org>").await;
    let top = topmost_received_spf(&m, &mut c).await;
    assert_eq!(top.field("identity"), Some("mailfrom"));
    assert_eq!(top.field("client-ip"), Some("192.0.2.7"));
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_command_without_a_session_is_tempfailed_not_let_through() {
    let m = Running::start(zone(), Setup::default()).await;
    let mut c = indymilter_test::TestConnection::configure()
        .open_tcp(m.addr)
        .await
        .expect("the milter accepts a connection");
    // No CONNECT: there is no session, so nothing was checked.
    let status = c.helo("mx.example.com").await.unwrap();
    assert!(matches!(status, Status::Tempfail { .. }), "{status:?}");
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_new_helo_drops_the_skip_the_old_helo_earned() {
    let setup = Setup::extra("skip:\n  networks: []\n  helo_names: [relay.example.com]\n");
    let m = Running::start(zone(), setup).await;
    let mut c = m.client("192.0.2.7", "relay.example.com").await;
    assert_eq!(c.helo("OEMCOMPUTER").await.unwrap(), Status::Continue);
    assert_eq!(
        c.mail(["<alice@example.com>"]).await.unwrap(),
        Status::Continue
    );
    let status = c.rcpt(["<bob@example.org>"]).await.unwrap();
    assert_eq!(
        reply(&status).as_deref(),
        Some(
            "550 5.5.2 HELO \"OEMCOMPUTER\" is not a fully qualified domain name or address literal"
        ),
        "the skip of relay.example.com outlived the HELO that earned it: {status:?}"
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn log_line_fields_cannot_be_split_by_a_recipient_with_a_newline() {
    let (log, _guard) = support::capture_logs();
    let m = Running::start(zone(), Setup::default()).await;
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    assert_accepted(
        &mut c,
        "<alice@example.com>",
        "<x\nFAKE INFO line@example.org>",
    )
    .await;
    let _ = m.eom(&mut c, &[]).await;
    c.close().await.unwrap();
    let text = log.text();
    assert!(text.contains("x\\nFAKE INFO line@example.org"), "{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("FAKE")),
        "a recipient started a log line of its own: {text}"
    );
}

#[tokio::test]
async fn queue_id_appears_once_in_the_message_line() {
    let (log, _guard) = support::capture_logs();
    let m = Running::start(zone(), Setup::default()).await;
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    c.macros(indymilter_test::MacroStage::Mail, [("i", "4AbCdEf123")])
        .await
        .unwrap();
    assert_accepted(&mut c, "<alice@example.com>", "<bob@example.org>").await;
    let _ = m.eom(&mut c, &[]).await;
    c.close().await.unwrap();
    let text = log.text();
    let line = text
        .lines()
        .find(|l| l.contains(" message "))
        .unwrap_or_else(|| panic!("no message line: {text}"));
    assert_eq!(line.matches("4AbCdEf123").count(), 1, "{line}");
}
