//! The one info line per message, and what makes client- and DNS-supplied
//! text safe in a log: control characters escaped (`\n`, `\r`, `\u{1b}`),
//! so one field cannot start a forged line or drive a terminal, and each
//! field bounded, so a 900 KB HELO does not make a 1.8 MB log line.

use std::fmt::{self, Write as _};
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
    Escaped(text, max).to_string()
}

/// [`escaped`] as a value that writes itself into the log line, with no
/// copy of its own.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Escaped<'a>(pub &'a str, pub usize);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Escaped(text, max) = *self;
        let mut chars = text.chars();
        for c in chars.by_ref().take(max) {
            if c.is_control() {
                for e in c.escape_default() {
                    f.write_char(e)?;
                }
            } else {
                f.write_char(c)?;
            }
        }
        if chars.next().is_some() {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// The client address, or `local`.
pub(crate) struct Client(pub Option<IpAddr>);

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("local"),
        }
    }
}

/// `stage=result` for every stage, space-separated.
struct Stages<'a>(&'a Evaluation);

impl fmt::Display for Stages<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.stages.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{}={}", r.stage, r.outcome)?;
        }
        Ok(())
    }
}

/// `rcpt(disposition)`, comma-separated, at most [`MAX_RECIPIENTS`].
struct Recipients<'a>(&'a [(String, Disposition)]);

impl fmt::Display for Recipients<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (rcpt, what)) in self.0.iter().take(MAX_RECIPIENTS).enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{}({})", Escaped(rcpt, MAX_FIELD), what.as_str())?;
        }
        if self.0.len() > MAX_RECIPIENTS {
            write!(f, ",(+{} more)", self.0.len() - MAX_RECIPIENTS)?;
        }
        Ok(())
    }
}

/// A value shown if present, else nothing.
struct Maybe<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Maybe<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => Ok(()),
        }
    }
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
    // The fields write themselves into the line: nothing is copied first.
    // The action is the metrics' label, marked when a dry run did not
    // carry it out.
    let action = crate::metrics::action_label(verdict, line.dry_run);
    let skipped = line
        .eval
        .skipped()
        .map(|reason| escaped(&reason.to_string(), MAX_FIELD));
    tracing::info!(
        client = %Client(line.ip),
        client_port = %Maybe(line.port),
        helo = %Escaped(line.helo.unwrap_or(""), MAX_FIELD),
        sender = %Escaped(line.sender.unwrap_or(""), MAX_FIELD),
        recipients = %Recipients(line.recipients),
        queue_id = %Escaped(line.queue_id.unwrap_or(""), 64),
        stages = %Stages(line.eval),
        action = %action,
        decided_by = %verdict.stage.map(|s| s.as_str()).unwrap_or(""),
        reply = %Maybe(verdict.reply.as_ref()),
        skipped = %Maybe(skipped),
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

    #[test]
    fn recipients_past_twenty_are_counted_not_listed() {
        use super::{Disposition, Recipients};
        let list: Vec<(String, Disposition)> = (0..22)
            .map(|i| (format!("<u{i}@example.org>"), Disposition::Accepted))
            .collect();
        let shown = Recipients(&list).to_string();
        assert!(shown.starts_with("<u0@example.org>(accepted),<u1@example.org>(accepted),"));
        assert!(
            shown.ends_with("<u19@example.org>(accepted),(+2 more)"),
            "{shown}"
        );
        assert_eq!(Recipients(&list[..0]).to_string(), "");
    }

    #[test]
    fn a_local_client_and_absent_values_are_written_as_such() {
        use super::{Client, Maybe};
        assert_eq!(Client(None).to_string(), "local");
        assert_eq!(
            Client(Some("2001:db8::1".parse().unwrap())).to_string(),
            "2001:db8::1"
        );
        assert_eq!(Maybe(None::<&str>).to_string(), "");
        assert_eq!(Maybe(Some("451 4.4.3 x")).to_string(), "451 4.4.3 x");
    }
}
