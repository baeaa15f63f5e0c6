//! The pipeline: each stage as a call of its own (the milter runs them at
//! CONNECT, HELO and MAIL and keeps their reports per connection), and
//! [`Checker::run`], which runs them in order, cheapest first, stopping at
//! the first stage whose action is reject or tempfail unless told to show
//! everything.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use tollgate_dns::Lookup;
use tollgate_spf::{Identity, Options, Spf, SpfOutput, SpfResult};

use crate::reply::{Reply, spf_enhanced, spf_text};
use crate::skip::{SkipLists, SkipReason, canonical};
use crate::{Action, Outcome, Policy, Stage, StageReport, fcrdns, helo};

/// Everything the checks need to know about this host and its policy.
#[derive(Clone, Debug)]
pub struct Settings {
    /// What each stage's results lead to.
    pub policy: Policy,
    /// What is exempt from checks.
    pub skip: SkipLists,
    /// The names this host answers to; a HELO claiming one is forged.
    pub local_names: Vec<String>,
    /// HELO names refused outright.
    pub refused_helo: Vec<String>,
    /// This host's name, for `receiver=` and the SPF `r` macro.
    pub receiver: String,
    /// The most time one stage may spend on DNS before it is a temperror.
    pub time_budget: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            policy: Policy::default(),
            skip: SkipLists::default(),
            local_names: Vec::new(),
            refused_helo: Vec::new(),
            receiver: "localhost".to_owned(),
            time_budget: Duration::from_secs(8),
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

/// The reports of the stages that ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// The reports, in the order the stages ran.
    pub stages: Vec<StageReport>,
}

/// What the milter does with the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Reject, tempfail, or tag (accept with headers).
    pub action: Action,
    /// The stage that decided; `None` when no stage refused (or `skip` when skipped).
    pub stage: Option<Stage>,
    /// The reply for reject and tempfail.
    pub reply: Option<Reply>,
}

impl Verdict {
    /// `reject`, `tempfail` or `accept`.
    pub fn action_str(&self) -> &'static str {
        match self.action {
            Action::Reject => "reject",
            Action::Tempfail => "tempfail",
            Action::Tag => "accept",
        }
    }
}

impl Evaluation {
    /// The first report whose action is reject or tempfail.
    pub fn decisive(&self) -> Option<&StageReport> {
        self.stages.iter().find(|r| r.is_decisive())
    }

    /// The skip reason, if a skip list matched.
    pub fn skipped(&self) -> Option<&SkipReason> {
        self.stages.iter().find_map(|r| r.skip.as_ref())
    }

    /// The report of a stage, if it ran.
    pub fn report(&self, stage: Stage) -> Option<&StageReport> {
        self.stages.iter().find(|r| r.stage == stage)
    }

    /// The verdict: accept when skipped, else the first decisive stage, else accept.
    pub fn verdict(&self) -> Verdict {
        if self.skipped().is_some() {
            return Verdict {
                action: Action::Tag,
                stage: Some(Stage::Skip),
                reply: None,
            };
        }
        if let Some(report) = self.decisive() {
            return Verdict {
                action: report.action,
                stage: Some(report.stage),
                reply: report.reply.clone(),
            };
        }
        Verdict {
            action: Action::Tag,
            stage: None,
            reply: None,
        }
    }

    /// DNS queries made by all stages.
    pub fn dns_queries(&self) -> u32 {
        self.stages.iter().map(|r| r.dns_queries).sum()
    }
}

/// Runs the stages against a [`Lookup`].
#[derive(Debug)]
pub struct Checker<L> {
    spf: Spf<L>,
    settings: Settings,
}

impl<L: Lookup> Checker<L> {
    /// A checker over `lookup`.
    pub fn new(lookup: L, settings: Settings) -> Self {
        let options = Options {
            receiver: settings.receiver.clone(),
            ..Options::default()
        };
        Checker {
            spf: Spf::new(lookup, options),
            settings,
        }
    }

    /// Like [`new`](Self::new), with full SPF options (tracing, limits).
    pub fn with_spf_options(lookup: L, settings: Settings, options: Options) -> Self {
        Checker {
            spf: Spf::new(lookup, options),
            settings,
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The lookup in use.
    pub fn lookup(&self) -> &L {
        self.spf.lookup()
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
    pub fn skip_sender(&self, sender: &str, helo: &str) -> Option<StageReport> {
        let parsed = tollgate_spf::Sender::parse(sender, helo);
        self.settings
            .skip
            .sender_domain(&parsed.domain)
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
        let enhanced = if finding.enhanced.is_empty() {
            "5.5.2"
        } else {
            finding.enhanced
        };
        self.report(
            Stage::HeloSyntax,
            finding.outcome,
            finding.detail,
            enhanced,
            0,
        )
    }

    /// fcrdns.
    pub async fn fcrdns(&self, ip: IpAddr) -> StageReport {
        let lookup = self.lookup();
        match self.budget(fcrdns::check(lookup, ip)).await {
            Some(finding) => {
                let mut report = self.report(
                    Stage::Fcrdns,
                    finding.outcome,
                    finding.detail,
                    "5.7.25",
                    finding.queries,
                );
                report.fcrdns = Some(finding.info);
                report
            }
            None => {
                let ip = canonical(ip);
                let detail = format!(
                    "reverse DNS of {ip} could not be checked: {}",
                    self.budget_text()
                );
                self.report(Stage::Fcrdns, Outcome::TempError, detail, "5.7.25", 0)
            }
        }
    }

    /// helo-dns.
    pub async fn helo_dns(&self, ip: IpAddr, helo: &str) -> StageReport {
        let (outcome, detail, queries) = match self.budget(helo::dns(self.lookup(), helo, ip)).await
        {
            Some(f) => (f.outcome, f.detail, f.queries),
            None => (
                Outcome::TempError,
                format!(
                    "HELO {} could not be resolved: {}",
                    helo::shown(helo),
                    self.budget_text()
                ),
                0,
            ),
        };
        let enhanced = if outcome == Outcome::TempError {
            "5.4.3"
        } else {
            "5.7.1"
        };
        self.report(Stage::HeloDns, outcome, detail, enhanced, queries)
    }

    /// spf-helo.
    pub async fn spf_helo(&self, ip: IpAddr, helo: &str) -> StageReport {
        let out = match self.budget(self.spf.check_helo(ip, helo)).await {
            Some(out) => out,
            None => self.budget_output(ip, Identity::Helo, "", helo),
        };
        self.spf_report(Stage::SpfHelo, out)
    }

    /// spf-mailfrom. For the null sender the HELO identity's output is
    /// reused when given (RFC 7208 §2.4: it is the same check_host).
    pub async fn spf_mailfrom(
        &self,
        ip: IpAddr,
        helo: &str,
        sender: &str,
        helo_output: Option<&SpfOutput>,
    ) -> StageReport {
        let null = sender
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .is_empty();
        let out = match helo_output {
            Some(out) if null && out.helo == helo => {
                let mut reused = out.clone();
                reused.queries = 0;
                reused
            }
            _ if null => match self.budget(self.spf.check_helo(ip, helo)).await {
                Some(out) => out,
                None => self.budget_output(ip, Identity::Helo, "", helo),
            },
            _ => match self.budget(self.spf.check_mailfrom(ip, sender, helo)).await {
                Some(out) => out,
                None => self.budget_output(ip, Identity::MailFrom, sender, helo),
            },
        };
        self.spf_report(Stage::SpfMailfrom, out)
    }

    /// Runs the stages for what the client has said.
    pub async fn run(&self, client: &Client, mode: Mode) -> Evaluation {
        let mut eval = Evaluation::default();
        let ip = client.ip;
        let helo = client.helo.as_deref().unwrap_or("");
        let skip = self
            .skip_client(ip, client.auth.as_deref())
            .or_else(|| client.helo.as_deref().and_then(|h| self.skip_helo(h)))
            .or_else(|| {
                client
                    .sender
                    .as_deref()
                    .and_then(|s| self.skip_sender(s, helo))
            });
        if let Some(report) = skip {
            eval.stages.push(report);
            if mode == Mode::StopEarly {
                return eval;
            }
        }
        let stop = |eval: &Evaluation| mode == Mode::StopEarly && eval.decisive().is_some();
        let policy = &self.settings.policy;
        if let Some(helo) = client.helo.as_deref()
            && policy.enabled(Stage::HeloSyntax)
        {
            eval.stages.push(self.helo_syntax(ip, helo));
            if stop(&eval) {
                return eval;
            }
        }
        if policy.enabled(Stage::Fcrdns) {
            eval.stages.push(self.fcrdns(ip).await);
            if stop(&eval) {
                return eval;
            }
        }
        let mut helo_spf = None;
        if let Some(helo) = client.helo.as_deref() {
            if policy.enabled(Stage::HeloDns) {
                eval.stages.push(self.helo_dns(ip, helo).await);
                if stop(&eval) {
                    return eval;
                }
            }
            if policy.enabled(Stage::SpfHelo) {
                let report = self.spf_helo(ip, helo).await;
                helo_spf = report.spf.clone();
                eval.stages.push(report);
                if stop(&eval) {
                    return eval;
                }
            }
        }
        if let Some(sender) = client.sender.as_deref()
            && policy.enabled(Stage::SpfMailfrom)
        {
            eval.stages
                .push(self.spf_mailfrom(ip, helo, sender, helo_spf.as_ref()).await);
        }
        eval
    }

    fn report(
        &self,
        stage: Stage,
        outcome: Outcome,
        detail: String,
        enhanced: &str,
        dns_queries: u32,
    ) -> StageReport {
        let action = self.settings.policy.action(stage, outcome);
        StageReport {
            stage,
            outcome,
            reply: Reply::for_action(action, enhanced, &detail),
            detail,
            action,
            spf: None,
            fcrdns: None,
            dns_queries,
            skip: None,
        }
    }

    fn spf_report(&self, stage: Stage, out: SpfOutput) -> StageReport {
        let outcome = Outcome::from(out.result);
        let action = self.settings.policy.action(stage, outcome);
        let default_action = Policy::default().action(stage, outcome);
        // Name the policy in the reply when it refuses what the defaults only tag.
        let policy_named = action != default_action
            || !matches!(
                out.result,
                SpfResult::Fail | SpfResult::PermError | SpfResult::TempError
            );
        let text = spf_text(&out, stage == Stage::SpfHelo, policy_named);
        StageReport {
            stage,
            outcome,
            reply: Reply::for_action(action, spf_enhanced(out.result), &text),
            detail: spf_detail(&out),
            action,
            dns_queries: out.queries,
            spf: Some(out),
            fcrdns: None,
            skip: None,
        }
    }

    async fn budget<F: Future>(&self, future: F) -> Option<F::Output> {
        tokio::time::timeout(self.settings.time_budget, future)
            .await
            .ok()
    }

    fn budget_text(&self) -> String {
        format!(
            "DNS took longer than the time budget of {}s",
            self.settings.time_budget.as_secs_f64()
        )
    }

    fn budget_output(&self, ip: IpAddr, identity: Identity, sender: &str, helo: &str) -> SpfOutput {
        let parsed = tollgate_spf::Sender::parse(sender, helo);
        let local = if parsed.local_part.is_empty() {
            "postmaster"
        } else {
            &parsed.local_part
        };
        SpfOutput {
            identity,
            ip: canonical(ip),
            helo: helo.to_owned(),
            sender: format!("{local}@{}", parsed.domain),
            checked_domain: parsed.domain.clone(),
            result: SpfResult::TempError,
            domain: parsed.domain,
            mechanism: None,
            explanation: None,
            problem: Some(self.budget_text()),
            lookups: 0,
            void_lookups: 0,
            queries: 0,
            trace: Vec::new(),
        }
    }
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
