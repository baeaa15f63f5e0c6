//! The per-message log line through the real milter protocol
//! (indymilter-test as the MTA, DNS from testdns on 127.0.0.1): the
//! fields docs/operations.md lists, in text and JSON, the MTA's queue id
//! whenever it was sent, and the client's address and port, which match
//! the line of a message refused before a queue id exists to the MTA's
//! `NOQUEUE` line.

// The shared harness has helpers these tests do not use.
#![allow(dead_code)]

#[path = "milter/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::Path;

use indymilter_test::{MacroStage, Status};
use tollgate_testdns::suite::parse_zone;

use support::{LogCapture, Running, Setup, assert_accepted, reply};

/// 192.0.2.7 is mx.example.com (FCrDNS passes); example.com authorises
/// 192.0.2.0/24; forged.example.org only 203.0.113.0/24.
const ZONE: &str = r#"
example.com:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:192.0.2.0/24 -all"
mx.example.com:
  - A: 192.0.2.7
7.2.0.192.in-addr.arpa:
  - PTR: mx.example.com
forged.example.org:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:203.0.113.0/24 -all"
"#;

fn zone() -> tollgate::dns::memory::Zone {
    parse_zone(ZONE).expect("the zone parses")
}

/// Captures this thread's info lines as JSON objects until the guard drops.
fn capture_json() -> (LogCapture, tracing::subscriber::DefaultGuard) {
    let capture = LogCapture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    (capture, tracing::subscriber::set_default(subscriber))
}

/// The message lines of a text capture.
fn message_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.contains(" message ")).collect()
}

/// The field names of the per-message line as docs/operations.md lists
/// them: the first column of the table after "### Fields".
fn documented_fields() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md");
    let text = std::fs::read_to_string(&path).expect("read docs/operations.md");
    let table = text
        .split("### Fields")
        .nth(1)
        .expect("docs/operations.md has a Fields section");
    table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .filter_map(|l| l.split('|').nth(1))
        .map(|cell| cell.trim().trim_matches('`').to_owned())
        .collect()
}

#[tokio::test]
async fn a_message_refused_at_rcpt_has_the_client_address_and_port_and_no_queue_id() {
    let (log, _guard) = support::capture_logs();
    let m = Running::start(zone(), Setup::default()).await;
    // The MTA's CONNECT carries the client's port (40000 in `connect`).
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    assert_eq!(
        c.mail(["<x@forged.example.org>"]).await.unwrap(),
        Status::Continue
    );
    let status = c.rcpt(["<bob@example.org>"]).await.unwrap();
    assert!(
        reply(&status).is_some_and(|r| r.starts_with("550 5.7.23")),
        "{status:?}"
    );
    c.abort().await.unwrap();
    c.close().await.unwrap();
    let text = log.text();
    let lines = message_lines(&text);
    assert_eq!(lines.len(), 1, "{text}");
    let line = lines[0];
    for field in [
        " client=192.0.2.7 client_port=40000 ",
        " queue_id= ",
        " action=reject decided_by=spf-mailfrom ",
        " recipients=<bob@example.org>(rejected) ",
        " outcome=aborted",
    ] {
        assert!(line.contains(field), "{field:?} not in {line}");
    }
}

#[tokio::test]
async fn a_queue_id_sent_only_from_end_of_headers_on_is_in_the_line() {
    // Postfix sends `i` from DATA on, never with MAIL or RCPT.
    let (log, _guard) = support::capture_logs();
    let m = Running::start(zone(), Setup::default()).await;
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    assert_accepted(&mut c, "<alice@example.com>", "<bob@example.org>").await;
    c.macros(MacroStage::Eom, [("i", "4XyZ1")]).await.unwrap();
    let (_, status) = m.eom(&mut c, &[("Subject", "hello")]).await;
    assert_eq!(status, Status::Continue);
    // A second message on the connection gets its own id, not the first's.
    assert_accepted(&mut c, "<alice@example.com>", "<carol@example.org>").await;
    c.macros(MacroStage::Eom, [("i", "4XyZ2")]).await.unwrap();
    let _ = m.eom(&mut c, &[]).await;
    // A third is refused at RCPT: no id.
    assert_eq!(
        c.mail(["<x@forged.example.org>"]).await.unwrap(),
        Status::Continue
    );
    let _ = c.rcpt(["<bob@example.org>"]).await.unwrap();
    c.close().await.unwrap();
    let text = log.text();
    let lines = message_lines(&text);
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains(" queue_id=4XyZ1 "), "{}", lines[0]);
    assert!(lines[0].contains(" outcome=delivered"), "{}", lines[0]);
    assert!(lines[1].contains(" queue_id=4XyZ2 "), "{}", lines[1]);
    assert!(lines[2].contains(" queue_id= "), "{}", lines[2]);
    assert!(lines[2].contains(" action=reject "), "{}", lines[2]);
}

#[tokio::test]
async fn the_json_line_has_exactly_the_fields_operations_md_lists() {
    let (log, _guard) = capture_json();
    let m = Running::start(zone(), Setup::default()).await;
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    c.macros(MacroStage::Mail, [("i", "4AbCdEf123")])
        .await
        .unwrap();
    assert_accepted(&mut c, "<alice@example.com>", "<bob@example.org>").await;
    let _ = m.eom(&mut c, &[]).await;
    c.close().await.unwrap();
    let text = log.text();
    let line = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON object per line"))
        .find(|v| v["fields"]["message"] == "message")
        .unwrap_or_else(|| panic!("no message line: {text}"));
    let fields = line["fields"].as_object().expect("fields");
    let names: BTreeSet<String> = fields.keys().filter(|k| *k != "message").cloned().collect();
    assert_eq!(names, documented_fields(), "{line}");
    assert_eq!(fields["client"], "192.0.2.7");
    assert_eq!(fields["client_port"], "40000");
    assert_eq!(fields["queue_id"], "4AbCdEf123");
    assert_eq!(fields["action"], "accept");
    assert_eq!(fields["decided_by"], "");
    assert_eq!(fields["dns_cancelled"], 0);
    assert_eq!(fields["outcome"], "delivered");
    assert!(
        fields["dns_queries"].as_u64().is_some_and(|n| n > 0),
        "{line}"
    );
}
