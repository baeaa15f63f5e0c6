//! Side (b): the milter over the real milter protocol. One milter per
//! policy, bound to 127.0.0.1:0 with its configuration in a file (the
//! same file `tollgate check` reads); `indymilter-test` plays the MTA:
//! CONNECT, HELO, MAIL, RCPT and, when everything was accepted, end of
//! message. Every answer is kept, and the message's log line (found by
//! its queue id in a JSON log capture) says what the milter decided,
//! also under dry run and for exempt recipients.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indymilter_test::{EomAction, MacroStage, ProtoOpts, Status, TestConnection};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tollgate::config::{Config, Listen};
use tollgate::milter::{Milter, ServeError};

use super::corpus::{Conversation, Policy, RECEIVER, Scenario, Sender};

/// How long the MTA side waits for one answer, and for a log line,
/// before the test fails (a hang guard, not a measurement).
const PATIENCE: Duration = Duration::from_secs(15);

/// The configuration file's text for a policy and a nameserver.
pub fn config_text(policy: &Policy, dns: SocketAddr) -> String {
    format!(
        "listen: inet:127.0.0.1:0\n\
         hostname: {RECEIVER}\n\
         authserv_id: {RECEIVER}\n\
         dns:\n  nameservers: [\"{dns}\"]\n  timeout: 500ms\n  attempts: 1\n  time_budget: 3s\n\
         {}",
        policy.yaml
    )
}

pub use super::temp_dir::TempDir;

/// A milter serving one policy.
#[derive(Debug)]
pub struct Instance {
    pub addr: SocketAddr,
    pub config: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl Instance {
    /// Writes the configuration into `dir` and starts the milter on it.
    pub async fn start(policy: &Policy, dns: SocketAddr, dir: &Path) -> Instance {
        let config = dir.join(format!("{}.yaml", policy.name));
        std::fs::write(&config, config_text(policy, dns)).expect("write the configuration");
        let loaded = Config::load(&config)
            .unwrap_or_else(|e| panic!("policy {} is not valid: {e}", policy.name));
        let milter = Milter::bind(loaded).await.expect("the milter binds");
        let addr = match milter.listen() {
            Listen::Inet(addr) => *addr,
            other => panic!("bound to {other}"),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(milter.run(async move {
            let _ = stopped.await;
        }));
        Instance {
            addr,
            config,
            stop: Some(stop),
            task: Some(task),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The milter's answer to one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Continue,
    /// A 5xx refusal with its reply line.
    Reject(String),
    /// A 4xx refusal with its reply line.
    Tempfail(String),
    /// Anything else (never expected).
    Other(String),
}

impl Answer {
    fn from_status(status: &Status) -> Answer {
        // libmilter replies double `%` (src/milter/fields.rs); the MTA
        // sends one: compare what the client sees.
        let text = |m: &Option<std::ffi::CString>| {
            m.as_ref()
                .map(|m| String::from_utf8_lossy(m.as_bytes()).replace("%%", "%"))
                .unwrap_or_else(|| "(no reply text)".to_owned())
        };
        match status {
            Status::Continue => Answer::Continue,
            Status::Reject { message } => Answer::Reject(text(message)),
            Status::Tempfail { message } => Answer::Tempfail(text(message)),
            other => Answer::Other(format!("{other:?}")),
        }
    }

    pub fn is_continue(&self) -> bool {
        *self == Answer::Continue
    }
}

/// The message's log line, as far as the comparison needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// `accept`, `reject`, `tempfail`, or with `dry-run:` before it.
    pub action: String,
    /// The deciding stage, or empty.
    pub decided_by: String,
    /// The reply, or empty.
    pub reply: String,
    /// `<rcpt>(disposition)`, comma-separated.
    pub recipients: String,
    /// The stages that ran, `stage=result` separated by spaces.
    pub stages: String,
}

/// What the milter did with a scenario.
#[derive(Clone, Debug)]
pub struct MilterDid {
    /// `None` when the scenario sends no HELO.
    pub helo: Option<Answer>,
    /// The answer to the repeated EHLO ([`Conversation::EhloTwice`]).
    pub helo_again: Option<Answer>,
    pub mail: Answer,
    /// `None` when MAIL was refused (an MTA sends no RCPT then).
    pub rcpt: Option<Answer>,
    /// The inserted headers (unfolded), when the message was delivered.
    pub headers: Option<Vec<(String, String)>>,
    pub log: LogLine,
}

fn fail(s: &Scenario, step: &str, e: impl std::fmt::Debug) -> ! {
    panic!("{s}: {step}: {e:?}")
}

/// Runs `s` through the milter at `addr`: CONNECT, HELO (if the scenario
/// has one; twice, or followed by another message, as its conversation
/// says), MAIL (after a
/// refused HELO too, as a client that carries on would), RCPT unless MAIL
/// was refused, end of message if all was accepted; then QUIT.
pub async fn run(s: &Scenario, addr: SocketAddr) -> MilterDid {
    let mut conn = TestConnection::configure()
        .read_timeout(PATIENCE)
        .write_timeout(PATIENCE)
        .open_tcp(addr)
        .await
        .unwrap_or_else(|e| fail(s, "open", e));
    let ip: IpAddr = s.client.ip().parse().expect("an address");
    let status = conn
        .connect(format!("[{ip}]"), (ip, 40_000))
        .await
        .unwrap_or_else(|e| fail(s, "CONNECT", e));
    assert!(
        matches!(status, Status::Continue | Status::Noreply),
        "{s}: CONNECT answered {status:?}"
    );
    let (mut helo, mut helo_again) = (None, None);
    if let Some(name) = s.helo_name() {
        let status = conn
            .helo(name.as_str())
            .await
            .unwrap_or_else(|e| fail(s, "HELO", e));
        helo = Some(Answer::from_status(&status));
        if s.conversation == Conversation::EhloTwice {
            let status = conn
                .helo(name.as_str())
                .await
                .unwrap_or_else(|e| fail(s, "second EHLO", e));
            helo_again = Some(Answer::from_status(&status));
        }
    }
    if s.conversation == Conversation::SecondMessage {
        first_message(s, &mut conn).await;
    }
    let queue_id = s.queue_id();
    // The queue id, before each command it belongs to (as Sendmail sends it).
    conn.macros(MacroStage::Mail, [("i", queue_id.as_str())])
        .await
        .unwrap_or_else(|e| fail(s, "macros", e));
    let sender = format!("<{}>", s.sender.address());
    let mail = conn
        .mail([sender.as_str()])
        .await
        .unwrap_or_else(|e| fail(s, "MAIL", e));
    let mail = Answer::from_status(&mail);
    let mut rcpt = None;
    let mut headers = None;
    if mail.is_continue() {
        conn.macros(MacroStage::Rcpt, [("i", queue_id.as_str())])
            .await
            .unwrap_or_else(|e| fail(s, "macros", e));
        let answer = conn
            .rcpt([s.rcpt_address()])
            .await
            .unwrap_or_else(|e| fail(s, "RCPT", e));
        let answer = Answer::from_status(&answer);
        if answer.is_continue() {
            headers = Some(end_of_message(s, &mut conn, &queue_id).await);
        }
        rcpt = Some(answer);
    }
    conn.close().await.unwrap_or_else(|e| fail(s, "QUIT", e));
    let log = log_line(s, &queue_id).await;
    MilterDid {
        helo,
        helo_again,
        mail,
        rcpt,
        headers,
        log,
    }
}

/// A message before the scenario's, on the same connection, from the
/// passing sender: delivered when accepted, else aborted (RSET).
async fn first_message(s: &Scenario, conn: &mut TestConnection) {
    let queue_id = format!("{}F", s.queue_id());
    conn.macros(MacroStage::Mail, [("i", queue_id.as_str())])
        .await
        .unwrap_or_else(|e| fail(s, "macros", e));
    let sender = format!("<{}>", Sender::Pass.address());
    let mail = conn
        .mail([sender.as_str()])
        .await
        .unwrap_or_else(|e| fail(s, "first MAIL", e));
    if mail == Status::Continue {
        let rcpt = format!("<first@s{}.example.org>", s.id);
        let status = conn
            .rcpt([rcpt.as_str()])
            .await
            .unwrap_or_else(|e| fail(s, "first RCPT", e));
        if status == Status::Continue {
            end_of_message(s, conn, &queue_id).await;
            return;
        }
    }
    conn.abort().await.unwrap_or_else(|e| fail(s, "RSET", e));
}

/// End of headers and end of message; the inserted headers, unfolded.
async fn end_of_message(
    s: &Scenario,
    conn: &mut TestConnection,
    queue_id: &str,
) -> Vec<(String, String)> {
    // Like an MTA, send only what the milter negotiated to receive.
    let opts = conn.negotiated_opts();
    if !opts.contains(ProtoOpts::NO_DATA) {
        let status = conn.data().await.unwrap_or_else(|e| fail(s, "DATA", e));
        assert!(
            matches!(status, Status::Continue | Status::Noreply),
            "{s}: DATA answered {status:?}"
        );
    }
    if !opts.contains(ProtoOpts::NO_HEADER) {
        let status = conn
            .header("Subject", "equivalence")
            .await
            .unwrap_or_else(|e| fail(s, "header", e));
        assert!(
            matches!(status, Status::Continue | Status::Noreply),
            "{s}: header answered {status:?}"
        );
    }
    if !opts.contains(ProtoOpts::NO_EOH) {
        let status = conn.eoh().await.unwrap_or_else(|e| fail(s, "EOH", e));
        assert!(
            matches!(status, Status::Continue | Status::Noreply),
            "{s}: EOH answered {status:?}"
        );
    }
    conn.macros(MacroStage::Eom, [("i", queue_id)])
        .await
        .unwrap_or_else(|e| fail(s, "macros", e));
    let (actions, status) = conn.eom().await.unwrap_or_else(|e| fail(s, "EOM", e));
    assert_eq!(status, Status::Continue, "{s}: end of message");
    // Each goes on top (index 0) as it is inserted: the last one
    // inserted is the topmost. Reversed, they read top to bottom, as
    // check prints them.
    let mut headers: Vec<(String, String)> = actions
        .actions
        .iter()
        .filter_map(|a| match a {
            EomAction::InsertHeader { name, value, .. } => Some((
                String::from_utf8_lossy(name.as_bytes()).into_owned(),
                // The milter folds with LF and a tab (src/milter/fields.rs).
                String::from_utf8_lossy(value.as_bytes()).replace("\n\t", " "),
            )),
            _ => None,
        })
        .collect();
    headers.reverse();
    headers
}

/// The info log lines of every milter in this test binary, as JSON.
#[derive(Clone, Debug, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
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

/// The process-wide log capture (the milter's sessions run on every
/// worker thread, so a thread-local capture would miss lines).
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
        capture
    })
}

/// Starts the log capture; call before the first milter starts.
pub fn capture_logs() {
    capture();
}

/// Waits for the `message` log line of `queue_id`.
async fn log_line(s: &Scenario, queue_id: &str) -> LogLine {
    let started = Instant::now();
    loop {
        if let Some(line) = find_log_line(queue_id) {
            return line;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{s}: no log line with queue_id={queue_id}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn find_log_line(queue_id: &str) -> Option<LogLine> {
    let needle = format!("\"queue_id\":\"{queue_id}\"");
    let lines: Vec<String> = {
        let bytes = capture().0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_owned)
            .collect()
    };
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "message" && v["fields"]["queue_id"] == queue_id)
        .map(|v| {
            let f = &v["fields"];
            let field = |k: &str| match &f[k] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            LogLine {
                action: field("action"),
                decided_by: field("decided_by"),
                reply: field("reply"),
                recipients: field("recipients"),
                stages: field("stages"),
            }
        })
}
