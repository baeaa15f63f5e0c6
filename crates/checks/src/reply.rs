//! SMTP replies: a basic code, an enhanced status code (RFC 3463,
//! RFC 7372) and a text that says what failed, for which identity and
//! why, in terms a remote administrator can act on.

use std::fmt;

use tollgate_spf::{SpfOutput, SpfResult};

use crate::Action;

/// The longest text we put in a reply line; RFC 5321 §4.5.3.1.5 allows
/// 512 octets for the whole line.
const MAX_TEXT: usize = 400;

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
    /// A reply for `action`, given the enhanced code a reject would use
    /// (`5.x.y`); a tempfail uses `451` and `4.x.y`, and its text ends in
    /// "try again later". Returns `None` for [`Action::Tag`].
    pub fn for_action(action: Action, enhanced: &str, text: &str) -> Option<Reply> {
        let (code, class, suffix) = match action {
            Action::Reject => (550, '5', ""),
            Action::Tempfail => (451, '4', ", try again later"),
            Action::Tag => return None,
        };
        let mut enhanced = enhanced.to_owned();
        enhanced.replace_range(..1, &class.to_string());
        Some(Reply {
            code,
            enhanced,
            text: clean(&format!("{text}{suffix}")),
        })
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
pub(crate) fn spf_text(out: &SpfOutput, helo_identity: bool, policy_named: bool) -> String {
    let ip = out.ip;
    let matched = out.mechanism.as_deref().map(|m| format!("matched \"{m}\""));
    let under = |matched: Option<String>| {
        let policy = format!(
            "under {}policy {}=reject",
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
pub(crate) fn spf_enhanced(result: SpfResult) -> &'static str {
    match result {
        SpfResult::PermError | SpfResult::TempError => "5.7.24",
        _ => "5.7.23",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tempfail_replies_use_class_4_and_say_try_again() {
        let r = Reply::for_action(
            Action::Tempfail,
            "5.7.24",
            "SPF temperror for example.com: DNS timeout",
        )
        .unwrap();
        assert_eq!(
            r.to_string(),
            "451 4.7.24 SPF temperror for example.com: DNS timeout, try again later"
        );
        assert!(Reply::for_action(Action::Tag, "5.7.1", "x").is_none());
    }

    #[test]
    fn reply_text_is_one_printable_line_of_bounded_length() {
        let r = Reply::for_action(
            Action::Reject,
            "5.7.1",
            &format!("a\r\nb{}", "x".repeat(2000)),
        )
        .unwrap();
        assert!(r.text.starts_with("a??b"));
        assert!(r.to_string().len() <= 512);
    }
}
