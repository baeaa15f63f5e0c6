//! The cases every store must decide alike (the embedded store runs the
//! rules in Rust, the Redis store in Lua): each takes a store opened with
//! [`settings`] and drives it on explicit times.

use std::time::Duration;

use tollgate_greylist::{Counts, Decision, Entry, Settings, Store, Triplet};

/// A realistic "now" (ms since the epoch): 2026-01-01.
pub const T0: u64 = 1_767_225_600_000;
pub const MIN: u64 = 60_000;
pub const DAY: u64 = 24 * 60 * MIN;

/// The settings the scenarios assume (the defaults).
pub fn settings() -> Settings {
    Settings::default()
}

pub fn triplet(ip: &str, sender: &str, rcpt: &str) -> Triplet {
    Triplet::new(ip.parse().unwrap(), sender, rcpt, settings().networks)
}

/// New, early, passed after the delay, known; a retry after the window
/// starts over; the network of the sending address counts, not the address.
pub async fn retry_rules(store: &dyn Store) {
    let t = triplet("192.0.2.10", "alice@example.com", "bob@example.org");
    assert_eq!(
        store.check(&t, T0).await.unwrap(),
        Decision::New {
            retry_in: Duration::from_secs(300)
        }
    );
    assert_eq!(
        store.check(&t, T0 + 2 * MIN).await.unwrap(),
        Decision::Early {
            retry_in: Duration::from_secs(180)
        }
    );
    // The retry comes from another address of the same /24, with a BATV tag.
    let retry = triplet(
        "192.0.2.99",
        "prvs=0123abcdef=Alice@example.com",
        "<Bob@example.org>",
    );
    assert_eq!(
        store.check(&retry, T0 + 6 * MIN).await.unwrap(),
        Decision::Passed {
            delayed: Duration::from_secs(360)
        }
    );
    assert_eq!(
        store.check(&t, T0 + 10 * DAY).await.unwrap(),
        Decision::Known
    );
    // Renewed at day 10: still known at day 40, gone at day 76.
    assert_eq!(
        store.check(&t, T0 + 40 * DAY).await.unwrap(),
        Decision::Known
    );
    assert!(matches!(
        store.check(&t, T0 + 76 * DAY).await.unwrap(),
        Decision::New { .. }
    ));

    let late = triplet("198.51.100.7", "carol@example.com", "bob@example.org");
    assert!(matches!(
        store.check(&late, T0).await.unwrap(),
        Decision::New { .. }
    ));
    assert!(
        matches!(
            store.check(&late, T0 + 2 * DAY + MIN).await.unwrap(),
            Decision::New { .. }
        ),
        "a retry after the window is greylisted again"
    );
    assert!(matches!(
        store.check(&late, T0 + 2 * DAY + 7 * MIN).await.unwrap(),
        Decision::Passed { .. }
    ));
}

/// After 5 passed triplets a network skips greylisting; another network
/// does not.
pub async fn auto_allow(store: &dyn Store) {
    for i in 0..5 {
        let t = triplet(
            "203.0.113.5",
            &format!("s{i}x@example.com"),
            "r@example.org",
        );
        assert!(matches!(
            store.check(&t, T0).await.unwrap(),
            Decision::New { .. }
        ));
        assert!(matches!(
            store.check(&t, T0 + 6 * MIN).await.unwrap(),
            Decision::Passed { .. }
        ));
    }
    let fresh = triplet("203.0.113.200", "someone@example.net", "other@example.org");
    assert_eq!(
        store.check(&fresh, T0 + 7 * MIN).await.unwrap(),
        Decision::AutoAllowed
    );
    let elsewhere = triplet("203.0.114.5", "someone@example.net", "other@example.org");
    assert!(matches!(
        store.check(&elsewhere, T0 + 7 * MIN).await.unwrap(),
        Decision::New { .. }
    ));
}

/// What `tollgate greylist` does: allow and forget networks and triplets,
/// list and count.
pub async fn by_hand(store: &dyn Store) {
    let net = "192.0.2.0/24".parse().unwrap();
    let t = triplet("192.0.2.1", "dave@example.com", "erin@example.org");
    store.allow_network(net, T0).await.unwrap();
    assert_eq!(store.check(&t, T0).await.unwrap(), Decision::Allowed);
    assert!(store.forget_network(net).await.unwrap());
    assert!(!store.forget_network(net).await.unwrap());
    assert!(matches!(
        store.check(&t, T0).await.unwrap(),
        Decision::New { .. }
    ));
    let other = triplet("198.51.100.1", "frank@example.com", "erin@example.org");
    store.allow_triplet(&other, T0).await.unwrap();
    assert_eq!(
        store.check(&other, T0 + MIN).await.unwrap(),
        Decision::Known
    );

    let entries = store.entries(T0 + MIN).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|e| matches!(e, Entry::Triplet(x, r) if *x == t && r.passes == 0)),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .any(|e| matches!(e, Entry::Triplet(x, r) if *x == other && r.passes == 2)),
        "{entries:?}"
    );
    assert_eq!(
        store.counts(T0 + MIN).await.unwrap(),
        Counts {
            pending: 1,
            passed: 1,
            networks: 0,
            allowed_networks: 0
        }
    );
    assert!(store.forget_triplet(&t).await.unwrap());
    assert_eq!(store.counts(T0 + MIN).await.unwrap().pending, 0);
    // Expired entries are not listed.
    assert!(store.entries(T0 + 100 * DAY).await.unwrap().is_empty());
}
