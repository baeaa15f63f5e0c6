//! `tollgate check`: runs every stage for one client against live DNS (or
//! the given nameservers) and prints what was found, which mechanism
//! matched, and what the milter would reply, for people (`--format text`)
//! or tools (`--format json`, a stable shape: see docs/cli.md).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tollgate_checks::{Checker, Client, Evaluation, ListKind, Mode, StageReport, Verdict, headers};
use tollgate_dns::{HickoryLookup, ResolverError, ResolverOptions};
use tollgate_spf::Options;

use crate::config::{Config, ConfigError, parse_nameserver};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// One JSON object, for tools.
    Json,
}

/// The arguments of `tollgate check`.
#[derive(Clone, Debug, clap::Args)]
pub struct CheckArgs {
    /// The client address to check.
    #[arg(long)]
    pub ip: IpAddr,
    /// The HELO/EHLO name the client gave.
    #[arg(long)]
    pub helo: Option<String>,
    /// The MAIL FROM address; an empty string is the null sender.
    #[arg(long)]
    pub sender: Option<String>,
    /// A configuration file for policy, skip lists and DNS settings
    /// (default: the built-in defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Ask this nameserver (IP or IP:PORT) instead of /etc/resolv.conf; repeatable.
    #[arg(long = "nameserver", value_name = "IP[:PORT]")]
    pub nameservers: Vec<String>,
    /// Per-query DNS timeout in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub dns_timeout: Option<f64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Why `tollgate check` could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The configuration file is bad.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A command-line value is bad.
    #[error("{0}")]
    Argument(String),
    /// The resolver could not be set up.
    #[error("cannot set up DNS: {0}")]
    Resolver(#[from] ResolverError),
}

/// What `tollgate check` found.
#[derive(Debug)]
pub struct CheckReport {
    /// The client as given.
    pub client: Client,
    /// Every stage's report.
    pub evaluation: Evaluation,
    /// What the milter would do.
    pub verdict: Verdict,
    /// The headers the milter would add when it accepts.
    pub headers: Vec<(&'static str, String)>,
}

/// Runs the check.
pub async fn run(args: &CheckArgs) -> Result<CheckReport, CheckError> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::defaults(),
    };
    let dns = resolver_options(&config, &args.nameservers, args.dns_timeout)?;
    let lookup = HickoryLookup::new(dns)?;
    let options = Options {
        receiver: config.checks.receiver.clone(),
        trace: true,
        ..Options::default()
    };
    let checker = Arc::new(Checker::with_spf_options(
        lookup,
        config.checks.clone(),
        options,
    ));
    let client = Client {
        ip: args.ip,
        helo: args.helo.clone(),
        sender: args.sender.clone(),
        auth: None,
    };
    let evaluation = checker.run(&client, Mode::All).await;
    let verdict = evaluation.verdict();
    let authserv_id = config.authserv_id_for(None);
    let headers = headers::message_headers(
        &evaluation,
        args.sender.as_deref().unwrap_or(""),
        &authserv_id,
        &config.checks.receiver,
        config.headers.received_spf,
        config.headers.authentication_results,
    );
    Ok(CheckReport {
        client,
        evaluation,
        verdict,
        headers,
    })
}

/// The resolver settings of `config`, with `--nameserver` and
/// `--dns-timeout` applied (shared by `tollgate check` and `tollgate lint`).
pub(crate) fn resolver_options(
    config: &Config,
    nameservers: &[String],
    dns_timeout: Option<f64>,
) -> Result<ResolverOptions, CheckError> {
    let mut dns = ResolverOptions::from(&config.dns);
    if !nameservers.is_empty() {
        dns.nameservers = Some(
            nameservers
                .iter()
                .map(|s| {
                    parse_nameserver(s)
                        .map_err(|e| CheckError::Argument(format!("--nameserver: {e}")))
                })
                .collect::<Result<_, _>>()?,
        );
    }
    if let Some(secs) = dns_timeout {
        dns.timeout = Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                CheckError::Argument(format!(
                    "--dns-timeout: {secs} is not a positive number of seconds"
                ))
            })?;
    }
    Ok(dns)
}

/// The JSON object of docs/cli.md.
pub fn render_json(report: &CheckReport) -> Value {
    let stages: Vec<Value> = report.evaluation.stages.iter().map(stage_json).collect();
    let mut client = json!({ "ip": report.client.ip.to_string() });
    if let Some(helo) = &report.client.helo {
        client["helo"] = json!(helo);
    }
    if let Some(sender) = &report.client.sender {
        client["sender"] = json!(sender);
    }
    let headers: serde_json::Map<String, Value> = report
        .headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), json!(value)))
        .collect();
    json!({
        "client": client,
        "stages": stages,
        "verdict": {
            "action": report.verdict.action_str(),
            "stage": report.verdict.stage.map(|s| s.as_str()),
            "reply": report.verdict.reply.as_ref().map(ToString::to_string),
        },
        "headers": headers,
        "dns_queries": report.evaluation.dns_queries(),
    })
}

fn stage_json(r: &StageReport) -> Value {
    let mut v = json!({
        "stage": r.stage.as_str(),
        "result": r.outcome.as_str(),
        "action": r.action.as_str(),
        "detail": r.detail,
        "dns_queries": r.dns_queries,
    });
    if let Some(reply) = &r.reply {
        v["reply"] = json!(reply.to_string());
    }
    if let Some(out) = &r.spf {
        v["identity"] = json!(out.identity.as_str());
        v["domain"] = json!(out.domain);
        v["mechanism"] = json!(out.mechanism);
        v["lookups"] = json!(out.lookups);
        v["void_lookups"] = json!(out.void_lookups);
        if let Some(exp) = &out.explanation {
            v["explanation"] = json!(exp.text);
            v["explanation_from_domain"] = json!(exp.from_domain);
        }
        if let Some(problem) = &out.problem {
            v["problem"] = json!(problem);
        }
        v["trace"] = json!(
            out.trace
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
    }
    if !r.lists.is_empty() {
        v["lists"] = json!(
            r.lists
                .iter()
                .map(|hit| json!({
                    "zone": hit.zone,
                    "type": match hit.kind {
                        ListKind::Block => "block",
                        ListKind::Allow => "allow",
                    },
                    "code": hit.code.to_string(),
                    "reason": hit.reason,
                }))
                .collect::<Vec<_>>()
        );
    }
    if !r.notes.is_empty() {
        v["notes"] = json!(r.notes);
    }
    if let Some(info) = &r.fcrdns {
        v["ptr"] = json!(info.ptr_names);
        v["confirmed"] = json!(info.confirmed);
        if let Some(generic) = &info.generic {
            v["generic"] = json!(generic);
        }
    }
    v
}

/// Text from the client or from DNS made safe for a terminal: control
/// characters (CR, LF, ESC …) escaped, so a TXT record or PTR name cannot
/// forge a line of the report or drive the terminal.
fn safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The report for people.
pub fn render_text(report: &CheckReport) -> String {
    let mut out = String::new();
    let c = &report.client;
    let _ = write!(out, "client {}", c.ip);
    if let Some(helo) = &c.helo {
        let _ = write!(out, ", HELO {}", safe(helo));
    }
    if let Some(sender) = &c.sender {
        let _ = write!(out, ", MAIL FROM <{}>", safe(sender));
    }
    out.push_str("\n\n");
    for r in &report.evaluation.stages {
        let _ = writeln!(
            out,
            "{:<13} {:<10} {:<8} {}",
            r.stage.as_str(),
            r.outcome.as_str(),
            r.action.as_str(),
            safe(&r.detail)
        );
        if let Some(info) = &r.fcrdns
            && info.ptr_names.len() > 1
        {
            let _ = writeln!(
                out,
                "{:<34}PTR names: {}",
                "",
                safe(&info.ptr_names.join(", "))
            );
        }
        for note in &r.notes {
            let _ = writeln!(out, "{:<34}note: {}", "", safe(note));
        }
        if let Some(spf) = &r.spf {
            if let Some(exp) = spf.explanation.as_ref().filter(|e| !e.from_domain) {
                let _ = writeln!(out, "{:<34}explanation: {}", "", safe(&exp.text));
            }
            let _ = writeln!(
                out,
                "{:<34}DNS lookups {} of 10, void lookups {} of 2",
                "", spf.lookups, spf.void_lookups
            );
            for q in &spf.trace {
                let _ = writeln!(out, "{:<34}  {}", "", safe(&q.to_string()));
            }
        }
    }
    out.push('\n');
    match (&report.verdict.reply, report.verdict.stage) {
        (Some(reply), Some(stage)) => {
            let _ = writeln!(out, "verdict: {} at {stage}", report.verdict.action_str());
            let _ = writeln!(out, "reply:   {}", safe(&reply.to_string()));
        }
        (_, Some(stage)) => {
            let _ = writeln!(out, "verdict: {} ({stage})", report.verdict.action_str());
        }
        _ => {
            let _ = writeln!(out, "verdict: {}", report.verdict.action_str());
        }
    }
    if report.verdict.reply.is_none() && !report.headers.is_empty() {
        out.push_str("headers:\n");
        for (name, value) in &report.headers {
            let _ = writeln!(out, "  {name}: {}", safe(value));
        }
    }
    let _ = writeln!(out, "DNS queries: {}", report.evaluation.dns_queries());
    out
}

#[cfg(test)]
mod tests {
    use super::safe;

    #[test]
    fn dns_text_cannot_forge_report_lines_or_drive_the_terminal() {
        // Regression: `check --format text` printed CR/LF and ESC from DNS data raw.
        let s = safe("ok\r\nverdict: accept\u{1b}[2J");
        assert!(!s.chars().any(char::is_control), "{s}");
        assert_eq!(s, "ok\\r\\nverdict: accept\\u{1b}[2J");
    }
}
