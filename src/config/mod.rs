//! The configuration: milter.yaml read in three steps: the file is read
//! with its size, emptiness and nesting checked before any YAML parser sees
//! it ([`file`]), parsed into a raw serde struct that refuses unknown keys
//! ([`raw`]), then validated into a [`Config`] of real types with every
//! number in range ([`validate`]). A bad file is refused with one line that
//! names the file, the key (and line where known) and what is wrong. This
//! is the only module that knows YAML.

mod dnsbl;
mod duration;
mod file;
mod greylist;
mod raw;
mod resolver;
mod validate;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tollgate_checks::Settings;

use raw::RawConfig;
use validate::Validator;

pub use file::MAX_FILE_SIZE;
pub use greylist::{DEFAULT_GREYLIST_PATH, DEFAULT_REDIS_URL, Greylisting, StoreKind};
pub use validate::parse_nameserver;

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

/// The Prometheus metrics listener.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Where `/metrics` is served over HTTP; `None` (the default): no
    /// listener, and nothing is counted.
    pub listen: Option<SocketAddr>,
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
    /// How long a milter connection may stay silent before it is closed.
    pub connection_timeout: Duration,
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
    /// Greylisting: the store and its times (used when a policy result
    /// is `greylist`).
    pub greylist: Greylisting,
    /// Logging.
    pub log: Log,
    /// How long sessions may take to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    /// Prometheus metrics.
    pub metrics: Metrics,
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

impl ConfigError {
    /// An error about the whole file (no key).
    pub(crate) fn file(
        path: &Path,
        line: Option<usize>,
        problem: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: path.display().to_string(),
            key: "-".to_owned(),
            line,
            problem: problem.into(),
        }
    }
}

impl Config {
    /// Reads and validates a configuration file. The file is refused before
    /// it is parsed when it is larger than [`MAX_FILE_SIZE`], empty (only
    /// blanks and comments: a half-written file must not mean "all
    /// defaults") or has more `[` and `{` than any real configuration (the
    /// parser's time grows with their nesting). This blocks: in async code use
    /// [`Config::load_off_thread`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = file::read(path)?;
        Config::parse(&text, path)
    }

    /// [`Config::load`] on a blocking thread, so that reading and parsing
    /// never stall the sessions on the runtime.
    pub async fn load_off_thread(path: PathBuf) -> Result<Config, ConfigError> {
        let display = path.clone();
        tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .unwrap_or_else(|e| {
                Err(ConfigError::file(
                    &display,
                    None,
                    format!("cannot load: {e}"),
                ))
            })
    }

    /// Validates configuration text; `path` names it in errors. The same
    /// checks as [`Config::load`] apply: too large, empty or too deeply
    /// nestable text is refused.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        file::check(text, path)?;
        let raw: Option<RawConfig> =
            serde_yaml::from_str(text).map_err(|e| yaml_error(path, &e))?;
        // A document that is only `---` or `~` is as empty as no document.
        let raw = raw.ok_or_else(|| ConfigError::file(path, None, file::EMPTY))?;
        Validator::new(path, text).validate(raw)
    }

    /// The authserv-id of our `Authentication-Results`: `authserv_id`,
    /// else the MTA's host name (macro `j`), else `hostname`.
    pub fn authserv_id_for(&self, mta_host: Option<&str>) -> String {
        self.authserv_id
            .clone()
            .or_else(|| mta_host.filter(|h| !h.is_empty()).map(str::to_owned))
            .unwrap_or_else(|| self.checks.receiver.clone())
    }

    /// The built-in defaults (what `{}` gives).
    pub fn defaults() -> Config {
        Validator::new(Path::new("(defaults)"), "")
            .validate(RawConfig::default())
            .expect("the defaults are valid")
    }
}

fn yaml_error(path: &Path, e: &serde_yaml::Error) -> ConfigError {
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
        file: path.display().to_string(),
        key,
        line: e.location().map(|l| l.line()),
        problem,
    }
}

#[cfg(test)]
mod tests;
