//! Milter throughput through the real milter protocol.
//!
//! `cargo bench --bench milter` starts `tollgate serve` (the release
//! binary of this package) as a separate process against a testdns server
//! on 127.0.0.1, and drives 2,000 realistic transactions per run through
//! it, one milter connection each, as Postfix would: macros, CONNECT, HELO,
//! MAIL, RCPT, six headers, end of headers, end of message, QUIT. The
//! clients come from 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24 with
//! PTR and A records; the sender domains publish `include:` SPF records;
//! every tenth sender is forged and is refused at RCPT (then aborted).
//!
//! For each concurrency (1, 16, 64) a fresh milter serves a cold-cache run
//! and then a warm-cache run (the same 2,000 transactions again), and a
//! second fresh milter with `dns.cache_size: 0` shows what every message
//! costs in DNS when nothing is cached. Reported per run: messages/s, p50
//! and p99 of a whole transaction, DNS queries per message (testdns's
//! counter), the milter's CPU-seconds per 1,000 messages (utime + stime
//! from /proc/PID/stat), its peak RSS (VmHWM), and the load generator's own
//! CPU (this process: client and DNS server together).
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
//! `TOLLGATE_BENCH_METRICS=1` turns the Prometheus metrics on
//! (`metrics.listen` on a free loopback port) and scrapes them once after
//! each run, as Prometheus would, checking that every message was counted.
//!
//! `TOLLGATE_BENCH_GREYLIST=embedded` (or a Redis URL such as
//! `redis://127.0.0.1:6390/0`) greylists every message (`fcrdns: {pass:
//! greylist}`, `delay: 1s`, `auto_allow: 0`): per concurrency the runs are
//! `grey-new` (every triplet new: all answered 451 4.7.1), then after the
//! delay `grey-pass` (each triplet's first pass) and `grey-known` (every
//! triplet known: the steady state), all with a warm DNS cache.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tollgate_testdns::TestDns;
use tollgate_testdns::suite::parse_zone;

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

/// One transaction's data.
#[derive(Clone, Debug)]
struct Plan {
    ip: IpAddr,
    helo: String,
    sender: String,
    forged: bool,
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
    z
}

fn client_name(i: usize) -> String {
    format!("mta{i}.out.esp{}.example", i % ESPS)
}

fn plans(count: usize) -> Vec<Plan> {
    let clients = NETS.len() * HOSTS_PER_NET;
    (0..count)
        .map(|t| {
            let i = (t * 7) % clients;
            let net = NETS[i / HOSTS_PER_NET];
            let ip: IpAddr = format!("{net}.{}", i % HOSTS_PER_NET + 1)
                .parse()
                .expect("an address");
            let forged = t % 10 == 9;
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
            }
        })
        .collect()
}

/// The milter under test, a child process.
struct MilterProcess {
    child: Child,
    addr: SocketAddr,
    /// Where it serves metrics (`TOLLGATE_BENCH_METRICS=1`).
    metrics: Option<SocketAddr>,
    _dir: TempDir,
}

/// Whether `TOLLGATE_BENCH_METRICS` turns the metrics on.
fn metrics_on() -> bool {
    std::env::var("TOLLGATE_BENCH_METRICS").is_ok_and(|v| v == "1")
}

/// After a run: with metrics on, one scrape, which must have counted
/// every message the milter served so far.
fn check_scrape(milter: &MilterProcess, served: usize) -> bool {
    match milter.scraped_messages() {
        None => true,
        Some(counted) => {
            eprintln!("metrics: {counted} messages counted of {served} served");
            counted == served as f64
        }
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl MilterProcess {
    fn start(dns: SocketAddr, cache_size: usize, tag: &str) -> MilterProcess {
        let log_level = std::env::var("TOLLGATE_BENCH_LOG").unwrap_or_else(|_| "info".to_owned());
        let dir = std::env::temp_dir().join(format!("tollgate-bench-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let config = dir.join("milter.yaml");
        let metrics = metrics_on().then(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port for metrics")
        });
        let metrics_yaml = metrics
            .map(|addr| format!("metrics:\n  listen: {addr}\n"))
            .unwrap_or_default();
        let greylist = match greylist_store() {
            None => String::new(),
            Some(store) => {
                let store = if store == "embedded" {
                    format!(
                        "store: embedded\n  path: {}",
                        dir.join("greylist.db").display()
                    )
                } else {
                    format!("store: redis\n  redis: {store}")
                };
                format!(
                    "policy:\n  fcrdns: {{pass: greylist}}\n\
                     greylist:\n  {store}\n  delay: 1s\n  retry_window: 1h\n  auto_allow: 0\n"
                )
            }
        };
        std::fs::write(
            &config,
            format!(
                "listen: inet:127.0.0.1:0\n\
                 hostname: mx.bench.example\n\
                 max_connections: 256\n\
                 dns:\n  nameservers: [\"{dns}\"]\n  timeout: 2s\n  attempts: 2\n  cache_size: {cache_size}\n\
                 log:
  level: {log_level}
{metrics_yaml}{greylist}"
            ),
        )
        .expect("write the configuration");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // One info line per message, as in production, into /dev/null.
            .stderr(Stdio::null())
            .spawn()
            .expect("start tollgate serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on inet:")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("an address");
        MilterProcess {
            child,
            addr,
            metrics,
            _dir: TempDir(dir),
        }
    }

    /// The messages counted in `tollgate_messages_total`, from one scrape
    /// (`None` with metrics off).
    fn scraped_messages(&self) -> Option<f64> {
        use std::io::{Read, Write};
        let addr = self.metrics?;
        let mut stream = std::net::TcpStream::connect(addr).expect("connect to metrics");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
            .expect("send the scrape");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read the scrape");
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        Some(
            text.lines()
                .filter(|l| l.starts_with("tollgate_messages_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for MilterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let after = &stat[stat.rfind(')').expect("comm") + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / clock_ticks()
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
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
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
    async fn open(addr: SocketAddr) -> std::io::Result<MtaConn> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut conn = MtaConn {
            stream: tokio::io::BufReader::new(tcp),
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

/// One whole transaction on its own milter connection.
async fn transaction(addr: SocketAddr, plan: &Plan, t: usize) -> Result<End, String> {
    let io = |what: &'static str| move |e: std::io::Error| format!("{what}: {e}");
    let want = |what: &'static str, a: Answer| match a {
        Answer::Continue => Ok(()),
        other => Err(format!("{what}: {other:?}")),
    };
    let mut changes = Vec::new();
    let mut c = MtaConn::open(addr).await.map_err(io("open"))?;
    let ip = plan.ip.to_string();
    c.macros(
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
    c.packet(b'C', &body);
    let noreply = c.has(proto::NR_CONN);
    want(
        "connect",
        c.send(noreply, &mut changes).await.map_err(io("connect"))?,
    )?;
    c.packet(b'H', &cstr(&[plan.helo.as_bytes()]));
    let noreply = c.has(proto::NR_HELO);
    want(
        "helo",
        c.send(noreply, &mut changes).await.map_err(io("helo"))?,
    )?;
    let queue_id = format!("4Q{t:08X}");
    let sender = format!("<{}>", plan.sender);
    c.macros(b'M', &[("i", &queue_id), ("{mail_addr}", &plan.sender)]);
    c.packet(b'M', &cstr(&[sender.as_bytes()]));
    let noreply = c.has(proto::NR_MAIL);
    want(
        "mail",
        c.send(noreply, &mut changes).await.map_err(io("mail"))?,
    )?;
    c.macros(
        b'R',
        &[("i", &queue_id), ("{rcpt_addr}", "user@example.org")],
    );
    c.packet(b'R', &cstr(&[b"<user@example.org>"]));
    let noreply = c.has(proto::NR_RCPT);
    let rcpt = c.send(noreply, &mut changes).await.map_err(io("rcpt"))?;
    match (rcpt, plan.forged) {
        (Answer::Continue, false) => {}
        (Answer::Refused(text), _) if text.starts_with("451 4.7.1 Greylisted") && !plan.forged => {
            c.packet(b'A', &[]);
            c.packet(b'Q', &[]);
            c.flush().await.map_err(io("quit"))?;
            return Ok(End::Refused);
        }
        (Answer::Refused(text), true) if text.starts_with("550 5.7.23 ") => {
            // Postfix aborts the message and quits; nothing is awaited.
            c.packet(b'A', &[]);
            c.packet(b'Q', &[]);
            c.flush().await.map_err(io("quit"))?;
            return Ok(End::Refused);
        }
        (other, forged) => return Err(format!("rcpt: {other:?} (forged: {forged})")),
    }
    if !c.has(proto::NO_HDRS) {
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
        let noreply = c.has(proto::NR_HDR);
        for (name, value) in headers.into_iter().take(header_count()) {
            c.packet(b'L', &cstr(&[name.as_bytes(), value.as_bytes()]));
            want(
                "header",
                c.send(noreply, &mut changes).await.map_err(io("header"))?,
            )?;
        }
    }
    if !c.has(proto::NO_EOH) {
        c.packet(b'N', &[]);
        let noreply = c.has(proto::NR_EOH);
        want(
            "eoh",
            c.send(noreply, &mut changes).await.map_err(io("eoh"))?,
        )?;
    }
    c.macros(b'E', &[("i", &queue_id)]);
    c.packet(b'E', &[]);
    want("eom", c.send(false, &mut changes).await.map_err(io("eom"))?)?;
    // A message that passed greylisting for the first time also gets
    // X-Greylist (inserted first, so it ends below the other two).
    let greylist_header = changes
        .first()
        .is_some_and(|(cmd, data)| *cmd == b'i' && data.get(4..15) == Some(b"X-Greylist\0"));
    let expected = 2 + usize::from(greylist_header);
    let on_top = changes
        .iter()
        .filter(|(cmd, data)| *cmd == b'i' && data.starts_with(&[0, 0, 0, 0]))
        .count();
    if on_top != expected || changes.len() != expected {
        return Err(format!(
            "eom: expected two headers inserted at 0, got {changes:?}"
        ));
    }
    c.packet(b'Q', &[]);
    c.flush().await.map_err(io("quit"))?;
    Ok(End::Delivered)
}

/// The figures of one run.
#[derive(Clone, Debug)]
struct Figures {
    label: String,
    concurrency: usize,
    messages: usize,
    refused: usize,
    errors: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    queries_per_message: f64,
    cpu_per_1000: f64,
    hwm_mib: f64,
    rss_mib: f64,
    loadgen_cpu_per_1000: f64,
}

async fn run(
    milter: &MilterProcess,
    dns: &TestDns,
    plans: &Arc<Vec<Plan>>,
    concurrency: usize,
    label: &str,
) -> Figures {
    let pid = milter.pid().to_string();
    dns.reset_counts();
    let cpu_before = cpu_seconds(&pid);
    let self_before = cpu_seconds("self");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let next = Arc::clone(&next);
        let plans = Arc::clone(plans);
        let addr = milter.addr;
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut refused, mut errors) = (0, 0);
            loop {
                let t = next.fetch_add(1, Ordering::Relaxed);
                let Some(plan) = plans.get(t) else { break };
                let begun = Instant::now();
                match transaction(addr, plan, t).await {
                    Ok(end) => {
                        latencies.push(begun.elapsed());
                        refused += usize::from(end == End::Refused);
                    }
                    Err(err) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("transaction {t}: {err}");
                        }
                    }
                }
            }
            (latencies, refused, errors)
        }));
    }
    let (mut latencies, mut refused, mut errors) = (Vec::new(), 0, 0);
    for worker in workers {
        let (l, r, e) = worker.await.expect("worker");
        latencies.extend(l);
        refused += r;
        errors += e;
    }
    let elapsed = started.elapsed();
    let messages = plans.len();
    let cpu = cpu_seconds(&pid) - cpu_before;
    let self_cpu = cpu_seconds("self") - self_before;
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    Figures {
        label: label.to_owned(),
        concurrency,
        messages,
        refused,
        errors,
        per_second: messages as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        queries_per_message: dns.query_count() as f64 / messages as f64,
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

fn print_row(f: &Figures) {
    println!(
        "| {:>3} | {:<9} | {:>8.0} | {:>7.3} | {:>7.3} | {:>5.2} | {:>6.3} | {:>5.1} | {:>5.1} | {:>6.3} | {:>3}/{:<3} |",
        f.concurrency,
        f.label,
        f.per_second,
        f.p50.as_secs_f64() * 1000.0,
        f.p99.as_secs_f64() * 1000.0,
        f.queries_per_message,
        f.cpu_per_1000,
        f.hwm_mib,
        f.rss_mib,
        f.loadgen_cpu_per_1000,
        f.refused,
        f.errors,
    );
}

/// `TOLLGATE_BENCH_GREYLIST`: `embedded`, a Redis URL, or unset.
fn greylist_store() -> Option<String> {
    std::env::var("TOLLGATE_BENCH_GREYLIST")
        .ok()
        .filter(|s| !s.is_empty())
}

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("milter bench: run it with `cargo bench --bench milter`");
        return ExitCode::SUCCESS;
    }
    let transactions = std::env::var("TOLLGATE_BENCH_TRANSACTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(TRANSACTIONS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ok = runtime.block_on(async move {
        let zone = parse_zone(&zone_yaml()).expect("the zone parses");
        let dns = TestDns::start(zone).await.expect("testdns starts");
        let plans = Arc::new(plans(transactions));
        println!(
            "milter bench: {transactions} transactions per run, {} clients, {BRANDS} brands via {ESPS} includes, 10% forged, metrics {}",
            NETS.len() * HOSTS_PER_NET,
            if metrics_on() { "on" } else { "off" }
        );
        println!(
            "|   c | run       |  msg/s   | p50 ms  | p99 ms  | DNS/m | CPU-s/1k | HWM MiB | RSS MiB | loadgen CPU-s/1k | refused/errors |"
        );
        println!("|----:|-----------|---------:|--------:|--------:|------:|-------:|------:|------:|-------:|--------:|");
        let mut all = Vec::new();
        let mut metrics_ok = true;
        let levels: Vec<usize> = std::env::var("TOLLGATE_BENCH_CONCURRENCY")
            .ok()
            .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
            .unwrap_or_else(|| CONCURRENCY.to_vec());
        let expected_refused = plans.iter().filter(|p| p.forged).count();
        if let Some(store) = greylist_store() {
            let mut ok = true;
            for concurrency in levels {
                let milter = MilterProcess::start(dns.addr(), 10_000, &format!("g{concurrency}"));
                // Warm the DNS cache with a run whose triplets are all new.
                let f = run(&milter, &dns, &plans, concurrency, "grey-new").await;
                print_row(&f);
                ok &= f.errors == 0 && f.refused == transactions;
                tokio::time::sleep(Duration::from_millis(1100)).await;
                for label in ["grey-pass", "grey-known"] {
                    let f = run(&milter, &dns, &plans, concurrency, label).await;
                    print_row(&f);
                    ok &= f.errors == 0 && f.refused == expected_refused;
                }
                if store == "embedded" {
                    let db = milter._dir.0.join("greylist.db");
                    let size = |p: PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
                    let wal = db.with_extension("db-wal");
                    eprintln!(
                        "embedded store after {transactions} triplets: {} KiB file + {} KiB WAL",
                        size(db.clone()) / 1024,
                        size(wal) / 1024
                    );
                }
            }
            return ok;
        }
        for concurrency in levels {
            let milter = MilterProcess::start(dns.addr(), 10_000, &format!("c{concurrency}"));
            let baseline = vm_mib(&milter.pid().to_string(), "VmRSS:");
            eprintln!("milter pid {} at {}: RSS at start {baseline:.1} MiB", milter.pid(), milter.addr);
            let mut counted = true;
            for (i, label) in ["cold", "warm"].into_iter().enumerate() {
                let f = run(&milter, &dns, &plans, concurrency, label).await;
                print_row(&f);
                all.push(f);
                counted &= check_scrape(&milter, (i + 1) * transactions);
            }
            drop(milter);
            let milter = MilterProcess::start(dns.addr(), 0, &format!("nocache{concurrency}"));
            let f = run(&milter, &dns, &plans, concurrency, "no-cache").await;
            print_row(&f);
            counted &= check_scrape(&milter, transactions);
            metrics_ok &= counted;
            if concurrency == 1 {
                eprintln!("DNS queries per message without a cache: {}", query_mix(&dns, transactions));
            }
            all.push(f);
        }
        metrics_ok
            && all.iter().all(|f| {
                f.errors == 0 && f.refused == expected_refused && f.messages == transactions
            })
    });
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("milter bench: some transactions failed or were answered wrongly");
        ExitCode::FAILURE
    }
}
