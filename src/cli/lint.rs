//! `tollgate lint`: checks a domain's SPF setup from the sender's side
//! (the include tree and its lookup counts, syntax, size, `ptr`, `+all`,
//! unreachable terms, the HELO host's own record) and prints findings with
//! stable codes, for people (`--format text`) or tools (`--format json`,
//! the shape of docs/lint.md). Exit status: 0 no errors, 1 errors, 2 the
//! domain could not be checked.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde_json::{Value, json};
use tollgate_checks::lint::{
    self, AddressResult, Code, Finding, LOOKUP_LIMIT, LintReport, LintRequest, Severity, TreeNode,
    VOID_LIMIT,
};
use tollgate_dns::HickoryLookup;

use super::check::CheckError;
pub use super::dns_args::{DnsArgs, Format, escape};

/// The arguments of `tollgate lint`.
#[derive(Clone, Debug, clap::Args)]
pub struct LintArgs {
    /// The domain whose SPF setup is checked.
    pub domain: String,
    /// An address the domain sends mail from; repeatable.
    #[arg(long = "ip", value_name = "ADDR")]
    pub ips: Vec<IpAddr>,
    /// The name the domain's servers give in HELO/EHLO.
    #[arg(long)]
    pub helo: Option<String>,
    /// Configuration, DNS and output options.
    #[command(flatten)]
    pub dns: DnsArgs,
    /// Count warnings as errors for the exit status.
    #[arg(long)]
    pub strict: bool,
}

/// Runs the lint. `Err` means it could not start (bad arguments,
/// configuration or resolver): exit status 2.
pub async fn run(args: &LintArgs) -> Result<LintReport, CheckError> {
    let domain = args.domain.trim_end_matches('.');
    if domain.is_empty()
        || domain.len() > 253
        || !domain.bytes().all(|b| b.is_ascii_graphic())
        || domain.split('.').any(|l| l.is_empty() || l.len() > 63)
    {
        return Err(CheckError::Argument(format!(
            "{} is not a domain name",
            escape(&args.domain)
        )));
    }
    let config = args.dns.config()?;
    let dns = args.dns.resolver_options(&config)?;
    let lookup = HickoryLookup::new(dns)?;
    let request = LintRequest {
        domain: domain.to_owned(),
        ips: args.ips.clone(),
        helo: args.helo.clone(),
        receiver: config.checks.receiver.clone(),
    };
    Ok(lint::lint(&lookup, &request).await)
}

/// The JSON object of docs/lint.md.
pub fn render_json(report: &LintReport) -> Value {
    let findings: Vec<Value> = report.findings.iter().map(finding_json).collect();
    let ips: Vec<Value> = report
        .ips
        .iter()
        .map(|r| json!({"ip": r.ip.to_string(), "result": r.result.as_str(), "mechanism": r.mechanism}))
        .collect();
    let helo = report.helo.as_ref().map(|h| {
        json!({
            "name": h.name,
            "record": h.record,
            "results": h.results.iter()
                .map(|r| json!({"ip": r.ip.to_string(), "result": r.result.as_str()}))
                .collect::<Vec<_>>(),
            "resolves_to_ip": h.resolves_to_ip,
            "fcrdns": h.fcrdns.iter()
                .map(|f| json!({"ip": f.ip.to_string(), "result": f.result.as_str()}))
                .collect::<Vec<_>>(),
        })
    });
    json!({
        "domain": report.domain,
        "record": report.record,
        "lookups": {"used": report.lookups, "limit": LOOKUP_LIMIT},
        "void_lookups": {"used": report.void_lookups, "limit": VOID_LIMIT},
        "tree": [tree_json(&report.tree)],
        "findings": findings,
        "ips": ips,
        "helo": helo,
    })
}

/// The JSON object for a lint that could not start (a bad domain name,
/// configuration or resolver, exit status 2): the keys of [`render_json`]
/// with nothing checked, and `error` saying why, so that `--format json`
/// always prints one object.
pub fn render_error_json(domain: &str, error: &str) -> Value {
    json!({
        "domain": domain,
        "record": null,
        "lookups": {"used": 0, "limit": LOOKUP_LIMIT},
        "void_lookups": {"used": 0, "limit": VOID_LIMIT},
        "tree": [],
        "findings": [],
        "ips": [],
        "helo": null,
        "error": error,
    })
}

fn tree_json(node: &TreeNode) -> Value {
    json!({
        "domain": node.domain,
        "record": node.record,
        "lookups": node.lookups,
        "children": node.children.iter().map(tree_json).collect::<Vec<_>>(),
    })
}

fn finding_json(f: &Finding) -> Value {
    json!({
        "severity": f.severity().as_str(),
        "code": f.code.as_str(),
        "message": f.message,
        "where": (!f.location.is_empty()).then_some(&f.location),
        "rfc": f.code.rfc(),
        "fix": f.code.fix(),
    })
}

/// The report for people.
pub fn render_text(report: &LintReport, strict: bool) -> String {
    let mut out = String::new();
    let domain = escape(&report.domain);
    match &report.record {
        Some(record) => {
            let _ = writeln!(out, "{domain}: {}", escape(record));
        }
        None => {
            let _ = writeln!(out, "{domain}: no SPF record");
        }
    }
    let _ = writeln!(
        out,
        "DNS lookups {} of {LOOKUP_LIMIT}, void lookups {} of {VOID_LIMIT}, {} DNS queries",
        report.lookups, report.void_lookups, report.queries
    );
    if !report.tree.children.is_empty() {
        out.push_str("\ninclude tree:\n");
        tree_text(&mut out, &report.tree, 1);
    }
    // Addresses in one column, wide enough for the longest (IPv6).
    let width = report
        .ips
        .iter()
        .map(|r| r.ip)
        .chain(
            report
                .helo
                .iter()
                .flat_map(|h| h.results.iter().map(|r| r.ip)),
        )
        .map(|ip| ip.to_string().len())
        .max()
        .unwrap_or(0)
        .max(16);
    if !report.ips.is_empty() {
        out.push_str("\naddresses:\n");
        for r in &report.ips {
            let _ = writeln!(
                out,
                "  {:<width$} {:<10} {}",
                r.ip.to_string(),
                r.result.as_str(),
                decided(r)
            );
        }
    }
    if let Some(h) = &report.helo {
        let record = h.record.as_deref().map_or("no SPF record".into(), escape);
        let _ = writeln!(out, "\nHELO {}: {record}", escape(&h.name));
        for (r, f) in h.results.iter().zip(&h.fcrdns) {
            let _ = writeln!(
                out,
                "  {:<width$} {:<10} {}; fcrdns {}",
                r.ip.to_string(),
                r.result.as_str(),
                decided(r),
                f.result.as_str()
            );
        }
        if let Some(resolves) = h.resolves_to_ip {
            let _ = writeln!(
                out,
                "  resolves to {}: {}",
                if h.results.len() == 1 {
                    "the address"
                } else {
                    "every address"
                },
                if resolves { "yes" } else { "no" }
            );
        }
    }
    if !report.findings.is_empty() {
        out.push_str("\nfindings:\n");
    }
    for f in &report.findings {
        let place = if f.location.is_empty() {
            String::new()
        } else {
            format!(" at {}", escape(&f.location))
        };
        let rfc = f.code.rfc().map(|r| format!(" ({r})")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<8} {}{place}{rfc}\n         {}\n         fix: {}",
            f.severity().as_str(),
            f.code.as_str(),
            escape(&f.message),
            f.code.fix()
        );
    }
    let (errors, warnings, infos) = (
        report.count(Severity::Error),
        report.count(Severity::Warning),
        report.count(Severity::Info),
    );
    let status = report.status(strict);
    let verdict = match status.exit_code() {
        0 => "no errors".to_owned(),
        1 if strict && errors == 0 => "warnings count as errors (--strict)".to_owned(),
        1 => "errors".to_owned(),
        _ => format!("could not check: {}", dns_trouble(report)),
    };
    let _ = writeln!(
        out,
        "\n{errors} error(s), {warnings} warning(s), {infos} note(s): {verdict} (exit {})",
        status.exit_code()
    );
    out
}

fn dns_trouble(report: &LintReport) -> String {
    report
        .findings
        .iter()
        .find(|f| f.code == Code::DnsError)
        .map_or_else(|| "DNS trouble".to_owned(), |f| escape(&f.message))
}

fn decided(r: &AddressResult) -> String {
    match (&r.mechanism, &r.problem) {
        (Some(m), _) => format!("matched \"{}\" at {}", escape(m), escape(&r.domain)),
        (None, Some(p)) => escape(p),
        (None, None) => format!("no term matched at {}", escape(&r.domain)),
    }
}

fn tree_text(out: &mut String, node: &TreeNode, depth: usize) {
    let record = node
        .record
        .as_deref()
        .map_or("(no SPF record)".into(), escape);
    let _ = writeln!(
        out,
        "{:indent$}{} [{} lookup{}] {record}",
        "",
        escape(&node.domain),
        node.lookups,
        if node.lookups == 1 { "" } else { "s" },
        indent = depth * 2
    );
    for child in &node.children {
        tree_text(out, child, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_from_dns_are_escaped() {
        assert_eq!(escape("a\r\nb\x1b[31m\x7f"), "a\\r\\nb\\u{1b}[31m\\u{7f}");
        assert_eq!(escape("plain é"), "plain é");
    }
}
