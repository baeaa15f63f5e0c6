//! The milter through the real milter protocol: `indymilter-test` plays
//! the MTA against `tollgate::milter::Milter` bound to 127.0.0.1:0, and
//! every lookup goes to a testdns server on 127.0.0.1 (300 ms timeout, one
//! attempt). Each test asserts what a mail administrator relies on: the
//! exact reply (code, enhanced code, text) and when it comes, the headers
//! added and removed at end of message, skips, dry run, reload, malformed
//! input, and shutdown with a live session.
//!
//! Client addresses come from the documentation ranges and are given to
//! the milter in the connect command, as an MTA would; the milter uses
//! them (not the loopback peer address) as the client.

#[path = "milter/support.rs"]
mod support;

use std::time::{Duration, Instant};

use indymilter_test::{Actions, EomAction, MacroStage, ProtoOpts, Status};
use tollgate_testdns::Rcode;
use tollgate_testdns::suite::parse_zone;

use support::{
    Running, Setup, ar, assert_accepted, assert_no_reply_before_rcpt, header_values,
    inserted_headers, received_spf, reply,
};

/// 192.0.2.7 is mx.example.com (PTR and A agree); example.com authorises
/// 192.0.2.0/24 through an include; forged.example.org authorises only
/// 203.0.113.0/24; slow.example.com never answers; mx-out.example.com's
/// own `v=spf1 a ~all` does not cover 192.0.2.7 (the HELO softfail case).
pub const ZONE: &str = r#"
example.com:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 include:_spf.example.net -all"
_spf.example.net:
  - TXT: "v=spf1 ip4:192.0.2.0/24 ~all"
mx.example.com:
  - A: 192.0.2.7
  - TXT: "v=spf1 a -all"
7.2.0.192.in-addr.arpa:
  - PTR: mx.example.com
forged.example.org:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:203.0.113.0/24 -all"
slow.example.com:
  - MX: [10, mx.example.com]
  - TIMEOUT
mx-out.example.com:
  - A: 198.51.100.20
  - TXT: "v=spf1 a ~all"
other.example.net:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:192.0.2.7 -all"
"#;

/// The reply for forged.example.org from 192.0.2.7.
const FORGED_REPLY: &str = "550 5.7.23 SPF fail: 192.0.2.7 is not allowed to send mail as forged.example.org (matched \"-all\")";

/// What tollgate calls itself: `receiver=` and the authserv-id.
const RECEIVER: &str = support::RECEIVER;

fn zone() -> tollgate::dns::memory::Zone {
    parse_zone(ZONE).expect("the zone parses")
}

#[tokio::test]
async fn negotiation_asks_for_header_changes_and_the_macros_the_checks_need() {
    let m = Running::start(zone(), Setup::default()).await;
    let c = m.connect("192.0.2.7").await;
    let actions = c.negotiated_actions();
    assert!(actions.contains(Actions::ADD_HEADER), "{actions:?}");
    assert!(actions.contains(Actions::CHANGE_HEADER), "{actions:?}");
    // Nothing more than it needs.
    assert!(!actions.contains(Actions::REPLACE_BODY), "{actions:?}");
    let opts = c.negotiated_opts();
    for needed in [
        ProtoOpts::NO_CONNECT,
        ProtoOpts::NO_HELO,
        ProtoOpts::NO_MAIL,
        ProtoOpts::NO_RCPT,
        ProtoOpts::NO_HEADER,
    ] {
        assert!(!opts.contains(needed), "{needed:?} negotiated: {opts:?}");
    }
    for reply in [
        ProtoOpts::NOREPLY_HELO,
        ProtoOpts::NOREPLY_MAIL,
        ProtoOpts::NOREPLY_RCPT,
    ] {
        assert!(
            !opts.contains(reply),
            "{reply:?} negotiated: a refusal could not be sent"
        );
    }
    // The body is not needed.
    assert!(opts.contains(ProtoOpts::NO_BODY), "{opts:?}");
    let macros = c.requested_macros();
    let mail = macros
        .get(&MacroStage::Mail)
        .map(|m| m.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        mail.split(' ').any(|m| m == "{auth_authen}"),
        "MAIL macros: {mail:?}"
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn spf_fail_is_rejected_at_rcpt_with_550_5_7_23_and_postmaster_and_abuse_stay_reachable() {
    let m = Running::start(zone(), Setup::default()).await;
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    // Nothing is refused before RCPT with the default reject_at: rcpt.
    assert_eq!(
        c.mail(["<bob@forged.example.org>"]).await.unwrap(),
        Status::Continue
    );
    let refused = c.rcpt(["<alice@example.org>"]).await.unwrap();
    assert_eq!(
        reply(&refused).as_deref(),
        Some(FORGED_REPLY),
        "{refused:?}"
    );
    assert!(matches!(refused, Status::Reject { .. }));
    // The same transaction still reaches postmaster@ and abuse@ (RFC 5321, RFC 2142).
    assert_eq!(
        c.rcpt(["<postmaster@example.org>"]).await.unwrap(),
        Status::Continue
    );
    assert_eq!(
        c.rcpt(["<Abuse@example.org>"]).await.unwrap(),
        Status::Continue
    );
    // And another ordinary recipient is refused again.
    let again = c.rcpt(["<carol@example.org>"]).await.unwrap();
    assert_eq!(reply(&again).as_deref(), Some(FORGED_REPLY));
    // The message to postmaster carries the fail result.
    let (actions, status) = m.eom(&mut c, &[("Subject", "hello")]).await;
    assert_eq!(status, Status::Continue);
    let headers = inserted_headers(&actions);
    let ar = ar(&headers);
    assert_eq!(
        ar.result("spf", "smtp.mailfrom"),
        Some(("fail", "forged.example.org"))
    );
    let rspf = received_spf(&headers);
    assert_eq!(rspf.result, "fail");
    assert_eq!(
        rspf.field("envelope-from"),
        Some("\"bob@forged.example.org\"")
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn reject_at_earliest_refuses_spf_fail_at_mail() {
    let m = Running::start(zone(), Setup::extra("reject_at: earliest\n")).await;
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    let status = c.mail(["<bob@forged.example.org>"]).await.unwrap();
    assert_eq!(reply(&status).as_deref(), Some(FORGED_REPLY), "{status:?}");
    // A passing sender on the same connection is not refused.
    assert_eq!(
        c.mail(["<alice@example.com>"]).await.unwrap(),
        Status::Continue
    );
    assert_eq!(c.rcpt(["<x@example.org>"]).await.unwrap(), Status::Continue);
    c.close().await.unwrap();
}

#[tokio::test]
async fn reject_at_earliest_refuses_a_bad_helo_at_helo() {
    let m = Running::start(zone(), Setup::extra("reject_at: earliest\n")).await;
    let mut c = m.connect("192.0.2.7").await;
    let status = c.helo("OEMCOMPUTER").await.unwrap();
    assert_eq!(
        reply(&status).as_deref(),
        Some(
            "550 5.5.2 HELO \"OEMCOMPUTER\" is not a fully qualified domain name or address literal"
        ),
        "{status:?}"
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn bad_helo_with_default_reject_at_is_refused_at_rcpt_not_at_helo() {
    let m = Running::start(zone(), Setup::default()).await;
    let mut c = m.connect("192.0.2.7").await;
    assert_eq!(c.helo("OEMCOMPUTER").await.unwrap(), Status::Continue);
    assert_eq!(
        c.mail(["<alice@example.com>"]).await.unwrap(),
        Status::Continue
    );
    let status = c.rcpt(["<x@example.org>"]).await.unwrap();
    assert_eq!(
        reply(&status).as_deref(),
        Some(
            "550 5.5.2 HELO \"OEMCOMPUTER\" is not a fully qualified domain name or address literal"
        )
    );
    assert_eq!(
        c.rcpt(["<postmaster@example.org>"]).await.unwrap(),
        Status::Continue
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn dns_timeout_is_a_451_4_7_24_tempfail_never_a_5xx() {
    let m = Running::start(zone(), Setup::default()).await;
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    let started = Instant::now();
    assert_eq!(
        c.mail(["<bob@slow.example.com>"]).await.unwrap(),
        Status::Continue
    );
    // One 300 ms query timeout, not the 2 s budget, let alone the MTA's.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let status = c.rcpt(["<x@example.org>"]).await.unwrap();
    assert!(
        matches!(status, Status::Tempfail { .. }),
        "never a 5xx: {status:?}"
    );
    assert_eq!(
        reply(&status).as_deref(),
        Some(
            "451 4.7.24 SPF temperror for slow.example.com: DNS timeout looking up TXT for slow.example.com, try again later"
        )
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn dns_servfail_is_a_451_tempfail_too() {
    // sender-domain (which would answer 451 4.4.3 first) is off: this is
    // about the SPF stage.
    let m = Running::start(zone(), Setup::extra("policy:\n  sender-domain: off\n")).await;
    m.dns.set_rcode("other.example.net", Rcode::ServFail);
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    assert_eq!(
        c.mail(["<bob@other.example.net>"]).await.unwrap(),
        Status::Continue
    );
    let status = c.rcpt(["<x@example.org>"]).await.unwrap();
    let text = reply(&status).unwrap_or_default();
    assert!(
        text.starts_with("451 4.7.24 SPF temperror for other.example.net: "),
        "{text}"
    );
    assert!(text.ends_with(", try again later"), "{text}");
    c.close().await.unwrap();
}

#[tokio::test]
async fn passing_message_gets_received_spf_and_authentication_results_on_top_exactly_once() {
    let m = Running::start(zone(), Setup::default()).await;
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    assert_accepted(&mut c, "<alice@example.com>", "<x@example.org>").await;
    let (actions, status) = m.eom(&mut c, &[("From", "alice@example.com")]).await;
    assert_eq!(status, Status::Continue);
    // Exactly two inserts, both at index 0, Received-SPF first so that
    // Authentication-Results ends on top; nothing else.
    let inserts: Vec<(i32, String)> = actions
        .actions
        .iter()
        .map(|a| match a {
            EomAction::InsertHeader { index, name, .. } => {
                (*index, name.to_str().unwrap().to_owned())
            }
            other => panic!("unexpected action {other:?}"),
        })
        .collect();
    assert_eq!(
        inserts,
        [
            (0, "Received-SPF".to_owned()),
            (0, "Authentication-Results".to_owned())
        ]
    );
    let headers = inserted_headers(&actions);
    let rspf = received_spf(&headers);
    assert_eq!(rspf.result, "pass");
    assert_eq!(rspf.field("client-ip"), Some("192.0.2.7"));
    assert_eq!(rspf.field("envelope-from"), Some("\"alice@example.com\""));
    assert_eq!(rspf.field("helo"), Some("mx.example.com"));
    assert_eq!(rspf.field("receiver"), Some(RECEIVER));
    assert_eq!(rspf.field("identity"), Some("mailfrom"));
    assert_eq!(
        rspf.field("mechanism"),
        Some("\"include:_spf.example.net\"")
    );
    assert_eq!(rspf.field("problem"), None);
    assert!(
        rspf.comment
            .contains("domain of alice@example.com designates 192.0.2.7 as permitted sender"),
        "{}",
        rspf.comment
    );
    let ar = ar(&headers);
    assert_eq!(ar.authserv_id, RECEIVER);
    assert_eq!(
        ar.result("spf", "smtp.mailfrom"),
        Some(("pass", "example.com"))
    );
    assert_eq!(
        ar.result("spf", "smtp.helo"),
        Some(("pass", "mx.example.com"))
    );
    assert_eq!(
        ar.result("iprev", "policy.iprev"),
        Some(("pass", "192.0.2.7"))
    );
    assert_eq!(ar.count("spf", "smtp.mailfrom"), 1);
    assert_eq!(ar.count("spf", "smtp.helo"), 1);
    assert_eq!(ar.count("iprev", "policy.iprev"), 1);
    assert!(
        ar.raw
            .contains("iprev=pass policy.iprev=192.0.2.7 (mx.example.com)"),
        "{}",
        ar.raw
    );
    // Folded lines stay short and continue with a tab.
    for (_, value) in &headers {
        for line in value.split('\n').skip(1) {
            assert!(line.starts_with('\t'), "{value:?}");
        }
    }
    c.close().await.unwrap();
}

#[tokio::test]
async fn helo_softfail_is_tagged_not_rejected() {
    let m = Running::start(zone(), Setup::default()).await;
    let mut c = m.client("192.0.2.7", "mx-out.example.com").await;
    assert_accepted(&mut c, "<alice@example.com>", "<x@example.org>").await;
    let (actions, status) = m.eom(&mut c, &[]).await;
    assert_eq!(status, Status::Continue);
    let headers = inserted_headers(&actions);
    let ar = ar(&headers);
    assert_eq!(
        ar.result("spf", "smtp.helo"),
        Some(("softfail", "mx-out.example.com"))
    );
    assert_eq!(
        ar.result("spf", "smtp.mailfrom"),
        Some(("pass", "example.com"))
    );
    // Received-SPF describes MAIL FROM, labelled, never the HELO result.
    let rspf = received_spf(&headers);
    assert_eq!(rspf.result, "pass");
    assert_eq!(rspf.field("identity"), Some("mailfrom"));
    assert_eq!(rspf.field("helo"), Some("mx-out.example.com"));
    c.close().await.unwrap();
}

#[tokio::test]
async fn helo_softfail_with_earliest_is_not_refused_at_helo_either() {
    let m = Running::start(zone(), Setup::extra("reject_at: earliest\n")).await;
    let mut c = m.connect("192.0.2.7").await;
    assert_eq!(
        c.helo("mx-out.example.com").await.unwrap(),
        Status::Continue
    );
    assert_eq!(
        c.mail(["<alice@example.com>"]).await.unwrap(),
        Status::Continue
    );
    assert_eq!(c.rcpt(["<x@example.org>"]).await.unwrap(), Status::Continue);
    c.close().await.unwrap();
}

#[tokio::test]
async fn trusted_network_client_is_not_checked_and_authentication_results_says_why() {
    let m = Running::start(
        zone(),
        Setup::extra("skip:\n  networks: [203.0.113.0/24]\n"),
    )
    .await;
    m.dns.reset_counts();
    // No PTR, a bare-word HELO and a forged sender: all would be refused.
    let mut c = m.connect("203.0.113.9").await;
    assert_eq!(c.helo("OEMCOMPUTER").await.unwrap(), Status::Continue);
    assert_accepted(&mut c, "<bob@forged.example.org>", "<x@example.org>").await;
    let (actions, status) = m.eom(&mut c, &[]).await;
    assert_eq!(status, Status::Continue);
    let headers = inserted_headers(&actions);
    let ar = ar(&headers);
    assert_eq!(ar.authserv_id, RECEIVER);
    assert!(
        ar.raw.starts_with(&format!("{RECEIVER}; none (")),
        "{}",
        ar.raw
    );
    assert!(
        ar.raw.contains("203.0.113.0/24"),
        "the A-R does not say why: {}",
        ar.raw
    );
    assert_eq!(header_values(&headers, "Received-SPF").len(), 0);
    assert_eq!(
        m.dns.query_count(),
        0,
        "a trusted client costs no DNS: {:?}",
        m.dns.queries()
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn authenticated_mua_with_bare_helo_and_no_ptr_is_not_refused() {
    // A laptop on a dynamic address: no PTR, a bare-word EHLO, a sender
    // domain that does not authorise it; it logs in ({auth_authen} at MAIL).
    let m = Running::start(zone(), Setup::default()).await;
    let mut c = m.client("192.0.2.99", "laptop").await;
    c.macros(MacroStage::Mail, [("{auth_authen}", "bob")])
        .await
        .unwrap();
    assert_accepted(&mut c, "<bob@forged.example.org>", "<x@example.org>").await;
    assert_eq!(c.rcpt(["<y@example.org>"]).await.unwrap(), Status::Continue);
    let (actions, status) = m.eom(&mut c, &[]).await;
    assert_eq!(status, Status::Continue);
    let headers = inserted_headers(&actions);
    let ar = ar(&headers);
    assert_eq!(ar.authserv_id, RECEIVER);
    // The unchecked MAIL FROM identity gets no SPF verdict.
    assert_eq!(ar.result("spf", "smtp.mailfrom"), None, "{}", ar.raw);
    assert_eq!(
        header_values(&headers, "Received-SPF").len(),
        0,
        "{headers:?}"
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn authenticated_sender_gets_auth_pass_in_authentication_results_regression() {
    let m = Running::start(zone(), Setup::default()).await;
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    c.macros(MacroStage::Mail, [("{auth_authen}", "bob")])
        .await
        .unwrap();
    assert_accepted(&mut c, "<bob@forged.example.org>", "<x@example.org>").await;
    let (actions, status) = m.eom(&mut c, &[]).await;
    assert_eq!(status, Status::Continue);
    let ar = ar(&inserted_headers(&actions));
    // Either an RFC 8601 §2.7.1 `auth=pass smtp.auth=bob` or a comment
    // with the skip reason ("sender authenticated as bob").
    assert!(
        ar.result("auth", "smtp.auth") == Some(("pass", "bob"))
            || ar.raw.contains("authenticated as bob"),
        "the A-R does not say why MAIL FROM was not checked: {}",
        ar.raw
    );
}

#[tokio::test]
async fn dry_run_accepts_the_would_be_reject_and_logs_what_it_would_have_said() {
    let (log, _guard) = support::capture_logs();
    let m = Running::start(zone(), Setup::extra("dry_run: true\nreject_at: earliest\n")).await;
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    assert_accepted(&mut c, "<bob@forged.example.org>", "<alice@example.org>").await;
    let (actions, status) = m.eom(&mut c, &[]).await;
    assert_eq!(status, Status::Continue);
    let headers = inserted_headers(&actions);
    assert_eq!(
        ar(&headers).result("spf", "smtp.mailfrom"),
        Some(("fail", "forged.example.org"))
    );
    assert_eq!(received_spf(&headers).result, "fail");
    c.close().await.unwrap();
    let text = log.text();
    assert!(text.contains("dry run: recipient accepted"), "{text}");
    assert!(
        text.contains(FORGED_REPLY),
        "the log does not say what would have been replied: {text}"
    );
    assert!(text.contains("action=dry-run:reject"), "{text}");
}

#[tokio::test]
async fn forged_authentication_results_with_our_authserv_id_is_deleted_and_others_stay() {
    let m = Running::start(zone(), Setup::default()).await;
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    assert!(
        !c.negotiated_opts().contains(ProtoOpts::NO_HEADER),
        "the milter must see the headers to find forged ones"
    );
    assert_accepted(&mut c, "<alice@example.com>", "<x@example.org>").await;
    let forged_upper = format!(
        "(looks legit) {}; spf=pass smtp.mailfrom=paypal.com",
        RECEIVER.to_uppercase()
    );
    let (actions, status) = m
        .eom(
            &mut c,
            &[
                (
                    "Authentication-Results",
                    &format!("{RECEIVER}; spf=pass smtp.mailfrom=bank.example"),
                ),
                ("Received", "from somewhere"),
                (
                    "Authentication-Results",
                    "relay.example.net; dkim=pass header.d=example.com",
                ),
                ("Authentication-Results", &forged_upper),
                (
                    "Authentication-Results",
                    &format!("{RECEIVER}.evil.example; spf=pass"),
                ),
            ],
        )
        .await;
    assert_eq!(status, Status::Continue);
    let deletes: Vec<i32> = actions
        .actions
        .iter()
        .filter_map(|a| match a {
            EomAction::DeleteHeader { name, index } => {
                assert_eq!(name.to_str().unwrap(), "Authentication-Results");
                Some(*index)
            }
            EomAction::ChangeHeader { .. } => panic!("a header was changed, not deleted: {a:?}"),
            _ => None,
        })
        .collect();
    // The 1st and 3rd A-R carry our id; deleted last first so indexes hold.
    assert_eq!(deletes, [3, 1]);
    // Our own goes on top afterwards.
    let headers = inserted_headers(&actions);
    assert_eq!(ar(&headers).authserv_id, RECEIVER);
    let last_delete = actions
        .actions
        .iter()
        .rposition(|a| matches!(a, EomAction::DeleteHeader { .. }));
    let first_insert = actions
        .actions
        .iter()
        .position(|a| matches!(a, EomAction::InsertHeader { .. }));
    assert!(last_delete < first_insert, "{:?}", actions.actions);
    c.close().await.unwrap();
}

#[tokio::test]
async fn second_message_on_a_connection_does_not_repeat_the_helo_stage_queries() {
    // Without a DNS cache, only the per-connection reuse can save queries.
    let m = Running::start(
        zone(),
        Setup {
            cache_size: Some(0),
            ..Setup::default()
        },
    )
    .await;
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    assert_accepted(&mut c, "<alice@example.com>", "<x@example.org>").await;
    let (_, status) = m.eom(&mut c, &[]).await;
    assert_eq!(status, Status::Continue);
    let first: Vec<String> = m
        .dns
        .queries()
        .iter()
        .map(|q| format!("{} {}", q.name, q.qtype))
        .collect();
    assert!(
        first
            .iter()
            .any(|q| q.starts_with("7.2.0.192.in-addr.arpa")),
        "the first message did not look up the PTR: {first:?}"
    );
    m.dns.reset_counts();

    // Second message, new sender domain: only its MX (sender-domain; the
    // MX host's address is the connection's already) and SPF record are
    // asked for.
    assert_accepted(&mut c, "<bob@other.example.net>", "<x@example.org>").await;
    let (actions, status) = m.eom(&mut c, &[]).await;
    assert_eq!(status, Status::Continue);
    let mut second: Vec<String> = m
        .dns
        .queries()
        .iter()
        .map(|q| format!("{} {}", q.name, q.qtype))
        .collect();
    second.sort();
    assert_eq!(
        second,
        ["other.example.net 15", "other.example.net 16"],
        "the second message repeated lookups"
    );
    // And its headers still carry the connection's results.
    let ar = ar(&inserted_headers(&actions));
    assert_eq!(
        ar.result("iprev", "policy.iprev"),
        Some(("pass", "192.0.2.7"))
    );
    assert_eq!(
        ar.result("spf", "smtp.helo"),
        Some(("pass", "mx.example.com"))
    );
    assert_eq!(
        ar.result("spf", "smtp.mailfrom"),
        Some(("pass", "other.example.net"))
    );
    c.close().await.unwrap();

    // A new connection does look them up again (the cache is off).
    m.dns.reset_counts();
    let c = m.client("192.0.2.7", "mx.example.com").await;
    assert!(
        m.dns.query_count_for(
            "7.2.0.192.in-addr.arpa",
            tollgate::dns::memory::RecordType::Ptr
        ) >= 1
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn reload_applies_to_new_connections_while_a_live_connection_keeps_its_snapshot() {
    let m = Running::start(zone(), Setup::default()).await;
    let mut live = m.client("192.0.2.7", "mx.example.com").await;

    // Forged senders become tag-only.
    m.write_config(&Setup::extra("policy:\n  spf-mailfrom:\n    fail: tag\n"));
    m.handle.reload().await.expect("the new file is valid");

    let mut fresh = m.client("192.0.2.7", "mx.example.com").await;
    assert_accepted(&mut fresh, "<bob@forged.example.org>", "<x@example.org>").await;
    let (actions, _) = m.eom(&mut fresh, &[]).await;
    assert_eq!(
        ar(&inserted_headers(&actions)).result("spf", "smtp.mailfrom"),
        Some(("fail", "forged.example.org"))
    );
    fresh.close().await.unwrap();

    // The connection opened before the reload still rejects.
    assert_eq!(
        live.mail(["<bob@forged.example.org>"]).await.unwrap(),
        Status::Continue
    );
    let status = live.rcpt(["<x@example.org>"]).await.unwrap();
    assert_eq!(reply(&status).as_deref(), Some(FORGED_REPLY));
    live.close().await.unwrap();
}

#[tokio::test]
async fn apply_with_a_changed_policy_serves_new_connections_with_it() {
    let m = Running::start(zone(), Setup::default()).await;
    let mut before = m.client("192.0.2.7", "mx.example.com").await;
    m.handle
        .apply(m.config(&Setup::extra("reject_at: earliest\n")))
        .await
        .expect("apply");
    let mut after = m.client("192.0.2.7", "mx.example.com").await;
    let status = after.mail(["<bob@forged.example.org>"]).await.unwrap();
    assert_eq!(reply(&status).as_deref(), Some(FORGED_REPLY));
    assert_no_reply_before_rcpt(&mut before, "<bob@forged.example.org>").await;
    let status = before.rcpt(["<x@example.org>"]).await.unwrap();
    assert_eq!(reply(&status).as_deref(), Some(FORGED_REPLY));
    before.close().await.unwrap();
    after.close().await.unwrap();
}

#[tokio::test]
async fn bad_reload_is_refused_and_the_old_configuration_keeps_serving() {
    let m = Running::start(zone(), Setup::default()).await;
    std::fs::write(
        m.config_path(),
        "policy:\n  spf-mailfrom:\n    fail: maybe\n",
    )
    .unwrap();
    let err = m
        .handle
        .reload()
        .await
        .expect_err("a broken file must be refused");
    let message = err.to_string();
    assert!(message.contains("policy.spf-mailfrom.fail"), "{message}");
    assert!(
        message.contains(&m.config_path().display().to_string()),
        "{message}"
    );

    std::fs::write(m.config_path(), "listen: [unclosed\n").unwrap();
    assert!(
        m.handle.reload().await.is_err(),
        "YAML that does not parse must be refused"
    );

    // The old policy (reject at RCPT, DNS from testdns) still serves.
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    assert_eq!(
        c.mail(["<bob@forged.example.org>"]).await.unwrap(),
        Status::Continue
    );
    let status = c.rcpt(["<x@example.org>"]).await.unwrap();
    assert_eq!(reply(&status).as_deref(), Some(FORGED_REPLY));
    c.close().await.unwrap();
}

/// Sends a malformed MAIL FROM and checks for a clear outcome: a 5xx/4xx
/// reply or acceptance with headers, then that the connection still works.
async fn malformed_sender_gets_a_clear_result(sender: Vec<u8>) -> (Status, Vec<(String, String)>) {
    let m = Running::start(zone(), Setup::default()).await;
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    let mail = c
        .mail([std::ffi::CString::new(sender).expect("no NUL")])
        .await
        .expect("the milter answered MAIL");
    assert!(
        matches!(
            mail,
            Status::Continue | Status::Reject { .. } | Status::Tempfail { .. }
        ),
        "{mail:?}"
    );
    let rcpt = c
        .rcpt(["<x@example.org>"])
        .await
        .expect("the milter answered RCPT");
    let mut headers = Vec::new();
    match &rcpt {
        Status::Continue => {
            let (actions, status) = m.eom(&mut c, &[]).await;
            assert_eq!(status, Status::Continue);
            headers = inserted_headers(&actions);
            for (name, value) in &headers {
                assert!(value.is_ascii(), "{name} is not 7-bit: {value:?}");
            }
            assert_eq!(
                header_values(&headers, "Authentication-Results").len(),
                1,
                "{headers:?}"
            );
        }
        Status::Reject { message } | Status::Tempfail { message } => {
            let text = message
                .as_ref()
                .expect("a reply text")
                .to_str()
                .unwrap()
                .to_owned();
            assert!(
                text.starts_with("550 5.") || text.starts_with("451 4."),
                "{text}"
            );
            assert!(text.len() <= 512, "reply line too long: {}", text.len());
            c.abort().await.unwrap();
        }
        other => panic!("unexpected {other:?}"),
    }
    // The connection is alive: a normal message goes through.
    assert_accepted(&mut c, "<alice@example.com>", "<x@example.org>").await;
    let (_, status) = m.eom(&mut c, &[]).await;
    assert_eq!(status, Status::Continue);
    c.close().await.unwrap();
    (rcpt, headers)
}

#[tokio::test]
async fn null_sender_is_checked_with_the_helo_identity() {
    let (rcpt, headers) = malformed_sender_gets_a_clear_result(b"<>".to_vec()).await;
    assert_eq!(rcpt, Status::Continue);
    let rspf = received_spf(&headers);
    assert_eq!(rspf.result, "pass");
    assert_eq!(rspf.field("identity"), Some("helo"));
    assert_eq!(rspf.field("envelope-from"), None, "{}", rspf.raw);
}

#[tokio::test]
async fn sender_without_a_domain_gets_a_clear_result() {
    let (rcpt, headers) = malformed_sender_gets_a_clear_result(b"<alice>".to_vec()).await;
    assert_eq!(rcpt, Status::Continue);
    assert_eq!(received_spf(&headers).result, "none");
}

#[tokio::test]
async fn sender_with_8bit_bytes_gets_a_clear_result() {
    let (rcpt, _) =
        malformed_sender_gets_a_clear_result(b"<j\xf6rg@ex\xe4mple.com>".to_vec()).await;
    // No such domain can exist: sender-domain refuses it, with the bytes
    // made printable.
    assert_eq!(
        reply(&rcpt).as_deref(),
        Some("550 5.1.8 ex?mple.com does not exist")
    );
}

fn long_local_part_sender() -> Vec<u8> {
    let mut sender = b"<".to_vec();
    sender.extend(std::iter::repeat_n(b'a', 1000));
    sender.extend(b"@example.com>");
    sender
}

#[tokio::test]
async fn sender_with_a_1000_character_local_part_gets_a_clear_result() {
    let (rcpt, headers) = malformed_sender_gets_a_clear_result(long_local_part_sender()).await;
    assert_eq!(rcpt, Status::Continue);
    assert_eq!(received_spf(&headers).result, "pass");
}

#[tokio::test]
async fn header_lines_stay_within_998_characters_for_a_long_local_part_regression() {
    let (_, headers) = malformed_sender_gets_a_clear_result(long_local_part_sender()).await;
    assert!(!headers.is_empty());
    for (name, value) in &headers {
        for line in value.split('\n') {
            // The first line starts with "Name: ".
            let length = line.len() + name.len() + 2;
            assert!(
                length <= 998,
                "{name}: a line of {length} characters breaks RFC 5322's 998 limit"
            );
        }
    }
}

#[tokio::test]
async fn sender_that_is_only_angle_brackets_and_spaces_gets_a_clear_result() {
    let (rcpt, headers) = malformed_sender_gets_a_clear_result(b"< @ >".to_vec()).await;
    assert_eq!(rcpt, Status::Continue);
    assert_eq!(received_spf(&headers).result, "none");
}

#[tokio::test]
async fn shutdown_refuses_new_connections_and_lets_a_live_session_finish() {
    let mut m = Running::start(zone(), Setup::default()).await;
    let mut live = m.client("192.0.2.7", "mx.example.com").await;
    assert_eq!(m.handle.live_sessions(), 1);
    m.shutdown();
    // New connections are refused once the socket is closed.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // A connect that raced the close may be reset instead; try again
        // until the kernel refuses outright.
        let attempt = tokio::net::TcpStream::connect(m.addr).await;
        match attempt {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(10)).await,
            other => panic!("still not refusing connections 5 s after shutdown: {other:?}"),
        }
    }
    // The live session finishes its message normally.
    assert_accepted(&mut live, "<alice@example.com>", "<x@example.org>").await;
    let (actions, status) = m.eom(&mut live, &[]).await;
    assert_eq!(status, Status::Continue);
    assert_eq!(received_spf(&inserted_headers(&actions)).result, "pass");
    live.close().await.unwrap();
    // run() returns Ok soon after the last session closed, well before
    // shutdown_timeout (5 s).
    let started = Instant::now();
    let result = m.wait_stopped(Duration::from_secs(3)).await;
    assert!(result.is_ok(), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(m.handle.live_sessions(), 0);
}

#[tokio::test]
async fn shutdown_closes_an_idle_session_after_shutdown_timeout() {
    let mut m = Running::start(
        zone(),
        Setup {
            shutdown_timeout: "1s",
            ..Setup::default()
        },
    )
    .await;
    let mut idle = m.client("192.0.2.7", "mx.example.com").await;
    let started = Instant::now();
    m.shutdown();
    let result = m.wait_stopped(Duration::from_secs(5)).await;
    assert!(result.is_ok(), "{result:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The idle session is gone: its next command fails instead of hanging.
    let next =
        tokio::time::timeout(Duration::from_secs(2), idle.mail(["<alice@example.com>"])).await;
    assert!(matches!(next, Ok(Err(_))), "{next:?}");
}
