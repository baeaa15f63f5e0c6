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
#[path = "milter/mta.rs"]
mod mta;
#[path = "milter/process.rs"]
mod process;

use mta::{MilterAddr, MtaConn, unix_socket};
use process::*;

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
