//! SMTP replies: a basic code, an enhanced status code (RFC 3463,
//! RFC 7372) and a text that says what failed, for which identity and
//! why, in terms a remote administrator can act on.

use std::fmt;
use std::time::Duration;

use tollgate_spf::{SpfOutput, SpfResult};

use crate::Action;

/// The longest text we put in a reply line; RFC 5321 §4.5.3.1.5 allows
/// 512 octets for the whole line.
const MAX_TEXT: usize = 400;

/// An enhanced status code without its class (RFC 3463 §2): the subject
/// and detail, e.g. `7.23` for "SPF validation failed" (RFC 7372 §3.2).
/// The class (`5` or `4`) comes from the action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Enhanced {
    /// The subject: 1 addressing, 4 routing, 5 protocol, 7 security …
    pub subject: u16,
    /// The detail within the subject.
    pub detail: u16,
}

impl Enhanced {
    /// `subject.detail`.
    pub const fn new(subject: u16, detail: u16) -> Enhanced {
        Enhanced { subject, detail }
    }

    /// RFC 5321 §4.1.1.1 / RFC 3463 §3.6: syntax error in a parameter (`5.5.2`).
    pub const SYNTAX: Enhanced = Enhanced::new(5, 2);
    /// RFC 3463 §3.8: delivery not authorized (`5.7.1`).
    pub const NOT_AUTHORIZED: Enhanced = Enhanced::new(7, 1);
    /// RFC 3463 §3.5: routing server failure, i.e. DNS trouble (`4.4.3`).
    pub const DNS_FAILURE: Enhanced = Enhanced::new(4, 3);
    /// RFC 7372 §3.2: SPF validation failed (`5.7.23`).
    pub const SPF_FAIL: Enhanced = Enhanced::new(7, 23);
    /// RFC 7372 §3.2: SPF validation error (`5.7.24`).
    pub const SPF_ERROR: Enhanced = Enhanced::new(7, 24);
    /// RFC 7372 §3.3: reverse DNS validation failed (`5.7.25`).
    pub const REVERSE_DNS: Enhanced = Enhanced::new(7, 25);
    /// RFC 3463 §3.2: bad sender's system address (`5.1.8`).
    pub const BAD_SENDER_DOMAIN: Enhanced = Enhanced::new(1, 8);
    /// RFC 7505 §4.2: the sender's domain publishes a null MX (`5.7.27`).
    pub const SENDER_NULL_MX: Enhanced = Enhanced::new(7, 27);

    /// The full code with class `class`: `5.7.23`, `4.7.23`.
    pub fn with_class(self, class: u16) -> String {
        format!("{class}.{}.{}", self.subject, self.detail)
    }
}

impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.subject, self.detail)
    }
}

/// An SMTP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The basic code: 550 or 451.
    pub code: u16,
    /// The enhanced status code, e.g. `5.7.23`.
    pub enhanced: String,
    /// The text, printable ASCII on one line.
    pub text: String,
}

impl Reply {
    /// A reply for `action` with the enhanced code `enhanced`: a reject is
    /// `550 5.x.y`, a tempfail `451 4.x.y` with a text that ends in "try
    /// again later", a greylist the first attempt's [`greylisted`] reply
    /// for the default delay of 5 minutes. Returns `None` for [`Action::Tag`].
    ///
    /// [`greylisted`]: Reply::greylisted
    pub fn for_action(action: Action, enhanced: Enhanced, text: &str) -> Option<Reply> {
        let (code, class, suffix) = match action {
            Action::Reject => (550, 5, ""),
            Action::Tempfail => (451, 4, ", try again later"),
            Action::Greylist => {
                return Some(Reply::greylisted(text, Duration::from_secs(300)));
            }
            Action::Tag => return None,
        };
        Some(Reply {
            code,
            enhanced: enhanced.with_class(class),
            text: clean(&format!("{text}{suffix}")),
        })
    }

    /// The greylisting reply (RFC 6647 §2.1: a 4xx at RCPT; §5: say it is
    /// greylisting and when to retry): `451 4.7.1 Greylisted: WHY; retry in
    /// 5 minutes`.
    pub fn greylisted(why: &str, retry_in: Duration) -> Reply {
        Reply {
            code: 451,
            enhanced: "4.7.1".to_owned(),
            text: clean(&format!(
                "Greylisted: {why}; please retry in {} (RFC 6647)",
                wait_text(retry_in)
            )),
        }
    }

    /// A [`greylisted`](Self::greylisted) reply with its wait replaced:
    /// what an early retry is told.
    pub fn with_retry(&self, retry_in: Duration) -> Reply {
        let marker = "; please retry in ";
        let why = match self.text.strip_prefix("Greylisted: ") {
            Some(rest) => rest.rfind(marker).map_or(rest, |i| &rest[..i]),
            None => &self.text,
        };
        Reply::greylisted(why, retry_in)
    }

    /// The enhanced code without its class digit, e.g. `7.23`.
    pub fn subject_detail(&self) -> &str {
        self.enhanced.get(2..).unwrap_or("")
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.code, self.enhanced, self.text)
    }
}

/// A wait in words: `5 minutes`, `1 minute 30 seconds`, `45 seconds`,
/// rounded up to the second.
pub fn wait_text(d: Duration) -> String {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let unit = |n: u64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(unit(h, "hour"));
    }
    if m > 0 {
        parts.push(unit(m, "minute"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(unit(s, "second"));
    }
    parts.join(" ")
}

/// Printable ASCII only, on one line, at most [`MAX_TEXT`] characters.
pub(crate) fn clean(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if matches!(c, ' '..='~') { c } else { '?' })
        .collect();
    if out.len() > MAX_TEXT {
        out.truncate(MAX_TEXT - 3);
        out.push_str("...");
    }
    out
}

/// The reply text for an SPF result that the policy refuses.
pub(crate) fn spf_text(
    out: &SpfOutput,
    helo_identity: bool,
    policy_named: bool,
    action: Action,
) -> String {
    let ip = out.ip;
    let matched = out.mechanism.as_deref().map(|m| format!("matched \"{m}\""));
    let under = |matched: Option<String>| {
        let policy = format!(
            "under {}policy {}={action}",
            if helo_identity { "HELO " } else { "" },
            out.result
        );
        match (matched, policy_named) {
            (Some(m), true) => format!(" ({m} {policy})"),
            (Some(m), false) => format!(" ({m})"),
            (None, true) => format!(" ({policy})"),
            (None, false) => String::new(),
        }
    };
    let domain = &out.checked_domain;
    match out.result {
        SpfResult::PermError | SpfResult::TempError => {
            let problem = out
                .problem
                .as_deref()
                .unwrap_or("error evaluating the SPF record");
            if helo_identity {
                format!("SPF {} for HELO {domain}: {problem}", out.result)
            } else {
                format!("SPF {} for {domain}: {problem}", out.result)
            }
        }
        result => {
            // A softfail refused by policy reads "SPF fail" like a fail:
            // the check failed; the parenthesis names the mechanism and
            // the policy that made it a refusal.
            let verdict = match result {
                SpfResult::SoftFail => SpfResult::Fail,
                other => other,
            };
            let mut text = if helo_identity {
                format!(
                    "SPF {verdict} for HELO {domain}: {ip} not permitted{}",
                    under(matched)
                )
            } else if verdict == SpfResult::Fail {
                format!(
                    "SPF fail: {ip} is not allowed to send mail as {domain}{}",
                    under(matched)
                )
            } else {
                format!("SPF {result} for {domain}{}", under(matched))
            };
            if let Some(exp) = out.explanation.as_ref().filter(|e| e.from_domain) {
                text.push_str(&format!("; {domain} says: \"{}\"", exp.text));
            }
            text
        }
    }
}

/// The enhanced code an SPF result's reject uses (RFC 7372 §3.2).
pub(crate) fn spf_enhanced(result: SpfResult) -> Enhanced {
    match result {
        SpfResult::PermError | SpfResult::TempError => Enhanced::SPF_ERROR,
        _ => Enhanced::SPF_FAIL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tempfail_replies_use_class_4_and_say_try_again() {
        let r = Reply::for_action(
            Action::Tempfail,
            Enhanced::SPF_ERROR,
            "SPF temperror for example.com: DNS timeout",
        )
        .unwrap();
        assert_eq!(
            r.to_string(),
            "451 4.7.24 SPF temperror for example.com: DNS timeout, try again later"
        );
        assert!(Reply::for_action(Action::Tag, Enhanced::NOT_AUTHORIZED, "x").is_none());
    }

    #[test]
    fn greylist_replies_are_451_4_7_1_and_say_when_to_retry() {
        let r = Reply::greylisted("no SPF record for example.com", Duration::from_secs(300));
        assert_eq!(
            r.to_string(),
            "451 4.7.1 Greylisted: no SPF record for example.com; please retry in 5 minutes (RFC 6647)"
        );
        assert_eq!(
            wait_text(Duration::from_millis(90_500)),
            "1 minute 31 seconds"
        );
        assert_eq!(wait_text(Duration::from_secs(3600)), "1 hour");
        assert_eq!(wait_text(Duration::ZERO), "0 seconds");
    }

    #[test]
    fn reply_text_is_one_printable_line_of_bounded_length() {
        let r = Reply::for_action(
            Action::Reject,
            Enhanced::NOT_AUTHORIZED,
            &format!("a\r\nb{}", "x".repeat(2000)),
        )
        .unwrap();
        assert!(r.text.starts_with("a??b"));
        assert!(r.to_string().len() <= 512);
    }
}
