//! Side (a): the real `tollgate check --format json` binary, with the
//! same configuration file as the milter and `--nameserver` pointing at
//! testdns, read back into a [`Verdict`] and the headers it says the
//! milter adds.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

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

/// Runs `tollgate check` for `s` (in a blocking thread: it waits for DNS
/// timeouts like the milter does).
pub async fn run(s: &Scenario, config: &Path, dns: SocketAddr) -> CheckSaid {
    let args = args(s, config, dns);
    let shown = args.join(" ");
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
    let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "tollgate {shown} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    parse(&json).unwrap_or_else(|e| panic!("tollgate {shown}: {e}:\n{json:#}"))
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
