//! The Prometheus metrics, scraped for real: a milter with
//! `metrics.listen: 127.0.0.1:0` serves real milter traffic
//! (indymilter-test playing the MTA, DNS from testdns on 127.0.0.1), and
//! the test reads `/metrics` with a hand-written HTTP/1.1 GET over a TCP
//! connection, then checks each value against what that traffic must have
//! produced. The text is checked by `promtool check metrics`, and the
//! alerting rules of docs/operations.md by `promtool check rules` and
//! `promtool test rules` (Debian package `prometheus`).
//!
//! Without promtool those tests are reported ignored, with the reason,
//! unless `CI` or `TOLLGATE_E2E_REQUIRED=1` is set: then they fail
//! (tests/e2e/harness.rs). `.ci/run` installs it.

// Only the harness and a few helpers of the e2e module are used here.
#[allow(unused_macros, unused_imports)]
mod e2e;
#[allow(dead_code)]
// Both harnesses include tests/common/temp_dir.rs for themselves.
#[allow(clippy::duplicate_mod)]
#[path = "milter/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::{Missing, TempDir, TestResult, note, require};
use indymilter_test::{Status, TestConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate::dns::memory::RecordType;
use tollgate_testdns::suite::parse_zone;

use support::{Running, Setup, assert_accepted, reply};

e2e::harness::main!(
    a_scrape_during_milter_traffic_counts_what_the_traffic_did,
    scraped_text_passes_promtool_check_metrics,
    alert_rules_in_operations_md_pass_promtool_check_and_test,
    paths_other_than_metrics_are_404_and_bad_requests_are_refused,
    metrics_clients_that_send_nothing_do_not_hold_up_the_milter,
    a_metrics_address_in_use_stops_the_start_and_leaves_no_socket_file,
);

/// 192.0.2.7 is mx.example.com (FCrDNS passes); example.com authorises
/// 192.0.2.0/24; forged.example.org only 203.0.113.0/24 (whose
/// 203.0.113.0/24 is a trusted network in [`setup`]); slow.example.com's
/// TXT never answers.
const ZONE: &str = r#"
example.com:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:192.0.2.0/24 -all"
mx.example.com:
  - A: 192.0.2.7
  - TXT: "v=spf1 a -all"
7.2.0.192.in-addr.arpa:
  - PTR: mx.example.com
forged.example.org:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:203.0.113.0/24 -all"
slow.example.com:
  - MX: [10, mx.example.com]
  - TIMEOUT
"#;

fn setup() -> Setup {
    Setup::extra("metrics:\n  listen: 127.0.0.1:0\nskip:\n  networks: [203.0.113.0/24]\n")
}

/// Runs `test` on a runtime of its own (the milter runs on it too).
fn block_on<F: std::future::Future>(test: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(test)
}

async fn start() -> Running {
    let m = Running::start(parse_zone(ZONE).expect("the zone parses"), setup()).await;
    assert!(
        m.metrics.is_some(),
        "metrics.listen is set, so metrics are served"
    );
    m
}

/// One HTTP/1.1 request over a fresh connection: the status line and the
/// body.
async fn http(addr: SocketAddr, request: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect to metrics");
    stream.write_all(request).await.expect("send the request");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response))
        .await
        .expect("the answer comes")
        .expect("read the answer");
    let response = String::from_utf8(response).expect("the answer is UTF-8");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of the head: {response:?}"));
    let status = head.lines().next().unwrap_or("").to_owned();
    // HEAD gives the length the GET would have, and no body.
    if let Some(length) = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .filter(|_| !request.starts_with(b"HEAD "))
    {
        assert_eq!(length.parse::<usize>().ok(), Some(body.len()), "{head}");
    }
    (status, body.to_owned())
}

/// `GET /metrics`: the text, after checking the status and content type.
async fn scrape(m: &Running) -> String {
    let addr = m.metrics.expect("metrics on");
    let mut stream = TcpStream::connect(addr).await.expect("connect to metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: tollgate\r\nAccept: */*\r\n\r\n")
        .await
        .expect("send the request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read the answer");
    let response = String::from_utf8(response).expect("UTF-8");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{head}"
    );
    body.to_owned()
}

/// The samples of a scrape: `name{labels}` as written, and the value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l:?}"));
            let value = value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("not a number in {l:?}"));
            (series.to_owned(), value)
        })
        .collect()
}

/// The value of one series, which must be there.
fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| {
        let family = series.split('{').next().unwrap_or(series);
        let near: Vec<_> = samples.keys().filter(|k| k.starts_with(family)).collect();
        panic!("no {series} in the scrape; {family}: {near:#?}")
    })
}

/// The traffic, and the scrape taken during it and after it.
struct Traffic {
    /// While the first connection was open.
    during: BTreeMap<String, f64>,
    /// After everything.
    text: String,
    /// Queries testdns saw for the PTR of 192.0.2.7 and slow.example.com's TXT.
    ptr_on_network: usize,
    slow_txt_on_network: usize,
    /// Before the first reload.
    before_reload: f64,
}

/// Four messages on three connections, one command out of sequence, and
/// two reloads (one good, one bad):
///
/// 1. 192.0.2.7: accepted (SPF pass), then forged.example.org rejected at
///    RCPT (spf-mailfrom fail) and aborted;
/// 2. 192.0.2.7 again: slow.example.com tempfailed (TXT timeout);
/// 3. 203.0.113.9, a trusted network: accepted, skipped;
/// 4. a connection that sends HELO without CONNECT: tempfail.
async fn traffic(m: &Running) -> Traffic {
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    assert_accepted(&mut c, "<alice@example.com>", "<bob@example.org>").await;
    let (_, status) = m.eom(&mut c, &[]).await;
    assert_eq!(status, Status::Continue);
    assert_eq!(
        c.mail(["<x@forged.example.org>"]).await.unwrap(),
        Status::Continue
    );
    let status = c.rcpt(["<bob@example.org>"]).await.unwrap();
    assert!(
        reply(&status).is_some_and(|r| r.starts_with("550 5.7.23 ")),
        "{status:?}"
    );
    c.abort().await.unwrap();
    let during = samples(&scrape(m).await);
    c.close().await.unwrap();

    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    assert_eq!(
        c.mail(["<bob@slow.example.com>"]).await.unwrap(),
        Status::Continue
    );
    let status = c.rcpt(["<x@example.org>"]).await.unwrap();
    assert!(
        reply(&status).is_some_and(|r| r.starts_with("451 4.7.24 ")),
        "{status:?}"
    );
    c.close().await.unwrap();

    let mut c = m.connect("203.0.113.9").await;
    assert_eq!(c.helo("OEMCOMPUTER").await.unwrap(), Status::Continue);
    assert_accepted(&mut c, "<bob@forged.example.org>", "<x@example.org>").await;
    let (_, status) = m.eom(&mut c, &[]).await;
    assert_eq!(status, Status::Continue);
    c.close().await.unwrap();

    let mut c = TestConnection::open(m.addr).await.expect("connect");
    let status = c.helo("mx.example.com").await.expect("HELO answered");
    assert!(matches!(status, Status::Tempfail { .. }), "{status:?}");
    c.close().await.unwrap();

    let before_reload = unix_now();
    m.handle.reload().await.expect("the unchanged file reloads");
    let good = std::fs::read_to_string(m.config_path()).unwrap();
    std::fs::write(m.config_path(), "dns:\n  timeout: 5 parsecs\n").unwrap();
    m.handle.reload().await.expect_err("a bad file is refused");
    std::fs::write(m.config_path(), good).unwrap();

    // Sessions end on their own tasks after the connection closes.
    for _ in 0..2000 {
        if m.handle.live_sessions() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(m.handle.live_sessions(), 0, "every session ended");
    Traffic {
        during,
        text: scrape(m).await,
        ptr_on_network: m
            .dns
            .query_count_for("7.2.0.192.in-addr.arpa", RecordType::Ptr),
        slow_txt_on_network: m.dns.query_count_for("slow.example.com", RecordType::Txt),
        before_reload,
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn a_scrape_during_milter_traffic_counts_what_the_traffic_did() -> TestResult {
    let t = block_on(async {
        let m = start().await;
        traffic(&m).await
    });
    note(&t.text);
    let s = samples(&t.text);
    let v = |series: &str| value(&s, series);

    // Messages: one line each, by action and deciding stage.
    for (series, n) in [
        (r#"action="accept",decided_by="none""#, 1.0),
        (r#"action="reject",decided_by="spf-mailfrom""#, 1.0),
        (r#"action="tempfail",decided_by="spf-mailfrom""#, 1.0),
        (r#"action="accept",decided_by="skip""#, 1.0),
    ] {
        assert_eq!(
            v(&format!("tollgate_messages_total{{{series}}}")),
            n,
            "{series}"
        );
    }
    let messages: f64 = s
        .iter()
        .filter(|(k, _)| k.starts_with("tollgate_messages_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(messages, 4.0);

    // Stage results, per message: the first connection's fcrdns pass
    // counts for both its messages.
    for (stage, result, n) in [
        ("fcrdns", "pass", 3.0),
        ("spf-mailfrom", "pass", 1.0),
        ("spf-mailfrom", "fail", 1.0),
        ("spf-mailfrom", "temperror", 1.0),
        ("skip", "skipped", 1.0),
    ] {
        assert_eq!(
            v(&format!(
                r#"tollgate_stage_results_total{{stage="{stage}",result="{result}"}}"#
            )),
            n,
            "{stage}={result}"
        );
    }
    assert_eq!(v(r#"tollgate_skips_total{reason="trusted-network"}"#), 1.0);

    // DNS: both connections from 192.0.2.7 asked its PTR; testdns saw the
    // first, the cache answered the second. The timed-out TXT is never
    // cached: every one was asked of the nameserver.
    assert_eq!(t.ptr_on_network, 1);
    assert_eq!(
        v(r#"tollgate_dns_queries_total{type="PTR",outcome="answer"}"#),
        2.0
    );
    assert_eq!(v(r#"tollgate_dns_cache_answers_total{type="PTR"}"#), 1.0);
    assert!(t.slow_txt_on_network >= 1);
    assert_eq!(
        v(r#"tollgate_dns_queries_total{type="TXT",outcome="timeout"}"#),
        t.slow_txt_on_network as f64
    );
    let queries: f64 = s
        .iter()
        .filter(|(k, _)| k.starts_with("tollgate_dns_queries_total{"))
        .map(|(_, v)| v)
        .sum();
    let cached: f64 = s
        .iter()
        .filter(|(k, _)| k.starts_with("tollgate_dns_cache_answers_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        queries,
        cached + v("tollgate_dns_query_duration_seconds_count"),
        "every query came from the cache or the network"
    );
    // The timeout (300 ms) is in the latency histogram's top half.
    assert!(
        v(r#"tollgate_dns_query_duration_seconds_bucket{le="0.25"}"#)
            < v("tollgate_dns_query_duration_seconds_count")
    );

    // Milter: three sessions (CONNECT), one command without one.
    assert_eq!(v("tollgate_milter_connections_total"), 3.0);
    assert_eq!(t.during["tollgate_milter_connections_open"], 1.0);
    assert_eq!(v("tollgate_milter_connections_open"), 0.0);
    assert_eq!(v("tollgate_milter_connections_max"), 256.0);
    assert_eq!(v("tollgate_milter_connections_at_limit_total"), 0.0);
    assert_eq!(v("tollgate_milter_protocol_errors_total"), 1.0);
    for (command, n) in [
        ("negotiate", 4.0),
        ("connect", 3.0),
        ("helo", 4.0),
        ("mail", 4.0),
        ("rcpt", 4.0),
        ("eom", 2.0),
    ] {
        assert_eq!(
            v(&format!(
                r#"tollgate_milter_commands_total{{command="{command}"}}"#
            )),
            n,
            "{command}"
        );
        assert_eq!(
            v(&format!(
                r#"tollgate_milter_callback_duration_seconds_count{{command="{command}"}}"#
            )),
            n,
            "{command}"
        );
    }
    // The DNS wait of the commands that have a session to wait for.
    for (command, n) in [("helo", 3.0), ("mail", 4.0), ("eom", 2.0)] {
        assert_eq!(
            v(&format!(
                r#"tollgate_milter_dns_wait_seconds_count{{command="{command}"}}"#
            )),
            n,
            "{command}"
        );
    }
    // The slow sender's MAIL waited at least the 300 ms timeout for DNS.
    assert!(v(r#"tollgate_milter_dns_wait_seconds_sum{command="mail"}"#) >= 0.3);

    // Reloads, build and process.
    assert_eq!(
        v(r#"tollgate_config_reloads_total{outcome="success"}"#),
        1.0
    );
    assert_eq!(
        v(r#"tollgate_config_reloads_total{outcome="failure"}"#),
        1.0
    );
    // The bad file came last.
    assert_eq!(v("tollgate_config_last_reload_successful"), 0.0);
    assert_eq!(t.during["tollgate_config_last_reload_successful"], 1.0);
    let last_good = v("tollgate_config_last_reload_success_timestamp_seconds");
    assert!(last_good >= t.before_reload.floor(), "{last_good}");
    assert_eq!(
        v(&format!(
            r#"tollgate_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    assert!(v("process_resident_memory_bytes") > 1e6);
    assert!(v("process_open_fds") >= 3.0);
    assert!(v("process_max_fds") >= v("process_open_fds"));
    assert!(v("process_start_time_seconds") <= unix_now());

    // No label carries an address or a domain.
    for series in s.keys() {
        assert!(
            !["192.0.2", "203.0.113", "example"]
                .iter()
                .any(|leak| series.contains(leak)),
            "{series}"
        );
    }
    Ok(())
}

/// `promtool`, or why the test cannot run.
fn promtool() -> Result<PathBuf, Missing> {
    let found = e2e::find_program("promtool");
    require(found.is_some(), "promtool", "apt-get install prometheus")?;
    Ok(found.unwrap_or_default())
}

/// Runs `promtool ARGS` with `stdin`; panics with its output unless it
/// succeeds.
fn run_promtool(promtool: &PathBuf, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(promtool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {args:?}: {}\n{text}",
        out.status
    );
    text
}

fn scraped_text_passes_promtool_check_metrics() -> TestResult {
    let promtool = promtool()?;
    let t = block_on(async {
        let m = start().await;
        traffic(&m).await
    });
    let output = run_promtool(&promtool, &["check", "metrics"], &t.text);
    // A lint finding is printed even when promtool exits 0.
    assert!(output.trim().is_empty(), "promtool found: {output}");
    Ok(())
}

fn alert_rules_in_operations_md_pass_promtool_check_and_test() -> TestResult {
    let promtool = promtool()?;
    let dir = TempDir::new("metrics-rules");
    let rules = e2e::doc_snippet("docs/operations.md", "tollgate alerts");
    let tests = e2e::doc_snippet("docs/operations.md", "tollgate alert tests");
    std::fs::write(dir.path().join("tollgate.rules.yml"), &rules).unwrap();
    std::fs::write(dir.path().join("tollgate.rules.test.yml"), &tests).unwrap();
    let check = run_promtool(
        &promtool,
        &[
            "check",
            "rules",
            &dir.path().join("tollgate.rules.yml").display().to_string(),
        ],
        "",
    );
    note(&check);
    assert!(check.contains("SUCCESS"), "{check}");
    let test = run_promtool(
        &promtool,
        &[
            "test",
            "rules",
            &dir.path()
                .join("tollgate.rules.test.yml")
                .display()
                .to_string(),
        ],
        "",
    );
    note(&test);
    assert!(test.contains("SUCCESS"), "{test}");
    Ok(())
}

fn paths_other_than_metrics_are_404_and_bad_requests_are_refused() -> TestResult {
    block_on(async {
        let m = start().await;
        let addr = m.metrics.expect("metrics on");
        for path in ["/", "/metrics/", "/health", "/../metrics", "/METRICS"] {
            let request = format!("GET {path} HTTP/1.1\r\nHost: tollgate\r\n\r\n");
            let (status, _) = http(addr, request.as_bytes()).await;
            assert_eq!(status, "HTTP/1.1 404 Not Found", "{path}");
        }
        let (status, body) = http(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(body.contains("# TYPE tollgate_build_info gauge"), "{body}");
        let (status, body) = http(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", ""));
        let (status, _) = http(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
        let (status, _) = http(
            addr,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        )
        .await;
        assert_eq!(status, "HTTP/1.1 400 Bad Request");
        // A head that never ends is cut off at 8 KiB.
        let mut huge = b"GET /metrics HTTP/1.1\r\n".to_vec();
        while huge.len() < 64 * 1024 {
            huge.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let mut stream = TcpStream::connect(addr).await.unwrap();
        // The server may close before all of it is written.
        let _ = stream.write_all(&huge).await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let response = String::from_utf8_lossy(&response);
        assert!(
            response.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{response}"
        );
        // The milter is still there, and so are the metrics.
        let c = m.client("192.0.2.7", "mx.example.com").await;
        c.close().await.unwrap();
        let s = samples(&scrape(&m).await);
        assert_eq!(value(&s, "tollgate_milter_connections_total"), 1.0);
    });
    Ok(())
}

fn metrics_clients_that_send_nothing_do_not_hold_up_the_milter() -> TestResult {
    block_on(async {
        let m = start().await;
        let addr = m.metrics.expect("metrics on");
        // More silent clients than the listener serves at once.
        let mut silent = Vec::new();
        for _ in 0..32 {
            silent.push(TcpStream::connect(addr).await.expect("connect"));
        }
        // The milter answers meanwhile, a whole message.
        let mut c = m.client("192.0.2.7", "mx.example.com").await;
        assert_accepted(&mut c, "<alice@example.com>", "<bob@example.org>").await;
        let (_, status) = m.eom(&mut c, &[]).await;
        assert_eq!(status, Status::Continue);
        c.close().await.unwrap();
        drop(silent);
        // Once they are gone, scrapes are answered again.
        let mut answered = None;
        for _ in 0..400 {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await;
            let mut response = Vec::new();
            let _ = stream.read_to_end(&mut response).await;
            if response.starts_with(b"HTTP/1.1 200 OK") {
                answered = Some(samples(
                    String::from_utf8_lossy(&response)
                        .split_once("\r\n\r\n")
                        .expect("a head")
                        .1,
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let s = answered.expect("a scrape is answered once the silent clients are gone");
        assert_eq!(
            value(
                &s,
                r#"tollgate_messages_total{action="accept",decided_by="none"}"#
            ),
            1.0
        );
    });
    Ok(())
}

fn a_metrics_address_in_use_stops_the_start_and_leaves_no_socket_file() -> TestResult {
    block_on(async {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("address");
        let dir = TempDir::new("metrics-in-use");
        let socket = dir.path().join("milter.sock");
        let path = dir.path().join("milter.yaml");
        let text = format!(
            "listen: unix:{}\ndns:\n  nameservers: [\"127.0.0.1:53\"]\nmetrics:\n  listen: {addr}\n",
            socket.display()
        );
        let config = tollgate::config::Config::parse(&text, &path).expect("valid");
        let error = tollgate::milter::Milter::bind(config)
            .await
            .expect_err("the start fails");
        let line = error.to_string();
        assert!(
            line.starts_with(&format!("cannot listen for metrics on {addr}: ")),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
        assert!(!socket.exists(), "{} was left behind", socket.display());
    });
    Ok(())
}
