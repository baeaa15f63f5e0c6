//! The one per-connection evaluator: it owns the order of the stages for
//! the milter and `tollgate check` alike, so the two cannot disagree.
//!
//! It is told what the SMTP conversation revealed — [`connect`], [`helo`],
//! [`mail`], [`complete`] (the message will be delivered) — and answers
//! what is known so far: the reports ([`evaluation`]), the deciding report
//! ([`decisive`]), the skip. Lookups start as soon as their input is known
//! (the FCrDNS lookup at CONNECT, in the background) and are collected in
//! stage order, so cheapest-first decisions and early stop keep their
//! meaning. Each command's DNS time is bounded by the time budget
//! (`dns.time_budget`), across all the stages the command runs.
//!
//! In [`Mode::StopEarly`] (the milter) a stage whose action is reject or
//! tempfail ends the evaluation, and a skip ends it before it starts; in
//! [`Mode::All`] (`tollgate check`) every enabled stage runs. A stage whose
//! action is greylist does not end it: the milter decides greylisting at
//! RCPT ([`greylist`](Evaluator::greylist)), where the triplet is known,
//! and a later stage that refuses comes first.
//!
//! [`connect`]: Evaluator::connect
//! [`helo`]: Evaluator::helo
//! [`mail`]: Evaluator::mail
//! [`complete`]: Evaluator::complete
//! [`evaluation`]: Evaluator::evaluation
//! [`decisive`]: Evaluator::decisive

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tollgate_dns::Lookup;

use crate::memo::Memo;
use crate::{
    Checker, Evaluation, ListKind, MailFrom, Mode, Outcome, SkipReason, Stage, StageReport, Verdict,
};

/// The evaluation of one SMTP connection and its current message.
#[derive(Debug)]
pub struct Evaluator<L> {
    checker: Arc<Checker<L>>,
    /// This connection's answers: one question asked once.
    memo: Arc<Memo<L>>,
    mode: Mode,
    /// The client address; `None` for a local client (skipped).
    ip: Option<IpAddr>,
    /// The connection's skip: no address, trusted network, listed HELO.
    conn_skip: Option<StageReport>,
    /// The DNS list lookups, started at CONNECT.
    dnsbl: Option<JoinHandle<StageReport>>,
    /// The fcrdns lookup, started at CONNECT.
    fcrdns: Option<JoinHandle<StageReport>>,
    /// The HELO name, once given.
    helo: Option<String>,
    /// Reports of the connection stages, in stage order.
    conn: Vec<StageReport>,
    /// The current message's sender, once given.
    sender: Option<MailFrom>,
    /// The message's skip: authenticated sender, listed sender domain.
    msg_skip: Option<StageReport>,
    /// A trusted forwarder the client passes (checked once per
    /// connection, at the first MAIL FROM): the MAIL FROM stages are not
    /// enforced.
    forwarder: Option<Option<StageReport>>,
    /// Reports of the message stages.
    msg: Vec<StageReport>,
    /// DNS queries not yet handed out by [`take_queries`](Self::take_queries).
    queries: u32,
    /// Lookups started ahead of the stages that need them; their answers
    /// land in the memo.
    ahead: Vec<JoinHandle<()>>,
    /// Lookups started ahead that an early stop made useless, cancelled.
    cancelled: u32,
    /// The current message passed greylisting (for some recipient): its
    /// greylist reports count as tag, with this note.
    greylist_passed: Option<String>,
}

impl<L: Lookup + 'static> Evaluator<L> {
    /// An evaluator for a new connection, with `checker`'s settings.
    pub fn new(checker: Arc<Checker<L>>, mode: Mode) -> Self {
        Evaluator {
            memo: Arc::new(Memo::new(Arc::clone(&checker))),
            checker,
            mode,
            ip: None,
            conn_skip: None,
            dnsbl: None,
            fcrdns: None,
            helo: None,
            conn: Vec::new(),
            sender: None,
            msg_skip: None,
            forwarder: None,
            msg: Vec::new(),
            queries: 0,
            ahead: Vec::new(),
            cancelled: 0,
            greylist_passed: None,
        }
    }

    /// The checker (and so the settings) this evaluator uses.
    pub fn checker(&self) -> &Checker<L> {
        &self.checker
    }

    /// CONNECT: the skip for the client address, and the FCrDNS lookup
    /// started in the background (it is collected at HELO or MAIL).
    pub fn connect(&mut self, ip: Option<IpAddr>) {
        self.ip = ip;
        self.conn_skip = match ip {
            None => Some(StageReport::skipped(SkipReason::NoClientAddress)),
            Some(ip) => self.checker.skip_client(ip, None),
        };
        let Some(ip) = ip else { return };
        if self.stops_at_skip() {
            return;
        }
        let deadline = self.checker.deadline();
        if self.enabled(Stage::Dnsbl) && !self.checker.settings().dnsbl.is_empty() {
            let memo = Arc::clone(&self.memo);
            self.dnsbl = Some(tokio::spawn(async move {
                memo.checker().dnsbl_with(&*memo, ip, deadline).await
            }));
        }
        if self.enabled(Stage::Fcrdns) {
            let memo = Arc::clone(&self.memo);
            self.fcrdns = Some(tokio::spawn(async move {
                memo.checker().fcrdns_with(&*memo, ip, deadline).await
            }));
        }
    }

    /// HELO/EHLO: the skip for listed HELO names, helo-syntax, the fcrdns
    /// verdict, helo-dns and spf-helo. A repeated HELO with the same name
    /// (EHLO after STARTTLS) keeps the results; a different name replaces
    /// the HELO results, and a skip earned by the old name.
    pub async fn helo(&mut self, helo: &str) {
        if self.helo.as_deref() == Some(helo) {
            return;
        }
        self.helo = Some(helo.to_owned());
        // The connection stages stay; the HELO stages are redone.
        self.conn
            .retain(|r| matches!(r.stage, Stage::Dnsbl | Stage::Fcrdns | Stage::RdnsName));
        if matches!(
            self.conn_skip.as_ref().and_then(|r| r.skip.as_ref()),
            Some(SkipReason::HeloListed { .. })
        ) {
            self.conn_skip = None;
        }
        let Some(ip) = self.ip else { return };
        if self.stops_at_skip() {
            return;
        }
        if let Some(report) = self.checker.skip_helo(helo) {
            self.conn_skip = Some(report);
            if self.mode == Mode::StopEarly {
                return;
            }
        }
        let deadline = self.checker.deadline();
        self.start_helo_lookups(ip, helo);
        if self.enabled(Stage::HeloSyntax) {
            let report = self.checker.helo_syntax(ip, helo);
            self.push_conn(report);
        }
        self.collect_connect().await;
        if self.stops_at_skip() || self.stopped() {
            self.cancel_ahead();
            return;
        }
        if !self.stopped() && self.enabled(Stage::HeloDns) {
            let report = self
                .checker
                .helo_dns_with(&*self.memo, ip, helo, deadline)
                .await;
            self.push_conn(report);
        }
        if !self.stopped() && self.enabled(Stage::SpfHelo) {
            let report = self
                .checker
                .spf_helo_with(&*self.memo, ip, helo, deadline)
                .await;
            self.push_conn(report);
        }
    }

    /// MAIL FROM: a new message. The skip for authenticated senders and
    /// listed sender domains, the fcrdns verdict for a client that gave
    /// no HELO, then spf-mailfrom unless an earlier stage decided.
    pub async fn mail(&mut self, sender: &str, auth: Option<&str>) {
        self.reset_message();
        let sender = MailFrom::parse(sender);
        let msg_skip = match self.ip {
            Some(ip) => self
                .checker
                .skip_client(ip, auth)
                .or_else(|| self.checker.skip_sender(&sender)),
            None => None,
        };
        self.sender = Some(sender);
        let Some(ip) = self.ip else { return };
        if self.stops_at_skip() {
            return;
        }
        if msg_skip.is_some() {
            self.msg_skip = msg_skip;
            if self.mode == Mode::StopEarly {
                return;
            }
        }
        self.start_mail_lookups();
        self.collect_connect().await;
        if self.stops_at_skip() {
            self.cancel_ahead();
            return;
        }
        self.check_forwarder(ip).await;
        let enforced = self.forwarder().is_none() || self.mode == Mode::All;
        if !self.stopped() && enforced {
            self.run_sender_domain().await;
        }
        if !self.stopped() && enforced {
            self.run_mailfrom(ip).await;
        }
        if self.stopped() {
            self.cancel_ahead();
        }
    }

    /// sender-domain, for a sender that is not the null sender.
    async fn run_sender_domain(&mut self) {
        if !self.enabled(Stage::SenderDomain) {
            return;
        }
        // Like Postfix's reject_unknown_sender_domain: only an address
        // with a domain is checked (not the null sender, not `<alice>`).
        let Some(sender) = self.sender.as_ref().filter(|s| s.has_domain()) else {
            return;
        };
        let deadline = self.checker.deadline();
        let mut report = self
            .checker
            .sender_domain_with(&*self.memo, sender, deadline)
            .await;
        if let Some(why) = self.forwarder().and_then(|r| r.skip.as_ref()) {
            not_enforced(&mut report, &why.to_string());
        }
        self.queries += report.dns_queries;
        trace_report(&report);
        self.msg.push(report);
    }

    /// At HELO: the HELO name's address (in the client's family) for
    /// helo-dns and SPF `a`, and its SPF record, asked now.
    fn start_helo_lookups(&mut self, ip: IpAddr, helo: &str) {
        if !self.checker.settings().parallel_lookups || !crate::helo::is_fqdn(helo) {
            return;
        }
        let name = helo.strip_suffix('.').unwrap_or(helo).to_owned();
        if self.enabled(Stage::HeloDns) {
            let (memo, name) = (Arc::clone(&self.memo), name.clone());
            self.ahead(async move {
                if ip.is_ipv4() {
                    let _ = memo.lookup_a(&name).await;
                } else {
                    let _ = memo.lookup_aaaa(&name).await;
                }
            });
        }
        if self.enabled(Stage::SpfHelo) {
            let memo = Arc::clone(&self.memo);
            self.ahead(async move {
                let _ = memo.lookup_txt(&name).await;
            });
        }
    }

    /// At MAIL FROM: the sender domain's SPF record, asked now.
    fn start_mail_lookups(&mut self) {
        let Some(sender) = self.sender.as_ref() else {
            return;
        };
        if !self.checker.settings().parallel_lookups
            || sender.is_null()
            || self.skip().is_some()
            || sender.domain().is_empty()
        {
            return;
        }
        let domain = sender.domain().to_owned();
        if self.enabled(Stage::SenderDomain) && sender.has_domain() {
            let (memo, domain) = (Arc::clone(&self.memo), domain.clone());
            self.ahead(async move {
                let _ = memo.lookup_mx(&domain).await;
            });
        }
        if self.enabled(Stage::SpfMailfrom) {
            let memo = Arc::clone(&self.memo);
            self.ahead(async move {
                let _ = memo.lookup_txt(&domain).await;
            });
        }
    }

    /// Starts a lookup in the background.
    fn ahead(&mut self, lookup: impl Future<Output = ()> + Send + 'static) {
        self.ahead.retain(|task| !task.is_finished());
        self.ahead.push(tokio::spawn(lookup));
    }

    /// Cancels the lookups started ahead that are still running, and
    /// counts them.
    fn cancel_ahead(&mut self) {
        for task in self.ahead.drain(..) {
            if !task.is_finished() {
                task.abort();
                self.cancelled += 1;
            }
        }
    }

    /// An authenticated session without a MAIL FROM (`tollgate check`
    /// with a login name): the skip it earns.
    pub fn authenticated(&mut self, auth: &str) {
        if let Some(ip) = self.ip
            && let Some(report) = self.checker.skip_client(ip, Some(auth))
        {
            self.msg_skip.get_or_insert(report);
        }
    }

    /// The message will be delivered (to an exempt recipient, or in dry
    /// run) although an earlier stage decided: run spf-mailfrom now if it
    /// has not run, once, so that the message carries tollgate's own
    /// `Received-SPF` for the MAIL FROM identity above any the client
    /// wrote (OpenDMARC trusts the topmost one). Skipped mail is left
    /// alone: it is not evaluated at all.
    pub async fn complete(&mut self) {
        let Some(ip) = self.ip else { return };
        if self.skip().is_some() || self.sender.is_none() {
            return;
        }
        self.collect_connect().await;
        if self.report(Stage::SpfMailfrom).is_none() {
            self.run_mailfrom(ip).await;
        }
    }

    /// Collects every lookup started in the background (for a report of
    /// a connection that gave neither HELO nor MAIL FROM).
    pub async fn settle(&mut self) {
        self.collect_connect().await;
    }

    /// Ends the current message (after its end, RSET or a new MAIL FROM).
    pub fn reset_message(&mut self) {
        self.sender = None;
        self.msg_skip = None;
        self.msg.clear();
        self.greylist_passed = None;
    }

    /// The current message passed greylisting (the store accepted a
    /// recipient's triplet): its greylist reports count as tag from now
    /// on, with `note` (e.g. `greylisting passed after 5 minutes`) added
    /// to their detail. A stage that passed greylisting does not stop a
    /// later one from refusing (RFC 6647 leaves the other checks alone).
    pub fn greylist_passed(&mut self, note: &str) {
        self.greylist_passed = Some(note.to_owned());
    }

    /// Stops the background lookups (the connection closes).
    pub fn close(&mut self) {
        for task in [self.dnsbl.take(), self.fcrdns.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        self.cancel_ahead();
    }

    /// The trusted forwarder the client passes, once per connection.
    async fn check_forwarder(&mut self, ip: IpAddr) {
        if self.forwarder.is_some() || self.checker.settings().skip.forwarders.is_empty() {
            return;
        }
        let deadline = self.checker.deadline();
        let found = self.checker.forwarder_with(&*self.memo, ip, deadline).await;
        if let Some(report) = &found {
            self.queries += report.dns_queries;
            trace_report(report);
        }
        self.forwarder = Some(found);
    }

    async fn run_mailfrom(&mut self, ip: IpAddr) {
        if !self.enabled(Stage::SpfMailfrom) {
            return;
        }
        let Some(sender) = self.sender.as_ref() else {
            return;
        };
        let helo = self.helo.as_deref().unwrap_or("");
        let helo_spf = self
            .conn
            .iter()
            .find(|r| r.stage == Stage::SpfHelo)
            .and_then(|r| r.spf.as_ref());
        let deadline = self.checker.deadline();
        let report = self
            .checker
            .spf_mailfrom_with(&*self.memo, ip, helo, sender, helo_spf, deadline)
            .await;
        let mut report = report;
        if let Some(why) = self.forwarder().and_then(|r| r.skip.as_ref()) {
            not_enforced(&mut report, &why.to_string());
        }
        self.queries += report.dns_queries;
        trace_report(&report);
        self.msg.push(report);
    }

    /// The lookups started at CONNECT, collected in stage order: dnsbl
    /// (an allow-list hit exempts the client like a skip), fcrdns, then
    /// what depends on it (a listed confirmed name, rdns-name).
    async fn collect_connect(&mut self) {
        if let Some(task) = self.dnsbl.take() {
            match task.await {
                Ok(report) => {
                    let allowed = (report.outcome == Outcome::Allowed)
                        .then(|| report.lists.iter().find(|h| h.kind == ListKind::Allow))
                        .flatten()
                        .map(|hit| hit.zone.clone());
                    self.push_conn(report);
                    if let (Some(zone), Some(ip)) = (allowed, self.ip) {
                        let reason = SkipReason::AllowListed {
                            ip: crate::canonical(ip),
                            zone,
                        };
                        self.conn_skip = Some(StageReport::skipped(reason));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "dnsbl lookup task failed"),
            }
        }
        if self.stops_at_skip() || self.stopped() {
            // What fcrdns would find no longer matters.
            if let Some(task) = self.fcrdns.take() {
                task.abort();
                self.cancelled += 1;
            }
            return;
        }
        let Some(task) = self.fcrdns.take() else {
            return;
        };
        let report = match task.await {
            Ok(report) => report,
            Err(e) => {
                tracing::warn!(error = %e, "fcrdns lookup task failed");
                return;
            }
        };
        let confirmed = report
            .fcrdns
            .as_ref()
            .and_then(|i| i.confirmed.as_deref())
            .and_then(|name| self.checker.settings().skip.client_name(name));
        let rdns = self.checker.rdns_name(&report);
        self.push_conn(report);
        if let Some(reason) = confirmed {
            self.conn_skip = Some(StageReport::skipped(reason));
            if self.mode == Mode::StopEarly {
                return;
            }
        }
        if !self.stopped() && self.enabled(Stage::RdnsName) {
            self.push_conn(rdns);
        }
    }

    /// Adds a connection stage's report in stage order (a second HELO's
    /// helo-syntax goes before the fcrdns report kept from the first).
    fn push_conn(&mut self, report: StageReport) {
        self.queries += report.dns_queries;
        trace_report(&report);
        let at = self.conn.partition_point(|r| r.stage <= report.stage);
        self.conn.insert(at, report);
    }
}

impl<L> Evaluator<L> {
    fn enabled(&self, stage: Stage) -> bool {
        self.checker.settings().policy.enabled(stage)
    }

    /// Whether a connection skip ends the evaluation before it starts.
    fn stops_at_skip(&self) -> bool {
        self.mode == Mode::StopEarly && self.conn_skip.is_some()
    }

    /// Whether a decisive report ends the evaluation.
    fn stopped(&self) -> bool {
        self.mode == Mode::StopEarly && self.decisive().is_some()
    }

    /// The client address, if the MTA gave one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// The HELO name, once given.
    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// The current message's sender, once given.
    pub fn sender(&self) -> Option<&MailFrom> {
        self.sender.as_ref()
    }

    /// The skip that exempts the connection or the message, if any.
    pub fn skip(&self) -> Option<&StageReport> {
        self.conn_skip.as_ref().or(self.msg_skip.as_ref())
    }

    /// The trusted forwarder the client passes, if any: its MAIL FROM
    /// stages are not enforced.
    pub fn forwarder(&self) -> Option<&StageReport> {
        self.forwarder.as_ref().and_then(Option::as_ref)
    }

    /// The reports of the stages that ran (not the skip), in stage order.
    pub fn reports(&self) -> impl Iterator<Item = &StageReport> {
        self.conn.iter().chain(self.msg.iter())
    }

    /// The report of a stage, if it ran.
    pub fn report(&self, stage: Stage) -> Option<&StageReport> {
        self.reports().find(|r| r.stage == stage)
    }

    /// The first report whose action refuses (reject or tempfail).
    pub fn decisive(&self) -> Option<&StageReport> {
        self.reports().find(|r| r.is_decisive())
    }

    /// The first report that asks for greylisting, unless the message is
    /// skipped or already passed greylisting: the milter asks the store at
    /// RCPT, where the triplet is known. A refusal
    /// ([`refusal`](Self::refusal)) comes first.
    pub fn greylist(&self) -> Option<&StageReport> {
        if self.skip().is_some() || self.greylist_passed.is_some() {
            return None;
        }
        self.reports().find(|r| r.is_greylist())
    }

    /// Whether a refusal known now is final: once MAIL FROM is known, or
    /// before it when no sender domain could still exempt the message
    /// (`skip.sender_domains` is empty). SMTP AUTH is not waited for:
    /// answering before MAIL FROM (`reject_at: earliest`) belongs on a port
    /// where clients do not authenticate.
    pub fn refusal_is_final(&self) -> bool {
        self.sender.is_some() || self.checker.settings().skip.sender_domains.is_empty()
    }

    /// The refusal to give, if any: none when skipped.
    pub fn refusal(&self) -> Option<&StageReport> {
        match self.skip() {
            Some(_) => None,
            None => self.decisive(),
        }
    }

    /// Everything known so far: the skip, then the stages in order.
    pub fn evaluation(&self) -> Evaluation {
        let stages = self
            .skip()
            .into_iter()
            .chain(self.forwarder())
            .chain(self.reports())
            .cloned()
            .map(|mut r| {
                if let (true, Some(note)) = (r.is_greylist(), &self.greylist_passed) {
                    r.action = crate::Action::Tag;
                    r.reply = None;
                    r.detail.push_str(&format!(" ({note})"));
                }
                r
            });
        Evaluation {
            stages: stages.collect(),
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Verdict {
        self.evaluation().verdict()
    }

    /// The DNS queries made since the last call.
    pub fn take_queries(&mut self) -> u32 {
        std::mem::take(&mut self.queries)
    }

    /// The lookups started ahead and cancelled by an early stop since the
    /// last call.
    pub fn take_cancelled(&mut self) -> u32 {
        std::mem::take(&mut self.cancelled)
    }
}

impl<L> Drop for Evaluator<L> {
    fn drop(&mut self) {
        for task in [self.dnsbl.take(), self.fcrdns.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        for task in self.ahead.drain(..) {
            task.abort();
        }
    }
}

/// A report whose result is shown but not acted on (a trusted
/// forwarder's MAIL FROM stages).
fn not_enforced(report: &mut StageReport, why: &str) {
    report.action = crate::Action::Tag;
    report.reply = None;
    report.detail.push_str(&format!(" (not enforced: {why})"));
}

fn trace_report(report: &StageReport) {
    tracing::debug!(
        stage = report.stage.as_str(),
        result = report.outcome.as_str(),
        action = report.action.as_str(),
        detail = %report.detail.escape_debug(),
        dns_queries = report.dns_queries,
        "stage"
    );
}
