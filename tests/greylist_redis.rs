//! Greylisting on a real `redis-server` (Debian package) through the real
//! milter protocol: two tollgate milters (two MX hosts) on one Redis see
//! each other's triplets; Redis stopped mid-run → mail accepted and a
//! warning logged; Redis back → greylisting resumes. Each test starts its
//! own redis-server on a free loopback port and stops it. Without
//! redis-server the tests are reported ignored, or fail under CI /
//! `TOLLGATE_E2E_REQUIRED=1` (the harness of tests/e2e/harness.rs).

#[allow(dead_code)]
#[path = "e2e/harness.rs"]
pub mod harness;
mod e2e {
    pub use super::harness;
}
#[allow(dead_code)]
#[path = "../crates/greylist/tests/support/redis_server.rs"]
mod redis_server;
#[allow(dead_code)]
#[path = "milter/support.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use harness::{Missing, TestResult};
use indymilter_test::Status;
use redis_server::RedisServer;
use support::{Running, Setup, reply};
use tollgate_greylist::ManualClock;
use tollgate_testdns::suite::parse_zone;

/// 192.0.2.50 has no reverse DNS: greylisted by the test policy.
const ZONE: &str = r#"
example.com:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:192.0.2.0/24 -all"
mx.example.com:
  - A: 192.0.2.7
"#;

fn redis() -> Result<RedisServer, Missing> {
    RedisServer::start().ok_or_else(|| {
        Missing("redis-server is not installed (apt-get install redis-server)".to_owned())
    })
}

async fn milter(url: &str, clock: &ManualClock) -> Running {
    let setup = Setup::extra(&format!(
        "policy:\n  fcrdns: {{fail: greylist, permerror: greylist}}\n\
         greylist:\n  store: redis\n  redis: {url}\n  delay: 5m\n"
    ));
    Running::start_with_clock(parse_zone(ZONE).unwrap(), setup, Arc::new(clock.clone())).await
}

async fn attempt(m: &Running, rcpt: &str) -> Status {
    let mut c = m.client("192.0.2.50", "client.example.com").await;
    assert_eq!(
        c.mail(["<alice@example.com>"]).await.unwrap(),
        Status::Continue
    );
    let status = c.rcpt([rcpt]).await.unwrap();
    c.close().await.unwrap();
    status
}

fn is_greylisted(status: &Status) -> bool {
    reply(status).is_some_and(|r| r.starts_with("451 4.7.1 Greylisted: "))
}

fn two_milters_on_one_redis_see_each_others_triplets() -> TestResult {
    let server = redis()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let clock = ManualClock::starting_now();
        let mx1 = milter(&server.url(), &clock).await;
        let mx2 = milter(&server.url(), &clock).await;
        assert!(is_greylisted(&attempt(&mx1, "<bob@example.org>").await));
        clock.advance(Duration::from_secs(301));
        // The retry reaches the other MX host.
        assert_eq!(attempt(&mx2, "<bob@example.org>").await, Status::Continue);
        assert_eq!(attempt(&mx1, "<bob@example.org>").await, Status::Continue);
    });
    Ok(())
}

fn redis_stopped_mid_run_accepts_mail_with_a_warning_and_greylisting_resumes_when_it_is_back()
-> TestResult {
    let mut server = redis()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (log, _guard) = support::capture_logs();
    rt.block_on(async {
        let clock = ManualClock::starting_now();
        let m = milter(&server.url(), &clock).await;
        assert!(is_greylisted(&attempt(&m, "<bob@example.org>").await));
        server.stop();
        assert_eq!(attempt(&m, "<carol@example.org>").await, Status::Continue);
        assert_eq!(attempt(&m, "<dave@example.org>").await, Status::Continue);
        let text = log.text();
        assert_eq!(
            text.matches("greylist store trouble").count(),
            1,
            "one warning, not one per message:\n{text}"
        );
        server.restart();
        let mut status = attempt(&m, "<erin@example.org>").await;
        for _ in 0..50 {
            if is_greylisted(&status) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            status = attempt(&m, "<erin@example.org>").await;
        }
        assert!(is_greylisted(&status), "{status:?}");
    });
    Ok(())
}

e2e::harness::main!(
    two_milters_on_one_redis_see_each_others_triplets,
    redis_stopped_mid_run_accepts_mail_with_a_warning_and_greylisting_resumes_when_it_is_back,
);
