//! Per-connection state: one [`Session`] per MTA connection, in two
//! parts: the connection (client, HELO, the reports of the stages that
//! run once per connection) and the current message (sender, recipients,
//! the spf-mailfrom report). The configuration is snapshotted when the
//! connection opens, so a reload never changes a live session.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tollgate_checks::{Action, Evaluation, Reply, SkipReason, Stage, StageReport};

use super::Shared;
use crate::config::RejectAt;

/// What the milter answers to a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Go on.
    Continue,
    /// Refuse with this reply (5xx or 4xx).
    Refuse(Reply),
}

/// The connection part.
#[derive(Debug)]
pub(crate) struct Connection {
    /// The client address; `None` for a local (non-TCP) client.
    pub ip: Option<IpAddr>,
    /// The authserv-id for this connection's headers.
    pub authserv_id: String,
    /// Set when the client is exempt (trusted network, authenticated).
    pub skipped: Option<StageReport>,
    /// The fcrdns lookup, started at CONNECT.
    pub fcrdns: Option<JoinHandle<StageReport>>,
    /// The HELO name, once given.
    pub helo: Option<String>,
    /// Reports of the connection stages (helo-syntax, fcrdns, helo-dns, spf-helo).
    pub reports: Vec<StageReport>,
    /// DNS queries of connection stages not yet counted in a log line.
    pub unlogged_queries: u32,
}

/// The message part, reset by MAIL FROM, RSET and the end of a message.
#[derive(Debug, Default)]
pub(crate) struct Message {
    /// A MAIL FROM was seen and the message is not yet logged.
    pub open: bool,
    /// The MAIL FROM address as given (without angle brackets).
    pub sender: Option<String>,
    /// Set when the message is exempt (authenticated sender, listed domain).
    pub skipped: Option<StageReport>,
    /// The spf-mailfrom report.
    pub mailfrom: Option<StageReport>,
    /// Recipients and what became of them.
    pub recipients: Vec<(String, &'static str)>,
    /// The MTA's queue id.
    pub queue_id: Option<String>,
    /// How many `Authentication-Results` headers were seen so far.
    pub ar_count: i32,
    /// The indexes (1-based) of those that carry our authserv-id.
    pub forged_ar: Vec<i32>,
}

/// One MTA connection.
#[derive(Debug)]
pub(crate) struct Session {
    /// The configuration snapshot.
    pub shared: Arc<Shared>,
    /// The connection span.
    pub span: tracing::Span,
    /// Connection state.
    pub conn: Connection,
    /// Message state.
    pub msg: Message,
    /// Counts the session as live until it is dropped.
    _live: super::LiveSession,
}

impl Session {
    /// A session for a new connection.
    pub fn new(
        id: u64,
        shared: Arc<Shared>,
        live: super::LiveSession,
        ip: Option<IpAddr>,
        mta_host: Option<&str>,
    ) -> Session {
        let span = tracing::info_span!(
            "conn",
            id,
            client = ip
                .map(|ip| ip.to_string())
                .unwrap_or_else(|| "local".to_owned()),
            helo = tracing::field::Empty,
            queue_id = tracing::field::Empty,
        );
        let authserv_id = shared
            .config
            .authserv_id
            .clone()
            .or_else(|| mta_host.filter(|h| !h.is_empty()).map(str::to_owned))
            .unwrap_or_else(|| shared.config.checks.receiver.clone());
        let checker = &shared.checker;
        let skipped = match ip {
            None => Some(StageReport::skipped(SkipReason::NoClientAddress)),
            Some(ip) => checker.skip_client(ip, None),
        };
        let fcrdns = match (ip, &skipped) {
            (Some(ip), None) if shared.config.checks.policy.enabled(Stage::Fcrdns) => {
                let shared = Arc::clone(&shared);
                Some(tokio::spawn(async move { shared.checker.fcrdns(ip).await }))
            }
            _ => None,
        };
        Session {
            shared,
            span,
            conn: Connection {
                ip,
                authserv_id,
                skipped,
                fcrdns,
                helo: None,
                reports: Vec::new(),
                unlogged_queries: 0,
            },
            msg: Message::default(),
            _live: live,
        }
    }

    fn decisive(&self) -> Option<&StageReport> {
        self.conn
            .reports
            .iter()
            .chain(self.msg.mailfrom.as_ref())
            .find(|r| r.is_decisive())
    }

    fn skipped(&self) -> Option<&StageReport> {
        self.conn.skipped.as_ref().or(self.msg.skipped.as_ref())
    }

    /// The evaluation of the current message: skip, connection stages, spf-mailfrom.
    pub fn evaluation(&self) -> Evaluation {
        let mut stages: Vec<StageReport> = self.skipped().cloned().into_iter().collect();
        stages.extend(self.conn.reports.iter().cloned());
        stages.extend(self.msg.mailfrom.clone());
        Evaluation { stages }
    }

    /// The reply to give now if the reply is given as early as possible.
    fn earliest(&self) -> Answer {
        match (self.shared.config.reject_at, self.shared.config.dry_run) {
            (RejectAt::Earliest, false) => match self.decisive().and_then(|r| r.reply.clone()) {
                Some(reply) if self.skipped().is_none() => Answer::Refuse(reply),
                _ => Answer::Continue,
            },
            _ => Answer::Continue,
        }
    }

    /// HELO/EHLO: helo-syntax, the fcrdns verdict, helo-dns, spf-helo,
    /// stopping at the first decisive stage. A repeated HELO with the same
    /// name (EHLO after STARTTLS) reuses the results.
    pub async fn helo(&mut self, helo: String) -> Answer {
        if self.conn.helo.as_deref() == Some(helo.as_str()) {
            return self.earliest();
        }
        self.span.record("helo", helo.as_str());
        self.conn.helo = Some(helo.clone());
        // A new HELO name: earlier HELO-stage results no longer apply.
        self.conn.reports.retain(|r| r.stage == Stage::Fcrdns);
        let Some(ip) = self.conn.ip else {
            return Answer::Continue;
        };
        if self.conn.skipped.is_some() {
            return Answer::Continue;
        }
        let shared = Arc::clone(&self.shared);
        let checker = &shared.checker;
        if let Some(report) = checker.skip_helo(&helo) {
            self.conn.skipped = Some(report);
            return Answer::Continue;
        }
        let policy = &shared.config.checks.policy;
        if policy.enabled(Stage::HeloSyntax) {
            self.push(checker.helo_syntax(ip, &helo));
        }
        self.await_fcrdns().await;
        if self.decisive().is_none() && policy.enabled(Stage::HeloDns) {
            let report = checker.helo_dns(ip, &helo).await;
            self.push(report);
        }
        if self.decisive().is_none() && policy.enabled(Stage::SpfHelo) {
            let report = checker.spf_helo(ip, &helo).await;
            self.push(report);
        }
        self.earliest()
    }

    /// Collects the fcrdns report started at CONNECT, if not yet collected.
    async fn await_fcrdns(&mut self) {
        let Some(task) = self.conn.fcrdns.take() else {
            return;
        };
        match task.await {
            Ok(report) => {
                // fcrdns comes before the HELO stages that follow it.
                self.push(report);
            }
            Err(e) => tracing::warn!(error = %e, "fcrdns lookup task failed"),
        }
    }

    fn push(&mut self, report: StageReport) {
        self.conn.unlogged_queries += report.dns_queries;
        tracing::debug!(
            stage = report.stage.as_str(),
            result = report.outcome.as_str(),
            action = report.action.as_str(),
            detail = %report.detail,
            "stage"
        );
        self.conn.reports.push(report);
    }

    /// MAIL FROM: starts a message; skips for authenticated senders and
    /// listed domains; spf-mailfrom unless a connection stage decided.
    pub async fn mail(&mut self, sender: String, auth: Option<String>) -> Answer {
        self.finish_message("aborted");
        self.msg = Message {
            open: true,
            sender: Some(sender.clone()),
            ..Message::default()
        };
        let Some(ip) = self.conn.ip else {
            return Answer::Continue;
        };
        if self.conn.skipped.is_some() {
            return Answer::Continue;
        }
        let shared = Arc::clone(&self.shared);
        let checker = &shared.checker;
        let helo = self.conn.helo.clone().unwrap_or_default();
        if let Some(report) = checker
            .skip_client(ip, auth.as_deref())
            .or_else(|| checker.skip_sender(&sender, &helo))
        {
            self.msg.skipped = Some(report);
            return Answer::Continue;
        }
        // A client that skipped HELO still gets its fcrdns verdict.
        self.await_fcrdns().await;
        if self.decisive().is_none() && shared.config.checks.policy.enabled(Stage::SpfMailfrom) {
            let helo_spf = self
                .conn
                .reports
                .iter()
                .find(|r| r.stage == Stage::SpfHelo)
                .and_then(|r| r.spf.as_ref());
            let report = checker.spf_mailfrom(ip, &helo, &sender, helo_spf).await;
            tracing::debug!(
                stage = "spf-mailfrom",
                result = report.outcome.as_str(),
                action = report.action.as_str(),
                detail = %report.detail,
                "stage"
            );
            self.msg.mailfrom = Some(report);
        }
        self.earliest()
    }

    /// RCPT TO: the reply, unless the recipient is exempt or this is a dry run.
    pub fn rcpt(&mut self, rcpt: String) -> Answer {
        let config = &self.shared.config;
        let refusal = match self.skipped() {
            Some(_) => None,
            None => self.decisive().and_then(|r| r.reply.clone()),
        };
        let Some(reply) = refusal else {
            self.msg.recipients.push((rcpt, "accepted"));
            return Answer::Continue;
        };
        if is_exempt(&rcpt, &config.exempt_recipients) {
            self.msg.recipients.push((rcpt, "exempt"));
            return Answer::Continue;
        }
        if config.dry_run {
            tracing::info!(rcpt = %rcpt, would = %reply, "dry run: recipient accepted");
            self.msg.recipients.push((rcpt, "dry-run"));
            return Answer::Continue;
        }
        self.msg.recipients.push((
            rcpt,
            if reply.code >= 500 {
                "rejected"
            } else {
                "tempfailed"
            },
        ));
        Answer::Refuse(reply)
    }

    /// A header of the message: remembers forged `Authentication-Results`.
    pub fn header(&mut self, name: &str, value: &str) {
        if name.eq_ignore_ascii_case("Authentication-Results") {
            self.msg.ar_count += 1;
            if super::fields::authserv_id(value)
                .is_some_and(|id| id.eq_ignore_ascii_case(&self.conn.authserv_id))
            {
                self.msg.forged_ar.push(self.msg.ar_count);
            }
        }
    }

    /// The headers to insert at the top for `eval` (this message's
    /// evaluation), in final top-to-bottom order.
    pub fn headers(&self, eval: &Evaluation) -> Vec<(&'static str, String)> {
        let config = &self.shared.config;
        tollgate_checks::headers::message_headers(
            eval,
            self.msg.sender.as_deref().unwrap_or(""),
            &self.conn.authserv_id,
            &config.checks.receiver,
            config.headers.received_spf,
            config.headers.authentication_results,
        )
    }

    /// Writes the one info line of a message, once.
    pub fn finish_message(&mut self, outcome: &str) {
        if self.msg.open {
            let eval = self.evaluation();
            self.log_message(outcome, &eval);
        }
    }

    /// Writes the one info line of a message for an evaluation already
    /// made (end of message builds it once for headers and log), once.
    pub fn log_message(&mut self, outcome: &str, eval: &Evaluation) {
        if !std::mem::take(&mut self.msg.open) {
            return;
        }
        let verdict = eval.verdict();
        let mut stages = String::new();
        for r in &eval.stages {
            let _ = write!(
                stages,
                "{}{}={}",
                if stages.is_empty() { "" } else { " " },
                r.stage,
                r.outcome
            );
        }
        let recipients: Vec<String> = self
            .msg
            .recipients
            .iter()
            .map(|(r, what)| format!("{r}({what})"))
            .collect();
        let mut action = match verdict.action {
            Action::Tag => "accept".to_owned(),
            other => other.as_str().to_owned(),
        };
        if self.shared.config.dry_run && verdict.action != Action::Tag {
            action = format!("dry-run:{action}");
        }
        let queries =
            self.conn.unlogged_queries + self.msg.mailfrom.as_ref().map_or(0, |r| r.dns_queries);
        self.conn.unlogged_queries = 0;
        tracing::info!(
            client = %self.conn.ip.map(|ip| ip.to_string()).unwrap_or_else(|| "local".to_owned()),
            helo = self.conn.helo.as_deref().unwrap_or(""),
            sender = self.msg.sender.as_deref().unwrap_or(""),
            recipients = %recipients.join(","),
            queue_id = self.msg.queue_id.as_deref().unwrap_or(""),
            stages = %stages,
            action = %action,
            decided_by = verdict.stage.map(|s| s.as_str()).unwrap_or(""),
            reply = %verdict.reply.map(|r| r.to_string()).unwrap_or_default(),
            skipped = self.skipped().map(|r| r.detail.as_str()).unwrap_or(""),
            dns_queries = queries,
            outcome,
            "message"
        );
    }

    /// The connection closes.
    pub fn close(&mut self) {
        self.finish_message("closed");
        if let Some(task) = self.conn.fcrdns.take() {
            task.abort();
        }
    }
}

/// Whether a recipient is exempt: its local part, or the whole address,
/// is listed (RFC 5321 §4.5.1: postmaster is case-insensitive).
pub(crate) fn is_exempt(rcpt: &str, exempt: &[String]) -> bool {
    let bare = rcpt.trim().trim_start_matches('<').trim_end_matches('>');
    let local = bare.rsplit_once('@').map_or(bare, |(l, _)| l);
    exempt
        .iter()
        .any(|e| e.eq_ignore_ascii_case(local) || e.eq_ignore_ascii_case(bare))
}

#[cfg(test)]
mod tests {
    use super::is_exempt;

    #[test]
    fn postmaster_is_exempt_in_any_case_and_domain() {
        let list = vec!["postmaster".to_owned(), "abuse@example.org".to_owned()];
        assert!(is_exempt("<Postmaster@example.org>", &list));
        assert!(is_exempt("postmaster", &list));
        assert!(is_exempt("<abuse@example.org>", &list));
        assert!(!is_exempt("<abuse@example.net>", &list));
        assert!(!is_exempt("<alice@example.org>", &list));
    }
}
