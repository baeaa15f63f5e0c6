//! Trace headers: `Received-SPF` (RFC 7208 §9.1) and
//! `Authentication-Results` (RFC 8601).
//!
//! Values are returned unfolded, on one line; the milter folds them.
//! Every identity is labelled (`identity=`, `smtp.mailfrom` / `smtp.helo`)
//! so that a HELO result is never read as the MAIL FROM one.

use std::borrow::Cow;
use std::fmt::Write as _;

use tollgate_spf::{SpfOutput, SpfResult};

use crate::{Outcome, SkipReason, Stage, StageReport};

/// The value of a `Received-SPF` header for one SPF evaluation.
///
/// `envelope_from` is the MAIL FROM address as given (empty for the null
/// sender, in which case the key is left out); `receiver` names this host.
pub fn received_spf(out: &SpfOutput, envelope_from: &str, receiver: &str) -> String {
    let sender = bounded(&out.sender, 128);
    let who = format!("domain of {sender}");
    let ip = out.ip;
    let comment = match out.result {
        SpfResult::Pass => format!("{who} designates {ip} as permitted sender"),
        SpfResult::Fail => format!("{who} does not designate {ip} as permitted sender"),
        SpfResult::SoftFail => {
            format!("{who} discourages use of {ip} as permitted sender")
        }
        SpfResult::Neutral => format!("{ip} is neither permitted nor denied by {who}"),
        SpfResult::None => format!("{who} does not provide an SPF record"),
        SpfResult::PermError => format!("error in processing during lookup of {sender}"),
        SpfResult::TempError => {
            format!("temporary error in processing during lookup of {sender}")
        }
    };
    let receiver = bounded(receiver, 255);
    let mut value = format!(
        "{} ({}: {}) client-ip={ip};",
        out.result,
        comment_text(&receiver),
        comment_text(&comment)
    );
    let bare_from = crate::strip_brackets(envelope_from);
    // RFC 5321 §4.5.3.1.3: a path has at most 256 octets; a longer one is
    // not shown rather than shown wrong.
    // Writing to a String cannot fail.
    if !bare_from.is_empty() && bare_from.len() <= 256 {
        let _ = write!(value, " envelope-from={};", quoted(bare_from));
    }
    if !out.helo.is_empty() {
        let _ = write!(value, " helo={};", atom_or_quoted(&bounded(&out.helo, 255)));
    }
    let _ = write!(
        value,
        " receiver={}; identity={};",
        atom_or_quoted(&receiver),
        out.identity
    );
    if let Some(mechanism) = &out.mechanism {
        let _ = write!(value, " mechanism={};", quoted(&bounded(mechanism, 200)));
    }
    if let Some(problem) = &out.problem
        && matches!(out.result, SpfResult::PermError | SpfResult::TempError)
    {
        let _ = write!(value, " problem={};", quoted(&bounded(problem, 300)));
    }
    value
}

/// The value of an `Authentication-Results` header for the stages that
/// ran. `skipped` is the reason the message was not checked, if it was not.
pub fn authentication_results<'a>(
    authserv_id: &str,
    reports: impl IntoIterator<Item = &'a StageReport>,
    skipped: Option<&SkipReason>,
) -> String {
    let mut parts = Vec::new();
    // The MAIL FROM result first: it is the one DMARC reads.
    let order = [Stage::SpfMailfrom, Stage::SpfHelo, Stage::Fcrdns];
    let mut ordered: Vec<&StageReport> = reports.into_iter().collect();
    let allow_hits: Vec<String> = ordered
        .iter()
        .filter(|r| r.stage == Stage::Dnsbl)
        .flat_map(|r| &r.lists)
        .filter(|hit| hit.kind == crate::ListKind::Allow)
        .map(|hit| {
            let mut part = format!(
                "dnswl=pass dns.zone={} policy.ip={}",
                pvalue(&bounded(&hit.zone, 255)),
                hit.code
            );
            if let Some(txt) = &hit.reason {
                let _ = write!(part, " policy.txt={}", quoted(&bounded(txt, 200)));
            }
            part
        })
        .collect();
    ordered.sort_by_key(|r| order.iter().position(|s| *s == r.stage));
    for report in ordered {
        match report.stage {
            Stage::SpfMailfrom => {
                if let Some(out) = &report.spf {
                    parts.push(format!(
                        "spf={} smtp.mailfrom={}",
                        out.result,
                        pvalue(&bounded(&out.checked_domain, 255))
                    ));
                }
            }
            Stage::SpfHelo => {
                if let Some(out) = &report.spf {
                    parts.push(format!(
                        "spf={} smtp.helo={}",
                        out.result,
                        pvalue(&bounded(&out.checked_domain, 255))
                    ));
                }
            }
            Stage::Fcrdns => {
                let result = match report.outcome {
                    Outcome::Pass => "pass",
                    Outcome::Fail => "fail",
                    Outcome::PermError => "permerror",
                    _ => "temperror",
                };
                let mut part = format!("iprev={result}");
                if let Some(info) = &report.fcrdns {
                    // An IPv4 address is a token; IPv6 (with `:`) is quoted.
                    if info.ip.is_ipv4() {
                        let _ = write!(part, " policy.iprev={}", info.ip);
                    } else {
                        let _ = write!(part, " policy.iprev={}", pvalue(&info.ip.to_string()));
                    }
                }
                if let Some(name) = report.fcrdns.as_ref().and_then(|i| i.confirmed.as_ref()) {
                    let _ = write!(part, " ({})", comment_text(&bounded(name, 255)));
                }
                parts.push(part);
            }
            _ => {}
        }
    }
    let id = atom_or_quoted(authserv_id);
    match skipped {
        // RFC 8904: a DNS allow list's answer, reported as such.
        Some(SkipReason::AllowListed { .. }) if !allow_hits.is_empty() => {
            format!("{id}; {}", allow_hits.join("; "))
        }
        // RFC 8601 §2.7.4: the SMTP AUTH identity.
        Some(SkipReason::Authenticated(user)) => {
            format!("{id}; auth=pass smtp.auth={}", pvalue(&bounded(user, 128)))
        }
        Some(other) => format!(
            "{id}; none ({})",
            comment_text(&bounded(&other.to_string(), 300))
        ),
        None if parts.is_empty() => format!("{id}; none"),
        None => format!("{id}; {}", parts.join("; ")),
    }
}

/// `value` cut to at most `max` characters, with "..." marking the cut, so
/// that no header line grows past RFC 5322's 998 characters whatever the
/// client sent.
fn bounded(value: &str, max: usize) -> Cow<'_, str> {
    if value.len() <= max || value.chars().count() <= max {
        return Cow::Borrowed(value);
    }
    let mut out: String = value.chars().take(max.saturating_sub(3)).collect();
    out.push_str("...");
    Cow::Owned(out)
}

/// RFC 2045 `token` characters: printable ASCII except tspecials.
fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// An RFC 8601 pvalue: a token, `local@domain`, or a quoted string.
fn pvalue(value: &str) -> Cow<'_, str> {
    if is_token(value) {
        return Cow::Borrowed(value);
    }
    if let Some((local, domain)) = value.rsplit_once('@')
        && is_token(domain)
        && (local.is_empty() || is_dot_atom(local))
    {
        return Cow::Borrowed(value);
    }
    Cow::Owned(quoted(value))
}

/// RFC 5322 dot-atom text.
fn is_dot_atom(value: &str) -> bool {
    !value.is_empty()
        && value.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
        })
}

fn atom_or_quoted(value: &str) -> Cow<'_, str> {
    if is_dot_atom(value) {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(quoted(value))
    }
}

/// An RFC 5322 quoted-string; non-printable characters become `?`.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

/// Text safe inside an RFC 5322 comment.
fn comment_text(value: &str) -> Cow<'_, str> {
    if value
        .bytes()
        .all(|b| matches!(b, b' '..=b'~') && !matches!(b, b'(' | b')' | b'\\'))
    {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    Cow::Owned(out)
}

/// The headers tollgate adds to a message, in the order they are to be
/// inserted at the top: `Authentication-Results` above `Received-SPF`.
///
/// They describe what the milter evaluated: the stages up to the one that
/// decided (a message delivered anyway, to an exempt recipient or in dry
/// run, was not evaluated further) and spf-mailfrom, which every delivered
/// evaluated message gets, so that tollgate's `Received-SPF` for the MAIL
/// FROM identity is the topmost one (OpenDMARC trusts the topmost). It
/// falls back to the HELO identity when MAIL FROM was not checked. A
/// skipped message gets no `Received-SPF`: it was not evaluated, and its
/// `Authentication-Results` says why.
pub fn message_headers(
    eval: &crate::Evaluation,
    envelope_from: &str,
    authserv_id: &str,
    receiver: &str,
    with_received_spf: bool,
    with_authentication_results: bool,
) -> Vec<(&'static str, String)> {
    let decided = eval
        .stages
        .iter()
        .position(StageReport::is_decisive)
        .unwrap_or(eval.stages.len());
    let evaluated: Vec<&StageReport> = eval
        .stages
        .iter()
        .enumerate()
        .filter(|(i, r)| *i <= decided || r.stage == Stage::SpfMailfrom)
        .map(|(_, r)| r)
        .collect();
    let skipped = eval.skipped();
    let mut headers = Vec::new();
    if with_authentication_results {
        headers.push((
            "Authentication-Results",
            authentication_results(authserv_id, evaluated.iter().copied(), skipped),
        ));
    }
    if with_received_spf && skipped.is_none() {
        let report = |stage| evaluated.iter().find(|r| r.stage == stage);
        let spf = report(Stage::SpfMailfrom)
            .or_else(|| report(Stage::SpfHelo))
            .and_then(|r| r.spf.as_ref());
        if let Some(out) = spf {
            headers.push(("Received-SPF", received_spf(out, envelope_from, receiver)));
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_spf::{Explanation, Identity, SpfOutput, SpfResult};

    fn output(result: SpfResult, identity: Identity) -> SpfOutput {
        SpfOutput {
            identity,
            ip: "192.0.2.7".parse().unwrap(),
            helo: "mx.example.com".to_owned(),
            sender: "alice@example.com".to_owned(),
            checked_domain: "example.com".to_owned(),
            result,
            domain: "example.com".to_owned(),
            mechanism: Some("ip4:192.0.2.0/24".to_owned()),
            explanation: None::<Explanation>,
            problem: None,
            lookups: 0,
            void_lookups: 0,
            queries: 1,
            trace: Vec::new(),
        }
    }

    #[test]
    fn received_spf_has_every_field_of_rfc7208_9_1() {
        let v = received_spf(
            &output(SpfResult::Pass, Identity::MailFrom),
            "<alice@example.com>",
            "mx.example.org",
        );
        assert_eq!(
            v,
            "pass (mx.example.org: domain of alice@example.com designates 192.0.2.7 as permitted sender) \
             client-ip=192.0.2.7; envelope-from=\"alice@example.com\"; helo=mx.example.com; \
             receiver=mx.example.org; identity=mailfrom; mechanism=\"ip4:192.0.2.0/24\";"
        );
    }

    #[test]
    fn received_spf_for_the_null_sender_names_the_helo_identity() {
        let mut out = output(SpfResult::Fail, Identity::Helo);
        out.sender = "postmaster@mx.example.com".to_owned();
        let v = received_spf(&out, "", "mx.example.org");
        assert!(v.starts_with(
            "fail (mx.example.org: domain of postmaster@mx.example.com does not designate"
        ));
        assert!(!v.contains("envelope-from"), "{v}");
        assert!(v.contains("identity=helo;"), "{v}");
    }

    #[test]
    fn hostile_values_are_quoted_and_comments_escaped() {
        let mut out = output(SpfResult::PermError, Identity::MailFrom);
        out.helo = "evil\"host (x)".to_owned();
        out.sender = "a(b)@example.com".to_owned();
        out.problem = Some("bad \"record\"\r\n".to_owned());
        let v = received_spf(&out, "a(b)@example.com", "mx.example.org");
        assert!(v.contains("lookup of a\\(b\\)@example.com)"), "{v}");
        assert!(v.contains("helo=\"evil\\\"host (x)\";"), "{v}");
        assert!(v.contains("problem=\"bad \\\"record\\\"??\";"), "{v}");
        assert!(!v.contains('\r') && !v.contains('\n'));
    }

    #[test]
    fn authentication_results_labels_each_identity() {
        let mut helo = output(SpfResult::SoftFail, Identity::Helo);
        helo.checked_domain = "mx.example.com".to_owned();
        let report = |stage, spf| StageReport {
            stage,
            outcome: Outcome::Pass,
            detail: String::new(),
            action: crate::Action::Tag,
            reply: None,
            spf: Some(spf),
            fcrdns: None,
            dns_queries: 0,
            skip: None,
            lists: Vec::new(),
            notes: Vec::new(),
        };
        let reports = [
            report(Stage::SpfHelo, helo),
            report(
                Stage::SpfMailfrom,
                output(SpfResult::Pass, Identity::MailFrom),
            ),
        ];
        assert_eq!(
            authentication_results("mx.example.org", &reports, None),
            "mx.example.org; spf=pass smtp.mailfrom=example.com; spf=softfail smtp.helo=mx.example.com"
        );
        assert_eq!(
            authentication_results(
                "mx.example.org",
                &reports,
                Some(&SkipReason::Authenticated("alice".to_owned()))
            ),
            "mx.example.org; auth=pass smtp.auth=alice"
        );
        assert_eq!(
            authentication_results("mx.example.org", &[], Some(&SkipReason::NoClientAddress)),
            "mx.example.org; none (local client without an IP address)"
        );
    }

    #[test]
    fn iprev_gives_ipv4_bare_and_ipv6_quoted_with_the_name_as_a_comment() {
        let report = |ip: &str, name: &str| StageReport {
            stage: Stage::Fcrdns,
            outcome: Outcome::Pass,
            detail: String::new(),
            action: crate::Action::Tag,
            reply: None,
            spf: None,
            fcrdns: Some(crate::FcrdnsInfo {
                ip: ip.parse().unwrap(),
                ptr_names: vec![name.to_owned()],
                confirmed: Some(name.to_owned()),
                generic: None,
            }),
            dns_queries: 0,
            skip: None,
            lists: Vec::new(),
            notes: Vec::new(),
        };
        assert_eq!(
            authentication_results(
                "mx.example.org",
                &[report("192.0.2.7", "mx.example.com")],
                None
            ),
            "mx.example.org; iprev=pass policy.iprev=192.0.2.7 (mx.example.com)"
        );
        assert_eq!(
            authentication_results(
                "mx.example.org",
                &[report("2001:db8::7", "odd(name).example.com")],
                None
            ),
            "mx.example.org; iprev=pass policy.iprev=\"2001:db8::7\" (odd\\(name\\).example.com)"
        );
    }
}
