//! `tollgate check`: runs every stage for one client against live DNS (or
//! the given nameservers) and prints what was found, which mechanism
//! matched, and what the milter would reply, for people (`--format text`)
//! or tools (`--format json`, a stable shape: see docs/cli.md).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Value, json};
use tollgate_checks::{Checker, Client, Evaluation, ListKind, Mode, StageReport, Verdict, headers};
use tollgate_dns::{HickoryLookup, ResolverError};
use tollgate_spf::Options;

use super::dns_args::escape;
pub use super::dns_args::{DnsArgs, Format};
use crate::config::ConfigError;

/// Output formats.
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
    /// Configuration, DNS and output options.
    #[command(flatten)]
    pub dns: DnsArgs,
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
    let config = args.dns.config()?;
    let dns = args.dns.resolver_options(&config)?;
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

/// The JSON object for a check that could not run (a bad configuration,
/// argument or resolver; exit status 1): the client as given, no stages,
/// no verdict, and `error` saying why, so that `--format json` always
/// prints one object.
pub fn render_error_json(args: &CheckArgs, error: &str) -> Value {
    let mut client = json!({ "ip": args.ip.to_string() });
    if let Some(helo) = &args.helo {
        client["helo"] = json!(helo);
    }
    if let Some(sender) = &args.sender {
        client["sender"] = json!(sender);
    }
    json!({
        "client": client,
        "stages": [],
        "verdict": null,
        "error": error,
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

/// The report for people.
pub fn render_text(report: &CheckReport) -> String {
    let mut out = String::new();
    let c = &report.client;
    let _ = write!(out, "client {}", c.ip);
    if let Some(helo) = &c.helo {
        let _ = write!(out, ", HELO {}", escape(helo));
    }
    if let Some(sender) = &c.sender {
        let _ = write!(out, ", MAIL FROM <{}>", escape(sender));
    }
    out.push_str("\n\n");
    for r in &report.evaluation.stages {
        let _ = writeln!(
            out,
            "{:<13} {:<10} {:<8} {}",
            r.stage.as_str(),
            r.outcome.as_str(),
            r.action.as_str(),
            escape(&r.detail)
        );
        if let Some(info) = &r.fcrdns
            && info.ptr_names.len() > 1
        {
            let _ = writeln!(
                out,
                "{:<34}PTR names: {}",
                "",
                escape(&info.ptr_names.join(", "))
            );
        }
        for note in &r.notes {
            let _ = writeln!(out, "{:<34}note: {}", "", escape(note));
        }
        if let Some(spf) = &r.spf {
            if let Some(exp) = spf.explanation.as_ref().filter(|e| !e.from_domain) {
                let _ = writeln!(out, "{:<34}explanation: {}", "", escape(&exp.text));
            }
            let _ = writeln!(
                out,
                "{:<34}DNS lookups {} of 10, void lookups {} of 2",
                "", spf.lookups, spf.void_lookups
            );
            for q in &spf.trace {
                let _ = writeln!(out, "{:<34}  {}", "", escape(&q.to_string()));
            }
        }
    }
    out.push('\n');
    match (&report.verdict.reply, report.verdict.stage) {
        (Some(reply), Some(stage)) => {
            let _ = writeln!(out, "verdict: {} at {stage}", report.verdict.action_str());
            let _ = writeln!(out, "reply:   {}", escape(&reply.to_string()));
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
            let _ = writeln!(out, "  {name}: {}", escape(value));
        }
    }
    let _ = writeln!(out, "DNS queries: {}", report.evaluation.dns_queries());
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn dns_text_cannot_forge_report_lines_or_drive_the_terminal() {
        // Regression: `check --format text` printed CR/LF and ESC from DNS data raw.
        let s = escape("ok\r\nverdict: accept\u{1b}[2J");
        assert!(!s.chars().any(char::is_control), "{s}");
        assert_eq!(s, "ok\\r\\nverdict: accept\\u{1b}[2J");
    }
}
