//! Side (a): `tollgate check --format json`, with the same configuration
//! file as the milter and `--nameserver` pointing at testdns, read back
//! into a [`Verdict`] and the headers it says the milter adds. It runs as
//! the real binary, or (cheaper, for most scenarios) in this process: the
//! same argument vector parsed by clap into `CheckArgs`, then
//! `tollgate::cli::check::run` and `render_json`, as the binary does.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use clap::Parser;
use serde_json::Value;
use tollgate::cli::check::{CheckArgs, render_json};

use super::corpus::Scenario;

/// A verdict: `accept`, `reject` or `tempfail`, the deciding stage, the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub action: String,
    pub stage: Option<String>,
    pub reply: Option<String>,
}

/// What `tollgate check` said about a scenario.
#[derive(Clone, Debug)]
pub struct CheckSaid {
    pub verdict: Verdict,
    /// The `headers` object, in its order.
    pub headers: Vec<(String, String)>,
    /// The stages that ran, as `stage=result`.
    pub stages: Vec<String>,
}

/// The command line for a scenario.
pub fn args(s: &Scenario, config: &Path, dns: SocketAddr) -> Vec<String> {
    let mut args = vec![
        "check".to_owned(),
        "--config".to_owned(),
        config.display().to_string(),
        "--nameserver".to_owned(),
        dns.to_string(),
        "--ip".to_owned(),
        s.client.ip().to_owned(),
    ];
    if let Some(helo) = s.helo_name() {
        args.extend(["--helo".to_owned(), helo]);
    }
    args.extend([
        "--sender".to_owned(),
        s.sender.address().to_owned(),
        "--format".to_owned(),
        "json".to_owned(),
    ]);
    args
}

/// How `tollgate check` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The `tollgate` binary, as a process.
    Binary,
    /// `tollgate::cli::check` in this process.
    Library,
}

/// `tollgate check`'s arguments, as the binary's `check` subcommand takes them.
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct CheckCommand {
    #[command(flatten)]
    args: CheckArgs,
}

/// Runs `tollgate check` for `s`.
pub async fn run(s: &Scenario, config: &Path, dns: SocketAddr, via: Via) -> CheckSaid {
    let args = args(s, config, dns);
    let shown = args.join(" ");
    let json = match via {
        Via::Binary => run_binary(args, &shown).await,
        Via::Library => {
            let parsed = CheckCommand::try_parse_from(&args[1..])
                .unwrap_or_else(|e| panic!("tollgate {shown}: {e}"));
            let report = tollgate::cli::check::run(&parsed.args)
                .await
                .unwrap_or_else(|e| panic!("tollgate {shown}: {e}"));
            render_json(&report)
        }
    };
    parse(&json).unwrap_or_else(|e| panic!("tollgate {shown}: {e}:\n{json:#}"))
}

/// The binary's JSON (run in a blocking thread: it waits for DNS
/// timeouts like the milter does).
async fn run_binary(args: Vec<String>, shown: &str) -> Value {
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(&args)
            .output()
    })
    .await
    .expect("the thread running tollgate check")
    .unwrap_or_else(|e| panic!("cannot run tollgate {shown}: {e}"));
    assert!(
        output.status.success(),
        "tollgate {shown}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "tollgate {shown} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn parse(json: &Value) -> Result<CheckSaid, String> {
    let verdict = &json["verdict"];
    let text = |v: &Value, what: &str| -> Result<Option<String>, String> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(format!("{what} is {other}")),
        }
    };
    let action = text(&verdict["action"], "verdict.action")?.ok_or("no verdict.action")?;
    let headers = json["headers"]
        .as_object()
        .ok_or("no headers object")?
        .iter()
        .map(|(name, value)| {
            value
                .as_str()
                .map(|v| (name.clone(), v.to_owned()))
                .ok_or_else(|| format!("header {name} is {value}"))
        })
        .collect::<Result<_, _>>()?;
    let stages = json["stages"]
        .as_array()
        .ok_or("no stages array")?
        .iter()
        .map(|st| {
            format!(
                "{}={}",
                st["stage"].as_str().unwrap_or("?"),
                st["result"].as_str().unwrap_or("?")
            )
        })
        .collect();
    Ok(CheckSaid {
        verdict: Verdict {
            action,
            stage: text(&verdict["stage"], "verdict.stage")?,
            reply: text(&verdict["reply"], "verdict.reply")?,
        },
        headers,
        stages,
    })
}
