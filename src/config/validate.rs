//! From the raw file to a [`Config`] of real types, one method per section.
//! Every number is range-checked here, so that nothing downstream (the
//! connection limit, timers, the resolver) meets a value it cannot take:
//! `max_connections: 2305843009213693952` once got as far as
//! `listening on …` and then panicked.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use tollgate_checks::{Action, Policy, Settings, SkipLists, Stage};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

use super::duration::parse_duration;
use super::raw::{self, RawConfig};
use super::{Config, ConfigError, Dns, Headers, Listen, Log, LogFormat, Metrics, RejectAt};

/// `max_connections`: at least one; at most what a process can hold open
/// (each is a descriptor and a task).
const MAX_CONNECTIONS: RangeInclusive<usize> = 1..=100_000;
/// `dns.attempts`.
const DNS_ATTEMPTS: RangeInclusive<usize> = 1..=10;
/// `dns.cache_size`: 0 turns the cache off.
const DNS_CACHE_SIZE: RangeInclusive<usize> = 0..=1_000_000;

/// The allowed range of a duration key.
pub(super) struct Span {
    pub(super) min: Duration,
    pub(super) max: Duration,
}

const MS: Duration = Duration::from_millis(1);
const fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

/// `dns.timeout`: one query; past a minute it is no longer an answer.
const DNS_TIMEOUT: Span = Span {
    min: MS,
    max: minutes(1),
};
/// `dns.time_budget`: well past any MTA's milter command timeout.
const TIME_BUDGET: Span = Span {
    min: MS,
    max: minutes(10),
};
/// `shutdown_timeout`.
const SHUTDOWN_TIMEOUT: Span = Span {
    min: MS,
    max: minutes(60),
};
/// `connection_timeout`: below a second every session would break; a day
/// is far past the longest SMTP session.
const CONNECTION_TIMEOUT: Span = Span {
    min: Duration::from_secs(1),
    max: minutes(24 * 60),
};

/// The default `connection_timeout`: twice Postfix's `smtpd_timeout` (300 s),
/// the longest an SMTP server waits for the client's next command; see
/// docs/configuration.md for what else it must cover.
pub(crate) const DEFAULT_CONNECTION_TIMEOUT: Duration = minutes(10);

/// Validates one file's raw configuration; errors carry its name and lines.
pub(crate) struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl<'a> Validator<'a> {
    pub(crate) fn new(path: &'a Path, text: &'a str) -> Validator<'a> {
        Validator { path, text }
    }

    pub(super) fn error(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.path.display().to_string(),
            key: key.to_owned(),
            line: self.line_of(key),
            problem: problem.into(),
        }
    }

    /// The line where a dotted key is written, found by walking the keys
    /// in order through the text; `None` when not written (a default).
    fn line_of(&self, key: &str) -> Option<usize> {
        let mut from = 0;
        let mut line = None;
        let lines: Vec<&str> = self.text.lines().collect();
        for part in key.split('.') {
            let found = lines.iter().enumerate().skip(from).find(|(_, l)| {
                let t = l.trim_start().trim_start_matches("- ");
                t.starts_with(&format!("{part}:"))
                    || t.starts_with(&format!("\"{part}\":"))
                    || t.starts_with(&format!("'{part}':"))
            })?;
            from = found.0 + 1;
            line = Some(found.0 + 1);
        }
        line
    }

    /// A count within `range`, or `default` when not written.
    pub(super) fn count(
        &self,
        key: &str,
        value: Option<usize>,
        default: usize,
        range: RangeInclusive<usize>,
    ) -> Result<usize, ConfigError> {
        let n = value.unwrap_or(default);
        if range.contains(&n) {
            Ok(n)
        } else {
            Err(self.error(
                key,
                format!(
                    "{n} is out of range: must be between {} and {}",
                    range.start(),
                    range.end()
                ),
            ))
        }
    }

    /// A duration within `span`, or `default` when not written.
    pub(super) fn duration(
        &self,
        key: &str,
        value: Option<&serde_yaml::Value>,
        default: Duration,
        span: &Span,
    ) -> Result<Duration, ConfigError> {
        let Some(value) = value else {
            return Ok(default);
        };
        let d = parse_duration(value).map_err(|e| self.error(key, e))?;
        if d.is_zero() {
            return Err(self.error(key, "must be more than zero"));
        }
        if d < span.min || d > span.max {
            return Err(self.error(
                key,
                format!(
                    "{} is out of range: must be between {} and {}",
                    show(d),
                    show(span.min),
                    show(span.max)
                ),
            ));
        }
        Ok(d)
    }

    /// The whole configuration, section by section.
    pub(crate) fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let RawConfig {
            listen,
            socket_mode,
            socket_group,
            max_connections,
            connection_timeout,
            hostname,
            authserv_id,
            local_names,
            reject_at,
            exempt_recipients,
            dry_run,
            shutdown_timeout,
            headers,
            dns,
            dnsbl,
            skip,
            helo,
            policy,
            greylist,
            log,
            metrics,
        } = raw;
        let listen = self.listen(listen.as_deref())?;
        let metrics = self.metrics(metrics, &listen)?;
        let socket_mode = self.socket_mode(socket_mode.as_deref())?;
        let max_connections =
            self.count("max_connections", max_connections, 256, MAX_CONNECTIONS)?;
        let connection_timeout = self.duration(
            "connection_timeout",
            connection_timeout.as_ref(),
            DEFAULT_CONNECTION_TIMEOUT,
            &CONNECTION_TIMEOUT,
        )?;
        let shutdown_timeout = self.duration(
            "shutdown_timeout",
            shutdown_timeout.as_ref(),
            Duration::from_secs(30),
            &SHUTDOWN_TIMEOUT,
        )?;
        let hostname = match hostname {
            Some(name) if !name.trim().is_empty() => name.trim().to_owned(),
            _ => system_hostname(),
        };
        let authserv_id = self.authserv_id(authserv_id)?;
        let reject_at = self.reject_at(reject_at.as_deref())?;
        let time_budget = self.duration(
            "dns.time_budget",
            dns.time_budget.as_ref(),
            tollgate_checks::DEFAULT_TIME_BUDGET,
            &TIME_BUDGET,
        )?;
        let parallel_lookups = dns.parallel.unwrap_or(true);
        let dns = self.dns(&dns)?;
        let greylist = self.greylist(greylist)?;
        let checks = Settings {
            policy: self.policy(&policy)?,
            skip: self.skip(skip)?,
            local_names: with_hostname(lower(local_names), &hostname),
            refused_helo: lower(helo.refused),
            receiver: hostname,
            dnsbl: self.dnsbl(dnsbl)?,
            time_budget,
            parallel_lookups,
            greylist_delay: greylist.settings.delay,
        };
        Ok(Config {
            path: self.path.to_owned(),
            listen,
            socket_mode,
            socket_group: socket_group.filter(|g| !g.is_empty()),
            max_connections,
            connection_timeout,
            authserv_id,
            reject_at,
            exempt_recipients: exempt_recipients
                .map(lower)
                .unwrap_or_else(|| vec!["postmaster".to_owned(), "abuse".to_owned()]),
            dry_run,
            headers: Headers {
                received_spf: headers.received_spf,
                authentication_results: headers.authentication_results,
            },
            dns,
            checks,
            greylist,
            log: self.log(log)?,
            shutdown_timeout,
            metrics,
        })
    }

    /// `metrics.listen`: an address and port, not the milter's own.
    fn metrics(&self, raw: raw::RawMetrics, listen: &Listen) -> Result<Metrics, ConfigError> {
        let Some(text) = raw.listen.filter(|t| !t.trim().is_empty()) else {
            return Ok(Metrics::default());
        };
        let addr: SocketAddr = text.trim().parse().map_err(|_| {
            self.error(
                "metrics.listen",
                format!("{text:?} is not an address and port (e.g. 127.0.0.1:9187 or [::1]:9187)"),
            )
        })?;
        if *listen == Listen::Inet(addr) && addr.port() != 0 {
            return Err(self.error(
                "metrics.listen",
                format!("{addr} is the milter's own listen address"),
            ));
        }
        Ok(Metrics { listen: Some(addr) })
    }

    fn listen(&self, text: Option<&str>) -> Result<Listen, ConfigError> {
        match text {
            None => Ok(Listen::Inet(SocketAddr::from(([127, 0, 0, 1], 8894)))),
            Some(text) => text.parse().map_err(|e| self.error("listen", e)),
        }
    }

    /// An octal mode of at most 0777 (no setuid, setgid or sticky bits).
    fn socket_mode(&self, text: Option<&str>) -> Result<u32, ConfigError> {
        let Some(text) = text else {
            return Ok(0o660);
        };
        let digits = text.trim().trim_start_matches("0o");
        if digits.is_empty()
            || digits.len() > 4
            || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
        {
            return Err(self.error(
                "socket_mode",
                format!("{text:?} is not an octal mode like \"0660\""),
            ));
        }
        let mode = u32::from_str_radix(digits, 8).unwrap_or(u32::MAX);
        if mode > 0o777 {
            return Err(self.error(
                "socket_mode",
                format!("{text:?} is out of range: must be between \"0000\" and \"0777\""),
            ));
        }
        Ok(mode)
    }

    fn authserv_id(&self, id: Option<String>) -> Result<Option<String>, ConfigError> {
        let id = id.filter(|id| !id.trim().is_empty());
        if let Some(id) = &id
            && id.chars().any(|c| !c.is_ascii_graphic() || c == ';')
        {
            return Err(self.error(
                "authserv_id",
                "must be printable ASCII without spaces or ';'",
            ));
        }
        Ok(id)
    }

    fn reject_at(&self, text: Option<&str>) -> Result<RejectAt, ConfigError> {
        match text {
            None | Some("rcpt") => Ok(RejectAt::Rcpt),
            Some("earliest") => Ok(RejectAt::Earliest),
            Some(other) => {
                Err(self.error("reject_at", format!("{other:?} is not rcpt or earliest")))
            }
        }
    }

    fn dns(&self, raw: &raw::RawDns) -> Result<Dns, ConfigError> {
        let nameservers = if raw.nameservers.is_empty() {
            None
        } else {
            Some(
                raw.nameservers
                    .iter()
                    .map(|s| parse_nameserver(s).map_err(|e| self.error("dns.nameservers", e)))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        Ok(Dns {
            nameservers,
            timeout: self.duration(
                "dns.timeout",
                raw.timeout.as_ref(),
                Duration::from_secs(3),
                &DNS_TIMEOUT,
            )?,
            attempts: self.count("dns.attempts", raw.attempts, 2, DNS_ATTEMPTS)?,
            cache_size: self.count("dns.cache_size", raw.cache_size, 10_000, DNS_CACHE_SIZE)?,
        })
    }

    fn skip(&self, raw: raw::RawSkip) -> Result<SkipLists, ConfigError> {
        let mut skip = SkipLists::default();
        if let Some(networks) = &raw.networks {
            skip.trusted_networks = networks
                .iter()
                .map(|n| parse_network(n).map_err(|e| self.error("skip.networks", e)))
                .collect::<Result<_, _>>()?;
        }
        if let Some(auth) = raw.authenticated {
            skip.authenticated = auth;
        }
        skip.helo_names = lower(raw.helo_names);
        skip.sender_domains = lower(raw.sender_domains);
        skip.client_names = lower(raw.client_names);
        skip.forwarders = lower(raw.forwarders);
        for (i, domain) in skip.forwarders.iter().enumerate() {
            if !super::dnsbl::is_domain_name(domain) {
                let key = format!("skip.forwarders[{i}]");
                return Err(self.error(&key, format!("{domain:?} is not a domain name")));
            }
        }
        Ok(skip)
    }

    fn policy(&self, raw: &BTreeMap<String, serde_yaml::Value>) -> Result<Policy, ConfigError> {
        let mut policy = Policy::default();
        for (stage_name, value) in raw {
            let key = format!("policy.{stage_name}");
            let stage: Stage = stage_name.parse().map_err(|e: String| {
                self.error(
                    &key,
                    format!("{e} (stages: helo-syntax, fcrdns, helo-dns, spf-helo, spf-mailfrom)"),
                )
            })?;
            match value {
                serde_yaml::Value::String(s) if s == "off" => {
                    policy
                        .disable(stage)
                        .map_err(|e| self.error(&key, e.to_string()))?;
                }
                serde_yaml::Value::Bool(false) => {
                    policy
                        .disable(stage)
                        .map_err(|e| self.error(&key, e.to_string()))?;
                }
                serde_yaml::Value::Mapping(map) => {
                    for (result, action) in map {
                        let result = result.as_str().unwrap_or_default();
                        let key = format!("{key}.{result}");
                        let action: Action = action
                            .as_str()
                            .ok_or_else(|| "expected reject, tempfail, greylist or tag".to_owned())
                            .and_then(str::parse)
                            .map_err(|e| self.error(&key, e))?;
                        policy
                            .set(stage, result, action)
                            .map_err(|e| self.error(&key, e.to_string()))?;
                    }
                }
                _ => {
                    return Err(self.error(
                        &key,
                        "expected off or a mapping of results to actions (e.g. fail: reject)",
                    ));
                }
            }
        }
        Ok(policy)
    }

    fn log(&self, raw: raw::RawLog) -> Result<Log, ConfigError> {
        let format = match raw.format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(self.error("log.format", format!("{other:?} is not text or json")));
            }
        };
        let level = raw.level.unwrap_or_else(|| "info".to_owned());
        check_log_filter(&level).map_err(|e| self.error("log.level", e))?;
        Ok(Log { level, format })
    }
}

/// Checks a whole tracing filter (`info`, `tollgate=debug,indymilter=warn`):
/// every directive must parse, and one without `=` must be a level. The
/// tracing filter itself drops a directive it cannot parse, and takes a
/// bare word as a target at level trace: either way logging would go
/// quiet without a word.
fn check_log_filter(filter: &str) -> Result<(), String> {
    const EXPECTED: &str = "error, warn, info, debug, trace, off, or target=level";
    if filter.trim().is_empty() {
        return Err(format!("is empty (expected {EXPECTED})"));
    }
    for directive in directives(filter) {
        let directive = directive.trim();
        if directive.is_empty() {
            continue;
        }
        if !directive.contains(['=', '[']) && LevelFilter::from_str(directive).is_err() {
            return Err(format!(
                "{directive:?} is not a level (expected {EXPECTED})"
            ));
        }
        EnvFilter::builder()
            .parse(directive)
            .map_err(|e| format!("{directive:?} is not a log filter directive: {e}"))?;
    }
    Ok(())
}

/// The comma-separated directives of a filter; commas inside `[…]` or
/// `{…}` (span field lists) do not separate.
fn directives(filter: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in filter.char_indices() {
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&filter[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&filter[start..]);
    out
}

/// A duration as it would be written in the file: `250ms`, `30s`, `10m`, `1h`.
fn show(d: Duration) -> String {
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{d:?}");
    }
    let ms = d.as_millis();
    let s = d.as_secs();
    if d.subsec_millis() != 0 || s == 0 {
        format!("{ms}ms")
    } else if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

fn lower(list: Vec<String>) -> Vec<String> {
    list.into_iter()
        .map(|s| s.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// This host's own names: `local_names` and the host name.
fn with_hostname(mut names: Vec<String>, hostname: &str) -> Vec<String> {
    let hostname = hostname.to_ascii_lowercase();
    if !names.contains(&hostname) {
        names.push(hostname);
    }
    names
}

fn parse_network(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{text:?} is not a network like 192.0.2.0/24 or an address"))
}

/// `IP`, `IP:PORT`, `[IPv6]:PORT`; the port defaults to 53.
pub fn parse_nameserver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| {
            format!("{text:?} is not a nameserver address like 192.0.2.53 or 192.0.2.53:5353")
        })
}

/// This host's name, from the kernel; `localhost` if unreadable.
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
