//! What `tollgate check` and `tollgate lint` share: the options that say
//! where the configuration and the DNS come from and how to print, the
//! resolver settings built from them, and the escaping of DNS and client
//! text for a terminal.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use tollgate_dns::ResolverOptions;

use crate::cli::check::CheckError;
use crate::config::{Config, parse_nameserver};

/// Output format of `check` and `lint`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// One JSON object (docs/cli.md, docs/lint.md).
    Json,
}

/// Configuration, DNS and output options, flattened into each command.
#[derive(Clone, Debug, clap::Args)]
pub struct DnsArgs {
    /// A configuration file for policy, skip lists, DNS settings and the
    /// receiver name (default: the built-in defaults).
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

impl DnsArgs {
    /// `--config`'s file, or the built-in defaults.
    pub fn config(&self) -> Result<Config, CheckError> {
        Ok(match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::defaults(),
        })
    }

    /// The resolver settings of `config`, with `--nameserver` and
    /// `--dns-timeout` applied.
    pub fn resolver_options(&self, config: &Config) -> Result<ResolverOptions, CheckError> {
        let mut dns = ResolverOptions::from(&config.dns);
        if !self.nameservers.is_empty() {
            dns.nameservers = Some(
                self.nameservers
                    .iter()
                    .map(|s| {
                        parse_nameserver(s)
                            .map_err(|e| CheckError::Argument(format!("--nameserver: {e}")))
                    })
                    .collect::<Result<_, _>>()?,
            );
        }
        if let Some(secs) = self.dns_timeout {
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
}

/// Makes DNS and client text safe to print on a terminal: CR, LF, tab,
/// ESC and every other control character become visible escapes, so a TXT
/// record or PTR name cannot forge a line of a report or drive the
/// terminal.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_or_negative_dns_timeout_is_refused() {
        for bad in [0.0, -1.0, f64::NAN] {
            let args = DnsArgs {
                config: None,
                nameservers: Vec::new(),
                dns_timeout: Some(bad),
                format: Format::Text,
            };
            let err = args.resolver_options(&Config::defaults()).unwrap_err();
            assert!(err.to_string().contains("--dns-timeout"), "{err}");
        }
    }
}
