//! End to end with a real Postfix (the Debian package): each test starts its
//! own Postfix instance on a free 127.0.0.1 port with the main.cf snippet
//! of docs/postfix.md (read from the document, so the documentation is what
//! is tested), `tollgate serve` as its milter, and testdns as the only DNS.
//! The client address and HELO come from XCLIENT, so the checks run for
//! documentation addresses (192.0.2.0/24) rather than for loopback.
//!
//! Without Postfix installed (or without root) the tests are reported ignored,
//! with the reason, unless `CI` or `TOLLGATE_E2E_REQUIRED=1` is set: then
//! they fail. The harness is tests/e2e/harness.rs (`harness = false`): a
//! test is listed in the `main!` at the end of this file.

mod e2e;
#[path = "e2e_postfix/forged_received_spf.rs"]
mod forged_received_spf;
#[path = "e2e_postfix/new_stages.rs"]
mod new_stages;

use e2e::postfix::{self, Postfix};
use e2e::{Dns, Missing, TempDir, TestResult, Tollgate, message};

/// The DNS world of these tests. Clients:
/// - 192.0.2.7 = mx.example.com (FCrDNS pass), allowed by example.com's SPF;
/// - 192.0.2.9 = relay.example.net (FCrDNS pass, HELO SPF pass), not
///   allowed by example.com's SPF (`-all`);
/// - 192.0.2.66: its PTR names mx.example.com, which does not resolve back
///   to it (FCrDNS fail); not allowed by example.com's SPF, allowed by
///   grey.example.com's (the greylisting test).
///
/// `slow.example.com` never answers (TIMEOUT).
///
/// For the DNS list and sender-domain stages (tests/e2e_postfix/new_stages.rs):
/// - 192.0.2.50 is listed on the block list `bl.example.net` (with a TXT
///   reason), 192.0.2.60 on the allow list `wl.example.net`; both have
///   FCrDNS (mail50/mail60.example.net);
/// - sender domains: `gone.example.com` does not exist, `nullmx.example.com`
///   publishes a null MX (RFC 7505), `private.example.com`'s only MX host
///   resolves to 10.0.0.25, and `mxslow.example.com` never answers.
const ZONE: &str = r#"
example.com:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:192.0.2.7 -all"
mx.example.com:
  - A: 192.0.2.7
  - TXT: "v=spf1 a -all"
7.2.0.192.in-addr.arpa:
  - PTR: mx.example.com
relay.example.net:
  - A: 192.0.2.9
  - TXT: "v=spf1 a -all"
9.2.0.192.in-addr.arpa:
  - PTR: relay.example.net
66.2.0.192.in-addr.arpa:
  - PTR: mx.example.com
slow.example.com:
  - MX: [10, mx.example.com]
  - TIMEOUT
percent.example.com:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:192.0.2.7 -all exp=why.percent.example.com"
why.percent.example.com:
  - TXT: "only 100%% of our mail comes from %{d}'s servers"
mail50.example.net:
  - A: 192.0.2.50
50.2.0.192.in-addr.arpa:
  - PTR: mail50.example.net
50.2.0.192.bl.example.net:
  - A: 127.0.0.2
  - TXT: "192.0.2.50 sent spam to our traps, see https://bl.example.net/q?192.0.2.50"
mail60.example.net:
  - A: 192.0.2.60
60.2.0.192.in-addr.arpa:
  - PTR: mail60.example.net
60.2.0.192.wl.example.net:
  - A: 127.0.10.2
nullmx.example.com:
  - MX: [0, "."]
  - TXT: "v=spf1 -all"
private.example.com:
  - MX: [10, mx.private.example.com]
  - TXT: "v=spf1 ip4:192.0.2.0/24 -all"
mx.private.example.com:
  - A: 10.0.0.25
mxslow.example.com:
  - TIMEOUT
grey.example.com:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:192.0.2.0/24 -all"
"#;

/// The authserv-id: tollgate's default is the MTA's `j` macro, which
/// Postfix sets to `myhostname` (mx.example.org in the test instance).
const AUTHSERV_ID: &str = "mx.example.org";

/// One test's processes; dropped in field order: Postfix first, the
/// temporary directory last.
struct World {
    postfix: Postfix,
    tollgate: Tollgate,
    _dns: Dns,
    _dir: TempDir,
}

/// Postfix + tollgate (with `extra` YAML in its configuration) + testdns,
/// or what is missing to build it.
fn world(label: &str, extra: &str) -> Result<World, Missing> {
    let install = postfix::require()?;
    e2e::require_tollgate_serve()?;
    let dir = TempDir::new(label);
    let dns = Dns::start(ZONE);
    let tollgate = Tollgate::start(dir.path(), &e2e::tollgate_config(&dns, extra));
    let snippet = postfix::documented_snippet(&format!("inet:{}", tollgate.addr));
    let postfix = Postfix::start(&install, dir.path(), &snippet);
    Ok(World {
        postfix,
        tollgate,
        _dns: dns,
        _dir: dir,
    })
}

fn postfix_sends_the_macros_tollgate_reads_with_the_documented_main_cf() -> TestResult {
    let install = postfix::require()?;
    let dir = TempDir::new("pf-macros");
    let recorder = e2e::milter::Recorder::start();
    let snippet = postfix::documented_snippet(&format!("inet:{}", recorder.addr));
    let postfix = Postfix::start(&install, dir.path(), &snippet);

    let mut smtp = postfix.connect();
    smtp.ehlo("client.example.com");
    smtp.xclient("192.0.2.7", Some("mx.example.com"), "mx.example.com");
    assert_eq!(smtp.mail("alice@example.com").code, 250, "{}", smtp.show());
    assert_eq!(smtp.rcpt("bob@example.org").code, 250, "{}", smtp.show());
    let reply = smtp.data(&message("macros-1", ""));
    assert_eq!(reply.code, 250, "{}", smtp.show());
    smtp.quit();
    postfix.delivered("macros-1");

    let events = recorder.events();
    let dump = events
        .iter()
        .map(|e| format!("{} {} {:?} {:?}", e.connection, e.command, e.args, e.macros))
        .collect::<Vec<_>>()
        .join("\n");
    e2e::note(format_args!("milter events:\n{dump}"));
    // The connect seen by the milter is the XCLIENT one.
    let connect = events
        .iter()
        .rfind(|e| e.command == 'C')
        .unwrap_or_else(|| panic!("no connect event:\n{dump}"));
    assert_eq!(
        connect.args.first().map(String::as_str),
        Some("mx.example.com"),
        "{dump}"
    );
    assert!(connect.args.iter().any(|a| a == "192.0.2.7"), "{dump}");
    assert_eq!(
        connect.macros.get("j").map(String::as_str),
        Some("mx.example.org"),
        "{dump}"
    );
    assert_eq!(
        connect.macros.get("{client_addr}").map(String::as_str),
        Some("192.0.2.7"),
        "{dump}"
    );
    assert_eq!(
        connect.macros.get("{client_name}").map(String::as_str),
        Some("mx.example.com"),
        "{dump}"
    );
    assert!(connect.macros.contains_key("{daemon_name}"), "{dump}");
    let eom = events
        .iter()
        .rfind(|e| e.command == 'E')
        .unwrap_or_else(|| panic!("no end-of-message event:\n{dump}"));
    assert!(eom.macros.get("i").is_some_and(|i| !i.is_empty()), "{dump}");
    // Postfix has no queue id before the first recipient is accepted
    // (smtpd_delay_open_until_valid_rcpt), so `i` is missing at MAIL and
    // RCPT although milter_mail_macros and milter_rcpt_macros list it.
    for command in ['M', 'R'] {
        let event = events
            .iter()
            .rfind(|e| e.command == command)
            .unwrap_or_else(|| panic!("no {command} event:\n{dump}"));
        assert!(!event.macros.contains_key("i"), "{dump}");
    }
    Ok(())
}

fn postfix_tempfails_mail_when_no_milter_listens_with_milter_default_action_tempfail() -> TestResult
{
    let install = postfix::require()?;
    let dir = TempDir::new("pf-nomilter");
    // A port where nothing listens.
    let dead = format!("inet:127.0.0.1:{}", e2e::free_port());
    let postfix = Postfix::start(&install, dir.path(), &postfix::documented_snippet(&dead));

    let mut smtp = postfix.connect();
    smtp.ehlo("client.example.com");
    smtp.xclient("192.0.2.7", Some("mx.example.com"), "mx.example.com");
    let mail = smtp.mail("alice@example.com");
    e2e::note(format_args!("{}", smtp.show()));
    e2e::note(format_args!("{}", postfix.log()));
    assert_eq!(
        mail.first(),
        "451 4.7.1 Service unavailable - try again later",
        "{}",
        smtp.show()
    );
    smtp.quit();
    Ok(())
}

fn spf_fail_is_rejected_at_rcpt_with_5_7_23_while_postmaster_is_still_accepted() -> TestResult {
    let w = world("pf-spf-fail", "")?;
    let mut smtp = w.postfix.connect();
    smtp.ehlo("client.example.com");
    smtp.xclient("192.0.2.9", Some("relay.example.net"), "relay.example.net");
    // The verdict is known at MAIL FROM, but the reply waits for RCPT.
    let mail = smtp.mail("forger@example.com");
    assert_eq!(mail.code, 250, "{}", smtp.show());
    let rcpt = smtp.rcpt("bob@example.org");
    assert_eq!(
        rcpt.first(),
        r#"550 5.7.23 SPF fail: 192.0.2.9 is not allowed to send mail as example.com (matched "-all")"#,
        "{}",
        smtp.show()
    );
    // RFC 5321 / RFC 2142: postmaster stays reachable in the same transaction.
    let postmaster = smtp.rcpt("postmaster@example.org");
    assert_eq!(postmaster.code, 250, "{}", smtp.show());
    let data = smtp.data(&message("spf-fail-postmaster", ""));
    assert_eq!(data.code, 250, "{}", smtp.show());
    smtp.quit();

    let delivered = w.postfix.delivered("spf-fail-postmaster");
    assert_eq!(delivered.len(), 1, "one copy, for postmaster only");
    let spf = delivered[0].fields("Received-SPF");
    assert_eq!(spf.len(), 1, "{:?}", delivered[0].headers());
    assert!(spf[0].starts_with("Received-SPF: fail"), "{}", spf[0]);
    assert!(spf[0].contains("client-ip=192.0.2.9"), "{}", spf[0]);
    w.postfix
        .log_line("milter-reject: RCPT from relay.example.net[192.0.2.9]: 550 5.7.23");
    Ok(())
}

fn a_refusal_before_the_queue_id_is_matched_to_postfix_noqueue_line_by_address_and_port()
-> TestResult {
    let install = postfix::require()?;
    e2e::require_tollgate_serve()?;
    let dir = TempDir::new("pf-noqueue");
    let dns = Dns::start(ZONE);
    let tollgate = Tollgate::start(dir.path(), &e2e::tollgate_config(&dns, ""));
    // The documented main.cf block and the port logging of docs/operations.md.
    let mut main_cf = postfix::documented_snippet(&format!("inet:{}", tollgate.addr));
    main_cf.push_str(&e2e::doc_snippet(
        "docs/operations.md",
        "postfix client port logging",
    ));
    let postfix = Postfix::start(&install, dir.path(), &main_cf);
    let mut smtp = postfix.connect();
    smtp.ehlo("client.example.com");
    smtp.xclient("192.0.2.9", Some("relay.example.net"), "relay.example.net");
    assert_eq!(smtp.mail("forger@example.com").code, 250, "{}", smtp.show());
    assert_eq!(smtp.rcpt("bob@example.org").code, 550, "{}", smtp.show());
    smtp.quit();

    let ours = e2e::wait_for(e2e::WAIT, "tollgate's message line", || {
        tollgate
            .log_text()
            .lines()
            .find(|l| l.contains(" message ") && l.contains("forger@example.com"))
            .map(str::to_owned)
    });
    e2e::note(&ours);
    assert!(ours.contains(" queue_id= "), "no queue id yet: {ours}");
    let port = ours
        .split(" client_port=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .filter(|p| p.parse::<u16>().is_ok_and(|p| p != 0))
        .unwrap_or_else(|| panic!("no client_port in {ours}"));
    let theirs = postfix.log_line("NOQUEUE: milter-reject: RCPT from");
    e2e::note(&theirs);
    assert!(
        theirs.contains(&format!("relay.example.net[192.0.2.9]:{port}: 550 5.7.23")),
        "Postfix's NOQUEUE line does not name port {port}: {theirs}"
    );
    Ok(())
}

fn dns_timeout_for_the_sender_domain_is_a_451_4_7_24_at_rcpt() -> TestResult {
    let w = world("pf-timeout", "")?;
    let mut smtp = w.postfix.connect();
    smtp.ehlo("client.example.com");
    smtp.xclient("192.0.2.7", Some("mx.example.com"), "mx.example.com");
    assert_eq!(
        smtp.mail("someone@slow.example.com").code,
        250,
        "{}",
        smtp.show()
    );
    let rcpt = smtp.rcpt("bob@example.org");
    assert_eq!(rcpt.code, 451, "{}", smtp.show());
    assert!(
        rcpt.first()
            .starts_with("451 4.7.24 SPF temperror for slow.example.com: "),
        "{}",
        smtp.show()
    );
    assert!(rcpt.first().ends_with("try again later"), "{}", smtp.show());
    smtp.quit();
    Ok(())
}

fn accepted_mail_carries_received_spf_and_authentication_results_once_above_postfix_received()
-> TestResult {
    let w = world("pf-accept", "")?;
    let mut smtp = w.postfix.connect();
    smtp.ehlo("client.example.com");
    smtp.xclient("192.0.2.7", Some("mx.example.com"), "mx.example.com");
    assert_eq!(smtp.mail("alice@example.com").code, 250, "{}", smtp.show());
    assert_eq!(smtp.rcpt("bob@example.org").code, 250, "{}", smtp.show());
    assert_eq!(
        smtp.data(&message("accepted-1", "")).code,
        250,
        "{}",
        smtp.show()
    );
    smtp.quit();

    let delivered = w.postfix.delivered("accepted-1");
    assert_eq!(delivered.len(), 1);
    let m = &delivered[0];
    let names = m.header_names();
    e2e::note(format_args!(
        "delivered headers:\n{}",
        m.headers().join("\n")
    ));

    let spf = m.fields("Received-SPF");
    assert_eq!(spf.len(), 1, "exactly one Received-SPF: {names:?}");
    assert!(spf[0].starts_with("Received-SPF: pass"), "{}", spf[0]);
    for part in [
        "client-ip=192.0.2.7;",
        "envelope-from=\"alice@example.com\";",
        "helo=mx.example.com;",
        "identity=mailfrom;",
    ] {
        assert!(spf[0].contains(part), "{part} missing in {}", spf[0]);
    }
    let ar = m.fields("Authentication-Results");
    assert_eq!(ar.len(), 1, "exactly one Authentication-Results: {names:?}");
    assert!(
        ar[0].starts_with(&format!("Authentication-Results: {AUTHSERV_ID};")),
        "authserv-id is Postfix's myhostname (macro j): {}",
        ar[0]
    );
    for part in [
        "spf=pass smtp.mailfrom=example.com",
        "spf=pass smtp.helo=mx.example.com",
        "iprev=pass policy.iprev=192.0.2.7",
    ] {
        assert!(ar[0].contains(part), "{part} missing in {}", ar[0]);
    }

    // Where they land: virtual(8) prepends Return-Path, X-Original-To and
    // Delivered-To at delivery; right below come the milter's headers,
    // inserted at index 0 and so above the Received header of Postfix's own
    // smtpd (Postfix does not show its Received header to milters, and
    // index 0 means above it). Authentication-Results ends up above
    // Received-SPF.
    assert_eq!(
        names[..6],
        [
            "Return-Path",
            "X-Original-To",
            "Delivered-To",
            "Authentication-Results",
            "Received-SPF",
            "Received"
        ],
        "{names:?}"
    );
    assert!(
        m.fields("Received")[0].contains("from mx.example.com"),
        "{names:?}"
    );
    Ok(())
}

fn forged_authentication_results_with_our_authserv_id_are_removed_and_others_kept() -> TestResult {
    let w = world("pf-forged-ar", "")?;
    let forged = format!(
        "Authentication-Results: {AUTHSERV_ID}; spf=pass smtp.mailfrom=forged.example\n\
         Authentication-Results: other.example.net; spf=pass smtp.mailfrom=upstream.example\n\
         Authentication-Results: {}; dkim=pass header.d=forged.example\n",
        AUTHSERV_ID.to_uppercase()
    );
    let mut smtp = w.postfix.connect();
    smtp.ehlo("client.example.com");
    smtp.xclient("192.0.2.7", Some("mx.example.com"), "mx.example.com");
    assert_eq!(smtp.mail("alice@example.com").code, 250, "{}", smtp.show());
    assert_eq!(smtp.rcpt("bob@example.org").code, 250, "{}", smtp.show());
    assert_eq!(
        smtp.data(&message("forged-ar", &forged)).code,
        250,
        "{}",
        smtp.show()
    );
    smtp.quit();

    let m = &w.postfix.delivered("forged-ar")[0];
    let ar = m.fields("Authentication-Results");
    e2e::note(format_args!(
        "delivered headers:\n{}",
        m.headers().join("\n")
    ));
    assert!(
        !m.raw.contains("forged.example"),
        "forged results survived: {ar:#?}"
    );
    let ours: Vec<_> = ar
        .iter()
        .filter(|h| h.contains(&format!(" {AUTHSERV_ID};")))
        .collect();
    assert_eq!(ours.len(), 1, "only tollgate's own: {ar:#?}");
    assert!(
        ours[0].contains("spf=pass smtp.mailfrom=example.com"),
        "{ar:#?}"
    );
    let others: Vec<_> = ar
        .iter()
        .filter(|h| h.contains("other.example.net;"))
        .collect();
    assert_eq!(
        others.len(),
        1,
        "another authserv-id is left alone: {ar:#?}"
    );
    assert_eq!(ar.len(), 2, "{ar:#?}");
    Ok(())
}

fn postfix_answers_451_4_7_1_when_tollgate_dies_mid_session() -> TestResult {
    let mut w = world("pf-killed", "")?;
    let mut smtp = w.postfix.connect();
    smtp.ehlo("client.example.com");
    smtp.xclient("192.0.2.7", Some("mx.example.com"), "mx.example.com");
    // The milter connection is open (CONNECT and HELO went through); now
    // the milter dies as a crash would.
    w.tollgate.kill();
    let mail = smtp.mail("alice@example.com");
    assert_eq!(
        mail.first(),
        "451 4.7.1 Service unavailable - try again later",
        "{}\n{}",
        smtp.show(),
        w.postfix.log()
    );
    smtp.quit();
    w.postfix
        .log_line("milter-reject: MAIL from mx.example.com[192.0.2.7]: 451 4.7.1");
    Ok(())
}

fn a_milter_listed_after_tollgate_sees_its_headers_as_opendmarc_would() -> TestResult {
    let install = postfix::require()?;
    e2e::require_tollgate_serve()?;
    let dir = TempDir::new("pf-order");
    let dns = Dns::start(ZONE);
    let tollgate = Tollgate::start(dir.path(), &e2e::tollgate_config(&dns, ""));
    let recorder = e2e::milter::Recorder::start();
    // The documented line with a second milter after tollgate, as one would
    // list OpenDKIM and OpenDMARC.
    let snippet =
        postfix::documented_snippet(&format!("inet:{}, inet:{}", tollgate.addr, recorder.addr));
    let postfix = Postfix::start(&install, dir.path(), &snippet);

    let mut smtp = postfix.connect();
    smtp.ehlo("client.example.com");
    smtp.xclient("192.0.2.7", Some("mx.example.com"), "mx.example.com");
    assert_eq!(smtp.mail("alice@example.com").code, 250, "{}", smtp.show());
    assert_eq!(smtp.rcpt("bob@example.org").code, 250, "{}", smtp.show());
    assert_eq!(
        smtp.data(&message("order-1", "")).code,
        250,
        "{}",
        smtp.show()
    );
    smtp.quit();
    postfix.delivered("order-1");

    let headers: Vec<String> = recorder
        .events()
        .iter()
        .filter(|e| e.command == 'L')
        .map(|e| e.args.join(": "))
        .collect();
    e2e::note(format_args!(
        "headers seen by the second milter:\n{}",
        headers.join("\n")
    ));
    assert!(
        headers
            .iter()
            .any(|h| h.starts_with(&format!("Authentication-Results: {AUTHSERV_ID}; spf=pass"))),
        "{headers:#?}"
    );
    assert!(
        headers.iter().any(|h| h.starts_with("Received-SPF: pass")),
        "{headers:#?}"
    );
    Ok(())
}

fn dry_run_accepts_an_spf_fail_and_logs_the_reject_it_would_have_sent() -> TestResult {
    let w = world("pf-dry-run", "dry_run: true\n")?;
    let mut smtp = w.postfix.connect();
    smtp.ehlo("client.example.com");
    smtp.xclient("192.0.2.9", Some("relay.example.net"), "relay.example.net");
    assert_eq!(smtp.mail("forger@example.com").code, 250, "{}", smtp.show());
    assert_eq!(smtp.rcpt("bob@example.org").code, 250, "{}", smtp.show());
    assert_eq!(
        smtp.data(&message("dry-run-1", "")).code,
        250,
        "{}",
        smtp.show()
    );
    smtp.quit();

    let m = &w.postfix.delivered("dry-run-1")[0];
    assert!(
        m.fields("Received-SPF")[0].starts_with("Received-SPF: fail"),
        "{:?}",
        m.headers()
    );
    let log = e2e::wait_for(e2e::WAIT, "tollgate's message log line", || {
        let log = w.tollgate.log_text();
        log.lines()
            .find(|l| {
                l.contains("dry-run-1") || l.contains("forger@example.com") && l.contains("5.7.23")
            })
            .map(str::to_owned)
    });
    e2e::note(format_args!("{log}"));
    assert!(log.contains("550 5.7.23"), "{log}");
    Ok(())
}

fn postfix_answers_451_4_7_1_when_tollgate_hangs_past_milter_command_timeout() -> TestResult {
    let install = postfix::require()?;
    e2e::require_tollgate_serve()?;
    let dir = TempDir::new("pf-hang");
    let dns = Dns::start(ZONE);
    let tollgate = Tollgate::start(dir.path(), &e2e::tollgate_config(&dns, ""));
    // The documented snippet, with a short command timeout added after it
    // (the last setting in main.cf wins) so the test need not wait 30 s.
    let mut main_cf = postfix::documented_snippet(&format!("inet:{}", tollgate.addr));
    main_cf.push_str("milter_command_timeout = 2s\n");
    let postfix = Postfix::start(&install, dir.path(), &main_cf);

    let mut smtp = postfix.connect();
    smtp.ehlo("client.example.com");
    smtp.xclient("192.0.2.7", Some("mx.example.com"), "mx.example.com");
    // The milter stops answering (a hang, not a crash).
    tollgate.signal("STOP");
    let started = std::time::Instant::now();
    let mail = smtp.mail("alice@example.com");
    let waited = started.elapsed();
    tollgate.signal("CONT");
    assert_eq!(
        mail.first(),
        "451 4.7.1 Service unavailable - try again later",
        "{}",
        smtp.show()
    );
    assert!(
        waited >= std::time::Duration::from_millis(1900),
        "answered after {waited:?}, before milter_command_timeout"
    );
    smtp.quit();
    postfix.log_line("milter-reject: MAIL from mx.example.com[192.0.2.7]: 451 4.7.1");
    e2e::note(format_args!(
        "{}",
        postfix
            .log()
            .lines()
            .filter(|l| l.contains("milter"))
            .collect::<Vec<_>>()
            .join("\n")
    ));
    Ok(())
}

fn percent_in_a_domain_explanation_reaches_the_client_as_one_percent_sign() -> TestResult {
    let w = world("pf-percent", "")?;
    let mut smtp = w.postfix.connect();
    smtp.ehlo("client.example.com");
    smtp.xclient("192.0.2.9", Some("relay.example.net"), "relay.example.net");
    smtp.mail("forger@percent.example.com");
    let rcpt = smtp.rcpt("bob@example.org");
    assert_eq!(
        rcpt.first(),
        r#"550 5.7.23 SPF fail: 192.0.2.9 is not allowed to send mail as percent.example.com (matched "-all"); percent.example.com says: "only 100% of our mail comes from percent.example.com's servers""#,
        "{}",
        smtp.show()
    );
    smtp.quit();
    Ok(())
}

fn greylisted_first_delivery_is_451_4_7_1_at_rcpt_and_the_retry_after_the_delay_is_delivered()
-> TestResult {
    let db = std::env::temp_dir().join(format!("tollgate-e2e-greylist-{}.db", std::process::id()));
    let extra = format!(
        "policy:\n  fcrdns: {{fail: greylist, permerror: greylist}}\n\
         greylist:\n  path: {}\n  delay: 1s\n",
        db.display()
    );
    let w = world("pf-greylist", &extra)?;
    let attempt = |marker: &str| {
        let mut smtp = w.postfix.connect();
        smtp.ehlo("client.example.net");
        smtp.xclient("192.0.2.66", None, "client.example.net");
        assert_eq!(
            smtp.mail("alice@grey.example.com").code,
            250,
            "{}",
            smtp.show()
        );
        let rcpt = smtp.rcpt("bob@example.org");
        e2e::note(smtp.show());
        let delivered = rcpt.code == 250;
        if delivered {
            assert_eq!(smtp.data(&message(marker, "")).code, 250, "{}", smtp.show());
        }
        smtp.quit();
        (rcpt, delivered)
    };
    let (first, delivered) = attempt("greylist-first");
    assert!(!delivered);
    assert!(
        first
            .first()
            .starts_with("451 4.7.1 Greylisted: reverse DNS of 192.0.2.66"),
        "{}",
        first.first()
    );
    assert!(
        first.first().contains("please retry in 1 second"),
        "{}",
        first.first()
    );
    w.postfix
        .log_line("milter-reject: RCPT from unknown[192.0.2.66]: 451 4.7.1");
    // The retry, after the delay, as a queueing MTA would.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let (_, delivered) = attempt("greylist-retry");
    assert!(delivered);
    let messages = w.postfix.delivered("greylist-retry");
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    e2e::note(format_args!(
        "delivered headers:\n{}",
        m.headers().join("\n")
    ));
    let x = m.fields("X-Greylist");
    assert_eq!(x.len(), 1, "{:?}", m.header_names());
    assert!(x[0].starts_with("X-Greylist: delayed "), "{}", x[0]);
    assert!(
        x[0].contains("by tollgate at tollgate.example.org"),
        "{}",
        x[0]
    );
    let ar = m.fields("Authentication-Results");
    assert!(ar[0].contains("iprev=fail"), "{}", ar[0]);
    assert_eq!(m.fields("Received-SPF").len(), 1);
    drop(w);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    Ok(())
}

e2e::harness::main!(
    greylisted_first_delivery_is_451_4_7_1_at_rcpt_and_the_retry_after_the_delay_is_delivered,
    postfix_sends_the_macros_tollgate_reads_with_the_documented_main_cf,
    postfix_tempfails_mail_when_no_milter_listens_with_milter_default_action_tempfail,
    spf_fail_is_rejected_at_rcpt_with_5_7_23_while_postmaster_is_still_accepted,
    a_refusal_before_the_queue_id_is_matched_to_postfix_noqueue_line_by_address_and_port,
    dns_timeout_for_the_sender_domain_is_a_451_4_7_24_at_rcpt,
    accepted_mail_carries_received_spf_and_authentication_results_once_above_postfix_received,
    forged_authentication_results_with_our_authserv_id_are_removed_and_others_kept,
    postfix_answers_451_4_7_1_when_tollgate_dies_mid_session,
    a_milter_listed_after_tollgate_sees_its_headers_as_opendmarc_would,
    dry_run_accepts_an_spf_fail_and_logs_the_reject_it_would_have_sent,
    postfix_answers_451_4_7_1_when_tollgate_hangs_past_milter_command_timeout,
    percent_in_a_domain_explanation_reaches_the_client_as_one_percent_sign,
    forged_received_spf::forged_received_spf_is_never_topmost_in_normal_mode,
    forged_received_spf::forged_received_spf_is_never_topmost_in_dry_run_when_fcrdns_decides,
    forged_received_spf::forged_received_spf_is_never_topmost_for_postmaster_when_fcrdns_refuses,
    forged_received_spf::forged_received_spf_is_never_topmost_with_reject_at_rcpt_for_an_exempt_recipient,
    forged_received_spf::received_spf_fields_are_taken_apart_by_key,
    new_stages::a_client_on_a_block_list_is_refused_at_rcpt_with_5_7_1_and_the_list_reason,
    new_stages::a_client_on_an_allow_list_is_accepted_with_a_dnswl_authentication_result,
    new_stages::a_sender_domain_that_does_not_exist_is_refused_with_5_1_8,
    new_stages::a_sender_domain_whose_mx_hosts_are_private_is_refused_with_5_1_8,
    new_stages::a_sender_domain_with_a_null_mx_is_refused_with_5_7_27,
    new_stages::a_sender_domain_that_times_out_is_a_451_4_4_3,
);
