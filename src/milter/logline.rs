//! The one info line per message, and what makes client- and DNS-supplied
//! text safe in a log: control characters escaped (`\n`, `\r`, `\u{1b}`),
//! so one field cannot start a forged line or drive a terminal, and each
//! field bounded, so a 900 KB HELO does not make a 1.8 MB log line.

use std::fmt::Write as _;
use std::net::IpAddr;

use tollgate_checks::{Evaluation, Verdict};

use super::session::Disposition;

/// The most characters of one client-supplied field in a log line.
pub(crate) const MAX_FIELD: usize = 256;

/// The most recipients listed one by one in a log line.
const MAX_RECIPIENTS: usize = 20;

/// `text` with control characters escaped, cut to `max` characters
/// (before escaping) with `...` marking the cut.
pub(crate) fn escaped(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 8);
    let mut chars = text.chars();
    for c in chars.by_ref().take(max) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if chars.next().is_some() {
        out.push_str("...");
    }
    out
}

/// What the message line says.
#[derive(Debug)]
pub(crate) struct MessageLine<'a> {
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
    pub helo: Option<&'a str>,
    pub sender: Option<&'a str>,
    pub recipients: &'a [(String, Disposition)],
    pub queue_id: Option<&'a str>,
    pub eval: &'a Evaluation,
    pub verdict: &'a Verdict,
    pub dry_run: bool,
    pub dns_queries: u32,
    pub dns_cancelled: u32,
    pub outcome: &'a str,
}

/// Writes the message line: every stage's result, the action, the
/// deciding stage, the reply, the skip and the DNS queries.
pub(crate) fn message(line: &MessageLine<'_>) {
    let verdict = line.verdict;
    let mut stages = String::new();
    for r in &line.eval.stages {
        let sep = if stages.is_empty() { "" } else { " " };
        let _ = write!(stages, "{sep}{}={}", r.stage, r.outcome);
    }
    let mut recipients = String::new();
    for (rcpt, what) in line.recipients.iter().take(MAX_RECIPIENTS) {
        let sep = if recipients.is_empty() { "" } else { "," };
        let _ = write!(
            recipients,
            "{sep}{}({})",
            escaped(rcpt, MAX_FIELD),
            what.as_str()
        );
    }
    if line.recipients.len() > MAX_RECIPIENTS {
        let _ = write!(
            recipients,
            ",(+{} more)",
            line.recipients.len() - MAX_RECIPIENTS
        );
    }
    let action = crate::metrics::action_label(verdict, line.dry_run);
    let skipped = line
        .eval
        .skipped()
        .map(|reason| escaped(&reason.to_string(), MAX_FIELD))
        .unwrap_or_default();
    tracing::info!(
        client = %line.ip.map(|ip| ip.to_string()).unwrap_or_else(|| "local".to_owned()),
        client_port = %line.port.map(|p| p.to_string()).unwrap_or_default(),
        helo = %escaped(line.helo.unwrap_or(""), MAX_FIELD),
        sender = %escaped(line.sender.unwrap_or(""), MAX_FIELD),
        recipients = %recipients,
        queue_id = %escaped(line.queue_id.unwrap_or(""), 64),
        stages = %stages,
        action = %action,
        decided_by = %verdict.stage.map(|s| s.as_str()).unwrap_or(""),
        reply = %verdict.reply.as_ref().map(|r| r.to_string()).unwrap_or_default(),
        skipped = %skipped,
        dns_queries = line.dns_queries,
        dns_cancelled = line.dns_cancelled,
        outcome = %line.outcome,
        "message"
    );
}

#[cfg(test)]
mod tests {
    use super::escaped;

    #[test]
    fn control_characters_cannot_split_a_log_line() {
        // Regression: a recipient `<x\nFAKE INFO line@…>` split the line in two.
        let e = escaped("<x\nFAKE INFO line@example.com>\r\u{1b}[31m", 256);
        assert!(!e.chars().any(char::is_control), "{e}");
        assert!(e.contains("\\n") && e.contains("\\r") && e.contains("\\u{1b}"));
    }

    #[test]
    fn client_fields_are_bounded() {
        // Regression: a 900 KB HELO made a 1.8 MB log line.
        let e = escaped(&"a".repeat(900_000), 256);
        assert_eq!(e.len(), 259);
        assert!(e.ends_with("..."));
        assert_eq!(escaped("mx.example.com", 256), "mx.example.com");
    }
}
