//! Milter throughput, cold-cache latency and many connections through
//! the real milter protocol.
//!
//! `cargo bench --bench milter` starts `tollgate serve` (the release
//! binary of this package) as a separate process against a testdns server
//! on 127.0.0.1, and drives realistic transactions through it as Postfix
//! would: macros, CONNECT, HELO, MAIL, RCPT, six headers, end of message,
//! QUIT. The clients come from 192.0.2.0/24, 198.51.100.0/24 and
//! 203.0.113.0/24 with PTR and A records; the sender domains publish
//! `include:` SPF records and an MX; every tenth sender is forged and is
//! refused at RCPT (then aborted), and 12 of the 300 clients are on the
//! block list `bl.example` (refused at RCPT with 5.7.1). All stages are on:
//! skip, helo-syntax, dnsbl, fcrdns, rdns-name, helo-dns, spf-helo,
//! sender-domain, spf-mailfrom.
//!
//! Throughput (`TOLLGATE_BENCH_MODE=throughput`): for each concurrency
//! (1, 16, 64) a fresh milter serves a cold-cache run of 2,000
//! transactions and then a warm-cache run (the same again), and two more
//! with `dns.cache_size: 0` (`dns.parallel` on and off) show what every
//! message costs in DNS when nothing is cached, and how many lookups an
//! early stop cancelled (from the milter's log lines). Reported per run:
//! messages/s, p50 and p99 of a whole transaction and of the time from
//! CONNECT to the RCPT answer, DNS queries per message (testdns's
//! counter), the milter's CPU-seconds per 1,000 messages (utime + stime
//! from /proc/PID/stat), its peak RSS (VmHWM), and the load generator's
//! own CPU (this process: client and DNS server together).
//!
//! Cold latency (`TOLLGATE_BENCH_MODE=latency`): testdns holds every
//! answer back 20 ms (`TOLLGATE_BENCH_LATENCY`, e.g. `20ms+-10ms`), the
//! milter caches nothing (every message is a new client), and 300
//! transactions (`TOLLGATE_BENCH_COLD_TRANSACTIONS`) run at 1 and 16
//! connections (`TOLLGATE_BENCH_COLD_CONCURRENCY`), `dns.parallel` off
//! and on: the time from CONNECT to the RCPT answer is what the sending
//! server waits for.
//!
//! The default (`all`) runs both; `many` runs the many-connections bench
//! ([`many`]) only.
//!
//! Metrics (`TOLLGATE_BENCH_METRICS=1`, every mode): the milter also
//! serves Prometheus metrics (`metrics.listen` on a free loopback port),
//! and after each run the bench scrapes `/metrics` as Prometheus would
//! (one plain HTTP/1.1 GET) and checks that `tollgate_messages_total`,
//! summed over its label sets, equals the messages that milter process
//! has served so far; any other count fails the bench. (The scrape is
//! repeated for up to 5 s while the count is short: the log line of a
//! message aborted at RCPT may still be on its way when the MTA side is
//! done.)
//!
//! Greylisting (`TOLLGATE_BENCH_GREYLIST=embedded`, or a Redis URL such
//! as `redis://127.0.0.1:6390/0`; throughput mode): every message is
//! greylisted (`policy: fcrdns: {pass: greylist}`, `delay: 1s`,
//! `auto_allow: 0`), and per concurrency one fresh milter serves three
//! runs instead of the usual four: `grey-new` (every triplet new:
//! answered `451 4.7.1 Greylisted`, except the messages refused anyway,
//! which keep their refusal; it also warms the DNS cache), after the delay
//! `grey-pass` (each triplet's first pass: `X-Greylist` is added at the
//! end of message) and `grey-known` (every triplet known: the steady
//! state, no `X-Greylist`). The embedded store's file sizes are printed.
//!
//! Extra configuration (`TOLLGATE_BENCH_CONFIG_EXTRA`, every mode): YAML
//! text appended to the milter's configuration, for experiments such as
//! `policy: {sender-domain: off, rdns-name: off}` or `dnsbl: {lists: []}`.
//! A top-level key it sets replaces the bench's own section of that name
//! whole (`dnsbl`, `dns`, `log`, `metrics`, and with greylisting `policy`
//! and `greylist`), since YAML allows no key twice. The expected answers
//! follow the block list: the listed clients are expected to be refused
//! only while the `dnsbl` section names `bl.example`. Any other change of
//! outcome (turning spf-mailfrom off, say) shows as wrongly answered
//! transactions, and the bench fails after printing its figures.
//!
//! The load generator is a minimal hand-rolled MTA side of the protocol
//! ([`MtaConn`]) rather than `indymilter-test`: like Postfix's milter8
//! ("we're sending macros and event parameters in one VSTREAM
//! transaction") it writes each command together with its macros in one
//! write. indymilter-test writes the macros and the command separately
//! without TCP_NODELAY, so Nagle's algorithm holds the command until the
//! milter's delayed ACK: about 176 ms per transaction, which measures the
//! client, not the milter.
//!
//! Under `cargo test --benches` (no `--bench` argument) it does nothing.
//! Set `TOLLGATE_BENCH_TRANSACTIONS` to change the 2,000, and
//! `TOLLGATE_BENCH_CONCURRENCY` (e.g. `64` or `1,64`) to change the levels;
//! for experiments, `TOLLGATE_BENCH_HEADERS` (0 to 6 headers per message)
//! and `TOLLGATE_BENCH_LOG` (the milter's log level, default info).
//! `TOLLGATE_BENCH_SOCKET=unix` has the milter listen on a Unix socket
//! (`listen: unix:PATH`, as most local Postfix setups do) instead of
//! loopback TCP; the kernel's share of the milter's CPU is smaller there.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tollgate_testdns::suite::parse_zone;
use tollgate_testdns::{Latency, TestDns};

#[path = "milter/many.rs"]
mod many;

/// Where the milter listens: loopback TCP, or a Unix socket
/// (`TOLLGATE_BENCH_SOCKET=unix`).
#[derive(Clone, Debug)]
enum MilterAddr {
    Inet(SocketAddr),
    Unix(Arc<std::path::Path>),
}

impl std::fmt::Display for MilterAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MilterAddr::Inet(addr) => write!(f, "inet:{addr}"),
            MilterAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// True when the milter is to listen on a Unix socket.
fn unix_socket() -> bool {
    match std::env::var("TOLLGATE_BENCH_SOCKET").as_deref() {
        Ok("unix") => true,
        Ok("inet") | Err(_) => false,
        Ok(other) => panic!("TOLLGATE_BENCH_SOCKET must be inet or unix, not {other:?}"),
    }
}

/// A connection to the milter, over either kind of socket.
trait MilterStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> MilterStream for T {}

/// Transactions per run.
const TRANSACTIONS: usize = 2_000;
/// Concurrent milter connections.
const CONCURRENCY: [usize; 3] = [1, 16, 64];
/// Client hosts per documentation /24.
const HOSTS_PER_NET: usize = 100;
/// The three documentation networks the clients come from.
const NETS: [&str; 3] = ["192.0.2", "198.51.100", "203.0.113"];
/// Mail service providers (each with its own SPF include).
const ESPS: usize = 10;
/// Sender domains.
const BRANDS: usize = 100;
/// The block list the milter asks (RFC 5782).
const DNSBL_ZONE: &str = "bl.example";

/// One transaction's data.
#[derive(Clone, Debug)]
struct Plan {
    ip: IpAddr,
    helo: String,
    sender: String,
    /// The sender's domain does not authorise the client (SPF fail).
    forged: bool,
    /// The start of the reply the RCPT must get, if it is refused.
    refusal: Option<&'static str>,
}

/// The zone: clients with PTR and A, HELO names (a third with their own
/// `v=spf1 a -all`), brands that include their provider's record, and
/// forged senders whose domains authorise a network no client is in.
fn zone_yaml() -> String {
    let mut z = String::new();
    for (n, net) in NETS.iter().enumerate() {
        let octets: Vec<&str> = net.split('.').collect();
        for h in 1..=HOSTS_PER_NET {
            let i = n * HOSTS_PER_NET + h - 1;
            let name = client_name(i);
            let _ = writeln!(
                z,
                "{h}.{}.{}.{}.in-addr.arpa:\n  - PTR: {name}",
                octets[2], octets[1], octets[0]
            );
            let _ = writeln!(z, "{name}:\n  - A: {net}.{h}");
            if i.is_multiple_of(3) {
                let _ = writeln!(z, "  - TXT: \"v=spf1 a -all\"");
            }
        }
    }
    for j in 0..ESPS {
        let _ = writeln!(
            z,
            "_spf.esp{j}.example:\n  - TXT: \"v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 ip4:203.0.113.0/24 ip6:2001:db8::/32 ~all\""
        );
    }
    for j in 0..ESPS {
        let _ = writeln!(z, "mx.esp{j}.example:\n  - A: 198.51.100.{}", 200 + j);
    }
    for k in 0..BRANDS {
        let _ = writeln!(
            z,
            "brand{k}.example:\n  - TXT: \"v=spf1 include:_spf.esp{}.example -all\"\n  - MX: [10, mx.esp{}.example]",
            k % ESPS,
            k % ESPS
        );
    }
    for k in 0..5 {
        let _ = writeln!(
            z,
            "bank{k}.example:\n  - TXT: \"v=spf1 include:_spf.bank.example -all\"\n  - MX: [10, mx.bank.example]"
        );
    }
    z.push_str("_spf.bank.example:\n  - TXT: \"v=spf1 ip4:233.252.0.0/24 -all\"\n");
    z.push_str("mx.bank.example:\n  - A: 203.0.113.250\n");
    // The block list: RFC 5782 entries (an A in 127.0.0.0/8 and a TXT
    // reason) for the listed clients; the others get NXDOMAIN.
    for i in (0..NETS.len() * HOSTS_PER_NET).filter(|i| listed(*i)) {
        let ip = client_ip(i);
        let octets: Vec<&str> = ip.split('.').collect();
        let _ = writeln!(
            z,
            "{}.{}.{}.{}.{DNSBL_ZONE}:\n  - A: 127.0.0.2\n  - TXT: \"listed for the bench\"",
            octets[3], octets[2], octets[1], octets[0]
        );
    }
    z
}

/// Whether client `i` is on the block list (12 of the 300).
fn listed(i: usize) -> bool {
    i % 25 == 12
}

/// The address of client `i`.
fn client_ip(i: usize) -> String {
    format!("{}.{}", NETS[i / HOSTS_PER_NET], i % HOSTS_PER_NET + 1)
}

fn client_name(i: usize) -> String {
    format!("mta{i}.out.esp{}.example", i % ESPS)
}

fn plans(count: usize) -> Vec<Plan> {
    let clients = NETS.len() * HOSTS_PER_NET;
    (0..count)
        .map(|t| {
            let i = (t * 7) % clients;
            let ip: IpAddr = client_ip(i).parse().expect("an address");
            let forged = t % 10 == 9;
            // A listed client is refused at HELO's verdict (dnsbl), before
            // its sender is looked at.
            let refusal = if listed(i) && block_list_on() {
                Some("550 5.7.1 ")
            } else if forged {
                Some("550 5.7.23 ")
            } else {
                None
            };
            let sender = if forged {
                format!("security@bank{}.example", t % 5)
            } else {
                format!("news{t}@brand{}.example", t % BRANDS)
            };
            Plan {
                ip,
                helo: client_name(i),
                sender,
                forged,
                refusal,
            }
        })
        .collect()
}

/// `TOLLGATE_BENCH_CONFIG_EXTRA`: YAML appended to the milter's
/// configuration (empty when unset).
fn config_extra() -> String {
    let mut extra = std::env::var("TOLLGATE_BENCH_CONFIG_EXTRA").unwrap_or_default();
    if !extra.is_empty() && !extra.ends_with('\n') {
        extra.push('\n');
    }
    extra
}

/// The top-level keys of YAML text and the lines of each (a key's line
/// and the indented or list lines under it).
fn top_level_sections(yaml: &str) -> Vec<(&str, String)> {
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
fn config_text(sections: &[(&str, String)]) -> String {
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
fn block_list_on() -> bool {
    let extra = config_extra();
    top_level_sections(&extra)
        .into_iter()
        .find(|(key, _)| *key == "dnsbl")
        .is_none_or(|(_, text)| text.contains(DNSBL_ZONE))
}

/// Whether `TOLLGATE_BENCH_METRICS` turns the metrics on.
fn metrics_on() -> bool {
    std::env::var("TOLLGATE_BENCH_METRICS").is_ok_and(|v| v == "1")
}

/// `TOLLGATE_BENCH_GREYLIST`: `embedded`, a Redis URL, or unset.
fn greylist_store() -> Option<String> {
    std::env::var("TOLLGATE_BENCH_GREYLIST")
        .ok()
        .filter(|s| !s.is_empty())
}

/// How the milter under test is configured.
#[derive(Clone, Copy, Debug)]
struct Setup {
    /// `dns.cache_size` (0: no shared cache).
    cache_size: usize,
    /// `dns.parallel`.
    parallel: bool,
    /// `max_connections`.
    max_connections: usize,
    /// Read the log lines (for the DNS queries and cancelled lookups per
    /// message) instead of sending them to /dev/null.
    read_log: bool,
    /// Greylist every message in the store `TOLLGATE_BENCH_GREYLIST`
    /// names (when it names one).
    greylist: bool,
}

impl Setup {
    const WARM: Setup = Setup {
        cache_size: 10_000,
        parallel: true,
        max_connections: 256,
        read_log: false,
        greylist: false,
    };
}

/// Sums of the message lines' DNS counters.
#[derive(Debug, Default)]
struct LogCounts {
    messages: AtomicUsize,
    queries: AtomicUsize,
    cancelled: AtomicUsize,
}

impl LogCounts {
    fn reset(&self) {
        self.messages.store(0, Ordering::SeqCst);
        self.queries.store(0, Ordering::SeqCst);
        self.cancelled.store(0, Ordering::SeqCst);
    }

    fn add_line(&self, line: &str) {
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
struct MilterProcess {
    child: Child,
    addr: MilterAddr,
    log: Arc<LogCounts>,
    reads_log: bool,
    /// Where it serves metrics (`TOLLGATE_BENCH_METRICS=1`).
    metrics: Option<SocketAddr>,
    /// Messages it has served (whole runs), for the metrics check.
    served: AtomicUsize,
    dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl MilterProcess {
    fn reads_log(&self) -> bool {
        self.reads_log
    }

    fn start(dns: SocketAddr, setup: Setup, tag: &str) -> MilterProcess {
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

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The messages counted in `tollgate_messages_total` (summed over its
    /// label sets), from one scrape; `None` with metrics off.
    fn scraped_messages(&self) -> Option<f64> {
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
async fn check_scrape(milter: &MilterProcess, messages: usize) -> bool {
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
fn cpu_seconds(pid: &str) -> f64 {
    let (user, system) = cpu_split(pid);
    user + system
}

/// utime and stime of a process, in seconds.
fn cpu_split(pid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let after = &stat[stat.rfind(')').expect("comm") + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = clock_ticks();
    (
        fields[11].parse::<f64>().expect("utime") / ticks,
        fields[12].parse::<f64>().expect("stime") / ticks,
    )
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A `Vm…:` line of /proc/PID/status, in MiB.
fn vm_mib(pid: &str, key: &str) -> f64 {
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

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Delivered,
    Refused,
    /// `451 4.7.1 Greylisted` at RCPT (in a [`Grey::New`] run).
    Greylisted,
}

/// What greylisting does to the messages of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grey {
    /// No greylisting, or every triplet passed before: no 451, no
    /// `X-Greylist`.
    Off,
    /// Every triplet new: each message not refused for another reason is
    /// answered `451 4.7.1 Greylisted` at RCPT.
    New,
    /// Each triplet's first pass: every delivered message gets
    /// `X-Greylist`.
    FirstPass,
}

/// Milter protocol constants (libmilter's mfdef.h), protocol version 6.
mod proto {
    pub const VERSION: u32 = 6;
    /// Every action an MTA may offer (SMFIF_ADDHDRS … SMFIF_SETSYMLIST).
    pub const ALL_ACTIONS: u32 = 0x1ff;
    /// Every protocol flag (SMFIP_NOCONNECT … SMFIP_HDR_LEADSPC).
    pub const ALL_OPTS: u32 = 0x1f_ffff;
    pub const NO_HDRS: u32 = 0x20;
    pub const NO_EOH: u32 = 0x40;
    pub const NR_HDR: u32 = 0x80;
    pub const NR_CONN: u32 = 0x1000;
    pub const NR_HELO: u32 = 0x2000;
    pub const NR_MAIL: u32 = 0x4000;
    pub const NR_RCPT: u32 = 0x8000;
    pub const NR_EOH: u32 = 0x4_0000;
}

/// A minimal MTA side of the milter protocol. Like Postfix, it writes a
/// command and the macros that go with it in one write, and waits for the
/// reply only where the negotiated options say one comes.
struct MtaConn {
    stream: tokio::io::BufReader<Box<dyn MilterStream>>,
    out: Vec<u8>,
    opts: u32,
}

/// A milter's final answer to a command.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Continue,
    Refused(String),
    Other(u8),
}

impl MtaConn {
    async fn open(addr: &MilterAddr) -> std::io::Result<MtaConn> {
        let stream: Box<dyn MilterStream> = match addr {
            MilterAddr::Inet(addr) => {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                Box::new(tcp)
            }
            MilterAddr::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
        };
        let mut conn = MtaConn {
            stream: tokio::io::BufReader::new(stream),
            out: Vec::with_capacity(1024),
            opts: 0,
        };
        let mut body = Vec::with_capacity(12);
        body.extend(proto::VERSION.to_be_bytes());
        body.extend(proto::ALL_ACTIONS.to_be_bytes());
        body.extend(proto::ALL_OPTS.to_be_bytes());
        conn.packet(b'O', &body);
        conn.flush().await?;
        let (cmd, data) = conn.read().await?;
        if cmd != b'O' || data.len() < 12 {
            return Err(std::io::Error::other(format!(
                "bad negotiation reply {cmd:?}"
            )));
        }
        conn.opts = u32::from_be_bytes(data[8..12].try_into().expect("4 bytes"));
        static SHOWN: std::sync::Once = std::sync::Once::new();
        SHOWN.call_once(|| {
            let actions = u32::from_be_bytes(data[4..8].try_into().expect("4 bytes"));
            eprintln!(
                "negotiated: actions {actions:#x}, protocol options {:#x}",
                conn.opts
            );
        });
        Ok(conn)
    }

    fn packet(&mut self, cmd: u8, body: &[u8]) {
        let len = u32::try_from(body.len() + 1).expect("small packet");
        self.out.extend(len.to_be_bytes());
        self.out.push(cmd);
        self.out.extend(body);
    }

    /// Queues a macro definition for the command `stage`.
    fn macros(&mut self, stage: u8, pairs: &[(&str, &str)]) {
        let mut body = vec![stage];
        for (k, v) in pairs {
            body.extend(k.as_bytes());
            body.push(0);
            body.extend(v.as_bytes());
            body.push(0);
        }
        self.packet(b'D', &body);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.stream.get_mut().write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    async fn read(&mut self) -> std::io::Result<(u8, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        let len = self.stream.read_u32().await? as usize;
        if len == 0 || len > 1 << 20 {
            return Err(std::io::Error::other(format!("bad reply length {len}")));
        }
        let mut data = vec![0; len];
        self.stream.read_exact(&mut data).await?;
        let cmd = data.remove(0);
        Ok((cmd, data))
    }

    /// Sends the queued packets and, unless `noreply`, reads the answer;
    /// message changes sent before it (end of message) are collected.
    async fn send(
        &mut self,
        noreply: bool,
        changes: &mut Vec<(u8, Vec<u8>)>,
    ) -> std::io::Result<Answer> {
        self.flush().await?;
        if noreply {
            return Ok(Answer::Continue);
        }
        loop {
            let (cmd, data) = self.read().await?;
            return Ok(match cmd {
                b'c' => Answer::Continue,
                b'y' => Answer::Refused(
                    String::from_utf8_lossy(data.strip_suffix(b"\0").unwrap_or(&data)).into_owned(),
                ),
                b'h' | b'i' | b'm' | b'+' | b'-' | b'e' | b'2' | b'b' | b'q' | b'p' => {
                    changes.push((cmd, data));
                    continue;
                }
                other => Answer::Other(other),
            });
        }
    }

    fn has(&self, flag: u32) -> bool {
        self.opts & flag != 0
    }
}

/// How many of the six headers are sent (`TOLLGATE_BENCH_HEADERS`).
fn header_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        std::env::var("TOLLGATE_BENCH_HEADERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(6)
    })
}

/// NUL-terminated strings, concatenated.
fn cstr(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend(*p);
        out.push(0);
    }
    out
}

/// How long the parts of a transaction took, as the MTA side sees them.
#[derive(Clone, Copy, Debug)]
struct Timing {
    /// From opening the milter connection to sending QUIT.
    whole: Duration,
    /// From sending CONNECT to the answer to RCPT: what the SMTP client
    /// waits for because of the milter.
    to_rcpt: Duration,
}

/// One whole transaction on its own milter connection.
async fn transaction(
    addr: &MilterAddr,
    plan: &Plan,
    t: usize,
    grey: Grey,
) -> Result<(End, Timing), String> {
    let begun = Instant::now();
    let mut c = MtaConn::open(addr)
        .await
        .map_err(|e| format!("open: {e}"))?;
    let connected = Instant::now();
    c.hello(plan).await?;
    let (end, rcpt_answered) = c.message(plan, t, grey).await?;
    c.packet(b'Q', &[]);
    c.flush().await.map_err(|e| format!("quit: {e}"))?;
    Ok((
        end,
        Timing {
            whole: begun.elapsed(),
            to_rcpt: rcpt_answered - connected,
        },
    ))
}

impl MtaConn {
    /// CONNECT and HELO.
    async fn hello(&mut self, plan: &Plan) -> Result<(), String> {
        let mut changes = Vec::new();
        let ip = plan.ip.to_string();
        self.macros(
            b'C',
            &[
                ("j", "mx.bench.example"),
                ("{daemon_name}", "smtpd"),
                ("{client_addr}", &ip),
            ],
        );
        let mut body = cstr(&[plan.helo.as_bytes()]);
        body.push(b'4');
        body.extend(40_000u16.to_be_bytes());
        body.extend(cstr(&[ip.as_bytes()]));
        self.packet(b'C', &body);
        let noreply = self.has(proto::NR_CONN);
        want("connect", self.send(noreply, &mut changes).await)?;
        self.packet(b'H', &cstr(&[plan.helo.as_bytes()]));
        let noreply = self.has(proto::NR_HELO);
        want("helo", self.send(noreply, &mut changes).await)
    }

    /// One message: MAIL, RCPT and, unless refused, the headers and the
    /// end of message. Gives how it ended and when RCPT was answered.
    async fn message(
        &mut self,
        plan: &Plan,
        t: usize,
        grey: Grey,
    ) -> Result<(End, Instant), String> {
        let mut changes = Vec::new();
        let ip = plan.ip.to_string();
        let queue_id = format!("4Q{t:08X}");
        let sender = format!("<{}>", plan.sender);
        self.macros(b'M', &[("i", &queue_id), ("{mail_addr}", &plan.sender)]);
        self.packet(b'M', &cstr(&[sender.as_bytes()]));
        let noreply = self.has(proto::NR_MAIL);
        want("mail", self.send(noreply, &mut changes).await)?;
        self.macros(
            b'R',
            &[("i", &queue_id), ("{rcpt_addr}", "user@example.org")],
        );
        self.packet(b'R', &cstr(&[b"<user@example.org>"]));
        let noreply = self.has(proto::NR_RCPT);
        let rcpt = self
            .send(noreply, &mut changes)
            .await
            .map_err(|e| format!("rcpt: {e}"))?;
        let answered = Instant::now();
        match (rcpt, plan.refusal) {
            (Answer::Continue, None) if grey != Grey::New => {}
            (Answer::Refused(text), Some(start)) if text.starts_with(start) => {
                // Postfix aborts the message; nothing is awaited.
                self.packet(b'A', &[]);
                return Ok((End::Refused, answered));
            }
            (Answer::Refused(text), None)
                if grey == Grey::New && text.starts_with("451 4.7.1 Greylisted") =>
            {
                self.packet(b'A', &[]);
                return Ok((End::Greylisted, answered));
            }
            (other, expected) => {
                return Err(format!("rcpt: {other:?} (expected refusal: {expected:?})"));
            }
        }
        if !self.has(proto::NO_HDRS) {
            let message_id = format!("<{t}.{queue_id}@{}>", plan.helo);
            let received = format!(
                "from {} ({} [{ip}]) by mx.bench.example (Postfix) with ESMTPS id {queue_id} for <user@example.org>",
                plan.helo, plan.helo
            );
            let from = format!("Newsletter <{}>", plan.sender);
            let headers: [(&str, &str); 6] = [
                ("Received", &received),
                ("From", &from),
                ("To", "<user@example.org>"),
                ("Subject", "Your weekly update"),
                ("Date", "Mon, 23 Nov 2026 07:00:00 +0000"),
                ("Message-ID", &message_id),
            ];
            let noreply = self.has(proto::NR_HDR);
            for (name, value) in headers.into_iter().take(header_count()) {
                self.packet(b'L', &cstr(&[name.as_bytes(), value.as_bytes()]));
                want("header", self.send(noreply, &mut changes).await)?;
            }
        }
        if !self.has(proto::NO_EOH) {
            self.packet(b'N', &[]);
            let noreply = self.has(proto::NR_EOH);
            want("eoh", self.send(noreply, &mut changes).await)?;
        }
        self.macros(b'E', &[("i", &queue_id)]);
        self.packet(b'E', &[]);
        want("eom", self.send(false, &mut changes).await)?;
        // Received-SPF and Authentication-Results on top; on a first pass
        // through greylisting also X-Greylist (inserted first, so it ends
        // below the other two).
        let expected = if grey == Grey::FirstPass { 3 } else { 2 };
        let on_top = changes
            .iter()
            .filter(|(cmd, data)| *cmd == b'i' && data.starts_with(&[0, 0, 0, 0]))
            .count();
        let greylist_header = changes
            .first()
            .is_some_and(|(cmd, data)| *cmd == b'i' && data.get(4..15) == Some(b"X-Greylist\0"));
        if on_top != expected
            || changes.len() != expected
            || greylist_header != (grey == Grey::FirstPass)
        {
            return Err(format!(
                "eom: expected {expected} headers inserted at 0 (X-Greylist: {}), got {changes:?}",
                grey == Grey::FirstPass
            ));
        }
        Ok((End::Delivered, answered))
    }
}

/// `Continue`, or an error naming the step.
fn want(what: &str, answer: std::io::Result<Answer>) -> Result<(), String> {
    match answer {
        Ok(Answer::Continue) => Ok(()),
        Ok(other) => Err(format!("{what}: {other:?}")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// The figures of one run.
#[derive(Clone, Debug)]
struct Figures {
    label: String,
    concurrency: usize,
    messages: usize,
    /// Refused or greylisted at RCPT.
    refused: usize,
    /// What `refused` must be.
    expected_refused: usize,
    errors: usize,
    /// With metrics on: whether the scrape after the run counted every
    /// message served (true with metrics off).
    metrics_counted: bool,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    rcpt_p50: Duration,
    rcpt_p99: Duration,
    queries_per_message: f64,
    /// Lookups cancelled per message, from the log lines (when read).
    cancelled_per_message: Option<f64>,
    cpu_per_1000: f64,
    hwm_mib: f64,
    rss_mib: f64,
    loadgen_cpu_per_1000: f64,
}

/// The `p` quantile of sorted durations.
fn quantile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or_default()
}

async fn run(
    milter: &MilterProcess,
    dns: &TestDns,
    plans: &Arc<Vec<Plan>>,
    concurrency: usize,
    label: &str,
    grey: Grey,
) -> Figures {
    let pid = milter.pid().to_string();
    dns.reset_counts();
    milter.log.reset();
    let split_before = cpu_split(&pid);
    let cpu_before = split_before.0 + split_before.1;
    let self_before = cpu_seconds("self");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let next = Arc::clone(&next);
        let plans = Arc::clone(plans);
        let addr = milter.addr.clone();
        workers.push(tokio::spawn(async move {
            let mut timings = Vec::new();
            let (mut refused, mut errors) = (0, 0);
            loop {
                let t = next.fetch_add(1, Ordering::Relaxed);
                let Some(plan) = plans.get(t) else { break };
                match transaction(&addr, plan, t, grey).await {
                    Ok((end, timing)) => {
                        timings.push(timing);
                        refused += usize::from(end != End::Delivered);
                    }
                    Err(err) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("transaction {t}: {err}");
                        }
                    }
                }
            }
            (timings, refused, errors)
        }));
    }
    let (mut timings, mut refused, mut errors) = (Vec::new(), 0, 0);
    for worker in workers {
        let (l, r, e) = worker.await.expect("worker");
        timings.extend(l);
        refused += r;
        errors += e;
    }
    let elapsed = started.elapsed();
    let messages = plans.len();
    let split = cpu_split(&pid);
    let metrics_counted = check_scrape(milter, messages).await;
    let cpu = split.0 + split.1 - cpu_before;
    let self_cpu = cpu_seconds("self") - self_before;
    eprintln!(
        "{label} at {concurrency}: milter CPU-s/1k user {:.3}, system {:.3}",
        (split.0 - split_before.0) / messages as f64 * 1000.0,
        (split.1 - split_before.1) / messages as f64 * 1000.0
    );
    let mut whole: Vec<Duration> = timings.iter().map(|t| t.whole).collect();
    let mut to_rcpt: Vec<Duration> = timings.iter().map(|t| t.to_rcpt).collect();
    whole.sort();
    to_rcpt.sort();
    let cancelled_per_message = if milter.reads_log() {
        // The last lines may still be on their way through the pipe.
        let deadline = Instant::now() + Duration::from_secs(2);
        while milter.log.messages.load(Ordering::SeqCst) < messages && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Some(milter.log.cancelled.load(Ordering::SeqCst) as f64 / messages as f64)
    } else {
        None
    };
    Figures {
        label: label.to_owned(),
        concurrency,
        messages,
        refused,
        expected_refused: if grey == Grey::New {
            messages
        } else {
            plans.iter().filter(|p| p.refusal.is_some()).count()
        },
        errors,
        metrics_counted,
        per_second: messages as f64 / elapsed.as_secs_f64(),
        p50: quantile(&whole, 0.50),
        p99: quantile(&whole, 0.99),
        rcpt_p50: quantile(&to_rcpt, 0.50),
        rcpt_p99: quantile(&to_rcpt, 0.99),
        queries_per_message: dns.query_count() as f64 / messages as f64,
        cancelled_per_message,
        cpu_per_1000: cpu / messages as f64 * 1000.0,
        hwm_mib: vm_mib(&pid, "VmHWM:"),
        rss_mib: vm_mib(&pid, "VmRSS:"),
        loadgen_cpu_per_1000: self_cpu / messages as f64 * 1000.0,
    }
}

/// The queries of the last run per message, by type.
fn query_mix(dns: &TestDns, messages: usize) -> String {
    let mut by_type = std::collections::BTreeMap::<u16, usize>::new();
    for q in dns.queries() {
        *by_type.entry(q.qtype).or_default() += 1;
    }
    by_type
        .iter()
        .map(|(qtype, n)| {
            let name = match qtype {
                1 => "A".to_owned(),
                28 => "AAAA".to_owned(),
                12 => "PTR".to_owned(),
                16 => "TXT".to_owned(),
                15 => "MX".to_owned(),
                other => format!("type {other}"),
            };
            format!("{name} {:.2}", *n as f64 / messages as f64)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

const HEADER: &str = "|   c | run              |  msg/s | p50 ms | p99 ms | RCPT p50 ms | RCPT p99 ms | DNS/m | cancelled/m | CPU-s/1k | HWM MiB | RSS MiB | loadgen CPU-s/1k | refused/errors |\n\
|----:|------------------|-------:|-------:|-------:|------------:|------------:|------:|------------:|---------:|--------:|--------:|-----------------:|---------------:|";

fn print_row(f: &Figures) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {:>3} | {:<16} | {:>6.0} | {:>6.2} | {:>6.2} | {:>11.2} | {:>11.2} | {:>5.2} | {:>11} | {:>8.3} | {:>7.1} | {:>7.1} | {:>16.3} | {:>6}/{:<7} |",
        f.concurrency,
        f.label,
        f.per_second,
        ms(f.p50),
        ms(f.p99),
        ms(f.rcpt_p50),
        ms(f.rcpt_p99),
        f.queries_per_message,
        f.cancelled_per_message
            .map_or_else(|| "-".to_owned(), |c| format!("{c:.2}")),
        f.cpu_per_1000,
        f.hwm_mib,
        f.rss_mib,
        f.loadgen_cpu_per_1000,
        f.refused,
        f.errors,
    );
}

/// `TOLLGATE_BENCH_…` as a number, or `default`.
fn env_number(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `TOLLGATE_BENCH_…` as a list of numbers (`1,16,64`), or `default`.
fn env_levels(key: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(key)
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// Whether every run answered every transaction as expected (and, with
/// metrics on, counted every message).
fn all_answered(figures: &[Figures], plans: &[Plan]) -> bool {
    figures.iter().all(|f| {
        f.errors == 0
            && f.refused == f.expected_refused
            && f.messages == plans.len()
            && f.metrics_counted
    })
}

/// Throughput: cold, warm and no-cache runs at each concurrency.
async fn throughput(dns: &TestDns, transactions: usize) -> bool {
    let plans = Arc::new(plans(transactions));
    println!(
        "\nthroughput: {transactions} transactions per run, {} clients, {BRANDS} brands via {ESPS} includes, 10% forged, {}, metrics {}{}",
        NETS.len() * HOSTS_PER_NET,
        if block_list_on() {
            format!(
                "{} listed",
                (0..NETS.len() * HOSTS_PER_NET)
                    .filter(|i| listed(*i))
                    .count()
            )
        } else {
            "block list off".to_owned()
        },
        on_off(metrics_on()),
        greylist_store().map_or_else(String::new, |s| format!(", greylisting ({s})"))
    );
    println!("{HEADER}");
    if greylist_store().is_some() {
        return greylisting(dns, &plans).await;
    }
    let mut all = Vec::new();
    for concurrency in env_levels("TOLLGATE_BENCH_CONCURRENCY", &CONCURRENCY) {
        let milter = MilterProcess::start(dns.addr(), Setup::WARM, &format!("c{concurrency}"));
        let baseline = vm_mib(&milter.pid().to_string(), "VmRSS:");
        eprintln!(
            "milter pid {} at {}: RSS at start {baseline:.1} MiB",
            milter.pid(),
            milter.addr
        );
        for label in ["cold", "warm"] {
            let f = run(&milter, dns, &plans, concurrency, label, Grey::Off).await;
            print_row(&f);
            all.push(f);
        }
        drop(milter);
        for parallel in [true, false] {
            let setup = Setup {
                cache_size: 0,
                parallel,
                read_log: true,
                ..Setup::WARM
            };
            let milter = MilterProcess::start(dns.addr(), setup, &format!("nocache{concurrency}"));
            let label = if parallel {
                "no-cache par"
            } else {
                "no-cache seq"
            };
            let f = run(&milter, dns, &plans, concurrency, label, Grey::Off).await;
            print_row(&f);
            if concurrency == 1 {
                eprintln!(
                    "DNS queries per message without a cache ({label}): {}",
                    query_mix(dns, transactions)
                );
            }
            all.push(f);
        }
    }
    all_answered(&all, &plans)
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// Greylisting every message (`TOLLGATE_BENCH_GREYLIST`), at each
/// concurrency on a fresh milter: every triplet new, after the delay
/// each one's first pass, then every one known.
async fn greylisting(dns: &TestDns, plans: &Arc<Vec<Plan>>) -> bool {
    let mut all = Vec::new();
    for concurrency in env_levels("TOLLGATE_BENCH_CONCURRENCY", &CONCURRENCY) {
        let setup = Setup {
            greylist: true,
            ..Setup::WARM
        };
        let milter = MilterProcess::start(dns.addr(), setup, &format!("g{concurrency}"));
        eprintln!(
            "milter pid {} at {}: greylisting",
            milter.pid(),
            milter.addr
        );
        // Also warms the DNS cache.
        let f = run(&milter, dns, plans, concurrency, "grey-new", Grey::New).await;
        print_row(&f);
        all.push(f);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        for (label, grey) in [("grey-pass", Grey::FirstPass), ("grey-known", Grey::Off)] {
            let f = run(&milter, dns, plans, concurrency, label, grey).await;
            print_row(&f);
            all.push(f);
        }
        if greylist_store().as_deref() == Some("embedded") {
            let db = milter.dir.0.join("greylist.db");
            let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
            eprintln!(
                "embedded store after {} triplets: {} KiB file + {} KiB WAL",
                plans.len(),
                size(&db) / 1024,
                size(&db.with_extension("db-wal")) / 1024
            );
        }
    }
    all_answered(&all, plans)
}

/// Critical path: every message from a new client with nothing cached,
/// every answer held back by the latency, sequential against parallel.
async fn cold_latency(dns: &TestDns, transactions: usize) -> bool {
    let latency: Latency = std::env::var("TOLLGATE_BENCH_LATENCY")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(Latency::fixed(Duration::from_millis(20)));
    let plans = Arc::new(plans(transactions));
    println!(
        "\ncold cache, {latency} per DNS answer: {transactions} transactions per run, each from a new client (dns.cache_size: 0), block list {}, metrics {}",
        on_off(block_list_on()),
        on_off(metrics_on())
    );
    println!("{HEADER}");
    dns.set_latency(latency);
    let mut all = Vec::new();
    for concurrency in env_levels("TOLLGATE_BENCH_COLD_CONCURRENCY", &[1, 16]) {
        for parallel in [false, true] {
            let setup = Setup {
                cache_size: 0,
                parallel,
                read_log: true,
                ..Setup::WARM
            };
            let milter = MilterProcess::start(dns.addr(), setup, &format!("latency{concurrency}"));
            let label = if parallel {
                "cold 20ms par"
            } else {
                "cold 20ms seq"
            };
            let f = run(&milter, dns, &plans, concurrency, label, Grey::Off).await;
            print_row(&f);
            all.push(f);
        }
    }
    dns.set_latency(Latency::NONE);
    all_answered(&all, &plans)
}

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("milter bench: run it with `cargo bench --bench milter`");
        return ExitCode::SUCCESS;
    }
    let mode = std::env::var("TOLLGATE_BENCH_MODE").unwrap_or_else(|_| "all".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ok = runtime.block_on(async move {
        let zone = parse_zone(&zone_yaml()).expect("the zone parses");
        let dns = TestDns::start(zone).await.expect("testdns starts");
        let mut ok = true;
        if matches!(mode.as_str(), "all" | "throughput") {
            ok &= throughput(
                &dns,
                env_number("TOLLGATE_BENCH_TRANSACTIONS", TRANSACTIONS),
            )
            .await;
        }
        if matches!(mode.as_str(), "all" | "latency") {
            ok &= cold_latency(&dns, env_number("TOLLGATE_BENCH_COLD_TRANSACTIONS", 300)).await;
        }
        if mode == "many" {
            ok &= many::run(&dns).await;
        }
        ok
    });
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("milter bench: some transactions failed or were answered wrongly");
        ExitCode::FAILURE
    }
}
