//! Per-connection state: one [`Session`] per MTA connection. What the
//! checks found lives in the connection's [`Evaluator`] (the one the
//! `tollgate check` command uses too); the session keeps only what is the
//! milter's: when to answer (`reject_at`), dry run, exempt recipients,
//! the header edits at the end of a message, and the log line. The
//! configuration is snapshotted when the connection opens, so a reload
//! never changes a live session.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tollgate_checks::reply::wait_text;
use tollgate_checks::{Evaluator, Mode, Reply};
use tollgate_dns::HickoryLookup;
use tollgate_greylist::{Checked, Decision};

use super::Shared;
use super::fields::fold;
use super::logline;
use crate::config::RejectAt;
use crate::metrics::wait::dns_step;
use crate::metrics::{Command, Metrics};

/// What the milter answers to a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Go on.
    Continue,
    /// Refuse with this reply (5xx or 4xx).
    Refuse(Reply),
}

/// What became of a recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Nothing refused the message.
    Accepted,
    /// The message was refused, but this recipient is exempt (postmaster, abuse).
    Exempt,
    /// The message would have been refused; dry run accepted it.
    DryRun,
    /// Refused with a 5xx.
    Rejected,
    /// Refused with a 4xx.
    Tempfailed,
    /// Refused with a 4xx by greylisting (a new or early triplet).
    Greylisted,
}

impl Disposition {
    /// The word in the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Accepted => "accepted",
            Disposition::Exempt => "exempt",
            Disposition::DryRun => "dry-run",
            Disposition::Rejected => "rejected",
            Disposition::Tempfailed => "tempfailed",
            Disposition::Greylisted => "greylisted",
        }
    }
}

/// The message part, reset by MAIL FROM, RSET and the end of a message.
#[derive(Debug, Default)]
pub(crate) struct Message {
    /// A MAIL FROM was seen and the message is not yet logged.
    pub open: bool,
    /// Recipients and what became of them.
    pub recipients: Vec<(String, Disposition)>,
    /// The MTA's queue id.
    pub queue_id: Option<String>,
    /// How many `Authentication-Results` headers were seen so far.
    pub ar_count: i32,
    /// The indexes (1-based) of those that carry our authserv-id.
    pub forged_ar: Vec<i32>,
    /// How long greylisting delayed the message (its longest first pass).
    pub delayed: Option<Duration>,
}

/// A change to the message's header, made at the end of the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HeaderEdit {
    /// Remove the `index`-th (1-based) `Authentication-Results`.
    RemoveAuthenticationResults(i32),
    /// Insert a header at the top (value folded for the milter protocol).
    InsertOnTop(&'static str, String),
}

/// One MTA connection.
#[derive(Debug)]
pub(crate) struct Session {
    /// The configuration snapshot.
    shared: Arc<Shared>,
    /// The connection span.
    pub span: tracing::Span,
    /// The authserv-id for this connection's headers.
    authserv_id: String,
    /// What the checks found.
    eval: Evaluator<HickoryLookup>,
    /// Message state.
    msg: Message,
    /// The client's TCP port, when the MTA gave it.
    client_port: Option<u16>,
    /// What is counted, with metrics on.
    metrics: Option<Arc<Metrics>>,
    /// Counts the session as live until it is dropped.
    _live: super::LiveSession,
}

impl Session {
    /// CONNECT: a session for a new connection; the skip for its address
    /// and its FCrDNS lookup start now.
    pub fn new(
        id: u64,
        shared: Arc<Shared>,
        live: super::LiveSession,
        metrics: Option<Arc<Metrics>>,
        ip: Option<IpAddr>,
        client_port: Option<u16>,
        mta_host: Option<&str>,
    ) -> Session {
        let span = tracing::info_span!(
            "conn",
            id,
            client = %logline::Client(ip),
            helo = tracing::field::Empty,
        );
        let authserv_id = shared.config.authserv_id_for(mta_host);
        let mut eval = Evaluator::new(Arc::clone(&shared.checker), Mode::StopEarly);
        eval.connect(ip);
        Session {
            shared,
            span,
            authserv_id,
            eval,
            msg: Message::default(),
            client_port,
            metrics,
            _live: live,
        }
    }

    /// The reply to give now if the reply is given as early as possible.
    fn earliest(&self) -> Answer {
        let config = &self.shared.config;
        if config.reject_at != RejectAt::Earliest || config.dry_run || !self.eval.refusal_is_final()
        {
            return Answer::Continue;
        }
        match self.eval.refusal().and_then(|r| r.reply.clone()) {
            Some(reply) => Answer::Refuse(reply),
            None => Answer::Continue,
        }
    }

    /// HELO/EHLO.
    pub async fn helo(&mut self, helo: &str) -> Answer {
        if self.eval.helo_name() != Some(helo) {
            self.span
                .record("helo", logline::escaped(helo, logline::MAX_FIELD).as_str());
        }
        // The evaluator's steps are large futures (2.7–3.4 KB): boxed once
        // here, they are not copied again into every layer around them
        // (dns_step, this method, the callback, indymilter's box).
        let step = Box::pin(self.eval.helo(helo));
        dns_step(self.metrics.as_deref(), Command::Helo, step).await;
        self.earliest()
    }

    /// MAIL FROM: starts a message.
    pub async fn mail(&mut self, sender: &str, auth: Option<&str>) -> Answer {
        self.finish_message("aborted");
        self.msg = Message {
            open: true,
            ..Message::default()
        };
        let step = Box::pin(self.eval.mail(sender, auth));
        dns_step(self.metrics.as_deref(), Command::Mail, step).await;
        self.earliest()
    }

    /// The MTA's queue id, when it sends one (copied only when it changed).
    pub fn queue_id(&mut self, id: Option<std::borrow::Cow<'_, str>>) {
        if let Some(id) = id
            && self.msg.queue_id.as_deref() != Some(&*id)
        {
            self.msg.queue_id = Some(id.into_owned());
        }
    }

    /// Whether the current message's queue id is known.
    pub fn has_queue_id(&self) -> bool {
        self.msg.queue_id.is_some()
    }

    /// RCPT TO: the reply, unless the recipient is exempt or this is a
    /// dry run; without a refusal, greylisting when a stage asks for it.
    pub async fn rcpt(&mut self, rcpt: String) -> Answer {
        let config = &self.shared.config;
        let Some(reply) = self.eval.refusal().and_then(|r| r.reply.clone()) else {
            return self.greylist(rcpt).await;
        };
        if is_exempt(&rcpt, &config.exempt_recipients) {
            self.msg.recipients.push((rcpt, Disposition::Exempt));
            return Answer::Continue;
        }
        if config.dry_run {
            tracing::info!(
                rcpt = %logline::escaped(&rcpt, logline::MAX_FIELD),
                would = %reply,
                "dry run: recipient accepted"
            );
            self.msg.recipients.push((rcpt, Disposition::DryRun));
            return Answer::Continue;
        }
        let disposition = if reply.code >= 500 {
            Disposition::Rejected
        } else {
            Disposition::Tempfailed
        };
        self.msg.recipients.push((rcpt, disposition));
        Answer::Refuse(reply)
    }

    /// Greylisting at RCPT (RFC 6647): when a stage's action is greylist,
    /// the store decides the triplet. Exempt recipients are never
    /// greylisted; a dry run records the triplet but accepts; store trouble
    /// accepts (fail open).
    async fn greylist(&mut self, rcpt: String) -> Answer {
        let config = &self.shared.config;
        let first_reply = self.eval.greylist().and_then(|r| r.reply.clone());
        let (Some(first_reply), Some(greylist), Some(ip)) =
            (first_reply, self.shared.greylist.as_ref(), self.eval.ip())
        else {
            self.msg.recipients.push((rcpt, Disposition::Accepted));
            return Answer::Continue;
        };
        if is_exempt(&rcpt, &config.exempt_recipients) {
            self.msg.recipients.push((rcpt, Disposition::Exempt));
            return Answer::Continue;
        }
        let sender = self.eval.sender().map_or("", |s| s.address());
        let triplet = greylist.triplet(ip, sender, &rcpt);
        let checked = greylist.check(&triplet).await;
        tracing::debug!(
            triplet = %logline::escaped(&triplet.to_string(), logline::MAX_FIELD),
            greylist = checked.as_str(),
            "greylist"
        );
        let retry_in = match checked {
            Checked::Decided(Decision::New { retry_in } | Decision::Early { retry_in }) => retry_in,
            passed => {
                let note = match passed {
                    Checked::Decided(Decision::Passed { delayed }) => {
                        self.msg.delayed = Some(self.msg.delayed.unwrap_or_default().max(delayed));
                        format!("greylisting passed after {}", wait_text(delayed))
                    }
                    Checked::Decided(Decision::AutoAllowed) => {
                        "greylisting skipped: the client network is auto-allowed".to_owned()
                    }
                    Checked::Decided(Decision::Allowed) => {
                        "greylisting skipped: the client network is allowed".to_owned()
                    }
                    Checked::StoreTrouble => {
                        "greylisting skipped: the store is unavailable".to_owned()
                    }
                    _ => "greylisting passed before".to_owned(),
                };
                self.eval.greylist_passed(&note);
                self.msg.recipients.push((rcpt, Disposition::Accepted));
                return Answer::Continue;
            }
        };
        let reply = first_reply.with_retry(retry_in);
        if config.dry_run {
            tracing::info!(
                rcpt = %logline::escaped(&rcpt, logline::MAX_FIELD),
                would = %reply,
                "dry run: recipient accepted"
            );
            self.msg.recipients.push((rcpt, Disposition::DryRun));
            return Answer::Continue;
        }
        self.msg.recipients.push((rcpt, Disposition::Greylisted));
        Answer::Refuse(reply)
    }

    /// A header of the message: remembers forged `Authentication-Results`.
    pub fn header(&mut self, name: &str, value: &str) {
        if name.eq_ignore_ascii_case("Authentication-Results") {
            self.msg.ar_count += 1;
            if super::fields::authserv_id(value)
                .is_some_and(|id| id.eq_ignore_ascii_case(&self.authserv_id))
            {
                self.msg.forged_ar.push(self.msg.ar_count);
            }
        }
    }

    /// End of message: the message will be delivered. Its SPF result for
    /// the MAIL FROM identity is made sure of (an earlier stage may have
    /// decided for recipients that were exempt or in dry run), the log
    /// line is written, and the header edits are returned in the order to
    /// apply them: forged `Authentication-Results` removed from the last
    /// to the first (RFC 8601 §5), then ours inserted bottom-most first so
    /// that the first ends on top.
    pub async fn end_of_message(&mut self) -> Vec<HeaderEdit> {
        let step = Box::pin(self.eval.complete());
        dns_step(self.metrics.as_deref(), Command::Eom, step).await;
        let eval = self.eval.evaluation();
        let config = &self.shared.config;
        let sender = self.eval.sender().map_or("", |s| s.address());
        let headers = tollgate_checks::headers::message_headers(
            &eval,
            sender,
            &self.authserv_id,
            &config.checks.receiver,
            config.headers.received_spf,
            config.headers.authentication_results,
        );
        let mut edits: Vec<HeaderEdit> = self
            .msg
            .forged_ar
            .iter()
            .rev()
            .map(|i| HeaderEdit::RemoveAuthenticationResults(*i))
            .collect();
        if let (Some(delayed), true) = (self.msg.delayed, config.greylist.header) {
            // Inserted first, so it ends below our other headers.
            let value = format!(
                "delayed {} seconds by tollgate at {} (greylisting, RFC 6647)",
                delayed.as_secs(),
                config.checks.receiver
            );
            edits.push(HeaderEdit::InsertOnTop(
                "X-Greylist",
                fold("X-Greylist", &value),
            ));
        }
        edits.extend(
            headers
                .iter()
                .rev()
                .map(|(name, value)| HeaderEdit::InsertOnTop(name, fold(name, value))),
        );
        self.log_message("delivered", &eval);
        self.end_message();
        edits
    }

    /// RSET or an aborted transaction.
    pub fn abort(&mut self) {
        self.finish_message("aborted");
        self.end_message();
    }

    fn end_message(&mut self) {
        self.msg = Message::default();
        self.eval.reset_message();
    }

    /// Writes the one info line of a message, once.
    fn finish_message(&mut self, outcome: &str) {
        if self.msg.open {
            let eval = self.eval.evaluation();
            self.log_message(outcome, &eval);
        }
    }

    fn log_message(&mut self, outcome: &str, eval: &tollgate_checks::Evaluation) {
        if !std::mem::take(&mut self.msg.open) {
            return;
        }
        let queries = self.eval.take_queries();
        let cancelled = self.eval.take_cancelled();
        let verdict = eval.verdict();
        if let Some(metrics) = &self.metrics {
            metrics.record_message(eval, &verdict, self.shared.config.dry_run);
        }
        logline::message(&logline::MessageLine {
            ip: self.eval.ip(),
            port: self.client_port,
            helo: self.eval.helo_name(),
            sender: self.eval.sender().map(|s| s.address()),
            recipients: &self.msg.recipients,
            queue_id: self.msg.queue_id.as_deref(),
            eval,
            verdict: &verdict,
            dry_run: self.shared.config.dry_run,
            dns_queries: queries,
            dns_cancelled: cancelled,
            outcome,
        });
    }

    /// The connection closes.
    pub fn close(&mut self) {
        self.finish_message("closed");
        self.eval.close();
    }
}

/// Whether a recipient is exempt: its local part, or the whole address,
/// is listed (RFC 5321 §4.5.1: postmaster is case-insensitive).
pub(crate) fn is_exempt(rcpt: &str, exempt: &[String]) -> bool {
    let bare = tollgate_checks::strip_brackets(rcpt);
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
