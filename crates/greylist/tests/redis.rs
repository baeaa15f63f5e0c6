//! The Redis store against a real `redis-server` (Debian package) that
//! each test starts on a free loopback port: the shared rules, two
//! processes' worth of stores on one Redis seeing each other's triplets,
//! and Redis going away and coming back. Without redis-server the tests
//! are reported ignored, or fail under CI / `TOLLGATE_E2E_REQUIRED=1`
//! (the harness of tests/e2e/harness.rs, `harness = false`).

#[path = "../../../tests/e2e/harness.rs"]
pub mod harness;
mod e2e {
    pub use super::harness;
}
#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/scenarios.rs"]
mod scenarios;

use std::sync::Arc;

use e2e::harness::{Missing, TestResult};
use redis_server::RedisServer;
use scenarios::{MIN, T0, settings, triplet};
use tollgate_greylist::{Checked, Decision, Greylist, ManualClock, RedisStore, Store};

fn redis() -> Result<RedisServer, Missing> {
    RedisServer::start().ok_or_else(|| {
        Missing("redis-server is not installed (apt-get install redis-server)".to_owned())
    })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

async fn open(server: &RedisServer) -> RedisStore {
    RedisStore::open(&server.url(), settings())
        .await
        .expect("redis store opens")
}

fn redis_store_follows_the_retry_rules() -> TestResult {
    let server = redis()?;
    block_on(async { scenarios::retry_rules(&open(&server).await).await });
    Ok(())
}

fn redis_store_auto_allows_a_network_after_five_passes() -> TestResult {
    let server = redis()?;
    block_on(async { scenarios::auto_allow(&open(&server).await).await });
    Ok(())
}

fn redis_store_allows_forgets_lists_and_counts_by_hand() -> TestResult {
    let server = redis()?;
    block_on(async { scenarios::by_hand(&open(&server).await).await });
    Ok(())
}

fn two_stores_on_one_redis_see_each_others_triplets() -> TestResult {
    let server = redis()?;
    block_on(async {
        let mx1 = open(&server).await;
        let mx2 = open(&server).await;
        let t = triplet("192.0.2.10", "alice@example.com", "bob@example.org");
        assert!(matches!(
            mx1.check(&t, T0).await.unwrap(),
            Decision::New { .. }
        ));
        assert!(matches!(
            mx2.check(&t, T0 + 6 * MIN).await.unwrap(),
            Decision::Passed { .. }
        ));
        assert_eq!(mx1.check(&t, T0 + 7 * MIN).await.unwrap(), Decision::Known);
    });
    Ok(())
}

fn keys_carry_a_ttl() -> TestResult {
    let server = redis()?;
    block_on(async {
        let store = open(&server).await;
        let t = triplet("192.0.2.10", "alice@example.com", "bob@example.org");
        store.check(&t, T0).await.unwrap();
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let key = format!("tollgate:greylist:t:{}", t.key());
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        // A pending triplet lives for the retry window (2 days).
        assert!(ttl > 0 && ttl <= 2 * 24 * 3600 * 1000, "{ttl}");
    });
    Ok(())
}

fn redis_going_away_fails_open_and_greylisting_resumes_when_it_is_back() -> TestResult {
    let mut server = redis()?;
    block_on(async {
        let clock = ManualClock::at(T0);
        let store: Arc<dyn Store> = Arc::new(open(&server).await);
        let greylist = Greylist::new(store, settings(), Arc::new(clock.clone()));
        let t = triplet("192.0.2.10", "alice@example.com", "bob@example.org");
        assert!(matches!(
            greylist.check(&t).await,
            Checked::Decided(Decision::New { .. })
        ));
        server.stop();
        let other = triplet("198.51.100.3", "carol@example.com", "bob@example.org");
        assert_eq!(greylist.check(&other).await, Checked::StoreTrouble);
        assert!(greylist.check(&other).await.passes());
        server.restart();
        // The connection manager reconnects; the data went with the old
        // process (no persistence in the test), so the triplet is new again.
        let mut answer = greylist.check(&other).await;
        for _ in 0..50 {
            if answer != Checked::StoreTrouble {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            answer = greylist.check(&other).await;
        }
        assert!(
            matches!(answer, Checked::Decided(Decision::New { .. })),
            "{answer:?}"
        );
        clock.advance(std::time::Duration::from_secs(6 * 60));
        assert!(matches!(
            greylist.check(&other).await,
            Checked::Decided(Decision::Passed { .. })
        ));
    });
    Ok(())
}

fn a_redis_that_does_not_answer_is_an_error_at_open() -> TestResult {
    // Nothing listens on this port: a connection refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    block_on(async {
        let err = RedisStore::open(&format!("redis://127.0.0.1:{port}/0"), settings())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot open redis://127.0.0.1:"),
            "{err}"
        );
    });
    Ok(())
}

e2e::harness::main!(
    redis_store_follows_the_retry_rules,
    redis_store_auto_allows_a_network_after_five_passes,
    redis_store_allows_forgets_lists_and_counts_by_hand,
    two_stores_on_one_redis_see_each_others_triplets,
    keys_carry_a_ttl,
    redis_going_away_fails_open_and_greylisting_resumes_when_it_is_back,
    a_redis_that_does_not_answer_is_an_error_at_open,
);
