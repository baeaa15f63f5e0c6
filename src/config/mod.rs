//! The configuration: milter.yaml read in two steps, a raw serde struct
//! that refuses unknown keys ([`raw`]), then a validated [`Config`] of real
//! types. A bad file is refused with one line that names the file, the key
//! (and line where known) and what is wrong. This is the only module that
//! knows YAML.

mod duration;
mod raw;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use tollgate_checks::{Action, Policy, Settings, SkipLists, Stage};

use duration::parse_duration;
use raw::RawConfig;

/// The default configuration file.
pub const DEFAULT_PATH: &str = "/etc/tollgate/milter.yaml";

/// Where the milter listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// `inet:HOST:PORT`.
    Inet(SocketAddr),
    /// `unix:PATH`.
    Unix(PathBuf),
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Inet(addr) => write!(f, "inet:{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:").or_else(|| s.strip_prefix("local:")) {
            if path.is_empty() {
                return Err("unix: needs a socket path".to_owned());
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        let Some(rest) = s.strip_prefix("inet:").or_else(|| s.strip_prefix("inet6:")) else {
            return Err(format!(
                "{s:?} is not inet:HOST:PORT or unix:PATH (e.g. inet:127.0.0.1:8894)"
            ));
        };
        // inet:PORT@HOST is Sendmail's spelling; accept it too.
        let candidate = match rest.split_once('@') {
            Some((port, host)) => format!("{host}:{port}"),
            None => rest.to_owned(),
        };
        let (host, port) = candidate
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} has no port (e.g. inet:127.0.0.1:8894)"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{port:?} is not a port number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = match host {
            "localhost" => IpAddr::from([127, 0, 0, 1]),
            "*" | "" => IpAddr::from([0, 0, 0, 0]),
            other => other
                .parse()
                .map_err(|_| format!("{other:?} is not an IP address"))?,
        };
        Ok(Listen::Inet(SocketAddr::new(ip, port)))
    }
}

/// When the reply is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectAt {
    /// At RCPT TO, so postmaster@ and abuse@ stay reachable (the default).
    Rcpt,
    /// As soon as the verdict is known (CONNECT, HELO or MAIL).
    Earliest,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Which headers are added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    /// `Received-SPF`.
    pub received_spf: bool,
    /// `Authentication-Results`.
    pub authentication_results: bool,
}

/// How DNS is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dns {
    /// Nameservers; `None` for those of /etc/resolv.conf.
    pub nameservers: Option<Vec<SocketAddr>>,
    /// Per-query timeout.
    pub timeout: Duration,
    /// Tries per query.
    pub attempts: usize,
    /// Answers kept in the shared cache.
    pub cache_size: usize,
}

/// Logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    /// `error`, `warn`, `info`, `debug` or `trace` (or a tracing filter).
    pub level: String,
    /// Text or JSON lines.
    pub format: LogFormat,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Where to listen.
    pub listen: Listen,
    /// Permissions of a unix socket.
    pub socket_mode: u32,
    /// Group of a unix socket.
    pub socket_group: Option<String>,
    /// Most milter connections served at once.
    pub max_connections: usize,
    /// authserv-id for Authentication-Results; `None`: the MTA's `j` macro, else the host name.
    pub authserv_id: Option<String>,
    /// When to reply.
    pub reject_at: RejectAt,
    /// Recipients that are accepted even when the verdict is reject.
    pub exempt_recipients: Vec<String>,
    /// Log what would be done, never reject.
    pub dry_run: bool,
    /// Which headers to add.
    pub headers: Headers,
    /// DNS.
    pub dns: Dns,
    /// The checks' settings: policy, skip lists, this host's names, time budget.
    pub checks: Settings,
    /// Logging.
    pub log: Log,
    /// How long sessions may take to finish after SIGTERM.
    pub shutdown_timeout: Duration,
}

/// A configuration that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// The key, dotted (`dns.timeout`), or `-` when it concerns the whole file.
    pub key: String,
    /// The line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    /// One line: control characters from the file (an unknown key quoted
    /// by the YAML parser can hold line breaks) are escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = format!("{}: ", self.file);
        if self.key != "-" {
            line.push_str(&self.key);
            if let Some(n) = self.line {
                line.push_str(&format!(" (line {n})"));
            }
            line.push_str(": ");
        } else if let Some(n) = self.line {
            line.push_str(&format!("line {n}: "));
        }
        line.push_str(&self.problem);
        for c in line.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            key: "-".to_owned(),
            line: None,
            problem: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Validates configuration text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| yaml_error(&file, &e))?
        };
        Validator { file, text }.validate(raw, path)
    }

    /// The built-in defaults (what an empty file gives).
    pub fn defaults() -> Config {
        Config::parse("", Path::new("(defaults)")).expect("the defaults are valid")
    }
}

fn yaml_error(file: &str, e: &serde_yaml::Error) -> ConfigError {
    // serde_yaml writes "path.to.key: problem at line L column C".
    let message = e.to_string();
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_owned();
    let (key, problem) = match message.split_once(": ") {
        Some((key, problem)) if !key.contains(' ') => (key.to_owned(), problem.to_owned()),
        _ => ("-".to_owned(), message),
    };
    ConfigError {
        file: file.to_owned(),
        key,
        line: e.location().map(|l| l.line()),
        problem,
    }
}

struct Validator<'a> {
    file: String,
    text: &'a str,
}

impl Validator<'_> {
    fn error(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
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

    fn duration(
        &self,
        key: &str,
        value: Option<&serde_yaml::Value>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match value {
            None => Ok(default),
            Some(v) => {
                let d = parse_duration(v).map_err(|e| self.error(key, e))?;
                if d.is_zero() {
                    return Err(self.error(key, "must be more than zero"));
                }
                Ok(d)
            }
        }
    }

    fn validate(&self, raw: RawConfig, path: &Path) -> Result<Config, ConfigError> {
        let listen = match &raw.listen {
            None => Listen::Inet(SocketAddr::from(([127, 0, 0, 1], 8894))),
            Some(text) => text.parse().map_err(|e| self.error("listen", e))?,
        };
        let socket_mode = match &raw.socket_mode {
            None => 0o660,
            Some(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| {
                    self.error(
                        "socket_mode",
                        format!("{text:?} is not an octal mode like \"0660\""),
                    )
                })?,
        };
        let max_connections = raw.max_connections.unwrap_or(256);
        if max_connections == 0 {
            return Err(self.error("max_connections", "must be at least 1"));
        }
        let reject_at = match raw.reject_at.as_deref() {
            None | Some("rcpt") => RejectAt::Rcpt,
            Some("earliest") => RejectAt::Earliest,
            Some(other) => {
                return Err(self.error("reject_at", format!("{other:?} is not rcpt or earliest")));
            }
        };
        let hostname = match raw.hostname {
            Some(name) if !name.trim().is_empty() => name.trim().to_owned(),
            _ => system_hostname(),
        };
        let authserv_id = raw.authserv_id.filter(|id| !id.trim().is_empty());
        if let Some(id) = &authserv_id
            && id.chars().any(|c| !c.is_ascii_graphic() || c == ';')
        {
            return Err(self.error(
                "authserv_id",
                "must be printable ASCII without spaces or ';'",
            ));
        }

        let dns = self.dns(&raw.dns)?;
        let time_budget = self.duration(
            "dns.time_budget",
            raw.dns.time_budget.as_ref(),
            Duration::from_secs(8),
        )?;
        let shutdown_timeout = self.duration(
            "shutdown_timeout",
            raw.shutdown_timeout.as_ref(),
            Duration::from_secs(30),
        )?;

        let mut skip = SkipLists::default();
        if let Some(networks) = &raw.skip.networks {
            skip.trusted_networks = networks
                .iter()
                .map(|n| parse_network(n).map_err(|e| self.error("skip.networks", e)))
                .collect::<Result<_, _>>()?;
        }
        if let Some(auth) = raw.skip.authenticated {
            skip.authenticated = auth;
        }
        skip.helo_names = lower(raw.skip.helo_names);
        skip.sender_domains = lower(raw.skip.sender_domains);

        let policy = self.policy(&raw.policy)?;
        let mut local_names = lower(raw.local_names);
        if !local_names.contains(&hostname.to_ascii_lowercase()) {
            local_names.push(hostname.to_ascii_lowercase());
        }
        let checks = Settings {
            policy,
            skip,
            local_names,
            refused_helo: lower(raw.helo.refused),
            receiver: hostname,
            time_budget,
        };

        let log = Log {
            level: raw.log.level.unwrap_or_else(|| "info".to_owned()),
            format: match raw.log.format.as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(self.error("log.format", format!("{other:?} is not text or json")));
                }
            },
        };
        if !["error", "warn", "info", "debug", "trace"].contains(&log.level.as_str())
            && !log.level.contains('=')
        {
            return Err(self.error(
                "log.level",
                format!("{:?} is not error, warn, info, debug or trace", log.level),
            ));
        }

        Ok(Config {
            path: path.to_owned(),
            listen,
            socket_mode,
            socket_group: raw.socket_group.filter(|g| !g.is_empty()),
            max_connections,
            authserv_id,
            reject_at,
            exempt_recipients: raw
                .exempt_recipients
                .map(lower)
                .unwrap_or_else(|| vec!["postmaster".to_owned(), "abuse".to_owned()]),
            dry_run: raw.dry_run,
            headers: Headers {
                received_spf: raw.headers.received_spf,
                authentication_results: raw.headers.authentication_results,
            },
            dns,
            checks,
            log,
            shutdown_timeout,
        })
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
        let attempts = raw.attempts.unwrap_or(2);
        if !(1..=10).contains(&attempts) {
            return Err(self.error("dns.attempts", "must be between 1 and 10"));
        }
        Ok(Dns {
            nameservers,
            timeout: self.duration("dns.timeout", raw.timeout.as_ref(), Duration::from_secs(3))?,
            attempts,
            cache_size: raw.cache_size.unwrap_or(10_000),
        })
    }

    fn policy(
        &self,
        raw: &std::collections::BTreeMap<String, serde_yaml::Value>,
    ) -> Result<Policy, ConfigError> {
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
                            .ok_or_else(|| "expected reject, tempfail or tag".to_owned())
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
}

fn lower(list: Vec<String>) -> Vec<String> {
    list.into_iter()
        .map(|s| s.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
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

#[cfg(test)]
mod tests;
