//! Answer latency: how long the server waits before it sends each answer,
//! so that tests and benchmarks on loopback see the round trips of a real
//! resolver (5–100 ms on the internet) instead of microseconds.
//!
//! A [`Latency`] is a fixed time, optionally spread evenly over
//! `base ± jitter`; every answer draws its own delay. The server waits in
//! a task of its own per answer, so concurrent queries each wait their own
//! delay and a slow answer never holds back another.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long each answer is held back: `base`, or a time drawn evenly from
/// `base - jitter ..= base + jitter` (never below zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// The mean delay.
    pub base: Duration,
    /// The largest deviation from `base`, either way.
    pub jitter: Duration,
}

/// Why a latency text such as `20ms±10ms` was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("latency {text:?}: {problem} (expected e.g. 20ms, 20ms+-10ms or 1.5s)")]
pub struct LatencyError {
    text: String,
    problem: &'static str,
}

impl Latency {
    /// No delay: answers go out as soon as they are made.
    pub const NONE: Latency = Latency {
        base: Duration::ZERO,
        jitter: Duration::ZERO,
    };

    /// The same delay for every answer.
    pub fn fixed(base: Duration) -> Latency {
        Latency {
            base,
            jitter: Duration::ZERO,
        }
    }

    /// A delay drawn evenly from `base ± jitter` for each answer.
    pub fn around(base: Duration, jitter: Duration) -> Latency {
        Latency { base, jitter }
    }

    /// Whether answers are held back at all.
    pub fn is_none(&self) -> bool {
        self.base.is_zero() && self.jitter.is_zero()
    }

    /// The delay for one answer.
    pub(crate) fn draw(&self) -> Duration {
        if self.jitter.is_zero() {
            return self.base;
        }
        // Nanosecond resolution; jitter beyond u64 nanoseconds (584 years)
        // is clamped.
        let span = u64::try_from(self.jitter.as_nanos())
            .unwrap_or(u64::MAX / 2)
            .min(u64::MAX / 2);
        let offset = next_random() % (2 * span + 1);
        let low = self.base.saturating_sub(self.jitter);
        let high = self.base.saturating_add(self.jitter);
        // base - jitter + offset, kept within [low, high] when base < jitter.
        (self.base + Duration::from_nanos(offset))
            .saturating_sub(self.jitter)
            .clamp(low, high)
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.base)?;
        if !self.jitter.is_zero() {
            write!(f, "±{:?}", self.jitter)?;
        }
        Ok(())
    }
}

impl FromStr for Latency {
    type Err = LatencyError;

    /// `20ms`, `20ms+-10ms`, `20ms±10ms`, `1.5s`, `500us`.
    fn from_str(text: &str) -> Result<Latency, LatencyError> {
        let error = |problem| LatencyError {
            text: text.to_owned(),
            problem,
        };
        let (base, jitter) = match text.split_once("+-").or_else(|| text.split_once('±')) {
            Some((base, jitter)) => (base, Some(jitter)),
            None => (text, None),
        };
        let base = duration(base.trim()).ok_or_else(|| error("not a duration"))?;
        let jitter = match jitter {
            Some(j) => duration(j.trim()).ok_or_else(|| error("the jitter is not a duration"))?,
            None => Duration::ZERO,
        };
        Ok(Latency { base, jitter })
    }
}

/// `NUMBER` followed by `us`, `ms` or `s`.
fn duration(text: &str) -> Option<Duration> {
    let (number, unit) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    let value: f64 = number.trim().parse().ok()?;
    if !value.is_finite() || value < 0.0 || value > 86_400.0 / unit {
        return None;
    }
    Some(Duration::from_secs_f64(value * unit))
}

/// A process-wide splitmix64 sequence, seeded from the standard library's
/// random hasher keys: good enough to spread delays, no crate needed.
fn next_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut seed = STATE.load(Ordering::Relaxed);
    if seed == 0 {
        seed = RandomState::new().hash_one(0x07e5_7d45_u64) | 1;
        let _ = STATE.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut z = STATE
        .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_latency_is_always_the_same() {
        let l = Latency::fixed(Duration::from_millis(20));
        assert!((0..100).all(|_| l.draw() == Duration::from_millis(20)));
    }

    #[test]
    fn jitter_stays_within_base_plus_minus_jitter_and_varies() {
        let l = Latency::around(Duration::from_millis(20), Duration::from_millis(10));
        let draws: Vec<Duration> = (0..1000).map(|_| l.draw()).collect();
        assert!(
            draws
                .iter()
                .all(|d| (Duration::from_millis(10)..=Duration::from_millis(30)).contains(d))
        );
        let below = draws
            .iter()
            .filter(|d| **d < Duration::from_millis(20))
            .count();
        assert!(
            (200..800).contains(&below),
            "{below} of 1000 below the mean"
        );
    }

    #[test]
    fn jitter_larger_than_base_never_goes_below_zero() {
        let l = Latency::around(Duration::from_millis(1), Duration::from_millis(5));
        assert!((0..1000).all(|_| l.draw() <= Duration::from_millis(6)));
    }

    #[test]
    fn latency_text_is_parsed() {
        let ms = Duration::from_millis;
        assert_eq!("20ms".parse(), Ok(Latency::fixed(ms(20))));
        assert_eq!("20ms+-10ms".parse(), Ok(Latency::around(ms(20), ms(10))));
        assert_eq!("20ms±10ms".parse(), Ok(Latency::around(ms(20), ms(10))));
        assert_eq!("1.5s".parse(), Ok(Latency::fixed(ms(1500))));
        assert_eq!(
            "500us".parse(),
            Ok(Latency::fixed(Duration::from_micros(500)))
        );
        for bad in ["", "20", "-5ms", "20ms+-", "nanms", "1e30s"] {
            assert!(bad.parse::<Latency>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn latency_is_shown_as_it_is_written() {
        let l = Latency::around(Duration::from_millis(20), Duration::from_millis(10));
        assert_eq!(l.to_string(), "20ms±10ms");
        assert_eq!(l.to_string().parse(), Ok(l));
    }
}
