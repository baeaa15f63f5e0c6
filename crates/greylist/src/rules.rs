//! The greylisting rules, on plain records, shared by every store (the
//! Redis store runs the same rules in a Lua script, and the store tests
//! hold both to the same cases).
//!
//! A triplet is first seen (`New`, answered 4xx), then retried: too early
//! (`Early`, 4xx), or after `delay` and within `retry_window` of the first
//! attempt (`Passed`: accepted, remembered for `expire`, renewed on each
//! later pass: `Known`). A retry after the window, or a pass older than
//! `expire`, starts over as new. A network whose triplets passed
//! `auto_allow` times skips greylisting (`AutoAllowed`) until it has not
//! been seen for `expire` (RFC 6647 §4.2 and the postgrey convention); a
//! network or triplet allowed by hand (`tollgate greylist allow`) passes
//! (`Allowed`, `Known`).

use std::time::Duration;

use crate::Networks;

/// The greylisting settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// How long a new triplet is refused (default 5 minutes).
    pub delay: Duration,
    /// How long after the first attempt a retry still counts (default 2 days).
    pub retry_window: Duration,
    /// How long a passed triplet or network is remembered after its last
    /// pass (default 35 days).
    pub expire: Duration,
    /// Passed triplets after which a network skips greylisting; 0 never.
    pub auto_allow: u32,
    /// The network of a client.
    pub networks: Networks,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            delay: Duration::from_secs(5 * 60),
            retry_window: Duration::from_secs(2 * 24 * 3600),
            expire: Duration::from_secs(35 * 24 * 3600),
            auto_allow: 5,
            networks: Networks::default(),
        }
    }
}

impl Settings {
    pub(crate) fn delay_ms(&self) -> u64 {
        millis(self.delay)
    }
    pub(crate) fn window_ms(&self) -> u64 {
        millis(self.retry_window)
    }
    pub(crate) fn expire_ms(&self) -> u64 {
        millis(self.expire)
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What the store said about a triplet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// First seen now: refuse; a retry from `retry_in` on passes.
    New {
        /// The time left until a retry passes.
        retry_in: Duration,
    },
    /// Retried before the delay was over: refuse.
    Early {
        /// The time left until a retry passes.
        retry_in: Duration,
    },
    /// Retried after the delay, within the window: accept. The first pass.
    Passed {
        /// How long the message was delayed (since the first attempt).
        delayed: Duration,
    },
    /// Passed before (or allowed by hand) and not expired: accept.
    Known,
    /// The client's network passed `auto_allow` times: accept.
    AutoAllowed,
    /// The client's network was allowed by hand: accept.
    Allowed,
}

impl Decision {
    /// Whether the message is accepted.
    pub fn passes(self) -> bool {
        !matches!(self, Decision::New { .. } | Decision::Early { .. })
    }

    /// The stable name, for logs and counters: `new`, `early`, `passed`,
    /// `known`, `auto-allowed`, `allowed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::New { .. } => "new",
            Decision::Early { .. } => "early",
            Decision::Passed { .. } => "passed",
            Decision::Known => "known",
            Decision::AutoAllowed => "auto-allowed",
            Decision::Allowed => "allowed",
        }
    }
}

/// A triplet's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TripletRecord {
    /// When it was first seen (ms since the epoch).
    pub first: u64,
    /// When it last passed; 0 while it has not.
    pub passed: u64,
    /// How many times it passed.
    pub passes: u32,
}

/// A network's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkRecord {
    /// How many of its triplets passed greylisting.
    pub passes: u32,
    /// When it last passed (ms since the epoch).
    pub last: u64,
    /// Allowed by hand.
    pub manual: bool,
}

/// What the rules decided, and what to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub decision: Decision,
    /// The triplet's new record, if it changes.
    pub triplet: Option<TripletRecord>,
    /// The network's new record, if it changes.
    pub network: Option<NetworkRecord>,
}

/// Whether a network record still allows its clients.
fn network_allows(n: &NetworkRecord, now: u64, s: &Settings) -> Option<Decision> {
    if now > n.last.saturating_add(s.expire_ms()) {
        return None;
    }
    if n.manual {
        Some(Decision::Allowed)
    } else if s.auto_allow > 0 && n.passes >= s.auto_allow {
        Some(Decision::AutoAllowed)
    } else {
        None
    }
}

/// The rules: what `now` makes of a triplet and its network.
pub(crate) fn decide(
    triplet: Option<TripletRecord>,
    network: Option<NetworkRecord>,
    now: u64,
    s: &Settings,
) -> Outcome {
    let live_network = network.filter(|n| now <= n.last.saturating_add(s.expire_ms()));
    if let Some(n) = &live_network
        && let Some(decision) = network_allows(n, now, s)
    {
        return Outcome {
            decision,
            triplet: None,
            network: Some(NetworkRecord { last: now, ..*n }),
        };
    }
    let fresh = |now: u64| Outcome {
        decision: Decision::New { retry_in: s.delay },
        triplet: Some(TripletRecord {
            first: now,
            passed: 0,
            passes: 0,
        }),
        network: None,
    };
    let Some(t) = triplet else {
        return fresh(now);
    };
    if t.passes > 0 {
        if now > t.passed.saturating_add(s.expire_ms()) {
            return fresh(now);
        }
        return Outcome {
            decision: Decision::Known,
            triplet: Some(TripletRecord {
                passed: now,
                passes: t.passes.saturating_add(1),
                ..t
            }),
            network: None,
        };
    }
    let ready = t.first.saturating_add(s.delay_ms());
    if now < ready {
        return Outcome {
            decision: Decision::Early {
                retry_in: Duration::from_millis(ready - now),
            },
            triplet: None,
            network: None,
        };
    }
    if now > t.first.saturating_add(s.window_ms()) {
        return fresh(now);
    }
    let n = live_network.unwrap_or(NetworkRecord {
        passes: 0,
        last: now,
        manual: false,
    });
    Outcome {
        decision: Decision::Passed {
            delayed: Duration::from_millis(now.saturating_sub(t.first)),
        },
        triplet: Some(TripletRecord {
            first: t.first,
            passed: now,
            passes: 1,
        }),
        network: Some(NetworkRecord {
            passes: n.passes.saturating_add(1),
            last: now,
            manual: n.manual,
        }),
    }
}

/// Whether a triplet record is of no more use at `now` (the embedded
/// store's sweep; Redis lets the keys' TTL do it).
pub(crate) fn triplet_expired(t: &TripletRecord, now: u64, s: &Settings) -> bool {
    if t.passes > 0 {
        now > t.passed.saturating_add(s.expire_ms())
    } else {
        now > t.first.saturating_add(s.window_ms())
    }
}

/// Whether a network record is of no more use at `now`.
pub(crate) fn network_expired(n: &NetworkRecord, now: u64, s: &Settings) -> bool {
    now > n.last.saturating_add(s.expire_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn run(t: Option<TripletRecord>, n: Option<NetworkRecord>, now: u64) -> Outcome {
        decide(t, n, now, &Settings::default())
    }

    #[test]
    fn a_new_triplet_is_refused_for_the_delay() {
        let o = run(None, None, 1_000);
        assert_eq!(
            o.decision,
            Decision::New {
                retry_in: Duration::from_secs(300)
            }
        );
        let t = o.triplet.unwrap();
        let early = run(Some(t), None, 1_000 + 2 * MIN);
        assert_eq!(
            early.decision,
            Decision::Early {
                retry_in: Duration::from_secs(180)
            }
        );
        assert_eq!(
            early.triplet, None,
            "an early retry does not move the start"
        );
        let passed = run(Some(t), None, 1_000 + 5 * MIN);
        assert_eq!(
            passed.decision,
            Decision::Passed {
                delayed: Duration::from_secs(300)
            }
        );
        assert_eq!(passed.network.unwrap().passes, 1);
    }

    #[test]
    fn a_retry_after_the_window_starts_over() {
        let t = run(None, None, 0).triplet.unwrap();
        let late = run(Some(t), None, 2 * 24 * 60 * MIN + 1);
        assert!(matches!(late.decision, Decision::New { .. }));
    }

    #[test]
    fn a_passed_triplet_is_known_until_it_expires_and_each_pass_renews_it() {
        let t = run(None, None, 0).triplet.unwrap();
        let passed = run(Some(t), None, 6 * MIN).triplet.unwrap();
        let day = 24 * 60 * MIN;
        let known = run(Some(passed), None, 30 * day);
        assert_eq!(known.decision, Decision::Known);
        let renewed = known.triplet.unwrap();
        assert_eq!(run(Some(renewed), None, 60 * day).decision, Decision::Known);
        assert!(matches!(
            run(Some(renewed), None, 66 * day).decision,
            Decision::New { .. }
        ));
    }

    #[test]
    fn a_network_that_passed_auto_allow_times_skips_greylisting() {
        let n = NetworkRecord {
            passes: 5,
            last: 0,
            manual: false,
        };
        assert_eq!(run(None, Some(n), MIN).decision, Decision::AutoAllowed);
        let four = NetworkRecord { passes: 4, ..n };
        assert!(matches!(
            run(None, Some(four), MIN).decision,
            Decision::New { .. }
        ));
        let off = Settings {
            auto_allow: 0,
            ..Settings::default()
        };
        assert!(matches!(
            decide(None, Some(n), MIN, &off).decision,
            Decision::New { .. }
        ));
        let expired = run(None, Some(n), 36 * 24 * 60 * MIN);
        assert!(matches!(expired.decision, Decision::New { .. }));
    }
}
