//! A client-supplied `Received-SPF: pass` is never the topmost one in a
//! delivered message (issue 14, item 2). OpenDMARC, like most consumers,
//! trusts the topmost `Received-SPF`; when an earlier stage decided (dry
//! run, an exempt recipient such as postmaster, `reject_at: rcpt`), the SPF
//! stages never ran, tollgate added no `Received-SPF`, and the forged one
//! in the DATA was the topmost. Every delivered, evaluated message must
//! carry tollgate's own `Received-SPF` for the MAIL FROM identity on top.
//!
//! Each test sends the same forged header (a pass for another client and
//! sender, "received" by the MTA's own name) and checks that the topmost
//! `Received-SPF` is tollgate's: `receiver=` tollgate's hostname, the real
//! client address and envelope sender, `identity=mailfrom`, and the SPF
//! result the sender's record really gives.

use super::e2e::mail::ReceivedSpf;
use super::e2e::{Message, TestResult, message};
use super::world;

/// tollgate's `hostname` in the tests' configuration (tests/e2e/mod.rs):
/// the `receiver=` of its own Received-SPF.
const RECEIVER: &str = "tollgate.example.org";

/// The forged field: a pass, for mail from another address, received by
/// the MTA's own name (mx.example.org), with `identity=mailfrom` as
/// OpenDMARC wants it. The word FORGED in its comment tells it apart.
const FORGED: &str = "Received-SPF: pass (mx.example.org: FORGED domain of bank.example designates \
     203.0.113.5 as permitted sender) client-ip=203.0.113.5; envelope-from=\"ceo@bank.example\"; \
     helo=mail.bank.example; receiver=mx.example.org; identity=mailfrom;\n";

/// Asserts that the topmost `Received-SPF` of `m` is tollgate's own for
/// the MAIL FROM identity: `result`, for `client_ip` and `envelope_from`.
fn assert_topmost_is_tollgates(m: &Message, result: &str, client_ip: &str, envelope_from: &str) {
    // The delivered headers go with any failure (as the harness's notes).
    super::e2e::note(format_args!(
        "delivered headers:\n{}",
        m.headers().join("\n")
    ));
    let all = m.received_spf();
    assert!(
        all.iter().any(|h| h.comment.contains("FORGED")),
        "the forged Received-SPF should have been delivered below tollgate's"
    );
    let top = all.first().expect("a Received-SPF");
    assert!(
        !top.comment.contains("FORGED"),
        "the client's forged Received-SPF is the topmost one (tollgate added none above it)"
    );
    let expected = [
        ("receiver", RECEIVER),
        ("client-ip", client_ip),
        ("envelope-from", envelope_from),
        ("identity", "mailfrom"),
    ];
    for (key, value) in expected {
        assert_eq!(top.get(key), Some(value), "topmost Received-SPF: {key}");
    }
    assert_eq!(top.result, result, "topmost Received-SPF: result");
}

/// Sends one message with the forged header from `client_ip` (XCLIENT,
/// with `helo`) as `sender` to each of `rcpts` (expecting the RCPT reply
/// codes given with them) and returns the delivered copy.
fn send_forged(
    w: &super::World,
    client_ip: &str,
    helo: &str,
    sender: &str,
    rcpts: &[(&str, u16)],
    marker: &str,
) -> Message {
    let mut smtp = w.postfix.connect();
    smtp.ehlo("client.example.com");
    smtp.xclient(client_ip, None, helo);
    assert_eq!(smtp.mail(sender).code, 250, "{}", smtp.show());
    for &(rcpt, code) in rcpts {
        assert_eq!(smtp.rcpt(rcpt).code, code, "RCPT {rcpt}:\n{}", smtp.show());
    }
    let data = smtp.data(&message(marker, FORGED));
    assert_eq!(data.code, 250, "{}", smtp.show());
    smtp.quit();
    let delivered = w.postfix.delivered(marker);
    assert_eq!(delivered.len(), 1, "one delivered copy");
    delivered.into_iter().next().expect("one message")
}

/// (a) Normal mode: every stage passes, spf-mailfrom runs and its pass is
/// on top.
pub fn forged_received_spf_is_never_topmost_in_normal_mode() -> TestResult {
    let w = world("pf-forged-spf-normal", "")?;
    let m = send_forged(
        &w,
        "192.0.2.7",
        "mx.example.com",
        "alice@example.com",
        &[("bob@example.org", 250)],
        "forged-spf-normal",
    );
    assert_topmost_is_tollgates(&m, "pass", "192.0.2.7", "alice@example.com");
    Ok(())
}

/// (b) Dry run, fcrdns decides at HELO (192.0.2.66's PTR names a host that
/// does not resolve back to it): the message is delivered, and the real SPF
/// result (example.com allows only 192.0.2.7: fail) is on top.
pub fn forged_received_spf_is_never_topmost_in_dry_run_when_fcrdns_decides() -> TestResult {
    let w = world("pf-forged-spf-dry-run", "dry_run: true\n")?;
    let m = send_forged(
        &w,
        "192.0.2.66",
        "mx.example.com",
        "forger@example.com",
        &[("bob@example.org", 250)],
        "forged-spf-dry-run",
    );
    assert_topmost_is_tollgates(&m, "fail", "192.0.2.66", "forger@example.com");
    Ok(())
}

/// (c) fcrdns refuses the client: bob is refused at RCPT, postmaster (an
/// exempt recipient) still gets the message, with the real SPF fail on top.
pub fn forged_received_spf_is_never_topmost_for_postmaster_when_fcrdns_refuses() -> TestResult {
    let w = world("pf-forged-spf-postmaster", "")?;
    let m = send_forged(
        &w,
        "192.0.2.66",
        "mx.example.com",
        "forger@example.com",
        &[("bob@example.org", 550), ("postmaster@example.org", 250)],
        "forged-spf-postmaster",
    );
    assert_topmost_is_tollgates(&m, "fail", "192.0.2.66", "forger@example.com");
    Ok(())
}

/// (d) `reject_at: rcpt` with helo-syntax deciding at HELO (the client
/// claims to be this host): abuse (an exempt recipient) gets the message,
/// with the sender's real SPF result (pass for 192.0.2.7) on top.
pub fn forged_received_spf_is_never_topmost_with_reject_at_rcpt_for_an_exempt_recipient()
-> TestResult {
    let w = world("pf-forged-spf-reject-at-rcpt", "reject_at: rcpt\n")?;
    let m = send_forged(
        &w,
        "192.0.2.7",
        RECEIVER,
        "alice@example.com",
        &[("bob@example.org", 550), ("abuse@example.org", 250)],
        "forged-spf-reject-at-rcpt",
    );
    assert_topmost_is_tollgates(&m, "pass", "192.0.2.7", "alice@example.com");
    Ok(())
}

/// The parser these tests rely on reads tollgate's field and the forged
/// one as they are written (runs without an MTA).
pub fn received_spf_fields_are_taken_apart_by_key() -> TestResult {
    let ours = ReceivedSpf::parse(
        "Received-SPF: Fail (tollgate.example.org: domain of example.com does not designate \
         192.0.2.66 as permitted sender (see \\(x\\))) client-ip=192.0.2.66; \
         envelope-from=\"forger@example.com\"; helo=mx.example.com; \
         receiver=tollgate.example.org; identity=mailfrom; mechanism=\"-all\";",
    )
    .expect("parses");
    assert_eq!(ours.result, "fail");
    assert!(ours.comment.ends_with("(see \\(x\\))"), "{}", ours.comment);
    assert_eq!(ours.get("client-ip"), Some("192.0.2.66"));
    assert_eq!(ours.get("envelope-from"), Some("forger@example.com"));
    assert_eq!(ours.get("receiver"), Some(RECEIVER));
    assert_eq!(ours.get("identity"), Some("mailfrom"));
    assert_eq!(ours.get("mechanism"), Some("-all"));
    let forged = ReceivedSpf::parse(FORGED.trim_end()).expect("parses");
    assert!(forged.comment.contains("FORGED"));
    assert_eq!(forged.get("client-ip"), Some("203.0.113.5"));
    assert_eq!(forged.get("receiver"), Some("mx.example.org"));
    assert_eq!(ReceivedSpf::parse("Received: from x"), None);
    Ok(())
}
