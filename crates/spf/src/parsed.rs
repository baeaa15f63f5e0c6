//! Parsed records kept by their text, shared by evaluations.
//!
//! A milter evaluates the same few records over and over: the HELO names'
//! and the senders' records of its regular clients, and the includes of the
//! large providers. Parsing is pure (RFC 7208 §4.6 depends only on the
//! text), so a record parsed once serves every later evaluation of the same
//! text; a record whose text changed in DNS is simply another key. Records
//! that do not parse are not kept (their error is cheap to find again, and
//! a hostile zone could otherwise fill the map with them).
//!
//! The map holds at most `capacity` records; when full, a quarter of it is
//! dropped, so that making room is paid once per many inserts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::record::{ParseError, Record};

/// The longest record text kept: longer ones are parsed every time. A
/// record that fits one UDP answer is far shorter (RFC 7208 §3.4).
const MAX_KEPT_TEXT: usize = 2048;

/// Parsed records by their text (see the module doc).
#[derive(Debug)]
pub struct RecordCache {
    capacity: usize,
    records: Mutex<HashMap<Box<str>, Arc<Record>>>,
}

impl RecordCache {
    /// A cache of at most `capacity` parsed records; 0 keeps none.
    pub fn new(capacity: usize) -> Self {
        RecordCache {
            capacity,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// The record `text` parsed: the kept one, or parsed now (and kept).
    pub fn parse(&self, text: &str) -> Result<Arc<Record>, ParseError> {
        if self.capacity == 0 || text.len() > MAX_KEPT_TEXT {
            return Record::parse(text).map(Arc::new);
        }
        if let Some(record) = self.lock().get(text) {
            return Ok(Arc::clone(record));
        }
        let record = Arc::new(Record::parse(text)?);
        let mut records = self.lock();
        if records.len() >= self.capacity {
            // Three quarters, and always one less than full, so that the
            // record about to be inserted fits even in a cache of one.
            let keep = (self.capacity - self.capacity / 4).min(self.capacity - 1);
            let mut surplus = records.len() - keep;
            records.retain(|_, _| {
                if surplus == 0 {
                    return true;
                }
                surplus -= 1;
                false
            });
        }
        records.insert(Box::from(text), Arc::clone(&record));
        Ok(record)
    }

    /// How many parsed records are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no record is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<Record>>> {
        // Every operation is one insert, lookup or retain: a panic
        // elsewhere cannot leave the map half-changed.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_parsed_once_and_shared() {
        let cache = RecordCache::new(8);
        let first = cache.parse("v=spf1 ip4:192.0.2.0/24 -all").unwrap();
        let again = cache.parse("v=spf1 ip4:192.0.2.0/24 -all").unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(
            *first,
            Record::parse("v=spf1 ip4:192.0.2.0/24 -all").unwrap()
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_changed_text_is_parsed_anew() {
        let cache = RecordCache::new(8);
        let old = cache.parse("v=spf1 -all").unwrap();
        let new = cache.parse("v=spf1 ip4:192.0.2.1 -all").unwrap();
        assert_ne!(old, new);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn records_that_do_not_parse_are_not_kept() {
        let cache = RecordCache::new(8);
        assert!(cache.parse("v=spf1 ip4:192.0.2 -all").is_err());
        assert!(cache.parse("v=spf1 ip4:192.0.2 -all").is_err());
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_never_grows_past_its_capacity() {
        let cache = RecordCache::new(16);
        for i in 0..1000u32 {
            let text = format!("v=spf1 ip4:192.0.2.{} -all", i % 256);
            let text = format!("{text} exp=e{i}.example.com");
            cache.parse(&text).unwrap();
            assert!(cache.len() <= 16);
        }
    }

    #[test]
    fn a_cache_of_one_holds_one() {
        let cache = RecordCache::new(1);
        for i in 0..5 {
            cache
                .parse(&format!("v=spf1 ip4:192.0.2.{i} -all"))
                .unwrap();
            assert_eq!(cache.len(), 1);
        }
    }

    #[test]
    fn capacity_zero_and_long_texts_are_parsed_every_time() {
        let none = RecordCache::new(0);
        none.parse("v=spf1 -all").unwrap();
        assert!(none.is_empty());
        let cache = RecordCache::new(8);
        let long = format!("v=spf1 {}-all", "a:a.example.com ".repeat(200));
        cache.parse(&long).unwrap();
        assert!(cache.is_empty());
    }
}
