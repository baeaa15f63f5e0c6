//! The comparison: what the milter must do, given `tollgate check`'s
//! verdict and the milter-only settings of the scenario (`reject_at`,
//! `dry_run`, the exempt recipient), and every way in which what it did
//! differs.
//!
//! - The verdict: the message's log line carries the action (`dry-run:`
//!   before it under dry run), `decided_by` and `reply`; they must be
//!   check's action, stage and reply.
//! - The protocol: no refusal when check accepts; otherwise the reply
//!   (code, enhanced code, text) at RCPT, or at HELO (connection stages)
//!   or MAIL (spf-mailfrom) under `reject_at: earliest`; acceptance under
//!   dry run and for an exempt recipient, with its disposition logged.
//! - The headers: for a delivered message, the `Received-SPF` and
//!   `Authentication-Results` values check prints are those the milter
//!   inserts.

use std::fmt;

use super::check_side::{CheckSaid, Verdict};
use super::corpus::{Conversation, Rcpt, Scenario};
use super::milter_side::{Answer, MilterDid};

/// Which comparison failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Action, deciding stage or reply in the log line.
    Verdict,
    /// The answers at HELO, MAIL and RCPT, delivery, the disposition.
    Protocol,
    /// Headers of a message check accepts without a skip.
    Headers,
    /// Headers of a skipped message.
    HeadersSkipped,
    /// Headers of a message delivered although the verdict refuses
    /// (dry run, exempt recipient).
    HeadersDeliveredAnyway,
}

/// One difference between the two sides.
#[derive(Clone, Debug)]
pub struct Mismatch {
    pub kind: Kind,
    pub text: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.text)
    }
}

/// When the milter can answer with a stage's verdict under
/// `reject_at: earliest`.
fn known_at_mail(stage: &str) -> bool {
    // The connection stages are decided at HELO; the MAIL FROM ones at MAIL.
    matches!(stage, "spf-mailfrom" | "sender-domain")
}

/// What the milter must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// `None` when no HELO is sent.
    pub helo: Option<Answer>,
    /// The answer to a repeated EHLO, when sent: the first one's.
    pub helo_again: Option<Answer>,
    pub mail: Answer,
    pub rcpt: Option<Answer>,
    pub delivered: bool,
    /// The `recipients` log field.
    pub recipients: String,
}

/// The refusal a verdict stands for, if any.
fn refusal(v: &Verdict) -> Option<Answer> {
    let reply = v.reply.clone().unwrap_or_else(|| "(no reply)".to_owned());
    match v.action.as_str() {
        "accept" => None,
        "reject" => Some(Answer::Reject(reply)),
        "tempfail" => Some(Answer::Tempfail(reply)),
        other => Some(Answer::Other(format!("verdict {other}"))),
    }
}

/// The log line's action for a verdict.
fn log_action(s: &Scenario, v: &Verdict) -> String {
    if s.policy().dry_run && v.action != "accept" {
        format!("dry-run:{}", v.action)
    } else {
        v.action.clone()
    }
}

/// What the milter must do with `s`, given check's verdict.
pub fn expected(s: &Scenario, v: &Verdict) -> Expected {
    let mut e = expected_once(s, v);
    if s.conversation == Conversation::EhloTwice {
        e.helo_again = e.helo.clone();
    }
    e
}

/// What the milter must do with `s` if it says EHLO once.
fn expected_once(s: &Scenario, v: &Verdict) -> Expected {
    let rcpt = s.rcpt_address();
    let helo_sent = s.helo_name().is_some();
    let helo_continues = helo_sent.then_some(Answer::Continue);
    let accepted = |disposition: &str| Expected {
        helo: helo_continues.clone(),
        helo_again: None,
        mail: Answer::Continue,
        rcpt: Some(Answer::Continue),
        delivered: true,
        recipients: format!("{rcpt}({disposition})"),
    };
    let policy = s.policy();
    let Some(refuse) = refusal(v) else {
        return accepted("accepted");
    };
    if policy.earliest && !policy.dry_run {
        let stage = v.stage.as_deref().unwrap_or("");
        // After a refused HELO the client carries on with MAIL, which
        // gets the same refusal; without HELO, MAIL gets it first. With
        // a sender-domain skip list the refusal is not final before MAIL
        // FROM (a listed sender would be exempt), so MAIL gets it first.
        let helo = if known_at_mail(stage) || policy.skips {
            helo_continues
        } else {
            helo_sent.then(|| refuse.clone())
        };
        return Expected {
            helo,
            helo_again: None,
            mail: refuse,
            rcpt: None,
            delivered: false,
            recipients: String::new(),
        };
    }
    if s.rcpt == Rcpt::Postmaster {
        return accepted("exempt");
    }
    if policy.dry_run {
        return accepted("dry-run");
    }
    let disposition = match refuse {
        Answer::Reject(_) => "rejected",
        _ => "tempfailed",
    };
    Expected {
        helo: helo_continues,
        helo_again: None,
        mail: Answer::Continue,
        rcpt: Some(refuse),
        delivered: false,
        recipients: format!("{rcpt}({disposition})"),
    }
}

/// Every difference between what check said and what the milter did.
pub fn compare(s: &Scenario, check: &CheckSaid, milter: &MilterDid) -> Vec<Mismatch> {
    let mut found = Vec::new();
    let v = &check.verdict;
    let log = &milter.log;
    let want = (
        log_action(s, v),
        v.stage.clone().unwrap_or_default(),
        v.reply.clone().unwrap_or_default(),
    );
    let got = (
        log.action.clone(),
        log.decided_by.clone(),
        log.reply.clone(),
    );
    if want != got {
        found.push(Mismatch {
            kind: Kind::Verdict,
            text: format!(
                "check: action={} stage={} reply={:?}; milter log: action={} decided_by={} reply={:?}",
                want.0, want.1, want.2, got.0, got.1, got.2
            ),
        });
    }

    let expected = expected(s, v);
    let did = Expected {
        helo: milter.helo.clone(),
        helo_again: milter.helo_again.clone(),
        mail: milter.mail.clone(),
        rcpt: milter.rcpt.clone(),
        delivered: milter.headers.is_some(),
        recipients: log.recipients.clone(),
    };
    if expected != did {
        found.push(Mismatch {
            kind: Kind::Protocol,
            text: format!(
                "check's verdict {} means the milter should answer {}; it answered {}",
                shown_verdict(v),
                shown(&expected),
                shown(&did)
            ),
        });
    }

    if let Some(inserted) = &milter.headers
        && *inserted != check.headers
    {
        let kind = if v.stage.as_deref() == Some("skip") {
            Kind::HeadersSkipped
        } else if v.action != "accept" {
            Kind::HeadersDeliveredAnyway
        } else {
            Kind::Headers
        };
        found.push(Mismatch {
            kind,
            text: format!(
                "check prints headers {:?}; the milter inserts {:?}",
                check.headers, inserted
            ),
        });
    }
    found
}

fn shown_verdict(v: &Verdict) -> String {
    format!(
        "{}{}{}",
        v.action,
        v.stage
            .as_deref()
            .map(|s| format!(" at {s}"))
            .unwrap_or_default(),
        v.reply
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    )
}

fn answer(a: &Answer) -> String {
    match a {
        Answer::Continue => "continue".to_owned(),
        Answer::Reject(r) | Answer::Tempfail(r) => format!("\"{r}\""),
        Answer::Other(o) => o.clone(),
    }
}

fn shown(e: &Expected) -> String {
    format!(
        "[HELO {}{}, MAIL {}, RCPT {}, {}, recipients={:?}]",
        e.helo.as_ref().map_or("not sent".to_owned(), answer),
        e.helo_again
            .as_ref()
            .map(|a| format!(", EHLO again {}", answer(a)))
            .unwrap_or_default(),
        answer(&e.mail),
        e.rcpt.as_ref().map_or("not sent".to_owned(), answer),
        if e.delivered {
            "delivered"
        } else {
            "not delivered"
        },
        e.recipients
    )
}
