//! End to end with a real Sendmail (Debian's packages, unpacked by
//! tests/e2e/install-sendmail.sh because they conflict with postfix): each
//! test starts its own Sendmail daemon on a free 127.0.0.1 port from a .mc
//! that includes the milter lines of docs/sendmail.md, `tollgate serve` as
//! its milter, and testdns as the only DNS.
//!
//! Sendmail has no XCLIENT, so the client really is 127.0.0.1: tollgate is
//! configured not to trust loopback (`skip: {networks: []}`), and the test
//! zone gives 127.0.0.1 a PTR (mail.example.net) and SPF records that do
//! or do not cover it.
//!
//! Without Sendmail unpacked (or without root) the tests are reported ignored,
//! with the reason, unless `CI` or `TOLLGATE_E2E_REQUIRED=1` is set: then
//! they fail. The harness is tests/e2e/harness.rs (`harness = false`): a
//! test is listed in the `main!` at the end of this file.

mod e2e;

use e2e::sendmail::{self, Sendmail};
use e2e::{Dns, Missing, TempDir, TestResult, Tollgate, message};

/// The DNS world: 127.0.0.1 sends as HELO mail.example.net (which resolves
/// to it, and whose SPF allows it); example.com's SPF allows 127.0.0.1,
/// fail.example.com's does not; slow.example.com never answers. There is no
/// PTR record here: the resolver answers the reverse name of 127.0.0.1
/// itself (`localhost`, RFC 6761), so FCrDNS passes as localhost.
const ZONE: &str = r#"
mail.example.net:
  - A: 127.0.0.1
  - TXT: "v=spf1 a -all"
example.com:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:127.0.0.1 -all"
fail.example.com:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:192.0.2.0/24 -all"
slow.example.com:
  - MX: [10, mx.example.com]
  - TIMEOUT
percent.example.com:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:192.0.2.0/24 -all exp=why.percent.example.com"
why.percent.example.com:
  - TXT: "only 100%% of our mail comes from %{d}'s servers"
mx.example.com:
  - A: 192.0.2.7
"#;

/// tollgate's authserv-id defaults to the MTA's `j` macro: Sendmail's $j.
const AUTHSERV_ID: &str = sendmail::HOSTNAME;

/// One test's processes, dropped in field order (Sendmail first).
struct World {
    sendmail: Sendmail,
    tollgate: Tollgate,
    _dns: Dns,
    _dir: TempDir,
}

fn world(label: &str) -> Result<World, Missing> {
    let install = sendmail::require()?;
    e2e::require_tollgate_serve()?;
    let dir = TempDir::new(label);
    let dns = Dns::start(ZONE);
    // Loopback is trusted by default; here the client is loopback.
    let tollgate = Tollgate::start(
        dir.path(),
        &e2e::tollgate_config(&dns, "skip:\n  networks: []\n"),
    );
    let socket = format!("inet:{}@127.0.0.1", tollgate.addr.port());
    let sendmail = Sendmail::start(&install, dir.path(), &sendmail::documented_snippet(&socket));
    Ok(World {
        sendmail,
        tollgate,
        _dns: dns,
        _dir: dir,
    })
}

fn sendmail_sends_the_macros_tollgate_reads_with_the_documented_mc() -> TestResult {
    let install = sendmail::require()?;
    let dir = TempDir::new("sm-macros");
    let recorder = e2e::milter::Recorder::start();
    let socket = format!("inet:{}@127.0.0.1", recorder.addr.port());
    let sm = Sendmail::start(&install, dir.path(), &sendmail::documented_snippet(&socket));

    let mut smtp = sm.connect();
    smtp.ehlo("mail.example.net");
    assert_eq!(smtp.mail("alice@example.com").code, 250, "{}", smtp.show());
    assert_eq!(smtp.rcpt("bob@example.org").code, 250, "{}", smtp.show());
    assert_eq!(
        smtp.data(&message("sm-macros-1", "")).code,
        250,
        "{}",
        smtp.show()
    );
    smtp.quit();
    sm.delivered("sm-macros-1");

    let events = recorder.events();
    let dump = events
        .iter()
        .map(|e| format!("{} {} {:?} {:?}", e.connection, e.command, e.args, e.macros))
        .collect::<Vec<_>>()
        .join("\n");
    e2e::note(format_args!("milter events:\n{dump}"));
    let connect = events
        .iter()
        .rfind(|e| e.command == 'C')
        .unwrap_or_else(|| panic!("no connect event:\n{dump}"));
    assert!(connect.args.iter().any(|a| a == "127.0.0.1"), "{dump}");
    assert_eq!(
        connect.macros.get("j").map(String::as_str),
        Some(sendmail::HOSTNAME),
        "{dump}"
    );
    assert_eq!(
        connect.macros.get("{client_addr}").map(String::as_str),
        Some("127.0.0.1"),
        "{dump}"
    );
    assert!(connect.macros.contains_key("{client_name}"), "{dump}");
    assert!(connect.macros.contains_key("{daemon_name}"), "{dump}");
    let mail = events
        .iter()
        .rfind(|e| e.command == 'M')
        .unwrap_or_else(|| panic!("no MAIL event:\n{dump}"));
    assert!(
        mail.macros.get("i").is_some_and(|i| !i.is_empty()),
        "{dump}"
    );
    Ok(())
}

fn spf_fail_is_rejected_at_rcpt_with_5_7_23_while_postmaster_is_still_accepted() -> TestResult {
    let w = world("sm-spf-fail")?;
    let mut smtp = w.sendmail.connect();
    smtp.ehlo("mail.example.net");
    assert_eq!(
        smtp.mail("forger@fail.example.com").code,
        250,
        "{}",
        smtp.show()
    );
    let rcpt = smtp.rcpt("bob@example.org");
    // Sendmail puts the recipient after the enhanced status code of a 5xx
    // reply from the milter (not of a 4xx one, see the timeout test).
    assert_eq!(
        rcpt.first(),
        r#"550 5.7.23 <bob@example.org>... SPF fail: 127.0.0.1 is not allowed to send mail as fail.example.com (matched "-all")"#,
        "{}",
        smtp.show()
    );
    let postmaster = smtp.rcpt("postmaster@example.org");
    assert_eq!(postmaster.code, 250, "{}", smtp.show());
    assert_eq!(
        smtp.data(&message("sm-spf-fail", "")).code,
        250,
        "{}",
        smtp.show()
    );
    smtp.quit();

    let delivered = w.sendmail.delivered("sm-spf-fail");
    assert_eq!(delivered.len(), 1, "one copy, for postmaster only");
    let spf = delivered[0].fields("Received-SPF");
    assert_eq!(spf.len(), 1, "{:?}", delivered[0].headers());
    assert!(spf[0].starts_with("Received-SPF: fail"), "{}", spf[0]);
    Ok(())
}

fn dns_timeout_for_the_sender_domain_is_a_451_4_7_24_at_rcpt() -> TestResult {
    let w = world("sm-timeout")?;
    let mut smtp = w.sendmail.connect();
    smtp.ehlo("mail.example.net");
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
    smtp.quit();
    Ok(())
}

fn accepted_mail_carries_received_spf_and_authentication_results_once_above_sendmail_received()
-> TestResult {
    let w = world("sm-accept")?;
    let mut smtp = w.sendmail.connect();
    smtp.ehlo("mail.example.net");
    assert_eq!(smtp.mail("alice@example.com").code, 250, "{}", smtp.show());
    assert_eq!(smtp.rcpt("bob@example.org").code, 250, "{}", smtp.show());
    assert_eq!(
        smtp.data(&message("sm-accepted", "")).code,
        250,
        "{}",
        smtp.show()
    );
    smtp.quit();

    let delivered = w.sendmail.delivered("sm-accepted");
    assert_eq!(delivered.len(), 1);
    let m = &delivered[0];
    let names = m.header_names();
    e2e::note(format_args!(
        "delivered headers:\n{}",
        m.headers().join("\n")
    ));
    let spf = m.fields("Received-SPF");
    assert_eq!(spf.len(), 1, "{names:?}");
    assert!(spf[0].starts_with("Received-SPF: pass"), "{}", spf[0]);
    assert!(spf[0].contains("client-ip=127.0.0.1;"), "{}", spf[0]);
    assert!(spf[0].contains("helo=mail.example.net;"), "{}", spf[0]);
    let ar = m.fields("Authentication-Results");
    assert_eq!(ar.len(), 1, "{names:?}");
    assert!(
        ar[0].starts_with(&format!("Authentication-Results: {AUTHSERV_ID};")),
        "authserv-id is Sendmail's $j: {}",
        ar[0]
    );
    for part in [
        "spf=pass smtp.mailfrom=example.com",
        "spf=pass smtp.helo=mail.example.net",
        "iprev=pass policy.iprev=127.0.0.1",
    ] {
        assert!(ar[0].contains(part), "{part} missing in {}", ar[0]);
    }
    assert_eq!(
        names[..4],
        [
            "Return-Path",
            "Authentication-Results",
            "Received-SPF",
            "Received"
        ],
        "{names:?}"
    );
    Ok(())
}

fn forged_authentication_results_with_our_authserv_id_are_removed_and_others_kept() -> TestResult {
    let w = world("sm-forged-ar")?;
    let forged = format!(
        "Authentication-Results: {AUTHSERV_ID}; spf=pass smtp.mailfrom=forged.example\n\
         Authentication-Results: other.example.net; spf=pass smtp.mailfrom=upstream.example\n"
    );
    let mut smtp = w.sendmail.connect();
    smtp.ehlo("mail.example.net");
    assert_eq!(smtp.mail("alice@example.com").code, 250, "{}", smtp.show());
    assert_eq!(smtp.rcpt("bob@example.org").code, 250, "{}", smtp.show());
    assert_eq!(
        smtp.data(&message("sm-forged-ar", &forged)).code,
        250,
        "{}",
        smtp.show()
    );
    smtp.quit();

    let m = &w.sendmail.delivered("sm-forged-ar")[0];
    let ar = m.fields("Authentication-Results");
    assert!(!m.raw.contains("forged.example"), "{ar:#?}");
    assert_eq!(ar.len(), 2, "{ar:#?}");
    assert!(
        ar[0].contains(&format!(
            " {AUTHSERV_ID}; spf=pass smtp.mailfrom=example.com"
        )),
        "{ar:#?}"
    );
    assert!(ar[1].contains("other.example.net;"), "{ar:#?}");
    Ok(())
}

fn sendmail_answers_451_4_3_2_when_tollgate_dies_mid_session() -> TestResult {
    let mut w = world("sm-killed")?;
    let mut smtp = w.sendmail.connect();
    smtp.ehlo("mail.example.net");
    w.tollgate.kill();
    let mail = smtp.mail("alice@example.com");
    e2e::note(format_args!("{}", smtp.show()));
    // F=T: the filter is unavailable, so Sendmail tempfails.
    assert_eq!(
        mail.first(),
        "451 4.3.2 Please try again later",
        "{}",
        smtp.show()
    );
    smtp.quit();
    Ok(())
}

fn a_milter_listed_after_tollgate_sees_its_headers_as_opendmarc_would() -> TestResult {
    let install = sendmail::require()?;
    e2e::require_tollgate_serve()?;
    let dir = TempDir::new("sm-order");
    let dns = Dns::start(ZONE);
    let tollgate = Tollgate::start(
        dir.path(),
        &e2e::tollgate_config(&dns, "skip:\n  networks: []\n"),
    );
    let recorder = e2e::milter::Recorder::start();
    let mut mc = sendmail::documented_snippet(&format!("inet:{}@127.0.0.1", tollgate.addr.port()));
    mc.push_str(&format!(
        "INPUT_MAIL_FILTER(`recorder', `S=inet:{}@127.0.0.1, F=T, T=S:30s;R:30s;E:1m')dnl\n",
        recorder.addr.port()
    ));
    let sm = Sendmail::start(&install, dir.path(), &mc);

    let mut smtp = sm.connect();
    smtp.ehlo("mail.example.net");
    assert_eq!(smtp.mail("alice@example.com").code, 250, "{}", smtp.show());
    assert_eq!(smtp.rcpt("bob@example.org").code, 250, "{}", smtp.show());
    assert_eq!(
        smtp.data(&message("sm-order-1", "")).code,
        250,
        "{}",
        smtp.show()
    );
    smtp.quit();
    let delivered = sm.delivered("sm-order-1");
    assert_eq!(delivered[0].fields("Authentication-Results").len(), 1);

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
    // Sendmail hands the message to the filters one after the other, each
    // with the changes of the ones before: a filter listed after tollgate
    // (OpenDMARC) sees its Authentication-Results and Received-SPF.
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

fn sendmail_tempfails_with_4_3_2_when_no_milter_listens_and_f_t_is_set() -> TestResult {
    let install = sendmail::require()?;
    let dir = TempDir::new("sm-nomilter");
    let dead = format!("inet:{}@127.0.0.1", e2e::free_port());
    let sm = Sendmail::start(&install, dir.path(), &sendmail::documented_snippet(&dead));
    let mut smtp = sm.connect();
    smtp.ehlo("mail.example.net");
    let mail = smtp.mail("alice@example.com");
    assert_eq!(
        mail.first(),
        "451 4.3.2 Please try again later",
        "{}",
        smtp.show()
    );
    smtp.quit();
    Ok(())
}

fn percent_in_a_domain_explanation_reaches_the_client_as_one_percent_sign() -> TestResult {
    let w = world("sm-percent")?;
    let mut smtp = w.sendmail.connect();
    smtp.ehlo("mail.example.net");
    smtp.mail("forger@percent.example.com");
    let rcpt = smtp.rcpt("bob@example.org");
    assert_eq!(
        rcpt.first(),
        r#"550 5.7.23 <bob@example.org>... SPF fail: 127.0.0.1 is not allowed to send mail as percent.example.com (matched "-all"); percent.example.com says: "only 100% of our mail comes from percent.example.com's servers""#,
        "{}",
        smtp.show()
    );
    smtp.quit();
    Ok(())
}

e2e::harness::main!(
    sendmail_sends_the_macros_tollgate_reads_with_the_documented_mc,
    spf_fail_is_rejected_at_rcpt_with_5_7_23_while_postmaster_is_still_accepted,
    dns_timeout_for_the_sender_domain_is_a_451_4_7_24_at_rcpt,
    accepted_mail_carries_received_spf_and_authentication_results_once_above_sendmail_received,
    forged_authentication_results_with_our_authserv_id_are_removed_and_others_kept,
    sendmail_answers_451_4_3_2_when_tollgate_dies_mid_session,
    a_milter_listed_after_tollgate_sees_its_headers_as_opendmarc_would,
    sendmail_tempfails_with_4_3_2_when_no_milter_listens_and_f_t_is_set,
    percent_in_a_domain_explanation_reaches_the_client_as_one_percent_sign,
);
