//! Harness shared by the end-to-end tests with real MTAs
//! (`tests/e2e_postfix.rs`, `tests/e2e_sendmail.rs`).
//!
//! Every test builds its own little world under a fresh temporary
//! directory: a [`Dns`] server (testdns, in process) serving the test's
//! zone on 127.0.0.1, a [`Tollgate`] (`tollgate serve`) pointed at it, and
//! an MTA instance ([`postfix::Postfix`], [`sendmail::Sendmail`]) with its
//! own configuration and queue directories on a free loopback port. The
//! test talks SMTP to the MTA with [`smtp::Smtp`] and reads what was
//! delivered. Every process is owned by a guard whose `Drop` stops it,
//! so nothing outlives a failing test; every wait is bounded.
//!
//! The tests run under the harness of [`harness`] (libtest-mimic): when an
//! MTA, root or `tollgate serve` is missing, a test returns [`Missing`] and
//! is reported **ignored**, with the reason, never passed; under CI (`CI`
//! set) or with `TOLLGATE_E2E_REQUIRED=1` it fails instead, so CI cannot go
//! green by testing nothing. `.ci/run` installs everything.
//!
//! Set `TOLLGATE_E2E_KEEP=1` to keep the temporary directories (configs,
//! queues, maillog, tollgate's log) for inspection; they are also kept,
//! and their path printed, when a test fails.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

pub mod harness;
pub mod mail;
pub mod milter;
pub mod postfix;
pub mod sendmail;
pub mod smtp;
#[path = "../common/temp_dir.rs"]
mod temp_dir;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tollgate_testdns::TestDns;

pub use harness::{Missing, TestResult, note};
pub use mail::{Message, message, wait_for_delivery};
pub use temp_dir::TempDir;

/// The longest any single wait in the harness may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// `Ok` when `what` is available, else [`Missing`] with `how` to get it:
/// the test is then reported ignored (or failed under CI, see [`harness`]).
pub fn require(available: bool, what: &str, how: &str) -> Result<(), Missing> {
    if available {
        Ok(())
    } else {
        Err(Missing(format!("{what} is not available ({how})")))
    }
}

/// `Ok` when this build of tollgate can `serve`.
pub fn require_tollgate_serve() -> Result<(), Missing> {
    require(
        tollgate_can_serve(),
        "`tollgate serve`",
        "this build of tollgate has no serve subcommand",
    )
}

/// Polls `check` every 25 ms until it returns `Some`, or panics after `limit`
/// with `what` in the message.
pub fn wait_for<T>(limit: Duration, what: &str, check: impl FnMut() -> Option<T>) -> T {
    wait_for_or_none(limit, check)
        .unwrap_or_else(|| panic!("timed out after {limit:?} waiting for {what}"))
}

/// Polls `check` every 25 ms until it returns `Some`, or gives `None`
/// after `limit`.
pub fn wait_for_or_none<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The repository root (where Cargo.toml of the root package is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Finds an executable: an absolute path as is, else in `PATH` and the
/// sbin directories (which a non-login shell may lack).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The text between the lines `# >>> {marker}` and `# <<< {marker}` in a
/// fenced block of the document `doc` (relative to the repository root):
/// the configuration snippets of docs/postfix.md and docs/sendmail.md are
/// exactly what the tests use. The marker lines themselves are included.
pub fn doc_snippet(doc: &str, marker: &str) -> String {
    let path = repo_root().join(doc);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let begin = format!(">>> {marker}");
    let end = format!("<<< {marker}");
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.contains(&begin) {
            inside = true;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
        if inside && line.contains(&end) {
            return out;
        }
    }
    panic!("{doc} has no block between \"{begin}\" and \"{end}\"");
}

/// A child process that is stopped when the guard is dropped: SIGTERM,
/// up to five seconds to exit, then SIGKILL.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    /// A log file to show when the test fails.
    log: Option<PathBuf>,
    /// Signal the whole process group (the child was spawned as its leader).
    group: bool,
}

impl ChildGuard {
    /// Guards `child`; `log` is printed (its tail) if the test panics.
    pub fn new(name: &str, child: Child, log: Option<PathBuf>) -> ChildGuard {
        ChildGuard {
            name: name.to_owned(),
            child: Some(child),
            log,
            group: false,
        }
    }

    /// Signals go to the child's process group: spawn it with
    /// `process_group(0)`, so helpers it forks are stopped with it.
    pub fn with_group(mut self) -> ChildGuard {
        self.group = true;
        self
    }

    fn target(&self, pid: u32) -> String {
        if self.group {
            format!("-{pid}")
        } else {
            pid.to_string()
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the process has exited (and its status, if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Sends `signal` (a name such as `TERM` or `KILL`) to the process.
    pub fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg("--")
                .arg(self.target(child.id()))
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Stops the process (SIGTERM, then SIGKILL after five seconds) and
    /// waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg("--")
                .arg(self.target(child.id()))
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if child.try_wait().ok().flatten().is_none() {
                eprintln!("e2e: {} ignored SIGTERM for 5 s, killing it", self.name);
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg("--")
                    .arg(self.target(child.id()))
                    .stderr(Stdio::null())
                    .status();
                let _ = child.kill();
            }
        }
        let _ = child.wait();
    }

    /// The last `lines` lines of the log file, if there is one.
    pub fn log_tail(&self, lines: usize) -> String {
        self.log
            .as_deref()
            .map_or_else(String::new, |p| tail(p, lines))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(log) = &self.log
        {
            eprintln!(
                "---- {} log ({}), last lines ----\n{}",
                self.name,
                log.display(),
                tail(log, 60)
            );
        }
        self.stop();
    }
}

/// The last `lines` lines of a text file (empty if it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// testdns serving a zone (OpenSPF `zonedata` YAML) on 127.0.0.1, in this
/// process, on a runtime of its own.
#[derive(Debug)]
pub struct Dns {
    // Dropped before the runtime that drives it.
    server: TestDns,
    runtime: tokio::runtime::Runtime,
}

impl Dns {
    /// Starts serving `zone_yaml` on a free port of 127.0.0.1 (UDP and TCP).
    pub fn start(zone_yaml: &str) -> Dns {
        let zone = tollgate_testdns::suite::parse_zone(zone_yaml).expect("test zone parses");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let server = runtime
            .block_on(TestDns::start(zone))
            .expect("testdns starts");
        Dns { server, runtime }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The server, for its query log.
    pub fn server(&self) -> &TestDns {
        &self.server
    }
}

/// The `tollgate` binary built for these tests.
pub fn tollgate_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tollgate"))
}

/// Whether this build of tollgate has the `serve` subcommand.
pub fn tollgate_can_serve() -> bool {
    static CAN: OnceLock<bool> = OnceLock::new();
    *CAN.get_or_init(|| {
        Command::new(tollgate_bin())
            .args(["serve", "--help"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A running `tollgate serve`.
#[derive(Debug)]
pub struct Tollgate {
    /// The milter address as the MTAs write it: `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    process: ChildGuard,
    /// Its stderr (the log).
    pub log: PathBuf,
}

impl Tollgate {
    /// Writes `config_yaml` to `dir/milter.yaml`, starts `tollgate serve`
    /// on it and waits for its `listening on inet:127.0.0.1:PORT` line.
    /// The configuration should say `listen: inet:127.0.0.1:0`.
    pub fn start(dir: &Path, config_yaml: &str) -> Tollgate {
        let config = dir.join("milter.yaml");
        fs::write(&config, config_yaml).expect("write milter.yaml");
        let log = dir.join("tollgate.log");
        let stderr = fs::File::create(&log).expect("create tollgate.log");
        let child = Command::new(tollgate_bin())
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn tollgate serve");
        let mut process = ChildGuard::new("tollgate", child, Some(log.clone()));
        let stdout = process
            .child
            .as_mut()
            .and_then(|c| c.stdout.take())
            .expect("tollgate stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + WAIT;
        let addr = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    if let Some(rest) = line.trim().strip_prefix("listening on inet:") {
                        break rest.parse::<SocketAddr>().unwrap_or_else(|e| {
                            panic!("tollgate printed {line:?}: not an address: {e}")
                        });
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = process.exited();
                    panic!(
                        "tollgate serve closed stdout without a listening line (exit {status:?}); log:\n{}",
                        process.log_tail(40)
                    );
                }
            }
            if let Some(status) = process.exited() {
                panic!(
                    "tollgate serve exited ({status}); log:\n{}",
                    process.log_tail(40)
                );
            }
            if Instant::now() > deadline {
                panic!("tollgate serve printed no listening line within {WAIT:?}");
            }
        };
        Tollgate { addr, process, log }
    }

    /// Sends a signal (`STOP`, `CONT`, `TERM`, ...) to the milter.
    pub fn signal(&self, signal: &str) {
        self.process.signal(signal);
    }

    /// Kills the milter at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.process.signal("KILL");
        wait_for(WAIT, "tollgate to die", || {
            self.process.exited().map(|_| ())
        });
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

/// The tollgate configuration the tests use, with `extra` YAML appended
/// (top-level keys not already set here).
pub fn tollgate_config(dns: &Dns, extra: &str) -> String {
    format!(
        "listen: inet:127.0.0.1:0\n\
         hostname: tollgate.example.org\n\
         dns:\n  nameservers: [\"{}\"]\n  timeout: 1s\n  attempts: 1\n  time_budget: 5s\n\
         log:\n  level: \"info,tollgate=debug\"\n\
         {extra}",
        dns.addr()
    )
}

/// Looks up a user's uid and gid in /etc/passwd.
pub fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[0] == user).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// Looks up a group's gid in /etc/group.
pub fn group_id(group: &str) -> Option<u32> {
    let groups = fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 2 && f[0] == group).then(|| f[2].parse().ok())?
    })
}

/// `mkdir -p` with a mode and an owner.
pub fn make_dir(path: &Path, mode: u32, owner: Option<(u32, u32)>) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

/// Whether this process runs as root (MTAs need it to start).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
