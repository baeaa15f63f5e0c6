//! The milter under test: its configuration (the bench's sections and
//! `TOLLGATE_BENCH_CONFIG_EXTRA`), the child process and what is read
//! from it (the listening line, the log's DNS counters, metrics scrapes,
//! CPU time and memory from /proc).

use super::*;

/// `TOLLGATE_BENCH_CONFIG_EXTRA`: YAML appended to the milter's
/// configuration (empty when unset).
pub(crate) fn config_extra() -> String {
    let mut extra = std::env::var("TOLLGATE_BENCH_CONFIG_EXTRA").unwrap_or_default();
    if !extra.is_empty() && !extra.ends_with('\n') {
        extra.push('\n');
    }
    extra
}

/// The top-level keys of YAML text and the lines of each (a key's line
/// and the indented or list lines under it).
pub(crate) fn top_level_sections(yaml: &str) -> Vec<(&str, String)> {
    let mut sections: Vec<(&str, String)> = Vec::new();
    for line in yaml.lines() {
        let starts_key = !line.starts_with([' ', '\t', '#', '-']) && !line.trim().is_empty();
        match line.split_once(':') {
            Some((key, _)) if starts_key => sections.push((key.trim(), format!("{line}\n"))),
            _ => {
                if let Some((_, text)) = sections.last_mut() {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    sections
}

/// The milter's configuration: the bench's own sections (key, text),
/// then `TOLLGATE_BENCH_CONFIG_EXTRA`, whose top-level keys replace the
/// bench's sections of the same name.
pub(crate) fn config_text(sections: &[(&str, String)]) -> String {
    let extra = config_extra();
    let replaced: Vec<&str> = top_level_sections(&extra)
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let mut text: String = sections
        .iter()
        .filter(|(key, _)| !replaced.contains(key))
        .map(|(_, body)| body.as_str())
        .collect();
    text.push_str(&extra);
    text
}

/// Whether the milter asks the bench's block list: unless the extra
/// configuration replaces `dnsbl` with a section that does not name it.
pub(crate) fn block_list_on() -> bool {
    let extra = config_extra();
    top_level_sections(&extra)
        .into_iter()
        .find(|(key, _)| *key == "dnsbl")
        .is_none_or(|(_, text)| text.contains(DNSBL_ZONE))
}

/// Whether `TOLLGATE_BENCH_METRICS` turns the metrics on.
pub(crate) fn metrics_on() -> bool {
    std::env::var("TOLLGATE_BENCH_METRICS").is_ok_and(|v| v == "1")
}

/// `TOLLGATE_BENCH_GREYLIST`: `embedded`, a Redis URL, or unset.
pub(crate) fn greylist_store() -> Option<String> {
    std::env::var("TOLLGATE_BENCH_GREYLIST")
        .ok()
        .filter(|s| !s.is_empty())
}

/// How the milter under test is configured.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Setup {
    /// `dns.cache_size` (0: no shared cache).
    pub(crate) cache_size: usize,
    /// `dns.parallel`.
    pub(crate) parallel: bool,
    /// `max_connections`.
    pub(crate) max_connections: usize,
    /// Read the log lines (for the DNS queries and cancelled lookups per
    /// message) instead of sending them to /dev/null.
    pub(crate) read_log: bool,
    /// Greylist every message in the store `TOLLGATE_BENCH_GREYLIST`
    /// names (when it names one).
    pub(crate) greylist: bool,
}

impl Setup {
    pub(crate) const WARM: Setup = Setup {
        cache_size: 10_000,
        parallel: true,
        max_connections: 256,
        read_log: false,
        greylist: false,
    };
}

/// Sums of the message lines' DNS counters.
#[derive(Debug, Default)]
pub(crate) struct LogCounts {
    pub(crate) messages: AtomicUsize,
    pub(crate) queries: AtomicUsize,
    pub(crate) cancelled: AtomicUsize,
}

impl LogCounts {
    pub(crate) fn reset(&self) {
        self.messages.store(0, Ordering::SeqCst);
        self.queries.store(0, Ordering::SeqCst);
        self.cancelled.store(0, Ordering::SeqCst);
    }

    pub(crate) fn add_line(&self, line: &str) {
        if !line.contains(" message ") && !line.ends_with(" message") {
            return;
        }
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|v| v.parse::<usize>().ok())
        };
        if let Some(q) = field("dns_queries=") {
            self.messages.fetch_add(1, Ordering::SeqCst);
            self.queries.fetch_add(q, Ordering::SeqCst);
            self.cancelled
                .fetch_add(field("dns_cancelled=").unwrap_or(0), Ordering::SeqCst);
        }
    }
}

/// The milter under test, a child process.
pub(crate) struct MilterProcess {
    pub(crate) child: Child,
    pub(crate) addr: MilterAddr,
    pub(crate) log: Arc<LogCounts>,
    pub(crate) reads_log: bool,
    /// Where it serves metrics (`TOLLGATE_BENCH_METRICS=1`).
    pub(crate) metrics: Option<SocketAddr>,
    /// Messages it has served (whole runs), for the metrics check.
    pub(crate) served: AtomicUsize,
    pub(crate) dir: TempDir,
}

pub(crate) struct TempDir(pub(crate) PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl MilterProcess {
    pub(crate) fn reads_log(&self) -> bool {
        self.reads_log
    }

    pub(crate) fn start(dns: SocketAddr, setup: Setup, tag: &str) -> MilterProcess {
        let log_level = std::env::var("TOLLGATE_BENCH_LOG").unwrap_or_else(|_| "info".to_owned());
        let dir = std::env::temp_dir().join(format!("tollgate-bench-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let config = dir.join("milter.yaml");
        let Setup {
            cache_size,
            parallel,
            max_connections,
            read_log,
            greylist,
        } = setup;
        let listen = if unix_socket() {
            format!("listen: unix:{}\n", dir.join("milter.sock").display())
        } else {
            "listen: inet:127.0.0.1:0\n".to_owned()
        };
        let mut sections = vec![
            ("listen", listen),
            ("hostname", "hostname: mx.bench.example\n".to_owned()),
            (
                "max_connections",
                format!("max_connections: {max_connections}\n"),
            ),
            (
                "dns",
                format!(
                    "dns:\n  nameservers: [\"{dns}\"]\n  timeout: 2s\n  attempts: 2\n  cache_size: {cache_size}\n  parallel: {parallel}\n"
                ),
            ),
            (
                "dnsbl",
                format!("dnsbl:\n  lists:\n    - zone: {DNSBL_ZONE}\n"),
            ),
            ("log", format!("log:\n  level: {log_level}\n")),
        ];
        let metrics = metrics_on().then(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port for metrics")
        });
        if let Some(addr) = metrics {
            sections.push(("metrics", format!("metrics:\n  listen: {addr}\n")));
        }
        if let Some(store) = greylist_store().filter(|_| greylist) {
            let store = if store == "embedded" {
                format!(
                    "store: embedded\n  path: {}",
                    dir.join("greylist.db").display()
                )
            } else {
                format!("store: redis\n  redis: {store}")
            };
            sections.push(("policy", "policy:\n  fcrdns: {pass: greylist}\n".to_owned()));
            sections.push((
                "greylist",
                format!("greylist:\n  {store}\n  delay: 1s\n  retry_window: 1h\n  auto_allow: 0\n"),
            ));
        }
        let text = config_text(&sections);
        std::fs::write(&config, &text).expect("write the configuration");
        static SHOWN: std::sync::Once = std::sync::Once::new();
        if !config_extra().is_empty() {
            SHOWN.call_once(|| eprintln!("milter configuration:\n{text}"));
        }
        // For profiling: `TOLLGATE_BENCH_WRAPPER="valgrind --tool=callgrind"`
        // runs the milter under that command.
        let wrapper = std::env::var("TOLLGATE_BENCH_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(env!("CARGO_BIN_EXE_tollgate"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_tollgate")),
        };
        let mut child = command
            .args(["serve", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // One info line per message, as in production: into /dev/null,
            // or read for its DNS counters.
            .stderr(if read_log {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("start tollgate serve");
        let log = Arc::new(LogCounts::default());
        if let Some(stderr) = child.stderr.take() {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    log.add_line(&line);
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let listening = line.trim();
        let addr = if let Some(inet) = listening.strip_prefix("listening on inet:") {
            MilterAddr::Inet(inet.parse().expect("an address"))
        } else if let Some(path) = listening.strip_prefix("listening on unix:") {
            MilterAddr::Unix(Arc::from(std::path::Path::new(path)))
        } else {
            panic!("unexpected first line {line:?}")
        };
        MilterProcess {
            child,
            addr,
            log,
            reads_log: read_log,
            metrics,
            served: AtomicUsize::new(0),
            dir: TempDir(dir),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The messages counted in `tollgate_messages_total` (summed over its
    /// label sets), from one scrape; `None` with metrics off.
    pub(crate) fn scraped_messages(&self) -> Option<f64> {
        use std::io::{Read, Write};
        let addr = self.metrics?;
        let mut stream = std::net::TcpStream::connect(addr).expect("connect to metrics");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .expect("send the scrape");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read the scrape");
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        Some(
            text.lines()
                .filter(|l| {
                    l.strip_prefix("tollgate_messages_total")
                        .is_some_and(|rest| rest.starts_with(['{', ' ']))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    }
}

/// After a run that served `messages` more: with metrics on, a scrape,
/// which must have counted every message this milter served so far
/// (scraped again for up to 5 s while it has counted fewer: the last log
/// lines may still be on their way). True with metrics off.
pub(crate) async fn check_scrape(milter: &MilterProcess, messages: usize) -> bool {
    let served = milter.served.fetch_add(messages, Ordering::SeqCst) + messages;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let Some(counted) = milter.scraped_messages() else {
            return true;
        };
        if counted < served as f64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        eprintln!("metrics: {counted} messages counted of {served} served");
        return counted == served as f64;
    }
}

impl Drop for MilterProcess {
    /// SIGTERM first (a profiler the milter runs under writes its data
    /// then), SIGKILL if it has not ended within 30 s.
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of a process, in seconds.
pub(crate) fn cpu_seconds(pid: &str) -> f64 {
    let (user, system) = cpu_split(pid);
    user + system
}

/// utime and stime of a process, in seconds.
pub(crate) fn cpu_split(pid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let after = &stat[stat.rfind(')').expect("comm") + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = clock_ticks();
    (
        fields[11].parse::<f64>().expect("utime") / ticks,
        fields[12].parse::<f64>().expect("stime") / ticks,
    )
}

pub(crate) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A `Vm…:` line of /proc/PID/status, in MiB.
pub(crate) fn vm_mib(pid: &str, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}
