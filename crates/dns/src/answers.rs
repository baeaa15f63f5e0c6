//! A small map of finished answers, in front of the resolver's own cache.
//!
//! hickory-resolver's cache keeps DNS messages and builds a fresh answer
//! from them on every hit: an absolute `Name`, a query, a lock-free cache
//! probe, the records cloned and then picked apart again. For a milter that
//! asks the same few names for every message of a client, that was the
//! largest single cost of a warm message. This map keeps the answer as the
//! checks receive it (addresses, exchanges, strings), keyed by the name in
//! lower case, until the moment the resolver said it stops being valid: the
//! records' TTL for an answer, the SOA's negative TTL (RFC 2308 §5) for
//! NXDOMAIN and NODATA. Failures (timeouts, SERVFAIL) are never kept.
//!
//! The map holds at most `capacity` answers, and only answers of at most
//! [`MAX_KEPT_BYTES`] (addresses, names and strings counted by their size):
//! a zone that answers with 64 KiB of TXT cannot make the map hold
//! `capacity` times that. When it is full, expired answers are dropped
//! first; if that frees too little, a quarter of the map is dropped, so
//! that the cost of making room is paid once per many inserts and never
//! grows with the traffic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::weight::{MAX_KEPT_BYTES, Weight};
use crate::{LookupError, LookupResult};

/// One kept answer: the records, or "no records" (NXDOMAIN or NODATA).
#[derive(Debug)]
struct Entry<T> {
    answer: Result<Arc<[T]>, LookupError>,
    valid_until: Instant,
}

/// Finished answers of one record type, by name (see the module doc).
#[derive(Debug)]
pub(crate) struct AnswerMap<T> {
    capacity: usize,
    entries: Mutex<HashMap<Box<str>, Entry<T>>>,
}

impl<T: Clone + Weight> AnswerMap<T> {
    /// A map of at most `capacity` answers; 0 keeps nothing.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, Entry<T>>> {
        // A panic elsewhere while holding the lock leaves a map that is
        // still consistent: every operation below is a single insert,
        // lookup or retain.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer for `name` if one is kept and still valid at `now`.
    pub(crate) fn get(&self, name: &str, now: Instant) -> Option<LookupResult<Vec<T>>> {
        if self.capacity == 0 {
            return None;
        }
        let key = key(name);
        let map = self.lock();
        let entry = map.get(key.as_ref())?;
        if entry.valid_until <= now {
            return None;
        }
        Some(match &entry.answer {
            Ok(records) => Ok(records.to_vec()),
            Err(e) => Err(e.clone()),
        })
    }

    /// Keeps `answer` for `name` until `valid_until`. Temporary failures,
    /// answers already expired at `now` and answers over
    /// [`MAX_KEPT_BYTES`] are not kept.
    pub(crate) fn put(
        &self,
        name: &str,
        answer: &LookupResult<Vec<T>>,
        valid_until: Instant,
        now: Instant,
    ) {
        if self.capacity == 0 || valid_until <= now {
            return;
        }
        let answer = match answer {
            Ok(records) if records.iter().map(Weight::weight).sum::<usize>() > MAX_KEPT_BYTES => {
                return;
            }
            Ok(records) => Ok(Arc::from(records.as_slice())),
            Err(e) if e.is_void() => Err(e.clone()),
            Err(_) => return,
        };
        let mut map = self.lock();
        if map.len() >= self.capacity {
            make_room(&mut map, self.capacity, now);
        }
        map.insert(
            key(name),
            Entry {
                answer,
                valid_until,
            },
        );
    }

    /// Forgets every answer.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Drops the expired answers, then, if the map is still over three
/// quarters full, enough others to bring it down to three quarters.
fn make_room<T>(map: &mut HashMap<Box<str>, Entry<T>>, capacity: usize, now: Instant) {
    map.retain(|_, entry| entry.valid_until > now);
    // Three quarters, and always one less than full, so that the answer
    // about to be inserted fits even in a map of one.
    let keep = (capacity - capacity / 4).min(capacity - 1);
    if map.len() > keep {
        let mut surplus = map.len() - keep;
        map.retain(|_, _| {
            if surplus == 0 {
                return true;
            }
            surplus -= 1;
            false
        });
    }
}

/// The key of `name`: lower case, without a trailing dot, as DNS compares
/// names (RFC 4343).
fn key(name: &str) -> Box<str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.to_ascii_lowercase().into_boxed_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    impl Weight for u8 {
        fn weight(&self) -> usize {
            1
        }
    }

    impl Weight for u32 {
        fn weight(&self) -> usize {
            4
        }
    }

    #[test]
    fn an_answer_over_the_size_limit_is_not_kept() {
        let map = AnswerMap::new(8);
        let now = Instant::now();
        let big = vec!["v".repeat(MAX_KEPT_BYTES / 2 + 1); 2];
        map.put("big.example.com", &Ok(big), later(now, 300), now);
        assert_eq!(map.get("big.example.com", now), None);
        let fits = vec!["v".repeat(MAX_KEPT_BYTES / 2); 2];
        map.put("fits.example.com", &Ok(fits.clone()), later(now, 300), now);
        assert_eq!(map.get("fits.example.com", now), Some(Ok(fits)));
    }

    fn later(now: Instant, secs: u64) -> Instant {
        now + Duration::from_secs(secs)
    }

    #[test]
    fn an_answer_is_kept_until_its_ttl_runs_out() {
        let map = AnswerMap::new(8);
        let now = Instant::now();
        map.put("mail.example.com", &Ok(vec![1u32, 2]), later(now, 300), now);
        assert_eq!(map.get("mail.example.com", now), Some(Ok(vec![1, 2])));
        assert_eq!(
            map.get("mail.example.com", later(now, 299)),
            Some(Ok(vec![1, 2]))
        );
        assert_eq!(map.get("mail.example.com", later(now, 300)), None);
    }

    #[test]
    fn names_match_without_regard_to_case_or_trailing_dot() {
        let map = AnswerMap::new(8);
        let now = Instant::now();
        map.put("Mail.Example.COM.", &Ok(vec![7u8]), later(now, 60), now);
        assert_eq!(map.get("mail.example.com", now), Some(Ok(vec![7])));
        assert_eq!(map.get("MAIL.example.com.", now), Some(Ok(vec![7])));
        assert_eq!(map.get("other.example.com", now), None);
    }

    #[test]
    fn no_records_are_kept_and_failures_are_not() {
        let map = AnswerMap::<u8>::new(8);
        let now = Instant::now();
        map.put(
            "gone.example.com",
            &Err(LookupError::NxDomain),
            later(now, 60),
            now,
        );
        map.put(
            "empty.example.com",
            &Err(LookupError::NoData),
            later(now, 60),
            now,
        );
        map.put(
            "slow.example.com",
            &Err(LookupError::Timeout),
            later(now, 60),
            now,
        );
        let servfail = LookupError::ServerFailure("SERVFAIL".into());
        map.put("broken.example.com", &Err(servfail), later(now, 60), now);
        assert_eq!(
            map.get("gone.example.com", now),
            Some(Err(LookupError::NxDomain))
        );
        assert_eq!(
            map.get("empty.example.com", now),
            Some(Err(LookupError::NoData))
        );
        assert_eq!(map.get("slow.example.com", now), None);
        assert_eq!(map.get("broken.example.com", now), None);
    }

    #[test]
    fn a_zero_ttl_answer_is_not_kept() {
        let map = AnswerMap::new(8);
        let now = Instant::now();
        map.put("ttl0.example.com", &Ok(vec![1u8]), now, now);
        assert_eq!(map.get("ttl0.example.com", now), None);
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let map = AnswerMap::new(0);
        let now = Instant::now();
        map.put("a.example.com", &Ok(vec![1u8]), later(now, 60), now);
        assert_eq!(map.get("a.example.com", now), None);
    }

    #[test]
    fn a_full_map_drops_expired_answers_first() {
        let map = AnswerMap::new(4);
        let now = Instant::now();
        map.put("old1.example.com", &Ok(vec![1u8]), later(now, 10), now);
        map.put("old2.example.com", &Ok(vec![2u8]), later(now, 10), now);
        map.put("new1.example.com", &Ok(vec![3u8]), later(now, 100), now);
        map.put("new2.example.com", &Ok(vec![4u8]), later(now, 100), now);
        let then = later(now, 50);
        map.put("new3.example.com", &Ok(vec![5u8]), later(now, 100), then);
        assert_eq!(map.len(), 3);
        for name in ["new1", "new2", "new3"] {
            let name = format!("{name}.example.com");
            assert!(map.get(&name, then).is_some(), "{name} was dropped");
        }
    }

    #[test]
    fn the_map_never_grows_past_its_capacity() {
        let map = AnswerMap::new(100);
        let now = Instant::now();
        for i in 0..10_000u32 {
            map.put(
                &format!("h{i}.example.com"),
                &Ok(vec![i]),
                later(now, 600),
                now,
            );
            assert!(map.len() <= 100);
        }
        // The newest answer is always kept.
        assert_eq!(map.get("h9999.example.com", now), Some(Ok(vec![9999])));
    }

    #[test]
    fn a_map_of_one_holds_one() {
        let map = AnswerMap::new(1);
        let now = Instant::now();
        for i in 0..5u32 {
            map.put(
                &format!("h{i}.example.com"),
                &Ok(vec![i]),
                later(now, 60),
                now,
            );
            assert_eq!(map.len(), 1);
        }
        assert_eq!(map.get("h4.example.com", now), Some(Ok(vec![4])));
    }

    #[test]
    fn clear_forgets_everything() {
        let map = AnswerMap::new(8);
        let now = Instant::now();
        map.put("a.example.com", &Ok(vec![1u8]), later(now, 60), now);
        map.clear();
        assert_eq!(map.get("a.example.com", now), None);
    }
}
