//! Greylisting through the real milter protocol (indymilter-test) with the
//! embedded store on a temporary file, on a manual clock (no sleeping):
//! a new triplet is answered 451 4.7.1 at RCPT, an early retry too, a retry
//! after the delay is accepted with `X-Greylist`, a retry after the window
//! is greylisted again; auto-allow, exempt recipients, good evidence never
//! delayed, a later reject still wins, a restart keeps the triplets, dry
//! run, and a store that cannot be opened at start or on reload. The Redis
//! store's milter tests are in tests/greylist_redis.rs.

#[allow(dead_code)]
#[path = "milter/support.rs"]
mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indymilter_test::Status;
use tollgate::cli::serve::ServeFailure;
use tollgate::milter::ServeError;
use tollgate_greylist::ManualClock;
use tollgate_testdns::suite::parse_zone;

use support::{Running, Setup, header_values, inserted_headers, reply};

/// 192.0.2.7 is mx.example.com (FCrDNS pass); 192.0.2.50 and 192.0.2.51
/// have no reverse DNS (FCrDNS fails: greylisted by the test policy).
/// example.com authorises 192.0.2.0/24; forged.example.org does not.
const ZONE: &str = r#"
example.com:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:192.0.2.0/24 -all"
mx.example.com:
  - A: 192.0.2.7
7.2.0.192.in-addr.arpa:
  - PTR: mx.example.com
forged.example.org:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:203.0.113.0/24 -all"
"#;

/// A directory for the store file, removed on drop.
struct StoreDir(support::temp_dir::TempDir);

impl StoreDir {
    fn new() -> StoreDir {
        StoreDir(support::temp_dir::TempDir::new("greylist-milter"))
    }

    fn db(&self) -> PathBuf {
        self.0.path().join("greylist.db")
    }
}

/// The selective policy of docs/greylisting.md, on an embedded store at
/// `db`, plus `extra` keys.
fn setup(db: &std::path::Path, extra: &str) -> Setup {
    Setup::extra(&format!(
        "policy:\n  fcrdns: {{fail: greylist, permerror: greylist}}\n\
         greylist:\n  store: embedded\n  path: {}\n  delay: 5m\n  retry_window: 2d\n\
         {extra}",
        db.display()
    ))
}

async fn start(dir: &StoreDir, extra: &str, clock: &ManualClock) -> Running {
    let zone = parse_zone(ZONE).unwrap();
    Running::start_with_clock(zone, setup(&dir.db(), extra), Arc::new(clock.clone())).await
}

/// One transaction up to RCPT: the RCPT status.
async fn attempt(m: &Running, ip: &str, sender: &str, rcpt: &str) -> Status {
    let mut c = m.client(ip, "client.example.com").await;
    let status = c.mail([sender]).await.unwrap();
    assert_eq!(status, Status::Continue, "MAIL FROM:{sender}");
    let status = c.rcpt([rcpt]).await.unwrap();
    c.close().await.unwrap();
    status
}

fn greylisted(status: &Status, wait: &str) {
    let text = reply(status).unwrap_or_else(|| panic!("not refused: {status:?}"));
    assert!(matches!(status, Status::Tempfail { .. }), "{status:?}");
    assert!(text.starts_with("451 4.7.1 Greylisted: "), "{text}");
    assert!(text.contains(&format!("please retry in {wait}")), "{text}");
}

#[tokio::test]
async fn a_new_triplet_is_451_4_7_1_an_early_retry_too_and_a_retry_after_the_delay_is_accepted() {
    let dir = StoreDir::new();
    let clock = ManualClock::starting_now();
    let m = start(&dir, "", &clock).await;
    let first = attempt(&m, "192.0.2.50", "<alice@example.com>", "<bob@example.org>").await;
    greylisted(&first, "5 minutes");
    let text = reply(&first).unwrap();
    assert!(text.contains("reverse DNS of 192.0.2.50"), "{text}");

    clock.advance(Duration::from_secs(120));
    // The early retry comes from another address of the same /24.
    let early = attempt(&m, "192.0.2.51", "<alice@example.com>", "<bob@example.org>").await;
    greylisted(&early, "3 minutes");

    clock.advance(Duration::from_secs(200));
    let mut c = m.client("192.0.2.50", "client.example.com").await;
    assert_eq!(
        c.mail(["<Alice@example.com>"]).await.unwrap(),
        Status::Continue
    );
    assert_eq!(
        c.rcpt(["<bob@example.org>"]).await.unwrap(),
        Status::Continue
    );
    let (actions, status) = m.eom(&mut c, &[]).await;
    assert_eq!(status, Status::Continue);
    let headers = inserted_headers(&actions);
    let x = header_values(&headers, "X-Greylist");
    assert_eq!(x.len(), 1, "{headers:?}");
    assert!(
        x[0].starts_with("delayed 320 seconds by tollgate at mx.test.example"),
        "{}",
        x[0]
    );
    // The headers still say what fcrdns found.
    let ar = header_values(&headers, "Authentication-Results");
    assert!(ar[0].contains("iprev="), "{}", ar[0]);

    // Known from now on: no X-Greylist on the next message.
    let mut c = m.client("192.0.2.50", "client.example.com").await;
    assert_eq!(
        c.mail(["<alice@example.com>"]).await.unwrap(),
        Status::Continue
    );
    assert_eq!(
        c.rcpt(["<bob@example.org>"]).await.unwrap(),
        Status::Continue
    );
    let (actions, _) = m.eom(&mut c, &[]).await;
    assert!(header_values(&inserted_headers(&actions), "X-Greylist").is_empty());
}

#[tokio::test]
async fn a_retry_after_the_window_is_greylisted_again() {
    let dir = StoreDir::new();
    let clock = ManualClock::starting_now();
    let m = start(&dir, "", &clock).await;
    let first = attempt(&m, "192.0.2.50", "<alice@example.com>", "<bob@example.org>").await;
    greylisted(&first, "5 minutes");
    clock.advance(Duration::from_secs(2 * 86_400 + 60));
    let late = attempt(&m, "192.0.2.50", "<alice@example.com>", "<bob@example.org>").await;
    greylisted(&late, "5 minutes");
}

#[tokio::test]
async fn a_network_that_passed_auto_allow_times_is_no_longer_greylisted() {
    let dir = StoreDir::new();
    let clock = ManualClock::starting_now();
    let m = start(&dir, "  auto_allow: 2\n", &clock).await;
    for rcpt in ["<r1@example.org>", "<r2@example.org>"] {
        greylisted(
            &attempt(&m, "192.0.2.50", "<alice@example.com>", rcpt).await,
            "5 minutes",
        );
    }
    clock.advance(Duration::from_secs(301));
    for rcpt in ["<r1@example.org>", "<r2@example.org>"] {
        let status = attempt(&m, "192.0.2.50", "<alice@example.com>", rcpt).await;
        assert_eq!(status, Status::Continue);
    }
    let fresh = attempt(
        &m,
        "192.0.2.51",
        "<carol@example.com>",
        "<dave@example.org>",
    )
    .await;
    assert_eq!(fresh, Status::Continue, "auto-allowed network");
}

#[tokio::test]
async fn exempt_recipients_and_good_evidence_are_never_greylisted() {
    let dir = StoreDir::new();
    let clock = ManualClock::starting_now();
    let m = start(&dir, "", &clock).await;
    let mut c = m.client("192.0.2.50", "client.example.com").await;
    assert_eq!(
        c.mail(["<alice@example.com>"]).await.unwrap(),
        Status::Continue
    );
    assert_eq!(
        c.rcpt(["<postmaster@example.org>"]).await.unwrap(),
        Status::Continue
    );
    greylisted(&c.rcpt(["<bob@example.org>"]).await.unwrap(), "5 minutes");
    assert_eq!(
        c.rcpt(["<Abuse@example.org>"]).await.unwrap(),
        Status::Continue
    );
    c.close().await.unwrap();
    // mx.example.com has forward-confirmed reverse DNS.
    let good = attempt(&m, "192.0.2.7", "<alice@example.com>", "<bob@example.org>").await;
    assert_eq!(good, Status::Continue);
}

#[tokio::test]
async fn a_later_reject_wins_over_greylisting() {
    let dir = StoreDir::new();
    let clock = ManualClock::starting_now();
    let m = start(&dir, "", &clock).await;
    let status = attempt(
        &m,
        "192.0.2.50",
        "<bob@forged.example.org>",
        "<x@example.org>",
    )
    .await;
    let text = reply(&status).unwrap();
    assert!(
        text.starts_with("550 5.7.23 SPF fail: 192.0.2.50"),
        "{text}"
    );
}

#[tokio::test]
async fn a_triplet_seen_before_a_restart_passes_after_it() {
    let dir = StoreDir::new();
    let clock = ManualClock::starting_now();
    let mut m = start(&dir, "", &clock).await;
    greylisted(
        &attempt(&m, "192.0.2.50", "<alice@example.com>", "<bob@example.org>").await,
        "5 minutes",
    );
    m.shutdown();
    m.wait_stopped(Duration::from_secs(10)).await.unwrap();
    drop(m);
    clock.advance(Duration::from_secs(301));
    let m = start(&dir, "", &clock).await;
    let status = attempt(&m, "192.0.2.50", "<alice@example.com>", "<bob@example.org>").await;
    assert_eq!(status, Status::Continue);
}

#[tokio::test]
async fn dry_run_records_the_triplet_but_accepts() {
    let dir = StoreDir::new();
    let clock = ManualClock::starting_now();
    let (log, _guard) = support::capture_logs();
    let m = start(&dir, "dry_run: true\n", &clock).await;
    let status = attempt(&m, "192.0.2.50", "<alice@example.com>", "<bob@example.org>").await;
    assert_eq!(status, Status::Continue);
    assert!(
        log.text().contains("451 4.7.1 Greylisted"),
        "{}",
        log.text()
    );
    drop(m);
    // Learnt in dry run: without it, the retry after the delay passes.
    clock.advance(Duration::from_secs(301));
    let m = start(&dir, "", &clock).await;
    let status = attempt(&m, "192.0.2.50", "<alice@example.com>", "<bob@example.org>").await;
    assert_eq!(status, Status::Continue);
}

#[tokio::test]
async fn a_store_that_cannot_be_opened_stops_the_start_with_exit_78_naming_the_key() {
    let zone = parse_zone(ZONE).unwrap();
    let dns = tollgate_testdns::TestDns::start(zone).await.unwrap();
    let text = setup(
        std::path::Path::new("/nonexistent/tollgate/greylist.db"),
        "",
    )
    .text(dns.addr());
    let config =
        tollgate::config::Config::parse(&text, std::path::Path::new("milter.yaml")).unwrap();
    let err = tollgate::milter::Milter::bind(config).await.unwrap_err();
    let line = err.to_string();
    assert!(matches!(err, ServeError::Config(_)), "{line}");
    assert!(
        line.starts_with(
            "milter.yaml: greylist.path: cannot open /nonexistent/tollgate/greylist.db: "
        ),
        "{line}"
    );
    assert!(!line.contains('\n'));
    assert_eq!(ServeFailure::from(err).exit_code(), 78);
}

#[tokio::test]
async fn the_store_is_not_opened_when_no_policy_result_greylists() {
    let zone = parse_zone(ZONE).unwrap();
    let m = Running::start(
        zone,
        Setup::extra("greylist:\n  path: /nonexistent/tollgate/greylist.db\n"),
    )
    .await;
    let status = attempt(&m, "192.0.2.7", "<alice@example.com>", "<bob@example.org>").await;
    assert_eq!(status, Status::Continue);
}

#[tokio::test]
async fn a_reload_whose_store_cannot_be_opened_keeps_the_old_store() {
    let dir = StoreDir::new();
    let clock = ManualClock::starting_now();
    let m = start(&dir, "", &clock).await;
    let bad = setup(
        std::path::Path::new("/nonexistent/tollgate/greylist.db"),
        "",
    );
    let err = m.handle.apply(m.config(&bad)).await.unwrap_err();
    assert!(err.to_string().contains("greylist.path"), "{err}");
    greylisted(
        &attempt(&m, "192.0.2.50", "<alice@example.com>", "<bob@example.org>").await,
        "5 minutes",
    );
    clock.advance(Duration::from_secs(301));
    let status = attempt(&m, "192.0.2.50", "<alice@example.com>", "<bob@example.org>").await;
    assert_eq!(
        status,
        Status::Continue,
        "the old store still knows the triplet"
    );
}

#[tokio::test]
async fn greylisting_waits_for_rcpt_under_reject_at_earliest() {
    let dir = StoreDir::new();
    let clock = ManualClock::starting_now();
    let m = start(&dir, "reject_at: earliest\n", &clock).await;
    // HELO and MAIL are continued: the triplet needs the recipient.
    let status = attempt(&m, "192.0.2.50", "<alice@example.com>", "<bob@example.org>").await;
    greylisted(&status, "5 minutes");
}
