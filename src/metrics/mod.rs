//! Prometheus metrics: what the milter counts, and the HTTP listener that
//! serves them (`metrics.listen`; [`http`]). The only module that names
//! prometheus-client.
//!
//! Every label takes its value from a bounded set fixed in the code:
//! stage and result names (design.md), actions, skip kinds, milter
//! commands, DNS record types and outcomes. No label ever carries an
//! address, a name or any other text from the network. docs/operations.md
//! lists every metric, with healthy and unhealthy values.
//!
//! The milter calls the `record` methods of [`Metrics`] with plain
//! values; the DNS adapter reports through [`dns::DnsMetrics`], a
//! `QueryObserver`; process memory and descriptors are read from
//! /proc/self at each scrape ([`process`]). Counting never waits on a
//! scrape: counters are atomics, a histogram takes a short lock of its own.

pub mod dns;
pub(crate) mod http;
mod process;
pub(crate) mod wait;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use tollgate_checks::{Action, Evaluation, Outcome, SkipReason, Stage, Verdict};

pub use dns::DnsMetrics;

/// A label set of `N` fixed names and values from bounded sets.
type Labels<const N: usize> = [(&'static str, &'static str); N];

/// The counters of a two-label family, one cell per pair of label values
/// (by index), each made on first use: counting is an index and an atomic
/// add, not a lock and a hash of the labels, as `Family::get_or_create`
/// does on every call.
#[derive(Debug)]
pub(crate) struct Grid<const R: usize, const C: usize> {
    family: Family<Labels<2>, Counter>,
    cells: [[OnceLock<Counter>; C]; R],
}

impl<const R: usize, const C: usize> Grid<R, C> {
    pub(crate) fn new(family: Family<Labels<2>, Counter>) -> Self {
        Grid {
            family,
            cells: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
        }
    }

    /// Adds one to the counter of cell (`row`, `column`), whose labels
    /// are `labels` (asked for only the first time).
    pub(crate) fn inc(&self, row: usize, column: usize, labels: impl FnOnce() -> Labels<2>) {
        match self.cells.get(row).and_then(|r| r.get(column)) {
            Some(cell) => {
                cell.get_or_init(|| self.family.get_or_create_owned(&labels()))
                    .inc();
            }
            None => {
                self.family.get_or_create(&labels()).inc();
            }
        }
    }
}

/// Bucket bounds, in seconds, of the milter's time histograms: from a
/// tenth of a millisecond (a command answered from memory) to ten seconds
/// (DNS timeouts).
const SECONDS_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The milter commands tollgate handles, by the names of the `command` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// Option negotiation.
    Negotiate,
    /// CONNECT.
    Connect,
    /// HELO/EHLO.
    Helo,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// One header.
    Header,
    /// End of message.
    Eom,
    /// Abort (RSET, or the transaction ended).
    Abort,
    /// The connection closes.
    Close,
}

impl Command {
    const ALL: [Command; 9] = [
        Command::Negotiate,
        Command::Connect,
        Command::Helo,
        Command::Mail,
        Command::Rcpt,
        Command::Header,
        Command::Eom,
        Command::Abort,
        Command::Close,
    ];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Command::Negotiate => "negotiate",
            Command::Connect => "connect",
            Command::Helo => "helo",
            Command::Mail => "mail",
            Command::Rcpt => "rcpt",
            Command::Header => "header",
            Command::Eom => "eom",
            Command::Abort => "abort",
            Command::Close => "close",
        }
    }
}

/// The `action` of a message, as the log line writes it: `accept`,
/// `reject`, `tempfail`, `greylist`, or `dry-run:reject` /
/// `dry-run:tempfail` / `dry-run:greylist` when dry run let through what
/// would have been refused or delayed.
pub(crate) fn action_label(verdict: &Verdict, dry_run: bool) -> &'static str {
    match (verdict.action, dry_run) {
        (Action::Reject, true) => "dry-run:reject",
        (Action::Tempfail, true) => "dry-run:tempfail",
        (Action::Greylist, true) => "dry-run:greylist",
        _ => verdict.action_str(),
    }
}

/// The kind of a skip, for the `reason` label (the reason itself names
/// addresses and domains).
pub(crate) fn skip_kind(reason: &SkipReason) -> &'static str {
    match reason {
        SkipReason::TrustedNetwork { .. } => "trusted-network",
        SkipReason::Authenticated(_) => "authenticated",
        SkipReason::HeloListed { .. } => "helo-listed",
        SkipReason::SenderDomainListed { .. } => "sender-domain-listed",
        SkipReason::NoClientAddress => "no-client-address",
        SkipReason::ClientNameListed { .. } => "client-name-listed",
        SkipReason::AllowListed { .. } => "allow-listed",
        SkipReason::Forwarder { .. } => "forwarder",
    }
}

/// Everything tollgate counts, and the registry that serves it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    dns: Arc<DnsMetrics>,
    messages: Family<Labels<2>, Counter>,
    /// By stage and result (`Stage as usize`, `Outcome as usize`).
    stage_results: Grid<{ Stage::ALL.len() }, { Outcome::ALL.len() }>,
    skips: Family<Labels<1>, Counter>,
    connections_open: Gauge,
    connections_max: Gauge,
    connections: Counter,
    connections_at_limit: Counter,
    protocol_errors: Counter,
    /// Per [`Command`], in the order of `Command::ALL`.
    commands: Vec<Counter>,
    callback_seconds: Vec<Histogram>,
    /// For helo, mail and eom: the commands that wait for DNS.
    dns_wait: [Histogram; 3],
    reloads: Family<Labels<1>, Counter>,
    last_reload_successful: Gauge,
    last_reload_success: Gauge<f64, AtomicU64>,
}

fn seconds_histogram() -> Histogram {
    Histogram::new(SECONDS_BUCKETS)
}

fn unix_time(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl Metrics {
    /// Every metric, registered; the configuration counts as loaded now.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let build_info = Family::<Labels<1>, Gauge>::default();
        build_info
            .get_or_create(&[("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        registry.register(
            "tollgate_build_info",
            "The running version (label version); always 1",
            build_info,
        );

        let messages = Family::default();
        registry.register(
            "tollgate_messages",
            "Messages (one per log line) by action (accept, reject, tempfail, greylist, dry-run:reject, dry-run:tempfail, dry-run:greylist) and deciding stage (decided_by; none when no stage refused, skip when skipped)",
            messages.clone(),
        );
        let stage_results = Family::<Labels<2>, Counter>::default();
        registry.register(
            "tollgate_stage_results",
            "Stage results of each message by stage and result",
            stage_results.clone(),
        );
        let skips = Family::default();
        registry.register(
            "tollgate_skips",
            "Messages exempt from checks (forwarder: from the MAIL FROM stages) by kind of reason",
            skips.clone(),
        );

        let dns = Arc::new(DnsMetrics::register(&mut registry));

        let connections_open = Gauge::default();
        registry.register(
            "tollgate_milter_connections_open",
            "MTA connections open now",
            connections_open.clone(),
        );
        let connections_max = Gauge::default();
        registry.register(
            "tollgate_milter_connections_max",
            "The max_connections limit",
            connections_max.clone(),
        );
        let connections = Counter::default();
        registry.register(
            "tollgate_milter_connections",
            "MTA connections opened",
            connections.clone(),
        );
        let connections_at_limit = Counter::default();
        registry.register(
            "tollgate_milter_connections_at_limit",
            "Connections that took the last free slot of max_connections: until one closes, new connections wait in the listen queue",
            connections_at_limit.clone(),
        );
        let protocol_errors = Counter::default();
        registry.register(
            "tollgate_milter_protocol_errors",
            "Milter commands out of sequence (no CONNECT before them), answered with tempfail",
            protocol_errors.clone(),
        );
        let command_family = Family::<Labels<1>, Counter>::default();
        let callback_family =
            Family::<Labels<1>, Histogram>::new_with_constructor(seconds_histogram as fn() -> _);
        let commands = Command::ALL
            .iter()
            .map(|c| command_family.get_or_create_owned(&[("command", c.as_str())]))
            .collect();
        let callback_seconds = Command::ALL
            .iter()
            .map(|c| callback_family.get_or_create_owned(&[("command", c.as_str())]))
            .collect();
        registry.register(
            "tollgate_milter_commands",
            "Milter commands handled, by command",
            command_family,
        );
        registry.register(
            "tollgate_milter_callback_duration_seconds",
            "Time from a milter command to tollgate's answer, by command",
            callback_family,
        );
        let wait_family =
            Family::<Labels<1>, Histogram>::new_with_constructor(seconds_histogram as fn() -> _);
        let dns_wait = [Command::Helo, Command::Mail, Command::Eom]
            .map(|c| wait_family.get_or_create_owned(&[("command", c.as_str())]));
        registry.register(
            "tollgate_milter_dns_wait_seconds",
            "Time a milter command waited for DNS answers, by command (helo, mail, eom)",
            wait_family,
        );

        let reloads = Family::<Labels<1>, Counter>::default();
        for outcome in ["success", "failure"] {
            let _ = reloads.get_or_create(&[("outcome", outcome)]);
        }
        registry.register(
            "tollgate_config_reloads",
            "Configuration reloads (SIGHUP) by outcome (success, failure)",
            reloads.clone(),
        );
        let last_reload_successful = Gauge::default();
        last_reload_successful.set(1);
        registry.register(
            "tollgate_config_last_reload_successful",
            "Whether the last reload succeeded (1; also before any reload) or failed and the old configuration stays (0)",
            last_reload_successful.clone(),
        );
        let last_reload_success = Gauge::<f64, AtomicU64>::default();
        let now = unix_time(SystemTime::now());
        last_reload_success.set(now);
        registry.register(
            "tollgate_config_last_reload_success_timestamp_seconds",
            "When the configuration in use was loaded (at start or by a reload), in seconds since the epoch",
            last_reload_success.clone(),
        );
        process::register(&mut registry, now);

        Metrics {
            registry,
            dns,
            messages,
            stage_results: Grid::new(stage_results),
            skips,
            connections_open,
            connections_max,
            connections,
            connections_at_limit,
            protocol_errors,
            commands,
            callback_seconds,
            dns_wait,
            reloads,
            last_reload_successful,
            last_reload_success,
        }
    }

    /// The observer to give the resolver.
    pub fn dns(&self) -> Arc<DnsMetrics> {
        Arc::clone(&self.dns)
    }

    /// Everything, in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        text
    }

    /// The `Content-Type` of [`Metrics::encode`]'s text.
    pub const CONTENT_TYPE: &'static str =
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

    /// One message's log line was written.
    pub(crate) fn record_message(&self, eval: &Evaluation, verdict: &Verdict, dry_run: bool) {
        let decided_by = verdict.stage.map_or("none", |s| s.as_str());
        self.messages
            .get_or_create(&[
                ("action", action_label(verdict, dry_run)),
                ("decided_by", decided_by),
            ])
            .inc();
        for report in &eval.stages {
            let (stage, outcome) = (report.stage, report.outcome);
            self.stage_results
                .inc(stage as usize, outcome as usize, || {
                    [("stage", stage.as_str()), ("result", outcome.as_str())]
                });
        }
        for reason in eval.skips() {
            self.skips
                .get_or_create(&[("reason", skip_kind(reason))])
                .inc();
        }
    }

    /// The connection limit in force.
    pub(crate) fn set_connection_limit(&self, max: usize) {
        self.connections_max
            .set(i64::try_from(max).unwrap_or(i64::MAX));
    }

    /// A session opened; `live` sessions are open now, of at most `max`.
    pub(crate) fn connection_opened(&self, live: usize, max: usize) {
        self.connections.inc();
        self.connections_open.inc();
        if live >= max {
            self.connections_at_limit.inc();
        }
    }

    /// A session closed.
    pub(crate) fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// A command came without a session.
    pub(crate) fn protocol_error(&self) {
        self.protocol_errors.inc();
    }

    /// A command was answered after `took`.
    pub(crate) fn command(&self, command: Command, took: Duration) {
        let i = command as usize;
        self.commands[i].inc();
        self.callback_seconds[i].observe(took.as_secs_f64());
    }

    /// A command waited `waited` for DNS (helo, mail, eom; others ignored).
    pub(crate) fn dns_wait(&self, command: Command, waited: Duration) {
        let i = match command {
            Command::Helo => 0,
            Command::Mail => 1,
            Command::Eom => 2,
            _ => return,
        };
        self.dns_wait[i].observe(waited.as_secs_f64());
    }

    /// A reload finished.
    pub(crate) fn reload(&self, success: bool) {
        let outcome = if success { "success" } else { "failure" };
        self.reloads.get_or_create(&[("outcome", outcome)]).inc();
        self.last_reload_successful.set(i64::from(success));
        if success {
            self.last_reload_success.set(unix_time(SystemTime::now()));
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests;
