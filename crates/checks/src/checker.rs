//! [`Checker`]: each stage as a call of its own, over a [`Lookup`], within
//! a deadline (the time budget of the SMTP command that runs it), counting
//! its DNS queries even when the deadline cuts it short; and the shapes of
//! what they produce: [`Evaluation`] (the reports of the stages that ran)
//! and [`Verdict`]. The order of the stages is the [`Evaluator`]'s.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tollgate_dns::Lookup;
use tollgate_spf::{Identity, Options, RecordCache, Spf, SpfOutput, SpfResult};

use crate::count::within;
use crate::dnsbl::DnsList;
use crate::reply::{Reply, spf_enhanced, spf_text};
use crate::skip::{SkipLists, SkipReason};
use crate::{
    Action, DEFAULT_TIME_BUDGET, Enhanced, Evaluation, Evaluator, MailFrom, Outcome, Policy, Stage,
    StageReport, canonical, dnsbl, fcrdns, helo, sender_domain,
};

/// Everything the checks need to know about this host and its policy.
#[derive(Clone, Debug)]
pub struct Settings {
    /// What each stage's results lead to.
    pub policy: Policy,
    /// What is exempt from checks.
    pub skip: SkipLists,
    /// The names this host answers to; a HELO claiming one is forged
    /// (matched by [`find_name`](crate::find_name): `.example.com` is every name under it).
    pub local_names: Vec<String>,
    /// HELO names refused outright (matched like `local_names`).
    pub refused_helo: Vec<String>,
    /// This host's name, for `receiver=` and the SPF `r` macro.
    pub receiver: String,
    /// DNS block and allow lists (RFC 5782), asked at CONNECT.
    pub dnsbl: Vec<DnsList>,
    /// The most DNS time one SMTP command (CONNECT, HELO, MAIL FROM, end
    /// of message) may take across all the stages it runs; what is not
    /// answered by then is a temperror.
    pub time_budget: Duration,
    /// Start independent lookups as soon as their inputs are known (the
    /// HELO name's address and SPF record at HELO, the sender domain's SPF
    /// record and MX at MAIL FROM), collected in stage order; lookups an
    /// early stop makes useless are cancelled.
    pub parallel_lookups: bool,
    /// The greylisting delay, for what a first attempt is told.
    pub greylist_delay: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            policy: Policy::default(),
            skip: SkipLists::default(),
            local_names: Vec::new(),
            refused_helo: Vec::new(),
            receiver: "localhost".to_owned(),
            dnsbl: Vec::new(),
            time_budget: DEFAULT_TIME_BUDGET,
            parallel_lookups: true,
            greylist_delay: Duration::from_secs(300),
        }
    }
}

/// The client and what it said so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// The client address.
    pub ip: IpAddr,
    /// The HELO/EHLO argument, once given.
    pub helo: Option<String>,
    /// The MAIL FROM address, once given (empty for the null sender).
    pub sender: Option<String>,
    /// The SASL login name, when the client authenticated.
    pub auth: Option<String>,
}

/// Whether [`Checker::run`] stops at the first decisive stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Stop at the first reject or tempfail, as the milter does.
    StopEarly,
    /// Run every enabled stage, to show everything (`tollgate check`).
    All,
}

/// Runs the stages against a [`Lookup`].
#[derive(Debug)]
pub struct Checker<L> {
    lookup: L,
    spf_options: Options,
    settings: Settings,
    /// SPF records parsed once and shared by every evaluation.
    records: Arc<RecordCache>,
}

/// How many parsed SPF records a checker keeps: the HELO names', senders'
/// and includes' records of a busy receiver's regular clients.
const PARSED_RECORDS: usize = 1024;

impl<L> Checker<L> {
    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The lookup in use.
    pub fn lookup(&self) -> &L {
        &self.lookup
    }
}

impl<L: Lookup> Checker<L> {
    /// A checker over `lookup`.
    pub fn new(lookup: L, settings: Settings) -> Self {
        let options = Options {
            receiver: settings.receiver.clone(),
            ..Options::default()
        };
        Checker::with_spf_options(lookup, settings, options)
    }

    /// Like [`new`](Self::new), with full SPF options (tracing, limits).
    pub fn with_spf_options(lookup: L, settings: Settings, spf_options: Options) -> Self {
        Checker {
            lookup,
            spf_options,
            settings,
            records: Arc::new(RecordCache::new(PARSED_RECORDS)),
        }
    }

    /// The deadline of an SMTP command that starts now: its time budget.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.settings.time_budget
    }

    /// skip at CONNECT (trusted networks) and after AUTH.
    pub fn skip_client(&self, ip: IpAddr, auth: Option<&str>) -> Option<StageReport> {
        let skip = &self.settings.skip;
        skip.client(ip)
            .or_else(|| skip.auth(auth))
            .map(StageReport::skipped)
    }

    /// skip at HELO (listed HELO names).
    pub fn skip_helo(&self, helo: &str) -> Option<StageReport> {
        self.settings.skip.helo(helo).map(StageReport::skipped)
    }

    /// skip at MAIL (listed sender domains).
    pub fn skip_sender(&self, sender: &MailFrom) -> Option<StageReport> {
        if sender.is_null() {
            return None;
        }
        self.settings
            .skip
            .sender_domain(sender.domain())
            .map(StageReport::skipped)
    }

    /// helo-syntax.
    pub fn helo_syntax(&self, ip: IpAddr, helo: &str) -> StageReport {
        let finding = helo::syntax(
            helo,
            ip,
            &self.settings.local_names,
            &self.settings.refused_helo,
        );
        self.report(
            Stage::HeloSyntax,
            finding.outcome,
            finding.detail,
            finding.enhanced,
            0,
        )
    }

    /// fcrdns, within `deadline`.
    pub async fn fcrdns(&self, ip: IpAddr, deadline: Instant) -> StageReport {
        self.fcrdns_with(&self.lookup, ip, deadline).await
    }

    pub(crate) async fn fcrdns_with<M: Lookup>(
        &self,
        lookup: &M,
        ip: IpAddr,
        deadline: Instant,
    ) -> StageReport {
        let (found, queries) = within(lookup, deadline, async |l| fcrdns::check(l, ip).await).await;
        let Some(finding) = found else {
            let detail = format!(
                "reverse DNS of {} could not be checked: {}",
                canonical(ip),
                self.budget_text()
            );
            let (outcome, enhanced) = (Outcome::TempError, Enhanced::REVERSE_DNS);
            return self.report(Stage::Fcrdns, outcome, detail, enhanced, queries);
        };
        let mut report = self.report(
            Stage::Fcrdns,
            finding.outcome,
            finding.detail,
            Enhanced::REVERSE_DNS,
            queries,
        );
        report.fcrdns = Some(finding.info);
        report
    }

    /// dnsbl over the configured lists, asked at once, within `deadline`.
    pub(crate) async fn dnsbl_with<M: Lookup>(
        &self,
        lookup: &M,
        ip: IpAddr,
        deadline: Instant,
    ) -> StageReport {
        let lists = &self.settings.dnsbl;
        let (found, queries) =
            within(lookup, deadline, async |l| dnsbl::check(l, ip, lists).await).await;
        let Some(finding) = found else {
            let detail = format!(
                "DNS lists could not be asked about {}: {}",
                canonical(ip),
                self.budget_text()
            );
            let enhanced = Enhanced::DNS_FAILURE;
            return self.report(Stage::Dnsbl, Outcome::TempError, detail, enhanced, queries);
        };
        let enhanced = match finding.outcome {
            Outcome::TempError => Enhanced::DNS_FAILURE,
            _ => Enhanced::NOT_AUTHORIZED,
        };
        let mut report = self.report(
            Stage::Dnsbl,
            finding.outcome,
            finding.detail,
            enhanced,
            queries,
        );
        report.lists = finding.hits;
        report
    }

    /// sender-domain for the MAIL FROM domain, within `deadline`: does it
    /// exist, can it receive mail (RFC 7505 null MX, routable MX hosts)?
    pub(crate) async fn sender_domain_with<M: Lookup>(
        &self,
        lookup: &M,
        sender: &MailFrom,
        deadline: Instant,
    ) -> StageReport {
        let domain = sender.domain();
        let (found, queries) = within(lookup, deadline, async |l| {
            sender_domain::check(l, domain).await
        })
        .await;
        let Some(finding) = found else {
            let detail = format!(
                "sender domain {domain} could not be checked: {}",
                self.budget_text()
            );
            let enhanced = Enhanced::DNS_FAILURE;
            return self.report(
                Stage::SenderDomain,
                Outcome::TempError,
                detail,
                enhanced,
                queries,
            );
        };
        let enhanced = match finding.outcome {
            Outcome::NullMx => Enhanced::SENDER_NULL_MX,
            Outcome::TempError => Enhanced::DNS_FAILURE,
            _ => Enhanced::BAD_SENDER_DOMAIN,
        };
        let mut report = self.report(
            Stage::SenderDomain,
            finding.outcome,
            finding.detail,
            enhanced,
            queries,
        );
        report.notes = finding.notes;
        report
    }

    /// rdns-name, from the fcrdns report: is the forward-confirmed name a
    /// real one, or a generic end-user pool name? No DNS of its own.
    pub fn rdns_name(&self, fcrdns: &StageReport) -> StageReport {
        let info = fcrdns.fcrdns.as_ref();
        let ip = info.map_or_else(|| "the client".to_owned(), |i| i.ip.to_string());
        let (outcome, detail) = match info.and_then(|i| i.confirmed.as_deref()) {
            None => (
                Outcome::None,
                format!("{ip} has no forward-confirmed reverse name"),
            ),
            Some(name) => match info.and_then(|i| i.generic.as_deref()) {
                Some(why) => (
                    Outcome::Generic,
                    format!(
                        "reverse DNS name {name} of {ip} looks like an end-user pool name ({why}); \
                         a mail server needs a name of its own"
                    ),
                ),
                None => (
                    Outcome::Pass,
                    format!("reverse DNS name {name} of {ip} is not a generic pool name"),
                ),
            },
        };
        self.report(Stage::RdnsName, outcome, detail, Enhanced::REVERSE_DNS, 0)
    }

    /// The first trusted forwarder (`skip.forwarders`) whose SPF record the
    /// client passes, checked within `deadline`.
    pub(crate) async fn forwarder_with<M: Lookup>(
        &self,
        lookup: &M,
        ip: IpAddr,
        deadline: Instant,
    ) -> Option<StageReport> {
        for domain in &self.settings.skip.forwarders {
            let sender = MailFrom::parse(&format!("postmaster@{domain}"));
            let out = self
                .check_spf(lookup, ip, Identity::MailFrom, &sender, domain, deadline)
                .await;
            if out.result == SpfResult::Pass {
                let reason = SkipReason::Forwarder {
                    ip: canonical(ip),
                    domain: domain.clone(),
                };
                let mut report = StageReport::skipped(reason);
                report.dns_queries = out.queries;
                return Some(report);
            }
        }
        None
    }

    /// helo-dns, within `deadline`.
    pub async fn helo_dns(&self, ip: IpAddr, helo: &str, deadline: Instant) -> StageReport {
        self.helo_dns_with(&self.lookup, ip, helo, deadline).await
    }

    pub(crate) async fn helo_dns_with<M: Lookup>(
        &self,
        lookup: &M,
        ip: IpAddr,
        helo: &str,
        deadline: Instant,
    ) -> StageReport {
        let (found, queries) =
            within(lookup, deadline, async |l| helo::dns(l, helo, ip).await).await;
        let (outcome, detail) = match found {
            Some(f) => (f.outcome, f.detail),
            None => (
                Outcome::TempError,
                format!(
                    "HELO {} could not be resolved: {}",
                    helo::shown(helo),
                    self.budget_text()
                ),
            ),
        };
        let enhanced = if outcome == Outcome::TempError {
            Enhanced::DNS_FAILURE
        } else {
            Enhanced::NOT_AUTHORIZED
        };
        self.report(Stage::HeloDns, outcome, detail, enhanced, queries)
    }

    /// spf-helo, within `deadline`.
    pub async fn spf_helo(&self, ip: IpAddr, helo: &str, deadline: Instant) -> StageReport {
        self.spf_helo_with(&self.lookup, ip, helo, deadline).await
    }

    pub(crate) async fn spf_helo_with<M: Lookup>(
        &self,
        lookup: &M,
        ip: IpAddr,
        helo: &str,
        deadline: Instant,
    ) -> StageReport {
        let sender = MailFrom::parse("");
        let out = self
            .check_spf(lookup, ip, Identity::Helo, &sender, helo, deadline)
            .await;
        self.spf_report(Stage::SpfHelo, out)
    }

    /// spf-mailfrom, within `deadline`. For the null sender the HELO
    /// identity's output is reused when given (RFC 7208 §2.4: it is the
    /// same check_host).
    pub async fn spf_mailfrom(
        &self,
        ip: IpAddr,
        helo: &str,
        sender: &MailFrom,
        helo_output: Option<&SpfOutput>,
        deadline: Instant,
    ) -> StageReport {
        self.spf_mailfrom_with(&self.lookup, ip, helo, sender, helo_output, deadline)
            .await
    }

    pub(crate) async fn spf_mailfrom_with<M: Lookup>(
        &self,
        lookup: &M,
        ip: IpAddr,
        helo: &str,
        sender: &MailFrom,
        helo_output: Option<&SpfOutput>,
        deadline: Instant,
    ) -> StageReport {
        let out = match helo_output {
            Some(out) if sender.is_null() && out.helo == helo => {
                let mut reused = out.clone();
                reused.queries = 0;
                reused
            }
            _ if sender.is_null() => {
                self.check_spf(lookup, ip, Identity::Helo, sender, helo, deadline)
                    .await
            }
            _ => {
                self.check_spf(lookup, ip, Identity::MailFrom, sender, helo, deadline)
                    .await
            }
        };
        self.spf_report(Stage::SpfMailfrom, out)
    }

    /// check_host for one identity within `deadline`; a cut is a temperror
    /// that still counts the queries made.
    async fn check_spf<M: Lookup>(
        &self,
        lookup: &M,
        ip: IpAddr,
        identity: Identity,
        sender: &MailFrom,
        helo: &str,
        deadline: Instant,
    ) -> SpfOutput {
        let spf_sender = sender.spf_sender(helo);
        let (found, queries) = within(lookup, deadline, async |l| {
            Spf::new(l, self.spf_options.clone())
                .with_record_cache(Arc::clone(&self.records))
                .check_host(ip, identity, &spf_sender, helo)
                .await
        })
        .await;
        match found {
            Some(mut out) => {
                out.queries = queries;
                out
            }
            None => SpfOutput {
                identity,
                ip: canonical(ip),
                helo: helo.to_owned(),
                // RFC 7208 §4.3: a missing local-part is "postmaster".
                sender: format!(
                    "{}@{}",
                    match spf_sender.local_part.as_str() {
                        "" => "postmaster",
                        local => local,
                    },
                    spf_sender.domain
                ),
                checked_domain: spf_sender.domain.clone(),
                result: SpfResult::TempError,
                domain: spf_sender.domain,
                mechanism: None,
                explanation: None,
                problem: Some(self.budget_text()),
                lookups: 0,
                void_lookups: 0,
                queries,
                trace: Vec::new(),
            },
        }
    }

    fn report(
        &self,
        stage: Stage,
        outcome: Outcome,
        detail: String,
        enhanced: Enhanced,
        dns_queries: u32,
    ) -> StageReport {
        let action = self.settings.policy.action(stage, outcome);
        StageReport {
            stage,
            outcome,
            reply: self.reply(action, enhanced, &detail),
            detail,
            action,
            spf: None,
            fcrdns: None,
            dns_queries,
            skip: None,
            lists: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn spf_report(&self, stage: Stage, out: SpfOutput) -> StageReport {
        let outcome = Outcome::from(out.result);
        let action = self.settings.policy.action(stage, outcome);
        // The reply's text is only made when there is a reply to give.
        let reply = (action != Action::Tag)
            .then(|| {
                let default_action = default_policy().action(stage, outcome);
                // Name the policy in the reply when it refuses what the defaults only tag.
                let policy_named = action != default_action
                    || !matches!(
                        out.result,
                        SpfResult::Fail | SpfResult::PermError | SpfResult::TempError
                    );
                let text = spf_text(&out, stage == Stage::SpfHelo, policy_named, action);
                Reply::for_action(action, spf_enhanced(out.result), &text)
            })
            .flatten();
        StageReport {
            stage,
            outcome,
            reply,
            detail: spf_detail(&out),
            action,
            dns_queries: out.queries,
            spf: Some(out),
            fcrdns: None,
            skip: None,
            lists: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The reply for an action; a greylist's says the configured delay.
    fn reply(&self, action: Action, enhanced: Enhanced, text: &str) -> Option<Reply> {
        match action {
            Action::Greylist => Some(Reply::greylisted(text, self.settings.greylist_delay)),
            _ => Reply::for_action(action, enhanced, text),
        }
    }

    fn budget_text(&self) -> String {
        format!(
            "DNS took longer than the time budget of {}s",
            self.settings.time_budget.as_secs_f64()
        )
    }
}

impl<L: Lookup + 'static> Checker<L> {
    /// Runs the stages for what the client has said, through the
    /// [`Evaluator`] the milter uses: `Mode::StopEarly` stops where the
    /// milter would, `Mode::All` shows everything.
    pub async fn run(self: &Arc<Self>, client: &Client, mode: Mode) -> Evaluation {
        let mut evaluator = Evaluator::new(Arc::clone(self), mode);
        evaluator.connect(Some(client.ip));
        if let Some(helo) = &client.helo {
            evaluator.helo(helo).await;
        }
        if let Some(sender) = &client.sender {
            evaluator.mail(sender, client.auth.as_deref()).await;
        } else if let Some(auth) = client.auth.as_deref() {
            evaluator.authenticated(auth);
        }
        evaluator.settle().await;
        evaluator.evaluation()
    }
}

/// The default policy, built once: SPF reports compare against it.
fn default_policy() -> &'static Policy {
    static DEFAULT: std::sync::LazyLock<Policy> = std::sync::LazyLock::new(Policy::default);
    &DEFAULT
}

/// A one-line account of an SPF evaluation.
fn spf_detail(out: &SpfOutput) -> String {
    let who = match out.identity {
        Identity::Helo => format!("HELO {}", out.checked_domain),
        Identity::MailFrom => out.sender.clone(),
    };
    let mut detail = match (out.result, &out.mechanism) {
        (SpfResult::None | SpfResult::PermError | SpfResult::TempError, _) => format!(
            "{who}: {}",
            out.problem.as_deref().unwrap_or("no SPF record")
        ),
        (_, Some(m)) => format!(
            "{who}: {} matched \"{m}\" in the SPF record of {}",
            out.ip, out.domain
        ),
        (_, None) => format!(
            "{who}: no mechanism matched in the SPF record of {}, the default is neutral",
            out.domain
        ),
    };
    if let Some(exp) = out.explanation.as_ref().filter(|e| e.from_domain) {
        detail.push_str(&format!("; explanation: \"{}\"", exp.text));
    }
    detail
}
