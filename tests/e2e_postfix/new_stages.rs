//! The replies of the DNS list and sender-domain stages (issue 13), as a
//! real Postfix gives them to the client: one case per new reply, and the
//! RFC 8904 `dnswl` result of an allow-list hit in the delivered headers.
//! The zone data is in the parent's `ZONE`.

use super::e2e::{TestResult, message};
use super::{AUTHSERV_ID, world};

/// One block list and one allow list, served by the tests' testdns.
const LISTS: &str = "dnsbl:\n  lists:\n    - zone: bl.example.net\n      type: block\n    \
                     - zone: wl.example.net\n      type: allow\n";

pub fn a_client_on_a_block_list_is_refused_at_rcpt_with_5_7_1_and_the_list_reason() -> TestResult {
    let w = world("pf-dnsbl-listed", LISTS)?;
    let mut smtp = w.postfix.connect();
    smtp.ehlo("client.example.com");
    smtp.xclient(
        "192.0.2.50",
        Some("mail50.example.net"),
        "mail50.example.net",
    );
    // The client is known to be listed from CONNECT on; the reply waits for
    // RCPT, as for every refusal under the default `reject_at`.
    assert_eq!(
        smtp.mail("someone@example.com").code,
        250,
        "{}",
        smtp.show()
    );
    let rcpt = smtp.rcpt("bob@example.org");
    assert_eq!(
        rcpt.first(),
        "550 5.7.1 192.0.2.50 is listed by bl.example.net (127.0.0.2): \
         \"192.0.2.50 sent spam to our traps, see https://bl.example.net/q?192.0.2.50\"",
        "{}",
        smtp.show()
    );
    smtp.quit();
    w.postfix
        .log_line("milter-reject: RCPT from mail50.example.net[192.0.2.50]: 550 5.7.1");
    Ok(())
}

pub fn a_client_on_an_allow_list_is_accepted_with_a_dnswl_authentication_result() -> TestResult {
    let w = world("pf-dnsbl-allowed", LISTS)?;
    let mut smtp = w.postfix.connect();
    smtp.ehlo("client.example.com");
    smtp.xclient(
        "192.0.2.60",
        Some("mail60.example.net"),
        "mail60.example.net",
    );
    // example.com's SPF does not allow 192.0.2.60 (`-all`): only the allow
    // list lets this message through.
    assert_eq!(
        smtp.mail("someone@example.com").code,
        250,
        "{}",
        smtp.show()
    );
    assert_eq!(smtp.rcpt("bob@example.org").code, 250, "{}", smtp.show());
    let data = smtp.data(&message("dnswl-allowed", ""));
    assert_eq!(data.code, 250, "{}", smtp.show());
    smtp.quit();

    let delivered = w.postfix.delivered("dnswl-allowed");
    assert_eq!(delivered.len(), 1);
    let ar = delivered[0].fields("Authentication-Results");
    assert_eq!(ar.len(), 1, "{:?}", delivered[0].headers());
    assert!(
        ar[0].starts_with(&format!("Authentication-Results: {AUTHSERV_ID};")),
        "{}",
        ar[0]
    );
    assert!(
        ar[0].contains("dnswl=pass dns.zone=wl.example.net policy.ip=127.0.10.2"),
        "{}",
        ar[0]
    );
    // Allowed clients are exempt from the SPF stages: no SPF fail recorded.
    assert!(!ar[0].contains("spf=fail"), "{}", ar[0]);
    Ok(())
}

/// Sends MAIL FROM `sender` from the well-configured client 192.0.2.7 and
/// returns the RCPT reply's first line.
fn rcpt_reply_for_sender(label: &str, sender: &str) -> Result<String, super::e2e::Missing> {
    let w = world(label, "")?;
    let mut smtp = w.postfix.connect();
    smtp.ehlo("client.example.com");
    smtp.xclient("192.0.2.7", Some("mx.example.com"), "mx.example.com");
    assert_eq!(smtp.mail(sender).code, 250, "{}", smtp.show());
    let rcpt = smtp.rcpt("bob@example.org").first();
    smtp.quit();
    Ok(rcpt)
}

pub fn a_sender_domain_that_does_not_exist_is_refused_with_5_1_8() -> TestResult {
    let reply = rcpt_reply_for_sender("pf-sd-gone", "someone@gone.example.com")?;
    assert_eq!(reply, "550 5.1.8 gone.example.com does not exist");
    Ok(())
}

pub fn a_sender_domain_whose_mx_hosts_are_private_is_refused_with_5_1_8() -> TestResult {
    let reply = rcpt_reply_for_sender("pf-sd-private", "someone@private.example.com")?;
    assert!(reply.starts_with("550 5.1.8 "), "{reply}");
    assert!(
        reply.contains("no MX host of private.example.com has an address routable on the internet: mx.private.example.com at 10.0.0.25"),
        "{reply}"
    );
    Ok(())
}

pub fn a_sender_domain_with_a_null_mx_is_refused_with_5_7_27() -> TestResult {
    let reply = rcpt_reply_for_sender("pf-sd-nullmx", "someone@nullmx.example.com")?;
    assert_eq!(
        reply,
        "550 5.7.27 nullmx.example.com publishes a null MX: it accepts no mail (RFC 7505)"
    );
    Ok(())
}

pub fn a_sender_domain_that_times_out_is_a_451_4_4_3() -> TestResult {
    let reply = rcpt_reply_for_sender("pf-sd-timeout", "someone@mxslow.example.com")?;
    assert!(reply.starts_with("451 4.4.3 "), "{reply}");
    assert!(reply.contains("mxslow.example.com"), "{reply}");
    assert!(reply.ends_with("try again later"), "{reply}");
    Ok(())
}
