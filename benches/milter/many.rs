//! Many connections (`TOLLGATE_BENCH_MODE=many`): 1,000 MTA connections
//! held open at once (`max_connections: 1000`) for ten minutes, each
//! going through whole transactions: CONNECT and HELO, then five
//! messages (MAIL, RCPT, headers, end of message, or ABORT after a
//! refusal) with a pause of about two seconds before each, QUIT, and a
//! new connection. The cache is warm after the first minute.
//!
//! Reported: the milter's resident memory at start (before the first
//! connection), its peak (VmHWM) and at the end (all connections closed),
//! with samples every 10 s to show it is flat; its open file descriptors
//! at start and end (none may be left behind); the p50/p99 of the CONNECT
//! to HELO answer and of a message (MAIL to its last answer).
//!
//! `TOLLGATE_BENCH_CONNECTIONS` (1000), `TOLLGATE_BENCH_DURATION`
//! (seconds, 600), `TOLLGATE_BENCH_MESSAGES_PER_CONNECTION` (5) and
//! `TOLLGATE_BENCH_PAUSE_MS` (2000, spread ±50 % per pause) change it.
//! With `TOLLGATE_BENCH_METRICS=1` one scrape at the end must have
//! counted every message. The bench process raises its own open-file limit (with `prlimit`) when
//! the soft limit is too low; the milter inherits it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tollgate_testdns::TestDns;

use super::{End, MilterProcess, MtaConn, Plan, Setup, env_number, plans, quantile, vm_mib};

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The soft open-file limit of this process.
fn nofile_soft_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Raises this process's soft open-file limit to at least `need`.
fn raise_nofile(need: usize) {
    match nofile_soft_limit() {
        Some(soft) if soft >= need => {}
        soft => {
            let status = std::process::Command::new("prlimit")
                .arg("--pid")
                .arg(std::process::id().to_string())
                .arg(format!("--nofile={need}:"))
                .status();
            eprintln!(
                "open-file limit {soft:?} below {need}: prlimit {status:?}, now {:?}",
                nofile_soft_limit()
            );
        }
    }
}

/// A number in 0..n from two inputs (spreads pauses and plans).
fn spread(a: usize, b: usize, n: usize) -> usize {
    let mut z = (a as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (b as u64);
    z = (z ^ (z >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^= z >> 29;
    (z % n.max(1) as u64) as usize
}

/// What one connection worker saw.
#[derive(Debug, Default)]
struct Seen {
    hello: Vec<Duration>,
    messages: Vec<Duration>,
    refused: usize,
    errors: usize,
    connections: usize,
}

/// One worker: connections one after another until `deadline`.
async fn worker(
    w: usize,
    addr: super::MilterAddr,
    plans: Arc<Vec<Plan>>,
    deadline: Instant,
    per_connection: usize,
    pause: Duration,
    serial: Arc<AtomicUsize>,
) -> Seen {
    let mut seen = Seen::default();
    // Spread the first connections over the first pause.
    tokio::time::sleep(pause.mul_f64(spread(w, 0, 1000) as f64 / 1000.0)).await;
    let mut round = 0;
    while Instant::now() < deadline {
        round += 1;
        let client = &plans[spread(w, round, plans.len())];
        let result: Result<(), String> = async {
            let mut c = MtaConn::open(&addr)
                .await
                .map_err(|e| format!("open: {e}"))?;
            seen.connections += 1;
            let begun = Instant::now();
            c.hello(client).await?;
            seen.hello.push(begun.elapsed());
            for _ in 0..per_connection {
                let millis = pause.as_millis() as usize;
                let jitter = millis / 2 + spread(w, serial.load(Ordering::Relaxed), millis + 1);
                tokio::time::sleep(Duration::from_millis(jitter as u64)).await;
                if Instant::now() >= deadline {
                    break;
                }
                let t = serial.fetch_add(1, Ordering::Relaxed);
                let sender = &plans[t % plans.len()];
                let plan = Plan {
                    refusal: if client.refusal == Some("550 5.7.1 ") {
                        client.refusal
                    } else if sender.forged {
                        Some("550 5.7.23 ")
                    } else {
                        None
                    },
                    sender: sender.sender.clone(),
                    ..client.clone()
                };
                let begun = Instant::now();
                let (end, _) = c.message(&plan, t, super::Grey::Off).await?;
                seen.messages.push(begun.elapsed());
                seen.refused += usize::from(end == End::Refused);
            }
            c.packet(b'Q', &[]);
            c.flush().await.map_err(|e| format!("quit: {e}"))
        }
        .await;
        if let Err(e) = result {
            seen.errors += 1;
            if seen.errors <= 2 {
                eprintln!("worker {w}: {e}");
            }
        }
    }
    seen
}

/// The many-connections run.
pub(crate) async fn run(dns: &TestDns) -> bool {
    let connections = env_number("TOLLGATE_BENCH_CONNECTIONS", 1000);
    let duration = Duration::from_secs(env_number("TOLLGATE_BENCH_DURATION", 600) as u64);
    let per_connection = env_number("TOLLGATE_BENCH_MESSAGES_PER_CONNECTION", 5);
    let pause = Duration::from_millis(env_number("TOLLGATE_BENCH_PAUSE_MS", 2000) as u64);
    // The bench's sockets, the milter's, and some spare.
    raise_nofile(connections * 2 + 256);
    let setup = Setup {
        max_connections: connections,
        ..Setup::WARM
    };
    let milter = MilterProcess::start(dns.addr(), setup, "many");
    let pid = milter.pid();
    let pid_text = pid.to_string();
    let rss_start = vm_mib(&pid_text, "VmRSS:");
    let fds_start = open_fds(pid);
    println!(
        "\nmany connections: {connections} at once for {duration:?}, {per_connection} messages per connection, a pause of {pause:?} ±50 % before each"
    );
    println!("milter at start: RSS {rss_start:.1} MiB, {fds_start} open fds");
    let plans = Arc::new(plans(3000));
    let started = Instant::now();
    let deadline = started + duration;
    let serial = Arc::new(AtomicUsize::new(0));
    let cpu_before = super::cpu_seconds(&pid_text);
    let mut workers = Vec::with_capacity(connections);
    for w in 0..connections {
        workers.push(tokio::spawn(worker(
            w,
            milter.addr.clone(),
            Arc::clone(&plans),
            deadline,
            per_connection,
            pause,
            Arc::clone(&serial),
        )));
    }
    // Memory and descriptors every 10 s while it runs.
    let sampler = {
        let pid_text = pid_text.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_secs(10)).await;
                samples.push((
                    started.elapsed().as_secs(),
                    vm_mib(&pid_text, "VmRSS:"),
                    open_fds(pid),
                ));
            }
            samples
        })
    };
    let mut all = Seen::default();
    for w in workers {
        let seen = w.await.expect("worker");
        all.hello.extend(seen.hello);
        all.messages.extend(seen.messages);
        all.refused += seen.refused;
        all.errors += seen.errors;
        all.connections += seen.connections;
    }
    let elapsed = started.elapsed();
    let cpu = super::cpu_seconds(&pid_text) - cpu_before;
    let samples = sampler.await.expect("sampler");
    // Let the milter see every close.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_end = vm_mib(&pid_text, "VmRSS:");
    let hwm = vm_mib(&pid_text, "VmHWM:");
    let fds_end = open_fds(pid);
    all.hello.sort();
    all.messages.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let peak_fds = samples.iter().map(|s| s.2).max().unwrap_or(0);
    let second_half: Vec<f64> = samples
        .iter()
        .filter(|s| s.0 >= duration.as_secs() / 2)
        .map(|s| s.1)
        .collect();
    let (low, high) = second_half
        .iter()
        .fold((f64::MAX, 0.0f64), |(l, h), r| (l.min(*r), h.max(*r)));
    println!(
        "RSS every 10 s (MiB): {}",
        samples
            .iter()
            .map(|s| format!("{:.1}", s.1))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "| connections | duration s | MTA connections made | messages | msg/s | refused | errors | HELO p50/p99 ms | message p50/p99 ms | CPU-s/1k | RSS start / peak (VmHWM) / end MiB | RSS 2nd half min–max MiB | fds start / peak / end |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|---|---|");
    println!(
        "| {connections} | {:.0} | {} | {} | {:.0} | {} | {} | {:.2} / {:.2} | {:.2} / {:.2} | {:.3} | {rss_start:.1} / {hwm:.1} / {rss_end:.1} | {low:.1}–{high:.1} | {fds_start} / {peak_fds} / {fds_end} |",
        elapsed.as_secs_f64(),
        all.connections,
        all.messages.len(),
        all.messages.len() as f64 / elapsed.as_secs_f64(),
        all.refused,
        all.errors,
        ms(quantile(&all.hello, 0.5)),
        ms(quantile(&all.hello, 0.99)),
        ms(quantile(&all.messages, 0.5)),
        ms(quantile(&all.messages, 0.99)),
        cpu / all.messages.len().max(1) as f64 * 1000.0,
    );
    let counted = super::check_scrape(&milter, all.messages.len()).await;
    let ok = counted && all.errors == 0 && fds_end == fds_start && !all.messages.is_empty();
    if fds_end != fds_start {
        eprintln!("milter: {fds_start} fds at start, {fds_end} at the end");
    }
    ok
}
