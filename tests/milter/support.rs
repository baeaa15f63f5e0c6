//! Harness for tests/milter.rs: a [`Running`] milter (bound to
//! 127.0.0.1:0, configuration in a file of its own temporary directory,
//! DNS from a testdns server), MTA-side helpers over `indymilter-test`,
//! parsers for the `Received-SPF` and `Authentication-Results` values the
//! milter inserts, and a log capture for the current thread.

use std::ffi::CString;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indymilter_test::{EomAction, EomActions, ProtoOpts, Status, TestConnection};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tollgate::config::{Config, Listen};
use tollgate::dns::memory::Zone;
use tollgate::milter::{Milter, MilterHandle, ServeError};
use tollgate_testdns::TestDns;

#[path = "../common/temp_dir.rs"]
pub mod temp_dir;
use temp_dir::TempDir;

/// This host's name in the tests: `receiver=` and the authserv-id.
pub const RECEIVER: &str = "mx.test.example";

/// How long the MTA side waits for any one answer before the test fails.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What a test changes in the configuration.
#[derive(Clone, Debug)]
pub struct Setup {
    /// More top-level keys (YAML), e.g. `reject_at: earliest\n`.
    pub extra: String,
    /// `dns.cache_size`, when not the default.
    pub cache_size: Option<usize>,
    /// `shutdown_timeout`.
    pub shutdown_timeout: &'static str,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            extra: String::new(),
            cache_size: None,
            shutdown_timeout: "5s",
        }
    }
}

impl Setup {
    /// The defaults plus `extra` top-level keys.
    pub fn extra(extra: &str) -> Setup {
        Setup {
            extra: extra.to_owned(),
            ..Setup::default()
        }
    }

    /// The configuration file's text for a nameserver at `dns`.
    pub fn text(&self, dns: SocketAddr) -> String {
        let cache = self
            .cache_size
            .map(|n| format!("  cache_size: {n}\n"))
            .unwrap_or_default();
        format!(
            "listen: inet:127.0.0.1:0\n\
             hostname: {RECEIVER}\n\
             authserv_id: {RECEIVER}\n\
             shutdown_timeout: {}\n\
             dns:\n  nameservers: [\"{dns}\"]\n  timeout: 300ms\n  attempts: 1\n  time_budget: 2s\n{cache}\
             {}",
            self.shutdown_timeout, self.extra
        )
    }
}

/// A milter serving on 127.0.0.1 with DNS from testdns.
#[derive(Debug)]
pub struct Running {
    /// The DNS server it asks.
    pub dns: TestDns,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its reload handle.
    pub handle: MilterHandle,
    /// Where it serves metrics (with `metrics.listen` in the setup).
    #[allow(dead_code)] // read by tests/metrics.rs only
    pub metrics: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
    dir: TempDir,
}

impl Running {
    /// Starts testdns with `zone` and a milter configured by `setup`.
    pub async fn start(zone: Zone, setup: Setup) -> Running {
        Running::start_with_clock(zone, setup, Arc::new(tollgate_greylist::SystemClock)).await
    }

    /// [`start`](Self::start) with greylisting on `clock`.
    pub async fn start_with_clock(
        zone: Zone,
        setup: Setup,
        clock: Arc<dyn tollgate_greylist::Clock>,
    ) -> Running {
        let dns = TestDns::start(zone).await.expect("testdns starts");
        let dir = TempDir::new("milter-test");
        let path = dir.path().join("milter.yaml");
        std::fs::write(&path, setup.text(dns.addr())).expect("write the configuration");
        let config = Config::load(&path).expect("the test configuration is valid");
        let milter = Milter::bind_with_clock(config, clock)
            .await
            .expect("the milter binds");
        let addr = match milter.listen() {
            Listen::Inet(addr) => *addr,
            other => panic!("bound to {other}"),
        };
        assert_ne!(addr.port(), 0);
        let metrics = milter.metrics_listen();
        let handle = milter.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(milter.run(async move {
            let _ = stopped.await;
        }));
        Running {
            dns,
            addr,
            handle,
            metrics,
            stop: Some(stop),
            task: Some(task),
            dir,
        }
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("milter.yaml")
    }

    /// Rewrites the configuration file for `setup` (for `reload`).
    pub fn write_config(&self, setup: &Setup) {
        std::fs::write(self.config_path(), setup.text(self.dns.addr())).expect("write");
    }

    /// A validated configuration for `setup` (for `apply`).
    pub fn config(&self, setup: &Setup) -> Config {
        Config::parse(&setup.text(self.dns.addr()), &self.config_path()).expect("valid")
    }

    /// Opens a milter connection and sends CONNECT for a client at `ip`.
    pub async fn connect(&self, ip: &str) -> TestConnection {
        let mut conn = TestConnection::configure()
            .read_timeout(READ_TIMEOUT)
            .write_timeout(READ_TIMEOUT)
            .open_tcp(self.addr)
            .await
            .expect("the milter accepts a connection");
        let ip: IpAddr = ip.parse().expect("an IP address");
        let status = conn
            .connect(format!("[{ip}]"), (ip, 40_000))
            .await
            .expect("the milter answers CONNECT");
        // CONNECT never refuses; where the MTA offers it, it is told no
        // reply is needed (Noreply), which means the same.
        assert!(
            matches!(status, Status::Continue | Status::Noreply),
            "CONNECT from {ip}: {status:?}"
        );
        conn
    }

    /// CONNECT from `ip` and HELO `helo`, both continued.
    pub async fn client(&self, ip: &str, helo: &str) -> TestConnection {
        let mut conn = self.connect(ip).await;
        let status = conn.helo(helo).await.expect("the milter answers HELO");
        assert_eq!(status, Status::Continue, "HELO {helo} from {ip}");
        conn
    }

    /// The message's headers, end of headers and end of message; the
    /// milter's actions and final status.
    pub async fn eom(
        &self,
        conn: &mut TestConnection,
        headers: &[(&str, &str)],
    ) -> (EomActions, Status) {
        // Like an MTA, send only what the milter negotiated to receive.
        let opts = conn.negotiated_opts();
        if !opts.contains(ProtoOpts::NO_HEADER) {
            for (name, value) in headers {
                let status = conn.header(*name, *value).await.expect("header");
                assert!(
                    matches!(status, Status::Continue | Status::Noreply),
                    "header {name}: {status:?}"
                );
            }
        }
        if !opts.contains(ProtoOpts::NO_EOH) {
            let status = conn.eoh().await.expect("eoh");
            assert!(
                matches!(status, Status::Continue | Status::Noreply),
                "eoh: {status:?}"
            );
        }
        conn.eom().await.expect("the milter answers end of message")
    }

    /// Completes the shutdown future given to `run`.
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits (at most `limit`) for `run` to return.
    pub async fn wait_stopped(&mut self, limit: Duration) -> Result<(), String> {
        let task = self.task.take().expect("run is still running");
        match tokio::time::timeout(limit, task).await {
            Err(_) => Err(format!("run did not return within {limit:?}")),
            Ok(Err(join)) => Err(format!("run panicked: {join}")),
            Ok(Ok(Err(e))) => Err(format!("run failed: {e}")),
            Ok(Ok(Ok(()))) => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The reply text of a refusal (`550 5.7.23 …`).
pub fn reply(status: &Status) -> Option<String> {
    match status {
        Status::Reject { message } | Status::Tempfail { message } => message
            .as_ref()
            .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned()),
        _ => None,
    }
}

/// MAIL and RCPT, both continued.
pub async fn assert_accepted(conn: &mut TestConnection, sender: &str, rcpt: &str) {
    let status = conn.mail([sender]).await.expect("MAIL answered");
    assert_eq!(status, Status::Continue, "MAIL FROM:{sender}");
    let status = conn.rcpt([rcpt]).await.expect("RCPT answered");
    assert_eq!(status, Status::Continue, "RCPT TO:{rcpt} (from {sender})");
}

/// MAIL continued (the reply is kept for RCPT).
pub async fn assert_no_reply_before_rcpt(conn: &mut TestConnection, sender: &str) {
    let status = conn.mail([sender]).await.expect("MAIL answered");
    assert_eq!(status, Status::Continue, "MAIL FROM:{sender}");
}

/// The inserted headers, as (name, value), in the order of the actions.
pub fn inserted_headers(actions: &EomActions) -> Vec<(String, String)> {
    actions
        .actions
        .iter()
        .filter_map(|a| match a {
            EomAction::InsertHeader { index, name, value } => {
                assert_eq!(*index, 0, "our headers go on top");
                Some((lossy(name), lossy(value)))
            }
            EomAction::AddHeader { name, .. } => {
                panic!("{} appended instead of inserted on top", lossy(name))
            }
            _ => None,
        })
        .collect()
}

fn lossy(s: &CString) -> String {
    String::from_utf8_lossy(s.as_bytes()).into_owned()
}

/// The values of the headers called `name`.
pub fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn exactly_one<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    let values = header_values(headers, name);
    assert_eq!(values.len(), 1, "{name} exactly once: {headers:?}");
    values[0]
}

/// Joins folded lines.
fn unfold(value: &str) -> String {
    value
        .replace("\r\n", "\n")
        .replace("\n\t", " ")
        .replace("\n ", " ")
}

/// Splits at `sep` outside quoted strings and comments.
fn split_outside(value: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let (mut quoted, mut depth, mut escaped) = (false, 0usize, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' && depth == 0 {
            quoted = !quoted;
        } else if !quoted && c == '(' {
            depth += 1;
        } else if !quoted && c == ')' {
            depth = depth.saturating_sub(1);
        } else if !quoted && depth == 0 && c == sep {
            parts.push(String::new());
            continue;
        }
        parts.last_mut().expect("one part").push(c);
    }
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Removes comments.
fn strip_comments(value: &str) -> String {
    let mut out = String::new();
    let (mut quoted, mut depth, mut escaped) = (false, 0usize, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// A parsed `Received-SPF` value.
#[derive(Debug)]
pub struct ReceivedSpf {
    /// The unfolded value.
    pub raw: String,
    /// The result keyword.
    pub result: String,
    /// The comment after the result.
    pub comment: String,
    /// `key=value` pairs, values as written (quotes kept).
    pub fields: Vec<(String, String)>,
}

impl ReceivedSpf {
    /// The value of `key`, if present exactly once (asserted).
    pub fn field(&self, key: &str) -> Option<&str> {
        let found: Vec<&str> = self
            .fields
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(found.len() <= 1, "{key} more than once: {}", self.raw);
        found.first().copied()
    }
}

/// The one inserted `Received-SPF`, parsed.
pub fn received_spf(headers: &[(String, String)]) -> ReceivedSpf {
    let raw = unfold(exactly_one(headers, "Received-SPF"));
    let (result, rest) = raw.split_once(' ').unwrap_or((raw.as_str(), ""));
    let rest = rest.trim_start();
    let (comment, pairs) = if rest.starts_with('(') {
        let stripped = strip_comments(rest);
        let end = rest.len() - stripped.len();
        (rest[1..end.saturating_sub(1)].to_owned(), stripped)
    } else {
        (String::new(), rest.to_owned())
    };
    let fields = split_outside(&pairs, ';')
        .into_iter()
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p.as_str(), ""));
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    ReceivedSpf {
        result: result.to_owned(),
        comment,
        fields,
        raw,
    }
}

/// One resinfo: method, result, and properties as (`ptype.property`, value).
pub type ResInfo = (String, String, Vec<(String, String)>);

/// A parsed `Authentication-Results` value.
#[derive(Debug)]
pub struct AuthResults {
    /// The unfolded value.
    pub raw: String,
    /// The authserv-id.
    pub authserv_id: String,
    /// Each resinfo.
    pub results: Vec<ResInfo>,
}

impl AuthResults {
    /// The result of the first `method` with property `prop`, and the value.
    pub fn result(&self, method: &str, prop: &str) -> Option<(&str, &str)> {
        self.results.iter().find_map(|(m, r, props)| {
            (m == method)
                .then(|| props.iter().find(|(p, _)| p == prop))
                .flatten()
                .map(|(_, v)| (r.as_str(), v.as_str()))
        })
    }

    /// How many `method` results carry property `prop`.
    pub fn count(&self, method: &str, prop: &str) -> usize {
        self.results
            .iter()
            .filter(|(m, _, props)| m == method && props.iter().any(|(p, _)| p == prop))
            .count()
    }
}

/// The one inserted `Authentication-Results`, parsed.
pub fn ar(headers: &[(String, String)]) -> AuthResults {
    let raw = unfold(exactly_one(headers, "Authentication-Results"));
    let mut parts = split_outside(&raw, ';').into_iter();
    let authserv_id = strip_comments(&parts.next().unwrap_or_default())
        .trim()
        .to_owned();
    let results = parts
        .map(|part| {
            let plain = strip_comments(&part);
            let mut words = plain.split_whitespace();
            let (method, result) = words
                .next()
                .map(|w| w.split_once('=').unwrap_or((w, "")))
                .unwrap_or(("", ""));
            let props = words
                .filter_map(|w| w.split_once('='))
                .map(|(p, v)| (p.to_owned(), v.to_owned()))
                .collect();
            (method.to_owned(), result.to_owned(), props)
        })
        .collect();
    AuthResults {
        raw,
        authserv_id,
        results,
    }
}

/// Log lines written on this thread (tests run the milter on the test's
/// current-thread runtime, so its log lines are captured too).
#[derive(Clone, Debug, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures info-level log lines of this thread until the guard drops.
pub fn capture_logs() -> (LogCapture, tracing::subscriber::DefaultGuard) {
    let capture = LogCapture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (capture, tracing::subscriber::set_default(subscriber))
}
